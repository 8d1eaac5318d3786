//! Binding a kernel's buffers for one launch, and keeping its results: what the CPU and GPU
//! runners share. The host evaluates every input the kernel reads (checking that each holds
//! what the kernel expects), computes the coefficient slots, and hands the launch to the
//! backend; the backend returns its status word and one value per output buffer, which `keep`
//! stores where the program expects them.

use crate::interp::{Accel, Call, Ctx, Data, Denoiser, NetCall, Shared, Tensor, Val};
use crate::ir::{Extent, Node, NodeId, Op, Program};
use crate::kernel::build::{self, op_key, Plan};
use crate::kernel::{BufSrc, Kernel, Store, Target, FAIL_CLASS, FAIL_INDEX, FAIL_NONFINITE};
use crate::typed::Process;

/// A backend that runs a plan's kernels: it is the interpreter's `Accel` for every node and
/// statement run the plan compiled, and leaves the host's part to the interpreter.
pub(crate) trait PlanRunner {
    /// The backend's name in error messages.
    const BACKEND: &'static str;
    fn plan(&self) -> &Plan;
    /// Run kernel `k` of the plan (binding it with `launch`).
    fn run_kernel(&self, cx: &mut Ctx, k: usize) -> Result<(), String>;
    /// Run an entry (a prior, from a sampler's start) on the same backend.
    fn run_entry(&self, p: &Process, prog: &Program, call: &Call) -> Result<Vec<Tensor>, String>;
}

/// Statements a run leaves to the host never call networks.
struct NoNetwork;

impl Denoiser for NoNetwork {
    fn denoise(&mut self, _: &Process, _: &NetCall) -> Result<Vec<Tensor>, String> {
        Err("internal error: a host statement of a kernel run called a network".into())
    }
}

impl<R: PlanRunner> Accel for R {
    fn node(&self, cx: &mut Ctx, id: NodeId) -> Option<Result<(), String>> {
        if let Some(k) = self.plan().by_node.get(&id) {
            return Some(self.run_kernel(cx, *k));
        }
        let info = cx.prog.node(id);
        if info.extent == Extent::Uniform || build::is_leaf(&info.node) {
            return None;
        }
        Some(Err(
            cx.bug(&format!("a node without a kernel on {}", R::BACKEND))
        ))
    }

    fn ops(&self, cx: &mut Ctx, ops: &[Op], at: usize) -> Option<Result<usize, String>> {
        let key = op_key(&ops[at])?;
        let Some(g) = self.plan().groups.get(&key) else {
            return Some(Err(
                cx.bug(&format!("a statement without a kernel on {}", R::BACKEND))
            ));
        };
        let mut run = || -> Result<usize, String> {
            for h in &g.host {
                cx.exec_op(&ops[at + h], &mut NoNetwork)?;
            }
            if let Some(k) = g.kernel {
                self.run_kernel(cx, k)?;
            }
            Ok(g.len)
        };
        Some(run())
    }

    fn entry(&self, p: &Process, prog: &Program, call: &Call) -> Result<Vec<Tensor>, String> {
        self.run_entry(p, prog, call)
    }
}

/// What a buffer holds for a launch.
pub(crate) enum Arg<'a> {
    F32(&'a [f32]),
    U32(&'a [u32]),
    Bool(&'a [bool]),
    /// An output of `n` values, filled by the kernel.
    Out(usize),
}

impl Arg<'_> {
    /// Values held (or to be written).
    pub(crate) fn len(&self) -> usize {
        match self {
            Arg::F32(x) => x.len(),
            Arg::U32(x) => x.len(),
            Arg::Bool(x) => x.len(),
            Arg::Out(n) => *n,
        }
    }
}

/// One launch: everything a backend needs to run kernel `kernel`.
pub(crate) struct Launch<'a> {
    pub(crate) sizes: Vec<u64>,
    pub(crate) batch: usize,
    /// Flat elements: the batch times the kernel's domain.
    pub(crate) total: usize,
    pub(crate) coefs: Vec<f32>,
    pub(crate) seed: u64,
    pub(crate) step: u64,
    pub(crate) offset: u64,
    /// One per buffer, in the kernel's order.
    pub(crate) args: Vec<Arg<'a>>,
    /// Per buffer: the same value for every sample (not split with the batch).
    pub(crate) uniform: Vec<bool>,
    /// The buffers hold samples `base..base + batch` of a larger batch: the kernel runs over
    /// those samples' flat elements (so that its draws are theirs), and each buffer that is
    /// split with the batch starts at sample `base`.
    pub(crate) base: usize,
}

impl Launch<'_> {
    /// Values of buffer `j` per sample (0 for a buffer the same for every sample).
    pub(crate) fn per_sample(&self, j: usize) -> usize {
        if self.uniform[j] || self.batch == 0 {
            0
        } else {
            self.args[j].len() / self.batch
        }
    }
}

/// Bind kernel `kern`'s buffers in `cx` and call `run` with the launch; `run` returns the status
/// word and the value of each output buffer (by buffer index), which are then kept in `cx`.
pub(crate) fn launch(
    cx: &mut Ctx,
    kern: &Kernel,
    run: impl FnOnce(&Launch) -> Result<(u32, Vec<(usize, Val)>), String>,
) -> Result<(), String> {
    let batch = cx.call.batch;
    let sizes: Vec<u64> =
        kern.dims
            .iter()
            .map(|d| {
                cx.sizes.get(d).map(|n| *n as u64).ok_or_else(|| {
                    format!("the size of `{d}` is not known: give it with --set {d}=N")
                })
            })
            .collect::<Result<_, _>>()?;
    let per: usize = kern
        .domain
        .iter()
        .map(|d| sizes[*d as usize] as usize)
        .product();
    let total = batch * per;
    // Inputs not already held are evaluated first (which needs `cx` mutably); then every buffer
    // is borrowed in place.
    let mut owned: Vec<Option<Val>> = (0..kern.bufs.len()).map(|_| None).collect();
    let mut want = vec![0usize; kern.bufs.len()];
    let mut uniform = vec![false; kern.bufs.len()];
    for (j, b) in kern.bufs.iter().enumerate() {
        if let BufSrc::Node(id) = &b.src {
            let info = cx.prog.node(*id);
            uniform[j] = info.extent == Extent::Uniform;
            want[j] = match info.extent {
                Extent::Uniform => 1,
                Extent::Sample => batch,
                Extent::Element => batch * cx.per_sample(&info.shape.clone())?,
            } * b.width as usize;
            if held(cx, *id).is_none() {
                owned[j] = Some(cx.eval(*id)?);
            }
        }
    }
    let mut coefs = Vec::with_capacity(kern.coefs.len());
    for (c, q) in &kern.coefs {
        let v = cx.coef(*c)?;
        let q = *q as usize;
        coefs.push(match &v {
            Val::R(x) => x[0],
            Val::V(_, x) | Val::M(_, x) => x[q],
            Val::B(x) => x[0] as u8 as f32,
            Val::C(x) => x[0] as f32,
        });
    }
    let mut args = Vec::with_capacity(kern.bufs.len());
    for (j, b) in kern.bufs.iter().enumerate() {
        let arg = match &b.src {
            BufSrc::Node(id) => {
                let v = match &owned[j] {
                    Some(v) => v,
                    None => held(cx, *id).ok_or_else(|| cx.bug("a held input went missing"))?,
                };
                let (arg, ok) = match v {
                    Val::R(x) | Val::V(_, x) => (Arg::F32(x), b.store == Store::F32),
                    Val::C(x) => (Arg::U32(x), b.store == Store::U32),
                    Val::B(x) => (Arg::Bool(x), b.store == Store::U8),
                    Val::M(_, x) => (Arg::F32(x), false),
                };
                if arg.len() != want[j] || !ok {
                    return Err(cx.bug(&format!(
                        "kernel `{}` buffer {j} holds {} values, expected {}",
                        kern.name,
                        arg.len(),
                        want[j]
                    )));
                }
                arg
            }
            BufSrc::Draw(site) => {
                let name = cx.prog.draws[*site as usize].input();
                let t = cx
                    .call
                    .draws
                    .get(name)
                    .ok_or_else(|| cx.bug("a supplied draw went missing"))?;
                let Data::F32(x) = &t.data else {
                    return Err(format!("supplied `{name}` must hold reals"));
                };
                let n = total * b.width as usize;
                if x.len() < n {
                    return Err(format!(
                        "supplied `{name}` holds {} values, expected {n}",
                        x.len()
                    ));
                }
                Arg::F32(&x[..n])
            }
            BufSrc::Mask(m) => {
                let name = &cx.p.masks[*m as usize].name;
                let t = cx
                    .call
                    .masks
                    .get(name)
                    .ok_or_else(|| cx.bug("a mask went missing"))?;
                let Data::Bool(x) = &t.data else {
                    return Err(format!("mask `{name}` must hold bools"));
                };
                Arg::Bool(x)
            }
            BufSrc::Out(_) => Arg::Out(total * b.width as usize),
        };
        args.push(arg);
    }
    let l = Launch {
        sizes,
        batch,
        total,
        coefs,
        seed: cx.call.seed,
        step: cx.step as u64,
        offset: cx.draw_offset,
        args,
        uniform,
        base: cx.call.sample_base,
    };
    let (status, outs) = run(&l)?;
    drop(l);
    keep(cx, kern, status, outs)
}

/// Turn a launch's status word into an error, and store its outputs.
fn keep(cx: &mut Ctx, kern: &Kernel, status: u32, outs: Vec<(usize, Val)>) -> Result<(), String> {
    if status & FAIL_INDEX != 0 {
        return Err(format!(
            "{}: an index is outside its vector's range",
            cx.prog.name
        ));
    }
    if status & FAIL_CLASS != 0 {
        return Err(format!("{}: a class is outside its range", cx.prog.name));
    }
    for (j, v) in outs {
        match kern.bufs[j].src {
            BufSrc::Out(Target::Node(id)) => cx.vals[id.index()] = Some(v),
            BufSrc::Out(Target::Slot(s)) => cx.slots[s as usize] = Some(v),
            BufSrc::Out(Target::Field(f)) => {
                // The kernel flags a non-finite value; the host names the first one.
                if status & FAIL_NONFINITE != 0 {
                    cx.check_finite(&v, &cx.p.fields[f as usize].name)?;
                }
                cx.state[f as usize] = Some(v);
            }
            _ => return Err(cx.bug("a kernel output without a target")),
        }
    }
    Ok(())
}

/// An output buffer's values as the program holds them.
pub(crate) fn out_val(width: u32, x: Vec<f32>) -> Val {
    if width > 1 {
        Val::V(width as usize, Shared::new(x))
    } else {
        Val::R(Shared::new(x))
    }
}

/// A node's value where the context already holds it, without evaluating (or copying) it.
fn held<'c>(cx: &'c Ctx, id: NodeId) -> Option<&'c Val> {
    if let Some(v) = &cx.vals[id.index()] {
        return Some(v);
    }
    match cx.prog.node(id).node {
        Node::State(f) => cx.state.get(f as usize)?.as_ref(),
        Node::Slot(s) => cx.slots.get(s as usize)?.as_ref(),
        Node::Prev(s) => cx.prev.get(s as usize)?.as_ref(),
        Node::NetOut { call, output } => cx.net.get(call as usize)?.get(output as usize),
        _ => None,
    }
}
