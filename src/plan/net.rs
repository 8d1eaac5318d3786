//! The network of a whole run: `NetFn`, which a runner that replays a sampler's call
//! sequences (the CPU's `StepRunner::sample`, the GPU's `SampleRunner`) calls for each network
//! evaluation, the inputs it hands over (`NetInput`, `NetValues`) and the outputs it reads
//! where they lie (`NetArray`); and the checks both runners make of what comes back.

use crate::interp::Tensor;
use crate::typed::Process;
use std::sync::Arc;

/// A network output the runner reads where it lies: its shape (batch first) and values in C
/// order. It is kept until the step that called the network ends.
pub trait NetArray {
    fn shape(&self) -> &[usize];
    fn values(&self) -> &[f32];
}

impl NetArray for Tensor {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn values(&self) -> &[f32] {
        self.f32s().unwrap_or(&[])
    }
}

/// A network input handed to a `NetFn`: its shape (batch first; `[]` for a time) and values.
/// The runner does not write these values again, so the callee may keep them.
#[derive(Clone, Debug)]
pub struct NetInput {
    pub shape: Vec<usize>,
    pub values: NetValues,
}

/// A network input's values: reals, classes or bools (one byte each, 0 or 1), or, for a
/// `NetFn` that asks for it (`NetFn::takes_given`), the caller's own state field of that name,
/// unchanged since it was given (`StepInputs::state`), which the callee hands on as it has it.
#[derive(Clone, Debug)]
pub enum NetValues {
    Reals(Arc<Vec<f32>>),
    Classes(Arc<Vec<u32>>),
    Bools(Arc<Vec<u8>>),
    Given(String),
}

/// The network of a whole run (`StepRunner::sample`): network `net` of the process, called on
/// its declared inputs in order; returns one array per output, shaped like its field (batch
/// first, a class axis for probabilities).
pub trait NetFn {
    fn call(
        &mut self,
        p: &Process,
        net: usize,
        inputs: &[NetInput],
    ) -> Result<Vec<Box<dyn NetArray>>, String>;

    /// Whether an input that is the state field `name` as the caller gave it comes as
    /// `NetValues::Given` (the callee has the caller's array) rather than a copy.
    fn takes_given(&self, _name: &str) -> bool {
        false
    }
}

/// Check the number of outputs a `NetFn` returned for network `net` against its outputs.
pub(crate) fn check_count(net: &str, got: usize, want: usize) -> Result<(), String> {
    if got != want {
        return Err(format!(
            "the denoiser returned {got} outputs for `{net}`, which has {want}"
        ));
    }
    Ok(())
}

/// Check a returned output `name` (`NET.FIELD`) against the shape and length of its buffer.
pub(crate) fn check_returned(
    name: &str,
    a: &dyn NetArray,
    shape: &[usize],
    len: usize,
) -> Result<(), String> {
    if a.shape() != shape {
        return Err(format!(
            "the denoiser's `{name}` has shape {:?}, expected {shape:?}",
            a.shape()
        ));
    }
    check_len(name, a.values().len(), len)
}

/// Check the number of values a network output `name` holds.
pub(crate) fn check_len(name: &str, got: usize, want: usize) -> Result<(), String> {
    if got != want {
        return Err(format!("`{name}` holds {got} values, expected {want}"));
    }
    Ok(())
}

/// A network's output must be finite, as the interpreter requires of every denoiser (`t` and
/// `s` name the step in the message); the scan runs in up to `threads` pieces.
pub(crate) fn check_finite(
    name: &str,
    v: &[f32],
    threads: usize,
    t: f64,
    s: Option<f64>,
) -> Result<(), String> {
    if let Some(i) = first_nonfinite(v, threads) {
        return Err(format!(
            "`{name}` became {} at flat index {i} (t = {t}, s = {s:?})",
            v[i]
        ));
    }
    Ok(())
}

/// The index of the first non-finite value, scanning in up to `threads` pieces on `rayon`'s
/// pool without branching per element (a step's check of its state costs a small part of the
/// step).
pub(crate) fn first_nonfinite(v: &[f32], threads: usize) -> Option<usize> {
    use rayon::prelude::*;
    fn any_bad(x: &[f32]) -> bool {
        x.chunks(1024)
            .any(|c| c.iter().fold(false, |a, x| a | !x.is_finite()))
    }
    let threads = threads.min(v.len() / (1 << 16)).max(1);
    let bad = if threads == 1 {
        any_bad(v)
    } else {
        v.par_chunks(v.len().div_ceil(threads)).any(any_bad)
    };
    if bad {
        v.iter().position(|x| !x.is_finite())
    } else {
        None
    }
}
