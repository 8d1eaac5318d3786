//! The reference interpreter: runs an IR program on arrays. It defines what every spec means;
//! the backends are tested against it.
//!
//! Arrays are batch-major: a field input of shape `[n, d]` is a tensor `[B, n, d]` (and
//! `[B, n, d, K]` for `vec<K>` elements); a per-sample value is `[B]`; a value the same for the
//! whole call is `[]`. Element arithmetic is f32; host coefficients are f64, rounded to f32 when
//! elements read them.
//!
//! Symmetric fields (`sym`) are drawn once per unordered pair i < j and mirrored; their diagonal
//! is empty (0, false or class 0), and their log-density counts each pair once.
//! Node masks (`Call::masks`) say which nodes of each sample are real: reductions and `rowsum`
//! leave the other entries out (`mean` divides by the number of real entries), and draws and
//! log-densities there are empty (0, false, class 0). Without a mask every node is real.
//! Element `e` of sample `b` draws with RNG index `b * E + e` (E elements per sample; for a
//! symmetric field the index of the pair's upper entry), so noise never depends on chunking.

use crate::check::eval::{Env, Evaluator};
use crate::ir::{Extent, Kind, Node, NodeId, Program};
use crate::rng;
use crate::syntax::ast::{BinOp, UnOp};
use crate::typed::{Builtin, Elem, Family, Process, Shape, Value};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    Bool(Vec<bool>),
    Class(Vec<u32>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::Bool(v) => v.len(),
            Data::Class(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn scalar(x: f32) -> Tensor {
        Tensor {
            shape: vec![],
            data: Data::F32(vec![x]),
        }
    }
    pub fn f32s(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }
}

/// Everything one call needs besides the program.
#[derive(Clone, Debug, Default)]
pub struct Call {
    pub seed: u64,
    /// The step (or call) counter of the RNG.
    pub step: u32,
    /// Number of samples.
    pub batch: usize,
    /// Sizes of the process's dimensions; those not given are read off the inputs.
    pub sizes: HashMap<String, usize>,
    /// Inputs by port name. The time is a scalar, or one time per sample (`[batch]`), in
    /// which case sample `b` is computed exactly as a call with its own scalar time would
    /// compute it (`run` splits the call); `s` is a scalar.
    pub inputs: HashMap<String, Tensor>,
    /// Supplied randomness by draw-site name (`eps`, `u_x`, …) in place of the RNG.
    pub draws: HashMap<String, Tensor>,
    /// Node masks by name (`bool[batch, n]`); without one, every node is real.
    pub masks: HashMap<String, Tensor>,
    /// This call's samples are samples `sample_base..sample_base + batch` of a larger batch:
    /// sample `b` draws its noise as sample `sample_base + b` does (0 for a whole batch).
    pub sample_base: usize,
    /// Values of the process's `param`s by name (a number, or `[K]` for a `vec<K>`), in place
    /// of their declared defaults.
    pub params: HashMap<String, Tensor>,
}

/// A value inside the interpreter: one entry (or K) per element of its extent.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    R(Shared<f32>),
    B(Shared<bool>),
    C(Shared<u32>),
    /// K reals per element.
    V(usize, Shared<f32>),
    /// One K×K matrix (coefficients only).
    M(usize, Shared<f32>),
}

/// A value's elements, shared: the interpreter keeps every node's value and hands out copies,
/// which for a field of millions of elements must not copy the elements.
pub(crate) type Shared<T> = std::sync::Arc<Vec<T>>;

pub(crate) struct Ctx<'a> {
    pub(crate) p: &'a Process,
    pub(crate) prog: &'a Program,
    pub(crate) call: &'a Call,
    pub(crate) sizes: HashMap<String, usize>,
    pub(crate) vals: Vec<Option<Val>>,
    /// The host environment and the coefficients computed in it so far.
    env: Env,
    coefs: Vec<Option<Val>>,
    /// A sampler's state by field, its slots, the slots of the previous step, and the outputs
    /// of this step's network calls.
    pub(crate) state: Vec<Option<Val>>,
    pub(crate) slots: Vec<Option<Val>>,
    pub(crate) prev: Vec<Option<Val>>,
    pub(crate) net: Vec<Vec<Val>>,
    /// Added to every RNG index: separates the iterations of an inner loop.
    pub(crate) draw_offset: u64,
    /// The RNG step word: the sampler step (or the call's own).
    pub(crate) step: u32,
    /// The uniforms of each discrete draw site, kept for `Node::Uniforms`.
    uniforms: HashMap<u32, Vec<f32>>,
    /// A backend computing nodes in place of the interpreter.
    accel: Option<&'a dyn Accel>,
}

/// The bit set in the RNG step word of `sample_t`'s draws (`Call::step` below it selects the
/// batch): no forward entry or sampler step draws on such a step.
pub const SAMPLE_T_STEP: u32 = 1 << 31;

pub fn run(p: &Process, prog: &Program, call: &Call) -> Result<Vec<Tensor>, String> {
    run_with(p, prog, call, None)
}

/// A backend that computes nodes and statement runs in place of the interpreter, which keeps
/// everything else: checking inputs, the host coefficient program, network calls, the sampler's
/// loop and its history. `Ctx::eval` asks it for every node; it answers for the nodes it
/// compiled and for those it refuses to leave to the interpreter.
pub(crate) trait Accel {
    /// Compute node `id` (and any results computed with it) into `cx.vals`; `None` leaves it to
    /// the interpreter.
    fn node(&self, cx: &mut Ctx, id: NodeId) -> Option<Result<(), String>>;
    /// Run the statements of `ops` from `at`; returns how many it ran, or `None` to leave them
    /// to the interpreter.
    fn ops(&self, cx: &mut Ctx, ops: &[crate::ir::Op], at: usize) -> Option<Result<usize, String>>;
    /// Run an entry (a prior, from a sampler's start).
    fn entry(&self, p: &Process, prog: &Program, call: &Call) -> Result<Vec<Tensor>, String>;
}

pub(crate) fn run_with(
    p: &Process,
    prog: &Program,
    call: &Call,
    accel: Option<&dyn Accel>,
) -> Result<Vec<Tensor>, String> {
    match call.inputs.get(&p.time.name) {
        Some(t) if !t.shape.is_empty() => run_per_sample(p, prog, call, accel, t),
        _ => run_one(p, prog, call, accel),
    }
}

/// A call with one time per sample: each run of consecutive samples that share a time is one
/// call over those samples (drawing as those samples of the whole batch), and the results are
/// put back together; a value the same for a whole run (a coefficient) is repeated per sample.
fn run_per_sample(
    p: &Process,
    prog: &Program,
    call: &Call,
    accel: Option<&dyn Accel>,
    t: &Tensor,
) -> Result<Vec<Tensor>, String> {
    let name = &p.time.name;
    let Data::F32(times) = &t.data else {
        return Err(format!("`{name}` must hold reals"));
    };
    if t.shape.len() != 1 || t.shape[0] != call.batch {
        return Err(format!(
            "`{name}` has shape {:?}: give one time, or one per sample (shape [{}])",
            t.shape, call.batch
        ));
    }
    for v in times {
        check_entry_time(p, prog.kind, name, *v)?;
    }
    // Runs of equal times; an empty batch is one empty run at the first time.
    let mut runs: Vec<(usize, usize, f32)> = Vec::new();
    for (b, v) in times.iter().enumerate() {
        match runs.last_mut() {
            Some((_, end, w)) if w.to_bits() == v.to_bits() => *end = b + 1,
            _ => runs.push((b, b + 1, *v)),
        }
    }
    if runs.is_empty() {
        runs.push((0, 0, p.time.lo as f32));
    }
    let mut parts: Vec<(Vec<Tensor>, usize)> = Vec::with_capacity(runs.len());
    for (a, e, v) in runs {
        let mut sub = Call {
            seed: call.seed,
            step: call.step,
            batch: e - a,
            sizes: call.sizes.clone(),
            inputs: HashMap::new(),
            draws: HashMap::new(),
            masks: HashMap::new(),
            sample_base: call.sample_base + a,
            params: call.params.clone(),
        };
        for (k, x) in &call.inputs {
            let per_sample = prog.inputs.iter().any(|port| {
                &port.name == k && !matches!(port.extent, crate::entries::Extent::Scalar)
            });
            let x = if k == name {
                Tensor::scalar(v)
            } else if per_sample {
                rows(x, call.batch, a, e, k)?
            } else {
                x.clone()
            };
            sub.inputs.insert(k.clone(), x);
        }
        for (k, x) in &call.draws {
            sub.draws.insert(k.clone(), rows(x, call.batch, a, e, k)?);
        }
        for (k, x) in &call.masks {
            sub.masks.insert(k.clone(), rows(x, call.batch, a, e, k)?);
        }
        parts.push((run_one(p, prog, &sub, accel)?, e - a));
    }
    prog.outputs
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let runs: Vec<(&Tensor, usize)> = parts.iter().map(|(o, n)| (&o[i], *n)).collect();
            join_rows(&runs, matches!(port.extent, crate::entries::Extent::Scalar))
        })
        .collect()
}

/// Samples `a..e` of a batch-major tensor of `batch` samples (a flat tensor holding the same
/// number of values per sample is split the same way).
fn rows(x: &Tensor, batch: usize, a: usize, e: usize, name: &str) -> Result<Tensor, String> {
    let len = x.len();
    if batch == 0 || !len.is_multiple_of(batch) {
        if len == 0 {
            return Ok(x.clone());
        }
        return Err(format!(
            "`{name}` holds {len} values, which is not the same number for each of {batch} samples"
        ));
    }
    let per = len / batch;
    let shape = if x.shape.first() == Some(&batch) {
        let mut s = x.shape.clone();
        s[0] = e - a;
        s
    } else {
        vec![(e - a) * per]
    };
    let data = match &x.data {
        Data::F32(v) => Data::F32(v[a * per..e * per].to_vec()),
        Data::Bool(v) => Data::Bool(v[a * per..e * per].to_vec()),
        Data::Class(v) => Data::Class(v[a * per..e * per].to_vec()),
    };
    Ok(Tensor { shape, data })
}

/// The outputs of consecutive runs of samples as one batch: batch-major outputs are stacked,
/// and a value the same for a whole run (`shared`: a time, a coefficient) gains a batch axis,
/// repeated for each sample of its run.
fn join_rows(parts: &[(&Tensor, usize)], shared: bool) -> Result<Tensor, String> {
    let (first, _) = parts.first().ok_or("internal error: no runs to join")?;
    let mut shape = first.shape.clone();
    if shared {
        shape.insert(0, parts.iter().map(|(_, n)| n).sum());
    } else if shape.is_empty() {
        return Err("internal error: a batch-major output without a batch axis".into());
    } else {
        shape[0] = parts.iter().map(|(x, _)| x.shape[0]).sum();
    }
    fn cat<T: Clone>(parts: &[(&[T], usize)], shared: bool) -> Vec<T> {
        let mut out = Vec::new();
        for (x, n) in parts {
            for _ in 0..if shared { *n } else { 1 } {
                out.extend_from_slice(x);
            }
        }
        out
    }
    let data = match &first.data {
        Data::F32(_) => Data::F32(cat(
            &parts
                .iter()
                .map(|(x, n)| match &x.data {
                    Data::F32(v) => Ok((v.as_slice(), *n)),
                    _ => Err("internal error: runs of different types".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?,
            shared,
        )),
        Data::Bool(_) => Data::Bool(cat(
            &parts
                .iter()
                .map(|(x, n)| match &x.data {
                    Data::Bool(v) => Ok((v.as_slice(), *n)),
                    _ => Err("internal error: runs of different types".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?,
            shared,
        )),
        Data::Class(_) => Data::Class(cat(
            &parts
                .iter()
                .map(|(x, n)| match &x.data {
                    Data::Class(v) => Ok((v.as_slice(), *n)),
                    _ => Err("internal error: runs of different types".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?,
            shared,
        )),
    };
    Ok(Tensor { shape, data })
}

fn run_one(
    p: &Process,
    prog: &Program,
    call: &Call,
    accel: Option<&dyn Accel>,
) -> Result<Vec<Tensor>, String> {
    for port in &prog.inputs {
        if matches!(port.extent, crate::entries::Extent::Scalar)
            && port.name != "seed"
            && !call.inputs.contains_key(&port.name)
        {
            return Err(format!("missing input `{}`", port.name));
        }
    }
    let sizes = bind_sizes(p, prog, call)?;
    check_call_size(p, prog, call.batch, &sizes)?;
    check_masks(p, &call.masks, call.batch, &sizes)?;
    let mut env = Env::default();
    for (name, slot) in [(p.time.name.as_str(), &mut env.t), ("s", &mut 0.0)] {
        let _ = (name, slot);
    }
    env.t = time_input(p, prog, call, &p.time.name)?.unwrap_or(f64::NAN);
    env.params = process_param_values(p, &call.params)?;
    env.s = time_input(p, prog, call, "s")?;
    let mut cx = Ctx::new(p, prog, call, sizes, env);
    if prog.kind == crate::entries::EntryKind::SampleT {
        // Training times draw on a step word of their own, so that `sample_t` and `forward`
        // called with the same seed and step never share noise.
        cx.step = call.step | SAMPLE_T_STEP;
    }
    cx.accel = accel;
    let mut out = Vec::new();
    for (i, r) in prog.results.iter().enumerate() {
        let v = cx.eval(*r)?;
        out.push(cx.tensor(*r, v, &prog.outputs[i].name)?);
    }
    Ok(out)
}

fn time_input(p: &Process, prog: &Program, call: &Call, name: &str) -> Result<Option<f64>, String> {
    let Some(t) = call.inputs.get(name) else {
        return Ok(None);
    };
    match (&t.data, t.len()) {
        (Data::F32(v), 1) => check_entry_time(p, prog.kind, name, v[0]).map(Some),
        _ => Err(format!("`{name}` must be one number")),
    }
}

/// The run-time values of a process's `param`s (by `ParamId`; `None` keeps the default),
/// checked: a known name, the declared shape, finite values, and a probability vector where the
/// default is one. A parameter that a schedule reads is tabulated when the spec is checked and
/// cannot be given at run time.
pub fn process_param_values(
    p: &Process,
    given: &HashMap<String, Tensor>,
) -> Result<Vec<Option<Value>>, String> {
    let mut out = vec![None; p.params.len()];
    let mut names: Vec<&String> = given.keys().collect();
    names.sort();
    for name in names {
        let t = &given[name];
        let Some(id) = p.params.iter().position(|x| &x.name == name) else {
            let known: Vec<&str> = p.params.iter().map(|x| x.name.as_str()).collect();
            return Err(format!(
                "`{}` has no param `{name}` (its params: {})",
                p.name,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        };
        if let Some(s) = p.schedules.iter().find(|s| reads_param(p, s.body, id)) {
            return Err(format!(
                "param `{name}` is read by schedule `{}`, which is tabulated when the spec is checked: it cannot be set at run time",
                s.name
            ));
        }
        let decl = &p.params[id];
        let Data::F32(v) = &t.data else {
            return Err(format!("param `{name}` must hold reals"));
        };
        let want = match decl.elem {
            Elem::Real => 1,
            Elem::Vec(k) => k as usize,
            Elem::Mat(k) => (k * k) as usize,
            _ => {
                return Err(format!(
                    "param `{name}` holds {}: only real, vec and mat params can be given",
                    decl.elem.describe()
                ))
            }
        };
        if v.len() != want {
            return Err(format!(
                "param `{name}` is {}: give {want} value{}, not {}",
                decl.elem.describe(),
                if want == 1 { "" } else { "s" },
                v.len()
            ));
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(format!("param `{name}` holds {} at index {i}", v[i]));
        }
        let xs: Vec<f64> = v.iter().map(|x| *x as f64).collect();
        if let Some(Value::Vec(d)) = &decl.default {
            let simplex = |x: &[f64]| {
                x.iter().all(|y| *y >= 0.0) && (x.iter().sum::<f64>() - 1.0).abs() < 1e-6
            };
            if simplex(d) && !simplex(&xs) {
                return Err(format!(
                    "param `{name}` is a probability vector (its default sums to 1): give values >= 0 that sum to 1 (these sum to {})",
                    xs.iter().sum::<f64>()
                ));
            }
        }
        out[id] = Some(match decl.elem {
            Elem::Real => Value::Real(xs[0]),
            Elem::Vec(_) => Value::Vec(xs),
            Elem::Mat(k) => Value::Mat(k as usize, xs),
            _ => unreachable!("checked above"),
        });
    }
    Ok(out)
}

/// Does expression `e` read param `id` (through schedules, functions' bodies and locals)?
pub(crate) fn reads_param(p: &Process, e: crate::typed::ExprId, id: usize) -> bool {
    let mut stack = vec![e];
    let mut seen = std::collections::HashSet::new();
    while let Some(x) = stack.pop() {
        if !seen.insert(x) {
            continue;
        }
        let kind = &p.expr(x).kind;
        match kind {
            crate::typed::ExprKind::Param(q) if q.index() == id => return true,
            crate::typed::ExprKind::Schedule { id: s, .. } => stack.push(p.schedule(*s).body),
            crate::typed::ExprKind::Local(l) => stack.extend(p.locals[l.index()].value),
            _ => {}
        }
        crate::check::children_of(kind, &mut stack);
    }
    false
}

/// A time as a call gives it (an f32), checked against the process's time. An end of a
/// continuous time that is not an f32 (`0.999`) is given as the f32 nearest to it, which may lie
/// just outside (or just inside); that value names the end itself.
pub(crate) fn check_time(p: &Process, name: &str, x: f32) -> Result<f64, String> {
    check_time_value(p, name, x as f64, name == "s")
}

/// A time input of an entry of kind `kind`: `net_inputs.NET` takes any time a sampler may call
/// the network at, between whole times too (a `linspace(N)` grid), and every other entry a
/// time as `check_time` checks it.
pub(crate) fn check_entry_time(
    p: &Process,
    kind: crate::entries::EntryKind,
    name: &str,
    x: f32,
) -> Result<f64, String> {
    if kind == crate::entries::EntryKind::NetInputs {
        time_in_range(p, name, x as f64, name == "s", false)
    } else {
        check_time(p, name, x)
    }
}

/// A time given in f64 (a step's `t` and `s` on the command line or from Python), checked
/// against the process's time as written: its ends compare in f64, and the f32 nearest an end
/// (a time that went through f32 on its way, `0.9990000128746033` for `0.999`), inside the range
/// or just outside it, names that end.
/// With `data_end`, the range also reaches the data end (a step's target). Returns the time,
/// an end where it named one.
pub fn check_time_value(p: &Process, name: &str, x: f64, data_end: bool) -> Result<f64, String> {
    time_in_range(p, name, x, data_end, true)
}

/// A sampler step's time (`t` or `s`), checked as `check_time_value` checks a time that may be
/// the data end, except that in discrete time it may lie between two whole times: a grid such
/// as diffusers' "linspace" spacing steps through fractional times, where the step reads its
/// schedules with `interp` (a plain read there is an error at the read).
pub fn check_step_time(p: &Process, name: &str, x: f64) -> Result<f64, String> {
    time_in_range(p, name, x, true, false)
}

fn time_in_range(
    p: &Process,
    name: &str,
    x: f64,
    data_end: bool,
    whole: bool,
) -> Result<f64, String> {
    let time = &p.time;
    let (lo, hi) = if data_end {
        (time.lo.min(time.data_at), time.hi.max(time.data_at))
    } else {
        (time.lo, time.hi)
    };
    let mut v = x;
    if v == hi as f32 as f64 {
        v = hi;
    }
    if v == lo as f32 as f64 {
        v = lo;
    }
    if !v.is_finite() || v < lo || v > hi {
        return Err(format!(
            "`{name}` = {v} is outside the process's time {}..{} (data at {})",
            time.lo, time.hi, time.data_at
        ));
    }
    if whole && time.kind == crate::typed::TimeKind::Discrete && v.fract() != 0.0 {
        return Err(format!(
            "`{name}` = {v}: time is discrete here, a whole number from {} to {}",
            time.lo, time.hi
        ));
    }
    Ok(v)
}

fn from_value(v: &Value) -> Val {
    match v {
        Value::Real(x) => Val::R(Shared::new(vec![*x as f32])),
        Value::Bool(b) => Val::B(Shared::new(vec![*b])),
        Value::Vec(xs) => Val::V(
            xs.len(),
            xs.iter().map(|x| *x as f32).collect::<Vec<_>>().into(),
        ),
        Value::Mat(k, xs) => Val::M(*k, xs.iter().map(|x| *x as f32).collect::<Vec<_>>().into()),
        Value::List(_) => Val::R(Shared::new(vec![f32::NAN])),
    }
}

/// Read the dimension sizes off the field inputs, checking that they agree.
fn bind_sizes(p: &Process, prog: &Program, call: &Call) -> Result<HashMap<String, usize>, String> {
    let mut sizes = call.sizes.clone();
    for port in &prog.inputs {
        if !matches!(port.extent, crate::entries::Extent::Field(_)) {
            continue;
        }
        let t = call
            .inputs
            .get(&port.name)
            .ok_or_else(|| format!("missing input `{}`", port.name))?;
        port_sizes(p, port, &t.shape, call.batch, &mut sizes)?;
        check_values(t, port.elem, &port.name)?;
        if held_symmetric(p, port) {
            check_sym_tensor(&port.name, t)?;
        }
    }
    Ok(sizes)
}

/// Read the sizes of a field input's dimensions off its `shape` (batch first) into `sizes`,
/// which must agree with what earlier inputs set.
pub(crate) fn port_sizes(
    p: &Process,
    port: &crate::entries::Port,
    shape: &[usize],
    batch: usize,
    sizes: &mut HashMap<String, usize>,
) -> Result<(), String> {
    let crate::entries::Extent::Field(fshape) = &port.extent else {
        return Ok(());
    };
    let k = match port.elem {
        Elem::Vec(k) => Some(k as usize),
        _ => None,
    };
    let want = 1 + fshape.dims.len() + usize::from(k.is_some());
    if shape.len() != want {
        return Err(format!(
            "input `{}` has {} axes, expected {want} (batch, {}{})",
            port.name,
            shape.len(),
            fshape
                .dims
                .iter()
                .map(|d| p.dims[d.index()].name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if k.is_some() { ", classes" } else { "" }
        ));
    }
    if shape[0] != batch {
        return Err(format!(
            "input `{}` holds {} samples, expected {}",
            port.name, shape[0], batch
        ));
    }
    for (axis, d) in fshape.dims.iter().enumerate() {
        let name = &p.dims[d.index()].name;
        let n = shape[axis + 1];
        match sizes.get(name) {
            Some(&m) if m != n => {
                return Err(format!(
                    "input `{}` has {name} = {n}, but another input has {name} = {m}",
                    port.name
                ))
            }
            _ => {
                sizes.insert(name.clone(), n);
            }
        }
    }
    if let Some(k) = k {
        if shape.last() != Some(&k) {
            return Err(format!(
                "input `{}` needs {k} classes on its last axis",
                port.name
            ));
        }
    }
    Ok(())
}

/// Node masks must be known, boolean and `[batch, n]`.
pub(crate) fn check_masks(
    p: &Process,
    masks: &HashMap<String, Tensor>,
    batch: usize,
    sizes: &HashMap<String, usize>,
) -> Result<(), String> {
    for (name, t) in masks {
        let m = p
            .masks
            .iter()
            .find(|m| &m.name == name)
            .ok_or_else(|| format!("`{}` has no mask `{name}`", p.name))?;
        let dim = &p.dims[m.dim.index()].name;
        if !matches!(t.data, Data::Bool(_)) {
            return Err(format!("mask `{name}` must hold bools"));
        }
        let want = [
            batch,
            *sizes
                .get(dim)
                .unwrap_or(&t.shape.get(1).copied().unwrap_or(0)),
        ];
        if t.shape != want {
            return Err(format!(
                "mask `{name}` has shape {:?}, expected [batch, {dim}] = {want:?}",
                t.shape
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_values(t: &Tensor, elem: Elem, name: &str) -> Result<(), String> {
    match (&t.data, elem) {
        (Data::F32(v), Elem::Real | Elem::Vec(_)) => {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(nonfinite_input(name, v, i));
            }
        }
        (Data::Class(v), Elem::Cat(k)) => check_classes(v, k, name)?,
        (Data::Bool(_), Elem::Bool) => {}
        _ => return Err(wrong_elem(name, elem)),
    }
    Ok(())
}

/// Whether an entry's input `port` must be symmetric with an empty diagonal ([`check_sym`]):
/// a value of a `sym` field, not a network's output for one. Every runner of entries (this
/// interpreter, `cpu::lean`, the C library of `cpu::aot`) checks the inputs this picks.
pub(crate) fn held_symmetric(p: &Process, port: &crate::entries::Port) -> bool {
    matches!(&port.extent, crate::entries::Extent::Field(s) if s.sym)
        && is_field_value(p, &port.name)
}

/// Whether input `name` is a value of one of the process's fields (`E`, `E_0`, `E_t`), not a
/// network output (`phi.E`, which a step reads from the upper triangle) or a draw.
fn is_field_value(p: &Process, name: &str) -> bool {
    !name.contains('.')
        && p.fields.iter().any(|f| {
            name == f.name
                || name
                    .strip_prefix(f.name.as_str())
                    .is_some_and(|rest| rest.starts_with('_'))
        })
}

/// A `sym` field's value (`[batch, n, n]`, then a class axis for a `vec<K>`) must be
/// symmetric with an empty diagonal (0, class 0, `false`) in every sample, as the field's own
/// draws are: otherwise the first entry that is not names its position and value.
pub(crate) fn check_sym<T: PartialEq + Default + std::fmt::Debug>(
    name: &str,
    shape: &[usize],
    v: &[T],
) -> Result<(), String> {
    if shape.len() < 3 {
        return Ok(());
    }
    let (b, n) = (shape[0], shape[1]);
    let k: usize = shape[3..].iter().product();
    if shape[2] != n || b.checked_mul(n * n * k) != Some(v.len()) {
        return Ok(()); // a length that does not match is reported with the shape
    }
    let zero = T::default();
    let at = |s: usize, i: usize, j: usize, c: usize| ((s * n + i) * n + j) * k + c;
    let class = |c: usize| {
        if shape.len() > 3 {
            format!(", {c}")
        } else {
            String::new()
        }
    };
    for s in 0..b {
        for i in 0..n {
            for c in 0..k {
                let d = &v[at(s, i, i, c)];
                if *d != zero {
                    return Err(format!(
                        "input `{name}` is a symmetric field with an empty diagonal, but holds {d:?} at [{s}, {i}, {i}{}]",
                        class(c)
                    ));
                }
            }
            for j in i + 1..n {
                for c in 0..k {
                    let (x, y) = (&v[at(s, i, j, c)], &v[at(s, j, i, c)]);
                    if x != y {
                        return Err(format!(
                            "input `{name}` is a symmetric field, but holds {x:?} at [{s}, {i}, {j}{c_}] and {y:?} at [{s}, {j}, {i}{c_}]",
                            c_ = class(c)
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Makes `t` what a `sym` field holds (`[batch, n, n]`, then a class axis for a `vec<K>`): in
/// every sample the upper triangle is mirrored below and the diagonal emptied (0, class 0,
/// `false`), so that [`check_sym`] accepts it. Test values and benchmark states of a symmetric
/// field are generated this way; a network's prediction, which may hold anything below or on
/// the diagonal, is read the same way. A tensor with fewer than three axes, a non-square
/// `[n, n]` or a length that does not match its shape is left as it is.
pub fn symmetrize(t: &mut Tensor) {
    if t.shape.len() < 3 || t.shape[1] != t.shape[2] {
        return;
    }
    let (b, n) = (t.shape[0], t.shape[1]);
    let k: usize = t.shape[3..].iter().product();
    match &mut t.data {
        Data::F32(v) => mirror_upper(b, n, k, v),
        Data::Class(v) => mirror_upper(b, n, k, v),
        Data::Bool(v) => mirror_upper(b, n, k, v),
    }
}

/// [`symmetrize`] on `b` samples of `[n, n, k]` values; a length that is not `b * n * n * k`
/// is left as it is.
fn mirror_upper<T: Copy + Default>(b: usize, n: usize, k: usize, v: &mut [T]) {
    if b.checked_mul(n * n * k) != Some(v.len()) {
        return;
    }
    let at = |s: usize, i: usize, j: usize, c: usize| ((s * n + i) * n + j) * k + c;
    for s in 0..b {
        for i in 0..n {
            for c in 0..k {
                v[at(s, i, i, c)] = T::default();
            }
            for j in i + 1..n {
                for c in 0..k {
                    v[at(s, j, i, c)] = v[at(s, i, j, c)];
                }
            }
        }
    }
}

/// [`check_sym`] on a tensor.
pub(crate) fn check_sym_tensor(name: &str, t: &Tensor) -> Result<(), String> {
    match &t.data {
        Data::F32(v) => check_sym(name, &t.shape, v),
        Data::Class(v) => check_sym(name, &t.shape, v),
        Data::Bool(v) => check_sym(name, &t.shape, v),
    }
}

/// The error for input `name`'s first non-finite value, `v[i]`.
pub(crate) fn nonfinite_input(name: &str, v: &[f32], i: usize) -> String {
    format!("input `{name}` holds {} at flat index {i}", v[i])
}

/// Every class of input `name` must lie in `0..k`.
pub(crate) fn check_classes(v: &[u32], k: u32, name: &str) -> Result<(), String> {
    match v.iter().position(|c| *c >= k) {
        Some(i) => Err(format!(
            "input `{name}` holds class {} at flat index {i}, outside 0..{}",
            v[i],
            k - 1
        )),
        None => Ok(()),
    }
}

pub(crate) fn wrong_elem(name: &str, elem: Elem) -> String {
    format!(
        "input `{name}` has the wrong element type: expected {}",
        elem.describe()
    )
}

/// Read the sizes of a state field's dimensions off its `shape` (batch first) into `sizes`,
/// which must agree with what earlier values set; returns the field.
pub(crate) fn state_sizes<'p>(
    p: &'p Process,
    name: &str,
    shape: &[usize],
    batch: usize,
    sizes: &mut HashMap<String, usize>,
) -> Result<&'p crate::typed::Field, String> {
    let f = p
        .fields
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| format!("no field `{name}`"))?;
    if shape.first() != Some(&batch) {
        return Err(format!(
            "`{name}` holds {:?} samples, expected {batch}",
            shape.first(),
        ));
    }
    for (axis, d) in f.shape.dims.iter().enumerate() {
        let dn = &p.dims[d.index()].name;
        let n = *shape
            .get(axis + 1)
            .ok_or_else(|| format!("`{name}` lacks its `{dn}` axis"))?;
        if sizes.insert(dn.clone(), n).is_some_and(|m| m != n) {
            return Err(format!(
                "`{name}` has {dn} = {n}, but another value has {dn} = {}",
                sizes[dn]
            ));
        }
    }
    Ok(f)
}

/// The element type of the value a sampler keeps in `slot` for its next step, and the node
/// that reads it there (`prev.NAME`).
pub(crate) fn kept_value(
    sp: &crate::ir::SamplerProgram,
    slot: u32,
) -> Option<(Elem, &crate::ir::NodeInfo)> {
    let info = sp
        .prog
        .nodes
        .iter()
        .find(|n| matches!(n.node, crate::ir::Node::Prev(x) if x == slot))?;
    let elem = match info.kind {
        crate::ir::Kind::Vec(k) => Elem::Vec(k),
        crate::ir::Kind::Bool => Elem::Bool,
        crate::ir::Kind::Class(k) => Elem::Cat(k),
        _ => Elem::Real,
    };
    Some((elem, info))
}

/// Elements per sample of a shape under the call's dimension sizes, in checked arithmetic.
fn per_sample(p: &Process, sizes: &HashMap<String, usize>, s: &Shape) -> Result<usize, String> {
    let mut factors = Vec::with_capacity(s.dims.len());
    for d in &s.dims {
        let name = p.dims[d.index()].name.as_str();
        let n = *sizes.get(name).ok_or_else(|| {
            format!("the size of `{name}` is not known: give it with --set {name}=N")
        })?;
        factors.push((name, n));
    }
    crate::limits::product(&factors)
}

/// Refuses a call whose values would not fit: every node's element count (batch × dims ×
/// width) in checked arithmetic, and their bytes together against the memory limit
/// ([`crate::limits::memory_limit`]), before anything is allocated.
pub(crate) fn check_call_size(
    p: &Process,
    prog: &Program,
    batch: usize,
    sizes: &HashMap<String, usize>,
) -> Result<(), String> {
    let mut total: u128 = 0;
    for n in &prog.nodes {
        let (width, bytes) = match n.kind {
            Kind::Bool => (1usize, 1u128),
            Kind::Vec(k) => (k as usize, 4),
            Kind::Mat(k) => ((k as usize).saturating_mul(k as usize), 4),
            _ => (1, 4),
        };
        let mut factors: Vec<(&str, usize)> = Vec::new();
        if !matches!(n.extent, Extent::Uniform) {
            factors.push(("batch", batch));
        }
        if matches!(n.extent, Extent::Element) {
            if let Some(s) = &n.shape {
                for d in &s.dims {
                    let name = p.dims[d.index()].name.as_str();
                    match sizes.get(name) {
                        Some(&m) => factors.push((name, m)),
                        // Unknown sizes are reported when the node is evaluated.
                        None => return Ok(()),
                    }
                }
            }
        }
        if width != 1 {
            factors.push(("classes", width));
        }
        let elems = crate::limits::product(&factors)
            .map_err(|e| format!("this call's sizes are too large: {e}"))?;
        total = total.saturating_add(elems as u128 * bytes);
    }
    // The message names every size, so it is built only for a call that is refused.
    if total <= u128::from(crate::limits::memory_limit()?) {
        return Ok(());
    }
    let mut named: Vec<(&str, usize)> = vec![("batch", batch)];
    let mut dims: Vec<(&str, usize)> = sizes.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    dims.sort();
    named.extend(dims);
    let what = format!(
        "`{}` with {}",
        prog.name,
        named
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    crate::limits::check_bytes(&what, total)
}

impl<'a> Ctx<'a> {
    fn new(
        p: &'a Process,
        prog: &'a Program,
        call: &'a Call,
        sizes: HashMap<String, usize>,
        env: Env,
    ) -> Ctx<'a> {
        Ctx {
            p,
            prog,
            call,
            sizes,
            vals: vec![None; prog.nodes.len()],
            env,
            coefs: vec![None; prog.coefs.len()],
            state: vec![None; p.fields.len()],
            slots: Vec::new(),
            prev: Vec::new(),
            net: Vec::new(),
            draw_offset: 0,
            step: call.step,
            uniforms: HashMap::new(),
            accel: None,
        }
    }

    /// Host coefficient `c`, computed in f64 when first read (a coefficient with a time of its
    /// own is evaluated at that time).
    pub(crate) fn coef(&mut self, c: u32) -> Result<Val, String> {
        if let Some(v) = &self.coefs[c as usize] {
            return Ok(v.clone());
        }
        let (p, prog, env) = (self.p, self.prog, &self.env);
        let ev = Evaluator::new(p);
        let fail = |e: crate::check::eval::EvalError| match e {
            crate::check::eval::EvalError::Hazard { message, .. }
            | crate::check::eval::EvalError::Undefined { message, .. } => {
                format!("{} at {} = {}: {message}", prog.name, p.time.name, env.t)
            }
            crate::check::eval::EvalError::Runtime => format!(
                "{}: a coefficient needs a value the call did not give",
                prog.name
            ),
        };
        let (e, at) = prog.coefs[c as usize];
        let v = match at {
            None => ev.eval(e, env).map_err(fail)?,
            Some(time) => {
                let t = ev.real(time, env).map_err(fail)?;
                ev.eval(e, &Env { t, ..env.clone() }).map_err(fail)?
            }
        };
        let v = from_value(&v);
        self.coefs[c as usize] = Some(v.clone());
        Ok(v)
    }

    /// Elements per sample of a node's shape.
    pub(crate) fn per_sample(&self, shape: &Option<Shape>) -> Result<usize, String> {
        let Some(s) = shape else { return Ok(1) };
        per_sample(self.p, &self.sizes, s)
    }

    fn len(&self, id: NodeId) -> Result<usize, String> {
        let n = self.prog.node(id);
        Ok(match n.extent {
            Extent::Uniform => 1,
            Extent::Sample => self.call.batch,
            Extent::Element => self
                .call
                .batch
                .checked_mul(self.per_sample(&n.shape)?)
                .ok_or_else(|| self.bug("a node's size overflows after the call was sized"))?,
        })
    }

    /// Index into operand `id` for output element `i` of a node with `per` elements per sample.
    fn at(&self, id: NodeId, i: usize, per: usize) -> usize {
        match self.prog.node(id).extent {
            Extent::Uniform => 0,
            Extent::Sample => i / per.max(1),
            Extent::Element => i,
        }
    }

    pub(crate) fn eval(&mut self, id: NodeId) -> Result<Val, String> {
        if let Some(v) = &self.vals[id.index()] {
            return Ok(v.clone());
        }
        if let Some(a) = self.accel {
            if let Some(r) = a.node(self, id) {
                r?;
                return self.vals[id.index()]
                    .clone()
                    .ok_or_else(|| self.bug("a backend left a node without a value"));
            }
        }
        let info = self.prog.node(id).clone();
        let len = self.len(id)?;
        let per = self.per_sample(&info.shape)?;
        let v = match &info.node {
            Node::Const(x) => match info.kind {
                Kind::Bool => Val::B(Shared::new(vec![*x != 0.0])),
                _ => Val::R(Shared::new(vec![*x as f32])),
            },
            Node::Coef(c) => self.coef(*c)?,
            Node::Uniforms { draw, site } => {
                self.eval(*draw)?;
                Val::R(Shared::new(self.uniforms.get(site).cloned().ok_or_else(
                    || self.bug("uniforms of a draw that kept none"),
                )?))
            }
            Node::IsReal(a) => {
                let shape = self.prog.node(*a).shape.clone();
                let e = self.per_sample(&shape)?;
                Val::B(
                    (0..self.call.batch * e)
                        .map(|i| self.real(&shape, i, e))
                        .collect::<Vec<_>>()
                        .into(),
                )
            }
            Node::Count(a) => {
                // Real elements per sample.
                let shape = self.prog.node(*a).shape.clone();
                let e = self.per_sample(&shape)?;
                Val::R(
                    (0..self.call.batch)
                        .map(|s| {
                            (0..e)
                                .filter(|j| self.real(&shape, s * e + j, e))
                                .count()
                                .max(1) as f32
                        })
                        .collect::<Vec<_>>()
                        .into(),
                )
            }
            Node::State(f) => self.state[*f as usize].clone().ok_or_else(|| {
                format!(
                    "`{}` is read before it has a value",
                    self.p.fields[*f as usize].name
                )
            })?,
            Node::Slot(s) => self
                .slots
                .get(*s as usize)
                .cloned()
                .flatten()
                .ok_or_else(|| self.bug("an empty slot"))?,
            Node::Prev(s) => self
                .prev
                .get(*s as usize)
                .cloned()
                .flatten()
                .ok_or("`prev` read at the first step")?,
            Node::NetOut { call, output } => self
                .net
                .get(*call as usize)
                .and_then(|o| o.get(*output as usize))
                .cloned()
                .ok_or_else(|| self.bug("a network output read before its call"))?,
            Node::Input(i) => {
                let port = &self.prog.inputs[*i as usize];
                let t = &self.call.inputs[&port.name];
                match (&t.data, info.kind) {
                    (Data::F32(v), Kind::Vec(k)) => Val::V(k as usize, Shared::new(v.clone())),
                    (Data::F32(v), _) => Val::R(Shared::new(v.clone())),
                    (Data::Bool(v), _) => Val::B(Shared::new(v.clone())),
                    (Data::Class(v), _) => Val::C(Shared::new(v.clone())),
                }
            }
            Node::Unary(op, a) => {
                let av = self.eval(*a)?;
                match (op, av) {
                    (UnOp::Neg, Val::R(v)) => {
                        Val::R(v.iter().map(|x| -x).collect::<Vec<_>>().into())
                    }
                    (UnOp::Neg, Val::V(k, v)) => {
                        Val::V(k, v.iter().map(|x| -x).collect::<Vec<_>>().into())
                    }
                    (UnOp::Neg, Val::B(v)) => Val::R(
                        v.iter()
                            .map(|x| -(*x as u8 as f32))
                            .collect::<Vec<_>>()
                            .into(),
                    ),
                    (UnOp::Not, Val::B(v)) => {
                        Val::B(v.iter().map(|x| !x).collect::<Vec<_>>().into())
                    }
                    _ => return Err(self.bug("unary operand")),
                }
            }
            Node::Binary(op, a, b) => {
                let (av, bv) = (self.eval(*a)?, self.eval(*b)?);
                self.binary(*op, (*a, av), (*b, bv), len, per, info.kind)?
            }
            Node::Select(c, a, b) => {
                let (cv, av, bv) = (self.eval(*c)?, self.eval(*a)?, self.eval(*b)?);
                let Val::B(cs) = cv else {
                    return Err(self.bug("select condition"));
                };
                let k = kwidth(info.kind);
                let mut out = Vec::with_capacity(len * k);
                // Per element, the chosen branch's value.
                let pick = |i: usize| {
                    if cs[self.at(*c, i, per)] {
                        (true, self.at(*a, i, per))
                    } else {
                        (false, self.at(*b, i, per))
                    }
                };
                match (&av, &bv) {
                    (Val::B(x), Val::B(y)) => {
                        let v = (0..len)
                            .map(|i| match pick(i) {
                                (true, j) => x[j],
                                (false, j) => y[j],
                            })
                            .collect::<Vec<_>>()
                            .into();
                        return self.store(id, Val::B(v));
                    }
                    (Val::C(x), Val::C(y)) => {
                        let v = (0..len)
                            .map(|i| match pick(i) {
                                (true, j) => x[j],
                                (false, j) => y[j],
                            })
                            .collect::<Vec<_>>()
                            .into();
                        return self.store(id, Val::C(v));
                    }
                    _ => {}
                }
                for i in 0..len {
                    let pick = if cs[self.at(*c, i, per)] {
                        (*a, &av)
                    } else {
                        (*b, &bv)
                    };
                    let j = self.at(pick.0, i, per);
                    for q in 0..k {
                        out.push(elem(pick.1, j, q));
                    }
                }
                if k == 1 && !matches!(info.kind, Kind::Vec(_)) {
                    Val::R(Shared::new(out))
                } else {
                    Val::V(k, Shared::new(out))
                }
            }
            Node::Index(v, i) => {
                let (vv, iv) = (self.eval(*v)?, self.eval(*i)?);
                let Val::V(k, data) = vv else {
                    return Err(self.bug("index base"));
                };
                let out = (0..len)
                    .map(|n| {
                        let idx = elem(&iv, self.at(*i, n, per), 0) as usize;
                        if idx >= k {
                            Err(format!("index {idx} is outside 0 to {}", k - 1))
                        } else {
                            Ok(data[self.at(*v, n, per) * k + idx])
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Val::R(out.into())
            }
            Node::List(items) => {
                let vals: Vec<Val> = items
                    .iter()
                    .map(|x| self.eval(*x))
                    .collect::<Result<_, _>>()?;
                let k = items.len();
                let mut out = Vec::with_capacity(len * k);
                for n in 0..len {
                    for (item, v) in items.iter().zip(&vals) {
                        out.push(elem(v, self.at(*item, n, per), 0));
                    }
                }
                Val::V(k, Shared::new(out))
            }
            Node::Call(f @ (Builtin::RowSum | Builtin::Pair | Builtin::Gram), args) => {
                let vals: Vec<Val> = args
                    .iter()
                    .map(|a| self.eval(*a))
                    .collect::<Result<_, _>>()?;
                self.graph_op(*f, args, &vals, info.kind)?
            }
            Node::Call(f, args) => {
                let vals: Vec<(NodeId, Val)> = args
                    .iter()
                    .map(|a| Ok((*a, self.eval(*a)?)))
                    .collect::<Result<_, String>>()?;
                self.call_builtin(*f, &vals, len, per, info.kind)?
            }
            Node::Reduce(f, a) => {
                let av = self.eval(*a)?;
                let ainfo = self.prog.node(*a).clone();
                let e = self.per_sample(&ainfo.shape)?;
                let b = self.call.batch;
                let mut out = vec![0.0f64; b];
                for (s, o) in out.iter_mut().enumerate() {
                    let mut count = 0usize;
                    for j in 0..e {
                        if !self.real(&ainfo.shape, s * e + j, e) {
                            continue;
                        }
                        count += 1;
                        let x = elem(&av, self.at(*a, s * e + j, e), 0) as f64;
                        *o += if *f == Builtin::Norm { x * x } else { x };
                    }
                    match f {
                        Builtin::Mean => *o /= count.max(1) as f64,
                        Builtin::Norm => *o = o.sqrt(),
                        _ => {}
                    }
                }
                Val::R(out.into_iter().map(|x| x as f32).collect::<Vec<_>>().into())
            }
            Node::Draw {
                site,
                family,
                params,
            } => self.draw(id, *site, *family, params, len, per)?,
            Node::LogDensity {
                family,
                params,
                value,
            } => self.log_density(*family, params, *value, len, per, &info.shape)?,
        };
        self.store(id, v)
    }

    /// `rowsum`, `pair` and `gram`: operations whose result has another shape than their arguments.
    fn graph_op(
        &self,
        f: Builtin,
        args: &[NodeId],
        vals: &[Val],
        kind: Kind,
    ) -> Result<Val, String> {
        let b = self.call.batch;
        let per = |i: usize| self.per_sample(&self.prog.node(args[i]).shape);
        let get = |i: usize, j: usize| {
            elem(
                &vals[i],
                if self.prog.node(args[i]).extent == Extent::Element {
                    j
                } else {
                    0
                },
                0,
            )
        };
        Ok(match f {
            Builtin::RowSum => {
                let n = (per(0)? as f64).sqrt() as usize;
                let shape = self.prog.node(args[0]).shape.clone();
                Val::R(
                    (0..b * n)
                        .map(|r| {
                            (0..n)
                                .map(|j| (r / n) * n * n + (r % n) * n + j)
                                .filter(|x| self.real(&shape, *x, n * n))
                                .map(|x| get(0, x))
                                .sum()
                        })
                        .collect::<Vec<_>>()
                        .into(),
                )
            }
            Builtin::Pair => {
                let n = per(0)?;
                let at = |s: usize, i: usize, j: usize| (get(0, s * n + i), get(1, s * n + j));
                if kind == Kind::Bool {
                    Val::B(
                        (0..b * n * n)
                            .map(|x| {
                                let (u, v) = at(x / (n * n), (x % (n * n)) / n, x % n);
                                u != 0.0 && v != 0.0
                            })
                            .collect::<Vec<_>>()
                            .into(),
                    )
                } else {
                    Val::R(
                        (0..b * n * n)
                            .map(|x| {
                                let (u, v) = at(x / (n * n), (x % (n * n)) / n, x % n);
                                u * v
                            })
                            .collect::<Vec<_>>()
                            .into(),
                    )
                }
            }
            _ => {
                let info = self.prog.node(args[0]);
                let shape = info
                    .shape
                    .as_ref()
                    .ok_or_else(|| self.bug("gram without a shape"))?;
                let n = self.sizes[&self.p.dims[shape.dims[0].index()].name];
                let d = self.sizes[&self.p.dims[shape.dims[1].index()].name];
                Val::R(
                    (0..b * n * n)
                        .map(|x| {
                            let (s, i, j) = (x / (n * n), (x % (n * n)) / n, x % n);
                            (0..d)
                                .map(|k| {
                                    get(0, s * n * d + i * d + k) * get(0, s * n * d + j * d + k)
                                })
                                .sum()
                        })
                        .collect::<Vec<_>>()
                        .into(),
                )
            }
        })
    }

    fn store(&mut self, id: NodeId, v: Val) -> Result<Val, String> {
        self.vals[id.index()] = Some(v.clone());
        Ok(v)
    }

    pub(crate) fn bug(&self, what: &str) -> String {
        format!(
            "internal error in the interpreter ({what} in `{}`); this is a bug in diffc",
            self.prog.name
        )
    }

    fn binary(
        &self,
        op: BinOp,
        (a, av): (NodeId, Val),
        (b, bv): (NodeId, Val),
        len: usize,
        per: usize,
        kind: Kind,
    ) -> Result<Val, String> {
        use BinOp as O;
        let f = |x: f32, y: f32| -> f32 {
            match op {
                O::Add => x + y,
                O::Sub => x - y,
                O::Mul => x * y,
                O::Div => x / y,
                O::Pow => x.powf(y),
                _ => f32::NAN,
            }
        };
        Ok(match op {
            O::And | O::Or => {
                let (Val::B(x), Val::B(y)) = (&av, &bv) else {
                    return Err(self.bug("logic operands"));
                };
                Val::B(
                    (0..len)
                        .map(|i| {
                            let (p, q) = (x[self.at(a, i, per)], y[self.at(b, i, per)]);
                            if op == O::And {
                                p && q
                            } else {
                                p || q
                            }
                        })
                        .collect::<Vec<_>>()
                        .into(),
                )
            }
            O::Lt | O::Le | O::Gt | O::Ge | O::Eq | O::Ne => Val::B(
                (0..len)
                    .map(|i| {
                        let (x, y) = (
                            elem(&av, self.at(a, i, per), 0),
                            elem(&bv, self.at(b, i, per), 0),
                        );
                        match op {
                            O::Lt => x < y,
                            O::Le => x <= y,
                            O::Gt => x > y,
                            O::Ge => x >= y,
                            O::Eq => x == y,
                            _ => x != y,
                        }
                    })
                    .collect::<Vec<_>>()
                    .into(),
            ),
            O::MatMul => {
                let k = match kind {
                    Kind::Vec(k) | Kind::Mat(k) => k as usize,
                    _ => return Err(self.bug("matmul kind")),
                };
                let mut out = Vec::with_capacity(len * k);
                for i in 0..len {
                    let (ia, ib) = (self.at(a, i, per), self.at(b, i, per));
                    match (&av, &bv) {
                        (Val::V(_, v), Val::M(_, m)) => {
                            for j in 0..k {
                                out.push((0..k).map(|l| v[ia * k + l] * m[l * k + j]).sum());
                            }
                        }
                        (Val::M(_, m), Val::V(_, v)) => {
                            for r in 0..k {
                                out.push((0..k).map(|l| m[r * k + l] * v[ib * k + l]).sum());
                            }
                        }
                        _ => return Err("the interpreter multiplies a per-element vector by a coefficient matrix only".into()),
                    }
                }
                Val::V(k, Shared::new(out))
            }
            _ => {
                let k = kwidth(kind);
                let mut out = Vec::with_capacity(len * k);
                for i in 0..len {
                    let (ia, ib) = (self.at(a, i, per), self.at(b, i, per));
                    for q in 0..k {
                        out.push(f(elem(&av, ia, q), elem(&bv, ib, q)));
                    }
                }
                if matches!(kind, Kind::Vec(_)) {
                    Val::V(k, Shared::new(out))
                } else {
                    Val::R(Shared::new(out))
                }
            }
        })
    }

    fn call_builtin(
        &self,
        f: Builtin,
        args: &[(NodeId, Val)],
        len: usize,
        per: usize,
        kind: Kind,
    ) -> Result<Val, String> {
        use Builtin as B;
        let k = kwidth(kind);
        let arg = |n: usize, i: usize, q: usize| elem(&args[n].1, self.at(args[n].0, i, per), q);
        let vec_of = |n: usize, i: usize| -> Vec<f32> {
            let w = width(&args[n].1);
            (0..w).map(|q| arg(n, i, q)).collect()
        };
        let map1 = |g: fn(f32) -> f32| -> Val {
            let out: Vec<f32> = (0..len)
                .flat_map(|i| (0..k).map(move |q| (i, q)))
                .map(|(i, q)| g(arg(0, i, q)))
                .collect();
            if matches!(kind, Kind::Vec(_)) {
                Val::V(k, Shared::new(out))
            } else {
                Val::R(Shared::new(out))
            }
        };
        Ok(match f {
            B::Sqrt => map1(f32::sqrt),
            B::Exp => map1(f32::exp),
            B::Log => map1(f32::ln),
            B::Expm1 => map1(f32::exp_m1),
            B::Log1p => map1(f32::ln_1p),
            B::Sin => map1(f32::sin),
            B::Cos => map1(f32::cos),
            B::Tanh => map1(f32::tanh),
            B::Abs => map1(f32::abs),
            B::Floor => map1(f32::floor),
            B::Sigmoid => map1(|x| 1.0 / (1.0 + (-x).exp())),
            B::Softplus => map1(|x| if x > 20.0 { x } else { x.exp().ln_1p() }),
            B::Min | B::Max | B::LogAddExp | B::Clamp => {
                let out: Vec<f32> = (0..len)
                    .flat_map(|i| (0..k).map(move |q| (i, q)))
                    .map(|(i, q)| {
                        let (x, y) = (arg(0, i, q), arg(1, i, q));
                        match f {
                            B::Min => x.min(y),
                            B::Max => x.max(y),
                            B::Clamp => x.max(y).min(arg(2, i, q)),
                            _ => {
                                let m = x.max(y);
                                if m == f32::NEG_INFINITY {
                                    m
                                } else {
                                    m + ((x - m).exp() + (y - m).exp()).ln()
                                }
                            }
                        }
                    })
                    .collect();
                if matches!(kind, Kind::Vec(_)) {
                    Val::V(k, Shared::new(out))
                } else {
                    Val::R(Shared::new(out))
                }
            }
            B::OneHot => {
                let mut out = vec![0.0; len * k];
                for i in 0..len {
                    let c = arg(0, i, 0) as usize;
                    if c >= k {
                        return Err(format!("class {c} is outside 0 to {}", k - 1));
                    }
                    out[i * k + c] = 1.0;
                }
                Val::V(k, Shared::new(out))
            }
            B::Argmax => Val::C(
                (0..len)
                    .map(|i| {
                        let v = vec_of(0, i);
                        let mut best = 0;
                        for (j, x) in v.iter().enumerate() {
                            if *x > v[best] {
                                best = j;
                            }
                        }
                        best as u32
                    })
                    .collect::<Vec<_>>()
                    .into(),
            ),
            B::Softmax | B::LogSoftmax => {
                let mut out = Vec::with_capacity(len * k);
                for i in 0..len {
                    let v = vec_of(0, i);
                    let m = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let lse = m + v.iter().map(|x| (x - m).exp()).sum::<f32>().ln();
                    out.extend(v.iter().map(|x| {
                        if f == B::Softmax {
                            (x - lse).exp()
                        } else {
                            x - lse
                        }
                    }));
                }
                Val::V(k, Shared::new(out))
            }
            B::LogSumExp | B::VSum => Val::R(
                (0..len)
                    .map(|i| {
                        let v = vec_of(0, i);
                        if f == B::VSum {
                            v.iter().sum()
                        } else {
                            let m = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                            m + v.iter().map(|x| (x - m).exp()).sum::<f32>().ln()
                        }
                    })
                    .collect::<Vec<_>>()
                    .into(),
            ),
            B::Dot => Val::R(
                (0..len)
                    .map(|i| {
                        vec_of(0, i)
                            .iter()
                            .zip(vec_of(1, i))
                            .map(|(x, y)| x * y)
                            .sum()
                    })
                    .collect::<Vec<_>>()
                    .into(),
            ),
            other => {
                return Err(format!(
                    "the interpreter cannot evaluate `{}` per element yet",
                    other.name()
                ))
            }
        })
    }

    /// Is element `i` (batch-major, `per` per sample) of a value of this shape real under its node mask?
    fn real(&self, shape: &Option<Shape>, i: usize, per: usize) -> bool {
        let Some(s) = shape else { return true };
        let Some(m) = s.mask else { return true };
        let mask = &self.p.masks[m.index()];
        let Some(Tensor {
            data: Data::Bool(bits),
            ..
        }) = self.call.masks.get(&mask.name)
        else {
            return true;
        };
        let n = self.sizes[&self.p.dims[mask.dim.index()].name];
        let (b, mut e) = (i / per.max(1), i % per.max(1));
        // Walk the axes from the last; every axis over the mask's dimension must be a real node.
        for d in s.dims.iter().rev() {
            let size = self.sizes[&self.p.dims[d.index()].name];
            let idx = e % size;
            e /= size;
            if *d == mask.dim && !bits[b * n + idx] {
                return false;
            }
        }
        true
    }

    /// Where the RNG index of element `i` (of a node with `per` elements per sample) comes from,
    /// and whether the element is on the empty diagonal of a symmetric field.
    fn rng_index(&self, shape: &Option<Shape>, i: usize, per: usize) -> (u64, bool) {
        // An entry a node mask leaves out is empty, like the diagonal of a symmetric field.
        if !self.real(shape, i, per) {
            return (0, true);
        }
        // A call over part of a larger batch draws as those samples of the whole batch do.
        let base = (self.call.sample_base * per) as u64;
        let Some(s) = shape.as_ref().filter(|s| s.sym) else {
            return (base + i as u64, false);
        };
        let n = self.sizes[&self.p.dims[s.dims[0].index()].name];
        let (b, e) = (i / per, i % per);
        let (r, c) = (e / n, e % n);
        if r == c {
            return (0, true);
        }
        let (lo, hi) = if r < c { (r, c) } else { (c, r) };
        (base + (b * per + lo * n + hi) as u64, false)
    }

    fn draw(
        &mut self,
        id: NodeId,
        site: u32,
        family: Family,
        params: &[NodeId],
        len: usize,
        per: usize,
    ) -> Result<Val, String> {
        let info = self.prog.node(id).clone();
        let site_info = &self.prog.draws[site as usize];
        let supplied = self.call.draws.get(site_info.input());
        if let Some(t) = supplied {
            let want = len * kwidth(info.kind).max(1);
            if t.len() != want
                && !matches!(
                    family,
                    Family::Categorical | Family::Bernoulli | Family::Uniform
                )
            {
                return Err(format!(
                    "supplied `{}` holds {} values, expected {want}",
                    site_info.name,
                    t.len()
                ));
            }
        }
        let pv: Vec<Val> = params
            .iter()
            .map(|x| self.eval(*x))
            .collect::<Result<_, _>>()?;
        let seed = self.call.seed;
        let step = self.step;
        let offset = self.draw_offset;
        // RNG indices count from the first sample of the whole batch; supplied draws from
        // this call's.
        let base = (self.call.sample_base * per) as u64;
        let uniform = |idx: u64, j: usize| -> f32 {
            match supplied.and_then(|t| t.f32s()) {
                Some(u) => u[j],
                None => rng::uniform(seed, site, step, offset + idx),
            }
        };
        Ok(match family {
            Family::Normal => {
                let k = kwidth(info.kind);
                let mut out = Vec::with_capacity(len * k);
                for i in 0..len {
                    let (idx, diag) = self.rng_index(&info.shape, i, per);
                    // A supplied draw is read where the generator's would be: a symmetric
                    // field's at the pair's upper entry, so that the result stays symmetric.
                    let src = idx.wrapping_sub(base) as usize;
                    for q in 0..k {
                        let z = if diag {
                            0.0
                        } else {
                            match supplied.and_then(|t| t.f32s()) {
                                Some(z) => z[src * k + q],
                                None => rng::normal(
                                    seed,
                                    site,
                                    step,
                                    offset + idx * k as u64 + q as u64,
                                ),
                            }
                        };
                        let m = elem(&pv[0], self.at(params[0], i, per), q);
                        let v = elem(&pv[1], self.at(params[1], i, per), q);
                        out.push(if diag { 0.0 } else { m + v.sqrt() * z });
                    }
                }
                if matches!(info.kind, Kind::Vec(_)) {
                    Val::V(k, Shared::new(out))
                } else {
                    Val::R(Shared::new(out))
                }
            }
            Family::Uniform | Family::Bernoulli | Family::Categorical => {
                // One uniform per element (the empty diagonal of a symmetric field draws none),
                // kept as the draw's noise.
                let us: Vec<f32> = (0..len)
                    .map(|i| {
                        let (idx, diag) = self.rng_index(&info.shape, i, per);
                        if diag {
                            0.0
                        } else {
                            uniform(idx, idx.wrapping_sub(base) as usize)
                        }
                    })
                    .collect();
                let diag = |i: usize| self.rng_index(&info.shape, i, per).1;
                let v = match family {
                    Family::Uniform => Val::R(
                        (0..len)
                            .map(|i| {
                                let (lo, hi) = (
                                    elem(&pv[0], self.at(params[0], i, per), 0),
                                    elem(&pv[1], self.at(params[1], i, per), 0),
                                );
                                if diag(i) {
                                    0.0
                                } else {
                                    lo + (hi - lo) * us[i]
                                }
                            })
                            .collect::<Vec<_>>()
                            .into(),
                    ),
                    Family::Bernoulli => Val::B(
                        (0..len)
                            .map(|i| {
                                !diag(i)
                                    && rng::bernoulli_from_uniform(
                                        us[i],
                                        elem(&pv[0], self.at(params[0], i, per), 0),
                                    )
                            })
                            .collect::<Vec<_>>()
                            .into(),
                    ),
                    _ => {
                        let k = match pv[0] {
                            Val::V(k, _) => k,
                            _ => return Err(self.bug("categorical probabilities")),
                        };
                        Val::C(
                            (0..len)
                                .map(|i| {
                                    if diag(i) {
                                        return 0;
                                    }
                                    let j = self.at(params[0], i, per);
                                    let probs: Vec<f32> =
                                        (0..k).map(|q| elem(&pv[0], j, q)).collect();
                                    rng::categorical_from_uniform(us[i], &probs) as u32
                                })
                                .collect::<Vec<_>>()
                                .into(),
                        )
                    }
                };
                self.uniforms.insert(site, us);
                v
            }
            Family::Delta => {
                let k = kwidth(info.kind);
                match &pv[0] {
                    Val::B(b) => Val::B(
                        (0..len)
                            .map(|i| b[self.at(params[0], i, per)])
                            .collect::<Vec<_>>()
                            .into(),
                    ),
                    Val::C(c) => Val::C(
                        (0..len)
                            .map(|i| c[self.at(params[0], i, per)])
                            .collect::<Vec<_>>()
                            .into(),
                    ),
                    v => {
                        let out: Vec<f32> = (0..len)
                            .flat_map(|i| (0..k).map(move |q| (i, q)))
                            .map(|(i, q)| elem(v, self.at(params[0], i, per), q))
                            .collect();
                        if matches!(info.kind, Kind::Vec(_)) {
                            Val::V(k, Shared::new(out))
                        } else {
                            Val::R(Shared::new(out))
                        }
                    }
                }
            }
        })
    }

    fn log_density(
        &mut self,
        family: Family,
        params: &[NodeId],
        value: NodeId,
        len: usize,
        per: usize,
        shape: &Option<Shape>,
    ) -> Result<Val, String> {
        let pv: Vec<Val> = params
            .iter()
            .map(|x| self.eval(*x))
            .collect::<Result<_, _>>()?;
        let xv = self.eval(value)?;
        let k = width(&xv);
        let mut out = Vec::with_capacity(len);
        for i in 0..len {
            // Entries a node mask leaves out have no density.
            if !self.real(shape, i, per) {
                out.push(0.0);
                continue;
            }
            // A symmetric field counts each unordered pair once: only i < j.
            if let Some(s) = shape.as_ref().filter(|s| s.sym) {
                let n = self.sizes[&self.p.dims[s.dims[0].index()].name];
                let e = i % per;
                if e / n >= e % n {
                    out.push(0.0);
                    continue;
                }
            }
            let xi = self.at(value, i, per);
            let lp = match family {
                Family::Normal => (0..k)
                    .map(|q| {
                        let (m, v) = (
                            elem(&pv[0], self.at(params[0], i, per), q) as f64,
                            elem(&pv[1], self.at(params[1], i, per), q) as f64,
                        );
                        let x = elem(&xv, xi, q) as f64;
                        -0.5 * (2.0 * std::f64::consts::PI * v).ln() - (x - m).powi(2) / (2.0 * v)
                    })
                    .sum::<f64>(),
                Family::Categorical => {
                    let c = elem(&xv, xi, 0) as usize;
                    (elem(&pv[0], self.at(params[0], i, per), c) as f64).ln()
                }
                Family::Bernoulli => {
                    let p = elem(&pv[0], self.at(params[0], i, per), 0) as f64;
                    if elem(&xv, xi, 0) != 0.0 {
                        p.ln()
                    } else {
                        (1.0 - p).ln()
                    }
                }
                Family::Uniform => {
                    let (lo, hi) = (
                        elem(&pv[0], self.at(params[0], i, per), 0) as f64,
                        elem(&pv[1], self.at(params[1], i, per), 0) as f64,
                    );
                    let x = elem(&xv, xi, 0) as f64;
                    if x >= lo && x < hi {
                        -(hi - lo).ln()
                    } else {
                        f64::NEG_INFINITY
                    }
                }
                Family::Delta => {
                    let same = (0..k)
                        .all(|q| elem(&xv, xi, q) == elem(&pv[0], self.at(params[0], i, per), q));
                    if same {
                        0.0
                    } else {
                        f64::NEG_INFINITY
                    }
                }
            };
            out.push(lp as f32);
        }
        Ok(Val::R(Shared::new(out)))
    }

    fn tensor(&self, id: NodeId, v: Val, name: &str) -> Result<Tensor, String> {
        let info = self.prog.node(id);
        let b = self.call.batch;
        let shape = match info.extent {
            Extent::Uniform => vec![],
            Extent::Sample => vec![b],
            Extent::Element => {
                let s = info
                    .shape
                    .as_ref()
                    .ok_or_else(|| self.bug("element output without a shape"))?;
                let mut v = vec![b];
                for d in &s.dims {
                    v.push(self.sizes[&self.p.dims[d.index()].name]);
                }
                v
            }
        };
        let t = to_tensor(shape, v);
        if let Some(x) = t.f32s() {
            check_output(self.prog.kind, name, x)?;
        }
        Ok(t)
    }
}

/// Refuses an entry's output that is not a number: NaN in any output, and ±inf in a loss's
/// outputs (the loss, its gradients and its terms), which no training step can use.
/// Elsewhere an infinity can be the answer (`log_q` of an impossible value is −inf).
pub(crate) fn check_output(
    kind: crate::entries::EntryKind,
    name: &str,
    x: &[f32],
) -> Result<(), String> {
    use crate::entries::EntryKind;
    let finite = matches!(kind, EntryKind::Loss | EntryKind::LossTerms);
    match x
        .iter()
        .position(|y| y.is_nan() || (finite && y.is_infinite()))
    {
        Some(i) if x[i].is_nan() => Err(format!("output `{name}` is NaN at flat index {i}")),
        Some(i) => Err(format!(
            "output `{name}` is {} at flat index {i}: a loss must be finite (a probability of 0 for the data, or a value past f32)",
            x[i]
        )),
        None => Ok(()),
    }
}

/// A value as a tensor of the given (batch and field) shape; a class axis or matrix is appended.
fn to_tensor(mut shape: Vec<usize>, v: Val) -> Tensor {
    let data = match v {
        Val::R(x) => Data::F32(Shared::unwrap_or_clone(x)),
        Val::B(x) => Data::Bool(Shared::unwrap_or_clone(x)),
        Val::C(x) => Data::Class(Shared::unwrap_or_clone(x)),
        Val::V(k, x) => {
            shape.push(k);
            Data::F32(Shared::unwrap_or_clone(x))
        }
        Val::M(k, x) => {
            shape.extend([k, k]);
            Data::F32(Shared::unwrap_or_clone(x))
        }
    };
    Tensor { shape, data }
}

fn kwidth(kind: Kind) -> usize {
    match kind {
        Kind::Vec(k) => k as usize,
        _ => 1,
    }
}

fn width(v: &Val) -> usize {
    match v {
        Val::V(k, _) => *k,
        _ => 1,
    }
}

/// Component `q` of element `i` of a value, as f32 (a scalar broadcasts over components).
fn elem(v: &Val, i: usize, q: usize) -> f32 {
    match v {
        Val::R(x) => x[i],
        Val::B(x) => x[i] as u8 as f32,
        Val::C(x) => x[i] as f32,
        Val::V(k, x) => x[i * k + q],
        Val::M(k, x) => x[i * k * k + q],
    }
}

/// An `.npy` array as an input of the given element type (`f32`/`f64` for reals, integers for
/// classes, `bool` or 0/1 integers for bools).
pub fn tensor_from_npy(a: &crate::npy::Array, elem: Elem, name: &str) -> Result<Tensor, String> {
    let data = match elem {
        Elem::Real | Elem::Vec(_) | Elem::Mat(_) => match &a.data {
            crate::npy::Data::F32(_) | crate::npy::Data::F64(_) => Data::F32(a.data.to_f32_vec()),
            _ => {
                return Err(format!(
                    "`{name}` must hold floats (float32 or float64), not {}",
                    a.data.type_name()
                ))
            }
        },
        Elem::Cat(k) => {
            let v = a
                .data
                .to_class_indices()
                .map_err(|e| format!("`{name}`: {e}"))?;
            if let Some(i) = v.iter().position(|c| *c < 0 || *c >= k as i64) {
                return Err(format!(
                    "`{name}` holds class {} at flat index {i}, outside 0..{}",
                    v[i],
                    k - 1
                ));
            }
            Data::Class(v.into_iter().map(|c| c as u32).collect())
        }
        Elem::Bool => Data::Bool(a.data.to_bools().map_err(|e| format!("`{name}`: {e}"))?),
    };
    Ok(Tensor {
        shape: a.shape.clone(),
        data,
    })
}

/// An output as an `.npy` array: reals as float32, classes as int64, bools as bool.
pub fn tensor_to_npy(t: &Tensor) -> crate::npy::Array {
    let data = match &t.data {
        Data::F32(v) => crate::npy::Data::F32(v.clone()),
        Data::Class(v) => crate::npy::Data::I64(v.iter().map(|c| *c as i64).collect()),
        Data::Bool(v) => crate::npy::Data::Bool(v.clone()),
    };
    crate::npy::Array {
        shape: t.shape.clone(),
        data,
    }
}

/// One network evaluation, as a sampler makes it.
#[derive(Clone, Copy, Debug)]
pub struct NetCall<'a> {
    /// The network: `Process::networks[net]`.
    pub net: usize,
    /// The network's declared inputs, in order: field-shaped tensors (batch first) and scalar
    /// times, as the network reads them (`softmax(z_t)`, `sigma(t)`, …).
    pub inputs: &'a [Tensor],
    /// The call's own arguments before the input expressions apply: for each field input, the
    /// field (`Process::fields` index) and the value the call passed for it.
    pub fields: &'a [(usize, Tensor)],
    /// The time the call is made at, when the network has a time input.
    pub time: Option<f64>,
    /// The run's node masks by name (`bool[batch, n]`); absent masks mean every node is real.
    pub masks: &'a HashMap<String, Tensor>,
}

/// A denoiser: what a sampler calls for each network evaluation.
///
/// Returns one tensor per output of the network, each shaped like its field (batch first),
/// with a class axis for class probabilities; a bool field's probabilities are reals shaped
/// like the field. Any `FnMut(&Process, &NetCall) -> Result<Vec<Tensor>, String>` is one.
pub trait Denoiser {
    fn denoise(&mut self, p: &Process, call: &NetCall) -> Result<Vec<Tensor>, String>;
}

impl<F> Denoiser for F
where
    F: FnMut(&Process, &NetCall) -> Result<Vec<Tensor>, String>,
{
    fn denoise(&mut self, p: &Process, call: &NetCall) -> Result<Vec<Tensor>, String> {
        self(p, call)
    }
}

/// Everything a sampler run needs besides the process and the denoiser.
#[derive(Clone, Debug, Default)]
pub struct SampleCall {
    pub seed: u64,
    pub batch: usize,
    pub sizes: HashMap<String, usize>,
    /// Starting values: conditioning fields, and state that replaces the sampler's start
    /// (its `init` block or prior).
    pub state: HashMap<String, Tensor>,
    /// The sampler's parameters by name (the spec's defaults otherwise).
    pub params: HashMap<String, f64>,
    /// Values of the process's `param`s by name, as `Call::params`.
    pub process_params: HashMap<String, Tensor>,
    /// A time grid in place of the sampler's own (noise end first).
    pub grid: Option<Vec<f64>>,
    /// Supplied draws by the name of what they draw (`let z ~ …` is `z`; `x ~ …` is `x`), in
    /// place of the generator; inside an inner loop every iteration reads the same values.
    pub draws: HashMap<String, Tensor>,
    /// Run only this many steps and skip the final map (to inspect intermediate states).
    pub stop_after: Option<usize>,
    /// Run one step only, from `grid[0]` to `grid[1]`, from the supplied state.
    pub single_step: Option<SingleStep>,
    /// Run the final map only, at `grid[0]`, on the supplied state. With `single_step`, it is
    /// the final map of a run of `single_step.n` steps and draws as that run's does (step word
    /// `n`); without, it draws on step word 0.
    pub finalize_only: bool,
    /// Node masks by name (`bool[batch, n]`); without one, every node is real.
    pub masks: HashMap<String, Tensor>,
}

/// Where a single step sits in its sampler's run.
#[derive(Clone, Debug, Default)]
pub struct SingleStep {
    /// Step index from 0, of `n` steps (`first` and `last` follow from them).
    pub k: usize,
    pub n: usize,
    /// The previous grid time, for multistep samplers.
    pub r: Option<f64>,
    /// The previous step's values read with `prev`, by the name of their `let`.
    pub prev: HashMap<String, Tensor>,
}

/// Run a sampler from its start to its final map; returns every field it set, by name.
pub fn sample(
    p: &Process,
    sp: &crate::ir::SamplerProgram,
    call: &SampleCall,
    denoiser: &mut dyn Denoiser,
) -> Result<HashMap<String, Tensor>, String> {
    sample_with(p, sp, call, denoiser, None)
}

pub(crate) fn sample_with(
    p: &Process,
    sp: &crate::ir::SamplerProgram,
    call: &SampleCall,
    denoiser: &mut dyn Denoiser,
    accel: Option<&dyn Accel>,
) -> Result<HashMap<String, Tensor>, String> {
    let sampler = p
        .samplers
        .iter()
        .find(|s| s.name == sp.name)
        .ok_or("unknown sampler")?;
    let params = param_values(p, sampler, &call.params)?;
    let grid = match &call.grid {
        Some(g) => g.clone(),
        None if call.params.is_empty() => sampler.default_grid.clone(),
        None => grid_with(p, sampler, &params)?,
    };
    if grid.len() < 2 {
        return Err("a grid needs at least two times".into());
    }
    if let Some(n) = sampler.unit_step {
        if let Some(w) = grid.windows(2).find(|w| (w[0] - w[1]).abs() != n as f64) {
            return Err(format!(
                "sampler `{}` steps with a posterior of `{}-{n}`, so each step goes {n} in time, but this one goes from {} to {}",
                sampler.name, p.time.name, w[0], w[1]
            ));
        }
    }
    // Sizes: given, or read off the starting state.
    let mut sizes = call.sizes.clone();
    for (name, t) in &call.state {
        let f = state_sizes(p, name, &t.shape, call.batch, &mut sizes)?;
        check_values(t, f.elem, name)?;
        if f.shape.sym {
            check_sym_tensor(name, t)?;
        }
    }
    check_call_size(p, &sp.prog, call.batch, &sizes)?;
    check_masks(p, &call.masks, call.batch, &sizes)?;
    let base = Call {
        seed: call.seed,
        batch: call.batch,
        draws: call.draws.clone(),
        masks: call.masks.clone(),
        params: call.process_params.clone(),
        ..Call::default()
    };
    if let Some(name) = call
        .draws
        .keys()
        .find(|k| !sp.prog.draws.iter().any(|d| d.input() == k.as_str()))
    {
        let mut names: Vec<&str> = sp.prog.draws.iter().map(|d| d.input()).collect();
        names.dedup();
        return Err(format!(
            "sampler `{}` draws no `{name}` (its draws: {})",
            sp.name,
            names.join(", ")
        ));
    }
    let env = Env {
        t: grid[0],
        sampler_params: params.clone(),
        params: process_param_values(p, &call.process_params)?,
        ..Env::default()
    };
    let mut cx = Ctx::new(p, &sp.prog, &base, sizes, env);
    cx.accel = accel;
    cx.slots = vec![None; sp.slots as usize];
    cx.prev = vec![None; sp.slots as usize];
    for (name, t) in &call.state {
        let i = p.fields.iter().position(|f| &f.name == name).unwrap();
        cx.state[i] = Some(val_from_tensor(t.clone(), p.fields[i].elem));
    }
    for f in &sp.conditions {
        if cx.state[*f as usize].is_none() {
            return Err(format!(
                "sampler `{}` reads `{}`: give its value",
                sp.name, p.fields[*f as usize].name
            ));
        }
    }
    if call.finalize_only {
        // The final map of a run of `n` steps (`single_step`) draws as that run's does.
        let k = call.single_step.as_ref().map_or(0, |o| o.n as u32);
        cx.at_step(k, grid[0], None, None, None);
        cx.exec(&sp.finalize, denoiser)?;
        let mut out = HashMap::new();
        for (i, f) in p.fields.iter().enumerate() {
            if let Some(v) = cx.state[i].clone() {
                out.insert(f.name.clone(), cx.field_tensor(v, f)?);
            }
        }
        return Ok(out);
    }
    if let Some(one) = &call.single_step {
        if one.k >= one.n.max(1) {
            return Err(format!(
                "step {} of {}: the index runs from 0 to n - 1",
                one.k, one.n
            ));
        }
        for (slot, name) in sp.history.iter().zip(&sp.history_names) {
            if let Some(t) = one.prev.get(name) {
                // The element type of the stored value, from the node that reads it.
                let elem = kept_value(sp, *slot).map_or(Elem::Real, |(e, _)| e);
                cx.prev[*slot as usize] = Some(val_from_tensor(t.clone(), elem));
            }
        }
        if let Some(unknown) = one.prev.keys().find(|k| !sp.history_names.contains(k)) {
            return Err(format!(
                "sampler `{}` keeps no `{unknown}` from the previous step",
                sp.name
            ));
        }
        cx.at_step(
            one.k as u32,
            grid[0],
            Some(grid[1]),
            one.r,
            Some((one.k, one.n)),
        );
        cx.exec(&sp.step, denoiser)?;
        let mut out = HashMap::new();
        for (i, f) in p.fields.iter().enumerate() {
            if let Some(v) = cx.state[i].clone() {
                out.insert(f.name.clone(), cx.field_tensor(v, f)?);
            }
        }
        // What the next step reads with `prev`: `prev.NAME`, to be passed back as its `prev`.
        for (slot, name) in sp.history.iter().zip(&sp.history_names) {
            let (Some(v), Some(node)) =
                (cx.slots[*slot as usize].clone(), slot_node(&sp.step, *slot))
            else {
                continue;
            };
            out.insert(format!("prev.{name}"), cx.tensor(node, v, name)?);
        }
        return Ok(out);
    }
    // Start: the init block, or each prior.
    let n = grid.len() - 1;
    cx.at_step(u32::MAX, grid[0], None, None, None);
    if sp.init.is_empty() {
        for (i, k) in p.priors.iter().enumerate() {
            let f = k.target.field.index();
            if cx.state[f].is_none() {
                let prog = crate::ir::lower::lower(
                    p,
                    &if p.priors.len() == 1 {
                        "prior".to_string()
                    } else {
                        format!("prior.{}", p.fields[f].name)
                    },
                )?;
                let c = Call {
                    seed: call.seed,
                    step: u32::MAX - 1 - i as u32,
                    batch: call.batch,
                    sizes: cx.sizes.clone(),
                    params: call.process_params.clone(),
                    ..Call::default()
                };
                let mut out = match accel {
                    Some(a) => a.entry(p, &prog, &c)?,
                    None => run(p, &prog, &c)?,
                };
                cx.state[f] = Some(val_from_tensor(out.swap_remove(0), p.fields[f].elem));
            }
        }
    } else {
        cx.exec(&sp.init, denoiser)?;
        // Supplied starting values win over the sampler's own.
        for (name, t) in &call.state {
            let i = p.fields.iter().position(|f| &f.name == name).unwrap();
            cx.state[i] = Some(val_from_tensor(t.clone(), p.fields[i].elem));
        }
    }
    let stop = call.stop_after.unwrap_or(n).min(n);
    for k in 0..stop {
        cx.at_step(
            k as u32,
            grid[k],
            Some(grid[k + 1]),
            (k > 0).then(|| grid[k - 1]),
            Some((k, n)),
        );
        cx.net.clear();
        cx.exec(&sp.step, denoiser)?;
        for h in &sp.history {
            cx.prev[*h as usize] = cx.slots[*h as usize].clone();
        }
    }
    if call.stop_after.is_none() {
        cx.at_step(n as u32, grid[n], None, None, None);
        cx.exec(&sp.finalize, denoiser)?;
    }
    // The state's values are handed over without a copy once nothing else holds them.
    let state = std::mem::take(&mut cx.state);
    cx.vals.iter_mut().for_each(|v| *v = None);
    cx.slots.iter_mut().for_each(|v| *v = None);
    cx.prev.iter_mut().for_each(|v| *v = None);
    cx.net.clear();
    let mut out = HashMap::new();
    for (v, f) in state.into_iter().zip(&p.fields) {
        if let Some(v) = v {
            out.insert(f.name.clone(), cx.field_tensor(v, f)?);
        }
    }
    Ok(out)
}

/// The node whose value a step stores in `slot`.
fn slot_node(ops: &[crate::ir::Op], slot: u32) -> Option<NodeId> {
    use crate::ir::Op;
    ops.iter().find_map(|op| match op {
        Op::Slot { slot: s, node } if *s == slot => Some(*node),
        Op::If {
            then, otherwise, ..
        } => slot_node(then, slot).or_else(|| slot_node(otherwise, slot)),
        Op::Repeat { body, .. } => slot_node(body, slot),
        _ => None,
    })
}

/// A sampler's parameter values: the spec's defaults, then `overrides` (a later parameter may
/// depend on an earlier one).
fn param_values(
    p: &Process,
    sampler: &crate::typed::Sampler,
    overrides: &HashMap<String, f64>,
) -> Result<Vec<Value>, String> {
    let ev = Evaluator::new(p);
    let mut params: Vec<Value> = Vec::new();
    for prm in &sampler.params {
        let v = match overrides.get(&prm.name) {
            Some(v) if prm.overridable => Value::Real(*v),
            Some(_) => {
                return Err(format!(
                    "`{}` is a `let` of the sampler, not a parameter",
                    prm.name
                ))
            }
            None => ev
                .eval(
                    prm.value,
                    &Env {
                        sampler_params: params.clone(),
                        ..Env::default()
                    },
                )
                .map_err(|_| format!("cannot evaluate the parameter `{}`", prm.name))?,
        };
        params.push(v);
    }
    if let Some(unknown) = overrides
        .keys()
        .find(|k| !sampler.params.iter().any(|x| &x.name == *k))
    {
        return Err(format!(
            "sampler `{}` has no parameter `{unknown}`",
            sampler.name
        ));
    }
    Ok(params)
}

/// The times `sampler` walks with these parameter overrides, from the noise end to the data
/// end: its default grid without overrides, otherwise the grid rebuilt from the new
/// parameters exactly as the checker builds default grids.
pub fn sampler_grid(
    p: &Process,
    sampler: &str,
    overrides: &HashMap<String, f64>,
) -> Result<Vec<f64>, String> {
    let s = p
        .samplers
        .iter()
        .find(|s| s.name == sampler)
        .ok_or_else(|| format!("no sampler `{sampler}`"))?;
    if overrides.is_empty() {
        return Ok(s.default_grid.clone());
    }
    let params = param_values(p, s, overrides)?;
    grid_with(p, s, &params)
}

/// The grid of a sampler whose parameters were overridden: rebuild it from its definition.
fn grid_with(p: &Process, s: &crate::typed::Sampler, params: &[Value]) -> Result<Vec<f64>, String> {
    use crate::check::eval::{grid_times, GridKind};
    use crate::typed::Grid;
    let ev = Evaluator::new(p);
    let env = Env {
        sampler_params: params.to_vec(),
        ..Env::default()
    };
    // The grid as written and the parameters it was evaluated with, for messages.
    let grid_text = || {
        let grid = match &s.grid {
            Grid::All | Grid::List(_) => "list".into(),
            g => crate::explain::grid_name(p, g),
        };
        let at: Vec<String> = s
            .params
            .iter()
            .zip(params)
            .filter_map(|(prm, v)| match v {
                Value::Real(x) => Some(format!("{} = {x}", prm.name)),
                _ => None,
            })
            .collect();
        let at = if at.is_empty() {
            String::new()
        } else {
            format!(" at {}", at.join(", "))
        };
        (grid, at)
    };
    let steps = |n: crate::typed::ExprId| -> Result<usize, String> {
        let v = ev.real(n, &env).map_err(|_| {
            let (grid, at) = grid_text();
            format!(
                "sampler `{}`: cannot evaluate the number of steps of its grid `{grid}`{at}",
                s.name
            )
        })?;
        if v.fract() != 0.0 || !(1.0..=1e6).contains(&v) {
            let (grid, at) = grid_text();
            return Err(format!(
                "sampler `{}`: the grid `{grid}` has {v} steps{at}, but the number of steps must be a whole number from 1 to 10^6",
                s.name
            ));
        }
        Ok(v as usize)
    };
    let times = match &s.grid {
        Grid::List(e) => {
            // A comprehension's range is expanded at compile time with the parameters'
            // defaults, so other parameters can move its points but not add or drop any.
            let defaults = param_values(p, s, &HashMap::new())?;
            if let Some(i) = s.params.iter().position(|x| x.name == "steps") {
                if params[i] != defaults[i] {
                    return Err(format!(
                        "sampler `{}`'s grid is a list of {} times, fixed when the spec was checked: it cannot take another number of steps (a grid written as uniform(steps), quadratic(steps), logsnr(steps) or karras(steps, rho) can)",
                        s.name,
                        s.default_grid.len()
                    ));
                }
            }
            match ev.eval(*e, &env) {
                Ok(Value::Vec(v)) => {
                    let ends = [p.time.lo, p.time.hi, p.time.data_at];
                    let lo = ends.iter().cloned().fold(f64::INFINITY, f64::min);
                    let hi = ends.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    if v.iter().any(|t| !(lo..=hi).contains(t)) {
                        return Err(format!(
                            "sampler `{}`'s grid with these parameters leaves the time domain [{lo}, {hi}]: an explicit grid keeps the number of points of its defaults, so pass the grid itself",
                            s.name
                        ));
                    }
                    v
                }
                _ => return Err("cannot evaluate the grid".into()),
            }
        }
        Grid::All => return Ok(s.default_grid.clone()),
        Grid::Uniform(n) => grid_times(p, GridKind::Uniform, steps(*n)?)?,
        Grid::Quadratic(n) => grid_times(p, GridKind::Quadratic, steps(*n)?)?,
        Grid::LogSnr(n) => grid_times(p, GridKind::LogSnr, steps(*n)?)?,
        Grid::Linspace(n) => grid_times(p, GridKind::Linspace, steps(*n)?)?,
        Grid::Karras {
            steps: n,
            rho,
            sigma_min,
        } => {
            let rho = ev
                .real(*rho, &env)
                .ok()
                .filter(|r| *r > 0.0)
                .ok_or_else(|| format!("sampler `{}`: rho must be a positive number", s.name))?;
            let sigma_min = match sigma_min {
                None => None,
                Some(m) => Some(ev.real(*m, &env).ok().filter(|m| *m > 0.0).ok_or_else(|| {
                    format!("sampler `{}`: sigma_min must be a positive number", s.name)
                })?),
            };
            grid_times(p, GridKind::Karras { rho, sigma_min }, steps(*n)?)?
        }
    };
    // In discrete time, more steps than times repeat a time.
    let toward = if p.time.ascending() { 1.0 } else { -1.0 };
    if let Some(w) = times.windows(2).find(|w| (w[1] - w[0]) * toward <= 0.0) {
        return Err(format!(
            "sampler `{}` with {} steps does not move toward the data between t = {} and t = {}: the process has {} time steps",
            s.name,
            times.len() - 1,
            w[0],
            w[1],
            (p.time.data_at - p.time.noise_end()).abs()
        ));
    }
    Ok(times)
}

/// A tensor's elements as a value (moved, not copied).
fn val_from_tensor(t: Tensor, elem: Elem) -> Val {
    match (t.data, elem) {
        (Data::F32(v), Elem::Vec(k)) => Val::V(k as usize, Shared::new(v)),
        (Data::F32(v), _) => Val::R(Shared::new(v)),
        (Data::Bool(v), _) => Val::B(Shared::new(v)),
        (Data::Class(v), _) => Val::C(Shared::new(v)),
    }
}

impl Ctx<'_> {
    /// Move the host environment to a step (coefficients are recomputed when read).
    fn at_step(
        &mut self,
        step: u32,
        t: f64,
        s: Option<f64>,
        r: Option<f64>,
        k: Option<(usize, usize)>,
    ) {
        self.env.t = t;
        self.env.s = s;
        self.env.r = r;
        self.env.step = k;
        self.step = step;
        self.coefs.iter_mut().for_each(|c| *c = None);
    }

    fn exec(&mut self, ops: &[crate::ir::Op], denoiser: &mut dyn Denoiser) -> Result<(), String> {
        let mut i = 0;
        while i < ops.len() {
            // Each op reads the state as it is now.
            self.vals.iter_mut().for_each(|v| *v = None);
            if let Some(a) = self.accel {
                if let Some(n) = a.ops(self, ops, i) {
                    i += n?;
                    continue;
                }
            }
            self.exec_op(&ops[i], denoiser)?;
            i += 1;
        }
        Ok(())
    }

    /// Run one statement in the interpreter.
    pub(crate) fn exec_op(
        &mut self,
        op: &crate::ir::Op,
        denoiser: &mut dyn Denoiser,
    ) -> Result<(), String> {
        use crate::ir::Op;
        {
            self.vals.iter_mut().for_each(|v| *v = None);
            match op {
                Op::Slot { slot, node } => {
                    let v = self.eval(*node)?;
                    self.slots[*slot as usize] = Some(v);
                }
                Op::Set { field, node } => {
                    let v = self.eval(*node)?;
                    self.check_finite(&v, &self.p.fields[*field as usize].name)?;
                    self.state[*field as usize] = Some(v);
                }
                Op::Call {
                    call,
                    net,
                    args,
                    fields,
                    time,
                } => {
                    let mut inputs = Vec::new();
                    for a in args {
                        let v = self.eval(*a)?;
                        inputs.push(self.node_tensor(*a, v)?);
                    }
                    let mut raw = Vec::new();
                    for (f, node) in fields {
                        let v = self.eval(*node)?;
                        raw.push((*f as usize, self.node_tensor(*node, v)?));
                    }
                    let time = match time {
                        Some(e) => Some(
                            Evaluator::new(self.p)
                                .real(*e, &self.env)
                                .map_err(|_| self.bug("a network call's time"))?,
                        ),
                        None => None,
                    };
                    let nc = NetCall {
                        net: *net as usize,
                        inputs: &inputs,
                        fields: &raw,
                        time,
                        masks: &self.call.masks,
                    };
                    let outs = denoiser.denoise(self.p, &nc)?;
                    let n = &self.p.networks[*net as usize];
                    if outs.len() != n.outputs.len() {
                        return Err(format!(
                            "the denoiser returned {} outputs for `{}`, which has {}",
                            outs.len(),
                            n.name,
                            n.outputs.len()
                        ));
                    }
                    let mut vals = Vec::new();
                    for (t, o) in outs.into_iter().zip(&n.outputs) {
                        let f = &self.p.fields[o.field.index()];
                        let want = self.field_tensor_shape(f, o.ty.elem().unwrap_or(Elem::Real));
                        if t.shape != want {
                            return Err(format!(
                                "the denoiser's `{}.{}` has shape {:?}, expected {want:?}",
                                n.name, f.name, t.shape
                            ));
                        }
                        let mut v = val_from_tensor(t, o.ty.elem().unwrap_or(Elem::Real));
                        if f.shape.sym {
                            // A symmetric field's prediction is read on the upper triangle and mirrored.
                            self.symmetrize(&mut v, f);
                        }
                        self.check_finite(&v, &format!("{}.{}", n.name, f.name))?;
                        vals.push(v);
                    }
                    let c = *call as usize;
                    if self.net.len() <= c {
                        self.net.resize(c + 1, Vec::new());
                    }
                    self.net[c] = vals;
                }
                Op::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    let branch = match self.eval(*cond)? {
                        Val::B(b) => b[0],
                        _ => return Err(self.bug("a branch condition")),
                    };
                    self.exec(if branch { then } else { otherwise }, denoiser)?;
                }
                Op::Repeat { count, body } => {
                    let n = elem(&self.eval(*count)?, 0, 0);
                    if !(n >= 0.0 && n.fract() == 0.0) {
                        return Err(format!("`repeat` count {n} is not a whole number"));
                    }
                    let most = crate::limits::MAX_REPEAT;
                    if n > most as f32 {
                        return Err(format!(
                            "`repeat` count {n} is over the limit of {most} iterations (each draws from its own 2^40 range of the element counter)"
                        ));
                    }
                    let saved = self.draw_offset;
                    for j in 0..n as u64 {
                        // Inner iterations draw from disjoint ranges of the element counter.
                        self.draw_offset = saved
                            .checked_add((j + 1) << 40)
                            .ok_or("nested `repeat`s draw past the element counter")?;
                        self.exec(body, denoiser)?;
                    }
                    self.draw_offset = saved;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn check_finite(&self, v: &Val, name: &str) -> Result<(), String> {
        let data = match v {
            Val::R(x) | Val::V(_, x) => x,
            _ => return Ok(()),
        };
        match data.iter().position(|x| !x.is_finite()) {
            Some(i) => Err(format!(
                "`{name}` became {} at flat index {i} (t = {}, s = {:?})",
                data[i], self.env.t, self.env.s
            )),
            None => Ok(()),
        }
    }

    fn field_tensor_shape(&self, f: &crate::typed::Field, elem: Elem) -> Vec<usize> {
        let mut shape = vec![self.call.batch];
        shape.extend(
            f.shape
                .dims
                .iter()
                .map(|d| self.sizes[&self.p.dims[d.index()].name]),
        );
        if let Elem::Vec(k) = elem {
            shape.push(k as usize);
        }
        shape
    }

    /// Mirror the upper triangle of a `[n, n]` value onto the lower one and empty the diagonal.
    fn symmetrize(&self, v: &mut Val, f: &crate::typed::Field) {
        let n = self.sizes[&self.p.dims[f.shape.dims[0].index()].name];
        let (k, data): (usize, &mut Vec<f32>) = match v {
            Val::R(x) => (1, Shared::make_mut(x)),
            Val::V(k, x) => (*k, Shared::make_mut(x)),
            _ => return,
        };
        mirror_upper(self.call.batch, n, k, data);
    }

    fn node_tensor(&self, id: NodeId, v: Val) -> Result<Tensor, String> {
        self.tensor(id, v, "a network input")
    }

    fn field_tensor(&self, v: Val, f: &crate::typed::Field) -> Result<Tensor, String> {
        if matches!(v, Val::M(..)) {
            return Err(self.bug("a matrix-valued field"));
        }
        let mut shape = vec![self.call.batch];
        shape.extend(
            f.shape
                .dims
                .iter()
                .map(|d| self.sizes[&self.p.dims[d.index()].name]),
        );
        Ok(to_tensor(shape, v))
    }
}

impl Tensor {
    /// A tensor from an ndarray array of reals (any memory layout).
    pub fn from_f32_array(a: &ndarray::ArrayD<f32>) -> Tensor {
        Tensor {
            shape: a.shape().to_vec(),
            data: Data::F32(a.iter().cloned().collect()),
        }
    }

    /// A tensor from an ndarray array of class indices.
    pub fn from_class_array(a: &ndarray::ArrayD<u32>) -> Tensor {
        Tensor {
            shape: a.shape().to_vec(),
            data: Data::Class(a.iter().cloned().collect()),
        }
    }

    /// A tensor from an ndarray array of bools.
    pub fn from_bool_array(a: &ndarray::ArrayD<bool>) -> Tensor {
        Tensor {
            shape: a.shape().to_vec(),
            data: Data::Bool(a.iter().cloned().collect()),
        }
    }

    /// The tensor as an ndarray array, when it holds reals.
    pub fn to_f32_array(&self) -> Option<ndarray::ArrayD<f32>> {
        match &self.data {
            Data::F32(v) => ndarray::ArrayD::from_shape_vec(self.shape.clone(), v.clone()).ok(),
            _ => None,
        }
    }

    /// The tensor as an ndarray array, when it holds class indices.
    pub fn to_class_array(&self) -> Option<ndarray::ArrayD<u32>> {
        match &self.data {
            Data::Class(v) => ndarray::ArrayD::from_shape_vec(self.shape.clone(), v.clone()).ok(),
            _ => None,
        }
    }

    /// The tensor as an ndarray array, when it holds bools.
    pub fn to_bool_array(&self) -> Option<ndarray::ArrayD<bool>> {
        match &self.data {
            Data::Bool(v) => ndarray::ArrayD::from_shape_vec(self.shape.clone(), v.clone()).ok(),
            _ => None,
        }
    }
}
