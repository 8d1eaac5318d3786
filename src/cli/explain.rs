//! `diffc explain`: the checked process printed readably, its launch plans or a schedule's table.

use std::io::Write;

#[derive(clap::Args)]
pub struct ExplainArgs {
    pub file: String,
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
}

/// `diffc explain`: the printout `--plan` or `--table` picks (the process itself otherwise),
/// written whole once it is made.
pub fn explain(
    args: &ExplainArgs,
    module: &diffc::check::Module,
    out: &mut dyn Write,
) -> Result<(), String> {
    let process = args.process.as_deref();
    let text = match (args.plan.as_deref(), &args.table) {
        (Some(only), _) => {
            diffc::plan::plan_text(module, process, (!only.is_empty()).then_some(only))
        }
        (None, Some(name)) => diffc::explain::table(module, process, name, args.points),
        (None, None) => diffc::explain::explain(module, process),
    }?;
    let _ = out.write_all(text.as_bytes());
    Ok(())
}
