//! The kernel IR: what a backend compiles. One kernel is one fused loop over the elements of a
//! domain, in scalar SSA form; the CPU backend vectorizes it and the GPU backend maps it onto
//! invocations.
//!
//! Contract:
//! - A kernel runs over `batch × per` elements, `per` the product of the sizes of `domain`
//!   (an empty domain is one element per sample). Flat element `i` is sample `i / per`, element
//!   `i % per` of it; a backend may split the range of `i` anywhere (threads, chunks, vector
//!   lanes) and the results do not change.
//! - Values are scalars: a `vec<K>` node is K values, a `K×K` coefficient K² values.
//! - Buffers are bound by the host: each `Buf` says what it holds (`BufSrc`) and its element
//!   type; every load and store gives its index explicitly.
//! - Coefficients are f32 slots computed by the host program before the call (`coefs`).
//! - Random draws (`Inst::Normal`, `Inst::Uniform`) take the RNG index of the element; the
//!   generator is `crate::rng`, with the kernel's `seed`, `step` and `offset` arguments.
//! - `Inst::Fail` raises a bit of the kernel's status word instead of trapping: the host turns it
//!   into an error message.
//! - The text form (`Display`) is stable: snapshots hold it.

pub(crate) mod bind;
pub mod build;

use crate::ir::NodeId;
use std::fmt;

/// An SSA value: the index of the statement that defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct V(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    F32,
    F64,
    /// A class index or a 32-bit word.
    I32,
    /// An index.
    I64,
    Bool,
}

/// How a buffer's elements are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Store {
    F32,
    /// Class indices.
    U32,
    /// Bools as bytes 0 or 1.
    U8,
}

impl Store {
    pub fn ty(self) -> Ty {
        match self {
            Store::F32 => Ty::F32,
            Store::U32 => Ty::I32,
            Store::U8 => Ty::Bool,
        }
    }
    pub fn bytes(self) -> usize {
        match self {
            Store::F32 | Store::U32 => 4,
            Store::U8 => 1,
        }
    }
}

/// What a buffer holds; the host binds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BufSrc {
    /// The value of a node of the program (an input, the state, a slot, a network output, or a
    /// node another kernel computed).
    Node(NodeId),
    /// A draw supplied by the caller in place of the generator (by draw site).
    Draw(u32),
    /// A node mask (`Process::masks` index): one byte per node per sample.
    Mask(u32),
    /// An output of this kernel: a node's value, a sampler slot or field.
    Out(Target),
}

/// Where a kernel output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Node(NodeId),
    Slot(u32),
    Field(u32),
}

#[derive(Clone, Debug)]
pub struct Buf {
    pub src: BufSrc,
    pub store: Store,
    /// Values per element (K for a `vec<K>` value).
    pub width: u32,
    pub output: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Un {
    Neg,
    Not,
    Abs,
    Sqrt,
    Floor,
    /// Float to integer, truncating toward zero and saturating (an index read off a real).
    ToI32,
    /// Unsigned integer to float.
    I32ToF32,
    BoolToF32,
    F32ToF64,
    F64ToF32,
    I32ToI64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    /// `f32::min` / `f32::max`: a NaN operand gives the other one.
    Min,
    Max,
    And,
    Or,
    /// Integer division and remainder (unsigned).
    UDiv,
    URem,
    Shr,
    BitAnd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// Functions the backends take from the C math library, so that they agree with the
/// interpreter (which calls the same functions through Rust's `f32`/`f64` methods).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Libm {
    Expf,
    Logf,
    Expm1f,
    Log1pf,
    Sinf,
    Cosf,
    Tanhf,
    Powf,
    Log,
}

impl Libm {
    pub fn symbol(self) -> &'static str {
        match self {
            Libm::Expf => "expf",
            Libm::Logf => "logf",
            Libm::Expm1f => "expm1f",
            Libm::Log1pf => "log1pf",
            Libm::Sinf => "sinf",
            Libm::Cosf => "cosf",
            Libm::Tanhf => "tanhf",
            Libm::Powf => "powf",
            Libm::Log => "log",
        }
    }
    pub fn arity(self) -> usize {
        if self == Libm::Powf {
            2
        } else {
            1
        }
    }
    pub fn ty(self) -> Ty {
        if self == Libm::Log {
            Ty::F64
        } else {
            Ty::F32
        }
    }
    pub const ALL: [Libm; 9] = [
        Libm::Expf,
        Libm::Logf,
        Libm::Expm1f,
        Libm::Log1pf,
        Libm::Sinf,
        Libm::Cosf,
        Libm::Tanhf,
        Libm::Powf,
        Libm::Log,
    ];
}

/// Status bits a kernel raises.
pub const FAIL_INDEX: u32 = 1;
pub const FAIL_CLASS: u32 = 2;
/// A value stored to a sampler's field is NaN or infinite (the host then finds which).
pub const FAIL_NONFINITE: u32 = 4;

#[derive(Clone, Debug)]
pub enum Inst {
    F32(f32),
    F64(f64),
    I32(u32),
    I64(u64),
    Bool(bool),
    /// Coefficient slot `i` (f32).
    Coef(u32),
    /// Coefficient slot `base + index` (a row or column of a matrix picked by a class).
    CoefAt {
        base: u32,
        index: V,
    },
    /// The size of `Kernel::dims[i]` (i64).
    Size(u32),
    /// The flat element index `i`, its sample `i / per` and its element `i % per` (i64).
    Flat,
    Sample,
    Elem,
    /// `buf[index * width + comp]`.
    Load {
        buf: u32,
        index: V,
        comp: u32,
    },
    Store {
        buf: u32,
        index: V,
        comp: u32,
        value: V,
    },
    Un(Un, V),
    Bin(Bin, V, V),
    Cmp(Cmp, V, V),
    /// `if c { a } else { b }`.
    Select(V, V, V),
    Call(Libm, Vec<V>),
    /// Standard normal number `index` of draw `site` (`rng::normal`).
    Normal {
        site: u32,
        index: V,
    },
    /// Uniform number `index` of draw `site` (`rng::uniform`).
    Uniform {
        site: u32,
        index: V,
    },
    /// Raise status bits when the condition holds.
    Fail(V, u32),
    /// A loop: `acc` starts at `init`; `body` runs for `index` in 0..count and its value `next`
    /// becomes the accumulator; the statement's value is the final accumulator.
    Loop {
        count: V,
        init: V,
        index: V,
        acc: V,
        body: Vec<Stmt>,
        next: V,
    },
    /// Placeholders a loop defines for its body (its index and accumulator).
    LoopIndex,
    LoopAcc,
}

#[derive(Clone, Debug)]
pub struct Stmt {
    pub id: V,
    pub ty: Ty,
    pub inst: Inst,
}

#[derive(Clone, Debug)]
pub struct Kernel {
    pub name: String,
    /// Dimension names whose sizes the host passes, in order (`Inst::Size`).
    pub dims: Vec<String>,
    /// The domain: indices into `dims` whose product is the elements per sample.
    pub domain: Vec<u32>,
    pub bufs: Vec<Buf>,
    /// Coefficient slots: program coefficient, and component within it.
    pub coefs: Vec<(u32, u32)>,
    pub body: Vec<Stmt>,
    /// Draw sites the kernel generates (for documentation and the WGSL bindings).
    pub sites: Vec<u32>,
    /// Number of SSA values (ids run from 0).
    pub values: u32,
}

impl Kernel {
    /// The top-level values that are the element's flat index.
    pub fn flat_values(&self) -> Vec<V> {
        self.body
            .iter()
            .filter(|s| matches!(s.inst, Inst::Flat))
            .map(|s| s.id)
            .collect()
    }

    /// Every statement, loops' bodies included, in order.
    pub fn walk(&self, f: &mut dyn FnMut(&Stmt)) {
        fn go(s: &[Stmt], f: &mut dyn FnMut(&Stmt)) {
            for x in s {
                f(x);
                if let Inst::Loop { body, .. } = &x.inst {
                    go(body, f);
                }
            }
        }
        go(&self.body, f)
    }
}

impl fmt::Display for V {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Ty::F32 => "f32",
            Ty::F64 => "f64",
            Ty::I32 => "i32",
            Ty::I64 => "i64",
            Ty::Bool => "bool",
        })
    }
}

fn stmts(f: &mut fmt::Formatter, body: &[Stmt], indent: usize) -> fmt::Result {
    let pad = "  ".repeat(indent);
    for s in body {
        let args = |vs: &[V]| {
            vs.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &s.inst {
            Inst::Store {
                buf,
                index,
                comp,
                value,
            } => {
                writeln!(f, "{pad}store b{buf}[{index}].{comp} = {value}")?;
                continue;
            }
            Inst::Fail(c, bits) => {
                writeln!(f, "{pad}fail {c} bits {bits}")?;
                continue;
            }
            _ => {}
        }
        write!(f, "{pad}{}: {} = ", s.id, s.ty)?;
        match &s.inst {
            Inst::F32(x) => writeln!(f, "{x:?}")?,
            Inst::F64(x) => writeln!(f, "{x:?}f64")?,
            Inst::I32(x) => writeln!(f, "{x}i32")?,
            Inst::I64(x) => writeln!(f, "{x}i64")?,
            Inst::Bool(x) => writeln!(f, "{x}")?,
            Inst::Coef(i) => writeln!(f, "coef {i}")?,
            Inst::CoefAt { base, index } => writeln!(f, "coef {base} + {index}")?,
            Inst::Size(i) => writeln!(f, "size {i}")?,
            Inst::Flat => writeln!(f, "flat")?,
            Inst::Sample => writeln!(f, "sample")?,
            Inst::Elem => writeln!(f, "elem")?,
            Inst::Load { buf, index, comp } => writeln!(f, "load b{buf}[{index}].{comp}")?,
            Inst::Un(op, a) => writeln!(f, "{op:?} {a}")?,
            Inst::Bin(op, a, b) => writeln!(f, "{op:?} {a}, {b}")?,
            Inst::Cmp(op, a, b) => writeln!(f, "{op:?} {a}, {b}")?,
            Inst::Select(c, a, b) => writeln!(f, "select {c}, {a}, {b}")?,
            Inst::Call(l, a) => writeln!(f, "{}({})", l.symbol(), args(a))?,
            Inst::Normal { site, index } => writeln!(f, "normal site {site} at {index}")?,
            Inst::Uniform { site, index } => writeln!(f, "uniform site {site} at {index}")?,
            Inst::Loop {
                count,
                init,
                index,
                acc,
                body,
                next,
            } => {
                writeln!(f, "loop {index} < {count}, {acc} = {init} {{")?;
                stmts(f, body, indent + 1)?;
                writeln!(f, "{pad}  next {next}")?;
                writeln!(f, "{pad}}}")?;
            }
            Inst::LoopIndex => writeln!(f, "loop index")?,
            Inst::LoopAcc => writeln!(f, "loop accumulator")?,
            Inst::Store { .. } | Inst::Fail(..) => unreachable!(),
        }
    }
    Ok(())
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let dom: Vec<&str> = self
            .domain
            .iter()
            .map(|d| self.dims[*d as usize].as_str())
            .collect();
        writeln!(
            f,
            "kernel {} over [batch{}{}]",
            self.name,
            if dom.is_empty() { "" } else { ", " },
            dom.join(", ")
        )?;
        for (i, b) in self.bufs.iter().enumerate() {
            writeln!(
                f,
                "  b{i}: {} {:?} x{} {:?}",
                if b.output { "out" } else { "in " },
                b.store,
                b.width,
                b.src
            )?;
        }
        if !self.coefs.is_empty() {
            let c: Vec<String> = self
                .coefs
                .iter()
                .map(|(c, q)| {
                    if *q == 0 {
                        format!("c{c}")
                    } else {
                        format!("c{c}.{q}")
                    }
                })
                .collect();
            writeln!(f, "  coefs: {}", c.join(", "))?;
        }
        stmts(f, &self.body, 1)
    }
}
