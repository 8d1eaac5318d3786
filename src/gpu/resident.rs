//! Whole sampler runs with the state resident on the device.
//!
//! `gpu::sample` drives each kernel from the interpreter, which uploads every buffer a launch
//! reads and reads back every buffer it writes: a sampler's state crosses the bus twice per
//! launch. `SampleRunner` runs the same call sequences as the CPU's lean runner
//! (`StepRunner::sample`: the start, every step and the final map, each from the events
//! `plan::trace_single` records on zero samples) with the kernels as pipelines and every buffer
//! on the device:
//! - the state, the history a multistep sampler keeps and every intermediate value live in
//!   device buffers from the start to the end of the run (a buffer a step no longer needs
//!   serves a later one of the same size);
//! - the priors' draws and the `init` block run on the device; a state field the caller gives
//!   is uploaded once;
//! - a network call reads back the values the network is called with and uploads its
//!   outputs: the only field-sized transfers of a step;
//! - host values (coefficients, the row a step reads) are uploaded per launch, a few words;
//! - each phase's status word is read once at its end;
//! - the results are read back once, after the final map.
//!
//! `SampleRunner::moved` counts the bytes of each kind. Results equal `gpu::sample`'s: the same
//! kernels on the same values, the same draws (`tests/gpu.rs`). Supplied draws and
//! single steps take `gpu::sample`.

use super::run::{compile, dispatch, Compiled, OnDevice};
use super::runtime::{self, Buffer, Gpu};
use crate::interp::{self, Call, Data, SampleCall, Tensor};
use crate::kernel::{Store, FAIL_CLASS, FAIL_INDEX, FAIL_NONFINITE};
use crate::plan::net::{check_count, check_finite, check_returned};
use crate::plan::runs::{known_sizes, mirror, phase_call, trace_key, TraceCache, Traced};
use crate::plan::{self, Buf, CopyWhy, NetFn, NetInput, NetValues, Runs, Src, Unit, Word};
use crate::typed::Process;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Bytes a run moved between the host and the device, by what they were.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Moved {
    /// State fields the caller gave and node masks, uploaded once at the start.
    pub start: u64,
    /// Values read back for network calls (their inputs).
    pub net_in: u64,
    /// Network outputs uploaded.
    pub net_out: u64,
    /// Host values: coefficients, row values and launch parameters.
    pub host_values: u64,
    /// Status words read back (one per phase).
    pub status: u64,
    /// Field-sized values moved for any other reason (a copy that repeats a value over the
    /// batch from the host); 0 for every shipped sampler.
    pub other: u64,
    /// The results, read back after the final map.
    pub results: u64,
    /// Network calls made.
    pub net_calls: u64,
}

/// A unit planned for one set of node masks, its kernels built, and its traces by call.
struct Prepared {
    unit: Unit,
    compiled: Compiled,
    traces: TraceCache,
}

impl Prepared {
    fn new(gpu: &Gpu, unit: Unit) -> Result<Prepared, String> {
        let compiled = compile(gpu, unit.plan.clone())?;
        Ok(Prepared {
            unit,
            compiled,
            traces: TraceCache::default(),
        })
    }

    fn traced(
        &self,
        key: String,
        trace: impl FnOnce(&Unit) -> Result<Traced, String>,
    ) -> Result<Arc<Traced>, String> {
        self.traces.get(key, || trace(&self.unit))
    }
}

/// A sampler whose whole runs keep their state on the device; its units are planned and built
/// on first use (per set of node masks), and so are its priors'.
pub struct SampleRunner {
    name: String,
    units: Mutex<HashMap<Vec<u32>, Arc<Prepared>>>,
    priors: Mutex<HashMap<String, Arc<Prepared>>>,
    moved: Mutex<Moved>,
}

impl SampleRunner {
    /// The runner of `sampler` of `p` (checked to exist; nothing is built yet).
    pub fn new(p: &Process, sampler: &str) -> Result<SampleRunner, String> {
        if !p.samplers.iter().any(|s| s.name == sampler) {
            return Err(format!("`{}` has no sampler `{sampler}`", p.name));
        }
        Ok(SampleRunner {
            name: sampler.to_string(),
            units: Mutex::default(),
            priors: Mutex::default(),
            moved: Mutex::default(),
        })
    }

    /// What the last run moved between the host and the device.
    pub fn moved(&self) -> Moved {
        self.moved.lock().map(|m| *m).unwrap_or_default()
    }

    fn unit(&self, gpu: &Gpu, p: &Process, call: &SampleCall) -> Result<Arc<Prepared>, String> {
        let v = plan::mask_variant(p, &call.masks);
        let key: Vec<u32> = v.masks.iter().copied().collect();
        let mut units = self.units.lock().map_err(|_| "a poisoned lock")?;
        if let Some(u) = units.get(&key) {
            return Ok(u.clone());
        }
        let u = Arc::new(Prepared::new(
            gpu,
            plan::sampler_unit_for(p, &self.name, &v)?,
        )?);
        units.insert(key, u.clone());
        Ok(u)
    }

    fn prior(&self, gpu: &Gpu, p: &Process, entry: &str) -> Result<Arc<Prepared>, String> {
        let mut priors = self.priors.lock().map_err(|_| "a poisoned lock")?;
        if let Some(u) = priors.get(entry) {
            return Ok(u.clone());
        }
        let e = crate::entries::entries(p)
            .into_iter()
            .find(|e| e.name == entry)
            .ok_or_else(|| format!("`{}` has no entry point `{entry}`", p.name))?;
        let u = Arc::new(Prepared::new(
            gpu,
            plan::entry_unit(p, e, &Default::default())?,
        )?);
        priors.insert(entry.to_string(), u.clone());
        Ok(u)
    }

    /// A whole run on `gpu`, as `gpu::sample` runs the same call (its state, seed, batch,
    /// sizes, params, grid and masks), calling `net` for the network. Returns every field the
    /// run holds at its end (a given field the run never wrote, as given).
    pub fn sample(
        &self,
        gpu: &Gpu,
        p: &Process,
        call: &SampleCall,
        net: &mut dyn NetFn,
    ) -> Result<HashMap<String, Tensor>, String> {
        if !call.draws.is_empty() {
            return Err("supplied draws take the interpreter-driven path (`gpu::sample`)".into());
        }
        if call.single_step.is_some() || call.finalize_only || call.stop_after.is_some() {
            return Err("a whole run: single steps take `gpu::sample`".into());
        }
        let prep = self.unit(gpu, p, call)?;
        let sp = prep
            .unit
            .sampler()
            .ok_or("internal error: a sampler runner without a sampler")?;
        let grid = match &call.grid {
            Some(g) => g.clone(),
            None => interp::sampler_grid(p, &self.name, &call.params)?,
        };
        if grid.len() < 2 {
            return Err("a grid needs at least two times".into());
        }
        let n = grid.len() - 1;
        // Sizes and values of the given state, checked as the interpreter checks them.
        let mut sizes = call.sizes.clone();
        let mut names: Vec<&String> = call.state.keys().collect();
        names.sort();
        for name in &names {
            let t = &call.state[*name];
            let f = interp::state_sizes(p, name, &t.shape, call.batch, &mut sizes)?;
            interp::check_values(t, f.elem, name)?;
            if f.shape.sym {
                interp::check_sym_tensor(name, t)?;
            }
        }
        interp::check_call_size(p, &sp.prog, call.batch, &sizes)?;
        interp::check_masks(p, &call.masks, call.batch, &sizes)?;
        for f in &sp.conditions {
            let name = &p.fields[*f as usize].name;
            if !call.state.contains_key(name) {
                return Err(format!(
                    "sampler `{}` reads `{name}`: give its value",
                    sp.name
                ));
            }
        }
        let mut moved = Moved::default();
        let mut run = Run {
            gpu,
            p,
            dims: p
                .dims
                .iter()
                .map(|d| sizes.get(&d.name).copied().unwrap_or(1) as u64)
                .collect(),
            batch: call.batch as u64,
            seed: call.seed,
            state: HashMap::new(),
            given: HashMap::new(),
            prev: HashMap::new(),
            masks: HashMap::new(),
            pool: Vec::new(),
            moved: &mut moved,
        };
        for (i, m) in p.masks.iter().enumerate() {
            if let Some(t) = call.masks.get(&m.name) {
                let d = run.upload_tensor(t)?;
                run.moved.start += d.bytes();
                run.masks.insert(i as u32, d);
            }
        }
        for name in &names {
            let f = p
                .fields
                .iter()
                .position(|f| &f.name == *name)
                .ok_or_else(|| format!("no field `{name}`"))?;
            let d = run.upload_tensor(&call.state[*name])?;
            run.moved.start += d.bytes();
            run.state.insert(f as u32, d);
            run.given.insert(f as u32, &call.state[*name]);
        }
        // The start: the `init` block, or each field not given from its prior.
        if !sp.init.is_empty() {
            let c = phase_call(call, &sizes, &grid, None);
            let tr = prep.traced(trace_key(&c), |u| {
                plan::trace_single(p, std::slice::from_ref(u), 0, &c)
            })?;
            known_sizes(p, &prep.unit, &tr.0, &sizes)?;
            // Given starting values win over the block's own.
            let given: Vec<u32> = run.given.keys().copied().collect();
            let mut phase = run.phase(&prep, &tr.1, 0, 0, (grid[0], None), &mut *net)?;
            phase.run(&tr.0)?;
            let written = phase.finish()?;
            for (f, d) in written {
                if !given.contains(&f) {
                    run.set_field(f, d);
                }
            }
        } else {
            for (i, k) in p.priors.iter().enumerate() {
                let f = k.target.field.index() as u32;
                if run.state.contains_key(&f) {
                    continue;
                }
                let name = &p.fields[f as usize].name;
                let entry = if p.priors.len() == 1 {
                    "prior".to_string()
                } else {
                    format!("prior.{name}")
                };
                let u = self.prior(gpu, p, &entry)?;
                let c = Call {
                    seed: call.seed,
                    step: u32::MAX - 1 - i as u32,
                    batch: call.batch,
                    sizes: sizes.clone(),
                    params: call.process_params.clone(),
                    ..Call::default()
                };
                interp::check_call_size(p, &u.unit.prog, call.batch, &sizes)?;
                interp::process_param_values(p, &c.params)?;
                let tr = u.traced(format!("{:?}", sorted(&c.params)), |unit| {
                    plan::trace_entry_at(p, std::slice::from_ref(unit), 0, &c)
                })?;
                known_sizes(p, &u.unit, &tr.0, &sizes)?;
                let mut phase =
                    run.phase(&u, &tr.1, 0, c.step as u64, (grid[0], None), &mut *net)?;
                phase.run(&tr.0)?;
                let d = phase
                    .cur
                    .remove(&Src::Output(0))
                    .ok_or_else(|| format!("internal error: `{entry}` wrote no output"))?;
                phase.finish()?;
                run.set_field(f, d);
            }
        }
        for k in 0..=n {
            let last = k == n;
            let c = phase_call(call, &sizes, &grid, Some(k));
            let tr = prep.traced(trace_key(&c), |u| {
                plan::trace_single(p, std::slice::from_ref(u), 0, &c)
            })?;
            known_sizes(p, &prep.unit, &tr.0, &sizes)?;
            if last {
                // The final map reads no history.
                let old: Vec<Dev> = run.prev.drain().map(|(_, d)| d).collect();
                run.pool.extend(old);
            }
            let times = (grid[if last { n } else { k }], (!last).then(|| grid[k + 1]));
            let mut phase = run.phase(&prep, &tr.1, k as u64, 0, times, &mut *net)?;
            phase.run(&tr.0)?;
            let mut kept = HashMap::new();
            for h in &sp.history {
                if let Some(d) = phase.cur.remove(&Src::Prev(*h)) {
                    kept.insert(*h, d);
                }
            }
            let written = phase.finish()?;
            for (f, d) in written {
                run.set_field(f, d);
            }
            let old: Vec<Dev> = run.prev.drain().map(|(_, d)| d).collect();
            run.pool.extend(old);
            run.prev = kept;
        }
        let mut out = HashMap::new();
        for (i, f) in p.fields.iter().enumerate() {
            let i = i as u32;
            if let Some(t) = run.given.get(&i) {
                if !run.state.get(&i).is_some_and(|d| d.fresh) {
                    out.insert(f.name.clone(), (*t).clone());
                    continue;
                }
            }
            if let Some(d) = run.state.get(&i) {
                let mut shape = vec![call.batch];
                shape.extend(f.shape.dims.iter().map(|d| run.dims[d.index()] as usize));
                if let crate::typed::Elem::Vec(k) = f.elem {
                    shape.push(k as usize);
                }
                let data = run.download(d)?;
                run.moved.results += d.bytes();
                out.insert(f.name.clone(), Tensor { shape, data });
            }
        }
        drop(run);
        if let Ok(mut m) = self.moved.lock() {
            *m = moved;
        }
        Ok(out)
    }
}

fn sorted<V: std::fmt::Debug>(m: &HashMap<String, V>) -> Vec<(&String, &V)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// A value on the device: `n` values of `store`, each one 4-byte word (bools as 0 or 1).
struct Dev {
    buf: Arc<Buffer>,
    store: Store,
    n: usize,
    /// Written by the run (not the caller's given value).
    fresh: bool,
}

impl Dev {
    fn bytes(&self) -> u64 {
        4 * self.n as u64
    }
}

/// A run's device state between its phases.
struct Run<'a, 'g> {
    gpu: &'a Gpu,
    p: &'a Process,
    dims: Vec<u64>,
    batch: u64,
    seed: u64,
    /// The state fields by `Process::fields` index.
    state: HashMap<u32, Dev>,
    /// The caller's values of the fields it gave (read by a network without a transfer while
    /// the run has not written them).
    given: HashMap<u32, &'g Tensor>,
    /// The history the previous step kept, by slot.
    prev: HashMap<u32, Dev>,
    /// Node masks by `Process::masks` index.
    masks: HashMap<u32, Dev>,
    /// Buffers no longer read, for later values of the same size.
    pool: Vec<Dev>,
    moved: &'a mut Moved,
}

impl<'a, 'g> Run<'a, 'g> {
    fn set_field(&mut self, f: u32, d: Dev) {
        if let Some(old) = self.state.insert(f, d) {
            self.pool.push(old);
        }
    }

    /// A buffer for `n` values (its contents are overwritten by whoever writes it).
    fn alloc(&mut self, store: Store, n: usize) -> Result<Dev, String> {
        let bytes = 4 * n.max(1) as u64;
        if let Some(i) = self
            .pool
            .iter()
            .position(|d| d.buf.size() == bytes.div_ceil(4) * 4 && Arc::strong_count(&d.buf) == 1)
        {
            let d = self.pool.swap_remove(i);
            return Ok(Dev {
                buf: d.buf,
                store,
                n,
                fresh: true,
            });
        }
        let buf = self.gpu.storage(bytes).map_err(|e| e.to_string())?;
        Ok(Dev {
            buf: Arc::new(buf),
            store,
            n,
            fresh: true,
        })
    }

    fn upload_words(&self, words: &[u32], store: Store) -> Result<Dev, String> {
        let buf = self
            .gpu
            .upload_u32(if words.is_empty() { &[0] } else { words })
            .map_err(|e| e.to_string())?;
        Ok(Dev {
            buf: Arc::new(buf),
            store,
            n: words.len(),
            fresh: false,
        })
    }

    fn upload_tensor(&self, t: &Tensor) -> Result<Dev, String> {
        match &t.data {
            Data::F32(v) => self.upload_words(
                &v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                Store::F32,
            ),
            Data::Class(v) => self.upload_words(v, Store::U32),
            Data::Bool(v) => {
                self.upload_words(&v.iter().map(|b| *b as u32).collect::<Vec<_>>(), Store::U8)
            }
        }
    }

    fn words(&self, d: &Dev) -> Result<Vec<u32>, String> {
        if d.n == 0 {
            return Ok(Vec::new());
        }
        let bytes = self
            .gpu
            .read(&d.buf, 0..d.bytes())
            .map_err(|e| e.to_string())?;
        Ok(runtime::bytes_u32(&bytes))
    }

    fn download(&self, d: &Dev) -> Result<Data, String> {
        let w = self.words(d)?;
        Ok(match d.store {
            Store::F32 => Data::F32(w.into_iter().map(f32::from_bits).collect()),
            Store::U32 => Data::Class(w),
            Store::U8 => Data::Bool(w.into_iter().map(|x| x != 0).collect()),
        })
    }

    /// A phase (a prior, the start, a step or the final map) over the run's state.
    fn phase<'x>(
        &'x mut self,
        prep: &'x Prepared,
        row: &'x [f32],
        k: u64,
        word_or: u64,
        times: (f64, Option<f64>),
        net: &'x mut dyn NetFn,
    ) -> Result<Phase<'x, 'a, 'g>, String> {
        let status = self.gpu.upload_u32(&[0]).map_err(|e| e.to_string())?;
        Ok(Phase {
            run: self,
            prep,
            row,
            k,
            word_or,
            offset: 0,
            cur: HashMap::new(),
            written: Vec::new(),
            status,
            net,
            t: times.0,
            s: times.1,
        })
    }
}

/// One phase's execution of its events.
struct Phase<'x, 'a, 'g> {
    run: &'x mut Run<'a, 'g>,
    prep: &'x Prepared,
    row: &'x [f32],
    k: u64,
    word_or: u64,
    /// Added to every launch's index offset (the run of an inner loop).
    offset: u64,
    cur: HashMap<Src, Dev>,
    /// Fields this phase wrote, in order.
    written: Vec<u32>,
    status: Buffer,
    net: &'x mut dyn NetFn,
    t: f64,
    s: Option<f64>,
}

impl Phase<'_, '_, '_> {
    fn count(&self, b: &Buf) -> usize {
        b.count_in(b.batch, self.run.batch, &self.run.dims)
    }

    fn shape(&self, b: &Buf) -> Vec<usize> {
        b.shape_in(b.batch, self.run.batch, &self.run.dims)
    }

    /// The row's values from `at`, checked to lie inside it.
    fn row_values(&self, at: u32, n: usize) -> Result<&[f32], String> {
        let at = at as usize;
        if at + n > self.row.len() {
            return Err("internal error: a row value outside the row".into());
        }
        Ok(&self.row[at..at + n])
    }

    /// The device buffer holding `b` (row values are uploaded here: a few words).
    fn read(&mut self, b: &Buf) -> Result<Arc<Buffer>, String> {
        let n = self.count(b);
        if let Src::Row(at) = b.src {
            let v: Vec<u32> = self
                .row_values(at, n)?
                .iter()
                .map(|x| x.to_bits())
                .collect();
            let d = self.run.upload_words(&v, Store::F32)?;
            self.run.moved.host_values += d.bytes();
            return Ok(d.buf);
        }
        let d = match &b.src {
            Src::Mask(m) => self.run.masks.get(m),
            src => self.cur.get(src).or_else(|| match src {
                Src::Field(f) => self.run.state.get(f),
                Src::Prev(h) => self.run.prev.get(h),
                _ => None,
            }),
        };
        let d = d.ok_or_else(|| match &b.src {
            Src::Field(f) => format!(
                "the step reads `{}`: give its value",
                self.run.p.fields[*f as usize].name
            ),
            _ => "internal error: a value is read before it is written".to_string(),
        })?;
        if d.n != n || d.store != b.store {
            return Err(format!(
                "internal error: a value of {} elements where {n} were planned",
                d.n
            ));
        }
        Ok(d.buf.clone())
    }

    fn put(&mut self, b: &Buf, d: Dev) {
        if let Src::Field(f) = b.src {
            self.written.retain(|x| *x != f);
            self.written.push(f);
        }
        if let Some(old) = self.cur.insert(b.src.clone(), d) {
            self.run.pool.push(old);
        }
    }

    /// End the phase: read its status word, turn failures into errors, and return the fields it
    /// wrote (its other values go back to the pool).
    fn finish(mut self) -> Result<Vec<(u32, Dev)>, String> {
        let status = self
            .run
            .gpu
            .read_u32(&self.status)
            .map_err(|e| e.to_string())?[0];
        self.run.moved.status += 4;
        let prog = &self.prep.unit.prog.name;
        if status & FAIL_INDEX != 0 {
            return Err(format!("{prog}: an index is outside its vector's range"));
        }
        if status & FAIL_CLASS != 0 {
            return Err(format!("{prog}: a class is outside its range"));
        }
        if status & FAIL_NONFINITE != 0 {
            for f in &self.written {
                let Some(d) = self.cur.get(&Src::Field(*f)) else {
                    continue;
                };
                if d.store != Store::F32 {
                    continue;
                }
                if let Data::F32(v) = self.run.download(d)? {
                    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                        return Err(format!(
                            "`{}` became {} at flat index {i} (t = {}, s = {:?})",
                            self.run.p.fields[*f as usize].name, v[i], self.t, self.s
                        ));
                    }
                }
            }
        }
        let mut out = Vec::new();
        for f in std::mem::take(&mut self.written) {
            if let Some(d) = self.cur.remove(&Src::Field(f)) {
                out.push((f, d));
            }
        }
        let rest: Vec<Dev> = self.cur.drain().map(|(_, d)| d).collect();
        self.run.pool.extend(rest);
        Ok(out)
    }
}

impl Runs for Phase<'_, '_, '_> {
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
        let kern = &self.prep.unit.plan.kernels[k];
        let (sizes, per) = plan::kernel_sizes(self.run.p, kern, &self.run.dims)?;
        let mut held: Vec<Arc<Buffer>> = Vec::with_capacity(bufs.len());
        let mut fresh: Vec<(usize, Dev)> = Vec::new();
        for (j, b) in bufs.iter().enumerate() {
            if b.out {
                let d = self.run.alloc(b.store, self.count(b))?;
                held.push(d.buf.clone());
                fresh.push((j, d));
            } else {
                held.push(self.read(b)?);
            }
        }
        let mut coefs: Vec<f32> = slots
            .iter()
            .map(|s| self.row.get(*s as usize).copied().unwrap_or(0.0))
            .collect();
        if coefs.is_empty() {
            coefs.push(0.0);
        }
        if self.run.batch > 0 && per > 0 {
            let coefs = self.run.gpu.upload_f32(&coefs).map_err(|e| e.to_string())?;
            let per_sample: Vec<u64> = bufs
                .iter()
                .map(|b| {
                    if b.batch {
                        4 * (self.count(b) as u64 / self.run.batch)
                    } else {
                        0
                    }
                })
                .collect();
            self.run.moved.host_values +=
                coefs.size() + 4 * (super::codegen::params_len(kern) as u64);
            let refs: Vec<&Buffer> = held.iter().map(|b| b.as_ref()).collect();
            dispatch(
                self.run.gpu,
                &OnDevice {
                    kernel: &self.prep.compiled.kernels[k],
                    kern,
                    bufs: &refs,
                    per_sample: &per_sample,
                    batch: self.run.batch,
                    base: 0,
                    per,
                    sizes: &sizes,
                    seed: self.run.seed,
                    step: match word {
                        Word::Step => self.k,
                        Word::Fixed(x) => x | self.word_or,
                    },
                    offset: offset.wrapping_add(self.offset),
                    coefs: &coefs,
                    status: &self.status,
                },
            )
            .map_err(|e| format!("kernel `{}` on the GPU: {e}", kern.name))?;
        }
        drop(held);
        for (j, d) in fresh {
            self.put(&bufs[j], d);
        }
        Ok(())
    }

    /// A network call: its inputs read back (or the caller's given values, or host values),
    /// its outputs uploaded.
    fn call(
        &mut self,
        net: usize,
        inputs: &[Buf],
        outputs: &[Buf],
        sym: &[Option<u32>],
    ) -> Result<(), String> {
        let p = self.run.p;
        let n = &p.networks[net];
        let mut args = Vec::with_capacity(inputs.len());
        for b in inputs {
            let count = self.count(b);
            let values = match &b.src {
                Src::Row(at) => NetValues::Reals(Arc::new(self.row_values(*at, count)?.to_vec())),
                Src::Field(f)
                    if !self.cur.contains_key(&b.src)
                        && self.run.given.contains_key(f)
                        && !self.run.state.get(f).is_some_and(|d| d.fresh) =>
                {
                    let t = self.run.given[f];
                    let name = &p.fields[*f as usize].name;
                    if self.net.takes_given(name) {
                        NetValues::Given(name.clone())
                    } else {
                        match &t.data {
                            Data::F32(v) => NetValues::Reals(Arc::new(v.clone())),
                            Data::Class(v) => NetValues::Classes(Arc::new(v.clone())),
                            Data::Bool(v) => {
                                NetValues::Bools(Arc::new(v.iter().map(|x| u8::from(*x)).collect()))
                            }
                        }
                    }
                }
                _ => {
                    let buf = self.read(b)?;
                    let d = Dev {
                        buf,
                        store: b.store,
                        n: count,
                        fresh: false,
                    };
                    let w = self.run.words(&d)?;
                    self.run.moved.net_in += d.bytes();
                    match b.store {
                        Store::F32 => {
                            NetValues::Reals(Arc::new(w.into_iter().map(f32::from_bits).collect()))
                        }
                        Store::U32 => NetValues::Classes(Arc::new(w)),
                        Store::U8 => {
                            NetValues::Bools(Arc::new(w.into_iter().map(|x| x as u8).collect()))
                        }
                    }
                }
            };
            args.push(NetInput {
                shape: self.shape(b),
                values,
            });
        }
        let outs = self.net.call(p, net, &args)?;
        drop(args);
        self.run.moved.net_calls += 1;
        check_count(&n.name, outs.len(), outputs.len())?;
        for ((a, b), (o, sym)) in outs.into_iter().zip(outputs).zip(n.outputs.iter().zip(sym)) {
            let name = format!("{}.{}", n.name, p.field(o.field).name);
            check_returned(&name, a.as_ref(), &self.shape(b), self.count(b))?;
            let x = a.values();
            check_finite(&name, x, 1, self.t, self.s)?;
            let words: Vec<u32> = match sym {
                Some(d) => {
                    let mut y = vec![0.0; x.len()];
                    mirror(
                        x,
                        &mut y,
                        self.run.dims[*d as usize] as usize,
                        b.width as usize,
                        1,
                    );
                    y.iter().map(|v| v.to_bits()).collect()
                }
                None => x.iter().map(|v| v.to_bits()).collect(),
            };
            let d = self.run.alloc(Store::F32, words.len())?;
            if !words.is_empty() {
                self.run
                    .gpu
                    .write(&d.buf, 0, &runtime::u32_bytes(&words))
                    .map_err(|e| e.to_string())?;
            }
            self.run.moved.net_out += d.bytes();
            self.put(b, d);
        }
        Ok(())
    }

    fn copy(&mut self, to: &Buf, from: &Buf, why: CopyWhy) -> Result<(), String> {
        // The history a step keeps: its own value, handed over as it lies.
        if why == CopyWhy::Keep && matches!(from.src, Src::Slot(_) | Src::Node(_)) {
            if let Some(mut d) = self.cur.remove(&from.src) {
                d.fresh = true;
                self.put(to, d);
                return Ok(());
            }
        }
        let m = self.count(from);
        let c = self.count(to);
        let d = self.run.alloc(to.store, c)?;
        if m > 0 && c > 0 {
            if let Src::Row(at) = from.src {
                // Host values repeated over the batch: written from the host.
                let v = self.row_values(at, m)?;
                let words: Vec<u32> = (0..c).map(|i| v[i % m].to_bits()).collect();
                self.run
                    .gpu
                    .write(&d.buf, 0, &runtime::u32_bytes(&words))
                    .map_err(|e| e.to_string())?;
                if m == c {
                    self.run.moved.host_values += 4 * c as u64;
                } else {
                    self.run.moved.other += 4 * c as u64;
                }
            } else {
                let src = self.read(from)?;
                // Value `i` of `to` is value `i % m` of `from`.
                let regions: Vec<(u64, u64, u64)> = (0..c.div_ceil(m))
                    .map(|r| {
                        let at = (r * m) as u64;
                        (0, 4 * at, 4 * (m.min(c - r * m)) as u64)
                    })
                    .collect();
                self.run
                    .gpu
                    .copy(&src, &d.buf, &regions)
                    .map_err(|e| e.to_string())?;
            }
        }
        self.put(to, d);
        Ok(())
    }
}
