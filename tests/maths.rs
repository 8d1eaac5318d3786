//! The shipped specs' maths, with the checker's f64 evaluator: forward marginals against
//! composed one-step kernels, and tabulated values against hand computations.

mod common;
use common::spec;
use diffc::check::eval::{Env, Evaluator};
use diffc::typed::{Elem, ExprKind, FieldRef, Kernel, KernelKind, Process, Value, Version};

fn kernel<'p>(p: &'p Process, kind: KernelKind, field: &str) -> &'p Kernel {
    p.forwards
        .iter()
        .chain(&p.posteriors)
        .find(|k| k.kind == kind && p.field(k.target.field).name == field)
        .unwrap()
}

fn params(p: &Process, k: &Kernel) -> Vec<diffc::typed::ExprId> {
    let ExprKind::Dist { params, .. } = &p.expr(k.dist).kind else {
        panic!()
    };
    params.clone()
}

/// Evaluate a kernel parameter at time t with one conditioning variable set to `x`.
fn at(p: &Process, e: diffc::typed::ExprId, t: f64, given: FieldRef, x: Value) -> Value {
    Evaluator::new(p)
        .eval(
            e,
            &Env {
                t,
                fields: vec![(given, x)],
                ..Env::default()
            },
        )
        .unwrap()
}

fn real(v: Value) -> f64 {
    v.as_real().unwrap()
}

/// Gaussian: composing x_t = a_t x_{t-1} + sqrt(b_t) z from the data gives the marginal.
fn check_gaussian_composition(file: &str, process: &str, field: &str) {
    let p = spec(file, process);
    let one = kernel(&p, KernelKind::OneStep, field);
    let marg = kernel(&p, KernelKind::Marginal, field);
    let f = one.target.field;
    let prev = FieldRef {
        field: f,
        version: Version::Back(1),
    };
    let data = FieldRef {
        field: f,
        version: Version::Data,
    };
    let (op, mp) = (params(&p, one), params(&p, marg));
    let (mut a, mut v) = (1.0f64, 0.0f64);
    let (lo, hi) = (p.time.lo as usize, p.time.hi as usize);
    for t in lo..=hi {
        let tf = t as f64;
        // The one-step mean is affine in x_{t-1}: read its slope from two points.
        let m0 = real(at(&p, op[0], tf, prev, Value::Real(0.0)));
        let slope = real(at(&p, op[0], tf, prev, Value::Real(1.0))) - m0;
        assert!(m0.abs() < 1e-15);
        let b = real(at(&p, op[1], tf, prev, Value::Real(0.0)));
        a *= slope;
        v = slope * slope * v + b;
        let ma = real(at(&p, mp[0], tf, data, Value::Real(1.0)));
        let mv = real(at(&p, mp[1], tf, data, Value::Real(0.0)));
        assert!(
            (ma - a).abs() < 1e-9,
            "{process} t = {t}: marginal mean coefficient {ma}, composed {a}"
        );
        assert!(
            (mv - v).abs() < 1e-9,
            "{process} t = {t}: marginal variance {mv}, composed {v}"
        );
    }
}

/// Discrete: the product of one-step transition matrices equals the marginal's, to 1e-9.
fn check_discrete_composition(file: &str, process: &str, field: &str, times: &[usize]) {
    let p = spec(file, process);
    let one = kernel(&p, KernelKind::OneStep, field);
    let marg = kernel(&p, KernelKind::Marginal, field);
    let f = one.target.field;
    let is_bool = p.field(f).elem == Elem::Bool;
    let k = match p.field(f).elem {
        Elem::Cat(k) => k as usize,
        _ => 2,
    };
    let value = |c: usize| {
        if is_bool {
            Value::Bool(c == 1)
        } else {
            Value::Real(c as f64)
        }
    };
    let row = |kern: &Kernel, t: usize, given: FieldRef, c: usize| -> Vec<f64> {
        match at(&p, params(&p, kern)[0], t as f64, given, value(c)) {
            Value::Vec(v) => v,
            Value::Real(q) => vec![1.0 - q, q],
            v => panic!("{v:?}"),
        }
    };
    let prev = FieldRef {
        field: f,
        version: Version::Back(1),
    };
    let data = FieldRef {
        field: f,
        version: Version::Data,
    };
    // q(x_t | x_0) as a matrix, composed step by step.
    let mut composed: Vec<Vec<f64>> = (0..k)
        .map(|i| (0..k).map(|j| (i == j) as u8 as f64).collect())
        .collect();
    let last = *times.iter().max().unwrap();
    for t in p.time.lo as usize..=last {
        let q: Vec<Vec<f64>> = (0..k).map(|c| row(one, t, prev, c)).collect();
        composed = composed
            .iter()
            .map(|r| {
                (0..k)
                    .map(|j| (0..k).map(|l| r[l] * q[l][j]).sum())
                    .collect()
            })
            .collect();
        if times.contains(&t) {
            for (x0, composed_row) in composed.iter().enumerate() {
                let m = row(marg, t, data, x0);
                for j in 0..k {
                    assert!(
                        (m[j] - composed_row[j]).abs() < 1e-9,
                        "{process} t = {t}: q(x_t = {j} | x_0 = {x0}) is {} by the marginal, {} composed",
                        m[j],
                        composed_row[j]
                    );
                }
            }
        }
    }
}

#[test]
fn ddpm_marginals_compose_from_one_step_kernels() {
    check_gaussian_composition("ddpm.diff", "ddpm_linear", "x");
    check_gaussian_composition("ddpm.diff", "ddpm_cosine", "x");
}

#[test]
fn discrete_marginals_compose_from_one_step_kernels() {
    check_discrete_composition("d3pm.diff", "d3pm_uniform", "x", &[1, 2, 10, 200]);
    check_discrete_composition("d3pm.diff", "d3pm_absorbing", "x", &[1, 2, 10, 200, 1000]);
    check_discrete_composition("edge.diff", "edge", "A", &[1, 2, 32, 64]);
    check_discrete_composition("edge.diff", "edge_cosine", "A", &[1, 2, 32, 64]);
    check_discrete_composition("digress.diff", "digress", "X", &[1, 2, 250, 500]);
    check_discrete_composition("digress.diff", "digress", "E", &[1, 2, 250]);
}

fn schedule(p: &Process, name: &str, t: f64) -> f64 {
    let s = p.schedules.iter().find(|s| s.name == name).unwrap();
    match p.time.kind {
        diffc::typed::TimeKind::Discrete => s.table[(t - (p.time.lo - 1.0)) as usize]
            .as_ref()
            .unwrap()
            .as_real()
            .unwrap(),
        diffc::typed::TimeKind::Continuous => Evaluator::new(p)
            .real(
                s.body,
                &Env {
                    t,
                    ..Env::default()
                },
            )
            .unwrap(),
    }
}

#[test]
fn digress_cosine_alpha_bar_matches_the_reference() {
    // MATH.md §5 with T = 500; our t is the authors' t + 1.
    let p = spec("digress.diff", "digress");
    let (t_max, s) = (500.0f64, 0.008f64);
    let f = |x: f64| {
        ((std::f64::consts::PI / 2.0) * (x / (t_max + 2.0) + s) / (1.0 + s))
            .cos()
            .powi(2)
    };
    let grid = |k: f64| k * (t_max + 2.0) / (t_max + 1.0);
    let mut log_ab = 0.0;
    for k in 0..=500 {
        let beta = 1.0 - f(grid(k as f64 + 1.0)) / f(grid(k as f64));
        log_ab += (1.0 - beta.clamp(0.0, 0.9999)).ln();
        let ours = schedule(&p, "alpha_bar", k as f64 + 1.0);
        assert!(
            (ours - log_ab.exp()).abs() < 1e-12,
            "authors' t = {k}: {ours} vs {}",
            log_ab.exp()
        );
    }
    let at_250 = schedule(&p, "alpha_bar", 251.0);
    assert!(
        (at_250 - 0.492).abs() < 0.005,
        "ᾱ at the authors' t = 250 is {at_250}"
    );
}

#[test]
fn edge_reappearance_probability_matches_the_reference() {
    // MATH.md §6: p_t = β_t ᾱ_{t-1} / (1 - ᾱ_t), linear β from 1e-4·1000/T to 0.02·1000/T, T = 64.
    let p = spec("edge.diff", "edge");
    let t_max = 64.0;
    let beta =
        |t: f64| 1e-4 * 1000.0 / t_max + (0.02 - 1e-4) * 1000.0 / t_max * (t - 1.0) / (t_max - 1.0);
    let mut ab_prev = 1.0;
    for t in 1..=64 {
        let tf = t as f64;
        let ab = ab_prev * (1.0 - beta(tf));
        let want = beta(tf) * ab_prev / (1.0 - ab);
        assert!((schedule(&p, "p_re", tf) - want).abs() < 1e-12, "t = {t}");
        ab_prev = ab;
    }
}

/// The authors' `cosine_beta_schedule(timesteps, s=0.008)` (tufts-ml/graph-generation-EDGE,
/// `diffusion/diffusion_base.py`), step by step as numpy computes it in f64: the
/// keep-probabilities α_k, k = 0..T-1, and ᾱ_k = exp(cumsum(log α))_k as the diffusion takes them.
fn edge_cosine_reference(timesteps: usize) -> (Vec<f64>, Vec<f64>) {
    let s = 0.008f64;
    let steps = timesteps + 1;
    // np.linspace(0, steps, steps): k · (steps / (steps - 1)), the last point exactly `steps`.
    let step = steps as f64 / (steps - 1) as f64;
    let x: Vec<f64> = (0..steps)
        .map(|k| {
            if k == steps - 1 {
                steps as f64
            } else {
                k as f64 * step
            }
        })
        .collect();
    let f: Vec<f64> = x
        .iter()
        .map(|&x| {
            ((((x / steps as f64) + s) / (1.0 + s) * std::f64::consts::PI * 0.5).cos()).powi(2)
        })
        .collect();
    let ab_tilde: Vec<f64> = f.iter().map(|v| v / f[0]).collect();
    let alphas: Vec<f64> = (0..timesteps)
        .map(|k| (ab_tilde[k + 1] / ab_tilde[k]).clamp(0.001, 1.0).sqrt())
        .collect();
    let mut log_sum = 0.0;
    let cum: Vec<f64> = alphas
        .iter()
        .map(|a| {
            log_sum += a.ln();
            log_sum.exp()
        })
        .collect();
    (alphas, cum)
}

#[test]
fn edge_cosine_schedule_matches_the_reference() {
    // MATH.md §6 and §10: our alpha(t) is the authors' α_{t-1}, our alpha_bar(t) their ᾱ_{t-1};
    // at the shipped T = 64 and at 8 and 1000 steps (the `const T` line edited).
    let path = format!("{}/specs/edge.diff", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("\nprocess edge_cosine {").unwrap();
    for t_max in [64usize, 8, 1000] {
        let p = if t_max == 64 {
            spec("edge.diff", "edge_cosine")
        } else {
            let (head, body) = text.split_at(start);
            let src = format!(
                "{head}{}",
                body.replacen("const T = 64 ", &format!("const T = {t_max} "), 1)
            );
            let (module, diags) = diffc::check::check_source(&src);
            assert!(diags.iter().all(|d| !d.is_error()), "T = {t_max}");
            module
                .unwrap()
                .processes
                .into_iter()
                .find(|p| p.name == "edge_cosine")
                .unwrap()
        };
        assert_eq!(p.time.hi, t_max as f64);
        let (alphas, cum) = edge_cosine_reference(t_max);
        for k in 0..t_max {
            let t = k as f64 + 1.0;
            let (a, ab) = (schedule(&p, "alpha", t), schedule(&p, "alpha_bar", t));
            assert!(
                (a - alphas[k]).abs() < 1e-12,
                "T = {t_max}, authors' k = {k}: α {a} vs {}",
                alphas[k]
            );
            assert!(
                (ab - cum[k]).abs() < 1e-12,
                "T = {t_max}, authors' k = {k}: ᾱ {ab} vs {}",
                cum[k]
            );
            // The reappearance probability from the same numbers (MATH.md §6).
            let prev = if k == 0 { 1.0 } else { cum[k - 1] };
            let want = (1.0 - alphas[k]) * prev / (1.0 - cum[k]);
            assert!(
                (schedule(&p, "p_re", t) - want).abs() < 1e-9,
                "T = {t_max}, t = {t}: p_re"
            );
        }
        assert_eq!(schedule(&p, "alpha_bar", 0.0), 1.0);
        assert_eq!(
            alphas[t_max - 1],
            0.001f64.sqrt(),
            "the clip acts at the last step"
        );
    }
}

#[test]
fn bfn_accuracy_schedule_matches_the_reference() {
    // MATH.md §7.1 and §10: β(t) = (max_sqrt_beta · t)², t clamped to ≤ 1 - 1e-6, √β ≥ 1e-10.
    let p = spec("bfn_discrete.diff", "bfn_discrete");
    for i in 0..=100 {
        let t = i as f64 / 100.0;
        let sb = (0.75 * t.min(1.0 - 1e-6)).max(1e-10);
        assert!((schedule(&p, "beta", t) - sb * sb).abs() < 1e-15, "t = {t}");
    }
}

/// `bfn_continuous`'s `forward` and `loss.continuous` entries on the interpreter and the CPU
/// backend, for x = (0, 0.5, -1), ε = (1, -2, 0.25) (forward) and ε̂ = (0.3, -0.7, 1.5) (loss),
/// at `t` (one time for the batch of 1).
fn bfn_continuous_entries(t: f32) -> Vec<(&'static str, Vec<f32>, Vec<f32>, f32)> {
    use diffc::interp::{Call, Data, Tensor};
    let p = spec("bfn_continuous.diff", "bfn_continuous");
    let real = |v: &[f32]| Tensor {
        shape: vec![1, v.len()],
        data: Data::F32(v.to_vec()),
    };
    let x = [0.0f32, 0.5, -1.0];
    let forward = diffc::ir::lower::lower(&p, "forward").unwrap();
    let loss = diffc::ir::lower::lower(&p, "loss.continuous").unwrap();
    let mut out = Vec::new();
    type Runner = fn(&Process, &diffc::ir::Program, &Call) -> Result<Vec<Tensor>, String>;
    for (backend, run) in [
        ("interp", diffc::interp::run as Runner),
        ("cpu", diffc::cpu::run as Runner),
    ] {
        let mut call = Call {
            batch: 1,
            ..Call::default()
        };
        call.inputs.insert("x".into(), real(&x));
        call.inputs.insert("t".into(), Tensor::scalar(t));
        call.draws.insert("eps".into(), real(&[1.0, -2.0, 0.25]));
        let f = run(&p, &forward, &call).unwrap();
        let mu = f[0].f32s().unwrap().to_vec();
        call.draws.clear();
        call.inputs.insert("mu_t".into(), real(&mu));
        call.inputs
            .insert("eps_net.x".into(), real(&[0.3, -0.7, 1.5]));
        let l = run(&p, &loss, &call).unwrap();
        out.push((backend, x.to_vec(), mu, l[0].f32s().unwrap()[0]));
    }
    out
}

#[test]
fn bfn_continuous_flow_uses_the_unclamped_time() {
    // MATH.md §7.2 and §10, as the authors' `CtsBayesianFlow.forward`: γ(t) = 1 − σ₁^{2t} at
    // the unclamped t, so at t = 0 γ = 0 and μ = 0 exactly, whatever x and ε; the loss's x̂
    // (their `noise_pred_params_to_data_pred_params`) takes γ at max(t, 1e-6), is 0 below
    // 1e-6 and is clipped to [−1, 1]; the loss is −ln σ₁ σ₁^{−2t} ‖x − x̂‖² at the unclamped t.
    let sigma1 = 1e-3f64.sqrt();
    let gamma = |t: f64| 1.0 - sigma1.powf(2.0 * t);
    let eps = [1.0f64, -2.0, 0.25];
    let eps_hat = [0.3f64, -0.7, 1.5];
    for t in [0.0f32, 1e-7, 1e-6, 0.5, 1.0] {
        let tt = t as f64;
        for (backend, x, mu, loss) in bfn_continuous_entries(t) {
            let g = gamma(tt);
            for i in 0..3 {
                let want = g * x[i] as f64 + (g * (1.0 - g)).sqrt() * eps[i];
                assert!(
                    (mu[i] as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{backend}, t = {t}: μ[{i}] = {} vs {want}",
                    mu[i]
                );
            }
            if t == 0.0 {
                assert!(
                    mu.iter().all(|m| *m == 0.0),
                    "{backend}: μ at t = 0 is {mu:?}"
                );
            }
            let gx = gamma(tt.max(1e-6));
            let mut sq = 0.0;
            for i in 0..3 {
                let x_hat = if tt < 1e-6 {
                    0.0
                } else {
                    (mu[i] as f64 / gx - ((1.0 - gx) / gx).sqrt() * eps_hat[i]).clamp(-1.0, 1.0)
                };
                sq += (x[i] as f64 - x_hat).powi(2);
            }
            let want = -sigma1.ln() * sigma1.powf(-2.0 * tt) * sq;
            assert!(
                (loss as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "{backend}, t = {t}: loss {loss} vs {want}"
            );
        }
    }
    // The former clamp of the flow at 1e-6 gave μ = sqrt(γ(1e-6)) = 0.00263 for x = 0, ε = 1.
    let at0 = &bfn_continuous_entries(0.0)[0];
    assert_eq!(at0.2[0], 0.0);
}

/// The time derivatives behind velocity conversions (`check::deriv`), for every continuous-time
/// affine Gaussian marginal of every shipped spec, against central finite differences of the
/// signal coefficient a(t) and the noise level σ(t) = sqrt(v(t)), at 199 interior times. Where
/// the two one-sided differences disagree (a kink of `max`, `min` or `clamp`) the time is
/// skipped.
#[test]
fn velocity_rates_are_the_derivatives_of_the_marginal() {
    let mut checked = 0;
    for p in common::shipped() {
        if p.time.kind != diffc::typed::TimeKind::Continuous {
            continue;
        }
        let ev = Evaluator::new(&p);
        let val = |e, t: f64| {
            ev.real(
                e,
                &Env {
                    t,
                    ..Env::default()
                },
            )
            .unwrap()
        };
        for k in p.forwards.iter().filter(|k| k.kind == KernelKind::Marginal) {
            let Some(a) = k.affine else { continue };
            let r = a
                .rates
                .unwrap_or_else(|| panic!("{}: a continuous marginal without rates", p.name));
            let (lo, hi) = (p.time.lo, p.time.hi);
            let h = 1e-5 * (hi - lo);
            for i in 1..200 {
                let t = lo + (hi - lo) * i as f64 / 200.0;
                let sigma = |t| val(a.var, t).sqrt();
                assert!(
                    (val(r.sigma, t) - sigma(t)).abs() <= 1e-12 * (1.0 + sigma(t)),
                    "{}: σ({t})",
                    p.name
                );
                for (what, f, d) in [
                    (
                        "a'",
                        &(|t| val(a.alpha, t)) as &dyn Fn(f64) -> f64,
                        r.dalpha,
                    ),
                    ("σ'", &sigma, r.dsigma),
                ] {
                    let (l, c, rr) = (f(t - h), f(t), f(t + h));
                    let (left, right) = ((c - l) / h, (rr - c) / h);
                    if (left - right).abs() > 1e-3 * (1.0 + left.abs()) {
                        continue;
                    }
                    let fd = (rr - l) / (2.0 * h);
                    let got = val(d, t);
                    assert!(
                        (got - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
                        "{}: {what}({t}) = {got}, finite differences give {fd}",
                        p.name
                    );
                    checked += 1;
                }
            }
        }
    }
    // vp_sde (2), ve_sde, dpm_solver (several), nvdiff, bfn_continuous, flow_matching.
    assert!(checked > 2000, "only {checked} derivatives checked");
}

/// Flow matching's rates in closed form: a = 1 − t, σ = t, a' = −1, σ' = 1 (also at both ends).
#[test]
fn flow_matching_rates_in_closed_form() {
    let p = spec("flow_matching.diff", "flow_matching");
    let a = p.forwards[0].affine.unwrap();
    let r = a.rates.unwrap();
    let ev = Evaluator::new(&p);
    for t in [0.0, 0.25, 0.5, 1.0] {
        let env = Env {
            t,
            ..Env::default()
        };
        assert_eq!(ev.real(a.alpha, &env).unwrap(), 1.0 - t);
        assert_eq!(ev.real(r.sigma, &env).unwrap(), t);
        assert_eq!(ev.real(r.dalpha, &env).unwrap(), -1.0);
        assert_eq!(ev.real(r.dsigma, &env).unwrap(), 1.0);
    }
}
