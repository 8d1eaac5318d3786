//! Isomorphism: Weisfeiler-Lehman hashes as a prefilter, then an exact match by `petgraph`'s VF2.
//!
//! Colours are computed by one fixed function of a node's colour and the sorted colours of its
//! neighbours, the same for every graph, so colours of two graphs can be compared.
//! Two graphs with different hashes are not isomorphic; graphs with equal hashes are matched
//! exactly: both are refined together until their colour partitions are stable, and VF2 then
//! maps each node only to a node of the same stable colour.

use super::Graph;
use petgraph::graph::UnGraph;

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
    if a.nodes() != b.nodes() || a.edge_count() != b.edge_count() {
        return false;
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
    // The stable colours as node labels: VF2 without them took 8x as long on transposed grids.
    petgraph::algo::is_isomorphic_matching(
        &coloured(a, ca),
        &coloured(b, cb),
        |x, y| x == y,
        |_, _| true,
    )
}

/// `g` as a petgraph graph whose node weights are `colours`.
fn coloured(g: &Graph, colours: Vec<u64>) -> UnGraph<u64, ()> {
    let mut out = UnGraph::with_capacity(g.nodes(), g.edge_count());
    for c in colours {
        out.add_node(c);
    }
    out.extend_with_edges(g.edges().map(|(u, v)| (u as u32, v as u32)));
    out
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
