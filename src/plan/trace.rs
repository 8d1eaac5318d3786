//! The recording: the interpreter run on zero samples with `Rec`, an `Accel` that records each
//! kernel launch, network call and host copy instead of computing (step for step what the
//! interpreter-driven runners do), and `RecNet`, a `Denoiser` that records each network call
//! and answers with empty outputs. `trace_unit` records a unit's every sequence and row (a
//! library build, `diffc explain --plan`); `trace_entry_at` and `trace_single` one call's (the
//! lean and resident runners). Copies the replaying runtimes do not need are removed
//! (`simplify`) and the runs of inner loops folded back into loops (`fold_repeats`).

use super::text::slot_name;
use super::{
    coef_layout, coef_text, coef_width, port_buf, reads, reads_mut, shape_dims, writes, Buf,
    CopyWhy, Event, Src, Trace, Unit, UnitKind, Word, REPEAT_STRIDE,
};
use crate::entries::Extent as PortExtent;
use crate::explain::show;
use crate::interp::{
    self, Accel, Call, Ctx, Data, Denoiser, NetCall, SampleCall, Shared, Tensor, Val,
};
use crate::ir::{Extent, Node, NodeId, Op, Program, SamplerProgram};
use crate::kernel::build::{self, op_key, Plan};
use crate::kernel::{BufSrc, Kernel, Store, Target};
use crate::typed::{Elem, Process, Shape, TimeKind};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

impl Event {
    /// The index offset it ran at.
    fn tag(&self) -> u64 {
        match self {
            Event::Launch { offset, .. } => *offset,
            Event::Call { tag, .. } | Event::Copy { tag, .. } => *tag,
            Event::Repeat { .. } => 0,
        }
    }
    /// The same event `runs` runs of an inner loop earlier.
    fn shifted_back(&self, runs: u64) -> Event {
        let d = runs * REPEAT_STRIDE;
        let mut e = self.clone();
        match &mut e {
            Event::Launch { offset, .. } => *offset = offset.wrapping_sub(d),
            Event::Call { tag, .. } | Event::Copy { tag, .. } => *tag = tag.wrapping_sub(d),
            Event::Repeat { .. } => {}
        }
        e
    }
}

/// Fold runs of an inner loop back into a loop: events recorded at offsets (j + 1)·2^40 for
/// j = 0 … R − 1 that repeat exactly become one `Repeat`.
fn fold_repeats(events: Vec<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < events.len() {
        if events[i].tag() != REPEAT_STRIDE {
            out.push(events[i].clone());
            i += 1;
            continue;
        }
        let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
        let mut k = i;
        loop {
            let tag = (runs.len() as u64 + 1) * REPEAT_STRIDE;
            let start = k;
            while k < events.len() && events[k].tag() == tag {
                k += 1;
            }
            if k == start {
                break;
            }
            runs.push(start..k);
        }
        let body: Vec<Event> = events[runs[0].clone()].to_vec();
        let same = runs.iter().enumerate().all(|(j, r)| {
            r.len() == body.len()
                && events[r.clone()]
                    .iter()
                    .zip(&body)
                    .all(|(a, b)| a.shifted_back(j as u64) == *b)
        });
        if same && runs.len() > 1 {
            out.push(Event::Repeat {
                count: runs.len() as u32,
                body,
            });
        } else {
            out.extend(events[i..k].iter().cloned());
        }
        i = k;
    }
    out
}

/// What one phase (an entry call, a sampler's start, step or final map) does and reads.
#[derive(Clone, Debug, Default)]
struct Phase {
    events: Vec<Event>,
    row: Vec<f32>,
    /// What each row value after the coefficients is.
    docs: BTreeMap<u32, String>,
}

struct TraceBuf {
    coef_off: Vec<u32>,
    coef_width: u32,
    /// Evaluate host values (false: record the sequence only, the caller supplies the row).
    values: bool,
    phases: BTreeMap<u32, Phase>,
    /// Scratch buffers by (unit, node).
    scratch: BTreeMap<(usize, NodeId), u32>,
    /// A network call whose arguments are being evaluated: (phase, call, index offset, args).
    pending: Option<(u32, u32, u64, Vec<NodeId>)>,
    /// Coefficients already in a phase's row.
    filled: BTreeSet<(u32, u32)>,
    /// Where each host value after the coefficients sits in a phase's row.
    extra_at: BTreeMap<(u32, ExtraKey), u32>,
}

/// What a row value after the coefficients is: a node of a unit's program, or a coefficient
/// slot of another unit's kernel (a prior's, at a sampler's start).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ExtraKey {
    Node(usize, NodeId),
    Coef(usize, u32, u32),
}

impl TraceBuf {
    fn new(coef_off: Vec<u32>, coef_width: u32, values: bool) -> TraceBuf {
        TraceBuf {
            coef_off,
            coef_width,
            values,
            phases: BTreeMap::new(),
            scratch: BTreeMap::new(),
            pending: None,
            filled: BTreeSet::new(),
            extra_at: BTreeMap::new(),
        }
    }
    fn phase(&mut self, ph: u32) -> &mut Phase {
        let w = self.coef_width as usize;
        self.phases.entry(ph).or_insert_with(|| Phase {
            events: Vec::new(),
            row: vec![0.0; w],
            docs: BTreeMap::new(),
        })
    }
    /// Append values to a phase's row once per key (a host value read again, in an inner
    /// loop or by another kernel, is the same value); returns their offset.
    fn extra(&mut self, ph: u32, key: ExtraKey, xs: &[f32], doc: String) -> u32 {
        if let Some(at) = self.extra_at.get(&(ph, key.clone())) {
            return *at;
        }
        let phase = self.phase(ph);
        let at = phase.row.len() as u32;
        phase.row.extend_from_slice(xs);
        phase.docs.insert(at, doc);
        self.extra_at.insert((ph, key), at);
        at
    }
    fn scratch(&mut self, unit: usize, id: NodeId) -> u32 {
        let n = self.scratch.len() as u32;
        *self.scratch.entry((unit, id)).or_insert(n)
    }
}

/// The values of a host value as the kernels read them.
fn floats(v: &Val) -> Vec<f32> {
    match v {
        Val::R(x) | Val::V(_, x) | Val::M(_, x) => x.to_vec(),
        Val::B(x) => x.iter().map(|b| *b as u8 as f32).collect(),
        Val::C(x) => x.iter().map(|c| *c as f32).collect(),
    }
}

fn empty_val(store: Store, width: u32) -> Val {
    match store {
        Store::F32 if width > 1 => Val::V(width as usize, Shared::new(Vec::new())),
        Store::F32 => Val::R(Shared::new(Vec::new())),
        Store::U32 => Val::C(Shared::new(Vec::new())),
        Store::U8 => Val::B(Shared::new(Vec::new())),
    }
}

/// The backend that records instead of computing (the JIT's `Runner`, step for step).
struct Rec<'a> {
    p: &'a Process,
    units: &'a [Unit],
    unit: usize,
    /// The traced unit's own program (its coefficients have a place in the row).
    own: bool,
    /// A fixed phase (a prior run inside a sampler's start).
    phase: Option<u32>,
    tb: &'a RefCell<TraceBuf>,
}

impl Rec<'_> {
    fn plan(&self) -> &Plan {
        &self.units[self.unit].plan
    }

    fn ph(&self, cx: &Ctx) -> u32 {
        self.phase.unwrap_or(cx.step)
    }

    /// The buffer holding node `id` (computing it first when a kernel does).
    fn node_buf(&self, cx: &mut Ctx, id: NodeId, store: Store, width: u32) -> Result<Buf, String> {
        let info = cx.prog.node(id).clone();
        let ph = self.ph(cx);
        if info.extent == Extent::Uniform {
            if store != Store::F32 {
                return Err(format!(
                    "`{}`: a kernel reads a bool or class the same for every element; \
                     ahead-of-time libraries pass such values as floats only",
                    cx.prog.name
                ));
            }
            let at = match info.node {
                Node::Coef(c) if self.own => {
                    self.coef(cx, c)?;
                    self.tb.borrow().coef_off[c as usize]
                }
                _ => {
                    if !self.tb.borrow().values {
                        return Err(format!(
                            "`{}`: a kernel reads a host value that is not a coefficient; \
                             it cannot be supplied by the caller",
                            cx.prog.name
                        ));
                    }
                    let v = cx.eval(id)?;
                    let doc = match info.node {
                        Node::Slot(s) => format!(
                            "{}, a value the sampler computes once per step",
                            slot_name(self.units[self.unit].sampler(), s)
                        ),
                        _ => "a value the host computes from the coefficients".to_string(),
                    };
                    self.tb
                        .borrow_mut()
                        .extra(ph, ExtraKey::Node(self.unit, id), &floats(&v), doc)
                }
            };
            return Ok(Buf {
                src: Src::Row(at),
                store,
                width,
                batch: false,
                dims: Vec::new(),
                out: false,
            });
        }
        cx.eval(id)?;
        let src = self.src_of(id, &info.node)?;
        Ok(Buf {
            src,
            store,
            width,
            batch: true,
            dims: if info.extent == Extent::Element {
                shape_dims(&info.shape)
            } else {
                Vec::new()
            },
            out: false,
        })
    }

    /// Where a node that is not the same for every element lives.
    fn src_of(&self, id: NodeId, node: &Node) -> Result<Src, String> {
        if self.plan().by_node.contains_key(&id) {
            return Ok(Src::Node(self.tb.borrow_mut().scratch(self.unit, id)));
        }
        Ok(match node {
            Node::State(f) => Src::Field(*f),
            Node::Slot(s) => Src::Slot(*s),
            Node::Prev(s) => Src::Prev(*s),
            Node::NetOut { call, output } => Src::Net {
                call: *call,
                output: *output,
            },
            Node::Input(i) => Src::Input(*i),
            _ => {
                return Err(format!(
                    "internal error: node {} of `{}` has no buffer; this is a bug in diffc",
                    id.0, self.units[self.unit].prog.name
                ))
            }
        })
    }

    /// Evaluate coefficient `c` of the own program into the row (once per phase: a phase's
    /// coefficients do not change).
    fn coef(&self, cx: &mut Ctx, c: u32) -> Result<(), String> {
        let ph = self.ph(cx);
        if !self.tb.borrow().values || !self.tb.borrow_mut().filled.insert((ph, c)) {
            return Ok(());
        }
        let v = floats(&cx.coef(c)?);
        let mut tb = self.tb.borrow_mut();
        let (at, w) = (
            tb.coef_off[c as usize] as usize,
            coef_width(self.p, cx.prog, c as usize) as usize,
        );
        let row = &mut tb.phase(ph).row;
        for (q, x) in v.iter().take(w).enumerate() {
            row[at + q] = *x;
        }
        Ok(())
    }

    /// Record a launch of kernel `k` and give its outputs (empty) their places.
    fn launch(&self, cx: &mut Ctx, k: usize) -> Result<(), String> {
        let kern: &Kernel = &self.plan().kernels[k];
        let ph = self.ph(cx);
        let domain: Vec<u32> = kern
            .domain
            .iter()
            .map(|d| self.dim_index(&kern.dims[*d as usize]))
            .collect();
        let mut bufs = Vec::new();
        for b in &kern.bufs {
            let buf = match &b.src {
                BufSrc::Node(id) => self.node_buf(cx, *id, b.store, b.width)?,
                BufSrc::Out(t) => Buf {
                    src: match t {
                        Target::Node(id) => Src::Node(self.tb.borrow_mut().scratch(self.unit, *id)),
                        Target::Slot(s) => Src::Slot(*s),
                        Target::Field(f) => Src::Field(*f),
                    },
                    store: b.store,
                    width: b.width,
                    batch: true,
                    dims: domain.clone(),
                    out: true,
                },
                BufSrc::Mask(m) => Buf {
                    src: Src::Mask(*m),
                    store: Store::U8,
                    width: 1,
                    batch: true,
                    dims: vec![self.p.masks[*m as usize].dim.index() as u32],
                    out: false,
                },
                BufSrc::Draw(_) => {
                    return Err(format!(
                        "`{}`: supplied draws are not built ahead of time",
                        cx.prog.name
                    ))
                }
            };
            bufs.push(buf);
        }
        let mut slots = Vec::new();
        for (c, q) in &kern.coefs {
            if self.own {
                self.coef(cx, *c)?;
                slots.push(self.tb.borrow().coef_off[*c as usize] + q);
            } else {
                let v = floats(&cx.coef(*c)?);
                let x = v.get(*q as usize).copied().unwrap_or(v[0]);
                slots.push(self.tb.borrow_mut().extra(
                    ph,
                    ExtraKey::Coef(self.unit, *c, *q),
                    &[x],
                    format!(
                        "coefficient c{c}{} of `{}`: {}",
                        if coef_width(self.p, cx.prog, *c as usize) > 1 {
                            format!("[{q}]")
                        } else {
                            String::new()
                        },
                        self.units[self.unit].name,
                        coef_text(self.p, cx.prog, *c as usize)
                    ),
                ));
            }
        }
        self.tb.borrow_mut().phase(ph).events.push(Event::Launch {
            unit: self.unit,
            kernel: k,
            bufs,
            slots,
            word: Word::Fixed(cx.step as u64),
            offset: cx.draw_offset,
        });
        for b in &kern.bufs {
            let BufSrc::Out(t) = b.src else { continue };
            let v = empty_val(b.store, b.width);
            match t {
                Target::Node(id) => cx.vals[id.index()] = Some(v),
                Target::Slot(s) => cx.slots[s as usize] = Some(v),
                Target::Field(f) => cx.state[f as usize] = Some(v),
            }
        }
        Ok(())
    }

    fn dim_index(&self, name: &str) -> u32 {
        self.p.dims.iter().position(|d| d.name == name).unwrap_or(0) as u32
    }
}

/// Statements a run leaves to the host never call networks.
struct NoNetwork;

impl Denoiser for NoNetwork {
    fn denoise(&mut self, _: &Process, _: &NetCall) -> Result<Vec<Tensor>, String> {
        Err("internal error: a host statement of a kernel run called a network".into())
    }
}

impl Accel for Rec<'_> {
    fn node(&self, cx: &mut Ctx, id: NodeId) -> Option<Result<(), String>> {
        if let Some(k) = self.plan().by_node.get(&id) {
            return Some(self.launch(cx, *k));
        }
        let info = cx.prog.node(id);
        if info.extent == Extent::Uniform || build::is_leaf(&info.node) {
            return None;
        }
        Some(Err(cx.bug("a node without a kernel ahead of time")))
    }

    fn ops(&self, cx: &mut Ctx, ops: &[Op], at: usize) -> Option<Result<usize, String>> {
        if let Op::Call { call, args, .. } = &ops[at] {
            let ph = self.ph(cx);
            self.tb.borrow_mut().pending = Some((ph, *call, cx.draw_offset, args.clone()));
            return None;
        }
        let key = op_key(&ops[at])?;
        let Some(g) = self.plan().groups.get(&key) else {
            return Some(Err(cx.bug("a statement without a kernel ahead of time")));
        };
        let mut run = || -> Result<usize, String> {
            for h in &g.host {
                let op = &ops[at + h];
                match op {
                    Op::Slot { slot, node } => {
                        let info = cx.prog.node(*node).clone();
                        if info.extent != Extent::Uniform {
                            // A copy of a value the run does not write (a captured input).
                            let from =
                                self.node_buf(cx, *node, store_of(&info), width_of(&info))?;
                            let to = Buf {
                                src: Src::Slot(*slot),
                                out: true,
                                ..from.clone()
                            };
                            let ph = self.ph(cx);
                            self.tb.borrow_mut().phase(ph).events.push(Event::Copy {
                                to,
                                from,
                                why: CopyWhy::Host,
                                tag: cx.draw_offset,
                            });
                        }
                    }
                    _ => {
                        return Err(format!(
                            "`{}`: a field set to a value the same for every element is not \
                             built ahead of time",
                            cx.prog.name
                        ))
                    }
                }
                cx.exec_op(op, &mut NoNetwork)?;
            }
            if let Some(k) = g.kernel {
                self.launch(cx, k)?;
            }
            Ok(g.len)
        };
        Some(run())
    }

    fn entry(&self, p: &Process, prog: &Program, call: &Call) -> Result<Vec<Tensor>, String> {
        // A prior drawn at a sampler's start: its own kernels, recorded into the start.
        let ui = self
            .units
            .iter()
            .position(|u| u.entry().is_some() && u.name == prog.name)
            .ok_or_else(|| format!("internal error: no unit for `{}`", prog.name))?;
        let ph = self.phase.unwrap_or(u32::MAX);
        let sub = Rec {
            p,
            units: self.units,
            unit: ui,
            own: false,
            phase: Some(ph),
            tb: self.tb,
        };
        let unit = &self.units[ui];
        let out = interp::run_with(p, &unit.prog, call, Some(&sub))?;
        let target = p
            .priors
            .iter()
            .map(|k| k.target.field)
            .find(|f| p.priors.len() == 1 || prog.name == format!("prior.{}", p.field(*f).name))
            .ok_or_else(|| format!("internal error: no field for `{}`", prog.name))?;
        let r = unit.prog.results[0];
        let info = unit.prog.node(r);
        let store = store_of(info);
        let width = width_of(info);
        let dims = shape_dims(&info.shape);
        let from = Buf {
            src: Src::Node(self.tb.borrow_mut().scratch(ui, r)),
            store,
            width,
            batch: true,
            dims: dims.clone(),
            out: false,
        };
        let to = Buf {
            src: Src::Field(target.0),
            out: true,
            ..from.clone()
        };
        self.tb.borrow_mut().phase(ph).events.push(Event::Copy {
            to,
            from,
            why: CopyWhy::Start,
            tag: 0,
        });
        Ok(out)
    }
}

fn store_of(info: &crate::ir::NodeInfo) -> Store {
    match info.kind {
        crate::ir::Kind::Bool => Store::U8,
        crate::ir::Kind::Class(_) => Store::U32,
        _ => Store::F32,
    }
}

fn width_of(info: &crate::ir::NodeInfo) -> u32 {
    match info.kind {
        crate::ir::Kind::Vec(k) => k,
        crate::ir::Kind::Mat(k) => k * k,
        _ => 1,
    }
}

/// The network calls of a sampler trace: it records each call when the interpreter makes it,
/// with the arguments the pending `Op::Call` named, and answers with empty outputs.
struct RecNet<'a> {
    rec: &'a Rec<'a>,
}

impl Denoiser for RecNet<'_> {
    fn denoise(&mut self, p: &Process, call: &NetCall) -> Result<Vec<Tensor>, String> {
        let (net, inputs) = (call.net, call.inputs);
        let rec = self.rec;
        let (ph, call, tag, args) = rec
            .tb
            .borrow_mut()
            .pending
            .take()
            .ok_or("internal error: a network call without its statement")?;
        let prog = &rec.units[rec.unit].prog;
        let mut ins = Vec::new();
        for (a, t) in args.iter().zip(inputs) {
            let info = prog.node(*a);
            if info.extent == Extent::Uniform {
                let xs = t.f32s().map(|x| x.to_vec()).unwrap_or_default();
                if let Node::Coef(c) = info.node {
                    // A coefficient (the call's time): its place in the row.
                    let mut tb = rec.tb.borrow_mut();
                    let at = tb.coef_off[c as usize];
                    if tb.filled.insert((ph, c)) {
                        let row = &mut tb.phase(ph).row;
                        for (q, x) in xs.iter().enumerate() {
                            row[at as usize + q] = *x;
                        }
                    }
                    ins.push(Buf {
                        src: Src::Row(at),
                        store: Store::F32,
                        width: xs.len() as u32,
                        batch: false,
                        dims: Vec::new(),
                        out: false,
                    });
                    continue;
                }
                let n = &p.networks[net];
                let which = ins.len();
                let doc = match n.inputs.get(which) {
                    Some(crate::typed::NetInput::Time { expr }) => format!(
                        "`{}`, the time network call {call} (`{}`) takes",
                        show(p, *expr),
                        n.name
                    ),
                    _ => format!("input {which} of network call {call} (`{}`)", n.name),
                };
                let at = rec
                    .tb
                    .borrow_mut()
                    .extra(ph, ExtraKey::Node(rec.unit, *a), &xs, doc);
                ins.push(Buf {
                    src: Src::Row(at),
                    store: Store::F32,
                    width: xs.len() as u32,
                    batch: false,
                    dims: Vec::new(),
                    out: false,
                });
            } else {
                ins.push(Buf {
                    src: rec.src_of(*a, &info.node)?,
                    store: store_of(info),
                    width: width_of(info),
                    batch: true,
                    dims: if info.extent == Extent::Element {
                        shape_dims(&info.shape)
                    } else {
                        Vec::new()
                    },
                    out: false,
                });
            }
        }
        let n = &p.networks[net];
        let mut outs = Vec::new();
        let mut sym = Vec::new();
        let mut tensors = Vec::new();
        for (j, o) in n.outputs.iter().enumerate() {
            let f = p.field(o.field);
            let width = match o.ty.elem() {
                Some(Elem::Vec(k)) => k,
                _ => 1,
            };
            let dims: Vec<u32> = f.shape.dims.iter().map(|d| d.0).collect();
            let mut shape = vec![0];
            shape.extend(dims.iter().map(|_| 1));
            if width > 1 {
                shape.push(width as usize);
            }
            tensors.push(Tensor {
                shape,
                data: Data::F32(Vec::new()),
            });
            sym.push(f.shape.sym.then(|| dims[0]));
            outs.push(Buf {
                src: Src::Net {
                    call,
                    output: j as u32,
                },
                store: Store::F32,
                width,
                batch: true,
                dims,
                out: true,
            });
        }
        rec.tb.borrow_mut().phase(ph).events.push(Event::Call {
            net: net as u32,
            call,
            inputs: ins,
            outputs: outs,
            sym,
            tag,
        });
        Ok(tensors)
    }
}

/// How one sequence reads a slot that host copies fill from `from`: `None` when a reader
/// cannot read `from` instead (it comes before any copy, or after `from` or the slot changed
/// since the last copy), else the copies and their readers (none when the sequence has neither).
fn forward_plan(ev: &[Event], to: &Src, from: &Src) -> Option<(Vec<usize>, Vec<usize>)> {
    let is_copy = |e: &Event| {
        matches!(e, Event::Copy { to: t, from: f, why: CopyWhy::Host, .. }
            if t.src == *to && f.src == *from)
    };
    let (mut copies, mut readers) = (Vec::new(), Vec::new());
    // Does the slot hold `from`'s current value?
    let mut fresh = false;
    for (j, e) in ev.iter().enumerate() {
        if is_copy(e) {
            copies.push(j);
            fresh = true;
            continue;
        }
        if reads(e).iter().any(|b| b.src == *to) {
            if !fresh {
                return None;
            }
            readers.push(j);
        }
        if writes(e).iter().any(|b| b.src == *from || b.src == *to) {
            fresh = false;
        }
    }
    Some((copies, readers))
}

/// Remove copies the C runtime does not need (the interpreter keeps them for its own state):
/// - a host copy into a slot (a value a network call captured) whose readers all follow it in
///   the same sequence, before anything overwrites its source, reads the source instead;
/// - an intermediate value that one kernel writes and only a copy reads (an entry's result, a
///   prior's draw at a sampler's start) is written where the copy would put it.
fn simplify(shapes: &mut [Vec<Event>]) {
    let count = |shapes: &[Vec<Event>], src: &Src, f: fn(&Event) -> Vec<&Buf>| -> usize {
        shapes
            .iter()
            .flat_map(|s| s.iter())
            .map(|e| f(e).iter().filter(|b| b.src == *src).count())
            .sum()
    };
    loop {
        let mut changed = false;
        'shapes: for si in 0..shapes.len() {
            for i in 0..shapes[si].len() {
                let Event::Copy { to, from, why, .. } = shapes[si][i].clone() else {
                    continue;
                };
                match (why, &to.src, &from.src) {
                    (CopyWhy::Host, Src::Slot(_), _) => {
                        let _ = (si, i);
                        let plans: Option<Vec<_>> = shapes
                            .iter()
                            .map(|ev| forward_plan(ev, &to.src, &from.src))
                            .collect();
                        let Some(plans) = plans else { continue };
                        for (ev, (copies, readers)) in shapes.iter_mut().zip(plans) {
                            for j in readers {
                                for b in reads_mut(&mut ev[j]) {
                                    if b.src == to.src {
                                        b.src = from.src.clone();
                                    }
                                }
                            }
                            for at in copies.into_iter().rev() {
                                ev.remove(at);
                            }
                        }
                        changed = true;
                        break 'shapes;
                    }
                    (CopyWhy::Result | CopyWhy::Start, _, Src::Node(_)) => {
                        if count(shapes, &from.src, reads) != 1
                            || count(shapes, &from.src, writes) != 1
                        {
                            continue;
                        }
                        let ev = &mut shapes[si];
                        let Some(j) = ev[..i].iter().position(|e| {
                            matches!(e, Event::Launch { .. })
                                && writes(e).iter().any(|b| b.src == from.src)
                        }) else {
                            continue;
                        };
                        if ev[j + 1..i].iter().any(|e| {
                            reads(e)
                                .iter()
                                .chain(writes(e).iter())
                                .any(|b| b.src == to.src)
                        }) {
                            continue;
                        }
                        if let Event::Launch { bufs, .. } = &mut ev[j] {
                            for b in bufs.iter_mut() {
                                if b.out && b.src == from.src {
                                    b.src = to.src.clone();
                                }
                            }
                        }
                        ev.remove(i);
                        changed = true;
                        break 'shapes;
                    }
                    _ => {}
                }
            }
        }
        if !changed {
            break;
        }
    }
}

fn zero_tensor(p: &Process, port_elem: Elem, shape: &Shape) -> Tensor {
    let mut s = vec![0];
    s.extend(shape.dims.iter().map(|_| 1));
    if let Elem::Vec(k) = port_elem {
        s.push(k as usize);
    }
    let _ = p;
    Tensor {
        shape: s,
        data: match port_elem {
            Elem::Cat(_) => Data::Class(Vec::new()),
            Elem::Bool => Data::Bool(Vec::new()),
            _ => Data::F32(Vec::new()),
        },
    }
}

/// The masks of a call, on zero samples (as traces run).
fn zero_masks(p: &Process, masks: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    p.masks
        .iter()
        .filter(|m| masks.contains_key(&m.name))
        .map(|m| {
            let t = Tensor {
                shape: vec![0, 1],
                data: Data::Bool(Vec::new()),
            };
            (m.name.clone(), t)
        })
        .collect()
}

/// Every dimension a field or mask is shaped by, at size 1 (a dimension nothing is shaped by
/// is never read, and a spec may declare thousands).
fn unit_sizes(p: &Process) -> HashMap<String, usize> {
    let mut used = vec![false; p.dims.len()];
    for f in &p.fields {
        for d in &f.shape.dims {
            used[d.index()] = true;
        }
    }
    for m in &p.masks {
        used[m.dim.index()] = true;
    }
    p.dims
        .iter()
        .zip(used)
        .filter(|(_, u)| *u)
        .map(|(d, _)| (d.name.clone(), 1))
        .collect()
}

pub(crate) fn trace_unit(p: &Process, units: &[Unit], ui: usize) -> Result<Trace, String> {
    let u = &units[ui];
    let (coef_off, coef_width) = coef_layout(p, &u.prog);
    let new_tb = |values: bool| RefCell::new(TraceBuf::new(coef_off.clone(), coef_width, values));
    fn rec<'a>(p: &'a Process, units: &'a [Unit], ui: usize, tb: &'a RefCell<TraceBuf>) -> Rec<'a> {
        Rec {
            p,
            units,
            unit: ui,
            own: true,
            phase: None,
            tb,
        }
    }
    match &u.kind {
        UnitKind::Entry(e) => {
            let prog = &u.prog;
            let scalars: Vec<&str> = e
                .inputs
                .iter()
                .filter(|x| x.extent == PortExtent::Scalar && x.name != "seed")
                .map(|x| x.name.as_str())
                .collect();
            let tabulated =
                p.time.kind == TimeKind::Discrete && scalars.iter().all(|s| *s == p.time.name);
            let times: Vec<Option<f64>> = if scalars.is_empty() {
                vec![None]
            } else if tabulated {
                (p.time.lo as i64..=p.time.hi as i64)
                    .map(|t| Some(t as f64))
                    .collect()
            } else if p.time.kind == TimeKind::Discrete {
                vec![Some(((p.time.lo + p.time.hi) / 2.0).floor())]
            } else {
                vec![Some((p.time.lo + p.time.hi) / 2.0)]
            };
            let mut shape: Option<Vec<Event>> = None;
            let mut docs = BTreeMap::new();
            let mut rows = Vec::new();
            let mut scratch = 0;
            for t in &times {
                let mut call = Call {
                    batch: 0,
                    sizes: unit_sizes(p),
                    ..Call::default()
                };
                for port in &prog.inputs {
                    match &port.extent {
                        PortExtent::Field(s) => {
                            call.inputs
                                .insert(port.name.clone(), zero_tensor(p, port.elem, s));
                        }
                        PortExtent::Sample => {
                            call.inputs.insert(
                                port.name.clone(),
                                zero_tensor(p, port.elem, &Shape::scalar()),
                            );
                        }
                        PortExtent::Scalar if port.name == "seed" => {}
                        PortExtent::Scalar => {
                            let t = t.unwrap_or(0.0);
                            // `s` (a posterior's target time) halfway between t and the data
                            // (a whole time in discrete time).
                            let v = if port.name == "s" {
                                let mid = (t + p.time.data_at) / 2.0;
                                if p.time.kind == TimeKind::Discrete {
                                    mid.floor()
                                } else {
                                    mid
                                }
                            } else {
                                t
                            };
                            call.inputs
                                .insert(port.name.clone(), Tensor::scalar(v as f32));
                        }
                    }
                }
                let (ph, n) =
                    trace_entry_once(p, units, ui, &call, scalars.is_empty() || tabulated)
                        .map_err(|m| format!("`{}.{}`: {m}", p.name, units[ui].name))?;
                scratch = n;
                match &shape {
                    None => {
                        shape = Some(ph.events);
                        docs = ph.docs;
                    }
                    Some(s) if *s == ph.events => {}
                    Some(_) => {
                        return Err(format!(
                            "internal error: the calls of `{}.{}` depend on the time",
                            p.name, u.name
                        ))
                    }
                }
                rows.push(ph.row);
            }
            let width = rows.iter().map(|r| r.len()).max().unwrap_or(0) as u32;
            for r in &mut rows {
                r.resize(width as usize, 0.0);
            }
            let supplied = !(scalars.is_empty() || tabulated);
            let mut shapes = vec![shape.unwrap_or_default()];
            simplify(&mut shapes);
            let shapes: Vec<Vec<Event>> = shapes.into_iter().map(fold_repeats).collect();
            Ok(Trace {
                shapes,
                rows: (!supplied).then_some(rows),
                width,
                coef_off,
                coef_width,
                scratch,
                times: if scalars.is_empty() || supplied {
                    None
                } else {
                    Some(times.iter().map(|t| t.unwrap_or(0.0)).collect())
                },
                step_shape: Vec::new(),
                finalize_shape: 0,
                start_shape: 0,
                docs: vec![docs],
            })
        }
        UnitKind::Sampler(sp) => {
            let s = p
                .samplers
                .iter()
                .find(|s| s.name == u.name)
                .ok_or("internal error: a sampler went missing")?;
            let grid = s.default_grid.clone();
            let n = grid.len() - 1;
            let tb = new_tb(true);
            let r = rec(p, units, ui, &tb);
            let mut call = SampleCall {
                batch: 0,
                sizes: unit_sizes(p),
                ..SampleCall::default()
            };
            for f in &sp.conditions {
                let fd = &p.fields[*f as usize];
                call.state
                    .insert(fd.name.clone(), zero_tensor(p, fd.elem, &fd.shape));
            }
            interp::sample_with(p, sp, &call, &mut RecNet { rec: &r }, Some(&r))
                .map_err(|m| format!("`{}.{}`: {m}", p.name, u.name))?;
            let tb = tb.into_inner();
            let scratch = tb.scratch.len();
            let mut phases = tb.phases;
            // The history: each step ends by keeping the slots the next one reads with `prev`.
            let keep = keep_copies(
                p,
                u,
                sp,
                phases.values().flat_map(|ph| ph.events.iter()),
                true,
            )?;
            let mut shapes: Vec<Vec<Event>> = Vec::new();
            let mut docs: Vec<BTreeMap<u32, String>> = Vec::new();
            let mut intern = |events: Vec<Event>, d: BTreeMap<u32, String>| -> usize {
                match shapes.iter().position(|s| *s == events) {
                    Some(i) => i,
                    None => {
                        shapes.push(events);
                        docs.push(d);
                        shapes.len() - 1
                    }
                }
            };
            let mut rows = Vec::new();
            let mut step_shape = Vec::new();
            for k in 0..n {
                let mut ph = phases.remove(&(k as u32)).unwrap_or_else(|| Phase {
                    row: vec![0.0; coef_width as usize],
                    ..Phase::default()
                });
                for e in &mut ph.events {
                    if let Event::Launch { word, .. } = e {
                        if *word == Word::Fixed(k as u64) {
                            *word = Word::Step;
                        }
                    }
                }
                ph.events.extend(keep.iter().cloned());
                step_shape.push(intern(ph.events, ph.docs));
                rows.push(ph.row);
            }
            let mut other = |key: u32| -> (usize, Vec<f32>) {
                let ph = phases.remove(&key).unwrap_or_else(|| Phase {
                    row: vec![0.0; coef_width as usize],
                    ..Phase::default()
                });
                (intern(ph.events, ph.docs), ph.row)
            };
            let (finalize_shape, frow) = other(n as u32);
            let (start_shape, srow) = other(u32::MAX);
            rows.push(frow);
            rows.push(srow);
            if let Some(k) = phases.keys().next() {
                return Err(format!(
                    "internal error: `{}.{}` launched with step word {k}",
                    p.name, u.name
                ));
            }
            let width = rows.iter().map(|r| r.len()).max().unwrap_or(0) as u32;
            for r in &mut rows {
                r.resize(width as usize, 0.0);
            }
            simplify(&mut shapes);
            // Simplifying may make two sequences equal: keep one of each.
            let mut distinct: Vec<Vec<Event>> = Vec::new();
            let mut distinct_docs = Vec::new();
            let mut map = Vec::new();
            for (s, d) in shapes.into_iter().map(fold_repeats).zip(docs) {
                map.push(match distinct.iter().position(|x| *x == s) {
                    Some(i) => i,
                    None => {
                        distinct.push(s);
                        distinct_docs.push(d);
                        distinct.len() - 1
                    }
                });
            }
            let (shapes, docs) = (distinct, distinct_docs);
            let step_shape = step_shape.into_iter().map(|s| map[s]).collect();
            let (finalize_shape, start_shape) = (map[finalize_shape], map[start_shape]);
            Ok(Trace {
                shapes,
                rows: Some(rows),
                width,
                coef_off,
                coef_width,
                scratch,
                times: Some(grid),
                step_shape,
                finalize_shape,
                start_shape,
                docs,
            })
        }
    }
}

/// The copies that end a step: each history slot the next step reads with `prev`, shaped like
/// the buffer that writes it in `events`. Every slot must be written there when `strict` (a
/// whole run); otherwise a slot no event writes is left out (one step that keeps nothing new).
fn keep_copies<'e>(
    p: &Process,
    u: &Unit,
    sp: &SamplerProgram,
    events: impl Iterator<Item = &'e Event> + Clone,
    strict: bool,
) -> Result<Vec<Event>, String> {
    sp.history
        .iter()
        .filter(|h| {
            strict
                || events
                    .clone()
                    .flat_map(writes)
                    .any(|b| b.src == Src::Slot(**h))
        })
        .map(|h| {
            let like = events
                .clone()
                .flat_map(writes)
                .find(|b| b.src == Src::Slot(*h))
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "`{}.{}`: a history value is never written by a kernel",
                        p.name, u.name
                    )
                })?;
            Ok(Event::Copy {
                to: Buf {
                    src: Src::Prev(*h),
                    ..like.clone()
                },
                from: Buf {
                    src: Src::Slot(*h),
                    out: false,
                    ..like
                },
                why: CopyWhy::Keep,
                tag: 0,
            })
        })
        .collect()
}

/// One run of an entry's host side on zero samples, recorded: its call sequence (result copies
/// last) and row, and the unit's scratch count. `values` keeps the row's values.
fn trace_entry_once(
    p: &Process,
    units: &[Unit],
    ui: usize,
    call: &Call,
    values: bool,
) -> Result<(Phase, usize), String> {
    let u = &units[ui];
    let prog = &u.prog;
    let (coef_off, coef_width) = coef_layout(p, prog);
    let tb = RefCell::new(TraceBuf::new(coef_off, coef_width, values));
    let r = Rec {
        p,
        units,
        unit: ui,
        own: true,
        phase: None,
        tb: &tb,
    };
    // The error as the interpreter words it; `trace_unit` names the entry for a build.
    let out = interp::run_with(p, prog, call, Some(&r))?;
    // The results: from a kernel's scratch, a host value, or an input.
    for (i, res) in prog.results.iter().enumerate() {
        let info = prog.node(*res);
        let port = &prog.outputs[i];
        let to = port_buf(port, Src::Output(i as u32), true);
        let from = if u.plan.by_node.contains_key(res) {
            Buf {
                src: Src::Node(tb.borrow_mut().scratch(ui, *res)),
                out: false,
                ..to.clone()
            }
        } else if info.extent == Extent::Uniform {
            let xs = out[i].f32s().map(|x| x.to_vec()).unwrap_or_default();
            let mut b = tb.borrow_mut();
            let at = match info.node {
                Node::Coef(c) => {
                    let at = b.coef_off[c as usize];
                    if b.values {
                        let row = &mut b.phase(0).row;
                        for (q, x) in xs.iter().enumerate() {
                            row[at as usize + q] = *x;
                        }
                    }
                    at
                }
                _ if b.values => b.extra(
                    0,
                    ExtraKey::Node(ui, *res),
                    &xs,
                    format!("output `{}`", port.name),
                ),
                _ => {
                    return Err(format!(
                        "`{}.{}`: output `{}` is a host value that is not a \
                             coefficient; it cannot be supplied by the caller",
                        p.name, u.name, port.name
                    ))
                }
            };
            Buf {
                src: Src::Row(at),
                batch: false,
                dims: Vec::new(),
                out: false,
                ..to.clone()
            }
        } else if let Node::Input(j) = info.node {
            Buf {
                src: Src::Input(j),
                out: false,
                ..to.clone()
            }
        } else {
            return Err(format!(
                "internal error: output `{}` of `{}.{}` has no source",
                port.name, p.name, u.name
            ));
        };
        tb.borrow_mut().phase(0).events.push(Event::Copy {
            to,
            from,
            why: CopyWhy::Result,
            tag: 0,
        });
    }
    let mut tb = tb.into_inner();
    let scratch = tb.scratch.len();
    let mut ph = tb.phases.remove(&0).unwrap_or_default();
    // An entry with a fixed step word of its own (`sample_t` draws on 2^31, apart from
    // `forward`'s noise): its launches come before the result copies.
    match std::mem::take(&mut tb.phases)
        .into_iter()
        .collect::<Vec<_>>()[..]
    {
        [] => {}
        [(k, ref other)] if k >= interp::SAMPLE_T_STEP => {
            let mut events = other.events.clone();
            events.append(&mut ph.events);
            ph.events = events;
            ph.docs.extend(other.docs.clone());
        }
        _ => {
            return Err(format!(
                "internal error: `{}.{}` launched with a step word",
                p.name, u.name
            ))
        }
    }
    Ok((ph, scratch))
}

/// An entry's call sequence and row for one call's host side (its scalar inputs, params and
/// sizes; zero samples), as the lean and resident runners replay it.
pub(crate) fn trace_entry_at(
    p: &Process,
    units: &[Unit],
    ui: usize,
    call: &Call,
) -> Result<(Vec<Event>, Vec<f32>), String> {
    let u = &units[ui];
    let mut c = Call {
        batch: 0,
        sizes: unit_sizes(p),
        params: call.params.clone(),
        masks: zero_masks(p, &call.masks),
        ..Call::default()
    };
    for port in &u.prog.inputs {
        match &port.extent {
            PortExtent::Field(s) => {
                c.inputs
                    .insert(port.name.clone(), zero_tensor(p, port.elem, s));
            }
            PortExtent::Sample => {
                c.inputs.insert(
                    port.name.clone(),
                    zero_tensor(p, port.elem, &Shape::scalar()),
                );
            }
            PortExtent::Scalar => {
                if let Some(v) = call.inputs.get(&port.name) {
                    c.inputs.insert(port.name.clone(), v.clone());
                }
            }
        }
    }
    let (ph, _) = trace_entry_once(p, units, ui, &c, true)?;
    let mut shapes = [ph.events];
    simplify(&mut shapes);
    let [events] = shapes;
    Ok((fold_repeats(events), ph.row))
}

/// One step of a sampler (or its final map) as `call` asks for it (`single_step` or
/// `finalize_only`, with its grid, params and seed): the call sequence, ending with the copies
/// that keep its history, and the row of host values it reads. Found as `trace_unit` finds a
/// whole run's, on zero samples.
pub(crate) fn trace_single(
    p: &Process,
    units: &[Unit],
    ui: usize,
    call: &SampleCall,
) -> Result<(Vec<Event>, Vec<f32>), String> {
    let u = &units[ui];
    let UnitKind::Sampler(sp) = &u.kind else {
        return Err(format!("`{}` is not a sampler", u.name));
    };
    let (coef_off, coef_width) = coef_layout(p, &u.prog);
    let tb = RefCell::new(TraceBuf::new(coef_off, coef_width, true));
    let r = Rec {
        p,
        units,
        unit: ui,
        own: true,
        phase: None,
        tb: &tb,
    };
    let mut c = SampleCall {
        seed: call.seed,
        batch: 0,
        sizes: unit_sizes(p),
        params: call.params.clone(),
        process_params: call.process_params.clone(),
        grid: call.grid.clone(),
        finalize_only: call.finalize_only,
        masks: zero_masks(p, &call.masks),
        ..SampleCall::default()
    };
    for f in &p.fields {
        c.state
            .insert(f.name.clone(), zero_tensor(p, f.elem, &f.shape));
    }
    let key = match &call.single_step {
        Some(one) if !call.finalize_only => {
            let mut one = one.clone();
            one.prev.clear();
            for (slot, name) in sp.history.iter().zip(&sp.history_names) {
                let Some((elem, info)) = interp::kept_value(sp, *slot) else {
                    continue;
                };
                let shape = info.shape.clone().unwrap_or_else(Shape::scalar);
                one.prev.insert(name.clone(), zero_tensor(p, elem, &shape));
            }
            let k = one.k as u32;
            c.single_step = Some(one);
            k
        }
        _ if call.finalize_only => {
            // The final map of a run of `n` steps draws on step word `n`.
            c.single_step = call.single_step.clone().map(|mut one| {
                one.prev.clear();
                one
            });
            call.single_step.as_ref().map_or(0, |o| o.n as u32)
        }
        // The start of a run (its `init` block): a run stopped after no steps, from the
        // conditioning fields alone.
        None if call.stop_after == Some(0) => {
            c.stop_after = Some(0);
            c.state.retain(|name, _| {
                sp.conditions
                    .iter()
                    .any(|f| p.fields[*f as usize].name == *name)
            });
            u32::MAX
        }
        _ => {
            return Err("a single step needs its index, or the final map or the start alone".into())
        }
    };
    interp::sample_with(p, sp, &c, &mut RecNet { rec: &r }, Some(&r))?;
    let mut tb = tb.into_inner();
    let ph = tb.phases.remove(&key).unwrap_or_else(|| Phase {
        row: vec![0.0; coef_width as usize],
        ..Phase::default()
    });
    if let Some(k) = tb.phases.keys().next() {
        return Err(format!(
            "internal error: `{}.{}` launched with step word {k}",
            p.name, u.name
        ));
    }
    let mut events = ph.events;
    if !call.finalize_only && call.stop_after.is_none() {
        let keep = keep_copies(p, u, sp, events.iter(), false)?;
        events.extend(keep);
    }
    let mut shapes = [events];
    simplify(&mut shapes);
    let [events] = shapes;
    Ok((fold_repeats(events), ph.row))
}
