//! `kernels/rng.wgsl` against its Rust twin `diffc::rng`, bit for bit, on the GPU.

mod common;

use std::sync::Arc;

use diffc::gpu::runtime::{u32_bytes, Access, Binding, Gpu, Kernel, ShaderCode};
use diffc::rng;
use rand::{Rng, SeedableRng};

const RNG_WGSL: &str = include_str!("../kernels/rng.wgsl");

/// Test entry points appended to the library: each invocation handles element
/// `i = (workgroup_id.x + workgroup_id.y * num_workgroups.x) * 64 + local_invocation_index`.
const TEST_WGSL: &str = r#"
struct Params {
    count: u32,
    offset: u32,
    stride: u32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read_write> output: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * 64u + lid;
}

// Input: per case (seed lo, seed hi, stream, step, index lo, index hi).
// Output: per case (word, uniform bits, normal bits).
@compute @workgroup_size(64)
fn draws(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if i >= params.count {
        return;
    }
    let b = 6u * i;
    let key = diffc_key(input[b], input[b + 1u]);
    let stream = input[b + 2u];
    let step = input[b + 3u];
    let index = vec2<u32>(input[b + 4u], input[b + 5u]);
    output[3u * i] = diffc_word(key, stream, step, index);
    output[3u * i + 1u] = bitcast<u32>(diffc_uniform(key, stream, step, index));
    output[3u * i + 2u] = bitcast<u32>(diffc_normal(key, stream, step, index));
}

// u = uniform_open((offset + i) << 9), the uniform midpoint k = offset + i.
// Output: (log u, sin 2 pi u, cos 2 pi u, sqrt(-2 log u)).
@compute @workgroup_size(64)
fn midpoints(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if i >= params.count {
        return;
    }
    let u = diffc_uniform_open((params.offset + i) << 9u);
    let l = diffc_log(u);
    let sc = diffc_sincos_2pi(u);
    output[4u * i] = bitcast<u32>(l);
    output[4u * i + 1u] = bitcast<u32>(sc.x);
    output[4u * i + 2u] = bitcast<u32>(sc.y);
    output[4u * i + 3u] = bitcast<u32>(diffc_sqrt(-2.0 * l));
}

// x = the f32 with bits offset + i * stride.
// Output: (log x, sqrt x, sin 2 pi x, cos 2 pi x), the last two only for x in [0, 1] (else 0).
@compute @workgroup_size(64)
fn bits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if i >= params.count {
        return;
    }
    let xb = params.offset + i * params.stride;
    let x = bitcast<f32>(xb);
    output[4u * i] = bitcast<u32>(diffc_log(x));
    output[4u * i + 1u] = bitcast<u32>(diffc_sqrt(x));
    var sc = vec2<f32>(0.0, 0.0);
    if xb <= 0x3F800000u {
        sc = diffc_sincos_2pi(x);
    }
    output[4u * i + 2u] = bitcast<u32>(sc.x);
    output[4u * i + 3u] = bitcast<u32>(sc.y);
}
"#;

fn test_source() -> String {
    format!("{RNG_WGSL}\n{TEST_WGSL}")
}

const BINDINGS: [Access; 3] = [Access::Read, Access::ReadWrite, Access::Uniform];

/// Runs test entry `entry` over `count` elements with `input` and the parameters, returning
/// `words_out` words per element.
/// How the test module reaches wgpu.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// The WGSL text as written here.
    Wgsl,
    /// The naga module parsed from it.
    Naga,
    /// The text naga's WGSL writer makes of that module.
    Written,
}

fn kernel(gpu: &Gpu, via: Via, entry: &str) -> Arc<Kernel> {
    let parsed = || naga::front::wgsl::parse_str(&test_source()).unwrap();
    let result = match via {
        Via::Wgsl => gpu.kernel_wgsl(&test_source(), entry, &BINDINGS),
        Via::Naga => gpu.kernel("gpu_rng via naga", entry, &BINDINGS, || {
            ShaderCode::Naga(Box::new(parsed()))
        }),
        Via::Written => gpu.kernel("gpu_rng via written", entry, &BINDINGS, || {
            let module = parsed();
            let info = naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::default(),
            )
            .validate(&module)
            .unwrap();
            let flags = naga::back::wgsl::WriterFlags::empty();
            ShaderCode::Wgsl(naga::back::wgsl::write_string(&module, &info, flags).unwrap())
        }),
    };
    result.unwrap_or_else(|e| panic!("{e}"))
}

#[allow(clippy::too_many_arguments)]
fn run(
    gpu: &Gpu,
    via: Via,
    entry: &str,
    input: &[u32],
    count: u32,
    offset: u32,
    stride: u32,
    words_out: u64,
) -> Vec<u32> {
    let kernel = kernel(gpu, via, entry);
    let input = if input.is_empty() { &[0u32][..] } else { input };
    let input = gpu.upload_u32(input).unwrap();
    let output = gpu.storage(u64::from(count) * words_out * 4).unwrap();
    let params = gpu
        .uniform(&u32_bytes(&[count, offset, stride, 0]))
        .unwrap();
    gpu.dispatch(
        &kernel,
        &[
            Binding::whole(&input),
            Binding::whole(&output),
            Binding::whole(&params),
        ],
        u64::from(count).div_ceil(64),
    )
    .unwrap();
    gpu.read_u32(&output).unwrap()
}

/// Equal bits, or both NaN.
fn same(gpu: u32, cpu: f32) -> bool {
    gpu == cpu.to_bits() || (f32::from_bits(gpu).is_nan() && cpu.is_nan())
}

/// Asserts that no mismatch was found, showing the first few.
fn assert_none(what: &str, mismatches: &[String], checked: usize) {
    assert!(
        mismatches.is_empty(),
        "{what}: {} of {checked} differ from the Rust twin; first: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(8)]
    );
}

#[test]
fn rng_wgsl_validates_as_a_plain_module_with_the_public_functions() {
    let module = naga::front::wgsl::parse_str(RNG_WGSL).unwrap_or_else(|e| {
        panic!("{}", e.emit_to_string(RNG_WGSL));
    });
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{}", e.emit_to_string(RNG_WGSL)));
    assert!(module.entry_points.is_empty(), "no entry points");
    assert!(module.global_variables.is_empty(), "no bindings");

    let shape = |ty: naga::Handle<naga::Type>| match module.types[ty].inner {
        naga::TypeInner::Scalar(s) => format!("{:?}{}", s.kind, s.width * 8),
        naga::TypeInner::Vector { size, scalar } => {
            format!("vec{}<{:?}{}>", size as u8, scalar.kind, scalar.width * 8)
        }
        ref other => format!("{other:?}"),
    };
    let signature = |name: &str| {
        let (_, f) = module
            .functions
            .iter()
            .find(|(_, f)| f.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{name} is missing"));
        let args: Vec<String> = f.arguments.iter().map(|a| shape(a.ty)).collect();
        format!(
            "({}) -> {}",
            args.join(", "),
            shape(f.result.as_ref().unwrap().ty)
        )
    };
    let draw = "(vec2<Uint32>, Uint32, Uint32, vec2<Uint32>)";
    assert_eq!(signature("diffc_word"), format!("{draw} -> Uint32"));
    assert_eq!(signature("diffc_uniform"), format!("{draw} -> Float32"));
    assert_eq!(signature("diffc_normal"), format!("{draw} -> Float32"));
    assert_eq!(signature("diffc_log"), "(Float32) -> Float32");
    assert_eq!(signature("diffc_sincos_2pi"), "(Float32) -> vec2<Float32>");
    assert_eq!(signature("diffc_sqrt"), "(Float32) -> Float32");
    assert_eq!(signature("diffc_uniform_open"), "(Uint32) -> Float32");

    // The module also writes back out as WGSL, as the kernel generator will.
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap();
    let text =
        naga::back::wgsl::write_string(&module, &info, naga::back::wgsl::WriterFlags::empty())
            .unwrap();
    assert!(text.contains("fn diffc_normal("));
}

#[test]
fn rng_wgsl_constants_are_the_rust_constants() {
    let module = naga::front::wgsl::parse_str(RNG_WGSL).unwrap();
    check_constants(&module);
    // Also after a round trip through naga's WGSL writer, as generated kernels take it.
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap();
    let text =
        naga::back::wgsl::write_string(&module, &info, naga::back::wgsl::WriterFlags::empty())
            .unwrap();
    check_constants(&naga::front::wgsl::parse_str(&text).unwrap());
}

fn check_constants(module: &naga::Module) {
    let value = |name: &str| -> naga::Literal {
        let (_, c) = module
            .constants
            .iter()
            // naga's writer appends `_` to names that end in a digit.
            .find(|(_, c)| c.name.as_deref() == Some(name) || c.name == Some(format!("{name}_")))
            .unwrap_or_else(|| panic!("{name} is missing"));
        match module.global_expressions[c.init] {
            naga::Expression::Literal(l) => l,
            ref e => panic!("{name} is {e:?}"),
        }
    };
    let f = |name: &str| match value(name) {
        naga::Literal::F32(v) => v.to_bits(),
        l => panic!("{name} is {l:?}"),
    };
    let u = |name: &str| match value(name) {
        naga::Literal::U32(v) => v,
        l => panic!("{name} is {l:?}"),
    };
    assert_eq!(u("DIFFC_PHILOX_M0"), rng::PHILOX_M0);
    assert_eq!(u("DIFFC_PHILOX_M1"), rng::PHILOX_M1);
    assert_eq!(u("DIFFC_PHILOX_W0"), rng::PHILOX_W0);
    assert_eq!(u("DIFFC_PHILOX_W1"), rng::PHILOX_W1);
    assert_eq!(u("DIFFC_SQRT2_BITS"), rng::SQRT2_BITS);
    assert_eq!(f("DIFFC_LN2_HI"), rng::LN2_HI.to_bits());
    assert_eq!(f("DIFFC_LN2_LO"), rng::LN2_LO.to_bits());
    for (k, c) in rng::LOG_P.iter().enumerate() {
        assert_eq!(f(&format!("DIFFC_LOG_P{k}")), c.to_bits(), "LOG_P[{k}]");
    }
    assert_eq!(f("DIFFC_SIN_S1"), rng::SIN_S1.to_bits());
    for (k, c) in rng::SIN_R.iter().enumerate() {
        assert_eq!(f(&format!("DIFFC_SIN_R{k}")), c.to_bits(), "SIN_R[{k}]");
    }
    assert_eq!(f("DIFFC_COS_C2"), rng::COS_C2.to_bits());
    for (k, c) in rng::COS_Q.iter().enumerate() {
        assert_eq!(f(&format!("DIFFC_COS_Q{k}")), c.to_bits(), "COS_Q[{k}]");
    }
}

/// (seed, stream, step, index) cases: random ones, indices around 2^32 and 2^64 and across
/// block boundaries, and a dense run of indices.
fn draw_cases() -> Vec<(u64, u32, u32, u64)> {
    let mut r = rand::rngs::StdRng::seed_from_u64(0x5eed_0005);
    let mut cases = vec![(0, 0, 0, 0), (u64::MAX, u32::MAX, u32::MAX, u64::MAX)];
    for _ in 0..100_000 {
        cases.push((r.random(), r.random(), r.random(), r.random()));
    }
    let edges = [
        0u64,
        3,
        4,
        (1 << 32) - 4,
        (1 << 32) - 1,
        1 << 32,
        (1 << 34) - 1,
        1 << 34,
        (1 << 62) + 3,
        u64::MAX - 7,
    ];
    for _ in 0..200 {
        let (seed, stream, step) = (r.random(), r.random(), r.random());
        for &e in &edges {
            for d in 0..8 {
                cases.push((seed, stream, step, e.wrapping_add(d)));
            }
        }
    }
    for i in 0..200_000 {
        cases.push((42, 7, 3, i));
    }
    cases
}

#[test]
fn draws_match_rust_bit_for_bit() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let cases = draw_cases();
    let input: Vec<u32> = cases
        .iter()
        .flat_map(|&(seed, stream, step, i)| {
            [
                seed as u32,
                (seed >> 32) as u32,
                stream,
                step,
                i as u32,
                (i >> 32) as u32,
            ]
        })
        .collect();
    let out = run(gpu, Via::Wgsl, "draws", &input, cases.len() as u32, 0, 0, 3);
    let mut bad = Vec::new();
    for (c, &(seed, stream, step, i)) in cases.iter().enumerate() {
        let word = rng::word(seed, stream, step, i);
        let uniform = rng::uniform(seed, stream, step, i);
        let normal = rng::normal(seed, stream, step, i);
        let got = &out[3 * c..3 * c + 3];
        if got[0] != word || got[1] != uniform.to_bits() || got[2] != normal.to_bits() {
            bad.push(format!(
                "seed {seed:#x} stream {stream} step {step} index {i}: gpu {:08x} {:e} {:e}, rust {word:08x} {uniform:e} {normal:e}",
                got[0],
                f32::from_bits(got[1]),
                f32::from_bits(got[2])
            ));
        }
    }
    assert_none("draws", &bad, cases.len());
}

#[test]
fn log_sincos_and_box_muller_radius_match_on_every_uniform() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let total = 1u32 << 23;
    let chunk = 1u32 << 21;
    let mut bad = Vec::new();
    for offset in (0..total).step_by(chunk as usize) {
        let out = run(gpu, Via::Wgsl, "midpoints", &[], chunk, offset, 0, 4);
        for i in 0..chunk {
            let k = offset + i;
            let u = rng::uniform_open(k << 9);
            let l = rng::log_f32(u);
            let (s, c) = rng::sincos_2pi_f32(u);
            let r = (-2.0 * l).sqrt();
            let got = &out[4 * i as usize..4 * i as usize + 4];
            if got[0] != l.to_bits()
                || got[1] != s.to_bits()
                || got[2] != c.to_bits()
                || got[3] != r.to_bits()
            {
                bad.push(format!(
                    "u = {u:e}: gpu log {:e} sin {:e} cos {:e} r {:e}; rust {l:e} {s:e} {c:e} {r:e}",
                    f32::from_bits(got[0]),
                    f32::from_bits(got[1]),
                    f32::from_bits(got[2]),
                    f32::from_bits(got[3])
                ));
            }
        }
    }
    assert_none("uniform midpoints", &bad, total as usize);
}

#[test]
fn log_sqrt_and_sincos_match_on_a_stride_of_all_floats() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let mut bad = Vec::new();
    let mut checked = 0;
    let mut flushes = 0;
    // Every 509th bit pattern (all signs, subnormals, infinities and NaNs included), then every
    // 127th pattern of [0, 1] for the sine and cosine, then the first subnormals one by one;
    // each sweep in runs of at most 2^22 elements (16 bytes each) to stay within one binding.
    let mut sweeps = Vec::new();
    for (stride, total) in [
        (509u32, u32::MAX / 509 + 1),
        (127, 0x3F80_0000 / 127 + 1),
        (1, 1 << 16),
    ] {
        for first in (0..total).step_by(1 << 22) {
            sweeps.push((
                first.wrapping_mul(stride),
                stride,
                (total - first).min(1 << 22),
            ));
        }
    }
    for (offset, stride, count) in sweeps {
        let out = run(gpu, Via::Wgsl, "bits", &[], count, offset, stride, 4);
        for i in 0..count {
            let xb = offset.wrapping_add(i.wrapping_mul(stride));
            let x = f32::from_bits(xb);
            let l = rng::log_f32(x);
            let q = rng::sqrt_f32_exact(x);
            let (s, c) = if xb <= 0x3F80_0000 {
                rng::sincos_2pi_f32(x)
            } else {
                (0.0, 0.0)
            };
            let got = &out[4 * i as usize..4 * i as usize + 4];
            // A device that flushes subnormal operands and results to zero (NVIDIA's does) gives
            // a zero of the same sign for the sine of a subnormal argument. No draw reaches it:
            // uniforms are at least 2^-24.
            let flushed =
                x != 0.0 && x.abs() < f32::MIN_POSITIVE && got[2] == (s.to_bits() & 0x8000_0000);
            if flushed {
                flushes += 1;
            }
            if !(same(got[0], l)
                && same(got[1], q)
                && (got[2] == s.to_bits() || flushed)
                && got[3] == c.to_bits())
            {
                bad.push(format!(
                    "x = {x:e} ({xb:#010x}): gpu log {:e} sqrt {:e} sin {:e} cos {:e}; rust {l:e} {q:e} {s:e} {c:e}",
                    f32::from_bits(got[0]),
                    f32::from_bits(got[1]),
                    f32::from_bits(got[2]),
                    f32::from_bits(got[3])
                ));
            }
        }
        checked += count as usize;
    }
    println!("{checked} floats: {flushes} sines of subnormals flushed to zero by the device");
    assert_none("float sweep", &bad, checked);
}

#[test]
fn the_naga_module_and_naga_written_text_give_the_same_bits() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    // Generated kernels reach wgpu as a naga module or as the text naga writes; both must keep
    // the arithmetic (and its barriers) of the hand-written text.
    let cases: Vec<u32> = draw_cases()
        .iter()
        .take(20_000)
        .flat_map(|&(seed, stream, step, i)| {
            [
                seed as u32,
                (seed >> 32) as u32,
                stream,
                step,
                i as u32,
                (i >> 32) as u32,
            ]
        })
        .collect();
    let n = cases.len() as u32 / 6;
    let draws = run(gpu, Via::Wgsl, "draws", &cases, n, 0, 0, 3);
    let midpoints = run(gpu, Via::Wgsl, "midpoints", &[], 1 << 20, 0, 0, 4);
    for via in [Via::Naga, Via::Written] {
        assert!(
            run(gpu, via, "draws", &cases, n, 0, 0, 3) == draws,
            "draws via {via:?}"
        );
        assert!(
            run(gpu, via, "midpoints", &[], 1 << 20, 0, 0, 4) == midpoints,
            "midpoints via {via:?}"
        );
    }
}
