"""Every entry and sampler step of the shipped DDPM and DiGress processes equals `diffc eval`'s
`.npy` outputs bit for bit for the same inputs and seed, on the interpreter and the CPU
backend. Entries are read from the process, so entries added to the library are covered."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from conftest import assert_same, cli_error, cli_eval, load, make_input

CASES = [
    # spec, process, sizes, batch, (t, s) inside the domain with s nearer the data
    ("ddpm.diff", "ddpm_linear", {"d": 3}, 5, (500.0, 499.0)),
    ("ddpm.diff", "ddpm_cosine", {"d": 2}, 3, (999.0, 998.0)),
    ("digress.diff", "digress", {"n": 5}, 3, (250.0, 249.0)),
    # a sampler with a final map, continuous time with the data at t = 1
    ("bfn_continuous.diff", "bfn_continuous", {"d": 3}, 2, (0.25, 0.5)),
    # multistep samplers that read the previous step's values (`prev`)
    ("dpm_solver.diff", "vp_linear", {"d": 2}, 2, (0.5, 0.25)),
]


def _entries():
    out = []
    for spec, process, sizes, batch, t in CASES:
        for e in load(spec, process).entries():
            out.append(pytest.param(spec, process, sizes, batch, t, e["name"],
                                    id=f"{process}-{e['name']}"))
    return out


def _inputs(proc, entry, sizes, batch, t, rng):
    """The entry's inputs (no seed, no times) and its times."""
    arrays, times = {}, {}
    for port in entry["inputs"]:
        name = port["name"]
        if name == "seed":
            continue
        if name in (proc.time, "s"):
            times[name] = t[0] if name == proc.time else t[1]
            continue
        arrays[name] = make_input(proc, port, batch, sizes, rng)
    return arrays, times


@pytest.mark.parametrize("backend", ["interp", "cpu"])
@pytest.mark.parametrize("spec,process,sizes,batch,t,entry_name", _entries())
def test_entry_equals_cli(cli, tmp_path, spec, process, sizes, batch, t, entry_name, backend):
    proc = load(spec, process)
    entry = next(e for e in proc.entries() if e["name"] == entry_name)
    rng = np.random.default_rng(zlib.crc32(f"{process}/{entry_name}".encode()))
    seed = 7
    if entry["kind"] in ("step", "finalize"):
        sampler = proc.sampler(entry_name.split(".", 1)[1])
        k = min(3, len(sampler.timesteps) - 2)
        state, nets, prev = {}, {}, {}
        arrays, _ = _inputs(proc, entry, sizes, batch, t, rng)
        for name, a in arrays.items():
            if name.startswith("prev."):
                prev[name[len("prev."):]] = a
            else:
                (nets if "." in name else state)[name] = a
        tk = float(sampler.timesteps[k])
        if entry["kind"] == "step":
            ours = sampler.step(nets, tk, state, seed=seed, backend=backend, prev=prev)
            # What the step keeps for the next one is the CLI's `prev.NAME` outputs.
            ours = {**ours, **{f"prev.{n}": v for n, v in sampler.last_history.items()}}
            assert sorted(sampler.last_history) == sorted(sampler.history)
            sets = {proc.time: tk, "s": float(sampler.grid[k + 1]), "k": k,
                    "n": len(sampler.timesteps), "r": float(sampler.grid[k - 1])}
        else:
            ours = sampler.finalize(nets, state, seed=seed, backend=backend)
            tk = float(sampler.grid[-1])
            sets = {proc.time: tk}
        theirs = cli_eval(cli, tmp_path, spec, process,
                          ["--sampler", sampler.name, "--entry", entry["kind"], "--seed", str(seed),
                           "--backend", backend], arrays, sets)
    else:
        arrays, times = _inputs(proc, entry, sizes, batch, t, rng)
        ours = proc.call(entry_name, {**arrays, **times}, seed=seed, backend=backend, batch=batch,
                         sizes=sizes)
        sets = dict(times, batch=batch, **sizes)
        theirs = cli_eval(cli, tmp_path, spec, process,
                          ["--entry", entry_name, "--seed", str(seed), "--backend", backend],
                          arrays, sets)
    assert_same(ours, theirs)


def test_masked_digress_entries_equal_cli(cli, tmp_path):
    """Node masks reach the entries as the CLI's `--in node=…` does."""
    proc = load("digress.diff", "digress")
    rng = np.random.default_rng(3)
    mask = np.array([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]])
    for name in ("forward", "loss.ce", "log_q"):
        entry = next(e for e in proc.entries() if e["name"] == name)
        arrays, times = _inputs(proc, entry, {"n": 5}, 3, (100.0, 99.0), rng)
        ours = proc.call(name, {**arrays, **times, "node": mask}, seed=11)
        theirs = cli_eval(cli, tmp_path / name, "digress.diff", "digress",
                          ["--entry", name, "--seed", "11"], {**arrays, "node": mask}, times)
        assert_same(ours, theirs)


def test_per_sample_times_equal_cli(cli, tmp_path):
    """One time per sample (`t` of shape [batch]) is the CLI's `--in t=…`."""
    proc = load("ddpm.diff", "ddpm_linear")
    rng = np.random.default_rng(5)
    x0 = rng.standard_normal((6, 4)).astype(np.float32)
    t = np.array([1, 1000, 37, 37, 500, 2], dtype=np.float32)
    ours = proc.forward(x_0=x0, t=t, seed=2)
    theirs = cli_eval(cli, tmp_path, "ddpm.diff", "ddpm_linear", ["--entry", "forward", "--seed", "2"],
                      {"x_0": x0, "t": t}, {})
    assert_same(ours, theirs)


def test_process_params_equal_cli(cli, tmp_path):
    """`params=` is the CLI's `--param NAME=FILE.npy`, for entries and sampler steps."""
    proc = load("digress.diff", "digress")
    rng = np.random.default_rng(8)
    mX = np.array([0.4, 0.3, 0.2, 0.1], np.float32)
    mE = [0.5, 0.25, 0.125, 0.125]
    np.save(tmp_path / "mX.npy", mX)
    np.save(tmp_path / "mE.npy", np.array(mE, np.float32))
    param_args = ["--param", f"mX={tmp_path / 'mX.npy'}", "--param", f"mE={tmp_path / 'mE.npy'}"]
    X = rng.integers(0, 4, (3, 5))
    E = np.triu(rng.integers(0, 4, (3, 5, 5)), 1)
    E = E + E.transpose(0, 2, 1)
    ours = proc.forward(X_0=X, E_0=E, t=300, seed=2, params={"mX": mX, "mE": mE})
    default = proc.forward(X_0=X, E_0=E, t=300, seed=2)
    assert not np.array_equal(ours["X_t"], default["X_t"])
    theirs = cli_eval(cli, tmp_path / "forward", "digress.diff", "digress",
                      ["--entry", "forward", "--seed", "2", *param_args], {"X_0": X, "E_0": E}, {"t": 300})
    assert_same(ours, theirs)

    sampler = proc.sampler("ancestral", mX=mX, mE=mE)
    assert sampler.process_params.keys() == {"mX", "mE"} and sampler.params == {}
    pX = np.full((3, 5, 4), 0.25, np.float32)
    pE = np.full((3, 5, 5, 4), 0.25, np.float32)
    k = 20
    t = float(sampler.timesteps[k])
    ours = sampler.step({"phi.X": pX, "phi.E": pE}, t, {"X": X, "E": E}, seed=3)
    theirs = cli_eval(cli, tmp_path / "step", "digress.diff", "digress",
                      ["--sampler", "ancestral", "--entry", "step", "--seed", "3", *param_args],
                      {"X": X, "E": E, "phi.X": pX, "phi.E": pE},
                      {"t": t, "s": float(sampler.grid[k + 1]), "k": k, "n": len(sampler.timesteps),
                       "r": float(sampler.grid[k - 1])})
    assert_same(ours, theirs)


def test_bad_params_are_the_cli_messages(cli, tmp_path):
    proc = load("digress.diff", "digress")
    X = np.zeros((1, 3), np.int64)
    E = np.zeros((1, 3, 3), np.int64)
    for bad in ([0.5, 0.5, 0.5, 0.5], [0.5, 0.5], [np.nan, 0, 0, 1]):
        with pytest.raises(ValueError) as err:
            proc.forward(X_0=X, E_0=E, t=3, params={"mX": bad})
        np.save(tmp_path / "m.npy", np.array(bad, np.float32))
        theirs = cli_error(cli, tmp_path, "digress.diff", "digress",
                           ["--entry", "forward", "--param", f"mX={tmp_path / 'm.npy'}"],
                           {"X_0": X, "E_0": E}, {"t": 3})
        assert str(err.value) == theirs
    with pytest.raises(ValueError, match="`digress` has no param `mZ` \\(its params: mX, mE\\)"):
        proc.forward(X_0=X, E_0=E, t=3, params={"mZ": 1.0})
    with pytest.raises(TypeError, match="the param `mX` must be a number, a list of numbers or an array, not str"):
        proc.forward(X_0=X, E_0=E, t=3, params={"mX": "uniform"})
