//! The spec area: `.diff` texts generated from the grammar (`grammar/diff.pest`,
//! `docs/language.md`), near-valid variants of them, mutations of the shipped specs and stress
//! shapes (deep nesting, long sums, many statements, extreme literals), with depth and width as
//! parameters.

use rand::rngs::StdRng;
use rand::Rng;

/// Numeric literals at and past the edges of f64, u32, u64 and usize.
pub const NUMBERS: &[&str] = &[
    "0",
    "0.0",
    "1",
    "2",
    "3",
    "0.5",
    "0.25",
    "0.999",
    "1e-4",
    "0.02",
    "10",
    "100",
    "1000",
    "65536",
    "1e308",
    "1.7976931348623157e308",
    "1e309",
    "1e-308",
    "1e-320",
    "4.9e-324",
    "1e-400",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "9007199254740993",
    "123456789012345678901234567890123456789",
    "0.000000000000000000000000000001",
    "1.0000000000000002",
    "0.9999999999999999",
    "1e9",
    "1e18",
    "2147483648",
    "1E5",
    ".5",
];

/// Element-type arguments, ordinary and hostile (`cat<K>`, `vec<K>`, `mat<K>`).
const CLASS_COUNTS: &[&str] = &[
    "2",
    "3",
    "4",
    "27",
    "0",
    "1",
    "4096",
    "4097",
    "65536",
    "1000000",
    "4294967295",
    "4294967296",
    "18446744073709551616",
    "1e308",
    "0.5",
    "K",
    "(K + 1)",
    "(2 ^ 40)",
    "(-1)",
    "(1 / 0)",
];

const TIME_ENDS: &[&str] = &[
    "1",
    "2",
    "10",
    "100",
    "1000",
    "0",
    "-5",
    "0.5",
    "1e6",
    "1e9",
    "4294967296",
    "1e308",
    "1e309",
    "(T + 1)",
];

const UNARY: &[&str] = &[
    "sqrt", "exp", "log", "expm1", "log1p", "sin", "cos", "tanh", "abs", "sigmoid", "softplus",
    "floor",
];
const BINARY: &[&str] = &["min", "max", "logaddexp"];
const OPS: &[&str] = &[
    "+", "+", "-", "-", "*", "*", "/", "^", "<", ">", "<=", ">=", "==", "!=", "and", "or", "@",
];

/// How deep and how wide generated specs are.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// The nesting depth of generated expressions; stress shapes nest up to `depth × 1000`.
    pub depth: usize,
    /// Terms in a sum, statements in a block, declarations; stress shapes up to `width × 1000`.
    pub width: usize,
}

fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

struct Gen<'a> {
    rng: &'a mut StdRng,
    shape: Shape,
}

impl Gen<'_> {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn upto(&mut self, n: usize) -> usize {
        self.rng.random_range(0..=n)
    }

    fn number(&mut self) -> String {
        if self.chance(0.6) {
            // Ordinary numbers, mostly valid in context.
            let n = self.rng.random_range(0..6);
            match n {
                0 => "1".into(),
                1 => "2".into(),
                2 => "0.5".into(),
                3 => format!("{}", self.rng.random_range(0..100)),
                4 => format!("0.{:03}", self.rng.random_range(1..999)),
                _ => format!(
                    "{}e-{}",
                    self.rng.random_range(1..9),
                    self.rng.random_range(1..6)
                ),
            }
        } else {
            pick(self.rng, NUMBERS).to_string()
        }
    }

    /// An expression over `leaves` (names and calls written out), nested up to `depth`.
    fn expr(&mut self, depth: usize, leaves: &[String]) -> String {
        if depth == 0 || self.chance(0.25) {
            return if !leaves.is_empty() && self.chance(0.6) {
                pick(self.rng, leaves).clone()
            } else {
                self.number()
            };
        }
        let d = depth - 1;
        match self.rng.random_range(0..12) {
            0..=2 => {
                // Mostly arithmetic; comparisons, logic and `@` (type errors on reals) one time
                // in ten.
                let op = if self.chance(0.9) {
                    *pick(self.rng, &OPS[..8])
                } else {
                    *pick(self.rng, &OPS[8..])
                };
                format!("({} {op} {})", self.expr(d, leaves), self.expr(d, leaves))
            }
            3 | 4 => {
                let f = *pick(self.rng, UNARY);
                format!("{f}({})", self.expr(d, leaves))
            }
            5 => {
                let f = *pick(self.rng, BINARY);
                format!("{f}({}, {})", self.expr(d, leaves), self.expr(d, leaves))
            }
            6 => format!(
                "clamp({}, {}, {})",
                self.expr(d, leaves),
                self.number(),
                self.number()
            ),
            7 => format!(
                "(if {} > {} then {} else {})",
                self.expr(d, leaves),
                self.expr(d, leaves),
                self.expr(d, leaves),
                self.expr(d, leaves)
            ),
            8 => format!("(-{})", self.expr(d, leaves)),
            9 => {
                let n = 1 + self.upto(self.shape.width);
                let terms: Vec<String> = (0..n).map(|_| self.expr(d, leaves)).collect();
                format!(
                    "({})",
                    terms.join(if self.chance(0.7) { " + " } else { " * " })
                )
            }
            10 => {
                // A class-valued helper over small vectors.
                let k = 1 + self.upto(4);
                let items: Vec<String> = (0..k).map(|_| self.expr(d, leaves)).collect();
                let f = *pick(
                    self.rng,
                    &["vsum", "logsumexp", "argmax", "softmax", "norm"],
                );
                format!("{f}([{}])", items.join(", "))
            }
            _ => {
                let f = *pick(self.rng, &["cumprod", "cumsum", "linspace", "deriv"]);
                match f {
                    "linspace" => format!("linspace({}, {})", self.number(), self.number()),
                    _ => format!("{f}({})", self.expr(d, leaves)),
                }
            }
        }
    }

    fn depth(&mut self) -> usize {
        1 + self.upto(self.shape.depth)
    }

    fn interval(&mut self) -> String {
        let mut s = String::new();
        if self.chance(0.3) {
            let lo = *pick(self.rng, &["(", "["]);
            let hi = *pick(self.rng, &[")", "]"]);
            s.push_str(&format!(" in {lo}{}, {}{hi}", self.number(), self.number()));
        }
        if self.chance(0.2) {
            s.push_str(pick::<&str>(self.rng, &[" increasing", " decreasing"]));
        }
        s
    }

    /// A whole process: constants, a time, fields, schedules, kernels, a network, a loss and
    /// samplers; each part ordinary or generated, so that a fair share checks cleanly.
    fn process(&mut self, name: &str) -> String {
        let w = self.shape.width;
        let mut out = format!("process {name} {{\n");
        let continuous = self.chance(0.35);
        let t_end = if self.chance(0.7) {
            format!("{}", [10, 50, 100, 1000][self.rng.random_range(0..4)])
        } else {
            pick(self.rng, TIME_ENDS).to_string()
        };
        out.push_str(&format!("  const T = {t_end}\n"));
        let mut consts = vec!["T".to_string(), "pi".to_string()];
        for i in 0..self.upto(w) {
            let d = self.depth();
            let e = self.expr(d, &consts.clone());
            out.push_str(&format!("  const c{i} = {e}\n"));
            consts.push(format!("c{i}"));
        }
        let kind = self.rng.random_range(0..5);
        let k = if self.chance(0.6) {
            "4".to_string()
        } else {
            pick(self.rng, CLASS_COUNTS).to_string()
        };
        out.push_str(&format!("  const K = {k}\n"));
        consts.push("K".into());
        let graph = self.chance(0.25);
        if graph {
            out.push_str("  dim n\n  mask node : bool[n]\n");
        } else {
            out.push_str("  dim d\n");
        }
        let shape = if graph {
            if self.chance(0.5) {
                "[n, n] sym masked(node)"
            } else {
                "[n] masked(node)"
            }
        } else if self.chance(0.1) {
            ""
        } else {
            "[d]"
        };
        let ty = match kind {
            0 | 1 => "real".to_string(),
            2 => format!(
                "cat<{}>",
                if self.chance(0.7) {
                    "K"
                } else {
                    pick(self.rng, CLASS_COUNTS)
                }
            ),
            3 => "bool".to_string(),
            _ => format!(
                "vec<{}>",
                if self.chance(0.7) {
                    "K"
                } else {
                    pick(self.rng, CLASS_COUNTS)
                }
            ),
        };
        out.push_str(&format!("  field x : {ty}{shape}\n"));
        if self.chance(0.2) {
            out.push_str(&format!("  param m : vec<K> = [{}]\n", {
                let n = 1 + self.upto(5);
                (0..n).map(|_| self.number()).collect::<Vec<_>>().join(", ")
            }));
        }
        if continuous {
            let a = if self.chance(0.7) {
                "0".to_string()
            } else {
                self.number()
            };
            let b = if self.chance(0.7) {
                "1".to_string()
            } else {
                self.number()
            };
            out.push_str(&format!("  time t : [{a}, {b}]"));
        } else {
            let a = if self.chance(0.8) {
                "1".to_string()
            } else {
                pick(self.rng, TIME_ENDS).to_string()
            };
            out.push_str(&format!("  time t : {a}..T"));
        }
        if self.chance(0.2) {
            out.push_str(&format!(" data at {}", self.number()));
        }
        out.push('\n');
        // Schedules: the usual ones, then generated ones over t, constants and earlier schedules.
        let mut leaves = consts.clone();
        leaves.push("t".into());
        let standard = self.chance(0.6);
        if standard {
            if continuous {
                out.push_str("  schedule alpha(t) in [0, 1] decreasing = 1 - t\n");
                out.push_str("  schedule sigma(t) in [0, 1] increasing = t\n");
            } else {
                let (a, b) = if self.chance(0.8) {
                    ("1e-4".to_string(), "0.02".to_string())
                } else {
                    (self.number(), self.number())
                };
                out.push_str(&format!(
                    "  schedule beta(t) in (0, 1) increasing = linspace({a}, {b})\n"
                ));
                out.push_str(
                    "  schedule alpha_bar(t) in (0, 1] decreasing = cumprod(1 - beta(t))\n",
                );
                out.push_str("  schedule alpha(t) = sqrt(alpha_bar(t))\n");
                out.push_str("  schedule sigma(t) = sqrt(1 - alpha_bar(t))\n");
                leaves.push("beta(t)".into());
            }
        } else {
            let d = self.depth();
            let e = self.expr(d, &leaves);
            let iv = self.interval();
            out.push_str(&format!("  schedule alpha(t){iv} = {e}\n"));
            let d = self.depth();
            let e = self.expr(d, &leaves);
            let iv = self.interval();
            out.push_str(&format!("  schedule sigma(t){iv} = {e}\n"));
        }
        leaves.push("alpha(t)".into());
        leaves.push("sigma(t)".into());
        for i in 0..self.upto(w) {
            let d = self.depth();
            let e = self.expr(d, &leaves);
            let iv = self.interval();
            out.push_str(&format!("  schedule s{i}(t){iv} = {e}\n"));
            leaves.push(format!("s{i}(t)"));
        }
        // Kernels.
        let cat = ty.starts_with("cat");
        if cat {
            let mix = if self.chance(0.7) {
                "ones(K) / K".to_string()
            } else {
                self.expr(2, &leaves)
            };
            if !continuous && self.chance(0.6) {
                out.push_str(&format!(
                    "  forward x_t | x_{{t-1}} ~ Categorical((1 - beta(t)) * onehot(x_{{t-1}}) + beta(t) * {mix})\n"
                ));
            }
            out.push_str(&format!(
                "  forward x_t | x_0 ~ Categorical(alpha(t) * onehot(x_0) + (1 - alpha(t)) * {mix})\n"
            ));
            out.push_str(&format!("  prior x_T ~ Categorical({mix})\n"));
        } else if ty == "bool" {
            out.push_str(
                "  forward x_t | x_0 ~ Bernoulli(alpha(t) * x_0 + (1 - alpha(t)) * 0.5)\n",
            );
            out.push_str("  prior x_T ~ Bernoulli(0.5)\n");
        } else {
            let (mean, var) = if self.chance(0.8) {
                ("alpha(t) * x_0".to_string(), "sigma(t) ^ 2".to_string())
            } else {
                let mut l = leaves.clone();
                l.push("x_0".into());
                let d = self.depth();
                let m = self.expr(d, &l);
                let d = self.depth();
                (m, self.expr(d, &leaves))
            };
            if standard && !continuous && self.chance(0.5) {
                out.push_str(
                    "  forward x_t | x_{t-1} ~ Normal(sqrt(1 - beta(t)) * x_{t-1}, beta(t))\n",
                );
            }
            out.push_str(&format!("  forward x_t | x_0 ~ Normal({mean}, {var})\n"));
            out.push_str("  prior x_T ~ Normal(0, 1)\n");
            if !continuous && self.chance(0.3) {
                let mut l = leaves.clone();
                l.extend(["x_t".into(), "x_0".into(), "alpha_bar(t-1)".into()]);
                let d = self.depth();
                let m = self.expr(d, &l);
                let d = self.depth();
                let v = self.expr(d, &leaves);
                let approx = if self.chance(0.5) {
                    "#[approximate]\n  "
                } else {
                    ""
                };
                out.push_str(&format!(
                    "  {approx}posterior x_{{t-1}} | x_t, x_0 ~ Normal({m}, {v})\n"
                ));
            }
        }
        // A network and a loss.
        let output = if cat {
            "probs"
        } else {
            *pick(
                self.rng,
                &["eps", "x0", "score", "v", "velocity", "eps", "probs"],
            )
        };
        let inputs = match self.rng.random_range(0..4) {
            0 => "x_t".to_string(),
            1 => "x_t, t".to_string(),
            2 => format!("x_t, {}", self.expr(2, &leaves)),
            _ => "x_t, t, x_t".to_string(),
        };
        out.push_str(&format!("  network net({inputs}) -> {output}(x)\n"));
        let body = if self.chance(0.6) {
            if cat {
                "mean(-log(dot(e, onehot(x_0))))".to_string()
            } else {
                "mean((e - eps) ^ 2)".to_string()
            }
        } else {
            let mut l = leaves.clone();
            l.extend(["e".into(), "x_0".into(), "x_t".into(), "eps".into()]);
            let d = self.depth();
            format!("mean({})", self.expr(d, &l))
        };
        let with = match self.rng.random_range(0..6) {
            0 => " with t ~ Uniform".to_string(),
            1 => format!(" with t ~ LogNormal({}, {})", self.number(), self.number()),
            2 => format!(" with t ~ Weighted({})", self.expr(2, &leaves)),
            _ => String::new(),
        };
        out.push_str(&format!(
            "  loss l = {body} where {{ e = net(x_t, t) }}{with}\n"
        ));
        // Samplers.
        for i in 0..1 + self.upto(w.min(3)) {
            out.push_str(&self.sampler(&format!("smp{i}"), &leaves, continuous, cat));
        }
        out.push_str("}\n");
        out
    }

    fn grid(&mut self, continuous: bool) -> String {
        let n = if self.chance(0.7) {
            "steps".to_string()
        } else {
            self.number()
        };
        match self.rng.random_range(0..8) {
            0 if !continuous => "all".into(),
            1 => format!("quadratic({n})"),
            2 => format!("logsnr({n})"),
            3 => format!("karras({n}, {})", self.number()),
            4 => format!("karras({n}, 7, {})", self.number()),
            5 => {
                let k = 1 + self.upto(self.shape.width);
                let items: Vec<String> = (0..k).map(|_| self.number()).collect();
                format!("[{}]", items.join(", "))
            }
            6 => format!("[T - k for k in 0..{}]", self.number()),
            _ => format!("uniform({n})"),
        }
    }

    fn sampler(&mut self, name: &str, leaves: &[String], continuous: bool, cat: bool) -> String {
        let steps = if self.chance(0.7) {
            format!("{}", self.rng.random_range(1..60))
        } else {
            self.number()
        };
        let mut s = format!(
            "  sampler {name}(steps = {steps}, eta = {}) {{\n",
            self.number()
        );
        s.push_str(&format!("    grid = {}\n", self.grid(continuous)));
        if self.chance(0.2) {
            s.push_str("    init {\n      x ~ prior()\n    }\n");
        }
        s.push_str("    step {\n      let e = net(x, t)\n");
        let mut l: Vec<String> = leaves.to_vec();
        l.extend([
            "x".into(),
            "e".into(),
            "alpha(s)".into(),
            "sigma(s)".into(),
            "s".into(),
            "k".into(),
        ]);
        let n = self.upto(self.shape.width);
        for i in 0..n {
            s.push_str(&self.statement(i, &l, 2, cat));
            l.push(format!("v{i}"));
        }
        if cat {
            s.push_str("      x ~ Categorical(e)\n");
        } else if self.chance(0.5) {
            s.push_str("      x = alpha(s) * e.x0 + sigma(s) * e.eps\n");
        } else {
            let d = self.depth();
            s.push_str(&format!("      x = {}\n", self.expr(d, &l)));
        }
        s.push_str("    }\n");
        if self.chance(0.15) {
            s.push_str("    finalize {\n      x = x\n    }\n");
        }
        s.push_str("  }\n");
        s
    }

    fn statement(&mut self, i: usize, leaves: &[String], nest: usize, cat: bool) -> String {
        let pad = "  ".repeat(nest + 1);
        let d = self.depth();
        match self.rng.random_range(0..8) {
            0 => format!("{pad}let v{i} ~ Normal(0, 1)\n"),
            1 if nest < 4 => {
                let cond = *pick(self.rng, &["first", "last", "not first", "k > 2", "t > s"]);
                let inner = self.statement(i, leaves, nest + 1, cat);
                let other = if self.chance(0.5) {
                    format!(
                        "{pad}}} else {{\n{}",
                        self.statement(i, leaves, nest + 1, cat)
                    )
                } else {
                    String::new()
                };
                format!("{pad}let v{i} = 0\n{pad}if {cond} {{\n{inner}{other}{pad}}}\n")
            }
            2 if nest < 4 => {
                let n = if self.chance(0.8) {
                    format!("{}", self.rng.random_range(1..4))
                } else {
                    self.number()
                };
                let inner = self.statement(i, leaves, nest + 1, cat);
                format!("{pad}let v{i} = 0\n{pad}repeat {n} {{\n{inner}{pad}}}\n")
            }
            3 => format!("{pad}let v{i} = prev({})\n", pick(self.rng, leaves)),
            4 if !cat => format!("{pad}x = x + {}\n", self.expr(d, leaves)),
            _ => format!("{pad}let v{i} = {}\n", self.expr(d, leaves)),
        }
    }
}

/// A stress shape: one construct nested up to `depth × 1000` deep or repeated up to
/// `width × 1000` times (declarations and statements up to `width × 100`).
fn stress(rng: &mut StdRng, shape: Shape) -> String {
    let deep = 1 + rng.random_range(0..=shape.depth * 1000);
    let wide = 1 + rng.random_range(0..=shape.width * 1000);
    // Declarations and statements each cost a schedule's table or a sampler's dry run: up to
    // `width × 100` of them.
    let decls_n = 1 + rng.random_range(0..=shape.width * 100);
    let which = rng.random_range(0..20);
    let expr = match which {
        0 => format!("{}1{}", "(".repeat(deep), ")".repeat(deep)),
        1 => format!("{}1", "-".repeat(deep)),
        2 => format!("{}true", "not ".repeat(deep)),
        3 => format!("{}1{}", "sqrt(".repeat(deep), ")".repeat(deep)),
        4 => format!(
            "{}1{}",
            "if true then ".repeat(deep),
            " else 0".repeat(deep)
        ),
        5 => vec!["1"; wide].join(" + "),
        6 => vec!["2"; deep].join(" ^ "),
        7 => format!("[{}]", vec!["1"; wide].join(", ")),
        8 => format!("{}1{}", "[".repeat(deep), "]".repeat(deep)),
        9 => format!("vsum([k for k in 0..{}])", pick(rng, NUMBERS)),
        10 => format!("{}x{}", "min(".repeat(deep), ", 1)".repeat(deep)),
        11 => format!("{}1", "1 * ".repeat(wide)),
        12 => pick(rng, NUMBERS).repeat(1 + deep % 50),
        13 => format!("1{}", ".x".repeat(deep)),
        14 => format!("e{}", "[0]".repeat(deep)),
        15 => format!("f{}", "(1)".repeat(deep)),
        16 => "a".repeat(wide * 10),
        17 => "9".repeat(wide),
        18 => format!("1e{}", "9".repeat(1 + deep % 40)),
        _ => format!("{}1{}", "clamp(".repeat(deep), ", 0, 1)".repeat(deep)),
    };
    let spot = rng.random_range(0..10);
    let mut decls = String::new();
    match spot {
        6 => {
            for i in 0..decls_n {
                decls.push_str(&format!("  const c{i} = {i}\n"));
            }
        }
        7 => {
            for i in 0..decls_n {
                decls.push_str(&format!(
                    "  schedule s{i}(t) = {}\n",
                    if i == 0 {
                        "t".to_string()
                    } else {
                        format!("s{}(t) + 1", i - 1)
                    }
                ));
            }
        }
        8 => {
            // Functions that double at each level: fn f1(a) = f0(a) + f0(a), …
            decls.push_str("  fn f0(a) = a\n");
            for i in 1..deep.min(200) {
                decls.push_str(&format!("  fn f{i}(a) = f{}(a) + f{}(a)\n", i - 1, i - 1));
            }
        }
        _ => {}
    }
    let t_end = if spot == 9 {
        pick(rng, TIME_ENDS).to_string()
    } else {
        "1000".to_string()
    };
    let k = if spot == 9 {
        pick(rng, CLASS_COUNTS).to_string()
    } else {
        "4".to_string()
    };
    let (c, sch, lossb, stmt) = match spot {
        0 => (
            expr.as_str(),
            "linspace(1e-4, 0.02)",
            "mean((e - eps) ^ 2)",
            "let z = 1",
        ),
        1 | 9 => ("1", expr.as_str(), "mean((e - eps) ^ 2)", "let z = 1"),
        2 => ("1", "linspace(1e-4, 0.02)", expr.as_str(), "let z = 1"),
        8 => (
            "f199(1)",
            "linspace(1e-4, 0.02)",
            "mean((e - eps) ^ 2)",
            "let z = 1",
        ),
        _ => (
            "1",
            "linspace(1e-4, 0.02)",
            "mean((e - eps) ^ 2)",
            "let z = 1",
        ),
    };
    let mut body = String::new();
    if spot == 3 {
        body.push_str(&format!("      let z0 = {expr}\n"));
    } else if spot == 4 {
        for i in 0..decls_n {
            body.push_str(&format!(
                "      let z{i} = {}\n",
                if i == 0 {
                    "1".into()
                } else {
                    format!("z{} + 1", i - 1)
                }
            ));
        }
    } else if spot == 5 {
        body.push_str(&format!(
            "{}      let z = 1\n{}",
            "      if first {\n".repeat(deep.min(100_000)),
            "      }\n".repeat(deep.min(100_000))
        ));
        body.push_str(&format!(
            "      repeat {} {{ x = x }}\n",
            pick(rng, NUMBERS)
        ));
    }
    format!(
        "process stress {{\n  const T = {t_end}\n  const K = {k}\n  const c = {c}\n{decls}  dim d\n  field x : real[d]\n  field y : cat<K>[d]\n  time t : 1..T\n  schedule beta(t) = {sch}\n  schedule alpha_bar(t) = cumprod(1 - beta(t))\n  forward x_t | x_0 ~ Normal(sqrt(alpha_bar(t)) * x_0, 1 - alpha_bar(t))\n  forward y_t | y_0 ~ Categorical(alpha_bar(t) * onehot(y_0) + (1 - alpha_bar(t)) * ones(K) / K)\n  prior x_T ~ Normal(0, 1)\n  prior y_T ~ Categorical(ones(K) / K)\n  network eps_hat(x_t, y_t, t) -> eps(x), probs(y)\n  loss l = {lossb} where {{ e = eps_hat(x_t, y_t, t).x }}\n  sampler s(steps = 10) {{\n    grid = uniform(steps)\n    step {{\n      let e = eps_hat(x, y, t)\n      {stmt}\n{body}      x = sqrt(alpha_bar(s)) * e.x0 + sqrt(1 - alpha_bar(s)) * e.eps\n    }}\n  }}\n}}\n"
    )
}

/// Token-aware mutations of a text: numbers swapped for extreme ones, names swapped, lines
/// deleted, duplicated or swapped, characters inserted or removed.
pub fn mutate(rng: &mut StdRng, text: &str) -> String {
    let mut s = text.to_string();
    for _ in 0..rng.random_range(1..5) {
        if s.is_empty() {
            break;
        }
        match rng.random_range(0..9) {
            0 | 1 => {
                // Replace the n-th number.
                let spans = runs(&s, |c| c.is_ascii_digit() || c == '.' || c == 'e');
                let spans: Vec<_> = spans
                    .into_iter()
                    .filter(|&(a, _)| s.as_bytes()[a].is_ascii_digit())
                    .collect();
                if !spans.is_empty() {
                    let (a, b) = *pick(rng, &spans);
                    s.replace_range(a..b, pick::<&str>(rng, NUMBERS));
                }
            }
            2 => {
                // Replace an identifier with another from the same text.
                let spans = runs(&s, |c| c.is_ascii_alphanumeric() || c == '_');
                let spans: Vec<_> = spans
                    .into_iter()
                    .filter(|&(a, _)| s.as_bytes()[a].is_ascii_alphabetic())
                    .collect();
                if spans.len() > 1 {
                    let (a, b) = *pick(rng, &spans);
                    let (c, d) = *pick(rng, &spans);
                    let other = s[c..d].to_string();
                    s.replace_range(a..b, &other);
                }
            }
            3 | 4 => {
                let mut lines: Vec<String> = s.lines().map(String::from).collect();
                if lines.is_empty() {
                    continue;
                }
                let i = rng.random_range(0..lines.len());
                match rng.random_range(0..3) {
                    0 => {
                        lines.remove(i);
                    }
                    1 => {
                        let l = lines[i].clone();
                        let n = if rng.random_bool(0.8) {
                            1
                        } else {
                            rng.random_range(1..200)
                        };
                        for _ in 0..n {
                            lines.insert(i, l.clone());
                        }
                    }
                    _ => {
                        let j = rng.random_range(0..lines.len());
                        lines.swap(i, j);
                    }
                }
                s = lines.join("\n");
            }
            5 => {
                let i = char_boundary(&s, rng.random_range(0..s.len()));
                let j = char_boundary(&s, (i + rng.random_range(1..30)).min(s.len()));
                s.replace_range(i..j, "");
            }
            6 => {
                let i = char_boundary(&s, rng.random_range(0..s.len()));
                let tok = *pick(
                    rng,
                    &[
                        "{",
                        "}",
                        "(",
                        ")",
                        "[",
                        "]",
                        ",",
                        ";",
                        "~",
                        "|",
                        "=",
                        "..",
                        "@",
                        "^",
                        "x_{t-1}",
                        "x_{t+4294967296}",
                        "prev(",
                        "#[approximate]",
                        "/*",
                        "//",
                        "\u{0}",
                        "é",
                        "\u{202e}",
                        "repeat 4294967296 {",
                        "if",
                        "else",
                        "let",
                        "cat<4294967296>",
                        "sym",
                        "masked(node)",
                        "data at",
                        "1e308",
                        "-0",
                    ],
                );
                s.insert_str(i, &format!(" {tok} "));
            }
            7 => {
                // Wrap a number in a deep expression.
                let spans = runs(&s, |c| c.is_ascii_digit());
                if !spans.is_empty() {
                    let (a, b) = *pick(rng, &spans);
                    let n = rng.random_range(1..200);
                    let inner = s[a..b].to_string();
                    s.replace_range(
                        a..b,
                        &format!("{}{inner}{}", "(1 * ".repeat(n), ")".repeat(n)),
                    );
                }
            }
            _ => {
                let i = char_boundary(&s, rng.random_range(0..s.len()));
                let j = char_boundary(&s, (i + rng.random_range(1..60)).min(s.len()));
                let chunk = s[i..j].to_string();
                let at = char_boundary(&s, rng.random_range(0..s.len()));
                s.insert_str(at, &chunk);
            }
        }
    }
    s
}

fn char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Byte ranges of maximal runs of characters matching `f`.
fn runs(s: &str, f: impl Fn(char) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (f(c), start) {
            (true, None) => start = Some(i),
            (false, Some(a)) => {
                out.push((a, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(a) = start {
        out.push((a, s.len()));
    }
    out
}

/// One spec case: its family and its text.
pub fn generate(rng: &mut StdRng, shape: Shape, corpus: &[String]) -> (usize, String) {
    let family = match rng.random_range(0..100) {
        0..=44 => 0,
        45..=64 => 1,
        65..=89 => 2,
        _ => 3,
    };
    let text = match family {
        0 | 1 => {
            let mut g = Gen { rng, shape };
            let mut text = String::new();
            if g.chance(0.2) {
                let d = g.depth();
                let e = g.expr(d, &["a".to_string(), "b".to_string()]);
                text.push_str(&format!("fn h(a, b) = {e}\n"));
            }
            let n = if g.chance(0.9) { 1 } else { 2 };
            for i in 0..n {
                text.push_str(&g.process(&format!("p{i}")));
            }
            if family == 1 {
                mutate(rng, &text)
            } else {
                text
            }
        }
        2 if !corpus.is_empty() => {
            let base = pick(rng, corpus).clone();
            mutate(rng, &base)
        }
        _ => stress(rng, shape),
    };
    (family, text)
}
