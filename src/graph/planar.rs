//! The planarity test: `rustworkx-core`'s left-right planarity test (Brandes), linear in the
//! size of the graph, on a `petgraph` copy of the graph.
//!
//! A graph with n ≥ 3 nodes and more than 3n − 6 edges is refused before the copy (Euler's
//! bound), so dense generated graphs cost no more than counting their edges.

use super::Graph;
use petgraph::graph::UnGraph;

/// Whether the graph is planar.
pub fn is_planar(g: &Graph) -> bool {
    let n = g.nodes();
    if n >= 3 && g.edge_count() > 3 * n - 6 {
        return false;
    }
    let mut copy = UnGraph::<(), ()>::with_capacity(n, g.edge_count());
    for _ in 0..n {
        copy.add_node(());
    }
    copy.extend_with_edges(g.edges().map(|(u, v)| (u as u32, v as u32)));
    rustworkx_core::planar::is_planar(&copy)
}

/// Whether the graph is planar and connected: the validity of planar-graph datasets.
pub fn is_planar_and_connected(g: &Graph) -> bool {
    g.is_connected() && is_planar(g)
}
