//! `diffc eval`: one entry point or sampler step of a process on `.npy` inputs, or the entry list.

use super::{parse_size, pick_process, read_in, read_params, MessageFormat};
use crate::Cli;
use clap::ValueEnum;
use std::io::Write;

#[derive(clap::Args)]
pub struct EvalArgs {
    pub file: String,
    /// The process, when the file holds several.
    #[arg(long)]
    process: Option<String>,
    /// The entry point: forward, log_q, posterior, prior, loss.NAME, …
    #[arg(long)]
    entry: Option<String>,
    /// The sampler whose step to run (the entry is then `step.NAME`).
    #[arg(long)]
    sampler: Option<String>,
    /// An input or a supplied draw: NAME=FILE.npy.
    #[arg(long = "in", value_name = "NAME=FILE")]
    inputs: Vec<String>,
    /// A time (`t=500`, `s=499`), a dimension size (`d=64`) or the batch size (`batch=8`).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    sets: Vec<String>,
    /// A parameter of the process (`param`) or of the sampler, in place of its default: a
    /// number, or a `.npy` file for a `vec` or `mat` parameter (`--param mX=m.npy`).
    #[arg(long = "param", value_name = "NAME=VALUE|FILE.npy")]
    params: Vec<String>,
    /// The seed of every draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Which implementation runs the entry.
    #[arg(long, value_enum, default_value_t = Backend::Interp)]
    backend: Backend,
    /// Write one NAME.npy per output into this folder (otherwise print a summary).
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    out: Option<String>,
    /// List the entry points with their inputs and outputs.
    #[arg(long)]
    list: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Backend {
    Interp,
    Cpu,
    Gpu,
}

fn port_text(p: &diffc::typed::Process, port: &diffc::entries::Port) -> (String, String) {
    let dtype = match port.elem {
        _ if port.name == "seed" => "uint64 (--seed)",
        diffc::typed::Elem::Real | diffc::typed::Elem::Vec(_) | diffc::typed::Elem::Mat(_) => {
            "float32"
        }
        diffc::typed::Elem::Cat(_) => "int64",
        diffc::typed::Elem::Bool => "bool",
    };
    let mut dims: Vec<String> = Vec::new();
    match &port.extent {
        diffc::entries::Extent::Field(s) => {
            dims.push("batch".into());
            dims.extend(s.dims.iter().map(|d| p.dims[d.index()].name.clone()));
        }
        diffc::entries::Extent::Sample => dims.push("batch".into()),
        diffc::entries::Extent::Scalar => {}
    }
    if let diffc::typed::Elem::Vec(k) = port.elem {
        dims.push(k.to_string());
    }
    (dtype.to_string(), format!("[{}]", dims.join(", ")))
}

pub fn eval(
    cli: &Cli,
    args: &EvalArgs,
    module: &diffc::check::Module,
    out: &mut dyn Write,
) -> Result<(), String> {
    use diffc::interp::{run, tensor_from_npy, tensor_to_npy, Call, Tensor};
    let p = pick_process(module, args.process.as_deref())?;
    if args.list {
        for e in diffc::entries::entries(p) {
            let ports = |v: &[diffc::entries::Port]| -> Vec<(String, String, String)> {
                v.iter()
                    .map(|x| {
                        let (d, mut s) = port_text(p, x);
                        // Entries other than sampler steps take one time or one per sample.
                        let steps = matches!(
                            e.kind,
                            diffc::entries::EntryKind::Step | diffc::entries::EntryKind::Finalize
                        );
                        if x.name == p.time.name && !steps && s == "[]" {
                            s = "[] or [batch]".into();
                        }
                        (x.name.clone(), d, s)
                    })
                    .collect()
            };
            let (ins, outs) = (ports(&e.inputs), ports(&e.outputs));
            // A step or final map also takes its sampler's parameters (with their defaults).
            let params: Vec<(String, String)> = e
                .name
                .split_once('.')
                .filter(|(kind, _)| matches!(*kind, "step" | "finalize"))
                .and_then(|(_, s)| p.samplers.iter().find(|x| x.name == s))
                .map(|s| {
                    s.params
                        .iter()
                        .filter(|x| x.overridable)
                        .map(|x| (x.name.clone(), diffc::explain::show(p, x.value)))
                        .collect()
                })
                .unwrap_or_default();
            // The draws a caller may supply in place of the generator (`--in NAME=FILE.npy`).
            let draws: Vec<(String, String)> = {
                let sites = match e.name.split_once('.') {
                    Some(("step" | "finalize", s)) => {
                        diffc::ir::lower::lower_sampler(p, s).map(|sp| sp.prog.draws)
                    }
                    _ => diffc::ir::lower::lower(p, &e.name).map(|prog| prog.draws),
                };
                let mut seen = Vec::new();
                for d in sites.unwrap_or_default() {
                    let item = (
                        d.input().to_string(),
                        format!("{:?}", d.family).to_lowercase(),
                    );
                    if !seen.contains(&item) {
                        seen.push(item);
                    }
                }
                seen
            };
            if cli.message_format == MessageFormat::Json {
                let js = |v: &[(String, String, String)]| -> Vec<serde_json::Value> {
                    v.iter()
                        .map(|(n, d, s)| serde_json::json!({"name": n, "dtype": d, "shape": s}))
                        .collect()
                };
                let ps: Vec<serde_json::Value> = params
                    .iter()
                    .map(|(n, d)| serde_json::json!({"name": n, "default": d}))
                    .collect();
                let ds: Vec<serde_json::Value> = draws
                    .iter()
                    .map(|(n, f)| serde_json::json!({"name": n, "family": f}))
                    .collect();
                let obj = serde_json::json!({"process": p.name, "entry": e.name, "inputs": js(&ins), "outputs": js(&outs), "params": ps, "draws": ds});
                let _ = writeln!(out, "{obj}");
            } else {
                let show = |v: &[(String, String, String)]| {
                    v.iter()
                        .map(|(n, d, s)| format!("{n}: {d}{s}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let _ = writeln!(
                    out,
                    "{}\n  in:  {}\n  out: {}",
                    e.name,
                    show(&ins),
                    show(&outs)
                );
                if !params.is_empty() {
                    let text: Vec<String> =
                        params.iter().map(|(n, d)| format!("{n} = {d}")).collect();
                    let _ = writeln!(out, "  params: {}", text.join(", "));
                }
                if !draws.is_empty() {
                    let text: Vec<String> =
                        draws.iter().map(|(n, f)| format!("{n} ({f})")).collect();
                    let _ = writeln!(out, "  draws: {}", text.join(", "));
                }
            }
        }
        return Ok(());
    }
    let entry = match (&args.entry, &args.sampler) {
        (Some(e), None) => e.clone(),
        (None, Some(s)) => format!("step.{s}"),
        (Some(e), Some(s)) if e == "step" => format!("step.{s}"),
        (Some(e), Some(s)) if e == "finalize" => format!("finalize.{s}"),
        (Some(_), Some(_)) => {
            return Err("--sampler goes with --entry step or --entry finalize".into())
        }
        (None, None) => return Err("say which entry to run with --entry (see --list)".into()),
    };
    if let Some(sampler) = entry.strip_prefix("step.") {
        return eval_step(args, p, sampler, false, out);
    }
    if let Some(sampler) = entry.strip_prefix("finalize.") {
        return eval_step(args, p, sampler, true, out);
    }
    let prog = diffc::ir::lower::lower(p, &entry)?;
    let mut call = Call {
        seed: args.seed,
        ..Call::default()
    };
    let mut batch = None;
    for s in &args.sets {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| format!("`--set {s}`: expected NAME=VALUE"))?;
        let number: f64 = value
            .parse()
            .map_err(|_| format!("`--set {s}`: `{value}` is not a number"))?;
        if name == p.time.name || name == "s" {
            call.inputs
                .insert(name.to_string(), Tensor::scalar(number as f32));
        } else if name == "batch" || p.dims.iter().any(|d| d.name == name) {
            let n = parse_size(s, value)?;
            if name == "batch" {
                batch = Some(n);
            } else {
                call.sizes.insert(name.to_string(), n);
            }
        } else {
            return Err(format!(
                "`--set {name}`: not the time, `s`, `batch` or a dimension of `{}`",
                p.name
            ));
        }
    }
    for i in &args.inputs {
        let (name, arr) = read_in(i)?;
        if let Some(mask) = mask_input(p, name, &arr)? {
            call.masks.insert(name.to_string(), mask);
        } else if let Some(port) = prog.inputs.iter().find(|x| x.name == name) {
            let t = tensor_from_npy(&arr, port.elem, name)?;
            if matches!(port.extent, diffc::entries::Extent::Field(_)) {
                batch.get_or_insert(t.shape.first().copied().unwrap_or(0));
            } else if name == p.time.name && t.shape.len() == 1 {
                // One time per sample also says how many samples there are.
                batch.get_or_insert(t.shape[0]);
            }
            call.inputs.insert(name.to_string(), t);
        } else if prog.draws.iter().any(|d| d.input() == name) {
            call.draws.insert(
                name.to_string(),
                tensor_from_npy(&arr, diffc::typed::Elem::Real, name)?,
            );
        } else {
            let known: Vec<&str> = prog
                .inputs
                .iter()
                .map(|x| x.name.as_str())
                .chain(prog.draws.iter().map(|d| d.name.as_str()))
                .collect();
            return Err(format!(
                "`{entry}` has no input `{name}` (its inputs: {})",
                known.join(", ")
            ));
        }
    }
    for port in &prog.inputs {
        if !call.inputs.contains_key(&port.name) && port.name != "seed" {
            let how = if matches!(port.extent, diffc::entries::Extent::Scalar) {
                format!("--set {}=VALUE", port.name)
            } else {
                format!("--in {}=FILE.npy", port.name)
            };
            return Err(format!(
                "`{entry}` needs `{}`: give it with {how}",
                port.name
            ));
        }
    }
    for (name, value) in read_params(&args.params)? {
        call.params.insert(name, value);
    }
    call.batch = batch.unwrap_or(1);
    let outputs = match args.backend {
        Backend::Cpu => diffc::cpu::run(p, &prog, &call)?,
        Backend::Gpu => diffc::gpu::run(p, &prog, &call)?,
        Backend::Interp => run(p, &prog, &call)?,
    };
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{dir}`: {e}"))?;
            for (port, t) in prog.outputs.iter().zip(&outputs) {
                let path = std::path::Path::new(dir).join(format!("{}.npy", port.name));
                diffc::npy::write_file(&tensor_to_npy(t), &path).map_err(|e| e.to_string())?;
            }
        }
        None => {
            for (port, t) in prog.outputs.iter().zip(&outputs) {
                let _ = writeln!(out, "{}", output_summary(&port.name, t));
            }
        }
    }
    Ok(())
}

/// One output in a line: its shape and first values (`x_t: shape [2, 3] [0.1, …]`).
/// One output as `eval` prints it without `--out`: its shape and first values, and for more
/// than six reals their min, mean and max (mean in f64; NaN when an element is).
fn output_summary(name: &str, t: &diffc::interp::Tensor) -> String {
    let vals: Vec<String> = match &t.data {
        diffc::interp::Data::F32(v) => v.iter().take(6).map(|x| format!("{x}")).collect(),
        diffc::interp::Data::Class(v) => v.iter().take(6).map(|x| format!("{x}")).collect(),
        diffc::interp::Data::Bool(v) => v.iter().take(6).map(|x| format!("{x}")).collect(),
    };
    let more = if t.len() > 6 { ", …" } else { "" };
    let stats = match &t.data {
        diffc::interp::Data::F32(v) if v.len() > 6 => {
            let nan = v.iter().any(|x| x.is_nan());
            let (lo, hi) = if nan {
                (f32::NAN, f32::NAN)
            } else {
                v.iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
                        (lo.min(x), hi.max(x))
                    })
            };
            let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
            format!(" min {lo} mean {} max {hi}", mean as f32)
        }
        _ => String::new(),
    };
    format!(
        "{name}: shape {:?} [{}{more}]{stats}",
        t.shape,
        vals.join(", ")
    )
}

/// A denoiser that returns supplied outputs: `NET.FIELD#i` for the i-th call of a step, or
/// `NET.FIELD` for every call.
struct Supplied {
    outputs: std::collections::HashMap<String, diffc::interp::Tensor>,
    calls: usize,
}

impl diffc::interp::Denoiser for Supplied {
    fn denoise(
        &mut self,
        p: &diffc::typed::Process,
        call: &diffc::interp::NetCall,
    ) -> Result<Vec<diffc::interp::Tensor>, String> {
        let net = call.net;
        let i = self.calls;
        self.calls += 1;
        let n = &p.networks[net];
        n.outputs
            .iter()
            .map(|o| {
                let name = format!("{}.{}", n.name, p.field(o.field).name);
                self.outputs
                    .get(&format!("{name}#{i}"))
                    .or_else(|| self.outputs.get(&name))
                    .cloned()
                    .ok_or_else(|| format!("the step calls `{}`: give its output with --in {name}=FILE.npy (or {name}#{i}=…)", n.name))
            })
            .collect()
    }
}

/// One step of a sampler (from `t` to `s`), or its final map at `t` (`finalize`).
fn eval_step(
    args: &EvalArgs,
    p: &diffc::typed::Process,
    sampler: &str,
    finalize: bool,
    out: &mut dyn Write,
) -> Result<(), String> {
    use diffc::interp::{sample, tensor_from_npy, tensor_to_npy, SampleCall, SingleStep};
    let sp = diffc::ir::lower::lower_sampler(p, sampler)?;
    let s_def = p.samplers.iter().find(|s| s.name == sampler).unwrap();
    let mut times: std::collections::HashMap<&str, f64> = Default::default();
    let mut call = SampleCall {
        seed: args.seed,
        ..SampleCall::default()
    };
    let mut one = SingleStep {
        k: 0,
        n: s_def.default_grid.len() - 1,
        ..SingleStep::default()
    };
    let mut batch = None;
    for s in &args.sets {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| format!("`--set {s}`: expected NAME=VALUE"))?;
        let v: f64 = value
            .parse()
            .map_err(|_| format!("`--set {s}`: `{value}` is not a number"))?;
        let whole = || parse_size(s, value);
        match name {
            n if n == p.time.name => {
                times.insert("t", v);
            }
            "s" | "r" => {
                times.insert(if name == "s" { "s" } else { "r" }, v);
            }
            "k" => one.k = whole()?,
            "n" => one.n = whole()?,
            "batch" => batch = Some(whole()?),
            n if p.dims.iter().any(|d| d.name == n) => {
                call.sizes.insert(n.to_string(), whole()?);
            }
            n if s_def.params.iter().any(|x| x.name == n && x.overridable) => {
                call.params.insert(n.to_string(), v);
            }
            n => return Err(format!("`--set {n}`: not `{}`, `s`, `r`, `k`, `n`, `batch`, a dimension or a parameter of `{sampler}`", p.time.name)),
        }
    }
    let (t, s) = match (times.get("t"), times.get("s")) {
        (Some(&t), _) if finalize => (t, t),
        (Some(&t), Some(&s)) => (t, s),
        _ if finalize => {
            return Err(format!(
                "the final map runs at a time: give it with --set {}=…",
                p.time.name
            ))
        }
        _ => {
            return Err(format!(
                "a step runs from `{}` to `s`: give both with --set {}=… --set s=…",
                p.time.name, p.time.name
            ))
        }
    };
    one.r = times.get("r").copied();
    let mut outputs = std::collections::HashMap::new();
    for i in &args.inputs {
        let (name, arr) = read_in(i)?;
        if let Some(mask) = mask_input(p, name, &arr)? {
            call.masks.insert(name.to_string(), mask);
        } else if let Some(f) = p.fields.iter().find(|f| f.name == name) {
            let t = tensor_from_npy(&arr, f.elem, name)?;
            batch.get_or_insert(t.shape.first().copied().unwrap_or(0));
            call.state.insert(name.to_string(), t);
        } else if let Some(local) = name.strip_prefix("prev.") {
            one.prev.insert(
                local.to_string(),
                tensor_from_npy(&arr, diffc::typed::Elem::Real, name)?,
            );
        } else if sp.prog.draws.iter().any(|d| d.input() == name) {
            call.draws.insert(
                name.to_string(),
                tensor_from_npy(&arr, diffc::typed::Elem::Real, name)?,
            );
        } else if name.contains('.') {
            outputs.insert(
                name.to_string(),
                tensor_from_npy(&arr, diffc::typed::Elem::Real, name)?,
            );
        } else {
            return Err(format!("step `{sampler}` has no input `{name}`: give fields, NET.FIELD outputs, prev.NAME values or draws"));
        }
    }
    for (name, value) in read_params(&args.params)? {
        let sampler_param = s_def.params.iter().any(|x| x.name == name && x.overridable);
        match (sampler_param, value.f32s()) {
            (true, Some([v])) => {
                call.params.insert(name, *v as f64);
            }
            (true, _) => {
                return Err(format!(
                    "`--param {name}`: a sampler parameter is one number"
                ))
            }
            (false, _) => {
                call.process_params.insert(name, value);
            }
        }
    }
    call.batch = batch.unwrap_or(1);
    // Both times may be the data end; an end given as its nearest f32 is that end.
    let t = diffc::interp::check_step_time(p, "t", t)?;
    let s = diffc::interp::check_step_time(p, "s", s)?;
    call.grid = Some(vec![t, s]);
    // A final map carries its run's step count, and draws as that run's final map does.
    call.finalize_only = finalize;
    call.single_step = Some(one);
    let mut net = Supplied { outputs, calls: 0 };
    let result = match args.backend {
        Backend::Cpu => diffc::cpu::sample(p, &sp, &call, &mut net)?,
        Backend::Gpu => diffc::gpu::sample(p, &sp, &call, &mut net)?,
        Backend::Interp => sample(p, &sp, &call, &mut net)?,
    };
    let mut names: Vec<&String> = result.keys().collect();
    names.sort();
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{dir}`: {e}"))?;
            for name in names {
                let path = std::path::Path::new(dir).join(format!("{name}.npy"));
                diffc::npy::write_file(&tensor_to_npy(&result[name]), &path)
                    .map_err(|e| e.to_string())?;
            }
        }
        None => {
            for name in names {
                let _ = writeln!(out, "{}", output_summary(name, &result[name]));
            }
        }
    }
    Ok(())
}

/// A node mask, when `name` is one of the process's masks.
fn mask_input(
    p: &diffc::typed::Process,
    name: &str,
    arr: &diffc::npy::Array,
) -> Result<Option<diffc::interp::Tensor>, String> {
    if p.masks.iter().any(|m| m.name == name) {
        Ok(Some(diffc::interp::tensor_from_npy(
            arr,
            diffc::typed::Elem::Bool,
            name,
        )?))
    } else {
        Ok(None)
    }
}
