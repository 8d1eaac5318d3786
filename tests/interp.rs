//! The reference interpreter against closed forms and Bayes' rule.

mod common;
use common::{shipped, spec};
use diffc::check::eval::{Env, Evaluator};
use diffc::interp::{run, Call, Data, Tensor};
use diffc::ir::lower::lower;
use diffc::typed::{ExprKind, FieldRef, KernelKind, Process, Value, Version};
use std::collections::HashMap;

fn real(shape: &[usize], data: Vec<f32>) -> Tensor {
    Tensor {
        shape: shape.to_vec(),
        data: Data::F32(data),
    }
}

fn call(batch: usize, inputs: Vec<(&str, Tensor)>) -> Call {
    Call {
        batch,
        inputs: inputs
            .into_iter()
            .map(|(n, t)| (n.to_string(), t))
            .collect(),
        ..Call::default()
    }
}

fn f32s(t: &Tensor) -> &[f32] {
    t.f32s().unwrap()
}

/// ᾱ_t of DDPM's linear schedule, by hand.
fn ddpm_alpha_bar(t: usize) -> f64 {
    (1..=t)
        .map(|s| 1.0 - (1e-4 + (0.02 - 1e-4) * (s - 1) as f64 / 999.0))
        .product()
}

#[test]
fn ddpm_posterior_matches_the_closed_form() {
    let p = spec("ddpm.diff", "ddpm_linear");
    let prog = lower(&p, "posterior").unwrap();
    let x_t: Vec<f32> = (0..6).map(|i| 0.3 * i as f32 - 0.7).collect();
    let x_0: Vec<f32> = (0..6).map(|i| 0.5 - 0.2 * i as f32).collect();
    for t in [1usize, 2, 10, 500, 999, 1000] {
        let c = call(
            2,
            vec![
                ("x_t", real(&[2, 3], x_t.clone())),
                ("x_0", real(&[2, 3], x_0.clone())),
                ("t", Tensor::scalar(t as f32)),
            ],
        );
        let out = run(&p, &prog, &c).unwrap();
        let (ab, ab_prev) = (ddpm_alpha_bar(t), ddpm_alpha_bar(t - 1));
        let beta = 1e-4 + (0.02 - 1e-4) * (t - 1) as f64 / 999.0;
        let c0 = ab_prev.sqrt() * beta / (1.0 - ab);
        let ct = (1.0 - beta).sqrt() * (1.0 - ab_prev) / (1.0 - ab);
        let var = (1.0 - ab_prev) / (1.0 - ab) * beta;
        for i in 0..6 {
            let want = c0 * x_0[i] as f64 + ct * x_t[i] as f64;
            let got = f32s(&out[0])[i] as f64;
            assert!(
                (got - want).abs() < 1e-5 * (1.0 + want.abs()),
                "t = {t}: mean {got} vs {want}"
            );
        }
        let got = f32s(&out[1])[0] as f64;
        assert!(
            (got - var).abs() <= 1e-6 * var.max(1e-30) + 1e-12,
            "t = {t}: var {got} vs {var}"
        );
    }
}

#[test]
fn ddpm_log_q_is_the_gaussian_density() {
    let p = spec("ddpm.diff", "ddpm_linear");
    let prog = lower(&p, "log_q").unwrap();
    let x_0 = vec![0.1f32, -0.4, 0.9, 0.0];
    let x_t = vec![0.3f32, -0.2, 0.1, -1.5];
    let t = 250;
    let c = call(
        2,
        vec![
            ("x_0", real(&[2, 2], x_0.clone())),
            ("x_t", real(&[2, 2], x_t.clone())),
            ("t", Tensor::scalar(t as f32)),
        ],
    );
    let out = run(&p, &prog, &c).unwrap();
    let ab = ddpm_alpha_bar(t);
    for b in 0..2 {
        let want: f64 = (0..2)
            .map(|j| {
                let (x0, xt) = (x_0[b * 2 + j] as f64, x_t[b * 2 + j] as f64);
                let v = 1.0 - ab;
                -0.5 * (2.0 * std::f64::consts::PI * v).ln()
                    - (xt - ab.sqrt() * x0).powi(2) / (2.0 * v)
            })
            .sum();
        let got = f32s(&out[0])[b] as f64;
        assert!(
            (got - want).abs() < 1e-4 * (1.0 + want.abs()),
            "{got} vs {want}"
        );
    }
}

/// The probabilities of a discrete kernel's target given classes for its conditioning
/// variables, from the checker's own f64 evaluator (independent of the interpreter).
fn kernel_probs(
    p: &Process,
    kind: KernelKind,
    field: &str,
    t: f64,
    given: &[(Version, f64)],
) -> Vec<f64> {
    let k = p
        .forwards
        .iter()
        .find(|k| k.kind == kind && p.field(k.target.field).name == field)
        .unwrap();
    let ExprKind::Dist { params, .. } = &p.expr(k.dist).kind else {
        panic!()
    };
    let f = k.target.field;
    let fields = given
        .iter()
        .map(|(v, c)| {
            let val = if matches!(p.field(f).elem, diffc::typed::Elem::Bool) {
                Value::Bool(*c != 0.0)
            } else {
                Value::Real(*c)
            };
            (
                FieldRef {
                    field: f,
                    version: *v,
                },
                val,
            )
        })
        .collect();
    match Evaluator::new(p)
        .eval(
            params[0],
            &Env {
                t,
                fields,
                ..Env::default()
            },
        )
        .unwrap()
    {
        Value::Vec(v) => v,
        Value::Real(q) => vec![1.0 - q, q],
        v => panic!("{v:?}"),
    }
}

/// q(x_{t-1} = c | x_t, x_0) ∝ q(x_t | x_{t-1} = c) q(x_{t-1} = c | x_0), by enumeration,
/// against the interpreter's `posterior` entry, for every (x_t, x_0) pair x_0 can reach.
fn check_bayes(
    file: &str,
    process: &str,
    field: &str,
    entry: &str,
    classes: usize,
    times: &[usize],
) {
    let p = spec(file, process);
    let prog = lower(&p, entry).unwrap();
    let bool_field = classes == 2
        && matches!(
            p.fields.iter().find(|f| f.name == field).unwrap().elem,
            diffc::typed::Elem::Bool
        );
    let mut checked = 0;
    for &t in times {
        for x0 in 0..classes {
            let reach = kernel_probs(
                &p,
                KernelKind::Marginal,
                field,
                t as f64,
                &[(Version::Data, x0 as f64)],
            );
            for (xt, reach_xt) in reach.iter().enumerate() {
                if *reach_xt == 0.0 {
                    continue;
                }
                let joint: Vec<f64> = (0..classes)
                    .map(|c| {
                        let step = kernel_probs(
                            &p,
                            KernelKind::OneStep,
                            field,
                            t as f64,
                            &[(Version::Back(1), c as f64)],
                        )[xt];
                        let prev = if t == 1 {
                            if c == x0 {
                                1.0
                            } else {
                                0.0
                            }
                        } else {
                            kernel_probs(
                                &p,
                                KernelKind::Marginal,
                                field,
                                (t - 1) as f64,
                                &[(Version::Data, x0 as f64)],
                            )[c]
                        };
                        step * prev
                    })
                    .collect();
                let z: f64 = joint.iter().sum();
                let tensor = |c: usize| -> Tensor {
                    if bool_field {
                        // A symmetric field of two nodes: the pair (0, 1) holds c, the
                        // diagonal is empty.
                        Tensor {
                            shape: vec![1, 2, 2],
                            data: Data::Bool(vec![false, c == 1, c == 1, false]),
                        }
                    } else {
                        Tensor {
                            shape: vec![1, 1],
                            data: Data::Class(vec![c as u32]),
                        }
                    }
                };
                let (t_name, x0_name) = (format!("{field}_t"), format!("{field}_0"));
                let mut inputs: HashMap<String, Tensor> = HashMap::new();
                inputs.insert(t_name, tensor(xt));
                inputs.insert(x0_name, tensor(x0));
                inputs.insert("t".into(), Tensor::scalar(t as f32));
                let c = Call {
                    batch: 1,
                    inputs,
                    sizes: [("n".to_string(), if bool_field { 2 } else { 1 })].into(),
                    ..Call::default()
                };
                let out = run(&p, &prog, &c).unwrap();
                let got: Vec<f64> = match (bool_field, f32s(&out[0])) {
                    (true, v) => vec![1.0 - v[1] as f64, v[1] as f64],
                    (false, v) => v.iter().map(|x| *x as f64).collect(),
                };
                for cl in 0..classes {
                    let want = joint[cl] / z;
                    assert!(
                        (got[cl] - want).abs() < 2e-5,
                        "{process} t = {t}, x_t = {xt}, x_0 = {x0}: q(x_(t-1) = {cl}) = {} by the spec, {want} by Bayes",
                        got[cl]
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
}

#[test]
fn d3pm_uniform_posterior_is_bayes_rule() {
    check_bayes(
        "d3pm.diff",
        "d3pm_uniform",
        "x",
        "posterior",
        27,
        &[1, 2, 100, 500, 1000],
    );
}

#[test]
fn d3pm_absorbing_posterior_is_bayes_rule() {
    check_bayes(
        "d3pm.diff",
        "d3pm_absorbing",
        "x",
        "posterior",
        28,
        &[1, 2, 100, 999, 1000],
    );
}

#[test]
fn edge_posterior_is_bayes_rule() {
    check_bayes("edge.diff", "edge", "A", "posterior", 2, &[1, 2, 32, 64]);
}

#[test]
fn digress_posteriors_are_bayes_rule() {
    check_bayes(
        "digress.diff",
        "digress",
        "X",
        "posterior.X",
        4,
        &[1, 2, 250, 500],
    );
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let p = spec("ddpm.diff", "ddpm_linear");
    let prog = lower(&p, "posterior").unwrap();
    let good = || {
        call(
            1,
            vec![
                ("x_t", real(&[1, 2], vec![0.0, 1.0])),
                ("x_0", real(&[1, 2], vec![0.0, 1.0])),
                ("t", Tensor::scalar(3.0)),
            ],
        )
    };
    assert!(run(&p, &prog, &good()).is_ok());
    let mut c = good();
    c.inputs.remove("x_0");
    assert!(run(&p, &prog, &c)
        .unwrap_err()
        .contains("missing input `x_0`"));
    let mut c = good();
    c.inputs.insert("x_0".into(), real(&[1, 3], vec![0.0; 3]));
    assert!(run(&p, &prog, &c).unwrap_err().contains("d = 3"));
    let mut c = good();
    c.inputs
        .insert("x_0".into(), real(&[1, 2], vec![f32::NAN, 0.0]));
    assert!(run(&p, &prog, &c).unwrap_err().contains("NaN"));
    let mut c = good();
    c.inputs.insert("t".into(), Tensor::scalar(1001.0));
    assert!(run(&p, &prog, &c)
        .unwrap_err()
        .contains("outside the process's time"));
    assert!(lower(&p, "step.nonexistent")
        .unwrap_err()
        .contains("has no entry"));
}

fn mean_var(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().map(|x| *x as f64).sum::<f64>() / n;
    (
        m,
        v.iter().map(|x| (*x as f64 - m).powi(2)).sum::<f64>() / (n - 1.0),
    )
}

#[test]
fn ddpm_forward_draws_the_marginal() {
    let p = spec("ddpm.diff", "ddpm_linear");
    let prog = lower(&p, "forward").unwrap();
    let (b, d, t) = (2usize, 60_000usize, 300usize);
    let x0 = 0.8f32;
    let mut c = call(
        b,
        vec![
            ("x_0", real(&[b, d], vec![x0; b * d])),
            ("t", Tensor::scalar(t as f32)),
        ],
    );
    c.seed = 7;
    let out = run(&p, &prog, &c).unwrap();
    let ab = ddpm_alpha_bar(t);
    let n = (b * d) as f64;
    let (m, v) = mean_var(f32s(&out[0]));
    // 5 standard errors for the mean and the variance of n Gaussian draws.
    assert!(
        (m - ab.sqrt() * x0 as f64).abs() < 5.0 * ((1.0 - ab) / n).sqrt(),
        "mean {m}"
    );
    assert!(
        (v - (1.0 - ab)).abs() < 5.0 * (1.0 - ab) * (2.0 / n).sqrt(),
        "var {v}"
    );
    // The returned noise is the noise that was used.
    let (xt, eps) = (f32s(&out[0]), f32s(&out[1]));
    for i in 0..100 {
        let want = ab.sqrt() as f32 * x0 + ((1.0 - ab) as f32).sqrt() * eps[i];
        assert!((xt[i] - want).abs() < 1e-6, "{} vs {want}", xt[i]);
    }
    // Supplied noise replaces the generator.
    let mut c2 = c.clone();
    c2.draws
        .insert("eps".into(), real(&[b, d], vec![0.5; b * d]));
    let out2 = run(&p, &prog, &c2).unwrap();
    assert!(f32s(&out2[1]).iter().all(|x| *x == 0.5));
    // The same seed gives the same noise; sample 0 does not depend on the batch size.
    let one = run(
        &p,
        &prog,
        &call(
            1,
            vec![
                ("x_0", real(&[1, d], vec![x0; d])),
                ("t", Tensor::scalar(t as f32)),
            ],
        )
        .with_seed(7),
    )
    .unwrap();
    assert_eq!(&f32s(&one[1])[..d], &f32s(&out[1])[..d]);
    let other = run(&p, &prog, &c.clone().with_seed(8)).unwrap();
    assert_ne!(f32s(&other[1]), f32s(&out[1]));
}

trait WithSeed {
    fn with_seed(self, seed: u64) -> Self;
}

impl WithSeed for Call {
    fn with_seed(mut self, seed: u64) -> Call {
        self.seed = seed;
        self
    }
}

#[test]
fn d3pm_forward_class_frequencies_match_the_marginal() {
    let p = spec("d3pm.diff", "d3pm_absorbing");
    let prog = lower(&p, "forward").unwrap();
    let (d, t, x0) = (200_000usize, 400usize, 3u32);
    let mut inputs = HashMap::new();
    inputs.insert(
        "x_0".to_string(),
        Tensor {
            shape: vec![1, d],
            data: Data::Class(vec![x0; d]),
        },
    );
    inputs.insert("t".to_string(), Tensor::scalar(t as f32));
    let out = run(
        &p,
        &prog,
        &Call {
            batch: 1,
            inputs,
            seed: 11,
            ..Call::default()
        },
    )
    .unwrap();
    let Data::Class(xs) = &out[0].data else {
        panic!()
    };
    // The uniforms the entry returns reproduce its draws when supplied back.
    assert_eq!(out[1].shape, vec![1, d]);
    let mut again = Call {
        batch: 1,
        seed: 999,
        ..Call::default()
    };
    again.inputs.insert(
        "x_0".to_string(),
        Tensor {
            shape: vec![1, d],
            data: Data::Class(vec![x0; d]),
        },
    );
    again
        .inputs
        .insert("t".to_string(), Tensor::scalar(t as f32));
    again.draws.insert("u_x".to_string(), out[1].clone());
    let replay = run(&p, &prog, &again).unwrap();
    assert_eq!(replay[0], out[0]);
    let probs = kernel_probs(
        &p,
        KernelKind::Marginal,
        "x",
        t as f64,
        &[(Version::Data, x0 as f64)],
    );
    for (c, q) in probs.iter().enumerate() {
        let got = xs.iter().filter(|x| **x as usize == c).count() as f64;
        let sd = (d as f64 * q * (1.0 - q)).sqrt();
        assert!(
            (got - d as f64 * q).abs() <= 5.0 * sd + 1e-9,
            "class {c}: {got} draws, expected {}",
            d as f64 * q
        );
    }
}

#[test]
fn edge_forward_is_symmetric_with_an_empty_diagonal() {
    let p = spec("edge.diff", "edge");
    let prog = lower(&p, "forward").unwrap();
    let n = 300usize;
    let t = 20usize;
    let mut inputs = HashMap::new();
    inputs.insert(
        "A_0".to_string(),
        Tensor {
            shape: vec![1, n, n],
            // The complete graph: every pair an edge, the diagonal empty as the field's is.
            data: Data::Bool((0..n * n).map(|k| k / n != k % n).collect()),
        },
    );
    inputs.insert("t".to_string(), Tensor::scalar(t as f32));
    let out = run(
        &p,
        &prog,
        &Call {
            batch: 1,
            inputs,
            seed: 3,
            ..Call::default()
        },
    )
    .unwrap();
    let Data::Bool(a) = &out[0].data else {
        panic!()
    };
    let mut kept = 0usize;
    for i in 0..n {
        assert!(!a[i * n + i], "diagonal entry ({i}, {i}) is set");
        for j in 0..n {
            assert_eq!(a[i * n + j], a[j * n + i], "({i}, {j}) is not mirrored");
            if i < j && a[i * n + j] {
                kept += 1;
            }
        }
    }
    let pairs = (n * (n - 1) / 2) as f64;
    let q = kernel_probs(
        &p,
        KernelKind::Marginal,
        "A",
        t as f64,
        &[(Version::Data, 1.0)],
    )[1];
    let sd = (pairs * q * (1.0 - q)).sqrt();
    assert!(
        (kept as f64 - pairs * q).abs() < 5.0 * sd,
        "{kept} edges kept, expected {}",
        pairs * q
    );
}

#[test]
fn ncsn_prior_is_uniform_on_the_unit_interval() {
    let p = spec("ncsn.diff", "ncsn");
    let prog = lower(&p, "prior").unwrap();
    let d = 100_000usize;
    let c = Call {
        batch: 1,
        sizes: [("d".to_string(), d)].into(),
        seed: 5,
        ..Call::default()
    };
    let out = run(&p, &prog, &c).unwrap();
    let x = f32s(&out[0]);
    assert!(x.iter().all(|v| (0.0..1.0).contains(v)));
    let (m, v) = mean_var(x);
    assert!(
        (m - 0.5).abs() < 5.0 * (1.0 / 12.0 / d as f64).sqrt(),
        "mean {m}"
    );
    assert!((v - 1.0 / 12.0).abs() < 0.003, "var {v}");
}

/// Every shipped forward entry: its draws against the marginal's own parameters (from the
/// checker's f64 evaluator), within 5 standard errors, pooled over at least 10^5 draws per
/// field (7,500 for the node classes of a graph whose edges take n = 30).
#[test]
fn every_forward_entry_draws_its_marginal() {
    let mut checked = 0;
    for p in shipped() {
        {
            let Ok(prog) = lower(&p, "forward") else {
                continue;
            };
            let t = match p.time.kind {
                diffc::typed::TimeKind::Discrete => ((p.time.lo + p.time.hi) / 2.0).round(),
                diffc::typed::TimeKind::Continuous => 0.5 * (p.time.lo + p.time.hi),
            };
            // Sizes: edge fields get n = 30 (435 pairs), other axes 400; the batch brings each field past 10^5 draws.
            let size = |d: &str| {
                if p.fields
                    .iter()
                    .any(|f| f.shape.sym && p.dims[f.shape.dims[0].index()].name == d)
                {
                    30
                } else {
                    400
                }
            };
            let batch = 250usize;
            let mut call = Call {
                seed: 17,
                batch,
                ..Call::default()
            };
            for d in &p.dims {
                call.sizes.insert(d.name.clone(), size(&d.name));
            }
            let data_value = |elem: diffc::typed::Elem| match elem {
                diffc::typed::Elem::Real | diffc::typed::Elem::Vec(_) => Value::Real(0.5),
                diffc::typed::Elem::Bool => Value::Bool(true),
                _ => Value::Real(1.0),
            };
            for port in &prog.inputs {
                let diffc::entries::Extent::Field(shape) = &port.extent else {
                    call.inputs
                        .insert(port.name.clone(), Tensor::scalar(t as f32));
                    continue;
                };
                let mut dims = vec![batch];
                dims.extend(shape.dims.iter().map(|d| size(&p.dims[d.index()].name)));
                let n: usize = dims.iter().product();
                let data = match port.elem {
                    diffc::typed::Elem::Bool => Data::Bool(vec![true; n]),
                    diffc::typed::Elem::Cat(_) => Data::Class(vec![1; n]),
                    _ => Data::F32(vec![0.5; n]),
                };
                let mut x = Tensor { shape: dims, data };
                if shape.sym && !port.name.contains('.') {
                    diffc::interp::symmetrize(&mut x);
                }
                call.inputs.insert(port.name.clone(), x);
            }
            let out = run(&p, &prog, &call).unwrap();
            let mut o = 0;
            for k in p.forwards.iter().filter(|k| k.kind == KernelKind::Marginal) {
                let x = &out[o];
                // Each draw is followed by its noise (normals or uniforms); a Delta has none.
                o += 1 + usize::from(k.family != diffc::typed::Family::Delta);
                let ExprKind::Dist { params, .. } = &p.expr(k.dist).kind else {
                    panic!()
                };
                let fields: Vec<(FieldRef, Value)> = k
                    .given
                    .iter()
                    .map(|g| (*g, data_value(p.field(g.field).elem)))
                    .collect();
                let ev = Evaluator::new(&p);
                let env = Env {
                    t,
                    fields,
                    ..Env::default()
                };
                let f = p.field(k.target.field);
                // Indices of the draws to pool: every element, or the upper triangle of a symmetric field.
                let per: usize = f
                    .shape
                    .dims
                    .iter()
                    .map(|d| size(&p.dims[d.index()].name))
                    .product();
                let keep = |i: usize| -> bool {
                    if !f.shape.sym {
                        return true;
                    }
                    let n = size(&p.dims[f.shape.dims[0].index()].name);
                    let e = i % per;
                    e / n < e % n
                };
                let what = format!("{} {}", p.name, f.name);
                match (&x.data, ev.eval(params[0], &env).unwrap()) {
                    (Data::F32(v), mean) => {
                        let var = ev.eval(params[1], &env).unwrap();
                        let kk = match &mean {
                            Value::Vec(m) => m.len(),
                            _ => 1,
                        };
                        for q in 0..kk {
                            let (m, s2) = match (&mean, &var) {
                                (Value::Vec(m), Value::Real(s)) => (m[q], *s),
                                (Value::Real(m), Value::Real(s)) => (*m, *s),
                                other => panic!("{other:?}"),
                            };
                            let xs: Vec<f64> = (0..v.len() / kk)
                                .filter(|i| keep(*i))
                                .map(|i| v[i * kk + q] as f64)
                                .collect();
                            let n = xs.len() as f64;
                            assert!(n >= 1e5 || kk > 1, "{what}: only {n} draws");
                            let mean_hat = xs.iter().sum::<f64>() / n;
                            let var_hat =
                                xs.iter().map(|x| (x - mean_hat).powi(2)).sum::<f64>() / (n - 1.0);
                            assert!(
                                (mean_hat - m).abs() < 5.0 * (s2 / n).sqrt(),
                                "{what}: mean {mean_hat} vs {m}"
                            );
                            assert!(
                                (var_hat - s2).abs() < 5.0 * s2 * (2.0 / n).sqrt(),
                                "{what}: variance {var_hat} vs {s2}"
                            );
                        }
                    }
                    (Data::Class(c), Value::Vec(probs)) => {
                        let xs: Vec<u32> =
                            (0..c.len()).filter(|i| keep(*i)).map(|i| c[i]).collect();
                        let n = xs.len() as f64;
                        for (cl, q) in probs.iter().enumerate() {
                            let got = xs.iter().filter(|x| **x as usize == cl).count() as f64;
                            assert!(
                                (got - n * q).abs() <= 5.0 * (n * q * (1.0 - q)).sqrt() + 1e-9,
                                "{what}: class {cl}: {got} vs {}",
                                n * q
                            );
                        }
                    }
                    (Data::Bool(b), Value::Real(q)) => {
                        let xs: Vec<bool> =
                            (0..b.len()).filter(|i| keep(*i)).map(|i| b[i]).collect();
                        let n = xs.len() as f64;
                        let got = xs.iter().filter(|x| **x).count() as f64;
                        assert!(n >= 1e5, "{what}: only {n} draws");
                        assert!(
                            (got - n * q).abs() <= 5.0 * (n * q * (1.0 - q)).sqrt() + 1e-9,
                            "{what}: {got} vs {}",
                            n * q
                        );
                    }
                    other => panic!("{what}: {other:?}"),
                }
                checked += 1;
            }
        }
    }
    println!("{checked} forward marginals checked against their draws");
    assert!(checked >= 14, "{checked}");
}

/// Every shipped prior: its draws against its parameters over at least 10^5 draws.
#[test]
fn every_prior_draws_its_distribution() {
    let mut checked = 0;
    for p in shipped() {
        {
            for (i, k) in p.priors.iter().enumerate() {
                let f = p.field(k.target.field);
                let name = if p.priors.len() == 1 {
                    "prior".to_string()
                } else {
                    format!("prior.{}", f.name)
                };
                let prog = lower(&p, &name).unwrap();
                let sym = f.shape.sym;
                let size = if sym { 30 } else { 400 };
                let batch = 250;
                let call = Call {
                    seed: 23 + i as u64,
                    batch,
                    sizes: p.dims.iter().map(|d| (d.name.clone(), size)).collect(),
                    ..Call::default()
                };
                let out = run(&p, &prog, &call).unwrap();
                let ExprKind::Dist { family, params } = &p.expr(k.dist).kind else {
                    panic!()
                };
                let ev = Evaluator::new(&p);
                let vals: Vec<Value> = params
                    .iter()
                    .map(|e| ev.eval(*e, &Env::default()).unwrap())
                    .collect();
                let per: usize = f.shape.dims.iter().map(|_| size).product();
                let keep = |j: usize| {
                    !sym || {
                        let e = j % per;
                        e / size < e % size
                    }
                };
                let what = format!("{} {}", p.name, name);
                match (&out[0].data, family) {
                    (
                        Data::F32(v),
                        diffc::typed::Family::Normal | diffc::typed::Family::Uniform,
                    ) => {
                        let kk = out[0].shape.len() - 1 - f.shape.dims.len();
                        let width = if kk == 1 {
                            *out[0].shape.last().unwrap()
                        } else {
                            1
                        };
                        let xs: Vec<f64> = (0..v.len())
                            .filter(|j| keep(j / width))
                            .map(|j| v[j] as f64)
                            .collect();
                        let n = xs.len() as f64;
                        assert!(n >= 1e5, "{what}: {n} draws");
                        let (m, s2) = match (family, &vals[0], &vals[1]) {
                            (diffc::typed::Family::Normal, Value::Real(m), Value::Real(s)) => {
                                (*m, *s)
                            }
                            (_, Value::Real(lo), Value::Real(hi)) => {
                                ((lo + hi) / 2.0, (hi - lo).powi(2) / 12.0)
                            }
                            other => panic!("{what}: {other:?}"),
                        };
                        let mh = xs.iter().sum::<f64>() / n;
                        let vh = xs.iter().map(|x| (x - mh).powi(2)).sum::<f64>() / (n - 1.0);
                        assert!(
                            (mh - m).abs() < 5.0 * (s2 / n).sqrt(),
                            "{what}: mean {mh} vs {m}"
                        );
                        assert!(
                            (vh - s2).abs() < 5.0 * s2 * (2.0f64).sqrt() / n.sqrt() + 1e-12,
                            "{what}: variance {vh} vs {s2}"
                        );
                    }
                    (Data::F32(v), diffc::typed::Family::Delta) => {
                        assert!(
                            v.iter()
                                .all(|x| *x as f64 == vals[0].as_real().unwrap_or(0.0)),
                            "{what}"
                        );
                    }
                    (Data::Class(c), diffc::typed::Family::Categorical) => {
                        let Value::Vec(probs) = &vals[0] else {
                            panic!()
                        };
                        let xs: Vec<u32> =
                            (0..c.len()).filter(|j| keep(*j)).map(|j| c[j]).collect();
                        let n = xs.len() as f64;
                        for (cl, q) in probs.iter().enumerate() {
                            let got = xs.iter().filter(|x| **x as usize == cl).count() as f64;
                            assert!(
                                (got - n * q).abs() <= 5.0 * (n * q * (1.0 - q)).sqrt() + 1e-9,
                                "{what}: class {cl}"
                            );
                        }
                    }
                    (Data::Bool(b), diffc::typed::Family::Delta) => {
                        let want = matches!(vals[0], Value::Bool(true));
                        assert!(
                            (0..b.len()).filter(|j| keep(*j)).all(|j| b[j] == want),
                            "{what}"
                        );
                    }
                    other => panic!("{what}: {other:?}"),
                }
                checked += 1;
            }
        }
    }
    println!("{checked} priors checked against their draws");
    assert!(checked >= 14, "{checked}");
}

/// A padded graph with a node mask gives what the graph alone gives: for EDP-GNN's loss (and
/// its gradient, zero on the padding), EDGE's log-density, and the forward draws (empty padding).
#[test]
fn node_masks_leave_padding_out() {
    let (n, m) = (5usize, 8usize);
    // Padding holds `fill` off the diagonal (symmetric, as a `sym` field must be).
    let pad = |v: &[f32], fill: f32| -> Vec<f32> {
        let mut out: Vec<f32> = (0..m * m)
            .map(|k| if k / m == k % m { 0.0 } else { fill })
            .collect();
        for i in 0..n {
            for j in 0..n {
                out[i * m + j] = v[i * n + j];
            }
        }
        out
    };
    let sym = |seed: u32| -> Vec<f32> {
        let mut v = vec![0.0; n * n];
        for i in 0..n {
            for j in i + 1..n {
                let x = (((i * 7 + j * 13) as u32)
                    .wrapping_mul(2654435761u32)
                    .wrapping_add(seed)
                    % 1000) as f32
                    / 500.0
                    - 1.0;
                v[i * n + j] = x;
                v[j * n + i] = x;
            }
        }
        v
    };
    let mask: Vec<bool> = (0..m).map(|i| i < n).collect();
    let masks = |on: bool| -> HashMap<String, Tensor> {
        if on {
            [(
                "node".to_string(),
                Tensor {
                    shape: vec![1, m],
                    data: Data::Bool(mask.clone()),
                },
            )]
            .into()
        } else {
            HashMap::new()
        }
    };
    // EDP-GNN loss.
    let p = spec("edp_gnn.diff", "edp_gnn");
    let prog = lower(&p, "loss.dsm").unwrap();
    let (a0, at, sc) = (sym(1), sym(2), sym(3));
    let small = Call {
        batch: 1,
        inputs: [
            ("A_0".to_string(), real(&[1, n, n], a0.clone())),
            ("A_t".to_string(), real(&[1, n, n], at.clone())),
            ("s_theta.A".to_string(), real(&[1, n, n], sc.clone())),
            ("t".to_string(), Tensor::scalar(3.0)),
        ]
        .into(),
        ..Call::default()
    };
    let big = Call {
        batch: 1,
        inputs: [
            ("A_0".to_string(), real(&[1, m, m], pad(&a0, 0.7))),
            ("A_t".to_string(), real(&[1, m, m], pad(&at, -0.4))),
            ("s_theta.A".to_string(), real(&[1, m, m], pad(&sc, 2.5))),
            ("t".to_string(), Tensor::scalar(3.0)),
        ]
        .into(),
        masks: masks(true),
        ..Call::default()
    };
    let (a, b) = (
        run(&p, &prog, &small).unwrap(),
        run(&p, &prog, &big).unwrap(),
    );
    assert!(
        (f32s(&a[0])[0] - f32s(&b[0])[0]).abs() < 1e-5 * f32s(&a[0])[0].abs().max(1.0),
        "{:?} vs {:?}",
        a[0],
        b[0]
    );
    let g = f32s(&b[1]);
    for i in 0..m {
        for j in 0..m {
            if i >= n || j >= n {
                assert_eq!(g[i * m + j], 0.0, "gradient on the padding at ({i}, {j})");
            } else {
                assert!((g[i * m + j] - f32s(&a[1])[i * n + j]).abs() < 1e-5);
            }
        }
    }
    // Without the mask the padding counts, and the loss differs.
    let unmasked = Call {
        masks: masks(false),
        ..big.clone()
    };
    assert_ne!(
        f32s(&run(&p, &prog, &unmasked).unwrap()[0])[0],
        f32s(&a[0])[0]
    );

    // EDGE log-density.
    let p = spec("edge.diff", "edge");
    let prog = lower(&p, "log_q").unwrap();
    let bits = |v: &[f32]| -> Vec<bool> { v.iter().map(|x| *x > 0.0).collect() };
    let (e0, et) = (sym(4), sym(5));
    let et: Vec<f32> = et
        .iter()
        .zip(&e0)
        .map(|(x, y)| if *y > 0.0 { *x } else { -1.0 })
        .collect();
    let bool_t = |shape: &[usize], v: Vec<bool>| Tensor {
        shape: shape.to_vec(),
        data: Data::Bool(v),
    };
    let small = Call {
        batch: 1,
        inputs: [
            ("A_0".to_string(), bool_t(&[1, n, n], bits(&e0))),
            ("A_t".to_string(), bool_t(&[1, n, n], bits(&et))),
            ("t".to_string(), Tensor::scalar(20.0)),
        ]
        .into(),
        ..Call::default()
    };
    let big = Call {
        batch: 1,
        inputs: [
            ("A_0".to_string(), bool_t(&[1, m, m], bits(&pad(&e0, 1.0)))),
            ("A_t".to_string(), bool_t(&[1, m, m], bits(&pad(&et, -1.0)))),
            ("t".to_string(), Tensor::scalar(20.0)),
        ]
        .into(),
        masks: masks(true),
        ..Call::default()
    };
    let (a, b) = (
        run(&p, &prog, &small).unwrap(),
        run(&p, &prog, &big).unwrap(),
    );
    assert!(
        (f32s(&a[0])[0] - f32s(&b[0])[0]).abs() < 1e-4,
        "{:?} vs {:?}",
        a[0],
        b[0]
    );

    // Forward draws: the padding is empty.
    let prog = lower(&p, "forward").unwrap();
    let fwd = Call {
        batch: 1,
        inputs: [
            (
                "A_0".to_string(),
                bool_t(&[1, m, m], (0..m * m).map(|k| k / m != k % m).collect()),
            ),
            ("t".to_string(), Tensor::scalar(1.0)),
        ]
        .into(),
        masks: masks(true),
        ..Call::default()
    };
    let Data::Bool(x) = &run(&p, &prog, &fwd).unwrap()[0].data else {
        panic!()
    };
    for i in 0..m {
        for j in 0..m {
            if i >= n || j >= n {
                assert!(!x[i * m + j], "padding ({i}, {j}) is set");
            }
        }
    }
}

#[test]
fn tensors_convert_to_and_from_ndarray() {
    use ndarray::{ArrayD, IxDyn};
    let p = spec("ddpm.diff", "ddpm_linear");
    let prog = lower(&p, "posterior").unwrap();
    // A transposed (non-standard layout) array is read in its logical order.
    let x0 =
        ArrayD::from_shape_fn(IxDyn(&[3, 2]), |i| (i[0] * 2 + i[1]) as f32 / 10.0).reversed_axes();
    let xt = ArrayD::<f32>::zeros(IxDyn(&[2, 3]));
    let c = Call {
        batch: 2,
        inputs: [
            ("x_0".to_string(), Tensor::from_f32_array(&x0)),
            ("x_t".to_string(), Tensor::from_f32_array(&xt)),
            ("t".to_string(), Tensor::scalar(1.0)),
        ]
        .into(),
        ..Call::default()
    };
    let out = run(&p, &prog, &c).unwrap();
    // At t = 1 the posterior mean is x_0 itself.
    let mean = out[0].to_f32_array().unwrap();
    assert_eq!(mean.shape(), &[2, 3]);
    for (a, b) in mean.iter().zip(x0.iter()) {
        assert!((a - b).abs() < 1e-6);
    }
    assert!(out[0].to_bool_array().is_none());
}
