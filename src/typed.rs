//! The typed process: what `check` produces and everything after it reads.
//!
//! Contract:
//! - Expressions live in one arena per process (`Process::exprs`) and refer to each other by
//!   `ExprId`; every expression has a type and the span of the source it came from.
//! - Names are resolved: an expression refers to a constant, a field version, a schedule, a
//!   local or a network call by id, never by string. User `fn`s are inlined.
//! - Schedules are tabulated in f64 for discrete time (`Schedule::table`).
//! - A loss's declared time distribution is evaluated too: `Weighted` probabilities in f64 at
//!   every time (`TimeDistKind::Weighted::probs`), `LogNormal` parameters as numbers.
//! - Statements (sampler bodies) are a tree of `Stmt`s; expressions inside them are pure.
//! - Nothing here refers to the AST or to pest.

use crate::diag::Span;
use crate::syntax::ast::{BinOp, Monotone, UnOp};
pub use crate::types::{Elem, Shape, Stage, Ty};

macro_rules! id_type {
    ($($name:ident),*) => {$(
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
        impl $name {
            pub fn index(self) -> usize { self.0 as usize }
        }
    )*};
}
id_type!(ExprId, ConstId, DimId, ParamId, MaskId, FieldId, ScheduleId, NetworkId, LocalId);

#[derive(Clone, Debug, Default)]
pub struct Module {
    pub processes: Vec<Process>,
}

#[derive(Clone, Debug)]
pub struct Process {
    pub name: String,
    pub span: Span,
    pub consts: Vec<Const>,
    pub dims: Vec<Dim>,
    pub params: Vec<Param>,
    pub masks: Vec<Mask>,
    pub fields: Vec<Field>,
    pub time: Time,
    pub schedules: Vec<Schedule>,
    pub forwards: Vec<Kernel>,
    pub priors: Vec<Kernel>,
    pub posteriors: Vec<Kernel>,
    pub networks: Vec<Network>,
    pub losses: Vec<Loss>,
    pub samplers: Vec<Sampler>,
    pub locals: Vec<Local>,
    pub exprs: Vec<Expr>,
}

impl Process {
    pub fn expr(&self, id: ExprId) -> &Expr {
        &self.exprs[id.index()]
    }
    pub fn field(&self, id: FieldId) -> &Field {
        &self.fields[id.index()]
    }
    pub fn schedule(&self, id: ScheduleId) -> &Schedule {
        &self.schedules[id.index()]
    }
    pub fn network(&self, id: NetworkId) -> &Network {
        &self.networks[id.index()]
    }
    /// A field version as a spec writes it: `x_0`, `x_t`, `x_s`, `x_T`, `x_{t-1}`; a
    /// conditioning field that never diffuses is named bare.
    pub fn version_name(&self, r: FieldRef) -> String {
        let f = &self.field(r.field).name;
        let t = &self.time.name;
        if r.version == Version::Data && !self.forwards.iter().any(|k| k.target.field == r.field) {
            return f.clone();
        }
        match r.version {
            Version::Data => format!("{f}_0"),
            Version::T => format!("{f}_{t}"),
            Version::S => format!("{f}_s"),
            Version::End => format!("{f}_T"),
            Version::Back(k) => format!(
                "{f}_{{{t}{}{k}}}",
                if self.time.ascending() { '+' } else { '-' }
            ),
        }
    }

    /// The forward marginal q(F_t | G_0) whose target is `field`.
    pub fn marginal_of(&self, field: FieldId) -> Option<&Kernel> {
        self.forwards
            .iter()
            .find(|k| k.target.field == field && k.kind == KernelKind::Marginal)
    }
    /// The affine Gaussian marginal that describes data field `data` (target may be another field).
    pub fn gaussian_marginal_given(&self, data: FieldId) -> Option<&Kernel> {
        self.forwards.iter().find(|k| {
            k.kind == KernelKind::Marginal
                && k.affine.is_some()
                && k.given.iter().any(|g| g.field == data)
        })
    }
}

#[derive(Clone, Debug)]
pub struct Const {
    pub name: String,
    pub value: f64,
    pub is_int: bool,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Dim {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub elem: Elem,
    pub default: Option<Value>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Mask {
    pub name: String,
    pub dim: DimId,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    pub elem: Elem,
    pub shape: Shape,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimeKind {
    /// `t ∈ {lo..hi}`
    Discrete,
    /// `t ∈ [lo, hi]`
    Continuous,
}

#[derive(Clone, Debug)]
pub struct Time {
    pub name: String,
    pub kind: TimeKind,
    pub lo: f64,
    pub hi: f64,
    /// Where the data sits: `lo - 1` or `hi + 1` in discrete time, `lo` or `hi` in continuous.
    pub data_at: f64,
    pub span: Span,
}

impl Time {
    /// True when samplers move toward larger t (BFN, NCSN levels).
    pub fn ascending(&self) -> bool {
        self.data_at > self.lo
    }
    /// The end opposite the data: where sampling starts.
    pub fn noise_end(&self) -> f64 {
        if self.ascending() {
            self.lo
        } else {
            self.hi
        }
    }
    /// The time points at which schedules and kernels are checked.
    pub fn check_points(&self) -> Vec<f64> {
        match self.kind {
            TimeKind::Discrete => (self.lo as i64..=self.hi as i64)
                .map(|t| t as f64)
                .collect(),
            TimeKind::Continuous => self.even_points(CONTINUOUS_CHECK_POINTS),
        }
    }
    /// `n ≥ 2` evenly spaced times from `lo` to `hi`, both ends included: `lo + (hi - lo)·i/(n - 1)`.
    pub fn even_points(&self, n: usize) -> Vec<f64> {
        let last = (n.max(2) - 1) as f64;
        (0..n.max(2))
            .map(|i| self.lo + (self.hi - self.lo) * i as f64 / last)
            .collect()
    }
}

/// How many evenly spaced times a continuous-time process is checked at (ends included).
pub const CONTINUOUS_CHECK_POINTS: usize = 1001;

#[derive(Clone, Debug)]
pub struct Schedule {
    pub name: String,
    pub body: ExprId,
    pub elem: Elem,
    pub interval: Option<(f64, bool, f64, bool)>,
    pub monotone: Option<Monotone>,
    /// Discrete time: values at `lo - 1 ..= hi` (index 0 is `lo - 1`, None where undefined).
    pub table: Vec<Option<Value>>,
    pub span: Span,
    /// A schedule the checker wrote (a marginal composed from a one-step kernel).
    pub derived: bool,
}

/// A compile-time value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Real(f64),
    Bool(bool),
    Vec(Vec<f64>),
    /// Row-major K×K.
    Mat(usize, Vec<f64>),
    List(Vec<Value>),
}

impl Value {
    pub fn as_real(&self) -> Option<f64> {
        match self {
            Value::Real(x) => Some(*x),
            _ => None,
        }
    }
}

/// Which version of a field an expression reads in a declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// `x_0`, or a bare field name: the data.
    Data,
    /// `x_t`
    T,
    /// `x_s`: the posterior's target time.
    S,
    /// `x_{t-k}`
    Back(u32),
    /// `x_T`: the noise end.
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldRef {
    pub field: FieldId,
    pub version: Version,
}

/// Times an expression can refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeRef {
    /// The declaration's time variable, or a sampler step's current time.
    T,
    /// A sampler step's next time, or a posterior's target time.
    S,
    /// A sampler step's previous time.
    R,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepVar {
    /// Step index from 0.
    K,
    First,
    Last,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamKind {
    Eps,
    X0,
    Score,
    V,
    /// dx_t/dt = a'(t) x_0 + σ'(t) ε (continuous time): rectified flow's and flow matching's target.
    Velocity,
    Probs,
}

impl ParamKind {
    pub fn name(self) -> &'static str {
        match self {
            ParamKind::Eps => "eps",
            ParamKind::X0 => "x0",
            ParamKind::Score => "score",
            ParamKind::V => "v",
            ParamKind::Velocity => "velocity",
            ParamKind::Probs => "probs",
        }
    }
    pub fn from_name(s: &str) -> Option<ParamKind> {
        Some(match s {
            "eps" => ParamKind::Eps,
            "x0" => ParamKind::X0,
            "score" => ParamKind::Score,
            "v" => ParamKind::V,
            "velocity" => ParamKind::Velocity,
            "probs" => ParamKind::Probs,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    Sqrt,
    Exp,
    Log,
    Expm1,
    Log1p,
    Sin,
    Cos,
    Tanh,
    Abs,
    Sigmoid,
    Softplus,
    Floor,
    Min,
    Max,
    Clamp,
    LogAddExp,
    OneHot,
    Argmax,
    Softmax,
    LogSoftmax,
    LogSumExp,
    VSum,
    Dot,
    Outer,
    Transpose,
    Eye,
    Ones,
    Zeros,
    Sum,
    Mean,
    Norm,
    RowSum,
    Pair,
    Gram,
    Linspace,
    Geometric,
    Cumprod,
    Cumsum,
    Deriv,
    /// `interp(f(u))`: a discrete schedule read between its times, linearly (numpy's `interp`).
    Interp,
}

impl Builtin {
    pub const ALL: &'static [(&'static str, Builtin)] = &[
        ("sqrt", Builtin::Sqrt),
        ("exp", Builtin::Exp),
        ("log", Builtin::Log),
        ("expm1", Builtin::Expm1),
        ("log1p", Builtin::Log1p),
        ("sin", Builtin::Sin),
        ("cos", Builtin::Cos),
        ("tanh", Builtin::Tanh),
        ("abs", Builtin::Abs),
        ("sigmoid", Builtin::Sigmoid),
        ("softplus", Builtin::Softplus),
        ("floor", Builtin::Floor),
        ("min", Builtin::Min),
        ("max", Builtin::Max),
        ("clamp", Builtin::Clamp),
        ("logaddexp", Builtin::LogAddExp),
        ("onehot", Builtin::OneHot),
        ("argmax", Builtin::Argmax),
        ("softmax", Builtin::Softmax),
        ("log_softmax", Builtin::LogSoftmax),
        ("logsumexp", Builtin::LogSumExp),
        ("vsum", Builtin::VSum),
        ("dot", Builtin::Dot),
        ("outer", Builtin::Outer),
        ("transpose", Builtin::Transpose),
        ("eye", Builtin::Eye),
        ("ones", Builtin::Ones),
        ("zeros", Builtin::Zeros),
        ("sum", Builtin::Sum),
        ("mean", Builtin::Mean),
        ("norm", Builtin::Norm),
        ("rowsum", Builtin::RowSum),
        ("pair", Builtin::Pair),
        ("gram", Builtin::Gram),
        ("linspace", Builtin::Linspace),
        ("geometric", Builtin::Geometric),
        ("cumprod", Builtin::Cumprod),
        ("cumsum", Builtin::Cumsum),
        ("deriv", Builtin::Deriv),
        ("interp", Builtin::Interp),
    ];
    pub fn from_name(s: &str) -> Option<Builtin> {
        Builtin::ALL.iter().find(|(n, _)| *n == s).map(|(_, b)| *b)
    }
    pub fn name(self) -> &'static str {
        Builtin::ALL
            .iter()
            .find(|(_, b)| *b == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
    /// Builders that only make sense over a discrete time axis.
    pub fn is_discrete_only(self) -> bool {
        matches!(
            self,
            Builtin::Linspace | Builtin::Geometric | Builtin::Cumprod | Builtin::Cumsum
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Normal,
    /// Uniform on [lo, hi) per element.
    Uniform,
    Categorical,
    Bernoulli,
    Delta,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Normal => "Normal",
            Family::Categorical => "Categorical",
            Family::Bernoulli => "Bernoulli",
            Family::Delta => "Delta",
            Family::Uniform => "Uniform",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub ty: Ty,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    Number(f64),
    Bool(bool),
    Const(ConstId),
    Param(ParamId),
    /// A sampler parameter or sampler-level `let`: `Process::samplers[sampler].params[index]`.
    SamplerParam {
        sampler: u32,
        index: u32,
    },
    Time(TimeRef),
    Step(StepVar),
    Schedule {
        id: ScheduleId,
        at: ExprId,
    },
    Field(FieldRef),
    /// A field's current value inside a sampler.
    State(FieldId),
    /// The standard-normal noise of the Gaussian forward marginal of a field.
    Noise(FieldId),
    Local(LocalId),
    Unary {
        op: UnOp,
        arg: ExprId,
    },
    Binary {
        op: BinOp,
        lhs: ExprId,
        rhs: ExprId,
    },
    Call {
        func: Builtin,
        args: Vec<ExprId>,
    },
    If {
        cond: ExprId,
        then: ExprId,
        otherwise: ExprId,
    },
    /// `v[i]`: an element of a vector; `i` is known per step.
    Index {
        base: ExprId,
        index: ExprId,
    },
    List(Vec<ExprId>),
    /// A network call; its outputs are read with `NetOut`.
    NetCall {
        net: NetworkId,
        args: Vec<ExprId>,
    },
    /// Output `output` of a call, read as `kind` (a conversion when `kind` differs from the output's own).
    NetOut {
        call: ExprId,
        output: u32,
        kind: ParamKind,
    },
    /// The previous step's value of a step-local.
    Prev(LocalId),
    Dist {
        family: Family,
        params: Vec<ExprId>,
    },
    /// The declared posterior, with its conditioning variables bound; `mixture` marginalises
    /// one of them over class probabilities.
    Posterior {
        index: u32,
        given: Vec<(FieldRef, ExprId)>,
        mixture: Option<(FieldRef, ExprId)>,
    },
    Prior {
        index: u32,
    },
}

#[derive(Clone, Debug)]
pub struct Local {
    pub name: String,
    pub ty: Ty,
    /// The bound value (None for draws: see the `Draw` statement).
    pub value: Option<ExprId>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelKind {
    /// q(x_t | x_0)
    Marginal,
    /// q(x_t | x_{t-1})
    OneStep,
    Prior,
    /// q(x_{t-1} | x_t, x_0) or q(x_s | x_t, x_0)
    Posterior,
}

#[derive(Clone, Debug)]
pub struct Kernel {
    pub kind: KernelKind,
    pub target: FieldRef,
    pub given: Vec<FieldRef>,
    pub family: Family,
    /// The distribution expression (an `ExprKind::Dist`).
    pub dist: ExprId,
    pub bindings: Vec<LocalId>,
    /// For a Gaussian marginal `Normal(a * x_0, v)`: `a` and `v`, both functions of time only.
    pub affine: Option<Affine>,
    /// A posterior's `#[approximate]` mark: kept where it differs from Bayes' rule.
    pub approximate: Option<Span>,
    /// A posterior the compiler derived by conjugacy (`check::derive`), not one written.
    pub derived: bool,
    pub span: Span,
}

#[derive(Clone, Copy, Debug)]
pub struct Affine {
    pub alpha: ExprId,
    pub var: ExprId,
    /// The noise level and the time derivatives a velocity needs (continuous time; `None` where
    /// the coefficients have no derivative here, or in discrete time).
    pub rates: Option<Rates>,
}

/// σ(t), a'(t) and σ'(t) of a marginal `Normal(a(t) x_0, σ(t)²)`, as expressions of time.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    pub sigma: ExprId,
    pub dalpha: ExprId,
    pub dsigma: ExprId,
}

#[derive(Clone, Debug)]
pub enum NetInput {
    /// An expression of one field at the call's time; the call passes the field's value.
    Field { field: FieldId, expr: ExprId },
    /// An expression of the time; the call passes a time.
    Time { expr: ExprId },
}

#[derive(Clone, Debug)]
pub struct NetOutput {
    pub kind: ParamKind,
    pub field: FieldId,
    pub ty: Ty,
    /// `preconditioned(skip, scale)`, both expressions of the call's time: the output read as
    /// `kind` is skip · x + scale · F, with F what the network returns and x its state input.
    pub precond: Option<(ExprId, ExprId)>,
}

#[derive(Clone, Debug)]
pub struct Network {
    pub name: String,
    pub inputs: Vec<NetInput>,
    pub outputs: Vec<NetOutput>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Loss {
    pub name: String,
    pub value: ExprId,
    pub bindings: Vec<LocalId>,
    /// The field versions the loss reads: its inputs.
    pub reads: Vec<FieldRef>,
    /// The declared training time distribution (`with t ~ …`); `None` is the uniform default
    /// of `sample_t`.
    pub time_dist: Option<TimeDist>,
    pub span: Span,
}

/// How a loss's training time is drawn (`loss … with t ~ DIST`), by the entry
/// `sample_t.LOSS`.
#[derive(Clone, Debug)]
pub struct TimeDist {
    pub kind: TimeDistKind,
    /// The `with …` clause.
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum TimeDistKind {
    /// Every time equally likely (discrete), or uniform on `[lo, hi]` (continuous): `sample_t`.
    Uniform,
    /// Continuous time: `log t ~ Normal(mean, std²)`, clamped to `[lo, hi]`.
    LogNormal { mean: f64, std: f64 },
    /// Discrete time: `P(t) ∝ w(t)` over `lo..hi`.
    Weighted {
        /// `w`, an expression of the time.
        weight: ExprId,
        /// `P(t)` for `t = lo, lo + 1, …, hi`, normalised in f64 (entries ≥ 0, sum 1).
        probs: Vec<f64>,
    },
}

impl TimeDist {
    /// The CDF table of a `Weighted` distribution: `C_k = P(lo) + … + P(lo + k)` in f64, the
    /// last entry exactly 1.
    pub fn cdf(probs: &[f64]) -> Vec<f64> {
        let mut acc = 0.0;
        let mut out: Vec<f64> = probs
            .iter()
            .map(|p| {
                acc += p;
                acc
            })
            .collect();
        if let Some(last) = out.last_mut() {
            *last = 1.0;
        }
        out
    }
}

#[derive(Clone, Debug)]
pub enum Grid {
    /// Every integer time from the noise end to the data end.
    All,
    Uniform(ExprId),
    Quadratic(ExprId),
    LogSnr(ExprId),
    /// N times evenly spaced from the noise end to the time next to the data, fractional in
    /// between, then the data end (discrete time: diffusers' "linspace" timestep spacing).
    Linspace(ExprId),
    Karras {
        steps: ExprId,
        rho: ExprId,
        /// EDM's σ_min: the Karras part ends at this noise level, and a last step goes to the
        /// data end (`karras(steps, rho, sigma_min)`).
        sigma_min: Option<ExprId>,
    },
    /// Explicit times (a list or a comprehension, already expanded).
    List(ExprId),
}

#[derive(Clone, Debug)]
pub struct SamplerParam {
    pub name: String,
    pub value: ExprId,
    /// True for `sampler f(p = …)`, false for a sampler-level `let`.
    pub overridable: bool,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Sampler {
    pub name: String,
    pub params: Vec<SamplerParam>,
    pub grid: Grid,
    pub grid_span: Span,
    /// The grid evaluated with the parameters' defaults, from the noise end to the data end.
    pub default_grid: Vec<f64>,
    pub init: Vec<Stmt>,
    pub step: Vec<Stmt>,
    pub finalize: Vec<Stmt>,
    /// Network calls per step, counting calls inside `repeat` once.
    pub calls_per_step: usize,
    /// Step-locals read through `prev`: the history the host must keep.
    pub history: Vec<LocalId>,
    /// The step uses a posterior of `x_{t-n}`: every step of any grid it runs on must go
    /// `n` times (the checker holds the default grid to this; a run holds any other).
    pub unit_step: Option<u32>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum StmtKind {
    Let {
        local: LocalId,
        value: ExprId,
    },
    /// Draw a value from `dist` with the given shape.
    Draw {
        local: LocalId,
        dist: ExprId,
        shape: Shape,
    },
    Assign {
        field: FieldId,
        value: ExprId,
    },
    Sample {
        field: FieldId,
        dist: ExprId,
    },
    If {
        cond: ExprId,
        then: Vec<Stmt>,
        otherwise: Vec<Stmt>,
    },
    Repeat {
        count: ExprId,
        body: Vec<Stmt>,
    },
}
