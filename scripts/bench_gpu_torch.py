#!/usr/bin/env python3
"""The DDPM ancestral step in PyTorch eager on the GPU: the baseline for `benches/gpu_step.rs`.

x0 = (x - sqrt(1 - abar) eps) / sqrt(abar); mean = c1 x0 + c2 x; x' = mean + sigma z, with z
from torch.randn_like, one kernel per operation (as a hand-written sampler runs it). Also
times torch's own device-to-device copy. Each time is the mean of `reps` steps between CUDA
events after a warm-up.

Usage: scripts/bench_gpu_torch.py [--sizes 16M,256M] [--reps 50]
"""
import argparse
import math

import torch


def size(s):
    mul = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1], 1)
    return int(s[:-1] if mul > 1 else s) * mul


def timed(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps / 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="16M,256M")
    ap.add_argument("--reps", type=int, default=50)
    a = ap.parse_args()
    dev = torch.device("cuda")
    print(f"# PyTorch eager\n\ndevice: {torch.cuda.get_device_name(dev)}, torch {torch.__version__}\n")
    print("| elements | eager step (ms) | step GB/s | torch copy (ms) | copy GB/s |")
    print("|---:|---:|---:|---:|---:|")
    abar, c1, c2, sigma = 0.5, 0.3, 0.6, 0.1
    s1, sa = math.sqrt(1 - abar), math.sqrt(abar)
    for n in [size(s) for s in a.sizes.split(",")]:
        x = torch.full((n,), 0.25, device=dev)
        e = torch.full((n,), -0.5, device=dev)
        out = torch.empty_like(x)

        def step():
            x0 = (x - s1 * e) / sa
            mean = c1 * x0 + c2 * x
            torch.add(mean, sigma * torch.randn_like(x), out=out)

        t = timed(step, a.reps)
        c = timed(lambda: out.copy_(x), a.reps)
        print(f"| {n} | {t * 1e3:.3f} | {12 * n / t / 1e9:.0f} | {c * 1e3:.3f} | {8 * n / c / 1e9:.0f} |")
        del x, e, out
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
