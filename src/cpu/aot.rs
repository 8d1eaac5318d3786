//! Ahead-of-time libraries: every kernel of a spec in one object file, with a C header and a
//! small C runtime, for programs that link a process instead of embedding diffc.
//!
//! What a build holds, per process of the spec:
//! - one unit per entry (`forward`, `log_q`, `posterior`, `loss.NAME`, `prior`, …) and one per
//!   sampler, each planned exactly as the JIT plans it (`kernel::build`, no supplied draws, no
//!   node masks) and compiled with the same code generator into exported functions named
//!   `diffc_<process>_<unit>_k<i>_<kernel>`;
//! - the unit's call sequence, found by running the interpreter on zero samples with a recording
//!   backend in place of the JIT: every kernel launch with its buffers, coefficient slots, RNG
//!   step word and index offset, every network call, and every host copy, in the order the JIT
//!   runtime makes them (`Trace`). Nothing is computed on data, so the sequence is the one a real
//!   run makes on any batch;
//! - the host values the kernels read, evaluated by the interpreter's own host code and rounded
//!   to f32 as the JIT runtime rounds them: one row per time of a discrete-time entry and one row
//!   per step of a sampler's default grid (plus its final map and its start), stored as
//!   read-only data in the object (`diffc_<process>_<unit>_rows`). Continuous-time entries have
//!   no table: the caller passes the row, whose formulas the header lists, or calls the entry's
//!   `_at` form, which takes one time per sample (and the process's run-time params) and
//!   computes rows with C code generated from the coefficients (`coefc`);
//! - C text: the header (`Library::header`) documents every kernel and every call sequence, and
//!   declares one function per entry, a stateful runner per sampler and a one-call step for
//!   samplers whose step is a single kernel; the runtime (`Library::source`) binds buffers and
//!   replays the sequences exactly as `cpu::Runner` does.
//!
//! The library does no IO: the CLI writes the files and runs the C compiler.

use super::{codegen, isa, plan_size, LARGE_PLAN};
use crate::entries::{self, EntryKind, Extent as PortExtent, Port};
use crate::explain::show;
use crate::interp::{
    self, Accel, Call, Ctx, Data, Denoiser, NetCall, SampleCall, Shared, Tensor, Val,
};
use crate::ir::{Extent, Node, NodeId, Op, Program, SamplerProgram};
use crate::kernel::build::{self, op_key, Plan};
use crate::kernel::{BufSrc, Inst, Kernel, Store, Target};
use crate::typed::{Elem, Module, Process, Shape, TimeKind};
use cranelift_module::{DataDescription, Linkage, Module as _};
use cranelift_object::{ObjectBuilder, ObjectModule};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

/// A built library: the object file's bytes and the C text that goes with it.
pub struct Library {
    /// The file stem: `ddpm` gives `ddpm.o`, `ddpm.h`, `ddpm_runtime.c` and `libddpm.so`.
    pub stem: String,
    pub object: Vec<u8>,
    pub header: String,
    /// The C runtime (entry functions, sampler runners, one-call steps), which includes the header.
    pub source: String,
    /// Kernels compiled, and the units (`process.entry` or `process.sampler`) built.
    pub kernels: usize,
    pub units: Vec<String>,
    /// Bytes of coefficient tables in the object.
    pub table_bytes: usize,
}

impl Library {
    pub fn object_name(&self) -> String {
        format!("{}.o", self.stem)
    }
    pub fn header_name(&self) -> String {
        format!("{}.h", self.stem)
    }
    pub fn source_name(&self) -> String {
        format!("{}_runtime.c", self.stem)
    }
    pub fn library_name(&self) -> String {
        format!("lib{}.so", self.stem)
    }
}

/// Build every process of a checked spec (or only `process`) into a library named after `stem`.
pub fn build(module: &Module, stem: &str, process: Option<&str>) -> Result<Library, String> {
    let built = traced(module, process)?;
    check_limits(&built)?;
    let (object, table_bytes) = compile_object(stem, &built)?;
    let header = header_text(stem, &built);
    let source = runtime_text(stem, &built);
    check_unique_names(&built)?;
    Ok(Library {
        stem: stem.to_string(),
        object,
        header,
        source,
        kernels: built
            .iter()
            .map(|(_, us, _)| us.iter().map(|u| u.plan.kernels.len()).sum::<usize>())
            .sum(),
        units: built
            .iter()
            .flat_map(|(p, us, _)| us.iter().map(move |u| format!("{}.{}", p.name, u.name)))
            .collect(),
        table_bytes,
    })
}

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

/// The launch plans of a checked spec's entries and samplers (or of `only`: an entry's or a
/// sampler's name), as `diffc explain --plan` prints them: per unit, its ports or grid, its
/// host coefficients and rows, each call sequence (kernel launches with their buffers, network
/// calls, host copies, repeated blocks) and each kernel's loop domain. Each unit's sequences are
/// validated first (`validate`).
pub fn plan_text(
    module: &Module,
    process: Option<&str>,
    only: Option<&str>,
) -> Result<String, String> {
    let built = traced(module, process)?;
    let mut out = String::new();
    let mut found = false;
    for (p, units, traces) in &built {
        for (u, tr) in units.iter().zip(traces) {
            if only.is_some_and(|n| n != u.name) {
                continue;
            }
            found = true;
            validate(p, u, tr)?;
            let _ = writeln!(out, "== `{}` of `{}` ==\n", u.name, p.name);
            out.push_str(&unit_doc(p, units, u, tr));
            let _ = writeln!(out, "\nKernels:");
            for (i, k) in u.plan.kernels.iter().enumerate() {
                let dom: Vec<&str> = k
                    .domain
                    .iter()
                    .map(|d| k.dims[*d as usize].as_str())
                    .collect();
                let _ = writeln!(
                    out,
                    "  {}: over batch{}{}",
                    u.symbol(p, i),
                    if dom.is_empty() { "" } else { "·" },
                    dom.join("·")
                );
            }
            out.push('\n');
        }
    }
    if !found {
        let names: Vec<String> = built
            .iter()
            .flat_map(|(_, us, _)| us.iter().map(|u| u.name.clone()))
            .collect();
        return Err(format!(
            "no entry or sampler `{}` (there are: {})",
            only.unwrap_or(""),
            names.join(", ")
        ));
    }
    Ok(out)
}

/// Check a unit's call sequences: within each sequence every scratch value, network output and
/// output port is written before it is read (a sampler's slots may also come from its start),
/// and every buffer has one store, width and extent wherever it appears.
pub(crate) fn validate(p: &Process, u: &Unit, tr: &Trace) -> Result<(), String> {
    let mut start_writes = HashSet::new();
    if u.sampler().is_some() {
        let mut seen = HashMap::new();
        check_order(&tr.shapes[tr.start_shape], &mut start_writes, &mut seen, "")
            .map_err(|e| format!("the plan of `{}` of `{}`, start: {e}", u.name, p.name))?;
    }
    for (i, shape) in tr.shapes.iter().enumerate() {
        let mut written: HashSet<Src> = start_writes
            .iter()
            .filter(|s| matches!(s, Src::Slot(_)))
            .cloned()
            .collect();
        let mut seen = HashMap::new();
        check_order(shape, &mut written, &mut seen, "").map_err(|e| {
            format!(
                "the plan of `{}` of `{}`, sequence {i}: {e}",
                u.name, p.name
            )
        })?;
    }
    Ok(())
}

/// Walk one call sequence in order (for `validate`): `written` holds what earlier
/// events wrote, `seen` each buffer as first named; `at` numbers the events as the plan prints.
fn check_order<'e>(
    events: &'e [Event],
    written: &mut HashSet<Src>,
    seen: &mut HashMap<Src, &'e Buf>,
    at: &str,
) -> Result<(), String> {
    for (i, e) in events.iter().enumerate() {
        let here = format!("{at}{}.", i + 1);
        if let Event::Repeat { body, .. } = e {
            // Its first round reads only what came before or what the round wrote first.
            check_order(body, written, seen, &here)?;
            continue;
        }
        for b in bufs_of(e) {
            if let Some(first) = seen.get(&b.src) {
                if (first.store, first.width, first.batch, &first.dims)
                    != (b.store, b.width, b.batch, &b.dims)
                {
                    return Err(format!(
                        "event {here}: buffer {:?} is {:?}×{} over {:?} here, {:?}×{} over {:?} before",
                        b.src, b.store, b.width, b.dims, first.store, first.width, first.dims
                    ));
                }
            } else {
                seen.insert(b.src.clone(), b);
            }
        }
        for b in reads(e) {
            let given = matches!(
                b.src,
                Src::Field(_) | Src::Prev(_) | Src::Input(_) | Src::Row(_) | Src::Mask(_)
            );
            if !given && !written.contains(&b.src) {
                return Err(format!(
                    "event {here}: {:?} is read before anything writes it",
                    b.src
                ));
            }
        }
        for b in writes(e) {
            written.insert(b.src.clone());
        }
    }
    Ok(())
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
    fn entry(&self) -> Option<&entries::Entry> {
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

fn ident(s: &str) -> String {
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
/// `v`, which only the lean runner gives).
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
    /// A node mask (`Process::masks` index), `[batch, n]` bytes: only in the lean runner's
    /// masked variants; ahead-of-time builds are planned without masks.
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

/// What runs a call sequence: each backend's runner implements the three events, and `run`
/// walks a sequence, running an inner loop's body once per run at its index offset.
pub(crate) trait Runs {
    /// Added to every launch's index offset (the run of an inner loop).
    fn offset(&mut self) -> &mut u64;
    fn launch(
        &mut self,
        kernel: usize,
        bufs: &[Buf],
        slots: &[u32],
        word: Word,
        offset: u64,
    ) -> Result<(), String>;
    fn call(
        &mut self,
        net: usize,
        inputs: &[Buf],
        outputs: &[Buf],
        sym: &[Option<u32>],
    ) -> Result<(), String>;
    fn copy(&mut self, to: &Buf, from: &Buf, why: CopyWhy) -> Result<(), String>;

    fn run(&mut self, events: &[Event]) -> Result<(), String> {
        for e in events {
            match e {
                Event::Launch {
                    unit,
                    kernel,
                    bufs,
                    slots,
                    word,
                    offset,
                } => {
                    if *unit != 0 {
                        return Err("internal error: a call launched another unit's kernel".into());
                    }
                    self.launch(*kernel, bufs, slots, *word, *offset)?
                }
                Event::Call {
                    net,
                    inputs,
                    outputs,
                    sym,
                    ..
                } => self.call(*net as usize, inputs, outputs, sym)?,
                Event::Copy { to, from, why, .. } => self.copy(to, from, *why)?,
                Event::Repeat { count, body } => {
                    let saved = *self.offset();
                    for j in 0..*count as u64 {
                        *self.offset() = saved + j * REPEAT_STRIDE;
                        self.run(body)?;
                    }
                    *self.offset() = saved;
                }
            }
        }
        Ok(())
    }
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

fn shape_dims(s: &Option<Shape>) -> Vec<u32> {
    s.as_ref()
        .map(|s| s.dims.iter().map(|d| d.0).collect())
        .unwrap_or_default()
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
fn bufs_of(e: &Event) -> Vec<&Buf> {
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

/// One step of a sampler (or its final map) as `call` asks for it (`single_step` or
/// `finalize_only`, with its grid, params and seed): the call sequence, ending with the copies
/// that keep its history, and the row of host values it reads. Found as `trace_unit` finds a
/// whole run's, on zero samples.
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
/// sizes; zero samples), as the lean runner replays it (`cpu::lean`).
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

fn port_buf(port: &Port, src: Src, out: bool) -> Buf {
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
// The object file

pub(crate) type Built<'a> = (&'a Process, Vec<Unit>, Vec<Trace>);

fn compile_object(stem: &str, built: &[Built]) -> Result<(Vec<u8>, usize), String> {
    let large = built
        .iter()
        .flat_map(|(_, us, _)| us.iter())
        .any(|u| plan_size(&u.plan) > LARGE_PLAN);
    let builder = ObjectBuilder::new(
        isa(true, large)?,
        stem.as_bytes().to_vec(),
        cranelift_module::default_libcall_names(),
    )
    .map_err(|e| e.to_string())?;
    let mut module = ObjectModule::new(builder);
    let libm = codegen::declare_libm(&mut module)?;
    // Ahead of time, compile time matters less than a verified object.
    // Objects keep the Cranelift fills, so that they run on any x86-64.
    let checks = codegen::Checks {
        ir_text: false,
        verify: true,
        native: false,
    };
    let rng = codegen::define_rng(&mut module, codegen::RngNeeds::all(), checks)?;
    let libm4 = codegen::define_libm4(&mut module, &libm, checks)?;
    let mut bytes = 0;
    let mut fns = Vec::new();
    for (p, units, traces) in built {
        for (u, tr) in units.iter().zip(traces) {
            for (i, k) in u.plan.kernels.iter().enumerate() {
                let sym = u.symbol(p, i);
                fns.push(codegen::build(&mut module, k, &libm, &libm4, rng, &sym, checks)?.0);
            }
            let Some(rows) = &tr.rows else { continue };
            if tr.width == 0 {
                continue;
            }
            let data: Vec<u8> = rows
                .iter()
                .flat_map(|r| r.iter().flat_map(|x| x.to_le_bytes()))
                .collect();
            bytes += data.len();
            let name = format!("{}_rows", u.prefix(p));
            let id = module
                .declare_data(&name, Linkage::Export, false, false)
                .map_err(|e| e.to_string())?;
            let mut desc = DataDescription::new();
            desc.define(data.into_boxed_slice());
            desc.set_align(16);
            module
                .define_data(id, &desc)
                .map_err(|e| format!("`{name}`: {e}"))?;
        }
    }
    codegen::compile_fns(&mut module, fns)?;
    let product = module.finish();
    let object = product
        .emit()
        .map_err(|e| format!("cannot write the object file: {e}"))?;
    Ok((object, bytes))
}

// ---------------------------------------------------------------------------------------------
// C text

fn c_type(store: Store) -> &'static str {
    match store {
        Store::F32 => "float",
        Store::U32 => "uint32_t",
        Store::U8 => "uint8_t",
    }
}

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

/// `batch·n·d·K`
pub(crate) fn len_text(p: &Process, b: &Buf) -> String {
    let mut parts: Vec<String> = Vec::new();
    if b.batch {
        parts.push("batch".into());
    }
    parts.extend(b.dims.iter().map(|d| p.dims[*d as usize].name.clone()));
    if b.width > 1 {
        parts.push(b.width.to_string());
    }
    if parts.is_empty() {
        "1".into()
    } else {
        parts.join("·")
    }
}

fn slot_name(sp: Option<&SamplerProgram>, s: u32) -> String {
    if let Some(sp) = sp {
        if let Some(i) = sp.history.iter().position(|h| *h == s) {
            return format!("slot {s} (`{}`)", sp.history_names[i]);
        }
    }
    format!("slot {s}")
}

pub(crate) fn src_text(p: &Process, u: &Unit, b: &Buf) -> String {
    match &b.src {
        Src::Field(f) => format!("field `{}`", p.fields[*f as usize].name),
        Src::Slot(s) => slot_name(u.sampler(), *s),
        Src::Prev(s) => format!("previous step's {}", slot_name(u.sampler(), *s)),
        Src::Net { call, output } => {
            // The network of a call, from the sampler's ops.
            let net = u
                .sampler()
                .and_then(|sp| net_of_call(sp, *call))
                .map(|n| &p.networks[n as usize]);
            match net {
                Some(n) => format!(
                    "`{}.{}` (output {output} of network call {call})",
                    n.name,
                    p.field(n.outputs[*output as usize].field).name
                ),
                None => format!("output {output} of network call {call}"),
            }
        }
        Src::Node(i) => format!("scratch {i}"),
        Src::Mask(m) => format!("node mask `{}`", p.masks[*m as usize].name),
        Src::Input(i) => format!("input `{}`", u.prog.inputs[*i as usize].name),
        Src::Output(i) => format!("output `{}`", u.prog.outputs[*i as usize].name),
        Src::Row(at) => {
            let (off, _) = coef_layout(p, &u.prog);
            let coef = off
                .iter()
                .position(|o| o == at)
                .map(|c| format!(" (c{c})"))
                .unwrap_or_default();
            if b.width > 1 {
                format!("row[{at} … {}]{coef}", at + b.width - 1)
            } else {
                format!("row[{at}]{coef}")
            }
        }
    }
}

fn net_of_call(sp: &SamplerProgram, call: u32) -> Option<u32> {
    fn go(ops: &[Op], call: u32) -> Option<u32> {
        for op in ops {
            match op {
                Op::Call { call: c, net, .. } if *c == call => return Some(*net),
                Op::If {
                    then, otherwise, ..
                } => {
                    if let Some(n) = go(then, call).or_else(|| go(otherwise, call)) {
                        return Some(n);
                    }
                }
                Op::Repeat { body, .. } => {
                    if let Some(n) = go(body, call) {
                        return Some(n);
                    }
                }
                _ => {}
            }
        }
        None
    }
    go(&sp.init, call)
        .or_else(|| go(&sp.step, call))
        .or_else(|| go(&sp.finalize, call))
}

/// Wrap text into `//`-free C comment lines with a prefix.
fn comment(out: &mut String, indent: &str, text: &str) {
    for line in text.lines() {
        let line = line.replace("*/", "* /");
        if line.is_empty() {
            let _ = writeln!(out, "{indent} *");
        } else {
            let _ = writeln!(out, "{indent} * {line}");
        }
    }
}

fn guard(stem: &str) -> String {
    format!("DIFFC_{}_H", ident(stem).to_uppercase())
}

/// The kernels an event launches, inner loops included: (unit, kernel).
fn launches(e: &Event) -> Vec<(usize, usize)> {
    match e {
        Event::Launch { unit, kernel, .. } => vec![(*unit, *kernel)],
        Event::Repeat { body, .. } => body.iter().flat_map(launches).collect(),
        _ => Vec::new(),
    }
}

/// The dims a unit's calls use, in process order.
fn unit_dims(p: &Process, u: &Unit, tr: &Trace, units: &[Unit]) -> Vec<u32> {
    let mut set = BTreeSet::new();
    for e in tr.shapes.iter().flatten() {
        for (unit, kernel) in launches(e) {
            for d in &units[unit].plan.kernels[kernel].dims {
                if let Some(i) = p.dims.iter().position(|x| &x.name == d) {
                    set.insert(i as u32);
                }
            }
        }
        for b in bufs_of(e) {
            set.extend(b.dims.iter().copied());
        }
    }
    if let Some(e) = u.entry() {
        for port in e.inputs.iter().chain(&e.outputs) {
            if let PortExtent::Field(s) = &port.extent {
                set.extend(s.dims.iter().map(|d| d.0));
            }
        }
    }
    set.into_iter().collect()
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

/// Entry ports the caller passes as arrays (fields and per-sample values), inputs then outputs.
type Ports<'e> = Vec<(usize, &'e Port)>;

fn array_ports(e: &entries::Entry) -> (Ports<'_>, Ports<'_>) {
    let ins = e
        .inputs
        .iter()
        .enumerate()
        .filter(|(_, x)| x.extent != PortExtent::Scalar)
        .collect();
    let outs = e.outputs.iter().enumerate().collect();
    (ins, outs)
}

fn port_c_type(port: &Port) -> &'static str {
    if port.extent == PortExtent::Scalar {
        "float"
    } else {
        c_type(elem_store(port.elem))
    }
}

fn port_len_text(p: &Process, port: &Port) -> String {
    len_text(p, &port_buf(port, Src::Output(0), false))
}

/// A one-call step: every step of the default grid runs network calls that read fields or
/// host values, then one kernel that reads fields, those outputs and host values, and writes
/// fields; no history and no scratch.
fn one_call_step(u: &Unit, tr: &Trace) -> Option<usize> {
    let sp = u.sampler()?;
    if !sp.history.is_empty() || tr.step_shape.is_empty() {
        return None;
    }
    let s0 = tr.step_shape[0];
    if tr.step_shape.iter().any(|s| *s != s0) {
        return None;
    }
    let events = &tr.shapes[s0];
    let (last, calls) = events.split_last()?;
    for c in calls {
        let Event::Call { inputs, .. } = c else {
            return None;
        };
        if inputs
            .iter()
            .any(|b| !matches!(b.src, Src::Field(_) | Src::Row(_)))
        {
            return None;
        }
    }
    let Event::Launch { bufs, word, .. } = last else {
        return None;
    };
    if *word != Word::Step {
        return None;
    }
    let ok = bufs.iter().all(|b| match b.src {
        Src::Field(_) => true,
        Src::Net { .. } | Src::Row(_) => !b.out,
        _ => false,
    });
    ok.then_some(s0)
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

const HEADER_INTRO: &str = r#"
Conventions (every function below):
- Arrays are batch-major and dense: a field of shape [n, d] is `batch·n·d` values, sample after
  sample; a `vec<K>` value (class probabilities) adds K interleaved values per element. Reals are
  `float`, classes `uint32_t` (0 … K−1), bools `uint8_t` (0 or 1).
- `seed` keys the random numbers. Draws come from Philox-4x32-10 keyed by (seed, draw site) and
  counted by (step word, element index), so a sample's noise does not depend on the batch size,
  the thread split or the machine. With the same seed, a step or entry here draws exactly what
  `diffc eval … --seed SEED` draws (`--set k=K` for step k of a sampler).
- Every function returns 0, or status bits: DIFFC_STATUS_INDEX (an index outside its vector),
  DIFFC_STATUS_CLASS (a class outside its range), DIFFC_STATUS_NONFINITE (a value stored to a
  sampler's real field is NaN or infinite), DIFFC_ERR_ARG (a time or step outside the table, a
  NULL array, no denoiser), DIFFC_ERR_NOMEM, DIFFC_ERR_STATE (a call read a value no earlier
  call wrote: call `start` before the first step), DIFFC_ERR_DENOISE (the denoiser returned
  non-zero), DIFFC_ERR_SYM (an entry's input value of a `sym` field is not symmetric, or holds
  a value other than 0 on its diagonal, in some sample: nothing is computed, as `diffc eval`
  refuses it). A call stops at the first kernel or callback that fails. An entry's outputs are
  not checked for NaN (`diffc eval` checks them).
- Entry points and sampler steps run each kernel on the calling thread. To use threads, call the
  kernels yourself (below): any split of the range start..end at multiples of 4 gives the same
  values.
- Node masks and supplied draws are not built ahead of time: every node is real, and every draw
  comes from the generator.

Kernel ABI (the `_k<i>_` functions):
  void kernel(void *const *bufs, const float *coefs, const uint64_t *sizes,
              uint64_t start, uint64_t end, uint64_t seed, uint64_t step,
              uint64_t offset, uint32_t *status);
computes flat elements start … end−1 of batch·(product of its domain's sizes). `bufs[j]` is
buffer j as listed with the kernel; `coefs[i]` coefficient slot i (the call sequences say which
row value each slot takes); `sizes[i]` the size of the kernel's dimension i; `step` the RNG step
word; `offset` an index offset (iterations of an inner `repeat` draw at offsets (j + 1)·2^40);
`status` is OR-ed with DIFFC_STATUS_* bits. Output buffers must not alias input buffers unless
the kernel is marked elementwise.

Rows: the host values a call reads (coefficients in f64 rounded to f32, times passed to networks,
values a sampler computes once per step) are one row of floats per time or step, evaluated by
diffc's own host code at build time. A row starts with the unit's coefficients c0, c1, … (each
flattened, K×K matrices row-major) at the offsets listed; the values after them are listed with
the call sequence that reads them.
"#;

fn header_text(stem: &str, built: &[Built]) -> String {
    let mut h = String::new();
    let g = guard(stem);
    let _ = writeln!(
        h,
        "/* {stem}.h: the processes of `{stem}.diff`, compiled ahead of time by diffc."
    );
    let _ = writeln!(
        h,
        " * Link with lib{stem}.so (it needs libm). Generated: do not edit. */"
    );
    let _ = writeln!(h, "#ifndef {g}\n#define {g}\n");
    let _ = writeln!(h, "#include <stdint.h>\n");
    let _ = writeln!(h, "#ifdef __cplusplus\nextern \"C\" {{\n#endif\n");
    h.push_str("/*");
    comment(&mut h, "", HEADER_INTRO);
    h.push_str(" */\n\n");
    h.push_str(
        "#ifndef DIFFC_COMMON_DEFINED\n#define DIFFC_COMMON_DEFINED\n\
         #define DIFFC_STATUS_INDEX 0x1\n#define DIFFC_STATUS_CLASS 0x2\n#define DIFFC_STATUS_NONFINITE 0x4\n\
         #define DIFFC_ERR_ARG 0x100\n#define DIFFC_ERR_NOMEM 0x200\n\
         #define DIFFC_ERR_STATE 0x400\n#define DIFFC_ERR_DENOISE 0x800\n#define DIFFC_ERR_SYM 0x1000\n\n\
         /* A sampler's networks. `net` is the network's index in its process (listed below) and\n \
         * `call` the call's index within the step; `dims` are the process's dimension sizes in\n \
         * its order. `inputs[i]` points at network input i: a field's values (batch-major, as\n \
         * above) or, for a time input, one float. Write output j to `outputs[j]` (batch-major,\n \
         * shaped like its field, K values per element for class probabilities); the runtime\n \
         * owns those arrays. Return 0, or non-zero to stop the step with DIFFC_ERR_DENOISE. */\n\
         typedef int (*diffc_denoise_fn)(void *user, uint32_t net, uint32_t call, uint64_t batch,\n\
         \x20                               const uint64_t *dims, const void *const *inputs,\n\
         \x20                               void *const *outputs);\n\
         #endif\n\n",
    );
    for (p, units, traces) in built {
        process_header(&mut h, p, units, traces);
    }
    let _ = writeln!(h, "#ifdef __cplusplus\n}}\n#endif\n\n#endif /* {g} */");
    h
}

fn process_header(h: &mut String, p: &Process, units: &[Unit], traces: &[Trace]) {
    let pn = &p.name;
    let _ = writeln!(
        h,
        "/* ==========================================================================================\n \
         * Process `{pn}`"
    );
    let mut text = String::new();
    let dims: Vec<String> = p
        .dims
        .iter()
        .enumerate()
        .map(|(i, d)| format!("{} (dims[{i}])", d.name))
        .collect();
    let _ = writeln!(
        text,
        "Dimensions: {}.",
        if dims.is_empty() {
            "none".into()
        } else {
            dims.join(", ")
        }
    );
    let _ = writeln!(text, "Fields (fields[i] in a sampler):");
    for (i, f) in p.fields.iter().enumerate() {
        let b = Buf {
            src: Src::Field(i as u32),
            store: elem_store(f.elem),
            width: elem_width(f.elem),
            batch: true,
            dims: f.shape.dims.iter().map(|d| d.0).collect(),
            out: false,
        };
        let _ = writeln!(
            text,
            "  {i}: {}: {} — {} {}{}",
            f.name,
            f.elem.describe(),
            c_type(b.store),
            len_text(p, &b),
            if f.shape.sym {
                " (symmetric: the lower triangle mirrors the upper one, the diagonal is 0)"
            } else {
                ""
            }
        );
    }
    let time = &p.time;
    let _ = writeln!(
        text,
        "Time `{}`: {} {} … {} (data at {}).",
        time.name,
        if time.kind == TimeKind::Discrete {
            "discrete,"
        } else {
            "continuous,"
        },
        time.lo,
        time.hi,
        time.data_at
    );
    // What the coefficients' formulas refer to.
    if !p.consts.is_empty() {
        let cs: Vec<String> = p
            .consts
            .iter()
            .map(|c| format!("{} = {}", c.name, c.value))
            .collect();
        let _ = writeln!(text, "Constants: {}.", cs.join(", "));
    }
    if !p.schedules.is_empty() {
        let _ = writeln!(
            text,
            "Schedules (in f64; discrete ones tabulated at build time):"
        );
        for sc in &p.schedules {
            let _ = writeln!(text, "  {}({}) = {}", sc.name, time.name, show(p, sc.body));
        }
    }
    if !p.networks.is_empty() {
        let _ = writeln!(text, "Networks (the `net` argument of a denoiser):");
        for (i, n) in p.networks.iter().enumerate() {
            let ins: Vec<String> = n
                .inputs
                .iter()
                .map(|x| match x {
                    crate::typed::NetInput::Field { expr, .. } => show(p, *expr),
                    crate::typed::NetInput::Time { expr } => format!("time {}", show(p, *expr)),
                })
                .collect();
            let outs: Vec<String> = n
                .outputs
                .iter()
                .map(|o| format!("{}.{} ({})", n.name, p.field(o.field).name, o.kind.name()))
                .collect();
            let _ = writeln!(
                text,
                "  {i}: {}({}) -> {}",
                n.name,
                ins.join(", "),
                outs.join(", ")
            );
        }
    }
    comment(h, "", &text);
    let _ = writeln!(h, " */\n");
    let _ = writeln!(
        h,
        "#define DIFFC_{}_T_MIN {}\n#define DIFFC_{}_T_MAX {}\n",
        pn.to_uppercase(),
        time.lo,
        pn.to_uppercase(),
        time.hi
    );
    params_header(h, p);
    for (u, tr) in units.iter().zip(traces) {
        unit_header(h, p, units, u, tr);
    }
}

/// `d` or `n, d` (the process's dimensions, in order).
fn dim_names(p: &Process) -> String {
    p.dims
        .iter()
        .map(|d| d.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn dims_params(p: &Process, dims: &[u32]) -> String {
    dims.iter()
        .map(|d| format!("uint64_t {}", p.dims[*d as usize].name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The row values after the coefficients that a sequence reads.
fn docs_text(docs: &BTreeMap<u32, String>) -> String {
    docs.iter()
        .map(|(at, d)| format!("   row[{at}]: {d}\n"))
        .collect()
}

fn events_text(p: &Process, units: &[Unit], u: &Unit, events: &[Event]) -> String {
    let mut t = String::new();
    events_into(&mut t, p, units, u, events, "", "");
    if events.is_empty() {
        t.push_str("(nothing)\n");
    }
    t
}

/// One numbered line (and its continuation lines) per event; inner loops nest.
fn events_into(
    t: &mut String,
    p: &Process,
    units: &[Unit],
    u: &Unit,
    events: &[Event],
    pad: &str,
    num: &str,
) {
    for (i, e) in events.iter().enumerate() {
        let n = format!("{num}{}.", i + 1);
        let more = format!("{pad}{}", " ".repeat(n.chars().count() + 2));
        match e {
            Event::Launch {
                unit,
                kernel,
                bufs,
                slots,
                word,
                offset,
            } => {
                let ku = &units[*unit];
                let k = &ku.plan.kernels[*kernel];
                let _ = writeln!(t, "{pad}{n} {}(", ku.symbol(p, *kernel));
                for (j, b) in bufs.iter().enumerate() {
                    let _ = writeln!(
                        t,
                        "{more}b{j} {} {}",
                        if b.out { "→" } else { "←" },
                        src_text(p, u, b)
                    );
                }
                if !slots.is_empty() {
                    let _ = writeln!(t, "{more}coefs = {{{}}}", row_runs(slots));
                }
                let sizes: Vec<&str> = k.dims.iter().map(|d| d.as_str()).collect();
                let dom: Vec<&str> = k
                    .domain
                    .iter()
                    .map(|d| k.dims[*d as usize].as_str())
                    .collect();
                let off = match offset / REPEAT_STRIDE {
                    _ if num.is_empty() || offset % REPEAT_STRIDE != 0 => offset.to_string(),
                    1 => "(j + 1)·2^40".to_string(),
                    m => format!("({m} + j)·2^40"),
                };
                let _ = writeln!(
                    t,
                    "{more}sizes = {{{}}}, range 0 … batch{}{}, step word {}, offset {off})",
                    sizes.join(", "),
                    if dom.is_empty() { "" } else { "·" },
                    dom.join("·"),
                    match word {
                        Word::Step => "k".to_string(),
                        Word::Fixed(w) => format!("{w}"),
                    }
                );
            }
            Event::Call {
                net,
                call,
                inputs,
                outputs,
                sym,
                ..
            } => {
                let nw = &p.networks[*net as usize];
                let ins: Vec<String> = inputs
                    .iter()
                    .zip(&nw.inputs)
                    .map(|(b, ni)| match ni {
                        crate::typed::NetInput::Time { expr } => {
                            format!("{} = {}", show(p, *expr), src_text(p, u, b))
                        }
                        crate::typed::NetInput::Field { .. } => src_text(p, u, b),
                    })
                    .collect();
                let outs: Vec<String> = outputs
                    .iter()
                    .zip(sym)
                    .map(|(b, s)| {
                        format!(
                            "{} [{}]{}",
                            src_text(p, u, b),
                            len_text(p, b),
                            if s.is_some() {
                                " (then mirrored: read on the upper triangle)"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect();
                let _ = writeln!(
                    t,
                    "{pad}{n} denoiser: network {net} `{}`, call {call}, inputs ({})\n{more}→ {}",
                    nw.name,
                    ins.join(", "),
                    outs.join(", ")
                );
            }
            Event::Copy { to, from, why, .. } => {
                let _ = writeln!(
                    t,
                    "{pad}{n} host: {} := {} ({} {}){}",
                    src_text(p, u, to),
                    src_text(p, u, from),
                    len_text(p, to),
                    c_type(to.store),
                    match why {
                        CopyWhy::Host => ", a copy the step's network call captured",
                        CopyWhy::Start => ", the prior's draw is the starting value",
                        CopyWhy::Keep => ", kept for the next step's `prev`",
                        CopyWhy::Result => "",
                    }
                );
            }
            Event::Repeat { count, body } => {
                let _ = writeln!(
                    t,
                    "{pad}{n} repeat {count} times, for j = 0 … {}:",
                    count - 1
                );
                events_into(t, p, units, u, body, &format!("{pad}   "), &n);
            }
        }
    }
}

fn kernel_doc(p: &Process, u: &Unit, i: usize) -> String {
    let k = &u.plan.kernels[i];
    let mut t = String::new();
    let dom: Vec<&str> = k
        .domain
        .iter()
        .map(|d| k.dims[*d as usize].as_str())
        .collect();
    let _ = writeln!(
        t,
        "Kernel {i} `{}` of `{}.{}`: one element per batch{}{}{}.",
        k.name,
        p.name,
        u.name,
        if dom.is_empty() { "" } else { "·" },
        dom.join("·"),
        if elementwise(k) {
            " (elementwise: outputs may alias inputs)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        t,
        "sizes: {{{}}}; the call sequences above say what each buffer is bound to.",
        k.dims.join(", ")
    );
    for (j, b) in k.bufs.iter().enumerate() {
        let what = match kernel_buf_doc(p, u, k, j) {
            Some((false, len, src)) => format!("in  {}[{len}] {src}", c_type(b.store)),
            Some((true, len, what)) => format!("out {}[{len}] {what}", c_type(b.store)),
            None => "unused".into(),
        };
        let _ = writeln!(t, "b{j}: {what}");
    }
    // Runs of slots that read consecutive components of one coefficient, on one line each.
    let mut j = 0;
    while j < k.coefs.len() {
        let (c, q) = k.coefs[j];
        let mut e = j;
        while e + 1 < k.coefs.len() && k.coefs[e + 1] == (c, q + (e + 1 - j) as u32) {
            e += 1;
        }
        let w = coef_width(p, &u.prog, c as usize);
        let _ = if e == j {
            writeln!(
                t,
                "coefs[{j}] = c{c}{}",
                if w > 1 {
                    format!("[{q}]")
                } else {
                    String::new()
                }
            )
        } else {
            writeln!(t, "coefs[{j} … {e}] = c{c}[{q} … {}]", q + (e - j) as u32)
        };
        j = e + 1;
    }
    if !k.sites.is_empty() {
        let names: Vec<String> = k
            .sites
            .iter()
            .map(|s| format!("site {s} (`{}`)", u.prog.draws[*s as usize].name))
            .collect();
        let _ = writeln!(t, "draws: {}", names.join(", "));
    }
    t
}

/// Buffer `j` of kernel `k` of a unit: whether the kernel writes it, its length (`batch·d·K`),
/// and what it holds (empty for a field, slot or network output read: the call sequences say
/// which). `None` for a supplied draw or a node mask.
pub(crate) fn kernel_buf_doc(
    p: &Process,
    u: &Unit,
    k: &Kernel,
    j: usize,
) -> Option<(bool, String, String)> {
    let b = &k.bufs[j];
    match &b.src {
        BufSrc::Node(id) => {
            let info = u.prog.node(*id);
            let len = match info.extent {
                Extent::Uniform => "1".to_string(),
                Extent::Sample => "batch".to_string(),
                Extent::Element => {
                    let mut s = vec!["batch".to_string()];
                    s.extend(
                        shape_dims(&info.shape)
                            .iter()
                            .map(|d| p.dims[*d as usize].name.clone()),
                    );
                    s.join("·")
                }
            };
            let src = match info.node {
                Node::Input(x) => format!("input `{}`", u.prog.inputs[x as usize].name),
                Node::Coef(c) => format!("coefficient c{c}"),
                _ if info.extent == Extent::Uniform => "a host value".to_string(),
                Node::State(_) | Node::Slot(_) | Node::Prev(_) | Node::NetOut { .. } => {
                    String::new()
                }
                _ => "an intermediate value (another kernel's output)".to_string(),
            };
            let width = if b.width > 1 {
                format!("·{}", b.width)
            } else {
                String::new()
            };
            Some((false, format!("{len}{width}"), src))
        }
        BufSrc::Out(tg) => {
            let what = match tg {
                Target::Node(id) => match u.prog.results.iter().position(|r| r == id) {
                    Some(o) if u.entry().is_some() => {
                        format!("output `{}`", u.prog.outputs[o].name)
                    }
                    _ => "an intermediate value".to_string(),
                },
                Target::Slot(s) => slot_name(u.sampler(), *s),
                Target::Field(f) => {
                    format!("the new value of field `{}`", p.fields[*f as usize].name)
                }
            };
            let mut s = vec!["batch".to_string()];
            s.extend(k.domain.iter().map(|d| k.dims[*d as usize].clone()));
            if b.width > 1 {
                s.push(b.width.to_string());
            }
            Some((true, s.join("·"), what))
        }
        BufSrc::Draw(_) | BufSrc::Mask(_) => None,
    }
}

/// What a unit runs, as prose: its ports or grid, its coefficients and rows, and its call
/// sequences (the header's comment above the unit's declarations, and `diffc explain --plan`).
fn unit_doc(p: &Process, units: &[Unit], u: &Unit, tr: &Trace) -> String {
    let pre = u.prefix(p);
    let mut t = String::new();
    match &u.kind {
        UnitKind::Entry(e) => {
            let _ = writeln!(t, "Entry `{}` of `{}`.", u.name, p.name);
            let ins: Vec<String> = e
                .inputs
                .iter()
                .map(|x| match x.extent {
                    _ if x.name == "seed" => "the seed".to_string(),
                    PortExtent::Scalar => format!("the time `{}`", x.name),
                    _ => format!("{}: {} [{}]", x.name, port_c_type(x), port_len_text(p, x)),
                })
                .collect();
            let outs: Vec<String> = e
                .outputs
                .iter()
                .map(|x| format!("{}: {} [{}]", x.name, port_c_type(x), port_len_text(p, x)))
                .collect();
            let _ = writeln!(t, "Inputs: {}.", ins.join(", "));
            let _ = writeln!(t, "Outputs: {}.", outs.join(", "));
        }
        UnitKind::Sampler(_) => {
            let grid = tr.times.as_ref().map(|g| g.len() - 1).unwrap_or(0);
            let _ = writeln!(
                t,
                "Sampler `{}` of `{}`: {grid} steps on its default grid {pre}_grid (noise end first);\n\
                 step k runs from t = grid[k] to s = grid[k + 1] (r = grid[k − 1] is the time before).",
                u.name, p.name
            );
            if let Some(s) = p.samplers.iter().find(|s| s.name == u.name) {
                if !s.params.is_empty() {
                    let ps: Vec<String> = s
                        .params
                        .iter()
                        .map(|x| format!("{} = {}", x.name, show(p, x.value)))
                        .collect();
                    let _ = writeln!(
                        t,
                        "Parameters (the tables hold these defaults): {}.",
                        ps.join(", ")
                    );
                }
            }
        }
    }
    if tr.coef_width > 0 {
        let _ = writeln!(
            t,
            "\nCoefficients (where in the row: what; K×K matrices row-major):"
        );
        for c in 0..u.prog.coefs.len() {
            let w = coef_width(p, &u.prog, c);
            let _ = writeln!(
                t,
                "  c{c} at row[{}{}]: {}",
                tr.coef_off[c],
                if w > 1 {
                    format!(" … {}", tr.coef_off[c] + w - 1)
                } else {
                    String::new()
                },
                coef_text(p, &u.prog, c)
            );
        }
    }
    match (&u.kind, &tr.rows, &tr.times) {
        (UnitKind::Entry(_), Some(_), Some(_)) if tr.width == 0 => {
            let _ = writeln!(
                t,
                "\nNo host values: the kernels read no coefficients (the time is checked only)."
            );
        }
        (UnitKind::Entry(_), Some(_), Some(times)) => {
            let _ = writeln!(
                t,
                "\nRows: {pre}_rows[t − {}] holds the row at time t ({} rows of {} floats).",
                times[0],
                times.len(),
                tr.width
            );
        }
        (UnitKind::Entry(_), Some(_), None) => {
            if tr.width > 0 {
                let _ = writeln!(t, "\nRow: {pre}_rows[0] ({} floats).", tr.width);
            }
        }
        (UnitKind::Entry(_), None, _) => {
            let _ = writeln!(
                t,
                "\nContinuous time: the caller computes the row ({} floats, the coefficients above \
                 at its time, in f64 rounded to f32) and passes it as `row`.",
                tr.width
            );
        }
        (UnitKind::Sampler(_), _, _) => {
            let n = tr.step_shape.len();
            let _ = writeln!(
                t,
                "\nRows: {pre}_rows[k] for step k (0 … {}), [{n}] for the final map (at t = grid[{n}]),\n\
                 [{}] for the start ({} floats each). Values a row holds after the coefficients are\n\
                 named in the sequences below.",
                n.saturating_sub(1),
                n + 1,
                tr.width
            );
        }
    }
    // Call sequences.
    match &u.kind {
        UnitKind::Entry(_) => {
            let _ = writeln!(t, "\nCalls:");
            t.push_str(&events_text(p, units, u, &tr.shapes[0]));
            t.push_str(&docs_text(&tr.docs[0]));
        }
        UnitKind::Sampler(_) => {
            let n = tr.step_shape.len();
            let mut by_shape: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for (k, s) in tr.step_shape.iter().enumerate() {
                by_shape.entry(*s).or_default().push(k);
            }
            let _ = writeln!(t, "\nStart (seed as given; before step 0):");
            t.push_str(&events_text(p, units, u, &tr.shapes[tr.start_shape]));
            t.push_str(&docs_text(&tr.docs[tr.start_shape]));
            for (s, ks) in &by_shape {
                if ks.len() == 1 {
                    let _ = writeln!(t, "\nStep k = {}:", ks[0]);
                } else {
                    let _ = writeln!(t, "\nStep k for k in {}:", ranges(ks));
                }
                t.push_str(&events_text(p, units, u, &tr.shapes[*s]));
                t.push_str(&docs_text(&tr.docs[*s]));
            }
            let _ = writeln!(t, "\nFinal map (at t = grid[{n}]):");
            t.push_str(&events_text(p, units, u, &tr.shapes[tr.finalize_shape]));
            t.push_str(&docs_text(&tr.docs[tr.finalize_shape]));
        }
    }
    t
}

fn unit_header(h: &mut String, p: &Process, units: &[Unit], u: &Unit, tr: &Trace) {
    let pre = u.prefix(p);
    let upper = pre.to_uppercase();
    let dims = unit_dims(p, u, tr, units);
    let t = unit_doc(p, units, u, tr);
    let _ = writeln!(h, "/* ------------------------------------------------------------------------------------------");
    comment(h, "", &t);
    let _ = writeln!(h, " */");
    // Tables. The width is also a symbol, for programs that load the library at run time.
    let _ = writeln!(h, "#define {upper}_ROW_WIDTH {}", tr.width);
    let _ = writeln!(h, "extern const uint32_t {pre}_row_width;");
    if let (Some(rows), true) = (&tr.rows, tr.width > 0) {
        let _ = writeln!(
            h,
            "extern const float {pre}_rows[{}][{}];",
            rows.len(),
            tr.width
        );
    }
    // Functions.
    match &u.kind {
        UnitKind::Entry(e) => {
            let mut params = array_params(p, e);
            let how = match (&tr.rows, &tr.times) {
                (Some(_), Some(_)) => {
                    params.push(format!("uint32_t {}", ident(&p.time.name)));
                    format!(
                        "`{}` picks the row ({} … {})",
                        p.time.name, p.time.lo, p.time.hi
                    )
                }
                (Some(_), None) => "no time".to_string(),
                (None, _) => {
                    params.push("const float *row".into());
                    "`row` holds the coefficients at the caller's time".to_string()
                }
            };
            params.push("uint64_t seed".into());
            let _ = writeln!(
                h,
                "/* Run `{}`: inputs then outputs as listed above (outputs must not alias inputs);\n \
                 * {}{how}; draws use step word 0, as `diffc eval --entry {}` does.{} */",
                u.name,
                if p.dims.is_empty() {
                    String::new()
                } else {
                    format!("`dims` holds the sizes of {}; ", dim_names(p))
                },
                u.name,
                sym_inputs_doc(p, e)
            );
            let _ = writeln!(h, "int {pre}({});", params.join(", "));
            at_header(h, p, u, tr);
        }
        UnitKind::Sampler(_) => {
            let n = tr.step_shape.len();
            let fields = sampler_fields(tr);
            let _ = writeln!(h, "#define {upper}_STEPS {n}");
            let _ = writeln!(h, "extern const uint32_t {pre}_steps;");
            let _ = writeln!(h, "extern const double {pre}_grid[{}];", n + 1);
            let used: Vec<String> = fields
                .iter()
                .map(|f| format!("fields[{f}] = {}", p.fields[*f as usize].name))
                .collect();
            let _ = writeln!(
                h,
                "/* A run of `{}`: its scratch values, history and denoiser. `dims[i]` is the size of\n \
                 * dimension i of `{}` (copied). Each call below takes the state as an array of the\n \
                 * process's fields and updates it in place: {} (NULL for the others).\n \
                 * Call start (or fill the state yourself: start draws the prior or runs the init block),\n \
                 * then step k for k = 0 … {upper}_STEPS − 1, then finalize. */",
                u.name,
                p.name,
                used.join(", ")
            );
            let _ = writeln!(h, "typedef struct {pre}_sampler {pre}_sampler;");
            let _ = writeln!(
                h,
                "{pre}_sampler *{pre}_sampler_new(uint64_t batch, const uint64_t *dims, uint64_t seed,\n    diffc_denoise_fn denoise, void *user);"
            );
            let _ = writeln!(h, "void {pre}_sampler_free({pre}_sampler *s);");
            let _ = writeln!(
                h,
                "int {pre}_sampler_start({pre}_sampler *s, void *const *fields);"
            );
            let _ = writeln!(
                h,
                "int {pre}_sampler_step({pre}_sampler *s, uint32_t k, void *const *fields);"
            );
            let _ = writeln!(
                h,
                "int {pre}_sampler_finalize({pre}_sampler *s, void *const *fields);"
            );
            if let Some(s0) = one_call_step(u, tr) {
                let (params, doc) = one_call_params(p, u, tr, s0, &dims);
                let _ = writeln!(h, "/*");
                comment(h, "", &doc);
                let _ = writeln!(h, " */");
                let _ = writeln!(h, "int {pre}_step({});", params.join(", "));
            }
        }
    }
    for i in 0..u.plan.kernels.len() {
        let _ = writeln!(h, "/*");
        comment(h, "", &kernel_doc(p, u, i));
        let _ = writeln!(h, " */");
        let _ = writeln!(
            h,
            "void {}(void *const *bufs, const float *coefs, const uint64_t *sizes, uint64_t start,\n    uint64_t end, uint64_t seed, uint64_t step, uint64_t offset, uint32_t *status);",
            u.symbol(p, i)
        );
    }
    h.push('\n');
}

/// `row[3], row[7 … 735]`: row offsets, consecutive ones as runs.
fn row_runs(xs: &[u32]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < xs.len() {
        let mut e = i;
        while e + 1 < xs.len() && xs[e + 1] == xs[e] + 1 {
            e += 1;
        }
        out.push(if e - i >= 2 {
            format!("row[{} … {}]", xs[i], xs[e])
        } else {
            (i..=e)
                .map(|k| format!("row[{}]", xs[k]))
                .collect::<Vec<_>>()
                .join(", ")
        });
        i = e + 1;
    }
    out.join(", ")
}

fn ranges(ks: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ks.len() {
        let mut j = i;
        while j + 1 < ks.len() && ks[j + 1] == ks[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            ks[i].to_string()
        } else {
            format!("{} … {}", ks[i], ks[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

/// The parameters of a one-call step: fields read, network outputs, fields written (`_out`),
/// then sizes, step index and seed.
struct OneCall {
    /// (C parameter, buffer source, const)
    arrays: Vec<(String, Src, Store)>,
}

fn one_call_layout(p: &Process, u: &Unit, tr: &Trace, s0: usize) -> OneCall {
    let events = &tr.shapes[s0];
    let Some(Event::Launch { bufs, .. }) = events.last() else {
        return OneCall { arrays: Vec::new() };
    };
    let mut arrays: Vec<(String, Src, Store)> = Vec::new();
    let mut add = |name: String, src: Src, store: Store| {
        if !arrays.iter().any(|(n, _, _)| *n == name) {
            arrays.push((name, src, store));
        }
    };
    let mut reads: Vec<&Buf> = Vec::new();
    for e in events {
        if let Event::Call { inputs, .. } = e {
            reads.extend(inputs.iter().filter(|b| matches!(b.src, Src::Field(_))));
        }
    }
    reads.extend(
        bufs.iter()
            .filter(|b| !b.out && matches!(b.src, Src::Field(_))),
    );
    reads.sort_by_key(|b| match b.src {
        Src::Field(f) => f,
        _ => 0,
    });
    for b in reads {
        if let Src::Field(f) = b.src {
            add(ident(&p.fields[f as usize].name), b.src.clone(), b.store);
        }
    }
    for b in bufs.iter().filter(|b| !b.out) {
        if let Src::Net { call, output } = b.src {
            let name = u
                .sampler()
                .and_then(|sp| net_of_call(sp, call))
                .map(|n| {
                    let n = &p.networks[n as usize];
                    let base = format!(
                        "{}_{}",
                        n.name,
                        p.field(n.outputs[output as usize].field).name
                    );
                    if u.sampler().map_or(0, |sp| sp.calls) > 1 {
                        format!("{base}_{call}")
                    } else {
                        base
                    }
                })
                .unwrap_or_else(|| format!("net{call}_{output}"));
            add(ident(&name), b.src.clone(), b.store);
        }
    }
    for b in bufs.iter().filter(|b| b.out) {
        if let Src::Field(f) = b.src {
            add(
                format!("{}_out", ident(&p.fields[f as usize].name)),
                Src::Output(f),
                b.store,
            );
        }
    }
    OneCall { arrays }
}

fn one_call_params(
    p: &Process,
    u: &Unit,
    tr: &Trace,
    s0: usize,
    dims: &[u32],
) -> (Vec<String>, String) {
    let pre = u.prefix(p);
    let l = one_call_layout(p, u, tr, s0);
    let mut params: Vec<String> = l
        .arrays
        .iter()
        .map(|(n, src, st)| {
            if matches!(src, Src::Output(_)) {
                format!("{} *{n}", c_type(*st))
            } else {
                format!("const {} *{n}", c_type(*st))
            }
        })
        .collect();
    params.push("uint64_t batch".into());
    if !dims.is_empty() {
        params.push(dims_params(p, dims));
    }
    params.push("uint32_t k".into());
    params.push("uint64_t seed".into());
    let mut doc = String::new();
    let Some(Event::Launch { unit, kernel, .. }) = tr.shapes[s0].last() else {
        return (params, doc);
    };
    let calls: Vec<String> = tr.shapes[s0]
        .iter()
        .filter_map(|e| match e {
            Event::Call { net, inputs, .. } => {
                let n = &p.networks[*net as usize];
                let ins: Vec<String> = inputs
                    .iter()
                    .zip(&n.inputs)
                    .map(|(b, ni)| match (&b.src, ni) {
                        (Src::Row(at), crate::typed::NetInput::Time { expr }) => {
                            format!("{} = {pre}_rows[k][{at}]", show(p, *expr))
                        }
                        (Src::Field(f), _) => p.fields[*f as usize].name.clone(),
                        _ => src_text(p, u, b),
                    })
                    .collect();
                Some(format!("{}({})", n.name, ins.join(", ")))
            }
            _ => None,
        })
        .collect();
    let aliasing = if elementwise(&units_kernel(u, *unit, *kernel)) {
        "An output may be the same array as an input (the kernel is elementwise)."
    } else {
        "Outputs must not alias inputs."
    };
    let _ = writeln!(
        doc,
        "Step k (0 … {pre_upper}_STEPS − 1) of `{}` in one call, from t = {pre}_grid[k] to\n\
         s = {pre}_grid[k + 1]: first evaluate {} yourself, then call this; it runs kernel {kernel}\n\
         with row k of {pre}_rows and RNG step word k, as `diffc eval --sampler {} --entry step\n\
         --set k=K --set t=… --set s=…` does. {aliasing}",
        u.name,
        calls.join(" and "),
        u.name,
        pre_upper = pre.to_uppercase(),
    );
    (params, doc)
}

fn units_kernel(u: &Unit, unit: usize, kernel: usize) -> Kernel {
    let _ = unit;
    u.plan.kernels[kernel].clone()
}

/// The C runtime's fixed sizes: dimensions per buffer, sizes per kernel, a network's inputs and
/// outputs.
fn check_limits(built: &[Built]) -> Result<(), String> {
    fn walk(e: &Event, units: &[Unit]) -> Result<(), String> {
        if let Event::Repeat { body, .. } = e {
            return body.iter().try_for_each(|e| walk(e, units));
        }
        if bufs_of(e).iter().any(|b| b.dims.len() > 6) {
            return Err("a value has more than 6 dimensions".into());
        }
        if let Event::Launch { unit, kernel, .. } = e {
            if units[*unit].plan.kernels[*kernel].dims.len() > 8 {
                return Err("a kernel has more than 8 dimensions".into());
            }
        }
        if let Event::Call {
            inputs, outputs, ..
        } = e
        {
            if inputs.len() > 32 || outputs.len() > 32 {
                return Err("a network has more than 32 inputs or outputs".into());
            }
        }
        Ok(())
    }
    for (p, units, traces) in built {
        if p.dims.len() > 255 {
            return Err(format!("`{}` has more than 255 dimensions", p.name));
        }
        for (u, tr) in units.iter().zip(traces) {
            for e in tr.shapes.iter().flatten() {
                walk(e, units).map_err(|m| {
                    format!(
                        "`{}.{}`: {m}, more than the C runtime supports",
                        p.name, u.name
                    )
                })?;
            }
        }
    }
    Ok(())
}

fn check_unique_names(built: &[Built]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for (p, units, traces) in built {
        for (u, tr) in units.iter().zip(traces) {
            let pre = u.prefix(p);
            let mut names = vec![
                pre.clone(),
                format!("{pre}_rows"),
                format!("{pre}_grid"),
                format!("{pre}_row_width"),
                format!("{pre}_steps"),
            ];
            if u.sampler().is_some() {
                for s in ["new", "free", "start", "step", "finalize"] {
                    names.push(format!("{pre}_sampler_{s}"));
                }
                if one_call_step(u, tr).is_some() {
                    names.push(format!("{pre}_step"));
                }
            }
            for i in 0..u.plan.kernels.len() {
                names.push(u.symbol(p, i));
            }
            for n in names {
                if !seen.insert(n.clone()) {
                    return Err(format!(
                        "two parts of the library would be named `{n}`: rename an entry, sampler \
                         or process"
                    ));
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The C runtime

/// The runtime every library's `<stem>_runtime.c` starts with (after its header): a real C file,
/// compiled on its own by `tests/aot.rs`.
const RUNTIME: &str = include_str!("runtime.c");

fn src_c(b: &Buf, maxout: u32) -> (&'static str, u32) {
    match &b.src {
        Src::Field(f) => ("RT_FIELD", *f),
        Src::Slot(s) => ("RT_SLOT", *s),
        Src::Prev(s) => ("RT_PREV", *s),
        Src::Net { call, output } => ("RT_NET", call * maxout + output),
        Src::Node(i) => ("RT_NODE", *i),
        Src::Input(i) => ("RT_INPUT", *i),
        Src::Output(i) => ("RT_OUTPUT", *i),
        Src::Row(at) => ("RT_ROW", *at),
        // Never in a build: its units are planned without masks.
        Src::Mask(m) => ("RT_MASK", *m),
    }
}

/// `direct`: an output the kernel writes straight into the caller's array.
fn buf_c(b: &Buf, maxout: u32, direct: bool) -> String {
    let (kind, index) = src_c(b, maxout);
    let dims: Vec<String> = b.dims.iter().map(|d| d.to_string()).collect();
    format!(
        "{{{kind}, {}, {}, {}, {index}, {}, {}, {{{}}}}}",
        b.store.bytes(),
        b.batch as u8,
        if b.out && direct { 2 } else { b.out as u8 },
        b.width,
        b.dims.len(),
        dims.join(", ")
    )
}

fn u8_list(xs: &[u32]) -> String {
    xs.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Emit a shape's events as static C data; returns the array's name and length.
fn events_c(
    out: &mut String,
    p: &Process,
    units: &[Unit],
    name: &str,
    events: &[Event],
    maxout: u32,
) -> (String, usize) {
    let mut items = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let base = format!("{name}_e{i}");
        match e {
            Event::Launch {
                unit,
                kernel,
                bufs,
                slots,
                word,
                offset,
            } => {
                let ku = &units[*unit];
                let k = &ku.plan.kernels[*kernel];
                // Outputs to the caller's arrays are written in place when no input of the
                // kernel reads them, or when every element reads only its own values.
                let ew = elementwise(k);
                let bl: Vec<String> = bufs
                    .iter()
                    .map(|b| {
                        let caller = matches!(b.src, Src::Field(_) | Src::Output(_));
                        let read = bufs.iter().any(|x| !x.out && x.src == b.src);
                        buf_c(b, maxout, caller && (ew || !read))
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "static const rt_buf {base}_b[] = {{{}}};",
                    bl.join(", ")
                );
                if !slots.is_empty() {
                    let _ = writeln!(
                        out,
                        "static const uint32_t {base}_s[] = {{{}}};",
                        u8_list(slots)
                    );
                }
                let kdims: Vec<u32> = k
                    .dims
                    .iter()
                    .map(|d| p.dims.iter().position(|x| &x.name == d).unwrap_or(0) as u32)
                    .collect();
                let dom: Vec<u32> = k.domain.iter().map(|d| kdims[*d as usize]).collect();
                if !kdims.is_empty() {
                    let _ = writeln!(
                        out,
                        "static const uint8_t {base}_k[] = {{{}}};",
                        u8_list(&kdims)
                    );
                }
                if !dom.is_empty() {
                    let _ = writeln!(
                        out,
                        "static const uint8_t {base}_d[] = {{{}}};",
                        u8_list(&dom)
                    );
                }
                let (is_k, w) = match word {
                    Word::Step => (1, 0),
                    Word::Fixed(w) => (0, *w),
                };
                items.push(format!(
                    "{{RT_LAUNCH, {is_k}, 0, 0, {}, 0, {base}_b, {}, {}, {}, {}, {}, {}, {}, {w}ull, {offset}ull, NULL, NULL}}",
                    bufs.len(),
                    ku.symbol(p, *kernel),
                    if slots.is_empty() { "NULL".into() } else { format!("{base}_s") },
                    slots.len(),
                    if kdims.is_empty() { "NULL".into() } else { format!("{base}_k") },
                    kdims.len(),
                    if dom.is_empty() { "NULL".into() } else { format!("{base}_d") },
                    dom.len(),
                ));
            }
            Event::Call {
                net,
                call,
                inputs,
                outputs,
                sym,
                ..
            } => {
                let bl: Vec<String> = inputs
                    .iter()
                    .chain(outputs)
                    .map(|b| buf_c(b, maxout, false))
                    .collect();
                let _ = writeln!(
                    out,
                    "static const rt_buf {base}_b[] = {{{}}};",
                    bl.join(", ")
                );
                let sy: Vec<String> = sym
                    .iter()
                    .map(|s| s.map_or("-1".to_string(), |d| d.to_string()))
                    .collect();
                let _ = writeln!(
                    out,
                    "static const int8_t {base}_y[] = {{{}}};",
                    sy.join(", ")
                );
                items.push(format!(
                    "{{RT_CALL, 0, {net}, {call}, {}, {}, {base}_b, NULL, NULL, 0, NULL, 0, NULL, 0, 0, 0, {base}_y, NULL}}",
                    inputs.len() + outputs.len(),
                    inputs.len()
                ));
            }
            Event::Copy { to, from, .. } => {
                let _ = writeln!(
                    out,
                    "static const rt_buf {base}_b[] = {{{}, {}}};",
                    buf_c(to, maxout, false),
                    buf_c(from, maxout, false)
                );
                items.push(format!(
                    "{{RT_COPY, 0, 0, 0, 2, 0, {base}_b, NULL, NULL, 0, NULL, 0, NULL, 0, 0, 0, NULL, NULL}}"
                ));
            }
            Event::Repeat { count, body } => {
                let (inner, n) = events_c(out, p, units, &format!("{base}_r"), body, maxout);
                items.push(format!(
                    "{{RT_REPEAT, 0, 0, {count}, {n}, 0, NULL, NULL, NULL, 0, NULL, 0, NULL, 0, 0, 0, NULL, {inner}}}"
                ));
            }
        }
    }
    if items.is_empty() {
        return ("NULL".into(), 0);
    }
    let _ = writeln!(
        out,
        "static const rt_event {name}[] = {{\n  {}\n}};",
        items.join(",\n  ")
    );
    (name.to_string(), items.len())
}

fn runtime_text(stem: &str, built: &[Built]) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "/* {stem}_runtime.c: the call sequences of `{stem}.diff` (see {stem}.h). Generated by diffc: do not edit. */"
    );
    let _ = writeln!(c, "#include \"{stem}.h\"");
    c.push_str(RUNTIME);
    for (p, units, traces) in built {
        let maxout = p
            .networks
            .iter()
            .map(|n| n.outputs.len())
            .max()
            .unwrap_or(1)
            .max(1) as u32;
        params_runtime(&mut c, p);
        for (u, tr) in units.iter().zip(traces) {
            unit_runtime(&mut c, p, units, u, tr, maxout);
        }
    }
    c
}

fn unit_runtime(c: &mut String, p: &Process, units: &[Unit], u: &Unit, tr: &Trace, maxout: u32) {
    let pre = u.prefix(p);
    let nd = p.dims.len().max(1);
    let dims = unit_dims(p, u, tr, units);
    let _ = writeln!(c, "\n/* {}.{} */", p.name, u.name);
    let _ = writeln!(c, "const uint32_t {pre}_row_width = {}u;", tr.width);
    let mut shapes = Vec::new();
    for (i, s) in tr.shapes.iter().enumerate() {
        shapes.push(events_c(c, p, units, &format!("{pre}_shape{i}"), s, maxout));
    }
    let has_rows = tr.rows.is_some() && tr.width > 0;
    match &u.kind {
        UnitKind::Entry(e) => {
            let mut params = array_params(p, e);
            let dims_decl = if p.dims.is_empty() {
                "  const uint64_t dims[1] = {0};\n".to_string()
            } else {
                "  if (!dims) return DIFFC_ERR_ARG;\n".to_string()
            };
            let row_expr = match (&tr.rows, &tr.times) {
                (Some(_), Some(times)) => {
                    let t = ident(&p.time.name);
                    params.push(format!("uint32_t {t}"));
                    let (lo, hi) = (times[0] as u64, *times.last().unwrap_or(&0.0) as u64);
                    format!(
                        "  if ({t} < {lo}u || {t} > {hi}u) return DIFFC_ERR_ARG;\n{}",
                        if has_rows {
                            format!("  c.row = {pre}_rows[{t} - {lo}u];\n")
                        } else {
                            String::new()
                        }
                    )
                }
                (Some(_), None) if has_rows => format!("  c.row = {pre}_rows[0];\n"),
                (Some(_), None) => String::new(),
                (None, _) => {
                    params.push("const float *row".into());
                    "  c.row = row;\n".to_string()
                }
            };
            params.push("uint64_t seed".into());
            let (nin, nout, in_init, out_init) = port_arrays(e);
            let nodes = tr.scratch.max(1);
            let (ev, n) = &shapes[0];
            let dims_decl = format!("{dims_decl}{}", sym_checks_c(p, e));
            let _ = writeln!(
                c,
                "int {pre}({}) {{\n{dims_decl}  const void *inputs[{nin}] = {{{}}};\n  void *outputs[{nout}] = {{{}}};\n  void *nodes[{nodes}] = {{0}};\n  rt_ctx c;\n  memset(&c, 0, sizeof c);\n  c.batch = batch;\n  c.seed = seed;\n  c.dims = dims;\n  c.inputs = inputs;\n  c.outputs = outputs;\n  c.nodes = nodes;\n{row_expr}  int rc = rt_run(&c, {ev}, {n});\n  for (int i = 0; i < {nodes}; i++) free(nodes[i]);\n  return rc;\n}}",
                params.join(", "),
                if in_init.is_empty() { "NULL".into() } else { in_init.join(", ") },
                if out_init.is_empty() { "NULL".into() } else { out_init.join(", ") },
            );
            at_runtime(c, p, u, tr, ev, *n);
        }
        UnitKind::Sampler(sp) => {
            let n = tr.step_shape.len();
            let grid = tr.times.clone().unwrap_or_default();
            let g: Vec<String> = grid.iter().map(|x| format!("{x:?}")).collect();
            let _ = writeln!(
                c,
                "const double {pre}_grid[{}] = {{{}}};",
                grid.len(),
                g.join(", ")
            );
            let shape_list: Vec<String> = shapes.iter().map(|(e, _)| e.clone()).collect();
            let len_list: Vec<String> = shapes.iter().map(|(_, n)| n.to_string()).collect();
            let _ = writeln!(
                c,
                "static const rt_event *const {pre}_shapes[] = {{{}}};\nstatic const uint32_t {pre}_shape_len[] = {{{}}};",
                shape_list.join(", "),
                len_list.join(", ")
            );
            let ss: Vec<String> = tr.step_shape.iter().map(|s| s.to_string()).collect();
            let _ = writeln!(
                c,
                "static const uint16_t {pre}_step_shape[{}] = {{{}}};",
                n.max(1),
                if ss.is_empty() {
                    "0".into()
                } else {
                    ss.join(", ")
                }
            );
            let slots = (sp.slots as usize).max(1);
            let nets = (sp.calls as usize * maxout as usize).max(1);
            let nodes = tr.scratch.max(1);
            let _ = writeln!(
                c,
                "struct {pre}_sampler {{\n  rt_ctx c;\n  uint64_t dims[{nd}];\n  void *slots[{slots}], *prevs[{slots}], *nets[{nets}], *nodes[{nodes}];\n}};"
            );
            let _ = writeln!(c, "const uint32_t {pre}_steps = {n}u;");
            let _ = writeln!(
                c,
                "{pre}_sampler *{pre}_sampler_new(uint64_t batch, const uint64_t *dims, uint64_t seed, diffc_denoise_fn denoise, void *user) {{\n  if (!dims && {}) return NULL;\n  {pre}_sampler *s = calloc(1, sizeof *s);\n  if (!s) return NULL;\n  if (dims) memcpy(s->dims, dims, {} * sizeof(uint64_t));\n  s->c.batch = batch;\n  s->c.seed = seed;\n  s->c.dims = s->dims;\n  s->c.slots = s->slots;\n  s->c.prevs = s->prevs;\n  s->c.nets = s->nets;\n  s->c.nodes = s->nodes;\n  s->c.denoise = denoise;\n  s->c.user = user;\n  return s;\n}}",
                p.dims.len(),
                p.dims.len()
            );
            let _ = writeln!(
                c,
                "void {pre}_sampler_free({pre}_sampler *s) {{\n  if (!s) return;\n  for (int i = 0; i < {slots}; i++) {{\n    free(s->slots[i]);\n    free(s->prevs[i]);\n  }}\n  for (int i = 0; i < {nets}; i++) free(s->nets[i]);\n  for (int i = 0; i < {nodes}; i++) free(s->nodes[i]);\n  free(s);\n}}"
            );
            let row = |k: &str| {
                if has_rows {
                    format!("{pre}_rows[{k}]")
                } else {
                    "NULL".into()
                }
            };
            let _ = writeln!(
                c,
                "static int {pre}_phase({pre}_sampler *s, uint32_t shape, uint32_t k, const float *row, void *const *fields) {{\n  if (!s || !fields) return DIFFC_ERR_ARG;\n  s->c.k = k;\n  s->c.row = row;\n  s->c.fields = fields;\n  return rt_run(&s->c, {pre}_shapes[shape], {pre}_shape_len[shape]);\n}}"
            );
            let _ = writeln!(
                c,
                "int {pre}_sampler_start({pre}_sampler *s, void *const *fields) {{\n  return {pre}_phase(s, {}, 0, {}, fields);\n}}",
                tr.start_shape,
                row(&(n + 1).to_string())
            );
            let _ = writeln!(
                c,
                "int {pre}_sampler_step({pre}_sampler *s, uint32_t k, void *const *fields) {{\n  if (k >= {n}u) return DIFFC_ERR_ARG;\n  return {pre}_phase(s, {pre}_step_shape[k], k, {}, fields);\n}}",
                row("k")
            );
            let _ = writeln!(
                c,
                "int {pre}_sampler_finalize({pre}_sampler *s, void *const *fields) {{\n  return {pre}_phase(s, {}, {n}u, {}, fields);\n}}",
                tr.finalize_shape,
                row(&n.to_string())
            );
            if let Some(s0) = one_call_step(u, tr) {
                one_call_c(c, p, u, tr, s0, &dims);
            }
        }
    }
}

fn one_call_c(c: &mut String, p: &Process, u: &Unit, tr: &Trace, s0: usize, dims: &[u32]) {
    let pre = u.prefix(p);
    let (params, _) = one_call_params(p, u, tr, s0, dims);
    let l = one_call_layout(p, u, tr, s0);
    let Some(Event::Launch {
        kernel,
        bufs,
        slots,
        offset,
        ..
    }) = tr.shapes[s0].last()
    else {
        return;
    };
    let k = &u.plan.kernels[*kernel];
    let n = tr.step_shape.len();
    let ptr = |b: &Buf| -> String {
        match &b.src {
            Src::Row(at) => format!("(void *)(row + {at})"),
            Src::Field(f) if b.out => {
                let name = format!("{}_out", ident(&p.fields[*f as usize].name));
                name
            }
            src => l
                .arrays
                .iter()
                .find(|(_, s, _)| s == src)
                .map(|(n, _, _)| format!("(void *){n}"))
                .unwrap_or_else(|| "NULL".into()),
        }
    };
    let bl: Vec<String> = bufs.iter().map(ptr).collect();
    let sl: Vec<String> = slots.iter().map(|x| format!("row[{x}]")).collect();
    let sizes: Vec<String> = k.dims.iter().map(|d| ident(d)).collect();
    let total: String = std::iter::once("batch".to_string())
        .chain(k.domain.iter().map(|d| ident(&k.dims[*d as usize])))
        .collect::<Vec<_>>()
        .join(" * ");
    let _ = dims;
    let _ = writeln!(
        c,
        "int {pre}_step({}) {{\n  if (k >= {n}u) return DIFFC_ERR_ARG;\n  const float *row = {rows};\n  void *bufs[{}] = {{{}}};\n  float coefs[{}] = {{{}}};\n  uint64_t sizes[{}] = {{{}}};\n  uint32_t status = 0;\n  (void)row;\n  {}(bufs, coefs, sizes, 0, {total}, seed, k, {offset}ull, &status);\n  return (int)status;\n}}",
        params.join(", "),
        bufs.len().max(1),
        bl.join(", "),
        slots.len().max(1),
        if sl.is_empty() { "0".into() } else { sl.join(", ") },
        sizes.len().max(1),
        if sizes.is_empty() { "0".into() } else { sizes.join(", ") },
        u.symbol(p, *kernel),
        rows = if tr.width > 0 {
            format!("{pre}_rows[k]")
        } else {
            "NULL".to_string()
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Per-sample times and run-time params (`diffc_<process>_<entry>_at`)

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
fn time_ports(e: &entries::Entry) -> Vec<&Port> {
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
    super::coefc::row_function(p, &u.prog, &format!("{}_row_at", u.prefix(p)), &tr.coef_off)
        .map(|f| Some(AtRows::Computed(f)))
}

/// An entry function's `inputs` and `outputs` arrays: their lengths and initialisers (a scalar
/// input, a time or the seed, is passed otherwise and holds NULL).
fn port_arrays(e: &entries::Entry) -> (usize, usize, Vec<String>, Vec<String>) {
    let ins = e
        .inputs
        .iter()
        .map(|x| {
            if x.extent == PortExtent::Scalar {
                "NULL".into()
            } else {
                ident(&x.name)
            }
        })
        .collect();
    let outs = e.outputs.iter().map(|x| ident(&x.name)).collect();
    (e.inputs.len().max(1), e.outputs.len().max(1), ins, outs)
}

/// An entry function's leading parameters: its array inputs, then outputs, the batch size and
/// (when the process has dimensions) their sizes.
fn array_params(p: &Process, e: &entries::Entry) -> Vec<String> {
    let (ins, outs) = array_ports(e);
    let mut params: Vec<String> = ins
        .iter()
        .map(|(_, x)| format!("const {} *{}", port_c_type(x), ident(&x.name)))
        .chain(
            outs.iter()
                .map(|(_, x)| format!("{} *{}", port_c_type(x), ident(&x.name))),
        )
        .collect();
    params.push("uint64_t batch".into());
    if !p.dims.is_empty() {
        params.push("const uint64_t *dims".into());
    }
    params
}

/// The parameter list of an entry's `_at` variant.
fn at_params(p: &Process, e: &entries::Entry) -> Vec<String> {
    let mut params = array_params(p, e);
    for x in time_ports(e) {
        if x.name == p.time.name {
            params.push(format!("const float *{}", ident(&x.name)));
        } else {
            params.push(format!("float {}", ident(&x.name)));
        }
    }
    if !settable_params(p).is_empty() {
        params.push(format!("const diffc_{}_params *params", p.name));
    }
    params.push("uint64_t seed".into());
    params
}

/// The header's params struct of a process (nothing when it has no run-time params).
fn params_header(h: &mut String, p: &Process) {
    let ids = settable_params(p);
    if ids.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "/* Run-time values of the params of `{}`, for the `_at` entry points: each points at the\n \
         * param's values as floats, or is NULL for the spec's default. A probability vector must\n \
         * hold values >= 0 that sum to 1 (within 1e-6); a non-finite value is DIFFC_ERR_ARG. */",
        p.name
    );
    let _ = writeln!(h, "typedef struct diffc_{}_params {{", p.name);
    for id in ids {
        let x = &p.params[id];
        let default = match &x.default {
            Some(crate::typed::Value::Real(v)) => format!("{v}"),
            Some(crate::typed::Value::Vec(v)) | Some(crate::typed::Value::Mat(_, v)) => {
                let xs: Vec<String> = v.iter().map(|y| format!("{y}")).collect();
                format!("{{{}}}", xs.join(", "))
            }
            _ => "none".into(),
        };
        let _ = writeln!(
            h,
            "  const float *{}; /* {}: {} value{}{}, default {default} */",
            ident(&x.name),
            x.elem.describe(),
            param_len(p, id),
            if param_len(p, id) == 1 { "" } else { "s" },
            if param_simplex(p, id) {
                " (a probability vector)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(h, "}} diffc_{}_params;\n", p.name);
}

/// The runtime's reader of a process's params struct.
fn params_runtime(c: &mut String, p: &Process) {
    let ids = settable_params(p);
    if ids.is_empty() {
        return;
    }
    let _ = writeln!(
        c,
        "\n/* The given params of `{0}` by param index (NULL: the default); 1 if one is invalid. */\nstatic int diffc_{0}_params_get(const diffc_{0}_params *pp, const float **pv) {{\n  if (!pp) return 0;",
        p.name
    );
    for id in ids {
        let f = ident(&p.params[id].name);
        let _ = writeln!(
            c,
            "  if (pp->{f}) {{\n    if (rt_param(pp->{f}, {}u, {})) return 1;\n    pv[{id}] = pp->{f};\n  }}",
            param_len(p, id),
            param_simplex(p, id) as u8
        );
    }
    let _ = writeln!(c, "  return 0;\n}}");
}

/// The sentence of an entry's documentation on its inputs of `sym` fields, checked by
/// [`sym_checks_c`] (empty when it has none).
fn sym_inputs_doc(p: &Process, e: &entries::Entry) -> String {
    let names: Vec<String> = e
        .inputs
        .iter()
        .filter(|x| interp::held_symmetric(p, x))
        .map(|x| format!("`{}`", ident(&x.name)))
        .collect();
    if names.is_empty() {
        return String::new();
    }
    format!(
        " Returns DIFFC_ERR_SYM, computing nothing, where the value of a symmetric field ({}) is \
         not symmetric, or not 0 on its diagonal, in some sample.",
        names.join(", ")
    )
}

/// The header's declaration and documentation of an entry's `_at` variant.
fn at_header(h: &mut String, p: &Process, u: &Unit, tr: &Trace) {
    let Some(e) = u.entry() else { return };
    let pre = u.prefix(p);
    match at_rows(p, u, tr) {
        Ok(None) => {}
        Err(why) => {
            let _ = writeln!(
                h,
                "/* `{}` has no per-sample-time variant: {why}. */",
                u.name
            );
        }
        Ok(Some(how)) => {
            let time = &p.time;
            let t = ident(&time.name);
            let mut doc = format!(
                "Run `{}` with one time per sample: `{t}[b]` is sample b's time (batch floats{}), and\n\
                 sample b's results equal those of `{pre}` called at `{t}[b]` for the whole batch (its draws\n\
                 included), as `diffc eval --entry {} --in {t}=T.npy` gives them. A result that is one value\n\
                 per call there is one per sample here (batch floats). ",
                u.name,
                if time.kind == TimeKind::Discrete {
                    format!(", whole numbers {} … {}", time.lo, time.hi)
                } else {
                    format!(", {} … {}", time.lo, time.hi)
                },
                u.name
            );
            doc.push_str(match how {
                AtRows::Tables => "The rows come from the table above.",
                AtRows::Computed(_) => {
                    "The coefficients above are computed at each sample's time in f64, as diffc's own \
                     host code computes them (compile the runtime with -fno-builtin -ffp-contract=off \
                     for bit-equal results), and rounded to f32."
                }
            });
            if !settable_params(p).is_empty() {
                doc.push_str(" `params` (NULL for the defaults) sets the process's params.");
            }
            doc.push_str(
                " Returns DIFFC_ERR_ARG for a time outside the process's time (or NaN), a param that \
                 is not finite or not a probability vector where one is needed, or a coefficient the \
                 interpreter cannot compute at that time.",
            );
            doc.push_str(&sym_inputs_doc(p, e));
            let _ = writeln!(h, "/*");
            comment(h, "", &doc);
            let _ = writeln!(h, " */");
            let _ = writeln!(h, "int {pre}_at({});", at_params(p, e).join(", "));
        }
    }
}

/// C statements that return DIFFC_ERR_SYM where an entry's input value of a `sym` field (not a
/// network's output, which is read on its upper triangle) is not symmetric with an empty
/// diagonal in every sample: the inputs [`interp::held_symmetric`] picks, held to
/// [`interp::check_sym`]'s rule, as `diffc eval` holds them.
fn sym_checks_c(p: &Process, e: &entries::Entry) -> String {
    let mut s = String::new();
    for x in e.inputs.iter().filter(|x| interp::held_symmetric(p, x)) {
        let PortExtent::Field(shape) = &x.extent else {
            continue;
        };
        let b = port_buf(x, Src::Input(0), false);
        let ty = match b.store {
            Store::F32 => "f32",
            Store::U32 => "u32",
            Store::U8 => "u8",
        };
        let _ = writeln!(
            s,
            "  if (rt_sym_{ty}({}, batch, dims[{}], {}u)) return DIFFC_ERR_SYM;",
            ident(&x.name),
            shape.dims[0].0,
            b.width
        );
    }
    s
}

/// The runtime's `_at` variant of an entry (nothing when it has none).
fn at_runtime(c: &mut String, p: &Process, u: &Unit, tr: &Trace, ev: &str, n: usize) {
    let Some(e) = u.entry() else { return };
    let Ok(Some(how)) = at_rows(p, u, tr) else {
        return;
    };
    let pre = u.prefix(p);
    let time = &p.time;
    let t = ident(&time.name);
    let discrete = (time.kind == TimeKind::Discrete) as u8;
    let lit = |x: f64| format!("{x:?}");
    let mut body = String::new();
    if !p.dims.is_empty() {
        body.push_str("  if (!dims) return DIFFC_ERR_ARG;\n");
    } else {
        body.push_str("  const uint64_t dims[1] = {0};\n");
    }
    let _ = writeln!(body, "  if (!{t} && batch) return DIFFC_ERR_ARG;");
    let np = p.params.len().max(1);
    let _ = writeln!(body, "  const float *pv[{np}] = {{0}};\n  (void)pv;");
    if !settable_params(p).is_empty() {
        let _ = writeln!(
            body,
            "  if (diffc_{}_params_get(params, pv)) return DIFFC_ERR_ARG;",
            p.name
        );
    }
    let mut sv = "0.0".to_string();
    for x in time_ports(e) {
        if x.name == time.name {
            continue;
        }
        let (lo, hi) = (time.lo.min(time.data_at), time.hi.max(time.data_at));
        let name = ident(&x.name);
        let _ = writeln!(
            body,
            "  double {name}_v;\n  if (rt_time({name}, {}, {}, {discrete}, &{name}_v)) return DIFFC_ERR_ARG;",
            lit(lo),
            lit(hi)
        );
        sv = format!("{name}_v");
    }
    let check = format!(
        "rt_time({t}[b], {}, {}, {discrete}, &tv)",
        lit(time.lo),
        lit(time.hi)
    );
    let _ = writeln!(
        body,
        "  for (uint64_t b = 0; b < batch; b++) {{\n    double tv;\n    if ({check}) return DIFFC_ERR_ARG;\n  }}"
    );
    body.push_str(&sym_checks_c(p, e));
    let (nin, nout, in_init, out_init) = port_arrays(e);
    let nodes = tr.scratch.max(1);
    let width = tr.width.max(1);
    let row = match &how {
        AtRows::Tables if tr.width == 0 => String::new(),
        AtRows::Tables => format!(
            "    c.row = {pre}_rows[(uint32_t)tv - {}u];\n",
            time.lo as u64
        ),
        AtRows::Computed(_) => format!(
            "    if ({pre}_row_at(tv, {sv}, pv, row)) {{\n      rc = DIFFC_ERR_ARG;\n      break;\n    }}\n    c.row = row;\n"
        ),
    };
    if let AtRows::Computed(f) = &how {
        c.push_str(f);
    }
    let _ = writeln!(
        c,
        "int {pre}_at({}) {{\n{body}  const void *inputs[{nin}] = {{{}}};\n  void *outputs[{nout}] = {{{}}};\n  void *nodes[{nodes}] = {{0}};\n  float row[{width}];\n  (void)row;\n  rt_ctx c;\n  memset(&c, 0, sizeof c);\n  c.batch = batch;\n  c.seed = seed;\n  c.dims = dims;\n  c.inputs = inputs;\n  c.outputs = outputs;\n  c.nodes = nodes;\n  c.runs = 1;\n  int rc = 0;\n  for (uint64_t b0 = 0, b1; b0 < batch && !rc; b0 = b1) {{\n    uint32_t w0, w;\n    memcpy(&w0, &{t}[b0], 4);\n    for (b1 = b0 + 1; b1 < batch; b1++) {{\n      memcpy(&w, &{t}[b1], 4);\n      if (w != w0) break;\n    }}\n    uint64_t b = b0;\n    double tv = 0.0;\n    if ({check}) {{\n      rc = DIFFC_ERR_ARG;\n      break;\n    }}\n{row}    c.b0 = b0;\n    c.b1 = b1;\n    rc = rt_run(&c, {ev}, {n});\n  }}\n  for (int i = 0; i < {nodes}; i++) free(nodes[i]);\n  return rc;\n}}",
        at_params(p, e).join(", "),
        if in_init.is_empty() { "NULL".into() } else { in_init.join(", ") },
        if out_init.is_empty() { "NULL".into() } else { out_init.join(", ") },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(src: Src, out: bool, width: u32) -> Buf {
        Buf {
            src,
            store: Store::F32,
            width,
            batch: true,
            dims: vec![0],
            out,
        }
    }

    fn launch(bufs: Vec<Buf>) -> Event {
        Event::Launch {
            unit: 0,
            kernel: 0,
            bufs,
            slots: Vec::new(),
            word: Word::Fixed(0),
            offset: 0,
        }
    }

    fn order(events: &[Event]) -> Result<(), String> {
        check_order(events, &mut HashSet::new(), &mut HashMap::new(), "")
    }

    #[test]
    fn a_plan_reading_before_writing_or_changing_a_buffer_is_refused() {
        let ok = [
            launch(vec![
                buf(Src::Input(0), false, 1),
                buf(Src::Node(0), true, 1),
            ]),
            launch(vec![
                buf(Src::Node(0), false, 1),
                buf(Src::Output(0), true, 1),
            ]),
        ];
        assert_eq!(order(&ok), Ok(()));
        let early = [
            launch(vec![
                buf(Src::Node(0), false, 1),
                buf(Src::Output(0), true, 1),
            ]),
            launch(vec![
                buf(Src::Input(0), false, 1),
                buf(Src::Node(0), true, 1),
            ]),
        ];
        let e = order(&early).unwrap_err();
        assert!(e.contains("event 1.") && e.contains("Node(0)"), "{e}");
        let resized = [
            launch(vec![
                buf(Src::Input(0), false, 1),
                buf(Src::Node(0), true, 1),
            ]),
            launch(vec![
                buf(Src::Node(0), false, 3),
                buf(Src::Output(0), true, 1),
            ]),
        ];
        let e = order(&resized).unwrap_err();
        assert!(e.contains("event 2.") && e.contains("Node(0)"), "{e}");
        // A repeated block may read what came before it, but not what nothing wrote.
        let carried = [
            launch(vec![
                buf(Src::Input(0), false, 1),
                buf(Src::Slot(0), true, 1),
            ]),
            Event::Repeat {
                count: 3,
                body: vec![
                    launch(vec![
                        buf(Src::Slot(0), false, 1),
                        buf(Src::Node(1), true, 1),
                    ]),
                    launch(vec![
                        buf(Src::Node(1), false, 1),
                        buf(Src::Slot(0), true, 1),
                    ]),
                ],
            },
        ];
        assert!(order(&carried).is_ok());
        let unwritten = [Event::Repeat {
            count: 3,
            body: vec![launch(vec![
                buf(Src::Node(7), false, 1),
                buf(Src::Output(0), true, 1),
            ])],
        }];
        assert!(order(&unwritten).unwrap_err().contains("Node(7)"));
    }
}
