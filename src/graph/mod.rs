//! Graphs and the graph-generation metrics of `diffc metrics`.
//!
//! A [`Graph`] is undirected and simple: nodes `0..n`, sorted adjacency lists, no self-loops
//! and no repeated edges.
//! The submodules:
//! - `io`: readers for edge-list files, graph6 lines and `.npy` stacks of adjacency matrices,
//!   from bytes already read (the CLI reads the files); errors name the file and line.
//! - `orbits`: the 15 node orbits of graphlets on 2 to 4 nodes (ORCA's numbering), by ORCA's
//!   system of equations, and by brute force for tests.
//! - `spectrum`: eigenvalues of the normalised Laplacian.
//! - `metrics`: per-graph statistics, the MMD kernels and the named conventions of the
//!   reference evaluation code (`docs/metrics.md` states them).
//! - `iso`: Weisfeiler-Lehman hashes and exact isomorphism; uniqueness and novelty.
//! - `planar`: the planarity test; `sbm`: the stochastic-block-model validity test.
//!
//! Nothing here prints or reads files; long runs report progress through a callback.

pub mod io;
pub mod iso;
pub mod metrics;
pub mod orbits;
pub mod planar;
pub mod sbm;
pub mod spectrum;

/// An undirected simple graph on nodes `0..n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    adj: Vec<Vec<u32>>,
    edges: usize,
}

impl Graph {
    /// A graph on `n` nodes with these edges; repeated edges count once.
    ///
    /// Panics on a self-loop or a node index past `n`: readers check both first.
    pub fn from_edges(n: usize, edges: impl IntoIterator<Item = (usize, usize)>) -> Graph {
        let mut adj = vec![Vec::new(); n];
        for (u, v) in edges {
            assert!(u != v && u < n && v < n, "bad edge ({u}, {v}) on {n} nodes");
            adj[u].push(v as u32);
            adj[v].push(u as u32);
        }
        let mut count = 0;
        for list in &mut adj {
            list.sort_unstable();
            list.dedup();
            count += list.len();
        }
        Graph {
            adj,
            edges: count / 2,
        }
    }

    /// The graph of a dense symmetric 0/1 adjacency matrix in row-major order.
    pub fn from_dense(n: usize, adjacent: impl Fn(usize, usize) -> bool) -> Graph {
        let mut edges = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                if adjacent(i, j) {
                    edges.push((i, j));
                }
            }
        }
        Graph::from_edges(n, edges)
    }

    /// The number of nodes.
    pub fn nodes(&self) -> usize {
        self.adj.len()
    }

    /// The number of edges.
    pub fn edge_count(&self) -> usize {
        self.edges
    }

    /// The neighbours of `v`, ascending.
    pub fn neighbours(&self, v: usize) -> &[u32] {
        &self.adj[v]
    }

    /// The degree of `v`.
    pub fn degree(&self, v: usize) -> usize {
        self.adj[v].len()
    }

    /// Whether `u` and `v` are adjacent (a binary search).
    pub fn has_edge(&self, u: usize, v: usize) -> bool {
        self.adj[u].binary_search(&(v as u32)).is_ok()
    }

    /// Every edge once, as `(u, v)` with `u < v`.
    pub fn edges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.adj.iter().enumerate().flat_map(|(u, list)| {
            list.iter()
                .map(|&v| v as usize)
                .filter(move |&v| u < v)
                .map(move |v| (u, v))
        })
    }

    /// The same graph with node `v` renamed `perm[v]`.
    pub fn relabel(&self, perm: &[usize]) -> Graph {
        Graph::from_edges(self.nodes(), self.edges().map(|(u, v)| (perm[u], perm[v])))
    }

    /// Whether every node can reach every other (true for zero or one node).
    pub fn is_connected(&self) -> bool {
        let n = self.nodes();
        if n <= 1 {
            return true;
        }
        let mut seen = vec![false; n];
        let mut stack = vec![0usize];
        seen[0] = true;
        let mut reached = 1;
        while let Some(u) = stack.pop() {
            for &w in &self.adj[u] {
                let w = w as usize;
                if !seen[w] {
                    seen[w] = true;
                    reached += 1;
                    stack.push(w);
                }
            }
        }
        reached == n
    }
}

/// A dense adjacency bit matrix, for constant-time adjacency tests in the inner loops.
pub(crate) struct BitMatrix {
    words: usize,
    bits: Vec<u64>,
}

impl BitMatrix {
    pub(crate) fn new(g: &Graph) -> BitMatrix {
        let n = g.nodes();
        let words = n.div_ceil(64);
        let mut bits = vec![0u64; words * n];
        for (u, v) in g.edges() {
            bits[u * words + v / 64] |= 1 << (v % 64);
            bits[v * words + u / 64] |= 1 << (u % 64);
        }
        BitMatrix { words, bits }
    }

    #[inline]
    pub(crate) fn get(&self, u: usize, v: usize) -> bool {
        self.bits[u * self.words + v / 64] >> (v % 64) & 1 == 1
    }
}

/// Progress of a long computation: the stage, and how many of its items are done.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub stage: &'a str,
    pub done: usize,
    pub total: usize,
}

/// `f` over `items` on a `rayon` pool of `threads` threads (the current pool where it has that
/// many), results in order; `tick` runs after each item.
pub(crate) fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
    tick: impl Fn() + Sync,
) -> Vec<R> {
    use rayon::prelude::*;
    let threads = threads.clamp(1, items.len().max(1));
    let one = |x: &T| {
        let r = f(x);
        tick();
        r
    };
    if threads == 1 {
        return items.iter().map(one).collect();
    }
    if threads == rayon::current_num_threads() {
        return items.par_iter().map(one).collect();
    }
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(|| items.par_iter().map(one).collect()),
        // Without threads to spare, the items run here in order.
        Err(_) => items.iter().map(one).collect(),
    }
}

/// The number of worker threads: those of `rayon`'s global pool (`RAYON_NUM_THREADS` where it
/// is set to a positive number, else the machine's parallelism, unless the program built the
/// pool with another count, as the CLI's `--threads` does).
pub fn default_threads() -> usize {
    rayon::current_num_threads()
}
