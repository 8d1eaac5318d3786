"""The GPU checks of test_gpu.py, run in a process of their own: Mesa's lavapipe links its own
LLVM, and PyTorch's triton, loaded later into the same process (as torch.optim does), crashes
on it."""

from __future__ import annotations

import sys

import numpy as np

import diffc
from conftest import SPECS


def entries():
    proc = diffc.load(SPECS / "ddpm.diff", process="ddpm_linear")
    x0 = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    t = np.array([1, 2, 500, 500, 999, 1000], np.float32)
    gpu = proc.forward(x_0=x0, t=t, seed=3, backend="gpu")
    ref = proc.forward(x_0=x0, t=t, seed=3, backend="interp")
    assert np.array_equal(gpu["eps"], ref["eps"])
    np.testing.assert_allclose(gpu["x_t"], ref["x_t"], rtol=0, atol=2e-5)

    digress = diffc.load(SPECS / "digress.diff", process="digress")
    X = np.random.default_rng(1).integers(0, 4, (3, 4))
    E = np.zeros((3, 4, 4), np.int64)
    gpu = digress.forward(X_0=X, E_0=E, t=200, seed=5, backend="gpu")
    ref = digress.forward(X_0=X, E_0=E, t=200, seed=5, backend="interp")
    assert sorted(gpu) == sorted(ref)
    for k in ref:
        if ref[k].dtype == np.float32:
            np.testing.assert_allclose(gpu[k], ref[k], rtol=0, atol=2e-5)
        else:
            assert np.array_equal(gpu[k], ref[k]), k


def sample():
    proc = diffc.load(SPECS / "ddpm.diff", process="ddpm_linear")

    def eps(x, t):
        return (np.float32(0.2) * x).astype(np.float32)

    x_T = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    gpu = proc.sample("ddim", eps, count=4, state={"x": x_T}, steps=5, eta=1.0, seed=1, backend="gpu")
    ref = proc.sample("ddim", eps, count=4, state={"x": x_T}, steps=5, eta=1.0, seed=1, backend="interp")
    np.testing.assert_allclose(gpu["x"], ref["x"], rtol=0, atol=1e-4)
    # From the prior, drawn on the device (a run with a network callable keeps its state there).
    gpu = proc.sample("ddim", eps, count=4, sizes={"d": 3}, steps=5, eta=1.0, seed=2, backend="gpu")
    ref = proc.sample("ddim", eps, count=4, sizes={"d": 3}, steps=5, eta=1.0, seed=2, backend="interp")
    np.testing.assert_allclose(gpu["x"], ref["x"], rtol=0, atol=1e-4)


if __name__ == "__main__":
    globals()[sys.argv[1]]()
    print("ok")
