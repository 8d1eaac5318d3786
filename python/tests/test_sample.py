"""Samplers from Python: a diffusers-shaped `Sampler.step` loop, `Process.sample` calling a
Python denoiser (a `torch.nn.Module` included), and a failing denoiser's exception."""

from __future__ import annotations

import traceback

import numpy as np
import pytest
import torch

from conftest import load

DDPM = ("ddpm.diff", "ddpm_linear")


def toy_eps(x, t):
    """A deterministic stand-in for a network, in float32."""
    x = np.asarray(x, dtype=np.float32)
    return (np.float32(0.3) * x + np.float32(np.sin(np.float32(t) / np.float32(300.0)))).astype(np.float32)


def test_grid_and_timesteps():
    s = load(*DDPM).sampler("ddim", steps=10)
    assert list(s.timesteps) == [1000.0, 900.0, 800.0, 700.0, 600.0, 500.0, 400.0, 300.0, 200.0, 100.0]
    assert list(s.grid) == list(s.timesteps) + [0.0]
    assert s.params == {"steps": 10.0}
    assert len(load(*DDPM).sampler("ancestral").timesteps) == 1000


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_step_loop_equals_sample(backend):
    """Stepping by hand with the same seed reproduces the sampler's own run bit for bit."""
    proc = load(*DDPM)
    sampler = proc.sampler("ddim", steps=8, eta=1.0)
    x_T = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    x = x_T
    for t in sampler.timesteps:
        x = sampler.step(toy_eps(x, t), t, x, seed=42, backend=backend)
    calls = []

    def den(x, t):
        calls.append(float(t))
        assert t.shape == () and t.dtype == np.float32
        return toy_eps(x, t)

    out = proc.sample(sampler, den, count=5, state={"x": x_T}, seed=42, backend=backend)
    assert calls == list(sampler.timesteps)
    assert np.array_equal(out["x"], x)
    # A step with a denoiser callable in place of its output is the same step.
    y = sampler.step(toy_eps, sampler.timesteps[0], x_T, seed=42, backend=backend)
    z = sampler.step(toy_eps(x_T, sampler.timesteps[0]), sampler.timesteps[0], x_T, seed=42, backend=backend)
    assert np.array_equal(y, z)


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_multistep_loop_keeps_its_history(backend):
    """DPM-Solver++(2M) reads the previous step's x̂₀: stepping in order, the sampler keeps it
    itself and the loop equals the sampler's own run bit for bit."""
    proc = load("dpm_solver.diff", "vp_linear")
    sampler = proc.sampler("dpmpp_2m", steps=6)
    assert sampler.history
    x_T = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)

    def eps(x, t):
        return (np.float32(0.3) * x + np.float32(np.sin(np.float32(t) * np.float32(3.0)))).astype(np.float32)

    x = x_T
    for t in sampler.timesteps:
        x = sampler.step(eps(x, t), t, x, seed=3, backend=backend)
        assert sorted(sampler.last_history) == sorted(sampler.history)
    out = proc.sample(sampler, eps, count=4, state={"x": x_T}, seed=3, backend=backend)
    assert np.array_equal(out["x"], x)
    # The history given explicitly is the same; none at all is refused at the second step.
    y = sampler.step(eps(x_T, sampler.timesteps[0]), sampler.timesteps[0], x_T, seed=3, backend=backend)
    kept = sampler.last_history
    t1 = sampler.timesteps[1]
    a = sampler.step(eps(y, t1), t1, y, seed=3, backend=backend)
    b = sampler.step(eps(y, t1), t1, y, seed=3, backend=backend, prev=kept)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="prev"):
        sampler.step(eps(y, t1), t1, y, seed=3, backend=backend, prev={})


def test_module_denoiser_drives_sample():
    proc = load(*DDPM)

    class Eps(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.SiLU(), torch.nn.Linear(32, 2))
            self.calls = 0

        def forward(self, x, t):
            self.calls += 1
            assert isinstance(x, torch.Tensor) and x.shape == (16, 2) and not torch.is_grad_enabled()
            tt = (t / 1000.0).expand(x.shape[0], 1)
            return self.net(torch.cat([x, tt], 1))

    torch.manual_seed(0)
    model = Eps()
    out = proc.sample("ddim", model, count=16, sizes={"d": 2}, steps=10, seed=1)
    assert model.calls == 10
    assert isinstance(out["x"], torch.Tensor) and out["x"].shape == (16, 2)
    assert torch.isfinite(out["x"]).all()
    again = proc.sample("ddim", model, count=16, sizes={"d": 2}, steps=10, seed=1, backend="interp")
    assert torch.equal(out["x"], again["x"])


def test_digress_sample_with_masks_and_a_dict_of_denoisers():
    proc = load("digress.diff", "digress")
    n = 6
    mask = np.zeros((4, n), bool)
    for i, k in enumerate([6, 3, 5, 2]):
        mask[i, :k] = True

    def phi(X, E, t):
        assert X.dtype == np.int64 and E.shape == (4, n, n) and t.shape == ()
        pX = np.full(X.shape + (4,), 0.25, np.float32)
        pE = np.zeros(E.shape + (4,), np.float32)
        pE[..., 0] = 0.7
        pE[..., 1] = 0.3
        return {"X": pX, "E": pE}

    out = proc.sample("ancestral", {"phi": phi}, count=4, masks={"node": mask}, seed=5)
    E, X = out["E"], out["X"]
    assert E.shape == (4, n, n) and X.shape == (4, n)
    assert np.array_equal(E, E.transpose(0, 2, 1))
    assert (np.diagonal(E, axis1=1, axis2=2) == 0).all()
    assert (E[~mask] == 0).all() and (X[~mask] == 0).all()
    assert E[mask[:, :, None] & mask[:, None, :]].max() >= 1


class Boom(RuntimeError):
    pass


def failing_denoiser(x, t):
    if float(t) < 800:
        raise Boom(f"no prediction at t = {float(t)}")
    return toy_eps(x, t)


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_a_failing_denoiser_raises_its_own_exception(backend):
    proc = load(*DDPM)
    with pytest.raises(Boom, match="no prediction at t = 700.0") as err:
        proc.sample("ddim", failing_denoiser, count=3, sizes={"d": 2}, steps=10, seed=0, backend=backend)
    frames = [f.name for f in traceback.extract_tb(err.value.__traceback__)]
    assert "failing_denoiser" in frames
    # The process is still usable afterwards.
    out = proc.sample("ddim", toy_eps, count=3, sizes={"d": 2}, steps=10, seed=0, backend=backend)
    assert np.isfinite(out["x"]).all()


def test_denoiser_output_errors_are_the_library_messages():
    proc = load(*DDPM)
    with pytest.raises(ValueError, match="the denoiser's `eps_hat.x` has shape \\[3, 3\\], expected \\[3, 2\\]"):
        proc.sample("ddim", lambda x, t: np.zeros((3, 3), np.float32), count=3, sizes={"d": 2}, steps=2)
    with pytest.raises(ValueError, match="the denoiser returned 2 outputs for `eps_hat`, which has 1"):
        proc.sample("ddim", lambda x, t: (x, x), count=3, sizes={"d": 2}, steps=2)
    with pytest.raises(TypeError, match="`eps_hat.x` must be float32, not float64"):
        proc.sample("ddim", lambda x, t: x.astype(np.float64), count=3, sizes={"d": 2}, steps=2)
    with pytest.raises(ValueError, match="`eps_hat.x` became NaN at flat index 0"):
        proc.sample("ddim", lambda x, t: x * np.float32("nan"), count=3, sizes={"d": 2}, steps=2)


@pytest.mark.parametrize("backend", ["interp", "cpu"])
def test_a_loop_with_its_final_map_equals_sample(backend):
    """NVDiff's final map draws the graph: stepping by hand and then calling `finalize`
    draws it as the sampler's own run does (on the run's last step word), bit for bit."""
    proc = load("nvdiff.diff", "nvdiff")
    sampler = proc.sampler("reverse_sde", steps=5)
    z_T = np.random.default_rng(5).standard_normal((3, 6, 2)).astype(np.float32)

    def score(z, t):
        return (np.float32(-0.5) * z + np.float32(np.cos(np.float32(t)))).astype(np.float32)

    z = z_T
    for t in sampler.timesteps:
        z = sampler.step(score(z, t), t, {"z": z}, seed=8, backend=backend)["z"]
    A = sampler.finalize({}, {"z": z}, seed=8, backend=backend)["A"]
    out = proc.sample(sampler, score, count=3, state={"z": z_T}, seed=8, backend=backend)
    assert np.array_equal(out["z"], z)
    assert np.array_equal(out["A"], A)
    assert A.any() and not A.all()


def test_a_cpu_sample_lends_its_buffers_and_reads_the_denoisers_outputs_in_place():
    # The whole run on the CPU: a numpy denoiser gets the run's own buffers, read-only (no
    # copy); the float32 arrays it returns are read where they lie (the runner reports the
    # addresses it read).
    proc = load(*DDPM)
    got, returned = [], []

    def den(x, t):
        got.append(x)
        out = toy_eps(x, t)
        returned.append(out)  # kept, so that each output has an address of its own
        return out

    out = proc.sample("ddim", den, count=4, sizes={"d": 3}, steps=5, seed=2, backend="cpu")
    for x in got:
        assert type(x.base).__name__ == "SharedReals" and not x.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        got[0][0, 0] = 1.0
    reads = [at for name, at in proc._p._last_reads("ddim") if name == "eps_hat.x"]
    assert reads == [o.__array_interface__["data"][0] for o in returned] and len(reads) == 5
    want = proc.sample("ddim", den, count=4, sizes={"d": 3}, steps=5, seed=2, backend="interp")
    np.testing.assert_allclose(out["x"], want["x"], rtol=1e-5, atol=1e-5)
    # A torch module gets writable tensors over copies (PyTorch has no read-only tensors).
    seen = []

    class Net(torch.nn.Module):
        def forward(self, x, t):
            seen.append(x)
            return 0.3 * x

    proc.sample("ddim", Net(), count=4, sizes={"d": 3}, steps=2, seed=2, backend="cpu")
    assert all(isinstance(x, torch.Tensor) for x in seen)


def test_a_cpu_sample_with_an_init_block_equals_the_interpreter():
    # BFN-Solver++ starts from its `init` block, which the CPU run executes from its call
    # sequence too; the denoiser's outputs are read in place at every call.
    proc = load("bfn_continuous.diff", "bfn_continuous")
    returned = []

    def eps(mu, t):
        out = (np.float32(0.5) * mu + np.float32(0.1) * np.float32(t)).astype(np.float32)
        returned.append(out)
        return out

    out = proc.sample("bfn_solver_pp1", eps, count=3, sizes={"d": 4}, seed=4, backend="cpu")
    reads = [at for name, at in proc._p._last_reads("bfn_solver_pp1") if name == "eps_net.x"]
    assert reads == [o.__array_interface__["data"][0] for o in returned] and len(reads) >= 6
    want = proc.sample("bfn_solver_pp1", eps, count=3, sizes={"d": 4}, seed=4, backend="interp")
    assert sorted(out) == sorted(want)
    for name in out:
        np.testing.assert_allclose(out[name], want[name], rtol=1e-5, atol=1e-5)
