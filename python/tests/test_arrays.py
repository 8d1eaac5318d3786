"""Arrays across the boundary: outputs own diffc's buffers (no copy), torch in gives torch out
over the same memory, and dtypes follow the fields."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from conftest import load

DDPM = ("ddpm.diff", "ddpm_linear")


class Recording:
    """Wraps the extension's process to keep the numpy arrays it returned."""

    def __init__(self, inner):
        self.inner = inner
        self.returned = []

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name not in ("run", "step", "sample"):
            return attr

        def call(*args, **kwargs):
            out = attr(*args, **kwargs)
            self.returned.append(out)
            return out

        return call


def test_outputs_are_diffc_buffers_not_copies():
    x0 = np.ones((4, 3), np.float32)
    out = load(*DDPM).forward(x_0=x0, t=500, seed=1)
    for name in ("x_t", "eps"):
        a = out[name]
        # numpy did not allocate the memory: it belongs to the Vec diffc filled, kept alive by
        # the container numpy holds as the array's base.
        assert not a.flags.owndata
        assert type(a.base).__name__ == "PySliceContainer"
        assert a.flags.c_contiguous and a.flags.writeable
        assert a.dtype == np.float32 and a.shape == (4, 3)
    assert not np.shares_memory(out["x_t"], x0)


def test_torch_outputs_share_the_numpy_buffers():
    proc = load(*DDPM)
    recording = Recording(proc._p)
    proc._p = recording
    try:
        x0 = torch.randn(4, 3)
        out = proc.forward(x_0=x0, t=torch.tensor(500.0), seed=1)
    finally:
        proc._p = recording.inner
    raw = recording.returned[-1]
    for name in ("x_t", "eps"):
        assert isinstance(out[name], torch.Tensor) and out[name].dtype == torch.float32
        assert out[name].data_ptr() == raw[name].__array_interface__["data"][0]
        assert type(raw[name].base).__name__ == "PySliceContainer"


def test_torch_and_numpy_inputs_give_the_same_bits():
    proc = load(*DDPM)
    x0 = np.random.default_rng(1).standard_normal((5, 2)).astype(np.float32)
    a = proc.forward(x_0=x0, t=17, seed=4)
    b = proc.forward(x_0=torch.from_numpy(x0).requires_grad_(), t=17, seed=4)
    assert isinstance(b["x_t"], torch.Tensor)
    assert np.array_equal(a["x_t"], b["x_t"].numpy())
    assert np.array_equal(a["eps"], b["eps"].numpy())


def test_class_and_bool_dtypes():
    digress = load("digress.diff", "digress")
    X = torch.zeros(2, 4, dtype=torch.int64)
    E = torch.zeros(2, 4, 4, dtype=torch.int64)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    out = digress.forward(X_0=X, E_0=E, t=300, seed=3, node=mask)
    assert out["X_t"].dtype == torch.int64 and out["E_t"].dtype == torch.int64
    assert torch.equal(out["E_t"], out["E_t"].transpose(1, 2))
    assert int(out["X_t"][1, 2:].abs().sum()) == 0  # padded nodes are empty
    # Any integer dtype holds classes.
    out8 = digress.forward(X_0=X.numpy().astype(np.uint8), E_0=E.numpy().astype(np.int32), t=300,
                           seed=3, node=mask.numpy())
    assert np.array_equal(out8["E_t"], out["E_t"].numpy())


def test_the_gil_is_released_while_an_entry_runs():
    proc = load(*DDPM)
    x0 = np.ones((400_000, 4), np.float32)
    done = {}

    def work():
        start = time.perf_counter()
        proc.forward(x_0=x0, t=500, seed=1)
        done["seconds"] = time.perf_counter() - start

    worker = threading.Thread(target=work)
    worker.start()
    ticks = 0
    while worker.is_alive():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    # With the GIL held for the whole call, this loop could not run while it lasts; released,
    # it ticks about once a millisecond (once per 20 ms is asked, for a loaded machine).
    assert done["seconds"] > 0.1
    assert ticks >= max(5, done["seconds"] / 0.02)


def test_a_cpu_step_writes_into_arrays_earlier_steps_handed_back():
    # A sampling loop on the CPU: each step's result is an array diffc wrote (its base is the
    # runner's `Recycled` memory); once the loop drops a state, a later step writes there.
    sampler = load(*DDPM).sampler("ancestral")
    rng = np.random.default_rng(0)
    d = 1 << 17
    x = rng.standard_normal((2, d), dtype=np.float32)
    eps = rng.standard_normal((2, d), dtype=np.float32)
    seen = []
    for t in sampler.timesteps[:6]:
        x = sampler.step(eps, t, x, seed=3, backend="cpu")
        assert type(x.base).__name__ == "Recycled" and not x.flags.owndata
        assert x.flags.c_contiguous and x.flags.writeable and x.dtype == np.float32
        seen.append(x.__array_interface__["data"][0])
    # Two arrays serve the whole loop after its first steps.
    assert len(set(seen[2:])) == 2, seen
    # The values are those of the interpreter's loop from the same state.
    y = rng.standard_normal((2, d), dtype=np.float32)
    a, b = y, y
    for t in sampler.timesteps[:3]:
        a = sampler.step(eps, t, a, seed=3, backend="cpu")
        b = sampler.step(eps, t, b, seed=3, backend="interp")
    np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6)


def test_a_cpu_step_on_graphs_equals_the_interpreter():
    # Classes (converted to the library's u32), a symmetric field, network outputs that are
    # not symmetric (the step reads their upper triangle): the lean step is the interpreter's.
    proc = load("digress.diff", "digress")
    sampler = proc.sampler("ancestral")
    rng = np.random.default_rng(1)
    n = 5
    X = rng.integers(0, 4, (2, n))
    E = np.triu(rng.integers(0, 4, (2, n, n)), 1)
    E = E + E.transpose(0, 2, 1)
    pX = rng.random((2, n, 4), dtype=np.float32) + 0.1
    pE = rng.random((2, n, n, 4), dtype=np.float32) + 0.1
    probs = {"phi.X": pX / pX.sum(-1, keepdims=True), "phi.E": pE / pE.sum(-1, keepdims=True)}
    t = sampler.timesteps[3]
    out = sampler.step(probs, t, {"X": X, "E": E}, seed=1, backend="cpu")
    want = sampler.step(probs, t, {"X": X, "E": E}, seed=1, backend="interp")
    for name in ("X", "E"):
        assert out[name].dtype == np.int64
        np.testing.assert_array_equal(out[name], want[name])


def _address(a) -> int:
    if isinstance(a, torch.Tensor):
        return a.data_ptr()
    return a.__array_interface__["data"][0]


def test_cpu_entries_read_their_inputs_where_they_lie():
    # A training call on the CPU: the batch, the network's output and the noise are read in
    # place (the runner reports the addresses it read), numpy or torch alike.
    proc = load(*DDPM)
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal((6, 50), dtype=np.float32)
    t = np.array([10, 10, 500, 999, 999, 1], np.float32)
    out = proc.forward(x_0=x0, t=t, seed=4, backend="cpu")
    assert dict(proc._p._last_reads("forward")) == {"x_0": _address(x0)}
    want = proc.forward(x_0=x0, t=t, seed=4, backend="interp")
    for name in ("x_t", "eps"):
        assert type(out[name].base).__name__ == "Recycled"
        np.testing.assert_allclose(out[name], want[name], rtol=1e-5, atol=1e-5)
    inputs = {"x_t": torch.from_numpy(out["x_t"]), "eps_hat.x": torch.randn(6, 50),
              "eps": torch.from_numpy(out["eps"]), "t": torch.from_numpy(t)}
    loss = proc.loss("simple", inputs, backend="cpu")
    reads = dict(proc._p._last_reads("loss.simple"))
    # The loss reads the network's output and the noise (`x_t` is given, not read).
    assert reads == {k: _address(inputs[k]) for k in ("eps_hat.x", "eps")}
    assert isinstance(loss["loss"], torch.Tensor) and loss["loss"].shape == (6,)
    # A strided view is not C-contiguous: it is converted (documented), and the copy is read.
    strided = np.ascontiguousarray(np.repeat(x0, 2, axis=1))[:, ::2]
    out2 = proc.forward(x_0=strided, t=t, seed=4, backend="cpu")
    assert dict(proc._p._last_reads("forward"))["x_0"] != _address(strided)
    np.testing.assert_array_equal(out2["x_t"], out["x_t"])


def test_cpu_step_with_a_callable_reads_the_state_in_place():
    """A step driven by a network callable runs lean too: the state is read where it lies,
    the callable gets the step's own buffers read-only, and the result equals the
    interpreter's step."""
    proc = load(*DDPM)
    sampler = proc.sampler("ddim", steps=10, eta=1.0)
    x = np.random.default_rng(5).standard_normal((4, 300), dtype=np.float32)
    seen = []

    def eps(x_t, t):
        seen.append((x_t.flags.writeable, _address(x_t)))
        return (np.float32(0.5) * x_t).astype(np.float32)

    t = sampler.timesteps[3]
    y = sampler.step(eps, t, x, seed=9, backend="cpu")
    assert dict(proc._p._last_reads("ddim"))["x"] == _address(x)
    assert seen == [(False, _address(x))]
    assert type(y.base).__name__ == "Recycled"
    want = sampler.step(eps, t, x, seed=9, backend="interp")
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    # An exception in the callable propagates with its own type, and the runner stays usable.

    def broken(x_t, t):
        raise KeyError("no such layer")

    try:
        sampler.step(broken, t, x, seed=9, backend="cpu")
        raise AssertionError("the callable's exception was swallowed")
    except KeyError as e:
        assert "no such layer" in str(e)
    np.testing.assert_array_equal(sampler.step(eps, t, x, seed=9, backend="cpu"), y)
    # A whole run hands its first network call the given start itself, read-only.
    seen.clear()
    proc.sample(sampler, eps, count=4, state={"x": x}, seed=9, backend="cpu")
    assert seen[0] == (False, _address(x)) and len(seen) == len(sampler.timesteps)
    assert all(at != _address(x) for _, at in seen[1:])
