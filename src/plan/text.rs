//! Plans as text: `plan_text` (`diffc explain --plan`), the prose of a unit's ports, rows and
//! call sequences (`unit_doc`, also the C header's comment above each unit) and of its kernels,
//! and `validate`, the check every printed plan passes. Storage types are named as C names
//! them (`float`, `uint32_t`, `uint8_t`).

use super::{
    bufs_of, coef_layout, coef_text, coef_width, elem_store, elementwise, port_buf, reads,
    shape_dims, traced, writes, Buf, CopyWhy, Event, Src, Trace, Unit, UnitKind, Word,
    REPEAT_STRIDE,
};
use crate::entries::{Extent as PortExtent, Port};
use crate::explain::show;
use crate::ir::{Extent, Node, Op, SamplerProgram};
use crate::kernel::{BufSrc, Kernel, Store, Target};
use crate::typed::{Module, Process};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

/// The launch plans of a checked spec's entries and samplers (or of `only`: an entry's or a
/// sampler's name), as `diffc explain --plan` prints them: per unit, its ports or grid, its
/// host coefficients and rows, each call sequence (kernel launches with their buffers, network
/// calls, host copies, repeated blocks) and each kernel's loop domain. Each unit's sequences are
/// validated first (`validate`).
pub fn plan_text(
    module: &Module,
    process: Option<&str>,
    only: Option<&str>,
) -> Result<String, String> {
    let built = traced(module, process)?;
    let mut out = String::new();
    let mut found = false;
    for (p, units, traces) in &built {
        for (u, tr) in units.iter().zip(traces) {
            if only.is_some_and(|n| n != u.name) {
                continue;
            }
            found = true;
            validate(p, u, tr)?;
            let _ = writeln!(out, "== `{}` of `{}` ==\n", u.name, p.name);
            out.push_str(&unit_doc(p, units, u, tr));
            let _ = writeln!(out, "\nKernels:");
            for (i, k) in u.plan.kernels.iter().enumerate() {
                let dom: Vec<&str> = k
                    .domain
                    .iter()
                    .map(|d| k.dims[*d as usize].as_str())
                    .collect();
                let _ = writeln!(
                    out,
                    "  {}: over batch{}{}",
                    u.symbol(p, i),
                    if dom.is_empty() { "" } else { "·" },
                    dom.join("·")
                );
            }
            out.push('\n');
        }
    }
    if !found {
        let names: Vec<String> = built
            .iter()
            .flat_map(|(_, us, _)| us.iter().map(|u| u.name.clone()))
            .collect();
        return Err(format!(
            "no entry or sampler `{}` (there are: {})",
            only.unwrap_or(""),
            names.join(", ")
        ));
    }
    Ok(out)
}

/// Check a unit's call sequences: within each sequence every scratch value, network output and
/// output port is written before it is read (a sampler's slots may also come from its start),
/// and every buffer has one store, width and extent wherever it appears.
pub(crate) fn validate(p: &Process, u: &Unit, tr: &Trace) -> Result<(), String> {
    let mut start_writes = HashSet::new();
    if u.sampler().is_some() {
        let mut seen = HashMap::new();
        check_order(&tr.shapes[tr.start_shape], &mut start_writes, &mut seen, "")
            .map_err(|e| format!("the plan of `{}` of `{}`, start: {e}", u.name, p.name))?;
    }
    for (i, shape) in tr.shapes.iter().enumerate() {
        let mut written: HashSet<Src> = start_writes
            .iter()
            .filter(|s| matches!(s, Src::Slot(_)))
            .cloned()
            .collect();
        let mut seen = HashMap::new();
        check_order(shape, &mut written, &mut seen, "").map_err(|e| {
            format!(
                "the plan of `{}` of `{}`, sequence {i}: {e}",
                u.name, p.name
            )
        })?;
    }
    Ok(())
}

/// Walk one call sequence in order (for `validate`): `written` holds what earlier
/// events wrote, `seen` each buffer as first named; `at` numbers the events as the plan prints.
fn check_order<'e>(
    events: &'e [Event],
    written: &mut HashSet<Src>,
    seen: &mut HashMap<Src, &'e Buf>,
    at: &str,
) -> Result<(), String> {
    for (i, e) in events.iter().enumerate() {
        let here = format!("{at}{}.", i + 1);
        if let Event::Repeat { body, .. } = e {
            // Its first round reads only what came before or what the round wrote first.
            check_order(body, written, seen, &here)?;
            continue;
        }
        for b in bufs_of(e) {
            if let Some(first) = seen.get(&b.src) {
                if (first.store, first.width, first.batch, &first.dims)
                    != (b.store, b.width, b.batch, &b.dims)
                {
                    return Err(format!(
                        "event {here}: buffer {:?} is {:?}×{} over {:?} here, {:?}×{} over {:?} before",
                        b.src, b.store, b.width, b.dims, first.store, first.width, first.dims
                    ));
                }
            } else {
                seen.insert(b.src.clone(), b);
            }
        }
        for b in reads(e) {
            let given = matches!(
                b.src,
                Src::Field(_) | Src::Prev(_) | Src::Input(_) | Src::Row(_) | Src::Mask(_)
            );
            if !given && !written.contains(&b.src) {
                return Err(format!(
                    "event {here}: {:?} is read before anything writes it",
                    b.src
                ));
            }
        }
        for b in writes(e) {
            written.insert(b.src.clone());
        }
    }
    Ok(())
}

pub(crate) fn c_type(store: Store) -> &'static str {
    match store {
        Store::F32 => "float",
        Store::U32 => "uint32_t",
        Store::U8 => "uint8_t",
    }
}

/// `batch·n·d·K`
pub(crate) fn len_text(p: &Process, b: &Buf) -> String {
    let mut parts: Vec<String> = Vec::new();
    if b.batch {
        parts.push("batch".into());
    }
    parts.extend(b.dims.iter().map(|d| p.dims[*d as usize].name.clone()));
    if b.width > 1 {
        parts.push(b.width.to_string());
    }
    if parts.is_empty() {
        "1".into()
    } else {
        parts.join("·")
    }
}

pub(crate) fn slot_name(sp: Option<&SamplerProgram>, s: u32) -> String {
    if let Some(sp) = sp {
        if let Some(i) = sp.history.iter().position(|h| *h == s) {
            return format!("slot {s} (`{}`)", sp.history_names[i]);
        }
    }
    format!("slot {s}")
}

pub(crate) fn src_text(p: &Process, u: &Unit, b: &Buf) -> String {
    match &b.src {
        Src::Field(f) => format!("field `{}`", p.fields[*f as usize].name),
        Src::Slot(s) => slot_name(u.sampler(), *s),
        Src::Prev(s) => format!("previous step's {}", slot_name(u.sampler(), *s)),
        Src::Net { call, output } => {
            // The network of a call, from the sampler's ops.
            let net = u
                .sampler()
                .and_then(|sp| net_of_call(sp, *call))
                .map(|n| &p.networks[n as usize]);
            match net {
                Some(n) => format!(
                    "`{}.{}` (output {output} of network call {call})",
                    n.name,
                    p.field(n.outputs[*output as usize].field).name
                ),
                None => format!("output {output} of network call {call}"),
            }
        }
        Src::Node(i) => format!("scratch {i}"),
        Src::Mask(m) => format!("node mask `{}`", p.masks[*m as usize].name),
        Src::Input(i) => format!("input `{}`", u.prog.inputs[*i as usize].name),
        Src::Output(i) => format!("output `{}`", u.prog.outputs[*i as usize].name),
        Src::Row(at) => {
            let (off, _) = coef_layout(p, &u.prog);
            let coef = off
                .iter()
                .position(|o| o == at)
                .map(|c| format!(" (c{c})"))
                .unwrap_or_default();
            if b.width > 1 {
                format!("row[{at} … {}]{coef}", at + b.width - 1)
            } else {
                format!("row[{at}]{coef}")
            }
        }
    }
}

pub(crate) fn net_of_call(sp: &SamplerProgram, call: u32) -> Option<u32> {
    fn go(ops: &[Op], call: u32) -> Option<u32> {
        for op in ops {
            match op {
                Op::Call { call: c, net, .. } if *c == call => return Some(*net),
                Op::If {
                    then, otherwise, ..
                } => {
                    if let Some(n) = go(then, call).or_else(|| go(otherwise, call)) {
                        return Some(n);
                    }
                }
                Op::Repeat { body, .. } => {
                    if let Some(n) = go(body, call) {
                        return Some(n);
                    }
                }
                _ => {}
            }
        }
        None
    }
    go(&sp.init, call)
        .or_else(|| go(&sp.step, call))
        .or_else(|| go(&sp.finalize, call))
}

pub(crate) fn port_c_type(port: &Port) -> &'static str {
    if port.extent == PortExtent::Scalar {
        "float"
    } else {
        c_type(elem_store(port.elem))
    }
}

fn port_len_text(p: &Process, port: &Port) -> String {
    len_text(p, &port_buf(port, Src::Output(0), false))
}

/// The row values after the coefficients that a sequence reads.
fn docs_text(docs: &BTreeMap<u32, String>) -> String {
    docs.iter()
        .map(|(at, d)| format!("   row[{at}]: {d}\n"))
        .collect()
}

fn events_text(p: &Process, units: &[Unit], u: &Unit, events: &[Event]) -> String {
    let mut t = String::new();
    events_into(&mut t, p, units, u, events, "", "");
    if events.is_empty() {
        t.push_str("(nothing)\n");
    }
    t
}

/// One numbered line (and its continuation lines) per event; inner loops nest.
fn events_into(
    t: &mut String,
    p: &Process,
    units: &[Unit],
    u: &Unit,
    events: &[Event],
    pad: &str,
    num: &str,
) {
    for (i, e) in events.iter().enumerate() {
        let n = format!("{num}{}.", i + 1);
        let more = format!("{pad}{}", " ".repeat(n.chars().count() + 2));
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
                let _ = writeln!(t, "{pad}{n} {}(", ku.symbol(p, *kernel));
                for (j, b) in bufs.iter().enumerate() {
                    let _ = writeln!(
                        t,
                        "{more}b{j} {} {}",
                        if b.out { "→" } else { "←" },
                        src_text(p, u, b)
                    );
                }
                if !slots.is_empty() {
                    let _ = writeln!(t, "{more}coefs = {{{}}}", row_runs(slots));
                }
                let sizes: Vec<&str> = k.dims.iter().map(|d| d.as_str()).collect();
                let dom: Vec<&str> = k
                    .domain
                    .iter()
                    .map(|d| k.dims[*d as usize].as_str())
                    .collect();
                let off = match offset / REPEAT_STRIDE {
                    _ if num.is_empty() || offset % REPEAT_STRIDE != 0 => offset.to_string(),
                    1 => "(j + 1)·2^40".to_string(),
                    m => format!("({m} + j)·2^40"),
                };
                let _ = writeln!(
                    t,
                    "{more}sizes = {{{}}}, range 0 … batch{}{}, step word {}, offset {off})",
                    sizes.join(", "),
                    if dom.is_empty() { "" } else { "·" },
                    dom.join("·"),
                    match word {
                        Word::Step => "k".to_string(),
                        Word::Fixed(w) => format!("{w}"),
                    }
                );
            }
            Event::Call {
                net,
                call,
                inputs,
                outputs,
                sym,
                ..
            } => {
                let nw = &p.networks[*net as usize];
                let ins: Vec<String> = inputs
                    .iter()
                    .zip(&nw.inputs)
                    .map(|(b, ni)| match ni {
                        crate::typed::NetInput::Time { expr } => {
                            format!("{} = {}", show(p, *expr), src_text(p, u, b))
                        }
                        crate::typed::NetInput::Field { .. } => src_text(p, u, b),
                    })
                    .collect();
                let outs: Vec<String> = outputs
                    .iter()
                    .zip(sym)
                    .map(|(b, s)| {
                        format!(
                            "{} [{}]{}",
                            src_text(p, u, b),
                            len_text(p, b),
                            if s.is_some() {
                                " (then mirrored: read on the upper triangle)"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect();
                let _ = writeln!(
                    t,
                    "{pad}{n} denoiser: network {net} `{}`, call {call}, inputs ({})\n{more}→ {}",
                    nw.name,
                    ins.join(", "),
                    outs.join(", ")
                );
            }
            Event::Copy { to, from, why, .. } => {
                let _ = writeln!(
                    t,
                    "{pad}{n} host: {} := {} ({} {}){}",
                    src_text(p, u, to),
                    src_text(p, u, from),
                    len_text(p, to),
                    c_type(to.store),
                    match why {
                        CopyWhy::Host => ", a copy the step's network call captured",
                        CopyWhy::Start => ", the prior's draw is the starting value",
                        CopyWhy::Keep => ", kept for the next step's `prev`",
                        CopyWhy::Result => "",
                    }
                );
            }
            Event::Repeat { count, body } => {
                let _ = writeln!(
                    t,
                    "{pad}{n} repeat {count} times, for j = 0 … {}:",
                    count - 1
                );
                events_into(t, p, units, u, body, &format!("{pad}   "), &n);
            }
        }
    }
}

pub(crate) fn kernel_doc(p: &Process, u: &Unit, i: usize) -> String {
    let k = &u.plan.kernels[i];
    let mut t = String::new();
    let dom: Vec<&str> = k
        .domain
        .iter()
        .map(|d| k.dims[*d as usize].as_str())
        .collect();
    let _ = writeln!(
        t,
        "Kernel {i} `{}` of `{}.{}`: one element per batch{}{}{}.",
        k.name,
        p.name,
        u.name,
        if dom.is_empty() { "" } else { "·" },
        dom.join("·"),
        if elementwise(k) {
            " (elementwise: outputs may alias inputs)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        t,
        "sizes: {{{}}}; the call sequences above say what each buffer is bound to.",
        k.dims.join(", ")
    );
    for (j, b) in k.bufs.iter().enumerate() {
        let what = match kernel_buf_doc(p, u, k, j) {
            Some((false, len, src)) => format!("in  {}[{len}] {src}", c_type(b.store)),
            Some((true, len, what)) => format!("out {}[{len}] {what}", c_type(b.store)),
            None => "unused".into(),
        };
        let _ = writeln!(t, "b{j}: {what}");
    }
    // Runs of slots that read consecutive components of one coefficient, on one line each.
    let mut j = 0;
    while j < k.coefs.len() {
        let (c, q) = k.coefs[j];
        let mut e = j;
        while e + 1 < k.coefs.len() && k.coefs[e + 1] == (c, q + (e + 1 - j) as u32) {
            e += 1;
        }
        let w = coef_width(p, &u.prog, c as usize);
        let _ = if e == j {
            writeln!(
                t,
                "coefs[{j}] = c{c}{}",
                if w > 1 {
                    format!("[{q}]")
                } else {
                    String::new()
                }
            )
        } else {
            writeln!(t, "coefs[{j} … {e}] = c{c}[{q} … {}]", q + (e - j) as u32)
        };
        j = e + 1;
    }
    if !k.sites.is_empty() {
        let names: Vec<String> = k
            .sites
            .iter()
            .map(|s| format!("site {s} (`{}`)", u.prog.draws[*s as usize].name))
            .collect();
        let _ = writeln!(t, "draws: {}", names.join(", "));
    }
    t
}

/// Buffer `j` of kernel `k` of a unit: whether the kernel writes it, its length (`batch·d·K`),
/// and what it holds (empty for a field, slot or network output read: the call sequences say
/// which). `None` for a supplied draw or a node mask.
pub(crate) fn kernel_buf_doc(
    p: &Process,
    u: &Unit,
    k: &Kernel,
    j: usize,
) -> Option<(bool, String, String)> {
    let b = &k.bufs[j];
    match &b.src {
        BufSrc::Node(id) => {
            let info = u.prog.node(*id);
            let len = match info.extent {
                Extent::Uniform => "1".to_string(),
                Extent::Sample => "batch".to_string(),
                Extent::Element => {
                    let mut s = vec!["batch".to_string()];
                    s.extend(
                        shape_dims(&info.shape)
                            .iter()
                            .map(|d| p.dims[*d as usize].name.clone()),
                    );
                    s.join("·")
                }
            };
            let src = match info.node {
                Node::Input(x) => format!("input `{}`", u.prog.inputs[x as usize].name),
                Node::Coef(c) => format!("coefficient c{c}"),
                _ if info.extent == Extent::Uniform => "a host value".to_string(),
                Node::State(_) | Node::Slot(_) | Node::Prev(_) | Node::NetOut { .. } => {
                    String::new()
                }
                _ => "an intermediate value (another kernel's output)".to_string(),
            };
            let width = if b.width > 1 {
                format!("·{}", b.width)
            } else {
                String::new()
            };
            Some((false, format!("{len}{width}"), src))
        }
        BufSrc::Out(tg) => {
            let what = match tg {
                Target::Node(id) => match u.prog.results.iter().position(|r| r == id) {
                    Some(o) if u.entry().is_some() => {
                        format!("output `{}`", u.prog.outputs[o].name)
                    }
                    _ => "an intermediate value".to_string(),
                },
                Target::Slot(s) => slot_name(u.sampler(), *s),
                Target::Field(f) => {
                    format!("the new value of field `{}`", p.fields[*f as usize].name)
                }
            };
            let mut s = vec!["batch".to_string()];
            s.extend(k.domain.iter().map(|d| k.dims[*d as usize].clone()));
            if b.width > 1 {
                s.push(b.width.to_string());
            }
            Some((true, s.join("·"), what))
        }
        BufSrc::Draw(_) | BufSrc::Mask(_) => None,
    }
}

/// What a unit runs, as prose: its ports or grid, its coefficients and rows, and its call
/// sequences (the header's comment above the unit's declarations, and `diffc explain --plan`).
pub(crate) fn unit_doc(p: &Process, units: &[Unit], u: &Unit, tr: &Trace) -> String {
    let pre = u.prefix(p);
    let mut t = String::new();
    match &u.kind {
        UnitKind::Entry(e) => {
            let _ = writeln!(t, "Entry `{}` of `{}`.", u.name, p.name);
            let ins: Vec<String> = e
                .inputs
                .iter()
                .map(|x| match x.extent {
                    _ if x.name == "seed" => "the seed".to_string(),
                    PortExtent::Scalar => format!("the time `{}`", x.name),
                    _ => format!("{}: {} [{}]", x.name, port_c_type(x), port_len_text(p, x)),
                })
                .collect();
            let outs: Vec<String> = e
                .outputs
                .iter()
                .map(|x| format!("{}: {} [{}]", x.name, port_c_type(x), port_len_text(p, x)))
                .collect();
            let _ = writeln!(t, "Inputs: {}.", ins.join(", "));
            let _ = writeln!(t, "Outputs: {}.", outs.join(", "));
        }
        UnitKind::Sampler(_) => {
            let grid = tr.times.as_ref().map(|g| g.len() - 1).unwrap_or(0);
            let _ = writeln!(
                t,
                "Sampler `{}` of `{}`: {grid} steps on its default grid {pre}_grid (noise end first);\n\
                 step k runs from t = grid[k] to s = grid[k + 1] (r = grid[k − 1] is the time before).",
                u.name, p.name
            );
            if let Some(s) = p.samplers.iter().find(|s| s.name == u.name) {
                if !s.params.is_empty() {
                    let ps: Vec<String> = s
                        .params
                        .iter()
                        .map(|x| format!("{} = {}", x.name, show(p, x.value)))
                        .collect();
                    let _ = writeln!(
                        t,
                        "Parameters (the tables hold these defaults): {}.",
                        ps.join(", ")
                    );
                }
            }
        }
    }
    if tr.coef_width > 0 {
        let _ = writeln!(
            t,
            "\nCoefficients (where in the row: what; K×K matrices row-major):"
        );
        for c in 0..u.prog.coefs.len() {
            let w = coef_width(p, &u.prog, c);
            let _ = writeln!(
                t,
                "  c{c} at row[{}{}]: {}",
                tr.coef_off[c],
                if w > 1 {
                    format!(" … {}", tr.coef_off[c] + w - 1)
                } else {
                    String::new()
                },
                coef_text(p, &u.prog, c)
            );
        }
    }
    match (&u.kind, &tr.rows, &tr.times) {
        (UnitKind::Entry(_), Some(_), Some(_)) if tr.width == 0 => {
            let _ = writeln!(
                t,
                "\nNo host values: the kernels read no coefficients (the time is checked only)."
            );
        }
        (UnitKind::Entry(_), Some(_), Some(times)) => {
            let _ = writeln!(
                t,
                "\nRows: {pre}_rows[t − {}] holds the row at time t ({} rows of {} floats).",
                times[0],
                times.len(),
                tr.width
            );
        }
        (UnitKind::Entry(_), Some(_), None) => {
            if tr.width > 0 {
                let _ = writeln!(t, "\nRow: {pre}_rows[0] ({} floats).", tr.width);
            }
        }
        (UnitKind::Entry(_), None, _) => {
            let _ = writeln!(
                t,
                "\nContinuous time: the caller computes the row ({} floats, the coefficients above \
                 at its time, in f64 rounded to f32) and passes it as `row`.",
                tr.width
            );
        }
        (UnitKind::Sampler(_), _, _) => {
            let n = tr.step_shape.len();
            let _ = writeln!(
                t,
                "\nRows: {pre}_rows[k] for step k (0 … {}), [{n}] for the final map (at t = grid[{n}]),\n\
                 [{}] for the start ({} floats each). Values a row holds after the coefficients are\n\
                 named in the sequences below.",
                n.saturating_sub(1),
                n + 1,
                tr.width
            );
        }
    }
    // Call sequences.
    match &u.kind {
        UnitKind::Entry(_) => {
            let _ = writeln!(t, "\nCalls:");
            t.push_str(&events_text(p, units, u, &tr.shapes[0]));
            t.push_str(&docs_text(&tr.docs[0]));
        }
        UnitKind::Sampler(_) => {
            let n = tr.step_shape.len();
            let mut by_shape: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for (k, s) in tr.step_shape.iter().enumerate() {
                by_shape.entry(*s).or_default().push(k);
            }
            let _ = writeln!(t, "\nStart (seed as given; before step 0):");
            t.push_str(&events_text(p, units, u, &tr.shapes[tr.start_shape]));
            t.push_str(&docs_text(&tr.docs[tr.start_shape]));
            for (s, ks) in &by_shape {
                if ks.len() == 1 {
                    let _ = writeln!(t, "\nStep k = {}:", ks[0]);
                } else {
                    let _ = writeln!(t, "\nStep k for k in {}:", ranges(ks));
                }
                t.push_str(&events_text(p, units, u, &tr.shapes[*s]));
                t.push_str(&docs_text(&tr.docs[*s]));
            }
            let _ = writeln!(t, "\nFinal map (at t = grid[{n}]):");
            t.push_str(&events_text(p, units, u, &tr.shapes[tr.finalize_shape]));
            t.push_str(&docs_text(&tr.docs[tr.finalize_shape]));
        }
    }
    t
}

/// `row[3], row[7 … 735]`: row offsets, consecutive ones as runs.
fn row_runs(xs: &[u32]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < xs.len() {
        let mut e = i;
        while e + 1 < xs.len() && xs[e + 1] == xs[e] + 1 {
            e += 1;
        }
        out.push(if e - i >= 2 {
            format!("row[{} … {}]", xs[i], xs[e])
        } else {
            (i..=e)
                .map(|k| format!("row[{}]", xs[k]))
                .collect::<Vec<_>>()
                .join(", ")
        });
        i = e + 1;
    }
    out.join(", ")
}

fn ranges(ks: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ks.len() {
        let mut j = i;
        while j + 1 < ks.len() && ks[j + 1] == ks[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            ks[i].to_string()
        } else {
            format!("{} … {}", ks[i], ks[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(src: Src, out: bool, width: u32) -> Buf {
        Buf {
            src,
            store: Store::F32,
            width,
            batch: true,
            dims: vec![0],
            out,
        }
    }

    fn launch(bufs: Vec<Buf>) -> Event {
        Event::Launch {
            unit: 0,
            kernel: 0,
            bufs,
            slots: Vec::new(),
            word: Word::Fixed(0),
            offset: 0,
        }
    }

    fn order(events: &[Event]) -> Result<(), String> {
        check_order(events, &mut HashSet::new(), &mut HashMap::new(), "")
    }

    #[test]
    fn a_plan_reading_before_writing_or_changing_a_buffer_is_refused() {
        let ok = [
            launch(vec![
                buf(Src::Input(0), false, 1),
                buf(Src::Node(0), true, 1),
            ]),
            launch(vec![
                buf(Src::Node(0), false, 1),
                buf(Src::Output(0), true, 1),
            ]),
        ];
        assert_eq!(order(&ok), Ok(()));
        let early = [
            launch(vec![
                buf(Src::Node(0), false, 1),
                buf(Src::Output(0), true, 1),
            ]),
            launch(vec![
                buf(Src::Input(0), false, 1),
                buf(Src::Node(0), true, 1),
            ]),
        ];
        let e = order(&early).unwrap_err();
        assert!(e.contains("event 1.") && e.contains("Node(0)"), "{e}");
        let resized = [
            launch(vec![
                buf(Src::Input(0), false, 1),
                buf(Src::Node(0), true, 1),
            ]),
            launch(vec![
                buf(Src::Node(0), false, 3),
                buf(Src::Output(0), true, 1),
            ]),
        ];
        let e = order(&resized).unwrap_err();
        assert!(e.contains("event 2.") && e.contains("Node(0)"), "{e}");
        // A repeated block may read what came before it, but not what nothing wrote.
        let carried = [
            launch(vec![
                buf(Src::Input(0), false, 1),
                buf(Src::Slot(0), true, 1),
            ]),
            Event::Repeat {
                count: 3,
                body: vec![
                    launch(vec![
                        buf(Src::Slot(0), false, 1),
                        buf(Src::Node(1), true, 1),
                    ]),
                    launch(vec![
                        buf(Src::Node(1), false, 1),
                        buf(Src::Slot(0), true, 1),
                    ]),
                ],
            },
        ];
        assert!(order(&carried).is_ok());
        let unwritten = [Event::Repeat {
            count: 3,
            body: vec![launch(vec![
                buf(Src::Node(7), false, 1),
                buf(Src::Output(0), true, 1),
            ])],
        }];
        assert!(order(&unwritten).unwrap_err().contains("Node(7)"));
    }
}
