//! The differential harness: deterministic inputs for every entry and sampler of a spec, a
//! deterministic network, and float comparison within a tolerance. Every backend is tested
//! against the interpreter with it (`tests/cpu.rs`, `tests/gpu.rs`).

use diffc::entries::{entries, EntryKind, Extent};
use diffc::interp::{self, Call, Data, Denoiser, SampleCall, Tensor};
use diffc::ir::lower::{lower, lower_sampler};
use diffc::ir::{Program, SamplerProgram};
use diffc::plan::{NetArray, NetFn, NetInput, NetValues};
use diffc::typed::{Elem, Process, TimeKind};
use std::collections::HashMap;

/// A deterministic stream of numbers for test inputs.
pub struct Gen(pub u64);

impl Gen {
    pub fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / (1u64 << 24) as f32
    }
}

pub fn tensor_for(p: &Process, elem: Elem, shape: Vec<usize>, g: &mut Gen) -> Tensor {
    let n: usize = shape.iter().product();
    let data = match elem {
        Elem::Bool => Data::Bool((0..n).map(|_| g.next() < 0.5).collect()),
        Elem::Cat(k) => Data::Class(
            (0..n)
                .map(|_| ((g.next() * k as f32) as u32).min(k - 1))
                .collect(),
        ),
        Elem::Vec(k) => {
            // Points on the simplex: valid probabilities, and fine as logits.
            let k = k as usize;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n / k {
                let row: Vec<f32> = (0..k).map(|_| 0.05 + g.next()).collect();
                let s: f32 = row.iter().sum();
                v.extend(row.iter().map(|x| x / s));
            }
            Data::F32(v)
        }
        _ => Data::F32((0..n).map(|_| 0.1 + 0.8 * g.next()).collect()),
    };
    let _ = p;
    Tensor { shape, data }
}

pub fn times(p: &Process) -> (f64, f64) {
    let (lo, hi) = (p.time.lo, p.time.hi);
    match p.time.kind {
        TimeKind::Discrete => {
            let t = ((lo + hi) / 2.0).round();
            (t, t - 1.0)
        }
        TimeKind::Continuous => (lo + 0.3 * (hi - lo), lo + 0.2 * (hi - lo)),
    }
}

/// Compare a backend's tensor with the interpreter's: classes and bools equal, floats with
/// |got - want| <= tol * max(1, |want|); the largest relative difference goes to `worst`.
pub fn compare(what: &str, a: &Tensor, b: &Tensor, tol: f32, worst: &mut f32) {
    assert_eq!(a.shape, b.shape, "{what}: shapes");
    match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                if u == v || (u.is_nan() && v.is_nan()) {
                    continue;
                }
                let d = (u - v).abs() / v.abs().max(1.0);
                assert!(
                    d <= tol,
                    "{what}: element {i}: backend {u} vs interpreter {v}"
                );
                *worst = worst.max(d);
            }
        }
        (Data::Class(x), Data::Class(y)) => assert_eq!(x, y, "{what}: classes"),
        (Data::Bool(x), Data::Bool(y)) => assert_eq!(x, y, "{what}: bools"),
        _ => panic!("{what}: element types differ"),
    }
}

/// The calls an entry is tested with: (batch, size of every dimension, seed).
pub const CASES: [(usize, usize, u64); 4] = [(1, 1, 3), (3, 5, 11), (2, 8, 7), (0, 4, 5)];

/// An entry call with deterministic inputs: `batch` samples, every dimension of size `size`.
pub fn entry_call(p: &Process, prog: &Program, batch: usize, size: usize, seed: u64) -> Call {
    let mut g = Gen(seed * 1000 + size as u64);
    let (t, s) = times(p);
    let mut call = Call {
        seed,
        batch,
        sizes: p.dims.iter().map(|d| (d.name.clone(), size)).collect(),
        ..Call::default()
    };
    for port in &prog.inputs {
        match &port.extent {
            Extent::Field(shape) => {
                let mut dims = vec![batch];
                dims.extend(shape.dims.iter().map(|_| size));
                if let Elem::Vec(k) = port.elem {
                    dims.push(k as usize);
                }
                let mut t = tensor_for(p, port.elem, dims, &mut g);
                if shape.sym && !port.name.contains('.') {
                    diffc::interp::symmetrize(&mut t);
                }
                call.inputs.insert(port.name.clone(), t);
            }
            Extent::Sample => {
                let t = tensor_for(p, port.elem, vec![batch], &mut g);
                call.inputs.insert(port.name.clone(), t);
            }
            Extent::Scalar if port.name == "s" => {
                call.inputs.insert("s".into(), Tensor::scalar(s as f32));
            }
            Extent::Scalar if port.name != "seed" => {
                call.inputs
                    .insert(port.name.clone(), Tensor::scalar(t as f32));
            }
            Extent::Scalar => {}
        }
    }
    call
}

/// What a differential run over entries found.
#[derive(Debug, Default)]
pub struct Tally {
    /// Calls whose outputs agree.
    pub checked: usize,
    /// Calls that also agree with their noise supplied back.
    pub supplied: usize,
    /// The largest relative float difference.
    pub worst: f32,
}

type RunFn<'a> = &'a dyn Fn(&Process, &Program, &Call) -> Result<Vec<Tensor>, String>;

/// Every entry of every process in `procs` at every case of `cases`, on `run` against the
/// interpreter; the noise an entry returns, supplied back in place of the generator, must give
/// the same outputs on the backend too.
pub fn every_entry(
    procs: &[Process],
    cases: &[(usize, usize, u64)],
    tol: f32,
    run: RunFn<'_>,
) -> Tally {
    let mut tally = Tally::default();
    for p in procs {
        for e in entries(p) {
            if matches!(e.kind, EntryKind::Step | EntryKind::Finalize) {
                continue;
            }
            let prog =
                lower(p, &e.name).unwrap_or_else(|err| panic!("{} {}: {err}", p.name, e.name));
            for &(batch, size, seed) in cases {
                let call = entry_call(p, &prog, batch, size, seed);
                let what = format!("{} {} (batch {batch}, size {size})", p.name, e.name);
                let want = interp::run(p, &prog, &call);
                let got = run(p, &prog, &call);
                match (want, got) {
                    (Ok(w), Ok(g)) => {
                        assert_eq!(w.len(), g.len());
                        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
                            compare(&format!("{what} output {i}"), a, b, tol, &mut tally.worst);
                        }
                        tally.checked += 1;
                        let mut again = call.clone();
                        for (port, t) in prog.outputs.iter().zip(&w) {
                            if prog.draws.iter().any(|d| d.name == port.name) {
                                again.draws.insert(port.name.clone(), t.clone());
                            }
                        }
                        if !again.draws.is_empty() {
                            let g2 = run(p, &prog, &again).unwrap();
                            for (i, (a, b)) in g2.iter().zip(&w).enumerate() {
                                compare(
                                    &format!("{what} (noise supplied) output {i}"),
                                    a,
                                    b,
                                    tol,
                                    &mut tally.worst,
                                );
                            }
                            tally.supplied += 1;
                        }
                    }
                    (Err(w), Err(g)) => assert_eq!(g, w, "{what}: errors differ"),
                    (w, g) => panic!(
                        "{what}: interpreter {}, backend {}",
                        outcome(&w),
                        outcome(&g)
                    ),
                }
            }
        }
    }
    tally
}

/// A deterministic network: outputs that vary with the element and the call, valid
/// probabilities for class outputs.
pub struct Wobbly(pub u32);

impl Denoiser for Wobbly {
    fn denoise(
        &mut self,
        p: &Process,
        call: &diffc::interp::NetCall,
    ) -> Result<Vec<Tensor>, String> {
        let (net, inputs) = (call.net, call.inputs);
        self.0 += 1;
        let batch = inputs
            .iter()
            .find(|t| !t.shape.is_empty())
            .map_or(1, |t| t.shape[0]);
        let mut g = Gen(self.0 as u64 * 7919 + net as u64);
        Ok(p.networks[net]
            .outputs
            .iter()
            .map(|o| {
                let f = p.field(o.field);
                let size = inputs
                    .iter()
                    .find(|t| t.shape.len() > 1)
                    .map_or(3, |t| t.shape[1]);
                let mut shape = vec![batch];
                shape.extend(f.shape.dims.iter().map(|_| size));
                let elem = match o.ty.elem().unwrap() {
                    Elem::Vec(k) => {
                        shape.push(k as usize);
                        Elem::Vec(k)
                    }
                    _ => Elem::Real,
                };
                let mut t = tensor_for(p, elem, shape, &mut g);
                if elem == Elem::Real {
                    if let Data::F32(v) = &mut t.data {
                        v.iter_mut().for_each(|x| *x = (*x - 0.5) * 0.4);
                    }
                }
                t
            })
            .collect())
    }
}

/// A denoiser as the network of a whole run replayed from call sequences (`plan::NetFn`: the
/// CPU's `StepRunner::sample`, the GPU's `SampleRunner`), called on the network's inputs the run
/// hands it (no field arguments, no time of its own).
pub struct AsNet<'d>(pub &'d mut dyn Denoiser);

impl NetFn for AsNet<'_> {
    fn call(
        &mut self,
        p: &Process,
        net: usize,
        inputs: &[NetInput],
    ) -> Result<Vec<Box<dyn NetArray>>, String> {
        let tensors: Vec<Tensor> = inputs
            .iter()
            .map(|a| Tensor {
                shape: a.shape.clone(),
                data: match &a.values {
                    NetValues::Reals(v) => Data::F32(v.to_vec()),
                    NetValues::Classes(v) => Data::Class(v.to_vec()),
                    NetValues::Bools(v) => Data::Bool(v.iter().map(|b| *b != 0).collect()),
                    NetValues::Given(name) => {
                        panic!("`{name}` given, which this net never asks for")
                    }
                },
            })
            .collect();
        let masks = HashMap::new();
        let call = interp::NetCall {
            net,
            inputs: &tensors,
            fields: &[],
            time: None,
            masks: &masks,
        };
        Ok(self
            .0
            .denoise(p, &call)?
            .into_iter()
            .map(|t| Box::new(t) as Box<dyn NetArray>)
            .collect())
    }
}

pub fn sampler_call(
    p: &Process,
    sp: &diffc::ir::SamplerProgram,
    grid: Vec<f64>,
    batch: usize,
    size: usize,
    seed: u64,
) -> SampleCall {
    let mut state = HashMap::new();
    let mut g = Gen(seed);
    for c in &sp.conditions {
        let f = &p.fields[*c as usize];
        let mut dims = vec![batch];
        dims.extend(f.shape.dims.iter().map(|_| size));
        if let Elem::Vec(k) = f.elem {
            dims.push(k as usize);
        }
        let mut t = tensor_for(p, f.elem, dims, &mut g);
        if f.shape.sym {
            diffc::interp::symmetrize(&mut t);
        }
        state.insert(f.name.clone(), t);
    }
    SampleCall {
        seed,
        batch,
        sizes: p.dims.iter().map(|d| (d.name.clone(), size)).collect(),
        state,
        grid: Some(grid),
        ..SampleCall::default()
    }
}

type SampleFn<'a> = &'a dyn Fn(
    &Process,
    &SamplerProgram,
    &SampleCall,
    &mut dyn Denoiser,
) -> Result<HashMap<String, Tensor>, String>;

/// Every sampler of every process in `procs` over the first steps of its default grid, with
/// `Wobbly` as the network, on `sample` against the interpreter: (runs that agree, the largest
/// relative difference).
pub fn every_sampler(
    procs: &[Process],
    cases: &[(usize, usize, u64)],
    tol: f32,
    sample: SampleFn<'_>,
) -> (usize, f32) {
    let (mut ran, mut worst) = (0, 0.0f32);
    for p in procs {
        for s in &p.samplers {
            let sp = lower_sampler(p, &s.name).unwrap();
            let g = &s.default_grid;
            let grid = vec![g[0], g[1], g[2], g[3.min(g.len() - 1)]];
            for &(batch, size, seed) in cases {
                let call = sampler_call(p, &sp, grid.clone(), batch, size, seed);
                let what = format!("{} {} (batch {batch}, size {size})", p.name, s.name);
                let want = interp::sample(p, &sp, &call, &mut Wobbly(0));
                let got = sample(p, &sp, &call, &mut Wobbly(0));
                match (want, got) {
                    (Ok(w), Ok(g)) => {
                        let mut names: Vec<_> = w.keys().collect();
                        names.sort();
                        assert_eq!(names.len(), g.len(), "{what}: fields");
                        for n in names {
                            compare(&format!("{what} `{n}`"), &g[n], &w[n], tol, &mut worst);
                        }
                        ran += 1;
                    }
                    (Err(w), Err(g)) => assert_eq!(g, w, "{what}: errors differ"),
                    (w, g) => panic!(
                        "{what}: interpreter {}, backend {}",
                        outcome(&w),
                        outcome(&g)
                    ),
                }
            }
        }
    }
    (ran, worst)
}

/// A result as a line: `ok` or the error.
pub fn outcome<T>(r: &Result<T, String>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("error: {e}"),
    }
}
