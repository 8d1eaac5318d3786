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
