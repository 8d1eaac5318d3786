//! Reverse-mode differentiation of an IR program: the gradient of a per-sample value (a loss)
//! with respect to element inputs (the network's outputs), built as more nodes of the same arena.

use super::*;
use crate::syntax::ast::{BinOp, UnOp};
use crate::typed::Builtin;

struct Grad<'a> {
    prog: &'a mut Program,
    dep: Vec<bool>,
    adj: Vec<Option<NodeId>>,
}

/// d value / d wrt[i] for every i, one node each, shaped like the input.
pub fn gradient(prog: &mut Program, value: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>, String> {
    let n0 = prog.nodes.len();
    let mut dep = vec![false; n0];
    for w in wrt {
        dep[w.index()] = true;
    }
    for i in 0..n0 {
        if prog.nodes[i].node.children().iter().any(|c| dep[c.index()]) {
            dep[i] = true;
        }
    }
    let mut g = Grad {
        prog,
        dep,
        adj: vec![None; n0],
    };
    let one = g.konst(1.0);
    g.adj[value.index()] = Some(one);
    for i in (0..=value.index()).rev() {
        if !g.dep[i] {
            continue;
        }
        let Some(a) = g.adj[i] else { continue };
        g.back(NodeId(i as u32), a)?;
    }
    let mut out = Vec::new();
    for w in wrt {
        let adj = match g.adj[w.index()] {
            Some(a) => a,
            None => g.konst(0.0),
        };
        // Broadcast to the input's own shape: w * 0 + adj.
        let zero = g.konst(0.0);
        let z = g.bin(BinOp::Mul, *w, zero);
        out.push(g.bin(BinOp::Add, z, adj));
    }
    Ok(out)
}

impl Grad<'_> {
    fn info(&self, n: NodeId) -> &NodeInfo {
        &self.prog.nodes[n.index()]
    }

    fn push(&mut self, node: Node, kind: Kind, extent: Extent, shape: Option<Shape>) -> NodeId {
        self.prog.push(node, kind, extent, shape)
    }

    fn konst(&mut self, x: f64) -> NodeId {
        self.push(Node::Const(x), Kind::Real, Extent::Uniform, None)
    }

    /// The kind, extent and shape of an element-wise combination.
    fn joint(&self, args: &[NodeId]) -> (Kind, Extent, Option<Shape>) {
        let mut kind = Kind::Real;
        let mut extent = Extent::Uniform;
        let mut shape = None;
        for a in args {
            let i = self.info(*a);
            if let Kind::Vec(k) = i.kind {
                kind = Kind::Vec(k);
            }
            let rank = |e: Extent| match e {
                Extent::Uniform => 0,
                Extent::Sample => 1,
                Extent::Element => 2,
            };
            if rank(i.extent) > rank(extent) {
                extent = i.extent;
            }
            if i.extent == Extent::Element {
                shape = i.shape.clone();
            }
        }
        (kind, extent, shape)
    }

    fn bin(&mut self, op: BinOp, a: NodeId, b: NodeId) -> NodeId {
        let (kind, extent, shape) = self.joint(&[a, b]);
        self.push(Node::Binary(op, a, b), kind, extent, shape)
    }

    fn call(&mut self, f: Builtin, args: Vec<NodeId>, kind: Kind) -> NodeId {
        let (_, extent, shape) = self.joint(&args);
        self.push(Node::Call(f, args), kind, extent, shape)
    }

    fn neg(&mut self, a: NodeId) -> NodeId {
        let i = self.info(a).clone();
        self.push(Node::Unary(UnOp::Neg, a), i.kind, i.extent, i.shape)
    }

    fn select(&mut self, c: NodeId, a: NodeId, b: NodeId) -> NodeId {
        let (kind, extent, shape) = self.joint(&[c, a, b]);
        self.push(Node::Select(c, a, b), kind, extent, shape)
    }

    /// Add a contribution to a node's adjoint, reducing it to the node's kind and extent.
    fn add(&mut self, target: NodeId, contrib: NodeId) {
        if !self.dep[target.index()] {
            return;
        }
        let t = self.info(target).clone();
        let mut c = contrib;
        if !matches!(t.kind, Kind::Vec(_)) && matches!(self.info(c).kind, Kind::Vec(_)) {
            c = self.call(Builtin::VSum, vec![c], Kind::Real);
        }
        if t.extent == Extent::Sample && self.info(c).extent == Extent::Element {
            c = self.push(
                Node::Reduce(Builtin::Sum, c),
                self.info(c).kind,
                Extent::Sample,
                None,
            );
        }
        self.adj[target.index()] = Some(match self.adj[target.index()] {
            None => c,
            Some(a) => self.bin(BinOp::Add, a, c),
        });
    }

    fn back(&mut self, n: NodeId, g: NodeId) -> Result<(), String> {
        let info = self.info(n).clone();
        match &info.node {
            Node::Unary(UnOp::Neg, a) => {
                let c = self.neg(g);
                self.add(*a, c);
            }
            Node::Binary(op, a, b) => {
                let (a, b) = (*a, *b);
                match op {
                    BinOp::Add => {
                        self.add(a, g);
                        self.add(b, g);
                    }
                    BinOp::Sub => {
                        self.add(a, g);
                        let c = self.neg(g);
                        self.add(b, c);
                    }
                    BinOp::Mul => {
                        let ca = self.bin(BinOp::Mul, g, b);
                        self.add(a, ca);
                        let cb = self.bin(BinOp::Mul, g, a);
                        self.add(b, cb);
                    }
                    BinOp::Div => {
                        let ca = self.bin(BinOp::Div, g, b);
                        self.add(a, ca);
                        // d(a/b)/db = -(a/b)/b
                        let q = self.bin(BinOp::Div, n, b);
                        let gq = self.bin(BinOp::Mul, g, q);
                        let cb = self.neg(gq);
                        self.add(b, cb);
                    }
                    BinOp::Pow => {
                        // d a^b / da = b a^(b-1); d a^b / db = a^b ln a
                        let one = self.konst(1.0);
                        let bm1 = self.bin(BinOp::Sub, b, one);
                        let p = self.bin(BinOp::Pow, a, bm1);
                        let bp = self.bin(BinOp::Mul, b, p);
                        let ca = self.bin(BinOp::Mul, g, bp);
                        self.add(a, ca);
                        if self.dep[b.index()] {
                            let ln = self.call(Builtin::Log, vec![a], self.info(a).kind);
                            let t = self.bin(BinOp::Mul, n, ln);
                            let cb = self.bin(BinOp::Mul, g, t);
                            self.add(b, cb);
                        }
                    }
                    BinOp::MatMul => {
                        // v @ M with M a coefficient: d/dv = M @ g.
                        if self.dep[b.index()] {
                            return Err("the gradient through a product with a network output on the right is not supported".into());
                        }
                        let c = self.push(
                            Node::Binary(BinOp::MatMul, b, g),
                            info.kind,
                            info.extent,
                            info.shape.clone(),
                        );
                        self.add(a, c);
                    }
                    _ => {} // comparisons and logic have no gradient
                }
            }
            Node::Select(c, a, b) => {
                let zero = self.konst(0.0);
                let ca = self.select(*c, g, zero);
                self.add(*a, ca);
                let cb = self.select(*c, zero, g);
                self.add(*b, cb);
            }
            Node::Reduce(f, a) => {
                // Entries a node mask leaves out take no part in the reduction, nor in its gradient.
                let real = {
                    let i = self.info(*a).clone();
                    self.push(Node::IsReal(*a), Kind::Bool, Extent::Element, i.shape)
                };
                let zero = self.konst(0.0);
                let c = match f {
                    Builtin::Sum => g,
                    Builtin::Mean => {
                        let cnt = self.push(Node::Count(*a), Kind::Real, Extent::Sample, None);
                        self.bin(BinOp::Div, g, cnt)
                    }
                    _ => {
                        // norm: d |a| / da = a / |a|
                        let q = self.bin(BinOp::Div, *a, n);
                        self.bin(BinOp::Mul, g, q)
                    }
                };
                let c = self.select(real, c, zero);
                self.add(*a, c);
            }
            Node::Index(v, i) => {
                let k = match self.info(*v).kind {
                    Kind::Vec(k) => k,
                    _ => return Err("an index into a value that is not a vector".into()),
                };
                let oh = self.call(Builtin::OneHot, vec![*i], Kind::Vec(k));
                let c = self.bin(BinOp::Mul, g, oh);
                self.add(*v, c);
            }
            Node::List(items) => {
                for (j, item) in items.clone().into_iter().enumerate() {
                    let idx = self.konst(j as f64);
                    let c = self.push(
                        Node::Index(g, idx),
                        Kind::Real,
                        self.info(g).extent,
                        self.info(g).shape.clone(),
                    );
                    self.add(item, c);
                }
            }
            Node::Call(f, args) => self.back_call(n, *f, args.clone(), g)?,
            Node::Input(_) | Node::Const(_) | Node::Coef(_) | Node::Count(_) | Node::IsReal(_) => {}
            other => return Err(format!("the loss's gradient cannot pass through {other:?}")),
        }
        Ok(())
    }

    fn back_call(
        &mut self,
        n: NodeId,
        f: Builtin,
        args: Vec<NodeId>,
        g: NodeId,
    ) -> Result<(), String> {
        use Builtin as B;
        let a = args.first().copied();
        let kind_a = a.map(|a| self.info(a).kind).unwrap_or(Kind::Real);
        let unary = |s: &mut Self, d: NodeId| {
            let c = s.bin(BinOp::Mul, g, d);
            s.add(args[0], c);
        };
        match f {
            B::Sqrt => {
                let two = self.konst(2.0);
                let d = self.bin(BinOp::Mul, two, n);
                let c = self.bin(BinOp::Div, g, d);
                self.add(args[0], c);
            }
            B::Exp => unary(self, n),
            B::Expm1 => {
                let one = self.konst(1.0);
                let d = self.bin(BinOp::Add, n, one);
                unary(self, d);
            }
            B::Log => {
                let c = self.bin(BinOp::Div, g, args[0]);
                self.add(args[0], c);
            }
            B::Log1p => {
                let one = self.konst(1.0);
                let d = self.bin(BinOp::Add, args[0], one);
                let c = self.bin(BinOp::Div, g, d);
                self.add(args[0], c);
            }
            B::Sigmoid => {
                let one = self.konst(1.0);
                let om = self.bin(BinOp::Sub, one, n);
                let d = self.bin(BinOp::Mul, n, om);
                unary(self, d);
            }
            B::Softplus => {
                let d = self.call(B::Sigmoid, vec![args[0]], kind_a);
                unary(self, d);
            }
            B::Tanh => {
                let one = self.konst(1.0);
                let sq = self.bin(BinOp::Mul, n, n);
                let d = self.bin(BinOp::Sub, one, sq);
                unary(self, d);
            }
            B::Abs => {
                let zero = self.konst(0.0);
                let neg = self.push(
                    Node::Binary(BinOp::Lt, args[0], zero),
                    Kind::Bool,
                    self.info(args[0]).extent,
                    self.info(args[0]).shape.clone(),
                );
                let ng = self.neg(g);
                let c = self.select(neg, ng, g);
                self.add(args[0], c);
            }
            B::Min | B::Max => {
                let op = if f == B::Max { BinOp::Ge } else { BinOp::Le };
                let (ext, shape) = (self.joint(&args).1, self.joint(&args).2);
                let first = self.push(Node::Binary(op, args[0], args[1]), Kind::Bool, ext, shape);
                let zero = self.konst(0.0);
                let ca = self.select(first, g, zero);
                self.add(args[0], ca);
                let cb = self.select(first, zero, g);
                self.add(args[1], cb);
            }
            B::Clamp => {
                let (ext, shape) = (self.joint(&args).1, self.joint(&args).2);
                let lo = self.push(
                    Node::Binary(BinOp::Lt, args[0], args[1]),
                    Kind::Bool,
                    ext,
                    shape.clone(),
                );
                let hi = self.push(
                    Node::Binary(BinOp::Gt, args[0], args[2]),
                    Kind::Bool,
                    ext,
                    shape.clone(),
                );
                let out = self.push(Node::Binary(BinOp::Or, lo, hi), Kind::Bool, ext, shape);
                let zero = self.konst(0.0);
                let c = self.select(out, zero, g);
                self.add(args[0], c);
            }
            B::LogAddExp => {
                for x in args.clone() {
                    let d = self.bin(BinOp::Sub, x, n);
                    let e = self.call(B::Exp, vec![d], self.info(d).kind);
                    let c = self.bin(BinOp::Mul, g, e);
                    self.add(x, c);
                }
            }
            B::VSum => {
                // Broadcast the scalar adjoint over the class axis: v * 0 + g.
                let zero = self.konst(0.0);
                let z = self.bin(BinOp::Mul, args[0], zero);
                let c = self.bin(BinOp::Add, z, g);
                self.add(args[0], c);
            }
            B::Dot => {
                let ca = self.bin(BinOp::Mul, g, args[1]);
                self.add(args[0], ca);
                let cb = self.bin(BinOp::Mul, g, args[0]);
                self.add(args[1], cb);
            }
            B::Softmax => {
                // d softmax: s ⊙ (g - <g, s>)
                let gs = self.call(B::Dot, vec![g, n], Kind::Real);
                let d = self.bin(BinOp::Sub, g, gs);
                let c = self.bin(BinOp::Mul, n, d);
                self.add(args[0], c);
            }
            B::LogSoftmax => {
                let s = self.call(B::Exp, vec![n], kind_a);
                let sg = self.call(B::VSum, vec![g], Kind::Real);
                let t = self.bin(BinOp::Mul, s, sg);
                let c = self.bin(BinOp::Sub, g, t);
                self.add(args[0], c);
            }
            B::LogSumExp => {
                let s = self.call(B::Softmax, vec![args[0]], kind_a);
                let c = self.bin(BinOp::Mul, g, s);
                self.add(args[0], c);
            }
            B::OneHot | B::Argmax | B::Floor => {} // piecewise constant
            other => {
                return Err(format!(
                    "the loss's gradient cannot pass through `{}` of a network output",
                    other.name()
                ))
            }
        }
        Ok(())
    }
}
