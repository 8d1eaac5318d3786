//! The two calls a training loop makes per step, around a network of the caller's.
//!
//! `diffc::train::batch` draws each sample's time and noise from a process and returns what the
//! network is called with; `diffc::train::loss` takes the network's outputs and returns the loss
//! per sample and its gradient with respect to those outputs. Here the "network" is a stand-in,
//! an affine map of (x_t, t/T) fitted by plain gradient steps on that gradient: enough to show
//! the loss falling, and no more (real networks live in PyTorch; see `examples/python/`).
//!
//! Run: `cargo run --release --example train_loop`

use diffc::interp::{Data, Tensor};
use diffc::train::{self, Backend, Options};
use std::collections::HashMap;

fn main() -> Result<(), String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/ddpm.diff"))
        .map_err(|e| e.to_string())?;
    let (module, _) = diffc::check::check_source(&text);
    let module = module.ok_or("specs/ddpm.diff has errors")?;
    let p = module
        .processes
        .iter()
        .find(|p| p.name == "ddpm_linear")
        .ok_or("no ddpm_linear")?;
    let shape = diffc::data::points::Shape::parse("moons").ok_or("no moons")?;
    let batch = 256;
    // eps_hat = W · [x, y, t/T, 1]: a 2×4 matrix.
    let mut w = [[0.0f32; 4]; 2];
    let rate = 0.05;
    for step in 0..301u32 {
        let points = diffc::data::points::generate(shape, step as u64, batch);
        let data = HashMap::from([(
            "x_0".to_string(),
            Tensor {
                shape: vec![batch, 2],
                data: Data::F32(points),
            },
        )]);
        let o = Options {
            seed: 7,
            step,
            backend: Backend::Cpu,
            ..Options::default()
        };
        // 1. The batch: times, noised data, and the network's inputs (x_t and t).
        let b = train::batch(p, "simple", &data, &o)?;
        let (_, inputs) = &b.net_inputs[0];
        let (x, t) = (
            inputs[0].f32s().unwrap_or(&[]),
            inputs[1].f32s().unwrap_or(&[]),
        );
        let feats = |i: usize| [x[2 * i], x[2 * i + 1], t[i] / 1000.0, 1.0];
        // 2. The network (the caller's): here the affine stand-in.
        let out: Vec<f32> = (0..batch)
            .flat_map(|i| {
                let f = feats(i);
                w.map(|row| row.iter().zip(f).map(|(a, b)| a * b).sum::<f32>())
            })
            .collect();
        let outputs = HashMap::from([(
            "eps_hat.x".to_string(),
            Tensor {
                shape: vec![batch, 2],
                data: Data::F32(out),
            },
        )]);
        // 3. The loss per sample and its gradient with respect to the network's output.
        let (loss, grads) = train::loss(p, &b, &outputs, &o)?;
        let mean = loss.f32s().unwrap_or(&[]).iter().sum::<f32>() / batch as f32;
        let g = grads["d_eps_hat.x"].f32s().unwrap_or(&[]);
        // 4. The caller's optimiser: the chain rule through the stand-in.
        for (r, row) in w.iter_mut().enumerate() {
            for (c, wrc) in row.iter_mut().enumerate() {
                let d: f32 = (0..batch).map(|i| g[2 * i + r] * feats(i)[c]).sum();
                *wrc -= rate * d / batch as f32;
            }
        }
        if step % 50 == 0 {
            println!("step {step:3}: mean loss {mean:.4}");
        }
    }
    Ok(())
}
