//! Ahead-of-time libraries: every kernel of a spec in one object file, with a C header and a
//! small C runtime, for programs that link a process instead of embedding diffc.
//!
//! What a build holds, per process of the spec:
//! - one unit per entry (`forward`, `log_q`, `posterior`, `loss.NAME`, `prior`, …) and one per
//!   sampler, each planned exactly as the JIT plans it (`kernel::build`, no supplied draws, no
//!   node masks) and compiled with the same code generator into exported functions named
//!   `diffc_<process>_<unit>_k<i>_<kernel>`;
//! - the unit's call sequences, recorded by the plan layer (`crate::plan`: the interpreter run
//!   on zero samples with a recording backend in place of the JIT, `Trace`): every kernel
//!   launch with its buffers, coefficient slots, RNG step word and index offset, every network
//!   call, and every host copy, in the order the JIT runtime makes them;
//! - the host values the kernels read, evaluated by the interpreter's own host code and rounded
//!   to f32 as the JIT runtime rounds them: one row per time of a discrete-time entry and one row
//!   per step of a sampler's default grid (plus its final map and its start), stored as
//!   read-only data in the object (`diffc_<process>_<unit>_rows`). Continuous-time entries have
//!   no table: the caller passes the row, whose formulas the header lists, or calls the entry's
//!   `_at` form, which takes one time per sample (and the process's run-time params) and
//!   computes rows with C code generated from the coefficients (`plan::coefc`);
//! - C text: the header (`Library::header`) documents every kernel and every call sequence, and
//!   declares one function per entry, a stateful runner per sampler and a one-call step for
//!   samplers whose step is a single kernel; the runtime (`Library::source`) binds buffers and
//!   replays the sequences exactly as `cpu::Runner` does.
//!
//! The library does no IO: the CLI writes the files and runs the C compiler.

use super::{codegen, isa, plan_size, LARGE_PLAN};
use crate::entries::{self, Extent as PortExtent, Port};
use crate::explain::show;
use crate::interp;
use crate::kernel::{Kernel, Store};
use crate::plan::text::{
    c_type, kernel_doc, len_text, net_of_call, port_c_type, src_text, unit_doc,
};
use crate::plan::{
    at_rows, bufs_of, elem_store, elem_width, elementwise, ident, launches, param_len,
    param_simplex, port_buf, sampler_fields, settable_params, time_ports, traced, AtRows, Buf,
    Built, Event, Src, Trace, Unit, UnitKind, Word,
};
use crate::typed::{Module, Process, TimeKind};
use cranelift_module::{DataDescription, Linkage, Module as _};
use cranelift_object::{ObjectBuilder, ObjectModule};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// A built library: the object file's bytes and the C text that goes with it.
pub struct Library {
    /// The file stem: `ddpm` gives `ddpm.o`, `ddpm.h`, `ddpm_runtime.c` and `libddpm.so`.
    pub stem: String,
    pub object: Vec<u8>,
    pub header: String,
    /// The C runtime (entry functions, sampler runners, one-call steps), which includes the header.
    pub source: String,
    /// Kernels compiled, and the units (`process.entry` or `process.sampler`) built.
    pub kernels: usize,
    pub units: Vec<String>,
    /// Bytes of coefficient tables in the object.
    pub table_bytes: usize,
}

impl Library {
    pub fn object_name(&self) -> String {
        format!("{}.o", self.stem)
    }
    pub fn header_name(&self) -> String {
        format!("{}.h", self.stem)
    }
    pub fn source_name(&self) -> String {
        format!("{}_runtime.c", self.stem)
    }
    pub fn library_name(&self) -> String {
        format!("lib{}.so", self.stem)
    }
}

/// Build every process of a checked spec (or only `process`) into a library named after `stem`.
pub fn build(module: &Module, stem: &str, process: Option<&str>) -> Result<Library, String> {
    let built = traced(module, process)?;
    check_limits(&built)?;
    let (object, table_bytes) = compile_object(stem, &built)?;
    let header = header_text(stem, &built);
    let source = runtime_text(stem, &built);
    check_unique_names(&built)?;
    Ok(Library {
        stem: stem.to_string(),
        object,
        header,
        source,
        kernels: built
            .iter()
            .map(|(_, us, _)| us.iter().map(|u| u.plan.kernels.len()).sum::<usize>())
            .sum(),
        units: built
            .iter()
            .flat_map(|(p, us, _)| us.iter().map(move |u| format!("{}.{}", p.name, u.name)))
            .collect(),
        table_bytes,
    })
}

// ---------------------------------------------------------------------------------------------
// The object file

fn compile_object(stem: &str, built: &[Built]) -> Result<(Vec<u8>, usize), String> {
    let large = built
        .iter()
        .flat_map(|(_, us, _)| us.iter())
        .any(|u| plan_size(&u.plan) > LARGE_PLAN);
    let builder = ObjectBuilder::new(
        isa(true, large)?,
        stem.as_bytes().to_vec(),
        cranelift_module::default_libcall_names(),
    )
    .map_err(|e| e.to_string())?;
    let mut module = ObjectModule::new(builder);
    let libm = codegen::declare_libm(&mut module)?;
    // Ahead of time, compile time matters less than a verified object.
    // Objects keep the Cranelift fills, so that they run on any x86-64.
    let checks = codegen::Checks {
        ir_text: false,
        verify: true,
        native: false,
    };
    let rng = codegen::define_rng(&mut module, codegen::RngNeeds::all(), checks)?;
    let libm4 = codegen::define_libm4(&mut module, &libm, checks)?;
    let mut bytes = 0;
    let mut fns = Vec::new();
    for (p, units, traces) in built {
        for (u, tr) in units.iter().zip(traces) {
            for (i, k) in u.plan.kernels.iter().enumerate() {
                let sym = u.symbol(p, i);
                fns.push(codegen::build(&mut module, k, &libm, &libm4, rng, &sym, checks)?.0);
            }
            let Some(rows) = &tr.rows else { continue };
            if tr.width == 0 {
                continue;
            }
            let data: Vec<u8> = rows
                .iter()
                .flat_map(|r| r.iter().flat_map(|x| x.to_le_bytes()))
                .collect();
            bytes += data.len();
            let name = format!("{}_rows", u.prefix(p));
            let id = module
                .declare_data(&name, Linkage::Export, false, false)
                .map_err(|e| e.to_string())?;
            let mut desc = DataDescription::new();
            desc.define(data.into_boxed_slice());
            desc.set_align(16);
            module
                .define_data(id, &desc)
                .map_err(|e| format!("`{name}`: {e}"))?;
        }
    }
    codegen::compile_fns(&mut module, fns)?;
    let product = module.finish();
    let object = product
        .emit()
        .map_err(|e| format!("cannot write the object file: {e}"))?;
    Ok((object, bytes))
}

// ---------------------------------------------------------------------------------------------
// C text

/// Wrap text into `//`-free C comment lines with a prefix.
fn comment(out: &mut String, indent: &str, text: &str) {
    for line in text.lines() {
        let line = line.replace("*/", "* /");
        if line.is_empty() {
            let _ = writeln!(out, "{indent} *");
        } else {
            let _ = writeln!(out, "{indent} * {line}");
        }
    }
}

fn guard(stem: &str) -> String {
    format!("DIFFC_{}_H", ident(stem).to_uppercase())
}

/// The dims a unit's calls use, in process order.
fn unit_dims(p: &Process, u: &Unit, tr: &Trace, units: &[Unit]) -> Vec<u32> {
    let mut set = BTreeSet::new();
    for e in tr.shapes.iter().flatten() {
        for (unit, kernel) in launches(e) {
            for d in &units[unit].plan.kernels[kernel].dims {
                if let Some(i) = p.dims.iter().position(|x| &x.name == d) {
                    set.insert(i as u32);
                }
            }
        }
        for b in bufs_of(e) {
            set.extend(b.dims.iter().copied());
        }
    }
    if let Some(e) = u.entry() {
        for port in e.inputs.iter().chain(&e.outputs) {
            if let PortExtent::Field(s) = &port.extent {
                set.extend(s.dims.iter().map(|d| d.0));
            }
        }
    }
    set.into_iter().collect()
}

/// Entry ports the caller passes as arrays (fields and per-sample values), inputs then outputs.
type Ports<'e> = Vec<(usize, &'e Port)>;

fn array_ports(e: &entries::Entry) -> (Ports<'_>, Ports<'_>) {
    let ins = e
        .inputs
        .iter()
        .enumerate()
        .filter(|(_, x)| x.extent != PortExtent::Scalar)
        .collect();
    let outs = e.outputs.iter().enumerate().collect();
    (ins, outs)
}

/// A one-call step: every step of the default grid runs network calls that read fields or
/// host values, then one kernel that reads fields, those outputs and host values, and writes
/// fields; no history and no scratch.
fn one_call_step(u: &Unit, tr: &Trace) -> Option<usize> {
    let sp = u.sampler()?;
    if !sp.history.is_empty() || tr.step_shape.is_empty() {
        return None;
    }
    let s0 = tr.step_shape[0];
    if tr.step_shape.iter().any(|s| *s != s0) {
        return None;
    }
    let events = &tr.shapes[s0];
    let (last, calls) = events.split_last()?;
    for c in calls {
        let Event::Call { inputs, .. } = c else {
            return None;
        };
        if inputs
            .iter()
            .any(|b| !matches!(b.src, Src::Field(_) | Src::Row(_)))
        {
            return None;
        }
    }
    let Event::Launch { bufs, word, .. } = last else {
        return None;
    };
    if *word != Word::Step {
        return None;
    }
    let ok = bufs.iter().all(|b| match b.src {
        Src::Field(_) => true,
        Src::Net { .. } | Src::Row(_) => !b.out,
        _ => false,
    });
    ok.then_some(s0)
}

const HEADER_INTRO: &str = r#"
Conventions (every function below):
- Arrays are batch-major and dense: a field of shape [n, d] is `batch·n·d` values, sample after
  sample; a `vec<K>` value (class probabilities) adds K interleaved values per element. Reals are
  `float`, classes `uint32_t` (0 … K−1), bools `uint8_t` (0 or 1).
- `seed` keys the random numbers. Draws come from Philox-4x32-10 keyed by (seed, draw site) and
  counted by (step word, element index), so a sample's noise does not depend on the batch size,
  the thread split or the machine. With the same seed, a step or entry here draws exactly what
  `diffc eval … --seed SEED` draws (`--set k=K` for step k of a sampler).
- Every function returns 0, or status bits: DIFFC_STATUS_INDEX (an index outside its vector),
  DIFFC_STATUS_CLASS (a class outside its range), DIFFC_STATUS_NONFINITE (a value stored to a
  sampler's real field is NaN or infinite), DIFFC_ERR_ARG (a time or step outside the table, a
  NULL array, no denoiser), DIFFC_ERR_NOMEM, DIFFC_ERR_STATE (a call read a value no earlier
  call wrote: call `start` before the first step), DIFFC_ERR_DENOISE (the denoiser returned
  non-zero), DIFFC_ERR_SYM (an entry's input value of a `sym` field is not symmetric, or holds
  a value other than 0 on its diagonal, in some sample: nothing is computed, as `diffc eval`
  refuses it). A call stops at the first kernel or callback that fails. An entry's outputs are
  not checked for NaN (`diffc eval` checks them).
- Entry points and sampler steps run each kernel on the calling thread. To use threads, call the
  kernels yourself (below): any split of the range start..end at multiples of 4 gives the same
  values.
- Node masks and supplied draws are not built ahead of time: every node is real, and every draw
  comes from the generator.

Kernel ABI (the `_k<i>_` functions):
  void kernel(void *const *bufs, const float *coefs, const uint64_t *sizes,
              uint64_t start, uint64_t end, uint64_t seed, uint64_t step,
              uint64_t offset, uint32_t *status);
computes flat elements start … end−1 of batch·(product of its domain's sizes). `bufs[j]` is
buffer j as listed with the kernel; `coefs[i]` coefficient slot i (the call sequences say which
row value each slot takes); `sizes[i]` the size of the kernel's dimension i; `step` the RNG step
word; `offset` an index offset (iterations of an inner `repeat` draw at offsets (j + 1)·2^40);
`status` is OR-ed with DIFFC_STATUS_* bits. Output buffers must not alias input buffers unless
the kernel is marked elementwise.

Rows: the host values a call reads (coefficients in f64 rounded to f32, times passed to networks,
values a sampler computes once per step) are one row of floats per time or step, evaluated by
diffc's own host code at build time. A row starts with the unit's coefficients c0, c1, … (each
flattened, K×K matrices row-major) at the offsets listed; the values after them are listed with
the call sequence that reads them.
"#;

fn header_text(stem: &str, built: &[Built]) -> String {
    let mut h = String::new();
    let g = guard(stem);
    let _ = writeln!(
        h,
        "/* {stem}.h: the processes of `{stem}.diff`, compiled ahead of time by diffc."
    );
    let _ = writeln!(
        h,
        " * Link with lib{stem}.so (it needs libm). Generated: do not edit. */"
    );
    let _ = writeln!(h, "#ifndef {g}\n#define {g}\n");
    let _ = writeln!(h, "#include <stdint.h>\n");
    let _ = writeln!(h, "#ifdef __cplusplus\nextern \"C\" {{\n#endif\n");
    h.push_str("/*");
    comment(&mut h, "", HEADER_INTRO);
    h.push_str(" */\n\n");
    h.push_str(
        "#ifndef DIFFC_COMMON_DEFINED\n#define DIFFC_COMMON_DEFINED\n\
         #define DIFFC_STATUS_INDEX 0x1\n#define DIFFC_STATUS_CLASS 0x2\n#define DIFFC_STATUS_NONFINITE 0x4\n\
         #define DIFFC_ERR_ARG 0x100\n#define DIFFC_ERR_NOMEM 0x200\n\
         #define DIFFC_ERR_STATE 0x400\n#define DIFFC_ERR_DENOISE 0x800\n#define DIFFC_ERR_SYM 0x1000\n\n\
         /* A sampler's networks. `net` is the network's index in its process (listed below) and\n \
         * `call` the call's index within the step; `dims` are the process's dimension sizes in\n \
         * its order. `inputs[i]` points at network input i: a field's values (batch-major, as\n \
         * above) or, for a time input, one float. Write output j to `outputs[j]` (batch-major,\n \
         * shaped like its field, K values per element for class probabilities); the runtime\n \
         * owns those arrays. Return 0, or non-zero to stop the step with DIFFC_ERR_DENOISE. */\n\
         typedef int (*diffc_denoise_fn)(void *user, uint32_t net, uint32_t call, uint64_t batch,\n\
         \x20                               const uint64_t *dims, const void *const *inputs,\n\
         \x20                               void *const *outputs);\n\
         #endif\n\n",
    );
    for (p, units, traces) in built {
        process_header(&mut h, p, units, traces);
    }
    let _ = writeln!(h, "#ifdef __cplusplus\n}}\n#endif\n\n#endif /* {g} */");
    h
}

fn process_header(h: &mut String, p: &Process, units: &[Unit], traces: &[Trace]) {
    let pn = &p.name;
    let _ = writeln!(
        h,
        "/* ==========================================================================================\n \
         * Process `{pn}`"
    );
    let mut text = String::new();
    let dims: Vec<String> = p
        .dims
        .iter()
        .enumerate()
        .map(|(i, d)| format!("{} (dims[{i}])", d.name))
        .collect();
    let _ = writeln!(
        text,
        "Dimensions: {}.",
        if dims.is_empty() {
            "none".into()
        } else {
            dims.join(", ")
        }
    );
    let _ = writeln!(text, "Fields (fields[i] in a sampler):");
    for (i, f) in p.fields.iter().enumerate() {
        let b = Buf {
            src: Src::Field(i as u32),
            store: elem_store(f.elem),
            width: elem_width(f.elem),
            batch: true,
            dims: f.shape.dims.iter().map(|d| d.0).collect(),
            out: false,
        };
        let _ = writeln!(
            text,
            "  {i}: {}: {} — {} {}{}",
            f.name,
            f.elem.describe(),
            c_type(b.store),
            len_text(p, &b),
            if f.shape.sym {
                " (symmetric: the lower triangle mirrors the upper one, the diagonal is 0)"
            } else {
                ""
            }
        );
    }
    let time = &p.time;
    let _ = writeln!(
        text,
        "Time `{}`: {} {} … {} (data at {}).",
        time.name,
        if time.kind == TimeKind::Discrete {
            "discrete,"
        } else {
            "continuous,"
        },
        time.lo,
        time.hi,
        time.data_at
    );
    // What the coefficients' formulas refer to.
    if !p.consts.is_empty() {
        let cs: Vec<String> = p
            .consts
            .iter()
            .map(|c| format!("{} = {}", c.name, c.value))
            .collect();
        let _ = writeln!(text, "Constants: {}.", cs.join(", "));
    }
    if !p.schedules.is_empty() {
        let _ = writeln!(
            text,
            "Schedules (in f64; discrete ones tabulated at build time):"
        );
        for sc in &p.schedules {
            let _ = writeln!(text, "  {}({}) = {}", sc.name, time.name, show(p, sc.body));
        }
    }
    if !p.networks.is_empty() {
        let _ = writeln!(text, "Networks (the `net` argument of a denoiser):");
        for (i, n) in p.networks.iter().enumerate() {
            let ins: Vec<String> = n
                .inputs
                .iter()
                .map(|x| match x {
                    crate::typed::NetInput::Field { expr, .. } => show(p, *expr),
                    crate::typed::NetInput::Time { expr } => format!("time {}", show(p, *expr)),
                })
                .collect();
            let outs: Vec<String> = n
                .outputs
                .iter()
                .map(|o| format!("{}.{} ({})", n.name, p.field(o.field).name, o.kind.name()))
                .collect();
            let _ = writeln!(
                text,
                "  {i}: {}({}) -> {}",
                n.name,
                ins.join(", "),
                outs.join(", ")
            );
        }
    }
    comment(h, "", &text);
    let _ = writeln!(h, " */\n");
    let _ = writeln!(
        h,
        "#define DIFFC_{}_T_MIN {}\n#define DIFFC_{}_T_MAX {}\n",
        pn.to_uppercase(),
        time.lo,
        pn.to_uppercase(),
        time.hi
    );
    params_header(h, p);
    for (u, tr) in units.iter().zip(traces) {
        unit_header(h, p, units, u, tr);
    }
}

/// `d` or `n, d` (the process's dimensions, in order).
fn dim_names(p: &Process) -> String {
    p.dims
        .iter()
        .map(|d| d.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn dims_params(p: &Process, dims: &[u32]) -> String {
    dims.iter()
        .map(|d| format!("uint64_t {}", p.dims[*d as usize].name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unit_header(h: &mut String, p: &Process, units: &[Unit], u: &Unit, tr: &Trace) {
    let pre = u.prefix(p);
    let upper = pre.to_uppercase();
    let dims = unit_dims(p, u, tr, units);
    let t = unit_doc(p, units, u, tr);
    let _ = writeln!(h, "/* ------------------------------------------------------------------------------------------");
    comment(h, "", &t);
    let _ = writeln!(h, " */");
    // Tables. The width is also a symbol, for programs that load the library at run time.
    let _ = writeln!(h, "#define {upper}_ROW_WIDTH {}", tr.width);
    let _ = writeln!(h, "extern const uint32_t {pre}_row_width;");
    if let (Some(rows), true) = (&tr.rows, tr.width > 0) {
        let _ = writeln!(
            h,
            "extern const float {pre}_rows[{}][{}];",
            rows.len(),
            tr.width
        );
    }
    // Functions.
    match &u.kind {
        UnitKind::Entry(e) => {
            let mut params = array_params(p, e);
            let how = match (&tr.rows, &tr.times) {
                (Some(_), Some(_)) => {
                    params.push(format!("uint32_t {}", ident(&p.time.name)));
                    format!(
                        "`{}` picks the row ({} … {})",
                        p.time.name, p.time.lo, p.time.hi
                    )
                }
                (Some(_), None) => "no time".to_string(),
                (None, _) => {
                    params.push("const float *row".into());
                    "`row` holds the coefficients at the caller's time".to_string()
                }
            };
            params.push("uint64_t seed".into());
            let _ = writeln!(
                h,
                "/* Run `{}`: inputs then outputs as listed above (outputs must not alias inputs);\n \
                 * {}{how}; draws use step word 0, as `diffc eval --entry {}` does.{} */",
                u.name,
                if p.dims.is_empty() {
                    String::new()
                } else {
                    format!("`dims` holds the sizes of {}; ", dim_names(p))
                },
                u.name,
                sym_inputs_doc(p, e)
            );
            let _ = writeln!(h, "int {pre}({});", params.join(", "));
            at_header(h, p, u, tr);
        }
        UnitKind::Sampler(_) => {
            let n = tr.step_shape.len();
            let fields = sampler_fields(tr);
            let _ = writeln!(h, "#define {upper}_STEPS {n}");
            let _ = writeln!(h, "extern const uint32_t {pre}_steps;");
            let _ = writeln!(h, "extern const double {pre}_grid[{}];", n + 1);
            let used: Vec<String> = fields
                .iter()
                .map(|f| format!("fields[{f}] = {}", p.fields[*f as usize].name))
                .collect();
            let _ = writeln!(
                h,
                "/* A run of `{}`: its scratch values, history and denoiser. `dims[i]` is the size of\n \
                 * dimension i of `{}` (copied). Each call below takes the state as an array of the\n \
                 * process's fields and updates it in place: {} (NULL for the others).\n \
                 * Call start (or fill the state yourself: start draws the prior or runs the init block),\n \
                 * then step k for k = 0 … {upper}_STEPS − 1, then finalize. */",
                u.name,
                p.name,
                used.join(", ")
            );
            let _ = writeln!(h, "typedef struct {pre}_sampler {pre}_sampler;");
            let _ = writeln!(
                h,
                "{pre}_sampler *{pre}_sampler_new(uint64_t batch, const uint64_t *dims, uint64_t seed,\n    diffc_denoise_fn denoise, void *user);"
            );
            let _ = writeln!(h, "void {pre}_sampler_free({pre}_sampler *s);");
            let _ = writeln!(
                h,
                "int {pre}_sampler_start({pre}_sampler *s, void *const *fields);"
            );
            let _ = writeln!(
                h,
                "int {pre}_sampler_step({pre}_sampler *s, uint32_t k, void *const *fields);"
            );
            let _ = writeln!(
                h,
                "int {pre}_sampler_finalize({pre}_sampler *s, void *const *fields);"
            );
            if let Some(s0) = one_call_step(u, tr) {
                let (params, doc) = one_call_params(p, u, tr, s0, &dims);
                let _ = writeln!(h, "/*");
                comment(h, "", &doc);
                let _ = writeln!(h, " */");
                let _ = writeln!(h, "int {pre}_step({});", params.join(", "));
            }
        }
    }
    for i in 0..u.plan.kernels.len() {
        let _ = writeln!(h, "/*");
        comment(h, "", &kernel_doc(p, u, i));
        let _ = writeln!(h, " */");
        let _ = writeln!(
            h,
            "void {}(void *const *bufs, const float *coefs, const uint64_t *sizes, uint64_t start,\n    uint64_t end, uint64_t seed, uint64_t step, uint64_t offset, uint32_t *status);",
            u.symbol(p, i)
        );
    }
    h.push('\n');
}

/// The parameters of a one-call step: fields read, network outputs, fields written (`_out`),
/// then sizes, step index and seed.
struct OneCall {
    /// (C parameter, buffer source, const)
    arrays: Vec<(String, Src, Store)>,
}

fn one_call_layout(p: &Process, u: &Unit, tr: &Trace, s0: usize) -> OneCall {
    let events = &tr.shapes[s0];
    let Some(Event::Launch { bufs, .. }) = events.last() else {
        return OneCall { arrays: Vec::new() };
    };
    let mut arrays: Vec<(String, Src, Store)> = Vec::new();
    let mut add = |name: String, src: Src, store: Store| {
        if !arrays.iter().any(|(n, _, _)| *n == name) {
            arrays.push((name, src, store));
        }
    };
    let mut reads: Vec<&Buf> = Vec::new();
    for e in events {
        if let Event::Call { inputs, .. } = e {
            reads.extend(inputs.iter().filter(|b| matches!(b.src, Src::Field(_))));
        }
    }
    reads.extend(
        bufs.iter()
            .filter(|b| !b.out && matches!(b.src, Src::Field(_))),
    );
    reads.sort_by_key(|b| match b.src {
        Src::Field(f) => f,
        _ => 0,
    });
    for b in reads {
        if let Src::Field(f) = b.src {
            add(ident(&p.fields[f as usize].name), b.src.clone(), b.store);
        }
    }
    for b in bufs.iter().filter(|b| !b.out) {
        if let Src::Net { call, output } = b.src {
            let name = u
                .sampler()
                .and_then(|sp| net_of_call(sp, call))
                .map(|n| {
                    let n = &p.networks[n as usize];
                    let base = format!(
                        "{}_{}",
                        n.name,
                        p.field(n.outputs[output as usize].field).name
                    );
                    if u.sampler().map_or(0, |sp| sp.calls) > 1 {
                        format!("{base}_{call}")
                    } else {
                        base
                    }
                })
                .unwrap_or_else(|| format!("net{call}_{output}"));
            add(ident(&name), b.src.clone(), b.store);
        }
    }
    for b in bufs.iter().filter(|b| b.out) {
        if let Src::Field(f) = b.src {
            add(
                format!("{}_out", ident(&p.fields[f as usize].name)),
                Src::Output(f),
                b.store,
            );
        }
    }
    OneCall { arrays }
}

fn one_call_params(
    p: &Process,
    u: &Unit,
    tr: &Trace,
    s0: usize,
    dims: &[u32],
) -> (Vec<String>, String) {
    let pre = u.prefix(p);
    let l = one_call_layout(p, u, tr, s0);
    let mut params: Vec<String> = l
        .arrays
        .iter()
        .map(|(n, src, st)| {
            if matches!(src, Src::Output(_)) {
                format!("{} *{n}", c_type(*st))
            } else {
                format!("const {} *{n}", c_type(*st))
            }
        })
        .collect();
    params.push("uint64_t batch".into());
    if !dims.is_empty() {
        params.push(dims_params(p, dims));
    }
    params.push("uint32_t k".into());
    params.push("uint64_t seed".into());
    let mut doc = String::new();
    let Some(Event::Launch { unit, kernel, .. }) = tr.shapes[s0].last() else {
        return (params, doc);
    };
    let calls: Vec<String> = tr.shapes[s0]
        .iter()
        .filter_map(|e| match e {
            Event::Call { net, inputs, .. } => {
                let n = &p.networks[*net as usize];
                let ins: Vec<String> = inputs
                    .iter()
                    .zip(&n.inputs)
                    .map(|(b, ni)| match (&b.src, ni) {
                        (Src::Row(at), crate::typed::NetInput::Time { expr }) => {
                            format!("{} = {pre}_rows[k][{at}]", show(p, *expr))
                        }
                        (Src::Field(f), _) => p.fields[*f as usize].name.clone(),
                        _ => src_text(p, u, b),
                    })
                    .collect();
                Some(format!("{}({})", n.name, ins.join(", ")))
            }
            _ => None,
        })
        .collect();
    let aliasing = if elementwise(&units_kernel(u, *unit, *kernel)) {
        "An output may be the same array as an input (the kernel is elementwise)."
    } else {
        "Outputs must not alias inputs."
    };
    let _ = writeln!(
        doc,
        "Step k (0 … {pre_upper}_STEPS − 1) of `{}` in one call, from t = {pre}_grid[k] to\n\
         s = {pre}_grid[k + 1]: first evaluate {} yourself, then call this; it runs kernel {kernel}\n\
         with row k of {pre}_rows and RNG step word k, as `diffc eval --sampler {} --entry step\n\
         --set k=K --set t=… --set s=…` does. {aliasing}",
        u.name,
        calls.join(" and "),
        u.name,
        pre_upper = pre.to_uppercase(),
    );
    (params, doc)
}

fn units_kernel(u: &Unit, unit: usize, kernel: usize) -> Kernel {
    let _ = unit;
    u.plan.kernels[kernel].clone()
}

/// The C runtime's fixed sizes: dimensions per buffer, sizes per kernel, a network's inputs and
/// outputs.
fn check_limits(built: &[Built]) -> Result<(), String> {
    fn walk(e: &Event, units: &[Unit]) -> Result<(), String> {
        if let Event::Repeat { body, .. } = e {
            return body.iter().try_for_each(|e| walk(e, units));
        }
        if bufs_of(e).iter().any(|b| b.dims.len() > 6) {
            return Err("a value has more than 6 dimensions".into());
        }
        if let Event::Launch { unit, kernel, .. } = e {
            if units[*unit].plan.kernels[*kernel].dims.len() > 8 {
                return Err("a kernel has more than 8 dimensions".into());
            }
        }
        if let Event::Call {
            inputs, outputs, ..
        } = e
        {
            if inputs.len() > 32 || outputs.len() > 32 {
                return Err("a network has more than 32 inputs or outputs".into());
            }
        }
        Ok(())
    }
    for (p, units, traces) in built {
        if p.dims.len() > 255 {
            return Err(format!("`{}` has more than 255 dimensions", p.name));
        }
        for (u, tr) in units.iter().zip(traces) {
            for e in tr.shapes.iter().flatten() {
                walk(e, units).map_err(|m| {
                    format!(
                        "`{}.{}`: {m}, more than the C runtime supports",
                        p.name, u.name
                    )
                })?;
            }
        }
    }
    Ok(())
}

fn check_unique_names(built: &[Built]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for (p, units, traces) in built {
        for (u, tr) in units.iter().zip(traces) {
            let pre = u.prefix(p);
            let mut names = vec![
                pre.clone(),
                format!("{pre}_rows"),
                format!("{pre}_grid"),
                format!("{pre}_row_width"),
                format!("{pre}_steps"),
            ];
            if u.sampler().is_some() {
                for s in ["new", "free", "start", "step", "finalize"] {
                    names.push(format!("{pre}_sampler_{s}"));
                }
                if one_call_step(u, tr).is_some() {
                    names.push(format!("{pre}_step"));
                }
            }
            for i in 0..u.plan.kernels.len() {
                names.push(u.symbol(p, i));
            }
            for n in names {
                if !seen.insert(n.clone()) {
                    return Err(format!(
                        "two parts of the library would be named `{n}`: rename an entry, sampler \
                         or process"
                    ));
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The C runtime

/// The runtime every library's `<stem>_runtime.c` starts with (after its header): a real C file,
/// compiled on its own by `tests/aot.rs`.
const RUNTIME: &str = include_str!("runtime.c");

fn src_c(b: &Buf, maxout: u32) -> (&'static str, u32) {
    match &b.src {
        Src::Field(f) => ("RT_FIELD", *f),
        Src::Slot(s) => ("RT_SLOT", *s),
        Src::Prev(s) => ("RT_PREV", *s),
        Src::Net { call, output } => ("RT_NET", call * maxout + output),
        Src::Node(i) => ("RT_NODE", *i),
        Src::Input(i) => ("RT_INPUT", *i),
        Src::Output(i) => ("RT_OUTPUT", *i),
        Src::Row(at) => ("RT_ROW", *at),
        // Never in a build: its units are planned without masks.
        Src::Mask(m) => ("RT_MASK", *m),
    }
}

/// `direct`: an output the kernel writes straight into the caller's array.
fn buf_c(b: &Buf, maxout: u32, direct: bool) -> String {
    let (kind, index) = src_c(b, maxout);
    let dims: Vec<String> = b.dims.iter().map(|d| d.to_string()).collect();
    format!(
        "{{{kind}, {}, {}, {}, {index}, {}, {}, {{{}}}}}",
        b.store.bytes(),
        b.batch as u8,
        if b.out && direct { 2 } else { b.out as u8 },
        b.width,
        b.dims.len(),
        dims.join(", ")
    )
}

fn u8_list(xs: &[u32]) -> String {
    xs.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Emit a shape's events as static C data; returns the array's name and length.
fn events_c(
    out: &mut String,
    p: &Process,
    units: &[Unit],
    name: &str,
    events: &[Event],
    maxout: u32,
) -> (String, usize) {
    let mut items = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let base = format!("{name}_e{i}");
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
                let k = &ku.plan.kernels[*kernel];
                // Outputs to the caller's arrays are written in place when no input of the
                // kernel reads them, or when every element reads only its own values.
                let ew = elementwise(k);
                let bl: Vec<String> = bufs
                    .iter()
                    .map(|b| {
                        let caller = matches!(b.src, Src::Field(_) | Src::Output(_));
                        let read = bufs.iter().any(|x| !x.out && x.src == b.src);
                        buf_c(b, maxout, caller && (ew || !read))
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "static const rt_buf {base}_b[] = {{{}}};",
                    bl.join(", ")
                );
                if !slots.is_empty() {
                    let _ = writeln!(
                        out,
                        "static const uint32_t {base}_s[] = {{{}}};",
                        u8_list(slots)
                    );
                }
                let kdims: Vec<u32> = k
                    .dims
                    .iter()
                    .map(|d| p.dims.iter().position(|x| &x.name == d).unwrap_or(0) as u32)
                    .collect();
                let dom: Vec<u32> = k.domain.iter().map(|d| kdims[*d as usize]).collect();
                if !kdims.is_empty() {
                    let _ = writeln!(
                        out,
                        "static const uint8_t {base}_k[] = {{{}}};",
                        u8_list(&kdims)
                    );
                }
                if !dom.is_empty() {
                    let _ = writeln!(
                        out,
                        "static const uint8_t {base}_d[] = {{{}}};",
                        u8_list(&dom)
                    );
                }
                let (is_k, w) = match word {
                    Word::Step => (1, 0),
                    Word::Fixed(w) => (0, *w),
                };
                items.push(format!(
                    "{{RT_LAUNCH, {is_k}, 0, 0, {}, 0, {base}_b, {}, {}, {}, {}, {}, {}, {}, {w}ull, {offset}ull, NULL, NULL}}",
                    bufs.len(),
                    ku.symbol(p, *kernel),
                    if slots.is_empty() { "NULL".into() } else { format!("{base}_s") },
                    slots.len(),
                    if kdims.is_empty() { "NULL".into() } else { format!("{base}_k") },
                    kdims.len(),
                    if dom.is_empty() { "NULL".into() } else { format!("{base}_d") },
                    dom.len(),
                ));
            }
            Event::Call {
                net,
                call,
                inputs,
                outputs,
                sym,
                ..
            } => {
                let bl: Vec<String> = inputs
                    .iter()
                    .chain(outputs)
                    .map(|b| buf_c(b, maxout, false))
                    .collect();
                let _ = writeln!(
                    out,
                    "static const rt_buf {base}_b[] = {{{}}};",
                    bl.join(", ")
                );
                let sy: Vec<String> = sym
                    .iter()
                    .map(|s| s.map_or("-1".to_string(), |d| d.to_string()))
                    .collect();
                let _ = writeln!(
                    out,
                    "static const int8_t {base}_y[] = {{{}}};",
                    sy.join(", ")
                );
                items.push(format!(
                    "{{RT_CALL, 0, {net}, {call}, {}, {}, {base}_b, NULL, NULL, 0, NULL, 0, NULL, 0, 0, 0, {base}_y, NULL}}",
                    inputs.len() + outputs.len(),
                    inputs.len()
                ));
            }
            Event::Copy { to, from, .. } => {
                let _ = writeln!(
                    out,
                    "static const rt_buf {base}_b[] = {{{}, {}}};",
                    buf_c(to, maxout, false),
                    buf_c(from, maxout, false)
                );
                items.push(format!(
                    "{{RT_COPY, 0, 0, 0, 2, 0, {base}_b, NULL, NULL, 0, NULL, 0, NULL, 0, 0, 0, NULL, NULL}}"
                ));
            }
            Event::Repeat { count, body } => {
                let (inner, n) = events_c(out, p, units, &format!("{base}_r"), body, maxout);
                items.push(format!(
                    "{{RT_REPEAT, 0, 0, {count}, {n}, 0, NULL, NULL, NULL, 0, NULL, 0, NULL, 0, 0, 0, NULL, {inner}}}"
                ));
            }
        }
    }
    if items.is_empty() {
        return ("NULL".into(), 0);
    }
    let _ = writeln!(
        out,
        "static const rt_event {name}[] = {{\n  {}\n}};",
        items.join(",\n  ")
    );
    (name.to_string(), items.len())
}

fn runtime_text(stem: &str, built: &[Built]) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "/* {stem}_runtime.c: the call sequences of `{stem}.diff` (see {stem}.h). Generated by diffc: do not edit. */"
    );
    let _ = writeln!(c, "#include \"{stem}.h\"");
    c.push_str(RUNTIME);
    for (p, units, traces) in built {
        let maxout = p
            .networks
            .iter()
            .map(|n| n.outputs.len())
            .max()
            .unwrap_or(1)
            .max(1) as u32;
        params_runtime(&mut c, p);
        for (u, tr) in units.iter().zip(traces) {
            unit_runtime(&mut c, p, units, u, tr, maxout);
        }
    }
    c
}

fn unit_runtime(c: &mut String, p: &Process, units: &[Unit], u: &Unit, tr: &Trace, maxout: u32) {
    let pre = u.prefix(p);
    let nd = p.dims.len().max(1);
    let dims = unit_dims(p, u, tr, units);
    let _ = writeln!(c, "\n/* {}.{} */", p.name, u.name);
    let _ = writeln!(c, "const uint32_t {pre}_row_width = {}u;", tr.width);
    let mut shapes = Vec::new();
    for (i, s) in tr.shapes.iter().enumerate() {
        shapes.push(events_c(c, p, units, &format!("{pre}_shape{i}"), s, maxout));
    }
    let has_rows = tr.rows.is_some() && tr.width > 0;
    match &u.kind {
        UnitKind::Entry(e) => {
            let mut params = array_params(p, e);
            let dims_decl = if p.dims.is_empty() {
                "  const uint64_t dims[1] = {0};\n".to_string()
            } else {
                "  if (!dims) return DIFFC_ERR_ARG;\n".to_string()
            };
            let row_expr = match (&tr.rows, &tr.times) {
                (Some(_), Some(times)) => {
                    let t = ident(&p.time.name);
                    params.push(format!("uint32_t {t}"));
                    let (lo, hi) = (times[0] as u64, *times.last().unwrap_or(&0.0) as u64);
                    format!(
                        "  if ({t} < {lo}u || {t} > {hi}u) return DIFFC_ERR_ARG;\n{}",
                        if has_rows {
                            format!("  c.row = {pre}_rows[{t} - {lo}u];\n")
                        } else {
                            String::new()
                        }
                    )
                }
                (Some(_), None) if has_rows => format!("  c.row = {pre}_rows[0];\n"),
                (Some(_), None) => String::new(),
                (None, _) => {
                    params.push("const float *row".into());
                    "  c.row = row;\n".to_string()
                }
            };
            params.push("uint64_t seed".into());
            let (nin, nout, in_init, out_init) = port_arrays(e);
            let nodes = tr.scratch.max(1);
            let (ev, n) = &shapes[0];
            let dims_decl = format!("{dims_decl}{}", sym_checks_c(p, e));
            let _ = writeln!(
                c,
                "int {pre}({}) {{\n{dims_decl}  const void *inputs[{nin}] = {{{}}};\n  void *outputs[{nout}] = {{{}}};\n  void *nodes[{nodes}] = {{0}};\n  rt_ctx c;\n  memset(&c, 0, sizeof c);\n  c.batch = batch;\n  c.seed = seed;\n  c.dims = dims;\n  c.inputs = inputs;\n  c.outputs = outputs;\n  c.nodes = nodes;\n{row_expr}  int rc = rt_run(&c, {ev}, {n});\n  for (int i = 0; i < {nodes}; i++) free(nodes[i]);\n  return rc;\n}}",
                params.join(", "),
                if in_init.is_empty() { "NULL".into() } else { in_init.join(", ") },
                if out_init.is_empty() { "NULL".into() } else { out_init.join(", ") },
            );
            at_runtime(c, p, u, tr, ev, *n);
        }
        UnitKind::Sampler(sp) => {
            let n = tr.step_shape.len();
            let grid = tr.times.clone().unwrap_or_default();
            let g: Vec<String> = grid.iter().map(|x| format!("{x:?}")).collect();
            let _ = writeln!(
                c,
                "const double {pre}_grid[{}] = {{{}}};",
                grid.len(),
                g.join(", ")
            );
            let shape_list: Vec<String> = shapes.iter().map(|(e, _)| e.clone()).collect();
            let len_list: Vec<String> = shapes.iter().map(|(_, n)| n.to_string()).collect();
            let _ = writeln!(
                c,
                "static const rt_event *const {pre}_shapes[] = {{{}}};\nstatic const uint32_t {pre}_shape_len[] = {{{}}};",
                shape_list.join(", "),
                len_list.join(", ")
            );
            let ss: Vec<String> = tr.step_shape.iter().map(|s| s.to_string()).collect();
            let _ = writeln!(
                c,
                "static const uint16_t {pre}_step_shape[{}] = {{{}}};",
                n.max(1),
                if ss.is_empty() {
                    "0".into()
                } else {
                    ss.join(", ")
                }
            );
            let slots = (sp.slots as usize).max(1);
            let nets = (sp.calls as usize * maxout as usize).max(1);
            let nodes = tr.scratch.max(1);
            let _ = writeln!(
                c,
                "struct {pre}_sampler {{\n  rt_ctx c;\n  uint64_t dims[{nd}];\n  void *slots[{slots}], *prevs[{slots}], *nets[{nets}], *nodes[{nodes}];\n}};"
            );
            let _ = writeln!(c, "const uint32_t {pre}_steps = {n}u;");
            let _ = writeln!(
                c,
                "{pre}_sampler *{pre}_sampler_new(uint64_t batch, const uint64_t *dims, uint64_t seed, diffc_denoise_fn denoise, void *user) {{\n  if (!dims && {}) return NULL;\n  {pre}_sampler *s = calloc(1, sizeof *s);\n  if (!s) return NULL;\n  if (dims) memcpy(s->dims, dims, {} * sizeof(uint64_t));\n  s->c.batch = batch;\n  s->c.seed = seed;\n  s->c.dims = s->dims;\n  s->c.slots = s->slots;\n  s->c.prevs = s->prevs;\n  s->c.nets = s->nets;\n  s->c.nodes = s->nodes;\n  s->c.denoise = denoise;\n  s->c.user = user;\n  return s;\n}}",
                p.dims.len(),
                p.dims.len()
            );
            let _ = writeln!(
                c,
                "void {pre}_sampler_free({pre}_sampler *s) {{\n  if (!s) return;\n  for (int i = 0; i < {slots}; i++) {{\n    free(s->slots[i]);\n    free(s->prevs[i]);\n  }}\n  for (int i = 0; i < {nets}; i++) free(s->nets[i]);\n  for (int i = 0; i < {nodes}; i++) free(s->nodes[i]);\n  free(s);\n}}"
            );
            let row = |k: &str| {
                if has_rows {
                    format!("{pre}_rows[{k}]")
                } else {
                    "NULL".into()
                }
            };
            let _ = writeln!(
                c,
                "static int {pre}_phase({pre}_sampler *s, uint32_t shape, uint32_t k, const float *row, void *const *fields) {{\n  if (!s || !fields) return DIFFC_ERR_ARG;\n  s->c.k = k;\n  s->c.row = row;\n  s->c.fields = fields;\n  return rt_run(&s->c, {pre}_shapes[shape], {pre}_shape_len[shape]);\n}}"
            );
            let _ = writeln!(
                c,
                "int {pre}_sampler_start({pre}_sampler *s, void *const *fields) {{\n  return {pre}_phase(s, {}, 0, {}, fields);\n}}",
                tr.start_shape,
                row(&(n + 1).to_string())
            );
            let _ = writeln!(
                c,
                "int {pre}_sampler_step({pre}_sampler *s, uint32_t k, void *const *fields) {{\n  if (k >= {n}u) return DIFFC_ERR_ARG;\n  return {pre}_phase(s, {pre}_step_shape[k], k, {}, fields);\n}}",
                row("k")
            );
            let _ = writeln!(
                c,
                "int {pre}_sampler_finalize({pre}_sampler *s, void *const *fields) {{\n  return {pre}_phase(s, {}, {n}u, {}, fields);\n}}",
                tr.finalize_shape,
                row(&n.to_string())
            );
            if let Some(s0) = one_call_step(u, tr) {
                one_call_c(c, p, u, tr, s0, &dims);
            }
        }
    }
}

fn one_call_c(c: &mut String, p: &Process, u: &Unit, tr: &Trace, s0: usize, dims: &[u32]) {
    let pre = u.prefix(p);
    let (params, _) = one_call_params(p, u, tr, s0, dims);
    let l = one_call_layout(p, u, tr, s0);
    let Some(Event::Launch {
        kernel,
        bufs,
        slots,
        offset,
        ..
    }) = tr.shapes[s0].last()
    else {
        return;
    };
    let k = &u.plan.kernels[*kernel];
    let n = tr.step_shape.len();
    let ptr = |b: &Buf| -> String {
        match &b.src {
            Src::Row(at) => format!("(void *)(row + {at})"),
            Src::Field(f) if b.out => {
                let name = format!("{}_out", ident(&p.fields[*f as usize].name));
                name
            }
            src => l
                .arrays
                .iter()
                .find(|(_, s, _)| s == src)
                .map(|(n, _, _)| format!("(void *){n}"))
                .unwrap_or_else(|| "NULL".into()),
        }
    };
    let bl: Vec<String> = bufs.iter().map(ptr).collect();
    let sl: Vec<String> = slots.iter().map(|x| format!("row[{x}]")).collect();
    let sizes: Vec<String> = k.dims.iter().map(|d| ident(d)).collect();
    let total: String = std::iter::once("batch".to_string())
        .chain(k.domain.iter().map(|d| ident(&k.dims[*d as usize])))
        .collect::<Vec<_>>()
        .join(" * ");
    let _ = dims;
    let _ = writeln!(
        c,
        "int {pre}_step({}) {{\n  if (k >= {n}u) return DIFFC_ERR_ARG;\n  const float *row = {rows};\n  void *bufs[{}] = {{{}}};\n  float coefs[{}] = {{{}}};\n  uint64_t sizes[{}] = {{{}}};\n  uint32_t status = 0;\n  (void)row;\n  {}(bufs, coefs, sizes, 0, {total}, seed, k, {offset}ull, &status);\n  return (int)status;\n}}",
        params.join(", "),
        bufs.len().max(1),
        bl.join(", "),
        slots.len().max(1),
        if sl.is_empty() { "0".into() } else { sl.join(", ") },
        sizes.len().max(1),
        if sizes.is_empty() { "0".into() } else { sizes.join(", ") },
        u.symbol(p, *kernel),
        rows = if tr.width > 0 {
            format!("{pre}_rows[k]")
        } else {
            "NULL".to_string()
        },
    );
}

/// An entry function's `inputs` and `outputs` arrays: their lengths and initialisers (a scalar
/// input, a time or the seed, is passed otherwise and holds NULL).
fn port_arrays(e: &entries::Entry) -> (usize, usize, Vec<String>, Vec<String>) {
    let ins = e
        .inputs
        .iter()
        .map(|x| {
            if x.extent == PortExtent::Scalar {
                "NULL".into()
            } else {
                ident(&x.name)
            }
        })
        .collect();
    let outs = e.outputs.iter().map(|x| ident(&x.name)).collect();
    (e.inputs.len().max(1), e.outputs.len().max(1), ins, outs)
}

/// An entry function's leading parameters: its array inputs, then outputs, the batch size and
/// (when the process has dimensions) their sizes.
fn array_params(p: &Process, e: &entries::Entry) -> Vec<String> {
    let (ins, outs) = array_ports(e);
    let mut params: Vec<String> = ins
        .iter()
        .map(|(_, x)| format!("const {} *{}", port_c_type(x), ident(&x.name)))
        .chain(
            outs.iter()
                .map(|(_, x)| format!("{} *{}", port_c_type(x), ident(&x.name))),
        )
        .collect();
    params.push("uint64_t batch".into());
    if !p.dims.is_empty() {
        params.push("const uint64_t *dims".into());
    }
    params
}

/// The parameter list of an entry's `_at` variant.
fn at_params(p: &Process, e: &entries::Entry) -> Vec<String> {
    let mut params = array_params(p, e);
    for x in time_ports(e) {
        if x.name == p.time.name {
            params.push(format!("const float *{}", ident(&x.name)));
        } else {
            params.push(format!("float {}", ident(&x.name)));
        }
    }
    if !settable_params(p).is_empty() {
        params.push(format!("const diffc_{}_params *params", p.name));
    }
    params.push("uint64_t seed".into());
    params
}

/// The header's params struct of a process (nothing when it has no run-time params).
fn params_header(h: &mut String, p: &Process) {
    let ids = settable_params(p);
    if ids.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "/* Run-time values of the params of `{}`, for the `_at` entry points: each points at the\n \
         * param's values as floats, or is NULL for the spec's default. A probability vector must\n \
         * hold values >= 0 that sum to 1 (within 1e-6); a non-finite value is DIFFC_ERR_ARG. */",
        p.name
    );
    let _ = writeln!(h, "typedef struct diffc_{}_params {{", p.name);
    for id in ids {
        let x = &p.params[id];
        let default = match &x.default {
            Some(crate::typed::Value::Real(v)) => format!("{v}"),
            Some(crate::typed::Value::Vec(v)) | Some(crate::typed::Value::Mat(_, v)) => {
                let xs: Vec<String> = v.iter().map(|y| format!("{y}")).collect();
                format!("{{{}}}", xs.join(", "))
            }
            _ => "none".into(),
        };
        let _ = writeln!(
            h,
            "  const float *{}; /* {}: {} value{}{}, default {default} */",
            ident(&x.name),
            x.elem.describe(),
            param_len(p, id),
            if param_len(p, id) == 1 { "" } else { "s" },
            if param_simplex(p, id) {
                " (a probability vector)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(h, "}} diffc_{}_params;\n", p.name);
}

/// The runtime's reader of a process's params struct.
fn params_runtime(c: &mut String, p: &Process) {
    let ids = settable_params(p);
    if ids.is_empty() {
        return;
    }
    let _ = writeln!(
        c,
        "\n/* The given params of `{0}` by param index (NULL: the default); 1 if one is invalid. */\nstatic int diffc_{0}_params_get(const diffc_{0}_params *pp, const float **pv) {{\n  if (!pp) return 0;",
        p.name
    );
    for id in ids {
        let f = ident(&p.params[id].name);
        let _ = writeln!(
            c,
            "  if (pp->{f}) {{\n    if (rt_param(pp->{f}, {}u, {})) return 1;\n    pv[{id}] = pp->{f};\n  }}",
            param_len(p, id),
            param_simplex(p, id) as u8
        );
    }
    let _ = writeln!(c, "  return 0;\n}}");
}

/// The sentence of an entry's documentation on its inputs of `sym` fields, checked by
/// [`sym_checks_c`] (empty when it has none).
fn sym_inputs_doc(p: &Process, e: &entries::Entry) -> String {
    let names: Vec<String> = e
        .inputs
        .iter()
        .filter(|x| interp::held_symmetric(p, x))
        .map(|x| format!("`{}`", ident(&x.name)))
        .collect();
    if names.is_empty() {
        return String::new();
    }
    format!(
        " Returns DIFFC_ERR_SYM, computing nothing, where the value of a symmetric field ({}) is \
         not symmetric, or not 0 on its diagonal, in some sample.",
        names.join(", ")
    )
}

/// The header's declaration and documentation of an entry's `_at` variant.
fn at_header(h: &mut String, p: &Process, u: &Unit, tr: &Trace) {
    let Some(e) = u.entry() else { return };
    let pre = u.prefix(p);
    match at_rows(p, u, tr) {
        Ok(None) => {}
        Err(why) => {
            let _ = writeln!(
                h,
                "/* `{}` has no per-sample-time variant: {why}. */",
                u.name
            );
        }
        Ok(Some(how)) => {
            let time = &p.time;
            let t = ident(&time.name);
            let mut doc = format!(
                "Run `{}` with one time per sample: `{t}[b]` is sample b's time (batch floats{}), and\n\
                 sample b's results equal those of `{pre}` called at `{t}[b]` for the whole batch (its draws\n\
                 included), as `diffc eval --entry {} --in {t}=T.npy` gives them. A result that is one value\n\
                 per call there is one per sample here (batch floats). ",
                u.name,
                if time.kind == TimeKind::Discrete {
                    format!(", whole numbers {} … {}", time.lo, time.hi)
                } else {
                    format!(", {} … {}", time.lo, time.hi)
                },
                u.name
            );
            doc.push_str(match how {
                AtRows::Tables => "The rows come from the table above.",
                AtRows::Computed(_) => {
                    "The coefficients above are computed at each sample's time in f64, as diffc's own \
                     host code computes them (compile the runtime with -fno-builtin -ffp-contract=off \
                     for bit-equal results), and rounded to f32."
                }
            });
            if !settable_params(p).is_empty() {
                doc.push_str(" `params` (NULL for the defaults) sets the process's params.");
            }
            doc.push_str(
                " Returns DIFFC_ERR_ARG for a time outside the process's time (or NaN), a param that \
                 is not finite or not a probability vector where one is needed, or a coefficient the \
                 interpreter cannot compute at that time.",
            );
            doc.push_str(&sym_inputs_doc(p, e));
            let _ = writeln!(h, "/*");
            comment(h, "", &doc);
            let _ = writeln!(h, " */");
            let _ = writeln!(h, "int {pre}_at({});", at_params(p, e).join(", "));
        }
    }
}

/// C statements that return DIFFC_ERR_SYM where an entry's input value of a `sym` field (not a
/// network's output, which is read on its upper triangle) is not symmetric with an empty
/// diagonal in every sample: the inputs [`interp::held_symmetric`] picks, held to
/// [`interp::check_sym`]'s rule, as `diffc eval` holds them.
fn sym_checks_c(p: &Process, e: &entries::Entry) -> String {
    let mut s = String::new();
    for x in e.inputs.iter().filter(|x| interp::held_symmetric(p, x)) {
        let PortExtent::Field(shape) = &x.extent else {
            continue;
        };
        let b = port_buf(x, Src::Input(0), false);
        let ty = match b.store {
            Store::F32 => "f32",
            Store::U32 => "u32",
            Store::U8 => "u8",
        };
        let _ = writeln!(
            s,
            "  if (rt_sym_{ty}({}, batch, dims[{}], {}u)) return DIFFC_ERR_SYM;",
            ident(&x.name),
            shape.dims[0].0,
            b.width
        );
    }
    s
}

/// The runtime's `_at` variant of an entry (nothing when it has none).
fn at_runtime(c: &mut String, p: &Process, u: &Unit, tr: &Trace, ev: &str, n: usize) {
    let Some(e) = u.entry() else { return };
    let Ok(Some(how)) = at_rows(p, u, tr) else {
        return;
    };
    let pre = u.prefix(p);
    let time = &p.time;
    let t = ident(&time.name);
    let discrete = (time.kind == TimeKind::Discrete) as u8;
    let lit = |x: f64| format!("{x:?}");
    let mut body = String::new();
    if !p.dims.is_empty() {
        body.push_str("  if (!dims) return DIFFC_ERR_ARG;\n");
    } else {
        body.push_str("  const uint64_t dims[1] = {0};\n");
    }
    let _ = writeln!(body, "  if (!{t} && batch) return DIFFC_ERR_ARG;");
    let np = p.params.len().max(1);
    let _ = writeln!(body, "  const float *pv[{np}] = {{0}};\n  (void)pv;");
    if !settable_params(p).is_empty() {
        let _ = writeln!(
            body,
            "  if (diffc_{}_params_get(params, pv)) return DIFFC_ERR_ARG;",
            p.name
        );
    }
    let mut sv = "0.0".to_string();
    for x in time_ports(e) {
        if x.name == time.name {
            continue;
        }
        let (lo, hi) = (time.lo.min(time.data_at), time.hi.max(time.data_at));
        let name = ident(&x.name);
        let _ = writeln!(
            body,
            "  double {name}_v;\n  if (rt_time({name}, {}, {}, {discrete}, &{name}_v)) return DIFFC_ERR_ARG;",
            lit(lo),
            lit(hi)
        );
        sv = format!("{name}_v");
    }
    let check = format!(
        "rt_time({t}[b], {}, {}, {discrete}, &tv)",
        lit(time.lo),
        lit(time.hi)
    );
    let _ = writeln!(
        body,
        "  for (uint64_t b = 0; b < batch; b++) {{\n    double tv;\n    if ({check}) return DIFFC_ERR_ARG;\n  }}"
    );
    body.push_str(&sym_checks_c(p, e));
    let (nin, nout, in_init, out_init) = port_arrays(e);
    let nodes = tr.scratch.max(1);
    let width = tr.width.max(1);
    let row = match &how {
        AtRows::Tables if tr.width == 0 => String::new(),
        AtRows::Tables => format!(
            "    c.row = {pre}_rows[(uint32_t)tv - {}u];\n",
            time.lo as u64
        ),
        AtRows::Computed(_) => format!(
            "    if ({pre}_row_at(tv, {sv}, pv, row)) {{\n      rc = DIFFC_ERR_ARG;\n      break;\n    }}\n    c.row = row;\n"
        ),
    };
    if let AtRows::Computed(f) = &how {
        c.push_str(f);
    }
    let _ = writeln!(
        c,
        "int {pre}_at({}) {{\n{body}  const void *inputs[{nin}] = {{{}}};\n  void *outputs[{nout}] = {{{}}};\n  void *nodes[{nodes}] = {{0}};\n  float row[{width}];\n  (void)row;\n  rt_ctx c;\n  memset(&c, 0, sizeof c);\n  c.batch = batch;\n  c.seed = seed;\n  c.dims = dims;\n  c.inputs = inputs;\n  c.outputs = outputs;\n  c.nodes = nodes;\n  c.runs = 1;\n  int rc = 0;\n  for (uint64_t b0 = 0, b1; b0 < batch && !rc; b0 = b1) {{\n    uint32_t w0, w;\n    memcpy(&w0, &{t}[b0], 4);\n    for (b1 = b0 + 1; b1 < batch; b1++) {{\n      memcpy(&w, &{t}[b1], 4);\n      if (w != w0) break;\n    }}\n    uint64_t b = b0;\n    double tv = 0.0;\n    if ({check}) {{\n      rc = DIFFC_ERR_ARG;\n      break;\n    }}\n{row}    c.b0 = b0;\n    c.b1 = b1;\n    rc = rt_run(&c, {ev}, {n});\n  }}\n  for (int i = 0; i < {nodes}; i++) free(nodes[i]);\n  return rc;\n}}",
        at_params(p, e).join(", "),
        if in_init.is_empty() { "NULL".into() } else { in_init.join(", ") },
        if out_init.is_empty() { "NULL".into() } else { out_init.join(", ") },
    );
}
