//! Cranelift code for one kernel, written once against `cranelift_module::Module` so that the
//! JIT and object files share it.
//!
//! The function has the C signature
//! `void k(void *const *bufs, const float *coefs, const uint64_t *sizes, uint64_t start,
//!         uint64_t end, uint64_t seed, uint64_t step, uint64_t offset, uint32_t *status)`
//! and computes flat elements `start..end`. Statements the same for every element run once
//! before the loop. The main loop takes four elements at a time: f32, class and bool arithmetic
//! runs on 128-bit vectors, contiguous loads and stores are vector moves, C math functions and
//! the generator are four-lane helper calls, and everything else (indices, f64, inner loops)
//! runs lane by lane. A scalar loop finishes the range, so any split of the range gives the
//! same values.

use crate::kernel::build::operands;
use crate::kernel::*;
use crate::rng;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    self, types, AbiParam, FuncRef, InstBuilder, MemFlagsData, Signature, Type, Value,
};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_module::{FuncId, Linkage, Module, ModuleReloc};
use std::collections::HashMap;

/// The kernel ABI (see the module doc).
pub fn signature(m: &dyn Module) -> Signature {
    let ptr = m.target_config().pointer_type();
    let mut sig = m.make_signature();
    for t in [
        ptr,
        ptr,
        ptr,
        types::I64,
        types::I64,
        types::I64,
        types::I64,
        types::I64,
        ptr,
    ] {
        sig.params.push(AbiParam::new(t));
    }
    sig
}

/// Declare the C math functions kernels call.
pub fn declare_libm<M: Module>(m: &mut M) -> Result<HashMap<Libm, FuncId>, String> {
    let mut out = HashMap::new();
    for l in Libm::ALL {
        let t = if l.ty() == Ty::F64 {
            types::F64
        } else {
            types::F32
        };
        let mut sig = m.make_signature();
        for _ in 0..l.arity() {
            sig.params.push(AbiParam::new(t));
        }
        sig.returns.push(AbiParam::new(t));
        let id = m
            .declare_function(l.symbol(), Linkage::Import, &sig)
            .map_err(|e| e.to_string())?;
        out.insert(l, id);
    }
    Ok(out)
}

/// What defining a function does besides compiling it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checks {
    /// Keep each kernel's Cranelift IR as text (for snapshots and `Compiled::clif`).
    pub ir_text: bool,
    /// Run the Cranelift verifier on every function before compiling it.
    pub verify: bool,
    /// Call the generator's native fills (`super::native`) where the CPU runs them. Off, a
    /// module is Cranelift code alone and its IR text is the same on every machine.
    pub native: bool,
}

impl Checks {
    /// Verify in debug builds (the tests), skip it in release builds, where a JIT compile of
    /// an 8,000-statement kernel would spend a tenth of its time in the verifier.
    pub fn jit() -> Checks {
        Checks {
            ir_text: false,
            verify: cfg!(debug_assertions),
            native: true,
        }
    }
    /// Everything: the IR text of every kernel, and the verifier on every function, with
    /// Cranelift code alone (so the text does not depend on the machine).
    pub fn all() -> Checks {
        Checks {
            ir_text: true,
            verify: true,
            native: false,
        }
    }
    fn helpers(self) -> Checks {
        Checks {
            ir_text: false,
            ..self
        }
    }
}

/// A function declared and built, not yet compiled.
pub struct BuiltFn {
    pub id: FuncId,
    name: String,
    ctx: cranelift_codegen::Context,
}

/// Declare and build one function of a module. `body` receives the builder positioned in the
/// entry block (sealed) and its parameters, and ends the function; the Cranelift verifier runs
/// on it when `out.verify`. Returns it with its IR text when `out.ir_text`.
fn build_fn<M: Module>(
    m: &mut M,
    name: &str,
    linkage: Linkage,
    sig: Signature,
    out: Checks,
    body: impl FnOnce(&mut M, &mut FunctionBuilder, &[Value]) -> Result<(), String>,
) -> Result<(BuiltFn, String), String> {
    let id = m
        .declare_function(name, linkage, &sig)
        .map_err(|e| e.to_string())?;
    let mut ctx = m.make_context();
    ctx.func.signature = sig;
    ctx.func.name = ir::UserFuncName::user(0, id.as_u32());
    let mut fbc = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fbc);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let p = b.block_params(entry).to_vec();
        body(m, &mut b, &p)?;
        b.finalize(m.target_config());
    }
    let clif = if out.ir_text {
        ctx.func.display().to_string()
    } else {
        String::new()
    };
    if out.verify {
        cranelift_codegen::verify_function(&ctx.func, m.isa())
            .map_err(|e| format!("`{name}` fails the Cranelift verifier: {e}"))?;
    }
    let name = name.to_string();
    Ok((BuiltFn { id, name, ctx }, clif))
}

/// Compile built functions into a module, several at once on `rayon`'s pool (largest first),
/// and define them in the order given. The machine code does not depend on the thread count.
pub fn compile_fns<M: Module>(m: &mut M, fns: Vec<BuiltFn>) -> Result<(), String> {
    use rayon::prelude::*;
    let isa = m.isa();
    // A function's code, alignment and relocations.
    type Code = (FuncId, String, u64, Vec<u8>, Vec<ModuleReloc>);
    let compile = |(i, mut f): (usize, BuiltFn)| -> (usize, Result<Code, String>) {
        let mut plane = cranelift_codegen::control::ControlPlane::default();
        let code = match f.ctx.compile(isa, &mut plane) {
            Ok(_) => {
                let code = f.ctx.compiled_code().expect("just compiled");
                let align = (code.buffer.alignment as u64)
                    .max(isa.function_alignment().minimum as u64)
                    .max(isa.symbol_alignment());
                let relocs = code
                    .buffer
                    .relocs()
                    .iter()
                    .map(|r| ModuleReloc::from_mach_reloc(r, &f.ctx.func, f.id))
                    .collect();
                Ok((f.id, f.name, align, code.code_buffer().to_vec(), relocs))
            }
            Err(e) => Err(format!("`{}`: {:?}", f.name, e.inner)),
        };
        (i, code)
    };
    let mut jobs: Vec<(usize, BuiltFn)> = fns.into_iter().enumerate().collect();
    let mut codes: Vec<(usize, Result<Code, String>)> = if jobs.len() <= 1 {
        jobs.into_iter().map(compile).collect()
    } else {
        // Largest first, each worker taking the next function when it is free (`par_bridge`
        // hands out the items in order): a plan's time is its largest function's, not that
        // function queued behind others. Splitting the list in halves, as `into_par_iter`
        // does, can put the two largest on one thread.
        jobs.sort_by_key(|(_, f)| std::cmp::Reverse(f.ctx.func.dfg.num_insts()));
        jobs.into_iter().par_bridge().map(compile).collect()
    };
    codes.sort_by_key(|(i, _)| *i);
    for (_, c) in codes {
        let (id, name, align, bytes, relocs) = c?;
        m.define_function_bytes(id, align, &bytes, &relocs)
            .map_err(|e| format!("`{name}`: {e:?}"))?;
    }
    Ok(())
}

/// Declare, build and compile one function (`build_fn`, then `compile_fns`).
fn define_fn<M: Module>(
    m: &mut M,
    name: &str,
    linkage: Linkage,
    sig: Signature,
    out: Checks,
    body: impl FnOnce(&mut M, &mut FunctionBuilder, &[Value]) -> Result<(), String>,
) -> Result<(FuncId, String), String> {
    let (f, clif) = build_fn(m, name, linkage, sig, out, body)?;
    let id = f.id;
    compile_fns(m, vec![f])?;
    Ok((id, clif))
}

/// Define four-lane versions of the f32 C math functions (`diffc_expf_x4`, …): a kernel's
/// vector loop calls one of them where it would otherwise call the scalar function four times.
pub fn define_libm4<M: Module>(
    m: &mut M,
    libm: &HashMap<Libm, FuncId>,
    checks: Checks,
) -> Result<HashMap<Libm, FuncId>, String> {
    let mut out = HashMap::new();
    for l in Libm::ALL {
        if l.ty() != Ty::F32 {
            continue;
        }
        let mut sig = m.make_signature();
        for _ in 0..l.arity() {
            sig.params.push(AbiParam::new(types::F32X4));
        }
        sig.returns.push(AbiParam::new(types::F32X4));
        let name = format!("diffc_{}_x4", l.symbol());
        let scalar = libm[&l];
        let (id, _) = define_fn(
            m,
            &name,
            Linkage::Local,
            sig,
            checks.helpers(),
            |m, b, p| {
                let f = m.declare_func_in_func(scalar, b.func);
                let mut acc = p[0];
                for lane in 0..LANES as u8 {
                    let args: Vec<Value> =
                        p.iter().map(|x| b.ins().extractlane(*x, lane)).collect();
                    let call = b.ins().call(f, &args);
                    let r = b.inst_results(call)[0];
                    acc = b.ins().insertlane(acc, r, lane);
                }
                b.ins().return_(&[acc]);
                Ok(())
            },
        )?;
        out.insert(l, id);
    }
    Ok(out)
}

/// Build a kernel's function (`compile_fns` compiles it); returns it and its Cranelift IR text.
pub fn build<M: Module>(
    m: &mut M,
    k: &Kernel,
    libm: &HashMap<Libm, FuncId>,
    libm4: &HashMap<Libm, FuncId>,
    rng: Rng,
    symbol: &str,
    checks: Checks,
) -> Result<(BuiltFn, String), String> {
    let sig = signature(m);
    build_fn(m, symbol, Linkage::Export, sig, checks, |m, b, p| {
        let mut refs = HashMap::new();
        let mut refs4 = HashMap::new();
        // In a fixed order, so that the IR text is stable.
        for l in Libm::ALL {
            if uses_libm(k, l) {
                refs.insert(l, m.declare_func_in_func(libm[&l], b.func));
                if let Some(f4) = libm4.get(&l) {
                    refs4.insert(l, m.declare_func_in_func(*f4, b.func));
                }
            }
        }
        let fills = draw_fills(k);
        let fill_refs = declare_pair(m, b, !fills.is_empty(), rng.fills, k, "fill")?;
        let lanes = declare_pair(m, b, draws_by_index(k), rng.lanes, k, "four-lane")?;
        let rng = RngRefs {
            one: (
                m.declare_func_in_func(rng.normal, b.func),
                m.declare_func_in_func(rng.uniform, b.func),
            ),
            fills: fill_refs,
            lanes,
        };
        Gen::emit(b, k, refs, refs4, rng, &fills, p);
        Ok(())
    })
}

/// A pair of the generator's helpers (normal, uniform) declared in a kernel's function, if the
/// kernel `needs` them; an error if it does but the module lacks them.
fn declare_pair<M: Module>(
    m: &mut M,
    b: &mut FunctionBuilder,
    needs: bool,
    ids: Option<(FuncId, FuncId)>,
    k: &Kernel,
    what: &str,
) -> Result<Option<(FuncRef, FuncRef)>, String> {
    match (needs, ids) {
        (false, _) => Ok(None),
        (true, Some((n, u))) => Ok(Some((
            m.declare_func_in_func(n, b.func),
            m.declare_func_in_func(u, b.func),
        ))),
        (true, None) => Err(format!(
            "kernel `{}` needs the generator's {what} helpers, but the module has none",
            k.name
        )),
    }
}

/// The draws a kernel's vector loop takes from buffers filled ahead, a chunk at a time:
/// `(site, normal?)` of each draw at the element's own flat index, in order of appearance.
fn draw_fills(k: &Kernel) -> Vec<(u32, bool)> {
    let flat = k.flat_values();
    let mut out = Vec::new();
    for s in &k.body {
        let f = match &s.inst {
            Inst::Normal { site, index } if flat.contains(index) => (*site, true),
            Inst::Uniform { site, index } if flat.contains(index) => (*site, false),
            _ => continue,
        };
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

fn uses_libm(k: &Kernel, l: Libm) -> bool {
    let mut hit = false;
    k.walk(&mut |s| {
        if let Inst::Call(x, _) = &s.inst {
            hit |= *x == l;
        }
    });
    hit
}

const LANES: usize = 4;

/// How a kernel value is held while its code is emitted.
#[derive(Clone, Debug)]
enum Rep {
    /// One scalar, the same in every lane.
    S(Value),
    /// A 128-bit vector, one lane per element.
    Vec(Value),
    /// One scalar per lane.
    Lanes(Vec<Value>),
}

/// The generator's helpers as a kernel function calls them: the one-element ones (normal,
/// uniform), and the fill and four-lane ones where the kernel uses them.
struct RngRefs {
    one: (FuncRef, FuncRef),
    fills: Option<(FuncRef, FuncRef)>,
    lanes: Option<(FuncRef, FuncRef)>,
}

struct Gen<'a, 'b> {
    b: &'a mut FunctionBuilder<'b>,
    k: &'a Kernel,
    env: Vec<Option<Rep>>,
    tys: Vec<Ty>,
    insts: Vec<Option<&'a Inst>>,
    invariant: Vec<bool>,
    libm: HashMap<Libm, FuncRef>,
    libm4: HashMap<Libm, FuncRef>,
    rng: (FuncRef, FuncRef),
    /// The four-lane helpers (`Rng::lanes`), for draws at computed indices in the vector loop.
    rng4: Option<(FuncRef, FuncRef)>,
    bufs: Vec<Value>,
    coefs: Value,
    sizes: Value,
    per: Value,
    keys: Vec<(Value, Value)>,
    step: Value,
    offset: Value,
    status: Variable,
    /// The first flat index of the elements being computed.
    i: Value,
    lanes: usize,
    /// Draws filled ahead: the buffer of each `(site, normal?)`, and the flat index of its
    /// first element in the current chunk.
    filled: HashMap<(u32, bool), Value>,
    fill_base: Option<Value>,
    /// Values of the current loop body already splatted or packed into a vector: each is
    /// converted once, where it is first used as a vector.
    packed: HashMap<V, Value>,
}

fn vty(t: Ty) -> Type {
    match t {
        Ty::F32 => types::F32X4,
        _ => types::I32X4,
    }
}

fn sty(t: Ty) -> Type {
    match t {
        Ty::F32 => types::F32,
        Ty::F64 => types::F64,
        Ty::I32 => types::I32,
        Ty::I64 => types::I64,
        Ty::Bool => types::I8,
    }
}

fn flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

impl<'a, 'b> Gen<'a, 'b> {
    fn emit(
        b: &'a mut FunctionBuilder<'b>,
        k: &'a Kernel,
        libm: HashMap<Libm, FuncRef>,
        libm4: HashMap<Libm, FuncRef>,
        rng: RngRefs,
        fills: &[(u32, bool)],
        p: &[Value],
    ) {
        let RngRefs {
            one: rng,
            fills: fill_refs,
            lanes: rng4,
        } = rng;
        // The buffer table's type is the pointer type.
        let ptr = b.func.dfg.value_type(p[0]);
        let n = k.values as usize;
        let mut tys = vec![Ty::I64; n];
        let mut insts: Vec<Option<&Inst>> = vec![None; n];
        k.walk(&mut |s| {
            tys[s.id.0 as usize] = s.ty;
        });
        fn collect<'k>(body: &'k [Stmt], insts: &mut Vec<Option<&'k Inst>>) {
            for s in body {
                insts[s.id.0 as usize] = Some(&s.inst);
                if let Inst::Loop { body, .. } = &s.inst {
                    collect(body, insts);
                }
            }
        }
        collect(&k.body, &mut insts);
        // Statements the same for every element.
        let mut invariant = vec![false; n];
        for s in &k.body {
            invariant[s.id.0 as usize] = match &s.inst {
                Inst::F32(_)
                | Inst::F64(_)
                | Inst::I32(_)
                | Inst::I64(_)
                | Inst::Bool(_)
                | Inst::Coef(_)
                | Inst::Size(_) => true,
                Inst::Un(..)
                | Inst::Bin(..)
                | Inst::Cmp(..)
                | Inst::Select(..)
                | Inst::Call(..) => operands(&s.inst).iter().all(|o| invariant[o.0 as usize]),
                _ => false,
            };
        }

        let (bufs_p, coefs, sizes, start, end, seed, step, offset, status_p) =
            (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]);
        let bufs = (0..k.bufs.len())
            .map(|j| b.ins().load(ptr, flags(), bufs_p, (8 * j) as i32))
            .collect();
        let status = b.declare_var(types::I32);
        let zero32 = b.ins().iconst(types::I32, 0);
        b.def_var(status, zero32);
        // The element count per sample.
        let mut per = b.ins().iconst(types::I64, 1);
        for d in &k.domain {
            let s = b.ins().load(types::I64, flags(), sizes, (8 * d) as i32);
            per = b.ins().imul(per, s);
        }
        // Philox round keys and the counter's step word.
        let mut k0 = b.ins().ireduce(types::I32, seed);
        let hi = b.ins().ushr_imm_u(seed, 32);
        let mut k1 = b.ins().ireduce(types::I32, hi);
        let mut keys = vec![(k0, k1)];
        for _ in 1..10 {
            k0 = b.ins().iadd_imm_u(k0, rng::PHILOX_W0 as i64);
            k1 = b.ins().iadd_imm_u(k1, rng::PHILOX_W1 as i64);
            keys.push((k0, k1));
        }
        let step = b.ins().ireduce(types::I32, step);

        let mut g = Gen {
            b,
            k,
            env: vec![None; n],
            tys,
            insts,
            invariant,
            libm,
            libm4,
            rng,
            rng4,
            bufs,
            coefs,
            sizes,
            per,
            keys,
            step,
            offset,
            status,
            i: start,
            lanes: 1,
            filled: HashMap::new(),
            packed: HashMap::new(),
            fill_base: None,
        };
        for f in fills {
            let slot = g.b.create_sized_stack_slot(ir::StackSlotData::new(
                ir::StackSlotKind::ExplicitSlot,
                (4 * DRAW_BUF) as u32,
                4,
            ));
            let addr = g.b.ins().stack_addr(ptr, slot, 0);
            g.filled.insert(*f, addr);
        }
        for s in &k.body {
            if g.invariant[s.id.0 as usize] {
                let v = g.scalar(s, 0);
                g.env[s.id.0 as usize] = Some(Rep::S(v));
            }
        }

        // The vector loop: while i + 4 <= end. A kernel whose statements mostly run lane by
        // lane gains nothing from it and gets the scalar loop alone (half the code to compile).
        let ivar = g.b.declare_var(types::I64);
        g.b.def_var(ivar, start);
        let vhead = g.b.create_block();
        let vbody = g.b.create_block();
        let shead = g.b.create_block();
        let sbody = g.b.create_block();
        let exit = g.b.create_block();
        if g.mostly_per_lane(fills) {
            g.b.ins().jump(shead, &[]);
        } else {
            g.b.ins().jump(vhead, &[]);
            g.b.switch_to_block(vhead);
            let i = g.b.use_var(ivar);
            let i4 = g.b.ins().iadd_imm_s(i, LANES as i64);
            let fits = g.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, i4, end);
            if let Some((fill_n, fill_u)) = fill_refs {
                // Chunks of up to DRAW_CHUNK elements: fill each draw's buffer, then the vector
                // loop over the chunk reads its draws from there.
                let chunk = g.b.create_block();
                let ihead = g.b.create_block();
                g.b.ins().brif(fits, chunk, &[], shead, &[]);
                g.b.switch_to_block(chunk);
                g.b.seal_block(chunk);
                let rem = g.b.ins().isub(end, i);
                let rem4 = g.b.ins().band_imm_u(rem, !3i64);
                let cap = g.b.ins().iconst(types::I64, DRAW_CHUNK as i64);
                let n4 = g.b.ins().umin(rem4, cap);
                let cend = g.b.ins().iadd(i, n4);
                let first = g.b.ins().iadd(i, g.offset);
                let block0 = g.b.ins().ushr_imm_u(first, 2);
                let skip = g.b.ins().band_imm_u(first, 3);
                let span = g.b.ins().iadd(skip, n4);
                let span = g.b.ins().iadd_imm_s(span, 3);
                let blocks = g.b.ins().ushr_imm_u(span, 2);
                let (k0, k1) = g.keys[0];
                for f in fills {
                    let site = g.b.ins().iconst(types::I32, f.0 as i64);
                    let fr = if f.1 { fill_n } else { fill_u };
                    let addr = g.filled[f];
                    g.b.ins()
                        .call(fr, &[k0, k1, g.step, site, block0, blocks, addr]);
                }
                let base = g.b.ins().isub(i, skip);
                g.b.ins().jump(ihead, &[]);
                g.b.switch_to_block(ihead);
                let i = g.b.use_var(ivar);
                let more = g.b.ins().icmp(IntCC::UnsignedLessThan, i, cend);
                g.b.ins().brif(more, vbody, &[], vhead, &[]);
                g.b.switch_to_block(vbody);
                g.b.seal_block(vbody);
                g.i = i;
                g.lanes = LANES;
                g.fill_base = Some(base);
                g.body();
                g.fill_base = None;
                let next = g.b.ins().iadd_imm_s(i, LANES as i64);
                g.b.def_var(ivar, next);
                g.b.ins().jump(ihead, &[]);
                g.b.seal_block(ihead);
                g.b.seal_block(vhead);
            } else {
                g.b.ins().brif(fits, vbody, &[], shead, &[]);
                g.b.switch_to_block(vbody);
                g.b.seal_block(vbody);
                g.i = i;
                g.lanes = LANES;
                g.body();
                let next = g.b.ins().iadd_imm_s(i, LANES as i64);
                g.b.def_var(ivar, next);
                g.b.ins().jump(vhead, &[]);
                g.b.seal_block(vhead);
            }
        }

        // The scalar loop for the rest.
        g.b.switch_to_block(shead);
        g.b.seal_block(shead);
        let shead2 = g.b.create_block();
        g.b.ins().jump(shead2, &[]);
        g.b.switch_to_block(shead2);
        let i = g.b.use_var(ivar);
        let more = g.b.ins().icmp(IntCC::UnsignedLessThan, i, end);
        g.b.ins().brif(more, sbody, &[], exit, &[]);
        g.b.switch_to_block(sbody);
        g.b.seal_block(sbody);
        g.i = i;
        g.lanes = 1;
        g.body();
        let next = g.b.ins().iadd_imm_s(i, 1);
        g.b.def_var(ivar, next);
        g.b.ins().jump(shead2, &[]);
        g.b.seal_block(shead2);

        g.b.switch_to_block(exit);
        g.b.seal_block(exit);
        let st = g.b.use_var(g.status);
        let old = g.b.ins().load(types::I32, flags(), status_p, 0);
        let new = g.b.ins().bor(old, st);
        g.b.ins().store(flags(), new, status_p, 0);
        g.b.ins().return_(&[]);
    }

    /// The per-element statements, for `self.lanes` elements from `self.i`.
    fn body(&mut self) {
        for (j, e) in self.env.iter_mut().enumerate() {
            if !self.invariant[j] {
                *e = None;
            }
        }
        self.packed.clear();
        for s in &self.k.body {
            if self.invariant[s.id.0 as usize] {
                continue;
            }
            let r = if self.lanes == 1 {
                Rep::S(self.scalar(s, 0))
            } else {
                self.vector(s)
            };
            self.env[s.id.0 as usize] = Some(r);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Representations
    // -----------------------------------------------------------------------------------------

    fn rep(&self, v: V) -> Rep {
        self.env[v.0 as usize]
            .clone()
            .unwrap_or_else(|| panic!("kernel value {v} used before it is defined"))
    }

    /// Lane `l` of a value as a scalar.
    fn lane(&mut self, v: V, l: usize) -> Value {
        match self.rep(v) {
            Rep::S(x) => x,
            Rep::Lanes(xs) => xs[l],
            Rep::Vec(x) => {
                let e = self.b.ins().extractlane(x, l as u8);
                if self.tys[v.0 as usize] == Ty::Bool {
                    self.b.ins().icmp_imm_u(IntCC::NotEqual, e, 0)
                } else {
                    e
                }
            }
        }
    }

    /// A scalar bool (0 or 1) as a vector lane mask (0 or all ones).
    fn mask_of(&mut self, x: Value) -> Value {
        let w = self.b.ins().uextend(types::I32, x);
        self.b.ins().ineg(w)
    }

    /// A value as a vector.
    fn vec(&mut self, v: V) -> Value {
        if let Some(x) = self.packed.get(&v) {
            return *x;
        }
        let ty = self.tys[v.0 as usize];
        let x = match self.rep(v) {
            Rep::Vec(x) => return x,
            Rep::S(x) => {
                let x = if ty == Ty::Bool { self.mask_of(x) } else { x };
                self.b.ins().splat(vty(ty), x)
            }
            Rep::Lanes(xs) => {
                let xs: Vec<Value> = if ty == Ty::Bool {
                    xs.iter().map(|x| self.mask_of(*x)).collect()
                } else {
                    xs
                };
                let mut out = self.b.ins().splat(vty(ty), xs[0]);
                for (l, x) in xs.iter().enumerate().skip(1) {
                    out = self.b.ins().insertlane(out, *x, l as u8);
                }
                out
            }
        };
        self.packed.insert(v, x);
        x
    }

    fn is_flat(&self, v: V) -> bool {
        matches!(self.insts[v.0 as usize], Some(Inst::Flat))
    }

    /// Would most of the per-element statements run lane by lane in the vector loop?
    fn mostly_per_lane(&self, fills: &[(u32, bool)]) -> bool {
        let (mut lanes, mut all) = (0, 0);
        let mut per_lane = vec![false; self.k.values as usize];
        for s in &self.k.body {
            if self.invariant[s.id.0 as usize] || matches!(s.inst, Inst::Flat) {
                continue;
            }
            all += 1;
            let filled = match &s.inst {
                Inst::Normal { site, index } => {
                    self.is_flat(*index) && fills.contains(&(*site, true))
                }
                Inst::Uniform { site, index } => {
                    self.is_flat(*index) && fills.contains(&(*site, false))
                }
                _ => false,
            };
            // A statement runs lane by lane if it cannot run on vectors, and costs as much if
            // its operands come lane by lane (they are packed into a vector first).
            // (A C math call is worth packing for: one four-lane call replaces four.)
            // (So is a draw's index: the four-lane helpers take the lanes as they are.)
            let packed = !matches!(
                s.inst,
                Inst::Call(..) | Inst::Normal { .. } | Inst::Uniform { .. }
            ) && operands(&s.inst).iter().any(|o| per_lane[o.0 as usize]);
            if !filled && (!self.vectorizable(s) || packed) {
                per_lane[s.id.0 as usize] = !self.vectorizable(s);
                lanes += 1;
            }
        }
        2 * lanes > all
    }

    /// Can this statement run on vectors?
    fn vectorizable(&self, s: &Stmt) -> bool {
        let vt = |t: Ty| matches!(t, Ty::F32 | Ty::I32 | Ty::Bool);
        match &s.inst {
            Inst::Load { buf, index, .. } => {
                let b = &self.k.bufs[*buf as usize];
                self.is_flat(*index) && b.width == 1 && b.store != Store::U8
            }
            Inst::Store { buf, index, .. } => {
                let b = &self.k.bufs[*buf as usize];
                self.is_flat(*index) && b.width == 1 && b.store != Store::U8
            }
            Inst::Un(op, a) => {
                let ta = self.tys[a.0 as usize];
                match op {
                    Un::Neg | Un::Abs | Un::Sqrt | Un::Floor => ta == Ty::F32,
                    Un::Not => ta == Ty::Bool,
                    Un::BoolToF32 => true,
                    Un::ToI32 => ta == Ty::F32,
                    Un::I32ToF32 => ta == Ty::I32,
                    _ => false,
                }
            }
            Inst::Bin(op, a, _) => {
                let ta = self.tys[a.0 as usize];
                match ta {
                    Ty::F32 => matches!(
                        op,
                        Bin::Add | Bin::Sub | Bin::Mul | Bin::Div | Bin::Min | Bin::Max
                    ),
                    Ty::Bool => matches!(op, Bin::And | Bin::Or),
                    Ty::I32 => matches!(op, Bin::Add | Bin::Sub),
                    _ => false,
                }
            }
            Inst::Cmp(_, a, _) => matches!(self.tys[a.0 as usize], Ty::F32 | Ty::I32),
            Inst::Select(..) => vt(s.ty),
            Inst::Fail(..) => true,
            Inst::Call(l, _) => self.libm4.contains_key(l),
            Inst::Normal { .. } | Inst::Uniform { .. } => self.rng4.is_some(),
            _ => false,
        }
    }

    /// One statement over four lanes.
    fn vector(&mut self, s: &Stmt) -> Rep {
        if let (Inst::Normal { site, index } | Inst::Uniform { site, index }, Some(base)) =
            (&s.inst, self.fill_base)
        {
            let key = (*site, matches!(s.inst, Inst::Normal { .. }));
            if let (true, Some(buf)) = (self.is_flat(*index), self.filled.get(&key).copied()) {
                let at = self.b.ins().isub(self.i, base);
                let off = self.b.ins().imul_imm_s(at, 4);
                let addr = self.b.ins().iadd(buf, off);
                let x = self
                    .b
                    .ins()
                    .load(types::F32X4, MemFlagsData::new().with_notrap(), addr, 0);
                return Rep::Vec(x);
            }
        }
        if let (Inst::Normal { site, index } | Inst::Uniform { site, index }, Some((n4, u4))) =
            (&s.inst, self.rng4)
        {
            let f = if matches!(s.inst, Inst::Normal { .. }) {
                n4
            } else {
                u4
            };
            let (k0, k1) = self.keys[0];
            let site = self.b.ins().iconst(types::I32, *site as i64);
            let mut args = vec![k0, k1, self.step, site];
            for l in 0..LANES {
                let idx = self.lane(*index, l);
                args.push(self.b.ins().iadd(idx, self.offset));
            }
            let call = self.b.ins().call(f, &args);
            return Rep::Vec(self.b.inst_results(call)[0]);
        }
        let ops = operands(&s.inst);
        // Statements whose operands are all the same in every lane stay scalar (a load at a
        // per-sample index is not: its index differs per lane unless it is invariant).
        let uniform = !matches!(
            s.inst,
            Inst::Flat
                | Inst::Sample
                | Inst::Elem
                | Inst::Normal { .. }
                | Inst::Uniform { .. }
                | Inst::Store { .. }
                | Inst::Fail(..)
                | Inst::Loop { .. }
        ) && ops
            .iter()
            .all(|o| matches!(self.env[o.0 as usize], Some(Rep::S(_))));
        if uniform {
            return Rep::S(self.scalar(s, 0));
        }
        if !self.vectorizable(s) {
            let xs = (0..LANES).map(|l| self.scalar(s, l)).collect();
            return Rep::Lanes(xs);
        }
        let ty = s.ty;
        match &s.inst {
            Inst::Load { buf, comp, .. } => {
                let bb = &self.k.bufs[*buf as usize];
                let bytes = bb.store.bytes() as i64;
                let _ = comp;
                let off = self.b.ins().imul_imm_s(self.i, bytes);
                let addr = self.b.ins().iadd(self.bufs[*buf as usize], off);
                Rep::Vec(self.b.ins().load(vty(ty), flags(), addr, 0))
            }
            Inst::Store { buf, value, .. } => {
                let bb = &self.k.bufs[*buf as usize];
                let bytes = bb.store.bytes() as i64;
                let x = self.vec(*value);
                let off = self.b.ins().imul_imm_s(self.i, bytes);
                let addr = self.b.ins().iadd(self.bufs[*buf as usize], off);
                self.b.ins().store(flags(), x, addr, 0);
                if self.checks_finite(*buf) {
                    // x - x is NaN exactly where x is NaN or infinite.
                    let d = self.b.ins().fsub(x, x);
                    let bad = self.b.ins().fcmp(FloatCC::Unordered, d, d);
                    let any = self.b.ins().vany_true(bad);
                    self.raise(any, FAIL_NONFINITE);
                }
                Rep::S(x)
            }
            Inst::Un(op, a) => {
                let x = self.vec(*a);
                Rep::Vec(match op {
                    Un::Neg => self.b.ins().fneg(x),
                    Un::Abs => self.b.ins().fabs(x),
                    Un::Sqrt => self.b.ins().sqrt(x),
                    Un::Floor => self.b.ins().floor(x),
                    Un::Not => self.b.ins().bnot(x),
                    Un::ToI32 => self.b.ins().fcvt_to_uint_sat(types::I32X4, x),
                    Un::I32ToF32 => self.b.ins().fcvt_from_uint(types::F32X4, x),
                    Un::BoolToF32 => {
                        let x = if self.tys[a.0 as usize] == Ty::Bool {
                            x
                        } else {
                            return Rep::Lanes((0..LANES).map(|l| self.scalar(s, l)).collect());
                        };
                        let one = self.b.ins().f32const(1.0);
                        let one = self.b.ins().splat(types::F32X4, one);
                        let one_i = self.b.ins().bitcast(types::I32X4, MemFlagsData::new(), one);
                        let r = self.b.ins().band(x, one_i);
                        self.b.ins().bitcast(types::F32X4, MemFlagsData::new(), r)
                    }
                    _ => unreachable!(),
                })
            }
            Inst::Bin(op, a, c) => {
                let (x, y) = (self.vec(*a), self.vec(*c));
                Rep::Vec(match op {
                    Bin::Add if ty == Ty::F32 => self.b.ins().fadd(x, y),
                    Bin::Sub if ty == Ty::F32 => self.b.ins().fsub(x, y),
                    Bin::Add => self.b.ins().iadd(x, y),
                    Bin::Sub => self.b.ins().isub(x, y),
                    Bin::Mul => self.b.ins().fmul(x, y),
                    Bin::Div => self.b.ins().fdiv(x, y),
                    Bin::Min | Bin::Max => self.minmax_v(*op, x, y),
                    Bin::And => self.b.ins().band(x, y),
                    Bin::Or => self.b.ins().bor(x, y),
                    _ => unreachable!(),
                })
            }
            Inst::Cmp(op, a, c) => {
                let (x, y) = (self.vec(*a), self.vec(*c));
                Rep::Vec(if self.tys[a.0 as usize] == Ty::F32 {
                    self.b.ins().fcmp(fcc(*op), x, y)
                } else {
                    self.b.ins().icmp(icc(*op), x, y)
                })
            }
            Inst::Select(c, a, d) => {
                let m = self.vec(*c);
                let (x, y) = (self.vec(*a), self.vec(*d));
                Rep::Vec(if ty == Ty::F32 {
                    let m = self.b.ins().bitcast(types::F32X4, MemFlagsData::new(), m);
                    self.b.ins().bitselect(m, x, y)
                } else {
                    self.b.ins().bitselect(m, x, y)
                })
            }
            Inst::Call(l, args) => {
                let xs: Vec<Value> = args.iter().map(|a| self.vec(*a)).collect();
                let f = self.libm4[l];
                let call = self.b.ins().call(f, &xs);
                Rep::Vec(self.b.inst_results(call)[0])
            }
            Inst::Fail(c, bits) => {
                let m = self.vec(*c);
                let any = self.b.ins().vany_true(m);
                self.raise(any, *bits);
                Rep::S(any)
            }
            _ => unreachable!(),
        }
    }

    /// Does a store to this buffer check that its values are finite (a sampler's real field)?
    fn checks_finite(&self, buf: u32) -> bool {
        let b = &self.k.bufs[buf as usize];
        b.store == Store::F32 && matches!(b.src, BufSrc::Out(Target::Field(_)))
    }

    fn raise(&mut self, cond: Value, bits: u32) {
        let on = self.b.ins().iconst(types::I32, bits as i64);
        let off = self.b.ins().iconst(types::I32, 0);
        let x = self.b.ins().select(cond, on, off);
        let st = self.b.use_var(self.status);
        let st = self.b.ins().bor(st, x);
        self.b.def_var(self.status, st);
    }

    /// `f32::min` / `f32::max` on vectors: a NaN first operand gives the second; equal operands
    /// give the first.
    fn minmax_v(&mut self, op: Bin, x: Value, y: Value) -> Value {
        let take_y = if op == Bin::Max {
            self.b.ins().fcmp(FloatCC::LessThan, x, y)
        } else {
            self.b.ins().fcmp(FloatCC::LessThan, y, x)
        };
        let nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
        let take_y = self.b.ins().bor(take_y, nan);
        let m = self
            .b
            .ins()
            .bitcast(types::F32X4, MemFlagsData::new(), take_y);
        self.b.ins().bitselect(m, y, x)
    }

    // -----------------------------------------------------------------------------------------
    // Scalar code: lane `l` of a statement
    // -----------------------------------------------------------------------------------------

    fn scalar(&mut self, s: &Stmt, l: usize) -> Value {
        let ty = s.ty;
        match &s.inst {
            Inst::F32(x) => self.b.ins().f32const(*x),
            Inst::F64(x) => self.b.ins().f64const(*x),
            Inst::I32(x) => self.b.ins().iconst(types::I32, *x as i64),
            Inst::I64(x) => self.b.ins().iconst(types::I64, *x as i64),
            Inst::Bool(x) => self.b.ins().iconst(types::I8, *x as i64),
            Inst::Coef(i) => self
                .b
                .ins()
                .load(types::F32, flags(), self.coefs, (4 * i) as i32),
            Inst::CoefAt { base, index } => {
                let c = self.lane(*index, l);
                let c = self.b.ins().uextend(types::I64, c);
                let off = self.b.ins().imul_imm_s(c, 4);
                let addr = self.b.ins().iadd(self.coefs, off);
                self.b
                    .ins()
                    .load(types::F32, flags(), addr, (4 * base) as i32)
            }
            Inst::Size(i) => self
                .b
                .ins()
                .load(types::I64, flags(), self.sizes, (8 * i) as i32),
            Inst::Flat => self.b.ins().iadd_imm_s(self.i, l as i64),
            Inst::Sample => {
                let f = self.b.ins().iadd_imm_s(self.i, l as i64);
                self.b.ins().udiv(f, self.per)
            }
            Inst::Elem => {
                let f = self.b.ins().iadd_imm_s(self.i, l as i64);
                self.b.ins().urem(f, self.per)
            }
            Inst::Load { buf, index, comp } => {
                let bb = self.k.bufs[*buf as usize].clone();
                let idx = self.lane(*index, l);
                let addr = self.address(*buf, idx, bb.width, *comp);
                match bb.store {
                    Store::F32 => self.b.ins().load(types::F32, flags(), addr, 0),
                    Store::U32 => self.b.ins().load(types::I32, flags(), addr, 0),
                    Store::U8 => {
                        let x = self.b.ins().load(types::I8, flags(), addr, 0);
                        self.b.ins().icmp_imm_u(IntCC::NotEqual, x, 0)
                    }
                }
            }
            Inst::Store {
                buf,
                index,
                comp,
                value,
            } => {
                let bb = self.k.bufs[*buf as usize].clone();
                let idx = self.lane(*index, l);
                let x = self.lane(*value, l);
                let addr = self.address(*buf, idx, bb.width, *comp);
                self.b.ins().store(flags(), x, addr, 0);
                if self.checks_finite(*buf) {
                    let d = self.b.ins().fsub(x, x);
                    let bad = self.b.ins().fcmp(FloatCC::Unordered, d, d);
                    self.raise(bad, FAIL_NONFINITE);
                }
                x
            }
            Inst::Un(op, a) => {
                let x = self.lane(*a, l);
                match op {
                    Un::Neg => self.b.ins().fneg(x),
                    Un::Not => self.b.ins().bxor_imm_u(x, 1),
                    Un::Abs => self.b.ins().fabs(x),
                    Un::Sqrt => self.b.ins().sqrt(x),
                    Un::Floor => self.b.ins().floor(x),
                    Un::ToI32 => self.b.ins().fcvt_to_uint_sat(types::I32, x),
                    Un::I32ToF32 => self.b.ins().fcvt_from_uint(types::F32, x),
                    Un::BoolToF32 => {
                        let one = self.b.ins().f32const(1.0);
                        let zero = self.b.ins().f32const(0.0);
                        self.b.ins().select(x, one, zero)
                    }
                    Un::F32ToF64 => self.b.ins().fpromote(types::F64, x),
                    Un::F64ToF32 => self.b.ins().fdemote(types::F32, x),
                    Un::I32ToI64 => self.b.ins().uextend(types::I64, x),
                }
            }
            Inst::Bin(op, a, c) => {
                let (x, y) = (self.lane(*a, l), self.lane(*c, l));
                let float = matches!(self.tys[a.0 as usize], Ty::F32 | Ty::F64);
                match op {
                    Bin::Add if float => self.b.ins().fadd(x, y),
                    Bin::Sub if float => self.b.ins().fsub(x, y),
                    Bin::Mul if float => self.b.ins().fmul(x, y),
                    Bin::Div if float => self.b.ins().fdiv(x, y),
                    Bin::Add => self.b.ins().iadd(x, y),
                    Bin::Sub => self.b.ins().isub(x, y),
                    Bin::Mul => self.b.ins().imul(x, y),
                    Bin::Div | Bin::UDiv => self.b.ins().udiv(x, y),
                    Bin::URem => self.b.ins().urem(x, y),
                    Bin::Shr => self.b.ins().ushr(x, y),
                    Bin::BitAnd | Bin::And => self.b.ins().band(x, y),
                    Bin::Or => self.b.ins().bor(x, y),
                    Bin::Min | Bin::Max => {
                        let take_y = if *op == Bin::Max {
                            self.b.ins().fcmp(FloatCC::LessThan, x, y)
                        } else {
                            self.b.ins().fcmp(FloatCC::LessThan, y, x)
                        };
                        let nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
                        let take_y = self.b.ins().bor(take_y, nan);
                        self.b.ins().select(take_y, y, x)
                    }
                }
            }
            Inst::Cmp(op, a, c) => {
                let (x, y) = (self.lane(*a, l), self.lane(*c, l));
                match self.tys[a.0 as usize] {
                    Ty::F32 | Ty::F64 => self.b.ins().fcmp(fcc(*op), x, y),
                    _ => self.b.ins().icmp(icc(*op), x, y),
                }
            }
            Inst::Select(c, a, d) => {
                let (cv, x, y) = (self.lane(*c, l), self.lane(*a, l), self.lane(*d, l));
                self.b.ins().select(cv, x, y)
            }
            Inst::Call(f, args) => {
                let xs: Vec<Value> = args.iter().map(|a| self.lane(*a, l)).collect();
                let fr = self.libm[f];
                let call = self.b.ins().call(fr, &xs);
                self.b.inst_results(call)[0]
            }
            Inst::Normal { site, index } => {
                let idx = self.lane(*index, l);
                self.normal(*site, idx)
            }
            Inst::Uniform { site, index } => {
                let idx = self.lane(*index, l);
                self.uniform(*site, idx)
            }
            Inst::Fail(c, bits) => {
                let cv = self.lane(*c, l);
                self.raise(cv, *bits);
                cv
            }
            Inst::Loop {
                count,
                init,
                index,
                acc,
                body,
                next,
            } => {
                let n = self.lane(*count, l);
                let x0 = self.lane(*init, l);
                let iv = self.b.declare_var(types::I64);
                let av = self.b.declare_var(sty(ty));
                let z = self.b.ins().iconst(types::I64, 0);
                self.b.def_var(iv, z);
                self.b.def_var(av, x0);
                let head = self.b.create_block();
                let blk = self.b.create_block();
                let out = self.b.create_block();
                self.b.ins().jump(head, &[]);
                self.b.switch_to_block(head);
                let j = self.b.use_var(iv);
                let go = self.b.ins().icmp(IntCC::UnsignedLessThan, j, n);
                self.b.ins().brif(go, blk, &[], out, &[]);
                self.b.switch_to_block(blk);
                self.b.seal_block(blk);
                let a = self.b.use_var(av);
                self.env[index.0 as usize] = Some(Rep::S(j));
                self.env[acc.0 as usize] = Some(Rep::S(a));
                for st in body {
                    if matches!(st.inst, Inst::LoopIndex | Inst::LoopAcc) {
                        continue;
                    }
                    let v = self.scalar(st, l);
                    self.env[st.id.0 as usize] = Some(Rep::S(v));
                }
                let nx = self.lane(*next, l);
                self.b.def_var(av, nx);
                let j1 = self.b.ins().iadd_imm_s(j, 1);
                self.b.def_var(iv, j1);
                self.b.ins().jump(head, &[]);
                self.b.seal_block(head);
                self.b.switch_to_block(out);
                self.b.seal_block(out);
                self.b.use_var(av)
            }
            Inst::LoopIndex | Inst::LoopAcc => {
                unreachable!("loop placeholders are bound by the loop")
            }
        }
    }

    fn address(&mut self, buf: u32, idx: Value, width: u32, comp: u32) -> Value {
        let bytes = self.k.bufs[buf as usize].store.bytes() as i64;
        let e = if width == 1 {
            idx
        } else {
            self.b.ins().imul_imm_s(idx, width as i64)
        };
        let e = if comp == 0 {
            e
        } else {
            self.b.ins().iadd_imm_s(e, comp as i64)
        };
        let off = self.b.ins().imul_imm_s(e, bytes);
        self.b.ins().iadd(self.bufs[buf as usize], off)
    }

    // -----------------------------------------------------------------------------------------
    // The generator: calls to the module's helper functions
    // -----------------------------------------------------------------------------------------

    fn draw(&mut self, f: FuncRef, site: u32, index: Value) -> Value {
        let idx = self.b.ins().iadd(index, self.offset);
        let site = self.b.ins().iconst(types::I32, site as i64);
        let (k0, k1) = self.keys[0];
        let call = self.b.ins().call(f, &[k0, k1, self.step, site, idx]);
        self.b.inst_results(call)[0]
    }

    fn normal(&mut self, site: u32, index: Value) -> Value {
        let f = self.rng.0;
        self.draw(f, site, index)
    }

    fn uniform(&mut self, site: u32, index: Value) -> Value {
        let f = self.rng.1;
        self.draw(f, site, index)
    }
}

/// The generator's helper functions in a module.
#[derive(Clone, Copy, Debug)]
pub struct Rng {
    /// `diffc_rng_normal` and `diffc_rng_uniform`: one element of a draw.
    pub normal: FuncId,
    pub uniform: FuncId,
    /// `diffc_rng_fill_normal` and `diffc_rng_fill_uniform`: whole blocks, four at a time
    /// (defined when some kernel of the module fills draws ahead: `fills_draws`).
    pub fills: Option<(FuncId, FuncId)>,
    /// `diffc_rng_normal_x4` and `diffc_rng_uniform_x4`: the elements at four arbitrary
    /// indices, one Philox block per lane (defined when some kernel of the module draws at
    /// indices other than its flat one: `draws_by_index`).
    pub lanes: Option<(FuncId, FuncId)>,
}

/// What a module's kernels need of the generator beyond the one-element helpers.
#[derive(Clone, Copy, Debug, Default)]
pub struct RngNeeds {
    /// Some kernel fills draws ahead (`fills_draws`).
    pub fills: bool,
    /// Some kernel draws at indices other than its flat one (`draws_by_index`).
    pub lanes: bool,
}

impl RngNeeds {
    /// Everything, for a module whose kernels are not known yet.
    pub fn all() -> RngNeeds {
        RngNeeds {
            fills: true,
            lanes: true,
        }
    }
    /// What these kernels need.
    pub fn of<'k>(ks: impl IntoIterator<Item = &'k Kernel>) -> RngNeeds {
        let mut n = RngNeeds::default();
        for k in ks {
            n.fills |= fills_draws(k);
            n.lanes |= draws_by_index(k);
        }
        n
    }
}

/// Does a kernel fill draws ahead (and so need `Rng::fills`)?
pub fn fills_draws(k: &Kernel) -> bool {
    !draw_fills(k).is_empty()
}

/// Does a kernel draw at an index other than its element's flat one (the upper triangle's
/// index for a symmetric pair, an element's index times its classes plus a class), and so
/// use `Rng::lanes` in its vector loop?
pub fn draws_by_index(k: &Kernel) -> bool {
    let (flat, fills) = (k.flat_values(), draw_fills(k));
    let mut any = false;
    k.walk(&mut |s| {
        let (key, index) = match &s.inst {
            Inst::Normal { site, index } => ((*site, true), index),
            Inst::Uniform { site, index } => ((*site, false), index),
            _ => return,
        };
        any |= !(flat.contains(index) && fills.contains(&key));
    });
    any
}

/// The signature of the generator's helpers: `(key0, key1, step, stream, index) -> f32`.
fn rng_signature(m: &dyn Module) -> Signature {
    let mut sig = m.make_signature();
    for t in [types::I32, types::I32, types::I32, types::I32, types::I64] {
        sig.params.push(AbiParam::new(t));
    }
    sig.returns.push(AbiParam::new(types::F32));
    sig
}

/// Define the generator's helpers in a module: `diffc_rng_normal` and `diffc_rng_uniform`,
/// element `index` of a draw exactly as `rng::normal` and `rng::uniform` compute it, the fill
/// helpers (`define_fills`) and the four-lane helpers (`define_rng4`) as `needs` says.
pub fn define_rng<M: Module>(m: &mut M, needs: RngNeeds, checks: Checks) -> Result<Rng, String> {
    let checks = checks.helpers();
    let (normal, uniform) = define_rng1(m, checks)?;
    Ok(Rng {
        normal,
        uniform,
        fills: match (needs.fills, checks.native && super::native::available()) {
            (false, _) => None,
            (true, true) => Some(declare_native_fills(m)?),
            (true, false) => Some(define_fills(m, checks)?),
        },
        lanes: if needs.lanes {
            Some(define_rng4(m, checks)?)
        } else {
            None
        },
    })
}

/// `diffc_rng_normal_x4` and `diffc_rng_uniform_x4`: `(key0, key1, step, stream, i0, i1, i2,
/// i3) -> f32x4`, lane `l` the element at index `il` exactly as the one-element helpers
/// compute it (the same operations on each lane, in the same order), with one Philox block
/// per lane.
fn define_rng4<M: Module>(m: &mut M, checks: Checks) -> Result<(FuncId, FuncId), String> {
    let mut ids = Vec::new();
    for (name, normal) in [
        ("diffc_rng_normal_x4", true),
        ("diffc_rng_uniform_x4", false),
    ] {
        let mut sig = m.make_signature();
        for t in [types::I32; 4].into_iter().chain([types::I64; 4]) {
            sig.params.push(AbiParam::new(t));
        }
        sig.returns.push(AbiParam::new(types::F32X4));
        let (id, _) = define_fn(m, name, Linkage::Local, sig, checks, |_, b, p| {
            let (k0, k1, step, site) = (p[0], p[1], p[2], p[3]);
            // Per lane: counter words 0 and 1 from the block `i / 4`, and the word `i % 4`.
            let (mut c0, mut c1, mut j) = (Vec::new(), Vec::new(), Vec::new());
            for &idx in &p[4..8] {
                let (block, word) = block_and_word(b, idx);
                c0.push(b.ins().ireduce(types::I32, block));
                let hi = b.ins().ushr_imm_u(block, 32);
                c1.push(b.ins().ireduce(types::I32, hi));
                j.push(word);
            }
            let mut pack = |xs: &[Value]| {
                let mut v = b.ins().splat(types::I32X4, xs[0]);
                for (l, x) in xs.iter().enumerate().skip(1) {
                    v = b.ins().insertlane(v, *x, l as u8);
                }
                v
            };
            let (c0, c1, j) = (pack(&c0), pack(&c1), pack(&j));
            let stepv = b.ins().splat(types::I32X4, step);
            let sitev = b.ins().splat(types::I32X4, site);
            let keys = round_keys(b, W::X4, k0, k1);
            let w = philox(b, W::X4, [c0, c1, stepv, sitev], &keys);
            let is = |b: &mut FunctionBuilder, x: Value, k: i64| {
                let kk = W::X4.i(b, k);
                b.ins().icmp(IntCC::Equal, x, kk)
            };
            let z = if normal {
                // rng_normal: the pair (w0, w1) or (w2, w3), then the cosine or the sine.
                let two = W::X4.i(b, 2);
                let hi = b.ins().band(j, two);
                let hi = is(b, hi, 2);
                let wa = W::X4.sel(b, hi, w[2], w[0]);
                let wb = W::X4.sel(b, hi, w[3], w[1]);
                let u0 = uniform_open(b, W::X4, wa);
                let u1 = uniform_open(b, W::X4, wb);
                let lg = log_unit(b, W::X4, u0);
                let m2 = W::X4.f(b, -2.0);
                let t = b.ins().fmul(m2, lg);
                let r = b.ins().sqrt(t);
                let (s, c) = sincos(b, W::X4, u1);
                let zs = b.ins().fmul(r, s);
                let zc = b.ins().fmul(r, c);
                let one = W::X4.i(b, 1);
                let odd = b.ins().band(j, one);
                let odd = is(b, odd, 1);
                W::X4.sel(b, odd, zs, zc)
            } else {
                // rng_uniform: word j of the block.
                let (is1, is2, is3) = (is(b, j, 1), is(b, j, 2), is(b, j, 3));
                let x = W::X4.sel(b, is3, w[3], w[0]);
                let x = W::X4.sel(b, is2, w[2], x);
                let x = W::X4.sel(b, is1, w[1], x);
                uniform_open(b, W::X4, x)
            };
            b.ins().return_(&[z]);
            Ok(())
        })?;
        ids.push(id);
    }
    Ok((ids[0], ids[1]))
}

fn define_rng1<M: Module>(m: &mut M, checks: Checks) -> Result<(FuncId, FuncId), String> {
    let mut ids = Vec::new();
    for (name, normal) in [("diffc_rng_normal", true), ("diffc_rng_uniform", false)] {
        let sig = rng_signature(m);
        let (id, _) = define_fn(m, name, Linkage::Local, sig, checks, |_, b, p| {
            let (k0, k1, step, site, idx) = (p[0], p[1], p[2], p[3], p[4]);
            let z = if normal {
                rng_normal(b, k0, k1, step, site, idx)
            } else {
                rng_uniform(b, k0, k1, step, site, idx)
            };
            b.ins().return_(&[z]);
            Ok(())
        })?;
        ids.push(id);
    }
    Ok((ids[0], ids[1]))
}

/// The generator's arithmetic on one lane (`W::S`) or four (`W::X4`), written once: the
/// one-element helpers and the fill helpers compute the same bits.
#[derive(Clone, Copy, PartialEq)]
enum W {
    S,
    X4,
}

impl W {
    /// An f32 constant (every lane).
    fn f(self, b: &mut FunctionBuilder, x: f32) -> Value {
        match self {
            W::S => b.ins().f32const(x),
            W::X4 => {
                let bytes: Vec<u8> = (0..4).flat_map(|_| x.to_bits().to_le_bytes()).collect();
                let c = b.func.dfg.constants.insert(bytes.into());
                b.ins().vconst(types::F32X4, c)
            }
        }
    }

    /// An i32 constant (every lane). Four lanes are a vector constant, not a `splat`, which
    /// Cranelift's optimizer would fold through `uwiden_low` and so lose the `pmuludq` pattern.
    fn i(self, b: &mut FunctionBuilder, x: i64) -> Value {
        match self {
            W::S => b.ins().iconst(types::I32, x),
            W::X4 => {
                let bytes: Vec<u8> = (0..4).flat_map(|_| (x as u32).to_le_bytes()).collect();
                let c = b.func.dfg.constants.insert(bytes.into());
                b.ins().vconst(types::I32X4, c)
            }
        }
    }

    fn ity(self) -> Type {
        match self {
            W::S => types::I32,
            W::X4 => types::I32X4,
        }
    }

    fn fty(self) -> Type {
        match self {
            W::S => types::F32,
            W::X4 => types::F32X4,
        }
    }

    /// `if c then x else y`, for a comparison's result `c` (a bool, or a lane mask).
    fn sel(self, b: &mut FunctionBuilder, c: Value, x: Value, y: Value) -> Value {
        match self {
            W::S => b.ins().select(c, x, y),
            W::X4 => {
                let ty = b.func.dfg.value_type(x);
                let m = if ty == types::I32X4 {
                    c
                } else {
                    b.ins().bitcast(ty, MemFlagsData::new(), c)
                };
                b.ins().bitselect(m, x, y)
            }
        }
    }

    /// The high 32 bits of the 64-bit products `m * x`.
    fn mulhi(self, b: &mut FunctionBuilder, m: Value, x: Value) -> Value {
        if self == W::S {
            return b.ins().umulhi(m, x);
        }
        // Lanes 0-1 and 2-3 as i64x2 products (`pmuludq`), then their odd 32-bit halves.
        let le = MemFlagsData::new().with_endianness(ir::Endianness::Little);
        let mut halves = Vec::new();
        for high in [false, true] {
            let (mw, xw) = if high {
                (b.ins().uwiden_high(m), b.ins().uwiden_high(x))
            } else {
                (b.ins().uwiden_low(m), b.ins().uwiden_low(x))
            };
            let p = b.ins().imul(mw, xw);
            halves.push(b.ins().bitcast(types::I32X4, le, p));
        }
        shuffle32(b, halves[0], halves[1], [1, 3, 5, 7])
    }
}

/// `rng::philox4x32_10` on counters `c` with the ten round keys `keys` (one block per lane).
fn philox(b: &mut FunctionBuilder, w: W, c: [Value; 4], keys: &[(Value, Value)]) -> [Value; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = c;
    let m0 = w.i(b, rng::PHILOX_M0 as i64);
    let m1 = w.i(b, rng::PHILOX_M1 as i64);
    for &(k0, k1) in keys {
        let hi0 = w.mulhi(b, m0, c0);
        let lo0 = b.ins().imul(m0, c0);
        let hi1 = w.mulhi(b, m1, c2);
        let lo1 = b.ins().imul(m1, c2);
        let x = b.ins().bxor(hi1, c1);
        let n0 = b.ins().bxor(x, k0);
        let y = b.ins().bxor(hi0, c3);
        let n2 = b.ins().bxor(y, k1);
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    [c0, c1, c2, c3]
}

/// The ten Philox round keys from the seed's two words (`w` lanes of each).
fn round_keys(b: &mut FunctionBuilder, w: W, k0: Value, k1: Value) -> Vec<(Value, Value)> {
    let (mut a, mut c) = (k0, k1);
    let mut keys = Vec::new();
    for r in 0..10 {
        if r > 0 {
            a = b.ins().iadd_imm_u(a, rng::PHILOX_W0 as i64);
            c = b.ins().iadd_imm_u(c, rng::PHILOX_W1 as i64);
        }
        keys.push(match w {
            W::S => (a, c),
            W::X4 => (
                b.ins().splat(types::I32X4, a),
                b.ins().splat(types::I32X4, c),
            ),
        });
    }
    keys
}

/// `rng::uniform_open`.
fn uniform_open(b: &mut FunctionBuilder, w: W, x: Value) -> Value {
    let s = b.ins().ushr_imm_u(x, 9);
    // Below 2^23: the signed conversion is exact.
    let f = b.ins().fcvt_from_sint(w.fty(), s);
    let h = w.f(b, 0.5);
    let f = b.ins().fadd(f, h);
    let sc = w.f(b, 1.0 / 8_388_608.0);
    b.ins().fmul(f, sc)
}

/// c[0] + x (c[1] + x (… + x c[n-1])) by Horner's rule from the highest coefficient, as `rng`
/// evaluates its polynomials (`p = p * x + c`, no FMA).
fn horner(b: &mut FunctionBuilder, w: W, c: &[f32], x: Value) -> Value {
    let mut p = w.f(b, c[c.len() - 1]);
    for k in c[..c.len() - 1].iter().rev() {
        let t = b.ins().fmul(p, x);
        let k = w.f(b, *k);
        p = b.ins().fadd(t, k);
    }
    p
}

/// `rng::log_f32` on the uniforms of `uniform_open` (normal numbers in (0, 1), so the
/// special cases of the general function never arise).
fn log_unit(b: &mut FunctionBuilder, w: W, x: Value) -> Value {
    let bits = b.ins().bitcast(w.ity(), MemFlagsData::new(), x);
    let e = b.ins().ushr_imm_u(bits, 23);
    let c127 = w.i(b, 127);
    let e = b.ins().isub(e, c127);
    let mm = w.i(b, 0x007F_FFFF);
    let m = b.ins().band(bits, mm);
    let one_bits = w.i(b, 0x3F80_0000);
    let m = b.ins().bor(m, one_bits);
    // m is a positive i32 here, so the signed comparison is the unsigned one.
    let lim = w.i(b, rng::SQRT2_BITS as i64 - 1);
    let big = b.ins().icmp(IntCC::SignedGreaterThan, m, lim);
    let half = w.i(b, 0x0080_0000);
    let m2 = b.ins().isub(m, half);
    let m = w.sel(b, big, m2, m);
    let one_i = w.i(b, 1);
    let e2 = b.ins().iadd(e, one_i);
    let e = w.sel(b, big, e2, e);
    let mf = b.ins().bitcast(w.fty(), MemFlagsData::new(), m);
    let one = w.f(b, 1.0);
    let f = b.ins().fsub(mf, one);
    let p = horner(b, w, &rng::LOG_P, f);
    let ff = b.ins().fmul(f, f);
    let t = b.ins().fmul(ff, p);
    let ef = b.ins().fcvt_from_sint(w.fty(), e);
    let ln2hi = w.f(b, rng::LN2_HI);
    let ln2lo = w.f(b, rng::LN2_LO);
    let hi = b.ins().fmul(ef, ln2hi);
    let el = b.ins().fmul(ef, ln2lo);
    let tl = b.ins().fadd(t, el);
    let lo = b.ins().fadd(f, tl);
    b.ins().fadd(hi, lo)
}

/// `rng::sincos_2pi_f32`: (sin 2πu, cos 2πu), for u in [0, 1].
fn sincos(b: &mut FunctionBuilder, w: W, u: Value) -> (Value, Value) {
    let four = w.f(b, 4.0);
    let v = b.ins().fmul(u, four);
    // v in [0, 4]: truncation toward zero, as `rng` converts.
    let q = b.ins().fcvt_to_sint_sat(w.ity(), v);
    let qf = b.ins().fcvt_from_sint(w.fty(), q);
    let r = b.ins().fsub(v, qf);
    let half = w.f(b, 0.5);
    let mirror = b.ins().fcmp(FloatCC::GreaterThan, r, half);
    let one = w.f(b, 1.0);
    let rm = b.ins().fsub(one, r);
    let t = w.sel(b, mirror, rm, r);
    let x = b.ins().fmul(t, t);
    let sr = horner(b, w, &rng::SIN_R, x);
    let s1 = w.f(b, rng::SIN_S1);
    let ts = b.ins().fmul(t, s1);
    let tx = b.ins().fmul(t, x);
    let txs = b.ins().fmul(tx, sr);
    let s = b.ins().fadd(ts, txs);
    let cq = horner(b, w, &rng::COS_Q, x);
    let c2 = w.f(b, rng::COS_C2);
    let xc = b.ins().fmul(x, c2);
    let xx = b.ins().fmul(x, x);
    let xxq = b.ins().fmul(xx, cq);
    let inner = b.ins().fadd(xc, xxq);
    let c = b.ins().fadd(one, inner);
    let (s, c) = (w.sel(b, mirror, c, s), w.sel(b, mirror, s, c));
    let ns = b.ins().fneg(s);
    let nc = b.ins().fneg(c);
    let three = w.i(b, 3);
    let q3 = b.ins().band(q, three);
    let mut is = Vec::new();
    for k in 1..4 {
        let kk = w.i(b, k);
        is.push(b.ins().icmp(IntCC::Equal, q3, kk));
    }
    // q 0: (s, c); 1: (c, -s); 2: (-s, -c); 3: (-c, s).
    let so = w.sel(b, is[2], nc, s);
    let so = w.sel(b, is[1], ns, so);
    let so = w.sel(b, is[0], c, so);
    let co = w.sel(b, is[2], s, c);
    let co = w.sel(b, is[1], nc, co);
    let co = w.sel(b, is[0], ns, co);
    (so, co)
}

/// The four words of block `block` of stream `site`.
fn philox_block(
    b: &mut FunctionBuilder,
    k0: Value,
    k1: Value,
    step: Value,
    site: Value,
    block: Value,
) -> [Value; 4] {
    let c0 = b.ins().ireduce(types::I32, block);
    let hi = b.ins().ushr_imm_u(block, 32);
    let c1 = b.ins().ireduce(types::I32, hi);
    let keys = round_keys(b, W::S, k0, k1);
    philox(b, W::S, [c0, c1, step, site], &keys)
}

/// Block `index / 4` and word `index % 4`.
fn block_and_word(b: &mut FunctionBuilder, idx: Value) -> (Value, Value) {
    let block = b.ins().ushr_imm_u(idx, 2);
    let j = b.ins().band_imm_u(idx, 3);
    let j = b.ins().ireduce(types::I32, j);
    (block, j)
}

fn rng_uniform(
    b: &mut FunctionBuilder,
    k0: Value,
    k1: Value,
    step: Value,
    site: Value,
    idx: Value,
) -> Value {
    let (block, j) = block_and_word(b, idx);
    let w = philox_block(b, k0, k1, step, site, block);
    let is1 = b.ins().icmp_imm_u(IntCC::Equal, j, 1);
    let is2 = b.ins().icmp_imm_u(IntCC::Equal, j, 2);
    let is3 = b.ins().icmp_imm_u(IntCC::Equal, j, 3);
    let x = b.ins().select(is3, w[3], w[0]);
    let x = b.ins().select(is2, w[2], x);
    let x = b.ins().select(is1, w[1], x);
    uniform_open(b, W::S, x)
}

/// `rng::normal`: z[i % 4] of the block's Box–Muller pairs.
fn rng_normal(
    b: &mut FunctionBuilder,
    k0: Value,
    k1: Value,
    step: Value,
    site: Value,
    idx: Value,
) -> Value {
    let (block, j) = block_and_word(b, idx);
    let w = philox_block(b, k0, k1, step, site, block);
    let hi = b.ins().band_imm_u(j, 2);
    let odd = b.ins().band_imm_u(j, 1);
    let wa = b.ins().select(hi, w[2], w[0]);
    let wb = b.ins().select(hi, w[3], w[1]);
    let u0 = uniform_open(b, W::S, wa);
    let u1 = uniform_open(b, W::S, wb);
    let lg = log_unit(b, W::S, u0);
    let m2 = b.ins().f32const(-2.0);
    let t = b.ins().fmul(m2, lg);
    let r = b.ins().sqrt(t);
    let (s, c) = sincos(b, W::S, u1);
    let zs = b.ins().fmul(r, s);
    let zc = b.ins().fmul(r, c);
    b.ins().select(odd, zs, zc)
}

fn fcc(c: Cmp) -> FloatCC {
    match c {
        Cmp::Lt => FloatCC::LessThan,
        Cmp::Le => FloatCC::LessThanOrEqual,
        Cmp::Gt => FloatCC::GreaterThan,
        Cmp::Ge => FloatCC::GreaterThanOrEqual,
        Cmp::Eq => FloatCC::Equal,
        Cmp::Ne => FloatCC::NotEqual,
    }
}

fn icc(c: Cmp) -> IntCC {
    match c {
        Cmp::Lt => IntCC::UnsignedLessThan,
        Cmp::Le => IntCC::UnsignedLessThanOrEqual,
        Cmp::Gt => IntCC::UnsignedGreaterThan,
        Cmp::Ge => IntCC::UnsignedGreaterThanOrEqual,
        Cmp::Eq => IntCC::Equal,
        Cmp::Ne => IntCC::NotEqual,
    }
}

// ---------------------------------------------------------------------------------------------
// The generator on vectors: four Philox blocks at once, one per lane
// ---------------------------------------------------------------------------------------------

/// Elements a kernel's vector loop draws ahead at a time, into a buffer on its stack.
pub const DRAW_CHUNK: usize = 256;

/// Floats of such a buffer: a chunk, up to three leading elements of its first block, and the
/// rest of the last group of four blocks.
const DRAW_BUF: usize = DRAW_CHUNK + 3 + 16;

/// The signature of the fill helpers: `(key0, key1, step, stream, block0, blocks, out)`.
fn fill_signature(m: &dyn Module) -> Signature {
    let ptr = m.target_config().pointer_type();
    let mut sig = m.make_signature();
    for t in [
        types::I32,
        types::I32,
        types::I32,
        types::I32,
        types::I64,
        types::I64,
        ptr,
    ] {
        sig.params.push(AbiParam::new(t));
    }
    sig
}

/// Declare the native fills (`super::native`), which the JIT resolves to this process's code.
fn declare_native_fills<M: Module>(m: &mut M) -> Result<(FuncId, FuncId), String> {
    let mut ids = [None; 2];
    for (j, name) in [super::native::FILL_NORMAL, super::native::FILL_UNIFORM]
        .into_iter()
        .enumerate()
    {
        let sig = fill_signature(m);
        let id = m
            .declare_function(name, Linkage::Import, &sig)
            .map_err(|e| format!("cannot declare `{name}`: {e}"))?;
        ids[j] = Some(id);
    }
    Ok((ids[0].unwrap(), ids[1].unwrap()))
}

/// Shuffle the 32-bit lanes of two vectors: lane `l` of the result is lane `sel[l]` of `x`
/// (0–3) or of `y` (4–7).
fn shuffle32(b: &mut FunctionBuilder, x: Value, y: Value, sel: [u8; 4]) -> Value {
    let ty = b.func.dfg.value_type(x);
    let le = MemFlagsData::new().with_endianness(ir::Endianness::Little);
    let xb = b.ins().bitcast(types::I8X16, le, x);
    let yb = b.ins().bitcast(types::I8X16, le, y);
    let bytes: Vec<u8> = sel
        .iter()
        .flat_map(|s| (0..4).map(move |k| 4 * s + k))
        .collect();
    let imm = b.func.dfg.immediates.push(bytes.into());
    let r = b.ins().shuffle(xb, yb, imm);
    b.ins().bitcast(ty, le, r)
}

/// Rows of the 4×4 transpose of `z`: row j holds lane j of each of z[0..4].
fn transpose4(b: &mut FunctionBuilder, z: [Value; 4]) -> [Value; 4] {
    let t0 = shuffle32(b, z[0], z[1], [0, 4, 1, 5]);
    let t1 = shuffle32(b, z[0], z[1], [2, 6, 3, 7]);
    let t2 = shuffle32(b, z[2], z[3], [0, 4, 1, 5]);
    let t3 = shuffle32(b, z[2], z[3], [2, 6, 3, 7]);
    [
        shuffle32(b, t0, t2, [0, 1, 4, 5]),
        shuffle32(b, t0, t2, [2, 3, 6, 7]),
        shuffle32(b, t1, t3, [0, 1, 4, 5]),
        shuffle32(b, t1, t3, [2, 3, 6, 7]),
    ]
}

/// Define `diffc_rng_fill_normal` and `diffc_rng_fill_uniform`: elements
/// `4 block0 .. 4 (block0 + blocks)` of a draw into `out` (rounded up to a multiple of 16
/// elements), exactly as `rng::normal` and `rng::uniform` compute each, four blocks at a time.
fn define_fills<M: Module>(m: &mut M, checks: Checks) -> Result<(FuncId, FuncId), String> {
    let mut ids = Vec::new();
    for (name, normal) in [
        ("diffc_rng_fill_normal", true),
        ("diffc_rng_fill_uniform", false),
    ] {
        let sig = fill_signature(m);
        let (id, _) = define_fn(m, name, Linkage::Local, sig, checks, |_, b, p| {
            let (k0, k1, step, site, block0, blocks, out) =
                (p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
            let keys = round_keys(b, W::X4, k0, k1);
            let stepv = b.ins().splat(types::I32X4, step);
            let sitev = b.ins().splat(types::I32X4, site);
            // Counter words 0 and 1 of blocks block0 + 0..4, carrying into word 1.
            let lo = b.ins().ireduce(types::I32, block0);
            let hi = b.ins().ushr_imm_u(block0, 32);
            let hi = b.ins().ireduce(types::I32, hi);
            let lov = b.ins().splat(types::I32X4, lo);
            let iota = {
                let bytes: Vec<u8> = (0u32..4).flat_map(|l| l.to_le_bytes()).collect();
                let c = b.func.dfg.constants.insert(bytes.into());
                b.ins().vconst(types::I32X4, c)
            };
            let c0 = b.ins().iadd(lov, iota);
            let carry = b.ins().icmp(IntCC::UnsignedLessThan, c0, lov);
            let hiv = b.ins().splat(types::I32X4, hi);
            let c1 = b.ins().isub(hiv, carry);

            let head = b.create_block();
            let body = b.create_block();
            let exit = b.create_block();
            b.append_block_param(head, types::I64); // groups left
            b.append_block_param(head, types::I32X4);
            b.append_block_param(head, types::I32X4);
            let pty = b.func.dfg.value_type(out);
            b.append_block_param(head, pty);
            let groups = b.ins().iadd_imm_s(blocks, 3);
            let groups = b.ins().ushr_imm_u(groups, 2);
            b.ins()
                .jump(head, &[groups.into(), c0.into(), c1.into(), out.into()]);
            b.switch_to_block(head);
            let hp = b.block_params(head).to_vec();
            let (left, c0, c1, dst) = (hp[0], hp[1], hp[2], hp[3]);
            b.ins().brif(left, body, &[], exit, &[]);
            b.switch_to_block(body);
            b.seal_block(body);
            let w = philox(b, W::X4, [c0, c1, stepv, sitev], &keys);
            let rows = if normal {
                let u0 = uniform_open(b, W::X4, w[0]);
                let u1 = uniform_open(b, W::X4, w[1]);
                let u2 = uniform_open(b, W::X4, w[2]);
                let u3 = uniform_open(b, W::X4, w[3]);
                let mut z = Vec::new();
                for (ua, ub) in [(u0, u1), (u2, u3)] {
                    let lg = log_unit(b, W::X4, ua);
                    let m2 = W::X4.f(b, -2.0);
                    let t = b.ins().fmul(m2, lg);
                    let r = b.ins().sqrt(t);
                    let (s, c) = sincos(b, W::X4, ub);
                    z.push(b.ins().fmul(r, c));
                    z.push(b.ins().fmul(r, s));
                }
                transpose4(b, [z[0], z[1], z[2], z[3]])
            } else {
                let u: Vec<Value> = w.iter().map(|x| uniform_open(b, W::X4, *x)).collect();
                transpose4(b, [u[0], u[1], u[2], u[3]])
            };
            for (j, r) in rows.iter().enumerate() {
                b.ins()
                    .store(MemFlagsData::new().with_notrap(), *r, dst, (16 * j) as i32);
            }
            let four = W::X4.i(b, 4);
            let n0 = b.ins().iadd(c0, four);
            let carry = b.ins().icmp(IntCC::UnsignedLessThan, n0, c0);
            let n1 = b.ins().isub(c1, carry);
            let left = b.ins().iadd_imm_s(left, -1);
            let dst = b.ins().iadd_imm_s(dst, 64);
            b.ins()
                .jump(head, &[left.into(), n0.into(), n1.into(), dst.into()]);
            b.seal_block(head);
            b.switch_to_block(exit);
            b.seal_block(exit);
            b.ins().return_(&[]);
            Ok(())
        })?;
        ids.push(id);
    }
    Ok((ids[0], ids[1]))
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use cranelift_jit::{JITBuilder, JITModule};

    /// The four-lane helpers against `rng::normal` and `rng::uniform`, bit for bit: every word
    /// of a block in every lane, lanes from different blocks, and blocks that carry into the
    /// counter's high word.
    #[test]
    fn four_lane_draws_equal_the_generator() {
        let jb = JITBuilder::with_isa(
            super::super::isa(false, false).unwrap(),
            cranelift_module::default_libcall_names(),
        );
        let mut m = JITModule::new(jb);
        let needs = RngNeeds {
            fills: false,
            lanes: true,
        };
        let r = define_rng(&mut m, needs, Checks::all()).unwrap();
        m.finalize_definitions().unwrap();
        let (n4, u4) = r.lanes.unwrap();
        // SSE is part of x86-64, so the System V ABI returns an `__m128` in xmm0, as the
        // helpers' f32x4 is returned.
        #[allow(improper_ctypes_definitions)]
        type F4 = unsafe extern "C" fn(
            u32,
            u32,
            u32,
            u32,
            u64,
            u64,
            u64,
            u64,
        ) -> std::arch::x86_64::__m128;
        // SAFETY: the helpers were defined with this signature (four i32, four i64, f32x4).
        let (n4, u4): (F4, F4) = unsafe {
            (
                std::mem::transmute::<*const u8, F4>(m.get_finalized_function(n4)),
                std::mem::transmute::<*const u8, F4>(m.get_finalized_function(u4)),
            )
        };
        let bases = [
            0u64,
            5,
            4 * ((1 << 32) - 1),
            4 * (1 << 32) + 2,
            (7 << 34) - 3,
        ];
        let mut idx = Vec::new();
        for b in bases {
            idx.extend([b, b + 1, b + 2, b + 3, b + 6, b + 4097, b + 3, b]);
        }
        for seed in [0u64, 0x1234_5678_9ABC_DEF0] {
            let [k0, k1] = rng::key(seed);
            for (step, stream) in [(0u32, 0u32), (11, 3), (u32::MAX, 7)] {
                for l in idx.windows(4) {
                    for normal in [true, false] {
                        let f = if normal { n4 } else { u4 };
                        // SAFETY: the helpers read only their arguments.
                        let got: [f32; 4] = unsafe {
                            std::mem::transmute(f(k0, k1, step, stream, l[0], l[1], l[2], l[3]))
                        };
                        for (j, g) in got.iter().enumerate() {
                            let want = if normal {
                                rng::normal(seed, stream, step, l[j])
                            } else {
                                rng::uniform(seed, stream, step, l[j])
                            };
                            assert_eq!(
                                want.to_bits(),
                                g.to_bits(),
                                "normal {normal}, seed {seed}, step {step}, stream {stream}, index {}: {want} vs {g}",
                                l[j]
                            );
                        }
                    }
                }
            }
        }
    }
}
