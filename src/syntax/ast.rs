//! The abstract syntax tree of a `.diff` file.
//!
//! Every node carries the byte span of the source it came from.
//! The tree is what was written, with no name resolution: `check` turns it into a
//! typed process.

use crate::diag::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Process(Process),
    Fn(FnDef),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FnDef {
    pub name: Ident,
    pub params: Vec<Ident>,
    pub body: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Process {
    pub name: Ident,
    pub decls: Vec<Decl>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decl {
    pub kind: DeclKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DeclKind {
    Const {
        name: Ident,
        value: Expr,
    },
    Dim {
        names: Vec<Ident>,
    },
    Param {
        name: Ident,
        ty: TypeExpr,
        default: Option<Expr>,
    },
    Mask {
        name: Ident,
        dim: Ident,
    },
    Field(FieldDecl),
    Time(TimeDecl),
    Schedule(ScheduleDecl),
    Forward(KernelDecl),
    Posterior(KernelDecl),
    Prior(KernelDecl),
    Network(NetworkDecl),
    Loss(LossDecl),
    Sampler(SamplerDecl),
    Fn(FnDef),
}

#[derive(Clone, Debug, PartialEq)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TypeKind {
    Real,
    Bool,
    Cat(Box<Expr>),
    Vec(Box<Expr>),
    Mat(Box<Expr>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct FieldDecl {
    pub name: Ident,
    pub ty: TypeExpr,
    pub shape: Vec<Ident>,
    pub shape_span: Option<Span>,
    pub sym: Option<Span>,
    pub masked: Option<Ident>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TimeDecl {
    pub name: Ident,
    pub domain: TimeDomain,
    pub domain_span: Span,
    pub data_at: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TimeDomain {
    Discrete { lo: Expr, hi: Expr },
    Continuous { lo: Expr, hi: Expr },
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleDecl {
    pub name: Ident,
    pub var: Ident,
    pub interval: Option<Interval>,
    pub monotone: Option<(Monotone, Span)>,
    pub body: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    pub lo: Expr,
    pub lo_closed: bool,
    pub hi: Expr,
    pub hi_closed: bool,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Monotone {
    Increasing,
    Decreasing,
}

/// `forward x_t | x_0 ~ D where { … }`, and the same shape for `posterior` and `prior`.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelDecl {
    /// Attributes written before the declaration (`#[approximate]`; posteriors only).
    pub attributes: Vec<Ident>,
    pub target: Var,
    pub given: Vec<Var>,
    pub dist: Expr,
    pub bindings: Vec<Binding>,
}

/// A random variable as written in a kernel header: `x_t`, `x_{t-1}`, `x`.
#[derive(Clone, Debug, PartialEq)]
pub struct Var {
    pub name: String,
    /// `x_{t-1}` is stored as name `x`, subscript `("t", -1)`.
    pub subscript: Option<(String, i64)>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub name: Ident,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NetworkDecl {
    pub name: Ident,
    pub inputs: Vec<Expr>,
    pub outputs: Vec<NetOutput>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NetOutput {
    pub kind: Ident,
    pub field: Ident,
    /// `preconditioned(skip, scale)`: the output read as `kind` is skip · x + scale · F, with F
    /// what the network returns and x the state it is called at.
    pub precond: Option<(Expr, Expr)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LossDecl {
    pub name: Ident,
    pub value: Expr,
    pub bindings: Vec<Binding>,
    /// `with t ~ LogNormal(-1.2, 1.2)`: how the loss's training time is drawn.
    pub time_dist: Option<TimeDistDecl>,
}

/// `with VAR ~ DIST`: a loss's training time distribution (`VAR` must be the time).
#[derive(Clone, Debug, PartialEq)]
pub struct TimeDistDecl {
    pub var: Ident,
    /// `Uniform`, `Uniform()`, `LogNormal(mean, std)` or `Weighted(w)`, checked by the checker.
    pub dist: Expr,
    /// The whole clause.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SamplerDecl {
    pub name: Ident,
    pub params: Vec<Binding>,
    pub items: Vec<SamplerItem>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SamplerItem {
    Grid(Expr, Span),
    Init(Block),
    Step(Block),
    Finalize(Block),
    Let(Binding),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    Let {
        name: Ident,
        value: Expr,
    },
    Draw {
        name: Ident,
        dist: Expr,
        like: Option<Ident>,
    },
    Assign {
        name: Ident,
        value: Expr,
    },
    Sample {
        name: Ident,
        dist: Expr,
    },
    If {
        cond: Expr,
        then: Block,
        otherwise: Option<Block>,
    },
    Repeat {
        count: Expr,
        body: Block,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    Add,
    Sub,
    Mul,
    Div,
    MatMul,
    Pow,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
            BinOp::Pow => "^",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// `f(e)` or `f(name = e)`
    Value,
    /// `f(name ~ e)`: marginalise `name` over the distribution `e`.
    Marginal,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub kind: ArgKind,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Number {
        value: f64,
        is_int: bool,
    },
    Bool(bool),
    Name(String),
    /// `x_{t-1}`
    Subscripted {
        base: String,
        var: String,
        offset: i64,
    },
    Unary {
        op: UnOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Call {
        callee: Box<Expr>,
        args: Vec<Arg>,
    },
    Member {
        base: Box<Expr>,
        name: Ident,
    },
    Index {
        base: Box<Expr>,
        index: Box<Expr>,
    },
    If {
        cond: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    List(Vec<Expr>),
    Comprehension {
        body: Box<Expr>,
        var: Ident,
        lo: Box<Expr>,
        hi: Box<Expr>,
    },
}

impl Expr {
    /// The name this expression is, if it is a plain name.
    pub fn as_name(&self) -> Option<&str> {
        match &self.kind {
            ExprKind::Name(n) => Some(n),
            _ => None,
        }
    }
}
