//! `diffc build --target wgsl`: one WGSL file per kernel and a JSON manifest.
//!
//! - Every shipped spec whose kernels all have a WGSL form builds; its manifest parses back as
//!   JSON, and every kernel's bindings, as the manifest lists them, are those its WGSL declares
//!   (parsed with naga); every launch binds what its kernel declares.
//! - The CLI writes what the library builds, byte for byte.
//! - A small WebGPU host, written here with wgpu alone (not diffc's runtime or code generator),
//!   reads only the manifest and the `.wgsl` files, runs a DDPM ancestral step from the manifest's
//!   call sequence and rows, and gets what `diffc::cpu` gets: noise bit for bit, floats within
//!   1e-5 relative.
//! - The manifest of `ddpm.diff` is snapshotted.
//! - Every entry that takes a time says how it runs with one time per sample; the host module's
//!   row functions, run with Node.js, give the rows diffc's host code computes (within 1e-6
//!   relative: JavaScript's `Math` is not glibc's, and a difference of 1 − e^(−x) at small x
//!   magnifies an ulp), with run-time params too, and refuse bad times and params.

mod common;

use diffc::interp::{Data, NetCall, SampleCall, SingleStep, Tensor};
use diffc::typed::Process;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn spec_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("specs")
        .join(name)
}

fn module(name: &str) -> diffc::check::Module {
    let text = std::fs::read_to_string(spec_path(name)).unwrap();
    let (module, diags) = diffc::check::check_source(&text);
    assert!(diags.iter().all(|d| !d.is_error()), "{name} has errors");
    module.unwrap()
}

/// An empty folder of this test run.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("diffc-wgsl-build-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Build a spec with the library and write its files into `dir`, as the CLI does.
fn build_into(spec: &str, dir: &Path) -> diffc::gpu::manifest::WgslBuild {
    let stem = Path::new(spec)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let stem = stem.as_str();
    let built = diffc::gpu::manifest::build(&module(spec), stem, None)
        .unwrap_or_else(|e| panic!("{spec}: {e}"));
    for (name, wgsl) in &built.shaders {
        std::fs::write(dir.join(name), wgsl).unwrap();
    }
    std::fs::write(dir.join(built.manifest_name()), built.manifest_json()).unwrap();
    std::fs::write(dir.join(built.rows_name()), built.rows_bytes()).unwrap();
    std::fs::write(dir.join(built.host_name()), &built.host_js).unwrap();
    built
}

fn diffc<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (Option<i32>, String, String) {
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

fn shipped_specs() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(spec_path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".diff"))
        .collect();
    names.sort();
    names
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an unsigned integer: {v}"))
}

fn arr(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    arr(list)
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in the manifest"))
}

// ---------------------------------------------------------------------------------------------
// Without a GPU

/// Every launch of a sequence, inner loops included.
fn launches(events: &[Value]) -> Vec<&Value> {
    let mut out = Vec::new();
    for e in events {
        match s(&e["op"]) {
            "launch" => out.push(e),
            "repeat" => out.extend(launches(arr(&e["body"]))),
            _ => {}
        }
    }
    out
}

/// A kernel's bindings as the manifest lists them against the globals its WGSL declares.
fn check_kernel_against_wgsl(k: &Value, wgsl: &str) {
    let file = s(&k["file"]);
    let m = naga::front::wgsl::parse_str(wgsl).unwrap_or_else(|e| panic!("{file}: {e}"));
    let entry = m
        .entry_points
        .iter()
        .find(|e| e.name == s(&k["entry_point"]))
        .unwrap_or_else(|| panic!("{file} has no entry point {}", k["entry_point"]));
    assert_eq!(entry.stage, naga::ShaderStage::Compute, "{file}");
    let wg: Vec<u64> = arr(&k["workgroup_size"]).iter().map(u).collect();
    assert_eq!(
        entry.workgroup_size.map(u64::from).to_vec(),
        wg,
        "{file}: workgroup size"
    );
    let mut declared: Vec<(u32, &'static str, &'static str)> = Vec::new();
    for (_, g) in m.global_variables.iter() {
        let Some(b) = &g.binding else { continue };
        assert_eq!(b.group, 0, "{file}");
        let naga::AddressSpace::Storage { access } = g.space else {
            panic!("{file}: binding {} is not a storage buffer", b.binding)
        };
        let access = if access.contains(naga::StorageAccess::STORE) {
            "read_write"
        } else {
            "read"
        };
        let naga::TypeInner::Array { base, .. } = m.types[g.ty].inner else {
            panic!("{file}: binding {} is not an array", b.binding)
        };
        let ty = match m.types[base].inner {
            naga::TypeInner::Scalar(naga::Scalar::F32) => "array<f32>",
            naga::TypeInner::Scalar(naga::Scalar::U32) => "array<u32>",
            naga::TypeInner::Atomic(naga::Scalar::U32) => "array<atomic<u32>>",
            ref other => panic!("{file}: binding {} holds {other:?}", b.binding),
        };
        declared.push((b.binding, ty, access));
    }
    declared.sort();
    let listed: Vec<(u32, &str, &str)> = arr(&k["bindings"])
        .iter()
        .map(|b| (u(&b["binding"]) as u32, s(&b["wgsl_type"]), s(&b["access"])))
        .collect();
    assert_eq!(listed.len(), declared.len(), "{file}: binding count");
    for (l, d) in listed.iter().zip(&declared) {
        assert_eq!((l.0, l.1, l.2), (d.0, d.1, d.2), "{file}");
    }
    for b in arr(&k["bindings"]) {
        let want = match s(&b["element"]) {
            "f32" => "array<f32>",
            "u32" | "bool" => "array<u32>",
            "atomic_u32" => "array<atomic<u32>>",
            other => panic!("{file}: element {other}"),
        };
        assert_eq!(s(&b["wgsl_type"]), want, "{file}: {b}");
    }
}

/// The manifest's own consistency: launches against kernels, rows against their layout and the
/// rows file (`rows` floats long).
fn check_units(json: &Value, rows_len: usize) -> usize {
    let mut launched = 0;
    for p in arr(&json["processes"]) {
        let ndims = arr(&p["dims"]).len() as u64;
        for unit in arr(&p["units"]) {
            let name = format!("{}.{}", s(&p["name"]), s(&unit["name"]));
            let row = &unit["row"];
            let width = u(&row["width"]) as usize;
            let count = row["count"].as_u64().map(|c| c as usize);
            if let Some(c) = count {
                let end = u(&row["offset"]) as usize + c * width;
                assert!(end <= rows_len, "{name}: rows end at {end} of {rows_len}");
            }
            match s(&row["tabulated"]) {
                "per_step" => {
                    let steps = u(&unit["sampler"]["steps"]) as usize;
                    assert_eq!(count, Some(steps + 2), "{name}");
                    assert_eq!(arr(&unit["sampler"]["grid"]).len(), steps + 1, "{name}");
                }
                "per_time" => {
                    let (lo, hi) = (
                        row["t_min"].as_f64().unwrap(),
                        row["t_max"].as_f64().unwrap(),
                    );
                    assert_eq!(count, Some((hi - lo) as usize + 1), "{name}");
                }
                "single" => assert_eq!(count, Some(1), "{name}"),
                "supplied" => assert!(row["count"].is_null() && row["offset"].is_null(), "{name}"),
                other => panic!("{name}: tabulated {other}"),
            }
            for k in arr(&unit["kernels"]) {
                for d in arr(&k["dim_index"]) {
                    assert!(u(d) < ndims, "{name}: {k}");
                }
                assert_eq!(
                    arr(&k["coefs"]).len().max(1) as u64,
                    u(&k["coefs_len"]),
                    "{name}"
                );
            }
            for seq in arr(&unit["sequences"]) {
                for l in launches(arr(&seq["events"])) {
                    launched += 1;
                    let ku = find(&p["units"], s(&l["unit"]));
                    let k = &arr(&ku["kernels"])[u(&l["kernel"]) as usize];
                    assert_eq!(l["file"], k["file"], "{name}");
                    let kb = &arr(&k["bindings"])[3..];
                    let lb = arr(&l["buffers"]);
                    assert_eq!(lb.len(), kb.len(), "{name}: {} buffers", k["file"]);
                    for (a, b) in lb.iter().zip(kb) {
                        assert_eq!(a["element"], b["element"], "{name}: {a} vs {b}");
                        assert_eq!(a["access"], b["access"], "{name}: {a} vs {b}");
                        assert_eq!(a["width"], b["width"], "{name}: {a} vs {b}");
                        if a["src"]["kind"] == "row" {
                            assert!(u(&a["src"]["at"]) as usize + u(&a["width"]) as usize <= width);
                        }
                    }
                    assert_eq!(arr(&l["coefs"]).len(), arr(&k["coefs"]).len(), "{name}");
                    for at in arr(&l["coefs"]) {
                        assert!((u(at) as usize) < width, "{name}: slot {at} of {width}");
                    }
                }
            }
        }
    }
    launched
}

#[test]
fn every_spec_that_has_wgsl_builds_a_manifest_that_agrees_with_its_kernels() {
    let mut built = Vec::new();
    for spec in shipped_specs() {
        let stem = spec.trim_end_matches(".diff");
        match diffc::gpu::manifest::build(&module(&spec), stem, None) {
            Ok(b) => {
                let text = b.manifest_json();
                let json: Value =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{spec}: {e}"));
                assert_eq!(json["format"], "diffc-wgsl");
                assert_eq!(json["version"], 1);
                assert_eq!(json["spec"], stem);
                let files: HashMap<&str, &str> = b
                    .shaders
                    .iter()
                    .map(|(n, w)| (n.as_str(), w.as_str()))
                    .collect();
                assert_eq!(files.len(), b.shaders.len(), "{spec}: file names repeat");
                let mut listed = 0;
                let mut most_buffers = 0;
                for p in arr(&json["processes"]) {
                    for unit in arr(&p["units"]) {
                        for k in arr(&unit["kernels"]) {
                            listed += 1;
                            let wgsl = files[s(&k["file"])];
                            check_kernel_against_wgsl(k, wgsl);
                            most_buffers = most_buffers.max(arr(&k["bindings"]).len() as u64);
                        }
                    }
                }
                assert_eq!(listed, files.len(), "{spec}: kernels listed vs files");
                assert_eq!(
                    u(&json["max_storage_buffers_per_shader_stage"]),
                    most_buffers,
                    "{spec}"
                );
                let launched = check_units(&json, b.rows.len());
                assert!(launched > 0, "{spec}: no launches");
                println!("{spec}: {listed} kernels, {launched} launches");
                built.push(stem.to_string());
            }
            Err(e) => {
                // A refusal names the process, the unit and the kernel.
                assert!(
                    e.contains("no WGSL form") && e.contains("process `") && e.contains("kernel"),
                    "{spec}: {e}"
                );
                println!("{spec}: refused: {}", e.lines().next().unwrap_or(""));
            }
        }
    }
    for want in ["ddpm", "dpm_solver"] {
        assert!(built.iter().any(|b| b == want), "{want} did not build");
    }
}

#[test]
fn the_cli_writes_what_the_library_builds() {
    let lib_dir = scratch("lib");
    let built = build_into("ddpm.diff", &lib_dir);
    let cli_dir = scratch("cli");
    let (code, out, err) = diffc(&[
        "build",
        spec_path("ddpm.diff").to_str().unwrap(),
        "--target",
        "wgsl",
        "-o",
        cli_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("ddpm.json"), "{out}");
    let mut names: Vec<String> = std::fs::read_dir(&cli_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = built.shaders.iter().map(|(n, _)| n.clone()).collect();
    want.push("ddpm.json".into());
    want.push("ddpm.rows.f32".into());
    want.push("ddpm.host.mjs".into());
    want.sort();
    assert_eq!(names, want);
    for n in &names {
        assert_eq!(
            std::fs::read(cli_dir.join(n)).unwrap(),
            std::fs::read(lib_dir.join(n)).unwrap(),
            "{n}"
        );
    }
    // One process only.
    let one = scratch("one");
    let (code, _, err) = diffc(&[
        "build",
        spec_path("ddpm.diff").to_str().unwrap(),
        "--target",
        "wgsl",
        "--process",
        "ddpm_cosine",
        "-o",
        one.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(one.join("ddpm.json")).unwrap()).unwrap();
    let procs: Vec<&str> = arr(&json["processes"])
        .iter()
        .map(|p| s(&p["name"]))
        .collect();
    assert_eq!(procs, ["ddpm_cosine"]);
    let (code, _, err) = diffc(&[
        "build",
        spec_path("ddpm.diff").to_str().unwrap(),
        "--target",
        "wgsl",
        "--process",
        "nope",
        "-o",
        one.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no process `nope`"), "{err}");
}

#[test]
fn the_ddpm_manifest_is_stable() {
    let built = diffc::gpu::manifest::build(&module("ddpm.diff"), "ddpm", None).unwrap();
    insta::assert_snapshot!("ddpm_manifest", built.manifest_json());
}

/// The dispatch rule as the manifest states it.
fn grid(workgroups: u64, max: u64) -> Option<[u64; 3]> {
    if workgroups <= max {
        return Some([workgroups, 1, 1]);
    }
    let y = workgroups.div_ceil(max);
    (y <= max).then(|| [workgroups.div_ceil(y), y, 1])
}

#[test]
fn the_manifests_dispatch_rule_is_the_runtimes() {
    let built = diffc::gpu::manifest::build(&module("ddpm.diff"), "ddpm", None).unwrap();
    let json: Value = serde_json::from_str(&built.manifest_json()).unwrap();
    let max = u(&json["dispatch"]["max_workgroups_per_dimension"]);
    assert_eq!(max, 65_535);
    assert_eq!(
        json["workgroup_size"],
        serde_json::json!([diffc::gpu::codegen::WORKGROUP, 1, 1])
    );
    assert_eq!(
        u(&json["params"]["head"]),
        diffc::gpu::codegen::PARAMS_HEAD as u64
    );
    let mut cases: Vec<u64> = (0..70_000).step_by(997).collect();
    cases.extend([
        65_534,
        65_535,
        65_536,
        65_537,
        131_070,
        131_071,
        4_294_836_225,
    ]);
    cases.extend([65_535 * 65_535, 65_535 * 65_535 + 1]);
    for w in cases {
        let ours = grid(w, max);
        let theirs = diffc::gpu::runtime::grid(w, max as u32).map(|g| g.map(u64::from));
        assert_eq!(ours, theirs, "{w} workgroups");
        if let Some([x, y, _]) = ours {
            assert!(x * y >= w && x * y - w < y, "{w}: {x} × {y}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A WebGPU host that reads only the manifest and the WGSL files

struct Device {
    device: wgpu::Device,
    queue: wgpu::Queue,
    limits: wgpu::Limits,
}

/// A device on the default adapter, or `None` (after a loud message) when there is none and
/// `DIFFC_REQUIRE_GPU` is not set.
fn device() -> Option<Device> {
    common::gpu::quiet_loader();
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()));
    let adapter = match adapter {
        Ok(a) => a,
        Err(e) => {
            common::gpu::no_gpu(format!("no adapter: {e}"));
            return None;
        }
    };
    let limits = adapter.limits();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("wgsl_build test host"),
        required_features: wgpu::Features::empty(),
        required_limits: limits.clone(),
        ..Default::default()
    }))
    .unwrap_or_else(|e| panic!("cannot open a device on {:?}: {e}", adapter.get_info()));
    Some(Device {
        device,
        queue,
        limits,
    })
}

fn f32_bytes(xs: &[f32]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u32_bytes(xs: &[u32]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl Device {
    fn storage(&self, bytes: &[u8]) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            })
    }

    fn read(&self, b: &wgpu::Buffer) -> Vec<u8> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: b.size(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(b, 0, &staging, 0, b.size());
        self.queue.submit([enc.finish()]);
        let (send, recv) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = send.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .unwrap();
        recv.recv().unwrap().unwrap();
        let out = staging.get_mapped_range(..).unwrap().to_vec();
        staging.unmap();
        out
    }

    fn copy(&self, from: &wgpu::Buffer, to: &wgpu::Buffer) {
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(from, 0, to, 0, from.size().min(to.size()));
        self.queue.submit([enc.finish()]);
    }

    /// The pipeline of a manifest kernel, from its WGSL file, with the bind group layout the
    /// manifest lists (inside a validation error scope).
    fn pipeline(
        &self,
        dir: &Path,
        kernel: &Value,
    ) -> Result<(wgpu::ComputePipeline, wgpu::BindGroupLayout), String> {
        let file = s(&kernel["file"]);
        let text = std::fs::read_to_string(dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(file),
                source: wgpu::ShaderSource::Wgsl(text.into()),
            });
        let entries: Vec<wgpu::BindGroupLayoutEntry> = arr(&kernel["bindings"])
            .iter()
            .map(|b| wgpu::BindGroupLayoutEntry {
                binding: u(&b["binding"]) as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: b["access"] == "read",
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(file),
                entries: &entries,
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(file),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(file),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(s(&kernel["entry_point"])),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(format!("{file}: {e}"));
        }
        Ok((pipeline, layout))
    }
}

/// The caller's network: (network name, inputs as float arrays) → outputs.
type Network<'a> = dyn FnMut(&str, &[Vec<f32>]) -> Vec<Vec<f32>> + 'a;

/// What a host run of one sequence needs.
struct Run<'a> {
    dev: &'a Device,
    dir: &'a Path,
    manifest: &'a Value,
    process: &'a Value,
    row: Vec<f32>,
    /// The sampler's step index (the `"k"` step word).
    k: u64,
    seed: u64,
    batch: u64,
    /// Sizes of the process's dimensions, in its order.
    sizes: Vec<u64>,
    /// Replace every coefficient slot by this value (to isolate the noise).
    coef_override: Option<f32>,
    /// The caller's network: (network name, inputs as float arrays) → outputs.
    net: &'a mut Network<'a>,
    /// The buffers by source (`src` as JSON text).
    bufs: HashMap<String, wgpu::Buffer>,
}

impl Run<'_> {
    /// Values in a buffer of the call: (batch) × sizes of its dims × width.
    fn len(&self, b: &Value) -> u64 {
        let mut n = u(&b["width"]);
        if b["per_sample"] == true {
            n *= self.batch;
        }
        for d in arr(&b["dims"]) {
            n *= self.sizes[u(d) as usize];
        }
        n
    }

    fn key(b: &Value) -> String {
        b["src"].to_string()
    }

    fn row_values(&self, b: &Value) -> Vec<f32> {
        let at = u(&b["src"]["at"]) as usize;
        self.row[at..at + u(&b["width"]) as usize].to_vec()
    }

    fn sequence(&mut self, events: &[Value], extra_offset: u64) -> Result<(), String> {
        for e in events {
            match s(&e["op"]) {
                "launch" => self.launch(e, extra_offset)?,
                "network" => self.network(e)?,
                "copy" => {
                    let (to, from) = (&e["to"], &e["from"]);
                    let src = match from["src"]["kind"].as_str() {
                        Some("row") => self.dev.storage(&f32_bytes(&self.row_values(from))),
                        _ => {
                            let b = self.bufs.get(&Self::key(from)).ok_or_else(|| {
                                format!("copy from an unwritten {}", from["what"])
                            })?;
                            let fresh = self.dev.storage(&vec![0; b.size() as usize]);
                            self.dev.copy(b, &fresh);
                            fresh
                        }
                    };
                    self.bufs.insert(Self::key(to), src);
                }
                "repeat" => {
                    let stride = u(&self.manifest["repeat_offset_stride"]);
                    for j in 0..u(&e["count"]) {
                        self.sequence(arr(&e["body"]), extra_offset + j * stride)?;
                    }
                }
                other => return Err(format!("unknown event {other}")),
            }
        }
        Ok(())
    }

    fn network(&mut self, e: &Value) -> Result<(), String> {
        let mut inputs = Vec::new();
        for b in arr(&e["inputs"]) {
            if b["src"]["kind"] == "row" {
                inputs.push(self.row_values(b));
            } else {
                let buf = self
                    .bufs
                    .get(&Self::key(b))
                    .ok_or_else(|| format!("a network reads an unwritten {}", b["what"]))?;
                inputs.push(bytes_f32(&self.dev.read(buf)));
            }
        }
        let outs = (self.net)(s(&e["name"]), &inputs);
        for (o, v) in arr(&e["outputs"]).iter().zip(outs) {
            if !o["mirror"].is_null() {
                return Err("this host does not mirror symmetric outputs".into());
            }
            assert_eq!(v.len() as u64, self.len(o), "{}", o["what"]);
            let buf = self.dev.storage(&f32_bytes(&v));
            self.bufs.insert(Self::key(o), buf);
        }
        Ok(())
    }

    fn launch(&mut self, e: &Value, extra_offset: u64) -> Result<(), String> {
        let unit = find(&self.process["units"], s(&e["unit"]));
        let kernel = &arr(&unit["kernels"])[u(&e["kernel"]) as usize];
        let (pipeline, layout) = self.dev.pipeline(self.dir, kernel)?;
        let dim_index: Vec<usize> = arr(&kernel["dim_index"])
            .iter()
            .map(|d| u(d) as usize)
            .collect();
        let elements: u64 = arr(&kernel["domain"])
            .iter()
            .map(|d| self.sizes[dim_index[u(d) as usize]])
            .product::<u64>()
            * self.batch;
        let step = match &e["step_word"] {
            Value::String(k) if k == "k" => self.k,
            w => u(w),
        };
        let offset = u(&e["offset"]) + extra_offset;
        let mut params = vec![
            self.seed as u32,
            (self.seed >> 32) as u32,
            step as u32,
            offset as u32,
            (offset >> 32) as u32,
            0,
            u32::try_from(elements).map_err(|_| "too many elements for one dispatch")?,
        ];
        params.extend(dim_index.iter().map(|d| self.sizes[*d] as u32));
        // Every array is bound whole: every base is 0.
        params.extend(arr(&e["buffers"]).iter().map(|_| 0u32));
        let mut coefs: Vec<f32> = arr(&e["coefs"])
            .iter()
            .map(|at| self.coef_override.unwrap_or(self.row[u(at) as usize]))
            .collect();
        if coefs.is_empty() {
            coefs.push(0.0);
        }
        let params = self.dev.storage(&u32_bytes(&params));
        let coefs = self.dev.storage(&f32_bytes(&coefs));
        let status = self.dev.storage(&u32_bytes(&[0]));
        // Buffers bound in binding order; outputs that an input also reads are written to a
        // fresh buffer and copied over their source afterwards.
        let mut bound: Vec<wgpu::Buffer> = Vec::new();
        let mut after: Vec<(usize, String)> = Vec::new();
        for (i, b) in arr(&e["buffers"]).iter().enumerate() {
            let words_len = self.len(b);
            let buf = if b["src"]["kind"] == "row" {
                self.dev.storage(&f32_bytes(&self.row_values(b)))
            } else if b["access"] == "read" {
                self.bufs
                    .get(&Self::key(b))
                    .ok_or_else(|| format!("a launch reads an unwritten {}", b["what"]))?
                    .clone()
            } else {
                let fresh = self.dev.storage(&vec![0; 4 * words_len as usize]);
                if b["aliases_input"] == true {
                    after.push((i, Self::key(b)));
                } else {
                    self.bufs.insert(Self::key(b), fresh.clone());
                }
                fresh
            };
            bound.push(buf);
        }
        let mut entries = vec![
            wgpu::BindGroupEntry {
                binding: 0,
                resource: params.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: coefs.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: status.as_entire_binding(),
            },
        ];
        let first = u(&self.manifest["fixed_bindings"]["first_buffer"]) as u32;
        for (i, b) in bound.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: first + i as u32,
                resource: b.as_entire_binding(),
            });
        }
        let per = u(&self.manifest["workgroup_size"][0]);
        let max = u(&self.manifest["dispatch"]["max_workgroups_per_dimension"]).min(u64::from(
            self.dev.limits.max_compute_workgroups_per_dimension,
        ));
        let lanes = u(&kernel["lanes"]);
        let [x, y, z] = grid(elements.div_ceil(per * lanes), max).ok_or("too many workgroups")?;
        let scope = self
            .dev
            .device
            .push_error_scope(wgpu::ErrorFilter::Validation);
        let group = self
            .dev
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &layout,
                entries: &entries,
            });
        let mut enc = self.dev.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(x as u32, y as u32, z as u32);
        }
        self.dev.queue.submit([enc.finish()]);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(format!("{}: {e}", s(&kernel["file"])));
        }
        for (i, key) in after {
            self.bufs.insert(key, bound[i].clone());
        }
        let st = self.dev.read(&status);
        let st = u32::from_le_bytes([st[0], st[1], st[2], st[3]]);
        if st != 0 {
            return Err(format!("{}: status {st}", s(&kernel["file"])));
        }
        Ok(())
    }
}

/// The manifest a build wrote into `dir`, read back from disk.
fn read_manifest(dir: &Path, stem: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(format!("{stem}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Step k of a sampler from the manifest and the WGSL files in `dir`, on `x` (the state's field
/// `x`), with the network's output `eps`; returns the new `x`.
#[allow(clippy::too_many_arguments)]
fn host_step(
    dev: &Device,
    dir: &Path,
    manifest: &Value,
    process: &str,
    sampler: &str,
    k: usize,
    seed: u64,
    batch: u64,
    d: u64,
    x: &[f32],
    eps: &[f32],
    coef_override: Option<f32>,
) -> Result<Vec<f32>, String> {
    let p = find(&manifest["processes"], process);
    assert_eq!(p["dims"], serde_json::json!(["d"]));
    let unit = find(&p["units"], sampler);
    let need = u(&manifest["max_storage_buffers_per_shader_stage"]);
    assert!(
        u64::from(dev.limits.max_storage_buffers_per_shader_stage) >= need,
        "the adapter binds {} storage buffers, the manifest needs {need}",
        dev.limits.max_storage_buffers_per_shader_stage
    );
    // The sequence of step k and its row.
    let seq = arr(&unit["program"]["steps"])
        .iter()
        .find(|r| u(&r["first"]) as usize <= k && k <= u(&r["last"]) as usize)
        .map(|r| u(&r["sequence"]) as usize)
        .ok_or("no sequence for the step")?;
    // Row k from the rows file.
    let bytes = std::fs::read(dir.join(s(&manifest["rows_file"]))).map_err(|e| e.to_string())?;
    let width = u(&unit["row"]["width"]) as usize;
    let at = u(&unit["row"]["offset"]) as usize + k * width;
    let row: Vec<f32> = bytes[4 * at..4 * (at + width)]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let field = arr(&p["fields"])
        .iter()
        .find(|f| f["name"] == "x")
        .ok_or("no field x")?;
    let field_key = serde_json::json!({"kind": "field", "field": field["index"], "name": "x"});
    let mut net = |name: &str, inputs: &[Vec<f32>]| {
        assert_eq!(name, "eps_hat");
        assert_eq!(inputs[0].len(), x.len());
        vec![eps.to_vec()]
    };
    let mut run = Run {
        dev,
        dir,
        manifest,
        process: p,
        row,
        k: k as u64,
        seed,
        batch,
        sizes: vec![d],
        coef_override,
        net: &mut net,
        bufs: HashMap::new(),
    };
    run.bufs
        .insert(field_key.to_string(), dev.storage(&f32_bytes(x)));
    let events = arr(&arr(&unit["sequences"])[seq]["events"]).clone();
    run.sequence(&events, 0)?;
    let out = run
        .bufs
        .get(&field_key.to_string())
        .ok_or("no x after the step")?;
    Ok(bytes_f32(&dev.read(out)))
}

fn ddpm_linear() -> Process {
    module("ddpm.diff")
        .processes
        .into_iter()
        .find(|p| p.name == "ddpm_linear")
        .unwrap()
}

/// Step k of `ancestral` on the CPU backend, with its own host coefficients.
fn cpu_step(
    p: &Process,
    k: usize,
    seed: u64,
    batch: usize,
    d: usize,
    x: &[f32],
    eps: &[f32],
) -> Vec<f32> {
    let sp = diffc::ir::lower::lower_sampler(p, "ancestral").unwrap();
    let g = &p
        .samplers
        .iter()
        .find(|s| s.name == "ancestral")
        .unwrap()
        .default_grid;
    let tensor = |v: &[f32]| Tensor {
        shape: vec![batch, d],
        data: Data::F32(v.to_vec()),
    };
    let call = SampleCall {
        seed,
        batch,
        sizes: HashMap::from([("d".to_string(), d)]),
        state: HashMap::from([("x".to_string(), tensor(x))]),
        grid: Some(vec![g[k], g[k + 1]]),
        single_step: Some(SingleStep {
            k,
            n: g.len() - 1,
            r: k.checked_sub(1).map(|j| g[j]),
            prev: HashMap::new(),
        }),
        ..SampleCall::default()
    };
    let eps_t = tensor(eps);
    let mut net = |_: &Process, _: &NetCall| Ok(vec![eps_t.clone()]);
    let out = diffc::cpu::sample(p, &sp, &call, &mut net).unwrap();
    match &out["x"].data {
        Data::F32(v) => v.clone(),
        other => panic!("x is {other:?}"),
    }
}

/// The step kernel alone on the CPU, with every coefficient 1 and zero inputs: its noise.
fn cpu_noise(p: &Process, k: u64, seed: u64, n: usize) -> Vec<f32> {
    let sp = diffc::ir::lower::lower_sampler(p, "ancestral").unwrap();
    let plan = diffc::kernel::build::plan_sampler(p, &sp, &Default::default()).unwrap();
    assert_eq!(plan.kernels.len(), 1);
    let kern = plan.kernels[0].clone();
    let cpu = diffc::cpu::compile(plan).unwrap();
    let mut bufs = vec![vec![0.0f32; n]; kern.bufs.len()];
    let ptrs: Vec<*mut u8> = bufs.iter_mut().map(|b| b.as_mut_ptr() as *mut u8).collect();
    let launch = diffc::cpu::Launch {
        kernel: 0,
        coefs: vec![1.0; kern.coefs.len()],
        sizes: vec![n as u64],
        total: n,
        seed,
        step: k,
        offset: 0,
        bytes: vec![4 * n; kern.bufs.len()],
    };
    // SAFETY: every buffer holds n f32 values and is its own vector.
    let status = unsafe { cpu.launch(&launch, &ptrs, Default::default()) };
    assert_eq!(status, 0);
    let out = kern.bufs.iter().position(|b| b.output).unwrap();
    bufs.swap_remove(out)
}

#[test]
fn a_host_runs_a_ddpm_step_from_the_manifest_as_the_cpu_does() {
    let Some(dev) = device() else {
        return;
    };
    let dir = scratch("host");
    build_into("ddpm.diff", &dir);
    let manifest = read_manifest(&dir, "ddpm");
    let p = ddpm_linear();
    let seed = 0x1234_5678_9abc_def0u64;
    // Several workgroups, and more than 65,535 of them (a 2-D grid).
    for (batch, d, k) in [
        (3usize, 37usize, 417usize),
        (5, 1000, 0),
        (2, 2_100_000, 998),
    ] {
        let n = batch * d;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let eps: Vec<f32> = (0..n)
            .map(|i| ((i * 13 + 5) % 97) as f32 / 48.0 - 1.0)
            .collect();
        let gpu = host_step(
            &dev,
            &dir,
            &manifest,
            "ddpm_linear",
            "ancestral",
            k,
            seed,
            batch as u64,
            d as u64,
            &x,
            &eps,
            None,
        )
        .unwrap_or_else(|e| panic!("batch {batch}, d {d}: {e}"));
        let cpu = cpu_step(&p, k, seed, batch, d, &x, &eps);
        assert_eq!(gpu.len(), cpu.len());
        let mut worst = 0.0f32;
        for i in 0..n {
            let (c, g) = (cpu[i], gpu[i]);
            let rel = (c - g).abs() / c.abs().max(1.0);
            worst = worst.max(rel);
            assert!(
                rel <= 1e-5,
                "batch {batch}, d {d}, element {i}: cpu {c}, gpu {g}"
            );
        }
        // The step moved the state: the comparison is not of the inputs.
        assert!(cpu.iter().zip(&x).any(|(c, x)| (c - x).abs() > 1e-3));
        println!("batch {batch}, d {d}, step {k}: largest relative difference {worst:e}");
        // The noise alone: zero inputs and unit coefficients give the draws, bit for bit.
        let zeros = vec![0.0f32; n];
        let gpu = host_step(
            &dev,
            &dir,
            &manifest,
            "ddpm_linear",
            "ancestral",
            k,
            seed,
            batch as u64,
            d as u64,
            &zeros,
            &zeros,
            Some(1.0),
        )
        .unwrap();
        let cpu = cpu_noise(&p, k as u64, seed, n);
        assert!(cpu.iter().any(|z| *z != 0.0));
        for i in 0..n {
            assert_eq!(
                cpu[i].to_bits(),
                gpu[i].to_bits(),
                "noise at {i}: cpu {}, gpu {}",
                cpu[i],
                gpu[i]
            );
        }
    }
}

/// The coefficients of entry `unit` at time `t` (and params), as diffc's host code computes them
/// and rounds them to f32.
fn host_row(p: &Process, unit: &str, t: f64, params: &[Option<diffc::typed::Value>]) -> Vec<f32> {
    use diffc::check::eval::{Env, Evaluator};
    let prog = diffc::ir::lower::lower(p, unit).unwrap();
    let ev = Evaluator::new(p);
    let env = Env {
        t,
        s: Some(p.time.data_at.min(p.time.lo)),
        params: params.to_vec(),
        ..Env::default()
    };
    let mut row = Vec::new();
    for (e, at) in &prog.coefs {
        let env = match at {
            Some(a) => Env {
                t: ev.real(*a, &env).unwrap(),
                ..env.clone()
            },
            None => env.clone(),
        };
        match ev
            .eval(*e, &env)
            .unwrap_or_else(|_| panic!("{unit} at {t}"))
        {
            diffc::typed::Value::Real(x) => row.push(x as f32),
            diffc::typed::Value::Bool(b) => row.push(b as u8 as f32),
            diffc::typed::Value::Vec(v) | diffc::typed::Value::Mat(_, v) => {
                row.extend(v.iter().map(|x| *x as f32))
            }
            other => panic!("{unit}: coefficient {other:?}"),
        }
    }
    row
}

fn node(script: &str, dir: &Path) -> String {
    let out = Command::new("node")
        .args(["--input-type=module", "-e", script])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("this test needs Node.js (`node`): {e}"));
    assert!(
        out.status.success(),
        "node failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A line of a host-module script that makes each of `calls` (JavaScript expressions) and
/// fails unless every one throws a `RangeError`.
fn js_refuses(calls: &[String]) -> String {
    let calls: Vec<String> = calls.iter().map(|c| format!("() => {c}")).collect();
    format!(
        "for (const bad of [{}]) {{ try {{ bad(); throw new Error('accepted'); }} catch (e) {{ if (!(e instanceof RangeError)) throw e; }} }}\n",
        calls.join(", ")
    )
}

/// Runs `script` (which fills `out` with rows keyed as in `expect`) with Node in `dir`, and
/// asserts that every row equals diffc's within 1e-6 relative; `case` names the spec in
/// messages. Returns the largest relative difference, how many values were equal bit for bit,
/// and how many were compared.
fn compare_host_rows(
    mut script: String,
    dir: &Path,
    expect: &[(String, Vec<f32>)],
    case: &str,
) -> (f64, usize, usize) {
    let (mut worst, mut bitwise, mut total) = (0.0f64, 0, 0);
    script.push_str("console.log(JSON.stringify(out));\n");
    let printed = node(&script, dir);
    let got: Value = serde_json::from_str(printed.trim()).unwrap();
    for (key, want) in expect {
        let row: Vec<f32> = arr(&got[key.as_str()])
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(row.len(), want.len(), "{case}: {key}: width");
        for (j, (a, b)) in row.iter().zip(want).enumerate() {
            let rel = ((a - b).abs() / b.abs().max(f32::MIN_POSITIVE)) as f64;
            worst = worst.max(rel);
            bitwise += (a.to_bits() == b.to_bits()) as usize;
            total += 1;
            assert!(
                rel <= 1e-6,
                "{case}: {key}: row[{j}] = {a} from the host module, {b} from diffc"
            );
        }
    }
    (worst, bitwise, total)
}

#[test]
fn the_host_module_computes_per_sample_rows_as_diffc_does() {
    let (mut computed, mut tables, mut with_params) = (0, 0, 0);
    let (mut worst, mut bitwise, mut total) = (0.0f64, 0, 0);
    // The shipped specs, and `interp` reads in computed rows.
    let extra = ["../tests/data/interp_rows.diff".to_string()];
    for spec in shipped_specs().into_iter().chain(extra) {
        let stem = Path::new(&spec)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let dir = scratch(&format!("host-{stem}"));
        let built = build_into(&spec, &dir);
        let json: Value = serde_json::from_str(&built.manifest_json()).unwrap();
        assert_eq!(s(&json["host_module"]), built.host_name());
        let module = module(&spec);
        let mut script = format!(
            "import * as m from './{}';\nconst out = {{}};\n",
            built.host_name()
        );
        let mut expect: Vec<(String, Vec<f32>)> = Vec::new();
        for pj in arr(&json["processes"]) {
            let p = module
                .processes
                .iter()
                .find(|p| p.name == s(&pj["name"]))
                .unwrap();
            let (lo, hi) = (p.time.lo, p.time.hi);
            let times: Vec<f64> = if p.time.kind == diffc::typed::TimeKind::Discrete {
                vec![lo, (0.3 * lo + 0.7 * hi).round(), hi]
            } else if common::natural_data_end(p) {
                // At EDM's σ = 0 a loss weighted by 1/σ² has no value.
                vec![lo + 0.01 * (hi - lo), lo + 0.37 * (hi - lo), hi]
            } else {
                vec![lo, lo + 0.37 * (hi - lo), hi]
            };
            for uj in arr(&pj["units"]) {
                let takes_t = s(&uj["kind"]) == "entry"
                    && arr(&uj["inputs"])
                        .iter()
                        .any(|x| s(&x["name"]) == p.time.name);
                let per = &uj["per_sample_time"];
                assert_eq!(
                    takes_t,
                    !per.is_null(),
                    "{spec}: {}.{}: per_sample_time",
                    p.name,
                    s(&uj["name"])
                );
                if per.is_null() {
                    continue;
                }
                let unit = s(&uj["name"]);
                if s(&per["rows"]) == "table" {
                    assert_eq!(s(&uj["row"]["tabulated"]), "per_time");
                    tables += 1;
                    continue;
                }
                let f = s(&per["function"]);
                computed += 1;
                for (i, t) in times.iter().enumerate() {
                    let t32 = *t as f32;
                    script.push_str(&format!("out['{f}/{i}'] = Array.from(m.{f}({t32:?}));\n"));
                    // The host code reads the time as its f32, snapped to an end it rounds to.
                    let tv = if t32 as f64 == *t || t == &hi || t == &lo {
                        *t
                    } else {
                        t32 as f64
                    };
                    expect.push((format!("{f}/{i}"), host_row(p, unit, tv, &[])));
                }
                // Run-time params: each settable one reversed (a probability vector stays one).
                let params = arr(&pj["params"]);
                if !params.is_empty() {
                    let mut given = vec![None; p.params.len()];
                    let mut obj = Vec::new();
                    for q in params {
                        let d: Vec<f64> = arr(&q["default"])
                            .iter()
                            .map(|x| x.as_f64().unwrap())
                            .rev()
                            .collect();
                        let v32: Vec<f32> = d.iter().map(|x| *x as f32).collect();
                        obj.push(format!("{}: {:?}", s(&q["name"]), v32));
                        given[u(&q["index"]) as usize] = Some(diffc::typed::Value::Vec(
                            v32.iter().map(|x| *x as f64).collect(),
                        ));
                    }
                    let t = times[1];
                    script.push_str(&format!(
                        "out['{f}/p'] = Array.from(m.{f}({t:?}, {{{}}}));\n",
                        obj.join(", ")
                    ));
                    expect.push((format!("{f}/p"), host_row(p, unit, t, &given)));
                    with_params += 1;
                }
                // Bad times and params are refused.
                script.push_str(&js_refuses(&[
                    format!("m.{f}(NaN)"),
                    format!("m.{f}({})", hi + 1.0),
                    format!("m.{f}({:?}, {{nope: [1]}})", times[1]),
                ]));
            }
        }
        let (w, b, n) = compare_host_rows(script, &dir, &expect, &spec);
        worst = worst.max(w);
        bitwise += b;
        total += n;
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "{computed} entries' computed rows ({with_params} with run-time params) and {tables} \
         tabulated ones; {bitwise} of {total} values equal diffc's bit for bit, the largest \
         relative difference {worst:e}"
    );
    assert!(
        computed >= 10 && tables >= 10 && with_params >= 3,
        "{computed} {tables} {with_params}"
    );
}

/// Ends of a continuous time that are no f32 numbers (`tests/data/time_ends.diff`'s
/// `[1e-3, 0.999]`, `time_end_low.diff`'s `[0.7, 1]`): the host module's row functions take an
/// end as written and as the f32 nearest to it alike, giving the row diffc computes at the end,
/// and refuse a time one f32 step past an end.
#[test]
fn the_host_module_takes_an_end_given_as_its_nearest_f32_as_the_end() {
    let mut checked = 0;
    for file in ["time_ends.diff", "time_end_low.diff"] {
        let dir = scratch(file.trim_end_matches(".diff"));
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(file);
        let text = std::fs::read_to_string(path).unwrap();
        let (module, diags) = diffc::check::check_source(&text);
        assert!(diags.iter().all(|d| !d.is_error()), "{file} has errors");
        let module = module.unwrap();
        let stem = file.trim_end_matches(".diff");
        let built = diffc::gpu::manifest::build(&module, stem, None)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        std::fs::write(dir.join(built.host_name()), &built.host_js).unwrap();
        let json: Value = serde_json::from_str(&built.manifest_json()).unwrap();
        let p = &module.processes[0];
        let (lo, hi) = (p.time.lo, p.time.hi);
        let mut script = format!(
            "import * as m from './{}';\nconst out = {{}};\n",
            built.host_name()
        );
        let mut expect: Vec<(String, Vec<f32>)> = Vec::new();
        for uj in arr(&json["processes"][0]["units"]) {
            let per = &uj["per_sample_time"];
            if per.is_null() || s(&per["rows"]) != "computed" {
                continue;
            }
            let (f, unit) = (s(&per["function"]), s(&uj["name"]));
            for (i, t) in [lo, hi].iter().enumerate() {
                let t32 = *t as f32;
                script.push_str(&format!(
                    "out['{f}/{i}'] = Array.from(m.{f}({t:?}));\nout['{f}/{i}f'] = Array.from(m.{f}({t32:?}));\n"
                ));
                let want = host_row(p, unit, *t, &[]);
                expect.push((format!("{f}/{i}"), want.clone()));
                expect.push((format!("{f}/{i}f"), want));
            }
            let past = [
                f32::from_bits((lo as f32).to_bits() - 1),
                f32::from_bits((hi as f32).to_bits() + 1),
            ];
            script.push_str(&js_refuses(&past.map(|t| format!("m.{f}({t:?})"))));
            checked += 1;
        }
        compare_host_rows(script, &dir, &expect, file);
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(checked >= 4, "{checked}");
}
