//! A loss's declared training time distribution (`loss … with t ~ D`) and its entry
//! `sample_t.LOSS`: `LogNormal` and `Weighted` against their distributions (fixed seeds, 2·10⁵
//! draws, bounds stated at each test), the CPU backend (and the GPU, where there is one) against
//! the interpreter, supplied draws against the closed form, `train::batch`, `explain`, `--list`,
//! and the checker's errors.

mod common;

use diffc::interp::{self, Call, Data, Tensor};
use diffc::ir::lower::lower;
use diffc::typed::{Process, TimeDistKind};
use std::collections::HashMap;

/// EDM's σ on [0.002, 80] (Karras et al. 2022: P_mean = −1.2, P_std = 1.2), and a discrete
/// process on 1..10 with times weighted by t and by a schedule.
const SPEC: &str = r#"
process edm {
  dim d
  field x : real[d]
  time t : [0.002, 80] data at 0.002
  forward x_t | x_0 ~ Normal(x_0, t^2)
  prior x_T ~ Normal(0, 6400)
  network D(x_t, t) -> x0(x)
  loss edm = mean((d - x_0)^2) where { d = D(x_t, t) } with t ~ LogNormal(-1.2, 1.2)
  loss flat = mean((d - x_0)^2) where { d = D(x_t, t) } with t ~ Uniform
  loss plain = mean((d - x_0)^2) where { d = D(x_t, t) }
}

process steps {
  const T = 10
  dim d
  field x : real[d]
  time t : 1..T
  schedule beta(t) in (0, 1) = linspace(0.1, 0.5)
  schedule alpha_bar(t) in (0, 1] decreasing = cumprod(1 - beta(t))
  forward x_t | x_0 ~ Normal(sqrt(alpha_bar(t)) * x_0, 1 - alpha_bar(t))
  prior x_T ~ Normal(0, 1)
  network eps_hat(x_t, t) -> eps(x)
  loss linear = mean((e - eps)^2) where { e = eps_hat(x_t, t) } with t ~ Weighted(t)
  loss noisy = mean((e - eps)^2) where { e = eps_hat(x_t, t) } with t ~ Weighted(w = 1 - alpha_bar(t))
  loss some = mean((e - eps)^2) where { e = eps_hat(x_t, t) } with t ~ Weighted(t == 3 or t >= 9)
  loss one = mean((e - eps)^2) where { e = eps_hat(x_t, t) } with t ~ Weighted(t == 4)
  loss plain = mean((e - eps)^2) where { e = eps_hat(x_t, t) }
}
"#;

const N: usize = 200_000;

fn process(name: &str) -> Process {
    let (module, diags) = diffc::check::check_source(SPEC);
    assert!(diags.is_empty(), "{diags:#?}");
    module
        .unwrap()
        .processes
        .into_iter()
        .find(|p| p.name == name)
        .unwrap()
}

fn call(batch: usize, seed: u64, step: u32) -> Call {
    Call {
        seed,
        step,
        batch,
        ..Call::default()
    }
}

fn reals(t: &Tensor) -> Vec<f32> {
    t.f32s().unwrap().to_vec()
}

/// Φ, from erfc by its continued fraction / series (absolute error far below 1e-9): the KS test
/// needs it well below 1/√n.
fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 3.0 {
        // erf by its Taylor series.
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 {
                break;
            }
        }
        1.0 - 2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        // Lentz's continued fraction for erfc.
        let mut f = x;
        let (mut c, mut d) = (x, 0.0);
        for n in 1..300 {
            let a = n as f64 / 2.0;
            d = 1.0 / (x + a * d);
            c = x + a / c;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (-x * x).exp() / (f * std::f64::consts::PI.sqrt())
    }
}

#[test]
fn the_normal_cdf_of_the_tests_is_right() {
    for (x, want) in [
        (0.0, 0.5),
        (1.0, 0.841_344_746_068_542_9),
        (-2.0, 0.022_750_131_948_179_2),
        (3.5, 0.999_767_370_920_964_2),
        (-4.179, 1.463_9e-5),
    ] {
        let got = normal_cdf(x);
        assert!(
            (got - want).abs() < 1e-9 + want * 1e-4,
            "Φ({x}) = {got}, want {want}"
        );
    }
}

/// `LogNormal(-1.2, 1.2)` on [0.002, 80]: log t has mean −1.2 and standard deviation 1.2, each
/// within 5 standard errors (s.e. σ/√n and σ/√(2n)); Kolmogorov–Smirnov √n·D < 1.95 (the 0.1%
/// level) against Φ((log t + 1.2)/1.2). Clamping is negligible on this domain: P(clamped) =
/// 1.6e-5, so about 3 of 2·10⁵ draws, and the test asserts fewer than 20 (for a Poisson count of
/// mean 3.3, P(≥ 20) < 1e-8). Clamped draws count in the moments at the ends (moving the mean by
/// about 1e-5, far inside its s.e. of 2.7e-3).
#[test]
fn log_normal_times_have_the_declared_distribution() {
    let p = process("edm");
    let prog = lower(&p, "sample_t.edm").unwrap();
    assert_eq!(prog.outputs.len(), 1);
    assert_eq!(prog.draws.len(), 1);
    assert_eq!(prog.draws[0].name, "z_t");
    let out = interp::run(&p, &prog, &call(N, 2024, 0)).unwrap();
    assert_eq!(out[0].shape, vec![N]);
    let ts = reals(&out[0]);
    let (lo, hi) = (p.time.lo as f32, p.time.hi as f32);
    assert!(ts.iter().all(|t| (lo..=hi).contains(t)));
    let clamped = ts.iter().filter(|t| **t == lo || **t == hi).count();
    assert!(clamped < 20, "{clamped} clamped draws");
    let logs: Vec<f64> = ts.iter().map(|t| (*t as f64).ln()).collect();
    let n = N as f64;
    let mean = logs.iter().sum::<f64>() / n;
    let var = logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let (m, s) = (-1.2, 1.2);
    let z_mean = (mean - m) / (s / n.sqrt());
    let z_std = (var.sqrt() - s) / (s / (2.0 * n).sqrt());
    assert!(
        z_mean.abs() < 5.0,
        "mean of log t {mean} ({z_mean:.2} s.e.)"
    );
    assert!(
        z_std.abs() < 5.0,
        "std of log t {} ({z_std:.2} s.e.)",
        var.sqrt()
    );
    let mut sorted = logs.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let d = sorted
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let f = normal_cdf((x - m) / s);
            ((i + 1) as f64 / n - f).abs().max((f - i as f64 / n).abs())
        })
        .fold(0.0, f64::max);
    assert!(n.sqrt() * d < 1.95, "KS √n·D = {}", n.sqrt() * d);
    println!(
        "log t: mean {mean:.5} ({z_mean:.2} s.e.), std {:.5} ({z_std:.2} s.e.), √n·D = {:.3}, {clamped} clamped",
        var.sqrt(),
        n.sqrt() * d
    );
}

/// `Weighted(t)` over 1..10: each time's frequency within 5 s.e. (√(n·p(1−p))) of p = t/55;
/// each weight is 1/(10·P(t)) = 5.5/t; the weighted mean of f(t) = t is the uniform mean 5.5 (its
/// terms are all 5.5, so to f32 rounding), and of f(t) = t² the uniform mean 38.5, within 5 s.e.
/// of the weighted terms' sample standard deviation.
#[test]
fn weighted_times_have_the_declared_distribution_and_unbiased_weights() {
    let p = process("steps");
    let prog = lower(&p, "sample_t.linear").unwrap();
    assert_eq!(
        prog.outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>(),
        ["t", "weight"]
    );
    assert_eq!(prog.draws[0].name, "u_t");
    let out = interp::run(&p, &prog, &call(N, 7, 0)).unwrap();
    let (ts, ws) = (reals(&out[0]), reals(&out[1]));
    assert_eq!((ts.len(), ws.len()), (N, N));
    let n = N as f64;
    let mut counts = [0usize; 10];
    for (t, w) in ts.iter().zip(&ws) {
        assert!(t.fract() == 0.0 && (1.0..=10.0).contains(t), "t = {t}");
        assert_eq!(
            *w,
            (55.0 / (10.0 * *t as f64)) as f32,
            "the weight at t = {t}"
        );
        counts[*t as usize - 1] += 1;
    }
    for (i, c) in counts.iter().enumerate() {
        let pr = (i + 1) as f64 / 55.0;
        let z = (*c as f64 - n * pr) / (n * pr * (1.0 - pr)).sqrt();
        assert!(z.abs() < 5.0, "t = {}: {c} draws ({z:.2} s.e.)", i + 1);
    }
    let est = |f: &dyn Fn(f64) -> f64| {
        let terms: Vec<f64> = ts
            .iter()
            .zip(&ws)
            .map(|(t, w)| *w as f64 * f(*t as f64))
            .collect();
        let mean = terms.iter().sum::<f64>() / n;
        let sd = (terms.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        (mean, sd / n.sqrt())
    };
    let (m1, se1) = est(&|t| t);
    assert!(
        (m1 - 5.5).abs() <= 5.0 * se1 + 1e-6,
        "E[w·t] = {m1} (s.e. {se1})"
    );
    let (m2, se2) = est(&|t| t * t);
    assert!(
        (m2 - 38.5).abs() < 5.0 * se2,
        "E[w·t²] = {m2}, want 38.5 (s.e. {se2})"
    );
    println!("E[w·t] = {m1}, E[w·t²] = {m2:.4} (s.e. {se2:.4}), counts {counts:?}");
}

/// A weight that is 0 at some times never draws them, and one time of positive weight is drawn
/// always (still one time per sample).
#[test]
fn weighted_times_skip_times_of_weight_zero() {
    let p = process("steps");
    let prog = lower(&p, "sample_t.some").unwrap();
    let out = interp::run(&p, &prog, &call(30_000, 3, 5)).unwrap();
    let (ts, ws) = (reals(&out[0]), reals(&out[1]));
    // P = 1/3 each for t = 3, 9, 10; N·P = 10/3.
    for (t, w) in ts.iter().zip(&ws) {
        assert!([3.0, 9.0, 10.0].contains(t), "t = {t}");
        assert_eq!(*w, 0.3f32);
    }
    for t in [3.0, 9.0, 10.0] {
        let c = ts.iter().filter(|x| **x == t).count() as f64;
        // s.e. √(n/3 · 2/3) = 81.6: 5 s.e. is 408.
        assert!((c - 10_000.0).abs() < 408.0, "t = {t}: {c}");
    }
    let prog = lower(&p, "sample_t.one").unwrap();
    let out = interp::run(&p, &prog, &call(5, 3, 0)).unwrap();
    assert_eq!(out[0].shape, vec![5]);
    assert_eq!(reals(&out[0]), vec![4.0; 5]);
    assert_eq!(reals(&out[1]), vec![0.1; 5]);
}

/// The supplied draws give the closed form: `u_t` by the inverse CDF of `C_k = (k+1)(k+2)/110`
/// (t = k + 1), `z_t` by `t = min(max(exp(−1.2 + 1.2 z), lo), hi)` in f32, and `sample_t.flat`
/// (Uniform) is `sample_t` itself.
#[test]
fn supplied_draws_give_the_closed_form_time() {
    let p = process("steps");
    let prog = lower(&p, "sample_t.linear").unwrap();
    let us = [
        0.0f32,
        0.01,
        0.0185,
        0.2,
        0.5,
        0.75,
        0.83,
        0.99,
        0.999_999_9,
    ];
    let mut c = call(us.len(), 0, 0);
    c.draws.insert(
        "u_t".into(),
        Tensor {
            shape: vec![us.len()],
            data: Data::F32(us.to_vec()),
        },
    );
    let out = interp::run(&p, &prog, &c).unwrap();
    let want: Vec<f32> = us
        .iter()
        .map(|u| {
            (1..=10)
                .find(|t| (*u as f64) < (t * (t + 1)) as f64 / 110.0)
                .unwrap() as f32
        })
        .collect();
    assert_eq!(reals(&out[0]), want);
    assert_eq!(want[..3], [1.0, 1.0, 2.0]);
    assert_eq!(*want.last().unwrap(), 10.0);
    let ws: Vec<f32> = want.iter().map(|t| (5.5 / *t as f64) as f32).collect();
    assert_eq!(reals(&out[1]), ws);
    assert_eq!(diffc::cpu::run(&p, &prog, &c).unwrap(), out);

    let p = process("edm");
    let prog = lower(&p, "sample_t.edm").unwrap();
    let zs = [-10.0f32, -2.0, -0.5, 0.0, 1.0, 2.5, 4.6, 10.0];
    let mut c = call(zs.len(), 0, 0);
    c.draws.insert(
        "z_t".into(),
        Tensor {
            shape: vec![zs.len()],
            data: Data::F32(zs.to_vec()),
        },
    );
    let out = interp::run(&p, &prog, &c).unwrap();
    let (lo, hi) = (p.time.lo as f32, p.time.hi as f32);
    let want: Vec<f32> = zs
        .iter()
        .map(|z| (-1.2f32 + 1.2f32 * z).exp().max(lo).min(hi))
        .collect();
    assert_eq!(reals(&out[0]), want);
    assert_eq!(want[0], lo);
    assert_eq!(*want.last().unwrap(), hi);
    assert!((want[3] as f64 - (-1.2f64).exp()).abs() < 1e-6);
    assert_eq!(diffc::cpu::run(&p, &prog, &c).unwrap(), out);

    let flat = lower(&p, "sample_t.flat").unwrap();
    let plain = lower(&p, "sample_t").unwrap();
    for seed in [0, 5] {
        let c = call(1000, seed, 3);
        assert_eq!(
            interp::run(&p, &flat, &c).unwrap(),
            interp::run(&p, &plain, &c).unwrap()
        );
    }
}

/// Every `sample_t.LOSS` on the CPU backend equals the interpreter bit for bit: several seeds,
/// steps, batch sizes (vector lanes and tails) and a batch that is part of a larger one.
#[test]
fn the_cpu_backend_draws_the_same_times() {
    let mut checked = 0;
    for (name, entries) in [
        ("edm", vec!["sample_t.edm", "sample_t.flat"]),
        (
            "steps",
            vec![
                "sample_t.linear",
                "sample_t.noisy",
                "sample_t.some",
                "sample_t.one",
            ],
        ),
    ] {
        let p = process(name);
        for e in entries {
            let prog = lower(&p, e).unwrap();
            for (seed, step, batch, base) in [
                (0u64, 0u32, 1usize, 0usize),
                (1, 0, 7, 0),
                (2, 9, 1000, 0),
                (3, 1, 13, 40),
                (4, 2, 0, 0),
            ] {
                let mut c = call(batch, seed, step);
                c.sample_base = base;
                let want = interp::run(&p, &prog, &c).unwrap();
                let got = diffc::cpu::run(&p, &prog, &c).unwrap();
                assert_eq!(
                    got, want,
                    "{name} {e} seed {seed} step {step} batch {batch}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 30);
}

/// The GPU backend (where there is one) draws the same weighted times and weights bit for bit,
/// and log-normal times within the GPU tolerance of `tests/gpu.rs` (WGSL's `exp` is not
/// correctly rounded).
#[test]
fn the_gpu_backend_draws_the_same_times() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    for (name, e) in [
        ("steps", "sample_t.linear"),
        ("steps", "sample_t.noisy"),
        ("edm", "sample_t.edm"),
    ] {
        let p = process(name);
        let prog = lower(&p, e).unwrap();
        let c = call(4099, 11, 2);
        let want = interp::run(&p, &prog, &c).unwrap();
        let got = diffc::gpu::run_on(gpu, &p, &prog, &c).unwrap();
        if name == "steps" {
            assert_eq!(got, want, "{e}");
        } else {
            for (g, w) in reals(&got[0]).iter().zip(reals(&want[0])) {
                assert!((g - w).abs() <= 2e-5 * w.abs().max(1.0), "{e}: {g} vs {w}");
            }
        }
    }
}

/// `train::batch` draws from the loss's own distribution, returning `Weighted` weights; a loss
/// without one draws `sample_t`'s times.
#[test]
fn a_training_batch_uses_the_declared_distribution() {
    use diffc::train::{self, Backend, Options};
    let p = process("steps");
    let x0 = Tensor {
        shape: vec![64, 3],
        data: Data::F32((0..192).map(|i| (i as f32 * 0.37).sin()).collect()),
    };
    let data = HashMap::from([("x_0".to_string(), x0)]);
    for backend in [Backend::Interp, Backend::Cpu] {
        let o = Options {
            seed: 5,
            step: 2,
            backend,
            ..Options::default()
        };
        let c = call(64, 5, 2);
        let b = train::batch(&p, "linear", &data, &o).unwrap();
        let drawn = interp::run(&p, &lower(&p, "sample_t.linear").unwrap(), &c).unwrap();
        assert_eq!(b.t, drawn[0]);
        assert_eq!(b.weight.as_ref(), Some(&drawn[1]));
        let b = train::batch(&p, "plain", &data, &o).unwrap();
        let drawn = interp::run(&p, &lower(&p, "sample_t").unwrap(), &c).unwrap();
        assert_eq!(b.t, drawn[0]);
        assert!(b.weight.is_none());
    }
    let p = process("edm");
    let o = Options {
        seed: 1,
        sizes: HashMap::from([("d".to_string(), 3)]),
        ..Options::default()
    };
    let b = train::batch(&p, "edm", &data, &o).unwrap();
    let drawn = interp::run(&p, &lower(&p, "sample_t.edm").unwrap(), &call(64, 1, 0)).unwrap();
    assert_eq!(b.t, drawn[0]);
    assert!(b.weight.is_none());
}

/// The typed process keeps the distribution; `explain` prints it; the entries list it.
#[test]
fn explain_and_the_entries_show_the_distribution() {
    let p = process("steps");
    let l = p.losses.iter().find(|l| l.name == "linear").unwrap();
    let Some(TimeDistKind::Weighted { probs, .. }) = l.time_dist.as_ref().map(|d| &d.kind) else {
        panic!("no weighted distribution");
    };
    assert_eq!(probs.len(), 10);
    for (i, pr) in probs.iter().enumerate() {
        assert!((pr - (i + 1) as f64 / 55.0).abs() < 1e-15);
    }
    assert!(p
        .losses
        .iter()
        .any(|l| l.name == "plain" && l.time_dist.is_none()));
    let (module, _) = diffc::check::check_source(SPEC);
    let text = diffc::explain::explain(&module.unwrap(), None).unwrap();
    for line in [
        "    time t ~ LogNormal(-1.2, 1.2): log t ~ Normal(-1.2, 1.2^2), clamped to [0.002, 80] (sample_t.edm)",
        "      clamped: P(t < 0.002) = 1.46e-5, P(t > 80) = 1.65e-6",
        "    time t ~ Uniform over [0.002, 80] (sample_t.flat, as sample_t)",
        "    time t ~ Weighted: P(t) ∝ t over 1..10 (sample_t.linear, with weight = 1/(N·P(t)), N = 10)",
        "      P(t=1) = 0.018182  P(t=2) = 0.036364  P(t=6) = 0.109091  P(t=10) = 0.181818",
        "    sample_t.linear(seed: real) -> (t: real per sample, weight: real per sample)",
        "    sample_t.edm(seed: real) -> (t: real per sample)",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
    let names: Vec<String> = diffc::entries::entries(&p)
        .into_iter()
        .map(|e| e.name)
        .filter(|n| n.starts_with("sample_t"))
        .collect();
    assert_eq!(
        names,
        [
            "sample_t",
            "sample_t.linear",
            "sample_t.noisy",
            "sample_t.some",
            "sample_t.one"
        ]
    );
}

/// `diffc eval --list` names each entry's draw; `diffc eval` runs `sample_t.LOSS` and writes its
/// weight.
#[test]
fn the_cli_lists_and_runs_the_entries() {
    let dir = std::env::temp_dir().join(format!("diffc_time_dist_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("spec.diff");
    std::fs::write(&spec, SPEC).unwrap();
    let bin = env!("CARGO_BIN_EXE_diffc");
    let out = std::process::Command::new(bin)
        .args(["eval", spec.to_str().unwrap(), "--process", "edm", "--list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("sample_t.edm\n  in:  seed: uint64 (--seed)[]\n  out: t: float32[batch]\n  draws: z_t (normal)"),
        "{text}"
    );
    let out = std::process::Command::new(bin)
        .args([
            "eval",
            spec.to_str().unwrap(),
            "--process",
            "steps",
            "--list",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("sample_t.linear\n  in:  seed: uint64 (--seed)[]\n  out: t: float32[batch], weight: float32[batch]\n  draws: u_t (uniform)"),
        "{text}"
    );
    let o = dir.join("out");
    let status = std::process::Command::new(bin)
        .args(["eval", spec.to_str().unwrap(), "--process", "steps"])
        .args([
            "--entry",
            "sample_t.linear",
            "--set",
            "batch=16",
            "--seed",
            "4",
        ])
        .args(["--backend", "cpu", "--out", o.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let t = std::fs::read(o.join("t.npy")).unwrap();
    let w = std::fs::read(o.join("weight.npy")).unwrap();
    let floats = |bytes: &[u8]| match diffc::npy::read(bytes).unwrap() {
        diffc::npy::Array {
            shape,
            data: diffc::npy::Data::F32(v),
        } => (shape, v),
        other => panic!("{other:?}"),
    };
    let p = process("steps");
    let want = interp::run(&p, &lower(&p, "sample_t.linear").unwrap(), &call(16, 4, 0)).unwrap();
    assert_eq!(floats(&t), (vec![16], reals(&want[0])));
    assert_eq!(floats(&w), (vec![16], reals(&want[1])));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One mistake each: the code, the line and column of the primary span, and words of the
/// message.
#[test]
fn bad_time_distributions_are_diagnostics() {
    let cont = |clause: &str| {
        format!(
            "process p {{\n  dim d\n  field x : real[d]\n  time t : [0.002, 80]\n  param m : real = 1\n  forward x_t | x_0 ~ Normal(x_0, t^2)\n  network D(x_t, t) -> x0(x)\n  loss l = mean((o - x_0)^2) where {{ o = D(x_t, t) }} {clause}\n}}\n"
        )
    };
    let disc = |clause: &str| {
        format!(
            "process p {{\n  dim d\n  field x : real[d]\n  time t : 1..10\n  param m : real = 1\n  schedule a(t) in (0, 1] decreasing = cumprod(1 - 0.1 + 0 * t)\n  forward x_t | x_0 ~ Normal(sqrt(a(t)) * x_0, 1 - a(t))\n  network e(x_t, t) -> eps(x)\n  loss l = mean((o - eps)^2) where {{ o = e(x_t, t) }} {clause}\n}}\n"
        )
    };
    // (spec, code, line, the clause text the span starts at, words of the message)
    let cases: Vec<(String, &str, usize, &str, &str)> = vec![
        (
            disc("with t ~ LogNormal(0, 1)"),
            "E0400",
            9,
            "LogNormal",
            "draws a continuous time",
        ),
        (
            cont("with t ~ Weighted(t)"),
            "E0400",
            8,
            "Weighted",
            "draws a discrete time",
        ),
        (
            disc("with s ~ Weighted(t)"),
            "E0400",
            9,
            "s ~",
            "draws the time `t`",
        ),
        (
            disc("with x ~ Uniform"),
            "E0400",
            9,
            "x ~",
            "draws the time `t`",
        ),
        (
            disc("with t ~ Weighted(t - 5)"),
            "E0301",
            9,
            "t - 5",
            "negative at t = 1",
        ),
        (
            disc("with t ~ Weighted(0 * t)"),
            "E0301",
            9,
            "0 * t",
            "0 at every time",
        ),
        (
            disc("with t ~ Weighted(t > 10)"),
            "E0301",
            9,
            "t > 10",
            "0 at every time",
        ),
        (
            disc("with t ~ Weighted(1 / (t - 3))"),
            "E0301",
            9,
            "1 / (t - 3)",
            "not a finite number at t = 3",
        ),
        (
            disc("with t ~ Weighted(log(t - 1))"),
            "E0301",
            9,
            "log(t - 1)",
            "not a finite number at t = 1",
        ),
        (
            cont("with t ~ LogNormal(log(0), 1)"),
            "E0301",
            8,
            "log(0)",
            "mean of `LogNormal` is not a finite number",
        ),
        (
            cont("with t ~ LogNormal(0, exp(1000))"),
            "E0301",
            8,
            "exp(1000)",
            "std of `LogNormal` is not a finite number",
        ),
        (
            cont("with t ~ LogNormal(-1.2, 0)"),
            "E0301",
            8,
            "0)",
            "must be positive",
        ),
        (
            cont("with t ~ LogNormal(-1.2, -1)"),
            "E0301",
            8,
            "-1)",
            "must be positive",
        ),
        (
            cont("with t ~ Gamma(1, 2)"),
            "E0300",
            8,
            "Gamma",
            "not a time distribution",
        ),
        (
            cont("with t ~ LogNormal(1)"),
            "E0300",
            8,
            "LogNormal(1)",
            "takes 2 arguments",
        ),
        (
            cont("with t ~ LogNormal(1, 2, 3)"),
            "E0300",
            8,
            "3)",
            "takes 2 arguments",
        ),
        (
            cont("with t ~ LogNormal(mean = 1, sd = 2)"),
            "E0300",
            8,
            "2)",
            "takes 2 arguments",
        ),
        (
            cont("with t ~ 3"),
            "E0300",
            8,
            "3\n",
            "expected a time distribution",
        ),
        (
            cont("with t ~ LogNormal(m, 1)"),
            "E0200",
            8,
            "m, 1",
            "cannot read param `m`",
        ),
        (
            disc("with t ~ Weighted(m * t)"),
            "E0200",
            9,
            "m * t",
            "cannot read param `m`",
        ),
        (
            disc("with t ~ Weighted(x_0)"),
            "E0200",
            9,
            "x_0)",
            "random field",
        ),
        (
            cont("with t ~ LogNormal(t, 1)"),
            "E0400",
            8,
            "t, 1",
            "not available",
        ),
        (
            cont("with t LogNormal(0, 1)"),
            "E0001",
            8,
            "LogNormal",
            "expected",
        ),
    ];
    for (text, code, line, at, words) in &cases {
        let (module, diags) = diffc::check::check_source(text);
        assert!(module.is_none(), "{at}: checked without errors");
        let first = diags.iter().find(|d| d.is_error()).unwrap();
        let start = first.primary.span.start as usize;
        let line_of = text[..start].matches('\n').count() + 1;
        let want_at = {
            // In the clause: after the line's `with`.
            let l = text.lines().nth(line - 1).unwrap();
            let w = l.find("with").unwrap();
            w + l[w..].find(at.trim_end()).unwrap()
        } + text
            .split_inclusive('\n')
            .take(line - 1)
            .map(str::len)
            .sum::<usize>();
        assert_eq!(
            (first.code.as_str(), line_of, start),
            (*code, *line, want_at),
            "`{at}`: {first:#?}"
        );
        assert!(
            first.message.contains(words),
            "`{at}`: {} does not say `{words}`",
            first.message
        );
    }
    // The same specs with a good clause check.
    for text in [
        cont("with t ~ LogNormal(-1.2, 1.2)"),
        cont("with t ~ Uniform()"),
        disc("with t ~ Weighted(t > 5)"),
        disc("with t ~ Weighted(w = 1 - a(t))"),
    ] {
        let (module, diags) = diffc::check::check_source(&text);
        assert!(module.is_some(), "{text}: {diags:#?}");
    }
}

/// `with` is a reserved word.
#[test]
fn with_is_reserved() {
    let (_, diags) =
        diffc::check::check_source("process p {\n  time t : 1..10\n  field with : real\n}\n");
    assert_eq!(diags[0].code.as_str(), "E0001");
    assert!(
        diags[0].message.contains("reserved"),
        "{}",
        diags[0].message
    );
}

/// Every clause of `SPEC` cut short, or with one character deleted, is checked without a panic.
#[test]
fn damaged_clauses_never_panic() {
    let mut cases = 0;
    for (at, _) in SPEC.match_indices(" with ") {
        let end = at + SPEC[at..].find('\n').unwrap();
        for i in (at..=end).filter(|i| SPEC.is_char_boundary(*i)) {
            let mut cut = SPEC[..i].to_string();
            cut.push_str("\n}\n");
            let mut deleted = SPEC.to_string();
            if i < end {
                deleted.remove(i);
            }
            for text in [cut, deleted] {
                let r = std::panic::catch_unwind(|| diffc::check::check_source(&text));
                assert!(r.is_ok(), "the front end panicked on:\n{text}");
                cases += 1;
            }
        }
    }
    assert!(cases > 300, "{cases}");
}
