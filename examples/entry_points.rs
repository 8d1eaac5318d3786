//! Embed diffc: check a spec at run time and list what each process exposes.
//!
//! `cargo run --example entry_points -- specs/dpm_solver.diff`

use diffc::diag::{render_text, Source};
use diffc::entries::{entries, Extent};

fn main() -> std::process::ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "specs/ddpm.diff".into());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let (module, diags) = diffc::check::check_source(&text);
    let Some(module) = module else {
        eprint!(
            "{}",
            render_text(
                &Source {
                    name: &path,
                    text: &text
                },
                &diags,
                false
            )
        );
        return std::process::ExitCode::from(1);
    };
    for p in &module.processes {
        println!(
            "{}: {} samplers, time over [{}, {}]",
            p.name,
            p.samplers.len(),
            p.time.lo,
            p.time.hi
        );
        for e in entries(p) {
            let per_element = e
                .inputs
                .iter()
                .filter(|i| matches!(i.extent, Extent::Field(_)))
                .count();
            println!(
                "  {:<28} {} inputs ({per_element} per element), {} outputs",
                e.name,
                e.inputs.len(),
                e.outputs.len()
            );
        }
    }
    std::process::ExitCode::SUCCESS
}
