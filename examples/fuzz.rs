//! The fuzzing harness (`docs/fuzzing.md`):
//!
//! ```text
//! cargo build --release --example fuzz --bin diffc
//! cargo run --release --example fuzz -- --area all --cases 10000 --seed 1 [--depth 8 --width 8] [--jobs 1] [--out DIR]
//! ```
//!
//! Four areas: `spec` (grammar-aware generated, near-valid, mutated and stress `.diff` texts
//! through the parser, checker and `explain`), `npy` (`.npy` files through the reader and its
//! conversions), `graph` (edge lists, graph6, `.npy` adjacency stacks and word text through the
//! graph readers and statistics) and `cli` (every subcommand with extreme arguments). One in
//! `--cli-every` cases of the first three runs through the built `diffc` instead (check, explain,
//! build; `eval --in`, `--param`; `metrics`, `sample --data`).
//!
//! In-process cases run in child processes (this program again, with `--child`), a batch of case
//! indices each, every child under `ulimit -v` and `timeout`: a child reports each case as it
//! finishes, so one that dies by a signal, a timeout or the memory cap is pinned to the first case
//! it did not report, which is then rerun alone to confirm it. CLI runs are under the same cap and
//! a per-case limit. Every failure's input is written to `--out` with a command that reproduces
//! it; `--case I` reruns one case in this process.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[path = "fuzz/cases.rs"]
mod cases;
#[path = "fuzz/cli.rs"]
mod cli;
#[path = "fuzz/common.rs"]
mod common;
#[path = "fuzz/files.rs"]
mod files;
#[path = "fuzz/spec.rs"]
mod spec;

use cases::Ctx;
use common::{Outcome, Tally};

struct Opts {
    areas: Vec<String>,
    /// Cases per area.
    cases: BTreeMap<String, u64>,
    seed: u64,
    depth: usize,
    width: usize,
    jobs: usize,
    out: PathBuf,
    diffc: PathBuf,
    root: PathBuf,
    /// One CLI run in this many cases, per area (the CLI area's cases are all CLI runs).
    cli_every: BTreeMap<String, u64>,
    batch: u64,
    case_limit: u64,
    case: Option<u64>,
    child: Option<(u64, u64)>,
}

const USAGE: &str = "usage: fuzz --area spec|npy|graph|cli|all --cases N --seed S [--depth D] [--width W] [--jobs J] [--out DIR] [--diffc PATH] [--cli-every K] [--batch B] [--case-limit SECONDS] [--case I]
  --cases and --cli-every take one number for every area or per-area values: --cases spec=40000,npy=500000,graph=450000,cli=10000";

fn per_area(n: u64) -> BTreeMap<String, u64> {
    common::AREAS.iter().map(|a| (a.to_string(), n)).collect()
}

/// `N` for every area, or `area=N,…` for some (the rest keep `old`).
fn per_area_option(
    flag: &str,
    value: &str,
    mut old: BTreeMap<String, u64>,
) -> Result<BTreeMap<String, u64>, String> {
    if let Ok(n) = value.parse::<u64>() {
        return Ok(per_area(n));
    }
    for part in value.split(',') {
        let (area, n) = part
            .split_once('=')
            .ok_or_else(|| format!("{flag}: `{part}` is neither N nor AREA=N"))?;
        if !common::AREAS.contains(&area) {
            return Err(format!("{flag}: unknown area `{area}`"));
        }
        let n = n
            .parse::<u64>()
            .map_err(|_| format!("{flag}: `{n}` is not a non-negative integer"))?;
        old.insert(area.to_string(), n);
    }
    Ok(old)
}

fn parse_args() -> Result<Opts, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/examples/fuzz → target/<profile>/diffc
    let default_diffc = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("diffc"))
        .unwrap_or_else(|| PathBuf::from("diffc"));
    let mut o = Opts {
        areas: common::AREAS.iter().map(|s| s.to_string()).collect(),
        cases: per_area(1000),
        seed: 1,
        depth: 8,
        width: 8,
        jobs: 1,
        out: PathBuf::from("fuzz-out"),
        diffc: default_diffc,
        root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        cli_every: per_area(100),
        batch: 256,
        case_limit: 20,
        case: None,
        child: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let mut from = None;
    let mut to = None;
    while i < args.len() {
        let flag = args[i].as_str();
        if flag == "--child" {
            i += 1;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args
            .get(i + 1)
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?
            .clone();
        let num = |v: &str| -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: `{v}` is not a non-negative integer"))
        };
        match flag {
            "--area" => {
                o.areas = if value == "all" {
                    common::AREAS.iter().map(|s| s.to_string()).collect()
                } else {
                    value.split(',').map(String::from).collect()
                };
                for a in &o.areas {
                    if !common::AREAS.contains(&a.as_str()) {
                        return Err(format!("unknown area `{a}`\n{USAGE}"));
                    }
                }
            }
            "--cases" => o.cases = per_area_option(flag, &value, o.cases)?,
            "--seed" => o.seed = num(&value)?,
            "--depth" => o.depth = num(&value)? as usize,
            "--width" => o.width = num(&value)? as usize,
            "--jobs" => o.jobs = num(&value)?.max(1) as usize,
            "--out" => o.out = PathBuf::from(value),
            "--diffc" => o.diffc = PathBuf::from(value),
            "--root" => o.root = PathBuf::from(value),
            "--cli-every" => o.cli_every = per_area_option(flag, &value, o.cli_every)?,
            "--batch" => o.batch = num(&value)?.max(1),
            "--case-limit" => o.case_limit = num(&value)?.max(1),
            "--case" => o.case = Some(num(&value)?),
            "--from" => from = Some(num(&value)?),
            "--to" => to = Some(num(&value)?),
            _ => return Err(format!("unknown option `{flag}`\n{USAGE}")),
        }
        i += 2;
    }
    if args.iter().any(|a| a == "--child") {
        o.child = Some((from.unwrap_or(0), to.unwrap_or(0)));
    }
    Ok(o)
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let corpus = cases::corpus(&opts.root);
    let ctx_for = |area: &str| Ctx {
        seed: opts.seed,
        shape: spec::Shape {
            depth: opts.depth,
            width: opts.width,
        },
        corpus: corpus.clone(),
        cli_every: opts.cli_every[area],
    };
    if let Some((from, to)) = opts.child {
        child(&ctx_for(&opts.areas[0]), &opts.areas[0], from, to);
        return;
    }
    if let Some(index) = opts.case {
        std::process::exit(reproduce(&opts, &ctx_for(&opts.areas[0]), index));
    }
    if !opts.diffc.is_file() {
        eprintln!(
            "error: no diffc binary at {} (build it: cargo build --release --bin diffc, or give --diffc)",
            opts.diffc.display()
        );
        std::process::exit(2);
    }
    let mut total = Tally::default();
    let mut failures = 0;
    let start = Instant::now();
    println!(
        "fuzz: seed {}, cases {:?}, depth {}, width {}, {} job(s), one CLI run in {:?} cases; caps: ulimit -v {} KiB, {} s per CLI case, DIFFC_MEMORY_LIMIT={}",
        opts.seed, opts.cases, opts.depth, opts.width, opts.jobs, opts.cli_every, common::MEMORY_CAP_KB, opts.case_limit, common::DIFFC_MEMORY_LIMIT
    );
    for area in &opts.areas {
        let t0 = Instant::now();
        let (tally, fails) = run_area(&opts, &ctx_for(area), area);
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "{area:>5}: {} cases ({} through the CLI) in {secs:.1} s; {}; failures {}",
            tally.cases(),
            tally.cli_cases(),
            tally.describe(),
            fails.len()
        );
        for f in &fails {
            println!("       FAIL {f}");
        }
        failures += fails.len();
        total.merge(&tally);
    }
    println!(
        "total: {} cases ({} through the CLI) in {:.1} s; {}; failures {failures}",
        total.cases(),
        total.cli_cases(),
        start.elapsed().as_secs_f64(),
        total.describe()
    );
    std::process::exit(if failures == 0 { 0 } else { 1 });
}

/// The message of the last panic, recorded by the child's hook.
static PANIC: Mutex<String> = Mutex::new(String::new());

/// A child: runs the in-process cases `from..to` of `area`, one result line each, flushed as it
/// goes: `a I` accepted, `r I` rejected, `p I MESSAGE` a panic.
fn child(ctx: &Ctx, area: &str, from: u64, to: u64) {
    std::panic::set_hook(Box::new(|info| {
        let mut m = PANIC.lock().unwrap_or_else(|e| e.into_inner());
        *m = info.to_string().replace('\n', " ");
    }));
    let stdout = std::io::stdout();
    for i in from..to {
        if cli::is_cli(area, i, ctx.cli_every) {
            continue;
        }
        let t0 = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cases::run_in_process(ctx, area, i)
        }));
        let us = t0.elapsed().as_micros();
        let line = match r {
            Ok(Ok(())) => format!("a {i} {us}"),
            Ok(Err(_)) => format!("r {i} {us}"),
            Err(_) => format!("p {i} {}", PANIC.lock().unwrap_or_else(|e| e.into_inner())),
        };
        let mut lock = stdout.lock();
        let _ = writeln!(lock, "{line}");
        let _ = lock.flush();
    }
    let _ = writeln!(stdout.lock(), "done");
}

/// Reruns one case here (in process, or the CLI run) and prints what happened.
fn reproduce(opts: &Opts, ctx: &Ctx, index: u64) -> i32 {
    let area = opts.areas[0].as_str();
    if cli::is_cli(area, index, ctx.cli_every) {
        let dir = std::env::temp_dir().join(format!("diffc-fuzz-case-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let args = cases::cli_args(ctx, area, index, &dir);
        println!("{area} case {index}: diffc {}", shell_words(&args));
        let run = common::run_capped(&opts.diffc, &args, &opts.root, opts.case_limit, false);
        println!("outcome: {}\n{}", run.outcome.label(), run.stderr);
        return i32::from(run.outcome.is_failure());
    }
    let (ext, bytes) = cases::input(ctx, area, index);
    let _ = std::fs::create_dir_all(&opts.out);
    let path = opts
        .out
        .join(format!("{area}-s{}-{index}.{ext}", opts.seed));
    let _ = std::fs::write(&path, &bytes);
    println!(
        "{area} case {index} ({ext}, {} bytes, written to {}):\n{}",
        bytes.len(),
        path.display(),
        common::tail(&String::from_utf8_lossy(&bytes), 4000)
    );
    match cases::run_in_process(ctx, area, index) {
        Ok(()) => println!("outcome: accepted"),
        Err(e) => println!("outcome: rejected: {}", common::tail(&e, 2000)),
    }
    0
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs an area's cases in batches over `--jobs` workers: (outcomes, failure lines).
fn run_area(opts: &Opts, ctx: &Ctx, area: &str) -> (Tally, Vec<String>) {
    let cases = opts.cases[area];
    let next = AtomicU64::new(0);
    let tally = Mutex::new(Tally::default());
    let fails: Mutex<BTreeMap<u64, String>> = Mutex::new(BTreeMap::new());
    let done = AtomicU64::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..opts.jobs {
            s.spawn(|| loop {
                let lo = next.fetch_add(opts.batch, Ordering::SeqCst);
                if lo >= cases {
                    break;
                }
                let hi = (lo + opts.batch).min(cases);
                let mut t = Tally::default();
                let mut f = BTreeMap::new();
                run_batch(opts, ctx, area, lo, hi, &mut t, &mut f);
                tally.lock().unwrap().merge(&t);
                fails.lock().unwrap().extend(f);
                let d = done.fetch_add(hi - lo, Ordering::SeqCst) + (hi - lo);
                // A progress line about every tenth of the area.
                let step = (cases / 10).max(opts.batch);
                if d / step != (d - (hi - lo)) / step {
                    eprintln!(
                        "  {area}: {d}/{cases} cases, {:.0} s",
                        t0.elapsed().as_secs_f64()
                    );
                }
            });
        }
    });
    let tally = tally.into_inner().unwrap();
    let fails = fails.into_inner().unwrap().into_values().collect();
    (tally, fails)
}

fn child_args(opts: &Opts, area: &str, from: u64, to: u64) -> Vec<String> {
    vec![
        "--child".into(),
        "--area".into(),
        area.into(),
        "--seed".into(),
        opts.seed.to_string(),
        "--depth".into(),
        opts.depth.to_string(),
        "--width".into(),
        opts.width.to_string(),
        "--cli-every".into(),
        format!("{area}={}", opts.cli_every[area]),
        "--root".into(),
        opts.root.display().to_string(),
        "--from".into(),
        from.to_string(),
        "--to".into(),
        to.to_string(),
    ]
}

fn run_batch(
    opts: &Opts,
    ctx: &Ctx,
    area: &str,
    lo: u64,
    hi: u64,
    tally: &mut Tally,
    fails: &mut BTreeMap<u64, String>,
) {
    let exe = std::env::current_exe().expect("the harness's own path");
    let in_process: Vec<u64> = (lo..hi)
        .filter(|&i| !cli::is_cli(area, i, ctx.cli_every))
        .collect();
    let mut from = lo;
    while in_process.iter().any(|&i| i >= from) {
        let n = in_process.iter().filter(|&&i| i >= from).count() as u64;
        let limit = 2 * opts.case_limit + n / 5;
        let run = common::run_capped(
            &exe,
            &child_args(opts, area, from, hi),
            &opts.root,
            limit,
            true,
        );
        let mut reported = Vec::new();
        let mut finished = false;
        for line in run.stdout.lines() {
            let mut parts = line.splitn(3, ' ');
            let kind = parts.next().unwrap_or("");
            if kind == "done" {
                finished = true;
                continue;
            }
            let Some(i) = parts.next().and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            let outcome = match kind {
                "a" => Outcome::Accepted,
                "r" => Outcome::Rejected,
                _ => Outcome::Panic,
            };
            if outcome == Outcome::Panic {
                let msg = parts.next().unwrap_or("").to_string();
                fails.insert(i, record(opts, ctx, area, i, &outcome, &msg));
            }
            tally.add(false, outcome);
            reported.push(i);
        }
        if finished && run.outcome == Outcome::Exit(0) {
            break;
        }
        // The child died: the first case it did not report is the suspect; rerun it alone.
        let last = reported.iter().max().copied();
        let Some(&suspect) = in_process
            .iter()
            .find(|&&i| i >= from && last.is_none_or(|l| i > l))
        else {
            break;
        };
        let solo = common::run_capped(
            &exe,
            &child_args(opts, area, suspect, suspect + 1),
            &opts.root,
            opts.case_limit,
            true,
        );
        let solo_outcome = if solo.stdout.contains("done") && solo.outcome == Outcome::Exit(0) {
            let line = solo.stdout.lines().next().unwrap_or("");
            match line.split(' ').next() {
                Some("a") => Outcome::Accepted,
                Some("r") => Outcome::Rejected,
                _ => Outcome::Panic,
            }
        } else {
            solo.outcome.clone()
        };
        if solo_outcome.is_failure() {
            let detail = if solo_outcome == Outcome::Panic {
                solo.stdout.clone()
            } else {
                solo.stderr.clone()
            };
            fails.insert(
                suspect,
                record(opts, ctx, area, suspect, &solo_outcome, &detail),
            );
        } else {
            eprintln!(
                "  note: {area} batch from {from} ended with {} at case {suspect}, which passed alone ({})",
                run.outcome.label(),
                solo_outcome.label()
            );
        }
        tally.add(false, solo_outcome);
        from = suspect + 1;
    }
    // The CLI cases of the batch.
    for i in (lo..hi).filter(|&i| cli::is_cli(area, i, ctx.cli_every)) {
        let dir =
            std::env::temp_dir().join(format!("diffc-fuzz-{}-{area}-{i}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir_all(&dir);
        let args = cases::cli_args(ctx, area, i, &dir);
        let run = common::run_capped(&opts.diffc, &args, &opts.root, opts.case_limit, false);
        if run.outcome.is_failure() {
            let case_dir = opts.out.join(format!("{area}-s{}-{i}", opts.seed));
            let _ = std::fs::create_dir_all(&case_dir);
            copy_dir(&dir, &case_dir.join("files"));
            let cmd = format!(
                "# {area} case {i} (seed {}): {}\ncd {} && ulimit -v {} && timeout {} {} {}\n# stderr:\n{}\n",
                opts.seed,
                run.outcome.label(),
                opts.root.display(),
                common::MEMORY_CAP_KB,
                opts.case_limit,
                opts.diffc.display(),
                shell_words(&args),
                run.stderr
                    .lines()
                    .map(|l| format!("# {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            let _ = std::fs::write(case_dir.join("cmd.sh"), cmd);
            fails.insert(
                i,
                format!(
                    "{area} case {i}: {} (CLI): diffc {} → {}",
                    run.outcome.label(),
                    shell_words(&args),
                    common::tail(run.stderr.trim(), 300)
                ),
            );
        }
        tally.add(true, run.outcome);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Writes an in-process failure's input to `--out` and returns its report line.
fn record(opts: &Opts, ctx: &Ctx, area: &str, i: u64, outcome: &Outcome, detail: &str) -> String {
    let (ext, bytes) = cases::input(ctx, area, i);
    let _ = std::fs::create_dir_all(&opts.out);
    let path = opts.out.join(format!("{area}-s{}-{i}.{ext}", opts.seed));
    let _ = std::fs::write(&path, &bytes);
    let _ = std::fs::write(
        path.with_extension(format!("{ext}.log")),
        format!(
            "{area} case {i} (seed {}, depth {}, width {}): {}\n{detail}\nreproduce: cargo run --release --example fuzz -- --area {area} --seed {} --depth {} --width {} --cli-every {area}={} --case {i}\n",
            opts.seed, opts.depth, opts.width, outcome.label(), opts.seed, opts.depth, opts.width, ctx.cli_every
        ),
    );
    format!(
        "{area} case {i}: {} ({}), input {}",
        outcome.label(),
        common::tail(detail.trim(), 300),
        path.display()
    )
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::create_dir_all(to);
    if let Ok(entries) = std::fs::read_dir(from) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                copy_dir(&p, &to.join(e.file_name()));
            } else if p.is_file() {
                let _ = std::fs::copy(&p, to.join(e.file_name()));
            }
        }
    }
}
