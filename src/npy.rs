//! NumPy `.npy` files: reading and writing dense little-endian arrays in C order.
//!
//! The format (numpy's `numpy/lib/format.py`): the magic string `\x93NUMPY`, a major and a
//! minor version byte, the length of the header (a little-endian `u16` in version 1.0, a
//! `u32` in versions 2.0 and 3.0), the header itself (a Python dict literal with the keys
//! `'descr'`, `'fortran_order'` and `'shape'`, Latin-1 in versions 1.0 and 2.0, UTF-8 in 3.0,
//! padded with spaces and a final `'\n'`), then the raw elements.
//!
//! [`read`] accepts versions 1.0, 2.0 and 3.0 and the dtypes `'<f4'`, `'<f8'`, `'<i4'`,
//! `'<i8'`, `'|u1'` and `'|b1'` (single-byte dtypes with any byte-order character, so `'<u1'`
//! too); `'|i1'`, `'<i2'` and `'<u2'`, which are widened to [`Data::I32`]; `'<u4'` (the
//! C library's class type), which is widened to [`Data::I64`]; and `'<u8'`, read as
//! [`Data::I64`] when every element fits one (an element above 2^63 − 1 is an error naming it).
//! Widened arrays are written back as their wider dtype. Fortran order and big-endian dtypes are errors. Malformed input is an
//! [`NpyError`], never a panic.
//!
//! [`write`] writes version 1.0 headers byte for byte as `np.save` does (version 2.0 when the
//! header would not fit, as numpy does), so numpy reads the files back.
//!
//! The library does not touch the file system by itself: [`read_file`] and [`write_file`] are
//! conveniences for the CLI.
//!
//! # Why this is not `npyz` or `ndarray-npy`
//!
//! Both crates were tried in its place (npyz 0.9.1, ndarray-npy 0.10.0; issue 21).
//! `scripts/npy_crates` runs them beside this module on the same bytes, and both break what
//! this module guarantees for untrusted files:
//!
//! - Both allocate the header length the preamble declares before reading the header: a
//!   version 2.0 file of 20 bytes declaring a 4 GiB header aborts them under a 4 GB
//!   address-space cap. Here the length is checked against the bytes that follow first.
//! - ndarray-npy allocates the element count the shape declares before reading the data: a
//!   header claiming 2^40 `'<f4'` elements aborts it. Here the data's length must match first.
//! - npyz multiplies the axes unchecked: `(2^32, 2^32, 2^32)` panics in a debug build and, in a
//!   release build, wraps to 0 and is read as an empty array. Here the product is checked.
//! - Both parse the header with `py_literal`, which refuses Python 2 long integers (`2L`) that
//!   numpy reads and whose errors are pest's multi-line dumps; ndarray-npy also refuses a
//!   header without its final newline. Here each error is one line saying what is wrong and at
//!   which character.
//! - Neither writes `np.save`'s bytes: npyz writes `'shape': (2, 3, ), }` and ndarray-npy
//!   `'shape': (2, 3)}`, both without numpy's room for the first axis to grow. numpy reads
//!   their files alike, but ours match its own byte for byte (`tests/npy.rs`).
//! - Reading 100 MB of `'<f4'`, npyz's `into_vec` takes about 1.3× as long as [`read`] (76 ms
//!   against 57 ms, medians of 15 alternated in one run on the 2-core development machine);
//!   ndarray-npy's `read_npy` takes as long as [`read`].
//!
//! Guarding the first three from outside would need the header parsed first, which is most of
//! this module; so the format is read and written here.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The magic string every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy aligns the start of the data to this many bytes.
const ARRAY_ALIGN: usize = 64;
/// numpy leaves room in the header for the first axis to grow to this many digits.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;
/// How deeply header values may nest; deeper headers are rejected rather than overflowing the stack.
const MAX_NESTING: usize = 32;

/// A dense array in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The dimensions; empty for a scalar.
    pub shape: Vec<usize>,
    /// The elements, `shape.iter().product()` of them.
    pub data: Data,
}

/// The elements of an [`Array`], by dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// `'<f4'`
    F32(Vec<f32>),
    /// `'<f8'`
    F64(Vec<f64>),
    /// `'<i8'` (and `'<u4'` and `'<u8'`, when read)
    I64(Vec<i64>),
    /// `'<i4'` (and `'|i1'`, `'<i2'` and `'<u2'`, widened, when read)
    I32(Vec<i32>),
    /// `'|u1'`
    U8(Vec<u8>),
    /// `'|b1'`
    Bool(Vec<bool>),
}

impl Data {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::U8(v) => v.len(),
            Data::Bool(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// numpy's descriptor of the dtype, as written in headers: `'<f8'`, `'|b1'`, ….
    pub fn descr(&self) -> &'static str {
        match self {
            Data::F32(_) => "<f4",
            Data::F64(_) => "<f8",
            Data::I64(_) => "<i8",
            Data::I32(_) => "<i4",
            Data::U8(_) => "|u1",
            Data::Bool(_) => "|b1",
        }
    }

    /// The size of one element in bytes.
    pub fn item_size(&self) -> usize {
        match self {
            Data::F32(_) | Data::I32(_) => 4,
            Data::F64(_) | Data::I64(_) => 8,
            Data::U8(_) | Data::Bool(_) => 1,
        }
    }

    /// The numpy name of the dtype (`float32`, `bool`, …), for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Data::F32(_) => "float32",
            Data::F64(_) => "float64",
            Data::I64(_) => "int64",
            Data::I32(_) => "int32",
            Data::U8(_) => "uint8",
            Data::Bool(_) => "bool",
        }
    }

    /// Every element as an `f64` (booleans as 0 and 1; `i64` beyond 2^53 rounds).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Data::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::F64(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Data::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
        }
    }

    /// Every element as an `f32` (rounded to nearest; booleans as 0 and 1).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            Data::F32(v) => v.clone(),
            Data::F64(v) => v.iter().map(|&x| x as f32).collect(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
            Data::I32(v) => v.iter().map(|&x| x as f32).collect(),
            Data::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            Data::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
        }
    }

    /// The elements as class indices: integer dtypes (`int64`, `int32`, `uint8`, and those
    /// widened to them when read: `int16`, `int8`, `uint64`, `uint32`, `uint16`) and `bool` (as
    /// 0 and 1). Floating-point arrays are an error, whatever their values. The range of the
    /// indices is not checked: that is the caller's business, who knows the class count.
    pub fn to_class_indices(&self) -> Result<Vec<i64>, NpyError> {
        match self {
            Data::I64(v) => Ok(v.clone()),
            Data::I32(v) => Ok(v.iter().map(|&x| i64::from(x)).collect()),
            Data::U8(v) => Ok(v.iter().map(|&x| i64::from(x)).collect()),
            Data::Bool(v) => Ok(v.iter().map(|&x| i64::from(x)).collect()),
            Data::F32(_) | Data::F64(_) => Err(NpyError::new(ErrorKind::NotClassIndices {
                dtype: self.type_name(),
            })),
        }
    }

    /// The elements as booleans: a `bool` array, or an integer array (`uint8`, `int32`,
    /// `int64`) whose elements are all 0 or 1. Anything else is an error.
    pub fn to_bools(&self) -> Result<Vec<bool>, NpyError> {
        fn from_ints<T: Copy + Into<i64>>(
            v: &[T],
            dtype: &'static str,
        ) -> Result<Vec<bool>, NpyError> {
            v.iter()
                .enumerate()
                .map(|(index, &x)| match x.into() {
                    0 => Ok(false),
                    1 => Ok(true),
                    value => Err(NpyError::new(ErrorKind::NotBool {
                        dtype,
                        index,
                        value: value.to_string(),
                    })),
                })
                .collect()
        }
        match self {
            Data::Bool(v) => Ok(v.clone()),
            Data::U8(v) => from_ints(v, self.type_name()),
            Data::I32(v) => from_ints(v, self.type_name()),
            Data::I64(v) => from_ints(v, self.type_name()),
            Data::F32(_) | Data::F64(_) => Err(NpyError::new(ErrorKind::NotBools {
                dtype: self.type_name(),
            })),
        }
    }
}

impl Array {
    /// An array, checking that `data` holds as many elements as `shape` asks for.
    pub fn new(shape: Vec<usize>, data: Data) -> Result<Array, NpyError> {
        match element_count(&shape) {
            Some(n) if n == data.len() => Ok(Array { shape, data }),
            Some(n) => Err(NpyError::new(ErrorKind::ShapeMismatch {
                shape,
                needed: n,
                held: data.len(),
            })),
            None => Err(NpyError::new(ErrorKind::ShapeTooLarge { shape })),
        }
    }

    /// A 0-dimensional array holding one element.
    pub fn scalar(data: Data) -> Result<Array, NpyError> {
        Array::new(Vec::new(), data)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// See [`Data::to_f64_vec`].
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.data.to_f64_vec()
    }

    /// See [`Data::to_f32_vec`].
    pub fn to_f32_vec(&self) -> Vec<f32> {
        self.data.to_f32_vec()
    }

    /// See [`Data::to_class_indices`].
    pub fn to_class_indices(&self) -> Result<Vec<i64>, NpyError> {
        self.data.to_class_indices()
    }

    /// See [`Data::to_bools`].
    pub fn to_bools(&self) -> Result<Vec<bool>, NpyError> {
        self.data.to_bools()
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a `.npy` file could not be read or written, or an array not converted.
///
/// `Display` says what is wrong; errors from [`read_file`] and [`write_file`] start with the
/// path of the file.
#[derive(Debug)]
pub struct NpyError {
    path: Option<PathBuf>,
    kind: ErrorKind,
}

/// What went wrong; see [`NpyError`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read.
    Read(std::io::Error),
    /// The file could not be written.
    Write(std::io::Error),
    /// The file does not start with the magic string.
    NotNpy {
        /// The file is empty.
        empty: bool,
    },
    /// The file ends before the header does.
    Truncated {
        /// Where it ends, in words.
        what: String,
    },
    /// A format version other than 1.0, 2.0 and 3.0.
    UnsupportedVersion {
        /// The major version byte.
        major: u8,
        /// The minor version byte.
        minor: u8,
    },
    /// The header is not the dict numpy writes.
    BadHeader {
        /// What is wrong with it.
        message: String,
    },
    /// A dtype this reader does not support.
    UnsupportedDtype {
        /// The descriptor, as in the header.
        descr: String,
    },
    /// A big-endian dtype.
    BigEndian {
        /// The descriptor, as in the header.
        descr: String,
    },
    /// `fortran_order: True`.
    FortranOrder {
        /// The shape.
        shape: Vec<usize>,
    },
    /// The number of elements does not fit in memory addresses.
    ShapeTooLarge {
        /// The shape.
        shape: Vec<usize>,
    },
    /// The data after the header is not the size the shape and dtype ask for.
    DataLength {
        /// The shape.
        shape: Vec<usize>,
        /// The descriptor.
        descr: String,
        /// The number of elements the shape asks for.
        needed: usize,
        /// The size of one element.
        item_size: usize,
        /// The number of bytes after the header.
        held_bytes: usize,
    },
    /// A `'<u8'` element above `i64::MAX`.
    U64TooLarge {
        /// Its index in C order.
        index: usize,
        /// The element.
        value: u64,
    },
    /// A `'|b1'` element that is neither 0 nor 1.
    BadBoolByte {
        /// Its index in C order.
        index: usize,
        /// The byte.
        byte: u8,
    },
    /// An [`Array`] whose data does not have the number of elements its shape asks for.
    ShapeMismatch {
        /// The shape.
        shape: Vec<usize>,
        /// The number of elements the shape asks for.
        needed: usize,
        /// The number of elements the data holds.
        held: usize,
    },
    /// [`Data::to_class_indices`] of a floating-point array.
    NotClassIndices {
        /// The numpy name of the dtype.
        dtype: &'static str,
    },
    /// [`Data::to_bools`] of a floating-point array.
    NotBools {
        /// The numpy name of the dtype.
        dtype: &'static str,
    },
    /// [`Data::to_bools`] of an integer array holding something other than 0 or 1.
    NotBool {
        /// The numpy name of the dtype.
        dtype: &'static str,
        /// The index of the element in C order.
        index: usize,
        /// The element.
        value: String,
    },
}

impl NpyError {
    fn new(kind: ErrorKind) -> NpyError {
        NpyError { path: None, kind }
    }

    fn bad_header(message: impl Into<String>) -> NpyError {
        NpyError::new(ErrorKind::BadHeader {
            message: message.into(),
        })
    }

    fn truncated(what: impl Into<String>) -> NpyError {
        NpyError::new(ErrorKind::Truncated { what: what.into() })
    }

    fn with_path(mut self, path: &Path) -> NpyError {
        self.path = Some(path.to_path_buf());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The file, for errors from [`read_file`] and [`write_file`].
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        write!(f, "{}", self.kind)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Read(e) => write!(f, "cannot read the file: {e}"),
            ErrorKind::Write(e) => write!(f, "cannot write the file: {e}"),
            ErrorKind::NotNpy { empty: true } => write!(f, "not an npy file: the file is empty"),
            ErrorKind::NotNpy { empty: false } => write!(
                f,
                "not an npy file: it does not start with the magic string \\x93NUMPY"
            ),
            ErrorKind::Truncated { what } => write!(f, "truncated header: {what}"),
            ErrorKind::UnsupportedVersion { major, minor } => write!(
                f,
                "unsupported npy format version {major}.{minor} (versions 1.0, 2.0 and 3.0 are supported)"
            ),
            ErrorKind::BadHeader { message } => write!(f, "malformed npy header: {message}"),
            ErrorKind::UnsupportedDtype { descr } => write!(
                f,
                "unsupported dtype {descr} (supported: '<f4', '<f8', '<i8', '<i4', '<i2', '|i1', '<u8', '<u4', '<u2', '|u1', '|b1')"
            ),
            ErrorKind::BigEndian { descr } => write!(
                f,
                "big-endian dtype {descr} is not supported; save a little-endian copy, e.g. np.save(path, a.astype(a.dtype.newbyteorder('<')))"
            ),
            ErrorKind::FortranOrder { shape } => write!(
                f,
                "the array of shape {} is stored in Fortran order (fortran_order: True), which is not supported; save it in C order with np.save(path, np.ascontiguousarray(a))",
                shape_repr(shape)
            ),
            ErrorKind::ShapeTooLarge { shape } => write!(
                f,
                "shape {} has too many elements to address",
                shape_repr(shape)
            ),
            ErrorKind::DataLength {
                shape,
                descr,
                needed,
                item_size,
                held_bytes,
            } => {
                let values = |n: usize| if n == 1 { "value" } else { "values" };
                write!(
                    f,
                    "shape {} needs {needed} {} but the file holds ",
                    shape_repr(shape),
                    values(*needed)
                )?;
                let held = held_bytes / item_size;
                let stray = held_bytes % item_size;
                if stray == 0 {
                    write!(f, "{held}")?;
                } else {
                    write!(
                        f,
                        "{held_bytes} bytes of data: {held} {} of '{descr}' ({item_size} bytes each) and {stray} stray {}",
                        values(held),
                        if stray == 1 { "byte" } else { "bytes" }
                    )?;
                }
                Ok(())
            }
            ErrorKind::U64TooLarge { index, value } => write!(
                f,
                "uint64 element at flat index {index} is {value}, more than an int64 holds (2^63 - 1)"
            ),
            ErrorKind::BadBoolByte { index, byte } => write!(
                f,
                "element {index} of the boolean array is the byte {byte:#04x}, neither 0 nor 1"
            ),
            ErrorKind::ShapeMismatch {
                shape,
                needed,
                held,
            } => write!(
                f,
                "shape {} needs {needed} values but the array holds {held}",
                shape_repr(shape)
            ),
            ErrorKind::NotClassIndices { dtype } => write!(
                f,
                "class indices must be integers (int64, int32, int16, int8, uint64, uint32, uint16, uint8) or bool, but the array holds {dtype}"
            ),
            ErrorKind::NotBools { dtype } => write!(
                f,
                "expected a boolean array (bool, or integers 0 and 1), but the array holds {dtype}"
            ),
            ErrorKind::NotBool {
                dtype,
                index,
                value,
            } => write!(
                f,
                "expected a boolean array, but element {index} of the {dtype} array is {value}, neither 0 nor 1"
            ),
        }
    }
}

impl std::error::Error for NpyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Read(e) | ErrorKind::Write(e) => Some(e),
            _ => None,
        }
    }
}

/// Python's `repr` of a shape tuple: `()`, `(5,)`, `(2, 3)`.
fn shape_repr(shape: &[usize]) -> String {
    match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", dims.join(", "))
        }
    }
}

fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

// ---------------------------------------------------------------------------------------------
// Reading

/// The element types a file may hold, before conversion to [`Data`].
#[derive(Clone, Copy)]
enum Dtype {
    F32,
    F64,
    I64,
    I32,
    I16,
    I8,
    U64,
    U32,
    U16,
    U8,
    Bool,
}

impl Dtype {
    fn item_size(self) -> usize {
        match self {
            Dtype::F32 | Dtype::I32 | Dtype::U32 => 4,
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
            Dtype::I16 | Dtype::U16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
        }
    }
}

/// Reads a `.npy` file from its bytes.
pub fn read(bytes: &[u8]) -> Result<Array, NpyError> {
    // Magic string and version.
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(NpyError::new(ErrorKind::NotNpy { empty: false }));
    }
    if bytes.is_empty() {
        return Err(NpyError::new(ErrorKind::NotNpy { empty: true }));
    }
    if bytes.len() < 8 {
        return Err(NpyError::truncated(format!(
            "the file is {} bytes long and ends before the format version",
            bytes.len()
        )));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let length_size = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(NpyError::new(ErrorKind::UnsupportedVersion {
                major,
                minor,
            }))
        }
    };
    let preamble = 8 + length_size;
    if bytes.len() < preamble {
        return Err(NpyError::truncated(format!(
            "the file is {} bytes long and ends inside the header length",
            bytes.len()
        )));
    }
    let header_len = if length_size == 2 {
        usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))
    } else {
        let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        usize::try_from(n).unwrap_or(usize::MAX)
    };
    // The declared length is only a claim: check it against the bytes before using it (npyz
    // and ndarray-npy allocate it first; see the module's doc).
    let rest = &bytes[preamble..];
    if rest.len() < header_len {
        return Err(NpyError::truncated(format!(
            "the header should be {header_len} bytes long but only {} bytes follow the header length",
            rest.len()
        )));
    }
    let (header_bytes, data) = rest.split_at(header_len);

    // The header: Latin-1 in versions 1.0 and 2.0, UTF-8 in 3.0.
    let header: Vec<char> = if major == 3 {
        match std::str::from_utf8(header_bytes) {
            Ok(s) => s.chars().collect(),
            Err(e) => {
                return Err(NpyError::bad_header(format!(
                    "the header of a version 3.0 file must be UTF-8, but byte {} is not",
                    e.valid_up_to()
                )))
            }
        }
    } else {
        header_bytes.iter().map(|&b| char::from(b)).collect()
    };
    let (descr, fortran_order, shape) = parse_header(&header)?;

    let dtype = parse_descr(&descr)?;
    let descr_text = match &descr {
        Value::Str(s) => s.clone(),
        other => other.to_string(),
    };
    if fortran_order {
        return Err(NpyError::new(ErrorKind::FortranOrder { shape }));
    }
    // Checked, and matched against the bytes held before a single element is decoded: the
    // shape is a claim too.
    let needed = match element_count(&shape) {
        Some(n) if n.checked_mul(dtype.item_size()).is_some() => n,
        _ => return Err(NpyError::new(ErrorKind::ShapeTooLarge { shape })),
    };
    let item_size = dtype.item_size();
    if data.len() != needed * item_size {
        return Err(NpyError::new(ErrorKind::DataLength {
            shape,
            descr: descr_text,
            needed,
            item_size,
            held_bytes: data.len(),
        }));
    }
    let data = decode(dtype, data)?;
    Ok(Array { shape, data })
}

/// Reads the `.npy` file at `path`; errors name the file.
pub fn read_file(path: &Path) -> Result<Array, NpyError> {
    let bytes = crate::limits::read_file(path)
        .map_err(|e| NpyError::new(ErrorKind::Read(e)).with_path(path))?;
    read(&bytes).map_err(|e| e.with_path(path))
}

/// The elements of `data`, whose length the caller has matched to the shape. `chunks_exact`
/// over the bytes: npyz's element-by-element reader took 1.35× as long on 100 MB of `'<f4'`.
fn decode(dtype: Dtype, data: &[u8]) -> Result<Data, NpyError> {
    fn chunks<const N: usize>(data: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        data.chunks_exact(N).map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        })
    }
    Ok(match dtype {
        Dtype::F32 => Data::F32(chunks::<4>(data).map(f32::from_le_bytes).collect()),
        Dtype::F64 => Data::F64(chunks::<8>(data).map(f64::from_le_bytes).collect()),
        Dtype::I32 => Data::I32(chunks::<4>(data).map(i32::from_le_bytes).collect()),
        Dtype::I64 => Data::I64(chunks::<8>(data).map(i64::from_le_bytes).collect()),
        Dtype::I16 => Data::I32(
            chunks::<2>(data)
                .map(|b| i32::from(i16::from_le_bytes(b)))
                .collect(),
        ),
        Dtype::I8 => Data::I32(data.iter().map(|&b| i32::from(b as i8)).collect()),
        Dtype::U32 => Data::I64(
            chunks::<4>(data)
                .map(|b| i64::from(u32::from_le_bytes(b)))
                .collect(),
        ),
        Dtype::U64 => Data::I64(
            chunks::<8>(data)
                .map(u64::from_le_bytes)
                .enumerate()
                .map(|(index, value)| {
                    i64::try_from(value)
                        .map_err(|_| NpyError::new(ErrorKind::U64TooLarge { index, value }))
                })
                .collect::<Result<_, _>>()?,
        ),
        Dtype::U16 => Data::I32(
            chunks::<2>(data)
                .map(|b| i32::from(u16::from_le_bytes(b)))
                .collect(),
        ),
        Dtype::U8 => Data::U8(data.to_vec()),
        Dtype::Bool => Data::Bool(
            data.iter()
                .enumerate()
                .map(|(index, &byte)| match byte {
                    0 => Ok(false),
                    1 => Ok(true),
                    _ => Err(NpyError::new(ErrorKind::BadBoolByte { index, byte })),
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn parse_descr(descr: &Value) -> Result<Dtype, NpyError> {
    let s = match descr {
        Value::Str(s) => s.as_str(),
        other => {
            return Err(NpyError::new(ErrorKind::UnsupportedDtype {
                descr: other.to_string(),
            }))
        }
    };
    let quoted = || Value::Str(s.to_string()).to_string();
    let mut chars = s.chars();
    let (order, code) = match chars.next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, chars.as_str()),
        _ => ('=', s),
    };
    let single = match code {
        "u1" | "B" => Some(Dtype::U8),
        "i1" | "b" => Some(Dtype::I8),
        "b1" | "?" => Some(Dtype::Bool),
        _ => None,
    };
    if let Some(dtype) = single {
        // Byte order means nothing for single bytes.
        return Ok(dtype);
    }
    let multi = match code {
        "f4" => Some(Dtype::F32),
        "f8" => Some(Dtype::F64),
        "i4" => Some(Dtype::I32),
        "i8" => Some(Dtype::I64),
        "i2" => Some(Dtype::I16),
        "u4" => Some(Dtype::U32),
        "u8" => Some(Dtype::U64),
        "u2" => Some(Dtype::U16),
        _ => None,
    };
    match (order, multi) {
        ('<', Some(dtype)) => Ok(dtype),
        ('>', Some(_)) => Err(NpyError::new(ErrorKind::BigEndian { descr: quoted() })),
        _ => Err(NpyError::new(ErrorKind::UnsupportedDtype {
            descr: quoted(),
        })),
    }
}

/// Parses the header dict and checks its keys; returns the descr, fortran_order and shape.
fn parse_header(header: &[char]) -> Result<(Value, bool, Vec<usize>), NpyError> {
    let mut p = Parser { s: header, pos: 0 };
    p.skip_ws();
    if p.pos == header.len() {
        return Err(NpyError::bad_header("the header is empty"));
    }
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != header.len() {
        return Err(p.error("the end of the header after the dict"));
    }
    let entries = match value {
        Value::Dict(entries) => entries,
        other => {
            return Err(NpyError::bad_header(format!(
                "the header is {other}, not a dict"
            )))
        }
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (key, value) in entries {
        let slot = match &key {
            Value::Str(k) if k == "descr" => &mut descr,
            Value::Str(k) if k == "fortran_order" => &mut fortran,
            Value::Str(k) if k == "shape" => &mut shape,
            _ => {
                return Err(NpyError::bad_header(format!(
                    "unexpected key {key} (the header holds 'descr', 'fortran_order' and 'shape')"
                )))
            }
        };
        if slot.is_some() {
            return Err(NpyError::bad_header(format!("the key {key} appears twice")));
        }
        *slot = Some(value);
    }
    let missing = |name: &str| NpyError::bad_header(format!("the header has no '{name}' key"));
    let descr = descr.ok_or_else(|| missing("descr"))?;
    let fortran = match fortran.ok_or_else(|| missing("fortran_order"))? {
        Value::Bool(b) => b,
        other => {
            return Err(NpyError::bad_header(format!(
                "'fortran_order' is {other}, not True or False"
            )))
        }
    };
    let shape = match shape.ok_or_else(|| missing("shape"))? {
        Value::Tuple(dims) => {
            let bad = |v: &Value| {
                NpyError::bad_header(format!("the shape holds {v}, not a non-negative integer"))
            };
            dims.iter()
                .map(|d| match d {
                    Value::Int(text) => text.parse::<usize>().map_err(|_| bad(d)),
                    _ => Err(bad(d)),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        other => {
            return Err(NpyError::bad_header(format!(
                "'shape' is {other}, not a tuple"
            )))
        }
    };
    Ok((descr, fortran, shape))
}

/// The Python literals a header may hold.
#[derive(Debug, Clone)]
enum Value {
    Str(String),
    /// The digits, with a leading `-` if negative.
    Int(String),
    Bool(bool),
    None,
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
}

impl fmt::Display for Value {
    /// Python's `repr`, near enough for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn seq(f: &mut fmt::Formatter<'_>, items: &[Value]) -> fmt::Result {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{item}")?;
            }
            Ok(())
        }
        match self {
            Value::Str(s) => {
                write!(f, "'")?;
                for c in s.chars() {
                    match c {
                        '\'' => write!(f, "\\'")?,
                        '\\' => write!(f, "\\\\")?,
                        c if c.is_control() => write!(f, "{}", c.escape_default())?,
                        c => write!(f, "{c}")?,
                    }
                }
                write!(f, "'")
            }
            Value::Int(text) => write!(f, "{text}"),
            Value::Bool(true) => write!(f, "True"),
            Value::Bool(false) => write!(f, "False"),
            Value::None => write!(f, "None"),
            Value::Tuple(items) => {
                write!(f, "(")?;
                seq(f, items)?;
                if items.len() == 1 {
                    write!(f, ",")?;
                }
                write!(f, ")")
            }
            Value::List(items) => {
                write!(f, "[")?;
                seq(f, items)?;
                write!(f, "]")
            }
            Value::Dict(entries) => {
                write!(f, "{{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                write!(f, "}}")
            }
        }
    }
}

/// A recursive-descent parser of the Python literals numpy writes in headers, depth-bounded,
/// with Python 2 longs (`2L`) and errors that name the character: `py_literal`, which npyz
/// and ndarray-npy use, refuses the longs and reports pest's multi-line dumps.
struct Parser<'a> {
    s: &'a [char],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r' | '\x0c')) {
            self.pos += 1;
        }
    }

    fn error(&self, expected: &str) -> NpyError {
        let found = match self.peek() {
            None => "the header ends".to_string(),
            Some(c) => format!("found {:?}", c),
        };
        // Quote the header, or its first 200 characters.
        let mut text: String = self.s.iter().take(200).collect();
        if self.s.len() > 200 {
            text.push('…');
        }
        NpyError::bad_header(format!(
            "expected {expected} at character {}, but {found}, in {:?}",
            self.pos + 1,
            text.trim_end()
        ))
    }

    fn value(&mut self, depth: usize) -> Result<Value, NpyError> {
        if depth > MAX_NESTING {
            return Err(NpyError::bad_header(format!(
                "values nest more than {MAX_NESTING} deep"
            )));
        }
        self.skip_ws();
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                let mut entries = Vec::new();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some('}') => {
                            self.pos += 1;
                            return Ok(Value::Dict(entries));
                        }
                        None => return Err(self.error("a key or '}'")),
                        _ => {}
                    }
                    let key = self.value(depth + 1)?;
                    self.skip_ws();
                    if self.peek() != Some(':') {
                        return Err(self.error("':'"));
                    }
                    self.pos += 1;
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                    self.skip_ws();
                    match self.peek() {
                        Some(',') => self.pos += 1,
                        Some('}') => {}
                        _ => return Err(self.error("',' or '}'")),
                    }
                }
            }
            Some(open @ ('(' | '[')) => {
                self.pos += 1;
                let close = if open == '(' { ')' } else { ']' };
                let mut items = Vec::new();
                let mut trailing_comma = false;
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some(c) if c == close => {
                            self.pos += 1;
                            break;
                        }
                        None => return Err(self.error(&format!("a value or '{close}'"))),
                        _ => {}
                    }
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    match self.peek() {
                        Some(',') => {
                            self.pos += 1;
                            trailing_comma = true;
                        }
                        Some(c) if c == close => trailing_comma = false,
                        _ => return Err(self.error(&format!("',' or '{close}'"))),
                    }
                }
                if open == '[' {
                    Ok(Value::List(items))
                } else if items.len() == 1 && !trailing_comma {
                    // `(x)` is x, not a tuple.
                    Ok(items.pop().expect("one item"))
                } else {
                    Ok(Value::Tuple(items))
                }
            }
            Some(quote @ ('\'' | '"')) => {
                self.pos += 1;
                let mut text = String::new();
                loop {
                    match self.peek() {
                        None | Some('\n') => return Err(self.error(&format!("closing {quote}"))),
                        Some('\\') => {
                            self.pos += 1;
                            let escaped = match self.peek() {
                                None => return Err(self.error("an escaped character")),
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('r') => '\r',
                                Some('0') => '\0',
                                Some(c) => c,
                            };
                            text.push(escaped);
                            self.pos += 1;
                        }
                        Some(c) if c == quote => {
                            self.pos += 1;
                            return Ok(Value::Str(text));
                        }
                        Some(c) => {
                            text.push(c);
                            self.pos += 1;
                        }
                    }
                }
            }
            Some(c) if c == '-' || c == '+' || c.is_ascii_digit() => {
                let mut text = String::new();
                if c == '-' || c == '+' {
                    if c == '-' {
                        text.push('-');
                    }
                    self.pos += 1;
                    self.skip_ws();
                }
                let start = self.pos;
                while let Some(d) = self.peek().filter(|d| d.is_ascii_digit() || *d == '_') {
                    if d != '_' {
                        text.push(d);
                    }
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(self.error("a digit"));
                }
                // Python 2 wrote long integers as `3L`.
                if matches!(self.peek(), Some('L' | 'l')) {
                    self.pos += 1;
                }
                if matches!(self.peek(), Some(c) if c.is_alphanumeric() || c == '.') {
                    return Err(self.error("an integer"));
                }
                Ok(Value::Int(text))
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_') {
                    self.pos += 1;
                }
                let word: String = self.s[start..self.pos].iter().collect();
                match word.as_str() {
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    "None" => Ok(Value::None),
                    _ => {
                        self.pos = start;
                        Err(self.error("a Python literal"))
                    }
                }
            }
            _ => Err(self.error("a Python literal")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// The header numpy's `np.save` writes for `array`, preamble included: version 1.0, or 2.0
/// when the header is too long for 1.0 (npyz and ndarray-npy write other headers; see the
/// module's doc).
fn header_bytes(array: &Array) -> Vec<u8> {
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        array.data.descr(),
        shape_repr(&array.shape)
    );
    // Room for the first axis to grow in place, as numpy leaves.
    if let Some(first) = array.shape.first() {
        let digits = first.to_string().len();
        dict.extend(std::iter::repeat_n(
            ' ',
            GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits),
        ));
    }
    let hlen = dict.len() + 1; // the final '\n'

    // numpy pads so that the data starts on an ARRAY_ALIGN boundary (a whole ARRAY_ALIGN
    // when it already would), and falls back to version 2.0 when the length needs a u32.
    let padded = |length_size: usize| {
        let preamble = MAGIC.len() + 2 + length_size;
        let padlen = ARRAY_ALIGN - (preamble + hlen) % ARRAY_ALIGN;
        (padlen, hlen + padlen)
    };
    let (version, length_size, (padlen, total)) = match padded(2) {
        (padlen, total) if total <= usize::from(u16::MAX) => (1u8, 2, (padlen, total)),
        _ => (2u8, 4, padded(4)),
    };
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + length_size + total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if length_size == 2 {
        out.extend_from_slice(&(total as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(total as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padlen));
    out.push(b'\n');
    out
}

/// Writes `array` as a `.npy` file, header and padding as `np.save` writes them.
///
/// An array whose data does not hold as many elements as its shape asks for is an
/// `InvalidInput` error, and nothing is written.
pub fn write(array: &Array, out: &mut impl Write) -> std::io::Result<()> {
    match element_count(&array.shape) {
        Some(n) if n == array.data.len() => {}
        _ => {
            let error = match element_count(&array.shape) {
                Some(needed) => ErrorKind::ShapeMismatch {
                    shape: array.shape.clone(),
                    needed,
                    held: array.data.len(),
                },
                None => ErrorKind::ShapeTooLarge {
                    shape: array.shape.clone(),
                },
            };
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                error.to_string(),
            ));
        }
    }
    out.write_all(&header_bytes(array))?;
    let mut bytes = Vec::with_capacity(array.data.len() * array.data.item_size());
    match &array.data {
        Data::F32(v) => v
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
        Data::F64(v) => v
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
        Data::I64(v) => v
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
        Data::I32(v) => v
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
        Data::U8(v) => bytes.extend_from_slice(v),
        Data::Bool(v) => bytes.extend(v.iter().map(|&b| u8::from(b))),
    }
    out.write_all(&bytes)
}

/// Writes `array` to the `.npy` file at `path`, replacing it; errors name the file.
pub fn write_file(array: &Array, path: &Path) -> Result<(), NpyError> {
    let wrap = |e: std::io::Error| NpyError::new(ErrorKind::Write(e)).with_path(path);
    let mut bytes = Vec::new();
    write(array, &mut bytes).map_err(wrap)?;
    std::fs::write(path, bytes).map_err(wrap)
}
