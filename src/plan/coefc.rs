//! C text that computes an entry's coefficient row at run time, for the ahead-of-time library's
//! per-sample-time entry points (`diffc_<process>_<entry>_at`), and the same function
//! translated to JavaScript for the WGSL manifest's host module (`row_function_js`).
//!
//! The function mirrors the interpreter's host code (`check::eval::Evaluator`) operation by
//! operation, in f64 and in the same order, calling the same C math library functions that
//! Rust's `f64` methods call (`exp`, `log`, `log1p`, `expm1`, `pow`, `sin`, `cos`, `tanh`), so
//! that a row it computes equals the row `diffc eval` computes bit for bit once both are rounded
//! to f32. Sums start from −0.0 as Rust's `Iterator::sum` does. Every value the interpreter
//! checks for finiteness is checked here too: a non-finite value, a division by 0, a log of a
//! non-positive number or an index outside its vector makes the function return 1 (the entry
//! then returns `DIFFC_ERR_ARG`), where the interpreter reports an error.
//!
//! Discrete-time schedules are read from tables (the checker's own tabulation, in f64);
//! continuous-time schedules are evaluated from their bodies at the time they are read at.
//! Process `param`s come from the caller (`pv[i]`, f32 values, or NULL for the default).
//! What the printer cannot express (a cumulative product outside a schedule, a batch
//! reduction) is an error, and the entry then has no `_at` variant.

use crate::ir::Program;
use crate::syntax::ast::{BinOp, UnOp};
use crate::typed::{Builtin, Elem, ExprId, ExprKind, Process, TimeKind, TimeRef, Ty, Value};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// A value in the generated code: the names of C variables that hold it.
#[derive(Clone, Debug)]
enum CV {
    /// A double.
    S(String),
    /// An int holding 0 or 1.
    B(String),
    /// `double name[k]`.
    V(String, usize),
    /// `double name[k * k]`, row-major.
    M(String, usize),
    /// A list of values known only by position.
    L(Vec<CV>),
}

/// What the time variables are where an expression is evaluated.
#[derive(Clone)]
struct Scope {
    t: String,
    s: Option<String>,
    /// Whether run-time params are visible (a schedule's body sees the defaults only).
    params: bool,
}

struct Pr<'a> {
    p: &'a Process,
    prefix: &'a str,
    n: usize,
    out: String,
    /// Tables read so far: name, what, values (f64), defined flags.
    tables: Vec<(String, String, Vec<String>, Vec<&'static str>)>,
    emitted: BTreeSet<usize>,
    /// Scalars already checked for finiteness.
    checked: BTreeSet<String>,
}

type R = Result<CV, String>;

fn lit(x: f64) -> String {
    if x == f64::INFINITY {
        "INFINITY".into()
    } else if x == f64::NEG_INFINITY {
        "(-INFINITY)".into()
    } else {
        format!("({x:?})")
    }
}

/// A C function `static int NAME(double t, double s, const float *const *pv, float *row)` that
/// writes program `prog`'s coefficients at time `t` (and `s`, a posterior's target time) into
/// `row` at offsets `offs`, each rounded to f32, and returns 0 (1 where the interpreter would
/// report an error). Static tables it reads come first in the text.
fn print<'a>(
    p: &'a Process,
    prog: &Program,
    name: &'a str,
    offs: &[u32],
) -> Result<Pr<'a>, String> {
    let mut pr = Pr {
        p,
        prefix: name,
        n: 0,
        out: String::new(),
        tables: Vec::new(),
        emitted: BTreeSet::new(),
        checked: BTreeSet::new(),
    };
    let top = Scope {
        t: "t".into(),
        s: Some("s".into()),
        params: true,
    };
    for (c, (e, at)) in prog.coefs.iter().enumerate() {
        let _ = writeln!(pr.out, "  {{ /* c{c} */");
        let sc = match at {
            None => top.clone(),
            Some(time) => {
                let v = pr.real(*time, &top)?;
                Scope {
                    t: v,
                    ..top.clone()
                }
            }
        };
        let v = pr.ex(*e, &sc)?;
        let off = offs[c];
        match v {
            CV::S(x) | CV::B(x) => {
                let _ = writeln!(pr.out, "  row[{off}] = (float)({x});");
            }
            CV::V(x, k) => {
                let _ = writeln!(
                    pr.out,
                    "  for (int j = 0; j < {k}; j++) row[{off} + j] = (float)({x}[j]);"
                );
            }
            CV::M(x, k) => {
                let _ = writeln!(
                    pr.out,
                    "  for (int j = 0; j < {}; j++) row[{off} + j] = (float)({x}[j]);",
                    k * k
                );
            }
            CV::L(_) => return Err(format!("coefficient c{c} is a list")),
        }
        let _ = writeln!(pr.out, "  }}");
    }
    Ok(pr)
}

/// Program `prog`'s coefficients as a C function
/// `static int NAME(double t, double s, const float *const *pv, float *row)` that writes them at
/// time `t` (and `s`, a posterior's target time) into `row` at offsets `offs`, each rounded to
/// f32, and returns 0 (1 where the interpreter would report an error). Static tables it reads
/// come first in the text.
pub(crate) fn row_function(
    p: &Process,
    prog: &Program,
    name: &str,
    offs: &[u32],
) -> Result<String, String> {
    let pr = print(p, prog, name, offs)?;
    let mut text = String::new();
    for (table, what, vals, def) in &pr.tables {
        let _ = writeln!(
            text,
            "/* {what} */\nstatic const double {table}[{}] = {{{}}};\nstatic const unsigned char {table}_def[{}] = {{{}}};",
            vals.len().max(1),
            vals.join(", "),
            def.len().max(1),
            def.join(", ")
        );
    }
    let _ = write!(
        text,
        "static int {name}(double t, double s, const float *const *pv, float *row) {{\n  (void)t;\n  (void)s;\n  (void)pv;\n{}  return 0;\n}}\n",
        pr.out
    );
    Ok(text)
}

/// The same function in JavaScript, for WebGPU hosts: `function NAME(t, s, pv, row)` with `pv[i]`
/// a param's values (an array, or null for the default) and `row` a `Float32Array`. The text is
/// the C function's statements with declarations as `let`, arrays as `Float64Array`s and the C
/// math library's functions as `Math`'s (`rt_round` and `rt_signbit`, which `JS_PRELUDE`
/// defines, stand for C's `round` and `signbit`). JavaScript's `Math` functions are not required
/// to round as glibc's do, so a row may differ from diffc's in the last f32 bit.
pub(crate) fn row_function_js(
    p: &Process,
    prog: &Program,
    name: &str,
    offs: &[u32],
) -> Result<String, String> {
    let pr = print(p, prog, name, offs)?;
    let mut text = String::new();
    for (table, what, vals, def) in &pr.tables {
        let _ = writeln!(
            text,
            "// {what}\nconst {table} = new Float64Array([{}]);\nconst {table}_def = new Uint8Array([{}]);",
            vals.join(", "),
            def.join(", ")
        );
    }
    let _ = write!(
        text,
        "function {name}(t, s, pv, row) {{\n{}  return 0;\n}}\n",
        to_js(&pr.out)
    );
    Ok(text)
}

/// Helpers the JavaScript row functions call.
pub(crate) const JS_PRELUDE: &str = "function rt_round(x) { return x < 0 ? -Math.round(-x) : Math.round(x); }\nfunction rt_signbit(x) { return x < 0 || Object.is(x, -0); }\n";

/// C statements of the printer as JavaScript (see `row_function_js`).
fn to_js(c: &str) -> String {
    let mut out = String::new();
    for line in c.lines() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        // `double vN[K];` declares an array.
        if let Some(rest) = body.strip_prefix("double ") {
            if let Some((name, k)) = rest.strip_suffix("];").and_then(|r| r.split_once('[')) {
                if !name.contains(' ') && !name.contains(',') {
                    let _ = writeln!(out, "{indent}let {name} = new Float64Array({k});");
                    continue;
                }
            }
        }
        let body = body
            .replace("(double)", "")
            .replace("(int)", "")
            .replace("(float)", "Math.fround");
        let _ = writeln!(out, "{indent}{}", js_tokens(&body));
    }
    out
}

/// Rename C identifiers to JavaScript's: declarations and math functions.
fn js_tokens(s: &str) -> String {
    let map = |w: &str| -> Option<&'static str> {
        Some(match w {
            "double" | "int" => "let",
            "exp" => "Math.exp",
            "log" => "Math.log",
            "log1p" => "Math.log1p",
            "expm1" => "Math.expm1",
            "pow" => "Math.pow",
            "sqrt" => "Math.sqrt",
            "fmax" => "Math.max",
            "fmin" => "Math.min",
            "fabs" => "Math.abs",
            "floor" => "Math.floor",
            "trunc" => "Math.trunc",
            "sin" => "Math.sin",
            "cos" => "Math.cos",
            "tanh" => "Math.tanh",
            "isfinite" => "Number.isFinite",
            "isnan" => "Number.isNaN",
            "round" => "rt_round",
            "signbit" => "rt_signbit",
            "INFINITY" => "Infinity",
            _ => return None,
        })
    };
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c.is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '_'
                    || (c.is_ascii_digit() && chars[i] == '.'))
            {
                i += 1;
            }
            let w: String = chars[start..i].iter().collect();
            // A member (`Math.exp`) or a number is left alone.
            let after_dot = start > 0 && chars[start - 1] == '.';
            match map(&w) {
                Some(js) if !c.is_ascii_digit() && !after_dot => out.push_str(js),
                _ => out.push_str(&w),
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

impl Pr<'_> {
    fn fresh(&mut self) -> String {
        self.n += 1;
        format!("v{}", self.n)
    }

    fn line(&mut self, s: impl AsRef<str>) {
        let _ = writeln!(self.out, "  {}", s.as_ref());
    }

    fn scalar(&mut self, expr: impl AsRef<str>) -> String {
        let v = self.fresh();
        self.line(format!("double {v} = {};", expr.as_ref()));
        v
    }

    fn vec(&mut self, k: usize) -> String {
        let v = self.fresh();
        self.line(format!("double {v}[{}];", k.max(1)));
        v
    }

    /// Run `f` with its statements collected apart (to place them inside a block).
    fn block<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, String>,
    ) -> Result<(T, String), String> {
        let saved = std::mem::take(&mut self.out);
        let r = f(self);
        let body = std::mem::replace(&mut self.out, saved);
        Ok((r?, body))
    }

    /// The interpreter's `eval`: the value, then the finiteness check.
    fn ex(&mut self, id: ExprId, sc: &Scope) -> R {
        let v = self.inner(id, sc)?;
        self.check_finite(&v);
        Ok(v)
    }

    fn check_finite(&mut self, v: &CV) {
        match v {
            // Literals are finite, and the times are checked before the row is computed.
            CV::S(x) if !x.starts_with('v') => {}
            CV::S(x) => {
                if self.checked.insert(x.clone()) {
                    self.line(format!("if (!isfinite({x})) return 1;"))
                }
            }
            CV::B(_) => {}
            CV::V(x, k) => self.line(format!(
                "for (int j = 0; j < {k}; j++) if (!isfinite({x}[j])) return 1;"
            )),
            CV::M(x, k) => self.line(format!(
                "for (int j = 0; j < {}; j++) if (!isfinite({x}[j])) return 1;",
                k * k
            )),
            CV::L(xs) => {
                for x in xs.clone() {
                    self.check_finite(&x);
                }
            }
        }
    }

    /// A real (a bool reads as 0 or 1), as a C expression.
    fn real(&mut self, id: ExprId, sc: &Scope) -> Result<String, String> {
        match self.ex(id, sc)? {
            CV::S(x) => Ok(x),
            CV::B(b) => Ok(format!("(double){b}")),
            _ => Err("a real was expected".into()),
        }
    }

    fn truth(&mut self, v: &CV) -> Result<String, String> {
        match v {
            CV::B(b) => Ok(b.clone()),
            CV::S(x) => Ok(format!("({x} != 0.0)")),
            _ => Err("a condition must be one value".into()),
        }
    }

    /// Elements of a value as (C element expressions, shape); bools read as reals.
    fn elems(v: &CV) -> Option<(Vec<String>, Shape)> {
        Some(match v {
            CV::S(x) => (vec![x.clone()], Shape::S),
            CV::B(b) => (vec![format!("(double){b}")], Shape::S),
            CV::V(x, k) => ((0..*k).map(|j| format!("{x}[{j}]")).collect(), Shape::V(*k)),
            CV::M(x, k) => (
                (0..k * k).map(|j| format!("{x}[{j}]")).collect(),
                Shape::M(*k),
            ),
            CV::L(_) => return None,
        })
    }

    fn make(&mut self, shape: Shape, xs: Vec<String>) -> CV {
        match shape {
            Shape::S => CV::S(self.scalar(&xs[0])),
            Shape::V(k) | Shape::M(k) => {
                let v = self.vec(xs.len());
                for (j, x) in xs.iter().enumerate() {
                    self.line(format!("{v}[{j}] = {x};"));
                }
                if matches!(shape, Shape::V(_)) {
                    CV::V(v, k)
                } else {
                    CV::M(v, k)
                }
            }
        }
    }

    fn map(&mut self, v: &CV, f: impl Fn(&str) -> String) -> R {
        self.map_dyn(v, &f)
    }

    fn map_dyn(&mut self, v: &CV, f: &dyn Fn(&str) -> String) -> R {
        match v {
            CV::L(xs) => {
                let mut out = Vec::new();
                for x in xs.clone() {
                    out.push(self.map_dyn(&x, f)?);
                }
                Ok(CV::L(out))
            }
            _ => {
                let (xs, shape) = Self::elems(v).unwrap();
                let ys = xs.iter().map(|x| f(x)).collect();
                Ok(self.make(shape, ys))
            }
        }
    }

    /// Element-wise with a guard per element (`guard(x)` true is an error).
    fn checked_map(
        &mut self,
        v: &CV,
        guard: impl Fn(&str) -> String,
        f: impl Fn(&str) -> String,
    ) -> R {
        let (xs, shape) = Self::elems(v).ok_or("a function of a list")?;
        for x in &xs {
            self.line(format!("if ({}) return 1;", guard(x)));
        }
        let ys = xs.iter().map(|x| f(x)).collect();
        Ok(self.make(shape, ys))
    }

    /// The interpreter's `zip`: element-wise with scalar broadcasting.
    fn zip(&mut self, a: &CV, b: &CV, f: impl Fn(&str, &str) -> String) -> R {
        let (xs, sa) = Self::elems(a).ok_or("a list operand")?;
        let (ys, sb) = Self::elems(b).ok_or("a list operand")?;
        let (shape, pairs): (Shape, Vec<(String, String)>) = match (sa, sb) {
            (Shape::S, Shape::S) => (Shape::S, vec![(xs[0].clone(), ys[0].clone())]),
            (Shape::S, s) => (s, ys.iter().map(|y| (xs[0].clone(), y.clone())).collect()),
            (s, Shape::S) => (s, xs.iter().map(|x| (x.clone(), ys[0].clone())).collect()),
            (Shape::V(k), Shape::V(l)) if k == l => (Shape::V(k), xs.into_iter().zip(ys).collect()),
            (Shape::M(k), Shape::M(l)) if k == l => (Shape::M(k), xs.into_iter().zip(ys).collect()),
            _ => return Err("operands of different sizes".into()),
        };
        let zs = pairs.iter().map(|(x, y)| f(x, y)).collect();
        Ok(self.make(shape, zs))
    }

    /// Sum of terms from −0.0, as Rust's `Iterator::sum`.
    fn sum(&mut self, terms: impl Iterator<Item = String>) -> String {
        let v = self.scalar("-0.0");
        for t in terms {
            self.line(format!("{v} += {t};"));
        }
        v
    }

    fn inner(&mut self, id: ExprId, sc: &Scope) -> R {
        let p = self.p;
        let e = p.expr(id);
        Ok(match &e.kind {
            ExprKind::Number(x) => CV::S(lit(*x)),
            ExprKind::Bool(b) => CV::B(if *b { "1" } else { "0" }.into()),
            ExprKind::Const(c) => CV::S(lit(p.consts[c.index()].value)),
            ExprKind::Param(pid) => {
                let i = pid.index();
                let default = p.params[i]
                    .default
                    .clone()
                    .ok_or_else(|| format!("param `{}` has no default", p.params[i].name))?;
                let given = |j: usize| {
                    if sc.params {
                        format!("(pv && pv[{i}] ? (double)pv[{i}][{j}] : ")
                    } else {
                        "(".into()
                    }
                };
                match default {
                    Value::Real(x) => CV::S(self.scalar(format!("{}{})", given(0), lit(x)))),
                    Value::Vec(xs) => {
                        let ys = xs
                            .iter()
                            .enumerate()
                            .map(|(j, x)| format!("{}{})", given(j), lit(*x)))
                            .collect();
                        self.make(Shape::V(xs.len()), ys)
                    }
                    Value::Mat(k, xs) => {
                        let ys = xs
                            .iter()
                            .enumerate()
                            .map(|(j, x)| format!("{}{})", given(j), lit(*x)))
                            .collect();
                        self.make(Shape::M(k), ys)
                    }
                    _ => {
                        return Err(format!(
                            "param `{}` is not a number, vector or matrix",
                            p.params[i].name
                        ))
                    }
                }
            }
            ExprKind::Time(TimeRef::T) => CV::S(sc.t.clone()),
            ExprKind::Time(TimeRef::S) => CV::S(sc.s.clone().ok_or("`s` where there is none")?),
            ExprKind::Local(l) => match p.locals[l.index()].value {
                Some(v) => self.ex(v, sc)?,
                None => return Err("a local without a value".into()),
            },
            ExprKind::Schedule { id: s, at } => {
                let at = self.real(*at, sc)?;
                self.schedule_at(s.index(), &at)?
            }
            ExprKind::Unary { op: UnOp::Neg, arg } => {
                let a = self.ex(*arg, sc)?;
                self.map(&a, |x| format!("-{x}"))?
            }
            ExprKind::Unary { op: UnOp::Not, arg } => {
                let a = self.ex(*arg, sc)?;
                let t = self.truth(&a)?;
                let v = self.fresh();
                self.line(format!("int {v} = !{t};"));
                CV::B(v)
            }
            ExprKind::Binary {
                op: op @ (BinOp::And | BinOp::Or),
                lhs,
                rhs,
            } => {
                let a = self.ex(*lhs, sc)?;
                let ta = self.truth(&a)?;
                let v = self.fresh();
                self.line(format!("int {v} = {ta};"));
                let (tb, body) = self.block(|pr| {
                    let b = pr.ex(*rhs, sc)?;
                    pr.truth(&b)
                })?;
                let guard = if *op == BinOp::And {
                    v.clone()
                } else {
                    format!("!{v}")
                };
                self.out
                    .push_str(&format!("  if ({guard}) {{\n{body}  {v} = {tb};\n  }}\n"));
                CV::B(v)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let a = self.ex(*lhs, sc)?;
                let b = self.ex(*rhs, sc)?;
                self.binary(*op, &a, &b)?
            }
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => {
                let c = self.ex(*cond, sc)?;
                let tc = self.truth(&c)?;
                let (a, body_a) = self.block(|pr| pr.ex(*then, sc))?;
                let (b, body_b) = self.block(|pr| pr.ex(*otherwise, sc))?;
                let (xa, sa) = Self::elems(&a).ok_or("a list in a branch")?;
                let (xb, sb) = Self::elems(&b).ok_or("a list in a branch")?;
                if sa != sb {
                    return Err("branches of different shapes".into());
                }
                let (r, bool_result) = match (&a, &b) {
                    (CV::B(_), CV::B(_)) => {
                        let v = self.fresh();
                        self.line(format!("int {v};"));
                        (v, true)
                    }
                    _ => {
                        let v = self.fresh();
                        match sa {
                            Shape::S => self.line(format!("double {v};")),
                            _ => self.line(format!("double {v}[{}];", xa.len())),
                        }
                        (v, false)
                    }
                };
                let assign = |xs: &[String], raw: &CV| -> String {
                    match (sa, raw) {
                        (Shape::S, CV::B(b)) if bool_result => format!("  {r} = {b};\n"),
                        (Shape::S, _) => format!("  {r} = {};\n", xs[0]),
                        _ => xs
                            .iter()
                            .enumerate()
                            .map(|(j, x)| format!("  {r}[{j}] = {x};\n"))
                            .collect(),
                    }
                };
                let ta = assign(&xa, &a);
                let tb = assign(&xb, &b);
                self.out.push_str(&format!(
                    "  if ({tc}) {{\n{body_a}{ta}  }} else {{\n{body_b}{tb}  }}\n"
                ));
                match sa {
                    _ if bool_result => CV::B(r),
                    Shape::S => CV::S(r),
                    Shape::V(k) => CV::V(r, k),
                    Shape::M(k) => CV::M(r, k),
                }
            }
            ExprKind::Index { base, index } => {
                let i = self.real(*index, sc)?;
                let b = self.ex(*base, sc)?;
                match b {
                    CV::V(x, k) => {
                        self.line(format!(
                            "if ({i} - trunc({i}) != 0.0 || {i} < 0.0 || {i} >= {k}) return 1;"
                        ));
                        CV::S(self.scalar(format!("{x}[(int){i}]")))
                    }
                    CV::L(items) => {
                        let mut xs = Vec::new();
                        for it in &items {
                            match it {
                                CV::S(x) => xs.push(x.clone()),
                                CV::B(b) => xs.push(format!("(double){b}")),
                                _ => return Err("an index into a list of vectors".into()),
                            }
                        }
                        let k = xs.len();
                        self.line(format!(
                            "if ({i} - trunc({i}) != 0.0 || {i} < 0.0 || {i} >= {k}) return 1;"
                        ));
                        let arr = self.make(Shape::V(k), xs);
                        let CV::V(a, _) = arr else { unreachable!() };
                        CV::S(self.scalar(format!("{a}[(int){i}]")))
                    }
                    _ => return Err("an index into a value that is not a vector".into()),
                }
            }
            ExprKind::List(items) => {
                let mut vals = Vec::new();
                for it in items {
                    vals.push(self.ex(*it, sc)?);
                }
                let n = vals.len();
                if vals.iter().all(|v| matches!(v, CV::S(_) | CV::B(_))) {
                    let xs = vals
                        .iter()
                        .map(|v| Self::elems(v).unwrap().0[0].clone())
                        .collect();
                    self.make(Shape::V(n), xs)
                } else if vals.iter().all(|v| matches!(v, CV::V(_, k) if *k == n)) {
                    let xs = vals
                        .iter()
                        .flat_map(|v| Self::elems(v).unwrap().0)
                        .collect();
                    self.make(Shape::M(n), xs)
                } else {
                    CV::L(vals)
                }
            }
            ExprKind::Call { func, args } => self.call(*func, args, id, sc)?,
            other => {
                return Err(format!(
                    "{} cannot be computed by the library's host code",
                    match other {
                        ExprKind::SamplerParam { .. } => "a sampler parameter",
                        ExprKind::Step(_) => "a step variable",
                        ExprKind::Field(_) | ExprKind::State(_) => "a field's value",
                        ExprKind::Time(TimeRef::R) => "the previous time `r`",
                        _ => "this expression",
                    }
                ))
            }
        })
    }

    fn binary(&mut self, op: BinOp, a: &CV, b: &CV) -> R {
        let cmp = |pr: &mut Self, o: &str| -> R {
            let (Some((x, Shape::S)), Some((y, Shape::S))) = (Self::elems(a), Self::elems(b))
            else {
                return Err("a comparison of vectors".into());
            };
            let v = pr.fresh();
            pr.line(format!("int {v} = {} {o} {};", x[0], y[0]));
            Ok(CV::B(v))
        };
        match op {
            BinOp::Add => self.zip(a, b, |x, y| format!("{x} + {y}")),
            BinOp::Sub => self.zip(a, b, |x, y| format!("{x} - {y}")),
            BinOp::Mul => self.zip(a, b, |x, y| format!("{x} * {y}")),
            BinOp::Div => {
                let (ys, _) = Self::elems(b).ok_or("a list operand")?;
                for y in &ys {
                    self.line(format!("if ({y} == 0.0) return 1;"));
                }
                self.zip(a, b, |x, y| format!("{x} / {y}"))
            }
            BinOp::Pow => {
                let v = self.zip(a, b, |x, y| format!("pow({x}, {y})"))?;
                self.check_finite(&v);
                Ok(v)
            }
            BinOp::MatMul => match (a, b) {
                (CV::V(v, k), CV::M(m, _)) => {
                    let k = *k;
                    let mut xs = Vec::new();
                    for j in 0..k {
                        xs.push(self.sum((0..k).map(|i| format!("{v}[{i}] * {m}[{}]", i * k + j))));
                    }
                    Ok(self.make(Shape::V(k), xs))
                }
                (CV::M(m, k), CV::V(v, _)) => {
                    let k = *k;
                    let mut xs = Vec::new();
                    for i in 0..k {
                        xs.push(self.sum((0..k).map(|j| format!("{m}[{}] * {v}[{j}]", i * k + j))));
                    }
                    Ok(self.make(Shape::V(k), xs))
                }
                (CV::M(x, k), CV::M(y, _)) => {
                    let k = *k;
                    let o = self.vec(k * k);
                    self.line(format!(
                        "for (int i = 0; i < {}; i++) {o}[i] = 0.0;\n  for (int i = 0; i < {k}; i++)\n    for (int l = 0; l < {k}; l++) {{\n      double xil = {x}[i * {k} + l];\n      if (xil != 0.0)\n        for (int j = 0; j < {k}; j++) {o}[i * {k} + j] += xil * {y}[l * {k} + j];\n    }}",
                        k * k
                    ));
                    Ok(CV::M(o, k))
                }
                _ => Err("a matrix product of these shapes".into()),
            },
            BinOp::Lt => cmp(self, "<"),
            BinOp::Le => cmp(self, "<="),
            BinOp::Gt => cmp(self, ">"),
            BinOp::Ge => cmp(self, ">="),
            BinOp::Eq => cmp(self, "=="),
            BinOp::Ne => cmp(self, "!="),
            BinOp::And | BinOp::Or => unreachable!("short-circuited by the caller"),
        }
    }

    /// A schedule's value at time `at` (a C expression).
    fn schedule_at(&mut self, s: usize, at: &str) -> R {
        let p = self.p;
        let sched = &p.schedules[s];
        match p.time.kind {
            TimeKind::Continuous => {
                let sc = Scope {
                    t: at.to_string(),
                    s: None,
                    params: false,
                };
                let v = self.ex(sched.body, &sc)?;
                // As the interpreter: a value past a closed end by rounding is the end.
                let (CV::S(x), Some((lo, lo_closed, hi, hi_closed))) = (&v, sched.interval) else {
                    return Ok(v);
                };
                let slack = crate::check::schedules::closed_end_slack;
                let mut cases = Vec::new();
                if hi_closed && hi.is_finite() {
                    cases.push(format!(
                        "{x} > {} && {x} - {} <= {} ? {}",
                        lit(hi),
                        lit(hi),
                        lit(slack(hi)),
                        lit(hi)
                    ));
                }
                if lo_closed && lo.is_finite() {
                    cases.push(format!(
                        "{x} < {} && {} - {x} <= {} ? {}",
                        lit(lo),
                        lit(lo),
                        lit(slack(lo)),
                        lit(lo)
                    ));
                }
                if cases.is_empty() {
                    return Ok(v);
                }
                let x = x.clone();
                Ok(CV::S(self.scalar(format!("{} : {x}", cases.join(" : ")))))
            }
            TimeKind::Discrete => {
                let width = match sched.elem {
                    Elem::Vec(k) => k as usize,
                    Elem::Mat(k) => (k * k) as usize,
                    _ => 1,
                };
                let table = format!("{}_s{s}", self.prefix);
                if self.emitted.insert(s) {
                    let mut vals = Vec::new();
                    let mut def = Vec::new();
                    for v in &sched.table {
                        match v {
                            Some(Value::Real(x)) => vals.push(format!("{x:?}")),
                            Some(Value::Bool(b)) => vals.push(format!("{}.0", *b as u8)),
                            Some(Value::Vec(xs)) | Some(Value::Mat(_, xs)) if xs.len() == width => {
                                vals.extend(xs.iter().map(|x| format!("{x:?}")))
                            }
                            None => vals.extend((0..width).map(|_| "0.0".to_string())),
                            _ => {
                                return Err(format!(
                                    "schedule `{}` has a table of lists",
                                    sched.name
                                ))
                            }
                        }
                        def.push(if v.is_some() { "1" } else { "0" });
                    }
                    let what = format!(
                        "`{}` at t = {} … {}",
                        sched.name,
                        p.time.lo - 1.0,
                        p.time.hi
                    );
                    self.tables.push((table.clone(), what, vals, def));
                }
                let len = sched.table.len();
                let ti = self.scalar(format!("round({at})"));
                self.line(format!("if (fabs({ti} - {at}) > 1e-9) return 1;"));
                let idx = self.scalar(format!("{ti} - {}", lit(p.time.lo - 1.0)));
                self.line(format!(
                    "if (!({idx} >= 0.0) || {idx} >= {len} || !{table}_def[(int){idx}]) return 1;"
                ));
                let xs: Vec<String> = (0..width)
                    .map(|j| format!("{table}[(int){idx} * {width} + {j}]"))
                    .collect();
                Ok(match sched.elem {
                    Elem::Vec(k) => self.make(Shape::V(k as usize), xs),
                    Elem::Mat(k) => self.make(Shape::M(k as usize), xs),
                    Elem::Bool => {
                        let v = self.fresh();
                        self.line(format!("int {v} = {} != 0.0;", xs[0]));
                        CV::B(v)
                    }
                    _ => CV::S(self.scalar(&xs[0])),
                })
            }
        }
    }

    fn call(&mut self, func: Builtin, args: &[ExprId], id: ExprId, sc: &Scope) -> R {
        use Builtin as B;
        let p = self.p;
        let e = p.expr(id);
        let time = &p.time;
        Ok(match func {
            B::Linspace | B::Geometric => {
                let t = sc.t.clone();
                self.line(format!(
                    "if ({t} < {} || {t} > {}) return 1;",
                    lit(time.lo - 1e-9),
                    lit(time.hi + 1e-9)
                ));
                let a = self.real(args[0], sc)?;
                let b = self.real(args[1], sc)?;
                let u = if time.hi > time.lo {
                    self.scalar(format!(
                        "({t} - {}) / ({} - {})",
                        lit(time.lo),
                        lit(time.hi),
                        lit(time.lo)
                    ))
                } else {
                    "0.0".to_string()
                };
                if func == B::Linspace {
                    CV::S(self.scalar(format!("{a} + ({b} - {a}) * {u}")))
                } else {
                    self.line(format!("if ({a} <= 0.0 || {b} <= 0.0) return 1;"));
                    CV::S(self.scalar(format!("{a} * pow({b} / {a}, {u})")))
                }
            }
            // The interpreter's `schedule_between`: at a whole time both reads are the table's
            // value at it, and (a − a)·0 + a is a.
            B::Interp => {
                let ExprKind::Schedule { id: s, at } = p.expr(args[0]).kind else {
                    return Err("`interp` of something other than a schedule read".into());
                };
                let u = self.real(at, sc)?;
                self.line(format!("if (!isfinite({u})) return 1;"));
                let j = self.scalar(format!("floor({u})"));
                let w = self.scalar(format!("{u} - {j}"));
                let j1 = self.scalar(format!("{w} == 0.0 ? {j} : {j} + 1.0"));
                let lo = self.schedule_at(s.index(), &j)?;
                let hi = self.schedule_at(s.index(), &j1)?;
                self.zip(&lo, &hi, |a, b| format!("({b} - {a}) * {w} + {a}"))?
            }
            B::Deriv => {
                let one = "1.0".to_string();
                let (_, d) = self.dual(args[0], sc, &one)?;
                CV::S(d)
            }
            B::Sqrt => {
                let a = self.ex(args[0], sc)?;
                self.checked_map(
                    &a,
                    |x| format!("{x} < -1e-12"),
                    |x| format!("sqrt(fmax({x}, 0.0))"),
                )?
            }
            B::Log => {
                let a = self.ex(args[0], sc)?;
                self.checked_map(&a, |x| format!("{x} <= 0.0"), |x| format!("log({x})"))?
            }
            B::Log1p => {
                let a = self.ex(args[0], sc)?;
                self.checked_map(&a, |x| format!("{x} <= -1.0"), |x| format!("log1p({x})"))?
            }
            B::Exp
            | B::Expm1
            | B::Sin
            | B::Cos
            | B::Tanh
            | B::Abs
            | B::Floor
            | B::Sigmoid
            | B::Softplus => {
                let a = self.ex(args[0], sc)?;
                let f: fn(&str) -> String = match func {
                    B::Exp => |x| format!("exp({x})"),
                    B::Expm1 => |x| format!("expm1({x})"),
                    B::Sin => |x| format!("sin({x})"),
                    B::Cos => |x| format!("cos({x})"),
                    B::Tanh => |x| format!("tanh({x})"),
                    B::Abs => |x| format!("fabs({x})"),
                    B::Floor => |x| format!("floor({x})"),
                    B::Sigmoid => |x| format!("1.0 / (1.0 + exp(-{x}))"),
                    _ => |x| format!("({x} > 30.0 ? {x} : log1p(exp({x})))"),
                };
                self.map(&a, f)?
            }
            B::Min | B::Max => {
                let a = self.ex(args[0], sc)?;
                let b = self.ex(args[1], sc)?;
                let f = if func == B::Min { "fmin" } else { "fmax" };
                self.zip(&a, &b, |x, y| format!("{f}({x}, {y})"))?
            }
            B::LogAddExp => {
                let a = self.ex(args[0], sc)?;
                let b = self.ex(args[1], sc)?;
                self.zip(&a, &b, |x, y| {
                    format!("(fmax({x}, {y}) + log(exp({x} - fmax({x}, {y})) + exp({y} - fmax({x}, {y}))))")
                })?
            }
            B::Clamp => {
                let x = self.ex(args[0], sc)?;
                let lo = self.ex(args[1], sc)?;
                let hi = self.ex(args[2], sc)?;
                let y = self.zip(&x, &lo, |a, b| format!("fmax({a}, {b})"))?;
                self.zip(&y, &hi, |a, b| format!("fmin({a}, {b})"))?
            }
            B::OneHot => {
                let c = self.real(args[0], sc)?;
                let k = match &e.ty {
                    Ty::Value {
                        elem: Elem::Vec(k), ..
                    } => *k as usize,
                    _ => return Err("one_hot of an unknown size".into()),
                };
                let ci = self.scalar(format!("round({c})"));
                self.line(format!("if ({ci} < 0.0 || {ci} >= {k}) return 1;"));
                let xs = (0..k)
                    .map(|j| format!("({ci} == {j}.0 ? 1.0 : 0.0)"))
                    .collect();
                self.make(Shape::V(k), xs)
            }
            B::Argmax => {
                let CV::V(v, k) = self.ex(args[0], sc)? else {
                    return Err("argmax of a value that is not a vector".into());
                };
                let b = self.fresh();
                self.line(format!(
                    "int {b} = 0;\n  for (int j = 0; j < {k}; j++) if ({v}[j] > {v}[{b}]) {b} = j;"
                ));
                CV::S(self.scalar(format!("(double){b}")))
            }
            B::Softmax | B::LogSoftmax | B::LogSumExp => {
                let CV::V(v, k) = self.ex(args[0], sc)? else {
                    return Err("a softmax of a value that is not a vector".into());
                };
                let m = self.scalar("-INFINITY");
                self.line(format!(
                    "for (int j = 0; j < {k}; j++) {m} = fmax({m}, {v}[j]);"
                ));
                let s = self.sum((0..k).map(|j| format!("exp({v}[{j}] - {m})")));
                let lse = self.scalar(format!("{m} + log({s})"));
                match func {
                    B::Softmax => {
                        let xs = (0..k).map(|j| format!("exp({v}[{j}] - {lse})")).collect();
                        self.make(Shape::V(k), xs)
                    }
                    B::LogSoftmax => {
                        let xs = (0..k).map(|j| format!("{v}[{j}] - {lse}")).collect();
                        self.make(Shape::V(k), xs)
                    }
                    _ => CV::S(lse),
                }
            }
            B::VSum => {
                let CV::V(v, k) = self.ex(args[0], sc)? else {
                    return Err("a sum of a value that is not a vector".into());
                };
                CV::S(self.sum((0..k).map(|j| format!("{v}[{j}]"))))
            }
            B::Dot => {
                let (CV::V(a, k), CV::V(b, _)) = (self.ex(args[0], sc)?, self.ex(args[1], sc)?)
                else {
                    return Err("a dot product of values that are not vectors".into());
                };
                CV::S(self.sum((0..k).map(|j| format!("{a}[{j}] * {b}[{j}]"))))
            }
            B::Outer => {
                let (CV::V(a, k), CV::V(b, l)) = (self.ex(args[0], sc)?, self.ex(args[1], sc)?)
                else {
                    return Err("an outer product of values that are not vectors".into());
                };
                let xs = (0..k)
                    .flat_map(|i| (0..l).map(move |j| (i, j)))
                    .map(|(i, j)| format!("{a}[{i}] * {b}[{j}]"))
                    .collect();
                self.make(Shape::M(k), xs)
            }
            B::Transpose => {
                let CV::M(m, k) = self.ex(args[0], sc)? else {
                    return Err("a transpose of a value that is not a matrix".into());
                };
                let xs = (0..k * k)
                    .map(|q| format!("{m}[{}]", (q % k) * k + q / k))
                    .collect();
                self.make(Shape::M(k), xs)
            }
            B::Eye | B::Ones | B::Zeros => match &e.ty {
                Ty::Value {
                    elem: Elem::Mat(k), ..
                } => {
                    let k = *k as usize;
                    let xs = (0..k * k)
                        .map(|q| {
                            let x = match func {
                                B::Eye => (q / k == q % k) as u8,
                                B::Ones => 1,
                                _ => 0,
                            };
                            format!("{x}.0")
                        })
                        .collect();
                    self.make(Shape::M(k), xs)
                }
                Ty::Value {
                    elem: Elem::Vec(k), ..
                } => {
                    let x = if func == B::Zeros { "0.0" } else { "1.0" };
                    self.make(Shape::V(*k as usize), vec![x.to_string(); *k as usize])
                }
                _ => return Err("eye/ones/zeros of an unknown size".into()),
            },
            _ => {
                return Err(format!(
                    "`{}` cannot be computed by the library's host code",
                    func.name()
                ))
            }
        })
    }

    /// The interpreter's forward-mode derivative in the time variable: (value, d/dt) as C
    /// variables; `dt` is the derivative of the time variable itself.
    fn dual(&mut self, id: ExprId, sc: &Scope, dt: &str) -> Result<(String, String), String> {
        let p = self.p;
        let e = p.expr(id);
        Ok(match &e.kind {
            ExprKind::Time(TimeRef::T) => (sc.t.clone(), dt.to_string()),
            ExprKind::Schedule { id: s, at } => {
                let (a, da) = self.dual(*at, sc, dt)?;
                let body = p.schedule(*s).body;
                let inner = Scope {
                    t: a,
                    s: None,
                    params: false,
                };
                let (v, dv) = self.dual(body, &inner, "1.0")?;
                (v, self.scalar(format!("{dv} * {da}")))
            }
            ExprKind::Local(l) => match p.locals[l.index()].value {
                Some(v) => self.dual(v, sc, dt)?,
                None => return Err("a local without a value".into()),
            },
            ExprKind::Unary { op: UnOp::Neg, arg } => {
                let (v, dv) = self.dual(*arg, sc, dt)?;
                (self.scalar(format!("-{v}")), self.scalar(format!("-{dv}")))
            }
            ExprKind::Binary { op, lhs, rhs }
                if matches!(
                    op,
                    BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Pow
                ) =>
            {
                let (a, da) = self.dual(*lhs, sc, dt)?;
                let (b, db) = self.dual(*rhs, sc, dt)?;
                match op {
                    BinOp::Add => (
                        self.scalar(format!("{a} + {b}")),
                        self.scalar(format!("{da} + {db}")),
                    ),
                    BinOp::Sub => (
                        self.scalar(format!("{a} - {b}")),
                        self.scalar(format!("{da} - {db}")),
                    ),
                    BinOp::Mul => (
                        self.scalar(format!("{a} * {b}")),
                        self.scalar(format!("{da} * {b} + {a} * {db}")),
                    ),
                    BinOp::Div => {
                        self.line(format!("if ({b} == 0.0) return 1;"));
                        (
                            self.scalar(format!("{a} / {b}")),
                            self.scalar(format!("({da} * {b} - {a} * {db}) / ({b} * {b})")),
                        )
                    }
                    _ => {
                        let v = self.scalar(format!("pow({a}, {b})"));
                        let dv = self.scalar(format!(
                            "{a} != 0.0 ? {b} * pow({a}, {b} - 1.0) * {da} : 0.0"
                        ));
                        self.line(format!("if ({db} != 0.0) {dv} += {v} * log({a}) * {db};"));
                        (v, dv)
                    }
                }
            }
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => {
                let c = self.ex(*cond, sc)?;
                let tc = self.truth(&c)?;
                let ((a, da), body_a) = self.block(|pr| pr.dual(*then, sc, dt))?;
                let ((b, db), body_b) = self.block(|pr| pr.dual(*otherwise, sc, dt))?;
                let (v, dv) = (self.fresh(), self.fresh());
                self.line(format!("double {v}, {dv};"));
                self.out.push_str(&format!(
                    "  if ({tc}) {{\n{body_a}  {v} = {a};\n  {dv} = {da};\n  }} else {{\n{body_b}  {v} = {b};\n  {dv} = {db};\n  }}\n"
                ));
                (v, dv)
            }
            ExprKind::Call { func, args } if args.len() == 1 && !matches!(func, Builtin::Deriv) => {
                let (x, dx) = self.dual(args[0], sc, dt)?;
                let (v, f1) = match func {
                    Builtin::Sqrt => {
                        let v = self.scalar(format!("sqrt(fmax({x}, 0.0))"));
                        let f1 = self.scalar(format!("{v} > 0.0 ? 0.5 / {v} : INFINITY"));
                        (v, f1)
                    }
                    Builtin::Exp => (self.scalar(format!("exp({x})")), self.scalar(format!("exp({x})"))),
                    Builtin::Expm1 => (self.scalar(format!("expm1({x})")), self.scalar(format!("exp({x})"))),
                    Builtin::Log => (self.scalar(format!("log({x})")), self.scalar(format!("1.0 / {x}"))),
                    Builtin::Log1p => (
                        self.scalar(format!("log1p({x})")),
                        self.scalar(format!("1.0 / (1.0 + {x})")),
                    ),
                    Builtin::Sin => (self.scalar(format!("sin({x})")), self.scalar(format!("cos({x})"))),
                    Builtin::Cos => (self.scalar(format!("cos({x})")), self.scalar(format!("-sin({x})"))),
                    Builtin::Tanh => (
                        self.scalar(format!("tanh({x})")),
                        self.scalar(format!("1.0 - tanh({x}) * tanh({x})")),
                    ),
                    Builtin::Abs => (
                        self.scalar(format!("fabs({x})")),
                        self.scalar(format!("(isnan({x}) ? {x} : ({x} > 0.0 || (({x} == 0.0) && !signbit({x})) ? 1.0 : -1.0))")),
                    ),
                    Builtin::Sigmoid => {
                        let s = self.scalar(format!("1.0 / (1.0 + exp(-{x}))"));
                        let f1 = self.scalar(format!("{s} * (1.0 - {s})"));
                        (s, f1)
                    }
                    Builtin::Softplus => (
                        self.scalar(format!("log1p(exp({x}))")),
                        self.scalar(format!("1.0 / (1.0 + exp(-{x}))")),
                    ),
                    _ => return Err("a derivative of this function".into()),
                };
                (v, self.scalar(format!("{f1} * {dx}")))
            }
            ExprKind::Call {
                func: Builtin::Min | Builtin::Max,
                args,
            } => {
                let (a, da) = self.dual(args[0], sc, dt)?;
                let (b, db) = self.dual(args[1], sc, dt)?;
                let o = if matches!(
                    &e.kind,
                    ExprKind::Call {
                        func: Builtin::Min,
                        ..
                    }
                ) {
                    "<="
                } else {
                    ">="
                };
                (
                    self.scalar(format!("{a} {o} {b} ? {a} : {b}")),
                    self.scalar(format!("{a} {o} {b} ? {da} : {db}")),
                )
            }
            _ => {
                let v = self.real(id, sc)?;
                (v, "0.0".to_string())
            }
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    S,
    V(usize),
    M(usize),
}
