//! The process IR: one `Program` per entry point.
//!
//! Contract:
//! - A program has a host part and an element part.
//!   The host part is `coefs`: typed expressions of the checked process that depend only on
//!   times, parameters and constants; they are evaluated in f64 once per call (or once per
//!   sample when the time differs per sample) by `check::eval`.
//!   The element part is `nodes`, a pure DAG in one arena with `NodeId` handles; it runs in f32
//!   on every element of the entry's field shape and reads coefficients through `Node::Coef`.
//! - Inputs and outputs are the ports of `entries::Entry`, in the same order; `results[i]` is the
//!   node written to output `i`.
//! - Every random draw is a `Node::Draw` with its own `site`: the RNG stream of that draw.
//!   A caller may supply the draw instead (the noise, uniforms or classes), so that results can
//!   be compared with other implementations given the same randomness.
//! - Lowering never changes results: the host/element split is a schedule, not semantics.

pub mod grad;
pub mod lower;

use crate::entries::{EntryKind, Port};
use crate::syntax::ast::{BinOp, UnOp};
use crate::typed::{Builtin, ExprId, Family, Shape};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What one element of a node holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Real,
    Bool,
    /// A class index in 0..K.
    Class(u32),
    /// K reals.
    Vec(u32),
    /// K×K reals (only as a coefficient).
    Mat(u32),
}

/// How a node varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    /// The same for every element of a sample (a constant, a coefficient).
    Uniform,
    /// One value per sample (a reduction).
    Sample,
    /// One value per element of the entry's shape.
    Element,
}

#[derive(Clone, Debug)]
pub enum Node {
    Const(f64),
    /// A host coefficient, `Program::coefs[i]`.
    Coef(u32),
    /// Input port `i`.
    Input(u32),
    Unary(UnOp, NodeId),
    Binary(BinOp, NodeId, NodeId),
    Call(Builtin, Vec<NodeId>),
    /// `if c then a else b`, per element.
    Select(NodeId, NodeId, NodeId),
    /// An element of a per-element vector.
    Index(NodeId, NodeId),
    /// A vector (or, of vectors, a matrix) built from its entries.
    List(Vec<NodeId>),
    /// A draw from a distribution; `site` is its RNG stream and the index of the draw a caller may supply.
    Draw {
        site: u32,
        family: Family,
        params: Vec<NodeId>,
    },
    /// The log-density of `value` under a distribution, per element (summed over a class axis).
    LogDensity {
        family: Family,
        params: Vec<NodeId>,
        value: NodeId,
    },
    /// A reduction over the entry's element axes: `sum`, `mean` or `norm`, masked entries left out.
    Reduce(Builtin, NodeId),
    /// A sampler's current value of field `i` (`Process::fields[i]`).
    State(u32),
    /// A value a sampler statement stored (`let`, a draw).
    Slot(u32),
    /// Output `output` of network call `call` of the sampler.
    NetOut {
        call: u32,
        output: u32,
    },
    /// The previous step's value of a slot.
    Prev(u32),
    /// The number of real elements per sample of a node's shape (for the gradient of `mean`).
    Count(NodeId),
    /// Per element of a node's shape: is it real under its node mask (for gradients of reductions)?
    IsReal(NodeId),
    /// The uniforms a draw (`Node::Draw`, by site) of a categorical, Bernoulli or uniform
    /// distribution used: its noise. Evaluated after the draw.
    Uniforms {
        draw: NodeId,
        site: u32,
    },
}

/// The effects of a sampler, in order. Nodes read the state when the op that uses them runs.
#[derive(Clone, Debug)]
pub enum Op {
    /// Store a value in a slot.
    Slot { slot: u32, node: NodeId },
    /// Update a field of the state.
    Set { field: u32, node: NodeId },
    /// Call a network: `args` in the order of its inputs (times are host coefficients).
    /// `fields` and `time` are the call's own arguments before the network's input expressions
    /// apply: the value of each field input's field, and the time the call is made at. They are
    /// for denoisers that need the state itself (the empirical denoiser reads `log_q` of it);
    /// no kernel reads them.
    Call {
        call: u32,
        net: u32,
        args: Vec<NodeId>,
        fields: Vec<(u32, NodeId)>,
        time: Option<crate::typed::ExprId>,
    },
    /// A branch on a per-step condition (a host coefficient).
    If {
        cond: NodeId,
        then: Vec<Op>,
        otherwise: Vec<Op>,
    },
    /// An inner loop (Langevin).
    Repeat { count: NodeId, body: Vec<Op> },
}

/// A sampler lowered: one program holds the nodes of `init`, `step` and `finalize`.
#[derive(Clone, Debug)]
pub struct SamplerProgram {
    pub name: String,
    pub prog: Program,
    pub init: Vec<Op>,
    pub step: Vec<Op>,
    pub finalize: Vec<Op>,
    pub slots: u32,
    pub calls: u32,
    /// Slots whose previous-step value the step reads, with the names of their `let`s.
    pub history: Vec<u32>,
    pub history_names: Vec<String>,
    /// Fields the sampler reads but never sets: conditioning inputs (target degrees, …).
    pub conditions: Vec<u32>,
}

impl Node {
    /// The nodes this node reads.
    pub fn children(&self) -> Vec<NodeId> {
        match self {
            Node::Unary(_, a) | Node::Reduce(_, a) | Node::Count(a) | Node::IsReal(a) => vec![*a],
            Node::Index(a, i) => vec![*a, *i],
            Node::Binary(_, a, b) => vec![*a, *b],
            Node::Select(c, a, b) => vec![*c, *a, *b],
            Node::Call(_, args) | Node::List(args) => args.clone(),
            Node::Draw { params, .. } => params.clone(),
            Node::LogDensity { params, value, .. } => {
                params.iter().chain([value]).cloned().collect()
            }
            Node::Uniforms { draw, .. } => vec![*draw],
            _ => Vec::new(),
        }
    }
}

/// The nodes the ops read, directly or not (for instance, to find a step's draws).
pub fn reachable(prog: &Program, ops: &[Op]) -> Vec<NodeId> {
    let mut stack = Vec::new();
    fn roots(ops: &[Op], out: &mut Vec<NodeId>) {
        for op in ops {
            match op {
                Op::Slot { node, .. } | Op::Set { node, .. } => out.push(*node),
                Op::Call { args, .. } => out.extend(args),
                Op::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    out.push(*cond);
                    roots(then, out);
                    roots(otherwise, out);
                }
                Op::Repeat { count, body } => {
                    out.push(*count);
                    roots(body, out);
                }
            }
        }
    }
    roots(ops, &mut stack);
    let mut seen = vec![false; prog.nodes.len()];
    let mut out = Vec::new();
    while let Some(n) = stack.pop() {
        if std::mem::replace(&mut seen[n.index()], true) {
            continue;
        }
        out.push(n);
        stack.extend(prog.node(n).node.children());
    }
    out
}

#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node: Node,
    pub kind: Kind,
    pub extent: Extent,
    /// The field shape an `Element` node runs over.
    pub shape: Option<Shape>,
}

/// What a draw site draws, for callers that supply the randomness themselves.
#[derive(Clone, Debug)]
pub struct DrawSite {
    pub family: Family,
    /// The name of this draw site: the name of the input that replaces it (`eps`, `u_x`, …),
    /// with `#SITE` after it when another site of the same program has that name (one draw in
    /// two branches); all sites of one name read the same supplied input.
    pub name: String,
}

impl DrawSite {
    /// The name of the input that replaces this draw.
    pub fn input(&self) -> &str {
        self.name.split('#').next().unwrap_or(&self.name)
    }
}

#[derive(Clone, Debug)]
pub struct Program {
    pub name: String,
    pub kind: EntryKind,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
    /// The host program: typed expressions evaluated in f64; the second member, when present,
    /// is a time expression whose value replaces the time (a conversion at a call's time).
    pub coefs: Vec<(ExprId, Option<ExprId>)>,
    pub nodes: Vec<NodeInfo>,
    pub results: Vec<NodeId>,
    pub draws: Vec<DrawSite>,
}

impl Program {
    pub fn node(&self, id: NodeId) -> &NodeInfo {
        &self.nodes[id.index()]
    }

    /// Add a node to the arena.
    pub fn push(&mut self, node: Node, kind: Kind, extent: Extent, shape: Option<Shape>) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        self.nodes.push(NodeInfo {
            node,
            kind,
            extent,
            shape,
        });
        id
    }
}
