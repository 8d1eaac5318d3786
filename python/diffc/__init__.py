"""diffc: a compiler for diffusion processes, from Python.

Load a ``.diff`` spec, then run its entry points (``forward``, ``log_q``, ``posterior``,
``loss.NAME``, ``sample_t``, ``net_inputs.NET``, …) on numpy arrays or CPU ``torch.Tensor``s,
step its samplers one step at a time, or let diffc run a whole sampler and call your network.

    import diffc
    ddpm = diffc.load("specs/ddpm.diff", process="ddpm_linear")
    out = ddpm.forward(x_0=x0, t=500, seed=1)          # {"x_t": ..., "eps": ...}
    samples = ddpm.sample("ddim", model, count=64, sizes={"d": 2})

The type you pass is the type you get: numpy in, numpy out; torch in, torch out.
See ``docs/python.md`` for shapes, copies and errors.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Union

import numpy as np

from . import _diffc

__all__ = [
    "load",
    "loads",
    "Process",
    "Sampler",
    "SpecError",
    "SpecWarning",
    "Diagnostic",
]


class Diagnostic(NamedTuple):
    """One diagnostic of the checker: where it points (1-based) and what it says."""

    severity: str
    code: str
    line: int
    column: int
    end_line: int
    end_column: int
    message: str
    label: str
    notes: List[str]


class SpecError(ValueError):
    """A spec with errors. ``str(err)`` is the rendered diagnostics, as ``diffc check`` prints
    them; ``err.diagnostics`` holds them as data."""

    def __init__(self, message: str, diagnostics: List[Diagnostic]):
        super().__init__(message)
        self.diagnostics = diagnostics


class SpecWarning(UserWarning):
    """A warning of the checker (a schedule nothing reads, a network nothing calls, …)."""


def load(path: Union[str, "os.PathLike[str]"], process: Optional[str] = None) -> "Process":
    """Read and check a spec file and return its process (``process`` picks one by name when
    the file holds several). Errors raise :class:`SpecError`; warnings are issued as
    :class:`SpecWarning` (except W0002 alone, a posterior marked ``#[approximate]``)."""
    import os

    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return loads(text, process=process, name=path)


def loads(text: str, process: Optional[str] = None, name: str = "<string>") -> "Process":
    """Check a spec given as text; ``name`` is the file name the diagnostics show."""
    proc, diags, rendered, shown = _diffc.check(text, name, process)
    diagnostics = [Diagnostic(**d) for d in diags]
    if proc is None:
        raise SpecError(rendered, diagnostics)
    # Every diagnostic is kept, but warnings are issued only where one of them is of a kind
    # the CLI's runs report (all but W0002, a posterior the spec marks `#[approximate]`: its
    # author's choice, which `diffc check` reports).
    if shown:
        warnings.warn(rendered, SpecWarning, stacklevel=2)
    return Process(proc, diagnostics)


# --- arrays -------------------------------------------------------------------------------


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return torch


def _is_torch(x: Any) -> bool:
    torch = _torch_if_loaded()
    return torch is not None and isinstance(x, torch.Tensor)


def _torch_if_loaded():
    import sys

    return sys.modules.get("torch")


def _to_numpy(name: str, x: Any) -> Any:
    """A torch tensor as the numpy array over the same memory; anything else unchanged."""
    if _is_torch(x):
        if x.device.type != "cpu":
            raise TypeError(f"`{name}` is on {x.device}: diffc takes CPU tensors (use .cpu())")
        return x.detach().numpy()
    return x


def _numpy_dict(d: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    return {k: _to_numpy(k, v) for k, v in (d or {}).items()}


def _any_torch(*dicts: Optional[Mapping[str, Any]]) -> bool:
    return any(_is_torch(v) for d in dicts if d for v in d.values())


def _wrap(out: Dict[str, np.ndarray], as_torch: bool) -> Dict[str, Any]:
    if not as_torch:
        return out
    torch = _torch()
    return {k: torch.from_numpy(v) for k, v in out.items()}


# --- processes ----------------------------------------------------------------------------


class Process:
    """A checked process. Entry points run by name with :meth:`call`; the named methods are
    shorthands for it."""

    def __init__(self, inner: "_diffc.Process", diagnostics: List[Diagnostic]):
        self._p = inner
        self.diagnostics = diagnostics

    def __repr__(self) -> str:
        return f"<diffc.Process {self.name}>"

    @property
    def name(self) -> str:
        return self._p.name

    @property
    def time(self) -> str:
        """The name of the time (``t``)."""
        return self._p.time

    @property
    def time_domain(self):
        """``(lo, hi, data_at)``: the time's range and where the data sits."""
        return self._p.time_domain

    @property
    def dims(self) -> List[str]:
        return self._p.dims

    @property
    def params(self) -> List[str]:
        """The names of the process's ``param``s, which ``params=`` can set per call."""
        return self._p.params

    @property
    def masks(self) -> List[tuple]:
        """Node masks as ``(name, dim)`` pairs."""
        return self._p.masks

    def fields(self) -> List[dict]:
        return self._p.fields()

    def networks(self) -> List[dict]:
        """Networks with the names of their outputs (``NET.FIELD``) in order."""
        return self._p.networks()

    def entries(self) -> List[dict]:
        """Every entry point with its inputs and outputs (name, dtype, shape by dim names)."""
        return self._p.entries()

    def samplers(self) -> List[dict]:
        return self._p.samplers()

    def call(
        self,
        entry: str,
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        seed: int = 0,
        backend: str = "interp",
        batch: Optional[int] = None,
        draws: Optional[Mapping[str, Any]] = None,
        masks: Optional[Mapping[str, Any]] = None,
        sizes: Optional[Mapping[str, int]] = None,
        params: Optional[Mapping[str, Any]] = None,
    ) -> Dict[str, Any]:
        """Run the entry point ``entry`` and return its outputs by name.

        ``inputs`` maps names to arrays as ``diffc eval --in/--set`` does: a node mask by its
        name, a port of the entry (the time ``t`` as a number, a 0-d array, or one time per
        sample), or a supplied draw (``eps``, ``u_x``, …). ``batch`` defaults to the first axis
        of the field inputs (or of a per-sample time), else 1; ``sizes`` gives dimensions no
        input shows. ``params`` sets the process's ``param``s for this call (a number, or a list
        or array for a ``vec`` param), in place of their declared defaults.
        """
        as_torch = _any_torch(inputs, draws, masks)
        out = self._p.run(
            entry,
            _numpy_dict(inputs),
            seed=seed,
            backend=backend,
            batch=batch,
            draws=_numpy_dict(draws),
            masks=_numpy_dict(masks),
            sizes=dict(sizes or {}),
            params={k: _to_numpy(k, v) for k, v in (params or {}).items()},
        )
        return _wrap(out, as_torch)

    def _named(self, entry: str, inputs, named, opts) -> Dict[str, Any]:
        merged = dict(inputs or {})
        merged.update(named)
        return self.call(entry, merged, **opts)

    def forward(self, inputs: Optional[Mapping[str, Any]] = None, *, seed: int = 0,
                backend: str = "interp", batch: Optional[int] = None, draws=None, masks=None,
                sizes=None, params=None, **named: Any) -> Dict[str, Any]:
        """Noise data: ``forward(x_0=x0, t=t)`` → ``{"x_t": …, "eps": …}``."""
        return self._named("forward", inputs, named, dict(seed=seed, backend=backend,
                           batch=batch, draws=draws, masks=masks, sizes=sizes, params=params))

    def log_q(self, inputs: Optional[Mapping[str, Any]] = None, *, backend: str = "interp",
              batch: Optional[int] = None, masks=None, sizes=None, params=None,
              **named: Any) -> Dict[str, Any]:
        """``log q(x_t | x_0)`` per sample."""
        return self._named("log_q", inputs, named, dict(backend=backend, batch=batch,
                           masks=masks, sizes=sizes, params=params))

    def posterior(self, inputs: Optional[Mapping[str, Any]] = None, *, field: Optional[str] = None,
                  backend: str = "interp", batch: Optional[int] = None, masks=None, sizes=None,
                  params=None, **named: Any) -> Dict[str, Any]:
        """The posterior's parameters; ``field`` picks one when the process has several."""
        entry = "posterior" if field is None else f"posterior.{field}"
        return self._named(entry, inputs, named, dict(backend=backend, batch=batch,
                           masks=masks, sizes=sizes, params=params))

    def loss(self, name: str, inputs: Optional[Mapping[str, Any]] = None, *,
             backend: str = "interp", batch: Optional[int] = None, draws=None, masks=None,
             sizes=None, params=None, **named: Any) -> Dict[str, Any]:
        """The loss ``name`` per sample and its gradient with respect to each network output
        (``d_NET.FIELD``). Network outputs are inputs named ``NET.FIELD``: give them in
        ``inputs``. For autograd, see :func:`diffc.torch.loss`."""
        return self._named(f"loss.{name}", inputs, named, dict(backend=backend, batch=batch,
                           draws=draws, masks=masks, sizes=sizes, params=params))

    def sample_t(self, inputs: Optional[Mapping[str, Any]] = None, *, seed: int = 0,
                 backend: str = "interp", batch: Optional[int] = None, **named: Any) -> Dict[str, Any]:
        """One time per sample from the loss's time distribution."""
        return self._named("sample_t", inputs, named, dict(seed=seed, backend=backend,
                           batch=batch))

    def net_inputs(self, net: str, inputs: Optional[Mapping[str, Any]] = None, *,
                   backend: str = "interp", batch: Optional[int] = None, masks=None, sizes=None,
                   params=None, **named: Any) -> Dict[str, Any]:
        """What the network ``net`` is called with, preconditioning included."""
        return self._named(f"net_inputs.{net}", inputs, named, dict(backend=backend,
                           batch=batch, masks=masks, sizes=sizes, params=params))

    def prior(self, *, field: Optional[str] = None, seed: int = 0, backend: str = "interp",
              batch: Optional[int] = None, masks=None, sizes=None, params=None) -> Dict[str, Any]:
        """Draws from the prior (the noise end)."""
        entry = "prior" if field is None else f"prior.{field}"
        return self.call(entry, None, seed=seed, backend=backend, batch=batch, masks=masks,
                         sizes=sizes, params=params)

    def sampler(self, name: str, steps: Optional[int] = None, **params: Any) -> "Sampler":
        """A sampler with its time grid, to step through in your own loop (diffusers-style)
        or to hand to :meth:`sample`. ``params`` are the sampler's parameters (``eta=0.5``) and
        the process's ``param``s, told apart by name."""
        return Sampler(self, name, steps, params)

    def sample(
        self,
        sampler: Union[str, "Sampler"],
        denoiser: Union[Callable[..., Any], Mapping[str, Callable[..., Any]]],
        *,
        count: int,
        sizes: Optional[Mapping[str, int]] = None,
        masks: Optional[Mapping[str, Any]] = None,
        state: Optional[Mapping[str, Any]] = None,
        seed: int = 0,
        backend: str = "cpu",
        steps: Optional[int] = None,
        tensors: Optional[str] = None,
        **params: Any,
    ) -> Dict[str, Any]:
        """Run a sampler from its start to its final map for ``count`` samples, calling
        ``denoiser`` for every network evaluation, and return every field it set.

        ``denoiser(*inputs)`` gets the network's declared inputs in order (fields batch
        first, times as 0-d arrays) and returns its outputs: one array, a tuple in the
        network's output order, or a dict by field name. A dict of callables gives one per
        network. It gets torch tensors (under ``torch.no_grad()``) when it is a
        ``torch.nn.Module``, when ``tensors="torch"``, or when any array given here is a
        tensor; numpy arrays otherwise. ``params`` are the sampler's parameters and the
        process's ``param``s, told apart by name. ``state`` gives starting values (conditioning fields,
        or state in place of the sampler's start); ``masks`` node masks; ``sizes`` dimensions
        that no mask or state shows.
        """
        if isinstance(sampler, Sampler):
            name, all_params = sampler.name, {**sampler.params, **sampler.process_params}
            if steps is not None:
                all_params["steps"] = steps
            all_params.update(params)
        else:
            name, all_params = sampler, dict(params)
            if steps is not None:
                all_params["steps"] = steps
        as_torch = _wants_torch(tensors, denoiser, masks, state)
        out = self._p.sample(
            name,
            _adapt_denoiser(self, denoiser, as_torch),
            count,
            sizes=dict(sizes or {}),
            masks=_numpy_dict(masks),
            state=_numpy_dict(state),
            params={k: _to_numpy(k, v) for k, v in all_params.items()},
            seed=seed,
            backend=backend,
        )
        return _wrap(out, as_torch)


def _wants_torch(tensors: Optional[str], denoiser: Any, *dicts) -> bool:
    if tensors not in (None, "numpy", "torch"):
        raise ValueError(f"tensors must be None, 'numpy' or 'torch', not {tensors!r}")
    if tensors is not None:
        return tensors == "torch"
    torch = _torch_if_loaded()
    if torch is not None:
        nets = denoiser.values() if isinstance(denoiser, Mapping) else [denoiser]
        if any(isinstance(n, torch.nn.Module) for n in nets):
            return True
    return _any_torch(*dicts)


def _outputs_as_list(net: str, out: Any, names: List[str]) -> List[np.ndarray]:
    """A denoiser's result as one float32 array per output, in the network's order."""
    if isinstance(out, Mapping):
        fields = [n.split(".", 1)[1] for n in names]
        missing = [f for f, n in zip(fields, names) if f not in out and n not in out]
        if missing:
            raise ValueError(
                f"the denoiser of `{net}` returned no {', '.join(repr(m) for m in missing)} "
                f"(its outputs: {', '.join(names)})"
            )
        out = [out[f] if f in out else out[n] for f, n in zip(fields, names)]
    elif not isinstance(out, (tuple, list)):
        out = [out]
    arrays = []
    for o in out:
        if _is_torch(o):
            o = o.detach().cpu().numpy()
        arrays.append(o)
    return arrays


def _adapt_denoiser(proc: Process, denoiser: Any, as_torch: bool) -> Callable:
    """The user's denoiser as the extension calls it: ``f(net, inputs, output_names)``."""
    if isinstance(denoiser, Mapping):
        table = dict(denoiser)
    elif callable(denoiser):
        table = None
    else:
        raise TypeError("the denoiser must be a callable or a dict of callables by network name")
    torch = _torch() if as_torch else None

    def call(net: str, inputs: List[np.ndarray], names: List[str]) -> List[np.ndarray]:
        if table is None:
            fn = denoiser
        elif net in table:
            fn = table[net]
        else:
            raise KeyError(f"no denoiser for the network `{net}` (given: {', '.join(table)})")
        if torch is not None:
            # A CPU run lends its own buffers read-only; PyTorch has no read-only tensors, so a
            # torch denoiser gets a copy of those.
            args = [torch.from_numpy(a if a.flags.writeable else a.copy()) for a in inputs]
            with torch.no_grad():
                out = fn(*args)
        else:
            out = fn(*inputs)
        return _outputs_as_list(net, out, names)

    return call


# --- samplers -----------------------------------------------------------------------------


class Sampler:
    """A sampler of a process with its grid, in the shape of a diffusers scheduler::

        sampler = ddpm.sampler("ddim", steps=10)
        x = x_T
        for t in sampler.timesteps:
            eps = model(x, t)
            x = sampler.step(eps, t, x)

    ``timesteps`` are the times the network is called at, one per step (``grid`` adds the
    data end). Step ``k`` goes from ``grid[k]`` to ``grid[k + 1]`` and draws its noise as
    step ``k`` of :meth:`Process.sample` does with the same seed.
    """

    def __init__(self, process: Process, name: str, steps: Optional[int], params: Mapping[str, Any]):
        self.process = process
        self.name = name
        info = [s for s in process.samplers() if s["name"] == name]
        if not info:
            names = ", ".join(s["name"] for s in process.samplers())
            raise ValueError(f"no sampler `{name}` (the process has: {names})")
        self._info = info[0]
        process._p.check_sampler_params(name, list(params))
        #: The sampler's own parameters (``steps``, ``eta``, …) and the process's ``param``s.
        self.params: Dict[str, float] = {k: float(v) for k, v in params.items() if k in self._info["params"]}
        self.process_params: Dict[str, Any] = {k: v for k, v in params.items() if k not in self._info["params"]}
        if steps is not None:
            self.params["steps"] = float(steps)
        self.grid = np.asarray(process._p.sampler_grid(name, self.params), dtype=np.float64)
        self.timesteps = self.grid[:-1]
        self._prev: Dict[str, Any] = {}
        self._last_k: Optional[int] = None

    def __repr__(self) -> str:
        return f"<diffc.Sampler {self.process.name}.{self.name}, {len(self.timesteps)} steps>"

    @property
    def history(self) -> List[str]:
        """The names of the values a step reads from the previous step (``prev``)."""
        return list(self._info["history"])

    def index(self, t: Any) -> int:
        """The step whose network call is at time ``t`` (a value of ``timesteps``)."""
        v = float(t.item() if hasattr(t, "item") else t)
        hits = np.nonzero(self.timesteps == v)[0]
        if len(hits) == 0:
            raise ValueError(
                f"`{self.process.time}` = {v} is not one of this sampler's timesteps "
                f"({len(self.timesteps)} from {self.timesteps[0]} to {self.timesteps[-1]})"
            )
        return int(hits[0])

    def step(
        self,
        model_output: Any,
        t: Any,
        sample: Any,
        *,
        seed: int = 0,
        backend: str = "interp",
        prev: Optional[Mapping[str, Any]] = None,
        masks: Optional[Mapping[str, Any]] = None,
        draws: Optional[Mapping[str, Any]] = None,
        sizes: Optional[Mapping[str, int]] = None,
    ) -> Any:
        """One step from ``t`` (a value of ``timesteps``) to the next grid time.

        ``model_output`` is the network's output at ``(sample, t)``: an array when the step
        calls one network with one output, a dict ``{"NET.FIELD": array}`` otherwise
        (``NET.FIELD#i`` for the i-th call of a step), or a denoiser callable as
        :meth:`Process.sample` takes, which the step calls itself. ``sample`` is the state: an
        array when the sampler's state is one field, else a dict by field name; the result
        has the same form.

        A multistep sampler (DPM-Solver++(2M), …) reads values kept from the previous step
        (``history``): the sampler keeps them itself when its steps are called in order, as a
        diffusers scheduler keeps its model outputs, so a loop over ``timesteps`` needs nothing
        more. ``prev`` gives them explicitly instead (by name), and ``last_history`` holds what
        the last step kept.
        """
        k = self.index(t)
        return self._run(model_output, sample, k, seed=seed, backend=backend, prev=prev,
                         masks=masks, draws=draws, sizes=sizes, finalize=False)

    def finalize(self, model_output: Any, sample: Any, *, seed: int = 0, backend: str = "interp",
                 masks=None, draws=None, sizes=None) -> Any:
        """The sampler's final map at the data end of the grid."""
        return self._run(model_output, sample, len(self.timesteps), seed=seed, backend=backend,
                         prev=None, masks=masks, draws=draws, sizes=sizes, finalize=True)

    def _entry(self, kind: str) -> dict:
        return [e for e in self.process.entries() if e["name"] == f"{kind}.{self.name}"][0]

    def _state_field(self) -> str:
        entry = self._entry("step")
        fields = {f["name"] for f in self.process.fields()}
        state = [p["name"] for p in entry["inputs"] if p["name"] in fields]
        if len(state) != 1:
            raise TypeError(
                f"sampler `{self.name}` steps {len(state)} fields ({', '.join(state)}): "
                "give the sample as a dict by field name"
            )
        return state[0]

    @property
    def last_history(self) -> Dict[str, Any]:
        """The values the last step kept for the next one (``prev`` by name)."""
        return dict(self._prev)

    def _run(self, model_output, sample, k, *, seed, backend, prev, masks, draws, sizes, finalize):
        if prev is None and not finalize and k > 0 and self._last_k == k - 1:
            prev = self._prev
        single = not isinstance(sample, Mapping)
        field = self._state_field() if single else None
        state = {field: sample} if single else dict(sample)
        as_torch = _any_torch(state, masks, draws)
        if isinstance(model_output, Mapping):
            net: Any = _numpy_dict(model_output)
            as_torch = as_torch or _any_torch(model_output)
        elif callable(model_output):
            net = _adapt_denoiser(self.process, model_output,
                                  _wants_torch(None, model_output, state, masks))
        else:
            as_torch = as_torch or _is_torch(model_output)
            called = self._called_outputs("finalize" if finalize else "step")
            if len(called) != 1:
                raise TypeError(
                    f"sampler `{self.name}`'s step reads {len(called)} network outputs "
                    f"({', '.join(called) or 'none'}): give model_output as a dict by name"
                )
            net = {called[0]: _to_numpy(called[0], model_output)}
        grid = self.grid
        t = float(grid[k])
        out = self.process._p.step(
            self.name,
            _numpy_dict(state),
            net,
            t,
            s=None if finalize else float(grid[k + 1]),
            k=k,
            n=len(self.timesteps),
            r=float(grid[k - 1]) if (k > 0 and not finalize) else None,
            prev=_numpy_dict(prev),
            finalize=finalize,
            params={**self.params, **{k: _to_numpy(k, v) for k, v in self.process_params.items()}},
            seed=seed,
            backend=backend,
            draws=_numpy_dict(draws),
            masks=_numpy_dict(masks),
            sizes=dict(sizes or {}),
        )
        out = _wrap(out, as_torch)
        kept = {name[len("prev."):]: v for name, v in out.items() if name.startswith("prev.")}
        out = {name: v for name, v in out.items() if not name.startswith("prev.")}
        if not finalize:
            self._prev, self._last_k = kept, k
        if single:
            return out[field]
        return out

    def _called_outputs(self, kind: str) -> List[str]:
        entry = self._entry(kind)
        nets = {o for n in self.process.networks() for o in n["outputs"]}
        return [p["name"] for p in entry["inputs"] if p["name"].split("#")[0] in nets]
