//! The WGSL code generator: every kernel of every shipped program, built as a naga module,
//! validated by naga and written as stable WGSL text.

mod common;

use common::shipped;
use diffc::gpu::codegen;
use diffc::ir::lower::{lower, lower_sampler};

/// Every kernel plan of every shipped program: (process.program, plan).
fn plans() -> Vec<(String, diffc::kernel::build::Plan)> {
    let mut out = Vec::new();
    for p in shipped() {
        for e in diffc::entries::entries(&p) {
            use diffc::entries::EntryKind;
            if matches!(e.kind, EntryKind::Step | EntryKind::Finalize) {
                continue;
            }
            let prog = lower(&p, &e.name).unwrap();
            let plan = diffc::kernel::build::plan_entry(&p, &prog, &Default::default()).unwrap();
            out.push((format!("{}.{}", p.name, e.name), plan));
        }
        for s in &p.samplers {
            let sp = lower_sampler(&p, &s.name).unwrap();
            let plan = diffc::kernel::build::plan_sampler(&p, &sp, &Default::default()).unwrap();
            out.push((format!("{}.{}", p.name, s.name), plan));
        }
    }
    out
}

#[test]
fn the_generator_module_parses_and_validates() {
    let m = codegen::base_module().unwrap();
    codegen::validate(&m).unwrap();
}

/// Every kernel of every shipped program becomes a module that naga validates, with its entry
/// point in the written text.
#[test]
fn every_shipped_kernel_validates() {
    let mut ok = 0;
    for (name, plan) in plans() {
        for k in &plan.kernels {
            let s = codegen::shader(k).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(s.wgsl.contains(&format!("fn {}(", s.entry)), "{name}");
            ok += 1;
        }
    }
    println!("{ok} kernels validated");
    assert!(ok >= 260, "{ok}");
}

/// A kernel's own WGSL: its bindings and its entry point (the generator and `math.wgsl`, the
/// same in every module, are left out).
fn own_text(wgsl: &str) -> String {
    let vars = wgsl.lines().filter(|l| l.starts_with("@group(0)"));
    let entry = &wgsl[wgsl.find("@compute").expect("an entry point")..];
    vars.chain(std::iter::once(entry))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The WGSL of every entry and sampler of every shipped spec is stable text: built twice, the
/// same, and one snapshot per program (`tests/snapshots/wgsl__<process>.<program>.snap`).
#[test]
fn every_shipped_program_has_stable_wgsl() {
    let (first, again) = (plans(), plans());
    let mut count = 0;
    for ((name, a), (_, b)) in first.iter().zip(&again) {
        let text = |plan: &diffc::kernel::build::Plan| -> Vec<String> {
            plan.kernels
                .iter()
                .map(|k| {
                    let s = codegen::shader(k).unwrap_or_else(|e| panic!("{name}: {e}"));
                    format!("// kernel {}\n{}", k.name, own_text(&s.wgsl))
                })
                .collect()
        };
        let ta = text(a);
        assert_eq!(ta, text(b), "{name}: WGSL differs between builds");
        insta::assert_snapshot!(
            name.clone(),
            common::summarized(&ta.join("\n"), &["// kernel "])
        );
        count += 1;
    }
    println!("{count} programs snapshotted");
    assert!(count >= 100, "{count}");
}

/// The DDPM ancestral step kernel on the GPU against the same kernel compiled for the CPU:
/// the same noise bit for bit (a step on zero inputs with unit coefficients is its noise), and
/// the whole step within the float tolerance, at a size that is not a multiple of
/// the workgroup and with a generator offset whose low word carries.
#[test]
fn the_ddpm_step_kernel_runs_on_the_gpu_as_on_the_cpu() {
    use diffc::gpu::runtime::{Access, Binding, ShaderCode};
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let p = common::spec("ddpm.diff", "ddpm_linear");
    let sp = lower_sampler(&p, "ancestral").unwrap();
    let plan = diffc::kernel::build::plan_sampler(&p, &sp, &Default::default()).unwrap();
    let k = plan.kernels[0].clone();
    assert_eq!(k.dims, ["d"], "{k}");
    let n = 100_003usize;
    let ins: Vec<Vec<f32>> = (0..k.bufs.len())
        .map(|b| {
            (0..n)
                .map(|i| ((i * 7 + b * 13) % 101) as f32 / 50.0 - 1.0)
                .collect()
        })
        .collect();
    let cpu = diffc::cpu::compile(plan).unwrap();
    let shader = codegen::shader(&k).unwrap();
    let access: Vec<Access> = [Access::Read, Access::Read, Access::ReadWrite]
        .into_iter()
        .chain(k.bufs.iter().map(|b| {
            if b.output {
                Access::ReadWrite
            } else {
                Access::Read
            }
        }))
        .collect();
    let kern = gpu
        .kernel(&shader.wgsl, &shader.entry, &access, || {
            ShaderCode::Naga(Box::new(shader.module.clone()))
        })
        .unwrap();
    let (seed, step, offset) = (0x1234_5678_9abc_def0u64, 17u64, (1u64 << 32) - 5);
    let zeros = vec![vec![0.0f32; n]; k.bufs.len()];
    let cases = [
        // Zero inputs and unit coefficients: the step's value is its noise, exactly.
        (zeros, vec![1.0f32; k.coefs.len()], true),
        (
            ins,
            (0..k.coefs.len()).map(|i| 0.3 + 0.1 * i as f32).collect(),
            false,
        ),
    ];
    for (ins, coefs, exact) in cases {
        // The CPU kernel.
        let mut bufs = ins.clone();
        let ptrs: Vec<*mut u8> = bufs.iter_mut().map(|b| b.as_mut_ptr() as *mut u8).collect();
        let launch = diffc::cpu::Launch {
            kernel: 0,
            coefs: coefs.clone(),
            sizes: vec![n as u64],
            total: n,
            seed,
            step,
            offset,
            bytes: vec![4 * n; k.bufs.len()],
        };
        // SAFETY: every buffer holds n f32 values, and the output is its own vector.
        let status = unsafe { cpu.launch(&launch, &ptrs, Default::default()) };
        assert_eq!(status, 0);
        // The GPU kernel.
        let mut params = vec![
            seed as u32,
            (seed >> 32) as u32,
            step as u32,
            offset as u32,
            (offset >> 32) as u32,
            0,
            n as u32,
            n as u32,
        ];
        // Every buffer bound whole: every base is 0.
        params.resize(codegen::params_len(&k) as usize, 0);
        let params = gpu.upload_u32(&params).unwrap();
        let coef_buf = gpu.upload_f32(&coefs).unwrap();
        let status_buf = gpu.upload_u32(&[0]).unwrap();
        let gbufs: Vec<_> = ins.iter().map(|b| gpu.upload_f32(b).unwrap()).collect();
        let bindings: Vec<Binding> = [&params, &coef_buf, &status_buf]
            .into_iter()
            .chain(gbufs.iter())
            .map(Binding::whole)
            .collect();
        let groups = codegen::workgroups(&k, 0, n as u64);
        gpu.dispatch(&kern, &bindings, groups).unwrap();
        gpu.wait().unwrap();
        assert_eq!(gpu.read_u32(&status_buf).unwrap(), [0]);
        for (j, _) in k.bufs.iter().enumerate().filter(|(_, b)| b.output) {
            let got = gpu.read_f32(&gbufs[j]).unwrap();
            for i in 0..n {
                let (c, g) = (bufs[j][i], got[i]);
                if exact {
                    assert_eq!(c.to_bits(), g.to_bits(), "noise differs at {i}: {c} vs {g}");
                } else {
                    assert!(
                        (c - g).abs() <= 1e-5 * (1.0 + c.abs()),
                        "element {i}: cpu {c}, gpu {g}"
                    );
                }
            }
        }
    }
}
