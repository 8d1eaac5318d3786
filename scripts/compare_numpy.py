#!/usr/bin/env python3
"""The DDPM ancestral step from diffc's ahead-of-time library (called through ctypes) against
the same step written with numpy and, where installed, PyTorch and diffusers, on this machine.

    python3 scripts/compare_numpy.py [--sizes 1M,16M] [--reps 5] [--lib DIR]

Without --lib, the library is built first with `cargo run --release -- build specs/ddpm.diff
--target cpu -o target/aot/ddpm`. Every implementation runs on one thread (the library's
one-call step is single-threaded; numpy's elementwise operations are too; PyTorch is set to one
thread). Before timing, the script checks that the library computes the same step as numpy:
on the last step (t = 1, no noise) the outputs must agree to 1e-6 relative, and on a middle
step the library's output minus numpy's mean, divided by the step's standard deviation, must
look like standard normal noise (mean within 5 standard errors of 0, standard deviation within
1%). The coefficients come from the library's own table, so both compute the same numbers.
"""

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_size(s):
    s = s.strip()
    mul = {"M": 1 << 20, "K": 1 << 10}.get(s[-1].upper(), 1)
    return int(s[:-1] if mul > 1 else s) * mul


def timed(reps, f):
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def load(libdir):
    if libdir is None:
        libdir = os.path.join(ROOT, "target", "aot", "ddpm")
        subprocess.run(
            ["cargo", "run", "--release", "-q", "--", "build", "specs/ddpm.diff",
             "--target", "cpu", "-o", libdir],
            cwd=ROOT, check=True)
    lib = ctypes.CDLL(os.path.join(libdir, "libddpm.so"))
    step = lib.diffc_ddpm_linear_ancestral_step
    fp = ctypes.POINTER(ctypes.c_float)
    step.argtypes = [fp, fp, fp, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint64]
    step.restype = ctypes.c_int
    # The table's shape, from the symbols the library exports for it.
    width = ctypes.c_uint32.in_dll(lib, "diffc_ddpm_linear_ancestral_row_width").value
    steps = ctypes.c_uint32.in_dll(lib, "diffc_ddpm_linear_ancestral_steps").value
    rows = (ctypes.c_float * width * (steps + 2)).in_dll(lib, "diffc_ddpm_linear_ancestral_rows")
    return step, np.ctypeslib.as_array(rows).copy()


def ptr(a):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1M,16M")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--lib", default=None)
    a = ap.parse_args()
    step, rows = load(a.lib)

    def coefs(k):
        r = rows[k]
        # Row values as the header names them (c1 alpha(t), c2 sigma(t)^2, c3 c0, c4 ct, c5 var);
        # the step's kernel: x0 = (x - sqrt(sigma2) eps) / alpha;
        # mean = c0 x0 + ct x; x' = mean + sqrt(var) z.
        return dict(alpha=r[1], sigma2=r[2], c0=r[3], ct=r[4], var=r[5])

    def np_mean(x, eps, c):
        x0 = (x - np.sqrt(c["sigma2"]) * eps) / c["alpha"]
        return c["c0"] * x0 + c["ct"] * x

    # Correctness first, on 1M elements.
    n = 1 << 20
    g = np.random.default_rng(0)
    x = g.standard_normal(n, dtype=np.float32)
    eps = g.standard_normal(n, dtype=np.float32)
    out = np.empty_like(x)
    assert step(ptr(x), ptr(eps), ptr(out), 1, n, 999, 7) == 0
    want = np_mean(x, eps, coefs(999))
    rel = float(np.max(np.abs(out - want) / np.maximum(np.abs(want), 1e-30)))
    assert rel < 1e-6, f"last step differs from numpy: {rel:.3e}"
    k = 500
    c = coefs(k)
    assert step(ptr(x), ptr(eps), ptr(out), 1, n, k, 7) == 0
    z = (out.astype(np.float64) - np_mean(x, eps, c)) / np.sqrt(c["var"])
    se = 1 / np.sqrt(n)
    assert abs(z.mean()) < 5 * se and abs(z.std() - 1) < 0.01, (z.mean(), z.std())
    print(f"check: last step equals numpy to {rel:.1e} relative; step {k}'s noise has mean "
          f"{z.mean():+.2e} and standard deviation {z.std():.4f}\n")

    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    try:
        from diffusers import DDPMScheduler
    except ImportError:
        DDPMScheduler = None

    print("| DDPM ancestral step | elements | ms | Melem/s | time / diffc |")
    print("|---|---:|---:|---:|---:|")
    for n in [parse_size(s) for s in a.sizes.split(",")]:
        x = g.standard_normal(n, dtype=np.float32)
        eps = g.standard_normal(n, dtype=np.float32)
        out = np.empty_like(x)
        rows_out = []
        t_diffc = timed(a.reps, lambda: step(ptr(x), ptr(eps), ptr(out), 1, n, k, 7))
        rows_out.append(("diffc library (ctypes, 1 thread)", t_diffc))

        def numpy_step():
            z = g.standard_normal(n, dtype=np.float32)
            return np_mean(x, eps, c) + np.float32(np.sqrt(c["var"])) * z

        rows_out.append(("numpy", timed(a.reps, numpy_step)))
        if torch is not None:
            tx, te = torch.from_numpy(x), torch.from_numpy(eps)

            def torch_step():
                x0 = (tx - float(np.sqrt(c["sigma2"])) * te) / float(c["alpha"])
                mean = float(c["c0"]) * x0 + float(c["ct"]) * tx
                return mean + float(np.sqrt(c["var"])) * torch.randn_like(tx)

            rows_out.append(("PyTorch eager (1 thread)", timed(a.reps, torch_step)))
            if DDPMScheduler is not None:
                sch = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
                sch.set_timesteps(1000)
                t_index = 1000 - k - 1
                rows_out.append(("diffusers DDPMScheduler.step", timed(
                    a.reps, lambda: sch.step(te, t_index, tx).prev_sample)))
        for name, t in rows_out:
            print(f"| {name} | {n >> 20}M | {t * 1e3:.1f} | {n / t / 1e6:.0f} | {t / t_diffc:.2f} |")
    if torch is None:
        print("\nPyTorch is not installed here: its rows are left out.")
    elif DDPMScheduler is None:
        print("\ndiffusers is not installed here: its row is left out.")


if __name__ == "__main__":
    sys.exit(main())
