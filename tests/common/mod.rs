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
pub mod diff;
pub mod gpu;
