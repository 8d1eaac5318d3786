//! Parsing: `.diff` text to an AST. pest's types never leave this module.

pub mod ast;

use crate::diag::{Code, Diagnostic, Span};
use ast::*;
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser;
use std::sync::OnceLock;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/diff.pest"]
struct DiffParser;

/// Parse a whole file. A syntax error is returned as one diagnostic.
pub fn parse(text: &str) -> Result<File, Diagnostic> {
    check_comments(text)?;
    pest::set_error_detail(true);
    let mut pairs = DiffParser::parse(Rule::file, text).map_err(|e| syntax_error(e, text))?;
    let file = pairs.next().expect("file rule");
    check_depth(file.clone())?;
    let mut items = Vec::new();
    for pair in file.into_inner() {
        match pair.as_rule() {
            Rule::process => items.push(Item::Process(process(pair)?)),
            Rule::fn_def => items.push(Item::Fn(fn_def(pair)?)),
            Rule::EOI => {}
            r => unreachable!("unexpected rule {r:?} in file"),
        }
    }
    Ok(File { items })
}

/// Parse a single expression (used by tests and the CLI's `--set`).
pub fn parse_expr(text: &str) -> Result<Expr, Diagnostic> {
    let mut pairs = DiffParser::parse(Rule::expr, text).map_err(|e| syntax_error(e, text))?;
    let pair = pairs.next().expect("expr rule");
    check_depth(pair.clone())?;
    if pair.as_span().end() != text.trim_end().len() {
        let at = pair.as_span().end();
        return Err(Diagnostic::error(
            Code::Syntax,
            Span::new(at, text.len()),
            "unexpected text after the expression",
        ));
    }
    expr(pair)
}

/// How deeply a spec may nest: parse-tree levels, where each operator of an expression counts
/// as a level (`1 + 1 + … + 1` nests as deeply as its terms). Every pass after parsing recurses
/// over the tree, so this bound keeps them all within a thread's stack.
pub const MAX_DEPTH: usize = 512;

/// Refuse a parse tree deeper than `MAX_DEPTH`, at the first place it gets there. The walk keeps
/// its own stack, so it never overflows the thread's.
fn check_depth(root: Pair<Rule>) -> Result<(), Diagnostic> {
    let mut stack = vec![(root, 0usize)];
    while let Some((pair, d)) = stack.pop() {
        let children: Vec<Pair<Rule>> = pair.clone().into_inner().collect();
        let step = match pair.as_rule() {
            // An expression's operators, and a postfix chain's calls and indices, each nest
            // the rest one level deeper.
            Rule::expr | Rule::postfix_expr => children.len().max(1),
            _ => 1,
        };
        let d = d + step;
        if d > MAX_DEPTH {
            return Err(Diagnostic::error(
                Code::Syntax,
                span_of(&pair),
                format!(
                    "this nests too deeply: more than {MAX_DEPTH} levels of expressions, operators and blocks; split it with `let`s or functions"
                ),
            ));
        }
        stack.extend(children.into_iter().map(|c| (c, d)));
    }
    Ok(())
}

/// The reserved words of the grammar (`keyword` in `grammar/diff.pest`).
const KEYWORDS: &[&str] = &[
    "process", "fn", "const", "dim", "param", "mask", "field", "time", "schedule", "forward",
    "network", "loss", "sampler", "grid", "init", "step", "finalize", "let", "if", "then", "else",
    "repeat", "where", "for", "in", "and", "or", "not", "true", "false", "like", "data", "at",
    "with",
];

/// An unterminated block comment swallows the rest of the file; say so where it starts.
fn check_comments(text: &str) -> Result<(), Diagnostic> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            (b'/', b'*') => match text[i + 2..].find("*/") {
                Some(end) => i += end + 4,
                None => {
                    return Err(Diagnostic::error(
                        Code::Syntax,
                        Span::new(i, i + 2),
                        "unterminated block comment",
                    )
                    .with_label("this comment is never closed")
                    .with_note("close it with `*/`"))
                }
            },
            _ => i += 1,
        }
    }
    Ok(())
}

fn syntax_error(e: pest::error::Error<Rule>, text: &str) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let (mut start, end) = match e.location {
        InputLocation::Pos(p) => (p, p),
        InputLocation::Span((a, b)) => (a, b),
    };
    // The farthest point the parser reached, and the literal tokens it wanted there.
    let mut tokens: Vec<String> = Vec::new();
    if let Some(attempts) = e.parse_attempts() {
        let wanted: Vec<String> = attempts
            .expected_tokens()
            .into_iter()
            .map(|t| t.to_string())
            // Character ranges display as `a..z`; built-in rules are not tokens a user types.
            .filter(|t| {
                !(t.chars().count() == 4 && t.chars().skip(1).take(2).collect::<String>() == "..")
                    && t != "BUILTIN_RULE"
            })
            .filter(|t| !matches!(t.as_str(), " " | "\t" | "\n" | "\r" | "//" | "/*" | "_"))
            .collect();
        if !wanted.is_empty() && attempts.max_position >= start {
            start = attempts.max_position;
            tokens = group_tokens(wanted);
        }
    }
    let word: String = text[start.min(text.len())..]
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let mut expected: Vec<String> = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } if tokens.is_empty() => {
            positives.iter().filter_map(|r| describe(*r)).collect()
        }
        _ => tokens,
    };
    if let ErrorVariant::CustomError { message } = &e.variant {
        return Diagnostic::error(
            Code::Syntax,
            Span::new(start, end.max(start)),
            message.clone(),
        )
        .with_label("here");
    }
    let before: String = text[..start.min(text.len())]
        .trim_end()
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect::<String>()
        .chars()
        .rev()
        .collect();
    let names_follow = [
        "let", "field", "const", "dim", "param", "mask", "schedule", "network", "loss", "sampler",
        "fn", "time", "for", "process", "like", "mask",
    ];
    if KEYWORDS.contains(&word.as_str()) && names_follow.contains(&before.as_str()) {
        return Diagnostic::error(
            Code::Syntax,
            Span::new(start, start + word.len()),
            format!("`{word}` is a reserved word"),
        )
        .with_label("cannot be used as a name")
        .with_note("choose another name");
    }
    // A declaration keyword inside a block that is still open: a `}` is missing before it.
    const DECLARATION_WORDS: &[&str] = &[
        "process", "fn", "const", "dim", "param", "mask", "field", "time", "schedule", "forward",
        "network", "loss", "sampler",
    ];
    if open_braces(&text[..start.min(text.len())]) > 1 && DECLARATION_WORDS.contains(&word.as_str())
    {
        return Diagnostic::error(
            Code::Syntax,
            Span::new(start, start + word.len()),
            format!("expected `}}` before `{word}`"),
        )
        .with_label(format!("found `{word}`"))
        .with_note("a block opened earlier is not closed");
    }
    if open_braces(&text[..start.min(text.len())]) > 0 && !expected.iter().any(|x| x == "`}`") {
        expected.push("`}`".into());
    }
    expected.sort();
    expected.dedup();
    let message = if expected.is_empty() {
        "syntax error".to_string()
    } else {
        format!("expected {}", join_or(&expected))
    };
    let found = if start >= text.len() {
        "the end of the file".to_string()
    } else if word.is_empty() {
        format!("`{}`", text[start..].chars().next().unwrap())
    } else {
        format!("`{word}`")
    };
    // The span covers the word, or the one character found, whole (a multi-byte character
    // included), so that it ends on a character boundary.
    let len = if word.is_empty() {
        text[start.min(text.len())..]
            .chars()
            .next()
            .map_or(0, char::len_utf8)
    } else {
        word.len()
    };
    Diagnostic::error(
        Code::Syntax,
        Span::new(start, start + len.min(text.len() - start.min(text.len()))),
        message,
    )
    .with_label(format!("found {found}"))
}

/// Literal tokens as a user reads them: operators and declaration keywords are grouped.
fn group_tokens(tokens: Vec<String>) -> Vec<String> {
    const OPERATORS: &[&str] = &[
        "!=", "&&", "*", "+", "-", "/", "<=", "<", "==", ">=", ">", "@", "^", "and", "or", "||",
        "(", ".", "[",
    ];
    // `#[` opens an attribute, which begins a (posterior) declaration.
    const DECLARATIONS: &[&str] = &[
        "#[",
        "const",
        "dim",
        "field",
        "fn",
        "forward",
        "loss",
        "mask",
        "network",
        "param",
        "posterior",
        "prior",
        "sampler",
        "schedule",
        "time",
    ];
    let ops = tokens
        .iter()
        .filter(|t| OPERATORS.contains(&t.as_str()))
        .count();
    let decls = tokens
        .iter()
        .filter(|t| DECLARATIONS.contains(&t.as_str()))
        .count();
    let mut out: Vec<String> = tokens
        .iter()
        .filter(|t| {
            !(ops > 3 && OPERATORS.contains(&t.as_str())
                || decls > 3 && DECLARATIONS.contains(&t.as_str()))
        })
        // The exponent marker of a number is not worth suggesting.
        .filter(|t| !matches!(t.as_str(), "e" | "E"))
        .map(|t| format!("`{t}`"))
        .collect();
    if ops > 3 {
        out.push("an operator".into());
    }
    if decls > 3 {
        out.push("a declaration".into());
    }
    out
}

/// Braces opened and not closed before the end of `text`, outside comments.
fn open_braces(text: &str) -> i64 {
    let mut depth = 0i64;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '/' if text[i..].starts_with("//") => {
                while chars.peek().is_some_and(|(_, c)| *c != '\n') {
                    chars.next();
                }
            }
            '/' if text[i..].starts_with("/*") => {
                let end = text[i + 2..]
                    .find("*/")
                    .map_or(text.len(), |e| i + 2 + e + 2);
                while chars.peek().is_some_and(|(j, _)| *j < end) {
                    chars.next();
                }
            }
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
    }
    depth
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// What a grammar rule looks like to a user, or None for rules that are not worth naming.
fn describe(rule: Rule) -> Option<String> {
    let s = match rule {
        Rule::EOI => "end of file",
        Rule::process => "`process`",
        Rule::fn_def => "`fn`",
        Rule::ident | Rule::sub_base => "a name",
        Rule::subscripted => "a subscripted name",
        Rule::number | Rule::integer => "a number",
        Rule::expr | Rule::postfix_expr | Rule::paren | Rule::list | Rule::conditional => {
            "an expression"
        }
        Rule::const_decl => "`const`",
        Rule::dim_decl => "`dim`",
        Rule::param_decl => "`param`",
        Rule::mask_decl => "`mask`",
        Rule::field_decl => "`field`",
        Rule::time_decl => "`time`",
        Rule::schedule_decl => "`schedule`",
        Rule::forward_decl => "`forward`",
        Rule::posterior_decl => "`posterior`",
        Rule::prior_decl => "`prior`",
        Rule::network_decl => "`network`",
        Rule::loss_decl => "`loss`",
        Rule::sampler_decl => "`sampler`",
        Rule::value_type
        | Rule::type_real
        | Rule::type_bool
        | Rule::type_cat
        | Rule::type_vec
        | Rule::type_mat => "a type (`real`, `bool`, `cat<K>`, `vec<K>`, `mat<K>`)",
        Rule::shape => "a shape `[dims]`",
        Rule::qual_sym => "`sym`",
        Rule::qual_masked => "`masked(...)`",
        Rule::discrete_range => "a discrete range `a..b`",
        Rule::continuous_range => "a continuous range `[a, b]`",
        Rule::data_end => "`data at`",
        Rule::interval => "an interval `in (a, b]`",
        Rule::monotone => "`increasing` or `decreasing`",
        Rule::rv | Rule::rv_list => "a random variable",
        Rule::where_block => "`where`",
        Rule::attribute => "an attribute `#[name]`",
        Rule::time_dist => "`with`",
        Rule::binding => "a binding `name = value`",
        Rule::net_inputs => "network inputs",
        Rule::net_output => "a network output `kind(field)`",
        Rule::precond => "`preconditioned(skip, scale)`",
        Rule::sampler_params => "sampler parameters",
        Rule::grid_item => "`grid`",
        Rule::init_block => "`init`",
        Rule::step_block => "`step`",
        Rule::finalize_block => "`finalize`",
        Rule::sampler_let | Rule::let_stmt | Rule::draw_stmt => "`let`",
        Rule::block => "a block `{ … }`",
        Rule::if_stmt => "`if`",
        Rule::repeat_stmt => "`repeat`",
        Rule::assign_stmt | Rule::sample_stmt => "a statement",
        Rule::like => "`like`",
        Rule::call_args => "`(`",
        Rule::member => "`.`",
        Rule::index => "`[`",
        Rule::arg => "an argument",
        Rule::neg | Rule::sub => "`-`",
        Rule::not => "`not`",
        Rule::or
        | Rule::and
        | Rule::le
        | Rule::ge
        | Rule::eq
        | Rule::ne
        | Rule::lt
        | Rule::gt
        | Rule::add
        | Rule::mul
        | Rule::div
        | Rule::matmul
        | Rule::pow => "an operator",
        _ => return None,
    };
    Some(s.to_string())
}

/// A rule's span without the whitespace and comments pest skips after an optional last element.
fn span_of(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    let mut text = s.as_str();
    loop {
        let trimmed = text.trim_end();
        // A trailing line comment: drop it and trim again.
        let cut = match trimmed.rfind('\n') {
            Some(nl) if trimmed[nl..].trim_start().starts_with("//") => nl,
            None if trimmed.trim_start().starts_with("//") && trimmed.len() < text.len() => 0,
            _ => trimmed.len(),
        };
        if cut == text.len() {
            break;
        }
        text = &text[..cut];
    }
    Span::new(
        s.start(),
        s.start() + text.len().max(1).min(s.end() - s.start()),
    )
}

fn ident(pair: Pair<Rule>) -> Ident {
    debug_assert!(matches!(pair.as_rule(), Rule::ident | Rule::sub_base));
    Ident {
        name: pair.as_str().to_string(),
        span: span_of(&pair),
    }
}

type PResult<T> = Result<T, Diagnostic>;

fn fn_def(pair: Pair<Rule>) -> PResult<FnDef> {
    let span = span_of(&pair);
    let mut inner = pair.into_inner();
    let name = ident(inner.next().unwrap());
    let mut params = Vec::new();
    let mut body = None;
    for p in inner {
        match p.as_rule() {
            Rule::fn_params => params = p.into_inner().map(ident).collect(),
            Rule::expr => body = Some(expr(p)?),
            r => unreachable!("{r:?} in fn"),
        }
    }
    Ok(FnDef {
        name,
        params,
        body: body.unwrap(),
        span,
    })
}

fn process(pair: Pair<Rule>) -> PResult<Process> {
    let span = span_of(&pair);
    let mut inner = pair.into_inner();
    let name = ident(inner.next().unwrap());
    let decls = inner.map(decl).collect::<PResult<Vec<_>>>()?;
    Ok(Process { name, decls, span })
}

fn decl(pair: Pair<Rule>) -> PResult<Decl> {
    let span = span_of(&pair);
    let rule = pair.as_rule();
    let mut inner = pair.into_inner();
    let kind = match rule {
        Rule::const_decl => {
            let name = ident(inner.next().unwrap());
            DeclKind::Const {
                name,
                value: expr(inner.next().unwrap())?,
            }
        }
        Rule::dim_decl => DeclKind::Dim {
            names: inner.map(ident).collect(),
        },
        Rule::param_decl => {
            let name = ident(inner.next().unwrap());
            let ty = value_type(inner.next().unwrap())?;
            let default = inner.next().map(expr).transpose()?;
            DeclKind::Param { name, ty, default }
        }
        Rule::mask_decl => {
            let name = ident(inner.next().unwrap());
            DeclKind::Mask {
                name,
                dim: ident(inner.next().unwrap()),
            }
        }
        Rule::field_decl => {
            let name = ident(inner.next().unwrap());
            let ty = value_type(inner.next().unwrap())?;
            let mut f = FieldDecl {
                name,
                ty,
                shape: Vec::new(),
                shape_span: None,
                sym: None,
                masked: None,
            };
            for p in inner {
                match p.as_rule() {
                    Rule::shape => {
                        f.shape_span = Some(span_of(&p));
                        f.shape = p.into_inner().map(ident).collect();
                    }
                    Rule::qual_sym => f.sym = Some(span_of(&p)),
                    Rule::qual_masked => f.masked = Some(ident(p.into_inner().next().unwrap())),
                    r => unreachable!("{r:?} in field"),
                }
            }
            DeclKind::Field(f)
        }
        Rule::time_decl => {
            let name = ident(inner.next().unwrap());
            let dom = inner.next().unwrap();
            let domain_span = span_of(&dom);
            let is_discrete = dom.as_rule() == Rule::discrete_range;
            let mut ends = dom.into_inner();
            let lo = expr(ends.next().unwrap())?;
            let hi = expr(ends.next().unwrap())?;
            let domain = if is_discrete {
                TimeDomain::Discrete { lo, hi }
            } else {
                TimeDomain::Continuous { lo, hi }
            };
            let data_at = match inner.next() {
                Some(p) => Some(expr(p.into_inner().next().unwrap())?),
                None => None,
            };
            DeclKind::Time(TimeDecl {
                name,
                domain,
                domain_span,
                data_at,
            })
        }
        Rule::schedule_decl => {
            let name = ident(inner.next().unwrap());
            let var = ident(inner.next().unwrap());
            let mut s = ScheduleDecl {
                name,
                var,
                interval: None,
                monotone: None,
                body: placeholder(),
            };
            for p in inner {
                match p.as_rule() {
                    Rule::interval => {
                        let span = span_of(&p);
                        let mut it = p.into_inner();
                        let lo_closed = it.next().unwrap().as_str() == "[";
                        let lo = expr(it.next().unwrap())?;
                        let hi = expr(it.next().unwrap())?;
                        let hi_closed = it.next().unwrap().as_str() == "]";
                        s.interval = Some(Interval {
                            lo,
                            lo_closed,
                            hi,
                            hi_closed,
                            span,
                        });
                    }
                    Rule::monotone => {
                        let m = if p.as_str() == "increasing" {
                            Monotone::Increasing
                        } else {
                            Monotone::Decreasing
                        };
                        s.monotone = Some((m, span_of(&p)));
                    }
                    Rule::expr => s.body = expr(p)?,
                    r => unreachable!("{r:?} in schedule"),
                }
            }
            DeclKind::Schedule(s)
        }
        Rule::forward_decl => DeclKind::Forward(kernel(inner, true)?),
        Rule::posterior_decl => DeclKind::Posterior(kernel(inner, true)?),
        Rule::prior_decl => DeclKind::Prior(kernel(inner, false)?),
        Rule::network_decl => {
            let name = ident(inner.next().unwrap());
            let mut inputs = Vec::new();
            let mut outputs = Vec::new();
            for p in inner {
                match p.as_rule() {
                    Rule::net_inputs => {
                        inputs = p.into_inner().map(expr).collect::<PResult<_>>()?
                    }
                    Rule::net_output => {
                        let mut it = p.into_inner();
                        let kind = ident(it.next().unwrap());
                        let field = ident(it.next().unwrap());
                        let precond = match it.next() {
                            Some(pc) => {
                                let mut e = pc.into_inner();
                                let skip = expr(e.next().unwrap())?;
                                let scale = expr(e.next().unwrap())?;
                                Some((skip, scale))
                            }
                            None => None,
                        };
                        outputs.push(NetOutput {
                            kind,
                            field,
                            precond,
                        });
                    }
                    r => unreachable!("{r:?} in network"),
                }
            }
            DeclKind::Network(NetworkDecl {
                name,
                inputs,
                outputs,
            })
        }
        Rule::loss_decl => {
            let name = ident(inner.next().unwrap());
            let value = expr(inner.next().unwrap())?;
            let mut l = LossDecl {
                name,
                value,
                bindings: Vec::new(),
                time_dist: None,
            };
            for p in inner {
                match p.as_rule() {
                    Rule::where_block => l.bindings = bindings(p)?,
                    Rule::time_dist => {
                        let span = span_of(&p);
                        let mut it = p.into_inner();
                        let var = ident(it.next().unwrap());
                        let dist = expr(it.next().unwrap())?;
                        l.time_dist = Some(TimeDistDecl { var, dist, span });
                    }
                    r => unreachable!("{r:?} in loss"),
                }
            }
            DeclKind::Loss(l)
        }
        Rule::sampler_decl => DeclKind::Sampler(sampler(inner)?),
        Rule::fn_def => {
            // `decl` is silent, so a nested fn arrives as its own rule; rebuild it.
            let name = ident(inner.next().unwrap());
            let mut params = Vec::new();
            let mut body = None;
            for p in inner {
                match p.as_rule() {
                    Rule::fn_params => params = p.into_inner().map(ident).collect(),
                    Rule::expr => body = Some(expr(p)?),
                    r => unreachable!("{r:?} in fn"),
                }
            }
            DeclKind::Fn(FnDef {
                name,
                params,
                body: body.unwrap(),
                span,
            })
        }
        r => unreachable!("unexpected declaration rule {r:?}"),
    };
    Ok(Decl { kind, span })
}

fn placeholder() -> Expr {
    Expr {
        kind: ExprKind::Number {
            value: 0.0,
            is_int: true,
        },
        span: Span::default(),
    }
}

fn value_type(pair: Pair<Rule>) -> PResult<TypeExpr> {
    let span = span_of(&pair);
    let inner = pair.into_inner().next().unwrap();
    let arg = |p: Pair<Rule>| -> PResult<Box<Expr>> {
        let a = p.into_inner().next().unwrap().into_inner().next().unwrap();
        Ok(Box::new(primary(a)?))
    };
    let kind = match inner.as_rule() {
        Rule::type_real => TypeKind::Real,
        Rule::type_bool => TypeKind::Bool,
        Rule::type_cat => TypeKind::Cat(arg(inner)?),
        Rule::type_vec => TypeKind::Vec(arg(inner)?),
        Rule::type_mat => TypeKind::Mat(arg(inner)?),
        r => unreachable!("{r:?} in type"),
    };
    Ok(TypeExpr { kind, span })
}

fn rv(pair: Pair<Rule>) -> Var {
    let inner = pair.into_inner().next().unwrap();
    let span = span_of(&inner);
    match inner.as_rule() {
        Rule::ident => Var {
            name: inner.as_str().to_string(),
            subscript: None,
            span,
        },
        Rule::subscripted => {
            let (base, var, offset) = subscript_parts(inner);
            Var {
                name: base,
                subscript: Some((var, offset)),
                span,
            }
        }
        r => unreachable!("{r:?} in rv"),
    }
}

fn subscript_parts(pair: Pair<Rule>) -> (String, String, i64) {
    let mut it = pair.into_inner();
    let base = it.next().unwrap().as_str().to_string();
    let var = it.next().unwrap().as_str().to_string();
    let offset = match it.next() {
        Some(off) => {
            let mut o = off.into_inner();
            let sign = if o.next().unwrap().as_str() == "-" {
                -1
            } else {
                1
            };
            sign * o
                .next()
                .unwrap()
                .as_str()
                .parse::<i64>()
                .unwrap_or(i64::MAX / 2)
        }
        None => 0,
    };
    (base, var, offset)
}

fn kernel(mut inner: Pairs<Rule>, has_given: bool) -> PResult<KernelDecl> {
    let mut attributes = Vec::new();
    while inner.peek().is_some_and(|p| p.as_rule() == Rule::attribute) {
        let a = inner.next().unwrap();
        attributes.push(ident(a.into_inner().next().unwrap()));
    }
    let target = rv(inner.next().unwrap());
    let given = if has_given {
        inner.next().unwrap().into_inner().map(rv).collect()
    } else {
        Vec::new()
    };
    let dist = expr(inner.next().unwrap())?;
    let bindings = match inner.next() {
        Some(w) => bindings(w)?,
        None => Vec::new(),
    };
    Ok(KernelDecl {
        attributes,
        target,
        given,
        dist,
        bindings,
    })
}

fn bindings(pair: Pair<Rule>) -> PResult<Vec<Binding>> {
    pair.into_inner().map(binding).collect()
}

fn binding(pair: Pair<Rule>) -> PResult<Binding> {
    let mut it = pair.into_inner();
    let name = ident(it.next().unwrap());
    Ok(Binding {
        name,
        value: expr(it.next().unwrap())?,
    })
}

fn sampler(mut inner: Pairs<Rule>) -> PResult<SamplerDecl> {
    let name = ident(inner.next().unwrap());
    let mut s = SamplerDecl {
        name,
        params: Vec::new(),
        items: Vec::new(),
    };
    for p in inner {
        let span = span_of(&p);
        match p.as_rule() {
            Rule::sampler_params => {
                s.params = p.into_inner().map(binding).collect::<PResult<_>>()?
            }
            Rule::grid_item => s.items.push(SamplerItem::Grid(
                expr(p.into_inner().next().unwrap())?,
                span,
            )),
            Rule::init_block => s
                .items
                .push(SamplerItem::Init(block(p.into_inner().next().unwrap())?)),
            Rule::step_block => s
                .items
                .push(SamplerItem::Step(block(p.into_inner().next().unwrap())?)),
            Rule::finalize_block => s.items.push(SamplerItem::Finalize(block(
                p.into_inner().next().unwrap(),
            )?)),
            Rule::sampler_let => {
                let mut it = p.into_inner();
                let name = ident(it.next().unwrap());
                s.items.push(SamplerItem::Let(Binding {
                    name,
                    value: expr(it.next().unwrap())?,
                }));
            }
            r => unreachable!("{r:?} in sampler"),
        }
    }
    Ok(s)
}

fn block(pair: Pair<Rule>) -> PResult<Block> {
    let span = span_of(&pair);
    let stmts = pair.into_inner().map(stmt).collect::<PResult<_>>()?;
    Ok(Block { stmts, span })
}

fn stmt(pair: Pair<Rule>) -> PResult<Stmt> {
    let span = span_of(&pair);
    let rule = pair.as_rule();
    let mut it = pair.into_inner();
    let kind = match rule {
        Rule::let_stmt => {
            let name = ident(it.next().unwrap());
            StmtKind::Let {
                name,
                value: expr(it.next().unwrap())?,
            }
        }
        Rule::draw_stmt => {
            let name = ident(it.next().unwrap());
            let dist = expr(it.next().unwrap())?;
            let like = it.next().map(|l| ident(l.into_inner().next().unwrap()));
            StmtKind::Draw { name, dist, like }
        }
        Rule::assign_stmt => {
            let name = ident(it.next().unwrap());
            StmtKind::Assign {
                name,
                value: expr(it.next().unwrap())?,
            }
        }
        Rule::sample_stmt => {
            let name = ident(it.next().unwrap());
            StmtKind::Sample {
                name,
                dist: expr(it.next().unwrap())?,
            }
        }
        Rule::if_stmt => {
            let cond = expr(it.next().unwrap())?;
            let then = block(it.next().unwrap())?;
            let otherwise = match it.next() {
                Some(p) if p.as_rule() == Rule::block => Some(block(p)?),
                Some(p) => {
                    let nested = stmt(p)?;
                    let span = nested.span;
                    Some(Block {
                        stmts: vec![nested],
                        span,
                    })
                }
                None => None,
            };
            StmtKind::If {
                cond,
                then,
                otherwise,
            }
        }
        Rule::repeat_stmt => {
            let count = expr(it.next().unwrap())?;
            StmtKind::Repeat {
                count,
                body: block(it.next().unwrap())?,
            }
        }
        r => unreachable!("{r:?} in statement"),
    };
    Ok(Stmt { kind, span })
}

fn pratt() -> &'static PrattParser<Rule> {
    static P: OnceLock<PrattParser<Rule>> = OnceLock::new();
    P.get_or_init(|| {
        PrattParser::new()
            .op(Op::infix(Rule::or, Assoc::Left))
            .op(Op::infix(Rule::and, Assoc::Left))
            .op(Op::infix(Rule::lt, Assoc::Left)
                | Op::infix(Rule::le, Assoc::Left)
                | Op::infix(Rule::gt, Assoc::Left)
                | Op::infix(Rule::ge, Assoc::Left)
                | Op::infix(Rule::eq, Assoc::Left)
                | Op::infix(Rule::ne, Assoc::Left))
            .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
            .op(Op::infix(Rule::mul, Assoc::Left)
                | Op::infix(Rule::div, Assoc::Left)
                | Op::infix(Rule::matmul, Assoc::Left))
            .op(Op::prefix(Rule::neg) | Op::prefix(Rule::not))
            .op(Op::infix(Rule::pow, Assoc::Right))
    })
}

fn expr(pair: Pair<Rule>) -> PResult<Expr> {
    debug_assert_eq!(pair.as_rule(), Rule::expr);
    pratt()
        .map_primary(postfix_expr)
        .map_prefix(|op, rhs| {
            let rhs = rhs?;
            let op_span = span_of(&op);
            let u = if op.as_rule() == Rule::neg {
                UnOp::Neg
            } else {
                UnOp::Not
            };
            Ok(Expr {
                span: op_span.to(rhs.span),
                kind: ExprKind::Unary {
                    op: u,
                    operand: Box::new(rhs),
                },
            })
        })
        .map_infix(|lhs, op, rhs| {
            let (lhs, rhs) = (lhs?, rhs?);
            let b = match op.as_rule() {
                Rule::or => BinOp::Or,
                Rule::and => BinOp::And,
                Rule::lt => BinOp::Lt,
                Rule::le => BinOp::Le,
                Rule::gt => BinOp::Gt,
                Rule::ge => BinOp::Ge,
                Rule::eq => BinOp::Eq,
                Rule::ne => BinOp::Ne,
                Rule::add => BinOp::Add,
                Rule::sub => BinOp::Sub,
                Rule::mul => BinOp::Mul,
                Rule::div => BinOp::Div,
                Rule::matmul => BinOp::MatMul,
                Rule::pow => BinOp::Pow,
                r => unreachable!("{r:?} as infix"),
            };
            Ok(Expr {
                span: lhs.span.to(rhs.span),
                kind: ExprKind::Binary {
                    op: b,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
            })
        })
        .parse(pair.into_inner())
}

fn postfix_expr(pair: Pair<Rule>) -> PResult<Expr> {
    let mut it = pair.into_inner();
    let mut e = primary(it.next().unwrap())?;
    for p in it {
        let span = e.span.to(span_of(&p));
        e = match p.as_rule() {
            Rule::call_args => {
                let args = p.into_inner().map(arg).collect::<PResult<_>>()?;
                Expr {
                    span,
                    kind: ExprKind::Call {
                        callee: Box::new(e),
                        args,
                    },
                }
            }
            Rule::member => {
                let name = ident(p.into_inner().next().unwrap());
                Expr {
                    span,
                    kind: ExprKind::Member {
                        base: Box::new(e),
                        name,
                    },
                }
            }
            Rule::index => {
                let index = expr(p.into_inner().next().unwrap())?;
                Expr {
                    span,
                    kind: ExprKind::Index {
                        base: Box::new(e),
                        index: Box::new(index),
                    },
                }
            }
            r => unreachable!("{r:?} as postfix"),
        };
    }
    Ok(e)
}

fn arg(pair: Pair<Rule>) -> PResult<Arg> {
    let mut name = None;
    let mut kind = ArgKind::Value;
    let mut value = None;
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::ident => name = Some(ident(p)),
            Rule::arg_kind => {
                kind = if p.as_str() == "~" {
                    ArgKind::Marginal
                } else {
                    ArgKind::Value
                }
            }
            Rule::expr => value = Some(expr(p)?),
            r => unreachable!("{r:?} in arg"),
        }
    }
    Ok(Arg {
        name,
        kind,
        value: value.unwrap(),
    })
}

fn primary(pair: Pair<Rule>) -> PResult<Expr> {
    let span = span_of(&pair);
    let kind = match pair.as_rule() {
        Rule::number => {
            let text = pair.as_str();
            let is_int = !text.contains(['.', 'e', 'E']);
            let value: f64 = text.parse().map_err(|_| {
                Diagnostic::error(
                    Code::Syntax,
                    span,
                    format!("`{text}` is not a valid number"),
                )
            })?;
            if !value.is_finite() {
                return Err(Diagnostic::error(
                    Code::Syntax,
                    span,
                    format!("`{text}` does not fit in a 64-bit float"),
                ));
            }
            ExprKind::Number { value, is_int }
        }
        Rule::literal_true => ExprKind::Bool(true),
        Rule::literal_false => ExprKind::Bool(false),
        Rule::ident => ExprKind::Name(pair.as_str().to_string()),
        Rule::subscripted => {
            let (base, var, offset) = subscript_parts(pair);
            if offset.unsigned_abs() > 1_000_000 {
                return Err(Diagnostic::error(
                    Code::Syntax,
                    span,
                    "time offset is too large",
                ));
            }
            ExprKind::Subscripted { base, var, offset }
        }
        Rule::paren => return expr(pair.into_inner().next().unwrap()).map(|e| Expr { span, ..e }),
        Rule::conditional => {
            let mut it = pair.into_inner();
            let cond = expr(it.next().unwrap())?;
            let then = expr(it.next().unwrap())?;
            let otherwise = expr(it.next().unwrap())?;
            ExprKind::If {
                cond: Box::new(cond),
                then: Box::new(then),
                otherwise: Box::new(otherwise),
            }
        }
        Rule::list => {
            let mut it = pair.into_inner();
            let first = it.next();
            match it.peek().map(|p| p.as_rule()) {
                Some(Rule::comprehension) => {
                    let body = expr(first.unwrap())?;
                    let mut c = it.next().unwrap().into_inner();
                    let var = ident(c.next().unwrap());
                    let lo = expr(c.next().unwrap())?;
                    let hi = expr(c.next().unwrap())?;
                    ExprKind::Comprehension {
                        body: Box::new(body),
                        var,
                        lo: Box::new(lo),
                        hi: Box::new(hi),
                    }
                }
                _ => ExprKind::List(
                    first
                        .into_iter()
                        .chain(it)
                        .map(expr)
                        .collect::<PResult<_>>()?,
                ),
            }
        }
        Rule::expr => return expr(pair),
        r => unreachable!("{r:?} as primary"),
    };
    Ok(Expr { kind, span })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Number { value, .. } => format!("{value}"),
            ExprKind::Bool(b) => format!("{b}"),
            ExprKind::Name(n) => n.clone(),
            ExprKind::Subscripted { base, var, offset } => format!("{base}_{{{var}{offset:+}}}"),
            ExprKind::Unary { op, operand } => format!("({op:?} {})", show(operand)),
            ExprKind::Binary { op, lhs, rhs } => {
                format!("({} {} {})", show(lhs), op.symbol(), show(rhs))
            }
            ExprKind::Call { callee, args } => {
                let a: Vec<String> = args.iter().map(|a| show(&a.value)).collect();
                format!("{}({})", show(callee), a.join(", "))
            }
            ExprKind::Member { base, name } => format!("{}.{}", show(base), name.name),
            ExprKind::Index { base, index } => format!("{}[{}]", show(base), show(index)),
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => {
                format!(
                    "(if {} then {} else {})",
                    show(cond),
                    show(then),
                    show(otherwise)
                )
            }
            ExprKind::List(items) => format!(
                "[{}]",
                items.iter().map(show).collect::<Vec<_>>().join(", ")
            ),
            ExprKind::Comprehension { body, var, lo, hi } => {
                format!(
                    "[{} for {} in {}..{}]",
                    show(body),
                    var.name,
                    show(lo),
                    show(hi)
                )
            }
        }
    }

    fn check(src: &str, expect: &str) {
        let e = parse_expr(src).unwrap_or_else(|d| panic!("{src}: {}", d.message));
        assert_eq!(show(&e), expect, "{src}");
    }

    #[test]
    fn precedence() {
        check("1 + 2 * 3", "(1 + (2 * 3))");
        check("-x^2", "(Neg (x ^ 2))");
        check("a ^ b ^ c", "(a ^ (b ^ c))");
        check("a < b and not c or d", "(((a < b) and (Not c)) or d)");
        check("u @ Q @ v", "((u @ Q) @ v)");
        check("x_{t-1} * 2", "(x_{t-1} * 2)");
        check("f(a, b = 1, c ~ p).x0[0]", "f(a, 1, p).x0[0]");
        check(
            "if t < 1e-6 then 0 else x",
            "(if (t < 0.000001) then 0 else x)",
        );
        check("[k * 2 for k in 0..N]", "[(k * 2) for k in 0..N]");
        check("(1 - a)", "(1 - a)");
    }

    #[test]
    fn spans_cover_source() {
        let src = "sqrt(alpha_bar(t)) * x_0";
        let e = parse_expr(src).unwrap();
        assert_eq!(e.span, Span::new(0, src.len()));
    }

    #[test]
    fn keywords_are_not_names() {
        assert!(parse_expr("let").is_err());
        check("initial + forwards", "(initial + forwards)");
    }
}
