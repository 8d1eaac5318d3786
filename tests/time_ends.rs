//! A continuous time's ends compare in the precision they were written in: an end that is no
//! f32 number (`[1e-3, 0.999]`, `[0.7, 1]`) is given by every call as the f32 nearest to it,
//! which may lie just outside the written range and names that end, on the interpreter and the CPU
//! backend alike; times drawn by `sample_t` are always accepted; a time truly outside is an
//! error.

mod common;

use common::diff::{compare, entry_call, sampler_call, Wobbly};
use diffc::interp::{self, check_time_value, Data, Tensor};
use diffc::ir::lower::{lower, lower_sampler};
use diffc::typed::Process;

fn process(file: &str) -> Process {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let (module, diags) = diffc::check::check_source(&text);
    assert!(diags.iter().all(|d| !d.is_error()), "{file} has errors");
    module.unwrap().processes.remove(0)
}

const FILES: [&str; 2] = ["time_ends.diff", "time_end_low.diff"];

#[test]
fn an_end_given_as_its_nearest_f32_is_the_end() {
    for file in FILES {
        let p = process(file);
        let (lo, hi) = (p.time.lo, p.time.hi);
        for end in [lo, hi] {
            let near = end as f32 as f64;
            for data_end in [false, true] {
                assert_eq!(check_time_value(&p, "t", end, data_end), Ok(end));
                assert_eq!(check_time_value(&p, "t", near, data_end), Ok(end));
            }
        }
        assert_ne!(lo as f32 as f64, lo, "{file}: its lower end is an f32");
        // Just outside, though not the f32 nearest an end; and truly outside.
        let below = lo - (lo - lo as f32 as f64).abs() / 2.0;
        for v in [below, lo - 1e-3, hi + 1e-3, f64::NAN] {
            let e = check_time_value(&p, "t", v, false).unwrap_err();
            assert!(e.contains("is outside the process's time"), "{file}: {e}");
        }
    }
}

#[test]
fn entries_run_at_the_f32_ends_on_the_interpreter_and_the_cpu() {
    let mut worst = 0.0f32;
    for file in FILES {
        let p = process(file);
        let (lo, hi) = (p.time.lo as f32, p.time.hi as f32);
        for name in ["forward", "log_q", "loss.dsm", "net_inputs.eps_hat"] {
            let prog = lower(&p, name).unwrap();
            // One time for the batch at each end, and one time per sample (both ends).
            for (times, batch) in [(vec![lo], 3), (vec![hi], 3), (vec![lo, hi, lo], 3)] {
                let mut call = entry_call(&p, &prog, batch, 4, 7);
                let shape = if times.len() == 1 {
                    vec![]
                } else {
                    vec![batch]
                };
                call.inputs.insert(
                    p.time.name.clone(),
                    Tensor {
                        shape,
                        data: Data::F32(times.clone()),
                    },
                );
                let what = format!("{file} {name} at {times:?}");
                let want = interp::run(&p, &prog, &call).unwrap_or_else(|e| panic!("{what}: {e}"));
                let got =
                    diffc::cpu::run(&p, &prog, &call).unwrap_or_else(|e| panic!("{what}: {e}"));
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    compare(&format!("{what} output {i}"), g, w, 2e-6, &mut worst);
                }
            }
        }
        // Outside, both refuse.
        let prog = lower(&p, "forward").unwrap();
        for t in [lo - 1e-3, hi + 1e-3] {
            let mut call = entry_call(&p, &prog, 2, 4, 7);
            call.inputs.insert(p.time.name.clone(), Tensor::scalar(t));
            for r in [
                interp::run(&p, &prog, &call),
                diffc::cpu::run(&p, &prog, &call),
            ] {
                let e = r.unwrap_err();
                assert!(e.contains("is outside the process's time"), "{file}: {e}");
            }
        }
    }
    println!("largest relative difference {worst:e}");
}

#[test]
fn drawn_times_are_accepted_and_whole_runs_reach_the_data_end() {
    for file in FILES {
        let p = process(file);
        let prog = lower(&p, "sample_t").unwrap();
        let call = interp::Call {
            seed: 3,
            batch: 4096,
            ..interp::Call::default()
        };
        let drawn = interp::run(&p, &prog, &call).unwrap().remove(0);
        let forward = lower(&p, "forward").unwrap();
        let mut fc = entry_call(&p, &forward, 4096, 2, 5);
        fc.inputs.insert(p.time.name.clone(), drawn);
        interp::run(&p, &forward, &fc).unwrap_or_else(|e| panic!("{file}: {e}"));
        diffc::cpu::run(&p, &forward, &fc).unwrap_or_else(|e| panic!("{file}: {e}"));
        // The sampler's whole default grid, from the noise end to the data end.
        let s = &p.samplers[0];
        let sp = lower_sampler(&p, &s.name).unwrap();
        let grid = s.default_grid.clone();
        let last = *grid.last().unwrap();
        assert_eq!(grid[0], p.time.hi);
        assert!(
            (last - p.time.lo).abs() <= 1e-15,
            "{file}: the grid ends at {last}"
        );
        let call = sampler_call(&p, &sp, grid, 2, 3, 1);
        let want = interp::sample(&p, &sp, &call, &mut Wobbly(0)).unwrap();
        let got = diffc::cpu::sample(&p, &sp, &call, &mut Wobbly(0)).unwrap();
        let mut worst = 0.0;
        compare(file, &got["x"], &want["x"], 2e-6, &mut worst);
    }
}
