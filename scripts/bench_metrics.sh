#!/usr/bin/env bash
# `diffc metrics` against the Python reference tooling, as ratios in one run.
# Builds the release binary, installs networkx, numpy, scipy and pyemd from PyPI when missing
# (pyemd is optional: without it the 1-D EMD is computed from cumulative sums), then runs
# scripts/compare_networkx.py: on 100 community-small graphs and on 10 Delaunay graphs of 1000
# nodes it checks that every convention's four MMD² values agree to 1e-6 relative, and only
# then prints the times and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet
python3 -c 'import networkx, numpy, scipy' 2>/dev/null || pip install --quiet networkx numpy scipy
python3 -c 'import pyemd' 2>/dev/null || pip install --quiet pyemd || echo "pyemd did not install: EMD from cumulative sums"
python3 scripts/compare_networkx.py --diffc target/release/diffc "$@"
