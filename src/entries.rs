//! The entry points a checked process exposes, with their inputs and outputs
//! (`../shared/DESIGN.md` §3). Backends and `diffc eval --list` read these.

use crate::typed::*;

/// How a port varies.
#[derive(Clone, Debug, PartialEq)]
pub enum Extent {
    /// One value per element of a field shape.
    Field(Shape),
    /// One value per sample.
    Sample,
    /// One value for the whole call (a time, a seed, a parameter).
    Scalar,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Port {
    pub name: String,
    pub elem: Elem,
    pub extent: Extent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Forward,
    LogQ,
    Posterior,
    Loss,
    Prior,
    Step,
    Finalize,
    /// What a network is called with: its declared input expressions of the fields and time it
    /// is given (`net_inputs.NET`).
    NetInputs,
    /// A training time distribution: one time per sample, uniform (`sample_t`) or a loss's
    /// declared one (`sample_t.LOSS`, with an importance weight per sample for `Weighted`).
    SampleT,
    /// A loss's per-element terms before reduction (`terms.NAME`): the argument of each of its
    /// outermost `sum`, `mean` and `norm`, 0 where a node mask leaves the element out.
    LossTerms,
    /// The posterior of a `cat<K>` or `bool` field given x_0 as class probabilities rather than
    /// classes (`posterior_soft`): Σ_c p(c) q(· | x_t, x_0 = c), renormalised, exactly what a
    /// sampler's `posterior(x_t = …, x_0 ~ p)` draws from (DiGress's and EDGE's `prob_pred`).
    PosteriorSoft,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: EntryKind,
    /// `forward`, `posterior`, `loss.simple`, `step.ddim`, …
    pub name: String,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
}

fn field_port(p: &Process, r: FieldRef, name: String) -> Port {
    let f = p.field(r.field);
    Port {
        name,
        elem: f.elem,
        extent: Extent::Field(f.shape.clone()),
    }
}

/// One port per field, named bare (the sampler's state).
fn field_ports(p: &Process, fields: &[FieldId], version: Version) -> Vec<Port> {
    fields
        .iter()
        .map(|f| field_port(p, FieldRef { field: *f, version }, p.field(*f).name.clone()))
        .collect()
}

fn scalar(name: &str) -> Port {
    Port {
        name: name.into(),
        elem: Elem::Real,
        extent: Extent::Scalar,
    }
}

fn seed() -> Port {
    Port {
        name: "seed".into(),
        elem: Elem::Real,
        extent: Extent::Scalar,
    }
}

/// Ports for a distribution's parameters, named by family.
/// The most classes a field may have for its posterior to get a `posterior_soft` entry.
pub const SOFT_MAX_CLASSES: u32 = 256;

/// The input of `posterior_soft` that stands for x_0: `x_0_probs` (class probabilities, or the
/// probability of `true`).
pub fn soft_port(p: &Process, x_0: FieldRef) -> String {
    format!("{}_probs", p.version_name(x_0))
}

fn dist_ports(p: &Process, k: &Kernel) -> Vec<Port> {
    let f = p.field(k.target.field);
    let ExprKind::Dist { params, .. } = &p.expr(k.dist).kind else {
        return Vec::new();
    };
    let names: &[&str] = match k.family {
        Family::Normal => &["mean", "var"],
        Family::Categorical => &["probs"],
        Family::Bernoulli => &["p"],
        Family::Delta => &["value"],
        Family::Uniform => &["lo", "hi"],
    };
    names
        .iter()
        .zip(params)
        .map(|(n, e)| {
            let ty = &p.expr(*e).ty;
            let extent = match ty.stage() {
                Some(Stage::Field(_)) => Extent::Field(f.shape.clone()),
                Some(Stage::Sample) => Extent::Sample,
                _ => Extent::Scalar,
            };
            Port {
                name: n.to_string(),
                elem: ty.elem().unwrap_or(Elem::Real),
                extent,
            }
        })
        .collect()
}

/// The port a network's field input is given as: the diffused field at time t (`x_t`), or a
/// conditioning field by its bare name.
pub fn net_field_port(p: &Process, field: FieldId) -> Port {
    let version = if p.forwards.iter().any(|k| k.target.field == field) {
        Version::T
    } else {
        Version::Data
    };
    field_port(
        p,
        FieldRef { field, version },
        p.version_name(FieldRef { field, version }),
    )
}

pub fn entries(p: &Process) -> Vec<Entry> {
    let mut out = Vec::new();
    let t = scalar(&p.time.name);
    // forward: noise the data; one entry covers every marginal.
    let marginals: Vec<&Kernel> = p
        .forwards
        .iter()
        .filter(|k| k.kind == KernelKind::Marginal)
        .collect();
    if !marginals.is_empty() {
        let mut inputs = Vec::new();
        for k in &marginals {
            for g in &k.given {
                let port = field_port(p, *g, p.version_name(*g));
                if !inputs.contains(&port) {
                    inputs.push(port);
                }
            }
        }
        inputs.push(t.clone());
        inputs.push(seed());
        let mut outputs = Vec::new();
        for k in &marginals {
            outputs.push(field_port(p, k.target, p.version_name(k.target)));
            if k.family == Family::Normal {
                let f = p.field(k.target.field);
                let noise = if marginals
                    .iter()
                    .filter(|m| m.family == Family::Normal)
                    .count()
                    == 1
                {
                    "eps".to_string()
                } else {
                    format!("eps_{}", f.name)
                };
                outputs.push(Port {
                    name: noise,
                    elem: f.elem,
                    extent: Extent::Field(f.shape.clone()),
                });
            } else if k.family != Family::Delta {
                // A discrete draw's noise is the uniform it was drawn with.
                let f = p.field(k.target.field);
                outputs.push(Port {
                    name: format!("u_{}", f.name),
                    elem: Elem::Real,
                    extent: Extent::Field(f.shape.clone()),
                });
            }
        }
        out.push(Entry {
            kind: EntryKind::Forward,
            name: "forward".into(),
            inputs: inputs.clone(),
            outputs,
        });
        let mut lq_in: Vec<Port> = inputs.into_iter().filter(|i| i.name != "seed").collect();
        for k in &marginals {
            lq_in.insert(
                lq_in.len() - 1,
                field_port(p, k.target, p.version_name(k.target)),
            );
        }
        out.push(Entry {
            kind: EntryKind::LogQ,
            name: "log_q".into(),
            inputs: lq_in,
            outputs: vec![Port {
                name: "log_q".into(),
                elem: Elem::Real,
                extent: Extent::Sample,
            }],
        });
    }
    for k in &p.posteriors {
        let f = &p.field(k.target.field).name;
        let mut inputs: Vec<Port> = k
            .given
            .iter()
            .map(|g| field_port(p, *g, p.version_name(*g)))
            .collect();
        inputs.push(t.clone());
        if k.target.version == Version::S {
            inputs.push(scalar("s"));
        }
        let name = if p.posteriors.len() == 1 {
            "posterior".to_string()
        } else {
            format!("posterior.{f}")
        };
        out.push(Entry {
            kind: EntryKind::Posterior,
            name,
            inputs,
            outputs: dist_ports(p, k),
        });
    }
    // The same posteriors of discrete fields given soft x_0: class probabilities per element
    // (`vec<K>`) for a `cat<K>` field, the probability of `true` for a `bool` field. The mixture
    // writes the posterior out once per class (K² terms per element), so past
    // `SOFT_MAX_CLASSES` classes there is no such entry.
    let soft: Vec<&Kernel> = p
        .posteriors
        .iter()
        .filter(|k| {
            let x_0 = FieldRef {
                field: k.target.field,
                version: Version::Data,
            };
            (matches!(p.field(k.target.field).elem, Elem::Cat(c) if c <= SOFT_MAX_CLASSES)
                || p.field(k.target.field).elem == Elem::Bool)
                && k.given.contains(&x_0)
                && matches!(k.family, Family::Categorical | Family::Bernoulli)
        })
        .collect();
    for k in &soft {
        let fd = p.field(k.target.field);
        let mut inputs: Vec<Port> = k
            .given
            .iter()
            .map(|g| {
                if g.field == k.target.field && g.version == Version::Data {
                    Port {
                        name: soft_port(p, *g),
                        elem: match fd.elem {
                            Elem::Cat(c) => Elem::Vec(c),
                            _ => Elem::Real,
                        },
                        extent: Extent::Field(fd.shape.clone()),
                    }
                } else {
                    field_port(p, *g, p.version_name(*g))
                }
            })
            .collect();
        inputs.push(t.clone());
        if k.target.version == Version::S {
            inputs.push(scalar("s"));
        }
        let name = if soft.len() == 1 {
            "posterior_soft".to_string()
        } else {
            format!("posterior_soft.{}", fd.name)
        };
        out.push(Entry {
            kind: EntryKind::PosteriorSoft,
            name,
            inputs,
            outputs: dist_ports(p, k),
        });
    }
    for l in &p.losses {
        let mut inputs: Vec<Port> = l
            .reads
            .iter()
            .map(|r| field_port(p, *r, p.version_name(*r)))
            .collect();
        inputs.push(t.clone());
        let mut noise_and_nets = Vec::new();
        let mut grads = Vec::new();
        let mut stack = vec![l.value];
        stack.extend(l.bindings.iter().filter_map(|b| p.locals[b.index()].value));
        let mut seen = std::collections::HashSet::new();
        while let Some(e) = stack.pop() {
            if !seen.insert(e) {
                continue;
            }
            let x = p.expr(e);
            match &x.kind {
                ExprKind::Noise(f) => {
                    let fd = p.field(*f);
                    let port = Port {
                        name: "eps".into(),
                        elem: fd.elem,
                        extent: Extent::Field(fd.shape.clone()),
                    };
                    if !noise_and_nets.contains(&port) {
                        noise_and_nets.push(port);
                    }
                }
                ExprKind::NetCall { net, .. } => {
                    let n = p.network(*net);
                    for o in &n.outputs {
                        let name = format!("{}.{}", n.name, p.field(o.field).name);
                        let elem = o.ty.elem().unwrap_or(Elem::Real);
                        let port = Port {
                            name: name.clone(),
                            elem,
                            extent: Extent::Field(p.field(o.field).shape.clone()),
                        };
                        if !noise_and_nets.contains(&port) {
                            noise_and_nets.push(port);
                            grads.push(Port {
                                name: format!("d_{name}"),
                                elem,
                                extent: Extent::Field(p.field(o.field).shape.clone()),
                            });
                        }
                    }
                }
                ExprKind::Local(id) => stack.extend(p.locals[id.index()].value),
                _ => {}
            }
            crate::check::children_of(&x.kind, &mut stack);
        }
        inputs.extend(noise_and_nets);
        let mut outputs = vec![Port {
            name: "loss".into(),
            elem: Elem::Real,
            extent: Extent::Sample,
        }];
        outputs.extend(grads);
        // terms.NAME: the same inputs; one output per outermost reduction, shaped like its
        // argument.
        let terms: Vec<Port> = loss_reductions(p, l.value)
            .iter()
            .enumerate()
            .map(|(i, (_, arg))| Port {
                name: format!("term{i}"),
                elem: Elem::Real,
                extent: match p.expr(*arg).ty.stage() {
                    Some(crate::types::Stage::Field(s)) => Extent::Field(s.clone()),
                    _ => Extent::Sample,
                },
            })
            .collect();
        out.push(Entry {
            kind: EntryKind::Loss,
            name: format!("loss.{}", l.name),
            inputs: inputs.clone(),
            outputs,
        });
        if !terms.is_empty() {
            out.push(Entry {
                kind: EntryKind::LossTerms,
                name: format!("terms.{}", l.name),
                inputs,
                outputs: terms,
            });
        }
    }
    // sample_t: the time of each training sample, uniform over the process's times; and
    // sample_t.LOSS for each loss that declares its own time distribution (`with t ~ …`), with
    // the importance weight of each sample when the distribution is `Weighted`.
    let time_port = Port {
        name: p.time.name.clone(),
        elem: Elem::Real,
        extent: Extent::Sample,
    };
    out.push(Entry {
        kind: EntryKind::SampleT,
        name: "sample_t".into(),
        inputs: vec![seed()],
        outputs: vec![time_port.clone()],
    });
    for l in &p.losses {
        let Some(d) = &l.time_dist else { continue };
        let mut outputs = vec![time_port.clone()];
        if matches!(d.kind, TimeDistKind::Weighted { .. }) {
            outputs.push(Port {
                name: "weight".into(),
                elem: Elem::Real,
                extent: Extent::Sample,
            });
        }
        out.push(Entry {
            kind: EntryKind::SampleT,
            name: format!("sample_t.{}", l.name),
            inputs: vec![seed()],
            outputs,
        });
    }
    // net_inputs.NET: the values a network is called with, given the fields it reads at time t.
    for n in &p.networks {
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for (i, inp) in n.inputs.iter().enumerate() {
            let (elem, extent) = match inp {
                NetInput::Field { field, expr } => {
                    let port = net_field_port(p, *field);
                    if !inputs.contains(&port) {
                        inputs.push(port);
                    }
                    let f = p.field(*field);
                    (
                        p.expr(*expr).ty.elem().unwrap_or(f.elem),
                        Extent::Field(f.shape.clone()),
                    )
                }
                NetInput::Time { expr } => (
                    p.expr(*expr).ty.elem().unwrap_or(Elem::Real),
                    Extent::Scalar,
                ),
            };
            outputs.push(Port {
                name: format!("input{i}"),
                elem,
                extent,
            });
        }
        inputs.push(t.clone());
        out.push(Entry {
            kind: EntryKind::NetInputs,
            name: format!("net_inputs.{}", n.name),
            inputs,
            outputs,
        });
    }
    for k in &p.priors {
        let name = if p.priors.len() == 1 {
            "prior".to_string()
        } else {
            format!("prior.{}", p.field(k.target.field).name)
        };
        out.push(Entry {
            kind: EntryKind::Prior,
            name,
            inputs: vec![seed()],
            outputs: vec![field_port(p, k.target, p.version_name(k.target))],
        });
    }
    for s in &p.samplers {
        let mut state = Vec::new();
        collect_state(p, &s.step, &mut state);
        let mut inputs = field_ports(p, &state, Version::T);
        inputs.extend(net_ports(p, &s.step));
        for h in &s.history {
            let l = &p.locals[h.index()];
            inputs.push(Port {
                name: format!("prev.{}", l.name),
                elem: l.ty.elem().unwrap_or(Elem::Real),
                extent: match l.ty.stage() {
                    Some(Stage::Field(sh)) => Extent::Field(sh.clone()),
                    _ => Extent::Scalar,
                },
            });
        }
        inputs.push(t.clone());
        inputs.push(scalar("s"));
        inputs.push(seed());
        let mut assigned_fields = Vec::new();
        collect_assigned(&s.step, &mut assigned_fields);
        let outputs = field_ports(p, &assigned_fields, Version::S);
        out.push(Entry {
            kind: EntryKind::Step,
            name: format!("step.{}", s.name),
            inputs,
            outputs,
        });
        if !s.finalize.is_empty() {
            let mut state = Vec::new();
            collect_state(p, &s.finalize, &mut state);
            let mut fin_out = Vec::new();
            collect_assigned(&s.finalize, &mut fin_out);
            out.push(Entry {
                kind: EntryKind::Finalize,
                name: format!("finalize.{}", s.name),
                inputs: field_ports(p, &state, Version::Data)
                    .into_iter()
                    .chain(net_ports(p, &s.finalize))
                    .chain([t.clone(), seed()])
                    .collect(),
                outputs: field_ports(p, &fin_out, Version::Data),
            });
        }
    }
    out
}

/// One input per network output read by the statements (numbered when a network is called several times).
fn net_ports(p: &Process, stmts: &[Stmt]) -> Vec<Port> {
    let mut calls = Vec::new();
    crate::check::net_calls_of(p, stmts, &mut calls);
    calls.sort();
    let mut out = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        if let ExprKind::NetCall { net, .. } = p.expr(*c).kind {
            let n = p.network(net);
            for o in &n.outputs {
                let suffix = if calls.len() > 1 {
                    format!("#{i}")
                } else {
                    String::new()
                };
                out.push(Port {
                    name: format!("{}.{}{suffix}", n.name, p.field(o.field).name),
                    elem: o.ty.elem().unwrap_or(Elem::Real),
                    extent: Extent::Field(p.field(o.field).shape.clone()),
                });
            }
        }
    }
    out
}

fn collect_state(p: &Process, stmts: &[Stmt], out: &mut Vec<FieldId>) {
    let mut exprs = Vec::new();
    crate::check::stmt_exprs_of(stmts, &mut exprs);
    let mut seen = std::collections::HashSet::new();
    while let Some(e) = exprs.pop() {
        if !seen.insert(e) {
            continue;
        }
        let x = p.expr(e);
        if let ExprKind::State(f) = x.kind {
            if !out.contains(&f) {
                out.push(f);
            }
        }
        if let ExprKind::Local(l) = x.kind {
            exprs.extend(p.locals[l.index()].value);
        }
        crate::check::children_of(&x.kind, &mut exprs);
    }
    out.sort();
}

fn collect_assigned(stmts: &[Stmt], out: &mut Vec<FieldId>) {
    for s in stmts {
        match &s.kind {
            StmtKind::Assign { field, .. } | StmtKind::Sample { field, .. }
                if !out.contains(field) =>
            {
                out.push(*field);
            }
            StmtKind::If {
                then, otherwise, ..
            } => {
                collect_assigned(then, out);
                collect_assigned(otherwise, out);
            }
            StmtKind::Repeat { body, .. } => collect_assigned(body, out),
            _ => {}
        }
    }
    out.sort();
}

/// The outermost reductions (`sum`, `mean`, `norm`) of a loss's value, in the order a reader
/// meets them (through `where` bindings): each reduction's expression and its argument. The
/// `terms.NAME` entry outputs the arguments, `term0`, `term1`, … in this order.
pub fn loss_reductions(p: &Process, value: ExprId) -> Vec<(ExprId, ExprId)> {
    fn walk(p: &Process, e: ExprId, seen: &mut Vec<ExprId>, out: &mut Vec<(ExprId, ExprId)>) {
        if seen.contains(&e) {
            return;
        }
        seen.push(e);
        let x = p.expr(e);
        match &x.kind {
            ExprKind::Call {
                func:
                    crate::typed::Builtin::Sum
                    | crate::typed::Builtin::Mean
                    | crate::typed::Builtin::Norm,
                args,
            } => {
                if let Some(a) = args.first() {
                    out.push((e, *a));
                }
            }
            ExprKind::Local(id) => {
                if let Some(v) = p.locals[id.index()].value {
                    walk(p, v, seen, out);
                }
            }
            kind => {
                let mut kids = Vec::new();
                crate::check::children_of(kind, &mut kids);
                for k in kids {
                    walk(p, k, seen, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(p, value, &mut Vec::new(), &mut out);
    out
}
