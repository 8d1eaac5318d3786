//! Running a process end to end on a dataset (`../shared/DESIGN.md` §5): the training set as
//! the process's data fields, a sampler run with the exact empirical denoiser (or any other
//! [`Denoiser`]), and the samples turned back into graphs, points or sequences.
//!
//! How a dataset fills a process's fields:
//! - Graphs, for a process with a symmetric `[n, n]` field: `n` is the largest graph; the edge
//!   field holds class 1 (`cat`), `true` (`bool`) or 1.0 (`real`) on edges; a `cat` node field
//!   holds class 0 (the graphs have no node types); a `real` node field that the process does
//!   not diffuse (EDGE's target degrees) holds the node degrees. The node mask marks the
//!   graph's nodes. Each sample takes the node count (and conditioning fields) of a training
//!   graph drawn uniformly with the run's seed.
//! - Graphs, for a latent process (a diffused `real[n, d]` field and an undiffused symmetric
//!   field, as NVDiff): the latents of each training graph come from [`encode`].
//! - Points, for a process with a diffused `real[d]` field: `d` is the points' dimension.
//! - Sequences, for a process with a `cat<K>[d]` data field: `d` is the length, and `K` must
//!   hold the dataset's symbols.

pub mod empirical;
pub mod encode;
pub mod score;
pub mod sweep;

use crate::data::Dataset;
use crate::graph::Graph;
use crate::interp::{Data, Denoiser, NetCall, SampleCall, Tensor};
use crate::typed::{Elem, KernelKind, Process, Version};
use empirical::{Backend, Empirical, Training};
use std::collections::HashMap;

/// How the dataset sits in the process's fields.
#[derive(Clone, Debug)]
pub enum Layout {
    /// Graphs in the symmetric field `edges`, with node dimension `dim`.
    Graphs {
        edges: String,
        dim: String,
        nodes: usize,
        mask: Option<String>,
        /// Node counts of the training graphs.
        sizes: Vec<usize>,
        /// Conditioning fields and their training values, `[count, n]`.
        conditioning: Vec<String>,
        /// The latent field and its width, for a latent process.
        latent: Option<(String, String, usize)>,
    },
    /// Points in the field `field` of dimension `dim`; `label`: the `cat<C>` field, read by a
    /// network and diffused by no marginal, that holds each point's class label.
    Points {
        field: String,
        dim: String,
        width: usize,
        label: Option<String>,
    },
    /// Sequences in the field `field` of length dimension `dim`.
    Sequences {
        field: String,
        dim: String,
        len: usize,
    },
}

/// Samples, in the dataset's own terms.
#[derive(Clone, Debug)]
pub enum Samples {
    Graphs(Vec<Graph>),
    Points { dim: usize, points: Vec<f32> },
    Sequences(Vec<Vec<u32>>),
}

/// A run's settings.
#[derive(Clone, Debug)]
pub struct Options {
    pub count: usize,
    pub seed: u64,
    /// The sampler's `steps` parameter.
    pub steps: Option<usize>,
    /// Other sampler parameters.
    pub params: HashMap<String, f64>,
    pub backend: Backend,
    /// The width of a latent process's node vectors.
    pub latent_width: usize,
    /// Conditioning fields given for every sample (`--cond y=1`): per-sample values, or one
    /// value for every element; the others come from the training items.
    pub conditions: Vec<(String, Vec<f64>)>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            count: 64,
            seed: 0,
            steps: None,
            params: HashMap::new(),
            backend: Backend::Cpu,
            latent_width: 8,
            conditions: Vec::new(),
        }
    }
}

/// The training set of a process, and how it was laid out.
pub struct Prepared {
    pub training: Training,
    pub layout: Layout,
    pub sizes: HashMap<String, usize>,
    /// For a latent process: how well the decoder reconstructs the training graphs.
    pub encoding: Option<encode::Accuracy>,
}

fn diffused(p: &Process, field: usize) -> bool {
    p.forwards
        .iter()
        .any(|k| k.kind == KernelKind::Marginal && k.target.field.index() == field)
}

fn data_field(p: &Process, field: usize) -> bool {
    p.forwards.iter().any(|k| {
        k.kind == KernelKind::Marginal
            && k.given
                .iter()
                .any(|g| g.field.index() == field && g.version == Version::Data)
    })
}

/// Lay a dataset out as the process's training set.
pub fn prepare(p: &Process, data: &Dataset, opts: &Options) -> Result<Prepared, String> {
    let dim_name = |d: crate::typed::DimId| p.dims[d.index()].name.clone();
    match data {
        Dataset::Graphs(graphs) => {
            let sym = p.fields.iter().position(|f| f.shape.sym).ok_or_else(|| {
                format!(
                    "process `{}` has no symmetric [n, n] field for graphs",
                    p.name
                )
            })?;
            let ef = &p.fields[sym];
            let ndim = ef.shape.dims[0];
            let n = graphs.iter().map(Graph::nodes).max().unwrap_or(0);
            let count = graphs.len();
            let mask = p
                .masks
                .iter()
                .find(|m| m.dim == ndim)
                .map(|m| m.name.clone());
            if mask.is_none() && graphs.iter().any(|g| g.nodes() != n) {
                return Err(format!(
                    "process `{}` has no node mask, and the graphs differ in size",
                    p.name
                ));
            }
            let sizes_of: Vec<usize> = graphs.iter().map(Graph::nodes).collect();
            let mut fields = HashMap::new();
            let mut conditioning = Vec::new();
            let mut latent = None;
            let mut encoding = None;
            let mut sizes = HashMap::from([(dim_name(ndim), n)]);
            for (fi, f) in p.fields.iter().enumerate() {
                let dims = &f.shape.dims;
                let is_data = data_field(p, fi);
                if f.shape.sym {
                    if fi != sym || !is_data {
                        continue;
                    }
                    let mut t = edge_tensor(graphs, n, f.elem)?;
                    t.shape = vec![count, n, n];
                    fields.insert(f.name.clone(), t);
                } else if dims.len() == 1 && dims[0] == ndim {
                    match f.elem {
                        Elem::Cat(_) if is_data => {
                            fields.insert(
                                f.name.clone(),
                                Tensor {
                                    shape: vec![count, n],
                                    data: Data::Class(vec![0; count * n]),
                                },
                            );
                        }
                        Elem::Real if !diffused(p, fi) => {
                            let mut v = vec![0f32; count * n];
                            for (i, g) in graphs.iter().enumerate() {
                                for u in 0..g.nodes() {
                                    v[i * n + u] = g.degree(u) as f32;
                                }
                            }
                            fields.insert(
                                f.name.clone(),
                                Tensor {
                                    shape: vec![count, n],
                                    data: Data::F32(v),
                                },
                            );
                            conditioning.push(f.name.clone());
                        }
                        _ => {}
                    }
                } else if dims.len() == 2 && dims[0] == ndim && f.elem == Elem::Real && is_data {
                    let wdim = dim_name(dims[1]);
                    let width = opts.latent_width;
                    let (z, acc) = encode::encode(graphs, n, width);
                    fields.insert(
                        f.name.clone(),
                        Tensor {
                            shape: vec![count, n, width],
                            data: Data::F32(z),
                        },
                    );
                    sizes.insert(wdim.clone(), width);
                    latent = Some((f.name.clone(), wdim, width));
                    encoding = Some(acc);
                }
            }
            let mut masks = HashMap::new();
            if let Some(m) = &mask {
                let mut v = vec![false; count * n];
                for (i, g) in graphs.iter().enumerate() {
                    v[i * n..i * n + g.nodes()]
                        .iter_mut()
                        .for_each(|x| *x = true);
                }
                masks.insert(
                    m.clone(),
                    Tensor {
                        shape: vec![count, n],
                        data: Data::Bool(v),
                    },
                );
            }
            Ok(Prepared {
                training: Training {
                    count,
                    fields,
                    masks,
                },
                layout: Layout::Graphs {
                    edges: ef.name.clone(),
                    dim: dim_name(ndim),
                    nodes: n,
                    mask,
                    sizes: sizes_of,
                    conditioning,
                    latent,
                },
                sizes,
                encoding,
            })
        }
        Dataset::Points {
            dim,
            points,
            labels,
        } => {
            let f = p
                .fields
                .iter()
                .enumerate()
                .find(|(i, f)| f.elem == Elem::Real && f.shape.dims.len() == 1 && data_field(p, *i))
                .map(|(_, f)| f)
                .ok_or_else(|| {
                    format!("process `{}` has no real [d] data field for points", p.name)
                })?;
            let d = dim_name(f.shape.dims[0]);
            // A class label per sample: a `cat<C>` field with no dimensions that no marginal
            // diffuses (a network's conditioning input), filled with the points' labels.
            let mut label = None;
            let mut label_values = None;
            for (i, g) in p.fields.iter().enumerate() {
                if diffused(p, i) || !g.shape.dims.is_empty() {
                    continue;
                }
                let Elem::Cat(k) = g.elem else {
                    return Err(format!(
                        "process `{}` reads `{}` ({}), which points cannot fill: a field that no marginal diffuses is filled from points only as a cat<C> label",
                        p.name,
                        g.name,
                        g.elem.describe()
                    ));
                };
                let Some(ls) = labels else {
                    return Err(format!(
                        "process `{}` reads the class label `{}`, and these points have none (the labelled sets: moons, gaussians8)",
                        p.name, g.name
                    ));
                };
                if let Some(c) = ls.iter().find(|&&c| c >= k) {
                    return Err(format!(
                        "`{}` has {k} classes, and the points have label {c}",
                        g.name
                    ));
                }
                if label.is_some() {
                    return Err(format!(
                        "process `{}` has two label fields for points; one is filled",
                        p.name
                    ));
                }
                label = Some(g.name.clone());
                label_values = Some(ls.clone());
            }
            let layout = Layout::Points {
                field: f.name.clone(),
                dim: d.clone(),
                width: *dim,
                label: label.clone(),
            };
            let mut prep = one_field(&f.name, *dim, Data::F32(points.clone()), layout, d);
            if let (Some(name), Some(v)) = (label, label_values) {
                prep.training.fields.insert(
                    name,
                    Tensor {
                        shape: vec![v.len()],
                        data: Data::Class(v),
                    },
                );
            }
            Ok(prep)
        }
        Dataset::Sequences { classes, len, seqs } => {
            let f = p
                .fields
                .iter()
                .enumerate()
                .find(|(i, f)| {
                    matches!(f.elem, Elem::Cat(_)) && f.shape.dims.len() == 1 && data_field(p, *i)
                })
                .map(|(_, f)| f)
                .ok_or_else(|| {
                    format!(
                        "process `{}` has no cat<K>[d] data field for sequences",
                        p.name
                    )
                })?;
            let Elem::Cat(k) = f.elem else { unreachable!() };
            if (k as usize) < *classes {
                return Err(format!(
                    "`{}` has {k} classes and the sequences {classes} symbols",
                    f.name
                ));
            }
            let d = dim_name(f.shape.dims[0]);
            let layout = Layout::Sequences {
                field: f.name.clone(),
                dim: d.clone(),
                len: *len,
            };
            Ok(one_field(
                &f.name,
                *len,
                Data::Class(seqs.concat()),
                layout,
                d,
            ))
        }
    }
}

/// A training set of one field of `width` elements per item, whose dimension `dim` is `width`.
fn one_field(field: &str, width: usize, data: Data, layout: Layout, dim: String) -> Prepared {
    let values = Tensor {
        shape: vec![0, width],
        data,
    };
    let count = values.len() / width.max(1);
    let values = Tensor {
        shape: vec![count, width],
        ..values
    };
    Prepared {
        training: Training {
            count,
            fields: HashMap::from([(field.to_string(), values)]),
            masks: HashMap::new(),
        },
        layout,
        sizes: HashMap::from([(dim, width)]),
        encoding: None,
    }
}

fn edge_tensor(graphs: &[Graph], n: usize, elem: Elem) -> Result<Tensor, String> {
    let count = graphs.len();
    let mut on = vec![false; count * n * n];
    for (i, g) in graphs.iter().enumerate() {
        for (u, v) in g.edges() {
            on[i * n * n + u * n + v] = true;
            on[i * n * n + v * n + u] = true;
        }
    }
    let data = match elem {
        Elem::Bool => Data::Bool(on),
        Elem::Cat(k) if k >= 2 => Data::Class(on.iter().map(|&x| x as u32).collect()),
        Elem::Real => Data::F32(on.iter().map(|&x| x as u8 as f32).collect()),
        _ => return Err("the edge field must be bool, real or cat<K> with K ≥ 2".into()),
    };
    Ok(Tensor {
        shape: vec![count, n, n],
        data,
    })
}

/// A run's result.
pub struct Run {
    pub samples: Samples,
    /// Every field the sampler set, by name.
    pub fields: HashMap<String, Tensor>,
    /// Network calls made.
    pub calls: usize,
    /// The denoiser's statistics, when it was the empirical one.
    pub stats: Option<empirical::Stats>,
}

/// Counts network calls and reports them.
struct Counting<'a> {
    inner: &'a mut dyn Denoiser,
    calls: usize,
    progress: &'a mut dyn FnMut(usize),
}

impl Denoiser for Counting<'_> {
    fn denoise(&mut self, p: &Process, call: &NetCall) -> Result<Vec<Tensor>, String> {
        let out = self.inner.denoise(p, call)?;
        self.calls += 1;
        (self.progress)(self.calls);
        Ok(out)
    }
}

/// The number of steps a sampler will take with these settings.
pub fn step_count(p: &Process, sampler: &str, opts: &Options) -> Result<usize, String> {
    let s = p
        .samplers
        .iter()
        .find(|s| s.name == sampler)
        .ok_or_else(|| format!("no sampler `{sampler}`"))?;
    match opts.steps {
        Some(n) => Ok(n),
        None => Ok(s.default_grid.len().saturating_sub(1)),
    }
}

/// Run `sampler` of `p` with the empirical denoiser of `prep`'s training set.
pub fn run(
    p: &Process,
    sampler: &str,
    prep: &Prepared,
    opts: &Options,
    progress: &mut dyn FnMut(usize),
) -> Result<Run, String> {
    let mut den = Empirical::new(p, prep.training.clone(), opts.backend)?;
    let mut r = run_with(p, sampler, prep, opts, &mut den, progress)?;
    r.stats = Some(den.stats.clone());
    Ok(r)
}

/// Run `sampler` of `p` with any denoiser.
pub fn run_with(
    p: &Process,
    sampler: &str,
    prep: &Prepared,
    opts: &Options,
    denoiser: &mut dyn Denoiser,
    progress: &mut dyn FnMut(usize),
) -> Result<Run, String> {
    let sp = crate::ir::lower::lower_sampler(p, sampler)?;
    let s = p
        .samplers
        .iter()
        .find(|s| s.name == sampler)
        .ok_or_else(|| format!("no sampler `{sampler}`"))?;
    let mut params = opts.params.clone();
    if let Some(n) = opts.steps {
        if !s.params.iter().any(|x| x.name == "steps" && x.overridable) {
            return Err(format!(
                "sampler `{sampler}` has no `steps` parameter (its grid is fixed: {} steps)",
                s.default_grid.len().saturating_sub(1)
            ));
        }
        params.insert("steps".into(), n as f64);
    }
    // Every sample is one call's worth of values: refuse a count that would not fit before
    // allocating its masks and conditioning.
    crate::interp::check_call_size(p, &sp.prog, opts.count, &prep.sizes)?;
    let b = opts.count;
    let mut call = SampleCall {
        seed: opts.seed,
        batch: b,
        sizes: prep.sizes.clone(),
        params,
        ..SampleCall::default()
    };
    if let Layout::Graphs {
        mask,
        sizes,
        conditioning,
        nodes,
        ..
    } = &prep.layout
    {
        // Each sample takes the node count (and conditioning) of a training graph.
        let n = *nodes;
        let picks = pick_items(opts.seed, b, sizes.len());
        if let Some(m) = mask {
            let mut v = vec![false; b * n];
            for (k, &i) in picks.iter().enumerate() {
                v[k * n..k * n + sizes[i]]
                    .iter_mut()
                    .for_each(|x| *x = true);
            }
            call.masks.insert(
                m.clone(),
                Tensor {
                    shape: vec![b, n],
                    data: Data::Bool(v),
                },
            );
        }
        for c in conditioning {
            let t = &prep.training.fields[c];
            let x = t.f32s().ok_or("internal error: conditioning values")?;
            let mut v = Vec::with_capacity(b * n);
            for &i in &picks {
                v.extend_from_slice(&x[i * n..(i + 1) * n]);
            }
            call.state.insert(
                c.clone(),
                Tensor {
                    shape: vec![b, n],
                    data: Data::F32(v),
                },
            );
        }
    }
    if let Layout::Points {
        label: Some(name), ..
    } = &prep.layout
    {
        // Each sample takes the label of a training point, unless one is given for all.
        let Data::Class(train) = &prep.training.fields[name].data else {
            return Err("internal error: labels".into());
        };
        let v: Vec<u32> = pick_items(opts.seed, b, train.len())
            .into_iter()
            .map(|i| train[i])
            .collect();
        call.state.insert(
            name.clone(),
            Tensor {
                shape: vec![b],
                data: Data::Class(v),
            },
        );
    }
    for (name, values) in &opts.conditions {
        let t = condition(p, prep, name, values, b)?;
        call.state.insert(name.clone(), t);
    }
    let mut counting = Counting {
        inner: denoiser,
        calls: 0,
        progress,
    };
    let fields = match opts.backend {
        Backend::Interp => crate::interp::sample(p, &sp, &call, &mut counting)?,
        Backend::Cpu => crate::cpu::sample(p, &sp, &call, &mut counting)?,
        Backend::Gpu => crate::gpu::sample(p, &sp, &call, &mut counting)?,
    };
    let calls = counting.calls;
    let samples = samples_of(prep, &fields, &call)?;
    Ok(Run {
        samples,
        fields,
        calls,
        stats: None,
    })
}

/// The values of a conditioning field given for every sample (`Options::conditions`).
fn condition(
    p: &Process,
    prep: &Prepared,
    name: &str,
    values: &[f64],
    b: usize,
) -> Result<Tensor, String> {
    let Some(fi) = p.fields.iter().position(|f| f.name == name) else {
        let names: Vec<&str> = p.fields.iter().map(|f| f.name.as_str()).collect();
        return Err(format!(
            "`--cond {name}`: process `{}` has no field `{name}` (fields: {})",
            p.name,
            names.join(", ")
        ));
    };
    let f = &p.fields[fi];
    if diffused(p, fi) {
        return Err(format!(
            "`--cond {name}`: `{name}` is diffused, so the sampler draws it; a run is conditioned on fields that no marginal diffuses"
        ));
    }
    let mut shape = vec![b];
    for d in &f.shape.dims {
        let dn = &p.dims[d.index()].name;
        shape.push(*prep.sizes.get(dn).ok_or_else(|| {
            format!("`--cond {name}`: the size of `{dn}` is not known from the data")
        })?);
    }
    if let Elem::Vec(k) = f.elem {
        shape.push(k as usize);
    }
    let per: usize = shape[1..].iter().product();
    if values.len() != 1 && values.len() != per {
        return Err(format!(
            "`--cond {name}`: `{name}` holds {per} values per sample ({}): give {per}, or one for every element, not {}",
            f.elem.describe(),
            values.len()
        ));
    }
    let at = |i: usize| values[if values.len() == 1 { 0 } else { i % per }];
    let n = b * per;
    let data = match f.elem {
        Elem::Cat(k) => {
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                let x = at(i);
                if !(x.fract() == 0.0 && x >= 0.0 && x < f64::from(k)) {
                    return Err(format!(
                        "`--cond {name}`: `{name}` is cat<{k}>: a class is a whole number from 0 to {}, not {x}",
                        k - 1
                    ));
                }
                v.push(x as u32);
            }
            // The exact denoiser compares a sample with the training items of its own label.
            if let Some(Tensor {
                data: Data::Class(train),
                ..
            }) = prep.training.fields.get(name)
            {
                if let Some(c) = v.iter().find(|c| !train.contains(c)) {
                    let mut seen: Vec<u32> = train.clone();
                    seen.sort_unstable();
                    seen.dedup();
                    let seen: Vec<String> = seen.iter().map(u32::to_string).collect();
                    return Err(format!(
                        "`--cond {name}={c}`: no training item has `{name}` = {c} (the data's values: {})",
                        seen.join(", ")
                    ));
                }
            }
            Data::Class(v)
        }
        Elem::Bool => Data::Bool(
            (0..n)
                .map(|i| match at(i) {
                    0.0 => Ok(false),
                    1.0 => Ok(true),
                    x => Err(format!(
                        "`--cond {name}`: `{name}` is bool: give 0 or 1, not {x}"
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => {
            if let Some(x) = values.iter().find(|x| !x.is_finite()) {
                return Err(format!("`--cond {name}`: {x} is not a finite number"));
            }
            Data::F32((0..n).map(|i| at(i) as f32).collect())
        }
    };
    Ok(Tensor { shape, data })
}

/// The samples of a run, in the dataset's terms.
fn samples_of(
    prep: &Prepared,
    fields: &HashMap<String, Tensor>,
    call: &SampleCall,
) -> Result<Samples, String> {
    let get = |name: &str| {
        fields
            .get(name)
            .ok_or_else(|| format!("the sampler did not produce `{name}`"))
    };
    let b = call.batch;
    match &prep.layout {
        Layout::Graphs {
            edges, nodes, mask, ..
        } => {
            let t = get(edges)?;
            let n = *nodes;
            let node_counts: Vec<usize> = match mask.as_ref().and_then(|m| call.masks.get(m)) {
                Some(Tensor {
                    data: Data::Bool(v),
                    ..
                }) => (0..b)
                    .map(|k| v[k * n..(k + 1) * n].iter().filter(|x| **x).count())
                    .collect(),
                _ => vec![n; b],
            };
            let on = |k: usize, i: usize, j: usize| -> bool {
                let at = k * n * n + i * n + j;
                match &t.data {
                    Data::Bool(v) => v[at],
                    Data::Class(v) => v[at] > 0,
                    Data::F32(v) => v[at] > 0.5,
                }
            };
            Ok(Samples::Graphs(
                (0..b)
                    .map(|k| Graph::from_dense(node_counts[k], |i, j| on(k, i, j)))
                    .collect(),
            ))
        }
        Layout::Points { field, width, .. } => {
            let t = get(field)?;
            let v = t.f32s().ok_or("the points are not reals")?;
            Ok(Samples::Points {
                dim: *width,
                points: v.to_vec(),
            })
        }
        Layout::Sequences { field, len, .. } => {
            let t = get(field)?;
            let Data::Class(v) = &t.data else {
                return Err(format!("`{field}` is not a class field"));
            };
            Ok(Samples::Sequences(
                v.chunks(*len).map(<[u32]>::to_vec).collect(),
            ))
        }
    }
}

/// The training item each of `b` samples takes its node count, conditioning or label from: one
/// uniform per sample from the run's seed on its own stream, scaled to the `n` items.
fn pick_items(seed: u64, b: usize, n: usize) -> Vec<usize> {
    (0..b)
        .map(|i| {
            let u = crate::rng::uniform_open(crate::rng::word(seed, 0xD1FF_0001, 0, i as u64));
            ((u as f64 * n as f64) as usize).min(n - 1)
        })
        .collect()
}
