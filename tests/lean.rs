//! Steps and entries run from their call sequence on lent arrays (`cpu::lean`) against the same
//! calls through `cpu::sample` and `cpu::run`: every sampler of every shipped spec (a first
//! step, a later step fed the first one's history, the final map) and every entry (one time,
//! and one time per sample), bit for bit; and the same errors for bad input.

mod common;

use common::diff::{entry_call, outcome, sampler_call, tensor_for, AsNet, Gen, Wobbly, CASES};
use common::shipped;
use diffc::cpu::lean::{EntryRunner, Lent, LentData, StepInputs, StepRunner};
use diffc::entries::{entries, EntryKind, Extent};
use diffc::interp::{Call, Data, Denoiser, NetCall, SampleCall, SingleStep, Tensor};
use diffc::ir::lower::{lower, lower_sampler};
use diffc::ir::{Program, SamplerProgram};
use diffc::typed::{Elem, Process, TimeKind};
use std::collections::HashMap;

/// `Wobbly`, keeping every output it returned by `NET.FIELD#i`.
struct Recording {
    net: Wobbly,
    calls: usize,
    outputs: HashMap<String, Tensor>,
}

impl Denoiser for Recording {
    fn denoise(&mut self, p: &Process, call: &NetCall) -> Result<Vec<Tensor>, String> {
        let out = self.net.denoise(p, call)?;
        let n = &p.networks[call.net];
        for (o, t) in n.outputs.iter().zip(&out) {
            let name = format!("{}.{}#{}", n.name, p.field(o.field).name, self.calls);
            self.outputs.insert(name, t.clone());
        }
        self.calls += 1;
        Ok(out)
    }
}

/// Bools as bytes, kept alive while lent.
fn bytes(t: &Tensor) -> Option<Vec<u8>> {
    match &t.data {
        Data::Bool(v) => Some(v.iter().map(|b| *b as u8).collect()),
        _ => None,
    }
}

fn lend<'a>(t: &'a Tensor, b: &'a Option<Vec<u8>>) -> Lent<'a> {
    Lent {
        shape: &t.shape,
        data: match (&t.data, b) {
            (Data::F32(v), _) => LentData::F32(v),
            (Data::Class(v), _) => LentData::U32(v),
            (Data::Bool(_), Some(b)) => LentData::U8(b),
            (Data::Bool(_), None) => unreachable!(),
        },
    }
}

/// Run `call` both ways; compare. Returns the step's outputs (by `cpu::sample`) when it ran.
fn both(
    p: &Process,
    sp: &SamplerProgram,
    runner: &StepRunner,
    call: &SampleCall,
    prev: &HashMap<String, Tensor>,
    what: &str,
) -> Option<HashMap<String, Tensor>> {
    let mut rec = Recording {
        net: Wobbly(0),
        calls: 0,
        outputs: HashMap::new(),
    };
    let mut c = call.clone();
    if let Some(one) = &mut c.single_step {
        one.prev = prev.clone();
    }
    let want = diffc::cpu::sample(p, sp, &c, &mut rec);
    let state_b: Vec<_> = call.state.iter().map(|(n, t)| (n, t, bytes(t))).collect();
    let prev_b: Vec<_> = prev.iter().map(|(n, t)| (n, t, bytes(t))).collect();
    let mut inputs = StepInputs::default();
    for (n, t, b) in &state_b {
        inputs.state.insert((*n).clone(), lend(t, b));
    }
    for (n, t, b) in &prev_b {
        inputs.prev.insert((*n).clone(), lend(t, b));
    }
    let none = None;
    for (n, t) in &rec.outputs {
        inputs.net.insert(n.clone(), lend(t, &none));
    }
    let got = runner.step(p, call, &inputs);
    match (want, got) {
        (Ok(w), Ok(g)) => {
            for (name, t) in &g {
                assert_eq!(Some(t), w.get(name), "{what}: `{name}`");
            }
            // What the lean step does not return, it left as it was given.
            for (name, t) in &w {
                if !g.contains_key(name) {
                    assert_eq!(Some(t), call.state.get(name), "{what}: `{name}` is missing");
                }
            }
            Some(w)
        }
        (Err(w), Err(g)) => {
            assert_eq!(g, w, "{what}: errors differ");
            None
        }
        (w, g) => panic!(
            "{what}: cpu::sample {}, lean {}",
            common::diff::outcome(&w),
            common::diff::outcome(&g)
        ),
    }
}

fn full_state(p: &Process, call: &mut SampleCall, batch: usize, size: usize, g: &mut Gen) {
    for f in &p.fields {
        if !call.state.contains_key(&f.name) {
            let mut dims = vec![batch];
            dims.extend(f.shape.dims.iter().map(|_| size));
            if let Elem::Vec(k) = f.elem {
                dims.push(k as usize);
            }
            let mut t = tensor_for(p, f.elem, dims, g);
            if f.shape.sym {
                diffc::interp::symmetrize(&mut t);
            }
            call.state.insert(f.name.clone(), t);
        }
    }
}

#[test]
fn every_step_matches_the_cpu_backend() {
    let mut ran = 0;
    for p in shipped() {
        for s in &p.samplers {
            let sp = lower_sampler(&p, &s.name).unwrap();
            let runner = StepRunner::new(&p, &s.name)
                .unwrap_or_else(|e| panic!("{} {}: {e}", p.name, s.name));
            let g = &s.default_grid;
            let n = g.len() - 1;
            for (batch, size, seed) in [(2, 5, 3), (1, 3, 8)] {
                let what = format!("{} {} (batch {batch}, size {size})", p.name, s.name);
                let mut call = sampler_call(&p, &sp, vec![g[0], g[1]], batch, size, seed);
                full_state(&p, &mut call, batch, size, &mut Gen(seed + 1));
                call.single_step = Some(SingleStep {
                    k: 0,
                    n,
                    ..SingleStep::default()
                });
                let first = both(&p, &sp, &runner, &call, &HashMap::new(), &what);
                // A later step, from the first one's state and history.
                if let (Some(out), true) = (first, n > 1) {
                    let mut prev = HashMap::new();
                    for (name, t) in out {
                        match name.strip_prefix("prev.") {
                            Some(h) => {
                                prev.insert(h.to_string(), t);
                            }
                            None => {
                                call.state.insert(name, t);
                            }
                        }
                    }
                    call.grid = Some(vec![g[1], g[2]]);
                    call.single_step = Some(SingleStep {
                        k: 1,
                        n,
                        r: Some(g[0]),
                        ..SingleStep::default()
                    });
                    both(&p, &sp, &runner, &call, &prev, &format!("{what} step 1"));
                }
                let mut fin = call.clone();
                fin.single_step = None;
                fin.finalize_only = true;
                // The final map reads the grid's first time only; the second keeps a one-step sampler's
                // check of its step.
                fin.grid = Some(vec![g[n], g[n - 1]]);
                both(
                    &p,
                    &sp,
                    &runner,
                    &fin,
                    &HashMap::new(),
                    &format!("{what} final"),
                );
                ran += 1;
            }
        }
    }
    println!("{ran} samplers' steps agree");
    assert!(ran >= 60, "{ran}");
}

/// Bad state: a NaN, a wrong shape, a missing field, a class out of range give the
/// interpreter's messages.
#[test]
fn bad_input_gives_the_interpreters_errors() {
    let p = common::spec("ddpm.diff", "ddpm_linear");
    let runner = StepRunner::new(&p, "ancestral").unwrap();
    let sp = lower_sampler(&p, "ancestral").unwrap();
    let g = p
        .samplers
        .iter()
        .find(|s| s.name == "ancestral")
        .unwrap()
        .default_grid
        .clone();
    let mut call = sampler_call(&p, &sp, vec![g[0], g[1]], 2, 4, 1);
    full_state(&p, &mut call, 2, 4, &mut Gen(2));
    call.single_step = Some(SingleStep {
        k: 0,
        n: g.len() - 1,
        ..SingleStep::default()
    });
    let mut x = call.state["x"].clone();
    if let Data::F32(v) = &mut x.data {
        v[5] = f32::NAN;
    }
    let mut bad = call.clone();
    bad.state.insert("x".into(), x);
    let what = format!("{} ancestral NaN", p.name);
    assert!(both(&p, &sp, &runner, &bad, &HashMap::new(), &what).is_none());
    // A NaN in the network's output is refused as the interpreter refuses a denoiser's.
    let eps = Tensor {
        shape: vec![2, 4],
        data: Data::F32(vec![f32::NAN; 8]),
    };
    let mut inputs = StepInputs::default();
    inputs
        .state
        .insert("x".into(), lend(&call.state["x"], &None));
    inputs.net.insert("eps_hat.x".into(), lend(&eps, &None));
    let e = runner.step(&p, &call, &inputs).unwrap_err();
    assert_eq!(
        e,
        "`eps_hat.x` became NaN at flat index 0 (t = 1000, s = Some(999.0))"
    );
    let mut interp_call = call.clone();
    interp_call.single_step = call.single_step.clone();
    let mut supplied = |_: &Process, _: &NetCall| Ok(vec![eps.clone()]);
    assert_eq!(
        diffc::interp::sample(&p, &sp, &interp_call, &mut supplied).unwrap_err(),
        e
    );
    // A network output of the wrong shape, a missing one, a missing field.
    let short = Tensor {
        shape: vec![2, 3],
        data: Data::F32(vec![0.0; 6]),
    };
    inputs.net.insert("eps_hat.x".into(), lend(&short, &None));
    let e = runner.step(&p, &call, &inputs).unwrap_err();
    assert_eq!(e, "`eps_hat.x` has shape [2, 3], expected [2, 4]");
    inputs.net.clear();
    let e = runner.step(&p, &call, &inputs).unwrap_err();
    assert!(e.contains("give its output `eps_hat.x`"), "{e}");
    inputs.state.clear();
    let zeros = Tensor {
        shape: vec![2, 4],
        data: Data::F32(vec![0.0; 8]),
    };
    inputs.net.insert("eps_hat.x".into(), lend(&zeros, &None));
    let e = runner.step(&p, &call, &inputs).unwrap_err();
    assert_eq!(e, "the step reads `x`: give its value");
    // No state and no sizes: the step's size is not known.
    let mut unsized_call = call.clone();
    unsized_call.state.clear();
    unsized_call.sizes.clear();
    assert!(both(&p, &sp, &runner, &unsized_call, &HashMap::new(), "no sizes").is_none());
    // A time outside the process's: the interpreter's own check.
    let mut late = call.clone();
    late.grid = Some(vec![g[0] + 5.0, g[1]]);
    inputs
        .state
        .insert("x".into(), lend(&call.state["x"], &None));
    assert!(runner.step(&p, &late, &inputs).is_err());
}

/// Arrays handed back to the runner are written over in full: a loop whose results are
/// recycled (after being filled with NaN) gives what fresh arrays give.
#[test]
fn recycled_arrays_are_written_in_full() {
    for (file, process, sampler) in [
        ("ddpm.diff", "ddpm_linear", "ancestral"),
        ("dpm_solver.diff", "vp_linear", "dpmpp_2m"),
    ] {
        let p = common::spec(file, process);
        let sp = lower_sampler(&p, sampler).unwrap();
        let g = p
            .samplers
            .iter()
            .find(|s| s.name == sampler)
            .unwrap()
            .default_grid
            .clone();
        let (fresh, pooled) = (
            StepRunner::new(&p, sampler).unwrap(),
            StepRunner::new(&p, sampler).unwrap(),
        );
        let d = 70_001;
        let mut gen = Gen(4);
        let x0 = tensor_for(&p, Elem::Real, vec![1, d], &mut gen);
        let eps = tensor_for(&p, Elem::Real, vec![1, d], &mut gen);
        let (mut xa, mut xb) = (x0.clone(), x0);
        let (mut pa, mut pb): (HashMap<String, Tensor>, HashMap<String, Tensor>) =
            (HashMap::new(), HashMap::new());
        for k in 0..3 {
            let mut call = sampler_call(&p, &sp, vec![g[k], g[k + 1]], 1, d, 7);
            call.single_step = Some(SingleStep {
                k,
                n: g.len() - 1,
                r: (k > 0).then(|| g[k - 1]),
                ..SingleStep::default()
            });
            let run = |r: &StepRunner, x: &Tensor, prev: &HashMap<String, Tensor>| {
                let mut inputs = StepInputs::default();
                inputs.state.insert("x".into(), lend(x, &None));
                for (n, t) in prev {
                    inputs.prev.insert(n.clone(), lend(t, &None));
                }
                for o in ["eps_hat.x", "x0_hat.x", "eps_net.x"] {
                    inputs.net.insert(o.into(), lend(&eps, &None));
                }
                r.step(&p, &call, &inputs)
                    .unwrap_or_else(|e| panic!("{process} {sampler} step {k}: {e}"))
            };
            let mut a = run(&fresh, &xa, &pa);
            let mut b = run(&pooled, &xb, &pb);
            assert_eq!(a, b, "{process} {sampler} step {k}");
            // The pooled loop hands its old arrays back, poisoned.
            for old in std::iter::once(xb).chain(pb.into_values()) {
                if let Data::F32(mut v) = old.data {
                    v.fill(f32::NAN);
                    pooled.recycle(v);
                }
            }
            xa = a.remove("x").unwrap();
            xb = b.remove("x").unwrap();
            let strip = |m: HashMap<String, Tensor>| -> HashMap<String, Tensor> {
                m.into_iter()
                    .filter_map(|(n, t)| Some((n.strip_prefix("prev.")?.to_string(), t)))
                    .collect()
            };
            pa = strip(a);
            pb = strip(b);
        }
    }
}

/// Run an entry call through `cpu::run` and from its call sequence on lent arrays; the results
/// (or errors) must be equal, bit for bit. Returns whether it ran.
fn entry_both(p: &Process, prog: &Program, runner: &EntryRunner, call: &Call, what: &str) -> bool {
    let want = diffc::cpu::run(p, prog, call);
    let mut scalars = call.clone();
    scalars.inputs.clear();
    let mut held = Vec::new();
    for port in &prog.inputs {
        let Some(t) = call.inputs.get(&port.name) else {
            continue;
        };
        if matches!(port.extent, Extent::Scalar) {
            scalars.inputs.insert(port.name.clone(), t.clone());
        } else {
            held.push((port.name.clone(), t, bytes(t)));
        }
    }
    let arrays: HashMap<String, Lent> = held
        .iter()
        .map(|(n, t, b)| (n.clone(), lend(t, b)))
        .collect();
    let got = runner.run(p, &scalars, &arrays);
    match (want, got) {
        (Ok(w), Ok(g)) => {
            assert_eq!(w.len(), g.len(), "{what}");
            for (i, (a, b)) in g.iter().zip(&w).enumerate() {
                assert_eq!(a.shape, b.shape, "{what}: output {i}'s shape");
                let bits = |t: &Tensor| match &t.data {
                    Data::F32(v) => v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    Data::Class(v) => v.clone(),
                    Data::Bool(v) => v.iter().map(|x| *x as u32).collect(),
                };
                assert!(
                    bits(a) == bits(b),
                    "{what}: output `{}` differs from cpu::run",
                    prog.outputs[i].name
                );
            }
            // Every array input was read where it lies.
            for (name, at) in runner.last_reads() {
                assert!(
                    held.iter().any(|(n, t, _)| format!("`{n}`") == name
                        && match &t.data {
                            Data::F32(v) => v.as_ptr() as usize == at,
                            Data::Class(v) => v.as_ptr() as usize == at,
                            Data::Bool(_) => true,
                        }),
                    "{what}: read {name} at {at:#x}, which is not the caller's array"
                );
            }
            true
        }
        (Err(w), Err(g)) => {
            assert_eq!(g, w, "{what}: errors differ");
            false
        }
        (w, g) => panic!("{what}: cpu::run {}, lean {}", outcome(&w), outcome(&g)),
    }
}

/// Node masks for every mask of `p`: sample `b` keeps its first `size - b % size` nodes.
fn masks_for(p: &Process, batch: usize, size: usize) -> HashMap<String, Tensor> {
    p.masks
        .iter()
        .map(|m| {
            let v = (0..batch)
                .flat_map(|b| (0..size).map(move |i| i < size - b % size))
                .collect();
            let t = Tensor {
                shape: vec![batch, size],
                data: Data::Bool(v),
            };
            (m.name.clone(), t)
        })
        .collect()
}

/// Times for a batch, with runs of equal times and the ends of the time among them.
fn per_sample_times(p: &Process, batch: usize, g: &mut Gen) -> Vec<f32> {
    let (lo, hi) = (p.time.lo, p.time.hi);
    let mut out: Vec<f32> = (0..batch)
        .map(|_| {
            let u = g.next() as f64;
            match p.time.kind {
                TimeKind::Discrete => (lo + (u * (hi - lo + 1.0)).floor()).min(hi) as f32,
                TimeKind::Continuous => (lo + u * (hi - lo)) as f32,
            }
        })
        .collect();
    for b in (1..batch).step_by(3) {
        out[b] = out[b - 1];
    }
    if let Some(x) = out.first_mut() {
        *x = hi as f32;
    }
    if batch > 2 {
        out[batch - 1] = lo as f32;
    }
    out
}

#[test]
fn every_entry_matches_the_cpu_backend() {
    let (mut ran, mut per_sample, mut masked_runs) = (0, 0, 0);
    for p in shipped() {
        for e in entries(&p) {
            if matches!(e.kind, EntryKind::Step | EntryKind::Finalize) {
                continue;
            }
            let prog = lower(&p, &e.name).unwrap();
            let runner = EntryRunner::new(&p, &e.name)
                .unwrap_or_else(|err| panic!("{} {}: {err}", p.name, e.name));
            for (batch, size, seed) in CASES {
                let what = format!("{} {} (batch {batch}, size {size})", p.name, e.name);
                let mut call = entry_call(&p, &prog, batch, size, seed);
                call.step = seed as u32;
                ran += entry_both(&p, &prog, &runner, &call, &what) as usize;
                if !p.masks.is_empty() {
                    let mut masked = call.clone();
                    masked.masks = masks_for(&p, batch, size);
                    let what = format!("{what}, masked");
                    masked_runs += entry_both(&p, &prog, &runner, &masked, &what) as usize;
                }
                let timed = prog.inputs.iter().any(|x| x.name == p.time.name);
                if timed && batch > 0 {
                    let times = per_sample_times(&p, batch + 4, &mut Gen(seed + 13));
                    let mut call = entry_call(&p, &prog, batch + 4, size, seed);
                    call.inputs.insert(
                        p.time.name.clone(),
                        Tensor {
                            shape: vec![batch + 4],
                            data: Data::F32(times),
                        },
                    );
                    if !p.masks.is_empty() {
                        call.masks = masks_for(&p, batch + 4, size);
                    }
                    let what = format!("{what}, one time per sample");
                    per_sample += entry_both(&p, &prog, &runner, &call, &what) as usize;
                }
            }
        }
    }
    println!(
        "{ran} entry calls, {per_sample} with a time per sample and {masked_runs} masked agree"
    );
    assert!(
        ran >= 300 && per_sample >= 150 && masked_runs >= 50,
        "{ran} {per_sample} {masked_runs}"
    );
}

/// Bad entry input: a NaN, a wrong shape, a missing input, a time outside the process's, a bad
/// param give the interpreter's messages.
#[test]
fn bad_entry_input_gives_the_interpreters_errors() {
    let p = common::spec("ddpm.diff", "ddpm_linear");
    let prog = lower(&p, "loss.simple").unwrap();
    let runner = EntryRunner::new(&p, "loss.simple").unwrap();
    let good = entry_call(&p, &prog, 3, 4, 1);
    let mut cases: Vec<(&str, Call)> = Vec::new();
    let mut c = good.clone();
    if let Some(Data::F32(v)) = c.inputs.get_mut("x_t").map(|t| &mut t.data) {
        v[5] = f32::NAN;
    }
    cases.push(("a NaN", c));
    let mut c = good.clone();
    c.inputs.get_mut("x_t").unwrap().shape = vec![3, 2, 2, 4];
    cases.push(("a wrong shape", c));
    let mut c = good.clone();
    c.inputs.remove("x_t");
    cases.push(("a missing input", c));
    let mut c = good.clone();
    c.inputs.insert("t".into(), Tensor::scalar(5000.0));
    cases.push(("a time outside", c));
    let mut c = good.clone();
    c.inputs.insert(
        "t".into(),
        Tensor {
            shape: vec![2],
            data: Data::F32(vec![1.0, 2.0]),
        },
    );
    cases.push(("a time array of the wrong length", c));
    let mut c = good.clone();
    c.batch = 2;
    cases.push(("a wrong batch", c));
    let mut c = good.clone();
    c.masks.insert("m".into(), c.inputs["x_t"].clone());
    cases.push(("an unknown mask", c));
    for (what, c) in cases {
        assert!(!entry_both(&p, &prog, &runner, &c, what), "{what} ran");
    }
    let mut c = good.clone();
    c.draws.insert("eps".into(), c.inputs["x_t"].clone());
    let mut arrays = HashMap::new();
    arrays.insert("x_t".to_string(), lend(&good.inputs["x_t"], &None));
    let e = runner.run(&p, &c, &arrays).unwrap_err();
    assert!(e.contains("interpreter's path"), "{e}");
}

/// Whole runs from call sequences (`StepRunner::sample`) equal `cpu::sample`'s, bit for bit,
/// for every sampler of every shipped spec: the start (the priors, or the `init` block), every
/// step with its history, and the final map.
#[test]
fn every_whole_run_matches_the_cpu_backend() {
    let mut ran = 0;
    for p in shipped() {
        for s in &p.samplers {
            let sp = lower_sampler(&p, &s.name).unwrap();
            let runner = StepRunner::new(&p, &s.name).unwrap();
            let g = &s.default_grid;
            let short = g[..5.min(g.len())].to_vec();
            let grids = if g.len() <= 60 {
                vec![short, g.clone()]
            } else {
                vec![short]
            };
            for grid in grids {
                for (batch, size, seed, masked) in
                    [(2, 5, 3, false), (3, 2, 9, false), (3, 4, 2, true)]
                {
                    if masked && p.masks.is_empty() {
                        continue;
                    }
                    let what = format!(
                        "{} {} (batch {batch}, size {size}, {} steps{})",
                        p.name,
                        s.name,
                        grid.len() - 1,
                        if masked { ", masked" } else { "" }
                    );
                    let mut call = sampler_call(&p, &sp, grid.clone(), batch, size, seed);
                    if masked {
                        call.masks = masks_for(&p, batch, size);
                    }
                    let want = diffc::cpu::sample(&p, &sp, &call, &mut Wobbly(0));
                    let held: Vec<_> = call.state.iter().map(|(n, t)| (n, t, bytes(t))).collect();
                    let state: HashMap<String, Lent> = held
                        .iter()
                        .map(|(n, t, b)| ((*n).clone(), lend(t, b)))
                        .collect();
                    let mut lean_call = call.clone();
                    lean_call.state.clear();
                    let got = runner.sample(&p, &lean_call, &state, &mut AsNet(&mut Wobbly(0)));
                    match (want, got) {
                        (Ok(w), Ok(g)) => {
                            for (name, t) in &w {
                                match g.get(name) {
                                    Some(x) => assert!(x == t, "{what}: `{name}` differs"),
                                    None => assert!(
                                        call.state.get(name) == Some(t),
                                        "{what}: `{name}` is missing"
                                    ),
                                }
                            }
                            assert!(g.keys().all(|k| w.contains_key(k)), "{what}");
                            ran += 1;
                        }
                        (Err(w), Err(g)) => assert_eq!(g, w, "{what}: errors differ"),
                        (w, g) => {
                            panic!("{what}: cpu::sample {}, lean {}", outcome(&w), outcome(&g))
                        }
                    }
                }
            }
        }
    }
    println!("{ran} whole runs agree");
    assert!(ran >= 130, "{ran}");
}
