//! `diffc build --target cpu`: the shared library and its C header, used from C programs
//! compiled with the system C compiler (`$CC`, or `cc`; these tests fail without one).
//!
//! - The C example runs one DDPM ancestral step exactly as `diffc eval --backend cpu` does.
//! - Every shipped spec builds into a library that a C program links and loads.
//! - Every sampler of every shipped spec, run from its start to its final map through the
//!   library's runtime with a deterministic denoiser written in C, gives what `diffc::cpu::sample`
//!   gives with the same denoiser in Rust, bit for bit; so does every discrete-time entry.
//! - Every entry that takes a time, called through its `_at` variant with one time per sample
//!   (and with run-time params where the process has them), gives what the CPU backend gives
//!   for the same per-sample call, bit for bit; `vp_sde`'s equals `diffc eval` bit for bit.
//! - Bad invocations exit with code 2 and say why.

mod common;

use diffc::entries::{entries, EntryKind, Extent as PortExtent, Port};
use diffc::interp::{Call, Data, Denoiser, SampleCall, Tensor};
use diffc::typed::{Elem, NetInput, ParamKind, Process, TimeKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn diffc<S: AsRef<OsStr>>(args: &[S]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_diffc"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An empty folder of this test run.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("diffc-aot-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn spec(name: &str) -> String {
    format!("{}/specs/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Run the C compiler; a missing compiler fails the test.
fn cc<S: AsRef<OsStr>>(args: &[S]) {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc).args(args).output().unwrap_or_else(|e| {
        panic!("these tests need a C compiler: cannot run `{cc}` ({e}); install one or set CC")
    });
    assert!(
        out.status.success(),
        "`{cc}` failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `diffc build --target cpu` of the shipped spec `spec_file` into `dir`.
fn build(spec_file: &str, dir: &Path) {
    build_path(Path::new(&spec(spec_file)), dir);
}

/// `diffc build --target cpu` of the spec at `spec_file` into `dir`.
fn build_path(spec_file: &Path, dir: &Path) {
    let (code, out, err) = diffc(&[
        "build".as_ref(),
        spec_file.as_os_str(),
        "--target".as_ref(),
        "cpu".as_ref(),
        "-o".as_ref(),
        dir.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "diffc build {}: {err}", spec_file.display());
    assert!(out.contains("wrote"), "{out}");
}

/// Compile a C program against a built library, with the flags a user would use.
fn compile_against(lib: &Path, stem: &str, source: &Path, exe: &Path) {
    cc(&[
        "-std=c99".as_ref(),
        "-O2".as_ref(),
        "-Wall".as_ref(),
        "-Wextra".as_ref(),
        "-Werror".as_ref(),
        "-ffp-contract=off".as_ref(),
        "-I".as_ref(),
        lib.as_os_str(),
        source.as_os_str(),
        "-L".as_ref(),
        lib.as_os_str(),
        format!("-l{stem}").as_ref(),
        format!("-Wl,-rpath,{}", lib.display()).as_ref(),
        "-lm".as_ref(),
        "-ldl".as_ref(),
        "-o".as_ref(),
        exe.as_os_str(),
    ]);
}

fn run(exe: &Path, args: &[&OsStr]) -> String {
    let out = Command::new(exe).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn f32s(a: &diffc::npy::Array) -> Vec<f32> {
    match &a.data {
        diffc::npy::Data::F32(v) => v.clone(),
        _ => panic!("expected float32"),
    }
}

#[test]
fn the_c_example_runs_a_ddpm_step_exactly_as_diffc_eval() {
    let dir = scratch("ddpm");
    let lib = dir.join("lib");
    build("ddpm.diff", &lib);
    let exe = dir.join("ddpm_step");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/c/ddpm_step.c");
    compile_against(&lib, "ddpm", &example, &exe);
    // Batch 3, d = 37: not a multiple of the kernel's four lanes.
    let (batch, d) = (3, 37);
    let mut rng = StdRng::seed_from_u64(2024);
    let mut array = || diffc::npy::Array {
        shape: vec![batch, d],
        data: diffc::npy::Data::F32(
            (0..batch * d)
                .map(|_| rng.random_range(-2.0f32..2.0))
                .collect(),
        ),
    };
    let (x, eps) = (dir.join("x.npy"), dir.join("eps.npy"));
    diffc::npy::write_file(&array(), &x).unwrap();
    diffc::npy::write_file(&array(), &eps).unwrap();
    for (k, seed) in [(0u32, 11u64), (417, 12), (999, 13)] {
        let out = dir.join(format!("out{k}.npy"));
        let printed = run(
            &exe,
            &[
                x.as_os_str(),
                eps.as_os_str(),
                out.as_os_str(),
                k.to_string().as_ref(),
                seed.to_string().as_ref(),
            ],
        );
        // The default grid runs 1000, 999, …, 0: step k goes from 1000 − k to 999 − k.
        let (t, s) = (1000 - k, 999 - k);
        assert!(
            printed.contains(&format!("t = {t} -> s = {s}")),
            "{printed}"
        );
        let eval = dir.join(format!("eval{k}"));
        let (code, _, err) = diffc(&[
            "eval".as_ref(),
            spec("ddpm.diff").as_ref(),
            "--process".as_ref(),
            "ddpm_linear".as_ref(),
            "--sampler".as_ref(),
            "ancestral".as_ref(),
            "--entry".as_ref(),
            "step".as_ref(),
            format!("--in=x={}", x.display()).as_ref(),
            format!("--in=eps_hat.x={}", eps.display()).as_ref(),
            format!("--set=t={t}").as_ref(),
            format!("--set=s={s}").as_ref(),
            format!("--set=k={k}").as_ref(),
            format!("--seed={seed}").as_ref(),
            "--backend".as_ref(),
            "cpu".as_ref(),
            "--out".as_ref(),
            eval.as_os_str(),
        ]);
        assert_eq!(code, Some(0), "{err}");
        let ours = diffc::npy::read_file(&out).unwrap();
        let theirs = diffc::npy::read_file(&eval.join("x.npy")).unwrap();
        assert_eq!(ours.shape, vec![batch, d]);
        assert_eq!(ours.shape, theirs.shape);
        let (a, b) = (f32s(&ours), f32s(&theirs));
        let max = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        println!("ddpm ancestral step {k}: max |C − diffc eval| = {max:e}");
        // Same kernel, same coefficients, same C library: the same bits.
        assert!(
            a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
            "step {k}: the C example differs from diffc eval by up to {max:e}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The runtime is a C file of its own (`src/cpu/runtime.c`): it compiles alone against a
/// generated header, warnings as errors (its static functions are used by each library's
/// generated entry points, so unused ones are allowed here), and every library's
/// `<stem>_runtime.c` holds it verbatim.
#[test]
fn the_c_runtime_is_a_c_file_that_compiles_on_its_own() {
    let dir = scratch("runtime");
    build("ddpm.diff", &dir);
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cpu/runtime.c");
    let header = dir.join("ddpm.h");
    cc(&[
        "-std=c99".as_ref(),
        "-Wall".as_ref(),
        "-Wextra".as_ref(),
        "-Werror".as_ref(),
        "-Wno-unused-function".as_ref(),
        "-fsyntax-only".as_ref(),
        "-include".as_ref(),
        header.as_os_str(),
        runtime.as_os_str(),
    ]);
    let text = std::fs::read_to_string(&runtime).unwrap();
    let generated = std::fs::read_to_string(dir.join("ddpm_runtime.c")).unwrap();
    assert!(
        generated.contains(&text),
        "ddpm_runtime.c does not hold src/cpu/runtime.c"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_shipped_spec_builds_a_library_that_links_and_loads() {
    let dir = scratch("all");
    let mut specs: Vec<String> = std::fs::read_dir(spec(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".diff"))
        .collect();
    specs.sort();
    assert!(specs.len() >= 12, "{specs:?}");
    for file in &specs {
        let stem = file.trim_end_matches(".diff");
        let lib = dir.join(stem);
        build(file, &lib);
        // Linking an executable against the library resolves every symbol it imports; loading
        // it with RTLD_NOW binds them all.
        let main = dir.join(format!("{stem}_main.c"));
        std::fs::write(
            &main,
            format!(
                "#include \"{stem}.h\"\n#include <dlfcn.h>\n#include <stdio.h>\n\
                 int main(int argc, char **argv) {{\n  if (argc != 2) return 2;\n  \
                 void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);\n  \
                 if (!h) {{\n    fprintf(stderr, \"%s\\n\", dlerror());\n    return 1;\n  }}\n  \
                 dlclose(h);\n  return 0;\n}}\n"
            ),
        )
        .unwrap();
        let exe = dir.join(format!("{stem}_main"));
        compile_against(&lib, stem, &main, &exe);
        run(&exe, &[lib.join(format!("lib{stem}.so")).as_os_str()]);
    }
    // D3PM's tables are large: leave nothing behind when the test passes.
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_builds_exit_2_and_say_why() {
    let dir = scratch("bad");
    let out = dir.to_string_lossy().into_owned();
    let (code, _, err) = diffc(&[
        "build",
        "/nonexistent/spec.diff",
        "--target",
        "cpu",
        "-o",
        &out,
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("cannot read `/nonexistent/spec.diff`"),
        "{err}"
    );
    let ddpm = spec("ddpm.diff");
    let (code, _, err) = diffc(&["build", &ddpm, "--target", "metal", "-o", &out]);
    assert_eq!(code, Some(2));
    assert!(err.contains("invalid value 'metal'"), "{err}");
    assert!(err.contains("cpu") && err.contains("wgsl"), "{err}");
    let (code, _, err) = diffc(&[
        "build",
        &ddpm,
        "--target",
        "wgsl",
        "--process",
        "nope",
        "-o",
        &out,
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no process `nope`"), "{err}");
    let (code, _, err) = diffc(&["build", &ddpm, "--process", "nope", "-o", &out]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no process `nope`"), "{err}");
    let (code, _, err) = diffc(&["build", &ddpm, "--target", "cpu"]);
    assert_eq!(code, Some(2), "{err}");
    // A C compiler that fails is reported with its output.
    let (code, _, err) = {
        let out = Command::new(env!("CARGO_BIN_EXE_diffc"))
            .args(["build", &ddpm, "-o", &out])
            .env("CC", "/nonexistent/cc")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::new(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(2));
    assert!(
        err.contains("cannot run the C compiler `/nonexistent/cc`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// -------------------------------------------------------------------------------------------
// Samplers and entries through the library's runtime.

const BATCH: usize = 2;
const DIM: usize = 5;
const SEED: u64 = 77;

fn width(elem: Elem) -> usize {
    match elem {
        Elem::Vec(k) => k as usize,
        Elem::Mat(k) => (k * k) as usize,
        _ => 1,
    }
}

fn c_type(elem: Elem) -> &'static str {
    match elem {
        Elem::Cat(_) => "uint32_t",
        Elem::Bool => "uint8_t",
        _ => "float",
    }
}

/// Elements per sample of a field (every dimension is DIM).
fn per_sample(p: &Process, f: usize) -> usize {
    DIM.pow(p.fields[f].shape.dims.len() as u32)
}

/// The denoiser both sides use: output j of a network is, per element e,
/// −0.5·x[e] + 0.01·((7e + j) mod 13) − 0.06 + 0.001·t, with x the network's first real field
/// input of the same size (or 0) and t its first time input (or 0); class probabilities are
/// (1 + (e + q + j) mod 3) normalised over q. A score is that times 0.01, so that samplers whose
/// steps multiply it by large σ² stay finite.
fn feed_input(p: &Process, net: usize, out_field: usize) -> Option<usize> {
    let n = &p.networks[net];
    n.inputs.iter().position(|i| match i {
        NetInput::Field { field, .. } => {
            let f = &p.fields[field.index()];
            f.elem == Elem::Real && per_sample(p, field.index()) == per_sample(p, out_field)
        }
        NetInput::Time { .. } => false,
    })
}

fn time_input(p: &Process, net: usize) -> Option<usize> {
    p.networks[net]
        .inputs
        .iter()
        .position(|i| matches!(i, NetInput::Time { .. }))
}

struct Deterministic;

impl Denoiser for Deterministic {
    fn denoise(
        &mut self,
        p: &Process,
        call: &diffc::interp::NetCall,
    ) -> Result<Vec<Tensor>, String> {
        let (net, inputs) = (call.net, call.inputs);
        let n = &p.networks[net];
        let t = time_input(p, net)
            .map(|i| inputs[i].f32s().unwrap()[0])
            .unwrap_or(0.0);
        let mut outs = Vec::new();
        for (j, o) in n.outputs.iter().enumerate() {
            let f = o.field.index();
            let w = width(o.ty.elem().unwrap_or(Elem::Real));
            let count = BATCH * per_sample(p, f);
            let feed = feed_input(p, net, f).map(|i| inputs[i].f32s().unwrap().to_vec());
            let mut v = Vec::with_capacity(count * w);
            for e in 0..count {
                if w == 1 {
                    let x = feed.as_ref().map_or(0.0, |x| x[e]);
                    let y =
                        -0.5f32 * x + 0.01f32 * ((e * 7 + j) % 13) as f32 - 0.06f32 + 0.001f32 * t;
                    v.push(if o.kind == ParamKind::Score {
                        0.01f32 * y
                    } else {
                        y
                    });
                } else {
                    let mut sum = 0.0f32;
                    for q in 0..w {
                        sum += (1 + (e + q + j) % 3) as f32;
                    }
                    for q in 0..w {
                        v.push((1 + (e + q + j) % 3) as f32 / sum);
                    }
                }
            }
            let mut shape = vec![BATCH];
            shape.extend(p.fields[f].shape.dims.iter().map(|_| DIM));
            if w > 1 {
                shape.push(w);
            }
            outs.push(Tensor {
                shape,
                data: Data::F32(v),
            });
        }
        Ok(outs)
    }
}

/// The same denoiser in C.
fn denoiser_c(p: &Process, out: &mut String) {
    let _ = writeln!(
        out,
        "static int denoise_{}(void *user, uint32_t net, uint32_t call, uint64_t batch, const uint64_t *dims, const void *const *in, void *const *out) {{\n  (void)user; (void)call; (void)dims;\n  switch (net) {{",
        p.name
    );
    for (ni, n) in p.networks.iter().enumerate() {
        let _ = writeln!(out, "  case {ni}: {{");
        let t = time_input(p, ni)
            .map(|i| format!("*(const float *)in[{i}]"))
            .unwrap_or_else(|| "0.0f".into());
        let _ = writeln!(out, "    const float t = {t};\n    (void)t;");
        for (j, o) in n.outputs.iter().enumerate() {
            let f = o.field.index();
            let w = width(o.ty.elem().unwrap_or(Elem::Real));
            let per = per_sample(p, f);
            let _ = writeln!(out, "    {{\n      float *o = (float *)out[{j}];\n      for (uint64_t e = 0; e < batch * {per}u; e++) {{");
            if w == 1 {
                let x = feed_input(p, ni, f)
                    .map(|i| format!("((const float *)in[{i}])[e]"))
                    .unwrap_or_else(|| "0.0f".into());
                let _ = writeln!(
                    out,
                    "        o[e] = -0.5f * {x} + 0.01f * (float)((e * 7 + {j}) % 13) - 0.06f + 0.001f * t;"
                );
                if o.kind == ParamKind::Score {
                    let _ = writeln!(out, "        o[e] = 0.01f * o[e];");
                }
            } else {
                let _ = writeln!(
                    out,
                    "        float sum = 0.0f;\n        for (uint64_t q = 0; q < {w}; q++) sum += (float)(1 + (e + q + {j}) % 3);\n        for (uint64_t q = 0; q < {w}; q++) o[e * {w} + q] = (float)(1 + (e + q + {j}) % 3) / sum;"
                );
            }
            let _ = writeln!(out, "      }}\n    }}");
        }
        let _ = writeln!(out, "    return 0;\n  }}");
    }
    let _ = writeln!(out, "  }}\n  return 1;\n}}");
}

/// A starting value for a field a sampler reads but never sets.
fn condition(elem: Elem) -> (&'static str, Data, usize) {
    match elem {
        Elem::Cat(_) => ("1", Data::Class(vec![]), 1),
        Elem::Bool => ("1", Data::Bool(vec![]), 1),
        _ => ("1.0f", Data::F32(vec![]), 1),
    }
}

fn condition_tensor(p: &Process, f: usize) -> Tensor {
    let fd = &p.fields[f];
    let n = BATCH * per_sample(p, f) * width(fd.elem);
    let mut shape = vec![BATCH];
    shape.extend(fd.shape.dims.iter().map(|_| DIM));
    if let Elem::Vec(k) = fd.elem {
        shape.push(k as usize);
    }
    let data = match condition(fd.elem).1 {
        Data::Class(_) => Data::Class(vec![1; n]),
        Data::Bool(_) => Data::Bool(vec![true; n]),
        Data::F32(_) => Data::F32(vec![1.0; n]),
    };
    Tensor { shape, data }
}

fn bytes_of(d: &Data) -> Vec<u8> {
    match d {
        Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::Class(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::Bool(v) => v.iter().map(|x| *x as u8).collect(),
    }
}

/// What the C program must write, and what diffc computed.
struct Expect {
    file: String,
    what: String,
    data: Data,
}

fn sizes(p: &Process) -> HashMap<String, usize> {
    p.dims.iter().map(|d| (d.name.clone(), DIM)).collect()
}

/// Random values for an entry's input port (reals in [-1, 1], classes in range, probabilities
/// on the simplex).
fn random_input(p: &Process, port: &Port, rng: &mut StdRng) -> Tensor {
    random_batch(p, port, rng, BATCH)
}

fn random_batch(p: &Process, port: &Port, rng: &mut StdRng, batch: usize) -> Tensor {
    let mut shape = vec![batch];
    if let PortExtent::Field(s) = &port.extent {
        shape.extend(s.dims.iter().map(|_| DIM));
    }
    let per: usize = shape.iter().product();
    let _ = p;
    let data = match port.elem {
        Elem::Cat(k) => Data::Class((0..per).map(|_| rng.random_range(0..k)).collect()),
        Elem::Bool => Data::Bool((0..per).map(|_| rng.random_bool(0.5)).collect()),
        Elem::Vec(k) => {
            shape.push(k as usize);
            let mut v = Vec::new();
            for _ in 0..per {
                let xs: Vec<f32> = (0..k).map(|_| rng.random_range(0.1f32..1.0)).collect();
                let s: f32 = xs.iter().sum();
                v.extend(xs.iter().map(|x| x / s));
            }
            Data::F32(v)
        }
        _ => Data::F32((0..per).map(|_| rng.random_range(-1.0f32..1.0)).collect()),
    };
    let mut t = Tensor { shape, data };
    if matches!(&port.extent, PortExtent::Field(s) if s.sym) && !port.name.contains('.') {
        diffc::interp::symmetrize(&mut t);
    }
    t
}

/// Write a C program that runs every sampler and every tabulated entry of a spec's processes,
/// and the results diffc's CPU backend gives for the same calls.
fn harness(procs: &[Process], dir: &Path) -> (String, Vec<Expect>, usize) {
    let mut c = String::new();
    let mut main = String::new();
    let mut expect = Vec::new();
    let mut skipped = 0;
    let mut rng = StdRng::seed_from_u64(5);
    for p in procs {
        if !p.networks.is_empty() {
            denoiser_c(p, &mut c);
        }
        let nd = p.dims.len().max(1);
        let dims = vec![DIM.to_string(); nd].join(", ");
        // Samplers, start to finish.
        for s in &p.samplers {
            let sp = diffc::ir::lower::lower_sampler(p, &s.name).unwrap();
            let call = SampleCall {
                seed: SEED,
                batch: BATCH,
                sizes: sizes(p),
                state: sp
                    .conditions
                    .iter()
                    .map(|f| {
                        (
                            p.fields[*f as usize].name.clone(),
                            condition_tensor(p, *f as usize),
                        )
                    })
                    .collect(),
                ..SampleCall::default()
            };
            let result = match diffc::cpu::sample(p, &sp, &call, &mut Deterministic) {
                Ok(r) => r,
                Err(e) => {
                    // The made-up denoiser can drive a sampler off to infinity: not compared.
                    println!("{}.{}: not compared ({e})", p.name, s.name);
                    skipped += 1;
                    continue;
                }
            };
            let pre = format!("diffc_{}_{}", p.name, s.name);
            let _ = writeln!(main, "  {{\n    uint64_t dims[{nd}] = {{{dims}}};");
            let mut names = Vec::new();
            for (fi, f) in p.fields.iter().enumerate() {
                let n = BATCH * per_sample(p, fi) * width(f.elem);
                let _ = writeln!(
                    main,
                    "    {ty} *f{fi} = calloc({n}, sizeof({ty}));",
                    ty = c_type(f.elem)
                );
                if sp.conditions.contains(&(fi as u32)) {
                    let _ = writeln!(
                        main,
                        "    for (int i = 0; i < {n}; i++) f{fi}[i] = {};",
                        condition(f.elem).0
                    );
                }
                names.push(format!("f{fi}"));
            }
            let _ = writeln!(
                main,
                "    void *fields[{}] = {{{}}};\n    {pre}_sampler *s = {pre}_sampler_new({BATCH}, dims, {SEED}u, {}, NULL);\n    int rc = s ? {pre}_sampler_start(s, fields) : -1;\n    for (uint32_t k = 0; !rc && k < {pre}_steps; k++) rc = {pre}_sampler_step(s, k, fields);\n    if (!rc) rc = {pre}_sampler_finalize(s, fields);\n    {pre}_sampler_free(s);\n    if (rc) {{ fprintf(stderr, \"{}.{}: status %#x\\n\", rc); return 1; }}",
                names.len().max(1),
                names.join(", "),
                if p.networks.is_empty() { "NULL".to_string() } else { format!("denoise_{}", p.name) },
                p.name,
                s.name
            );
            for (fi, f) in p.fields.iter().enumerate() {
                let Some(t) = result.get(&f.name) else {
                    continue;
                };
                let file = format!("{}.{}.{}.bin", p.name, s.name, f.name);
                let n = BATCH * per_sample(p, fi) * width(f.elem);
                let _ = writeln!(
                    main,
                    "    if (!save(\"{}\", f{fi}, {n} * sizeof(*f{fi}))) return 1;",
                    dir.join(&file).display()
                );
                expect.push(Expect {
                    file,
                    what: format!("sampler {}.{}: field {}", p.name, s.name, f.name),
                    data: t.data.clone(),
                });
            }
            for fi in 0..p.fields.len() {
                let _ = writeln!(main, "    free(f{fi});");
            }
            let _ = writeln!(main, "  }}");
        }
        // Entries whose host values are tabulated (discrete time, or no time).
        for e in entries(p) {
            // Sampler steps run through the samplers' runners.
            if matches!(e.kind, EntryKind::Step | EntryKind::Finalize) {
                continue;
            }
            let scalars: Vec<&Port> = e
                .inputs
                .iter()
                .filter(|x| x.extent == PortExtent::Scalar && x.name != "seed")
                .collect();
            let has_t = !scalars.is_empty();
            if has_t
                && (p.time.kind != TimeKind::Discrete
                    || scalars.iter().any(|x| x.name != p.time.name))
            {
                // The caller computes a continuous-time entry's coefficients.
                continue;
            }
            let t = ((p.time.lo + p.time.hi) / 2.0).round();
            let prog = diffc::ir::lower::lower(p, &e.name).unwrap();
            let mut call = Call {
                seed: SEED,
                batch: BATCH,
                sizes: sizes(p),
                ..Call::default()
            };
            let mut args = Vec::new();
            let mut setup = String::new();
            for (i, port) in e.inputs.iter().enumerate() {
                if port.extent == PortExtent::Scalar {
                    if port.name != "seed" {
                        call.inputs
                            .insert(port.name.clone(), Tensor::scalar(t as f32));
                    }
                    continue;
                }
                let x = random_input(p, port, &mut rng);
                let file = dir.join(format!("{}.{}.in{i}.bin", p.name, e.name));
                std::fs::write(&file, bytes_of(&x.data)).unwrap();
                let n = x.len();
                let _ = writeln!(
                    setup,
                    "    {ty} *in{i} = malloc({n} * sizeof({ty}));\n    if (!load(\"{}\", in{i}, {n} * sizeof({ty}))) return 1;",
                    file.display(),
                    ty = c_type(port.elem)
                );
                args.push(format!("in{i}"));
                call.inputs.insert(port.name.clone(), x);
            }
            let outputs = match diffc::cpu::run(p, &prog, &call) {
                Ok(o) => o,
                Err(err) => {
                    // Random inputs outside the entry's domain (a NaN output): not compared.
                    println!("{}.{}: not compared ({err})", p.name, e.name);
                    skipped += 1;
                    continue;
                }
            };
            for (o, (port, t)) in e.outputs.iter().zip(&outputs).enumerate() {
                let n = t.len().max(1);
                let _ = writeln!(
                    setup,
                    "    {ty} *out{o} = calloc({n}, sizeof({ty}));",
                    ty = if port.extent == PortExtent::Scalar {
                        "float"
                    } else {
                        c_type(port.elem)
                    }
                );
                args.push(format!("out{o}"));
                let file = format!("{}.{}.out{o}.bin", p.name, e.name);
                expect.push(Expect {
                    file,
                    what: format!("entry {}.{}: output {}", p.name, e.name, port.name),
                    data: t.data.clone(),
                });
            }
            args.push(BATCH.to_string());
            if !p.dims.is_empty() {
                args.push("dims".into());
            }
            if has_t {
                args.push(format!("{}u", t as u64));
            }
            args.push(format!("{SEED}u"));
            let name: String = e
                .name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let _ = writeln!(
                main,
                "  {{\n    uint64_t dims[{nd}] = {{{dims}}};\n    (void)dims;\n{setup}    int rc = diffc_{}_{name}({});\n    if (rc) {{ fprintf(stderr, \"{}.{}: status %#x\\n\", rc); return 1; }}",
                p.name,
                args.join(", "),
                p.name,
                e.name
            );
            for (o, t) in outputs.iter().enumerate() {
                let file = format!("{}.{}.out{o}.bin", p.name, e.name);
                let _ = writeln!(
                    main,
                    "    if (!save(\"{}\", out{o}, {} * sizeof(*out{o}))) return 1;\n    free(out{o});",
                    dir.join(&file).display(),
                    t.len()
                );
            }
            for a in args.iter().filter(|a| a.starts_with("in")) {
                let _ = writeln!(main, "    free({a});");
            }
            let _ = writeln!(main, "  }}");
        }
    }
    let source = format!(
        "#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n\n\
         static int save(const char *path, const void *data, size_t bytes) {{\n  FILE *f = fopen(path, \"wb\");\n  if (!f) return 0;\n  int ok = fwrite(data, 1, bytes, f) == bytes;\n  return fclose(f) == 0 && ok;\n}}\n\
         static int load(const char *path, void *data, size_t bytes) {{\n  FILE *f = fopen(path, \"rb\");\n  if (!f) return 0;\n  int ok = fread(data, 1, bytes, f) == bytes;\n  fclose(f);\n  return ok;\n}}\n\n\
         {c}\nint main(void) {{\n  (void)load;\n{main}  return 0;\n}}\n"
    );
    (source, expect, skipped)
}

#[test]
fn every_sampler_and_tabulated_entry_runs_in_c_as_on_the_cpu_backend() {
    let dir = scratch("runtime");
    let mut files: Vec<String> = std::fs::read_dir(spec(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".diff"))
        .collect();
    files.sort();
    let (mut compared, mut skipped) = (0, 0);
    for file in &files {
        let stem = file.trim_end_matches(".diff");
        let text = std::fs::read_to_string(spec(file)).unwrap();
        let procs = diffc::check::check_source(&text).0.unwrap().processes;
        let lib = dir.join(stem);
        build(file, &lib);
        let out = dir.join(format!("{stem}-out"));
        std::fs::create_dir_all(&out).unwrap();
        let (body, expect, skip) = harness(&procs, &out);
        let source = dir.join(format!("{stem}_run.c"));
        std::fs::write(&source, format!("#include \"{stem}.h\"\n{body}")).unwrap();
        let exe = dir.join(format!("{stem}_run"));
        compile_against(&lib, stem, &source, &exe);
        run(&exe, &[]);
        for e in &expect {
            let got = std::fs::read(out.join(&e.file)).unwrap();
            let want = bytes_of(&e.data);
            assert_eq!(got.len(), want.len(), "{}: length", e.what);
            if got != want {
                let diff = match &e.data {
                    Data::F32(v) => {
                        let c: Vec<f32> = got
                            .chunks(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .collect();
                        format!(
                            "max |C − diffc| = {:e}",
                            c.iter()
                                .zip(v)
                                .map(|(a, b)| (a - b).abs())
                                .fold(0.0f32, f32::max)
                        )
                    }
                    _ => "classes or bools differ".into(),
                };
                panic!(
                    "{}: the library's result differs from the CPU backend's ({diff})",
                    e.what
                );
            }
        }
        compared += expect.len();
        skipped += skip;
    }
    println!(
        "{compared} results of samplers and discrete-time entries equal the CPU backend's bit \
         for bit; {skipped} not compared"
    );
    assert!(compared > 100, "{compared}");
    let _ = std::fs::remove_dir_all(&dir);
}

// One time per sample and run-time params through the `_at` entry points.

/// Samples in a per-sample-time call: a run of two equal times, then other times.
const NB: usize = 5;

/// Per-sample times: [a, a, lo, hi, a] with a inside the process's time (whole numbers in
/// discrete time).
fn sample_times(p: &Process) -> Vec<f32> {
    let (lo, hi) = (p.time.lo, p.time.hi);
    let a = lo + 0.7 * (hi - lo);
    let a = if p.time.kind == TimeKind::Discrete {
        a.round()
    } else {
        a
    };
    vec![a as f32, a as f32, lo as f32, hi as f32, a as f32]
}

/// A param's value other than its default: a probability vector reversed, a number halved.
fn other_param(v: &diffc::typed::Value) -> Vec<f32> {
    match v {
        diffc::typed::Value::Vec(xs) => xs.iter().rev().map(|x| *x as f32).collect(),
        diffc::typed::Value::Real(x) => vec![(*x * 0.5) as f32],
        other => panic!("no test value for a param {other:?}"),
    }
}

fn c_floats(xs: &[f32]) -> String {
    let v: Vec<String> = xs.iter().map(|x| format!("{x:?}f")).collect();
    v.join(", ")
}

/// A C program calling every `_at` entry point of a spec's processes, and what the CPU backend
/// gives for the same calls.
fn at_harness(procs: &[Process], dir: &Path) -> (String, Vec<Expect>, usize) {
    let mut main = String::new();
    let mut expect = Vec::new();
    let mut skipped = 0;
    let mut rng = StdRng::seed_from_u64(11);
    for p in procs {
        let nd = p.dims.len().max(1);
        let dims = vec![DIM.to_string(); nd].join(", ");
        let times = sample_times(p);
        for e in entries(p) {
            if matches!(e.kind, EntryKind::Step | EntryKind::Finalize)
                || !e.inputs.iter().any(|x| x.name == p.time.name)
            {
                continue;
            }
            let variants: Vec<bool> = if p.params.is_empty() {
                vec![false]
            } else {
                vec![false, true]
            };
            for with_params in variants {
                let tag = format!(
                    "{}.{}{}",
                    p.name,
                    e.name,
                    if with_params { "+params" } else { "" }
                );
                let prog = diffc::ir::lower::lower(p, &e.name).unwrap();
                let mut call = Call {
                    seed: SEED,
                    batch: NB,
                    sizes: sizes(p),
                    ..Call::default()
                };
                call.inputs.insert(
                    p.time.name.clone(),
                    Tensor {
                        shape: vec![NB],
                        data: Data::F32(times.clone()),
                    },
                );
                let mut setup = String::new();
                let mut args = Vec::new();
                for (i, port) in e.inputs.iter().enumerate() {
                    if port.extent == PortExtent::Scalar {
                        continue;
                    }
                    let x = random_batch(p, port, &mut rng, NB);
                    let file = dir.join(format!("{tag}.in{i}.bin"));
                    std::fs::write(&file, bytes_of(&x.data)).unwrap();
                    let n = x.len();
                    let _ = writeln!(
                        setup,
                        "    {ty} *in{i} = malloc({n} * sizeof({ty}));\n    if (!load(\"{}\", in{i}, {n} * sizeof({ty}))) return 1;",
                        file.display(),
                        ty = c_type(port.elem)
                    );
                    args.push(format!("in{i}"));
                    call.inputs.insert(port.name.clone(), x);
                }
                if with_params {
                    let _ = writeln!(
                        setup,
                        "    diffc_{}_params pp;\n    memset(&pp, 0, sizeof pp);",
                        p.name
                    );
                    for (j, x) in p.params.iter().enumerate() {
                        let v = other_param(x.default.as_ref().unwrap());
                        let _ = writeln!(
                            setup,
                            "    static const float pm{j}[] = {{{}}};\n    pp.{} = pm{j};",
                            c_floats(&v),
                            x.name
                        );
                        call.params.insert(
                            x.name.clone(),
                            Tensor {
                                shape: vec![v.len()],
                                data: Data::F32(v),
                            },
                        );
                    }
                }
                let outputs = match diffc::cpu::run(p, &prog, &call) {
                    Ok(o) => o,
                    Err(err) => {
                        println!("{tag}: not compared ({err})");
                        skipped += 1;
                        continue;
                    }
                };
                for (o, (port, t)) in e.outputs.iter().zip(&outputs).enumerate() {
                    let ty = if port.extent == PortExtent::Scalar {
                        "float"
                    } else {
                        c_type(port.elem)
                    };
                    let _ = writeln!(
                        setup,
                        "    {ty} *out{o} = calloc({}, sizeof({ty}));",
                        t.len().max(1)
                    );
                    args.push(format!("out{o}"));
                    expect.push(Expect {
                        file: format!("{tag}.out{o}.bin"),
                        what: format!("entry {tag} with per-sample times: output {}", port.name),
                        data: t.data.clone(),
                    });
                }
                args.push(NB.to_string());
                if !p.dims.is_empty() {
                    args.push("dims".into());
                }
                args.push("times".into());
                if !p.params.is_empty() {
                    args.push(if with_params {
                        "&pp".into()
                    } else {
                        "NULL".into()
                    });
                }
                args.push(format!("{SEED}u"));
                let name: String = e
                    .name
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                let _ = writeln!(
                    main,
                    "  {{\n    uint64_t dims[{nd}] = {{{dims}}};\n    (void)dims;\n    static const float times[{NB}] = {{{}}};\n{setup}    int rc = diffc_{}_{name}_at({});\n    if (rc) {{ fprintf(stderr, \"{tag}: status %#x\\n\", rc); return 1; }}",
                    c_floats(&times),
                    p.name,
                    args.join(", "),
                );
                for (o, t) in outputs.iter().enumerate() {
                    let _ = writeln!(
                        main,
                        "    if (!save(\"{}\", out{o}, {} * sizeof(*out{o}))) return 1;\n    free(out{o});",
                        dir.join(format!("{tag}.out{o}.bin")).display(),
                        t.len()
                    );
                }
                for a in args.iter().filter(|a| a.starts_with("in")) {
                    let _ = writeln!(main, "    free({a});");
                }
                let _ = writeln!(main, "  }}");
            }
        }
    }
    let source = format!(
        "#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\n\
         static int save(const char *path, const void *data, size_t bytes) {{\n  FILE *f = fopen(path, \"wb\");\n  if (!f) return 0;\n  int ok = fwrite(data, 1, bytes, f) == bytes;\n  return fclose(f) == 0 && ok;\n}}\n\
         static int load(const char *path, void *data, size_t bytes) {{\n  FILE *f = fopen(path, \"rb\");\n  if (!f) return 0;\n  int ok = fread(data, 1, bytes, f) == bytes;\n  fclose(f);\n  return ok;\n}}\n\n\
         int main(void) {{\n{main}  return 0;\n}}\n"
    );
    (source, expect, skipped)
}

#[test]
fn every_entry_with_a_time_takes_one_time_per_sample_and_run_time_params_in_c() {
    let dir = scratch("at");
    let mut files: Vec<String> = std::fs::read_dir(spec(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".diff"))
        .collect();
    files.sort();
    let (mut compared, mut skipped, mut with_params) = (0, 0, 0);
    for file in &files {
        let stem = file.trim_end_matches(".diff");
        let text = std::fs::read_to_string(spec(file)).unwrap();
        let procs = diffc::check::check_source(&text).0.unwrap().processes;
        let lib = dir.join(stem);
        build(file, &lib);
        let out = dir.join(format!("{stem}-out"));
        std::fs::create_dir_all(&out).unwrap();
        let (body, expect, skip) = at_harness(&procs, &out);
        run_at_harness(&lib, stem, &dir, &body, &out, &expect, file);
        with_params += expect.iter().filter(|e| e.what.contains("+params")).count();
        compared += expect.len();
        skipped += skip;
    }
    println!(
        "{compared} results of per-sample-time entries ({with_params} with run-time params) equal \
         the CPU backend's bit for bit; {skipped} calls not compared"
    );
    assert!(
        compared > 60 && with_params >= 5,
        "{compared}, {with_params}"
    );
    assert!(
        skipped * 10 <= compared,
        "{skipped} of {compared} not compared"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Compiles `body`, a program of [`at_harness`] writing into `out`, against the library `stem`
/// built in `lib` (the source and executable go in `dir`), runs it, and asserts that every
/// file it wrote equals the CPU backend's result bit for bit; `case` names the test case.
fn run_at_harness(
    lib: &Path,
    stem: &str,
    dir: &Path,
    body: &str,
    out: &Path,
    expect: &[Expect],
    case: &str,
) {
    let source = dir.join(format!("{stem}_at.c"));
    std::fs::write(&source, format!("#include \"{stem}.h\"\n{body}")).unwrap();
    let exe = dir.join(format!("{stem}_at"));
    compile_against(lib, stem, &source, &exe);
    run(&exe, &[]);
    for e in expect {
        let got = std::fs::read(out.join(&e.file)).unwrap();
        let want = bytes_of(&e.data);
        assert_eq!(got.len(), want.len(), "{case}: {}: length", e.what);
        assert!(
            got == want,
            "{case}: {}: the library's result differs from the CPU backend's",
            e.what
        );
    }
}

/// Writes `v` as raw little-endian f32s to `path` and returns it.
fn f32_bin(path: PathBuf, v: &[f32]) -> PathBuf {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Asserts that the raw file `bin` the C library wrote holds the values of the `.npy` file
/// `npy` that `diffc eval` wrote, bit for bit.
fn assert_same_values(bin: &Path, npy: &Path, what: &str) {
    assert_eq!(std::fs::read(bin).unwrap(), raw_bytes(npy), "{what}");
}

/// A C program: entry `fn_name` of a built library called with per-sample times read from a
/// file, inputs read from files and outputs written to files (sizes in elements; `extra` is
/// spliced into the argument list before the seed, e.g. a params struct).
fn at_program(
    header: &str,
    call: &str,
    inputs: &[(&str, usize)],
    outputs: &[(&str, usize)],
    setup: &str,
) -> String {
    let mut s = format!(
        "#include \"{header}\"\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\
         static void *load(const char *path, size_t bytes) {{\n  void *p = malloc(bytes);\n  FILE *f = fopen(path, \"rb\");\n  if (!p || !f || fread(p, 1, bytes, f) != bytes) exit(3);\n  fclose(f);\n  return p;\n}}\n\
         static void save(const char *path, const void *p, size_t bytes) {{\n  FILE *f = fopen(path, \"wb\");\n  if (!f || fwrite(p, 1, bytes, f) != bytes) exit(4);\n  fclose(f);\n}}\n\
         int main(int argc, char **argv) {{\n  (void)argc;\n"
    );
    for (i, (ty, n)) in inputs.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {ty} *in{i} = load(argv[{}], {n} * sizeof({ty}));",
            i + 1
        );
    }
    for (o, (ty, n)) in outputs.iter().enumerate() {
        let _ = writeln!(s, "  {ty} *out{o} = calloc({n}, sizeof({ty}));");
    }
    s.push_str(setup);
    let _ = writeln!(
        s,
        "  int rc = {call};\n  if (rc) {{ fprintf(stderr, \"status %#x\\n\", rc); return 1; }}"
    );
    for (o, (ty, n)) in outputs.iter().enumerate() {
        let _ = writeln!(
            s,
            "  save(argv[{}], out{o}, {n} * sizeof({ty}));",
            inputs.len() + 1 + o
        );
    }
    s.push_str("  return 0;\n}\n");
    s
}

fn npy_f32(path: &Path, shape: Vec<usize>, v: Vec<f32>) {
    diffc::npy::write_file(
        &diffc::npy::Array {
            shape,
            data: diffc::npy::Data::F32(v),
        },
        path,
    )
    .unwrap();
}

fn raw_bytes(path: &Path) -> Vec<u8> {
    let a = diffc::npy::read_file(path).unwrap();
    match a.data {
        diffc::npy::Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        diffc::npy::Data::I64(v) => v.iter().flat_map(|x| (*x as u32).to_le_bytes()).collect(),
        diffc::npy::Data::I32(v) => v.iter().flat_map(|x| (*x as u32).to_le_bytes()).collect(),
        other => panic!("unexpected dtype {other:?}"),
    }
}

#[test]
fn vp_sde_with_a_time_per_sample_and_digress_with_run_time_params_equal_diffc_eval() {
    let dir = scratch("at-eval");
    let (batch, d) = (6usize, 37usize);
    let mut rng = StdRng::seed_from_u64(99);
    // Continuous time: vp_sde's forward and loss with six times (two equal, both ends).
    let lib = dir.join("vp");
    build("vp_sde.diff", &lib);
    let times: Vec<f32> = vec![0.5, 0.5, 0.001, 1.0, 0.123_456_7, 0.77];
    let x: Vec<f32> = (0..batch * d)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let e_hat: Vec<f32> = (0..batch * d)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let (xf, tf, ef) = (dir.join("x.npy"), dir.join("t.npy"), dir.join("e.npy"));
    npy_f32(&xf, vec![batch, d], x.clone());
    npy_f32(&tf, vec![batch], times.clone());
    npy_f32(&ef, vec![batch, d], e_hat.clone());
    let bin = |name: &str, v: &[f32]| f32_bin(dir.join(name), v);
    let (xb, tb, eb) = (bin("x.bin", &x), bin("t.bin", &times), bin("e.bin", &e_hat));
    let n = batch * d;
    let src = dir.join("vp_at.c");
    std::fs::write(
        &src,
        at_program(
            "vp_sde.h",
            &format!("diffc_vp_sde_forward_at(in0, out0, out1, {batch}, dims, in1, 5)"),
            &[("float", n), ("float", batch)],
            &[("float", n), ("float", n)],
            &format!("  const uint64_t dims[1] = {{{d}}};\n"),
        ),
    )
    .unwrap();
    let exe = dir.join("vp_at");
    compile_against(&lib, "vp_sde", &src, &exe);
    let (xt, eps) = (dir.join("xt.bin"), dir.join("eps.bin"));
    run(
        &exe,
        &[
            xb.as_os_str(),
            tb.as_os_str(),
            xt.as_os_str(),
            eps.as_os_str(),
        ],
    );
    let eval = dir.join("eval-forward");
    let (code, _, err) = diffc(&[
        "eval".as_ref(),
        spec("vp_sde.diff").as_ref(),
        "--process=vp_sde".as_ref(),
        "--entry".as_ref(),
        "forward".as_ref(),
        format!("--in=x_0={}", xf.display()).as_ref(),
        format!("--in=t={}", tf.display()).as_ref(),
        "--seed=5".as_ref(),
        "--backend=cpu".as_ref(),
        "--out".as_ref(),
        eval.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_same_values(&xt, &eval.join("x_t.npy"), "x_t");
    assert_same_values(&eps, &eval.join("eps.npy"), "eps");
    // The loss at those times, from the forward's x_t and eps.
    let src = dir.join("vp_loss.c");
    std::fs::write(
        &src,
        at_program(
            "vp_sde.h",
            &format!("diffc_vp_sde_loss_dsm_at(in0, in1, in2, out0, out1, {batch}, dims, in3, 5)"),
            &[("float", n), ("float", n), ("float", n), ("float", batch)],
            &[("float", batch), ("float", n)],
            &format!("  const uint64_t dims[1] = {{{d}}};\n"),
        ),
    )
    .unwrap();
    let exe = dir.join("vp_loss");
    compile_against(&lib, "vp_sde", &src, &exe);
    let (lf, gf) = (dir.join("loss.bin"), dir.join("grad.bin"));
    run(
        &exe,
        &[
            xt.as_os_str(),
            eb.as_os_str(),
            eps.as_os_str(),
            tb.as_os_str(),
            lf.as_os_str(),
            gf.as_os_str(),
        ],
    );
    let eval = dir.join("eval-loss");
    let (code, _, err) = diffc(&[
        "eval".as_ref(),
        spec("vp_sde.diff").as_ref(),
        "--process=vp_sde".as_ref(),
        "--entry".as_ref(),
        "loss.dsm".as_ref(),
        format!("--in=x_t={}", dir.join("eval-forward/x_t.npy").display()).as_ref(),
        format!("--in=eps_hat.x={}", ef.display()).as_ref(),
        format!("--in=eps={}", dir.join("eval-forward/eps.npy").display()).as_ref(),
        format!("--in=t={}", tf.display()).as_ref(),
        "--seed=5".as_ref(),
        "--backend=cpu".as_ref(),
        "--out".as_ref(),
        eval.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let outs: Vec<String> = std::fs::read_dir(&eval)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let loss = outs
        .iter()
        .find(|f| f.starts_with("loss"))
        .expect("a loss output");
    let grad = outs
        .iter()
        .find(|f| f.starts_with("d_"))
        .expect("a gradient output");
    assert_same_values(&lf, &eval.join(loss), "loss");
    assert_same_values(&gf, &eval.join(grad), "gradient");

    // A run-time param: DiGress's forward with other node and edge marginals and a time per
    // graph, against `diffc eval --param`.
    let lib = dir.join("dg");
    build("digress.diff", &lib);
    let (graphs, nodes) = (4usize, 6usize);
    let times: Vec<f32> = vec![250.0, 250.0, 1.0, 501.0];
    let xs: Vec<i64> = (0..graphs * nodes)
        .map(|_| rng.random_range(0..4))
        .collect();
    // A symmetric E_0 with an empty diagonal, as the field holds.
    let mut es: Vec<i64> = (0..graphs * nodes * nodes)
        .map(|_| rng.random_range(0..4))
        .collect();
    for g in 0..graphs {
        for i in 0..nodes {
            es[(g * nodes + i) * nodes + i] = 0;
            for j in 0..i {
                es[(g * nodes + i) * nodes + j] = es[(g * nodes + j) * nodes + i];
            }
        }
    }
    let (x0, e0, tg) = (dir.join("X0.npy"), dir.join("E0.npy"), dir.join("tg.npy"));
    let i64s = |p: &Path, shape: Vec<usize>, v: &[i64]| {
        diffc::npy::write_file(
            &diffc::npy::Array {
                shape,
                data: diffc::npy::Data::I64(v.to_vec()),
            },
            p,
        )
        .unwrap()
    };
    i64s(&x0, vec![graphs, nodes], &xs);
    i64s(&e0, vec![graphs, nodes, nodes], &es);
    npy_f32(&tg, vec![graphs], times.clone());
    let u32bin = |name: &str, v: &[i64]| {
        let p = dir.join(name);
        std::fs::write(
            &p,
            v.iter()
                .flat_map(|x| (*x as u32).to_le_bytes())
                .collect::<Vec<u8>>(),
        )
        .unwrap();
        p
    };
    let (xb, ebn, tb) = (
        u32bin("X0.bin", &xs),
        u32bin("E0.bin", &es),
        bin("tg.bin", &times),
    );
    let (mx, me) = ([0.1f32, 0.2, 0.3, 0.4], [0.25f32, 0.25, 0.25, 0.25]);
    let src = dir.join("dg_at.c");
    let (nx, ne) = (graphs * nodes, graphs * nodes * nodes);
    std::fs::write(
        &src,
        at_program(
            "digress.h",
            &format!(
                "diffc_digress_forward_at(in0, in1, out0, out1, out2, out3, {graphs}, dims, in2, &pp, 8)"
            ),
            &[("uint32_t", nx), ("uint32_t", ne), ("float", graphs)],
            &[("uint32_t", nx), ("float", nx), ("uint32_t", ne), ("float", ne)],
            &format!(
                "  const uint64_t dims[1] = {{{nodes}}};\n  static const float mX[4] = {{{}}}, mE[4] = {{{}}};\n  diffc_digress_params pp = {{mX, mE}};\n",
                c_floats(&mx),
                c_floats(&me)
            ),
        ),
    )
    .unwrap();
    let exe = dir.join("dg_at");
    compile_against(&lib, "digress", &src, &exe);
    let outs: Vec<PathBuf> = ["Xt", "uX", "Et", "uE"]
        .iter()
        .map(|n| dir.join(format!("{n}.bin")))
        .collect();
    let mut args: Vec<&OsStr> = vec![xb.as_os_str(), ebn.as_os_str(), tb.as_os_str()];
    args.extend(outs.iter().map(|p| p.as_os_str()));
    run(&exe, &args);
    let eval = dir.join("eval-digress");
    let (mxf, mef) = (dir.join("mX.npy"), dir.join("mE.npy"));
    npy_f32(&mxf, vec![4], mx.to_vec());
    npy_f32(&mef, vec![4], me.to_vec());
    let (code, _, err) = diffc(&[
        "eval".as_ref(),
        spec("digress.diff").as_ref(),
        "--entry".as_ref(),
        "forward".as_ref(),
        format!("--in=X_0={}", x0.display()).as_ref(),
        format!("--in=E_0={}", e0.display()).as_ref(),
        format!("--in=t={}", tg.display()).as_ref(),
        format!("--param=mX={}", mxf.display()).as_ref(),
        format!("--param=mE={}", mef.display()).as_ref(),
        "--seed=8".as_ref(),
        "--backend=cpu".as_ref(),
        "--out".as_ref(),
        eval.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    for (bin, npy) in outs.iter().zip(["X_t", "u_X", "E_t", "u_E"]) {
        let what = format!("digress forward with params: {npy}");
        assert_same_values(bin, &eval.join(format!("{npy}.npy")), &what);
    }
    // Bad input: a time outside the process's time, a NaN time, marginals that are not a
    // probability vector, a non-finite marginal: DIFFC_ERR_ARG, and nothing written.
    let src = dir.join("dg_bad.c");
    std::fs::write(
        &src,
        format!(
            "#include \"digress.h\"\n#include <math.h>\n#include <stdio.h>\n\
             int main(void) {{\n  uint32_t X0[{nx}] = {{0}}, E0[{ne}] = {{0}}, Xt[{nx}], Et[{ne}];\n  float uX[{nx}], uE[{ne}];\n  const uint64_t dims[1] = {{{nodes}}};\n\
               float good[{graphs}] = {{1, 2, 3, 4}}, late[{graphs}] = {{1, 2, 3, 502}}, nan[{graphs}] = {{1, NAN, 3, 4}};\n\
               static const float half[4] = {{0.5f, 0.5f, 0.5f, 0.5f}}, inf[4] = {{INFINITY, 0, 0, 0}};\n\
               diffc_digress_params bad = {{half, NULL}}, nonfinite = {{NULL, inf}};\n\
               printf(\"%#x %#x %#x %#x %#x\\n\",\n\
                 diffc_digress_forward_at(X0, E0, Xt, uX, Et, uE, {graphs}, dims, late, NULL, 1),\n\
                 diffc_digress_forward_at(X0, E0, Xt, uX, Et, uE, {graphs}, dims, nan, NULL, 1),\n\
                 diffc_digress_forward_at(X0, E0, Xt, uX, Et, uE, {graphs}, dims, good, &bad, 1),\n\
                 diffc_digress_forward_at(X0, E0, Xt, uX, Et, uE, {graphs}, dims, good, &nonfinite, 1),\n\
                 diffc_digress_forward_at(X0, E0, Xt, uX, Et, uE, {graphs}, dims, good, NULL, 1));\n\
               return 0;\n}}\n"
        ),
    )
    .unwrap();
    let exe = dir.join("dg_bad");
    compile_against(&lib, "digress", &src, &exe);
    let printed = run(&exe, &[]);
    assert_eq!(printed.trim(), "0x100 0x100 0x100 0x100 0", "{printed}");
    // The same call with the default marginals differs: the params reach the kernels.
    let (code, _, err) = diffc(&[
        "eval".as_ref(),
        spec("digress.diff").as_ref(),
        "--entry".as_ref(),
        "forward".as_ref(),
        format!("--in=X_0={}", x0.display()).as_ref(),
        format!("--in=E_0={}", e0.display()).as_ref(),
        format!("--in=t={}", tg.display()).as_ref(),
        "--seed=8".as_ref(),
        "--backend=cpu".as_ref(),
        "--out".as_ref(),
        dir.join("eval-default").as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_ne!(
        std::fs::read(&outs[0]).unwrap(),
        raw_bytes(&dir.join("eval-default/X_t.npy")),
        "the marginals changed nothing"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `sym` field's input through the C library: DiGress's forward, in both its forms, refuses
/// an `E_0` that is not symmetric or holds a class on its diagonal (in the second of two
/// graphs) with DIFFC_ERR_SYM and writes nothing, and runs a symmetric one with an empty
/// diagonal, as `diffc eval` does (`tests/hostile.rs`).
#[test]
fn the_c_library_refuses_an_asymmetric_value_of_a_symmetric_field() {
    let dir = scratch("sym");
    let lib = dir.join("lib");
    build("digress.diff", &lib);
    let src = dir.join("sym.c");
    std::fs::write(
        &src,
        "#include \"digress.h\"\n#include <stdio.h>\n#include <string.h>\n\
         static uint32_t X0[6], Xt[6], Et[18];\nstatic float uX[6], uE[18];\n\
         static const uint64_t dims[1] = {3};\nstatic const float t2[2] = {3, 3};\n\
         /* Sample 1 is the graph 0 -1- 1 -2- 2; `edit` then changes entry [1, i, j]. */\n\
         static void run(int i, int j, uint32_t v) {\n\
           uint32_t E0[18] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 2, 0, 2, 0};\n\
           if (i >= 0) E0[9 + i * 3 + j] = v;\n\
           memset(Xt, 0xff, sizeof Xt);\n\
           int a = diffc_digress_forward(X0, E0, Xt, uX, Et, uE, 2, dims, 3, 1);\n\
           int untouched = Xt[0] == 0xffffffffu;\n\
           memset(Xt, 0xff, sizeof Xt);\n\
           int b = diffc_digress_forward_at(X0, E0, Xt, uX, Et, uE, 2, dims, t2, NULL, 1);\n\
           untouched &= Xt[0] == 0xffffffffu;\n\
           printf(\"%#x %#x %d\\n\", a, b, untouched);\n\
         }\n\
         int main(void) {\n\
           printf(\"%#x\\n\", DIFFC_ERR_SYM);\n\
           run(-1, 0, 0);\n  run(0, 2, 3);\n  run(2, 1, 1);\n  run(1, 1, 1);\n\
           return 0;\n}\n",
    )
    .unwrap();
    let exe = dir.join("sym");
    compile_against(&lib, "digress", &src, &exe);
    let printed = run(&exe, &[]);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines,
        [
            "0x1000",
            "0 0 0",           // symmetric, empty diagonal: runs
            "0x1000 0x1000 1", // [1, 0, 2] = 3, [1, 2, 0] = 0
            "0x1000 0x1000 1", // [1, 2, 1] = 1, [1, 1, 2] = 2
            "0x1000 0x1000 1", // [1, 1, 1] = 1
        ],
        "{printed}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The generated host code follows the interpreter where f64 rounding meets a declared range:
/// `p` computes to 1 + 2⁻⁵² past its closed end 1 and is read as 1 (`docs/language.md`); `q`
/// magnifies the difference to 0.22, so a row that missed the rule would differ in f32.
#[test]
fn per_sample_rows_snap_a_closed_schedule_end_as_the_interpreter_does() {
    let dir = scratch("snap");
    let text = "process snap {\n  dim d\n  field x : real[d]\n  time t : [0.25, 1]\n  \
                schedule p(t) in (0, 1] = (0.1 + 0.2) / 0.3 + 0 * t\n  \
                schedule q(t) in (0, 1] decreasing = (p(t) - 1) * 1e15 + 1 - 0.5 * t\n  \
                schedule v(t) in (0, 1) increasing = 0.5 * t\n  \
                forward x_t | x_0 ~ Normal(q(t) * x_0, v(t))\n  prior x_T ~ Normal(0, 1)\n}\n";
    let file = dir.join("snap.diff");
    std::fs::write(&file, text).unwrap();
    let lib = dir.join("lib");
    build_path(&file, &lib);
    let procs = diffc::check::check_source(text).0.unwrap().processes;
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let (body, expect, skipped) = at_harness(&procs, &out);
    assert_eq!(skipped, 0);
    assert!(expect.iter().any(|e| e.what.contains("snap.forward")));
    run_at_harness(&lib, "snap", &dir, &body, &out, &expect, "snap");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ends of a continuous time that are no f32 numbers (`tests/data/time_ends.diff`'s
/// `[1e-3, 0.999]`, `time_end_low.diff`'s `[0.7, 1]`): every `_at` entry takes the f32 nearest
/// to each end (just inside or just outside the written range) as that end, and gives what the
/// CPU backend gives for the same per-sample times bit for bit; a time one f32 step past an end
/// is DIFFC_ERR_ARG.
#[test]
fn at_entries_take_an_end_given_as_its_nearest_f32_as_the_cpu_backend_does() {
    for file in ["time_ends.diff", "time_end_low.diff"] {
        let stem = file.trim_end_matches(".diff");
        let dir = scratch(stem);
        let spec_file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(file);
        let lib = dir.join("lib");
        build_path(&spec_file, &lib);
        let text = std::fs::read_to_string(&spec_file).unwrap();
        let procs = diffc::check::check_source(&text).0.unwrap().processes;
        let p = &procs[0];
        assert_ne!(
            p.time.lo as f32 as f64, p.time.lo,
            "{file}: an end that is an f32"
        );
        let out = dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        // `sample_times` gives both ends as f32s.
        let (mut body, expect, skipped) = at_harness(&procs, &out);
        assert_eq!(skipped, 0);
        assert!(expect.iter().any(|e| e.what.contains(".forward")));
        // One f32 step past each end: refused.
        for past in [
            f32::from_bits((p.time.lo as f32).to_bits() - 1),
            f32::from_bits((p.time.hi as f32).to_bits() + 1),
        ] {
            body = body.replace(
                "  return 0;\n}",
                &format!(
                    "  {{\n    static const float tp[1] = {{{past:?}f}};\n    uint64_t dims[1] = {{{DIM}}};\n    float xt[{DIM}], eps[{DIM}], x0[{DIM}] = {{0}};\n    if (diffc_{name}_forward_at(x0, xt, eps, 1, dims, tp, 1) != DIFFC_ERR_ARG) {{ fprintf(stderr, \"{past:?} accepted\\n\"); return 1; }}\n  }}\n  return 0;\n}}",
                    name = p.name
                ),
            );
        }
        run_at_harness(&lib, stem, &dir, &body, &out, &expect, file);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A continuous-time process with a run-time param (EDM's σ_data in the loss weight and the
/// network's input scaling, `tests/data/edm_like.diff`): its loss and network inputs through the
/// C library, with a time per sample and σ_data = 0.3, equal `diffc eval --in t=… --param
/// sigma_data=0.3 --backend cpu` bit for bit, and differ from the default σ_data's.
#[test]
fn a_continuous_process_with_a_time_per_sample_and_a_run_time_param_equals_diffc_eval() {
    let dir = scratch("edm");
    let spec_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/edm_like.diff");
    let lib = dir.join("lib");
    build_path(&spec_file, &lib);
    let (batch, d) = (5usize, 6usize);
    let n = batch * d;
    let mut rng = StdRng::seed_from_u64(4);
    let mut vals =
        |lo: f32, hi: f32| -> Vec<f32> { (0..n).map(|_| rng.random_range(lo..hi)).collect() };
    let (x0, xt, dx) = (vals(-1.0, 1.0), vals(-20.0, 20.0), vals(-1.0, 1.0));
    let times: Vec<f32> = vec![80.0, 0.002, 3.5, 3.5, 0.7];
    let bin = |name: &str, v: &[f32]| f32_bin(dir.join(name), v);
    let files: Vec<PathBuf> = vec![
        bin("x0.bin", &x0),
        bin("xt.bin", &xt),
        bin("dx.bin", &dx),
        bin("t.bin", &times),
    ];
    let npy = |name: &str, shape: Vec<usize>, v: &[f32]| {
        let p = dir.join(name);
        npy_f32(&p, shape, v.to_vec());
        p
    };
    let (x0n, xtn, dxn, tn) = (
        npy("x0.npy", vec![batch, d], &x0),
        npy("xt.npy", vec![batch, d], &xt),
        npy("dx.npy", vec![batch, d], &dx),
        npy("t.npy", vec![batch], &times),
    );
    let sd = dir.join("sd.npy");
    npy_f32(&sd, vec![1], vec![0.3]);
    let setup = format!(
        "  const uint64_t dims[1] = {{{d}}};\n  static const float sd[1] = {{0.3f}};\n  diffc_edm_like_params pp = {{sd}};\n"
    );
    let src = dir.join("edm_at.c");
    let mut prog = at_program(
        "edm_like.h",
        &format!(
            "diffc_edm_like_loss_edm_at(in0, in1, in2, out0, out1, {batch}, dims, in3, &pp, 1)"
        ),
        &[("float", n), ("float", n), ("float", n), ("float", batch)],
        &[
            ("float", batch),
            ("float", n),
            ("float", n),
            ("float", batch),
        ],
        &setup,
    );
    // The network's inputs too, in the same program (outputs 2 and 3).
    prog = prog.replace(
        "  if (rc) {",
        &format!("  if (!rc) rc = diffc_edm_like_net_inputs_D_at(in1, out2, out3, {batch}, dims, in3, &pp, 1);\n  if (rc) {{"),
    );
    std::fs::write(&src, prog).unwrap();
    let exe = dir.join("edm_at");
    compile_against(&lib, "edm_like", &src, &exe);
    let outs: Vec<PathBuf> = ["loss", "grad", "in0", "in1"]
        .iter()
        .map(|n| dir.join(format!("{n}.bin")))
        .collect();
    let mut args: Vec<&OsStr> = files.iter().map(|p| p.as_os_str()).collect();
    args.extend(outs.iter().map(|p| p.as_os_str()));
    run(&exe, &args);
    let eval = |entry: &str, ins: &[String], param: bool, out: &Path| {
        let mut a: Vec<String> = vec![
            "eval".into(),
            spec_file.display().to_string(),
            "--entry".into(),
            entry.into(),
            "--seed=1".into(),
            "--backend=cpu".into(),
            format!("--in=t={}", tn.display()),
            "--out".into(),
            out.display().to_string(),
        ];
        a.extend(ins.iter().cloned());
        if param {
            a.push(format!("--param=sigma_data={}", sd.display()));
        }
        let (code, _, err) = diffc(&a);
        assert_eq!(code, Some(0), "{err}");
    };
    let loss_ins = vec![
        format!("--in=x_0={}", x0n.display()),
        format!("--in=x_t={}", xtn.display()),
        format!("--in=D.x={}", dxn.display()),
    ];
    eval("loss.edm", &loss_ins, true, &dir.join("e-loss"));
    eval(
        "net_inputs.D",
        &[format!("--in=x_t={}", xtn.display())],
        true,
        &dir.join("e-in"),
    );
    eval("loss.edm", &loss_ins, false, &dir.join("e-default"));
    for (bin, (npy, what)) in outs.iter().zip([
        ("e-loss/loss.npy", "loss"),
        ("e-loss/d_D.x.npy", "gradient"),
        ("e-in/input0.npy", "input0"),
        ("e-in/input1.npy", "input1"),
    ]) {
        assert_same_values(bin, &dir.join(npy), what);
    }
    assert_ne!(
        std::fs::read(&outs[0]).unwrap(),
        raw_bytes(&dir.join("e-default/loss.npy")),
        "σ_data changed nothing"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `interp` in entries: the C library's `_at` rows read a discrete schedule between its times
/// exactly as the interpreter's host code does (the CPU backend's rows), bit for bit.
#[test]
fn interp_reads_in_the_c_library_equal_the_cpu_backend() {
    let dir = scratch("interp");
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/interp_rows.diff"
    ))
    .unwrap();
    let src = dir.join("lerp.diff");
    std::fs::write(&src, &text).unwrap();
    let procs = diffc::check::check_source(&text).0.unwrap().processes;
    let lib = dir.join("lerp");
    build_path(&src, &lib);
    let out = dir.join("lerp-out");
    std::fs::create_dir_all(&out).unwrap();
    let (body, expect, skipped) = at_harness(&procs, &out);
    run_at_harness(&lib, "lerp", &dir, &body, &out, &expect, "lerp.diff");
    let names: Vec<&str> = expect.iter().map(|e| e.what.as_str()).collect();
    assert!(
        ["forward", "log_q", "loss.l"]
            .iter()
            .all(|n| names.iter().any(|w| w.contains(n))),
        "{names:?}"
    );
    assert!(
        names.iter().filter(|w| w.contains("+params")).count() >= 3,
        "{names:?} ({skipped} not compared)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
