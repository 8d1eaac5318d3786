//! Isomorphism: Weisfeiler-Lehman hashes as a prefilter, then an exact backtracking match.
//!
//! Colours are computed by one fixed function of a node's colour and the sorted colours of its
//! neighbours, the same for every graph, so colours of two graphs can be compared.
//! Two graphs with different hashes are not isomorphic; graphs with equal hashes are matched
//! exactly: nodes are mapped in a connected order, each to an unused node of the same stable
//! colour whose adjacency to the nodes already mapped is the same.

use super::{BitMatrix, Graph};

/// The number of refinement rounds behind [`wl_hash`].
const HASH_ROUNDS: usize = 4;

fn mix(mut x: u64) -> u64 {
    // splitmix64's finaliser.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn combine(seed: u64, x: u64) -> u64 {
    mix(seed ^ mix(x))
}

fn refine(g: &Graph, colours: &[u64]) -> Vec<u64> {
    let mut scratch = Vec::new();
    (0..g.nodes())
        .map(|v| {
            scratch.clear();
            scratch.extend(g.neighbours(v).iter().map(|&w| colours[w as usize]));
            scratch.sort_unstable();
            scratch
                .iter()
                .fold(combine(0x5eed, colours[v]), |h, &c| combine(h, c))
        })
        .collect()
}

fn initial_colours(g: &Graph) -> Vec<u64> {
    (0..g.nodes()).map(|v| mix(g.degree(v) as u64)).collect()
}

fn distinct(colours: &[u64]) -> usize {
    let mut c = colours.to_vec();
    c.sort_unstable();
    c.dedup();
    c.len()
}

/// A hash equal for isomorphic graphs: node and edge counts and the multiset of colours after
/// a fixed number of Weisfeiler-Lehman rounds.
pub fn wl_hash(g: &Graph) -> u64 {
    let mut colours = initial_colours(g);
    for _ in 0..HASH_ROUNDS {
        colours = refine(g, &colours);
    }
    colours.sort_unstable();
    colours
        .into_iter()
        .fold(combine(g.nodes() as u64, g.edge_count() as u64), combine)
}

/// Whether `a` and `b` are isomorphic.
pub fn is_isomorphic(a: &Graph, b: &Graph) -> bool {
    let n = a.nodes();
    if n != b.nodes() || a.edge_count() != b.edge_count() {
        return false;
    }
    if n == 0 {
        return true;
    }
    // Refine both with the same function until neither partition splits further.
    let (mut ca, mut cb) = (initial_colours(a), initial_colours(b));
    let (mut da, mut db) = (distinct(&ca), distinct(&cb));
    loop {
        let mut sa = ca.clone();
        sa.sort_unstable();
        let mut sb = cb.clone();
        sb.sort_unstable();
        if sa != sb {
            return false;
        }
        let (na, nb) = (refine(a, &ca), refine(b, &cb));
        let (dna, dnb) = (distinct(&na), distinct(&nb));
        if dna == da && dnb == db {
            break;
        }
        (ca, cb, da, db) = (na, nb, dna, dnb);
    }
    Matcher::new(a, b, ca, cb).run()
}

struct Matcher<'g> {
    b: &'g Graph,
    bits_a: BitMatrix,
    bits_b: BitMatrix,
    colours_a: Vec<u64>,
    colours_b: Vec<u64>,
    /// Nodes of `a` in matching order, each with an earlier neighbour in the order if any.
    order: Vec<(usize, Option<usize>)>,
    map: Vec<usize>,
    used: Vec<bool>,
}

impl<'g> Matcher<'g> {
    fn new(a: &'g Graph, b: &'g Graph, colours_a: Vec<u64>, colours_b: Vec<u64>) -> Self {
        let n = a.nodes();
        let mut class_size = std::collections::HashMap::new();
        for &c in &colours_a {
            *class_size.entry(c).or_insert(0usize) += 1;
        }
        // Connected order: most neighbours already placed, then the smallest colour class.
        let mut placed = vec![false; n];
        let mut links = vec![0usize; n];
        let mut parent: Vec<Option<usize>> = vec![None; n];
        let mut order = Vec::with_capacity(n);
        for _ in 0..n {
            let next = (0..n)
                .filter(|&v| !placed[v])
                .min_by_key(|&v| (std::cmp::Reverse(links[v]), class_size[&colours_a[v]], v))
                .expect("a node is left");
            placed[next] = true;
            order.push((next, parent[next]));
            for &w in a.neighbours(next) {
                let w = w as usize;
                links[w] += 1;
                if parent[w].is_none() {
                    parent[w] = Some(next);
                }
            }
        }
        Matcher {
            b,
            bits_a: BitMatrix::new(a),
            bits_b: BitMatrix::new(b),
            colours_a,
            colours_b,
            order,
            map: vec![usize::MAX; n],
            used: vec![false; n],
        }
    }

    fn run(&mut self) -> bool {
        self.extend(0)
    }

    fn fits(&self, depth: usize, u: usize, c: usize) -> bool {
        if self.used[c] || self.colours_b[c] != self.colours_a[u] {
            return false;
        }
        self.order[..depth]
            .iter()
            .all(|&(w, _)| self.bits_a.get(u, w) == self.bits_b.get(c, self.map[w]))
    }

    fn extend(&mut self, depth: usize) -> bool {
        if depth == self.order.len() {
            return true;
        }
        let (u, parent) = self.order[depth];
        let candidates: Vec<usize> = match parent {
            Some(p) => self
                .b
                .neighbours(self.map[p])
                .iter()
                .map(|&c| c as usize)
                .collect(),
            None => (0..self.b.nodes()).collect(),
        };
        for c in candidates {
            if self.fits(depth, u, c) {
                self.map[u] = c;
                self.used[c] = true;
                if self.extend(depth + 1) {
                    return true;
                }
                self.used[c] = false;
                self.map[u] = usize::MAX;
            }
        }
        false
    }
}

/// For each graph, the index of the first earlier graph isomorphic to it, if any.
pub fn first_isomorphic_earlier(graphs: &[Graph], hashes: &[u64]) -> Vec<Option<usize>> {
    let mut classes: std::collections::HashMap<u64, Vec<usize>> = Default::default();
    let mut out = Vec::with_capacity(graphs.len());
    for (i, g) in graphs.iter().enumerate() {
        let reps = classes.entry(hashes[i]).or_default();
        match reps.iter().copied().find(|&r| is_isomorphic(&graphs[r], g)) {
            Some(r) => out.push(Some(r)),
            None => {
                reps.push(i);
                out.push(None);
            }
        }
    }
    out
}

/// For each graph, whether it is isomorphic to one of `pool`.
pub fn isomorphic_to_any(
    graphs: &[Graph],
    hashes: &[u64],
    pool: &[Graph],
    pool_hashes: &[u64],
) -> Vec<bool> {
    let mut by_hash: std::collections::HashMap<u64, Vec<usize>> = Default::default();
    for (i, &h) in pool_hashes.iter().enumerate() {
        by_hash.entry(h).or_default().push(i);
    }
    graphs
        .iter()
        .zip(hashes)
        .map(|(g, h)| {
            by_hash
                .get(h)
                .is_some_and(|c| c.iter().any(|&i| is_isomorphic(&pool[i], g)))
        })
        .collect()
}
