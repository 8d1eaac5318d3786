//! The CPU backend against the interpreter: every entry and every sampler of every shipped spec,
//! at several sizes (including sizes that are not a multiple of the vector width, and empty
//! batches) and seeds, with identical discrete draws and noise, and floats within the
//! documented tolerance (`docs/backends.md`).

mod common;

use common::diff::{
    every_entry, every_sampler, sampler_call, tensor_for, times, Gen, Wobbly, CASES,
};
use common::shipped;
use diffc::cpu::Checks;
use diffc::entries::{entries, EntryKind, Extent};
use diffc::interp::{self, Call, Data, Denoiser, Tensor};
use diffc::ir::lower::{lower, lower_sampler};
use diffc::typed::{Elem, Process};
use std::collections::HashMap;

/// The tolerance of floats: |cpu - interp| <= TOL * max(1, |interp|).
const TOL: f32 = 2e-6;

#[test]
fn every_entry_matches_the_interpreter() {
    let t = every_entry(&shipped(), &CASES, TOL, &|p, prog, call| {
        diffc::cpu::run(p, prog, call)
    });
    println!(
        "{} entry calls agree ({} also with their noise supplied); largest relative difference {:e}",
        t.checked, t.supplied, t.worst
    );
    assert!(t.checked >= 150, "{}", t.checked);
    assert!(t.supplied >= 40, "{}", t.supplied);
}

#[test]
fn every_sampler_matches_the_interpreter() {
    let (ran, worst) = every_sampler(
        &shipped(),
        &[(2, 3, 9), (3, 5, 4)],
        TOL,
        &|p, sp, call, net| diffc::cpu::sample(p, sp, call, net),
    );
    println!("{ran} sampler runs agree; largest relative difference {worst:e}");
    assert!(ran >= 80, "{ran}");
}

/// The per-element Gaussian processes of `tests/data/per_element.diff` (derived posteriors with
/// `vec<3>` and per-element coefficients, a derived marginal): every entry and sampler on the
/// CPU against the interpreter.
#[test]
fn per_element_derived_kernels_match_the_interpreter() {
    let procs = common::per_element();
    assert_eq!(procs.len(), 3);
    let t = every_entry(&procs, &CASES, TOL, &|p, prog, call| {
        diffc::cpu::run(p, prog, call)
    });
    println!(
        "{} entry calls agree; largest relative difference {:e}",
        t.checked, t.worst
    );
    assert!(t.checked >= 60, "{}", t.checked);
    let (ran, worst) = every_sampler(&procs, &[(2, 3, 9), (3, 5, 4)], TOL, &|p, sp, call, net| {
        diffc::cpu::sample(p, sp, call, net)
    });
    println!("{ran} sampler runs agree; largest relative difference {worst:e}");
    assert_eq!(ran, 8);
}

/// One step of every shipped sampler, counting kernel launches: the main samplers' steps are
/// one fused kernel each (a graph step is one per field shape).
#[test]
fn steps_are_fused_into_few_kernels() {
    use diffc::cpu::{sample_counted, Options};
    let mut counts = HashMap::new();
    for p in shipped() {
        for s in &p.samplers {
            let sp = lower_sampler(&p, &s.name).unwrap();
            let g = &s.default_grid;
            let mut call = sampler_call(&p, &sp, vec![g[1], g[2]], 2, 6, 1);
            // Start from a state so that the count is the step's alone.
            let mut gen = Gen(5);
            for f in &p.fields {
                if !call.state.contains_key(&f.name) {
                    let mut dims = vec![2];
                    dims.extend(f.shape.dims.iter().map(|_| 6));
                    if let Elem::Vec(k) = f.elem {
                        dims.push(k as usize);
                    }
                    let mut t = tensor_for(&p, f.elem, dims, &mut gen);
                    if f.shape.sym {
                        diffc::interp::symmetrize(&mut t);
                    }
                    call.state.insert(f.name.clone(), t);
                }
            }
            call.single_step = Some(diffc::interp::SingleStep {
                k: 1,
                n: g.len() - 1,
                r: Some(g[0]),
                prev: HashMap::new(),
            });
            let prev_names = sp.history_names.clone();
            if !prev_names.is_empty() {
                // Multistep samplers: their first step keeps history; count a later step.
                continue;
            }
            let (_, n) = sample_counted(&p, &sp, &call, &mut Wobbly(0), Options::default())
                .unwrap_or_else(|e| panic!("{} {}: {e}", p.name, s.name));
            println!("{:>16} {:<24} {n} kernel(s) per step", p.name, s.name);
            counts.insert(format!("{}.{}", p.name, s.name), n);
        }
    }
    for (name, want) in [
        ("ddpm_linear.ancestral", 1),
        ("ddpm_linear.ddim", 1),
        ("ddpm_cosine.ancestral", 1),
        ("vp_linear.dpm_solver1", 1),
        ("vp_linear.dpmpp_1", 1),
        ("d3pm_uniform.ancestral", 1),
        ("vp_sde.probability_flow", 1),
        ("bfn_continuous.bfn", 1),
        // Node features and edges: one kernel per field shape.
        ("digress.ancestral", 2),
        // 100 Langevin iterations, each a network call and one kernel before and after it.
        ("ncsn.annealed_langevin", 200),
    ] {
        assert_eq!(counts.get(name), Some(&want), "{name}");
    }
}

/// Values never depend on how a kernel's range is split over threads.
#[test]
fn results_do_not_depend_on_the_thread_split() {
    use diffc::cpu::{run_opts, sample_opts, Options};
    for (file, process) in [
        ("ddpm.diff", "ddpm_linear"),
        ("digress.diff", "digress"),
        ("edge.diff", "edge"),
    ] {
        let p = common::spec(file, process);
        let prog = lower(&p, "forward").unwrap();
        let mut g = Gen(3);
        let mut call = Call {
            seed: 21,
            batch: 3,
            sizes: p.dims.iter().map(|d| (d.name.clone(), 13)).collect(),
            ..Call::default()
        };
        let (t, _) = times(&p);
        for port in &prog.inputs {
            match &port.extent {
                Extent::Field(shape) => {
                    let mut dims = vec![3];
                    dims.extend(shape.dims.iter().map(|_| 13));
                    let mut t = tensor_for(&p, port.elem, dims, &mut g);
                    if shape.sym && !port.name.contains('.') {
                        diffc::interp::symmetrize(&mut t);
                    }
                    call.inputs.insert(port.name.clone(), t);
                }
                Extent::Scalar if port.name != "seed" => {
                    call.inputs
                        .insert(port.name.clone(), Tensor::scalar(t as f32));
                }
                _ => {}
            }
        }
        let one = run_opts(
            &p,
            &prog,
            &call,
            Options {
                threads: 1,
                min_per_thread: 1,
            },
        )
        .unwrap();
        for threads in [2, 3, 7] {
            let many = run_opts(
                &p,
                &prog,
                &call,
                Options {
                    threads,
                    min_per_thread: 1,
                },
            )
            .unwrap();
            assert_eq!(one, many, "{process}: {threads} threads");
        }
        let s = &p.samplers[0];
        let sp = lower_sampler(&p, &s.name).unwrap();
        let grid = s.default_grid[..4].to_vec();
        let call = sampler_call(&p, &sp, grid, 3, 13, 8);
        let a = sample_opts(
            &p,
            &sp,
            &call,
            &mut Wobbly(0),
            Options {
                threads: 1,
                min_per_thread: 1,
            },
        )
        .unwrap();
        let b = sample_opts(
            &p,
            &sp,
            &call,
            &mut Wobbly(0),
            Options {
                threads: 5,
                min_per_thread: 1,
            },
        )
        .unwrap();
        assert_eq!(a, b, "{process} {}", s.name);
    }
}

/// The DDPM ancestral step's kernel and its Cranelift IR are stable text.
#[test]
fn every_shipped_program_has_stable_kernel_and_ir_text() {
    // The kernel IR and the Cranelift IR of every entry and sampler of every shipped spec,
    // one snapshot per program (`tests/snapshots/cpu__<process>.<program>.snap`), compiled
    // twice to show the text does not depend on the run.
    let mut count = 0;
    for p in shipped() {
        let mut plans = Vec::new();
        for e in entries(&p) {
            if matches!(e.kind, EntryKind::Step | EntryKind::Finalize) {
                continue;
            }
            let prog = lower(&p, &e.name).unwrap();
            let plan = || diffc::kernel::build::plan_entry(&p, &prog, &Default::default());
            plans.push((e.name.clone(), plan().unwrap(), plan().unwrap()));
        }
        for s in &p.samplers {
            let sp = lower_sampler(&p, &s.name).unwrap();
            let plan = || diffc::kernel::build::plan_sampler(&p, &sp, &Default::default());
            plans.push((s.name.clone(), plan().unwrap(), plan().unwrap()));
        }
        for (name, a, b) in plans {
            let mut text: Vec<String> = a.kernels.iter().map(|k| k.to_string()).collect();
            let ca = diffc::cpu::compile_with(a, Checks::all()).unwrap();
            let cb = diffc::cpu::compile_with(b, Checks::all()).unwrap();
            assert_eq!(
                ca.clif, cb.clif,
                "{} {name}: IR text differs between runs",
                p.name
            );
            text.extend(ca.clif.iter().cloned());
            let text = common::summarized(&text.join("\n"), &["kernel ", "function "]);
            insta::assert_snapshot!(format!("{}.{name}", p.name), text);
            count += 1;
        }
    }
    println!("{count} programs snapshotted");
    assert!(count >= 100, "{count}");
}

/// Noise filled ahead in chunks equals the interpreter's on sizes of several chunks, with
/// ranges that start anywhere: a kernel called on pieces of its range gives the bits the whole
/// range gives.
#[test]
fn draws_filled_in_chunks_match_at_any_start() {
    use diffc::cpu::{sample_recorded, Options};
    let one = Options {
        threads: 1,
        ..Options::default()
    };
    for (file, process, sampler, size) in [
        ("ddpm.diff", "ddpm_linear", "ancestral", 1001),
        ("vp_sde.diff", "vp_sde", "euler_maruyama", 777),
        ("d3pm.diff", "d3pm_uniform", "ancestral", 1003),
        ("digress.diff", "digress", "ancestral", 37),
    ] {
        let p = common::spec(file, process);
        let s = p.samplers.iter().find(|s| s.name == sampler).unwrap();
        let sp = lower_sampler(&p, sampler).unwrap();
        let g = &s.default_grid;
        let call = sampler_call(&p, &sp, vec![g[0], g[1], g[2]], 2, size, 17);
        let what = format!("{process} {sampler} at size {size}");
        let want = interp::sample(&p, &sp, &call, &mut Wobbly(0)).unwrap();
        let got = diffc::cpu::sample(&p, &sp, &call, &mut Wobbly(0)).unwrap();
        for (name, w) in &want {
            assert_eq!(&got[name], w, "{what}: `{name}`");
        }
        // Replay each launch on pieces of its range.
        let v = diffc::plan::variant(&p, &sp.prog, &call.draws, &call.masks);
        let c = diffc::cpu::compile_sampler(&p, &sp, &v).unwrap();
        let (_, launches) = sample_recorded(&p, &sp, &call, &mut Wobbly(0), &c, one).unwrap();
        let mut checked = 0;
        for l in &launches {
            let k = &c.plan.kernels[l.kernel];
            if k.bufs.iter().any(|b| b.store != diffc::kernel::Store::F32) {
                continue;
            }
            let mut gen = Gen(l.kernel as u64 + 1);
            let inputs: Vec<Vec<f32>> = l
                .bytes
                .iter()
                .map(|n| (0..n / 4).map(|_| gen.next() - 0.5).collect())
                .collect();
            let run = |pieces: &[usize]| {
                let mut bufs = inputs.clone();
                let ptrs: Vec<*mut u8> =
                    bufs.iter_mut().map(|b| b.as_mut_ptr() as *mut u8).collect();
                let mut status = 0u32;
                for w in pieces.windows(2) {
                    // SAFETY: the buffers hold what the recorded launch bound.
                    unsafe {
                        (c.fns[l.kernel])(
                            ptrs.as_ptr(),
                            l.coefs.as_ptr(),
                            l.sizes.as_ptr(),
                            w[0] as u64,
                            w[1] as u64,
                            l.seed,
                            l.step,
                            l.offset,
                            &mut status,
                        )
                    };
                }
                assert_eq!(status, 0);
                bufs
            };
            let n = l.total;
            let whole = run(&[0, n]);
            let cut = [0, 1, 6, 263, 264, 265, 530, n.min(531), n];
            let mut pieces: Vec<usize> = cut.iter().map(|x| (*x).min(n)).collect();
            pieces.dedup();
            let parts = run(&pieces);
            for (a, b) in whole.iter().zip(&parts) {
                assert!(
                    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{what}: kernel {} differs when its range is cut",
                    k.name
                );
            }
            checked += 1;
        }
        assert!(
            checked > 0 || process == "digress" || process == "d3pm_uniform",
            "{what}"
        );
    }
}

/// A network output that overflows a step: the kernel flags the non-finite value and the
/// error names the same field, index and time as the interpreter's.
#[test]
fn non_finite_states_are_errors_like_the_interpreter() {
    struct Huge;
    impl Denoiser for Huge {
        fn denoise(
            &mut self,
            p: &Process,
            call: &diffc::interp::NetCall,
        ) -> Result<Vec<Tensor>, String> {
            let mut out = Wobbly(0).denoise(p, call)?;
            for t in &mut out {
                if let Data::F32(v) = &mut t.data {
                    let n = v.len();
                    v[n / 2] = 3e38;
                }
            }
            Ok(out)
        }
    }
    for (file, process, sampler) in [
        ("ddpm.diff", "ddpm_linear", "ancestral"),
        ("ddpm.diff", "ddpm_linear", "ddim"),
        ("vp_sde.diff", "vp_sde", "euler_maruyama"),
    ] {
        let p = common::spec(file, process);
        let s = p.samplers.iter().find(|s| s.name == sampler).unwrap();
        let sp = lower_sampler(&p, sampler).unwrap();
        let g = &s.default_grid;
        for size in [3, 37] {
            let call = sampler_call(&p, &sp, vec![g[0], g[1], g[2]], 2, size, 5);
            let want = interp::sample(&p, &sp, &call, &mut Huge).unwrap_err();
            let got = diffc::cpu::sample(&p, &sp, &call, &mut Huge).unwrap_err();
            assert!(want.contains("became"), "{want}");
            assert_eq!(got, want, "{process} {sampler} size {size}");
        }
    }
}
