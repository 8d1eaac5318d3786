//! Every file in `tests/bad/` is a spec with one mistake. Its first line says where the
//! error must be reported: `// expect: E0300 12:5` (code, line, column of the primary span).
//! Each must fail to check with that diagnostic first, exit 1 from the CLI, and match its
//! snapshot (the source and the rendered diagnostics together).

use diffc::diag::{render_text, Source};
use std::path::Path;
use std::process::Command;

fn expectation(text: &str, path: &Path) -> (String, usize, usize) {
    let first = text.lines().next().unwrap_or_default();
    let rest = first.strip_prefix("// expect: ").unwrap_or_else(|| {
        panic!(
            "{}: first line must be `// expect: CODE LINE:COL`",
            path.display()
        )
    });
    let (code, pos) = rest.trim().split_once(' ').expect("CODE LINE:COL");
    let (line, col) = pos.split_once(':').expect("LINE:COL");
    (
        code.to_string(),
        line.parse().unwrap(),
        col.parse().unwrap(),
    )
}

#[test]
fn bad_specs_fail_at_the_right_place() {
    let mut count = 0;
    let mut wrong = Vec::new();
    insta::glob!("bad/*.diff", |path| {
        count += 1;
        let text = std::fs::read_to_string(path).unwrap();
        let (code, line, col) = expectation(&text, path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (_, diags) = diffc::check::check_source(&text);
        let Some(first) = diags.iter().find(|d| d.is_error()) else {
            wrong.push(format!("{name}: checked without errors"));
            return;
        };
        let source = Source {
            name: &name,
            text: &text,
        };
        let rendered = render_text(&source, &diags, false);
        let (l, c) = source.line_col(first.primary.span.start);
        if (first.code.as_str(), l, c) != (code.as_str(), line, col) {
            wrong.push(format!(
                "{name}: expected {code} {line}:{col}, got {} {l}:{c}\n{rendered}",
                first.code.as_str()
            ));
        }
        insta::assert_snapshot!(format!("{text}\n----- diagnostics -----\n{rendered}"));
    });
    assert!(
        wrong.is_empty(),
        "{} bad specs failed otherwise than stated:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(count >= 60, "only {count} bad specs");
}

#[test]
fn bad_specs_exit_1_from_the_cli() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "diff"))
    {
        let out = Command::new(env!("CARGO_BIN_EXE_diffc"))
            .arg("check")
            .arg(f)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("error["),
            "{}: no diagnostic printed",
            f.display()
        );
    }
}
