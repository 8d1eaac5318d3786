#!/usr/bin/env bash
# The CPU benchmark table: sampler steps (fused kernel, whole CPU step, ndarray, interpreter)
# against a STREAM triad measured in the same run, then JIT compile times.
# Usage: scripts/bench.sh [--sizes 1M,16M] [--threads 2] [--reps 5] [--no-interp] [--jit-only]
# The table is printed and kept in target/bench-steps.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench steps -- "$@" | tee target/bench-steps.md
