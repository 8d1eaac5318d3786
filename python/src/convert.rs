//! Arrays across the boundary.
//!
//! In: a numpy array becomes a `diffc::interp::Tensor`, which owns a `Vec`, so its elements are
//! copied once (C-contiguous arrays with one `memcpy`, others element by element in C order).
//! Reals must be float32 (float64 would be rounded, so it is refused), classes any integer
//! type (checked against the field's class count), bools numpy bools. Times are the exception:
//! a Python number or an array of any real or integer dtype, rounded to f32 as the CLI's
//! `--set t=…` is.
//!
//! A lean sampler step (`Held`) reads C-contiguous float32 arrays where they lie instead; any
//! other input is converted as above and the copy is what it reads.
//!
//! Out: a tensor's `Vec<f32>` (or `Vec<bool>`) becomes the buffer of a numpy array without a
//! copy: numpy holds the `Vec` itself and frees it with the array. Classes are widened from
//! u32 to int64 (one pass), the type PyTorch indexes and counts classes with.

use diffc::cpu::lean::{Lent, LentData, Pool};
use diffc::interp::{Data, Tensor};
use diffc::plan::{NetArray, NetValues};
use diffc::typed::Elem;
use numpy::ndarray::{ArrayD, ArrayViewD, IxDyn};
use numpy::prelude::*;
use numpy::{Element, PyArrayDyn, PyReadonlyArrayDyn, PyUntypedArray};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};

/// The numpy dtype name of an object, or its Python type name when it is no array.
fn type_name(obj: &Bound<'_, PyAny>) -> String {
    if let Ok(a) = obj.cast::<PyUntypedArray>() {
        if let Ok(s) = a.dtype().str() {
            return s.to_string();
        }
    }
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "an unknown type".into())
}

/// The shape and elements (in C order) of a numpy array of element type `T`, if it is one.
fn elements<T: Element + Copy>(obj: &Bound<'_, PyAny>) -> Option<(Vec<usize>, Vec<T>)> {
    let a = obj.cast::<PyArrayDyn<T>>().ok()?;
    let r = a.try_readonly().ok()?;
    let shape = r.shape().to_vec();
    let v = match r.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => r.as_array().iter().copied().collect(),
    };
    Some((shape, v))
}

/// Integer elements of any numpy integer dtype, widened to i128 so that every value compares.
fn integers(obj: &Bound<'_, PyAny>) -> Option<(Vec<usize>, Vec<i128>)> {
    macro_rules! try_int {
        ($($t:ty),*) => {$(
            if let Some((s, v)) = elements::<$t>(obj) {
                return Some((s, v.into_iter().map(|x| x as i128).collect()));
            }
        )*};
    }
    try_int!(i64, i32, i16, i8, u8, u16, u32, u64);
    None
}

fn not_array(name: &str, what: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "`{name}` must be a numpy array or a CPU torch.Tensor of {what}, not {}",
        type_name(obj)
    ))
}

/// An input array for a port or a field of element type `elem`.
pub fn tensor_in(name: &str, obj: &Bound<'_, PyAny>, elem: Elem) -> PyResult<Tensor> {
    let is_array = obj.cast::<PyUntypedArray>().is_ok();
    match elem {
        Elem::Real | Elem::Vec(_) | Elem::Mat(_) => match elements::<f32>(obj) {
            Some((shape, v)) => Ok(Tensor {
                shape,
                data: Data::F32(v),
            }),
            None if is_array => Err(PyTypeError::new_err(format!(
                "`{name}` must be float32, not {} (convert it with .astype(numpy.float32) or .float(); diffc does not round float64 silently)",
                type_name(obj)
            ))),
            None => Err(not_array(name, "float32", obj)),
        },
        Elem::Cat(k) => match integers(obj) {
            Some((shape, v)) => {
                if let Some(i) = v.iter().position(|c| *c < 0 || *c >= k as i128) {
                    return Err(PyValueError::new_err(format!(
                        "`{name}` holds class {} at flat index {i}, outside 0..{}",
                        v[i],
                        k - 1
                    )));
                }
                Ok(Tensor {
                    shape,
                    data: Data::Class(v.into_iter().map(|c| c as u32).collect()),
                })
            }
            None if is_array => Err(PyTypeError::new_err(format!(
                "`{name}` holds classes: it must be an integer array, not {}",
                type_name(obj)
            ))),
            None => Err(not_array(name, "integers", obj)),
        },
        Elem::Bool => match elements::<bool>(obj) {
            Some((shape, v)) => Ok(Tensor {
                shape,
                data: Data::Bool(v),
            }),
            None if is_array => Err(PyTypeError::new_err(format!(
                "`{name}` must be a bool array, not {}",
                type_name(obj)
            ))),
            None => Err(not_array(name, "bools", obj)),
        },
    }
}

/// A time: a Python number or a 0-d array is one time for the whole call; a 1-d array is one
/// time per sample. Values are rounded to f32, as `diffc eval --set t=…` rounds them.
pub fn time_in(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    if obj.cast::<PyUntypedArray>().is_err() {
        let v: f64 = obj.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "`{name}` is a time: give a number or an array of numbers, not {}",
                type_name(obj)
            ))
        })?;
        return Ok(Tensor::scalar(v as f32));
    }
    let (shape, v): (Vec<usize>, Vec<f32>) = if let Some((s, v)) = elements::<f32>(obj) {
        (s, v)
    } else if let Some((s, v)) = elements::<f64>(obj) {
        (s, v.into_iter().map(|x| x as f32).collect())
    } else if let Some((s, v)) = integers(obj) {
        (s, v.into_iter().map(|x| x as f32).collect())
    } else {
        return Err(PyTypeError::new_err(format!(
            "`{name}` is a time: its array must hold reals or integers, not {}",
            type_name(obj)
        )));
    };
    match shape.len() {
        0 => Ok(Tensor::scalar(v[0])),
        1 => Ok(Tensor {
            shape,
            data: Data::F32(v),
        }),
        _ => Err(PyValueError::new_err(format!(
            "`{name}` has shape {shape:?}: give one time, or one per sample (shape [batch])"
        ))),
    }
}

/// A process parameter (`param`): a number, a sequence of numbers, or an array of reals or
/// integers, rounded to f32 as `diffc eval --param` rounds what it reads.
pub fn param_in(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    if obj.cast::<PyUntypedArray>().is_ok() {
        let (shape, v): (Vec<usize>, Vec<f32>) = if let Some((s, v)) = elements::<f32>(obj) {
            (s, v)
        } else if let Some((s, v)) = elements::<f64>(obj) {
            (s, v.into_iter().map(|x| x as f32).collect())
        } else if let Some((s, v)) = integers(obj) {
            (s, v.into_iter().map(|x| x as f32).collect())
        } else {
            return Err(PyTypeError::new_err(format!(
                "the param `{name}` must hold numbers, not {}",
                type_name(obj)
            )));
        };
        return Ok(Tensor {
            shape,
            data: Data::F32(v),
        });
    }
    if let Ok(x) = obj.extract::<f64>() {
        return Ok(Tensor::scalar(x as f32));
    }
    if let Ok(v) = obj.extract::<Vec<f64>>() {
        return Ok(Tensor {
            shape: vec![v.len()],
            data: Data::F32(v.into_iter().map(|x| x as f32).collect()),
        });
    }
    Err(PyTypeError::new_err(format!(
        "the param `{name}` must be a number, a list of numbers or an array, not {}",
        type_name(obj)
    )))
}

/// A tensor as a numpy array, moving its buffer (reals and bools) rather than copying it.
pub fn tensor_out<'py>(py: Python<'py>, t: Tensor) -> PyResult<Bound<'py, PyAny>> {
    let shape = IxDyn(&t.shape);
    let bad = |e: numpy::ndarray::ShapeError| {
        PyValueError::new_err(format!(
            "internal error: an output of shape {:?} does not match its elements ({e})",
            t.shape
        ))
    };
    Ok(match t.data {
        Data::F32(v) => ArrayD::from_shape_vec(shape, v)
            .map_err(bad)?
            .into_pyarray(py)
            .into_any(),
        Data::Bool(v) => ArrayD::from_shape_vec(shape, v)
            .map_err(bad)?
            .into_pyarray(py)
            .into_any(),
        Data::Class(v) => ArrayD::from_shape_vec(shape, v.into_iter().map(i64::from).collect())
            .map_err(bad)?
            .into_pyarray(py)
            .into_any(),
    })
}

/// A float32 array (a network's output) as a tensor.
pub fn reals_in(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    tensor_in(name, obj, Elem::Real)
}

/// An input held for a call that reads it in place: a C-contiguous float32 array is borrowed
/// (no copy); anything else is converted as `tensor_in` converts it, and the copy is lent.
pub enum Held<'py> {
    Borrowed(PyReadonlyArrayDyn<'py, f32>),
    Owned(Tensor, Option<Vec<u8>>),
}

impl Held<'_> {
    /// The values as a tensor of the library's (a borrowed array is copied here, once).
    pub fn into_tensor(self) -> Tensor {
        match self {
            Held::Borrowed(r) => Tensor {
                shape: r.shape().to_vec(),
                data: Data::F32(r.as_slice().map(|v| v.to_vec()).unwrap_or_default()),
            },
            Held::Owned(t, _) => t,
        }
    }

    /// The values as the lean runner reads them.
    pub fn lent(&self) -> Lent<'_> {
        match self {
            Held::Borrowed(r) => Lent {
                shape: r.shape(),
                // A borrowed array is contiguous: `hold` checked it.
                data: LentData::F32(r.as_slice().unwrap_or(&[])),
            },
            Held::Owned(t, b) => Lent {
                shape: &t.shape,
                data: match (&t.data, b) {
                    (Data::F32(v), _) => LentData::F32(v),
                    (Data::Class(v), _) => LentData::U32(v),
                    (Data::Bool(_), Some(b)) => LentData::U8(b),
                    (Data::Bool(_), None) => LentData::U8(&[]),
                },
            },
        }
    }
}

/// Hold an input of element type `elem` for a lean call.
pub fn hold<'py>(name: &str, obj: &Bound<'py, PyAny>, elem: Elem) -> PyResult<Held<'py>> {
    if matches!(elem, Elem::Real | Elem::Vec(_) | Elem::Mat(_)) {
        if let Ok(a) = obj.cast::<PyArrayDyn<f32>>() {
            if let Ok(r) = a.try_readonly() {
                if r.as_slice().is_ok() {
                    return Ok(Held::Borrowed(r));
                }
            }
        }
    }
    let t = tensor_in(name, obj, elem)?;
    let bytes = match &t.data {
        Data::Bool(v) => Some(v.iter().map(|b| *b as u8).collect()),
        _ => None,
    };
    Ok(Held::Owned(t, bytes))
}

/// The memory of a real array a lean step returned: when numpy frees the array, the memory
/// goes back to the runner that wrote it, for its next step to write into (`Pool::recycle`).
#[pyclass(module = "diffc._diffc", frozen)]
pub struct Recycled {
    v: Mutex<Vec<f32>>,
    pool: Arc<Pool>,
}

impl Drop for Recycled {
    fn drop(&mut self) {
        if let Ok(v) = self.v.get_mut() {
            self.pool.recycle(std::mem::take(v));
        }
    }
}

/// A lean call's output as a numpy array; reals go back to the runner's `pool` when the array
/// dies.
pub fn recycled_out<'py>(
    py: Python<'py>,
    t: Tensor,
    pool: &Arc<Pool>,
) -> PyResult<Bound<'py, PyAny>> {
    let Data::F32(v) = t.data else {
        return tensor_out(py, t);
    };
    let n: usize = t.shape.iter().product();
    if n != v.len() {
        return Err(PyValueError::new_err(format!(
            "internal error: an output of shape {:?} holds {} values",
            t.shape,
            v.len()
        )));
    }
    let ptr = v.as_ptr();
    let owner = Bound::new(
        py,
        Recycled {
            v: Mutex::new(v),
            pool: pool.clone(),
        },
    )?;
    // SAFETY: `ptr` is the buffer of the Vec inside `owner` (moving a Vec does not move its
    // elements), which holds `n` floats in C order and lives as long as the array, its base.
    let view = unsafe { ArrayViewD::from_shape_ptr(IxDyn(&t.shape), ptr) };
    Ok(unsafe { PyArrayDyn::borrow_from_array(&view, owner.into_any()) }.into_any())
}

/// Reals a lean run shares with a network callable: the base of the read-only numpy array the
/// callable gets, keeping the values alive as long as it holds them.
#[pyclass(module = "diffc._diffc", frozen)]
pub struct SharedReals {
    _values: Arc<Vec<f32>>,
}

/// A lean run's network input as a numpy array: reals as a read-only view of the run's own
/// buffer (no copy; numpy refuses writes), classes widened to int64 and bools as a copy.
pub fn net_input_out<'py>(
    py: Python<'py>,
    shape: &[usize],
    values: &NetValues,
) -> PyResult<Bound<'py, PyAny>> {
    let (v, owner) = match values {
        NetValues::Reals(v) => (v, Bound::new(py, SharedReals { _values: v.clone() })?),
        NetValues::Classes(v) => {
            return tensor_out(
                py,
                Tensor {
                    shape: shape.to_vec(),
                    data: Data::Class(v.to_vec()),
                },
            )
        }
        NetValues::Given(name) => {
            return Err(PyValueError::new_err(format!(
                "internal error: `{name}` is the caller's array, handed on by the network call"
            )))
        }
        NetValues::Bools(v) => {
            return tensor_out(
                py,
                Tensor {
                    shape: shape.to_vec(),
                    data: Data::Bool(v.iter().map(|b| *b != 0).collect()),
                },
            )
        }
    };
    let n: usize = shape.iter().product();
    if n != v.len() {
        return Err(PyValueError::new_err(format!(
            "internal error: a network input of shape {shape:?} holds {} values",
            v.len()
        )));
    }
    // SAFETY: `v`'s buffer holds `n` floats in C order; `owner` holds the same `Arc`, so the
    // buffer lives as long as the array (its base). The run never writes it again.
    let view = unsafe { ArrayViewD::from_shape_ptr(IxDyn(shape), v.as_ptr()) };
    let a = unsafe { PyArrayDyn::borrow_from_array(&view, owner.into_any()) };
    let kw = pyo3::types::PyDict::new(py);
    kw.set_item("write", false)?;
    a.call_method("setflags", (), Some(&kw))?;
    Ok(a.into_any())
}

/// A network callable's float32 output, read where it lies: the array is kept (not copied)
/// until the step that called the network is done with it.
pub struct KeptArray {
    _array: Py<PyAny>,
    shape: Vec<usize>,
    ptr: *const f32,
    len: usize,
}

impl NetArray for KeptArray {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn values(&self) -> &[f32] {
        // SAFETY: `ptr` points at `len` floats of the array `_array` keeps alive (C-contiguous,
        // checked when kept).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// A network output for a lean run: a C-contiguous float32 array is kept and read in place;
/// anything else is converted as `reals_in` converts it.
pub fn net_output_in(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Box<dyn NetArray>> {
    if let Ok(a) = obj.cast::<PyArrayDyn<f32>>() {
        if let Ok(r) = a.try_readonly() {
            if let Ok(s) = r.as_slice() {
                return Ok(Box::new(KeptArray {
                    shape: r.shape().to_vec(),
                    ptr: s.as_ptr(),
                    len: s.len(),
                    _array: obj.clone().unbind(),
                }));
            }
        }
    }
    Ok(Box::new(reals_in(name, obj)?))
}
