//! Bayes' rule: a written posterior checked against the forward kernels it should follow from.
//!
//! **Gaussian.** For a field with a Gaussian marginal `x_t | x_0 ~ Normal(a(t) x_0, v(t))`, the
//! posterior of an earlier time s given x_t and x_0 is Gaussian with
//!
//!   mean = (a_{t|s} v_s / v_t) x_t + (a_s v_{t|s} / v_t) x_0,   variance = v_{t|s} v_s / v_t,
//!
//! where a_{t|s} = a_t / a_s and v_{t|s} = v_t − a_{t|s}² v_s (the one-step map from s to t that
//! the marginals imply; at the data end a_s = 1 and v_s = 0). A written posterior
//! `Normal(m, w)` is evaluated at every check point in f64 with x_t and x_0 set to 0, 1 and 2: its
//! mean must be affine in them with these coefficients and no constant term, and its variance
//! must be the one above, each within a relative `TOLERANCE` (which allows for the rounding of
//! tables built in f64, such as a product of a thousand factors).
//!
//! The same check runs per component for a `vec<K>` field and for a marginal whose coefficients
//! vary per element (`Checker::elementwise_affine`; `param`s at their defaults): x_t and x_0
//! are set to 0, 1 and 2 in every component and to 1 in one component at a time, so that
//! component j of the mean must read component j of x_t and x_0 only, with component j's
//! coefficients, and component j of the variance must be component j's. The error names the
//! component. Coefficients that read a field the marginal is conditioned on (`x_t | x_0, w`), or
//! a posterior that reads a value known only at run time, cannot be evaluated here: W0003 says
//! the posterior is not verified.
//!
//! **Categorical and Bernoulli.** For a discrete field with a one-step kernel
//! q(x_t | x_{t-1}) and a marginal q(x_t | x_0), both as written,
//!
//!   q(x_{t-1} = j | x_t = c, x_0 = c0) ∝ q(x_t = c | x_{t-1} = j) · q(x_{t-1} = j | x_0 = c0),
//!
//! normalised over j (at the data end q(x_0 = j | x_0 = c0) is 1 for j = c0). A written
//! `Categorical(p)` or `Bernoulli(p)` posterior is evaluated at the check times and for the
//! class combinations (c, c0) that the marginal can reach (Bayes' rule conditions on x_t), and
//! each probability must equal Bayes' rule's within `DISCRETE_TOLERANCE` (absolute). Within the
//! enumeration limits (`MAX_ENUM_TIMES` times, `MAX_COMBOS` combinations per time, spread so that
//! successive times check different combinations), a check that cannot cover every combination,
//! or a field with more classes than `MAX_COMBOS`, is reported as W0003.
//!
//! A disagreement is error E0403 at the written expression, naming the time, the classes, the
//! value written and the value Bayes' rule gives. A posterior marked `#[approximate]` is kept
//! where it differs, with warning W0002 that says so.

use super::eval::{Env, Evaluator};
use super::kernels::{MAX_COMBOS, MAX_ENUM_TIMES};
use super::Checker;
use crate::diag::{Code, Diagnostic};
use crate::typed::{
    Elem, ExprId, ExprKind, Family, FieldRef, Kernel, KernelKind, TimeKind, Value, Version,
};

/// The error `d` kept as warning W0002, because `whose` ("the posterior of `x` is marked")
/// carries `#[approximate]` at `mark`.
pub(super) fn kept(d: Diagnostic, mark: crate::diag::Span, whose: &str, why: &str) -> Diagnostic {
    let mut w = Diagnostic::warning(
        Code::Approximation,
        d.primary.span,
        format!("{} (kept: {whose} `#[approximate]`)", d.message),
    )
    .with_label(d.primary.message.clone())
    .with_secondary(mark, why.to_string());
    for n in d.notes {
        w = w.with_note(n);
    }
    w
}

/// Relative tolerance of the Gaussian comparison (of the coefficients and the variance).
pub(crate) const TOLERANCE: f64 = 1e-6;

/// Absolute tolerance of a discrete posterior's probabilities against Bayes' rule's.
pub(crate) const DISCRETE_TOLERANCE: f64 = 1e-9;

/// What checking one posterior found: `None` where it could not be checked (no kernels to
/// check it against, or an expression that does not evaluate at compile time), else the first
/// disagreement if any.
type Found = Option<Option<Diagnostic>>;

impl Checker<'_> {
    /// Every written posterior against Bayes' rule on its field's forward kernels.
    pub(super) fn check_bayes(&mut self) {
        let posts: Vec<Kernel> = self
            .p
            .posteriors
            .iter()
            .filter(|k| !k.derived)
            .cloned()
            .collect();
        for k in posts {
            let found = match k.family {
                Family::Normal => self.bayes_normal(&k),
                Family::Categorical | Family::Bernoulli => self.bayes_discrete(&k),
                _ => None,
            };
            let name = self.version_name(k.target);
            match (found, k.approximate) {
                (Some(Some(d)), None) => self.error(d),
                (Some(Some(d)), Some(mark)) => {
                    let w = kept(
                        d,
                        mark,
                        &format!("the posterior of `{name}` is marked"),
                        "a deliberate approximation of Bayes' rule",
                    );
                    self.diags.push(w);
                }
                (Some(None), Some(mark)) => {
                    let w = Diagnostic::warning(
                        Code::Approximation,
                        mark,
                        format!(
                            "the posterior of `{name}` is marked `#[approximate]`, but it follows Bayes' rule at every check point"
                        ),
                    )
                    .with_label("not needed")
                    .with_note("remove the mark, so that a later change that breaks Bayes' rule is an error");
                    self.diags.push(w);
                }
                _ => {}
            }
        }
    }

    /// A written categorical or Bernoulli posterior q(x_{t-1} | x_t, x_0) against Bayes' rule on
    /// the field's written one-step kernel and marginal.
    fn bayes_discrete(&mut self, k: &Kernel) -> Found {
        let field = k.target.field;
        let time = self.p.time.clone();
        let classes = match self.p.field(field).elem {
            Elem::Cat(n) => n as usize,
            Elem::Bool => 2,
            _ => return None,
        };
        let marginal = self
            .p
            .forwards
            .iter()
            .find(|f| f.kind == KernelKind::Marginal && f.target.field == field)?
            .clone();
        let first = |e: ExprId| match &self.p.expr(e).kind {
            ExprKind::Dist { params, .. } => params.first().copied(),
            _ => None,
        };
        let at = |version| FieldRef { field, version };
        let (x_t, x_0, x_prev) = (at(Version::T), at(Version::Data), at(Version::Back(1)));
        // The one-step kernel as written (discrete time), or, without one, the step a mixture
        // marginal a_t e_{x_0} + (1 − a_t) π implies (`check::derive`).
        let one_step = self
            .p
            .forwards
            .iter()
            .find(|f| f.kind == KernelKind::OneStep && f.target.field == field)
            .cloned();
        let (post_p, marg_p) = (first(k.dist)?, first(marginal.dist)?);
        let step_p = match &one_step {
            Some(o) if time.kind == TimeKind::Discrete && o.family == k.family => {
                Some(first(o.dist)?)
            }
            Some(_) => return None,
            None if matches!(self.p.field(field).elem, Elem::Cat(_))
                && self.is_mixture(marg_p, x_0, classes) =>
            {
                None
            }
            None => return None,
        };
        if marginal.family != k.family {
            return None;
        }
        let step_text = match &one_step {
            Some(o) => super::super::explain::show(&self.p, o.dist),
            None => {
                "the step r e_(x_s) + (1 − r) π of the mixture marginal, r = a_t / a_s".to_string()
            }
        };
        if !k.given.contains(&x_t) || !k.given.contains(&x_0) {
            return None;
        }
        let name = self.version_name(k.target);
        let names = (self.version_name(x_t), self.version_name(x_0));
        // The probabilities as written in the declaration (not inside a function they call).
        let span = {
            let (inner, dist) = (self.p.expr(post_p).span, self.p.expr(k.dist).span);
            if inner.start >= k.span.start && inner.end <= k.span.end {
                inner
            } else {
                dist
            }
        };
        if classes > MAX_COMBOS {
            let d = Diagnostic::warning(
                Code::Unverified,
                span,
                format!("the posterior of `{name}` is not checked against Bayes' rule: {classes} classes are more than the {MAX_COMBOS} that the checker enumerates"),
            )
            .with_label("not verified");
            self.diags.push(d);
            return None;
        }
        let bernoulli = k.family == Family::Bernoulli;
        let value = |c: usize| {
            if bernoulli {
                Value::Bool(c == 1)
            } else {
                Value::Real(c as f64)
            }
        };
        let ev = Evaluator::new(&self.p);
        // A distribution's probabilities over the classes (Bernoulli: [P(false), P(true)]).
        let probs = |e: ExprId, env: &Env| -> Option<Vec<f64>> {
            match ev.eval(e, env).ok()? {
                Value::Vec(p) if !bernoulli && p.len() == classes => Some(p),
                Value::Real(p) if bernoulli => Some(vec![1.0 - p, p]),
                _ => None,
            }
        };
        let class_text = |c: usize| {
            if bernoulli {
                (c == 1).to_string()
            } else {
                c.to_string()
            }
        };
        let pairs: Vec<(f64, f64)> = self
            .time_pairs(k, Some(MAX_ENUM_TIMES))
            .into_iter()
            .filter_map(|(t, s)| Some((t, s?)))
            .collect();
        let total = classes * classes;
        let stride = total.div_ceil(MAX_COMBOS).max(1);
        let fmt = super::schedules::fmt;
        // The largest disagreement over every check point, and how many probabilities differ.
        struct Worst {
            diff: f64,
            when: String,
            c: usize,
            c0: usize,
            j: usize,
            got: f64,
            want: f64,
        }
        let mut worst: Option<Worst> = None;
        let (mut checked, mut differing) = (0usize, 0usize);
        for (i, &(t, s)) in pairs.iter().enumerate() {
            let mut step = Vec::with_capacity(classes);
            match step_p {
                // q(x_t | x_s = j) from the one-step kernel at t; s must be the step before t.
                Some(step_p) => {
                    if (t - s).abs() != 1.0 {
                        return None;
                    }
                    for j in 0..classes {
                        let env = Env {
                            t,
                            fields: vec![(x_prev, value(j))],
                            ..Env::default()
                        };
                        step.push(probs(step_p, &env)?);
                    }
                }
                // r e_j + (1 − r) π, with a and π read off the marginal at t and s.
                None => {
                    let (a_t, rest) = self.mixture_parts(marg_p, x_0, classes, t)?;
                    let a_s = if s == time.data_at {
                        1.0
                    } else {
                        self.mixture_parts(marg_p, x_0, classes, s)?.0
                    };
                    if a_t >= 1.0 || a_s <= 0.0 {
                        continue;
                    }
                    let pi: Vec<f64> = rest.iter().map(|x| x / (1.0 - a_t)).collect();
                    let r = a_t / a_s;
                    for j in 0..classes {
                        step.push(
                            (0..classes)
                                .map(|c| (1.0 - r) * pi[c] + if c == j { r } else { 0.0 })
                                .collect(),
                        );
                    }
                }
            }
            // q(x_s | x_0 = c0) from the marginal at s (the data itself at the data end).
            let mut marg: Vec<Option<Vec<f64>>> = vec![None; classes];
            let when = if k.target.version == Version::S {
                format!("at {} = {}, s = {}", time.name, fmt(t), fmt(s))
            } else {
                format!("at {} = {}", time.name, fmt(t))
            };
            // Successive times start at successive offsets, so that together they check
            // every combination where one time cannot.
            let mut idx = i % stride;
            while idx < total {
                let (c, c0) = (idx % classes, idx / classes);
                idx += stride;
                if marg[c0].is_none() {
                    marg[c0] = Some(if s == time.data_at {
                        (0..classes).map(|j| f64::from(j == c0)).collect()
                    } else {
                        let env = Env {
                            t: s,
                            fields: vec![(x_0, value(c0))],
                            ..Env::default()
                        };
                        probs(marg_p, &env)?
                    });
                }
                let from_0 = marg[c0].as_ref()?;
                let w: Vec<f64> = (0..classes).map(|j| step[j][c] * from_0[j]).collect();
                let z: f64 = w.iter().sum();
                // Bayes' rule conditions on x_t: a value that x_0 cannot reach has no posterior.
                if z.is_nan() || z <= 0.0 {
                    continue;
                }
                let env = Env {
                    t,
                    s: Some(s),
                    fields: vec![(x_t, value(c)), (x_0, value(c0))],
                    ..Env::default()
                };
                let got = probs(post_p, &env)?;
                // Bernoulli: the probability of `true` alone (the other is its complement).
                let range = if bernoulli { 1..2 } else { 0..classes };
                for j in range {
                    let want = w[j] / z;
                    // A probability that is not a number differs by the most.
                    let diff = match (got[j] - want).abs() {
                        d if d.is_nan() => f64::INFINITY,
                        d => d,
                    };
                    checked += 1;
                    if diff <= DISCRETE_TOLERANCE {
                        continue;
                    }
                    differing += 1;
                    if worst.as_ref().is_none_or(|w| diff > w.diff) {
                        worst = Some(Worst {
                            diff,
                            when: when.clone(),
                            c,
                            c0,
                            j,
                            got: got[j],
                            want,
                        });
                    }
                }
            }
        }
        if let Some(w) = worst {
            let (g, b) = if fmt(w.got) == fmt(w.want) {
                (format!("{:e}", w.got), format!("{:e}", w.want))
            } else {
                (fmt(w.got), fmt(w.want))
            };
            let which = if bernoulli {
                format!("the posterior probability that `{name}` is true")
            } else {
                format!("the posterior probability of `{name}` = {}", w.j)
            };
            let d = Diagnostic::error(
                Code::Bayes,
                span,
                format!(
                    "{}, {} = {}, {} = {}: {which} is {g}, Bayes' rule gives {b}",
                    w.when,
                    names.0,
                    class_text(w.c),
                    names.1,
                    class_text(w.c0)
                ),
            )
            .with_label("this does not follow from the forward kernels")
            .with_note(format!(
                "Bayes' rule: q({name} | {}, {}) ∝ q({} | {name}) q({name} | {}), from `{}` and `{}` (compared within {DISCRETE_TOLERANCE:e} absolute)",
                names.0,
                names.1,
                names.0,
                names.1,
                step_text,
                super::super::explain::show(&self.p, marginal.dist),
            ))
            .with_note(format!(
                "this is the largest difference, {:.2e}; {differing} of the {checked} probabilities checked differ by more than {DISCRETE_TOLERANCE:e}",
                w.diff
            ));
            return Some(Some(d));
        }
        if pairs.len() < stride && !pairs.is_empty() {
            let checked = (pairs.len() * total.div_ceil(stride)).min(total);
            let d = Diagnostic::warning(
                Code::Unverified,
                span,
                format!(
                    "the posterior of `{name}` is checked against Bayes' rule for about {checked} of the {total} class combinations of `{}` and `{}`: the checker enumerates at most {MAX_COMBOS} per time at {MAX_ENUM_TIMES} times",
                    names.0, names.1
                ),
            )
            .with_label("partly verified");
            self.diags.push(d);
        }
        Some(None)
    }

    /// The Gaussian posterior `k` against Bayes' rule on its field's marginal, per component
    /// where the field is a `vec<K>` or the marginal's coefficients vary per element.
    fn bayes_normal(&mut self, k: &Kernel) -> Found {
        let field = k.target.field;
        let marginal = self
            .p
            .forwards
            .iter()
            .find(|f| f.kind == KernelKind::Marginal && f.target.field == field)?
            .clone();
        let (alpha, var_m) = match marginal.affine {
            Some(a) => (a.alpha, a.var),
            None => match self.p.expr(marginal.dist).kind.clone() {
                ExprKind::Dist { params, .. } if params.len() == 2 => {
                    self.elementwise_affine(params[0], params[1], field)?
                }
                _ => return None,
            },
        };
        let ExprKind::Dist { params, .. } = &self.p.expr(k.dist).kind else {
            return None;
        };
        let (mean, var) = (*params.first()?, *params.get(1)?);
        let x_t = *k
            .given
            .iter()
            .find(|g| g.version == Version::T && g.field == field)?;
        let x_0 = *k
            .given
            .iter()
            .find(|g| g.version == Version::Data && g.field == field)?;
        // Components: 1 for a real field, K for a vec<K> one.
        let (comps, vector) = match self.p.field(field).elem {
            Elem::Real => (1, false),
            Elem::Vec(n) => (n as usize, true),
            _ => return None,
        };
        let name = self.version_name(k.target);
        let ev = Evaluator::new(&self.p);
        let time = self.p.time.clone();
        // A value as one number per component (a real broadcast over them).
        let numbers = |v: Value| match v {
            Value::Real(x) => Some(vec![x; comps]),
            Value::Vec(xs) if xs.len() == comps => Some(xs),
            _ => None,
        };
        // The value of the field at every component: `x` at component `at` (all where None).
        let field_value = |x: f64, at: Option<usize>| {
            if vector {
                Value::Vec(
                    (0..comps)
                        .map(|j| if at.is_none_or(|i| i == j) { x } else { 0.0 })
                        .collect(),
                )
            } else {
                Value::Real(x)
            }
        };
        // Coefficients known only at run time (read from a field the marginal is conditioned
        // on), or a posterior that reads one: not verified, said so.
        let unverified = |c: &Self, why: String| {
            let d = Diagnostic::warning(
                Code::Unverified,
                c.p.expr(k.dist).span,
                format!("the posterior of `{name}` is not checked against Bayes' rule: {why}"),
            )
            .with_label("not verified");
            Some(d)
        };
        let conditions: Vec<String> = marginal
            .given
            .iter()
            .filter(|g| **g != x_0)
            .map(|g| format!("`{}`", self.version_name(*g)))
            .collect();
        let run_time_why = if conditions.is_empty() {
            "its values are known only at run time".to_string()
        } else {
            format!(
                "the marginal's coefficients read {}, known only at run time",
                conditions.join(", ")
            )
        };
        let at = |time_: f64| Env {
            t: time_,
            ..Env::default()
        };
        let mut warning = None;
        let mut result = Some(None);
        'times: for (t, s) in self.time_pairs(k, Some(200)) {
            let Some(s) = s else { continue };
            let coeffs = |e: ExprId, when: f64| match ev.eval(e, &at(when)) {
                Ok(v) => Ok(numbers(v)),
                Err(super::eval::EvalError::Runtime) => Err(()),
                Err(_) => Ok(None),
            };
            // The marginal at t, and at s (the data itself at the data end).
            let (a_t, v_t, a_s, v_s) = match (
                coeffs(alpha, t),
                coeffs(var_m, t),
                coeffs(alpha, s),
                coeffs(var_m, s),
            ) {
                (Err(()), ..) | (_, Err(()), ..) | (.., Err(()), _) | (.., Err(())) => {
                    warning = unverified(self, run_time_why.clone());
                    result = None;
                    break 'times;
                }
                (Ok(Some(a)), Ok(Some(b)), Ok(c), Ok(d)) => {
                    let (c, d) = if s == time.data_at {
                        (vec![1.0; comps], vec![0.0; comps])
                    } else {
                        match (c, d) {
                            (Some(c), Some(d)) => (c, d),
                            _ => {
                                result = None;
                                break 'times;
                            }
                        }
                    };
                    (a, b, c, d)
                }
                _ => {
                    result = None;
                    break 'times;
                }
            };
            // Bayes' rule per component: (coefficient of x_t, of x_0, variance), None where
            // it is undefined (v_t ≤ 0 or a_s = 0).
            let want: Vec<Option<(f64, f64, f64)>> = (0..comps)
                .map(|j| {
                    if v_t[j] <= 0.0 || a_s[j] == 0.0 {
                        return None;
                    }
                    let a_ts = a_t[j] / a_s[j];
                    let v_ts = v_t[j] - a_ts * a_ts * v_s[j];
                    Some((
                        a_ts * v_s[j] / v_t[j],
                        a_s[j] * v_ts / v_t[j],
                        v_ts * v_s[j] / v_t[j],
                    ))
                })
                .collect();
            if want.iter().all(Option::is_none) {
                continue;
            }
            let with = |xt: f64, x0: f64, comp: Option<usize>| Env {
                t,
                s: Some(s),
                fields: vec![
                    (x_t, field_value(xt, comp)),
                    (x_0, field_value(x0, comp)),
                    (
                        FieldRef {
                            field,
                            version: k.target.version,
                        },
                        field_value(0.0, None),
                    ),
                ],
                ..Env::default()
            };
            let value = |e: ExprId, env: &Env| match ev.eval(e, env) {
                Ok(v) => Ok(numbers(v)),
                Err(super::eval::EvalError::Runtime) => Err(()),
                Err(_) => Ok(None),
            };
            let probe = |xt: f64, x0: f64, comp: Option<usize>| -> Result<Vec<f64>, bool> {
                match value(mean, &with(xt, x0, comp)) {
                    Ok(Some(v)) => Ok(v),
                    Ok(None) => Err(false),
                    Err(()) => Err(true),
                }
            };
            // x_t and x_0 at (0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (0, 2), then one component
            // of x_t (of x_0) at a time: column j of each coefficient.
            let mut points = vec![
                (0.0, 0.0, None),
                (1.0, 0.0, None),
                (0.0, 1.0, None),
                (1.0, 1.0, None),
                (2.0, 0.0, None),
                (0.0, 2.0, None),
            ];
            if vector {
                points.extend((0..comps).map(|j| (1.0, 0.0, Some(j))));
                points.extend((0..comps).map(|j| (0.0, 1.0, Some(j))));
            }
            let probes: Result<Vec<Vec<f64>>, bool> = points
                .iter()
                .map(|&(xt, x0, comp)| probe(xt, x0, comp))
                .collect();
            let w = match value(var, &with(0.0, 0.0, None)) {
                Ok(Some(v)) => Ok(v),
                Ok(None) => Err(false),
                Err(()) => Err(true),
            };
            let (m, w) = match (probes, w) {
                (Ok(m), Ok(w)) => (m, w),
                (Err(run_time), _) | (_, Err(run_time)) => {
                    if run_time {
                        warning = unverified(
                            self,
                            "the posterior reads values known only at run time".to_string(),
                        );
                    }
                    result = None;
                    break 'times;
                }
            };
            let (m00, m10, m01, m11, m20, m02) = (&m[0], &m[1], &m[2], &m[3], &m[4], &m[5]);
            let (cols_t, cols_0) = m[6..].split_at(if vector { comps } else { 0 });
            let close = |a: f64, b: f64, scale: f64| (a - b).abs() <= TOLERANCE * scale.max(1e-300);
            let fmt = super::schedules::fmt;
            // Two values that print alike are printed in full.
            let pair = |a: f64, b: f64| {
                if fmt(a) == fmt(b) {
                    (format!("{a:e}"), format!("{b:e}"))
                } else {
                    (fmt(a), fmt(b))
                }
            };
            let when = if k.target.version != Version::S {
                format!("at {} = {}", time.name, fmt(t))
            } else {
                format!("at {} = {}, s = {}", time.name, fmt(t), fmt(s))
            };
            let in_comp = |j: usize| {
                if vector {
                    format!(" in component {j}")
                } else {
                    String::new()
                }
            };
            let marginal_text = super::super::explain::show(&self.p, marginal.dist);
            let bad = |what: String, span, j: usize| {
                let (wt, w0, wv) = want[j].unwrap_or((f64::NAN, f64::NAN, f64::NAN));
                let which = if vector {
                    format!("component {j} of the posterior")
                } else {
                    "the posterior".to_string()
                };
                Some(
                    Diagnostic::error(Code::Bayes, span, what)
                        .with_label("this does not follow from the forward marginal")
                        .with_note(format!(
                            "Bayes' rule on `{marginal_text}` gives {which} Normal({} · x_t + {} · x_0, {}) {when} (compared within {TOLERANCE:e} relative)",
                            fmt(wt),
                            fmt(w0),
                            fmt(wv)
                        )),
                )
            };
            let mean_span = self.p.expr(mean).span;
            let var_span = self.p.expr(var).span;
            let mut found = None;
            'comps: for j in 0..comps {
                let Some((want_t, want_0, want_var)) = want[j] else {
                    continue;
                };
                let scale = want_t.abs().max(want_0.abs());
                let curvature = (m11[j] - m10[j] - m01[j] + m00[j])
                    .abs()
                    .max((m20[j] - 2.0 * m10[j] + m00[j]).abs())
                    .max((m02[j] - 2.0 * m01[j] + m00[j]).abs());
                if !close(curvature, 0.0, scale.max(m00[j].abs())) {
                    found = bad(
                        format!(
                            "{when} the posterior mean is not affine in x_t and x_0{}",
                            in_comp(j)
                        ),
                        mean_span,
                        j,
                    );
                    break;
                }
                if !close(m00[j], 0.0, scale) {
                    found = bad(
                        format!(
                            "{when} the posterior mean has a constant term {}{}, Bayes' rule gives none",
                            fmt(m00[j]),
                            in_comp(j)
                        ),
                        mean_span,
                        j,
                    );
                    break;
                }
                // Bayes' rule gives each component its own coefficients: component j of the
                // mean reads component j of x_t and x_0 only.
                for (cols, x) in [(cols_t, "x_t"), (cols_0, "x_0")] {
                    for (i, col) in cols.iter().enumerate() {
                        let got = col[j] - m00[j];
                        if i != j && !close(got, 0.0, scale) {
                            found = bad(
                                format!(
                                    "{when} component {j} of the posterior mean reads component {i} of {x} with coefficient {}, Bayes' rule gives none",
                                    fmt(got)
                                ),
                                mean_span,
                                j,
                            );
                            break 'comps;
                        }
                    }
                }
                // Each written value against Bayes' rule's, in this order.
                for (what, got, want, scale, span) in [
                    (
                        "the posterior mean's coefficient of x_0",
                        m01[j] - m00[j],
                        want_0,
                        scale,
                        mean_span,
                    ),
                    (
                        "the posterior mean's coefficient of x_t",
                        m10[j] - m00[j],
                        want_t,
                        scale,
                        mean_span,
                    ),
                    (
                        "the posterior variance",
                        w[j],
                        want_var,
                        want_var.abs(),
                        var_span,
                    ),
                ] {
                    if !close(got, want, scale) {
                        let (g, b) = pair(got, want);
                        found = bad(
                            format!("{when} {what}{} is {g}, Bayes' rule gives {b}", in_comp(j)),
                            span,
                            j,
                        );
                        break 'comps;
                    }
                }
            }
            if found.is_some() {
                return Some(found);
            }
        }
        if let Some(w) = warning {
            self.diags.push(w);
        }
        result
    }
}
