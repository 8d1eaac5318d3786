//! What the runners that replay call sequences share: the walk of a sequence (`Runs`, which
//! each runner implements for its launches, network calls and copies), a cache of traces by
//! the host side of a call, the calls of a whole run's phases and their keys, the check that
//! every size a sequence uses is known, and the mirroring of a symmetric field's network
//! output.

use super::{Buf, CopyWhy, Event, Unit, Word, REPEAT_STRIDE};
use crate::interp::{SampleCall, SingleStep};
use crate::typed::Process;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What runs a call sequence: each backend's runner implements the three events, and `run`
/// walks a sequence, running an inner loop's body once per run at its index offset.
pub(crate) trait Runs {
    /// Added to every launch's index offset (the run of an inner loop).
    fn offset(&mut self) -> &mut u64;
    fn launch(
        &mut self,
        kernel: usize,
        bufs: &[Buf],
        slots: &[u32],
        word: Word,
        offset: u64,
    ) -> Result<(), String>;
    fn call(
        &mut self,
        net: usize,
        inputs: &[Buf],
        outputs: &[Buf],
        sym: &[Option<u32>],
    ) -> Result<(), String>;
    fn copy(&mut self, to: &Buf, from: &Buf, why: CopyWhy) -> Result<(), String>;

    fn run(&mut self, events: &[Event]) -> Result<(), String> {
        for e in events {
            match e {
                Event::Launch {
                    unit,
                    kernel,
                    bufs,
                    slots,
                    word,
                    offset,
                } => {
                    if *unit != 0 {
                        return Err("internal error: a call launched another unit's kernel".into());
                    }
                    self.launch(*kernel, bufs, slots, *word, *offset)?
                }
                Event::Call {
                    net,
                    inputs,
                    outputs,
                    sym,
                    ..
                } => self.call(*net as usize, inputs, outputs, sym)?,
                Event::Copy { to, from, why, .. } => self.copy(to, from, *why)?,
                Event::Repeat { count, body } => {
                    let saved = *self.offset();
                    for j in 0..*count as u64 {
                        *self.offset() = saved + j * REPEAT_STRIDE;
                        self.run(body)?;
                    }
                    *self.offset() = saved;
                }
            }
        }
        Ok(())
    }
}

/// A call sequence and the row of host values it reads.
pub(crate) type Traced = (Vec<Event>, Vec<f32>);

/// Traces kept per cache; a unit traced at more distinct points starts over.
const TRACE_CACHE: usize = 4096;

/// Call sequences by the host side of a call (a grid point or the scalar inputs, and params),
/// traced on first use.
#[derive(Default)]
pub(crate) struct TraceCache(Mutex<HashMap<String, Arc<Traced>>>);

impl TraceCache {
    /// The trace under `key`, recorded by `trace` when the cache does not hold it.
    pub(crate) fn get(
        &self,
        key: String,
        trace: impl FnOnce() -> Result<Traced, String>,
    ) -> Result<Arc<Traced>, String> {
        if let Some(t) = self.0.lock().map_err(|_| "a poisoned lock")?.get(&key) {
            return Ok(t.clone());
        }
        let t = Arc::new(trace()?);
        let mut cache = self.0.lock().map_err(|_| "a poisoned lock")?;
        if cache.len() >= TRACE_CACHE {
            cache.clear();
        }
        cache.insert(key, t.clone());
        Ok(t)
    }
}

/// The call of one phase of a whole run over `grid`: its start (`k` = `None`: the `init` block,
/// `stop_after` 0), step `k`, or the final map (`k` = the step count).
pub(crate) fn phase_call(
    call: &SampleCall,
    sizes: &HashMap<String, usize>,
    grid: &[f64],
    k: Option<usize>,
) -> SampleCall {
    let base = SampleCall {
        seed: call.seed,
        batch: call.batch,
        sizes: sizes.clone(),
        params: call.params.clone(),
        process_params: call.process_params.clone(),
        masks: call.masks.clone(),
        ..SampleCall::default()
    };
    let Some(k) = k else {
        return SampleCall {
            grid: Some(grid.to_vec()),
            stop_after: Some(0),
            ..base
        };
    };
    let n = grid.len() - 1;
    let last = k == n;
    SampleCall {
        grid: Some(if last {
            vec![grid[n], grid[n - 1]]
        } else {
            vec![grid[k], grid[k + 1]]
        }),
        single_step: Some(SingleStep {
            k,
            n,
            r: (k > 0 && !last).then(|| grid[k - 1]),
            prev: HashMap::new(),
        }),
        finalize_only: last,
        ..base
    }
}

/// The key of a sampler call's trace: everything on its host side (grid point, step, params).
pub(crate) fn trace_key(call: &SampleCall) -> String {
    let mut params: Vec<_> = call.params.iter().collect();
    params.sort_by(|a, b| a.0.cmp(b.0));
    let mut pparams: Vec<_> = call.process_params.iter().collect();
    pparams.sort_by(|a, b| a.0.cmp(b.0));
    let one = call.single_step.as_ref().map(|o| (o.k, o.n, o.r));
    format!(
        "{:?}",
        (
            &call.grid,
            one,
            call.finalize_only,
            call.stop_after,
            params,
            pparams
        )
    )
}

/// Every dimension a sequence's kernels and buffers use must have a size, as the interpreter
/// requires before it runs a kernel.
pub(crate) fn known_sizes(
    p: &Process,
    unit: &Unit,
    events: &[Event],
    sizes: &HashMap<String, usize>,
) -> Result<(), String> {
    for e in events {
        let (kernel_dims, bufs): (&[String], Vec<&Buf>) = match e {
            Event::Launch { kernel, bufs, .. } => {
                (&unit.plan.kernels[*kernel].dims, bufs.iter().collect())
            }
            Event::Call {
                inputs, outputs, ..
            } => (&[], inputs.iter().chain(outputs).collect()),
            Event::Copy { to, from, .. } => (&[], vec![to, from]),
            Event::Repeat { body, .. } => {
                known_sizes(p, unit, body, sizes)?;
                continue;
            }
        };
        let names = kernel_dims.iter().map(String::as_str).chain(
            bufs.iter()
                .flat_map(|b| b.dims.iter().map(|d| p.dims[*d as usize].name.as_str())),
        );
        for d in names {
            if !sizes.contains_key(d) {
                return Err(format!(
                    "the size of `{d}` is not known: give it with --set {d}=N"
                ));
            }
        }
    }
    Ok(())
}

/// `y` := `x` (`[batch, n, n, w]`) with its upper triangle mirrored onto the lower one and the
/// diagonal empty (a symmetric field's network output). Rows go in blocks of `B`: the block's
/// lower part is read from `x` as contiguous runs of its columns (a tiled transpose), and blocks
/// are split into up to `threads` parts on `rayon`'s pool.
pub(crate) fn mirror(x: &[f32], y: &mut [f32], n: usize, w: usize, threads: usize) {
    const B: usize = 16;
    let row = n * w;
    if row == 0 {
        return;
    }
    let fill = |first_row: usize, out: &mut [f32]| {
        for (r0, block) in (first_row..).step_by(B).zip(out.chunks_mut(B * row)) {
            let rows = block.len() / row;
            let (s, i0) = (r0 / n, r0 % n);
            let sample = &x[s * n * row..(s + 1) * n * row];
            for k in 0..rows {
                let i = i0 + k;
                let dst = &mut block[k * row..(k + 1) * row];
                dst[(i + 1) * w..].copy_from_slice(&sample[i * row + (i + 1) * w..(i + 1) * row]);
                dst[i * w..(i + 1) * w].fill(0.0);
            }
            // Below the diagonal: y[i, j] = x[j, i] for j < i, read along row j of `x`.
            for j in 0..(i0 + rows).saturating_sub(1) {
                let src = &sample[j * row..(j + 1) * row];
                for k in 0..rows {
                    let i = i0 + k;
                    if j < i {
                        block[k * row + j * w..k * row + (j + 1) * w]
                            .copy_from_slice(&src[i * w..(i + 1) * w]);
                    }
                }
            }
        }
    };
    // Blocks never straddle two samples: each part takes whole samples' worth of blocks
    // when it can, else blocks of one sample (n a multiple of B or not, a block ends at a
    // sample's last row).
    let rows_total = y.len() / row;
    let blocks: Vec<(usize, usize)> = (0..rows_total / n.max(1))
        .flat_map(|s| (0..n).step_by(B).map(move |i| (s * n + i, (n - i).min(B))))
        .collect();
    let threads = threads.min(y.len() / (1 << 16)).max(1);
    let per = blocks.len().div_ceil(threads);
    let mut rest: &mut [f32] = y;
    // A part of `y` and the blocks (first row, rows) it fills.
    type Job<'a> = (&'a mut [f32], &'a [(usize, usize)]);
    let mut jobs: Vec<Job> = Vec::new();
    for chunk in blocks.chunks(per.max(1)) {
        let len: usize = chunk.iter().map(|(_, r)| r * row).sum();
        let (head, tail) = rest.split_at_mut(len);
        jobs.push((head, chunk));
        rest = tail;
    }
    let run = |(out, chunk): Job| {
        let mut at = 0;
        for (r0, rows) in chunk {
            fill(*r0, &mut out[at..at + rows * row]);
            at += rows * row;
        }
    };
    if jobs.len() == 1 {
        jobs.into_iter().for_each(run);
    } else {
        use rayon::prelude::*;
        jobs.into_par_iter().for_each(run);
    }
}

#[cfg(test)]
mod tests {
    use super::mirror;

    /// The tiled, threaded mirror against the definition, over sizes that are and are not
    /// multiples of the block, one and several samples, and thread counts that split samples.
    #[test]
    fn mirror_matches_its_definition() {
        for &(batch, n, w) in &[
            (1, 1, 1),
            (3, 5, 2),
            (2, 16, 1),
            (4, 37, 3),
            (2, 200, 5),
            (300, 19, 1),
        ] {
            let x: Vec<f32> = (0..batch * n * n * w)
                .map(|i| i as f32 * 0.5 - 7.0)
                .collect();
            let mut want = vec![0.0f32; x.len()];
            for s in 0..batch {
                for i in 0..n {
                    for j in 0..n {
                        for c in 0..w {
                            let (a, b) = (i.min(j), i.max(j));
                            want[((s * n + i) * n + j) * w + c] = if i == j {
                                0.0
                            } else {
                                x[((s * n + a) * n + b) * w + c]
                            };
                        }
                    }
                }
            }
            for threads in [1, 2, 3, 8] {
                let mut y = vec![f32::NAN; x.len()];
                mirror(&x, &mut y, n, w, threads);
                assert_eq!(y, want, "batch {batch}, n {n}, w {w}, {threads} thread(s)");
            }
        }
    }
}
