//! Expressions: name resolution, types, stages and shapes.

use super::eval::{Env, EvalError, Evaluator};
use super::{describe, Checker, Global};
use crate::diag::{Code, Diagnostic, Span};
use crate::syntax::ast::{self, BinOp, UnOp};
use crate::typed::*;

/// Where an expression appears: this decides what names mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Place {
    /// Constants, sizes, defaults: nothing that varies.
    Const,
    /// A schedule body: the time variable and other schedules.
    Schedule,
    /// A forward, prior or posterior declaration; `s` is the posterior's target time when it has one.
    Kernel {
        has_s: bool,
    },
    Loss,
    /// A network input declaration.
    NetInput,
    /// A sampler's parameters, lets and grid.
    SamplerHead,
    Step,
    Init,
    Finalize,
}

impl Place {
    pub fn in_sampler_body(self) -> bool {
        matches!(self, Place::Step | Place::Init | Place::Finalize)
    }
}

#[derive(Clone, Debug)]
pub enum Bound {
    Local(LocalId),
    Expr(ExprId),
}

pub struct Cx {
    pub place: Place,
    pub scopes: Vec<(String, Bound)>,
    /// `prev` and `r` are available (not the first step).
    pub history: bool,
    pub depth: u32,
    /// Step-locals read with `prev`.
    pub prev_used: Vec<LocalId>,
    /// Locals bound in the step body (candidates for `prev`).
    pub step_locals: Vec<LocalId>,
    /// Field versions read (for losses and network inputs).
    pub reads: Vec<(FieldRef, Span)>,
    /// Index of the sampler's parameters, by name.
    pub sampler_params: Vec<(String, Ty)>,
}

impl Cx {
    pub fn new(place: Place) -> Cx {
        Cx {
            place,
            scopes: Vec::new(),
            history: false,
            depth: 0,
            prev_used: Vec::new(),
            step_locals: Vec::new(),
            reads: Vec::new(),
            sampler_params: Vec::new(),
        }
    }
    fn lookup(&self, name: &str) -> Option<&Bound> {
        self.scopes
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b)
    }
}

pub(crate) fn join_stage(a: &Stage, b: &Stage) -> Result<Stage, (Shape, Shape)> {
    match (a, b) {
        (Stage::Field(x), Stage::Field(y)) => {
            if x.dims != y.dims {
                return Err((x.clone(), y.clone()));
            }
            Ok(Stage::Field(Shape {
                dims: x.dims.clone(),
                sym: x.sym && y.sym,
                mask: x.mask.or(y.mask),
            }))
        }
        (Stage::Field(x), _) | (_, Stage::Field(x)) => Ok(Stage::Field(x.clone())),
        _ => Ok(if a.rank() >= b.rank() {
            a.clone()
        } else {
            b.clone()
        }),
    }
}

impl<'a> Checker<'a> {
    pub(crate) fn push(&mut self, kind: ExprKind, ty: Ty, span: Span) -> ExprId {
        let id = ExprId(self.p.exprs.len() as u32);
        self.p.exprs.push(Expr { kind, ty, span });
        id
    }

    fn err_expr(&mut self, span: Span) -> ExprId {
        self.push(ExprKind::Number(0.0), Ty::Error, span)
    }

    pub(crate) fn ty(&self, id: ExprId) -> &Ty {
        &self.p.expr(id).ty
    }

    pub(crate) fn shape_text(&self, s: &Shape) -> String {
        let dims: Vec<&str> = s
            .dims
            .iter()
            .map(|d| self.p.dims[d.index()].name.as_str())
            .collect();
        format!("[{}]{}", dims.join(", "), if s.sym { " sym" } else { "" })
    }

    /// Evaluate a constant expression, reporting when it is not one.
    pub(crate) fn const_value(&mut self, id: ExprId) -> Option<Value> {
        if self.ty(id).is_error() {
            return None;
        }
        let r = Evaluator::new(&self.p).eval(id, &Env::default());
        match r {
            Ok(v) => Some(v),
            Err(EvalError::Hazard { span, message })
            | Err(EvalError::Undefined { span, message }) => {
                self.error(
                    Diagnostic::error(Code::ScheduleHazard, span, message).with_label("here"),
                );
                None
            }
            Err(EvalError::Runtime) => {
                let span = self.p.expr(id).span;
                self.error(
                    Diagnostic::error(Code::Const, span, "this must be known at compile time")
                        .with_label("depends on a value only known when the process runs"),
                );
                None
            }
        }
    }

    pub(crate) fn const_real(&mut self, id: ExprId) -> Option<f64> {
        match self.const_value(id)? {
            Value::Real(x) => Some(x),
            _ => {
                let span = self.p.expr(id).span;
                let d = Diagnostic::error(Code::Type, span, "expected a number")
                    .with_label(describe(self.ty(id)));
                self.error(d);
                None
            }
        }
    }

    /// Check an expression that must be a value (a network call with one output becomes that output).
    pub(crate) fn value(&mut self, e: &ast::Expr, cx: &mut Cx) -> ExprId {
        let id = self.expr(e, cx);
        self.as_value(id)
    }

    /// A network call bound to a local is read through the local's value.
    fn resolve_call(&self, id: ExprId) -> ExprId {
        match self.p.expr(id).kind {
            ExprKind::Local(l) => self.p.locals[l.index()]
                .value
                .map_or(id, |v| self.resolve_call(v)),
            _ => id,
        }
    }

    pub(crate) fn as_value(&mut self, id: ExprId) -> ExprId {
        // Where the value is used (a local's name, or the call itself).
        let span = self.p.expr(id).span;
        let id = if matches!(self.ty(id), Ty::NetCall(_)) {
            self.resolve_call(id)
        } else {
            id
        };
        match self.ty(id).clone() {
            Ty::NetCall(net) => {
                let n = self.p.network(net);
                if n.outputs.len() == 1 {
                    let out = &n.outputs[0];
                    let (kind, ty) = (out.kind, out.ty.clone());
                    self.push(
                        ExprKind::NetOut {
                            call: id,
                            output: 0,
                            kind,
                        },
                        ty,
                        span,
                    )
                } else {
                    let names: Vec<String> = n
                        .outputs
                        .iter()
                        .map(|o| format!("`.{}`", self.p.field(o.field).name))
                        .collect();
                    let d = Diagnostic::error(
                        Code::Network,
                        span,
                        format!("network `{}` has several outputs", n.name),
                    )
                    .with_label("pick one")
                    .with_note(format!("read an output by its field: {}", names.join(", ")));
                    self.error(d);
                    self.err_expr(span)
                }
            }
            Ty::Dist { .. } => {
                let span = self.p.expr(id).span;
                self.error(
                    Diagnostic::error(Code::Distribution, span, "a distribution is not a value")
                        .with_label("draw from it with `~`")
                        .with_note("write `let z ~ D` or `x ~ D`"),
                );
                self.err_expr(span)
            }
            _ => id,
        }
    }

    pub(crate) fn expr(&mut self, e: &ast::Expr, cx: &mut Cx) -> ExprId {
        use ast::ExprKind as A;
        match &e.kind {
            A::Number { value, .. } => {
                self.push(ExprKind::Number(*value), Ty::real(Stage::Const), e.span)
            }
            A::Bool(b) => self.push(
                ExprKind::Bool(*b),
                Ty::value(Elem::Bool, Stage::Const),
                e.span,
            ),
            A::Name(n) => self.name(n, e.span, cx),
            A::Subscripted { base, var, offset } => {
                self.subscripted(base, var, *offset, e.span, cx)
            }
            A::Unary { op, operand } => {
                let a = self.value(operand, cx);
                let ty = self.ty(a).clone();
                if ty.is_error() {
                    return self.err_expr(e.span);
                }
                let (Some(elem), Some(stage)) = (ty.elem(), ty.stage().cloned()) else {
                    unreachable!()
                };
                let out = match op {
                    UnOp::Neg if elem.is_numeric() || elem == Elem::Bool => {
                        Ty::value(if elem == Elem::Bool { Elem::Real } else { elem }, stage)
                    }
                    UnOp::Not if elem == Elem::Bool => ty.clone(),
                    _ => {
                        let want = if *op == UnOp::Neg {
                            "a number"
                        } else {
                            "a bool"
                        };
                        let d = Diagnostic::error(
                            Code::Type,
                            operand.span,
                            format!("expected {want}, found {}", describe(&ty)),
                        )
                        .with_label("wrong type");
                        self.error(d);
                        return self.err_expr(e.span);
                    }
                };
                self.push(ExprKind::Unary { op: *op, arg: a }, out, e.span)
            }
            A::Binary { op, lhs, rhs } => {
                let l = self.value(lhs, cx);
                let r = self.value(rhs, cx);
                self.binary(*op, l, r, e.span)
            }
            A::If {
                cond,
                then,
                otherwise,
            } => {
                let c = self.value(cond, cx);
                let a = self.value(then, cx);
                let b = self.value(otherwise, cx);
                let (ct, at, bt) = (self.ty(c).clone(), self.ty(a).clone(), self.ty(b).clone());
                if ct.is_error() || at.is_error() || bt.is_error() {
                    return self.err_expr(e.span);
                }
                if ct.elem() != Some(Elem::Bool) {
                    let d = Diagnostic::error(
                        Code::Type,
                        cond.span,
                        format!("a condition must be a bool, found {}", describe(&ct)),
                    )
                    .with_label("not a bool");
                    self.error(d);
                    return self.err_expr(e.span);
                }
                let Some(elem) = unify_elem(at.elem().unwrap(), bt.elem().unwrap()) else {
                    let d = Diagnostic::error(
                        Code::Type,
                        e.span,
                        format!(
                            "the branches differ: {} and {}",
                            describe(&at),
                            describe(&bt)
                        ),
                    )
                    .with_label("branches of different types");
                    self.error(d);
                    return self.err_expr(e.span);
                };
                let stage = self.join3(
                    ct.stage().unwrap(),
                    at.stage().unwrap(),
                    bt.stage().unwrap(),
                    e.span,
                );
                let Some(stage) = stage else {
                    return self.err_expr(e.span);
                };
                self.push(
                    ExprKind::If {
                        cond: c,
                        then: a,
                        otherwise: b,
                    },
                    Ty::value(elem, stage),
                    e.span,
                )
            }
            A::List(items) => {
                let ids: Vec<ExprId> = items.iter().map(|i| self.value(i, cx)).collect();
                self.list(ids, e.span)
            }
            A::Comprehension { body, var, lo, hi } => {
                let mut c = Cx::new(Place::Const);
                c.scopes = cx.scopes.clone();
                c.sampler_params = cx.sampler_params.clone();
                let lo_id = self.value(lo, &mut c);
                let hi_id = self.value(hi, &mut c);
                let env = self.sampler_param_env(cx);
                let ev = Evaluator::new(&self.p);
                let (lo_v, hi_v) = match (ev.real(lo_id, &env), ev.real(hi_id, &env)) {
                    (Ok(a), Ok(b))
                        if a.fract() == 0.0 && b.fract() == 0.0 && b >= a && b - a <= 100_000.0 =>
                    {
                        (a as i64, b as i64)
                    }
                    _ => {
                        self.error(
                            Diagnostic::error(
                                Code::Const,
                                lo.span.to(hi.span),
                                "a comprehension needs a whole-number range known at compile time",
                            )
                            .with_label("range"),
                        );
                        return self.err_expr(e.span);
                    }
                };
                let mut ids = Vec::new();
                for k in lo_v..=hi_v {
                    if self.over_budget(e.span, "this comprehension") {
                        return self.err_expr(e.span);
                    }
                    let kv =
                        self.push(ExprKind::Number(k as f64), Ty::real(Stage::Const), var.span);
                    cx.scopes.push((var.name.clone(), Bound::Expr(kv)));
                    let before = self.diags.len();
                    ids.push(self.value(body, cx));
                    cx.scopes.pop();
                    if self.diags.len() > before {
                        break;
                    }
                }
                self.list(ids, e.span)
            }
            A::Index { base, index } => {
                let b = self.value(base, cx);
                let i = self.value(index, cx);
                let (bt, it) = (self.ty(b).clone(), self.ty(i).clone());
                if bt.is_error() || it.is_error() {
                    return self.err_expr(e.span);
                }
                if it.elem() != Some(Elem::Real) || it.stage().unwrap().rank() > 1 {
                    let d = Diagnostic::error(
                        Code::Type,
                        index.span,
                        format!(
                            "an index is a whole number known per step, found {}",
                            describe(&it)
                        ),
                    )
                    .with_label("index");
                    self.error(d);
                    return self.err_expr(e.span);
                }
                let len = match bt.elem() {
                    Some(Elem::Vec(k)) => k,
                    _ => {
                        let d = Diagnostic::error(
                            Code::Type,
                            base.span,
                            format!("only a vec<K> can be indexed, found {}", describe(&bt)),
                        )
                        .with_label("not a vector");
                        self.error(d);
                        return self.err_expr(e.span);
                    }
                };
                if it.stage() == Some(&Stage::Const) {
                    let Some(iv) = self.const_real(i) else {
                        return self.err_expr(e.span);
                    };
                    if iv.fract() != 0.0 || iv < 0.0 || iv >= len as f64 {
                        let d = Diagnostic::error(
                            Code::Shape,
                            index.span,
                            format!("index {iv} is outside 0 to {}", len - 1),
                        )
                        .with_label("out of range");
                        self.error(d);
                        return self.err_expr(e.span);
                    }
                }
                let Some(stage) = self.join(bt.stage().unwrap(), it.stage().unwrap(), e.span)
                else {
                    return self.err_expr(e.span);
                };
                self.push(
                    ExprKind::Index { base: b, index: i },
                    Ty::real(stage),
                    e.span,
                )
            }
            A::Member { base, name } => self.member(base, name, e.span, cx),
            A::Call { callee, args } => self.call(callee, args, e.span, cx),
        }
    }

    fn list(&mut self, ids: Vec<ExprId>, span: Span) -> ExprId {
        let k = ids.len() as u32;
        // K rows of vec<K> make a mat<K>.
        if k > 0
            && ids.iter().all(|i| {
                self.ty(*i).elem() == Some(Elem::Vec(k))
                    && self.ty(*i).stage().is_some_and(|s| s.rank() <= 1)
            })
        {
            let mut stage = Stage::Const;
            for &i in &ids {
                stage = join_stage(&stage, self.ty(i).stage().unwrap()).unwrap();
            }
            return self.push(ExprKind::List(ids), Ty::value(Elem::Mat(k), stage), span);
        }
        let mut stage = Stage::Const;
        for &i in &ids {
            let t = self.ty(i).clone();
            if t.is_error() {
                return self.err_expr(span);
            }
            if !matches!(t.elem(), Some(Elem::Real | Elem::Bool))
                || t.stage().is_none_or(|s| s.rank() > 1)
            {
                let ispan = self.p.expr(i).span;
                let d = Diagnostic::error(
                    Code::Type,
                    ispan,
                    format!(
                        "a list holds numbers known per step (or K rows of vec<K>), found {}",
                        describe(&t)
                    ),
                )
                .with_label("not a number");
                self.error(d);
                return self.err_expr(span);
            }
            stage = join_stage(&stage, t.stage().unwrap()).unwrap();
        }
        if ids.is_empty() {
            self.error(
                Diagnostic::error(Code::Type, span, "an empty list")
                    .with_label("needs at least one value"),
            );
            return self.err_expr(span);
        }
        let k = ids.len() as u32;
        self.push(ExprKind::List(ids), Ty::value(Elem::Vec(k), stage), span)
    }

    fn join3(&mut self, a: &Stage, b: &Stage, c: &Stage, span: Span) -> Option<Stage> {
        let ab = self.join(a, b, span)?;
        self.join(&ab, c, span)
    }

    pub(crate) fn join(&mut self, a: &Stage, b: &Stage, span: Span) -> Option<Stage> {
        match join_stage(a, b) {
            Ok(s) => Some(s),
            Err((x, y)) => {
                let d = Diagnostic::error(
                    Code::Shape,
                    span,
                    format!(
                        "shapes {} and {} do not match",
                        self.shape_text(&x),
                        self.shape_text(&y)
                    ),
                )
                .with_label("mismatched shapes")
                .with_note(
                    "element-wise operations need operands of one shape, or a per-step scalar",
                );
                self.error(d);
                None
            }
        }
    }

    pub(crate) fn binary(&mut self, op: BinOp, l: ExprId, r: ExprId, span: Span) -> ExprId {
        let (lt, rt) = (self.ty(l).clone(), self.ty(r).clone());
        if lt.is_error() || rt.is_error() {
            return self.err_expr(span);
        }
        let (le, re) = (lt.elem().unwrap(), rt.elem().unwrap());
        let Some(stage) = self.join(lt.stage().unwrap(), rt.stage().unwrap(), span) else {
            return self.err_expr(span);
        };
        let bad = |c: &mut Self, msg: String| {
            let d = Diagnostic::error(Code::Type, span, msg)
                .with_label(format!("`{}` here", op.symbol()));
            c.error(d);
            c.err_expr(span)
        };
        let num = |e: Elem| if e == Elem::Bool { Elem::Real } else { e };
        let elem = match op {
            BinOp::And | BinOp::Or => {
                if le != Elem::Bool || re != Elem::Bool {
                    return bad(
                        self,
                        format!(
                            "`{}` needs bools, found {} and {}",
                            op.symbol(),
                            describe(&lt),
                            describe(&rt)
                        ),
                    );
                }
                Elem::Bool
            }
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let ok = match (num(le), num(re)) {
                    (Elem::Real, Elem::Real) => true,
                    (Elem::Cat(a), Elem::Cat(b)) => a == b && matches!(op, BinOp::Eq | BinOp::Ne),
                    (Elem::Cat(_), Elem::Real) | (Elem::Real, Elem::Cat(_)) => {
                        matches!(op, BinOp::Eq | BinOp::Ne)
                    }
                    _ => false,
                };
                if !ok {
                    return bad(
                        self,
                        format!("cannot compare {} with {}", describe(&lt), describe(&rt)),
                    );
                }
                Elem::Bool
            }
            BinOp::MatMul => match (le, re) {
                (Elem::Vec(a), Elem::Mat(b)) | (Elem::Mat(a), Elem::Vec(b)) if a == b => {
                    Elem::Vec(a)
                }
                (Elem::Mat(a), Elem::Mat(b)) if a == b => Elem::Mat(a),
                _ => {
                    return bad(
                        self,
                        format!(
                            "`@` multiplies vec<K> and mat<K> of one size, found {} and {}",
                            le.describe(),
                            re.describe()
                        ),
                    )
                }
            },
            _ => {
                if let (Elem::Cat(_), _) | (_, Elem::Cat(_)) = (le, re) {
                    let d = Diagnostic::error(Code::Type, span, "a class index is not a number")
                        .with_label(format!("`{}` on a cat value", op.symbol()))
                        .with_note("use onehot(x) to work with classes as vectors");
                    self.error(d);
                    return self.err_expr(span);
                }
                match (num(le), num(re)) {
                    (Elem::Real, x) | (x, Elem::Real) => x,
                    (Elem::Vec(a), Elem::Vec(b)) if a == b => Elem::Vec(a),
                    (Elem::Mat(a), Elem::Mat(b)) if a == b && op != BinOp::Pow => Elem::Mat(a),
                    _ => {
                        return bad(
                            self,
                            format!(
                                "`{}` on {} and {}",
                                op.symbol(),
                                le.describe(),
                                re.describe()
                            ),
                        );
                    }
                }
            }
        };
        self.push(
            ExprKind::Binary { op, lhs: l, rhs: r },
            Ty::value(elem, stage),
            span,
        )
    }

    /// The field and version a name like `x_t`, `x_0`, `x_T`, `x_s` or `x` refers to.
    pub(crate) fn field_version(&self, name: &str) -> Option<(FieldId, Version)> {
        if let Some((Global::Field(f), _)) = self.globals.get(name) {
            return Some((*f, Version::Data));
        }
        let (base, suffix) = name.rsplit_once('_')?;
        let Some((Global::Field(f), _)) = self.globals.get(base) else {
            return None;
        };
        let v = match suffix {
            "0" => Version::Data,
            "T" => Version::End,
            "s" => Version::S,
            s if s == self.p.time.name => Version::T,
            _ => return None,
        };
        Some((*f, v))
    }

    fn field_ref(&mut self, field: FieldId, version: Version, span: Span, cx: &mut Cx) -> ExprId {
        let f = self.p.field(field).clone();
        let allowed = match cx.place {
            Place::Kernel { has_s } => version != Version::S || has_s,
            Place::Loss => !matches!(version, Version::S | Version::End),
            // Conditioning fields that never diffuse are read as they are.
            Place::NetInput => {
                version == Version::T
                    || (version == Version::Data
                        && !self.p.forwards.iter().any(|k| k.target.field == field))
            }
            _ => false,
        };
        if !allowed {
            let text = self.source(span).to_string();
            let d = match cx.place {
                p if p.in_sampler_body() => Diagnostic::error(
                    Code::UnknownName,
                    span,
                    format!("`{text}` names a field version, not a sampler's state"),
                )
                .with_label("in a sampler, write the field's bare name")
                .with_note(format!("the current value of the field is `{}`", f.name)),
                Place::NetInput => Diagnostic::error(
                    Code::Network,
                    span,
                    format!(
                        "a network reads fields at the call's time: write `{}_{}`",
                        f.name, self.p.time.name
                    ),
                )
                .with_label("not the call's time"),
                Place::Schedule | Place::Const | Place::SamplerHead => Diagnostic::error(
                    Code::Type,
                    span,
                    format!("`{text}` is a random field; this must depend on time only"),
                )
                .with_label("a field here"),
                _ => Diagnostic::error(
                    Code::UnknownName,
                    span,
                    format!("`{text}` is not available here"),
                )
                .with_label(match version {
                    Version::S => "`_s` exists only in a posterior for `x_s`",
                    Version::End => "`_T` exists only in a prior",
                    _ => "not available here",
                }),
            };
            self.error(d);
            return self.err_expr(span);
        }
        let r = FieldRef { field, version };
        cx.reads.push((r, span));
        self.push(
            ExprKind::Field(r),
            Ty::value(f.elem, Stage::Field(f.shape.clone())),
            span,
        )
    }

    fn subscripted(
        &mut self,
        base: &str,
        var: &str,
        offset: i64,
        span: Span,
        cx: &mut Cx,
    ) -> ExprId {
        if self.is_poisoned(base) {
            return self.err_expr(span);
        }
        let Some((Global::Field(f), _)) = self.globals.get(base).copied() else {
            let d = self.unknown(base, span, "field");
            self.error(d);
            return self.err_expr(span);
        };
        if var != self.p.time.name {
            let d = Diagnostic::error(
                Code::UnknownName,
                span,
                format!("`{var}` is not the time variable `{}`", self.p.time.name),
            )
            .with_label("subscript");
            self.error(d);
            return self.err_expr(span);
        }
        if self.p.time.kind == TimeKind::Continuous {
            let d = Diagnostic::error(
                Code::TimeKind,
                span,
                "a one-step subscript needs discrete time",
            )
            .with_label(format!("`{}` is continuous", self.p.time.name))
            .with_note(
                "in continuous time, write a posterior for `x_s` and step between grid points",
            );
            self.error(d);
            return self.err_expr(span);
        }
        let toward_data = if self.p.time.ascending() {
            offset
        } else {
            -offset
        };
        if offset == 0 {
            return self.field_ref(f, Version::T, span, cx);
        }
        if toward_data < 0 {
            let d = Diagnostic::error(Code::Direction, span, "this subscript steps away from the data")
                .with_label(format!("the data sits at t = {}", self.p.time.data_at))
                .with_note("kernels look from x_t toward the data: one step nearer is x_{t-1} (or x_{t+1} when the data sits at the top)");
            self.error(d);
            return self.err_expr(span);
        }
        self.field_ref(f, Version::Back(toward_data as u32), span, cx)
    }

    fn time_ref(&mut self, which: TimeRef, span: Span) -> ExprId {
        self.push(ExprKind::Time(which), Ty::real(Stage::Host), span)
    }

    fn name(&mut self, n: &str, span: Span, cx: &mut Cx) -> ExprId {
        if let Some(b) = cx.lookup(n).cloned() {
            return match b {
                Bound::Local(l) => {
                    let ty = self.p.locals[l.index()].ty.clone();
                    self.push(ExprKind::Local(l), ty, span)
                }
                Bound::Expr(id) => id,
            };
        }
        if let Some(i) = cx.sampler_params.iter().position(|(name, _)| name == n) {
            let ty = cx.sampler_params[i].1.clone();
            let sampler = self.p.samplers.len() as u32;
            return self.push(
                ExprKind::SamplerParam {
                    sampler,
                    index: i as u32,
                },
                ty,
                span,
            );
        }
        if self.is_poisoned(n) {
            return self.err_expr(span);
        }
        if self.is_poisoned(n) {
            return self.err_expr(span);
        }
        // Names that depend on the place.
        let time = self.p.time.name.clone();
        match cx.place {
            Place::Step => match n {
                x if x == time => return self.time_ref(TimeRef::T, span),
                "s" => return self.time_ref(TimeRef::S, span),
                "r" => {
                    if !cx.history {
                        let d = Diagnostic::error(
                            Code::Sampler,
                            span,
                            "`r`, the previous grid time, does not exist at the first step",
                        )
                        .with_label("used where the step may be the first")
                        .with_note(
                            "use it under `if first { … } else { … }`, in the `else` branch",
                        );
                        self.error(d);
                        return self.err_expr(span);
                    }
                    return self.time_ref(TimeRef::R, span);
                }
                "k" => return self.push(ExprKind::Step(StepVar::K), Ty::real(Stage::Host), span),
                "first" => {
                    return self.push(
                        ExprKind::Step(StepVar::First),
                        Ty::value(Elem::Bool, Stage::Host),
                        span,
                    )
                }
                "last" => {
                    return self.push(
                        ExprKind::Step(StepVar::Last),
                        Ty::value(Elem::Bool, Stage::Host),
                        span,
                    )
                }
                _ => {}
            },
            Place::Init | Place::Finalize if n == time => return self.time_ref(TimeRef::T, span),
            Place::Schedule | Place::Kernel { .. } | Place::Loss | Place::NetInput if n == time => {
                return self.time_ref(TimeRef::T, span)
            }
            Place::Kernel { has_s: true } if n == "s" => return self.time_ref(TimeRef::S, span),
            _ => {}
        }
        if cx.place.in_sampler_body() {
            if let Some((Global::Field(f), _)) = self.globals.get(n).copied() {
                let fd = self.p.field(f).clone();
                return self.push(
                    ExprKind::State(f),
                    Ty::value(fd.elem, Stage::Field(fd.shape)),
                    span,
                );
            }
        }
        if cx.place == Place::Loss {
            if let Some(f) = self.noise_field(n) {
                let fd = self.p.field(f).clone();
                return self.push(
                    ExprKind::Noise(f),
                    Ty::value(fd.elem, Stage::Field(fd.shape)),
                    span,
                );
            }
        }
        if let Some((f, v)) = self.field_version(n) {
            return self.field_ref(f, v, span, cx);
        }
        match self.globals.get(n).copied() {
            Some((Global::Const(c), _)) => {
                return self.push(ExprKind::Const(c), Ty::real(Stage::Const), span)
            }
            Some((Global::Param(pid), _)) => {
                let elem = self.p.params[pid.index()].elem;
                let stage = if cx.place == Place::Const {
                    Stage::Const
                } else {
                    Stage::Host
                };
                return self.push(ExprKind::Param(pid), Ty::value(elem, stage), span);
            }
            Some((Global::Time, _)) => {
                let d = Diagnostic::error(
                    Code::TimeKind,
                    span,
                    format!("the time `{n}` is not available here"),
                )
                .with_label(match cx.place {
                    Place::Const => "a constant cannot depend on time",
                    Place::SamplerHead => {
                        "a grid or sampler parameter cannot depend on the step's time"
                    }
                    _ => "no time here",
                });
                self.error(d);
                return self.err_expr(span);
            }
            Some((g, _)) => {
                let what = match g {
                    Global::Dim(_) => "a dimension, not a value",
                    Global::Mask(_) => {
                        "a mask; masks apply themselves to reductions over masked fields"
                    }
                    Global::Schedule(_) => "a schedule: call it at a time, like `f(t)`",
                    Global::Network(_) => "a network: call it, like `net(x, t)`",
                    Global::Loss | Global::Sampler => "a declaration, not a value",
                    Global::Field(_) => "a field, not available here",
                    _ => "not a value",
                };
                let d = Diagnostic::error(Code::Type, span, format!("`{n}` is {what}"))
                    .with_label("used as a value");
                self.error(d);
                return self.err_expr(span);
            }
            None => {}
        }
        if n == "pi" {
            return self.push(
                ExprKind::Number(std::f64::consts::PI),
                Ty::real(Stage::Const),
                span,
            );
        }
        if cx.place == Place::Step && n == "r" {
            unreachable!()
        }
        let d = self.unknown(n, span, "name");
        self.error(d);
        self.err_expr(span)
    }

    /// `eps` (the only Gaussian marginal's noise) or `eps_<field>`.
    fn noise_field(&self, n: &str) -> Option<FieldId> {
        let gaussian: Vec<FieldId> = self
            .p
            .forwards
            .iter()
            .filter(|k| k.kind == KernelKind::Marginal && k.family == Family::Normal)
            .map(|k| k.target.field)
            .collect();
        if n == "eps" && gaussian.len() == 1 && !self.globals.contains_key("eps") {
            return Some(gaussian[0]);
        }
        let f = n.strip_prefix("eps_")?;
        gaussian.into_iter().find(|g| self.p.field(*g).name == f)
    }

    fn member(&mut self, base: &ast::Expr, name: &ast::Ident, span: Span, cx: &mut Cx) -> ExprId {
        let b = self.expr(base, cx);
        let b = if matches!(self.ty(b), Ty::NetCall(_)) {
            self.resolve_call(b)
        } else {
            b
        };
        match self.ty(b).clone() {
            Ty::Error => self.err_expr(span),
            Ty::NetCall(net) => {
                let n = self.p.network(net).clone();
                if let Some(i) = n
                    .outputs
                    .iter()
                    .position(|o| self.p.field(o.field).name == name.name)
                {
                    let o = &n.outputs[i];
                    return self.push(
                        ExprKind::NetOut {
                            call: b,
                            output: i as u32,
                            kind: o.kind,
                        },
                        o.ty.clone(),
                        span,
                    );
                }
                if n.outputs.len() == 1 {
                    let out = self.as_value(b);
                    return self.convert(out, name, span);
                }
                let names: Vec<String> = n
                    .outputs
                    .iter()
                    .map(|o| format!("`{}`", self.p.field(o.field).name))
                    .collect();
                let d = Diagnostic::error(
                    Code::Network,
                    name.span,
                    format!("network `{}` has no output `{}`", n.name, name.name),
                )
                .with_label("unknown output")
                .with_note(format!("its outputs are {}", names.join(", ")));
                self.error(d);
                self.err_expr(span)
            }
            _ => {
                if matches!(self.p.expr(b).kind, ExprKind::NetOut { .. }) {
                    return self.convert(b, name, span);
                }
                if matches!(self.p.expr(b).kind, ExprKind::Local(l) if self.local_is_netout(l)) {
                    return self.convert(b, name, span);
                }
                let d = Diagnostic::error(
                    Code::Parameterisation,
                    name.span,
                    format!("`.{}` applies to network outputs only", name.name),
                )
                .with_label("not a network output")
                .with_secondary(base.span, describe(self.ty(b)));
                self.error(d);
                self.err_expr(span)
            }
        }
    }

    fn local_is_netout(&self, l: LocalId) -> bool {
        match self.p.locals[l.index()].value {
            Some(v) => matches!(self.p.expr(v).kind, ExprKind::NetOut { .. }),
            None => false,
        }
    }

    /// `out.x0` and friends: read a network output under another parameterisation.
    fn convert(&mut self, out: ExprId, name: &ast::Ident, span: Span) -> ExprId {
        let out_expr = match self.p.expr(out).kind {
            ExprKind::Local(l) => self.p.locals[l.index()].value.unwrap(),
            _ => out,
        };
        let ExprKind::NetOut {
            call,
            output,
            kind: native,
        } = self.p.expr(out_expr).kind.clone()
        else {
            return self.err_expr(span);
        };
        let ExprKind::NetCall { net, .. } = self.p.expr(call).kind.clone() else {
            return self.err_expr(span);
        };
        let n = self.p.network(net).clone();
        let o = n.outputs[output as usize].clone();
        let field = self.p.field(o.field).clone();
        let Some(want) = ParamKind::from_name(&name.name) else {
            let d = Diagnostic::error(Code::Parameterisation, name.span, format!("unknown parameterisation `{}`", name.name))
                .with_label("not a parameterisation")
                .with_note("network outputs convert between eps, x0, score, v and velocity (real fields), or give probs (cat and bool fields)");
            self.error(d);
            return self.err_expr(span);
        };
        if want == native {
            return self.push(
                ExprKind::NetOut {
                    call,
                    output,
                    kind: want,
                },
                o.ty.clone(),
                span,
            );
        }
        if native == ParamKind::Probs || want == ParamKind::Probs {
            let d = Diagnostic::error(
                Code::Parameterisation,
                name.span,
                format!(
                    "`{}` predicts {} for {} field `{}`; it has no `{}` form",
                    n.name,
                    native.name(),
                    field.elem.describe(),
                    field.name,
                    want.name()
                ),
            )
            .with_label("wrong parameterisation")
            .with_note(if native == ParamKind::Probs {
                "class probabilities cannot be converted to eps, x0, score, v or velocity"
            } else {
                "a Gaussian prediction has no class probabilities"
            });
            self.error(d);
            return self.err_expr(span);
        }
        // eps/x0/score/v: needs an affine Gaussian marginal, and the call's state and time.
        let Some(k) = self.p.gaussian_marginal_given(o.field).cloned() else {
            let d = Diagnostic::error(
                Code::Parameterisation,
                name.span,
                format!("converting {} to {} needs a forward marginal `Normal(a(t) * {}_0, v(t))`", native.name(), want.name(), field.name),
            )
            .with_label("no affine Gaussian marginal for this field")
            .with_note("declare the marginal in the form Normal(alpha(t) * x_0, var(t)), or use the network's own output");
            self.error(d);
            return self.err_expr(span);
        };
        let state = k.target.field;
        let has_state = n
            .inputs
            .iter()
            .any(|i| matches!(i, NetInput::Field { field, .. } if *field == state));
        let has_time = n.inputs.iter().any(|i| matches!(i, NetInput::Time { .. }));
        if !has_state || !has_time {
            let d = Diagnostic::error(
                Code::Parameterisation,
                name.span,
                format!(
                    "converting {} to {} needs the call's `{}` and time",
                    native.name(),
                    want.name(),
                    self.p.field(state).name
                ),
            )
            .with_label("the network does not read them")
            .with_secondary(n.span, "declared here");
            self.error(d);
            return self.err_expr(span);
        }
        if want == ParamKind::Velocity {
            if let Some(d) = self.velocity_problem(o.field, name.span, &Default::default()) {
                self.error(d);
                return self.err_expr(span);
            }
        }
        self.push(
            ExprKind::NetOut {
                call,
                output,
                kind: want,
            },
            o.ty.clone(),
            span,
        )
    }

    pub(crate) fn sampler_param_env(&self, cx: &Cx) -> Env {
        let n = cx.sampler_params.len().min(self.sampler_values.len());
        Env {
            sampler_params: self.sampler_values[..n].to_vec(),
            ..Env::default()
        }
    }

    fn call(&mut self, callee: &ast::Expr, args: &[ast::Arg], span: Span, cx: &mut Cx) -> ExprId {
        let Some(name) = callee.as_name() else {
            let d = Diagnostic::error(
                Code::Type,
                callee.span,
                "only named functions can be called",
            )
            .with_label("not a function name");
            self.error(d);
            return self.err_expr(span);
        };
        // Named arguments are only meaningful for a few callees.
        let named_ok = matches!(
            name,
            "posterior" | "Normal" | "Uniform" | "Categorical" | "Bernoulli" | "Delta"
        );
        if !named_ok {
            if let Some(a) = args.iter().find(|a| a.name.is_some()) {
                let d = Diagnostic::error(
                    Code::Type,
                    a.name.as_ref().unwrap().span,
                    format!("`{name}` takes no named arguments"),
                )
                .with_label("named argument");
                self.error(d);
                return self.err_expr(span);
            }
        }
        if cx.lookup(name).is_some() {
            let d = Diagnostic::error(
                Code::Type,
                callee.span,
                format!("`{name}` is a value, not a function"),
            )
            .with_label("called here");
            self.error(d);
            return self.err_expr(span);
        }
        if let Some(f) = self.fns.get(name).copied() {
            return self.inline_fn(f, args, span, cx);
        }
        if self.is_poisoned(name) {
            return self.err_expr(span);
        }
        match self.globals.get(name).copied() {
            Some((Global::Schedule(id), _)) => return self.schedule_call(id, args, span, cx),
            Some((Global::Network(id), _)) => return self.network_call(id, args, span, cx),
            _ => {}
        }
        match name {
            "Normal" | "Uniform" | "Categorical" | "Bernoulli" | "Delta" => {
                return self.dist(name, args, span, cx)
            }
            "posterior" => return self.posterior_ref(args, span, cx),
            "prior" => return self.prior_ref(args, span, cx),
            "prev" => return self.prev(args, span, cx),
            _ => {}
        }
        if let Some(b) = Builtin::from_name(name) {
            return self.builtin(b, args, span, cx);
        }
        let d = self.unknown(name, callee.span, "function");
        self.error(d);
        self.err_expr(span)
    }

    /// Whether the process has grown past `limits::MAX_EXPRS` expressions; reported once, at
    /// the first call or comprehension round past the budget (`what` names it).
    fn over_budget(&mut self, span: Span, what: &str) -> bool {
        if self.p.exprs.len() <= crate::limits::MAX_EXPRS {
            return false;
        }
        if !self.over_budget {
            let d = Diagnostic::error(
                Code::Const,
                span,
                format!(
                    "the process expands to more than {} expressions",
                    crate::limits::MAX_EXPRS
                ),
            )
            .with_label(format!("the budget ran out at {what}"))
            .with_note("every call of a function copies its body, and every round of a comprehension its element: a function that calls another twice doubles the size per level");
            self.error(d);
            self.over_budget = true;
        }
        true
    }

    fn inline_fn(
        &mut self,
        f: &'a ast::FnDef,
        args: &[ast::Arg],
        span: Span,
        cx: &mut Cx,
    ) -> ExprId {
        if args.len() != f.params.len() {
            let d = Diagnostic::error(
                Code::Type,
                span,
                format!(
                    "`{}` takes {}, found {}",
                    f.name.name,
                    plural(f.params.len(), "argument"),
                    args.len()
                ),
            )
            .with_label("wrong number of arguments")
            .with_secondary(f.name.span, "defined here");
            self.error(d);
            return self.err_expr(span);
        }
        if self.over_budget(span, &format!("this call of `{}`", f.name.name)) {
            return self.err_expr(span);
        }
        if cx.depth >= 32 {
            let d = Diagnostic::error(Code::Cycle, span, format!("`{}` calls itself", f.name.name))
                .with_label("recursive call")
                .with_note("functions are inlined; recursion has no end");
            self.error(d);
            return self.err_expr(span);
        }
        let vals: Vec<ExprId> = args.iter().map(|a| self.value(&a.value, cx)).collect();
        // Parameters shadow everything; the body sees the caller's place but not its locals.
        let saved = std::mem::take(&mut cx.scopes);
        for (p, v) in f.params.iter().zip(vals) {
            cx.scopes.push((p.name.clone(), Bound::Expr(v)));
        }
        cx.depth += 1;
        let before = self.diags.len();
        let id = self.expr(&f.body, cx);
        cx.depth -= 1;
        cx.scopes = saved;
        if self.diags.len() > before && !self.diags[before..].iter().any(|d| d.code == Code::Cycle)
        {
            let last = self.diags.len() - 1;
            self.diags[last].secondary.push(crate::diag::Label {
                span,
                message: format!("in this call of `{}`", f.name.name),
            });
        }
        id
    }

    fn schedule_call(
        &mut self,
        id: ScheduleId,
        args: &[ast::Arg],
        span: Span,
        cx: &mut Cx,
    ) -> ExprId {
        let sname = self.p.schedule(id).name.clone();
        if args.len() != 1 {
            let d = Diagnostic::error(
                Code::Type,
                span,
                format!("schedule `{sname}` takes one time argument"),
            )
            .with_label(plural(args.len(), "argument"));
            self.error(d);
            return self.err_expr(span);
        }
        if self.p.schedule(id).body == ExprId(u32::MAX) {
            // Schedules are checked in dependency order, so this one is part of a cycle or
            // failed to check: both were reported where they are.
            return self.err_expr(span);
        }
        let at = self.value(&args[0].value, cx);
        let at_ty = self.ty(at).clone();
        if at_ty.is_error() {
            return self.err_expr(span);
        }
        if at_ty.elem() != Some(Elem::Real) || at_ty.stage().unwrap().rank() > 1 {
            let d = Diagnostic::error(
                Code::Type,
                args[0].value.span,
                format!("a schedule is read at a time, found {}", describe(&at_ty)),
            )
            .with_label("not a time");
            self.error(d);
            return self.err_expr(span);
        }
        let elem = self.p.schedule(id).elem;
        let stage = if at_ty.stage() == Some(&Stage::Const) {
            Stage::Const
        } else {
            Stage::Host
        };
        self.push(ExprKind::Schedule { id, at }, Ty::value(elem, stage), span)
    }

    fn network_call(
        &mut self,
        id: NetworkId,
        args: &[ast::Arg],
        span: Span,
        cx: &mut Cx,
    ) -> ExprId {
        let n = self.p.network(id).clone();
        if !matches!(
            cx.place,
            Place::Step | Place::Init | Place::Finalize | Place::Loss
        ) {
            let d = Diagnostic::error(
                Code::Network,
                span,
                format!(
                    "network `{}` can only be called in a loss or a sampler",
                    n.name
                ),
            )
            .with_label("network call here");
            self.error(d);
            return self.err_expr(span);
        }
        if n.inputs.is_empty() && n.outputs.is_empty() {
            // The declaration had errors.
            return self.err_expr(span);
        }
        if args.len() != n.inputs.len() {
            let d = Diagnostic::error(
                Code::Network,
                span,
                format!(
                    "network `{}` takes {} inputs, found {}",
                    n.name,
                    n.inputs.len(),
                    args.len()
                ),
            )
            .with_label("wrong number of inputs")
            .with_secondary(n.span, "declared here");
            self.error(d);
            return self.err_expr(span);
        }
        let mut vals = Vec::new();
        for (a, input) in args.iter().zip(&n.inputs) {
            let v = self.value(&a.value, cx);
            let t = self.ty(v).clone();
            if t.is_error() {
                return self.err_expr(span);
            }
            match input {
                NetInput::Field { field, .. } => {
                    let f = self.p.field(*field).clone();
                    let ok_elem = super::elem_accepts(f.elem, t.elem());
                    // A field input takes the field's values, not a number per step.
                    let ok_shape = match t.stage().unwrap() {
                        Stage::Field(s) => s.dims == f.shape.dims,
                        _ => f.shape.dims.is_empty(),
                    };
                    if !ok_elem || !ok_shape {
                        let d = Diagnostic::error(
                            Code::Network,
                            a.value.span,
                            format!(
                                "input for `{}` must be a {} field {}",
                                f.name,
                                f.elem.describe(),
                                self.shape_text(&f.shape)
                            ),
                        )
                        .with_label(format!("found {}", describe(&t)))
                        .with_secondary(n.span, "declared here");
                        self.error(d);
                        return self.err_expr(span);
                    }
                }
                NetInput::Time { .. } => {
                    if t.elem() != Some(Elem::Real) || t.stage().unwrap().rank() > 1 {
                        let d =
                            Diagnostic::error(Code::Network, a.value.span, "this input is a time")
                                .with_label(format!("found {}", describe(&t)))
                                .with_secondary(n.span, "declared here");
                        self.error(d);
                        return self.err_expr(span);
                    }
                }
            }
            vals.push(v);
        }
        self.push(
            ExprKind::NetCall {
                net: id,
                args: vals,
            },
            Ty::NetCall(id),
            span,
        )
    }

    fn prev(&mut self, args: &[ast::Arg], span: Span, cx: &mut Cx) -> ExprId {
        if cx.place != Place::Step {
            let d = Diagnostic::error(
                Code::Sampler,
                span,
                "`prev` reads the previous step and exists only in a sampler's `step`",
            )
            .with_label("outside a step");
            self.error(d);
            return self.err_expr(span);
        }
        let local = match args {
            [a] => a.value.as_name().and_then(|n| match cx.lookup(n) {
                Some(Bound::Local(l)) if cx.step_locals.contains(l) => Some(*l),
                _ => None,
            }),
            _ => None,
        };
        let Some(l) = local else {
            let d = Diagnostic::error(
                Code::Sampler,
                span,
                "`prev` takes the name of a value bound earlier in this step",
            )
            .with_label("not a step value")
            .with_note("bind the value with `let v = …` in the step, then read `prev(v)`");
            self.error(d);
            return self.err_expr(span);
        };
        if !cx.history {
            let d = Diagnostic::error(Code::Sampler, span, "`prev` has no value at the first step")
                .with_label("used where the step may be the first")
                .with_note("use it under `if first { … } else { … }`, in the `else` branch");
            self.error(d);
            return self.err_expr(span);
        }
        if !cx.prev_used.contains(&l) {
            cx.prev_used.push(l);
        }
        let ty = self.p.locals[l.index()].ty.clone();
        self.push(ExprKind::Prev(l), ty, span)
    }

    fn arity(
        &mut self,
        name: &str,
        args: &[ast::Arg],
        n: std::ops::RangeInclusive<usize>,
        span: Span,
    ) -> bool {
        if n.contains(&args.len()) {
            return true;
        }
        let want = if n.start() == n.end() {
            format!("{}", n.start())
        } else {
            format!("{} to {}", n.start(), n.end())
        };
        let d = Diagnostic::error(
            Code::Type,
            span,
            format!(
                "`{name}` takes {want} argument{}, found {}",
                if want == "1" { "" } else { "s" },
                args.len()
            ),
        )
        .with_label("wrong number of arguments");
        self.error(d);
        false
    }

    fn builtin(&mut self, b: Builtin, args: &[ast::Arg], span: Span, cx: &mut Cx) -> ExprId {
        use Builtin as B;
        let name = b.name();
        let range = match b {
            B::Min
            | B::Max
            | B::LogAddExp
            | B::Dot
            | B::Outer
            | B::Pair
            | B::Linspace
            | B::Geometric => 2..=2,
            B::Clamp => 3..=3,
            B::OneHot | B::Ones => 1..=2,
            _ => 1..=1,
        };
        if !self.arity(name, args, range, span) {
            return self.err_expr(span);
        }
        // Builders of discrete schedules.
        if b.is_discrete_only() {
            if self.p.time.kind == TimeKind::Continuous {
                let d = Diagnostic::error(
                    Code::TimeKind,
                    span,
                    format!(
                        "`{name}` builds a discrete-time schedule, but `{}` is continuous",
                        self.p.time.name
                    ),
                )
                .with_label("discrete-time construct")
                .with_secondary(self.p.time.span, "continuous time declared here")
                .with_note("in continuous time, write the schedule as a formula of t");
                self.error(d);
                return self.err_expr(span);
            }
            if cx.place != Place::Schedule {
                let d = Diagnostic::error(
                    Code::Structure,
                    span,
                    format!("`{name}` builds a schedule; use it in a `schedule` body"),
                )
                .with_label("outside a schedule");
                self.error(d);
                return self.err_expr(span);
            }
        }
        if b == B::Interp {
            return self.interp(&args[0].value, span, cx);
        }
        if b == B::Deriv && self.p.time.kind == TimeKind::Discrete {
            let d = Diagnostic::error(Code::TimeKind, span, "`deriv` needs continuous time")
                .with_label("derivative in discrete time")
                .with_secondary(self.p.time.span, "discrete time declared here");
            self.error(d);
            return self.err_expr(span);
        }
        // Size arguments are constants, not values.
        if matches!(b, B::Eye | B::Ones | B::Zeros) || (b == B::OneHot && args.len() == 2) {
            let sizes: Vec<Option<u32>> = match b {
                B::OneHot => vec![self.const_count(&args[1].value, "a class count", 1)],
                _ => args
                    .iter()
                    .map(|a| self.const_count(&a.value, "a size", 1))
                    .collect(),
            };
            if sizes.iter().any(Option::is_none) {
                return self.err_expr(span);
            }
            let k = sizes[0].unwrap();
            if sizes.len() == 2 && sizes[1] != Some(k) && b == B::Ones {
                let d = Diagnostic::error(Code::Shape, span, "matrices are square: ones(K, K)")
                    .with_label("different sizes");
                self.error(d);
                return self.err_expr(span);
            }
            let elem = match (b, args.len()) {
                (B::Eye, _) | (B::Ones, 2) => Elem::Mat(k),
                _ => Elem::Vec(k),
            };
            if matches!(elem, Elem::Mat(_)) && !self.matrix_fits(k, span) {
                return self.err_expr(span);
            }
            if b == B::OneHot {
                let c = self.value(&args[0].value, cx);
                let ct = self.ty(c).clone();
                if ct.is_error() {
                    return self.err_expr(span);
                }
                if !matches!(ct.elem(), Some(Elem::Real | Elem::Cat(_))) {
                    return self.type_err(
                        args[0].value.span,
                        "onehot(i, K) takes a class index",
                        &ct,
                        span,
                    );
                }
                let stage = ct.stage().unwrap().clone();
                return self.push(
                    ExprKind::Call {
                        func: b,
                        args: vec![c],
                    },
                    Ty::value(elem, stage),
                    span,
                );
            }
            return self.push(
                ExprKind::Call {
                    func: b,
                    args: vec![],
                },
                Ty::value(elem, Stage::Const),
                span,
            );
        }
        let ids: Vec<ExprId> = args.iter().map(|a| self.value(&a.value, cx)).collect();
        let tys: Vec<Ty> = ids.iter().map(|i| self.ty(*i).clone()).collect();
        if tys.iter().any(Ty::is_error) {
            return self.err_expr(span);
        }
        let elems: Vec<Elem> = tys.iter().map(|t| t.elem().unwrap()).collect();
        let mut stage = Stage::Const;
        for t in &tys {
            let Some(s) = self.join(&stage, t.stage().unwrap(), span) else {
                return self.err_expr(span);
            };
            stage = s;
        }
        let num = |e: Elem| if e == Elem::Bool { Elem::Real } else { e };
        let out: Ty = match b {
            B::Sqrt
            | B::Exp
            | B::Log
            | B::Expm1
            | B::Log1p
            | B::Sin
            | B::Cos
            | B::Tanh
            | B::Abs
            | B::Sigmoid
            | B::Softplus
            | B::Floor => {
                let e = num(elems[0]);
                if !e.is_numeric() {
                    return self.type_err(
                        args[0].value.span,
                        &format!("`{name}` takes numbers"),
                        &tys[0],
                        span,
                    );
                }
                Ty::value(e, stage)
            }
            B::Min | B::Max | B::LogAddExp | B::Clamp => {
                let mut e = num(elems[0]);
                for (i, x) in elems.iter().enumerate().skip(1) {
                    match unify_elem(e, num(*x)) {
                        Some(u) if u.is_numeric() => e = u,
                        _ => {
                            return self.type_err(
                                args[i].value.span,
                                &format!("`{name}` takes numbers of one kind"),
                                &tys[i],
                                span,
                            )
                        }
                    }
                }
                if !e.is_numeric() {
                    return self.type_err(
                        args[0].value.span,
                        &format!("`{name}` takes numbers"),
                        &tys[0],
                        span,
                    );
                }
                Ty::value(e, stage)
            }
            B::OneHot => match elems[0] {
                Elem::Cat(k) => Ty::value(Elem::Vec(k), stage),
                _ => {
                    return self.type_err(
                        args[0].value.span,
                        "onehot(x) takes a cat value (or write onehot(i, K))",
                        &tys[0],
                        span,
                    )
                }
            },
            B::Argmax => match elems[0] {
                Elem::Vec(k) => Ty::value(Elem::Cat(k), stage),
                _ => {
                    return self.type_err(
                        args[0].value.span,
                        "argmax takes a vec<K>",
                        &tys[0],
                        span,
                    )
                }
            },
            B::Softmax | B::LogSoftmax => match elems[0] {
                Elem::Vec(k) => Ty::value(Elem::Vec(k), stage),
                _ => {
                    return self.type_err(
                        args[0].value.span,
                        &format!("`{name}` takes a vec<K>"),
                        &tys[0],
                        span,
                    )
                }
            },
            B::LogSumExp | B::VSum => match elems[0] {
                Elem::Vec(_) => Ty::real(stage),
                _ => {
                    return self.type_err(
                        args[0].value.span,
                        &format!("`{name}` takes a vec<K>"),
                        &tys[0],
                        span,
                    )
                }
            },
            B::Dot => match (elems[0], elems[1]) {
                (Elem::Vec(a), Elem::Vec(b2)) if a == b2 => Ty::real(stage),
                _ => {
                    return self.type_err(
                        args[1].value.span,
                        "dot takes two vec<K> of one size",
                        &tys[1],
                        span,
                    )
                }
            },
            B::Outer => match (elems[0], elems[1]) {
                (Elem::Vec(a), Elem::Vec(b2)) if a == b2 => Ty::value(Elem::Mat(a), stage),
                _ => {
                    return self.type_err(
                        args[1].value.span,
                        "outer takes two vec<K> of one size",
                        &tys[1],
                        span,
                    )
                }
            },
            B::Transpose => match elems[0] {
                Elem::Mat(k) => Ty::value(Elem::Mat(k), stage),
                _ => {
                    return self.type_err(
                        args[0].value.span,
                        "transpose takes a mat<K>",
                        &tys[0],
                        span,
                    )
                }
            },
            B::Sum | B::Mean | B::Norm => {
                if !matches!(elems[0], Elem::Real | Elem::Bool) {
                    let note = if matches!(elems[0], Elem::Vec(_)) {
                        "reduce the class axis first with vsum or dot"
                    } else {
                        ""
                    };
                    let d = Diagnostic::error(
                        Code::Type,
                        args[0].value.span,
                        format!("`{name}` reduces real values, found {}", describe(&tys[0])),
                    )
                    .with_label("not real");
                    let d = if note.is_empty() {
                        d
                    } else {
                        d.with_note(note)
                    };
                    self.error(d);
                    return self.err_expr(span);
                }
                if !matches!(stage, Stage::Field(_)) {
                    let d = Diagnostic::error(
                        Code::Shape,
                        args[0].value.span,
                        format!("`{name}` reduces a field's axes, but this has none"),
                    )
                    .with_label(describe(&tys[0]));
                    self.error(d);
                    return self.err_expr(span);
                }
                Ty::real(Stage::Sample)
            }
            B::RowSum => {
                let shape = match &stage {
                    Stage::Field(s) if s.dims.len() == 2 && s.dims[0] == s.dims[1] => s.clone(),
                    _ => {
                        let d = Diagnostic::error(
                            Code::Shape,
                            args[0].value.span,
                            format!(
                                "rowsum takes an edge field [n, n]; found {}",
                                self.describe_ty(&tys[0])
                            ),
                        )
                        .with_label("not an edge field");
                        self.error(d);
                        return self.err_expr(span);
                    }
                };
                if !matches!(elems[0], Elem::Real | Elem::Bool) {
                    return self.type_err(
                        args[0].value.span,
                        "rowsum sums real or bool entries",
                        &tys[0],
                        span,
                    );
                }
                Ty::real(Stage::Field(Shape {
                    dims: vec![shape.dims[0]],
                    sym: false,
                    mask: shape.mask,
                }))
            }
            B::Pair => {
                let (sa, sb) = (tys[0].stage().unwrap(), tys[1].stage().unwrap());
                let dims_ok = matches!((sa, sb), (Stage::Field(a), Stage::Field(b)) if a.dims.len() == 1 && a.dims == b.dims);
                if !dims_ok {
                    let d = Diagnostic::error(
                        Code::Shape,
                        span,
                        "pair takes two node fields of one shape [n]",
                    )
                    .with_label(format!(
                        "found {} and {}",
                        self.describe_ty(&tys[0]),
                        self.describe_ty(&tys[1])
                    ));
                    self.error(d);
                    return self.err_expr(span);
                }
                let e = match unify_elem(num(elems[0]), num(elems[1])) {
                    Some(Elem::Real) => Elem::Real,
                    _ => {
                        return self.type_err(
                            args[1].value.span,
                            "pair takes real or bool node values",
                            &tys[1],
                            span,
                        )
                    }
                };
                let a = sa.shape().unwrap();
                let same = squash(self.source(args[0].value.span))
                    == squash(self.source(args[1].value.span));
                let e = if elems[0] == Elem::Bool && elems[1] == Elem::Bool {
                    Elem::Bool
                } else {
                    e
                };
                Ty::value(
                    e,
                    Stage::Field(Shape {
                        dims: vec![a.dims[0], a.dims[0]],
                        sym: same,
                        mask: a.mask,
                    }),
                )
            }
            B::Gram => match &stage {
                Stage::Field(s) if s.dims.len() == 2 && num(elems[0]) == Elem::Real => {
                    Ty::real(Stage::Field(Shape {
                        dims: vec![s.dims[0], s.dims[0]],
                        sym: true,
                        mask: s.mask,
                    }))
                }
                _ => {
                    return self.type_err(
                        args[0].value.span,
                        "gram takes a real node-vector field [n, d]",
                        &tys[0],
                        span,
                    )
                }
            },
            B::Linspace | B::Geometric => {
                for (i, t) in tys.iter().enumerate() {
                    if t.stage() != Some(&Stage::Const) || num(elems[i]) != Elem::Real {
                        return self.type_err(
                            args[i].value.span,
                            &format!("`{name}` takes constant ends"),
                            t,
                            span,
                        );
                    }
                }
                Ty::real(Stage::Host)
            }
            B::Cumprod | B::Cumsum => {
                if !matches!(num(elems[0]), Elem::Real | Elem::Mat(_)) || stage.rank() > 1 {
                    return self.type_err(
                        args[0].value.span,
                        &format!("`{name}` takes a real or mat<K> schedule"),
                        &tys[0],
                        span,
                    );
                }
                Ty::value(num(elems[0]), Stage::Host)
            }
            B::Deriv => {
                if num(elems[0]) != Elem::Real || stage.rank() > 1 {
                    return self.type_err(
                        args[0].value.span,
                        "deriv takes a real function of time",
                        &tys[0],
                        span,
                    );
                }
                Ty::real(Stage::Host)
            }
            B::Eye | B::Ones | B::Zeros | B::Interp => unreachable!("handled above"),
        };
        self.push(ExprKind::Call { func: b, args: ids }, out, span)
    }

    /// `interp(f(u))`: the discrete schedule `f` read at a time `u` between two of its times,
    /// as the straight line between the values at ⌊u⌋ and ⌊u⌋ + 1 (numpy's `interp` over the
    /// table), and exactly the table's value at a whole time.
    fn interp(&mut self, arg: &ast::Expr, span: Span, cx: &mut Cx) -> ExprId {
        let is_schedule = match &arg.kind {
            ast::ExprKind::Call { callee, .. } => callee
                .as_name()
                .is_some_and(|n| matches!(self.globals.get(n), Some((Global::Schedule(_), _)))),
            _ => false,
        };
        if !is_schedule {
            let d = Diagnostic::error(
                Code::Type,
                arg.span,
                "`interp` reads a schedule between its times",
            )
            .with_label("not a schedule read")
            .with_note("write interp(f(u)) for a schedule f and a time u");
            self.error(d);
            return self.err_expr(span);
        }
        if self.p.time.kind == TimeKind::Continuous {
            let d = Diagnostic::error(
                Code::TimeKind,
                span,
                format!(
                    "`interp` reads a discrete-time schedule between its times, but `{}` is continuous",
                    self.p.time.name
                ),
            )
            .with_label("discrete-time construct")
            .with_secondary(self.p.time.span, "continuous time declared here")
            .with_note("a continuous-time schedule is read at any time: drop `interp`");
            self.error(d);
            return self.err_expr(span);
        }
        let read = self.value(arg, cx);
        let ty = self.ty(read).clone();
        if ty.is_error() {
            return read;
        }
        if !matches!(ty.elem(), Some(Elem::Real | Elem::Vec(_) | Elem::Mat(_))) {
            let d = Diagnostic::error(
                Code::Type,
                arg.span,
                format!(
                    "`interp` draws a line between numbers, found {}",
                    describe(&ty)
                ),
            )
            .with_label("not a real, vec or mat schedule");
            self.error(d);
            return self.err_expr(span);
        }
        if !matches!(self.p.expr(read).kind, ExprKind::Schedule { .. }) {
            let d = Diagnostic::error(
                Code::Type,
                arg.span,
                "`interp` reads a schedule between its times",
            )
            .with_label("not a schedule read");
            self.error(d);
            return self.err_expr(span);
        }
        self.push(
            ExprKind::Call {
                func: Builtin::Interp,
                args: vec![read],
            },
            ty,
            span,
        )
    }

    /// `describe`, with the shape of field values spelled out.
    pub(crate) fn describe_ty(&self, ty: &Ty) -> String {
        match ty {
            Ty::Value {
                elem,
                stage: Stage::Field(s),
            } => format!("a {} field value {}", elem.describe(), self.shape_text(s)),
            _ => describe(ty),
        }
    }

    fn type_err(&mut self, at: Span, msg: &str, found: &Ty, span: Span) -> ExprId {
        let d = Diagnostic::error(
            Code::Type,
            at,
            format!("{msg}; found {}", self.describe_ty(found)),
        )
        .with_label("wrong type");
        self.error(d);
        self.err_expr(span)
    }

    fn dist(&mut self, name: &str, args: &[ast::Arg], span: Span, cx: &mut Cx) -> ExprId {
        let (family, params): (Family, &[&str]) = match name {
            "Normal" => (Family::Normal, &["mean", "var"]),
            "Uniform" => (Family::Uniform, &["lo", "hi"]),
            "Categorical" => (Family::Categorical, &["probs"]),
            "Bernoulli" => (Family::Bernoulli, &["p"]),
            _ => (Family::Delta, &["value"]),
        };
        let logits = family == Family::Categorical
            && args.len() == 1
            && args[0].name.as_ref().is_some_and(|n| n.name == "logits");
        if args.len() != params.len() {
            let d = Diagnostic::error(
                Code::Distribution,
                span,
                format!("`{name}` takes {} ({})", params.len(), params.join(", ")),
            )
            .with_label(plural(args.len(), "argument"));
            self.error(d);
            return self.err_expr(span);
        }
        for (a, want) in args.iter().zip(params) {
            if let Some(n) = &a.name {
                if n.name != *want && !(logits && n.name == "logits") {
                    let d = Diagnostic::error(
                        Code::Distribution,
                        n.span,
                        format!("`{name}` has no parameter `{}`", n.name),
                    )
                    .with_label(format!("expected `{want}`"));
                    self.error(d);
                    return self.err_expr(span);
                }
            }
            if a.kind == ast::ArgKind::Marginal {
                let d = Diagnostic::error(
                    Code::Distribution,
                    a.value.span,
                    "`~` in an argument marginalises a posterior's variable",
                )
                .with_label("not allowed here");
                self.error(d);
                return self.err_expr(span);
            }
        }
        let mut ids: Vec<ExprId> = args.iter().map(|a| self.value(&a.value, cx)).collect();
        let tys: Vec<Ty> = ids.iter().map(|i| self.ty(*i).clone()).collect();
        if tys.iter().any(Ty::is_error) {
            return self.err_expr(span);
        }
        let mut stage = Stage::Const;
        for t in &tys {
            let Some(s) = self.join(&stage, t.stage().unwrap(), span) else {
                return self.err_expr(span);
            };
            stage = s;
        }
        let e0 = tys[0].elem().unwrap();
        let elem = match family {
            Family::Normal => {
                let mean = if e0 == Elem::Bool { Elem::Real } else { e0 };
                if !matches!(mean, Elem::Real | Elem::Vec(_)) {
                    return self.dist_err(
                        args[0].value.span,
                        "a Normal mean is real or vec<K>",
                        &tys[0],
                        span,
                    );
                }
                let var = tys[1].elem().unwrap();
                if !(var == Elem::Real || var == mean) {
                    return self.dist_err(
                        args[1].value.span,
                        "a Normal variance is a real (or one per class)",
                        &tys[1],
                        span,
                    );
                }
                mean
            }
            Family::Categorical => match e0 {
                Elem::Vec(k) => Elem::Cat(k),
                _ => {
                    return self.dist_err(
                        args[0].value.span,
                        "Categorical takes class probabilities, a vec<K>",
                        &tys[0],
                        span,
                    )
                }
            },
            Family::Bernoulli => match e0 {
                Elem::Real | Elem::Bool => Elem::Bool,
                _ => {
                    return self.dist_err(
                        args[0].value.span,
                        "Bernoulli takes a probability",
                        &tys[0],
                        span,
                    )
                }
            },
            Family::Uniform => {
                let lo = if e0 == Elem::Bool { Elem::Real } else { e0 };
                match unify_elem(lo, tys[1].elem().unwrap()) {
                    Some(e @ (Elem::Real | Elem::Vec(_))) => e,
                    _ => {
                        return self.dist_err(
                            args[0].value.span,
                            "Uniform takes real bounds (or one per class)",
                            &tys[0],
                            span,
                        )
                    }
                }
            }
            Family::Delta => e0,
        };
        if logits {
            // Categorical(logits = z) is Categorical(softmax(z)).
            let z = ids[0];
            let zs = self.p.expr(z).span;
            let ty = self.ty(z).clone();
            ids[0] = self.push(
                ExprKind::Call {
                    func: Builtin::Softmax,
                    args: vec![z],
                },
                ty,
                zs,
            );
        }
        self.push(
            ExprKind::Dist {
                family,
                params: ids,
            },
            Ty::Dist { elem, stage },
            span,
        )
    }

    fn dist_err(&mut self, at: Span, msg: &str, found: &Ty, span: Span) -> ExprId {
        let d = Diagnostic::error(
            Code::Distribution,
            at,
            format!("{msg}; found {}", describe(found)),
        )
        .with_label("wrong parameter");
        self.error(d);
        self.err_expr(span)
    }

    /// Where a posterior call names x_t and x_0 of a field whose Gaussian marginal is also
    /// conditioned on other fields, the arguments it leaves out, as a note.
    fn missing_conditions(&self, refs: &[FieldRef]) -> Option<String> {
        let at = refs.iter().find(|r| r.version == Version::T)?;
        let m = self.p.forwards.iter().find(|k| {
            k.kind == KernelKind::Marginal && k.target.field == at.field && k.given.len() > 1
        })?;
        let missing: Vec<String> = m
            .given
            .iter()
            .filter(|g| !refs.contains(g))
            .map(|g| self.version_name(*g))
            .collect();
        if missing.is_empty() {
            return None;
        }
        let all: Vec<String> = m.given.iter().map(|g| self.version_name(*g)).collect();
        Some(format!(
            "the marginal of `{}` is conditioned on {}: pass {} to `posterior(…)` as well (`{} = …`)",
            self.p.field(at.field).name,
            all.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
            missing.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
            missing[0]
        ))
    }

    fn posterior_ref(&mut self, args: &[ast::Arg], span: Span, cx: &mut Cx) -> ExprId {
        if !cx.place.in_sampler_body() {
            let d = Diagnostic::error(Code::Structure, span, "`posterior(…)` is used in samplers")
                .with_label("outside a sampler");
            self.error(d);
            return self.err_expr(span);
        }
        let mut names = Vec::new();
        for a in args {
            let Some(n) = &a.name else {
                let d = Diagnostic::error(
                    Code::Structure,
                    a.value.span,
                    "name what this argument binds: `x_t = …`, `x_0 = …` or `x_0 ~ probs`",
                )
                .with_label("unnamed argument");
                self.error(d);
                return self.err_expr(span);
            };
            names.push(n);
        }
        // Which posterior: the one whose conditioning variables are the argument names.
        let mut refs = Vec::new();
        for n in &names {
            let r = match self.field_version(&n.name) {
                Some((f, v)) => FieldRef {
                    field: f,
                    version: v,
                },
                None => {
                    let d = Diagnostic::error(
                        Code::UnknownName,
                        n.span,
                        format!("`{}` is not a field version", n.name),
                    )
                    .with_label("expected a name like x_t or x_0");
                    self.error(d);
                    return self.err_expr(span);
                }
            };
            refs.push(r);
        }
        let matches =
            |k: &Kernel| k.given.len() == refs.len() && k.given.iter().all(|g| refs.contains(g));
        // Not written: derived by Bayes' rule where the kernels allow it (`check::derive`).
        if !self.p.posteriors.iter().any(matches) {
            self.derive_posterior(&refs);
        }
        if self.p.posteriors.is_empty() {
            let d = Diagnostic::error(Code::Structure, span, "this process declares no posterior")
                .with_label("no posterior to sample")
                .with_note(self.missing_conditions(&refs).unwrap_or_else(|| "declare `posterior x_{t-1} | x_t, x_0 ~ …`: the compiler derives one only for a real or vec<K> field whose marginal is `Normal(a * x_0, v)`, with `a` and `v` scalar or per element and free of the field itself".to_string()));
            self.error(d);
            return self.err_expr(span);
        }
        let index = self.p.posteriors.iter().position(matches);
        let Some(index) = index else {
            let options: Vec<String> = self
                .p
                .posteriors
                .iter()
                .map(|k| {
                    k.given
                        .iter()
                        .map(|g| self.version_name(*g))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .collect();
            let d = Diagnostic::error(
                Code::Structure,
                span,
                "no posterior is conditioned on exactly these variables",
            )
            .with_label("arguments")
            .with_note(format!(
                "declared posteriors are conditioned on: {}",
                options.join("; ")
            ));
            let d = match self.missing_conditions(&refs) {
                Some(note) => d.with_note(note),
                None => d,
            };
            self.error(d);
            return self.err_expr(span);
        };
        let k = self.p.posteriors[index].clone();
        let mut given = Vec::new();
        let mut mixture = None;
        for ((a, r), n) in args.iter().zip(&refs).zip(&names) {
            let f = self.p.field(r.field).clone();
            let v = self.value(&a.value, cx);
            let t = self.ty(v).clone();
            if t.is_error() {
                return self.err_expr(span);
            }
            if a.kind == ast::ArgKind::Marginal {
                let want = match f.elem {
                    Elem::Cat(k) => Elem::Vec(k),
                    Elem::Bool => Elem::Real,
                    _ => {
                        let d = Diagnostic::error(
                            Code::Parameterisation,
                            n.span,
                            format!(
                                "`{} ~ …` mixes over classes, but `{}` is {}",
                                n.name,
                                f.name,
                                f.elem.describe()
                            ),
                        )
                        .with_label("not a discrete field")
                        .with_note("for real fields, pass a value: `x_0 = e.x0`");
                        self.error(d);
                        return self.err_expr(span);
                    }
                };
                let is_probs = match &self.p.expr(v).kind {
                    ExprKind::NetOut { kind, .. } => *kind == ParamKind::Probs,
                    ExprKind::Local(l) => self.local_is_netout(*l),
                    _ => true,
                };
                if t.elem() != Some(want) || !is_probs {
                    let d = Diagnostic::error(
                        Code::Parameterisation,
                        a.value.span,
                        format!(
                            "mixing over `{}` needs class probabilities ({}), found {}",
                            n.name,
                            want.describe(),
                            describe(&t)
                        ),
                    )
                    .with_label("not class probabilities");
                    self.error(d);
                    return self.err_expr(span);
                }
                if mixture.is_some() {
                    let d = Diagnostic::error(
                        Code::Structure,
                        n.span,
                        "only one variable can be mixed over",
                    )
                    .with_label("second `~`");
                    self.error(d);
                    return self.err_expr(span);
                }
                mixture = Some((*r, v));
            } else {
                if !super::elem_accepts(f.elem, t.elem()) {
                    let note = if matches!((f.elem, t.elem()), (Elem::Cat(_), Some(Elem::Vec(_)))) {
                        format!("to mix over class probabilities, write `{} ~ …`", n.name)
                    } else {
                        String::new()
                    };
                    let d = Diagnostic::error(
                        Code::Type,
                        a.value.span,
                        format!(
                            "`{}` is {}, found {}",
                            n.name,
                            f.elem.describe(),
                            describe(&t)
                        ),
                    )
                    .with_label("wrong type");
                    let d = if note.is_empty() {
                        d
                    } else {
                        d.with_note(note)
                    };
                    self.error(d);
                    return self.err_expr(span);
                }
                if let Stage::Field(s) = t.stage().unwrap() {
                    if s.dims != f.shape.dims {
                        let d = Diagnostic::error(
                            Code::Shape,
                            a.value.span,
                            format!(
                                "`{}` has shape {}, found {}",
                                n.name,
                                self.shape_text(&f.shape),
                                self.shape_text(s)
                            ),
                        )
                        .with_label("wrong shape");
                        self.error(d);
                        return self.err_expr(span);
                    }
                }
                given.push((*r, v));
            }
        }
        let tf = self.p.field(k.target.field).clone();
        self.push(
            ExprKind::Posterior {
                index: index as u32,
                given,
                mixture,
            },
            Ty::Dist {
                elem: tf.elem,
                stage: Stage::Field(tf.shape),
            },
            span,
        )
    }

    pub(crate) fn version_name(&self, r: FieldRef) -> String {
        self.p.version_name(r)
    }

    fn prior_ref(&mut self, args: &[ast::Arg], span: Span, cx: &mut Cx) -> ExprId {
        if !cx.place.in_sampler_body() {
            let d = Diagnostic::error(Code::Structure, span, "`prior(…)` is used in samplers")
                .with_label("outside a sampler");
            self.error(d);
            return self.err_expr(span);
        }
        let index = match args {
            [] if self.p.priors.len() == 1 => Some(0),
            [a] => a.value.as_name().and_then(|n| {
                self.p
                    .priors
                    .iter()
                    .position(|k| self.p.field(k.target.field).name == n)
            }),
            _ => None,
        };
        let Some(index) = index else {
            let d = Diagnostic::error(Code::Structure, span, "no such prior")
                .with_label("which prior?")
                .with_note(
                    "write `prior()` when there is one prior, or `prior(x)` to name the field",
                );
            self.error(d);
            return self.err_expr(span);
        };
        let f = self.p.field(self.p.priors[index].target.field).clone();
        self.push(
            ExprKind::Prior {
                index: index as u32,
            },
            Ty::Dist {
                elem: f.elem,
                stage: Stage::Field(f.shape),
            },
            span,
        )
    }
}

pub(crate) fn unify_elem(a: Elem, b: Elem) -> Option<Elem> {
    match (a, b) {
        (x, y) if x == y => Some(x),
        (Elem::Real, Elem::Bool) | (Elem::Bool, Elem::Real) => Some(Elem::Real),
        (Elem::Real, Elem::Vec(k)) | (Elem::Vec(k), Elem::Real) => Some(Elem::Vec(k)),
        _ => None,
    }
}

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// "1 argument", "2 arguments".
pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
