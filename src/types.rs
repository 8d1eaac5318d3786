//! Types of values in a process: an element type and a stage saying how the value varies.

use crate::typed::{DimId, MaskId, NetworkId};

/// What one element is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    Real,
    Bool,
    /// A class index in 0..K.
    Cat(u32),
    /// K reals (a class axis).
    Vec(u32),
    /// K×K reals (a transition matrix).
    Mat(u32),
}

impl Elem {
    pub fn describe(self) -> String {
        match self {
            Elem::Real => "real".into(),
            Elem::Bool => "bool".into(),
            Elem::Cat(k) => format!("cat<{k}>"),
            Elem::Vec(k) => format!("vec<{k}>"),
            Elem::Mat(k) => format!("mat<{k}>"),
        }
    }
    pub fn is_numeric(self) -> bool {
        matches!(self, Elem::Real | Elem::Vec(_) | Elem::Mat(_))
    }
}

/// The axes a field-stage value varies over, with its structure.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub dims: Vec<DimId>,
    /// `[n, n]`, symmetric with an empty diagonal.
    pub sym: bool,
    pub mask: Option<MaskId>,
}

impl Shape {
    pub fn scalar() -> Shape {
        Shape {
            dims: Vec::new(),
            sym: false,
            mask: None,
        }
    }
}

/// How a value varies. Ordered: a combination takes the larger stage.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Known at compile time.
    Const,
    /// Depends on time, parameters or the step: one value per step, computed on the host in f64.
    Host,
    /// One value per sample (a reduction, or a field without axes).
    Sample,
    /// One value per element of a field shape.
    Field(Shape),
}

impl Stage {
    pub fn rank(&self) -> u8 {
        match self {
            Stage::Const => 0,
            Stage::Host => 1,
            Stage::Sample => 2,
            Stage::Field(_) => 3,
        }
    }
    pub fn shape(&self) -> Option<&Shape> {
        match self {
            Stage::Field(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    Value {
        elem: Elem,
        stage: Stage,
    },
    /// A distribution over values of `elem`.
    Dist {
        elem: Elem,
        stage: Stage,
    },
    /// The result of calling a network, before an output is picked.
    NetCall(NetworkId),
    /// A time grid.
    Grid,
    /// An error was already reported for this expression.
    Error,
}

impl Ty {
    pub fn value(elem: Elem, stage: Stage) -> Ty {
        Ty::Value { elem, stage }
    }
    pub fn real(stage: Stage) -> Ty {
        Ty::Value {
            elem: Elem::Real,
            stage,
        }
    }
    pub fn elem(&self) -> Option<Elem> {
        match self {
            Ty::Value { elem, .. } | Ty::Dist { elem, .. } => Some(*elem),
            _ => None,
        }
    }
    pub fn stage(&self) -> Option<&Stage> {
        match self {
            Ty::Value { stage, .. } | Ty::Dist { stage, .. } => Some(stage),
            _ => None,
        }
    }
    pub fn is_error(&self) -> bool {
        matches!(self, Ty::Error)
    }
}
