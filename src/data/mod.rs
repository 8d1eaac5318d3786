//! Training sets generated in the program, and the sample-quality measures of the sets that are
//! not graphs (`docs/datasets.md` states every construction and measure).
//!
//! Every dataset is a pure function of its name, a `u64` seed and its [`Options`].
//! All randomness comes from [`crate::rng`] (Philox-4x32-10), never from another crate, so the
//! data cannot change with a dependency's version.
//! The planar graphs' triangulation comes from `spade`, but the Delaunay triangulation of their
//! points is unique unless four lie on an empty circle, which they practically never do (see
//! [`graphs::delaunay_triangles`] and `docs/datasets.md`), so it cannot change either.
//! Each dataset draws on a stream of its own, and item `i` (a graph, a point or a sequence)
//! draws at step `i` of that stream, so the first items do not change when `count` grows.
//!
//! The submodules:
//! - `graphs`: community-small, grid, SBM and planar graphs (MATH.md §9).
//! - `points`: 2-D toy sets (moons, eight Gaussians, checkerboard, Swiss roll).
//! - `words`: the sequence corpus over 27 symbols and its text form.
//! - `measures`: sample quality of point sets and of sequences (the graph metrics are
//!   `crate::graph::metrics`).
//!
//! Nothing here prints or reads files.

pub mod graphs;
pub mod measures;
pub mod points;
pub mod words;

use crate::graph::Graph;
use crate::rng;

/// A generated training set.
#[derive(Debug, Clone, PartialEq)]
pub enum Dataset {
    /// Undirected simple graphs.
    Graphs(Vec<Graph>),
    /// Points in `dim` dimensions, row-major: point `i` is `points[i * dim..(i + 1) * dim]`,
    /// with a class label per point where the set has them (moons: the moon; gaussians8: the
    /// component).
    Points {
        dim: usize,
        points: Vec<f32>,
        labels: Option<Vec<u32>>,
    },
    /// Sequences of `len` symbols, each in `0..classes`.
    Sequences {
        classes: usize,
        len: usize,
        seqs: Vec<Vec<u32>>,
    },
}

impl Dataset {
    /// The number of graphs, points or sequences.
    pub fn len(&self) -> usize {
        match self {
            Dataset::Graphs(graphs) => graphs.len(),
            Dataset::Points { dim, points, .. } => points.len() / (*dim).max(1),
            Dataset::Sequences { seqs, .. } => seqs.len(),
        }
    }

    /// Whether the set holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Overrides of a dataset's defaults; `Options::default()` keeps them all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// The number of graphs, points or sequences.
    pub count: Option<usize>,
    /// The dataset's size range `(min, max)`, both included: nodes per graph for
    /// community-small and planar, the side of a grid, the size of an SBM block, and the
    /// sequence length for words (where `min` must equal `max`). Point sets take none.
    pub size: Option<(usize, usize)>,
}

/// Every dataset name with a one-line description of its defaults.
pub fn names() -> &'static [(&'static str, &'static str)] {
    &[
        (
            "community-small",
            "100 graphs of 12-20 nodes in 2 communities, G(n_c, 0.7) inside, sparse links between",
        ),
        (
            "grid",
            "100 2-D grid graphs, every rows x cols with both in 10-19 (GRAN)",
        ),
        (
            "sbm",
            "200 SBM graphs, 2-5 blocks of 20-40 nodes, p_in 0.3, p_out 0.005, connected (SPECTRE)",
        ),
        (
            "planar",
            "200 Delaunay triangulations of 64 uniform points in the unit square (SPECTRE)",
        ),
        (
            "words",
            "200 sequences of 16 symbols (a-z, space): common English words joined by spaces",
        ),
        (
            "moons",
            "500 points on two interleaved half circles, noise 0.1, about [-2, 2] x [-1, 1]",
        ),
        (
            "gaussians8",
            "500 points from 8 Gaussians (sd 0.1) on a circle of radius 1.5",
        ),
        (
            "checkerboard",
            "500 points uniform on the 8 dark squares of a 4 x 4 board on [-2, 2]^2",
        ),
        (
            "swissroll",
            "500 points on a 2-D Swiss roll inside about [-2, 2]^2, noise 0.05",
        ),
    ]
}

/// The dataset `name` with its defaults.
pub fn generate(name: &str, seed: u64) -> Result<Dataset, String> {
    generate_with(name, seed, &Options::default())
}

/// The dataset `name` with `options` overriding its defaults.
///
/// Errors: an unknown name, a count of 0 or above 2^32, a size range that is empty or out of
/// the dataset's bounds, a size for a point set.
pub fn generate_with(name: &str, seed: u64, options: &Options) -> Result<Dataset, String> {
    let count = |default: usize| -> Result<usize, String> {
        let count = options.count.unwrap_or(default);
        if count == 0 || count > u32::MAX as usize {
            return Err(format!("the count of `{name}` must be from 1 to 2^32 - 1"));
        }
        Ok(count)
    };
    let size = |default: (usize, usize), least: usize| -> Result<(usize, usize), String> {
        let (lo, hi) = options.size.unwrap_or(default);
        if lo > hi || lo < least {
            return Err(format!(
                "the size range of `{name}` must be min <= max with min at least {least} (got {lo}..{hi})"
            ));
        }
        Ok((lo, hi))
    };
    let no_size = || -> Result<(), String> {
        match options.size {
            Some(_) => Err(format!("`{name}` takes no size")),
            None => Ok(()),
        }
    };
    let dataset = match name {
        "community-small" => {
            let nodes = size(graphs::COMMUNITY_NODES, 2)?;
            let graphs = (0..count(100)?)
                .map(|i| graphs::community_small(seed, i, nodes))
                .collect();
            Dataset::Graphs(graphs)
        }
        "grid" => {
            let sides = size(graphs::GRID_SIDES, 1)?;
            let count = count((sides.1 - sides.0 + 1).pow(2))?;
            Dataset::Graphs(graphs::grids(seed, count, sides))
        }
        "sbm" => {
            let block = size(graphs::SBM_BLOCK_SIZES, 1)?;
            let mut out = Vec::new();
            for i in 0..count(200)? {
                let (g, _) = graphs::sbm(seed, i, block).ok_or_else(|| {
                    format!(
                        "no connected SBM graph in {} draws for graph {i}",
                        graphs::SBM_ATTEMPTS
                    )
                })?;
                out.push(g);
            }
            Dataset::Graphs(out)
        }
        "planar" => {
            let nodes = size((graphs::PLANAR_NODES, graphs::PLANAR_NODES), 3)?;
            if nodes.1 >= 1 << 20 {
                return Err("planar graphs take at most 2^20 - 1 nodes".to_string());
            }
            let graphs = (0..count(200)?)
                .map(|i| graphs::planar(seed, i, nodes))
                .collect();
            Dataset::Graphs(graphs)
        }
        "words" => {
            let (len, hi) = size((words::LEN, words::LEN), 2)?;
            if len != hi {
                return Err(format!(
                    "`words` sequences have one length: give min = max (got {len}..{hi})"
                ));
            }
            let seqs = (0..count(200)?)
                .map(|i| words::sequence(seed, i, len))
                .collect();
            Dataset::Sequences {
                classes: words::CLASSES,
                len,
                seqs,
            }
        }
        _ => match points::Shape::parse(name) {
            Some(shape) => {
                no_size()?;
                let n = count(500)?;
                Dataset::Points {
                    dim: 2,
                    points: points::generate(shape, seed, n),
                    labels: points::labels(shape, seed, n),
                }
            }
            None => {
                let known: Vec<&str> = names().iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown dataset `{name}` (known: {})",
                    known.join(", ")
                ));
            }
        },
    };
    Ok(dataset)
}

/// Row-major 2-D points as pairs (for `crate::picture::scatter_png`).
///
/// Panics when the length is odd: 2-D point sets always have an even length.
pub fn as_pairs(points: &[f32]) -> Vec<[f32; 2]> {
    assert!(
        points.len().is_multiple_of(2),
        "2-D points need an even length"
    );
    points.chunks_exact(2).map(|p| [p[0], p[1]]).collect()
}

/// The stream of each dataset's draws (the Philox counter's `stream` word).
mod stream {
    pub const COMMUNITY_SMALL: u32 = 0x6461_7401;
    pub const GRID: u32 = 0x6461_7402;
    pub const SBM: u32 = 0x6461_7403;
    pub const PLANAR: u32 = 0x6461_7404;
    pub const WORDS: u32 = 0x6461_7405;
    pub const POINTS: u32 = 0x6461_7406;
}

/// Successive draws from one Philox stream at one step: element `next`, `next + 1`, ….
///
/// Every item of a dataset gets its own `Draws` (its step is the item's index), so items are
/// independent of each other and of how many there are.
struct Draws {
    seed: u64,
    stream: u32,
    step: u32,
    next: u64,
    spare_normal: Option<f64>,
}

impl Draws {
    fn new(seed: u64, stream: u32, step: usize) -> Draws {
        Draws {
            seed,
            stream,
            step: step as u32,
            next: 0,
            spare_normal: None,
        }
    }

    fn word(&mut self) -> u32 {
        let w = rng::word(self.seed, self.stream, self.step, self.next);
        self.next += 1;
        w
    }

    /// A uniform in (0, 1): `rng::uniform_open` of the next word, a multiple of 2^-24.
    fn uniform(&mut self) -> f64 {
        rng::uniform_open(self.word()) as f64
    }

    /// A uniform in (lo, hi).
    fn uniform_in(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// A standard normal: `rng::box_muller` of two uniforms; the pair's second value is kept
    /// for the next call.
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let u0 = rng::uniform_open(self.word());
        let u1 = rng::uniform_open(self.word());
        let [z0, z1] = rng::box_muller(u0, u1);
        self.spare_normal = Some(z1 as f64);
        z0 as f64
    }

    /// An integer in `0..n` (n ≥ 1): the high 32 bits of `word · n`, biased by at most n/2^32.
    fn below(&mut self, n: usize) -> usize {
        debug_assert!(n >= 1 && n as u64 <= 1 << 32);
        ((self.word() as u64 * n as u64) >> 32) as usize
    }

    /// An integer in `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p` (a uniform below `p`).
    fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// A Fisher–Yates shuffle, from the last position down.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}
