//! The command line: exit codes and message formats.

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
