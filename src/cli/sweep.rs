//! `diffc sweep`: several samplers at several step counts with the exact empirical denoiser;
//! a table of the scores against the network calls, `sweep.json` and one plot per score.

use super::sample::RunArgs;
use diffc::sample::{self, sweep};
use std::io::Write;
use std::path::Path;

#[derive(clap::Args)]
pub struct SweepArgs {
    /// The spec file.
    pub file: String,
    #[command(flatten)]
    pub run: RunArgs,
    /// The samplers, comma-separated. One with a fixed grid runs once, at its own steps.
    #[arg(long, value_delimiter = ',', required = true)]
    pub samplers: Vec<String>,
    /// The step counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [5, 10, 20, 50])]
    pub steps: Vec<usize>,
    /// Write `sweep.json` and one `sweep_<score>.png` per score into this folder.
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub out: Option<String>,
}

pub fn sweep(
    module: &diffc::check::Module,
    args: &SweepArgs,
    out: &mut dyn Write,
) -> Result<(), String> {
    let p = super::pick_process(module, args.run.process.as_deref())?;
    let opts = sweep::Options {
        samplers: args.samplers.clone(),
        steps: args.steps.clone(),
        run: sample::Options {
            count: args.run.count,
            seed: args.run.seed,
            steps: None,
            params: Default::default(),
            backend: args.run.backend(),
            latent_width: args.run.latent_width,
            conditions: args.run.conditions()?,
        },
        validity: match args.run.data.as_str() {
            "planar" | "sbm" => Some(args.run.data.clone()),
            _ => None,
        },
        threads: diffc::graph::default_threads(),
    };
    // Refuse a bad request before generating anything.
    sweep::plan(p, &opts)?;
    let data = args.run.load_data()?;
    let prep = sample::prepare(p, &data, &opts.run)?;
    // One line per point; on a terminal, above a progress bar over the points.
    let bar = indicatif::ProgressBar::no_length();
    bar.set_style(
        indicatif::ProgressStyle::with_template("sweep [{bar:30}] {pos}/{len} points, {elapsed}")
            .expect("a valid template")
            .progress_chars("#>."),
    );
    let mut progress = |pt: &sweep::Point, i: usize, total: usize| {
        let line = format!(
            "[{}/{total}] {} at {} steps: {} network calls, {:.1} s",
            i + 1,
            pt.sampler,
            pt.steps,
            pt.calls,
            pt.seconds
        );
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.set_length(total as u64);
            bar.set_position(i as u64 + 1);
            bar.println(line);
        }
    };
    let result = sweep::sweep(p, &data, &prep, &opts, &mut progress);
    bar.finish_and_clear();
    let result = result?;
    let head = format!(
        "{} on {} ({} training items), {} samples per run, seed {}",
        p.name, args.run.data, prep.training.count, args.run.count, args.run.seed
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
            "data": args.run.data,
            "training_items": prep.training.count,
            "count": args.run.count,
            "seed": args.run.seed,
            "data_seed": args.run.data_seed,
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
        for (name, png) in result.plots(&format!("{} on {}", p.name, args.run.data)) {
            write(&name, &png)?;
        }
        let _ = writeln!(out, "wrote {dir}/");
    }
    Ok(())
}
