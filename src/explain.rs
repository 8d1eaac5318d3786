//! `diffc explain`: the checked process, printed for people.

use crate::typed::Module;

pub fn explain(module: &Module, only: Option<&str>) -> Result<String, String> {
    let mut out = String::new();
    for p in &module.processes {
        if only.is_some_and(|n| n != p.name) {
            continue;
        }
        out.push_str(&format!("process {}\n", p.name));
    }
    Ok(out)
}
