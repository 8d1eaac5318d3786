//! `.npy` reading and writing (`diffc::npy`).
//!
//! The reference files under `tests/data/npy/` were made with numpy 2.4.6 by this script,
//! run in that directory; the tests do not need Python:
//!
//! ```python
//! import numpy as np
//! np.save("f4.npy", np.array([[0.0, -1.5, 3.25], [1e-3, np.inf, -np.inf]], dtype=np.float32))
//! np.save("f8.npy", np.array([[0.1, -2.5, 1e300], [5e-324, -0.0, 6.0]], dtype=np.float64))
//! np.save("i4.npy", np.array([-2147483648, -1, 0, 7, 2147483647], dtype=np.int32))
//! np.save("i8.npy", np.array([[-9223372036854775808, -1], [0, 9223372036854775807]], dtype=np.int64))
//! np.save("u1.npy", np.array([0, 1, 128, 255], dtype=np.uint8))
//! np.save("b1.npy", np.array([True, False, False, True], dtype=np.bool_))
//! np.save("i1.npy", np.array([-128, -1, 0, 127], dtype=np.int8))
//! np.save("scalar.npy", np.array(3.5))
//! np.save("empty.npy", np.zeros((0,), dtype=np.float64))
//! np.save("empty_2x0.npy", np.zeros((2, 0), dtype=np.int64))
//! np.save("f8_3d.npy", np.arange(24, dtype=np.float64).reshape(2, 3, 4))
//! with open("v2.npy", "wb") as f:
//!     np.lib.format.write_array(f, np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32), version=(2, 0))
//! with open("v3.npy", "wb") as f:
//!     np.lib.format.write_array(f, np.array([0.25, 0.5], dtype=np.float32), version=(3, 0))
//! np.save("fortran.npy", np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)))
//! np.save("big_endian.npy", np.array([1.0, 2.0], dtype=">f8"))
//! np.save("complex.npy", np.array([1 + 2j], dtype=np.complex128))
//! np.save("header_2x3_f8.npy", np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
//! ```

use diffc::npy::{self, Array, Data, ErrorKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

fn data_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/npy")
        .join(name)
}

fn reference(name: &str) -> Vec<u8> {
    std::fs::read(data_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn read_reference(name: &str) -> Array {
    npy::read_file(&data_path(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn to_bytes(array: &Array) -> Vec<u8> {
    let mut out = Vec::new();
    npy::write(array, &mut out).unwrap();
    out
}

/// A version 1.0 file with the given header text (used as is: no padding) and data.
fn npy_v1(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The error message of reading `bytes`, which must fail.
fn read_error(bytes: &[u8]) -> String {
    match npy::read(bytes) {
        Ok(array) => panic!("read succeeded: {array:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_contains(message: &str, expected: &str) {
    assert!(
        message.contains(expected),
        "the message {message:?} does not contain {expected:?}"
    );
}

/// Bitwise equality, so that NaN and -0.0 count.
fn same(a: &Array, b: &Array) -> bool {
    a.shape == b.shape
        && match (&a.data, &b.data) {
            (Data::F32(x), Data::F32(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
            }
            (Data::F64(x), Data::F64(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
            }
            (x, y) => x == y,
        }
}

fn sample_data(kind: usize, n: usize) -> Data {
    match kind {
        0 => Data::F32(
            (0..n)
                .map(|i| match i % 5 {
                    0 => f32::NAN,
                    1 => -0.0,
                    2 => f32::MAX,
                    3 => f32::MIN_POSITIVE / 2.0,
                    _ => i as f32 * 0.1,
                })
                .collect(),
        ),
        1 => Data::F64(
            (0..n)
                .map(|i| match i % 5 {
                    0 => f64::NAN,
                    1 => f64::NEG_INFINITY,
                    2 => f64::MIN,
                    3 => 5e-324,
                    _ => i as f64 / 3.0,
                })
                .collect(),
        ),
        2 => Data::I64(
            (0..n)
                .map(|i| match i % 3 {
                    0 => i64::MIN,
                    1 => i64::MAX,
                    _ => i as i64 - 7,
                })
                .collect(),
        ),
        3 => Data::I32(
            (0..n)
                .map(|i| match i % 3 {
                    0 => i32::MIN,
                    1 => i32::MAX,
                    _ => -(i as i32),
                })
                .collect(),
        ),
        4 => Data::U8((0..n).map(|i| (i * 37 % 256) as u8).collect()),
        _ => Data::Bool((0..n).map(|i| i % 3 == 0).collect()),
    }
}

#[test]
fn round_trip_every_dtype_and_shape() {
    let shapes: [&[usize]; 5] = [&[], &[0], &[5], &[2, 3, 4], &[3, 0, 2]];
    for kind in 0..6 {
        for shape in shapes {
            let n = shape.iter().product();
            let array = Array::new(shape.to_vec(), sample_data(kind, n)).unwrap();
            let bytes = to_bytes(&array);
            let header_len = bytes.len() - n * array.data.item_size();
            assert_eq!(header_len % 64, 0, "{shape:?} {}", array.data.descr());
            assert_eq!(bytes[header_len - 1], b'\n');
            let back = npy::read(&bytes).unwrap();
            assert!(same(&array, &back), "{array:?} came back as {back:?}");
        }
    }
}

#[test]
fn round_trip_of_a_header_too_long_for_version_1() {
    // numpy falls back to version 2.0 when the header length does not fit in a u16.
    let shape = vec![1usize; 30_000];
    let array = Array::new(shape, Data::F64(vec![2.5])).unwrap();
    let bytes = to_bytes(&array);
    assert_eq!(&bytes[6..8], &[2, 0]);
    let header_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    assert_eq!((12 + header_len) % 64, 0);
    assert_eq!(npy::read(&bytes).unwrap(), array);
}

#[test]
fn reads_numpy_reference_files() {
    let a = read_reference("f4.npy");
    assert_eq!(a.shape, [2, 3]);
    assert_eq!(
        a.data,
        Data::F32(vec![
            0.0,
            -1.5,
            3.25,
            1e-3,
            f32::INFINITY,
            f32::NEG_INFINITY
        ])
    );

    let a = read_reference("f8.npy");
    assert_eq!(a.shape, [2, 3]);
    let Data::F64(v) = &a.data else {
        panic!("{a:?}")
    };
    assert_eq!(v, &[0.1, -2.5, 1e300, 5e-324, -0.0, 6.0]);
    assert!(v[4].is_sign_negative());

    let a = read_reference("i4.npy");
    assert_eq!(a.shape, [5]);
    assert_eq!(a.data, Data::I32(vec![i32::MIN, -1, 0, 7, i32::MAX]));

    let a = read_reference("i8.npy");
    assert_eq!(a.shape, [2, 2]);
    assert_eq!(a.data, Data::I64(vec![i64::MIN, -1, 0, i64::MAX]));

    let a = read_reference("u1.npy");
    assert_eq!(a.shape, [4]);
    assert_eq!(a.data, Data::U8(vec![0, 1, 128, 255]));

    let a = read_reference("b1.npy");
    assert_eq!(a.shape, [4]);
    assert_eq!(a.data, Data::Bool(vec![true, false, false, true]));

    // int8 is widened to int32.
    let a = read_reference("i1.npy");
    assert_eq!(a.shape, [4]);
    assert_eq!(a.data, Data::I32(vec![-128, -1, 0, 127]));

    let a = read_reference("scalar.npy");
    assert_eq!(a.shape, Vec::<usize>::new());
    assert_eq!(a.data, Data::F64(vec![3.5]));

    let a = read_reference("empty.npy");
    assert_eq!(a.shape, [0]);
    assert_eq!(a.data, Data::F64(vec![]));

    let a = read_reference("empty_2x0.npy");
    assert_eq!(a.shape, [2, 0]);
    assert_eq!(a.data, Data::I64(vec![]));

    let a = read_reference("f8_3d.npy");
    assert_eq!(a.shape, [2, 3, 4]);
    assert_eq!(a.data, Data::F64((0..24).map(f64::from).collect()));

    let bytes = reference("v2.npy");
    assert_eq!(&bytes[6..8], &[2, 0]);
    let a = npy::read(&bytes).unwrap();
    assert_eq!(a.shape, [2, 3]);
    assert_eq!(a.data, Data::I32(vec![1, 2, 3, 4, 5, 6]));

    let bytes = reference("v3.npy");
    assert_eq!(&bytes[6..8], &[3, 0]);
    let a = npy::read(&bytes).unwrap();
    assert_eq!(a.shape, [2]);
    assert_eq!(a.data, Data::F32(vec![0.25, 0.5]));
}

#[test]
fn header_bytes_match_numpy() {
    let numpy = reference("header_2x3_f8.npy");
    let array = Array::new(vec![2, 3], Data::F64(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])).unwrap();
    let ours = to_bytes(&array);
    assert_eq!(numpy.len(), 128 + 48);
    let header = |b: &[u8]| String::from_utf8_lossy(&b[..128]).into_owned();
    assert_eq!(header(&ours), header(&numpy));
    assert_eq!(ours, numpy);
}

#[test]
fn rewriting_numpy_files_gives_numpy_bytes() {
    // Every version 1.0 reference file in a dtype we write comes back byte for byte.
    for name in [
        "f4.npy",
        "f8.npy",
        "i4.npy",
        "i8.npy",
        "u1.npy",
        "b1.npy",
        "scalar.npy",
        "empty.npy",
        "empty_2x0.npy",
        "f8_3d.npy",
        "header_2x3_f8.npy",
    ] {
        let numpy = reference(name);
        let ours = to_bytes(&npy::read(&numpy).unwrap());
        assert!(
            ours == numpy,
            "{name}: numpy wrote\n{:?}\nwe wrote\n{:?}",
            String::from_utf8_lossy(&numpy),
            String::from_utf8_lossy(&ours)
        );
    }
}

#[test]
fn reads_headers_other_writers_produce() {
    let f8 = |xs: &[f64]| xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    // Python 2 long integers, no trailing commas, double quotes, other key order,
    // 16-byte alignment and no final newline.
    for header in [
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2L, 1L), }          \n",
        "{\"shape\": (2, 1), \"descr\": \"<f8\", \"fortran_order\": False}",
        "{ 'fortran_order' : False , 'shape' : ( 2 , 1 ) , 'descr' : '<f8' }\n",
    ] {
        let a = npy::read(&npy_v1(header, &f8(&[1.0, -1.0]))).unwrap();
        assert_eq!(a.shape, [2, 1], "{header}");
        assert_eq!(a.data, Data::F64(vec![1.0, -1.0]));
    }
    // `(5)` is the integer 5 in Python, but a 1-element tuple needs its comma; `(5,)` is fine.
    let a = npy::read(&npy_v1(
        "{'descr': '<u1', 'fortran_order': False, 'shape': (3,), }",
        &[1, 2, 3],
    ))
    .unwrap();
    assert_eq!(a.data, Data::U8(vec![1, 2, 3]));
    // Single-byte dtypes with any byte-order character.
    for descr in ["<u1", "|u1", "=u1", "|b1", "<b1", "|i1"] {
        let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (2,), }}");
        let a = npy::read(&npy_v1(&header, &[0, 1])).unwrap();
        assert_eq!(a.to_f64_vec(), [0.0, 1.0], "{descr}");
    }
}

#[test]
fn reads_wider_unsigned_and_short_integers_widened() {
    // uint32 is the C library's class type; uint16 and int16 are other integer dtypes numpy
    // writes. Each is widened (uint32 to int64, the 16-bit ones to int32) with its values
    // kept, extremes included; a big-endian one is refused as every big-endian dtype is.
    let v1 = |descr: &str, shape: &str, data: &[u8]| {
        npy_v1(
            &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"),
            data,
        )
    };
    let u4: Vec<u8> = [0u32, 1, 7, u32::MAX]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let a = npy::read(&v1("<u4", "(2, 2)", &u4)).unwrap();
    assert_eq!(a.shape, [2, 2]);
    assert_eq!(a.data, Data::I64(vec![0, 1, 7, u32::MAX as i64]));
    assert_eq!(a.to_class_indices().unwrap(), [0, 1, 7, u32::MAX as i64]);
    let u2: Vec<u8> = [0u16, 3, u16::MAX]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let a = npy::read(&v1("<u2", "(3,)", &u2)).unwrap();
    assert_eq!(a.data, Data::I32(vec![0, 3, 65535]));
    let i2: Vec<u8> = [i16::MIN, -1, 0, i16::MAX]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let a = npy::read(&v1("<i2", "(4,)", &i2)).unwrap();
    assert_eq!(a.data, Data::I32(vec![-32768, -1, 0, 32767]));
    // Bools from 0/1 unsigned integers.
    let bits: Vec<u8> = [1u32, 0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let a = npy::read(&v1("<u4", "(2,)", &bits)).unwrap();
    assert_eq!(a.to_bools().unwrap(), [true, false]);
    // Sizes are checked against the element size of the file's dtype.
    assert_eq!(
        read_error(&v1("<u4", "(3,)", &[0; 8])),
        "shape (3,) needs 3 values but the file holds 2"
    );
    assert_eq!(
        read_error(&v1(">u4", "(1,)", &[0; 4])),
        "big-endian dtype '>u4' is not supported; save a little-endian copy, e.g. np.save(path, a.astype(a.dtype.newbyteorder('<')))"
    );
    // uint64 is read as int64 when every element fits one; an element past i64::MAX is an
    // error naming it, never wrapped to a negative number.
    let u8s = |xs: &[u64]| xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let a = npy::read(&v1("<u8", "(3,)", &u8s(&[0, 5, i64::MAX as u64]))).unwrap();
    assert_eq!(a.data, Data::I64(vec![0, 5, i64::MAX]));
    assert_eq!(a.to_class_indices().unwrap(), [0, 5, i64::MAX]);
    assert_eq!(
        read_error(&v1("<u8", "(2,)", &u8s(&[1, 1 << 63]))),
        "uint64 element at flat index 1 is 9223372036854775808, more than an int64 holds (2^63 - 1)"
    );
    assert_eq!(
        read_error(&v1(">u8", "(1,)", &[0; 8])),
        "big-endian dtype '>u8' is not supported; save a little-endian copy, e.g. np.save(path, a.astype(a.dtype.newbyteorder('<')))"
    );
}

#[test]
fn conversions() {
    let f = Array::new(vec![3], Data::F32(vec![0.5, -1.0, 2.0])).unwrap();
    assert_eq!(f.to_f64_vec(), [0.5, -1.0, 2.0]);
    assert_eq!(f.to_f32_vec(), [0.5, -1.0, 2.0]);
    let d = Array::new(vec![2], Data::F64(vec![0.1, 1e40])).unwrap();
    assert_eq!(d.to_f32_vec(), [0.1f32, f32::INFINITY]);
    let b = Array::new(vec![3], Data::Bool(vec![true, false, true])).unwrap();
    assert_eq!(b.to_f64_vec(), [1.0, 0.0, 1.0]);
    assert_eq!(b.to_class_indices().unwrap(), [1, 0, 1]);
    assert_eq!(b.to_bools().unwrap(), [true, false, true]);

    let u = Array::new(vec![3], Data::U8(vec![0, 1, 1])).unwrap();
    assert_eq!(u.to_bools().unwrap(), [false, true, true]);
    assert_eq!(u.to_class_indices().unwrap(), [0, 1, 1]);
    let i = Array::new(vec![2], Data::I32(vec![-3, 9])).unwrap();
    assert_eq!(i.to_class_indices().unwrap(), [-3, 9]);
    let l = Array::new(vec![2], Data::I64(vec![1, 0])).unwrap();
    assert_eq!(l.to_bools().unwrap(), [true, false]);
    assert_eq!(l.to_class_indices().unwrap(), [1, 0]);

    assert_eq!(
        f.to_class_indices().unwrap_err().to_string(),
        "class indices must be integers (int64, int32, int16, int8, uint64, uint32, uint16, uint8) or bool, but the array holds float32"
    );
    assert_eq!(
        d.to_bools().unwrap_err().to_string(),
        "expected a boolean array (bool, or integers 0 and 1), but the array holds float64"
    );
    let u2 = Array::new(vec![3], Data::U8(vec![0, 1, 2])).unwrap();
    assert_eq!(
        u2.to_bools().unwrap_err().to_string(),
        "expected a boolean array, but element 2 of the uint8 array is 2, neither 0 nor 1"
    );
}

#[test]
fn files_round_trip_and_errors_name_the_file() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("npy_test");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.npy");
    let array = Array::new(vec![2, 2], Data::I64(vec![1, 2, 3, 4])).unwrap();
    npy::write_file(&array, &path).unwrap();
    assert_eq!(npy::read_file(&path).unwrap(), array);

    let e = npy::read_file(&data_path("fortran.npy")).unwrap_err();
    assert_eq!(e.path(), Some(data_path("fortran.npy").as_path()));
    assert!(e
        .to_string()
        .starts_with(&format!("{}: ", data_path("fortran.npy").display())));
    assert_contains(&e.to_string(), "Fortran order");

    let missing = dir.join("missing.npy");
    let e = npy::read_file(&missing).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Read(_)));
    assert_contains(
        &e.to_string(),
        &format!("{}: cannot read the file: ", missing.display()),
    );

    let e = npy::write_file(&array, &dir.join("no/such/dir/x.npy")).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Write(_)));
    assert_contains(&e.to_string(), "no/such/dir/x.npy: cannot write the file: ");
}

#[test]
fn inconsistent_arrays_are_errors() {
    let e = Array::new(vec![2, 3], Data::F64(vec![0.0; 5])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "shape (2, 3) needs 6 values but the array holds 5"
    );
    let bad = Array {
        shape: vec![4],
        data: Data::U8(vec![1, 2]),
    };
    let mut out = Vec::new();
    let e = npy::write(&bad, &mut out).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(
        e.to_string(),
        "shape (4,) needs 4 values but the array holds 2"
    );
    assert!(out.is_empty());
}

#[test]
fn error_messages() {
    let header = |shape: &str, descr: &str| {
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n")
    };
    let good = reference("header_2x3_f8.npy");

    // Not an npy file at all.
    assert_eq!(read_error(b""), "not an npy file: the file is empty");
    assert_eq!(
        read_error(b"PK\x03\x04 a zip file"),
        "not an npy file: it does not start with the magic string \\x93NUMPY"
    );
    assert_eq!(
        read_error(b"\x93NUM"),
        "truncated header: the file is 4 bytes long and ends before the format version"
    );
    assert_eq!(
        read_error(b"\x93NUMPY\x04\x00\x10\x00"),
        "unsupported npy format version 4.0 (versions 1.0, 2.0 and 3.0 are supported)"
    );
    assert_eq!(
        read_error(&good[..9]),
        "truncated header: the file is 9 bytes long and ends inside the header length"
    );
    assert_eq!(
        read_error(&good[..100]),
        "truncated header: the header should be 118 bytes long but only 90 bytes follow the header length"
    );
    // A version 2.0 length claiming 4 GiB is checked against the bytes before it is used
    // (npyz and ndarray-npy allocate it first; `src/npy.rs`'s module doc).
    let mut huge_header = b"\x93NUMPY\x02\x00".to_vec();
    huge_header.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
    huge_header.extend_from_slice(b"{'descr'");
    assert_eq!(
        read_error(&huge_header),
        "truncated header: the header should be 4294967280 bytes long but only 8 bytes follow the header length"
    );

    // The header.
    let cases: &[(&str, &str)] = &[
        ("   \n", "malformed npy header: the header is empty"),
        (
            "[1, 2]",
            "malformed npy header: the header is [1, 2], not a dict",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), ",
            "malformed npy header: expected a key or '}' at character 59, but the header ends",
        ),
        (
            "{'descr': '<f8' 'fortran_order': False}",
            "malformed npy header: expected ',' or '}' at character 17, but found '\\''",
        ),
        (
            "{'descr': '<f8, 'fortran_order': False}",
            "malformed npy header: expected ',' or '}' at character 18, but found 'f'",
        ),
        (
            "{'descr': '<f8', 'shape': (2, 3), }",
            "malformed npy header: the header has no 'fortran_order' key",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}",
            "malformed npy header: unexpected key 'extra' (the header holds 'descr', 'fortran_order' and 'shape')",
        ),
        (
            "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)}",
            "malformed npy header: the key 'descr' appears twice",
        ),
        (
            "{'descr': '<f8', 'fortran_order': 0, 'shape': (2, 3)}",
            "malformed npy header: 'fortran_order' is 0, not True or False",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (6)}",
            "malformed npy header: 'shape' is 6, not a tuple",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': [2, 3]}",
            "malformed npy header: 'shape' is [2, 3], not a tuple",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, -3)}",
            "malformed npy header: the shape holds -3, not a non-negative integer",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3.0)}",
            "malformed npy header: expected an integer at character 56, but found '.'",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 'x')}",
            "malformed npy header: the shape holds 'x', not a non-negative integer",
        ),
        (
            "{'descr': '<f8', 'fortran_order': false, 'shape': (2, 3)}",
            "malformed npy header: expected a Python literal at character 35, but found 'f'",
        ),
    ];
    for (header, expected) in cases {
        let message = read_error(&npy_v1(header, &[0; 48]));
        assert!(
            message.starts_with(expected),
            "{header}\ngave   {message:?}\nwanted {expected:?}"
        );
    }
    let deep = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': {}{}}}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert_eq!(
        read_error(&npy_v1(&deep, &[])),
        "malformed npy header: values nest more than 32 deep"
    );
    let mut v3 = b"\x93NUMPY\x03\x00".to_vec();
    let text = b"{'descr': '<f8', 'fortran_order': False, 'shape': (\xff), }";
    v3.extend_from_slice(&(text.len() as u32).to_le_bytes());
    v3.extend_from_slice(text);
    assert_eq!(
        read_error(&v3),
        "malformed npy header: the header of a version 3.0 file must be UTF-8, but byte 51 is not"
    );

    // Dtypes and layout.
    assert_eq!(
        read_error(&reference("complex.npy")),
        "unsupported dtype '<c16' (supported: '<f4', '<f8', '<i8', '<i4', '<i2', '|i1', '<u8', '<u4', '<u2', '|u1', '|b1')"
    );
    assert_contains(
        &read_error(&npy_v1(&header("(1,)", "<U5"), &[0; 20])),
        "unsupported dtype '<U5'",
    );
    assert_contains(
        &read_error(&npy_v1(
            "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,)}",
            &[0; 8],
        )),
        "unsupported dtype [('a', '<f8')]",
    );
    assert_eq!(
        read_error(&reference("big_endian.npy")),
        "big-endian dtype '>f8' is not supported; save a little-endian copy, e.g. np.save(path, a.astype(a.dtype.newbyteorder('<')))"
    );
    assert_eq!(
        read_error(&reference("fortran.npy")),
        "the array of shape (2, 3) is stored in Fortran order (fortran_order: True), which is not supported; save it in C order with np.save(path, np.ascontiguousarray(a))"
    );

    // The data.
    assert_eq!(
        read_error(&good[..good.len() - 8]),
        "shape (2, 3) needs 6 values but the file holds 5"
    );
    assert_eq!(
        read_error(&good[..good.len() - 7]),
        "shape (2, 3) needs 6 values but the file holds 41 bytes of data: 5 values of '<f8' (8 bytes each) and 1 stray byte"
    );
    let mut long = good.clone();
    long.extend_from_slice(&[0; 8]);
    assert_eq!(
        read_error(&long),
        "shape (2, 3) needs 6 values but the file holds 7"
    );
    assert_eq!(
        read_error(&npy_v1(&header("()", "<i4"), &[])),
        "shape () needs 1 value but the file holds 0"
    );
    assert_eq!(
        read_error(&npy_v1(&header("(3,)", "|b1"), &[1, 0, 2])),
        "element 2 of the boolean array is the byte 0x02, neither 0 nor 1"
    );
    assert_eq!(
        read_error(&npy_v1(
            &header("(4294967296, 4294967296, 4294967296)", "<f8"),
            &[]
        )),
        "shape (4294967296, 4294967296, 4294967296) has too many elements to address"
    );
    assert_contains(
        &read_error(&npy_v1(&header("(99999999999999999999999,)", "<f8"), &[])),
        "the shape holds 99999999999999999999999, not a non-negative integer",
    );
}

/// Valid files, varied: every reference file and a few written here.
fn seeds() -> Vec<Vec<u8>> {
    let mut files: Vec<Vec<u8>> = std::fs::read_dir(data_path(""))
        .unwrap()
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    files.sort();
    for kind in 0..6 {
        files.push(to_bytes(
            &Array::new(vec![2, 3], sample_data(kind, 6)).unwrap(),
        ));
    }
    files
}

#[test]
fn malformed_input_never_panics() {
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(0x6e70_795f);
    let mut cases = 0usize;
    let mut check = |bytes: &[u8]| {
        cases += 1;
        let result = std::panic::catch_unwind(|| {
            let _ = npy::read(bytes);
        });
        assert!(
            result.is_ok(),
            "npy::read panicked on {:?}",
            String::from_utf8_lossy(bytes)
        );
    };

    // Every truncation of every seed.
    for seed in &seeds {
        for len in 0..seed.len() {
            check(&seed[..len]);
        }
    }
    // Random mutations.
    const INTERESTING: &[u8] = b"\x00\x01\x02\x7f\x80\xff(),:'\"{}[]-0123456789LTF \n\\";
    for _ in 0..4000 {
        let mut bytes = seeds[rng.random_range(0..seeds.len())].clone();
        for _ in 0..rng.random_range(1..=4) {
            let len = bytes.len();
            // Mutations land mostly in the preamble and the header.
            let at = if len == 0 {
                0
            } else if rng.random_bool(0.8) {
                rng.random_range(0..len.min(128))
            } else {
                rng.random_range(0..len)
            };
            let byte = if rng.random_bool(0.5) {
                INTERESTING[rng.random_range(0..INTERESTING.len())]
            } else {
                rng.random()
            };
            match rng.random_range(0..5) {
                0 if at < len => bytes[at] = byte,
                1 if at < len => bytes[at] ^= 1 << rng.random_range(0..8),
                2 if at < len => {
                    bytes.remove(at);
                }
                3 => bytes.insert(at, byte),
                _ => bytes.truncate(at),
            }
        }
        check(&bytes);
    }
    // Headers whose declared length lies.
    for seed in &seeds {
        for length in [0u16, 1, 0x7f, 0xffff] {
            let mut bytes = seed.clone();
            if bytes[6] == 1 {
                bytes[8..10].copy_from_slice(&length.to_le_bytes());
                check(&bytes);
            }
        }
    }
    println!("{cases} cases");
    assert!(cases > 4000);
}
