//! Lowering: typed process → one IR program per entry point.
//!
//! Every maximal sub-expression that depends only on times, parameters and constants becomes a
//! host coefficient; the rest becomes element nodes. Shared sub-expressions stay shared.

use super::*;
use crate::entries::{entries, Entry};
use crate::typed::{self, Elem, ExprKind, FieldRef, KernelKind, Process, Shape, Stage, Ty};
use std::collections::HashMap;

/// Lower the entry named `name` (`forward`, `log_q`, `posterior`, `prior`, …).
pub fn lower(p: &Process, name: &str) -> Result<Program, String> {
    let all = entries(p);
    let Some(entry) = all.iter().find(|e| e.name == name) else {
        let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
        return Err(format!(
            "process `{}` has no entry `{name}` (it has: {})",
            p.name,
            names.join(", ")
        ));
    };
    let mut l = Lower::new(p, entry);
    match entry.kind {
        EntryKind::Forward => l.forward()?,
        EntryKind::LogQ => l.log_q()?,
        EntryKind::Posterior => l.posterior(name)?,
        EntryKind::Prior => l.prior(name)?,
        _ => return Err(format!("the interpreter cannot run `{name}` yet: only forward, log_q, posterior and prior are lowered")),
    }
    Ok(l.prog)
}

struct Lower<'p> {
    p: &'p Process,
    prog: Program,
    memo: HashMap<ExprId, NodeId>,
    coef_memo: HashMap<ExprId, u32>,
}

fn kind_of(elem: Elem) -> Kind {
    match elem {
        Elem::Real => Kind::Real,
        Elem::Bool => Kind::Bool,
        Elem::Cat(k) => Kind::Class(k),
        Elem::Vec(k) => Kind::Vec(k),
        Elem::Mat(k) => Kind::Mat(k),
    }
}

impl<'p> Lower<'p> {
    fn new(p: &'p Process, entry: &Entry) -> Lower<'p> {
        Lower {
            p,
            prog: Program {
                name: entry.name.clone(),
                kind: entry.kind,
                inputs: entry.inputs.clone(),
                outputs: entry.outputs.clone(),
                coefs: Vec::new(),
                nodes: Vec::new(),
                results: Vec::new(),
                draws: Vec::new(),
            },
            memo: HashMap::new(),
            coef_memo: HashMap::new(),
        }
    }

    fn push(&mut self, node: Node, kind: Kind, extent: Extent) -> NodeId {
        self.push_shaped(node, kind, extent, None)
    }

    fn push_shaped(
        &mut self,
        node: Node,
        kind: Kind,
        extent: Extent,
        shape: Option<Shape>,
    ) -> NodeId {
        let id = NodeId(self.prog.nodes.len() as u32);
        self.prog.nodes.push(NodeInfo {
            node,
            kind,
            extent,
            shape,
        });
        id
    }

    fn input_index(&self, name: &str) -> Result<u32, String> {
        self.prog
            .inputs
            .iter()
            .position(|i| i.name == name)
            .map(|i| i as u32)
            .ok_or_else(|| format!("entry `{}` has no input `{name}`", self.prog.name))
    }

    fn field_input(&mut self, r: FieldRef) -> Result<NodeId, String> {
        let name = self.p.version_name(r);
        let i = self.input_index(&name)?;
        let f = self.p.field(r.field);
        Ok(self.push_shaped(
            Node::Input(i),
            kind_of(f.elem),
            Extent::Element,
            Some(f.shape.clone()),
        ))
    }

    fn expr(&mut self, e: ExprId) -> Result<NodeId, String> {
        if let Some(n) = self.memo.get(&e) {
            return Ok(*n);
        }
        let x = self.p.expr(e);
        let n = match &x.ty {
            Ty::Value {
                elem,
                stage: Stage::Const | Stage::Host,
            } => {
                if let ExprKind::Number(v) = x.kind {
                    self.push(Node::Const(v), kind_of(*elem), Extent::Uniform)
                } else {
                    let next = self.prog.coefs.len() as u32;
                    let c = *self.coef_memo.entry(e).or_insert(next);
                    if c == next {
                        self.prog.coefs.push(e);
                    }
                    self.push(Node::Coef(c), kind_of(*elem), Extent::Uniform)
                }
            }
            Ty::Value { elem, stage } => {
                let kind = kind_of(*elem);
                let (extent, shape) = match stage {
                    Stage::Field(s) => (Extent::Element, Some(s.clone())),
                    _ => (Extent::Sample, None),
                };
                let node = match &x.kind {
                    ExprKind::Field(r) => {
                        return self.field_input(*r).inspect(|n| {
                            self.memo.insert(e, *n);
                        })
                    }
                    ExprKind::Local(l) => {
                        let v = self.p.locals[l.index()]
                            .value
                            .ok_or("a draw bound outside a sampler")?;
                        let n = self.expr(v)?;
                        self.memo.insert(e, n);
                        return Ok(n);
                    }
                    ExprKind::Unary { op, arg } => Node::Unary(*op, self.expr(*arg)?),
                    ExprKind::Binary { op, lhs, rhs } => {
                        Node::Binary(*op, self.expr(*lhs)?, self.expr(*rhs)?)
                    }
                    ExprKind::If {
                        cond,
                        then,
                        otherwise,
                    } => Node::Select(self.expr(*cond)?, self.expr(*then)?, self.expr(*otherwise)?),
                    ExprKind::Index { base, index } => {
                        Node::Index(self.expr(*base)?, self.expr(*index)?)
                    }
                    ExprKind::List(items) => Node::List(
                        items
                            .iter()
                            .map(|i| self.expr(*i))
                            .collect::<Result<_, _>>()?,
                    ),
                    ExprKind::Call {
                        func: f @ (Builtin::Sum | Builtin::Mean | Builtin::Norm),
                        args,
                    } => Node::Reduce(*f, self.expr(args[0])?),
                    ExprKind::Call {
                        func: f @ (Builtin::RowSum | Builtin::Pair | Builtin::Gram),
                        ..
                    } => {
                        return Err(format!("the interpreter cannot run `{}` yet", f.name()));
                    }
                    ExprKind::Call { func, args } => Node::Call(
                        *func,
                        args.iter()
                            .map(|a| self.expr(*a))
                            .collect::<Result<_, _>>()?,
                    ),
                    other => {
                        return Err(format!(
                            "`{}` cannot appear in entry `{}`",
                            describe(other),
                            self.prog.name
                        ))
                    }
                };
                self.push_shaped(node, kind, extent, shape)
            }
            _ => {
                return Err(format!(
                    "entry `{}` reads a value the interpreter cannot lower",
                    self.prog.name
                ))
            }
        };
        self.memo.insert(e, n);
        Ok(n)
    }

    fn dist_params(&mut self, dist: ExprId) -> Result<(Family, Vec<NodeId>), String> {
        let ExprKind::Dist { family, params } = &self.p.expr(dist).kind else {
            return Err("expected a distribution".into());
        };
        let nodes = params
            .iter()
            .map(|e| self.expr(*e))
            .collect::<Result<_, _>>()?;
        Ok((*family, nodes))
    }

    /// A draw of the kernel's distribution, with the name a caller uses to supply it.
    fn draw(
        &mut self,
        k: &typed::Kernel,
        supplied: String,
    ) -> Result<(NodeId, Option<NodeId>), String> {
        let (family, params) = self.dist_params(k.dist)?;
        let field = self.p.field(k.target.field).clone();
        let kind = kind_of(field.elem);
        let shape = Some(field.shape.clone());
        let site = self.prog.draws.len() as u32;
        if family == Family::Normal {
            // x = mean + sqrt(var) * eps, with eps the standard normal the entry also returns.
            self.prog.draws.push(DrawSite {
                family,
                name: supplied,
            });
            let zero = self.push(Node::Const(0.0), Kind::Real, Extent::Uniform);
            let one = self.push(Node::Const(1.0), Kind::Real, Extent::Uniform);
            let noise = self.push_shaped(
                Node::Draw {
                    site,
                    family,
                    params: vec![zero, one],
                },
                kind,
                Extent::Element,
                shape.clone(),
            );
            let var = &self.prog.nodes[params[1].index()];
            let (var_kind, var_extent, var_shape) = (var.kind, var.extent, var.shape.clone());
            let sd = self.push_shaped(
                Node::Call(Builtin::Sqrt, vec![params[1]]),
                var_kind,
                var_extent,
                var_shape,
            );
            let scaled = self.push_shaped(
                Node::Binary(BinOp::Mul, sd, noise),
                kind,
                Extent::Element,
                shape.clone(),
            );
            let x = self.push_shaped(
                Node::Binary(BinOp::Add, params[0], scaled),
                kind,
                Extent::Element,
                shape,
            );
            return Ok((x, Some(noise)));
        }
        self.prog.draws.push(DrawSite {
            family,
            name: supplied,
        });
        Ok((
            self.push_shaped(
                Node::Draw {
                    site,
                    family,
                    params,
                },
                kind,
                Extent::Element,
                shape,
            ),
            None,
        ))
    }

    fn marginals(&self) -> Vec<typed::Kernel> {
        self.p
            .forwards
            .iter()
            .filter(|k| k.kind == KernelKind::Marginal)
            .cloned()
            .collect()
    }

    fn forward(&mut self) -> Result<(), String> {
        let gaussian = self
            .marginals()
            .iter()
            .filter(|k| k.family == Family::Normal)
            .count();
        for k in self.marginals() {
            let f = &self.p.field(k.target.field).name;
            let noise_name = if gaussian == 1 && k.family == Family::Normal {
                "eps".to_string()
            } else {
                format!("eps_{f}")
            };
            let supplied = if k.family == Family::Normal {
                noise_name
            } else {
                format!("u_{f}")
            };
            let (x, noise) = self.draw(&k, supplied)?;
            self.prog.results.push(x);
            if let Some(noise) = noise {
                self.prog.results.push(noise);
            }
        }
        Ok(())
    }

    fn log_q(&mut self) -> Result<(), String> {
        let mut total: Option<NodeId> = None;
        for k in self.marginals() {
            let (family, params) = self.dist_params(k.dist)?;
            let value = self.field_input(k.target)?;
            let shape = Some(self.p.field(k.target.field).shape.clone());
            let d = self.push_shaped(
                Node::LogDensity {
                    family,
                    params,
                    value,
                },
                Kind::Real,
                Extent::Element,
                shape,
            );
            let s = self.push(Node::Reduce(Builtin::Sum, d), Kind::Real, Extent::Sample);
            total = Some(match total {
                None => s,
                Some(t) => self.push(Node::Binary(BinOp::Add, t, s), Kind::Real, Extent::Sample),
            });
        }
        self.prog.results.push(total.ok_or("no forward marginal")?);
        Ok(())
    }

    fn kernel_for(
        &self,
        kinds: &[typed::Kernel],
        name: &str,
        prefix: &str,
    ) -> Result<typed::Kernel, String> {
        let k = if kinds.len() == 1 {
            kinds.first()
        } else {
            let field = name.strip_prefix(prefix).unwrap_or_default();
            kinds
                .iter()
                .find(|k| self.p.field(k.target.field).name == field)
        };
        k.cloned()
            .ok_or_else(|| format!("no kernel for entry `{name}`"))
    }

    fn posterior(&mut self, name: &str) -> Result<(), String> {
        let k = self.kernel_for(&self.p.posteriors.clone(), name, "posterior.")?;
        let (_, params) = self.dist_params(k.dist)?;
        self.prog.results = params;
        Ok(())
    }

    fn prior(&mut self, name: &str) -> Result<(), String> {
        let k = self.kernel_for(&self.p.priors.clone(), name, "prior.")?;
        let f = self.p.field(k.target.field).name.clone();
        let supplied = if k.family == Family::Normal {
            format!("eps_{f}")
        } else {
            format!("u_{f}")
        };
        let (x, _) = self.draw(&k, supplied)?;
        self.prog.results.push(x);
        Ok(())
    }
}

fn describe(k: &ExprKind) -> &'static str {
    match k {
        ExprKind::State(_) => "a sampler's state",
        ExprKind::Noise(_) => "the forward noise",
        ExprKind::NetCall { .. } | ExprKind::NetOut { .. } => "a network output",
        ExprKind::Prev(_) => "a previous step's value",
        ExprKind::Dist { .. } | ExprKind::Posterior { .. } | ExprKind::Prior { .. } => {
            "a distribution"
        }
        _ => "this expression",
    }
}
