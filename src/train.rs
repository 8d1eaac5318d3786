//! What a training loop calls once per step, on any backend: `batch` draws each sample's time
//! (`sample_t`, or the loss's own distribution `sample_t.LOSS`) and noise (`forward`) and computes what the network is called with
//! (`net_inputs.NET`); the caller runs its own network on those inputs; `loss` then returns the
//! loss per sample and its gradient with respect to every network output (`loss.NAME`).
//! The network itself is never diffc's.

use crate::entries::{EntryKind, Extent};
use crate::interp::{Call, Tensor};
use crate::ir::lower::lower;
use crate::ir::Program;
use crate::typed::Process;
use std::collections::HashMap;

/// Where entries run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// The reference interpreter.
    #[default]
    Interp,
    /// Native code (Cranelift JIT).
    Cpu,
    /// WGSL through wgpu.
    Gpu,
}

/// Run one entry program on a backend.
pub fn run(
    backend: Backend,
    p: &Process,
    prog: &Program,
    call: &Call,
) -> Result<Vec<Tensor>, String> {
    match backend {
        Backend::Interp => crate::interp::run(p, prog, call),
        Backend::Cpu => crate::cpu::run(p, prog, call),
        Backend::Gpu => crate::gpu::run(p, prog, call),
    }
}

/// How a batch is drawn.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub seed: u64,
    /// The training step: the RNG step word of the batch's draws, so that every step of a run
    /// draws new times and noise from one seed.
    pub step: u32,
    pub backend: Backend,
    /// Sizes of dimensions not read off the data.
    pub sizes: HashMap<String, usize>,
    /// Node masks by name (`bool[batch, n]`).
    pub masks: HashMap<String, Tensor>,
    /// Values of the process's `param`s by name, in place of their defaults.
    pub params: HashMap<String, Tensor>,
}

/// One training batch: everything the loss reads besides the network's outputs, and the
/// network's inputs.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The loss (`loss.NAME`).
    pub loss: String,
    /// One time per sample.
    pub t: Tensor,
    /// The importance weight of each sample, `1 / (N · P(t))`, when the loss draws its times
    /// from a `Weighted` distribution (`sample_t.LOSS`): a mean of `weight · loss` estimates the
    /// loss averaged over uniform times. `None` for other distributions and for supplied times.
    pub weight: Option<Tensor>,
    /// The loss entry's inputs other than network outputs, by port name (`x_0`, `x_t`, `eps`,
    /// `t`, conditioning fields): the targets the loss compares the network with.
    pub targets: HashMap<String, Tensor>,
    /// For each network the loss reads, in order: its name and what it is called with (its
    /// declared inputs, in declaration order, as `net_inputs.NET` returns them).
    pub net_inputs: Vec<(String, Vec<Tensor>)>,
}

fn loss_program(p: &Process, loss: &str) -> Result<Program, String> {
    let name = if loss.starts_with("loss.") {
        loss.to_string()
    } else {
        format!("loss.{loss}")
    };
    lower(p, &name)
}

/// Draw a batch for `loss` from clean data (`data`: the forward entry's inputs by name, such
/// as `x_0`, batch first; a time per sample under the time's name replaces `sample_t`).
pub fn batch(
    p: &Process,
    loss: &str,
    data: &HashMap<String, Tensor>,
    o: &Options,
) -> Result<Batch, String> {
    let lprog = loss_program(p, loss)?;
    let fwd = lower(p, "forward")?;
    let mut count = None;
    for port in &fwd.inputs {
        if let (Extent::Field(_), Some(x)) = (&port.extent, data.get(&port.name)) {
            count.get_or_insert(x.shape.first().copied().unwrap_or(0));
        }
    }
    let batch = count.ok_or_else(|| {
        let names: Vec<&str> = fwd
            .inputs
            .iter()
            .filter(|x| matches!(x.extent, Extent::Field(_)))
            .map(|x| x.name.as_str())
            .collect();
        format!(
            "a training batch needs the clean data: {}",
            names.join(", ")
        )
    })?;
    let call = |inputs: HashMap<String, Tensor>| Call {
        seed: o.seed,
        step: o.step,
        batch,
        sizes: o.sizes.clone(),
        inputs,
        draws: HashMap::new(),
        masks: o.masks.clone(),
        sample_base: 0,
        params: o.params.clone(),
    };
    let tname = p.time.name.clone();
    let (t, weight) = match data.get(&tname) {
        Some(t) => (t.clone(), None),
        None => {
            // The loss's own time distribution when it declares one (`with t ~ …`).
            let lname = lprog.name.strip_prefix("loss.").unwrap_or(&lprog.name);
            let declared = p
                .losses
                .iter()
                .any(|l| l.name == lname && l.time_dist.is_some());
            let entry = if declared {
                format!("sample_t.{lname}")
            } else {
                "sample_t".to_string()
            };
            let prog = lower(p, &entry)?;
            let mut out = run(o.backend, p, &prog, &call(HashMap::new()))?.into_iter();
            let t = out.next().ok_or("`sample_t` returned no time")?;
            (t, out.next())
        }
    };
    // Noise the data at those times.
    let mut known: HashMap<String, Tensor> = data.clone();
    known.insert(tname.clone(), t.clone());
    let inputs = inputs_of(&fwd, &known, "`forward`")?;
    let noised = run(o.backend, p, &fwd, &call(inputs))?;
    for (port, v) in fwd.outputs.iter().zip(noised) {
        known.insert(port.name.clone(), v);
    }
    let mut targets = HashMap::new();
    let mut nets: Vec<String> = Vec::new();
    for port in &lprog.inputs {
        if let Some((net, _)) = port.name.split_once('.') {
            if !nets.iter().any(|n| n == net) {
                nets.push(net.to_string());
            }
            continue;
        }
        if port.name == "seed" {
            continue;
        }
        let v = known.get(&port.name).ok_or_else(|| {
            format!(
                "`{}` reads `{}`, which neither the data nor `forward` gives",
                lprog.name, port.name
            )
        })?;
        targets.insert(port.name.clone(), v.clone());
    }
    let mut net_inputs = Vec::new();
    for net in nets {
        let prog = lower(p, &format!("net_inputs.{net}"))?;
        let inputs = inputs_of(&prog, &known, &format!("network `{net}`"))?;
        net_inputs.push((net, run(o.backend, p, &prog, &call(inputs))?));
    }
    Ok(Batch {
        loss: lprog.name.clone(),
        t,
        weight,
        targets,
        net_inputs,
    })
}

/// The inputs of `prog` (but its seed) from the values known so far; `who` names it in errors.
fn inputs_of(
    prog: &Program,
    known: &HashMap<String, Tensor>,
    who: &str,
) -> Result<HashMap<String, Tensor>, String> {
    prog.inputs
        .iter()
        .filter(|x| x.name != "seed")
        .map(|x| {
            known
                .get(&x.name)
                .map(|v| (x.name.clone(), v.clone()))
                .ok_or_else(|| {
                    format!(
                        "{who} reads `{}`, which neither the data nor `forward` gives",
                        x.name
                    )
                })
        })
        .collect()
}

/// The loss per sample of a batch given the network's outputs (`NET.FIELD`, shaped like the
/// field, with a class axis for probabilities), and the gradient of each sample's loss with
/// respect to each output (`d_NET.FIELD`).
pub fn loss(
    p: &Process,
    b: &Batch,
    outputs: &HashMap<String, Tensor>,
    o: &Options,
) -> Result<(Tensor, HashMap<String, Tensor>), String> {
    let prog = loss_program(p, &b.loss)?;
    debug_assert_eq!(prog.kind, EntryKind::Loss);
    let mut inputs = b.targets.clone();
    for port in &prog.inputs {
        if port.name.contains('.') {
            let v = outputs.get(&port.name).ok_or_else(|| {
                format!("`{}` needs the network's output `{}`", prog.name, port.name)
            })?;
            inputs.insert(port.name.clone(), v.clone());
        }
    }
    let call = Call {
        seed: o.seed,
        step: o.step,
        batch: b.t.shape.first().copied().unwrap_or(1),
        sizes: o.sizes.clone(),
        inputs,
        draws: HashMap::new(),
        masks: o.masks.clone(),
        sample_base: 0,
        params: o.params.clone(),
    };
    let mut out = run(o.backend, p, &prog, &call)?;
    let value = out.remove(0);
    let grads = prog.outputs[1..]
        .iter()
        .map(|x| x.name.clone())
        .zip(out)
        .collect();
    Ok((value, grads))
}
