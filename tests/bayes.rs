//! Bayes' rule in the checker (E0403): a written Gaussian posterior against the one the forward
//! marginal implies, and a written categorical or Bernoulli posterior against Bayes' rule on
//! the one-step kernel and the marginal. The shipped DDPM, D3PM and EDGE posteriors pass, and
//! each, changed by 0.1 %, is caught; DiGress's differ at its clamped last step, and pass only
//! as `#[approximate]` (W0002); the enumeration limits warn (W0003). Posteriors left out are
//! derived (Gaussian), and written marginals are checked against their one-step kernels
//! (E0404). `tests/bad/125…133` and `143…148` hold one-mistake specs.

mod common;

fn errors(text: &str) -> Vec<(String, String)> {
    let (_, diags) = diffc::check::check_source(text);
    diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| (d.code.as_str().to_string(), d.message.clone()))
        .collect()
}

#[test]
fn the_shipped_ddpm_posteriors_follow_from_their_marginals() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/ddpm.diff")).unwrap();
    assert!(errors(&text).is_empty(), "{:?}", errors(&text));
    // Each part of the posterior, 0.1 % off, in both processes.
    for (part, changed) in [
        ("c0 = post_c0(", "c0 = 1.001 * post_c0("),
        ("ct = post_ct(", "ct = 1.001 * post_ct("),
        ("var = post_var(", "var = 1.001 * post_var("),
    ] {
        assert_eq!(text.matches(part).count(), 2, "{part}");
        let bad = text.replace(part, changed);
        let errs = errors(&bad);
        assert_eq!(errs.len(), 2, "{part}: {errs:?}");
        for (code, message) in &errs {
            assert_eq!(code, "E0403", "{message}");
            assert!(message.contains("Bayes' rule gives"), "{message}");
        }
    }
}

/// Every diagnostic as (code, message, primary label).
fn diagnostics(text: &str) -> Vec<(String, String, String)> {
    let (_, diags) = diffc::check::check_source(text);
    diags
        .iter()
        .map(|d| {
            (
                d.code.as_str().to_string(),
                d.message.clone(),
                d.primary.message.clone(),
            )
        })
        .collect()
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(format!("{}/specs/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_shipped_d3pm_and_edge_posteriors_follow_from_their_kernels() {
    for (spec, part, changed) in [
        (
            "d3pm.diff",
            "Categorical(d3pm_post(Q(t), Qbar(t-1), Qbar(t), x_t, onehot(x_0)))",
            "Categorical(0.999 * d3pm_post(Q(t), Qbar(t-1), Qbar(t), x_t, onehot(x_0)) + 0.001 * onehot(x_t))",
        ),
        ("edge.diff", "then p_re(t) else 0", "then 0.999 * p_re(t) else 0"),
    ] {
        let text = shipped(spec);
        // Not even a warning: every class combination is checked.
        assert!(diagnostics(&text).is_empty(), "{spec}: {:?}", diagnostics(&text));
        assert_eq!(text.matches(part).count(), 2, "{spec}");
        let errs = errors(&text.replace(part, changed));
        assert_eq!(errs.len(), 2, "{spec}: {errs:?}");
        for (code, message) in &errs {
            assert_eq!(code, "E0403", "{message}");
            assert!(message.contains("Bayes' rule gives"), "{message}");
        }
    }
}

#[test]
fn digress_posteriors_differ_from_bayes_rule_only_at_the_clamped_last_step() {
    let text = shipped("digress.diff");
    assert_eq!(text.matches("  #[approximate]\n").count(), 2);
    // As shipped: kept, with a warning each that names the largest difference.
    let diags = diagnostics(&text);
    assert_eq!(diags.len(), 2, "{diags:?}");
    for (code, message, _) in &diags {
        assert_eq!(code, "W0002", "{message}");
        assert!(message.starts_with("at t = 501, "), "{message}");
        assert!(message.contains("marked `#[approximate]`"), "{message}");
    }
    // Without the mark, the same two differences are errors.
    let errs = errors(&text.replace("  #[approximate]\n", ""));
    assert_eq!(errs.len(), 2, "{errs:?}");
    for (code, message) in &errs {
        assert_eq!(code, "E0403", "{message}");
        assert!(message.starts_with("at t = 501, "), "{message}");
    }
    assert!(errs[0].1.contains("X_t = 3, X_0 = 3"), "{}", errs[0].1);
    assert!(errs[1].1.contains("E_t = 3, E_0 = 3"), "{}", errs[1].1);
}

#[test]
fn a_mark_on_a_posterior_that_follows_bayes_rule_is_not_needed() {
    let text = shipped("d3pm.diff");
    let marked = text.replace(
        "  posterior x_{t-1} | x_t, x_0",
        "  #[approximate]\n  posterior x_{t-1} | x_t, x_0",
    );
    let diags = diagnostics(&marked);
    assert_eq!(diags.len(), 2, "{diags:?}");
    for (code, message, label) in &diags {
        assert_eq!(code, "W0002", "{message}");
        assert!(
            message.contains("follows Bayes' rule at every check point"),
            "{message}"
        );
        assert_eq!(label, "not needed");
    }
    // Forward kernels take the mark too (against their composition); priors do not.
    let forward = text.replace(
        "  forward x_t | x_0 ~",
        "  #[approximate]\n  forward x_t | x_0 ~",
    );
    let diags = diagnostics(&forward);
    assert_eq!(diags.len(), 2, "{diags:?}");
    for (code, message, _) in &diags {
        assert_eq!(code, "W0002", "{message}");
        assert!(
            message.contains("composes from its one-step kernel"),
            "{message}"
        );
    }
    let prior = text.replace("  prior x_T ~", "  #[approximate]\n  prior x_T ~");
    assert_eq!(errors(&prior)[0].0, "E0001");
}

/// D3PM's uniform kernel with K classes and T steps, posterior as in the shipped spec.
fn uniform(classes: usize, steps: usize) -> String {
    format!(
        "fn post(Qt, Qbar_prev, Qbar_t, xt, x0) =
  (onehot(xt) @ transpose(Qt)) * (onehot(x0) @ Qbar_prev) / dot(onehot(x0) @ Qbar_t, onehot(xt))
process p {{
  const K = {classes}
  const T = {steps}
  dim d
  field x : cat<K>[d]
  time t : 1..T data at 0
  schedule beta(t) in (0, 1) increasing = linspace(0.02, 0.5)
  schedule Q(t) = (1 - beta(t)) * eye(K) + beta(t) * ones(K, K) / K
  schedule Qbar(t) = cumprod(Q(t))
  forward x_t | x_{{t-1}} ~ Categorical(onehot(x_{{t-1}}) @ Q(t))
  forward x_t | x_0 ~ Categorical(onehot(x_0) @ Qbar(t))
  prior x_T ~ Categorical(ones(K) / K)
  posterior x_{{t-1}} | x_t, x_0 ~ Categorical(post(Q(t), Qbar(t-1), Qbar(t), x_t, x_0))
}}
"
    )
}

#[test]
fn the_enumeration_limits_are_reported() {
    // 40 classes, 1600 combinations, 256 at each of 5 times: partly checked.
    let diags = diagnostics(&uniform(40, 5));
    assert_eq!(diags.len(), 1, "{diags:?}");
    let (code, message, label) = &diags[0];
    assert_eq!(code, "W0003", "{message}");
    assert!(
        message.contains("of the 1600 class combinations"),
        "{message}"
    );
    assert_eq!(label, "partly verified");
    // With enough times every combination is checked, and a mistake is still found.
    assert!(diagnostics(&uniform(40, 20)).is_empty());
    // A mistake at one combination (x_t = 38, x_0 = 39), which only some of the times check.
    let post = "post(Q(t), Qbar(t-1), Qbar(t), x_t, x_0)";
    let wrong = uniform(40, 20).replace(
        &format!("Categorical({post})"),
        &format!(
            "Categorical(if x_0 == 39 then (if x_t == 38 then 0.999 * {post} + 0.001 * onehot(x_t) else {post}) else {post})"
        ),
    );
    let errs = errors(&wrong);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "E0403");
    assert!(errs[0].1.contains("x_t = 38, x_0 = 39"), "{}", errs[0].1);
    // More classes than are enumerated at one time: not checked.
    let diags = diagnostics(&uniform(300, 3));
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert!(diags[1]
        .1
        .contains("the marginal of `x_t` is not checked against its one-step kernel"));
    let (code, message, label) = &diags[0];
    assert_eq!(code, "W0003", "{message}");
    assert!(
        message.contains("300 classes are more than the 256"),
        "{message}"
    );
    assert_eq!(label, "not verified");
}

/// `text` with every written posterior declaration removed: its `#[approximate]` mark, its
/// lines, and its `where` block or continuation lines.
fn without_posteriors(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        let marked = t == "#[approximate]"
            && lines
                .get(i + 1)
                .is_some_and(|l| l.trim_start().starts_with("posterior "));
        if marked {
            i += 1;
            continue;
        }
        if t.starts_with("posterior ") {
            let block = t.ends_with('{');
            i += 1;
            while i < lines.len() {
                let l = lines[i];
                if block {
                    i += 1;
                    if l.trim() == "}" {
                        break;
                    }
                } else if l.starts_with("    ") && !l.trim_start().starts_with("//") {
                    i += 1;
                } else {
                    break;
                }
            }
            continue;
        }
        out.push_str(lines[i]);
        out.push('\n');
        i += 1;
    }
    out
}

fn process(text: &str, name: &str) -> diffc::typed::Process {
    let (module, diags) = diffc::check::check_source(text);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    module
        .unwrap()
        .processes
        .into_iter()
        .find(|p| p.name == name)
        .unwrap()
}

/// DDPM with its posteriors deleted checks, the compiler derives q(x_s | x_t, x_0), and the
/// derived posterior's entry gives the written one's mean and variance at s = t − 1 for every
/// t (interp, within 2e-6 relative: the two are different f64 formulas rounded to f32), and
/// the ancestral sampler, driven by the same denoiser and seed, ends at the same samples.
#[test]
fn derived_gaussian_posteriors_equal_the_written_ones() {
    use diffc::interp::{run, sample, Call, Data, Tensor};
    let text = shipped("ddpm.diff");
    let bare = without_posteriors(&text);
    assert_eq!(bare.matches("posterior x_").count(), 0);
    for name in ["ddpm_linear", "ddpm_cosine"] {
        let (pw, pd) = (process(&text, name), process(&bare, name));
        let k = pd
            .posteriors
            .iter()
            .find(|k| k.derived)
            .expect("a derived posterior");
        assert_eq!(k.target.version, diffc::typed::Version::S);
        let (ew, ed) = (
            diffc::ir::lower::lower(&pw, "posterior").unwrap(),
            diffc::ir::lower::lower(&pd, "posterior").unwrap(),
        );
        let d = 7;
        let field = |seed: u32| Tensor {
            shape: vec![2, d],
            data: Data::F32(
                (0..2 * d as u32)
                    .map(|i| ((i * 37 + seed * 11) % 23) as f32 / 5.0 - 2.2)
                    .collect(),
            ),
        };
        let mut worst = 0.0f64;
        for t in 1..=1000u32 {
            let mut call = Call {
                batch: 2,
                ..Call::default()
            };
            call.inputs.insert("x_t".into(), field(1));
            call.inputs.insert("x_0".into(), field(2));
            call.inputs.insert("t".into(), Tensor::scalar(t as f32));
            let w = run(&pw, &ew, &call).unwrap();
            call.inputs
                .insert("s".into(), Tensor::scalar((t - 1) as f32));
            let g = run(&pd, &ed, &call).unwrap();
            for (a, b) in w.iter().zip(&g) {
                for (x, y) in a.f32s().unwrap().iter().zip(b.f32s().unwrap()) {
                    let err = (*x as f64 - *y as f64).abs() / (1.0 + x.abs() as f64);
                    worst = worst.max(err);
                    assert!(err <= 2e-6, "{name} at t = {t}: written {x}, derived {y}");
                }
            }
        }
        println!("{name}: derived posterior within {worst:.2e} of the written one");
        // Whole ancestral runs from the same start, with a denoiser predicting 0.1 x.
        let run_with = |p: &diffc::typed::Process| {
            let sp = diffc::ir::lower::lower_sampler(p, "ancestral").unwrap();
            let call = diffc::interp::SampleCall {
                seed: 5,
                batch: 2,
                state: [("x".to_string(), field(3))].into(),
                ..Default::default()
            };
            let mut den = |_: &diffc::typed::Process, c: &diffc::interp::NetCall| {
                let x = &c.inputs[0];
                Ok(vec![Tensor {
                    shape: x.shape.clone(),
                    data: Data::F32(x.f32s().unwrap().iter().map(|v| 0.1 * v).collect()),
                }])
            };
            sample(p, &sp, &call, &mut den).unwrap()["x"]
                .f32s()
                .unwrap()
                .to_vec()
        };
        let (a, b) = (run_with(&pw), run_with(&pd));
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + x.abs()),
                "{name}: ancestral ends at {x} (written) and {y} (derived)"
            );
        }
    }
}

/// The shipped marginals compose from their one-step kernels (E0404 is not reported), and each,
/// with its schedule taken one step late, is caught at the marginal, in every process.
#[test]
fn the_shipped_marginals_compose_from_their_one_step_kernels() {
    for (spec, part, changed, processes) in [
        (
            "ddpm.diff",
            "forward x_t | x_0 ~ Normal(alpha(t) * x_0",
            "forward x_t | x_0 ~ Normal(alpha(t - 1) * x_0",
            2,
        ),
        (
            "d3pm.diff",
            "Categorical(onehot(x_0) @ Qbar(t))",
            "Categorical(onehot(x_0) @ Qbar(t) @ Q(t))",
            2,
        ),
        (
            "edge.diff",
            "Bernoulli(if A_0 then alpha_bar(t) else 0)",
            "Bernoulli(if A_0 then alpha_bar(t) * alpha(t) else 0)",
            2,
        ),
        (
            "digress.diff",
            "Categorical(alpha_bar(t) * onehot(E_0) + (1 - alpha_bar(t)) * mE)",
            "Categorical(alpha_bar(t - 1) * onehot(E_0) + (1 - alpha_bar(t - 1)) * mE)",
            1,
        ),
    ] {
        let text = shipped(spec);
        assert!(
            diagnostics(&text).iter().all(|(c, ..)| c != "E0404"),
            "{spec}: {:?}",
            diagnostics(&text)
        );
        assert_eq!(text.matches(part).count(), processes, "{spec}: {part}");
        let errs = errors(&text.replace(part, changed));
        let composed: Vec<_> = errs.iter().filter(|(c, _)| c == "E0404").collect();
        assert_eq!(composed.len(), processes, "{spec}: {errs:?}");
        for (_, message) in composed {
            assert!(
                message.contains("composing the one-step kernel from the data gives"),
                "{message}"
            );
        }
    }
}

/// q(x_t = c | x_0 = c0) > 0 under the process's written marginal (the data itself at the
/// data end).
fn reaches(
    p: &diffc::typed::Process,
    field: diffc::typed::FieldId,
    t: f64,
    c: usize,
    c0: usize,
) -> bool {
    use diffc::check::eval::{Env, Evaluator};
    use diffc::typed::{ExprKind, FieldRef, KernelKind, Value, Version};
    let m = p
        .forwards
        .iter()
        .find(|k| k.kind == KernelKind::Marginal && k.target.field == field)
        .unwrap();
    let ExprKind::Dist { params, .. } = &p.expr(m.dist).kind else {
        panic!()
    };
    let bool_field = p.field(field).elem == diffc::typed::Elem::Bool;
    let x0 = if bool_field {
        Value::Bool(c0 == 1)
    } else {
        Value::Real(c0 as f64)
    };
    let env = Env {
        t,
        fields: vec![(
            FieldRef {
                field,
                version: Version::Data,
            },
            x0,
        )],
        ..Env::default()
    };
    match Evaluator::new(p).eval(params[0], &env).unwrap() {
        Value::Vec(q) => q[c] > 0.0,
        Value::Real(q) => (if c == 1 { q } else { 1.0 - q }) > 0.0,
        v => panic!("{v:?}"),
    }
}

/// D3PM, EDGE and DiGress with their posteriors deleted check, the compiler derives
/// q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0) from their written kernels, and every
/// `posterior` entry gives the written one's probabilities (interp, within 2e-5: the derived
/// form normalises per element in f32, where the written ones hand-simplify 1 − ᾱ on the host
/// in f64) for every pair of classes of x_t and x_0 that x_0 reaches, at the first, second, a
/// middle and the last time.
#[test]
fn derived_discrete_posteriors_equal_the_written_ones() {
    use diffc::interp::{run, Call, Data, Tensor};
    for (spec, name) in [
        ("d3pm.diff", "d3pm_uniform"),
        ("d3pm.diff", "d3pm_absorbing"),
        ("edge.diff", "edge"),
        ("edge.diff", "edge_cosine"),
        ("digress.diff", "digress"),
    ] {
        let text = shipped(spec);
        let bare = without_posteriors(&text);
        assert!(
            !bare.contains("posterior X_")
                && !bare.contains("posterior x_")
                && !bare.contains("posterior A_")
        );
        let (pw, pd) = (process(&text, name), process(&bare, name));
        assert!(pd.posteriors.iter().all(|k| k.derived), "{name}");
        assert_eq!(pd.posteriors.len(), pw.posteriors.len(), "{name}");
        let (lo, hi) = (pw.time.lo as u32, pw.time.hi as u32);
        let (mut compared, mut worst) = (0, 0.0f32);
        for k in &pw.posteriors {
            let f = pw.field(k.target.field);
            let entry = if pw.posteriors.len() > 1 {
                format!("posterior.{}", f.name)
            } else {
                "posterior".to_string()
            };
            let (ew, ed) = (
                diffc::ir::lower::lower(&pw, &entry).unwrap(),
                diffc::ir::lower::lower(&pd, &entry).unwrap(),
            );
            let classes = match f.elem {
                diffc::typed::Elem::Cat(k) => k as usize,
                _ => 2,
            };
            // One sample per pair (c, c0): a vector field holds c at every element; a
            // symmetric one holds it off the diagonal of a 2 × 2 matrix.
            let sym = f.shape.sym;
            let per = if sym { 4 } else { 2 };
            let pairs: Vec<(usize, usize)> = (0..classes)
                .flat_map(|c| (0..classes).map(move |c0| (c, c0)))
                .collect();
            let batch = pairs.len();
            let fill = |pick: &dyn Fn(usize, usize) -> usize| -> Tensor {
                let vals: Vec<usize> = pairs
                    .iter()
                    .flat_map(|&(c, c0)| {
                        (0..per).map(move |i| {
                            if sym && (i == 0 || i == 3) {
                                0
                            } else {
                                pick(c, c0)
                            }
                        })
                    })
                    .collect();
                let shape = if sym {
                    vec![batch, 2, 2]
                } else {
                    vec![batch, per]
                };
                let data = match f.elem {
                    diffc::typed::Elem::Bool => Data::Bool(vals.iter().map(|v| *v == 1).collect()),
                    _ => Data::Class(vals.iter().map(|v| *v as u32).collect()),
                };
                Tensor { shape, data }
            };
            let x_t = fill(&|c, _| c);
            let x_0 = fill(&|_, c0| c0);
            for t in [lo, lo + 1, (lo + hi) / 2, hi] {
                let mut call = Call {
                    batch,
                    ..Call::default()
                };
                call.sizes.insert("n".into(), 2);
                call.sizes.insert("d".into(), 2);
                call.inputs.insert(format!("{}_t", f.name), x_t.clone());
                call.inputs.insert(format!("{}_0", f.name), x_0.clone());
                call.inputs.insert("t".into(), Tensor::scalar(t as f32));
                let w = run(&pw, &ew, &call).unwrap();
                let g = run(&pd, &ed, &call).unwrap();
                let (w, g) = (w[0].f32s().unwrap(), g[0].f32s().unwrap());
                let width = w.len() / batch;
                for (b, &(c, c0)) in pairs.iter().enumerate() {
                    let (ws, gs) = (
                        &w[b * width..(b + 1) * width],
                        &g[b * width..(b + 1) * width],
                    );
                    // A pair x_0 cannot reach has no posterior: what is written there is free.
                    if !reaches(&pw, k.target.field, t as f64, c, c0) {
                        continue;
                    }
                    for (x, y) in ws.iter().zip(gs) {
                        worst = worst.max((x - y).abs());
                        assert!(
                            (x - y).abs() <= 2e-5,
                            "{name} {entry} at t = {t}, x_t = {c}, x_0 = {c0}: written {x}, derived {y}"
                        );
                    }
                    compared += 1;
                }
            }
        }
        println!("{name}: {compared} (time, x_t, x_0) posteriors compared, largest difference {worst:.1e}");
        assert!(compared > 0, "{name}");
    }
}

/// MDLM with its posterior deleted: its marginal is a mixture of the data with the mask,
/// q(x_t | x_0) = α_t e_{x_0} + (1 − α_t) e_m, so the compiler derives q(x_s | x_t, x_0) from
/// it alone (there is no one-step kernel in continuous time), and the derived `posterior` entry
/// gives the written one's probabilities for every pair (x_t, x_0) that x_0 reaches.
#[test]
fn a_derived_mixture_posterior_equals_mdlms_written_one() {
    use diffc::interp::{run, Call, Data, Tensor};
    let text = shipped("mdlm.diff");
    let bare = without_posteriors(&text);
    assert!(!bare.contains("posterior x_s"));
    let (pw, pd) = (process(&text, "mdlm"), process(&bare, "mdlm"));
    assert!(pd.posteriors.len() == 1 && pd.posteriors[0].derived);
    let (ew, ed) = (
        diffc::ir::lower::lower(&pw, "posterior").unwrap(),
        diffc::ir::lower::lower(&pd, "posterior").unwrap(),
    );
    let (k, m) = (28u32, 27u32);
    // x_0 any symbol; x_t either x_0 or the mask.
    let pairs: Vec<(u32, u32)> = (0..m).flat_map(|c0| [(c0, c0), (m, c0)]).collect();
    let class = |v: Vec<u32>| Tensor {
        shape: vec![pairs.len(), 1],
        data: Data::Class(v),
    };
    let mut worst = 0.0f32;
    for (t, s) in [(1.0f32, 0.9f32), (0.6, 0.3), (0.3, 0.0), (0.05, 0.01)] {
        let mut call = Call {
            batch: pairs.len(),
            ..Call::default()
        };
        call.inputs
            .insert("x_t".into(), class(pairs.iter().map(|p| p.0).collect()));
        call.inputs
            .insert("x_0".into(), class(pairs.iter().map(|p| p.1).collect()));
        call.inputs.insert("t".into(), Tensor::scalar(t));
        call.inputs.insert("s".into(), Tensor::scalar(s));
        let w = run(&pw, &ew, &call).unwrap();
        let g = run(&pd, &ed, &call).unwrap();
        let (w, g) = (w[0].f32s().unwrap(), g[0].f32s().unwrap());
        assert_eq!(w.len(), pairs.len() * k as usize);
        for (x, y) in w.iter().zip(g) {
            worst = worst.max((x - y).abs());
            assert!(
                (x - y).abs() <= 1e-6,
                "t = {t}, s = {s}: written {x}, derived {y}"
            );
        }
    }
    println!("mdlm: derived posterior within {worst:.1e} of the written one");
}

/// `text` with every line that starts (after indentation) with `decl` removed.
fn without_line(text: &str, decl: &str) -> String {
    let out: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with(decl))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(out.len() < text.len(), "no `{decl}` line");
    out
}

/// `log_q` of process `name` in two versions of a spec on the same inputs, at every time of
/// the process; returns the largest difference relative to 1 + |value|.
fn same_log_q(
    a: &diffc::typed::Process,
    b: &diffc::typed::Process,
    inputs: &[(&str, diffc::interp::Tensor)],
    batch: usize,
) -> f64 {
    use diffc::interp::{run, Call, Tensor};
    let (ea, eb) = (
        diffc::ir::lower::lower(a, "log_q").unwrap(),
        diffc::ir::lower::lower(b, "log_q").unwrap(),
    );
    let mut worst = 0.0f64;
    for t in a.time.lo as u32..=a.time.hi as u32 {
        let mut call = Call {
            batch,
            ..Call::default()
        };
        for (n, v) in inputs {
            call.inputs.insert(n.to_string(), v.clone());
        }
        call.inputs.insert("t".into(), Tensor::scalar(t as f32));
        let (x, y) = (run(a, &ea, &call).unwrap(), run(b, &eb, &call).unwrap());
        for (x, y) in x[0].f32s().unwrap().iter().zip(y[0].f32s().unwrap()) {
            let err = if x == y {
                0.0
            } else {
                (*x as f64 - *y as f64).abs() / (1.0 + x.abs() as f64)
            };
            assert!(
                err <= 1e-5,
                "{} at t = {t}: written {x}, derived {y}",
                a.name
            );
            worst = worst.max(err);
        }
    }
    worst
}

/// The shipped DDPM, D3PM and EDGE processes with their written marginals `x_t | x_0` deleted
/// check cleanly: the compiler composes the marginal from the one-step kernel (`cumprod`,
/// `cumsum`), marks it and its schedules derived, and its `log_q` equals the written one's at
/// every time within 1e-5 (interp; the values are f64 tables rounded to f32). The written
/// posteriors are checked by Bayes' rule against the derived marginals, and with the posteriors
/// deleted too, both are derived and `posterior` equals the written one.
#[test]
fn derived_marginals_equal_the_written_ones() {
    use diffc::interp::{run, Call, Data, Tensor};
    use diffc::typed::KernelKind;
    let reals = |n: usize, seed: u32| Tensor {
        shape: vec![n, 3],
        data: Data::F32(
            (0..3 * n as u32)
                .map(|i| ((i * 37 + seed * 11) % 23) as f32 / 5.0 - 2.2)
                .collect(),
        ),
    };
    // Every pair of classes (27 × 27 for D3PM), one element each.
    let pairs = |k: u32| {
        let (a, b): (Vec<u32>, Vec<u32>) = (0..k * k).map(|i| (i / k, i % k)).unzip();
        let t = |v: Vec<u32>| Tensor {
            shape: vec![v.len(), 1],
            data: Data::Class(v),
        };
        (t(a), t(b))
    };
    // Every pair of values of one edge between two nodes.
    let edges = || {
        let t = |v: [bool; 4]| Tensor {
            shape: vec![4, 2, 2],
            data: Data::Bool(v.iter().flat_map(|&e| [false, e, e, false]).collect()),
        };
        (t([false, false, true, true]), t([false, true, false, true]))
    };
    for (spec, marginal, processes) in [
        (
            "ddpm.diff",
            "forward x_t | x_0",
            ["ddpm_linear", "ddpm_cosine"],
        ),
        (
            "d3pm.diff",
            "forward x_t | x_0",
            ["d3pm_uniform", "d3pm_absorbing"],
        ),
        ("edge.diff", "forward A_t | A_0", ["edge", "edge_cosine"]),
    ] {
        let text = shipped(spec);
        let bare = without_line(&text, marginal);
        let neither = without_posteriors(&bare);
        for name in processes {
            let (pw, pd, pn) = (
                process(&text, name),
                process(&bare, name),
                process(&neither, name),
            );
            for p in [&pd, &pn] {
                let k = p
                    .forwards
                    .iter()
                    .find(|k| k.kind == KernelKind::Marginal)
                    .expect("a derived marginal");
                assert!(k.derived, "{name}");
                assert!(p.schedules.iter().any(|s| s.derived), "{name}");
            }
            assert!(pn.posteriors.iter().all(|k| k.derived), "{name}");
            let (a0, at, batch) = match spec {
                "ddpm.diff" => (reals(4, 1), reals(4, 2), 4),
                "d3pm.diff" => {
                    let (a, b) = pairs(27);
                    (a, b, 27 * 27)
                }
                _ => {
                    let (a, b) = edges();
                    (a, b, 4)
                }
            };
            let (n0, nt) = if spec == "edge.diff" {
                ("A_0", "A_t")
            } else {
                ("x_0", "x_t")
            };
            let inputs = [(n0, a0.clone()), (nt, at.clone())];
            let worst = same_log_q(&pw, &pd, &inputs, batch);
            println!("{name}: derived marginal's log_q within {worst:.1e} of the written one's");
            // The posterior of the process with neither written, at a few times, where x_0 can
            // reach x_t (elsewhere the two differ on purpose: see `reaches`).
            let (ew, en, eq) = (
                diffc::ir::lower::lower(&pw, "posterior").unwrap(),
                diffc::ir::lower::lower(&pn, "posterior").unwrap(),
                diffc::ir::lower::lower(&pw, "log_q").unwrap(),
            );
            for t in [
                pw.time.lo as u32 + 1,
                7,
                pw.time.hi as u32 / 2,
                pw.time.hi as u32,
            ] {
                let mut call = Call {
                    batch,
                    ..Call::default()
                };
                call.inputs.insert(n0.into(), a0.clone());
                call.inputs.insert(nt.into(), at.clone());
                call.inputs.insert("t".into(), Tensor::scalar(t as f32));
                let w = run(&pw, &ew, &call).unwrap();
                let log_q = run(&pw, &eq, &call).unwrap()[0].f32s().unwrap().to_vec();
                if spec == "ddpm.diff" {
                    call.inputs
                        .insert("s".into(), Tensor::scalar((t - 1) as f32));
                }
                let g = run(&pn, &en, &call).unwrap();
                for (a, b) in w.iter().zip(&g) {
                    let (a, b) = (a.f32s().unwrap(), b.f32s().unwrap());
                    // Per-sample outputs are checked where x_0 reaches x_t; others everywhere.
                    let per = (a.len() / batch).max(1);
                    let reached =
                        (0..a.len()).filter(|i| a.len() < batch || log_q[i / per].is_finite());
                    for (x, y) in reached.map(|i| (&a[i], &b[i])) {
                        assert!(
                            (x - y).abs() <= 2e-5 * (1.0 + x.abs()),
                            "{name} at t = {t}: posterior written {x}, derived {y}"
                        );
                    }
                }
            }
        }
    }
}

/// Kernels the shipped specs do not have: a categorical kernel written as a mixture (its
/// transition matrix built row by row) and a Bernoulli kernel that also turns false into true
/// (the `d_x`/`s_x` form). Each derived marginal's `log_q` equals the closed form written out
/// by hand at every time.
#[test]
fn derived_marginals_of_mixture_and_two_way_kernels_equal_their_closed_forms() {
    use diffc::interp::{Data, Tensor};
    let cat = |marginal: &str| {
        format!(
            "process p {{
  const T = 60
  dim d
  field x : cat<3>[d]
  time t : 1..T
  forward x_t | x_{{t-1}} ~ Categorical(0.9 * onehot(x_{{t-1}}) + 0.1 * [0.2, 0.3, 0.5])
  {marginal}
  prior x_T ~ Categorical([0.2, 0.3, 0.5])
}}
"
        )
    };
    let written = cat(
        "forward x_t | x_0 ~ Categorical(0.9 ^ t * onehot(x_0) + (1 - 0.9 ^ t) * [0.2, 0.3, 0.5])",
    );
    let (pw, pd) = (process(&written, "p"), process(&cat(""), "p"));
    let classes = |v: Vec<u32>| Tensor {
        shape: vec![9, 1],
        data: Data::Class(v),
    };
    let inputs = [
        ("x_0", classes((0..9).map(|i| i / 3).collect())),
        ("x_t", classes((0..9).map(|i| i % 3).collect())),
    ];
    let worst = same_log_q(&pw, &pd, &inputs, 9);
    println!("mixture kernel: within {worst:.1e}");
    let flip = |marginal: &str| {
        format!(
            "process p {{
  const T = 40
  dim d
  field x : bool[d]
  time t : 1..T
  forward x_t | x_{{t-1}} ~ Bernoulli(if x_{{t-1}} then 0.9 else 0.05)
  {marginal}
  prior x_T ~ Bernoulli(1 / 3)
}}
"
        )
    };
    let written = flip(
        "forward x_t | x_0 ~ Bernoulli(if x_0 then 0.85 ^ t + (1 - 0.85 ^ t) / 3 else (1 - 0.85 ^ t) / 3)",
    );
    let (pw, pd) = (process(&written, "p"), process(&flip(""), "p"));
    assert!(pd.schedules.iter().any(|s| s.name == "s_x" && s.derived));
    let bools = |v: [bool; 4]| Tensor {
        shape: vec![4, 1],
        data: Data::Bool(v.to_vec()),
    };
    let inputs = [
        ("x_0", bools([false, false, true, true])),
        ("x_t", bools([false, true, false, true])),
    ];
    let worst = same_log_q(&pw, &pd, &inputs, 4);
    println!("two-way Bernoulli kernel: within {worst:.1e}");
}

/// `tests/data/per_element.diff`, whose Gaussian coefficients vary per element.
fn per_element_text() -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/per_element.diff",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The linear β of `per_element.diff` and ᾱ = Π (1 − β), in f64: index t holds the value at t
/// (ᾱ(0) = 1).
fn linear_beta_tables(steps: usize) -> (Vec<f64>, Vec<f64>) {
    let mut beta = vec![0.0; steps + 1];
    let mut ab = vec![1.0; steps + 1];
    for t in 1..=steps {
        beta[t] = 1e-4 + (t - 1) as f64 * (0.02 - 1e-4) / (steps - 1) as f64;
        ab[t] = ab[t - 1] * (1.0 - beta[t]);
    }
    (beta, ab)
}

/// Bayes' rule for `Normal(a x_0, v)` per element, the VDM form: (c_0, c_t, variance).
fn vdm_posterior(a_t: f64, v_t: f64, a_s: f64, v_s: f64) -> (f64, f64, f64) {
    let a_ts = a_t / a_s;
    let v_ts = v_t - a_ts * a_ts * v_s;
    (a_s * v_ts / v_t, a_ts * v_s / v_t, v_ts * v_s / v_t)
}

/// The derived posteriors of `per_element.diff` (a vec<3> signal coefficient with a param in
/// the variance; a variance scaled by a conditioning field; a marginal composed from a vec<3>
/// one-step kernel) give, per element, the closed form of Bayes' rule computed here in f64 at
/// every t and at s = t − 1, ⌊t/2⌋ and 0 (interp, within 2e-6 relative); the composed marginal's
/// `log_q` and `forward` equal the closed-form a_t = Π c and v_t = c_t² v_{t−1} + β_t g.
#[test]
fn derived_per_element_posteriors_and_marginals_equal_their_closed_forms() {
    use diffc::interp::{run, Call, Data, Tensor};
    let text = per_element_text();
    let (beta, ab) = linear_beta_tables(100);
    let g = [0.2, 0.3, 0.5];
    // The chain's coefficients: c = [sqrt(1 − β), sqrt(1 − 2β), 1].
    let mut chain_a = vec![[1.0f64; 3]; 101];
    let mut chain_v = vec![[0.0f64; 3]; 101];
    for t in 1..=100 {
        let c = [(1.0 - beta[t]).sqrt(), (1.0 - 2.0 * beta[t]).sqrt(), 1.0];
        for j in 0..3 {
            chain_a[t][j] = chain_a[t - 1][j] * c[j];
            chain_v[t][j] = c[j] * c[j] * chain_v[t - 1][j] + beta[t] * g[j];
        }
    }
    let (batch, d) = (2usize, 3usize);
    let values = |n: usize, seed: u32| -> Vec<f32> {
        (0..n as u32)
            .map(|i| ((i * 37 + seed * 11) % 23) as f32 / 5.0 - 2.2)
            .collect()
    };
    for name in ["vec_coeffs", "conditioned", "vec_chain"] {
        let p = process(&text, name);
        let k = p
            .posteriors
            .iter()
            .find(|k| k.derived)
            .expect("a derived posterior");
        assert_eq!(k.target.version, diffc::typed::Version::S);
        let width = if name == "conditioned" { 1 } else { 3 };
        let n = batch * d * width;
        let shape: Vec<usize> = if width == 1 {
            vec![batch, d]
        } else {
            vec![batch, d, 3]
        };
        let tensor = |v: Vec<f32>| Tensor {
            shape: shape.clone(),
            data: Data::F32(v),
        };
        let (xt, x0) = (values(n, 1), values(n, 2));
        let w: Vec<f32> = values(n, 3).iter().map(|x| x / 4.0).collect();
        // a and v at time `t` for element `i` of the flat arrays.
        let coeffs = |t: usize, i: usize| -> (f64, f64) {
            match name {
                "vec_coeffs" => {
                    let j = i % 3;
                    let a = ab[t].sqrt() * [1.0, 0.9, 1.0 / ab[t].sqrt()][j];
                    (a, (1.0 - ab[t]) * g[j])
                }
                "conditioned" => (ab[t].sqrt(), (1.0 - ab[t]) * (w[i] as f64).exp()),
                _ => (chain_a[t][i % 3], chain_v[t][i % 3]),
            }
        };
        let post = diffc::ir::lower::lower(&p, "posterior").unwrap();
        let mut worst = 0.0f64;
        for t in 1..=100usize {
            for s in [t - 1, t / 2, 0] {
                let mut call = Call {
                    batch,
                    ..Call::default()
                };
                call.sizes.insert("d".into(), d);
                call.inputs.insert("x_t".into(), tensor(xt.clone()));
                call.inputs.insert("x_0".into(), tensor(x0.clone()));
                if name == "conditioned" {
                    call.inputs.insert("w".into(), tensor(w.clone()));
                }
                call.inputs.insert("t".into(), Tensor::scalar(t as f32));
                call.inputs.insert("s".into(), Tensor::scalar(s as f32));
                let out = run(&p, &post, &call).unwrap();
                let (mean, var) = (out[0].f32s().unwrap(), out[1].f32s().unwrap());
                assert_eq!(mean.len(), n);
                for i in 0..n {
                    let (a_t, v_t) = coeffs(t, i);
                    let (a_s, v_s) = if s == 0 { (1.0, 0.0) } else { coeffs(s, i) };
                    let (c0, ct, pv) = vdm_posterior(a_t, v_t, a_s, v_s);
                    let want_mean = c0 * x0[i] as f64 + ct * xt[i] as f64;
                    let got_var = var[i % var.len()] as f64;
                    for (what, got, want) in [
                        ("mean", mean[i] as f64, want_mean),
                        ("variance", got_var, pv),
                    ] {
                        let err = (got - want).abs() / (1.0 + want.abs());
                        worst = worst.max(err);
                        assert!(
                            err <= 2e-6,
                            "{name} at t = {t}, s = {s}, element {i}: the posterior {what} is {got}, Bayes' rule gives {want}"
                        );
                    }
                }
            }
        }
        println!("{name}: derived posterior within {worst:.2e} of the closed form");
    }
    // The composed marginal: marked derived, `log_q` and `forward` as the closed form.
    let p = process(&text, "vec_chain");
    assert!(p
        .forwards
        .iter()
        .any(|k| k.kind == diffc::typed::KernelKind::Marginal && k.derived));
    assert!(p.schedules.iter().any(|s| s.name == "a_x" && s.derived));
    let n = batch * d * 3;
    let tensor = |v: Vec<f32>| Tensor {
        shape: vec![batch, d, 3],
        data: Data::F32(v),
    };
    let (xt, x0) = (values(n, 4), values(n, 5));
    let (lq, fw) = (
        diffc::ir::lower::lower(&p, "log_q").unwrap(),
        diffc::ir::lower::lower(&p, "forward").unwrap(),
    );
    for t in 1..=100usize {
        let mut call = Call {
            batch,
            seed: 3,
            ..Call::default()
        };
        call.sizes.insert("d".into(), d);
        call.inputs.insert("x_0".into(), tensor(x0.clone()));
        call.inputs.insert("t".into(), Tensor::scalar(t as f32));
        let fwd = run(&p, &fw, &call).unwrap();
        let (x, eps) = (fwd[0].f32s().unwrap(), fwd[1].f32s().unwrap());
        for i in 0..n {
            let (a, v) = (chain_a[t][i % 3], chain_v[t][i % 3]);
            let want = a * x0[i] as f64 + v.sqrt() * eps[i] as f64;
            assert!(
                (x[i] as f64 - want).abs() <= 2e-6 * (1.0 + want.abs()),
                "vec_chain forward at t = {t}, element {i}: {} against {want}",
                x[i]
            );
        }
        call.inputs.insert("x_t".into(), tensor(xt.clone()));
        let got = run(&p, &lq, &call).unwrap()[0].f32s().unwrap().to_vec();
        assert_eq!(got.len(), batch);
        for (b, &value) in got.iter().enumerate() {
            let mut want = 0.0f64;
            for i in b * d * 3..(b + 1) * d * 3 {
                let (a, v) = (chain_a[t][i % 3], chain_v[t][i % 3]);
                let r = xt[i] as f64 - a * x0[i] as f64;
                want += -0.5 * (2.0 * std::f64::consts::PI * v).ln() - r * r / (2.0 * v);
            }
            let err = (value as f64 - want).abs() / (1.0 + want.abs());
            assert!(
                err <= 1e-5,
                "vec_chain log_q at t = {t}, sample {b}: {value} against {want}"
            );
        }
    }
}

/// `vec_coeffs` with the posterior written by hand (Bayes' rule per component) and with it
/// derived: both samplers (every step, and 10 uniform steps), driven by the same denoiser and
/// seed, end at the same samples.
#[test]
fn a_sampler_drawing_a_derived_per_element_posterior_equals_the_written_one() {
    use diffc::interp::{sample, Data, Tensor};
    let text = per_element_text();
    let written = text.replacen(
        "  prior x_T ~ Normal(zeros(3), g)\n",
        "  prior x_T ~ Normal(zeros(3), g)
  posterior x_s | x_t, x_0 ~ Normal(c0 * x_0 + ct * x_t, pv) where {
    a_s = if s == 0 then ones(3) else ac(s)
    v_s = if s == 0 then zeros(3) else (1 - ab(s)) * g
    a_ts = ac(t) / a_s
    v_t = (1 - ab(t)) * g
    v_ts = v_t - a_ts ^ 2 * v_s
    c0 = a_s * v_ts / v_t
    ct = a_ts * v_s / v_t
    pv = v_ts * v_s / v_t
  }
",
        1,
    );
    assert_ne!(written, text);
    let (pw, pd) = (
        process(&written, "vec_coeffs"),
        process(&text, "vec_coeffs"),
    );
    assert!(pw.posteriors.iter().all(|k| !k.derived));
    assert!(pd.posteriors.iter().all(|k| k.derived));
    let d = 4;
    let start = Tensor {
        shape: vec![2, d, 3],
        data: Data::F32(
            (0..2 * d as u32 * 3)
                .map(|i| ((i * 37 + 33) % 23) as f32 / 5.0 - 2.2)
                .collect(),
        ),
    };
    for sampler in ["ancestral", "coarse"] {
        let run_with = |p: &diffc::typed::Process| {
            let sp = diffc::ir::lower::lower_sampler(p, sampler).unwrap();
            let call = diffc::interp::SampleCall {
                seed: 5,
                batch: 2,
                state: [("x".to_string(), start.clone())].into(),
                ..Default::default()
            };
            let mut den = |_: &diffc::typed::Process, c: &diffc::interp::NetCall| {
                let x = &c.inputs[0];
                Ok(vec![Tensor {
                    shape: x.shape.clone(),
                    data: Data::F32(x.f32s().unwrap().iter().map(|v| 0.1 * v).collect()),
                }])
            };
            sample(p, &sp, &call, &mut den).unwrap()["x"]
                .f32s()
                .unwrap()
                .to_vec()
        };
        let (a, b) = (run_with(&pw), run_with(&pd));
        assert_eq!(a.len(), 2 * d * 3);
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + x.abs()),
                "{sampler}: ends at {x} (written) and {y} (derived)"
            );
        }
    }
}

/// `posterior_soft` (x_0 as class probabilities) equals Σ_c p(c) · `posterior`(x_0 = c),
/// renormalised, computed here from separate `posterior` calls with every element's x_0 set to
/// each class in turn, for every discrete posterior of every shipped spec; and one-hot
/// probabilities give `posterior` itself.
#[test]
fn the_soft_posterior_mixes_the_posterior_over_the_given_class_probabilities() {
    use diffc::entries::{entries, EntryKind, Extent};
    use diffc::interp::{run, Call, Data, Tensor};
    use diffc::ir::lower::lower;
    use diffc::typed::Elem;
    let mut checked = 0;
    for p in common::shipped() {
        for e in entries(&p)
            .into_iter()
            .filter(|e| e.kind == EntryKind::PosteriorSoft)
        {
            let hard_name = e.name.replacen("posterior_soft", "posterior", 1);
            let soft = lower(&p, &e.name).unwrap();
            let hard = lower(&p, &hard_name).unwrap();
            let what = format!("{} {}", p.name, e.name);
            let mut g = common::diff::Gen(17);
            let (t, s) = common::diff::times(&p);
            let batch = 2usize;
            let mut call = Call {
                seed: 3,
                batch,
                sizes: p.dims.iter().map(|d| (d.name.clone(), 3)).collect(),
                ..Call::default()
            };
            let mut soft_port = None;
            for port in &e.inputs {
                match &port.extent {
                    Extent::Field(shape) => {
                        let mut dims = vec![batch];
                        dims.extend(shape.dims.iter().map(|_| 3));
                        if let Elem::Vec(k) = port.elem {
                            dims.push(k as usize);
                        }
                        let mut x = common::diff::tensor_for(&p, port.elem, dims, &mut g);
                        if shape.sym {
                            diffc::interp::symmetrize(&mut x);
                        }
                        if port.name.ends_with("_probs") {
                            soft_port = Some((port.name.clone(), port.elem));
                        }
                        call.inputs.insert(port.name.clone(), x);
                    }
                    Extent::Scalar if port.name == "s" => {
                        call.inputs.insert("s".into(), Tensor::scalar(s as f32));
                    }
                    Extent::Scalar => {
                        call.inputs
                            .insert(port.name.clone(), Tensor::scalar(t as f32));
                    }
                    Extent::Sample => unreachable!("{what}: a per-sample input"),
                }
            }
            let (probs_name, elem) = soft_port.unwrap();
            let sym = e
                .inputs
                .iter()
                .any(|q| q.name == probs_name && matches!(&q.extent, Extent::Field(s) if s.sym));
            let x0_name = probs_name.trim_end_matches("_probs").to_string();
            let w = call.inputs[&probs_name].f32s().unwrap().to_vec();
            let got = run(&p, &soft, &call).unwrap_or_else(|m| panic!("{what}: {m}"));
            let got = got[0].f32s().unwrap();
            // The posterior at each class of x_0, everywhere at once.
            let k = match elem {
                Elem::Vec(k) => k as usize,
                _ => 2,
            };
            let n = w.len() / if matches!(elem, Elem::Vec(_)) { k } else { 1 };
            let per_class: Vec<Vec<f32>> = (0..k)
                .map(|c| {
                    let mut hc = call.clone();
                    hc.inputs.remove(&probs_name);
                    let shape = call.inputs[&probs_name].shape.clone();
                    let shape = if matches!(elem, Elem::Vec(_)) {
                        shape[..shape.len() - 1].to_vec()
                    } else {
                        shape
                    };
                    let data = if matches!(elem, Elem::Vec(_)) {
                        Data::Class(vec![c as u32; n])
                    } else {
                        Data::Bool(vec![c == 1; n])
                    };
                    let mut x0 = Tensor { shape, data };
                    if sym {
                        diffc::interp::symmetrize(&mut x0);
                    }
                    hc.inputs.insert(x0_name.clone(), x0);
                    run(&p, &hard, &hc).unwrap_or_else(|m| panic!("{what} at class {c}: {m}"))[0]
                        .f32s()
                        .unwrap()
                        .to_vec()
                })
                .collect();
            let mut worst = 0f64;
            for i in 0..n {
                if let Elem::Vec(_) = elem {
                    let mixed: Vec<f64> = (0..k)
                        .map(|j| {
                            (0..k)
                                .map(|c| w[i * k + c] as f64 * per_class[c][i * k + j] as f64)
                                .sum::<f64>()
                        })
                        .collect();
                    // No mass (the empty diagonal of a symmetric field): 0.
                    let total: f64 = mixed.iter().sum();
                    let total = if total > 0.0 { total } else { 1.0 };
                    for j in 0..k {
                        worst = worst.max((got[i * k + j] as f64 - mixed[j] / total).abs());
                    }
                } else {
                    let want = (1.0 - w[i] as f64) * per_class[0][i] as f64
                        + w[i] as f64 * per_class[1][i] as f64;
                    worst = worst.max((got[i] as f64 - want).abs());
                }
            }
            assert!(worst < 2e-6, "{what}: off by {worst}");
            // One-hot probabilities at x_0 = x_t (a class x_t is always reachable from) give
            // the posterior at x_0 = x_t.
            let xt_name = e
                .inputs
                .iter()
                .find(|q| q.name.ends_with("_t") && !q.name.ends_with("_probs"))
                .map(|q| q.name.clone())
                .unwrap();
            let xt = call.inputs[&xt_name].clone();
            let classes: Vec<usize> = match &xt.data {
                Data::Class(v) => v.iter().map(|c| *c as usize).collect(),
                Data::Bool(v) => v.iter().map(|b| *b as usize).collect(),
                Data::F32(_) => unreachable!("{what}: a real x_t"),
            };
            let mut one = call.clone();
            let onehot: Vec<f32> = if let Elem::Vec(_) = elem {
                (0..n * k)
                    .map(|i| if i % k == classes[i / k] { 1.0 } else { 0.0 })
                    .collect()
            } else {
                classes.iter().map(|c| *c as f32).collect()
            };
            one.inputs.get_mut(&probs_name).unwrap().data = Data::F32(onehot);
            if sym {
                diffc::interp::symmetrize(one.inputs.get_mut(&probs_name).unwrap());
            }
            let mass: Vec<bool> = one.inputs[&probs_name]
                .f32s()
                .unwrap()
                .chunks(if matches!(elem, Elem::Vec(_)) { k } else { 1 })
                .map(|r| r.iter().sum::<f32>() > 0.0 || !sym)
                .collect();
            let at_one = run(&p, &soft, &one).unwrap_or_else(|m| panic!("{what}: one-hot: {m}"));
            let mut hc = call.clone();
            hc.inputs.remove(&probs_name);
            hc.inputs.insert(x0_name.clone(), xt);
            let want = run(&p, &hard, &hc).unwrap_or_else(|m| panic!("{what}: x_0 = x_t: {m}"));
            let per = if matches!(elem, Elem::Vec(_)) { k } else { 1 };
            for (i, (a, b)) in at_one[0]
                .f32s()
                .unwrap()
                .iter()
                .zip(want[0].f32s().unwrap())
                .enumerate()
            {
                // The empty diagonal of a symmetric field has no mass: 0 there.
                let b = if mass[i / per] { *b } else { 0.0 };
                assert!((a - b).abs() < 1e-6, "{what}: one-hot at {i}: {a} vs {b}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 6, "{checked} soft posteriors checked");
}

fn per_element_written_text() -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/per_element_written.diff",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// `per_element_written.diff` checks without errors: its per-component posteriors follow Bayes'
/// rule and its per-component marginal composes; the conditioned posterior, whose marginal reads
/// `w`, is reported unverified (W0003) at its distribution, and nothing else is.
#[test]
fn written_per_element_posteriors_and_marginals_check_clean() {
    let text = per_element_written_text();
    let diags = diagnostics(&text);
    assert!(
        diags.iter().all(|(c, _, _)| !c.starts_with('E')),
        "{diags:?}"
    );
    let unverified: Vec<_> = diags.iter().filter(|(c, _, _)| c == "W0003").collect();
    assert_eq!(unverified.len(), 1, "{diags:?}");
    let (_, message, label) = unverified[0];
    assert_eq!(
        message,
        "the posterior of `x_s` is not checked against Bayes' rule: the marginal's coefficients read `w`, known only at run time"
    );
    assert_eq!(label, "not verified");
    let (_, all) = diffc::check::check_source(&text);
    let w = all.iter().find(|d| d.code.as_str() == "W0003").unwrap();
    let (start, end) = (w.primary.span.start as usize, w.primary.span.end as usize);
    assert_eq!(&text[start..end], "Normal(c0 * x_0 + ct * x_t, pv)");
    assert!(text[..start].ends_with("posterior x_s | x_t, x_0, w ~ "));
}

/// Each written part of `per_element_written.diff`, changed in one component, is E0403 (the
/// posteriors) or E0404 (the marginal), naming the time, the component and both values.
#[test]
fn written_per_element_kernels_changed_in_one_component_are_caught() {
    let text = per_element_written_text();
    for (part, changed, code, says) in [
        (
            "    pv = v_ts * v_s / v_t\n",
            "    pv = v_ts * v_s / v_t * [1, 1.001, 1]\n",
            "E0403",
            "at t = 2, s = 1 the posterior variance in component 1 is ",
        ),
        (
            "    c0 = a_s * v_ts / v_t\n",
            "    c0 = a_s * v_ts / v_t * [1, 1, 1.001]\n",
            "E0403",
            "at t = 1, s = 0 the posterior mean's coefficient of x_0 in component 2 is 1.001, Bayes' rule gives 1",
        ),
        (
            "    ct = c(t) * v_p / v_t\n",
            "    ct = c(t) * v_p / v_t * [1.001, 1, 1]\n",
            "E0403",
            "at t = 2 the posterior mean's coefficient of x_t in component 0 is ",
        ),
        (
            "  schedule v(t) = [v1(t), v2(t), cumsum(beta(t))]\n",
            "  schedule v(t) = [v1(t), v2(t), 1.001 * cumsum(beta(t))]\n",
            "E0404",
            "at t = 1 the marginal's variance in component 2 is 5.005e-5, composing the one-step kernel from the data gives 5e-5",
        ),
    ] {
        // The first of each part is the first process's (`vec_coeffs`, else `vec_chain`).
        assert!(text.contains(part), "{part}");
        let bad = text.replacen(part, changed, 1);
        let errs = errors(&bad);
        let hit = errs.iter().find(|(c, m)| c == code && m.starts_with(says));
        assert!(hit.is_some(), "{changed}: {errs:?}");
    }
    // The cross-component term of x_t, written in the mean itself.
    let bad = text.replacen(
        "  posterior x_s | x_t, x_0 ~ Normal(c0 * x_0 + ct * x_t, pv)",
        "  posterior x_s | x_t, x_0 ~ Normal(c0 * x_0 + ct * x_t + [0, 0, 0.5] * vsum(x_0), pv)",
        1,
    );
    assert_ne!(bad, text);
    let errs = errors(&bad);
    assert!(
        errs.iter().any(|(c, m)| c == "E0403"
            && m.contains("component 2 of the posterior mean reads component 0 of x_0")),
        "{errs:?}"
    );
}

/// `#[approximate]` keeps a per-component disagreement as W0002 (posterior and marginal), and
/// on kernels that agree says the mark is not needed.
#[test]
fn approximate_keeps_per_element_disagreements_as_warnings() {
    let text = per_element_written_text();
    let off = text
        .replacen(
            "    pv = v_ts * v_s / v_t\n",
            "    pv = v_ts * v_s / v_t * [1, 1.001, 1]\n",
            1,
        )
        .replacen(
            "  forward x_t | x_{t-1} ~ Normal(c(t) * x_{t-1}, beta(t) * g)",
            "  forward x_t | x_{t-1} ~ Normal(c(t) * x_{t-1}, beta(t) * g * [1, 1, 1.001])",
            1,
        );
    assert_eq!(off.matches("1.001").count(), 2);
    let marked = |t: &str| {
        t.replacen(
            "  posterior x_s | x_t, x_0 ~",
            "  #[approximate]\n  posterior x_s | x_t, x_0 ~",
            1,
        )
        .replacen(
            "  forward x_t | x_0 ~ Normal(a(t) * x_0, v(t) * g)",
            "  #[approximate]\n  forward x_t | x_0 ~ Normal(a(t) * x_0, v(t) * g)",
            1,
        )
    };
    let kept = diagnostics(&marked(&off));
    assert!(kept.iter().all(|(c, _, _)| !c.starts_with('E')), "{kept:?}");
    let w2: Vec<_> = kept.iter().filter(|(c, _, _)| c == "W0002").collect();
    assert!(
        w2.iter().any(
            |(_, m, _)| m.contains("the posterior variance in component 1")
                && m.contains("(kept: the posterior of `x_s` is marked `#[approximate]`)")
        ),
        "{kept:?}"
    );
    assert!(
        w2.iter().any(
            |(_, m, _)| m.contains("the marginal's variance in component 2")
                && m.contains("(kept: the forward kernels of `x_t` are marked `#[approximate]`)")
        ),
        "{kept:?}"
    );
    let clean = diagnostics(&marked(&text));
    assert!(
        clean.iter().all(|(c, _, _)| !c.starts_with('E')),
        "{clean:?}"
    );
    let not_needed: Vec<_> = clean
        .iter()
        .filter(|(c, m, _)| {
            c == "W0002"
                && (m.contains("not needed")
                    || m.contains("follows Bayes' rule at every check point"))
        })
        .collect();
    assert_eq!(not_needed.len(), 2, "{clean:?}");
}

/// The written conditioned posterior (conditioned on x_t, x_0 and `w`, as its marginal is) gives
/// the derived one's `posterior` entry at every t and s = t − 1, ⌊t/2⌋, 0 (interp).
#[test]
fn a_written_conditioned_posterior_equals_the_derived_one() {
    use diffc::interp::{run, Call, Data, Tensor};
    let (pw, pd) = (
        process(&per_element_written_text(), "conditioned"),
        process(&per_element_text(), "conditioned"),
    );
    assert!(pw.posteriors.iter().all(|k| !k.derived));
    assert!(pd.posteriors.iter().all(|k| k.derived));
    let (batch, d) = (2usize, 3usize);
    let n = batch * d;
    let values = |seed: u32, scale: f32| -> Vec<f32> {
        (0..n as u32)
            .map(|i| (((i * 37 + seed * 11) % 23) as f32 / 5.0 - 2.2) * scale)
            .collect()
    };
    let tensor = |v: Vec<f32>| Tensor {
        shape: vec![batch, d],
        data: Data::F32(v),
    };
    let (ew, ed) = (
        diffc::ir::lower::lower(&pw, "posterior").unwrap(),
        diffc::ir::lower::lower(&pd, "posterior").unwrap(),
    );
    for t in [1usize, 2, 50, 100] {
        for s in [t - 1, t / 2, 0] {
            let mut call = Call {
                batch,
                ..Call::default()
            };
            call.sizes.insert("d".into(), d);
            call.inputs.insert("x_t".into(), tensor(values(1, 1.0)));
            call.inputs.insert("x_0".into(), tensor(values(2, 1.0)));
            call.inputs.insert("w".into(), tensor(values(3, 0.25)));
            call.inputs.insert("t".into(), Tensor::scalar(t as f32));
            call.inputs.insert("s".into(), Tensor::scalar(s as f32));
            let (a, b) = (run(&pw, &ew, &call).unwrap(), run(&pd, &ed, &call).unwrap());
            for (part, (x, y)) in ["mean", "variance"].iter().zip(a.iter().zip(&b)) {
                let (x, y) = (x.f32s().unwrap(), y.f32s().unwrap());
                assert_eq!(x.len(), y.len(), "{part}");
                for (u, v) in x.iter().zip(y) {
                    assert!(
                        (u - v).abs() <= 1e-5 * (1.0 + v.abs()),
                        "t = {t}, s = {s}: the written posterior's {part} is {u}, the derived one's {v}"
                    );
                }
            }
        }
    }
}
