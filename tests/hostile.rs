//! Hostile input: sizes that overflow, wrap or would allocate without bound are refused with
//! exit 2 and a one-line error before anything is allocated; specs that nest deeply, expand
//! exponentially or are wide are refused or checked within budgets; inputs that are not files,
//! losses that overflow and empty output folders are errors.
//! Every run is under a 4 GB address-space cap (`ulimit -v`), so a regression aborts or fails
//! here instead of exhausting the machine.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the CLI under `ulimit -v 4000000` and a 120 s timeout (a hang exits 124) with `DIFFC_MEMORY_LIMIT` set to `limit` (unset
/// for `None`): (exit code, stderr).
fn run(limit: Option<&str>, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 4000000 && exec timeout 120 \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_diffc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match limit {
        Some(l) => cmd.env("DIFFC_MEMORY_LIMIT", l),
        None => cmd.env_remove("DIFFC_MEMORY_LIMIT"),
    };
    let out = cmd.output().expect("run diffc");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts exit 2 with one error line holding each of `wants`.
fn refused(limit: Option<&str>, args: &[&str], wants: &[&str]) {
    let (code, err) = run(limit, args);
    assert_eq!(code, Some(2), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line expected: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for w in wants {
        assert!(err.contains(w), "{args:?}: `{w}` not in: {err}");
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("diffc-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes an array of `shape` holding `data` as the `.npy` file `dir/name` and returns its path.
fn write_npy(dir: &Path, name: &str, shape: Vec<usize>, data: diffc::npy::Data) -> String {
    let path = dir.join(name);
    diffc::npy::write_file(&diffc::npy::Array { shape, data }, &path).unwrap();
    path.to_str().unwrap().to_string()
}

const PRIOR: [&str; 6] = [
    "eval",
    "specs/ddpm.diff",
    "--process",
    "ddpm_linear",
    "--entry",
    "prior",
];

fn prior(sets: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = PRIOR.iter().map(|s| s.to_string()).collect();
    for s in sets {
        a.push("--set".into());
        a.push(s.to_string());
    }
    a
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_batch_of_usize_max_is_refused_not_a_panic() {
    let a = prior(&["batch=18446744073709551615", "d=3"]);
    refused(
        Some("1G"),
        &strs(&a),
        &["batch = 18446744073709551615 × d = 3", "overflows"],
    );
}

#[test]
fn sizes_whose_product_wraps_to_zero_are_refused_not_a_wrong_shape() {
    for backend in ["interp", "cpu"] {
        let mut a = prior(&["batch=4294967296", "d=4294967296"]);
        a.extend(["--backend".to_string(), backend.to_string()]);
        refused(
            Some("1G"),
            &strs(&a),
            &["batch = 4294967296 × d = 4294967296", "overflows"],
        );
    }
}

#[test]
fn a_batch_past_the_memory_limit_is_refused_before_allocating() {
    for backend in ["interp", "cpu"] {
        let mut a = prior(&["batch=1e12", "d=3"]);
        a.extend(["--backend".to_string(), backend.to_string()]);
        // Under the default limit (half the machine's memory) too.
        for limit in [Some("1G"), None] {
            refused(
                limit,
                &strs(&a),
                &[
                    "batch = 1000000000000, d = 3",
                    "needs 36000000000020 bytes",
                    "exceeds the memory limit",
                ],
            );
        }
    }
}

#[test]
fn the_memory_limit_is_the_environment_s_and_calls_under_it_run() {
    let dir = temp_dir("under");
    let out = dir.to_str().unwrap();
    let mut a = prior(&["batch=1000", "d=1000"]);
    a.extend(["--out".to_string(), out.to_string()]);
    refused(
        Some("1M"),
        &strs(&a),
        &["exceeds the memory limit of 1048576 bytes"],
    );
    let (code, err) = run(Some("1G"), &strs(&a));
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run(Some("lots"), &strs(&a));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("DIFFC_MEMORY_LIMIT=`lots`"), "{err}");
}

/// `--memory-limit` sets the limit for every subcommand, over the environment's: a call past
/// it is refused before allocating, one under it runs, and a limit that is not a byte count
/// is exit 2 with the option named.
#[test]
fn the_memory_limit_option_overrides_the_environment() {
    let dir = temp_dir("option");
    let out = dir.to_str().unwrap();
    let mut a = prior(&["batch=1000", "d=1000"]);
    a.extend(["--out".to_string(), out.to_string()]);
    let with = |limit: &str| {
        let mut v = vec!["--memory-limit".to_string(), limit.to_string()];
        v.extend(a.iter().cloned());
        v
    };
    refused(
        Some("1G"),
        &strs(&with("1M")),
        &["exceeds the memory limit of 1048576 bytes"],
    );
    let (code, err) = run(Some("1M"), &strs(&with("1G")));
    assert_eq!(code, Some(0), "{err}");
    for bad in ["lots", "0", "1.5G"] {
        let (code, err) = run(None, &strs(&with(bad)));
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(err.contains("--memory-limit"), "{bad}: {err}");
    }
    // Applied by `sample` as by `eval`: a count whose samples would not fit is refused.
    let spec = format!("{}/specs/ddpm.diff", env!("CARGO_MANIFEST_DIR"));
    let (code, err) = run(
        None,
        &[
            "--memory-limit",
            "64K",
            "sample",
            &spec,
            "--process",
            "ddpm_linear",
            "--data",
            "moons",
            "--count",
            "100000",
            "--steps",
            "2",
            "--sampler",
            "ddim",
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("memory limit of 65536 bytes"), "{err}");
}

#[test]
fn sizes_that_are_not_exact_whole_numbers_are_refused() {
    for (set, want) in [
        ("batch=18446744073709551616", "too large for a size"),
        ("batch=1e30", "too large for a size"),
        ("batch=-1", "a size is a whole number"),
        ("batch=1.5", "a size is a whole number"),
        ("batch=inf", "a size is a whole number"),
        ("d=nan", "a size is a whole number"),
    ] {
        let a = prior(&[set, "d=3"]);
        refused(Some("1G"), &strs(&a), &[want]);
    }
}

#[test]
fn sample_counts_past_the_limit_are_refused() {
    let dir = temp_dir("count");
    let out = dir.to_str().unwrap();
    for count in ["18446744073709551615", "1000000000"] {
        refused(
            Some("1G"),
            &[
                "sample",
                "specs/ddpm.diff",
                "--process",
                "ddpm_linear",
                "--data",
                "moons",
                "--count",
                count,
                "--out",
                out,
            ],
            &["--count", "16777216"],
        );
    }
    refused(
        Some("1G"),
        &[
            "sample",
            "specs/ddpm.diff",
            "--process",
            "ddpm_linear",
            "--data",
            "moons",
            "--train-count",
            "18446744073709551615",
            "--out",
            out,
        ],
        &["--train-count", "16777216"],
    );
}

#[test]
fn sample_counts_under_the_count_limit_meet_the_memory_limit() {
    let dir = temp_dir("count-memory");
    let out = dir.to_str().unwrap();
    // The exact denoiser weighs every (sample, training point) pair.
    refused(
        Some("1G"),
        &[
            "sample",
            "specs/ddpm.diff",
            "--process",
            "ddpm_linear",
            "--data",
            "moons",
            "--count",
            "10000000",
            "--out",
            out,
        ],
        &["batch = 10000000", "exceeds the memory limit"],
    );
    // The sampler's own values, for graphs.
    refused(
        Some("1G"),
        &[
            "sample",
            "specs/digress.diff",
            "--data",
            "community-small",
            "--count",
            "10000000",
            "--out",
            out,
        ],
        &["batch = 10000000, n = 20", "exceeds the memory limit"],
    );
}

#[test]
fn graph_files_with_huge_node_counts_are_refused_with_file_and_line() {
    let dir = temp_dir("graphs");
    let reference = dir.join("ref");
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::write(reference.join("a.txt"), "0 1\n1 2\n").unwrap();
    let r = reference.to_str().unwrap();
    for (name, text, want) in [
        (
            "max",
            "0 1\n0 18446744073709551615\n",
            "a.txt:2: node index 18446744073709551615 is past the limit of 65536 nodes",
        ),
        (
            "u32",
            "0 4294967295\n",
            "a.txt:1: node index 4294967295 is past the limit of 65536 nodes",
        ),
        (
            "declared",
            "# a comment\nnodes 100000000000\n",
            "a.txt:2: a count of 100000000000 nodes is past the limit of 65536 nodes",
        ),
        (
            "past-u64",
            "0 18446744073709551616\n",
            "a.txt:1: `18446744073709551616` is not a node index",
        ),
    ] {
        let g = dir.join(name);
        std::fs::create_dir_all(&g).unwrap();
        std::fs::write(g.join("a.txt"), text).unwrap();
        refused(Some("1G"), &["metrics", g.to_str().unwrap(), r], &[want]);
    }
    // A graph6 header with n = 2^32 + 1 (n(n-1)/2 would wrap).
    let n: u64 = (1 << 32) + 1;
    let mut line = vec![126u8, 126];
    line.extend((0..6).map(|i| 63 + ((n >> (6 * (5 - i))) & 63) as u8));
    line.push(b'\n');
    let g6 = dir.join("big.g6");
    std::fs::write(&g6, line).unwrap();
    refused(
        Some("1G"),
        &["metrics", g6.to_str().unwrap(), r],
        &["big.g6:1: a graph6 graph on 4294967297 nodes is past the limit of 65536 nodes"],
    );
    // `sample --data FOLDER` reads graphs the same way.
    let folder = dir.join("u32");
    let out = dir.join("out");
    refused(
        Some("1G"),
        &[
            "sample",
            "specs/digress.diff",
            "--data",
            folder.to_str().unwrap(),
            "--count",
            "4",
            "--out",
            out.to_str().unwrap(),
        ],
        &["a.txt:1: node index 4294967295 is past the limit of 65536 nodes"],
    );
}

/// A `repeat` count past the limit: written in the spec, the checker refuses it at the count
/// (so `build` never records it); given at run time as a sampler parameter, every backend
/// refuses it before running an iteration.
#[test]
fn a_repeat_past_the_limit_is_refused_not_run_or_recorded_without_bound() {
    let dir = temp_dir("repeat");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/ncsn.diff"))
        .unwrap()
        .replace("repeat steps_per_level {", "repeat 99999999999999999999 {");
    let spec = dir.join("repeat.diff");
    std::fs::write(&spec, text).unwrap();
    for (args, err) in check_and_build(spec.to_str().unwrap()) {
        assert!(
            err.contains("error[E0700]")
                && err.contains("from 0 to 8388608, but this count is 100000000000000000000"),
            "{args:?}: {err}"
        );
    }
    let want = "`repeat` count 100000000000000000000 is over the limit of 8388608 iterations";
    for backend in ["interp", "cpu"] {
        let out = dir.join(format!("out-{backend}"));
        refused(
            Some("1G"),
            &[
                "sample",
                "specs/ncsn.diff",
                "--data",
                "moons",
                "--count",
                "4",
                "--param",
                "steps_per_level=99999999999999999999",
                "--backend",
                backend,
                "--out",
                out.to_str().unwrap(),
            ],
            &[want],
        );
    }
}

/// `check` and `build --target cpu` of the spec at `p`, each of which must exit 1 (a spec with
/// errors): each one's arguments and stderr.
fn check_and_build(p: &str) -> Vec<(Vec<&str>, String)> {
    [
        vec!["check", p],
        vec!["build", p, "--target", "cpu", "-o", "/dev/null/x"],
    ]
    .into_iter()
    .map(|args| {
        let (code, err) = run(None, &args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        (args, err)
    })
    .collect()
}

/// `specs/ddpm.diff` with `const deep = EXPR` at the top of its first process, and that line's
/// number.
fn deep_spec(name: &str, expr: &str) -> (PathBuf, usize) {
    spec_with(name, "", expr)
}

/// `deep_spec` with the lines `fns` (functions) at the top of the file.
fn spec_with(name: &str, fns: &str, expr: &str) -> (PathBuf, usize) {
    let base =
        std::fs::read_to_string(format!("{}/specs/ddpm.diff", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let base = format!("{fns}{base}");
    let at = base.find("process ddpm_linear {").unwrap() + "process ddpm_linear {".len();
    let text = format!("{}\n  const deep = {expr}\n{}", &base[..at], &base[at..]);
    let path = temp_dir(name).join(format!("{name}.diff"));
    std::fs::write(&path, text).unwrap();
    (path, base[..at].lines().count() + 1)
}

/// Class 1: specs nested thousands of levels deep (sums, unary minuses, parentheses, calls,
/// if-chains, index chains) are refused where they nest too deeply, by `check` and `build`
/// alike, never overflowing the stack; nesting a few hundred levels deep checks and builds.
#[test]
fn deeply_nested_specs_are_refused_not_a_stack_overflow() {
    let many = |s: &str, n: usize| s.repeat(n);
    let cases = [
        ("sum", vec!["1"; 4200].join(" + ")),
        ("neg", format!("{}1", many("-", 4200))),
        ("parens", format!("{}1{}", many("(", 2600), many(")", 2600))),
        (
            "calls",
            format!("{}1{}", many("exp(", 2200), many(")", 2200)),
        ),
        ("ifs", format!("{}1", many("if true then 1 else ", 5000))),
        ("index", format!("[1]{}", many("[0]", 5000))),
    ];
    for (name, expr) in &cases {
        let (path, line) = deep_spec(name, expr);
        let p = path.to_str().unwrap();
        for (args, err) in check_and_build(p) {
            assert!(
                err.contains("error[E0001]: this nests too deeply"),
                "{name} {args:?}: {err}"
            );
            assert!(
                err.contains(&format!("{p}:{line}:")),
                "{name}: the error's location: {err}"
            );
        }
    }
    for (name, expr) in [
        ("sum250", vec!["1"; 250].join(" + ")),
        ("neg250", format!("{}1", many("-", 250))),
        (
            "parens160",
            format!("{}1{}", many("(", 160), many(")", 160)),
        ),
        ("ifs160", format!("{}1", many("if true then 1 else ", 160))),
    ] {
        let (path, _) = deep_spec(name, &expr);
        let out = temp_dir(&format!("{name}-out"));
        let (p, o) = (path.to_str().unwrap(), out.to_str().unwrap());
        let (code, err) = run(None, &["check", p]);
        assert_eq!(code, Some(0), "{name}: {err}");
        let (code, err) = run(None, &["build", p, "--target", "wgsl", "-o", o]);
        assert_eq!(code, Some(0), "{name}: {err}");
    }
}

/// Class 5: specs whose size grows exponentially in their depth. Nested list literals are
/// parsed once per level (an error here at depth 24, not minutes of backtracking); a chain of
/// functions that each call the one before twice, or a comprehension whose every round calls
/// one, stops at the expression budget with an error at the call where it ran out, in well
/// under the timeout and the 4 GB cap; 16 levels (65,536 copies) check.
#[test]
fn specs_that_expand_exponentially_stop_at_the_expression_budget() {
    let doubling = |n: usize| {
        let mut fns = String::from("fn f0(a) = a\n");
        for i in 1..=n {
            fns += &format!("fn f{i}(a) = f{}(a) + f{}(a)\n", i - 1, i - 1);
        }
        fns
    };
    let lists = format!("{}1{}", "[".repeat(24), "]".repeat(24));
    let (path, line) = deep_spec("lists24", &lists);
    let p = path.to_str().unwrap();
    let (code, err) = run(None, &["check", p]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("a list holds numbers") && err.contains(&format!("{p}:{line}:")),
        "{err}"
    );
    for (name, fns, expr) in [
        ("double30", doubling(30), "f30(1)".to_string()),
        (
            "rounds",
            doubling(10),
            "[f10(i) for i in 0..100000]".to_string(),
        ),
    ] {
        let (path, _) = spec_with(name, &fns, &expr);
        for (args, err) in check_and_build(path.to_str().unwrap()) {
            assert!(
                err.contains("error[E0204]: the process expands to more than 262144 expressions")
                    && err.contains("the budget ran out at"),
                "{name} {args:?}: {err}"
            );
        }
    }
    let (path, _) = spec_with("double16", &doubling(16), "f16(1)");
    let (code, err) = run(None, &["check", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
}

/// Class 6: small specs that were slow or crashed. Two `cat<65536>` fields with posteriors
/// check (their class combinations enumerated within a work budget, Bayes' rule reported as
/// not verified at that many classes) and build to WGSL (kernels unrolled over 65,536 classes
/// are written on a stack sized for them); a process with 100,000 dimensions nothing is
/// shaped by builds to WGSL and is refused by the CPU target for its dimension count, each
/// without tracing every dimension through every call.
#[test]
fn wide_classes_and_many_dimensions_check_and_build() {
    let cat = "process p {
  const T = 10
  const K = 65536
  dim n
  field a : cat<K>[n]
  field b : cat<K>[n]
  time t : 1..T
  schedule beta(t) = 0.1
  schedule alpha_bar(t) = (1 - 0.1) ^ t
  forward a_t | a_{t-1} ~ Categorical((1 - beta(t)) * onehot(a_{t-1}) + beta(t) * ones(K) / K)
  forward a_t | a_0 ~ Categorical(alpha_bar(t) * onehot(a_0) + (1 - alpha_bar(t)) * ones(K) / K)
  forward b_t | b_0 ~ Categorical(alpha_bar(t) * onehot(b_0) + (1 - alpha_bar(t)) * ones(K) / K)
  prior a_T ~ Categorical(ones(K) / K)
  prior b_T ~ Categorical(ones(K) / K)
  posterior a_{t-1} | a_t, a_0 ~ Categorical(alpha_bar(t-1) * onehot(a_0) + (1 - alpha_bar(t-1)) * ones(K) / K)
  posterior b_{t-1} | b_t, b_0 ~ Categorical(alpha_bar(t-1) * onehot(b_0) + (1 - alpha_bar(t-1)) * ones(K) / K)
}
";
    let dir = temp_dir("cat65536");
    let path = dir.join("cat.diff");
    std::fs::write(&path, cat).unwrap();
    let p = path.to_str().unwrap();
    let (code, err) = run(None, &["check", p]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning[W0003]") && err.contains("65536 classes"),
        "{err}"
    );
    let out = dir.join("wgsl");
    let (code, err) = run(
        None,
        &["build", p, "--target", "wgsl", "-o", out.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{err}");

    // 200 classes over 1000 steps: the composition of the one-step kernel (K³ per step) is past
    // the checker's budget and skipped with W0003, and the posterior derived for the chain is not
    // enumerated again, so the check ends in seconds.
    let chain = "process p {
  const K = 200
  const T = 1000
  dim d
  field x : cat<K>[d]
  time t : 1..T data at 0
  schedule beta(t) in (0, 1) increasing = linspace(0.0001, 0.02)
  schedule Q(t) = (1 - beta(t)) * eye(K) + beta(t) * ones(K, K) / K
  schedule Qbar(t) = cumprod(Q(t))
  forward x_t | x_{t-1} ~ Categorical(onehot(x_{t-1}) @ Q(t))
  forward x_t | x_0 ~ Categorical(onehot(x_0) @ Qbar(t))
  prior x_T ~ Categorical(ones(K) / K)
}
";
    let path = dir.join("chain.diff");
    std::fs::write(&path, chain).unwrap();
    let (code, err) = run(None, &["check", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning[W0003]") && err.contains("not checked against its one-step kernel"),
        "{err}"
    );

    let dims: String = (0..100_000).map(|i| format!("  dim u{i}\n")).collect();
    let (path, _) = spec_with("dims", "", &format!("1\n{dims}"));
    let p = path.to_str().unwrap();
    let out = temp_dir("dims-out");
    let (code, err) = run(
        None,
        &["build", p, "--target", "wgsl", "-o", out.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run(
        None,
        &["build", p, "--target", "cpu", "-o", out.to_str().unwrap()],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("has more than 255 dimensions"), "{err}");
}

/// Class 8: an input that is a FIFO (or a folder) is refused before it is opened, so a run
/// never blocks on it: as a spec, an `--in` array and a graph file.
#[test]
fn inputs_that_are_not_regular_files_are_refused_not_waited_on() {
    let dir = temp_dir("fifo");
    let fifo = dir.join("x.npy");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let f = fifo.to_str().unwrap();
    let d = dir.to_str().unwrap();
    let input = format!("x_0={f}");
    for args in [
        vec!["check", f],
        vec![
            "eval",
            "specs/ddpm.diff",
            "--process",
            "ddpm_linear",
            "--entry",
            "forward",
            "--in",
            &input,
            "--set",
            "t=5",
        ],
        vec!["metrics", f, "specs"],
        vec!["check", d],
    ] {
        let (code, err) = run(None, &args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains("it is not a regular file") || err.contains("it is a folder"),
            "{args:?}: {err}"
        );
    }
}

/// Class 8: a loss that overflows f32 (a network output of 1e30, squared) is an error on every
/// CPU backend, not `inf` with exit 0; `log_q`, where −inf is a probability of 0, is not held
/// to this.
#[test]
fn a_loss_that_overflows_is_an_error_not_inf() {
    use diffc::npy::Data;
    let dir = temp_dir("inf-loss");
    let save = |name: &str, v: f32| write_npy(&dir, name, vec![2, 3], Data::F32(vec![v; 6]));
    let (zero, big) = (save("zero.npy", 0.0), save("big.npy", 1e30));
    for backend in ["interp", "cpu"] {
        let (x_t, net, eps) = (
            format!("x_t={zero}"),
            format!("eps_hat.x={big}"),
            format!("eps={zero}"),
        );
        for entry in ["loss.simple", "terms.simple"] {
            refused(
                None,
                &[
                    "eval",
                    "specs/ddpm.diff",
                    "--process",
                    "ddpm_linear",
                    "--entry",
                    entry,
                    "--in",
                    &x_t,
                    "--in",
                    &net,
                    "--in",
                    &eps,
                    "--set",
                    "t=5",
                    "--backend",
                    backend,
                ],
                &["is inf at flat index 0: a loss must be finite"],
            );
        }
    }
}

/// Class 8: an empty `--out` is refused by every command that writes a folder, never taken as
/// the current folder.
#[test]
fn an_empty_out_folder_is_refused() {
    for args in [
        vec!["build", "specs/ddpm.diff", "--target", "cpu", "-o", ""],
        vec!["sample", "specs/ddpm.diff", "--out", ""],
        vec!["sweep", "specs/ddpm.diff", "--out", ""],
        vec![
            "eval",
            "specs/ddpm.diff",
            "--process",
            "ddpm_linear",
            "--entry",
            "prior",
            "--out",
            "",
        ],
        vec!["data", "community-small", "--out", ""],
    ] {
        let (code, err) = run(None, &args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains("a value is required for '--out"),
            "{args:?}: {err}"
        );
    }
}

/// Class 8: scores that would be NaN are refused, not printed: the graph statistics of a graph
/// with no nodes, and the point scores of a single training point.
#[test]
fn scores_that_are_not_numbers_are_refused() {
    let dir = temp_dir("nan-scores");
    let (empty, edge) = (dir.join("empty"), dir.join("edge"));
    for (d, text) in [(&empty, "nodes 0\n"), (&edge, "0 1\n")] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("a.txt"), text).unwrap();
    }
    let (e, g) = (empty.to_str().unwrap(), edge.to_str().unwrap());
    refused(
        None,
        &["metrics", e, g],
        &["graph 0 (in file order, from 0) has no nodes"],
    );
    refused(
        None,
        &["metrics", g, e],
        &["graph 0 (in file order, from 0) has no nodes"],
    );
    let (code, err) = run(None, &["metrics", e, g, "--metrics", "unique"]);
    assert_eq!(code, Some(0), "uniqueness is defined: {err}");
    let out = dir.join("out");
    refused(
        None,
        &[
            "sample",
            "specs/dpm_solver.diff",
            "--data",
            "moons",
            "--train-count",
            "1",
            "--count",
            "4",
            "--out",
            out.to_str().unwrap(),
        ],
        &["holds 1 training points of dimension 2: the point scores need at least 2 points"],
    );
}

/// Class 8: a value of a `sym` field that is not symmetric, or holds something on its
/// diagonal, is refused with the first entry that breaks it, on every CPU backend, for an
/// entry's input and for a step's state; a symmetric one with an empty diagonal runs.
#[test]
fn symmetric_fields_refuse_asymmetric_values_and_a_full_diagonal() {
    use diffc::npy::Data;
    let dir = temp_dir("sym");
    let save = |name: &str, shape, v| write_npy(&dir, name, shape, Data::I64(v));
    let x = save("x.npy", vec![1, 3], vec![0, 1, 2]);
    let good = save("good.npy", vec![1, 3, 3], vec![0, 1, 0, 1, 0, 2, 0, 2, 0]);
    let asym = save("asym.npy", vec![1, 3, 3], vec![0, 1, 0, 2, 0, 0, 0, 0, 0]);
    let diag = save("diag.npy", vec![1, 3, 3], vec![0, 1, 0, 1, 3, 2, 0, 2, 0]);
    let [phi_x, phi_e] = [
        ("phi_x.npy", vec![1, 3, 4]),
        ("phi_e.npy", vec![1, 3, 3, 4]),
    ]
    .map(|(name, shape)| {
        let data = Data::F32(vec![0.25; shape.iter().product()]);
        write_npy(&dir, name, shape, data)
    });
    let asym_at = "input `E_0` is a symmetric field, but holds 1 at [0, 0, 1] and 2 at [0, 1, 0]";
    let diag_at =
        "input `E_0` is a symmetric field with an empty diagonal, but holds 3 at [0, 1, 1]";
    for backend in ["interp", "cpu"] {
        let forward = |e: &str| {
            run(
                None,
                &[
                    "eval",
                    "specs/digress.diff",
                    "--entry",
                    "forward",
                    "--in",
                    &format!("X_0={x}"),
                    "--in",
                    &format!("E_0={e}"),
                    "--set",
                    "t=3",
                    "--backend",
                    backend,
                ],
            )
        };
        let (code, err) = forward(&good);
        assert_eq!(code, Some(0), "{backend}: {err}");
        for (e, want) in [(&asym, asym_at), (&diag, diag_at)] {
            let (code, err) = forward(e);
            assert_eq!(code, Some(2), "{backend}: {err}");
            assert!(err.contains(want), "{backend}: {err}");
        }
        let step = |e: &str| {
            run(
                None,
                &[
                    "eval",
                    "specs/digress.diff",
                    "--sampler",
                    "ancestral",
                    "--entry",
                    "step",
                    "--in",
                    &format!("X={x}"),
                    "--in",
                    &format!("E={e}"),
                    "--in",
                    &format!("phi.X={phi_x}"),
                    "--in",
                    &format!("phi.E={phi_e}"),
                    "--set",
                    "t=3",
                    "--set",
                    "s=2",
                    "--backend",
                    backend,
                ],
            )
        };
        let (code, err) = step(&good);
        assert_eq!(code, Some(0), "{backend} step: {err}");
        let (code, err) = step(&asym);
        assert_eq!(code, Some(2), "{backend} step: {err}");
        assert!(
            err.contains("input `E` is a symmetric field"),
            "{backend} step: {err}"
        );
    }
}

/// Class 6: the spectrum of a star of 10,000 leaves (dense in every node order) comes from its
/// quotient by twins (`graph::spectrum`, tested against the dense reduction there), well
/// within the timeout: it ran for minutes as a dense 10,001 × 10,001 reduction.
#[test]
fn the_spectrum_of_a_large_star_is_fast() {
    let dir = temp_dir("star");
    let (star, path) = (dir.join("star"), dir.join("path"));
    std::fs::create_dir_all(&star).unwrap();
    std::fs::create_dir_all(&path).unwrap();
    let edges: String = (1..=10_000).map(|v| format!("0 {v}\n")).collect();
    std::fs::write(star.join("a.txt"), edges).unwrap();
    std::fs::write(path.join("a.txt"), "0 1\n1 2\n").unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 4000000 && exec timeout 120 \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_diffc"))
        .args([
            "metrics",
            star.to_str().unwrap(),
            path.to_str().unwrap(),
            "--metrics",
            "spectral",
        ]);
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("spectral"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("no spectral score: {text}"));
    assert!(value.is_finite() && value > 0.0, "{text}");
}

/// Found by the fuzzing harness (`examples/fuzz.rs`): a syntax error at a multi-byte character
/// that is not a letter (U+202E, an emoji) gave a span ending inside it, and the JSON renderer's
/// line and column panicked on it. The span covers the whole character.
#[test]
fn a_syntax_error_at_a_multi_byte_character_is_a_diagnostic() {
    let dir = temp_dir("multibyte");
    for (name, c) in [("rlo", "\u{202e} x"), ("emoji", "😀")] {
        let path = dir.join(format!("{name}.diff"));
        std::fs::write(&path, format!("process p {{\n  dim d\n  {c}\n}}\n")).unwrap();
        let path = path.to_str().unwrap();
        let (code, err) = run(None, &["check", path]);
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(err.contains("E0001"), "{err}");
        // JSON diagnostics go to stdout.
        let out = Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 4000000 && exec timeout 120 \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_diffc"))
            .args(["--message-format", "json", "check", path])
            .output()
            .unwrap();
        let (json, err) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(!err.contains("internal compiler error"), "{err}");
        // The span covers the character whole: its end is its start plus its UTF-8 length.
        let end = 22 + c.chars().next().unwrap().len_utf8();
        assert!(
            json.contains(&format!(
                "\"byte_start\":22,\"byte_end\":{end},\"line_start\":3,\"column_start\":3"
            )),
            "{json}"
        );
    }
}

/// Found by the fuzzing harness: `--threads 65536` spent minutes starting threads under the
/// address-space cap before failing; a pool past 1,024 threads is refused before any starts.
#[test]
fn a_huge_thread_count_is_refused_before_starting_threads() {
    for n in ["65536", "18446744073709551615", "1025"] {
        refused(
            None,
            &["--threads", n, "check", "specs/ddpm.diff"],
            &[&format!("--threads {n}"), "1024 worker threads"],
        );
    }
}

/// Found by the fuzzing harness: `diffc data swissroll --count 2147483648` allocated 16 GiB of
/// points (an abort under the cap); `data` holds `--count` to the bound `sample` does.
#[test]
fn a_data_count_past_the_sample_bound_is_refused() {
    let dir = temp_dir("data-count");
    let out = dir.to_str().unwrap();
    for n in ["2147483648", "16777217"] {
        refused(
            Some("1G"),
            &["data", "swissroll", "--out", out, "--count", n],
            &[&format!("--count {n}"), "16777216"],
        );
    }
}

/// Found by the fuzzing harness: an `.npy` stack of shape (2^32, 0, 0) holds no data, so the
/// reader accepts it, and `graph::io::from_npy` then built 2^32 empty graphs (a 128 GiB
/// allocation, an abort under the cap). A stack of 0 × 0 matrices is refused.
#[test]
fn an_npy_stack_of_empty_matrices_is_refused() {
    let dir = temp_dir("empty-stack");
    for (name, data) in [
        ("f8.npy", diffc::npy::Data::F64(vec![])),
        ("b1.npy", diffc::npy::Data::Bool(vec![])),
    ] {
        let path = write_npy(&dir, name, vec![1 << 32, 0, 0], data);
        refused(
            None,
            &["metrics", &path, &path],
            &["a stack of 4294967296 matrices of 0 × 0"],
        );
    }
    let path = write_npy(
        &dir,
        "two.npy",
        vec![2, 0, 0],
        diffc::npy::Data::F32(vec![]),
    );
    let (code, err) = run(None, &["sample", "specs/digress.diff", "--data", &path]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("a stack of 2 matrices of 0 × 0"), "{err}");
}

/// An `.npy` file's preamble and header are claims: a header length of 4 GiB, a shape of 2^40
/// elements with no data and a shape whose product wraps to 0 are each refused with the
/// reader's one-line message, before anything of their size is allocated. npyz and
/// ndarray-npy abort on the first, ndarray-npy on the second, and npyz panics on the third in
/// a debug build and reads it as an empty array in a release one (`src/npy.rs`'s module doc).
#[test]
fn npy_headers_that_claim_more_than_the_file_holds_are_refused_before_allocating() {
    let dir = temp_dir("npy-claims");
    let v1 = |shape: &str| {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes
    };
    let mut huge_header = b"\x93NUMPY\x02\x00".to_vec();
    huge_header.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
    huge_header.extend_from_slice(b"{'descr'");
    let cases = [
        (
            "huge_header.npy",
            huge_header,
            "truncated header: the header should be 4294967280 bytes long but only 8 bytes follow the header length",
        ),
        (
            "tera.npy",
            v1("(1099511627776,)"),
            "shape (1099511627776,) needs 1099511627776 values but the file holds 0",
        ),
        (
            "wraps.npy",
            v1("(4294967296, 4294967296, 4294967296)"),
            "shape (4294967296, 4294967296, 4294967296) has too many elements to address",
        ),
    ];
    for (name, bytes, message) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let input = format!("x_0={}", path.display());
        refused(
            None,
            &[
                "eval",
                "specs/ddpm.diff",
                "--process",
                "ddpm_linear",
                "--entry",
                "forward",
                "--in",
                &input,
                "--set",
                "t=5",
            ],
            &[&format!("{}: {message}", path.display())],
        );
    }
}
