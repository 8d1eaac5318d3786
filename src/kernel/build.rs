//! Lowering the process IR into kernels.
//!
//! - An entry's results with one domain share one kernel; a run of sampler statements that all
//!   run over one domain is one kernel (`plan_sampler`), with slots read only inside the run kept
//!   in registers.
//! - Nodes whose value at an element depends on other elements (`sum`, `mean`, `norm`,
//!   `rowsum`, `gram`, a node count) get kernels of their own with a loop inside; consumers
//!   load their results. `pair` reads its operands at gathered indices and fuses.
//! - Values that are the same for every element and not coefficients (a sampler `let` of
//!   coefficients only) stay on the host.
//! - Every operation reproduces the interpreter's arithmetic in the same order (sums start at
//!   -0.0 as Rust's `Iterator::sum` does; reductions over samples accumulate in f64), so that the
//!   backends agree with it bit for bit except where a C math function is called.

use super::*;
use crate::ir::{Extent, Kind, Node, NodeId, Op, Program, SamplerProgram};
use crate::syntax::ast::{BinOp, UnOp};
use crate::typed::{Builtin, Family, Process, Shape};
use std::collections::{BTreeSet, HashMap};

/// Which optional inputs a compiled program reads: draws the caller supplies (by site) and node
/// masks the caller gives (by `Process::masks` index). Each combination is compiled separately.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Variant {
    pub supplied: BTreeSet<u32>,
    pub masks: BTreeSet<u32>,
}

/// A run of sampler statements compiled together.
#[derive(Clone, Debug)]
pub struct Group {
    /// Number of statements in the run, from the one the group is keyed by.
    pub len: usize,
    /// Statements of the run the host evaluates first (values the same for every element).
    pub host: Vec<usize>,
    /// The kernel of the run's element statements.
    pub kernel: Option<usize>,
}

/// The kernels of one entry or sampler.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub kernels: Vec<Kernel>,
    /// The kernel that computes a node the host asks for.
    pub by_node: HashMap<NodeId, usize>,
    /// Statement runs, keyed by their first statement's target and node.
    pub groups: HashMap<(Target, NodeId), Group>,
}

/// The key of a statement run (slot or field written, and the node written).
pub fn op_key(op: &Op) -> Option<(Target, NodeId)> {
    match op {
        Op::Slot { slot, node } => Some((Target::Slot(*slot), *node)),
        Op::Set { field, node } => Some((Target::Field(*field), *node)),
        _ => None,
    }
}

fn kwidth(kind: Kind) -> u32 {
    match kind {
        Kind::Vec(k) => k,
        Kind::Mat(k) => k * k,
        _ => 1,
    }
}

fn store_of(kind: Kind) -> Store {
    match kind {
        Kind::Bool => Store::U8,
        Kind::Class(_) => Store::U32,
        _ => Store::F32,
    }
}

/// Is a node's value read from a buffer rather than computed where it is used?
pub(crate) fn is_leaf(n: &Node) -> bool {
    matches!(
        n,
        Node::Input(_) | Node::State(_) | Node::Slot(_) | Node::Prev(_) | Node::NetOut { .. }
    )
}

/// Does a node's value at one element depend on other elements (a kernel of its own)?
pub(crate) fn is_cross(n: &Node) -> bool {
    matches!(
        n,
        Node::Reduce(..) | Node::Count(_) | Node::Call(Builtin::RowSum | Builtin::Gram, _)
    )
}

struct Planner<'a> {
    p: &'a Process,
    prog: &'a Program,
    variant: &'a Variant,
    plan: Plan,
}

impl<'a> Planner<'a> {
    /// A kernel computing `id` (materialized) exists; returns its index.
    fn materialize(&mut self, id: NodeId) -> Result<(), String> {
        if self.plan.by_node.contains_key(&id) || is_leaf(&self.prog.node(id).node) {
            return Ok(());
        }
        let info = self.prog.node(id);
        if info.extent == Extent::Uniform {
            return Err(format!(
                "internal error: `{}` would materialize a value the same for every element",
                self.prog.name
            ));
        }
        let mut kb = KB::new(
            self,
            &format!("{}_n{}", self.prog.name, id.0),
            domain_of(info),
        )?;
        if is_cross(&info.node) {
            kb.cross(id)?;
        } else {
            let v = kb.node(id)?;
            kb.store(Target::Node(id), info.kind, &v);
        }
        let k = kb.finish(self)?;
        self.plan.by_node.insert(id, k);
        Ok(())
    }

    fn push(&mut self, k: Kernel) -> usize {
        self.plan.kernels.push(k);
        self.plan.kernels.len() - 1
    }
}

/// The shape a node's kernel runs over: its field shape, or none for one value per sample.
fn domain_of(info: &crate::ir::NodeInfo) -> Option<Shape> {
    match info.extent {
        Extent::Element => info.shape.clone(),
        _ => None,
    }
}

/// Plan an entry: its results, grouped by domain (results the same for every element stay on
/// the host).
pub fn plan_entry(p: &Process, prog: &Program, variant: &Variant) -> Result<Plan, String> {
    let mut pl = Planner {
        p,
        prog,
        variant,
        plan: Plan::default(),
    };
    let mut groups: Vec<(Option<Shape>, Vec<NodeId>)> = Vec::new();
    for r in &prog.results {
        let info = prog.node(*r);
        if info.extent == Extent::Uniform || is_leaf(&info.node) {
            continue;
        }
        if is_cross(&info.node) {
            pl.materialize(*r)?;
            continue;
        }
        let d = domain_of(info);
        match groups.iter_mut().find(|(s, _)| *s == d) {
            Some((_, v)) => {
                if !v.contains(r) {
                    v.push(*r)
                }
            }
            None => groups.push((d, vec![*r])),
        }
    }
    for (d, roots) in groups {
        let mut kb = KB::new(&pl, &prog.name, d)?;
        for r in &roots {
            let v = kb.node(*r)?;
            kb.store(Target::Node(*r), prog.node(*r).kind, &v);
        }
        let k = kb.finish(&mut pl)?;
        for r in roots {
            pl.plan.by_node.insert(r, k);
        }
    }
    Ok(pl.plan)
}

/// Plan a sampler: every run of statements over one domain is one kernel; network inputs that
/// are computed get kernels of their own.
pub fn plan_sampler(p: &Process, sp: &SamplerProgram, variant: &Variant) -> Result<Plan, String> {
    let prog = &sp.prog;
    let mut pl = Planner {
        p,
        prog,
        variant,
        plan: Plan::default(),
    };
    // Slots read outside the run that writes them must be stored.
    let mut all: Vec<&Op> = Vec::new();
    fn flat<'o>(ops: &'o [Op], out: &mut Vec<&'o Op>) {
        for op in ops {
            out.push(op);
            match op {
                Op::If {
                    then, otherwise, ..
                } => {
                    flat(then, out);
                    flat(otherwise, out);
                }
                Op::Repeat { body, .. } => flat(body, out),
                _ => {}
            }
        }
    }
    flat(&sp.init, &mut all);
    flat(&sp.step, &mut all);
    flat(&sp.finalize, &mut all);
    let reads = |ops: &[&Op]| -> BTreeSet<u32> {
        let owned: Vec<Op> = ops.iter().map(|o| (*o).clone()).collect();
        crate::ir::reachable(prog, &owned)
            .into_iter()
            .filter_map(|n| match prog.node(n).node {
                Node::Slot(s) => Some(s),
                _ => None,
            })
            .collect()
    };
    for ops in [&sp.init, &sp.step, &sp.finalize] {
        plan_ops(&mut pl, sp, ops, &all, &reads)?;
    }
    Ok(pl.plan)
}

type Reads<'r> = dyn Fn(&[&Op]) -> BTreeSet<u32> + 'r;

fn plan_ops(
    pl: &mut Planner,
    sp: &SamplerProgram,
    ops: &[Op],
    all: &[&Op],
    reads: &Reads,
) -> Result<(), String> {
    let prog = &sp.prog;
    let mut i = 0;
    while i < ops.len() {
        match &ops[i] {
            Op::Call { args, .. } => {
                for a in args {
                    let info = prog.node(*a);
                    if info.extent != Extent::Uniform && !is_leaf(&info.node) {
                        pl.materialize(*a)?;
                    }
                }
                i += 1;
            }
            Op::If {
                then, otherwise, ..
            } => {
                plan_ops(pl, sp, then, all, reads)?;
                plan_ops(pl, sp, otherwise, all, reads)?;
                i += 1;
            }
            Op::Repeat { body, .. } => {
                plan_ops(pl, sp, body, all, reads)?;
                i += 1;
            }
            Op::Slot { .. } | Op::Set { .. } => {
                let start = i;
                let run = scan_run(prog, ops, start, None, BTreeSet::new());
                i = run.end;
                // A run over elements followed by a branch on the host, whose two branches
                // each start with a run over the same elements: the run's element statements
                // join each branch's first kernel, so a step such as DPM-Solver++(2M)'s (its
                // model output, then one of two updates) is one launch. The run keeps its host
                // statements.
                if let (
                    Some(d),
                    Some(Op::If {
                        then, otherwise, ..
                    }),
                ) = (&run.domain, ops.get(run.end))
                {
                    let branch = |b: &[Op]| {
                        let r = scan_run(prog, b, 0, Some(d.clone()), run.written.clone());
                        (!r.elems.is_empty()).then_some(r)
                    };
                    if let (Some(a), Some(b)) = (branch(then), branch(otherwise)) {
                        let joined: Vec<&Op> = ops[start..run.end]
                            .iter()
                            .chain(&then[..a.end])
                            .chain(&otherwise[..b.end])
                            .collect();
                        add_group(pl, sp, &ops[start], run.end - start, run.host.clone(), None)?;
                        for (ops_b, r) in [(then, a), (otherwise, b)] {
                            let mut elems: Vec<&Op> = run.elems.iter().map(|&j| &ops[j]).collect();
                            elems.extend(r.elems.iter().map(|&j| &ops_b[j]));
                            let k = emit_kernel(pl, sp, &elems, d.clone(), &joined, all, reads)?;
                            add_group(pl, sp, &ops_b[0], r.end, r.host, Some(k))?;
                            plan_ops(pl, sp, &ops_b[r.end..], all, reads)?;
                        }
                        i += 1;
                        continue;
                    }
                }
                let kernel = match run.domain {
                    None => None,
                    Some(d) => {
                        let elems: Vec<&Op> = run.elems.iter().map(|&j| &ops[j]).collect();
                        let group: Vec<&Op> = ops[start..run.end].iter().collect();
                        Some(emit_kernel(pl, sp, &elems, d, &group, all, reads)?)
                    }
                };
                add_group(pl, sp, &ops[start], run.end - start, run.host, kernel)?;
            }
        }
    }
    Ok(())
}

/// A run of statements from `start`: the host's (values the same for every element, and
/// copies of values the run does not write) and the element statements over one domain, up to
/// the first statement over another domain, one that reads the run's writes across elements,
/// or one that is not an assignment. `domain` and `written` continue a run begun before.
struct Run {
    end: usize,
    domain: Option<Option<Shape>>,
    host: Vec<usize>,
    written: BTreeSet<Target>,
    elems: Vec<usize>,
}

fn scan_run(
    prog: &Program,
    ops: &[Op],
    start: usize,
    mut domain: Option<Option<Shape>>,
    mut written: BTreeSet<Target>,
) -> Run {
    let mut i = start;
    let mut host = Vec::new();
    let mut elems = Vec::new();
    let continued = domain.is_some();
    while i < ops.len() {
        let Some((target, node)) = op_key(&ops[i]) else {
            break;
        };
        let info = prog.node(node);
        // The host runs values the same for every element, and copies of values this run
        // does not write (a network's captured input).
        let copy = matches!(target, Target::Slot(_))
            && is_leaf(&info.node)
            && !match info.node {
                Node::State(f) => written.contains(&Target::Field(f)),
                Node::Slot(s) => written.contains(&Target::Slot(s)),
                _ => false,
            };
        if info.extent == Extent::Uniform || copy {
            host.push(i - start);
            i += 1;
            continue;
        }
        let d = domain_of(info);
        if domain.as_ref().is_some_and(|x| *x != d) {
            break;
        }
        // A value over other elements must see this run's writes: start a new run.
        if (continued || !elems.is_empty()) && reads_written_across(prog, node, &written) {
            break;
        }
        domain = Some(d);
        written.insert(target);
        elems.push(i);
        i += 1;
    }
    Run {
        end: i,
        domain,
        host,
        written,
        elems,
    }
}

/// The kernel of element statements `elems` over `domain`: each stores its value where a
/// statement outside `group` reads it, or the next step does (`prev`).
fn emit_kernel(
    pl: &mut Planner,
    sp: &SamplerProgram,
    elems: &[&Op],
    domain: Option<Shape>,
    group: &[&Op],
    all: &[&Op],
    reads: &Reads,
) -> Result<usize, String> {
    let prog = &sp.prog;
    let outside: Vec<&Op> = all
        .iter()
        .filter(|o| !group.iter().any(|g| std::ptr::eq(*g, **o)))
        .cloned()
        .collect();
    let live = reads(&outside);
    let name = format!("{}_{}", prog.name, pl.plan.kernels.len());
    let mut kb = KB::new(pl, &name, domain)?;
    for op in elems {
        let (target, node) = op_key(op).unwrap();
        let v = kb.node(node)?;
        let kind = prog.node(node).kind;
        let keep = match target {
            Target::Slot(s) => live.contains(&s) || sp.history.contains(&s),
            _ => true,
        };
        if keep {
            kb.store(target, kind, &v);
        }
        kb.written.insert(target, v);
        kb.memo.clear();
    }
    kb.finish(pl)
}

/// Record a run keyed by its first statement.
fn add_group(
    pl: &mut Planner,
    sp: &SamplerProgram,
    first: &Op,
    len: usize,
    host: Vec<usize>,
    kernel: Option<usize>,
) -> Result<(), String> {
    let key = op_key(first).unwrap();
    if pl
        .plan
        .groups
        .insert(key, Group { len, host, kernel })
        .is_some()
    {
        return Err(format!(
            "internal error: two statement runs of `{}` share a key",
            sp.name
        ));
    }
    Ok(())
}

/// Does `node` read, through a node over other elements, a slot or field in `written`?
fn reads_written_across(prog: &Program, node: NodeId, written: &BTreeSet<Target>) -> bool {
    fn leaves_of(
        prog: &Program,
        n: NodeId,
        inside_cross: bool,
        written: &BTreeSet<Target>,
    ) -> bool {
        let info = prog.node(n);
        let hit = match info.node {
            Node::State(f) => written.contains(&Target::Field(f)),
            Node::Slot(s) => written.contains(&Target::Slot(s)),
            _ => false,
        };
        if hit && inside_cross {
            return true;
        }
        let cross = inside_cross
            || is_cross(&info.node)
            || matches!(info.node, Node::Call(Builtin::Pair, _));
        info.node
            .children()
            .into_iter()
            .any(|c| leaves_of(prog, c, cross, written))
    }
    leaves_of(prog, node, false, written)
}

/// The builder of one kernel.
struct KB<'a> {
    p: &'a Process,
    prog: &'a Program,
    variant: &'a Variant,
    name: String,
    dims: Vec<String>,
    domain: Vec<u32>,
    domain_shape: Option<Shape>,
    bufs: Vec<Buf>,
    buf_index: HashMap<BufSrc, u32>,
    coefs: Vec<(u32, u32)>,
    pre: Vec<Stmt>,
    blocks: Vec<Vec<Stmt>>,
    next: u32,
    memo: HashMap<NodeId, Vec<V>>,
    /// Slots and fields this kernel wrote, by their values.
    written: HashMap<Target, Vec<V>>,
    /// Nodes this kernel loads that other kernels must compute first.
    needs: Vec<NodeId>,
    pre_memo: HashMap<Key, V>,
    per: Option<V>,
    sites: BTreeSet<u32>,
    tys: Vec<Ty>,
    cse: HashMap<Key, V>,
    /// Values known when the kernel is built: its literals, and what folding made of them.
    lits: HashMap<V, Lit>,
}

/// What identifies a pure statement for value numbering: equal keys, equal values.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// A literal by its type and bits.
    Lit(Ty, u64),
    Coef(u32),
    CoefAt(u32, V),
    Size(u32),
    Flat,
    Sample,
    Elem,
    Load(u32, V, u32),
    Un(Ty, Un, V),
    Bin(Ty, Bin, V, V),
    Cmp(Cmp, V, V),
    Select(Ty, V, V, V),
    Call(Libm, Vec<V>),
    Normal(u32, V),
    Uniform(u32, V),
}

impl Key {
    /// The key of a pure statement; `None` for statements with effects or scopes.
    fn of(ty: Ty, inst: &Inst) -> Option<Key> {
        Some(match inst {
            Inst::F32(x) => Key::Lit(ty, x.to_bits() as u64),
            Inst::F64(x) => Key::Lit(ty, x.to_bits()),
            Inst::I32(x) => Key::Lit(ty, *x as u64),
            Inst::I64(x) => Key::Lit(ty, *x),
            Inst::Bool(x) => Key::Lit(ty, *x as u64),
            Inst::Coef(i) => Key::Coef(*i),
            Inst::CoefAt { base, index } => Key::CoefAt(*base, *index),
            Inst::Size(i) => Key::Size(*i),
            Inst::Flat => Key::Flat,
            Inst::Sample => Key::Sample,
            Inst::Elem => Key::Elem,
            Inst::Load { buf, index, comp } => Key::Load(*buf, *index, *comp),
            Inst::Un(op, a) => Key::Un(ty, *op, *a),
            Inst::Bin(op, a, b) => Key::Bin(ty, *op, *a, *b),
            Inst::Cmp(op, a, b) => Key::Cmp(*op, *a, *b),
            Inst::Select(c, a, b) => Key::Select(ty, *c, *a, *b),
            Inst::Call(f, args) => Key::Call(*f, args.clone()),
            Inst::Normal { site, index } => Key::Normal(*site, *index),
            Inst::Uniform { site, index } => Key::Uniform(*site, *index),
            Inst::Store { .. }
            | Inst::Fail(..)
            | Inst::Loop { .. }
            | Inst::LoopIndex
            | Inst::LoopAcc => return None,
        })
    }
}

/// A literal value of the kernel IR.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lit {
    F32(f32),
    F64(f64),
    I32(u32),
    I64(u64),
    Bool(bool),
}

impl Lit {
    fn of(inst: &Inst) -> Option<Lit> {
        Some(match inst {
            Inst::F32(x) => Lit::F32(*x),
            Inst::F64(x) => Lit::F64(*x),
            Inst::I32(x) => Lit::I32(*x),
            Inst::I64(x) => Lit::I64(*x),
            Inst::Bool(x) => Lit::Bool(*x),
            _ => return None,
        })
    }
}

/// The value of a pure operation on literals, computed exactly as every backend computes it
/// (IEEE f32 and f64 arithmetic, unsigned wrapping integers, saturating float-to-integer), or
/// `None` where folding is not worth it or could differ.
fn fold_lits(inst: &Inst, lit: impl Fn(V) -> Option<Lit>) -> Option<Lit> {
    use Lit::*;
    Some(match inst {
        Inst::Un(op, a) => match (op, lit(*a)?) {
            (Un::Neg, F32(x)) => F32(-x),
            (Un::Abs, F32(x)) => F32(x.abs()),
            (Un::Sqrt, F32(x)) => F32(x.sqrt()),
            (Un::Floor, F32(x)) => F32(x.floor()),
            (Un::Not, Bool(x)) => Bool(!x),
            (Un::ToI32, F32(x)) => I32(x as u32),
            (Un::I32ToF32, I32(x)) => F32(x as f32),
            (Un::BoolToF32, Bool(x)) => F32(if x { 1.0 } else { 0.0 }),
            (Un::F32ToF64, F32(x)) => F64(x as f64),
            (Un::F64ToF32, F64(x)) => F32(x as f32),
            (Un::I32ToI64, I32(x)) => I64(x as u64),
            _ => return None,
        },
        Inst::Bin(op, a, b) => match (op, lit(*a)?, lit(*b)?) {
            (Bin::Add, F32(x), F32(y)) => F32(x + y),
            (Bin::Sub, F32(x), F32(y)) => F32(x - y),
            (Bin::Mul, F32(x), F32(y)) => F32(x * y),
            (Bin::Div, F32(x), F32(y)) => F32(x / y),
            (Bin::Add, F64(x), F64(y)) => F64(x + y),
            (Bin::Sub, F64(x), F64(y)) => F64(x - y),
            (Bin::Mul, F64(x), F64(y)) => F64(x * y),
            (Bin::Div, F64(x), F64(y)) => F64(x / y),
            // As the backends compute them: `x` unless `y` wins or `x` is NaN.
            (Bin::Min, F32(x), F32(y)) => F32(if y < x || x.is_nan() { y } else { x }),
            (Bin::Max, F32(x), F32(y)) => F32(if x < y || x.is_nan() { y } else { x }),
            (Bin::Add, I32(x), I32(y)) => I32(x.wrapping_add(y)),
            (Bin::Sub, I32(x), I32(y)) => I32(x.wrapping_sub(y)),
            (Bin::Mul, I32(x), I32(y)) => I32(x.wrapping_mul(y)),
            (Bin::UDiv | Bin::Div, I32(x), I32(y)) if y != 0 => I32(x / y),
            (Bin::URem, I32(x), I32(y)) if y != 0 => I32(x % y),
            (Bin::BitAnd, I32(x), I32(y)) => I32(x & y),
            (Bin::Add, I64(x), I64(y)) => I64(x.wrapping_add(y)),
            (Bin::Sub, I64(x), I64(y)) => I64(x.wrapping_sub(y)),
            (Bin::Mul, I64(x), I64(y)) => I64(x.wrapping_mul(y)),
            (Bin::UDiv | Bin::Div, I64(x), I64(y)) if y != 0 => I64(x / y),
            (Bin::URem, I64(x), I64(y)) if y != 0 => I64(x % y),
            (Bin::And, Bool(x), Bool(y)) => Bool(x && y),
            (Bin::Or, Bool(x), Bool(y)) => Bool(x || y),
            _ => return None,
        },
        Inst::Cmp(op, a, b) => {
            let ord = match (lit(*a)?, lit(*b)?) {
                (F32(x), F32(y)) => x.partial_cmp(&y),
                (F64(x), F64(y)) => x.partial_cmp(&y),
                (I32(x), I32(y)) => Some(x.cmp(&y)),
                (I64(x), I64(y)) => Some(x.cmp(&y)),
                (Bool(x), Bool(y)) => Some(x.cmp(&y)),
                _ => return None,
            };
            use std::cmp::Ordering::*;
            // Unordered (a NaN) is false for every comparison but `Ne`.
            Bool(match (op, ord) {
                (Cmp::Ne, o) => o != Some(Equal),
                (_, None) => false,
                (Cmp::Eq, Some(o)) => o == Equal,
                (Cmp::Lt, Some(o)) => o == Less,
                (Cmp::Le, Some(o)) => o != Greater,
                (Cmp::Gt, Some(o)) => o == Greater,
                (Cmp::Ge, Some(o)) => o != Less,
            })
        }
        _ => return None,
    })
}

impl<'a> KB<'a> {
    fn new(pl: &Planner<'a>, name: &str, domain: Option<Shape>) -> Result<KB<'a>, String> {
        let mut kb = KB {
            p: pl.p,
            prog: pl.prog,
            variant: pl.variant,
            name: name.replace('.', "_"),
            dims: Vec::new(),
            domain: Vec::new(),
            domain_shape: domain.clone(),
            bufs: Vec::new(),
            buf_index: HashMap::new(),
            coefs: Vec::new(),
            pre: Vec::new(),
            blocks: vec![Vec::new()],
            next: 0,
            memo: HashMap::new(),
            written: HashMap::new(),
            needs: Vec::new(),
            pre_memo: HashMap::new(),
            per: None,
            sites: BTreeSet::new(),
            tys: Vec::new(),
            cse: HashMap::new(),
            lits: HashMap::new(),
        };
        if let Some(s) = &domain {
            for d in &s.dims {
                let i = kb.dim(d.index());
                kb.domain.push(i);
            }
        }
        Ok(kb)
    }

    fn dim(&mut self, d: usize) -> u32 {
        let name = &self.p.dims[d].name;
        match self.dims.iter().position(|x| x == name) {
            Some(i) => i as u32,
            None => {
                self.dims.push(name.clone());
                (self.dims.len() - 1) as u32
            }
        }
    }

    fn emit(&mut self, ty: Ty, inst: Inst) -> V {
        if let Some(v) = self.fold(&inst) {
            return v;
        }
        // Value numbering: a pure statement already emitted in this block is reused.
        let key = if self.blocks.len() == 1 {
            Key::of(ty, &inst)
        } else {
            None
        };
        if let Some(v) = key.as_ref().and_then(|k| self.cse.get(k)) {
            return *v;
        }
        let id = V(self.next);
        if let Some(k) = key {
            self.cse.insert(k, id);
        }
        self.next += 1;
        self.tys.push(ty);
        self.blocks.last_mut().unwrap().push(Stmt { id, ty, inst });
        id
    }

    /// What a statement comes to when some of its operands are known: a literal, an operand
    /// (a select on a known condition), a fixed coefficient slot (a coefficient picked by a
    /// known class), or nothing at all (a failure whose condition is known to be false). Unrolled
    /// class loops give a lot of these, and the code generators then never see them.
    fn fold(&mut self, inst: &Inst) -> Option<V> {
        let lit = |v: V| self.lits.get(&v).copied();
        match inst {
            Inst::Select(c, a, b) => match lit(*c)? {
                Lit::Bool(c) => Some(if c { *a } else { *b }),
                _ => None,
            },
            Inst::CoefAt { base, index } => match lit(*index)? {
                Lit::I32(i) if ((*base + i) as usize) < self.coefs.len() => {
                    let slot = base + i;
                    Some(self.pre(Ty::F32, Inst::Coef(slot)))
                }
                _ => None,
            },
            Inst::Fail(c, _) if lit(*c) == Some(Lit::Bool(false)) => Some(*c),
            _ => match fold_lits(inst, lit)? {
                Lit::F32(x) => Some(self.f32c(x)),
                Lit::F64(x) => Some(self.f64c(x)),
                Lit::I32(x) => Some(self.i32c(x)),
                Lit::I64(x) => Some(self.i64c(x)),
                Lit::Bool(x) => Some(self.boolc(x)),
            },
        }
    }

    /// A statement of the kernel's prologue (the same for every element, or the element's own
    /// indices), emitted once.
    fn pre(&mut self, ty: Ty, inst: Inst) -> V {
        let key = Key::of(ty, &inst).expect("a prologue statement is pure");
        if let Some(v) = self.pre_memo.get(&key) {
            return *v;
        }
        let id = V(self.next);
        if let Some(l) = Lit::of(&inst) {
            self.lits.insert(id, l);
        }
        self.next += 1;
        self.tys.push(ty);
        self.pre.push(Stmt { id, ty, inst });
        self.pre_memo.insert(key, id);
        id
    }

    fn f32c(&mut self, x: f32) -> V {
        self.pre(Ty::F32, Inst::F32(x))
    }
    fn f64c(&mut self, x: f64) -> V {
        self.pre(Ty::F64, Inst::F64(x))
    }
    fn i32c(&mut self, x: u32) -> V {
        self.pre(Ty::I32, Inst::I32(x))
    }
    fn i64c(&mut self, x: u64) -> V {
        self.pre(Ty::I64, Inst::I64(x))
    }
    fn boolc(&mut self, x: bool) -> V {
        self.pre(Ty::Bool, Inst::Bool(x))
    }
    fn size(&mut self, d: usize) -> V {
        let i = self.dim(d);
        self.pre(Ty::I64, Inst::Size(i))
    }
    fn per(&mut self) -> V {
        if let Some(v) = self.per {
            return v;
        }
        let mut acc = self.i64c(1);
        for d in self.domain.clone() {
            let s = self.pre(Ty::I64, Inst::Size(d));
            let id = V(self.next);
            self.next += 1;
            self.tys.push(Ty::I64);
            self.pre.push(Stmt {
                id,
                ty: Ty::I64,
                inst: Inst::Bin(Bin::Mul, acc, s),
            });
            acc = id;
        }
        self.per = Some(acc);
        acc
    }
    fn flat(&mut self) -> V {
        self.pre(Ty::I64, Inst::Flat)
    }
    fn sample(&mut self) -> V {
        self.per();
        self.pre(Ty::I64, Inst::Sample)
    }
    fn elem(&mut self) -> V {
        self.per();
        self.pre(Ty::I64, Inst::Elem)
    }

    fn bin(&mut self, ty: Ty, op: Bin, a: V, b: V) -> V {
        self.emit(ty, Inst::Bin(op, a, b))
    }
    fn un(&mut self, ty: Ty, op: Un, a: V) -> V {
        self.emit(ty, Inst::Un(op, a))
    }
    fn cmp(&mut self, op: Cmp, a: V, b: V) -> V {
        self.emit(Ty::Bool, Inst::Cmp(op, a, b))
    }
    fn select(&mut self, ty: Ty, c: V, a: V, b: V) -> V {
        self.emit(ty, Inst::Select(c, a, b))
    }
    fn call(&mut self, f: Libm, args: Vec<V>) -> V {
        self.emit(f.ty(), Inst::Call(f, args))
    }
    fn ty(&self, v: V) -> Ty {
        self.tys[v.0 as usize]
    }

    fn buf(&mut self, src: BufSrc, store: Store, width: u32, output: bool) -> u32 {
        if let Some(i) = self.buf_index.get(&src) {
            return *i;
        }
        self.bufs.push(Buf {
            src: src.clone(),
            store,
            width,
            output,
        });
        let i = (self.bufs.len() - 1) as u32;
        self.buf_index.insert(src, i);
        i
    }

    fn load(&mut self, buf: u32, index: V, comp: u32) -> V {
        let ty = self.bufs[buf as usize].store.ty();
        self.emit(ty, Inst::Load { buf, index, comp })
    }

    fn store(&mut self, target: Target, kind: Kind, v: &[V]) {
        let b = self.buf(BufSrc::Out(target), store_of(kind), kwidth(kind), true);
        let index = if self.domain_shape.is_some() {
            self.flat()
        } else {
            self.sample()
        };
        for (q, x) in v.iter().enumerate() {
            self.emit(
                self.ty(*x),
                Inst::Store {
                    buf: b,
                    index,
                    comp: q as u32,
                    value: *x,
                },
            );
        }
    }

    fn finish(mut self, pl: &mut Planner) -> Result<usize, String> {
        for n in std::mem::take(&mut self.needs) {
            pl.materialize(n)?;
        }
        let mut body = std::mem::take(&mut self.pre);
        body.extend(self.blocks.pop().unwrap());
        let mut k = Kernel {
            name: self.name,
            dims: self.dims,
            domain: self.domain,
            bufs: self.bufs,
            coefs: self.coefs,
            body,
            sites: self.sites.into_iter().collect(),
            values: self.next,
        };
        dce(&mut k);
        Ok(pl.push(k))
    }

    // -----------------------------------------------------------------------------------------
    // Element values
    // -----------------------------------------------------------------------------------------

    fn bug(&self, what: &str) -> String {
        format!(
            "internal error lowering `{}` to kernels ({what}); this is a bug in diffc",
            self.prog.name
        )
    }

    /// Index of a value of this extent at the current element.
    fn index_of(&mut self, extent: Extent) -> V {
        match extent {
            Extent::Uniform => self.i64c(0),
            Extent::Sample => self.sample(),
            Extent::Element => self.flat(),
        }
    }

    /// Component `q` of a value as f32 (a scalar broadcasts over components; bools and classes
    /// convert).
    fn comp(&mut self, v: &[V], q: usize) -> V {
        let x = if v.len() == 1 { v[0] } else { v[q] };
        self.as_f32(x)
    }

    fn as_f32(&mut self, x: V) -> V {
        match self.ty(x) {
            Ty::F32 => x,
            Ty::Bool => self.un(Ty::F32, Un::BoolToF32, x),
            Ty::I32 => self.un(Ty::F32, Un::I32ToF32, x),
            Ty::F64 => self.un(Ty::F32, Un::F64ToF32, x),
            Ty::I64 => panic!("an index used as a real"),
        }
    }

    /// A class index from a value (a class, or a real truncated as `as usize` does).
    fn as_index(&mut self, x: V) -> V {
        match self.ty(x) {
            Ty::I32 => x,
            Ty::Bool => {
                let (one, zero) = (self.i32c(1), self.i32c(0));
                self.select(Ty::I32, x, one, zero)
            }
            _ => {
                let f = self.as_f32(x);
                self.un(Ty::I32, Un::ToI32, f)
            }
        }
    }

    fn node(&mut self, id: NodeId) -> Result<Vec<V>, String> {
        if let Some(v) = self.memo.get(&id) {
            return Ok(v.clone());
        }
        let info = self.prog.node(id).clone();
        let k = kwidth(info.kind) as usize;
        let v: Vec<V> = match &info.node {
            Node::Const(x) => vec![if info.kind == Kind::Bool {
                self.boolc(*x != 0.0)
            } else {
                self.f32c(*x as f32)
            }],
            Node::Coef(c) => {
                let base = self.coef_base(*c, k);
                (0..k)
                    .map(|q| {
                        let slot = base + q as u32;
                        let x = self.pre(Ty::F32, Inst::Coef(slot));
                        match info.kind {
                            Kind::Bool => {
                                let z = self.f32c(0.0);
                                self.pre(Ty::Bool, Inst::Cmp(Cmp::Ne, x, z))
                            }
                            Kind::Class(_) => self.pre(Ty::I32, Inst::Un(Un::ToI32, x)),
                            _ => x,
                        }
                    })
                    .collect()
            }
            n if is_leaf(n) => {
                let target = match n {
                    Node::State(f) => Some(Target::Field(*f)),
                    Node::Slot(s) => Some(Target::Slot(*s)),
                    _ => None,
                };
                if let Some(v) = target.and_then(|t| self.written.get(&t)) {
                    v.clone()
                } else {
                    self.check_domain(&info)?;
                    let b = self.buf(BufSrc::Node(id), store_of(info.kind), k as u32, false);
                    let index = self.index_of(info.extent);
                    (0..k).map(|q| self.load(b, index, q as u32)).collect()
                }
            }
            n if is_cross(n) => {
                self.check_domain(&info)?;
                self.needs.push(id);
                let b = self.buf(BufSrc::Node(id), store_of(info.kind), k as u32, false);
                let index = self.index_of(info.extent);
                (0..k).map(|q| self.load(b, index, q as u32)).collect()
            }
            Node::IsReal(a) => {
                let shape = self.prog.node(*a).shape.clone();
                let (s, e) = (self.sample(), self.elem());
                vec![self.real_at(&shape, s, e)]
            }
            Node::Uniforms { draw, site } => {
                let dinfo = self.prog.node(*draw).clone();
                let (idx, empty) = self.rng_index(&dinfo.shape)?;
                vec![self.uniform(*site, idx, empty)]
            }
            Node::Unary(op, a) => {
                let av = self.node(*a)?;
                match op {
                    UnOp::Neg => av
                        .iter()
                        .map(|x| {
                            let f = self.as_f32(*x);
                            self.un(Ty::F32, Un::Neg, f)
                        })
                        .collect(),
                    UnOp::Not => vec![self.un(Ty::Bool, Un::Not, av[0])],
                }
            }
            Node::Binary(op, a, b) => self.binary(*op, *a, *b, info.kind)?,
            Node::Select(c, a, b) => {
                let cv = self.node(*c)?[0];
                let (av, bv) = (self.node(*a)?, self.node(*b)?);
                match info.kind {
                    Kind::Bool | Kind::Class(_) => {
                        let ty = if info.kind == Kind::Bool {
                            Ty::Bool
                        } else {
                            Ty::I32
                        };
                        let (x, y) = (av[0], bv[0]);
                        let (x, y) = if ty == Ty::I32 {
                            (self.as_index(x), self.as_index(y))
                        } else {
                            (x, y)
                        };
                        vec![self.select(ty, cv, x, y)]
                    }
                    _ => (0..k)
                        .map(|q| {
                            let (x, y) = (self.comp(&av, q), self.comp(&bv, q));
                            self.select(Ty::F32, cv, x, y)
                        })
                        .collect(),
                }
            }
            Node::Index(v, i) => {
                let vv = self.node(*v)?;
                let iv = self.node(*i)?[0];
                let idx = self.as_index(iv);
                let kk = self.i32c(vv.len() as u32);
                let bad = self.cmp(Cmp::Ge, idx, kk);
                self.emit(Ty::Bool, Inst::Fail(bad, FAIL_INDEX));
                vec![self.pick(idx, &vv)]
            }
            Node::List(items) => {
                let mut out = Vec::new();
                for it in items {
                    let x = self.node(*it)?;
                    out.push(self.comp(&x, 0));
                }
                out
            }
            Node::Call(Builtin::Pair, args) => {
                let n = self.pair_n()?;
                let (s, e) = (self.sample(), self.elem());
                let i = self.bin(Ty::I64, Bin::UDiv, e, n);
                let j = self.bin(Ty::I64, Bin::URem, e, n);
                let sn = self.bin(Ty::I64, Bin::Mul, s, n);
                let u = self.gather(args[0], sn, i)?;
                let w = self.gather(args[1], sn, j)?;
                if info.kind == Kind::Bool {
                    let z = self.f32c(0.0);
                    let a = self.cmp(Cmp::Ne, u, z);
                    let b = self.cmp(Cmp::Ne, w, z);
                    vec![self.bin(Ty::Bool, Bin::And, a, b)]
                } else {
                    vec![self.bin(Ty::F32, Bin::Mul, u, w)]
                }
            }
            Node::Call(f, args) => self.builtin(*f, args, info.kind)?,
            Node::Draw {
                site,
                family,
                params,
            } => self.draw(id, *site, *family, params)?,
            Node::LogDensity {
                family,
                params,
                value,
            } => vec![self.log_density(*family, params, *value, &info.shape)?],
            other => return Err(self.bug(&format!("node {other:?}"))),
        };
        self.memo.insert(id, v.clone());
        Ok(v)
    }

    /// The first of the `k` contiguous coefficient slots of program coefficient `c`.
    fn coef_base(&mut self, c: u32, k: usize) -> u32 {
        match self.coefs.iter().position(|x| *x == (c, 0)) {
            Some(i) => i as u32,
            None => {
                let base = self.coefs.len() as u32;
                self.coefs.extend((0..k as u32).map(|q| (c, q)));
                base
            }
        }
    }

    /// The class a one-hot vector node encodes, when `id` is `onehot(x)`.
    fn onehot_class(&mut self, id: NodeId) -> Result<Option<V>, String> {
        let Node::Call(Builtin::OneHot, args) = &self.prog.node(id).node else {
            return Ok(None);
        };
        let Kind::Vec(k) = self.prog.node(id).kind else {
            return Ok(None);
        };
        let x = self.node(args[0])?[0];
        let c = self.as_index(x);
        let kk = self.i32c(k);
        let bad = self.cmp(Cmp::Ge, c, kk);
        self.emit(Ty::Bool, Inst::Fail(bad, FAIL_CLASS));
        Ok(Some(c))
    }

    /// Entry `(r, j)` of a coefficient matrix with row `r` a class (`None`: the static index `i`).
    fn coef_entry(
        &mut self,
        base: u32,
        k: usize,
        row: Option<V>,
        i: usize,
        j: usize,
        by_row: bool,
    ) -> V {
        match row {
            Some(c) => {
                // base + c * k + j (by rows) or base + i * k + c (by columns).
                let (mul, add) = if by_row {
                    (k as u32, j as u32)
                } else {
                    (1, (i * k) as u32)
                };
                let m = self.i32c(mul);
                let a = self.i32c(add);
                let ck = self.bin(Ty::I32, Bin::Mul, c, m);
                let idx = self.bin(Ty::I32, Bin::Add, ck, a);
                self.emit(Ty::F32, Inst::CoefAt { base, index: idx })
            }
            None => {
                let slot = base + (i * k + j) as u32;
                self.pre(Ty::F32, Inst::Coef(slot))
            }
        }
    }

    /// A node read at the current element must run over the kernel's domain.
    fn check_domain(&self, info: &crate::ir::NodeInfo) -> Result<(), String> {
        if info.extent == Extent::Element
            && info.shape.as_ref().map(|s| &s.dims) != self.domain_shape.as_ref().map(|s| &s.dims)
        {
            return Err(self.bug("a value read over another shape"));
        }
        Ok(())
    }

    /// `vals[idx]` by a chain of selects (an out-of-range index gives the last value; the
    /// caller raises a status bit).
    fn pick(&mut self, idx: V, vals: &[V]) -> V {
        let ty = self.ty(vals[0]);
        let mut out = vals[vals.len() - 1];
        for q in (0..vals.len() - 1).rev() {
            let c = self.i32c(q as u32);
            let hit = self.cmp(Cmp::Eq, idx, c);
            out = self.select(ty, hit, vals[q], out);
        }
        out
    }

    /// The size `n` of a `pair`'s node axis.
    fn pair_n(&mut self) -> Result<V, String> {
        let s = self
            .domain_shape
            .clone()
            .ok_or_else(|| self.bug("pair without a shape"))?;
        Ok(self.size(s.dims[0].index()))
    }

    /// Operand `a` of a graph operation at `base + j` (a value the same for every element at 0).
    fn gather(&mut self, a: NodeId, base: V, j: V) -> Result<V, String> {
        let info = self.prog.node(a).clone();
        match info.extent {
            Extent::Element => {
                if !is_leaf(&info.node) {
                    self.needs.push(a);
                }
                let b = self.buf(BufSrc::Node(a), store_of(info.kind), 1, false);
                let i = self.bin(Ty::I64, Bin::Add, base, j);
                let x = self.load(b, i, 0);
                Ok(self.as_f32(x))
            }
            Extent::Sample => {
                let v = self.node(a)?[0];
                Ok(self.as_f32(v))
            }
            Extent::Uniform => {
                let v = self.node(a)?[0];
                Ok(self.as_f32(v))
            }
        }
    }

    fn binary(&mut self, op: BinOp, a: NodeId, b: NodeId, kind: Kind) -> Result<Vec<V>, String> {
        use BinOp as O;
        let (av, bv) = (self.node(a)?, self.node(b)?);
        Ok(match op {
            O::And | O::Or => vec![self.bin(
                Ty::Bool,
                if op == O::And { Bin::And } else { Bin::Or },
                av[0],
                bv[0],
            )],
            O::Lt | O::Le | O::Gt | O::Ge | O::Eq | O::Ne => {
                let (x, y) = (self.comp(&av, 0), self.comp(&bv, 0));
                let c = match op {
                    O::Lt => Cmp::Lt,
                    O::Le => Cmp::Le,
                    O::Gt => Cmp::Gt,
                    O::Ge => Cmp::Ge,
                    O::Eq => Cmp::Eq,
                    _ => Cmp::Ne,
                };
                vec![self.cmp(c, x, y)]
            }
            O::MatMul => {
                let k = match kind {
                    Kind::Vec(k) | Kind::Mat(k) => k as usize,
                    _ => return Err(self.bug("matmul kind")),
                };
                let (ak, bk) = (self.prog.node(a).kind, self.prog.node(b).kind);
                // onehot(c) @ M is row c of M and M @ onehot(c) column c: the sum's other terms
                // are zeros, so this is the interpreter's value (up to the sign of a zero).
                let (an, bn) = (
                    self.prog.node(a).node.clone(),
                    self.prog.node(b).node.clone(),
                );
                if let (Kind::Vec(_), Kind::Mat(_), Node::Coef(m)) = (ak, bk, &bn) {
                    if let Some(c) = self.onehot_class(a)? {
                        let base = self.coef_base(*m, k * k);
                        return Ok((0..k)
                            .map(|j| self.coef_entry(base, k, Some(c), 0, j, true))
                            .collect());
                    }
                }
                if let (Kind::Mat(_), Kind::Vec(_), Node::Coef(m)) = (ak, bk, &an) {
                    if let Some(c) = self.onehot_class(b)? {
                        let base = self.coef_base(*m, k * k);
                        return Ok((0..k)
                            .map(|r| self.coef_entry(base, k, Some(c), r, 0, false))
                            .collect());
                    }
                }
                let mut out = Vec::with_capacity(k);
                for j in 0..k {
                    let mut acc = self.f32c(-0.0);
                    for l in 0..k {
                        let (x, y) = match (ak, bk) {
                            (Kind::Vec(_), Kind::Mat(_)) => (av[l], bv[l * k + j]),
                            (Kind::Mat(_), Kind::Vec(_)) => (av[j * k + l], bv[l]),
                            _ => {
                                return Err(
                                    "kernels multiply a per-element vector by a coefficient matrix only"
                                        .into(),
                                )
                            }
                        };
                        let m = self.bin(Ty::F32, Bin::Mul, x, y);
                        acc = self.bin(Ty::F32, Bin::Add, acc, m);
                    }
                    out.push(acc);
                }
                out
            }
            _ => {
                let k = kwidth(kind) as usize;
                (0..k)
                    .map(|q| {
                        let (x, y) = (self.comp(&av, q), self.comp(&bv, q));
                        match op {
                            O::Add => self.bin(Ty::F32, Bin::Add, x, y),
                            O::Sub => self.bin(Ty::F32, Bin::Sub, x, y),
                            O::Mul => self.bin(Ty::F32, Bin::Mul, x, y),
                            O::Div => self.bin(Ty::F32, Bin::Div, x, y),
                            _ => self.call(Libm::Powf, vec![x, y]),
                        }
                    })
                    .collect()
            }
        })
    }

    fn builtin(&mut self, f: Builtin, args: &[NodeId], kind: Kind) -> Result<Vec<V>, String> {
        use Builtin as B;
        let k = kwidth(kind) as usize;
        let vals: Vec<Vec<V>> = args
            .iter()
            .map(|a| self.node(*a))
            .collect::<Result<_, _>>()?;
        let map1 = |kb: &mut Self, g: &dyn Fn(&mut Self, V) -> V| -> Vec<V> {
            (0..k)
                .map(|q| {
                    let x = kb.comp(&vals[0], q);
                    g(kb, x)
                })
                .collect()
        };
        let lib = |l: Libm| move |kb: &mut Self, x: V| kb.call(l, vec![x]);
        Ok(match f {
            B::Sqrt => map1(self, &|kb, x| kb.un(Ty::F32, Un::Sqrt, x)),
            B::Exp => map1(self, &lib(Libm::Expf)),
            B::Log => map1(self, &lib(Libm::Logf)),
            B::Expm1 => map1(self, &lib(Libm::Expm1f)),
            B::Log1p => map1(self, &lib(Libm::Log1pf)),
            B::Sin => map1(self, &lib(Libm::Sinf)),
            B::Cos => map1(self, &lib(Libm::Cosf)),
            B::Tanh => map1(self, &lib(Libm::Tanhf)),
            B::Abs => map1(self, &|kb, x| kb.un(Ty::F32, Un::Abs, x)),
            B::Floor => map1(self, &|kb, x| kb.un(Ty::F32, Un::Floor, x)),
            B::Sigmoid => map1(self, &|kb, x| {
                let n = kb.un(Ty::F32, Un::Neg, x);
                let e = kb.call(Libm::Expf, vec![n]);
                let one = kb.f32c(1.0);
                let d = kb.bin(Ty::F32, Bin::Add, one, e);
                kb.bin(Ty::F32, Bin::Div, one, d)
            }),
            B::Softplus => map1(self, &|kb, x| {
                let e = kb.call(Libm::Expf, vec![x]);
                let l = kb.call(Libm::Log1pf, vec![e]);
                let twenty = kb.f32c(20.0);
                let big = kb.cmp(Cmp::Gt, x, twenty);
                kb.select(Ty::F32, big, x, l)
            }),
            B::Min | B::Max | B::Clamp | B::LogAddExp => (0..k)
                .map(|q| {
                    let (x, y) = (self.comp(&vals[0], q), self.comp(&vals[1], q));
                    match f {
                        B::Min => self.bin(Ty::F32, Bin::Min, x, y),
                        B::Max => self.bin(Ty::F32, Bin::Max, x, y),
                        B::Clamp => {
                            let z = self.comp(&vals[2], q);
                            let m = self.bin(Ty::F32, Bin::Max, x, y);
                            self.bin(Ty::F32, Bin::Min, m, z)
                        }
                        _ => {
                            let m = self.bin(Ty::F32, Bin::Max, x, y);
                            let dx = self.bin(Ty::F32, Bin::Sub, x, m);
                            let dy = self.bin(Ty::F32, Bin::Sub, y, m);
                            let ex = self.call(Libm::Expf, vec![dx]);
                            let ey = self.call(Libm::Expf, vec![dy]);
                            let s = self.bin(Ty::F32, Bin::Add, ex, ey);
                            let l = self.call(Libm::Logf, vec![s]);
                            let r = self.bin(Ty::F32, Bin::Add, m, l);
                            let ninf = self.f32c(f32::NEG_INFINITY);
                            let is_ninf = self.cmp(Cmp::Eq, m, ninf);
                            self.select(Ty::F32, is_ninf, m, r)
                        }
                    }
                })
                .collect(),
            B::OneHot => {
                let c = self.as_index(vals[0][0]);
                let kk = self.i32c(k as u32);
                let bad = self.cmp(Cmp::Ge, c, kk);
                self.emit(Ty::Bool, Inst::Fail(bad, FAIL_CLASS));
                let (one, zero) = (self.f32c(1.0), self.f32c(0.0));
                (0..k)
                    .map(|q| {
                        let qc = self.i32c(q as u32);
                        let hit = self.cmp(Cmp::Eq, c, qc);
                        self.select(Ty::F32, hit, one, zero)
                    })
                    .collect()
            }
            B::Argmax => {
                let v: Vec<V> = (0..vals[0].len()).map(|q| self.comp(&vals[0], q)).collect();
                let mut best = self.i32c(0);
                let mut bestv = v[0];
                for (j, x) in v.iter().enumerate().skip(1) {
                    let gt = self.cmp(Cmp::Gt, *x, bestv);
                    let jc = self.i32c(j as u32);
                    best = self.select(Ty::I32, gt, jc, best);
                    bestv = self.select(Ty::F32, gt, *x, bestv);
                }
                vec![best]
            }
            B::Softmax | B::LogSoftmax | B::LogSumExp => {
                let v: Vec<V> = (0..vals[0].len()).map(|q| self.comp(&vals[0], q)).collect();
                let lse = self.logsumexp(&v);
                if f == B::LogSumExp {
                    vec![lse]
                } else {
                    v.iter()
                        .map(|x| {
                            let d = self.bin(Ty::F32, Bin::Sub, *x, lse);
                            if f == B::Softmax {
                                self.call(Libm::Expf, vec![d])
                            } else {
                                d
                            }
                        })
                        .collect()
                }
            }
            B::VSum => {
                let v: Vec<V> = (0..vals[0].len()).map(|q| self.comp(&vals[0], q)).collect();
                vec![self.sum(&v)]
            }
            B::Dot if self.prog.node(args[1]).kind != Kind::Real => {
                // dot(v, onehot(c)) is v[c] (the other products are zeros).
                for (x, y) in [(0, 1), (1, 0)] {
                    if let Some(c) = self.onehot_class(args[y])? {
                        let v: Vec<V> =
                            (0..vals[x].len()).map(|q| self.comp(&vals[x], q)).collect();
                        return Ok(vec![self.pick(c, &v)]);
                    }
                }
                let n = vals[0].len().max(vals[1].len());
                let prods: Vec<V> = (0..n)
                    .map(|q| {
                        let (x, y) = (self.comp(&vals[0], q), self.comp(&vals[1], q));
                        self.bin(Ty::F32, Bin::Mul, x, y)
                    })
                    .collect();
                vec![self.sum(&prods)]
            }
            B::Dot => {
                let n = vals[0].len().max(vals[1].len());
                let prods: Vec<V> = (0..n)
                    .map(|q| {
                        let (x, y) = (self.comp(&vals[0], q), self.comp(&vals[1], q));
                        self.bin(Ty::F32, Bin::Mul, x, y)
                    })
                    .collect();
                vec![self.sum(&prods)]
            }
            other => {
                return Err(format!(
                    "kernels cannot evaluate `{}` per element",
                    other.name()
                ))
            }
        })
    }

    /// A left-to-right f32 sum from -0.0, as `Iterator::sum`.
    fn sum(&mut self, v: &[V]) -> V {
        let mut acc = self.f32c(-0.0);
        for x in v {
            acc = self.bin(Ty::F32, Bin::Add, acc, *x);
        }
        acc
    }

    /// m + ln Σ exp(x - m), m the maximum from -inf (the interpreter's order).
    fn logsumexp(&mut self, v: &[V]) -> V {
        let mut m = self.f32c(f32::NEG_INFINITY);
        for x in v {
            m = self.bin(Ty::F32, Bin::Max, m, *x);
        }
        let es: Vec<V> = v
            .iter()
            .map(|x| {
                let d = self.bin(Ty::F32, Bin::Sub, *x, m);
                self.call(Libm::Expf, vec![d])
            })
            .collect();
        let s = self.sum(&es);
        let l = self.call(Libm::Logf, vec![s]);
        self.bin(Ty::F32, Bin::Add, m, l)
    }

    // -----------------------------------------------------------------------------------------
    // Masks, symmetric fields and draws
    // -----------------------------------------------------------------------------------------

    /// Is element `e` of sample `s` of a value of this shape real under its node mask?
    fn real_at(&mut self, shape: &Option<Shape>, s: V, e: V) -> V {
        let Some(sh) = shape else {
            return self.boolc(true);
        };
        let Some(m) = sh.mask else {
            return self.boolc(true);
        };
        if !self.variant.masks.contains(&(m.index() as u32)) {
            return self.boolc(true);
        }
        let mask = self.p.masks[m.index()].clone();
        let n = self.size(mask.dim.index());
        let b = self.buf(BufSrc::Mask(m.index() as u32), Store::U8, 1, false);
        let base = self.bin(Ty::I64, Bin::Mul, s, n);
        let mut real = self.boolc(true);
        let mut rest = e;
        for d in sh.dims.iter().rev() {
            let size = self.size(d.index());
            let idx = self.bin(Ty::I64, Bin::URem, rest, size);
            rest = self.bin(Ty::I64, Bin::UDiv, rest, size);
            if *d == mask.dim {
                let at = self.bin(Ty::I64, Bin::Add, base, idx);
                let bit = self.load(b, at, 0);
                real = self.bin(Ty::Bool, Bin::And, real, bit);
            }
        }
        real
    }

    /// The RNG index of the current element of a draw over this shape, and whether the element
    /// is empty (left out by a mask, or on a symmetric field's diagonal).
    fn rng_index(&mut self, shape: &Option<Shape>) -> Result<(V, V), String> {
        let (s, e) = (self.sample(), self.elem());
        let real = if shape.as_ref().is_some_and(|x| x.mask.is_some()) {
            self.real_at(shape, s, e)
        } else {
            self.boolc(true)
        };
        let empty = self.un(Ty::Bool, Un::Not, real);
        let Some(sh) = shape.as_ref().filter(|x| x.sym) else {
            return Ok((self.flat(), empty));
        };
        let n = self.size(sh.dims[0].index());
        let r = self.bin(Ty::I64, Bin::UDiv, e, n);
        let c = self.bin(Ty::I64, Bin::URem, e, n);
        let lt = self.cmp(Cmp::Lt, r, c);
        let lo = self.select(Ty::I64, lt, r, c);
        let hi = self.select(Ty::I64, lt, c, r);
        let per = self.per();
        let sp = self.bin(Ty::I64, Bin::Mul, s, per);
        let ln = self.bin(Ty::I64, Bin::Mul, lo, n);
        let a = self.bin(Ty::I64, Bin::Add, sp, ln);
        let idx = self.bin(Ty::I64, Bin::Add, a, hi);
        let diag = self.cmp(Cmp::Eq, r, c);
        let empty = self.bin(Ty::Bool, Bin::Or, empty, diag);
        Ok((idx, empty))
    }

    /// The uniform of a draw at the current element (0 where empty), generated or supplied.
    fn uniform(&mut self, site: u32, idx: V, empty: V) -> V {
        let u = if self.variant.supplied.contains(&site) {
            // Read where the generator would draw: a symmetric field's pair at its upper entry.
            let b = self.buf(BufSrc::Draw(site), Store::F32, 1, false);
            self.load(b, idx, 0)
        } else {
            self.sites.insert(site);
            self.emit(Ty::F32, Inst::Uniform { site, index: idx })
        };
        let z = self.f32c(0.0);
        self.select(Ty::F32, empty, z, u)
    }

    fn draw(
        &mut self,
        id: NodeId,
        site: u32,
        family: Family,
        params: &[NodeId],
    ) -> Result<Vec<V>, String> {
        let info = self.prog.node(id).clone();
        let k = kwidth(info.kind) as usize;
        let pv: Vec<Vec<V>> = params
            .iter()
            .map(|x| self.node(*x))
            .collect::<Result<_, _>>()?;
        if family == Family::Delta {
            return Ok(match info.kind {
                Kind::Bool => vec![pv[0][0]],
                Kind::Class(_) => vec![self.as_index(pv[0][0])],
                _ => (0..k).map(|q| self.comp(&pv[0], q)).collect(),
            });
        }
        let (idx, empty) = self.rng_index(&info.shape)?;
        let zero = self.f32c(0.0);
        Ok(match family {
            Family::Normal => {
                let mut out = Vec::with_capacity(k);
                for q in 0..k {
                    let z = if self.variant.supplied.contains(&site) {
                        let b = self.buf(BufSrc::Draw(site), Store::F32, k as u32, false);
                        self.load(b, idx, q as u32)
                    } else {
                        self.sites.insert(site);
                        let at = if k == 1 {
                            idx
                        } else {
                            let kc = self.i64c(k as u64);
                            let qc = self.i64c(q as u64);
                            let m = self.bin(Ty::I64, Bin::Mul, idx, kc);
                            self.bin(Ty::I64, Bin::Add, m, qc)
                        };
                        self.emit(Ty::F32, Inst::Normal { site, index: at })
                    };
                    let m = self.comp(&pv[0], q);
                    let v = self.comp(&pv[1], q);
                    let sd = self.un(Ty::F32, Un::Sqrt, v);
                    let sz = self.bin(Ty::F32, Bin::Mul, sd, z);
                    let x = self.bin(Ty::F32, Bin::Add, m, sz);
                    out.push(self.select(Ty::F32, empty, zero, x));
                }
                out
            }
            Family::Uniform => {
                let u = self.uniform(site, idx, empty);
                let (lo, hi) = (self.comp(&pv[0], 0), self.comp(&pv[1], 0));
                let w = self.bin(Ty::F32, Bin::Sub, hi, lo);
                let wu = self.bin(Ty::F32, Bin::Mul, w, u);
                let x = self.bin(Ty::F32, Bin::Add, lo, wu);
                vec![self.select(Ty::F32, empty, zero, x)]
            }
            Family::Bernoulli => {
                let u = self.uniform(site, idx, empty);
                let p = self.comp(&pv[0], 0);
                let hit = self.cmp(Cmp::Lt, u, p);
                let full = self.un(Ty::Bool, Un::Not, empty);
                vec![self.bin(Ty::Bool, Bin::And, full, hit)]
            }
            Family::Categorical => {
                let u = self.uniform(site, idx, empty);
                let probs: Vec<V> = (0..pv[0].len()).map(|q| self.comp(&pv[0], q)).collect();
                let c = self.categorical(u, &probs);
                let z = self.i32c(0);
                vec![self.select(Ty::I32, empty, z, c)]
            }
            Family::Delta => unreachable!(),
        })
    }

    /// `rng::categorical_from_uniform` without branches.
    fn categorical(&mut self, u: V, probs: &[V]) -> V {
        let mut total = self.f32c(0.0);
        for p in probs {
            total = self.bin(Ty::F32, Bin::Add, total, *p);
        }
        let target = self.bin(Ty::F32, Bin::Mul, u, total);
        let mut cum = self.f32c(0.0);
        let mut found = self.boolc(false);
        let mut res = self.i32c(0);
        let mut last = self.i32c(0);
        let zero = self.f32c(0.0);
        for (c, p) in probs.iter().enumerate() {
            let cc = self.i32c(c as u32);
            cum = self.bin(Ty::F32, Bin::Add, cum, *p);
            let hit = self.cmp(Cmp::Lt, target, cum);
            let nf = self.un(Ty::Bool, Un::Not, found);
            let take = self.bin(Ty::Bool, Bin::And, hit, nf);
            res = self.select(Ty::I32, take, cc, res);
            found = self.bin(Ty::Bool, Bin::Or, found, hit);
            let pos = self.cmp(Cmp::Gt, *p, zero);
            last = self.select(Ty::I32, pos, cc, last);
        }
        self.select(Ty::I32, found, res, last)
    }

    fn log_density(
        &mut self,
        family: Family,
        params: &[NodeId],
        value: NodeId,
        shape: &Option<Shape>,
    ) -> Result<V, String> {
        let pv: Vec<Vec<V>> = params
            .iter()
            .map(|x| self.node(*x))
            .collect::<Result<_, _>>()?;
        let xv = self.node(value)?;
        let (s, e) = (self.sample(), self.elem());
        let real = self.real_at(shape, s, e);
        let mut zero = self.un(Ty::Bool, Un::Not, real);
        if let Some(sh) = shape.as_ref().filter(|x| x.sym) {
            let n = self.size(sh.dims[0].index());
            let r = self.bin(Ty::I64, Bin::UDiv, e, n);
            let c = self.bin(Ty::I64, Bin::URem, e, n);
            let lower = self.cmp(Cmp::Ge, r, c);
            zero = self.bin(Ty::Bool, Bin::Or, zero, lower);
        }
        let f64v = |kb: &mut Self, v: &[V], q: usize| {
            let x = kb.comp(v, q);
            kb.un(Ty::F64, Un::F32ToF64, x)
        };
        let ninf = self.f64c(f64::NEG_INFINITY);
        let lp = match family {
            Family::Normal => {
                let k = xv.len();
                let mut acc = self.f64c(-0.0);
                for q in 0..k {
                    let m = f64v(self, &pv[0], q);
                    let v = f64v(self, &pv[1], q);
                    let x = f64v(self, &xv, q);
                    let tau = self.f64c(2.0 * std::f64::consts::PI);
                    let tv = self.bin(Ty::F64, Bin::Mul, tau, v);
                    let l = self.call(Libm::Log, vec![tv]);
                    let h = self.f64c(-0.5);
                    let a = self.bin(Ty::F64, Bin::Mul, h, l);
                    let d = self.bin(Ty::F64, Bin::Sub, x, m);
                    let d2 = self.bin(Ty::F64, Bin::Mul, d, d);
                    let two = self.f64c(2.0);
                    let v2 = self.bin(Ty::F64, Bin::Mul, two, v);
                    let b = self.bin(Ty::F64, Bin::Div, d2, v2);
                    let t = self.bin(Ty::F64, Bin::Sub, a, b);
                    acc = self.bin(Ty::F64, Bin::Add, acc, t);
                }
                acc
            }
            Family::Categorical => {
                let c = self.as_index(xv[0]);
                let kk = self.i32c(pv[0].len() as u32);
                let bad = self.cmp(Cmp::Ge, c, kk);
                let real_bad = self.bin(Ty::Bool, Bin::And, bad, real);
                self.emit(Ty::Bool, Inst::Fail(real_bad, FAIL_CLASS));
                let probs: Vec<V> = (0..pv[0].len()).map(|q| self.comp(&pv[0], q)).collect();
                let p = self.pick(c, &probs);
                let p = self.un(Ty::F64, Un::F32ToF64, p);
                self.call(Libm::Log, vec![p])
            }
            Family::Bernoulli => {
                let p = f64v(self, &pv[0], 0);
                let x = self.comp(&xv, 0);
                let z = self.f32c(0.0);
                let on = self.cmp(Cmp::Ne, x, z);
                let one = self.f64c(1.0);
                let q = self.bin(Ty::F64, Bin::Sub, one, p);
                let arg = self.select(Ty::F64, on, p, q);
                self.call(Libm::Log, vec![arg])
            }
            Family::Uniform => {
                let lo = f64v(self, &pv[0], 0);
                let hi = f64v(self, &pv[1], 0);
                let x = f64v(self, &xv, 0);
                let a = self.cmp(Cmp::Ge, x, lo);
                let b = self.cmp(Cmp::Lt, x, hi);
                let inside = self.bin(Ty::Bool, Bin::And, a, b);
                let w = self.bin(Ty::F64, Bin::Sub, hi, lo);
                let l = self.call(Libm::Log, vec![w]);
                let nl = self.un(Ty::F64, Un::Neg, l);
                self.select(Ty::F64, inside, nl, ninf)
            }
            Family::Delta => {
                let mut same = self.boolc(true);
                for q in 0..xv.len() {
                    let (x, y) = (self.comp(&xv, q), self.comp(&pv[0], q));
                    let eq = self.cmp(Cmp::Eq, x, y);
                    same = self.bin(Ty::Bool, Bin::And, same, eq);
                }
                let z = self.f64c(0.0);
                self.select(Ty::F64, same, z, ninf)
            }
        };
        let lp = self.un(Ty::F32, Un::F64ToF32, lp);
        let z = self.f32c(0.0);
        Ok(self.select(Ty::F32, zero, z, lp))
    }

    // -----------------------------------------------------------------------------------------
    // Nodes over other elements: a loop per output element
    // -----------------------------------------------------------------------------------------

    /// Emit a loop of `count` iterations; `body` gets the index and accumulator and returns the
    /// next accumulator.
    fn looped(
        &mut self,
        count: V,
        init: V,
        body: &mut dyn FnMut(&mut Self, V, V) -> Result<V, String>,
    ) -> Result<V, String> {
        let ty = self.ty(init);
        self.blocks.push(Vec::new());
        let index = self.emit(Ty::I64, Inst::LoopIndex);
        let acc = self.emit(ty, Inst::LoopAcc);
        let next = body(self, index, acc)?;
        let stmts = self.blocks.pop().unwrap();
        Ok(self.emit(
            ty,
            Inst::Loop {
                count,
                init,
                index,
                acc,
                body: stmts,
                next,
            },
        ))
    }

    /// The value of node `a` (over its own shape, `per` elements per sample) at `s * per + j`.
    fn operand_at(&mut self, a: NodeId, s: V, per: V, j: V) -> Result<V, String> {
        let info = self.prog.node(a).clone();
        if info.extent == Extent::Uniform {
            let v = self.node(a)?[0];
            return Ok(self.as_f32(v));
        }
        if !is_leaf(&info.node) {
            self.needs.push(a);
        }
        let b = self.buf(BufSrc::Node(a), store_of(info.kind), 1, false);
        let x = match info.extent {
            Extent::Element => {
                let sp = self.bin(Ty::I64, Bin::Mul, s, per);
                let i = self.bin(Ty::I64, Bin::Add, sp, j);
                self.load(b, i, 0)
            }
            _ => self.load(b, s, 0),
        };
        Ok(self.as_f32(x))
    }

    fn shape_per(&mut self, shape: &Option<Shape>) -> V {
        let mut acc = self.i64c(1);
        if let Some(s) = shape {
            for d in &s.dims {
                let n = self.size(d.index());
                acc = self.bin(Ty::I64, Bin::Mul, acc, n);
            }
        }
        acc
    }

    fn cross(&mut self, id: NodeId) -> Result<(), String> {
        let info = self.prog.node(id).clone();
        let v = match &info.node {
            Node::Reduce(f, a) => {
                let shape = self.prog.node(*a).shape.clone();
                let s = self.sample();
                let e = self.shape_per(&shape);
                let init = self.f64c(0.0);
                let f = *f;
                let sum = self.looped(e, init, &mut |kb, j, acc| {
                    let real = kb.real_at(&shape, s, j);
                    let x = kb.operand_at(*a, s, e, j)?;
                    let x = kb.un(Ty::F64, Un::F32ToF64, x);
                    let t = if f == Builtin::Norm {
                        kb.bin(Ty::F64, Bin::Mul, x, x)
                    } else {
                        x
                    };
                    let n = kb.bin(Ty::F64, Bin::Add, acc, t);
                    Ok(kb.select(Ty::F64, real, n, acc))
                })?;
                let out = match f {
                    Builtin::Mean => {
                        let c = self.count(&shape, s, e)?;
                        let c = self.un(Ty::F64, Un::F32ToF64, c);
                        self.bin(Ty::F64, Bin::Div, sum, c)
                    }
                    Builtin::Norm => self.un(Ty::F64, Un::Sqrt, sum),
                    _ => sum,
                };
                self.un(Ty::F32, Un::F64ToF32, out)
            }
            Node::Count(a) => {
                let shape = self.prog.node(*a).shape.clone();
                let s = self.sample();
                let e = self.shape_per(&shape);
                self.count(&shape, s, e)?
            }
            Node::Call(Builtin::RowSum, args) => {
                let shape = self.prog.node(args[0]).shape.clone();
                let sh = shape
                    .clone()
                    .ok_or_else(|| self.bug("rowsum without a shape"))?;
                let n = self.size(sh.dims[0].index());
                let (s, row) = (self.sample(), self.elem());
                let nn = self.bin(Ty::I64, Bin::Mul, n, n);
                let rn = self.bin(Ty::I64, Bin::Mul, row, n);
                let init = self.f32c(-0.0);
                self.looped(n, init, &mut |kb, j, acc| {
                    let e = kb.bin(Ty::I64, Bin::Add, rn, j);
                    let real = kb.real_at(&shape, s, e);
                    let x = kb.operand_at(args[0], s, nn, e)?;
                    let nx = kb.bin(Ty::F32, Bin::Add, acc, x);
                    Ok(kb.select(Ty::F32, real, nx, acc))
                })?
            }
            Node::Call(Builtin::Gram, args) => {
                let sh = self
                    .prog
                    .node(args[0])
                    .shape
                    .clone()
                    .ok_or_else(|| self.bug("gram without a shape"))?;
                let n = self.size(sh.dims[0].index());
                let d = self.size(sh.dims[1].index());
                let (s, e) = (self.sample(), self.elem());
                let i = self.bin(Ty::I64, Bin::UDiv, e, n);
                let jn = self.bin(Ty::I64, Bin::URem, e, n);
                let nd = self.bin(Ty::I64, Bin::Mul, n, d);
                let id_ = self.bin(Ty::I64, Bin::Mul, i, d);
                let jd = self.bin(Ty::I64, Bin::Mul, jn, d);
                let init = self.f32c(-0.0);
                self.looped(d, init, &mut |kb, k, acc| {
                    let a = kb.bin(Ty::I64, Bin::Add, id_, k);
                    let b = kb.bin(Ty::I64, Bin::Add, jd, k);
                    let x = kb.operand_at(args[0], s, nd, a)?;
                    let y = kb.operand_at(args[0], s, nd, b)?;
                    let m = kb.bin(Ty::F32, Bin::Mul, x, y);
                    Ok(kb.bin(Ty::F32, Bin::Add, acc, m))
                })?
            }
            _ => return Err(self.bug("a node over other elements")),
        };
        self.store(Target::Node(id), info.kind, &[v]);
        Ok(())
    }

    /// Real elements per sample of a shape, at least 1 (f32).
    fn count(&mut self, shape: &Option<Shape>, s: V, e: V) -> Result<V, String> {
        let init = self.f32c(0.0);
        let one = self.f32c(1.0);
        let sh = shape.clone();
        let c = self.looped(e, init, &mut |kb, j, acc| {
            let real = kb.real_at(&sh, s, j);
            let n = kb.bin(Ty::F32, Bin::Add, acc, one);
            Ok(kb.select(Ty::F32, real, n, acc))
        })?;
        Ok(self.bin(Ty::F32, Bin::Max, c, one))
    }
}

/// The values a statement reads.
pub fn operands(i: &Inst) -> Vec<V> {
    match i {
        Inst::Load { index, .. } | Inst::CoefAt { index, .. } => vec![*index],
        Inst::Store { index, value, .. } => vec![*index, *value],
        Inst::Un(_, a) => vec![*a],
        Inst::Bin(_, a, b) | Inst::Cmp(_, a, b) => vec![*a, *b],
        Inst::Select(c, a, b) => vec![*c, *a, *b],
        Inst::Call(_, a) => a.clone(),
        Inst::Normal { index, .. } | Inst::Uniform { index, .. } => vec![*index],
        Inst::Fail(c, _) => vec![*c],
        Inst::Loop { count, init, .. } => vec![*count, *init],
        _ => vec![],
    }
}

/// Remove statements whose values nothing uses (stores and status bits are used).
fn dce(k: &mut Kernel) {
    let mut live = vec![false; k.values as usize];
    fn mark(body: &[Stmt], live: &mut Vec<bool>) -> bool {
        let mut changed = false;
        for s in body.iter().rev() {
            let root = matches!(s.inst, Inst::Store { .. } | Inst::Fail(..));
            if root && !live[s.id.0 as usize] {
                live[s.id.0 as usize] = true;
                changed = true;
            }
            if live[s.id.0 as usize] {
                for o in operands(&s.inst) {
                    if !live[o.0 as usize] {
                        live[o.0 as usize] = true;
                        changed = true;
                    }
                }
                if let Inst::Loop {
                    body,
                    next,
                    index,
                    acc,
                    ..
                } = &s.inst
                {
                    for v in [next, index, acc] {
                        if !live[v.0 as usize] {
                            live[v.0 as usize] = true;
                            changed = true;
                        }
                    }
                    changed |= mark(body, live);
                }
            }
        }
        changed
    }
    while mark(&k.body, &mut live) {}
    fn sweep(body: &mut Vec<Stmt>, live: &[bool]) {
        body.retain(|s| live[s.id.0 as usize]);
        for s in body {
            if let Inst::Loop { body, .. } = &mut s.inst {
                sweep(body, live);
            }
        }
    }
    sweep(&mut k.body, &live);
    // Buffers nothing reads any more (a cross node whose consumer folded away) stay bound: the
    // host binds every buffer the kernel lists.
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(inst: Inst, lits: &[Lit]) -> Option<Lit> {
        fold_lits(&inst, |v| lits.get(v.0 as usize).copied())
    }

    #[test]
    fn folding_computes_what_the_backends_compute() {
        use Lit::*;
        let (a, b) = (V(0), V(1));
        // Float to class index: truncating, saturating, NaN to 0 (`fcvt_to_uint_sat`).
        for (x, want) in [(2.9f32, 2u32), (-3.0, 0), (f32::NAN, 0), (1e20, u32::MAX)] {
            assert_eq!(fold(Inst::Un(Un::ToI32, a), &[F32(x)]), Some(I32(want)));
        }
        // Min and max: a NaN first operand gives the second, a NaN second gives the first.
        let nan = f32::NAN;
        assert_eq!(
            fold(Inst::Bin(Bin::Max, a, b), &[F32(nan), F32(1.0)]),
            Some(F32(1.0))
        );
        let m = fold(Inst::Bin(Bin::Min, a, b), &[F32(1.0), F32(nan)]);
        assert_eq!(m, Some(F32(1.0)));
        // Comparisons with a NaN are false, except `Ne`.
        assert_eq!(
            fold(Inst::Cmp(Cmp::Lt, a, b), &[F32(nan), F32(1.0)]),
            Some(Bool(false))
        );
        assert_eq!(
            fold(Inst::Cmp(Cmp::Ne, a, b), &[F32(nan), F32(nan)]),
            Some(Bool(true))
        );
        // Integers are unsigned and wrap.
        assert_eq!(
            fold(Inst::Cmp(Cmp::Lt, a, b), &[I32(u32::MAX), I32(1)]),
            Some(Bool(false))
        );
        assert_eq!(
            fold(Inst::Bin(Bin::Sub, a, b), &[I32(0), I32(1)]),
            Some(I32(u32::MAX))
        );
        // Division by zero is left to the backends.
        assert_eq!(fold(Inst::Bin(Bin::UDiv, a, b), &[I32(1), I32(0)]), None);
        // IEEE rounding, as at run time.
        assert_eq!(
            fold(Inst::Bin(Bin::Add, a, b), &[F32(0.1), F32(0.2)]),
            Some(F32(0.1f32 + 0.2f32))
        );
    }
}
