"""A process's losses as differentiable PyTorch functions.

    import diffc, diffc.torch
    ddpm = diffc.load("specs/ddpm.diff", process="ddpm_linear")
    noised = ddpm.forward(x_0=x0, t=t, seed=step)
    eps_hat = model(noised["x_t"], t)
    loss = diffc.torch.loss(ddpm, "simple", {"x_t": noised["x_t"], "t": t, "eps": noised["eps"]},
                            eps_hat)
    loss.mean().backward()          # reaches the model's parameters

The forward pass runs the spec's ``loss.NAME`` entry, which returns the loss per sample and
its gradient with respect to each network output (``d_NET.FIELD``, by reverse-mode
differentiation of the lowered program); the backward pass scales those by the incoming
gradient. The loss is not differentiated with respect to the other inputs.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Union

import torch

from . import Process

__all__ = ["loss"]


class _Loss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, process, name, inputs, names, options, *outputs):
        given = dict(inputs)
        for n, o in zip(names, outputs):
            given[n] = o.detach()
        out = process.call(f"loss.{name}", given, **options)
        value = _as_tensor(out["loss"])
        grads = [_as_tensor(out[f"d_{n}"]) for n in names]
        ctx.save_for_backward(*grads)
        return value

    @staticmethod
    def backward(ctx, grad_loss):
        grads = ctx.saved_tensors
        result = []
        for g in grads:
            scale = grad_loss.reshape(grad_loss.shape + (1,) * (g.dim() - grad_loss.dim()))
            result.append((scale * g).to(g.dtype))
        return (None, None, None, None, None, *result)


def _as_tensor(x: Any) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(x)


def loss(
    process: Process,
    name: str,
    inputs: Mapping[str, Any],
    net_outputs: Union[torch.Tensor, Mapping[str, torch.Tensor]],
    *,
    backend: str = "interp",
    batch: Optional[int] = None,
    masks: Optional[Mapping[str, Any]] = None,
    sizes: Optional[Mapping[str, int]] = None,
    params: Optional[Mapping[str, Any]] = None,
) -> torch.Tensor:
    """The loss ``name`` of ``process`` per sample (shape ``[batch]``), differentiable with
    respect to the network's outputs.

    ``inputs`` holds the loss's other inputs (fields, the time, the noise ``eps``, node
    masks) as ``Process.call`` takes them. ``net_outputs`` is the network's output: a tensor
    when the loss reads one network output, otherwise a dict by ``NET.FIELD`` (or by field
    name when one network is called). They must be float32 CPU tensors.
    """
    wanted = [
        p["name"]
        for e in process.entries()
        if e["name"] == f"loss.{name}"
        for p in e["inputs"]
        if "." in p["name"]
    ]
    if not any(e["name"] == f"loss.{name}" for e in process.entries()):
        losses = [e["name"][5:] for e in process.entries() if e["name"].startswith("loss.")]
        raise ValueError(f"`{process.name}` has no loss `{name}` (its losses: {', '.join(losses)})")
    if isinstance(net_outputs, Mapping):
        by_name: Dict[str, torch.Tensor] = {}
        for n in wanted:
            field = n.split(".", 1)[1]
            if n in net_outputs:
                by_name[n] = net_outputs[n]
            elif field in net_outputs:
                by_name[n] = net_outputs[field]
            else:
                raise ValueError(f"`loss.{name}` needs `{n}`")
        extra = set(net_outputs) - set(by_name) - {n.split(".", 1)[1] for n in by_name}
        if extra:
            raise ValueError(
                f"`loss.{name}` has no input {', '.join(sorted(extra))} (its network outputs: {', '.join(wanted)})"
            )
        outputs = [by_name[n] for n in wanted]
    else:
        if len(wanted) != 1:
            raise TypeError(
                f"`loss.{name}` reads {len(wanted)} network outputs ({', '.join(wanted)}): "
                "give them as a dict"
            )
        outputs = [net_outputs]
    for n, o in zip(wanted, outputs):
        if not isinstance(o, torch.Tensor):
            raise TypeError(f"`{n}` must be a torch.Tensor, not {type(o).__name__}")
    given = dict(inputs)
    if masks:
        given.update(masks)
    options = dict(backend=backend, batch=batch, sizes=sizes, params=params)
    return _Loss.apply(process, name, given, tuple(wanted), options, *outputs)
