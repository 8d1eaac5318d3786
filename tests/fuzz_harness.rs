//! A small fixed-seed run of the fuzzing harness's generators (`examples/fuzz.rs`,
//! `docs/fuzzing.md`): every area's in-process cases through the library, and CLI cases through
//! the built binary under the harness's address-space cap and time limit. No case may panic, die
//! by a signal, run past its time limit or hit the memory cap.
//!
//! The counts are printed (`cargo test --test fuzz_harness -- --nocapture`).

#[allow(dead_code)]
#[path = "../examples/fuzz/cases.rs"]
mod cases;
#[allow(dead_code)]
#[path = "../examples/fuzz/cli.rs"]
mod cli;
#[allow(dead_code)]
#[path = "../examples/fuzz/common.rs"]
mod common;
#[allow(dead_code)]
#[path = "../examples/fuzz/files.rs"]
mod files;
#[allow(dead_code)]
#[path = "../examples/fuzz/spec.rs"]
mod spec;

use common::{Outcome, Tally};
use std::path::{Path, PathBuf};

const SEED: u64 = 22;

/// The CLI cases' time limit: a debug build is several times slower than a release one.
const CASE_LIMIT_S: u64 = 60;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ctx(cli_every: u64) -> cases::Ctx {
    cases::Ctx {
        seed: SEED,
        shape: spec::Shape { depth: 3, width: 3 },
        corpus: cases::corpus(&root()),
        cli_every,
    }
}

/// Runs `cases` cases of `area`: in process under `catch_unwind`, or through the binary.
/// Returns the tally and a line per failure.
fn run_area(area: &str, n: u64, cli_every: u64) -> (Tally, Vec<String>) {
    let ctx = ctx(cli_every);
    let diffc = Path::new(env!("CARGO_BIN_EXE_diffc"));
    let mut tally = Tally::default();
    let mut fails = Vec::new();
    for i in 0..n {
        if cli::is_cli(area, i, ctx.cli_every) {
            let dir = std::env::temp_dir().join(format!(
                "diffc-fuzz-harness-{}-{area}-{i}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let args = cases::cli_args(&ctx, area, i, &dir);
            let run = common::run_capped(diffc, &args, &root(), CASE_LIMIT_S, false);
            if run.outcome.is_failure() {
                fails.push(format!(
                    "{area} case {i}: {} (CLI) diffc {args:?}: {}",
                    run.outcome.label(),
                    run.stderr
                ));
            }
            tally.add(true, run.outcome);
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                cases::run_in_process(&ctx, area, i)
            }));
            let outcome = match r {
                Ok(Ok(())) => Outcome::Accepted,
                Ok(Err(_)) => Outcome::Rejected,
                Err(_) => Outcome::Panic,
            };
            if outcome.is_failure() {
                let (ext, bytes) = cases::input(&ctx, area, i);
                fails.push(format!(
                    "{area} case {i} ({ext}): {}; reproduce: cargo run --release --example fuzz -- --area {area} --seed {SEED} --depth 3 --width 3 --case {i}\n{}",
                    outcome.label(),
                    common::tail(&String::from_utf8_lossy(&bytes), 2000)
                ));
            }
            tally.add(false, outcome);
        }
    }
    println!(
        "fuzz_harness: {area}: {} cases ({} through the CLI): {}",
        tally.cases(),
        tally.cli_cases(),
        tally.describe()
    );
    (tally, fails)
}

fn assert_clean(area: &str, n: u64, cli_every: u64, least_accepted: u64) {
    let (tally, fails) = run_area(area, n, cli_every);
    assert!(fails.is_empty(), "{}", fails.join("\n\n"));
    assert_eq!(tally.cases(), n);
    // The generators reach past the readers' first checks: some inputs are accepted.
    let accepted = tally
        .in_process
        .get(&Outcome::Accepted)
        .copied()
        .unwrap_or(0);
    assert!(
        accepted >= least_accepted,
        "{area}: only {accepted} inputs accepted: {}",
        tally.describe()
    );
}

#[test]
fn generated_and_mutated_specs_never_crash_the_front_end() {
    assert_clean("spec", 240, 80, 10);
}

#[test]
fn npy_files_never_crash_the_reader_or_eval() {
    assert_clean("npy", 2000, 200, 100);
}

#[test]
fn graph_files_never_crash_the_readers_or_metrics() {
    assert_clean("graph", 1000, 100, 50);
}

#[test]
fn extreme_cli_arguments_never_crash_any_subcommand() {
    assert_clean("cli", 40, 1, 0);
}

/// The same seed gives the same cases.
#[test]
fn cases_are_deterministic() {
    let a = ctx(100);
    for area in ["spec", "npy", "graph"] {
        for i in [0u64, 7, 123] {
            assert_eq!(cases::input(&a, area, i), cases::input(&a, area, i));
        }
    }
    let (d1, d2) = (
        std::env::temp_dir().join(format!("diffc-fuzz-det-{}", std::process::id())),
        std::env::temp_dir().join(format!("diffc-fuzz-det-{}", std::process::id())),
    );
    std::fs::create_dir_all(&d1).unwrap();
    for i in 0..20 {
        assert_eq!(
            cases::cli_args(&a, "cli", i, &d1),
            cases::cli_args(&a, "cli", i, &d2)
        );
    }
    let _ = std::fs::remove_dir_all(&d1);
}

/// The classification the assertions rest on: an abort is a signal, a run past its limit a
/// timeout, an allocation failure under the cap a cap hit, exit 101 a panic.
#[test]
fn the_runner_classifies_failures() {
    let sh = Path::new("/bin/sh");
    let run = |script: &str, limit: u64| {
        common::run_capped(
            sh,
            &["-c".to_string(), script.to_string()],
            &root(),
            limit,
            false,
        )
        .outcome
    };
    assert_eq!(run("kill -ABRT $$", 10), Outcome::Signal(6));
    assert_eq!(run("kill -SEGV $$", 10), Outcome::Signal(11));
    assert_eq!(run("sleep 30", 1), Outcome::Timeout);
    assert_eq!(run("exit 101", 10), Outcome::Panic);
    assert_eq!(run("exit 2", 10), Outcome::Exit(2));
    assert_eq!(
        run(
            "echo 'memory allocation of 17179869184 bytes failed' >&2; kill -ABRT $$",
            10
        ),
        Outcome::MemoryCap
    );
    for o in [
        Outcome::Signal(6),
        Outcome::Timeout,
        Outcome::Panic,
        Outcome::MemoryCap,
    ] {
        assert!(o.is_failure());
    }
    assert!(!Outcome::Exit(2).is_failure() && !Outcome::Rejected.is_failure());
}
