//! Launch plans, below every backend: what a call runs, recorded once and replayed by each
//! backend's runner.
//!
//! A unit (`Unit`) is an entry (`forward`, `log_q`, `loss.NAME`, `prior`, …) or a sampler,
//! lowered (`ir::lower`) and planned (`kernel::build`) as every backend plans it. Its call
//! sequences (`Trace`, `Event`) are found by running the interpreter on zero samples with a
//! recording `Accel` in place of a backend (`trace`): every kernel launch with its buffers
//! (`Buf`, `Src`), coefficient slots, RNG step word and index offset, every network call, and
//! every host copy, in the order the interpreter-driven runners make them, with the row of
//! host values each reads. Nothing is computed on data, so a sequence is the one a real run
//! makes on any batch.
//!
//! Who reads the plans:
//! - the CPU backend's ahead-of-time library (`cpu::aot`: object file, C header and runtime)
//!   and its lean runners (`cpu::lean`), which replay sequences with the JIT's kernels;
//! - the GPU backend's resident runner (`gpu::resident`), which replays them with the kernels
//!   as pipelines and every buffer on the device, and its WGSL build (`gpu::manifest`);
//! - `diffc explain --plan` (`text`), which prints them after checking them (`validate`).
//!
//! The rest is what those readers share: the walk of a sequence (`runs::Runs`), the calls of
//! a whole run's phases and their trace keys, size checks and the mirroring of symmetric
//! network outputs (`runs`); the network callback of a whole run (`net`: `NetFn` and the
//! arrays it takes and returns); and the C text of an entry's coefficient row at run time,
//! translated to JavaScript for the WGSL manifest (`coefc`). No module here compiles or runs
//! a kernel.

pub(crate) mod coefc;
pub(crate) mod net;
pub(crate) mod runs;
pub(crate) mod text;
pub(crate) mod trace;

pub use net::{NetArray, NetFn, NetInput, NetValues};
pub(crate) use runs::Runs;
pub use text::plan_text;
pub(crate) use trace::{trace_entry_at, trace_single, trace_unit};

use crate::entries::{self, EntryKind, Extent as PortExtent, Port};
use crate::explain::show;
use crate::interp::{self, Tensor};
use crate::ir::{Program, SamplerProgram};
use crate::kernel::build::{self, Plan, Variant};
use crate::kernel::{Inst, Kernel, Store};
use crate::typed::{Elem, Module, Process, Shape, TimeKind};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A process with its units and their traces (`traced`).
pub(crate) type Built<'a> = (&'a Process, Vec<Unit>, Vec<Trace>);

/// Every process of a checked spec (or only `process`): its units, each planned, and their traces.
pub(crate) fn traced<'m>(
    module: &'m Module,
    process: Option<&str>,
) -> Result<Vec<Built<'m>>, String> {
    let procs: Vec<&Process> = match process {
        Some(name) => vec![module
            .processes
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = module.processes.iter().map(|p| p.name.as_str()).collect();
                format!("no process `{name}` (the file has: {})", names.join(", "))
            })?],
        None => module.processes.iter().collect(),
    };
    let mut built = Vec::new();
    for p in procs {
        let units = units_of(p)?;
        let traces = units
            .iter()
            .enumerate()
            .map(|(i, _)| trace_unit(p, &units, i))
            .collect::<Result<Vec<_>, _>>()?;
        built.push((p, units, traces));
    }
    Ok(built)
}

// ---------------------------------------------------------------------------------------------
// Units

pub(crate) enum UnitKind {
    Entry(entries::Entry),
    Sampler(Box<SamplerProgram>),
}

pub(crate) struct Unit {
    /// `forward`, `loss.simple`, `ancestral`, …
    pub(crate) name: String,
    /// The name as a C identifier: `loss_simple`.
    ident: String,
    pub(crate) kind: UnitKind,
    pub(crate) prog: Program,
    pub(crate) plan: Plan,
}

impl Unit {
    pub(crate) fn sampler(&self) -> Option<&SamplerProgram> {
        match &self.kind {
            UnitKind::Sampler(sp) => Some(sp),
            UnitKind::Entry(_) => None,
        }
    }
    pub(crate) fn entry(&self) -> Option<&entries::Entry> {
        match &self.kind {
            UnitKind::Entry(e) => Some(e),
            UnitKind::Sampler(_) => None,
        }
    }
    pub(crate) fn symbol(&self, p: &Process, i: usize) -> String {
        format!(
            "diffc_{}_{}_k{i}_{}",
            p.name, self.ident, self.plan.kernels[i].name
        )
    }
    pub(crate) fn prefix(&self, p: &Process) -> String {
        format!("diffc_{}_{}", p.name, self.ident)
    }
}

pub(crate) fn ident(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

pub(crate) fn units_of(p: &Process) -> Result<Vec<Unit>, String> {
    let mut out = Vec::new();
    for e in entries::entries(p) {
        // Sampler steps are the samplers' runners.
        if matches!(e.kind, EntryKind::Step | EntryKind::Finalize) {
            continue;
        }
        out.push(entry_unit(p, e, &Default::default())?);
    }
    for s in &p.samplers {
        if out.iter().any(|u: &Unit| u.ident == ident(&s.name)) {
            return Err(format!(
                "`{}`: sampler `{}` has the name of an entry point; rename it to build a library",
                p.name, s.name
            ));
        }
        out.push(sampler_unit(p, &s.name)?);
    }
    Ok(out)
}

/// An entry's unit, planned as the JIT plans it for `v` (no supplied draws; the node masks of
/// `v`, which only the lean and resident runners give).
pub(crate) fn entry_unit(
    p: &Process,
    e: entries::Entry,
    v: &build::Variant,
) -> Result<Unit, String> {
    let prog = crate::ir::lower::lower(p, &e.name)?;
    let plan = build::plan_entry(p, &prog, v)?;
    Ok(Unit {
        ident: ident(&e.name),
        name: e.name.clone(),
        kind: UnitKind::Entry(e),
        prog,
        plan,
    })
}

/// A sampler's unit, planned as the JIT plans it (no supplied draws, no node masks).
pub(crate) fn sampler_unit(p: &Process, name: &str) -> Result<Unit, String> {
    sampler_unit_for(p, name, &Default::default())
}

/// A sampler's unit for variant `v` (no supplied draws; `v`'s node masks).
pub(crate) fn sampler_unit_for(
    p: &Process,
    name: &str,
    v: &build::Variant,
) -> Result<Unit, String> {
    let sp = crate::ir::lower::lower_sampler(p, name)?;
    let plan = build::plan_sampler(p, &sp, v)?;
    Ok(Unit {
        ident: ident(name),
        name: name.to_string(),
        prog: sp.prog.clone(),
        kind: UnitKind::Sampler(Box::new(sp)),
        plan,
    })
}

/// Values per element of a program coefficient (a K-vector is K, a K×K matrix K²).
pub(crate) fn coef_width(p: &Process, prog: &Program, c: usize) -> u32 {
    match p.expr(prog.coefs[c].0).ty.elem() {
        Some(Elem::Vec(k)) => k,
        Some(Elem::Mat(k)) => k * k,
        _ => 1,
    }
}

/// Row offsets of a program's coefficients, and the width of the coefficient area.
fn coef_layout(p: &Process, prog: &Program) -> (Vec<u32>, u32) {
    let mut off = Vec::new();
    let mut at = 0;
    for c in 0..prog.coefs.len() {
        off.push(at);
        at += coef_width(p, prog, c);
    }
    (off, at)
}

/// A coefficient as source text (at the call's time when it has one of its own).
pub(crate) fn coef_text(p: &Process, prog: &Program, c: usize) -> String {
    let (e, at) = prog.coefs[c];
    let mut text = show(p, e);
    if let crate::typed::ExprKind::Local(l) = p.expr(e).kind {
        if let Some(v) = p.locals[l.index()].value {
            text = format!("{text} = {}", show(p, v));
        }
    }
    match at {
        Some(t) if show(p, t) != p.time.name => {
            format!("{text}, at {} = {}", p.time.name, show(p, t))
        }
        _ => text,
    }
}

// ---------------------------------------------------------------------------------------------
// Traces

/// Where a buffer of a call lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Src {
    /// A field of the sampler's state (the caller's array).
    Field(u32),
    /// A sampler slot (a `let` or draw), its previous step's value, a network output.
    Slot(u32),
    Prev(u32),
    Net {
        call: u32,
        output: u32,
    },
    /// An intermediate value: scratch `i` of the unit.
    Node(u32),
    /// An entry's input and output ports (the caller's arrays).
    Input(u32),
    Output(u32),
    /// Values the same for every element: `width` floats of the row from here.
    Row(u32),
    /// A node mask (`Process::masks` index), `[batch, n]` bytes: only in the lean and resident
    /// runners' masked variants; ahead-of-time builds are planned without masks.
    Mask(u32),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Buf {
    pub(crate) src: Src,
    pub(crate) store: Store,
    pub(crate) width: u32,
    /// One value set per sample (`true`) or one for the whole call.
    pub(crate) batch: bool,
    /// Process dimensions whose product is the elements per sample.
    pub(crate) dims: Vec<u32>,
    pub(crate) out: bool,
}

impl Buf {
    /// Its values in a call of `batch` samples with process dimension sizes `dims`
    /// (`batched`: it holds one value set per sample).
    pub(crate) fn count_in(&self, batched: bool, batch: u64, dims: &[u64]) -> usize {
        let mut n = if batched { batch } else { 1 };
        for d in &self.dims {
            n *= dims[*d as usize];
        }
        (n * self.width as u64) as usize
    }

    /// Its shape as an array in such a call: batch, its dimensions, its vector width.
    pub(crate) fn shape_in(&self, batched: bool, batch: u64, dims: &[u64]) -> Vec<usize> {
        let mut s = Vec::new();
        if batched {
            s.push(batch as usize);
        }
        s.extend(self.dims.iter().map(|d| dims[*d as usize] as usize));
        if self.width > 1 {
            s.push(self.width as usize);
        }
        s
    }
}

/// A kernel's dimension sizes (in its own order) from the process's, and its elements per
/// sample (the product over its domain).
pub(crate) fn kernel_sizes(
    p: &Process,
    kern: &crate::kernel::Kernel,
    dims: &[u64],
) -> Result<(Vec<u64>, u64), String> {
    let sizes: Vec<u64> = kern
        .dims
        .iter()
        .map(|d| {
            p.dims
                .iter()
                .position(|x| &x.name == d)
                .map(|i| dims[i])
                .ok_or_else(|| format!("internal error: no dimension `{d}`"))
        })
        .collect::<Result<_, _>>()?;
    let per = kern.domain.iter().map(|d| sizes[*d as usize]).product();
    Ok((sizes, per))
}

/// The RNG step word of a launch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Word {
    /// The sampler's step index `k`.
    Step,
    Fixed(u64),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Event {
    Launch {
        /// The unit whose kernel runs (a sampler's start runs its prior's kernels).
        unit: usize,
        kernel: usize,
        bufs: Vec<Buf>,
        /// Row offset of each coefficient slot.
        slots: Vec<u32>,
        word: Word,
        offset: u64,
    },
    Call {
        net: u32,
        call: u32,
        inputs: Vec<Buf>,
        outputs: Vec<Buf>,
        /// Per output: the dimension of a symmetric field (mirrored after the call).
        sym: Vec<Option<u32>>,
        /// The index offset when it ran (which iteration of an inner loop).
        tag: u64,
    },
    /// `to` := `from` (a host copy, a history update, an entry's result).
    Copy {
        to: Buf,
        from: Buf,
        why: CopyWhy,
        tag: u64,
    },
    /// An inner loop (`repeat`): `count` runs of `body`; run j adds j·2^40 to the index offsets
    /// of the body's launches (which hold run 0's).
    Repeat { count: u32, body: Vec<Event> },
}

/// The index offset between runs of an inner loop (`interp`'s `repeat`).
pub(crate) const REPEAT_STRIDE: u64 = 1 << 40;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum CopyWhy {
    /// A host statement of the step (a value a network call captured).
    Host,
    /// A prior's draw becomes the starting state.
    Start,
    /// The end of a step: the history the next step reads with `prev`.
    Keep,
    /// An entry's output.
    Result,
}

fn shape_dims(s: &Option<Shape>) -> Vec<u32> {
    s.as_ref()
        .map(|s| s.dims.iter().map(|d| d.0).collect())
        .unwrap_or_default()
}

fn reads(e: &Event) -> Vec<&Buf> {
    match e {
        Event::Launch { bufs, .. } => bufs.iter().filter(|b| !b.out).collect(),
        Event::Call { inputs, .. } => inputs.iter().collect(),
        Event::Copy { from, .. } => vec![from],
        Event::Repeat { body, .. } => body.iter().flat_map(reads).collect(),
    }
}

fn writes(e: &Event) -> Vec<&Buf> {
    match e {
        Event::Launch { bufs, .. } => bufs.iter().filter(|b| b.out).collect(),
        Event::Call { outputs, .. } => outputs.iter().collect(),
        Event::Copy { to, .. } => vec![to],
        Event::Repeat { body, .. } => body.iter().flat_map(writes).collect(),
    }
}

/// Every buffer an event names, read or written.
pub(crate) fn bufs_of(e: &Event) -> Vec<&Buf> {
    let mut v = reads(e);
    v.extend(writes(e));
    v
}

fn reads_mut(e: &mut Event) -> Vec<&mut Buf> {
    match e {
        Event::Launch { bufs, .. } => bufs.iter_mut().filter(|b| !b.out).collect(),
        Event::Call { inputs, .. } => inputs.iter_mut().collect(),
        Event::Copy { from, .. } => vec![from],
        Event::Repeat { body, .. } => body.iter_mut().flat_map(reads_mut).collect(),
    }
}

/// A unit's call sequences and rows.
pub(crate) struct Trace {
    /// Distinct event sequences.
    pub(crate) shapes: Vec<Vec<Event>>,
    /// Rows of host values; `None` when the caller supplies the row (continuous-time entries).
    pub(crate) rows: Option<Vec<Vec<f32>>>,
    pub(crate) width: u32,
    pub(crate) coef_off: Vec<u32>,
    coef_width: u32,
    pub(crate) scratch: usize,
    /// Entries: the times of the rows (`None`: one row, no time). Samplers: the default grid.
    pub(crate) times: Option<Vec<f64>>,
    /// Samplers: the shape of each step, of the final map and of the start.
    pub(crate) step_shape: Vec<usize>,
    pub(crate) finalize_shape: usize,
    pub(crate) start_shape: usize,
    /// Per shape: what each row value after the coefficients is.
    pub(crate) docs: Vec<BTreeMap<u32, String>>,
}

pub(crate) fn port_buf(port: &Port, src: Src, out: bool) -> Buf {
    let width = match port.elem {
        Elem::Vec(k) => k,
        Elem::Mat(k) => k * k,
        _ => 1,
    };
    let store = match port.elem {
        Elem::Cat(_) => Store::U32,
        Elem::Bool => Store::U8,
        _ => Store::F32,
    };
    let (batch, dims) = match &port.extent {
        PortExtent::Field(s) => (true, s.dims.iter().map(|d| d.0).collect()),
        PortExtent::Sample => (true, Vec::new()),
        PortExtent::Scalar => (false, Vec::new()),
    };
    Buf {
        src,
        store,
        width,
        batch,
        dims,
        out,
    }
}

// ---------------------------------------------------------------------------------------------
// Stores and widths, what sequences launch and touch

pub(crate) fn elem_store(elem: Elem) -> Store {
    match elem {
        Elem::Cat(_) => Store::U32,
        Elem::Bool => Store::U8,
        _ => Store::F32,
    }
}

pub(crate) fn elem_width(elem: Elem) -> u32 {
    match elem {
        Elem::Vec(k) => k,
        Elem::Mat(k) => k * k,
        _ => 1,
    }
}

/// The kernels an event launches, inner loops included: (unit, kernel).
pub(crate) fn launches(e: &Event) -> Vec<(usize, usize)> {
    match e {
        Event::Launch { unit, kernel, .. } => vec![(*unit, *kernel)],
        Event::Repeat { body, .. } => body.iter().flat_map(launches).collect(),
        _ => Vec::new(),
    }
}

/// The fields a sampler's calls touch, in process order.
pub(crate) fn sampler_fields(tr: &Trace) -> Vec<u32> {
    let mut set = BTreeSet::new();
    for e in tr.shapes.iter().flatten() {
        for b in bufs_of(e) {
            if let Src::Field(f) = b.src {
                set.insert(f);
            }
        }
    }
    set.into_iter().collect()
}

/// Does every load and store of a kernel read its own element (so outputs may alias inputs)?
pub(crate) fn elementwise(k: &Kernel) -> bool {
    let mut flat = None;
    let mut ok = true;
    k.walk(&mut |s| match &s.inst {
        Inst::Flat => flat = Some(s.id),
        Inst::Loop { .. } => ok = false,
        Inst::Load { index, .. } | Inst::Store { index, .. } if Some(*index) != flat => ok = false,
        _ => {}
    });
    ok
}

// ---------------------------------------------------------------------------------------------
// Per-sample times and run-time params (the `_at` entry points of the C library and the
// WGSL manifest's host module)

/// The process's params that can be given at run time (a param a schedule reads is tabulated
/// when the spec is checked), by `ParamId`.
pub(crate) fn settable_params(p: &Process) -> Vec<usize> {
    (0..p.params.len())
        .filter(|id| {
            !p.schedules
                .iter()
                .any(|s| interp::reads_param(p, s.body, *id))
        })
        .collect()
}

/// Values of a param (its default's length).
pub(crate) fn param_len(p: &Process, id: usize) -> usize {
    match &p.params[id].default {
        Some(crate::typed::Value::Vec(v)) | Some(crate::typed::Value::Mat(_, v)) => v.len(),
        _ => 1,
    }
}

pub(crate) fn param_simplex(p: &Process, id: usize) -> bool {
    matches!(&p.params[id].default, Some(crate::typed::Value::Vec(d))
        if d.iter().all(|y| *y >= 0.0) && (d.iter().sum::<f64>() - 1.0).abs() < 1e-6)
}

/// How an entry's per-sample-time variant gets the row at each time.
pub(crate) enum AtRows {
    /// From the build-time table (discrete time, the time its only scalar, no run-time params).
    Tables,
    /// From C code that computes the coefficients at run time (the text of a static function).
    Computed(String),
}

/// The time ports of an entry (scalar inputs other than the seed).
pub(crate) fn time_ports(e: &entries::Entry) -> Vec<&Port> {
    e.inputs
        .iter()
        .filter(|x| x.extent == PortExtent::Scalar && x.name != "seed")
        .collect()
}

/// Whether entry unit `u` has a `_at` variant and how it gets its rows; `Err` says why it has
/// none although it takes a time.
pub(crate) fn at_rows(p: &Process, u: &Unit, tr: &Trace) -> Result<Option<AtRows>, String> {
    let Some(e) = u.entry() else { return Ok(None) };
    let times = time_ports(e);
    if !times.iter().any(|x| x.name == p.time.name) {
        return Ok(None);
    }
    let settable = settable_params(p);
    let reads_params = u.prog.coefs.iter().any(|(c, at)| {
        settable.iter().any(|id| {
            interp::reads_param(p, *c, *id) || at.is_some_and(|a| interp::reads_param(p, a, *id))
        })
    });
    if p.time.kind == TimeKind::Discrete && times.len() == 1 && !reads_params && tr.rows.is_some() {
        return Ok(Some(AtRows::Tables));
    }
    if tr.width > tr.coef_width {
        return Err("its row holds host values that are not coefficients".into());
    }
    coefc::row_function(p, &u.prog, &format!("{}_row_at", u.prefix(p)), &tr.coef_off)
        .map(|f| Some(AtRows::Computed(f)))
}

// ---------------------------------------------------------------------------------------------
// Variants

/// Which draws a call supplies and which masks it gives.
pub fn variant(
    p: &Process,
    prog: &Program,
    draws: &HashMap<String, Tensor>,
    masks: &HashMap<String, Tensor>,
) -> Variant {
    Variant {
        supplied: prog
            .draws
            .iter()
            .enumerate()
            .filter(|(_, d)| draws.contains_key(d.input()))
            .map(|(i, _)| i as u32)
            .collect(),
        masks: mask_indices(p, masks),
    }
}

/// The variant of a call that gives node masks `masks` and supplies no draws (the plans the
/// lean and resident runners replay).
pub(crate) fn mask_variant(p: &Process, masks: &HashMap<String, Tensor>) -> Variant {
    Variant {
        masks: mask_indices(p, masks),
        ..Default::default()
    }
}

/// The `Process::masks` indices of the masks a call gives.
fn mask_indices(p: &Process, masks: &HashMap<String, Tensor>) -> BTreeSet<u32> {
    p.masks
        .iter()
        .enumerate()
        .filter(|(_, m)| masks.contains_key(&m.name))
        .map(|(i, _)| i as u32)
        .collect()
}
