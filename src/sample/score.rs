//! How close samples are to the data: the graph-generation metrics (`crate::graph::metrics`)
//! for graphs, and `crate::data::measures` for points and sequences.
//!
//! Graphs are scored against the training set (the exact denoiser's target): MMD² of degree,
//! clustering, orbit and spectral statistics under the SPECTRE convention with Gaussian-TV
//! kernels (`_tv`) and with Gaussian-EMD kernels (`_emd`); the fraction of unique samples;
//! the fraction isomorphic to a training graph; and, for planar and SBM data, validity and
//! V.U.N.

use super::Samples;
use crate::data::{measures, words, Dataset};
use crate::graph::metrics::{self, Metric, Validity};

/// Values among the scores that describe the training set, not the samples: the same in every
/// run on one dataset (`radius`, the support radius that `inside` counts within).
pub const DATA_PROPERTIES: &[&str] = &["radius"];

/// Named values, in a stable order.
#[derive(Clone, Debug, Default)]
pub struct Scores {
    pub values: Vec<(String, f64)>,
}

impl Scores {
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Score `samples` against the training set `data`. `validity` names the graphs' validity
/// test (`planar`, `sbm`), when the data have one.
/// For labelled points: the fraction of samples whose nearest training point (Euclidean, the
/// first of equals) has the sample's own label. A run conditioned on its labels scores near 1
/// where the classes are apart; an unconditioned one near the share of its label's points.
pub fn label_agreement(
    dim: usize,
    samples: &[f32],
    labels: &[u32],
    train: &[f32],
    train_labels: &[u32],
) -> f64 {
    let n = labels.len().min(samples.len() / dim.max(1));
    if n == 0 || train_labels.is_empty() {
        return f64::NAN;
    }
    let agree = (0..n)
        .filter(|&i| {
            let x = &samples[i * dim..(i + 1) * dim];
            let mut best = (f64::INFINITY, 0usize);
            for (j, y) in train.chunks_exact(dim).enumerate().take(train_labels.len()) {
                let d: f64 = x
                    .iter()
                    .zip(y)
                    .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
                    .sum();
                if d < best.0 {
                    best = (d, j);
                }
            }
            best.0.is_finite() && train_labels[best.1] == labels[i]
        })
        .count();
    agree as f64 / n as f64
}

pub fn score(
    data: &Dataset,
    samples: &Samples,
    validity: Option<&str>,
    threads: usize,
) -> Result<Scores, String> {
    let mut values = Vec::new();
    match (data, samples) {
        (Dataset::Graphs(train), Samples::Graphs(generated)) => {
            let validity = match validity {
                Some(v) => {
                    Some(Validity::parse(v).ok_or_else(|| format!("unknown validity test `{v}`"))?)
                }
                None => None,
            };
            let mmds = [
                Metric::Degree,
                Metric::Clustering,
                Metric::Orbit,
                Metric::Spectral,
            ];
            for (convention, suffix) in [("spectre", "tv"), ("spectre-emd", "emd")] {
                let c = metrics::convention(convention).ok_or("internal error: a convention")?;
                let r = metrics::evaluate(
                    generated,
                    train,
                    None,
                    &metrics::Options {
                        convention: c,
                        metrics: mmds.to_vec(),
                        validity: None,
                        threads,
                    },
                    &|_| {},
                )?;
                for (m, v) in r.values {
                    values.push((format!("{}_{suffix}", m.name()), v));
                }
            }
            let mut rest = vec![Metric::Unique, Metric::Novel];
            if validity.is_some() {
                rest.extend([Metric::Validity, Metric::Vun]);
            }
            let c = metrics::convention("spectre").ok_or("internal error: a convention")?;
            let r = metrics::evaluate(
                generated,
                train,
                Some(train),
                &metrics::Options {
                    convention: c,
                    metrics: rest,
                    validity,
                    threads,
                },
                &|_| {},
            )?;
            for (m, v) in r.values {
                if m == Metric::Novel {
                    values.push(("in_train".to_string(), 1.0 - v));
                }
                values.push((m.name().to_string(), v));
            }
        }
        (Dataset::Points { dim, points, .. }, Samples::Points { dim: d, points: s })
            if dim == d =>
        {
            let p = measures::point_scores(*dim, s, points);
            values.push(("inside".into(), p.inside));
            values.push(("mean_nearest".into(), p.mean_nearest));
            values.push(("energy".into(), p.energy));
            values.push(("radius".into(), p.radius));
        }
        (Dataset::Sequences { seqs, .. }, Samples::Sequences(s)) => {
            let q = measures::sequence_scores(s, seqs, &words::WORDS);
            values.push(("in_train".into(), q.memorised));
            values.push(("spelling".into(), q.spelling));
            values.push(("bigram_tv".into(), q.bigram_tv));
        }
        _ => return Err("the samples are not of the dataset's kind".into()),
    }
    Ok(Scores { values })
}
