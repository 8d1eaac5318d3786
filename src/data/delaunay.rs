//! Delaunay triangulations of points with integer coordinates, computed exactly.
//!
//! The predicates ([`orient`], [`in_circle`]) are evaluated in `i128` without rounding, so the
//! result is a true Delaunay triangulation whatever the configuration: no circumcircle of a
//! triangle holds a point strictly inside (with four or more points on one circle, one of the
//! valid triangulations is returned).
//! Coordinates must lie in `(-2^28, 2^28)`, which keeps every intermediate of `in_circle`
//! below 2^120.
//!
//! The method: the convex hull (Andrew's monotone chain, collinear points left out) is cut into
//! a fan of triangles; every other point is located by a scan of the triangles and splits the
//! triangle that holds it (or the two that share the edge it lies on); then Lawson's flips turn
//! this triangulation into the Delaunay one (every edge whose opposite vertex lies inside the
//! circumcircle is flipped until none is left; flips strictly raise the sorted angle vector, so
//! this ends).
//! The scan makes insertion O(n²) overall; flips are O(1) each through a map from directed
//! edges to triangles. 1000 random points take a few milliseconds.

use std::collections::HashMap;

/// Twice the signed area of the triangle (a, b, c): positive when a, b, c turn counter-clockwise.
pub fn orient(a: [i64; 2], b: [i64; 2], c: [i64; 2]) -> i128 {
    let (abx, aby) = ((b[0] - a[0]) as i128, (b[1] - a[1]) as i128);
    let (acx, acy) = ((c[0] - a[0]) as i128, (c[1] - a[1]) as i128);
    abx * acy - aby * acx
}

/// Positive when `d` lies strictly inside the circumcircle of the counter-clockwise triangle
/// (a, b, c), zero when on it, negative when outside.
pub fn in_circle(a: [i64; 2], b: [i64; 2], c: [i64; 2], d: [i64; 2]) -> i128 {
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

/// The vertices of the convex hull, counter-clockwise from the lowest-leftmost point; points
/// on a hull edge but not at a corner are left out. Fewer than 3 when all points are collinear.
///
/// The points must be distinct.
pub fn convex_hull(points: &[[i64; 2]]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| points[i]);
    if order.len() < 3 {
        return order;
    }
    let mut hull: Vec<usize> = Vec::with_capacity(2 * order.len());
    // Lower chain left to right, then upper chain right to left.
    for pass in [order.clone(), order.iter().rev().copied().collect()] {
        let start = hull.len();
        for &i in &pass {
            while hull.len() >= start + 2
                && orient(
                    points[hull[hull.len() - 2]],
                    points[hull[hull.len() - 1]],
                    points[i],
                ) <= 0
            {
                hull.pop();
            }
            hull.push(i);
        }
        // The last point of each chain is the first of the other.
        hull.pop();
    }
    if hull.len() < 3 {
        hull.truncate(2);
    }
    hull
}

/// The Delaunay triangles of distinct points, each counter-clockwise; empty when fewer than 3
/// points or all collinear.
///
/// Panics when two points coincide or a coordinate is out of range.
pub fn triangulate(points: &[[i64; 2]]) -> Vec<[usize; 3]> {
    const LIMIT: i64 = 1 << 28;
    assert!(
        points.iter().flatten().all(|&x| -LIMIT < x && x < LIMIT),
        "Delaunay coordinates must lie in (-2^28, 2^28)"
    );
    let hull = convex_hull(points);
    if hull.len() < 3 {
        return Vec::new();
    }
    let mut mesh = Mesh::default();
    for k in 1..hull.len() - 1 {
        mesh.add([hull[0], hull[k], hull[k + 1]]);
    }
    let mut on_hull = vec![false; points.len()];
    for &h in &hull {
        on_hull[h] = true;
    }
    for p in (0..points.len()).filter(|&p| !on_hull[p]) {
        mesh.insert(points, p);
    }
    // Lawson's flips over every edge, then over the edges around each flip.
    let mut stack: Vec<(usize, usize)> = mesh.edge_owner.keys().copied().collect();
    stack.sort_unstable();
    while let Some((a, b)) = stack.pop() {
        if let Some([c, d]) = mesh.flip_if_illegal(points, a, b) {
            stack.extend([(a, d), (d, b), (b, c), (c, a)]);
        }
    }
    mesh.triangles
}

/// The undirected edges of a set of triangles, each once as `(u, v)` with `u < v`, sorted.
pub fn edges(triangles: &[[usize; 3]]) -> Vec<(usize, usize)> {
    let mut edges: Vec<(usize, usize)> = triangles
        .iter()
        .flat_map(|t| [(t[0], t[1]), (t[1], t[2]), (t[2], t[0])])
        .map(|(u, v)| (u.min(v), u.max(v)))
        .collect();
    edges.sort_unstable();
    edges.dedup();
    edges
}

/// Counter-clockwise triangles and the triangle left of each directed edge.
#[derive(Default)]
struct Mesh {
    triangles: Vec<[usize; 3]>,
    edge_owner: HashMap<(usize, usize), usize>,
}

impl Mesh {
    fn add(&mut self, tri: [usize; 3]) -> usize {
        self.triangles.push(tri);
        let t = self.triangles.len() - 1;
        self.link(t);
        t
    }

    /// Replaces triangle `t` by `tri`.
    fn set(&mut self, t: usize, tri: [usize; 3]) {
        self.unlink(t);
        self.triangles[t] = tri;
        self.link(t);
    }

    fn link(&mut self, t: usize) {
        let tri = self.triangles[t];
        for k in 0..3 {
            self.edge_owner.insert((tri[k], tri[(k + 1) % 3]), t);
        }
    }

    fn unlink(&mut self, t: usize) {
        let tri = self.triangles[t];
        for k in 0..3 {
            let edge = (tri[k], tri[(k + 1) % 3]);
            if self.edge_owner.get(&edge) == Some(&t) {
                self.edge_owner.remove(&edge);
            }
        }
    }

    /// The vertex opposite the directed edge (a, b) in the triangle left of it.
    fn apex(&self, a: usize, b: usize) -> Option<(usize, usize)> {
        let &t = self.edge_owner.get(&(a, b))?;
        let tri = self.triangles[t];
        let k = (0..3).find(|&k| tri[k] == a)?;
        Some((t, tri[(k + 2) % 3]))
    }

    /// Splits the triangle that holds point `p` (inside or on an edge).
    fn insert(&mut self, points: &[[i64; 2]], p: usize) {
        let at = points[p];
        for t in 0..self.triangles.len() {
            let tri = self.triangles[t];
            let sides = [0, 1, 2].map(|k| orient(points[tri[k]], points[tri[(k + 1) % 3]], at));
            if sides.iter().any(|&s| s < 0) {
                continue;
            }
            let zeros = sides.iter().filter(|&&s| s == 0).count();
            assert!(zeros < 2, "Delaunay points must be distinct");
            match sides.iter().position(|&s| s == 0) {
                None => {
                    let [a, b, c] = tri;
                    self.set(t, [a, b, p]);
                    self.add([b, c, p]);
                    self.add([c, a, p]);
                }
                Some(k) => {
                    // p lies on the edge (a, b); (b, a, d) is the triangle across, if any.
                    let (a, b, c) = (tri[k], tri[(k + 1) % 3], tri[(k + 2) % 3]);
                    let across = self.apex(b, a);
                    self.set(t, [a, p, c]);
                    self.add([p, b, c]);
                    if let Some((t2, d)) = across {
                        self.set(t2, [b, p, d]);
                        self.add([p, a, d]);
                    }
                }
            }
            return;
        }
        panic!("point {p} lies outside the convex hull");
    }

    /// Flips the edge (a, b) when the vertex across it lies inside the circumcircle of the
    /// triangle left of it; returns the two apexes [c, d] of the flipped quadrilateral.
    fn flip_if_illegal(&mut self, points: &[[i64; 2]], a: usize, b: usize) -> Option<[usize; 2]> {
        let (t1, c) = self.apex(a, b)?;
        let (t2, d) = self.apex(b, a)?;
        if in_circle(points[a], points[b], points[c], points[d]) <= 0 {
            return None;
        }
        // The quadrilateral is a, d, b, c counter-clockwise; the new diagonal is (c, d).
        self.unlink(t1);
        self.unlink(t2);
        self.triangles[t1] = [a, d, c];
        self.triangles[t2] = [d, b, c];
        self.link(t1);
        self.link(t2);
        Some([c, d])
    }
}
