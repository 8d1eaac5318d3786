//! Sample quality of point sets and of sequences (the graph metrics are
//! `crate::graph::metrics`).
//!
//! Points (any dimension, row-major, Euclidean distance, computed in f64 by brute force):
//! - the support radius r is [`SUPPORT_RADIUS_FACTOR`] = 3 times the median, over training
//!   points, of the distance to the nearest other training point;
//!   under a locally uniform density a fresh draw from the data lands within r of a training
//!   point with probability about 1 − 2^−9, so a sampler that matches the data scores near 1;
//! - `inside`: the fraction of samples within distance r (inclusive) of some training point;
//! - `mean_nearest`: the mean distance from a sample to its nearest training point;
//! - `energy`: the energy distance 2 E‖X − Y‖ − E‖X − X′‖ − E‖Y − Y′‖ between samples X and
//!   training points Y, with every expectation a mean over all ordered pairs, the pairs of a
//!   point with itself included (a V-statistic: never negative, exactly 0 for identical sets,
//!   and for sets moved apart by a large δ about 2δ − E‖X − X′‖ − E‖Y − Y′‖); no square root
//!   is taken.
//!
//! Sequences (27 symbols, text8's alphabet, see `super::words`):
//! - `memorised`: the fraction of samples equal to some training sequence;
//! - `spelling`: the fraction of words that are in the vocabulary, words being the non-empty
//!   runs between spaces of all samples together (the BFN-Solver paper's spelling accuracy for
//!   text8 samples); 0 when the samples hold no word;
//! - `bigram_tv`: the total-variation distance ½ Σ |p − q| between the distributions of
//!   adjacent symbol pairs (positions j, j + 1 within a sequence) of samples and of training
//!   sequences; NaN when either side has no pair.
//!
//! With no samples, every fraction and mean is NaN.

use super::words;
use std::collections::HashSet;

/// The support radius in units of the median nearest-neighbour distance of the training set.
pub const SUPPORT_RADIUS_FACTOR: f64 = 3.0;

/// The measures of a point sample against its training set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointScores {
    /// The support radius r.
    pub radius: f64,
    /// The fraction of samples within r of a training point.
    pub inside: f64,
    /// The mean distance from a sample to its nearest training point.
    pub mean_nearest: f64,
    /// The energy distance between samples and training points.
    pub energy: f64,
}

/// The measures of a sequence sample against its training set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SequenceScores {
    /// The fraction of samples equal to some training sequence.
    pub memorised: f64,
    /// The fraction of sample words in the vocabulary.
    pub spelling: f64,
    /// The number of sample words.
    pub words: usize,
    /// The total-variation distance between the bigram distributions.
    pub bigram_tv: f64,
}

/// Every point measure of `samples` against `training`, both row-major in `dim` dimensions.
///
/// Panics when `dim` is 0 or does not divide a length.
pub fn point_scores(dim: usize, samples: &[f32], training: &[f32]) -> PointScores {
    let radius = support_radius(dim, training);
    let nearest: Vec<f64> = rows(dim, samples)
        .map(|s| nearest_distance(dim, s, training, None))
        .collect();
    let count = nearest.len() as f64;
    PointScores {
        radius,
        inside: nearest.iter().filter(|&&d| d <= radius).count() as f64 / count,
        mean_nearest: nearest.iter().sum::<f64>() / count,
        energy: energy_distance(dim, samples, training),
    }
}

/// The support radius of a training set ([`SUPPORT_RADIUS_FACTOR`] times the median
/// nearest-neighbour distance; the median of an even count is the mean of the middle two);
/// NaN below 2 points.
pub fn support_radius(dim: usize, training: &[f32]) -> f64 {
    let mut nearest: Vec<f64> = rows(dim, training)
        .enumerate()
        .map(|(i, p)| nearest_distance(dim, p, training, Some(i)))
        .collect();
    if nearest.len() < 2 {
        return f64::NAN;
    }
    nearest.sort_by(f64::total_cmp);
    let m = nearest.len();
    let median = if m % 2 == 1 {
        nearest[m / 2]
    } else {
        0.5 * (nearest[m / 2 - 1] + nearest[m / 2])
    };
    SUPPORT_RADIUS_FACTOR * median
}

/// The energy distance 2 E‖X − Y‖ − E‖X − X′‖ − E‖Y − Y′‖ (means over all ordered pairs).
pub fn energy_distance(dim: usize, a: &[f32], b: &[f32]) -> f64 {
    2.0 * mean_distance(dim, a, b) - mean_distance(dim, a, a) - mean_distance(dim, b, b)
}

fn rows(dim: usize, points: &[f32]) -> std::slice::ChunksExact<'_, f32> {
    assert!(
        dim > 0 && points.len().is_multiple_of(dim),
        "points of dimension {dim} need a length divisible by it"
    );
    points.chunks_exact(dim)
}

fn distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// The distance from `p` to the nearest point of `set`, leaving out row `skip`.
fn nearest_distance(dim: usize, p: &[f32], set: &[f32], skip: Option<usize>) -> f64 {
    rows(dim, set)
        .enumerate()
        .filter(|&(j, _)| Some(j) != skip)
        .map(|(_, q)| distance(p, q))
        .fold(f64::INFINITY, f64::min)
}

fn mean_distance(dim: usize, a: &[f32], b: &[f32]) -> f64 {
    let mut sum = 0.0;
    for p in rows(dim, a) {
        for q in rows(dim, b) {
            sum += distance(p, q);
        }
    }
    sum / ((a.len() / dim) as f64 * (b.len() / dim) as f64)
}

/// Every sequence measure of `samples` against `training`, words checked against `vocabulary`.
pub fn sequence_scores(
    samples: &[Vec<u32>],
    training: &[Vec<u32>],
    vocabulary: &[&str],
) -> SequenceScores {
    let known: HashSet<&[u32]> = training.iter().map(|s| s.as_slice()).collect();
    let memorised = samples
        .iter()
        .filter(|s| known.contains(s.as_slice()))
        .count() as f64
        / samples.len() as f64;
    let (spelling, words) = spelling_accuracy(samples, vocabulary);
    SequenceScores {
        memorised,
        spelling,
        words,
        bigram_tv: bigram_tv(words::CLASSES, samples, training),
    }
}

/// The fraction of words of `samples` in `vocabulary`, and the number of words; (0, 0) when
/// there is none.
pub fn spelling_accuracy(samples: &[Vec<u32>], vocabulary: &[&str]) -> (f64, usize) {
    let vocabulary: HashSet<&str> = vocabulary.iter().copied().collect();
    let (mut words, mut spelled) = (0usize, 0usize);
    for seq in samples {
        let text = words::decode(seq);
        for word in text.split(' ').filter(|w| !w.is_empty()) {
            words += 1;
            spelled += usize::from(vocabulary.contains(word));
        }
    }
    if words == 0 {
        return (0.0, 0);
    }
    (spelled as f64 / words as f64, words)
}

/// The total-variation distance between the adjacent-pair distributions of two sets of
/// sequences over `classes` symbols; pairs holding a symbol at or above `classes` are left out.
pub fn bigram_tv(classes: usize, a: &[Vec<u32>], b: &[Vec<u32>]) -> f64 {
    let histogram = |seqs: &[Vec<u32>]| {
        let mut counts = vec![0.0f64; classes * classes];
        let mut total = 0.0;
        for seq in seqs {
            for pair in seq.windows(2) {
                let (x, y) = (pair[0] as usize, pair[1] as usize);
                if x >= classes || y >= classes {
                    continue;
                }
                counts[x * classes + y] += 1.0;
                total += 1.0;
            }
        }
        counts.iter_mut().for_each(|c| *c /= total);
        counts
    };
    let (p, q) = (histogram(a), histogram(b));
    0.5 * p.iter().zip(&q).map(|(x, y)| (x - y).abs()).sum::<f64>()
}
