//! Diagnostics: every mistake in a spec becomes one of these.
//!
//! The library never prints; `render` turns diagnostics into text (codespan-reporting)
//! or JSON lines, and the CLI decides where they go.

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term;
use serde::Serialize;

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One diagnostic: an error code, a message, a primary span and optional secondary labels and notes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    pub primary: Label,
    pub secondary: Vec<Label>,
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary: Label {
                span,
                message: String::new(),
            },
            secondary: Vec::new(),
            notes: Vec::new(),
        }
    }
    pub fn warning(code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }
    /// The text under the primary span.
    pub fn with_label(mut self, message: impl Into<String>) -> Diagnostic {
        self.primary.message = message.into();
        self
    }
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label {
            span,
            message: message.into(),
        });
        self
    }
    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
    /// Whether the commands that run a spec (`eval`, `sample`, `sweep`, `build`, and the Python
    /// package's `load`) report this diagnostic; `check` and `explain` report every one. See
    /// [`Code::shown_in_runs`].
    pub fn shown_in_runs(&self) -> bool {
        self.code.shown_in_runs()
    }
}

/// Error codes. Each kind of mistake has its own, stable code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The text does not follow the grammar.
    Syntax,
    /// A name is not defined.
    UnknownName,
    /// A name is defined twice.
    Duplicate,
    /// A declaration is missing or misplaced.
    Structure,
    /// A value has the wrong type (real, bool, cat, vec, mat).
    Type,
    /// Shapes do not agree.
    Shape,
    /// A symmetric field is used or built asymmetrically.
    Symmetry,
    /// A mask is declared or used wrongly.
    Mask,
    /// A distribution of the wrong family for its field, or wrong arguments.
    Distribution,
    /// Discrete-time and continuous-time constructs are mixed.
    TimeKind,
    /// A sampler or a kernel steps away from the data.
    Direction,
    /// A schedule evaluates to an invalid value somewhere on its grid.
    ScheduleHazard,
    /// A distribution parameter leaves its domain (a variance ≤ 0, probabilities off the simplex).
    Domain,
    /// A written posterior disagrees with Bayes' rule on the forward kernels.
    Bayes,
    /// A written marginal disagrees with the composition of the written one-step kernel.
    Composition,
    /// A network is declared or called wrongly.
    Network,
    /// A network output is used under a parameterisation it cannot be converted to.
    Parameterisation,
    /// A loss leaves an axis unreduced or is not a real number.
    Loss,
    /// A sampler is malformed (history before the first step, a missing step, …).
    Sampler,
    /// A declaration that nothing uses (a warning).
    Unused,
    /// A posterior marked `#[approximate]`: where it differs from Bayes' rule it is kept, with
    /// this warning (also when it does not differ, since the mark is then not needed).
    Approximation,
    /// A check of Bayes' rule left partly or wholly undone by the enumeration limits, or undone
    /// because the values it compares are known only at run time (a warning).
    Unverified,
    /// A constant expression could not be evaluated at compile time.
    Const,
    /// Recursion in functions or schedules.
    Cycle,
}

impl Code {
    /// Whether runs of a spec report diagnostics with this code. All do but W0002
    /// ([`Code::Approximation`]): a posterior the spec marks `#[approximate]` is its author's
    /// own choice, which `check` reports, so a run's messages hold what concerns the run.
    pub fn shown_in_runs(self) -> bool {
        self != Code::Approximation
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "E0001",
            Code::UnknownName => "E0100",
            Code::Duplicate => "E0101",
            Code::Structure => "E0102",
            Code::Cycle => "E0103",
            Code::Type => "E0200",
            Code::Shape => "E0201",
            Code::Symmetry => "E0202",
            Code::Mask => "E0203",
            Code::Const => "E0204",
            Code::Distribution => "E0300",
            Code::Domain => "E0301",
            Code::TimeKind => "E0400",
            Code::Direction => "E0401",
            Code::ScheduleHazard => "E0402",
            Code::Bayes => "E0403",
            Code::Composition => "E0404",
            Code::Network => "E0500",
            Code::Parameterisation => "E0501",
            Code::Loss => "E0600",
            Code::Sampler => "E0700",
            Code::Unused => "W0001",
            Code::Approximation => "W0002",
            Code::Unverified => "W0003",
        }
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A source file as the diagnostics see it.
pub struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: u32) -> (usize, usize) {
        let mut offset = (offset as usize).min(self.text.len());
        // An offset inside a multi-byte character counts as that character's start.
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }
}

/// Render diagnostics as human-readable text with source snippets.
pub fn render_text(source: &Source, diags: &[Diagnostic], color: bool) -> String {
    let mut files = SimpleFiles::new();
    let file = files.add(source.name.to_string(), source.text.to_string());
    let config = term::Config::default();
    let mut out = Vec::new();
    for d in diags {
        let severity = match d.severity {
            Severity::Error => cs::Severity::Error,
            Severity::Warning => cs::Severity::Warning,
        };
        let mut labels = vec![cs::Label::primary(file, clamp(d.primary.span, source.text))
            .with_message(&d.primary.message)];
        for l in &d.secondary {
            labels.push(
                cs::Label::secondary(file, clamp(l.span, source.text)).with_message(&l.message),
            );
        }
        let diag = cs::Diagnostic::new(severity)
            .with_code(d.code.as_str())
            .with_message(&d.message)
            .with_labels(labels)
            .with_notes(d.notes.clone());
        if color {
            let mut buf = term::termcolor::Buffer::ansi();
            let _ = term::emit(&mut buf, &config, &files, &diag);
            out.extend_from_slice(buf.as_slice());
        } else {
            let mut buf = term::termcolor::Buffer::no_color();
            let _ = term::emit(&mut buf, &config, &files, &diag);
            out.extend_from_slice(buf.as_slice());
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn clamp(span: Span, text: &str) -> std::ops::Range<usize> {
    let end = (span.end as usize).min(text.len());
    let start = (span.start as usize).min(end);
    start..end
}

#[derive(Serialize)]
struct JsonSpan<'a> {
    file: &'a str,
    byte_start: u32,
    byte_end: u32,
    line_start: usize,
    column_start: usize,
    line_end: usize,
    column_end: usize,
    label: &'a str,
    is_primary: bool,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    reason: &'static str,
    severity: Severity,
    code: Code,
    message: &'a str,
    spans: Vec<JsonSpan<'a>>,
    notes: &'a [String],
    rendered: String,
}

/// Render diagnostics as JSON, one object per line (like `cargo --message-format json`).
pub fn render_json<'a>(source: &Source<'a>, diags: &'a [Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let mut spans = Vec::new();
        let mut push = |l: &'a Label, primary: bool| {
            let (line_start, column_start) = source.line_col(l.span.start);
            let (line_end, column_end) = source.line_col(l.span.end);
            spans.push(JsonSpan {
                file: source.name,
                byte_start: l.span.start,
                byte_end: l.span.end,
                line_start,
                column_start,
                line_end,
                column_end,
                label: &l.message,
                is_primary: primary,
            });
        };
        push(&d.primary, true);
        for l in &d.secondary {
            push(l, false);
        }
        let obj = JsonDiagnostic {
            reason: "diagnostic",
            severity: d.severity,
            code: d.code,
            message: &d.message,
            spans,
            notes: &d.notes,
            rendered: render_text(source, std::slice::from_ref(d), false),
        };
        out.push_str(&serde_json::to_string(&obj).expect("diagnostics serialise"));
        out.push('\n');
    }
    out
}
