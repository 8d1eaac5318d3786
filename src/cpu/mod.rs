//! The CPU backend: kernels compiled to native code by Cranelift.
//!
//! `run` and `sample` take the same calls as the interpreter's and give the same results: the
//! interpreter keeps the host's part (checking inputs, coefficients in f64, network calls, the
//! sampler's loop) and every element loop runs as a compiled kernel (`crate::kernel`).
//! A compiled program (`Compiled`) is specific to which draws the caller supplies and which
//! node masks it gives (`Variant`); `run` and `sample` compile what they need.
//!
//! Threads: a kernel's element range is split into contiguous pieces, one per thread, at
//! multiples of four elements; values never depend on the split (the generator is counter-based
//! and every element is computed alone).

pub mod aot;
pub mod codegen;

use crate::interp::{self, Accel, Call, Ctx, Data, Denoiser, NetCall, SampleCall, Tensor, Val};
use crate::ir::{Extent, Node, NodeId, Op, Program, SamplerProgram};
use crate::kernel::build::{self, op_key, Plan, Variant};
use crate::kernel::{BufSrc, Kernel, Store, Target, FAIL_CLASS, FAIL_INDEX, FAIL_NONFINITE};
use crate::typed::Process;
pub use codegen::Checks;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::{JITBuilder, JITModule};
use std::cell::RefCell;
use std::collections::HashMap;

/// A compiled kernel: `(bufs, coefs, sizes, start, end, seed, step, offset, status)`.
pub type KernelFn =
    unsafe extern "C" fn(*const *mut u8, *const f32, *const u64, u64, u64, u64, u64, u64, *mut u32);

/// How kernels run.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Threads per kernel (at most; small ranges use fewer).
    pub threads: usize,
    /// Elements below which a kernel runs on one thread.
    pub min_per_thread: usize,
}

impl Default for Options {
    fn default() -> Self {
        let threads = std::env::var("DIFFC_THREADS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        Options {
            threads: threads.max(1),
            min_per_thread: 1 << 15,
        }
    }
}

/// Statements above which a plan's register allocation uses Cranelift's single-pass allocator:
/// the backtracking one gives better code but its time grows fast with function size (a D3PM
/// mixture step, about 8,000 statements, takes 0.37 s with it and 0.11 s without).
pub const LARGE_PLAN: usize = 3000;

/// The target ISA of this machine (for the JIT) or a position-independent one (for objects
/// linked into shared libraries); `fast_regalloc` picks the single-pass register allocator.
pub fn isa(pic: bool, fast_regalloc: bool) -> Result<OwnedTargetIsa, String> {
    let mut fb = settings::builder();
    fb.set("opt_level", "speed").map_err(|e| e.to_string())?;
    fb.set(
        "regalloc_algorithm",
        if fast_regalloc {
            "single_pass"
        } else {
            "backtracking"
        },
    )
    .map_err(|e| e.to_string())?;
    // `codegen` runs the verifier on every function it builds; once is enough.
    fb.set("enable_verifier", "false")
        .map_err(|e| e.to_string())?;
    fb.set("is_pic", if pic { "true" } else { "false" })
        .map_err(|e| e.to_string())?;
    let ib = cranelift_native::builder().map_err(|e| e.to_string())?;
    ib.finish(settings::Flags::new(fb))
        .map_err(|e| e.to_string())
}

// The C math functions, through Rust's own methods so that kernels call exactly what the
// interpreter calls.
extern "C" fn expf_(x: f32) -> f32 {
    x.exp()
}
extern "C" fn logf_(x: f32) -> f32 {
    x.ln()
}
extern "C" fn expm1f_(x: f32) -> f32 {
    x.exp_m1()
}
extern "C" fn log1pf_(x: f32) -> f32 {
    x.ln_1p()
}
extern "C" fn sinf_(x: f32) -> f32 {
    x.sin()
}
extern "C" fn cosf_(x: f32) -> f32 {
    x.cos()
}
extern "C" fn tanhf_(x: f32) -> f32 {
    x.tanh()
}
extern "C" fn powf_(x: f32, y: f32) -> f32 {
    x.powf(y)
}
extern "C" fn log_(x: f64) -> f64 {
    x.ln()
}

fn libm_symbols() -> Vec<(&'static str, *const u8)> {
    vec![
        ("expf", expf_ as *const u8),
        ("logf", logf_ as *const u8),
        ("expm1f", expm1f_ as *const u8),
        ("log1pf", log1pf_ as *const u8),
        ("sinf", sinf_ as *const u8),
        ("cosf", cosf_ as *const u8),
        ("tanhf", tanhf_ as *const u8),
        ("powf", powf_ as *const u8),
        ("log", log_ as *const u8),
    ]
}

/// A plan's kernels in executable memory.
pub struct Compiled {
    pub plan: Plan,
    pub fns: Vec<KernelFn>,
    /// Each kernel's Cranelift IR, as compiled (empty unless `Checks::ir_text`).
    pub clif: Vec<String>,
    module: Option<JITModule>,
}

impl Drop for Compiled {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: the functions are only reachable through `self.fns`, which dies with self.
            unsafe { m.free_memory() };
        }
    }
}

/// The symbol of kernel `i` of a plan.
pub fn symbol(i: usize, k: &Kernel) -> String {
    format!("diffc_k{i}_{}", k.name)
}

/// Statements in a plan's kernels.
pub fn plan_size(plan: &Plan) -> usize {
    let mut n = 0;
    for k in &plan.kernels {
        k.walk(&mut |_| n += 1);
    }
    n
}

/// Threads that compile a plan's kernels: the machine's cores.
pub fn compile_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// JIT-compile a plan, verifying its functions in debug builds only (`Checks::jit`).
pub fn compile(plan: Plan) -> Result<Compiled, String> {
    compile_with(plan, Checks::jit())
}

/// JIT-compile a plan, keeping IR text and running the verifier as `checks` says.
pub fn compile_with(plan: Plan, checks: Checks) -> Result<Compiled, String> {
    let large = plan_size(&plan) > LARGE_PLAN;
    let mut jb = JITBuilder::with_isa(
        isa(false, large)?,
        cranelift_module::default_libcall_names(),
    );
    for (name, ptr) in libm_symbols() {
        jb.symbol(name, ptr);
    }
    let mut module = JITModule::new(jb);
    let libm = codegen::declare_libm(&mut module)?;
    let fills = plan.kernels.iter().any(codegen::fills_draws);
    let rng = codegen::define_rng(&mut module, fills, checks)?;
    let libm4 = codegen::define_libm4(&mut module, &libm, checks)?;
    let mut ids = Vec::new();
    let mut built = Vec::new();
    let mut clif = Vec::new();
    for (i, k) in plan.kernels.iter().enumerate() {
        let (f, text) = codegen::build(&mut module, k, &libm, &libm4, rng, &symbol(i, k), checks)?;
        ids.push(f.id);
        built.push(f);
        clif.push(text);
    }
    codegen::compile_fns(&mut module, built, compile_threads())?;
    module
        .finalize_definitions()
        .map_err(|e| format!("cannot finalize kernels: {e}"))?;
    let fns = ids
        .iter()
        .map(|id| {
            let p = module.get_finalized_function(*id);
            // SAFETY: every kernel is defined with `codegen::signature`, which is `KernelFn`.
            unsafe { std::mem::transmute::<*const u8, KernelFn>(p) }
        })
        .collect();
    Ok(Compiled {
        plan,
        fns,
        clif,
        module: Some(module),
    })
}

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
            .filter(|(_, d)| draws.contains_key(&d.name))
            .map(|(i, _)| i as u32)
            .collect(),
        masks: p
            .masks
            .iter()
            .enumerate()
            .filter(|(_, m)| masks.contains_key(&m.name))
            .map(|(i, _)| i as u32)
            .collect(),
    }
}

/// Compile an entry for a call's variant.
pub fn compile_entry(p: &Process, prog: &Program, v: &Variant) -> Result<Compiled, String> {
    compile(build::plan_entry(p, prog, v)?)
}

/// Compile a sampler for a call's variant.
pub fn compile_sampler(p: &Process, sp: &SamplerProgram, v: &Variant) -> Result<Compiled, String> {
    compile(build::plan_sampler(p, sp, v)?)
}

/// Run an entry on the CPU backend (compiling it first).
pub fn run(p: &Process, prog: &Program, call: &Call) -> Result<Vec<Tensor>, String> {
    run_opts(p, prog, call, Options::default())
}

pub fn run_opts(
    p: &Process,
    prog: &Program,
    call: &Call,
    opts: Options,
) -> Result<Vec<Tensor>, String> {
    let c = compile_entry(p, prog, &variant(p, prog, &call.draws, &call.masks))?;
    run_compiled(p, prog, call, &c, opts)
}

/// Run an entry compiled for the call's variant.
pub fn run_compiled(
    p: &Process,
    prog: &Program,
    call: &Call,
    c: &Compiled,
    opts: Options,
) -> Result<Vec<Tensor>, String> {
    let r = Runner {
        c,
        opts,
        launches: RefCell::new(Vec::new()),
    };
    interp::run_with(p, prog, call, Some(&r))
}

/// Run a sampler on the CPU backend.
pub fn sample(
    p: &Process,
    sp: &SamplerProgram,
    call: &SampleCall,
    denoiser: &mut dyn Denoiser,
) -> Result<HashMap<String, Tensor>, String> {
    sample_opts(p, sp, call, denoiser, Options::default())
}

pub fn sample_opts(
    p: &Process,
    sp: &SamplerProgram,
    call: &SampleCall,
    denoiser: &mut dyn Denoiser,
    opts: Options,
) -> Result<HashMap<String, Tensor>, String> {
    sample_counted(p, sp, call, denoiser, opts).map(|(out, _)| out)
}

/// Run a sampler and count the kernel launches it made.
pub fn sample_counted(
    p: &Process,
    sp: &SamplerProgram,
    call: &SampleCall,
    denoiser: &mut dyn Denoiser,
    opts: Options,
) -> Result<(HashMap<String, Tensor>, usize), String> {
    let c = compile_sampler(p, sp, &variant(p, &sp.prog, &call.draws, &call.masks))?;
    let (out, launches) = sample_recorded(p, sp, call, denoiser, &c, opts)?;
    Ok((out, launches.len()))
}

/// Run a sampler compiled for the call's variant, and return the launches it made in order.
pub fn sample_recorded(
    p: &Process,
    sp: &SamplerProgram,
    call: &SampleCall,
    denoiser: &mut dyn Denoiser,
    c: &Compiled,
    opts: Options,
) -> Result<(HashMap<String, Tensor>, Vec<Launch>), String> {
    let r = Runner {
        c,
        opts,
        launches: RefCell::new(Vec::new()),
    };
    let out = interp::sample_with(p, sp, call, denoiser, Some(&r))?;
    Ok((out, r.launches.into_inner()))
}

/// One kernel launch as the runtime made it: everything but the buffers' contents, so that a
/// benchmark (or any host) can repeat it on buffers of its own.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The kernel's index in its plan.
    pub kernel: usize,
    pub coefs: Vec<f32>,
    pub sizes: Vec<u64>,
    /// Flat elements: the batch times the kernel's domain.
    pub total: usize,
    pub seed: u64,
    pub step: u64,
    pub offset: u64,
    /// Bytes of each buffer, in the kernel's order.
    pub bytes: Vec<usize>,
}

impl Compiled {
    /// Repeat a recorded launch on caller-owned buffers; returns the status word.
    ///
    /// # Safety
    /// `bufs[j]` must point to at least `l.bytes[j]` bytes, suitably aligned for the kernel's
    /// buffer `j`, and output buffers must not overlap any other buffer.
    pub unsafe fn launch(&self, l: &Launch, bufs: &[*mut u8], opts: Options) -> u32 {
        assert_eq!(bufs.len(), self.plan.kernels[l.kernel].bufs.len());
        let args = Args {
            f: self.fns[l.kernel],
            bufs: bufs.as_ptr(),
            coefs: l.coefs.as_ptr(),
            sizes: l.sizes.as_ptr(),
            seed: l.seed,
            step: l.step,
            offset: l.offset,
        };
        launch(args, l.total, opts)
    }
}

struct Runner<'c> {
    c: &'c Compiled,
    opts: Options,
    launches: RefCell<Vec<Launch>>,
}

/// Statements a run leaves to the host never call networks.
struct NoNetwork;

impl Denoiser for NoNetwork {
    fn denoise(&mut self, _: &Process, _: &NetCall) -> Result<Vec<Tensor>, String> {
        Err("internal error: a host statement of a kernel run called a network".into())
    }
}

impl Accel for Runner<'_> {
    fn node(&self, cx: &mut Ctx, id: NodeId) -> Option<Result<(), String>> {
        if let Some(k) = self.c.plan.by_node.get(&id) {
            return Some(self.run_kernel(cx, *k));
        }
        let info = cx.prog.node(id);
        if info.extent == Extent::Uniform || build::is_leaf(&info.node) {
            return None;
        }
        Some(Err(cx.bug("a node without a kernel on the CPU backend")))
    }

    fn ops(&self, cx: &mut Ctx, ops: &[Op], at: usize) -> Option<Result<usize, String>> {
        let key = op_key(&ops[at])?;
        let Some(g) = self.c.plan.groups.get(&key) else {
            return Some(Err(
                cx.bug("a statement without a kernel on the CPU backend")
            ));
        };
        let mut run = || -> Result<usize, String> {
            for h in &g.host {
                cx.exec_op(&ops[at + h], &mut NoNetwork)?;
            }
            if let Some(k) = g.kernel {
                self.run_kernel(cx, k)?;
            }
            Ok(g.len)
        };
        Some(run())
    }

    fn entry(&self, p: &Process, prog: &Program, call: &Call) -> Result<Vec<Tensor>, String> {
        run_opts(p, prog, call, self.opts)
    }
}

/// Pointers handed to kernel threads.
#[derive(Clone, Copy)]
struct Args {
    f: KernelFn,
    bufs: *const *mut u8,
    coefs: *const f32,
    sizes: *const u64,
    seed: u64,
    step: u64,
    offset: u64,
}

// SAFETY: the buffers outlive the scoped threads, which write disjoint element ranges.
unsafe impl Send for Args {}
unsafe impl Sync for Args {}

enum Out {
    F32(Vec<f32>),
    U32(Vec<u32>),
    Bool(Vec<bool>),
}

impl Runner<'_> {
    fn run_kernel(&self, cx: &mut Ctx, k: usize) -> Result<(), String> {
        let kern = &self.c.plan.kernels[k];
        let batch = cx.call.batch;
        let sizes: Vec<u64> = kern
            .dims
            .iter()
            .map(|d| {
                cx.sizes.get(d).map(|n| *n as u64).ok_or_else(|| {
                    format!("the size of `{d}` is not known: give it with --set {d}=N")
                })
            })
            .collect::<Result<_, _>>()?;
        let per: usize = kern
            .domain
            .iter()
            .map(|d| sizes[*d as usize] as usize)
            .product();
        let total = batch * per;
        // Bind the buffers, checking that every one holds what the kernel reads.
        let call = cx.call;
        // Inputs already held (state, slots, history, network outputs, computed nodes) are bound
        // in place after every other input is computed; the rest are evaluated here.
        let mut held: Vec<(usize, NodeId, usize)> = Vec::new();
        let mut inputs: Vec<(usize, Val)> = Vec::new();
        let mut outs: Vec<(usize, Out)> = Vec::new();
        let mut ptrs: Vec<*mut u8> = vec![std::ptr::null_mut(); kern.bufs.len()];
        for (j, b) in kern.bufs.iter().enumerate() {
            let width = b.width as usize;
            match &b.src {
                BufSrc::Node(id) => {
                    let info = cx.prog.node(*id);
                    let want = match info.extent {
                        Extent::Uniform => 1,
                        Extent::Sample => batch,
                        Extent::Element => batch * cx.per_sample(&info.shape.clone())?,
                    } * width;
                    if held_val(cx, *id).is_some() {
                        held.push((j, *id, want));
                        continue;
                    }
                    let v = cx.eval(*id)?;
                    let (len, ok) = match &v {
                        Val::R(x) | Val::V(_, x) => (x.len(), b.store == Store::F32),
                        Val::C(x) => (x.len(), b.store == Store::U32),
                        Val::B(x) => (x.len(), b.store == Store::U8),
                        Val::M(_, x) => (x.len(), false),
                    };
                    if len != want || !ok {
                        return Err(cx.bug(&format!(
                            "kernel `{}` buffer {j} holds {len} values, expected {want}",
                            kern.name
                        )));
                    }
                    inputs.push((j, v));
                }
                BufSrc::Draw(site) => {
                    let name = &cx.prog.draws[*site as usize].name;
                    let t = call
                        .draws
                        .get(name)
                        .ok_or_else(|| cx.bug("a supplied draw went missing"))?;
                    let Data::F32(x) = &t.data else {
                        return Err(format!("supplied `{name}` must hold reals"));
                    };
                    if x.len() < total * width {
                        return Err(format!(
                            "supplied `{name}` holds {} values, expected {}",
                            x.len(),
                            total * width
                        ));
                    }
                    // Kernels only read their inputs.
                    ptrs[j] = x.as_ptr() as *mut u8;
                }
                BufSrc::Mask(m) => {
                    let name = &cx.p.masks[*m as usize].name;
                    let t = call
                        .masks
                        .get(name)
                        .ok_or_else(|| cx.bug("a mask went missing"))?;
                    let Data::Bool(x) = &t.data else {
                        return Err(format!("mask `{name}` must hold bools"));
                    };
                    ptrs[j] = x.as_ptr() as *mut u8;
                }
                BufSrc::Out(_) => {
                    let n = total * width;
                    outs.push((
                        j,
                        match b.store {
                            Store::F32 => Out::F32(vec![0.0; n]),
                            Store::U32 => Out::U32(vec![0; n]),
                            Store::U8 => Out::Bool(vec![false; n]),
                        },
                    ));
                }
            }
        }
        for (j, v) in inputs.iter_mut() {
            ptrs[*j] = match v {
                Val::R(x) | Val::V(_, x) | Val::M(_, x) => x.as_mut_ptr() as *mut u8,
                Val::C(x) => x.as_mut_ptr() as *mut u8,
                Val::B(x) => x.as_mut_ptr() as *mut u8,
            };
        }
        for (j, o) in outs.iter_mut() {
            ptrs[*j] = match o {
                Out::F32(x) => x.as_mut_ptr() as *mut u8,
                Out::U32(x) => x.as_mut_ptr() as *mut u8,
                Out::Bool(x) => x.as_mut_ptr() as *mut u8,
            };
        }
        let mut coefs = Vec::with_capacity(kern.coefs.len());
        for (c, q) in &kern.coefs {
            let v = cx.coef(*c)?;
            let q = *q as usize;
            coefs.push(match &v {
                Val::R(x) => x[0],
                Val::V(_, x) | Val::M(_, x) => x[q],
                Val::B(x) => x[0] as u8 as f32,
                Val::C(x) => x[0] as f32,
            });
        }
        for &(j, id, want) in &held {
            let v = held_val(cx, id).ok_or_else(|| cx.bug("a held input went missing"))?;
            let b = &kern.bufs[j];
            let (len, ok, ptr) = match v {
                Val::R(x) | Val::V(_, x) => (x.len(), b.store == Store::F32, x.as_ptr() as *mut u8),
                Val::C(x) => (x.len(), b.store == Store::U32, x.as_ptr() as *mut u8),
                Val::B(x) => (x.len(), b.store == Store::U8, x.as_ptr() as *mut u8),
                Val::M(_, x) => (x.len(), false, x.as_ptr() as *mut u8),
            };
            if len != want || !ok {
                return Err(cx.bug(&format!(
                    "kernel `{}` buffer {j} holds {len} values, expected {want}",
                    kern.name
                )));
            }
            // Kernels only read their inputs, and nothing changes these values until the
            // launch below has returned.
            ptrs[j] = ptr;
        }
        self.launches.borrow_mut().push(Launch {
            kernel: k,
            coefs: coefs.clone(),
            sizes: sizes.clone(),
            total,
            seed: cx.call.seed,
            step: cx.step as u64,
            offset: cx.draw_offset,
            bytes: kern
                .bufs
                .iter()
                .zip(&ptrs)
                .enumerate()
                .map(|(j, (b, _))| {
                    if let Some((_, _, want)) = held.iter().find(|(i, _, _)| *i == j) {
                        return want * b.store.bytes();
                    }
                    let n = match (&b.src, inputs.iter().find(|(i, _)| *i == j)) {
                        (_, Some((_, v))) => match v {
                            Val::R(x) | Val::V(_, x) | Val::M(_, x) => x.len(),
                            Val::C(x) => x.len(),
                            Val::B(x) => x.len(),
                        },
                        _ => total * b.width as usize,
                    };
                    n * b.store.bytes()
                })
                .collect(),
        });
        let args = Args {
            f: self.c.fns[k],
            bufs: ptrs.as_ptr(),
            coefs: coefs.as_ptr(),
            sizes: sizes.as_ptr(),
            seed: cx.call.seed,
            step: cx.step as u64,
            offset: cx.draw_offset,
        };
        let status = launch(args, total, self.opts);
        if status & FAIL_INDEX != 0 {
            return Err(format!(
                "{}: an index is outside its vector's range",
                cx.prog.name
            ));
        }
        if status & FAIL_CLASS != 0 {
            return Err(format!("{}: a class is outside its range", cx.prog.name));
        }
        for (j, o) in outs {
            let b = &kern.bufs[j];
            let v = match o {
                Out::F32(x) if b.width > 1 => Val::V(b.width as usize, x),
                Out::F32(x) => Val::R(x),
                Out::U32(x) => Val::C(x),
                Out::Bool(x) => Val::B(x),
            };
            match b.src {
                BufSrc::Out(Target::Node(id)) => cx.vals[id.index()] = Some(v),
                BufSrc::Out(Target::Slot(s)) => cx.slots[s as usize] = Some(v),
                BufSrc::Out(Target::Field(f)) => {
                    // The kernel flags a non-finite value; the host names the first one.
                    if status & FAIL_NONFINITE != 0 {
                        cx.check_finite(&v, &cx.p.fields[f as usize].name)?;
                    }
                    cx.state[f as usize] = Some(v);
                }
                _ => unreachable!(),
            }
        }
        Ok(())
    }
}

/// A node's value where the context already holds it, without evaluating (or copying) it.
fn held_val<'c>(cx: &'c Ctx, id: NodeId) -> Option<&'c Val> {
    if let Some(v) = &cx.vals[id.index()] {
        return Some(v);
    }
    match cx.prog.node(id).node {
        Node::State(f) => cx.state.get(f as usize)?.as_ref(),
        Node::Slot(s) => cx.slots.get(s as usize)?.as_ref(),
        Node::Prev(s) => cx.prev.get(s as usize)?.as_ref(),
        Node::NetOut { call, output } => cx.net.get(call as usize)?.get(output as usize),
        _ => None,
    }
}

/// Run a kernel over `0..total`, split over threads; returns the OR of the status words.
fn launch(a: Args, total: usize, opts: Options) -> u32 {
    let threads = opts
        .threads
        .min(total.div_ceil(opts.min_per_thread.max(1)))
        .max(1);
    fn call(a: Args, start: usize, end: usize) -> u32 {
        let mut status = 0u32;
        // SAFETY: the buffers hold every element the kernel reads or writes for 0..total
        // (checked by the caller), and ranges of different threads do not overlap.
        unsafe {
            (a.f)(
                a.bufs,
                a.coefs,
                a.sizes,
                start as u64,
                end as u64,
                a.seed,
                a.step,
                a.offset,
                &mut status,
            )
        };
        status
    }
    if threads == 1 {
        return call(a, 0, total);
    }
    let chunk = total.div_ceil(threads).next_multiple_of(4);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (lo, hi) = ((t * chunk).min(total), ((t + 1) * chunk).min(total));
                s.spawn(move || call(a, lo, hi))
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or(u32::MAX))
            .fold(0, |x, y| x | y)
    })
}
