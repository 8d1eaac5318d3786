//! Bayes' rule: a written Gaussian posterior checked against the forward kernels it should
//! follow from.
//!
//! For a field with a Gaussian marginal `x_t | x_0 ~ Normal(a(t) x_0, v(t))`, the posterior of
//! an earlier time s given x_t and x_0 is Gaussian with
//!
//!   mean = (a_{t|s} v_s / v_t) x_t + (a_s v_{t|s} / v_t) x_0,   variance = v_{t|s} v_s / v_t,
//!
//! where a_{t|s} = a_t / a_s and v_{t|s} = v_t − a_{t|s}² v_s (the one-step map from s to t that
//! the marginals imply; at the data end a_s = 1 and v_s = 0). A written posterior
//! `Normal(m, w)` is evaluated at every check point in f64 with x_t and x_0 set to 0, 1 and 2: its
//! mean must be affine in them with these coefficients and no constant term, and its variance
//! must be the one above, each within a relative `TOLERANCE` (which allows for the rounding of
//! tables built in f64, such as a product of a thousand factors). A disagreement is error E0403
//! at the written expression, naming the time, the value written and the value Bayes' rule gives.

use super::eval::{Env, Evaluator};
use super::Checker;
use crate::diag::{Code, Diagnostic};
use crate::typed::{ExprKind, Family, FieldRef, Kernel, KernelKind, Value, Version};

/// Relative tolerance of the comparison (of the coefficients and the variance).
pub(crate) const TOLERANCE: f64 = 1e-6;

impl Checker<'_> {
    /// Every written Gaussian posterior against Bayes' rule on its field's Gaussian marginal.
    pub(super) fn check_bayes(&mut self) {
        let posts: Vec<Kernel> = self.p.posteriors.clone();
        for k in posts {
            if k.family != Family::Normal {
                continue;
            }
            if let Some(d) = self.bayes_normal(&k) {
                self.error(d);
            }
        }
    }

    fn bayes_normal(&self, k: &Kernel) -> Option<Diagnostic> {
        let field = k.target.field;
        let marginal = self
            .p
            .forwards
            .iter()
            .find(|f| f.kind == KernelKind::Marginal && f.target.field == field)?;
        let aff = marginal.affine?;
        let ExprKind::Dist { params, .. } = &self.p.expr(k.dist).kind else {
            return None;
        };
        let (mean, var) = (*params.first()?, *params.get(1)?);
        let x_t = k
            .given
            .iter()
            .find(|g| g.version == Version::T && g.field == field)?;
        let x_0 = k
            .given
            .iter()
            .find(|g| g.version == Version::Data && g.field == field)?;
        let ev = Evaluator::new(&self.p);
        let time = &self.p.time;
        let real = |e, env: &Env| ev.real(e, env).ok();
        for (t, s) in self.time_pairs(k, Some(200)) {
            let Some(s) = s else { continue };
            let at = |time_: f64| Env {
                t: time_,
                ..Env::default()
            };
            // The marginal at t, and at s (the data itself at the data end).
            let (a_t, v_t) = (real(aff.alpha, &at(t))?, real(aff.var, &at(t))?);
            let (a_s, v_s) = if s == time.data_at {
                (1.0, 0.0)
            } else {
                (real(aff.alpha, &at(s))?, real(aff.var, &at(s))?)
            };
            if v_t <= 0.0 || a_s == 0.0 {
                continue;
            }
            let a_ts = a_t / a_s;
            let v_ts = v_t - a_ts * a_ts * v_s;
            let want_t = a_ts * v_s / v_t;
            let want_0 = a_s * v_ts / v_t;
            let want_var = v_ts * v_s / v_t;
            let with = |xt: f64, x0: f64| Env {
                t,
                s: Some(s),
                fields: vec![
                    (*x_t, Value::Real(xt)),
                    (*x_0, Value::Real(x0)),
                    (
                        FieldRef {
                            field,
                            version: k.target.version,
                        },
                        Value::Real(0.0),
                    ),
                ],
                ..Env::default()
            };
            let m00 = real(mean, &with(0.0, 0.0))?;
            let m10 = real(mean, &with(1.0, 0.0))?;
            let m01 = real(mean, &with(0.0, 1.0))?;
            let m11 = real(mean, &with(1.0, 1.0))?;
            // Second differences: 0 for a mean affine in x_t and x_0.
            let m20 = real(mean, &with(2.0, 0.0))?;
            let m02 = real(mean, &with(0.0, 2.0))?;
            let w = real(var, &with(0.0, 0.0))?;
            let (got_t, got_0) = (m10 - m00, m01 - m00);
            let close = |a: f64, b: f64, scale: f64| (a - b).abs() <= TOLERANCE * scale.max(1e-300);
            let scale = want_t.abs().max(want_0.abs());
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
            let bad = |what: String, span| {
                Some(
                    Diagnostic::error(Code::Bayes, span, what)
                        .with_label("this does not follow from the forward marginal")
                        .with_note(format!(
                            "Bayes' rule on `{}` gives the posterior Normal({} · x_t + {} · x_0, {}) {when} (compared within {TOLERANCE:e} relative)",
                            super::super::explain::show(&self.p, marginal.dist),
                            fmt(want_t),
                            fmt(want_0),
                            fmt(want_var)
                        )),
                )
            };
            let mean_span = self.p.expr(mean).span;
            let curvature = (m11 - m10 - m01 + m00)
                .abs()
                .max((m20 - 2.0 * m10 + m00).abs())
                .max((m02 - 2.0 * m01 + m00).abs());
            if !close(curvature, 0.0, scale.max(m00.abs())) {
                return bad(
                    format!("{when} the posterior mean is not affine in x_t and x_0"),
                    mean_span,
                );
            }
            if !close(m00, 0.0, scale) {
                return bad(
                    format!(
                        "{when} the posterior mean has a constant term {}, Bayes' rule gives none",
                        fmt(m00)
                    ),
                    mean_span,
                );
            }
            // Each written value against Bayes' rule's, in this order.
            let var_span = self.p.expr(var).span;
            for (what, got, want, scale, span) in [
                (
                    "the posterior mean's coefficient of x_0",
                    got_0,
                    want_0,
                    scale,
                    mean_span,
                ),
                (
                    "the posterior mean's coefficient of x_t",
                    got_t,
                    want_t,
                    scale,
                    mean_span,
                ),
                (
                    "the posterior variance",
                    w,
                    want_var,
                    want_var.abs(),
                    var_span,
                ),
            ] {
                if !close(got, want, scale) {
                    let (g, b) = pair(got, want);
                    return bad(format!("{when} {what} is {g}, Bayes' rule gives {b}"), span);
                }
            }
        }
        None
    }
}
