"""`diffc.torch.loss`: diffc's gradients against central finite differences, and
`loss.mean().backward()` reaching a network's parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import diffc.torch as dt
from conftest import load

DDPM = ("ddpm.diff", "ddpm_linear")


def _ddpm_batch(seed=0, batch=6, d=3):
    proc = load(*DDPM)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch, d, generator=g)
    t = 400
    noised = proc.forward(x_0=x0, t=t, seed=seed)
    return proc, {"x_t": noised["x_t"], "t": t, "eps": noised["eps"]}


def _weighted_fd(f, x, w, coords, h):
    """Central differences of sum(w * f(x)) at the given flat coordinates."""
    out = []
    for c in coords:
        xp, xm = x.copy(), x.copy()
        xp.flat[c] += h
        xm.flat[c] -= h
        out.append((np.dot(w, f(xp)) - np.dot(w, f(xm))) / (2 * h))
    return np.array(out)


def test_ddpm_loss_gradient_matches_finite_differences():
    proc, inputs = _ddpm_batch()
    eps_hat = torch.randn(6, 3, generator=torch.Generator().manual_seed(9), requires_grad=True)
    w = torch.rand(6, generator=torch.Generator().manual_seed(2)) + 0.5
    loss = dt.loss(proc, "simple", inputs, eps_hat)
    assert loss.shape == (6,) and loss.requires_grad
    (w * loss).sum().backward()

    np_inputs = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}

    def f(e):
        return proc.loss("simple", {**np_inputs, "eps_hat.x": e.astype(np.float32)})["loss"].astype(np.float64)

    coords = range(18)
    fd = _weighted_fd(f, eps_hat.detach().numpy().astype(np.float64), w.numpy().astype(np.float64), coords, 1e-2)
    np.testing.assert_allclose(eps_hat.grad.numpy().flat[list(coords)], fd, rtol=2e-3, atol=1e-5)


def test_digress_loss_gradient_matches_finite_differences():
    proc = load("digress.diff", "digress")
    rng = np.random.default_rng(4)
    b, n = 2, 4
    X0 = rng.integers(0, 4, (b, n))
    E0 = np.triu(rng.integers(0, 4, (b, n, n)), 1)
    E0 = E0 + E0.transpose(0, 2, 1)
    noised = proc.forward(X_0=X0, E_0=E0, t=100, seed=1)
    inputs = {"X_0": X0, "E_0": E0, "X_t": noised["X_t"], "E_t": noised["E_t"], "t": 100}

    def probs(shape, seed):
        z = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
        return torch.softmax(z, -1)

    pX = probs((b, n, 4), 1).requires_grad_()
    pE = probs((b, n, n, 4), 2)
    pE = ((pE + pE.transpose(1, 2)) / 2).requires_grad_()
    w = torch.tensor([0.7, 1.3])
    loss = dt.loss(proc, "ce", inputs, {"X": pX, "E": pE})
    (w * loss).sum().backward()

    for name, p, other in (("phi.X", pX, ("phi.E", pE)), ("phi.E", pE, ("phi.X", pX))):
        fixed = {**inputs, other[0]: other[1].detach().numpy()}

        def f(v, name=name, fixed=fixed):
            return proc.loss("ce", {**fixed, name: v.astype(np.float32)})["loss"].astype(np.float64)

        x = p.detach().numpy().astype(np.float64)
        coords = list(range(0, x.size, max(1, x.size // 24)))
        fd = _weighted_fd(f, x, w.numpy().astype(np.float64), coords, 2e-3)
        got = p.grad.numpy().flat[coords]
        scale = np.abs(fd).max()
        assert scale > 0
        np.testing.assert_allclose(got, fd, rtol=2e-2, atol=2e-3 * scale)


def test_backward_reaches_the_network_parameters():
    proc, inputs = _ddpm_batch(seed=3, batch=8, d=2)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    tt = torch.full((8, 1), inputs["t"] / 1000.0)

    def net():
        return model(torch.cat([inputs["x_t"], tt], 1))

    dt.loss(proc, "simple", inputs, net()).mean().backward()
    ours = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    # The same loss written in torch: L_simple, the mean over the elements of each sample.
    ((net() - inputs["eps"]) ** 2).mean(1).mean().backward()
    for a, p in zip(ours, model.parameters()):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-7)


def test_a_short_training_run_lowers_the_loss():
    """The loop of docs/training.md: sample_t, forward, net_inputs, the network, the loss."""
    proc = load(*DDPM)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.SiLU(), torch.nn.Linear(64, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    data = torch.tensor([[1.0, 1.0], [-1.0, -1.0]]).repeat(32, 1)
    losses = []
    for step in range(150):
        t = proc.sample_t(batch=len(data), seed=step)["t"]
        noised = proc.forward(x_0=data, t=t, seed=step)
        x_in, t_in = proc.net_inputs("eps_hat", x_t=noised["x_t"], t=t).values()
        eps_hat = model(torch.cat([x_in, t_in[:, None] / 1000.0], 1))
        loss = dt.loss(proc, "simple", {"x_t": noised["x_t"], "t": t, "eps": noised["eps"]}, eps_hat)
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
        losses.append(loss.mean().item())
    assert np.mean(losses[-20:]) < 0.6 * np.mean(losses[:20])


def test_loss_input_errors():
    proc, inputs = _ddpm_batch()
    with pytest.raises(ValueError, match="`ddpm_linear` has no loss `vlb` \\(its losses: simple\\)"):
        dt.loss(proc, "vlb", inputs, torch.zeros(6, 3))
    with pytest.raises(ValueError, match="`loss.simple` needs `eps_hat.x`"):
        dt.loss(proc, "simple", inputs, {"y": torch.zeros(6, 3)})
    with pytest.raises(TypeError, match="`eps_hat.x` must be a torch.Tensor, not ndarray"):
        dt.loss(proc, "simple", inputs, np.zeros((6, 3), np.float32))
    with pytest.raises(TypeError, match="`eps_hat.x` must be float32, not float64"):
        dt.loss(proc, "simple", inputs, torch.zeros(6, 3, dtype=torch.float64))
