//! The `diffc` command line. The only place that reads files, prints and picks exit codes:
//! 0 ok, 1 the spec has errors, 2 usage or IO, 101 a bug in diffc.
//! The parser and the dispatch; each subcommand's arguments and body are in `src/cli/`.

use clap::{Parser, Subcommand};
use cli::{build, check, data, eval, explain, metrics, sample, sweep};
use cli::{with_source, with_source_all, Color, MessageFormat};
use std::process::ExitCode;

mod cli;

#[derive(Parser)]
#[command(name = "diffc", version, about = "A compiler for diffusion processes")]
struct Cli {
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t = MessageFormat::Human, global = true)]
    message_format: MessageFormat,
    /// Colour in diagnostics: auto, always or never.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    color: Color,
    /// Worker threads of the pool that runs kernels, JIT compilation and graph metrics
    /// (default: `RAYON_NUM_THREADS`, else every core). Results do not depend on it.
    #[arg(long, global = true)]
    threads: Option<std::num::NonZeroUsize>,
    /// The most memory one call may allocate, in bytes (`4G`, `512M`, or a plain count); every
    /// size is checked against it before anything is allocated (default: `DIFFC_MEMORY_LIMIT`,
    /// else half of the machine's memory).
    #[arg(long, global = true, value_name = "BYTES")]
    memory_limit: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and type-check spec files, evaluating every schedule.
    Check(check::CheckArgs),
    /// Run one entry point of a process on `.npy` inputs, or list the entry points.
    Eval(eval::EvalArgs),
    /// Compile every entry point and sampler to a shared library with a C header, or to WGSL
    /// compute shaders with a JSON manifest.
    Build(build::BuildArgs),
    /// Print the checked process readably: fields, schedules, entry points, conversions.
    Explain(explain::ExplainArgs),
    /// Score generated graphs against reference graphs: MMD of graph statistics, validity,
    /// uniqueness, novelty. Each set is a folder of edge-list files, a graph6 file or an `.npy`
    /// stack of adjacency matrices.
    Metrics(metrics::MetricsArgs),
    /// Write a generated dataset to files, for training a network outside diffc.
    Data(data::DataArgs),
    /// Generate with the exact denoiser of a dataset (no trained network) and score the
    /// samples: MMD of graph statistics, uniqueness and novelty for graphs, support and
    /// distances for points and sequences. Writes samples, metrics and a picture with --out.
    Sample(sample::SampleArgs),
    /// Run several samplers at several step counts with the exact denoiser of a dataset and
    /// score each run: a table of the scores against the network calls made, and with --out
    /// `sweep.json` and one plot per score.
    Sweep(sweep::SweepArgs),
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal compiler error: {info}");
        eprintln!(
            "note: this is a bug in diffc; please report it with the spec that triggered it."
        );
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Some(m) = &cli.memory_limit {
        if let Err(e) = diffc::limits::set_memory_limit(m) {
            eprintln!("error: --memory-limit: {e}");
            return ExitCode::from(2);
        }
    }
    if let Some(n) = cli.threads {
        if n.get() > diffc::limits::MAX_THREADS {
            eprintln!(
                "error: --threads {n} is more than the {} worker threads one run may start (docs/backends.md, \"Limits\")",
                diffc::limits::MAX_THREADS
            );
            return ExitCode::from(2);
        }
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n.get())
            .build_global()
        {
            eprintln!("error: cannot start {n} worker threads: {e}");
            return ExitCode::from(2);
        }
    }
    match std::panic::catch_unwind(|| run(&cli)) {
        Ok(code) => ExitCode::from(code),
        Err(_) => ExitCode::from(101),
    }
}

fn run(cli: &Cli) -> u8 {
    match &cli.command {
        Command::Check(args) => check::check(cli, args),
        Command::Eval(args) => with_source(cli, &args.file, |module, out| {
            match eval::eval(cli, args, module, out) {
                Ok(()) => 0,
                Err(message) => {
                    eprintln!("error: {message}");
                    2
                }
            }
        }),
        Command::Build(args) => with_source(cli, &args.file, |module, out| {
            match build::build(args, module, out) {
                Ok(()) => 0,
                Err(message) => {
                    eprintln!("error: {message}");
                    2
                }
            }
        }),
        Command::Sample(args) => with_source(cli, &args.file, |module, out| {
            match sample::sample(module, args, out) {
                Ok(()) => 0,
                Err(message) => {
                    eprintln!("error: {message}");
                    2
                }
            }
        }),
        Command::Sweep(args) => with_source(cli, &args.file, |module, out| {
            match sweep::sweep(module, args, out) {
                Ok(()) => 0,
                Err(message) => {
                    eprintln!("error: {message}");
                    2
                }
            }
        }),
        Command::Data(args) => match data::data(args) {
            Ok(()) => 0,
            Err(message) => {
                eprintln!("error: {message}");
                2
            }
        },
        Command::Metrics(args) => match metrics::metrics(args) {
            Ok(()) => 0,
            Err(message) => {
                eprintln!("error: {message}");
                2
            }
        },
        Command::Explain(args) => with_source_all(cli, &args.file, |module, out| {
            match explain::explain(args, module, out) {
                Ok(()) => 0,
                Err(message) => {
                    eprintln!("error: {message}");
                    2
                }
            }
        }),
    }
}
