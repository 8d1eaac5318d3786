"""Classifier-free guidance trained in PyTorch with the spec's losses and sampled with diffc's
compiled DDIM sampler; scored beside diffc's exact denoiser.

Process: `ddpm_cfg` of specs/ddpm.diff (DDPM, linear beta, T = 1000; written as the one-step
kernel alone, its marginal and posterior derived by the compiler), networks
`eps_c(x_t, t, y) -> eps(x)` and `eps_u(x_t, t) -> eps(x)`, losses `cond` and `uncond`, sampler
`ddim` with the guided prediction eps~ = (1 + w) eps_c - w eps_u (Ho & Salimans 2022, Eq. 6).
Data: `diffc data moons --seed 1 --count 500` (the training set `diffc sample --data moons`
uses: data seed 1, 500 points, each labelled with its moon, 0 or 1).

One MLP backs both networks, as the paper trains one network with a null label: a label
embedding of 8 classes plus a null token (index 8), the null token standing for `eps_u`. Each
training step drops the label of each item with probability p_uncond = 0.2 (the paper's 0.1 or
0.2) and takes the `uncond` loss there, the `cond` loss elsewhere:

  t = sample_t(seed = S + k); x_t, eps = forward(x_0, t, seed = S + k)
  loss = where(drop, loss.uncond(x_t, t, eps, F(x_t, t, null)), loss.cond(x_t, y, t, eps, F(x_t, t, y)))

Sampling: 1000 samples per run, labels alternating 0, 1 (given as the state `y`), DDIM with 50
steps at w = 0, 1 and 3. Scores, computed here in numpy: the label agreement (the fraction of
samples whose nearest training point carries their label, as `diffc sample` prints it), and per
label the support ("inside") and the energy distance of docs/datasets.md against that moon's
training points. `diffc sample --cond y=c --param w=W` gives the exact denoiser's figures of the
same sampler, steps, count and seed.

There is no published anchor for this set: the paper reports FID and Inception scores on
ImageNet 64x64 and 128x128 across w (its Table 1 and 2), which a 2-D toy cannot be compared
with.

Run: python examples/python/cfg_moons.py [--out DIR]      (about 3 minutes on 2 cores)
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

CLASSES = 8  # ddpm_cfg's `const C`
NULL = CLASSES  # the null token's index in the embedding


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def label_agreement(samples: np.ndarray, labels: np.ndarray, train: np.ndarray, train_labels: np.ndarray) -> float:
    """The fraction of samples whose nearest training point (the first of equals) has their label."""
    nearest = _pairwise(samples, train).argmin(1)
    return float((train_labels[nearest] == labels).mean())


def point_measures(samples: np.ndarray, train: np.ndarray) -> dict:
    """inside and energy as docs/datasets.md defines them (radius: 3 x the median distance from a
    training point to its nearest other one; energy: 2 E|X - Y| - E|X - X'| - E|Y - Y'|)."""
    dtt = _pairwise(train, train)
    np.fill_diagonal(dtt, np.inf)
    radius = 3.0 * float(np.median(dtt.min(1)))
    np.fill_diagonal(dtt, 0.0)
    dst = _pairwise(samples, train)
    energy = 2.0 * dst.mean() - _pairwise(samples, samples).mean() - dtt.mean()
    return {"inside": float((dst.min(1) <= radius).mean()), "energy": float(energy)}


class MLP(nn.Module):
    """F(x_t, t, y): x_t [B, 2], the DDPM step t ([B] or 0-d) and a label [B] (NULL: none)."""

    def __init__(self, dim: int = 2, hidden: int = 128, freqs: int = 16, emb: int = 16):
        super().__init__()
        self.register_buffer("w", 2.0 ** torch.arange(freqs, dtype=torch.float32) * math.pi / 8)
        self.label = nn.Embedding(CLASSES + 1, emb)
        self.net = nn.Sequential(
            nn.Linear(dim + 2 * freqs + 1 + emb, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1) / 1000.0
        t = t.expand(x.shape[0]) if t.numel() == 1 else t
        a = t[:, None] * self.w[None, :]
        e = self.label(torch.as_tensor(y, dtype=torch.long).reshape(-1))
        return self.net(torch.cat([x, t[:, None], torch.sin(a), torch.cos(a), e], dim=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="output folder (default out/cfg_moons)")
    ap.add_argument("--train-steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--p-uncond", type=float, default=0.2, help="probability of dropping an item's label")
    ap.add_argument("--count", type=int, default=1000, help="samples per sampler run")
    ap.add_argument("--seed", type=int, default=0, help="the seed of everything in training: torch, numpy, and diffc (step k draws with seed 10^6 (1 + SEED) + k)")
    ap.add_argument("--sample-seed", type=int, default=0, help="diffc seed of every sampler run (and of diffc sample)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()

    clock = Clock()
    seed_everything(args.seed, args.threads)
    out = out_dir(args.out, "cfg_moons")
    proc = diffc.load(str(SPECS / "ddpm.diff"), process="ddpm_cfg")

    run_cli("data", "moons", "--seed", "1", "--count", "500", "--out", out / "data")
    train = np.load(out / "data" / "points.npy").astype(np.float32)
    train_labels = np.load(out / "data" / "labels.npy")
    clock.log(f"data: {train.shape[0]} labelled points of `moons` (diffc data --seed 1)")

    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, args.train_steps) / args.train_steps)))
    rng = np.random.default_rng(args.seed)
    base = 10**6 * (1 + args.seed)
    curve, running = [], 0.0
    for k in range(args.train_steps):
        seed = base + k
        idx = rng.integers(0, len(train), args.batch)
        x0 = torch.from_numpy(train[idx])
        y = torch.from_numpy(train_labels[idx].astype(np.int64))
        drop = torch.from_numpy(rng.random(args.batch) < args.p_uncond)
        t = proc.sample_t(batch=args.batch, seed=seed)["t"]
        noised = proc.forward(x_0=x0, t=t, seed=seed)
        x_t, t_in, y_in = proc.net_inputs("eps_c", x_t=noised["x_t"], y=y, t=t).values()
        base_in = {"x_t": noised["x_t"], "t": t, "eps": noised["eps"]}
        lc = diffc.torch.loss(proc, "cond", {**base_in, "y": y}, model(x_t, t_in, y_in))
        lu = diffc.torch.loss(proc, "uncond", base_in, model(x_t, t_in, torch.full_like(y, NULL)))
        loss = torch.where(drop, lu, lc).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running += loss.item()
        if (k + 1) % 500 == 0:
            curve.append({"step": k + 1, "loss": running / 500})
            clock.log(f"step {k + 1:5d}  loss {running / 500:.4f}")
            running = 0.0
    train_seconds = clock()
    model.eval()
    params = sum(p.numel() for p in model.parameters())

    def eps_c(x, t, y):
        return model(x, t, y)

    def eps_u(x, t):
        return model(x, t, torch.full((x.shape[0],), NULL, dtype=torch.long))

    labels = (np.arange(args.count) % 2).astype(np.int64)
    rows, results = [], []
    for w in (0.0, 1.0, 3.0):
        c = Clock()
        x = proc.sample("ddim", {"eps_c": eps_c, "eps_u": eps_u}, count=args.count, sizes={"d": 2},
                        state={"y": labels}, steps=50, seed=args.sample_seed, w=w, tensors="torch")["x"]
        x = x.numpy()
        sec = c()
        ours = {"label_agreement": label_agreement(x, labels, train, train_labels)}
        exact = {}
        for cl in (0, 1):
            ours[f"moon{cl}"] = point_measures(x[labels == cl], train[train_labels == cl])
            d = out / f"exact_w{w:g}_y{cl}"
            run_cli("sample", SPECS / "ddpm.diff", "--process", "ddpm_cfg", "--data", "moons",
                    "--data-seed", "1", "--sampler", "ddim", "--steps", "50", "--count", args.count // 2,
                    "--seed", args.sample_seed, "--cond", f"y={cl}", "--param", f"w={w:g}", "--out", d)
            m = json.loads((d / "metrics.json").read_text())["metrics"]
            s = np.load(d / "samples.npy")
            exact[f"moon{cl}"] = {**point_measures(s, train[train_labels == cl]),
                                  "label_agreement": m["label_agreement"]}
        exact_agree = (exact["moon0"]["label_agreement"] + exact["moon1"]["label_agreement"]) / 2
        np.save(out / f"trained_w{w:g}.npy", x)
        results.append({"w": w, "seconds": sec, "trained": ours, "exact": exact})
        rows.append([f"{w:g}", ours["label_agreement"], exact_agree,
                     ours["moon0"]["energy"], exact["moon0"]["energy"],
                     ours["moon1"]["energy"], exact["moon1"]["energy"],
                     min(ours["moon0"]["inside"], ours["moon1"]["inside"]), f"{sec:.1f}"])
        clock.log(f"w = {w:g}: label agreement {ours['label_agreement']:.3f}")

    headers = ["w", "label agreement (trained)", "label agreement (exact)", "energy moon 0 (trained)",
               "energy moon 0 (exact)", "energy moon 1 (trained)", "energy moon 1 (exact)",
               "inside (trained, worse moon)", "sample s"]
    total = clock()
    text = (
        f"\nddpm_cfg (specs/ddpm.diff) on `moons` (500 labelled training points, data seed 1): one MLP of "
        f"{params} parameters for eps_c and eps_u (null token), {args.train_steps} Adam steps of batch "
        f"{args.batch}, p_uncond = {args.p_uncond}, trained in {train_seconds:.0f} s; DDIM 50 steps "
        f"(100 network calls), {args.count} samples per w (labels 0, 1 alternating), sampler seed "
        f"{args.sample_seed}; total {total:.0f} s\n"
        f"energy: against the training points of the sample's own moon; exact = `diffc sample --cond y=c` "
        f"with the exact denoiser ({args.count // 2} samples per moon, same sampler, steps, w and seed)\n"
        f"No published anchor: Ho & Salimans 2022 report FID/IS on ImageNet, not comparable with a 2-D toy.\n\n"
        + table(headers, rows) + "\n"
    )
    print(text)
    (out / "table.md").write_text(text)
    write_json(out / "results.json", {
        "process": "ddpm_cfg", "spec": "specs/ddpm.diff", "data": "moons", "train_points": len(train),
        "train_steps": args.train_steps, "batch": args.batch, "lr": args.lr, "p_uncond": args.p_uncond,
        "parameters": params, "seed": args.seed, "sample_seed": args.sample_seed, "count": args.count,
        "train_seconds": train_seconds, "total_seconds": total, "loss_curve": curve, "runs": results,
    })


if __name__ == "__main__":
    main()
