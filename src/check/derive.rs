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

use std::collections::HashMap;

use super::Checker;
use crate::diag::Span;
use crate::syntax::ast::BinOp;
use crate::typed::{
    Elem, ExprId, ExprKind, Family, FieldRef, Kernel, KernelKind, TimeRef, Version,
};
use crate::types::{Stage, Ty};

impl Checker<'_> {
    /// A sampler draws `posterior(x_t = …, x_0 = …)` and no written posterior is conditioned
    /// on exactly `given`: derive one when `given` is x_t and x_0 of a real field with an affine
    /// Gaussian marginal, check its parameters on the grid like a written one's, and add it.
    /// False when there is nothing to derive from.
    pub(super) fn derive_posterior(&mut self, given: &[FieldRef]) -> bool {
        let Some(field) = given.first().map(|g| g.field) else {
            return false;
        };
        let want = [
            FieldRef {
                field,
                version: Version::T,
            },
            FieldRef {
                field,
                version: Version::Data,
            },
        ];
        if given.len() != 2 || !want.iter().all(|w| given.contains(w)) {
            return false;
        }
        if self.p.field(field).elem != Elem::Real
            || self.p.posteriors.iter().any(|k| k.target.field == field)
        {
            return false;
        }
        let Some(m) = self
            .p
            .forwards
            .iter()
            .find(|k| k.kind == KernelKind::Marginal && k.affine.is_some() && k.given == [want[1]])
            .cloned()
        else {
            return false;
        };
        let k = self.gaussian_posterior(&m);
        if self.schedules_ok {
            if let Some(d) = self.kernel_domain(&k) {
                self.error(d);
            }
        }
        self.p.posteriors.push(k);
        true
    }

    fn gaussian_posterior(&mut self, m: &Kernel) -> Kernel {
        let a = m.affine.unwrap();
        let span = m.span;
        let field = m.target.field;
        let f = self.p.field(field).clone();
        let host = Ty::real(Stage::Host);
        // a_s and v_s: the marginal's coefficients at s, and (1, 0) at the data end.
        let s = self.push(ExprKind::Time(TimeRef::S), host.clone(), span);
        let end = self.num(self.p.time.data_at, span);
        let at_end = self.cmp(BinOp::Eq, s, end, span);
        let mut memo = HashMap::new();
        let alpha_s = self.subst_time(a.alpha, s, &mut memo);
        let var_s = self.subst_time(a.var, s, &mut memo);
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
        let a_s = self.ifx(at_end, one, alpha_s, span);
        let a_s = bind(self, "a_s", a_s);
        let v_s = self.ifx(at_end, zero, var_s, span);
        let v_s = bind(self, "v_s", v_s);
        let a_t = bind(self, "a_t", a.alpha);
        let v_t = bind(self, "v_t", a.var);
        let a_ts = self.bin(BinOp::Div, a_t, a_s, span);
        let a_ts = bind(self, "a_ts", a_ts);
        let a_ts2 = self.bin(BinOp::Mul, a_ts, a_ts, span);
        let shrink = self.bin(BinOp::Mul, a_ts2, v_s, span);
        let v_ts = self.bin(BinOp::Sub, v_t, shrink, span);
        let v_ts = bind(self, "v_ts", v_ts);
        // Coefficients of x_t and x_0, and the variance.
        let n_t = self.bin(BinOp::Mul, a_ts, v_s, span);
        let c_t = self.bin(BinOp::Div, n_t, v_t, span);
        let n_0 = self.bin(BinOp::Mul, a_s, v_ts, span);
        let c_0 = self.bin(BinOp::Div, n_0, v_t, span);
        let n_v = self.bin(BinOp::Mul, v_ts, v_s, span);
        let var = self.bin(BinOp::Div, n_v, v_t, span);
        let fty = Ty::value(Elem::Real, Stage::Field(f.shape.clone()));
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
        let mean = self.push(
            ExprKind::Binary {
                op: BinOp::Add,
                lhs: t0,
                rhs: tt,
            },
            fty.clone(),
            span,
        );
        let dist = self.push(
            ExprKind::Dist {
                family: Family::Normal,
                params: vec![mean, var],
            },
            Ty::Dist {
                elem: Elem::Real,
                stage: Stage::Field(f.shape.clone()),
            },
            span,
        );
        Kernel {
            kind: KernelKind::Posterior,
            target: FieldRef {
                field,
                version: Version::S,
            },
            given: vec![x_t, x_0],
            family: Family::Normal,
            dist,
            bindings,
            affine: None,
            approximate: None,
            derived: true,
            span,
        }
    }
}
