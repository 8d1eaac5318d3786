"""Shared helpers: the repository's specs, the `diffc` CLI, and inputs made from an entry's ports.

The CLI is `$DIFFC_CLI`, else `target/release/diffc`, else `target/debug/diffc` of the
repository; `.ci/run` builds it before pytest runs. A missing CLI fails the tests that need it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict, Mapping, Optional

import numpy as np
import pytest

import diffc

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"


def cli_path() -> Path:
    env = os.environ.get("DIFFC_CLI")
    if env:
        return Path(env).resolve()
    for profile in ("release", "debug"):
        p = REPO / "target" / profile / "diffc"
        if p.exists():
            return p
    return REPO / "target" / "release" / "diffc"


@pytest.fixture(scope="session")
def cli() -> Path:
    p = cli_path()
    assert p.exists(), f"the diffc CLI is not built at {p}: run `cargo build --release` (or set DIFFC_CLI)"
    return p


def run_cli(cli: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(cli), "--color", "never", *args], capture_output=True, text=True)


def cli_eval(
    cli: Path,
    tmp: Path,
    spec: str,
    process: str,
    args: list,
    arrays: Mapping[str, np.ndarray],
    sets: Mapping[str, float],
) -> Dict[str, np.ndarray]:
    """`diffc eval` with each array written to an `.npy` file; its outputs read back."""
    tmp.mkdir(parents=True, exist_ok=True)
    cmd = ["eval", str(SPECS / spec), "--process", process, *args]
    for name, a in arrays.items():
        path = tmp / f"in_{name.replace('#', '_')}.npy"
        np.save(path, a)
        cmd += ["--in", f"{name}={path}"]
    for name, v in sets.items():
        cmd += ["--set", f"{name}={v!r}" if isinstance(v, float) else f"{name}={v}"]
    out = tmp / "out"
    cmd += ["--out", str(out)]
    r = run_cli(cli, *cmd)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return {p.stem: np.load(p) for p in sorted(out.glob("*.npy"))}


def cli_error(cli: Path, tmp: Path, spec: str, process: str, args: list,
              arrays: Mapping[str, np.ndarray], sets: Mapping[str, float]) -> str:
    """The message of a failing `diffc eval`, without its `error: ` prefix."""
    tmp.mkdir(parents=True, exist_ok=True)
    cmd = ["eval", str(SPECS / spec), "--process", process, *args]
    for name, a in arrays.items():
        path = tmp / f"in_{name}.npy"
        np.save(path, a)
        cmd += ["--in", f"{name}={path}"]
    for name, v in sets.items():
        cmd += ["--set", f"{name}={v}"]
    r = run_cli(cli, *cmd)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: "), r.stderr
    return r.stderr[len("error: "):].strip()


_loaded: Dict[tuple, diffc.Process] = {}


def load(spec: str, process: Optional[str] = None) -> diffc.Process:
    key = (spec, process)
    if key not in _loaded:
        _loaded[key] = diffc.load(SPECS / spec, process=process)
    return _loaded[key]


def field_of(proc: diffc.Process, port: str) -> Optional[dict]:
    """The field a port carries: `x_0`, `X_t`, `x`, `phi.X`, `d_phi.X` → its field."""
    fields = {f["name"]: f for f in proc.fields()}
    name = port.split("#")[0]
    if "." in name and not name.startswith("prev."):
        return fields.get(name.split(".", 1)[1])
    if name in fields:
        return fields[name]
    # `posterior_soft`'s `X_0_probs` carries `X`.
    if name.endswith("_probs"):
        name = name[: -len("_probs")]
    base = name.rsplit("_", 1)[0]
    return fields.get(base)


def shape_of(port: dict, batch: int, sizes: Mapping[str, int]) -> tuple:
    dims = []
    for d in port["shape"]:
        if d == "batch":
            dims.append(batch)
        elif d.isdigit():
            dims.append(int(d))
        else:
            dims.append(sizes[d])
    return tuple(dims)


def symmetric(a: np.ndarray, diagonal) -> np.ndarray:
    """`a` mirrored from its upper triangle over the last two axes, with `diagonal` on it."""
    n = a.shape[-1]
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    out = np.where(upper, a, np.swapaxes(a, -1, -2))
    out[..., np.arange(n), np.arange(n)] = diagonal
    return np.ascontiguousarray(out)


def make_input(proc: diffc.Process, port: dict, batch: int, sizes: Mapping[str, int],
               rng: np.random.Generator) -> np.ndarray:
    """A valid random value for a port: normals for reals, probabilities for a network's
    class outputs, classes and bools, symmetric with an empty diagonal for `sym` fields."""
    shape = shape_of(port, batch, sizes)
    field = field_of(proc, port["name"])
    sym = bool(field and field["sym"])
    is_net = "." in port["name"] and not port["name"].startswith("prev.")
    if port["dtype"] == "float32":
        # `posterior_soft`'s x_0 as class probabilities (or the probability of `true`): a value
        # of the field, so symmetric with an empty (all-zero) diagonal for a `sym` field.
        if port["name"].endswith("_probs") and field is not None:
            if field["dtype"] == "int64":
                z = rng.standard_normal(shape)
                a = (np.exp(z) / np.exp(z).sum(-1, keepdims=True)).astype(np.float32)
            else:
                a = rng.uniform(0.05, 0.95, shape).astype(np.float32)
            if sym and field["dtype"] == "int64":
                a = np.moveaxis(symmetric(np.moveaxis(a, -1, 0), 0.0), 0, -1)
                return np.ascontiguousarray(a)
            return symmetric(a, 0.0) if sym else a
        if is_net and field is not None and field["dtype"] == "int64":
            z = rng.standard_normal(shape)
            p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
            a = p.astype(np.float32)
            if sym:
                a = np.ascontiguousarray(np.where(
                    np.triu(np.ones(shape[-2:-1] * 2, dtype=bool), 1)[..., None],
                    a, np.swapaxes(a, 1, 2)))
            return a
        if is_net and field is not None and field["dtype"] == "bool":
            return rng.uniform(0.05, 0.95, shape).astype(np.float32)
        a = rng.standard_normal(shape).astype(np.float32)
        return symmetric(a, 0.0) if sym else a
    if port["dtype"] == "int64":
        a = rng.integers(0, port["classes"], shape).astype(np.int64)
        return symmetric(a, 0) if sym else a
    if port["dtype"] == "bool":
        a = rng.random(shape) < 0.5
        return symmetric(a, False) if sym else a
    raise AssertionError(f"no generator for {port}")


def assert_same(ours: Mapping[str, np.ndarray], theirs: Mapping[str, np.ndarray]) -> None:
    """The same names, dtypes, shapes and bits."""
    assert sorted(ours) == sorted(theirs)
    for k in theirs:
        a, b = np.asarray(ours[k]), theirs[k]
        assert a.dtype == b.dtype, (k, a.dtype, b.dtype)
        assert a.shape == b.shape, (k, a.shape, b.shape)
        if a.dtype == np.float32:
            assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), k
        else:
            assert np.array_equal(a, b), k
