//! Training latents for a latent graph process without a trained encoder.
//!
//! NVDiff diffuses node vectors Z ∈ ℝ^{n×d} and decodes each pair with
//! p(A_ij = 1 | Z) = sigmoid(⟨z_i, z_j⟩). The encoder here is deterministic: for each graph
//! it fits Z to the graph by gradient descent on the decoder's own log-likelihood,
//! Σ_{i<j} log p(A_ij | Z) − (λ/2)‖Z‖², λ = 1e-3, from a fixed start (Philox normals of
//! scale 0.1 keyed by the graph's index), 400 steps of Nesterov momentum (rate 0.05,
//! momentum 0.9). Padded nodes get zero vectors.
//! So the spec's decoder reconstructs each training graph: [`Accuracy`] reports how well.

use crate::graph::Graph;

/// How well the decoder reconstructs the training graphs from their latents.
#[derive(Clone, Copy, Debug, Default)]
pub struct Accuracy {
    /// The fraction of node pairs whose most likely decoded value (⟨z_i, z_j⟩ > 0) is right.
    pub pairs: f64,
    /// The fraction of graphs whose most likely decoding is exactly the graph.
    pub graphs: f64,
    /// The mean probability the decoder gives each pair's true value (a Bernoulli draw's
    /// expected pair accuracy).
    pub mean_probability: f64,
}

/// Latents `[count, n, width]` for the graphs, padded to `n` nodes, and their accuracy.
pub fn encode(graphs: &[Graph], n: usize, width: usize) -> (Vec<f32>, Accuracy) {
    let mut out = vec![0f32; graphs.len() * n * width];
    let (mut right, mut pairs, mut exact, mut prob) = (0usize, 0usize, 0usize, 0f64);
    for (gi, g) in graphs.iter().enumerate() {
        let m = g.nodes();
        let z = fit(g, width, gi as u64);
        let mut all = true;
        for i in 0..m {
            for j in i + 1..m {
                let s: f64 = (0..width)
                    .map(|k| z[i * width + k] * z[j * width + k])
                    .sum();
                let edge = g.has_edge(i, j);
                let ok = (s > 0.0) == edge;
                right += ok as usize;
                all &= ok;
                pairs += 1;
                let p1 = 1.0 / (1.0 + (-s).exp());
                prob += if edge { p1 } else { 1.0 - p1 };
            }
        }
        exact += all as usize;
        for i in 0..m {
            for k in 0..width {
                out[(gi * n + i) * width + k] = z[i * width + k] as f32;
            }
        }
    }
    let acc = Accuracy {
        pairs: right as f64 / pairs.max(1) as f64,
        graphs: exact as f64 / graphs.len().max(1) as f64,
        mean_probability: prob / pairs.max(1) as f64,
    };
    (out, acc)
}

/// Fit one graph's latents, `[nodes, width]` row-major.
fn fit(g: &Graph, width: usize, index: u64) -> Vec<f64> {
    let m = g.nodes();
    let len = m * width;
    let mut z: Vec<f64> = (0..len)
        .map(|i| {
            let w = crate::rng::block_words(0x5EED_E4C0, 0xE4C0_0000, index as u32, i as u64 / 2);
            let u0 = crate::rng::uniform_open(w[0]);
            let u1 = crate::rng::uniform_open(w[1]);
            let [a, b] = crate::rng::box_muller(u0, u1);
            0.1 * if i % 2 == 0 { a } else { b } as f64
        })
        .collect();
    let mut vel = vec![0f64; len];
    let (rate, momentum, lambda) = (0.05, 0.9, 1e-3);
    let mut grad = vec![0f64; len];
    let mut ahead = vec![0f64; len];
    for _ in 0..400 {
        for i in 0..len {
            ahead[i] = z[i] + momentum * vel[i];
        }
        grad.iter_mut()
            .zip(&ahead)
            .for_each(|(g, a)| *g = -lambda * a);
        for i in 0..m {
            for j in i + 1..m {
                let (zi, zj) = (
                    &ahead[i * width..(i + 1) * width],
                    &ahead[j * width..(j + 1) * width],
                );
                let s: f64 = zi.iter().zip(zj).map(|(a, b)| a * b).sum();
                let y = g.has_edge(i, j) as u8 as f64;
                // d/ds log p(y | s) = y − sigmoid(s)
                let r = y - 1.0 / (1.0 + (-s).exp());
                for k in 0..width {
                    let (a, b) = (ahead[i * width + k], ahead[j * width + k]);
                    grad[i * width + k] += r * b;
                    grad[j * width + k] += r * a;
                }
            }
        }
        for i in 0..len {
            vel[i] = momentum * vel[i] + rate * grad[i];
            z[i] += vel[i];
        }
    }
    z
}
