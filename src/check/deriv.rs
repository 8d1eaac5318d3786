//! Time derivatives of schedule expressions, as typed expressions.
//!
//! A network that predicts the velocity dx_t/dt = a'(t) x_0 + σ'(t) ε of a forward marginal
//! `Normal(a(t) x_0, σ(t)²)` needs a' and σ' wherever its output is converted (to x̂_0, ε̂, …) or
//! an exact denoiser produces it. They are built here once per marginal, symbolically, from the
//! declared expressions, so that every consumer (the host coefficients of every backend, the
//! compile-time evaluator, the exact denoiser) computes them as it computes any schedule: in
//! f64, on the host.
//!
//! Differentiation follows the usual rules; a schedule call `s(u)` is `s'(u) · u'`, where `s'` is
//! the derivative of the schedule's body with its time replaced by `u`. Piecewise builtins (`min`,
//! `max`, `clamp`, `abs`, `if`) take the derivative of the branch that is taken. Expressions
//! that have no derivative here (tables of discrete time, vectors, `floor` is allowed and is 0)
//! are an error naming what could not be differentiated.
//!
//! The noise level σ is `|e|` when the variance is written `e ^ 2` (so that rectified flow's
//! σ = t and EDM's σ = t differentiate at t = 0 as 1), and `sqrt(v)` otherwise, with σ' = v'/(2σ).

use std::collections::HashMap;

use super::Checker;
use crate::diag::{Code, Diagnostic};
use crate::syntax::ast::{BinOp, UnOp};
use crate::typed::{
    Builtin, Elem, ExprId, ExprKind, FieldId, FieldRef, KernelKind, ParamKind, Rates, TimeKind,
    TimeRef,
};
use crate::types::{Stage, Ty};

/// What `Checker::substitute` replaces: the time `t`, or a field version.
#[derive(Clone, Copy, Debug)]
pub(super) enum Subst {
    Time(ExprId),
    Field(FieldRef, ExprId),
}

/// A derivative under construction: `None` is zero.
type D = Result<Option<ExprId>, String>;

impl Checker<'_> {
    /// σ, a' and σ' of the affine marginal `Normal(alpha x_0, var)`.
    pub(super) fn rates(&mut self, alpha: ExprId, var: ExprId) -> Result<Rates, String> {
        let mut memo = HashMap::new();
        let dalpha = self.d_dt(alpha, &mut memo)?;
        let span = self.p.expr(var).span;
        let (sigma, dsigma) = match self.square_root_of(var) {
            Some(e) => {
                let s = self.d_builtin(Builtin::Abs, vec![e], span);
                let ds = self.d_dt(s, &mut memo)?;
                (s, ds)
            }
            None => {
                let s = self.d_builtin(Builtin::Sqrt, vec![var], span);
                let ds = self.d_dt(s, &mut memo)?;
                (s, ds)
            }
        };
        let zero = |c: &mut Self, d: Option<ExprId>| d.unwrap_or_else(|| c.num(0.0, span));
        Ok(Rates {
            sigma,
            dalpha: zero(self, dalpha),
            dsigma: zero(self, dsigma),
        })
    }

    /// `e` when `v` is written `e ^ 2` or `e * e`.
    fn square_root_of(&self, v: ExprId) -> Option<ExprId> {
        match self.p.expr(v).kind {
            ExprKind::Local(l) => self.p.locals[l.index()]
                .value
                .and_then(|x| self.square_root_of(x)),
            ExprKind::Binary {
                op: BinOp::Pow,
                lhs,
                rhs,
            } if matches!(self.p.expr(rhs).kind, ExprKind::Number(n) if n == 2.0) => Some(lhs),
            ExprKind::Binary {
                op: BinOp::Mul,
                lhs,
                rhs,
            } if lhs == rhs => Some(lhs),
            _ => None,
        }
    }

    /// d e / d t, for an expression of the time `t` only.
    fn d_dt(&mut self, e: ExprId, memo: &mut HashMap<ExprId, Option<ExprId>>) -> D {
        if let Some(d) = memo.get(&e) {
            return Ok(*d);
        }
        let d = self.d_dt_uncached(e, memo)?;
        memo.insert(e, d);
        Ok(d)
    }

    fn d_dt_uncached(&mut self, e: ExprId, memo: &mut HashMap<ExprId, Option<ExprId>>) -> D {
        let x = self.p.expr(e).clone();
        let span = x.span;
        Ok(match x.kind {
            ExprKind::Number(_)
            | ExprKind::Bool(_)
            | ExprKind::Const(_)
            | ExprKind::Param(_)
            | ExprKind::SamplerParam { .. }
            | ExprKind::Step(_) => None,
            ExprKind::Time(TimeRef::T) => Some(self.num(1.0, span)),
            ExprKind::Time(_) => return Err("a time other than `t`".into()),
            ExprKind::Local(l) => match self.p.locals[l.index()].value {
                Some(v) => self.d_dt(v, memo)?,
                None => return Err(format!("the draw `{}`", self.p.locals[l.index()].name)),
            },
            ExprKind::Schedule { id, at } => {
                let s = self.p.schedule(id).clone();
                if !s.table.is_empty() || s.elem != Elem::Real {
                    return Err(format!(
                        "the schedule `{}` (a table, not a formula)",
                        s.name
                    ));
                }
                // Derivatives of a schedule's body are in its own time, then moved to `at`.
                let mut inner = HashMap::new();
                let Some(db) = self.d_dt(s.body, &mut inner)? else {
                    return Ok(None);
                };
                let Some(dat) = self.d_dt(at, memo)? else {
                    return Ok(None);
                };
                let moved = if matches!(self.p.expr(at).kind, ExprKind::Time(TimeRef::T)) {
                    db
                } else {
                    self.subst_time(db, at, &mut HashMap::new())
                };
                self.mul(Some(moved), Some(dat), span)
            }
            ExprKind::Unary { op: UnOp::Neg, arg } => {
                let d = self.d_dt(arg, memo)?;
                self.neg(d, span)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                if matches!(
                    op,
                    BinOp::Lt
                        | BinOp::Le
                        | BinOp::Gt
                        | BinOp::Ge
                        | BinOp::Eq
                        | BinOp::Ne
                        | BinOp::And
                        | BinOp::Or
                ) {
                    return Ok(None);
                }
                let da = self.d_dt(lhs, memo)?;
                let db = self.d_dt(rhs, memo)?;
                match op {
                    BinOp::Add => self.add(da, db, span),
                    BinOp::Sub => {
                        let nb = self.neg(db, span);
                        self.add(da, nb, span)
                    }
                    BinOp::Mul => {
                        let l = self.mul(da, Some(rhs), span);
                        let r = self.mul(Some(lhs), db, span);
                        self.add(l, r, span)
                    }
                    BinOp::Div => {
                        // (a' b − a b') / b² = a'/b − (a/b) b'/b
                        let l = self.div(da, rhs, span);
                        let r = self.mul(Some(e), db, span);
                        let r = r.map(|r| self.bin(BinOp::Div, r, rhs, span));
                        let r = self.neg(r, span);
                        self.add(l, r, span)
                    }
                    BinOp::Pow => match db {
                        // a^n: n a^(n−1) a'
                        None => {
                            let Some(da) = da else { return Ok(None) };
                            let n1 = match self.p.expr(rhs).kind {
                                ExprKind::Number(n) => self.num(n - 1.0, span),
                                _ => {
                                    let one = self.num(1.0, span);
                                    self.bin(BinOp::Sub, rhs, one, span)
                                }
                            };
                            let p = self.bin(BinOp::Pow, lhs, n1, span);
                            let np = self.bin(BinOp::Mul, rhs, p, span);
                            Some(self.bin(BinOp::Mul, np, da, span))
                        }
                        // a^b (b' ln a + b a'/a)
                        Some(db) => {
                            let ln = self.d_builtin(Builtin::Log, vec![lhs], span);
                            let l = self.bin(BinOp::Mul, db, ln, span);
                            let r = self.mul(Some(rhs), da, span);
                            let r = self.div(r, lhs, span);
                            let s = self.add(Some(l), r, span);
                            self.mul(Some(e), s, span)
                        }
                    },
                    _ => return Err(format!("the operator `{}`", op.symbol())),
                }
            }
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => {
                let a = self.d_dt(then, memo)?;
                let b = self.d_dt(otherwise, memo)?;
                if a.is_none() && b.is_none() {
                    return Ok(None);
                }
                let a = a.unwrap_or_else(|| self.num(0.0, span));
                let b = b.unwrap_or_else(|| self.num(0.0, span));
                Some(self.ifx(cond, a, b, span))
            }
            ExprKind::Call { func, args } => self.d_call(e, func, &args, memo)?,
            _ => return Err("an expression that is not a scalar of time".into()),
        })
    }

    fn d_call(
        &mut self,
        e: ExprId,
        func: Builtin,
        args: &[ExprId],
        memo: &mut HashMap<ExprId, Option<ExprId>>,
    ) -> D {
        use Builtin as B;
        let span = self.p.expr(e).span;
        let d0 = match func {
            B::Floor => return Ok(None),
            B::Sqrt
            | B::Exp
            | B::Expm1
            | B::Log
            | B::Log1p
            | B::Sin
            | B::Cos
            | B::Tanh
            | B::Sigmoid
            | B::Softplus
            | B::Abs
            | B::Min
            | B::Max
            | B::Clamp
            | B::LogAddExp => self.d_dt(args[0], memo)?,
            f => return Err(format!("`{}`", f.name())),
        };
        // f(a): f'(a) a'
        let chain = |c: &mut Self, f1: ExprId| c.mul(Some(f1), d0, span);
        Ok(match func {
            _ if d0.is_none() && !matches!(func, B::Min | B::Max | B::Clamp | B::LogAddExp) => None,
            B::Sqrt => {
                // a' / (2 sqrt a)
                let two = self.num(2.0, span);
                let den = self.bin(BinOp::Mul, two, e, span);
                self.div(d0, den, span)
            }
            B::Exp => chain(self, e),
            B::Expm1 => {
                let ex = self.d_builtin(B::Exp, vec![args[0]], span);
                chain(self, ex)
            }
            B::Log => self.div(d0, args[0], span),
            B::Log1p => {
                let one = self.num(1.0, span);
                let den = self.bin(BinOp::Add, one, args[0], span);
                self.div(d0, den, span)
            }
            B::Sin => {
                let c = self.d_builtin(B::Cos, vec![args[0]], span);
                chain(self, c)
            }
            B::Cos => {
                let s = self.d_builtin(B::Sin, vec![args[0]], span);
                let r = chain(self, s);
                self.neg(r, span)
            }
            B::Tanh => {
                let one = self.num(1.0, span);
                let sq = self.bin(BinOp::Mul, e, e, span);
                let f1 = self.bin(BinOp::Sub, one, sq, span);
                chain(self, f1)
            }
            B::Sigmoid => {
                let one = self.num(1.0, span);
                let c = self.bin(BinOp::Sub, one, e, span);
                let f1 = self.bin(BinOp::Mul, e, c, span);
                chain(self, f1)
            }
            B::Softplus => {
                let s = self.d_builtin(B::Sigmoid, vec![args[0]], span);
                chain(self, s)
            }
            B::Abs => {
                let zero = self.num(0.0, span);
                let cond = self.cmp(BinOp::Ge, args[0], zero, span);
                let d = d0.expect("checked above");
                let nd = self.bin_neg(d, span);
                Some(self.ifx(cond, d, nd, span))
            }
            B::Min | B::Max => {
                let d1 = self.d_dt(args[1], memo)?;
                if d0.is_none() && d1.is_none() {
                    return Ok(None);
                }
                let op = if func == B::Min { BinOp::Le } else { BinOp::Ge };
                let cond = self.cmp(op, args[0], args[1], span);
                let a = d0.unwrap_or_else(|| self.num(0.0, span));
                let b = d1.unwrap_or_else(|| self.num(0.0, span));
                Some(self.ifx(cond, a, b, span))
            }
            B::Clamp => {
                let dlo = self.d_dt(args[1], memo)?;
                let dhi = self.d_dt(args[2], memo)?;
                if d0.is_none() && dlo.is_none() && dhi.is_none() {
                    return Ok(None);
                }
                let z = |c: &mut Self, d: Option<ExprId>| d.unwrap_or_else(|| c.num(0.0, span));
                let (dx, dlo, dhi) = (z(self, d0), z(self, dlo), z(self, dhi));
                let above = self.cmp(BinOp::Gt, args[0], args[2], span);
                let inner = self.ifx(above, dhi, dx, span);
                let below = self.cmp(BinOp::Lt, args[0], args[1], span);
                Some(self.ifx(below, dlo, inner, span))
            }
            B::LogAddExp => {
                // σ(a − b) a' + σ(b − a) b'
                let d1 = self.d_dt(args[1], memo)?;
                let ab = self.bin(BinOp::Sub, args[0], args[1], span);
                let ba = self.bin(BinOp::Sub, args[1], args[0], span);
                let sa = self.d_builtin(B::Sigmoid, vec![ab], span);
                let sb = self.d_builtin(B::Sigmoid, vec![ba], span);
                let l = self.mul(Some(sa), d0, span);
                let r = self.mul(Some(sb), d1, span);
                self.add(l, r, span)
            }
            f => return Err(format!("`{}`", f.name())),
        })
    }

    /// A copy of `e` with the time `t` replaced by `at`.
    pub(super) fn subst_time(
        &mut self,
        e: ExprId,
        at: ExprId,
        memo: &mut HashMap<ExprId, ExprId>,
    ) -> ExprId {
        self.substitute(e, Subst::Time(at), memo)
    }

    /// A copy of `e` with the time `t`, or a field version, replaced by an expression.
    pub(super) fn substitute(
        &mut self,
        e: ExprId,
        what: Subst,
        memo: &mut HashMap<ExprId, ExprId>,
    ) -> ExprId {
        if let Some(&r) = memo.get(&e) {
            return r;
        }
        let x = self.p.expr(e).clone();
        let mut sub = |c: &mut Self, y: ExprId| c.substitute(y, what, memo);
        let kind = match (x.kind, what) {
            (ExprKind::Time(TimeRef::T), Subst::Time(at)) => {
                memo.insert(e, at);
                return at;
            }
            (ExprKind::Field(r), Subst::Field(f, with)) if r == f => {
                memo.insert(e, with);
                return with;
            }
            (ExprKind::Schedule { id, at: a }, _) => ExprKind::Schedule {
                id,
                at: sub(self, a),
            },
            (ExprKind::Unary { op, arg }, _) => ExprKind::Unary {
                op,
                arg: sub(self, arg),
            },
            (ExprKind::Binary { op, lhs, rhs }, _) => ExprKind::Binary {
                op,
                lhs: sub(self, lhs),
                rhs: sub(self, rhs),
            },
            (ExprKind::Call { func, args }, _) => ExprKind::Call {
                func,
                args: args.iter().map(|&a| sub(self, a)).collect(),
            },
            (
                ExprKind::If {
                    cond,
                    then,
                    otherwise,
                },
                _,
            ) => ExprKind::If {
                cond: sub(self, cond),
                then: sub(self, then),
                otherwise: sub(self, otherwise),
            },
            (ExprKind::Index { base, index }, _) => ExprKind::Index {
                base: sub(self, base),
                index: sub(self, index),
            },
            (ExprKind::List(items), _) => {
                ExprKind::List(items.iter().map(|&a| sub(self, a)).collect())
            }
            (ExprKind::Local(l), _) => match self.p.locals[l.index()].value {
                Some(v) => {
                    let r = sub(self, v);
                    memo.insert(e, r);
                    return r;
                }
                None => {
                    memo.insert(e, e);
                    return e;
                }
            },
            _ => {
                memo.insert(e, e);
                return e;
            }
        };
        let r = self.push(kind, x.ty, x.span);
        memo.insert(e, r);
        r
    }

    pub(super) fn num(&mut self, x: f64, span: crate::diag::Span) -> ExprId {
        self.push(ExprKind::Number(x), Ty::real(Stage::Const), span)
    }

    /// `lhs op rhs`, with the identities that keep printed derivatives readable: `1 * a`,
    /// `a * 1`, `a / 1` and `a ^ 1` are `a`, and `a + -b` is `a - b`.
    pub(super) fn bin(
        &mut self,
        op: BinOp,
        lhs: ExprId,
        rhs: ExprId,
        span: crate::diag::Span,
    ) -> ExprId {
        let one = |c: &Self, e: ExprId| matches!(c.p.expr(e).kind, ExprKind::Number(x) if x == 1.0);
        match op {
            BinOp::Mul if one(self, lhs) => return rhs,
            BinOp::Mul | BinOp::Div | BinOp::Pow if one(self, rhs) => return lhs,
            BinOp::Add => {
                if let ExprKind::Unary { op: UnOp::Neg, arg } = self.p.expr(rhs).kind {
                    return self.bin(BinOp::Sub, lhs, arg, span);
                }
            }
            _ => {}
        }
        self.push(
            ExprKind::Binary { op, lhs, rhs },
            Ty::real(Stage::Host),
            span,
        )
    }

    fn bin_neg(&mut self, arg: ExprId, span: crate::diag::Span) -> ExprId {
        self.push(
            ExprKind::Unary { op: UnOp::Neg, arg },
            Ty::real(Stage::Host),
            span,
        )
    }

    /// The type of an elementwise combination of `lhs` and `rhs`: `vec<K>` where either is,
    /// real otherwise, at the wider of their stages and at least `Host` (as `bin` types).
    pub(super) fn wide_ty(&self, lhs: ExprId, rhs: ExprId) -> Ty {
        let (a, b) = (self.ty(lhs), self.ty(rhs));
        let elem = match (a.elem(), b.elem()) {
            (Some(e @ Elem::Vec(_)), _) | (_, Some(e @ Elem::Vec(_))) => e,
            _ => Elem::Real,
        };
        let stage = |t: &Ty| t.stage().cloned().unwrap_or(Stage::Host);
        let both = super::expr::join_stage(&stage(a), &stage(b)).unwrap_or_else(|_| stage(a));
        let stage = super::expr::join_stage(&Stage::Host, &both).unwrap_or(both);
        Ty::value(elem, stage)
    }

    /// `bin` typed with the wider stage (and element type) of its operands: the posterior of a
    /// marginal whose coefficients vary per element (`check::derive`).
    pub(super) fn bin_wide(
        &mut self,
        op: BinOp,
        lhs: ExprId,
        rhs: ExprId,
        span: crate::diag::Span,
    ) -> ExprId {
        let one = |c: &Self, e: ExprId| matches!(c.p.expr(e).kind, ExprKind::Number(x) if x == 1.0);
        match op {
            BinOp::Mul if one(self, lhs) => return rhs,
            BinOp::Mul | BinOp::Div | BinOp::Pow if one(self, rhs) => return lhs,
            _ => {}
        }
        let ty = self.wide_ty(lhs, rhs);
        self.push(ExprKind::Binary { op, lhs, rhs }, ty, span)
    }

    /// `ifx` typed with the wider stage of its branches.
    pub(super) fn ifx_wide(
        &mut self,
        cond: ExprId,
        then: ExprId,
        otherwise: ExprId,
        span: crate::diag::Span,
    ) -> ExprId {
        let ty = self.wide_ty(then, otherwise);
        self.push(
            ExprKind::If {
                cond,
                then,
                otherwise,
            },
            ty,
            span,
        )
    }

    pub(super) fn cmp(
        &mut self,
        op: BinOp,
        lhs: ExprId,
        rhs: ExprId,
        span: crate::diag::Span,
    ) -> ExprId {
        self.push(
            ExprKind::Binary { op, lhs, rhs },
            Ty::value(Elem::Bool, Stage::Host),
            span,
        )
    }

    fn d_builtin(&mut self, func: Builtin, args: Vec<ExprId>, span: crate::diag::Span) -> ExprId {
        self.push(ExprKind::Call { func, args }, Ty::real(Stage::Host), span)
    }

    pub(super) fn ifx(
        &mut self,
        cond: ExprId,
        then: ExprId,
        otherwise: ExprId,
        span: crate::diag::Span,
    ) -> ExprId {
        self.push(
            ExprKind::If {
                cond,
                then,
                otherwise,
            },
            Ty::real(Stage::Host),
            span,
        )
    }

    fn add(
        &mut self,
        a: Option<ExprId>,
        b: Option<ExprId>,
        span: crate::diag::Span,
    ) -> Option<ExprId> {
        match (a, b) {
            (Some(a), Some(b)) => Some(self.bin(BinOp::Add, a, b, span)),
            (a, None) => a,
            (None, b) => b,
        }
    }

    fn mul(
        &mut self,
        a: Option<ExprId>,
        b: Option<ExprId>,
        span: crate::diag::Span,
    ) -> Option<ExprId> {
        match (a, b) {
            (Some(a), Some(b)) => Some(self.bin(BinOp::Mul, a, b, span)),
            _ => None,
        }
    }

    fn div(&mut self, a: Option<ExprId>, b: ExprId, span: crate::diag::Span) -> Option<ExprId> {
        a.map(|a| self.bin(BinOp::Div, a, b, span))
    }

    fn neg(&mut self, a: Option<ExprId>, span: crate::diag::Span) -> Option<ExprId> {
        a.map(|a| self.bin_neg(a, span))
    }
}

impl Checker<'_> {
    /// Each continuous-time affine Gaussian marginal gets its rates, and each network output
    /// declared as a velocity is checked to have them.
    pub(super) fn check_velocities(&mut self) {
        let continuous = self.p.time.kind == TimeKind::Continuous;
        let mut why: HashMap<usize, String> = HashMap::new();
        for i in 0..self.p.forwards.len() {
            let k = &self.p.forwards[i];
            let Some(a) = k.affine else { continue };
            if k.kind != KernelKind::Marginal || !continuous {
                continue;
            }
            match self.rates(a.alpha, a.var) {
                Ok(r) => self.p.forwards[i].affine.as_mut().unwrap().rates = Some(r),
                Err(e) => {
                    why.insert(i, e);
                }
            }
        }
        let nets = self.p.networks.clone();
        for n in &nets {
            for o in n.outputs.iter().filter(|o| o.kind == ParamKind::Velocity) {
                if let Some(d) = self.velocity_problem(o.field, n.span, &why) {
                    self.error(d);
                }
            }
        }
    }

    /// Why field `data`'s velocity cannot be formed, if it cannot.
    pub(super) fn velocity_problem(
        &self,
        data: FieldId,
        span: crate::diag::Span,
        why: &HashMap<usize, String>,
    ) -> Option<Diagnostic> {
        let name = &self.p.field(data).name;
        if self.p.time.kind != TimeKind::Continuous {
            return Some(
                Diagnostic::error(
                    Code::Parameterisation,
                    span,
                    format!("a velocity of `{name}` needs continuous time"),
                )
                .with_label("velocity is dx_t/dt")
                .with_note("declare `time t : [a, b]`, or predict eps, x0, score or v"),
            );
        }
        let i = self.p.forwards.iter().position(|k| {
            k.kind == KernelKind::Marginal
                && k.affine.is_some()
                && k.given.iter().any(|g| g.field == data)
        });
        let Some(i) = i else {
            return Some(
                Diagnostic::error(
                    Code::Parameterisation,
                    span,
                    format!("a velocity of `{name}` needs a forward marginal `Normal(a(t) * {name}_0, v(t))`"),
                )
                .with_label("no affine Gaussian marginal for this field")
                .with_note("the velocity a'(t) x_0 + σ'(t) ε is defined by the marginal's coefficients"),
            );
        };
        if self.p.forwards[i].affine.unwrap().rates.is_some() {
            return None;
        }
        let k = &self.p.forwards[i];
        let reason = why.get(&i).cloned().unwrap_or_default();
        Some(
            Diagnostic::error(
                Code::Parameterisation,
                span,
                format!("a velocity of `{name}` needs the time derivatives of its marginal's coefficients"),
            )
            .with_label(format!("cannot differentiate {reason}"))
            .with_secondary(k.span, "the marginal")
            .with_note("write the signal coefficient and the variance as formulas of t"),
        )
    }
}
