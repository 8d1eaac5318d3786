//! `diffc sweep`: several samplers at several numbers of steps, each run with the exact
//! empirical denoiser and scored, so that quality can be read against the network calls
//! actually made (issue 6: the published comparisons of DPM-Solver++ and BFN-Solver).
//!
//! A sampler whose `steps` parameter builds its grid (`uniform`, `quadratic`, `logsnr`,
//! `karras`) runs once per step count; a sampler with a fixed grid (no `steps` parameter,
//! `grid = all`, or an explicit list, whose length the checker fixed) runs once, at its own
//! grid. Every run draws with the same seed.

use super::score::{self, Scores};
use super::{Options as RunOptions, Prepared};
use crate::data::Dataset;
use crate::typed::{Grid, Process, Sampler};
use std::fmt::Write as _;

/// What to sweep.
#[derive(Clone, Debug)]
pub struct Options {
    pub samplers: Vec<String>,
    /// The step counts given to every sampler with a `steps` parameter.
    pub steps: Vec<usize>,
    /// Each run's settings (count, seed, backend, …); `steps` is set per run.
    pub run: RunOptions,
    /// The graphs' validity test (`planar`, `sbm`), when the data have one.
    pub validity: Option<String>,
    /// Worker threads for the graph metrics.
    pub threads: usize,
}

/// One run.
#[derive(Clone, Debug)]
pub struct Point {
    pub sampler: String,
    /// The swept step count, or the number of steps of a fixed grid.
    pub steps: usize,
    /// True when the sampler's grid is fixed and it ran once.
    pub fixed: bool,
    /// Network calls made.
    pub calls: usize,
    /// Wall-clock seconds of sampling and scoring.
    pub seconds: f64,
    pub scores: Scores,
}

/// Every run of a sweep, sampler by sampler in the order asked, steps in the order given.
#[derive(Clone, Debug, Default)]
pub struct Sweep {
    pub points: Vec<Point>,
}

/// Whether the `steps` parameter sets the number of steps of `s`'s grid.
pub fn sweepable(s: &Sampler) -> bool {
    s.params.iter().any(|x| x.name == "steps" && x.overridable)
        && matches!(
            s.grid,
            Grid::Uniform(_)
                | Grid::Quadratic(_)
                | Grid::LogSnr(_)
                | Grid::Karras { .. }
                | Grid::Linspace(_)
        )
}

/// The runs of a sweep: each sampler with its step count (`None`: its own fixed grid).
pub fn plan(p: &Process, opts: &Options) -> Result<Vec<(String, Option<usize>)>, String> {
    if opts.samplers.is_empty() {
        return Err("name at least one sampler".into());
    }
    if opts.steps.is_empty() {
        return Err("give at least one step count".into());
    }
    if opts.run.count == 0 {
        return Err("the sample count must be at least 1".into());
    }
    if let Some(n) = opts.steps.iter().find(|n| **n == 0) {
        return Err(format!("a step count must be at least 1, not {n}"));
    }
    for (i, n) in opts.steps.iter().enumerate() {
        if opts.steps[..i].contains(n) {
            return Err(format!("the step count {n} is given twice"));
        }
    }
    let mut runs = Vec::new();
    for (i, name) in opts.samplers.iter().enumerate() {
        if opts.samplers[..i].contains(name) {
            return Err(format!("sampler `{name}` is named twice"));
        }
        let s = p.samplers.iter().find(|s| &s.name == name).ok_or_else(|| {
            let names: Vec<&str> = p.samplers.iter().map(|s| s.name.as_str()).collect();
            format!(
                "process `{}` has no sampler `{name}` (it has {})",
                p.name,
                names.join(", ")
            )
        })?;
        if sweepable(s) {
            runs.extend(opts.steps.iter().map(|n| (name.clone(), Some(*n))));
        } else {
            runs.push((name.clone(), None));
        }
    }
    Ok(runs)
}

/// Run every sampler at every step count on `prep`'s training set and score the samples
/// against `data`. `progress` sees each point as it is done, with its index and the total.
pub fn sweep(
    p: &Process,
    data: &Dataset,
    prep: &Prepared,
    opts: &Options,
    progress: &mut dyn FnMut(&Point, usize, usize),
) -> Result<Sweep, String> {
    let runs = plan(p, opts)?;
    let mut points = Vec::with_capacity(runs.len());
    for (i, (sampler, steps)) in runs.iter().enumerate() {
        let start = std::time::Instant::now();
        let run_opts = RunOptions {
            steps: *steps,
            ..opts.run.clone()
        };
        let run = super::run(p, sampler, prep, &run_opts, &mut |_| {})
            .map_err(|e| format!("{sampler} at {}: {e}", describe_steps(*steps)))?;
        let scores = score::score(data, &run.samples, opts.validity.as_deref(), opts.threads)?;
        let fixed = steps.is_none();
        let steps = match steps {
            Some(n) => *n,
            None => super::step_count(p, sampler, &run_opts)?,
        };
        let point = Point {
            sampler: sampler.clone(),
            steps,
            fixed,
            calls: run.calls,
            seconds: start.elapsed().as_secs_f64(),
            scores,
        };
        progress(&point, i, runs.len());
        points.push(point);
    }
    Ok(Sweep { points })
}

fn describe_steps(steps: Option<usize>) -> String {
    match steps {
        Some(n) => format!("{n} steps"),
        None => "its own grid".into(),
    }
}

impl Sweep {
    /// The names of the scores of the samples, in the order of the first point's scores: the
    /// table's columns and the plots. Properties of the training set
    /// ([`score::DATA_PROPERTIES`], the same at every point) are left out; see
    /// [`Sweep::data_properties`].
    pub fn score_names(&self) -> Vec<String> {
        self.points.first().map_or(Vec::new(), |p| {
            p.scores
                .values
                .iter()
                .map(|(n, _)| n.clone())
                .filter(|n| !score::DATA_PROPERTIES.contains(&n.as_str()))
                .collect()
        })
    }

    /// The training set's properties among the scores (`radius` for points), from the first
    /// point: one value for the whole sweep, printed under the table rather than plotted as
    /// a flat line.
    pub fn data_properties(&self) -> Vec<(String, f64)> {
        self.points.first().map_or(Vec::new(), |p| {
            p.scores
                .values
                .iter()
                .filter(|(n, _)| score::DATA_PROPERTIES.contains(&n.as_str()))
                .cloned()
                .collect()
        })
    }

    /// A table: sampler, steps, network calls and every score, one row per run.
    pub fn table(&self) -> String {
        let names = self.score_names();
        let width = self
            .points
            .iter()
            .map(|p| p.sampler.len())
            .max()
            .unwrap_or(0)
            .max("sampler".len());
        let mut t = String::new();
        let _ = write!(
            t,
            "{:<width$}  {:>6}  {:>13}",
            "sampler", "steps", "network calls"
        );
        for n in &names {
            let _ = write!(t, "  {:>w$}", n, w = n.len().max(10));
        }
        t.push('\n');
        for p in &self.points {
            let steps = if p.fixed {
                format!("{}*", p.steps)
            } else {
                p.steps.to_string()
            };
            let _ = write!(t, "{:<width$}  {:>6}  {:>13}", p.sampler, steps, p.calls);
            for n in &names {
                let v = p.scores.get(n).map_or("-".into(), |v| format!("{v:.6}"));
                let _ = write!(t, "  {:>w$}", v, w = n.len().max(10));
            }
            t.push('\n');
        }
        if self.points.iter().any(|p| p.fixed) {
            t.push_str("* a fixed grid: the sampler ran once, at its own steps\n");
        }
        for (n, v) in self.data_properties() {
            let _ = writeln!(
                t,
                "{n} = {v:.6}: a property of the training set, the same in every run"
            );
        }
        t
    }

    /// The runs as JSON: `{"points": [{sampler, steps, fixed, network_calls, seconds, scores}]}`.
    pub fn json(&self) -> serde_json::Value {
        let points: Vec<serde_json::Value> = self
            .points
            .iter()
            .map(|p| {
                serde_json::json!({
                    "sampler": p.sampler,
                    "steps": p.steps,
                    "fixed": p.fixed,
                    "network_calls": p.calls,
                    "seconds": p.seconds,
                    "scores": p.scores.values.iter()
                        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                        .collect::<serde_json::Map<_, _>>(),
                })
            })
            .collect();
        serde_json::json!({ "points": points })
    }

    /// One PNG per score of the samples ([`Sweep::score_names`]), `sweep_<score>.png`: the
    /// score against the network calls (log axis), one line per sampler. `title` heads every
    /// plot.
    pub fn plots(&self, title: &str) -> Vec<(String, Vec<u8>)> {
        let mut samplers: Vec<&str> = Vec::new();
        for p in &self.points {
            if !samplers.contains(&p.sampler.as_str()) {
                samplers.push(&p.sampler);
            }
        }
        self.score_names()
            .iter()
            .map(|name| {
                let series: Vec<(String, Vec<(f64, f64)>)> = samplers
                    .iter()
                    .map(|s| {
                        let mut pts: Vec<(f64, f64)> = self
                            .points
                            .iter()
                            .filter(|p| p.sampler == *s)
                            .filter_map(|p| Some((p.calls as f64, p.scores.get(name)?)))
                            .collect();
                        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                        (s.to_string(), pts)
                    })
                    .collect();
                let png = crate::picture::lines_png(
                    &format!("{title}: {name}"),
                    "network calls",
                    name,
                    &series,
                    true,
                    false,
                );
                (format!("sweep_{name}.png"), png)
            })
            .collect()
    }
}
