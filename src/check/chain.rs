//! Marginals derived from a one-step kernel where a process leaves them out.
//!
//! In discrete time a field whose only forward kernel is the one-step `x_t | x_{t-1}` gets the
//! marginal `x_t | x_0` by composing that kernel from the data, written with new schedules that
//! the checker tabulates like any other (in f64) and that `explain` prints as formulas:
//!
//! - **Gaussian**, `x_t | x_{t-1} ~ Normal(c(t) * x_{t-1}, b(t))` (c and b functions of time):
//!   a_t = c(t) a_{t-1} and v_t = c(t)² v_{t-1} + b(t) from a = 1, v = 0 at the data give
//!   `x_t | x_0 ~ Normal(a_x(t) * x_0, v_x(t))` with `a_x(t) = cumprod(c(t))` and
//!   `v_x(t) = a_x(t) ^ 2 * cumsum(b(t) / a_x(t) ^ 2)`. For a `vec<K>` field, c and b may be
//!   `vec<K>` functions of time, composed per component. The variance may carry a factor h
//!   constant in time that varies per element (a `param`, a `vec<K>` `param`): the variance's
//!   factors that read only the time make b, those that do not read it make h, and the
//!   marginal is `Normal(a_x(t) * x_0, v_x(t) * h)`. A coefficient of x_{t-1} that varies per
//!   element does not factor out of the sum, and is E0102.
//! - **Categorical**, `x_t | x_{t-1} ~ Categorical(p(x_{t-1}, t))`: the transition matrix M(t),
//!   row i the probabilities given x_{t-1} = i (`Q(t)` itself where the kernel is written
//!   `onehot(x_{t-1}) @ Q(t)`), and the ordered product `Qbar_x(t) = cumprod(M(t))` give
//!   `x_t | x_0 ~ Categorical(onehot(x_0) @ Qbar_x(t))`.
//! - **Bernoulli**, `x_t | x_{t-1} ~ Bernoulli(p(x_{t-1}, t))` with p1(t), p0(t) its
//!   probabilities of true after true and after false: π_t = (p1 − p0)(t) π_{t-1} + p0(t), so
//!   with `d_x(t) = cumprod(p1(t) - p0(t))` and `s_x(t) = cumsum(p0(t) / d_x(t))`,
//!   `x_t | x_0 ~ Bernoulli(if x_0 then d_x(t) * (1 + s_x(t)) else d_x(t) * s_x(t))`; where p0
//!   is 0 at every time (EDGE's edges only vanish) this is
//!   `Bernoulli(if x_0 then p_x(t) else 0)` with `p_x(t) = cumprod(p1(t))`.
//!
//! Losses and samplers may read the schedules by name. The kernel is marked `derived`; entries, losses (`eps`), conversions and samplers use it as
//! they use a written one, and a written posterior is checked against it by Bayes' rule. A
//! one-step kernel that reads anything but the time and x_{t-1} (a run-time `param`, another
//! field) outside a Gaussian variance's factor constant in time, whose Gaussian mean is not c(t) x_{t-1} or whose variance reads x_{t-1}, or a
//! categorical field past the enumeration limit, is E0102 at the kernel: write the marginal by
//! hand. A composition that breaks down (a signal coefficient of 0 divides the variance's sum)
//! is E0402 at the kernel, from the schedule's tabulation.

use std::collections::HashMap;

use super::deriv::Subst;
use super::eval::{Env, Evaluator};
use super::Checker;
use crate::diag::{Code, Diagnostic, Span};
use crate::syntax::ast::BinOp;
use crate::typed::{
    Builtin, Elem, ExprId, ExprKind, Family, FieldRef, Kernel, KernelKind, Schedule, ScheduleId,
    TimeKind, TimeRef, Version,
};
use crate::types::{Stage, Ty};

impl Checker<'_> {
    /// Every field with a one-step kernel and no marginal gets a derived marginal.
    pub(super) fn derive_marginals(&mut self) {
        for step in self.one_step_kernels() {
            let field = step.target.field;
            if self
                .p
                .forwards
                .iter()
                .any(|k| k.kind == KernelKind::Marginal && k.target.field == field)
            {
                continue;
            }
            let before = self.errors();
            match self.marginal_of(&step) {
                Ok(Some(k)) => self.p.forwards.push(k),
                // A schedule's tabulation failed, reported at the kernel.
                Ok(None) => debug_assert!(self.errors() > before),
                Err(why) => {
                    let name = self.version_name(step.target);
                    let d = Diagnostic::error(
                        Code::Structure,
                        step.span,
                        format!("the marginal of `{name}` cannot be derived from its one-step kernel: {why}"),
                    )
                    .with_label("no marginal follows from this kernel")
                    .with_note(format!(
                        "declare `forward {name} | {} ~ …` by hand",
                        self.version_name(FieldRef {
                            field,
                            version: Version::Data
                        })
                    ));
                    self.error(d);
                }
            }
        }
    }

    /// The one-step kernels of a discrete process whose sampling descends (none otherwise).
    pub(super) fn one_step_kernels(&self) -> Vec<Kernel> {
        let time = &self.p.time;
        if time.kind != TimeKind::Discrete || time.ascending() {
            return Vec::new();
        }
        self.p
            .forwards
            .iter()
            .filter(|k| k.kind == KernelKind::OneStep)
            .cloned()
            .collect()
    }

    fn marginal_of(&mut self, step: &Kernel) -> Result<Option<Kernel>, String> {
        let field = step.target.field;
        let prev = FieldRef {
            field,
            version: Version::Back(1),
        };
        let params = match &self.p.expr(step.dist).kind {
            ExprKind::Dist { params, .. } => params.clone(),
            _ => return Err("it is not a distribution".into()),
        };
        // A Gaussian kernel's variance may carry a factor constant in time that varies per
        // element (`Checker::split_variance`); everything else is a function of time alone.
        let gaussian = step.family == Family::Normal && params.len() == 2;
        for (i, &e) in params.iter().enumerate() {
            if gaussian && i == 1 {
                continue;
            }
            if let Err(why) = self.reads_only_time(e, prev) {
                if gaussian {
                    let what = why
                        .trim_start_matches("it ")
                        .trim_end_matches(", which a tabulated schedule cannot follow");
                    return Err(format!("its mean {what}: a coefficient of `{}` that varies per element does not factor out of the composed variance a_t² Σ_k b_k / a_k² (only the variance may carry a factor that varies per element, constant in time)", self.version_name(prev)));
                }
                return Err(why);
            }
        }
        let f = self.p.field(field).clone();
        let span = step.span;
        let data = FieldRef {
            field,
            version: Version::Data,
        };
        let fstage = Stage::Field(f.shape.clone());
        let x0 = self.push(
            ExprKind::Field(data),
            Ty::value(f.elem, fstage.clone()),
            span,
        );
        let host = Ty::real(Stage::Host);
        let fname = f.name.clone();
        let (family, dist_params) = match (step.family, f.elem) {
            (Family::Normal, Elem::Real | Elem::Vec(_)) => {
                let (mean, var) = (params[0], params[1]);
                if self.reads_field(var, prev) {
                    return Err(format!(
                        "its variance reads `{}`",
                        self.version_name(prev)
                    ));
                }
                let (b, per_element) = self.split_variance(var, prev, span)?;
                let c = self.at_value(mean, prev, 1.0, span);
                let m0 = self.at_value(mean, prev, 0.0, span);
                let m2 = self.at_value(mean, prev, 2.0, span);
                {
                    let ev = Evaluator::new(&self.p);
                    let numbers = |v: crate::typed::Value| match v {
                        crate::typed::Value::Real(x) => Some(vec![x]),
                        crate::typed::Value::Vec(xs) => Some(xs),
                        _ => None,
                    };
                    for t in self.p.time.check_points() {
                        let env = Env {
                            t,
                            ..Env::default()
                        };
                        let at = |e: ExprId| ev.eval(e, &env).ok().and_then(numbers);
                        let (Some(c), Some(m0), Some(m2)) = (at(c), at(m0), at(m2)) else {
                            return Err(format!(
                                "its mean does not evaluate at {} = {}",
                                self.p.time.name,
                                super::schedules::fmt(t)
                            ));
                        };
                        let linear = c.len() == m2.len()
                            && m0.iter().all(|x| *x == 0.0)
                            && c.iter()
                                .zip(&m2)
                                .all(|(c, m2)| (m2 - 2.0 * c).abs() <= 1e-12 * c.abs().max(1e-300));
                        if !linear {
                            return Err(format!(
                                "its mean is not c({}) * {} (at {} = {})",
                                self.p.time.name,
                                self.version_name(prev),
                                self.p.time.name,
                                super::schedules::fmt(t)
                            ));
                        }
                    }
                }
                let c_elem = match self.ty(c).elem() {
                    Some(e @ Elem::Vec(_)) => e,
                    _ => Elem::Real,
                };
                let c_ty = Ty::value(c_elem, Stage::Host);
                let a_body = self.typed_call(Builtin::Cumprod, vec![c], &c_ty, span);
                let Some(a) = self.derived_schedule(&format!("a_{fname}"), a_body, c_elem, span)
                else {
                    return Ok(None);
                };
                let two = self.num(2.0, span);
                let a_in = self.schedule_at_t(a, c_elem, span);
                let a2_in = self.bin_wide(BinOp::Pow, a_in, two, span);
                let ratio = self.bin_wide(BinOp::Div, b, a2_in, span);
                let v_elem = self.ty(ratio).elem().unwrap_or(Elem::Real);
                let v_ty = Ty::value(v_elem, Stage::Host);
                let sum = self.typed_call(Builtin::Cumsum, vec![ratio], &v_ty, span);
                let a_out = self.schedule_at_t(a, c_elem, span);
                let a2_out = self.bin_wide(BinOp::Pow, a_out, two, span);
                let v_body = self.bin_wide(BinOp::Mul, a2_out, sum, span);
                let Some(v) = self.derived_schedule(&format!("v_{fname}"), v_body, v_elem, span)
                else {
                    return Ok(None);
                };
                let fty = Ty::value(f.elem, fstage.clone());
                let a_t = self.schedule_at_t(a, c_elem, span);
                let mean = self.typed_op(BinOp::Mul, a_t, x0, &fty, span);
                let v_t = self.schedule_at_t(v, v_elem, span);
                let var = match per_element {
                    Some(h) => self.bin_wide(BinOp::Mul, v_t, h, span),
                    None => v_t,
                };
                (Family::Normal, vec![mean, var])
            }
            (Family::Categorical, Elem::Cat(k)) => {
                let p = params[0];
                let mty = Ty::value(Elem::Mat(k), Stage::Host);
                let m = match self.matrix_of(p, prev) {
                    Some(q) => q,
                    None => {
                        if k as usize > super::kernels::MAX_COMBOS {
                            return Err(format!(
                                "{k} classes are more than the {} whose rows the checker writes out (write it as `onehot({}) @ Q(t)`)",
                                super::kernels::MAX_COMBOS,
                                self.version_name(prev)
                            ));
                        }
                        let rows: Vec<ExprId> = (0..k)
                            .map(|j| {
                                let cj = self.push(
                                    ExprKind::Number(j as f64),
                                    Ty::value(f.elem, Stage::Const),
                                    span,
                                );
                                self.substitute(p, Subst::Field(prev, cj), &mut HashMap::new())
                            })
                            .collect();
                        self.push(ExprKind::List(rows), mty.clone(), span)
                    }
                };
                let body = self.typed_call(Builtin::Cumprod, vec![m], &mty, span);
                let Some(qbar) =
                    self.derived_schedule(&format!("Qbar_{fname}"), body, Elem::Mat(k), span)
                else {
                    return Ok(None);
                };
                let vty = Ty::value(Elem::Vec(k), fstage.clone());
                let oh = self.typed_call(Builtin::OneHot, vec![x0], &vty, span);
                let q_t = self.schedule_at_t(qbar, Elem::Mat(k), span);
                let probs = self.typed_op(BinOp::MatMul, oh, q_t, &vty, span);
                (Family::Categorical, vec![probs])
            }
            (Family::Bernoulli, Elem::Bool) => {
                let p = params[0];
                let given = |c: &mut Self, b: bool| {
                    let v = c.push(ExprKind::Bool(b), Ty::value(Elem::Bool, Stage::Const), span);
                    let e = c.substitute(p, Subst::Field(prev, v), &mut HashMap::new());
                    c.taken_branch(e)
                };
                let (p1, p0) = (given(self, true), given(self, false));
                let p0_zero = {
                    let ev = Evaluator::new(&self.p);
                    self.p.time.check_points().into_iter().all(|t| {
                        let env = Env {
                            t,
                            ..Env::default()
                        };
                        matches!(ev.real(p0, &env), Ok(x) if x == 0.0)
                    })
                };
                let rty = Ty::real(fstage.clone());
                let zero = self.num(0.0, span);
                let (when_true, when_false) = if p0_zero {
                    let body = self.typed_call(Builtin::Cumprod, vec![p1], &host, span);
                    let Some(g) =
                        self.derived_schedule(&format!("p_{fname}"), body, Elem::Real, span)
                    else {
                        return Ok(None);
                    };
                    (self.schedule_at_t(g, Elem::Real, span), zero)
                } else {
                    let diff = self.bin(BinOp::Sub, p1, p0, span);
                    let body = self.typed_call(Builtin::Cumprod, vec![diff], &host, span);
                    let Some(d) =
                        self.derived_schedule(&format!("d_{fname}"), body, Elem::Real, span)
                    else {
                        return Ok(None);
                    };
                    let d_in = self.schedule_at_t(d, Elem::Real, span);
                    let ratio = self.bin(BinOp::Div, p0, d_in, span);
                    let body = self.typed_call(Builtin::Cumsum, vec![ratio], &host, span);
                    let Some(s) =
                        self.derived_schedule(&format!("s_{fname}"), body, Elem::Real, span)
                    else {
                        return Ok(None);
                    };
                    let one = self.num(1.0, span);
                    let s_t = self.schedule_at_t(s, Elem::Real, span);
                    let d_t = self.schedule_at_t(d, Elem::Real, span);
                    let one_s = self.bin(BinOp::Add, one, s_t, span);
                    let t_true = self.bin(BinOp::Mul, d_t, one_s, span);
                    let s_t = self.schedule_at_t(s, Elem::Real, span);
                    let d_t = self.schedule_at_t(d, Elem::Real, span);
                    (t_true, self.bin(BinOp::Mul, d_t, s_t, span))
                };
                let probs = self.typed_if(x0, when_true, when_false, &rty, span);
                (Family::Bernoulli, vec![probs])
            }
            _ => {
                return Err(format!(
                    "only Gaussian kernels of a real field, and categorical or Bernoulli kernels, compose here; this is a {} kernel of a {} field",
                    step.family.name(),
                    f.elem.describe()
                ))
            }
        };
        let dist = self.push(
            ExprKind::Dist {
                family,
                params: dist_params.clone(),
            },
            Ty::Dist {
                elem: f.elem,
                stage: fstage,
            },
            span,
        );
        let mut given = vec![data];
        given.extend(step.given.iter().filter(|g| **g != prev));
        let affine = if family == Family::Normal {
            self.affine(dist_params[0], dist_params[1], &given)
        } else {
            None
        };
        Ok(Some(Kernel {
            kind: KernelKind::Marginal,
            target: FieldRef {
                field,
                version: Version::T,
            },
            given,
            family,
            dist,
            bindings: Vec::new(),
            affine,
            approximate: None,
            derived: true,
            span,
        }))
    }

    /// A Gaussian one-step kernel's variance as b(t) · h: the product of its factors (the
    /// operands of a product, read through `where` names) that are functions of time alone,
    /// and of those that do not read the time (a `param`, a conditioning field, a constant:
    /// h, `None` where there are none). Since h is the same at every step, the composed
    /// variance is h · a_t² Σ_k b_k / a_k². A factor that reads both the time and something
    /// else is an error.
    fn split_variance(
        &mut self,
        var: ExprId,
        prev: FieldRef,
        span: Span,
    ) -> Result<(ExprId, Option<ExprId>), String> {
        let mut factors = Vec::new();
        let mut stack = vec![var];
        while let Some(e) = stack.pop() {
            match self.p.expr(e).kind {
                ExprKind::Binary {
                    op: BinOp::Mul,
                    lhs,
                    rhs,
                } => {
                    stack.push(rhs);
                    stack.push(lhs);
                }
                ExprKind::Local(l) if self.p.locals[l.index()].value.is_some() => {
                    stack.push(self.p.locals[l.index()].value.unwrap());
                }
                _ => factors.push(e),
            }
        }
        let (mut timed, mut fixed) = (Vec::new(), Vec::new());
        for e in factors {
            match self.reads_only_time(e, prev) {
                Ok(()) => timed.push(e),
                Err(_) if !self.reads_time(e) => fixed.push(e),
                Err(why) => {
                    let what = why
                        .trim_start_matches("it ")
                        .trim_end_matches(", which a tabulated schedule cannot follow");
                    return Err(format!(
                        "its variance is not b({t}) times a factor constant in time (a factor that {what} also reads {t})",
                        t = self.p.time.name,
                    ));
                }
            }
        }
        if fixed.is_empty() {
            return Ok((var, None));
        }
        let product = |c: &mut Self, es: &[ExprId]| {
            let mut it = es.iter().copied();
            let first = it.next().unwrap_or_else(|| c.num(1.0, span));
            it.fold(first, |acc, e| c.bin_wide(BinOp::Mul, acc, e, span))
        };
        let b = product(self, &timed);
        let h = product(self, &fixed);
        Ok((b, Some(h)))
    }

    /// Whether `e` reads the time (directly or through a schedule).
    fn reads_time(&self, e: ExprId) -> bool {
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            match &self.p.expr(e).kind {
                ExprKind::Time(_) | ExprKind::Schedule { .. } => return true,
                ExprKind::Local(l) => stack.extend(self.p.locals[l.index()].value),
                k => super::schedules::children(k, &mut stack),
            }
        }
        false
    }

    /// `e` with `prev` replaced by the number `x` (`c * 1` and `1 * c` printed as `c`).
    fn at_value(&mut self, e: ExprId, prev: FieldRef, x: f64, span: Span) -> ExprId {
        let v = self.num(x, span);
        let e = self.substitute(e, Subst::Field(prev, v), &mut HashMap::new());
        let one = |c: &Self, e: ExprId| matches!(c.p.expr(e).kind, ExprKind::Number(x) if x == 1.0);
        match self.p.expr(e).kind {
            ExprKind::Binary {
                op: BinOp::Mul,
                lhs,
                rhs,
            } if one(self, rhs) => lhs,
            ExprKind::Binary {
                op: BinOp::Mul,
                lhs,
                rhs,
            } if one(self, lhs) => rhs,
            _ => e,
        }
    }

    /// `if true then a else b` is `a` (and so on), after a constant was substituted.
    fn taken_branch(&self, e: ExprId) -> ExprId {
        match self.p.expr(e).kind {
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => match self.p.expr(cond).kind {
                ExprKind::Bool(true) => self.taken_branch(then),
                ExprKind::Bool(false) => self.taken_branch(otherwise),
                _ => e,
            },
            _ => e,
        }
    }

    /// `Q` where `p` is written `onehot(prev) @ Q` and `Q` does not read `prev`.
    fn matrix_of(&self, p: ExprId, prev: FieldRef) -> Option<ExprId> {
        let ExprKind::Binary {
            op: BinOp::MatMul,
            lhs,
            rhs,
        } = self.p.expr(p).kind
        else {
            return None;
        };
        let ExprKind::Call {
            func: Builtin::OneHot,
            ref args,
        } = self.p.expr(lhs).kind
        else {
            return None;
        };
        let is_prev =
            args.len() == 1 && matches!(self.p.expr(args[0]).kind, ExprKind::Field(r) if r == prev);
        (is_prev && !self.reads_field(rhs, prev)).then_some(rhs)
    }

    pub(super) fn reads_field(&self, e: ExprId, r: FieldRef) -> bool {
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            match &self.p.expr(e).kind {
                ExprKind::Field(x) if *x == r => return true,
                ExprKind::Local(l) => stack.extend(self.p.locals[l.index()].value),
                k => super::schedules::children(k, &mut stack),
            }
        }
        false
    }

    /// Whether `e` is a function of the time and `prev` alone (what a schedule may hold once
    /// `prev` is given a value); otherwise what else it reads.
    fn reads_only_time(&self, e: ExprId, prev: FieldRef) -> Result<(), String> {
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            let x = self.p.expr(e);
            let what = match &x.kind {
                ExprKind::Number(_) | ExprKind::Bool(_) | ExprKind::Const(_) => continue,
                ExprKind::Time(TimeRef::T) => continue,
                ExprKind::Field(r) if *r == prev => continue,
                ExprKind::Local(l) => {
                    stack.extend(self.p.locals[l.index()].value);
                    continue;
                }
                ExprKind::Schedule { .. }
                | ExprKind::Unary { .. }
                | ExprKind::Binary { .. }
                | ExprKind::Call { .. }
                | ExprKind::If { .. }
                | ExprKind::Index { .. }
                | ExprKind::List(_) => {
                    super::schedules::children(&x.kind, &mut stack);
                    continue;
                }
                ExprKind::Param(id) => format!(
                    "it reads the run-time param `{}`, which a tabulated schedule cannot follow",
                    self.p.params[id.index()].name
                ),
                ExprKind::Field(r) => format!("it reads `{}`", self.version_name(*r)),
                _ => "it reads more than the time and the previous step".to_string(),
            };
            return Err(what);
        }
        Ok(())
    }

    /// A schedule read at the time `t`.
    fn schedule_at_t(&mut self, id: ScheduleId, elem: Elem, span: Span) -> ExprId {
        let t = self.push(ExprKind::Time(TimeRef::T), Ty::real(Stage::Host), span);
        self.push(
            ExprKind::Schedule { id, at: t },
            Ty::value(elem, Stage::Host),
            span,
        )
    }

    /// Adds a schedule the checker derived (named `base`, or `base_derived`, `base_derived2`, …
    /// where the name is taken) and tabulates it; `None` when the tabulation failed (reported).
    fn derived_schedule(
        &mut self,
        base: &str,
        body: ExprId,
        elem: Elem,
        span: Span,
    ) -> Option<ScheduleId> {
        let taken = |c: &Self, n: &str| {
            c.globals.contains_key(n) || c.p.schedules.iter().any(|s| s.name == n)
        };
        let mut name = base.to_string();
        let mut i = 1;
        while taken(self, &name) {
            name = if i == 1 {
                format!("{base}_derived")
            } else {
                format!("{base}_derived{i}")
            };
            i += 1;
        }
        let id = ScheduleId(self.p.schedules.len() as u32);
        // Losses and samplers, checked later, may read it by name.
        self.globals
            .insert(name.clone(), (super::Global::Schedule(id), span));
        self.p.schedules.push(Schedule {
            name,
            body,
            elem,
            interval: None,
            monotone: None,
            table: Vec::new(),
            span,
            derived: true,
        });
        let time = self.p.time.clone();
        self.tabulate_one(id.index(), &time).then_some(id)
    }
}
