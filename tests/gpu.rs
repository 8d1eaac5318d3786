//! The GPU backend against the interpreter and the CPU backend: every entry and every sampler
//! of every shipped spec, with identical discrete draws and noise and floats within the GPU
//! tolerance (`docs/backends.md`), on the adapter's own binding size and on a device whose
//! bindings are capped so that every array above a few KiB is split into chunks; and whole runs
//! with the state resident on the device: every sampler against the interpreter, a DDPM run
//! bit for bit against the interpreter-driven path, and the bytes a 50-step DDPM run moves (the
//! network's inputs and outputs per step, the results once, nothing else field-sized).

mod common;

use common::diff::{every_entry, every_sampler, sampler_call, AsNet, Wobbly, CASES};
use common::shipped;
use diffc::gpu::resident::SampleRunner;
use diffc::gpu::runtime::{Gpu, Options};
use diffc::interp;
use diffc::interp::{Data, SampleCall, Tensor};
use diffc::ir::lower::{lower, lower_sampler};
use diffc::plan::{NetArray, NetFn, NetInput};
use diffc::typed::Process;
use std::sync::OnceLock;

/// The tolerance of floats: |gpu - interp| <= TOL * max(1, |interp|). WGSL's `exp`, `log`,
/// `pow`, `sin`, `cos`, `tanh` and `/` are not correctly rounded, and f64 values are pairs of
/// f32 (`kernels/math.wgsl`).
const TOL: f32 = 2e-5;

/// Devices of the same adapter whose bindings hold at most 1, 16 and 256 KiB.
fn capped() -> Option<&'static [Gpu]> {
    common::gpu::gpu()?;
    static GPUS: OnceLock<Vec<Gpu>> = OnceLock::new();
    Some(GPUS.get_or_init(|| {
        [1u64 << 10, 1 << 14, 1 << 18]
            .into_iter()
            .map(|cap| {
                let options = Options {
                    max_binding_bytes: Some(cap),
                    ..Options::from_env()
                };
                Gpu::with_options(&options).expect("another device on the same adapter")
            })
            .collect()
    }))
}

/// The per-element Gaussian processes of `tests/data/per_element.diff` (derived posteriors with
/// `vec<3>` and per-element coefficients, a derived marginal): every entry and sampler on the
/// GPU against the interpreter.
#[test]
fn per_element_derived_kernels_match_the_interpreter() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let procs = common::per_element();
    let t = every_entry(&procs, &CASES, TOL, &|p, prog, call| {
        diffc::gpu::run_on(gpu, p, prog, call)
    });
    println!(
        "{} entry calls agree; largest relative difference {:e}",
        t.checked, t.worst
    );
    assert!(t.checked >= 60, "{}", t.checked);
    let (ran, worst) = every_sampler(&procs, &[(2, 3, 9), (3, 5, 4)], TOL, &|p, sp, call, net| {
        diffc::gpu::sample_on(gpu, p, sp, call, net)
    });
    println!("{ran} sampler runs agree; largest relative difference {worst:e}");
    assert_eq!(ran, 8);
}

#[test]
fn every_entry_matches_the_interpreter_and_the_cpu() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let procs = shipped();
    let t = every_entry(&procs, &CASES, TOL, &|p, prog, call| {
        let got = diffc::gpu::run_on(gpu, p, prog, call)?;
        // The CPU backend equals the interpreter within its own tolerance (`tests/cpu.rs`).
        let cpu = diffc::cpu::run(p, prog, call)?;
        for ((g, c), port) in got.iter().zip(&cpu).zip(&prog.outputs) {
            // Classes, bools and the noise an entry returns are the CPU's, bit for bit.
            let noise = prog.draws.iter().any(|d| d.name == port.name);
            if noise || !matches!(g.data, interp::Data::F32(_)) {
                assert_eq!(
                    g, c,
                    "{} {} `{}`: the GPU and the CPU differ",
                    p.name, prog.name, port.name
                );
            }
        }
        Ok(got)
    });
    println!(
        "{} entry calls agree ({} also with their noise supplied); largest relative difference {:e}",
        t.checked, t.supplied, t.worst
    );
    assert!(t.checked >= 150, "{}", t.checked);
    assert!(t.supplied >= 40, "{}", t.supplied);
}

#[test]
fn every_sampler_matches_the_interpreter() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let (ran, worst) = every_sampler(
        &shipped(),
        &[(2, 3, 9), (3, 5, 4)],
        TOL,
        &|p, sp, call, net| diffc::gpu::sample_on(gpu, p, sp, call, net),
    );
    println!("{ran} sampler runs agree; largest relative difference {worst:e}");
    assert!(ran >= 80, "{ran}");
    // The same runs with the state resident on the device (`gpu::resident`), which reuse the
    // pipelines built above.
    let (ran, worst) = every_sampler(&shipped(), &[(3, 5, 4)], TOL, &|p, sp, call, net| {
        SampleRunner::new(p, &sp.name)?.sample(gpu, p, call, &mut AsNet(net))
    });
    println!("{ran} resident sampler runs agree; largest relative difference {worst:e}");
    assert!(ran >= 40, "{ran}");
}

/// Arrays above one binding are split by samples: every entry, at a batch whose arrays span
/// several chunks of the smallest capped binding its samples fit, gives the interpreter's
/// results, noise included.
#[test]
fn arrays_above_one_binding_are_chunked() {
    let Some(gpus) = capped() else {
        return;
    };
    let procs = shipped();
    let split = std::cell::Cell::new(0);
    let t = every_entry(&procs, &[(64, 6, 2)], TOL, &|p, prog, call| {
        for gpu in gpus {
            match diffc::gpu::run_on(gpu, p, prog, call) {
                Err(e) if e.contains("do not fit the adapter's bindings") => continue,
                Ok(out) => {
                    let cap = gpu.chunk_limits().max_binding_bytes as usize;
                    if out
                        .iter()
                        .chain(call.inputs.values())
                        .any(|t| 4 * t.len() > cap)
                    {
                        split.set(split.get() + 1);
                    }
                    return Ok(out);
                }
                Err(e) => return Err(e),
            }
        }
        panic!("{} {}: no capped device fits a sample", p.name, prog.name);
    });
    println!(
        "{} chunked entry calls agree ({} runs with an input or output over its binding cap); largest relative difference {:e}",
        t.checked,
        split.get(),
        t.worst
    );
    assert!(t.checked >= 60, "{}", t.checked);
    assert!(split.get() >= 50, "{}", split.get());
    // A sampler over a state of 50 samples of 300 floats, in 1 KiB chunks.
    let p = common::spec("ddpm.diff", "ddpm_linear");
    let sp = lower_sampler(&p, "ancestral").unwrap();
    let g = &p.samplers[0].default_grid;
    let call = sampler_call(&p, &sp, g[..4].to_vec(), 50, 200, 6);
    let want = interp::sample(&p, &sp, &call, &mut Wobbly(0)).unwrap();
    let got = diffc::gpu::sample_on(&gpus[0], &p, &sp, &call, &mut Wobbly(0)).unwrap();
    let mut worst = 0.0;
    common::diff::compare("ddpm chunked", &got["x"], &want["x"], TOL, &mut worst);
}

/// A sample whose arrays alone exceed one binding is refused with the reason.
#[test]
fn a_sample_larger_than_a_binding_is_an_error() {
    let Some(gpus) = capped() else {
        return;
    };
    let p = common::spec("ddpm.diff", "ddpm_linear");
    let prog = lower(&p, "forward").unwrap();
    let call = common::diff::entry_call(&p, &prog, 2, 1000, 1);
    let e = diffc::gpu::run_on(&gpus[0], &p, &prog, &call).unwrap_err();
    assert!(e.contains("do not fit the adapter's bindings"), "{e}");
}

/// `^` with a negative base: an integer exponent (a literal, or a run-time param) gives the
/// interpreter's value on the GPU (WGSL's own `pow` is undefined there), per element.
#[test]
fn integer_powers_of_negative_numbers_match_the_interpreter() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let text = "process powers {
  dim d
  field x : real[d]
  time t : [0.002, 80]
  param k : real = 3
  schedule sigma2(t) in (0, inf) increasing = t ^ 2
  forward x_t | x_0 ~ Normal(x_0, sigma2(t))
  prior x_T ~ Normal(0, 6400)
  network D(x_t, t) -> x0(x)
  loss odd = mean((d - x_0) ^ 3 + (d - x_0) ^ 2 - (d - x_0) ^ 5 + (d - x_0) ^ 0 + (d - x_0) ^ k) where { d = D(x_t, t) }
}";
    let (module, diags) = diffc::check::check_source(text);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let p = &module.unwrap().processes[0];
    let prog = lower(p, "terms.odd").unwrap();
    let mut negative = 0;
    for (k, batch) in [(3.0f32, 4), (-2.0, 3), (7.0, 2)] {
        let mut call = common::diff::entry_call(p, &prog, batch, 9, 5);
        call.params.insert("k".into(), interp::Tensor::scalar(k));
        let d = call.inputs["D.x"].f32s().unwrap().to_vec();
        let x0 = call.inputs["x_0"].f32s().unwrap().to_vec();
        negative += d.iter().zip(&x0).filter(|(d, x)| *d - *x < 0.0).count();
        let want = interp::run(p, &prog, &call).unwrap();
        let got = diffc::gpu::run_on(gpu, p, &prog, &call).unwrap();
        let mut worst = 0.0;
        for (g, w) in got.iter().zip(&want) {
            assert!(w.f32s().unwrap().iter().all(|v| v.is_finite()));
            common::diff::compare("terms.odd", g, w, TOL, &mut worst);
        }
    }
    assert!(negative >= 20, "only {negative} negative bases");
}

// ---------------------------------------------------------------------------------------------
// Whole runs with the state resident on the device (`gpu::resident::SampleRunner`)

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
