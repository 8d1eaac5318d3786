//! Sampler steps at kernel speed: one step (or a final map) run from its call sequence on the
//! caller's arrays.
//!
//! `cpu::sample` drives the kernels from the interpreter, which owns every value: inputs are
//! copied in, each launch allocates its outputs through the interpreter's values, and the new
//! state is copied on its way out. A `StepRunner` runs the same step from its call sequence
//! instead — the sequence the C library replays (`aot::Event`), found by running the interpreter
//! on zero samples — with the JIT's kernels:
//! - the caller's arrays (state fields, network outputs, the previous step's history) are read
//!   where they lie, never copied;
//! - each buffer a kernel writes is allocated once per call, and the new state and history are
//!   handed to the caller as the kernels left them;
//! - the host values (coefficients, times, values the sampler computes once per step) come from
//!   the interpreter's own host code, on zero samples, once per grid point and params (cached).
//!
//! Results equal the interpreter's bit for bit (`tests/lean.rs`), errors included: the same
//! checks run on the same inputs, with the same messages. Supplied draws, node masks and network
//! callables are the interpreter's business (`cpu::sample`); a step that needs them is refused
//! here with a message saying so.

use super::aot::{self, Buf, CopyWhy, Event, Src, Unit, Word};
use super::{launch, Args, Compiled, Options};
use crate::interp::{self, Data, SampleCall, Tensor};
use crate::kernel::{Store, FAIL_CLASS, FAIL_INDEX, FAIL_NONFINITE};
use crate::typed::{Elem, Process};
use std::collections::HashMap;
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
}

/// A sampler's step, compiled once, run on any state.
pub struct StepRunner {
    unit: Unit,
    compiled: Compiled,
    /// Call sequences and rows by the host side of a call (grid point, params).
    traces: Mutex<HashMap<String, Arc<(Vec<Event>, Vec<f32>)>>>,
    /// Arrays handed back (`recycle`) for the next calls to write into.
    pool: Mutex<Vec<Vec<f32>>>,
    opts: Options,
}

/// Arrays the pool keeps at most, and the least length worth keeping.
const POOL: usize = 4;
const POOL_MIN: usize = 1 << 16;

/// Traces kept per runner; a runner called at more distinct points starts over.
const TRACE_CACHE: usize = 4096;

impl StepRunner {
    /// Plan and compile `sampler` of `p` (as `cpu::sample` compiles it without supplied draws
    /// or node masks).
    pub fn new(p: &Process, sampler: &str) -> Result<StepRunner, String> {
        let unit = aot::sampler_unit(p, sampler)?;
        let compiled = super::compile(unit.plan.clone())?;
        Ok(StepRunner {
            unit,
            compiled,
            traces: Mutex::new(HashMap::new()),
            pool: Mutex::new(Vec::new()),
            opts: Options::default(),
        })
    }

    /// Give back a real array this runner returned, once its owner is done with it: a later
    /// call writes its results there instead of into fresh memory, which the system would
    /// have to fault in and zero (at 16M elements, a third of a DDPM step's time). A loop
    /// `x = step(x)` then runs on two arrays. Whatever `v` holds is overwritten.
    pub fn recycle(&self, v: Vec<f32>) {
        if v.len() < POOL_MIN {
            return;
        }
        if let Ok(mut pool) = self.pool.lock() {
            if pool.len() < POOL {
                pool.push(v);
            }
        }
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
        if !call.draws.is_empty() || !call.masks.is_empty() {
            return Err(
                "supplied draws and node masks take the interpreter's path (`cpu::sample`)".into(),
            );
        }
        let sp = self
            .unit
            .sampler()
            .ok_or("internal error: a step runner without a sampler")?;
        let sizes = self.check_state(p, call, inputs)?;
        let traced = self.traced(p, call)?;
        known_sizes(p, &self.unit, &traced.0, &sizes)?;
        let grid = call.grid.as_deref().unwrap_or(&[]);
        let mut x = Exec {
            p,
            unit: &self.unit,
            compiled: &self.compiled,
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
            t: grid.first().copied().unwrap_or(0.0),
            s: (!call.finalize_only).then(|| grid.get(1).copied().unwrap_or(0.0)),
        };
        x.run(&traced.0)?;
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
            if let Val::Own(Out::F32(v), _) = v {
                self.recycle(v);
            }
        }
        Ok(out)
    }

    /// Check the state as `interp::sample` does (batch, sizes, values) and return the sizes.
    fn check_state(
        &self,
        p: &Process,
        call: &SampleCall,
        inputs: &StepInputs,
    ) -> Result<HashMap<String, usize>, String> {
        let mut sizes = call.sizes.clone();
        let mut names: Vec<&String> = inputs.state.keys().collect();
        names.sort();
        for name in names {
            let a = &inputs.state[name];
            let f = interp::state_sizes(p, name, a.shape, call.batch, &mut sizes)?;
            let len = crate::limits::product(
                &a.shape
                    .iter()
                    .map(|n| (name.as_str(), *n))
                    .collect::<Vec<_>>(),
            )?;
            let ok = match (a.data, f.elem) {
                (LentData::F32(v), Elem::Real | Elem::Vec(_)) => {
                    if let Some(i) = first_nonfinite(v, self.opts.threads) {
                        return Err(interp::nonfinite_input(name, v, i));
                    }
                    v.len() == len
                }
                (LentData::U32(v), Elem::Cat(k)) => {
                    interp::check_classes(v, k, name)?;
                    v.len() == len
                }
                (LentData::U8(v), Elem::Bool) => v.len() == len,
                _ => return Err(interp::wrong_elem(name, f.elem)),
            };
            if !ok {
                return Err(format!(
                    "`{name}` holds {} values for its shape {:?}",
                    lent_len(a.data),
                    a.shape
                ));
            }
        }
        interp::check_call_size(p, &self.unit.prog, call.batch, &sizes)?;
        Ok(sizes)
    }

    /// The call sequence and row of `call`'s host side, traced on first use.
    fn traced(
        &self,
        p: &Process,
        call: &SampleCall,
    ) -> Result<Arc<(Vec<Event>, Vec<f32>)>, String> {
        let mut params: Vec<_> = call.params.iter().collect();
        params.sort_by(|a, b| a.0.cmp(b.0));
        let mut pparams: Vec<_> = call.process_params.iter().collect();
        pparams.sort_by(|a, b| a.0.cmp(b.0));
        let one = call.single_step.as_ref().map(|o| (o.k, o.n, o.r));
        let key = format!(
            "{:?}",
            (&call.grid, one, call.finalize_only, params, pparams)
        );
        if let Some(t) = self.traces.lock().map_err(|_| "a poisoned lock")?.get(&key) {
            return Ok(t.clone());
        }
        let units = std::slice::from_ref(&self.unit);
        let t = Arc::new(aot::trace_single(p, units, 0, call)?);
        let mut cache = self.traces.lock().map_err(|_| "a poisoned lock")?;
        if cache.len() >= TRACE_CACHE {
            cache.clear();
        }
        cache.insert(key, t.clone());
        Ok(t)
    }
}

/// Every dimension a sequence's kernels and buffers use must have a size, as the interpreter
/// requires before it runs a kernel.
fn known_sizes(
    p: &Process,
    unit: &Unit,
    events: &[Event],
    sizes: &HashMap<String, usize>,
) -> Result<(), String> {
    for e in events {
        let (kernel_dims, bufs): (&[String], Vec<&Buf>) = match e {
            Event::Launch { kernel, bufs, .. } => {
                (&unit.plan.kernels[*kernel].dims, bufs.iter().collect())
            }
            Event::Call {
                inputs, outputs, ..
            } => (&[], inputs.iter().chain(outputs).collect()),
            Event::Copy { to, from, .. } => (&[], vec![to, from]),
            Event::Repeat { body, .. } => {
                known_sizes(p, unit, body, sizes)?;
                continue;
            }
        };
        let names = kernel_dims.iter().map(String::as_str).chain(
            bufs.iter()
                .flat_map(|b| b.dims.iter().map(|d| p.dims[*d as usize].name.as_str())),
        );
        for d in names {
            if !sizes.contains_key(d) {
                return Err(format!(
                    "the size of `{d}` is not known: give it with --set {d}=N"
                ));
            }
        }
    }
    Ok(())
}

/// A buffer's values: written by this call, or lent by the caller.
enum Val<'a> {
    Own(Out, Buf),
    Lent(LentData<'a>),
}

/// An array a kernel or copy of this call wrote.
enum Out {
    F32(Vec<f32>),
    U32(Vec<u32>),
    U8(Vec<u8>),
}

impl Out {
    fn zeroed(store: Store, n: usize) -> Out {
        match store {
            Store::F32 => Out::F32(vec![0.0; n]),
            Store::U32 => Out::U32(vec![0; n]),
            Store::U8 => Out::U8(vec![0; n]),
        }
    }
    fn ptr(&mut self) -> *mut u8 {
        match self {
            Out::F32(v) => v.as_mut_ptr() as *mut u8,
            Out::U32(v) => v.as_mut_ptr() as *mut u8,
            Out::U8(v) => v.as_mut_ptr(),
        }
    }
    fn data(&self) -> LentData<'_> {
        match self {
            Out::F32(v) => LentData::F32(v),
            Out::U32(v) => LentData::U32(v),
            Out::U8(v) => LentData::U8(v),
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

/// The index of the first non-finite value, scanning in `threads` pieces without branching per
/// element (a step's check of its state costs a small part of the step).
fn first_nonfinite(v: &[f32], threads: usize) -> Option<usize> {
    fn any_bad(x: &[f32]) -> bool {
        x.chunks(1024)
            .any(|c| c.iter().fold(false, |a, x| a | !x.is_finite()))
    }
    let threads = threads.min(v.len() / (1 << 16)).max(1);
    let bad = if threads == 1 {
        any_bad(v)
    } else {
        let chunk = v.len().div_ceil(threads);
        std::thread::scope(|s| {
            let hs: Vec<_> = v.chunks(chunk).map(|c| s.spawn(|| any_bad(c))).collect();
            hs.into_iter().any(|h| h.join().unwrap_or(true))
        })
    };
    if bad {
        v.iter().position(|x| !x.is_finite())
    } else {
        None
    }
}

/// One call's run of a sequence.
struct Exec<'a, 'r> {
    p: &'r Process,
    unit: &'r Unit,
    compiled: &'r Compiled,
    opts: Options,
    inputs: &'r StepInputs<'a>,
    /// Each process dimension's size (every one the sequence uses is known: `known_sizes`).
    dims: Vec<u64>,
    batch: u64,
    seed: u64,
    k: u64,
    row: &'r [f32],
    pool: &'r Mutex<Vec<Vec<f32>>>,
    cur: HashMap<Src, Val<'a>>,
    /// Network calls made so far (the `#i` of a supplied output).
    calls: usize,
    /// Added to every launch's index offset (the run of an inner loop).
    offset: u64,
    t: f64,
    s: Option<f64>,
}

impl<'a> Exec<'a, '_> {
    /// An array for `n` values that a kernel or copy then writes in full: one from the pool
    /// when it holds one of that length (not cleared), else fresh zeroed memory.
    fn alloc(&self, store: Store, n: usize) -> Out {
        if store == Store::F32 && n >= POOL_MIN {
            if let Ok(mut pool) = self.pool.lock() {
                if let Some(i) = pool.iter().position(|v| v.len() == n) {
                    return Out::F32(pool.swap_remove(i));
                }
            }
        }
        Out::zeroed(store, n)
    }

    fn count(&self, b: &Buf) -> usize {
        let mut n = if b.batch { self.batch } else { 1 };
        for d in &b.dims {
            n *= self.dims[*d as usize];
        }
        (n * b.width as u64) as usize
    }

    /// The shape of a buffer as an array: batch, its dimensions, its vector width.
    fn shape(&self, b: &Buf) -> Vec<usize> {
        let mut s = Vec::new();
        if b.batch {
            s.push(self.batch as usize);
        }
        s.extend(b.dims.iter().map(|d| self.dims[*d as usize] as usize));
        if b.width > 1 {
            s.push(b.width as usize);
        }
        s
    }

    /// The caller's array for `b` (a field or a kept value not yet written by this call).
    fn lent(&self, b: &Buf) -> Result<Option<(String, Lent<'a>)>, String> {
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
    fn read(&self, b: &Buf) -> Result<*const u8, String> {
        let n = self.count(b);
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
                } => self.launch(*unit, *kernel, bufs, slots, *word, *offset)?,
                Event::Call {
                    net, outputs, sym, ..
                } => self.call(*net as usize, outputs, sym)?,
                Event::Copy { to, from, why, .. } => self.copy(to, from, *why)?,
                Event::Repeat { count, body } => {
                    let saved = self.offset;
                    for j in 0..*count as u64 {
                        self.offset = saved + j * aot::REPEAT_STRIDE;
                        self.run(body)?;
                    }
                    self.offset = saved;
                }
            }
        }
        Ok(())
    }

    fn launch(
        &mut self,
        unit: usize,
        k: usize,
        bufs: &[Buf],
        slots: &[u32],
        word: Word,
        offset: u64,
    ) -> Result<(), String> {
        if unit != 0 {
            return Err("internal error: a step launched another unit's kernel".into());
        }
        let kern = &self.unit.plan.kernels[k];
        let sizes: Vec<u64> = kern
            .dims
            .iter()
            .map(|d| {
                self.p
                    .dims
                    .iter()
                    .position(|x| &x.name == d)
                    .map(|i| self.dims[i])
                    .ok_or_else(|| format!("internal error: no dimension `{d}`"))
            })
            .collect::<Result<_, _>>()?;
        let per: u64 = kern.domain.iter().map(|d| sizes[*d as usize]).product();
        let total = (self.batch * per) as usize;
        let mut fresh: Vec<(usize, Out)> = Vec::new();
        let mut ptrs: Vec<*mut u8> = Vec::with_capacity(bufs.len());
        for (j, b) in bufs.iter().enumerate() {
            if b.out {
                let mut o = self.alloc(b.store, self.count(b));
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
                Word::Fixed(x) => x,
            },
            offset: offset.wrapping_add(self.offset),
        };
        // Every buffer holds the values its kernel indexes over 0..total: inputs were checked
        // against their counts, outputs were allocated with them.
        let status = launch(args, 0..total, self.opts);
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

    /// A network call: its outputs are the caller's arrays for it.
    fn call(&mut self, net: usize, outputs: &[Buf], sym: &[Option<u32>]) -> Result<(), String> {
        let i = self.calls;
        self.calls += 1;
        let n = &self.p.networks[net];
        for ((o, b), sym) in n.outputs.iter().zip(outputs).zip(sym) {
            let name = format!("{}.{}", n.name, self.p.field(o.field).name);
            let a = self
                .inputs
                .net
                .get(&format!("{name}#{i}"))
                .or_else(|| self.inputs.net.get(&name))
                .ok_or_else(|| {
                    format!(
                        "the step calls `{}`: give its output `{name}` (or `{name}#{i}` for this call)",
                        n.name
                    )
                })?;
            let want = self.shape(b);
            if a.shape != want.as_slice() {
                return Err(format!(
                    "`{name}` has shape {:?}, expected {want:?}",
                    a.shape
                ));
            }
            let LentData::F32(x) = a.data else {
                return Err(format!("`{name}` must hold reals"));
            };
            if x.len() != self.count(b) {
                return Err(format!(
                    "`{name}` holds {} values, expected {}",
                    x.len(),
                    self.count(b)
                ));
            }
            let v = match sym {
                // A symmetric field's output: the upper triangle mirrored, the diagonal empty.
                Some(d) => {
                    let mut y = x.to_vec();
                    symmetrize(
                        &mut y,
                        self.batch as usize,
                        self.dims[*d as usize] as usize,
                        b.width as usize,
                    );
                    Val::Own(Out::F32(y), b.clone())
                }
                None => Val::Lent(a.data),
            };
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
        let (n, m) = (self.count(to), self.count(from));
        let src = self.read(from)?;
        let mut o = self.alloc(to.store, n);
        let bytes = to.store.bytes();
        let dst = o.ptr();
        let mut i = 0;
        while i < n && m > 0 {
            let c = m.min(n - i);
            // SAFETY: `src` holds `m` values (checked by `read`), `dst` holds `n`; they are
            // different allocations.
            unsafe { std::ptr::copy_nonoverlapping(src, dst.add(i * bytes), c * bytes) };
            i += c;
        }
        self.cur.insert(to.src.clone(), Val::Own(o, to.clone()));
        Ok(())
    }
}

/// Mirror the upper triangle of `[batch, n, n, width]` onto the lower one; empty the diagonal.
fn symmetrize(x: &mut [f32], batch: usize, n: usize, w: usize) {
    for b in 0..batch {
        for i in 0..n {
            for j in 0..=i {
                for q in 0..w {
                    x[((b * n + i) * n + j) * w + q] = if i == j {
                        0.0
                    } else {
                        x[((b * n + j) * n + i) * w + q]
                    };
                }
            }
        }
    }
}
