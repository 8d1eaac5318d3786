//! The wgpu runtime: dispatch grids, bindings, the kernel cache, readback and errors.

mod common;

use std::cell::Cell;

use diffc::gpu::runtime::{
    chunks, grid, u32_bytes, Access, Binding, ChunkLimits, Dispatch, Gpu, GpuError, Options,
    ShaderCode,
};

/// Writes `params.base + i` at element `i` of the bound output, for `i < params.count`, with the
/// 2-D grid convention: linear workgroup id = workgroup_id.x + workgroup_id.y * num_workgroups.x.
const IOTA_WGSL: &str = r#"
struct Params {
    count: u32,
    base: u32,
}

@group(0) @binding(0) var<storage, read_write> output: array<u32>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(64)
fn iota(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 64u + lid;
    if i < params.count {
        output[i] = params.base + i;
    }
}

// Adds input[i] to output[i] for every element of the bound ranges.
@group(0) @binding(2) var<storage, read> input: array<u32>;

@compute @workgroup_size(64)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 64u + lid;
    if i < params.count {
        output[i] = output[i] + input[i];
    }
}
"#;

const IOTA_BINDINGS: [Access; 2] = [Access::ReadWrite, Access::Uniform];
const ADD_BINDINGS: [Access; 3] = [Access::ReadWrite, Access::Uniform, Access::Read];

#[test]
fn a_dispatch_beyond_65535_workgroups_covers_every_element_once() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let workgroups = 70_000u64;
    let count = workgroups as u32 * 64 - 5;
    let [x, y, _] = grid(
        workgroups,
        gpu.limits().max_compute_workgroups_per_dimension,
    )
    .unwrap();
    assert!(gpu.limits().max_compute_workgroups_per_dimension < 70_000);
    assert!(y > 1 && u64::from(x) * u64::from(y) >= workgroups);
    let kernel = gpu.kernel_wgsl(IOTA_WGSL, "iota", &IOTA_BINDINGS).unwrap();
    // One word past the elements: the grid's extra workgroups must leave it alone.
    let output = gpu.storage(u64::from(count) * 4 + 4).unwrap();
    let params = gpu.uniform(&u32_bytes(&[count, 7])).unwrap();
    gpu.dispatch(
        &kernel,
        &[Binding::whole(&output), Binding::whole(&params)],
        workgroups,
    )
    .unwrap();
    let got = gpu.read_u32(&output).unwrap();
    for (i, &v) in got[..count as usize].iter().enumerate() {
        assert_eq!(v, 7 + i as u32, "element {i}");
    }
    assert_eq!(got[count as usize], 0);
}

#[test]
fn binding_ranges_and_batched_dispatches() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let align = u64::from(gpu.limits().min_storage_buffer_offset_alignment);
    let per_chunk = align / 4 * 48; // words per chunk: a multiple of the alignment
    let iota = gpu.kernel_wgsl(IOTA_WGSL, "iota", &IOTA_BINDINGS).unwrap();
    let add = gpu.kernel_wgsl(IOTA_WGSL, "add", &ADD_BINDINGS).unwrap();
    let output = gpu.storage(per_chunk * 2 * 4).unwrap();
    let ones = gpu.upload_u32(&vec![1; per_chunk as usize * 2]).unwrap();
    let p0 = gpu.uniform(&u32_bytes(&[per_chunk as u32, 0])).unwrap();
    let p1 = gpu.uniform(&u32_bytes(&[per_chunk as u32, 1000])).unwrap();
    let bytes = per_chunk * 4;
    let first = [Binding::range(&output, 0..bytes), Binding::whole(&p0)];
    let second = [
        Binding::range(&output, bytes..2 * bytes),
        Binding::whole(&p1),
    ];
    let add_all = [
        Binding::whole(&output),
        Binding::whole(&p0),
        Binding::whole(&ones),
    ];
    let wg = per_chunk.div_ceil(64);
    gpu.dispatch_all(&[
        Dispatch {
            kernel: &iota,
            bindings: &first,
            workgroups: wg,
        },
        Dispatch {
            kernel: &iota,
            bindings: &second,
            workgroups: wg,
        },
        // Sees the writes above: adds one to the first chunk only (count = per_chunk).
        Dispatch {
            kernel: &add,
            bindings: &add_all,
            workgroups: wg,
        },
    ])
    .unwrap();
    let got = gpu.read_u32(&output).unwrap();
    for i in 0..per_chunk as usize {
        assert_eq!(got[i], i as u32 + 1);
        assert_eq!(got[per_chunk as usize + i], 1000 + i as u32);
    }
    // A partial read.
    let tail = gpu.read(&output, bytes..bytes + 8).unwrap();
    assert_eq!(tail, u32_bytes(&[1000, 1001]));
}

#[test]
fn kernels_are_cached_by_key_and_entry() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let built = Cell::new(0);
    let source = || {
        built.set(built.get() + 1);
        ShaderCode::Wgsl(IOTA_WGSL.to_string())
    };
    let a = gpu
        .kernel("cache test", "iota", &IOTA_BINDINGS, source)
        .unwrap();
    let b = gpu
        .kernel("cache test", "iota", &IOTA_BINDINGS, source)
        .unwrap();
    assert_eq!(built.get(), 1);
    assert!(std::ptr::eq(&*a, &*b));
    assert_eq!(
        (a.key(), a.entry(), a.bindings()),
        ("cache test", "iota", &IOTA_BINDINGS[..])
    );
    let err = gpu
        .kernel("cache test", "iota", &ADD_BINDINGS, source)
        .unwrap_err();
    assert!(matches!(err, GpuError::Usage(_)), "{err}");
    assert_eq!(built.get(), 1);
}

#[test]
fn a_naga_module_runs_like_its_wgsl() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let module = naga::front::wgsl::parse_str(IOTA_WGSL).unwrap();
    let kernel = gpu
        .kernel("naga iota", "iota", &IOTA_BINDINGS, || {
            ShaderCode::Naga(Box::new(module))
        })
        .unwrap();
    let output = gpu.storage(100 * 4).unwrap();
    let params = gpu.uniform(&u32_bytes(&[100, 5])).unwrap();
    gpu.dispatch(
        &kernel,
        &[Binding::whole(&output), Binding::whole(&params)],
        2,
    )
    .unwrap();
    let expected: Vec<u32> = (5..105).collect();
    assert_eq!(gpu.read_u32(&output).unwrap(), expected);
}

#[test]
fn invalid_shaders_are_errors() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let cases = [
        // A syntax error.
        "@compute @workgroup_size(1) fn main() { let x = ; }",
        // A type error.
        "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5f; }",
        // No such entry point.
        "@compute @workgroup_size(1) fn other() {}",
    ];
    for wgsl in cases {
        match gpu.kernel_wgsl(wgsl, "main", &[]) {
            Err(GpuError::Shader(msg)) => assert!(!msg.is_empty()),
            other => panic!("{wgsl}: {other:?}"),
        }
    }
    // A naga module that does not validate: a function returning a value of the wrong type.
    let mut module = naga::front::wgsl::parse_str("fn f() -> u32 { return 1u; }").unwrap();
    let f32_ty = module.types.insert(
        naga::Type {
            name: None,
            inner: naga::TypeInner::Scalar(naga::Scalar::F32),
        },
        naga::Span::UNDEFINED,
    );
    for (_, f) in module.functions.iter_mut() {
        f.result.as_mut().unwrap().ty = f32_ty;
    }
    match gpu.kernel("bad naga", "main", &[], || {
        ShaderCode::Naga(Box::new(module))
    }) {
        Err(GpuError::Shader(_)) => {}
        other => panic!("{other:?}"),
    }
    // The device still works afterwards.
    let kernel = gpu.kernel_wgsl(IOTA_WGSL, "iota", &IOTA_BINDINGS).unwrap();
    let output = gpu.storage(4).unwrap();
    let params = gpu.uniform(&u32_bytes(&[1, 9])).unwrap();
    gpu.dispatch(
        &kernel,
        &[Binding::whole(&output), Binding::whole(&params)],
        1,
    )
    .unwrap();
    assert_eq!(gpu.read_u32(&output).unwrap(), [9]);
}

#[test]
fn misused_bindings_and_limits_are_errors() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let kernel = gpu.kernel_wgsl(IOTA_WGSL, "iota", &IOTA_BINDINGS).unwrap();
    let storage = gpu.storage(1024).unwrap();
    let uniform = gpu.uniform(&u32_bytes(&[1, 0])).unwrap();
    let usage = |b: &[Binding<'_>]| match gpu.dispatch(&kernel, b, 1) {
        Err(GpuError::Usage(_)) => {}
        other => panic!("{other:?}"),
    };
    usage(&[Binding::whole(&storage)]);
    usage(&[Binding::whole(&uniform), Binding::whole(&uniform)]);
    usage(&[Binding::range(&storage, 1..65), Binding::whole(&uniform)]);
    usage(&[Binding::range(&storage, 0..2048), Binding::whole(&uniform)]);
    usage(&[Binding::range(&storage, 0..0), Binding::whole(&uniform)]);
    assert!(matches!(gpu.read(&storage, 2..6), Err(GpuError::Usage(_))));
    assert!(matches!(gpu.read_u32(&uniform), Err(GpuError::Usage(_))));
    assert!(matches!(
        gpu.write(&storage, 1020, &[0; 8]),
        Err(GpuError::Usage(_))
    ));
    let too_big = gpu.limits().max_buffer_size + 1;
    assert!(matches!(gpu.storage(too_big), Err(GpuError::Limit(_))));
    let max = gpu.limits().max_compute_workgroups_per_dimension;
    let too_many = u64::from(max) * u64::from(max) + 1;
    assert!(matches!(
        gpu.dispatch(
            &kernel,
            &[Binding::whole(&storage), Binding::whole(&uniform)],
            too_many
        ),
        Err(GpuError::Limit(_))
    ));
}

#[test]
fn chunks_fit_the_adapter() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    let info = gpu.adapter_info();
    println!(
        "adapter: {} ({:?}, {:?}, driver {} {}); {:?}",
        info.name,
        info.backend,
        info.device_type,
        info.driver,
        info.driver_info,
        gpu.chunk_limits()
    );
    let limits = gpu.chunk_limits();
    assert!(limits.max_binding_bytes >= 128 << 20, "{limits:?}");
    // 3e9 f32 elements and a 12-byte array: every binding of every chunk is within the limits
    // and starts aligned.
    let len = 3_000_000_000u64;
    let ranges = chunks(len, &[4, 12], 256, &limits).unwrap();
    assert!(ranges.len() > 1);
    assert_eq!(ranges.first().unwrap().start, 0);
    assert_eq!(ranges.last().unwrap().end, len);
    for w in ranges.windows(2) {
        assert_eq!(w[0].end, w[1].start);
    }
    for r in &ranges {
        for b in [4, 12] {
            assert!((r.end - r.start) * b <= limits.max_binding_bytes);
            assert_eq!(r.start * b % limits.offset_alignment, 0);
        }
    }
}

#[test]
fn an_adapter_name_that_matches_nothing_is_an_error() {
    let options = Options {
        adapter: Some("no adapter has this name 7f3a".into()),
        ..Options::default()
    };
    match Gpu::with_options(&options) {
        Err(GpuError::NoAdapter(msg)) => assert!(msg.contains("7f3a"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_lost_device_is_an_error() {
    if common::gpu::gpu().is_none() {
        return;
    }
    // A device of its own: the shared one must stay usable for the other tests.
    let gpu = Gpu::new().unwrap();
    let kernel = gpu.kernel_wgsl(IOTA_WGSL, "iota", &IOTA_BINDINGS).unwrap();
    let output = gpu.storage(64).unwrap();
    let params = gpu.uniform(&u32_bytes(&[16, 0])).unwrap();
    gpu.device().destroy();
    let _ = gpu.wait();
    let lost = |r: Result<(), GpuError>| match r {
        Err(GpuError::DeviceLost(msg)) => assert!(!msg.is_empty()),
        other => panic!("{other:?}"),
    };
    lost(gpu.storage(16).map(drop));
    lost(gpu.dispatch(
        &kernel,
        &[Binding::whole(&output), Binding::whole(&params)],
        1,
    ));
    lost(gpu.read(&output, 0..64).map(drop));
}

#[test]
fn a_chunked_array_is_processed_chunk_by_chunk() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    // The adapter's alignment with a small binding limit, so that a small array needs chunks.
    let limits = ChunkLimits {
        max_binding_bytes: 4096 + 12,
        ..gpu.chunk_limits()
    };
    let len = 5000u64;
    let ranges = chunks(len, &[4], 64, &limits).unwrap();
    assert!(ranges.len() > 4, "{ranges:?}");
    let kernel = gpu.kernel_wgsl(IOTA_WGSL, "iota", &IOTA_BINDINGS).unwrap();
    let output = gpu.storage(len * 4).unwrap();
    let params: Vec<_> = ranges
        .iter()
        .map(|r| {
            gpu.uniform(&u32_bytes(&[(r.end - r.start) as u32, r.start as u32]))
                .unwrap()
        })
        .collect();
    let bindings: Vec<[Binding<'_>; 2]> = ranges
        .iter()
        .zip(&params)
        .map(|(r, p)| [Binding::elements(&output, r.clone(), 4), Binding::whole(p)])
        .collect();
    let dispatches: Vec<Dispatch<'_>> = ranges
        .iter()
        .zip(&bindings)
        .map(|(r, b)| Dispatch {
            kernel: &kernel,
            bindings: b,
            workgroups: (r.end - r.start).div_ceil(64),
        })
        .collect();
    gpu.dispatch_all(&dispatches).unwrap();
    let expected: Vec<u32> = (0..len as u32).collect();
    assert_eq!(gpu.read_u32(&output).unwrap(), expected);
}

#[test]
fn reads_larger_than_the_staging_buffer_come_back_whole() {
    let Some(gpu) = common::gpu::gpu() else {
        return;
    };
    // 72 MiB: more than one 64 MiB staging piece.
    let count = 18u32 << 20;
    let kernel = gpu.kernel_wgsl(IOTA_WGSL, "iota", &IOTA_BINDINGS).unwrap();
    let output = gpu.storage(u64::from(count) * 4).unwrap();
    let params = gpu.uniform(&u32_bytes(&[count, 3])).unwrap();
    gpu.dispatch(
        &kernel,
        &[Binding::whole(&output), Binding::whole(&params)],
        u64::from(count).div_ceil(64),
    )
    .unwrap();
    let got = gpu.read(&output, 4..output.size() - 4).unwrap();
    let expected = u32_bytes(&(4..count + 2).collect::<Vec<u32>>());
    assert!(got == expected, "the read differs");
}
