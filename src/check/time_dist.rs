//! A loss's training time distribution (`loss … with t ~ DIST`): the clause's variable and
//! family against the process's time, its parameters evaluated in f64, and a `Weighted`
//! distribution's weights at every time, normalised into the table `sample_t.LOSS` draws from.

use super::eval::{Env, EvalError, Evaluator};
use super::expr::{Cx, Place};
use super::schedules::fmt;
use super::{describe, Checker};
use crate::diag::{Code, Diagnostic, Span};
use crate::syntax::ast;
use crate::typed::*;

/// The families a time distribution may name, for notes.
const FAMILIES: &str = "`Uniform`, `LogNormal(mean, std)` (continuous time) or `Weighted(w)` \
                        (discrete time)";

impl<'a> Checker<'a> {
    /// Check `with VAR ~ DIST` of loss `loss`; `None` after reporting an error.
    pub(super) fn check_time_dist(
        &mut self,
        loss: &str,
        d: &ast::TimeDistDecl,
    ) -> Option<TimeDist> {
        let time = self.p.time.clone();
        if d.var.name != time.name {
            let e = Diagnostic::error(
                Code::TimeKind,
                d.var.span,
                format!("a loss's time distribution draws the time `{}`", time.name),
            )
            .with_label(format!("`{}` is not the time variable", d.var.name))
            .with_secondary(time.span, "time declared here")
            .with_note(format!("write `with {} ~ …`", time.name));
            self.error(e);
            return None;
        }
        let (family, family_span, args): (&str, Span, &[ast::Arg]) = match &d.dist.kind {
            ast::ExprKind::Name(n) => (n.as_str(), d.dist.span, &[]),
            ast::ExprKind::Call { callee, args } if callee.as_name().is_some() => {
                (callee.as_name().unwrap(), callee.span, args.as_slice())
            }
            _ => {
                let e = Diagnostic::error(
                    Code::Distribution,
                    d.dist.span,
                    "expected a time distribution",
                )
                .with_label("not a distribution")
                .with_note(format!("a training time is drawn from {FAMILIES}"));
                self.error(e);
                return None;
            }
        };
        let (names, kind): (&[&str], Option<TimeKind>) = match family {
            "Uniform" => (&[], None),
            "LogNormal" => (&["mean", "std"], Some(TimeKind::Continuous)),
            "Weighted" => (&["w"], Some(TimeKind::Discrete)),
            other => {
                let e = Diagnostic::error(
                    Code::Distribution,
                    family_span,
                    format!("`{other}` is not a time distribution"),
                )
                .with_label("unknown")
                .with_note(format!("a training time is drawn from {FAMILIES}"));
                self.error(e);
                return None;
            }
        };
        if let Some(k) = kind.filter(|k| *k != time.kind) {
            let (what, other) = match k {
                TimeKind::Continuous => ("continuous", "discrete"),
                TimeKind::Discrete => ("discrete", "continuous"),
            };
            let note = match k {
                TimeKind::Continuous => {
                    "in discrete time, weight the times instead: `Weighted(w)` with w an \
                     expression of the time"
                }
                TimeKind::Discrete => {
                    "in continuous time, draw `LogNormal(mean, std)` or `Uniform`"
                }
            };
            let e = Diagnostic::error(
                Code::TimeKind,
                family_span,
                format!(
                    "`{family}` draws a {what} time, but `{}` is {other}",
                    time.name
                ),
            )
            .with_label(format!("needs {what} time"))
            .with_secondary(time.span, "time declared here")
            .with_note(note);
            self.error(e);
            return None;
        }
        // The arguments, positional or by name, in the family's order.
        let mut given: Vec<Option<&ast::Expr>> = vec![None; names.len()];
        for (i, a) in args.iter().enumerate() {
            let slot = match &a.name {
                Some(n) if a.kind == ast::ArgKind::Value => names.iter().position(|x| *x == n.name),
                Some(_) => None,
                None => (i < names.len()).then_some(i),
            };
            match slot {
                Some(j) if given[j].is_none() => given[j] = Some(&a.value),
                _ => {
                    let e = Diagnostic::error(
                        Code::Distribution,
                        a.value.span,
                        format!("`{family}` takes {}", takes(names)),
                    )
                    .with_label("unexpected argument");
                    self.error(e);
                    return None;
                }
            }
        }
        if let Some(j) = given.iter().position(Option::is_none) {
            let e = Diagnostic::error(
                Code::Distribution,
                d.dist.span,
                format!("`{family}` takes {}", takes(names)),
            )
            .with_label(format!("`{}` is missing", names[j]));
            self.error(e);
            return None;
        }
        let given: Vec<&ast::Expr> = given.into_iter().flatten().collect();
        let kind = match family {
            "Uniform" => TimeDistKind::Uniform,
            "LogNormal" => {
                let mean = self.time_dist_param(family, "mean", given[0])?;
                let std = self.time_dist_param(family, "std", given[1])?;
                if std <= 0.0 {
                    let e = Diagnostic::error(
                        Code::Domain,
                        given[1].span,
                        format!(
                            "the std of `LogNormal` must be positive, found {}",
                            fmt(std)
                        ),
                    )
                    .with_label("std ≤ 0")
                    .with_note("log t ~ Normal(mean, std²)");
                    self.error(e);
                    return None;
                }
                TimeDistKind::LogNormal { mean, std }
            }
            _ => {
                let (weight, probs) = self.time_weights(loss, given[0])?;
                TimeDistKind::Weighted { weight, probs }
            }
        };
        Some(TimeDist { kind, span: d.span })
    }

    /// A time distribution is fixed when the spec is checked: a `param` read directly (whose
    /// value a call may change) is an error. A schedule's params are refused at run time.
    fn reads_no_param(&mut self, id: ExprId, what: &str) -> bool {
        let mut stack = vec![id];
        while let Some(e) = stack.pop() {
            let x = self.p.expr(e);
            if let ExprKind::Param(prm) = x.kind {
                let name = self.p.params[prm.index()].name.clone();
                let d = Diagnostic::error(
                    Code::Type,
                    x.span,
                    format!("{what} cannot read param `{name}`"),
                )
                .with_label("a param")
                .with_note(
                    "a loss's time distribution is fixed when the spec is checked, but a param \
                     may be given per call; write its value, or a `const`",
                );
                self.error(d);
                return false;
            }
            super::schedules::children(&x.kind, &mut stack);
        }
        true
    }

    /// A real constant parameter of a time distribution, finite.
    fn time_dist_param(&mut self, family: &str, name: &str, e: &ast::Expr) -> Option<f64> {
        let mut cx = Cx::new(Place::Const);
        let id = self.value(e, &mut cx);
        let ty = self.ty(id).clone();
        if ty.is_error() {
            return None;
        }
        if !self.reads_no_param(id, &format!("the {name} of `{family}`")) {
            return None;
        }
        if !matches!(ty.elem(), Some(Elem::Real | Elem::Bool)) {
            let d = Diagnostic::error(
                Code::Type,
                e.span,
                format!(
                    "the {name} of `{family}` is a number, found {}",
                    describe(&ty)
                ),
            )
            .with_label("not a number");
            self.error(d);
            return None;
        }
        match Evaluator::new(&self.p).real(id, &Env::default()) {
            Ok(x) => Some(x),
            Err(EvalError::Runtime) => {
                let d =
                    Diagnostic::error(Code::Const, e.span, "this must be known at compile time")
                        .with_label("depends on a value only known when the process runs");
                self.error(d);
                None
            }
            Err(EvalError::Hazard { message, .. } | EvalError::Undefined { message, .. }) => {
                let d = Diagnostic::error(
                    Code::Domain,
                    e.span,
                    format!("the {name} of `{family}` is not a finite number"),
                )
                .with_label(message);
                self.error(d);
                None
            }
        }
    }

    /// `Weighted(w)`: `w` typed as a real function of the time and evaluated in f64 at every
    /// time; returns it and the normalised probabilities.
    fn time_weights(&mut self, loss: &str, e: &ast::Expr) -> Option<(ExprId, Vec<f64>)> {
        let mut cx = Cx::new(Place::Schedule);
        let id = self.value(e, &mut cx);
        let ty = self.ty(id).clone();
        if ty.is_error() {
            return None;
        }
        let ok = matches!(ty.elem(), Some(Elem::Real | Elem::Bool))
            && ty.stage().is_some_and(|s| s.rank() <= 1);
        if !ok {
            let d = Diagnostic::error(
                Code::Type,
                e.span,
                format!(
                    "a time weight is a real number of the time, found {}",
                    describe(&ty)
                ),
            )
            .with_label("not a real function of time");
            self.error(d);
            return None;
        }
        if !self.reads_no_param(id, "a time weight") {
            return None;
        }
        if !self.schedules_ok {
            // A schedule it may read had an error, already reported.
            return None;
        }
        let time = self.p.time.clone();
        let mut weights = Vec::new();
        let mut failure = None;
        {
            let ev = Evaluator::new(&self.p);
            for t in time.check_points() {
                let env = Env {
                    t,
                    ..Env::default()
                };
                match ev.real(id, &env) {
                    Ok(w) => weights.push(w),
                    Err(err) => {
                        failure = Some((t, err));
                        break;
                    }
                }
            }
        }
        if let Some((t, err)) = failure {
            let (span, message) = match err {
                EvalError::Hazard { span, message } | EvalError::Undefined { span, message } => {
                    (span, message)
                }
                EvalError::Runtime => (e.span, "needs a value only known at run time".into()),
            };
            let d = Diagnostic::error(
                Code::Domain,
                span,
                format!(
                    "the time weight of loss `{loss}` is not a finite number at {} = {}",
                    time.name,
                    fmt(t)
                ),
            )
            .with_label(message);
            let d = if span == e.span {
                d
            } else {
                d.with_secondary(e.span, "in this weight")
            };
            let d = d.with_note(format!(
                "the weight is evaluated in f64 at every time {}..{}",
                fmt(time.lo),
                fmt(time.hi)
            ));
            self.error(d);
            return None;
        }
        if let Some(k) = weights.iter().position(|w| *w < 0.0) {
            let d = Diagnostic::error(
                Code::Domain,
                e.span,
                format!(
                    "the time weight of loss `{loss}` is negative at {} = {}",
                    time.name,
                    fmt(time.lo + k as f64)
                ),
            )
            .with_label(format!("w = {}", fmt(weights[k])))
            .with_note("P(t) ∝ w(t): every weight must be ≥ 0");
            self.error(d);
            return None;
        }
        let total: f64 = weights.iter().sum();
        if total <= 0.0 || !total.is_finite() {
            let d = Diagnostic::error(
                Code::Domain,
                e.span,
                if total <= 0.0 {
                    format!("the time weight of loss `{loss}` is 0 at every time")
                } else {
                    format!("the time weights of loss `{loss}` sum to more than an f64 holds")
                },
            )
            .with_label("no time could be drawn")
            .with_note("P(t) ∝ w(t): some weight must be positive");
            self.error(d);
            return None;
        }
        Some((id, weights.iter().map(|w| w / total).collect()))
    }
}

fn takes(names: &[&str]) -> String {
    match names {
        [] => "no arguments".into(),
        [one] => format!("one argument, `{one}`"),
        _ => format!(
            "{} arguments: {}",
            names.len(),
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
