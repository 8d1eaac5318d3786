"""Helpers shared by the examples: the repository's paths, the `diffc` CLI, seeds, tables, JSON."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"


def cli() -> str:
    """The release CLI (`$DIFFC_CLI` or `target/release/diffc`), built with cargo if missing."""
    path = os.environ.get("DIFFC_CLI") or str(ROOT / "target" / "release" / "diffc")
    if not Path(path).exists():
        print(f"{path} is missing: running `cargo build --release` in {ROOT}", flush=True)
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    return path


def run_cli(*args: str) -> str:
    """Runs `diffc ARGS...` and returns its standard output; a failure raises with its stderr."""
    cmd = [cli(), *map(str, args)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr}")
    return res.stdout


def seed_everything(seed: int, threads: int = 1) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def out_dir(arg: str | None, name: str) -> Path:
    path = Path(arg) if arg else ROOT / "out" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=_plain) + "\n")


def _plain(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(type(x))


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table; floats to 4 significant digits."""

    def cell(v):
        if isinstance(v, float):
            return "nan" if v != v else f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


class Clock:
    """Wall-clock seconds since creation, and a log line with it."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start

    def log(self, msg: str) -> None:
        print(f"[{self():7.1f} s] {msg}", file=sys.stdout, flush=True)
