//! The `diffc` command line. The only place that reads files, prints and picks exit codes:
//! 0 ok, 1 the spec has errors, 2 usage or IO, 101 a bug in diffc.

use clap::{Parser, Subcommand, ValueEnum};
use diffc::diag::{render_json, render_text, Diagnostic, Source};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

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
    /// Print the checked process readably: fields, schedules, entry points, conversions.
    Explain {
        file: String,
        /// Only this process (by name), when the file holds several.
        #[arg(long)]
        process: Option<String>,
    },
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
                let code = with_source(cli, path, |_, _| 0);
                worst = worst.max(code);
            }
            worst
        }
        Command::Explain { file, process } => with_source(cli, file, |module, out| {
            match diffc::explain::explain(module, process.as_deref()) {
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

/// Read and check one file, print its diagnostics, and run `then` on the checked module.
fn with_source(
    cli: &Cli,
    path: &str,
    then: impl FnOnce(&diffc::check::Module, &mut dyn Write) -> u8,
) -> u8 {
    let text = match std::fs::read_to_string(path) {
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
    let (module, diags) = diffc::check::check_source(&text);
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
