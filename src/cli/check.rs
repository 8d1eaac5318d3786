//! `diffc check`: parse and type-check spec files, with a summary line per file that checks.

use super::{with_source_all, MessageFormat};
use crate::Cli;

#[derive(clap::Args)]
pub struct CheckArgs {
    #[arg(required = true)]
    files: Vec<String>,
}

/// `diffc check`: every file in turn; the exit code is the worst of theirs.
pub fn check(cli: &Cli, args: &CheckArgs) -> u8 {
    let mut worst = 0;
    for path in &args.files {
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
