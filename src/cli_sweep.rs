//! `diffc sweep`: several samplers at several step counts with the exact empirical denoiser;
//! a table of the scores against the network calls, `sweep.json` and one plot per score.

use diffc::sample::{self, empirical::Backend, sweep};
use std::io::Write;
use std::path::Path;

#[derive(clap::Args)]
pub struct SweepArgs {
    /// The spec file.
    pub file: String,
    /// The training data: a dataset name (community-small, grid, sbm, planar, words, moons,
    /// gaussians8, checkerboard, swissroll) or a path (a folder of edge lists, a graph6 file,
    /// an `.npy` stack of adjacency matrices or of points, or a text file of sequences).
    #[arg(long)]
    pub data: String,
    /// The process, when the file holds several.
    #[arg(long)]
    pub process: Option<String>,
    /// The samplers, comma-separated. One with a fixed grid runs once, at its own steps.
    #[arg(long, value_delimiter = ',', required = true)]
    pub samplers: Vec<String>,
    /// The step counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [5, 10, 20, 50])]
    pub steps: Vec<usize>,
    /// How many samples each run draws.
    #[arg(long, default_value_t = 64)]
    pub count: usize,
    /// How many training items to generate (a named dataset's default otherwise).
    #[arg(long)]
    pub train_count: Option<usize>,
    /// Which implementation runs the samplers and the denoiser's `log_q`.
    #[arg(long, value_enum, default_value_t = SweepBackend::Cpu)]
    pub backend: SweepBackend,
    /// The seed of every run's draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The seed of the generated dataset.
    #[arg(long, default_value_t = 1)]
    pub data_seed: u64,
    /// The width of a latent process's node vectors (NVDiff).
    #[arg(long, default_value_t = 8)]
    pub latent_width: usize,
    /// Write `sweep.json` and one `sweep_<score>.png` per score into this folder.
    #[arg(long)]
    pub out: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq)]
pub enum SweepBackend {
    Interp,
    Cpu,
    Gpu,
}

pub fn sweep(
    module: &diffc::check::Module,
    args: &SweepArgs,
    out: &mut dyn Write,
) -> Result<(), String> {
    let p = crate::pick_process(module, args.process.as_deref())?;
    let opts = sweep::Options {
        samplers: args.samplers.clone(),
        steps: args.steps.clone(),
        run: sample::Options {
            count: args.count,
            seed: args.seed,
            steps: None,
            params: Default::default(),
            backend: match args.backend {
                SweepBackend::Interp => Backend::Interp,
                SweepBackend::Cpu => Backend::Cpu,
                SweepBackend::Gpu => Backend::Gpu,
            },
            latent_width: args.latent_width,
        },
        validity: match args.data.as_str() {
            "planar" | "sbm" => Some(args.data.clone()),
            _ => None,
        },
        threads: diffc::graph::default_threads(),
    };
    // Refuse a bad request before generating anything.
    sweep::plan(p, &opts)?;
    let data = crate::cli_sample::load_data(&args.data, args.train_count, args.data_seed)?;
    let prep = sample::prepare(p, &data, &opts.run)?;
    let mut progress = |pt: &sweep::Point, i: usize, total: usize| {
        eprintln!(
            "[{}/{total}] {} at {} steps: {} network calls, {:.1} s",
            i + 1,
            pt.sampler,
            pt.steps,
            pt.calls,
            pt.seconds
        );
    };
    let result = sweep::sweep(p, &data, &prep, &opts, &mut progress)?;
    let head = format!(
        "{} on {} ({} training items), {} samples per run, seed {}",
        p.name, args.data, prep.training.count, args.count, args.seed
    );
    let text = format!("{head}\n{}", result.table());
    out.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write: {e}"))?;
    if let Some(dir) = &args.out {
        let d = Path::new(dir);
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create `{dir}`: {e}"))?;
        let write = |name: &str, bytes: &[u8]| {
            let path = d.join(name);
            std::fs::write(&path, bytes)
                .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
        };
        let mut json = result.json();
        let meta = serde_json::json!({
            "spec": args.file,
            "process": p.name,
            "data": args.data,
            "training_items": prep.training.count,
            "count": args.count,
            "seed": args.seed,
            "data_seed": args.data_seed,
        });
        if let (Some(o), serde_json::Value::Object(m)) = (json.as_object_mut(), meta) {
            o.extend(m);
        }
        write(
            "sweep.json",
            serde_json::to_string_pretty(&json)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        for (name, png) in result.plots(&format!("{} on {}", p.name, args.data)) {
            write(&name, &png)?;
        }
        let _ = writeln!(out, "wrote {dir}/");
    }
    Ok(())
}
