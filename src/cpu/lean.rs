//! Calls at kernel speed: a sampler step (or final map), an entry, or a whole run, each run
//! from its call sequence on the caller's arrays.
//!
//! `cpu::sample` and `cpu::run` drive the kernels from the interpreter, which owns every value:
//! inputs are copied in, each launch allocates its outputs through the interpreter's values, and
//! results are copied on their way out. The runners here run the same calls from their call
//! sequences instead — the sequences the C library replays (`plan::Event`), found by running the
//! interpreter on zero samples (`plan::trace`) — with the JIT's kernels:
//! - the caller's arrays (state fields, entry inputs, network outputs, the previous step's
//!   history) are read where they lie, never copied;
//! - each buffer a kernel writes is allocated once per call (or taken from arrays handed back
//!   to the runner's `Pool`), and results are handed to the caller as the kernels left them;
//! - the host values (coefficients, times, values the sampler computes once per step) come from
//!   the interpreter's own host code, on zero samples, once per grid point or scalar inputs and
//!   params (cached);
//! - a whole run (`StepRunner::sample`) calls a `plan::NetFn` for its network, handing it the run's
//!   own buffers (which it may keep) and reading its outputs where they lie;
//! - node masks get a unit of their own per set of masks, compiled on first use.
//!
//! Results equal the interpreter-driven backend's bit for bit (`tests/lean.rs`), errors
//! included: the same checks run on the same inputs, with the same messages. Supplied draws are
//! the interpreter's business (`cpu::sample`, `cpu::run`); a call that supplies them is refused
//! here with a message saying so.

use super::{launch, Args, Compiled, Options};
use crate::entries::{EntryKind, Extent};
use crate::interp::{self, Call, Data, SampleCall, Tensor};
use crate::kernel::{Store, FAIL_CLASS, FAIL_INDEX, FAIL_NONFINITE};
use crate::plan::net::{check_count, check_finite, check_len, check_returned, first_nonfinite};
use crate::plan::runs::{known_sizes, mirror, phase_call, trace_key, TraceCache, Traced};
use crate::plan::{
    self, Buf, CopyWhy, NetArray, NetFn, NetInput, NetValues, Runs, Src, Unit, Word,
};
use crate::typed::{Elem, Process};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// An array the caller lends for the length of a call: its shape (batch first) and elements in
/// C order. Reals are `f32`, classes `u32`, bools one byte each (0 or 1).
#[derive(Clone, Copy, Debug)]
pub struct Lent<'a> {
    pub shape: &'a [usize],
    pub data: LentData<'a>,
}

#[derive(Clone, Copy, Debug)]
pub enum LentData<'a> {
    F32(&'a [f32]),
    U32(&'a [u32]),
    U8(&'a [u8]),
}

/// What a step reads besides its host values.
#[derive(Clone, Debug, Default)]
pub struct StepInputs<'a> {
    /// State fields by name (conditioning fields included).
    pub state: HashMap<String, Lent<'a>>,
    /// Network outputs by `NET.FIELD` (every call) or `NET.FIELD#i` (the step's i-th call).
    pub net: HashMap<String, Lent<'a>>,
    /// The previous step's kept values by name (a multistep sampler's history).
    pub prev: HashMap<String, Lent<'a>>,
    /// An entry's array inputs by port name (`EntryRunner`).
    pub ports: HashMap<String, Lent<'a>>,
    /// State fields (also in `state`) that the caller holds shared: a network callable is
    /// handed these instead of a copy.
    pub shared: HashMap<String, NetValues>,
}

/// A network input's values as a lent array.
trait Held {
    /// The values held (none for `Given`, whose values are the caller's).
    fn data(&self) -> LentData<'_>;
}

impl Held for NetValues {
    fn data(&self) -> LentData<'_> {
        match self {
            NetValues::Reals(v) => LentData::F32(v),
            NetValues::Classes(v) => LentData::U32(v),
            NetValues::Bools(v) => LentData::U8(v),
            NetValues::Given(_) => LentData::U8(&[]),
        }
    }
}

/// Real arrays a runner's callers handed back (`Pool::recycle`), for its next calls to write
/// into.
#[derive(Debug, Default)]
pub struct Pool(Mutex<Vec<Vec<f32>>>);

impl Pool {
    /// Give back a real array the runner returned, once its owner is done with it: a later
    /// call writes its results there instead of into fresh memory, which the system would
    /// have to fault in and zero (at 16M elements, a third of a DDPM step's time). A loop
    /// `x = step(x)` then runs on two arrays. Whatever `v` holds is overwritten.
    pub fn recycle(&self, v: Vec<f32>) {
        if v.len() < POOL_MIN {
            return;
        }
        if let Ok(mut pool) = self.0.lock() {
            if pool.len() < POOL {
                pool.push(v);
            }
        }
    }

    /// An array of length `n` handed back earlier, if the pool holds one (not cleared).
    fn take(&self, n: usize) -> Option<Vec<f32>> {
        if n < POOL_MIN {
            return None;
        }
        let mut pool = self.0.lock().ok()?;
        let i = pool.iter().position(|v| v.len() == n)?;
        Some(pool.swap_remove(i))
    }
}

/// Addresses of the caller's arrays the last call read where they lie, by name (a check that
/// nothing was copied on the way in).
type Reads = Mutex<Vec<(String, usize)>>;

/// A unit planned and compiled for one set of node masks, with its traces.
struct Prepared {
    unit: Unit,
    compiled: Compiled,
    /// Call sequences and rows by the host side of a call (grid point or scalar inputs, params).
    traces: TraceCache,
}

/// A runner's units by the node masks a call gives (`Process::masks` indices; none first).
struct Variants {
    plain: Arc<Prepared>,
    masked: Mutex<HashMap<Vec<u32>, Arc<Prepared>>>,
}

impl Variants {
    fn new(unit: Unit) -> Result<Variants, String> {
        let compiled = super::compile(unit.plan.clone())?;
        Ok(Variants {
            plain: Arc::new(Prepared {
                unit,
                compiled,
                traces: TraceCache::default(),
            }),
            masked: Mutex::default(),
        })
    }

    /// The unit for the masks of `masks`, planned and compiled on first use by `plan`.
    fn get(
        &self,
        p: &Process,
        masks: &HashMap<String, Tensor>,
        plan: impl FnOnce(&crate::kernel::build::Variant) -> Result<Unit, String>,
    ) -> Result<Arc<Prepared>, String> {
        if masks.is_empty() {
            return Ok(self.plain.clone());
        }
        let v = plan::mask_variant(p, masks);
        let key: Vec<u32> = v.masks.iter().copied().collect();
        let mut cache = self.masked.lock().map_err(|_| "a poisoned lock")?;
        if let Some(u) = cache.get(&key) {
            return Ok(u.clone());
        }
        let unit = plan(&v)?;
        let compiled = super::compile(unit.plan.clone())?;
        let u = Arc::new(Prepared {
            unit,
            compiled,
            traces: TraceCache::default(),
        });
        cache.insert(key, u.clone());
        Ok(u)
    }
}

/// A call's node masks as the bytes a kernel reads, by `Process::masks` index.
fn mask_bytes(p: &Process, masks: &HashMap<String, Tensor>) -> HashMap<u32, Vec<u8>> {
    p.masks
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match masks.get(&m.name).map(|t| &t.data) {
            Some(Data::Bool(v)) => Some((i as u32, v.iter().map(|b| u8::from(*b)).collect())),
            _ => None,
        })
        .collect()
}

/// A sampler's step, compiled once (per set of node masks), run on any state.
pub struct StepRunner {
    name: String,
    units: Variants,
    pool: Arc<Pool>,
    reads: Reads,
    /// The prior entries a whole run starts from, compiled on first use.
    priors: Mutex<HashMap<String, Arc<EntryRunner>>>,
    opts: Options,
}

/// Arrays the pool keeps at most, and the least length worth keeping.
const POOL: usize = 4;
const POOL_MIN: usize = 1 << 16;

impl StepRunner {
    /// Plan and compile `sampler` of `p` (as `cpu::sample` compiles it without supplied draws;
    /// a call with node masks compiles its own variant on first use).
    pub fn new(p: &Process, sampler: &str) -> Result<StepRunner, String> {
        Ok(StepRunner {
            name: sampler.to_string(),
            units: Variants::new(plan::sampler_unit(p, sampler)?)?,
            pool: Arc::default(),
            reads: Mutex::default(),
            priors: Mutex::default(),
            opts: Options::default(),
        })
    }

    /// A whole run, as `cpu::sample` runs it with the same call, bit for bit: the sampler's
    /// `init` block, or each field the caller does not give from its prior; then every step of
    /// the grid and the final map, all from their call sequences, calling `net` for the
    /// network. The caller's `state` is read where it lies (and wins over the `init` block's);
    /// each step's state and history are the arrays the kernels wrote, and the previous step's
    /// go back to the pool. Supplied draws take the interpreter's path (`cpu::sample`).
    pub fn sample(
        &self,
        p: &Process,
        call: &SampleCall,
        state: &HashMap<String, Lent>,
        net: &mut dyn NetFn,
    ) -> Result<HashMap<String, Tensor>, String> {
        let sp = self
            .units
            .plain
            .unit
            .sampler()
            .ok_or("internal error: a step runner without a sampler")?;
        if !call.draws.is_empty() {
            return Err("supplied draws take the interpreter's path (`cpu::sample`)".into());
        }
        if call.single_step.is_some() || call.finalize_only || call.stop_after.is_some() {
            return Err("a whole run: use `step` for one step or the final map".into());
        }
        if !call.state.is_empty() {
            return Err("internal error: a whole run's state is lent, not in the call".into());
        }
        let grid = match &call.grid {
            Some(g) => g.clone(),
            None => interp::sampler_grid(p, &self.name, &call.params)?,
        };
        if grid.len() < 2 {
            return Err("a grid needs at least two times".into());
        }
        let n = grid.len() - 1;
        let mut sizes = call.sizes.clone();
        let mut names: Vec<&String> = state.keys().collect();
        names.sort();
        for name in names {
            interp::state_sizes(p, name, state[name].shape, call.batch, &mut sizes)?;
        }
        for f in &sp.conditions {
            let name = &p.fields[*f as usize].name;
            if !state.contains_key(name) {
                return Err(format!(
                    "sampler `{}` reads `{name}`: give its value",
                    sp.name
                ));
            }
        }
        // The start: each field not given, from its prior (drawing as `interp::sample` does).
        // The run's own state, shareable with the network without a copy.
        let mut owned: HashMap<String, (Vec<usize>, NetValues)> = HashMap::new();
        let mut seen: Vec<(String, usize)> = Vec::new();
        if !sp.init.is_empty() {
            // The `init` block, from its call sequence; given starting values win over its own.
            let c = phase_call(call, &sizes, &grid, None);
            let inputs = StepInputs {
                state: state.clone(),
                ..StepInputs::default()
            };
            let out = self.step_with(p, &c, &inputs, Some(&mut *net))?;
            drop(inputs);
            seen.extend(self.last_reads());
            for (name, t) in out {
                if !state.contains_key(&name) {
                    owned.insert(name, shared_of(t));
                }
            }
        }
        for (i, k) in p.priors.iter().enumerate() {
            if !sp.init.is_empty() {
                break;
            }
            let name = &p.fields[k.target.field.index()].name;
            if state.contains_key(name) {
                continue;
            }
            let entry = if p.priors.len() == 1 {
                "prior".to_string()
            } else {
                format!("prior.{name}")
            };
            let runner = self.prior(p, &entry)?;
            let c = Call {
                seed: call.seed,
                step: u32::MAX - 1 - i as u32,
                batch: call.batch,
                sizes: sizes.clone(),
                params: call.process_params.clone(),
                ..Call::default()
            };
            let mut out = runner.run(p, &c, &HashMap::new())?;
            owned.insert(name.clone(), shared_of(out.swap_remove(0)));
        }
        let mut prev: HashMap<String, Tensor> = HashMap::new();
        for k in 0..=n {
            let last = k == n;
            let c = phase_call(call, &sizes, &grid, Some(k));
            let mut inputs = StepInputs::default();
            for (name, a) in state {
                if !owned.contains_key(name) {
                    inputs.state.insert(name.clone(), *a);
                }
            }
            for (name, (shape, v)) in &owned {
                inputs.state.insert(
                    name.clone(),
                    Lent {
                        shape,
                        data: v.data(),
                    },
                );
                inputs.shared.insert(name.clone(), v.clone());
            }
            if !last {
                for (name, t) in &prev {
                    inputs.prev.insert(name.clone(), lent_tensor(t, None));
                }
            }
            let out = self.step_with(p, &c, &inputs, Some(&mut *net))?;
            drop(inputs);
            seen.extend(self.last_reads());
            for (_, t) in prev.drain() {
                if let Data::F32(v) = t.data {
                    self.recycle(v);
                }
            }
            for (name, t) in out {
                match name.strip_prefix("prev.") {
                    Some(h) => {
                        prev.insert(h.to_string(), t);
                    }
                    None => {
                        // The state a step replaced serves a later step, unless the network
                        // kept it.
                        if let Some((_, NetValues::Reals(a))) = owned.insert(name, shared_of(t)) {
                            if let Ok(v) = Arc::try_unwrap(a) {
                                self.recycle(v);
                            }
                        }
                    }
                }
            }
        }
        if let Ok(mut r) = self.reads.lock() {
            *r = seen;
        }
        Ok(owned
            .into_iter()
            .map(|(name, (shape, v))| (name, tensor(shape, Out::Shared(v))))
            .collect())
    }

    /// The runner of a prior entry, compiled on first use.
    fn prior(&self, p: &Process, entry: &str) -> Result<Arc<EntryRunner>, String> {
        let mut priors = self.priors.lock().map_err(|_| "a poisoned lock")?;
        if let Some(r) = priors.get(entry) {
            return Ok(r.clone());
        }
        let r = Arc::new(EntryRunner::new(p, entry)?);
        priors.insert(entry.to_string(), r.clone());
        Ok(r)
    }

    /// Give back a real array this runner returned (`Pool::recycle`).
    pub fn recycle(&self, v: Vec<f32>) {
        self.pool.recycle(v);
    }

    /// The arrays this runner's results may be handed back to.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// The caller's arrays the last call read in place, by name, with their addresses.
    pub fn last_reads(&self) -> Vec<(String, usize)> {
        self.reads.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The step `call` asks for (`single_step`, or `finalize_only`), with its grid (`[t, s]`),
    /// seed, batch and params, on `inputs`. Returns the fields the step wrote and, for a step,
    /// `prev.NAME` for each value the next step reads with `prev` — the same names and values
    /// as `interp::sample` returns for the same call. Fields the step leaves alone are not
    /// returned.
    pub fn step(
        &self,
        p: &Process,
        call: &SampleCall,
        inputs: &StepInputs,
    ) -> Result<HashMap<String, Tensor>, String> {
        self.step_with(p, call, inputs, None)
    }

    /// `step`, calling `net` for the network outputs `inputs.net` does not hold (a step driven
    /// by a network callable): `net` gets the step's own buffers, and what it returns is read
    /// where it lies.
    pub fn step_net(
        &self,
        p: &Process,
        call: &SampleCall,
        inputs: &StepInputs,
        net: &mut dyn NetFn,
    ) -> Result<HashMap<String, Tensor>, String> {
        self.step_with(p, call, inputs, Some(net))
    }

    /// `step`, calling `net_fn` for the network outputs `inputs.net` does not hold.
    fn step_with(
        &self,
        p: &Process,
        call: &SampleCall,
        inputs: &StepInputs,
        net_fn: Option<&mut dyn NetFn>,
    ) -> Result<HashMap<String, Tensor>, String> {
        if !call.draws.is_empty() {
            return Err("supplied draws take the interpreter's path (`cpu::sample`)".into());
        }
        let prep = self
            .units
            .get(p, &call.masks, |v| plan::sampler_unit_for(p, &self.name, v))?;
        let sp = prep
            .unit
            .sampler()
            .ok_or("internal error: a step runner without a sampler")?;
        let sizes = self.check_state(p, &prep.unit, call, inputs)?;
        let traced = Self::traced(&prep, p, call)?;
        known_sizes(p, &prep.unit, &traced.0, &sizes)?;
        let grid = call.grid.as_deref().unwrap_or(&[]);
        let masks = mask_bytes(p, &call.masks);
        let mut x = Exec {
            p,
            unit: &prep.unit,
            compiled: &prep.compiled,
            masks: &masks,
            opts: self.opts,
            inputs,
            dims: p
                .dims
                .iter()
                .map(|d| sizes.get(&d.name).copied().unwrap_or(1) as u64)
                .collect(),
            batch: call.batch as u64,
            seed: call.seed,
            k: call.single_step.as_ref().map_or(0, |o| o.k) as u64,
            row: &traced.1,
            pool: &self.pool,
            cur: HashMap::new(),
            calls: 0,
            offset: 0,
            word_or: 0,
            range: (0, call.batch as u64),
            written: HashSet::new(),
            spread: false,
            seen: Vec::new(),
            net_fn,
            t: grid.first().copied().unwrap_or(0.0),
            s: (!call.finalize_only && call.stop_after.is_none())
                .then(|| grid.get(1).copied().unwrap_or(0.0)),
        };
        x.run(&traced.0)?;
        if let Ok(mut r) = self.reads.lock() {
            *r = std::mem::take(&mut x.seen);
        }
        let mut out = HashMap::new();
        for (i, f) in p.fields.iter().enumerate() {
            if let Some(Val::Own(o, b)) = x.cur.remove(&Src::Field(i as u32)) {
                let shape = x.shape(&b);
                out.insert(f.name.clone(), tensor(shape, o));
            }
        }
        for (slot, name) in sp.history.iter().zip(&sp.history_names) {
            match x.cur.remove(&Src::Prev(*slot)) {
                Some(Val::Own(o, b)) => {
                    let shape = x.shape(&b);
                    out.insert(format!("prev.{name}"), tensor(shape, o));
                }
                Some(Val::Lent(..)) | None => {}
            }
        }
        // Scratch the step no longer needs serves the next call.
        for (_, v) in x.cur.drain() {
            if let Val::Own(o, _) = v {
                if let Some(v) = o.into_reals() {
                    self.recycle(v);
                }
            }
        }
        Ok(out)
    }

    /// Check the state as `interp::sample` does (batch, sizes, values) and return the sizes.
    fn check_state(
        &self,
        p: &Process,
        unit: &Unit,
        call: &SampleCall,
        inputs: &StepInputs,
    ) -> Result<HashMap<String, usize>, String> {
        let mut sizes = call.sizes.clone();
        let mut names: Vec<&String> = inputs.state.keys().collect();
        names.sort();
        for name in names {
            let a = &inputs.state[name];
            let f = interp::state_sizes(p, name, a.shape, call.batch, &mut sizes)?;
            check_values(name, a, f.elem, self.opts.threads)?;
            if f.shape.sym {
                check_sym_lent(name, a)?;
            }
        }
        interp::check_call_size(p, &unit.prog, call.batch, &sizes)?;
        interp::check_masks(p, &call.masks, call.batch, &sizes)?;
        Ok(sizes)
    }

    /// The call sequence and row of `call`'s host side, traced on first use.
    fn traced(prep: &Prepared, p: &Process, call: &SampleCall) -> Result<Arc<Traced>, String> {
        prep.traces.get(trace_key(call), || {
            plan::trace_single(p, std::slice::from_ref(&prep.unit), 0, call)
        })
    }
}

/// [`interp::check_sym`] on a lent array.
fn check_sym_lent(name: &str, a: &Lent) -> Result<(), String> {
    match a.data {
        LentData::F32(v) => interp::check_sym(name, a.shape, v),
        LentData::U32(v) => interp::check_sym(name, a.shape, v),
        LentData::U8(v) => interp::check_sym(name, a.shape, v),
    }
}

/// Check a lent array's values as the interpreter checks an input's (finite reals, classes in
/// range, the element type), and its length against its shape.
fn check_values(name: &str, a: &Lent, elem: Elem, threads: usize) -> Result<(), String> {
    let len = crate::limits::product(&a.shape.iter().map(|n| (name, *n)).collect::<Vec<_>>())?;
    let ok = match (a.data, elem) {
        (LentData::F32(v), Elem::Real | Elem::Vec(_)) => {
            if let Some(i) = first_nonfinite(v, threads) {
                return Err(interp::nonfinite_input(name, v, i));
            }
            v.len() == len
        }
        (LentData::U32(v), Elem::Cat(k)) => {
            interp::check_classes(v, k, name)?;
            v.len() == len
        }
        (LentData::U8(v), Elem::Bool) => v.len() == len,
        _ => return Err(interp::wrong_elem(name, elem)),
    };
    if !ok {
        return Err(format!(
            "`{name}` holds {} values for its shape {:?}",
            lent_len(a.data),
            a.shape
        ));
    }
    Ok(())
}

/// An entry point (`forward`, `loss.NAME`, `net_inputs.NET`, `sample_t`, …), compiled once,
/// run on the caller's arrays: its inputs are read where they lie, its outputs written once
/// and handed over. A call with one time per sample runs each run of equal times over its
/// samples' part of the same arrays, as `interp::run` splits it.
pub struct EntryRunner {
    entry: crate::entries::Entry,
    units: Variants,
    pool: Arc<Pool>,
    reads: Reads,
    opts: Options,
}

impl EntryRunner {
    /// Plan and compile entry `name` of `p` (as `cpu::run` compiles it without supplied draws;
    /// a call with node masks compiles its own variant on first use).
    pub fn new(p: &Process, name: &str) -> Result<EntryRunner, String> {
        let e = crate::entries::entries(p)
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| format!("`{}` has no entry point `{name}`", p.name))?;
        if matches!(e.kind, EntryKind::Step | EntryKind::Finalize) {
            return Err(format!(
                "`{name}` is a sampler's: run it with a `StepRunner`"
            ));
        }
        let units = Variants::new(plan::entry_unit(p, e.clone(), &Default::default())?)?;
        Ok(EntryRunner {
            entry: e,
            units,
            pool: Arc::default(),
            reads: Mutex::default(),
            opts: Options::default(),
        })
    }

    /// The arrays this runner's results may be handed back to.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// The caller's arrays the last call read in place, by name, with their addresses.
    pub fn last_reads(&self) -> Vec<(String, usize)> {
        self.reads.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Run the entry for `call` — its seed, step, batch, sizes, params and scalar inputs (the
    /// time as one number or as one per sample; `call.inputs` holds nothing else) — on
    /// `arrays`, its array inputs by port name. Returns the outputs in the entry's order, equal
    /// bit for bit to `interp::run`'s for the same inputs, errors included.
    pub fn run(
        &self,
        p: &Process,
        call: &Call,
        arrays: &HashMap<String, Lent>,
    ) -> Result<Vec<Tensor>, String> {
        if !call.draws.is_empty() {
            return Err("supplied draws take the interpreter's path (`cpu::run`)".into());
        }
        let prep = self.units.get(p, &call.masks, |v| {
            plan::entry_unit(p, self.entry.clone(), v)
        })?;
        let prog = &prep.unit.prog;
        let batch = call.batch;
        let tname = p.time.name.as_str();
        // One time per sample: runs of equal times, checked as the interpreter checks them.
        let per_sample = call.inputs.get(tname).filter(|t| !t.shape.is_empty());
        let mut runs: Vec<(usize, usize, Option<f32>)> = Vec::new();
        if let Some(t) = per_sample {
            let Data::F32(times) = &t.data else {
                return Err(format!("`{tname}` must hold reals"));
            };
            if t.shape.len() != 1 || t.shape[0] != batch {
                return Err(format!(
                    "`{tname}` has shape {:?}: give one time, or one per sample (shape [{batch}])",
                    t.shape
                ));
            }
            for v in times {
                interp::check_entry_time(p, prog.kind, tname, *v)?;
            }
            for (b, v) in times.iter().enumerate() {
                match runs.last_mut() {
                    Some((_, end, Some(w))) if w.to_bits() == v.to_bits() => *end = b + 1,
                    _ => runs.push((b, b + 1, Some(*v))),
                }
            }
            if runs.is_empty() {
                runs.push((0, 0, Some(p.time.lo as f32)));
            }
        } else {
            runs.push((0, batch, None));
        }
        for port in &prog.inputs {
            if matches!(port.extent, Extent::Scalar)
                && port.name != "seed"
                && !call.inputs.contains_key(&port.name)
            {
                return Err(format!("missing input `{}`", port.name));
            }
        }
        let mut sizes = call.sizes.clone();
        for port in &prog.inputs {
            if matches!(port.extent, Extent::Scalar) {
                continue;
            }
            let a = arrays
                .get(&port.name)
                .ok_or_else(|| format!("missing input `{}`", port.name))?;
            if let Extent::Sample = port.extent {
                let mut want = vec![batch];
                if let Elem::Vec(k) = port.elem {
                    want.push(k as usize);
                }
                if a.shape != want.as_slice() {
                    return Err(format!(
                        "input `{}` has shape {:?}, expected {want:?}",
                        port.name, a.shape
                    ));
                }
            } else {
                interp::port_sizes(p, port, a.shape, batch, &mut sizes)?;
            }
            check_values(&port.name, a, port.elem, self.opts.threads)?;
            if interp::held_symmetric(p, port) {
                check_sym_lent(&port.name, a)?;
            }
        }
        for name in arrays.keys() {
            if !prog.inputs.iter().any(|x| &x.name == name) {
                return Err(format!("`{}` has no input `{name}`", prog.name));
            }
        }
        interp::check_call_size(p, prog, batch, &sizes)?;
        interp::check_masks(p, &call.masks, batch, &sizes)?;
        for name in [tname, "s"] {
            if per_sample.is_some() && name == tname {
                continue;
            }
            if let Some(t) = call.inputs.get(name) {
                match (&t.data, t.len()) {
                    (Data::F32(v), 1) => {
                        interp::check_entry_time(p, prog.kind, name, v[0])?;
                    }
                    _ => return Err(format!("`{name}` must be one number")),
                }
            }
        }
        interp::process_param_values(p, &call.params)?;
        // The host side of each run, then the runs over the caller's arrays.
        let mut traced = Vec::with_capacity(runs.len());
        for (_, _, tv) in &runs {
            let mut c = Call {
                params: call.params.clone(),
                masks: call.masks.clone(),
                ..Call::default()
            };
            for port in &prog.inputs {
                if !matches!(port.extent, Extent::Scalar) || port.name == "seed" {
                    continue;
                }
                let v = match (port.name == tname, tv) {
                    (true, Some(v)) => Tensor::scalar(*v),
                    _ => call.inputs[&port.name].clone(),
                };
                c.inputs.insert(port.name.clone(), v);
            }
            let tr = Self::traced(&prep, p, &c)?;
            known_sizes(p, &prep.unit, &tr.0, &sizes)?;
            traced.push(tr);
        }
        let inputs = StepInputs {
            ports: arrays.clone(),
            ..StepInputs::default()
        };
        let scalar = |name: &str| {
            call.inputs
                .get(name)
                .and_then(|t| t.f32s())
                .and_then(|v| v.first())
                .map(|v| *v as f64)
        };
        let masks = mask_bytes(p, &call.masks);
        let mut x = Exec {
            p,
            unit: &prep.unit,
            compiled: &prep.compiled,
            masks: &masks,
            opts: self.opts,
            inputs: &inputs,
            dims: p
                .dims
                .iter()
                .map(|d| sizes.get(&d.name).copied().unwrap_or(1) as u64)
                .collect(),
            batch: batch as u64,
            seed: call.seed,
            k: 0,
            row: &[],
            pool: &self.pool,
            cur: HashMap::new(),
            calls: 0,
            offset: 0,
            word_or: call.step as u64,
            range: (0, 0),
            written: HashSet::new(),
            spread: per_sample.is_some(),
            seen: Vec::new(),
            net_fn: None,
            t: scalar(tname).unwrap_or(f64::NAN),
            s: scalar("s"),
        };
        for ((a, e, tv), tr) in runs.iter().zip(&traced) {
            x.row = &tr.1;
            x.range = (*a as u64, *e as u64);
            x.written.clear();
            if let Some(v) = tv {
                x.t = *v as f64;
            }
            x.run(&tr.0)?;
            // The interpreter refuses a NaN result of each run.
            for (i, port) in prog.outputs.iter().enumerate() {
                if let Some(Val::Own(Out::F32(v), b)) = x.cur.get(&Src::Output(i as u32)) {
                    let part = x.part(b);
                    crate::interp::check_output(prog.kind, &port.name, &v[part.clone()])?;
                }
            }
        }
        if let Ok(mut r) = self.reads.lock() {
            *r = std::mem::take(&mut x.seen);
        }
        let mut out = Vec::with_capacity(prog.outputs.len());
        for (i, port) in prog.outputs.iter().enumerate() {
            match x.cur.remove(&Src::Output(i as u32)) {
                Some(Val::Own(o, b)) => out.push(tensor(x.shape(&b), o)),
                _ => {
                    return Err(format!(
                        "internal error: `{}` wrote no output `{}`",
                        prog.name, port.name
                    ))
                }
            }
        }
        for (_, v) in x.cur.drain() {
            if let Val::Own(o, _) = v {
                if let Some(v) = o.into_reals() {
                    self.pool.recycle(v);
                }
            }
        }
        Ok(out)
    }

    /// The call sequence and row of `call`'s host side, traced on first use.
    fn traced(prep: &Prepared, p: &Process, call: &Call) -> Result<Arc<Traced>, String> {
        let mut scalars: Vec<(&String, Vec<u32>)> = call
            .inputs
            .iter()
            .map(|(k, v)| {
                (
                    k,
                    v.f32s()
                        .unwrap_or(&[])
                        .iter()
                        .map(|x| x.to_bits())
                        .collect(),
                )
            })
            .collect();
        scalars.sort();
        let mut params: Vec<_> = call.params.iter().collect();
        params.sort_by(|a, b| a.0.cmp(b.0));
        let key = format!("{:?}", (scalars, params));
        prep.traces.get(key, || {
            plan::trace_entry_at(p, std::slice::from_ref(&prep.unit), 0, call)
        })
    }
}

/// A buffer's values: written by this call, or lent by the caller.
enum Val<'a> {
    Own(Out, Buf),
    Lent(LentData<'a>),
}

/// An array a kernel or copy of this call wrote, or a network's output.
enum Out {
    F32(Vec<f32>),
    U32(Vec<u32>),
    U8(Vec<u8>),
    /// Values also lent to a network callable (which may keep them): read-only from then on.
    Shared(NetValues),
    /// A network callable's output, read where it lies.
    Net(Box<dyn NetArray>),
}

impl Out {
    fn zeroed(store: Store, n: usize) -> Out {
        match store {
            Store::F32 => Out::F32(vec![0.0; n]),
            Store::U32 => Out::U32(vec![0; n]),
            Store::U8 => Out::U8(vec![0; n]),
        }
    }
    /// Where a kernel writes it (only arrays this call allocated are written: `Exec::target`).
    fn ptr(&mut self) -> *mut u8 {
        match self {
            Out::F32(v) => v.as_mut_ptr() as *mut u8,
            Out::U32(v) => v.as_mut_ptr() as *mut u8,
            Out::U8(v) => v.as_mut_ptr(),
            Out::Shared(_) | Out::Net(_) => std::ptr::null_mut(),
        }
    }
    fn writable(&self) -> bool {
        matches!(self, Out::F32(_) | Out::U32(_) | Out::U8(_))
    }
    fn data(&self) -> LentData<'_> {
        match self {
            Out::F32(v) => LentData::F32(v),
            Out::U32(v) => LentData::U32(v),
            Out::U8(v) => LentData::U8(v),
            Out::Shared(v) => v.data(),
            Out::Net(a) => LentData::F32(a.values()),
        }
    }
    /// The reals, for the pool (only when nothing else holds them).
    fn into_reals(self) -> Option<Vec<f32>> {
        match self {
            Out::F32(v) => Some(v),
            Out::Shared(NetValues::Reals(a)) => Arc::try_unwrap(a).ok(),
            _ => None,
        }
    }
}

fn tensor(shape: Vec<usize>, o: Out) -> Tensor {
    Tensor {
        shape,
        data: match o {
            Out::F32(v) => Data::F32(v),
            Out::U32(v) => Data::Class(v),
            Out::U8(v) => Data::Bool(v.into_iter().map(|b| b != 0).collect()),
            Out::Shared(NetValues::Reals(a)) => {
                Data::F32(Arc::try_unwrap(a).unwrap_or_else(|a| a.to_vec()))
            }
            Out::Shared(NetValues::Classes(a)) => {
                Data::Class(Arc::try_unwrap(a).unwrap_or_else(|a| a.to_vec()))
            }
            Out::Shared(NetValues::Bools(a)) => Data::Bool(a.iter().map(|b| *b != 0).collect()),
            Out::Shared(NetValues::Given(name)) => {
                unreachable!("`{name}` is the caller's array, never held as the run's own")
            }
            Out::Net(a) => Data::F32(a.values().to_vec()),
        },
    }
}

/// A tensor's values in the form a run shares with a network (bools as bytes).
fn shared_of(t: Tensor) -> (Vec<usize>, NetValues) {
    let v = match t.data {
        Data::F32(v) => NetValues::Reals(Arc::new(v)),
        Data::Class(v) => NetValues::Classes(Arc::new(v)),
        Data::Bool(v) => NetValues::Bools(Arc::new(v.into_iter().map(u8::from).collect())),
    };
    (t.shape, v)
}

/// A tensor as a lent array (`bytes`: a bool tensor's values as bytes).
fn lent_tensor<'a>(t: &'a Tensor, bytes: Option<&'a [u8]>) -> Lent<'a> {
    Lent {
        shape: &t.shape,
        data: match &t.data {
            Data::F32(v) => LentData::F32(v),
            Data::Class(v) => LentData::U32(v),
            Data::Bool(_) => LentData::U8(bytes.unwrap_or(&[])),
        },
    }
}

fn lent_len(d: LentData) -> usize {
    match d {
        LentData::F32(v) => v.len(),
        LentData::U32(v) => v.len(),
        LentData::U8(v) => v.len(),
    }
}

fn lent_ptr(d: LentData) -> *const u8 {
    match d {
        LentData::F32(v) => v.as_ptr() as *const u8,
        LentData::U32(v) => v.as_ptr() as *const u8,
        LentData::U8(v) => v.as_ptr(),
    }
}

fn lent_store(d: LentData) -> Store {
    match d {
        LentData::F32(_) => Store::F32,
        LentData::U32(_) => Store::U32,
        LentData::U8(_) => Store::U8,
    }
}

/// One call's run of a sequence.
struct Exec<'a, 'r, 'n> {
    p: &'r Process,
    unit: &'r Unit,
    compiled: &'r Compiled,
    /// The call's node masks as bytes, by `Process::masks` index.
    masks: &'r HashMap<u32, Vec<u8>>,
    opts: Options,
    inputs: &'r StepInputs<'a>,
    /// Each process dimension's size (every one the sequence uses is known: `known_sizes`).
    dims: Vec<u64>,
    batch: u64,
    seed: u64,
    k: u64,
    row: &'r [f32],
    pool: &'r Pool,
    cur: HashMap<Src, Val<'a>>,
    /// Network calls made so far (the `#i` of a supplied output).
    calls: usize,
    /// Added to every launch's index offset (the run of an inner loop).
    offset: u64,
    /// Or-ed into a fixed step word (an entry's call step).
    word_or: u64,
    /// The samples this run computes (`a..e`); every batch-major buffer spans the whole batch.
    range: (u64, u64),
    /// Buffers this run wrote; one written by an earlier run of the call is written again in
    /// place (its other samples are that run's).
    written: HashSet<Src>,
    /// One time per sample: an output the same for a whole run gains a batch axis.
    spread: bool,
    /// The caller's arrays read in place, with their addresses.
    seen: Vec<(String, usize)>,
    /// The network, when the run calls it itself (else its outputs are in `inputs.net`).
    net_fn: Option<&'n mut dyn NetFn>,
    t: f64,
    s: Option<f64>,
}

impl<'a> Exec<'a, '_, '_> {
    /// An array for `n` values that a kernel or copy then writes in full: one from the pool
    /// when it holds one of that length (not cleared), else fresh zeroed memory.
    fn alloc(&self, store: Store, n: usize) -> Out {
        if store == Store::F32 {
            if let Some(v) = self.pool.take(n) {
                return Out::F32(v);
            }
        }
        Out::zeroed(store, n)
    }

    /// The array `b` is written into: the one an earlier run of this call wrote (its samples
    /// stay), else a fresh one.
    fn target(&mut self, b: &Buf) -> Out {
        let n = self.count(b);
        if self.range.0 > 0 && !self.written.contains(&b.src) {
            if let Some(Val::Own(o, _)) = self.cur.remove(&b.src) {
                if o.writable() && lent_len(o.data()) == n && lent_store(o.data()) == b.store {
                    self.written.insert(b.src.clone());
                    return o;
                }
            }
        }
        self.written.insert(b.src.clone());
        self.alloc(b.store, n)
    }

    /// Whether `b` holds one value set per sample.
    fn batched(&self, b: &Buf) -> bool {
        b.batch || (self.spread && matches!(b.src, Src::Output(_)))
    }

    /// The part of `b` this run writes: its samples, or all of a buffer shared by the batch.
    fn part(&self, b: &Buf) -> std::ops::Range<usize> {
        let n = self.count(b);
        if !self.batched(b) || self.batch == 0 {
            return 0..n;
        }
        let per = n / self.batch as usize;
        (self.range.0 as usize * per)..(self.range.1 as usize * per)
    }

    fn count(&self, b: &Buf) -> usize {
        b.count_in(self.batched(b), self.batch, &self.dims)
    }

    /// The shape of a buffer as an array: batch, its dimensions, its vector width.
    fn shape(&self, b: &Buf) -> Vec<usize> {
        b.shape_in(self.batched(b), self.batch, &self.dims)
    }

    /// The caller's array for `b` (a field or a kept value not yet written by this call).
    fn lent(&self, b: &Buf) -> Result<Option<(String, Lent<'a>)>, String> {
        if let Src::Input(i) = &b.src {
            let name = &self.unit.prog.inputs[*i as usize].name;
            return Ok(self
                .inputs
                .ports
                .get(name)
                .map(|a| (format!("`{name}`"), *a)));
        }
        let sp = self.unit.sampler().ok_or("internal error: no sampler")?;
        Ok(match &b.src {
            Src::Field(f) => {
                let name = &self.p.fields[*f as usize].name;
                self.inputs
                    .state
                    .get(name)
                    .map(|a| (format!("`{name}`"), *a))
            }
            Src::Prev(h) => sp.history.iter().position(|x| x == h).and_then(|i| {
                let name = &sp.history_names[i];
                self.inputs
                    .prev
                    .get(name)
                    .map(|a| (format!("`prev.{name}`"), *a))
            }),
            _ => None,
        })
    }

    /// Where a buffer the sequence reads lies, checked against its length and element type.
    fn read(&mut self, b: &Buf) -> Result<*const u8, String> {
        let n = self.count(b);
        if let Src::Mask(m) = b.src {
            let v = self
                .masks
                .get(&m)
                .ok_or("internal error: a mask went missing")?;
            if v.len() != n {
                return Err(format!(
                    "mask `{}` holds {} values, expected {n}",
                    self.p.masks[m as usize].name,
                    v.len()
                ));
            }
            return Ok(v.as_ptr());
        }
        if let Src::Row(at) = b.src {
            let at = at as usize;
            if at + n > self.row.len() {
                return Err("internal error: a row value outside the row".into());
            }
            return Ok(self.row[at..].as_ptr() as *const u8);
        }
        let (what, data) = match self.cur.get(&b.src) {
            Some(Val::Own(o, _)) => ("a value of this step".to_string(), o.data()),
            Some(Val::Lent(d)) => ("a network output".to_string(), *d),
            None => match self.lent(b)? {
                Some((name, a)) => {
                    let want = self.shape(b);
                    if a.shape != want.as_slice() {
                        return Err(format!("{name} has shape {:?}, expected {want:?}", a.shape));
                    }
                    let at = lent_ptr(a.data) as usize;
                    if !self.seen.iter().any(|(n, p)| *n == name && *p == at) {
                        self.seen.push((name.clone(), at));
                    }
                    (name, a.data)
                }
                None => {
                    return Err(match &b.src {
                        Src::Field(f) => format!(
                            "the step reads `{}`: give its value",
                            self.p.fields[*f as usize].name
                        ),
                        Src::Prev(_) => {
                            "the step reads a value kept from the previous step: give it in `prev`"
                                .to_string()
                        }
                        Src::Input(i) => format!(
                            "missing input `{}`",
                            self.unit.prog.inputs[*i as usize].name
                        ),
                        _ => "internal error: a value is read before it is written".to_string(),
                    })
                }
            },
        };
        if lent_store(data) != b.store || lent_len(data) != n {
            return Err(format!(
                "{what} holds {} values of the wrong kind or number (expected {n})",
                lent_len(data)
            ));
        }
        Ok(lent_ptr(data))
    }

    /// A network's output must be finite, as the interpreter requires of every denoiser.
    fn finite(&self, name: &str, d: LentData) -> Result<(), String> {
        if let LentData::F32(v) = d {
            check_finite(name, v, self.opts.threads, self.t, self.s)?;
        }
        Ok(())
    }

    /// Check a network output's shape and length against its buffer.
    fn net_output(&self, name: &str, shape: &[usize], x: &[f32], b: &Buf) -> Result<(), String> {
        let want = self.shape(b);
        if shape != want.as_slice() {
            return Err(format!("`{name}` has shape {shape:?}, expected {want:?}"));
        }
        check_len(name, x.len(), self.count(b))
    }

    /// A symmetric field's network output: the upper triangle mirrored, the diagonal empty.
    fn mirrored(&self, x: &[f32], d: u32, b: &Buf) -> Vec<f32> {
        let Out::F32(mut y) = self.alloc(Store::F32, x.len()) else {
            unreachable!("reals are allocated as reals")
        };
        mirror(
            x,
            &mut y,
            self.dims[d as usize] as usize,
            b.width as usize,
            self.opts.threads,
        );
        y
    }

    /// The values of `b` for a network callable, which may keep them: an array this call wrote
    /// is shared as it lies (and never written again); anything else is copied.
    fn share(&mut self, b: &Buf) -> Result<NetValues, String> {
        let n = self.count(b);
        match self.cur.remove(&b.src) {
            Some(Val::Own(o, buf)) if o.writable() && lent_len(o.data()) == n => {
                let v = match o {
                    Out::F32(v) => NetValues::Reals(Arc::new(v)),
                    Out::U32(v) => NetValues::Classes(Arc::new(v)),
                    Out::U8(v) => NetValues::Bools(Arc::new(v)),
                    Out::Shared(_) | Out::Net(_) => unreachable!("not writable"),
                };
                self.cur
                    .insert(b.src.clone(), Val::Own(Out::Shared(v.clone()), buf));
                return Ok(v);
            }
            Some(Val::Own(Out::Shared(v), buf)) if lent_len(v.data()) == n => {
                self.cur
                    .insert(b.src.clone(), Val::Own(Out::Shared(v.clone()), buf));
                return Ok(v);
            }
            Some(v) => {
                self.cur.insert(b.src.clone(), v);
            }
            None => {
                if let Src::Field(f) = &b.src {
                    let name = &self.p.fields[*f as usize].name;
                    if let Some(v) = self.inputs.shared.get(name) {
                        if lent_len(v.data()) == n && lent_store(v.data()) == b.store {
                            self.read(b)?;
                            return Ok(v.clone());
                        }
                    }
                    let given = self.net_fn.as_ref().is_some_and(|f| f.takes_given(name));
                    if let Some(a) = self.inputs.state.get(name).filter(|_| given) {
                        if lent_len(a.data) == n && lent_store(a.data) == b.store {
                            self.read(b)?;
                            return Ok(NetValues::Given(name.clone()));
                        }
                    }
                }
            }
        }
        let src = self.read(b)?;
        // SAFETY: `read` checked that `src` holds `n` values of `b`'s store.
        Ok(unsafe {
            match b.store {
                Store::F32 => NetValues::Reals(Arc::new(
                    std::slice::from_raw_parts(src as *const f32, n).to_vec(),
                )),
                Store::U32 => NetValues::Classes(Arc::new(
                    std::slice::from_raw_parts(src as *const u32, n).to_vec(),
                )),
                Store::U8 => {
                    NetValues::Bools(Arc::new(std::slice::from_raw_parts(src, n).to_vec()))
                }
            }
        })
    }
}

impl<'a> Runs for Exec<'a, '_, '_> {
    fn offset(&mut self) -> &mut u64 {
        &mut self.offset
    }

    fn launch(
        &mut self,
        k: usize,
        bufs: &[Buf],
        slots: &[u32],
        word: Word,
        offset: u64,
    ) -> Result<(), String> {
        let kern = &self.unit.plan.kernels[k];
        let (sizes, per) = plan::kernel_sizes(self.p, kern, &self.dims)?;
        let run = (self.range.0 * per) as usize..(self.range.1 * per) as usize;
        let mut fresh: Vec<(usize, Out)> = Vec::new();
        let mut ptrs: Vec<*mut u8> = Vec::with_capacity(bufs.len());
        for (j, b) in bufs.iter().enumerate() {
            if b.out {
                let mut o = self.target(b);
                ptrs.push(o.ptr());
                fresh.push((j, o));
            } else {
                // Kernels only read their inputs.
                ptrs.push(self.read(b)? as *mut u8);
            }
        }
        let coefs: Vec<f32> = slots
            .iter()
            .map(|s| self.row.get(*s as usize).copied().unwrap_or(0.0))
            .collect();
        let args = Args {
            f: self.compiled.fns[k],
            bufs: ptrs.as_ptr(),
            coefs: coefs.as_ptr(),
            sizes: sizes.as_ptr(),
            seed: self.seed,
            step: match word {
                Word::Step => self.k,
                Word::Fixed(x) => x | self.word_or,
            },
            offset: offset.wrapping_add(self.offset),
        };
        // Every buffer holds the values its kernel indexes over the whole batch (inputs were
        // checked against their counts, outputs were allocated with them); a run launches over
        // its samples' part of it.
        let status = launch(args, run, self.opts);
        let prog = &self.unit.prog.name;
        if status & FAIL_INDEX != 0 {
            return Err(format!("{prog}: an index is outside its vector's range"));
        }
        if status & FAIL_CLASS != 0 {
            return Err(format!("{prog}: a class is outside its range"));
        }
        for (j, o) in fresh {
            let b = &bufs[j];
            if let (Src::Field(f), Out::F32(v)) = (&b.src, &o) {
                if status & FAIL_NONFINITE != 0 {
                    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                        return Err(format!(
                            "`{}` became {} at flat index {i} (t = {}, s = {:?})",
                            self.p.fields[*f as usize].name, v[i], self.t, self.s
                        ));
                    }
                }
            }
            self.cur.insert(b.src.clone(), Val::Own(o, b.clone()));
        }
        Ok(())
    }

    /// A network call: its outputs are the caller's arrays for it, or what `net_fn` returns.
    fn call(
        &mut self,
        net: usize,
        inputs: &[Buf],
        outputs: &[Buf],
        sym: &[Option<u32>],
    ) -> Result<(), String> {
        let i = self.calls;
        self.calls += 1;
        let p = self.p;
        let n = &p.networks[net];
        let names: Vec<String> = n
            .outputs
            .iter()
            .map(|o| format!("{}.{}", n.name, p.field(o.field).name))
            .collect();
        let supplied = |name: &String| {
            self.inputs
                .net
                .get(&format!("{name}#{i}"))
                .or_else(|| self.inputs.net.get(name))
                .copied()
        };
        if self.net_fn.is_some() && !names.iter().all(|x| supplied(x).is_some()) {
            let mut args = Vec::with_capacity(inputs.len());
            for b in inputs {
                args.push(NetInput {
                    shape: self.shape(b),
                    values: self.share(b)?,
                });
            }
            let f = self
                .net_fn
                .as_mut()
                .ok_or("internal error: no network to call")?;
            let outs = f.call(p, net, &args)?;
            drop(args);
            check_count(&n.name, outs.len(), outputs.len())?;
            for (((a, b), sym), name) in outs.into_iter().zip(outputs).zip(sym).zip(&names) {
                check_returned(name, a.as_ref(), &self.shape(b), self.count(b))?;
                self.seen
                    .push((format!("`{name}`"), a.values().as_ptr() as usize));
                let v = match sym {
                    Some(d) => Out::F32(self.mirrored(a.values(), *d, b)),
                    None => Out::Net(a),
                };
                self.finite(name, v.data())?;
                self.cur.insert(b.src.clone(), Val::Own(v, b.clone()));
            }
            return Ok(());
        }
        for ((b, sym), name) in outputs.iter().zip(sym).zip(&names) {
            let a = supplied(name).ok_or_else(|| {
                format!(
                    "the step calls `{}`: give its output `{name}` (or `{name}#{i}` for this call)",
                    n.name
                )
            })?;
            let LentData::F32(x) = a.data else {
                self.net_output(name, a.shape, &[], b)?;
                return Err(format!("`{name}` must hold reals"));
            };
            self.net_output(name, a.shape, x, b)?;
            let v = match sym {
                Some(d) => Val::Own(Out::F32(self.mirrored(x, *d, b)), b.clone()),
                None => Val::Lent(a.data),
            };
            match &v {
                Val::Own(o, _) => self.finite(name, o.data())?,
                Val::Lent(d) => self.finite(name, *d)?,
            }
            self.cur.insert(b.src.clone(), v);
        }
        Ok(())
    }

    fn copy(&mut self, to: &Buf, from: &Buf, why: CopyWhy) -> Result<(), String> {
        // The history a step keeps: its own slot, handed over as it lies.
        if why == CopyWhy::Keep && matches!(from.src, Src::Slot(_) | Src::Node(_)) {
            if let Some(Val::Own(o, _)) = self.cur.remove(&from.src) {
                self.cur.insert(to.src.clone(), Val::Own(o, to.clone()));
                return Ok(());
            }
        }
        let m = self.count(from);
        let src = self.read(from)?;
        let part = self.part(to);
        let mut o = self.target(to);
        let bytes = to.store.bytes();
        let dst = o.ptr();
        // Value `i` of `to` is value `i % m` of `from` (a value shared by the batch repeats).
        let mut i = part.start;
        while i < part.end && m > 0 {
            let j = i % m;
            let c = (m - j).min(part.end - i);
            // SAFETY: `src` holds `m` values (checked by `read`), `dst` holds `count(to)`, of
            // which `part` is a range; they are different allocations.
            unsafe {
                std::ptr::copy_nonoverlapping(src.add(j * bytes), dst.add(i * bytes), c * bytes)
            };
            i += c;
        }
        self.cur.insert(to.src.clone(), Val::Own(o, to.clone()));
        Ok(())
    }
}
