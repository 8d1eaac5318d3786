//! `diffc explain`: the checked process, printed for people. The text is stable, so it is
//! also what the spec snapshots record.

use crate::check::net_calls_of;
use crate::entries::{entries, Extent, Port};
use crate::syntax::ast::{BinOp, UnOp};
use crate::typed::*;
use std::fmt::Write;

pub fn explain(module: &Module, only: Option<&str>) -> Result<String, String> {
    if let Some(name) = only {
        if !module.processes.iter().any(|p| p.name == name) {
            let names: Vec<&str> = module.processes.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "no process `{name}` (the file has: {})",
                names.join(", ")
            ));
        }
    }
    let mut out = String::new();
    for p in module
        .processes
        .iter()
        .filter(|p| only.is_none_or(|n| n == p.name))
    {
        if !out.is_empty() {
            out.push('\n');
        }
        process(&mut out, p);
    }
    Ok(out)
}

fn fmt_num(x: f64) -> String {
    if x == x.round() && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else if x.abs() >= 1e-4 && x.abs() < 1e6 {
        let s = format!("{x:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{x:.4e}")
    }
}

fn fmt_value(v: &Value) -> String {
    match v {
        Value::Real(x) => fmt_num(*x),
        Value::Bool(b) => b.to_string(),
        Value::Vec(xs) => format!(
            "[{}]",
            xs.iter()
                .map(|x| fmt_num(*x))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Mat(k, xs) => {
            let rows: Vec<String> = (0..*k)
                .take(3)
                .map(|i| fmt_value(&Value::Vec(xs[i * k..(i + 1) * k].to_vec())))
                .collect();
            format!(
                "mat<{k}> [{}{}]",
                rows.join(", "),
                if *k > 3 { ", …" } else { "" }
            )
        }
        Value::List(vs) => format!(
            "[{}]",
            vs.iter().map(fmt_value).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn shape(p: &Process, s: &Shape) -> String {
    let dims: Vec<&str> = s
        .dims
        .iter()
        .map(|d| p.dims[d.index()].name.as_str())
        .collect();
    let mut out = format!("[{}]", dims.join(", "));
    if s.sym {
        out.push_str(" sym");
    }
    if let Some(m) = s.mask {
        write!(out, " masked({})", p.masks[m.index()].name).unwrap();
    }
    out
}

fn port(p: &Process, port: &Port) -> String {
    let ext = match &port.extent {
        Extent::Field(s) => shape(p, s),
        Extent::Sample => " per sample".into(),
        Extent::Scalar => String::new(),
    };
    format!("{}: {}{}", port.name, port.elem.describe(), ext)
}

fn process(out: &mut String, p: &Process) {
    let t = &p.time;
    writeln!(out, "process {}", p.name).unwrap();
    let kind = match t.kind {
        TimeKind::Discrete => format!("{}..{} (discrete)", fmt_num(t.lo), fmt_num(t.hi)),
        TimeKind::Continuous => format!("[{}, {}] (continuous)", fmt_num(t.lo), fmt_num(t.hi)),
    };
    let dir = if t.ascending() { "ascends" } else { "descends" };
    writeln!(
        out,
        "  time {} : {kind}; data at {} = {}; sampling {dir}",
        t.name,
        t.name,
        fmt_num(t.data_at)
    )
    .unwrap();
    if !p.consts.is_empty() {
        let cs: Vec<String> = p
            .consts
            .iter()
            .map(|c| format!("{} = {}", c.name, fmt_num(c.value)))
            .collect();
        writeln!(out, "  constants: {}", cs.join(", ")).unwrap();
    }
    if !p.dims.is_empty() {
        let ds: Vec<&str> = p.dims.iter().map(|d| d.name.as_str()).collect();
        writeln!(out, "  dimensions: {}", ds.join(", ")).unwrap();
    }
    for m in &p.masks {
        writeln!(
            out,
            "  mask {} : bool[{}]",
            m.name,
            p.dims[m.dim.index()].name
        )
        .unwrap();
    }
    for prm in &p.params {
        let d = prm
            .default
            .as_ref()
            .map(|v| format!(" = {}", fmt_value(v)))
            .unwrap_or_default();
        writeln!(out, "  param {} : {}{d}", prm.name, prm.elem.describe()).unwrap();
    }
    writeln!(out, "  fields:").unwrap();
    for f in &p.fields {
        let role = if p.forwards.iter().any(|k| {
            k.target.field
                == FieldId(p.fields.iter().position(|x| x.name == f.name).unwrap() as u32)
        }) {
            "diffused"
        } else if p
            .forwards
            .iter()
            .any(|k| k.given.iter().any(|g| p.field(g.field).name == f.name))
        {
            "data"
        } else {
            "input or output"
        };
        writeln!(
            out,
            "    {} : {}{}  ({role})",
            f.name,
            f.elem.describe(),
            shape(p, &f.shape)
        )
        .unwrap();
    }
    if !p.schedules.is_empty() {
        writeln!(out, "  schedules:").unwrap();
        for s in &p.schedules {
            let mut cons = String::new();
            if let Some((lo, lc, hi, hc)) = s.interval {
                write!(
                    cons,
                    " in {}{}, {}{}",
                    if lc { '[' } else { '(' },
                    fmt_num(lo),
                    fmt_num(hi),
                    if hc { ']' } else { ')' }
                )
                .unwrap();
            }
            if let Some(m) = s.monotone {
                write!(
                    cons,
                    " {}",
                    if m == crate::syntax::ast::Monotone::Increasing {
                        "increasing"
                    } else {
                        "decreasing"
                    }
                )
                .unwrap();
            }
            writeln!(
                out,
                "    {}({}) : {}{cons} = {}{}",
                s.name,
                t.name,
                s.elem.describe(),
                show(p, s.body),
                if s.derived {
                    "  (derived from a one-step kernel)"
                } else {
                    ""
                }
            )
            .unwrap();
            writeln!(out, "      {}", sample_schedule(p, s)).unwrap();
        }
    }
    let kernels = p.forwards.iter().chain(&p.priors).chain(&p.posteriors);
    writeln!(out, "  distributions:").unwrap();
    for k in kernels {
        let what = match k.kind {
            KernelKind::Marginal if k.derived => {
                "forward marginal (derived from the one-step kernel)"
            }
            KernelKind::Marginal => "forward marginal",
            KernelKind::OneStep => "forward one-step",
            KernelKind::Prior => "prior",
            KernelKind::Posterior if k.approximate.is_some() => "posterior (marked #[approximate])",
            KernelKind::Posterior if k.derived => "posterior (derived by Bayes' rule)",
            KernelKind::Posterior => "posterior",
        };
        let target = p.version_name(k.target);
        let given: Vec<String> = k.given.iter().map(|g| p.version_name(*g)).collect();
        let cond = if given.is_empty() {
            String::new()
        } else {
            format!(" | {}", given.join(", "))
        };
        writeln!(out, "    {what}: {target}{cond} ~ {}", show(p, k.dist)).unwrap();
        for b in &k.bindings {
            let l = &p.locals[b.index()];
            writeln!(
                out,
                "      where {} = {}",
                l.name,
                show(p, l.value.unwrap())
            )
            .unwrap();
        }
        if let Some(a) = k.affine {
            writeln!(
                out,
                "      affine Gaussian: alpha = {}, sigma^2 = {}",
                show(p, a.alpha),
                show(p, a.var)
            )
            .unwrap();
        }
    }
    if !p.networks.is_empty() {
        writeln!(out, "  networks:").unwrap();
        for n in &p.networks {
            let ins: Vec<String> = n
                .inputs
                .iter()
                .map(|i| match i {
                    NetInput::Field { expr, .. } | NetInput::Time { expr } => show(p, *expr),
                })
                .collect();
            let outs: Vec<String> = n
                .outputs
                .iter()
                .map(|o| {
                    let f = p.field(o.field);
                    let pre = match o.precond {
                        Some((skip, scale)) => format!(
                            " preconditioned({}, {}) = {} * {} + {} * {}",
                            show(p, skip),
                            show(p, scale),
                            show(p, skip),
                            f.name,
                            show(p, scale),
                            n.name
                        ),
                        None => String::new(),
                    };
                    format!(
                        "{}({}){pre} : {}{}",
                        o.kind.name(),
                        f.name,
                        o.ty.elem().unwrap().describe(),
                        shape(p, &f.shape)
                    )
                })
                .collect();
            writeln!(
                out,
                "    {}({}) -> {}",
                n.name,
                ins.join(", "),
                outs.join(", ")
            )
            .unwrap();
        }
    }
    let conv = conversions(p);
    if !conv.is_empty() {
        writeln!(out, "  conversions inserted:").unwrap();
        for c in conv {
            writeln!(out, "    {c}").unwrap();
        }
    }
    for l in &p.losses {
        writeln!(out, "  loss {} = {}", l.name, show(p, l.value)).unwrap();
        for b in &l.bindings {
            let loc = &p.locals[b.index()];
            writeln!(
                out,
                "    where {} = {}",
                loc.name,
                show(p, loc.value.unwrap())
            )
            .unwrap();
        }
        if let Some(d) = &l.time_dist {
            time_dist(out, p, &l.name, d);
        }
    }
    for s in &p.samplers {
        let params: Vec<String> = s
            .params
            .iter()
            .filter(|x| x.overridable)
            .map(|x| format!("{} = {}", x.name, show(p, x.value)))
            .collect();
        writeln!(out, "  sampler {}({})", s.name, params.join(", ")).unwrap();
        let g = &s.default_grid;
        let head: Vec<String> = g.iter().take(3).map(|x| fmt_num(*x)).collect();
        let tail = if g.len() > 4 {
            format!(", …, {}", fmt_num(*g.last().unwrap()))
        } else if g.len() == 4 {
            format!(", {}", fmt_num(g[3]))
        } else {
            String::new()
        };
        writeln!(
            out,
            "    grid {}: {} steps: {}{tail}",
            grid_name(p, &s.grid),
            g.len() - 1,
            head.join(", ")
        )
        .unwrap();
        let history: Vec<String> = s
            .history
            .iter()
            .map(|h| p.locals[h.index()].name.clone())
            .collect();
        writeln!(
            out,
            "    network calls per step: {}{}",
            calls_text(p, &s.step),
            if history.is_empty() {
                String::new()
            } else {
                format!("; keeps the previous step's {}", history.join(", "))
            }
        )
        .unwrap();
        if !s.init.is_empty() {
            writeln!(out, "    init:").unwrap();
            stmts(out, p, &s.init, 6);
        }
        writeln!(out, "    step:").unwrap();
        stmts(out, p, &s.step, 6);
        if !s.finalize.is_empty() {
            writeln!(out, "    finalize:").unwrap();
            stmts(out, p, &s.finalize, 6);
        }
    }
    writeln!(out, "  entry points:").unwrap();
    for e in entries(p) {
        let ins: Vec<String> = e.inputs.iter().map(|x| port(p, x)).collect();
        let outs: Vec<String> = e.outputs.iter().map(|x| port(p, x)).collect();
        writeln!(
            out,
            "    {}({}) -> ({})",
            e.name,
            ins.join(", "),
            outs.join(", ")
        )
        .unwrap();
    }
}

/// Network calls of a statement list, with the loops they sit in: `2`, `steps × 1`, `1 + n × 2`.
/// A call is counted once however many times its result is read.
fn calls_text(p: &Process, stmts: &[Stmt]) -> String {
    fn new_calls(p: &Process, stmts: &[Stmt], seen: &mut Vec<ExprId>) -> usize {
        let mut calls = Vec::new();
        net_calls_of(p, stmts, &mut calls);
        let before = seen.len();
        for c in calls {
            if !seen.contains(&c) {
                seen.push(c);
            }
        }
        seen.len() - before
    }
    fn walk(
        p: &Process,
        stmts: &[Stmt],
        seen: &mut Vec<ExprId>,
        outer: &mut usize,
        loops: &mut Vec<String>,
    ) {
        for s in stmts {
            match &s.kind {
                StmtKind::Repeat { count, body } => {
                    let n = new_calls(p, body, seen);
                    loops.push(format!("{} × {n}", show(p, *count)));
                }
                StmtKind::If {
                    then, otherwise, ..
                } => {
                    // The branches of a step are exclusive: count the larger.
                    let (mut a, mut b) = (0, 0);
                    walk(p, then, seen, &mut a, loops);
                    walk(p, otherwise, seen, &mut b, loops);
                    *outer += a.max(b);
                }
                _ => *outer += new_calls(p, std::slice::from_ref(s), seen),
            }
        }
    }
    let (mut seen, mut outer, mut loops) = (Vec::new(), 0, Vec::new());
    walk(p, stmts, &mut seen, &mut outer, &mut loops);
    let mut parts = Vec::new();
    if outer > 0 || loops.is_empty() {
        parts.push(outer.to_string());
    }
    parts.extend(loops);
    parts.join(" + ")
}

/// A grid as written: `uniform(steps)`, `karras(steps, rho, sigma_min)`, ….
pub(crate) fn grid_name(p: &Process, g: &Grid) -> String {
    match g {
        Grid::All => "all".into(),
        Grid::Uniform(n) => format!("uniform({})", show(p, *n)),
        Grid::Quadratic(n) => format!("quadratic({})", show(p, *n)),
        Grid::LogSnr(n) => format!("logsnr({})", show(p, *n)),
        Grid::Linspace(n) => format!("linspace({})", show(p, *n)),
        Grid::Karras {
            steps,
            rho,
            sigma_min,
        } => match sigma_min {
            Some(m) => format!(
                "karras({}, {}, {})",
                show(p, *steps),
                show(p, *rho),
                show(p, *m)
            ),
            None => format!("karras({}, {})", show(p, *steps), show(p, *rho)),
        },
        Grid::List(_) => "list".into(),
    }
}

/// A loss's declared training time distribution: what `sample_t.LOSS` draws.
fn time_dist(out: &mut String, p: &Process, loss: &str, d: &TimeDist) {
    let t = &p.time;
    let domain = match t.kind {
        TimeKind::Discrete => format!("{}..{}", fmt_num(t.lo), fmt_num(t.hi)),
        TimeKind::Continuous => format!("[{}, {}]", fmt_num(t.lo), fmt_num(t.hi)),
    };
    match &d.kind {
        TimeDistKind::Uniform => {
            writeln!(
                out,
                "    time {} ~ Uniform over {domain} (sample_t.{loss}, as sample_t)",
                t.name
            )
            .unwrap();
        }
        TimeDistKind::LogNormal { mean, std } => {
            writeln!(
                out,
                "    time {} ~ LogNormal({}, {}): log {} ~ Normal({}, {}^2), clamped to {domain} (sample_t.{loss})",
                t.name,
                fmt_num(*mean),
                fmt_num(*std),
                t.name,
                fmt_num(*mean),
                fmt_num(*std)
            )
            .unwrap();
            // The probability of each end: Φ((log lo − mean)/std) and 1 − Φ((log hi − mean)/std).
            let below = if t.lo > 0.0 {
                normal_cdf((t.lo.ln() - mean) / std)
            } else {
                0.0
            };
            let above = if t.hi > 0.0 {
                normal_cdf(-(t.hi.ln() - mean) / std)
            } else {
                1.0
            };
            writeln!(
                out,
                "      clamped: P({} < {}) = {}, P({} > {}) = {}",
                t.name,
                fmt_num(t.lo),
                fmt_prob(below),
                t.name,
                fmt_num(t.hi),
                fmt_prob(above)
            )
            .unwrap();
        }
        TimeDistKind::Weighted { weight, probs } => {
            writeln!(
                out,
                "    time {} ~ Weighted: P({}) ∝ {} over {domain} (sample_t.{loss}, with weight = 1/(N·P({})), N = {})",
                t.name,
                t.name,
                show(p, *weight),
                t.name,
                probs.len()
            )
            .unwrap();
            let n = probs.len();
            let mut idx = vec![0, 1, n / 2, n - 1];
            idx.dedup();
            idx.retain(|i| *i < n);
            let parts: Vec<String> = idx
                .iter()
                .map(|i| {
                    format!(
                        "P({}={}) = {}",
                        t.name,
                        fmt_num(t.lo + *i as f64),
                        fmt_prob(probs[*i])
                    )
                })
                .collect();
            writeln!(out, "      {}", parts.join("  ")).unwrap();
        }
    }
}

fn fmt_prob(x: f64) -> String {
    if x == 0.0 || x >= 1e-4 {
        fmt_num(x)
    } else {
        format!("{x:.2e}")
    }
}

/// The standard normal CDF, from the complementary error function of Numerical Recipes
/// (`erfcc`, fractional error below 1.2e-7): enough for a printout.
fn normal_cdf(x: f64) -> f64 {
    let z = -x / std::f64::consts::SQRT_2;
    let a = z.abs();
    let k = 1.0 / (1.0 + 0.5 * a);
    let poly = -a * a - 1.26551223
        + k * (1.00002368
            + k * (0.37409196
                + k * (0.09678418
                    + k * (-0.18628806
                        + k * (0.27886807
                            + k * (-1.13520398
                                + k * (1.48851587 + k * (-0.82215223 + k * 0.17087277))))))));
    let erfc = k * poly.exp();
    0.5 * if z >= 0.0 { erfc } else { 2.0 - erfc }
}

fn sample_schedule(p: &Process, s: &Schedule) -> String {
    let t = &p.time;
    let points: Vec<f64> = match t.kind {
        TimeKind::Discrete => {
            let (lo, hi) = (t.lo, t.hi);
            let mid = ((lo + hi) / 2.0).floor();
            let mut v = vec![lo, lo + 1.0, mid, hi];
            v.dedup();
            v.retain(|x| *x <= hi);
            v
        }
        TimeKind::Continuous => (0..=4)
            .map(|i| t.lo + (t.hi - t.lo) * i as f64 / 4.0)
            .collect(),
    };
    let ev = crate::check::eval::Evaluator::new(p);
    let parts: Vec<String> = points
        .iter()
        .map(|x| {
            let v = match t.kind {
                TimeKind::Discrete => s.table.get((x - (t.lo - 1.0)) as usize).cloned().flatten(),
                TimeKind::Continuous => ev
                    .eval(
                        s.body,
                        &crate::check::eval::Env {
                            t: *x,
                            ..Default::default()
                        },
                    )
                    .ok(),
            };
            format!(
                "{}={}: {}",
                t.name,
                fmt_num(*x),
                v.map(|v| fmt_value(&v)).unwrap_or_else(|| "—".into())
            )
        })
        .collect();
    parts.join("  ")
}

/// The parameterisation conversions the checker inserted, with their formulas.
fn conversions(p: &Process) -> Vec<String> {
    let mut out = Vec::new();
    for (i, e) in p.exprs.iter().enumerate() {
        let ExprKind::NetOut { call, output, kind } = e.kind else {
            continue;
        };
        let ExprKind::NetCall { net, args } = &p.expr(call).kind else {
            continue;
        };
        let n = p.network(*net);
        let o = &n.outputs[output as usize];
        if o.kind == kind {
            continue;
        }
        let Some(k) = p.gaussian_marginal_given(o.field) else {
            continue;
        };
        let a = k.affine.unwrap();
        let state = n
            .inputs
            .iter()
            .position(|x| matches!(x, NetInput::Field { field, .. } if *field == k.target.field));
        let time = n
            .inputs
            .iter()
            .position(|x| matches!(x, NetInput::Time { .. }));
        let (Some(si), Some(ti)) = (state, time) else {
            continue;
        };
        let x = show(p, args[si]);
        let at = show(p, args[ti]);
        let alpha = subst_time(&show(p, a.alpha), &p.time.name, &at);
        let sigma = format!("sqrt({})", subst_time(&show(p, a.var), &p.time.name, &at));
        let native = format!("{}.{}", n.name, o.kind.name());
        let formula = match (o.kind, kind) {
            (ParamKind::Eps, ParamKind::X0) => format!("({x} - {sigma} * {native}) / ({alpha})"),
            (ParamKind::Eps, ParamKind::Score) => format!("-{native} / {sigma}"),
            (ParamKind::Eps, ParamKind::V) => format!("({alpha}) * {native} - {sigma} * x0"),
            (ParamKind::X0, ParamKind::Eps) => format!("({x} - ({alpha}) * {native}) / {sigma}"),
            (ParamKind::Score, ParamKind::Eps) => format!("-{sigma} * {native}"),
            (ParamKind::Score, ParamKind::X0) => {
                format!("({x} + {sigma}^2 * {native}) / ({alpha})")
            }
            (ParamKind::V, ParamKind::Eps) => {
                format!("(({alpha}) * {native} + {sigma} * {x}) / (({alpha})^2 + {sigma}^2)")
            }
            (ParamKind::V, ParamKind::X0) => {
                format!("(({alpha}) * {x} - {sigma} * {native}) / (({alpha})^2 + {sigma}^2)")
            }
            (ParamKind::Velocity, _) | (_, ParamKind::Velocity) => match a.rates {
                Some(r) => {
                    let da = subst_time(&show(p, r.dalpha), &p.time.name, &at);
                    let ds = subst_time(&show(p, r.dsigma), &p.time.name, &at);
                    let sg = subst_time(&show(p, r.sigma), &p.time.name, &at);
                    let den = format!("({alpha}) * ({ds}) - ({da}) * {sg}");
                    match (o.kind, kind) {
                        (ParamKind::Velocity, ParamKind::X0) => {
                            format!("(({ds}) * {x} - {sg} * {native}) / ({den})")
                        }
                        (ParamKind::Velocity, ParamKind::Eps) => {
                            format!("(({alpha}) * {native} - ({da}) * {x}) / ({den})")
                        }
                        (ParamKind::Velocity, _) => {
                            format!("{} from eps and x0 of {native}", kind.name())
                        }
                        _ => format!("({da}) * x0 + ({ds}) * eps, from {native}"),
                    }
                }
                None => format!("{} from {}", kind.name(), o.kind.name()),
            },
            _ => format!("{} from {}", kind.name(), o.kind.name()),
        };
        let line = format!("{}.{} at ({x}, {at}) = {formula}", n.name, kind.name());
        if !out.contains(&line) {
            out.push(line);
        }
        let _ = i;
    }
    out
}

fn subst_time(text: &str, t: &str, at: &str) -> String {
    if t == at {
        return text.to_string();
    }
    // Replace the time variable as a whole word.
    let mut out = String::new();
    let chars: Vec<char> = text.chars().collect();
    let tc: Vec<char> = t.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let word = |c: char| c.is_alphanumeric() || c == '_';
        if chars[i..].starts_with(&tc)
            && (i == 0 || !word(chars[i - 1]))
            && chars.get(i + tc.len()).is_none_or(|c| !word(*c))
        {
            out.push_str(at);
            i += tc.len();
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn stmts(out: &mut String, p: &Process, ss: &[Stmt], indent: usize) {
    let pad = " ".repeat(indent);
    for s in ss {
        match &s.kind {
            StmtKind::Let { local, value } => {
                let l = &p.locals[local.index()];
                writeln!(
                    out,
                    "{pad}let {} = {}    [{}]",
                    l.name,
                    show(p, *value),
                    stage_name(&p.expr(*value).ty)
                )
                .unwrap();
            }
            StmtKind::Draw {
                local,
                dist,
                shape: sh,
            } => {
                writeln!(
                    out,
                    "{pad}let {} ~ {} over {}",
                    p.locals[local.index()].name,
                    show(p, *dist),
                    shape(p, sh)
                )
                .unwrap();
            }
            StmtKind::Assign { field, value } => {
                writeln!(out, "{pad}{} = {}", p.field(*field).name, show(p, *value)).unwrap()
            }
            StmtKind::Sample { field, dist } => {
                writeln!(out, "{pad}{} ~ {}", p.field(*field).name, show(p, *dist)).unwrap()
            }
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                writeln!(out, "{pad}if {}:", show(p, *cond)).unwrap();
                stmts(out, p, then, indent + 2);
                if !otherwise.is_empty() {
                    writeln!(out, "{pad}else:").unwrap();
                    stmts(out, p, otherwise, indent + 2);
                }
            }
            StmtKind::Repeat { count, body } => {
                let mut calls = Vec::new();
                net_calls_of(p, body, &mut calls);
                writeln!(
                    out,
                    "{pad}repeat {} ({} network call{} each):",
                    show(p, *count),
                    calls.len(),
                    if calls.len() == 1 { "" } else { "s" }
                )
                .unwrap();
                stmts(out, p, body, indent + 2);
            }
        }
    }
}

fn stage_name(ty: &Ty) -> &'static str {
    match ty.stage() {
        Some(Stage::Const) => "constant",
        Some(Stage::Host) => "per step, host",
        Some(Stage::Sample) => "per sample",
        Some(Stage::Field(_)) => "per element",
        None => "network output",
    }
}

fn prec(op: BinOp) -> u8 {
    match op {
        BinOp::Or => 1,
        BinOp::And => 2,
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => 3,
        BinOp::Add | BinOp::Sub => 4,
        BinOp::Mul | BinOp::Div | BinOp::MatMul => 5,
        BinOp::Pow => 7,
    }
}

/// Print a typed expression as source-like text.
pub fn show(p: &Process, id: ExprId) -> String {
    show_prec(p, id, 0)
}

fn show_prec(p: &Process, id: ExprId, outer: u8) -> String {
    let e = p.expr(id);
    let list = |ids: &[ExprId]| {
        ids.iter()
            .map(|i| show(p, *i))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (text, own) = match &e.kind {
        ExprKind::Number(x) => (fmt_num(*x), 9),
        ExprKind::Bool(b) => (b.to_string(), 9),
        ExprKind::Const(c) => (p.consts[c.index()].name.clone(), 9),
        ExprKind::Param(x) => (p.params[x.index()].name.clone(), 9),
        ExprKind::SamplerParam { sampler, index } => (
            p.samplers[*sampler as usize].params[*index as usize]
                .name
                .clone(),
            9,
        ),
        ExprKind::Time(TimeRef::T) => (p.time.name.clone(), 9),
        ExprKind::Time(TimeRef::S) => ("s".into(), 9),
        ExprKind::Time(TimeRef::R) => ("r".into(), 9),
        ExprKind::Step(StepVar::K) => ("k".into(), 9),
        ExprKind::Step(StepVar::First) => ("first".into(), 9),
        ExprKind::Step(StepVar::Last) => ("last".into(), 9),
        ExprKind::Schedule { id: s, at } => {
            (format!("{}({})", p.schedule(*s).name, show(p, *at)), 9)
        }
        ExprKind::Field(r) => (p.version_name(*r), 9),
        ExprKind::State(f) => (p.field(*f).name.clone(), 9),
        ExprKind::Noise(f) => (format!("eps_{}", p.field(*f).name), 9),
        ExprKind::Local(l) => (p.locals[l.index()].name.clone(), 9),
        ExprKind::Unary { op, arg } => {
            let a = show_prec(p, *arg, 6);
            (
                if *op == UnOp::Neg {
                    format!("-{a}")
                } else {
                    format!("not {a}")
                },
                6,
            )
        }
        ExprKind::Binary { op, lhs, rhs } => {
            let q = prec(*op);
            let (lq, rq) = if *op == BinOp::Pow {
                (q + 1, q)
            } else {
                (q, q + 1)
            };
            (
                format!(
                    "{} {} {}",
                    show_prec(p, *lhs, lq),
                    op.symbol(),
                    show_prec(p, *rhs, rq)
                ),
                q,
            )
        }
        ExprKind::Call { func, args } => {
            let args = match (func, e.ty.elem()) {
                (Builtin::Ones, Some(Elem::Mat(k))) => format!("{k}, {k}"),
                (_, Some(Elem::Vec(k) | Elem::Mat(k))) if args.is_empty() => k.to_string(),
                (Builtin::OneHot, Some(Elem::Vec(k)))
                    if p.expr(args[0]).ty.elem() != Some(Elem::Cat(k)) =>
                {
                    format!("{}, {k}", show(p, args[0]))
                }
                _ => list(args),
            };
            (format!("{}({args})", func.name()), 9)
        }
        ExprKind::If {
            cond,
            then,
            otherwise,
        } => (
            format!(
                "if {} then {} else {}",
                show(p, *cond),
                show(p, *then),
                show(p, *otherwise)
            ),
            0,
        ),
        ExprKind::Index { base, index } => (
            format!("{}[{}]", show_prec(p, *base, 9), show(p, *index)),
            9,
        ),
        ExprKind::List(items) => (format!("[{}]", list(items)), 9),
        ExprKind::NetCall { net, args } => (format!("{}({})", p.network(*net).name, list(args)), 9),
        ExprKind::NetOut { call, output, kind } => {
            let ExprKind::NetCall { net, .. } = p.expr(*call).kind else {
                unreachable!()
            };
            let n = p.network(net);
            let o = &n.outputs[*output as usize];
            let pick = if n.outputs.len() > 1 {
                format!(".{}", p.field(o.field).name)
            } else {
                String::new()
            };
            let conv = if o.kind == *kind {
                String::new()
            } else {
                format!(".{}", kind.name())
            };
            (format!("{}{pick}{conv}", show_prec(p, *call, 9)), 9)
        }
        ExprKind::Prev(l) => (format!("prev({})", p.locals[l.index()].name), 9),
        ExprKind::Dist { family, params } => (format!("{}({})", family.name(), list(params)), 9),
        ExprKind::Posterior { given, mixture, .. } => {
            let mut parts: Vec<String> = given
                .iter()
                .map(|(r, v)| format!("{} = {}", p.version_name(*r), show(p, *v)))
                .collect();
            if let Some((r, v)) = mixture {
                parts.push(format!("{} ~ {}", p.version_name(*r), show(p, *v)));
            }
            (format!("posterior({})", parts.join(", ")), 9)
        }
        ExprKind::Prior { index } => (
            format!(
                "prior({})",
                p.field(p.priors[*index as usize].target.field).name
            ),
            9,
        ),
    };
    if own < outer {
        format!("({text})")
    } else {
        text
    }
}

/// `diffc explain --table NAME`: every value of schedule `NAME` in f64, one line per time, for
/// comparing a process with reference code value by value.
///
/// Discrete time: every `t` of the domain, and the step below it where the formula defines it
/// (the value a posterior at the first step reads). Continuous time: `points` evenly spaced times
/// from `lo` to `hi`, ends included (by default the checker's 1001). Lines that are not data start
/// with `#`, so `numpy.loadtxt` reads the text as it is; numbers are printed in the shortest form
/// that reads back as the same f64, a `vec<K>` as K columns and a `mat<K>` as K·K columns in
/// row-major order.
pub fn table(
    module: &Module,
    only: Option<&str>,
    name: &str,
    points: Option<usize>,
) -> Result<String, String> {
    let procs: Vec<&Process> = module
        .processes
        .iter()
        .filter(|p| only.is_none_or(|n| n == p.name))
        .collect();
    if let Some(n) = only {
        if procs.is_empty() {
            let names: Vec<&str> = module.processes.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "no process `{n}` (the file has: {})",
                names.join(", ")
            ));
        }
    }
    let with: Vec<&Process> = procs
        .iter()
        .copied()
        .filter(|p| p.schedules.iter().any(|s| s.name == name))
        .collect();
    let p = match with[..] {
        [p] => p,
        [] => {
            let lists: Vec<String> = procs
                .iter()
                .map(|p| {
                    let names: Vec<&str> = p.schedules.iter().map(|s| s.name.as_str()).collect();
                    let names = if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    };
                    if procs.len() == 1 {
                        names
                    } else {
                        format!("{}: {names}", p.name)
                    }
                })
                .collect();
            let whose = match procs[..] {
                [p] => format!("process `{}`", p.name),
                _ => "the file".to_string(),
            };
            return Err(format!(
                "no schedule `{name}` in {whose} (schedules: {})",
                lists.join("; ")
            ));
        }
        _ => {
            let names: Vec<&str> = with.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "schedule `{name}` is in processes {}: pick one with --process",
                names.join(", ")
            ));
        }
    };
    let s = p.schedules.iter().find(|s| s.name == name).unwrap();
    let t = &p.time;
    // (t, value) rows, and how the times were chosen.
    let (rows, grid): (Vec<(f64, Value)>, String) = match t.kind {
        TimeKind::Discrete => {
            if points.is_some() {
                return Err(format!(
                    "--points is for continuous time: process `{}` has discrete time {}..{}, and the table has every {}",
                    p.name,
                    fmt_num(t.lo),
                    fmt_num(t.hi),
                    t.name
                ));
            }
            let rows: Vec<(f64, Value)> = s
                .table
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.clone().map(|v| (t.lo - 1.0 + i as f64, v)))
                .collect();
            let below = if s.table.first().is_some_and(Option::is_some) {
                format!(
                    "; {} = {} is the step below the domain, where the formula defines it",
                    t.name,
                    fmt_num(t.lo - 1.0)
                )
            } else {
                String::new()
            };
            let grid = format!(
                "every {} from {} to {}{below}",
                t.name,
                fmt_num(rows.first().map_or(t.lo, |r| r.0)),
                fmt_num(t.hi)
            );
            (rows, grid)
        }
        TimeKind::Continuous => {
            let n = points.unwrap_or(CONTINUOUS_CHECK_POINTS);
            if !(2..=crate::limits::MAX_TABLE_POINTS).contains(&n) {
                return Err(format!(
                    "--points {n}: give 2 to {} points (both ends of [{}, {}] are included)",
                    crate::limits::MAX_TABLE_POINTS,
                    fmt_num(t.lo),
                    fmt_num(t.hi)
                ));
            }
            let width = match s.elem {
                Elem::Vec(k) => k as usize,
                Elem::Mat(k) => (k as usize) * (k as usize),
                _ => 1,
            };
            if n.saturating_mul(width) > crate::limits::MAX_TABLE_NUMBERS {
                return Err(format!(
                    "--points {n}: a table of {n} times × {width} values is more than {} numbers; give fewer points",
                    crate::limits::MAX_TABLE_NUMBERS
                ));
            }
            let ev = crate::check::eval::Evaluator::new(p);
            let mut rows = Vec::with_capacity(n);
            for x in t.even_points(n) {
                let env = crate::check::eval::Env {
                    t: x,
                    ..Default::default()
                };
                let v = ev.eval(s.body, &env).map_err(|e| {
                    let why = match e {
                        crate::check::eval::EvalError::Hazard { message, .. }
                        | crate::check::eval::EvalError::Undefined { message, .. } => message,
                        crate::check::eval::EvalError::Runtime => {
                            "it needs a value only known at run time".into()
                        }
                    };
                    format!(
                        "schedule `{name}` cannot be evaluated at {} = {x:?}: {why}",
                        t.name
                    )
                })?;
                // As wherever the schedule is read: rounding past a closed end of its declared
                // interval gives the end itself.
                let v = match v {
                    Value::Real(y) => {
                        Value::Real(crate::check::schedules::snap_to_closed_end(s.interval, y))
                    }
                    v => v,
                };
                rows.push((x, v));
            }
            let grid = format!(
                "{n} evenly spaced {} from {} to {} (lo + (hi - lo)·i/{})",
                t.name,
                fmt_num(t.lo),
                fmt_num(t.hi),
                n - 1
            );
            (rows, grid)
        }
    };
    let columns: Vec<String> = match s.elem {
        Elem::Vec(k) => (0..k).map(|i| format!("{name}[{i}]")).collect(),
        Elem::Mat(k) => (0..k)
            .flat_map(|i| (0..k).map(move |j| format!("{name}[{i},{j}]")))
            .collect(),
        _ => vec![name.to_string()],
    };
    let mut out = String::new();
    writeln!(
        out,
        "# process {}, schedule {name} : {}{}: {} rows, {grid}",
        p.name,
        s.elem.describe(),
        if s.elem == Elem::Bool {
            " (1 true, 0 false)"
        } else {
            ""
        },
        rows.len()
    )
    .unwrap();
    writeln!(
        out,
        "# values in f64, each the shortest decimal that reads back as the same f64"
    )
    .unwrap();
    writeln!(out, "# {} {}", t.name, columns.join(" ")).unwrap();
    for (x, v) in &rows {
        let time = match t.kind {
            TimeKind::Discrete => fmt_num(*x),
            TimeKind::Continuous => format!("{x:?}"),
        };
        out.push_str(&time);
        flat_values(v, &mut |y| {
            out.push(' ');
            out.push_str(&y);
        });
        out.push('\n');
    }
    Ok(out)
}

/// A value's numbers in row-major order, each in the shortest form that reads back as itself.
fn flat_values(v: &Value, f: &mut impl FnMut(String)) {
    match v {
        Value::Real(x) => f(format!("{x:?}")),
        Value::Bool(b) => f(u8::from(*b).to_string()),
        Value::Vec(xs) | Value::Mat(_, xs) => xs.iter().for_each(|x| f(format!("{x:?}"))),
        Value::List(vs) => vs.iter().for_each(|v| flat_values(v, f)),
    }
}
