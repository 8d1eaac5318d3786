//! The planarity test.
//!
//! A graph is planar when each of its biconnected components is.
//! A component is tested by the path-addition algorithm of Demoucron, Malgrange and Pertuiset:
//! embed a cycle, then repeatedly take a fragment (a component of the rest, with its attachment
//! edges, or a single edge between embedded nodes), find the faces that hold all of its
//! attachments, and embed a path of it through one such face, choosing a fragment with only one
//! admissible face first; a fragment with none proves the component non-planar.
//! Components with at most 3n − 6 edges only reach the algorithm, and those with fewer than
//! nine edges are planar outright (K₅ and K₃,₃ have ten and nine).

use super::Graph;
use std::collections::HashSet;

/// Whether the graph is planar.
pub fn is_planar(g: &Graph) -> bool {
    let n = g.nodes();
    if n >= 3 && g.edge_count() > 3 * n - 6 {
        return false;
    }
    biconnected_components(g)
        .iter()
        .all(|edges| component_is_planar(edges))
}

/// Whether the graph is planar and connected: the validity of planar-graph datasets.
pub fn is_planar_and_connected(g: &Graph) -> bool {
    g.is_connected() && is_planar(g)
}

/// The edge sets of the biconnected components (Tarjan's algorithm, iteratively).
fn biconnected_components(g: &Graph) -> Vec<Vec<(usize, usize)>> {
    let n = g.nodes();
    let mut disc = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut time = 0;
    let mut edge_stack: Vec<(usize, usize)> = Vec::new();
    let mut components = Vec::new();
    // Frames: (node, parent, index of the next neighbour to look at).
    let mut frames: Vec<(usize, usize, usize)> = Vec::new();
    for root in 0..n {
        if disc[root] != usize::MAX {
            continue;
        }
        disc[root] = time;
        low[root] = time;
        time += 1;
        frames.push((root, usize::MAX, 0));
        while let Some(&mut (v, parent, ref mut next)) = frames.last_mut() {
            if let Some(&w) = g.neighbours(v).get(*next) {
                *next += 1;
                let w = w as usize;
                if disc[w] == usize::MAX {
                    edge_stack.push((v, w));
                    disc[w] = time;
                    low[w] = time;
                    time += 1;
                    frames.push((w, v, 0));
                } else if w != parent && disc[w] < disc[v] {
                    edge_stack.push((v, w));
                    low[v] = low[v].min(disc[w]);
                }
            } else {
                frames.pop();
                if let Some(&(u, _, _)) = frames.last() {
                    low[u] = low[u].min(low[v]);
                    if low[v] >= disc[u] {
                        let mut component = Vec::new();
                        while let Some(e) = edge_stack.pop() {
                            component.push(e);
                            if e == (u, v) {
                                break;
                            }
                        }
                        components.push(component);
                    }
                }
            }
        }
    }
    components
}

fn component_is_planar(edges: &[(usize, usize)]) -> bool {
    if edges.len() < 9 {
        return true;
    }
    // Renumber the component's nodes 0..k.
    let mut index = std::collections::HashMap::new();
    for &(u, v) in edges {
        for x in [u, v] {
            let next = index.len();
            index.entry(x).or_insert(next);
        }
    }
    let k = index.len();
    if edges.len() > 3 * k - 6 {
        return false;
    }
    let local = Graph::from_edges(k, edges.iter().map(|(u, v)| (index[u], index[v])));
    path_addition(&local)
}

/// The path-addition test on a biconnected graph with at least three nodes.
fn path_addition(g: &Graph) -> bool {
    let k = g.nodes();
    let key = |u: usize, v: usize| (u.min(v), u.max(v));
    // The first cycle: the edge (0, w) closed by a shortest path from w back to 0.
    let w = g.neighbours(0)[0] as usize;
    let Some(back) = shortest_path(g, w, |x| x == 0, |x, y| key(x, y) != (0, w)) else {
        return true;
    };
    let mut embedded = vec![false; k];
    let mut embedded_edges: HashSet<(usize, usize)> = HashSet::new();
    for pair in back.windows(2) {
        embedded_edges.insert(key(pair[0], pair[1]));
    }
    embedded_edges.insert(key(0, w));
    for &x in &back {
        embedded[x] = true;
    }
    let mut faces = vec![back.clone(), back];
    let mut stamp = vec![usize::MAX; k];
    loop {
        let fragments = fragments(g, &embedded, &embedded_edges);
        if fragments.is_empty() {
            return true;
        }
        // Admissible faces of each fragment; the first with exactly one wins, else the first.
        let mut chosen: Option<(usize, usize)> = None;
        let mut admissible = vec![Vec::new(); fragments.len()];
        for (fi, face) in faces.iter().enumerate() {
            for &x in face {
                stamp[x] = fi;
            }
            for (i, fragment) in fragments.iter().enumerate() {
                if fragment.attachments.iter().all(|&a| stamp[a] == fi) {
                    admissible[i].push(fi);
                }
            }
        }
        for (i, faces_of) in admissible.iter().enumerate() {
            match faces_of.len() {
                0 => return false,
                1 => {
                    chosen = Some((i, faces_of[0]));
                    break;
                }
                _ => {
                    if chosen.is_none() {
                        chosen = Some((i, faces_of[0]));
                    }
                }
            }
        }
        let (fragment, face) = chosen.expect("there is a fragment");
        let path = fragment_path(g, &fragments[fragment], &embedded);
        let Some(path) = path else {
            // A fragment with one attachment cannot occur in a biconnected graph.
            return true;
        };
        let f = &faces[face];
        let a = path[0];
        let b = *path.last().expect("a path has ends");
        let ia = f.iter().position(|&x| x == a).expect("a is on the face");
        let ib = f.iter().position(|&x| x == b).expect("b is on the face");
        let inner = &path[1..path.len() - 1];
        let walk = |from: usize, to: usize| {
            let mut out = Vec::new();
            let mut i = from;
            loop {
                out.push(f[i]);
                if i == to {
                    break;
                }
                i = (i + 1) % f.len();
            }
            out
        };
        let mut first = walk(ia, ib);
        first.extend(inner.iter().rev());
        let mut second = walk(ib, ia);
        second.extend(inner.iter());
        faces[face] = first;
        faces.push(second);
        for pair in path.windows(2) {
            embedded_edges.insert(key(pair[0], pair[1]));
        }
        for &x in &path {
            embedded[x] = true;
        }
    }
}

struct Fragment {
    /// Embedded nodes the fragment touches.
    attachments: Vec<usize>,
    /// Its nodes that are not embedded (empty for a single edge).
    inner: Vec<usize>,
}

fn fragments(
    g: &Graph,
    embedded: &[bool],
    embedded_edges: &HashSet<(usize, usize)>,
) -> Vec<Fragment> {
    let k = g.nodes();
    let mut out = Vec::new();
    for (u, v) in g.edges() {
        if embedded[u] && embedded[v] && !embedded_edges.contains(&(u, v)) {
            out.push(Fragment {
                attachments: vec![u, v],
                inner: Vec::new(),
            });
        }
    }
    let mut seen = vec![false; k];
    for start in 0..k {
        if embedded[start] || seen[start] {
            continue;
        }
        let mut inner = vec![start];
        let mut attachments = Vec::new();
        seen[start] = true;
        let mut i = 0;
        while i < inner.len() {
            let x = inner[i];
            i += 1;
            for &y in g.neighbours(x) {
                let y = y as usize;
                if embedded[y] {
                    if !attachments.contains(&y) {
                        attachments.push(y);
                    }
                } else if !seen[y] {
                    seen[y] = true;
                    inner.push(y);
                }
            }
        }
        out.push(Fragment { attachments, inner });
    }
    out
}

/// A path through a fragment between two distinct attachments.
fn fragment_path(g: &Graph, fragment: &Fragment, embedded: &[bool]) -> Option<Vec<usize>> {
    if fragment.inner.is_empty() {
        return Some(fragment.attachments.clone());
    }
    let a = fragment.attachments[0];
    let entry = g
        .neighbours(a)
        .iter()
        .map(|&x| x as usize)
        .find(|x| fragment.inner.contains(x))?;
    let reaches_other = |x: usize| {
        g.neighbours(x)
            .iter()
            .any(|&y| embedded[y as usize] && y as usize != a)
    };
    let inside = shortest_path(g, entry, reaches_other, |_, y| !embedded[y])?;
    let last = *inside.last().expect("non-empty");
    let b = g
        .neighbours(last)
        .iter()
        .map(|&y| y as usize)
        .find(|&y| embedded[y] && y != a)?;
    let mut path = vec![a];
    path.extend(inside);
    path.push(b);
    Some(path)
}

/// A shortest path from `from` to a node satisfying `goal`, over steps `x → y` that `allowed`
/// admits.
fn shortest_path(
    g: &Graph,
    from: usize,
    goal: impl Fn(usize) -> bool,
    allowed: impl Fn(usize, usize) -> bool,
) -> Option<Vec<usize>> {
    let mut previous = vec![usize::MAX; g.nodes()];
    previous[from] = from;
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(x) = queue.pop_front() {
        if goal(x) {
            let mut path = vec![x];
            let mut y = x;
            while y != from {
                y = previous[y];
                path.push(y);
            }
            path.reverse();
            return Some(path);
        }
        for &y in g.neighbours(x) {
            let y = y as usize;
            if previous[y] == usize::MAX && allowed(x, y) {
                previous[y] = x;
                queue.push_back(y);
            }
        }
    }
    None
}
