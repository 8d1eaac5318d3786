//! Posteriors derived by conjugacy where a process leaves them out.
//!
//! For a real field with an affine Gaussian marginal `x_t | x_0 ~ Normal(a(t) x_0, v(t))` and no
//! written posterior, the compiler adds q(x_s | x_t, x_0), for any earlier time s (the step's
//! target; s = t − 1 on a sampler's `all` grid):
//!
//!   a_{t|s} = a_t / a_s,   v_{t|s} = v_t − a_{t|s}² v_s,
//!   x_s | x_t, x_0 ~ Normal((a_{t|s} v_s / v_t) x_t + (a_s v_{t|s} / v_t) x_0,  v_{t|s} v_s / v_t),
//!
//! with a_s = 1 and v_s = 0 at the data end (MATH.md §1.1, the VDM form). The kernel is typed
//! like a written `posterior x_s | x_t, x_0 ~ …`, marked `derived`, and checked like one
//! (a negative variance anywhere on the grid is an error at the marginal); `explain` prints it.
//!
//! The same formulas apply elementwise where `a` and `v` vary per element
//! (`Checker::elementwise_affine`): `vec<K>` coefficients of a `vec<K>` field (schedules,
//! params), and coefficients that read fields the marginal is also conditioned on
//! (`x_t | x_0, w`), in which case the posterior is conditioned on x_t, x_0 and those fields.
//! Each intermediate is typed with the wider stage of its operands (`bin_wide`, `ifx_wide`),
//! so it is a host value where the coefficients are and per element where they read a field.
//! The grid check evaluates what it can at compile time; coefficients read from a field are
//! known only at run time and are not checked here.

use std::collections::HashMap;

use super::deriv::Subst;
use super::Checker;
use crate::diag::Span;
use crate::syntax::ast::BinOp;
use crate::typed::{
    Builtin, Elem, ExprId, ExprKind, Family, FieldId, FieldRef, Kernel, KernelKind, TimeKind,
    TimeRef, Version,
};
use crate::types::{Stage, Ty};

impl Checker<'_> {
    /// Every field whose forward chain is written in full (a one-step kernel and a marginal)
    /// and that has no written posterior gets a derived one, and with it a `posterior` entry.
    pub(super) fn derive_chain_posteriors(&mut self) {
        let fields: Vec<FieldId> = self
            .p
            .forwards
            .iter()
            .filter(|k| k.kind == KernelKind::OneStep)
            .map(|k| k.target.field)
            .collect();
        for field in fields {
            let marginal = self
                .p
                .forwards
                .iter()
                .find(|k| k.kind == KernelKind::Marginal && k.target.field == field);
            if let Some(m) = marginal {
                // Conditioned on x_t and what the marginal is conditioned on.
                let mut given = vec![FieldRef {
                    field,
                    version: Version::T,
                }];
                given.extend(m.given.iter().copied());
                self.derive_posterior(&given);
            }
        }
    }

    /// A sampler draws `posterior(x_t = …, x_0 = …)` and no written posterior is conditioned
    /// on exactly `given`: derive one when `given` is x_t and x_0 of a real field with an affine
    /// Gaussian marginal, check its parameters on the grid like a written one's, and add it.
    /// False when there is nothing to derive from.
    pub(super) fn derive_posterior(&mut self, given: &[FieldRef]) -> bool {
        let Some(field) = given
            .iter()
            .find(|g| g.version == Version::T)
            .map(|g| g.field)
        else {
            return false;
        };
        let (x_t, x_0) = (
            FieldRef {
                field,
                version: Version::T,
            },
            FieldRef {
                field,
                version: Version::Data,
            },
        );
        if !given.contains(&x_t) || !given.contains(&x_0) {
            return false;
        }
        if self.p.posteriors.iter().any(|k| k.target.field == field) {
            return false;
        }
        if matches!(self.p.field(field).elem, Elem::Cat(_) | Elem::Bool) {
            return given.len() == 2 && (self.derive_discrete(field) || self.derive_mixture(field));
        }
        if !matches!(self.p.field(field).elem, Elem::Real | Elem::Vec(_)) {
            return false;
        }
        // The marginal of the field given its data and any conditioning fields; the posterior
        // is conditioned on x_t and the same variables.
        let Some(m) = self
            .p
            .forwards
            .iter()
            .find(|k| {
                k.kind == KernelKind::Marginal
                    && k.target.field == field
                    && k.family == Family::Normal
                    && k.given.contains(&x_0)
            })
            .cloned()
        else {
            return false;
        };
        if given.len() != m.given.len() + 1 || !m.given.iter().all(|g| given.contains(g)) {
            return false;
        }
        let parts = match m.affine {
            Some(a) => Some((a.alpha, a.var)),
            None => match self.p.expr(m.dist).kind.clone() {
                ExprKind::Dist { params, .. } => {
                    self.elementwise_affine(params[0], params[1], field)
                }
                _ => None,
            },
        };
        let Some((alpha, var)) = parts else {
            return false;
        };
        let k = self.gaussian_posterior(&m, alpha, var);
        if self.schedules_ok {
            if let Some(d) = self.kernel_domain(&k) {
                self.error(d);
            }
        }
        self.p.posteriors.push(k);
        true
    }

    /// `lhs op rhs` of type `ty`.
    pub(super) fn typed_op(
        &mut self,
        op: BinOp,
        lhs: ExprId,
        rhs: ExprId,
        ty: &Ty,
        span: Span,
    ) -> ExprId {
        self.push(ExprKind::Binary { op, lhs, rhs }, ty.clone(), span)
    }

    /// `if cond then a else b` of type `ty`.
    pub(super) fn typed_if(
        &mut self,
        cond: ExprId,
        then: ExprId,
        otherwise: ExprId,
        ty: &Ty,
        span: Span,
    ) -> ExprId {
        self.push(
            ExprKind::If {
                cond,
                then,
                otherwise,
            },
            ty.clone(),
            span,
        )
    }

    /// `func(args)` of type `ty`.
    pub(super) fn typed_call(
        &mut self,
        func: Builtin,
        args: Vec<ExprId>,
        ty: &Ty,
        span: Span,
    ) -> ExprId {
        self.push(ExprKind::Call { func, args }, ty.clone(), span)
    }

    /// `value` bound to a local `name` of a derived kernel (printed as a `where` line).
    fn bound(
        &mut self,
        name: &str,
        value: ExprId,
        span: Span,
        bindings: &mut Vec<crate::typed::LocalId>,
    ) -> ExprId {
        let id = self.new_local(
            &crate::syntax::ast::Ident {
                name: name.to_string(),
                span,
            },
            value,
        );
        bindings.push(id);
        self.push(ExprKind::Local(id), self.ty(value).clone(), span)
    }

    /// The posterior of the marginal `m`, `Normal(alpha * x_0, var)`: the formulas of the
    /// module's doc comment, elementwise where `alpha` or `var` vary per element (each
    /// intermediate typed with the wider stage of its operands).
    fn gaussian_posterior(&mut self, m: &Kernel, alpha: ExprId, var: ExprId) -> Kernel {
        let span = m.span;
        let field = m.target.field;
        let f = self.p.field(field).clone();
        let host = Ty::real(Stage::Host);
        // a_s and v_s: the marginal's coefficients at s, and (1, 0) at the data end.
        let s = self.push(ExprKind::Time(TimeRef::S), host.clone(), span);
        let end = self.num(self.p.time.data_at, span);
        let at_end = self.cmp(BinOp::Eq, s, end, span);
        let mut memo = HashMap::new();
        let alpha_s = self.subst_time(alpha, s, &mut memo);
        let var_s = self.subst_time(var, s, &mut memo);
        let one = self.num(1.0, span);
        let zero = self.num(0.0, span);
        // Named as the formula names them, so that `explain` prints them as `where` lines.
        let mut bindings = Vec::new();
        let mut bind = |c: &mut Self, name: &str, value: ExprId| {
            let id = c.new_local(
                &crate::syntax::ast::Ident {
                    name: name.to_string(),
                    span,
                },
                value,
            );
            bindings.push(id);
            c.push(ExprKind::Local(id), c.ty(value).clone(), span)
        };
        let a_s = self.ifx_wide(at_end, one, alpha_s, span);
        let a_s = bind(self, "a_s", a_s);
        let v_s = self.ifx_wide(at_end, zero, var_s, span);
        let v_s = bind(self, "v_s", v_s);
        let a_t = bind(self, "a_t", alpha);
        let v_t = bind(self, "v_t", var);
        let a_ts = self.bin_wide(BinOp::Div, a_t, a_s, span);
        let a_ts = bind(self, "a_ts", a_ts);
        let a_ts2 = self.bin_wide(BinOp::Mul, a_ts, a_ts, span);
        let shrink = self.bin_wide(BinOp::Mul, a_ts2, v_s, span);
        let v_ts = self.bin_wide(BinOp::Sub, v_t, shrink, span);
        let v_ts = bind(self, "v_ts", v_ts);
        // Coefficients of x_t and x_0, and the variance.
        let n_t = self.bin_wide(BinOp::Mul, a_ts, v_s, span);
        let c_t = self.bin_wide(BinOp::Div, n_t, v_t, span);
        let n_0 = self.bin_wide(BinOp::Mul, a_s, v_ts, span);
        let c_0 = self.bin_wide(BinOp::Div, n_0, v_t, span);
        let n_v = self.bin_wide(BinOp::Mul, v_ts, v_s, span);
        let var = self.bin_wide(BinOp::Div, n_v, v_t, span);
        let fty = Ty::value(f.elem, Stage::Field(f.shape.clone()));
        let x_t = FieldRef {
            field,
            version: Version::T,
        };
        let x_0 = FieldRef {
            field,
            version: Version::Data,
        };
        let xt = self.push(ExprKind::Field(x_t), fty.clone(), span);
        let x0 = self.push(ExprKind::Field(x_0), fty.clone(), span);
        let mul = |c: &mut Self, l: ExprId, r: ExprId, sp: Span| {
            c.push(
                ExprKind::Binary {
                    op: BinOp::Mul,
                    lhs: l,
                    rhs: r,
                },
                fty.clone(),
                sp,
            )
        };
        let tt = mul(self, c_t, xt, span);
        let t0 = mul(self, c_0, x0, span);
        let mean = self.typed_op(BinOp::Add, t0, tt, &fty, span);
        let dist = self.push(
            ExprKind::Dist {
                family: Family::Normal,
                params: vec![mean, var],
            },
            Ty::Dist {
                elem: f.elem,
                stage: Stage::Field(f.shape.clone()),
            },
            span,
        );
        let mut given = vec![x_t, x_0];
        given.extend(m.given.iter().filter(|g| **g != x_0));
        Kernel {
            kind: KernelKind::Posterior,
            target: FieldRef {
                field,
                version: Version::S,
            },
            given,
            family: Family::Normal,
            dist,
            bindings,
            affine: None,
            approximate: None,
            derived: true,
            span,
        }
    }

    /// q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0) for a `cat<K>` or `bool` field
    /// with a written one-step kernel and marginal, in discrete time with the data before the
    /// first time: the one-step kernel is written out for each class of x_{t-1}, the marginal
    /// is read at t − 1 (the one-hot data at the data end), and their product is normalised.
    /// Where x_0 cannot reach x_t (a normaliser of 0) the posterior is the one-hot x_t, which a
    /// sampler's mixture weights never select.
    fn derive_discrete(&mut self, field: FieldId) -> bool {
        let time = self.p.time.clone();
        if time.kind != TimeKind::Discrete || time.ascending() {
            return false;
        }
        let (at, prev, data) = (
            FieldRef {
                field,
                version: Version::T,
            },
            FieldRef {
                field,
                version: Version::Back(1),
            },
            FieldRef {
                field,
                version: Version::Data,
            },
        );
        let find = |c: &Self, kind: KernelKind, given: FieldRef| {
            c.p.forwards
                .iter()
                .find(|k| k.kind == kind && k.target.field == field && k.given == [given])
                .cloned()
        };
        let (Some(step), Some(marg)) = (
            find(self, KernelKind::OneStep, prev),
            find(self, KernelKind::Marginal, data),
        ) else {
            return false;
        };
        if step.family != marg.family {
            return false;
        }
        let first = |c: &Self, k: &Kernel| match &c.p.expr(k.dist).kind {
            ExprKind::Dist { params, .. } => params.first().copied(),
            _ => None,
        };
        let (Some(step_p), Some(marg_p)) = (first(self, &step), first(self, &marg)) else {
            return false;
        };
        let f = self.p.field(field).clone();
        // The one-step kernel is written out once per class: past the enumeration limit the
        // posterior is not derived (a sampler that draws it is E0102).
        if matches!(f.elem, Elem::Cat(k) if k as usize > super::kernels::MAX_COMBOS) {
            return false;
        }
        let span = marg.span;
        let shape = Stage::Field(f.shape.clone());
        let host = Ty::real(Stage::Host);
        // t − 1, and whether it is the data end.
        let t = self.push(ExprKind::Time(TimeRef::T), host.clone(), span);
        let one = self.num(1.0, span);
        let tm1 = self.bin(BinOp::Sub, t, one, span);
        let end = self.num(time.data_at, span);
        let at_end = self.cmp(BinOp::Eq, tm1, end, span);
        let fty = Ty::value(f.elem, shape.clone());
        let x_t = self.push(ExprKind::Field(at), fty.clone(), span);
        let x_0 = self.push(ExprKind::Field(data), fty.clone(), span);
        let marg_prev = self.substitute(marg_p, Subst::Time(tm1), &mut HashMap::new());
        let mut bindings = Vec::new();
        let (family, param) = match f.elem {
            Elem::Cat(k) => {
                let vty = Ty::value(Elem::Vec(k), shape.clone());
                let rty = Ty::real(shape.clone());
                let onehot =
                    |c: &mut Self, x: ExprId| c.typed_call(Builtin::OneHot, vec![x], &vty, span);
                let oh_t = onehot(self, x_t);
                let oh_0 = onehot(self, x_0);
                // q(x_t | x_{t-1} = j) for each class j.
                let mut lik = Vec::with_capacity(k as usize);
                for j in 0..k {
                    let cj = self.push(
                        ExprKind::Number(j as f64),
                        Ty::value(f.elem, Stage::Const),
                        span,
                    );
                    let row = self.substitute(step_p, Subst::Field(prev, cj), &mut HashMap::new());
                    lik.push(self.typed_call(Builtin::Dot, vec![row, oh_t], &rty, span));
                }
                let lik = self.push(ExprKind::List(lik), vty.clone(), span);
                let lik = self.bound("lik", lik, span, &mut bindings);
                let from_0 = self.typed_if(at_end, oh_0, marg_prev, &vty, span);
                let from_0 = self.bound("from_0", from_0, span, &mut bindings);
                let w = self.typed_op(BinOp::Mul, lik, from_0, &vty, span);
                let w = self.bound("w", w, span, &mut bindings);
                let z = self.typed_call(Builtin::VSum, vec![w], &rty, span);
                let zero = self.num(0.0, span);
                let reach = self.push(
                    ExprKind::Binary {
                        op: BinOp::Gt,
                        lhs: z,
                        rhs: zero,
                    },
                    Ty::value(Elem::Bool, shape.clone()),
                    span,
                );
                let q = self.typed_op(BinOp::Div, w, z, &vty, span);
                let p = self.typed_if(reach, q, oh_t, &vty, span);
                (Family::Categorical, p)
            }
            _ => {
                let rty = Ty::real(shape.clone());
                let op = |c: &mut Self, op: BinOp, a: ExprId, b: ExprId| {
                    c.push(ExprKind::Binary { op, lhs: a, rhs: b }, rty.clone(), span)
                };
                let ifx = |c: &mut Self, cond: ExprId, a: ExprId, b: ExprId| {
                    c.push(
                        ExprKind::If {
                            cond,
                            then: a,
                            otherwise: b,
                        },
                        rty.clone(),
                        span,
                    )
                };
                let one = self.num(1.0, span);
                let zero = self.num(0.0, span);
                // P(x_t as it is | x_{t-1} = j) for j = false, true.
                let mut lik = Vec::new();
                for j in [false, true] {
                    let cj =
                        self.push(ExprKind::Bool(j), Ty::value(Elem::Bool, Stage::Const), span);
                    let p = self.substitute(step_p, Subst::Field(prev, cj), &mut HashMap::new());
                    let q = op(self, BinOp::Sub, one, p);
                    let l = ifx(self, x_t, p, q);
                    lik.push(self.bound(
                        if j { "lik_true" } else { "lik_false" },
                        l,
                        span,
                        &mut bindings,
                    ));
                }
                // P(x_{t-1} = true | x_0), the data itself at the data end.
                let data_p = ifx(self, x_0, one, zero);
                let m = ifx(self, at_end, data_p, marg_prev);
                let m = self.bound("from_0", m, span, &mut bindings);
                let num = op(self, BinOp::Mul, lik[1], m);
                let not_m = op(self, BinOp::Sub, one, m);
                let rest = op(self, BinOp::Mul, lik[0], not_m);
                let den = op(self, BinOp::Add, num, rest);
                let reach = self.push(
                    ExprKind::Binary {
                        op: BinOp::Gt,
                        lhs: den,
                        rhs: zero,
                    },
                    Ty::value(Elem::Bool, shape.clone()),
                    span,
                );
                let q = op(self, BinOp::Div, num, den);
                let fallback = ifx(self, x_t, one, zero);
                (Family::Bernoulli, ifx(self, reach, q, fallback))
            }
        };
        let dist = self.push(
            ExprKind::Dist {
                family,
                params: vec![param],
            },
            Ty::Dist {
                elem: f.elem,
                stage: shape,
            },
            span,
        );
        let k = Kernel {
            kind: KernelKind::Posterior,
            target: prev,
            given: vec![at, data],
            family,
            dist,
            bindings,
            affine: None,
            approximate: None,
            derived: true,
            span,
        };
        // Normalised products of the kernels' probabilities (or the one-hot x_t): on the simplex
        // wherever the kernels are, which their own checks ensure; not enumerated again.
        self.p.posteriors.push(k);
        true
    }

    /// q(x_s | x_t, x_0) for a `cat<K>` field whose marginal is a mixture of the data with a
    /// fixed distribution π, q(x_t | x_0) = a_t e_{x_0} + (1 − a_t) π (uniform, absorbing, or
    /// DiGress's marginal transitions), with no one-step kernel written: the step from s to t
    /// is then q(x_t | x_s) = r e_{x_s} + (1 − r) π with r = a_t / a_s, and
    ///
    ///   q(x_s = j | x_t, x_0) ∝ (r [x_t = j] + (1 − r) π[x_t]) q(x_s = j | x_0).
    ///
    /// The form is read off the written marginal: a_t = q(0 | x_0 = 0) − q(0 | x_0 = 1) and
    /// (1 − a_t) π = q(· | x_0 = 0) − a_t e_0, and checked at every check point, for every class
    /// of x_0 (within 1e-9, π the same at every time); a marginal of another form is not derived.
    fn derive_mixture(&mut self, field: FieldId) -> bool {
        let Elem::Cat(k) = self.p.field(field).elem else {
            return false;
        };
        let (at, data, target) = (
            FieldRef {
                field,
                version: Version::T,
            },
            FieldRef {
                field,
                version: Version::Data,
            },
            FieldRef {
                field,
                version: Version::S,
            },
        );
        let Some(marg) = self
            .p
            .forwards
            .iter()
            .find(|m| {
                m.kind == KernelKind::Marginal && m.target.field == field && m.given == [data]
            })
            .cloned()
        else {
            return false;
        };
        let ExprKind::Dist {
            family: Family::Categorical,
            params,
        } = self.p.expr(marg.dist).kind.clone()
        else {
            return false;
        };
        let marg_p = params[0];
        if k < 2 || !self.is_mixture(marg_p, data, k as usize) {
            return false;
        }
        let f = self.p.field(field).clone();
        let span = marg.span;
        let shape = Stage::Field(f.shape.clone());
        let (vty, rty, host) = (
            Ty::value(Elem::Vec(k), shape.clone()),
            Ty::real(shape.clone()),
            Ty::real(Stage::Host),
        );
        let hvec = Ty::value(Elem::Vec(k), Stage::Host);
        let mut bindings = Vec::new();
        let class = |c: &mut Self, j: u32| {
            c.push(
                ExprKind::Number(j as f64),
                Ty::value(f.elem, Stage::Const),
                span,
            )
        };
        let onehot =
            |c: &mut Self, x: ExprId, ty: &Ty| c.typed_call(Builtin::OneHot, vec![x], ty, span);
        let b =
            |c: &mut Self, op: BinOp, l: ExprId, r: ExprId, ty: &Ty| c.typed_op(op, l, r, ty, span);
        let dot = |c: &mut Self, l: ExprId, r: ExprId, ty: &Ty| {
            c.typed_call(Builtin::Dot, vec![l, r], ty, span)
        };
        // The marginal at time `when` for x_0 = class 0 and 1: a and (1 − a) π there.
        let parts = |c: &mut Self, when: Option<ExprId>| {
            let (c0, c1) = (class(c, 0), class(c, 1));
            let at_time = |c: &mut Self, cls: ExprId| {
                let e = c.substitute(marg_p, Subst::Field(data, cls), &mut HashMap::new());
                match when {
                    Some(w) => c.substitute(e, Subst::Time(w), &mut HashMap::new()),
                    None => e,
                }
            };
            let (m0, m1) = (at_time(c, c0), at_time(c, c1));
            let e0 = onehot(c, c0, &hvec);
            let d = b(c, BinOp::Sub, m0, m1, &hvec);
            let a = dot(c, d, e0, &host);
            let ae0 = b(c, BinOp::Mul, a, e0, &hvec);
            let rest = b(c, BinOp::Sub, m0, ae0, &hvec);
            (a, rest)
        };
        let s = self.push(ExprKind::Time(TimeRef::S), host.clone(), span);
        let (a_t, rest_t) = parts(self, None);
        let (a_t, rest_t) = (
            self.bound("a_t", a_t, span, &mut bindings),
            self.bound("pi_rest_t", rest_t, span, &mut bindings),
        );
        let (a_s, _) = parts(self, Some(s));
        let end = self.num(self.p.time.data_at, span);
        let at_end = self.cmp(BinOp::Eq, s, end, span);
        let one = self.num(1.0, span);
        let a_s = self.ifx(at_end, one, a_s, span);
        let a_s = self.bound("a_s", a_s, span, &mut bindings);
        let r = b(self, BinOp::Div, a_t, a_s, &host);
        let r = self.bound("r", r, span, &mut bindings);
        // π = (1 − a_t) π / (1 − a_t), read at x_t.
        let x_t = self.push(ExprKind::Field(at), Ty::value(f.elem, shape.clone()), span);
        let x_0 = self.push(
            ExprKind::Field(data),
            Ty::value(f.elem, shape.clone()),
            span,
        );
        let oh_t = onehot(self, x_t, &vty);
        let oh_0 = onehot(self, x_0, &vty);
        let one_a = b(self, BinOp::Sub, one, a_t, &host);
        let pi = b(self, BinOp::Div, rest_t, one_a, &hvec);
        let pi_t = dot(self, pi, oh_t, &rty);
        let one_r = b(self, BinOp::Sub, one, r, &host);
        let jump = b(self, BinOp::Mul, one_r, pi_t, &rty);
        let stay = b(self, BinOp::Mul, r, oh_t, &vty);
        let lik = b(self, BinOp::Add, stay, jump, &vty);
        let lik = self.bound("lik", lik, span, &mut bindings);
        let marg_s = self.substitute(marg_p, Subst::Time(s), &mut HashMap::new());
        let from_0 = self.typed_if(at_end, oh_0, marg_s, &vty, span);
        let from_0 = self.bound("from_0", from_0, span, &mut bindings);
        let w = b(self, BinOp::Mul, lik, from_0, &vty);
        let w = self.bound("w", w, span, &mut bindings);
        let z = self.typed_call(Builtin::VSum, vec![w], &rty, span);
        let zero = self.num(0.0, span);
        let reach = b(
            self,
            BinOp::Gt,
            z,
            zero,
            &Ty::value(Elem::Bool, shape.clone()),
        );
        let q = b(self, BinOp::Div, w, z, &vty);
        let p = self.typed_if(reach, q, oh_t, &vty, span);
        let dist = self.push(
            ExprKind::Dist {
                family: Family::Categorical,
                params: vec![p],
            },
            Ty::Dist {
                elem: f.elem,
                stage: shape,
            },
            span,
        );
        let kernel = Kernel {
            kind: KernelKind::Posterior,
            target,
            given: vec![at, data],
            family: Family::Categorical,
            dist,
            bindings,
            affine: None,
            approximate: None,
            derived: true,
            span,
        };
        // As for `derive_discrete`: normalised, so not enumerated again.
        self.p.posteriors.push(kernel);
        true
    }

    /// Whether `marg` (the probabilities of x_t given x_0 = `data`) is a_t e_{x_0} + (1 − a_t) π
    /// with π the same at every check point, within 1e-9.
    /// q(· | x_0 = `c`) at time `t`: the `k` probabilities of the marginal `marg`.
    fn marginal_probs(
        &self,
        marg: ExprId,
        data: FieldRef,
        k: usize,
        t: f64,
        c: usize,
    ) -> Option<Vec<f64>> {
        let env = super::eval::Env {
            t,
            fields: vec![(data, crate::typed::Value::Real(c as f64))],
            ..Default::default()
        };
        match super::eval::Evaluator::new(&self.p).eval(marg, &env).ok()? {
            crate::typed::Value::Vec(v) if v.len() == k => Some(v),
            _ => None,
        }
    }

    /// a_t and (1 − a_t) π read off a mixture marginal at time `t`: a_t = q(0 | x_0 = 0) −
    /// q(0 | x_0 = 1) and (1 − a_t) π = q(· | x_0 = 0) − a_t e_0.
    pub(super) fn mixture_parts(
        &self,
        marg: ExprId,
        data: FieldRef,
        k: usize,
        t: f64,
    ) -> Option<(f64, Vec<f64>)> {
        let m0 = self.marginal_probs(marg, data, k, t, 0)?;
        let m1 = self.marginal_probs(marg, data, k, t, 1)?;
        let a = m0[0] - m1[0];
        let rest = (0..k)
            .map(|j| m0[j] - if j == 0 { a } else { 0.0 })
            .collect();
        Some((a, rest))
    }

    pub(super) fn is_mixture(&self, marg: ExprId, data: FieldRef, k: usize) -> bool {
        let times = self.p.time.check_points().len();
        let work = k.saturating_mul(k).saturating_mul(times);
        if k > super::kernels::MAX_COMBOS || work > super::compose::MAX_COMPOSE_WORK {
            return false;
        }
        let mut pi0: Option<Vec<f64>> = None;
        for t in self.p.time.check_points() {
            let Some((a, rest)) = self.mixture_parts(marg, data, k, t) else {
                return false;
            };
            for c in 0..k {
                let Some(m) = self.marginal_probs(marg, data, k, t, c) else {
                    return false;
                };
                for j in 0..k {
                    let want = rest[j] + if j == c { a } else { 0.0 };
                    if (m[j] - want).abs() > 1e-9 {
                        return false;
                    }
                }
            }
            if 1.0 - a > 1e-6 {
                let pi: Vec<f64> = rest.iter().map(|x| x / (1.0 - a)).collect();
                match &pi0 {
                    None => pi0 = Some(pi),
                    Some(p0) => {
                        if p0.iter().zip(&pi).any(|(x, y)| (x - y).abs() > 1e-9) {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }
}
