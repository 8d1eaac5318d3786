//! Graph metrics: statistics with known answers, orbit counts against brute force, kernels,
//! isomorphism, validity, the readers' errors, and `diffc metrics` through the binary.

use diffc::graph::io::{parse_edge_list, parse_graph6, write_edge_list, write_graph6};
use diffc::graph::metrics::{
    clustering_coefficients, compute_mmd, convention, degree_histogram, evaluate, histogram,
    Kernel, Metric, Options, Validity,
};
use diffc::graph::orbits::{node_orbits, node_orbits_brute_force};
use diffc::graph::spectrum::normalized_laplacian_eigenvalues;
use diffc::graph::{iso, planar, sbm, Graph};
use rand::{Rng, SeedableRng};
use std::f64::consts::PI;

fn complete(n: usize) -> Graph {
    Graph::from_dense(n, |_, _| true)
}

fn star(leaves: usize) -> Graph {
    Graph::from_edges(leaves + 1, (1..=leaves).map(|v| (0, v)))
}

fn cycle(n: usize) -> Graph {
    Graph::from_edges(n, (0..n).map(|v| (v, (v + 1) % n)))
}

fn path(n: usize) -> Graph {
    Graph::from_edges(n, (1..n).map(|v| (v - 1, v)))
}

fn grid(w: usize, h: usize) -> Graph {
    let mut edges = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let v = y * w + x;
            if x + 1 < w {
                edges.push((v, v + 1));
            }
            if y + 1 < h {
                edges.push((v, v + w));
            }
        }
    }
    Graph::from_edges(w * h, edges)
}

fn random_graph(rng: &mut rand::rngs::StdRng, n: usize, p: f64) -> Graph {
    let mut edges = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            if rng.random::<f64>() < p {
                edges.push((i, j));
            }
        }
    }
    Graph::from_edges(n, edges)
}

fn shuffled(g: &Graph, rng: &mut rand::rngs::StdRng) -> Graph {
    let mut perm: Vec<usize> = (0..g.nodes()).collect();
    for i in (1..perm.len()).rev() {
        perm.swap(i, rng.random_range(0..=i));
    }
    g.relabel(&perm)
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

// ---- statistics with known answers ----

#[test]
fn clustering_of_complete_star_and_cycle() {
    assert!(clustering_coefficients(&complete(6))
        .iter()
        .all(|&c| c == 1.0));
    assert!(clustering_coefficients(&star(5)).iter().all(|&c| c == 0.0));
    assert!(clustering_coefficients(&cycle(7)).iter().all(|&c| c == 0.0));
    assert!(clustering_coefficients(&cycle(3)).iter().all(|&c| c == 1.0));
    // A triangle with a pendant edge: the degree-3 node closes one of its three pairs.
    let paw = Graph::from_edges(4, [(0, 1), (1, 2), (0, 2), (2, 3)]);
    let c = clustering_coefficients(&paw);
    assert_eq!(c, vec![1.0, 1.0, 1.0 / 3.0, 0.0]);
}

#[test]
fn degree_histograms() {
    assert_eq!(degree_histogram(&star(4)), vec![0.0, 4.0, 0.0, 0.0, 1.0]);
    assert_eq!(degree_histogram(&cycle(5)), vec![0.0, 0.0, 5.0]);
    assert_eq!(degree_histogram(&Graph::from_edges(3, [])), vec![3.0]);
}

#[test]
fn histograms_bin_as_numpy_does() {
    // Half-open bins, the last closed, values outside dropped.
    let h = histogram(&[0.0, 0.5, 0.99, 1.0, 1.5, -0.1], 2, 0.0, 1.0);
    assert_eq!(h, vec![1.0, 3.0]);
    let h = histogram(&[0.01, 0.02, 0.5], 100, 0.0, 1.0);
    assert_eq!((h[1], h[2], h[50]), (1.0, 1.0, 1.0));
}

#[test]
fn spectra_of_paths_and_cycles_match_closed_forms() {
    for n in [2usize, 3, 5, 8, 13, 40] {
        let eig = normalized_laplacian_eigenvalues(&path(n));
        let mut want: Vec<f64> = (0..n)
            .map(|k| 1.0 - (PI * k as f64 / (n - 1) as f64).cos())
            .collect();
        want.sort_by(f64::total_cmp);
        for (a, b) in eig.iter().zip(&want) {
            assert!(close(*a, *b, 1e-10), "path {n}: {eig:?} vs {want:?}");
        }
    }
    for n in [3usize, 4, 7, 16, 33] {
        let eig = normalized_laplacian_eigenvalues(&cycle(n));
        let mut want: Vec<f64> = (0..n)
            .map(|k| 1.0 - (2.0 * PI * k as f64 / n as f64).cos())
            .collect();
        want.sort_by(f64::total_cmp);
        for (a, b) in eig.iter().zip(&want) {
            assert!(close(*a, *b, 1e-10), "cycle {n}: {eig:?} vs {want:?}");
        }
    }
    // Complete graph: 0 once and n/(n−1) with multiplicity n − 1; isolated nodes give 0.
    let eig = normalized_laplacian_eigenvalues(&complete(5));
    assert!(close(eig[0], 0.0, 1e-12));
    assert!(eig[1..].iter().all(|&e| close(e, 1.25, 1e-12)));
    let eig = normalized_laplacian_eigenvalues(&Graph::from_edges(3, [(0, 1)]));
    assert!(close(eig[0], 0.0, 1e-12) && close(eig[1], 0.0, 1e-12) && close(eig[2], 2.0, 1e-12));
}

// ---- orbits ----

#[test]
fn orbit_counts_of_named_graphs_by_hand() {
    // A 4-path 0-1-2-3.
    let o = node_orbits(&path(4));
    assert_eq!(o[0], [1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(o[1], [2, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // A 3-star: the centre is in three 3-paths' middles and the star's centre.
    let o = node_orbits(&star(3));
    assert_eq!(o[0], [3, 0, 3, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(o[1], [1, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    // A 4-cycle: each node ends two 3-paths, is the middle of one and sits on the cycle.
    let o = node_orbits(&cycle(4));
    assert!(o
        .iter()
        .all(|c| *c == [2, 2, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
    // A paw: triangle 0-1-2 with pendant 3 on node 2.
    let paw = Graph::from_edges(4, [(0, 1), (1, 2), (0, 2), (2, 3)]);
    let o = node_orbits(&paw);
    assert_eq!(o[3], [1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    assert_eq!(o[0], [2, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(o[2], [3, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    // A diamond: the 4-cycle 0-1-2-3 with the chord 0-2.
    let diamond = Graph::from_edges(4, [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)]);
    let o = node_orbits(&diamond);
    assert_eq!(o[1], [2, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(o[0], [3, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    // K4: three triangles and the clique per node.
    let o = node_orbits(&complete(4));
    assert!(o
        .iter()
        .all(|c| *c == [3, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]));
}

#[test]
fn orbit_counts_match_brute_force_on_random_graphs() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for trial in 0..60 {
        let n = rng.random_range(4..14);
        let p = [0.15, 0.3, 0.5, 0.8][trial % 4];
        let g = random_graph(&mut rng, n, p);
        assert_eq!(
            node_orbits(&g),
            node_orbits_brute_force(&g),
            "trial {trial}"
        );
    }
}

// ---- kernels and MMD ----

#[test]
fn the_mmd_of_a_set_with_itself_is_zero() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let graphs: Vec<Graph> = (0..12)
        .map(|i| random_graph(&mut rng, 8 + i % 5, 0.4))
        .collect();
    for name in diffc::graph::metrics::CONVENTIONS {
        let options = Options {
            convention: convention(name).unwrap(),
            metrics: vec![
                Metric::Degree,
                Metric::Clustering,
                Metric::Orbit,
                Metric::Spectral,
            ],
            validity: None,
            threads: 2,
        };
        let report = evaluate(&graphs, &graphs, None, &options, &|_| {}).unwrap();
        for (m, v) in report.values {
            assert!(v.abs() < 1e-12, "{name} {m:?}: {v}");
        }
    }
}

#[test]
fn kernels_follow_their_definitions() {
    // Two point masses two bins apart: EMD 2, TV 1.
    let x = vec![1.0, 0.0, 0.0];
    let y = vec![0.0, 0.0, 1.0];
    let emd = Kernel::GaussianEmd {
        sigma: 1.0,
        scaling: 1.0,
    };
    assert!(close(emd.eval(&x, &y), (-2.0f64).exp(), 1e-15));
    let tv = Kernel::GaussianTv { sigma: 1.0 };
    assert!(close(tv.eval(&x, &y), (-0.5f64).exp(), 1e-15));
    // Padding: [1] against [0, 0, 1] is the same as against itself padded.
    assert_eq!(emd.eval(&[1.0], &y), emd.eval(&x, &y));
    let l2 = Kernel::GaussianL2 { sigma: 2.0 };
    assert!(close(
        l2.eval(&[0.0, 3.0], &[4.0]),
        (-25.0f64 / 8.0).exp(),
        1e-15
    ));
    // MMD² of {x} against {y} is 2 − 2k(x, y).
    let spec = convention("gran").unwrap().degree;
    let v = compute_mmd(std::slice::from_ref(&x), std::slice::from_ref(&y), spec, 1);
    assert!(close(v, 2.0 - 2.0 * (-0.5f64).exp(), 1e-15));
}

// ---- isomorphism, uniqueness, novelty ----

#[test]
fn isomorphic_relabelings_are_duplicates() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut graphs = Vec::new();
    for _ in 0..6 {
        let g = random_graph(&mut rng, 12, 0.35);
        graphs.push(shuffled(&g, &mut rng));
        graphs.push(g);
    }
    // Regular graphs that WL cannot split: a 6-cycle against two triangles.
    graphs.push(cycle(6));
    graphs.push(Graph::from_edges(
        6,
        [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)],
    ));
    graphs.push(shuffled(&grid(4, 5), &mut rng));
    graphs.push(grid(5, 4));
    let hashes: Vec<u64> = graphs.iter().map(iso::wl_hash).collect();
    let earlier = iso::first_isomorphic_earlier(&graphs, &hashes);
    for i in 0..6 {
        assert_eq!(earlier[2 * i], None);
        assert_eq!(earlier[2 * i + 1], Some(2 * i));
    }
    assert_eq!(earlier[12], None);
    assert_eq!(earlier[13], None, "C6 is not two triangles");
    assert_eq!(earlier[15], Some(14));
    assert!(!iso::is_isomorphic(&cycle(6), &graphs[13]));
    let empty = Graph::from_edges(0, []);
    assert!(iso::is_isomorphic(&empty, &empty));

    let options = Options {
        convention: convention("spectre").unwrap(),
        metrics: vec![Metric::Unique, Metric::Novel],
        validity: None,
        threads: 2,
    };
    let train = vec![graphs[0].clone(), cycle(6)];
    let report = evaluate(&graphs, &graphs, Some(&train), &options, &|_| {}).unwrap();
    assert_eq!(report.values[0].1, 9.0 / 16.0);
    assert_eq!(report.values[1].1, 13.0 / 16.0);
}

// ---- validity ----

#[test]
fn planarity() {
    assert!(planar::is_planar(&complete(4)));
    assert!(!planar::is_planar(&complete(5)));
    let k33 = Graph::from_edges(6, (0..3).flat_map(|a| (3..6).map(move |b| (a, b))));
    assert!(!planar::is_planar(&k33));
    assert!(planar::is_planar(&grid(8, 8)));
    // The Petersen graph is not planar; a wheel and an 8×8 grid with diagonals are.
    let petersen = Graph::from_edges(
        10,
        (0..5).flat_map(|i| [(i, (i + 1) % 5), (i, i + 5), (5 + i, 5 + (i + 2) % 5)]),
    );
    assert!(!planar::is_planar(&petersen));
    let wheel = Graph::from_edges(9, (1..9).flat_map(|i| [(0, i), (i, i % 8 + 1)]));
    assert!(planar::is_planar(&wheel));
    let mut g = grid(8, 8);
    let mut edges: Vec<(usize, usize)> = g.edges().collect();
    for y in 0..7 {
        for x in 0..7 {
            edges.push((y * 8 + x, (y + 1) * 8 + x + 1));
        }
    }
    g = Graph::from_edges(64, edges.clone());
    assert!(planar::is_planar(&g));
    // Adding both diagonals of every cell of a grid makes K5 minors.
    edges.extend((0..7).flat_map(|y| (0..7).map(move |x| (y * 8 + x + 1, (y + 1) * 8 + x))));
    assert!(!planar::is_planar(&Graph::from_edges(64, edges)));
    // Planar and connected: two disjoint triangles are planar but not connected.
    let two = Graph::from_edges(6, [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)]);
    assert!(planar::is_planar(&two) && !planar::is_planar_and_connected(&two));
}

#[test]
fn planarity_agrees_with_kuratowski_sized_random_checks() {
    // Random graphs on 6 nodes: non-planar exactly when they contain K5 or K3,3 as a
    // subdivision; on 6 nodes that means a K5 subgraph, a K3,3 subgraph, or a K5 with one
    // edge subdivided, checked here by brute force over node subsets and bipartitions.
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for _ in 0..300 {
        let g = random_graph(&mut rng, 6, 0.7);
        assert_eq!(
            planar::is_planar(&g),
            !has_kuratowski_6(&g),
            "{:?}",
            g.edges().collect::<Vec<_>>()
        );
    }
}

fn has_kuratowski_6(g: &Graph) -> bool {
    let n = g.nodes();
    // K5 on any five nodes.
    for skip in 0..n {
        let nodes: Vec<usize> = (0..n).filter(|&v| v != skip).collect();
        if nodes
            .iter()
            .all(|&a| nodes.iter().all(|&b| a == b || g.has_edge(a, b)))
        {
            return true;
        }
        // K5 with the edge a–b subdivided through `skip`.
        for &a in &nodes {
            for &b in &nodes {
                if a < b && g.has_edge(skip, a) && g.has_edge(skip, b) {
                    let ok = nodes.iter().all(|&x| {
                        nodes
                            .iter()
                            .all(|&y| x == y || (x.min(y), x.max(y)) == (a, b) || g.has_edge(x, y))
                    });
                    if ok {
                        return true;
                    }
                }
            }
        }
    }
    // K3,3 on all six nodes.
    for mask in 0u32..64 {
        if mask.count_ones() != 3 || mask & 1 == 0 {
            continue;
        }
        let left: Vec<usize> = (0..6).filter(|&v| mask >> v & 1 == 1).collect();
        let right: Vec<usize> = (0..6).filter(|&v| mask >> v & 1 == 0).collect();
        if left
            .iter()
            .all(|&a| right.iter().all(|&b| g.has_edge(a, b)))
        {
            return true;
        }
    }
    false
}

/// `edges` on `n` nodes with every edge replaced by a path through `extra` new nodes.
fn subdivided(n: usize, edges: &[(usize, usize)], extra: usize) -> Graph {
    let mut out = Vec::new();
    let mut next = n;
    for &(a, b) in edges {
        let mut previous = a;
        for _ in 0..extra {
            out.push((previous, next));
            previous = next;
            next += 1;
        }
        out.push((previous, b));
    }
    Graph::from_edges(next, out)
}

/// `g` with `h` placed on new nodes, `h`'s nodes joined to `g`'s by the pairs in `links`.
fn union_linked(g: &Graph, h: &Graph, links: &[(usize, usize)]) -> Graph {
    let n = g.nodes();
    let edges = g
        .edges()
        .chain(h.edges().map(|(u, v)| (n + u, n + v)))
        .chain(links.iter().map(|&(u, v)| (u, n + v)));
    Graph::from_edges(n + h.nodes(), edges)
}

#[test]
fn planarity_of_kuratowski_subdivisions_triangulations_and_random_graphs() {
    let k5: Vec<(usize, usize)> = (0..5)
        .flat_map(|a| (a + 1..5).map(move |b| (a, b)))
        .collect();
    let k33: Vec<(usize, usize)> = (0..3).flat_map(|a| (3..6).map(move |b| (a, b))).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    for extra in 0..4 {
        // Subdivisions of K5 and K3,3 are not planar; with one edge removed they are.
        for (n, edges) in [(5, &k5), (6, &k33)] {
            let g = shuffled(&subdivided(n, edges, extra), &mut rng);
            assert!(!planar::is_planar(&g), "{extra} {edges:?}");
            let h = shuffled(&subdivided(n, &edges[1..], extra), &mut rng);
            assert!(planar::is_planar(&h), "{extra} {edges:?} less one edge");
        }
    }
    // Delaunay triangulations of the planar set are planar, and so is each with a random third
    // of its edges removed.
    for (i, nodes) in [(0, 64), (1, 64), (2, 64), (3, 1000)] {
        let g = diffc::data::graphs::planar(5, i, (nodes, nodes));
        assert!(planar::is_planar_and_connected(&g), "graph {i}");
        let kept = g.edges().filter(|_| rng.random::<f64>() < 2.0 / 3.0);
        assert!(planar::is_planar(&Graph::from_edges(nodes, kept)));
        // A subdivided K3,3 hung off the triangulation by one edge, and a K5 glued to it along
        // three nodes, make it non-planar without passing 3n − 6 edges.
        let k33_graph = subdivided(6, &k33, 2);
        let with_k33 = union_linked(&g, &k33_graph, &[(0, 0)]);
        assert!(with_k33.edge_count() <= 3 * with_k33.nodes() - 6);
        assert!(!planar::is_planar(&with_k33), "graph {i} with K3,3");
        let k5_graph = subdivided(5, &k5, 1);
        let with_k5 = union_linked(&g, &k5_graph, &[(0, 0), (1, 1), (2, 2)]);
        assert!(with_k5.edge_count() <= 3 * with_k5.nodes() - 6);
        assert!(!planar::is_planar(&with_k5), "graph {i} with K5");
    }
    // A planar graph without triangles has at most 2n − 4 edges, so random bipartite graphs
    // with more (but at most 3n − 6, past the edge-count refusal) are not planar.
    for n in [12, 40, 200] {
        for _ in 0..20 {
            let half = n / 2;
            let target = 2 * n - 4 + 1 + rng.random_range(0..n - 2);
            let mut edges = std::collections::BTreeSet::new();
            while edges.len() < target {
                edges.insert((rng.random_range(0..half), rng.random_range(half..n)));
            }
            let g = Graph::from_edges(n, edges);
            assert!(g.edge_count() > 2 * n - 4 && g.edge_count() <= 3 * n - 6);
            assert!(
                !planar::is_planar(&g),
                "{:?}",
                g.edges().collect::<Vec<_>>()
            );
        }
    }
    // Dense random graphs pass 3n − 6 edges and are not planar; forests are.
    for _ in 0..20 {
        assert!(!planar::is_planar(&random_graph(&mut rng, 64, 0.5)));
        let mut forest = Vec::new();
        for v in 1..64 {
            if rng.random::<f64>() < 0.9 {
                forest.push((rng.random_range(0..v), v));
            }
        }
        assert!(planar::is_planar(&Graph::from_edges(64, forest)));
    }
}

#[test]
fn sbm_validity_recovers_planted_blocks() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let sizes = [25usize, 32, 38];
    let block = |v: usize| {
        if v < 25 {
            0
        } else if v < 57 {
            1
        } else {
            2
        }
    };
    let n: usize = sizes.iter().sum();
    let mut edges = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            let p = if block(i) == block(j) { 0.3 } else { 0.005 };
            if rng.random::<f64>() < p {
                edges.push((i, j));
            }
        }
    }
    let g = Graph::from_edges(n, edges);
    let labels = sbm::louvain(&g);
    for v in 1..n {
        assert_eq!(
            labels[v] == labels[v - 1],
            block(v) == block(v - 1),
            "node {v}"
        );
    }
    assert!(Validity::parse("sbm").unwrap().check(&g));
    // One dense random graph is one block: not an SBM graph.
    let er = random_graph(&mut rng, 90, 0.3);
    assert!(!Validity::parse("sbm").unwrap().check(&er));
}

// ---- readers ----

#[test]
fn graph6_round_trips() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for n in [0usize, 1, 2, 5, 62, 63, 64, 100] {
        let g = random_graph(&mut rng, n, 0.3);
        let line = write_graph6(&g);
        let back = parse_graph6("x.g6", line.as_bytes()).unwrap();
        assert_eq!(back, vec![g.clone()]);
        let text = write_edge_list(&g);
        assert_eq!(parse_edge_list("x.txt", &text).unwrap(), g);
    }
    // networkx: `nx.to_graph6_bytes(nx.path_graph(4))` is `>>graph6<<Ch\n`.
    let g = parse_graph6("p.g6", b">>graph6<<Ch\n").unwrap();
    assert_eq!(g, vec![path(4)]);
}

#[test]
fn malformed_files_name_the_file_and_line() {
    let cases: [(&str, &str); 6] = [
        ("0 1\n1 x\n", "g.txt:2: `x` is not a node index"),
        ("# c\n0 1\n2 2\n", "g.txt:3: self-loop on node 2"),
        (
            "nodes 3\n0 1\n1 3\n",
            "g.txt:3: node index 3 is past the declared count of 3 nodes",
        ),
        ("", "g.txt:1: the file is empty"),
        ("0 1 2\n", "g.txt:1: expected an edge `u v`"),
        ("0 -1\n", "g.txt:1: `-1` is not a node index"),
    ];
    for (text, want) in cases {
        let e = parse_edge_list("g.txt", text).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e:?} should start with {want:?}");
    }
    let e = parse_graph6("g.g6", b"Ch\nC\n").unwrap_err().to_string();
    assert!(
        e.starts_with("g.g6:2: a graph on 4 nodes needs 1 bytes"),
        "{e}"
    );
    let e = parse_graph6("g.g6", b"C h\n").unwrap_err().to_string();
    assert!(e.starts_with("g.g6:1: byte 2"), "{e}");
    let e = parse_graph6("g.g6", b"").unwrap_err().to_string();
    assert!(e.starts_with("g.g6:1: the file is empty"), "{e}");
    // networkx's edge lists carry an attribute dict.
    assert_eq!(
        parse_edge_list("n.txt", "0 1 {}\n1 2 {}\n").unwrap(),
        path(3)
    );
}

// ---- the command line ----

fn diffc(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_diffc"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("diffc-metrics-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn cli_scores_folders_graph6_and_npy() {
    let dir = temp_dir("ok");
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let graphs: Vec<Graph> = (0..6).map(|_| random_graph(&mut rng, 10, 0.4)).collect();
    let folder = dir.join("gen");
    std::fs::create_dir_all(&folder).unwrap();
    for (i, g) in graphs.iter().enumerate() {
        std::fs::write(folder.join(format!("g{i}.txt")), write_edge_list(g)).unwrap();
    }
    let g6: String = graphs.iter().map(|g| write_graph6(g) + "\n").collect();
    std::fs::write(dir.join("ref.g6"), g6).unwrap();
    let mut data = vec![0.0f32; graphs.len() * 12 * 12];
    for (b, g) in graphs.iter().enumerate() {
        for (u, v) in g.edges() {
            data[b * 144 + u * 12 + v] = 1.0;
            data[b * 144 + v * 12 + u] = 1.0;
        }
    }
    let array =
        diffc::npy::Array::new(vec![graphs.len(), 12, 12], diffc::npy::Data::F32(data)).unwrap();
    diffc::npy::write_file(&array, &dir.join("train.npy")).unwrap();
    let (gen, reference, train) = (
        folder.to_string_lossy().into_owned(),
        dir.join("ref.g6").to_string_lossy().into_owned(),
        dir.join("train.npy").to_string_lossy().into_owned(),
    );
    let (code, out, err) = diffc(&[
        "metrics",
        &gen,
        &reference,
        "--train",
        &train,
        "--validity",
        "planar",
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["convention"], "spectre");
    for m in ["degree", "clustering", "orbit", "spectral"] {
        assert!(v["metrics"][m].as_f64().unwrap().abs() < 1e-12, "{out}");
    }
    // The padded npy stack holds the same graphs, so nothing is novel.
    assert_eq!(v["metrics"]["novel"], 0.0, "{out}");
    assert_eq!(v["metrics"]["unique"], 1.0, "{out}");
    let (code, out, _) = diffc(&[
        "metrics",
        &gen,
        &reference,
        "--metrics",
        "degree",
        "--convention",
        "graphrnn",
    ]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("degree") && out.contains("gaussian-emd sigma=1"),
        "{out}"
    );
}

#[test]
fn cli_errors_exit_2_naming_file_and_line() {
    let dir = temp_dir("bad");
    std::fs::write(dir.join("a.txt"), "0 1\n1 2\n").unwrap();
    let good = dir.to_string_lossy().into_owned();
    let bad = temp_dir("bad2");
    std::fs::write(bad.join("b.txt"), "nodes 2\n0 1\n0 5\n").unwrap();
    let bad = bad.to_string_lossy().into_owned();
    let (code, _, err) = diffc(&["metrics", &good, &bad]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("b.txt:3: node index 5 is past the declared count"),
        "{err}"
    );
    let (code, _, err) = diffc(&["metrics", &good, &good, "--convention", "nope"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown convention `nope`"), "{err}");
    let (code, _, err) = diffc(&["metrics", &good, &good, "--metrics", "novel"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--train"), "{err}");
    let (code, _, err) = diffc(&["metrics", &good, "/nonexistent/set.g6"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot read `/nonexistent/set.g6`"), "{err}");
}
