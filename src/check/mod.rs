//! Checking: resolve names, infer types and shapes, evaluate schedules, and turn every
//! mistake into a diagnostic. Produces the typed process of `crate::typed`.

mod bayes;
mod chain;
mod compose;
mod deriv;
mod derive;
pub mod eval;
mod expr;
mod kernels;
mod samplers;
pub(crate) mod schedules;
mod time_dist;

use crate::diag::{Code, Diagnostic, Span};
use crate::syntax::{self, ast};
use crate::typed::*;
use std::collections::HashMap;

pub use crate::typed::Module;
pub use samplers::{net_calls as net_calls_of, stmt_exprs as stmt_exprs_of};
pub use schedules::children as children_of;

/// Parse and check a whole file. Returns the module when there were no errors, and every diagnostic.
pub fn check_source(text: &str) -> (Option<Module>, Vec<Diagnostic>) {
    let file = match syntax::parse(text) {
        Ok(f) => f,
        Err(d) => return (None, vec![d]),
    };
    check_file(&file, text)
}

pub fn check_file(file: &ast::File, text: &str) -> (Option<Module>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut fns: HashMap<String, &ast::FnDef> = HashMap::new();
    for item in &file.items {
        if let ast::Item::Fn(f) = item {
            if let Some(d) = fn_problem(f) {
                diags.push(d);
            } else if let Some(prev) = fns.insert(f.name.name.clone(), f) {
                diags.push(duplicate(&f.name, prev.name.span));
            }
        }
    }
    let mut module = Module::default();
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for item in &file.items {
        if let ast::Item::Process(p) = item {
            if let Some(prev) = seen.insert(&p.name.name, p.name.span) {
                diags.push(duplicate(&p.name, prev));
            }
            let mut c = Checker::new(text, &fns, &mut diags, p);
            c.run(p);
            module.processes.push(c.p);
        }
    }
    if module.processes.is_empty() && diags.is_empty() {
        diags.push(
            Diagnostic::error(
                Code::Structure,
                Span::new(0, 0),
                "the file declares no process",
            )
            .with_note("a spec holds at least one `process name { … }`"),
        );
    }
    let ok = !diags.iter().any(Diagnostic::is_error);
    (ok.then_some(module), diags)
}

/// A function named like a built-in, or with a repeated parameter.
fn fn_problem(f: &ast::FnDef) -> Option<Diagnostic> {
    let n = &f.name.name;
    if n == "pi"
        || Builtin::from_name(n).is_some()
        || is_reserved(n)
        || matches!(n.as_str(), "uniform" | "quadratic" | "logsnr" | "karras")
    {
        return Some(
            Diagnostic::error(
                Code::Duplicate,
                f.name.span,
                format!("`{n}` is a built-in name"),
            )
            .with_label("choose another name for this function"),
        );
    }
    for (i, p) in f.params.iter().enumerate() {
        if let Some(first) = f.params[..i].iter().find(|q| q.name == p.name) {
            return Some(duplicate(p, first.span));
        }
    }
    None
}

pub(crate) fn duplicate(name: &ast::Ident, first: Span) -> Diagnostic {
    Diagnostic::error(
        Code::Duplicate,
        name.span,
        format!("`{}` is defined twice", name.name),
    )
    .with_label("defined again here")
    .with_secondary(first, "first defined here")
}

/// What a process-level name refers to.
#[derive(Clone, Copy, Debug)]
enum Global {
    Const(ConstId),
    Dim(DimId),
    Param(ParamId),
    Mask(MaskId),
    Field(FieldId),
    Time,
    Schedule(ScheduleId),
    Network(NetworkId),
    Loss,
    Sampler,
    /// A declaration with an error: uses of the name are not reported again.
    Poisoned,
}

pub(crate) struct Checker<'a> {
    text: &'a str,
    fns: HashMap<String, &'a ast::FnDef>,
    diags: &'a mut Vec<Diagnostic>,
    pub p: Process,
    globals: HashMap<String, (Global, Span)>,
    /// Schedules whose type is known (checked in dependency order).
    schedule_ast: Vec<&'a ast::ScheduleDecl>,
    /// Number of errors when a phase started, to skip evaluation after type errors.
    has_time: bool,
    /// Default values of the parameters of the sampler being checked.
    sampler_values: Vec<Value>,
    /// Every schedule was tabulated without error.
    schedules_ok: bool,
    /// The expression budget (`limits::MAX_EXPRS`) was exceeded and reported; later errors are
    /// not.
    over_budget: bool,
}

impl<'a> Checker<'a> {
    fn new(
        text: &'a str,
        file_fns: &HashMap<String, &'a ast::FnDef>,
        diags: &'a mut Vec<Diagnostic>,
        proc: &'a ast::Process,
    ) -> Checker<'a> {
        Checker {
            text,
            fns: file_fns.clone(),
            diags,
            p: Process {
                name: proc.name.name.clone(),
                span: proc.name.span,
                consts: Vec::new(),
                dims: Vec::new(),
                params: Vec::new(),
                masks: Vec::new(),
                fields: Vec::new(),
                time: Time {
                    name: "t".into(),
                    kind: TimeKind::Continuous,
                    lo: 0.0,
                    hi: 1.0,
                    data_at: 0.0,
                    span: proc.name.span,
                },
                schedules: Vec::new(),
                forwards: Vec::new(),
                priors: Vec::new(),
                posteriors: Vec::new(),
                networks: Vec::new(),
                losses: Vec::new(),
                samplers: Vec::new(),
                locals: Vec::new(),
                exprs: Vec::new(),
            },
            globals: HashMap::new(),
            schedule_ast: Vec::new(),
            has_time: false,
            over_budget: false,
            sampler_values: Vec::new(),
            schedules_ok: false,
        }
    }

    /// Reports an error. Past the expression budget, only the budget's own error is reported:
    /// every later call returns an error expression, and what fails from it is not the spec's
    /// fault.
    pub(crate) fn error(&mut self, d: Diagnostic) {
        if !self.over_budget {
            self.diags.push(d);
        }
    }

    fn errors(&self) -> usize {
        self.diags.iter().filter(|d| d.is_error()).count()
    }

    fn declare(&mut self, name: &ast::Ident, g: Global) -> bool {
        if let Some((_, first)) = self.globals.get(&name.name) {
            let d = duplicate(name, *first);
            self.error(d);
            return false;
        }
        if name.name == "pi" || Builtin::from_name(&name.name).is_some() || is_reserved(&name.name)
        {
            self.error(
                Diagnostic::error(
                    Code::Duplicate,
                    name.span,
                    format!("`{}` is a built-in name", name.name),
                )
                .with_label("choose another name"),
            );
            return false;
        }
        self.globals.insert(name.name.clone(), (g, name.span));
        true
    }

    fn run(&mut self, proc: &'a ast::Process) {
        // Evaluations (tables, domains, dry runs) only run on a process with no error so far.
        let start = self.errors();
        // Pass 1: names, constants, dimensions, fields and time, in order.
        for d in &proc.decls {
            self.declare_decl(d);
        }
        if !self.has_time {
            if proc
                .decls
                .iter()
                .any(|d| matches!(d.kind, ast::DeclKind::Time(_)))
            {
                // The time declaration had an error, already reported.
                return;
            }
            self.error(
                Diagnostic::error(
                    Code::Structure,
                    proc.name.span,
                    format!("process `{}` declares no time", proc.name.name),
                )
                .with_label("this process")
                .with_note("add `time t : 1..T` (discrete) or `time t : [a, b]` (continuous)"),
            );
            return;
        }
        // Pass 2: schedules in dependency order, then tabulate them.
        self.check_schedules();
        if self.errors() == start {
            self.tabulate_schedules();
            self.schedules_ok = self.errors() == start;
        }
        // Pass 3: kernels, networks, losses, samplers.
        for d in &proc.decls {
            match &d.kind {
                ast::DeclKind::Forward(k) => self.check_kernel(k, KernelKind::Marginal, d.span),
                ast::DeclKind::Prior(k) => self.check_kernel(k, KernelKind::Prior, d.span),
                ast::DeclKind::Posterior(k) => self.check_kernel(k, KernelKind::Posterior, d.span),
                _ => {}
            }
        }
        if self.errors() == start {
            self.derive_marginals();
        }
        if self.errors() == start {
            self.derive_chain_posteriors();
        }
        for d in &proc.decls {
            if let ast::DeclKind::Network(n) = &d.kind {
                self.check_network(n, d.span);
            }
        }
        if self.errors() == start {
            self.check_velocities();
        }
        let kernels_ok = self.errors() == start;
        if kernels_ok {
            self.check_kernel_domains();
            if self.errors() == start {
                self.check_bayes();
                self.check_compositions();
            }
        }
        for d in &proc.decls {
            match &d.kind {
                ast::DeclKind::Loss(l) => self.check_loss(l, d.span),
                ast::DeclKind::Sampler(s) => self.check_sampler(s, d.span),
                _ => {}
            }
        }
        if self.errors() == start {
            self.warn_unused();
        }
    }

    /// Schedules that nothing reads and networks that nothing calls are probably mistakes.
    fn warn_unused(&mut self) {
        let mut schedules = vec![false; self.p.schedules.len()];
        let mut networks = vec![false; self.p.networks.len()];
        for e in &self.p.exprs {
            match e.kind {
                ExprKind::Schedule { id, .. } => schedules[id.index()] = true,
                ExprKind::NetCall { net, .. } => networks[net.index()] = true,
                _ => {}
            }
        }
        let mut warnings = Vec::new();
        for (s, used) in self.p.schedules.iter().zip(&schedules) {
            if !used {
                warnings.push(
                    Diagnostic::warning(
                        Code::Unused,
                        s.span,
                        format!("schedule `{}` is never used", s.name),
                    )
                    .with_label("not read by any kernel, loss, sampler or other schedule"),
                );
            }
        }
        for (n, used) in self.p.networks.iter().zip(&networks) {
            if !used {
                warnings.push(
                    Diagnostic::warning(
                        Code::Unused,
                        n.span,
                        format!("network `{}` is never called", n.name),
                    )
                    .with_label("no loss or sampler calls it"),
                );
            }
        }
        self.diags.extend(warnings);
    }

    fn declare_decl(&mut self, d: &'a ast::Decl) {
        use ast::DeclKind as D;
        match &d.kind {
            D::Const { name, value } => {
                let mut cx = expr::Cx::new(expr::Place::Const);
                let id = self.expr(value, &mut cx);
                let Some(v) = self.const_real(id) else {
                    self.poison(name);
                    return;
                };
                let is_int = matches!(self.p.expr(id).kind, ExprKind::Number(_))
                    && v.fract() == 0.0
                    || (v.fract() == 0.0 && self.is_int_expr(id));
                if self.declare(name, Global::Const(ConstId(self.p.consts.len() as u32))) {
                    self.p.consts.push(Const {
                        name: name.name.clone(),
                        value: v,
                        is_int,
                        span: name.span,
                    });
                }
            }
            D::Dim { names } => {
                for n in names {
                    if self.declare(n, Global::Dim(DimId(self.p.dims.len() as u32))) {
                        self.p.dims.push(Dim {
                            name: n.name.clone(),
                            span: n.span,
                        });
                    }
                }
            }
            D::Param { name, ty, default } => {
                let Some(elem) = self.type_expr(ty) else {
                    self.poison(name);
                    return;
                };
                let default = match default {
                    Some(e) => {
                        let mut cx = expr::Cx::new(expr::Place::Const);
                        let id = self.expr(e, &mut cx);
                        let ety = self.p.expr(id).ty.clone();
                        if !ety.is_error() && !elem_accepts(elem, ety.elem()) {
                            self.error(
                                Diagnostic::error(
                                    Code::Type,
                                    e.span,
                                    format!(
                                        "the default is {}, but `{}` is {}",
                                        describe(&ety),
                                        name.name,
                                        elem.describe()
                                    ),
                                )
                                .with_label("wrong type"),
                            );
                            None
                        } else {
                            self.const_value(id)
                        }
                    }
                    None => None,
                };
                if let (Elem::Vec(_), Some(Value::Vec(v))) = (elem, &default) {
                    // Parameters over classes are used as probabilities (class marginals): check them.
                    if v.iter().any(|x| *x < 0.0) || (v.iter().sum::<f64>() - 1.0).abs() > 1e-6 {
                        let sum: f64 = v.iter().sum();
                        self.error(
                            Diagnostic::error(Code::Domain, default_span(d), format!("the default of `{}` is not a probability vector", name.name))
                                .with_label(format!("entries sum to {}, or one is negative", schedules::fmt(sum)))
                                .with_note("class parameters are distributions over classes: entries ≥ 0 that sum to 1"),
                        );
                    }
                }
                if self.declare(name, Global::Param(ParamId(self.p.params.len() as u32))) {
                    self.p.params.push(Param {
                        name: name.name.clone(),
                        elem,
                        default,
                        span: name.span,
                    });
                }
            }
            D::Mask { name, dim } => {
                let Some(dim_id) = self.lookup_dim(dim) else {
                    self.poison(name);
                    return;
                };
                if self.declare(name, Global::Mask(MaskId(self.p.masks.len() as u32))) {
                    self.p.masks.push(Mask {
                        name: name.name.clone(),
                        dim: dim_id,
                        span: name.span,
                    });
                }
            }
            D::Field(f) => self.declare_field(f),
            D::Time(t) => self.declare_time(t, d.span),
            D::Schedule(s) => {
                let id = ScheduleId(self.p.schedules.len() as u32);
                if self.declare(&s.name, Global::Schedule(id)) {
                    self.p.schedules.push(Schedule {
                        name: s.name.name.clone(),
                        body: ExprId(u32::MAX),
                        elem: Elem::Real,
                        interval: None,
                        monotone: s.monotone.map(|m| m.0),
                        table: Vec::new(),
                        span: s.name.span,
                        derived: false,
                    });
                    self.schedule_ast.push(s);
                }
            }
            D::Network(n) => {
                let id = NetworkId(self.p.networks.len() as u32);
                if self.declare(&n.name, Global::Network(id)) {
                    self.p.networks.push(Network {
                        name: n.name.name.clone(),
                        inputs: Vec::new(),
                        outputs: Vec::new(),
                        span: n.name.span,
                    });
                }
            }
            D::Loss(l) => {
                self.declare(&l.name, Global::Loss);
            }
            D::Sampler(s) => {
                self.declare(&s.name, Global::Sampler);
            }
            D::Fn(f) => {
                if let Some(d) = fn_problem(f) {
                    self.error(d);
                } else if let Some((_, first)) = self.globals.get(&f.name.name) {
                    let d = duplicate(&f.name, *first);
                    self.error(d);
                } else if self.fns.contains_key(&f.name.name)
                    && !self.fns[&f.name.name].span.eq(&f.span)
                {
                    // A process-level fn may shadow a file-level one.
                    self.fns.insert(f.name.name.clone(), f);
                } else {
                    self.fns.insert(f.name.name.clone(), f);
                }
            }
            D::Forward(_) | D::Prior(_) | D::Posterior(_) => {}
        }
    }

    /// Remember a name whose declaration failed, so that its uses are not reported again.
    fn poison(&mut self, name: &ast::Ident) {
        self.globals
            .entry(name.name.clone())
            .or_insert((Global::Poisoned, name.span));
    }

    /// Is this name, or the field in a version like `x_t`, a failed declaration?
    pub(crate) fn is_poisoned(&self, name: &str) -> bool {
        let poisoned = |n: &str| matches!(self.globals.get(n), Some((Global::Poisoned, _)));
        let version = |s: &str| matches!(s, "0" | "T" | "s") || s == self.p.time.name;
        poisoned(name)
            || name
                .rsplit_once('_')
                .is_some_and(|(base, v)| version(v) && poisoned(base))
    }

    fn is_int_expr(&self, id: ExprId) -> bool {
        match &self.p.expr(id).kind {
            ExprKind::Number(x) => x.fract() == 0.0,
            ExprKind::Const(c) => self.p.consts[c.index()].is_int,
            ExprKind::Binary { op, lhs, rhs } => {
                matches!(op, ast::BinOp::Add | ast::BinOp::Sub | ast::BinOp::Mul)
                    && self.is_int_expr(*lhs)
                    && self.is_int_expr(*rhs)
            }
            ExprKind::Unary { arg, .. } => self.is_int_expr(*arg),
            _ => false,
        }
    }

    fn lookup_dim(&mut self, name: &ast::Ident) -> Option<DimId> {
        match self.globals.get(&name.name) {
            Some((Global::Dim(d), _)) => Some(*d),
            Some((Global::Poisoned, _)) => None,
            Some(_) => {
                self.error(
                    Diagnostic::error(
                        Code::Type,
                        name.span,
                        format!("`{}` is not a dimension", name.name),
                    )
                    .with_label("expected a name declared with `dim`"),
                );
                None
            }
            None => {
                let d = self.unknown(&name.name, name.span, "dimension");
                self.error(d);
                None
            }
        }
    }

    /// Evaluate a class count or size: a positive integer constant.
    pub(crate) fn const_count(&mut self, e: &ast::Expr, what: &str, min: u32) -> Option<u32> {
        let mut cx = expr::Cx::new(expr::Place::Const);
        let id = self.expr(e, &mut cx);
        let v = self.const_real(id)?;
        if v.fract() != 0.0 || !(min as f64..=65536.0).contains(&v) {
            self.error(
                Diagnostic::error(
                    Code::Const,
                    e.span,
                    format!("{what} must be a whole number from {min} to 65536"),
                )
                .with_label(format!("this is {v}")),
            );
            return None;
        }
        Some(v as u32)
    }

    /// Whether a `mat<k>` is within [`crate::limits::MAX_MATRIX_SIZE`]; reports it at `span`
    /// when it is not.
    pub(crate) fn matrix_fits(&mut self, k: u32, span: Span) -> bool {
        let most = crate::limits::MAX_MATRIX_SIZE;
        if k <= most {
            return true;
        }
        self.error(
            Diagnostic::error(
                Code::Const,
                span,
                format!("a matrix is at most {most} × {most}, but this one is {k} × {k}"),
            )
            .with_label(format!("mat<{k}>: {} entries", u64::from(k) * u64::from(k)))
            .with_note("the checker evaluates matrices in f64; a categorical kernel over this many classes can be written without one (a mixture with `onehot` and a marginal)"),
        );
        false
    }

    fn type_expr(&mut self, t: &ast::TypeExpr) -> Option<Elem> {
        Some(match &t.kind {
            ast::TypeKind::Real => Elem::Real,
            ast::TypeKind::Bool => Elem::Bool,
            ast::TypeKind::Cat(k) => Elem::Cat(self.const_count(k, "a class count", 2)?),
            ast::TypeKind::Vec(k) => Elem::Vec(self.const_count(k, "a vector length", 1)?),
            ast::TypeKind::Mat(k) => {
                let n = self.const_count(k, "a matrix size", 1)?;
                if !self.matrix_fits(n, k.span) {
                    return None;
                }
                Elem::Mat(n)
            }
        })
    }

    fn declare_field(&mut self, f: &ast::FieldDecl) {
        if !self.declare_field_inner(f) {
            self.poison(&f.name);
        }
    }

    /// Returns false when the declaration has an error.
    fn declare_field_inner(&mut self, f: &ast::FieldDecl) -> bool {
        let Some(elem) = self.type_expr(&f.ty) else {
            return false;
        };
        if matches!(elem, Elem::Mat(_)) {
            self.error(
                Diagnostic::error(Code::Type, f.ty.span, "a field cannot hold matrices")
                    .with_label("use real, bool, cat<K> or vec<K>"),
            );
            return false;
        }
        let mut dims = Vec::new();
        for d in &f.shape {
            let Some(id) = self.lookup_dim(d) else {
                return false;
            };
            dims.push(id);
        }
        let sym = f.sym.is_some();
        if let Some(span) = f.sym {
            if dims.len() != 2 || dims[0] != dims[1] {
                let shape = f
                    .shape
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                self.error(
                    Diagnostic::error(Code::Symmetry, span, "`sym` needs a square shape `[n, n]`")
                        .with_label("symmetric qualifier")
                        .with_secondary(
                            f.shape_span.unwrap_or(f.name.span),
                            format!("the shape is [{shape}]"),
                        ),
                );
                return false;
            }
        }
        let mut mask = None;
        if let Some(m) = &f.masked {
            match self.globals.get(&m.name) {
                Some((Global::Poisoned, _)) => return false,
                Some((Global::Mask(id), _)) => {
                    let mdim = self.p.masks[id.index()].dim;
                    if dims.first() != Some(&mdim) {
                        let mname = self.p.dims[mdim.index()].name.clone();
                        self.error(
                            Diagnostic::error(Code::Mask, m.span, format!("mask `{}` is over `{mname}`, which is not this field's first axis", m.name))
                                .with_label("wrong mask")
                                .with_note("a node mask masks node fields [n, …] by row and edge fields [n, n] by both ends"),
                        );
                        return false;
                    }
                    mask = Some(*id);
                }
                Some(_) => {
                    self.error(
                        Diagnostic::error(
                            Code::Mask,
                            m.span,
                            format!("`{}` is not a mask", m.name),
                        )
                        .with_label("expected a name declared with `mask`"),
                    );
                    return false;
                }
                None => {
                    let d = self.unknown(&m.name, m.span, "mask");
                    self.error(d);
                    return false;
                }
            }
        }
        let id = FieldId(self.p.fields.len() as u32);
        if self.declare(&f.name, Global::Field(id)) {
            self.p.fields.push(Field {
                name: f.name.name.clone(),
                elem,
                shape: Shape { dims, sym, mask },
                span: f.name.span,
            });
        }
        true
    }

    fn declare_time(&mut self, t: &ast::TimeDecl, span: Span) {
        if self.has_time {
            self.error(
                Diagnostic::error(Code::Duplicate, span, "a process has one time axis")
                    .with_label("second `time` declaration"),
            );
            return;
        }
        let mut cx = expr::Cx::new(expr::Place::Const);
        let (kind, lo, hi) = match &t.domain {
            ast::TimeDomain::Discrete { lo, hi } => (TimeKind::Discrete, lo, hi),
            ast::TimeDomain::Continuous { lo, hi } => (TimeKind::Continuous, lo, hi),
        };
        let lo_id = self.expr(lo, &mut cx);
        let hi_id = self.expr(hi, &mut cx);
        let (Some(lo_v), Some(hi_v)) = (self.const_real(lo_id), self.const_real(hi_id)) else {
            return;
        };
        if kind == TimeKind::Discrete && (lo_v.fract() != 0.0 || hi_v.fract() != 0.0) {
            self.error(
                Diagnostic::error(
                    Code::TimeKind,
                    t.domain_span,
                    "a discrete time range needs whole numbers",
                )
                .with_label(format!(
                    "{}..{}",
                    schedules::fmt(lo_v),
                    schedules::fmt(hi_v)
                ))
                .with_note("write `time t : [a, b]` for continuous time"),
            );
            return;
        }
        if hi_v <= lo_v || (kind == TimeKind::Discrete && hi_v - lo_v > 1e6) {
            self.error(
                Diagnostic::error(
                    Code::TimeKind,
                    t.domain_span,
                    "the time range is empty or too large",
                )
                .with_label(format!("from {lo_v} to {hi_v}")),
            );
            return;
        }
        let default_data = if kind == TimeKind::Discrete {
            lo_v - 1.0
        } else {
            lo_v
        };
        let data_at = match &t.data_at {
            None => default_data,
            Some(e) => {
                let id = self.expr(e, &mut cx);
                let Some(v) = self.const_real(id) else { return };
                let allowed = match kind {
                    TimeKind::Discrete => [lo_v - 1.0, hi_v + 1.0],
                    TimeKind::Continuous => [lo_v, hi_v],
                };
                if !allowed.contains(&v) {
                    self.error(
                        Diagnostic::error(
                            Code::Direction,
                            e.span,
                            format!(
                                "the data must sit at an end of time: {} or {}",
                                allowed[0], allowed[1]
                            ),
                        )
                        .with_label(format!("this is {v}")),
                    );
                    return;
                }
                v
            }
        };
        if !self.declare(&t.name, Global::Time) {
            return;
        }
        self.p.time = Time {
            name: t.name.name.clone(),
            kind,
            lo: lo_v,
            hi: hi_v,
            data_at,
            span: t.name.span,
        };
        self.has_time = true;
    }

    /// A diagnostic for an unknown name, with the closest known name as a suggestion.
    fn unknown(&self, name: &str, span: Span, what: &str) -> Diagnostic {
        let mut d = Diagnostic::error(Code::UnknownName, span, format!("unknown {what} `{name}`"))
            .with_label("not defined");
        // Suggest names of the kind that was asked for.
        let kind_of = |g: &Global| match what {
            "dimension" => matches!(g, Global::Dim(_)),
            "mask" => matches!(g, Global::Mask(_)),
            "field" => matches!(g, Global::Field(_)),
            _ => !matches!(g, Global::Poisoned),
        };
        let mut candidates: Vec<&str> = self
            .globals
            .iter()
            .filter(|(_, (g, _))| kind_of(g))
            .map(|(n, _)| n.as_str())
            .collect();
        if !matches!(what, "dimension" | "mask" | "field") {
            candidates.extend(self.fns.keys().map(String::as_str));
            candidates.extend(Builtin::ALL.iter().map(|(n, _)| *n));
            candidates.extend([
                "Normal",
                "Categorical",
                "Bernoulli",
                "Delta",
                "Uniform",
                "posterior",
                "prior",
            ]);
        }
        candidates.sort();
        if let Some(best) = candidates
            .iter()
            .map(|c| (edit_distance(name, c), *c))
            .filter(|(dist, c)| *dist <= 2.max(name.len() / 3) && *dist < c.len())
            .min()
        {
            d = d.with_note(format!("did you mean `{}`?", best.1));
        }
        d
    }

    fn source(&self, span: Span) -> &str {
        &self.text[span.range()]
    }
}

fn default_span(d: &ast::Decl) -> Span {
    match &d.kind {
        ast::DeclKind::Param {
            default: Some(e), ..
        } => e.span,
        _ => d.span,
    }
}

fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "Normal"
            | "Uniform"
            | "Categorical"
            | "Bernoulli"
            | "Delta"
            | "posterior"
            | "prior"
            | "prev"
    )
}

pub(crate) fn elem_accepts(want: Elem, got: Option<Elem>) -> bool {
    match (want, got) {
        (_, None) => false,
        (a, Some(b)) if a == b => true,
        (Elem::Real, Some(Elem::Bool)) => true,
        (Elem::Vec(_), Some(Elem::Real | Elem::Bool)) => true,
        _ => false,
    }
}

pub(crate) fn describe(ty: &Ty) -> String {
    match ty {
        Ty::Value { elem, stage } => match stage {
            Stage::Field(_) => format!("a {} field value", elem.describe()),
            Stage::Sample => format!("a per-sample {}", elem.describe()),
            _ => format!("a {}", elem.describe()),
        },
        Ty::Dist { elem, .. } => format!("a distribution over {}", elem.describe()),
        Ty::NetCall(_) => "a network call".into(),
        Ty::Grid => "a time grid".into(),
        Ty::Error => "an invalid value".into(),
    }
}

pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
