//! Eigenvalues of the normalised Laplacian.
//!
//! The matrix is networkx's `normalized_laplacian_matrix`: `D^-1/2 (D - A) D^-1/2`, where an
//! isolated node has a zero row (its `D^-1/2` entry is taken as 0, so its diagonal is 0, not 1).
//!
//! The matrix is block-diagonal over the connected components, so its eigenvalues are the union
//! of theirs; an isolated node contributes the eigenvalue 0.
//! A component of `m` nodes is reduced to a symmetric tridiagonal matrix in one of two ways:
//! - dense: Householder reduction of the whole `m × m` block, about (4/3) m³ operations;
//! - band: the nodes are numbered in Cuthill–McKee order (breadth first from a
//!   pseudo-peripheral node, which gives a matrix whose entries lie near the diagonal: within
//!   O(√m) of it for a planar mesh), and the matrix is reduced by Householder bulge chasing in
//!   blocks that follow its profile, in O(m² · block size) operations, storing only a band of
//!   two blocks' width.
//!
//! The band path is taken when the component has at least [`BAND_MIN_NODES`] nodes and its
//! estimated operation count is below m³; otherwise the dense one. Before either, a component
//! of at least [`BAND_MIN_NODES`] nodes whose twins (nodes with the same neighbours) make up
//! at least half of it is reduced to its quotient by them (`twin_quotient`): each class of k
//! twins gives the eigenvalue 1 k − 1 times, and the quotient the rest. A star of 10,000
//! leaves, dense in any node order, is then a 2 × 2 matrix.
//! Either way the eigenvalues of the tridiagonal matrix come from the root-free QL method of
//! Pal, Walker and Kahan, in f64, and the two paths agree to rounding.
//!
//! Kept by hand rather than faer's `self_adjoint_eigenvalues` (faer 0.24.4, issue 21), because
//! faer is slower on the spectra users score. `scripts/spectrum_faer` runs both on the same
//! graphs, one thread each, alternated, medians of 7 (release builds, 2026-12-08, the 2-core
//! development machine under load); time for faer over time for this module:
//! - 1000-node Delaunay graphs 2.15×, 25 × 40 grids 3.12× (band path);
//! - the default sets: SBM (2–5 blocks of 20–40) 1.43×, planar of 64 nodes 1.38×, grids of
//!   sides 10–19 1.81×, community-small 2.13×;
//! - a star of 10,000 leaves: 261 s against 0.52 ms (twin quotient);
//! - 1000-node SBM graphs (5 blocks of 200 or 25 of 40, p 0.3 and 0.005): 0.52× and 0.48×,
//!   faer twice as fast: their components take the dense path, where faer's blocked reduction
//!   beats `tridiagonalize` at that size.
//!
//! The eigenvalues agree to 3 × 10⁻¹³.

use super::Graph;

/// The fewest nodes in a component for the band path.
pub const BAND_MIN_NODES: usize = 64;

/// The eigenvalues of the normalised Laplacian, ascending.
pub fn normalized_laplacian_eigenvalues(g: &Graph) -> Vec<f64> {
    eigenvalues_by_components(g, false)
}

/// `D^-1/2` of each node, 0 for an isolated node.
fn inverse_sqrt_degrees(g: &Graph) -> Vec<f64> {
    (0..g.nodes())
        .map(|v| {
            let d = g.degree(v);
            if d == 0 {
                0.0
            } else {
                1.0 / (d as f64).sqrt()
            }
        })
        .collect()
}

/// The eigenvalues component by component; `force_band` takes the band path for every
/// component of two or more nodes.
fn eigenvalues_by_components(g: &Graph, force_band: bool) -> Vec<f64> {
    let n = g.nodes();
    let scale = inverse_sqrt_degrees(g);
    let mut search = Search::new(n);
    let mut eig = Vec::with_capacity(n);
    let mut pos = vec![0usize; n];
    for comp in search.components(g) {
        let m = comp.len();
        if m == 1 {
            // An isolated node's row is zero.
            eig.push(0.0);
            continue;
        }
        if m >= BAND_MIN_NODES && !force_band {
            if let Some((r, quotient)) = twin_quotient(g, &comp, &mut pos) {
                eig.extend(std::iter::repeat_n(1.0, m - r));
                eig.extend(symmetric_eigenvalues(r, quotient));
                continue;
            }
        }
        let plan = if m < BAND_MIN_NODES && !force_band {
            None
        } else {
            let plan = search.band_plan(g, &comp, &mut pos);
            // The dense reduction does about (4/3) m³ operations at a higher rate.
            let dense_cost = m as f64 * m as f64 * m as f64;
            (force_band || plan.cost < dense_cost).then_some(plan)
        };
        match plan {
            Some(plan) => {
                for (i, &u) in plan.order.iter().enumerate() {
                    pos[u] = i;
                }
                let mut band = Band::new(m, plan.width);
                for (i, &u) in plan.order.iter().enumerate() {
                    band.set(i, i, 1.0);
                    for &v in g.neighbours(u) {
                        let j = pos[v as usize];
                        if j < i {
                            band.set(i, j, -scale[u] * scale[v as usize]);
                        }
                    }
                }
                let (mut d, mut e) = band_tridiagonalize(m, &plan.ends, &mut band);
                tridiagonal_eigenvalues(&mut d, &mut e);
                eig.extend(d);
            }
            None => {
                for (i, &u) in comp.iter().enumerate() {
                    pos[u] = i;
                }
                let mut a = vec![0.0; m * m];
                for (i, &u) in comp.iter().enumerate() {
                    a[i * m + i] = 1.0;
                    for &v in g.neighbours(u) {
                        a[i * m + pos[v as usize]] = -scale[u] * scale[v as usize];
                    }
                }
                eig.extend(symmetric_eigenvalues(m, a));
            }
        }
    }
    eig.sort_by(f64::total_cmp);
    eig
}

/// The quotient of a component by its twins, where that at least halves it: `(r, M)` with `M`
/// the `r × r` row-major matrix over the twin classes. Twins are nodes with the same
/// neighbours (so never adjacent to each other, and of one degree d); for a class C of k
/// twins, each vector that is zero outside C and sums to 0 on it is an eigenvector of the
/// normalised Laplacian with eigenvalue 1 (its image under A is 0), which gives k − 1 of them,
/// and the rest of the spectrum is that of M, with M[C, C] = 1 and, for adjacent classes,
/// M[C, C'] = −√(k k′) / √(d d′). A star of n leaves reduces to 2 × 2; a component without
/// many twins is left to the band or dense path. `class` receives each node's class.
fn twin_quotient(g: &Graph, comp: &[usize], class: &mut [usize]) -> Option<(usize, Vec<f64>)> {
    let mut index: std::collections::HashMap<&[u32], usize> = std::collections::HashMap::new();
    let mut members: Vec<(usize, usize)> = Vec::new(); // (a node, the class size)
    for &u in comp {
        let next = members.len();
        let c = *index.entry(g.neighbours(u)).or_insert(next);
        if c == next {
            members.push((u, 0));
        }
        members[c].1 += 1;
        class[u] = c;
    }
    let r = members.len();
    if 2 * r > comp.len() {
        return None;
    }
    let mut q = vec![0.0; r * r];
    for (c, &(u, k)) in members.iter().enumerate() {
        q[c * r + c] = 1.0;
        let du = g.degree(u) as f64;
        for &v in g.neighbours(u) {
            let c2 = class[v as usize];
            let (v_rep, k2) = members[c2];
            let dv = g.degree(v_rep) as f64;
            q[c * r + c2] = -((k * k2) as f64).sqrt() / (du * dv).sqrt();
        }
    }
    Some((r, q))
}

/// How to reduce one connected component by bulge chasing: the node order, the block ends of
/// the first sweep, the band width to store, and an estimate of the operations.
struct Plan {
    order: Vec<usize>,
    ends: Vec<usize>,
    width: usize,
    cost: f64,
}

impl Plan {
    /// The plan for the nodes of a component in `order`; `pos` receives each node's index.
    ///
    /// Block 0 is row 0; block `k + 1` ends at the last row that any column of block `k` reaches
    /// (at least one row further), so each block's columns have no entries below the next
    /// block. Sweep `j` uses the same blocks shifted by `j`.
    fn new(g: &Graph, order: Vec<usize>, pos: &mut [usize]) -> Plan {
        let m = order.len();
        for (i, &u) in order.iter().enumerate() {
            pos[u] = i;
        }
        let last: Vec<usize> = order
            .iter()
            .enumerate()
            .map(|(c, &u)| {
                g.neighbours(u)
                    .iter()
                    .map(|&v| pos[v as usize])
                    .fold(c, usize::max)
            })
            .collect();
        let mut ends = vec![0];
        let (mut lo, mut hi) = (0, 0);
        while hi + 1 < m {
            let reach = last[lo..=hi].iter().copied().fold(hi + 1, usize::max);
            ends.push(reach.min(m - 1));
            (lo, hi) = (hi + 1, reach.min(m - 1));
        }
        let sizes: Vec<usize> = ends.windows(2).map(|e| e[1] - e[0]).collect();
        let width = (0..sizes.len())
            .map(|k| sizes[k] + sizes.get(k + 1).copied().unwrap_or(0))
            .max()
            .unwrap_or(1);
        // Per block of `r` rows below a block of `c`, in each sweep that reaches it: 4r² for the
        // diagonal block, 8rc for the block to its left. Block k starts in sweeps
        // j < m − 1 − ends[k − 1] (counted whole where the end of the matrix cuts it).
        let mut cost = 0.0;
        let mut above = 1;
        for (k, &r) in sizes.iter().enumerate() {
            let sweeps = (m - 1 - ends[k]).min(m.saturating_sub(2));
            cost += (4 * r * r + 8 * r * above) as f64 * sweeps as f64;
            above = r;
        }
        Plan {
            order,
            ends,
            width,
            cost,
        }
    }
}

/// Breadth-first searches over one graph, with a visit stamp per node so that the marks need
/// no clearing between searches.
struct Search {
    stamp: Vec<u32>,
    current: u32,
}

impl Search {
    fn new(n: usize) -> Search {
        Search {
            stamp: vec![0; n],
            current: 0,
        }
    }

    fn fresh(&mut self) {
        self.current += 1;
    }

    /// Marks `v` visited in the current search; false if it already was.
    fn visit(&mut self, v: usize) -> bool {
        if self.stamp[v] == self.current {
            false
        } else {
            self.stamp[v] = self.current;
            true
        }
    }

    /// The connected components, each ascending, ordered by their smallest node.
    fn components(&mut self, g: &Graph) -> Vec<Vec<usize>> {
        self.fresh();
        let mut comps = Vec::new();
        for s in 0..g.nodes() {
            if !self.visit(s) {
                continue;
            }
            let mut comp = vec![s];
            let mut head = 0;
            while head < comp.len() {
                let u = comp[head];
                head += 1;
                for &w in g.neighbours(u) {
                    if self.visit(w as usize) {
                        comp.push(w as usize);
                    }
                }
            }
            comp.sort_unstable();
            comps.push(comp);
        }
        comps
    }

    /// Breadth-first order from `start`, with each node's unvisited neighbours taken by
    /// ascending degree (then index); also the index in that order where each level begins.
    fn levels(&mut self, g: &Graph, start: usize, size: usize) -> (Vec<usize>, Vec<usize>) {
        self.fresh();
        self.visit(start);
        let mut order = Vec::with_capacity(size);
        let mut starts = vec![0];
        order.push(start);
        let mut head = 0;
        let mut level_end = 1;
        while head < order.len() {
            let u = order[head];
            head += 1;
            let first = order.len();
            for &w in g.neighbours(u) {
                if self.visit(w as usize) {
                    order.push(w as usize);
                }
            }
            order[first..].sort_unstable_by_key(|&w| (g.degree(w), w));
            if head == level_end && order.len() > level_end {
                starts.push(level_end);
                level_end = order.len();
            }
        }
        (order, starts)
    }

    /// The cheapest of four plans for a connected component (listed ascending): the
    /// Cuthill–McKee orders from both ends of a pseudo-peripheral pair, found as George and Liu
    /// do (start at a node of least degree and move to a least-degree node of the last level
    /// while the eccentricity grows), and their reverses.
    fn band_plan(&mut self, g: &Graph, comp: &[usize], pos: &mut [usize]) -> Plan {
        let m = comp.len();
        let least = |nodes: &[usize]| {
            nodes
                .iter()
                .copied()
                .min_by_key(|&u| (g.degree(u), u))
                .expect("not empty")
        };
        let (mut order, mut starts) = self.levels(g, least(comp), m);
        let far = loop {
            let next = least(&order[*starts.last().expect("one level at least")..]);
            let (order2, starts2) = self.levels(g, next, m);
            if starts2.len() > starts.len() {
                (order, starts) = (order2, starts2);
            } else {
                break next;
            }
        };
        let (back, _) = self.levels(g, far, m);
        let mut best: Option<Plan> = None;
        for mut candidate in [order, back] {
            for _ in 0..2 {
                let plan = Plan::new(g, candidate.clone(), pos);
                if best.as_ref().is_none_or(|b| plan.cost < b.cost) {
                    best = Some(plan);
                }
                candidate.reverse();
            }
        }
        best.expect("four candidates")
    }
}

/// The lower band of a symmetric matrix, row by row: row `i` holds columns `i − w ..= i`, and
/// entry `(i, c)` lies at `(i + 1)·w + c`, so that a run of columns of one row is contiguous.
struct Band {
    w: usize,
    a: Vec<f64>,
}

impl Band {
    fn new(n: usize, w: usize) -> Band {
        Band {
            w,
            a: vec![0.0; n * (w + 1)],
        }
    }

    #[inline(always)]
    fn at(&self, i: usize, c: usize) -> usize {
        debug_assert!(c <= i && i - c <= self.w);
        (i + 1) * self.w + c
    }

    #[inline(always)]
    fn set(&mut self, i: usize, c: usize, x: f64) {
        let k = self.at(i, c);
        self.a[k] = x;
    }

    #[inline(always)]
    fn get(&self, i: usize, c: usize) -> f64 {
        self.a[self.at(i, c)]
    }

    /// Row `i`, columns `c0 .. c1` (exclusive).
    #[inline(always)]
    fn row(&mut self, i: usize, c0: usize, c1: usize) -> &mut [f64] {
        let k = self.at(i, c0);
        &mut self.a[k..k + (c1 - c0)]
    }
}

/// Turns `x` into the vector `v` of the reflector `H = I − β v vᵀ` with `H x = (α, 0, …, 0)` and
/// returns `(α, β)`; `None` (and `x` unchanged) when `x[1..]` is already zero.
#[inline(always)]
fn householder(x: &mut [f64]) -> Option<(f64, f64)> {
    if x.len() < 2 {
        return None;
    }
    let tail: f64 = x[1..].iter().map(|v| v * v).sum();
    if tail < f64::MIN_POSITIVE {
        return None;
    }
    let norm = (x[0] * x[0] + tail).sqrt();
    let alpha = if x[0] > 0.0 { -norm } else { norm };
    x[0] -= alpha;
    Some((alpha, 2.0 / (x[0] * x[0] + tail)))
}

/// `A ← H A H` on the diagonal block of rows and columns `r0 .. r0 + v.len()`, lower triangle.
#[inline(always)]
fn two_sided<const AVX2: bool>(band: &mut Band, r0: usize, v: &[f64], beta: f64, p: &mut [f64]) {
    let m = v.len();
    let p = &mut p[..m];
    p.iter_mut().for_each(|x| *x = 0.0);
    for ii in 0..m {
        let i = r0 + ii;
        let vi = v[ii];
        let row = band.row(i, r0, i + 1);
        let (off, diag) = row.split_at(ii);
        let s = sum::dot_and_axpy::<AVX2>(off, &v[..ii], vi, &mut p[..ii]);
        p[ii] += s + diag[0] * vi;
    }
    for x in p.iter_mut() {
        *x *= beta;
    }
    let kappa = 0.5 * beta * v.iter().zip(p.iter()).map(|(a, b)| a * b).sum::<f64>();
    for (x, &vi) in p.iter_mut().zip(v) {
        *x -= kappa * vi;
    }
    for ii in 0..m {
        let (vi, wi) = (v[ii], p[ii]);
        let row = band.row(r0 + ii, r0, r0 + ii + 1);
        for ((x, &vj), &wj) in row.iter_mut().zip(&v[..=ii]).zip(&p[..=ii]) {
            *x -= vi * wj + wi * vj;
        }
    }
}

/// Reduces a symmetric band matrix to tridiagonal form by Householder bulge chasing, returning
/// the diagonal and the off-diagonal (`e[i]` joins `i` and `i + 1`).
///
/// `ends` are the last rows of the blocks of the first sweep (`ends[0] = 0`, the last is
/// `n − 1`): the entries of each block's columns lie within the block and the next one, and the
/// band must hold two consecutive blocks.
/// Sweep `j` uses the blocks shifted by `j`: a reflector on block 1 annihilates column `j`
/// below its subdiagonal and is applied to the diagonal block of block 1; applied from the
/// right to the rows of block 2 it fills them, and a reflector on block 2 annihilates the first
/// column of that fill and is applied to it and to block 2's diagonal block, and so on down the
/// matrix. The rest of each fill lies in the columns of the next sweep's blocks, whose
/// reflectors annihilate it in turn.
///
/// On x86-64 CPUs with AVX2 the same code runs compiled for AVX2; the operations and their
/// order are the same, so the results are too.
fn band_tridiagonalize(n: usize, ends: &[usize], band: &mut Band) -> (Vec<f64>, Vec<f64>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { band_tridiagonalize_avx2(n, ends, band) };
        }
    }
    band_tridiagonalize_any::<false>(n, ends, band)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn band_tridiagonalize_avx2(
    n: usize,
    ends: &[usize],
    band: &mut Band,
) -> (Vec<f64>, Vec<f64>) {
    band_tridiagonalize_any::<true>(n, ends, band)
}

#[inline(always)]
fn band_tridiagonalize_any<const AVX2: bool>(
    n: usize,
    ends: &[usize],
    band: &mut Band,
) -> (Vec<f64>, Vec<f64>) {
    let most = ends.windows(2).map(|e| e[1] - e[0]).max().unwrap_or(0);
    let mut v = vec![0.0; most];
    let mut prev = vec![0.0; most];
    let mut p = vec![0.0; most];
    let mut s = vec![0.0; most];
    let mut t = vec![0.0; most];
    for j in 0..n.saturating_sub(2) {
        // Block 1: rows r0 .. r1, below column j.
        let (r0, r1) = (j + 1, (ends[1] + j + 1).min(n));
        let len = r1 - r0;
        for (k, x) in v[..len].iter_mut().enumerate() {
            *x = band.get(r0 + k, j);
        }
        let mut beta_prev = match householder(&mut v[..len]) {
            Some((alpha, beta)) => {
                band.set(r0, j, alpha);
                for r in r0 + 1..r1 {
                    band.set(r, j, 0.0);
                }
                two_sided::<AVX2>(band, r0, &v[..len], beta, &mut p);
                beta
            }
            None => 0.0,
        };
        std::mem::swap(&mut v, &mut prev);
        // Block k: rows q0 .. q1; the columns c0 .. c1 of block k − 1 to its left, C below.
        let (mut c0, mut c1) = (r0, r1);
        for e in &ends[2..] {
            if c1 >= n {
                break;
            }
            let (q0, q1) = (c1, (e + j + 1).min(n));
            let (rows, cols) = (q1 - q0, c1 - c0);
            let u = &prev[..cols];
            // C ← C H: row r loses s[r]·u, with s[r] = β (C[r]·u). Its first column gives the
            // next reflector.
            for (k, sk) in s[..rows].iter_mut().enumerate() {
                let row = band.row(q0 + k, c0, c1);
                *sk = if beta_prev == 0.0 {
                    0.0
                } else {
                    beta_prev * sum::dot::<AVX2>(row, u)
                };
                v[k] = row[0] - *sk * u[0];
            }
            // Then C ← H' C with the new reflector, leaving its first column (α, 0, …).
            let reflector = householder(&mut v[..rows]);
            let beta = reflector.map_or(0.0, |(_, beta)| beta);
            let t = &mut t[..cols - 1];
            t.iter_mut().for_each(|x| *x = 0.0);
            for k in 0..rows {
                let row = band.row(q0 + k, c0, c1);
                let (sk, vk) = (s[k], v[k]);
                row[0] -= sk * u[0];
                for ((x, &ui), tc) in row[1..].iter_mut().zip(&u[1..]).zip(t.iter_mut()) {
                    let y = *x - sk * ui;
                    *x = y;
                    *tc += vk * y;
                }
            }
            if let Some((alpha, beta)) = reflector {
                for (k, &vk) in v[..rows].iter().enumerate() {
                    let row = band.row(q0 + k, c0, c1);
                    let w = beta * vk;
                    row[0] = if k == 0 { alpha } else { 0.0 };
                    for (x, &y) in row[1..].iter_mut().zip(t.iter()) {
                        *x -= w * y;
                    }
                }
                two_sided::<AVX2>(band, q0, &v[..rows], beta, &mut p);
            }
            beta_prev = beta;
            std::mem::swap(&mut v, &mut prev);
            (c0, c1) = (q0, q1);
        }
    }
    let d: Vec<f64> = (0..n).map(|i| band.get(i, i)).collect();
    let mut e = vec![0.0; n];
    for (i, x) in e.iter_mut().enumerate().take(n.saturating_sub(1)) {
        *x = band.get(i + 1, i);
    }
    (d, e)
}

/// The sums of products of the band path, in one order of additions whether or not they run
/// on AVX2 vectors: products of eight consecutive entries go to two sets of four partial sums,
/// a last group of four to the first set; the sets are added lane by lane, the lanes as
/// `(0 + 1) + (2 + 3)`, and the last entries one by one.
mod sum {
    /// `Σ x[j]·y[j]`; `AVX2` only where the caller is compiled for AVX2.
    #[inline(always)]
    pub(super) fn dot<const AVX2: bool>(x: &[f64], y: &[f64]) -> f64 {
        assert_eq!(x.len(), y.len());
        #[cfg(target_arch = "x86_64")]
        if AVX2 {
            // SAFETY: the lengths agree and the caller runs on AVX2.
            return unsafe { avx2::dot_and_axpy::<false>(x, y, 0.0, &mut []) };
        }
        dot_and_axpy_any::<false>(x, y, 0.0, &mut [])
    }

    /// `Σ row[j]·x[j]`, and `y[j] += a·row[j]`.
    #[inline(always)]
    pub(super) fn dot_and_axpy<const AVX2: bool>(
        row: &[f64],
        x: &[f64],
        a: f64,
        y: &mut [f64],
    ) -> f64 {
        assert!(row.len() == x.len() && row.len() == y.len());
        #[cfg(target_arch = "x86_64")]
        if AVX2 {
            // SAFETY: the lengths agree and the caller runs on AVX2.
            return unsafe { avx2::dot_and_axpy::<true>(row, x, a, y) };
        }
        dot_and_axpy_any::<true>(row, x, a, y)
    }

    #[inline(always)]
    fn dot_and_axpy_any<const AXPY: bool>(row: &[f64], x: &[f64], a: f64, y: &mut [f64]) -> f64 {
        let n = row.len();
        let (mut p, mut q) = ([0.0; 4], [0.0; 4]);
        let mut i = 0;
        while i + 8 <= n {
            for l in 0..4 {
                p[l] += row[i + l] * x[i + l];
                q[l] += row[i + 4 + l] * x[i + 4 + l];
            }
            i += 8;
        }
        if i + 4 <= n {
            for l in 0..4 {
                p[l] += row[i + l] * x[i + l];
            }
            i += 4;
        }
        let lanes: [f64; 4] = std::array::from_fn(|l| p[l] + q[l]);
        let mut sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        for j in i..n {
            sum += row[j] * x[j];
        }
        if AXPY {
            for (yj, &r) in y.iter_mut().zip(row) {
                *yj += a * r;
            }
        }
        sum
    }

    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        use std::arch::x86_64::*;

        /// As `dot_and_axpy_any`, on AVX2 vectors.
        ///
        /// SAFETY: `x` (and `y` when `AXPY`) are as long as `row`, and the CPU has AVX2.
        #[inline(always)]
        pub(super) unsafe fn dot_and_axpy<const AXPY: bool>(
            row: &[f64],
            x: &[f64],
            a: f64,
            y: &mut [f64],
        ) -> f64 {
            let n = row.len();
            let (r, xp, yp) = (row.as_ptr(), x.as_ptr(), y.as_mut_ptr());
            let av = _mm256_set1_pd(a);
            let (mut p, mut q) = (_mm256_setzero_pd(), _mm256_setzero_pd());
            let mut i = 0;
            while i + 8 <= n {
                let (r0, r1) = (_mm256_loadu_pd(r.add(i)), _mm256_loadu_pd(r.add(i + 4)));
                p = _mm256_add_pd(p, _mm256_mul_pd(r0, _mm256_loadu_pd(xp.add(i))));
                q = _mm256_add_pd(q, _mm256_mul_pd(r1, _mm256_loadu_pd(xp.add(i + 4))));
                if AXPY {
                    let y0 = _mm256_add_pd(_mm256_loadu_pd(yp.add(i)), _mm256_mul_pd(av, r0));
                    let y1 = _mm256_add_pd(_mm256_loadu_pd(yp.add(i + 4)), _mm256_mul_pd(av, r1));
                    _mm256_storeu_pd(yp.add(i), y0);
                    _mm256_storeu_pd(yp.add(i + 4), y1);
                }
                i += 8;
            }
            if i + 4 <= n {
                let r0 = _mm256_loadu_pd(r.add(i));
                p = _mm256_add_pd(p, _mm256_mul_pd(r0, _mm256_loadu_pd(xp.add(i))));
                if AXPY {
                    let y0 = _mm256_add_pd(_mm256_loadu_pd(yp.add(i)), _mm256_mul_pd(av, r0));
                    _mm256_storeu_pd(yp.add(i), y0);
                }
                i += 4;
            }
            let mut lanes = [0.0; 4];
            _mm256_storeu_pd(lanes.as_mut_ptr(), _mm256_add_pd(p, q));
            let mut sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
            for j in i..n {
                sum += row[j] * x[j];
                if AXPY {
                    y[j] += a * row[j];
                }
            }
            sum
        }
    }
}

/// The eigenvalues of a symmetric `n × n` matrix given in row-major order, ascending.
pub fn symmetric_eigenvalues(n: usize, mut a: Vec<f64>) -> Vec<f64> {
    assert_eq!(a.len(), n * n);
    if n == 0 {
        return Vec::new();
    }
    let (mut d, mut e) = tridiagonalize(n, &mut a);
    tridiagonal_eigenvalues(&mut d, &mut e);
    d.sort_by(f64::total_cmp);
    d
}

/// Householder reduction: the diagonal and the off-diagonal (`e[i]` joins `i` and `i + 1`).
fn tridiagonalize(n: usize, a: &mut [f64]) -> (Vec<f64>, Vec<f64>) {
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    let mut v = vec![0.0; n];
    let mut p = vec![0.0; n];
    for k in 0..n.saturating_sub(2) {
        let start = k + 1;
        let norm = (start..n).map(|i| a[i * n + k].powi(2)).sum::<f64>().sqrt();
        d[k] = a[k * n + k];
        if norm == 0.0 {
            e[k] = 0.0;
            continue;
        }
        let x0 = a[start * n + k];
        let alpha = if x0 > 0.0 { -norm } else { norm };
        for i in start..n {
            v[i] = a[i * n + k];
        }
        v[start] -= alpha;
        let vtv = (start..n).map(|i| v[i] * v[i]).sum::<f64>();
        e[k] = alpha;
        if vtv == 0.0 {
            continue;
        }
        // p = A v · 2/vᵀv from the lower triangle; w = p − (vᵀp / vᵀv) v;
        // then A −= v wᵀ + w vᵀ on the lower triangle of the trailing block.
        let beta = 2.0 / vtv;
        p[start..n].iter_mut().for_each(|x| *x = 0.0);
        for i in start..n {
            let row = &a[i * n + start..i * n + i];
            let vi = v[i];
            let s = dot_and_axpy(row, &v[start..i], vi, &mut p[start..i]);
            p[i] += s + a[i * n + i] * vi;
        }
        for x in &mut p[start..n] {
            *x *= beta;
        }
        let kappa = (start..n).map(|i| v[i] * p[i]).sum::<f64>() / vtv;
        for i in start..n {
            p[i] -= kappa * v[i];
        }
        for i in start..n {
            let (vi, wi) = (v[i], p[i]);
            let row = &mut a[i * n + start..i * n + i + 1];
            for ((x, &vj), &wj) in row.iter_mut().zip(&v[start..=i]).zip(&p[start..=i]) {
                *x -= vi * wj + wi * vj;
            }
        }
    }
    if n >= 2 {
        d[n - 2] = a[(n - 2) * n + n - 2];
        e[n - 2] = a[(n - 1) * n + n - 2];
    }
    d[n - 1] = a[(n - 1) * n + n - 1];
    e[n - 1] = 0.0;
    (d, e)
}

/// Σ row[j]·x[j], and y[j] += a·row[j], in one pass with four partial sums.
#[inline(always)]
fn dot_and_axpy(row: &[f64], x: &[f64], a: f64, y: &mut [f64]) -> f64 {
    let mut acc = [0.0; 4];
    let split = row.len() / 4 * 4;
    for ((r, xs), ys) in row[..split]
        .chunks_exact(4)
        .zip(x[..split].chunks_exact(4))
        .zip(y[..split].chunks_exact_mut(4))
    {
        for k in 0..4 {
            acc[k] += r[k] * xs[k];
            ys[k] += a * r[k];
        }
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for j in split..row.len() {
        sum += row[j] * x[j];
        y[j] += a * row[j];
    }
    sum
}

/// The eigenvalues of a symmetric tridiagonal matrix by the root-free QL method of Pal, Walker
/// and Kahan (as LAPACK's `dsterf` runs it): the iteration works on the squares of the
/// off-diagonal entries, one division pair and no square root per rotation. The eigenvalues
/// replace `d`; `e` (`e[i]` joins `i` and `i + 1`) is overwritten.
fn tridiagonal_eigenvalues(d: &mut [f64], e: &mut [f64]) {
    let n = d.len();
    if n <= 1 {
        return;
    }
    // Squares of entries far from 1 could overflow or underflow: scale by a power of two.
    let norm = d
        .iter()
        .chain(e.iter())
        .fold(0.0, |m: f64, x| m.max(x.abs()));
    let scale = if norm.is_finite() && norm > 0.0 && !(1e-100..=1e100).contains(&norm) {
        2f64.powi(-(norm.log2().round() as i32))
    } else {
        1.0
    };
    if scale != 1.0 {
        d.iter_mut().chain(e.iter_mut()).for_each(|x| *x *= scale);
    }
    let e2: &mut [f64] = e;
    for x in e2.iter_mut() {
        *x *= *x;
    }
    e2[n - 1] = 0.0;
    let negligible = |e2: f64, a: f64, b: f64| {
        let t = f64::EPSILON * (a.abs() + b.abs());
        e2 <= t * t
    };
    let mut budget = 30 * n;
    let mut l = 0;
    while l < n {
        // The unreduced block l ..= m.
        let mut m = l;
        while m + 1 < n && !negligible(e2[m], d[m], d[m + 1]) {
            m += 1;
        }
        if m + 1 < n {
            e2[m] = 0.0;
        }
        if m == l {
            l += 1;
            continue;
        }
        if m == l + 1 {
            let (a, b) = eigenvalues_2x2(d[l], e2[l].sqrt(), d[l + 1]);
            (d[l], d[l + 1], e2[l]) = (a, b, 0.0);
            l += 2;
            continue;
        }
        if budget == 0 {
            break;
        }
        budget -= 1;
        // Shift from the leading 2 × 2 block, then one sweep from m up to l.
        let p = d[l];
        let rte = e2[l].sqrt();
        let mut sigma = (d[l + 1] - p) / (2.0 * rte);
        let r = sigma.hypot(1.0);
        sigma = p - rte / (sigma + r.copysign(sigma));
        let (mut c, mut s) = (1.0, 0.0);
        let mut gamma = d[m] - sigma;
        let mut p = gamma * gamma;
        for i in (l..m).rev() {
            let bb = e2[i];
            let r = p + bb;
            if i + 1 != m {
                e2[i + 1] = s * r;
            }
            let oldc = c;
            c = p / r;
            s = bb / r;
            let oldgam = gamma;
            let alpha = d[i];
            gamma = c * (alpha - sigma) - s * oldgam;
            d[i + 1] = oldgam + (alpha - gamma);
            p = if c != 0.0 {
                gamma * gamma / c
            } else {
                oldc * bb
            };
        }
        e2[l] = s * p;
        d[l] = sigma + gamma;
    }
    if scale != 1.0 {
        d.iter_mut().for_each(|x| *x /= scale);
    }
}

/// The eigenvalues of `[[a, b], [b, c]]`, larger first in absolute value (LAPACK's `dlae2`).
fn eigenvalues_2x2(a: f64, b: f64, c: f64) -> (f64, f64) {
    let (sm, adf, ab) = (a + c, (a - c).abs(), (2.0 * b).abs());
    let (acmx, acmn) = if a.abs() > c.abs() { (a, c) } else { (c, a) };
    let rt = if adf > ab {
        adf * (1.0 + (ab / adf).powi(2)).sqrt()
    } else if adf < ab {
        ab * (1.0 + (adf / ab).powi(2)).sqrt()
    } else {
        ab * std::f64::consts::SQRT_2
    };
    if sm == 0.0 {
        (0.5 * rt, -0.5 * rt)
    } else {
        let rt1 = 0.5 * (sm + rt.copysign(sm));
        (rt1, (acmx / rt1) * acmn - (b / rt1) * b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The eigenvalues of the whole `n × n` matrix, dense, without splitting components.
    fn dense_eigenvalues(g: &Graph) -> Vec<f64> {
        let n = g.nodes();
        let scale = inverse_sqrt_degrees(g);
        let mut a = vec![0.0; n * n];
        for v in 0..n {
            if g.degree(v) > 0 {
                a[v * n + v] = 1.0;
            }
            for &w in g.neighbours(v) {
                let w = w as usize;
                a[v * n + w] = -scale[v] * scale[w];
            }
        }
        symmetric_eigenvalues(n, a)
    }

    /// SplitMix64, for seeded test graphs.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn gnp(rng: &mut Rng, n: usize, p: f64) -> Graph {
        let mut edges = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                if rng.unit() < p {
                    edges.push((i, j));
                }
            }
        }
        Graph::from_edges(n, edges)
    }

    /// Points in the unit square joined when closer than `r`, nodes in random order: sparse and
    /// mesh-like, so the band path takes it when it is large.
    fn geometric(rng: &mut Rng, n: usize, r: f64) -> Graph {
        let pts: Vec<(f64, f64)> = (0..n).map(|_| (rng.unit(), rng.unit())).collect();
        Graph::from_dense(n, |i, j| {
            let (dx, dy) = (pts[i].0 - pts[j].0, pts[i].1 - pts[j].1);
            dx * dx + dy * dy < r * r
        })
    }

    fn grid(w: usize, h: usize) -> Graph {
        let mut edges = Vec::new();
        for y in 0..h {
            for x in 0..w {
                if x + 1 < w {
                    edges.push((y * w + x, y * w + x + 1));
                }
                if y + 1 < h {
                    edges.push((y * w + x, (y + 1) * w + x));
                }
            }
        }
        Graph::from_edges(w * h, edges)
    }

    /// The disjoint union, the nodes of the parts interleaved by a random permutation.
    fn union(rng: &mut Rng, parts: &[Graph]) -> Graph {
        let n: usize = parts.iter().map(Graph::nodes).sum();
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            perm.swap(i, rng.below(i + 1));
        }
        let mut edges = Vec::new();
        let mut base = 0;
        for g in parts {
            edges.extend(g.edges().map(|(u, v)| (perm[base + u], perm[base + v])));
            base += g.nodes();
        }
        Graph::from_edges(n, edges)
    }

    fn max_difference(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    /// The band path, the automatic choice and the dense path on the whole matrix agree.
    fn check(name: &str, g: &Graph) {
        let dense = dense_eigenvalues(g);
        let band = eigenvalues_by_components(g, true);
        let auto = normalized_laplacian_eigenvalues(g);
        let (db, da) = (max_difference(&band, &dense), max_difference(&auto, &dense));
        assert!(db <= 1e-10, "{name}: band differs from dense by {db:e}");
        assert!(
            da <= 1e-10,
            "{name}: automatic differs from dense by {da:e}"
        );
    }

    fn plan(g: &Graph) -> Plan {
        let comp: Vec<usize> = (0..g.nodes()).collect();
        Search::new(g.nodes()).band_plan(g, &comp, &mut vec![0; g.nodes()])
    }

    /// How many eigenvalues of the tridiagonal matrix `(d, e)` lie below `x` (Sturm count).
    fn count_below(d: &[f64], e: &[f64], x: f64) -> usize {
        let mut q = 1.0;
        let mut count = 0;
        for i in 0..d.len() {
            let off = if i == 0 { 0.0 } else { e[i - 1] * e[i - 1] / q };
            q = d[i] - x - off;
            if q == 0.0 {
                q = -1e-300;
            }
            count += usize::from(q < 0.0);
        }
        count
    }

    #[test]
    fn band_path_agrees_with_dense_on_small_graphs() {
        let path = Graph::from_edges(30, (1..30).map(|v| (v - 1, v)));
        let star = Graph::from_edges(26, (1..26).map(|v| (0, v)));
        let complete = Graph::from_dense(17, |_, _| true);
        let cycle = Graph::from_edges(23, (0..23).map(|v| (v, (v + 1) % 23)));
        for (name, g) in [
            ("edge", Graph::from_edges(2, [(0, 1)])),
            ("triangle", Graph::from_dense(3, |_, _| true)),
            ("path", path),
            ("star", star),
            ("complete", complete),
            ("cycle", cycle),
            ("grid", grid(7, 5)),
            ("no edges", Graph::from_edges(6, [])),
        ] {
            check(name, &g);
        }
    }

    /// Graphs made mostly of twins (stars, complete bipartite graphs, hubs with many leaves,
    /// and those beside other components) take the quotient by their twins, which agrees with
    /// the dense eigenvalues of the whole matrix.
    #[test]
    fn the_twin_quotient_agrees_with_dense() {
        let mut rng = Rng(11);
        let star = |leaves: usize| Graph::from_edges(leaves + 1, (1..=leaves).map(|v| (0, v)));
        let bipartite = |a: usize, b: usize| {
            Graph::from_edges(a + b, (0..a).flat_map(|u| (a..a + b).map(move |v| (u, v))))
        };
        // Ten hubs in a path with a few random chords, each with 15 leaves of its own and 5
        // shared with the next hub.
        let mut edges = Vec::new();
        let hubs = 10;
        let mut next = hubs;
        for h in 0..hubs {
            if h + 1 < hubs {
                edges.push((h, h + 1));
            }
            if rng.next().is_multiple_of(3) {
                edges.push((h, (h + 3) % hubs));
            }
            for _ in 0..15 {
                edges.push((h, next));
                next += 1;
            }
            for _ in 0..5 {
                edges.push((h, next));
                edges.push(((h + 1) % hubs, next));
                next += 1;
            }
        }
        let hubs_graph = Graph::from_edges(next, edges.clone());
        // The same beside a star and a random graph, as separate components.
        let mut beside = edges;
        let base = next;
        beside.extend((1..=80).map(|v| (base, base + v)));
        let g2 = gnp(&mut rng, 30, 0.2);
        let base2 = base + 81;
        beside.extend(g2.edges().map(|(u, v)| (base2 + u, base2 + v)));
        let beside = Graph::from_edges(base2 + 30, beside);
        for (name, g) in [
            ("star(200)", star(200)),
            ("K(3, 100)", bipartite(3, 100)),
            ("hubs", hubs_graph),
            ("hubs beside a star and G(30, 0.2)", beside),
        ] {
            let comp: Vec<usize> = (0..g.nodes()).filter(|&v| g.degree(v) > 0).collect();
            if g.is_connected() {
                let mut class = vec![0; g.nodes()];
                assert!(
                    twin_quotient(&g, &comp, &mut class).is_some(),
                    "{name}: the twin quotient is taken"
                );
            }
            check(name, &g);
        }
    }

    #[test]
    fn band_path_agrees_with_dense_on_random_graphs() {
        let mut rng = Rng(7);
        for n in [5, 12, 40, 90, 200] {
            for p in [0.02, 0.05, 0.2, 0.6] {
                let g = gnp(&mut rng, n, p);
                check(&format!("G({n}, {p})"), &g);
            }
        }
        for (n, r) in [(60, 0.25), (150, 0.15), (400, 0.08), (300, 0.3)] {
            let g = geometric(&mut rng, n, r);
            check(&format!("geometric({n}, {r})"), &g);
        }
        // Large sparse ones, where the automatic choice is the band path.
        for (n, r) in [(700, 0.08), (1000, 0.06)] {
            let g = geometric(&mut rng, n, r);
            let cost = plan(&g).cost;
            assert!(
                g.is_connected() && cost < (n * n * n) as f64 / 2.0,
                "{cost:e}"
            );
            check(&format!("geometric({n}, {r})"), &g);
        }
    }

    #[test]
    fn band_path_agrees_with_dense_on_disconnected_graphs() {
        let mut rng = Rng(11);
        let parts = [
            geometric(&mut rng, 150, 0.15),
            gnp(&mut rng, 30, 0.3),
            Graph::from_edges(1, []),
            Graph::from_edges(12, (1..12).map(|v| (0, v))),
            Graph::from_edges(2, [(0, 1)]),
            Graph::from_edges(3, []),
            grid(12, 9),
            geometric(&mut rng, 400, 0.09),
        ];
        let g = union(&mut rng, &parts);
        check("union", &g);
        // One zero eigenvalue per component, isolated nodes included.
        let eig = normalized_laplacian_eigenvalues(&g);
        let zeros = eig.iter().filter(|x| x.abs() < 1e-9).count();
        assert_eq!(zeros, Search::new(g.nodes()).components(&g).len());
        assert!(zeros >= 10);
    }

    #[test]
    fn band_plans_follow_meshes() {
        // A 40 × 25 grid in random node order: Cuthill–McKee levels are its anti-diagonals.
        let mut rng = Rng(3);
        let g = union(&mut rng, &[grid(40, 25)]);
        let p = plan(&g);
        let most = p.ends.windows(2).map(|e| e[1] - e[0]).max().unwrap();
        assert!(most <= 26 && p.width <= 52, "{:?}", p.ends);
        assert!(p.cost < 1e9 / 5.0, "{}", p.cost);
        assert_eq!(p.ends.first(), Some(&0));
        assert_eq!(p.ends.last(), Some(&999));
        check("grid(40, 25)", &g);
    }

    #[test]
    fn long_paths_and_cycles_match_closed_forms() {
        // Blocks of one or two rows; the dense path would take minutes here.
        use std::f64::consts::PI;
        let n = 5000;
        let path = Graph::from_edges(n, (1..n).map(|v| (v - 1, v)));
        let cycle = Graph::from_edges(n, (0..n).map(|v| (v, (v + 1) % n)));
        assert!(plan(&path).width <= 2 && plan(&cycle).width <= 4);
        for (g, angle) in [(path, PI / (n - 1) as f64), (cycle, 2.0 * PI / n as f64)] {
            let mut want: Vec<f64> = (0..n).map(|k| 1.0 - (angle * k as f64).cos()).collect();
            want.sort_by(f64::total_cmp);
            let diff = max_difference(&normalized_laplacian_eigenvalues(&g), &want);
            assert!(diff <= 1e-10, "{diff:e}");
        }
    }

    #[test]
    fn band_reduction_of_random_band_matrices() {
        // Random symmetric band matrices, not Laplacians, against the dense reduction.
        let mut rng = Rng(5);
        for (n, b) in [(2, 1), (3, 2), (10, 3), (50, 7), (120, 20), (97, 96)] {
            let mut dense = vec![0.0; n * n];
            let mut band = Band::new(n, 2 * b);
            for i in 0..n {
                for j in i.saturating_sub(b)..=i {
                    let x = rng.unit() * 2.0 - 1.0;
                    dense[i * n + j] = x;
                    dense[j * n + i] = x;
                    band.set(i, j, x);
                }
            }
            let want = symmetric_eigenvalues(n, dense);
            let ends: Vec<usize> = (0..n).step_by(b).chain([n - 1]).collect();
            let (mut d, mut e) = band_tridiagonalize(n, &ends, &mut band);
            tridiagonal_eigenvalues(&mut d, &mut e);
            d.sort_by(f64::total_cmp);
            let diff = max_difference(&d, &want);
            assert!(diff <= 1e-12 * n as f64, "n {n} b {b}: {diff:e}");
        }
    }

    #[test]
    fn band_reduction_is_the_same_with_and_without_avx2() {
        let mut rng = Rng(17);
        let g = geometric(&mut rng, 300, 0.12);
        let comp: Vec<usize> = (0..g.nodes()).collect();
        let mut pos = vec![0; g.nodes()];
        let p = Search::new(g.nodes()).band_plan(&g, &comp, &mut pos);
        for (i, &u) in p.order.iter().enumerate() {
            pos[u] = i;
        }
        // Random entries on the graph's pattern.
        let mut band = Band::new(g.nodes(), p.width);
        for (i, &u) in p.order.iter().enumerate() {
            band.set(i, i, rng.unit());
            for &v in g.neighbours(u) {
                if pos[v as usize] < i {
                    band.set(i, pos[v as usize], rng.unit() - 0.5);
                }
            }
        }
        let mut copy = Band::new(g.nodes(), p.width);
        copy.a.clone_from(&band.a);
        let plain = band_tridiagonalize_any::<false>(g.nodes(), &p.ends, &mut copy);
        let chosen = band_tridiagonalize(g.nodes(), &p.ends, &mut band);
        assert_eq!(plain, chosen);
    }

    #[test]
    fn tridiagonal_eigenvalues_pass_sturm_counts() {
        let mut rng = Rng(13);
        for (n, scale) in [
            (1, 1.0),
            (2, 1.0),
            (3, 1.0),
            (50, 1.0),
            (300, 1.0),
            (200, 1e120),
        ] {
            let d: Vec<f64> = (0..n).map(|_| scale * (rng.unit() * 4.0 - 2.0)).collect();
            // Some zero couplings, so that the matrix splits.
            let mut e: Vec<f64> = (0..n)
                .map(|_| {
                    let x = rng.unit();
                    if x < 0.05 {
                        0.0
                    } else {
                        scale * x
                    }
                })
                .collect();
            e[n - 1] = 0.0;
            let (mut eig, mut work) = (d.clone(), e.clone());
            tridiagonal_eigenvalues(&mut eig, &mut work);
            eig.sort_by(f64::total_cmp);
            let tol = 1e-12 * scale * n as f64;
            let (ds, es): (Vec<f64>, Vec<f64>) = if scale == 1.0 {
                (d.clone(), e.clone())
            } else {
                (
                    d.iter().map(|x| x / scale).collect(),
                    e.iter().map(|x| x / scale).collect(),
                )
            };
            for (i, &x) in eig.iter().enumerate() {
                let x = x / scale;
                let t = tol / scale;
                assert!(
                    count_below(&ds, &es, x - t) <= i,
                    "n {n}: eigenvalue {i} too large"
                );
                assert!(
                    count_below(&ds, &es, x + t) > i,
                    "n {n}: eigenvalue {i} too small"
                );
            }
        }
        // Repeated eigenvalues: the identity, and a matrix that splits into equal blocks.
        let mut d = vec![1.0; 5];
        let mut e = vec![0.0; 5];
        tridiagonal_eigenvalues(&mut d, &mut e);
        assert_eq!(d, vec![1.0; 5]);
        let mut d = vec![0.0, 0.0, 0.0, 0.0];
        let mut e = vec![1.0, 0.0, 1.0, 0.0];
        tridiagonal_eigenvalues(&mut d, &mut e);
        d.sort_by(f64::total_cmp);
        assert!(max_difference(&d, &[-1.0, -1.0, 1.0, 1.0]) < 1e-15, "{d:?}");
    }
}
