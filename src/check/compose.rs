//! A written marginal q(x_t | x_0) against the composition of the written one-step kernel
//! q(x_t | x_{t-1}), in discrete time, from the data end outward.
//!
//! **Gaussian.** With `x_t | x_{t-1} ~ Normal(c(t) x_{t-1}, b(t))`, composing from x_0 gives
//! `x_t | x_0 ~ Normal(a_t x_0, v_t)` with a_t = c(t) a_{t-1}, v_t = c(t)² v_{t-1} + b(t),
//! a = 1 and v = 0 at the data end. The written marginal's signal coefficient and variance must
//! equal them at every time within `bayes::TOLERANCE` (relative). For a `vec<K>` field, c, b and
//! the marginal's coefficients may be real or `vec<K>` (`param`s at their defaults), composed and
//! compared per component; the error names the component.
//!
//! **Categorical and Bernoulli.** q(x_t = j | x_0 = c0) = Σ_i q(x_{t-1} = i | x_0 = c0)
//! q(x_t = j | x_{t-1} = i), from the one-hot data; every probability of the written marginal,
//! for every class c0 (up to `MAX_COMBOS` classes; W0003 beyond), must equal the composition's
//! within `bayes::DISCRETE_TOLERANCE` (absolute).
//!
//! A disagreement is error E0404 at the marginal, naming the time (and class), the value written
//! and the composed one. A forward kernel marked `#[approximate]` is kept where they differ,
//! with warning W0002 (DiGress's marginals clamp ᾱ where its one-step kernels do not clamp β).

use super::bayes::{DISCRETE_TOLERANCE, TOLERANCE};
use super::eval::{Env, Evaluator};
use super::kernels::MAX_COMBOS;

/// At most this many numbers are computed composing a discrete one-step kernel over every time
/// (K² probabilities to evaluate and K³ products per time), or reading a marginal's mixture
/// form (K² per time); past it the check is skipped with W0003.
pub(super) const MAX_COMPOSE_WORK: usize = 1 << 28;
use super::Checker;
use crate::diag::{Code, Diagnostic};
use crate::typed::{Elem, ExprId, ExprKind, Family, FieldRef, Kernel, KernelKind, Value, Version};

impl Checker<'_> {
    /// Every field with both a written one-step kernel and a written marginal.
    pub(super) fn check_compositions(&mut self) {
        for step in self.one_step_kernels() {
            let field = step.target.field;
            let Some(marg) = self
                .p
                .forwards
                .iter()
                .find(|k| {
                    k.kind == KernelKind::Marginal
                        && !k.derived
                        && k.target.field == field
                        && k.given
                            == [FieldRef {
                                field,
                                version: Version::Data,
                            }]
                })
                .cloned()
            else {
                continue;
            };
            if marg.family != step.family {
                continue;
            }
            let found = match step.family {
                Family::Normal => self.compose_normal(&step, &marg),
                Family::Categorical | Family::Bernoulli => self.compose_discrete(&step, &marg),
                _ => None,
            };
            let Some(found) = found else { continue };
            let mark = marg.approximate.or(step.approximate);
            let Some(d) = found else {
                if let Some(mark) = mark {
                    let name = self.version_name(marg.target);
                    let w = Diagnostic::warning(
                        Code::Approximation,
                        mark,
                        format!("the marginal of `{name}` composes from its one-step kernel at every time: the mark is not needed"),
                    )
                    .with_label("not needed");
                    self.diags.push(w);
                }
                continue;
            };
            match mark {
                None => self.error(d),
                Some(mark) => {
                    let name = self.version_name(marg.target);
                    let whose = format!("the forward kernels of `{name}` are marked");
                    let w = super::bayes::kept(d, mark, &whose, "a deliberate approximation");
                    self.diags.push(w);
                }
            }
        }
    }

    fn params(&self, k: &Kernel) -> Option<Vec<ExprId>> {
        match &self.p.expr(k.dist).kind {
            ExprKind::Dist { params, .. } => Some(params.clone()),
            _ => None,
        }
    }

    /// The Gaussian marginal `marg` against the composition of `step`, per component where the
    /// field is a `vec<K>` (the coefficients real or `vec<K>`).
    fn compose_normal(&mut self, step: &Kernel, marg: &Kernel) -> Option<Option<Diagnostic>> {
        let field = step.target.field;
        let (comps, vector) = match self.p.field(field).elem {
            Elem::Real => (1, false),
            Elem::Vec(n) => (n as usize, true),
            _ => return None,
        };
        let (alpha, var_m) = match marg.affine {
            Some(a) => (a.alpha, a.var),
            None => {
                let mp = self.params(marg)?;
                if mp.len() != 2 {
                    return None;
                }
                self.elementwise_affine(mp[0], mp[1], field)?
            }
        };
        let sp = self.params(step)?;
        let (mean, var) = (*sp.first()?, *sp.get(1)?);
        let prev = FieldRef {
            field,
            version: Version::Back(1),
        };
        let ev = Evaluator::new(&self.p);
        let time = &self.p.time;
        let fmt = super::schedules::fmt;
        // A value as one number per component (a real broadcast over them).
        let numbers = |v: Value| match v {
            Value::Real(x) => Some(vec![x; comps]),
            Value::Vec(xs) if xs.len() == comps => Some(xs),
            _ => None,
        };
        // x_{t-1} = x in component `at` (in every component where None), 0 elsewhere.
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
        let (mut a, mut v) = (vec![1.0f64; comps], vec![0.0f64; comps]);
        for t in time.check_points() {
            let with = |x: f64, at: Option<usize>| Env {
                t,
                fields: vec![(prev, field_value(x, at))],
                ..Env::default()
            };
            let get = |e: ExprId, env: &Env| numbers(ev.eval(e, env).ok()?);
            let m0 = get(mean, &with(0.0, None))?;
            let b = get(var, &with(0.0, None))?;
            // Not affine in x_{t-1} through the origin, or mixing components: nothing to
            // compose.
            if m0.iter().any(|x| *x != 0.0) {
                return None;
            }
            let mut c = vec![0.0; comps];
            for (j, cj) in c.iter_mut().enumerate() {
                let col = get(mean, &with(1.0, Some(j)))?;
                if col.iter().enumerate().any(|(i, x)| i != j && *x != 0.0) {
                    return None;
                }
                *cj = col[j];
            }
            for j in 0..comps {
                a[j] *= c[j];
                v[j] = c[j] * c[j] * v[j] + b[j];
            }
            let env = Env {
                t,
                ..Env::default()
            };
            let (a_m, v_m) = (get(alpha, &env)?, get(var_m, &env)?);
            let close =
                |x: f64, y: f64| (x - y).abs() <= TOLERANCE * x.abs().max(y.abs()).max(1e-300);
            let what = (0..comps).find_map(|j| {
                if !close(a_m[j], a[j]) {
                    Some(("signal coefficient", j, a_m[j], a[j], alpha))
                } else if !close(v_m[j], v[j]) {
                    Some(("variance", j, v_m[j], v[j], var_m))
                } else {
                    None
                }
            });
            if let Some((what, j, got, want, at)) = what {
                let (g, w) = if fmt(got) == fmt(want) {
                    (format!("{got:e}"), format!("{want:e}"))
                } else {
                    (fmt(got), fmt(want))
                };
                let span = {
                    let inner = self.p.expr(at).span;
                    if inner.start >= marg.span.start && inner.end <= marg.span.end {
                        inner
                    } else {
                        self.p.expr(marg.dist).span
                    }
                };
                let comp = if vector {
                    format!(" in component {j}")
                } else {
                    String::new()
                };
                return Some(Some(
                    Diagnostic::error(
                        Code::Composition,
                        span,
                        format!(
                            "at {} = {} the marginal's {what}{comp} is {g}, composing the one-step kernel from the data gives {w}",
                            time.name,
                            fmt(t)
                        ),
                    )
                    .with_label("this does not compose from the one-step kernel")
                    .with_secondary(step.span, "the one-step kernel")
                    .with_note(format!(
                        "a_t = c(t) a_(t-1) and v_t = c(t)² v_(t-1) + b(t) from `{}`, with a = 1 and v = 0 at the data{} (compared within {TOLERANCE:e} relative)",
                        super::super::explain::show(&self.p, step.dist),
                        if vector { ", per component" } else { "" }
                    )),
                ));
            }
        }
        Some(None)
    }

    fn compose_discrete(&mut self, step: &Kernel, marg: &Kernel) -> Option<Option<Diagnostic>> {
        let field = step.target.field;
        let classes = match self.p.field(field).elem {
            Elem::Cat(n) => n as usize,
            Elem::Bool => 2,
            _ => return None,
        };
        let bernoulli = step.family == Family::Bernoulli;
        let (step_p, marg_p) = (*self.params(step)?.first()?, *self.params(marg)?.first()?);
        let name = self.version_name(marg.target);
        let times = self.p.time.check_points().len();
        let work = classes
            .saturating_mul(classes)
            .saturating_mul(classes + 1)
            .saturating_mul(times);
        if classes > MAX_COMBOS || work > MAX_COMPOSE_WORK {
            let why = if classes > MAX_COMBOS {
                format!(
                    "{classes} classes are more than the {MAX_COMBOS} that the checker enumerates"
                )
            } else {
                format!("{classes} classes over {times} times are more than the {MAX_COMPOSE_WORK} numbers the checker computes")
            };
            let d = Diagnostic::warning(
                Code::Unverified,
                self.p.expr(marg.dist).span,
                format!(
                    "the marginal of `{name}` is not checked against its one-step kernel: {why}"
                ),
            )
            .with_label("not verified");
            self.diags.push(d);
            return None;
        }
        let value = |c: usize| {
            if bernoulli {
                Value::Bool(c == 1)
            } else {
                Value::Real(c as f64)
            }
        };
        let class_text = |c: usize| {
            if bernoulli {
                (c == 1).to_string()
            } else {
                c.to_string()
            }
        };
        let ev = Evaluator::new(&self.p);
        let probs = |e: ExprId, env: &Env| -> Option<Vec<f64>> {
            match ev.eval(e, env).ok()? {
                Value::Vec(p) if !bernoulli && p.len() == classes => Some(p),
                Value::Real(p) if bernoulli => Some(vec![1.0 - p, p]),
                _ => None,
            }
        };
        let (prev, data) = (
            FieldRef {
                field,
                version: Version::Back(1),
            },
            FieldRef {
                field,
                version: Version::Data,
            },
        );
        let time = self.p.time.clone();
        let fmt = super::schedules::fmt;
        // Row c0: q(x_t | x_0 = c0) as composed so far, from the one-hot data.
        let mut comp: Vec<Vec<f64>> = (0..classes)
            .map(|c0| (0..classes).map(|j| f64::from(j == c0)).collect())
            .collect();
        let mut worst: Option<(f64, f64, usize, usize, f64, f64)> = None;
        let (mut checked, mut differing) = (0usize, 0usize);
        for t in time.check_points() {
            let rows: Vec<Vec<f64>> = (0..classes)
                .map(|i| {
                    probs(
                        step_p,
                        &Env {
                            t,
                            fields: vec![(prev, value(i))],
                            ..Env::default()
                        },
                    )
                })
                .collect::<Option<_>>()?;
            for (c0, row) in comp.iter_mut().enumerate() {
                let next: Vec<f64> = (0..classes)
                    .map(|j| (0..classes).map(|i| row[i] * rows[i][j]).sum())
                    .collect();
                *row = next;
                let got = probs(
                    marg_p,
                    &Env {
                        t,
                        fields: vec![(data, value(c0))],
                        ..Env::default()
                    },
                )?;
                let range = if bernoulli { 1..2 } else { 0..classes };
                for j in range {
                    let diff = match (got[j] - row[j]).abs() {
                        d if d.is_nan() => f64::INFINITY,
                        d => d,
                    };
                    checked += 1;
                    if diff <= DISCRETE_TOLERANCE {
                        continue;
                    }
                    differing += 1;
                    if worst.is_none_or(|w| diff > w.0) {
                        worst = Some((diff, t, c0, j, got[j], row[j]));
                    }
                }
            }
        }
        let Some((diff, t, c0, j, got, want)) = worst else {
            return Some(None);
        };
        let (g, w) = if fmt(got) == fmt(want) {
            (format!("{got:e}"), format!("{want:e}"))
        } else {
            (fmt(got), fmt(want))
        };
        let which = if bernoulli {
            format!("the probability that `{name}` is true")
        } else {
            format!("the probability of `{name}` = {j}")
        };
        let span = {
            let inner = self.p.expr(marg_p).span;
            if inner.start >= marg.span.start && inner.end <= marg.span.end {
                inner
            } else {
                self.p.expr(marg.dist).span
            }
        };
        Some(Some(
            Diagnostic::error(
                Code::Composition,
                span,
                format!(
                    "at {} = {}, {} = {}: {which} is {g}, composing the one-step kernel from the data gives {w}",
                    time.name,
                    fmt(t),
                    self.version_name(data),
                    class_text(c0)
                ),
            )
            .with_label("this does not compose from the one-step kernel")
            .with_secondary(step.span, "the one-step kernel")
            .with_note(format!(
                "q(x_t | x_0) = Σ q(x_(t-1) | x_0) q(x_t | x_(t-1)) from `{}` (compared within {DISCRETE_TOLERANCE:e} absolute)",
                super::super::explain::show(&self.p, step.dist)
            ))
            .with_note(format!(
                "this is the largest difference, {diff:.2e}; {differing} of the {checked} probabilities checked differ by more than {DISCRETE_TOLERANCE:e}"
            )),
        ))
    }
}
