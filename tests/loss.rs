//! Every shipped loss in the interpreter: its gradient against central finite differences, with
//! one time for the whole batch and with one time per sample.

mod common;
use common::shipped;
use diffc::entries::Extent;
use diffc::interp::{run, Call, Data, Tensor};
use diffc::ir::lower::lower;
use diffc::ir::Program;
use diffc::typed::{Elem, Process, TimeKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type RunFn<'a> = &'a dyn Fn(&Process, &Program, &Call) -> Result<Vec<Tensor>, String>;

/// Nodes (or elements) per dimension of every field.
const N: usize = 3;

/// The time at fraction `f` of the process's time (rounded to a whole time in discrete time).
/// At a natural data end (`common::natural_data_end`) the time at fraction 0 is 1% inside.
fn time_at(p: &Process, f: f64) -> f32 {
    let f = if f == 0.0 && common::natural_data_end(p) && p.time.data_at == p.time.lo {
        0.01
    } else {
        f
    };
    let v = p.time.lo + f * (p.time.hi - p.time.lo);
    match p.time.kind {
        TimeKind::Discrete => v.round() as f32,
        TimeKind::Continuous => v as f32,
    }
}

/// A call of loss entry `prog` over `batch` samples at time `t` (a scalar or `[batch]`), every
/// field and network output drawn from `rng`: reals in [-1, 1], network probability vectors
/// normalised, other `vec<K>` fields centred (EDGE's rate `A` in [0.2, 0.8]).
fn loss_call(p: &Process, prog: &Program, batch: usize, t: Tensor, rng: &mut StdRng) -> Call {
    let mut call = Call {
        seed: 1,
        batch,
        ..Call::default()
    };
    for port in &prog.inputs {
        let x = match &port.extent {
            Extent::Scalar if port.name == p.time.name => t.clone(),
            Extent::Scalar => continue,
            Extent::Sample => panic!("per-sample input"),
            Extent::Field(shape) => {
                let mut dims = vec![batch];
                dims.extend(shape.dims.iter().map(|_| N));
                let count: usize = dims.iter().product();
                let net = port.name.contains('.');
                let mut x = match port.elem {
                    Elem::Real
                        if net && port.name.ends_with(".A") && p.name.starts_with("edge") =>
                    {
                        Tensor {
                            shape: dims,
                            data: Data::F32(
                                (0..count).map(|_| rng.random_range(0.2..0.8)).collect(),
                            ),
                        }
                    }
                    Elem::Real => Tensor {
                        shape: dims,
                        data: Data::F32((0..count).map(|_| rng.random_range(-1.0..1.0)).collect()),
                    },
                    Elem::Bool => Tensor {
                        shape: dims,
                        data: Data::Bool((0..count).map(|_| rng.random_bool(0.5)).collect()),
                    },
                    Elem::Cat(k) => Tensor {
                        shape: dims,
                        data: Data::Class((0..count).map(|_| rng.random_range(0..k)).collect()),
                    },
                    Elem::Vec(k) => {
                        let k = k as usize;
                        dims.push(k);
                        let mut v = Vec::with_capacity(count * k);
                        for _ in 0..count {
                            let raw: Vec<f32> =
                                (0..k).map(|_| rng.random_range(0.5..1.5)).collect();
                            let s: f32 = raw.iter().sum();
                            v.extend(raw.iter().map(|x| if net { x / s } else { x - 1.0 }));
                        }
                        Tensor {
                            shape: dims,
                            data: Data::F32(v),
                        }
                    }
                    Elem::Mat(_) => unreachable!(),
                };
                if shape.sym && !net {
                    diffc::interp::symmetrize(&mut x);
                }
                x
            }
        };
        call.inputs.insert(port.name.clone(), x);
    }
    call
}

/// The per-sample loss of `call` on the interpreter.
fn losses(p: &Process, prog: &Program, call: &Call) -> Vec<f64> {
    run(p, prog, call).unwrap()[0]
        .f32s()
        .unwrap()
        .iter()
        .map(|x| *x as f64)
        .collect()
}

/// Checks each gradient output that `grad_run` gives for `call` (`d_NET.FIELD`, the gradient of
/// each sample's loss with respect to network output `NET.FIELD`) at the elements `at(len)`
/// against central finite differences of the interpreter's per-sample loss of the same call,
/// within 2e-2 relative plus 1e-4 absolute. With `isolated`, moving an element of sample `b`
/// must also leave every other sample's loss unchanged, bit for bit. Returns how many outputs
/// and elements were checked, or the first mismatch.
fn check_gradients(
    p: &Process,
    prog: &Program,
    call: &Call,
    grad_run: RunFn<'_>,
    at: &dyn Fn(usize) -> Vec<usize>,
    isolated: bool,
) -> Result<(usize, usize), String> {
    let name = &prog.name;
    let out = grad_run(p, prog, call).map_err(|e| format!("{} {name}: {e}", p.name))?;
    let base = losses(p, prog, call);
    let (mut checked, mut elements) = (0, 0);
    for (o, g) in prog.outputs.iter().zip(&out).skip(1) {
        let port = o.name.strip_prefix("d_").unwrap().to_string();
        let grad = g.f32s().unwrap();
        let len = call.inputs[&port].len();
        assert_eq!(
            grad.len(),
            len,
            "{} {name}: {} has one value per element",
            p.name,
            o.name
        );
        let per = len / call.batch;
        // A network's probabilities (`vec<K>`, which losses take the log of) are moved by a
        // tenth of their value at most, so that the step stays inside the simplex's interior
        // and the difference quotient of a log at 1/K stays within the tolerance.
        let probs = prog
            .inputs
            .iter()
            .any(|i| i.name == port && matches!(i.elem, Elem::Vec(_)));
        let values = call.inputs[&port].f32s().unwrap();
        for j in at(len) {
            let h = if probs {
                1e-2f32.min(values[j].abs() / 10.0)
            } else {
                1e-2f32
            };
            let mut plus = call.clone();
            let mut minus = call.clone();
            if let Data::F32(v) = &mut plus.inputs.get_mut(&port).unwrap().data {
                v[j] += h;
            }
            if let Data::F32(v) = &mut minus.inputs.get_mut(&port).unwrap().data {
                v[j] -= h;
            }
            let (lp, lm) = (losses(p, prog, &plus), losses(p, prog, &minus));
            elements += 1;
            let b = j / per;
            let fd = (lp[b] - lm[b]) / (2.0 * h as f64);
            let an = grad[j] as f64;
            let within = (fd - an).abs() <= 2e-2 * fd.abs().max(an.abs()) + 1e-4;
            if !within || !fd.is_finite() || !an.is_finite() {
                return Err(format!(
                    "{} {name}: d/d {port}[{j}] (sample {b}) is {an} by the gradient, {fd} by finite differences",
                    p.name
                ));
            }
            if isolated {
                for c in (0..call.batch).filter(|c| *c != b) {
                    if lp[c].to_bits() != base[c].to_bits() || lm[c].to_bits() != base[c].to_bits()
                    {
                        return Err(format!(
                            "{} {name}: moving {port}[{j}] of sample {b} changes sample {c}'s loss",
                            p.name
                        ));
                    }
                }
            }
        }
        checked += 1;
    }
    Ok((checked, elements))
}

#[test]
fn loss_gradients_match_finite_differences() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut checked = 0;
    for p in shipped() {
        for l in &p.losses {
            let name = format!("loss.{}", l.name);
            let prog = lower(&p, &name).unwrap_or_else(|e| panic!("{} {name}: {e}", p.name));
            let t = match p.time.kind {
                TimeKind::Discrete => time_at(&p, 0.5),
                TimeKind::Continuous => time_at(&p, 0.7),
            };
            let call = loss_call(&p, &prog, 2, Tensor::scalar(t), &mut rng);
            checked += check_gradients(
                &p,
                &prog,
                &call,
                &|p, prog, call| run(p, prog, call),
                &|len| vec![0, len / 2, len - 1],
                false,
            )
            .unwrap_or_else(|e| panic!("{e}"))
            .0;
        }
    }
    println!("{checked} loss gradients checked against finite differences");
    assert!(checked >= 14, "{checked} gradients checked");
}

/// Fractions of the process's time for the samples of a per-sample call: both ends and two
/// inner times, out of order, so that every sample has a time of its own and no two
/// neighbours share one.
const SPREAD: [f64; 4] = [1.0, 0.3, 0.0, 0.6];

/// Replaces the noised data and noise of a loss call by what the process's `forward` entry
/// gives for its clean data at its times (one per sample), as in a training step, where the
/// loss's inputs hold every field `forward` reads. Independent draws are far from a training
/// batch at the smallest noise levels: NCSN's loss at σ = 0.01 with an unrelated `x_t` is
/// about 10⁴, where an f32 loss cannot resolve a difference quotient.
fn from_forward(p: &Process, call: &mut Call) {
    let fwd = lower(p, "forward").unwrap_or_else(|e| panic!("{} forward: {e}", p.name));
    let mut f = Call {
        seed: call.seed,
        batch: call.batch,
        ..Call::default()
    };
    for port in &fwd.inputs {
        if port.name == "seed" {
            continue;
        }
        let Some(x) = call.inputs.get(&port.name) else {
            return;
        };
        f.inputs.insert(port.name.clone(), x.clone());
    }
    let out = run(p, &fwd, &f).unwrap_or_else(|e| panic!("{} forward: {e}", p.name));
    for (port, x) in fwd.outputs.iter().zip(out) {
        if let Some(slot) = call.inputs.get_mut(&port.name) {
            *slot = x;
        }
    }
}

/// One call per loss of every shipped process with a distinct time per sample, as
/// `(process, program, call)`.
fn per_sample_calls() -> Vec<(Process, Program, Call)> {
    let mut rng = StdRng::seed_from_u64(11);
    let mut out = Vec::new();
    for p in shipped() {
        let times: Vec<f32> = SPREAD.iter().map(|f| time_at(&p, *f)).collect();
        for (i, a) in times.iter().enumerate() {
            assert!(
                !times[..i].contains(a),
                "{}: the per-sample times {times:?} repeat",
                p.name
            );
        }
        for l in &p.losses {
            let name = format!("loss.{}", l.name);
            let prog = lower(&p, &name).unwrap_or_else(|e| panic!("{} {name}: {e}", p.name));
            let t = Tensor {
                shape: vec![times.len()],
                data: Data::F32(times.clone()),
            };
            let mut call = loss_call(&p, &prog, times.len(), t, &mut rng);
            from_forward(&p, &mut call);
            out.push((p.clone(), prog, call));
        }
    }
    out
}

/// Every element of every gradient of a call with one time per sample against finite
/// differences of that call's own per-sample loss.
#[test]
fn per_sample_time_loss_gradients_match_finite_differences() {
    let mut checked = 0;
    let mut elements = 0;
    for (p, prog, call) in per_sample_calls() {
        let (c, e) = check_gradients(
            &p,
            &prog,
            &call,
            &|p, prog, call| run(p, prog, call),
            &|len| (0..len).collect(),
            true,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        checked += c;
        elements += e;
    }
    println!(
        "{checked} loss gradients with a time per sample checked against finite differences ({elements} elements)"
    );
    assert!(checked >= 14, "{checked} gradients checked");
}

/// The check above fails for gradients computed at another sample's time: a runner whose loss
/// is right but whose gradients come from the call with the times rotated by one sample (or
/// all at the first sample's time) is caught on every loss whose gradient depends on the time.
#[test]
fn per_sample_gradient_check_catches_another_samples_time() {
    type Mutant = fn(&[f32]) -> Vec<f32>;
    let mutants: [(&str, Mutant); 2] = [
        ("rotated", |t| {
            (0..t.len()).map(|b| t[(b + 1) % t.len()]).collect()
        }),
        ("first", |t| vec![t[0]; t.len()]),
    ];
    for (what, moved) in mutants {
        let wrong = |p: &Process, prog: &Program, call: &Call| {
            let mut out = run(p, prog, call)?;
            let mut other = call.clone();
            let t = other.inputs.get_mut(&p.time.name).unwrap();
            let moved = moved(t.f32s().unwrap());
            t.data = Data::F32(moved);
            let grads = run(p, prog, &other)?;
            out.splice(1.., grads.into_iter().skip(1));
            Ok(out)
        };
        let mut caught = Vec::new();
        for (p, prog, call) in per_sample_calls() {
            let all = |len: usize| (0..len).collect();
            let honest = check_gradients(
                &p,
                &prog,
                &call,
                &|p, prog, call| run(p, prog, call),
                &all,
                true,
            );
            if honest.is_ok() && check_gradients(&p, &prog, &call, &wrong, &all, true).is_err() {
                caught.push(format!("{} {}", p.name, prog.name));
            }
        }
        println!(
            "gradients at the {what} times caught for {}: {caught:?}",
            caught.len()
        );
        assert!(caught.len() >= 7, "{what}: only {caught:?}");
    }
}
