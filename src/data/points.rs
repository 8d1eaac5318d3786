//! 2-D toy sets for the Gaussian specs, each scaled to lie roughly in [−2, 2]².
//!
//! Point `i` draws at step `i` of the points stream, with the shape's number in the high byte
//! of the element counter, so sets of different shapes share no draws. All arithmetic is in
//! f64 and the result is rounded to f32.

use super::{stream, Draws};
use std::f64::consts::PI;

/// The noise standard deviation of moons, before the scaling by 4/3.
pub const MOONS_NOISE: f64 = 0.1;
/// The radius of the circle of the eight Gaussians' means.
pub const GAUSSIANS8_RADIUS: f64 = 1.5;
/// The standard deviation of each of the eight Gaussians.
pub const GAUSSIANS8_SD: f64 = 0.1;
/// The noise standard deviation of the Swiss roll, after its scaling.
pub const SWISSROLL_NOISE: f64 = 0.05;

/// A toy shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Moons,
    Gaussians8,
    Checkerboard,
    Swissroll,
}

impl Shape {
    /// The shape of a dataset name.
    pub fn parse(name: &str) -> Option<Shape> {
        Some(match name {
            "moons" => Shape::Moons,
            "gaussians8" => Shape::Gaussians8,
            "checkerboard" => Shape::Checkerboard,
            "swissroll" => Shape::Swissroll,
            _ => return None,
        })
    }
}

/// `count` points of `shape`, row-major (x0, y0, x1, y1, …).
pub fn generate(shape: Shape, seed: u64, count: usize) -> Vec<f32> {
    (0..count)
        .flat_map(|i| point(shape, seed, i).map(|v| v as f32))
        .collect()
}

/// The class label of each of `count` points of `shape`, for the shapes that have them: the
/// moon (i mod 2) of moons, the component (0..8, counterclockwise from the positive x axis)
/// of gaussians8.
pub fn labels(shape: Shape, seed: u64, count: usize) -> Option<Vec<u32>> {
    match shape {
        Shape::Moons => Some((0..count).map(|i| (i % 2) as u32).collect()),
        Shape::Gaussians8 => Some(
            (0..count)
                .map(|i| {
                    let mut draws = Draws::new(seed, stream::POINTS, i);
                    draws.next = (shape as u64) << 56;
                    draws.below(8) as u32
                })
                .collect(),
        ),
        Shape::Checkerboard | Shape::Swissroll => None,
    }
}

/// The number of classes of a shape's labels.
pub fn classes(shape: Shape) -> Option<usize> {
    match shape {
        Shape::Moons => Some(2),
        Shape::Gaussians8 => Some(8),
        Shape::Checkerboard | Shape::Swissroll => None,
    }
}

/// Point `i` of `shape`:
/// - moons: moon i mod 2, t uniform in (0, π); the upper moon is (cos t, sin t), the lower
///   (1 − cos t, 1/2 − sin t) (scikit-learn's `make_moons` with t drawn, not spaced); add
///   N(0, 0.1²) to each coordinate, then subtract (1/2, 1/4) and multiply by 4/3, so the
///   noise-free moons span [−2, 2] × [−1, 1];
/// - gaussians8: mean 1.5 (cos kπ/4, sin kπ/4) with k uniform in 0..8, plus N(0, 0.1²) per
///   coordinate;
/// - checkerboard: x uniform in (−2, 2), y uniform in one of the two unit intervals of (−2, 2)
///   whose square with x is dark, that is ⌊x⌋ + ⌊y⌋ even (FFJORD's board without its final
///   doubling);
/// - swissroll: t = 1.5π (1 + 2u) with u uniform, the point (t cos t, t sin t) / 7 (the roll
///   reaches radius 4.5π/7 ≈ 2.02), plus N(0, 0.05²) per coordinate.
pub fn point(shape: Shape, seed: u64, i: usize) -> [f64; 2] {
    let mut draws = Draws::new(seed, stream::POINTS, i);
    draws.next = (shape as u64) << 56;
    match shape {
        Shape::Moons => {
            let t = draws.uniform_in(0.0, PI);
            let (x, y) = if i.is_multiple_of(2) {
                (t.cos(), t.sin())
            } else {
                (1.0 - t.cos(), 0.5 - t.sin())
            };
            let x = x + MOONS_NOISE * draws.normal();
            let y = y + MOONS_NOISE * draws.normal();
            [(x - 0.5) * 4.0 / 3.0, (y - 0.25) * 4.0 / 3.0]
        }
        Shape::Gaussians8 => {
            let angle = draws.below(8) as f64 * PI / 4.0;
            let x = GAUSSIANS8_RADIUS * angle.cos() + GAUSSIANS8_SD * draws.normal();
            let y = GAUSSIANS8_RADIUS * angle.sin() + GAUSSIANS8_SD * draws.normal();
            [x, y]
        }
        Shape::Checkerboard => {
            let x = draws.uniform_in(-2.0, 2.0);
            // The dark rows for this column: ⌊y⌋ has the parity of ⌊x⌋.
            let row = 2.0 * draws.below(2) as f64 - 2.0 + x.floor().rem_euclid(2.0);
            [x, row + draws.uniform()]
        }
        Shape::Swissroll => {
            let t = 1.5 * PI * (1.0 + 2.0 * draws.uniform());
            let x = t * t.cos() / 7.0 + SWISSROLL_NOISE * draws.normal();
            let y = t * t.sin() / 7.0 + SWISSROLL_NOISE * draws.normal();
            [x, y]
        }
    }
}
