//! The shipped specs: each checks cleanly (a posterior marked `#[approximate]` with its warning
//! alone), and its `explain` printout is snapshot-tested.

use std::path::Path;
use std::process::Command;

#[test]
fn shipped_specs_check_and_explain() {
    let mut count = 0;
    insta::glob!("../specs", "*.diff", |path| {
        count += 1;
        let text = std::fs::read_to_string(path).unwrap();
        let (module, diags) = diffc::check::check_source(&text);
        let name = path.display().to_string();
        let source = diffc::diag::Source {
            name: &name,
            text: &text,
        };
        // Only a posterior marked `#[approximate]` may warn, and only that it is kept.
        let kept = |d: &diffc::diag::Diagnostic| {
            d.code.as_str() == "W0002" && !d.is_error() && text.contains("#[approximate]")
        };
        assert!(
            diags.iter().all(kept),
            "{}",
            diffc::diag::render_text(&source, &diags, false)
        );
        let module = module.expect("checked module");
        let text = diffc::explain::explain(&module, None).unwrap();
        insta::assert_snapshot!(text);
    });
    assert!(count >= 12, "only {count} shipped specs");
}

/// Every shipped entry's and sampler's launch plan (`diffc explain --plan`): validated (every
/// buffer written before it is read, one size per buffer) and snapshot-tested.
#[test]
fn shipped_specs_launch_plans() {
    insta::glob!("../specs", "*.diff", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let module = diffc::check::check_source(&text).0.expect("checked module");
        let plan = diffc::plan::plan_text(&module, None, None).unwrap();
        insta::assert_snapshot!("plan", plan);
    });
}

/// Launches of each step's segments (between network calls) in `plan_text`'s printout, by
/// sampler and step heading.
fn launches_per_segment(plan: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let (mut unit, mut step) = (String::new(), None::<String>);
    let mut n = 0;
    let mut flush = |unit: &str, step: &Option<String>, n: &mut usize| {
        if let Some(s) = step {
            out.push((format!("{unit} {s}"), *n));
        }
        *n = 0;
    };
    for line in plan.lines() {
        if line.starts_with("== ") {
            flush(&unit, &step, &mut n);
            unit = line.to_string();
            step = None;
        } else if line.starts_with("Step k") {
            flush(&unit, &step, &mut n);
            step = Some(line.to_string());
        } else if line.starts_with("Final map") || line.starts_with("Kernels:") {
            flush(&unit, &step, &mut n);
            step = None;
        } else if line.contains(". denoiser:") && step.is_some() {
            flush(&unit, &step, &mut n);
        } else if step.is_some()
            && line
                .split_once(". ")
                .is_some_and(|(k, r)| k.trim().parse::<u32>().is_ok() && r.starts_with("diffc_"))
        {
            n += 1;
        }
    }
    flush(&unit, &step, &mut n);
    out
}

/// A step whose model output feeds one of two updates chosen on the host is one launch: the
/// run before the branch joins each branch's kernel (DPM-Solver++(2M) on every grid, and the
/// Euler–Maruyama steps whose last step leaves the noise out).
#[test]
fn a_run_before_a_host_branch_joins_the_branch_kernels() {
    for (file, units) in [
        (
            "dpm_solver.diff",
            &["dpmpp_2m", "dpmpp_2m_uniform", "dpmpp_2m_quadratic"][..],
        ),
        ("vp_sde.diff", &["euler_maruyama"][..]),
        ("ve_sde.diff", &["euler_maruyama"][..]),
    ] {
        let text = std::fs::read_to_string(Path::new("specs").join(file)).unwrap();
        let module = diffc::check::check_source(&text).0.expect("checked module");
        for unit in units {
            let plan = diffc::plan::plan_text(&module, None, Some(unit)).unwrap();
            let segs = launches_per_segment(&plan);
            assert!(!segs.is_empty(), "{file} {unit}: no steps in\n{plan}");
            for (what, n) in segs {
                assert!(n <= 1, "{file}: {what}: {n} launches\n{plan}");
            }
        }
    }
}

#[test]
fn explain_plan_prints_one_unit_or_names_them_all() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/ddpm.diff");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_diffc"))
            .arg("explain")
            .arg(&spec)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--plan", "ddim"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    // The file's three processes each have a `ddim`.
    let heads: Vec<&str> = text.lines().filter(|l| l.starts_with("== `")).collect();
    assert_eq!(
        heads,
        [
            "== `ddim` of `ddpm_linear` ==",
            "== `ddim` of `ddpm_cosine` ==",
            "== `ddim` of `ddpm_cfg` =="
        ]
    );
    let one = run(&["--plan", "ddim", "--process", "ddpm_cosine"]);
    let text = String::from_utf8_lossy(&one.stdout);
    assert!(text.starts_with("== `ddim` of `ddpm_cosine` =="), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("== `")).count(), 1);
    assert!(text.contains("denoiser: network"), "{text}");
    let all = run(&["--plan"]);
    assert_eq!(all.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&all.stdout).contains("== `forward` of `ddpm_linear` =="));
    let bad = run(&["--plan", "ddjm"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("no entry or sampler `ddjm`") && err.contains("ddim"),
        "{err}"
    );
}

#[test]
fn cli_checks_every_shipped_spec() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.retain(|f| f.extension().is_some_and(|e| e == "diff"));
    files.sort();
    let out = Command::new(env!("CARGO_BIN_EXE_diffc"))
        .arg("check")
        .args(&files)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in &files {
        let out = Command::new(env!("CARGO_BIN_EXE_diffc"))
            .arg("explain")
            .arg(f)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", f.display());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("process "), "{}: {text}", f.display());
        assert!(text.contains("entry points:"), "{}", f.display());
    }
}

#[test]
fn every_spec_cites_its_math_section() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs");
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|e| e == "diff") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.contains("MATH.md §"),
                "{} does not cite MATH.md",
                path.display()
            );
        }
    }
}
