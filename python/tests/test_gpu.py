"""The GPU backend from Python (Mesa's lavapipe in CI): noise and classes equal the
interpreter's exactly, floats within the 2e-5 that docs/backends.md states. Each check runs in
a Python process of its own (see gpu_checks.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("check", ["entries", "sample"])
def test_gpu_matches_the_interpreter(check):
    r = subprocess.run([sys.executable, str(HERE / "gpu_checks.py"), check], cwd=HERE,
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr
