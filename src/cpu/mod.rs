//! The CPU backend: kernels compiled to native code by Cranelift.
//!
//! `run` and `sample` take the same calls as the interpreter's and give the same results: the
//! interpreter keeps the host's part (checking inputs, coefficients in f64, network calls, the
//! sampler's loop) and every element loop runs as a compiled kernel (`crate::kernel`).
//! A compiled program (`Compiled`) is specific to which draws the caller supplies and which
//! node masks it gives (`Variant`); `run` and `sample` compile what they need.
//!
//! Threads: a kernel's element range is split into contiguous parts at multiples of four
//! elements, run on `rayon`'s pool; values never depend on the split (the generator is
//! counter-based and every element is computed alone).

pub mod aot;
pub mod codegen;
pub mod lean;
pub mod native;

use crate::interp::{self, Call, Ctx, Denoiser, SampleCall, Shared, Tensor, Val};
use crate::ir::{Program, SamplerProgram};
use crate::kernel::bind::{self, Arg};
use crate::kernel::build::{self, Plan, Variant};
use crate::kernel::{Kernel, Store};
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
    /// Parts a kernel's range is split into, at most (small ranges use fewer); the parts run on
    /// `rayon`'s pool, whose size sets how many run at once.
    pub threads: usize,
    /// Elements below which a kernel runs as one part, on the calling thread.
    pub min_per_thread: usize,
}

impl Default for Options {
    /// `DIFFC_THREADS` parts where it is set to a positive number, else one per thread of the
    /// pool (`RAYON_NUM_THREADS`, or the CLI's `--threads`, else every core).
    fn default() -> Self {
        let threads = std::env::var("DIFFC_THREADS")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or_else(rayon::current_num_threads);
        Options {
            threads,
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

// SAFETY: a `Compiled` is its plan, its kernels' entry points and the JIT module that owns their
// executable memory; none of them changes after compilation (the module is touched again only
// to free the memory when the program is dropped), and the kernels are pure functions of the
// buffers a call passes them, so a program may be used from any thread, by several at once.
unsafe impl Send for Compiled {}
unsafe impl Sync for Compiled {}

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
    if checks.native {
        for (name, ptr) in native::symbols().into_iter().flatten() {
            jb.symbol(name, ptr);
        }
    }
    let mut module = JITModule::new(jb);
    let libm = codegen::declare_libm(&mut module)?;
    let rng = codegen::define_rng(&mut module, codegen::RngNeeds::of(&plan.kernels), checks)?;
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
    codegen::compile_fns(&mut module, built)?;
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
    let c = compile_entry(
        p,
        prog,
        &crate::plan::variant(p, prog, &call.draws, &call.masks),
    )?;
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
    let c = compile_sampler(
        p,
        sp,
        &crate::plan::variant(p, &sp.prog, &call.draws, &call.masks),
    )?;
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
        launch(args, 0..l.total, opts)
    }
}

struct Runner<'c> {
    c: &'c Compiled,
    opts: Options,
    launches: RefCell<Vec<Launch>>,
}

impl bind::PlanRunner for Runner<'_> {
    const BACKEND: &'static str = "the CPU backend";
    fn plan(&self) -> &Plan {
        &self.c.plan
    }
    fn run_kernel(&self, cx: &mut Ctx, k: usize) -> Result<(), String> {
        Runner::run_kernel(self, cx, k)
    }
    fn run_entry(&self, p: &Process, prog: &Program, call: &Call) -> Result<Vec<Tensor>, String> {
        run_opts(p, prog, call, self.opts)
    }
}

/// Pointers handed to the parts of a launch.
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

// SAFETY: the buffers outlive the launch, whose parts write disjoint element ranges.
unsafe impl Send for Args {}
unsafe impl Sync for Args {}

impl Runner<'_> {
    fn run_kernel(&self, cx: &mut Ctx, k: usize) -> Result<(), String> {
        let kern = &self.c.plan.kernels[k];
        bind::launch(cx, kern, |l| {
            let mut outs: Vec<(usize, Val)> = Vec::new();
            for (j, (b, a)) in kern.bufs.iter().zip(&l.args).enumerate() {
                if let Arg::Out(n) = a {
                    outs.push((
                        j,
                        match b.store {
                            Store::F32 => bind::out_val(b.width, vec![0.0; *n]),
                            Store::U32 => Val::C(Shared::new(vec![0; *n])),
                            Store::U8 => Val::B(Shared::new(vec![false; *n])),
                        },
                    ));
                }
            }
            let mut ptrs: Vec<*mut u8> = l
                .args
                .iter()
                .map(|a| match a {
                    // Kernels only read their inputs.
                    Arg::F32(x) => x.as_ptr() as *mut u8,
                    Arg::U32(x) => x.as_ptr() as *mut u8,
                    Arg::Bool(x) => x.as_ptr() as *mut u8,
                    Arg::Out(_) => std::ptr::null_mut(),
                })
                .collect();
            for (j, v) in outs.iter_mut() {
                ptrs[*j] = match v {
                    // Fresh buffers: `make_mut` copies nothing.
                    Val::R(x) | Val::V(_, x) | Val::M(_, x) => {
                        Shared::make_mut(x).as_mut_ptr() as *mut u8
                    }
                    Val::C(x) => Shared::make_mut(x).as_mut_ptr() as *mut u8,
                    Val::B(x) => Shared::make_mut(x).as_mut_ptr() as *mut u8,
                };
            }
            self.launches.borrow_mut().push(Launch {
                kernel: k,
                coefs: l.coefs.clone(),
                sizes: l.sizes.clone(),
                total: l.total,
                seed: l.seed,
                step: l.step,
                offset: l.offset,
                bytes: kern
                    .bufs
                    .iter()
                    .zip(&l.args)
                    .map(|(b, a)| a.len() * b.store.bytes())
                    .collect(),
            });
            // Buffers of samples `base..`: the kernel indexes them as the whole batch's, so
            // each pointer is moved back by the samples before `base` (never dereferenced
            // there: the kernel runs over this call's samples only).
            let per = l.total.checked_div(l.batch).unwrap_or(0);
            if l.base > 0 {
                for (j, b) in kern.bufs.iter().enumerate() {
                    let skip = l.base * l.per_sample(j) * b.store.bytes();
                    ptrs[j] = ptrs[j].wrapping_sub(skip);
                }
            }
            let args = Args {
                f: self.c.fns[k],
                bufs: ptrs.as_ptr(),
                coefs: l.coefs.as_ptr(),
                sizes: l.sizes.as_ptr(),
                seed: l.seed,
                step: l.step,
                offset: l.offset,
            };
            let first = l.base * per;
            Ok((launch(args, first..first + l.total, self.opts), outs))
        })
    }
}

/// Run a kernel over the flat elements `range`, split into parts on `rayon`'s pool; returns the
/// OR of the status words.
fn launch(a: Args, range: std::ops::Range<usize>, opts: Options) -> u32 {
    use rayon::prelude::*;
    let (first, total) = (range.start, range.len());
    let parts = opts
        .threads
        .min(total.div_ceil(opts.min_per_thread.max(1)))
        .max(1);
    fn call(a: Args, start: usize, end: usize) -> u32 {
        let mut status = 0u32;
        // SAFETY: the buffers hold every element the kernel reads or writes for 0..total
        // (checked by the caller), and ranges of different parts do not overlap.
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
    if parts == 1 {
        return call(a, first, first + total);
    }
    // Parts start at multiples of four, as the kernel ABI asks (any such split gives the same
    // values).
    let chunk = total.div_ceil(parts).next_multiple_of(4);
    (0..parts)
        .into_par_iter()
        .map(|t| {
            let (lo, hi) = ((t * chunk).min(total), ((t + 1) * chunk).min(total));
            call(a, first + lo, first + hi)
        })
        .reduce(|| 0, |x, y| x | y)
}
