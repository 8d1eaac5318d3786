//! The network a sampler calls from Python: supplied outputs (one step, diffusers-style) or a
//! Python callable (a whole run).
//!
//! A callable is called with the GIL re-acquired as `f(net, inputs, outputs)`: the network's
//! name, its declared inputs as numpy arrays (batch first; times as 0-d arrays) and the names
//! of the outputs it must return (`NET.FIELD`), and returns one float32 array per output. The
//! Python side (`diffc/__init__.py`) adapts the user's denoiser to this. An exception it
//! raises is kept and re-raised, with its traceback, once the sampler has stopped.

use crate::convert::{net_input_out, net_output_in, reals_in, tensor_out};
use diffc::interp::{Denoiser, NetCall, Tensor};
use diffc::plan::{NetArray, NetFn, NetInput, NetValues};
use diffc::typed::Process;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::collections::HashMap;

pub enum Net {
    /// Outputs by `NET.FIELD` (every call) or `NET.FIELD#i` (the i-th call).
    Supplied {
        outputs: HashMap<String, Tensor>,
        calls: usize,
    },
    Callable {
        f: Py<PyAny>,
        /// The first Python error raised while the sampler ran.
        error: Option<PyErr>,
    },
}

impl Net {
    /// `net` is a dict of outputs or a callable.
    pub fn new(
        _py: Python<'_>,
        p: &Process,
        sampler: &str,
        net: &Bound<'_, PyAny>,
    ) -> PyResult<Net> {
        if let Ok(d) = net.cast::<PyDict>() {
            let mut outputs = HashMap::new();
            for (k, v) in d.iter() {
                let name: String = k
                    .extract()
                    .map_err(|_| PyTypeError::new_err("network output names must be strings"))?;
                check_output_name(p, sampler, &name)?;
                outputs.insert(name.clone(), reals_in(&name, &v)?);
            }
            return Ok(Net::Supplied { outputs, calls: 0 });
        }
        if net.is_callable() {
            return Ok(Net::Callable {
                f: net.clone().unbind(),
                error: None,
            });
        }
        Err(PyTypeError::new_err(
            "the network must be a dict of outputs (NET.FIELD → array) or a callable",
        ))
    }

    /// A sampler's result: the fields it set, by name, or the error it stopped with (the
    /// denoiser's own exception when it raised one).
    pub fn finish(
        self,
        result: Result<HashMap<String, Tensor>, String>,
    ) -> PyResult<Vec<(String, Tensor)>> {
        match (result, self) {
            (Err(_), Net::Callable { error: Some(e), .. }) => Err(e),
            (Err(message), _) => Err(PyValueError::new_err(message)),
            (Ok(fields), _) => {
                let mut v: Vec<(String, Tensor)> = fields.into_iter().collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(v)
            }
        }
    }
}

/// A supplied output's name must be `NET.FIELD` or `NET.FIELD#i` of one of the process's networks.
pub fn check_output_name(p: &Process, sampler: &str, name: &str) -> PyResult<()> {
    let base = name.split('#').next().unwrap_or("");
    let known = p.networks.iter().any(|n| {
        n.outputs
            .iter()
            .any(|o| format!("{}.{}", n.name, p.field(o.field).name) == base)
    });
    if !known {
        return Err(PyValueError::new_err(format!(
            "step `{sampler}` has no input `{name}`: give fields, NET.FIELD outputs, prev.NAME values or draws"
        )));
    }
    Ok(())
}

impl Denoiser for Net {
    fn denoise(&mut self, p: &Process, call: &NetCall) -> Result<Vec<Tensor>, String> {
        let n = &p.networks[call.net];
        let names: Vec<String> = n
            .outputs
            .iter()
            .map(|o| format!("{}.{}", n.name, p.field(o.field).name))
            .collect();
        match self {
            Net::Supplied { outputs, calls } => {
                let i = *calls;
                *calls += 1;
                names
                    .iter()
                    .map(|name| {
                        outputs
                            .get(&format!("{name}#{i}"))
                            .or_else(|| outputs.get(name))
                            .cloned()
                            .ok_or_else(|| {
                                format!(
                                    "the step calls `{}`: give its output `{name}` (or `{name}#{i}` for this call)",
                                    n.name
                                )
                            })
                    })
                    .collect()
            }
            Net::Callable { f, error } => {
                if error.is_some() {
                    return Err("the denoiser raised an exception".into());
                }
                Python::attach(|py| {
                    let result = call_python(py, f, &n.name, call.inputs, &names);
                    result.map_err(|e| {
                        *error = Some(e);
                        "the denoiser raised an exception".to_string()
                    })
                })
            }
        }
    }
}

fn call_python(
    py: Python<'_>,
    f: &Py<PyAny>,
    net: &str,
    inputs: &[Tensor],
    names: &[String],
) -> PyResult<Vec<Tensor>> {
    let arrays = PyList::empty(py);
    for t in inputs {
        // The interpreter keeps its inputs, so the denoiser gets a copy.
        arrays.append(tensor_out(py, t.clone())?)?;
    }
    call_callable(py, f, net, arrays, names)?
        .iter()
        .zip(names)
        .map(|(o, name)| reals_in(name, o))
        .collect()
}

/// Call `f(net, arrays, names)` and check that it returned one array per output.
fn call_callable<'py>(
    py: Python<'py>,
    f: &Py<PyAny>,
    net: &str,
    arrays: Bound<'py, PyList>,
    names: &[String],
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let args = PyTuple::new(
        py,
        [
            net.into_pyobject(py)?.into_any(),
            arrays.into_any(),
            PyList::new(py, names)?.into_any(),
        ],
    )?;
    let out = f.bind(py).call1(args)?;
    let out: Vec<Bound<'_, PyAny>> = out.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "the denoiser of `{net}` must return one array per output ({})",
            names.join(", ")
        ))
    })?;
    if out.len() != names.len() {
        return Err(PyValueError::new_err(format!(
            "the denoiser returned {} outputs for `{net}`, which has {}",
            out.len(),
            names.len()
        )));
    }
    Ok(out)
}

/// A Python callable as the network of a lean step or whole run (`StepRunner::step_net`,
/// `StepRunner::sample`): it gets the run's own buffers as read-only arrays, a state field
/// the caller gave as its read-only view (`given`), and its float32 outputs are read where
/// they lie.
pub struct LeanNet {
    pub f: Py<PyAny>,
    /// The first Python error raised while the run went on.
    pub error: Option<PyErr>,
    /// Read-only views of the state arrays the caller gave, by field name.
    pub given: HashMap<String, Py<PyAny>>,
}

impl LeanNet {
    pub fn new(f: &Bound<'_, PyAny>) -> LeanNet {
        LeanNet {
            f: f.clone().unbind(),
            error: None,
            given: HashMap::new(),
        }
    }

    /// Hand the network the caller's own array for `name` (as a read-only view) when a call
    /// reads that field as given.
    pub fn give(&mut self, name: &str, array: &Bound<'_, PyAny>) -> PyResult<()> {
        let view = array.call_method0("view")?;
        let kw = PyDict::new(array.py());
        kw.set_item("write", false)?;
        view.call_method("setflags", (), Some(&kw))?;
        self.given.insert(name.to_string(), view.unbind());
        Ok(())
    }
}

impl NetFn for LeanNet {
    fn takes_given(&self, name: &str) -> bool {
        self.given.contains_key(name)
    }

    fn call(
        &mut self,
        p: &Process,
        net: usize,
        inputs: &[NetInput],
    ) -> Result<Vec<Box<dyn NetArray>>, String> {
        if self.error.is_some() {
            return Err("the denoiser raised an exception".into());
        }
        let n = &p.networks[net];
        let names: Vec<String> = n
            .outputs
            .iter()
            .map(|o| format!("{}.{}", n.name, p.field(o.field).name))
            .collect();
        let result = Python::attach(|py| -> PyResult<Vec<Box<dyn NetArray>>> {
            let arrays = PyList::empty(py);
            for a in inputs {
                match &a.values {
                    NetValues::Given(name) => {
                        let v = self.given.get(name).ok_or_else(|| {
                            PyValueError::new_err(format!(
                                "internal error: no array given for `{name}`"
                            ))
                        })?;
                        arrays.append(v.bind(py))?;
                    }
                    v => arrays.append(net_input_out(py, &a.shape, v)?)?,
                }
            }
            let out = call_callable(py, &self.f, &n.name, arrays, &names)?;
            out.iter()
                .zip(&names)
                .map(|(o, name)| net_output_in(name, o))
                .collect()
        });
        result.map_err(|e| {
            self.error = Some(e);
            "the denoiser raised an exception".to_string()
        })
    }
}
