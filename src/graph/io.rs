//! Readers for sets of graphs, from bytes the CLI has read.
//!
//! - Edge-list text, one graph per file: each line `u v` with 0-based node indices; blank lines
//!   and lines starting with `#` are skipped; a third field is allowed only when it starts with
//!   `{` (networkx's `write_edgelist` writes an attribute dict there).
//!   The first data line may be `nodes N`, declaring the node count (isolated nodes included);
//!   without it the count is the largest index plus one.
//! - graph6 text: one graph per line, each with an optional `>>graph6<<` header.
//! - `.npy`: an `(N, N)` adjacency matrix or a `(B, N, N)` stack; nonzero entries are edges.
//!   Trailing nodes without edges are padding and are dropped.
//!
//! A graph may have at most [`MAX_GRAPH_NODES`] nodes (a larger index, `nodes N` or graph6
//! header is refused before anything is allocated for it).
//!
//! Every error names the file and, for text, the line.

use super::Graph;
use crate::limits::MAX_GRAPH_NODES;
use std::fmt;

/// A malformed graph file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    /// The file, as the caller named it.
    pub file: String,
    /// The 1-based line, for text files.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for GraphError {}

fn error(file: &str, line: Option<usize>, message: impl Into<String>) -> GraphError {
    GraphError {
        file: file.to_string(),
        line,
        message: message.into(),
    }
}

fn parse_index(file: &str, line: usize, token: &str) -> Result<usize, GraphError> {
    let i = token.parse::<u64>().map_err(|_| {
        error(
            file,
            Some(line),
            format!("`{token}` is not a node index (a non-negative integer)"),
        )
    })?;
    match usize::try_from(i) {
        Ok(i) if i < MAX_GRAPH_NODES => Ok(i),
        _ => Err(too_many(file, Some(line), format!("node index {i}"))),
    }
}

/// A graph past [`MAX_GRAPH_NODES`], refused before anything is allocated for it.
fn too_many(file: &str, line: Option<usize>, what: String) -> GraphError {
    error(
        file,
        line,
        format!("{what} is past the limit of {MAX_GRAPH_NODES} nodes a graph may have"),
    )
}

/// One graph from an edge-list file.
pub fn parse_edge_list(file: &str, text: &str) -> Result<Graph, GraphError> {
    let mut declared: Option<usize> = None;
    let mut edges = Vec::new();
    let mut max_index: Option<usize> = None;
    let mut any_data = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let tokens: Vec<&str> = content.split_whitespace().collect();
        if tokens[0] == "nodes" {
            if any_data {
                return Err(error(
                    file,
                    Some(line),
                    "`nodes N` must be the first line that is not blank or a comment",
                ));
            }
            if tokens.len() != 2 {
                return Err(error(file, Some(line), "expected `nodes N`"));
            }
            let n = tokens[1].parse::<u64>().map_err(|_| {
                error(
                    file,
                    Some(line),
                    format!("`{}` is not a node count", tokens[1]),
                )
            })?;
            if n > MAX_GRAPH_NODES as u64 {
                return Err(too_many(file, Some(line), format!("a count of {n} nodes")));
            }
            let n = n as usize;
            declared = Some(n);
            any_data = true;
            continue;
        }
        any_data = true;
        if tokens.len() < 2 || (tokens.len() > 2 && !tokens[2].starts_with('{')) {
            return Err(error(
                file,
                Some(line),
                format!("expected an edge `u v`, found `{content}`"),
            ));
        }
        let u = parse_index(file, line, tokens[0])?;
        let v = parse_index(file, line, tokens[1])?;
        if u == v {
            return Err(error(
                file,
                Some(line),
                format!("self-loop on node {u}: graphs must be simple"),
            ));
        }
        if let Some(n) = declared {
            let past = u.max(v);
            if past >= n {
                return Err(error(
                    file,
                    Some(line),
                    format!("node index {past} is past the declared count of {n} nodes"),
                ));
            }
        }
        max_index = Some(max_index.unwrap_or(0).max(u).max(v));
        edges.push((u, v));
    }
    if !any_data {
        return Err(error(
            file,
            Some(1),
            "the file is empty: expected `nodes N` or edges `u v`",
        ));
    }
    let n = declared.unwrap_or_else(|| max_index.map_or(0, |m| m + 1));
    Ok(Graph::from_edges(n, edges))
}

/// The graphs of a graph6 file, one per line.
pub fn parse_graph6(file: &str, text: &[u8]) -> Result<Vec<Graph>, GraphError> {
    let mut graphs = Vec::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let bytes = raw.strip_suffix(b"\r").unwrap_or(raw);
        let bytes = bytes.strip_prefix(b">>graph6<<").unwrap_or(bytes);
        if bytes.is_empty() {
            continue;
        }
        graphs.push(graph6_line(file, line, bytes)?);
    }
    if graphs.is_empty() {
        return Err(error(
            file,
            Some(1),
            "the file is empty: expected graph6 lines",
        ));
    }
    Ok(graphs)
}

fn graph6_line(file: &str, line: usize, bytes: &[u8]) -> Result<Graph, GraphError> {
    if let Some(pos) = bytes.iter().position(|&b| !(63..=126).contains(&b)) {
        return Err(error(
            file,
            Some(line),
            format!(
                "byte {} (0x{:02x}) is not graph6 (bytes 63 to 126)",
                pos + 1,
                bytes[pos]
            ),
        ));
    }
    let v = |b: u8| (b - 63) as usize;
    let (n, rest) = if bytes[0] != 126 {
        (v(bytes[0]), &bytes[1..])
    } else if bytes.len() >= 4 && bytes[1] != 126 {
        (
            v(bytes[1]) << 12 | v(bytes[2]) << 6 | v(bytes[3]),
            &bytes[4..],
        )
    } else if bytes.len() >= 8 {
        let mut n = 0;
        for &b in &bytes[2..8] {
            n = n << 6 | v(b);
        }
        (n, &bytes[8..])
    } else {
        return Err(error(file, Some(line), "the node count is cut short"));
    };
    if n > MAX_GRAPH_NODES {
        return Err(too_many(
            file,
            Some(line),
            format!("a graph6 graph on {n} nodes"),
        ));
    }
    let pairs = n * n.saturating_sub(1) / 2;
    let need = pairs.div_ceil(6);
    if rest.len() != need {
        return Err(error(
            file,
            Some(line),
            format!(
                "a graph on {n} nodes needs {need} bytes of edges, found {}",
                rest.len()
            ),
        ));
    }
    let mut edges = Vec::new();
    let mut k = 0;
    for j in 1..n {
        for i in 0..j {
            if v(rest[k / 6]) >> (5 - k % 6) & 1 == 1 {
                edges.push((i, j));
            }
            k += 1;
        }
    }
    Ok(Graph::from_edges(n, edges))
}

/// The graphs of an `.npy` adjacency matrix or stack of them.
pub fn from_npy(file: &str, array: &crate::npy::Array) -> Result<Vec<Graph>, GraphError> {
    let (count, n) = match array.shape[..] {
        [n, m] if n == m => (1, n),
        [b, n, m] if n == m => (b, n),
        _ => {
            return Err(error(
                file,
                None,
                format!(
                    "expected an (N, N) matrix or a (B, N, N) stack, found shape {:?}",
                    array.shape
                ),
            ))
        }
    };
    if count == 0 {
        return Err(error(file, None, "the stack holds no graphs"));
    }
    // A stack of 0 × 0 matrices holds no data, so its count is bounded by nothing the file
    // holds: (2^32, 0, 0) would be 2^32 empty graphs.
    if n == 0 && array.shape.len() == 3 {
        return Err(error(
            file,
            None,
            format!("a stack of {count} matrices of 0 × 0: its graphs have no nodes"),
        ));
    }
    if n > MAX_GRAPH_NODES {
        return Err(too_many(
            file,
            None,
            format!("an adjacency matrix of {n} nodes"),
        ));
    }
    let values = array.data.to_f64_vec();
    let mut graphs = Vec::with_capacity(count);
    for b in 0..count {
        let m = &values[b * n * n..(b + 1) * n * n];
        for i in 0..n {
            if m[i * n + i] != 0.0 {
                return Err(error(
                    file,
                    None,
                    format!("graph {b}: self-loop on node {i}: graphs must be simple"),
                ));
            }
            for j in i + 1..n {
                if (m[i * n + j] != 0.0) != (m[j * n + i] != 0.0) {
                    return Err(error(
                        file,
                        None,
                        format!("graph {b}: the matrix is not symmetric at ({i}, {j})"),
                    ));
                }
            }
        }
        let used = (0..n)
            .rev()
            .find(|&i| m[i * n..(i + 1) * n].iter().any(|&x| x != 0.0))
            .map_or(0, |i| i + 1);
        graphs.push(Graph::from_dense(used, |i, j| m[i * n + j] != 0.0));
    }
    Ok(graphs)
}

/// Edge-list text of a graph, readable by [`parse_edge_list`].
pub fn write_edge_list(g: &Graph) -> String {
    let mut out = format!("nodes {}\n", g.nodes());
    for (u, v) in g.edges() {
        out.push_str(&format!("{u} {v}\n"));
    }
    out
}

/// The graph6 line of a graph (without the newline).
pub fn write_graph6(g: &Graph) -> String {
    let n = g.nodes();
    let mut out = Vec::new();
    if n < 63 {
        out.push(n as u8 + 63);
    } else if n < 258_048 {
        out.push(126);
        for shift in [12, 6, 0] {
            out.push(((n >> shift) & 63) as u8 + 63);
        }
    } else {
        out.extend([126, 126]);
        for shift in [30, 24, 18, 12, 6, 0] {
            out.push(((n >> shift) & 63) as u8 + 63);
        }
    }
    let mut acc = 0u8;
    let mut k = 0;
    for j in 1..n {
        for i in 0..j {
            acc = acc << 1 | g.has_edge(i, j) as u8;
            k += 1;
            if k % 6 == 0 {
                out.push(acc + 63);
                acc = 0;
            }
        }
    }
    if k % 6 != 0 {
        out.push((acc << (6 - k % 6)) + 63);
    }
    String::from_utf8(out).expect("graph6 is ASCII")
}
