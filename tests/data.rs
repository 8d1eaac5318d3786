//! The generated datasets (`diffc::data`) and the sample-quality measures of point and sequence
//! sets: determinism, sizes and ranges, the structure each construction promises, Delaunay's
//! properties, and the measures' known answers.

use diffc::data::{self, graphs, measures, points, words, Dataset, Options};
use diffc::graph::{self, Graph};

fn graph_set(name: &str, seed: u64, options: &Options) -> Vec<Graph> {
    match data::generate_with(name, seed, options).unwrap() {
        Dataset::Graphs(graphs) => graphs,
        other => panic!("{name} is not a graph set: {other:?}"),
    }
}

fn point_set(name: &str, seed: u64, count: usize) -> Vec<f32> {
    let options = Options {
        count: Some(count),
        size: None,
    };
    match data::generate_with(name, seed, &options).unwrap() {
        Dataset::Points { dim: 2, points, .. } => points,
        other => panic!("{name} is not a 2-D point set: {other:?}"),
    }
}

fn small(count: usize) -> Options {
    Options {
        count: Some(count),
        size: None,
    }
}

#[test]
fn every_name_generates_and_depends_on_the_seed_only() {
    for &(name, description) in data::names() {
        assert!(!description.is_empty());
        let options = small(12);
        let a = data::generate_with(name, 7, &options).unwrap();
        let b = data::generate_with(name, 7, &options).unwrap();
        let c = data::generate_with(name, 8, &options).unwrap();
        assert_eq!(a, b, "{name}: same seed, same data");
        assert_ne!(a, c, "{name}: another seed, other data");
        assert_eq!(a.len(), 12, "{name}");
    }
}

#[test]
fn defaults_have_the_stated_sizes() {
    let expected = [
        ("community-small", 100),
        ("grid", 100),
        ("sbm", 200),
        ("planar", 200),
        ("words", 200),
        ("moons", 500),
        ("gaussians8", 500),
        ("checkerboard", 500),
        ("swissroll", 500),
    ];
    assert_eq!(data::names().len(), expected.len());
    for (name, count) in expected {
        assert_eq!(data::generate(name, 0).unwrap().len(), count, "{name}");
    }
}

#[test]
fn a_larger_count_keeps_the_first_items() {
    for name in ["community-small", "planar", "words", "moons", "grid"] {
        let few = data::generate_with(name, 3, &small(5)).unwrap();
        let many = data::generate_with(name, 3, &small(120)).unwrap();
        match (few, many) {
            (Dataset::Graphs(a), Dataset::Graphs(b)) => assert_eq!(a[..], b[..5], "{name}"),
            (Dataset::Sequences { seqs: a, .. }, Dataset::Sequences { seqs: b, .. }) => {
                assert_eq!(a[..], b[..5], "{name}")
            }
            (Dataset::Points { points: a, .. }, Dataset::Points { points: b, .. }) => {
                assert_eq!(a[..], b[..10], "{name}")
            }
            _ => panic!("{name}: kinds differ"),
        }
    }
}

#[test]
fn bad_requests_are_errors() {
    let cases: [(&str, Options, &str); 6] = [
        ("nope", Options::default(), "unknown dataset"),
        ("moons", small(0), "count"),
        (
            "moons",
            Options {
                count: None,
                size: Some((1, 2)),
            },
            "takes no size",
        ),
        (
            "words",
            Options {
                count: None,
                size: Some((8, 9)),
            },
            "one length",
        ),
        (
            "grid",
            Options {
                count: None,
                size: Some((5, 4)),
            },
            "min <= max",
        ),
        (
            "planar",
            Options {
                count: None,
                size: Some((2, 2)),
            },
            "at least 3",
        ),
    ];
    for (name, options, message) in cases {
        let err = data::generate_with(name, 0, &options).unwrap_err();
        assert!(err.contains(message), "{name}: {err}");
    }
}

#[test]
fn community_small_has_two_dense_communities_and_few_links_between() {
    let set = graph_set("community-small", 1, &Options::default());
    let (mut inside, mut across, mut inside_pairs) = (0usize, 0usize, 0usize);
    let mut sizes_seen = std::collections::BTreeSet::new();
    for g in &set {
        let n = g.nodes();
        assert!((12..=20).contains(&n), "{n} nodes");
        sizes_seen.insert(n);
        let half = n / 2;
        let cross = g.edges().filter(|&(u, v)| (u < half) != (v < half)).count();
        assert!(cross >= 1, "at least one link between the communities");
        across += cross;
        inside += g.edge_count() - cross;
        inside_pairs += half * (half - 1) / 2 + (n - half) * (n - half - 1) / 2;
    }
    assert_eq!(sizes_seen.len(), 9, "every size from 12 to 20 occurs");
    let density = inside as f64 / inside_pairs as f64;
    assert!((0.67..0.73).contains(&density), "density inside {density}");
    let fraction_inside = inside as f64 / (inside + across) as f64;
    assert!(
        fraction_inside > 0.95,
        "fraction of edges inside {fraction_inside}"
    );
    // p_across = 0.1 / ⌊n/2⌋ over ⌊n/2⌋ (n − ⌊n/2⌋) pairs: about 0.1 (n − ⌊n/2⌋) ≈ 0.8 expected
    // links per graph, plus the forced one when none was drawn.
    let per_graph = across as f64 / set.len() as f64;
    assert!(
        (1.0..1.8).contains(&per_graph),
        "links across per graph {per_graph}"
    );
}

#[test]
fn grids_are_every_size_pair_once_with_lattice_edge_counts() {
    let set = graph_set("grid", 4, &Options::default());
    let mut shapes = Vec::new();
    for g in &set {
        // Node r·cols + c: the first row's last node is the only node of row 0 with degree 2
        // besides node 0, which gives cols.
        let cols = (1..g.nodes()).find(|&v| g.degree(v) == 2).unwrap() + 1;
        let rows = g.nodes() / cols;
        assert_eq!(rows * cols, g.nodes());
        assert_eq!(g.edge_count(), 2 * rows * cols - rows - cols);
        assert_eq!(*g, graphs::grid(rows, cols));
        shapes.push((rows, cols));
    }
    shapes.sort_unstable();
    let every: Vec<(usize, usize)> = (10..20)
        .flat_map(|r| (10..20).map(move |c| (r, c)))
        .collect();
    assert_eq!(shapes, every);
    for (r, c) in [(1, 1), (1, 5), (2, 3), (7, 4)] {
        let g = graphs::grid(r, c);
        assert_eq!(g.edge_count(), 2 * r * c - r - c, "{r} x {c}");
        assert!(g.is_connected());
    }
}

#[test]
fn small_grids_and_counts_past_every_pair() {
    let options = Options {
        count: Some(20),
        size: Some((3, 5)),
    };
    let set = graph_set("grid", 0, &options);
    assert_eq!(set.len(), 20);
    for g in &set {
        assert!((9..=25).contains(&g.nodes()));
    }
    let default_count = graph_set(
        "grid",
        0,
        &Options {
            count: None,
            size: Some((3, 5)),
        },
    );
    assert_eq!(default_count.len(), 9);
    assert_eq!(default_count[..], set[..9]);
}

#[test]
fn sbm_graphs_have_planted_blocks_of_the_stated_sizes() {
    let (mut e_in, mut pairs_in, mut e_out, mut pairs_out) = (0usize, 0usize, 0usize, 0usize);
    let set = graph_set("sbm", 2, &small(60));
    for (i, g) in set.iter().enumerate() {
        let (same, sizes) = graphs::sbm(2, i, graphs::SBM_BLOCK_SIZES).unwrap();
        assert_eq!(&same, g);
        assert!((2..=5).contains(&sizes.len()), "{sizes:?}");
        assert!(sizes.iter().all(|s| (20..=40).contains(s)), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), g.nodes());
        assert!(g.is_connected());
        let block: Vec<usize> = sizes
            .iter()
            .enumerate()
            .flat_map(|(b, &s)| std::iter::repeat_n(b, s))
            .collect();
        for (u, v) in g.edges() {
            if block[u] == block[v] {
                e_in += 1;
            } else {
                e_out += 1;
            }
        }
        let n = g.nodes();
        let within: usize = sizes.iter().map(|s| s * (s - 1) / 2).sum();
        pairs_in += within;
        pairs_out += n * (n - 1) / 2 - within;
    }
    let p_in = e_in as f64 / pairs_in as f64;
    let p_out = e_out as f64 / pairs_out as f64;
    assert!((0.29..0.31).contains(&p_in), "p_in {p_in}");
    // Conditioning on connectivity raises the density between blocks a little.
    assert!((0.004..0.008).contains(&p_out), "p_out {p_out}");
    let valid = set[..10]
        .iter()
        .filter(|g| graph::sbm::is_sbm(g, &graph::sbm::SbmTest::default()))
        .count();
    assert!(valid >= 8, "{valid} of 10 pass the SBM test");
}

/// Twice the signed area of the triangle (a, b, c): positive when a, b, c turn counter-clockwise.
fn orient(a: [i64; 2], b: [i64; 2], c: [i64; 2]) -> i128 {
    let (abx, aby) = ((b[0] - a[0]) as i128, (b[1] - a[1]) as i128);
    let (acx, acy) = ((c[0] - a[0]) as i128, (c[1] - a[1]) as i128);
    abx * acy - aby * acx
}

/// Positive when `d` lies strictly inside the circumcircle of the counter-clockwise triangle
/// (a, b, c), zero when on it, negative when outside; exact below 2^28.
fn in_circle(a: [i64; 2], b: [i64; 2], c: [i64; 2], d: [i64; 2]) -> i128 {
    let rel = |p: [i64; 2]| {
        let x = (p[0] - d[0]) as i128;
        let y = (p[1] - d[1]) as i128;
        (x, y, x * x + y * y)
    };
    let (ax, ay, al) = rel(a);
    let (bx, by, bl) = rel(b);
    let (cx, cy, cl) = rel(c);
    ax * (by * cl - cy * bl) - ay * (bx * cl - cx * bl) + al * (bx * cy - by * cx)
}

fn triangle_edges(triangles: &[[usize; 3]]) -> Vec<(usize, usize)> {
    triangles
        .iter()
        .flat_map(|&[a, b, c]| [(a, b), (b, c), (c, a)])
        .collect()
}

/// The hull's corner and edge points by brute force: a pair is a hull edge when no point lies
/// strictly right of it; every point on such an edge is on the boundary.
fn boundary_points(points: &[[i64; 2]]) -> usize {
    let n = points.len();
    let mut on = vec![false; n];
    for i in 0..n {
        for j in 0..n {
            if i != j && (0..n).all(|k| orient(points[i], points[j], points[k]) >= 0) {
                for k in 0..n {
                    if orient(points[i], points[j], points[k]) == 0 {
                        on[k] = true;
                    }
                }
            }
        }
    }
    on.iter().filter(|&&b| b).count()
}

fn check_delaunay(points: &[[i64; 2]]) {
    let n = points.len();
    let triangles = graphs::delaunay_triangles(points);
    let g = Graph::from_edges(n, triangle_edges(&triangles));
    let h = boundary_points(points);
    assert_eq!(g.edge_count(), 3 * n - 3 - h, "edges of a triangulation");
    assert_eq!(
        triangles.len(),
        2 * n - 2 - h,
        "triangles of a triangulation"
    );
    for t in &triangles {
        let [a, b, c] = t.map(|v| points[v]);
        assert!(orient(a, b, c) > 0, "counter-clockwise");
        for (k, &p) in points.iter().enumerate() {
            if !t.contains(&k) {
                assert!(
                    in_circle(a, b, c, p) <= 0,
                    "point {k} inside the circumcircle of {t:?}"
                );
            }
        }
    }
    assert!(graph::planar::is_planar_and_connected(&g));
}

#[test]
fn planar_graphs_are_delaunay_triangulations() {
    for seed in [0, 1, 2] {
        for i in 0..4 {
            let points = graphs::planar_points(seed, i, (64, 64));
            assert_eq!(points.len(), 64);
            for p in &points {
                assert!(
                    p.iter().all(|&x| x > 0 && x < 1 << 24 && x % 2 == 1),
                    "{p:?}"
                );
            }
            check_delaunay(&points);
            let g = graphs::planar(seed, i, (64, 64));
            assert_eq!(
                g,
                Graph::from_edges(64, triangle_edges(&graphs::delaunay_triangles(&points)))
            );
        }
    }
    for g in graph_set("planar", 5, &Options::default()) {
        assert_eq!(g.nodes(), 64);
        assert!(graph::planar::is_planar_and_connected(&g));
    }
}

#[test]
fn delaunay_of_a_thousand_points() {
    let options = Options {
        count: Some(1),
        size: Some((1000, 1000)),
    };
    let g = &graph_set("planar", 9, &options)[0];
    assert_eq!(g.nodes(), 1000);
    check_delaunay(&graphs::planar_points(9, 0, (1000, 1000)));
}

#[test]
fn delaunay_degenerate_configurations() {
    // Four points on one circle: either diagonal is Delaunay; 5 edges, 2 triangles.
    check_delaunay(&[[0, 0], [4, 0], [4, 4], [0, 4]]);
    // A square lattice: many cocircular quadruples.
    let lattice: Vec<[i64; 2]> = (0..5)
        .flat_map(|x| (0..4).map(move |y| [x * 3, y * 3]))
        .collect();
    check_delaunay(&lattice);
    // Points on hull edges, and inner points on the segment between two others.
    check_delaunay(&[
        [0, 0],
        [10, 0],
        [5, 0],
        [10, 10],
        [0, 10],
        [5, 5],
        [10, 5],
        [2, 2],
    ]);
    // Collinear points have no triangle; fewer than 3 points neither.
    assert!(graphs::delaunay_triangles(&[[0, 0], [1, 1], [2, 2], [5, 5]]).is_empty());
    assert!(graphs::delaunay_triangles(&[[0, 0], [1, 1]]).is_empty());
}

/// No four points of a Delaunay triangle and the apex across one of its edges lie on one circle:
/// then the triangulation is unique, so the planar sets do not depend on spade's tie-breaking.
#[test]
fn planar_sets_have_unique_delaunay_triangulations() {
    for seed in 0..4 {
        for i in 0..200 {
            let points = graphs::planar_points(seed, i, (64, 64));
            let triangles = graphs::delaunay_triangles(&points);
            let apexes: std::collections::HashMap<(usize, usize), usize> = triangles
                .iter()
                .flat_map(|&[a, b, c]| [((a, b), c), ((b, c), a), ((c, a), b)])
                .collect();
            for &[a, b, c] in &triangles {
                for (u, v) in [(a, b), (b, c), (c, a)] {
                    if let Some(&d) = apexes.get(&(v, u)) {
                        let [pa, pb, pc] = [a, b, c].map(|k| points[k]);
                        assert_ne!(
                            in_circle(pa, pb, pc, points[d]),
                            0,
                            "seed {seed} graph {i}: {a}, {b}, {c}, {d} on one circle"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn word_sequences_are_vocabulary_words_joined_by_single_spaces() {
    let Dataset::Sequences { classes, len, seqs } = data::generate("words", 11).unwrap() else {
        panic!("words are sequences")
    };
    assert_eq!((classes, len, seqs.len()), (27, 16, 200));
    let mut first_words = std::collections::BTreeSet::new();
    for seq in &seqs {
        assert_eq!(seq.len(), 16);
        assert!(seq.iter().all(|&s| s < 27));
        let text = words::decode(seq);
        assert!(!text.starts_with(' '), "{text:?}");
        let body = text.trim_end_matches(' ');
        assert!(!body.contains("  "), "{text:?}");
        for word in body.split(' ') {
            assert!(words::WORDS.contains(&word), "{word:?} in {text:?}");
        }
        // The next word would not have fitted: at most 5 letters plus a space were free.
        assert!(16 - body.len() <= 5, "{text:?}");
        first_words.insert(body.split(' ').next().unwrap().to_string());
        assert_eq!(words::encode(&text).unwrap(), *seq);
    }
    assert!(first_words.len() > 35, "{} first words", first_words.len());
    let options = Options {
        count: Some(3),
        size: Some((40, 40)),
    };
    let Dataset::Sequences { len, seqs, .. } = data::generate_with("words", 11, &options).unwrap()
    else {
        panic!("words are sequences")
    };
    assert_eq!(len, 40);
    assert!(seqs.iter().all(|s| s.len() == 40));
}

#[test]
fn text_lines_round_trip_and_errors_point_at_the_character() {
    let seqs = vec![
        words::encode("the cat").unwrap(),
        words::encode("  ").unwrap(),
        vec![0, 25, 26],
    ];
    let text = words::to_lines(&seqs);
    assert_eq!(text, "the cat\n  \naz \n");
    assert_eq!(words::from_lines(&text).unwrap(), seqs);
    assert_eq!(
        words::from_lines("ab\r\n\ncd\n").unwrap(),
        vec![vec![0, 1], vec![2, 3]]
    );
    let err = words::from_lines("ok\nfine\nbaD\n").unwrap_err();
    assert_eq!(
        err,
        "line 3, column 3: 'D' is not a lowercase letter or a space"
    );
    assert_eq!(words::decode(&[7, 27, 26]), "h? ");
}

#[test]
fn toy_points_lie_where_stated() {
    let n = 2000;
    let moons = point_set("moons", 1, n);
    let eight = point_set("gaussians8", 1, n);
    let board = point_set("checkerboard", 1, n);
    let roll = point_set("swissroll", 1, n);
    for (name, set) in [
        ("moons", &moons),
        ("gaussians8", &eight),
        ("checkerboard", &board),
        ("swissroll", &roll),
    ] {
        assert_eq!(set.len(), 2 * n);
        assert!(
            set.iter().all(|v| v.abs() < 2.8),
            "{name} stays near [-2, 2]^2"
        );
    }
    let mut modes = [0usize; 8];
    for p in eight.chunks(2) {
        let (x, y) = (p[0] as f64, p[1] as f64);
        let k = ((y.atan2(x) / (std::f64::consts::PI / 4.0)).round() as i64).rem_euclid(8);
        let (mx, my) = (
            1.5 * (k as f64 * 0.25 * std::f64::consts::PI).cos(),
            1.5 * (k as f64 * 0.25 * std::f64::consts::PI).sin(),
        );
        assert!(
            ((x - mx).powi(2) + (y - my).powi(2)).sqrt() < 0.6,
            "({x}, {y})"
        );
        modes[k as usize] += 1;
    }
    assert!(
        modes.iter().all(|&m| m > n / 8 - 80 && m < n / 8 + 80),
        "{modes:?}"
    );
    for p in board.chunks(2) {
        let (x, y) = (p[0], p[1]);
        assert!(x > -2.0 && x < 2.0 && y > -2.0 && y < 2.0);
        assert_eq!(
            (x.floor() + y.floor()).rem_euclid(2.0),
            0.0,
            "({x}, {y}) on a dark square"
        );
    }
    let upper = moons.chunks(2).step_by(2);
    let mean_y: f32 = upper.map(|p| p[1]).sum::<f32>() / (n / 2) as f32;
    assert!(
        mean_y > 0.2,
        "the even points form the upper moon: mean y {mean_y}"
    );
    for p in roll.chunks(2) {
        let r = (p[0] * p[0] + p[1] * p[1]).sqrt();
        assert!(r > 0.45 && r < 2.25, "radius {r}");
    }
    assert_eq!(points::Shape::parse("moons"), Some(points::Shape::Moons));
}

#[test]
fn point_measures_known_answers() {
    // 1-D: nearest-neighbour distances of {0, 1, 3} are 1, 1, 2, so r = 3 · 1.
    let training = [0.0f32, 1.0, 3.0];
    assert_eq!(measures::support_radius(1, &training), 3.0);
    let s = measures::point_scores(1, &[10.0, 5.5, -1.0], &training);
    assert_eq!(s.radius, 3.0);
    assert!((s.inside - 2.0 / 3.0).abs() < 1e-12);
    assert!((s.mean_nearest - (7.0 + 2.5 + 1.0) / 3.0).abs() < 1e-12);
    // Energy: 2 · 1 − 0 − 0 between single points one apart.
    assert_eq!(measures::energy_distance(1, &[0.0], &[1.0]), 2.0);
    // {0, 2} against {1}: 2 · 1 − (0 + 2 + 2 + 0)/4 − 0 = 1.
    assert_eq!(measures::energy_distance(1, &[0.0, 2.0], &[1.0]), 1.0);
    assert!(measures::support_radius(2, &[1.0, 1.0]).is_nan());
    assert!(measures::point_scores(2, &[], &training[..2])
        .inside
        .is_nan());
}

#[test]
fn point_measures_separate_the_data_from_other_points() {
    let training = point_set("gaussians8", 1, 500);
    let fresh = point_set("gaussians8", 2, 500);
    let same = measures::point_scores(2, &training, &training);
    assert_eq!(same.energy, 0.0);
    assert_eq!(same.inside, 1.0);
    assert_eq!(same.mean_nearest, 0.0);
    let good = measures::point_scores(2, &fresh, &training);
    assert!(good.inside > 0.95, "a fresh draw is inside: {good:?}");
    assert!(good.energy < 0.05, "{good:?}");
    let mut last = good.energy;
    for shift in [0.2f32, 0.5, 1.0, 3.0, 30.0] {
        let moved: Vec<f32> = fresh.iter().map(|v| v + shift).collect();
        let s = measures::point_scores(2, &moved, &training);
        assert!(
            s.energy > last,
            "energy grows with the shift {shift}: {s:?}"
        );
        last = s.energy;
        if shift >= 0.5 {
            assert!(s.inside < 0.5, "shift {shift}: {s:?}");
        }
    }
    // Far apart, it tends to 2δ − E‖X − X′‖ − E‖Y − Y′‖ (δ = 30√2 here), plus about the
    // variance across the shift over δ (0.05 here).
    let within = |set: &[f32]| {
        let mut sum = 0.0;
        for p in set.chunks(2) {
            for q in set.chunks(2) {
                sum += ((p[0] as f64 - q[0] as f64).powi(2) + (p[1] as f64 - q[1] as f64).powi(2))
                    .sqrt();
            }
        }
        sum / (set.len() / 2).pow(2) as f64
    };
    let far = 2.0 * 30.0 * 2f64.sqrt() - within(&fresh) - within(&training);
    assert!((last - far).abs() < 0.1, "{last} against {far}");
    // Blurred samples: uniform on the square are mostly off the eight modes.
    let blur = point_set("checkerboard", 3, 500);
    assert!(measures::point_scores(2, &blur, &training).inside < 0.5);
}

#[test]
fn sequence_measures_known_answers() {
    let enc = |s: &str| words::encode(s).unwrap();
    let training = vec![enc("the cat"), enc("of and")];
    let samples = vec![enc("the cat"), enc("thx cat"), enc("       ")];
    let s = measures::sequence_scores(&samples, &training, &words::WORDS);
    assert!((s.memorised - 1.0 / 3.0).abs() < 1e-12);
    // Words: the, cat, thx, cat: only "the" is in the vocabulary.
    assert_eq!(s.words, 4);
    assert!((s.spelling - 0.25).abs() < 1e-12);
    assert_eq!(measures::bigram_tv(27, &training, &training), 0.0);
    assert_eq!(measures::bigram_tv(27, &[enc("aaaa")], &[enc("bbb")]), 1.0);
    // "ab" against "ab" and "ac": p = {ab: 1}, q = {ab: 1/2, ac: 1/2}: TV = 1/2.
    assert_eq!(
        measures::bigram_tv(27, &[enc("ab")], &[enc("ab"), enc("ac")]),
        0.5
    );
    assert!(measures::bigram_tv(27, &[enc("a")], &training).is_nan());
    assert_eq!(
        measures::spelling_accuracy(&[enc("   ")], &words::WORDS),
        (0.0, 0)
    );

    let Dataset::Sequences { seqs: data_a, .. } = data::generate("words", 1).unwrap() else {
        panic!()
    };
    let Dataset::Sequences { seqs: data_b, .. } = data::generate("words", 2).unwrap() else {
        panic!()
    };
    let fresh = measures::sequence_scores(&data_b, &data_a, &words::WORDS);
    assert_eq!(fresh.spelling, 1.0);
    assert!(fresh.bigram_tv < 0.25, "{fresh:?}");
    let noise: Vec<Vec<u32>> = data_b
        .iter()
        .map(|s| s.iter().map(|&c| (c * 7 + 3) % 27).collect())
        .collect();
    let scrambled = measures::sequence_scores(&noise, &data_a, &words::WORDS);
    assert!(scrambled.spelling < 0.2, "{scrambled:?}");
    assert!(scrambled.bigram_tv > 0.7, "{scrambled:?}");
    assert_eq!(scrambled.memorised, 0.0);
}

#[test]
fn as_pairs_splits_rows() {
    assert_eq!(
        data::as_pairs(&[1.0, 2.0, 3.0, 4.0]),
        vec![[1.0, 2.0], [3.0, 4.0]]
    );
}
