//! The PNG pictures of `diffc::picture`: they decode with the expected sizes, drawn shapes
//! colour their pixels and leave the background alone, layouts show structure, and the same
//! call gives the same bytes.

use diffc::data::{self, graphs, Dataset};
use diffc::graph::Graph;
use diffc::picture::{self, Align, Canvas};

/// Width, height and RGB bytes of a PNG.
fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).expect("PNG data");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn pixel(rgb: &[u8], width: u32, x: u32, y: u32) -> [u8; 3] {
    let i = 3 * (y * width + x) as usize;
    [rgb[i], rgb[i + 1], rgb[i + 2]]
}

/// How many pixels are exactly `colour`.
fn count(rgb: &[u8], colour: [u8; 3]) -> usize {
    rgb.chunks(3).filter(|p| *p == colour).count()
}

fn graph_set(name: &str, count: usize) -> Vec<Graph> {
    let options = data::Options {
        count: Some(count),
        size: None,
    };
    match data::generate_with(name, 1, &options).unwrap() {
        Dataset::Graphs(graphs) => graphs,
        _ => panic!("{name} is a graph set"),
    }
}

fn point_set(name: &str, seed: u64) -> Vec<[f32; 2]> {
    match data::generate(name, seed).unwrap() {
        Dataset::Points { points, .. } => data::as_pairs(&points),
        _ => panic!("{name} is a point set"),
    }
}

#[test]
fn a_line_colours_its_pixels_and_not_the_background() {
    let red = [200, 0, 0];
    let mut canvas = Canvas::new(100, 60, picture::WHITE);
    canvas.line([10.0, 30.0], [90.0, 30.0], 3.0, red);
    let (w, h, rgb) = decode(&canvas.png());
    assert_eq!((w, h), (100, 60));
    // Pixel centres at y = 29.5 and 30.5 lie within the half width 1.5: fully covered.
    for x in 15..85 {
        assert_eq!(pixel(&rgb, w, x, 29), red);
        assert_eq!(pixel(&rgb, w, x, 30), red);
    }
    // y = 31.5 is at distance 1.5: half covered, the anti-aliased edge.
    let edge = pixel(&rgb, w, 50, 31);
    assert!(edge[1] > 100 && edge[1] < 155, "{edge:?}");
    for (x, y) in [(50, 10), (50, 34), (5, 30), (95, 30)] {
        assert_eq!(pixel(&rgb, w, x, y), picture::WHITE, "({x}, {y})");
    }
    // A diagonal passes through its midpoint's pixel.
    let mut canvas = Canvas::new(50, 50, picture::WHITE);
    canvas.line([0.0, 0.0], [50.0, 50.0], 2.0, red);
    assert_eq!(canvas.pixel(25, 25), red);
    assert_eq!(canvas.pixel(40, 10), picture::WHITE);
}

#[test]
fn circles_rectangles_clip_and_text() {
    let blue = [0, 0, 200];
    let mut canvas = Canvas::new(80, 40, picture::WHITE);
    canvas.circle([20.0, 20.0], 6.0, blue, 1.0);
    assert_eq!(canvas.pixel(20, 20), blue);
    assert_eq!(canvas.pixel(20, 30), picture::WHITE);
    canvas.set_clip(40, 0, 80, 40);
    canvas.rect(30, 5, 20, 5, blue);
    assert_eq!(canvas.pixel(35, 7), picture::WHITE, "left of the clip");
    assert_eq!(canvas.pixel(45, 7), blue);
    canvas.clear_clip();
    // "1" at scale 2: its stem is glyph column 2, rows 0 to 6.
    let mut canvas = Canvas::new(40, 30, picture::WHITE);
    canvas.text(4.0, 4.0, "1", 2, picture::BLACK, Align::Left);
    assert_eq!(canvas.pixel(4 + 2 * 2, 4 + 2 * 3), picture::BLACK);
    assert_eq!(canvas.pixel(4, 4 + 2 * 3), picture::WHITE);
    assert_eq!(picture::text_width("abc", 2), (3 * 6 - 1) * 2);
    // An unknown character draws as '?'.
    let mut a = Canvas::new(20, 20, picture::WHITE);
    let mut b = Canvas::new(20, 20, picture::WHITE);
    a.text(2.0, 2.0, "§", 1, picture::BLACK, Align::Left);
    b.text(2.0, 2.0, "?", 1, picture::BLACK, Align::Left);
    assert_eq!(a.png(), b.png());
}

#[test]
fn graphs_png_has_the_stated_size_and_both_colours() {
    let generated = graph_set("community-small", 5);
    let training = graph_set("community-small", 3);
    let bytes = picture::graphs_png(&generated, &training, 4);
    let (w, h, rgb) = decode(&bytes);
    assert_eq!((w, h), (20 + 4 * 160, 20 + 2 * 30 + (2 + 1) * 160));
    assert!(count(&rgb, picture::GENERATED) > 200);
    assert!(count(&rgb, picture::TRAINING) > 100);
    // Generated graphs are drawn above the training band, training graphs below it.
    let band = 10 + 30 + 2 * 160;
    let orange_below = (band..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| pixel(&rgb, w, x, y) == picture::GENERATED)
        .count();
    assert_eq!(orange_below, 0);
    assert_eq!(bytes, picture::graphs_png(&generated, &training, 4));
    let (w, h, _) = decode(&picture::graphs_png(&[], &[], 0));
    assert_eq!((w, h), (20 + 160, 20 + 60 + 2 * 160));
    let empty_graph = Graph::from_edges(0, []);
    let single = Graph::from_edges(1, []);
    decode(&picture::graphs_png(&[empty_graph, single], &[], 2));
}

#[test]
fn layouts_show_grids_and_communities() {
    // A grid: every edge about as long as every other.
    let g = graphs::grid(6, 9);
    let at = picture::layout(&g);
    let lengths: Vec<f64> = g
        .edges()
        .map(|(u, v)| (at[u][0] - at[v][0]).hypot(at[u][1] - at[v][1]))
        .collect();
    let (min, max) = lengths
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &l| (a.min(l), b.max(l)));
    assert!(max / min < 1.5, "grid edges from {min} to {max}");
    assert!(at.iter().flatten().all(|&v| (0.0..=1.0).contains(&v)));
    assert_eq!(at, picture::layout(&g));
    // Communities: the centroids lie further apart than any community's own spread.
    for g in graph_set("community-small", 5) {
        let at = picture::layout(&g);
        let half = g.nodes() / 2;
        let centroid = |range: std::ops::Range<usize>| {
            let k = range.len() as f64;
            let s = range.fold([0.0, 0.0], |s, i| [s[0] + at[i][0], s[1] + at[i][1]]);
            [s[0] / k, s[1] / k]
        };
        let (a, b) = (centroid(0..half), centroid(half..g.nodes()));
        let apart = (a[0] - b[0]).hypot(a[1] - b[1]);
        let spread = (0..g.nodes())
            .map(|i| {
                let c = if i < half { a } else { b };
                (at[i][0] - c[0]).hypot(at[i][1] - c[1])
            })
            .fold(0.0, f64::max);
        assert!(apart > spread, "centroids {apart} apart, spread {spread}");
    }
    // Disconnected graphs and empty ones get positions too.
    let two = Graph::from_edges(4, [(0, 1), (2, 3)]);
    assert!(picture::layout(&two)
        .iter()
        .flatten()
        .all(|v| v.is_finite()));
    assert!(picture::layout(&Graph::from_edges(0, [])).is_empty());
}

#[test]
fn scatter_png_draws_both_sets() {
    let training = point_set("gaussians8", 1);
    let samples = point_set("gaussians8", 2);
    let bytes = picture::scatter_png(&samples, &training);
    let (w, h, rgb) = decode(&bytes);
    assert_eq!((w, h), picture::SCATTER_SIZE);
    // Marks are translucent: count pixels by hue, orange (red well above blue) and blue.
    let orange = rgb
        .chunks(3)
        .filter(|p| p[0] as i32 > p[2] as i32 + 60)
        .count();
    let blue = rgb
        .chunks(3)
        .filter(|p| p[2] as i32 > p[0] as i32 + 40)
        .count();
    assert!(orange > 3000, "orange marks: {orange}");
    assert!(blue > 3000, "blue marks: {blue}");
    assert_eq!(pixel(&rgb, w, 2, 2), picture::WHITE);
    assert_eq!(bytes, picture::scatter_png(&samples, &training));
    let no_training = picture::scatter_png(&samples, &[]);
    assert_ne!(no_training, bytes);
    // Non-finite points and empty sets are drawn without complaint.
    let odd = [[f32::NAN, 1.0], [0.0, f32::INFINITY], [1.0, 1.0]];
    assert_eq!(
        decode(&picture::scatter_png(&odd, &[])).0,
        picture::SCATTER_SIZE.0
    );
    decode(&picture::scatter_png(&[], &[]));
}

#[test]
fn lines_png_draws_each_series_in_its_colour() {
    let series = vec![
        (
            "solver".to_string(),
            vec![(5.0, 0.4), (10.0, 0.79), (20.0, 0.85), (100.0, 0.9)],
        ),
        (
            "original".to_string(),
            vec![(5.0, 0.2), (10.0, 0.66), (20.0, 0.8), (100.0, 0.89)],
        ),
    ];
    for (log_x, log_y) in [(false, false), (true, false), (true, true)] {
        let bytes = picture::lines_png("accuracy", "calls", "spelling", &series, log_x, log_y);
        let (w, h, rgb) = decode(&bytes);
        assert_eq!((w, h), picture::LINES_SIZE);
        assert!(count(&rgb, picture::PALETTE[0]) > 300, "first series");
        assert!(count(&rgb, picture::PALETTE[1]) > 300, "second series");
        assert_eq!(count(&rgb, picture::PALETTE[2]), 0, "no third series");
        assert_eq!(
            bytes,
            picture::lines_png("accuracy", "calls", "spelling", &series, log_x, log_y)
        );
    }
    let one = picture::lines_png("t", "x", "y", &series[..1], false, false);
    let (_, _, rgb) = decode(&one);
    assert_eq!(count(&rgb, picture::PALETTE[1]), 0);
    // Points a log axis cannot show, NaN, single points and no series at all.
    let odd = vec![
        (
            "bad".to_string(),
            vec![(0.0, 1.0), (-1.0, f64::NAN), (10.0, 0.0)],
        ),
        ("single".to_string(), vec![(3.0, 3.0)]),
        ("empty".to_string(), vec![]),
    ];
    decode(&picture::lines_png("odd", "x", "y", &odd, true, true));
    decode(&picture::lines_png("odd", "x", "y", &odd, false, false));
    decode(&picture::lines_png("", "", "", &[], true, false));
}
