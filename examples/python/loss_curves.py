"""Loss curves of several runs side by side, from their results.json files.

    python examples/python/loss_curves.py LABEL=out/run_a/results.json LABEL=out/run_b/results.json ...

Prints one row per logged step (the mean training loss over the last 250 steps) and, below,
the mean absolute difference of each run's curve from the first run's. Used to compare a
single-process DiGress run with a `torchrun --nproc_per_node 2` run at the same global batch,
next to a single-process run with another seed (the run-to-run noise).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table  # noqa: E402


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        raise SystemExit(__doc__)
    runs = []
    for arg in sys.argv[1:]:
        label, _, path = arg.rpartition("=")
        res = json.loads(Path(path).read_text())
        key = "loss" if "loss" in res["loss_curve"][0] else "loss_bits"
        runs.append((label or path, {c["step"]: c[key] for c in res["loss_curve"]}, res))
    steps = sorted(set.intersection(*(set(c) for _, c, _ in runs)))
    rows = [[s] + [c[s] for _, c, _ in runs] for s in steps]
    first = runs[0][1]
    rows.append(["mean abs diff from the first"] + [sum(abs(c[s] - first[s]) for s in steps) / len(steps) for _, c, _ in runs])
    rows.append(["training seconds"] + [r.get("train_seconds", float("nan")) for _, _, r in runs])
    print(table(["step"] + [label for label, _, _ in runs], rows))


if __name__ == "__main__":
    main()
