//! The checker's maths: tabulated schedules, derivatives and grids against closed forms.

use diffc::check::eval::{Env, Evaluator};
use diffc::typed::{Process, Value};

fn process(src: &str) -> Process {
    let (module, diags) = diffc::check::check_source(src);
    let source = diffc::diag::Source {
        name: "test.diff",
        text: src,
    };
    // These small processes leave schedules unused on purpose: only errors matter here.
    let errors: Vec<_> = diags.into_iter().filter(|d| d.is_error()).collect();
    assert!(
        errors.is_empty(),
        "{}",
        diffc::diag::render_text(&source, &errors, false)
    );
    module.unwrap().processes.remove(0)
}

fn table(p: &Process, name: &str, t: i64) -> f64 {
    let s = p.schedules.iter().find(|s| s.name == name).unwrap();
    let i = (t - (p.time.lo as i64 - 1)) as usize;
    match s.table[i].as_ref().unwrap() {
        Value::Real(x) => *x,
        v => panic!("{v:?}"),
    }
}

fn at(p: &Process, name: &str, t: f64) -> f64 {
    let s = p.schedules.iter().find(|s| s.name == name).unwrap();
    Evaluator::new(p)
        .real(
            s.body,
            &Env {
                t,
                ..Env::default()
            },
        )
        .unwrap()
}

#[test]
fn discrete_schedules_match_hand_computation() {
    let p = process(
        "process p { const T = 1000  time t : 1..T
           schedule beta(t) = linspace(1e-4, 0.02)
           schedule alpha_bar(t) = cumprod(1 - beta(t))
           schedule total(t) = cumsum(beta(t)) }",
    );
    let mut ab = 1.0f64;
    let mut sum = 0.0f64;
    for t in 1..=1000 {
        let beta = 1e-4 + (0.02 - 1e-4) * (t - 1) as f64 / 999.0;
        ab *= 1.0 - beta;
        sum += beta;
        assert!((table(&p, "beta", t) - beta).abs() < 1e-15);
        assert!(
            (table(&p, "alpha_bar", t) - ab).abs() < 1e-12 * ab.max(1e-300),
            "t = {t}"
        );
        assert!((table(&p, "total", t) - sum).abs() < 1e-12);
    }
    // The empty product and sum below the domain.
    assert_eq!(table(&p, "alpha_bar", 0), 1.0);
    assert_eq!(table(&p, "total", 0), 0.0);
    let s = p.schedules.iter().find(|s| s.name == "beta").unwrap();
    assert!(
        s.table[0].is_none(),
        "linspace is not defined below its domain"
    );
}

#[test]
fn matrix_cumprod_is_the_ordered_product() {
    let p = process(
        "process p { const K = 3  time t : 1..4
           schedule beta(t) = 0.1 * t
           schedule Q(t) = (1 - beta(t)) * eye(K) + beta(t) * [[0, 0, 1], [0, 0, 1], [0, 0, 1]]
           schedule Qbar(t) = cumprod(Q(t)) }",
    );
    let q = |t: f64| {
        let b = 0.1 * t;
        let mut m = [[0.0; 3]; 3];
        for (i, row) in m.iter_mut().enumerate() {
            row[i] += 1.0 - b;
            row[2] += b;
        }
        m
    };
    let mut prod = q(1.0);
    for t in 2..=4 {
        let next = q(t as f64);
        let mut out = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                out[i][j] = (0..3).map(|l| prod[i][l] * next[l][j]).sum();
            }
        }
        prod = out;
    }
    let s = p.schedules.iter().find(|s| s.name == "Qbar").unwrap();
    let Some(Value::Mat(3, m)) = &s.table[4] else {
        panic!()
    };
    for i in 0..3 {
        for j in 0..3 {
            assert!((m[i * 3 + j] - prod[i][j]).abs() < 1e-14);
        }
    }
}

#[test]
fn deriv_is_exact_for_the_vp_marginal() {
    // alpha(t) = exp(-t^2 (b1 - b0) / 4 - t b0 / 2); d log alpha / dt = -(b0 + t (b1 - b0)) / 2.
    let p = process(
        "process p { const b0 = 0.1  const b1 = 20  time t : [1e-3, 1]
           schedule alpha(t) = exp(-0.25 * t^2 * (b1 - b0) - 0.5 * t * b0)
           schedule f(t) = deriv(log(alpha(t))) }",
    );
    for i in 0..=10 {
        let t = 1e-3 + (1.0 - 1e-3) * i as f64 / 10.0;
        let want = -0.5 * (0.1 + t * (20.0 - 0.1));
        assert!((at(&p, "f", t) - want).abs() < 1e-12, "t = {t}");
    }
}

const VP: &str =
    "process vp { const b0 = 0.1  const b1 = 20  dim d  field x : real[d]  time t : [1e-3, 1]
  schedule alpha(t) = exp(-0.25 * t^2 * (b1 - b0) - 0.5 * t * b0)
  forward x_t | x_0 ~ Normal(alpha(t) * x_0, 1 - alpha(t)^2)
  prior x_T ~ Normal(0, 1)
  network eps_hat(x_t, t) -> eps(x)
  sampler a(n = 10) { grid = logsnr(n)  step { x = x - eps_hat(x, t).x0 * 0 } }
  sampler b(n = 8) { grid = karras(n, 7)  step { x = x } }
  sampler c(n = 4) { grid = quadratic(n)  step { x = x } } }";

#[test]
fn logsnr_grid_is_uniform_in_half_log_snr() {
    let p = process(VP);
    let lambda = |t: f64| {
        let a = at(&p, "alpha", t);
        a.ln() - 0.5 * (1.0 - a * a).ln()
    };
    let g = &p.samplers[0].default_grid;
    assert_eq!(g.len(), 11);
    assert_eq!((g[0], g[10]), (1.0, 1e-3));
    let h: Vec<f64> = g.windows(2).map(|w| lambda(w[1]) - lambda(w[0])).collect();
    for x in &h {
        assert!((x - h[0]).abs() < 1e-9, "{h:?}");
    }
}

#[test]
fn karras_grid_is_uniform_in_sigma_to_the_one_over_rho() {
    let p = process(VP);
    let u = |t: f64| {
        let a = at(&p, "alpha", t);
        ((1.0 - a * a).sqrt() / a).powf(1.0 / 7.0)
    };
    let g = &p.samplers[1].default_grid;
    let d: Vec<f64> = g.windows(2).map(|w| u(w[1]) - u(w[0])).collect();
    for x in &d {
        assert!((x - d[0]).abs() < 1e-9, "{d:?}");
    }
}

#[test]
fn quadratic_grid_is_uniform_in_sqrt_t() {
    let p = process(VP);
    let g = &p.samplers[2].default_grid;
    let d: Vec<f64> = g.windows(2).map(|w| w[1].sqrt() - w[0].sqrt()).collect();
    for x in &d {
        assert!((x - d[0]).abs() < 1e-12, "{d:?}");
    }
}

#[test]
fn outer_and_row_lists_build_the_same_matrix() {
    let p = process(
        "process p { const K = 3  time t : 1..2
           schedule A(t) = outer(ones(K), onehot(2, K))
           schedule B(t) = [onehot(2, K) for j in 0..K - 1] }",
    );
    let a = p.schedules[0].table[1].clone().unwrap();
    let b = p.schedules[1].table[1].clone().unwrap();
    assert_eq!(
        a,
        Value::Mat(3, vec![0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    );
    assert_eq!(a, b);
}

#[test]
fn one_sided_intervals() {
    process("process p { time t : 1..3  schedule v(t) in (0, inf) increasing = 10 ^ t }");
    let (m, d) = diffc::check::check_source(
        "process p { time t : 1..3  schedule v(t) in (-inf, 0) = 10 ^ t }",
    );
    assert!(m.is_none());
    assert!(
        d[0].message.contains("leaves (-inf, 0)"),
        "{}",
        d[0].message
    );
}

/// The first error's code and message, or `None` when the source checks.
fn first_error(src: &str) -> Option<(String, String)> {
    let (_, diags) = diffc::check::check_source(src);
    diags
        .into_iter()
        .find(|d| d.is_error())
        .map(|d| (d.code.as_str().to_string(), d.message))
}

/// A shipped spec with one `const` line's value replaced.
fn shipped_with(file: &str, from: &str, to: &str) -> String {
    let path = format!("{}/specs/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches(from).count(), 1, "`{from}` in {file}");
    text.replace(from, to)
}

/// A shipped spec with one `const` line's value replaced inside one of its processes (from
/// `process NAME {` to the next process or the end of the file).
fn shipped_process_with(file: &str, process: &str, from: &str, to: &str) -> String {
    let path = format!("{}/specs/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let head = format!("\nprocess {process} {{");
    let start = text
        .find(&head)
        .unwrap_or_else(|| panic!("no {head} in {file}"))
        + 1;
    let end = text[start..]
        .find("\nprocess ")
        .map_or(text.len(), |i| start + i);
    let body = &text[start..end];
    assert_eq!(
        body.matches(from).count(),
        1,
        "`{from}` in {file}'s {process}"
    );
    format!(
        "{}{}{}",
        &text[..start],
        body.replace(from, to),
        &text[end..]
    )
}

/// The process `name` of a source that checks.
fn process_named(src: &str, name: &str) -> Process {
    let (module, diags) = diffc::check::check_source(src);
    let errors: Vec<_> = diags.into_iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{}", errors[0].message);
    module
        .unwrap()
        .processes
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no process {name}"))
}

#[test]
fn shipped_edge_checks_at_the_papers_step_counts() {
    // EDGE's settings: T = 64 small graphs, 128 Ego, 512 large networks; 32 and 256 around
    // them, and 1000. p_re(1) = β_1 ᾱ_0 / (1 - ᾱ_1) = 1 exactly, and must be exactly 1 here.
    for t_max in [21, 32, 64, 128, 256, 512, 1000] {
        let src = shipped_process_with(
            "edge.diff",
            "edge",
            "const T = 64 ",
            &format!("const T = {t_max} "),
        );
        let p = process_named(&src, "edge");
        assert_eq!(table(&p, "p_re", 1), 1.0, "T = {t_max}");
        for t in 2..=t_max {
            let v = table(&p, "p_re", t);
            assert!(v > 0.0 && v < 1.0, "T = {t_max}, t = {t}: p_re = {v}");
        }
    }
    // T = 16 is refused, rightly: the linear β reaches 0.02·1000/16 = 1.25, so α = 1 - β < 0
    // from t = 13 on (the authors' code takes log α there and cannot run it either).
    let src = shipped_process_with("edge.diff", "edge", "const T = 64 ", "const T = 16 ");
    let (code, message) = first_error(&src).expect("T = 16 must be refused");
    assert_eq!(code, "E0402");
    assert!(
        message.contains("`beta` leaves (0, 1) at t = 13"),
        "{message}"
    );
}

#[test]
fn shipped_edge_cosine_checks_at_every_step_count_the_paper_uses() {
    // The authors' cosine keep-probabilities run where the linear β cannot: 8–64 steps for
    // small graphs (the paper's recommendation), 128 Ego, 256, 1000. p_re(1) = 1 exactly, and
    // every schedule stays inside its declared interval at every t.
    for t_max in [8, 16, 32, 64, 128, 256, 1000] {
        let src = shipped_process_with(
            "edge.diff",
            "edge_cosine",
            "const T = 64 ",
            &format!("const T = {t_max} "),
        );
        let p = process_named(&src, "edge_cosine");
        assert_eq!(p.time.hi, t_max as f64, "T = {t_max}");
        assert_eq!(table(&p, "p_re", 1), 1.0, "T = {t_max}");
        // The clip at 0.001 acts at t = T only: α_T = sqrt(0.001).
        assert!(
            (table(&p, "alpha", t_max) - 0.001f64.sqrt()).abs() < 1e-15,
            "T = {t_max}"
        );
        for t in 1..=t_max {
            let a = table(&p, "alpha", t);
            let ab = table(&p, "alpha_bar", t);
            assert!(a > 0.0 && a < 1.0, "T = {t_max}, t = {t}: alpha = {a}");
            assert!(
                ab > 0.0 && ab < 1.0,
                "T = {t_max}, t = {t}: alpha_bar = {ab}"
            );
            if t > 1 {
                let v = table(&p, "p_re", t);
                assert!(v > 0.0 && v < 1.0, "T = {t_max}, t = {t}: p_re = {v}");
            }
        }
    }
}

#[test]
fn shipped_bfn_discrete_checks_at_the_papers_accuracies() {
    // max √β = 0.75 (text8, β₁ = 0.5625), 1, and 3 (binarised MNIST, β₁ = 9).
    for sqrt_beta1 in ["0.75", "1", "3"] {
        let src = shipped_with(
            "bfn_discrete.diff",
            "const SQRT_BETA1 = 0.75 ",
            &format!("const SQRT_BETA1 = {sqrt_beta1} "),
        );
        let p = process(&src);
        let b1: f64 = sqrt_beta1.parse().unwrap();
        let top = at(&p, "sqrt_beta", 1.0);
        assert!((top - b1 * (1.0 - 1e-6)).abs() < 1e-12, "√β(1) = {top}");
    }
}

#[test]
fn a_closed_end_admits_rounding_and_the_end_is_what_is_used() {
    // One ulp above 1 (ε = 2⁻⁵²): taken as 1, and a schedule reading it sees exactly 1
    // (unsnapped, `q` would be 2.2e-10 and leave [0, 0]).
    let p = process(
        "process p { time t : 1..3
           schedule p(t) in (0, 1] = 1 + 2.220446049250313e-16
           schedule q(t) in [0, 0] = (p(t) - 1) * 1e6
           schedule r(t) in [0, 1] = -1e-16 * t }",
    );
    for t in 1..=3 {
        assert_eq!(table(&p, "p", t), 1.0);
        assert_eq!(table(&p, "q", t), 0.0);
        assert_eq!(table(&p, "r", t), 0.0);
    }
    // Continuous time: the same rule wherever the schedule is read.
    let p = process(
        "process p { time t : [0, 1]
           schedule p(t) in [0, 1] = 1 + 2.220446049250313e-16 * t
           schedule q(t) = p(t) }",
    );
    assert_eq!(at(&p, "q", 1.0), 1.0);
    assert_eq!(at(&p, "q", 0.5), 1.0);
}

#[test]
fn a_schedule_past_its_closed_end_by_more_than_rounding_is_refused() {
    for (body, shown) in [
        ("1.001", "p = 1.001"),
        ("1 + 1e-12", "p = 1.000000000001"),
        // 5 ulps, one past the slack.
        ("1 + 5 * 2.220446049250313e-16", "p = 1.000000000000001"),
    ] {
        let src = format!("process p {{ time t : 1..3  schedule p(t) in (0, 1] = {body} }}");
        let (code, message) = first_error(&src).unwrap_or_else(|| panic!("{body} checks"));
        assert_eq!(code, "E0402", "{body}");
        assert!(message.contains("leaves (0, 1] at t = 1"), "{message}");
        let (_, diags) = diffc::check::check_source(&src);
        assert_eq!(diags[0].primary.message, shown, "{body}");
    }
    // The paper's form of EDGE's p_re cancels in 1 - ᾱ_1 and lands 5.7e-14 above 1 at T = 128:
    // far beyond rounding, so it is refused (the shipped spec avoids the cancellation).
    let (code, message) = first_error(
        "process p { const T = 128  time t : 1..T
           schedule beta(t) = linspace(1e-4 * 1000 / T, 0.02 * 1000 / T)
           schedule alpha_bar(t) = cumprod(1 - beta(t))
           schedule p_re(t) in (0, 1] = beta(t) * alpha_bar(t-1) / (1 - alpha_bar(t)) }",
    )
    .expect("the cancelling form must be refused");
    assert_eq!(code, "E0402");
    assert!(
        message.contains("`p_re` leaves (0, 1] at t = 1"),
        "{message}"
    );
    // An open end stays strict: a value equal to it is refused.
    let (code, _) = first_error("process p { time t : 1..3  schedule p(t) in (0, 1) = 1 }")
        .expect("1 is not in (0, 1)");
    assert_eq!(code, "E0402");
}
