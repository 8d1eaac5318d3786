#!/usr/bin/env python3
"""`diffc metrics` against the Python reference tooling (networkx, numpy, scipy, pyemd).

The Python side re-states the reference evaluation code (GraphRNN's `eval/`, GRAN's and
SPECTRE's `util/dist_helper.py` and `util/eval_helper.py`): networkx degree histograms and
clustering coefficients, numpy histograms, scipy's `eigvalsh` of networkx's normalised
Laplacian, the same kernels (Gaussian-TV, Gaussian-EMD through pyemd, Gaussian-L2), and the same
biased MMD² estimate with a double loop over pairs.
The reference code calls the ORCA C++ binary through temporary files for 4-node orbit counts;
ORCA is not on PyPI, so this script counts orbits with a pure-Python port of ORCA's equations.
When pyemd is missing, the 1-D EMD is the L1 distance between cumulative sums, which is what
pyemd computes for the |i - j| ground distance.

For each data set (100 community-small graphs; 10 Delaunay graphs of 1000 nodes) it checks that
both sides agree to 1e-6 relative under every convention, then reports times and the ratio.

Usage: python3 scripts/compare_networkx.py [--diffc target/release/diffc] [--workdir DIR]
                                          [--conventions spectre,spectre-emd,gran,graphrnn]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import networkx as nx
import numpy as np
from scipy.linalg import eigvalsh, toeplitz

try:
    import pyemd
except ImportError:  # pragma: no cover - depends on the machine
    pyemd = None

# ---------------------------------------------------------------- data sets (seeded)


def community_small(count, seed):
    """Two communities of n/2 nodes each (n even in 12..20): G(n/2, 0.7) inside, each cross pair
    linked with probability 0.1/(n/2), and at least one cross edge."""
    rng = np.random.default_rng(seed)
    graphs = []
    for _ in range(count):
        n = int(rng.choice([12, 14, 16, 18, 20]))
        half = n // 2
        g = nx.Graph()
        g.add_nodes_from(range(n))
        for block in (0, 1):
            for i in range(half):
                for j in range(i + 1, half):
                    if rng.random() < 0.7:
                        g.add_edge(block * half + i, block * half + j)
        cross = [(i, half + j) for i in range(half) for j in range(half)]
        linked = [e for e in cross if rng.random() < 0.1 / half]
        if not linked:
            linked = [cross[int(rng.integers(len(cross)))]]
        g.add_edges_from(linked)
        graphs.append(g)
    return graphs


def delaunay_graphs(count, nodes, seed):
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(seed)
    graphs = []
    for _ in range(count):
        points = rng.random((nodes, 2))
        tri = Delaunay(points)
        g = nx.Graph()
        g.add_nodes_from(range(nodes))
        for a, b, c in tri.simplices:
            g.add_edges_from([(a, b), (b, c), (a, c)])
        graphs.append(g)
    return graphs


def write_edge_lists(graphs, folder):
    os.makedirs(folder, exist_ok=True)
    for i, g in enumerate(graphs):
        with open(os.path.join(folder, f"g{i:04d}.txt"), "w") as f:
            f.write(f"nodes {g.number_of_nodes()}\n")
            for u, v in g.edges():
                f.write(f"{u} {v}\n")


def write_graph6(graphs, path):
    with open(path, "wb") as f:
        for g in graphs:
            f.write(nx.to_graph6_bytes(g, header=False))


# ---------------------------------------------------------------- the reference statistics


def degree_worker(g):
    return np.array(nx.degree_histogram(g))


def clustering_worker(g, bins=100):
    coeffs = list(nx.clustering(g).values())
    hist, _ = np.histogram(coeffs, bins=bins, range=(0.0, 1.0), density=False)
    return hist


def spectral_worker(g):
    eigs = eigvalsh(nx.normalized_laplacian_matrix(g).todense())
    pmf, _ = np.histogram(eigs, bins=200, range=(-1e-5, 2), density=False)
    return pmf / pmf.sum()


def orca_node_orbits(g):
    """ORCA's `node 4` counts (15 orbits per node) by ORCA's equations, in Python."""
    n = g.number_of_nodes()
    adj = [sorted(g.neighbors(v)) for v in range(n)]
    sets = [set(a) for a in adj]
    deg = [len(a) for a in adj]
    tri = {}
    for u in range(n):
        for v in adj[u]:
            if u < v:
                t = len(sets[u] & sets[v])
                tri[(u, v)] = t
                tri[(v, u)] = t
    k4 = [0] * n
    for x in range(n):
        for y in adj[x]:
            if y >= x:
                break
            below = [z for z in adj[y] if z < y and z in sets[x]]
            for i in range(len(below)):
                for j in range(i + 1, len(below)):
                    if below[j] in sets[below[i]]:
                        for v in (x, y, below[i], below[j]):
                            k4[v] += 1
    out = np.zeros((n, 15), dtype=np.int64)
    for x in range(n):
        o = [0] * 15
        o[0] = deg[x]
        f12_14 = f10_13 = f13_14 = f11_13 = f7_11 = f5_8 = f6_9 = f9_12 = f4_8 = f8_12 = 0
        f14 = k4[x]
        common = {}
        ax = adj[x]
        for i, y in enumerate(ax):
            t_xy = tri[(x, y)]
            for z in adj[y]:
                t_yz = tri[(y, z)]
                if z in sets[x]:
                    if z < y:
                        f12_14 += t_yz - 1
                        f10_13 += (deg[y] - 1 - t_yz) + (deg[z] - 1 - t_yz)
                else:
                    common[z] = common.get(z, 0) + 1
            for z in ax[i + 1:]:
                t_xz = tri[(x, z)]
                if z in sets[y]:
                    o[3] += 1
                    f13_14 += (t_xy - 1) + (t_xz - 1)
                    f11_13 += (deg[x] - 1 - t_xy) + (deg[x] - 1 - t_xz)
                else:
                    o[2] += 1
                    f7_11 += (deg[x] - 2 - t_xy) + (deg[x] - 2 - t_xz)
                    f5_8 += (deg[y] - 1 - t_xy) + (deg[z] - 1 - t_xz)
        for y in ax:
            t_xy = tri[(x, y)]
            for z in adj[y]:
                if z == x or z in sets[x]:
                    continue
                t_yz = tri[(y, z)]
                o[1] += 1
                f6_9 += deg[y] - 2 - t_xy
                f9_12 += t_yz
                f4_8 += deg[z] - 1 - t_yz
                f8_12 += common[z] - 1
        o[14] = f14
        o[13] = (f13_14 - 6 * f14) // 2
        o[12] = f12_14 - 3 * f14
        o[11] = (f11_13 - f13_14 + 6 * f14) // 2
        o[10] = f10_13 - f13_14 + 6 * f14
        o[9] = (f9_12 - 2 * f12_14 + 6 * f14) // 2
        o[8] = (f8_12 - 2 * f12_14 + 6 * f14) // 2
        o[7] = (f13_14 + f7_11 - f11_13 - 6 * f14) // 6
        o[6] = (2 * f12_14 + f6_9 - f9_12 - 6 * f14) // 2
        o[5] = 2 * f12_14 + f5_8 - f8_12 - 6 * f14
        o[4] = 2 * f12_14 + f4_8 - f8_12 - 6 * f14
        out[x] = o
    return out


def orbit_worker(g):
    return np.sum(orca_node_orbits(g), axis=0) / g.number_of_nodes()


# ---------------------------------------------------------------- the reference kernels


def pad(x, y):
    size = max(len(x), len(y))
    x = np.hstack((np.asarray(x, dtype=float), [0.0] * (size - len(x))))
    y = np.hstack((np.asarray(y, dtype=float), [0.0] * (size - len(y))))
    return x, y, size


def emd(x, y, distance_scaling=1.0):
    x, y, size = pad(x, y)
    if pyemd is not None:
        d_mat = toeplitz(range(size)).astype(float) / distance_scaling
        return pyemd.emd(x, y, d_mat)
    return np.abs(np.cumsum(x)[:-1] - np.cumsum(y)[:-1]).sum() / distance_scaling


def gaussian_emd(x, y, sigma=1.0, distance_scaling=1.0):
    d = emd(x, y, distance_scaling)
    return np.exp(-d * d / (2 * sigma * sigma))


def gaussian_tv(x, y, sigma=1.0):
    x, y, _ = pad(x, y)
    d = np.abs(x - y).sum() / 2.0
    return np.exp(-d * d / (2 * sigma * sigma))


def gaussian(x, y, sigma=1.0):
    x, y, _ = pad(x, y)
    d = np.linalg.norm(x - y, 2)
    return np.exp(-d * d / (2 * sigma * sigma))


def disc(s1, s2, kernel):
    d = 0.0
    for a in s1:
        for b in s2:
            d += kernel(a, b)
    return d / (len(s1) * len(s2))


def compute_mmd(s1, s2, kernel, norm):
    if norm == "sum":
        s1 = [s / np.sum(s) for s in s1]
        s2 = [s / np.sum(s) for s in s2]
    elif norm == "sum+eps":
        s1 = [s / (np.sum(s) + 1e-6) for s in s1]
        s2 = [s / (np.sum(s) + 1e-6) for s in s2]
    return disc(s1, s1, kernel) + disc(s2, s2, kernel) - 2 * disc(s1, s2, kernel)


def tv(sigma):
    return lambda x, y: gaussian_tv(x, y, sigma)


def gemd(sigma, scaling=1.0):
    return lambda x, y: gaussian_emd(x, y, sigma, scaling)


def l2(sigma):
    return lambda x, y: gaussian(x, y, sigma)


# (kernel, normalisation) per statistic, as `docs/metrics.md` states them.
CONVENTIONS = {
    "spectre": {
        "degree": (tv(1.0), "sum+eps"),
        "clustering": (tv(0.1), "sum+eps"),
        "orbit": (tv(30.0), None),
        "spectral": (tv(1.0), "sum+eps"),
    },
    "spectre-emd": {
        "degree": (gemd(1.0), "sum+eps"),
        "clustering": (gemd(0.1, 100), "sum+eps"),
        "orbit": (l2(30.0), None),
        "spectral": (gemd(1.0), "sum+eps"),
    },
    "gran": {
        "degree": (tv(1.0), "sum"),
        "clustering": (tv(0.1), "sum"),
        "orbit": (tv(30.0), None),
        "spectral": (tv(1.0), "sum"),
    },
    "graphrnn": {
        "degree": (gemd(1.0), "sum"),
        "clustering": (gemd(0.1, 100), "sum"),
        "orbit": (l2(30.0), None),
        "spectral": (gemd(1.0), "sum"),
    },
}

WORKERS = {
    "degree": degree_worker,
    "clustering": clustering_worker,
    "orbit": orbit_worker,
    "spectral": spectral_worker,
}


def reference_metrics(generated, reference, convention):
    """The four MMD² values and the seconds each took (statistics and MMD together)."""
    values, seconds = {}, {}
    for stat, worker in WORKERS.items():
        start = time.perf_counter()
        ref = [worker(g) for g in reference]
        gen = [worker(g) for g in generated if g.number_of_nodes() > 0]
        kernel, norm = CONVENTIONS[convention][stat]
        values[stat] = compute_mmd(ref, gen, kernel, norm)
        seconds[stat] = time.perf_counter() - start
    return values, seconds


def reference_unique(graphs):
    """SPECTRE's uniqueness: the fraction of graphs not isomorphic to an earlier one."""
    seen, repeats = [], 0
    for g in graphs:
        if any(nx.faster_could_be_isomorphic(g, h) and nx.is_isomorphic(g, h) for h in seen):
            repeats += 1
        else:
            seen.append(g)
    return (len(graphs) - repeats) / len(graphs)


def run_diffc(diffc, generated, reference, convention, metrics, repeats=3):
    best, out = None, None
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(
            [diffc, "metrics", generated, reference, "--convention", convention,
             "--metrics", metrics, "--format", "json"],
            capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"diffc failed ({proc.returncode}):\n{proc.stderr}")
        out = json.loads(proc.stdout)
        best = elapsed if best is None else min(best, elapsed)
    return out, best


def agree(a, b):
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b)) or abs(a - b) <= 1e-12


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--diffc", default="target/release/diffc")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--conventions", default=",".join(CONVENTIONS),
                        help="comma-separated conventions to check and time (default: all)")
    args = parser.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="diffc-metrics-")
    print(f"pyemd: {'yes' if pyemd is not None else 'no (numpy CDF differences)'}; "
          f"threads for diffc: {os.cpu_count()}; data in {work}")

    sets = [
        ("community-small x100", community_small(100, 1), community_small(100, 2), "folder"),
        ("delaunay 1000 nodes x10", delaunay_graphs(10, 1000, 3), delaunay_graphs(10, 1000, 4), "g6"),
    ]
    failures = 0
    rows = []
    for name, gen, ref, kind in sets:
        tag = name.split()[0]
        if kind == "folder":
            gen_path, ref_path = os.path.join(work, tag + "-gen"), os.path.join(work, tag + "-ref")
            write_edge_lists(gen, gen_path)
            write_edge_lists(ref, ref_path)
        else:
            gen_path, ref_path = os.path.join(work, tag + "-gen.g6"), os.path.join(work, tag + "-ref.g6")
            write_graph6(gen, gen_path)
            write_graph6(ref, ref_path)
        for convention in args.conventions.split(","):
            py_values, py_seconds = reference_metrics(gen, ref, convention)
            out, rust_seconds = run_diffc(args.diffc, gen_path, ref_path, convention,
                                          "degree,clustering,orbit,spectral")
            for stat, want in py_values.items():
                got = out["metrics"][stat]
                ok = agree(got, want)
                failures += not ok
                print(f"  {name:24} {convention:12} {stat:10} python {want:.10e} diffc {got:.10e}"
                      f"  {'ok' if ok else 'MISMATCH'}")
            py_total = sum(py_seconds.values())
            rows.append((name, convention, py_total, rust_seconds, py_seconds))
        if tag == "community-small":
            start = time.perf_counter()
            want = reference_unique(gen)
            py_unique = time.perf_counter() - start
            out, rust_seconds = run_diffc(args.diffc, gen_path, ref_path, "spectre", "unique")
            ok = agree(out["metrics"]["unique"], want)
            failures += not ok
            print(f"  {name:24} unique       python {want} diffc {out['metrics']['unique']}"
                  f"  {'ok' if ok else 'MISMATCH'}  ({py_unique:.3f} s vs {rust_seconds:.3f} s)")
    if failures:
        sys.exit(f"{failures} values disagree: no timings reported")
    print()
    print(f"{'data set':26} {'convention':12} {'python s':>9} {'diffc s':>8} {'ratio':>7}   python per statistic")
    for name, convention, py_total, rust_seconds, per in rows:
        detail = ", ".join(f"{k} {v:.2f}" for k, v in per.items())
        print(f"{name:26} {convention:12} {py_total:9.3f} {rust_seconds:8.3f} {py_total / rust_seconds:7.1f}x   {detail}")


if __name__ == "__main__":
    main()
