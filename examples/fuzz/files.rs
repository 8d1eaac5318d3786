//! The file areas: `.npy` files (valid headers with hostile shapes and dtypes, fortran order,
//! truncated data, huge declared sizes, NaN and infinities, random bytes, mutated valid files)
//! and graph files (edge lists, graph6, `.npy` adjacency stacks, and the word corpus's text form)
//! with extreme node indices and counts, malformed lines and mutations of valid files.

use rand::rngs::StdRng;
use rand::Rng;

fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

const DTYPES: &[&str] = &[
    "<f4", "<f8", "<i8", "<i4", "|u1", "|b1", "<u4", "<u8", "|i1", "<i2", "<u2", ">f4", ">f8",
    ">i8", "<f2", "<c8", "|O", "<U3", "|S4", "<M8[s]", "f4", "float32", "", "<f16", "<b1", "|f4",
    "<i16", "<u1",
];

/// Dimensions: small, zero, and past u32, i64 and usize.
const DIMS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "4",
    "7",
    "16",
    "65536",
    "65537",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "1e3",
    "0x10",
    "3L",
    "True",
    "None",
    "",
];

fn item_size(d: &str) -> usize {
    match d {
        "<f8" | "<i8" | "<u8" | ">f8" | ">i8" | "<c8" | "<M8[s]" => 8,
        "<f4" | "<i4" | "<u4" | ">f4" | "f4" | "float32" | "|f4" => 4,
        "<i2" | "<u2" | "<f2" => 2,
        "<f16" | "<i16" => 16,
        _ => 1,
    }
}

fn value_bytes(rng: &mut StdRng, dtype: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * item_size(dtype));
    for _ in 0..n {
        match dtype {
            "<f4" | "f4" | "float32" | "|f4" | ">f4" => {
                let v: f32 = match rng.random_range(0..10) {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    3 => -0.0,
                    4 => f32::MAX,
                    5 => f32::MIN_POSITIVE / 4.0,
                    _ => rng.random_range(-3.0..3.0),
                };
                if dtype.starts_with('>') {
                    out.extend(v.to_be_bytes());
                } else {
                    out.extend(v.to_le_bytes());
                }
            }
            "<f8" | ">f8" => {
                let v: f64 = match rng.random_range(0..10) {
                    0 => f64::NAN,
                    1 => f64::INFINITY,
                    2 => f64::NEG_INFINITY,
                    3 => -0.0,
                    4 => f64::MAX,
                    5 => 1e300,
                    _ => rng.random_range(-3.0..3.0),
                };
                if dtype.starts_with('>') {
                    out.extend(v.to_be_bytes());
                } else {
                    out.extend(v.to_le_bytes());
                }
            }
            "<i8" | "<u8" | ">i8" => {
                let v: i64 = match rng.random_range(0..6) {
                    0 => i64::MIN,
                    1 => i64::MAX,
                    2 => -1,
                    _ => rng.random_range(0..5),
                };
                out.extend(v.to_le_bytes());
            }
            "<i4" | "<u4" => {
                let v: i32 = match rng.random_range(0..6) {
                    0 => i32::MIN,
                    1 => i32::MAX,
                    2 => -1,
                    _ => rng.random_range(0..5),
                };
                out.extend(v.to_le_bytes());
            }
            _ => {
                let k = item_size(dtype);
                for _ in 0..k {
                    out.push(if rng.random_bool(0.7) {
                        rng.random_range(0..3)
                    } else {
                        rng.random()
                    });
                }
            }
        }
    }
    out
}

/// An `.npy` file from a header dictionary and data.
fn npy_file(rng: &mut StdRng, dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    let version = match rng.random_range(0..20) {
        0 => (2u8, 0u8),
        1 => (3, 0),
        2 => (9, 9),
        3 => (0, 0),
        _ => (1, 0),
    };
    out.push(version.0);
    out.push(version.1);
    let mut header = dict.as_bytes().to_vec();
    let prefix = if version.0 == 1 { 10 } else { 12 };
    let total = prefix + header.len() + 1;
    let pad = (64 - total % 64) % 64;
    if rng.random_bool(0.9) {
        header.extend(std::iter::repeat_n(b' ', pad));
        header.push(b'\n');
    }
    let mut len = header.len() as u64;
    if rng.random_bool(0.05) {
        len = *pick(
            rng,
            &[
                0u64,
                1,
                65535,
                u32::MAX as u64,
                len + 1,
                len.saturating_sub(1),
            ],
        );
    }
    if version.0 == 1 || version.0 == 0 || rng.random_bool(0.1) {
        out.extend((len as u16).to_le_bytes());
    } else {
        out.extend((len as u32).to_le_bytes());
    }
    out.extend(header);
    out.extend(data);
    out
}

fn shape_text(rng: &mut StdRng) -> (String, Option<usize>) {
    let ndim = match rng.random_range(0..20) {
        0 => 0,
        1 => rng.random_range(4..40),
        2..=9 => 1,
        10..=15 => 2,
        _ => 3,
    };
    let mut dims = Vec::new();
    let mut count: Option<usize> = Some(1);
    for _ in 0..ndim {
        let d = if rng.random_bool(0.8) {
            format!("{}", rng.random_range(0..6))
        } else {
            pick(rng, DIMS).to_string()
        };
        count = match (count, d.parse::<usize>()) {
            (Some(c), Ok(v)) => c.checked_mul(v),
            _ => None,
        };
        dims.push(d);
    }
    let text = match ndim {
        0 => "()".to_string(),
        1 if rng.random_bool(0.9) => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    (text, count)
}

/// A valid `.npy` file of a numeric dtype and a small shape.
pub fn valid_npy(rng: &mut StdRng, shape: &[usize], dtype: &str) -> Vec<u8> {
    let n: usize = shape.iter().product();
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let dict = format!("{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape_text}, }}");
    let data = value_bytes(rng, dtype, n);
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    let mut header = dict.into_bytes();
    let pad = (64 - (10 + header.len() + 1) % 64) % 64;
    header.extend(std::iter::repeat_n(b' ', pad));
    header.push(b'\n');
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header);
    out.extend(data);
    out
}

/// Flips, inserts, deletes or truncates bytes.
pub fn mutate_bytes(rng: &mut StdRng, bytes: &mut Vec<u8>) {
    for _ in 0..rng.random_range(1..6) {
        if bytes.is_empty() {
            bytes.push(rng.random());
            continue;
        }
        let i = rng.random_range(0..bytes.len());
        match rng.random_range(0..6) {
            0 => bytes[i] ^= 1 << rng.random_range(0..8),
            1 => bytes[i] = rng.random(),
            2 => bytes.truncate(i),
            3 => {
                let j = (i + rng.random_range(1..16)).min(bytes.len());
                bytes.drain(i..j);
            }
            4 => {
                let b = *pick(rng, b"0123456789,()'{}:- \n\x00\xff9");
                bytes.insert(i, b);
            }
            _ => {
                let j = (i + rng.random_range(1..32)).min(bytes.len());
                let chunk = bytes[i..j].to_vec();
                let at = rng.random_range(0..bytes.len());
                bytes.splice(at..at, chunk);
            }
        }
    }
}

/// One `.npy` case's bytes.
pub fn npy(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..100) {
        // A well-formed header with a hostile shape, dtype or order and data of some length.
        0..=49 => {
            let dtype = if rng.random_bool(0.7) {
                *pick(rng, &["<f4", "<f8", "<i8", "<i4", "|u1", "|b1"])
            } else {
                *pick(rng, DTYPES)
            };
            let (shape, count) = shape_text(rng);
            let order = *pick(rng, &["False", "False", "False", "True", "0", "'no'"]);
            let dict = match rng.random_range(0..12) {
                0 => format!("{{'descr': '{dtype}', 'shape': {shape}}}"),
                1 => format!("{{'shape': {shape}, 'fortran_order': {order}, 'descr': '{dtype}', 'extra': 1}}"),
                2 => format!("{{'descr': {dtype}, 'fortran_order': {order}, 'shape': {shape}, }}"),
                3 => format!("{{\"descr\": \"{dtype}\", \"fortran_order\": {order}, \"shape\": {shape}}}"),
                4 => format!("{{'descr': '{dtype}', 'fortran_order': {order}, 'shape': {shape}, 'shape': (2,)}}"),
                5 => format!("{{'descr': [('a', '{dtype}')], 'fortran_order': {order}, 'shape': {shape}}}"),
                _ => format!("{{'descr': '{dtype}', 'fortran_order': {order}, 'shape': {shape}, }}"),
            };
            let n = match (count, rng.random_range(0..6)) {
                (Some(c), 0..=3) if c <= 4096 => c,
                (Some(c), 4) if c <= 4096 => c.saturating_sub(1),
                _ => rng.random_range(0..64),
            };
            let mut data = value_bytes(rng, dtype, n);
            if rng.random_bool(0.1) {
                data.truncate(rng.random_range(0..=data.len()));
            }
            if rng.random_bool(0.05) {
                data.extend([0u8; 7]);
            }
            npy_file(rng, &dict, &data)
        }
        // A valid file, mutated.
        50..=79 => {
            let ndim = rng.random_range(0..4);
            let shape: Vec<usize> = (0..ndim).map(|_| rng.random_range(0..5)).collect();
            let dtype = *pick(rng, &["<f4", "<f8", "<i8", "<i4", "|u1", "|b1"]);
            let mut b = valid_npy(rng, &shape, dtype);
            mutate_bytes(rng, &mut b);
            b
        }
        // A valid file.
        80..=89 => {
            let ndim = rng.random_range(0..4);
            let shape: Vec<usize> = (0..ndim).map(|_| rng.random_range(0..6)).collect();
            let dtype = *pick(rng, &["<f4", "<f8", "<i8", "<i4", "|u1", "|b1"]);
            valid_npy(rng, &shape, dtype)
        }
        // Random bytes, some after the magic.
        _ => {
            let n = rng.random_range(0..300);
            let mut b: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            if rng.random_bool(0.5) {
                let mut m = b"\x93NUMPY\x01\x00".to_vec();
                m.append(&mut b);
                b = m;
            }
            b
        }
    }
}

/// Node indices and counts, ordinary and past every integer width.
const INDICES: &[&str] = &[
    "0",
    "1",
    "2",
    "65535",
    "65536",
    "65537",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "-0",
    "1e3",
    "0x10",
    "1.5",
    "+3",
    "",
    "NaN",
    "inf",
    "99999999999999999999999999",
];

/// A graph file's kind: its extension in the CLI and its reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphKind {
    EdgeList,
    Graph6,
    Npy,
    Words,
}

impl GraphKind {
    pub fn extension(self) -> &'static str {
        match self {
            GraphKind::EdgeList => "txt",
            GraphKind::Graph6 => "g6",
            GraphKind::Npy => "npy",
            GraphKind::Words => "txt",
        }
    }
}

/// A small random graph.
pub fn random_graph(rng: &mut StdRng, max_nodes: usize) -> diffc::graph::Graph {
    let n = rng.random_range(0..=max_nodes);
    let p: f64 = rng.random_range(0.0..1.0);
    let mut edges = Vec::new();
    for u in 0..n {
        for v in u + 1..n {
            if rng.random_bool(p) {
                edges.push((u, v));
            }
        }
    }
    diffc::graph::Graph::from_edges(n, edges)
}

fn edge_list(rng: &mut StdRng) -> Vec<u8> {
    if rng.random_bool(0.4) {
        let g = random_graph(rng, 20);
        let mut b = diffc::graph::io::write_edge_list(&g).into_bytes();
        if rng.random_bool(0.5) {
            mutate_bytes(rng, &mut b);
        }
        return b;
    }
    let mut s = String::new();
    let lines = rng.random_range(0..30);
    for i in 0..lines {
        let idx = |rng: &mut StdRng| {
            if rng.random_bool(0.8) {
                rng.random_range(0..30).to_string()
            } else {
                pick(rng, INDICES).to_string()
            }
        };
        let line = match rng.random_range(0..14) {
            0 if i == 0 => format!("nodes {}", idx(rng)),
            1 => format!("# comment {}", idx(rng)),
            2 => String::new(),
            3 => format!("{} {} {{'weight': 1}}", idx(rng), idx(rng)),
            4 => format!("{} {} {}", idx(rng), idx(rng), idx(rng)),
            5 => idx(rng),
            6 => format!("{}\t{}\r", idx(rng), idx(rng)),
            7 => format!("nodes {}", pick(rng, INDICES)),
            8 => format!("{} {}", pick(rng, INDICES), pick(rng, INDICES)),
            9 => "\u{feff}0 1".to_string(),
            _ => format!("{} {}", idx(rng), idx(rng)),
        };
        s.push_str(&line);
        s.push('\n');
    }
    let mut b = s.into_bytes();
    if rng.random_bool(0.05) {
        b.push(0xff);
    }
    b
}

/// graph6's size prefix for `n` nodes (n < 2^36).
fn g6_size(n: u64) -> Vec<u8> {
    if n < 63 {
        vec![n as u8 + 63]
    } else if n < 258048 {
        vec![
            126,
            ((n >> 12) & 63) as u8 + 63,
            ((n >> 6) & 63) as u8 + 63,
            (n & 63) as u8 + 63,
        ]
    } else {
        let mut v = vec![126, 126];
        for k in (0..6).rev() {
            v.push(((n >> (6 * k)) & 63) as u8 + 63);
        }
        v
    }
}

fn graph6(rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::new();
    if rng.random_bool(0.2) {
        out.extend(b">>graph6<<");
    }
    let lines = rng.random_range(0..8);
    for _ in 0..lines {
        match rng.random_range(0..6) {
            0 | 1 => {
                let g = random_graph(rng, 70);
                out.extend(diffc::graph::io::write_graph6(&g).trim_end().as_bytes());
            }
            2 => {
                let n = *pick(
                    rng,
                    &[
                        0u64,
                        1,
                        62,
                        63,
                        64,
                        65535,
                        65536,
                        65537,
                        258047,
                        258048,
                        (1 << 36) - 1,
                    ],
                );
                out.extend(g6_size(n));
                let k = rng.random_range(0..40);
                for _ in 0..k {
                    out.push(rng.random_range(63..127));
                }
            }
            3 => {
                let k = rng.random_range(0..20);
                for _ in 0..k {
                    out.push(rng.random());
                }
            }
            4 => {
                out.extend(b">>graph6<<");
                let g = random_graph(rng, 10);
                out.extend(diffc::graph::io::write_graph6(&g).trim_end().as_bytes());
            }
            _ => {
                let g = random_graph(rng, 30);
                let mut b = diffc::graph::io::write_graph6(&g)
                    .trim_end()
                    .as_bytes()
                    .to_vec();
                mutate_bytes(rng, &mut b);
                out.extend(b);
            }
        }
        out.extend(*pick(rng, &[&b"\n"[..], b"\r\n", b"\n\n", b""]));
    }
    out
}

fn adjacency_npy(rng: &mut StdRng) -> Vec<u8> {
    let n = rng.random_range(0..12);
    let b = rng.random_range(0..4);
    let shape: Vec<usize> = match rng.random_range(0..4) {
        0 => vec![n, n],
        1 => vec![b, n, n],
        2 => vec![n, n + 1],
        _ => vec![b, n, n, 1],
    };
    let dtype = *pick(rng, &["<f4", "<f8", "<i8", "<i4", "|u1", "|b1"]);
    let mut bytes = valid_npy(rng, &shape, dtype);
    if rng.random_bool(0.3) {
        mutate_bytes(rng, &mut bytes);
    }
    bytes
}

fn words(rng: &mut StdRng) -> Vec<u8> {
    let mut s = String::new();
    let len = rng.random_range(0..12);
    for _ in 0..rng.random_range(0..20) {
        let l = if rng.random_bool(0.9) {
            len
        } else {
            rng.random_range(0..20)
        };
        for _ in 0..l {
            let c = *pick(
                rng,
                &[
                    'a', 'b', 'z', ' ', '_', 'A', 'é', '\t', '0', '\u{0}', 'q', 'e',
                ],
            );
            s.push(c);
        }
        s.push('\n');
    }
    s.into_bytes()
}

/// One graph case: the kind of file and its bytes.
pub fn graph(rng: &mut StdRng) -> (GraphKind, Vec<u8>) {
    match rng.random_range(0..10) {
        0..=3 => (GraphKind::EdgeList, edge_list(rng)),
        4..=6 => (GraphKind::Graph6, graph6(rng)),
        7 | 8 => (GraphKind::Npy, adjacency_npy(rng)),
        _ => (GraphKind::Words, words(rng)),
    }
}

/// Reads an `.npy` case through the library as the CLI does: the reader, then the conversions to
/// a field's elements and to graphs. `Ok` when the reader accepted it.
pub fn run_npy(bytes: &[u8]) -> Result<(), String> {
    let a = diffc::npy::read(bytes).map_err(|e| e.to_string())?;
    let _ = a.data.to_f64_vec();
    let _ = a.data.to_class_indices();
    let _ = a.data.to_bools();
    use diffc::typed::Elem;
    for elem in [
        Elem::Real,
        Elem::Bool,
        Elem::Cat(4),
        Elem::Vec(3),
        Elem::Mat(2),
    ] {
        let _ = diffc::interp::tensor_from_npy(&a, elem, "x");
    }
    let _ = diffc::graph::io::from_npy("x.npy", &a);
    Ok(())
}

/// Reads a graph case through the library's reader for its kind and, for small sets, computes
/// every statistic `diffc metrics` uses. `Ok` when the reader accepted it.
pub fn run_graph(kind: GraphKind, bytes: &[u8]) -> Result<(), String> {
    use diffc::graph::{io, iso, metrics, planar};
    let graphs = match kind {
        GraphKind::EdgeList => {
            let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
            vec![io::parse_edge_list("g.txt", text).map_err(|e| e.to_string())?]
        }
        GraphKind::Graph6 => io::parse_graph6("g.g6", bytes).map_err(|e| e.to_string())?,
        GraphKind::Npy => {
            let a = diffc::npy::read(bytes).map_err(|e| e.to_string())?;
            io::from_npy("g.npy", &a).map_err(|e| e.to_string())?
        }
        GraphKind::Words => {
            let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
            diffc::data::words::from_lines(text)?;
            return Ok(());
        }
    };
    if graphs.len() <= 16 && graphs.iter().all(|g| g.nodes() <= 80) {
        for g in &graphs {
            let _ = metrics::degree_histogram(g);
            let _ = metrics::clustering_histogram(g);
            let _ = metrics::orbit_statistic(g);
            let _ = metrics::spectral_pmf(g);
            let _ = planar::is_planar_and_connected(g);
            let _ = iso::wl_hash(g);
            let _ = g.is_connected();
        }
        if graphs.len() >= 2 {
            let _ = iso::is_isomorphic(&graphs[0], &graphs[1]);
        }
    }
    Ok(())
}
