//! Node orbit counts of graphlets on 2 to 4 nodes, numbered as ORCA numbers them.
//!
//! For a node x, `counts[x][o]` is the number of induced connected subgraphs, on 2 to 4 nodes,
//! in which x occupies orbit o:
//! 0 an edge; 1 an end and 2 the middle of a 3-path; 3 a triangle;
//! 4 an end and 5 an inner node of a 4-path; 6 a leaf and 7 the centre of a 3-star;
//! 8 a 4-cycle; 9 the pendant node, 10 a degree-2 node and 11 the degree-3 node of a paw
//! (a triangle with a pendant edge); 12 a degree-2 node and 13 a degree-3 node of a diamond
//! (a 4-cycle with one chord); 14 a 4-clique.
//!
//! [`node_orbits`] follows the method of Hočevar and Demšar (ORCA): it counts 4-cliques
//! directly and solves, per node, a linear system relating the other orbits to sums over
//! paths and triangles through the node, in time O(Σ deg²) plus the clique count.
//! [`node_orbits_brute_force`] enumerates every 4-node subset and is the check in tests.

use super::{BitMatrix, Graph};

/// The number of node orbits of graphlets on up to 4 nodes.
pub const ORBITS: usize = 15;

enum Adjacency<'g> {
    Bits(BitMatrix),
    Lists(&'g Graph),
}

impl Adjacency<'_> {
    #[inline]
    fn get(&self, u: usize, v: usize) -> bool {
        match self {
            Adjacency::Bits(b) => b.get(u, v),
            Adjacency::Lists(g) => g.has_edge(u, v),
        }
    }
}

/// Orbit counts of every node.
pub fn node_orbits(g: &Graph) -> Vec<[i64; ORBITS]> {
    let n = g.nodes();
    // A bit matrix up to 32 MiB; binary searches beyond.
    let adj = if n <= 16_384 {
        Adjacency::Bits(BitMatrix::new(g))
    } else {
        Adjacency::Lists(g)
    };
    let deg: Vec<i64> = (0..n).map(|v| g.degree(v) as i64).collect();
    // tri[offset[u] + k]: the triangles on the edge from u to its k-th neighbour.
    let mut offset = vec![0usize; n + 1];
    for v in 0..n {
        offset[v + 1] = offset[v] + g.degree(v);
    }
    let mut tri = vec![0i64; offset[n]];
    for u in 0..n {
        for (k, &v) in g.neighbours(u).iter().enumerate() {
            let v = v as usize;
            if v < u {
                continue;
            }
            let t = common_count(g.neighbours(u), g.neighbours(v)) as i64;
            tri[offset[u] + k] = t;
            let back = g
                .neighbours(v)
                .binary_search(&(u as u32))
                .expect("symmetric");
            tri[offset[v] + back] = t;
        }
    }
    // 4-cliques, each found once from its largest and second-largest node.
    let mut k4 = vec![0i64; n];
    let mut below = Vec::new();
    for x in 0..n {
        for &y in g.neighbours(x) {
            let y = y as usize;
            if y >= x {
                break;
            }
            below.clear();
            for &z in g.neighbours(y) {
                let z = z as usize;
                if z >= y {
                    break;
                }
                if adj.get(x, z) {
                    below.push(z);
                }
            }
            for i in 0..below.len() {
                for j in i + 1..below.len() {
                    if adj.get(below[i], below[j]) {
                        for v in [x, y, below[i], below[j]] {
                            k4[v] += 1;
                        }
                    }
                }
            }
        }
    }
    let mut counts = vec![[0i64; ORBITS]; n];
    let mut common = vec![0i64; n];
    let mut touched = Vec::new();
    for x in 0..n {
        for &z in &touched {
            common[z] = 0;
        }
        touched.clear();
        let o = &mut counts[x];
        o[0] = deg[x];
        let (mut f12_14, mut f10_13, mut f13_14, mut f11_13) = (0i64, 0i64, 0i64, 0i64);
        let (mut f7_11, mut f5_8, mut f6_9, mut f9_12, mut f4_8, mut f8_12) =
            (0i64, 0i64, 0i64, 0i64, 0i64, 0i64);
        let f14 = k4[x];
        let nx = g.neighbours(x);
        // x in the middle.
        for (i, &y) in nx.iter().enumerate() {
            let y = y as usize;
            let t_xy = tri[offset[x] + i];
            for (k, &z) in g.neighbours(y).iter().enumerate() {
                let z = z as usize;
                let t_yz = tri[offset[y] + k];
                if adj.get(x, z) {
                    if z < y {
                        f12_14 += t_yz - 1;
                        f10_13 += (deg[y] - 1 - t_yz) + (deg[z] - 1 - t_yz);
                    }
                } else {
                    if common[z] == 0 {
                        touched.push(z);
                    }
                    common[z] += 1;
                }
            }
            for (j, &z) in nx.iter().enumerate().skip(i + 1) {
                let z = z as usize;
                let t_xz = tri[offset[x] + j];
                if adj.get(y, z) {
                    o[3] += 1;
                    f13_14 += (t_xy - 1) + (t_xz - 1);
                    f11_13 += (deg[x] - 1 - t_xy) + (deg[x] - 1 - t_xz);
                } else {
                    o[2] += 1;
                    f7_11 += (deg[x] - 2 - t_xy) + (deg[x] - 2 - t_xz);
                    f5_8 += (deg[y] - 1 - t_xy) + (deg[z] - 1 - t_xz);
                }
            }
        }
        // x at an end.
        for (i, &y) in nx.iter().enumerate() {
            let y = y as usize;
            let t_xy = tri[offset[x] + i];
            for (k, &z) in g.neighbours(y).iter().enumerate() {
                let z = z as usize;
                if z == x || adj.get(x, z) {
                    continue;
                }
                let t_yz = tri[offset[y] + k];
                o[1] += 1;
                f6_9 += deg[y] - 2 - t_xy;
                f9_12 += t_yz;
                f4_8 += deg[z] - 1 - t_yz;
                f8_12 += common[z] - 1;
            }
        }
        o[14] = f14;
        o[13] = (f13_14 - 6 * f14) / 2;
        o[12] = f12_14 - 3 * f14;
        o[11] = (f11_13 - f13_14 + 6 * f14) / 2;
        o[10] = f10_13 - f13_14 + 6 * f14;
        o[9] = (f9_12 - 2 * f12_14 + 6 * f14) / 2;
        o[8] = (f8_12 - 2 * f12_14 + 6 * f14) / 2;
        o[7] = (f13_14 + f7_11 - f11_13 - 6 * f14) / 6;
        o[6] = (2 * f12_14 + f6_9 - f9_12 - 6 * f14) / 2;
        o[5] = 2 * f12_14 + f5_8 - f8_12 - 6 * f14;
        o[4] = 2 * f12_14 + f4_8 - f8_12 - 6 * f14;
    }
    counts
}

fn common_count(a: &[u32], b: &[u32]) -> usize {
    let (mut i, mut j, mut c) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Equal => {
                c += 1;
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
        }
    }
    c
}

/// Orbit counts by enumerating every induced subgraph on 2, 3 and 4 nodes: O(n⁴), for tests.
pub fn node_orbits_brute_force(g: &Graph) -> Vec<[i64; ORBITS]> {
    let n = g.nodes();
    let mut counts = vec![[0i64; ORBITS]; n];
    for (v, c) in counts.iter_mut().enumerate() {
        c[0] = g.degree(v) as i64;
    }
    for a in 0..n {
        for b in a + 1..n {
            for c in b + 1..n {
                let nodes = [a, b, c];
                let d = local_degrees(g, &nodes);
                match d.iter().sum::<usize>() / 2 {
                    2 => {
                        for (i, &v) in nodes.iter().enumerate() {
                            counts[v][if d[i] == 1 { 1 } else { 2 }] += 1;
                        }
                    }
                    3 => nodes.iter().for_each(|&v| counts[v][3] += 1),
                    _ => {}
                }
                for e in c + 1..n {
                    let nodes = [a, b, c, e];
                    let d = local_degrees(g, &nodes);
                    let edges = d.iter().sum::<usize>() / 2;
                    let max = *d.iter().max().expect("four nodes");
                    let min = *d.iter().min().expect("four nodes");
                    if min == 0 || edges < 3 {
                        continue;
                    }
                    for (i, &v) in nodes.iter().enumerate() {
                        let orbit = match (edges, max, d[i]) {
                            (3, 2, 1) => 4,
                            (3, 2, _) => 5,
                            (3, 3, 1) => 6,
                            (3, 3, _) => 7,
                            (4, 2, _) => 8,
                            (4, 3, 1) => 9,
                            (4, 3, 2) => 10,
                            (4, 3, _) => 11,
                            (5, _, 2) => 12,
                            (5, _, _) => 13,
                            (6, _, _) => 14,
                            _ => {
                                unreachable!("four nodes without an isolated one have 3 to 6 edges")
                            }
                        };
                        counts[v][orbit] += 1;
                    }
                }
            }
        }
    }
    counts
}

fn local_degrees<const K: usize>(g: &Graph, nodes: &[usize; K]) -> [usize; K] {
    let mut d = [0; K];
    for i in 0..K {
        for j in i + 1..K {
            if g.has_edge(nodes[i], nodes[j]) {
                d[i] += 1;
                d[j] += 1;
            }
        }
    }
    d
}
