//! The `diffc` command line. The only place that reads files, prints and picks exit codes:
//! 0 ok, 1 the spec has errors, 2 usage or IO, 101 a bug in diffc.

use clap::{Parser, Subcommand, ValueEnum};
use diffc::diag::{render_json, render_text, Diagnostic, Source};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

mod cli_sample;
mod cli_sweep;

#[derive(Parser)]
#[command(name = "diffc", version, about = "A compiler for diffusion processes")]
struct Cli {
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t = MessageFormat::Human, global = true)]
    message_format: MessageFormat,
    /// Colour in diagnostics: auto, always or never.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    color: Color,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum MessageFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and type-check spec files, evaluating every schedule.
    Check {
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Run one entry point of a process on `.npy` inputs, or list the entry points.
    Eval(EvalArgs),
    /// Compile every entry point and sampler to a shared library with a C header, or to WGSL
    /// compute shaders with a JSON manifest.
    Build(BuildArgs),
    /// Print the checked process readably: fields, schedules, entry points, conversions.
    Explain {
        file: String,
        /// Only this process (by name), when the file holds several.
        #[arg(long)]
        process: Option<String>,
        /// Print the launch plans instead: per entry and sampler (or only the one named), its
        /// host rows, call sequences (kernel launches and their buffers, network calls, host
        /// copies) and kernels, as the compiled backends run them.
        #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "", conflicts_with = "table")]
        plan: Option<String>,
        /// Print schedule NAME's full table instead: one line per time, its values in f64
        /// (every time of a discrete process; evenly spaced times in continuous time).
        #[arg(long, value_name = "NAME")]
        table: Option<String>,
        /// With --table in continuous time: how many evenly spaced times, both ends included
        /// (default 1001, the times the checker evaluates schedules at).
        #[arg(long, value_name = "N", requires = "table")]
        points: Option<usize>,
    },
    /// Score generated graphs against reference graphs: MMD of graph statistics, validity,
    /// uniqueness, novelty. Each set is a folder of edge-list files, a graph6 file or an `.npy`
    /// stack of adjacency matrices.
    Metrics(MetricsArgs),
    /// Write a generated dataset to files, for training a network outside diffc.
    Data(DataArgs),
    /// Generate with the exact denoiser of a dataset (no trained network) and score the
    /// samples: MMD of graph statistics, uniqueness and novelty for graphs, support and
    /// distances for points and sequences. Writes samples, metrics and a picture with --out.
    Sample(cli_sample::SampleArgs),
    /// Run several samplers at several step counts with the exact denoiser of a dataset and
    /// score each run: a table of the scores against the network calls made, and with --out
    /// `sweep.json` and one plot per score.
    Sweep(cli_sweep::SweepArgs),
}

#[derive(clap::Args)]
struct DataArgs {
    /// The dataset (community-small, grid, sbm, planar, words, moons, gaussians8,
    /// checkerboard, swissroll).
    name: String,
    /// The folder to write.
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    out: String,
    /// The dataset's seed (`diffc sample` draws its training data with `--data-seed`, 1 by
    /// default).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The number of graphs, points or sequences (the dataset's default otherwise).
    #[arg(long)]
    count: Option<usize>,
}

#[derive(clap::Args)]
struct MetricsArgs {
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
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// How to print the results.
    #[arg(long, value_enum, default_value_t = MetricsFormat::Table)]
    format: MetricsFormat,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum MetricsFormat {
    Table,
    Json,
}

#[derive(clap::Args)]
struct EvalArgs {
    file: String,
    /// The process, when the file holds several.
    #[arg(long)]
    process: Option<String>,
    /// The entry point: forward, log_q, posterior, prior, loss.NAME, …
    #[arg(long)]
    entry: Option<String>,
    /// The sampler whose step to run (the entry is then `step.NAME`).
    #[arg(long)]
    sampler: Option<String>,
    /// An input or a supplied draw: NAME=FILE.npy.
    #[arg(long = "in", value_name = "NAME=FILE")]
    inputs: Vec<String>,
    /// A time (`t=500`, `s=499`), a dimension size (`d=64`) or the batch size (`batch=8`).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    sets: Vec<String>,
    /// A parameter of the process (`param`) or of the sampler, in place of its default: a
    /// number, or a `.npy` file for a `vec` or `mat` parameter (`--param mX=m.npy`).
    #[arg(long = "param", value_name = "NAME=VALUE|FILE.npy")]
    params: Vec<String>,
    /// The seed of every draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Which implementation runs the entry.
    #[arg(long, value_enum, default_value_t = Backend::Interp)]
    backend: Backend,
    /// Write one NAME.npy per output into this folder (otherwise print a summary).
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    out: Option<String>,
    /// List the entry points with their inputs and outputs.
    #[arg(long)]
    list: bool,
}

#[derive(clap::Args)]
struct BuildArgs {
    /// The spec file (`ddpm.diff` gives libddpm.so and ddpm.h, or ddpm.json for WGSL).
    file: String,
    /// What to build: `cpu` (native code: an object file, a C header and a shared library) or
    /// `wgsl` (one WGSL compute shader per kernel and a JSON manifest; docs/wgsl.md).
    #[arg(long, value_enum, default_value_t = BuildTarget::Cpu)]
    target: BuildTarget,
    /// The folder to write into (created if needed).
    #[arg(short = 'o', long = "out", value_name = "DIR", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    out: String,
    /// Only this process (by name), when the file holds several.
    #[arg(long)]
    process: Option<String>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum BuildTarget {
    Cpu,
    Wgsl,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Backend {
    Interp,
    Cpu,
    Gpu,
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
    match std::panic::catch_unwind(|| run(&cli)) {
        Ok(code) => ExitCode::from(code),
        Err(_) => ExitCode::from(101),
    }
}

fn run(cli: &Cli) -> u8 {
    match &cli.command {
        Command::Check { files } => {
            let mut worst = 0;
            for path in files {
                let code = with_source_all(cli, path, |module, out| {
                    // One line per file that checks (JSON output stays diagnostics only).
                    if matches!(cli.message_format, MessageFormat::Human) {
                        let _ = writeln!(out, "{path}: {}", check_summary(module));
                    }
                    0
                });
                worst = worst.max(code);
            }
            worst
        }
        Command::Eval(args) => with_source(cli, &args.file, |module, out| {
            match eval(cli, args, module, out) {
                Ok(()) => 0,
                Err(message) => {
                    eprintln!("error: {message}");
                    2
                }
            }
        }),
        Command::Build(args) => with_source(cli, &args.file, |module, out| {
            match build(args, module, out) {
                Ok(()) => 0,
                Err(message) => {
                    eprintln!("error: {message}");
                    2
                }
            }
        }),
        Command::Sample(args) => {
            with_source(cli, &args.file, |module, out| {
                match cli_sample::sample(module, args, out) {
                    Ok(()) => 0,
                    Err(message) => {
                        eprintln!("error: {message}");
                        2
                    }
                }
            })
        }
        Command::Sweep(args) => {
            with_source(cli, &args.file, |module, out| {
                match cli_sweep::sweep(module, args, out) {
                    Ok(()) => 0,
                    Err(message) => {
                        eprintln!("error: {message}");
                        2
                    }
                }
            })
        }
        Command::Data(args) => match data(args) {
            Ok(()) => 0,
            Err(message) => {
                eprintln!("error: {message}");
                2
            }
        },
        Command::Metrics(args) => match metrics(args) {
            Ok(()) => 0,
            Err(message) => {
                eprintln!("error: {message}");
                2
            }
        },
        Command::Explain {
            file,
            process,
            plan,
            table,
            points,
        } => with_source_all(cli, file, |module, out| {
            let text = match (plan.as_deref(), table) {
                (Some(only), _) => diffc::cpu::aot::plan_text(
                    module,
                    process.as_deref(),
                    (!only.is_empty()).then_some(only),
                ),
                (None, Some(name)) => {
                    diffc::explain::table(module, process.as_deref(), name, *points)
                }
                (None, None) => diffc::explain::explain(module, process.as_deref()),
            };
            match text {
                Ok(text) => {
                    let _ = out.write_all(text.as_bytes());
                    0
                }
                Err(message) => {
                    eprintln!("error: {message}");
                    2
                }
            }
        }),
    }
}

/// What `diffc check` checked in a file: its processes with their schedules, entry points and
/// samplers.
fn check_summary(module: &diffc::check::Module) -> String {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let procs: Vec<String> = module
        .processes
        .iter()
        .map(|p| {
            format!(
                "{} ({}, {}, {})",
                p.name,
                plural(p.schedules.len(), "schedule", "schedules"),
                plural(
                    diffc::entries::entries(p).len(),
                    "entry point",
                    "entry points"
                ),
                plural(p.samplers.len(), "sampler", "samplers")
            )
        })
        .collect();
    if procs.is_empty() {
        return "ok, no processes".into();
    }
    format!(
        "ok, {}: {}",
        plural(procs.len(), "process", "processes"),
        procs.join(", ")
    )
}

/// Read and check one file, print its diagnostics, and run `then` on the checked module.
/// `check` and `explain` print every diagnostic; the commands that run the spec print those
/// [`Diagnostic::shown_in_runs`] (all but W0002).
fn with_source(
    cli: &Cli,
    path: &str,
    then: impl FnOnce(&diffc::check::Module, &mut dyn Write) -> u8,
) -> u8 {
    with_source_as(cli, path, false, then)
}

/// [`with_source`], printing every diagnostic (`check`, `explain`).
fn with_source_all(
    cli: &Cli,
    path: &str,
    then: impl FnOnce(&diffc::check::Module, &mut dyn Write) -> u8,
) -> u8 {
    with_source_as(cli, path, true, then)
}

fn with_source_as(
    cli: &Cli,
    path: &str,
    all: bool,
    then: impl FnOnce(&diffc::check::Module, &mut dyn Write) -> u8,
) -> u8 {
    let text = match diffc::limits::read_text(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read `{path}`: {e}");
            return 2;
        }
    };
    let source = Source {
        name: path,
        text: &text,
    };
    let (module, mut diags) = diffc::check::check_source(&text);
    if !all {
        diags.retain(Diagnostic::shown_in_runs);
    }
    print_diags(cli, &source, &diags);
    let failed = diags.iter().any(Diagnostic::is_error);
    match module {
        Some(m) if !failed => then(&m, &mut std::io::stdout().lock()),
        _ => 1,
    }
}

fn print_diags(cli: &Cli, source: &Source, diags: &[Diagnostic]) {
    if diags.is_empty() {
        return;
    }
    match cli.message_format {
        MessageFormat::Json => {
            let _ = std::io::stdout()
                .lock()
                .write_all(render_json(source, diags).as_bytes());
        }
        MessageFormat::Human => {
            let color = match cli.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => std::io::stderr().is_terminal(),
            };
            let _ = std::io::stderr()
                .lock()
                .write_all(render_text(source, diags, color).as_bytes());
        }
    }
}

fn pick_process<'m>(
    module: &'m diffc::check::Module,
    name: Option<&str>,
) -> Result<&'m diffc::typed::Process, String> {
    let names = || {
        module
            .processes
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(n) => module
            .processes
            .iter()
            .find(|p| p.name == n)
            .ok_or_else(|| format!("no process `{n}` (the file has: {})", names())),
        None if module.processes.len() == 1 => Ok(&module.processes[0]),
        None => Err(format!(
            "the file holds several processes; pick one with --process ({})",
            names()
        )),
    }
}

fn port_text(p: &diffc::typed::Process, port: &diffc::entries::Port) -> (String, String) {
    let dtype = match port.elem {
        _ if port.name == "seed" => "uint64 (--seed)",
        diffc::typed::Elem::Real | diffc::typed::Elem::Vec(_) | diffc::typed::Elem::Mat(_) => {
            "float32"
        }
        diffc::typed::Elem::Cat(_) => "int64",
        diffc::typed::Elem::Bool => "bool",
    };
    let mut dims: Vec<String> = Vec::new();
    match &port.extent {
        diffc::entries::Extent::Field(s) => {
            dims.push("batch".into());
            dims.extend(s.dims.iter().map(|d| p.dims[d.index()].name.clone()));
        }
        diffc::entries::Extent::Sample => dims.push("batch".into()),
        diffc::entries::Extent::Scalar => {}
    }
    if let diffc::typed::Elem::Vec(k) = port.elem {
        dims.push(k.to_string());
    }
    (dtype.to_string(), format!("[{}]", dims.join(", ")))
}

fn eval(
    cli: &Cli,
    args: &EvalArgs,
    module: &diffc::check::Module,
    out: &mut dyn Write,
) -> Result<(), String> {
    use diffc::interp::{run, tensor_from_npy, tensor_to_npy, Call, Tensor};
    let p = pick_process(module, args.process.as_deref())?;
    if args.list {
        for e in diffc::entries::entries(p) {
            let ports = |v: &[diffc::entries::Port]| -> Vec<(String, String, String)> {
                v.iter()
                    .map(|x| {
                        let (d, mut s) = port_text(p, x);
                        // Entries other than sampler steps take one time or one per sample.
                        let steps = matches!(
                            e.kind,
                            diffc::entries::EntryKind::Step | diffc::entries::EntryKind::Finalize
                        );
                        if x.name == p.time.name && !steps && s == "[]" {
                            s = "[] or [batch]".into();
                        }
                        (x.name.clone(), d, s)
                    })
                    .collect()
            };
            let (ins, outs) = (ports(&e.inputs), ports(&e.outputs));
            // A step or final map also takes its sampler's parameters (with their defaults).
            let params: Vec<(String, String)> = e
                .name
                .split_once('.')
                .filter(|(kind, _)| matches!(*kind, "step" | "finalize"))
                .and_then(|(_, s)| p.samplers.iter().find(|x| x.name == s))
                .map(|s| {
                    s.params
                        .iter()
                        .filter(|x| x.overridable)
                        .map(|x| (x.name.clone(), diffc::explain::show(p, x.value)))
                        .collect()
                })
                .unwrap_or_default();
            // The draws a caller may supply in place of the generator (`--in NAME=FILE.npy`).
            let draws: Vec<(String, String)> = {
                let sites = match e.name.split_once('.') {
                    Some(("step" | "finalize", s)) => {
                        diffc::ir::lower::lower_sampler(p, s).map(|sp| sp.prog.draws)
                    }
                    _ => diffc::ir::lower::lower(p, &e.name).map(|prog| prog.draws),
                };
                let mut seen = Vec::new();
                for d in sites.unwrap_or_default() {
                    let item = (
                        d.input().to_string(),
                        format!("{:?}", d.family).to_lowercase(),
                    );
                    if !seen.contains(&item) {
                        seen.push(item);
                    }
                }
                seen
            };
            if cli.message_format == MessageFormat::Json {
                let js = |v: &[(String, String, String)]| -> Vec<serde_json::Value> {
                    v.iter()
                        .map(|(n, d, s)| serde_json::json!({"name": n, "dtype": d, "shape": s}))
                        .collect()
                };
                let ps: Vec<serde_json::Value> = params
                    .iter()
                    .map(|(n, d)| serde_json::json!({"name": n, "default": d}))
                    .collect();
                let ds: Vec<serde_json::Value> = draws
                    .iter()
                    .map(|(n, f)| serde_json::json!({"name": n, "family": f}))
                    .collect();
                let obj = serde_json::json!({"process": p.name, "entry": e.name, "inputs": js(&ins), "outputs": js(&outs), "params": ps, "draws": ds});
                let _ = writeln!(out, "{obj}");
            } else {
                let show = |v: &[(String, String, String)]| {
                    v.iter()
                        .map(|(n, d, s)| format!("{n}: {d}{s}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let _ = writeln!(
                    out,
                    "{}\n  in:  {}\n  out: {}",
                    e.name,
                    show(&ins),
                    show(&outs)
                );
                if !params.is_empty() {
                    let text: Vec<String> =
                        params.iter().map(|(n, d)| format!("{n} = {d}")).collect();
                    let _ = writeln!(out, "  params: {}", text.join(", "));
                }
                if !draws.is_empty() {
                    let text: Vec<String> =
                        draws.iter().map(|(n, f)| format!("{n} ({f})")).collect();
                    let _ = writeln!(out, "  draws: {}", text.join(", "));
                }
            }
        }
        return Ok(());
    }
    let entry = match (&args.entry, &args.sampler) {
        (Some(e), None) => e.clone(),
        (None, Some(s)) => format!("step.{s}"),
        (Some(e), Some(s)) if e == "step" => format!("step.{s}"),
        (Some(e), Some(s)) if e == "finalize" => format!("finalize.{s}"),
        (Some(_), Some(_)) => {
            return Err("--sampler goes with --entry step or --entry finalize".into())
        }
        (None, None) => return Err("say which entry to run with --entry (see --list)".into()),
    };
    if let Some(sampler) = entry.strip_prefix("step.") {
        return eval_step(args, p, sampler, false, out);
    }
    if let Some(sampler) = entry.strip_prefix("finalize.") {
        return eval_step(args, p, sampler, true, out);
    }
    let prog = diffc::ir::lower::lower(p, &entry)?;
    let mut call = Call {
        seed: args.seed,
        ..Call::default()
    };
    let mut batch = None;
    for s in &args.sets {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| format!("`--set {s}`: expected NAME=VALUE"))?;
        let number: f64 = value
            .parse()
            .map_err(|_| format!("`--set {s}`: `{value}` is not a number"))?;
        if name == p.time.name || name == "s" {
            call.inputs
                .insert(name.to_string(), Tensor::scalar(number as f32));
        } else if name == "batch" || p.dims.iter().any(|d| d.name == name) {
            let n = parse_size(s, value)?;
            if name == "batch" {
                batch = Some(n);
            } else {
                call.sizes.insert(name.to_string(), n);
            }
        } else {
            return Err(format!(
                "`--set {name}`: not the time, `s`, `batch` or a dimension of `{}`",
                p.name
            ));
        }
    }
    for i in &args.inputs {
        let (name, arr) = read_in(i)?;
        if let Some(mask) = mask_input(p, name, &arr)? {
            call.masks.insert(name.to_string(), mask);
        } else if let Some(port) = prog.inputs.iter().find(|x| x.name == name) {
            let t = tensor_from_npy(&arr, port.elem, name)?;
            if matches!(port.extent, diffc::entries::Extent::Field(_)) {
                batch.get_or_insert(t.shape.first().copied().unwrap_or(0));
            } else if name == p.time.name && t.shape.len() == 1 {
                // One time per sample also says how many samples there are.
                batch.get_or_insert(t.shape[0]);
            }
            call.inputs.insert(name.to_string(), t);
        } else if prog.draws.iter().any(|d| d.input() == name) {
            call.draws.insert(
                name.to_string(),
                tensor_from_npy(&arr, diffc::typed::Elem::Real, name)?,
            );
        } else {
            let known: Vec<&str> = prog
                .inputs
                .iter()
                .map(|x| x.name.as_str())
                .chain(prog.draws.iter().map(|d| d.name.as_str()))
                .collect();
            return Err(format!(
                "`{entry}` has no input `{name}` (its inputs: {})",
                known.join(", ")
            ));
        }
    }
    for port in &prog.inputs {
        if !call.inputs.contains_key(&port.name) && port.name != "seed" {
            let how = if matches!(port.extent, diffc::entries::Extent::Scalar) {
                format!("--set {}=VALUE", port.name)
            } else {
                format!("--in {}=FILE.npy", port.name)
            };
            return Err(format!(
                "`{entry}` needs `{}`: give it with {how}",
                port.name
            ));
        }
    }
    for (name, value) in read_params(&args.params)? {
        call.params.insert(name, value);
    }
    call.batch = batch.unwrap_or(1);
    let outputs = match args.backend {
        Backend::Cpu => diffc::cpu::run(p, &prog, &call)?,
        Backend::Gpu => diffc::gpu::run(p, &prog, &call)?,
        Backend::Interp => run(p, &prog, &call)?,
    };
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{dir}`: {e}"))?;
            for (port, t) in prog.outputs.iter().zip(&outputs) {
                let path = std::path::Path::new(dir).join(format!("{}.npy", port.name));
                diffc::npy::write_file(&tensor_to_npy(t), &path).map_err(|e| e.to_string())?;
            }
        }
        None => {
            for (port, t) in prog.outputs.iter().zip(&outputs) {
                let _ = writeln!(out, "{}", output_summary(&port.name, t));
            }
        }
    }
    Ok(())
}

/// One output in a line: its shape and first values (`x_t: shape [2, 3] [0.1, …]`).
/// One output as `eval` prints it without `--out`: its shape and first values, and for more
/// than six reals their min, mean and max (mean in f64; NaN when an element is).
fn output_summary(name: &str, t: &diffc::interp::Tensor) -> String {
    let vals: Vec<String> = match &t.data {
        diffc::interp::Data::F32(v) => v.iter().take(6).map(|x| format!("{x}")).collect(),
        diffc::interp::Data::Class(v) => v.iter().take(6).map(|x| format!("{x}")).collect(),
        diffc::interp::Data::Bool(v) => v.iter().take(6).map(|x| format!("{x}")).collect(),
    };
    let more = if t.len() > 6 { ", …" } else { "" };
    let stats = match &t.data {
        diffc::interp::Data::F32(v) if v.len() > 6 => {
            let nan = v.iter().any(|x| x.is_nan());
            let (lo, hi) = if nan {
                (f32::NAN, f32::NAN)
            } else {
                v.iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
                        (lo.min(x), hi.max(x))
                    })
            };
            let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
            format!(" min {lo} mean {} max {hi}", mean as f32)
        }
        _ => String::new(),
    };
    format!(
        "{name}: shape {:?} [{}{more}]{stats}",
        t.shape,
        vals.join(", ")
    )
}

/// A denoiser that returns supplied outputs: `NET.FIELD#i` for the i-th call of a step, or
/// `NET.FIELD` for every call.
struct Supplied {
    outputs: std::collections::HashMap<String, diffc::interp::Tensor>,
    calls: usize,
}

impl diffc::interp::Denoiser for Supplied {
    fn denoise(
        &mut self,
        p: &diffc::typed::Process,
        call: &diffc::interp::NetCall,
    ) -> Result<Vec<diffc::interp::Tensor>, String> {
        let net = call.net;
        let i = self.calls;
        self.calls += 1;
        let n = &p.networks[net];
        n.outputs
            .iter()
            .map(|o| {
                let name = format!("{}.{}", n.name, p.field(o.field).name);
                self.outputs
                    .get(&format!("{name}#{i}"))
                    .or_else(|| self.outputs.get(&name))
                    .cloned()
                    .ok_or_else(|| format!("the step calls `{}`: give its output with --in {name}=FILE.npy (or {name}#{i}=…)", n.name))
            })
            .collect()
    }
}

/// One step of a sampler (from `t` to `s`), or its final map at `t` (`finalize`).
fn eval_step(
    args: &EvalArgs,
    p: &diffc::typed::Process,
    sampler: &str,
    finalize: bool,
    out: &mut dyn Write,
) -> Result<(), String> {
    use diffc::interp::{sample, tensor_from_npy, tensor_to_npy, SampleCall, SingleStep};
    let sp = diffc::ir::lower::lower_sampler(p, sampler)?;
    let s_def = p.samplers.iter().find(|s| s.name == sampler).unwrap();
    let mut times: std::collections::HashMap<&str, f64> = Default::default();
    let mut call = SampleCall {
        seed: args.seed,
        ..SampleCall::default()
    };
    let mut one = SingleStep {
        k: 0,
        n: s_def.default_grid.len() - 1,
        ..SingleStep::default()
    };
    let mut batch = None;
    for s in &args.sets {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| format!("`--set {s}`: expected NAME=VALUE"))?;
        let v: f64 = value
            .parse()
            .map_err(|_| format!("`--set {s}`: `{value}` is not a number"))?;
        let whole = || parse_size(s, value);
        match name {
            n if n == p.time.name => {
                times.insert("t", v);
            }
            "s" | "r" => {
                times.insert(if name == "s" { "s" } else { "r" }, v);
            }
            "k" => one.k = whole()?,
            "n" => one.n = whole()?,
            "batch" => batch = Some(whole()?),
            n if p.dims.iter().any(|d| d.name == n) => {
                call.sizes.insert(n.to_string(), whole()?);
            }
            n if s_def.params.iter().any(|x| x.name == n && x.overridable) => {
                call.params.insert(n.to_string(), v);
            }
            n => return Err(format!("`--set {n}`: not `{}`, `s`, `r`, `k`, `n`, `batch`, a dimension or a parameter of `{sampler}`", p.time.name)),
        }
    }
    let (t, s) = match (times.get("t"), times.get("s")) {
        (Some(&t), _) if finalize => (t, t),
        (Some(&t), Some(&s)) => (t, s),
        _ if finalize => {
            return Err(format!(
                "the final map runs at a time: give it with --set {}=…",
                p.time.name
            ))
        }
        _ => {
            return Err(format!(
                "a step runs from `{}` to `s`: give both with --set {}=… --set s=…",
                p.time.name, p.time.name
            ))
        }
    };
    one.r = times.get("r").copied();
    let mut outputs = std::collections::HashMap::new();
    for i in &args.inputs {
        let (name, arr) = read_in(i)?;
        if let Some(mask) = mask_input(p, name, &arr)? {
            call.masks.insert(name.to_string(), mask);
        } else if let Some(f) = p.fields.iter().find(|f| f.name == name) {
            let t = tensor_from_npy(&arr, f.elem, name)?;
            batch.get_or_insert(t.shape.first().copied().unwrap_or(0));
            call.state.insert(name.to_string(), t);
        } else if let Some(local) = name.strip_prefix("prev.") {
            one.prev.insert(
                local.to_string(),
                tensor_from_npy(&arr, diffc::typed::Elem::Real, name)?,
            );
        } else if sp.prog.draws.iter().any(|d| d.input() == name) {
            call.draws.insert(
                name.to_string(),
                tensor_from_npy(&arr, diffc::typed::Elem::Real, name)?,
            );
        } else if name.contains('.') {
            outputs.insert(
                name.to_string(),
                tensor_from_npy(&arr, diffc::typed::Elem::Real, name)?,
            );
        } else {
            return Err(format!("step `{sampler}` has no input `{name}`: give fields, NET.FIELD outputs, prev.NAME values or draws"));
        }
    }
    for (name, value) in read_params(&args.params)? {
        let sampler_param = s_def.params.iter().any(|x| x.name == name && x.overridable);
        match (sampler_param, value.f32s()) {
            (true, Some([v])) => {
                call.params.insert(name, *v as f64);
            }
            (true, _) => {
                return Err(format!(
                    "`--param {name}`: a sampler parameter is one number"
                ))
            }
            (false, _) => {
                call.process_params.insert(name, value);
            }
        }
    }
    call.batch = batch.unwrap_or(1);
    // Both times may be the data end; an end given as its nearest f32 is that end.
    let t = diffc::interp::check_time_value(p, "t", t, true)?;
    let s = diffc::interp::check_time_value(p, "s", s, true)?;
    call.grid = Some(vec![t, s]);
    // A final map carries its run's step count, and draws as that run's final map does.
    call.finalize_only = finalize;
    call.single_step = Some(one);
    let mut net = Supplied { outputs, calls: 0 };
    let result = match args.backend {
        Backend::Cpu => diffc::cpu::sample(p, &sp, &call, &mut net)?,
        Backend::Gpu => diffc::gpu::sample(p, &sp, &call, &mut net)?,
        Backend::Interp => sample(p, &sp, &call, &mut net)?,
    };
    let mut names: Vec<&String> = result.keys().collect();
    names.sort();
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{dir}`: {e}"))?;
            for name in names {
                let path = std::path::Path::new(dir).join(format!("{name}.npy"));
                diffc::npy::write_file(&tensor_to_npy(&result[name]), &path)
                    .map_err(|e| e.to_string())?;
            }
        }
        None => {
            for name in names {
                let _ = writeln!(out, "{}", output_summary(name, &result[name]));
            }
        }
    }
    Ok(())
}

/// `diffc build`: for `--target cpu`, write the object, the header and the runtime, then link
/// the shared library with the system C compiler (`$CC`, or `cc`); for `--target wgsl`, write
/// one `.wgsl` file per kernel and the JSON manifest.
fn build(
    args: &BuildArgs,
    module: &diffc::check::Module,
    out: &mut dyn Write,
) -> Result<(), String> {
    let path = std::path::Path::new(&args.file);
    let stem: String = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "spec".into())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let dir = std::path::Path::new(&args.out);
    let write = |name: String, bytes: &[u8]| -> Result<std::path::PathBuf, String> {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| format!("cannot write `{}`: {e}", p.display()))?;
        Ok(p)
    };
    if args.target == BuildTarget::Wgsl {
        let built = diffc::gpu::manifest::build(module, &stem, args.process.as_deref())?;
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        for (name, wgsl) in &built.shaders {
            write(name.clone(), wgsl.as_bytes())?;
        }
        write(built.rows_name(), &built.rows_bytes())?;
        write(built.host_name(), built.host_js.as_bytes())?;
        let manifest = write(built.manifest_name(), built.manifest_json().as_bytes())?;
        let _ = writeln!(
            out,
            "wrote {}, its rows ({}), its host module ({}) and {} WGSL kernels of {} entry points and samplers to {}",
            manifest.display(),
            built.rows_name(),
            built.host_name(),
            built.shaders.len(),
            built.units.len(),
            dir.display()
        );
        return Ok(());
    }
    let lib = diffc::cpu::aot::build(module, &stem, args.process.as_deref())?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let object = write(lib.object_name(), &lib.object)?;
    write(lib.header_name(), lib.header.as_bytes())?;
    let source = write(lib.source_name(), lib.source.as_bytes())?;
    let so = dir.join(lib.library_name());
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let result = std::process::Command::new(&cc)
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-std=c99",
            "-fno-builtin",
            "-ffp-contract=off",
            "-o",
        ])
        .arg(&so)
        .arg(&object)
        .arg(&source)
        .args(["-I"])
        .arg(dir)
        .arg("-lm")
        .output()
        .map_err(|e| {
            format!(
                "cannot run the C compiler `{cc}`: {e}; install one (or set CC) to link `{}` \
                 (the object and the header are in `{}`)",
                lib.library_name(),
                dir.display()
            )
        })?;
    if !result.status.success() {
        return Err(format!(
            "`{cc}` failed to link `{}` ({}):\n{}",
            so.display(),
            result.status,
            String::from_utf8_lossy(&result.stderr).trim_end()
        ));
    }
    let _ = writeln!(
        out,
        "wrote {} and {} ({} kernels of {} entry points and samplers; {} KiB of coefficient tables)",
        so.display(),
        dir.join(lib.header_name()).display(),
        lib.kernels,
        lib.units.len(),
        lib.table_bytes.div_ceil(1024),
    );
    Ok(())
}

/// `--in NAME=FILE.npy`: the name and the array.
/// `--param NAME=VALUE|V1,V2,…|FILE.npy` arguments (`diffc eval` and `diffc sample`): a
/// number, comma-separated numbers (a `[K]` array), or the reals of a `.npy` file.
fn read_params(args: &[String]) -> Result<Vec<(String, diffc::interp::Tensor)>, String> {
    args.iter()
        .map(|a| {
            let (name, value) = a.split_once('=').ok_or_else(|| {
                format!("`--param {a}`: expected NAME=VALUE, NAME=V1,V2,… or NAME=FILE.npy")
            })?;
            let t = match value.parse::<f64>() {
                Ok(x) => diffc::interp::Tensor::scalar(x as f32),
                Err(_) if value.contains(',') => {
                    let xs = value
                        .split(',')
                        .map(|v| {
                            v.trim().parse::<f64>().map(|x| x as f32).map_err(|_| {
                                format!("`--param {a}`: `{}` is not a number", v.trim())
                            })
                        })
                        .collect::<Result<Vec<f32>, String>>()?;
                    diffc::interp::Tensor {
                        shape: vec![xs.len()],
                        data: diffc::interp::Data::F32(xs),
                    }
                }
                Err(_) => {
                    let (_, arr) = read_in(a).map_err(|e| {
                        format!("`--param {a}`: not a number, comma-separated numbers or a readable .npy file ({e})")
                    })?;
                    diffc::interp::tensor_from_npy(&arr, diffc::typed::Elem::Real, name)?
                }
            };
            Ok((name.to_string(), t))
        })
        .collect()
}

/// `diffc data`: graphs as edge lists (`graphs/NNNN.txt`) and as a padded adjacency stack
/// (`adjacency.npy`, float32 `[count, n, n]`, with `nodes.npy`, int64 `[count]`); points as
/// `points.npy` (float32 `[count, dim]`); sequences as `sequences.txt` and `sequences.npy`
/// (int64 `[count, len]`).
fn data(args: &DataArgs) -> Result<(), String> {
    use diffc::data::Dataset;
    use diffc::npy::{Array, Data};
    let options = diffc::data::Options {
        count: args.count,
        size: None,
    };
    let set = diffc::data::generate_with(&args.name, args.seed, &options)?;
    let dir = std::path::Path::new(&args.out);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", args.out))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
    };
    let npy = |a: &Array| -> Result<Vec<u8>, String> {
        let mut bytes = Vec::new();
        diffc::npy::write(a, &mut bytes).map_err(|e| e.to_string())?;
        Ok(bytes)
    };
    match &set {
        Dataset::Graphs(graphs) => {
            std::fs::create_dir_all(dir.join("graphs"))
                .map_err(|e| format!("cannot create `{}/graphs`: {e}", args.out))?;
            let n = graphs.iter().map(|g| g.nodes()).max().unwrap_or(0);
            let mut adj = vec![0f32; graphs.len() * n * n];
            for (k, g) in graphs.iter().enumerate() {
                write(
                    &format!("graphs/{k:04}.txt"),
                    diffc::graph::io::write_edge_list(g).as_bytes(),
                )?;
                for (i, j) in g.edges() {
                    adj[k * n * n + i * n + j] = 1.0;
                    adj[k * n * n + j * n + i] = 1.0;
                }
            }
            write(
                "adjacency.npy",
                &npy(&Array {
                    shape: vec![graphs.len(), n, n],
                    data: Data::F32(adj),
                })?,
            )?;
            write(
                "nodes.npy",
                &npy(&Array {
                    shape: vec![graphs.len()],
                    data: Data::I64(graphs.iter().map(|g| g.nodes() as i64).collect()),
                })?,
            )?;
        }
        Dataset::Points { dim, points } => write(
            "points.npy",
            &npy(&Array {
                shape: vec![points.len() / dim.max(&1), *dim],
                data: Data::F32(points.clone()),
            })?,
        )?,
        Dataset::Sequences { len, seqs, .. } => {
            write(
                "sequences.txt",
                diffc::data::words::to_lines(seqs).as_bytes(),
            )?;
            write(
                "sequences.npy",
                &npy(&Array {
                    shape: vec![seqs.len(), *len],
                    data: Data::I64(seqs.iter().flatten().map(|c| *c as i64).collect()),
                })?,
            )?;
        }
    }
    println!(
        "wrote {} items of `{}` to {}/",
        set.len(),
        args.name,
        args.out
    );
    Ok(())
}

fn read_in(arg: &str) -> Result<(&str, diffc::npy::Array), String> {
    let (name, path) = arg
        .split_once('=')
        .ok_or_else(|| format!("`--in {arg}`: expected NAME=FILE.npy"))?;
    let arr = diffc::npy::read_file(std::path::Path::new(path)).map_err(|e| e.to_string())?;
    Ok((name, arr))
}

/// A node mask, when `name` is one of the process's masks.
fn mask_input(
    p: &diffc::typed::Process,
    name: &str,
    arr: &diffc::npy::Array,
) -> Result<Option<diffc::interp::Tensor>, String> {
    if p.masks.iter().any(|m| m.name == name) {
        Ok(Some(diffc::interp::tensor_from_npy(
            arr,
            diffc::typed::Elem::Bool,
            name,
        )?))
    } else {
        Ok(None)
    }
}

/// `diffc metrics`: read the graph sets, evaluate, print; progress lines go to stderr.
fn metrics(args: &MetricsArgs) -> Result<(), String> {
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
        threads: args.threads.unwrap_or_else(diffc::graph::default_threads),
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
fn read_graphs(path: &str) -> Result<Vec<diffc::graph::Graph>, String> {
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

/// A size given with `--set NAME=VALUE` (`batch`, a dimension, a step index): a whole number,
/// written as an integer or exactly as a float (`1e6`), and exact (at most 2^53 when written
/// as a float, at most 2^64 - 1 as an integer). The call's memory is checked when it is sized.
fn parse_size(s: &str, value: &str) -> Result<usize, String> {
    if let Ok(n) = value.trim().parse::<u64>() {
        return usize::try_from(n)
            .map_err(|_| format!("`--set {s}`: {n} is too large for a size on this machine"));
    }
    let v: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("`--set {s}`: `{value}` is not a number"))?;
    if !(v >= 0.0 && v.fract() == 0.0) {
        return Err(format!("`--set {s}`: a size is a whole number, at least 0"));
    }
    if v > 9_007_199_254_740_992.0 {
        return Err(format!(
            "`--set {s}`: {value} is too large for a size (at most 2^64 - 1 written as an integer, 2^53 as a float)"
        ));
    }
    Ok(v as usize)
}
