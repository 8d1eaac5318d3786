//! `diffc build --target wgsl`: one WGSL file per kernel and a JSON manifest, for WebGPU hosts
//! that run a process without diffc.
//!
//! The units (entries and samplers), their kernels, call sequences and rows of host values are
//! those of the ahead-of-time C build (`cpu::aot`: the same plans, the same recorded `Trace`s, the
//! same rows); this module writes each kernel through `gpu::codegen::shader` and maps the traces
//! into the manifest's serialisable structs. A kernel that codegen refuses fails the build with
//! the process, unit and kernel named. The library does no IO: the CLI writes the files.
//!
//! `docs/wgsl.md` describes the output and every field of the manifest.

use super::codegen::{self, PARAMS_HEAD, WORKGROUP};
use crate::cpu::aot::{
    self, coef_text, coef_width, elem_store, elem_width, elementwise, kernel_buf_doc,
    sampler_fields, src_text, Buf, CopyWhy, Event, Src, Trace, Unit, UnitKind, Word, REPEAT_STRIDE,
};
use crate::entries::{Extent as PortExtent, Port};
use crate::explain::show;
use crate::ir::Node;
use crate::kernel::{BufSrc, Kernel, Store};
use crate::typed::{Elem, Module, NetInput, Process, TimeKind};
use serde::Serialize;
use std::collections::BTreeSet;

/// The manifest's format name and version (`format`, `version`).
pub const FORMAT: &str = "diffc-wgsl";
pub const VERSION: u32 = 1;

/// The most workgroups per dispatch dimension (WebGPU's `maxComputeWorkgroupsPerDimension`
/// default, which every adapter offers).
pub const MAX_WORKGROUPS_PER_DIMENSION: u32 = 65_535;

/// A built spec: the WGSL of every kernel and the manifest.
pub struct WgslBuild {
    /// The file stem: `ddpm` gives `ddpm.json`.
    pub stem: String,
    /// `(file name, WGSL text)` per kernel, in the manifest's order.
    pub shaders: Vec<(String, String)>,
    pub manifest: Manifest,
    /// Every unit's rows of host values, one after another (`RowManifest::offset`).
    pub rows: Vec<f32>,
    /// The units (`process.entry` or `process.sampler`) built.
    pub units: Vec<String>,
}

impl WgslBuild {
    pub fn manifest_name(&self) -> String {
        format!("{}.json", self.stem)
    }
    /// The rows file: `ddpm` gives `ddpm.rows.f32`.
    pub fn rows_name(&self) -> String {
        rows_file(&self.stem)
    }
    /// The rows file's bytes: little-endian f32.
    pub fn rows_bytes(&self) -> Vec<u8> {
        self.rows.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
    /// The manifest as pretty-printed JSON (fields in a fixed order, arrays of numbers on one
    /// line), ending in a newline.
    pub fn manifest_json(&self) -> String {
        to_json(&self.manifest)
    }
}

/// Build every process of a checked spec (or only `process`).
pub fn build(module: &Module, stem: &str, process: Option<&str>) -> Result<WgslBuild, String> {
    let built = aot::traced(module, process)?;
    let mut shaders = Vec::new();
    let mut refused = Vec::new();
    let mut processes = Vec::new();
    let mut rows: Vec<f32> = Vec::new();
    let mut units_built = Vec::new();
    let mut files = BTreeSet::new();
    let mut max_storage = 0;
    for (p, units, traces) in &built {
        let mut ums = Vec::new();
        for (ui, (u, tr)) in units.iter().zip(traces).enumerate() {
            let mut kernels = Vec::new();
            for (i, k) in u.plan.kernels.iter().enumerate() {
                let shader = match codegen::shader(k) {
                    Ok(s) => s,
                    Err(e) => {
                        // codegen's message starts with the kernel's name, which this one gives.
                        let own = format!("kernel `{}`: ", k.name);
                        refused.push(format!(
                            "process `{}`, {} `{}`, kernel {i} `{}`: {}",
                            p.name,
                            unit_kind(u),
                            u.name,
                            k.name,
                            e.strip_prefix(&own).unwrap_or(&e)
                        ));
                        continue;
                    }
                };
                let file = kernel_file(p, u, i);
                if !files.insert(file.clone()) {
                    return Err(format!(
                        "two kernels would be written to `{file}`: rename an entry, sampler or \
                         process"
                    ));
                }
                max_storage = max_storage.max(3 + k.bufs.len());
                kernels.push(kernel_manifest(p, u, i, &file, &shader.entry));
                shaders.push((file, shader.wgsl));
            }
            ums.push(unit_manifest(p, units, ui, tr, kernels, &mut rows)?);
            units_built.push(format!("{}.{}", p.name, u.name));
        }
        processes.push(process_manifest(p, ums));
    }
    if !refused.is_empty() {
        return Err(format!(
            "{} kernel{} of `{stem}` {} no WGSL form:\n  {}",
            refused.len(),
            if refused.len() == 1 { "" } else { "s" },
            if refused.len() == 1 { "has" } else { "have" },
            refused.join("\n  ")
        ));
    }
    Ok(WgslBuild {
        stem: stem.to_string(),
        shaders,
        manifest: Manifest {
            format: FORMAT,
            version: VERSION,
            spec: stem.to_string(),
            workgroup_size: [WORKGROUP, 1, 1],
            params: ParamsLayout {
                head: PARAMS_HEAD,
                words: PARAM_WORDS.to_vec(),
                sizes: "then one word per dimension of the kernel: the size of `dims[i]`; then \
                        one word per kernel buffer: its base, the index of its first bound value \
                        (0 when the whole array is bound; a host that binds part of an array \
                        passes the index of the part's first value, and the kernel reads and \
                        writes `index - base`)",
            },
            fixed_bindings: FixedBindings {
                group: 0,
                params: 0,
                coefs: 1,
                status: 2,
                first_buffer: 3,
            },
            dispatch: DispatchRule {
                elements: "batch × the product of the sizes of the kernel's `domain` dimensions",
                workgroups: "with the kernel's `lanes` L (1 or 4) and first = start rounded down \
                             to a multiple of L: ceil((end - first) / (64 × L)); over a whole \
                             launch (start 0, end = elements): ceil(elements / (64 × L))",
                max_workgroups_per_dimension: MAX_WORKGROUPS_PER_DIMENSION,
                grid: "(workgroups, 1, 1) when workgroups ≤ 65535; else y = ceil(workgroups / \
                       65535), x = ceil(workgroups / y): (x, y, 1)",
                invocation: "g = (workgroup_id.x + workgroup_id.y × num_workgroups.x) × 64 + \
                             local_invocation_index computes flat elements first + L·g … \
                             first + L·g + L − 1, those in start..end",
            },
            status_bits: vec![
                StatusBit {
                    bit: crate::kernel::FAIL_INDEX,
                    meaning: "an index outside its vector",
                },
                StatusBit {
                    bit: crate::kernel::FAIL_CLASS,
                    meaning: "a class outside its range",
                },
                StatusBit {
                    bit: crate::kernel::FAIL_NONFINITE,
                    meaning: "a value stored to a sampler's real field is NaN or infinite",
                },
            ],
            repeat_offset_stride: REPEAT_STRIDE,
            max_storage_buffers_per_shader_stage: max_storage as u32,
            rows_file: rows_file(stem),
            processes,
        },
        rows,
        units: units_built,
    })
}

/// `ddpm_linear_ancestral_k0_sampler_ancestral_0.wgsl`: the C build's kernel symbol without its
/// `diffc_` prefix.
fn kernel_file(p: &Process, u: &Unit, i: usize) -> String {
    let sym = u.symbol(p, i);
    format!("{}.wgsl", sym.strip_prefix("diffc_").unwrap_or(&sym))
}

fn unit_kind(u: &Unit) -> &'static str {
    match u.kind {
        UnitKind::Entry(_) => "entry",
        UnitKind::Sampler(_) => "sampler",
    }
}

const PARAM_WORDS: [&str; 7] = [
    "seed_lo",
    "seed_hi",
    "step",
    "offset_lo",
    "offset_hi",
    "start",
    "end",
];

// ---------------------------------------------------------------------------------------------
// The manifest

#[derive(Serialize)]
pub struct Manifest {
    pub format: &'static str,
    pub version: u32,
    /// The spec file's stem.
    pub spec: String,
    pub workgroup_size: [u32; 3],
    pub params: ParamsLayout,
    pub fixed_bindings: FixedBindings,
    pub dispatch: DispatchRule,
    pub status_bits: Vec<StatusBit>,
    /// Run j of an inner loop adds j times this to the index offset of the loop's launches.
    pub repeat_offset_stride: u64,
    /// The most storage buffers one kernel binds (WebGPU's default limit is 8).
    pub max_storage_buffers_per_shader_stage: u32,
    /// The file of every unit's rows of host values: little-endian f32, one unit's rows after
    /// another (`row.offset`, `row.count`, `row.width`).
    pub rows_file: String,
    pub processes: Vec<ProcessManifest>,
}

fn rows_file(stem: &str) -> String {
    format!("{stem}.rows.f32")
}

#[derive(Serialize)]
pub struct ParamsLayout {
    /// Words before the dimension sizes.
    pub head: u32,
    pub words: Vec<&'static str>,
    pub sizes: &'static str,
}

#[derive(Serialize)]
pub struct FixedBindings {
    pub group: u32,
    pub params: u32,
    pub coefs: u32,
    pub status: u32,
    /// Kernel buffer i is at binding `first_buffer + i`.
    pub first_buffer: u32,
}

#[derive(Serialize)]
pub struct DispatchRule {
    pub elements: &'static str,
    pub workgroups: &'static str,
    pub max_workgroups_per_dimension: u32,
    pub grid: &'static str,
    pub invocation: &'static str,
}

#[derive(Serialize)]
pub struct StatusBit {
    pub bit: u32,
    pub meaning: &'static str,
}

#[derive(Serialize)]
pub struct ProcessManifest {
    pub name: String,
    /// The process's dimensions; `dims` elsewhere are indices into this list.
    pub dims: Vec<String>,
    pub fields: Vec<FieldManifest>,
    pub time: TimeManifest,
    pub networks: Vec<NetworkManifest>,
    pub units: Vec<UnitManifest>,
}

#[derive(Serialize)]
pub struct FieldManifest {
    pub index: u32,
    pub name: String,
    /// `real`, `bool`, `cat<K>`, `vec<K>` as the spec writes it.
    pub elem: String,
    /// How its values are stored on the GPU: `f32`, `u32` (classes) or `bool` (one u32, 0 or 1).
    pub element: &'static str,
    pub width: u32,
    pub dims: Vec<u32>,
    /// A symmetric edge field: the lower triangle mirrors the upper one, the diagonal is 0.
    pub symmetric: bool,
}

#[derive(Serialize)]
pub struct TimeManifest {
    pub name: String,
    /// `discrete` or `continuous`.
    pub kind: &'static str,
    pub lo: f64,
    pub hi: f64,
    pub data_at: f64,
}

#[derive(Serialize)]
pub struct NetworkManifest {
    pub index: u32,
    pub name: String,
    pub inputs: Vec<NetInputManifest>,
    pub outputs: Vec<NetOutputManifest>,
}

#[derive(Serialize)]
pub struct NetInputManifest {
    /// `field` (an array shaped like the field) or `time` (one float).
    pub kind: &'static str,
    /// The input's expression.
    pub expr: String,
}

#[derive(Serialize)]
pub struct NetOutputManifest {
    pub field: String,
    /// The parameterisation (`eps`, `x0`, `score`, …).
    pub kind: String,
    pub element: &'static str,
    pub width: u32,
    pub dims: Vec<u32>,
}

#[derive(Serialize)]
pub struct UnitManifest {
    pub name: String,
    /// `entry` or `sampler`.
    pub kind: &'static str,
    /// Entries: the ports that `input` and `output` buffers refer to (by index).
    pub inputs: Vec<PortManifest>,
    pub outputs: Vec<PortManifest>,
    /// Samplers: the grid, parameters and state.
    pub sampler: Option<SamplerManifest>,
    pub kernels: Vec<KernelManifest>,
    /// Scratch buffers the call sequences use (`scratch` sources 0 … scratch − 1).
    pub scratch: usize,
    pub row: RowManifest,
    /// Distinct call sequences; `program` says which runs when.
    pub sequences: Vec<SequenceManifest>,
    pub program: ProgramManifest,
}

#[derive(Serialize)]
pub struct PortManifest {
    pub index: u32,
    pub name: String,
    /// `field` (per element of `dims`), `sample` (one value per sample) or `scalar` (a time or
    /// the seed, not an array).
    pub extent: &'static str,
    pub element: &'static str,
    pub width: u32,
    pub dims: Vec<u32>,
}

#[derive(Serialize)]
pub struct SamplerManifest {
    /// Steps of the default grid.
    pub steps: usize,
    /// The default grid, noise end first: step k runs from t = grid[k] to s = grid[k + 1].
    pub grid: Vec<f64>,
    /// The parameters' defaults, which the rows hold.
    pub params: Vec<NameValue>,
    /// Fields the sampler reads and writes (by index).
    pub fields: Vec<u32>,
    /// Fields the caller must supply before the start (conditioning inputs).
    pub conditions: Vec<u32>,
    /// Slots the next step reads with `prev`, by name.
    pub history: Vec<HistoryManifest>,
}

#[derive(Serialize)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

#[derive(Serialize)]
pub struct HistoryManifest {
    pub slot: u32,
    pub name: String,
}

#[derive(Serialize)]
pub struct KernelManifest {
    pub index: u32,
    pub name: String,
    pub file: String,
    pub entry_point: String,
    pub workgroup_size: [u32; 3],
    /// Dimension names in the kernel's order: `params[head + i]` is the size of `dims[i]`.
    pub dims: Vec<String>,
    /// The process dimension (index) of each of `dims`.
    pub dim_index: Vec<u32>,
    /// Indices into `dims` whose product, times the batch, is the elements of a launch.
    pub domain: Vec<u32>,
    /// Every load and store reads its own element.
    pub elementwise: bool,
    /// Elements each invocation computes (`codegen::lanes`): 4 when the kernel draws at its
    /// own flat index, else 1.
    pub lanes: u32,
    /// Coefficient slots: `coefs[i]` is component `component` of coefficient `coef`.
    pub coefs: Vec<SlotManifest>,
    /// Floats to upload to `coefs` (at least one).
    pub coefs_len: u32,
    /// Draw sites the kernel generates.
    pub draws: Vec<String>,
    pub bindings: Vec<BindingManifest>,
}

#[derive(Serialize)]
pub struct SlotManifest {
    pub coef: u32,
    pub component: u32,
}

#[derive(Serialize)]
pub struct BindingManifest {
    pub binding: u32,
    /// `params`, `coefs`, `status`, or `b<i>` for kernel buffer i.
    pub name: String,
    /// Kernel buffers: the buffer's index (`binding − first_buffer`).
    pub buffer: Option<u32>,
    /// `f32`, `u32`, `bool` (stored as one u32 per bool, 0 or 1), or `atomic_u32` (status).
    pub element: &'static str,
    pub wgsl_type: &'static str,
    /// Values per element (K for a `vec<K>` value).
    pub width: u32,
    /// `read` (`var<storage, read>`) or `read_write`.
    pub access: &'static str,
    /// Length in elements (`batch·d`, `batch·n·n·K`), or how it is filled.
    pub len: String,
    pub holds: String,
}

#[derive(Serialize)]
pub struct CoefManifest {
    pub index: u32,
    /// Where it starts in the row, and its floats (K×K matrices row-major).
    pub at: u32,
    pub width: u32,
    pub formula: String,
}

#[derive(Serialize)]
pub struct RowManifest {
    /// Floats per row.
    pub width: u32,
    /// The unit's coefficients: the row starts with them.
    pub coefficients: Vec<CoefManifest>,
    /// `per_step` (samplers), `per_time` (discrete-time entries), `single` (entries without a
    /// time) or `supplied` (continuous-time entries: the caller computes the row).
    pub tabulated: &'static str,
    /// `per_time`: the time of `values[0]`; `values[i]` is the row at time `t_min + i`.
    pub t_min: Option<f64>,
    pub t_max: Option<f64>,
    /// What row `i` is.
    pub layout: String,
    /// Rows in the rows file (`null` when supplied): row `i` is floats
    /// `offset + i · width … offset + i · width + width − 1` of it.
    pub count: Option<usize>,
    /// The index of the first row's first float in the rows file (`null` when supplied).
    pub offset: Option<u64>,
}

#[derive(Serialize)]
pub struct SequenceManifest {
    pub events: Vec<EventManifest>,
    /// What each row value after the coefficients is, for the values this sequence reads.
    pub row_values: Vec<RowValueManifest>,
}

#[derive(Serialize)]
pub struct RowValueManifest {
    pub at: u32,
    pub what: String,
}

#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum EventManifest {
    /// Run kernel `kernel` of unit `unit` (a sampler's start runs its prior's kernels).
    Launch {
        unit: String,
        kernel: u32,
        file: String,
        /// Binding `first_buffer + i` is `buffers[i]`.
        buffers: Vec<BufManifest>,
        /// The row offset of each coefficient slot: `coefs[i] = row[coefs[i]]`.
        coefs: Vec<u32>,
        /// `"k"` (the sampler's step index) or a fixed word.
        step_word: StepWord,
        /// The index offset (split into `offset_lo`, `offset_hi`).
        offset: u64,
    },
    /// Evaluate network `net` (the caller's model).
    Network {
        net: u32,
        name: String,
        /// The call's index within the step.
        call: u32,
        inputs: Vec<BufManifest>,
        outputs: Vec<NetCallOutput>,
    },
    /// `to` := `from`.
    Copy {
        to: BufManifest,
        from: BufManifest,
        /// `host` (a value a network call captured), `start` (a prior's draw becomes the
        /// state), `keep` (the history the next step's `prev` reads), `result` (an entry's
        /// output).
        why: &'static str,
    },
    /// `count` runs of `body`; run j adds j·repeat_offset_stride to its launches' offsets.
    Repeat {
        count: u32,
        body: Vec<EventManifest>,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum StepWord {
    K(&'static str),
    Fixed(u64),
}

#[derive(Serialize)]
pub struct NetCallOutput {
    #[serde(flatten)]
    pub buf: BufManifest,
    /// A symmetric field's dimension: after the call, mirror the upper triangle.
    pub mirror: Option<u32>,
}

#[derive(Serialize)]
pub struct BufManifest {
    pub src: SrcManifest,
    pub element: &'static str,
    pub width: u32,
    /// One set of values per sample (`batch × …`), or one for the whole call.
    pub per_sample: bool,
    /// Process dimensions whose sizes, times `width` (and the batch), give its length.
    pub dims: Vec<u32>,
    /// `read` or `read_write` (written by this event).
    pub access: &'static str,
    /// Written here and also read by this launch: write a separate buffer, then copy it over
    /// `src` after the launch (WebGPU forbids one buffer bound read-only and read-write in a
    /// dispatch).
    pub aliases_input: bool,
    /// `batch·d·K`
    pub len: String,
    pub what: String,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SrcManifest {
    /// A field of the sampler's state.
    Field {
        field: u32,
        name: String,
    },
    /// A sampler slot (a `let` or draw of the step).
    Slot {
        slot: u32,
    },
    /// A slot's value from the previous step (`prev`).
    Prev {
        slot: u32,
    },
    /// Output `output` of network call `call` of the step.
    Net {
        call: u32,
        output: u32,
    },
    /// Scratch buffer `index` of the unit.
    Scratch {
        index: u32,
    },
    /// An entry's input or output port (by index).
    Input {
        port: u32,
        name: String,
    },
    Output {
        port: u32,
        name: String,
    },
    /// `width` floats of the row from `at`: the same for every element.
    Row {
        at: u32,
    },
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProgramManifest {
    /// Run `sequence` with the row of the call's time.
    Entry { sequence: usize, row: String },
    /// `start`, then step k for k = 0 … steps − 1 (row k, step word k), then `finalize`.
    Sampler {
        start: PhaseManifest,
        steps: Vec<StepRange>,
        finalize: PhaseManifest,
    },
}

#[derive(Serialize)]
pub struct PhaseManifest {
    pub sequence: usize,
    pub row: usize,
}

#[derive(Serialize)]
pub struct StepRange {
    pub first: usize,
    pub last: usize,
    pub sequence: usize,
}

// ---------------------------------------------------------------------------------------------
// From the traces

fn element(store: Store) -> &'static str {
    match store {
        Store::F32 => "f32",
        Store::U32 => "u32",
        Store::U8 => "bool",
    }
}

fn process_manifest(p: &Process, units: Vec<UnitManifest>) -> ProcessManifest {
    ProcessManifest {
        name: p.name.clone(),
        dims: p.dims.iter().map(|d| d.name.clone()).collect(),
        fields: p
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| FieldManifest {
                index: i as u32,
                name: f.name.clone(),
                elem: f.elem.describe(),
                element: element(elem_store(f.elem)),
                width: elem_width(f.elem),
                dims: f.shape.dims.iter().map(|d| d.0).collect(),
                symmetric: f.shape.sym,
            })
            .collect(),
        time: TimeManifest {
            name: p.time.name.clone(),
            kind: match p.time.kind {
                TimeKind::Discrete => "discrete",
                TimeKind::Continuous => "continuous",
            },
            lo: p.time.lo,
            hi: p.time.hi,
            data_at: p.time.data_at,
        },
        networks: p
            .networks
            .iter()
            .enumerate()
            .map(|(i, n)| NetworkManifest {
                index: i as u32,
                name: n.name.clone(),
                inputs: n
                    .inputs
                    .iter()
                    .map(|x| match x {
                        NetInput::Field { expr, .. } => NetInputManifest {
                            kind: "field",
                            expr: show(p, *expr),
                        },
                        NetInput::Time { expr } => NetInputManifest {
                            kind: "time",
                            expr: show(p, *expr),
                        },
                    })
                    .collect(),
                outputs: n
                    .outputs
                    .iter()
                    .map(|o| {
                        let f = p.field(o.field);
                        NetOutputManifest {
                            field: f.name.clone(),
                            kind: o.kind.name().to_string(),
                            element: "f32",
                            width: match o.ty.elem() {
                                Some(Elem::Vec(k)) => k,
                                _ => 1,
                            },
                            dims: f.shape.dims.iter().map(|d| d.0).collect(),
                        }
                    })
                    .collect(),
            })
            .collect(),
        units,
    }
}

fn port_manifest(i: usize, port: &Port) -> PortManifest {
    let (extent, dims) = match &port.extent {
        PortExtent::Field(s) => ("field", s.dims.iter().map(|d| d.0).collect()),
        PortExtent::Sample => ("sample", Vec::new()),
        PortExtent::Scalar => ("scalar", Vec::new()),
    };
    PortManifest {
        index: i as u32,
        name: port.name.clone(),
        extent,
        element: if port.extent == PortExtent::Scalar {
            "f32"
        } else {
            element(elem_store(port.elem))
        },
        width: elem_width(port.elem),
        dims,
    }
}

fn kernel_manifest(p: &Process, u: &Unit, i: usize, file: &str, entry: &str) -> KernelManifest {
    let k: &Kernel = &u.plan.kernels[i];
    let dims_text = if k.dims.is_empty() {
        String::new()
    } else {
        format!(", then the sizes of {}", k.dims.join(", "))
    };
    let slots: Vec<String> = k
        .coefs
        .iter()
        .map(|(c, q)| {
            if coef_width(p, &u.prog, *c as usize) > 1 {
                format!("c{c}[{q}]")
            } else {
                format!("c{c}")
            }
        })
        .collect();
    let mut bindings = vec![
        BindingManifest {
            binding: 0,
            name: "params".into(),
            buffer: None,
            element: "u32",
            wgsl_type: "array<u32>",
            width: 1,
            access: "read",
            len: format!("{}", codegen::params_len(k)),
            holds: format!(
                "seed lo, seed hi, step word, offset lo, offset hi, start, end{dims_text}, then \
                 the base of each buffer"
            ),
        },
        BindingManifest {
            binding: 1,
            name: "coefs".into(),
            buffer: None,
            element: "f32",
            wgsl_type: "array<f32>",
            width: 1,
            access: "read",
            len: k.coefs.len().max(1).to_string(),
            holds: if slots.is_empty() {
                "nothing the kernel reads (one float, any value)".into()
            } else {
                format!("the coefficient slots: {}", slots.join(", "))
            },
        },
        BindingManifest {
            binding: 2,
            name: "status".into(),
            buffer: None,
            element: "atomic_u32",
            wgsl_type: "array<atomic<u32>>",
            width: 1,
            access: "read_write",
            len: "1".into(),
            holds: "the status word: 0 before the launch; the kernel ORs in status bits".into(),
        },
    ];
    for (j, b) in k.bufs.iter().enumerate() {
        let (len, holds) = match kernel_buf_doc(p, u, k, j) {
            Some((_, len, what)) if what.is_empty() => (len, read_node_text(p, u, &b.src)),
            Some((_, len, what)) => (len, what),
            None => ("0".into(), "unused".into()),
        };
        bindings.push(BindingManifest {
            binding: 3 + j as u32,
            name: format!("b{j}"),
            buffer: Some(j as u32),
            element: element(b.store),
            wgsl_type: if b.store == Store::F32 {
                "array<f32>"
            } else {
                "array<u32>"
            },
            width: b.width,
            access: if b.output { "read_write" } else { "read" },
            len,
            holds,
        });
    }
    KernelManifest {
        index: i as u32,
        name: k.name.clone(),
        file: file.to_string(),
        entry_point: entry.to_string(),
        workgroup_size: [WORKGROUP, 1, 1],
        dims: k.dims.clone(),
        dim_index: k
            .dims
            .iter()
            .map(|d| p.dims.iter().position(|x| &x.name == d).unwrap_or(0) as u32)
            .collect(),
        domain: k.domain.clone(),
        elementwise: elementwise(k),
        lanes: codegen::lanes(k),
        coefs: k
            .coefs
            .iter()
            .map(|(c, q)| SlotManifest {
                coef: *c,
                component: *q,
            })
            .collect(),
        coefs_len: k.coefs.len().max(1) as u32,
        draws: k
            .sites
            .iter()
            .map(|s| {
                u.prog
                    .draws
                    .get(*s as usize)
                    .map_or_else(|| format!("site {s}"), |d| d.name.clone())
            })
            .collect(),
        bindings,
    }
}

/// What a kernel buffer that reads a field, slot or network output holds (the launches bind
/// it).
fn read_node_text(p: &Process, u: &Unit, src: &BufSrc) -> String {
    let BufSrc::Node(id) = src else {
        return String::new();
    };
    match u.prog.node(*id).node {
        Node::State(f) => format!("field `{}`", p.fields[f as usize].name),
        Node::Slot(s) => format!("sampler slot {s}"),
        Node::Prev(s) => format!("sampler slot {s} as the previous step left it"),
        Node::NetOut { call, output } => format!("output {output} of network call {call}"),
        _ => "a value the launch binds".to_string(),
    }
}

fn unit_manifest(
    p: &Process,
    units: &[Unit],
    ui: usize,
    tr: &Trace,
    kernels: Vec<KernelManifest>,
    rows_out: &mut Vec<f32>,
) -> Result<UnitManifest, String> {
    let u = &units[ui];
    let coefficients = (0..u.prog.coefs.len())
        .map(|c| CoefManifest {
            index: c as u32,
            at: tr.coef_off[c],
            width: coef_width(p, &u.prog, c),
            formula: coef_text(p, &u.prog, c),
        })
        .collect();
    // The unit's rows go to the rows file.
    let (count, offset) = match &tr.rows {
        Some(rows) => {
            let offset = rows_out.len() as u64;
            for r in rows {
                if r.len() != tr.width as usize {
                    return Err(format!(
                        "`{}.{}`: a row of {} floats, expected {}",
                        p.name,
                        u.name,
                        r.len(),
                        tr.width
                    ));
                }
                rows_out.extend_from_slice(r);
            }
            (Some(rows.len()), Some(offset))
        }
        None => (None, None),
    };
    let sequences = tr
        .shapes
        .iter()
        .zip(&tr.docs)
        .map(|(events, docs)| SequenceManifest {
            events: events
                .iter()
                .map(|e| event_manifest(p, units, u, e))
                .collect(),
            row_values: docs
                .iter()
                .map(|(at, what)| RowValueManifest {
                    at: *at,
                    what: what.clone(),
                })
                .collect(),
        })
        .collect();
    let (inputs, outputs, sampler, row, program) = match &u.kind {
        UnitKind::Entry(_) => {
            let (tabulated, t_min, t_max, layout, row) = match (&tr.rows, &tr.times) {
                (Some(_), Some(times)) => (
                    "per_time",
                    times.first().copied(),
                    times.last().copied(),
                    format!(
                        "values[t − t_min] is the row at time {} = t ({} rows)",
                        p.time.name,
                        times.len()
                    ),
                    format!("values[{} − t_min]", p.time.name),
                ),
                (Some(_), None) => (
                    "single",
                    None,
                    None,
                    "values[0] is the only row (the entry takes no time)".to_string(),
                    "values[0]".to_string(),
                ),
                (None, _) => (
                    "supplied",
                    None,
                    None,
                    format!(
                        "continuous time: the caller computes the row at its time ({} floats: \
                         the coefficients' formulas, in f64 rounded to f32, at their offsets)",
                        tr.width
                    ),
                    "supplied by the caller".to_string(),
                ),
            };
            (
                u.prog
                    .inputs
                    .iter()
                    .enumerate()
                    .map(|(i, x)| port_manifest(i, x))
                    .collect(),
                u.prog
                    .outputs
                    .iter()
                    .enumerate()
                    .map(|(i, x)| port_manifest(i, x))
                    .collect(),
                None,
                RowManifest {
                    width: tr.width,
                    coefficients,
                    tabulated,
                    t_min,
                    t_max,
                    layout,
                    count,
                    offset,
                },
                ProgramManifest::Entry { sequence: 0, row },
            )
        }
        UnitKind::Sampler(sp) => {
            let n = tr.step_shape.len();
            let s = p.samplers.iter().find(|s| s.name == u.name);
            let mut steps: Vec<StepRange> = Vec::new();
            for (k, seq) in tr.step_shape.iter().enumerate() {
                match steps.last_mut() {
                    Some(r) if r.sequence == *seq && r.last + 1 == k => r.last = k,
                    _ => steps.push(StepRange {
                        first: k,
                        last: k,
                        sequence: *seq,
                    }),
                }
            }
            (
                Vec::new(),
                Vec::new(),
                Some(SamplerManifest {
                    steps: n,
                    grid: tr.times.clone().unwrap_or_default(),
                    params: s
                        .map(|s| {
                            s.params
                                .iter()
                                .map(|x| NameValue {
                                    name: x.name.clone(),
                                    value: show(p, x.value),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    fields: sampler_fields(tr),
                    conditions: sp.conditions.clone(),
                    history: sp
                        .history
                        .iter()
                        .zip(&sp.history_names)
                        .map(|(s, n)| HistoryManifest {
                            slot: *s,
                            name: n.clone(),
                        })
                        .collect(),
                }),
                RowManifest {
                    width: tr.width,
                    coefficients,
                    tabulated: "per_step",
                    t_min: None,
                    t_max: None,
                    layout: format!(
                        "values[k] is step k (0 … {}), values[{n}] the final map (at t = \
                         grid[{n}]), values[{}] the start",
                        n.saturating_sub(1),
                        n + 1
                    ),
                    count,
                    offset,
                },
                ProgramManifest::Sampler {
                    start: PhaseManifest {
                        sequence: tr.start_shape,
                        row: n + 1,
                    },
                    steps,
                    finalize: PhaseManifest {
                        sequence: tr.finalize_shape,
                        row: n,
                    },
                },
            )
        }
    };
    Ok(UnitManifest {
        name: u.name.clone(),
        kind: unit_kind(u),
        inputs,
        outputs,
        sampler,
        kernels,
        scratch: tr.scratch,
        row,
        sequences,
        program,
    })
}

fn src_manifest(u: &Unit, p: &Process, src: &Src) -> SrcManifest {
    match src {
        Src::Field(f) => SrcManifest::Field {
            field: *f,
            name: p.fields[*f as usize].name.clone(),
        },
        Src::Slot(s) => SrcManifest::Slot { slot: *s },
        Src::Prev(s) => SrcManifest::Prev { slot: *s },
        Src::Net { call, output } => SrcManifest::Net {
            call: *call,
            output: *output,
        },
        Src::Node(i) => SrcManifest::Scratch { index: *i },
        Src::Input(i) => SrcManifest::Input {
            port: *i,
            name: u.prog.inputs[*i as usize].name.clone(),
        },
        Src::Output(i) => SrcManifest::Output {
            port: *i,
            name: u.prog.outputs[*i as usize].name.clone(),
        },
        Src::Row(at) => SrcManifest::Row { at: *at },
    }
}

fn buf_manifest(p: &Process, u: &Unit, b: &Buf, aliases_input: bool) -> BufManifest {
    BufManifest {
        src: src_manifest(u, p, &b.src),
        element: element(b.store),
        width: b.width,
        per_sample: b.batch,
        dims: b.dims.clone(),
        access: if b.out { "read_write" } else { "read" },
        aliases_input,
        len: aot::len_text(p, b),
        what: src_text(p, u, b),
    }
}

fn event_manifest(p: &Process, units: &[Unit], u: &Unit, e: &Event) -> EventManifest {
    match e {
        Event::Launch {
            unit,
            kernel,
            bufs,
            slots,
            word,
            offset,
        } => {
            let ku = &units[*unit];
            EventManifest::Launch {
                unit: ku.name.clone(),
                kernel: *kernel as u32,
                file: kernel_file(p, ku, *kernel),
                buffers: bufs
                    .iter()
                    .map(|b| {
                        let aliases = b.out && bufs.iter().any(|x| !x.out && x.src == b.src);
                        buf_manifest(p, u, b, aliases)
                    })
                    .collect(),
                coefs: slots.clone(),
                step_word: match word {
                    Word::Step => StepWord::K("k"),
                    Word::Fixed(w) => StepWord::Fixed(*w),
                },
                offset: *offset,
            }
        }
        Event::Call {
            net,
            call,
            inputs,
            outputs,
            sym,
            ..
        } => EventManifest::Network {
            net: *net,
            name: p
                .networks
                .get(*net as usize)
                .map_or_else(String::new, |n| n.name.clone()),
            call: *call,
            inputs: inputs
                .iter()
                .map(|b| buf_manifest(p, u, b, false))
                .collect(),
            outputs: outputs
                .iter()
                .zip(sym)
                .map(|(b, s)| NetCallOutput {
                    buf: buf_manifest(p, u, b, false),
                    mirror: *s,
                })
                .collect(),
        },
        Event::Copy { to, from, why, .. } => EventManifest::Copy {
            to: buf_manifest(p, u, to, false),
            from: buf_manifest(p, u, from, false),
            why: match why {
                CopyWhy::Host => "host",
                CopyWhy::Start => "start",
                CopyWhy::Keep => "keep",
                CopyWhy::Result => "result",
            },
        },
        Event::Repeat { count, body } => EventManifest::Repeat {
            count: *count,
            body: body
                .iter()
                .map(|e| event_manifest(p, units, u, e))
                .collect(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

/// Pretty-printed JSON: two-space indents, one object key per line, arrays of numbers, strings
/// and booleans on one line (rows of floats stay readable and diffable), a final newline.
pub fn to_json<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Pretty::default());
    // Serialising these structs into memory cannot fail: every map key is a string.
    if value.serialize(&mut ser).is_err() {
        return String::new();
    }
    out.push(b'\n');
    String::from_utf8(out).unwrap_or_default()
}

#[derive(Default)]
struct Pretty {
    /// Per open array or object: `Some(true)` an array of scalars (one line), `Some(false)` one
    /// value per line, `None` not decided yet; and whether it has a value.
    stack: Vec<(Option<bool>, bool)>,
    /// An array value has begun (`Some(first)`); its separator waits for its kind.
    pending: Option<bool>,
}

impl Pretty {
    fn indent<W: ?Sized + std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        for _ in 0..self.stack.len() {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    /// Write the separator before an array value now that its kind is known.
    fn flush<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        scalar: bool,
    ) -> std::io::Result<()> {
        let Some(first) = self.pending.take() else {
            return Ok(());
        };
        let compact = match self.stack.last_mut() {
            Some((mode, _)) => *mode.get_or_insert(scalar),
            None => scalar,
        };
        if compact {
            if !first {
                w.write_all(b", ")?;
            }
        } else {
            w.write_all(if first { b"\n" } else { b",\n" })?;
            self.indent(w)?;
        }
        Ok(())
    }
}

macro_rules! scalar {
    ($($name:ident: $t:ty),*) => {$(
        fn $name<W: ?Sized + std::io::Write>(&mut self, w: &mut W, v: $t) -> std::io::Result<()> {
            self.flush(w, true)?;
            serde_json::ser::CompactFormatter.$name(w, v)
        }
    )*};
}

impl serde_json::ser::Formatter for Pretty {
    scalar!(write_bool: bool, write_i8: i8, write_i16: i16, write_i32: i32, write_i64: i64,
        write_i128: i128, write_u8: u8, write_u16: u16, write_u32: u32, write_u64: u64,
        write_u128: u128, write_f32: f32, write_f64: f64, write_number_str: &str,
        write_raw_fragment: &str);

    fn write_null<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.flush(w, true)?;
        w.write_all(b"null")
    }

    fn begin_string<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.flush(w, true)?;
        w.write_all(b"\"")
    }

    fn write_byte_array<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        v: &[u8],
    ) -> std::io::Result<()> {
        self.flush(w, false)?;
        serde_json::ser::CompactFormatter.write_byte_array(w, v)
    }

    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.flush(w, false)?;
        self.stack.push((None, false));
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        let (mode, any) = self.stack.pop().unwrap_or((None, false));
        if any && mode == Some(false) {
            w.write_all(b"\n")?;
            self.indent(w)?;
        }
        w.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        _: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if let Some(top) = self.stack.last_mut() {
            top.1 = true;
        }
        self.pending = Some(first);
        Ok(())
    }

    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        Ok(())
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.flush(w, false)?;
        self.stack.push((Some(false), false));
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        let (_, any) = self.stack.pop().unwrap_or((None, false));
        if any {
            w.write_all(b"\n")?;
            self.indent(w)?;
        }
        w.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if let Some(top) = self.stack.last_mut() {
            top.1 = true;
        }
        w.write_all(if first { b"\n" } else { b",\n" })?;
        self.indent(w)
    }

    fn end_object_key<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        Ok(())
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct S {
        a: Vec<Vec<f32>>,
        b: Vec<S2>,
        c: Vec<u32>,
        d: BTreeMap<String, u32>,
        e: Option<u32>,
        f: Vec<String>,
    }

    #[derive(Serialize)]
    struct S2 {
        x: u32,
    }

    #[test]
    fn pretty_json_puts_scalar_arrays_on_one_line_and_parses_back() {
        let s = S {
            a: vec![vec![0.1, 2.0], vec![]],
            b: vec![S2 { x: 1 }, S2 { x: 2 }],
            c: vec![],
            d: BTreeMap::new(),
            e: None,
            f: vec!["p\"q".into(), "r".into()],
        };
        let text = to_json(&s);
        assert_eq!(
            text,
            "{\n  \"a\": [\n    [0.1, 2.0],\n    []\n  ],\n  \"b\": [\n    {\n      \"x\": 1\n    },\n    {\n      \"x\": 2\n    }\n  ],\n  \"c\": [],\n  \"d\": {},\n  \"e\": null,\n  \"f\": [\"p\\\"q\", \"r\"]\n}\n"
        );
        // The same values as serde_json's own compact text, f32s read back exactly.
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let compact: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(v, compact);
        assert_eq!(v["a"][0][0].as_f64().unwrap() as f32, 0.1f32);
    }
}
