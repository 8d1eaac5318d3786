//! Command lines for the built `diffc`: the CLI area (every subcommand, options with extreme
//! numbers, empty strings, paths that do not exist, folders and special files, on the shipped
//! specs) and the CLI share of the other areas (a generated spec checked, explained or built; an
//! `.npy` file given to `eval --in`, `--param`, `metrics` or `sample --data`; a graph file given
//! to `metrics` or `sample --data`).

use crate::files::{self, GraphKind};
use crate::spec::{self, Shape};
use rand::rngs::StdRng;
use rand::Rng;
use std::path::Path;

fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

/// Extreme values for numeric options.
pub const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "3",
    "-0",
    "0.5",
    "65536",
    "16777216",
    "16777217",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999",
    "1e308",
    "1e309",
    "-1e308",
    "1e-320",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "",
    " ",
    "0x10",
    "1_000",
    "١",
    "3 ",
];

/// One in `every` cases of the spec, npy and graph areas is a CLI run; the CLI area is all CLI.
pub fn is_cli(area: &str, index: u64, every: u64) -> bool {
    area == "cli" || (every > 0 && index % every == every - 1)
}

/// Shipped processes with their entries and samplers.
const PROCESSES: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "specs/ddpm.diff",
        "ddpm_linear",
        &[
            "forward",
            "log_q",
            "posterior",
            "prior",
            "loss.simple",
            "sample_t",
            "net_inputs.eps_hat",
            "terms.simple",
        ],
        &["ancestral", "ddim"],
    ),
    (
        "specs/d3pm.diff",
        "d3pm_uniform",
        &["forward", "log_q", "posterior", "prior", "loss.hybrid"],
        &["ancestral"],
    ),
    (
        "specs/digress.diff",
        "digress",
        &["forward", "prior", "posterior", "loss.ce", "log_q"],
        &["ancestral"],
    ),
    (
        "specs/flow_matching.diff",
        "flow_matching",
        &["forward", "prior", "loss.cfm"],
        &["euler", "midpoint", "euler_x0"],
    ),
    (
        "specs/edm.diff",
        "edm",
        &["forward", "prior", "sample_t.edm", "loss.edm"],
        &["heun", "euler", "stochastic"],
    ),
    (
        "specs/mdlm.diff",
        "mdlm",
        &["forward", "prior", "loss.nelbo"],
        &["ancestral"],
    ),
];

const DATASETS: &[&str] = &[
    "community-small",
    "grid",
    "sbm",
    "planar",
    "words",
    "moons",
    "gaussians8",
    "checkerboard",
    "swissroll",
    "nonesuch",
    "",
];

/// A path that is not an ordinary input: missing, a folder, a special file, empty.
fn odd_path(rng: &mut StdRng, dir: &Path) -> String {
    match rng.random_range(0..9) {
        0 => "/nonexistent/x.diff".into(),
        1 => dir.display().to_string(),
        2 => "/dev/zero".into(),
        3 => "/dev/null".into(),
        4 => {
            let p = dir.join("empty.diff");
            let _ = std::fs::write(&p, "");
            p.display().to_string()
        }
        5 => "/proc/self/status".into(),
        6 => String::new(),
        7 => "-".into(),
        _ => {
            let p = dir.join("binary.npy");
            let _ = std::fs::write(&p, [0x93u8, b'N', 0, 0xff, 7]);
            p.display().to_string()
        }
    }
}

fn out_path(rng: &mut StdRng, dir: &Path) -> String {
    match rng.random_range(0..8) {
        0 => "/dev/null".into(),
        1 => "/nonexistent/out".into(),
        2 => {
            let p = dir.join("a_file");
            let _ = std::fs::write(&p, "x");
            p.display().to_string()
        }
        3 => String::new(),
        4 => "/proc/self".into(),
        _ => dir.join("out").display().to_string(),
    }
}

fn number(rng: &mut StdRng) -> String {
    if rng.random_bool(0.6) {
        pick(rng, EXTREMES).to_string()
    } else {
        rng.random_range(0..12).to_string()
    }
}

/// Values inside the limits but large (2^16 or 2^24 graphs, steps or training items) are valid
/// requests whose work grows with them, not hostile input: counts are drawn from the extremes
/// outside the limits, or small.
fn count(rng: &mut StdRng) -> String {
    loop {
        let n = number(rng);
        if !["65536", "16777216"].contains(&n.as_str()) {
            return n;
        }
    }
}

fn spec_path(rng: &mut StdRng, dir: &Path) -> (String, usize) {
    let i = rng.random_range(0..PROCESSES.len());
    if rng.random_bool(0.08) {
        (odd_path(rng, dir), i)
    } else {
        (PROCESSES[i].0.to_string(), i)
    }
}

fn global(rng: &mut StdRng, args: &mut Vec<String>) {
    if rng.random_bool(0.1) {
        args.push("--threads".into());
        args.push(
            pick(
                rng,
                &[
                    "0",
                    "1",
                    "2",
                    "-1",
                    "65536",
                    "18446744073709551616",
                    "",
                    "x",
                ],
            )
            .to_string(),
        );
    }
    if rng.random_bool(0.2) {
        args.push("--message-format".into());
        args.push(pick(rng, &["json", "human", "xml", ""]).to_string());
    }
    if rng.random_bool(0.05) {
        args.push("--color".into());
        args.push(pick(rng, &["always", "never", "sometimes"]).to_string());
    }
}

fn sets(rng: &mut StdRng, args: &mut Vec<String>, names: &[&str]) {
    for _ in 0..rng.random_range(0..4) {
        let n = *pick(rng, names);
        args.push("--set".into());
        args.push(if rng.random_bool(0.05) {
            pick(rng, &["", "=", "batch", "batch==3", "=3"]).to_string()
        } else {
            format!("{n}={}", number(rng))
        });
    }
}

/// A command line over every subcommand with extreme values (the CLI area).
pub fn cli_args(rng: &mut StdRng, dir: &Path) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    global(rng, &mut a);
    let s = |a: &mut Vec<String>, x: &str| a.push(x.to_string());
    match rng.random_range(0..20) {
        0 => {
            s(&mut a, "check");
            for _ in 0..1 + rng.random_range(0..3) {
                let (p, _) = spec_path(rng, dir);
                a.push(p);
            }
        }
        1 | 2 => {
            s(&mut a, "explain");
            let (p, i) = spec_path(rng, dir);
            a.push(p);
            if rng.random_bool(0.7) {
                s(&mut a, "--process");
                a.push(PROCESSES[i].1.to_string());
            }
            match rng.random_range(0..4) {
                0 => {
                    s(&mut a, "--table");
                    a.push(
                        pick(
                            rng,
                            &[
                                "alpha_bar",
                                "beta",
                                "sigma",
                                "alpha",
                                "nonesuch",
                                "",
                                "Q",
                                "Qbar",
                            ],
                        )
                        .to_string(),
                    );
                    if rng.random_bool(0.7) {
                        s(&mut a, "--points");
                        a.push(number(rng));
                    }
                }
                1 => {
                    s(&mut a, "--plan");
                    if rng.random_bool(0.5) {
                        a.push(pick(rng, PROCESSES[i].2).to_string());
                    }
                }
                _ => {}
            }
        }
        3..=8 => {
            s(&mut a, "eval");
            let (p, i) = spec_path(rng, dir);
            let (_, proc_, entries, samplers) = PROCESSES[i];
            a.push(p);
            if rng.random_bool(0.9) {
                s(&mut a, "--process");
                a.push(proc_.to_string());
            }
            if rng.random_bool(0.1) {
                s(&mut a, "--list");
            } else if rng.random_bool(0.25) {
                s(&mut a, "--sampler");
                a.push(pick(rng, samplers).to_string());
                if rng.random_bool(0.6) {
                    s(&mut a, "--param");
                    a.push(format!(
                        "{}={}",
                        pick(rng, &["steps", "eta", "rho", "nonesuch"]),
                        number(rng)
                    ));
                }
            } else {
                s(&mut a, "--entry");
                a.push(if rng.random_bool(0.05) {
                    pick(rng, &["", "nonesuch", "loss.", "step."]).to_string()
                } else {
                    pick(rng, entries).to_string()
                });
            }
            sets(
                rng,
                &mut a,
                &["batch", "d", "n", "t", "s", "nonesuch", "batch", "batch"],
            );
            if rng.random_bool(0.3) {
                s(&mut a, "--seed");
                a.push(number(rng));
            }
            if rng.random_bool(0.4) {
                s(&mut a, "--backend");
                a.push(pick(rng, &["interp", "cpu", "cpu", "interp", "fpga", ""]).to_string());
            }
            if rng.random_bool(0.3) {
                s(&mut a, "--out");
                a.push(out_path(rng, dir));
            }
            if rng.random_bool(0.2) {
                s(&mut a, "--in");
                a.push(format!(
                    "{}={}",
                    pick(rng, &["x_0", "x_t", "t", "X_0", "E_0", "eps", "", "x"]),
                    odd_path(rng, dir)
                ));
            }
            if rng.random_bool(0.15) {
                s(&mut a, "--param");
                a.push(format!(
                    "{}={}",
                    pick(rng, &["mX", "mE", "m", ""]),
                    pick(
                        rng,
                        &[
                            "0.5,0.5",
                            "1",
                            "",
                            "NaN,1,1,1",
                            "1e308,0,0,0",
                            "0,0,0,0",
                            "-1,2,0,0",
                            "/dev/zero"
                        ]
                    )
                ));
            }
        }
        9 | 10 => {
            s(&mut a, "build");
            let (p, i) = spec_path(rng, dir);
            a.push(p);
            if rng.random_bool(0.5) {
                s(&mut a, "--process");
                a.push(PROCESSES[i].1.to_string());
            }
            s(&mut a, "--target");
            a.push(pick(rng, &["cpu", "wgsl", "wgsl", "cuda", ""]).to_string());
            s(&mut a, "-o");
            a.push(out_path(rng, dir));
        }
        11 | 12 => {
            s(&mut a, "data");
            a.push(pick(rng, DATASETS).to_string());
            s(&mut a, "--out");
            a.push(out_path(rng, dir));
            if rng.random_bool(0.8) {
                s(&mut a, "--count");
                a.push(count(rng));
            }
            if rng.random_bool(0.5) {
                s(&mut a, "--seed");
                a.push(number(rng));
            }
        }
        13..=16 => {
            let sweep = rng.random_bool(0.3);
            s(&mut a, if sweep { "sweep" } else { "sample" });
            let (p, i) = spec_path(rng, dir);
            let (_, proc_, _, samplers) = PROCESSES[i];
            a.push(p);
            s(&mut a, "--process");
            a.push(proc_.to_string());
            s(&mut a, "--data");
            a.push(if rng.random_bool(0.85) {
                pick(rng, DATASETS).to_string()
            } else {
                odd_path(rng, dir)
            });
            // Keep the ordinary share of runs short; the extreme values are what is tested.
            s(&mut a, "--count");
            a.push(if rng.random_bool(0.5) {
                "2".into()
            } else {
                count(rng)
            });
            s(&mut a, "--train-count");
            a.push(if rng.random_bool(0.5) {
                "8".into()
            } else {
                count(rng)
            });
            if sweep {
                s(&mut a, "--samplers");
                a.push(pick(rng, samplers).to_string());
                s(&mut a, "--steps");
                a.push(if rng.random_bool(0.5) {
                    "2".into()
                } else {
                    format!("{},{}", count(rng), count(rng))
                });
            } else {
                if rng.random_bool(0.5) {
                    s(&mut a, "--sampler");
                    a.push(pick(rng, samplers).to_string());
                }
                s(&mut a, "--steps");
                a.push(if rng.random_bool(0.5) {
                    "2".into()
                } else {
                    count(rng)
                });
            }
            for opt in ["--seed", "--data-seed", "--latent-width"] {
                if rng.random_bool(0.25) {
                    s(&mut a, opt);
                    a.push(count(rng));
                }
            }
            if rng.random_bool(0.3) {
                s(&mut a, "--backend");
                a.push(pick(rng, &["interp", "cpu", "gpu-less", ""]).to_string());
            }
            if rng.random_bool(0.2) {
                s(&mut a, "--out");
                a.push(out_path(rng, dir));
            }
        }
        17 | 18 => {
            s(&mut a, "metrics");
            let g = dir.join("g.g6");
            let mut text = String::new();
            for _ in 0..rng.random_range(0..5) {
                let graph = files::random_graph(rng, 12);
                text.push_str(&diffc::graph::io::write_graph6(&graph));
            }
            let _ = std::fs::write(&g, text);
            for _ in 0..2 {
                a.push(if rng.random_bool(0.7) {
                    g.display().to_string()
                } else {
                    odd_path(rng, dir)
                });
            }
            if rng.random_bool(0.3) {
                s(&mut a, "--train");
                a.push(g.display().to_string());
            }
            if rng.random_bool(0.4) {
                s(&mut a, "--metrics");
                a.push(
                    pick(
                        rng,
                        &[
                            "degree",
                            "orbit,spectral",
                            "vun",
                            "",
                            "unique,novel",
                            "nonesuch",
                            ",,",
                        ],
                    )
                    .to_string(),
                );
            }
            if rng.random_bool(0.3) {
                s(&mut a, "--convention");
                a.push(pick(rng, &["spectre", "gran", "graphrnn", "spectre-emd", "x"]).to_string());
            }
            if rng.random_bool(0.3) {
                s(&mut a, "--validity");
                a.push(pick(rng, &["planar", "sbm", "x", ""]).to_string());
            }
            if rng.random_bool(0.2) {
                s(&mut a, "--format");
                a.push(pick(rng, &["json", "table", "csv"]).to_string());
            }
        }
        _ => {
            // Unknown subcommands, stray options, help.
            let v = *pick(
                rng,
                &[
                    &["--help"][..],
                    &["--version"],
                    &["frobnicate"],
                    &[],
                    &["check"],
                    &["eval", "specs/ddpm.diff", "--entry"],
                    &["check", "--", "-x.diff"],
                    &[
                        "eval",
                        "specs/ddpm.diff",
                        "--process",
                        "ddpm_linear",
                        "--entry",
                        "prior",
                        "--set",
                        "batch=2",
                        "--set",
                        "batch=3",
                    ],
                ],
            );
            a.extend(v.iter().map(|x| x.to_string()));
        }
    }
    a
}

/// The CLI share of the spec area: the case's spec written to a file, then checked, explained,
/// listed or built for the CPU or WGSL.
pub fn spec_args(rng: &mut StdRng, shape: Shape, corpus: &[String], dir: &Path) -> Vec<String> {
    let (_, text) = spec::generate(rng, shape, corpus);
    let p = dir.join("case.diff");
    let _ = std::fs::write(&p, &text);
    let p = p.display().to_string();
    let out = dir.join("out").display().to_string();
    let v: Vec<&str> = match rng.random_range(0..8) {
        0 => vec!["check", &p],
        1 => vec!["--message-format", "json", "check", &p],
        2 => vec!["explain", &p],
        3 => vec!["explain", &p, "--plan"],
        4 => vec!["eval", &p, "--list"],
        5 => vec!["build", &p, "--target", "wgsl", "-o", &out],
        _ => vec!["build", &p, "--target", "cpu", "-o", &out],
    };
    v.into_iter().map(String::from).collect()
}

/// The CLI share of the npy area: the case's file given where the CLI reads `.npy` files.
pub fn npy_args(rng: &mut StdRng, dir: &Path) -> Vec<String> {
    let bytes = files::npy(rng);
    let p = dir.join("in.npy");
    let _ = std::fs::write(&p, &bytes);
    let p = p.display().to_string();
    let backend = pick(rng, &["interp", "cpu"]).to_string();
    let mut a: Vec<String> = match rng.random_range(0..8) {
        0 | 1 => vec![
            "eval",
            "specs/ddpm.diff",
            "--process",
            "ddpm_linear",
            "--entry",
            "forward",
            "--set",
            "t=10",
        ]
        .into_iter()
        .map(String::from)
        .chain(["--in".into(), format!("x_0={p}")])
        .collect(),
        2 => {
            let x = dir.join("x.npy");
            let _ = std::fs::write(&x, files::valid_npy(rng, &[2, 3], "<f4"));
            vec![
                "eval".into(),
                "specs/ddpm.diff".into(),
                "--process".into(),
                "ddpm_linear".into(),
                "--entry".into(),
                "forward".into(),
                "--in".into(),
                format!("x_0={}", x.display()),
                "--in".into(),
                format!("t={p}"),
            ]
        }
        3 => vec![
            "eval".into(),
            "specs/d3pm.diff".into(),
            "--process".into(),
            "d3pm_uniform".into(),
            "--entry".into(),
            "forward".into(),
            "--set".into(),
            "t=5".into(),
            "--in".into(),
            format!("x_0={p}"),
        ],
        4 => vec![
            "eval".into(),
            "specs/digress.diff".into(),
            "--entry".into(),
            "prior".into(),
            "--set".into(),
            "n=4".into(),
            "--set".into(),
            "batch=2".into(),
            "--param".into(),
            format!("mX={p}"),
        ],
        5 => vec![
            "eval".into(),
            "specs/digress.diff".into(),
            "--entry".into(),
            "forward".into(),
            "--set".into(),
            "t=3".into(),
            "--in".into(),
            format!("E_0={p}"),
            "--in".into(),
            format!("X_0={p}"),
        ],
        6 => vec!["metrics".into(), p.clone(), p.clone()],
        _ => vec![
            "sample".into(),
            "specs/flow_matching.diff".into(),
            "--data".into(),
            p.clone(),
            "--count".into(),
            "2".into(),
            "--steps".into(),
            "2".into(),
        ],
    };
    if a[0] == "eval" || a[0] == "sample" {
        a.push("--backend".into());
        a.push(backend);
    }
    a
}

/// The CLI share of the graph area: the case's file (or a folder holding it, for an edge list)
/// given to `metrics` or `sample --data`.
pub fn graph_args(rng: &mut StdRng, dir: &Path) -> Vec<String> {
    let (kind, bytes) = files::graph(rng);
    let sub = dir.join("graphs_in");
    let _ = std::fs::create_dir_all(&sub);
    let file = sub.join(format!("g.{}", kind.extension()));
    let _ = std::fs::write(&file, &bytes);
    let set = if kind == GraphKind::EdgeList {
        sub.display().to_string()
    } else {
        file.display().to_string()
    };
    let reference = dir.join("ref.g6");
    let mut text = String::new();
    for _ in 0..1 + rng.random_range(0..4) {
        text.push_str(&diffc::graph::io::write_graph6(&files::random_graph(
            rng, 10,
        )));
    }
    let _ = std::fs::write(&reference, text);
    let reference = reference.display().to_string();
    match (kind, rng.random_range(0..4)) {
        (GraphKind::Words, _) => vec![
            "sample".into(),
            "specs/mdlm.diff".into(),
            "--data".into(),
            file.display().to_string(),
            "--count".into(),
            "2".into(),
            "--steps".into(),
            "2".into(),
        ],
        (_, 0) => vec![
            "sample".into(),
            "specs/digress.diff".into(),
            "--data".into(),
            set,
            "--count".into(),
            "2".into(),
            "--backend".into(),
            "cpu".into(),
        ],
        (_, 1) => vec![
            "metrics".into(),
            reference.clone(),
            set.clone(),
            "--train".into(),
            set,
            "--validity".into(),
            pick(rng, &["planar", "sbm"]).to_string(),
        ],
        _ => vec!["metrics".into(), set, reference],
    }
}
