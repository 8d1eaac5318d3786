//! Lowering: typed process → one IR program per entry point.
//!
//! Every maximal sub-expression that depends only on times, parameters and constants becomes a
//! host coefficient; the rest becomes element nodes. Shared sub-expressions stay shared.

use super::*;
use crate::entries::{entries, Entry};
use crate::syntax::ast::UnOp;
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
        EntryKind::PosteriorSoft => l.posterior_soft(name)?,
        EntryKind::Prior => l.prior(name)?,
        EntryKind::Loss => l.loss(name)?,
        EntryKind::NetInputs => l.net_inputs(name)?,
        EntryKind::SampleT => l.sample_t(name)?,
        EntryKind::LossTerms => l.loss_terms(name)?,
        _ => return Err(format!("the interpreter cannot run `{name}` yet: only forward, log_q, posterior, prior and losses are lowered as entries; steps run through `lower_sampler`")),
    }
    Ok(l.prog)
}

struct Lower<'p> {
    p: &'p Process,
    prog: Program,
    memo: HashMap<ExprId, NodeId>,
    coef_memo: HashMap<(ExprId, Option<ExprId>), u32>,
    /// Field versions bound to nodes (a posterior's conditioning variables in a sampler).
    subst: HashMap<FieldRef, NodeId>,
    /// Sampler lowering: step-locals and draws stored in slots, network calls already issued,
    /// and the ops being emitted.
    slots: HashMap<typed::LocalId, u32>,
    calls: HashMap<ExprId, u32>,
    ops: Vec<Vec<Op>>,
    n_slots: u32,
    /// While lowering a network's declared inputs: the call's time, at which coefficients are evaluated.
    at_time: Option<ExprId>,
    /// Lowering a loss: network outputs and the forward noise are inputs of the entry.
    loss_mode: bool,
    /// One node per input port, however often it is read (gradients are taken with respect to it).
    input_nodes: HashMap<u32, NodeId>,
    /// The captured state argument of each call, for parameterisation conversions.
    call_state: HashMap<u32, Vec<NodeId>>,
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
            subst: HashMap::new(),
            slots: HashMap::new(),
            calls: HashMap::new(),
            ops: vec![Vec::new()],
            n_slots: 0,
            at_time: None,
            loss_mode: false,
            input_nodes: HashMap::new(),
            call_state: HashMap::new(),
        }
    }

    /// A host coefficient; `at` evaluates it at another time (a coefficient holding that time).
    fn coef(&mut self, e: ExprId, at: Option<ExprId>, kind: Kind) -> NodeId {
        let at = at.or(self.at_time);
        let next = self.prog.coefs.len() as u32;
        let c = *self.coef_memo.entry((e, at)).or_insert(next);
        if c == next {
            self.prog.coefs.push((e, at));
        }
        self.push(Node::Coef(c), kind, Extent::Uniform)
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
        self.prog.push(node, kind, extent, shape)
    }

    fn input_index(&self, name: &str) -> Result<u32, String> {
        self.prog
            .inputs
            .iter()
            .position(|i| i.name == name)
            .map(|i| i as u32)
            .ok_or_else(|| format!("entry `{}` has no input `{name}`", self.prog.name))
    }

    /// The node of input port `i`, created once.
    fn input_node(&mut self, i: u32, kind: Kind, shape: Option<Shape>) -> NodeId {
        if let Some(n) = self.input_nodes.get(&i) {
            return *n;
        }
        let n = self.push_shaped(Node::Input(i), kind, Extent::Element, shape);
        self.input_nodes.insert(i, n);
        n
    }

    fn field_input(&mut self, r: FieldRef) -> Result<NodeId, String> {
        let name = self.p.version_name(r);
        let i = self.input_index(&name)?;
        let f = self.p.field(r.field).clone();
        Ok(self.input_node(i, kind_of(f.elem), Some(f.shape)))
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
                    self.coef(e, None, kind_of(*elem))
                }
            }
            Ty::Value { elem, stage } => {
                let kind = kind_of(*elem);
                let (extent, shape) = match stage {
                    Stage::Field(s) => (Extent::Element, Some(s.clone())),
                    _ => (Extent::Sample, None),
                };
                let node = match &x.kind {
                    ExprKind::Field(r) if self.subst.contains_key(r) => {
                        let n = self.subst[r];
                        self.memo.insert(e, n);
                        return Ok(n);
                    }
                    ExprKind::Field(r) => {
                        return self.field_input(*r).inspect(|n| {
                            self.memo.insert(e, *n);
                        })
                    }
                    ExprKind::State(f) => Node::State(f.0),
                    ExprKind::Noise(f) if self.loss_mode => {
                        let gaussian = self
                            .marginals()
                            .iter()
                            .filter(|k| k.family == Family::Normal)
                            .count();
                        let name = if gaussian == 1 {
                            "eps".to_string()
                        } else {
                            format!("eps_{}", self.p.field(*f).name)
                        };
                        let i = self.input_index(&name)?;
                        let n = self.input_node(i, kind, shape.clone());
                        self.memo.insert(e, n);
                        return Ok(n);
                    }
                    ExprKind::Local(l) if self.slots.contains_key(l) => Node::Slot(self.slots[l]),
                    ExprKind::Prev(l) => Node::Prev(
                        *self
                            .slots
                            .get(l)
                            .ok_or("`prev` of a value that is not stored")?,
                    ),
                    ExprKind::NetOut { call, output, kind } => {
                        let n = self.net_out(*call, *output, *kind, e)?;
                        self.memo.insert(e, n);
                        return Ok(n);
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

    /// Issue a network call as an op (once): its field arguments are captured in slots, and the
    /// network reads its declared input expressions of them at the call's time.
    fn issue_call(&mut self, call: ExprId) -> Result<u32, String> {
        let call = self.resolve_local(call);
        let ExprKind::NetCall { net, args } = self.p.expr(call).kind.clone() else {
            return Err("a network output without its call".into());
        };
        let n = self.p.network(net).clone();
        let idx = match self.calls.get(&call) {
            Some(i) => *i,
            None => {
                let i = self.calls.len() as u32;
                let time_arg =
                    n.inputs.iter().zip(&args).find_map(|(inp, a)| {
                        matches!(inp, typed::NetInput::Time { .. }).then_some(*a)
                    });
                let mut inputs = Vec::new();
                let mut captured = Vec::new();
                let mut raw_fields = Vec::new();
                for (inp, a) in n.inputs.iter().zip(&args) {
                    match inp {
                        typed::NetInput::Field { field, expr } => {
                            // The argument is captured when the call runs; the network reads its
                            // declared input expression of it, at the call's time.
                            let value = self.expr(*a)?;
                            let slot = self.new_slot();
                            self.emit(Op::Slot { slot, node: value });
                            let f = self.p.field(*field).clone();
                            let held = self.push_shaped(
                                Node::Slot(slot),
                                kind_of(f.elem),
                                Extent::Element,
                                Some(f.shape.clone()),
                            );
                            captured.push(held);
                            raw_fields.push((field.0, held));
                            let saved = (
                                std::mem::take(&mut self.subst),
                                std::mem::take(&mut self.memo),
                                self.at_time,
                            );
                            // A diffused field is declared as `x_t`; a conditioning field by its bare name.
                            for version in [typed::Version::T, typed::Version::Data] {
                                self.subst.insert(
                                    FieldRef {
                                        field: *field,
                                        version,
                                    },
                                    held,
                                );
                            }
                            self.at_time = time_arg;
                            let r = self.expr(*expr);
                            (self.subst, self.memo, self.at_time) = saved;
                            inputs.push(r?);
                        }
                        typed::NetInput::Time { expr } => {
                            let kind = kind_of(self.p.expr(*expr).ty.elem().unwrap_or(Elem::Real));
                            inputs.push(self.coef(*expr, Some(*a), kind));
                        }
                    }
                }
                self.calls.insert(call, i);
                self.call_state.insert(i, captured);
                self.emit(Op::Call {
                    call: i,
                    net: net.0,
                    args: inputs,
                    fields: raw_fields,
                    time: time_arg,
                });
                i
            }
        };
        Ok(idx)
    }

    fn resolve_local(&self, e: ExprId) -> ExprId {
        match self.p.expr(e).kind {
            ExprKind::Local(l) => self.p.locals[l.index()]
                .value
                .map_or(e, |v| self.resolve_local(v)),
            _ => e,
        }
    }

    /// The value of `field` the call passed (captured when it ran, or in a loss the call's
    /// argument), and the index of the call's time argument; `None` when the network does not
    /// read both.
    fn call_state_and_time(
        &mut self,
        n: &typed::Network,
        field: typed::FieldId,
        idx: Option<u32>,
        args: &[ExprId],
    ) -> Option<(Result<NodeId, String>, usize)> {
        let si = n
            .inputs
            .iter()
            .position(|x| matches!(x, typed::NetInput::Field { field: f, .. } if *f == field))?;
        let ti = n
            .inputs
            .iter()
            .position(|x| matches!(x, typed::NetInput::Time { .. }))?;
        // The call's captured state is in the order of the network's field inputs.
        let field_pos = n.inputs[..si]
            .iter()
            .filter(|x| matches!(x, typed::NetInput::Field { .. }))
            .count();
        let x = match idx {
            Some(idx) => Ok(self.call_state[&idx][field_pos]),
            None => self.expr(args[si]),
        };
        Some((x, ti))
    }

    /// Output `output` of a network call, read as `kind`: the call is issued (once) as an op,
    /// and a parameterisation conversion is built at the call's state and time.
    fn net_out(
        &mut self,
        call: ExprId,
        output: u32,
        kind: typed::ParamKind,
        _at: ExprId,
    ) -> Result<NodeId, String> {
        let ExprKind::NetCall { net, args } = self.p.expr(call).kind.clone() else {
            return Err("a network output without its call".into());
        };
        let n = self.p.network(net).clone();
        let o = &n.outputs[output as usize];
        let field = self.p.field(o.field).clone();
        let okind = kind_of(o.ty.elem().unwrap_or(Elem::Real));
        let shape = Some(field.shape.clone());
        // In a loss the network's outputs are inputs of the entry; in a sampler the call runs.
        let (idx, raw) = if self.loss_mode {
            let port = self.input_index(&format!("{}.{}", n.name, field.name))?;
            (None, self.input_node(port, okind, shape.clone()))
        } else {
            let idx = self.issue_call(call)?;
            (
                Some(idx),
                self.push_shaped(
                    Node::NetOut { call: idx, output },
                    okind,
                    Extent::Element,
                    shape.clone(),
                ),
            )
        };
        // A preconditioned output: skip · x + scale · F, at the call's state and time.
        let raw = match o.precond {
            None => raw,
            Some((skip, scale)) => {
                let (x, ti) = self
                    .call_state_and_time(&n, o.field, idx, &args)
                    .ok_or("a preconditioned output without the call's state and time")?;
                let x = x?;
                let cs = self.coef(skip, Some(args[ti]), Kind::Real);
                let co = self.coef(scale, Some(args[ti]), Kind::Real);
                let sx = self.push_shaped(
                    Node::Binary(BinOp::Mul, cs, x),
                    okind,
                    Extent::Element,
                    shape.clone(),
                );
                let of = self.push_shaped(
                    Node::Binary(BinOp::Mul, co, raw),
                    okind,
                    Extent::Element,
                    shape.clone(),
                );
                self.push_shaped(
                    Node::Binary(BinOp::Add, sx, of),
                    okind,
                    Extent::Element,
                    shape.clone(),
                )
            }
        };
        if o.kind == kind {
            return Ok(raw);
        }
        let k = self
            .p
            .gaussian_marginal_given(o.field)
            .cloned()
            .ok_or("a conversion without an affine Gaussian marginal")?;
        let a = k.affine.unwrap();
        let (x, ti) = self
            .call_state_and_time(&n, k.target.field, idx, &args)
            .ok_or("a conversion without the call's state and time")?;
        let x = x?;
        let alpha = self.coef(a.alpha, Some(args[ti]), Kind::Real);
        let var = self.coef(a.var, Some(args[ti]), Kind::Real);
        let sigma = self.push(
            Node::Call(Builtin::Sqrt, vec![var]),
            Kind::Real,
            Extent::Uniform,
        );
        let el =
            |l: &mut Self, node: Node| l.push_shaped(node, okind, Extent::Element, shape.clone());
        let un = |l: &mut Self, node: Node| l.push(node, Kind::Real, Extent::Uniform);
        use typed::ParamKind as P;
        // A velocity u = a' x_0 + σ' ε: with x = a x_0 + σ ε, and D = a σ' − a' σ,
        //   ε = (a u − a' x) / D,   x_0 = (σ' x − σ u) / D,
        // which stay finite where a = 0 (rectified flow's noise end).
        let rates = if o.kind == P::Velocity || kind == P::Velocity {
            let r = a
                .rates
                .ok_or("a velocity without the marginal's time derivatives")?;
            let sg = self.coef(r.sigma, Some(args[ti]), Kind::Real);
            let da = self.coef(r.dalpha, Some(args[ti]), Kind::Real);
            let ds = self.coef(r.dsigma, Some(args[ti]), Kind::Real);
            Some((sg, da, ds))
        } else {
            None
        };
        if let (P::Velocity, Some((sg, da, ds))) = (o.kind, rates) {
            let asd = un(self, Node::Binary(BinOp::Mul, alpha, ds));
            let dsg = un(self, Node::Binary(BinOp::Mul, da, sg));
            let den = un(self, Node::Binary(BinOp::Sub, asd, dsg));
            let eps = |l: &mut Self| {
                let au = el(l, Node::Binary(BinOp::Mul, alpha, raw));
                let dx = el(l, Node::Binary(BinOp::Mul, da, x));
                let n = el(l, Node::Binary(BinOp::Sub, au, dx));
                el(l, Node::Binary(BinOp::Div, n, den))
            };
            let x0 = |l: &mut Self| {
                let dx = el(l, Node::Binary(BinOp::Mul, ds, x));
                let su = el(l, Node::Binary(BinOp::Mul, sg, raw));
                let n = el(l, Node::Binary(BinOp::Sub, dx, su));
                el(l, Node::Binary(BinOp::Div, n, den))
            };
            return Ok(match kind {
                P::Eps => eps(self),
                P::X0 => x0(self),
                P::Score => {
                    let e = eps(self);
                    let q = el(self, Node::Binary(BinOp::Div, e, sg));
                    el(self, Node::Unary(UnOp::Neg, q))
                }
                P::V => {
                    let e = eps(self);
                    let d = x0(self);
                    let ae = el(self, Node::Binary(BinOp::Mul, alpha, e));
                    let sd = el(self, Node::Binary(BinOp::Mul, sg, d));
                    el(self, Node::Binary(BinOp::Sub, ae, sd))
                }
                P::Velocity => raw,
                P::Probs => return Err("a Gaussian prediction has no class probabilities".into()),
            });
        }
        // First to eps, then to the kind asked for.
        let eps = match o.kind {
            P::Eps => raw,
            P::X0 => {
                let ax = el(self, Node::Binary(BinOp::Mul, alpha, raw));
                let d = el(self, Node::Binary(BinOp::Sub, x, ax));
                el(self, Node::Binary(BinOp::Div, d, sigma))
            }
            P::Score => {
                let s = el(self, Node::Binary(BinOp::Mul, sigma, raw));
                el(self, Node::Unary(UnOp::Neg, s))
            }
            P::V => {
                // From v = alpha eps - sigma x0 and x = alpha x0 + sigma eps:
                // eps = (alpha v + sigma x) / (alpha² + sigma²).
                let av = el(self, Node::Binary(BinOp::Mul, alpha, raw));
                let sx = el(self, Node::Binary(BinOp::Mul, sigma, x));
                let num = el(self, Node::Binary(BinOp::Add, av, sx));
                let a2 = self.push(
                    Node::Binary(BinOp::Mul, alpha, alpha),
                    Kind::Real,
                    Extent::Uniform,
                );
                let den = self.push(
                    Node::Binary(BinOp::Add, a2, var),
                    Kind::Real,
                    Extent::Uniform,
                );
                el(self, Node::Binary(BinOp::Div, num, den))
            }
            P::Velocity | P::Probs => {
                return Err("class probabilities have no Gaussian form".into())
            }
        };
        Ok(match kind {
            P::Eps => eps,
            P::X0 => {
                let se = el(self, Node::Binary(BinOp::Mul, sigma, eps));
                let d = el(self, Node::Binary(BinOp::Sub, x, se));
                el(self, Node::Binary(BinOp::Div, d, alpha))
            }
            P::Score => {
                let q = el(self, Node::Binary(BinOp::Div, eps, sigma));
                el(self, Node::Unary(UnOp::Neg, q))
            }
            P::V => {
                let se = el(self, Node::Binary(BinOp::Mul, sigma, eps));
                let x0n = el(self, Node::Binary(BinOp::Sub, x, se));
                let x0 = el(self, Node::Binary(BinOp::Div, x0n, alpha));
                let ae = el(self, Node::Binary(BinOp::Mul, alpha, eps));
                let sx0 = el(self, Node::Binary(BinOp::Mul, sigma, x0));
                el(self, Node::Binary(BinOp::Sub, ae, sx0))
            }
            P::Velocity => {
                let (_, da, ds) = rates.ok_or("a velocity without rates")?;
                let se = el(self, Node::Binary(BinOp::Mul, sigma, eps));
                let x0n = el(self, Node::Binary(BinOp::Sub, x, se));
                let x0 = el(self, Node::Binary(BinOp::Div, x0n, alpha));
                let dx0 = el(self, Node::Binary(BinOp::Mul, da, x0));
                let de = el(self, Node::Binary(BinOp::Mul, ds, eps));
                el(self, Node::Binary(BinOp::Add, dx0, de))
            }
            P::Probs => return Err("a Gaussian prediction has no class probabilities".into()),
        })
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
            } else if k.family != Family::Delta {
                let Node::Draw { site, .. } = self.prog.nodes[x.index()].node else {
                    unreachable!()
                };
                let shape = self.prog.nodes[x.index()].shape.clone();
                let u = self.push_shaped(
                    Node::Uniforms { draw: x, site },
                    Kind::Real,
                    Extent::Element,
                    shape,
                );
                self.prog.results.push(u);
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

    /// A loss: its value per sample, then its gradient with respect to each network output.
    fn loss(&mut self, name: &str) -> Result<(), String> {
        let l = self.loss_named(name, "loss.")?;
        self.loss_mode = true;
        let value = self.expr(l.value)?;
        let outputs = self.prog.outputs.clone();
        let mut wrt = Vec::new();
        for o in outputs.iter().skip(1) {
            let port = o
                .name
                .strip_prefix("d_")
                .ok_or("a loss output that is not a gradient")?;
            let i = self.input_index(port)?;
            let info = self.prog.inputs[i as usize].clone();
            let shape = match &info.extent {
                crate::entries::Extent::Field(s) => Some(s.clone()),
                _ => None,
            };
            wrt.push(self.input_node(i, kind_of(info.elem), shape));
        }
        let grads = super::grad::gradient(&mut self.prog, value, &wrt)?;
        self.prog.results.push(value);
        self.prog.results.extend(grads);
        Ok(())
    }

    /// The loss an entry named `PREFIX.NAME` belongs to.
    fn loss_named(&self, entry: &str, prefix: &str) -> Result<typed::Loss, String> {
        let lname = entry.strip_prefix(prefix).unwrap_or(entry);
        self.p
            .losses
            .iter()
            .find(|l| l.name == lname)
            .cloned()
            .ok_or_else(|| format!("no loss `{lname}`"))
    }

    /// A loss's per-element terms: the argument of each outermost reduction, 0 where a node mask
    /// leaves the element out (as the reduction does).
    fn loss_terms(&mut self, name: &str) -> Result<(), String> {
        let l = self.loss_named(name, "terms.")?;
        self.loss_mode = true;
        for (_, arg) in crate::entries::loss_reductions(self.p, l.value) {
            let a = self.expr(arg)?;
            let info = self.prog.node(a).clone();
            let term = if info.extent == Extent::Element {
                let real = self.push_shaped(
                    Node::IsReal(a),
                    Kind::Bool,
                    Extent::Element,
                    info.shape.clone(),
                );
                let zero = self.push(Node::Const(0.0), Kind::Real, Extent::Uniform);
                self.push_shaped(
                    Node::Select(real, a, zero),
                    Kind::Real,
                    Extent::Element,
                    info.shape.clone(),
                )
            } else {
                a
            };
            self.prog.results.push(term);
        }
        Ok(())
    }

    /// The training time of each sample (`sample_t`, or `sample_t.LOSS` for a loss that
    /// declares its own distribution), from one draw per sample on draw site 0, which a caller
    /// may supply: a uniform `u_t` (uniform and weighted times) or a standard normal `z_t`
    /// (log-normal times). `docs/training.md` states each transform.
    fn sample_t(&mut self, name: &str) -> Result<(), String> {
        let dist = match name.strip_prefix("sample_t.") {
            None => None,
            Some(loss) => Some(
                self.p
                    .losses
                    .iter()
                    .find(|l| l.name == loss)
                    .and_then(|l| l.time_dist.clone())
                    .ok_or_else(|| format!("loss `{loss}` declares no time distribution"))?,
            ),
        };
        match dist.map(|d| d.kind) {
            None | Some(typed::TimeDistKind::Uniform) => self.uniform_t(),
            Some(typed::TimeDistKind::LogNormal { mean, std }) => self.log_normal_t(mean, std),
            Some(typed::TimeDistKind::Weighted { probs, .. }) => self.weighted_t(&probs),
        }
        Ok(())
    }

    fn real_const(&mut self, x: f64) -> NodeId {
        self.push(Node::Const(x), Kind::Real, Extent::Uniform)
    }

    /// One draw per sample on site 0, named after the time (`u_t`, `z_t`).
    fn time_draw(&mut self, family: Family, prefix: &str) -> NodeId {
        let site = self.prog.draws.len() as u32;
        self.prog.draws.push(DrawSite {
            family,
            name: format!("{prefix}_{}", self.p.time.name),
        });
        // Uniform on [0, 1), or Normal with mean 0 and variance 1.
        let (a, b) = (self.real_const(0.0), self.real_const(1.0));
        self.push(
            Node::Draw {
                site,
                family,
                params: vec![a, b],
            },
            Kind::Real,
            Extent::Sample,
        )
    }

    /// Uniform over the process's times (every integer time equally likely in discrete time;
    /// uniform on `[lo, hi]` in continuous time).
    fn uniform_t(&mut self) {
        let u = self.time_draw(Family::Uniform, "u");
        let (lo, hi) = (self.p.time.lo, self.p.time.hi);
        let span = match self.p.time.kind {
            typed::TimeKind::Discrete => hi - lo + 1.0,
            typed::TimeKind::Continuous => hi - lo,
        };
        let span = self.real_const(span);
        let mut x = self.push(
            Node::Binary(BinOp::Mul, u, span),
            Kind::Real,
            Extent::Sample,
        );
        if self.p.time.kind == typed::TimeKind::Discrete {
            x = self.push(
                Node::Call(Builtin::Floor, vec![x]),
                Kind::Real,
                Extent::Sample,
            );
        }
        let (lo, hi) = (self.real_const(lo), self.real_const(hi));
        let t = self.push(Node::Binary(BinOp::Add, lo, x), Kind::Real, Extent::Sample);
        // A uniform just below 1 must not round past the last time.
        let t = self.push(
            Node::Call(Builtin::Min, vec![t, hi]),
            Kind::Real,
            Extent::Sample,
        );
        self.prog.results.push(t);
    }

    /// `log t ~ Normal(mean, std²)`: `t = min(max(exp(mean + std · z), lo), hi)` in f32 from a
    /// standard normal `z` per sample; times outside the domain are clamped to its ends.
    fn log_normal_t(&mut self, mean: f64, std: f64) {
        let z = self.time_draw(Family::Normal, "z");
        let (m, s) = (self.real_const(mean), self.real_const(std));
        let sz = self.push(Node::Binary(BinOp::Mul, s, z), Kind::Real, Extent::Sample);
        let x = self.push(Node::Binary(BinOp::Add, m, sz), Kind::Real, Extent::Sample);
        let t = self.push(
            Node::Call(Builtin::Exp, vec![x]),
            Kind::Real,
            Extent::Sample,
        );
        let (lo, hi) = (
            self.real_const(self.p.time.lo),
            self.real_const(self.p.time.hi),
        );
        let t = self.push(
            Node::Call(Builtin::Max, vec![t, lo]),
            Kind::Real,
            Extent::Sample,
        );
        let t = self.push(
            Node::Call(Builtin::Min, vec![t, hi]),
            Kind::Real,
            Extent::Sample,
        );
        self.prog.results.push(t);
    }

    /// `P(t) = probs[t - lo]` by inverse CDF: `t = lo + k` for the smallest `k` with `u < C_k`,
    /// `C_k` the f64 CDF rounded to f32, as a chain of selects over the times that can be
    /// drawn (those whose f32 interval `[C_{k-1}, C_k)` is not empty); a uniform past the last
    /// such interval gives the last such time. The second result is each sample's importance
    /// weight `1 / (N · P(t))`, N the number of times.
    fn weighted_t(&mut self, probs: &[f64]) {
        let u = self.time_draw(Family::Uniform, "u");
        let cdf = typed::TimeDist::cdf(probs);
        let n = probs.len() as f64;
        let mut bins: Vec<(usize, f32)> = Vec::new();
        let mut below = 0.0f32;
        for (k, (p, c)) in probs.iter().zip(&cdf).enumerate() {
            let c = *c as f32;
            if *p > 0.0 && c > below {
                bins.push((k, c));
                below = c;
            }
        }
        let lo = self.p.time.lo;
        let (last, _) = *bins.last().expect("a checked weight is positive somewhere");
        let mut t = self.real_const(lo + last as f64);
        let mut w = self.real_const(1.0 / (n * probs[last]));
        let cond = |l: &mut Self, c: f32| {
            let c = l.real_const(c as f64);
            l.push(Node::Binary(BinOp::Lt, u, c), Kind::Bool, Extent::Sample)
        };
        if bins.len() == 1 {
            // One time can be drawn: it is still one value per sample.
            let c = cond(self, 1.0);
            t = self.push(Node::Select(c, t, t), Kind::Real, Extent::Sample);
            w = self.push(Node::Select(c, w, w), Kind::Real, Extent::Sample);
        }
        for &(k, c) in bins[..bins.len() - 1].iter().rev() {
            let c = cond(self, c);
            let (tk, wk) = (
                self.real_const(lo + k as f64),
                self.real_const(1.0 / (n * probs[k])),
            );
            t = self.push(Node::Select(c, tk, t), Kind::Real, Extent::Sample);
            w = self.push(Node::Select(c, wk, w), Kind::Real, Extent::Sample);
        }
        self.prog.results.push(t);
        self.prog.results.push(w);
    }

    /// A network's declared inputs, of the fields the entry is given, at the entry's time: what
    /// a sampler's call of the network passes it (`issue_call` builds the same expressions).
    fn net_inputs(&mut self, name: &str) -> Result<(), String> {
        let nname = name.strip_prefix("net_inputs.").unwrap_or(name);
        let n = self
            .p
            .networks
            .iter()
            .find(|n| n.name == nname)
            .cloned()
            .ok_or_else(|| format!("no network `{nname}`"))?;
        for inp in &n.inputs {
            let r = match inp {
                typed::NetInput::Field { field, expr } => {
                    let port = crate::entries::net_field_port(self.p, *field);
                    let i = self.input_index(&port.name)?;
                    let f = self.p.field(*field).clone();
                    let held = self.input_node(i, kind_of(f.elem), Some(f.shape.clone()));
                    let saved = (
                        std::mem::take(&mut self.subst),
                        std::mem::take(&mut self.memo),
                    );
                    for version in [typed::Version::T, typed::Version::Data] {
                        self.subst.insert(
                            FieldRef {
                                field: *field,
                                version,
                            },
                            held,
                        );
                    }
                    let r = self.expr(*expr);
                    (self.subst, self.memo) = saved;
                    r?
                }
                typed::NetInput::Time { expr } => {
                    let kind = kind_of(self.p.expr(*expr).ty.elem().unwrap_or(Elem::Real));
                    self.coef(*expr, None, kind)
                }
            };
            self.prog.results.push(r);
        }
        Ok(())
    }

    fn posterior(&mut self, name: &str) -> Result<(), String> {
        let k = self.kernel_for(&self.p.posteriors.clone(), name, "posterior.")?;
        let (_, params) = self.dist_params(k.dist)?;
        self.prog.results = params;
        Ok(())
    }

    /// `posterior_soft`: the posterior mixed over the class probabilities given for x_0.
    fn posterior_soft(&mut self, name: &str) -> Result<(), String> {
        let k = self.kernel_for(&self.p.posteriors.clone(), name, "posterior_soft.")?;
        let ExprKind::Dist { family, params } = self.p.expr(k.dist).kind.clone() else {
            return Err("a posterior that is not a distribution".into());
        };
        let r0 = FieldRef {
            field: k.target.field,
            version: typed::Version::Data,
        };
        let f = self.p.field(k.target.field).clone();
        let i = self.input_index(&crate::entries::soft_port(self.p, r0))?;
        let kind = match f.elem {
            Elem::Cat(c) => Kind::Vec(c),
            _ => Kind::Real,
        };
        let w = self.input_node(i, kind, Some(f.shape));
        let mixed = self.mixture_of(&params, r0, w, family, true)?;
        self.prog.results = vec![mixed];
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

/// Lower sampler `name`: its init, step and finalize statements become ops over one node arena.
pub fn lower_sampler(p: &Process, name: &str) -> Result<SamplerProgram, String> {
    let Some(s) = p.samplers.iter().find(|s| s.name == name) else {
        let names: Vec<&str> = p.samplers.iter().map(|s| s.name.as_str()).collect();
        return Err(format!(
            "process `{}` has no sampler `{name}` (it has: {})",
            p.name,
            names.join(", ")
        ));
    };
    let entry = Entry {
        kind: EntryKind::Step,
        name: format!("sampler.{name}"),
        inputs: Vec::new(),
        outputs: Vec::new(),
    };
    let mut l = Lower::new(p, &entry);
    let init = l.block(&s.init)?;
    let step = l.block(&s.step)?;
    let finalize = l.block(&s.finalize)?;
    let history = s.history.iter().map(|h| l.slots[h]).collect();
    let history_names = s
        .history
        .iter()
        .map(|h| p.locals[h.index()].name.clone())
        .collect();
    let mut set = Vec::new();
    for ops in [&init, &step, &finalize] {
        fields_set(ops, &mut set);
    }
    let mut read = Vec::new();
    for n in &l.prog.nodes {
        if let Node::State(f) = n.node {
            if !read.contains(&f) {
                read.push(f);
            }
        }
    }
    let conditions = read.into_iter().filter(|f| !set.contains(f)).collect();
    Ok(SamplerProgram {
        name: name.to_string(),
        slots: l.n_slots,
        calls: l.calls.len() as u32,
        prog: l.prog,
        init,
        step,
        finalize,
        history,
        history_names,
        conditions,
    })
}

fn fields_set(ops: &[Op], out: &mut Vec<u32>) {
    for op in ops {
        match op {
            Op::Set { field, .. } if !out.contains(field) => {
                out.push(*field);
            }
            Op::If {
                then, otherwise, ..
            } => {
                fields_set(then, out);
                fields_set(otherwise, out);
            }
            Op::Repeat { body, .. } => fields_set(body, out),
            _ => {}
        }
    }
}

impl Lower<'_> {
    fn new_slot(&mut self) -> u32 {
        self.n_slots += 1;
        self.n_slots - 1
    }

    fn emit(&mut self, op: Op) {
        self.ops.last_mut().unwrap().push(op);
    }

    fn block(&mut self, stmts: &[typed::Stmt]) -> Result<Vec<Op>, String> {
        self.ops.push(Vec::new());
        for st in stmts {
            // Nodes read the state when their op runs: nothing is shared across statements.
            self.memo.clear();
            self.stmt(st)?;
        }
        Ok(self.ops.pop().unwrap())
    }

    fn stmt(&mut self, st: &typed::Stmt) -> Result<(), String> {
        use typed::StmtKind as S;
        match &st.kind {
            S::Let { local, value } if matches!(self.p.expr(*value).ty, Ty::NetCall(_)) => {
                // `let o = net(…)` with several outputs: the call runs here, its outputs are read later.
                let _ = local;
                self.issue_call(*value)?;
            }
            S::Let { local, value } => {
                let node = self.expr(*value)?;
                let slot = self.new_slot();
                self.slots.insert(*local, slot);
                self.emit(Op::Slot { slot, node });
            }
            S::Draw { local, dist, shape } => {
                let elem = self.p.locals[local.index()].ty.elem().unwrap_or(Elem::Real);
                let name = self.p.locals[local.index()].name.clone();
                let node = self.draw_node(*dist, shape.clone(), elem, &name)?;
                let slot = self.new_slot();
                self.slots.insert(*local, slot);
                self.emit(Op::Slot { slot, node });
            }
            S::Assign { field, value } => {
                let node = self.expr(*value)?;
                self.emit(Op::Set {
                    field: field.0,
                    node,
                });
            }
            S::Sample { field, dist } => {
                let f = self.p.field(*field).clone();
                let node = self.draw_node(*dist, f.shape, f.elem, &f.name)?;
                self.emit(Op::Set {
                    field: field.0,
                    node,
                });
            }
            S::If {
                cond,
                then,
                otherwise,
            } => {
                let cond = self.expr(*cond)?;
                let then = self.block(then)?;
                let otherwise = self.block(otherwise)?;
                self.emit(Op::If {
                    cond,
                    then,
                    otherwise,
                });
            }
            S::Repeat { count, body } => {
                let count = self.expr(*count)?;
                let body = self.block(body)?;
                self.emit(Op::Repeat { count, body });
            }
        }
        Ok(())
    }

    /// A draw from a distribution expression: a family, the declared posterior (with its
    /// conditioning variables bound, possibly mixed over class probabilities) or the prior.
    fn draw_node(
        &mut self,
        dist: ExprId,
        shape: Shape,
        elem: Elem,
        name: &str,
    ) -> Result<NodeId, String> {
        let (family, params) = match self.p.expr(dist).kind.clone() {
            ExprKind::Dist { family, params } => (
                family,
                params
                    .iter()
                    .map(|e| self.expr(*e))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            ExprKind::Prior { index } => {
                let k = self.p.priors[index as usize].clone();
                self.dist_params(k.dist)?
            }
            ExprKind::Posterior {
                index,
                given,
                mixture,
            } => {
                let k = self.p.posteriors[index as usize].clone();
                let ExprKind::Dist { family, params } = self.p.expr(k.dist).kind.clone() else {
                    return Err("a posterior that is not a distribution".into());
                };
                let saved = std::mem::take(&mut self.subst);
                for (r, v) in &given {
                    let n = self.expr(*v)?;
                    self.subst.insert(*r, n);
                }
                let params = match mixture {
                    None => {
                        self.memo.clear();
                        params
                            .iter()
                            .map(|e| self.expr(*e))
                            .collect::<Result<Vec<_>, _>>()?
                    }
                    Some((r0, weights)) => vec![self.mixture(&params, r0, weights, family)?],
                };
                self.subst = saved;
                self.memo.clear();
                (family, params)
            }
            _ => return Err("a draw from something that is not a distribution".into()),
        };
        let site = self.prog.draws.len() as u32;
        // A draw of a field is supplied as its noise, named as the entries name theirs (`eps_x`
        // for a Gaussian, `u_X` for the uniforms of a discrete draw), so that it is never taken
        // for the field itself.
        let name = if self.p.fields.iter().any(|f| f.name == name) {
            match family {
                Family::Normal => format!("eps_{name}"),
                _ => format!("u_{name}"),
            }
        } else {
            name.to_string()
        };
        let name = name.as_str();
        // Several draws of one name (in different branches) are told apart by their site.
        let name = if self.prog.draws.iter().any(|d| d.name == name) {
            format!("{name}#{site}")
        } else {
            name.to_string()
        };
        self.prog.draws.push(DrawSite { family, name });
        Ok(self.push_shaped(
            Node::Draw {
                site,
                family,
                params,
            },
            kind_of(elem),
            Extent::Element,
            Some(shape),
        ))
    }

    /// Σ_c w(c) · q(· | x_0 = c), renormalised: the posterior's class probabilities (or, for a
    /// bool field, its probability of `true`) mixed over the weights `w`.
    fn mixture(
        &mut self,
        params: &[ExprId],
        r0: FieldRef,
        weights: ExprId,
        family: Family,
    ) -> Result<NodeId, String> {
        let w = self.expr(weights)?;
        self.mixture_of(params, r0, w, family, false)
    }

    /// `mixture` with the weights as a node. With `empty_where_unweighted`, an element whose
    /// mixture has no mass (weights of 0 on every class, as on the empty diagonal of a `sym`
    /// field, or only on classes that cannot reach x_t) is 0 rather than 0/0.
    fn mixture_of(
        &mut self,
        params: &[ExprId],
        r0: FieldRef,
        w: NodeId,
        family: Family,
        empty_where_unweighted: bool,
    ) -> Result<NodeId, String> {
        let field = self.p.field(r0.field).clone();
        let shape = Some(field.shape.clone());
        let el = |l: &mut Self, node: Node, kind: Kind| {
            l.push_shaped(node, kind, Extent::Element, shape.clone())
        };
        match (family, field.elem) {
            (Family::Categorical, Elem::Cat(k)) => {
                let mut acc: Option<NodeId> = None;
                for c in 0..k {
                    let class = self.push(Node::Const(c as f64), Kind::Class(k), Extent::Uniform);
                    self.subst.insert(r0, class);
                    self.memo.clear();
                    let probs = self.expr(params[0])?;
                    let idx = self.push(Node::Const(c as f64), Kind::Real, Extent::Uniform);
                    let wc = el(self, Node::Index(w, idx), Kind::Real);
                    let term = el(self, Node::Binary(BinOp::Mul, wc, probs), Kind::Vec(k));
                    acc = Some(match acc {
                        None => term,
                        Some(a) => el(self, Node::Binary(BinOp::Add, a, term), Kind::Vec(k)),
                    });
                }
                let acc = acc.ok_or("a mixture over no classes")?;
                let mut total = el(self, Node::Call(Builtin::VSum, vec![acc]), Kind::Real);
                if empty_where_unweighted {
                    let zero = self.push(Node::Const(0.0), Kind::Real, Extent::Uniform);
                    let one = self.push(Node::Const(1.0), Kind::Real, Extent::Uniform);
                    let some = el(self, Node::Binary(BinOp::Gt, total, zero), Kind::Bool);
                    total = el(self, Node::Select(some, total, one), Kind::Real);
                }
                Ok(el(self, Node::Binary(BinOp::Div, acc, total), Kind::Vec(k)))
            }
            (Family::Bernoulli, Elem::Bool) => {
                let mut p = [NodeId(0); 2];
                for (c, slot) in p.iter_mut().enumerate() {
                    let v = self.push(Node::Const(c as f64), Kind::Bool, Extent::Uniform);
                    self.subst.insert(r0, v);
                    self.memo.clear();
                    *slot = self.expr(params[0])?;
                }
                let one = self.push(Node::Const(1.0), Kind::Real, Extent::Uniform);
                let wf = el(self, Node::Binary(BinOp::Sub, one, w), Kind::Real);
                let a = el(self, Node::Binary(BinOp::Mul, wf, p[0]), Kind::Real);
                let b = el(self, Node::Binary(BinOp::Mul, w, p[1]), Kind::Real);
                Ok(el(self, Node::Binary(BinOp::Add, a, b), Kind::Real))
            }
            _ => Err("a mixture needs a categorical or Bernoulli posterior".into()),
        }
    }
}
