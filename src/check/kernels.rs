//! Forward kernels, priors, posteriors, networks and losses, and the checks of their
//! parameters' domains at every grid point.

use super::eval::{Env, EvalError, Evaluator};
use super::expr::{Bound, Cx, Place};
use super::schedules::{children, fmt};
use super::{describe, Checker, Global};
use crate::diag::{Code, Diagnostic, Span};
use crate::syntax::ast::{self, BinOp};
use crate::typed::*;

/// At most this many class combinations are enumerated per kernel check.
pub(super) const MAX_COMBOS: usize = 256;
/// At most this many time points are used when enumerating classes.
pub(super) const MAX_ENUM_TIMES: usize = 48;
/// At most about this many numbers are computed when one kernel parameter that depends on
/// classes is enumerated (combinations × times × the classes of its value): a wide
/// `cat<65536>` is checked at fewer combinations and times rather than for minutes.
pub(super) const MAX_ENUM_NUMBERS: usize = 1 << 22;

impl<'a> Checker<'a> {
    fn var_ref(&mut self, v: &ast::Var) -> Option<FieldRef> {
        if self.is_poisoned(&v.name) {
            return None;
        }
        let text = self.source(v.span).to_string();
        match &v.subscript {
            Some((var, off)) => {
                let Some((Global::Field(f), _)) = self.globals.get(&v.name).copied() else {
                    let d = self.unknown(&v.name, v.span, "field");
                    self.error(d);
                    return None;
                };
                if *var != self.p.time.name {
                    let d = Diagnostic::error(
                        Code::UnknownName,
                        v.span,
                        format!("`{var}` is not the time variable `{}`", self.p.time.name),
                    )
                    .with_label("subscript");
                    self.error(d);
                    return None;
                }
                if self.p.time.kind == TimeKind::Continuous {
                    let d = Diagnostic::error(
                        Code::TimeKind,
                        v.span,
                        format!("`{text}` needs discrete time"),
                    )
                    .with_label("one-step subscript")
                    .with_secondary(self.p.time.span, "continuous time declared here")
                    .with_note("in continuous time, write the posterior for `x_s` with s < t");
                    self.error(d);
                    return None;
                }
                let toward = if self.p.time.ascending() { *off } else { -*off };
                if *off == 0 {
                    return Some(FieldRef {
                        field: f,
                        version: Version::T,
                    });
                }
                if toward < 0 {
                    let d = Diagnostic::error(
                        Code::Direction,
                        v.span,
                        format!("`{text}` is one step away from the data"),
                    )
                    .with_label(format!(
                        "the data sits at {} = {}",
                        self.p.time.name,
                        fmt(self.p.time.data_at)
                    ))
                    .with_note("kernels relate x_t to the step nearer the data");
                    self.error(d);
                    return None;
                }
                Some(FieldRef {
                    field: f,
                    version: Version::Back(toward as u32),
                })
            }
            None => match self.field_version(&v.name) {
                Some((f, ver)) => Some(FieldRef {
                    field: f,
                    version: ver,
                }),
                None => {
                    let d = self.unknown(&v.name, v.span, "field");
                    self.error(d);
                    None
                }
            },
        }
    }

    pub(super) fn check_kernel(&mut self, k: &ast::KernelDecl, kind: KernelKind, span: Span) {
        let Some(target) = self.var_ref(&k.target) else {
            return;
        };
        let mut given = Vec::new();
        for g in &k.given {
            let Some(r) = self.var_ref(g) else { return };
            given.push(r);
        }
        let tname = self.version_name(target);
        let mut approximate = None;
        for a in &k.attributes {
            if a.name == "approximate" && kind != KernelKind::Prior {
                approximate = Some(a.span);
            } else {
                let d = Diagnostic::error(
                    Code::UnknownName,
                    a.span,
                    format!("unknown attribute `#[{}]`", a.name),
                )
                .with_label("not an attribute of this declaration")
                .with_note("a posterior or a forward kernel may be marked `#[approximate]`: kept where it differs from Bayes' rule or from the composition of the one-step kernel, with a warning");
                self.error(d);
                return;
            }
        }
        let t = self.p.time.name.clone();
        let fname = self.p.field(target.field).name.clone();
        // Which kernel this is, from its variables.
        let kind = match kind {
            KernelKind::Marginal => {
                if target.version != Version::T {
                    return self.structure(
                        k.target.span,
                        format!(
                            "a forward kernel describes a field at time `{t}`: write `{fname}_{t}`"
                        ),
                    );
                }
                if given.len() == 1
                    && given[0]
                        == (FieldRef {
                            field: target.field,
                            version: Version::Back(1),
                        })
                {
                    KernelKind::OneStep
                } else if !given.is_empty() && given.iter().all(|g| g.version == Version::Data) {
                    KernelKind::Marginal
                } else {
                    let back = self.version_name(FieldRef {
                        field: target.field,
                        version: Version::Back(1),
                    });
                    return self.structure(
                        k.given.first().map_or(span, |g| g.span),
                        format!("a forward kernel is conditioned on the data (`{fname}_0`) or, in discrete time, on the previous step (`{back}`)"),
                    );
                }
            }
            KernelKind::Prior => {
                if target.version != Version::End {
                    return self.structure(
                        k.target.span,
                        format!("a prior describes the field at the noise end: write `{fname}_T`"),
                    );
                }
                KernelKind::Prior
            }
            KernelKind::Posterior => {
                if !matches!(target.version, Version::Back(1) | Version::S) {
                    let back = self.version_name(FieldRef {
                        field: target.field,
                        version: Version::Back(1),
                    });
                    return self.structure(k.target.span, format!("a posterior describes `{back}` (one step) or `{fname}_s` (any earlier time)"));
                }
                let want_t = FieldRef {
                    field: target.field,
                    version: Version::T,
                };
                let want_0 = FieldRef {
                    field: target.field,
                    version: Version::Data,
                };
                // Besides x_t and x_0, the fields a marginal `x_t | x_0, w` is conditioned on.
                let belongs = |g: &FieldRef| {
                    *g == want_t
                        || *g == want_0
                        || (g.field != target.field && g.version == Version::Data)
                };
                if !given.contains(&want_t)
                    || !given.contains(&want_0)
                    || !given.iter().all(belongs)
                    || (1..given.len()).any(|i| given[..i].contains(&given[i]))
                {
                    // Point at the first variable that does not belong, else after the last.
                    let wrong = given.iter().position(|g| !belongs(g));
                    let at = match wrong {
                        Some(i) => k.given[i].span,
                        None => k.given.last().map_or(span, |g| g.span),
                    };
                    return self.structure(
                        at,
                        format!("a posterior is conditioned on `{fname}_{t}` and `{fname}_0`"),
                    );
                }
                KernelKind::Posterior
            }
            KernelKind::OneStep => unreachable!(),
        };
        let duplicate = match kind {
            KernelKind::Prior => self.p.priors.iter().any(|x| x.target.field == target.field),
            KernelKind::Posterior => self
                .p
                .posteriors
                .iter()
                .any(|x| x.target.field == target.field),
            _ => self
                .p
                .forwards
                .iter()
                .any(|x| x.target.field == target.field && x.kind == kind),
        };
        if duplicate {
            let d = Diagnostic::error(
                Code::Duplicate,
                span,
                format!("`{tname}` already has this kind of kernel"),
            )
            .with_label("declared twice");
            self.error(d);
            return;
        }
        let mut cx = Cx::new(Place::Kernel {
            has_s: target.version == Version::S,
        });
        let Some(bindings) = self.where_bindings(&k.bindings, &mut cx) else {
            return;
        };
        let dist = self.expr(&k.dist, &mut cx);
        if self.ty(dist).is_error() {
            return;
        }
        let ExprKind::Dist { family, params } = self.p.expr(dist).kind.clone() else {
            let d = Diagnostic::error(
                Code::Distribution,
                k.dist.span,
                format!("expected a distribution, found {}", describe(self.ty(dist))),
            )
            .with_label("after `~`")
            .with_note("write Normal(mean, var), Categorical(probs), Bernoulli(p) or Delta(value)");
            self.error(d);
            return;
        };
        // Reads must be among the kernel's variables.
        for (r, rspan) in &cx.reads {
            if *r != target && !given.contains(r) {
                let name = self.version_name(*r);
                let d = Diagnostic::error(
                    Code::UnknownName,
                    *rspan,
                    format!("`{name}` is not a variable of this kernel"),
                )
                .with_label("not conditioned on")
                .with_note(format!(
                    "this kernel is conditioned on {}",
                    given
                        .iter()
                        .map(|g| format!("`{}`", self.version_name(*g)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                self.error(d);
                return;
            }
            if *r == target {
                let d = Diagnostic::error(
                    Code::Structure,
                    *rspan,
                    format!("`{tname}` is the variable this kernel describes"),
                )
                .with_label("cannot appear in its own distribution");
                self.error(d);
                return;
            }
        }
        if !self.check_fits(target.field, dist, k.dist.span) {
            return;
        }
        if kind == KernelKind::Prior && given.is_empty() {
            if let Some(at) = self.time_use(dist) {
                let d = Diagnostic::error(Code::Structure, at, "a prior does not depend on time")
                    .with_label("time used here")
                    .with_note(
                        "the prior is the distribution at the noise end; write it with constants",
                    );
                self.error(d);
                return;
            }
        }
        let affine = if kind == KernelKind::Marginal && family == Family::Normal {
            self.affine(params[0], params[1], &given)
        } else {
            None
        };
        let kernel = Kernel {
            kind,
            target,
            given,
            family,
            dist,
            bindings,
            affine,
            approximate,
            derived: false,
            span,
        };
        match kind {
            KernelKind::Prior => self.p.priors.push(kernel),
            KernelKind::Posterior => self.p.posteriors.push(kernel),
            _ => self.p.forwards.push(kernel),
        }
    }

    /// The leftmost place where an expression reads the time (directly, or through a local).
    pub(crate) fn time_use(&self, e: ExprId) -> Option<Span> {
        let mut stack = vec![e];
        let mut best: Option<Span> = None;
        while let Some(e) = stack.pop() {
            let x = self.p.expr(e);
            match &x.kind {
                ExprKind::Time(_) | ExprKind::Step(_) => {
                    if best.is_none_or(|b| x.span.start < b.start) {
                        best = Some(x.span);
                    }
                }
                ExprKind::Local(l) => stack.extend(self.p.locals[l.index()].value),
                k => children(k, &mut stack),
            }
        }
        best
    }

    /// Bind a `where { … }` block in order; a name bound twice is an error (None).
    fn where_bindings(&mut self, bindings: &[ast::Binding], cx: &mut Cx) -> Option<Vec<LocalId>> {
        let mut out: Vec<LocalId> = Vec::new();
        for b in bindings {
            if let Some(first) = out
                .iter()
                .find(|l| self.p.locals[l.index()].name == b.name.name)
            {
                let d = super::duplicate(&b.name, self.p.locals[first.index()].span);
                self.error(d);
                return None;
            }
            // A network call is bound as it is, so that its outputs can be picked by name.
            let v = self.expr(&b.value, cx);
            let l = self.new_local(&b.name, v);
            cx.scopes.push((b.name.name.clone(), Bound::Local(l)));
            out.push(l);
        }
        Some(out)
    }

    fn structure(&mut self, span: Span, message: String) {
        let d = Diagnostic::error(Code::Structure, span, message).with_label("here");
        self.error(d);
    }

    pub(crate) fn new_local(&mut self, name: &ast::Ident, value: ExprId) -> LocalId {
        let ty = self.ty(value).clone();
        let id = LocalId(self.p.locals.len() as u32);
        self.p.locals.push(Local {
            name: name.name.clone(),
            ty,
            value: Some(value),
            span: name.span,
        });
        id
    }

    /// Does a distribution describe this field? Reports and returns false when it does not.
    pub(crate) fn check_fits(&mut self, field: FieldId, dist: ExprId, span: Span) -> bool {
        let f = self.p.field(field).clone();
        let Ty::Dist { elem, stage } = self.ty(dist).clone() else {
            let d = Diagnostic::error(
                Code::Distribution,
                span,
                format!("expected a distribution, found {}", describe(self.ty(dist))),
            )
            .with_label("not a distribution");
            self.error(d);
            return false;
        };
        let family = match &self.p.expr(dist).kind {
            ExprKind::Dist { family, .. } => family.name().to_string(),
            ExprKind::Posterior { .. } => "the posterior".to_string(),
            _ => "this distribution".to_string(),
        };
        let broadcast = matches!((elem, f.elem), (Elem::Real, Elem::Vec(_)));
        if elem != f.elem && !broadcast {
            let hint = match f.elem {
                Elem::Real | Elem::Vec(_) => {
                    "real fields take Normal(mean, var) or Uniform(lo, hi)".to_string()
                }
                Elem::Cat(k) => {
                    format!("cat<{k}> fields take Categorical(probs) with probs a vec<{k}>")
                }
                Elem::Bool => "bool fields take Bernoulli(p)".to_string(),
                Elem::Mat(_) => String::new(),
            };
            let d = Diagnostic::error(
                Code::Distribution,
                span,
                format!(
                    "{family} over {} cannot describe `{}`, a {} field",
                    elem.describe(),
                    f.name,
                    f.elem.describe()
                ),
            )
            .with_label("wrong family for this field")
            .with_secondary(f.span, "field declared here")
            .with_note(hint);
            self.error(d);
            return false;
        }
        if let Stage::Field(s) = &stage {
            if s.dims != f.shape.dims {
                let d = Diagnostic::error(
                    Code::Shape,
                    span,
                    format!(
                        "the distribution has shape {}, but `{}` is {}",
                        self.shape_text(s),
                        f.name,
                        self.shape_text(&f.shape)
                    ),
                )
                .with_label("shape mismatch")
                .with_secondary(f.span, "field declared here");
                self.error(d);
                return false;
            }
            if f.shape.sym && !s.sym {
                // Point at the parameter that breaks the symmetry, when there is one.
                let span = match &self.p.expr(dist).kind {
                    ExprKind::Dist { params, .. } => params
                        .iter()
                        .map(|p| self.p.expr(*p))
                        .find(|p| matches!(p.ty.stage(), Some(Stage::Field(ps)) if !ps.sym))
                        .map_or(span, |p| p.span),
                    _ => span,
                };
                let d = Diagnostic::error(
                    Code::Symmetry,
                    span,
                    format!("`{}` is symmetric, but this distribution is not", f.name),
                )
                .with_label("asymmetric parameters")
                .with_secondary(f.span, "declared `sym` here")
                .with_note(
                    "build edge values symmetrically: from sym fields, pair(a, a), or gram(z)",
                );
                self.error(d);
                return false;
            }
        }
        true
    }

    /// `Normal(a * x_0, v)`: find `a` and `v` when both depend on time only.
    pub(super) fn affine(
        &mut self,
        mean: ExprId,
        var: ExprId,
        given: &[FieldRef],
    ) -> Option<Affine> {
        if self.ty(var).stage()?.rank() > 1 || self.ty(var).elem() != Some(Elem::Real) {
            return None;
        }
        let is_data = |c: &Self, e: ExprId| matches!(c.p.expr(e).kind, ExprKind::Field(r) if given.contains(&r) && r.version == Version::Data && c.p.field(r.field).elem == Elem::Real);
        let span = self.p.expr(mean).span;
        let alpha = match self.p.expr(mean).kind.clone() {
            _ if is_data(self, mean) => {
                self.push(ExprKind::Number(1.0), Ty::real(Stage::Const), span)
            }
            ExprKind::Binary {
                op: BinOp::Mul,
                lhs,
                rhs,
            } => {
                if is_data(self, rhs) && self.ty(lhs).stage()?.rank() <= 1 {
                    lhs
                } else if is_data(self, lhs) && self.ty(rhs).stage()?.rank() <= 1 {
                    rhs
                } else {
                    return None;
                }
            }
            // x_0 / a is (1 / a) x_0.
            ExprKind::Binary {
                op: BinOp::Div,
                lhs,
                rhs,
            } if is_data(self, lhs) && self.ty(rhs).stage()?.rank() <= 1 => {
                let one = self.push(ExprKind::Number(1.0), Ty::real(Stage::Const), span);
                let ty = self.ty(rhs).clone();
                self.push(
                    ExprKind::Binary {
                        op: BinOp::Div,
                        lhs: one,
                        rhs,
                    },
                    ty,
                    span,
                )
            }
            _ => return None,
        };
        if self.ty(alpha).elem() != Some(Elem::Real) {
            return None;
        }
        Some(Affine {
            alpha,
            var,
            rates: None,
        })
    }

    /// `Normal(a * x_0, v)` of `field` where `a` or `v` may vary per element (a coefficient that
    /// reads a conditioning field or a `param`, or a `vec<K>` coefficient of a `vec<K>` field):
    /// `a` and `v`, each real or of the field's own `vec<K>` type, of any stage, and neither
    /// reading the field itself. `Checker::affine` is the scalar case, which conversions and
    /// grids also use; this one is what a derived posterior needs.
    pub(super) fn elementwise_affine(
        &mut self,
        mean: ExprId,
        var: ExprId,
        field: FieldId,
    ) -> Option<(ExprId, ExprId)> {
        let elem = self.p.field(field).elem;
        let fits = |c: &Self, e: ExprId| matches!(c.ty(e).elem(), Some(x) if x == Elem::Real || (x == elem && matches!(elem, Elem::Vec(_))));
        if !matches!(elem, Elem::Real | Elem::Vec(_)) || !fits(self, var) {
            return None;
        }
        let is_data = |c: &Self, e: ExprId| matches!(c.p.expr(e).kind, ExprKind::Field(r) if r.field == field && r.version == Version::Data);
        let span = self.p.expr(mean).span;
        let alpha = match self.p.expr(mean).kind.clone() {
            _ if is_data(self, mean) => {
                self.push(ExprKind::Number(1.0), Ty::real(Stage::Const), span)
            }
            ExprKind::Binary {
                op: BinOp::Mul,
                lhs,
                rhs,
            } if is_data(self, rhs) => lhs,
            ExprKind::Binary {
                op: BinOp::Mul,
                lhs,
                rhs,
            } if is_data(self, lhs) => rhs,
            ExprKind::Binary {
                op: BinOp::Div,
                lhs,
                rhs,
            } if is_data(self, lhs) => {
                let one = self.push(ExprKind::Number(1.0), Ty::real(Stage::Const), span);
                let ty = self.ty(rhs).clone();
                self.push(
                    ExprKind::Binary {
                        op: BinOp::Div,
                        lhs: one,
                        rhs,
                    },
                    ty,
                    span,
                )
            }
            _ => return None,
        };
        let own = [Version::Data, Version::T, Version::S, Version::Back(1)];
        let reads_own = |c: &Self, e: ExprId| {
            own.iter()
                .any(|&version| c.reads_field(e, FieldRef { field, version }))
        };
        if !fits(self, alpha) || reads_own(self, alpha) || reads_own(self, var) {
            return None;
        }
        Some((alpha, var))
    }

    pub(super) fn check_network(&mut self, n: &ast::NetworkDecl, span: Span) {
        let Some((Global::Network(id), _)) = self.globals.get(&n.name.name).copied() else {
            return;
        };
        let mut inputs = Vec::new();
        let mut ok = true;
        for input in &n.inputs {
            let mut cx = Cx::new(Place::NetInput);
            let e = self.value(input, &mut cx);
            if self.ty(e).is_error() {
                ok = false;
                continue;
            }
            let mut fields: Vec<FieldId> = cx.reads.iter().map(|(r, _)| r.field).collect();
            fields.dedup();
            match fields.as_slice() {
                [] => {
                    if self.ty(e).elem() != Some(Elem::Real) {
                        let d = Diagnostic::error(
                            Code::Network,
                            input.span,
                            "a time input must be a real function of time",
                        )
                        .with_label(describe(self.ty(e)));
                        self.error(d);
                        ok = false;
                    }
                    inputs.push(NetInput::Time { expr: e });
                }
                [f] => inputs.push(NetInput::Field { field: *f, expr: e }),
                _ => {
                    let d = Diagnostic::error(
                        Code::Network,
                        input.span,
                        "each network input reads one field",
                    )
                    .with_label("several fields")
                    .with_note("list the fields as separate inputs");
                    self.error(d);
                    ok = false;
                }
            }
        }
        let mut outputs = Vec::new();
        for o in &n.outputs {
            let Some(kind) = ParamKind::from_name(&o.kind.name) else {
                let d = Diagnostic::error(
                    Code::Parameterisation,
                    o.kind.span,
                    format!("unknown parameterisation `{}`", o.kind.name),
                )
                .with_label("expected eps, x0, score, v, velocity or probs");
                self.error(d);
                ok = false;
                continue;
            };
            let Some((Global::Field(f), _)) = self.globals.get(&o.field.name).copied() else {
                let d = self.unknown(&o.field.name, o.field.span, "field");
                self.error(d);
                ok = false;
                continue;
            };
            let fd = self.p.field(f).clone();
            let ty = match (kind, fd.elem) {
                (ParamKind::Probs, Elem::Cat(k)) => {
                    Ty::value(Elem::Vec(k), Stage::Field(fd.shape.clone()))
                }
                (ParamKind::Probs, Elem::Bool) => Ty::real(Stage::Field(fd.shape.clone())),
                (ParamKind::Probs, _) => {
                    let d = Diagnostic::error(
                        Code::Parameterisation,
                        o.kind.span,
                        format!(
                            "`{}` is a {} field; probs describe cat and bool fields",
                            fd.name,
                            fd.elem.describe()
                        ),
                    )
                    .with_label("wrong parameterisation")
                    .with_note("real fields are predicted as eps, x0, score, v or velocity");
                    self.error(d);
                    ok = false;
                    continue;
                }
                (_, Elem::Real | Elem::Vec(_)) => {
                    Ty::value(fd.elem, Stage::Field(fd.shape.clone()))
                }
                (_, e) => {
                    let d = Diagnostic::error(
                        Code::Parameterisation,
                        o.kind.span,
                        format!(
                            "`{}` is a {} field; {} describes real fields",
                            fd.name,
                            e.describe(),
                            kind.name()
                        ),
                    )
                    .with_label("wrong parameterisation")
                    .with_note(
                        "discrete fields are predicted as class probabilities: probs(field)",
                    );
                    self.error(d);
                    ok = false;
                    continue;
                }
            };
            if kind == ParamKind::Velocity && self.p.time.kind != TimeKind::Continuous {
                let d = Diagnostic::error(
                    Code::Parameterisation,
                    o.kind.span,
                    format!("a velocity of `{}` needs continuous time", fd.name),
                )
                .with_label("velocity is dx_t/dt")
                .with_secondary(self.p.time.span, "discrete time")
                .with_note("declare `time t : [a, b]`, or predict eps, x0, score or v");
                self.error(d);
                ok = false;
                continue;
            }
            if outputs.iter().any(|x: &NetOutput| x.field == f) {
                let d = Diagnostic::error(
                    Code::Duplicate,
                    o.field.span,
                    format!("two outputs for `{}`", fd.name),
                )
                .with_label("again");
                self.error(d);
                ok = false;
                continue;
            }
            let precond = match &o.precond {
                None => None,
                Some(pc) => match self.check_precond(pc, kind, f, &inputs, o.kind.span) {
                    Some(pc) => Some(pc),
                    None => {
                        ok = false;
                        continue;
                    }
                },
            };
            outputs.push(NetOutput {
                kind,
                field: f,
                ty,
                precond,
            });
        }
        if ok {
            let net = &mut self.p.networks[id.index()];
            net.inputs = inputs;
            net.outputs = outputs;
            net.span = span;
        }
    }

    /// `preconditioned(skip, scale)` of an output: two real functions of the call's time, on a
    /// real output of a network that reads the output's field and a time.
    fn check_precond(
        &mut self,
        (skip, scale): &(ast::Expr, ast::Expr),
        kind: ParamKind,
        field: FieldId,
        inputs: &[NetInput],
        kind_span: Span,
    ) -> Option<(ExprId, ExprId)> {
        let name = self.p.field(field).name.clone();
        if kind == ParamKind::Probs {
            let d = Diagnostic::error(
                Code::Parameterisation,
                kind_span,
                "class probabilities cannot be preconditioned",
            )
            .with_label("probs")
            .with_note("preconditioned(skip, scale) makes skip · x + scale · F of a real output");
            self.error(d);
            return None;
        }
        let reads_field = inputs
            .iter()
            .any(|i| matches!(i, NetInput::Field { field: g, .. } if *g == field));
        let reads_time = inputs.iter().any(|i| matches!(i, NetInput::Time { .. }));
        if !reads_field || !reads_time {
            let d = Diagnostic::error(
                Code::Parameterisation,
                kind_span,
                format!("a preconditioned output needs the call's `{name}` and time"),
            )
            .with_label("the network does not read them")
            .with_note("skip · x + scale · F adds the state the network is called at");
            self.error(d);
            return None;
        }
        let mut out = Vec::new();
        for e in [skip, scale] {
            let mut cx = Cx::new(Place::NetInput);
            let id = self.value(e, &mut cx);
            if self.ty(id).is_error() {
                return None;
            }
            let scalar = self.ty(id).elem() == Some(Elem::Real)
                && self.ty(id).stage().is_some_and(|s| s.rank() <= 1);
            if !scalar || !cx.reads.is_empty() {
                let d = Diagnostic::error(
                    Code::Parameterisation,
                    e.span,
                    "a preconditioning coefficient is a real function of time",
                )
                .with_label(describe(self.ty(id)))
                .with_note("write it in the network's time, as EDM's c_skip(t) and c_out(t)");
                self.error(d);
                return None;
            }
            out.push(id);
        }
        Some((out[0], out[1]))
    }

    pub(super) fn check_loss(&mut self, l: &ast::LossDecl, span: Span) {
        let mut cx = Cx::new(Place::Loss);
        let Some(bindings) = self.where_bindings(&l.bindings, &mut cx) else {
            return;
        };
        let v = self.value(&l.value, &mut cx);
        let ty = self.ty(v).clone();
        if ty.is_error() {
            return;
        }
        if !matches!(ty.elem(), Some(Elem::Real)) {
            let d = Diagnostic::error(
                Code::Loss,
                l.value.span,
                format!("a loss is a real number, found {}", describe(&ty)),
            )
            .with_label("not real");
            self.error(d);
            return;
        }
        if let Some(Stage::Field(s)) = ty.stage() {
            let d = Diagnostic::error(
                Code::Loss,
                l.value.span,
                format!("the loss still varies over {}", self.shape_text(s)),
            )
            .with_label("unreduced axes")
            .with_note("reduce every axis to one number per sample: mean(…), sum(…) or norm(…)");
            self.error(d);
            return;
        }
        let mut reads: Vec<FieldRef> = cx.reads.iter().map(|r| r.0).collect();
        reads.sort_by_key(|r| (r.field, format!("{:?}", r.version)));
        reads.dedup();
        let time_dist = match &l.time_dist {
            Some(d) => match self.check_time_dist(&l.name.name, d) {
                Some(td) => Some(td),
                None => return,
            },
            None => None,
        };
        self.p.losses.push(Loss {
            name: l.name.name.clone(),
            value: v,
            bindings,
            reads,
            time_dist,
            span,
        });
    }

    /// Evaluate every kernel's parameters at every grid point (and class combination).
    pub(super) fn check_kernel_domains(&mut self) {
        let kernels: Vec<Kernel> = self
            .p
            .forwards
            .iter()
            .chain(&self.p.priors)
            .chain(&self.p.posteriors)
            .cloned()
            .collect();
        let before = self.errors();
        for k in kernels {
            // A derived posterior is checked only on kernels that are themselves valid: its
            // faults would repeat theirs. A derived categorical or Bernoulli one is a normalised
            // product of their probabilities, on the simplex wherever they are.
            if k.derived && (self.errors() > before || k.family != Family::Normal) {
                continue;
            }
            if let Some(d) = self.kernel_domain(&k) {
                self.error(d);
                continue;
            }
            // A Gaussian marginal whose coefficients vary per element: the same checks on each
            // component where they are known at compile time.
            if k.kind == KernelKind::Marginal && k.family == Family::Normal && k.affine.is_none() {
                let parts = match self.p.expr(k.dist).kind.clone() {
                    ExprKind::Dist { params, .. } => {
                        self.elementwise_affine(params[0], params[1], k.target.field)
                    }
                    _ => None,
                };
                if let Some(d) = parts.and_then(|(a, v)| self.affine_domain(&k, a, v)) {
                    self.error(d);
                }
            }
        }
    }

    pub(super) fn time_pairs(&self, k: &Kernel, limit: Option<usize>) -> Vec<(f64, Option<f64>)> {
        if k.kind == KernelKind::Prior {
            return vec![(f64::NAN, None)];
        }
        let time = &self.p.time;
        let mut pts = time.check_points();
        if let Some(n) = limit {
            if pts.len() > n {
                let m = pts.len();
                pts = (0..n).map(|i| pts[i * (m - 1) / (n - 1)]).collect();
            }
        }
        if k.kind != KernelKind::Posterior {
            return pts.into_iter().map(|t| (t, None)).collect();
        }
        let step = if time.ascending() { 1.0 } else { -1.0 };
        match k.target.version {
            Version::Back(n) => pts
                .into_iter()
                .map(|t| (t, Some(t + step * n as f64)))
                .collect(),
            _ => {
                // x_s: s is the neighbouring check point toward the data (the data end included).
                let all = time.check_points();
                let mut out = Vec::new();
                for t in pts {
                    let i = all.iter().position(|x| *x == t).unwrap_or(0);
                    let s = if time.ascending() {
                        all.get(i + 1).copied().unwrap_or(time.data_at)
                    } else if i == 0 {
                        time.data_at
                    } else {
                        all[i - 1]
                    };
                    if s != t {
                        out.push((t, Some(s)));
                    }
                }
                out
            }
        }
    }

    /// The signal coefficient `alpha` and variance `var` of the affine Gaussian marginal `k` at
    /// every check point: 0 < a ≤ 1 and v > 0 (but for the natural ends), and the noise level
    /// v / a² not falling away from the data. Per component where either is a `vec<K>`;
    /// coefficients known only at run time (read from a conditioning field) are not checked.
    pub(super) fn affine_domain(
        &self,
        k: &Kernel,
        alpha_e: ExprId,
        var_e: ExprId,
    ) -> Option<Diagnostic> {
        let ev = Evaluator::new(&self.p);
        let time = self.p.time.clone();
        let numbers = |v: Value| match v {
            Value::Real(x) => Some(vec![x]),
            Value::Vec(xs) => Some(xs),
            _ => None,
        };
        let mut prev: Option<(f64, Vec<f64>)> = None;
        for t in time.check_points() {
            let env = Env {
                t,
                ..Env::default()
            };
            let (alphas, vars) = match (ev.eval(alpha_e, &env), ev.eval(var_e, &env)) {
                (Ok(x), Ok(y)) => (numbers(x)?, numbers(y)?),
                (Err(EvalError::Runtime), _) | (_, Err(EvalError::Runtime)) => return None,
                (Err(e), _) | (_, Err(e)) => {
                    return Some(self.eval_diag(e, t, None, "forward kernel"))
                }
            };
            let n = alphas.len().max(vars.len());
            let mut levels = Vec::with_capacity(n);
            for j in 0..n {
                let alpha = alphas[if alphas.len() == 1 { 0 } else { j }];
                let var = vars[if vars.len() == 1 { 0 } else { j }];
                let comp = if n > 1 {
                    format!(" in component {j}")
                } else {
                    String::new()
                };
                // The natural ends: the signal coefficient may vanish at the noise end (rectified
                // flow's x_1 = ε) and the variance at the data end (x_0 itself), not both at once.
                let noise_end = t == time.noise_end() && var > 0.0;
                let data_end = t == time.data_at && alpha > 0.0;
                if !((alpha > 0.0 || (alpha == 0.0 && noise_end)) && alpha <= 1.0 + 1e-12) {
                    let span = self.p.expr(alpha_e).span;
                    return Some(
                        Diagnostic::error(Code::Domain, span, format!("the signal coefficient leaves (0, 1] at {} = {}{comp}", time.name, fmt(t)))
                            .with_label(format!("it is {}", fmt(alpha)))
                            .with_note("q(x_t | x_0) = Normal(a x_0, v) needs 0 < a ≤ 1 (for DDPM, a = sqrt(alpha_bar) and alpha_bar in (0, 1]); a = 0 is allowed only at the noise end, where the variance is positive"),
                    );
                }
                if var < 0.0 || (var == 0.0 && !data_end) {
                    let span = self.p.expr(var_e).span;
                    return Some(
                        Diagnostic::error(
                            Code::Domain,
                            span,
                            format!(
                                "the forward variance is not positive at {} = {}{comp}",
                                time.name,
                                fmt(t)
                            ),
                        )
                        .with_label(format!("variance = {}", fmt(var)))
                        .with_note(format!("a variance of 0 is allowed only at the data end, {} = {}, where the signal coefficient is positive", time.name, fmt(time.data_at))),
                    );
                }
                let level = if alpha == 0.0 {
                    f64::INFINITY
                } else {
                    var / (alpha * alpha)
                };
                if let Some((pt, pl)) = prev.as_ref().and_then(|(pt, pl)| Some((*pt, *pl.get(j)?)))
                {
                    // Moving away from the data the noise level must not fall.
                    let away = if time.ascending() {
                        pl - level
                    } else {
                        level - pl
                    };
                    if away < -1e-12 * pl.abs().max(1e-300) {
                        let span = self.p.expr(k.dist).span;
                        let (a1, a2) = if time.ascending() { (t, pt) } else { (pt, t) };
                        return Some(
                            Diagnostic::error(
                                Code::ScheduleHazard,
                                span,
                                format!("the noise level fails to decrease toward the data between {} = {} and {}{comp}", time.name, fmt(a1), fmt(a2)),
                            )
                            .with_label(format!("var / a² goes from {} to {}", fmt(pl), fmt(level)))
                            .with_note(format!("the data sits at {} = {}; noise must grow away from it", time.name, fmt(time.data_at))),
                        );
                    }
                }
                levels.push(level);
            }
            prev = Some((t, levels));
        }
        None
    }

    pub(super) fn kernel_domain(&self, k: &Kernel) -> Option<Diagnostic> {
        let ExprKind::Dist { family, params } = self.p.expr(k.dist).kind.clone() else {
            return None;
        };
        let ev = Evaluator::new(&self.p);
        let time = self.p.time.clone();
        let what = match k.kind {
            KernelKind::Marginal | KernelKind::OneStep => "forward kernel",
            KernelKind::Prior => "prior",
            KernelKind::Posterior => "posterior",
        };
        // Affine Gaussian marginals: the signal coefficient and the noise level.
        if let Some(a) = k.affine {
            if let Some(d) = self.affine_domain(k, a.alpha, a.var) {
                return Some(d);
            }
        }
        // Each parameter: evaluate at every time, for every class combination it depends on.
        let discrete_refs = |e: ExprId| -> Option<Vec<FieldRef>> { self.discrete_reads(e) };
        let marginal = self.p.marginal_of(k.target.field).cloned();
        for (pi, &param) in params.iter().enumerate() {
            let stage_rank = self.ty(param).stage().map_or(0, Stage::rank);
            let refs = if stage_rank <= 1 {
                Some(Vec::new())
            } else {
                discrete_refs(param)
            };
            let Some(refs) = refs else { continue };
            // Combinations and times within the work budget: the numbers one evaluation
            // computes are the classes of the value (K² for a matrix).
            let width = match self.ty(param).elem() {
                Some(Elem::Vec(k)) => k as usize,
                Some(Elem::Mat(k)) => (k as usize).saturating_mul(k as usize),
                _ => 1,
            };
            let evals = (MAX_ENUM_NUMBERS / width.max(1)).max(8);
            let combos = self.combos(&refs, MAX_COMBOS.min(evals / 4).max(2));
            let limit = if refs.is_empty() {
                None
            } else {
                Some((evals / combos.len()).clamp(2, MAX_ENUM_TIMES))
            };
            for (t, s) in self.time_pairs(k, limit) {
                for combo in &combos {
                    let env = Env {
                        t,
                        s,
                        fields: combo.clone(),
                        ..Env::default()
                    };
                    // Bayes' rule conditions on x_t: skip values of x_t that x_0 cannot reach.
                    if k.kind == KernelKind::Posterior {
                        if let Some(m) = &marginal {
                            if self.reach_probability(m, &env) == Some(0.0) {
                                continue;
                            }
                        }
                    }
                    let v = match ev.eval(param, &env) {
                        Ok(v) => v,
                        Err(EvalError::Runtime) => break,
                        Err(e) => return Some(self.eval_diag(e, t, Some(combo), what)),
                    };
                    let span = self.p.expr(param).span;
                    let at = self.at_text(t, s, combo);
                    match (family, pi) {
                        (Family::Normal, 1) => {
                            // A variance of 0 is a posterior's deterministic step, or a forward
                            // marginal's data end (x_t = x_0 there).
                            let zero_ok = k.kind == KernelKind::Posterior
                                || (k.kind == KernelKind::Marginal && t == time.data_at);
                            let bad = match &v {
                                Value::Real(x) => Some(*x),
                                Value::Vec(xs) => xs
                                    .iter()
                                    .cloned()
                                    .find(|x| *x < 0.0 || (*x == 0.0 && !zero_ok)),
                                _ => None,
                            };
                            if let Some(x) = bad {
                                let neg = if zero_ok { x < 0.0 } else { x <= 0.0 };
                                if neg {
                                    let need = if k.kind == KernelKind::Posterior {
                                        "negative"
                                    } else {
                                        "not positive"
                                    };
                                    return Some(
                                        Diagnostic::error(Code::Domain, span, format!("the {what}'s variance is {need} at {at}"))
                                            .with_label(format!("variance = {}", fmt(x)))
                                            .with_note(if k.kind == KernelKind::Posterior {
                                                "a posterior variance must be ≥ 0 (0 makes the step deterministic)"
                                            } else {
                                                "a forward or prior variance must be > 0"
                                            }),
                                    );
                                }
                            }
                        }
                        (Family::Categorical, 0) => {
                            if let Value::Vec(p) = &v {
                                let sum: f64 = p.iter().sum();
                                let neg = p.iter().cloned().fold(f64::INFINITY, f64::min);
                                if neg < -1e-9 || (sum - 1.0).abs() > 1e-6 {
                                    let mut d = Diagnostic::error(Code::Domain, span, format!("the {what}'s class probabilities leave the simplex at {at}"))
                                        .with_label(format!("they sum to {} (smallest {})", fmt(sum), fmt(neg)))
                                        .with_note("probabilities must be ≥ 0 and sum to 1");
                                    if let Some(m) = self.transition_matrix(param) {
                                        d = d.with_note(format!(
                                            "the transition matrix `{}` must be row-stochastic",
                                            self.p.schedule(m).name
                                        ));
                                    }
                                    return Some(d);
                                }
                            }
                        }
                        (Family::Uniform, 1) => {
                            let lo = ev.eval(params[0], &env).ok().and_then(|v| v.as_real());
                            if let (Some(lo), Some(hi)) = (lo, v.as_real()) {
                                if lo >= hi {
                                    return Some(
                                        Diagnostic::error(
                                            Code::Domain,
                                            self.p.expr(k.dist).span,
                                            format!("the {what}'s interval is empty at {at}"),
                                        )
                                        .with_label(format!("[{}, {})", fmt(lo), fmt(hi))),
                                    );
                                }
                            }
                        }
                        (Family::Bernoulli, 0) => {
                            if let Some(p) = v.as_real() {
                                if !(-1e-12..=1.0 + 1e-12).contains(&p) {
                                    return Some(
                                        Diagnostic::error(
                                            Code::Domain,
                                            span,
                                            format!(
                                                "the {what}'s probability leaves [0, 1] at {at}"
                                            ),
                                        )
                                        .with_label(format!("p = {}", fmt(p))),
                                    );
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        None
    }

    /// For `onehot(x) @ Q(t)`, the schedule `Q`.
    fn transition_matrix(&self, e: ExprId) -> Option<ScheduleId> {
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            if let ExprKind::Binary {
                op: BinOp::MatMul,
                rhs,
                ..
            } = self.p.expr(e).kind
            {
                if let ExprKind::Schedule { id, .. } = self.p.expr(rhs).kind {
                    return Some(id);
                }
            }
            if let ExprKind::Local(l) = self.p.expr(e).kind {
                stack.extend(self.p.locals[l.index()].value);
            }
            children(&self.p.expr(e).kind, &mut stack);
        }
        None
    }

    /// q(x_t = c_t | x_0 = c_0) under a discrete marginal, for the classes in `env`.
    fn reach_probability(&self, m: &Kernel, env: &Env) -> Option<f64> {
        let ExprKind::Dist { family, params } = &self.p.expr(m.dist).kind else {
            return None;
        };
        let ev = Evaluator::new(&self.p);
        let xt = env.fields.iter().find(|(r, _)| *r == m.target)?.1.clone();
        let mut e = env.clone();
        e.fields.retain(|(r, _)| *r != m.target);
        let v = ev.eval(params[0], &e).ok()?;
        match (family, v, xt) {
            (Family::Categorical, Value::Vec(p), Value::Real(c)) => p.get(c as usize).copied(),
            (Family::Bernoulli, Value::Real(p), Value::Bool(b)) => {
                Some(if b { p } else { 1.0 - p })
            }
            _ => None,
        }
    }

    /// The cat and bool field versions an expression reads, or None if it reads anything
    /// else that varies per element (a real field, a network, noise).
    fn discrete_reads(&self, e: ExprId) -> Option<Vec<FieldRef>> {
        let mut out = Vec::new();
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            match &self.p.expr(e).kind {
                ExprKind::Field(r) => match self.p.field(r.field).elem {
                    Elem::Cat(_) | Elem::Bool => {
                        if !out.contains(r) {
                            out.push(*r)
                        }
                    }
                    _ => return None,
                },
                ExprKind::State(_)
                | ExprKind::Noise(_)
                | ExprKind::NetCall { .. }
                | ExprKind::Prev(_) => return None,
                ExprKind::Call {
                    func:
                        Builtin::Sum
                        | Builtin::Mean
                        | Builtin::Norm
                        | Builtin::RowSum
                        | Builtin::Pair
                        | Builtin::Gram,
                    ..
                } => return None,
                ExprKind::Local(l) => stack.extend(self.p.locals[l.index()].value),
                k => children(k, &mut stack),
            }
        }
        Some(out)
    }

    /// At most about `max` class combinations of `refs`, spread over all of them.
    fn combos(&self, refs: &[FieldRef], max: usize) -> Vec<Vec<(FieldRef, Value)>> {
        let sizes: Vec<usize> = refs
            .iter()
            .map(|r| match self.p.field(r.field).elem {
                Elem::Cat(k) => k as usize,
                _ => 2,
            })
            .collect();
        let total: usize = sizes.iter().product::<usize>().max(1);
        let stride = total.div_ceil(max).max(1);
        let mut out = Vec::new();
        let mut i = 0;
        while i < total {
            let mut rest = i;
            let mut combo = Vec::new();
            for (r, n) in refs.iter().zip(&sizes) {
                let c = rest % n;
                rest /= n;
                let v = match self.p.field(r.field).elem {
                    Elem::Bool => Value::Bool(c == 1),
                    _ => Value::Real(c as f64),
                };
                combo.push((*r, v));
            }
            out.push(combo);
            // An odd stride visits varied combinations rather than one corner.
            i += if stride > 1 { stride | 1 } else { 1 };
        }
        out
    }

    fn at_text(&self, t: f64, s: Option<f64>, combo: &[(FieldRef, Value)]) -> String {
        // Priors have no time: they are evaluated once, with t = NaN.
        let mut parts = if t.is_nan() {
            vec![]
        } else {
            vec![format!("{} = {}", self.p.time.name, fmt(t))]
        };
        if let Some(s) = s {
            parts.push(format!("s = {}", fmt(s)));
        }
        for (r, v) in combo {
            let v = match v {
                Value::Real(x) => fmt(*x),
                Value::Bool(b) => b.to_string(),
                _ => "?".into(),
            };
            parts.push(format!("{} = {v}", self.version_name(*r)));
        }
        if parts.is_empty() {
            "the noise end".to_string()
        } else {
            parts.join(", ")
        }
    }

    fn eval_diag(
        &self,
        e: EvalError,
        t: f64,
        combo: Option<&Vec<(FieldRef, Value)>>,
        what: &str,
    ) -> Diagnostic {
        let at = self.at_text(t, None, combo.map_or(&[][..], |c| c.as_slice()));
        match e {
            EvalError::Hazard { span, message } => Diagnostic::error(
                Code::ScheduleHazard,
                span,
                format!("the {what} is invalid at {at}: {message}"),
            )
            .with_label(message),
            EvalError::Undefined { span, message } => Diagnostic::error(
                Code::ScheduleHazard,
                span,
                format!("the {what} reads a schedule outside its domain at {at}"),
            )
            .with_label(message),
            EvalError::Runtime => Diagnostic::error(
                Code::Const,
                self.p.span,
                "internal: runtime value in a domain check",
            ),
        }
    }
}
