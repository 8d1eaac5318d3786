//! Every shipped loss in the interpreter: its gradient against central finite differences.

mod common;
use common::shipped;
use diffc::entries::Extent;
use diffc::interp::{run, Call, Data, Tensor};
use diffc::ir::lower::lower;
use diffc::typed::Elem;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn loss_gradients_match_finite_differences() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut checked = 0;
    for p in shipped() {
        {
            for l in &p.losses {
                let name = format!("loss.{}", l.name);
                let prog = lower(&p, &name).unwrap_or_else(|e| panic!("{} {name}: {e}", p.name));
                let n = 3usize;
                let batch = 2usize;
                let mut call = Call {
                    seed: 1,
                    batch,
                    ..Call::default()
                };
                let t = match p.time.kind {
                    diffc::typed::TimeKind::Discrete => ((p.time.lo + p.time.hi) / 2.0).round(),
                    diffc::typed::TimeKind::Continuous => 0.3 * p.time.lo + 0.7 * p.time.hi,
                };
                for port in &prog.inputs {
                    let t = match &port.extent {
                        Extent::Scalar if port.name == p.time.name => Tensor::scalar(t as f32),
                        Extent::Scalar => continue,
                        Extent::Sample => panic!("per-sample input"),
                        Extent::Field(shape) => {
                            let mut dims = vec![batch];
                            dims.extend(shape.dims.iter().map(|_| n));
                            let count: usize = dims.iter().product();
                            let net = port.name.contains('.');
                            match port.elem {
                                Elem::Real
                                    if net && port.name.ends_with(".A") && p.name == "edge" =>
                                {
                                    Tensor {
                                        shape: dims,
                                        data: Data::F32(
                                            (0..count)
                                                .map(|_| rng.random_range(0.2..0.8))
                                                .collect(),
                                        ),
                                    }
                                }
                                Elem::Real => Tensor {
                                    shape: dims,
                                    data: Data::F32(
                                        (0..count).map(|_| rng.random_range(-1.0..1.0)).collect(),
                                    ),
                                },
                                Elem::Bool => Tensor {
                                    shape: dims,
                                    data: Data::Bool(
                                        (0..count).map(|_| rng.random_bool(0.5)).collect(),
                                    ),
                                },
                                Elem::Cat(k) => Tensor {
                                    shape: dims,
                                    data: Data::Class(
                                        (0..count).map(|_| rng.random_range(0..k)).collect(),
                                    ),
                                },
                                Elem::Vec(k) => {
                                    let k = k as usize;
                                    dims.push(k);
                                    let mut v = Vec::with_capacity(count * k);
                                    for _ in 0..count {
                                        let raw: Vec<f32> =
                                            (0..k).map(|_| rng.random_range(0.5..1.5)).collect();
                                        let s: f32 = raw.iter().sum();
                                        v.extend(
                                            raw.iter().map(|x| if net { x / s } else { x - 1.0 }),
                                        );
                                    }
                                    Tensor {
                                        shape: dims,
                                        data: Data::F32(v),
                                    }
                                }
                                Elem::Mat(_) => unreachable!(),
                            }
                        }
                    };
                    call.inputs.insert(port.name.clone(), t);
                }
                let out =
                    run(&p, &prog, &call).unwrap_or_else(|e| panic!("{} {name}: {e}", p.name));
                let value = |c: &Call| -> Vec<f64> {
                    run(&p, &prog, c).unwrap()[0]
                        .f32s()
                        .unwrap()
                        .iter()
                        .map(|x| *x as f64)
                        .collect()
                };
                for (o, g) in prog.outputs.iter().zip(&out).skip(1) {
                    let port = o.name.strip_prefix("d_").unwrap().to_string();
                    let grad = g.f32s().unwrap();
                    let base = call.inputs[&port].clone();
                    let len = base.len();
                    let per = len / batch;
                    for j in [0, len / 2, len - 1] {
                        let h = 1e-2f32;
                        let mut plus = call.clone();
                        let mut minus = call.clone();
                        if let Data::F32(v) = &mut plus.inputs.get_mut(&port).unwrap().data {
                            v[j] += h;
                        }
                        if let Data::F32(v) = &mut minus.inputs.get_mut(&port).unwrap().data {
                            v[j] -= h;
                        }
                        let b = j / per;
                        let fd = (value(&plus)[b] - value(&minus)[b]) / (2.0 * h as f64);
                        let an = grad[j] as f64;
                        assert!(
                            (fd - an).abs() <= 2e-2 * fd.abs().max(an.abs()) + 1e-4,
                            "{} {name}: d/d {port}[{j}] is {an} by the gradient, {fd} by finite differences",
                            p.name
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    println!("{checked} loss gradients checked against finite differences");
    assert!(checked >= 14, "{checked} gradients checked");
}
