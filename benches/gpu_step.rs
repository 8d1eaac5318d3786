//! The GPU benchmark: the DDPM ancestral step's fused WGSL kernel (x0, the posterior mean and
//! its noise, drawn in the kernel) at several sizes, against the GPU's own buffer copy measured
//! in the same run on the same device.
//!
//! Usage: `cargo bench --bench gpu_step -- [--sizes 16M,256M] [--reps 50]`, or
//! `scripts/bench_gpu.sh`, which adds the PyTorch eager step on the same GPU when PyTorch with
//! CUDA is installed. The adapter is the first discrete GPU, or the one `DIFFC_ADAPTER` names.
//!
//! Per size, each timing is the wall time of `reps` launches recorded in one submission (so the
//! CPU's submission cost is not in it), after a warm-up, divided by `reps`; arrays above one
//! binding are dispatched in chunks. Bandwidth counts the bytes the step must move: x and ε
//! read, x' written (12 bytes an element); the copy moves 4 bytes read and 4 written.

use diffc::gpu::codegen;
use diffc::gpu::runtime::{self, Binding, Dispatch, Gpu, Options};
use diffc::ir::Node;
use diffc::kernel::BufSrc;
use std::time::Instant;

fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.as_bytes().last() {
        Some(b'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mul)
        .map_err(|e| format!("size `{s}`: {e}"))
}

struct Args {
    sizes: Vec<u64>,
    reps: u32,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        sizes: vec![16 << 20, 256 << 20],
        reps: 50,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--sizes" => {
                let v = it.next().ok_or("--sizes needs a list")?;
                a.sizes = v.split(',').map(parse_size).collect::<Result<_, _>>()?;
            }
            "--reps" => {
                let v = it.next().ok_or("--reps needs a number")?;
                a.reps = v.parse().map_err(|e| format!("--reps: {e}"))?;
            }
            // cargo bench passes --bench.
            "--bench" => {}
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(a)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

/// Seconds per repetition of what `encode(enc, n)` records n times: one submission of `reps + 1`
/// less one of 1 removes the fixed cost of a submission and its wait.
fn per_rep(gpu: &Gpu, reps: u32, encode: &dyn Fn(&mut wgpu::CommandEncoder, u32)) -> f64 {
    let go = |n: u32| {
        let mut enc = gpu
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        encode(&mut enc, n);
        let t = Instant::now();
        gpu.queue().submit([enc.finish()]);
        gpu.wait().expect("the GPU finishes");
        t.elapsed().as_secs_f64()
    };
    go(3);
    let (one, many) = (go(1), go(reps + 1));
    ((many - one) / reps as f64).max(1e-9)
}

/// Seconds per launch of `reps` launches in one compute pass.
fn per_launch(gpu: &Gpu, reps: u32, record: &dyn Fn(&mut wgpu::ComputePass)) -> f64 {
    per_rep(gpu, reps, &|enc, n| {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: None,
        });
        for _ in 0..n {
            record(&mut pass);
        }
    })
}

/// Seconds per copy of `bytes` from `src` to `dst`.
fn copy_time(gpu: &Gpu, src: &wgpu::Buffer, dst: &wgpu::Buffer, bytes: u64, reps: u32) -> f64 {
    per_rep(gpu, reps, &|enc, n| {
        for _ in 0..n {
            enc.copy_buffer_to_buffer(src, 0, dst, 0, bytes);
        }
    })
}

fn run() -> Result<(), String> {
    let a = args()?;
    let gpu = Gpu::with_options(&Options::from_env()).map_err(|e| e.to_string())?;
    let info = gpu.adapter_info();
    println!(
        "# GPU step benchmark\n\nadapter: {} ({:?}, {:?}, driver {} {})\n",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    );
    let p = {
        let text = include_str!("../specs/ddpm.diff");
        let (m, _) = diffc::check::check_source(text);
        m.ok_or("specs/ddpm.diff does not check")?
            .processes
            .into_iter()
            .find(|p| p.name == "ddpm_linear")
            .ok_or("no ddpm_linear")?
    };
    let sp = diffc::ir::lower::lower_sampler(&p, "ancestral")?;
    let plan = diffc::kernel::build::plan_sampler(&p, &sp, &Default::default())?;
    let k = &plan.kernels[0];
    // Each kernel buffer is the state x, the network's ε or the new state x'.
    let roles: Vec<usize> = k
        .bufs
        .iter()
        .map(|b| match &b.src {
            BufSrc::Out(_) => Ok(2),
            BufSrc::Node(id) => match sp.prog.node(*id).node {
                Node::State(_) => Ok(0),
                Node::NetOut { .. } | Node::Slot(_) => Ok(1),
                ref other => Err(format!("the DDPM step kernel reads {other:?}")),
            },
            other => Err(format!("the DDPM step kernel binds {other:?}")),
        })
        .collect::<Result<_, _>>()?;
    let shader = codegen::shader(k)?;
    let module = shader.module.clone();
    let kern = gpu
        .kernel(&shader.wgsl, &shader.entry, &diffc::gpu::access(k), || {
            runtime::ShaderCode::Naga(Box::new(module))
        })
        .map_err(|e| e.to_string())?;
    // Coefficients of a mid-chain step: any finite values do.
    let coefs: Vec<f32> = (0..k.coefs.len().max(1))
        .map(|i| 0.5 + 0.1 * i as f32)
        .collect();
    let coef_buf = gpu.upload_f32(&coefs).map_err(|e| e.to_string())?;
    let status = gpu.upload_u32(&[0]).map_err(|e| e.to_string())?;
    println!(
        "| elements | fused step (ms) | step GB/s | copy (ms) | copy GB/s | step / copy bandwidth |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for &n in &a.sizes {
        let bytes = 4 * n;
        let mk = |v: f32| -> Result<runtime::Buffer, String> {
            let b = gpu.storage(bytes).map_err(|e| e.to_string())?;
            let chunk = vec![v; (1 << 24).min(n as usize)];
            let mut at = 0;
            while at < n {
                let len = (n - at).min(chunk.len() as u64);
                gpu.write(&b, 4 * at, &runtime::f32_bytes(&chunk[..len as usize]))
                    .map_err(|e| e.to_string())?;
                at += len;
            }
            Ok(b)
        };
        // x, ε and x'.
        let bufs = [mk(0.25)?, mk(-0.5)?, mk(0.0)?];
        let chunks = runtime::chunks(n, &[4; 4], codegen::WORKGROUP as u64, &gpu.chunk_limits())
            .map_err(|e| e.to_string())?;
        let params: Vec<runtime::Buffer> = chunks
            .iter()
            .map(|c| {
                let mut w = vec![1, 0, 7, 0, 0, c.start as u32, c.end as u32, 1];
                w.extend(roles.iter().map(|_| c.start as u32));
                gpu.upload_u32(&w).map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        let bindings: Vec<Vec<Binding>> = chunks
            .iter()
            .zip(&params)
            .map(|(c, p)| {
                [p, &coef_buf, &status]
                    .into_iter()
                    .map(Binding::whole)
                    .chain(
                        roles
                            .iter()
                            .map(|r| Binding::elements(&bufs[*r], c.clone(), 4)),
                    )
                    .collect()
            })
            .collect();
        let dispatches: Vec<Dispatch> = chunks
            .iter()
            .zip(&bindings)
            .map(|(c, b)| Dispatch {
                kernel: &kern,
                bindings: b,
                workgroups: codegen::workgroups(k, c.start, c.end),
            })
            .collect();
        // One launch through the runtime, then the same dispatches recorded directly.
        gpu.dispatch_all(&dispatches).map_err(|e| e.to_string())?;
        gpu.wait().map_err(|e| e.to_string())?;
        let groups: Vec<(wgpu::BindGroup, [u32; 3])> = dispatches
            .iter()
            .map(|d| gpu.prepare(d))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let step = per_launch(&gpu, a.reps, &|pass| {
            pass.set_pipeline(kern.pipeline());
            for (g, grid) in &groups {
                pass.set_bind_group(0, g, &[]);
                pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
            }
        });
        let copy = copy_time(&gpu, bufs[0].raw(), bufs[2].raw(), bytes, a.reps);
        let (step_bw, copy_bw) = (12.0 * n as f64 / step / 1e9, 8.0 * n as f64 / copy / 1e9);
        println!(
            "| {n} | {:.3} | {step_bw:.0} | {:.3} | {copy_bw:.0} | {:.2} |",
            step * 1e3,
            copy * 1e3,
            step_bw / copy_bw
        );
        let words = gpu.read_u32(&status).map_err(|e| e.to_string())?;
        if words[0] != 0 {
            return Err(format!("the step raised status {:#x}", words[0]));
        }
    }
    Ok(())
}
