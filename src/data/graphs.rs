//! The graph datasets of MATH.md §9: community-small, grid, SBM and planar.
//!
//! Graph `i` of a set draws at step `i` of its dataset's stream (only the order of the grid
//! set is drawn at step 0 of its own, see [`grids`]).
//! Nodes are numbered block by block (community-small, SBM) or row by row (grid); nothing is
//! permuted, so tests and pictures can rely on it.

use super::{stream, Draws};
use crate::graph::Graph;
use spade::{DelaunayTriangulation, Point2, Triangulation};

/// Default node counts of community-small, both included.
pub const COMMUNITY_NODES: (usize, usize) = (12, 20);
/// The edge probability inside a community.
pub const COMMUNITY_P_IN: f64 = 0.7;
/// GraphRNN's and EDP-GNN's `p_inter`.
pub const COMMUNITY_P_INTER: f64 = 0.05;

/// Default grid sides, both included (GRAN: `range(10, 20)` for rows and for columns).
pub const GRID_SIDES: (usize, usize) = (10, 19);

/// Default SBM block sizes, both included.
pub const SBM_BLOCK_SIZES: (usize, usize) = (20, 40);
/// SBM block counts, both included.
pub const SBM_BLOCKS: (usize, usize) = (2, 5);
/// The SBM edge probability inside a block.
pub const SBM_P_IN: f64 = 0.3;
/// The SBM edge probability between blocks.
pub const SBM_P_OUT: f64 = 0.005;
/// How many SBM draws a graph may take before [`sbm`] gives up on a connected one.
pub const SBM_ATTEMPTS: usize = 10_000;

/// The node count of SPECTRE's planar graphs.
pub const PLANAR_NODES: usize = 64;
/// Planar points are integers in `[0, 2^24)`: the point is the integer times 2^-24.
pub const PLANAR_SCALE: f64 = 1.0 / (1u64 << 24) as f64;

/// Graph `index` of community-small: n uniform in `nodes`, communities of ⌊n/2⌋ nodes
/// (`0..⌊n/2⌋`) and n − ⌊n/2⌋ nodes (the rest).
///
/// Inside each community every pair is linked with probability 0.7; each pair across is
/// linked with probability 2 · 0.05 / ((M − 1) · ⌊n/2⌋), M = 2, as EDP-GNN's `n_community`
/// (which GraphRNN's community-small follows) computes it from `p_inter = 0.05`; when no pair
/// across is linked, the first node of each community are linked, as that code does.
/// Unlike that code, both communities are drawn afresh for every graph (it seeds its two
/// G(n_c, 0.7) graphs with 0 and 1), the communities are the two planned halves rather than
/// the connected components of their union, and an odd n keeps all its nodes (it makes
/// communities of ⌊n/2⌋ nodes each).
pub fn community_small(seed: u64, index: usize, nodes: (usize, usize)) -> Graph {
    let mut draws = Draws::new(seed, stream::COMMUNITY_SMALL, index);
    let n = draws.between(nodes.0, nodes.1);
    let half = n / 2;
    let p_cross = 2.0 * COMMUNITY_P_INTER / ((2.0 - 1.0) * half.max(1) as f64);
    let mut edges = Vec::new();
    for (lo, hi) in [(0, half), (half, n)] {
        for u in lo..hi {
            for v in u + 1..hi {
                if draws.bernoulli(COMMUNITY_P_IN) {
                    edges.push((u, v));
                }
            }
        }
    }
    let mut crossed = false;
    for u in 0..half {
        for v in half..n {
            if draws.bernoulli(p_cross) {
                edges.push((u, v));
                crossed = true;
            }
        }
    }
    if !crossed && half > 0 {
        edges.push((0, half));
    }
    Graph::from_edges(n, edges)
}

/// The `rows` × `cols` grid: node `r · cols + c` is linked to its right and lower neighbours.
pub fn grid(rows: usize, cols: usize) -> Graph {
    let mut edges = Vec::new();
    for r in 0..rows {
        for c in 0..cols {
            let v = r * cols + c;
            if c + 1 < cols {
                edges.push((v, v + 1));
            }
            if r + 1 < rows {
                edges.push((v, v + cols));
            }
        }
    }
    Graph::from_edges(rows * cols, edges)
}

/// The grid set: its first k² graphs (k = the number of sides) are every (rows, cols) with both
/// in `sides` once, as GRAN's and GraphRNN's `range(10, 20)` loops make them, in an order
/// shuffled by the seed (at step 0); graph i past those draws rows and cols uniformly at step
/// i + 1. A count below k² keeps the first graphs of the shuffled order.
pub fn grids(seed: u64, count: usize, sides: (usize, usize)) -> Vec<Graph> {
    let mut pairs: Vec<(usize, usize)> = (sides.0..=sides.1)
        .flat_map(|r| (sides.0..=sides.1).map(move |c| (r, c)))
        .collect();
    Draws::new(seed, stream::GRID, 0).shuffle(&mut pairs);
    (0..count)
        .map(|i| {
            let (r, c) = pairs.get(i).copied().unwrap_or_else(|| {
                let mut draws = Draws::new(seed, stream::GRID, i + 1);
                let r = draws.between(sides.0, sides.1);
                (r, draws.between(sides.0, sides.1))
            });
            grid(r, c)
        })
        .collect()
}

/// Graph `index` of the SBM set and its block sizes, as SPECTRE's `generate_sbm_graphs` makes
/// it: 2 to 5 blocks (uniform), each of a size uniform in `block`, pairs linked with
/// probability 0.3 inside a block and 0.005 between blocks, drawn again until connected.
/// Nodes are numbered block after block. `None` after [`SBM_ATTEMPTS`] disconnected draws.
pub fn sbm(seed: u64, index: usize, block: (usize, usize)) -> Option<(Graph, Vec<usize>)> {
    let mut draws = Draws::new(seed, stream::SBM, index);
    for _ in 0..SBM_ATTEMPTS {
        let blocks = draws.between(SBM_BLOCKS.0, SBM_BLOCKS.1);
        let sizes: Vec<usize> = (0..blocks)
            .map(|_| draws.between(block.0, block.1))
            .collect();
        let label: Vec<usize> = sizes
            .iter()
            .enumerate()
            .flat_map(|(b, &s)| std::iter::repeat_n(b, s))
            .collect();
        let n = label.len();
        let mut edges = Vec::new();
        for u in 0..n {
            for v in u + 1..n {
                let p = if label[u] == label[v] {
                    SBM_P_IN
                } else {
                    SBM_P_OUT
                };
                if draws.bernoulli(p) {
                    edges.push((u, v));
                }
            }
        }
        let g = Graph::from_edges(n, edges);
        if g.is_connected() {
            return Some((g, sizes));
        }
    }
    None
}

/// The points of planar graph `index`: first n, uniform in `nodes` (one word, drawn even when
/// the range holds one value), then n distinct points with coordinates `2k + 1` for k uniform in
/// `0..2^23` (each `rng::uniform_open` of a word, times 2^24), so the point in the unit square
/// is the integer pair times [`PLANAR_SCALE`]. A point that repeats an earlier one is drawn
/// again.
pub fn planar_points(seed: u64, index: usize, nodes: (usize, usize)) -> Vec<[i64; 2]> {
    let mut draws = Draws::new(seed, stream::PLANAR, index);
    let n = draws.between(nodes.0, nodes.1);
    let mut seen = std::collections::HashSet::new();
    let mut points = Vec::with_capacity(n);
    while points.len() < n {
        let x = (draws.uniform() / PLANAR_SCALE) as i64;
        let p = [x, (draws.uniform() / PLANAR_SCALE) as i64];
        if seen.insert(p) {
            points.push(p);
        }
    }
    points
}

/// Graph `index` of the planar set: the Delaunay triangulation of [`planar_points`], n uniform
/// in `nodes` (64 by default, as SPECTRE's `generate_planar_graphs(200, 64, 64)`).
pub fn planar(seed: u64, index: usize, nodes: (usize, usize)) -> Graph {
    let points = planar_points(seed, index, nodes);
    let edges = delaunay_triangles(&points)
        .into_iter()
        .flat_map(|[a, b, c]| [(a, b), (b, c), (c, a)]);
    Graph::from_edges(points.len(), edges)
}

/// The Delaunay triangles of distinct integer points, by `spade` (exact predicates), each
/// counter-clockwise, as indices into `points`; none when there are fewer than 3 points or all
/// lie on a line.
///
/// The triangulation is unique unless four or more points lie on a circle with no point inside;
/// only there does it depend on spade's order of work.
///
/// Panics when two points coincide or a coordinate is not below 2^53 in magnitude (past that
/// an `f64` would round it).
pub fn delaunay_triangles(points: &[[i64; 2]]) -> Vec<[usize; 3]> {
    const LIMIT: u64 = 1 << 53;
    assert!(
        points.iter().flatten().all(|x| x.unsigned_abs() < LIMIT),
        "Delaunay coordinates must lie in (-2^53, 2^53)"
    );
    let vertices = points
        .iter()
        .map(|&[x, y]| Point2::new(x as f64, y as f64))
        .collect();
    // The stable bulk load numbers vertices as the input is ordered.
    let triangulation = DelaunayTriangulation::<Point2<f64>>::bulk_load_stable(vertices)
        .expect("integer coordinates below 2^53 are valid spade coordinates");
    assert_eq!(
        triangulation.num_vertices(),
        points.len(),
        "Delaunay points must be distinct"
    );
    triangulation
        .inner_faces()
        .map(|face| face.vertices().map(|v| v.fix().index()))
        .collect()
}
