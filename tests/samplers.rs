//! Samplers in the interpreter, driven by exact denoisers for Gaussian data.

mod common;
use common::{shipped, spec};
use diffc::check::eval::{Env, Evaluator};
use diffc::interp::{sample, Data, Denoiser, SampleCall, Tensor};
use diffc::ir::lower::lower_sampler;
use diffc::typed::{NetInput, ParamKind, Process};
use std::collections::HashMap;

/// The exact denoiser when every element of x_0 is N(mu, s²), independently, for a process
/// with an affine Gaussian marginal x_t = a(t) x_0 + sigma(t) eps: E[eps | x_t] in closed form.
struct GaussianData {
    mu: f64,
    s: f64,
    calls: usize,
}

impl Denoiser for GaussianData {
    fn denoise(
        &mut self,
        p: &Process,
        call: &diffc::interp::NetCall,
    ) -> Result<Vec<Tensor>, String> {
        let (net, inputs) = (call.net, call.inputs);
        self.calls += 1;
        let n = &p.networks[net];
        let k = p.gaussian_marginal_given(n.outputs[0].field).unwrap();
        let a = k.affine.unwrap();
        let xi = n
            .inputs
            .iter()
            .position(|i| matches!(i, NetInput::Field { .. }))
            .unwrap();
        let ti = n
            .inputs
            .iter()
            .position(|i| matches!(i, NetInput::Time { .. }))
            .unwrap();
        let t = inputs[ti].f32s().unwrap()[0] as f64;
        let ev = Evaluator::new(p);
        let env = Env {
            t,
            ..Env::default()
        };
        let (alpha, var) = (
            ev.real(a.alpha, &env).unwrap(),
            ev.real(a.var, &env).unwrap(),
        );
        let sigma = var.sqrt();
        let x = inputs[xi].f32s().unwrap();
        let eps: Vec<f32> = x
            .iter()
            .map(|&x| {
                (sigma * (x as f64 - alpha * self.mu) / (alpha * alpha * self.s * self.s + var))
                    as f32
            })
            .collect();
        let out = match n.outputs[0].kind {
            ParamKind::Eps => eps,
            ParamKind::Score => eps.iter().map(|e| (-(*e as f64) / sigma) as f32).collect(),
            ParamKind::X0 => x
                .iter()
                .zip(&eps)
                .map(|(x, e)| ((*x as f64 - sigma * *e as f64) / alpha) as f32)
                .collect(),
            // a' E[x_0 | x_t] + σ' E[ε | x_t], with E[x_0 | x_t] formed directly (finite where
            // a = 0, as at flow matching's noise end).
            ParamKind::Velocity => {
                let r = a.rates.unwrap();
                let (da, ds) = (
                    ev.real(r.dalpha, &env).unwrap(),
                    ev.real(r.dsigma, &env).unwrap(),
                );
                let den = alpha * alpha * self.s * self.s + var;
                x.iter()
                    .map(|&x| {
                        let d = x as f64 - alpha * self.mu;
                        let x0 = self.mu + alpha * self.s * self.s * d / den;
                        (da * x0 + ds * sigma * d / den) as f32
                    })
                    .collect()
            }
            other => return Err(format!("{other:?} is not supported by this test denoiser")),
        };
        Ok(vec![Tensor {
            shape: inputs[xi].shape.clone(),
            data: Data::F32(out),
        }])
    }
}

fn stats(t: &Tensor) -> (f64, f64) {
    let v = t.f32s().unwrap();
    let n = v.len() as f64;
    let m = v.iter().map(|x| *x as f64).sum::<f64>() / n;
    (
        m,
        v.iter().map(|x| (*x as f64 - m).powi(2)).sum::<f64>() / (n - 1.0),
    )
}

#[test]
fn ddpm_ancestral_sampling_reproduces_gaussian_data() {
    let p = spec("ddpm.diff", "ddpm_linear");
    let sp = lower_sampler(&p, "ancestral").unwrap();
    let d = 20_000;
    let call = SampleCall {
        seed: 1,
        batch: 1,
        sizes: [("d".to_string(), d)].into(),
        ..SampleCall::default()
    };
    let mut den = GaussianData {
        mu: 0.5,
        s: 0.3,
        calls: 0,
    };
    let out = sample(&p, &sp, &call, &mut den).unwrap();
    assert_eq!(den.calls, 1000);
    let (m, v) = stats(&out["x"]);
    // Exact score, 1000 steps: the samples follow the data up to sampling error.
    assert!(
        (m - 0.5).abs() < 5.0 * 0.3 / (d as f64).sqrt() + 0.005,
        "mean {m}"
    );
    assert!((v - 0.09).abs() < 0.09 * 0.05, "variance {v}");
}

#[test]
fn ddim_with_eta_zero_is_dpm_solver_1() {
    // One DDIM step from t to s equals (a_s/a_t) x - sigma_s (e^h - 1) eps with h = lambda_s - lambda_t.
    let p = spec("ddpm.diff", "ddpm_linear");
    let sp = lower_sampler(&p, "ddim").unwrap();
    let d = 64;
    let x: Vec<f32> = (0..d).map(|i| (i as f32 - 32.0) / 16.0).collect();
    let state: HashMap<String, Tensor> = [(
        "x".to_string(),
        Tensor {
            shape: vec![1, d],
            data: Data::F32(x.clone()),
        },
    )]
    .into();
    for (t, s) in [(1000.0, 980.0), (500.0, 300.0), (20.0, 0.0)] {
        let call = SampleCall {
            seed: 2,
            batch: 1,
            state: state.clone(),
            grid: Some(vec![t, s]),
            ..SampleCall::default()
        };
        let mut den = GaussianData {
            mu: 0.1,
            s: 0.7,
            calls: 0,
        };
        let out = sample(&p, &sp, &call, &mut den).unwrap();
        let ab = |t: f64| -> f64 {
            let tab = &p
                .schedules
                .iter()
                .find(|x| x.name == "alpha_bar")
                .unwrap()
                .table;
            tab[t as usize].as_ref().unwrap().as_real().unwrap()
        };
        let (at, as_) = (ab(t).sqrt(), ab(s).sqrt());
        let (st, ss) = ((1.0 - ab(t)).sqrt(), (1.0 - ab(s)).sqrt());
        let h = if ss == 0.0 {
            f64::INFINITY
        } else {
            (as_ / ss).ln() - (at / st).ln()
        };
        let got = out["x"].f32s().unwrap();
        for i in 0..d {
            let xt = x[i] as f64;
            let eps = st * (xt - at * 0.1) / (at * at * 0.49 + st * st);
            let dpm1 = if h.is_infinite() {
                (xt - st * eps) / at
            } else {
                as_ / at * xt - ss * h.exp_m1() * eps
            };
            assert!(
                (got[i] as f64 - dpm1).abs() < 2e-5 * (1.0 + dpm1.abs()),
                "t = {t} → {s}: {} vs {dpm1}",
                got[i]
            );
        }
    }
}

/// λ-uniform grid of the linear VP schedule (β from 0.1 to 20) from t = 1 to 1e-3, in f64.
fn logsnr_grid(n: usize) -> Vec<f64> {
    let (b0, b1) = (0.1f64, 20.0f64);
    let log_alpha = |t: f64| -0.25 * t * t * (b1 - b0) - 0.5 * t * b0;
    let lambda = |t: f64| {
        let la = log_alpha(t);
        la - 0.5 * (1.0 - (2.0 * la).exp()).ln()
    };
    let t_of = |l: f64| {
        let c = (1.0 + (-2.0 * l).exp()).ln();
        2.0 * c / (b0 + (b0 * b0 + 2.0 * (b1 - b0) * c).sqrt())
    };
    let (l0, l1) = (lambda(1.0), lambda(1e-3));
    (0..=n)
        .map(|i| {
            if i == 0 {
                1.0
            } else if i == n {
                1e-3
            } else {
                t_of(l0 + (l1 - l0) * i as f64 / n as f64)
            }
        })
        .collect()
}

/// Max error at t = 1e-3 of a deterministic solver against the exact probability-flow ODE
/// solution for Gaussian data (which keeps each element's standardised value).
fn ode_error(p: &Process, sampler: &str, n: usize) -> f64 {
    let (mu, s) = (0.3f64, 0.5f64);
    let x_t: Vec<f32> = (0..64).map(|i| -2.0 + 4.0 * i as f32 / 63.0).collect();
    let mut den = GaussianData { mu, s, calls: 0 };
    let out = run_from(p, sampler, n, x_t.clone(), Some(logsnr_grid(n)), &mut den);
    let alpha = |t: f64| (-0.25 * t * t * 19.9 - 0.05 * t).exp();
    let sd = |t: f64| (alpha(t).powi(2) * s * s + 1.0 - alpha(t).powi(2)).sqrt();
    let (a1, ae) = (alpha(1.0), alpha(1e-3));
    max_error(
        &out,
        x_t.iter()
            .map(|x| ae * mu + sd(1e-3) * (*x as f64 - a1 * mu) / sd(1.0)),
    )
}

/// A whole run of `sampler` at `n` steps from state `x` (batch 1, seed 0), on `grid` or the
/// sampler's own.
fn run_from(
    p: &Process,
    sampler: &str,
    n: usize,
    x: Vec<f32>,
    grid: Option<Vec<f64>>,
    den: &mut dyn Denoiser,
) -> Vec<f32> {
    let sp = lower_sampler(p, sampler).unwrap();
    let call = SampleCall {
        seed: 0,
        batch: 1,
        state: [(
            "x".to_string(),
            Tensor {
                shape: vec![1, x.len()],
                data: Data::F32(x),
            },
        )]
        .into(),
        grid,
        params: [("steps".to_string(), n as f64)].into(),
        ..SampleCall::default()
    };
    sample(p, &sp, &call, den).unwrap()["x"]
        .f32s()
        .unwrap()
        .to_vec()
}

/// The largest difference between a run's result and the exact one.
fn max_error(got: &[f32], exact: impl Iterator<Item = f64>) -> f64 {
    got.iter()
        .zip(exact)
        .map(|(g, e)| (*g as f64 - e).abs())
        .fold(0.0, f64::max)
}

#[test]
fn dpm_solvers_converge_at_their_order() {
    let p = spec("dpm_solver.diff", "vp_linear");
    for (sampler, order, steps) in [
        ("dpm_solver1", 1.0, [10, 20, 40]),
        ("dpmpp_2m", 2.0, [10, 20, 40]),
        ("dpm_solver3", 3.0, [8, 16, 32]),
    ] {
        let e: Vec<f64> = steps.iter().map(|n| ode_error(&p, sampler, *n)).collect();
        let slopes: Vec<f64> = e.windows(2).map(|w| (w[0] / w[1]).log2()).collect();
        println!("{sampler}: errors {e:?}, slopes {slopes:?}");
        let slope = *slopes.last().unwrap();
        assert!(
            (slope - order).abs() < 0.4,
            "{sampler}: measured order {slope:.2}, claimed {order} (errors {e:?})"
        );
    }
}

/// A denoiser that predicts 0.1 (eps, x0, score) or uniform class probabilities everywhere.
struct Flat;

impl Denoiser for Flat {
    fn denoise(
        &mut self,
        p: &Process,
        call: &diffc::interp::NetCall,
    ) -> Result<Vec<Tensor>, String> {
        let (net, inputs) = (call.net, call.inputs);
        let batch = inputs
            .iter()
            .find(|t| !t.shape.is_empty())
            .map_or(1, |t| t.shape[0]);
        Ok(p.networks[net]
            .outputs
            .iter()
            .map(|o| {
                let f = p.field(o.field);
                let mut shape = vec![batch];
                shape.extend(f.shape.dims.iter().map(|_| 3));
                match o.ty.elem().unwrap() {
                    diffc::typed::Elem::Vec(k) => {
                        shape.push(k as usize);
                        let n = shape.iter().product();
                        Tensor {
                            shape,
                            data: Data::F32(vec![1.0 / k as f32; n]),
                        }
                    }
                    _ => {
                        let n = shape.iter().product();
                        Tensor {
                            shape,
                            data: Data::F32(vec![0.1; n]),
                        }
                    }
                }
            })
            .collect())
    }
}

/// A conditioning field's value for `batch` samples: every dimension of size `size(dim)`,
/// reals at `x`, classes 0, bools false.
fn condition(
    f: &diffc::typed::Field,
    batch: usize,
    size: impl Fn(diffc::typed::DimId) -> usize,
    x: f32,
) -> Tensor {
    let mut shape = vec![batch];
    shape.extend(f.shape.dims.iter().map(|d| size(*d)));
    if let diffc::typed::Elem::Vec(k) = f.elem {
        shape.push(k as usize);
    }
    let n = shape.iter().product();
    let data = match f.elem {
        diffc::typed::Elem::Cat(_) => Data::Class(vec![0; n]),
        diffc::typed::Elem::Bool => Data::Bool(vec![false; n]),
        _ => Data::F32(vec![x; n]),
    };
    Tensor { shape, data }
}

#[test]
fn every_shipped_sampler_runs_in_the_interpreter() {
    let mut ran = 0;
    for p in shipped() {
        {
            for s in &p.samplers {
                let sp = lower_sampler(&p, &s.name)
                    .unwrap_or_else(|e| panic!("{} {}: {e}", p.name, s.name));
                let g = &s.default_grid;
                // Three steps from the noise end, then the final map.
                let grid = vec![g[0], g[1], g[2], g[3.min(g.len() - 1)]];
                let mut state = HashMap::new();
                for f in &p.fields {
                    if sp
                        .conditions
                        .contains(&(p.fields.iter().position(|x| x.name == f.name).unwrap() as u32))
                    {
                        state.insert(f.name.clone(), condition(f, 2, |_| 3, 1.0));
                    }
                }
                let call = SampleCall {
                    seed: 9,
                    batch: 2,
                    sizes: p.dims.iter().map(|d| (d.name.clone(), 3)).collect(),
                    state,
                    grid: Some(grid),
                    ..SampleCall::default()
                };
                let out = sample(&p, &sp, &call, &mut Flat)
                    .unwrap_or_else(|e| panic!("{} {}: {e}", p.name, s.name));
                for f in &p.fields {
                    let Some(t) = out.get(&f.name) else { continue };
                    assert_eq!(t.shape[0], 2);
                    if let Some(v) = t.f32s() {
                        assert!(
                            v.iter().all(|x| x.is_finite()),
                            "{} {}: `{}` is not finite",
                            p.name,
                            s.name,
                            f.name
                        );
                    }
                    if f.shape.sym {
                        let n = 3;
                        let at = |i: usize| -> f64 {
                            match &t.data {
                                Data::F32(v) => v[i] as f64,
                                Data::Bool(v) => v[i] as u8 as f64,
                                Data::Class(v) => v[i] as f64,
                            }
                        };
                        for b in 0..2 {
                            for i in 0..n {
                                assert_eq!(
                                    at(b * 9 + i * n + i),
                                    0.0,
                                    "{} {}: `{}` has a diagonal",
                                    p.name,
                                    s.name,
                                    f.name
                                );
                                for j in 0..n {
                                    assert_eq!(
                                        at(b * 9 + i * n + j),
                                        at(b * 9 + j * n + i),
                                        "{} {}: `{}` is not symmetric",
                                        p.name,
                                        s.name,
                                        f.name
                                    );
                                }
                            }
                        }
                    }
                }
                ran += 1;
            }
        }
    }
    assert!(ran >= 40, "{ran} samplers ran");
}

/// Predicts one-hot class probabilities: class `i % K` for element `i`.
struct OneHot;

impl Denoiser for OneHot {
    fn denoise(
        &mut self,
        p: &Process,
        call: &diffc::interp::NetCall,
    ) -> Result<Vec<Tensor>, String> {
        let (net, inputs) = (call.net, call.inputs);
        let shape = inputs[0].shape.clone();
        let k = *shape.last().unwrap();
        let n: usize = shape.iter().product::<usize>() / k;
        let mut v = vec![0.0f32; n * k];
        for i in 0..n {
            v[i * k + i % k] = 1.0;
        }
        let _ = (p, net);
        Ok(vec![Tensor {
            shape,
            data: Data::F32(v),
        }])
    }
}

#[test]
fn the_original_bfn_step_is_sde_bfn_solver1_with_a_sampled_class() {
    // MATH.md §8.1: z_t = z_s + Δβ (K ê - 1) + sqrt(K Δβ) ε, with the sampled class's one-hot for ê.
    let p = spec("bfn_discrete.diff", "bfn_discrete");
    let (d, k) = (40usize, 27usize);
    let z0: Vec<f32> = (0..d * k)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0)
        .collect();
    let noise: Vec<f32> = (0..d * k)
        .map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0)
        .collect();
    let run = |sampler: &str, draw: &str, t: f64, s: f64| -> Vec<f32> {
        let sp = lower_sampler(&p, sampler).unwrap();
        let call = SampleCall {
            seed: 4,
            batch: 1,
            state: [(
                "z".to_string(),
                Tensor {
                    shape: vec![1, d, k],
                    data: Data::F32(z0.clone()),
                },
            )]
            .into(),
            grid: Some(vec![t, s, 1.0]),
            draws: [(
                draw.to_string(),
                Tensor {
                    shape: vec![1, d, k],
                    data: Data::F32(noise.clone()),
                },
            )]
            .into(),
            stop_after: Some(1),
            ..SampleCall::default()
        };
        sample(&p, &sp, &call, &mut OneHot).unwrap()["z"]
            .f32s()
            .unwrap()
            .to_vec()
    };
    for (t, s) in [(0.0, 0.1), (0.3, 0.45), (0.8, 0.95)] {
        let original = run("original", "y", t, s);
        let sde = run("sde_bfn_solver1", "w", t, s);
        for i in 0..d * k {
            assert!(
                (original[i] - sde[i]).abs() < 1e-5 * (1.0 + sde[i].abs()),
                "t = {t}, element {i}: {} vs {}",
                original[i],
                sde[i]
            );
        }
    }
}

/// One step of `sampler` from t to s (as step 1 of 3: neither first nor last), from state `z`.
fn one_step(
    p: &Process,
    sampler: &str,
    field: &str,
    shape: Vec<usize>,
    z: Vec<f32>,
    (t, s): (f64, f64),
    den: &mut dyn Denoiser,
) -> Vec<f32> {
    let sp = lower_sampler(p, sampler).unwrap();
    let call = SampleCall {
        batch: 1,
        state: [(
            field.to_string(),
            Tensor {
                shape,
                data: Data::F32(z),
            },
        )]
        .into(),
        grid: Some(vec![t, s]),
        single_step: Some(diffc::interp::SingleStep {
            k: 1,
            n: 3,
            ..Default::default()
        }),
        ..SampleCall::default()
    };
    sample(p, &sp, &call, den).unwrap()[field]
        .f32s()
        .unwrap()
        .to_vec()
}

#[test]
fn bfn_solver1_step_coefficients() {
    // MATH.md §8.1, solver time τ = 1 - t: z_τt = ((1-τt)/(1-τs)) z_τs + Kβ₁(1-τt)(τt-τs)(1/K - ê).
    let p = spec("bfn_discrete.diff", "bfn_discrete");
    let (d, k, beta1) = (5usize, 27usize, 0.5625f64);
    let z: Vec<f32> = (0..d * k).map(|i| (i % 7) as f32 * 0.3 - 1.0).collect();
    for (t, s) in [(0.1, 0.2), (0.5, 0.6), (0.89, 0.99)] {
        let got = one_step(
            &p,
            "bfn_solver1",
            "z",
            vec![1, d, k],
            z.clone(),
            (t, s),
            &mut OneHot,
        );
        let (ts, tt) = (1.0 - t, 1.0 - s);
        for i in 0..d * k {
            let e = if i % k == (i / k) % k { 1.0 } else { 0.0 };
            let want = (1.0 - tt) / (1.0 - ts) * z[i] as f64
                + k as f64 * beta1 * (1.0 - tt) * (tt - ts) * (1.0 / k as f64 - e);
            assert!(
                (got[i] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
                "t = {t}: {} vs {want}",
                got[i]
            );
        }
    }
}

#[test]
fn dpm_solver_pp_1_step_coefficients() {
    // MATH.md §1.5: x_s = (σ_s/σ_t) x_t − α_s (e^{−h} − 1) x̂_0, h = λ_s − λ_t.
    let p = spec("dpm_solver.diff", "vp_linear");
    let d = 16usize;
    let x: Vec<f32> = (0..d).map(|i| i as f32 / 8.0 - 1.0).collect();
    let (mu, s0) = (0.2f64, 0.6f64);
    for (t, s) in [(1.0, 0.8), (0.5, 0.3), (0.01, 0.001)] {
        let got = one_step(
            &p,
            "dpmpp_1",
            "x",
            vec![1, d],
            x.clone(),
            (t, s),
            &mut GaussianData {
                mu,
                s: s0,
                calls: 0,
            },
        );
        let alpha = |t: f64| (-0.25 * t * t * 19.9 - 0.05 * t).exp();
        let sigma = |t: f64| (1.0 - alpha(t).powi(2)).sqrt();
        let h = (alpha(s) / sigma(s)).ln() - (alpha(t) / sigma(t)).ln();
        for i in 0..d {
            let xt = x[i] as f64;
            let eps =
                sigma(t) * (xt - alpha(t) * mu) / (alpha(t).powi(2) * s0 * s0 + sigma(t).powi(2));
            let x0 = (xt - sigma(t) * eps) / alpha(t);
            let want = sigma(s) / sigma(t) * xt - alpha(s) * (-h).exp_m1() * x0;
            assert!(
                (got[i] as f64 - want).abs() < 2e-5 * (1.0 + want.abs()),
                "t = {t}: {} vs {want}",
                got[i]
            );
        }
    }
}

/// Returns the same prediction for every element.
struct Constant(f32);

impl Denoiser for Constant {
    fn denoise(
        &mut self,
        _: &Process,
        call: &diffc::interp::NetCall,
    ) -> Result<Vec<Tensor>, String> {
        let inputs = call.inputs;
        let shape = inputs[0].shape.clone();
        let n = shape.iter().product();
        Ok(vec![Tensor {
            shape,
            data: Data::F32(vec![self.0; n]),
        }])
    }
}

#[test]
fn the_ddpm_ancestral_step_draws_the_posterior() {
    // x_{t-1} ~ N(c0 x̂_0 + ct x_t, β̃_t) with x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t), over 2·10^5 draws.
    let p = spec("ddpm.diff", "ddpm_linear");
    let d = 200_000;
    let (xt, e, t) = (0.4f64, 0.25f64, 300usize);
    let got = one_step(
        &p,
        "ancestral",
        "x",
        vec![1, d],
        vec![xt as f32; d],
        (t as f64, (t - 1) as f64),
        &mut Constant(e as f32),
    );
    let ab = |t: usize| {
        (1..=t)
            .map(|s| 1.0 - (1e-4 + (0.02 - 1e-4) * (s - 1) as f64 / 999.0))
            .product::<f64>()
    };
    let beta = 1e-4 + (0.02 - 1e-4) * (t - 1) as f64 / 999.0;
    let x0 = (xt - (1.0 - ab(t)).sqrt() * e) / ab(t).sqrt();
    let mean = ab(t - 1).sqrt() * beta / (1.0 - ab(t)) * x0
        + (1.0 - beta).sqrt() * (1.0 - ab(t - 1)) / (1.0 - ab(t)) * xt;
    let var = (1.0 - ab(t - 1)) / (1.0 - ab(t)) * beta;
    let n = d as f64;
    let m = got.iter().map(|x| *x as f64).sum::<f64>() / n;
    let v = got.iter().map(|x| (*x as f64 - m).powi(2)).sum::<f64>() / (n - 1.0);
    assert!(
        (m - mean).abs() < 5.0 * (var / n).sqrt(),
        "mean {m} vs {mean}"
    );
    assert!(
        (v - var).abs() < 5.0 * var * (2.0 / n).sqrt(),
        "variance {v} vs {var}"
    );
}

/// Returns fixed class probabilities for every element.
struct FixedProbs(Vec<f32>);

impl Denoiser for FixedProbs {
    fn denoise(
        &mut self,
        _: &Process,
        call: &diffc::interp::NetCall,
    ) -> Result<Vec<Tensor>, String> {
        let inputs = call.inputs;
        let mut shape = inputs[0].shape.clone();
        shape.push(self.0.len());
        let n: usize = shape.iter().product::<usize>() / self.0.len();
        Ok(vec![Tensor {
            shape,
            data: Data::F32(
                self.0
                    .iter()
                    .cycle()
                    .take(n * self.0.len())
                    .cloned()
                    .collect(),
            ),
        }])
    }
}

#[test]
fn the_d3pm_ancestral_step_draws_its_mixture() {
    // p_θ(x_{t-1} = j | x_t) ∝ Σ_c p̂(c) Q_t[j, x_t] Qbar_{t-1}[c, j] (MATH.md §2), from the schedule tables.
    let p = spec("d3pm.diff", "d3pm_absorbing");
    // The interpreter evaluates 28 posteriors per element: this is its slowest test.
    let (d, k, t, xt) = (100_000usize, 28usize, 400usize, 27u32);
    let probs: Vec<f32> = {
        let raw: Vec<f32> = (0..k).map(|c| 1.0 + (c * 7 % 5) as f32).collect();
        let s: f32 = raw.iter().sum();
        raw.iter().map(|x| x / s).collect()
    };
    let sp = lower_sampler(&p, "ancestral").unwrap();
    let call = SampleCall {
        seed: 8,
        batch: 1,
        state: [(
            "x".to_string(),
            Tensor {
                shape: vec![1, d],
                data: Data::Class(vec![xt; d]),
            },
        )]
        .into(),
        grid: Some(vec![t as f64, (t - 1) as f64]),
        single_step: Some(diffc::interp::SingleStep {
            k: 0,
            n: 400,
            ..Default::default()
        }),
        ..SampleCall::default()
    };
    let out = sample(&p, &sp, &call, &mut FixedProbs(probs.clone())).unwrap();
    let Data::Class(x) = &out["x"].data else {
        panic!()
    };
    let mat = |name: &str, t: usize| -> Vec<f64> {
        match p.schedules.iter().find(|s| s.name == name).unwrap().table[t]
            .clone()
            .unwrap()
        {
            diffc::typed::Value::Mat(_, m) => m,
            v => panic!("{v:?}"),
        }
    };
    let (q, qbar) = (mat("Q", t), mat("Qbar", t - 1));
    let mut want: Vec<f64> = (0..k)
        .map(|j| {
            (0..k)
                .map(|c| probs[c] as f64 * q[j * k + xt as usize] * qbar[c * k + j])
                .sum()
        })
        .collect();
    let z: f64 = want.iter().sum();
    want.iter_mut().for_each(|w| *w /= z);
    let n = d as f64;
    for (j, w) in want.iter().enumerate() {
        let got = x.iter().filter(|c| **c as usize == j).count() as f64;
        assert!(
            (got - n * w).abs() <= 5.0 * (n * w * (1.0 - w)).sqrt() + 1e-9,
            "class {j}: {got} draws, expected {}",
            n * w
        );
    }
}

#[test]
fn the_ncsn_langevin_step_adds_independent_noise_at_every_inner_step() {
    // With a zero score, R inner steps add sqrt(α_i) z R times: the variance is R α_i, α_i = ε σ_i²/σ_L².
    let p = spec("ncsn.diff", "ncsn");
    let sp = lower_sampler(&p, "annealed_langevin").unwrap();
    let (d, r, level) = (100_000usize, 4.0f64, 3usize);
    let call = SampleCall {
        seed: 12,
        batch: 1,
        state: [(
            "x".to_string(),
            Tensor {
                shape: vec![1, d],
                data: Data::F32(vec![0.0; d]),
            },
        )]
        .into(),
        grid: Some(vec![level as f64, level as f64 + 1.0]),
        params: [("steps_per_level".to_string(), r)].into(),
        single_step: Some(diffc::interp::SingleStep {
            k: 2,
            n: 10,
            ..Default::default()
        }),
        ..SampleCall::default()
    };
    let out = sample(&p, &sp, &call, &mut Constant(0.0)).unwrap();
    let x = out["x"].f32s().unwrap();
    let sigma = |i: usize| 1.0f64 * (0.01f64 / 1.0).powf((i as f64 - 1.0) / 9.0);
    let alpha = 2e-5 * sigma(level).powi(2) / 0.01f64.powi(2);
    let n = d as f64;
    let m = x.iter().map(|v| *v as f64).sum::<f64>() / n;
    let v = x.iter().map(|v| (*v as f64 - m).powi(2)).sum::<f64>() / (n - 1.0);
    let want = r * alpha;
    assert!(m.abs() < 5.0 * (want / n).sqrt(), "mean {m}");
    assert!(
        (v - want).abs() < 5.0 * want * (2.0 / n).sqrt(),
        "variance {v}, expected {want} (noise repeated across inner steps would give {})",
        r * r * alpha
    );
}

#[test]
fn the_original_bfn_step_draws_the_sender_distribution() {
    // y ~ N(a (K e_k - 1), a K), a = β₁(s² - t²), with k the class the network is sure of.
    let p = spec("bfn_discrete.diff", "bfn_discrete");
    let sp = lower_sampler(&p, "original").unwrap();
    let (d, k, beta1) = (4_000usize, 27usize, 0.5625f64);
    let (t, s) = (0.3f64, 0.4f64);
    let call = SampleCall {
        seed: 5,
        batch: 1,
        state: [(
            "z".to_string(),
            Tensor {
                shape: vec![1, d, k],
                data: Data::F32(vec![0.0; d * k]),
            },
        )]
        .into(),
        grid: Some(vec![t, s]),
        single_step: Some(diffc::interp::SingleStep {
            k: 3,
            n: 10,
            ..Default::default()
        }),
        ..SampleCall::default()
    };
    let out = sample(&p, &sp, &call, &mut OneHot).unwrap();
    let z = out["z"].f32s().unwrap();
    let a = beta1 * (s * s - t * t);
    let var = a * k as f64;
    // Pool the sure class and the other classes separately: means a(K - 1) and -a.
    for (sure, mean) in [(true, a * (k as f64 - 1.0)), (false, -a)] {
        let xs: Vec<f64> = (0..d * k)
            .filter(|i| ((i % k) == (i / k) % k) == sure)
            .map(|i| z[i] as f64)
            .collect();
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
        assert!(
            (m - mean).abs() < 5.0 * (var / n).sqrt(),
            "sure = {sure}: mean {m} vs {mean}"
        );
        assert!(
            (v - var).abs() < 5.0 * var * (2.0 / n).sqrt(),
            "sure = {sure}: variance {v} vs {var}"
        );
    }
}

#[test]
fn the_ddim_step_with_eta_one_draws_its_noise() {
    // x_s = α_s x̂_0 + sqrt(σ_s² - η_t²) ε̂ + η_t z, η_t = η sqrt((1-ᾱ_s)/(1-ᾱ_t) (1 - ᾱ_t/ᾱ_s)) (MATH.md §1.4).
    let p = spec("ddpm.diff", "ddpm_linear");
    let sp = lower_sampler(&p, "ddim").unwrap();
    let d = 100_000usize;
    let (t, s) = (600usize, 580usize);
    let call = SampleCall {
        seed: 6,
        batch: 1,
        state: [(
            "x".to_string(),
            Tensor {
                shape: vec![1, d],
                data: Data::F32(vec![0.2; d]),
            },
        )]
        .into(),
        grid: Some(vec![t as f64, s as f64]),
        params: [("eta".to_string(), 1.0)].into(),
        single_step: Some(diffc::interp::SingleStep {
            k: 10,
            n: 50,
            ..Default::default()
        }),
        ..SampleCall::default()
    };
    let out = sample(&p, &sp, &call, &mut Constant(0.3)).unwrap();
    let x = out["x"].f32s().unwrap();
    let ab = |t: usize| {
        (1..=t)
            .map(|s| 1.0 - (1e-4 + (0.02 - 1e-4) * (s - 1) as f64 / 999.0))
            .product::<f64>()
    };
    let eta2 = (1.0 - ab(s)) / (1.0 - ab(t)) * (1.0 - ab(t) / ab(s));
    let x0 = (0.2 - (1.0 - ab(t)).sqrt() * 0.3) / ab(t).sqrt();
    let mean = ab(s).sqrt() * x0 + (1.0 - ab(s) - eta2).sqrt() * 0.3;
    let n = d as f64;
    let m = x.iter().map(|v| *v as f64).sum::<f64>() / n;
    let v = x.iter().map(|v| (*v as f64 - m).powi(2)).sum::<f64>() / (n - 1.0);
    assert!(
        (m - mean).abs() < 5.0 * (eta2 / n).sqrt() + 1e-6,
        "mean {m} vs {mean}"
    );
    assert!(
        (v - eta2).abs() < 5.0 * eta2 * (2.0 / n).sqrt(),
        "variance {v} vs {eta2}"
    );
}

/// Predicts 0.1 (or uniform class probabilities) shaped like the network's first input.
struct LikeInput;

impl Denoiser for LikeInput {
    fn denoise(
        &mut self,
        p: &Process,
        call: &diffc::interp::NetCall,
    ) -> Result<Vec<Tensor>, String> {
        let (net, inputs) = (call.net, call.inputs);
        let o = &p.networks[net].outputs[0];
        let shape = inputs[0].shape.clone();
        let n = shape.iter().product();
        let v = match o.ty.elem().unwrap() {
            diffc::typed::Elem::Vec(k) => 1.0 / k as f32,
            _ => 0.1,
        };
        Ok(vec![Tensor {
            shape,
            data: Data::F32(vec![v; n]),
        }])
    }
}

/// Every sampler step whose draws are Gaussian, outside inner loops and not reduced (those are
/// tested one by one above): the step is affine in
/// each supplied standard normal, and with the generator's draws the residual from the
/// noiseless step, divided by its coefficient, has mean 0 and variance 1 over at least 10^5
/// elements (5 standard errors).
#[test]
fn every_gaussian_step_draws_standard_normal_noise() {
    let mut checked = 0;
    for p in shipped() {
        {
            for s in &p.samplers {
                let sp = lower_sampler(&p, &s.name).unwrap();
                // The draws and reductions of the step itself (not of init or finalize).
                let step_nodes = diffc::ir::reachable(&sp.prog, &sp.step);
                let step_sites: Vec<u32> = step_nodes
                    .iter()
                    .filter_map(|n| match sp.prog.node(*n).node {
                        diffc::ir::Node::Draw { site, .. } => Some(site),
                        _ => None,
                    })
                    .collect();
                let normal_sites: Vec<String> = step_sites
                    .iter()
                    .map(|s| &sp.prog.draws[*s as usize])
                    .filter(|d| d.family == diffc::typed::Family::Normal)
                    .map(|d| d.input().to_string())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let has_loop = format!("{:?}", sp.step).contains("Repeat");
                let discrete = step_sites
                    .iter()
                    .any(|s| sp.prog.draws[*s as usize].family != diffc::typed::Family::Normal);
                // A step that reads its noise through a reduction (a corrector's ‖z‖) is not affine in it.
                let reduces = step_nodes
                    .iter()
                    .any(|n| matches!(sp.prog.node(*n).node, diffc::ir::Node::Reduce(..)));
                if normal_sites.is_empty() || has_loop || discrete || reduces {
                    continue;
                }
                // State: every field the step updates, at 0.3; sizes chosen for 10^5 elements.
                let mut state = HashMap::new();
                let mut sizes = HashMap::new();
                let mut field = None;
                for f in &p.fields {
                    // A per-sample label (ddpm_cfg's `y`): class 0.
                    if f.shape.dims.is_empty()
                        && sp
                            .conditions
                            .iter()
                            .any(|c| p.fields[*c as usize].name == f.name)
                    {
                        state.insert(f.name.clone(), condition(f, 1, |_| 1, 0.0));
                        continue;
                    }
                    if !matches!(
                        f.elem,
                        diffc::typed::Elem::Real | diffc::typed::Elem::Vec(_)
                    ) {
                        continue;
                    }
                    for d in &f.shape.dims {
                        sizes.insert(
                            p.dims[d.index()].name.clone(),
                            if f.shape.dims.len() > 1 { 320 } else { 100_000 },
                        );
                    }
                    let mut shape = vec![1];
                    shape.extend(f.shape.dims.iter().map(|d| sizes[&p.dims[d.index()].name]));
                    if let diffc::typed::Elem::Vec(k) = f.elem {
                        shape.push(k as usize);
                    }
                    let n = shape.iter().product();
                    state.insert(
                        f.name.clone(),
                        Tensor {
                            shape,
                            data: Data::F32(vec![0.3; n]),
                        },
                    );
                    field.get_or_insert(f.name.clone());
                }
                let g = &s.default_grid;
                // The updated field's value (not a label's): what history and draws are shaped like.
                let like = state[field.as_ref().expect("a real field")].clone();
                let run = |draws: HashMap<String, Tensor>| -> HashMap<String, Tensor> {
                    let call = SampleCall {
                        seed: 31,
                        batch: 1,
                        sizes: sizes.clone(),
                        state: state.clone(),
                        grid: Some(vec![g[1], g[2]]),
                        draws,
                        single_step: Some(diffc::interp::SingleStep {
                            k: 1,
                            n: g.len() - 1,
                            r: Some(g[0]),
                            // A multistep sampler's history: values shaped like the state.
                            prev: sp
                                .history_names
                                .iter()
                                .map(|h| (h.clone(), like.clone()))
                                .collect(),
                        }),
                        ..SampleCall::default()
                    };
                    sample(&p, &sp, &call, &mut LikeInput)
                        .unwrap_or_else(|e| panic!("{} {}: {e}", p.name, s.name))
                };
                let shape_of = |name: &str| {
                    Some(like.shape.clone())
                        .filter(|_| !name.is_empty())
                        .unwrap()
                };
                let fill = |v: f32| -> HashMap<String, Tensor> {
                    normal_sites
                        .iter()
                        .map(|n| {
                            (
                                n.clone(),
                                Tensor {
                                    shape: shape_of(n),
                                    data: Data::F32(vec![v; shape_of(n).iter().product()]),
                                },
                            )
                        })
                        .collect()
                };
                // The field the step updates.
                fn set_field(ops: &[diffc::ir::Op]) -> Option<u32> {
                    ops.iter().find_map(|op| match op {
                        diffc::ir::Op::Set { field, .. } => Some(*field),
                        diffc::ir::Op::If {
                            then, otherwise, ..
                        } => set_field(otherwise).or_else(|| set_field(then)),
                        diffc::ir::Op::Repeat { body, .. } => set_field(body),
                        _ => None,
                    })
                }
                let target = set_field(&sp.step).map_or(field.clone().unwrap(), |f| {
                    p.fields[f as usize].name.clone()
                });
                let x0 = run(fill(0.0))[&target].f32s().unwrap().to_vec();
                let mut c2 = vec![0.0f64; x0.len()];
                for site in &normal_sites {
                    let mut d = fill(0.0);
                    let n = shape_of(site).iter().product();
                    d.insert(
                        site.clone(),
                        Tensor {
                            shape: shape_of(site),
                            data: Data::F32(vec![1.0; n]),
                        },
                    );
                    let x1 = run(d)[&target].f32s().unwrap().to_vec();
                    for i in 0..x0.len() {
                        c2[i] += ((x1[i] - x0[i]) as f64).powi(2);
                    }
                }
                let x = run(HashMap::new())[&target].f32s().unwrap().to_vec();
                let z: Vec<f64> = (0..x.len())
                    .filter(|i| c2[*i] > 1e-10)
                    .map(|i| (x[i] - x0[i]) as f64 / c2[i].sqrt())
                    .collect();
                let n = z.len() as f64;
                if n == 0.0 {
                    continue; // This step adds no noise at this point of its grid (a deterministic last step).
                }
                assert!(n >= 1e5, "{} {}: {n} noisy elements", p.name, s.name);
                let m = z.iter().sum::<f64>() / n;
                let v = z.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
                assert!(m.abs() < 5.0 / n.sqrt(), "{} {}: mean {m}", p.name, s.name);
                assert!(
                    (v - 1.0).abs() < 5.0 * (2.0 / n).sqrt() + 1e-3,
                    "{} {}: variance {v}",
                    p.name,
                    s.name
                );
                println!("{} {}: noise checked over {n} elements", p.name, s.name);
                checked += 1;
            }
        }
    }
    println!("{checked} Gaussian sampler steps checked against their noise");
    assert!(checked >= 8, "{checked}");
}

#[test]
fn the_edp_gnn_langevin_step_draws_symmetric_noise() {
    // With a constant score c, R inner steps give A + R α c + ε sqrt(2α) Σ z: off the diagonal the
    // variance is R ε² 2α, α = r σ_t² (MATH.md §3); the diagonal stays empty.
    let p = spec("edp_gnn.diff", "edp_gnn");
    let sp = lower_sampler(&p, "annealed_langevin").unwrap();
    let (n, r, t) = (460usize, 3.0f64, 4usize);
    let call = SampleCall {
        seed: 14,
        batch: 1,
        state: [(
            "A".to_string(),
            Tensor {
                shape: vec![1, n, n],
                data: Data::F32(vec![0.0; n * n]),
            },
        )]
        .into(),
        grid: Some(vec![t as f64, t as f64 - 1.0]),
        params: [("steps".to_string(), r)].into(),
        single_step: Some(diffc::interp::SingleStep {
            k: 2,
            n: 6,
            ..Default::default()
        }),
        ..SampleCall::default()
    };
    let out = sample(&p, &sp, &call, &mut Constant(0.0)).unwrap();
    let a = out["A"].f32s().unwrap();
    let sigma = [0.1, 0.2, 0.4, 0.6, 0.8, 1.6][t - 1];
    let alpha = 0.01 * sigma * sigma;
    let want = r * 0.25 * 2.0 * alpha;
    let mut xs = Vec::new();
    for i in 0..n {
        assert_eq!(a[i * n + i], 0.0);
        for j in i + 1..n {
            assert_eq!(a[i * n + j], a[j * n + i]);
            xs.push(a[i * n + j] as f64);
        }
    }
    let m = xs.len() as f64;
    assert!(m >= 1e5);
    let mean = xs.iter().sum::<f64>() / m;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (m - 1.0);
    assert!(mean.abs() < 5.0 * (want / m).sqrt(), "mean {mean}");
    assert!(
        (var - want).abs() < 5.0 * want * (2.0 / m).sqrt(),
        "variance {var} vs {want}"
    );
}

#[test]
fn the_edge_step_redraws_pairs_of_active_nodes() {
    // From the empty graph, node i is active with π = 1 - (1 - p_t)^d0 (degree 0), and a pair of
    // active nodes gets an edge with the network's q: P(edge) = π² q. The bound allows for the
    // pairs sharing nodes: the count of active nodes m ~ Binomial(n, π) drives the variance.
    let p = spec("edge.diff", "edge");
    let sp = lower_sampler(&p, "degree_guided").unwrap();
    let (n, t, d0, q) = (460usize, 10usize, 2.0f32, 0.5f32);
    let call = SampleCall {
        seed: 21,
        batch: 1,
        state: [
            (
                "A".to_string(),
                Tensor {
                    shape: vec![1, n, n],
                    data: Data::Bool(vec![false; n * n]),
                },
            ),
            (
                "d0".to_string(),
                Tensor {
                    shape: vec![1, n],
                    data: Data::F32(vec![d0; n]),
                },
            ),
        ]
        .into(),
        grid: Some(vec![t as f64, t as f64 - 1.0]),
        single_step: Some(diffc::interp::SingleStep {
            k: 54,
            n: 64,
            ..Default::default()
        }),
        ..SampleCall::default()
    };
    let out = sample(&p, &sp, &call, &mut Constant(q)).unwrap();
    let Data::Bool(a) = &out["A"].data else {
        panic!()
    };
    let edges = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .filter(|(i, j)| a[i * n + j])
        .count() as f64;
    let p_re = p.schedules.iter().find(|s| s.name == "p_re").unwrap().table[t]
        .as_ref()
        .unwrap()
        .as_real()
        .unwrap();
    let pi = 1.0 - (1.0 - p_re).powf(d0 as f64);
    let pairs = (n * (n - 1) / 2) as f64;
    let want = pairs * pi * pi * q as f64;
    // sd of m(m-1)/2 · q from m, plus the binomial spread of the edges given m.
    let sd_m = (n as f64 * pi * (1.0 - pi)).sqrt();
    let sd = (n as f64 * pi) * sd_m * q as f64 + (want * (1.0 - q as f64)).sqrt();
    assert!(
        (edges - want).abs() < 5.0 * sd,
        "{edges} edges, expected {want} ± {sd}"
    );
}

/// DiGress's network: fixed class probabilities for the nodes and for the edges.
struct DigressNet(Vec<f32>, Vec<f32>);

impl Denoiser for DigressNet {
    fn denoise(
        &mut self,
        _: &Process,
        call: &diffc::interp::NetCall,
    ) -> Result<Vec<Tensor>, String> {
        let inputs = call.inputs;
        let fill = |shape: &[usize], probs: &[f32]| {
            let mut s = shape.to_vec();
            s.push(probs.len());
            let n: usize = shape.iter().product();
            Tensor {
                shape: s,
                data: Data::F32(
                    probs
                        .iter()
                        .cycle()
                        .take(n * probs.len())
                        .cloned()
                        .collect(),
                ),
            }
        };
        Ok(vec![
            fill(&inputs[0].shape, &self.0),
            fill(&inputs[1].shape, &self.1),
        ])
    }
}

#[test]
fn the_digress_step_draws_its_mixtures() {
    // p(z_{t-1} = j | z_t) ∝ Σ_c p̂(c) q(j | z_t, x = c), renormalised (MATH.md §5), per node and per edge,
    // with q from the spec's own posterior evaluated in f64.
    use diffc::check::eval::{Env, Evaluator};
    use diffc::typed::{ExprKind, FieldRef, Value, Version};
    let p = spec("digress.diff", "digress");
    let sp = lower_sampler(&p, "ancestral").unwrap();
    // n = 16 nodes in 6,300 graphs: 100,800 node draws and 756,000 edge draws.
    let (n, b, t, xt, et) = (16usize, 6_300usize, 200usize, 2u32, 1u32);
    let (px, pe) = (vec![0.1f32, 0.2, 0.3, 0.4], vec![0.4f32, 0.3, 0.2, 0.1]);
    let call = SampleCall {
        seed: 40,
        batch: b,
        state: [
            (
                "X".to_string(),
                Tensor {
                    shape: vec![b, n],
                    data: Data::Class(vec![xt; b * n]),
                },
            ),
            (
                "E".to_string(),
                Tensor {
                    shape: vec![b, n, n],
                    // Every pair at class `et`, the diagonal empty.
                    data: Data::Class(
                        (0..b * n * n)
                            .map(|k| if (k / n) % n == k % n { 0 } else { et })
                            .collect(),
                    ),
                },
            ),
        ]
        .into(),
        grid: Some(vec![t as f64, t as f64 - 1.0]),
        single_step: Some(diffc::interp::SingleStep {
            k: 10,
            n: 501,
            ..Default::default()
        }),
        ..SampleCall::default()
    };
    let out = sample(&p, &sp, &call, &mut DigressNet(px.clone(), pe.clone())).unwrap();
    for (field, z, probs, keep) in [("X", xt, &px, None), ("E", et, &pe, Some(n))] {
        let k = p
            .posteriors
            .iter()
            .find(|k| p.field(k.target.field).name == field)
            .unwrap();
        let ExprKind::Dist { params, .. } = &p.expr(k.dist).kind else {
            panic!()
        };
        let f = k.target.field;
        let q = |c: usize| -> Vec<f64> {
            let fields = vec![
                (
                    FieldRef {
                        field: f,
                        version: Version::T,
                    },
                    Value::Real(z as f64),
                ),
                (
                    FieldRef {
                        field: f,
                        version: Version::Data,
                    },
                    Value::Real(c as f64),
                ),
            ];
            match Evaluator::new(&p)
                .eval(
                    params[0],
                    &Env {
                        t: t as f64,
                        s: Some(t as f64 - 1.0),
                        fields,
                        ..Env::default()
                    },
                )
                .unwrap()
            {
                Value::Vec(v) => v,
                v => panic!("{v:?}"),
            }
        };
        let mut want = [0.0f64; 4];
        for (c, pc) in probs.iter().enumerate() {
            for (j, qj) in q(c).iter().enumerate() {
                want[j] += *pc as f64 * qj;
            }
        }
        let total: f64 = want.iter().sum();
        want.iter_mut().for_each(|w| *w /= total);
        let Data::Class(xs) = &out[field].data else {
            panic!()
        };
        let draws: Vec<u32> = match keep {
            None => xs.clone(),
            Some(n) => (0..b)
                .flat_map(|g| (0..n).flat_map(move |i| (i + 1..n).map(move |j| (g, i, j))))
                .map(|(g, i, j)| xs[(g * n + i) * n + j])
                .collect(),
        };
        let m = draws.len() as f64;
        for (j, w) in want.iter().enumerate() {
            let got = draws.iter().filter(|x| **x as usize == j).count() as f64;
            assert!(
                (got - m * w).abs() <= 5.0 * (m * w * (1.0 - w)).sqrt() + 1e-9,
                "{field} class {j}: {got} vs {}",
                m * w
            );
        }
    }
}

#[test]
fn the_predictor_corrector_steps_draw_their_noise() {
    // With a constant score, the corrector's step ε = 2 a (r ‖z‖/‖s‖)² is ≈ 2 a r² / s² (‖z‖² ≈ d), and
    // the step adds (c sqrt(2ε)) z + sqrt(v) z2: VP c = 2 - sqrt(1 - b), v = b = β(t)(t - s), a = 1 - b;
    // VE c = 1, v = σ_t² - σ_s², a = 1 (MATH.md §1.3).
    let d = 100_000usize;
    for (file, process, net_eps) in [
        ("vp_sde.diff", "vp_sde", true),
        ("ve_sde.diff", "ve_sde", false),
    ] {
        let p = spec(file, process);
        let sp = lower_sampler(&p, "predictor_corrector").unwrap();
        let (t, s) = (0.6f64, 0.599f64);
        let call = SampleCall {
            seed: 3,
            batch: 1,
            state: [(
                "x".to_string(),
                Tensor {
                    shape: vec![1, d],
                    data: Data::F32(vec![0.1; d]),
                },
            )]
            .into(),
            grid: Some(vec![t, s]),
            single_step: Some(diffc::interp::SingleStep {
                k: 5,
                n: 1000,
                ..Default::default()
            }),
            ..SampleCall::default()
        };
        let pred = 0.2f64;
        let out = sample(&p, &sp, &call, &mut Constant(pred as f32)).unwrap();
        let x = out["x"].f32s().unwrap();
        let snr = 0.16f64;
        let (c, v, score, a) = if net_eps {
            let beta = |t: f64| 0.1 + t * 19.9;
            let alpha = |t: f64| (-0.25 * t * t * 19.9 - 0.05 * t).exp();
            let b = beta(t) * (t - s);
            let sigma = (1.0 - alpha(t).powi(2)).sqrt();
            (2.0 - (1.0 - b).sqrt(), b, -pred / sigma, 1.0 - b)
        } else {
            let sigma = |t: f64| 0.01 * (50.0f64 / 0.01).powf(t);
            (1.0, sigma(t).powi(2) - sigma(s).powi(2), pred, 1.0)
        };
        let eps = 2.0 * a * (snr / score.abs()).powi(2);
        let want = c * c * 2.0 * eps + v;
        let n = d as f64;
        let m = x.iter().map(|x| *x as f64).sum::<f64>() / n;
        let var = x.iter().map(|x| (*x as f64 - m).powi(2)).sum::<f64>() / (n - 1.0);
        // 5 standard errors, plus the spread of ‖z‖²/d around 1 in ε.
        let tol = 5.0 * want * (2.0 / n).sqrt() + c * c * 2.0 * eps * 5.0 * (2.0 / n).sqrt();
        assert!(
            (var - want).abs() < tol,
            "{process}: variance {var} vs {want}"
        );
    }
}

const GRIDS: &str =
    "process vp { const b0 = 0.1  const b1 = 20  dim d  field x : real[d]  time t : [1e-3, 1]
  schedule alpha(t) = exp(-0.25 * t^2 * (b1 - b0) - 0.5 * t * b0)
  forward x_t | x_0 ~ Normal(alpha(t) * x_0, 1 - alpha(t)^2)
  prior x_T ~ Normal(0, 1)
  network eps_hat(x_t, t) -> eps(x)
  sampler k(steps = 8, rho = 7) { grid = karras(steps, rho)  step { x = x - eps_hat(x, t).x0 * 0 } } }";

#[test]
fn an_overridden_grid_is_the_default_grid_at_the_default_steps() {
    use diffc::interp::sampler_grid;
    use diffc::typed::Grid;
    let (module, diags) = diffc::check::check_source(GRIDS);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let mut processes = module.unwrap().processes;
    processes.extend(shipped());
    let mut kinds = Vec::new();
    for p in &processes {
        for s in &p.samplers {
            let Some(prm) = s.params.iter().find(|x| x.name == "steps" && x.overridable) else {
                continue;
            };
            let default = diffc::check::eval::Evaluator::new(p)
                .real(prm.value, &Env::default())
                .unwrap();
            let with = |n: f64| sampler_grid(p, &s.name, &HashMap::from([("steps".into(), n)]));
            let here = format!("{} / {}", p.name, s.name);
            // The same steps: the same times, to the bit.
            let same = with(default).unwrap_or_else(|e| panic!("{here}: {e}"));
            assert_eq!(same, s.default_grid, "{here}");
            let other = default + 3.0;
            match s.grid {
                Grid::Uniform(_)
                | Grid::Quadratic(_)
                | Grid::LogSnr(_)
                | Grid::Karras { .. }
                | Grid::Linspace(_) => {
                    let g = with(other).unwrap_or_else(|e| panic!("{here}: {e}"));
                    assert_eq!(g.len(), s.default_grid.len() + 3, "{here}");
                    assert_eq!(g[0], s.default_grid[0], "{here}");
                    // (A quadratic grid's last time is the data end squared from its root.)
                    let (a, b) = (g[g.len() - 1], s.default_grid[s.default_grid.len() - 1]);
                    assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{here}: {a} {b}");
                    kinds.push(std::mem::discriminant(&s.grid));
                }
                // An explicit list keeps the length it had when checked.
                Grid::List(_) => {
                    let e = with(other).unwrap_err();
                    assert!(
                        e.contains("cannot take another number of steps"),
                        "{here}: {e}"
                    );
                }
                Grid::All => {}
            }
        }
    }
    kinds.sort_by_key(|d| format!("{d:?}"));
    kinds.dedup();
    assert_eq!(
        kinds.len(),
        5,
        "uniform, quadratic, log-SNR, Karras and linspace grids are all tested"
    );
}

#[test]
fn more_steps_than_discrete_times_is_an_error() {
    let p = spec("ddpm.diff", "ddpm_linear");
    let e = diffc::interp::sampler_grid(&p, "ddim", &HashMap::from([("steps".into(), 2000.0)]))
        .unwrap_err();
    assert!(e.contains("does not move toward the data"), "{e}");
}

/// Max error at t = 0 of a flow-matching sampler against the exact flow for Gaussian data
/// N(mu, s²) per element: x_t = (1 − t) mu + sqrt((1 − t)² s² + t²) z keeps z, so x_1 = z maps
/// to mu + s z.
fn flow_error(p: &Process, sampler: &str, n: usize) -> f64 {
    let (mu, s) = (0.3f64, 0.5f64);
    let x_1: Vec<f32> = (0..64).map(|i| -2.0 + 4.0 * i as f32 / 63.0).collect();
    let mut den = GaussianData { mu, s, calls: 0 };
    let out = run_from(p, sampler, n, x_1.clone(), None, &mut den);
    max_error(&out, x_1.iter().map(|z| mu + s * *z as f64))
}

#[test]
fn flow_matching_samplers_converge_at_their_order() {
    // MATH.md §1.6b: Euler is first order, the midpoint rule at least second order (on this
    // linear flow its h² term cancels and it measures 3.0); `euler_x0` is the Euler step
    // written through the compiler's velocity conversions.
    let p = spec("flow_matching.diff", "flow_matching");
    for (sampler, order) in [("euler", 1.0), ("euler_x0", 1.0), ("midpoint", 2.0)] {
        let e: Vec<f64> = [8, 16, 32]
            .iter()
            .map(|n| flow_error(&p, sampler, *n))
            .collect();
        let slopes: Vec<f64> = e.windows(2).map(|w| (w[0] / w[1]).log2()).collect();
        let slope = *slopes.last().unwrap();
        assert!(
            slope > order - 0.3 && (order > 1.0 || slope < order + 0.3),
            "{sampler}: measured order {slope:.2}, claimed {order} (errors {e:?})"
        );
    }
}

/// A velocity field u(x, t) = 0.5 x + t, known in closed form.
struct LinearVelocity;

impl Denoiser for LinearVelocity {
    fn denoise(
        &mut self,
        p: &Process,
        call: &diffc::interp::NetCall,
    ) -> Result<Vec<Tensor>, String> {
        let n = &p.networks[call.net];
        let ti = n
            .inputs
            .iter()
            .position(|i| matches!(i, NetInput::Time { .. }))
            .unwrap();
        let t = call.inputs[ti].f32s().unwrap()[0];
        let x = &call.inputs[0];
        let u = x.f32s().unwrap().iter().map(|x| 0.5 * x + t).collect();
        Ok(vec![Tensor {
            shape: x.shape.clone(),
            data: Data::F32(u),
        }])
    }
}

#[test]
fn flow_matching_step_coefficients() {
    // MATH.md §1.6b: Euler x_s = x + (s − t) u(x, t); midpoint m = (t + s)/2,
    // x_m = x + (m − t) u(x, t), x_s = x + (s − t) u(x_m, m); x̂_0 = x − t u and
    // ε̂ = x + (1 − t) u make (1 − s) x̂_0 + s ε̂ the Euler step.
    let p = spec("flow_matching.diff", "flow_matching");
    let x: Vec<f32> = (0..7).map(|i| i as f32 * 0.4 - 1.3).collect();
    let u = |x: f64, t: f64| 0.5 * x + t;
    for (t, s) in [(1.0, 0.9), (0.5, 0.25), (0.1, 0.0)] {
        for sampler in ["euler", "euler_x0", "midpoint"] {
            let got = one_step(
                &p,
                sampler,
                "x",
                vec![1, 7],
                x.clone(),
                (t, s),
                &mut LinearVelocity,
            );
            for (g, &x) in got.iter().zip(&x) {
                let x = x as f64;
                let want = match sampler {
                    "midpoint" => {
                        let m = 0.5 * (t + s);
                        let xm = x + (m - t) * u(x, t);
                        x + (s - t) * u(xm, m)
                    }
                    _ => x + (s - t) * u(x, t),
                };
                assert!(
                    (*g as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
                    "{sampler}, t = {t} → {s}: {g} vs {want}"
                );
            }
        }
    }
}

/// EDM's network F for Gaussian data N(mu, s²) per element: D = E[x_0 | x_σ] =
/// mu + s² (x − mu)/(s² + σ²), returned as F = (D − c_skip x)/c_out, and the network's inputs
/// checked against c_in(σ) x and c_noise(σ) = ¼ ln σ (MATH.md §1.6).
struct EdmGaussian {
    mu: f64,
    s: f64,
}

impl Denoiser for EdmGaussian {
    fn denoise(
        &mut self,
        _: &Process,
        call: &diffc::interp::NetCall,
    ) -> Result<Vec<Tensor>, String> {
        let sd = 0.5f64;
        let sigma = call.time.unwrap();
        let x = &call.fields[0].1;
        let (skip, out, c_in) = (
            sd * sd / (sigma * sigma + sd * sd),
            sigma * sd / (sigma * sigma + sd * sd).sqrt(),
            1.0 / (sigma * sigma + sd * sd).sqrt(),
        );
        let noise = call.inputs[1].f32s().unwrap()[0] as f64;
        assert!(
            (noise - 0.25 * sigma.ln()).abs() < 1e-5,
            "c_noise {noise} at σ = {sigma}"
        );
        let f: Vec<f32> = x
            .f32s()
            .unwrap()
            .iter()
            .zip(call.inputs[0].f32s().unwrap())
            .map(|(&x, &xin)| {
                let x = x as f64;
                assert!((xin as f64 - c_in * x).abs() <= 1e-5 * (1.0 + (c_in * x).abs()));
                let d =
                    self.mu + self.s * self.s * (x - self.mu) / (self.s * self.s + sigma * sigma);
                ((d - skip * x) / out) as f32
            })
            .collect();
        Ok(vec![Tensor {
            shape: x.shape.clone(),
            data: Data::F32(f),
        }])
    }
}

/// Max error at σ = 0 of an EDM sampler against the exact flow for Gaussian data: x_σ = mu +
/// sqrt(s² + σ²) z keeps z.
fn edm_error(p: &Process, sampler: &str, n: usize) -> f64 {
    let (mu, s) = (0.3f64, 0.5f64);
    let z: Vec<f64> = (0..64).map(|i| -2.0 + 4.0 * i as f64 / 63.0).collect();
    let x_t: Vec<f32> = z
        .iter()
        .map(|z| (mu + (s * s + 6400.0f64).sqrt() * z) as f32)
        .collect();
    let out = run_from(p, sampler, n, x_t, None, &mut EdmGaussian { mu, s });
    max_error(&out, z.iter().map(|z| mu + s * z))
}

#[test]
fn edm_samplers_converge_at_their_order() {
    // MATH.md §1.6, Algorithm 1: Heun (2N − 1 calls) is second order, Euler first order, on
    // the ρ = 7 grid from σ_max = 80 to σ_min = 0.002 and then 0.
    let p = spec("edm.diff", "edm");
    for (sampler, order) in [("euler", 1.0), ("heun", 2.0)] {
        let e: Vec<f64> = [16, 32, 64]
            .iter()
            .map(|n| edm_error(&p, sampler, *n))
            .collect();
        let slopes: Vec<f64> = e.windows(2).map(|w| (w[0] / w[1]).log2()).collect();
        let slope = *slopes.last().unwrap();
        assert!(
            (slope - order).abs() < 0.35,
            "{sampler}: measured order {slope:.2}, claimed {order} (errors {e:?})"
        );
    }
}

#[test]
fn edm_grid_is_the_papers() {
    // σ_i = (σ_max^{1/ρ} + i/(N−1)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ for i < N, σ_N = 0.
    let p = spec("edm.diff", "edm");
    for n in [2usize, 5, 18, 40] {
        let g = diffc::check::eval::grid_times(
            &p,
            diffc::check::eval::GridKind::Karras {
                rho: 7.0,
                sigma_min: Some(0.002),
            },
            n,
        )
        .unwrap();
        assert_eq!(g.len(), n + 1);
        assert_eq!(g[n], 0.0);
        let (a, b) = (80f64.powf(1.0 / 7.0), 0.002f64.powf(1.0 / 7.0));
        for (i, t) in g[..n].iter().enumerate() {
            let want = (a + i as f64 / (n - 1) as f64 * (b - a)).powi(7);
            assert!(
                (t - want).abs() <= 1e-9 * want,
                "N = {n}, σ_{i} = {t} vs {want}"
            );
        }
    }
}

#[test]
fn the_edm_heun_step_is_algorithm_1() {
    // One step from t to s with the network's D: d = (x − D(x, t))/t, x' = x + (s − t) d,
    // x_s = x + (s − t)(d + (x' − D(x', s))/s)/2; and Euler's x' alone at the last step.
    let p = spec("edm.diff", "edm");
    let (mu, s2) = (0.3f64, 0.25f64);
    let dn = |x: f64, sg: f64| mu + s2 * (x - mu) / (s2 + sg * sg);
    let x: Vec<f32> = (0..5).map(|i| i as f32 * 3.0 - 6.0).collect();
    for (t, s) in [(80.0, 40.0), (1.5, 0.7), (0.01, 0.002)] {
        let got = one_step(
            &p,
            "heun",
            "x",
            vec![1, 5],
            x.clone(),
            (t, s),
            &mut EdmGaussian { mu, s: 0.5 },
        );
        for (g, &x) in got.iter().zip(&x) {
            let x = x as f64;
            let d = (x - dn(x, t)) / t;
            let xe = x + (s - t) * d;
            let want = x + (s - t) * 0.5 * (d + (xe - dn(xe, s)) / s);
            assert!(
                (*g as f64 - want).abs() < 2e-5 * (1.0 + want.abs()),
                "t = {t} → {s}: {g} vs {want}"
            );
        }
    }
}

#[test]
fn the_mdlm_step_unmasks_at_the_papers_rate() {
    // MATH.md §1.6c: from t to s a masked token unmasks with probability (α_s − α_t)/(1 − α_t)
    // = (t − s)/t for α = 1 − t, to a class drawn from p̂; an unmasked token stays, whatever p̂.
    let p = spec("mdlm.diff", "mdlm");
    let (d, k, m) = (40_000usize, 28usize, 27u32);
    let probs: Vec<f32> = {
        let raw: Vec<f32> = (0..k)
            .map(|c| {
                if c == 27 {
                    0.0
                } else {
                    1.0 + (c * 7 % 5) as f32
                }
            })
            .collect();
        let s: f32 = raw.iter().sum();
        raw.iter().map(|x| x / s).collect()
    };
    // Three quarters masked, the rest class 5.
    let x0: Vec<u32> = (0..d).map(|i| if i % 4 == 0 { 5 } else { m }).collect();
    let sp = lower_sampler(&p, "ancestral").unwrap();
    for (t, s) in [(0.5, 0.4), (0.9, 0.2), (0.05, 0.0)] {
        let call = SampleCall {
            seed: 3,
            batch: 1,
            state: [(
                "x".to_string(),
                Tensor {
                    shape: vec![1, d],
                    data: Data::Class(x0.clone()),
                },
            )]
            .into(),
            grid: Some(vec![t, s]),
            single_step: Some(diffc::interp::SingleStep {
                k: 0,
                n: 2,
                ..Default::default()
            }),
            ..SampleCall::default()
        };
        let out = sample(&p, &sp, &call, &mut FixedProbs(probs.clone())).unwrap();
        let Data::Class(x) = &out["x"].data else {
            panic!()
        };
        assert!(
            x.iter().zip(&x0).all(|(a, b)| *b == m || a == b),
            "an unmasked token changed"
        );
        let masked: Vec<u32> = x
            .iter()
            .zip(&x0)
            .filter(|(_, b)| **b == m)
            .map(|(a, _)| *a)
            .collect();
        let n = masked.len() as f64;
        let rate = (t - s) / t;
        let unmasked = masked.iter().filter(|c| **c != m).count() as f64;
        assert!(
            (unmasked - n * rate).abs() <= 5.0 * (n * rate * (1.0 - rate)).sqrt() + 1e-9,
            "t = {t} → {s}: {unmasked} of {n} unmasked, expected {}",
            n * rate
        );
        for (c, w) in probs.iter().enumerate().take(27) {
            let want = n * rate * *w as f64;
            let got = masked.iter().filter(|x| **x as usize == c).count() as f64;
            assert!(
                (got - want).abs() <= 5.0 * (want * (1.0 - *w as f64 * rate)).sqrt() + 1e-9,
                "t = {t} → {s}: class {c}: {got} draws, expected {want}"
            );
        }
    }
}

#[test]
fn the_mdlm_loss_is_the_papers_nelbo() {
    // (1/t) Σ over masked tokens of −log p̂(x_0), per sequence (MATH.md §1.6c).
    use diffc::interp::{run, Call};
    let p = spec("mdlm.diff", "mdlm");
    let prog = diffc::ir::lower::lower(&p, "loss.nelbo").unwrap();
    let (d, k, m) = (6usize, 28usize, 27u32);
    let x0: Vec<u32> = vec![1, 4, 9, 0, 26, 3];
    let xt: Vec<u32> = vec![m, 4, m, 0, m, 3];
    let probs: Vec<f32> = (0..d * k)
        .map(|i| 0.5 + ((i * 13) % 17) as f32 / 17.0)
        .collect();
    let norm: Vec<f32> = probs
        .chunks(k)
        .flat_map(|r| {
            let s: f32 = r.iter().sum();
            r.iter().map(move |x| x / s).collect::<Vec<_>>()
        })
        .collect();
    for t in [0.3f32, 0.9] {
        let mut call = Call {
            batch: 1,
            ..Call::default()
        };
        let class = |v: &Vec<u32>| Tensor {
            shape: vec![1, d],
            data: Data::Class(v.clone()),
        };
        call.inputs.insert("x_0".into(), class(&x0));
        call.inputs.insert("x_t".into(), class(&xt));
        call.inputs.insert("t".into(), Tensor::scalar(t));
        call.inputs.insert(
            "net.x".into(),
            Tensor {
                shape: vec![1, d, k],
                data: Data::F32(norm.clone()),
            },
        );
        let out = run(&p, &prog, &call).unwrap();
        let got = out[0].f32s().unwrap()[0] as f64;
        let want: f64 = (0..d)
            .filter(|&i| xt[i] == m)
            .map(|i| -(norm[i * k + x0[i] as usize] as f64).ln() / t as f64)
            .sum();
        assert!(
            (got - want).abs() <= 1e-5 * want.abs(),
            "t = {t}: {got} vs {want}"
        );
    }
}

/// Classifier-free guidance (`ddpm.diff`'s `ddpm_cfg`, Ho & Salimans 2022, Eq. 6): each DDIM
/// step calls the conditional network with the label and the unconditional one without, and
/// moves with ε̃ = (1 + w) ε_c − w ε_u. With stand-in networks (ε_c = 0.3 x + 0.1 y,
/// ε_u = −0.2 x) and w = 1.5, a two-step run from a given state equals the formula worked in
/// f64 on ᾱ from the linear β schedule (ᾱ_0 = 1), within 2e-5 relative; the labels reach
/// only the conditional network.
#[test]
fn classifier_free_guidance_moves_with_the_guided_prediction() {
    let p = spec("ddpm.diff", "ddpm_cfg");
    let sp = lower_sampler(&p, "ddim").unwrap();
    let (b, d, w) = (3usize, 4usize, 1.5f64);
    let x: Vec<f32> = (0..b * d).map(|i| (i as f32 * 0.37).sin() * 1.3).collect();
    let y = vec![0u32, 1, 5];
    let call = SampleCall {
        seed: 3,
        batch: b,
        state: HashMap::from([
            (
                "x".to_string(),
                Tensor {
                    shape: vec![b, d],
                    data: Data::F32(x.clone()),
                },
            ),
            (
                "y".to_string(),
                Tensor {
                    shape: vec![b],
                    data: Data::Class(y.clone()),
                },
            ),
        ]),
        params: HashMap::from([("steps".to_string(), 2.0), ("w".to_string(), w)]),
        ..SampleCall::default()
    };
    let mut calls = Vec::new();
    let mut den = |_: &Process, c: &diffc::interp::NetCall| {
        calls.push((c.net, c.inputs.len()));
        let xs = c.inputs[0].f32s().unwrap();
        let out: Vec<f32> = if c.net == 0 {
            let Data::Class(ys) = &c.inputs[2].data else {
                return Err("the label is not classes".to_string());
            };
            xs.iter()
                .enumerate()
                .map(|(i, v)| 0.3 * v + 0.1 * ys[i / d] as f32)
                .collect()
        } else {
            xs.iter().map(|v| -0.2 * v).collect()
        };
        Ok(vec![Tensor {
            shape: vec![b, d],
            data: Data::F32(out),
        }])
    };
    let got = sample(&p, &sp, &call, &mut den).unwrap()["x"]
        .f32s()
        .unwrap()
        .to_vec();
    assert_eq!(calls, vec![(0, 3), (1, 2), (0, 3), (1, 2)]);
    let abar = |t: u32| -> f64 {
        (1..=t)
            .map(|u| 1.0 - (1e-4 + (0.02 - 1e-4) * (u - 1) as f64 / 999.0))
            .product()
    };
    let mut want: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for (t, s) in [(1000, 500), (500, 0)] {
        let (at, as_) = (abar(t), abar(s));
        for (i, v) in want.iter_mut().enumerate() {
            // The networks see the state as f32, as the interpreter holds it.
            let xv = *v as f32 as f64;
            let ec = (0.3 * xv as f32 + 0.1 * y[i / d] as f32) as f64;
            let eu = (-0.2 * xv as f32) as f64;
            let e = (1.0 + w) * ec - w * eu;
            let x0 = (xv - (1.0 - at).sqrt() * e) / at.sqrt();
            *v = as_.sqrt() * x0 + (1.0 - as_).sqrt() * e;
        }
    }
    for (g, e) in got.iter().zip(&want) {
        assert!(
            (*g as f64 - e).abs() <= 2e-5 * (1.0 + e.abs()),
            "guided DDIM gives {g}, the formula {e}"
        );
    }
}

/// diffusers' `EulerDiscreteScheduler` with `timestep_spacing = "linspace"` over DDPM's linear
/// betas, as its code computes it: timesteps `np.linspace(0, T − 1, N)[::-1]`, σ from
/// `alphas_cumprod` by `np.interp` between whole timesteps, σ = 0 after the last, and one Euler
/// step of the scaled sample per timestep. `ddpm_linear.euler` keeps x = x_ve / sqrt(σ² + 1) (the
/// scaled model input) as its state and calls the network at our t = timestep + 1.
#[test]
fn the_euler_sampler_is_diffusers_euler_discrete_with_linspace_spacing() {
    let p = spec("ddpm.diff", "ddpm_linear");
    let t_max = 1000usize;
    // alphas_cumprod[i] = ᾱ(i + 1), in f64; σ_i = sqrt((1 − ᾱ)/ᾱ).
    let mut ac = 1.0f64;
    let sig_table: Vec<f64> = (0..t_max)
        .map(|i| {
            let beta = 1e-4 + (0.02 - 1e-4) * i as f64 / (t_max - 1) as f64;
            ac *= 1.0 - beta;
            ((1.0 - ac) / ac).sqrt()
        })
        .collect();
    // np.interp over xp = 0, 1, …, T − 1: slope · (x − xp[j]) + fp[j].
    let np_interp = |x: f64| -> f64 {
        let j = (x.floor() as usize).min(t_max - 1);
        if j == t_max - 1 {
            return sig_table[j];
        }
        (sig_table[j + 1] - sig_table[j]) * (x - j as f64) + sig_table[j]
    };
    for n in [2usize, 7, 50] {
        // The grid: diffusers' timesteps + 1, then the data end.
        let grid =
            diffc::interp::sampler_grid(&p, "euler", &HashMap::from([("steps".into(), n as f64)]))
                .unwrap();
        let step = (t_max - 1) as f64 / (n - 1) as f64;
        let mut want: Vec<f64> = (0..n)
            .map(|j| if j == n - 1 { 999.0 } else { j as f64 * step })
            .rev()
            .map(|u| u + 1.0)
            .collect();
        want.push(0.0);
        assert_eq!(grid, want, "N = {n}");
    }
    let grid = p
        .samplers
        .iter()
        .find(|s| s.name == "euler")
        .unwrap()
        .default_grid
        .clone();
    assert!(grid[1].fract() != 0.0, "{grid:?}");
    let sp = lower_sampler(&p, "euler").unwrap();
    let d = 6usize;
    let x: Vec<f32> = (0..d).map(|i| i as f32 * 0.7 - 1.5).collect();
    let eps = 0.37f32;
    let n = grid.len() - 1;
    // The first steps, one in the middle, and the last (σ_s = 0).
    for k in [0usize, 1, 23, n - 2, n - 1] {
        let (t, s) = (grid[k], grid[k + 1]);
        let call = SampleCall {
            batch: 1,
            state: [(
                "x".to_string(),
                Tensor {
                    shape: vec![1, d],
                    data: Data::F32(x.clone()),
                },
            )]
            .into(),
            grid: Some(vec![t, s]),
            single_step: Some(diffc::interp::SingleStep {
                k,
                n,
                ..Default::default()
            }),
            ..SampleCall::default()
        };
        let got = sample(&p, &sp, &call, &mut Constant(eps)).unwrap()["x"]
            .f32s()
            .unwrap()
            .to_vec();
        let sig_t = np_interp(t - 1.0);
        let sig_s = if k == n - 1 { 0.0 } else { np_interp(s - 1.0) };
        for (g, &xi) in got.iter().zip(&x) {
            // diffusers: sample = x · sqrt(σ_t² + 1); sample + (σ_s − σ_t) ε; scaled back.
            let sample = xi as f64 * (sig_t * sig_t + 1.0).sqrt();
            let want = (sample + (sig_s - sig_t) * eps as f64) / (sig_s * sig_s + 1.0).sqrt();
            assert!(
                (*g as f64 - want).abs() < 2e-5 * (1.0 + want.abs()),
                "step {k} (t = {t}, s = {s}): {g} vs {want}"
            );
        }
    }
}
