//! Compile-time evaluation of typed expressions in f64.
//!
//! Schedules are tabulated with this, kernel parameters are checked at every grid point,
//! and grids are built. Every operation that would produce a non-finite number (a log of 0,
//! a division by 0, a square root of a negative number) is reported as a hazard at the span
//! of the operation that produced it.

use crate::syntax::ast::{BinOp, UnOp};
use crate::typed::*;
use std::cell::RefCell;
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
pub enum EvalError {
    /// The value is not finite or the operation is undefined there.
    Hazard {
        span: crate::diag::Span,
        message: String,
    },
    /// A schedule is read outside the times where it is defined.
    Undefined {
        span: crate::diag::Span,
        message: String,
    },
    /// The value depends on something only known at run time (a field, a network, noise).
    Runtime,
}

/// Values of the time variables and of whatever else an expression may read.
#[derive(Clone, Debug, Default)]
pub struct Env {
    pub t: f64,
    pub s: Option<f64>,
    pub r: Option<f64>,
    /// (step index, number of steps)
    pub step: Option<(usize, usize)>,
    pub sampler_params: Vec<Value>,
    /// Substitutions for field versions (class indices as reals, bools, reals).
    pub fields: Vec<(FieldRef, Value)>,
    /// Values of the process's `param`s given at run time, by `ParamId` (the defaults
    /// otherwise).
    pub params: Vec<Option<Value>>,
}

pub struct Evaluator<'p> {
    pub p: &'p Process,
    /// `(cumprod/cumsum node, t)` → value, so that tabulating in increasing t is linear.
    cache: RefCell<HashMap<(u32, i64), Value>>,
}

type R = Result<Value, EvalError>;

fn hazard(e: &Expr, message: impl Into<String>) -> EvalError {
    EvalError::Hazard {
        span: e.span,
        message: message.into(),
    }
}

impl<'p> Evaluator<'p> {
    pub fn new(p: &'p Process) -> Evaluator<'p> {
        Evaluator {
            p,
            cache: RefCell::new(HashMap::new()),
        }
    }

    pub fn real(&self, id: ExprId, env: &Env) -> Result<f64, EvalError> {
        match self.eval(id, env)? {
            Value::Real(x) => Ok(x),
            Value::Bool(b) => Ok(b as u8 as f64),
            _ => Err(EvalError::Runtime),
        }
    }

    pub fn eval(&self, id: ExprId, env: &Env) -> R {
        let e = self.p.expr(id);
        let v = self.eval_inner(id, e, env)?;
        if !finite(&v) {
            return Err(hazard(e, "the value is not a finite number"));
        }
        Ok(v)
    }

    fn eval_inner(&self, id: ExprId, e: &Expr, env: &Env) -> R {
        let p = self.p;
        Ok(match &e.kind {
            ExprKind::Number(x) => Value::Real(*x),
            ExprKind::Bool(b) => Value::Bool(*b),
            ExprKind::Const(c) => Value::Real(p.consts[c.index()].value),
            ExprKind::Param(id) => env
                .params
                .get(id.index())
                .and_then(|v| v.clone())
                .or_else(|| p.params[id.index()].default.clone())
                .ok_or(EvalError::Runtime)?,
            ExprKind::SamplerParam { index, .. } => env
                .sampler_params
                .get(*index as usize)
                .cloned()
                .ok_or(EvalError::Runtime)?,
            ExprKind::Time(TimeRef::T) => Value::Real(env.t),
            ExprKind::Time(TimeRef::S) => Value::Real(env.s.ok_or(EvalError::Runtime)?),
            ExprKind::Time(TimeRef::R) => Value::Real(env.r.ok_or(EvalError::Runtime)?),
            ExprKind::Step(v) => {
                let (k, n) = env.step.ok_or(EvalError::Runtime)?;
                match v {
                    StepVar::K => Value::Real(k as f64),
                    StepVar::First => Value::Bool(k == 0),
                    StepVar::Last => Value::Bool(k + 1 == n),
                }
            }
            ExprKind::Schedule { id, at } => {
                let at_v = self.real(*at, env)?;
                self.schedule_at(*id, at_v, e)?
            }
            ExprKind::Field(r) => env
                .fields
                .iter()
                .find(|(f, _)| f == r)
                .map(|(_, v)| v.clone())
                .ok_or(EvalError::Runtime)?,
            ExprKind::State(_)
            | ExprKind::Noise(_)
            | ExprKind::NetCall { .. }
            | ExprKind::NetOut { .. }
            | ExprKind::Prev(_)
            | ExprKind::Dist { .. }
            | ExprKind::Posterior { .. }
            | ExprKind::Prior { .. } => return Err(EvalError::Runtime),
            ExprKind::Local(l) => match p.locals[l.index()].value {
                Some(v) => self.eval(v, env)?,
                None => return Err(EvalError::Runtime),
            },
            ExprKind::Unary { op, arg } => {
                let a = self.eval(*arg, env)?;
                match op {
                    UnOp::Neg => map(&a, |x| -x),
                    UnOp::Not => Value::Bool(!truth(&a)?),
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                // `and`/`or` short-circuit so that guarded expressions are not evaluated.
                match op {
                    BinOp::And => {
                        return Ok(Value::Bool(
                            truth(&self.eval(*lhs, env)?)? && truth(&self.eval(*rhs, env)?)?,
                        ))
                    }
                    BinOp::Or => {
                        return Ok(Value::Bool(
                            truth(&self.eval(*lhs, env)?)? || truth(&self.eval(*rhs, env)?)?,
                        ))
                    }
                    _ => {}
                }
                let a = self.eval(*lhs, env)?;
                let b = self.eval(*rhs, env)?;
                binary(*op, &a, &b, e)?
            }
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => {
                if truth(&self.eval(*cond, env)?)? {
                    self.eval(*then, env)?
                } else {
                    self.eval(*otherwise, env)?
                }
            }
            ExprKind::Index { base, index } => {
                let i = self.real(*index, env)?;
                let base = self.eval(*base, env)?;
                let len = match &base {
                    Value::Vec(v) => v.len(),
                    Value::List(v) => v.len(),
                    _ => return Err(EvalError::Runtime),
                };
                if i.fract() != 0.0 || i < 0.0 || i >= len as f64 {
                    return Err(hazard(e, format!("index {i} is outside 0 to {}", len - 1)));
                }
                match base {
                    Value::Vec(v) => Value::Real(v[i as usize]),
                    Value::List(v) => v[i as usize].clone(),
                    _ => unreachable!(),
                }
            }
            ExprKind::List(items) => {
                let vals = items
                    .iter()
                    .map(|i| self.eval(*i, env))
                    .collect::<Result<Vec<_>, _>>()?;
                if vals
                    .iter()
                    .all(|v| matches!(v, Value::Real(_) | Value::Bool(_)))
                {
                    Value::Vec(vals.iter().map(|v| as_num(v).as_real().unwrap()).collect())
                } else if vals
                    .iter()
                    .all(|v| matches!(v, Value::Vec(r) if r.len() == vals.len()))
                {
                    let k = vals.len();
                    Value::Mat(
                        k,
                        vals.iter()
                            .flat_map(|v| {
                                if let Value::Vec(r) = v {
                                    r.clone()
                                } else {
                                    vec![]
                                }
                            })
                            .collect(),
                    )
                } else {
                    Value::List(vals)
                }
            }
            ExprKind::Call { func, args } => self.call(*func, args, id, e, env)?,
        })
    }

    /// A schedule's value at time `at`.
    pub fn schedule_at(&self, id: ScheduleId, at: f64, e: &Expr) -> R {
        let s = self.p.schedule(id);
        let time = &self.p.time;
        match time.kind {
            TimeKind::Discrete => {
                let ti = at.round();
                if (ti - at).abs() > 1e-9 {
                    return Err(EvalError::Undefined {
                        span: e.span,
                        message: format!(
                            "`{0}` is a discrete schedule, read at t = {at}; interp({0}(…)) reads it between its times",
                            s.name
                        ),
                    });
                }
                let idx = ti - (time.lo - 1.0);
                match (idx >= 0.0).then(|| s.table.get(idx as usize)).flatten() {
                    Some(Some(v)) => Ok(v.clone()),
                    _ => Err(EvalError::Undefined {
                        span: e.span,
                        message: format!(
                            "`{}` is not defined at t = {ti} (it is defined on {}..{})",
                            s.name, time.lo, time.hi
                        ),
                    }),
                }
            }
            TimeKind::Continuous => {
                let env = Env {
                    t: at,
                    ..Env::default()
                };
                // As in the discrete table: rounding past a closed end of the declared
                // interval gives the end itself.
                Ok(match self.eval(s.body, &env)? {
                    Value::Real(x) => {
                        Value::Real(super::schedules::snap_to_closed_end(s.interval, x))
                    }
                    v => v,
                })
            }
        }
    }

    /// A discrete schedule at a time `u` that may lie between two of its times: the table's
    /// value at a whole time, and otherwise `(f(j + 1) − f(j)) · (u − j) + f(j)` for j = ⌊u⌋,
    /// elementwise, as numpy's `interp` computes it over a table with unit spacing. A read past
    /// either end of the table is an error, as a read of the schedule there is.
    pub fn schedule_between(&self, id: ScheduleId, u: f64, e: &Expr) -> R {
        if !u.is_finite() {
            return Err(EvalError::Undefined {
                span: e.span,
                message: format!(
                    "`{}` is read between its times at t = {u}",
                    self.p.schedule(id).name
                ),
            });
        }
        let j = u.floor();
        if u == j {
            return self.schedule_at(id, j, e);
        }
        let lo = self.schedule_at(id, j, e)?;
        let hi = self.schedule_at(id, j + 1.0, e)?;
        let w = u - j;
        let line = |a: f64, b: f64| (b - a) * w + a;
        Ok(match (lo, hi) {
            (Value::Real(a), Value::Real(b)) => Value::Real(line(a, b)),
            (Value::Vec(a), Value::Vec(b)) => {
                Value::Vec(a.iter().zip(&b).map(|(a, b)| line(*a, *b)).collect())
            }
            (Value::Mat(k, a), Value::Mat(_, b)) => {
                Value::Mat(k, a.iter().zip(&b).map(|(a, b)| line(*a, *b)).collect())
            }
            _ => return Err(EvalError::Runtime),
        })
    }

    fn call(&self, func: Builtin, args: &[ExprId], id: ExprId, e: &Expr, env: &Env) -> R {
        use Builtin as B;
        let p = self.p;
        let time = &p.time;
        let arg = |i: usize| self.eval(args[i], env);
        Ok(match func {
            B::Linspace | B::Geometric => {
                if env.t < time.lo - 1e-9 || env.t > time.hi + 1e-9 {
                    return Err(EvalError::Undefined {
                        span: e.span,
                        message: format!(
                            "`{}` is defined on {}..{} only",
                            func.name(),
                            time.lo,
                            time.hi
                        ),
                    });
                }
                let a = self.real(args[0], env)?;
                let b = self.real(args[1], env)?;
                let u = if time.hi > time.lo {
                    (env.t - time.lo) / (time.hi - time.lo)
                } else {
                    0.0
                };
                if func == B::Linspace {
                    Value::Real(a + (b - a) * u)
                } else {
                    if a <= 0.0 || b <= 0.0 {
                        return Err(hazard(e, "a geometric sequence needs positive ends"));
                    }
                    Value::Real(a * (b / a).powf(u))
                }
            }
            B::Cumprod | B::Cumsum => {
                let t = env.t.round() as i64;
                let lo = time.lo as i64;
                let identity = |v: &Value| -> Value {
                    match (func, v) {
                        (B::Cumprod, Value::Mat(k, _)) => Value::Mat(*k, eye(*k)),
                        (B::Cumprod, _) => Value::Real(1.0),
                        (_, Value::Mat(k, _)) => Value::Mat(*k, vec![0.0; k * k]),
                        _ => Value::Real(0.0),
                    }
                };
                if t < lo {
                    // The empty product or sum, with the shape of the body at the first time.
                    let first = self.eval(
                        args[0],
                        &Env {
                            t: lo as f64,
                            ..env.clone()
                        },
                    )?;
                    return Ok(identity(&first));
                }
                if let Some(v) = self.cache.borrow().get(&(id.0, t)) {
                    return Ok(v.clone());
                }
                let prev = self.call(
                    func,
                    args,
                    id,
                    e,
                    &Env {
                        t: (t - 1) as f64,
                        ..env.clone()
                    },
                )?;
                let cur = arg(0)?;
                let op = if func == B::Cumprod {
                    BinOp::MatMul
                } else {
                    BinOp::Add
                };
                let op = match (&prev, &cur) {
                    (Value::Mat(..), Value::Mat(..)) => op,
                    _ if func == B::Cumprod => BinOp::Mul,
                    _ => BinOp::Add,
                };
                let v = binary(op, &prev, &cur, e)?;
                self.cache.borrow_mut().insert((id.0, t), v.clone());
                v
            }
            B::Deriv => Value::Real(self.dual(args[0], env, 1.0)?.1),
            B::Interp => {
                let ExprKind::Schedule { id: s, at } = self.p.expr(args[0]).kind else {
                    return Err(EvalError::Runtime);
                };
                let u = self.real(at, env)?;
                self.schedule_between(s, u, e)?
            }
            B::Sqrt => {
                let a = arg(0)?;
                checked_map(&a, e, |x| {
                    if x < -1e-12 {
                        Err(format!(
                            "square root of a negative number ({})",
                            crate::check::schedules::fmt(x)
                        ))
                    } else {
                        Ok(x.max(0.0).sqrt())
                    }
                })?
            }
            B::Log => checked_map(&arg(0)?, e, |x| {
                if x == 0.0 {
                    Err("log of 0".into())
                } else if x < 0.0 {
                    Err(format!(
                        "log of a negative number ({})",
                        crate::check::schedules::fmt(x)
                    ))
                } else {
                    Ok(x.ln())
                }
            })?,
            B::Log1p => checked_map(&arg(0)?, e, |x| {
                if x <= -1.0 {
                    Err(format!(
                        "log1p of {} (log of {})",
                        crate::check::schedules::fmt(x),
                        crate::check::schedules::fmt(1.0 + x)
                    ))
                } else {
                    Ok(x.ln_1p())
                }
            })?,
            B::Exp => map(&arg(0)?, f64::exp),
            B::Expm1 => map(&arg(0)?, f64::exp_m1),
            B::Sin => map(&arg(0)?, f64::sin),
            B::Cos => map(&arg(0)?, f64::cos),
            B::Tanh => map(&arg(0)?, f64::tanh),
            B::Abs => map(&arg(0)?, f64::abs),
            B::Floor => map(&arg(0)?, f64::floor),
            B::Sigmoid => map(&arg(0)?, |x| 1.0 / (1.0 + (-x).exp())),
            B::Softplus => map(&arg(0)?, |x| if x > 30.0 { x } else { x.exp().ln_1p() }),
            B::Min | B::Max => {
                let f = if func == B::Min { f64::min } else { f64::max };
                zip(&arg(0)?, &arg(1)?, e, f)?
            }
            B::LogAddExp => zip(&arg(0)?, &arg(1)?, e, |a, b| {
                let m = a.max(b);
                m + ((a - m).exp() + (b - m).exp()).ln()
            })?,
            B::Clamp => {
                let lo = arg(1)?;
                let hi = arg(2)?;
                let x = zip(&arg(0)?, &lo, e, f64::max)?;
                zip(&x, &hi, e, f64::min)?
            }
            B::OneHot => {
                let c = self.real(args[0], env)?;
                let k = match &e.ty {
                    Ty::Value {
                        elem: Elem::Vec(k), ..
                    } => *k as usize,
                    _ => return Err(EvalError::Runtime),
                };
                let mut v = vec![0.0; k];
                let ci = c.round();
                if ci < 0.0 || ci as usize >= k {
                    return Err(hazard(e, format!("class {ci} is outside 0..{k}")));
                }
                v[ci as usize] = 1.0;
                Value::Vec(v)
            }
            B::Argmax => match arg(0)? {
                Value::Vec(v) => {
                    let mut best = 0;
                    for (i, x) in v.iter().enumerate() {
                        if *x > v[best] {
                            best = i;
                        }
                    }
                    Value::Real(best as f64)
                }
                _ => return Err(EvalError::Runtime),
            },
            B::Softmax | B::LogSoftmax | B::LogSumExp => match arg(0)? {
                Value::Vec(v) => {
                    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let lse = m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
                    match func {
                        B::Softmax => Value::Vec(v.iter().map(|x| (x - lse).exp()).collect()),
                        B::LogSoftmax => Value::Vec(v.iter().map(|x| x - lse).collect()),
                        _ => Value::Real(lse),
                    }
                }
                _ => return Err(EvalError::Runtime),
            },
            B::VSum => match arg(0)? {
                Value::Vec(v) => Value::Real(v.iter().sum()),
                _ => return Err(EvalError::Runtime),
            },
            B::Dot => match (arg(0)?, arg(1)?) {
                (Value::Vec(a), Value::Vec(b)) => {
                    Value::Real(a.iter().zip(&b).map(|(x, y)| x * y).sum())
                }
                _ => return Err(EvalError::Runtime),
            },
            B::Outer => match (arg(0)?, arg(1)?) {
                (Value::Vec(a), Value::Vec(b)) => Value::Mat(
                    a.len(),
                    a.iter()
                        .flat_map(|x| b.iter().map(move |y| x * y))
                        .collect(),
                ),
                _ => return Err(EvalError::Runtime),
            },
            B::Transpose => match arg(0)? {
                Value::Mat(k, m) => {
                    let mut out = vec![0.0; k * k];
                    for i in 0..k {
                        for j in 0..k {
                            out[j * k + i] = m[i * k + j];
                        }
                    }
                    Value::Mat(k, out)
                }
                _ => return Err(EvalError::Runtime),
            },
            B::Eye | B::Ones | B::Zeros => match &e.ty {
                Ty::Value {
                    elem: Elem::Mat(k), ..
                } => {
                    let k = *k as usize;
                    Value::Mat(
                        k,
                        if func == B::Eye {
                            eye(k)
                        } else {
                            vec![1.0; k * k]
                        },
                    )
                }
                Ty::Value {
                    elem: Elem::Vec(k), ..
                } => Value::Vec(vec![if func == B::Zeros { 0.0 } else { 1.0 }; *k as usize]),
                _ => return Err(EvalError::Runtime),
            },
            B::Sum | B::Mean | B::Norm | B::RowSum | B::Pair | B::Gram => {
                return Err(EvalError::Runtime)
            }
        })
    }

    /// Forward-mode derivative of a real expression in the time variable: (value, d/dt).
    /// `dt` is the derivative of the time variable itself (1 at the top, the chain rule below).
    fn dual(&self, id: ExprId, env: &Env, dt: f64) -> Result<(f64, f64), EvalError> {
        let e = self.p.expr(id);
        let d = |i: ExprId| self.dual(i, env, dt);
        Ok(match &e.kind {
            ExprKind::Time(TimeRef::T) => (env.t, dt),
            ExprKind::Schedule { id: s, at } => {
                let (a, da) = d(*at)?;
                let body = self.p.schedule(*s).body;
                let (v, dv) = self.dual(
                    body,
                    &Env {
                        t: a,
                        ..Env::default()
                    },
                    1.0,
                )?;
                (v, dv * da)
            }
            ExprKind::Local(l) => match self.p.locals[l.index()].value {
                Some(v) => d(v)?,
                None => return Err(EvalError::Runtime),
            },
            ExprKind::Unary { op: UnOp::Neg, arg } => {
                let (v, dv) = d(*arg)?;
                (-v, -dv)
            }
            ExprKind::Binary { op, lhs, rhs }
                if matches!(
                    op,
                    BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Pow
                ) =>
            {
                let (a, da) = d(*lhs)?;
                let (b, db) = d(*rhs)?;
                match op {
                    BinOp::Add => (a + b, da + db),
                    BinOp::Sub => (a - b, da - db),
                    BinOp::Mul => (a * b, da * b + a * db),
                    BinOp::Div => {
                        if b == 0.0 {
                            return Err(hazard(e, "division by 0"));
                        }
                        (a / b, (da * b - a * db) / (b * b))
                    }
                    _ => {
                        let v = a.powf(b);
                        let mut dv = if a != 0.0 {
                            b * a.powf(b - 1.0) * da
                        } else {
                            0.0
                        };
                        if db != 0.0 {
                            dv += v * a.ln() * db;
                        }
                        (v, dv)
                    }
                }
            }
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => {
                if truth(&self.eval(*cond, env)?)? {
                    d(*then)?
                } else {
                    d(*otherwise)?
                }
            }
            ExprKind::Call { func, args } if args.len() == 1 && !matches!(func, Builtin::Deriv) => {
                let (x, dx) = d(args[0])?;
                let (v, f1) = match func {
                    Builtin::Sqrt => {
                        let v = x.max(0.0).sqrt();
                        (v, if v > 0.0 { 0.5 / v } else { f64::INFINITY })
                    }
                    Builtin::Exp => (x.exp(), x.exp()),
                    Builtin::Expm1 => (x.exp_m1(), x.exp()),
                    Builtin::Log => (x.ln(), 1.0 / x),
                    Builtin::Log1p => (x.ln_1p(), 1.0 / (1.0 + x)),
                    Builtin::Sin => (x.sin(), x.cos()),
                    Builtin::Cos => (x.cos(), -x.sin()),
                    Builtin::Tanh => (x.tanh(), 1.0 - x.tanh().powi(2)),
                    Builtin::Abs => (x.abs(), x.signum()),
                    Builtin::Sigmoid => {
                        let s = 1.0 / (1.0 + (-x).exp());
                        (s, s * (1.0 - s))
                    }
                    Builtin::Softplus => (x.exp().ln_1p(), 1.0 / (1.0 + (-x).exp())),
                    _ => return Err(EvalError::Runtime),
                };
                (v, f1 * dx)
            }
            ExprKind::Call {
                func: Builtin::Min | Builtin::Max,
                args,
            } => {
                let a = d(args[0])?;
                let b = d(args[1])?;
                let pick_a = if matches!(
                    &e.kind,
                    ExprKind::Call {
                        func: Builtin::Min,
                        ..
                    }
                ) {
                    a.0 <= b.0
                } else {
                    a.0 >= b.0
                };
                if pick_a {
                    a
                } else {
                    b
                }
            }
            _ => (self.real(id, env)?, 0.0),
        })
    }
}

fn eye(k: usize) -> Vec<f64> {
    let mut m = vec![0.0; k * k];
    for i in 0..k {
        m[i * k + i] = 1.0;
    }
    m
}

pub fn finite(v: &Value) -> bool {
    match v {
        Value::Real(x) => x.is_finite(),
        Value::Bool(_) => true,
        Value::Vec(v) | Value::Mat(_, v) => v.iter().all(|x| x.is_finite()),
        Value::List(v) => v.iter().all(finite),
    }
}

fn truth(v: &Value) -> Result<bool, EvalError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Real(x) => Ok(*x != 0.0),
        _ => Err(EvalError::Runtime),
    }
}

fn map(v: &Value, f: impl Fn(f64) -> f64) -> Value {
    map_dyn(v, &f)
}

fn map_dyn(v: &Value, f: &dyn Fn(f64) -> f64) -> Value {
    match v {
        Value::Real(x) => Value::Real(f(*x)),
        Value::Bool(b) => Value::Real(f(*b as u8 as f64)),
        Value::Vec(xs) => Value::Vec(xs.iter().map(|x| f(*x)).collect()),
        Value::Mat(k, xs) => Value::Mat(*k, xs.iter().map(|x| f(*x)).collect()),
        Value::List(xs) => Value::List(xs.iter().map(|x| map_dyn(x, f)).collect()),
    }
}

fn checked_map(v: &Value, e: &Expr, f: impl Fn(f64) -> Result<f64, String>) -> R {
    let g = |x: f64| f(x).map_err(|m| hazard(e, m));
    Ok(match v {
        Value::Real(x) => Value::Real(g(*x)?),
        Value::Bool(b) => Value::Real(g(*b as u8 as f64)?),
        Value::Vec(xs) => Value::Vec(xs.iter().map(|x| g(*x)).collect::<Result<_, _>>()?),
        Value::Mat(k, xs) => Value::Mat(*k, xs.iter().map(|x| g(*x)).collect::<Result<_, _>>()?),
        Value::List(_) => return Err(EvalError::Runtime),
    })
}

fn as_num(v: &Value) -> Value {
    match v {
        Value::Bool(b) => Value::Real(*b as u8 as f64),
        other => other.clone(),
    }
}

/// Element-wise combination with scalar broadcasting.
fn zip(a: &Value, b: &Value, e: &Expr, f: impl Fn(f64, f64) -> f64) -> R {
    let (a, b) = (as_num(a), as_num(b));
    Ok(match (&a, &b) {
        (Value::Real(x), Value::Real(y)) => Value::Real(f(*x, *y)),
        (Value::Real(x), Value::Vec(ys)) => Value::Vec(ys.iter().map(|y| f(*x, *y)).collect()),
        (Value::Vec(xs), Value::Real(y)) => Value::Vec(xs.iter().map(|x| f(*x, *y)).collect()),
        (Value::Real(x), Value::Mat(k, ys)) => {
            Value::Mat(*k, ys.iter().map(|y| f(*x, *y)).collect())
        }
        (Value::Mat(k, xs), Value::Real(y)) => {
            Value::Mat(*k, xs.iter().map(|x| f(*x, *y)).collect())
        }
        (Value::Vec(xs), Value::Vec(ys)) if xs.len() == ys.len() => {
            Value::Vec(xs.iter().zip(ys).map(|(x, y)| f(*x, *y)).collect())
        }
        (Value::Mat(k, xs), Value::Mat(l, ys)) if k == l => {
            Value::Mat(*k, xs.iter().zip(ys).map(|(x, y)| f(*x, *y)).collect())
        }
        _ => return Err(hazard(e, "operands of different sizes")),
    })
}

fn binary(op: BinOp, a: &Value, b: &Value, e: &Expr) -> R {
    let cmp = |f: fn(f64, f64) -> bool| -> R {
        match (as_num(a), as_num(b)) {
            (Value::Real(x), Value::Real(y)) => Ok(Value::Bool(f(x, y))),
            _ => Err(EvalError::Runtime),
        }
    };
    match op {
        BinOp::Add => zip(a, b, e, |x, y| x + y),
        BinOp::Sub => zip(a, b, e, |x, y| x - y),
        BinOp::Mul => zip(a, b, e, |x, y| x * y),
        BinOp::Div => {
            let zero = match as_num(b) {
                Value::Real(y) => y == 0.0,
                Value::Vec(ys) | Value::Mat(_, ys) => ys.contains(&0.0),
                _ => false,
            };
            if zero {
                return Err(hazard(e, "division by 0"));
            }
            zip(a, b, e, |x, y| x / y)
        }
        BinOp::Pow => {
            let v = zip(a, b, e, f64::powf)?;
            if !finite(&v) {
                return Err(hazard(e, "the power is not a finite number"));
            }
            Ok(v)
        }
        BinOp::MatMul => Ok(match (a, b) {
            (Value::Vec(v), Value::Mat(k, m)) => Value::Vec(
                (0..*k)
                    .map(|j| (0..*k).map(|i| v[i] * m[i * k + j]).sum())
                    .collect(),
            ),
            (Value::Mat(k, m), Value::Vec(v)) => Value::Vec(
                (0..*k)
                    .map(|i| (0..*k).map(|j| m[i * k + j] * v[j]).sum())
                    .collect(),
            ),
            (Value::Mat(k, x), Value::Mat(_, y)) => {
                let k = *k;
                let mut out = vec![0.0; k * k];
                for i in 0..k {
                    for l in 0..k {
                        let xil = x[i * k + l];
                        if xil != 0.0 {
                            for j in 0..k {
                                out[i * k + j] += xil * y[l * k + j];
                            }
                        }
                    }
                }
                Value::Mat(k, out)
            }
            _ => return Err(EvalError::Runtime),
        }),
        BinOp::Lt => cmp(|x, y| x < y),
        BinOp::Le => cmp(|x, y| x <= y),
        BinOp::Gt => cmp(|x, y| x > y),
        BinOp::Ge => cmp(|x, y| x >= y),
        BinOp::Eq => cmp(|x, y| x == y),
        BinOp::Ne => cmp(|x, y| x != y),
        BinOp::And | BinOp::Or => unreachable!("short-circuited by the caller"),
    }
}

/// The kind of a time grid that a number of steps builds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GridKind {
    /// Uniform in t.
    Uniform,
    /// Uniform in √t.
    Quadratic,
    /// Uniform in the half log-SNR λ = log(α/σ) (MATH.md §1.5).
    LogSnr,
    /// Discrete time: `steps` times evenly spaced from the noise end to the time next to the
    /// data, not rounded, then the data end (diffusers' "linspace" timestep spacing).
    Linspace,
    /// Uniform in σ^(1/ρ) with σ = √v/α (MATH.md §1.6); with `sigma_min`, the first `steps`
    /// times run from the noise end to σ = σ_min and the last is the data end (EDM's σ_N = 0).
    Karras { rho: f64, sigma_min: Option<f64> },
}

/// The `steps + 1` times of a grid from the noise end to the data end, rounded to whole times
/// in discrete time. The checker builds every default grid with this and the interpreter every
/// grid whose parameters were overridden, so that the same parameters give the same times.
pub fn grid_times(p: &Process, kind: GridKind, steps: usize) -> Result<Vec<f64>, String> {
    let time = &p.time;
    let (a, b) = (time.noise_end(), time.data_at);
    let n = steps as f64;
    let times: Vec<f64> = match kind {
        GridKind::Uniform => (0..=steps).map(|i| a + (b - a) * i as f64 / n).collect(),
        GridKind::Quadratic => {
            if a < 0.0 || b < 0.0 {
                return Err("a quadratic grid needs non-negative times".into());
            }
            (0..=steps)
                .map(|i| (a.sqrt() + (b.sqrt() - a.sqrt()) * i as f64 / n).powi(2))
                .collect()
        }
        GridKind::LogSnr => noise_grid(p, steps, None, None)?,
        GridKind::Karras { rho, sigma_min } => noise_grid(p, steps, Some(rho), sigma_min)?,
        GridKind::Linspace => return linspace_grid(p, steps),
    };
    Ok(if time.kind == TimeKind::Discrete {
        times.iter().map(|t| t.round()).collect()
    } else {
        times
    })
}

/// `linspace(N)`: numpy's `linspace(0, hi − lo, N)` reversed and shifted to start at the
/// noise end (`j · step` with step = (hi − lo)/(N − 1), the last point exactly hi − lo), so that
/// the times are diffusers' `np.linspace(0, T − 1, N)[::-1]` plus the first time; then the
/// data end. Discrete time with the data before the first time only.
fn linspace_grid(p: &Process, steps: usize) -> Result<Vec<f64>, String> {
    let time = &p.time;
    if time.kind != TimeKind::Discrete || time.data_at >= time.lo {
        return Err(
            "a linspace(N) grid spaces the times of a discrete process whose data lie before its first time"
                .into(),
        );
    }
    let (lo, span) = (time.lo, time.hi - time.lo);
    let mut y: Vec<f64> = if steps == 1 {
        vec![0.0]
    } else {
        let step = span / (steps - 1) as f64;
        let mut y: Vec<f64> = (0..steps).map(|j| j as f64 * step).collect();
        y[steps - 1] = span;
        y
    };
    y.reverse();
    let mut times: Vec<f64> = y.iter().map(|v| v + lo).collect();
    times.push(time.data_at);
    Ok(times)
}

/// Grids uniform in log-SNR (rho = None) or in Karras's sigma^(1/rho), mapped back to time
/// by bisection on the affine Gaussian marginal. With `sigma_min`, the first `n` times are
/// uniform in sigma^(1/rho) from the noise end down to sigma_min, and the last is the data end.
fn noise_grid(
    p: &Process,
    n: usize,
    rho: Option<f64>,
    sigma_min: Option<f64>,
) -> Result<Vec<f64>, String> {
    let time = &p.time;
    let k = p
        .forwards
        .iter()
        .find(|k| k.affine.is_some())
        .ok_or("this grid needs a Gaussian marginal Normal(a(t) * x_0, v(t))")?;
    let a = k.affine.unwrap();
    let ev = Evaluator::new(p);
    // The transformed noise level u(t): -lambda for logsnr, sigma^(1/rho) for karras; it grows with noise.
    let u = |t: f64| -> Result<f64, String> {
        let env = Env {
            t,
            ..Env::default()
        };
        let alpha = ev
            .real(a.alpha, &env)
            .map_err(|_| "cannot evaluate the marginal".to_string())?;
        let var = ev
            .real(a.var, &env)
            .map_err(|_| "cannot evaluate the marginal".to_string())?;
        Ok(match rho {
            None => -(alpha.ln() - 0.5 * var.ln()),
            Some(r) => (var.sqrt() / alpha).powf(1.0 / r),
        })
    };
    let (t0, t1) = (time.noise_end(), time.data_at);
    let (u0, u1) = (u(t0)?, u(t1)?);
    if !(u0.is_finite() && u1.is_finite()) || u0 <= u1 {
        return Err("the noise level must be finite and larger at the noise end".into());
    }
    // The level the graded part ends at, and how many intervals it has.
    let (u_end, parts) = match (sigma_min, rho) {
        (Some(m), Some(r)) => {
            let um = m.powf(1.0 / r);
            if !(um > u1 && um < u0) {
                return Err(format!(
                    "sigma_min = {m} must lie strictly between the noise levels of the data end and the noise end ({} and {})",
                    u1.powf(r),
                    u0.powf(r)
                ));
            }
            (um, n.saturating_sub(1).max(1))
        }
        _ => (u1, n),
    };
    let mut out = Vec::with_capacity(n + 1);
    for i in 0..=n {
        if sigma_min.is_some() && i == n {
            out.push(t1);
            break;
        }
        let target = if sigma_min.is_some() && n == 1 {
            u0
        } else {
            u0 + (u_end - u0) * i as f64 / parts as f64
        };
        let (mut lo, mut hi) = (t1, t0); // u(lo) = u1 (small), u(hi) = u0 (large)
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if u(mid)? < target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        out.push(if i == 0 {
            t0
        } else if i == n {
            t1
        } else {
            0.5 * (lo + hi)
        });
    }
    Ok(out)
}
