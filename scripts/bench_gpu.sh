#!/usr/bin/env bash
# The GPU benchmark table: the DDPM ancestral step's fused WGSL kernel against the GPU's own
# buffer copy (benches/gpu_step.rs), then the same step in PyTorch eager on the same GPU when
# PyTorch with CUDA is installed (scripts/bench_gpu_torch.py).
# Usage: scripts/bench_gpu.sh [--sizes 16M,256M] [--reps 50]
# The tables are printed and kept in target/bench-gpu.md. DIFFC_ADAPTER picks the adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
{
  date -u +"run: %Y-%m-%d %H:%M UTC"
  echo
  cargo bench --bench gpu_step -- "$@"
  echo
  if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    python3 scripts/bench_gpu_torch.py "$@"
  else
    echo "(PyTorch with CUDA is not installed here: no eager baseline)"
  fi
} | tee target/bench-gpu.md
