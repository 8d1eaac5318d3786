//! Entries and samplers on the GPU: the CPU backend's plans, with every kernel a WGSL compute
//! shader run through wgpu.
//!
//! The interpreter keeps the host's part (checking inputs, coefficients in f64, network calls,
//! the sampler's loop), exactly as on the CPU backend; each kernel launch uploads the buffers it
//! reads, runs, and reads back the buffers it writes. Bools travel as one u32 word each.
//!
//! Arrays larger than one binding (`max_storage_buffer_binding_size`) are split by samples: a
//! chunk binds the samples `s0..s1` of every per-sample buffer at its byte offset, passes the
//! index of each buffer's first bound value as its base, and runs the launch's own flat
//! elements `s0 · per .. s1 · per`, so indices and draws are those of one launch over the
//! whole batch.

use super::codegen::{self, WORKGROUP};
use super::runtime::{self, Access, Binding, Dispatch, Gpu, GpuError, ShaderCode};
use crate::interp::{self, Call, Ctx, Denoiser, SampleCall, Shared, Tensor, Val};
use crate::ir::{Program, SamplerProgram};
use crate::kernel::bind::{self, Arg, PlanRunner};
use crate::kernel::build::{self, Plan};
use crate::kernel::Store;
use crate::typed::Process;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The device every call of this process shares (created on first use; the adapter is picked
/// as `runtime::Options::from_env` says).
pub fn device() -> Result<&'static Gpu, String> {
    static GPU: OnceLock<Result<Gpu, GpuError>> = OnceLock::new();
    GPU.get_or_init(|| Gpu::with_options(&runtime::Options::from_env()))
        .as_ref()
        .map_err(|e| format!("the GPU backend: {e}"))
}

/// A plan with each kernel built as a pipeline.
pub struct Compiled {
    pub plan: Plan,
    pub kernels: Vec<Arc<runtime::Kernel>>,
}

/// The bindings of a kernel: params, coefficients, status, then its buffers.
pub fn access(k: &crate::kernel::Kernel) -> Vec<Access> {
    [Access::Read, Access::Read, Access::ReadWrite]
        .into_iter()
        .chain(k.bufs.iter().map(|b| {
            if b.output {
                Access::ReadWrite
            } else {
                Access::Read
            }
        }))
        .collect()
}

/// Build every kernel of a plan (pipelines are cached by WGSL text, so a plan built again
/// reuses them).
pub fn compile(gpu: &Gpu, plan: Plan) -> Result<Compiled, String> {
    let mut kernels = Vec::with_capacity(plan.kernels.len());
    for k in &plan.kernels {
        let s = codegen::shader(k)?;
        let module = s.module;
        let kern = gpu
            .kernel(&s.wgsl, &s.entry, &access(k), || {
                ShaderCode::Naga(Box::new(module))
            })
            .map_err(|e| format!("kernel `{}`: {e}", k.name))?;
        kernels.push(kern);
    }
    Ok(Compiled { plan, kernels })
}

/// Run an entry on the GPU.
pub fn run(p: &Process, prog: &Program, call: &Call) -> Result<Vec<Tensor>, String> {
    run_on(device()?, p, prog, call)
}

/// Run an entry on a given device.
pub fn run_on(gpu: &Gpu, p: &Process, prog: &Program, call: &Call) -> Result<Vec<Tensor>, String> {
    let v = crate::plan::variant(p, prog, &call.draws, &call.masks);
    let c = compile(gpu, build::plan_entry(p, prog, &v)?)?;
    interp::run_with(p, prog, call, Some(&Runner { gpu, c: &c }))
}

/// Run a sampler on the GPU.
pub fn sample(
    p: &Process,
    sp: &SamplerProgram,
    call: &SampleCall,
    denoiser: &mut dyn Denoiser,
) -> Result<HashMap<String, Tensor>, String> {
    sample_on(device()?, p, sp, call, denoiser)
}

/// Run a sampler on a given device.
pub fn sample_on(
    gpu: &Gpu,
    p: &Process,
    sp: &SamplerProgram,
    call: &SampleCall,
    denoiser: &mut dyn Denoiser,
) -> Result<HashMap<String, Tensor>, String> {
    let v = crate::plan::variant(p, &sp.prog, &call.draws, &call.masks);
    let c = compile(gpu, build::plan_sampler(p, sp, &v)?)?;
    interp::sample_with(p, sp, call, denoiser, Some(&Runner { gpu, c: &c }))
}

struct Runner<'c> {
    gpu: &'c Gpu,
    c: &'c Compiled,
}

impl PlanRunner for Runner<'_> {
    const BACKEND: &'static str = "the GPU backend";
    fn plan(&self) -> &Plan {
        &self.c.plan
    }
    fn run_kernel(&self, cx: &mut Ctx, k: usize) -> Result<(), String> {
        let kern = &self.c.plan.kernels[k];
        bind::launch(cx, kern, |l| {
            self.launch(k, l)
                .map_err(|e| format!("kernel `{}` on the GPU: {e}", kern.name))
        })
    }
    fn run_entry(&self, p: &Process, prog: &Program, call: &Call) -> Result<Vec<Tensor>, String> {
        run_on(self.gpu, p, prog, call)
    }
}

fn err(e: GpuError) -> String {
    e.to_string()
}

impl Runner<'_> {
    fn launch(&self, k: usize, l: &bind::Launch) -> Result<(u32, Vec<(usize, Val)>), String> {
        let kern = &self.c.plan.kernels[k];
        let gpu = self.gpu;
        let outs_of = |read: &mut dyn FnMut(usize, usize) -> Result<Vec<u32>, String>| {
            let mut outs = Vec::new();
            for (j, (b, a)) in kern.bufs.iter().zip(&l.args).enumerate() {
                if let Arg::Out(n) = a {
                    let words = read(j, *n)?;
                    outs.push((
                        j,
                        match b.store {
                            Store::F32 => bind::out_val(
                                b.width,
                                words.into_iter().map(f32::from_bits).collect(),
                            ),
                            Store::U32 => Val::C(Shared::new(words)),
                            Store::U8 => {
                                Val::B(words.into_iter().map(|w| w != 0).collect::<Vec<_>>().into())
                            }
                        },
                    ));
                }
            }
            Ok::<_, String>(outs)
        };
        if l.total == 0 {
            let outs = outs_of(&mut |_, n| Ok(vec![0; n]))?;
            return Ok((0, outs));
        }
        // Every buffer on the device, at least one word long.
        let mut bufs = Vec::with_capacity(l.args.len());
        for a in &l.args {
            let b = match a {
                Arg::F32(x) => gpu.upload_f32(x),
                Arg::U32(x) => gpu.upload_u32(x),
                Arg::Bool(x) => {
                    let w: Vec<u32> = x.iter().map(|b| *b as u32).collect();
                    gpu.upload_u32(&w)
                }
                Arg::Out(n) => gpu.storage(4 * (*n).max(1) as u64),
            }
            .map_err(err)?;
            bufs.push(b);
        }
        let coefs = if l.coefs.is_empty() {
            vec![0.0]
        } else {
            l.coefs.clone()
        };
        let coefs = gpu.upload_f32(&coefs).map_err(err)?;
        let status = gpu.upload_u32(&[0]).map_err(err)?;
        // Chunks of whole samples: each per-sample buffer holds `len / batch` values a sample.
        let per_sample: Vec<u64> = (0..l.args.len())
            .map(|j| 4 * l.per_sample(j) as u64)
            .collect();
        dispatch(
            gpu,
            &OnDevice {
                kernel: &self.c.kernels[k],
                kern,
                bufs: &bufs.iter().collect::<Vec<_>>(),
                per_sample: &per_sample,
                batch: l.batch as u64,
                base: l.base as u64,
                per: (l.total / l.batch) as u64,
                sizes: &l.sizes,
                seed: l.seed,
                step: l.step,
                offset: l.offset,
                coefs: &coefs,
                status: &status,
            },
        )?;
        let status = gpu.read_u32(&status).map_err(err)?[0];
        let outs = outs_of(&mut |j, n| {
            let bytes = gpu.read(&bufs[j], 0..4 * n as u64).map_err(err)?;
            Ok(runtime::bytes_u32(&bytes))
        })?;
        Ok((status, outs))
    }
}

/// One launch whose buffers are on the device: the kernel, its buffers in binding order with
/// the bytes each holds per sample (0 for a buffer the same for every sample), the batch (its
/// samples `base..base + batch` of a larger batch), the elements per sample and the host values.
pub(crate) struct OnDevice<'a> {
    pub(crate) kernel: &'a runtime::Kernel,
    pub(crate) kern: &'a crate::kernel::Kernel,
    pub(crate) bufs: &'a [&'a runtime::Buffer],
    pub(crate) per_sample: &'a [u64],
    pub(crate) batch: u64,
    pub(crate) base: u64,
    pub(crate) per: u64,
    pub(crate) sizes: &'a [u64],
    pub(crate) seed: u64,
    pub(crate) step: u64,
    pub(crate) offset: u64,
    pub(crate) coefs: &'a runtime::Buffer,
    pub(crate) status: &'a runtime::Buffer,
}

/// Dispatch a launch (`l.batch` > 0), in chunks of whole samples where its arrays exceed one
/// binding: a chunk binds its samples of every per-sample buffer and runs their flat elements,
/// so indices and draws are those of one launch over the whole batch.
pub(crate) fn dispatch(gpu: &Gpu, l: &OnDevice) -> Result<(), String> {
    let per = l.per;
    let mut limits = gpu.chunk_limits();
    limits.max_workgroups = limits
        .max_workgroups
        .saturating_mul(WORKGROUP as u64)
        .checked_div(per)
        .unwrap_or(u64::MAX)
        .min(u32::MAX as u64 / per.max(1));
    if l.batch.saturating_mul(per) > u32::MAX as u64 {
        return Err(format!(
            "{} elements in one launch: the GPU backend indexes elements with 32 bits",
            l.batch.saturating_mul(per)
        ));
    }
    let chunks = runtime::chunks(l.batch, l.per_sample, 1, &limits).map_err(|e| {
        format!("a sample's arrays do not fit the adapter's bindings ({e}); use a smaller size")
    })?;
    // Samples `base..` of a larger batch run over those samples' flat elements (their draws),
    // and every split buffer's base says where its first sample is.
    let base = l.base;
    if (base + l.batch).saturating_mul(per) > u32::MAX as u64 {
        return Err(format!(
            "samples up to {} of {per} elements: the GPU backend indexes elements with 32 bits",
            base + l.batch
        ));
    }
    let mut params = Vec::with_capacity(chunks.len());
    for c in &chunks {
        let (start, end) = (base + c.start, base + c.end);
        let mut words = vec![
            l.seed as u32,
            (l.seed >> 32) as u32,
            l.step as u32,
            l.offset as u32,
            (l.offset >> 32) as u32,
            (start * per) as u32,
            (end * per) as u32,
        ];
        words.extend(l.sizes.iter().map(|s| *s as u32));
        words.extend(l.per_sample.iter().map(|b| (start * b / 4) as u32));
        params.push(gpu.upload_u32(&words).map_err(err)?);
    }
    let bindings: Vec<Vec<Binding>> = chunks
        .iter()
        .zip(&params)
        .map(|(c, p)| {
            [p, l.coefs, l.status]
                .into_iter()
                .map(Binding::whole)
                .chain(l.bufs.iter().zip(l.per_sample).map(|(b, n)| {
                    if *n == 0 {
                        Binding::whole(b)
                    } else {
                        Binding::range(b, c.start * n..c.end * n)
                    }
                }))
                .collect()
        })
        .collect();
    let dispatches: Vec<Dispatch> = chunks
        .iter()
        .zip(&bindings)
        .map(|(c, b)| Dispatch {
            kernel: l.kernel,
            bindings: b,
            workgroups: codegen::workgroups(l.kern, (base + c.start) * per, (base + c.end) * per),
        })
        .collect();
    gpu.dispatch_all(&dispatches).map_err(err)
}
