//! `diffc metrics`: generated graphs scored against reference graphs.

use clap::ValueEnum;
use std::io::Write;

#[derive(clap::Args)]
pub struct MetricsArgs {
    /// The generated graphs.
    generated: String,
    /// The reference (test) graphs.
    reference: String,
    /// The training graphs, for novelty and V.U.N.
    #[arg(long)]
    train: Option<String>,
    /// Comma-separated: degree, clustering, orbit, spectral, validity, unique, novel, vun
    /// (default: the four MMDs and unique, with novel with `--train`, validity with
    /// `--validity`, vun with both).
    #[arg(long)]
    metrics: Option<String>,
    /// The evaluation convention: spectre (default), spectre-emd, gran, graphrnn.
    #[arg(long, default_value = "spectre")]
    convention: String,
    /// The validity test: planar (planar and connected) or sbm.
    #[arg(long)]
    validity: Option<String>,
    /// How to print the results.
    #[arg(long, value_enum, default_value_t = MetricsFormat::Table)]
    format: MetricsFormat,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum MetricsFormat {
    Table,
    Json,
}

/// `diffc metrics`: read the graph sets, evaluate, print; progress lines go to stderr.
pub fn metrics(args: &MetricsArgs) -> Result<(), String> {
    use diffc::graph::metrics::{self, Metric, Validity};
    let convention = metrics::convention(&args.convention).ok_or_else(|| {
        format!(
            "unknown convention `{}`: expected one of {}",
            args.convention,
            metrics::CONVENTIONS.join(", ")
        )
    })?;
    let validity = match &args.validity {
        Some(name) => Some(
            Validity::parse(name)
                .ok_or_else(|| format!("unknown validity test `{name}`: expected planar or sbm"))?,
        ),
        None => None,
    };
    let chosen = match &args.metrics {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|name| {
                Metric::parse(name).ok_or_else(|| {
                    format!(
                        "unknown metric `{name}`: expected degree, clustering, orbit, spectral, \
                         validity, unique, novel or vun"
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => {
            let mut m = vec![
                Metric::Degree,
                Metric::Clustering,
                Metric::Orbit,
                Metric::Spectral,
            ];
            if validity.is_some() {
                m.push(Metric::Validity);
            }
            m.push(Metric::Unique);
            if args.train.is_some() {
                m.push(Metric::Novel);
                if validity.is_some() {
                    m.push(Metric::Vun);
                }
            }
            m
        }
    };
    let generated = read_graphs(&args.generated)?;
    let reference = read_graphs(&args.reference)?;
    let train = match &args.train {
        Some(path) => Some(read_graphs(path)?),
        None => None,
    };
    // A graph without nodes has no degree, clustering, orbit or spectral distribution: an MMD
    // over it is not a number, so it is refused rather than printed as NaN.
    let statistics = [
        Metric::Degree,
        Metric::Clustering,
        Metric::Orbit,
        Metric::Spectral,
    ];
    if chosen.iter().any(|m| statistics.contains(m)) {
        for (set, graphs) in [(&args.generated, &generated), (&args.reference, &reference)] {
            if let Some(i) = graphs.iter().position(|g| g.nodes() == 0) {
                return Err(format!(
                    "`{set}`: graph {i} (in file order, from 0) has no nodes, so its degree, clustering, orbit and spectral statistics are not defined; leave it out, or ask only for --metrics unique,novel"
                ));
            }
        }
    }
    let options = metrics::Options {
        convention,
        metrics: chosen,
        validity,
        threads: diffc::graph::default_threads(),
    };
    let start = std::time::Instant::now();
    let last = std::sync::Mutex::new(start);
    // On a terminal, a progress bar per stage; otherwise a line now and then past a second.
    let bar = indicatif::ProgressBar::no_length();
    bar.set_style(
        indicatif::ProgressStyle::with_template("metrics: {msg} [{bar:30}] {pos}/{len}")
            .expect("a valid template")
            .progress_chars("#>."),
    );
    let progress = |p: diffc::graph::Progress| {
        if !bar.is_hidden() {
            bar.set_message(p.stage.to_string());
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            return;
        }
        let now = std::time::Instant::now();
        let Ok(mut last) = last.lock() else { return };
        let finished = p.done == p.total && p.total > 0;
        if now.duration_since(start).as_secs_f64() > 1.0
            && (finished || now.duration_since(*last).as_secs_f64() > 0.5)
        {
            *last = now;
            eprintln!("metrics: {} {}/{}", p.stage, p.done, p.total);
        }
    };
    let report = metrics::evaluate(
        &generated,
        &reference,
        train.as_deref(),
        &options,
        &progress,
    );
    bar.finish_and_clear();
    let report = report?;
    let mut out = std::io::stdout().lock();
    let text = match args.format {
        MetricsFormat::Json => {
            let values: serde_json::Map<String, serde_json::Value> = report
                .values
                .iter()
                .map(|(m, v)| (m.name().to_string(), serde_json::json!(v)))
                .collect();
            let kernels: serde_json::Map<String, serde_json::Value> = report
                .kernels
                .iter()
                .map(|(m, k)| (m.name().to_string(), serde_json::json!(k)))
                .collect();
            let v = serde_json::json!({
                "convention": report.convention,
                "generated": report.generated,
                "reference": report.reference,
                "train": report.train,
                "metrics": values,
                "kernels": kernels,
            });
            format!("{v}\n")
        }
        MetricsFormat::Table => {
            let mut t = format!(
                "convention {}: {} generated, {} reference{} graphs\n",
                report.convention,
                report.generated,
                report.reference,
                report
                    .train
                    .map_or(String::new(), |n| format!(", {n} training"))
            );
            for (m, v) in &report.values {
                let kernel = report
                    .kernels
                    .iter()
                    .find(|(k, _)| k == m)
                    .map_or("", |(_, k)| k.as_str());
                let value = if kernel.is_empty() {
                    format!("{v:.6}")
                } else {
                    format!("{v:.6e}")
                };
                t.push_str(format!("{:<11} {:<14} {}", m.name(), value, kernel).trim_end());
                t.push('\n');
            }
            t
        }
    };
    out.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write the results: {e}"))
}

/// A set of graphs: a folder of edge-list files (sorted by name, hidden files skipped), an
/// `.npy` stack of adjacency matrices, or a graph6 file.
pub fn read_graphs(path: &str) -> Result<Vec<diffc::graph::Graph>, String> {
    use diffc::graph::io;
    // A folder `diffc data` or `diffc sample --out` wrote: its graphs are the edge lists in
    // its `graphs` folder (the `.npy` stacks beside them are padded to the largest graph).
    let nested = std::path::Path::new(path).join("graphs");
    let (p, path) = if nested.is_dir() {
        let shown = nested.display().to_string();
        (nested, shown)
    } else {
        (std::path::PathBuf::from(path), path.to_string())
    };
    let path = path.as_str();
    if p.is_dir() {
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(p)
            .map_err(|e| format!("cannot read `{path}`: {e}"))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|f| {
                f.is_file()
                    && !f
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("`{path}` holds no graph files"));
        }
        files
            .iter()
            .map(|f| {
                let name = f.display().to_string();
                let text = diffc::limits::read_text(f).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        format!(
                            "`{name}` is not an edge list (not text): a folder of graphs holds edge-list files only; give an `.npy` stack or a graph6 file as the argument itself"
                        )
                    } else {
                        format!("cannot read `{name}`: {e}")
                    }
                })?;
                io::parse_edge_list(&name, &text).map_err(|e| e.to_string())
            })
            .collect()
    } else {
        let bytes =
            diffc::limits::read_file(&p).map_err(|e| format!("cannot read `{path}`: {e}"))?;
        if p.extension().is_some_and(|e| e == "npy") {
            let array = diffc::npy::read(&bytes).map_err(|e| format!("{path}: {e}"))?;
            io::from_npy(path, &array).map_err(|e| e.to_string())
        } else {
            io::parse_graph6(path, &bytes).map_err(|e| e.to_string())
        }
    }
}
