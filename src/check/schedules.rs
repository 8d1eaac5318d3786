//! Schedules: typed in dependency order, then evaluated at every grid point in f64.

use super::eval::{Env, EvalError, Evaluator};
use super::expr::{Cx, Place};
use super::{describe, Checker};
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::{self, Monotone};
use crate::typed::*;

impl<'a> Checker<'a> {
    pub(super) fn check_schedules(&mut self) {
        let n = self.schedule_ast.len();
        // Dependencies between schedules, by the names their bodies call (through fns too).
        let deps: Vec<Vec<usize>> = (0..n)
            .map(|i| {
                let mut names = Vec::new();
                collect_calls(
                    &self.schedule_ast[i].body,
                    &self.fns,
                    &mut names,
                    &mut Default::default(),
                );
                (0..n)
                    .filter(|j| {
                        names
                            .iter()
                            .any(|(n, _)| *n == self.schedule_ast[*j].name.name)
                    })
                    .collect()
            })
            .collect();
        let mut order = Vec::new();
        let mut state = vec![0u8; n]; // 0 new, 1 in progress, 2 done
        for i in 0..n {
            if let Err(cycle) = visit(i, &deps, &mut state, &mut order) {
                let s = self.schedule_ast[cycle];
                // Point at the call that closes the cycle: one to a schedule still being visited.
                let on_cycle: Vec<&str> = (0..n)
                    .filter(|j| state[*j] == 1)
                    .map(|j| self.schedule_ast[j].name.name.as_str())
                    .collect();
                let mut calls = Vec::new();
                collect_calls(&s.body, &self.fns, &mut calls, &mut Default::default());
                let at = calls
                    .iter()
                    .find(|(c, _)| on_cycle.contains(c))
                    .map_or(s.name.span, |(_, sp)| *sp);
                let d = Diagnostic::error(Code::Cycle, at, format!("schedule `{}` depends on itself", s.name.name))
                    .with_label("circular reference")
                    .with_secondary(s.name.span, "in this schedule")
                    .with_note("a discrete schedule can look back with cumprod or cumsum; it cannot refer to itself");
                self.error(d);
                return;
            }
        }
        for i in order {
            let s = self.schedule_ast[i];
            if s.var.name != self.p.time.name {
                let d = Diagnostic::error(
                    Code::TimeKind,
                    s.var.span,
                    format!(
                        "a schedule is a function of the time `{}`",
                        self.p.time.name
                    ),
                )
                .with_label(format!("`{}` is not the time variable", s.var.name))
                .with_secondary(self.p.time.span, "time declared here");
                self.error(d);
                continue;
            }
            let mut cx = Cx::new(Place::Schedule);
            let body = self.value(&s.body, &mut cx);
            let ty = self.ty(body).clone();
            let sched = &mut self.p.schedules[i];
            sched.body = body;
            match ty {
                Ty::Error => {}
                Ty::Value { elem, stage }
                    if stage.rank() <= 1
                        && matches!(
                            elem,
                            Elem::Real | Elem::Vec(_) | Elem::Mat(_) | Elem::Bool
                        ) =>
                {
                    sched.elem = if elem == Elem::Bool { Elem::Real } else { elem };
                }
                other => {
                    let d = Diagnostic::error(
                        Code::Type,
                        s.body.span,
                        format!(
                            "a schedule is a number, vector or matrix of time; found {}",
                            describe(&other)
                        ),
                    )
                    .with_label("not a function of time");
                    self.error(d);
                }
            }
            if let Some(iv) = &s.interval {
                // `inf` and `-inf` leave an end open.
                let bound = |c: &mut Self, e: &ast::Expr| -> Option<f64> {
                    match &e.kind {
                        ast::ExprKind::Name(n) if n == "inf" => Some(f64::INFINITY),
                        ast::ExprKind::Unary {
                            op: ast::UnOp::Neg,
                            operand,
                        } if operand.as_name() == Some("inf") => Some(f64::NEG_INFINITY),
                        _ => {
                            let mut cx = Cx::new(Place::Const);
                            let id = c.value(e, &mut cx);
                            c.const_real(id)
                        }
                    }
                };
                if let (Some(lo), Some(hi)) = (bound(self, &iv.lo), bound(self, &iv.hi)) {
                    self.p.schedules[i].interval = Some((lo, iv.lo_closed, hi, iv.hi_closed));
                }
                if self.p.schedules[i].elem != Elem::Real {
                    let d = Diagnostic::error(
                        Code::Type,
                        iv.span,
                        "an interval constrains real schedules only",
                    )
                    .with_label("not real");
                    self.error(d);
                }
            }
        }
    }

    /// Evaluate every schedule at every grid point and check it.
    pub(super) fn tabulate_schedules(&mut self) {
        let n = self.p.schedules.len();
        let time = self.p.time.clone();
        // Tabulate in the order they were typed (dependencies first): recompute that order.
        let mut pending: Vec<usize> = (0..n).collect();
        let mut guard = 0;
        while !pending.is_empty() && guard <= n {
            guard += 1;
            let mut rest = Vec::new();
            for i in pending {
                let deps_ready = self
                    .schedule_deps(i)
                    .iter()
                    .all(|d| *d == i || self.tabulated(*d));
                if !deps_ready {
                    rest.push(i);
                    continue;
                }
                if !self.tabulate_one(i, &time) {
                    return;
                }
            }
            pending = rest;
        }
    }

    fn tabulated(&self, i: usize) -> bool {
        self.p.time.kind == TimeKind::Continuous || !self.p.schedules[i].table.is_empty()
    }

    fn schedule_deps(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack = vec![self.p.schedules[i].body];
        while let Some(e) = stack.pop() {
            if let ExprKind::Schedule { id, .. } = self.p.expr(e).kind {
                out.push(id.index());
            }
            children(&self.p.expr(e).kind, &mut stack);
        }
        out
    }

    /// Returns false when the schedule had a hazard (already reported).
    pub(super) fn tabulate_one(&mut self, i: usize, time: &Time) -> bool {
        let s = self.p.schedules[i].clone();
        let points = time.check_points();
        // The table's size before any of it is computed.
        let width: u64 = match s.elem {
            Elem::Vec(k) => u64::from(k),
            Elem::Mat(k) => u64::from(k) * u64::from(k),
            _ => 1,
        };
        let numbers = width.saturating_mul(points.len() as u64 + 1);
        let most = crate::limits::MAX_SCHEDULE_NUMBERS;
        if numbers > most {
            let d = Diagnostic::error(
                Code::Const,
                s.span,
                format!(
                    "schedule `{}` would be tabulated as {numbers} numbers ({} at {} times), more than the checker's {most}",
                    s.name,
                    s.elem.describe(),
                    points.len()
                ),
            )
            .with_label("too large to tabulate")
            .with_note("every schedule is evaluated in f64 at every time of a discrete process (and at 1001 times of a continuous one): fewer times or a narrower value fit");
            self.error(d);
            return false;
        }
        let mut values = Vec::with_capacity(points.len() + 1);
        let mut err = None;
        let mut table = Vec::new();
        {
            let ev = Evaluator::new(&self.p);
            if time.kind == TimeKind::Discrete {
                // The value one step below the domain, where the formula defines it.
                let below = ev
                    .eval(
                        s.body,
                        &Env {
                            t: time.lo - 1.0,
                            ..Env::default()
                        },
                    )
                    .ok();
                table.push(below);
            }
            for &t in &points {
                match ev.eval(
                    s.body,
                    &Env {
                        t,
                        ..Env::default()
                    },
                ) {
                    Ok(v) => {
                        values.push((t, v.clone()));
                        if time.kind == TimeKind::Discrete {
                            table.push(Some(v));
                        }
                    }
                    Err(e) => {
                        err = Some((t, e));
                        break;
                    }
                }
            }
        }
        if let Some((t, e)) = err {
            let (span, message) = match e {
                EvalError::Hazard { span, message } | EvalError::Undefined { span, message } => {
                    (span, message)
                }
                EvalError::Runtime => (
                    self.p.expr(s.body).span,
                    "needs a value only known at run time".to_string(),
                ),
            };
            let d = Diagnostic::error(
                Code::ScheduleHazard,
                span,
                format!(
                    "schedule `{}` is invalid at {} = {}: {message}",
                    s.name,
                    time.name,
                    fmt(t)
                ),
            )
            .with_label(message.clone())
            .with_secondary(s.span, "in this schedule")
            .with_note(format!(
                "schedules are evaluated in f64 at every grid point of {}",
                grid_text(time)
            ));
            let d = if s.derived {
                d.with_note(format!("`{}` is part of the marginal the compiler derives from this one-step kernel: where the composition breaks down, declare the marginal by hand", s.name))
            } else {
                d
            };
            self.error(d);
            return false;
        }
        // A value past a closed end by no more than f64 rounding is that end (`closed_end_slack`),
        // in the table and in every check below; anything further out is an error.
        let snap = |v: &mut Value| {
            if let Value::Real(x) = v {
                *x = snap_to_closed_end(s.interval, *x);
            }
        };
        table.iter_mut().flatten().for_each(snap);
        values.iter_mut().for_each(|(_, v)| snap(v));
        self.p.schedules[i].table = table;
        // Declared constraints.
        if let Some((lo, lo_closed, hi, hi_closed)) = s.interval {
            for (t, v) in &values {
                let Some(x) = v.as_real() else { continue };
                let ok = (if lo_closed { x >= lo } else { x > lo })
                    && (if hi_closed { x <= hi } else { x < hi });
                if !ok {
                    let interval = format!(
                        "{}{}, {}{}",
                        if lo_closed { '[' } else { '(' },
                        fmt(lo),
                        fmt(hi),
                        if hi_closed { ']' } else { ')' }
                    );
                    // A value that prints as the end it crossed is shown in full.
                    let (end, closed) = if x <= lo {
                        (lo, lo_closed)
                    } else {
                        (hi, hi_closed)
                    };
                    let near = x != end && fmt(x) == fmt(end);
                    let shown = if near { format!("{x:?}") } else { fmt(x) };
                    let mut d = Diagnostic::error(
                        Code::ScheduleHazard,
                        s.span,
                        format!(
                            "schedule `{}` leaves {interval} at {} = {}",
                            s.name,
                            time.name,
                            fmt(*t)
                        ),
                    )
                    .with_label(format!("{} = {shown}", s.name))
                    .with_note(format!("the schedule is declared `in {interval}`"));
                    if near && closed {
                        d = d.with_note(format!(
                            "a closed end admits f64 rounding only: a value at most \
                             4·ε·max(|end|, 1) = {} past {} counts as {}; this one is {} \
                             past it (if it equals the end mathematically, write it without \
                             a cancellation such as 1 - x for x near 1)",
                            fmt_e(closed_end_slack(end)),
                            fmt(end),
                            fmt(end),
                            fmt_e((x - end).abs())
                        ));
                    }
                    self.error(d);
                    return false;
                }
            }
        }
        if let Some(m) = s.monotone {
            for w in values.windows(2) {
                let (Some(a), Some(b)) = (w[0].1.as_real(), w[1].1.as_real()) else {
                    continue;
                };
                let bad = match m {
                    Monotone::Increasing => b <= a,
                    Monotone::Decreasing => b >= a,
                };
                if bad {
                    let word = if m == Monotone::Increasing {
                        "increase"
                    } else {
                        "decrease"
                    };
                    let d = Diagnostic::error(
                        Code::ScheduleHazard,
                        s.span,
                        format!(
                            "schedule `{}` fails to {word} between {} = {} and {}",
                            s.name,
                            time.name,
                            fmt(w[0].0),
                            fmt(w[1].0)
                        ),
                    )
                    .with_label(format!("{} then {}", fmt(a), fmt(b)))
                    .with_note(format!(
                        "the schedule is declared `{}`",
                        if m == Monotone::Increasing {
                            "increasing"
                        } else {
                            "decreasing"
                        }
                    ));
                    self.error(d);
                    return false;
                }
            }
        }
        true
    }
}

/// How far past a closed end of a declared interval a schedule's value may lie and still be
/// taken as that end: 4 ulps of the end's magnitude (at least 1), i.e. 4·ε·max(|end|, 1) with
/// ε = 2⁻⁵² — room for f64 rounding of a value that equals the end, not for a value that
/// differs from it.
pub(crate) fn closed_end_slack(end: f64) -> f64 {
    4.0 * f64::EPSILON * end.abs().max(1.0)
}

/// A schedule value past a finite closed end of `interval` by at most `closed_end_slack` is
/// replaced by that end, so that downstream code sees a value inside the interval (a
/// probability declared in `(0, 1]` never exceeds 1). Every other value is returned unchanged.
pub(crate) fn snap_to_closed_end(interval: Option<(f64, bool, f64, bool)>, x: f64) -> f64 {
    let Some((lo, lo_closed, hi, hi_closed)) = interval else {
        return x;
    };
    if hi_closed && hi.is_finite() && x > hi && x - hi <= closed_end_slack(hi) {
        hi
    } else if lo_closed && lo.is_finite() && x < lo && lo - x <= closed_end_slack(lo) {
        lo
    } else {
        x
    }
}

fn fmt_e(x: f64) -> String {
    format!("{x:.1e}")
}

pub(crate) fn fmt(x: f64) -> String {
    if x == x.round() && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let s = format!("{x:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
        if s == "0" || s == "-0" {
            format!("{x:.4e}")
        } else {
            s
        }
    }
}

fn grid_text(t: &Time) -> String {
    match t.kind {
        TimeKind::Discrete => format!("{}..{}", fmt(t.lo), fmt(t.hi)),
        TimeKind::Continuous => format!("[{}, {}] (1001 points)", fmt(t.lo), fmt(t.hi)),
    }
}

fn visit(
    i: usize,
    deps: &[Vec<usize>],
    state: &mut [u8],
    order: &mut Vec<usize>,
) -> Result<(), usize> {
    match state[i] {
        2 => return Ok(()),
        1 => return Err(i),
        _ => {}
    }
    state[i] = 1;
    for &d in &deps[i] {
        visit(d, deps, state, order)?;
    }
    state[i] = 2;
    order.push(i);
    Ok(())
}

fn collect_calls<'e>(
    e: &'e ast::Expr,
    fns: &std::collections::HashMap<String, &'e ast::FnDef>,
    out: &mut Vec<(&'e str, crate::diag::Span)>,
    seen: &mut std::collections::HashSet<&'e str>,
) {
    use ast::ExprKind as A;
    match &e.kind {
        A::Call { callee, args } => {
            if let Some(n) = callee.as_name() {
                out.push((n, e.span));
                // Each function's body is walked once: its calls are the same at every call.
                if let Some(f) = fns.get(n) {
                    if seen.insert(n) {
                        collect_calls(&f.body, fns, out, seen);
                    }
                }
            }
            for a in args {
                collect_calls(&a.value, fns, out, seen);
            }
        }
        A::Unary { operand, .. } => collect_calls(operand, fns, out, seen),
        A::Binary { lhs, rhs, .. } => {
            collect_calls(lhs, fns, out, seen);
            collect_calls(rhs, fns, out, seen);
        }
        A::Member { base, .. } => collect_calls(base, fns, out, seen),
        A::Index { base, index } => {
            collect_calls(base, fns, out, seen);
            collect_calls(index, fns, out, seen);
        }
        A::If {
            cond,
            then,
            otherwise,
        } => {
            collect_calls(cond, fns, out, seen);
            collect_calls(then, fns, out, seen);
            collect_calls(otherwise, fns, out, seen);
        }
        A::List(items) => items.iter().for_each(|i| collect_calls(i, fns, out, seen)),
        A::Comprehension { body, lo, hi, .. } => {
            collect_calls(body, fns, out, seen);
            collect_calls(lo, fns, out, seen);
            collect_calls(hi, fns, out, seen);
        }
        A::Number { .. } | A::Bool(_) | A::Name(_) | A::Subscripted { .. } => {}
    }
}

/// The direct sub-expressions of an expression.
pub fn children(k: &ExprKind, out: &mut Vec<ExprId>) {
    match k {
        ExprKind::Schedule { at, .. } => out.push(*at),
        ExprKind::Unary { arg, .. } => out.push(*arg),
        ExprKind::Binary { lhs, rhs, .. } => out.extend([*lhs, *rhs]),
        ExprKind::Call { args, .. } | ExprKind::NetCall { args, .. } | ExprKind::List(args) => {
            out.extend(args)
        }
        ExprKind::Dist { params, .. } => out.extend(params),
        ExprKind::If {
            cond,
            then,
            otherwise,
        } => out.extend([*cond, *then, *otherwise]),
        ExprKind::Index { base, index } => out.extend([*base, *index]),
        ExprKind::NetOut { call, .. } => out.push(*call),
        ExprKind::Posterior { given, mixture, .. } => {
            out.extend(given.iter().map(|g| g.1));
            out.extend(mixture.iter().map(|m| m.1));
        }
        _ => {}
    }
}
