#!/usr/bin/env python3
"""A DDPM ancestral step on 16M elements, three ways, in one run:

1. the fused kernel alone (`cargo bench --bench steps -- --only "DDPM ancestral"`, on buffers
   allocated once);
2. the same step called from Python: `Sampler.step(eps, t, x, backend="cpu")` of the `diffc`
   package (host coefficients, the input check, the kernel, the arrays in and out), once on the
   same arrays again and again, and in a sampling loop (`x = step(eps, t, x)`), where each step
   writes into the array its predecessor's result replaced;
3. a whole run through `Process.sample` with a Python denoiser (DDIM with eta = 1, per step),
   beside the same sampler's `Sampler.step` in a loop;
4. PyTorch eager: diffusers' `DDPMScheduler.step` where diffusers is installed, else the same
   maths written in torch (posterior mean, variance, `torch.randn`).

Prints each time and the ratios to the fused kernel. Usage:
    python scripts/bench_python.py [--elements 16777216] [--reps 5]
"""

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def timed(fn, reps):
    fn()  # warm up (JIT compile, page faults)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def fused_kernel_ms(elements):
    size = f"{elements // (1 << 20)}M"
    out = subprocess.run(
        ["cargo", "bench", "--bench", "steps", "--", "--sizes", size, "--reps", "5",
         "--no-interp", "--only", "DDPM ancestral"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("DDPM ancestral") and cells[2].startswith("kernel"):
            return float(cells[3].replace(",", ""))
    sys.exit(f"no fused DDPM ancestral row in the bench's output:\n{out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--elements", type=int, default=1 << 24)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    import diffc
    import torch

    torch.set_num_threads(2)
    n = a.elements
    ddpm = diffc.load(REPO / "specs/ddpm.diff", process="ddpm_linear")
    sampler = ddpm.sampler("ancestral")
    t = float(sampler.timesteps[500])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, n), dtype=np.float32)
    eps = rng.standard_normal((1, n), dtype=np.float32)

    py_ms = timed(lambda: sampler.step(eps, t, x, backend="cpu", seed=1), a.reps)

    # A sampling loop, as users write it: each step's result is the next step's state, and the
    # array a step replaced goes back to the runner (`docs/python.md`), so steady steps write
    # into memory already faulted in. Median over steps 2 … reps + 2 of the grid.
    def loop_ms():
        y, times = x.copy(), []
        for k, tk in enumerate(sampler.timesteps[: a.reps + 2]):
            t0 = time.perf_counter()
            y = sampler.step(eps, tk, y, backend="cpu", seed=1)
            if k >= 2:
                times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3

    loop_step_ms = loop_ms()

    # A whole run, as `Process.sample` drives it with a Python denoiser (here one that returns
    # the same noise prediction every call): DDIM with eta = 1 (the ancestral step's
    # arithmetic on a coarse grid), per step, beside the same sampler's steps in a loop.
    steps = a.reps + 3
    ddim = ddpm.sampler("ddim", steps=steps, eta=1.0)

    def whole_run_ms():
        t0 = time.perf_counter()
        ddpm.sample(ddim, lambda x_t, t_in: eps, count=1, sizes={"d": n}, seed=1, backend="cpu")
        return (time.perf_counter() - t0) * 1e3 / steps

    whole_run_ms()  # warm up (compile, trace each grid point)
    sample_step_ms = statistics.median(whole_run_ms() for _ in range(3))

    def ddim_loop_ms():
        y, times = x.copy(), []
        for k, tk in enumerate(ddim.timesteps):
            t0 = time.perf_counter()
            y = ddim.step(eps, tk, y, backend="cpu", seed=1)
            if k >= 2:
                times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3

    ddim_loop_ms()
    ddim_step_ms = ddim_loop_ms()

    xt, et = torch.from_numpy(x), torch.from_numpy(eps)
    try:
        from diffusers import DDPMScheduler

        sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
        ti = int(t) - 1
        torch_ms = timed(lambda: sched.step(et, ti, xt).prev_sample, a.reps)
        torch_name = "diffusers DDPMScheduler.step"
    except ImportError:
        betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
        abar = torch.cumprod(1 - betas, 0)
        ti = int(t) - 1
        ab, ab_prev, beta = abar[ti].item(), abar[ti - 1].item(), betas[ti].item()

        def step():
            x0 = (xt - (1 - ab) ** 0.5 * et) / ab ** 0.5
            mean = (ab_prev ** 0.5 * beta / (1 - ab)) * x0 + ((1 - beta) ** 0.5 * (1 - ab_prev) / (1 - ab)) * xt
            var = (1 - ab_prev) / (1 - ab) * beta
            return mean + var ** 0.5 * torch.randn_like(xt)

        torch_ms = timed(step, a.reps)
        torch_name = "PyTorch eager (diffusers' DDPM step maths)"

    kernel_ms = fused_kernel_ms(n)
    print(f"DDPM ancestral step, {n} elements, median of {a.reps}")
    print("| impl | ms | / fused kernel |")
    print("|---|---:|---:|")
    for name, ms in [("diffc fused kernel (cargo bench)", kernel_ms),
                     ("diffc from Python, Sampler.step(backend='cpu'), one call", py_ms),
                     ("diffc from Python, Sampler.step(backend='cpu'), in a loop", loop_step_ms),
                     ("DDIM (eta 1) from Python, Sampler.step(backend='cpu'), in a loop", ddim_step_ms),
                     (f"DDIM (eta 1) from Python, Process.sample(backend='cpu'), per step of {steps}",
                      sample_step_ms),
                     (torch_name, torch_ms)]:
        print(f"| {name} | {ms:.1f} | {ms / kernel_ms:.2f} |")


if __name__ == "__main__":
    main()
