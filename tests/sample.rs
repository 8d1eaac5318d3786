//! The exact empirical denoiser against Bayes' rule in closed form, node masks and
//! conditioning, and `diffc sample` end to end on the shipped graph specs.

mod common;
use common::spec;
use diffc::interp::{Data, NetCall, Tensor};
use diffc::sample::empirical::{Backend, Empirical, Training};
use diffc::typed::Process;
use std::collections::HashMap;

fn f32s(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
    Tensor {
        shape,
        data: Data::F32(v),
    }
}

fn table(p: &Process, name: &str, t: f64) -> f64 {
    let s = p.schedules.iter().find(|s| s.name == name).unwrap();
    s.table[(t - (p.time.lo - 1.0)) as usize]
        .as_ref()
        .unwrap()
        .as_real()
        .unwrap()
}

/// DDPM: the weights are softmax_i(−‖y − √ᾱ x⁽ⁱ⁾‖²/(2(1 − ᾱ))) and ε̂ = (y − √ᾱ x̂)/√(1 − ᾱ),
/// with ᾱ_t = Π (1 − β_s) for the linear β of MATH §1.1, computed here in f64.
#[test]
fn gaussian_predictions_follow_bayes_rule() {
    let p = spec("ddpm.diff", "ddpm_linear");
    let train = [[1.0f32, -1.0, 0.5], [-0.5, 0.2, 2.0], [0.0, 0.0, 0.0]];
    let states = [[0.4f32, -0.3, 0.9], [-0.2, 0.1, 1.5]];
    for backend in [Backend::Interp, Backend::Cpu] {
        for t in [50.0, 300.0, 700.0] {
            let abar: f64 = (1..=t as usize)
                .map(|s| 1.0 - (1e-4 + (0.02 - 1e-4) * (s - 1) as f64 / 999.0))
                .product();
            let (a, var) = (abar.sqrt(), 1.0 - abar);
            let training = Training {
                count: 3,
                fields: HashMap::from([("x".to_string(), f32s(vec![3, 3], train.concat()))]),
                masks: HashMap::new(),
            };
            let mut den = Empirical::new(&p, training, backend).unwrap();
            let y = f32s(vec![2, 3], states.concat());
            let fields = [(0usize, y.clone())];
            let masks = HashMap::new();
            let inputs = [y.clone(), Tensor::scalar(t as f32)];
            let call = NetCall {
                net: 0,
                inputs: &inputs,
                fields: &fields,
                time: Some(t),
                masks: &masks,
            };
            let out = den.outputs(&call).unwrap();
            let eps = out[0].f32s().unwrap();
            assert_eq!(out[0].shape, vec![2, 3]);
            for (b, yb) in states.iter().enumerate() {
                let logw: Vec<f64> = train
                    .iter()
                    .map(|x| {
                        -(0..3)
                            .map(|e| (yb[e] as f64 - a * x[e] as f64).powi(2))
                            .sum::<f64>()
                            / (2.0 * var)
                    })
                    .collect();
                let m = logw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = logw.iter().map(|l| (l - m).exp()).sum();
                for e in 0..3 {
                    let xhat: f64 = train
                        .iter()
                        .zip(&logw)
                        .map(|(x, l)| (l - m).exp() / z * x[e] as f64)
                        .sum();
                    let want = (yb[e] as f64 - a * xhat) / var.sqrt();
                    let got = eps[b * 3 + e] as f64;
                    assert!(
                        (got - want).abs() < 2e-4 * (1.0 + want.abs()),
                        "{backend:?} t={t} sample {b} element {e}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

/// D3PM (uniform): the class probabilities are Σ_i w_i onehot(x⁽ⁱ⁾) with
/// w_i ∝ Π_e Qbar_t[x⁽ⁱ⁾_e, y_e], Qbar_t = ᾱ I + (1 − ᾱ) 11ᵀ/K, ᾱ = Π (1 − β_s).
#[test]
fn categorical_probabilities_follow_bayes_rule() {
    let p = spec("d3pm.diff", "d3pm_uniform");
    let k = 27usize;
    let train: [[u32; 4]; 3] = [[0, 1, 2, 3], [0, 1, 5, 6], [7, 8, 2, 3]];
    let states: [[u32; 4]; 2] = [[0, 1, 2, 9], [7, 1, 5, 3]];
    for t in [100.0, 400.0] {
        let abar: f64 = (1..=t as usize)
            .map(|s| 1.0 - table(&p, "beta", s as f64))
            .product();
        let q = |x: u32, y: u32| (1.0 - abar) / k as f64 + if x == y { abar } else { 0.0 };
        let training = Training {
            count: 3,
            fields: HashMap::from([(
                "x".to_string(),
                Tensor {
                    shape: vec![3, 4],
                    data: Data::Class(train.concat()),
                },
            )]),
            masks: HashMap::new(),
        };
        let mut den = Empirical::new(&p, training, Backend::Cpu).unwrap();
        let y = Tensor {
            shape: vec![2, 4],
            data: Data::Class(states.concat()),
        };
        let fields = [(0usize, y.clone())];
        let masks = HashMap::new();
        let inputs = [y.clone(), Tensor::scalar(t as f32)];
        let call = NetCall {
            net: 0,
            inputs: &inputs,
            fields: &fields,
            time: Some(t),
            masks: &masks,
        };
        let out = den.outputs(&call).unwrap();
        assert_eq!(out[0].shape, vec![2, 4, k]);
        let probs = out[0].f32s().unwrap();
        for (b, yb) in states.iter().enumerate() {
            let w: Vec<f64> = train
                .iter()
                .map(|x| (0..4).map(|e| q(x[e], yb[e])).product())
                .collect();
            let z: f64 = w.iter().sum();
            for e in 0..4 {
                for c in 0..k {
                    let want: f64 = train
                        .iter()
                        .zip(&w)
                        .filter(|(x, _)| x[e] as usize == c)
                        .map(|(_, wi)| wi / z)
                        .sum();
                    let got = probs[(b * 4 + e) * k + c] as f64;
                    assert!(
                        (got - want).abs() < 1e-5,
                        "t={t} sample {b} element {e} class {c}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

/// EDGE: a sample is compared only with training graphs of its node count and, through the
/// conditioning input d0, of its target degrees; a node count no training graph has is an
/// error.
#[test]
fn masks_and_conditioning_select_training_graphs() {
    let p = spec("edge.diff", "edge");
    let n = 4;
    // Training: a triangle on nodes 0-2 (3 nodes), a path 0-1-2-3 and a star at 0 (4 nodes).
    let graphs: [(usize, &[(usize, usize)]); 3] = [
        (3, &[(0, 1), (1, 2), (0, 2)]),
        (4, &[(0, 1), (1, 2), (2, 3)]),
        (4, &[(0, 1), (0, 2), (0, 3)]),
    ];
    let mut a = vec![false; 3 * n * n];
    let mut mask = vec![false; 3 * n];
    let mut deg = vec![0f32; 3 * n];
    for (g, (m, edges)) in graphs.iter().enumerate() {
        mask[g * n..g * n + m].iter_mut().for_each(|x| *x = true);
        for &(u, v) in edges.iter() {
            a[g * n * n + u * n + v] = true;
            a[g * n * n + v * n + u] = true;
            deg[g * n + u] += 1.0;
            deg[g * n + v] += 1.0;
        }
    }
    let training = Training {
        count: 3,
        fields: HashMap::from([
            (
                "A".to_string(),
                Tensor {
                    shape: vec![3, n, n],
                    data: Data::Bool(a.clone()),
                },
            ),
            ("d0".to_string(), f32s(vec![3, n], deg.clone())),
        ]),
        masks: HashMap::from([(
            "node".to_string(),
            Tensor {
                shape: vec![3, n],
                data: Data::Bool(mask.clone()),
            },
        )]),
    };
    let mut den = Empirical::new(&p, training, Backend::Cpu).unwrap();
    // Three samples: the empty graph on 3 nodes; on 4 nodes with the path's degrees; on 4
    // nodes with degrees no training graph has.
    let state = Tensor {
        shape: vec![3, n, n],
        data: Data::Bool(vec![false; 3 * n * n]),
    };
    let sample_mask = [[true, true, true, false], [true; 4], [true; 4]];
    let d0 = [
        deg[..n].to_vec(),
        deg[n..2 * n].to_vec(),
        vec![3.0, 3.0, 3.0, 3.0],
    ];
    let masks = HashMap::from([(
        "node".to_string(),
        Tensor {
            shape: vec![3, n],
            data: Data::Bool(sample_mask.concat()),
        },
    )]);
    let a_field = p.fields.iter().position(|f| f.name == "A").unwrap();
    let d_field = p.fields.iter().position(|f| f.name == "d0").unwrap();
    let fields = [
        (a_field, state.clone()),
        (d_field, f32s(vec![3, n], d0.concat())),
    ];
    let inputs = [state.clone(), fields[1].1.clone(), Tensor::scalar(10.0)];
    let call = NetCall {
        net: 0,
        inputs: &inputs,
        fields: &fields,
        time: Some(10.0),
        masks: &masks,
    };
    let w = den.weights(&call).unwrap();
    assert_eq!(w[0], vec![(0, 1.0)], "3 nodes: the triangle only");
    assert_eq!(w[1].len(), 1, "the path's degrees: the path only");
    assert_eq!(w[1][0].0, 1);
    let others: Vec<usize> = w[2].iter().map(|(i, _)| *i).collect();
    assert_eq!(
        others,
        vec![1, 2],
        "no graph has these degrees: every 4-node graph"
    );
    let out = den.outputs(&call).unwrap();
    let probs = out[0].f32s().unwrap();
    // The triangle's edges for sample 0.
    assert_eq!(probs[1], 1.0);
    assert!(probs[3] < 1e-20, "node 3 is padding");
    // A 2-node sample has no training graph.
    let bad_masks = HashMap::from([(
        "node".to_string(),
        Tensor {
            shape: vec![3, n],
            data: Data::Bool([[true, true, false, false]; 3].concat()),
        },
    )]);
    let call = NetCall {
        masks: &bad_masks,
        ..call
    };
    let err = den.weights(&call).unwrap_err();
    assert!(err.contains("node mask of sample 0"), "{err}");
}

fn end_to_end(
    file: &str,
    process: &str,
    sampler: &str,
    count: usize,
) -> diffc::sample::score::Scores {
    let p = spec(file, process);
    let data = diffc::data::generate("community-small", 1).unwrap();
    let opts = diffc::sample::Options {
        count,
        seed: 3,
        ..Default::default()
    };
    let prep = diffc::sample::prepare(&p, &data, &opts).unwrap();
    let run = diffc::sample::run(&p, sampler, &prep, &opts, &mut |_| {}).unwrap();
    diffc::sample::score::score(&data, &run.samples, None, 2).unwrap()
}

/// With the exact denoiser, DiGress and EDGE reproduce community-small: at least 95% of the
/// samples are isomorphic to a training graph.
#[test]
fn digress_and_edge_reproduce_community_small() {
    for (file, process, sampler) in [
        ("digress.diff", "digress", "ancestral"),
        ("edge.diff", "edge", "degree_guided"),
    ] {
        let s = end_to_end(file, process, sampler, 24);
        let in_train = s.get("in_train").unwrap();
        assert!(
            in_train >= 0.95,
            "{process}: {in_train} of the samples are training graphs"
        );
        assert!(
            s.get("degree_tv").unwrap() < 0.05,
            "{process}: {:?}",
            s.values
        );
    }
}

/// The NVDiff encoder: the decoder's most likely graph reproduces nearly every pair.
#[test]
fn latents_reconstruct_their_graphs() {
    let Ok(diffc::data::Dataset::Graphs(graphs)) = diffc::data::generate("community-small", 1)
    else {
        panic!("community-small is graphs")
    };
    let n = graphs.iter().map(|g| g.nodes()).max().unwrap();
    let (z, acc) = diffc::sample::encode::encode(&graphs[..20], n, 8);
    assert_eq!(z.len(), 20 * n * 8);
    assert!(acc.pairs > 0.99, "{acc:?}");
    assert!(acc.mean_probability > 0.9, "{acc:?}");
    // Padded nodes are zero.
    let small = graphs[..20].iter().position(|g| g.nodes() < n).unwrap();
    let m = graphs[small].nodes();
    assert!(z[(small * n + m) * 8..(small * n + n) * 8]
        .iter()
        .all(|&x| x == 0.0));
}

/// Every process of every shipped spec samples end to end on its kind of data with the exact
/// denoiser, on the CPU backend and on the GPU backend, at a small size: a few samples, and 4
/// steps wherever the sampler's grid takes a step count. The first dataset the process can lay
/// its fields out from is used (graphs, then sequences, then 2-D points).
#[test]
fn every_shipped_process_samples_end_to_end() {
    use diffc::sample::{self, Options};
    let datasets: Vec<(&str, diffc::data::Dataset)> = ["community-small", "words", "moons"]
        .into_iter()
        .map(|n| (n, diffc::data::generate(n, 1).unwrap()))
        .collect();
    let mut backends = vec![Backend::Cpu];
    if common::gpu::gpu().is_some() {
        backends.push(Backend::Gpu);
    }
    let mut ran = Vec::new();
    for p in common::shipped() {
        let Some(sampler) = p.samplers.first() else {
            continue;
        };
        let mut reasons = Vec::new();
        let found = datasets.iter().find_map(|(name, data)| {
            let opts = Options {
                count: 3,
                seed: 5,
                latent_width: 4,
                ..Options::default()
            };
            match sample::prepare(&p, data, &opts) {
                Ok(prep) => Some((name, data, prep, opts)),
                Err(e) => {
                    reasons.push(format!("{name}: {e}"));
                    None
                }
            }
        });
        let Some((name, data, prep, opts)) = found else {
            panic!("{}: no dataset fits: {reasons:?}", p.name);
        };
        for &backend in &backends {
            let mut opts = Options {
                backend,
                steps: Some(4),
                ..opts.clone()
            };
            let run = match sample::run(&p, &sampler.name, &prep, &opts, &mut |_| {}) {
                // A fixed grid: its own step count.
                Err(e) if e.contains("steps") => {
                    opts.steps = None;
                    sample::run(&p, &sampler.name, &prep, &opts, &mut |_| {})
                }
                other => other,
            }
            .unwrap_or_else(|e| panic!("{} {} on {name} ({backend:?}): {e}", p.name, sampler.name));
            assert!(run.calls > 0, "{}: no network calls", p.name);
            let scores = sample::score::score(data, &run.samples, None, 2)
                .unwrap_or_else(|e| panic!("{} ({backend:?}): scoring: {e}", p.name));
            assert!(
                scores.values.iter().all(|(_, v)| v.is_finite()),
                "{} ({backend:?}): {:?}",
                p.name,
                scores.values
            );
            ran.push(format!(
                "{} {} on {name} ({backend:?}): {} calls",
                p.name, sampler.name, run.calls
            ));
        }
    }
    for r in &ran {
        println!("{r}");
    }
    assert!(ran.len() >= 14, "{}", ran.len());
}

/// Classifier-free guidance end to end (`ddpm.diff`'s `ddpm_cfg` on moons, whose points carry
/// their moon as a label): with the exact denoiser, conditioned on each moon (`--cond y=c`)
/// at w = 0 and w = 2, every one of 200 DDIM samples lies nearest a training point of its own
/// moon (label agreement 1 in our runs; the test asks ≥ 0.98), while the unconditional
/// network alone would put about half on each. Without a given label, each sample takes a
/// training point's label, and the run reproduces the set (energy distance < 0.05).
#[test]
fn classifier_free_guidance_samples_each_label_on_its_own_moon() {
    use diffc::sample::{self, score, Options};
    let p = spec("ddpm.diff", "ddpm_cfg");
    let data = diffc::data::generate("moons", 1).unwrap();
    let diffc::data::Dataset::Points {
        points: train,
        labels: Some(train_labels),
        ..
    } = &data
    else {
        panic!("moons carry labels");
    };
    for w in [0.0, 2.0] {
        for cond in [None, Some(0u32), Some(1)] {
            let opts = Options {
                count: 200,
                seed: 1,
                steps: Some(50),
                params: [("w".to_string(), w)].into(),
                conditions: cond
                    .map(|c| vec![("y".to_string(), vec![c as f64])])
                    .unwrap_or_default(),
                ..Options::default()
            };
            let prep = sample::prepare(&p, &data, &opts).unwrap();
            let run = sample::run(&p, "ddim", &prep, &opts, &mut |_| {}).unwrap();
            let Data::Class(labels) = &run.fields["y"].data else {
                panic!("labels");
            };
            if let Some(c) = cond {
                assert!(labels.iter().all(|l| *l == c));
            } else {
                assert!(labels.contains(&0) && labels.contains(&1));
            }
            let sample::Samples::Points { points, .. } = &run.samples else {
                panic!("points");
            };
            let agree = score::label_agreement(2, points, labels, train, train_labels);
            let scores = score::score(&data, &run.samples, None, 2).unwrap();
            let energy = scores.values.iter().find(|(n, _)| n == "energy").unwrap().1;
            println!("w = {w}, label {cond:?}: label agreement {agree:.3}, energy {energy:.4}");
            assert!(agree >= 0.98, "w = {w}, label {cond:?}: {agree}");
            if cond.is_none() && w == 0.0 {
                assert!(energy < 0.05, "{energy}");
            }
        }
    }
    // The unconditional network alone (w = −1: ε̃ = ε_u) ignores the label.
    let opts = Options {
        count: 200,
        seed: 1,
        steps: Some(50),
        params: [("w".to_string(), -1.0)].into(),
        conditions: vec![("y".to_string(), vec![0.0])],
        ..Options::default()
    };
    let prep = sample::prepare(&p, &data, &opts).unwrap();
    let run = sample::run(&p, "ddim", &prep, &opts, &mut |_| {}).unwrap();
    let sample::Samples::Points { points, .. } = &run.samples else {
        panic!("points");
    };
    let agree = score::label_agreement(2, points, &[0; 200], train, train_labels);
    println!("w = -1 (unconditional), label 0: agreement {agree:.3}");
    assert!((0.3..0.7).contains(&agree), "{agree}");
}
