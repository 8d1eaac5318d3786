//! Sampler steps on the CPU: the fused Cranelift kernel against the reference interpreter and a
//! straightforward ndarray version of the same maths (one pass over memory per operation), with
//! a STREAM triad measured in the same run as the bandwidth baseline; then the JIT compile time
//! of every shipped spec.
//!
//! `cargo bench --bench steps -- [--sizes 1M,16M] [--threads N] [--reps R] [--no-interp]`
//! (`scripts/bench.sh` runs it and keeps the table). Every figure is the median of R runs.
//! `--threads` sizes rayon's pool, which runs the kernels, and the parts of each launch
//! (default: every core).
//!
//! Columns: elements per second; GB/s of the step's minimal memory traffic (bytes every
//! implementation must move: each input read once, each output written once); and that
//! bandwidth as a fraction of the triad's (12 bytes per element, the STREAM convention) at the
//! same size. "kernel" is the fused kernel alone on buffers allocated once; "cpu step" is a whole
//! step through `diffc::cpu::sample`, with the host's share (network call, buffer allocation,
//! copies, checks) included; "lean step" is the same whole step through the step runner
//! (`diffc::cpu::lean`: its call sequence on the caller's arrays, the network's outputs given,
//! the state checked, results handed back to the runner as a sampling loop does).

use diffc::cpu::lean::{Lent, LentData, StepInputs};
use diffc::cpu::{self, Compiled, Launch, Options};
use diffc::interp::{self, Data, Denoiser, SampleCall, SingleStep, Tensor};
use diffc::typed::{Elem, Process};
use ndarray::{Array1, Array2, Axis, Zip};
use rayon::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

struct Args {
    sizes: Vec<usize>,
    threads: usize,
    reps: usize,
    interp: bool,
    /// Time the sampler steps (`--jit-only` prints the compile times alone).
    steps: bool,
    /// Only the steps whose label starts with this (`--only DDPM`).
    only: Option<String>,
}

fn parse_size(s: &str) -> usize {
    let (num, mul) = match s.trim_end_matches(['M', 'm', 'K', 'k']) {
        n if s.ends_with(['M', 'm']) => (n, 1 << 20),
        n if s.ends_with(['K', 'k']) => (n, 1 << 10),
        n => (n, 1),
    };
    num.parse::<usize>()
        .unwrap_or_else(|_| panic!("bad size `{s}`"))
        * mul
}

fn args() -> Args {
    let mut a = Args {
        sizes: vec![1 << 20, 16 << 20],
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        reps: 5,
        interp: true,
        steps: true,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--sizes" => a.sizes = it.next().unwrap().split(',').map(parse_size).collect(),
            "--threads" => a.threads = it.next().unwrap().parse().unwrap(),
            "--reps" => a.reps = it.next().unwrap().parse().unwrap(),
            "--no-interp" => a.interp = false,
            "--jit-only" => a.steps = false,
            "--only" => a.only = it.next(),
            "--bench" => {}
            _ => {}
        }
    }
    a
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(reps: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm: page in buffers, fill caches
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

/// A small deterministic generator for inputs.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }
}

// ---------------------------------------------------------------------------------------------
// STREAM triad: a[i] = b[i] + s c[i], in `threads` parts on the pool the kernels use.
// ---------------------------------------------------------------------------------------------

fn triad(n: usize, threads: usize, reps: usize) -> f64 {
    let mut a = vec![0.0f32; n];
    let b = vec![1.0f32; n];
    let c = vec![2.0f32; n];
    let chunk = n.div_ceil(threads);
    let t = time(reps, || {
        a.par_chunks_mut(chunk)
            .zip(b.par_chunks(chunk))
            .zip(c.par_chunks(chunk))
            .for_each(|((a, b), c)| {
                for ((a, b), c) in a.iter_mut().zip(b).zip(c) {
                    *a = b + 3.0 * c;
                }
            });
        std::hint::black_box(&a);
    });
    12.0 * n as f64 / t.as_secs_f64() / 1e9
}

/// The time to draw `n` standard normals in `threads` parts on the kernels' pool into a buffer
/// that stays in L1: the generator alone, with no memory traffic (the native fills where the CPU
/// runs them, as the JIT's kernels do, otherwise `rng::fill_normal`). A noisy step cannot be
/// faster than this.
fn normals_alone(n: usize, threads: usize, reps: usize) -> Duration {
    let chunk = n.div_ceil(threads).div_ceil(256) * 256;
    time(reps, || {
        (0..threads).into_par_iter().for_each(|t| {
            let mut buf = [0.0f32; 256];
            let start = t * chunk;
            for i in (start..(start + chunk).min(n)).step_by(256) {
                let block = i as u64 / 4;
                if cpu::native::fill(true, [7, 0], 1, 0, block, &mut buf).is_none() {
                    diffc::rng::fill_normal(7, 0, 1, i as u64, &mut buf);
                }
                std::hint::black_box(&buf);
            }
        });
    })
}

// ---------------------------------------------------------------------------------------------
// The steps
// ---------------------------------------------------------------------------------------------

/// A step's batch, its dimension sizes by name, and its element count.
type Layout = (usize, Vec<(&'static str, usize)>, usize);

struct Case {
    label: &'static str,
    source: String,
    process: &'static str,
    sampler: &'static str,
    /// Minimal bytes per element.
    bytes: usize,
    /// The step's index in its grid (a middle step: multistep samplers use their history).
    k: usize,
    /// Sizes (batch, dims) for about `n` elements, and the exact element count.
    shape: fn(usize) -> Layout,
    /// The same maths with ndarray, one pass per operation.
    ndarray: fn(&mut Bufs),
}

fn spec(file: &str) -> String {
    std::fs::read_to_string(format!("specs/{file}")).unwrap()
}

fn cases() -> Vec<Case> {
    // DiGress with five edge classes (none, single, double, triple, aromatic), as for molecules.
    let digress5 = spec("digress.diff")
        .replace("const b = 4 ", "const b = 5 ")
        .replace(
            "param mE : vec<b> = [0.7261, 0.2384, 0.0274, 0.0081]",
            "param mE : vec<b> = [0.7200, 0.2300, 0.0300, 0.0150, 0.0050]",
        );
    assert!(digress5.contains("const b = 5 ") && digress5.contains("0.0050]"));
    vec![
        Case {
            label: "DDPM ancestral",
            source: spec("ddpm.diff"),
            process: "ddpm_linear",
            sampler: "ancestral",
            bytes: 12,
            k: 500,
            shape: |n| (1, vec![("d", n)], n),
            ndarray: nd_ddpm,
        },
        Case {
            label: "DPM-Solver++(2M)",
            source: spec("dpm_solver.diff"),
            process: "vp_linear",
            sampler: "dpmpp_2m",
            bytes: 20,
            k: 5,
            shape: |n| (1, vec![("d", n)], n),
            ndarray: nd_dpmpp2m,
        },
        Case {
            label: "DiGress edges K=5",
            source: digress5,
            process: "digress",
            sampler: "ancestral",
            bytes: 28,
            k: 250,
            shape: |n| {
                let m = (n as f64).sqrt() as usize;
                (1, vec![("n", m)], m * m)
            },
            ndarray: nd_digress,
        },
        Case {
            label: "BFN-Solver2 K=27",
            source: spec("bfn_discrete.diff"),
            process: "bfn_discrete",
            sampler: "bfn_solver2",
            bytes: 16,
            k: 4,
            shape: |n| (1, vec![("d", n / 27)], n / 27 * 27),
            ndarray: nd_bfn2,
        },
    ]
}

/// Network outputs: fixed tensors made once, shaped like the fields they predict.
struct Fixed(HashMap<usize, Vec<Tensor>>);

impl Denoiser for Fixed {
    fn denoise(
        &mut self,
        _: &Process,
        call: &diffc::interp::NetCall,
    ) -> Result<Vec<Tensor>, String> {
        let net = call.net;
        Ok(self.0[&net].clone())
    }
}

fn field_tensor(elem: Elem, dims: Vec<usize>, g: &mut Lcg) -> Tensor {
    let n: usize = dims.iter().product();
    let data = match elem {
        Elem::Cat(k) => Data::Class(
            (0..n)
                .map(|_| ((g.next() * k as f32) as u32).min(k - 1))
                .collect(),
        ),
        Elem::Bool => Data::Bool((0..n).map(|_| g.next() < 0.5).collect()),
        Elem::Vec(k) => {
            // Probability vectors (or logits): positive, summing to one.
            let k = k as usize;
            let mut v: Vec<f32> = (0..n).map(|_| 0.05 + g.next()).collect();
            for row in v.chunks_mut(k) {
                let s: f32 = row.iter().sum();
                row.iter_mut().for_each(|x| *x /= s);
            }
            Data::F32(v)
        }
        _ => Data::F32((0..n).map(|_| (g.next() - 0.5) * 2.0).collect()),
    };
    Tensor { shape: dims, data }
}

fn dims_of(
    p: &Process,
    shape: &[diffc::typed::DimId],
    batch: usize,
    sizes: &HashMap<String, usize>,
) -> Vec<usize> {
    let mut d = vec![batch];
    d.extend(shape.iter().map(|id| sizes[&p.dims[id.0 as usize].name]));
    d
}

struct Prepared {
    p: Process,
    sp: diffc::ir::SamplerProgram,
    call: SampleCall,
    nets: Fixed,
}

fn prepare(c: &Case, n: usize) -> (Prepared, usize) {
    let m = diffc::check::check_source(&c.source)
        .0
        .expect("spec checks");
    let p = m
        .processes
        .into_iter()
        .find(|p| p.name == c.process)
        .unwrap();
    let sp = diffc::ir::lower::lower_sampler(&p, c.sampler).unwrap();
    let s = p.samplers.iter().find(|s| s.name == c.sampler).unwrap();
    let g = &s.default_grid;
    let (batch, dims, elems) = (c.shape)(n);
    let sizes: HashMap<String, usize> = dims.iter().map(|(d, n)| (d.to_string(), *n)).collect();
    let mut gen = Lcg(7);
    let mut state = HashMap::new();
    for f in &p.fields {
        let mut d = dims_of(&p, &f.shape.dims, batch, &sizes);
        if let Elem::Vec(k) = f.elem {
            d.push(k as usize);
        }
        let mut t = field_tensor(f.elem, d, &mut gen);
        if f.shape.sym {
            interp::symmetrize(&mut t);
        }
        state.insert(f.name.clone(), t);
    }
    let mut nets = HashMap::new();
    for (i, net) in p.networks.iter().enumerate() {
        let outs = net
            .outputs
            .iter()
            .map(|o| {
                let f = p.field(o.field);
                let mut d = dims_of(&p, &f.shape.dims, batch, &sizes);
                let elem = match o.ty.elem().unwrap() {
                    Elem::Vec(k) => {
                        d.push(k as usize);
                        Elem::Vec(k)
                    }
                    _ => Elem::Real,
                };
                field_tensor(elem, d, &mut gen)
            })
            .collect();
        nets.insert(i, outs);
    }
    let mut prev = HashMap::new();
    for h in &sp.history_names {
        // A history value is the network's (or a let's) previous value: shaped like the state's
        // first field of the same kind; the bench's steps keep real or vec<K> histories.
        let f = p
            .fields
            .iter()
            .find(|f| !matches!(f.elem, Elem::Cat(_) | Elem::Bool))
            .unwrap();
        let mut d = dims_of(&p, &f.shape.dims, batch, &sizes);
        if let Elem::Vec(k) = f.elem {
            d.push(k as usize);
        }
        prev.insert(h.clone(), field_tensor(f.elem, d, &mut gen));
    }
    let call = SampleCall {
        seed: 1,
        batch,
        sizes,
        state,
        grid: Some(vec![g[c.k], g[c.k + 1]]),
        single_step: Some(SingleStep {
            k: c.k,
            n: g.len() - 1,
            r: Some(g[c.k - 1]),
            prev,
        }),
        ..SampleCall::default()
    };
    (
        Prepared {
            p,
            sp,
            call,
            nets: Fixed(nets),
        },
        elems,
    )
}

/// A recorded launch with buffers of its own.
struct Bound<'c> {
    c: &'c Compiled,
    launch: Launch,
    bufs: Vec<Vec<u32>>,
}

fn bind<'c>(c: &'c Compiled, launches: &[Launch]) -> Vec<Bound<'c>> {
    let mut g = Lcg(11);
    launches
        .iter()
        .map(|l| {
            let k = &c.plan.kernels[l.kernel];
            let bufs = k
                .bufs
                .iter()
                .zip(&l.bytes)
                .map(|(b, bytes)| {
                    let words = bytes.div_ceil(4);
                    match b.store {
                        // Reals in (-1, 1), or probability vectors 1/K.
                        diffc::kernel::Store::F32 if b.width > 1 => {
                            vec![(1.0 / b.width as f32).to_bits(); words]
                        }
                        diffc::kernel::Store::F32 => {
                            (0..words).map(|_| (g.next() - 0.5).to_bits()).collect()
                        }
                        // Class 0 and `true`: valid for every kernel.
                        diffc::kernel::Store::U32 => vec![0; words],
                        diffc::kernel::Store::U8 => vec![0x0101_0101; words],
                    }
                })
                .collect();
            Bound {
                c,
                launch: l.clone(),
                bufs,
            }
        })
        .collect()
}

fn run_bound(b: &mut [Bound], opts: Options) {
    for x in b {
        let ptrs: Vec<*mut u8> = x
            .bufs
            .iter_mut()
            .map(|v| v.as_mut_ptr() as *mut u8)
            .collect();
        // SAFETY: each buffer holds the bytes the recorded launch bound, and every one is its own
        // allocation, so outputs overlap nothing.
        let status = unsafe { x.c.launch(&x.launch, &ptrs, opts) };
        assert_eq!(status, 0, "kernel status");
    }
}

// ---------------------------------------------------------------------------------------------
// ndarray: the same maths, one operation (one pass over memory) at a time.
// ---------------------------------------------------------------------------------------------

/// Inputs of an ndarray step: the state, network outputs and history, all flat.
struct Bufs {
    n: usize,
    x: Array1<f32>,
    e: Array1<f32>,
    prev: Array1<f32>,
    /// Class per element (DiGress) and probabilities, K per element.
    cls: Array1<u32>,
    probs: Array2<f32>,
    k: usize,
}

fn normals(n: usize, step: u32) -> Array1<f32> {
    let mut z = vec![0.0f32; n];
    diffc::rng::fill_normal(1, 0, step, 0, &mut z);
    Array1::from(z)
}

fn uniforms(n: usize, step: u32) -> Array1<f32> {
    let mut u = vec![0.0f32; n];
    diffc::rng::fill_uniform(1, 0, step, 0, &mut u);
    Array1::from(u)
}

/// x0 = (x - sqrt(1 - ᾱ) ε)/sqrt(ᾱ); mean = c1 x0 + c2 x; x' = mean + σ z.
fn nd_ddpm(b: &mut Bufs) {
    let (s1, sa, c1, c2, sig) = (0.6f32, 0.8f32, 0.3f32, 0.7f32, 0.01f32);
    let x0 = (&b.x - &(&b.e * s1)) / sa;
    let mean = &x0 * c1 + &(&b.x * c2);
    let z = normals(b.n, 3);
    b.x = mean + &(z * sig);
}

/// x̂0 = (x - σ ε)/α; D = (1 + 1/2q) x̂0 - 1/2q x̂0_prev; x' = (σ_s/σ_t) x - α_s (e^-h - 1) D.
fn nd_dpmpp2m(b: &mut Bufs) {
    let (sig, al, q, ratio, a2) = (0.6f32, 0.8f32, 1.1f32, 0.9f32, 0.05f32);
    let x0 = (&b.x - &(&b.e * sig)) / al;
    let d = &x0 * (1.0 + 0.5 / q) - &(&b.prev * (0.5 / q));
    b.x = &b.x * ratio - &(&d * a2);
    b.prev = x0;
}

/// DiGress posterior per edge: w_k = p̂_k / Q̄_t[k, c]; p ∝ Q_t[:, c] ⊙ (w Q̄_{t-1}); a class by
/// the inverse CDF of one uniform.
fn nd_digress(b: &mut Bufs) {
    let k = b.k;
    let m = Array1::from_elem(k, 1.0 / k as f32);
    let mat = |keep: f32| {
        Array2::from_shape_fn((k, k), |(i, j)| {
            keep * (i == j) as u8 as f32 + (1.0 - keep) * m[j]
        })
    };
    let (qt, qbt, qbs) = (mat(0.98), mat(0.5), mat(0.51));
    // Gathers: the column of Q̄_t and of Q_t at each element's class.
    let mut col_bt = Array2::<f32>::zeros((b.n, k));
    Zip::from(col_bt.rows_mut())
        .and(&b.cls)
        .for_each(|mut r, &c| r.assign(&qbt.column(c as usize)));
    let w = &b.probs / &col_bt;
    let mix = w.dot(&qbs);
    let mut col_t = Array2::<f32>::zeros((b.n, k));
    Zip::from(col_t.rows_mut())
        .and(&b.cls)
        .for_each(|mut r, &c| r.assign(&qt.column(c as usize)));
    let un = &col_t * &mix;
    let total = un.sum_axis(Axis(1));
    let u = uniforms(b.n, 4);
    let target = &u * &total;
    let mut cum = un;
    cum.accumulate_axis_inplace(Axis(1), |&prev, cur| *cur += prev);
    Zip::from(&mut b.cls)
        .and(cum.rows())
        .and(&target)
        .for_each(|c, row, &t| {
            *c = row.iter().position(|&v| t < v).unwrap_or(k - 1) as u32;
        });
}

/// The network's input θ = softmax(z) over each element's K logits, then
/// z' = a z + b (1/K - ê) + c (ê - ê_prev) (first- plus second-order ODE terms).
fn nd_bfn2(b: &mut Bufs) {
    let (a, bb, c, k) = (0.95f32, 0.02f32, -0.001f32, b.k as f32);
    let z = b.x.view().into_shape_with_order((b.n / b.k, b.k)).unwrap();
    let m = z.fold_axis(Axis(1), f32::NEG_INFINITY, |m, x| m.max(*x));
    let ez = (&z - &m.insert_axis(Axis(1))).mapv(f32::exp);
    let theta = &ez / &ez.sum_axis(Axis(1)).insert_axis(Axis(1));
    std::hint::black_box(&theta);
    let first = &b.x * a + &((1.0 / k - &b.e) * bb);
    let d1 = &b.e - &b.prev;
    b.x = first + &(d1 * c);
}

fn nd_bufs(case: &Case, elems: usize) -> Bufs {
    let mut g = Lcg(5);
    let k = if case.label.starts_with("DiGress") {
        5
    } else {
        27
    };
    let digress = case.label.starts_with("DiGress");
    let n = elems;
    Bufs {
        n,
        x: Array1::from_shape_fn(n, |_| g.next() - 0.5),
        e: Array1::from_shape_fn(n, |_| g.next() - 0.5),
        prev: Array1::from_shape_fn(n, |_| g.next() - 0.5),
        cls: Array1::from_shape_fn(if digress { n } else { 0 }, |i| (i % k) as u32),
        probs: Array2::from_elem((if digress { n } else { 0 }, k), 1.0 / k as f32),
        k,
    }
}

// ---------------------------------------------------------------------------------------------
// JIT compile time of every shipped spec.
// ---------------------------------------------------------------------------------------------

fn compile_times(reps: usize) {
    println!(
        "\n## JIT compile time (every entry and sampler of each shipped spec, one at a time, median of {reps})\n"
    );
    println!("| spec | programs | total ms | slowest program | ms |");
    println!("|---|---:|---:|---|---:|");
    let mut files: Vec<_> = std::fs::read_dir("specs")
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "diff"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let m = diffc::check::check_source(&text).0.unwrap();
        let (mut total, mut count) = (Duration::ZERO, 0);
        let mut worst = (String::new(), Duration::ZERO);
        for p in &m.processes {
            let mut progs = Vec::new();
            for e in diffc::entries::entries(p) {
                use diffc::entries::EntryKind;
                if !matches!(e.kind, EntryKind::Step | EntryKind::Finalize) {
                    let prog = diffc::ir::lower::lower(p, &e.name).unwrap();
                    progs.push((e.name.clone(), Some(prog), None));
                }
            }
            for s in &p.samplers {
                let sp = diffc::ir::lower::lower_sampler(p, &s.name).unwrap();
                progs.push((s.name.clone(), None, Some(sp)));
            }
            for (name, prog, sp) in progs {
                // Planning included: it is part of what a JIT user waits for.
                let dt = median(
                    (0..reps)
                        .map(|_| {
                            let t = Instant::now();
                            let c = match (&prog, &sp) {
                                (Some(prog), _) => cpu::compile_entry(p, prog, &Default::default()),
                                (_, Some(sp)) => cpu::compile_sampler(p, sp, &Default::default()),
                                _ => unreachable!(),
                            };
                            let dt = t.elapsed();
                            c.unwrap_or_else(|e| panic!("{} {name}: {e}", p.name));
                            dt
                        })
                        .collect(),
                );
                total += dt;
                count += 1;
                if dt > worst.1 {
                    worst = (format!("{}.{name}", p.name), dt);
                }
            }
        }
        println!(
            "| {} | {count} | {:.1} | {} | {:.1} |",
            path.file_name().unwrap().to_string_lossy(),
            total.as_secs_f64() * 1e3,
            worst.0,
            worst.1.as_secs_f64() * 1e3
        );
    }
}

fn main() {
    let a = args();
    // The kernels' parts run on rayon's global pool: `--threads` sizes it as well.
    rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build_global()
        .unwrap();
    let opts = Options {
        threads: a.threads,
        ..Options::default()
    };
    println!(
        "# diffc CPU benchmarks ({} thread(s), median of {} runs)\n",
        a.threads, a.reps
    );
    println!("| step | elements | impl | ms | Melem/s | GB/s | of triad |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    for &n in a.sizes.iter().filter(|_| a.steps) {
        let tri = triad(n.max(1 << 20), a.threads, a.reps);
        println!(
            "| STREAM triad | {} | rust loop | | | {tri:.1} | 1.00 |",
            fmt_n(n)
        );
        for case in cases() {
            if a.only
                .as_ref()
                .is_some_and(|o| !case.label.starts_with(o.as_str()))
            {
                continue;
            }
            let (mut pr, elems) = prepare(&case, n);
            let variant = diffc::plan::variant(&pr.p, &pr.sp.prog, &pr.call.draws, &pr.call.masks);
            let compiled = cpu::compile_sampler(&pr.p, &pr.sp, &variant).unwrap();
            let launches = match cpu::sample_recorded(
                &pr.p,
                &pr.sp,
                &pr.call,
                &mut pr.nets,
                &compiled,
                opts,
            ) {
                Ok((_, launches)) => launches,
                Err(e) => {
                    // A size past the memory limit is a row of its own, not a failed run.
                    println!(
                        "| {} | {} | not run: {e} | | | | |",
                        case.label,
                        fmt_n(elems)
                    );
                    continue;
                }
            };
            let mut bound = bind(&compiled, &launches);
            let row = |what: &str, t: Duration| {
                let s = t.as_secs_f64();
                let gbs = (case.bytes * elems) as f64 / s / 1e9;
                println!(
                    "| {} | {} | {what} | {:.2} | {:.0} | {gbs:.1} | {:.2} |",
                    case.label,
                    fmt_n(elems),
                    s * 1e3,
                    elems as f64 / s / 1e6,
                    gbs / tri
                );
            };
            row(
                &format!("kernel ({} launch(es))", launches.len()),
                time(a.reps, || run_bound(&mut bound, opts)),
            );
            row(
                "cpu step",
                time(a.reps, || {
                    cpu::sample_recorded(&pr.p, &pr.sp, &pr.call, &mut pr.nets, &compiled, opts)
                        .unwrap();
                }),
            );
            let runner = diffc::cpu::lean::StepRunner::new(&pr.p, case.sampler).unwrap();
            let net_outputs: Vec<(String, &Tensor)> =
                pr.p.networks
                    .iter()
                    .enumerate()
                    .flat_map(|(i, net)| {
                        let p = &pr.p;
                        net.outputs.iter().zip(&pr.nets.0[&i]).map(move |(o, t)| {
                            (format!("{}.{}", net.name, p.field(o.field).name), t)
                        })
                    })
                    .collect();
            let bytes: HashMap<String, Vec<u8>> = pr
                .call
                .state
                .iter()
                .filter_map(|(name, t)| match &t.data {
                    Data::Bool(v) => Some((name.clone(), v.iter().map(|b| *b as u8).collect())),
                    _ => None,
                })
                .collect();
            let mut inputs = StepInputs::default();
            for (name, t) in &pr.call.state {
                inputs
                    .state
                    .insert(name.clone(), lent(t, bytes.get(name).map(|v| v.as_slice())));
            }
            for (name, t) in &net_outputs {
                inputs.net.insert(name.clone(), lent(t, None));
            }
            let one = pr.call.single_step.as_ref().unwrap();
            for (name, t) in &one.prev {
                inputs.prev.insert(name.clone(), lent(t, None));
            }
            let mut lean_call = pr.call.clone();
            lean_call.state.clear();
            if let Some(one) = &mut lean_call.single_step {
                one.prev.clear();
            }
            row(
                "lean step",
                time(a.reps, || {
                    let out = runner.step(&pr.p, &lean_call, &inputs).unwrap();
                    // A sampling loop hands the state it replaced back to the runner.
                    for (_, t) in out {
                        if let Data::F32(v) = t.data {
                            runner.recycle(v);
                        }
                    }
                }),
            );
            drop(inputs);
            drop(bound);
            if case.label.starts_with("DDPM") {
                row(
                    "normals alone (no memory traffic)",
                    normals_alone(elems, a.threads, a.reps),
                );
            }
            let mut nb = nd_bufs(&case, elems);
            row("ndarray", time(a.reps, || (case.ndarray)(&mut nb)));
            drop(nb);
            if a.interp {
                row("interpreter", {
                    // One run: the interpreter is the slowest by far.
                    let t = Instant::now();
                    interp::sample(&pr.p, &pr.sp, &pr.call, &mut pr.nets).unwrap();
                    t.elapsed()
                });
            }
        }
    }
    if a.only.is_none() {
        compile_times(a.reps);
    }
}

/// A tensor lent to the step runner (`bytes`: a bool tensor's values as bytes).
fn lent<'a>(t: &'a Tensor, bytes: Option<&'a [u8]>) -> Lent<'a> {
    Lent {
        shape: &t.shape,
        data: match &t.data {
            Data::F32(v) => LentData::F32(v),
            Data::Class(v) => LentData::U32(v),
            Data::Bool(_) => LentData::U8(bytes.unwrap_or(&[])),
        },
    }
}

fn fmt_n(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{}M", n >> 20)
    } else if n >= 1_000_000 {
        format!("{:.2}M", n as f64 / (1 << 20) as f64)
    } else {
        n.to_string()
    }
}
