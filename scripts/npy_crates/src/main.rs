//! diffc's `.npy` reader against npyz and ndarray-npy: hostile headers (each read in a child
//! process under a 4 GB address-space cap, so an allocation of the claimed size aborts it),
//! headers numpy reads, the bytes each writes, and the read time of 100 MB of `'<f4'`.

#[allow(dead_code)]
#[path = "../../../src/limits.rs"]
mod limits;
#[allow(dead_code)]
#[path = "../../../src/npy.rs"]
mod npy;

use ndarray_npy::ReadNpyExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

/// A version 1.0 file: `header` (a final newline added when `newline`), no padding, then `data`.
fn v1(header: &str, newline: bool, data: &[u8]) -> Vec<u8> {
    let text = if newline {
        format!("{header}\n")
    } else {
        header.to_string()
    };
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(data);
    out
}

fn case_bytes(case: &str) -> Vec<u8> {
    match case {
        // A 12-byte preamble declaring a 4 GiB header, and 8 bytes of it.
        "header-length-4GiB" => {
            let mut b = b"\x93NUMPY\x02\x00".to_vec();
            b.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
            b.extend_from_slice(b"{'descr'");
            b
        }
        "shape-2^40-no-data" => v1(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }",
            true,
            &[],
        ),
        "shape-product-overflows" => v1(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }",
            true,
            &[],
        ),
        "python2-longs" => v1(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 1L), }",
            true,
            &[0; 8],
        ),
        "no-final-newline" => v1(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
            false,
            &[0; 8],
        ),
        "bad-syntax" => v1("{'descr': '<f4' 'fortran_order': False}", true, &[]),
        _ => panic!("unknown case {case}"),
    }
}

/// Reads `bytes` as `'<f4'` with `reader`: "ok", or the error's first line.
fn read_with(reader: &str, bytes: &[u8]) -> String {
    let first_line = |s: String| s.lines().next().unwrap_or("").to_string();
    match reader {
        "diffc" => match npy::read(bytes) {
            Ok(a) => format!("ok {:?}", a.shape),
            Err(e) => first_line(e.to_string()),
        },
        "npyz" => match npyz::NpyFile::new(bytes).and_then(|f| f.into_vec::<f32>()) {
            Ok(v) => format!("ok {} values", v.len()),
            Err(e) => first_line(e.to_string()),
        },
        "ndarray-npy" => match ndarray::ArrayD::<f32>::read_npy(bytes) {
            Ok(a) => format!("ok {:?}", a.shape()),
            Err(e) => first_line(e.to_string()),
        },
        _ => panic!("unknown reader {reader}"),
    }
}

fn hostile() {
    let me = std::env::current_exe().unwrap();
    let cases = [
        "header-length-4GiB",
        "shape-2^40-no-data",
        "shape-product-overflows",
        "python2-longs",
        "no-final-newline",
        "bad-syntax",
    ];
    for case in cases {
        println!("{case}:");
        for reader in ["diffc", "npyz", "ndarray-npy"] {
            let out = Command::new("sh")
                .arg("-c")
                .arg("ulimit -v 4000000 && exec \"$0\" \"$@\"")
                .arg(&me)
                .args(["one", reader, case])
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let outcome = match (out.status.code(), out.status.signal()) {
                (Some(0), _) => said,
                (Some(101), _) => {
                    let err = String::from_utf8_lossy(&out.stderr);
                    let why = err.lines().find(|l| !l.starts_with("thread")).unwrap_or("");
                    format!("PANIC: {why}")
                }
                (_, Some(sig)) => {
                    let err = String::from_utf8_lossy(&out.stderr);
                    format!(
                        "KILLED by signal {sig}: {}",
                        err.lines().next().unwrap_or("")
                    )
                }
                (code, _) => format!("exit {code:?}"),
            };
            let outcome: String = outcome.chars().take(150).collect();
            println!("  {reader:12} {outcome}");
        }
    }
}

fn writers() {
    let data = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
    let mut ours = Vec::new();
    npy::write(
        &npy::Array {
            shape: vec![2, 3],
            data: npy::Data::F64(data.to_vec()),
        },
        &mut ours,
    )
    .unwrap();
    let mut theirs = Vec::new();
    {
        use npyz::WriterBuilder;
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[2, 3])
            .writer(&mut theirs)
            .begin_nd()
            .unwrap();
        w.extend(data).unwrap();
        w.finish().unwrap();
    }
    let mut nd = Vec::new();
    {
        use ndarray_npy::WriteNpyExt;
        let a = ndarray::Array2::from_shape_vec((2, 3), data.to_vec()).unwrap();
        a.write_npy(&mut nd).unwrap();
    }
    let header = |b: &[u8]| {
        let len = usize::from(u16::from_le_bytes([b[8], b[9]]));
        format!("{:?}", String::from_utf8_lossy(&b[10..10 + len]))
    };
    println!("headers written for a (2, 3) float64 array:");
    println!("  diffc {} ({} bytes)", header(&ours), ours.len());
    println!("  npyz  {} ({} bytes)", header(&theirs), theirs.len());
    println!("  ndarray-npy {} ({} bytes)", header(&nd), nd.len());
    let dir = std::env::temp_dir();
    std::fs::write(dir.join("npy_crates_diffc.npy"), &ours).unwrap();
    std::fs::write(dir.join("npy_crates_npyz.npy"), &theirs).unwrap();
    std::fs::write(dir.join("npy_crates_ndarray_npy.npy"), &nd).unwrap();
    println!(
        "  (written to {}/npy_crates_{{diffc,npyz,ndarray_npy}}.npy)",
        dir.display()
    );
}

fn speed() {
    let n = 25_000_000usize; // 100 MB of '<f4'
    let values: Vec<f32> = (0..n).map(|i| (i as f32).sqrt() - 7.5).collect();
    let mut bytes = Vec::new();
    npy::write(
        &npy::Array {
            shape: vec![n],
            data: npy::Data::F32(values.clone()),
        },
        &mut bytes,
    )
    .unwrap();
    let rounds = 15;
    let mut times: [Vec<Duration>; 3] = Default::default();
    for _ in 0..rounds {
        // The three alternate, so that drift on a shared machine falls on each alike.
        let t = Instant::now();
        let a = npy::read(&bytes).unwrap();
        times[0].push(t.elapsed());
        assert_eq!(a.data, npy::Data::F32(values.clone()));
        drop(a);

        let t = Instant::now();
        let b: Vec<f32> = npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap();
        times[1].push(t.elapsed());
        assert!(b == values);
        drop(b);

        let t = Instant::now();
        let c = ndarray::Array1::<f32>::read_npy(&bytes[..]).unwrap();
        times[2].push(t.elapsed());
        assert!(c.as_slice().unwrap() == values.as_slice());
        drop(c);
    }
    println!("reading 100 MB of '<f4' from memory, median of {rounds} (min .. max):");
    for (name, t) in ["diffc::npy::read", "npyz into_vec", "ndarray-npy read_npy"]
        .iter()
        .zip(&mut times)
    {
        t.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "  {name:22} {:7.1} ms  ({:.1} .. {:.1})",
            ms(t[rounds / 2]),
            ms(t[0]),
            ms(t[rounds - 1])
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["one", reader, case] => println!("{}", read_with(reader, &case_bytes(case))),
        [] => {
            hostile();
            writers();
            speed();
        }
        ["speed"] => speed(),
        _ => panic!("usage: npy-crates [speed]"),
    }
}
