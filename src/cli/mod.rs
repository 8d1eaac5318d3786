//! The subcommands of `diffc`, one file each, and what several of them share: reading and
//! checking a spec and printing its diagnostics, picking a process, and reading `--in`,
//! `--param` and `--set` arguments.

use crate::Cli;
use clap::ValueEnum;
use diffc::diag::{render_json, render_text, Diagnostic, Source};
use std::io::{IsTerminal, Write};

pub mod build;
pub mod check;
pub mod data;
pub mod eval;
pub mod explain;
pub mod metrics;
pub mod sample;
pub mod sweep;

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum MessageFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// Read and check one file, print its diagnostics, and run `then` on the checked module.
/// `check` and `explain` print every diagnostic; the commands that run the spec print those
/// [`Diagnostic::shown_in_runs`] (all but W0002).
pub fn with_source(
    cli: &Cli,
    path: &str,
    then: impl FnOnce(&diffc::check::Module, &mut dyn Write) -> u8,
) -> u8 {
    with_source_as(cli, path, false, then)
}

/// [`with_source`], printing every diagnostic (`check`, `explain`).
pub fn with_source_all(
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

/// `--in NAME=FILE.npy`: the name and the array.
fn read_in(arg: &str) -> Result<(&str, diffc::npy::Array), String> {
    let (name, path) = arg
        .split_once('=')
        .ok_or_else(|| format!("`--in {arg}`: expected NAME=FILE.npy"))?;
    let arr = diffc::npy::read_file(std::path::Path::new(path)).map_err(|e| e.to_string())?;
    Ok((name, arr))
}

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
