"""The training entries `sample_t` (the loss's time distribution) and `net_inputs.NET` (what
the network is called with), reached by name like every other entry."""

from __future__ import annotations

import numpy as np

from conftest import load

DDPM = ("ddpm.diff", "ddpm_linear")


def test_the_training_entries_are_listed():
    for spec, process, net in (("ddpm.diff", "ddpm_linear", "eps_hat"), ("digress.diff", "digress", "phi")):
        names = [e["name"] for e in load(spec, process).entries()]
        assert "sample_t" in names and f"net_inputs.{net}" in names, names


def test_sample_t_draws_times_of_the_domain():
    proc = load(*DDPM)
    out = proc.sample_t(batch=4096, seed=1)
    (t,) = out.values()
    assert t.shape == (4096,) and t.dtype == np.float32
    assert t.min() >= 1 and t.max() <= 1000 and np.array_equal(t, np.round(t))
    assert len(np.unique(t)) > 900  # t ~ U{1..1000}
    again = proc.sample_t(batch=4096, seed=1)
    other = proc.sample_t(batch=4096, seed=2)
    assert np.array_equal(next(iter(again.values())), t)
    assert not np.array_equal(next(iter(other.values())), t)


def test_net_inputs_are_what_a_sampler_passes_the_network():
    proc = load("digress.diff", "digress")
    rng = np.random.default_rng(0)
    X = rng.integers(0, 4, (3, 5))
    E = np.triu(rng.integers(0, 4, (3, 5, 5)), 1)
    E = E + E.transpose(0, 2, 1)
    sampler = proc.sampler("ancestral")
    k = 10
    t = float(sampler.timesteps[k])
    seen = []

    def phi(*inputs):
        seen.append([np.array(a) for a in inputs])
        return {"X": np.full(X.shape + (4,), 0.25, np.float32),
                "E": np.full(E.shape + (4,), 0.25, np.float32)}

    sampler.step(phi, t, {"X": X, "E": E}, seed=0)
    (called,) = seen
    ours = list(proc.net_inputs("phi", X_t=X, E_t=E, t=t).values())
    assert len(ours) == len(called)
    for a, b in zip(ours, called):
        assert np.array_equal(np.broadcast_to(b, a.shape) if a.ndim > b.ndim else b, a)
