//! What the harness and its CI test share: the per-case random streams, the outcome of a case,
//! the tallies, and running a command under the address-space cap and the time limit.

use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// The address-space cap of every child and CLI run, in KiB (`ulimit -v`), as in
/// `tests/hostile.rs`.
pub const MEMORY_CAP_KB: u64 = 4_000_000;

/// `DIFFC_MEMORY_LIMIT` for CLI runs: the CLI's own refusal threshold, well under the cap, so that
/// a run hitting the cap is one whose allocations the limit does not account for.
pub const DIFFC_MEMORY_LIMIT: &str = "1G";

/// The areas, in the order they run and are reported.
pub const AREAS: [&str; 4] = ["spec", "npy", "graph", "cli"];

/// Case `index` of `area` under `seed` gets a stream of its own, so any case can be generated
/// alone (for a child's batch, a rerun or a reproduction).
pub fn case_rng(seed: u64, area: &str, index: u64) -> StdRng {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in area.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut x = seed ^ h ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    StdRng::seed_from_u64(x)
}

/// How one case ended.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// In process: the reader or checker accepted the input.
    Accepted,
    /// In process: it was refused with an error.
    Rejected,
    /// A CLI run's exit code (0, 1 a bad spec, 2 a bad request or input, anything else).
    Exit(i32),
    /// A panic: in process, caught by `catch_unwind`; in the CLI, exit 101.
    Panic,
    /// Killed by a signal (an abort, a stack overflow, a segfault).
    Signal(i32),
    /// Past its time limit.
    Timeout,
    /// An allocation refused under the address-space cap.
    MemoryCap,
}

impl Outcome {
    /// A panic, a signal, a timeout or a cap hit: what the harness exists to find.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Outcome::Panic | Outcome::Signal(_) | Outcome::Timeout | Outcome::MemoryCap
        ) || matches!(self, Outcome::Exit(c) if ![0, 1, 2].contains(c))
    }

    pub fn label(&self) -> String {
        match self {
            Outcome::Accepted => "accepted".into(),
            Outcome::Rejected => "rejected".into(),
            Outcome::Exit(c) => format!("exit {c}"),
            Outcome::Panic => "panic".into(),
            Outcome::Signal(s) => format!("signal {s}"),
            Outcome::Timeout => "timeout".into(),
            Outcome::MemoryCap => "memory cap".into(),
        }
    }
}

/// Cases by outcome, in-process and CLI apart.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub in_process: BTreeMap<Outcome, u64>,
    pub cli: BTreeMap<Outcome, u64>,
}

impl Tally {
    pub fn add(&mut self, cli: bool, o: Outcome) {
        let m = if cli {
            &mut self.cli
        } else {
            &mut self.in_process
        };
        *m.entry(o).or_insert(0) += 1;
    }

    pub fn merge(&mut self, other: &Tally) {
        for (o, n) in &other.in_process {
            *self.in_process.entry(o.clone()).or_insert(0) += n;
        }
        for (o, n) in &other.cli {
            *self.cli.entry(o.clone()).or_insert(0) += n;
        }
    }

    pub fn cases(&self) -> u64 {
        self.in_process.values().sum::<u64>() + self.cli.values().sum::<u64>()
    }

    pub fn cli_cases(&self) -> u64 {
        self.cli.values().sum()
    }

    /// `label n, label n, …`, in-process then CLI.
    pub fn describe(&self) -> String {
        let part = |m: &BTreeMap<Outcome, u64>| {
            m.iter()
                .map(|(o, n)| format!("{} {n}", o.label()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "in process: [{}]; CLI: [{}]",
            part(&self.in_process),
            part(&self.cli)
        )
    }
}

/// The result of one capped run: its outcome and the end of its stderr.
pub struct Run {
    pub outcome: Outcome,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args…` in `cwd` under `ulimit -v` [`MEMORY_CAP_KB`] and `timeout limit_s` (then
/// a kill 5 s later), with `DIFFC_MEMORY_LIMIT` and one worker thread unless `args` say otherwise.
/// Keeps stdout only when `keep_stdout` (a child's results); a CLI run's goes to /dev/null.
pub fn run_capped(
    program: &Path,
    args: &[String],
    cwd: &Path,
    limit_s: u64,
    keep_stdout: bool,
) -> Run {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -v {MEMORY_CAP_KB} && exec timeout -k 5 {limit_s} \"$0\" \"$@\""
        ))
        .arg(program)
        .args(args)
        .current_dir(cwd)
        .env("DIFFC_MEMORY_LIMIT", DIFFC_MEMORY_LIMIT)
        .env("RAYON_NUM_THREADS", "1")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(if keep_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped());
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => {
            return Run {
                outcome: Outcome::Signal(-1),
                stdout: String::new(),
                stderr: format!("cannot start {}: {e}", program.display()),
            }
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let allocation_failed = stderr.contains("memory allocation of")
        || stderr.contains("Cannot allocate memory")
        || stderr.contains("out of memory");
    use std::os::unix::process::ExitStatusExt;
    let outcome = match (out.status.code(), out.status.signal()) {
        (Some(124), _) | (Some(137), _) | (_, Some(9)) => Outcome::Timeout,
        (_, Some(_)) if allocation_failed => Outcome::MemoryCap,
        (_, Some(s)) => Outcome::Signal(s),
        (Some(101), _) => Outcome::Panic,
        (Some(c), _) if c > 128 && allocation_failed => Outcome::MemoryCap,
        (Some(c), _) if c > 128 => Outcome::Signal(c - 128),
        (Some(c), _) if stderr.contains("internal compiler error") => {
            let _ = c;
            Outcome::Panic
        }
        (Some(c), _) => Outcome::Exit(c),
        (None, None) => Outcome::Signal(-1),
    };
    Run {
        outcome,
        stdout,
        stderr: tail(&stderr, 2000),
    }
}

/// The last `n` bytes of `s`, at a character boundary.
pub fn tail(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut i = s.len() - n;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    s[i..].to_string()
}
