//! One case of an area, from its index: its input, what runs it in process, and what runs it
//! through the CLI.

use crate::cli;
use crate::common::case_rng;
use crate::files::{self, GraphKind};
use crate::spec::{self, Shape};
use rand::Rng;
use std::path::Path;

/// What every case of a run shares.
pub struct Ctx {
    pub seed: u64,
    pub shape: Shape,
    pub corpus: Vec<String>,
    /// One in `cli_every` cases of the spec, npy and graph areas runs through the CLI.
    pub cli_every: u64,
}

/// The shipped specs, sorted by name: the seeds of the spec area's mutations.
pub fn corpus(root: &Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(root.join("specs"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|f: &std::path::PathBuf| f.extension().is_some_and(|e| e == "diff"));
    files.sort();
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect()
}

/// An in-process case's input: a file extension and the bytes, as the reproducer is written.
pub fn input(ctx: &Ctx, area: &str, index: u64) -> (&'static str, Vec<u8>) {
    let mut rng = case_rng(ctx.seed, area, index);
    match area {
        "spec" => (
            "diff",
            spec::generate(&mut rng, ctx.shape, &ctx.corpus)
                .1
                .into_bytes(),
        ),
        "npy" => ("npy", files::npy(&mut rng)),
        _ => {
            let (kind, bytes) = files::graph(&mut rng);
            let ext = match kind {
                GraphKind::EdgeList => "edges.txt",
                GraphKind::Graph6 => "g6",
                GraphKind::Npy => "npy",
                GraphKind::Words => "words.txt",
            };
            (ext, bytes)
        }
    }
}

/// Runs an in-process case: `Ok` when the input was accepted, `Err` with the message when it was
/// refused. A panic propagates (the caller catches it).
pub fn run_in_process(ctx: &Ctx, area: &str, index: u64) -> Result<(), String> {
    let mut rng = case_rng(ctx.seed, area, index);
    match area {
        "spec" => {
            let (_, text) = spec::generate(&mut rng, ctx.shape, &ctx.corpus);
            let (module, diags) = diffc::check::check_source(&text);
            let module = module.ok_or_else(|| format!("{} diagnostics", diags.len()))?;
            // Print a quarter of the accepted processes, as `explain` does.
            if rng.random_bool(0.25) {
                diffc::explain::explain(&module, None)?;
            }
            Ok(())
        }
        "npy" => files::run_npy(&files::npy(&mut rng)),
        _ => {
            let (kind, bytes) = files::graph(&mut rng);
            files::run_graph(kind, &bytes)
        }
    }
}

/// A CLI case's arguments, its files written into `dir`.
pub fn cli_args(ctx: &Ctx, area: &str, index: u64, dir: &Path) -> Vec<String> {
    let mut rng = case_rng(ctx.seed, area, index);
    match area {
        "spec" => cli::spec_args(&mut rng, ctx.shape, &ctx.corpus, dir),
        "npy" => cli::npy_args(&mut rng, dir),
        "graph" => cli::graph_args(&mut rng, dir),
        _ => cli::cli_args(&mut rng, dir),
    }
}
