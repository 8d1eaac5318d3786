//! Mutated and random inputs never panic the front end.
//!
//! Seeds are fixed, so a failure reproduces; the case count is printed
//! (`cargo test --test fuzz -- --nocapture`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

const TOKENS: &[&str] = &[
    "process",
    "fn",
    "const",
    "dim",
    "param",
    "mask",
    "field",
    "time",
    "schedule",
    "forward",
    "posterior",
    "prior",
    "network",
    "loss",
    "sampler",
    "grid",
    "init",
    "step",
    "finalize",
    "let",
    "if",
    "then",
    "else",
    "repeat",
    "where",
    "for",
    "in",
    "and",
    "or",
    "not",
    "like",
    "data",
    "at",
    "sym",
    "masked",
    "real",
    "bool",
    "cat",
    "vec",
    "mat",
    "x",
    "x_t",
    "x_0",
    "x_s",
    "x_T",
    "x_{t-1}",
    "t",
    "s",
    "r",
    "k",
    "first",
    "last",
    "prev",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "<",
    ">",
    ",",
    ";",
    "|",
    "~",
    "=",
    "==",
    "+",
    "-",
    "*",
    "/",
    "^",
    "@",
    "..",
    ".",
    "->",
    "0",
    "1",
    "-1",
    "1e308",
    "1e-320",
    "0.5",
    "1000000",
    "Normal",
    "Categorical",
    "Bernoulli",
    "Delta",
    "with",
    "LogNormal",
    "Weighted",
    "Uniform",
    "cumprod",
    "cumsum",
    "linspace",
    "geometric",
    "deriv",
    "sqrt",
    "log",
    "exp",
    "onehot",
    "argmax",
    "softmax",
    "sum",
    "mean",
    "norm",
    "rowsum",
    "pair",
    "gram",
    "eye",
    "ones",
    "uniform",
    "logsnr",
    "karras",
    "quadratic",
    "linspace",
    "all",
    "eps",
    "x0",
    "score",
    "v",
    "probs",
];

fn check_no_panic(text: &str) {
    let result = std::panic::catch_unwind(|| diffc::check::check_source(text));
    if result.is_err() {
        panic!("the front end panicked on:\n{text}");
    }
}

fn mutate(rng: &mut StdRng, text: &str) -> String {
    let mut s: Vec<char> = text.chars().collect();
    for _ in 0..rng.random_range(1..4) {
        if s.is_empty() {
            break;
        }
        let i = rng.random_range(0..s.len());
        match rng.random_range(0..6) {
            0 => {
                let j = (i + rng.random_range(1..20)).min(s.len());
                s.drain(i..j);
            }
            1 => {
                let tok = TOKENS[rng.random_range(0..TOKENS.len())];
                for (k, c) in format!(" {tok} ").chars().enumerate() {
                    s.insert(i + k, c);
                }
            }
            2 => {
                // Replace a digit run with another number.
                let nums = [
                    "0", "1", "-1", "1e308", "1e-320", "2", "1000000", "0.5", "3",
                ];
                let n = nums[rng.random_range(0..nums.len())];
                if s[i].is_ascii_digit() {
                    let mut j = i;
                    while j < s.len() && s[j].is_ascii_digit() {
                        j += 1;
                    }
                    s.splice(i..j, n.chars());
                }
            }
            3 => {
                let j = (i + rng.random_range(1..40)).min(s.len());
                let chunk: Vec<char> = s[i..j].to_vec();
                let at = rng.random_range(0..s.len());
                for (k, c) in chunk.into_iter().enumerate() {
                    s.insert(at + k, c);
                }
            }
            4 => {
                s[i] = (rng.random_range(0x20u8..0x7f)) as char;
            }
            _ => {
                s.insert(
                    i,
                    ['\u{0}', 'é', '\u{202e}', '😀', '\t', '\n'][rng.random_range(0..6)],
                );
            }
        }
    }
    s.into_iter().collect()
}

fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["specs", "tests/bad"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            if f.extension().is_some_and(|e| e == "diff") {
                out.push(std::fs::read_to_string(f).unwrap());
            }
        }
    }
    out
}

#[test]
fn mutated_specs_never_panic() {
    let corpus = corpus();
    assert!(!corpus.is_empty());
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut cases = 0;
    // Small specs get more mutations; the large ones cost more per check.
    for text in &corpus {
        let n = if text.len() > 4000 { 100 } else { 200 };
        for _ in 0..n {
            check_no_panic(&mutate(&mut rng, text));
            cases += 1;
        }
    }
    println!("fuzz: {cases} mutated specs checked without a panic");
    assert!(cases >= 5000, "only {cases} cases");
}

#[test]
fn random_token_streams_never_panic() {
    let mut rng = StdRng::seed_from_u64(42);
    let mut cases = 0;
    for _ in 0..3000 {
        let n = rng.random_range(1..80);
        let mut text = String::from("process p { time t : 1..10 ");
        for _ in 0..n {
            text.push_str(TOKENS[rng.random_range(0..TOKENS.len())]);
            text.push(' ');
        }
        if rng.random_bool(0.5) {
            text.push('}');
        }
        check_no_panic(&text);
        cases += 1;
    }
    println!("fuzz: {cases} random token streams checked without a panic");
}
