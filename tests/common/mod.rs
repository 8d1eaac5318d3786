//! Helpers shared by the integration tests.
#![allow(dead_code)]

use diffc::typed::Process;

/// A checked process from a shipped spec.
pub fn spec(file: &str, process: &str) -> Process {
    let path = format!("{}/specs/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let (module, diags) = diffc::check::check_source(&text);
    assert!(diags.iter().all(|d| !d.is_error()), "{file} has errors");
    module
        .unwrap()
        .processes
        .into_iter()
        .find(|p| p.name == process)
        .unwrap()
}

/// True when the data sits at t = 0 of a continuous time (flow matching, EDM, MDLM), where
/// x_t = x_0 exactly: losses weighted by 1/t or 1/σ² have no value there, and say so, so tests
/// that sweep the time take a time just inside it.
pub fn natural_data_end(p: &Process) -> bool {
    p.time.kind == diffc::typed::TimeKind::Continuous && p.time.data_at == 0.0 && p.time.lo == 0.0
}

/// Every process of `tests/data/per_element.diff` (Gaussian coefficients that vary per
/// element, with derived posteriors and a derived marginal).
pub fn per_element() -> Vec<Process> {
    let path = format!("{}/tests/data/per_element.diff", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let (module, diags) = diffc::check::check_source(&text);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    module.unwrap().processes
}

/// Every process of every shipped spec.
pub fn shipped() -> Vec<Process> {
    let mut files: Vec<_> = std::fs::read_dir(format!("{}/specs", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "diff"))
        .collect();
    files.sort();
    files
        .into_iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            diffc::check::check_source(&text).0.unwrap().processes
        })
        .collect()
}
/// Text above this size (the D3PM mixtures, the 27-class BFN steps) is snapshotted as a
/// summary.
pub const BIG: usize = 256 << 10;

/// `text` itself, or above `BIG` a summary: its line count and hash, then each section's first
/// line (a section starts at a line beginning with one of `starts`) with its line count and hash.
pub fn summarized(text: &str, starts: &[&str]) -> String {
    if text.len() <= BIG {
        return text.to_string();
    }
    let mut out = vec![format!(
        "{} lines, FNV-1a {:016x}; by section:",
        text.lines().count(),
        fnv(text)
    )];
    let mut sec: Vec<&str> = Vec::new();
    let flush = |sec: &mut Vec<&str>, out: &mut Vec<String>| {
        if let Some(first) = sec.first() {
            let body = sec.join("\n");
            out.push(format!(
                "{first}  [{} lines, {:016x}]",
                sec.len(),
                fnv(&body)
            ));
        }
        sec.clear();
    };
    for line in text.lines() {
        if starts.iter().any(|s| line.starts_with(s)) {
            flush(&mut sec, &mut out);
        }
        sec.push(line);
    }
    flush(&mut sec, &mut out);
    out.join("\n")
}

/// FNV-1a, 64 bits.
pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

pub mod diff;
pub mod gpu;
