//! Kernel IR → a naga module: one WGSL compute entry point per kernel, appended to the
//! hand-written generator (`kernels/rng.wgsl`, parsed by naga), validated by naga's validator
//! and written out by its WGSL writer.
//!
//! The kernel's bindings (group 0):
//! - `0`: `params: array<u32>`, read-only: `[seed lo, seed hi, step, offset lo, offset hi,
//!   start, end, size of dim 0, size of dim 1, …, base of buffer 0, base of buffer 1, …]`. A
//!   buffer's base is the index of its first bound value: 0 when the whole array is bound, and
//!   the first value of the chunk when a host binds only part of it (`gpu::run` splits arrays
//!   above one binding by samples).
//! - `1`: `coefs: array<f32>`, read-only: the kernel's coefficient slots (at least one).
//! - `2`: `status: array<atomic<u32>>`, read-write: the status word, `kernel::FAIL_*` bits.
//! - `3 + i`: buffer `i` of the kernel: `array<f32>` for f32 values, `array<u32>` for class
//!   indices and for bools (one word per bool: the host widens and narrows them); read-write
//!   for outputs.
//!
//! Invocation `g = (workgroup_id.x + workgroup_id.y · num_workgroups.x) · WORKGROUP +
//! local_invocation_index` computes flat element `start + g`, if below `end`, so a dispatch of
//! more than 65,535 workgroups spreads over a 2-D grid; a kernel that draws at its own flat
//! index computes four elements `(start & !3) + 4g + j`, those in `start..end`, sharing one
//! generator block (`lanes`, `workgroups`). Indices are 32-bit: a
//! launch covers fewer than 2^32 elements, and the generator's 64-bit element index is the
//! flat index plus the 64-bit `offset`. Flat indices are the launch's own, whatever the chunk:
//! buffer `i` is read and written at `index - base i`.
//!
//! Arithmetic is WGSL's: `+ - * /` may differ from the CPU's by the rounding a GPU compiler
//! allows (contraction into FMA, `/` within 2.5 ulp, `sqrt` and `exp`/`log` within their WGSL
//! accuracies), which is the float tolerance of `docs/backends.md`. Draws call the generator,
//! which guards its own arithmetic, so noise is identical bit for bit.

use crate::kernel::{Bin, Cmp, Inst, Kernel, Libm, Stmt, Store, Ty, Un, FAIL_NONFINITE, V};
use crate::kernel::{BufSrc, Target};
use naga::{
    AddressSpace, BinaryOperator, Block, Expression, Function, FunctionArgument, GlobalVariable,
    Handle, Literal, LocalVariable, MathFunction, Module, ResourceBinding, Scalar, ScalarKind,
    ShaderStage, Span, Statement, StorageAccess, Type, TypeInner, UnaryOperator, VectorSize,
};
use std::collections::HashMap;

/// Invocations per workgroup.
pub const WORKGROUP: u32 = 64;

/// The generator in WGSL.
pub const RNG_WGSL: &str = include_str!("../../kernels/rng.wgsl");

/// expm1, log1p, powf and the f32 pairs that stand for f64 values, appended to the generator.
pub const MATH_WGSL: &str = include_str!("../../kernels/math.wgsl");

/// Words of `params` before the dimension sizes.
pub const PARAMS_HEAD: u32 = 7;

/// The word of `params` that holds buffer `buf`'s base.
pub fn base_word(k: &Kernel, buf: u32) -> u32 {
    PARAMS_HEAD + k.dims.len() as u32 + buf
}

/// Statements above which a kernel keeps one element per invocation (four copies of a large
/// body cost more to compile than they save).
pub const LANES_MAX_STMTS: usize = 2000;

/// Elements each invocation computes: 4 for a kernel that draws at its own flat index (the four
/// elements of one generator block then share it: one Philox block and two Box–Muller pairs
/// instead of four and four), 1 otherwise.
pub fn lanes(k: &Kernel) -> u32 {
    let flat = k.flat_values();
    let shares = k.body.iter().any(|s| match &s.inst {
        Inst::Normal { index, .. } | Inst::Uniform { index, .. } => flat.contains(index),
        _ => false,
    });
    let mut n = 0;
    k.walk(&mut |_| n += 1);
    if shares && n <= LANES_MAX_STMTS {
        4
    } else {
        1
    }
}

/// Workgroups of one dispatch over flat elements `start..end`: invocation `g` computes
/// elements `(start & !3) + lanes · g` and the `lanes - 1` after it (those in range), where
/// `lanes` is 4 or 1 (`lanes`); with one lane the alignment of `start` is not needed but
/// changes nothing.
pub fn workgroups(k: &Kernel, start: u64, end: u64) -> u64 {
    if end <= start {
        return 0;
    }
    let lanes = lanes(k) as u64;
    let first = if lanes == 1 { start } else { start & !3 };
    (end - first).div_ceil(lanes * WORKGROUP as u64)
}

/// Words of a kernel's `params`.
pub fn params_len(k: &Kernel) -> u32 {
    PARAMS_HEAD + (k.dims.len() + k.bufs.len()) as u32
}

/// A kernel as WGSL: the validated module, its text and its entry point.
pub struct Shader {
    pub module: Module,
    pub info: naga::valid::ModuleInfo,
    pub wgsl: String,
    pub entry: String,
}

/// The stack of the thread that writes a kernel's WGSL: 1 GiB of address space.
const WRITER_STACK: usize = 1 << 30;

/// Build, validate and write a kernel's shader.
pub fn shader(k: &Kernel) -> Result<Shader, String> {
    let module = module(k)?;
    let info = validate(&module).map_err(|e| format!("kernel `{}`: {e}", k.name))?;
    // naga's writer recurses once per nested expression, and a kernel over many classes is
    // unrolled into chains as long as its class count (65,536 for a `cat<65536>`): it runs
    // on a thread whose stack is sized for that (only the pages it touches are committed).
    let wgsl = std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(WRITER_STACK)
            .spawn_scoped(s, || {
                naga::back::wgsl::write_string(
                    &module,
                    &info,
                    naga::back::wgsl::WriterFlags::empty(),
                )
            })
            .map_err(|e| format!("kernel `{}`: cannot start the WGSL writer: {e}", k.name))?
            .join()
            .map_err(|_| format!("kernel `{}`: the WGSL writer failed", k.name))
    })?
    .map_err(|e| format!("kernel `{}`: cannot write WGSL: {e}", k.name))?;
    Ok(Shader {
        module,
        info,
        wgsl,
        entry: entry_name(k),
    })
}

/// The entry point's name (ending in a letter: naga's writer renames names that end in a digit).
pub fn entry_name(k: &Kernel) -> String {
    format!("diffc_{}_main", k.name)
}

/// naga's validator with every check on.
pub fn validate(m: &Module) -> Result<naga::valid::ModuleInfo, String> {
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(m)
    .map_err(|e| format!("naga validation: {}", e.emit_to_string("")))
}

/// The module every kernel is appended to: `kernels/rng.wgsl` and `kernels/math.wgsl`, parsed.
pub fn base_module() -> Result<Module, String> {
    let text = format!("{RNG_WGSL}\n{MATH_WGSL}");
    naga::front::wgsl::parse_str(&text).map_err(|e| {
        format!(
            "kernels/rng.wgsl + kernels/math.wgsl: {}",
            e.emit_to_string(&text)
        )
    })
}

/// The kernel's module: the generator plus the kernel's entry point.
pub fn module(k: &Kernel) -> Result<Module, String> {
    let mut m = base_module()?;
    let g = Globals::new(&mut m, k);
    let mut f = Function {
        name: Some(entry_name(k)),
        ..Default::default()
    };
    let uvec3 = m.types.insert(
        Type {
            name: None,
            inner: TypeInner::Vector {
                size: VectorSize::Tri,
                scalar: Scalar::U32,
            },
        },
        Span::UNDEFINED,
    );
    let u32t = scalar_type(&mut m, Scalar::U32);
    for (name, b) in [
        ("wid", naga::BuiltIn::WorkGroupId),
        ("nwg", naga::BuiltIn::NumWorkGroups),
    ] {
        f.arguments.push(FunctionArgument {
            name: Some(name.into()),
            ty: uvec3,
            binding: Some(naga::Binding::BuiltIn(b)),
        });
    }
    f.arguments.push(FunctionArgument {
        name: Some("lid".into()),
        ty: u32t,
        binding: Some(naga::Binding::BuiltIn(naga::BuiltIn::LocalInvocationIndex)),
    });
    let fns = RngFns::find(&m)?;
    let mut e = Emitter {
        k,
        m: &mut m,
        f: &mut f,
        g,
        fns,
        env: HashMap::new(),
        tys: HashMap::new(),
        block: Block::new(),
        i: None,
        per: None,
        key: None,
        locals: 0,
        lane: 0,
        flat: Vec::new(),
        shared: HashMap::new(),
    };
    if lanes(k) == 1 {
        let (i, _, _) = e.prologue(1);
        e.i = Some(i);
        e.stmts(&k.body)?;
    } else {
        e.lanes4()?;
    }
    let body = std::mem::take(&mut e.block);
    f.body = body;
    m.entry_points.push(naga::EntryPoint {
        name: entry_name(k),
        stage: ShaderStage::Compute,
        early_depth_test: None,
        workgroup_size: [WORKGROUP, 1, 1],
        workgroup_size_overrides: None,
        function: f,
        mesh_info: None,
        task_payload: None,
        incoming_ray_payload: None,
    });
    Ok(m)
}

fn scalar_type(m: &mut Module, s: Scalar) -> Handle<Type> {
    m.types.insert(
        Type {
            name: None,
            inner: TypeInner::Scalar(s),
        },
        Span::UNDEFINED,
    )
}

fn array_type(m: &mut Module, base: Handle<Type>, stride: u32) -> Handle<Type> {
    m.types.insert(
        Type {
            name: None,
            inner: TypeInner::Array {
                base,
                size: naga::ArraySize::Dynamic,
                stride,
            },
        },
        Span::UNDEFINED,
    )
}

/// The kernel's global variables.
struct Globals {
    params: Handle<GlobalVariable>,
    coefs: Handle<GlobalVariable>,
    status: Handle<GlobalVariable>,
    bufs: Vec<Handle<GlobalVariable>>,
}

impl Globals {
    fn new(m: &mut Module, k: &Kernel) -> Globals {
        let u32t = scalar_type(m, Scalar::U32);
        let f32t = scalar_type(m, Scalar::F32);
        let au32 = array_type(m, u32t, 4);
        let af32 = array_type(m, f32t, 4);
        let atomic = m.types.insert(
            Type {
                name: None,
                inner: TypeInner::Atomic(Scalar::U32),
            },
            Span::UNDEFINED,
        );
        let aatomic = array_type(m, atomic, 4);
        let var = |m: &mut Module, name: String, binding: u32, ty, access| {
            m.global_variables.append(
                GlobalVariable {
                    name: Some(name),
                    space: AddressSpace::Storage { access },
                    binding: Some(ResourceBinding { group: 0, binding }),
                    ty,
                    init: None,
                    memory_decorations: Default::default(),
                },
                Span::UNDEFINED,
            )
        };
        let params = var(m, "params".into(), 0, au32, StorageAccess::LOAD);
        let coefs = var(m, "coefs".into(), 1, af32, StorageAccess::LOAD);
        let status = var(
            m,
            "status".into(),
            2,
            aatomic,
            StorageAccess::LOAD | StorageAccess::STORE,
        );
        let bufs = k
            .bufs
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let ty = if b.store == Store::F32 { af32 } else { au32 };
                let access = if b.output {
                    StorageAccess::LOAD | StorageAccess::STORE
                } else {
                    StorageAccess::LOAD
                };
                var(m, format!("b{i}"), 3 + i as u32, ty, access)
            })
            .collect();
        Globals {
            params,
            coefs,
            status,
            bufs,
        }
    }
}

/// The hand-written functions the kernels call.
struct RngFns {
    normal: Handle<Function>,
    uniform: Handle<Function>,
    normal4: Handle<Function>,
    uniform4: Handle<Function>,
    expm1: Handle<Function>,
    log1p: Handle<Function>,
    pow: Handle<Function>,
    df_add: Handle<Function>,
    df_sub: Handle<Function>,
    df_round: Handle<Function>,
}

impl RngFns {
    fn find(m: &Module) -> Result<RngFns, String> {
        let find = |name: &str| {
            m.functions
                .iter()
                .find(|(_, f)| f.name.as_deref() == Some(name))
                .map(|(h, _)| h)
                .ok_or_else(|| format!("kernels/rng.wgsl has no `{name}`"))
        };
        Ok(RngFns {
            normal: find("diffc_normal")?,
            uniform: find("diffc_uniform")?,
            normal4: find("diffc_normal4")?,
            uniform4: find("diffc_uniform4")?,
            expm1: find("diffc_expm1")?,
            log1p: find("diffc_log1p")?,
            pow: find("diffc_pow")?,
            df_add: find("diffc_df_add")?,
            df_sub: find("diffc_df_sub")?,
            df_round: find("diffc_df_round")?,
        })
    }
}

struct Emitter<'a> {
    k: &'a Kernel,
    m: &'a mut Module,
    f: &'a mut Function,
    g: Globals,
    fns: RngFns,
    env: HashMap<V, Handle<Expression>>,
    /// The type of every value.
    tys: HashMap<V, Ty>,
    block: Block,
    /// The flat element index.
    i: Option<Handle<Expression>>,
    /// Elements per sample.
    per: Option<Handle<Expression>>,
    /// The generator's key.
    key: Option<Handle<Expression>>,
    locals: u32,
    /// With four lanes: the lane being emitted, the values that are the flat index, and the
    /// four draws of each (normal?, site) at the lanes' flat indices.
    lane: u32,
    flat: Vec<V>,
    shared: HashMap<(bool, u32), Handle<Expression>>,
}

fn unsupported(k: &Kernel, what: &str) -> String {
    format!(
        "kernel `{}`: {what} has no WGSL form yet (the GPU backend computes in f32 and u32)",
        k.name
    )
}

impl Emitter<'_> {
    /// Append an expression, emitting it where WGSL needs it evaluated.
    fn push(&mut self, e: Expression) -> Handle<Expression> {
        // Results of calls are defined by their statements, never emitted.
        let emit = !e.needs_pre_emit() && !matches!(e, Expression::CallResult(_));
        let h = self.f.expressions.append(e, Span::UNDEFINED);
        if emit {
            self.block.push(
                Statement::Emit(naga::Range::new_from_bounds(h, h)),
                Span::UNDEFINED,
            );
        }
        h
    }

    fn lit(&mut self, l: Literal) -> Handle<Expression> {
        self.push(Expression::Literal(l))
    }

    fn u32c(&mut self, x: u32) -> Handle<Expression> {
        self.lit(Literal::U32(x))
    }

    fn bin(
        &mut self,
        op: BinaryOperator,
        left: Handle<Expression>,
        right: Handle<Expression>,
    ) -> Handle<Expression> {
        self.push(Expression::Binary { op, left, right })
    }

    /// A pointer to element `index` of a global array.
    fn at(&mut self, var: Handle<GlobalVariable>, index: Handle<Expression>) -> Handle<Expression> {
        let base = self.push(Expression::GlobalVariable(var));
        self.push(Expression::Access { base, index })
    }

    fn load_at(
        &mut self,
        var: Handle<GlobalVariable>,
        index: Handle<Expression>,
    ) -> Handle<Expression> {
        let pointer = self.at(var, index);
        self.push(Expression::Load { pointer })
    }

    fn param(&mut self, w: u32) -> Handle<Expression> {
        let i = self.u32c(w);
        self.load_at(self.g.params, i)
    }

    fn arg(&mut self, i: u32) -> Handle<Expression> {
        self.push(Expression::FunctionArgument(i))
    }

    /// The invocation's first flat element (`start + g` with one lane, `(start & !3) + 4g`
    /// with four), the early return when it is past `end`, elements per sample and the
    /// generator key; returns (first element, start, end).
    fn prologue(
        &mut self,
        lanes: u32,
    ) -> (Handle<Expression>, Handle<Expression>, Handle<Expression>) {
        use BinaryOperator as B;
        let wid = self.arg(0);
        let nwg = self.arg(1);
        let lid = self.arg(2);
        let wx = self.push(Expression::AccessIndex {
            base: wid,
            index: 0,
        });
        let wy = self.push(Expression::AccessIndex {
            base: wid,
            index: 1,
        });
        let nx = self.push(Expression::AccessIndex {
            base: nwg,
            index: 0,
        });
        let row = self.bin(B::Multiply, wy, nx);
        let group = self.bin(B::Add, wx, row);
        let wg = self.u32c(WORKGROUP);
        let first = self.bin(B::Multiply, group, wg);
        let mut local = self.bin(B::Add, first, lid);
        if lanes > 1 {
            let l = self.u32c(lanes);
            local = self.bin(B::Multiply, local, l);
        }
        let start = self.param(5);
        let end = self.param(6);
        let mut base = start;
        if lanes > 1 {
            let mask = self.u32c(!(lanes - 1));
            base = self.bin(B::And, start, mask);
        }
        let i = self.bin(B::Add, base, local);
        let past = self.bin(B::GreaterEqual, i, end);
        let mut ret = Block::new();
        ret.push(Statement::Return { value: None }, Span::UNDEFINED);
        self.block.push(
            Statement::If {
                condition: past,
                accept: ret,
                reject: Block::new(),
            },
            Span::UNDEFINED,
        );
        let mut per = self.u32c(1);
        for d in self.k.domain.clone() {
            let s = self.param(PARAMS_HEAD + d);
            per = self.bin(B::Multiply, per, s);
        }
        self.per = Some(per);
        let k0 = self.param(0);
        let k1 = self.param(1);
        let ty = self.uvec2();
        let key = self.push(Expression::Compose {
            ty,
            components: vec![k0, k1],
        });
        self.key = Some(key);
        (i, start, end)
    }

    /// Four elements per invocation: the prologue, then the shared draws and one copy of the
    /// body per lane, each under its own range check.
    fn lanes4(&mut self) -> Result<(), String> {
        use BinaryOperator as B;
        let (i0, start, end) = self.prologue(4);
        // The draws at the flat index, for the four lanes at once.
        self.flat = self.k.flat_values();
        for st in &self.k.body {
            let (normal, site, index) = match &st.inst {
                Inst::Normal { site, index } => (true, *site, *index),
                Inst::Uniform { site, index } => (false, *site, *index),
                _ => continue,
            };
            if !self.flat.contains(&index) || self.shared.contains_key(&(normal, site)) {
                continue;
            }
            self.env.insert(index, i0);
            let f = if normal {
                self.fns.normal4
            } else {
                self.fns.uniform4
            };
            let q = self.draw_with(f, site, index);
            self.shared.insert((normal, site), q);
        }
        for lane in 0..4 {
            self.env.clear();
            self.lane = lane;
            let j = self.u32c(lane);
            let i = self.bin(B::Add, i0, j);
            let lo = self.bin(B::GreaterEqual, i, start);
            let hi = self.bin(B::Less, i, end);
            let inside = self.bin(B::LogicalAnd, lo, hi);
            self.i = Some(i);
            let outer = std::mem::take(&mut self.block);
            self.stmts(&self.k.body)?;
            let body = std::mem::replace(&mut self.block, outer);
            self.block.push(
                Statement::If {
                    condition: inside,
                    accept: body,
                    reject: Block::new(),
                },
                Span::UNDEFINED,
            );
        }
        Ok(())
    }

    fn uvec2(&mut self) -> Handle<Type> {
        self.m.types.insert(
            Type {
                name: None,
                inner: TypeInner::Vector {
                    size: VectorSize::Bi,
                    scalar: Scalar::U32,
                },
            },
            Span::UNDEFINED,
        )
    }

    fn val(&self, v: V) -> Handle<Expression> {
        self.env[&v]
    }

    fn stmts(&mut self, body: &[Stmt]) -> Result<(), String> {
        for s in body {
            self.tys.insert(s.id, s.ty);
            if let Some(h) = self.stmt(s)? {
                self.env.insert(s.id, h);
            }
        }
        Ok(())
    }

    /// Raise status bits when `c` holds.
    fn fail(&mut self, c: Handle<Expression>, bits: u32) {
        let outer = std::mem::take(&mut self.block);
        let zero = self.u32c(0);
        let pointer = self.at(self.g.status, zero);
        let value = self.u32c(bits);
        self.block.push(
            Statement::Atomic {
                pointer,
                fun: naga::AtomicFunction::InclusiveOr,
                value,
                result: None,
            },
            Span::UNDEFINED,
        );
        let accept = std::mem::replace(&mut self.block, outer);
        self.block.push(
            Statement::If {
                condition: c,
                accept,
                reject: Block::new(),
            },
            Span::UNDEFINED,
        );
    }

    /// The position of value `comp` of element `index` in buffer `buf`'s bound range.
    fn buf_index(&mut self, buf: u32, index: V, comp: u32) -> Handle<Expression> {
        let width = self.k.bufs[buf as usize].width;
        let mut at = self.val(index);
        if width != 1 || comp != 0 {
            let w = self.u32c(width);
            let scaled = self.bin(BinaryOperator::Multiply, at, w);
            let c = self.u32c(comp);
            at = self.bin(BinaryOperator::Add, scaled, c);
        }
        let base = self.param(base_word(self.k, buf));
        self.bin(BinaryOperator::Subtract, at, base)
    }

    fn stmt(&mut self, s: &Stmt) -> Result<Option<Handle<Expression>>, String> {
        use BinaryOperator as B;
        if let Some(h) = self.wide(s)? {
            return Ok(Some(h));
        }
        let h = match &s.inst {
            // WGSL has no literal for infinities and NaN: their bits, reinterpreted.
            Inst::F32(x) if !x.is_finite() => {
                let bits = self.u32c(x.to_bits());
                self.push(Expression::As {
                    expr: bits,
                    kind: ScalarKind::Float,
                    convert: None,
                })
            }
            Inst::F32(x) => self.lit(Literal::F32(*x)),
            Inst::I32(x) => self.u32c(*x),
            Inst::I64(x) => {
                let x = u32::try_from(*x).map_err(|_| unsupported(self.k, "a 64-bit index"))?;
                self.u32c(x)
            }
            Inst::Bool(x) => self.lit(Literal::Bool(*x)),
            Inst::F64(_) => return Err(unsupported(self.k, "an f64 literal")),
            Inst::Coef(i) => {
                let i = self.u32c(*i);
                self.load_at(self.g.coefs, i)
            }
            Inst::CoefAt { base, index } => {
                let b = self.u32c(*base);
                let idx = self.val(*index);
                let i = self.bin(B::Add, b, idx);
                self.load_at(self.g.coefs, i)
            }
            Inst::Size(d) => self.param(PARAMS_HEAD + d),
            Inst::Flat => self.i.expect("prologue"),
            Inst::Sample => {
                let (i, per) = (self.i.expect("prologue"), self.per.expect("prologue"));
                self.bin(B::Divide, i, per)
            }
            Inst::Elem => {
                let (i, per) = (self.i.expect("prologue"), self.per.expect("prologue"));
                self.bin(B::Modulo, i, per)
            }
            Inst::Load { buf, index, comp } => {
                let i = self.buf_index(*buf, *index, *comp);
                let x = self.load_at(self.g.bufs[*buf as usize], i);
                if self.k.bufs[*buf as usize].store == Store::U8 {
                    let zero = self.u32c(0);
                    self.bin(B::NotEqual, x, zero)
                } else {
                    x
                }
            }
            Inst::Store {
                buf,
                index,
                comp,
                value,
            } => {
                let b = &self.k.bufs[*buf as usize];
                let (store, field) = (b.store, matches!(b.src, BufSrc::Out(Target::Field(_))));
                let mut v = self.val(*value);
                if store == Store::U8 {
                    let (one, zero) = (self.u32c(1), self.u32c(0));
                    v = self.push(Expression::Select {
                        condition: v,
                        accept: one,
                        reject: zero,
                    });
                }
                if store == Store::F32 && field {
                    // NaN or infinite: every exponent bit set.
                    let bits = self.push(Expression::As {
                        expr: v,
                        kind: ScalarKind::Uint,
                        convert: None,
                    });
                    let mask = self.u32c(0x7f80_0000);
                    let e = self.bin(B::And, bits, mask);
                    let bad = self.bin(B::Equal, e, mask);
                    self.fail(bad, FAIL_NONFINITE);
                }
                let i = self.buf_index(*buf, *index, *comp);
                let pointer = self.at(self.g.bufs[*buf as usize], i);
                self.block
                    .push(Statement::Store { pointer, value: v }, Span::UNDEFINED);
                return Ok(None);
            }
            Inst::Un(op, a) => {
                let x = self.val(*a);
                let math = |e: &mut Self, fun| {
                    e.push(Expression::Math {
                        fun,
                        arg: x,
                        arg1: None,
                        arg2: None,
                        arg3: None,
                    })
                };
                match op {
                    Un::Neg => self.push(Expression::Unary {
                        op: UnaryOperator::Negate,
                        expr: x,
                    }),
                    Un::Not => self.push(Expression::Unary {
                        op: UnaryOperator::LogicalNot,
                        expr: x,
                    }),
                    Un::Abs => math(self, MathFunction::Abs),
                    Un::Sqrt => math(self, MathFunction::Sqrt),
                    Un::Floor => math(self, MathFunction::Floor),
                    Un::ToI32 => self.push(Expression::As {
                        expr: x,
                        kind: ScalarKind::Uint,
                        convert: Some(4),
                    }),
                    Un::I32ToF32 => self.push(Expression::As {
                        expr: x,
                        kind: ScalarKind::Float,
                        convert: Some(4),
                    }),
                    Un::BoolToF32 => {
                        let one = self.lit(Literal::F32(1.0));
                        let zero = self.lit(Literal::F32(0.0));
                        self.push(Expression::Select {
                            condition: x,
                            accept: one,
                            reject: zero,
                        })
                    }
                    Un::I32ToI64 => x,
                    Un::F32ToF64 | Un::F64ToF32 => {
                        return Err(unsupported(self.k, "an f64 conversion"))
                    }
                }
            }
            Inst::Bin(op, a, b) => {
                let (x, y) = (self.val(*a), self.val(*b));
                match op {
                    Bin::Add => self.bin(B::Add, x, y),
                    Bin::Sub => self.bin(B::Subtract, x, y),
                    Bin::Mul => self.bin(B::Multiply, x, y),
                    Bin::Div | Bin::UDiv => self.bin(B::Divide, x, y),
                    Bin::URem => self.bin(B::Modulo, x, y),
                    Bin::Shr => self.bin(B::ShiftRight, x, y),
                    Bin::BitAnd => self.bin(B::And, x, y),
                    Bin::And => self.bin(B::LogicalAnd, x, y),
                    Bin::Or => self.bin(B::LogicalOr, x, y),
                    Bin::Min | Bin::Max => {
                        // As every backend computes them: `y` if it wins or `x` is NaN.
                        let wins = if *op == Bin::Max {
                            self.bin(B::Less, x, y)
                        } else {
                            self.bin(B::Less, y, x)
                        };
                        let nan = self.bin(B::NotEqual, x, x);
                        let take = self.bin(B::LogicalOr, wins, nan);
                        self.push(Expression::Select {
                            condition: take,
                            accept: y,
                            reject: x,
                        })
                    }
                }
            }
            Inst::Cmp(op, a, b) => {
                let (x, y) = (self.val(*a), self.val(*b));
                let op = match op {
                    Cmp::Lt => B::Less,
                    Cmp::Le => B::LessEqual,
                    Cmp::Gt => B::Greater,
                    Cmp::Ge => B::GreaterEqual,
                    Cmp::Eq => B::Equal,
                    Cmp::Ne => B::NotEqual,
                };
                self.bin(op, x, y)
            }
            Inst::Select(c, a, b) => {
                let (c, a, b) = (self.val(*c), self.val(*a), self.val(*b));
                self.push(Expression::Select {
                    condition: c,
                    accept: a,
                    reject: b,
                })
            }
            Inst::Call(f, args) => {
                let xs: Vec<_> = args.iter().map(|a| self.val(*a)).collect();
                let fun = match f {
                    Libm::Expf => MathFunction::Exp,
                    Libm::Logf => MathFunction::Log,
                    Libm::Sinf => MathFunction::Sin,
                    Libm::Cosf => MathFunction::Cos,
                    Libm::Tanhf => MathFunction::Tanh,
                    Libm::Powf => return Ok(Some(self.call_fn(self.fns.pow, xs))),
                    Libm::Expm1f => return Ok(Some(self.call_fn(self.fns.expm1, xs))),
                    Libm::Log1pf => return Ok(Some(self.call_fn(self.fns.log1p, xs))),
                    Libm::Log => return Err(unsupported(self.k, f.symbol())),
                };
                self.push(Expression::Math {
                    fun,
                    arg: xs[0],
                    arg1: xs.get(1).copied(),
                    arg2: None,
                    arg3: None,
                })
            }
            Inst::Normal { site, index } | Inst::Uniform { site, index } => {
                let normal = matches!(s.inst, Inst::Normal { .. });
                match self.shared.get(&(normal, *site)) {
                    Some(q) if self.flat.contains(index) => {
                        let q = *q;
                        self.push(Expression::AccessIndex {
                            base: q,
                            index: self.lane,
                        })
                    }
                    _ => self.draw(normal, *site, *index),
                }
            }
            Inst::Fail(c, bits) => {
                let c = self.val(*c);
                self.fail(c, *bits);
                return Ok(None);
            }
            Inst::Loop {
                count,
                init,
                index,
                acc,
                body,
                next,
            } => {
                return self
                    .looped(s.ty, *count, *init, (*index, *acc), body, *next)
                    .map(Some)
            }
            Inst::LoopIndex | Inst::LoopAcc => return Ok(None),
        };
        Ok(Some(h))
    }

    /// Element `index` (plus the call's offset, with carry) of draw `site`.
    fn draw(&mut self, normal: bool, site: u32, index: V) -> Handle<Expression> {
        let function = if normal {
            self.fns.normal
        } else {
            self.fns.uniform
        };
        self.draw_with(function, site, index)
    }

    /// `function(key, site, step, index + offset)`.
    fn draw_with(&mut self, function: Handle<Function>, site: u32, index: V) -> Handle<Expression> {
        use BinaryOperator as B;
        let idx = self.val(index);
        let off_lo = self.param(3);
        let off_hi = self.param(4);
        let lo = self.bin(B::Add, idx, off_lo);
        let carry = self.bin(B::Less, lo, idx);
        let (one, zero) = (self.u32c(1), self.u32c(0));
        let c = self.push(Expression::Select {
            condition: carry,
            accept: one,
            reject: zero,
        });
        let hi = self.bin(B::Add, off_hi, c);
        let ty = self.uvec2();
        let at = self.push(Expression::Compose {
            ty,
            components: vec![lo, hi],
        });
        let stream = self.u32c(site);
        let step = self.param(2);
        let key = self.key.expect("prologue");
        self.call_fn(function, vec![key, stream, step, at])
    }

    /// A call of a hand-written function.
    fn call_fn(
        &mut self,
        function: Handle<Function>,
        arguments: Vec<Handle<Expression>>,
    ) -> Handle<Expression> {
        let result = self.push(Expression::CallResult(function));
        self.block.push(
            Statement::Call {
                function,
                arguments,
                result: Some(result),
            },
            Span::UNDEFINED,
        );
        result
    }

    fn vec2f(&mut self) -> Handle<Type> {
        self.m.types.insert(
            Type {
                name: None,
                inner: TypeInner::Vector {
                    size: VectorSize::Bi,
                    scalar: Scalar::F32,
                },
            },
            Span::UNDEFINED,
        )
    }

    /// An f32 as a literal (infinities and NaN by their bits).
    fn f32_lit(&mut self, x: f32) -> Handle<Expression> {
        if x.is_finite() {
            return self.lit(Literal::F32(x));
        }
        let bits = self.u32c(x.to_bits());
        self.push(Expression::As {
            expr: bits,
            kind: ScalarKind::Float,
            convert: None,
        })
    }

    /// The pair `(hi, lo)` standing for an f64 value.
    fn pair(&mut self, hi: Handle<Expression>, lo: Handle<Expression>) -> Handle<Expression> {
        let ty = self.vec2f();
        self.push(Expression::Compose {
            ty,
            components: vec![hi, lo],
        })
    }

    /// An f32 as a pair.
    fn widen(&mut self, x: Handle<Expression>) -> Handle<Expression> {
        let zero = self.lit(Literal::F32(0.0));
        self.pair(x, zero)
    }

    /// The f32 nearest an f64 value's pair.
    fn narrow(&mut self, v: V) -> Handle<Expression> {
        let x = self.val(v);
        self.call_fn(self.fns.df_round, vec![x])
    }

    fn math1(&mut self, fun: MathFunction, arg: Handle<Expression>) -> Handle<Expression> {
        self.push(Expression::Math {
            fun,
            arg,
            arg1: None,
            arg2: None,
            arg3: None,
        })
    }

    /// Statements on f64 values, which WGSL computes on pairs of f32 (`kernels/math.wgsl`):
    /// `None` for every other statement.
    fn wide(&mut self, s: &Stmt) -> Result<Option<Handle<Expression>>, String> {
        use BinaryOperator as B;
        let is64 = |e: &Self, v: &V| e.tys.get(v) == Some(&Ty::F64);
        if s.ty != Ty::F64 {
            return Ok(match &s.inst {
                Inst::Un(Un::F64ToF32, a) => Some(self.narrow(*a)),
                Inst::Cmp(op, a, b) if is64(self, a) => {
                    let (x, y) = (self.narrow(*a), self.narrow(*b));
                    let op = match op {
                        Cmp::Lt => B::Less,
                        Cmp::Le => B::LessEqual,
                        Cmp::Gt => B::Greater,
                        Cmp::Ge => B::GreaterEqual,
                        Cmp::Eq => B::Equal,
                        Cmp::Ne => B::NotEqual,
                    };
                    Some(self.bin(op, x, y))
                }
                _ => None,
            });
        }
        let h = match &s.inst {
            Inst::F64(x) => {
                let hi = *x as f32;
                let lo = if x.is_finite() {
                    (*x - hi as f64) as f32
                } else {
                    0.0
                };
                let (hi, lo) = (self.f32_lit(hi), self.f32_lit(lo));
                self.pair(hi, lo)
            }
            Inst::Un(op, a) => {
                let x = self.val(*a);
                match op {
                    Un::F32ToF64 => self.widen(x),
                    Un::Neg => self.push(Expression::Unary {
                        op: UnaryOperator::Negate,
                        expr: x,
                    }),
                    Un::Abs | Un::Sqrt | Un::Floor => {
                        let fun = match op {
                            Un::Abs => MathFunction::Abs,
                            Un::Sqrt => MathFunction::Sqrt,
                            _ => MathFunction::Floor,
                        };
                        let r = self.narrow(*a);
                        let y = self.math1(fun, r);
                        self.widen(y)
                    }
                    _ => return Err(unsupported(self.k, "this f64 conversion")),
                }
            }
            Inst::Bin(op, a, b) => match op {
                Bin::Add | Bin::Sub => {
                    let f = if *op == Bin::Add {
                        self.fns.df_add
                    } else {
                        self.fns.df_sub
                    };
                    let (x, y) = (self.val(*a), self.val(*b));
                    self.call_fn(f, vec![x, y])
                }
                Bin::Mul | Bin::Div => {
                    let (x, y) = (self.narrow(*a), self.narrow(*b));
                    let op = if *op == Bin::Mul {
                        B::Multiply
                    } else {
                        B::Divide
                    };
                    let r = self.bin(op, x, y);
                    self.widen(r)
                }
                Bin::Min | Bin::Max => {
                    // As every backend computes them: `y` if it wins or `x` is NaN.
                    let (x, y) = (self.narrow(*a), self.narrow(*b));
                    let wins = if *op == Bin::Max {
                        self.bin(B::Less, x, y)
                    } else {
                        self.bin(B::Less, y, x)
                    };
                    let nan = self.bin(B::NotEqual, x, x);
                    let take = self.bin(B::LogicalOr, wins, nan);
                    let (pa, pb) = (self.val(*a), self.val(*b));
                    self.push(Expression::Select {
                        condition: take,
                        accept: pb,
                        reject: pa,
                    })
                }
                _ => return Err(unsupported(self.k, "this f64 operation")),
            },
            Inst::Select(c, a, b) => {
                let (c, a, b) = (self.val(*c), self.val(*a), self.val(*b));
                self.push(Expression::Select {
                    condition: c,
                    accept: a,
                    reject: b,
                })
            }
            Inst::Call(Libm::Log, args) => {
                let r = self.narrow(args[0]);
                let y = self.math1(MathFunction::Log, r);
                self.widen(y)
            }
            Inst::Loop { .. } | Inst::LoopIndex | Inst::LoopAcc => return Ok(None),
            _ => return Err(unsupported(self.k, "this f64 value")),
        };
        Ok(Some(h))
    }

    fn local(&mut self, ty: Ty, init: Handle<Expression>) -> Handle<Expression> {
        let t = match ty {
            Ty::F64 => self.vec2f(),
            Ty::F32 => scalar_type(self.m, Scalar::F32),
            Ty::Bool => scalar_type(self.m, Scalar::BOOL),
            _ => scalar_type(self.m, Scalar::U32),
        };
        self.locals += 1;
        let lv = self.f.local_variables.append(
            LocalVariable {
                name: Some(format!("l{}", self.locals)),
                ty: t,
                init: None,
            },
            Span::UNDEFINED,
        );
        let p = self.push(Expression::LocalVariable(lv));
        self.block.push(
            Statement::Store {
                pointer: p,
                value: init,
            },
            Span::UNDEFINED,
        );
        p
    }

    /// `acc = init; for index in 0..count { acc = next }`, as a WGSL loop over two locals.
    fn looped(
        &mut self,
        ty: Ty,
        count: V,
        init: V,
        (index, acc): (V, V),
        body: &[Stmt],
        next: V,
    ) -> Result<Handle<Expression>, String> {
        use BinaryOperator as B;
        let zero = self.u32c(0);
        let j = self.local(Ty::I32, zero);
        let init = self.val(init);
        let a = self.local(ty, init);
        let count = self.val(count);
        let outer = std::mem::take(&mut self.block);
        let jv = self.push(Expression::Load { pointer: j });
        let done = self.bin(B::GreaterEqual, jv, count);
        let mut brk = Block::new();
        brk.push(Statement::Break, Span::UNDEFINED);
        self.block.push(
            Statement::If {
                condition: done,
                accept: brk,
                reject: Block::new(),
            },
            Span::UNDEFINED,
        );
        let av = self.push(Expression::Load { pointer: a });
        self.env.insert(index, jv);
        self.env.insert(acc, av);
        self.stmts(body)?;
        let nx = self.val(next);
        self.block.push(
            Statement::Store {
                pointer: a,
                value: nx,
            },
            Span::UNDEFINED,
        );
        let one = self.u32c(1);
        let j1 = self.bin(B::Add, jv, one);
        self.block.push(
            Statement::Store {
                pointer: j,
                value: j1,
            },
            Span::UNDEFINED,
        );
        let lbody = std::mem::replace(&mut self.block, outer);
        self.block.push(
            Statement::Loop {
                body: lbody,
                continuing: Block::new(),
                break_if: None,
            },
            Span::UNDEFINED,
        );
        Ok(self.push(Expression::Load { pointer: a }))
    }
}
