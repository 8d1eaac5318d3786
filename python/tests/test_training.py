"""What a training loop uses: one time per sample (each item computed as a call with its own
time computes it, noise included), on numpy and torch inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import load

DDPM = ("ddpm.diff", "ddpm_linear")


def _rows_of_scalar_calls(fn, t):
    """Row b of a call with the scalar time t[b], for every b, stacked."""
    calls = [fn(float(tb)) for tb in t]
    return {k: np.stack([np.asarray(c[k])[b] for b, c in enumerate(calls)]) for k in calls[0]}


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_forward_with_one_time_per_sample(backend):
    proc = load(*DDPM)
    x0 = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    t = np.array([1000, 3, 3, 500, 1], dtype=np.float32)
    out = proc.forward(x_0=x0, t=t, seed=9, backend=backend)
    ref = _rows_of_scalar_calls(lambda tb: proc.forward(x_0=x0, t=tb, seed=9, backend=backend), t)
    for k in ("x_t", "eps"):
        assert np.array_equal(out[k], ref[k]), k


def test_loss_and_log_q_with_one_time_per_sample():
    proc = load(*DDPM)
    rng = np.random.default_rng(1)
    x0, xt, e, eh = (rng.standard_normal((4, 2)).astype(np.float32) for _ in range(4))
    t = np.array([10, 900, 10, 444], dtype=np.float32)
    lq = proc.log_q(x_0=x0, x_t=xt, t=t)["log_q"]
    ref = _rows_of_scalar_calls(lambda tb: proc.log_q(x_0=x0, x_t=xt, t=tb), t)
    assert np.array_equal(lq, ref["log_q"])
    loss = proc.loss("simple", {"x_t": xt, "t": t, "eps": e, "eps_hat.x": eh})
    ref = _rows_of_scalar_calls(lambda tb: proc.loss("simple", {"x_t": xt, "t": tb, "eps": e, "eps_hat.x": eh}), t)
    assert np.array_equal(loss["loss"], ref["loss"])
    assert np.array_equal(loss["d_eps_hat.x"], ref["d_eps_hat.x"])


def test_digress_forward_with_times_from_torch_randint():
    proc = load("digress.diff", "digress")
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 4, (6, 5), generator=g)
    E = torch.triu(torch.randint(0, 4, (6, 5, 5), generator=g), 1)
    E = E + E.transpose(1, 2)
    t = torch.randint(1, 502, (6,), generator=g)  # int64 times are exact in f32
    out = proc.forward(X_0=X, E_0=E, t=t, seed=4)
    assert isinstance(out["X_t"], torch.Tensor) and out["X_t"].shape == (6, 5)
    ref = _rows_of_scalar_calls(lambda tb: proc.forward(X_0=X, E_0=E, t=tb, seed=4), t.numpy())
    assert np.array_equal(out["E_t"].numpy(), ref["E_t"])
    assert np.array_equal(out["X_t"].numpy(), ref["X_t"])


def test_per_sample_time_errors_are_the_library_messages():
    proc = load(*DDPM)
    x0 = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="`t` has shape \\[2\\]: give one time, or one per sample \\(shape \\[3\\]\\)"):
        proc.forward(x_0=x0, t=np.array([1, 2], np.float32))
    with pytest.raises(ValueError, match="`t` = 0"):
        proc.forward(x_0=x0, t=np.array([1, 0, 2], np.float32))
