//! What a training loop needs from a process: one time per sample on every backend, equal item
//! by item to calls with each item's own time.

mod common;

use common::diff::{compare, entry_call, Gen};
use common::shipped;
use diffc::entries::{entries, EntryKind, Extent};
use diffc::interp::{self, Call, Data, Tensor};
use diffc::ir::lower::lower;
use diffc::ir::Program;
use diffc::typed::{Process, TimeKind};

type RunFn<'a> = &'a dyn Fn(&Process, &Program, &Call) -> Result<Vec<Tensor>, String>;

/// Times spread over the process's time, with two equal neighbours (one run of two samples).
fn spread(p: &Process, batch: usize, g: &mut Gen) -> Vec<f32> {
    let (lo, hi) = (p.time.lo, p.time.hi);
    let mut out: Vec<f32> = (0..batch)
        .map(|_| {
            let u = g.next() as f64;
            match p.time.kind {
                TimeKind::Discrete => (lo + (u * (hi - lo + 1.0)).floor()).min(hi) as f32,
                TimeKind::Continuous => (lo + u * (hi - lo)) as f32,
            }
        })
        .collect();
    if batch >= 3 {
        out[2] = out[1];
    }
    // The ends of the time are valid times too.
    out[0] = match p.time.kind {
        TimeKind::Discrete => hi as f32,
        TimeKind::Continuous => hi as f32,
    };
    out
}

/// Sample `b` of a batch-major output (the whole output when it is one value for the call).
fn row(t: &Tensor, b: usize, whole: bool) -> Tensor {
    if whole {
        return t.clone();
    }
    let batch = t.shape[0];
    let per = t.len() / batch.max(1);
    let shape = t.shape[1..].to_vec();
    let data = match &t.data {
        Data::F32(v) => Data::F32(v[b * per..(b + 1) * per].to_vec()),
        Data::Bool(v) => Data::Bool(v[b * per..(b + 1) * per].to_vec()),
        Data::Class(v) => Data::Class(v[b * per..(b + 1) * per].to_vec()),
    };
    Tensor { shape, data }
}

/// The entries that take the process's time.
fn timed(p: &Process) -> Vec<Program> {
    entries(p)
        .into_iter()
        .filter(|e| !matches!(e.kind, EntryKind::Step | EntryKind::Finalize))
        .filter(|e| e.inputs.iter().any(|x| x.name == p.time.name))
        .map(|e| lower(p, &e.name).unwrap_or_else(|err| panic!("{} {}: {err}", p.name, e.name)))
        .collect()
}

/// For every entry with a time, of every shipped process: one call with a time per sample
/// equals, sample by sample, the same backend's call with that sample's time for the whole
/// batch (the same noise: sample `b` draws as sample `b` in both), and agrees with the
/// interpreter's per-sample call within `tol`.
fn per_sample_equals_scalar_calls(run: RunFn<'_>, tol: f32) -> usize {
    let mut checked = 0;
    let mut worst = 0f32;
    for p in shipped() {
        for prog in timed(&p) {
            for (batch, size, seed) in [(4usize, 3usize, 5u64), (1, 2, 9)] {
                let mut g = Gen(seed + 77);
                let times = spread(&p, batch, &mut g);
                let mut call = entry_call(&p, &prog, batch, size, seed);
                call.inputs.insert(
                    p.time.name.clone(),
                    Tensor {
                        shape: vec![batch],
                        data: Data::F32(times.clone()),
                    },
                );
                let what = format!("{} {} (batch {batch})", p.name, prog.name);
                let got = run(&p, &prog, &call).unwrap_or_else(|e| panic!("{what}: {e}"));
                let want = interp::run(&p, &prog, &call).unwrap_or_else(|e| panic!("{what}: {e}"));
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    compare(
                        &format!("{what} output {i} against the interpreter"),
                        a,
                        b,
                        tol,
                        &mut worst,
                    );
                }
                for (b, t) in times.iter().enumerate() {
                    let mut one = call.clone();
                    one.inputs.insert(p.time.name.clone(), Tensor::scalar(*t));
                    let whole =
                        run(&p, &prog, &one).unwrap_or_else(|e| panic!("{what} at t = {t}: {e}"));
                    for (i, port) in prog.outputs.iter().enumerate() {
                        let scalar = matches!(port.extent, Extent::Scalar);
                        assert_eq!(
                            row(&got[i], b, false),
                            row(&whole[i], b, scalar),
                            "{what}: sample {b} (t = {t}) of `{}` differs from the call at its own time",
                            port.name
                        );
                    }
                }
                checked += 1;
            }
        }
    }
    println!("{checked} calls with a time per sample agree; largest relative difference {worst:e}");
    checked
}

#[test]
fn per_sample_times_on_the_interpreter() {
    let n = per_sample_equals_scalar_calls(&|p, prog, call| interp::run(p, prog, call), 0.0);
    assert!(n >= 60, "{n}");
}

#[test]
fn per_sample_times_on_the_cpu() {
    let n = per_sample_equals_scalar_calls(&|p, prog, call| diffc::cpu::run(p, prog, call), 1e-5);
    assert!(n >= 60, "{n}");
}

#[test]
fn per_sample_times_on_the_gpu() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let n = per_sample_equals_scalar_calls(
        &|p, prog, call| diffc::gpu::run_on(gpu, p, prog, call),
        2e-5,
    );
    assert!(n >= 60, "{n}");
}

#[test]
fn a_time_array_of_the_wrong_length_or_outside_the_time_is_an_error() {
    let p = common::spec("ddpm.diff", "ddpm_linear");
    let prog = lower(&p, "forward").unwrap();
    let mut call = entry_call(&p, &prog, 3, 2, 1);
    call.inputs.insert(
        "t".into(),
        Tensor {
            shape: vec![2],
            data: Data::F32(vec![10.0, 20.0]),
        },
    );
    let e = interp::run(&p, &prog, &call).unwrap_err();
    assert!(e.contains("`t` has shape [2]") && e.contains("[3]"), "{e}");
    call.inputs.insert(
        "t".into(),
        Tensor {
            shape: vec![3],
            data: Data::F32(vec![10.0, 2000.0, 20.0]),
        },
    );
    for run in [interp::run, diffc::cpu::run] {
        let e = run(&p, &prog, &call).unwrap_err();
        assert!(e.contains("`t` = 2000 is outside"), "{e}");
    }
    call.inputs.insert(
        "t".into(),
        Tensor {
            shape: vec![3],
            data: Data::F32(vec![10.0, f32::NAN, 20.5]),
        },
    );
    let e = interp::run(&p, &prog, &call).unwrap_err();
    assert!(e.contains("`t` = NaN"), "{e}");
}

/// A network call as a sampler made it: the network, its inputs, the fields it was given and
/// its time.
type Seen = (usize, Vec<Tensor>, Vec<(usize, Tensor)>, Option<f64>);

/// Records every network call of a sampler run, answering with `Wobbly`.
struct Recorder {
    calls: Vec<Seen>,
    net: common::diff::Wobbly,
}

impl interp::Denoiser for Recorder {
    fn denoise(&mut self, p: &Process, c: &interp::NetCall) -> Result<Vec<Tensor>, String> {
        self.calls
            .push((c.net, c.inputs.to_vec(), c.fields.to_vec(), c.time));
        self.net.denoise(p, c)
    }
}

/// `net_inputs.NET`, given the fields a sampler's call passed and the call's time, returns
/// exactly what the sampler called the network with, on every shipped sampler's first steps.
#[test]
fn net_inputs_are_what_a_sampler_calls_the_network_with() {
    use diffc::ir::lower::lower_sampler;
    let mut checked = 0;
    for p in shipped() {
        for s in &p.samplers {
            let sp = lower_sampler(&p, &s.name).unwrap();
            // Times an f32 holds exactly, as an entry's time input is an f32.
            let grid: Vec<f64> = s
                .default_grid
                .iter()
                .take(4)
                .map(|x| *x as f32 as f64)
                .collect();
            let call = common::diff::sampler_call(&p, &sp, grid, 2, 3, 5);
            let mut rec = Recorder {
                calls: Vec::new(),
                net: common::diff::Wobbly(0),
            };
            let what = format!("{} {}", p.name, s.name);
            interp::sample(&p, &sp, &call, &mut rec).unwrap_or_else(|e| panic!("{what}: {e}"));
            for (net, inputs, fields, time) in rec.calls.into_iter().take(3) {
                let name = &p.networks[net].name;
                let prog = lower(&p, &format!("net_inputs.{name}")).unwrap();
                let mut c = Call {
                    batch: 2,
                    sizes: call.sizes.clone(),
                    masks: call.masks.clone(),
                    ..Call::default()
                };
                for (f, v) in fields {
                    let port = diffc::entries::net_field_port(&p, diffc::typed::FieldId(f as u32));
                    c.inputs.insert(port.name, v);
                }
                let t = time.unwrap_or(p.time.lo);
                c.inputs
                    .insert(p.time.name.clone(), Tensor::scalar(t as f32));
                for run in [interp::run, diffc::cpu::run] {
                    let out = run(&p, &prog, &c).unwrap_or_else(|e| panic!("{what} {name}: {e}"));
                    assert_eq!(out, inputs, "{what}: `{name}` at t = {t}");
                }
                checked += 1;
            }
        }
    }
    println!("{checked} network calls equal their net_inputs entry");
    assert!(checked >= 30, "{checked}");
}

/// `sample_t` draws every time of a discrete process equally often, and a continuous time
/// uniformly: 2·10⁵ draws each, bounds at about 5 standard errors.
#[test]
fn sample_t_follows_the_training_time_distribution() {
    let n = 200_000usize;
    for (file, process) in [("ddpm.diff", "ddpm_linear"), ("vp_sde.diff", "vp_sde")] {
        let p = common::spec(file, process);
        let prog = lower(&p, "sample_t").unwrap();
        let call = Call {
            seed: 11,
            batch: n,
            ..Call::default()
        };
        let out = interp::run(&p, &prog, &call).unwrap();
        assert_eq!(out[0].shape, vec![n]);
        let ts = out[0].f32s().unwrap();
        assert_eq!(diffc::cpu::run(&p, &prog, &call).unwrap()[0], out[0]);
        let (lo, hi) = (p.time.lo, p.time.hi);
        assert!(ts.iter().all(|t| (lo..=hi).contains(&(*t as f64))));
        match p.time.kind {
            TimeKind::Discrete => {
                assert!(ts.iter().all(|t| t.fract() == 0.0));
                // Ten bins of 100 times: each holds n/10 draws, s.e. sqrt(n · 0.1 · 0.9).
                let mut bins = [0usize; 10];
                for t in ts {
                    bins[((*t as f64 - lo) / 100.0) as usize] += 1;
                }
                let se = (n as f64 * 0.09).sqrt();
                for (i, c) in bins.iter().enumerate() {
                    let z = (*c as f64 - n as f64 / 10.0) / se;
                    assert!(z.abs() < 5.0, "{process}: bin {i} holds {c} ({z:.1} s.e.)");
                }
                assert!(ts.contains(&(lo as f32)) && ts.contains(&(hi as f32)));
            }
            TimeKind::Continuous => {
                // Kolmogorov–Smirnov: sqrt(n) · D < 1.95 at the 0.1% level.
                let mut s: Vec<f64> = ts.iter().map(|t| (*t as f64 - lo) / (hi - lo)).collect();
                s.sort_by(|a, b| a.total_cmp(b));
                let d = s
                    .iter()
                    .enumerate()
                    .map(|(i, x)| {
                        ((i + 1) as f64 / n as f64 - x)
                            .abs()
                            .max((x - i as f64 / n as f64).abs())
                    })
                    .fold(0.0, f64::max);
                assert!((n as f64).sqrt() * d < 1.95, "{process}: KS D = {d}");
            }
        }
        // The uniforms can be supplied, like every draw.
        let mut given = Call {
            batch: 3,
            ..Call::default()
        };
        given.draws.insert(
            format!("u_{}", p.time.name),
            Tensor {
                shape: vec![3],
                data: Data::F32(vec![0.0, 0.5, 0.999_999_9]),
            },
        );
        let t = interp::run(&p, &prog, &given).unwrap();
        let t = t[0].f32s().unwrap();
        assert_eq!(t[0], lo as f32, "{process}");
        match p.time.kind {
            TimeKind::Discrete => assert_eq!(t[2], hi as f32, "{process}"),
            TimeKind::Continuous => assert!(hi - (t[2] as f64) < 1e-6, "{process}: {}", t[2]),
        }
        assert!(
            (t[1] as f64 - (lo + hi) / 2.0).abs() < 1.0,
            "{process}: {}",
            t[1]
        );
    }
}

/// `diffc::train`: the batch's network inputs are its noised data at its times, and the loss of
/// DDPM's `simple` is mean((ε̂ − ε)²) with gradient 2(ε̂ − ε)/d, on the interpreter and the CPU.
#[test]
fn a_training_step_in_rust() {
    use diffc::train::{self, Backend, Options};
    use std::collections::HashMap;
    let p = common::spec("ddpm.diff", "ddpm_linear");
    let (batch, d) = (64usize, 3usize);
    let mut g = Gen(5);
    let x0: Vec<f32> = (0..batch * d).map(|_| g.next() * 2.0 - 1.0).collect();
    let data = HashMap::from([(
        "x_0".to_string(),
        Tensor {
            shape: vec![batch, d],
            data: Data::F32(x0),
        },
    )]);
    let mut first = None;
    for backend in [Backend::Interp, Backend::Cpu] {
        let o = Options {
            seed: 3,
            step: 9,
            backend,
            ..Options::default()
        };
        let b = train::batch(&p, "simple", &data, &o).unwrap();
        let ts = b.t.f32s().unwrap();
        assert_eq!(b.t.shape, vec![batch]);
        // Times differ from sample to sample.
        assert!(ts.iter().any(|t| *t != ts[0]));
        let (net, inputs) = &b.net_inputs[0];
        assert_eq!(net, "eps_hat");
        assert_eq!(inputs[0], b.targets["x_t"]);
        assert_eq!(inputs[1].f32s().unwrap(), ts);
        // A new training step draws new times; the same step the same.
        let again = train::batch(&p, "simple", &data, &o).unwrap();
        assert_eq!(again.t, b.t);
        let next = train::batch(
            &p,
            "simple",
            &data,
            &Options {
                step: 10,
                ..o.clone()
            },
        )
        .unwrap();
        assert_ne!(next.t, b.t);
        let out: Vec<f32> = (0..batch * d).map(|_| g.next() - 0.5).collect();
        let outputs = HashMap::from([(
            "eps_hat.x".to_string(),
            Tensor {
                shape: vec![batch, d],
                data: Data::F32(out.clone()),
            },
        )]);
        let (loss, grads) = train::loss(&p, &b, &outputs, &o).unwrap();
        let eps = b.targets["eps"].f32s().unwrap();
        let l = loss.f32s().unwrap();
        let gr = grads["d_eps_hat.x"].f32s().unwrap();
        for i in 0..batch {
            let want: f64 = (0..d)
                .map(|j| ((out[i * d + j] - eps[i * d + j]) as f64).powi(2))
                .sum::<f64>()
                / d as f64;
            assert!(
                (l[i] as f64 - want).abs() < 1e-5 * want.max(1.0),
                "{backend:?} sample {i}"
            );
            for j in 0..d {
                let want = 2.0 * (out[i * d + j] - eps[i * d + j]) / d as f32;
                assert!((gr[i * d + j] - want).abs() < 1e-5, "{backend:?} gradient");
            }
        }
        match &first {
            None => first = Some((b.t.clone(), b.targets["x_t"].clone())),
            Some((t, x)) => {
                assert_eq!(t, &b.t, "the backends draw the same times");
                compare("x_t", &b.targets["x_t"], x, 1e-5, &mut 0.0);
            }
        }
    }
    // Bad input is an error naming it.
    let e = train::batch(&p, "nope", &data, &Options::default()).unwrap_err();
    assert!(e.contains("no entry `loss.nope`"), "{e}");
    let e = train::batch(&p, "simple", &HashMap::new(), &Options::default()).unwrap_err();
    assert!(e.contains("x_0"), "{e}");
}

/// A process's `param`s are given per call: DiGress's prior over node classes follows a
/// marginal `mX` given at run time on every backend, and bad values are errors naming it.
#[test]
fn params_are_given_per_call() {
    let p = common::spec("digress.diff", "digress");
    let prog = lower(&p, "prior.X").unwrap();
    let onehot = |c: usize| Tensor {
        shape: vec![4],
        data: Data::F32((0..4).map(|i| if i == c { 1.0 } else { 0.0 }).collect()),
    };
    let mut call = Call {
        seed: 4,
        batch: 3,
        sizes: [("n".to_string(), 5)].into(),
        ..Call::default()
    };
    let default = interp::run(&p, &prog, &call).unwrap();
    call.params.insert("mX".into(), onehot(2));
    let mut runs: Vec<(&str, RunFn)> = vec![
        ("interp", &|p, prog, c| interp::run(p, prog, c)),
        ("cpu", &|p, prog, c| diffc::cpu::run(p, prog, c)),
    ];
    let gpu = common::gpu::gpu();
    let on_gpu =
        |p: &Process, prog: &Program, c: &Call| diffc::gpu::run_on(gpu.unwrap(), p, prog, c);
    if gpu.is_some() {
        runs.push(("gpu", &on_gpu));
    }
    for (name, run) in &runs {
        let out = run(&p, &prog, &call).unwrap();
        assert_eq!(out[0].data, Data::Class(vec![2; 15]), "{name}");
        assert_ne!(out[0], default[0]);
    }
    // The forward marginal reads it too: at the noise end every class is 2 or the data's.
    let fwd = lower(&p, "forward").unwrap();
    let mut f = entry_call(&p, &fwd, 3, 5, 2);
    f.inputs
        .insert("t".into(), Tensor::scalar(p.time.hi as f32));
    f.params.insert("mX".into(), onehot(2));
    for (name, run) in &runs {
        let out = run(&p, &fwd, &f).unwrap();
        let (Data::Class(x0), Data::Class(xt)) = (&f.inputs["X_0"].data, &out[0].data) else {
            panic!("classes");
        };
        assert!(xt.iter().zip(x0).all(|(a, b)| *a == 2 || a == b), "{name}");
    }
    for (given, want) in [
        (("mQ", onehot(0)), "has no param `mQ` (its params: mX, mE)"),
        (
            ("mX", Tensor::scalar(1.0)),
            "param `mX` is vec<4>: give 4 values, not 1",
        ),
        (
            (
                "mX",
                Tensor {
                    shape: vec![4],
                    data: Data::F32(vec![0.5, 0.5, 0.5, 0.0]),
                },
            ),
            "is a probability vector",
        ),
        (
            (
                "mX",
                Tensor {
                    shape: vec![4],
                    data: Data::F32(vec![f32::NAN, 0.5, 0.5, 0.0]),
                },
            ),
            "param `mX` holds NaN at index 0",
        ),
    ] {
        let mut c = call.clone();
        c.params = [(given.0.to_string(), given.1)].into();
        for (name, run) in &runs {
            let e = run(&p, &prog, &c).unwrap_err();
            assert!(e.contains(want), "{name}: {e}");
        }
    }
    // A param a schedule reads is tabulated: refused, not silently ignored.
    let text = "process q {\n  dim d\n  param b : real = 0.02\n  field x : real[d]\n  time t : 1..10\n  schedule beta(t) = b * t / 10\n  schedule alpha_bar(t) in (0, 1] decreasing = cumprod(1 - beta(t))\n  forward x_t | x_0 ~ Normal(sqrt(alpha_bar(t)) * x_0, 1 - alpha_bar(t))\n  prior x_T ~ Normal(0, 1)\n}\n";
    let (m, diags) = diffc::check::check_source(text);
    let q = &m.unwrap_or_else(|| panic!("{diags:?}")).processes[0];
    let qf = lower(q, "forward").unwrap();
    let mut c = entry_call(q, &qf, 2, 3, 1);
    c.params.insert("b".into(), Tensor::scalar(0.01));
    let e = interp::run(q, &qf, &c).unwrap_err();
    assert!(e.contains("read by schedule `beta`"), "{e}");
}

/// A supplied draw of a symmetric field is read at each pair's upper entry, as the generator's
/// would be, so the result is symmetric whatever is supplied; a step's draw of a field is
/// supplied as its noise (`eps_x`, `u_X`), and `--list`'s names of draws in two branches read
/// one supplied input.
#[test]
fn supplied_draws_keep_symmetry_and_have_names_of_their_own() {
    let p = common::spec("digress.diff", "digress");
    let prog = lower(&p, "forward").unwrap();
    let (b, n) = (2usize, 4usize);
    let mut call = entry_call(&p, &prog, b, n, 3);
    call.inputs.insert("t".into(), Tensor::scalar(300.0));
    // A symmetric E_0 with an empty diagonal.
    if let Data::Class(v) = &mut call.inputs.get_mut("E_0").unwrap().data {
        for s in 0..b {
            for i in 0..n {
                for j in 0..=i {
                    v[s * n * n + i * n + j] = if i == j { 0 } else { v[s * n * n + j * n + i] };
                }
            }
        }
    }
    let mut g = Gen(8);
    // Different uniforms above and below the diagonal.
    call.draws.insert(
        "u_E".into(),
        Tensor {
            shape: vec![b, n, n],
            data: Data::F32((0..b * n * n).map(|_| g.next()).collect()),
        },
    );
    let runs: [RunFn; 2] = [&|p, prog, c| interp::run(p, prog, c), &|p, prog, c| {
        diffc::cpu::run(p, prog, c)
    }];
    let mut outs = Vec::new();
    for run in runs {
        let out = run(&p, &prog, &call).unwrap();
        let e = prog.outputs.iter().position(|x| x.name == "E_t").unwrap();
        let Data::Class(v) = &out[e].data else {
            panic!("classes")
        };
        for s in 0..b {
            for i in 0..n {
                for j in 0..n {
                    assert_eq!(
                        v[s * n * n + i * n + j],
                        v[s * n * n + j * n + i],
                        "E_t[{s}, {i}, {j}]"
                    );
                }
            }
        }
        outs.push(out);
    }
    assert_eq!(outs[0], outs[1]);
    // DDPM's ancestral step draws `x`; its noise is the input `eps_x`, not the state `x`.
    let ddpm = common::spec("ddpm.diff", "ddpm_linear");
    let sp = diffc::ir::lower::lower_sampler(&ddpm, "ancestral").unwrap();
    let names: Vec<&str> = sp.prog.draws.iter().map(|d| d.input()).collect();
    assert_eq!(names, ["eps_x"]);
    // BFN's multistep SDE solver draws `w` in two branches: one input feeds both.
    let bfn = common::spec("bfn_discrete.diff", "bfn_discrete");
    let sp = diffc::ir::lower::lower_sampler(&bfn, "sde_bfn_solver2").unwrap();
    let ws = sp.prog.draws.iter().filter(|d| d.input() == "w").count();
    assert!(ws >= 2, "{:?}", sp.prog.draws);
    let d = 3usize;
    let k = 27usize;
    let z = Tensor {
        shape: vec![1, d, k],
        data: Data::F32(vec![0.1; d * k]),
    };
    let w = |v: f32| Tensor {
        shape: vec![1, d, k],
        data: Data::F32(vec![v; d * k]),
    };
    let g = &bfn
        .samplers
        .iter()
        .find(|s| s.name == "sde_bfn_solver2")
        .unwrap()
        .default_grid;
    for kstep in [0usize, 1] {
        let run = |seed: u64| {
            let call = diffc::interp::SampleCall {
                seed,
                batch: 1,
                sizes: [("d".to_string(), d)].into(),
                state: [("z".to_string(), z.clone())].into(),
                grid: Some(vec![g[kstep + 1], g[kstep + 2]]),
                draws: [("w".to_string(), w(0.5))].into(),
                single_step: Some(diffc::interp::SingleStep {
                    k: kstep + 1,
                    n: g.len() - 1,
                    r: Some(g[kstep]),
                    prev: sp
                        .history_names
                        .iter()
                        .map(|h| (h.clone(), z.clone()))
                        .collect(),
                }),
                ..Default::default()
            };
            interp::sample(&bfn, &sp, &call, &mut common::diff::Wobbly(0)).unwrap()["z"].clone()
        };
        // With its draw supplied, the step no longer depends on the seed.
        assert_eq!(run(1), run(2), "step {kstep}");
    }
}

/// A continuous time whose ends are not f32s (`[0.7, 0.999]`) is callable at its ends, given as
/// the nearest f32s, with one time or one per sample; just past an end is still an error.
#[test]
fn time_ends_that_are_not_f32s_are_callable() {
    let path = format!("{}/specs/vp_sde.diff", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap().replacen(
        "time t : [t_eps, 1]",
        "time t : [0.7, 0.999]",
        1,
    );
    let (m, diags) = diffc::check::check_source(&text);
    let m = m.unwrap_or_else(|| panic!("{diags:?}"));
    let p = m.processes.iter().find(|p| p.name == "vp_sde").unwrap();
    let prog = lower(p, "forward").unwrap();
    let mut call = entry_call(p, &prog, 2, 3, 1);
    for t in [0.999f32, 0.7] {
        call.inputs.insert("t".into(), Tensor::scalar(t));
        interp::run(p, &prog, &call).unwrap_or_else(|e| panic!("t = {t}: {e}"));
    }
    call.inputs.insert(
        "t".into(),
        Tensor {
            shape: vec![2],
            data: Data::F32(vec![0.999, 0.7]),
        },
    );
    diffc::cpu::run(p, &prog, &call).unwrap();
    call.inputs.insert("t".into(), Tensor::scalar(0.9991));
    let e = interp::run(p, &prog, &call).unwrap_err();
    assert!(e.contains("outside the process's time"), "{e}");
}

/// A step whose posterior goes one time at a time refuses a grid that jumps, instead of
/// silently stepping by one.
#[test]
fn a_one_step_posterior_refuses_a_coarse_grid() {
    let p = common::spec("ddpm.diff", "ddpm_linear");
    let sp = diffc::ir::lower::lower_sampler(&p, "ancestral").unwrap();
    let x = Tensor {
        shape: vec![1, 2],
        data: Data::F32(vec![0.5, -0.5]),
    };
    let run = |s: f64| {
        let call = diffc::interp::SampleCall {
            batch: 1,
            state: [("x".to_string(), x.clone())].into(),
            grid: Some(vec![981.0, s]),
            single_step: Some(diffc::interp::SingleStep {
                k: 19,
                n: 1000,
                ..Default::default()
            }),
            ..Default::default()
        };
        interp::sample(&p, &sp, &call, &mut common::diff::Wobbly(0))
    };
    run(980.0).unwrap();
    let e = run(961.0).unwrap_err();
    assert!(e.contains("goes from 981 to 961"), "{e}");
}

/// `terms.NAME`: each outermost reduction's argument per element. Where the loss is one
/// reduction, reducing the terms (mean or sum over the real elements, or the norm) gives the
/// loss; every term is 0 where a node mask leaves its element out, and finite elsewhere.
#[test]
fn loss_terms_reduce_to_the_loss() {
    use diffc::typed::{Builtin, ExprKind};
    let (mut single, mut masked, mut total) = (0, 0, 0);
    for p in shipped() {
        for l in &p.losses {
            let reds = diffc::entries::loss_reductions(&p, l.value);
            let tname = format!("terms.{}", l.name);
            let tprog = lower(&p, &tname).unwrap_or_else(|e| panic!("{} {tname}: {e}", p.name));
            let lprog = lower(&p, &format!("loss.{}", l.name)).unwrap();
            assert_eq!(tprog.outputs.len(), reds.len());
            total += 1;
            let (batch, size) = (3usize, 4usize);
            let mut call = entry_call(&p, &lprog, batch, size, 11);
            // A node mask with padding in the last sample, where the process has one.
            let mask_dim = p.masks.first().map(|m| m.name.clone());
            let mask_of = p.masks.first().map(|m| m.dim);
            if let Some(m) = &mask_dim {
                let mut v = vec![true; batch * size];
                v[(batch - 1) * size + size - 1] = false;
                v[(batch - 1) * size + size - 2] = false;
                call.masks.insert(
                    m.clone(),
                    Tensor {
                        shape: vec![batch, size],
                        data: Data::Bool(v),
                    },
                );
            }
            let what = format!("{} {tname}", p.name);
            let terms = interp::run(&p, &tprog, &call).unwrap_or_else(|e| panic!("{what}: {e}"));
            let loss =
                interp::run(&p, &lprog, &call).unwrap_or_else(|e| panic!("{what}: {e}"))[0].clone();
            let Data::F32(lv) = &loss.data else { panic!() };
            for (i, (t, port)) in terms.iter().zip(&tprog.outputs).enumerate() {
                let Data::F32(tv) = &t.data else {
                    panic!("{what}: term{i} is not real")
                };
                let per = tv.len() / batch;
                // Which elements are real: the mask applies to every axis over its dimension.
                let real: Vec<bool> = match (&mask_dim, &port.extent) {
                    (Some(_), Extent::Field(s)) if !s.dims.is_empty() => {
                        let n = size;
                        (0..tv.len())
                            .map(|k| {
                                let b = k / per;
                                let mut rest = k % per;
                                let mut ok = true;
                                // Row-major: the last axis varies fastest.
                                for d in s.dims.iter().rev() {
                                    let idx = rest % n;
                                    rest /= n;
                                    let padded = b == batch - 1 && idx >= n - 2;
                                    ok &= !(padded && Some(*d) == mask_of);
                                }
                                ok
                            })
                            .collect()
                    }
                    _ => vec![true; tv.len()],
                };
                for (k, x) in tv.iter().enumerate() {
                    if real[k] {
                        assert!(x.is_finite(), "{what}: term{i}[{k}] = {x}");
                    } else {
                        assert_eq!(*x, 0.0, "{what}: term{i}[{k}] is masked out");
                        masked += 1;
                    }
                }
                // A loss that is this one reduction is the reduced terms.
                if reds.len() == 1 && reds[0].0 == l.value {
                    let ExprKind::Call { func, .. } = &p.expr(l.value).kind else {
                        panic!()
                    };
                    for b in 0..batch {
                        let xs: Vec<f64> = (0..per)
                            .filter(|j| real[b * per + j])
                            .map(|j| tv[b * per + j] as f64)
                            .collect();
                        let s: f64 = xs.iter().sum();
                        let want = match func {
                            Builtin::Mean => s / xs.len().max(1) as f64,
                            Builtin::Sum => s,
                            _ => xs.iter().map(|x| x * x).sum::<f64>().sqrt(),
                        };
                        let got = lv[b] as f64;
                        assert!(
                            (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                            "{what}: sample {b}: the loss is {got}, its reduced terms {want}"
                        );
                    }
                    single += 1;
                }
            }
        }
    }
    println!(
        "{total} losses' terms checked: {single} reduce to their loss, {masked} masked elements are 0"
    );
    assert!(
        total >= 15 && single >= 6 && masked > 0,
        "{total} {single} {masked}"
    );
}
