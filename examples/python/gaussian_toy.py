"""A Gaussian diffusion on a 2-D toy set, trained in PyTorch with the spec's loss and sampled
with diffc's compiled samplers; scored beside diffc's exact denoiser.

Process: `vp_linear` of specs/dpm_solver.diff (the continuous VP SDE with linear beta,
t in [1e-3, 1]), network `eps_hat(x_t, t) -> eps(x)`, loss `simple` = mean((eps_hat - eps)^2).
Data: `diffc data moons --seed 1 --count 500` (the training set `diffc sample --data moons`
uses: data seed 1, 500 points). Network: an MLP (3 hidden layers of 128, SiLU) on x_t and
Fourier features of t, trained with Adam; an exponential moving average of its weights samples.

Training step k: t = sample_t(seed = S + k), x_t, eps = forward(x_0, t, seed = S + k),
inputs = net_inputs.eps_hat(x_t, t), loss = diffc.torch.loss(..., "simple", ...).

The same trained network is then sampled with DPM-Solver++(2M) (`dpmpp_2m`), Euler on the
probability-flow ODE (`euler`) and DDIM (eta = 0, `dpm_solver1_uniform`) at 10 and 50 network
calls, and each run is scored with the support ("inside") and the energy distance of
docs/datasets.md, computed here in numpy; `diffc sample` gives the exact-denoiser figures of
the same sampler, step count, sample count and seed, and its metrics.json is checked against
this file's numpy measures on its own samples.

Run: python examples/python/gaussian_toy.py [--out DIR]      (about 3 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import diffc  # noqa: E402
import diffc.torch  # noqa: E402
from common import SPECS, Clock, out_dir, run_cli, seed_everything, table, write_json  # noqa: E402

SAMPLERS = [
    ("dpmpp_2m", "DPM-Solver++(2M)"),
    ("euler", "Euler (PF-ODE)"),
    ("dpm_solver1_uniform", "DDIM (eta=0)"),
]


# ----------------------------------------------------------------------- measures (docs/datasets.md)


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of a and b, in f64."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0))


def _pairwise_exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def point_measures(samples: np.ndarray, train: np.ndarray) -> dict:
    """radius, inside, mean_nearest and energy exactly as docs/datasets.md defines them:
    radius = 3 x the median over training points of the distance to the nearest other training
    point; inside = fraction of samples within radius (inclusive) of a training point;
    mean_nearest = mean distance from a sample to its nearest training point; energy =
    2 E|X - Y| - E|X - X'| - E|Y - Y'| with every expectation a mean over all ordered pairs
    (self-pairs included), no square root."""
    dtt = _pairwise_exact(train, train)
    np.fill_diagonal(dtt, np.inf)
    radius = 3.0 * float(np.median(dtt.min(1)))
    np.fill_diagonal(dtt, 0.0)
    dst = _pairwise_exact(samples, train)
    nearest = dst.min(1)
    dss = _pairwise_exact(samples, samples)
    energy = 2.0 * dst.mean() - dss.mean() - dtt.mean()
    return {
        "inside": float((nearest <= radius).mean()),
        "mean_nearest": float(nearest.mean()),
        "energy": float(energy),
        "radius": radius,
    }


# ----------------------------------------------------------------------- the network


class MLP(nn.Module):
    """eps_hat(x_t, t): x_t [B, 2] and t ([B] or a 0-d time) -> eps [B, 2]."""

    def __init__(self, dim: int = 2, hidden: int = 128, freqs: int = 16):
        super().__init__()
        self.register_buffer("w", 2.0 ** torch.arange(freqs, dtype=torch.float32) * math.pi / 8)
        self.net = nn.Sequential(
            nn.Linear(dim + 2 * freqs + 1, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1)
        t = t.expand(x.shape[0]) if t.numel() == 1 else t
        a = t[:, None] * self.w[None, :]
        return self.net(torch.cat([x, t[:, None], torch.sin(a), torch.cos(a)], dim=1))


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # the usual warm-up of the average
        for k, v in model.state_dict().items():
            self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)

    def copy(self, model: nn.Module) -> nn.Module:
        m = MLP()
        m.load_state_dict(self.shadow)
        return m.eval()


# ----------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="output folder (default out/gaussian_toy)")
    ap.add_argument("--data", default="moons", help="a 2-D set of `diffc data` (moons, gaussians8, ...)")
    ap.add_argument("--train-steps", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--count", type=int, default=1000, help="samples per sampler run")
    ap.add_argument("--seed", type=int, default=0, help="the seed of everything in training: torch, numpy, and diffc (step k draws with seed 10^6 (1 + SEED) + k)")
    ap.add_argument("--sample-seed", type=int, default=0, help="diffc seed of every sampler run (and of diffc sample)")
    ap.add_argument("--backend", default="interp", choices=["interp", "cpu"],
                    help="backend of the training entries (interp is faster at this batch size)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared machine, two threads wait on each other)")
    args = ap.parse_args()

    clock = Clock()
    seed_everything(args.seed, args.threads)
    out = out_dir(args.out, "gaussian_toy")
    proc = diffc.load(str(SPECS / "dpm_solver.diff"), process="vp_linear")

    # Data: the same 500 points `diffc sample --data moons` trains its exact denoiser on.
    run_cli("data", args.data, "--seed", "1", "--count", "500", "--out", out / "data")
    train = np.load(out / "data" / "points.npy").astype(np.float32)
    clock.log(f"data: {train.shape[0]} points of `{args.data}` (diffc data --seed 1)")

    # ------------------------------------------------------------------- training
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, args.train_steps) / args.train_steps)))
    ema = EMA(model, 0.999)
    rng = np.random.default_rng(args.seed)
    base = 10**6 * (1 + args.seed)  # the diffc seed of training step k is base + k
    curve = []
    running = 0.0
    for k in range(args.train_steps):
        seed = base + k
        x0 = torch.from_numpy(train[rng.integers(0, len(train), args.batch)])
        t = proc.sample_t(batch=args.batch, seed=seed, backend=args.backend)["t"]
        noised = proc.forward(x_0=x0, t=t, seed=seed, backend=args.backend)
        x_t, t_in = proc.net_inputs("eps_hat", x_t=noised["x_t"], t=t, backend=args.backend).values()
        eps_hat = model(x_t, t_in)
        loss = diffc.torch.loss(proc, "simple", {"x_t": noised["x_t"], "t": t, "eps": noised["eps"]},
                                eps_hat, backend=args.backend).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema.update(model, k)
        running += loss.item()
        if (k + 1) % 500 == 0:
            curve.append({"step": k + 1, "loss": running / 500})
            clock.log(f"step {k + 1:5d}  loss {running / 500:.4f}")
            running = 0.0
    train_seconds = clock()
    net = ema.copy(model)
    params = sum(p.numel() for p in net.parameters())

    # ------------------------------------------------------------------- sampling and scores
    fresh_dir = out / "fresh"
    run_cli("data", args.data, "--seed", "2", "--count", str(args.count), "--out", fresh_dir)
    fresh = point_measures(np.load(fresh_dir / "points.npy"), train)

    rows, results = [], []
    check = 0.0
    for steps in (10, 50):
        for name, label in SAMPLERS:
            c = Clock()
            x = proc.sample(name, net, count=args.count, sizes={"d": 2}, steps=steps, seed=args.sample_seed)["x"]
            x = x.numpy() if isinstance(x, torch.Tensor) else x
            sec = c()
            ours = point_measures(x, train)
            np.save(out / f"trained_{name}_{steps}.npy", x)
            exact_dir = out / f"exact_{name}_{steps}"
            run_cli("sample", SPECS / "dpm_solver.diff", "--process", "vp_linear", "--data", args.data,
                    "--data-seed", "1", "--sampler", name, "--steps", steps, "--count", args.count,
                    "--seed", args.sample_seed, "--out", exact_dir)
            exact = json.loads((exact_dir / "metrics.json").read_text())
            mine = point_measures(np.load(exact_dir / "samples.npy"), train)
            for key in ("inside", "energy", "mean_nearest", "radius"):
                check = max(check, abs(mine[key] - exact["metrics"][key]))
            calls = exact["network_calls"]
            results.append({"sampler": name, "steps": steps, "network_calls": calls, "seconds": sec,
                            "trained": ours, "exact": exact["metrics"], "exact_seconds": exact["seconds"]})
            rows.append([label, calls, ours["inside"], exact["metrics"]["inside"],
                         ours["energy"], exact["metrics"]["energy"],
                         ours["mean_nearest"], exact["metrics"]["mean_nearest"], f"{sec:.2f}"])
            clock.log(f"{name} x{steps}: inside {ours['inside']:.3f} energy {ours['energy']:.4f}")

    headers = ["sampler", "net calls", "inside (trained)", "inside (exact)", "energy (trained)",
               "energy (exact)", "mean_nearest (trained)", "mean_nearest (exact)", "sample s"]
    rows.append([f"fresh draw of `{args.data}` (seed 2, no model)", "-", fresh["inside"], "-",
                 fresh["energy"], "-", fresh["mean_nearest"], "-", "-"])
    total = clock()
    text = (
        f"\nvp_linear (specs/dpm_solver.diff) on `{args.data}` (500 training points, data seed 1): "
        f"MLP of {params} parameters, {args.train_steps} Adam steps of batch {args.batch}, "
        f"trained in {train_seconds:.0f} s; {args.count} samples per run, sampler seed {args.sample_seed}; "
        f"total {total:.0f} s\n"
        f"exact = `diffc sample` with the exact denoiser of the training set (same sampler, steps, count, seed)\n"
        f"numpy measures vs diffc's metrics.json on the exact samples: max |difference| {check:.2e}\n\n"
        + table(headers, rows)
        + "\n"
    )
    print(text)
    (out / "table.md").write_text(text)
    write_json(out / "results.json", {
        "process": "vp_linear", "spec": "specs/dpm_solver.diff", "data": args.data, "train_points": len(train),
        "train_steps": args.train_steps, "batch": args.batch, "lr": args.lr, "parameters": params,
        "seed": args.seed, "sample_seed": args.sample_seed, "count": args.count,
        "train_seconds": train_seconds, "total_seconds": total, "loss_curve": curve,
        "fresh_draw": fresh, "measure_check_max_abs_diff": check, "runs": results,
    })


if __name__ == "__main__":
    main()
