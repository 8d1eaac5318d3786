//! diffc's normalised-Laplacian spectra (`src/graph/spectrum.rs`) against faer's
//! `self_adjoint_eigenvalues` on the graphs `diffc metrics` scores: 1000-node Delaunay (planar),
//! SBM and grid graphs, a star of 10,000 leaves and 100 community-small graphs.
//! Both run on one thread (`diffc metrics` spreads graphs over its threads, not one graph); the
//! two alternate within each repetition and the table gives medians. faer also gets the
//! machine's threads on the 1000-node graphs, and every eigenvalue is compared.

#[allow(dead_code)]
#[path = "../../../src/graph/spectrum.rs"]
mod spectrum;

/// The parts of `src/graph/mod.rs` that `spectrum.rs` and its tests use, as `super::Graph`.
#[allow(dead_code)]
mod graph {
    pub struct Graph {
        adj: Vec<Vec<u32>>,
    }

    impl Graph {
        pub fn from_edges(n: usize, edges: impl IntoIterator<Item = (usize, usize)>) -> Graph {
            let mut adj = vec![Vec::new(); n];
            for (u, v) in edges {
                assert!(u != v && u < n && v < n);
                adj[u].push(v as u32);
                adj[v].push(u as u32);
            }
            for list in &mut adj {
                list.sort_unstable();
                list.dedup();
            }
            Graph { adj }
        }
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
        pub fn nodes(&self) -> usize {
            self.adj.len()
        }
        pub fn neighbours(&self, v: usize) -> &[u32] {
            &self.adj[v]
        }
        pub fn degree(&self, v: usize) -> usize {
            self.adj[v].len()
        }
        pub fn edges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
            self.adj.iter().enumerate().flat_map(|(u, list)| {
                list.iter()
                    .map(|&v| v as usize)
                    .filter(move |&v| u < v)
                    .map(move |v| (u, v))
            })
        }
        pub fn is_connected(&self) -> bool {
            let n = self.nodes();
            n <= 1 || components(self).len() == 1
        }
    }

    /// The connected components, each as its node list.
    pub fn components(g: &Graph) -> Vec<Vec<usize>> {
        let n = g.nodes();
        let mut seen = vec![false; n];
        let mut out = Vec::new();
        for s in 0..n {
            if seen[s] {
                continue;
            }
            seen[s] = true;
            let mut comp = vec![s];
            let mut i = 0;
            while i < comp.len() {
                let u = comp[i];
                i += 1;
                for &w in g.neighbours(u) {
                    if !seen[w as usize] {
                        seen[w as usize] = true;
                        comp.push(w as usize);
                    }
                }
            }
            out.push(comp);
        }
        out
    }
}

use faer::{Mat, Par, Side};
use graph::Graph;
use spade::{DelaunayTriangulation, Point2, Triangulation};
use spectrum::normalized_laplacian_eigenvalues;
use std::time::Instant;

/// SplitMix64, for the graphs' draws.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The Delaunay triangulation of `n` uniform points in the unit square (SPECTRE's planar graphs).
fn planar(rng: &mut Rng, n: usize) -> Graph {
    let points: Vec<Point2<f64>> = (0..n)
        .map(|_| Point2::new(rng.uniform(), rng.uniform()))
        .collect();
    let t = DelaunayTriangulation::<Point2<f64>>::bulk_load_stable(points).unwrap();
    let edges = t.undirected_edges().map(|e| {
        let [a, b] = e.vertices();
        (a.index(), b.index())
    });
    Graph::from_edges(n, edges)
}

/// Blocks of the given sizes, each pair linked with `p_in` inside a block and `p_out` across.
fn sbm(rng: &mut Rng, blocks: &[usize], p_in: f64, p_out: f64) -> Graph {
    let block: Vec<usize> = blocks
        .iter()
        .enumerate()
        .flat_map(|(b, &k)| std::iter::repeat_n(b, k))
        .collect();
    let n = block.len();
    let mut edges = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            let p = if block[i] == block[j] { p_in } else { p_out };
            if rng.uniform() < p {
                edges.push((i, j));
            }
        }
    }
    Graph::from_edges(n, edges)
}

fn grid(rows: usize, cols: usize) -> Graph {
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

fn star(leaves: usize) -> Graph {
    Graph::from_edges(leaves + 1, (1..=leaves).map(|v| (0, v)))
}

/// Two G(n/2, 0.7) communities with sparse links between, n from 12 to 20 (community-small).
fn community_small(rng: &mut Rng) -> Graph {
    let n = 12 + rng.below(9);
    let half = n / 2;
    let p_across = 2.0 * 0.05 / half as f64;
    let mut edges = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            let p = if (i < half) == (j < half) {
                0.7
            } else {
                p_across
            };
            if rng.uniform() < p {
                edges.push((i, j));
            }
        }
    }
    Graph::from_edges(n, edges)
}

/// The normalised Laplacian of the nodes `comp` as a dense faer matrix.
fn laplacian(g: &Graph, comp: &[usize], pos: &mut [usize]) -> Mat<f64> {
    for (i, &v) in comp.iter().enumerate() {
        pos[v] = i;
    }
    let m = comp.len();
    let mut a = Mat::<f64>::zeros(m, m);
    for (i, &v) in comp.iter().enumerate() {
        let dv = g.degree(v) as f64;
        if dv > 0.0 {
            a[(i, i)] = 1.0;
        }
        for &w in g.neighbours(v) {
            let dw = g.degree(w as usize) as f64;
            a[(i, pos[w as usize])] = -1.0 / (dv * dw).sqrt();
        }
    }
    a
}

/// faer's eigenvalues of the whole matrix, ascending.
fn faer_whole(g: &Graph) -> Vec<f64> {
    let comp: Vec<usize> = (0..g.nodes()).collect();
    let mut pos = vec![0; g.nodes()];
    laplacian(g, &comp, &mut pos)
        .self_adjoint_eigenvalues(Side::Lower)
        .unwrap()
}

/// faer's eigenvalues component by component, ascending.
fn faer_components(g: &Graph) -> Vec<f64> {
    let mut pos = vec![0; g.nodes()];
    let mut eig = Vec::with_capacity(g.nodes());
    for comp in graph::components(g) {
        if comp.len() == 1 {
            eig.push(0.0);
        } else {
            let a = laplacian(g, &comp, &mut pos);
            eig.extend(a.self_adjoint_eigenvalues(Side::Lower).unwrap());
        }
    }
    eig.sort_by(f64::total_cmp);
    eig
}

fn ours(g: &Graph) -> Vec<f64> {
    let mut eig = normalized_laplacian_eigenvalues(g);
    eig.sort_by(f64::total_cmp);
    eig
}

fn max_difference(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f64::max)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

type Method = (&'static str, fn(&Graph) -> Vec<f64>);

/// Milliseconds to compute every graph's spectrum with each method, the methods alternating
/// (their order reversed every other repetition); medians over `reps`.
fn time(graphs: &[Graph], methods: &[(Method, Par)], reps: usize) -> Vec<f64> {
    let mut times = vec![Vec::new(); methods.len()];
    for rep in 0..reps {
        let mut order: Vec<usize> = (0..methods.len()).collect();
        if rep % 2 == 1 {
            order.reverse();
        }
        for k in order {
            let ((_, f), par) = methods[k];
            faer::set_global_parallelism(par);
            let start = Instant::now();
            for g in graphs {
                std::hint::black_box(f(g));
            }
            times[k].push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.into_iter().map(median).collect()
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let reps: usize = std::env::args()
        .nth(1)
        .map_or(7, |s| s.parse().expect("repetitions"));
    let mut rng = Rng(21);
    let sets: Vec<(&str, Vec<Graph>)> = vec![
        (
            "planar (Delaunay) 1000 nodes x5",
            (0..5).map(|_| planar(&mut rng, 1000)).collect(),
        ),
        (
            "SBM 5 blocks of 200, p 0.3/0.005, x5",
            (0..5)
                .map(|_| sbm(&mut rng, &[200; 5], 0.3, 0.005))
                .collect(),
        ),
        (
            "SBM 25 blocks of 40, p 0.3/0.005, x5",
            (0..5)
                .map(|_| sbm(&mut rng, &[40; 25], 0.3, 0.005))
                .collect(),
        ),
        ("grid 25x40 x5", (0..5).map(|_| grid(25, 40)).collect()),
        (
            "SBM default (2-5 blocks of 20-40) x200",
            (0..200)
                .map(|_| {
                    let blocks: Vec<usize> =
                        (0..2 + rng.below(4)).map(|_| 20 + rng.below(21)).collect();
                    sbm(&mut rng, &blocks, 0.3, 0.005)
                })
                .collect(),
        ),
        (
            "planar 64 nodes x200",
            (0..200).map(|_| planar(&mut rng, 64)).collect(),
        ),
        (
            "grid default (sides 10-19) x100",
            (0..100).map(|i| grid(10 + i % 10, 10 + i / 10)).collect(),
        ),
        (
            "community-small (12-20 nodes) x100",
            (0..100).map(|_| community_small(&mut rng)).collect(),
        ),
    ];
    let ours_m: Method = ("ours", ours);
    let whole: Method = ("faer", faer_whole);
    let split: Method = ("faer per component", faer_components);
    println!("{reps} repetitions, medians in ms; faer on 1 thread unless marked");
    println!(
        "| graphs | ours | faer | faer per component | faer, {threads} threads | faer / ours | max |Δλ| |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, graphs) in &sets {
        let a: Vec<Vec<f64>> = graphs.iter().map(ours).collect();
        let b: Vec<Vec<f64>> = graphs.iter().map(faer_whole).collect();
        let c: Vec<Vec<f64>> = graphs.iter().map(faer_components).collect();
        let diff = max_difference(&a, &b).max(max_difference(&a, &c));
        let t = time(
            graphs,
            &[
                (ours_m, Par::Seq),
                (whole, Par::Seq),
                (split, Par::Seq),
                (whole, Par::rayon(threads)),
            ],
            reps,
        );
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2}x | {diff:.1e} |",
            t[0],
            t[1],
            t[2],
            t[3],
            t[1] / t[0]
        );
    }
    // The star: faer's 10,001 x 10,001 reduction runs once.
    let g = star(10_000);
    faer::set_global_parallelism(Par::Seq);
    let start = Instant::now();
    let a = ours(&g);
    let t_ours = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let b = faer_whole(&g);
    let t_faer = start.elapsed().as_secs_f64() * 1e3;
    println!(
        "| star of 10,000 leaves (1 run) | {t_ours:.2} | {t_faer:.0} | | | {:.0}x | {:.1e} |",
        t_faer / t_ours,
        max_difference(&[a], &[b])
    );
}
