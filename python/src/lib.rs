//! `diffc._diffc`: the Rust side of the `diffc` Python package.
//!
//! A thin layer over the library that mirrors `diffc eval` (`src/cli/eval.rs`): names map to an
//! entry's ports, times, supplied draws and node masks exactly as the CLI maps `--in` and
//! `--set`, so the same inputs and seed give the same bits. The Python side (`diffc/`)
//! converts PyTorch tensors, names the convenience methods and raises `SpecError`.
//! The GIL is released while entries and samplers run; a Python denoiser re-acquires it for
//! each network call.

mod convert;
mod denoise;

use convert::{hold, param_in, tensor_in, tensor_out, time_in, Held};
use diffc::cpu::lean::{EntryRunner, Lent, StepInputs, StepRunner};
use diffc::entries::{Extent, Port};
use diffc::interp::{Call, SampleCall, SingleStep, Tensor};
use diffc::typed::Elem;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Which implementation runs an entry or a sampler.
#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Interp,
    Cpu,
    Gpu,
}

impl Backend {
    fn parse(s: &str) -> PyResult<Backend> {
        match s {
            "interp" => Ok(Backend::Interp),
            "cpu" => Ok(Backend::Cpu),
            "gpu" => Ok(Backend::Gpu),
            _ => Err(PyValueError::new_err(format!(
                "unknown backend `{s}`: expected interp, cpu or gpu"
            ))),
        }
    }
}

fn value_error(message: String) -> PyErr {
    PyValueError::new_err(message)
}

/// Check a spec's text: `(process, diagnostics, rendered, shown)`. The process is `None`
/// when the spec has errors; diagnostics are dicts (severity, code, line, column, end_line,
/// end_column, message, label, notes); `rendered` is the text `diffc check` prints; `shown`
/// says whether any diagnostic is one that runs report
/// (`diffc::diag::Diagnostic::shown_in_runs`: all but W0002).
#[pyfunction]
#[pyo3(signature = (text, path, process=None))]
fn check(
    py: Python<'_>,
    text: &str,
    path: &str,
    process: Option<&str>,
) -> PyResult<(Option<Process>, Py<PyList>, String, bool)> {
    let (module, diags) = py.detach(|| diffc::check::check_source(text));
    let source = diffc::diag::Source { name: path, text };
    let list = PyList::empty(py);
    for d in &diags {
        let (line, column) = source.line_col(d.primary.span.start);
        let (end_line, end_column) = source.line_col(d.primary.span.end);
        let item = PyDict::new(py);
        item.set_item("severity", if d.is_error() { "error" } else { "warning" })?;
        item.set_item("code", d.code.as_str())?;
        item.set_item("line", line)?;
        item.set_item("column", column)?;
        item.set_item("end_line", end_line)?;
        item.set_item("end_column", end_column)?;
        item.set_item("message", &d.message)?;
        item.set_item("label", &d.primary.message)?;
        item.set_item("notes", d.notes.clone())?;
        list.append(item)?;
    }
    let rendered = diffc::diag::render_text(&source, &diags, false);
    let shown = diags.iter().any(diffc::diag::Diagnostic::shown_in_runs);
    let failed = diags.iter().any(diffc::diag::Diagnostic::is_error);
    let module = match module {
        Some(m) if !failed => m,
        _ => return Ok((None, list.unbind(), rendered, shown)),
    };
    let index = pick_process(&module, process).map_err(value_error)?;
    Ok((
        Some(Process {
            module: Arc::new(module),
            index,
            compiled: Mutex::default(),
            runners: Mutex::default(),
            entry_runners: Mutex::default(),
            gpu_runners: Mutex::default(),
        }),
        list.unbind(),
        rendered,
        shown,
    ))
}

/// The process named `name`, or the file's only one (the CLI's `--process` rule).
fn pick_process(module: &diffc::check::Module, name: Option<&str>) -> Result<usize, String> {
    let names = || {
        module
            .processes
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(n) => module
            .processes
            .iter()
            .position(|p| p.name == n)
            .ok_or_else(|| format!("no process `{n}` (the file has: {})", names())),
        None if module.processes.len() == 1 => Ok(0),
        None => Err(format!(
            "the file holds several processes; pick one with process=… ({})",
            names()
        )),
    }
}

/// One checked process of a spec.
#[pyclass(module = "diffc._diffc", frozen)]
struct Process {
    module: Arc<diffc::check::Module>,
    index: usize,
    /// CPU programs compiled so far, by entry or sampler name and variant: a training loop
    /// and a sampler's steps call the same program again and again, and each JIT compile
    /// costs 1–40 ms.
    compiled: Mutex<HashMap<(String, diffc::kernel::build::Variant), Arc<Program>>>,
    /// Lean step runners by sampler (`diffc::cpu::lean`): a `Sampler.step` on the CPU with its
    /// network's outputs given runs from its call sequence on the caller's arrays.
    runners: Mutex<HashMap<String, Arc<StepRunner>>>,
    /// Lean entry runners by entry: an entry on the CPU without supplied draws or node masks
    /// runs from its call sequence, reading its array inputs where they lie.
    entry_runners: Mutex<HashMap<String, Arc<EntryRunner>>>,
    /// Whole-run GPU runners by sampler (`diffc::gpu::resident`): a `sample` on the GPU with a
    /// network callable keeps its state on the device.
    gpu_runners: Mutex<HashMap<String, Arc<diffc::gpu::resident::SampleRunner>>>,
}

/// A compiled CPU program, shared between calls (a `Compiled` may be used from any thread).
struct Program(diffc::cpu::Compiled);

impl Process {
    fn p(&self) -> &diffc::typed::Process {
        &self.module.processes[self.index]
    }

    /// The CPU program of `name` for `variant`, compiled on first use.
    fn program(
        &self,
        name: &str,
        variant: diffc::kernel::build::Variant,
        compile: impl FnOnce() -> Result<diffc::cpu::Compiled, String>,
    ) -> Result<Arc<Program>, String> {
        let key = (name.to_string(), variant);
        if let Some(c) = self
            .compiled
            .lock()
            .map_err(|_| "a poisoned lock")?
            .get(&key)
        {
            return Ok(c.clone());
        }
        let c = Arc::new(Program(compile()?));
        self.compiled
            .lock()
            .map_err(|_| "a poisoned lock")?
            .insert(key, c.clone());
        Ok(c)
    }

    /// The lean runner of `sampler`, compiled on first use.
    fn runner(&self, sampler: &str) -> Result<Arc<StepRunner>, String> {
        if let Some(r) = self
            .runners
            .lock()
            .map_err(|_| "a poisoned lock")?
            .get(sampler)
        {
            return Ok(r.clone());
        }
        let r = Arc::new(StepRunner::new(self.p(), sampler)?);
        self.runners
            .lock()
            .map_err(|_| "a poisoned lock")?
            .insert(sampler.to_string(), r.clone());
        Ok(r)
    }

    /// The GPU runner of `sampler` for whole runs, made on first use.
    fn gpu_runner(&self, sampler: &str) -> Result<Arc<diffc::gpu::resident::SampleRunner>, String> {
        let mut runners = self.gpu_runners.lock().map_err(|_| "a poisoned lock")?;
        if let Some(r) = runners.get(sampler) {
            return Ok(r.clone());
        }
        let r = Arc::new(diffc::gpu::resident::SampleRunner::new(self.p(), sampler)?);
        runners.insert(sampler.to_string(), r.clone());
        Ok(r)
    }

    /// The lean runner of entry `name`, compiled on first use.
    fn entry_runner(&self, name: &str) -> Result<Arc<EntryRunner>, String> {
        if let Some(r) = self
            .entry_runners
            .lock()
            .map_err(|_| "a poisoned lock")?
            .get(name)
        {
            return Ok(r.clone());
        }
        let r = Arc::new(EntryRunner::new(self.p(), name)?);
        self.entry_runners
            .lock()
            .map_err(|_| "a poisoned lock")?
            .insert(name.to_string(), r.clone());
        Ok(r)
    }

    /// A step on the CPU run lean: the state, the network's outputs and the history are read
    /// where they lie; the new state and history are handed over as the kernels wrote them.
    /// Fields the step leaves alone are returned as they were given.
    fn step_lean<'py>(
        &self,
        py: Python<'py>,
        sampler: &str,
        call: &SampleCall,
        net: &Bound<'py, PyAny>,
        state: Vec<(String, Held<'py>)>,
        prev: Vec<(String, Held<'py>)>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let p = self.p();
        let mut outputs = Vec::new();
        if let Ok(given) = net.cast::<PyDict>() {
            for (k, v) in given.iter() {
                let name: String = k
                    .extract()
                    .map_err(|_| PyTypeError::new_err("network output names must be strings"))?;
                denoise::check_output_name(p, sampler, &name)?;
                outputs.push((name.clone(), hold(&name, &v, Elem::Real)?));
            }
        }
        let mut inputs = StepInputs::default();
        for (name, h) in &state {
            inputs.state.insert(name.clone(), h.lent());
        }
        for (name, h) in &prev {
            inputs.prev.insert(name.clone(), h.lent());
        }
        for (name, h) in &outputs {
            inputs.net.insert(name.clone(), h.lent());
        }
        let runner = self.runner(sampler).map_err(value_error)?;
        let result = if net.is_instance_of::<PyDict>() {
            py.detach(|| runner.step(p, call, &inputs))
                .map_err(value_error)?
        } else {
            // A network callable gets the step's buffers, and the state as given, read-only.
            let mut lean_net = denoise::LeanNet::new(net);
            for (name, h) in &state {
                if let Held::Borrowed(r) = h {
                    lean_net.give(name, r.as_any())?;
                }
            }
            let result = py.detach(|| runner.step_net(p, call, &inputs, &mut lean_net));
            match (result, lean_net.error) {
                (Err(_), Some(e)) => return Err(e),
                (Err(m), None) => return Err(value_error(m)),
                (Ok(f), _) => f,
            }
        };
        drop(inputs);
        let mut fields: Vec<(String, Tensor)> = result.into_iter().collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        let d = PyDict::new(py);
        for (name, t) in fields {
            d.set_item(name, convert::recycled_out(py, t, runner.pool())?)?;
        }
        for (name, h) in state {
            if !d.contains(&name)? {
                let obj = match h {
                    Held::Borrowed(r) => (*r).clone().into_any(),
                    Held::Owned(t, _) => tensor_out(py, t)?,
                };
                d.set_item(name, obj)?;
            }
        }
        Ok(d)
    }

    /// A whole run on the CPU run lean (`StepRunner::sample`): the given state is read where it
    /// lies, the denoiser gets the run's own buffers as read-only arrays, and its float32
    /// outputs are read in place. Fields given and never rewritten come back as given.
    fn sample_lean<'py>(
        &self,
        py: Python<'py>,
        sampler: &str,
        call: &SampleCall,
        denoiser: &Bound<'py, PyAny>,
        state: Vec<(String, Held<'py>)>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let p = self.p();
        let runner = self.runner(sampler).map_err(value_error)?;
        let lent: HashMap<String, Lent> =
            state.iter().map(|(n, h)| (n.clone(), h.lent())).collect();
        let mut net = denoise::LeanNet::new(denoiser);
        for (name, h) in &state {
            if let Held::Borrowed(r) = h {
                net.give(name, r.as_any())?;
            }
        }
        let result = py.detach(|| runner.sample(p, call, &lent, &mut net));
        drop(lent);
        let fields = match (result, net.error) {
            (Err(_), Some(e)) => return Err(e),
            (Err(m), None) => return Err(value_error(m)),
            (Ok(f), _) => f,
        };
        let mut fields: Vec<(String, Tensor)> = fields.into_iter().collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        let d = PyDict::new(py);
        for (name, t) in fields {
            d.set_item(name, convert::recycled_out(py, t, runner.pool())?)?;
        }
        for (name, h) in state {
            if !d.contains(&name)? {
                let obj = match h {
                    Held::Borrowed(r) => (*r).clone().into_any(),
                    Held::Owned(t, _) => tensor_out(py, t)?,
                };
                d.set_item(name, obj)?;
            }
        }
        Ok(d)
    }

    /// Run an entry on the CPU backend with its cached program.
    fn run_cpu(
        &self,
        entry: &str,
        prog: &diffc::ir::Program,
        call: &Call,
    ) -> Result<Vec<Tensor>, String> {
        let p = self.p();
        let v = diffc::plan::variant(p, prog, &call.draws, &call.masks);
        let c = self.program(entry, v.clone(), || diffc::cpu::compile_entry(p, prog, &v))?;
        diffc::cpu::run_compiled(p, prog, call, &c.0, Default::default())
    }

    /// Run a sampler (a whole run or one step) on the CPU backend with its cached program.
    fn sample_cpu(
        &self,
        sampler: &str,
        sp: &diffc::ir::SamplerProgram,
        call: &SampleCall,
        den: &mut dyn diffc::interp::Denoiser,
    ) -> Result<HashMap<String, Tensor>, String> {
        let p = self.p();
        let v = diffc::plan::variant(p, &sp.prog, &call.draws, &call.masks);
        let c = self.program(&format!("sampler {sampler}"), v.clone(), || {
            diffc::cpu::compile_sampler(p, sp, &v)
        })?;
        diffc::cpu::sample_recorded(p, sp, call, den, &c.0, Default::default()).map(|(o, _)| o)
    }
}

/// A port's dtype and dims, as `diffc eval --list` prints them (dims by name, `batch` first).
fn port_dict<'py>(
    py: Python<'py>,
    p: &diffc::typed::Process,
    port: &Port,
) -> PyResult<Bound<'py, PyDict>> {
    let dtype = match port.elem {
        _ if port.name == "seed" => "uint64",
        Elem::Real | Elem::Vec(_) | Elem::Mat(_) => "float32",
        Elem::Cat(_) => "int64",
        Elem::Bool => "bool",
    };
    let mut dims: Vec<String> = Vec::new();
    match &port.extent {
        Extent::Field(s) => {
            dims.push("batch".into());
            dims.extend(s.dims.iter().map(|d| p.dims[d.index()].name.clone()));
        }
        Extent::Sample => dims.push("batch".into()),
        Extent::Scalar => {}
    }
    match port.elem {
        Elem::Vec(k) => dims.push(k.to_string()),
        Elem::Mat(k) => {
            dims.push(k.to_string());
            dims.push(k.to_string());
        }
        _ => {}
    }
    let d = PyDict::new(py);
    d.set_item("name", &port.name)?;
    d.set_item("dtype", dtype)?;
    d.set_item("shape", dims)?;
    if let Elem::Cat(k) = port.elem {
        d.set_item("classes", k)?;
    }
    Ok(d)
}

/// `LogQ` → `log_q`: an entry kind as its entries are named.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Read `dict[str, object]` as pairs (a `None` dict is empty).
fn pairs<'py>(d: Option<&Bound<'py, PyDict>>) -> PyResult<Vec<(String, Bound<'py, PyAny>)>> {
    let mut out = Vec::new();
    if let Some(d) = d {
        for (k, v) in d.iter() {
            let k: String = k
                .extract()
                .map_err(|_| PyTypeError::new_err("input names must be strings"))?;
            out.push((k, v));
        }
    }
    Ok(out)
}

fn sizes_of(sizes: Option<&Bound<'_, PyDict>>) -> PyResult<HashMap<String, usize>> {
    let mut out = HashMap::new();
    for (k, v) in pairs(sizes)? {
        let n: usize = v.extract().map_err(|_| {
            PyTypeError::new_err(format!("the size `{k}` must be a non-negative integer"))
        })?;
        out.insert(k, n);
    }
    Ok(out)
}

fn check_sizes(p: &diffc::typed::Process, sizes: &HashMap<String, usize>) -> PyResult<()> {
    for k in sizes.keys() {
        if !p.dims.iter().any(|d| &d.name == k) {
            return Err(value_error(format!(
                "`{k}` is not a dimension of `{}`",
                p.name
            )));
        }
    }
    Ok(())
}

fn params_of(params: Option<&Bound<'_, PyDict>>) -> PyResult<HashMap<String, f64>> {
    let mut out = HashMap::new();
    for (k, v) in pairs(params)? {
        let x: f64 = v
            .extract()
            .map_err(|_| PyTypeError::new_err(format!("the parameter `{k}` must be a number")))?;
        out.insert(k, x);
    }
    Ok(out)
}

/// Process params (`Call::params`): numbers or arrays by the process's param names.
fn process_params(params: Option<&Bound<'_, PyDict>>) -> PyResult<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (k, v) in pairs(params)? {
        out.insert(k.clone(), param_in(&k, &v)?);
    }
    Ok(out)
}

/// A sampler's parameters (numbers, by the sampler's parameter names) and the process's
/// params (everything else), as `diffc eval --sampler … --param` splits them.
type SplitParams = (HashMap<String, f64>, HashMap<String, Tensor>);

fn split_params(
    p: &diffc::typed::Process,
    s: &diffc::typed::Sampler,
    params: Option<&Bound<'_, PyDict>>,
) -> PyResult<SplitParams> {
    let (mut ours, mut process) = (HashMap::new(), HashMap::new());
    for (k, v) in pairs(params)? {
        if s.params.iter().any(|x| x.name == k && x.overridable) {
            let x: f64 = v.extract().map_err(|_| {
                PyTypeError::new_err(format!("the parameter `{k}` of `{}` is one number", s.name))
            })?;
            ours.insert(k, x);
        } else if s.params.iter().any(|x| x.name == k) {
            return Err(value_error(format!(
                "`{k}` is a `let` of the sampler, not a parameter"
            )));
        } else if p.params.iter().any(|x| x.name == k) {
            process.insert(k.clone(), param_in(&k, &v)?);
        } else {
            return Err(value_error(unknown_param(p, s, &k)));
        }
    }
    Ok((ours, process))
}

/// Neither a parameter of the sampler nor a param of the process.
fn unknown_param(p: &diffc::typed::Process, s: &diffc::typed::Sampler, name: &str) -> String {
    let list = |v: Vec<&str>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    format!(
        "sampler `{}` has no parameter `{name}` (its parameters: {}) and `{}` no param `{name}` (its params: {})",
        s.name,
        list(s.params.iter().filter(|x| x.overridable).map(|x| x.name.as_str()).collect()),
        p.name,
        list(p.params.iter().map(|x| x.name.as_str()).collect()),
    )
}

/// Node masks, by the process's mask names.
fn masks_of(
    p: &diffc::typed::Process,
    masks: Option<&Bound<'_, PyDict>>,
) -> PyResult<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (k, v) in pairs(masks)? {
        if !p.masks.iter().any(|m| m.name == k) {
            let names: Vec<&str> = p.masks.iter().map(|m| m.name.as_str()).collect();
            return Err(value_error(format!(
                "`{}` has no mask `{k}` (its masks: {})",
                p.name,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
        out.insert(k.clone(), tensor_in(&k, &v, Elem::Bool)?);
    }
    Ok(out)
}

/// Dimensions a node mask shows (`bool[batch, n]` gives `n`), where `sizes` lacks them.
fn sizes_from_masks(
    p: &diffc::typed::Process,
    masks: &HashMap<String, Tensor>,
    sizes: &mut HashMap<String, usize>,
) {
    for (name, t) in masks {
        if let (Some(m), [_, n]) = (p.masks.iter().find(|m| &m.name == name), t.shape.as_slice()) {
            sizes
                .entry(p.dims[m.dim.index()].name.clone())
                .or_insert(*n);
        }
    }
}

fn outputs_dict<'py>(
    py: Python<'py>,
    outputs: impl IntoIterator<Item = (String, Tensor)>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, t) in outputs {
        d.set_item(name, tensor_out(py, t)?)?;
    }
    Ok(d)
}

#[pymethods]
impl Process {
    #[getter]
    fn name(&self) -> String {
        self.p().name.clone()
    }

    /// The name of the process's time (`t`).
    #[getter]
    fn time(&self) -> String {
        self.p().time.name.clone()
    }

    /// The time domain: `(lo, hi, data_at)`.
    #[getter]
    fn time_domain(&self) -> (f64, f64, f64) {
        let t = &self.p().time;
        (t.lo, t.hi, t.data_at)
    }

    /// The process's `param`s, by name.
    #[getter]
    fn params(&self) -> Vec<String> {
        self.p().params.iter().map(|x| x.name.clone()).collect()
    }

    /// Check that every name is a parameter of the sampler or a param of the process.
    fn check_sampler_params(&self, sampler: &str, names: Vec<String>) -> PyResult<()> {
        let p = self.p();
        let s = p
            .samplers
            .iter()
            .find(|x| x.name == sampler)
            .ok_or_else(|| value_error(format!("no sampler `{sampler}`")))?;
        for k in names {
            if !s.params.iter().any(|x| x.name == k) && !p.params.iter().any(|x| x.name == k) {
                return Err(value_error(unknown_param(p, s, &k)));
            }
        }
        Ok(())
    }

    #[getter]
    fn dims(&self) -> Vec<String> {
        self.p().dims.iter().map(|d| d.name.clone()).collect()
    }

    /// Node masks: `(name, dim)` pairs.
    #[getter]
    fn masks(&self) -> Vec<(String, String)> {
        let p = self.p();
        p.masks
            .iter()
            .map(|m| (m.name.clone(), p.dims[m.dim.index()].name.clone()))
            .collect()
    }

    /// Fields: dicts with name, dtype, shape (dim names, then the class axis of `vec<K>`),
    /// classes (for `cat<K>`), sym.
    fn fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let p = self.p();
        let list = PyList::empty(py);
        for f in &p.fields {
            let port = Port {
                name: f.name.clone(),
                elem: f.elem,
                extent: Extent::Field(f.shape.clone()),
            };
            let d = port_dict(py, p, &port)?;
            d.set_item("sym", f.shape.sym)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Networks: dicts with name, and outputs as `NET.FIELD` names in order.
    fn networks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let p = self.p();
        let list = PyList::empty(py);
        for n in &p.networks {
            let d = PyDict::new(py);
            d.set_item("name", &n.name)?;
            let outs: Vec<String> = n
                .outputs
                .iter()
                .map(|o| format!("{}.{}", n.name, p.field(o.field).name))
                .collect();
            d.set_item("outputs", outs)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Every entry point, as `diffc eval --list` shows them: dicts with name, kind, inputs,
    /// outputs (each a list of port dicts: name, dtype, shape) and, for a sampler's step or
    /// final map, its parameters with their defaults.
    fn entries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let p = self.p();
        let list = PyList::empty(py);
        for e in diffc::entries::entries(p) {
            let d = PyDict::new(py);
            d.set_item("name", &e.name)?;
            d.set_item("kind", snake_case(&format!("{:?}", e.kind)))?;
            let ports = |v: &[Port]| -> PyResult<Bound<'py, PyList>> {
                let l = PyList::empty(py);
                for x in v {
                    l.append(port_dict(py, p, x)?)?;
                }
                Ok(l)
            };
            d.set_item("inputs", ports(&e.inputs)?)?;
            d.set_item("outputs", ports(&e.outputs)?)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Samplers: dicts with name, params (name → the default as the spec writes it), history
    /// (the names of the values a step keeps for the next) and the default grid.
    fn samplers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let p = self.p();
        let list = PyList::empty(py);
        for s in &p.samplers {
            let d = PyDict::new(py);
            d.set_item("name", &s.name)?;
            let params = PyDict::new(py);
            for x in s.params.iter().filter(|x| x.overridable) {
                params.set_item(&x.name, diffc::explain::show(p, x.value))?;
            }
            d.set_item("params", params)?;
            let history: Vec<String> = s
                .history
                .iter()
                .map(|h| p.locals[h.index()].name.clone())
                .collect();
            d.set_item("history", history)?;
            d.set_item("finalize", !s.finalize.is_empty())?;
            d.set_item("grid", s.default_grid.clone())?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// The times a sampler walks with these parameters, from the noise end to the data end.
    #[pyo3(signature = (sampler, params=None))]
    fn sampler_grid(
        &self,
        sampler: &str,
        params: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Vec<f64>> {
        diffc::interp::sampler_grid(self.p(), sampler, &params_of(params)?).map_err(value_error)
    }

    /// The arrays that the last lean CPU call of entry or sampler `name` read where they lie
    /// (the caller's inputs, a network's outputs), as (name, address) in the order read: a
    /// check that nothing was copied on the way in.
    fn _last_reads(&self, name: &str) -> PyResult<Vec<(String, usize)>> {
        let entries = self
            .entry_runners
            .lock()
            .map_err(|_| value_error("a poisoned lock".into()))?;
        let steps = self
            .runners
            .lock()
            .map_err(|_| value_error("a poisoned lock".into()))?;
        let reads = match (entries.get(name), steps.get(name)) {
            (Some(r), _) => r.last_reads(),
            (None, Some(r)) => r.last_reads(),
            (None, None) => return Err(value_error(format!("no lean CPU call of `{name}` yet"))),
        };
        Ok(reads
            .into_iter()
            .map(|(n, at)| (n.trim_matches('`').to_string(), at))
            .collect())
    }

    /// Run an entry point. `inputs` maps names to arrays exactly as `diffc eval --in/--set`
    /// does: a node mask by its name, then a port of the entry (times as numbers or arrays),
    /// then a supplied draw. `draws` and `masks` name those explicitly.
    #[pyo3(signature = (entry, inputs=None, *, seed=0, backend="interp", batch=None, draws=None, masks=None, sizes=None, params=None))]
    #[allow(clippy::too_many_arguments)]
    fn run<'py>(
        &self,
        py: Python<'py>,
        entry: &str,
        inputs: Option<&Bound<'py, PyDict>>,
        seed: u64,
        backend: &str,
        batch: Option<usize>,
        draws: Option<&Bound<'py, PyDict>>,
        masks: Option<&Bound<'py, PyDict>>,
        sizes: Option<&Bound<'py, PyDict>>,
        params: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let p = self.p();
        let backend = Backend::parse(backend)?;
        if entry.starts_with("step.") || entry.starts_with("finalize.") {
            return Err(value_error(format!(
                "`{entry}` is a sampler's: run it with Process.sampler(…).step or .finalize"
            )));
        }
        let prog = py
            .detach(|| diffc::ir::lower::lower(p, entry))
            .map_err(value_error)?;
        let mut call = Call {
            seed,
            sizes: sizes_of(sizes)?,
            masks: masks_of(p, masks)?,
            params: process_params(params)?,
            ..Call::default()
        };
        check_sizes(p, &call.sizes)?;
        let mut field_batch = None;
        let mut time_batch = None;
        // Array inputs, read where they lie when they can be (`convert::hold`).
        let mut held: Vec<(String, Held)> = Vec::new();
        for (name, v) in pairs(inputs)? {
            if p.masks.iter().any(|m| m.name == name) {
                call.masks
                    .insert(name.clone(), tensor_in(&name, &v, Elem::Bool)?);
            } else if let Some(port) = prog.inputs.iter().find(|x| x.name == name) {
                if name == "seed" {
                    return Err(PyTypeError::new_err("give the seed as seed=…"));
                }
                if name == p.time.name || name == "s" {
                    let t = time_in(&name, &v)?;
                    if t.shape.len() == 1 {
                        time_batch = Some(t.shape[0]);
                    }
                    call.inputs.insert(name, t);
                } else if matches!(port.extent, Extent::Scalar) {
                    call.inputs
                        .insert(name.clone(), tensor_in(&name, &v, port.elem)?);
                } else {
                    let h = hold(&name, &v, port.elem)?;
                    if matches!(port.extent, Extent::Field(_)) {
                        field_batch.get_or_insert(h.lent().shape.first().copied().unwrap_or(0));
                    }
                    held.push((name, h));
                }
            } else if prog.draws.iter().any(|d| d.name == name) {
                call.draws
                    .insert(name.clone(), tensor_in(&name, &v, Elem::Real)?);
            } else {
                let known: Vec<&str> = prog
                    .inputs
                    .iter()
                    .map(|x| x.name.as_str())
                    .chain(prog.draws.iter().map(|d| d.name.as_str()))
                    .collect();
                return Err(value_error(format!(
                    "`{entry}` has no input `{name}` (its inputs: {})",
                    known.join(", ")
                )));
            }
        }
        for (name, v) in pairs(draws)? {
            if !prog.draws.iter().any(|d| d.name == name) {
                let names: Vec<&str> = prog.draws.iter().map(|d| d.name.as_str()).collect();
                return Err(value_error(format!(
                    "`{entry}` draws no `{name}` (its draws: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            }
            call.draws
                .insert(name.clone(), tensor_in(&name, &v, Elem::Real)?);
        }
        for port in &prog.inputs {
            if !call.inputs.contains_key(&port.name)
                && !held.iter().any(|(n, _)| *n == port.name)
                && port.name != "seed"
            {
                return Err(value_error(format!("`{entry}` needs `{}`", port.name)));
            }
        }
        call.batch = batch.or(field_batch).or(time_batch).unwrap_or(1);
        let names = prog.outputs.iter().map(|port| port.name.clone());
        if backend == Backend::Cpu && call.draws.is_empty() {
            // Lean: the arrays are read where they lie; the outputs' memory goes back to the
            // runner when numpy frees them.
            let runner = self.entry_runner(entry).map_err(value_error)?;
            let arrays: HashMap<String, Lent> =
                held.iter().map(|(n, h)| (n.clone(), h.lent())).collect();
            let outputs = py
                .detach(|| runner.run(p, &call, &arrays))
                .map_err(value_error)?;
            drop(arrays);
            let d = PyDict::new(py);
            for (name, t) in names.zip(outputs) {
                d.set_item(name, convert::recycled_out(py, t, runner.pool())?)?;
            }
            return Ok(d);
        }
        for (name, h) in held {
            call.inputs.insert(name, h.into_tensor());
        }
        let outputs = py
            .detach(|| match backend {
                Backend::Cpu => self.run_cpu(entry, &prog, &call),
                Backend::Gpu => diffc::gpu::run(p, &prog, &call),
                Backend::Interp => diffc::interp::run(p, &prog, &call),
            })
            .map_err(value_error)?;
        outputs_dict(py, names.zip(outputs))
    }

    /// One step of a sampler from `t` to `s` (or its final map at `t`), on supplied state
    /// (`diffc eval --sampler NAME --entry step|finalize`). `net` is either a dict of network
    /// outputs (`NET.FIELD`, or `NET.FIELD#i` for the i-th call of the step) or a denoiser
    /// callable; `prev` holds the previous step's kept values by name.
    #[pyo3(signature = (sampler, state, net, t, *, s=None, k=0, n=None, r=None, prev=None, finalize=false, params=None, seed=0, backend="interp", draws=None, masks=None, sizes=None))]
    #[allow(clippy::too_many_arguments)]
    fn step<'py>(
        &self,
        py: Python<'py>,
        sampler: &str,
        state: &Bound<'py, PyDict>,
        net: &Bound<'py, PyAny>,
        t: f64,
        s: Option<f64>,
        k: usize,
        n: Option<usize>,
        r: Option<f64>,
        prev: Option<&Bound<'py, PyDict>>,
        finalize: bool,
        params: Option<&Bound<'py, PyDict>>,
        seed: u64,
        backend: &str,
        draws: Option<&Bound<'py, PyDict>>,
        masks: Option<&Bound<'py, PyDict>>,
        sizes: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let p = self.p();
        let backend = Backend::parse(backend)?;
        let sp = py
            .detach(|| diffc::ir::lower::lower_sampler(p, sampler))
            .map_err(value_error)?;
        let s_def = p
            .samplers
            .iter()
            .find(|x| x.name == sampler)
            .ok_or_else(|| value_error(format!("no sampler `{sampler}`")))?;
        let (params, process_params) = split_params(p, s_def, params)?;
        let mut call = SampleCall {
            seed,
            sizes: sizes_of(sizes)?,
            params,
            process_params,
            masks: masks_of(p, masks)?,
            ..SampleCall::default()
        };
        check_sizes(p, &call.sizes)?;
        let state_pairs = pairs(Some(state))?;
        // With the network's outputs given, or a network callable, and no draws, a CPU step
        // runs lean: from its call sequence, on the caller's arrays (`diffc::cpu::lean`); node
        // masks are converted (bools).
        let lean = matches!(backend, Backend::Cpu)
            && (net.cast::<PyDict>().is_ok() || net.is_callable())
            && pairs(draws)?.is_empty();
        let mut held: Vec<(String, Held)> = Vec::new();
        let mut batch = None;
        for (name, v) in state_pairs {
            if p.masks.iter().any(|m| m.name == name) {
                call.masks
                    .insert(name.clone(), tensor_in(&name, &v, Elem::Bool)?);
            } else if let Some(f) = p.fields.iter().find(|f| f.name == name) {
                if lean {
                    let h = hold(&name, &v, f.elem)?;
                    batch.get_or_insert(h.lent().shape.first().copied().unwrap_or(0));
                    held.push((name, h));
                    continue;
                }
                let x = tensor_in(&name, &v, f.elem)?;
                batch.get_or_insert(x.shape.first().copied().unwrap_or(0));
                call.state.insert(name, x);
            } else {
                return Err(value_error(format!(
                    "step `{sampler}` has no input `{name}`: give fields, NET.FIELD outputs, prev.NAME values or draws"
                )));
            }
        }
        for (name, v) in pairs(draws)? {
            if !sp.prog.draws.iter().any(|d| d.name == name) {
                let names: Vec<&str> = sp.prog.draws.iter().map(|d| d.name.as_str()).collect();
                return Err(value_error(format!(
                    "sampler `{sampler}` draws no `{name}` (its draws: {})",
                    names.join(", ")
                )));
            }
            call.draws
                .insert(name.clone(), tensor_in(&name, &v, Elem::Real)?);
        }
        let mut one = SingleStep {
            k,
            n: n.unwrap_or(s_def.default_grid.len() - 1),
            r,
            ..SingleStep::default()
        };
        let mut held_prev: Vec<(String, Held)> = Vec::new();
        for (name, v) in pairs(prev)? {
            if lean {
                held_prev.push((name.clone(), hold(&format!("prev.{name}"), &v, Elem::Real)?));
                continue;
            }
            one.prev.insert(
                name.clone(),
                tensor_in(&format!("prev.{name}"), &v, Elem::Real)?,
            );
        }
        call.batch = batch.unwrap_or(1);
        sizes_from_masks(p, &call.masks, &mut call.sizes);
        let s = match (finalize, s) {
            (true, _) => t,
            (false, Some(s)) => s,
            (false, None) => {
                return Err(value_error(format!(
                    "a step runs from `{}` to `s`: give both",
                    p.time.name
                )))
            }
        };
        // Both times may be the data end; an end given as its nearest f32 is that end.
        let t = diffc::interp::check_step_time(p, "t", t).map_err(value_error)?;
        let s = diffc::interp::check_step_time(p, "s", s).map_err(value_error)?;
        call.grid = Some(vec![t, s]);
        // A final map carries its run's step count, and draws as that run's final map does.
        call.finalize_only = finalize;
        call.single_step = Some(one);
        if lean {
            return self.step_lean(py, sampler, &call, net, held, held_prev);
        }
        let mut den = denoise::Net::new(py, p, sampler, net)?;
        let result = py.detach(|| match backend {
            Backend::Cpu => self.sample_cpu(sampler, &sp, &call, &mut den),
            Backend::Gpu => diffc::gpu::sample(p, &sp, &call, &mut den),
            Backend::Interp => diffc::interp::sample(p, &sp, &call, &mut den),
        });
        let fields = den.finish(result)?;
        outputs_dict(py, fields)
    }

    /// Run a sampler from its start to its final map, calling `denoiser` for every network
    /// evaluation; returns every field it set.
    #[pyo3(signature = (sampler, denoiser, count, *, sizes=None, masks=None, state=None, params=None, seed=0, backend="cpu"))]
    #[allow(clippy::too_many_arguments)]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        sampler: &str,
        denoiser: &Bound<'py, PyAny>,
        count: usize,
        sizes: Option<&Bound<'py, PyDict>>,
        masks: Option<&Bound<'py, PyDict>>,
        state: Option<&Bound<'py, PyDict>>,
        params: Option<&Bound<'py, PyDict>>,
        seed: u64,
        backend: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let p = self.p();
        let backend = Backend::parse(backend)?;
        let sp = py
            .detach(|| diffc::ir::lower::lower_sampler(p, sampler))
            .map_err(value_error)?;
        let s_def = p
            .samplers
            .iter()
            .find(|x| x.name == sampler)
            .ok_or_else(|| value_error(format!("no sampler `{sampler}`")))?;
        let (params, process_params) = split_params(p, s_def, params)?;
        let mut call = SampleCall {
            seed,
            batch: count,
            sizes: sizes_of(sizes)?,
            params,
            process_params,
            masks: masks_of(p, masks)?,
            ..SampleCall::default()
        };
        check_sizes(p, &call.sizes)?;
        let mut held: Vec<(String, Held)> = Vec::new();
        for (name, v) in pairs(state)? {
            let f = p
                .fields
                .iter()
                .find(|f| f.name == name)
                .ok_or_else(|| value_error(format!("`{}` has no field `{name}`", p.name)))?;
            held.push((name.clone(), hold(&name, &v, f.elem)?));
        }
        sizes_from_masks(p, &call.masks, &mut call.sizes);
        if backend == Backend::Cpu && denoiser.is_callable() {
            return self.sample_lean(py, sampler, &call, denoiser, held);
        }
        for (name, h) in held {
            call.state.insert(name, h.into_tensor());
        }
        if backend == Backend::Gpu && denoiser.is_callable() {
            // The state stays on the device; only the network's inputs and outputs cross.
            let runner = self.gpu_runner(sampler).map_err(value_error)?;
            let mut net = denoise::LeanNet::new(denoiser);
            let result = py.detach(|| {
                runner.sample(diffc::gpu::device()?, p, &call, &mut net)
            });
            let fields = match (result, net.error) {
                (Err(_), Some(e)) => return Err(e),
                (Err(m), None) => return Err(value_error(m)),
                (Ok(f), _) => f,
            };
            return outputs_dict(py, fields);
        }
        let mut den = denoise::Net::new(py, p, sampler, denoiser)?;
        let result = py.detach(|| match backend {
            Backend::Cpu => self.sample_cpu(sampler, &sp, &call, &mut den),
            Backend::Gpu => diffc::gpu::sample(p, &sp, &call, &mut den),
            Backend::Interp => diffc::interp::sample(p, &sp, &call, &mut den),
        });
        let fields = den.finish(result)?;
        outputs_dict(py, fields)
    }
}

#[pymodule]
fn _diffc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_class::<Process>()?;
    Ok(())
}
