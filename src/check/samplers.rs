//! Samplers: parameters, time grids, step bodies, and a dry run of every step's per-step
//! coefficients over the default grid.

use super::eval::{grid_times, Env, EvalError, Evaluator, GridKind};
use super::expr::{Bound, Cx, Place};
use super::schedules::{children, fmt};
use super::{describe, Checker, Global};
use crate::diag::{Code, Diagnostic, Span};
use crate::syntax::ast::{self, UnOp};
use crate::typed::*;

impl<'a> Checker<'a> {
    pub(super) fn check_sampler(&mut self, s: &ast::SamplerDecl, span: Span) {
        let before = self.errors();
        let mut head = Cx::new(Place::SamplerHead);
        let mut params = Vec::new();
        self.sampler_values.clear();
        let lets = s.items.iter().filter_map(|i| match i {
            ast::SamplerItem::Let(b) => Some((b, false)),
            _ => None,
        });
        for (b, overridable) in s.params.iter().map(|b| (b, true)).chain(lets) {
            if params.iter().any(|p: &SamplerParam| p.name == b.name.name)
                || matches!(
                    b.name.name.as_str(),
                    "t" | "s" | "r" | "k" | "first" | "last"
                )
            {
                let d = Diagnostic::error(
                    Code::Duplicate,
                    b.name.span,
                    format!("`{}` is already a name in this sampler", b.name.name),
                )
                .with_label("choose another name");
                self.error(d);
                continue;
            }
            let v = self.value(&b.value, &mut head);
            let ty = self.ty(v).clone();
            if ty.is_error() {
                continue;
            }
            if ty.stage().is_none_or(|s| s.rank() > 1) {
                let d = Diagnostic::error(
                    Code::Sampler,
                    b.value.span,
                    "a sampler parameter is a number known before sampling",
                )
                .with_label(describe(&ty));
                self.error(d);
                continue;
            }
            let env = Env {
                sampler_params: self.sampler_values.clone(),
                ..Env::default()
            };
            match Evaluator::new(&self.p).eval(v, &env) {
                Ok(val) => self.sampler_values.push(val),
                Err(_) => {
                    let d = Diagnostic::error(
                        Code::Const,
                        b.value.span,
                        "a sampler parameter's default must be known at compile time",
                    )
                    .with_label("not a constant");
                    self.error(d);
                    continue;
                }
            }
            head.sampler_params.push((
                b.name.name.clone(),
                Ty::value(ty.elem().unwrap(), Stage::Host),
            ));
            params.push(SamplerParam {
                name: b.name.name.clone(),
                value: v,
                overridable,
                span: b.name.span,
            });
        }
        let mut grid_item: Option<&ast::SamplerItem> = None;
        let mut init: Option<&ast::SamplerItem> = None;
        let mut step: Option<&ast::SamplerItem> = None;
        let mut finalize: Option<&ast::SamplerItem> = None;
        for item in &s.items {
            let (slot, what, sp) = match item {
                ast::SamplerItem::Grid(_, sp) => (&mut grid_item, "grid", *sp),
                ast::SamplerItem::Init(b) => (&mut init, "init", b.span),
                ast::SamplerItem::Step(b) => (&mut step, "step", b.span),
                ast::SamplerItem::Finalize(b) => (&mut finalize, "finalize", b.span),
                ast::SamplerItem::Let(_) => continue,
            };
            if slot.is_some() {
                let d =
                    Diagnostic::error(Code::Duplicate, sp, format!("a sampler has one `{what}`"))
                        .with_label("second one");
                self.error(d);
                return;
            }
            *slot = Some(item);
        }
        let Some(ast::SamplerItem::Grid(grid_expr, grid_span)) = grid_item else {
            let d = Diagnostic::error(Code::Sampler, s.name.span, format!("sampler `{}` has no time grid", s.name.name))
                .with_label("add `grid = …`")
                .with_note("grids: all, uniform(N), quadratic(N), logsnr(N), karras(N, rho), or a list of times");
            self.error(d);
            return;
        };
        let Some(ast::SamplerItem::Step(step_block)) = step else {
            let d = Diagnostic::error(
                Code::Sampler,
                s.name.span,
                format!("sampler `{}` has no `step`", s.name.name),
            )
            .with_label("add `step { … }`");
            self.error(d);
            return;
        };
        let Some((grid, default_grid)) = self.grid(grid_expr, &mut head) else {
            return;
        };

        let mut cx = Cx::new(Place::Init);
        cx.sampler_params = head.sampler_params.clone();
        let init_stmts = match init {
            Some(ast::SamplerItem::Init(b)) => self.block(&b.stmts, &mut cx),
            _ => Vec::new(),
        };
        cx.place = Place::Step;
        cx.scopes.clear();
        let step_stmts = self.block(&step_block.stmts, &mut cx);
        let history = std::mem::take(&mut cx.prev_used);
        cx.place = Place::Finalize;
        cx.scopes.clear();
        let fin_stmts = match finalize {
            Some(ast::SamplerItem::Finalize(b)) => self.block(&b.stmts, &mut cx),
            _ => Vec::new(),
        };
        if self.errors() > before {
            return;
        }
        // Sampling starts from the prior unless `init` sets the state.
        let mut assigned_in_init = Vec::new();
        assigned(&init_stmts, &mut assigned_in_init);
        let mut stepped = Vec::new();
        assigned(&step_stmts, &mut stepped);
        let mut read = Vec::new();
        walk(&self.p, &step_stmts, |_, x| {
            if let ExprKind::State(f) = x.kind {
                read.push(f);
            }
        });
        stepped.retain(|f| read.contains(f));
        for f in stepped {
            if !assigned_in_init.contains(&f) && !self.p.priors.iter().any(|k| k.target.field == f)
            {
                let name = self.p.field(f).name.clone();
                let d = Diagnostic::error(
                    Code::Sampler,
                    assign_span(&step_stmts, f).unwrap_or(step_block.span),
                    format!("the step updates `{name}`, but nothing sets its starting value"),
                )
                .with_label("no prior and no init")
                .with_note(format!(
                    "declare `prior {name}_T ~ …`, or set `{name}` in an `init` block"
                ));
                self.error(d);
                return;
            }
        }
        // One-step posteriors need unit steps.
        let mut uses = Vec::new();
        posterior_uses(&self.p, &step_stmts, &mut uses);
        let mut unit_step = None;
        for (index, pspan) in uses {
            let k = &self.p.posteriors[index as usize];
            if let Version::Back(n) = k.target.version {
                unit_step = Some(n);
                if let Some(w) = default_grid
                    .windows(2)
                    .find(|w| (w[0] - w[1]).abs() != n as f64)
                {
                    let d = Diagnostic::error(
                        Code::Sampler,
                        pspan,
                        format!("this posterior goes one step at a time, but the grid jumps from {} to {}", fmt(w[0]), fmt(w[1])),
                    )
                    .with_label("one-step posterior")
                    .with_secondary(*grid_span, "grid")
                    .with_note("use `grid = all`, or declare the posterior for `x_s` to step between any two times");
                    self.error(d);
                    return;
                }
            }
        }
        let mut calls = Vec::new();
        net_calls(&self.p, &step_stmts, &mut calls);
        let sampler = Sampler {
            name: s.name.name.clone(),
            params,
            grid,
            grid_span: *grid_span,
            default_grid,
            init: init_stmts,
            step: step_stmts,
            finalize: fin_stmts,
            calls_per_step: calls.len(),
            history,
            unit_step,
            span,
        };
        if !self.schedules_ok {
            return;
        }
        if let Some(d) = self.dry_run(&sampler) {
            self.error(d);
            return;
        }
        self.p.samplers.push(sampler);
    }

    fn grid(&mut self, e: &ast::Expr, head: &mut Cx) -> Option<(Grid, Vec<f64>)> {
        let time = self.p.time.clone();
        let env = Env {
            sampler_params: self.sampler_values.clone(),
            ..Env::default()
        };
        let builder = |c: &mut Self, name: &str| -> bool {
            if time.kind == TimeKind::Discrete && matches!(name, "logsnr" | "karras") {
                let d = Diagnostic::error(
                    Code::TimeKind,
                    e.span,
                    format!("`{name}` grids need continuous time"),
                )
                .with_label("continuous-time grid")
                .with_secondary(time.span, "discrete time declared here")
                .with_note("in discrete time use `all`, `uniform(N)`, `linspace(N)` or a list");
                c.error(d);
                return false;
            }
            true
        };
        let (grid, times) = match &e.kind {
            ast::ExprKind::Name(n) if n == "all" => {
                if time.kind == TimeKind::Continuous {
                    let d = Diagnostic::error(Code::TimeKind, e.span, "`grid = all` steps through every time of a discrete process")
                        .with_label("discrete-time grid")
                        .with_secondary(time.span, "continuous time declared here")
                        .with_note("in continuous time use uniform(N), quadratic(N), logsnr(N) or karras(N, rho)");
                    self.error(d);
                    return None;
                }
                let (a, b) = (time.noise_end(), time.data_at);
                let n = (b - a).abs() as usize;
                let dir = (b - a).signum();
                (Grid::All, (0..=n).map(|i| a + dir * i as f64).collect())
            }
            ast::ExprKind::Call { callee, args }
                if matches!(
                    callee.as_name(),
                    Some("uniform" | "quadratic" | "logsnr" | "karras" | "linspace")
                ) =>
            {
                let name = callee.as_name().unwrap();
                if !builder(self, name) {
                    return None;
                }
                let want = if name == "karras" { 2 } else { 1 };
                let karras_min = name == "karras" && args.len() == 3;
                if args.len() != want && !karras_min {
                    let d = Diagnostic::error(
                        Code::Sampler,
                        e.span,
                        if name == "karras" {
                            "`karras` takes 2 or 3 arguments: steps, rho and optionally sigma_min"
                                .to_string()
                        } else {
                            format!("`{name}` takes 1 argument")
                        },
                    )
                    .with_label(format!("{} given", args.len()));
                    self.error(d);
                    return None;
                }
                let ids: Vec<ExprId> = args.iter().map(|a| self.value(&a.value, head)).collect();
                if ids.iter().any(|i| self.ty(*i).is_error()) {
                    return None;
                }
                let ev = Evaluator::new(&self.p);
                let steps = ev.real(ids[0], &env).ok();
                let Some(n) = steps.filter(|n| n.fract() == 0.0 && *n >= 1.0 && *n <= 1e6) else {
                    // The sampler's parameters the count reads, with the values it was
                    // evaluated at, for the note.
                    let mut read = Vec::new();
                    let mut stack = vec![ids[0]];
                    while let Some(id) = stack.pop() {
                        if let ExprKind::SamplerParam { index, .. } = self.p.expr(id).kind {
                            read.push(index as usize);
                        }
                        children(&self.p.expr(id).kind, &mut stack);
                    }
                    let at: Vec<String> = head
                        .sampler_params
                        .iter()
                        .zip(&self.sampler_values)
                        .enumerate()
                        .filter(|(i, _)| read.contains(i))
                        .filter_map(|(_, ((name, _), v))| match v {
                            Value::Real(x) => Some(format!("{name} = {}", fmt(*x))),
                            _ => None,
                        })
                        .collect();
                    let (message, label) = match steps {
                        Some(v) => (
                            format!(
                                "the `{name}` grid has {} steps, but the number of steps must be a whole number from 1 to 10^6",
                                fmt(v)
                            ),
                            format!("{} steps", fmt(v)),
                        ),
                        None => (
                            format!(
                                "the number of steps of a `{name}` grid must be a whole number from 1 to 10^6, known when the spec is checked"
                            ),
                            "not a constant".to_string(),
                        ),
                    };
                    let mut d = Diagnostic::error(Code::Sampler, args[0].value.span, message)
                        .with_label(label);
                    if !at.is_empty() {
                        d = d.with_note(format!(
                            "evaluated with the sampler's defaults: {}",
                            at.join(", ")
                        ));
                    }
                    self.error(d);
                    return None;
                };
                let n = n as usize;
                let kind = match name {
                    "uniform" => GridKind::Uniform,
                    "quadratic" => GridKind::Quadratic,
                    "logsnr" => GridKind::LogSnr,
                    "linspace" => GridKind::Linspace,
                    _ => match ev.real(ids[1], &env) {
                        Ok(rho) if rho > 0.0 => {
                            let sigma_min = match ids.get(2).map(|&m| ev.real(m, &env)) {
                                None => None,
                                Some(Ok(m)) if m > 0.0 => Some(m),
                                Some(_) => {
                                    let d = Diagnostic::error(
                                        Code::Sampler,
                                        args[2].value.span,
                                        "sigma_min must be a positive number",
                                    )
                                    .with_label("sigma_min");
                                    self.error(d);
                                    return None;
                                }
                            };
                            GridKind::Karras { rho, sigma_min }
                        }
                        _ => {
                            let d = Diagnostic::error(
                                Code::Sampler,
                                args[1].value.span,
                                "rho must be a positive number",
                            )
                            .with_label("rho");
                            self.error(d);
                            return None;
                        }
                    },
                };
                let times = match grid_times(&self.p, kind, n) {
                    Ok(t) => t,
                    Err(msg) => {
                        let d = Diagnostic::error(Code::Sampler, e.span, msg).with_label("grid");
                        self.error(d);
                        return None;
                    }
                };
                let grid = match name {
                    "uniform" => Grid::Uniform(ids[0]),
                    "quadratic" => Grid::Quadratic(ids[0]),
                    "logsnr" => Grid::LogSnr(ids[0]),
                    "linspace" => Grid::Linspace(ids[0]),
                    _ => Grid::Karras {
                        steps: ids[0],
                        rho: ids[1],
                        sigma_min: ids.get(2).copied(),
                    },
                };
                (grid, times)
            }
            ast::ExprKind::List(_) | ast::ExprKind::Comprehension { .. } => {
                let id = self.value(e, head);
                if self.ty(id).is_error() {
                    return None;
                }
                let times = match Evaluator::new(&self.p).eval(id, &env) {
                    Ok(Value::Vec(v)) => v,
                    _ => {
                        let d = Diagnostic::error(
                            Code::Sampler,
                            e.span,
                            "a grid list must be known before sampling",
                        )
                        .with_label("grid");
                        self.error(d);
                        return None;
                    }
                };
                (Grid::List(id), times)
            }
            _ => {
                let d = Diagnostic::error(Code::Sampler, e.span, "unknown time grid")
                    .with_label("expected a grid")
                    .with_note("grids: all, uniform(N), quadratic(N), logsnr(N), karras(N, rho), linspace(N), [t0, t1, …] or [f(k) for k in 0..N]");
                self.error(d);
                return None;
            }
        };
        if times.len() < 2 {
            let d = Diagnostic::error(Code::Sampler, e.span, "a grid needs at least two times")
                .with_label("one time only");
            self.error(d);
            return None;
        }
        let (lo, hi) = (time.lo.min(time.data_at), time.hi.max(time.data_at));
        for (i, t) in times.iter().enumerate() {
            // In discrete time a grid point may lie between two whole times (diffusers'
            // "linspace" spacing); a step reads its schedules there with `interp`, and a plain
            // read is an error where the step's coefficients are checked on the grid.
            if !(*t >= lo - 1e-12 && *t <= hi + 1e-12) {
                let at = match &e.kind {
                    ast::ExprKind::List(items) if i < items.len() => items[i].span,
                    _ => e.span,
                };
                let d = Diagnostic::error(
                    Code::Sampler,
                    at,
                    format!("grid point {i} ({}) is outside the process's time", fmt(*t)),
                )
                .with_label("outside the time domain")
                .with_note(format!(
                    "time runs over {}..{} with the data at {}",
                    fmt(time.lo),
                    fmt(time.hi),
                    fmt(time.data_at)
                ));
                self.error(d);
                return None;
            }
        }
        let toward = if time.ascending() { 1.0 } else { -1.0 };
        if let Some(i) = times.windows(2).position(|w| (w[1] - w[0]) * toward <= 0.0) {
            let d = Diagnostic::error(
                Code::Direction,
                e.span,
                format!(
                    "the grid steps away from the data: from {} to {}",
                    fmt(times[i]),
                    fmt(times[i + 1])
                ),
            )
            .with_label("wrong direction")
            .with_note(format!(
                "samplers move toward the data at {} = {}: times must {}",
                time.name,
                fmt(time.data_at),
                if time.ascending() {
                    "increase"
                } else {
                    "decrease"
                }
            ));
            self.error(d);
            return None;
        }
        Some((grid, times))
    }

    fn block(&mut self, stmts: &[ast::Stmt], cx: &mut Cx) -> Vec<Stmt> {
        let depth = cx.scopes.len();
        let mut out = Vec::new();
        for s in stmts {
            match self.stmt(s, cx) {
                Some(st) => out.push(st),
                None => {
                    // A binding with an error still binds its name, so later uses are not reported again.
                    if let ast::StmtKind::Let { name, .. } | ast::StmtKind::Draw { name, .. } =
                        &s.kind
                    {
                        let l = LocalId(self.p.locals.len() as u32);
                        self.p.locals.push(Local {
                            name: name.name.clone(),
                            ty: Ty::Error,
                            value: None,
                            span: name.span,
                        });
                        cx.scopes.push((name.name.clone(), Bound::Local(l)));
                    }
                }
            }
        }
        cx.scopes.truncate(depth);
        out
    }

    fn stmt(&mut self, s: &ast::Stmt, cx: &mut Cx) -> Option<Stmt> {
        let kind = match &s.kind {
            ast::StmtKind::Let { name, value } => {
                let v = self.expr(value, cx);
                // A call with one output is bound as that output, so `e.x0` works on the name.
                let v = if matches!(self.ty(v), Ty::NetCall(net) if self.p.network(*net).outputs.len() == 1)
                {
                    self.as_value(v)
                } else {
                    v
                };
                if matches!(self.ty(v), Ty::Dist { .. }) {
                    let d = Diagnostic::error(
                        Code::Distribution,
                        value.span,
                        "`let` binds a value; draw from a distribution with `let z ~ …`",
                    )
                    .with_label("a distribution");
                    self.error(d);
                    return None;
                }
                let l = self.new_local(name, v);
                cx.scopes.push((name.name.clone(), Bound::Local(l)));
                if cx.place == Place::Step {
                    cx.step_locals.push(l);
                }
                StmtKind::Let { local: l, value: v }
            }
            ast::StmtKind::Draw { name, dist, like } => {
                let d = self.expr(dist, cx);
                let Ty::Dist { elem, stage } = self.ty(d).clone() else {
                    if !self.ty(d).is_error() {
                        let diag = Diagnostic::error(
                            Code::Distribution,
                            dist.span,
                            format!(
                                "`~` draws from a distribution, found {}",
                                describe(self.ty(d))
                            ),
                        )
                        .with_label("not a distribution");
                        self.error(diag);
                    }
                    return None;
                };
                let shape = match (&stage, like) {
                    (Stage::Field(sh), None) => sh.clone(),
                    (_, Some(f)) => {
                        let Some((Global::Field(fid), _)) = self.globals.get(&f.name).copied()
                        else {
                            let diag = self.unknown(&f.name, f.span, "field");
                            self.error(diag);
                            return None;
                        };
                        let fs = self.p.field(fid).shape.clone();
                        if let Stage::Field(sh) = &stage {
                            if sh.dims != fs.dims {
                                let diag = Diagnostic::error(
                                    Code::Shape,
                                    f.span,
                                    format!(
                                        "the distribution has shape {}, `{}` is {}",
                                        self.shape_text(sh),
                                        f.name,
                                        self.shape_text(&fs)
                                    ),
                                )
                                .with_label("shape mismatch");
                                self.error(diag);
                                return None;
                            }
                        }
                        fs
                    }
                    (_, None) => {
                        let diffused: Vec<FieldId> = {
                            let mut v: Vec<FieldId> =
                                self.p.forwards.iter().map(|k| k.target.field).collect();
                            v.dedup();
                            v
                        };
                        if diffused.len() != 1 {
                            let diag = Diagnostic::error(
                                Code::Shape,
                                s.span,
                                "this draw has no shape",
                            )
                            .with_label("parameters are the same for every element")
                            .with_note(
                                "say which field's shape to draw: `let z ~ Normal(0, 1) like x`",
                            );
                            self.error(diag);
                            return None;
                        }
                        self.p.field(diffused[0]).shape.clone()
                    }
                };
                let elem = match (
                    elem,
                    like.as_ref()
                        .and_then(|f| self.globals.get(&f.name))
                        .map(|g| g.0),
                ) {
                    (Elem::Real, Some(Global::Field(f))) => match self.p.field(f).elem {
                        Elem::Vec(k) => Elem::Vec(k),
                        _ => elem,
                    },
                    _ => elem,
                };
                let ty = Ty::value(elem, Stage::Field(shape.clone()));
                let l = LocalId(self.p.locals.len() as u32);
                self.p.locals.push(Local {
                    name: name.name.clone(),
                    ty,
                    value: None,
                    span: name.span,
                });
                cx.scopes.push((name.name.clone(), Bound::Local(l)));
                StmtKind::Draw {
                    local: l,
                    dist: d,
                    shape,
                }
            }
            ast::StmtKind::Assign { name, value } => {
                let field = self.state_field(name, cx)?;
                let v = self.value(value, cx);
                let t = self.ty(v).clone();
                if t.is_error() {
                    return None;
                }
                let f = self.p.field(field).clone();
                if !super::elem_accepts(f.elem, t.elem()) {
                    let hint = match (f.elem, t.elem()) {
                        (Elem::Cat(_), Some(Elem::Vec(_))) => {
                            "sample the class: `x ~ Categorical(p)`, or take `argmax(p)`"
                        }
                        (Elem::Bool, Some(Elem::Real)) => {
                            "sample with `x ~ Bernoulli(p)`, or threshold with `p > 0.5`"
                        }
                        _ => "",
                    };
                    let d = Diagnostic::error(
                        Code::Type,
                        value.span,
                        format!(
                            "`{}` is {}, found {}",
                            f.name,
                            f.elem.describe(),
                            describe(&t)
                        ),
                    )
                    .with_label("wrong type")
                    .with_secondary(f.span, "field declared here");
                    let d = if hint.is_empty() {
                        d
                    } else {
                        d.with_note(hint)
                    };
                    self.error(d);
                    return None;
                }
                if let Stage::Field(sh) = t.stage().unwrap() {
                    if sh.dims != f.shape.dims {
                        let d = Diagnostic::error(
                            Code::Shape,
                            value.span,
                            format!(
                                "`{}` is {}, this value is {}",
                                f.name,
                                self.shape_text(&f.shape),
                                self.shape_text(sh)
                            ),
                        )
                        .with_label("shape mismatch");
                        self.error(d);
                        return None;
                    }
                    if f.shape.sym && !sh.sym {
                        let d = Diagnostic::error(Code::Symmetry, value.span, format!("`{}` is symmetric, but this value is not", f.name))
                            .with_label("asymmetric value")
                            .with_secondary(f.span, "declared `sym` here")
                            .with_note("build edge values symmetrically: from sym fields, pair(a, a), gram(z), or draws shaped like the field");
                        self.error(d);
                        return None;
                    }
                }
                StmtKind::Assign { field, value: v }
            }
            ast::StmtKind::Sample { name, dist } => {
                let field = self.state_field(name, cx)?;
                let d = self.expr(dist, cx);
                if self.ty(d).is_error() {
                    return None;
                }
                if !self.check_fits(field, d, dist.span) {
                    return None;
                }
                StmtKind::Sample { field, dist: d }
            }
            ast::StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                let c = self.value(cond, cx);
                let ct = self.ty(c).clone();
                if ct.is_error() {
                    return None;
                }
                if ct.elem() != Some(Elem::Bool) || ct.stage().unwrap().rank() > 1 {
                    let d = Diagnostic::error(
                        Code::Type,
                        cond.span,
                        format!(
                            "a step branches on a bool known per step, found {}",
                            describe(&ct)
                        ),
                    )
                    .with_label("condition")
                    .with_note(
                        "for per-element choices use `if c then a else b` inside an expression",
                    );
                    self.error(d);
                    return None;
                }
                let first = match &self.p.expr(c).kind {
                    ExprKind::Step(StepVar::First) => Some(false),
                    ExprKind::Unary { op: UnOp::Not, arg }
                        if matches!(self.p.expr(*arg).kind, ExprKind::Step(StepVar::First)) =>
                    {
                        Some(true)
                    }
                    ExprKind::Binary {
                        op: ast::BinOp::Or,
                        lhs,
                        ..
                    } if matches!(self.p.expr(*lhs).kind, ExprKind::Step(StepVar::First)) => {
                        Some(false)
                    }
                    _ => None,
                };
                let saved = cx.history;
                if first == Some(true) {
                    cx.history = true;
                }
                let then = self.block(&then.stmts, cx);
                cx.history = saved;
                if first == Some(false) {
                    cx.history = true;
                }
                let otherwise = otherwise
                    .as_ref()
                    .map(|b| self.block(&b.stmts, cx))
                    .unwrap_or_default();
                cx.history = saved;
                StmtKind::If {
                    cond: c,
                    then,
                    otherwise,
                }
            }
            ast::StmtKind::Repeat { count, body } => {
                let c = self.value(count, cx);
                let ct = self.ty(c).clone();
                if ct.is_error() {
                    return None;
                }
                if ct.elem() != Some(Elem::Real) || ct.stage().unwrap().rank() > 1 {
                    let d = Diagnostic::error(
                        Code::Sampler,
                        count.span,
                        "`repeat` takes a count known per step",
                    )
                    .with_label(describe(&ct));
                    self.error(d);
                    return None;
                }
                let body = self.block(&body.stmts, cx);
                StmtKind::Repeat { count: c, body }
            }
        };
        Some(Stmt { kind, span: s.span })
    }

    fn state_field(&mut self, name: &ast::Ident, cx: &Cx) -> Option<FieldId> {
        if let Some(Bound::Local(_)) = cx
            .scopes
            .iter()
            .rev()
            .find(|(n, _)| *n == name.name)
            .map(|x| &x.1)
        {
            let d = Diagnostic::error(
                Code::Sampler,
                name.span,
                format!(
                    "`{}` is a `let` value; only fields can be updated",
                    name.name
                ),
            )
            .with_label("not a field")
            .with_note("bind a new value with another `let`");
            self.error(d);
            return None;
        }
        match self.globals.get(&name.name).copied() {
            Some((Global::Field(f), _)) => Some(f),
            Some((Global::Poisoned, _)) => None,
            _ => {
                let d = if self.field_version(&name.name).is_some() {
                    Diagnostic::error(
                        Code::Sampler,
                        name.span,
                        format!("update the field by its bare name, not `{}`", name.name),
                    )
                    .with_label("field version")
                } else {
                    self.unknown(&name.name, name.span, "field")
                };
                self.error(d);
                None
            }
        }
    }

    /// Evaluate every per-step coefficient of the step at every point of the default grid.
    fn dry_run(&self, s: &Sampler) -> Option<Diagnostic> {
        let ev = Evaluator::new(&self.p);
        let n = s.default_grid.len() - 1;
        for k in 0..n {
            let env = Env {
                t: s.default_grid[k],
                s: Some(s.default_grid[k + 1]),
                r: if k > 0 {
                    Some(s.default_grid[k - 1])
                } else {
                    None
                },
                step: Some((k, n)),
                sampler_params: self.sampler_values.clone(),
                fields: Vec::new(),
                params: Vec::new(),
            };
            if let Err((span, msg, code)) = self.dry_stmts(&ev, &s.step, &env) {
                let d = Diagnostic::error(
                    code,
                    span,
                    format!(
                        "sampler `{}` is invalid at step {k} (t = {}, s = {}): {msg}",
                        s.name,
                        fmt(env.t),
                        fmt(env.s.unwrap())
                    ),
                )
                .with_label(msg)
                .with_note(
                    "per-step coefficients are evaluated in f64 at every step of the default grid",
                );
                return Some(d);
            }
        }
        None
    }

    fn dry_stmts(
        &self,
        ev: &Evaluator,
        stmts: &[Stmt],
        env: &Env,
    ) -> Result<(), (Span, String, Code)> {
        for st in stmts {
            match &st.kind {
                StmtKind::Let { value, .. } | StmtKind::Assign { value, .. } => {
                    self.dry_expr(ev, *value, env)?
                }
                StmtKind::Draw { dist, .. } | StmtKind::Sample { dist, .. } => {
                    self.dry_expr(ev, *dist, env)?;
                    self.dry_dist(ev, *dist, env)?;
                }
                StmtKind::If {
                    cond,
                    then,
                    otherwise,
                } => match ev.eval(*cond, env) {
                    Ok(Value::Bool(true)) => self.dry_stmts(ev, then, env)?,
                    Ok(Value::Bool(false)) => self.dry_stmts(ev, otherwise, env)?,
                    Err(EvalError::Hazard { span, message }) => {
                        return Err((span, message, Code::ScheduleHazard))
                    }
                    _ => {}
                },
                StmtKind::Repeat { count, body } => {
                    self.dry_expr(ev, *count, env)?;
                    // The count as the step runs it: a whole number from 0 to the limit.
                    if let Ok(Value::Real(n)) = ev.eval(*count, env) {
                        let most = crate::limits::MAX_REPEAT;
                        if !(n >= 0.0 && n.fract() == 0.0 && n <= most as f64) {
                            return Err((
                                self.p.expr(*count).span,
                                format!(
                                    "`repeat` runs a whole number of times from 0 to {most}, but this count is {}",
                                    super::schedules::fmt(n)
                                ),
                                Code::Sampler,
                            ));
                        }
                    }
                    self.dry_stmts(ev, body, env)?;
                }
            }
        }
        Ok(())
    }

    /// The parameters of a draw that are known per step must lie in their domains.
    fn dry_dist(
        &self,
        ev: &Evaluator,
        dist: ExprId,
        env: &Env,
    ) -> Result<(), (Span, String, Code)> {
        let ExprKind::Dist { family, params } = &self.p.expr(dist).kind else {
            return Ok(());
        };
        let host = |e: ExprId| self.ty(e).stage().is_some_and(|s| s.rank() <= 1);
        let val = |e: ExprId| if host(e) { ev.eval(e, env).ok() } else { None };
        let span = |e: ExprId| self.p.expr(e).span;
        match family {
            Family::Normal => {
                if let Some(Value::Real(v)) = val(params[1]) {
                    if v < 0.0 {
                        return Err((
                            span(params[1]),
                            format!("a negative variance ({})", fmt(v)),
                            Code::Domain,
                        ));
                    }
                }
            }
            Family::Uniform => {
                if let (Some(Value::Real(lo)), Some(Value::Real(hi))) =
                    (val(params[0]), val(params[1]))
                {
                    if lo >= hi {
                        return Err((
                            span(dist),
                            format!("an empty interval [{}, {})", fmt(lo), fmt(hi)),
                            Code::Domain,
                        ));
                    }
                }
            }
            Family::Bernoulli => {
                if let Some(Value::Real(p)) = val(params[0]) {
                    if !(0.0..=1.0).contains(&p) {
                        return Err((
                            span(params[0]),
                            format!("a probability outside [0, 1] ({})", fmt(p)),
                            Code::Domain,
                        ));
                    }
                }
            }
            Family::Categorical => {
                if let Some(Value::Vec(p)) = val(params[0]) {
                    let sum: f64 = p.iter().sum();
                    if p.iter().any(|x| *x < -1e-9) || (sum - 1.0).abs() > 1e-6 {
                        return Err((
                            span(params[0]),
                            format!(
                                "class probabilities off the simplex (they sum to {})",
                                fmt(sum)
                            ),
                            Code::Domain,
                        ));
                    }
                }
            }
            Family::Delta => {}
        }
        Ok(())
    }

    /// Evaluate the largest per-step parts of an expression, following only branches that are taken.
    fn dry_expr(&self, ev: &Evaluator, e: ExprId, env: &Env) -> Result<(), (Span, String, Code)> {
        let x = self.p.expr(e);
        let rank = x.ty.stage().map_or(3, Stage::rank);
        if rank <= 1 && matches!(x.ty, Ty::Value { .. }) {
            return match ev.eval(e, env) {
                Err(EvalError::Hazard { span, message })
                | Err(EvalError::Undefined { span, message }) => {
                    Err((span, message, Code::ScheduleHazard))
                }
                _ => Ok(()),
            };
        }
        if let ExprKind::If {
            cond,
            then,
            otherwise,
        } = x.kind
        {
            if self.ty(cond).stage().is_some_and(|s| s.rank() <= 1) {
                return match ev.eval(cond, env) {
                    Ok(Value::Bool(true)) => self.dry_expr(ev, then, env),
                    Ok(Value::Bool(false)) => self.dry_expr(ev, otherwise, env),
                    _ => Ok(()),
                };
            }
        }
        let mut kids = Vec::new();
        children(&x.kind, &mut kids);
        if let ExprKind::Local(l) = x.kind {
            // Locals were checked where they were bound.
            let _ = l;
        }
        for k in kids {
            self.dry_expr(ev, k, env)?;
        }
        Ok(())
    }
}

/// The first statement that updates `field`.
fn assign_span(stmts: &[Stmt], field: FieldId) -> Option<Span> {
    stmts.iter().find_map(|s| match &s.kind {
        StmtKind::Assign { field: f, .. } | StmtKind::Sample { field: f, .. } if *f == field => {
            Some(s.span)
        }
        StmtKind::If {
            then, otherwise, ..
        } => assign_span(then, field).or_else(|| assign_span(otherwise, field)),
        StmtKind::Repeat { body, .. } => assign_span(body, field),
        _ => None,
    })
}

fn assigned(stmts: &[Stmt], out: &mut Vec<FieldId>) {
    for s in stmts {
        match &s.kind {
            StmtKind::Assign { field, .. } | StmtKind::Sample { field, .. }
                if !out.contains(field) =>
            {
                out.push(*field)
            }
            StmtKind::If {
                then, otherwise, ..
            } => {
                assigned(then, out);
                assigned(otherwise, out);
            }
            StmtKind::Repeat { body, .. } => assigned(body, out),
            _ => {}
        }
    }
}

/// The expressions directly inside a statement list.
pub fn stmt_exprs(stmts: &[Stmt], out: &mut Vec<ExprId>) {
    for s in stmts {
        match &s.kind {
            StmtKind::Let { value, .. } | StmtKind::Assign { value, .. } => out.push(*value),
            StmtKind::Draw { dist, .. } | StmtKind::Sample { dist, .. } => out.push(*dist),
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                out.push(*cond);
                stmt_exprs(then, out);
                stmt_exprs(otherwise, out);
            }
            StmtKind::Repeat { count, body } => {
                out.push(*count);
                stmt_exprs(body, out);
            }
        }
    }
}

fn walk(p: &Process, stmts: &[Stmt], mut f: impl FnMut(ExprId, &Expr)) {
    let mut stack = Vec::new();
    stmt_exprs(stmts, &mut stack);
    let mut seen = std::collections::HashSet::new();
    while let Some(e) = stack.pop() {
        if !seen.insert(e) {
            continue;
        }
        let x = p.expr(e);
        f(e, x);
        children(&x.kind, &mut stack);
    }
}

fn posterior_uses(p: &Process, stmts: &[Stmt], out: &mut Vec<(u32, Span)>) {
    walk(p, stmts, |_, x| {
        if let ExprKind::Posterior { index, .. } = x.kind {
            out.push((index, x.span));
        }
    });
}

/// The network calls of a statement list (a call inside `repeat` counts once).
pub fn net_calls(p: &Process, stmts: &[Stmt], out: &mut Vec<ExprId>) {
    walk(p, stmts, |id, x| {
        if matches!(x.kind, ExprKind::NetCall { .. }) {
            out.push(id);
        }
    });
}
