"""Flow matching and EDM on a 2-D toy set, trained in PyTorch with each spec's own loss and
sampled with diffc's compiled samplers; scored beside diffc's exact denoiser.

Processes:
- `flow_matching` (specs/flow_matching.diff): x_t = (1 - t) x_0 + t eps, a network
  `v_hat(x_t, t) -> velocity(x)` trained with `loss.cfm` = mean((v_hat - (eps - x_0))^2) at
  t ~ U[0, 1] (`sample_t`), sampled by Euler and the midpoint rule at 10 and 50 network calls.
- `edm` (specs/edm.diff): x_sigma = x_0 + sigma eps, the network F called with c_in(sigma) x and
  1/4 ln sigma (`net_inputs.F`), read as D = c_skip x + c_out F, trained with `loss.edm`
  (lambda(sigma) (D - x_0)^2) at ln sigma ~ N(-1.2, 1.2^2) (`sample_t.edm`), sampled by Heun
  (Algorithm 1) and Euler on the rho = 7 grid at 11 and 51 network calls.

Data: `diffc data moons --seed 1 --count 500` (the training set of `diffc sample --data moons`).
Network: the MLP of gaussian_toy.py (3 hidden layers of 128, SiLU, on the network's inputs and
Fourier features of its time input), Adam with a cosine schedule, an exponential moving average
of the weights samples. Training step k draws with diffc seed 10^6 (1 + SEED) + k.

Run: python examples/python/flow_edm_toy.py [--out DIR]      (about 5 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import diffc  # noqa: E402
import diffc.torch  # noqa: E402
from common import SPECS, Clock, out_dir, run_cli, seed_everything, table, write_json  # noqa: E402
from gaussian_toy import EMA, MLP, point_measures  # noqa: E402

# process -> (spec, network, loss, time entry, [(sampler, label, steps for each call budget)])
CONFIGS = {
    "flow_matching": ("flow_matching.diff", "v_hat", "cfm", "sample_t", [
        ("euler", "Euler", {10: 10, 50: 50}),
        ("midpoint", "midpoint", {10: 5, 50: 25}),
    ]),
    "edm": ("edm.diff", "F", "edm", "sample_t.edm", [
        ("heun", "Heun (Algorithm 1)", {11: 6, 51: 26}),
        ("euler", "Euler", {11: 11, 51: 51}),
    ]),
}


def train_and_sample(name: str, args, train: np.ndarray, out: Path, clock: Clock) -> dict:
    spec, net_name, loss_name, time_entry, samplers = CONFIGS[name]
    proc = diffc.load(str(SPECS / spec), process=name)
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, args.train_steps) / args.train_steps)))
    ema = EMA(model, 0.999)
    rng = np.random.default_rng(args.seed)
    base = 10**6 * (1 + args.seed)
    curve, running = [], 0.0
    c = Clock()
    for k in range(args.train_steps):
        seed = base + k
        x0 = torch.from_numpy(train[rng.integers(0, len(train), args.batch)])
        t = proc.call(time_entry, seed=seed, batch=args.batch, backend=args.backend)["t"]
        noised = proc.forward(x_0=x0, t=t, seed=seed, backend=args.backend)
        x_in, t_in = proc.net_inputs(net_name, x_t=noised["x_t"], t=t, backend=args.backend).values()
        out_net = model(x_in, t_in)
        inputs = {"x_0": x0, "x_t": noised["x_t"], "t": t, "eps": noised["eps"]}
        wanted = {p["name"] for e in proc.entries() if e["name"] == f"loss.{loss_name}" for p in e["inputs"]}
        loss = diffc.torch.loss(proc, loss_name, {k2: v for k2, v in inputs.items() if k2 in wanted},
                                out_net, backend=args.backend).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema.update(model, k)
        running += loss.item()
        if (k + 1) % 1000 == 0:
            curve.append({"step": k + 1, "loss": running / 1000})
            clock.log(f"{name}: step {k + 1:5d}  loss {running / 1000:.4f}")
            running = 0.0
    train_seconds = c()
    net = ema.copy(model)
    params = sum(p.numel() for p in net.parameters())

    rows, runs = [], []
    for budget in sorted({b for _, _, steps in samplers for b in steps}):
        for sampler, label, steps_for in samplers:
            steps = steps_for[budget]
            x = proc.sample(sampler, net, count=args.count, sizes={"d": 2}, steps=steps,
                            seed=args.sample_seed)["x"]
            x = x.numpy() if isinstance(x, torch.Tensor) else x
            ours = point_measures(x, train)
            np.save(out / f"{name}_trained_{sampler}_{steps}.npy", x)
            exact_dir = out / f"{name}_exact_{sampler}_{steps}"
            run_cli("sample", SPECS / spec, "--data", args.data, "--data-seed", "1", "--sampler", sampler,
                    "--steps", steps, "--count", args.count, "--seed", args.sample_seed, "--out", exact_dir)
            exact = json.loads((exact_dir / "metrics.json").read_text())
            calls = exact["network_calls"]
            runs.append({"sampler": sampler, "steps": steps, "network_calls": calls,
                         "trained": ours, "exact": exact["metrics"]})
            rows.append([f"{label} ({steps} steps)", calls, ours["inside"], exact["metrics"]["inside"],
                         ours["energy"], exact["metrics"]["energy"]])
            clock.log(f"{name} {sampler} x{steps}: inside {ours['inside']:.3f} energy {ours['energy']:.4f}")
    return {"process": name, "spec": f"specs/{spec}", "parameters": params, "train_seconds": train_seconds,
            "loss_curve": curve, "runs": runs, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="output folder (default out/flow_edm_toy)")
    ap.add_argument("--data", default="moons", help="a 2-D set of `diffc data` (moons, gaussians8, ...)")
    ap.add_argument("--processes", default="flow_matching,edm")
    ap.add_argument("--train-steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--count", type=int, default=1000, help="samples per sampler run")
    ap.add_argument("--seed", type=int, default=0, help="the seed of everything in training")
    ap.add_argument("--sample-seed", type=int, default=0, help="diffc seed of every sampler run")
    ap.add_argument("--backend", default="interp", choices=["interp", "cpu"])
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()

    clock = Clock()
    seed_everything(args.seed, args.threads)
    out = out_dir(args.out, "flow_edm_toy")
    run_cli("data", args.data, "--seed", "1", "--count", "500", "--out", out / "data")
    train = np.load(out / "data" / "points.npy").astype(np.float32)
    run_cli("data", args.data, "--seed", "2", "--count", str(args.count), "--out", out / "fresh")
    fresh = point_measures(np.load(out / "fresh" / "points.npy"), train)

    results, text = [], ""
    for name in args.processes.split(","):
        r = train_and_sample(name, args, train, out, clock)
        results.append({k: v for k, v in r.items() if k != "rows"})
        rows = r["rows"] + [[f"fresh draw of `{args.data}` (seed 2, no model)", "-", fresh["inside"], "-",
                             fresh["energy"], "-"]]
        text += (
            f"\n{name} ({r['spec']}) on `{args.data}` (500 training points, data seed 1): MLP of "
            f"{r['parameters']} parameters, {args.train_steps} Adam steps of batch {args.batch}, trained in "
            f"{r['train_seconds']:.0f} s; {args.count} samples per run, sampler seed {args.sample_seed}\n\n"
            + table(["sampler", "net calls", "inside (trained)", "inside (exact)", "energy (trained)",
                     "energy (exact)"], rows)
            + "\n"
        )
    text += f"\ntotal {clock():.0f} s\n"
    print(text)
    (out / "table.md").write_text(text)
    write_json(out / "results.json", {"data": args.data, "train_steps": args.train_steps, "batch": args.batch,
                                      "lr": args.lr, "seed": args.seed, "sample_seed": args.sample_seed,
                                      "count": args.count, "fresh_draw": fresh, "processes": results})


if __name__ == "__main__":
    main()
