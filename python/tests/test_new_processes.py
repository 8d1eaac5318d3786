"""Flow matching, EDM and MDLM through the package: what a training loop feeds the network
(`net_inputs`), each loss and its gradient against the papers' formulas written in torch, and a
sampling loop driven by a Python callable."""

from __future__ import annotations

import math

import numpy as np
import torch

import diffc.torch as dt
from conftest import load


def _batch(seed: int, shape):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def test_flow_matching_loss_is_the_velocity_regression():
    # MATH.md §1.6b: x_t = (1 - t) x_0 + t eps, loss mean((v - (eps - x_0))^2), t ~ U[0, 1].
    proc = load("flow_matching.diff", "flow_matching")
    x0 = _batch(0, (5, 3))
    t = proc.sample_t(batch=5, seed=3)["t"]
    t = torch.as_tensor(np.asarray(t))
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    noised = proc.forward(x_0=x0, t=t, seed=3)
    x_t, eps = torch.as_tensor(np.asarray(noised["x_t"])), torch.as_tensor(np.asarray(noised["eps"]))
    torch.testing.assert_close(x_t, (1 - t)[:, None] * x0 + t[:, None] * eps, rtol=1e-5, atol=1e-6)
    x_in, t_in = proc.net_inputs("v_hat", x_t=x_t, t=t).values()
    torch.testing.assert_close(torch.as_tensor(np.asarray(x_in)), x_t)
    v = _batch(1, (5, 3)).requires_grad_(True)
    loss = dt.loss(proc, "cfm", {"x_0": x0, "x_t": x_t, "t": t, "eps": eps}, v)
    ref = v.detach().clone().requires_grad_(True)
    want = ((ref - (eps - x0)) ** 2).mean(dim=1)
    torch.testing.assert_close(loss, want.detach(), rtol=1e-5, atol=1e-6)
    loss.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(v.grad, ref.grad, rtol=1e-5, atol=1e-6)


def test_edm_network_inputs_and_loss_are_the_papers():
    # MATH.md §1.6: F is called with c_in(σ) x and ¼ ln σ; D = c_skip x + c_out F;
    # loss λ(σ) mean((D - x_0)^2), λ = (σ² + σ_d²)/(σ σ_d)².
    proc = load("edm.diff", "edm")
    sd = 0.5
    x0 = _batch(2, (4, 2))
    sigma = torch.tensor([0.01, 0.3, 2.0, 40.0])
    noised = proc.forward(x_0=x0, t=sigma, seed=5)
    x_t = torch.as_tensor(np.asarray(noised["x_t"]))
    x_in, noise_in = proc.net_inputs("F", x_t=x_t, t=sigma).values()
    c_in = 1 / torch.sqrt(sigma**2 + sd**2)
    torch.testing.assert_close(torch.as_tensor(np.asarray(x_in)), c_in[:, None] * x_t, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        torch.as_tensor(np.asarray(noise_in)).reshape(-1), 0.25 * torch.log(sigma), rtol=1e-5, atol=1e-6
    )
    f = _batch(3, (4, 2)).requires_grad_(True)
    loss = dt.loss(proc, "edm", {"x_0": x0, "x_t": x_t, "t": sigma}, f)
    ref = f.detach().clone().requires_grad_(True)
    c_skip = sd**2 / (sigma**2 + sd**2)
    c_out = sigma * sd / torch.sqrt(sigma**2 + sd**2)
    d = c_skip[:, None] * x_t + c_out[:, None] * ref
    lam = (sigma**2 + sd**2) / (sigma * sd) ** 2
    want = lam * ((d - x0) ** 2).mean(dim=1)
    torch.testing.assert_close(loss, want.detach(), rtol=1e-4, atol=1e-6)
    loss.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(f.grad, ref.grad, rtol=1e-4, atol=1e-6)
    # The training times: ln σ ~ N(-1.2, 1.2²), clamped to [0, 80].
    t = np.asarray(proc.call("sample_t.edm", seed=11, batch=20000)["t"], dtype=np.float64)
    logs = np.log(t)
    assert abs(logs.mean() + 1.2) < 5 * 1.2 / math.sqrt(len(t))
    assert abs(logs.std() - 1.2) < 0.05


def test_mdlm_samples_with_a_python_network_unmask_every_token():
    # A network that never predicts the mask (SUBS): the sampler ends with no [MASK] left,
    # and every sequence uses only the classes the network gives probability.
    proc = load("mdlm.diff", "mdlm")

    def net(x_t, t):
        x = torch.as_tensor(np.asarray(x_t))
        p = torch.zeros(*x.shape, 28)
        p[..., 3] = 0.5
        p[..., 7] = 0.5
        return p

    out = proc.sample("ancestral", net, count=6, sizes={"d": 9}, steps=20, seed=4)["x"]
    x = np.asarray(out)
    assert x.shape == (6, 9)
    assert set(np.unique(x)) <= {3, 7}
