//! The exact denoiser of a finite training set (`../shared/DESIGN.md` §5).
//!
//! For training points x⁽¹⁾ … x⁽ᴺ⁾ and a noisy state x_t, the ideal denoiser is the posterior
//! over the training points, p(x_0 = x⁽ⁱ⁾ | x_t) ∝ q(x_t | x⁽ⁱ⁾). The weights come from the
//! process's own `log_q` entry, run on the chosen backend for every (sample, training point)
//! pair at once; so the denoiser exists for any process with a forward marginal.
//!
//! From the weights w_i, for each output of the network:
//! - `probs` of a `cat<K>` field: per element, p(c) = Σ_i w_i 1[x⁽ⁱ⁾ = c];
//!   of a `bool` field: p(true) = Σ_i w_i 1[x⁽ⁱ⁾];
//! - `x0`: x̂ = Σ_i w_i x⁽ⁱ⁾;
//! - `eps`, `score`, `v` of a field with a Gaussian marginal `Normal(α x_0, σ²)` whose target
//!   is y: ε̂ = (y − α x̂)/σ, ŝ = −(y − α x̂)/σ², v̂ = α ε̂ − σ x̂, with α and σ² evaluated in
//!   f64 at the call's time.
//!
//! Class probabilities are floored at [`PROB_FLOOR`].
//!
//! Node masks: a sample is compared only with training points whose masks equal its own (a
//! graph of n nodes with the training graphs of n nodes), so graphs of different sizes never
//! mix; a sample with no such training point is an error.
//! Conditioning inputs (fields the network reads that no marginal diffuses, as EDGE's target
//! degrees) condition the posterior too: a sample is compared with the training points whose
//! conditioning values equal its own, p(x_0 = x⁽ⁱ⁾ | x_t, c) ∝ q(x_t | x⁽ⁱ⁾) 1[c⁽ⁱ⁾ = c], or with
//! every training point when none has them.

use crate::entries::{entries, EntryKind};
use crate::interp::{self, Call, Data, NetCall, Tensor};
use crate::ir::Program;
use crate::typed::{Elem, FieldId, KernelKind, ParamKind, Process};
use std::collections::HashMap;

/// The least class probability the denoiser returns: a network's softmax never reaches 0, and
/// samplers may take its log (log 1e-30 is also the log guard of the EDGE and DiGress code).
/// For a bool field, the probability of either value (1 − 1e-30 rounds to 1 in f32).
pub const PROB_FLOOR: f64 = 1e-30;

/// Which implementation runs the `log_q` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Interp,
    Cpu,
    /// The sampler's kernels on the GPU; the exact denoiser's `log_q` runs on the CPU backend.
    Gpu,
}

/// A training set: the values of the process's data fields, batch first.
#[derive(Clone, Debug, Default)]
pub struct Training {
    /// Number of training points.
    pub count: usize,
    /// Data-field values by field name, each `[count, …field shape]` (class indices for `cat`
    /// fields, bools for `bool` fields).
    pub fields: HashMap<String, Tensor>,
    /// Node masks by name, each `bool[count, n]`; a mask not given means every node is real.
    pub masks: HashMap<String, Tensor>,
}

/// What a `log_q` input is fed from.
#[derive(Clone, Debug)]
enum Role {
    /// The state: a marginal's target (`x_t`), from the call's field argument.
    Target(usize),
    /// The data: a marginal's given field (`x_0`), from the training set.
    Given(String),
    /// The call's time.
    Time,
}

/// The exact denoiser of a training set.
pub struct Empirical<'p> {
    p: &'p Process,
    prog: Program,
    roles: Vec<Role>,
    train: Training,
    backend: Backend,
    /// The `log_q` entry compiled for the CPU, by the set of masks a call carries.
    compiled: HashMap<Vec<String>, crate::cpu::Compiled>,
    /// The largest number of (sample, training point) elements fed to one `log_q` run.
    pub chunk_elements: usize,
    /// Statistics of the calls so far.
    pub stats: Stats,
}

/// What the denoiser has done: calls, and how concentrated its weights were.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub calls: usize,
    /// Pairs of (sample, training point) scored.
    pub pairs: usize,
    /// The mean over calls and samples of the largest weight (1 means the posterior sits on
    /// one training point).
    pub mean_top_weight: f64,
    /// Samples whose state no training point could reach, weighed by their differences.
    pub fallbacks: usize,
}

impl<'p> Empirical<'p> {
    /// The denoiser of `train` for process `p`, running `log_q` on `backend`.
    pub fn new(p: &'p Process, train: Training, backend: Backend) -> Result<Empirical<'p>, String> {
        let all = entries(p);
        let entry = all
            .iter()
            .find(|e| e.kind == EntryKind::LogQ)
            .ok_or_else(|| {
                format!(
                    "process `{}` has no forward marginal, so it has no `log_q` and no empirical denoiser",
                    p.name
                )
            })?;
        let prog = crate::ir::lower::lower(p, &entry.name)?;
        let mut roles = Vec::new();
        for port in &entry.inputs {
            if port.name == p.time.name {
                roles.push(Role::Time);
                continue;
            }
            let mut role = None;
            for k in p.forwards.iter().filter(|k| k.kind == KernelKind::Marginal) {
                if p.version_name(k.target) == port.name {
                    role = Some(Role::Target(k.target.field.index()));
                }
                for g in &k.given {
                    if p.version_name(*g) == port.name {
                        role = Some(Role::Given(p.field(g.field).name.clone()));
                    }
                }
            }
            let role = role.ok_or_else(|| {
                format!(
                    "internal error: the `log_q` input `{}` has no role",
                    port.name
                )
            })?;
            if let Role::Given(name) = &role {
                let t = train.fields.get(name).ok_or_else(|| {
                    format!("the training set has no values of the field `{name}`")
                })?;
                if t.shape.first() != Some(&train.count) {
                    return Err(format!(
                        "the training values of `{name}` have shape {:?}, expected {} first",
                        t.shape, train.count
                    ));
                }
            }
            roles.push(role);
        }
        if train.count == 0 {
            return Err("the training set is empty".into());
        }
        Ok(Empirical {
            p,
            prog,
            roles,
            train,
            backend,
            compiled: HashMap::new(),
            chunk_elements: 1 << 23,
            stats: Stats::default(),
        })
    }

    /// The training set.
    pub fn training(&self) -> &Training {
        &self.train
    }

    /// The posterior weights over the training points of each sample of a call: for sample
    /// `b`, pairs `(i, w_i)` with the weights summing to 1.
    pub fn weights(&mut self, call: &NetCall) -> Result<Vec<Vec<(usize, f64)>>, String> {
        let p = self.p;
        let t = call
            .time
            .ok_or("the empirical denoiser needs a network with a time input")?;
        if p.time.kind == crate::typed::TimeKind::Discrete && t.fract() != 0.0 {
            return Err(format!(
                "the exact denoiser weighs the training set by q(x_t | x_0) at the network's time, here {t}, between two whole times of discrete `{}`, where the process has no marginal: sample this grid with a trained network (Python's `Process.sample`, or `diffc::cpu::sample` with a network callback)",
                p.time.name
            ));
        }
        let mut state: HashMap<usize, &Tensor> = HashMap::new();
        for (f, v) in call.fields {
            state.insert(*f, v);
        }
        let batch = call
            .fields
            .first()
            .and_then(|(_, v)| v.shape.first().copied())
            .ok_or("the empirical denoiser needs a network with a field input")?;
        for r in &self.roles {
            if let Role::Target(f) = r {
                if !state.contains_key(f) {
                    return Err(format!(
                        "network `{}` does not read `{}`, which the empirical denoiser needs to weigh the training set",
                        p.networks[call.net].name, p.fields[*f].name
                    ));
                }
            }
        }
        // Which training points each sample may be: those with the same masks.
        let masks: Vec<(&String, &Tensor)> = call.masks.iter().collect();
        // Conditioning inputs (fields the network reads that no marginal diffuses) select the
        // training points with the same values, when there are any.
        let targets: Vec<usize> = self
            .roles
            .iter()
            .filter_map(|r| match r {
                Role::Target(f) => Some(*f),
                _ => None,
            })
            .collect();
        let conditions: Vec<(&Tensor, &Tensor)> = call
            .fields
            .iter()
            .filter(|(f, _)| !targets.contains(f))
            .filter_map(|(f, v)| self.train.fields.get(&p.fields[*f].name).map(|t| (v, t)))
            .collect();
        // At most one (sample, training point) pair per sample and training point, each kept
        // as an index pair and as a weight: refuse a batch whose pairs would not fit.
        let most =
            crate::limits::product(&[("batch", batch), ("training items", self.train.count)])?;
        crate::limits::check_bytes(
            &format!(
                "the empirical denoiser over batch = {batch} × training items = {}",
                self.train.count
            ),
            most as u128 * 32,
        )?;
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for b in 0..batch {
            let fits: Vec<usize> = (0..self.train.count)
                .filter(|&i| masks_match(&masks, b, &self.train.masks, i))
                .collect();
            if fits.is_empty() {
                return Err(format!(
                    "no training point has the node mask of sample {b}: draw each sample's node count from the training set"
                ));
            }
            let same: Vec<usize> = fits
                .iter()
                .copied()
                .filter(|&i| conditions.iter().all(|(v, t)| rows_equal(v, b, t, i)))
                .collect();
            let chosen = if same.is_empty() { fits } else { same };
            pairs.extend(chosen.into_iter().map(|i| (b, i)));
        }
        // Elements per pair, to size the chunks.
        let per_pair: usize = self
            .roles
            .iter()
            .map(|r| match r {
                Role::Target(f) => state[f].len() / batch.max(1),
                _ => 0,
            })
            .sum::<usize>()
            .max(1);
        let chunk = (self.chunk_elements / per_pair).max(1);
        let mut logq = Vec::with_capacity(pairs.len());
        if self.uninformative(t) {
            // The state says nothing about the data: every training point weighs the same.
            logq.resize(pairs.len(), 0.0);
        } else {
            for part in pairs.chunks(chunk) {
                logq.extend(self.log_q(part, &state, call.masks, t)?);
            }
        }
        // Softmax per sample, in f64.
        let mut out = vec![Vec::new(); batch];
        let mut at = 0;
        let mut top = 0.0;
        for (b, ws) in out.iter_mut().enumerate() {
            let start = at;
            while at < pairs.len() && pairs[at].0 == b {
                at += 1;
            }
            let mut ls = logq[start..at].to_vec();
            let mut m = ls.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if !m.is_finite() {
                // A factorised discrete step can combine elements of different training points
                // into a state none of them can reach: weigh them by the elements they differ
                // in, each counted as log(1e-30) (the log guard of the EDGE and DiGress code).
                for (k, l) in ls.iter_mut().enumerate() {
                    let d = self
                        .mismatches(&state, b, pairs[start + k].1)
                        .ok_or_else(|| {
                            format!(
                            "sample {b} at {} = {t} has probability 0 under every training point",
                            p.time.name
                        )
                        })?;
                    *l = d as f64 * 1e-30f64.ln();
                }
                m = ls.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                self.stats.fallbacks += 1;
            }
            let z: f64 = ls.iter().map(|l| (l - m).exp()).sum();
            let mut best: f64 = 0.0;
            for (k, l) in ls.iter().enumerate() {
                let w = (l - m).exp() / z;
                if w > 1e-12 {
                    ws.push((pairs[start + k].1, w));
                    best = best.max(w);
                }
            }
            top += best;
        }
        let n = self.stats.calls as f64;
        self.stats.mean_top_weight =
            (self.stats.mean_top_weight * n + top / batch.max(1) as f64) / (n + 1.0);
        self.stats.calls += 1;
        self.stats.pairs += pairs.len();
        Ok(out)
    }

    /// The number of elements where sample `b`'s state differs from training point `i`, over
    /// the discrete fields that are both a marginal's target and its data; `None` if there is
    /// no such field.
    fn mismatches(&self, state: &HashMap<usize, &Tensor>, b: usize, i: usize) -> Option<usize> {
        let mut total = None;
        for r in &self.roles {
            let Role::Target(f) = r else { continue };
            let Some(train) = self.train.fields.get(&self.p.fields[*f].name) else {
                continue;
            };
            let s = state[f];
            let per = s.len() / s.shape[0].max(1);
            let d = match (&s.data, &train.data) {
                (Data::Class(x), Data::Class(y)) => (0..per)
                    .filter(|&e| x[b * per + e] != y[i * per + e])
                    .count(),
                (Data::Bool(x), Data::Bool(y)) => (0..per)
                    .filter(|&e| x[b * per + e] != y[i * per + e])
                    .count(),
                _ => continue,
            };
            *total.get_or_insert(0) += d;
        }
        total
    }

    /// Whether no forward marginal depends on the data at `t` in the kernels' f32
    /// arithmetic: every marginal the denoiser weighs by is an affine Gaussian whose signal
    /// coefficient rounds to 0 in f32, as continuous BFN's flow at t = 0 (γ(0) = 0, μ = 0
    /// whatever the data). Bayes' rule then leaves the training points' weights uniform, and
    /// `log_q` is not run: with a variance that rounds to 0 too, it is 0 · ∞ there.
    fn uninformative(&self, t: f64) -> bool {
        let p = self.p;
        let ev = crate::check::eval::Evaluator::new(p);
        let env = crate::check::eval::Env {
            t,
            ..Default::default()
        };
        let mut targets = self
            .roles
            .iter()
            .filter_map(|r| match r {
                Role::Target(f) => Some(FieldId(*f as u32)),
                _ => None,
            })
            .peekable();
        targets.peek().is_some()
            && targets.all(|f| {
                p.marginal_of(f).and_then(|k| k.affine).is_some_and(|a| {
                    ev.real(a.alpha, &env)
                        .is_ok_and(|alpha| alpha as f32 == 0.0)
                })
            })
    }

    /// `log_q` of each (sample, training point) pair.
    fn log_q(
        &mut self,
        pairs: &[(usize, usize)],
        state: &HashMap<usize, &Tensor>,
        masks: &HashMap<String, Tensor>,
        t: f64,
    ) -> Result<Vec<f64>, String> {
        let p = self.p;
        let mut call = Call {
            seed: 0,
            batch: pairs.len(),
            ..Call::default()
        };
        for (role, port) in self.roles.iter().zip(&self.prog.inputs) {
            let value = match role {
                Role::Time => Tensor::scalar(t as f32),
                Role::Target(f) => gather(state[f], pairs.iter().map(|(b, _)| *b)),
                Role::Given(name) => {
                    gather(&self.train.fields[name], pairs.iter().map(|(_, i)| *i))
                }
            };
            call.inputs.insert(port.name.clone(), value);
        }
        for (name, m) in masks {
            call.masks
                .insert(name.clone(), gather(m, pairs.iter().map(|(b, _)| *b)));
        }
        let out = match self.backend {
            Backend::Interp => interp::run(p, &self.prog, &call)?,
            Backend::Cpu | Backend::Gpu => {
                let mut key: Vec<String> = masks.keys().cloned().collect();
                key.sort();
                if !self.compiled.contains_key(&key) {
                    let v = crate::plan::variant(p, &self.prog, &call.draws, &call.masks);
                    let c = crate::cpu::compile_entry(p, &self.prog, &v)?;
                    self.compiled.insert(key.clone(), c);
                }
                crate::cpu::run_compiled(
                    p,
                    &self.prog,
                    &call,
                    &self.compiled[&key],
                    crate::cpu::Options::default(),
                )?
            }
        };
        let lq = out
            .first()
            .and_then(|t| t.f32s())
            .ok_or("internal error: `log_q` returned no reals")?;
        Ok(lq.iter().map(|&x| x as f64).collect())
    }

    /// The network's outputs for one call.
    pub fn outputs(&mut self, call: &NetCall) -> Result<Vec<Tensor>, String> {
        let p = self.p;
        let weights = self.weights(call)?;
        let batch = weights.len();
        let net = &p.networks[call.net];
        let mut outs = Vec::new();
        for o in &net.outputs {
            let f = &p.fields[o.field.index()];
            let train = self.train.fields.get(&f.name).ok_or_else(|| {
                format!(
                    "the training set has no values of `{}`, which `{}` predicts",
                    f.name, net.name
                )
            })?;
            let per = train.len() / self.train.count;
            let out = match (o.kind, &train.data) {
                (ParamKind::Probs, Data::Class(x)) => {
                    let Elem::Cat(k) = f.elem else {
                        return Err(format!("`{}` holds classes but is not `cat`", f.name));
                    };
                    let k = k as usize;
                    let mut v = vec![0f64; batch * per * k];
                    for (b, ws) in weights.iter().enumerate() {
                        for &(i, w) in ws {
                            for e in 0..per {
                                v[(b * per + e) * k + x[i * per + e] as usize] += w;
                            }
                        }
                    }
                    let mut shape = vec![batch];
                    shape.extend(&train.shape[1..]);
                    shape.push(k);
                    v.iter_mut().for_each(|x| *x = x.max(PROB_FLOOR));
                    f32_tensor(shape, &v)
                }
                (ParamKind::Probs, Data::Bool(x)) => {
                    let mut v = expect(&weights, per, |i, e| x[i * per + e] as u8 as f64);
                    v.iter_mut()
                        .for_each(|x| *x = x.clamp(PROB_FLOOR, 1.0 - PROB_FLOOR));
                    let mut shape = vec![batch];
                    shape.extend(&train.shape[1..]);
                    f32_tensor(shape, &v)
                }
                (kind, Data::F32(x)) if kind != ParamKind::Probs => {
                    let x0 = expect(&weights, per, |i, e| x[i * per + e] as f64);
                    let mut shape = vec![batch];
                    shape.extend(&train.shape[1..]);
                    let v = if kind == ParamKind::X0 {
                        x0
                    } else {
                        self.convert(call, o.field, kind, &x0)?
                    };
                    match o.precond {
                        None => f32_tensor(shape, &v),
                        Some(pc) => f32_tensor(shape, &self.unprecondition(call, o.field, pc, v)?),
                    }
                }
                _ => {
                    return Err(format!(
                    "the empirical denoiser cannot predict `{}` of `{}` from its training values",
                    o.kind.name(),
                    f.name
                ))
                }
            };
            outs.push(out);
        }
        Ok(outs)
    }

    /// What a preconditioned network returns for the prediction `v`: F = (v − skip · x) / scale,
    /// at the call's state x and time.
    fn unprecondition(
        &self,
        call: &NetCall,
        field: FieldId,
        (skip, scale): (crate::typed::ExprId, crate::typed::ExprId),
        mut v: Vec<f64>,
    ) -> Result<Vec<f64>, String> {
        let p = self.p;
        let t = call.time.unwrap_or(f64::NAN);
        let ev = crate::check::eval::Evaluator::new(p);
        let env = crate::check::eval::Env {
            t,
            ..Default::default()
        };
        let at = |e| {
            ev.real(e, &env).map_err(|_| {
                format!(
                    "cannot evaluate the preconditioning at {} = {t}",
                    p.time.name
                )
            })
        };
        let (cs, co) = (at(skip)?, at(scale)?);
        let x = call
            .fields
            .iter()
            .find(|(f, _)| *f == field.index())
            .and_then(|(_, v)| v.f32s())
            .ok_or_else(|| format!("the call does not pass `{}`", p.fields[field.index()].name))?;
        if x.len() != v.len() {
            return Err(format!(
                "`{}` has {} values and its prediction {}",
                p.fields[field.index()].name,
                x.len(),
                v.len()
            ));
        }
        for (v, &x) in v.iter_mut().zip(x) {
            *v = (*v - cs * x as f64) / co;
        }
        Ok(v)
    }

    /// ε̂, ŝ or v̂ from x̂ through the field's Gaussian marginal.
    fn convert(
        &self,
        call: &NetCall,
        field: FieldId,
        kind: ParamKind,
        x0: &[f64],
    ) -> Result<Vec<f64>, String> {
        let p = self.p;
        let k = p.gaussian_marginal_given(field).ok_or_else(|| {
            format!(
                "`{}` has no Gaussian marginal `Normal(a * x_0, v)` to convert x̂ to `{}`",
                p.fields[field.index()].name,
                kind.name()
            )
        })?;
        let aff = k.affine.unwrap();
        let t = call.time.unwrap_or(f64::NAN);
        let ev = crate::check::eval::Evaluator::new(p);
        let env = crate::check::eval::Env {
            t,
            ..Default::default()
        };
        let alpha = ev.real(aff.alpha, &env).map_err(|_| {
            format!(
                "cannot evaluate the signal coefficient at {} = {t}",
                p.time.name
            )
        })?;
        let var = ev
            .real(aff.var, &env)
            .map_err(|_| format!("cannot evaluate the variance at {} = {t}", p.time.name))?;
        let target = k.target.field.index();
        let y = call
            .fields
            .iter()
            .find(|(f, _)| *f == target)
            .and_then(|(_, v)| v.f32s())
            .ok_or_else(|| format!("the call does not pass `{}`", p.fields[target].name))?;
        if y.len() != x0.len() {
            return Err(format!(
                "`{}` has {} values and its prediction {}",
                p.fields[target].name,
                y.len(),
                x0.len()
            ));
        }
        let sigma = var.sqrt();
        // A velocity a' x̂_0 + σ' ε̂ needs the marginal's time derivatives.
        let (da, ds) = match (kind, aff.rates) {
            (ParamKind::Velocity, Some(r)) => {
                let at = |e| {
                    ev.real(e, &env).map_err(|_| {
                        format!(
                            "cannot evaluate the velocity's coefficients at {} = {t}",
                            p.time.name
                        )
                    })
                };
                (at(r.dalpha)?, at(r.dsigma)?)
            }
            (ParamKind::Velocity, None) => {
                return Err("a velocity without the marginal's time derivatives".into())
            }
            _ => (0.0, 0.0),
        };
        Ok(y.iter()
            .zip(x0)
            .map(|(&y, &x)| {
                let r = y as f64 - alpha * x;
                match kind {
                    ParamKind::Eps => r / sigma,
                    ParamKind::Score => -r / var,
                    ParamKind::Velocity => da * x + ds * r / sigma,
                    _ => alpha * r / sigma - sigma * x,
                }
            })
            .collect())
    }
}

impl crate::interp::Denoiser for Empirical<'_> {
    fn denoise(&mut self, _: &Process, call: &NetCall) -> Result<Vec<Tensor>, String> {
        self.outputs(call)
    }
}

/// Σ_i w_i value(i, e) for every sample and element.
fn expect(
    weights: &[Vec<(usize, f64)>],
    per: usize,
    value: impl Fn(usize, usize) -> f64,
) -> Vec<f64> {
    let mut v = vec![0f64; weights.len() * per];
    for (b, ws) in weights.iter().enumerate() {
        let row = &mut v[b * per..(b + 1) * per];
        for &(i, w) in ws {
            for (e, r) in row.iter_mut().enumerate() {
                *r += w * value(i, e);
            }
        }
    }
    v
}

fn f32_tensor(shape: Vec<usize>, v: &[f64]) -> Tensor {
    Tensor {
        shape,
        data: Data::F32(v.iter().map(|&x| x as f32).collect()),
    }
}

/// Rows of a batch-first tensor, in the given order.
fn gather(t: &Tensor, rows: impl Iterator<Item = usize>) -> Tensor {
    let n = t.shape.first().copied().unwrap_or(0);
    let per = t.len().checked_div(n).unwrap_or(0);
    let rows: Vec<usize> = rows.collect();
    let mut shape = t.shape.clone();
    if shape.is_empty() {
        return t.clone();
    }
    shape[0] = rows.len();
    fn pick<T: Clone>(x: &[T], rows: &[usize], per: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(rows.len() * per);
        for &r in rows {
            out.extend_from_slice(&x[r * per..(r + 1) * per]);
        }
        out
    }
    let data = match &t.data {
        Data::F32(x) => Data::F32(pick(x, &rows, per)),
        Data::Bool(x) => Data::Bool(pick(x, &rows, per)),
        Data::Class(x) => Data::Class(pick(x, &rows, per)),
    };
    Tensor { shape, data }
}

/// Whether row `b` of `a` equals row `i` of `b` (batch-first tensors of one element shape).
fn rows_equal(a: &Tensor, b: usize, t: &Tensor, i: usize) -> bool {
    let per = a.len() / a.shape.first().copied().unwrap_or(1).max(1);
    if t.len() / t.shape.first().copied().unwrap_or(1).max(1) != per {
        return false;
    }
    match (&a.data, &t.data) {
        (Data::F32(x), Data::F32(y)) => x[b * per..(b + 1) * per] == y[i * per..(i + 1) * per],
        (Data::Bool(x), Data::Bool(y)) => x[b * per..(b + 1) * per] == y[i * per..(i + 1) * per],
        (Data::Class(x), Data::Class(y)) => x[b * per..(b + 1) * per] == y[i * per..(i + 1) * per],
        _ => false,
    }
}

/// Whether sample `b`'s masks equal training point `i`'s (a missing mask is all true).
fn masks_match(
    sample: &[(&String, &Tensor)],
    b: usize,
    train: &HashMap<String, Tensor>,
    i: usize,
) -> bool {
    let row = |t: &Tensor, r: usize| -> Vec<bool> {
        let n = t.shape.get(1).copied().unwrap_or(0);
        match &t.data {
            Data::Bool(x) => x[r * n..(r + 1) * n].to_vec(),
            _ => Vec::new(),
        }
    };
    for (name, m) in sample {
        let s = row(m, b);
        match train.get(*name) {
            Some(tm) => {
                if row(tm, i) != s {
                    return false;
                }
            }
            None => {
                if s.iter().any(|x| !x) {
                    return false;
                }
            }
        }
    }
    // A training mask the sample does not carry: the sample's nodes are all real.
    for (name, tm) in train {
        if !sample.iter().any(|(n, _)| *n == name) && row(tm, i).iter().any(|x| !x) {
            return false;
        }
    }
    true
}
