"""A discrete diffusion on the `words` corpus: a small transformer trained in PyTorch with the
spec's loss, sampled with diffc's compiled sampler; spelling, novelty and bigram distance
beside diffc's exact denoiser.

Processes (--process):
- `d3pm_absorbing` of specs/d3pm.diff (the default): K = 28 ('a'-'z', space and the [MASK]
  class), T = 1000, beta_t = 1/(T - t + 1); network `net(x_t, t) -> probs(x)`; loss `hybrid`
  (L_vb + 0.01 CE, in bits); sampler `ancestral` (1000 network calls). The network never
  predicts [MASK] (that class gets probability 0).
- `bfn_discrete` of specs/bfn_discrete.diff: K = 27, beta_1 = 0.5625; network
  `phi(softmax(z_t), t) -> probs(x)`; loss `cts` (the continuous-time loss); sampler `original`
  (Graves et al.'s, --steps updates and one more call for the final map).
Data: `diffc data words --seed 1` (200 sentences of 16 symbols, the training set
`diffc sample --data words` uses). Network: a 3-layer transformer encoder (width 96, 4 heads)
over the 16 positions with a learned position embedding and a sinusoidal embedding of the
time (t/T for D3PM, t for BFN); its input is the class (D3PM) or the distribution theta (BFN).

Scores (docs/datasets.md, computed here in numpy and checked against `diffc sample`'s
metrics.json on its own samples): spelling = fraction of the words of all samples that are in
the 50-word vocabulary (data::words::WORDS); in_train = fraction of samples equal to a
training sentence, novel = 1 - in_train; bigram_tv = total-variation distance between the
adjacent-symbol-pair distributions of the samples and of the training sentences. Also unique
(distinct samples / samples) and novel-and-spelled (novel samples all of whose words are in
the vocabulary).

Run: python examples/python/words.py [--out DIR]                               (about 8 minutes)
     python examples/python/words.py --process bfn_discrete [--out DIR]        (about 4 minutes)
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

# src/data/words.rs, data::words::WORDS
VOCABULARY = frozenset("""
the of and to in is you that it he was for on are as with his they at be this have from or one
had by word but not what all were we when your can said there use an each which she do how
their if will up""".split())
SYMBOLS = 27  # 'a'..'z', space
MASK = 27


def decode(seq) -> str:
    return "".join(chr(ord("a") + int(c)) if c < 26 else (" " if c == 26 else "?") for c in seq)


def sequence_measures(samples: np.ndarray, train: np.ndarray) -> dict:
    """docs/datasets.md, "Sequences"."""
    train_set = {tuple(s) for s in train.tolist()}
    texts = [decode(s) for s in samples]
    words = [w for t in texts for w in t.split(" ") if w]
    in_train = np.array([tuple(s) in train_set for s in samples.tolist()])
    spelled = np.array([all(w in VOCABULARY for w in t.split(" ") if w) and any(t.split(" ")) for t in texts])

    def bigrams(seqs):
        a, b = seqs[:, :-1].ravel(), seqs[:, 1:].ravel()
        keep = (a < SYMBOLS) & (b < SYMBOLS)
        h = np.bincount(a[keep] * SYMBOLS + b[keep], minlength=SYMBOLS * SYMBOLS).astype(np.float64)
        return h / h.sum()

    return {
        "in_train": float(in_train.mean()),
        "novel": float(1 - in_train.mean()),
        "spelling": float(np.mean([w in VOCABULARY for w in words])) if words else 0.0,
        "bigram_tv": float(0.5 * np.abs(bigrams(samples) - bigrams(train)).sum()),
        "unique": len({tuple(s) for s in samples.tolist()}) / len(samples),
        "novel_and_spelled": float((~in_train & spelled).mean()),
    }


# ----------------------------------------------------------------------- the network


PROCESSES = {
    # spec, network, loss, sampler, default steps, the time's scale, input: classes or theta
    "d3pm_absorbing": dict(spec="d3pm.diff", net="net", loss="hybrid", sampler="ancestral", steps=None,
                           T=1000.0, classes=True),
    "bfn_discrete": dict(spec="bfn_discrete.diff", net="phi", loss="cts", sampler="original", steps=100,
                         T=1.0, classes=False),
}


class Transformer(nn.Module):
    """The network: x [B, L] classes in 0..27 (D3PM's x_t) or [B, L, 27] probabilities (BFN's
    theta), t ([B] or a 0-d time, divided by T) -> probs [B, L, 28] (D3PM: [MASK] gets 0) or
    [B, L, 27] (BFN)."""

    def __init__(self, length: int = 16, width: int = 96, heads: int = 4, layers: int = 3, T: float = 1000.0,
                 classes: bool = True):
        super().__init__()
        self.T, self.classes = T, classes
        self.tok = nn.Embedding(MASK + 1, width) if classes else nn.Linear(SYMBOLS, width)
        self.pos = nn.Parameter(torch.randn(length, width) * 0.02)
        self.time = nn.Sequential(nn.Linear(32, width), nn.SiLU(), nn.Linear(width, width))
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, SYMBOLS)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1).expand(B) / self.T
        freqs = torch.exp(torch.linspace(0, math.log(1000), 16))
        temb = self.time(torch.cat([torch.sin(t[:, None] * freqs), torch.cos(t[:, None] * freqs)], -1))
        h = self.tok(x) + self.pos[None] + temb[:, None]
        p = torch.softmax(self.head(self.norm(self.enc(h))), dim=-1)
        p = (p + 1e-7) / (1 + SYMBOLS * 1e-7)  # positive, so that -log p stays finite
        if not self.classes:
            return p
        return torch.cat([p, torch.zeros_like(p[..., :1])], dim=-1)  # [MASK] is never predicted


# ----------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="output folder (default out/words, or out/words_bfn)")
    ap.add_argument("--process", default="d3pm_absorbing", choices=sorted(PROCESSES))
    ap.add_argument("--sampler", help="the sampler (default: ancestral for D3PM, original for BFN)")
    ap.add_argument("--steps", type=int, help="the sampler's steps (BFN default 100; D3PM's grid is fixed)")
    ap.add_argument("--train-steps", type=int, default=4500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--count", type=int, default=200, help="sentences to generate")
    ap.add_argument("--seed", type=int, default=0, help="the seed of everything in training: torch, numpy, and diffc (step k draws with seed 10^6 (1 + SEED) + k)")
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--backend", default="interp", choices=["interp", "cpu"])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared machine, two threads wait on each other)")
    args = ap.parse_args()

    clock = Clock()
    seed_everything(args.seed, args.threads)
    cfg = PROCESSES[args.process]
    sampler = args.sampler or cfg["sampler"]
    steps = args.steps if args.steps is not None else cfg["steps"]
    out = out_dir(args.out, "words" if args.process == "d3pm_absorbing" else "words_bfn")
    proc = diffc.load(str(SPECS / cfg["spec"]), process=args.process)

    run_cli("data", "words", "--seed", "1", "--out", out / "data")
    train = np.load(out / "data" / "sequences.npy").astype(np.int64)
    seen = {w for s in train for w in decode(s).split(" ") if w}
    assert seen <= VOCABULARY, seen - VOCABULARY
    clock.log(f"data: {len(train)} sentences of {train.shape[1]} symbols (diffc data words --seed 1), "
              f"{len(seen)} of the {len(VOCABULARY)} words occur")

    # ------------------------------------------------------------------- training
    net = Transformer(length=train.shape[1], T=cfg["T"], classes=cfg["classes"])
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.01, foreach=True)
    warm = 200
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(k, args.train_steps) / args.train_steps)))
    rng = np.random.default_rng(args.seed)
    base = 10**6 * (1 + args.seed)  # the diffc seed of training step k is base + k
    curve, running = [], 0.0
    for k in range(args.train_steps):
        seed = base + k
        x0 = torch.from_numpy(train[rng.integers(0, len(train), args.batch)])
        t = proc.sample_t(batch=args.batch, seed=seed, backend=args.backend)["t"]
        if cfg["classes"]:  # D3PM: x_0 -> x_t
            noised = proc.forward(x_0=x0, t=t, seed=seed, backend=args.backend)
            given = {"x_0": x0, "x_t": noised["x_t"], "t": t}
            x_in, t_in = proc.net_inputs(cfg["net"], x_t=noised["x_t"], t=t, backend=args.backend).values()
        else:  # BFN: x -> z_t (logits of theta); the network reads softmax(z_t)
            noised = proc.forward(x=x0, t=t, seed=seed, backend=args.backend)
            given = {"x": x0, "z_t": noised["z_t"], "t": t}
            x_in, t_in = proc.net_inputs(cfg["net"], z_t=noised["z_t"], t=t, backend=args.backend).values()
        p = net(x_in, t_in)
        loss = diffc.torch.loss(proc, cfg["loss"], given, p, backend=args.backend).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        running += loss.item()
        if (k + 1) % 250 == 0:
            curve.append({"step": k + 1, "loss": running / 250})
            clock.log(f"step {k + 1:5d}  loss.{cfg['loss']} {running / 250:.4f}")
            running = 0.0
    train_seconds = clock()
    net.eval()

    # ------------------------------------------------------------------- sampling and scores
    c = Clock()
    x = proc.sample(sampler, net, count=args.count, sizes={"d": train.shape[1]}, seed=args.sample_seed,
                    steps=steps)["x"]
    sample_seconds = c()
    x = x.numpy().astype(np.int64)
    (out / "samples.txt").write_text("\n".join(decode(s) for s in x) + "\n")
    ours = sequence_measures(x, train)
    exact_dir = out / "exact"
    run_cli("sample", SPECS / cfg["spec"], "--process", args.process, "--data", "words", "--data-seed", "1",
            "--count", args.count, "--seed", args.sample_seed, "--sampler", sampler,
            *(["--steps", steps] if steps is not None else []), "--out", exact_dir)
    exact_json = json.loads((exact_dir / "metrics.json").read_text())
    calls = exact_json["network_calls"]
    clock.log(f"sampled {args.count} sentences in {sample_seconds:.1f} s ({calls} network calls)")
    from_text = [line for line in (exact_dir / "samples.txt").read_text().split("\n") if line]
    exact_x = np.array([[26 if ch == " " else ord(ch) - ord("a") for ch in line] for line in from_text], np.int64)
    exact = sequence_measures(exact_x, train)
    check = max(abs(exact[k] - exact_json["metrics"][k]) for k in ("in_train", "spelling", "bigram_tv"))

    run_cli("data", "words", "--seed", "2", "--count", str(args.count), "--out", out / "fresh")
    fresh = sequence_measures(np.load(out / "fresh" / "sequences.npy").astype(np.int64), train)

    keys = ["spelling", "novel", "novel_and_spelled", "unique", "bigram_tv"]
    name = "D3PM absorbing" if cfg["classes"] else "BFN discrete"
    run_name = f"{name}, {sampler}{'' if steps is None else f' ({steps} steps)'}, {calls} calls"
    rows = [
        [f"{run_name}, trained transformer"] + [ours[k] for k in keys] + [f"{sample_seconds:.1f}"],
        [f"{run_name}, exact denoiser (diffc sample)"] + [exact[k] for k in keys]
        + [f"{exact_json['seconds']:.1f}"],
        ["fresh draw of the corpus (seed 2, no model)"] + [fresh[k] for k in keys] + ["-"],
    ]
    total = clock()
    examples = [decode(s) for s in x[:8]]
    text = (
        f"\n{args.process} (specs/{cfg['spec']}) on `words` ({len(train)} training sentences, data seed 1): "
        f"transformer of {params} parameters, {args.train_steps} AdamW steps of batch {args.batch} with "
        f"loss.{cfg['loss']}, trained in {train_seconds:.0f} s; {sampler} sampler, {calls} network calls, "
        f"{args.count} samples (seed {args.sample_seed}); total {total:.0f} s\n"
        f"numpy measures vs diffc's metrics.json on the exact samples: max |difference| {check:.2e}\n"
        f"first samples: {' | '.join(examples)}\n\n"
        + table(["sampler / network", "spelling", "novel", "novel & spelled", "unique", "bigram_tv", "sample s"], rows)
        + "\n"
    )
    print(text)
    (out / "table.md").write_text(text)
    write_json(out / "results.json", {
        "process": args.process, "spec": f"specs/{cfg['spec']}", "sampler": sampler, "steps": steps,
        "network_calls": calls, "data": "words", "train_sentences": len(train),
        "train_steps": args.train_steps, "batch": args.batch, "lr": args.lr, "parameters": params,
        "seed": args.seed, "sample_seed": args.sample_seed, "count": args.count,
        "train_seconds": train_seconds, "sample_seconds": sample_seconds, "total_seconds": total,
        "loss_curve": curve, "trained": ours, "exact": exact, "exact_cli_metrics": exact_json["metrics"],
        "fresh_draw": fresh, "measure_check_max_abs_diff": check, "first_samples": examples,
    })


if __name__ == "__main__":
    main()
