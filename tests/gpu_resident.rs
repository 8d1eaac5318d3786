//! Whole runs with the state resident on the device (`gpu::resident::SampleRunner`): every
//! sampler of every shipped spec against the interpreter, a DDPM run bit for bit against the
//! interpreter-driven GPU path, and the bytes a 50-step DDPM run moves: the network's inputs
//! and outputs per step, the results once, and nothing else field-sized.

mod common;

use common::diff::{every_sampler, Wobbly};
use common::shipped;
use diffc::cpu::lean::{NetArray, NetFn, NetInput, NetValues};
use diffc::gpu::resident::SampleRunner;
use diffc::interp::{Data, Denoiser, NetCall, SampleCall, Tensor};
use diffc::typed::Process;
use std::collections::HashMap;

/// A denoiser that reads only the network's inputs, called as a network callable.
struct AsNet<'d>(&'d mut dyn Denoiser);

impl NetFn for AsNet<'_> {
    fn call(
        &mut self,
        p: &Process,
        net: usize,
        inputs: &[NetInput],
    ) -> Result<Vec<Box<dyn NetArray>>, String> {
        let tensors: Vec<Tensor> = inputs
            .iter()
            .map(|a| Tensor {
                shape: a.shape.clone(),
                data: match &a.values {
                    NetValues::Reals(v) => Data::F32(v.to_vec()),
                    NetValues::Classes(v) => Data::Class(v.to_vec()),
                    NetValues::Bools(v) => Data::Bool(v.iter().map(|b| *b != 0).collect()),
                    NetValues::Given(name) => panic!("`{name}` handed as given"),
                },
            })
            .collect();
        let masks = HashMap::new();
        let call = NetCall {
            net,
            inputs: &tensors,
            fields: &[],
            time: None,
            masks: &masks,
        };
        Ok(self
            .0
            .denoise(p, &call)?
            .into_iter()
            .map(|t| Box::new(t) as Box<dyn NetArray>)
            .collect())
    }
}

/// Relative tolerance against the interpreter: the GPU's f32 maths (as `tests/gpu.rs`).
const TOL: f32 = 2e-4;

#[test]
fn every_sampler_matches_the_interpreter() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let (ran, worst) = every_sampler(&shipped(), &[(3, 5, 4)], TOL, &|p, sp, call, net| {
        SampleRunner::new(p, &sp.name)?.sample(gpu, p, call, &mut AsNet(net))
    });
    println!("{ran} resident sampler runs agree; largest relative difference {worst:e}");
    assert!(ran >= 40, "{ran}");
}

fn ddpm() -> Process {
    common::spec("ddpm.diff", "ddpm_linear")
}

/// 50 steps of DDPM's ancestral sampler from its prior (its grid's last 51 times: each step
/// goes 1 in time).
fn ddpm_call(p: &Process, batch: usize, d: usize) -> SampleCall {
    let s = p.samplers.iter().find(|s| s.name == "ancestral").unwrap();
    let g = &s.default_grid;
    let grid: Vec<f64> = g[g.len() - 51..].to_vec();
    SampleCall {
        seed: 11,
        batch,
        sizes: p.dims.iter().map(|x| (x.name.clone(), d)).collect(),
        grid: Some(grid),
        ..SampleCall::default()
    }
}

#[test]
fn a_ddpm_run_equals_the_interpreter_driven_path_bit_for_bit() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let p = ddpm();
    let call = ddpm_call(&p, 3, 257);
    let sp = diffc::ir::lower::lower_sampler(&p, "ancestral").unwrap();
    let want = diffc::gpu::sample_on(gpu, &p, &sp, &call, &mut Wobbly(0)).unwrap();
    let runner = SampleRunner::new(&p, "ancestral").unwrap();
    let got = runner
        .sample(gpu, &p, &call, &mut AsNet(&mut Wobbly(0)))
        .unwrap();
    assert_eq!(got, want);
    // A second run on the same runner (its traces cached) gives the same.
    let again = runner
        .sample(gpu, &p, &call, &mut AsNet(&mut Wobbly(0)))
        .unwrap();
    assert_eq!(again, want);
}

#[test]
fn a_50_step_ddpm_run_moves_only_the_network_io_per_step() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let p = ddpm();
    let (batch, d) = (4usize, 1000usize);
    let call = ddpm_call(&p, batch, d);
    let runner = SampleRunner::new(&p, "ancestral").unwrap();
    runner
        .sample(gpu, &p, &call, &mut AsNet(&mut Wobbly(0)))
        .unwrap();
    let m = runner.moved();
    let field = (batch * d * 4) as u64;
    println!("{m:?}");
    // Per step: the network's input x_t back, its output eps up (its time is a host value).
    assert_eq!(m.net_calls, 50);
    assert_eq!(m.net_in, 50 * field);
    assert_eq!(m.net_out, 50 * field);
    // The prior is drawn on the device; the result comes back once.
    assert_eq!(m.start, 0);
    assert_eq!(m.results, field);
    assert_eq!(m.other, 0);
    // One status word per phase: the prior, 50 steps, the final map.
    assert_eq!(m.status, 4 * 52);
    // Host values: coefficients and launch parameters, a few hundred bytes a launch.
    assert!(m.host_values < 52 * 1024, "{}", m.host_values);
}

/// A bad network output is refused as the other paths refuse it.
#[test]
fn a_non_finite_network_output_is_an_error() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let p = ddpm();
    let call = ddpm_call(&p, 2, 5);
    struct Nan;
    impl NetFn for Nan {
        fn call(
            &mut self,
            _: &Process,
            _: usize,
            inputs: &[NetInput],
        ) -> Result<Vec<Box<dyn NetArray>>, String> {
            let mut v = vec![0.0f32; 10];
            v[3] = f32::NAN;
            Ok(vec![Box::new(Tensor {
                shape: inputs[0].shape.clone(),
                data: Data::F32(v),
            })])
        }
    }
    let e = SampleRunner::new(&p, "ancestral")
        .unwrap()
        .sample(gpu, &p, &call, &mut Nan)
        .unwrap_err();
    assert!(e.contains("became NaN at flat index 3"), "{e}");
}
