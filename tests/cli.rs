//! The command line: exit codes and message formats.

mod common;

use std::process::Command;

fn diffc(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_diffc"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_spec(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("diffc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

const BAD: &str = "process p {\n  dim d\n  field x : cat<3>[d]\n  time t : 1..10\n  forward x_t | x_0 ~ Normal(x_0, 1)\n}\n";

#[test]
fn a_missing_file_is_an_io_error() {
    let (code, _, err) = diffc(&["check", "/nonexistent/spec.diff"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("cannot read `/nonexistent/spec.diff`"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(diffc(&["check"]).0, Some(2));
    assert_eq!(diffc(&["frobnicate"]).0, Some(2));
}

#[test]
fn a_spec_error_exits_1_with_a_located_diagnostic() {
    let path = temp_spec("bad.diff", BAD);
    let (code, _, err) = diffc(&["check", "--color", "never", &path]);
    assert_eq!(code, Some(1));
    assert!(err.contains("error[E0300]"), "{err}");
    assert!(err.contains("bad.diff:5:"), "{err}");
}

#[test]
fn json_diagnostics_are_one_object_per_line() {
    let path = temp_spec("bad_json.diff", BAD);
    let (code, out, _) = diffc(&["check", "--message-format", "json", &path]);
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["code"], "E0300");
    assert_eq!(v["severity"], "error");
    assert_eq!(v["spans"][0]["line_start"], 5);
    assert_eq!(v["spans"][0]["column_start"], 30);
    assert_eq!(v["spans"][0]["is_primary"], true);
    assert!(v["rendered"].as_str().unwrap().contains("Normal"));
}

#[test]
fn explain_can_pick_one_process() {
    let path = temp_spec(
        "two.diff",
        "process a { time t : [0, 1] }\nprocess b { time t : 1..3 }\n",
    );
    let (code, out, _) = diffc(&["explain", "--process", "b", &path]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("process b"), "{out}");
    assert!(!out.contains("process a"), "{out}");
    let (code, _, err) = diffc(&["explain", "--process", "c", &path]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no process `c`"), "{err}");
}

#[test]
fn warnings_do_not_fail_the_check() {
    let path = temp_spec(
        "unused.diff",
        "process p {\n  time t : 1..10\n  schedule beta(t) = 0.1\n  schedule unused(t) = 2 * beta(t)\n}\n",
    );
    let (code, _, err) = diffc(&["check", "--color", "never", &path]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning[W0001]: schedule `unused` is never used"),
        "{err}"
    );
    assert!(!err.contains("`beta`"), "{err}");
}

fn save(name: &str, a: &diffc::npy::Array) -> String {
    let dir = std::env::temp_dir().join(format!("diffc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    diffc::npy::write_file(a, &path).unwrap();
    path.to_string_lossy().into_owned()
}

fn spec_path(name: &str) -> String {
    format!("{}/specs/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn eval_runs_an_entry_and_writes_npy_outputs() {
    use diffc::npy::{Array, Data};
    let x0 = save(
        "x0.npy",
        &Array {
            shape: vec![2, 3],
            data: Data::F64(vec![0.1, 0.2, 0.3, -0.1, -0.2, -0.3]),
        },
    );
    let xt = save(
        "xt.npy",
        &Array {
            shape: vec![2, 3],
            data: Data::F32(vec![0.0; 6]),
        },
    );
    let dir = std::env::temp_dir().join(format!("diffc-eval-{}", std::process::id()));
    let out = dir.to_string_lossy().into_owned();
    let spec = spec_path("ddpm.diff");
    let args = [
        "eval",
        &spec,
        "--process",
        "ddpm_linear",
        "--entry",
        "posterior",
        "--in",
        &format!("x_0={x0}"),
        "--in",
        &format!("x_t={xt}"),
        "--set",
        "t=1",
        "--out",
        &out,
    ];
    let (code, _, err) = diffc(&args);
    assert_eq!(code, Some(0), "{err}");
    let mean = diffc::npy::read_file(&dir.join("mean.npy")).unwrap();
    assert_eq!(mean.shape, vec![2, 3]);
    // At t = 1 the posterior is the data itself.
    let m = mean.data.to_f64_vec();
    for (got, want) in m.iter().zip([0.1, 0.2, 0.3, -0.1, -0.2, -0.3]) {
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
    let var = diffc::npy::read_file(&dir.join("var.npy")).unwrap();
    assert_eq!(var.data.to_f64_vec(), vec![0.0]);
}

#[test]
fn eval_rejects_bad_inputs_with_exit_2() {
    use diffc::npy::{Array, Data};
    let spec = spec_path("ddpm.diff");
    let good = save(
        "good.npy",
        &Array {
            shape: vec![1, 2],
            data: Data::F32(vec![0.0, 1.0]),
        },
    );
    let nan = save(
        "nan.npy",
        &Array {
            shape: vec![1, 2],
            data: Data::F32(vec![f32::NAN, 1.0]),
        },
    );
    let ints = save(
        "ints.npy",
        &Array {
            shape: vec![1, 2],
            data: Data::I64(vec![0, 1]),
        },
    );
    let base = [
        "eval",
        spec.as_str(),
        "--process",
        "ddpm_linear",
        "--entry",
        "forward",
    ];
    for (extra, needle) in [
        (
            vec![
                "--in".to_string(),
                format!("x_0={nan}"),
                "--set".into(),
                "t=3".into(),
            ],
            "NaN",
        ),
        (
            vec![
                "--in".to_string(),
                format!("x_0={ints}"),
                "--set".into(),
                "t=3".into(),
            ],
            "must hold floats",
        ),
        (
            vec![
                "--in".to_string(),
                format!("x_0={good}"),
                "--set".into(),
                "t=0".into(),
            ],
            "outside the process's time",
        ),
        (
            vec![
                "--in".to_string(),
                format!("x_0={good}"),
                "--set".into(),
                "t=2.5".into(),
            ],
            "time is discrete",
        ),
        (vec!["--in".to_string(), format!("x_0={good}")], "needs `t`"),
        (
            vec![
                "--in".to_string(),
                "x_0=/nonexistent.npy".into(),
                "--set".into(),
                "t=3".into(),
            ],
            "/nonexistent.npy",
        ),
        (
            vec![
                "--in".to_string(),
                format!("y={good}"),
                "--set".into(),
                "t=3".into(),
            ],
            "has no input `y`",
        ),
        (vec!["--set".to_string(), "q=3".into()], "`--set q`"),
    ] {
        let mut args: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        args.extend(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = diffc(&refs);
        assert_eq!(code, Some(2), "{refs:?}: {err}");
        assert!(err.contains(needle), "{refs:?}: {err}");
    }
}

#[test]
fn eval_lists_entries_as_json() {
    let spec = spec_path("edge.diff");
    let (code, out, err) = diffc(&[
        "eval",
        &spec,
        "--process",
        "edge",
        "--list",
        "--message-format",
        "json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let entries: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let post = entries.iter().find(|e| e["entry"] == "posterior").unwrap();
    assert_eq!(post["inputs"][0]["name"], "A_t");
    assert_eq!(post["inputs"][0]["dtype"], "bool");
    assert_eq!(post["inputs"][0]["shape"], "[batch, n, n]");
    assert_eq!(post["outputs"][0]["name"], "p");
    let spec = spec_path("ddpm.diff");
    let (code, out, _) = diffc(&[
        "eval",
        &spec,
        "--process",
        "ddpm_linear",
        "--list",
        "--message-format",
        "json",
    ]);
    assert_eq!(code, Some(0));
    let ddim = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["entry"] == "step.ddim")
        .unwrap();
    assert_eq!(ddim["params"][0]["name"], "steps");
    assert_eq!(ddim["params"][1]["default"], "0");
}

#[test]
fn eval_runs_one_sampler_step_from_its_grid_points() {
    use diffc::npy::{Array, Data};
    let x: Vec<f32> = (0..6).map(|i| -1.0 + 0.4 * i as f32).collect();
    let xs = save(
        "step_x.npy",
        &Array {
            shape: vec![1, 6],
            data: Data::F32(x.clone()),
        },
    );
    let es = save(
        "step_e.npy",
        &Array {
            shape: vec![1, 6],
            data: Data::F32(vec![0.5; 6]),
        },
    );
    let dir = std::env::temp_dir().join(format!("diffc-step-{}", std::process::id()));
    let out = dir.to_string_lossy().into_owned();
    let spec = spec_path("ddpm.diff");
    let args = [
        "eval",
        &spec,
        "--process",
        "ddpm_linear",
        "--sampler",
        "ddim",
        "--entry",
        "step",
        "--in",
        &format!("x={xs}"),
        "--in",
        &format!("eps_hat.x={es}"),
        "--set",
        "t=500",
        "--set",
        "s=480",
        "--out",
        &out,
    ];
    let (code, _, err) = diffc(&args);
    assert_eq!(code, Some(0), "{err}");
    let got = diffc::npy::read_file(&dir.join("x.npy"))
        .unwrap()
        .data
        .to_f64_vec();
    // DDIM with eta = 0: x_s = a_s x0 + sigma_s eps, x0 = (x_t - sigma_t eps) / a_t.
    let ab = |t: usize| {
        (1..=t)
            .map(|s| 1.0 - (1e-4 + (0.02 - 1e-4) * (s - 1) as f64 / 999.0))
            .product::<f64>()
    };
    let (at, as_) = (ab(500).sqrt(), ab(480).sqrt());
    let (st, ss) = ((1.0 - ab(500)).sqrt(), (1.0 - ab(480)).sqrt());
    for (g, xi) in got.iter().zip(&x) {
        let want = as_ * (*xi as f64 - st * 0.5) / at + ss * 0.5;
        assert!((g - want).abs() < 1e-5, "{g} vs {want}");
    }
    let (code, _, err) = diffc(&[
        "eval",
        &spec,
        "--process",
        "ddpm_linear",
        "--sampler",
        "ddim",
        "--entry",
        "step",
        "--in",
        &format!("x={xs}"),
        "--set",
        "t=500",
        "--set",
        "s=480",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("give its output with --in eps_hat.x"), "{err}");
}

#[test]
fn eval_runs_a_samplers_final_map() {
    use diffc::npy::{Array, Data};
    let z: Vec<f32> = (0..2 * 27).map(|i| ((i * 31 % 53) as f32) / 10.0).collect();
    let zs = save(
        "fin_z.npy",
        &Array {
            shape: vec![1, 2, 27],
            data: Data::F32(z.clone()),
        },
    );
    let dir = std::env::temp_dir().join(format!("diffc-fin-{}", std::process::id()));
    let out = dir.to_string_lossy().into_owned();
    let spec = spec_path("bfn_discrete.diff");
    let (code, _, err) = diffc(&[
        "eval",
        &spec,
        "--sampler",
        "bfn_solver1",
        "--entry",
        "finalize",
        "--in",
        &format!("z={zs}"),
        "--set",
        "t=1",
        "--out",
        &out,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let x = diffc::npy::read_file(&dir.join("x.npy")).unwrap();
    let argmax = |row: &[f32]| {
        row.iter()
            .enumerate()
            .fold(0, |b, (i, v)| if *v > row[b] { i } else { b }) as i64
    };
    assert_eq!(x.data, Data::I64(vec![argmax(&z[..27]), argmax(&z[27..])]));
}

#[test]
fn eval_on_every_backend_writes_what_the_interpreter_writes() {
    use diffc::npy::{Array, Data};
    let x: Vec<f32> = (0..10).map(|i| -1.0 + 0.21 * i as f32).collect();
    let xs = save(
        "cpu_x.npy",
        &Array {
            shape: vec![2, 5],
            data: Data::F32(x),
        },
    );
    let es = save(
        "cpu_e.npy",
        &Array {
            shape: vec![2, 5],
            data: Data::F32(vec![0.25; 10]),
        },
    );
    let spec = spec_path("ddpm.diff");
    let mut outs = Vec::new();
    let mut backends = vec!["interp", "cpu"];
    if common::gpu::gpu().is_some() {
        backends.push("gpu");
    }
    for backend in backends {
        let dir = std::env::temp_dir().join(format!("diffc-{backend}-{}", std::process::id()));
        let out = dir.to_string_lossy().into_owned();
        // A forward draw and an ancestral step, both drawing noise from the seed.
        let (code, _, err) = diffc(&[
            "eval",
            &spec,
            "--process",
            "ddpm_linear",
            "--entry",
            "forward",
            "--in",
            &format!("x_0={xs}"),
            "--set",
            "t=300",
            "--seed",
            "5",
            "--backend",
            backend,
            "--out",
            &out,
        ]);
        assert_eq!(code, Some(0), "{err}");
        let (code, _, err) = diffc(&[
            "eval",
            &spec,
            "--process",
            "ddpm_linear",
            "--sampler",
            "ancestral",
            "--entry",
            "step",
            "--in",
            &format!("x={xs}"),
            "--in",
            &format!("eps_hat.x={es}"),
            "--set",
            "t=500",
            "--set",
            "s=499",
            "--seed",
            "5",
            "--backend",
            backend,
            "--out",
            &format!("{out}/step"),
        ]);
        assert_eq!(code, Some(0), "{err}");
        let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
        outs.push((read("x_t.npy"), read("eps.npy"), read("step/x.npy")));
    }
    assert!(outs[0] == outs[1], "the backends wrote different files");
    // The GPU writes the same noise bit for bit, and the same values within its tolerance.
    if common::gpu::gpu().is_some() {
        let gpu = outs.pop().unwrap();
        let cpu = &outs[0];
        assert!(gpu.1 == cpu.1, "the GPU drew different noise");
        for (g, c) in [(&gpu.0, &cpu.0), (&gpu.2, &cpu.2)] {
            let g = diffc::npy::read(g).unwrap().to_f32_vec();
            let c = diffc::npy::read(c).unwrap().to_f32_vec();
            assert_eq!(g.len(), c.len());
            for (a, b) in g.iter().zip(&c) {
                assert!(
                    (a - b).abs() <= 2e-5 * b.abs().max(1.0),
                    "gpu {a} vs cpu {b}"
                );
            }
        }
    }
}

/// `diffc sample` writes samples, metrics and a picture, and prints the metrics table.
#[test]
fn sample_writes_graphs_metrics_and_a_picture() {
    let dir = std::env::temp_dir().join(format!("diffc-sample-{}", std::process::id()));
    let out = dir.to_string_lossy().into_owned();
    let spec = spec_path("edge.diff");
    // EDGE on 8 community-small graphs, on a backend when one is named.
    let edge = |backend: &[&str]| {
        let mut args = vec![
            "sample",
            spec.as_str(),
            "--process",
            "edge",
            "--data",
            "community-small",
            "--count",
            "8",
        ];
        args.extend(backend);
        args.extend(["--out", out.as_str()]);
        diffc(&args)
    };
    let (code, stdout, stderr) = edge(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("edge / degree_guided on community-small"),
        "{stdout}"
    );
    assert!(stdout.contains("orbit_emd"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(json["network_calls"], 64);
    let in_train = json["metrics"]["in_train"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&in_train));
    let png = std::fs::read(dir.join("samples.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let graphs: Vec<_> = std::fs::read_dir(dir.join("graphs")).unwrap().collect();
    assert_eq!(graphs.len(), 8);
    let a = diffc::npy::read(&std::fs::read(dir.join("samples.npy")).unwrap()).unwrap();
    assert_eq!(a.shape[0], 8);
    // Sequences are written as text.
    let (code, _, stderr) = diffc(&[
        "sample",
        &spec_path("d3pm.diff"),
        "--process",
        "d3pm_absorbing",
        "--data",
        "words",
        "--count",
        "4",
        "--backend",
        "interp",
        "--out",
        &out,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(dir.join("samples.txt")).unwrap();
    assert_eq!(text.lines().count(), 4);
    assert!(text
        .lines()
        .all(|l| l.len() == 16 && l.bytes().all(|c| c == b' ' || c.is_ascii_lowercase())));
    // The same sampler on the GPU backend.
    if common::gpu::gpu().is_some() {
        let (code, stdout, stderr) = edge(&["--backend", "gpu"]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stdout.contains("orbit_emd"), "{stdout}");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
        assert_eq!(json["network_calls"], 64);
    }
}

/// `--threads N` sizes the pool the kernels and the graph metrics run on; the samples and the
/// scores do not change with it, and 0 threads is a usage error.
#[test]
fn threads_size_the_pool_and_leave_results_alone() {
    let spec = spec_path("edge.diff");
    let run = |threads: &str| {
        let dir =
            std::env::temp_dir().join(format!("diffc-threads-{threads}-{}", std::process::id()));
        let out = dir.to_string_lossy().into_owned();
        let (code, _, err) = diffc(&[
            "sample",
            &spec,
            "--process",
            "edge",
            "--data",
            "community-small",
            "--count",
            "8",
            "--threads",
            threads,
            "--out",
            &out,
        ]);
        assert_eq!(code, Some(0), "--threads {threads}: {err}");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
        let samples = std::fs::read(dir.join("samples.npy")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        (samples, json["metrics"].clone())
    };
    assert!(run("1") == run("3"), "the results depend on --threads");
    let (code, _, err) = diffc(&["--threads", "0", "check", &spec]);
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn sample_rejects_bad_requests_with_exit_2() {
    let spec = spec_path("edge.diff");
    for (args, wants) in [
        (vec!["--data", "nonsense"], "is neither a dataset"),
        (
            vec!["--data", "community-small", "--steps", "10"],
            "has no `steps` parameter",
        ),
        (
            vec!["--data", "community-small", "--sampler", "nope"],
            "no sampler `nope`",
        ),
        (vec!["--data", "moons"], "no real [d] data field for points"),
        (vec!["--data", "community-small", "--count", "0"], "--count"),
    ] {
        let mut all = vec!["sample", spec.as_str(), "--process", "edge"];
        all.extend(args);
        let (code, _, err) = diffc(&all);
        assert_eq!(code, Some(2), "{all:?}: {err}");
        assert!(err.contains(wants), "{all:?}: {err}");
    }
    // A file of graphs with a bad line names the file and line.
    let bad = temp_spec("bad-graphs.g6", "not graph6 \u{1}\n");
    let (code, _, err) = diffc(&["sample", &spec, "--process", "edge", "--data", &bad]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad-graphs.g6"), "{err}");
}

#[test]
fn sweep_prints_a_table_and_writes_json_and_plots() {
    let dir = std::env::temp_dir().join(format!("diffc-cli-sweep-{}", std::process::id()));
    let out = dir.to_string_lossy().into_owned();
    let spec = spec_path("dpm_solver.diff");
    let (code, stdout, stderr) = diffc(&[
        "sweep",
        &spec,
        "--data",
        "moons",
        "--samplers",
        "dpmpp_2m,euler",
        "--steps",
        "2,4",
        "--count",
        "16",
        "--out",
        &out,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("vp_linear on moons"), "{stdout}");
    assert!(
        lines[1].contains("network calls") && lines[1].contains("energy"),
        "{stdout}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("euler")).count(),
        2,
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json["process"], "vp_linear");
    let points = json["points"].as_array().unwrap();
    let calls: Vec<u64> = points
        .iter()
        .map(|p| p["network_calls"].as_u64().unwrap())
        .collect();
    assert_eq!(calls, [2, 4, 2, 4]);
    assert!(points[0]["scores"]["inside"].as_f64().is_some());
    for score in ["inside", "mean_nearest", "energy"] {
        let png = std::fs::read(dir.join(format!("sweep_{score}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
    // Training points from a file: 200 points on the unit circle.
    let points: Vec<f32> = (0..200)
        .flat_map(|i| {
            let a = i as f32 * std::f32::consts::TAU / 200.0;
            [a.cos(), a.sin()]
        })
        .collect();
    let file = dir.join("circle.npy");
    let array = diffc::npy::Array::new(vec![200, 2], diffc::npy::Data::F32(points)).unwrap();
    diffc::npy::write_file(&array, &file).unwrap();
    let (code, stdout, stderr) = diffc(&[
        "sweep",
        &spec,
        "--data",
        file.to_str().unwrap(),
        "--samplers",
        "dpmpp_2m",
        "--steps",
        "3",
        "--count",
        "8",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("circle.npy"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("dpmpp_2m")),
        "{stdout}"
    );
}

#[test]
fn sweep_rejects_bad_requests_with_exit_2() {
    let spec = spec_path("dpm_solver.diff");
    for (args, wants) in [
        (vec!["--data", "moons"], "--samplers"),
        (
            vec!["--data", "nonsense", "--samplers", "euler"],
            "is neither a dataset",
        ),
        (
            vec!["--data", "moons", "--samplers", "heun"],
            "no sampler `heun`",
        ),
        (
            vec!["--data", "moons", "--samplers", "euler", "--steps", "0"],
            "at least 1",
        ),
        (
            vec!["--data", "moons", "--samplers", "euler", "--steps", "5,x"],
            "invalid value",
        ),
        (
            vec!["--data", "moons", "--samplers", "euler", "--count", "0"],
            "sample count",
        ),
        (
            vec!["--data", "moons", "--samplers", "euler", "--backend", "tpu"],
            "invalid value",
        ),
        (
            vec!["--data", "words", "--samplers", "euler", "--steps", "2"],
            "no cat<K>[d] data field",
        ),
    ] {
        let mut all = vec!["sweep", spec.as_str()];
        all.extend(args);
        let (code, _, err) = diffc(&all);
        assert_eq!(code, Some(2), "{all:?}: {err}");
        assert!(err.contains(wants), "{all:?}: {err}");
        assert!(!err.contains("bug in diffc"), "{all:?}: {err}");
    }
}

/// `diffc data` writes a dataset as files that `diffc metrics` and numpy read back: the same
/// graphs as `diffc::data` generates, and an unknown name exits 2.
#[test]
fn data_writes_a_dataset_to_files() {
    let dir = std::env::temp_dir().join(format!("diffc-data-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    let (code, _, err) = diffc(&["data", "community-small", "--count", "12", "--out", d]);
    assert_eq!(code, Some(0), "{err}");
    let want = match diffc::data::generate_with(
        "community-small",
        0,
        &diffc::data::Options {
            count: Some(12),
            size: None,
        },
    )
    .unwrap()
    {
        diffc::data::Dataset::Graphs(g) => g,
        _ => unreachable!(),
    };
    let nodes = diffc::npy::read(&std::fs::read(dir.join("nodes.npy")).unwrap()).unwrap();
    assert_eq!(nodes.shape, vec![12]);
    let adj = diffc::npy::read(&std::fs::read(dir.join("adjacency.npy")).unwrap()).unwrap();
    let n = adj.shape[1];
    let diffc::npy::Data::F32(a) = &adj.data else {
        panic!("adjacency.npy holds float32")
    };
    for (k, g) in want.iter().enumerate() {
        let edges: usize = a[k * n * n..(k + 1) * n * n]
            .iter()
            .filter(|x| **x == 1.0)
            .count();
        assert_eq!(edges, 2 * g.edges().count(), "graph {k}");
    }
    // The edge lists score against themselves with no distance.
    let graphs = dir.join("graphs");
    let g = graphs.to_str().unwrap();
    let (code, out, err) = diffc(&["metrics", g, g]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("degree"), "{out}");
    let (code, _, err) = diffc(&["data", "nope", "--out", d]);
    assert_eq!(code, Some(2));
    assert!(err.contains("nope"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--param` gives a process's parameter per call; a wrong one exits 2 naming it.
#[test]
fn eval_takes_params() {
    let dir = std::env::temp_dir().join(format!("diffc-param-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let m = dir.join("m.npy");
    let a = diffc::npy::Array {
        shape: vec![4],
        data: diffc::npy::Data::F32(vec![0.0, 0.0, 0.0, 1.0]),
    };
    let mut bytes = Vec::new();
    diffc::npy::write(&a, &mut bytes).unwrap();
    std::fs::write(&m, bytes).unwrap();
    let spec = format!("{}/specs/digress.diff", env!("CARGO_MANIFEST_DIR"));
    let param = format!("mX={}", m.display());
    let (code, out, err) = diffc(&[
        "eval", &spec, "--entry", "prior.X", "--set", "batch=2", "--set", "n=3", "--param", &param,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("X_T: shape [2, 3] [3, 3, 3, 3, 3, 3]"),
        "{out}"
    );
    let (code, _, err) = diffc(&[
        "eval", &spec, "--entry", "prior.X", "--set", "batch=2", "--set", "n=3", "--param",
        "mX=0.5",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("param `mX` is vec<4>: give 4 values, not 1"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `diffc sample --param` takes a process's `param`s as `diffc eval` does (comma-separated
/// values or a `.npy` file), runs the sampler, its prior and the exact denoiser with them, and
/// records every given value in `metrics.json`; sampler parameters stay numbers.
#[test]
fn sample_takes_process_and_sampler_params() {
    let dir = std::env::temp_dir().join(format!("diffc-sample-param-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = spec_path("digress.diff");
    // DiGress on 8 community-small graphs; the samples and metrics.json of the run.
    let run = |params: &[&str]| {
        let out = dir.join("run");
        let _ = std::fs::remove_dir_all(&out);
        let out = out.to_string_lossy().into_owned();
        let mut args = vec![
            "sample",
            spec.as_str(),
            "--data",
            "community-small",
            "--count",
            "8",
        ];
        args.extend(params);
        args.extend(["--out", out.as_str()]);
        let (code, _, err) = diffc(&args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("run/metrics.json")).unwrap()).unwrap();
        (std::fs::read(dir.join("run/samples.npy")).unwrap(), json)
    };
    let (default, json) = run(&[]);
    assert_eq!(json["params"], serde_json::json!({}));
    // The declared default given as values reproduces the default run bit for bit.
    let (same, json) = run(&["--param", "mE=0.7261,0.2384,0.0274,0.0081"]);
    assert!(same == default, "mE at its default changed the samples");
    assert_eq!(
        json["params"]["mE"],
        serde_json::json!([0.7261, 0.2384, 0.0274, 0.0081])
    );
    // All of the edge marginal on "no edge", from a .npy file: other samples.
    let m = dir.join("mE.npy");
    let a = diffc::npy::Array {
        shape: vec![4],
        data: diffc::npy::Data::F32(vec![1.0, 0.0, 0.0, 0.0]),
    };
    let mut bytes = Vec::new();
    diffc::npy::write(&a, &mut bytes).unwrap();
    std::fs::write(&m, bytes).unwrap();
    let me = format!("mE={}", m.display());
    let (other, json) = run(&["--param", &me, "--param", "mX=1,0,0,0"]);
    assert!(
        other != default,
        "mE = [1, 0, 0, 0] left the samples as they were"
    );
    assert_eq!(
        json["params"]["mE"],
        serde_json::json!([1.0, 0.0, 0.0, 0.0])
    );
    assert_eq!(
        json["params"]["mX"],
        serde_json::json!([1.0, 0.0, 0.0, 0.0])
    );
    // A sampler parameter is still a number, and recorded as given.
    let out = dir.join("ddim").to_string_lossy().into_owned();
    let (code, _, err) = diffc(&[
        "sample",
        &spec_path("ddpm.diff"),
        "--process",
        "ddpm_cosine",
        "--sampler",
        "ddim",
        "--data",
        "moons",
        "--count",
        "8",
        "--param",
        "eta=0.5",
        "--out",
        &out,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("ddim/metrics.json")).unwrap()).unwrap();
    assert_eq!(json["params"], serde_json::json!({"eta": 0.5}));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bad `diffc sample --param` exits 2 with a message naming it, before any sampling.
#[test]
fn sample_rejects_bad_params_with_exit_2() {
    let digress = spec_path("digress.diff");
    let ddpm = spec_path("ddpm.diff");
    let missing = std::env::temp_dir().join("diffc-no-such-param-file.npy");
    let missing = format!("mX={}", missing.display());
    for (spec, args, wants) in [
        (
            &digress,
            vec!["--param", "nope=1"],
            "`--param nope`: neither a parameter of sampler `ancestral` (none) nor a param of process `digress` (mX, mE)",
        ),
        (
            &digress,
            vec!["--param", "mX=0.5,0.5"],
            "param `mX` is vec<4>: give 4 values, not 2",
        ),
        (
            &digress,
            vec!["--param", "mE=0.5,0.5,0.5,0.5"],
            "param `mE` is a probability vector (its default sums to 1): give values >= 0 that sum to 1",
        ),
        (
            &digress,
            vec!["--param", "mX=1.5,-0.5,0,0"],
            "param `mX` is a probability vector",
        ),
        (
            &digress,
            vec!["--param", "mX=1,x,0,0"],
            "`--param mX=1,x,0,0`: `x` is not a number",
        ),
        (
            &digress,
            vec!["--param", &missing],
            "not a number, comma-separated numbers or a readable .npy file",
        ),
        (
            &digress,
            vec!["--param", "mX"],
            "`--param mX`: expected NAME=VALUE",
        ),
        (
            &digress,
            vec!["--sampler", "nope", "--param", "mX=1,0,0,0"],
            "no sampler `nope` (samplers of `digress`: ancestral)",
        ),
        (
            &ddpm,
            vec!["--process", "ddpm_cosine", "--sampler", "ddim", "--param", "eta=1,2"],
            "`--param eta=1,2`: a sampler parameter is one number",
        ),
        (
            &ddpm,
            vec!["--process", "ddpm_cosine", "--sampler", "ddim", "--param", "mX=1"],
            "neither a parameter of sampler `ddim` (steps, eta) nor a param of process `ddpm_cosine` (none)",
        ),
    ] {
        let mut all = vec!["sample", spec.as_str(), "--data", "community-small"];
        all.extend(args);
        let (code, _, err) = diffc(&all);
        assert_eq!(code, Some(2), "{all:?}: {err}");
        assert!(err.contains(wants), "{all:?}: {err}");
    }
}

/// `diffc eval --param` also takes a `vec` param as comma-separated values, equal to the same
/// values from a `.npy` file.
#[test]
fn eval_takes_comma_separated_params() {
    let spec = spec_path("digress.diff");
    let (code, out, err) = diffc(&[
        "eval",
        &spec,
        "--entry",
        "prior.X",
        "--set",
        "batch=2",
        "--set",
        "n=3",
        "--param",
        "mX=0,0,0,1",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("X_T: shape [2, 3] [3, 3, 3, 3, 3, 3]"),
        "{out}"
    );
    let (code, _, err) = diffc(&[
        "eval", &spec, "--entry", "prior.X", "--set", "batch=2", "--set", "n=3", "--param",
        "mX=0,0,1",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("param `mX` is vec<4>: give 4 values, not 3"),
        "{err}"
    );
}

/// A `.npy` file of `uint32` (`'<u4'`, the C library's class type), as numpy writes it.
fn save_u4(name: &str, shape: &str, values: &[u32]) -> String {
    let values: Vec<i128> = values.iter().map(|v| i128::from(*v)).collect();
    save_ints(name, "<u4", shape, &values)
}

/// Class inputs as `uint32` are read as classes, their range checked as any integer input's;
/// the same classes as `int64` give the same result.
#[test]
fn eval_reads_uint32_classes() {
    use diffc::npy::{Array, Data};
    let spec = spec_path("d3pm.diff");
    let run = |x0: &str| {
        diffc(&[
            "eval",
            &spec,
            "--process",
            "d3pm_uniform",
            "--entry",
            "forward",
            "--in",
            &format!("x_0={x0}"),
            "--set",
            "t=3",
            "--seed",
            "5",
        ])
    };
    let u4 = save_u4("classes_u4.npy", "(2, 3)", &[0, 1, 26, 5, 4, 3]);
    let (code, out_u4, err) = run(&u4);
    assert_eq!(code, Some(0), "{err}");
    assert!(out_u4.contains("x_t: shape [2, 3]"), "{out_u4}");
    let i8 = save(
        "classes_i8.npy",
        &Array {
            shape: vec![2, 3],
            data: Data::I64(vec![0, 1, 26, 5, 4, 3]),
        },
    );
    let (code, out_i8, err) = run(&i8);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out_u4, out_i8);
    // Out of range: 27 classes, so 27 is refused, and so is a uint32 beyond any int32.
    for (name, bad, shown) in [
        ("classes_27.npy", 27u32, "27"),
        ("classes_max.npy", u32::MAX, "4294967295"),
    ] {
        let path = save_u4(name, "(1, 2)", &[0, bad]);
        let (code, _, err) = run(&path);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains(&format!(
                "holds class {shown} at flat index 1, outside 0..26"
            )),
            "{err}"
        );
    }
}

/// A grid whose step count evaluates outside 1..=10^6 is named in the error, with the
/// parameters it was evaluated at.
#[test]
fn a_grid_without_steps_is_named_in_the_error() {
    let path = temp_spec(
        "karras_minus_one.diff",
        "process vp { const b0 = 0.1  const b1 = 20  dim d  field x : real[d]  time t : [1e-3, 1]
  schedule alpha(t) = exp(-0.25 * t^2 * (b1 - b0) - 0.5 * t * b0)
  forward x_t | x_0 ~ Normal(alpha(t) * x_0, 1 - alpha(t)^2)
  prior x_T ~ Normal(0, 1)
  network eps_hat(x_t, t) -> eps(x)
  sampler heun(steps = 10) { grid = karras(steps - 1, 7)  step { x = x - 0 * eps_hat(x, t).x0 } } }
",
    );
    let (code, _, err) = diffc(&["check", &path]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = diffc(&[
        "sample", &path, "--data", "moons", "--steps", "1", "--count", "4",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "sampler `heun`: the grid `karras(steps - 1, 7)` has 0 steps at steps = 1, but the number of steps must be a whole number from 1 to 10^6"
        ),
        "{err}"
    );
    let (code, _, err) = diffc(&[
        "sample", &path, "--data", "moons", "--steps", "2", "--count", "4",
    ]);
    assert_eq!(code, Some(0), "{err}");
}

/// `diffc check` says what it checked, one line per file (each process's schedules, entry points
/// and samplers); JSON output stays diagnostics only, and a file with errors gets no such line.
#[test]
fn check_prints_what_it_checked() {
    let edge = spec_path("edge.diff");
    let ddpm = spec_path("ddpm.diff");
    let (code, out, err) = diffc(&["check", &edge, &ddpm]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    // Entry points as `eval --list` lists them.
    let n = |file: &str, process: &str| diffc::entries::entries(&common::spec(file, process)).len();
    let schedules = |file: &str, process: &str| common::spec(file, process).schedules.len();
    assert_eq!(
        lines,
        [
            format!(
                "{edge}: ok, 2 processes: edge ({} schedules, {} entry points, 1 sampler), edge_cosine ({} schedules, {} entry points, 1 sampler)",
                schedules("edge.diff", "edge"),
                n("edge.diff", "edge"),
                schedules("edge.diff", "edge_cosine"),
                n("edge.diff", "edge_cosine")
            ),
            format!(
                "{ddpm}: ok, 3 processes: ddpm_linear (5 schedules, {} entry points, 3 samplers), ddpm_cosine (4 schedules, {} entry points, 2 samplers), ddpm_cfg (3 schedules, {} entry points, 2 samplers)",
                n("ddpm.diff", "ddpm_linear"),
                n("ddpm.diff", "ddpm_cosine"),
                n("ddpm.diff", "ddpm_cfg")
            ),
        ]
    );
    let (code, out, _) = diffc(&["check", "--message-format", "json", &edge]);
    assert_eq!(code, Some(0));
    assert_eq!(out, "");
    let bad = temp_spec("bad_summary.diff", BAD);
    let (code, out, _) = diffc(&["check", "--color", "never", &edge, &bad]);
    assert_eq!(code, Some(1));
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with(&format!("{edge}: ok")), "{out}");
}

/// `diffc sweep` on points: `radius`, a property of the training set, is printed once under
/// the table, neither a column nor a plot (it was a flat line in every sweep).
#[test]
fn sweep_leaves_the_constant_radius_out_of_columns_and_plots() {
    let dir = std::env::temp_dir().join(format!("diffc-cli-sweep-r-{}", std::process::id()));
    let out = dir.to_string_lossy().into_owned();
    let spec = spec_path("dpm_solver.diff");
    let (code, stdout, stderr) = diffc(&[
        "sweep",
        &spec,
        "--data",
        "moons",
        "--samplers",
        "dpmpp_2m",
        "--steps",
        "2,3",
        "--count",
        "8",
        "--out",
        &out,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[1].contains("energy"), "{stdout}");
    assert!(!lines[1].contains("radius"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("sweep.json")).unwrap()).unwrap();
    let points = json["points"].as_array().unwrap();
    let radius: Vec<f64> = points
        .iter()
        .map(|p| p["scores"]["radius"].as_f64().unwrap())
        .collect();
    assert_eq!(radius.len(), 2);
    assert_eq!(radius[0], radius[1], "the radius depends on the data only");
    let note = format!(
        "radius = {:.6}: a property of the training set, the same in every run",
        radius[0]
    );
    assert!(lines.contains(&note.as_str()), "{stdout}");
    assert!(!dir.join("sweep_radius.png").exists());
    for score in ["inside", "mean_nearest", "energy"] {
        assert!(dir.join(format!("sweep_{score}.png")).exists(), "{score}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Continuous BFN's flow is the authors' at t = 0 (γ = 0, so μ = 0 whatever the data): the
/// exact denoiser's first call, at t = 0, weighs every training point the same, and the
/// original sampler runs from there on both backends.
#[test]
fn sample_runs_continuous_bfn_from_its_degenerate_start() {
    let spec = spec_path("bfn_continuous.diff");
    for backend in ["interp", "cpu"] {
        let (code, stdout, stderr) = diffc(&[
            "sample",
            &spec,
            "--data",
            "moons",
            "--sampler",
            "bfn",
            "--steps",
            "5",
            "--count",
            "8",
            "--backend",
            backend,
        ]);
        assert_eq!(code, Some(0), "{backend}: {stderr}");
        assert!(stdout.contains("energy"), "{backend}: {stdout}");
    }
}

/// A `[xs.len() / 2, 2]` state `xs` and a zero ε̂ of its shape, saved as `{prefix}_x.npy` and
/// `{prefix}_e.npy`: their paths.
fn state_and_zero_eps(prefix: &str, xs: Vec<f32>) -> (String, String) {
    let shape = vec![xs.len() / 2, 2];
    let e = save(
        &format!("{prefix}_e.npy"),
        &diffc::npy::Array {
            shape: shape.clone(),
            data: diffc::npy::Data::F32(vec![0.0; xs.len()]),
        },
    );
    let x = save(
        &format!("{prefix}_x.npy"),
        &diffc::npy::Array {
            shape,
            data: diffc::npy::Data::F32(xs),
        },
    );
    (x, e)
}

/// `diffc eval` of `ddpm_linear`'s DDIM step from t = 500 to s = 480 on the state saved at `x`
/// with ε̂ saved at `e`: exit code, stdout and stderr. With ε̂ = 0 the step scales x by
/// sqrt(ᾱ_480 / ᾱ_500) > 1.
fn ddim_step(x: &str, e: &str) -> (Option<i32>, String, String) {
    diffc(&[
        "eval",
        &spec_path("ddpm.diff"),
        "--process",
        "ddpm_linear",
        "--sampler",
        "ddim",
        "--entry",
        "step",
        "--in",
        &format!("x={x}"),
        "--in",
        &format!("eps_hat.x={e}"),
        "--set",
        "t=500",
        "--set",
        "s=480",
    ])
}

/// Without `--out`, a sampler step prints each output's first values as an entry does (issue 19,
/// item 10: it printed shapes only), and a multistep step its `prev.NAME` too.
#[test]
fn a_step_summary_prints_values() {
    let (x, e) = state_and_zero_eps("summary", vec![0.5, -0.25]);
    let (code, out, err) = ddim_step(&x, &e);
    assert_eq!(code, Some(0), "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("x: shape [1, 2] ["))
        .unwrap_or_else(|| panic!("{out}"));
    let first: f32 = line
        .split('[')
        .nth(2)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(first > 0.5 && first < 0.6, "{line}");
    let solver = spec_path("dpm_solver.diff");
    let (code, out, err) = diffc(&[
        "eval",
        &solver,
        "--sampler",
        "dpmpp_2m",
        "--entry",
        "step",
        "--in",
        &format!("x={x}"),
        "--in",
        &format!("eps_hat.x={e}"),
        "--set",
        "t=0.5",
        "--set",
        "s=0.4",
        "--set",
        "k=0",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.lines().any(|l| l.starts_with("prev.d: shape [1, 2] [")),
        "{out}"
    );
}

/// A continuous time's ends as written (`[1e-3, 0.999]`, `[0.7, 1]`), given either as written or
/// as the f32 nearest to them (which lies just outside), run on every backend: an entry at each
/// end and a step between the ends, each as at the written end. A time truly outside, even by
/// one f32 step, exits 2.
#[test]
fn continuous_time_ends_are_accepted_as_written() {
    use diffc::npy::{Array, Data};
    let xs = save(
        "ends_x.npy",
        &Array {
            shape: vec![2, 3],
            data: Data::F32(vec![0.5, -1.0, 2.0, 0.25, 1.5, -0.75]),
        },
    );
    let mut backends = vec!["interp", "cpu"];
    if common::gpu::gpu().is_some() {
        backends.push("gpu");
    }
    let data = |f: &str| format!("{}/tests/data/{f}", env!("CARGO_MANIFEST_DIR"));
    // (spec, lower end, upper end, times outside)
    let cases = [
        (
            "time_ends.diff",
            1e-3,
            0.999,
            ["1", "0.0009999", "0.99900007"],
        ),
        (
            "time_end_low.diff",
            0.7,
            1.0,
            ["0.5", "0.69999993", "1.0000001"],
        ),
    ];
    for (file, lo, hi, outside) in cases {
        let spec = data(file);
        for backend in &backends {
            let run = |args: &[&str]| {
                let mut all = vec!["eval", spec.as_str(), "--backend", backend];
                all.extend_from_slice(args);
                diffc(&all)
            };
            let forward = |t: &str| {
                run(&[
                    "--entry",
                    "forward",
                    "--in",
                    &format!("x_0={xs}"),
                    "--set",
                    &format!("t={t}"),
                ])
            };
            let step = |t: &str, s: &str| {
                run(&[
                    "--sampler",
                    "euler",
                    "--entry",
                    "step",
                    "--in",
                    &format!("x={xs}"),
                    "--in",
                    &format!("eps_hat.x={xs}"),
                    "--set",
                    &format!("t={t}"),
                    "--set",
                    &format!("s={s}"),
                ])
            };
            let f32_of = |x: f64| format!("{}", x as f32 as f64);
            assert_ne!(f32_of(lo), format!("{lo}"), "{file}: an end that is no f32");
            for end in [lo, hi] {
                let (code, want, err) = forward(&format!("{end}"));
                assert_eq!(code, Some(0), "{file} {backend} t = {end}: {err}");
                let (code, got, err) = forward(&f32_of(end));
                assert_eq!(code, Some(0), "{file} {backend} t = {}: {err}", f32_of(end));
                assert_eq!(got, want, "{file} {backend}: the f32 end is the end");
            }
            let (code, want, err) = step(&format!("{hi}"), &format!("{lo}"));
            assert_eq!(code, Some(0), "{file} {backend} step: {err}");
            let (code, got, err) = step(&f32_of(hi), &f32_of(lo));
            assert_eq!(code, Some(0), "{file} {backend} step at f32 ends: {err}");
            assert_eq!(got, want, "{file} {backend}: a step between the f32 ends");
            for t in outside {
                let (code, _, err) = forward(t);
                assert_eq!(code, Some(2), "{file} {backend} t = {t}");
                assert!(err.contains("is outside the process's time"), "{err}");
                let (code, _, err) = step(t, &format!("{lo}"));
                assert_eq!(code, Some(2), "{file} {backend} step from {t}");
                assert!(err.contains("is outside the process's time"), "{err}");
            }
        }
    }
}

/// The data lines of an `explain --table` text: each a time and its values.
fn table_rows(text: &str) -> Vec<Vec<f64>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(' ').map(|x| x.parse().unwrap()).collect())
        .collect()
}

/// `diffc explain --table NAME` prints every value of a schedule in f64, each reading back as
/// the checker's own value bit for bit: every discrete time (with the step below the domain
/// where the formula defines it), evenly spaced continuous times, a matrix as K·K columns.
#[test]
fn explain_prints_a_schedules_full_table() {
    let ddpm = spec_path("ddpm.diff");
    let (code, out, err) = diffc(&[
        "explain",
        &ddpm,
        "--process",
        "ddpm_linear",
        "--table",
        "alpha_bar",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.lines().nth(2) == Some("# t alpha_bar"),
        "the column names: {out}"
    );
    let rows = table_rows(&out);
    assert_eq!(rows.len(), 1001);
    let p = common::spec("ddpm.diff", "ddpm_linear");
    let s = p.schedules.iter().find(|s| s.name == "alpha_bar").unwrap();
    let mut closed = 1.0f64;
    for (t, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), 2);
        assert_eq!(row[0], t as f64);
        let want = s.table[t].as_ref().unwrap().as_real().unwrap();
        assert_eq!(row[1].to_bits(), want.to_bits(), "t = {t}");
        // And against the closed form: ᾱ_t = Π_{i≤t} (1 - β_i), β linear from 1e-4 to 0.02.
        if t > 0 {
            closed *= 1.0 - (1e-4 + (0.02 - 1e-4) * (t - 1) as f64 / 999.0);
        }
        assert!(
            (row[1] - closed).abs() <= 1e-14,
            "t = {t}: {} {closed}",
            row[1]
        );
    }
    // Continuous time: --points evenly spaced times, both ends included.
    let vp = spec_path("vp_sde.diff");
    let (code, out, err) = diffc(&[
        "explain",
        &vp,
        "--process",
        "vp_sde",
        "--table",
        "alpha",
        "--points",
        "5",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let rows = table_rows(&out);
    assert_eq!(rows.len(), 5);
    for (i, row) in rows.iter().enumerate() {
        let t = 1e-3 + (1.0 - 1e-3) * i as f64 / 4.0;
        assert_eq!(row[0], t);
        let want = (-0.25 * t * t * (20.0 - 0.1) - 0.5 * t * 0.1).exp();
        assert!((row[1] - want).abs() <= 1e-15, "t = {t}: {} {want}", row[1]);
    }
    let (code, out, _) = diffc(&["explain", &vp, "--process", "vp_sde", "--table", "alpha"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        table_rows(&out).len(),
        1001,
        "the checker's points by default"
    );
    // A matrix: one line per time, K·K entries in row-major order; each row of Q̄ sums to 1.
    let d3pm = spec_path("d3pm.diff");
    let (code, out, err) = diffc(&[
        "explain",
        &d3pm,
        "--process",
        "d3pm_uniform",
        "--table",
        "Qbar",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let header = out.lines().nth(2).unwrap();
    assert!(
        header.starts_with("# t Qbar[0,0] Qbar[0,1] ") && header.ends_with(" Qbar[26,26]"),
        "{header}"
    );
    let rows = table_rows(&out);
    assert_eq!(rows.len(), 1001);
    for row in &rows {
        assert_eq!(row.len(), 1 + 27 * 27);
        for i in 0..27 {
            let sum: f64 = row[1 + 27 * i..1 + 27 * (i + 1)].iter().sum();
            assert!(
                (sum - 1.0).abs() < 1e-12,
                "t = {}: row {i} sums to {sum}",
                row[0]
            );
        }
    }
    assert_eq!(rows[0][1], 1.0, "Q̄ at t = 0 is the identity");
}

/// `explain --table` refuses what it cannot print with exit 2: an unknown schedule (listing
/// the schedules), a name two processes share without --process, --points in discrete time
/// or outside 2..=10^6.
#[test]
fn explain_table_rejects_bad_requests_with_exit_2() {
    let ddpm = spec_path("ddpm.diff");
    let vp = spec_path("vp_sde.diff");
    let cases: [(&[&str], &str); 5] = [
        (
            &["explain", &ddpm, "--process", "ddpm_cosine", "--table", "abar"],
            "no schedule `abar` in process `ddpm_cosine` (schedules: beta, alpha_bar, alpha, sigma)",
        ),
        (
            &["explain", &ddpm, "--table", "alpha_bar"],
            "schedule `alpha_bar` is in processes ddpm_linear, ddpm_cosine: pick one with --process",
        ),
        (
            &["explain", &ddpm, "--process", "ddpm_linear", "--table", "beta", "--points", "10"],
            "--points is for continuous time",
        ),
        (
            &["explain", &vp, "--process", "vp_sde", "--table", "alpha", "--points", "1"],
            "--points 1: give 2 to 1000000 points",
        ),
        (
            &["explain", &vp, "--process", "vp_sde", "--table", "alpha", "--points", "1000001"],
            "--points 1000001: give 2 to 1000000 points",
        ),
    ];
    for (args, message) in cases {
        let (code, out, err) = diffc(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert_eq!(out, "", "{args:?}");
    }
    let (code, _, err) = diffc(&["explain", &ddpm, "--points", "3"]);
    assert_eq!(code, Some(2), "--points needs --table: {err}");
}

/// An `.npy` file of the given integer dtype (`'<u8'`, `'|i1'`, …) holding `values`.
fn save_ints(name: &str, descr: &str, shape: &str, values: &[i128]) -> String {
    let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    let size: usize = descr[2..].parse().unwrap();
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes()[..size]);
    }
    let dir = std::env::temp_dir().join(format!("diffc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

/// Class inputs in every integer dtype numpy writes give the same result; a class out of range
/// (negative in a signed dtype, 27 of 27 classes, a uint64 past int64) is an error with exit 2.
#[test]
fn eval_reads_classes_in_every_integer_dtype() {
    let spec = spec_path("d3pm.diff");
    let run = |x0: &str| {
        diffc(&[
            "eval",
            &spec,
            "--process",
            "d3pm_uniform",
            "--entry",
            "forward",
            "--in",
            &format!("x_0={x0}"),
            "--set",
            "t=300",
            "--seed",
            "5",
        ])
    };
    let classes = [0, 1, 26, 5, 4, 3];
    let mut first: Option<String> = None;
    for descr in ["|u1", "<u2", "<u4", "<u8", "|i1", "<i2", "<i4", "<i8"] {
        let name = format!("classes_{}.npy", &descr[1..]);
        let (code, out, err) = run(&save_ints(&name, descr, "(2, 3)", &classes));
        assert_eq!(code, Some(0), "{descr}: {err}");
        match &first {
            None => first = Some(out),
            Some(want) => assert_eq!(&out, want, "{descr}"),
        }
    }
    for (descr, bad, message) in [
        ("|i1", -1i128, "`x_0` holds class -1 at flat index 1, outside 0..26"),
        ("<i2", -300, "`x_0` holds class -300 at flat index 1, outside 0..26"),
        ("<u8", 27, "`x_0` holds class 27 at flat index 1, outside 0..26"),
        (
            "<u8",
            1 << 63,
            "uint64 element at flat index 1 is 9223372036854775808, more than an int64 holds (2^63 - 1)",
        ),
    ] {
        let name = format!("classes_bad_{}_{bad}.npy", &descr[1..]);
        let (code, _, err) = run(&save_ints(&name, descr, "(1, 2)", &[0, bad]));
        assert_eq!(code, Some(2), "{descr} {bad}: {err}");
        assert!(err.contains(message), "{descr} {bad}: {err}");
    }
}

/// Past six reals, an output's summary adds its min, mean and max, for an entry and a sampler
/// step alike.
#[test]
fn a_summary_of_many_reals_has_min_mean_max() {
    let xs: Vec<f32> = (0..16).map(|i| i as f32 / 8.0).collect();
    let ddpm = spec_path("ddpm.diff");
    let stats = |line: &str| -> [f64; 3] {
        let words: Vec<&str> = line.rsplit("] ").next().unwrap().split(' ').collect();
        assert_eq!(
            (words.len(), words[0], words[2], words[4]),
            (6, "min", "mean", "max"),
            "{line}"
        );
        [1, 3, 5].map(|i| words[i].parse().unwrap())
    };
    let (x, e) = state_and_zero_eps("stats", xs.clone());
    let (code, out, err) = ddim_step(&x, &e);
    assert_eq!(code, Some(0), "{err}");
    // The step scales x by one factor c > 1: min 0, mean c·15/16, max c·15/8.
    let line = out.lines().find(|l| l.starts_with("x: ")).unwrap();
    let [lo, mean, hi] = stats(line);
    let c = hi / (15.0 / 8.0);
    assert!(c > 1.0 && c < 1.2, "{line}");
    assert_eq!(lo, 0.0, "{line}");
    assert!((mean - c * 15.0 / 16.0).abs() < 1e-6, "{line}");
    let (code, out, err) = diffc(&[
        "eval",
        &ddpm,
        "--process",
        "ddpm_linear",
        "--entry",
        "forward",
        "--in",
        &format!("x_0={x}"),
        "--set",
        "t=500",
    ]);
    assert_eq!(code, Some(0), "{err}");
    for name in ["x_t: ", "eps: "] {
        let line = out.lines().find(|l| l.starts_with(name)).unwrap();
        let [lo, mean, hi] = stats(line);
        assert!(lo <= mean && mean <= hi, "{line}");
    }
    // Six values or fewer are all printed, with no statistics.
    let (_, out, _) = diffc(&[
        "eval",
        &ddpm,
        "--process",
        "ddpm_linear",
        "--entry",
        "forward",
        "--in",
        &format!(
            "x_0={}",
            save(
                "stats_small.npy",
                &diffc::npy::Array {
                    shape: vec![1, 2],
                    data: diffc::npy::Data::F32(vec![0.5, 1.0]),
                },
            )
        ),
        "--set",
        "t=500",
    ]);
    assert!(!out.contains(" min "), "{out}");
}

/// The folders `diffc data` and `diffc sample --out` write are read by `diffc metrics` (and
/// `sample --data`) as they are, through their `graphs` folders: a training set written by
/// `data` scores against itself with no distance, and generated samples against it. A binary
/// file in a folder of edge lists is refused with what to do instead.
#[test]
fn metrics_reads_the_folders_data_and_sample_write() {
    let dir = std::env::temp_dir().join(format!("diffc-data-folders-{}", std::process::id()));
    let data = dir.join("train");
    let d = data.to_str().unwrap();
    let (code, _, err) = diffc(&["data", "community-small", "--count", "10", "--out", d]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = diffc(&["metrics", d, d, "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["generated"], 10, "{out}");
    for m in ["degree", "clustering", "orbit", "spectral"] {
        assert_eq!(json["metrics"][m], 0.0, "{m}: {out}");
    }
    let samples = dir.join("samples");
    let s = samples.to_str().unwrap();
    let (code, _, err) = diffc(&[
        "sample",
        &spec_path("digress.diff"),
        "--data",
        d,
        "--count",
        "4",
        "--out",
        s,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = diffc(&["metrics", s, d, "--train", d, "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (json["generated"].as_u64(), json["reference"].as_u64()),
        (Some(4), Some(10)),
        "{out}"
    );
    // A binary file among edge lists.
    let mixed = dir.join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    std::fs::copy(data.join("adjacency.npy"), mixed.join("adjacency.npy")).unwrap();
    let (code, _, err) = diffc(&["metrics", mixed.to_str().unwrap(), d]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("adjacency.npy` is not an edge list (not text)"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A grid whose step count is out of range at the sampler's defaults is refused by the checker
/// with the count and the parameters it read, at the count's expression.
#[test]
fn the_checker_names_a_grid_without_steps_and_its_parameters() {
    let path = temp_spec(
        "karras_default_one.diff",
        "process vp { const b0 = 0.1  const b1 = 20  dim d  field x : real[d]  time t : [1e-3, 1]
  schedule alpha(t) = exp(-0.25 * t^2 * (b1 - b0) - 0.5 * t * b0)
  forward x_t | x_0 ~ Normal(alpha(t) * x_0, 1 - alpha(t)^2)
  prior x_T ~ Normal(0, 1)
  network eps_hat(x_t, t) -> eps(x)
  sampler heun(steps = 1, rho = 7) { grid = karras(steps - 1, rho)  step { x = x - 0 * eps_hat(x, t).x0 } } }
",
    );
    let (code, _, err) = diffc(&["check", "--color", "never", &path]);
    assert_eq!(code, Some(1), "{err}");
    for want in [
        "error[E0700]: the `karras` grid has 0 steps, but the number of steps must be a whole number from 1 to 10^6",
        "karras_default_one.diff:6:",
        "^^^^^^^^^ 0 steps",
        "= evaluated with the sampler's defaults: steps = 1",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    let note = err
        .lines()
        .find(|l| l.contains("= evaluated with"))
        .unwrap();
    assert!(
        !note.contains("rho"),
        "only the parameters the count reads: {note}"
    );
}

/// `sample --cond`: a label outside the data's, a diffused field, a class that is not a whole
/// number, an unknown field and a malformed option are refused with exit 2 and a message that
/// names them; points without labels cannot fill a label field.
#[test]
fn conditions_on_the_command_line_are_checked() {
    let spec = format!("{}/specs/ddpm.diff", env!("CARGO_MANIFEST_DIR"));
    let run = |data: &str, cond: &[&str]| {
        let mut args = vec![
            "sample",
            spec.as_str(),
            "--process",
            "ddpm_cfg",
            "--sampler",
            "ddim",
            "--count",
            "4",
            "--steps",
            "2",
            "--data",
            data,
        ];
        for c in cond {
            args.extend(["--cond", c]);
        }
        diffc(&args)
    };
    for (data, cond, want) in [
        (
            "moons",
            "y=5",
            "no training item has `y` = 5 (the data's values: 0, 1)",
        ),
        ("moons", "x=1", "`x` is diffused"),
        (
            "moons",
            "y=0.5",
            "a class is a whole number from 0 to 7, not 0.5",
        ),
        ("moons", "q=1", "has no field `q` (fields: x, y)"),
        ("moons", "y", "write FIELD=VALUE"),
        ("moons", "y=a", "`a` is not a number"),
        (
            "checkerboard",
            "y=0",
            "reads the class label `y`, and these points have none",
        ),
    ] {
        let (code, _, err) = run(data, &[cond]);
        assert_eq!(code, Some(2), "{cond}: {err}");
        assert!(err.contains(want), "{cond}: {err}");
    }
    let (code, out, err) = run("moons", &["y=1"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("label_agreement"), "{out}");
}

/// A step of a discrete process between two whole times (diffusers' Euler with "linspace"
/// spacing): `ddpm_linear.euler` reads σ with `interp` and runs at t = 946.42108 on every CPU
/// backend; a step that reads a schedule plainly there, an entry at such a time, and the exact
/// denoiser (which needs the marginal there) each say why not, with exit code 2.
#[test]
fn a_step_between_whole_times_reads_its_schedules_with_interp() {
    use diffc::npy::{Array, Data};
    let x: Vec<f32> = vec![0.5, -1.25, 2.0];
    let e: Vec<f32> = vec![0.1, 0.2, -0.3];
    let xs = save(
        "euler_x.npy",
        &Array {
            shape: vec![1, 3],
            data: Data::F32(x.clone()),
        },
    );
    let es = save(
        "euler_e.npy",
        &Array {
            shape: vec![1, 3],
            data: Data::F32(e.clone()),
        },
    );
    let spec = spec_path("ddpm.diff");
    // σ(u) = sqrt((1 − ᾱ)/ᾱ) between whole times of our t = index + 1, as np.interp draws it.
    let mut ac = 1.0f64;
    let table: Vec<f64> = (1..=1000)
        .map(|t| {
            let beta = 1e-4 + (0.02 - 1e-4) * (t - 1) as f64 / 999.0;
            ac *= 1.0 - beta;
            ((1.0 - ac) / ac).sqrt()
        })
        .collect();
    let sig = |t: f64| {
        let j = t.floor() as usize;
        (table[j] - table[j - 1]) * (t - j as f64) + table[j - 1]
    };
    let (t, s) = (946.42108f64, 925.8f64);
    for backend in ["interp", "cpu"] {
        let dir =
            std::env::temp_dir().join(format!("diffc-euler-{backend}-{}", std::process::id()));
        let out = dir.to_string_lossy().into_owned();
        let (code, _, err) = diffc(&[
            "eval",
            &spec,
            "--process",
            "ddpm_linear",
            "--entry",
            "step.euler",
            "--set",
            &format!("t={t}"),
            "--set",
            &format!("s={s}"),
            "--in",
            &format!("x={xs}"),
            "--in",
            &format!("eps_hat.x={es}"),
            "--backend",
            backend,
            "--out",
            &out,
        ]);
        assert_eq!(code, Some(0), "{backend}: {err}");
        let got = diffc::npy::read_file(&dir.join("x.npy"))
            .unwrap()
            .data
            .to_f64_vec();
        let (st, ss) = (sig(t), sig(s));
        for i in 0..3 {
            let want = (x[i] as f64 * (st * st + 1.0).sqrt() + (ss - st) * e[i] as f64)
                / (ss * ss + 1.0).sqrt();
            assert!(
                (got[i] - want).abs() < 2e-5 * (1.0 + want.abs()),
                "{backend}: {} vs {want}",
                got[i]
            );
        }
    }
    let at = |entry: &str, inputs: &[String]| {
        let mut args: Vec<&str> = vec![
            "eval",
            &spec,
            "--process",
            "ddpm_linear",
            "--entry",
            entry,
            "--set",
            "t=946.5",
        ];
        if entry.starts_with("step.") {
            args.extend(["--set", "s=925"]);
        }
        for i in inputs {
            args.extend(["--in", i.as_str()]);
        }
        diffc(&args)
    };
    let (code, _, err) = at("step.ddim", &[format!("x={xs}"), format!("eps_hat.x={es}")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("`sigma` is a discrete schedule, read at t = 946.5; interp(sigma(…))"),
        "{err}"
    );
    let (code, _, err) = at("forward", &[format!("x_0={xs}")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("time is discrete here, a whole number"),
        "{err}"
    );
    let (code, _, err) = diffc(&[
        "sample",
        &spec,
        "--process",
        "ddpm_linear",
        "--sampler",
        "euler",
        "--data",
        "moons",
        "--count",
        "4",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("between two whole times of discrete `t`, where the process has no marginal"),
        "{err}"
    );
}

/// A categorical draw from given probabilities (a network's class probabilities) in a step,
/// with its uniforms supplied as `u_x`: the first class whose cumulative probability passes
/// u · Σp, on every CPU backend.
#[test]
fn a_step_draws_a_class_from_given_probabilities_with_supplied_uniforms() {
    use diffc::npy::{Array, Data};
    let spec = temp_spec(
        "catdraw.diff",
        "process p {
  const T = 10
  const K = 4
  dim d
  field x : cat<K>[d]
  time t : 1..T
  schedule beta(t) in (0, 1) = linspace(0.1, 0.2)
  schedule ab(t) in (0, 1] decreasing = cumprod(1 - beta(t))
  forward x_t | x_0 ~ Categorical(ab(t) * onehot(x_0) + (1 - ab(t)) * ones(K) / K)
  prior x_T ~ Categorical(ones(K) / K)
  network net(x_t, t) -> probs(x)
  sampler s {
    grid = all
    step {
      let e = net(x, t)
      x ~ Categorical(e)
    }
  }
}
",
    );
    let x = save(
        "catdraw_x.npy",
        &Array {
            shape: vec![1, 5],
            data: Data::I64(vec![0; 5]),
        },
    );
    let probs = save(
        "catdraw_p.npy",
        &Array {
            shape: vec![1, 5, 4],
            data: Data::F32([0.1f32, 0.2, 0.3, 0.4].repeat(5)),
        },
    );
    let u = save(
        "catdraw_u.npy",
        &Array {
            shape: vec![1, 5],
            data: Data::F32(vec![0.05, 0.25, 0.59, 0.61, 0.95]),
        },
    );
    for backend in ["interp", "cpu"] {
        let dir =
            std::env::temp_dir().join(format!("diffc-catdraw-{backend}-{}", std::process::id()));
        let (code, _, err) = diffc(&[
            "eval",
            &spec,
            "--entry",
            "step.s",
            "--set",
            "t=5",
            "--set",
            "s=4",
            "--in",
            &format!("x={x}"),
            "--in",
            &format!("net.x={probs}"),
            "--in",
            &format!("u_x={u}"),
            "--backend",
            backend,
            "--out",
            &dir.to_string_lossy(),
        ]);
        assert_eq!(code, Some(0), "{backend}: {err}");
        let got = diffc::npy::read_file(&dir.join("x.npy"))
            .unwrap()
            .data
            .to_f64_vec();
        assert_eq!(got, vec![0.0, 1.0, 2.0, 3.0, 3.0], "{backend}");
    }
}
