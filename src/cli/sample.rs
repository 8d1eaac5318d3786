//! `diffc sample`: generate with the exact empirical denoiser of a dataset and score the samples.

use diffc::data::{self, Dataset};
use diffc::interp::Tensor;
use diffc::sample::{self, empirical::Backend, Samples};
use diffc::typed::Process;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

#[derive(clap::Args)]
pub struct SampleArgs {
    /// The spec file.
    pub file: String,
    #[command(flatten)]
    pub run: RunArgs,
    /// The sampler (default: the process's first).
    #[arg(long)]
    pub sampler: Option<String>,
    /// The sampler's number of steps (for samplers with a `steps` parameter).
    #[arg(long)]
    pub steps: Option<usize>,
    /// A parameter in place of its default: a sampler parameter (a number: `--param eta=0.5`)
    /// or a process `param` (a number, comma-separated values or a `.npy` file:
    /// `--param mX=1,0,0,0`, `--param mE=m.npy`), as `diffc eval --param` takes them.
    #[arg(long = "param", value_name = "NAME=VALUE|V1,V2,…|FILE.npy")]
    pub params: Vec<String>,
    /// Write the samples, the metrics and a picture into this folder.
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub out: Option<String>,
}

/// The data and the runs, as `diffc sample` and `diffc sweep` both take them.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The training data: a dataset name (community-small, grid, sbm, planar, words, moons,
    /// gaussians8, checkerboard, swissroll) or a path (a folder of edge lists, a graph6 file,
    /// an `.npy` stack of adjacency matrices or of points, or a text file of sequences).
    #[arg(long)]
    pub data: String,
    /// The process, when the file holds several.
    #[arg(long)]
    pub process: Option<String>,
    /// How many samples each run draws.
    #[arg(long, default_value_t = 64)]
    pub count: usize,
    /// How many training items to generate (a named dataset's default otherwise).
    #[arg(long)]
    pub train_count: Option<usize>,
    /// Which implementation runs the samplers and the denoiser's `log_q`.
    #[arg(long, value_enum, default_value_t = RunBackend::Cpu)]
    pub backend: RunBackend,
    /// The seed of every run's draws (the dataset's seed is `--data-seed`).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The seed of a generated dataset.
    #[arg(long, default_value_t = 1)]
    pub data_seed: u64,
    /// The width of a latent process's node vectors (NVDiff).
    #[arg(long, default_value_t = 8)]
    pub latent_width: usize,
    /// A conditioning field's value for every sample, in place of the training item's: a class
    /// (`--cond y=1`), a number, or comma-separated values per element (`--cond c=0.5,1`).
    #[arg(long = "cond", value_name = "FIELD=VALUE|V1,V2,…")]
    pub cond: Vec<String>,
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq)]
pub enum RunBackend {
    Interp,
    Cpu,
    Gpu,
}

impl RunArgs {
    pub(crate) fn backend(&self) -> Backend {
        match self.backend {
            RunBackend::Interp => Backend::Interp,
            RunBackend::Cpu => Backend::Cpu,
            RunBackend::Gpu => Backend::Gpu,
        }
    }

    /// The `--cond` values, by field.
    pub(crate) fn conditions(&self) -> Result<Vec<(String, Vec<f64>)>, String> {
        let mut out: Vec<(String, Vec<f64>)> = Vec::new();
        for c in &self.cond {
            let Some((name, values)) = c.split_once('=') else {
                return Err(format!("`--cond {c}`: write FIELD=VALUE"));
            };
            if out.iter().any(|(n, _)| n == name) {
                return Err(format!("`--cond {name}` is given twice"));
            }
            let values = values
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .map_err(|_| format!("`--cond {c}`: `{v}` is not a number"))
                })
                .collect::<Result<Vec<f64>, String>>()?;
            out.push((name.to_string(), values));
        }
        Ok(out)
    }

    /// The training data `--data` names.
    /// Refuses `--count` and `--train-count` past [`diffc::limits::MAX_COUNT`] before anything
    /// is generated or allocated.
    pub(crate) fn load_data(&self) -> Result<Dataset, String> {
        let max = diffc::limits::MAX_COUNT;
        for (flag, n) in [
            ("--count", Some(self.count)),
            ("--train-count", self.train_count),
        ] {
            if let Some(n) = n.filter(|&n| n > max) {
                return Err(format!(
                    "{flag} {n} is more than the {max} samples one run may use (docs/sampling.md, \"Limits\")"
                ));
            }
        }
        let data = load_data(&self.data, self.train_count, self.data_seed)?;
        // The point scores measure against the training points' support radius, 3 times their
        // median nearest-neighbour distance: not defined below two points.
        if let Dataset::Points { dim, points, .. } = &data {
            let n = if *dim == 0 { 0 } else { points.len() / dim };
            if *dim == 0 || n < 2 {
                return Err(format!(
                    "`{}` holds {n} training points of dimension {dim}: the point scores need at least 2 points of dimension 1 or more (their support radius is 3 times the median nearest-neighbour distance)",
                    self.data
                ));
            }
        }
        Ok(data)
    }
}

/// The training data `--data` names: a generated dataset (`train_count` items, seed `data_seed`)
/// or a file or folder of graphs, points or sequences.
pub(crate) fn load_data(
    name: &str,
    train_count: Option<usize>,
    data_seed: u64,
) -> Result<Dataset, String> {
    if data::names().iter().any(|(n, _)| *n == name) {
        let opts = data::Options {
            count: train_count,
            size: None,
        };
        return data::generate_with(name, data_seed, &opts);
    }
    let path = Path::new(name);
    if !path.exists() {
        let names: Vec<&str> = data::names().iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "`{}` is neither a dataset ({}) nor a file",
            name,
            names.join(", ")
        ));
    }
    if path.extension().is_some_and(|e| e == "txt") && path.is_file() {
        let text =
            diffc::limits::read_text(path).map_err(|e| format!("cannot read `{}`: {e}", name))?;
        let seqs = data::words::from_lines(&text).map_err(|e| format!("{}: {e}", name))?;
        let len = seqs.first().map_or(0, Vec::len);
        if let Some(i) = seqs.iter().position(|s| s.len() != len) {
            return Err(format!(
                "{}:{}: every sequence must have the first one's length {len}",
                name,
                i + 1
            ));
        }
        return Ok(Dataset::Sequences {
            classes: data::words::CLASSES,
            len,
            seqs,
        });
    }
    if path.extension().is_some_and(|e| e == "npy") && path.is_file() {
        let bytes =
            diffc::limits::read_file(path).map_err(|e| format!("cannot read `{}`: {e}", name))?;
        let a = diffc::npy::read(&bytes).map_err(|e| format!("{}: {e}", name))?;
        if a.shape.len() == 2 {
            let t = diffc::interp::tensor_from_npy(&a, diffc::typed::Elem::Real, name)?;
            let points = t.f32s().ok_or("the points are not reals")?.to_vec();
            if let Some(i) = points.iter().position(|x| !x.is_finite()) {
                return Err(format!("{}: value {i} is not finite", name));
            }
            return Ok(Dataset::Points {
                dim: a.shape[1],
                points,
                labels: None,
            });
        }
    }
    Ok(Dataset::Graphs(super::metrics::read_graphs(name)?))
}

pub fn sample(
    module: &diffc::check::Module,
    args: &SampleArgs,
    out: &mut dyn Write,
) -> Result<(), String> {
    let p = super::pick_process(module, args.run.process.as_deref())?;
    let sampler = match &args.sampler {
        Some(s) => s.clone(),
        None => p
            .samplers
            .first()
            .map(|s| s.name.clone())
            .ok_or_else(|| format!("process `{}` has no sampler", p.name))?,
    };
    let backend = args.run.backend();
    if args.run.count == 0 {
        return Err("--count must be at least 1".into());
    }

    let given = Given::read(p, &sampler, &args.params)?;
    let with_params = given.process(p)?;
    let p = &with_params;
    let params = given.sampler.clone();
    let start = std::time::Instant::now();
    let data = args.run.load_data()?;
    let opts = sample::Options {
        count: args.run.count,
        seed: args.run.seed,
        steps: args.steps,
        params,
        backend,
        latent_width: args.run.latent_width,
        conditions: args.run.conditions()?,
    };
    let prep = sample::prepare(p, &data, &opts)?;
    if let Some(acc) = &prep.encoding {
        eprintln!(
            "latents: {} training graphs encoded; the decoder's most likely graph is right on {:.2}% of pairs and {:.1}% of graphs (mean probability of the true pair {:.3})",
            prep.training.count,
            100.0 * acc.pairs,
            100.0 * acc.graphs,
            acc.mean_probability
        );
    }
    let steps = sample::step_count(p, &sampler, &opts)?;
    // A progress bar on a terminal (indicatif hides it when stderr is not one).
    let bar = indicatif::ProgressBar::new(steps as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} network calls, {elapsed} (eta {eta})",
        )
        .expect("a valid template")
        .progress_chars("#>."),
    );
    bar.set_message(sampler.clone());
    let mut progress = |calls: usize| bar.set_position(calls.min(steps) as u64);
    let run = sample::run(p, &sampler, &prep, &opts, &mut progress);
    bar.finish_and_clear();
    let run = run?;
    let sampled = start.elapsed().as_secs_f64();
    let validity = match args.run.data.as_str() {
        "planar" => Some("planar"),
        "sbm" => Some("sbm"),
        _ => None,
    };
    let mut scores = sample::score::score(
        &data,
        &run.samples,
        validity,
        diffc::graph::default_threads(),
    )?;
    if let (
        sample::Layout::Points {
            label: Some(name),
            width,
            ..
        },
        Dataset::Points {
            points: train,
            labels: Some(train_labels),
            ..
        },
        sample::Samples::Points { points, .. },
    ) = (&prep.layout, &data, &run.samples)
    {
        if let Some(diffc::interp::Tensor {
            data: diffc::interp::Data::Class(labels),
            ..
        }) = run.fields.get(name)
        {
            let v = sample::score::label_agreement(*width, points, labels, train, train_labels);
            scores.values.push(("label_agreement".into(), v));
        }
    }
    let mut text = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        text,
        "{} / {} on {} ({} training items): {} samples, {} network calls, {:.1} s",
        p.name, sampler, args.run.data, prep.training.count, args.run.count, run.calls, sampled
    );
    if let Some(st) = &run.stats {
        let _ = writeln!(
            text,
            "empirical denoiser: mean largest posterior weight {:.3}; {} states no training item reaches, weighed by their differences",
            st.mean_top_weight, st.fallbacks
        );
    }
    for (name, v) in &scores.values {
        let _ = writeln!(text, "  {name:<16} {v:.6}");
    }
    out.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write: {e}"))?;
    if let Some(dir) = &args.out {
        write_out(
            dir, p, &sampler, args, &given, &data, &run, &scores, sampled,
        )?;
        let _ = writeln!(out, "wrote {dir}/");
    }
    Ok(())
}

/// The `--param` values of a run: the sampler's (numbers) and the process's (`param`s,
/// checked as `diffc eval` checks them).
struct Given {
    sampler: HashMap<String, f64>,
    process: HashMap<String, Tensor>,
    /// Every name with its value for `metrics.json`, in the order given (a name given twice
    /// keeps its last value).
    order: Vec<(String, serde_json::Value)>,
}

impl Given {
    /// Sorts `--param` arguments (read by `diffc eval`'s parser) into sampler parameters and
    /// process params. A sampler parameter is one number (kept in f64, as the sampler takes
    /// it); a name that is neither is an error listing both kinds.
    fn read(p: &Process, sampler: &str, args: &[String]) -> Result<Given, String> {
        let mut given = Given {
            sampler: HashMap::new(),
            process: HashMap::new(),
            order: Vec::new(),
        };
        if args.is_empty() {
            return Ok(given);
        }
        let Some(s) = p.samplers.iter().find(|s| s.name == sampler) else {
            let known: Vec<&str> = p.samplers.iter().map(|s| s.name.as_str()).collect();
            return Err(format!(
                "no sampler `{sampler}` (samplers of `{}`: {})",
                p.name,
                known.join(", ")
            ));
        };
        let sampler_params: Vec<&str> = s
            .params
            .iter()
            .filter(|x| x.overridable)
            .map(|x| x.name.as_str())
            .collect();
        for (arg, (name, value)) in args.iter().zip(super::read_params(args)?) {
            let json = if sampler_params.contains(&name.as_str()) {
                // The text itself where it is a number, so that it stays exact in f64.
                let text = arg.split_once('=').map_or("", |(_, v)| v);
                let v: f64 = match (text.parse::<f64>(), value.f32s()) {
                    (Ok(v), _) => v,
                    (Err(_), Some([v])) => *v as f64,
                    _ => {
                        return Err(format!(
                            "`--param {arg}`: a sampler parameter is one number"
                        ))
                    }
                };
                given.sampler.insert(name.clone(), v);
                serde_json::json!(v)
            } else if p.params.iter().any(|x| x.name == name) {
                // Each f32 the process takes, as its shortest decimal (0.7261, not
                // 0.7261000275611877).
                let short = |x: &f32| x.to_string().parse::<f64>().unwrap_or(*x as f64);
                let json = match (&value.data, value.shape.is_empty()) {
                    (diffc::interp::Data::F32(v), true) => serde_json::json!(short(&v[0])),
                    (diffc::interp::Data::F32(v), false) => {
                        serde_json::json!(v.iter().map(short).collect::<Vec<f64>>())
                    }
                    _ => serde_json::Value::Null,
                };
                given.process.insert(name.clone(), value);
                json
            } else {
                let list = |names: Vec<&str>| {
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                };
                return Err(format!(
                    "`--param {name}`: neither a parameter of sampler `{sampler}` ({}) nor a param of process `{}` ({})",
                    list(sampler_params),
                    p.name,
                    list(p.params.iter().map(|x| x.name.as_str()).collect())
                ));
            };
            given.order.retain(|(n, _)| *n != name);
            given.order.push((name, json));
        }
        Ok(given)
    }

    /// `p` with the given process params in place of their defaults (each checked as `diffc
    /// eval --param` checks it: a param no schedule reads, its shape, finite values, a
    /// probability vector where the default is one), so that the sampler, its prior and the
    /// empirical denoiser's `log_q` all run with them.
    fn process(&self, p: &Process) -> Result<Process, String> {
        let values = diffc::interp::process_param_values(p, &self.process)?;
        let mut out = p.clone();
        for (param, v) in out.params.iter_mut().zip(values) {
            if let Some(v) = v {
                param.default = Some(v);
            }
        }
        Ok(out)
    }

    /// `{"NAME": value or [values], …}`: sampler parameters as given, process params as the
    /// f32 values used.
    fn json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.order.iter().cloned().collect())
    }
}

#[allow(clippy::too_many_arguments)]
fn write_out(
    dir: &str,
    p: &diffc::typed::Process,
    sampler: &str,
    args: &SampleArgs,
    given: &Given,
    data: &Dataset,
    run: &sample::Run,
    scores: &sample::score::Scores,
    seconds: f64,
) -> Result<(), String> {
    let d = Path::new(dir);
    std::fs::create_dir_all(d).map_err(|e| format!("cannot create `{dir}`: {e}"))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = d.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
    };
    match &run.samples {
        Samples::Graphs(graphs) => {
            let gd = d.join("graphs");
            std::fs::create_dir_all(&gd)
                .map_err(|e| format!("cannot create `{}`: {e}", gd.display()))?;
            for (i, g) in graphs.iter().enumerate() {
                let path = gd.join(format!("{i:04}.txt"));
                std::fs::write(&path, diffc::graph::io::write_edge_list(g))
                    .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
            }
            let n = graphs.iter().map(|g| g.nodes()).max().unwrap_or(0);
            let mut v = vec![0f32; graphs.len() * n * n];
            for (k, g) in graphs.iter().enumerate() {
                for (i, j) in g.edges() {
                    v[k * n * n + i * n + j] = 1.0;
                    v[k * n * n + j * n + i] = 1.0;
                }
            }
            let a = diffc::npy::Array {
                shape: vec![graphs.len(), n, n],
                data: diffc::npy::Data::F32(v),
            };
            write("samples.npy", &npy_bytes(&a))?;
            if let Dataset::Graphs(train) = data {
                let shown = graphs.len().min(8);
                let png = diffc::picture::graphs_png(
                    &graphs[..shown],
                    &train[..train.len().min(shown)],
                    shown,
                );
                write("samples.png", &png)?;
            }
        }
        Samples::Points { dim, points } => {
            let a = diffc::npy::Array {
                shape: vec![points.len() / dim, *dim],
                data: diffc::npy::Data::F32(points.clone()),
            };
            write("samples.npy", &npy_bytes(&a))?;
            if let (
                Dataset::Points {
                    dim: 2,
                    points: train,
                    ..
                },
                2,
            ) = (data, *dim)
            {
                let png =
                    diffc::picture::scatter_png(&data::as_pairs(points), &data::as_pairs(train));
                write("samples.png", &png)?;
            }
        }
        Samples::Sequences(seqs) => {
            write("samples.txt", data::words::to_lines(seqs).as_bytes())?;
        }
    }
    let json = serde_json::json!({
        "spec": args.file,
        "process": p.name,
        "sampler": sampler,
        "data": args.run.data,
        "count": args.run.count,
        "steps": args.steps,
        "seed": args.run.seed,
        "params": given.json(),
        "network_calls": run.calls,
        "seconds": seconds,
        "metrics": scores.values.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
    });
    write(
        "metrics.json",
        serde_json::to_string_pretty(&json)
            .unwrap_or_default()
            .as_bytes(),
    )
}

fn npy_bytes(a: &diffc::npy::Array) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Writing into memory fails only on a shape that does not match its data, which the
    // callers build together.
    let _ = diffc::npy::write(a, &mut bytes);
    bytes
}
