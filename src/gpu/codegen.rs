//! Kernel IR → a naga module: one WGSL compute entry point per kernel, appended to the
//! hand-written generator (`kernels/rng.wgsl`, parsed by naga), validated by naga's validator
//! and written out by its WGSL writer.
//!
//! The kernel's bindings (group 0):
//! - `0`: `params: array<u32>`, read-only: `[seed lo, seed hi, step, offset lo, offset hi,
//!   start, end, size of dim 0, size of dim 1, …]`.
//! - `1`: `coefs: array<f32>`, read-only: the kernel's coefficient slots (at least one).
//! - `2`: `status: array<atomic<u32>>`, read-write: the status word, `kernel::FAIL_*` bits.
//! - `3 + i`: buffer `i` of the kernel: `array<f32>` for f32 values, `array<u32>` for class
//!   indices and for bools (one word per bool: the host widens and narrows them); read-write
//!   for outputs.
//!
//! Invocation `(workgroup_id.x + workgroup_id.y · num_workgroups.x) · WORKGROUP +
//! local_invocation_index` computes flat element `start` plus that, if below `end`, so a
//! dispatch of more than 65,535 workgroups spreads over a 2-D grid. Indices are 32-bit: a
//! dispatch covers fewer than 2^32 elements, and the generator's 64-bit element index is the
//! flat index plus the 64-bit `offset`.
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

/// The generator in WGSL, the module every kernel is appended to.
pub const RNG_WGSL: &str = include_str!("../../kernels/rng.wgsl");

/// Words of `params` before the dimension sizes.
pub const PARAMS_HEAD: u32 = 7;

/// A kernel as WGSL: the validated module, its text and its entry point.
pub struct Shader {
    pub module: Module,
    pub info: naga::valid::ModuleInfo,
    pub wgsl: String,
    pub entry: String,
}

/// Build, validate and write a kernel's shader.
pub fn shader(k: &Kernel) -> Result<Shader, String> {
    let module = module(k)?;
    let info = validate(&module).map_err(|e| format!("kernel `{}`: {e}", k.name))?;
    let wgsl =
        naga::back::wgsl::write_string(&module, &info, naga::back::wgsl::WriterFlags::empty())
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

/// The generator module: `kernels/rng.wgsl` parsed.
pub fn rng_module() -> Result<Module, String> {
    naga::front::wgsl::parse_str(RNG_WGSL)
        .map_err(|e| format!("kernels/rng.wgsl: {}", e.emit_to_string(RNG_WGSL)))
}

/// The kernel's module: the generator plus the kernel's entry point.
pub fn module(k: &Kernel) -> Result<Module, String> {
    let mut m = rng_module()?;
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
        block: Block::new(),
        i: None,
        per: None,
        key: None,
        locals: 0,
    };
    e.prologue();
    e.stmts(&k.body)?;
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

/// The generator's functions the kernels call.
struct RngFns {
    normal: Handle<Function>,
    uniform: Handle<Function>,
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
    block: Block,
    /// The flat element index.
    i: Option<Handle<Expression>>,
    /// Elements per sample.
    per: Option<Handle<Expression>>,
    /// The generator's key.
    key: Option<Handle<Expression>>,
    locals: u32,
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

    /// Flat index, the early return past `end`, elements per sample and the generator key.
    fn prologue(&mut self) {
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
        let row = self.bin(BinaryOperator::Multiply, wy, nx);
        let group = self.bin(BinaryOperator::Add, wx, row);
        let wg = self.u32c(WORKGROUP);
        let first = self.bin(BinaryOperator::Multiply, group, wg);
        let local = self.bin(BinaryOperator::Add, first, lid);
        let start = self.param(5);
        let end = self.param(6);
        let i = self.bin(BinaryOperator::Add, start, local);
        let past = self.bin(BinaryOperator::GreaterEqual, i, end);
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
        self.i = Some(i);
        let mut per = self.u32c(1);
        for d in self.k.domain.clone() {
            let s = self.param(PARAMS_HEAD + d);
            per = self.bin(BinaryOperator::Multiply, per, s);
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

    fn buf_index(&mut self, buf: u32, index: V, comp: u32) -> Handle<Expression> {
        let width = self.k.bufs[buf as usize].width;
        let idx = self.val(index);
        if width == 1 && comp == 0 {
            return idx;
        }
        let w = self.u32c(width);
        let base = self.bin(BinaryOperator::Multiply, idx, w);
        let c = self.u32c(comp);
        self.bin(BinaryOperator::Add, base, c)
    }

    fn stmt(&mut self, s: &Stmt) -> Result<Option<Handle<Expression>>, String> {
        use BinaryOperator as B;
        if s.ty == Ty::F64 {
            return Err(unsupported(self.k, "an f64 value"));
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
                    Libm::Powf => MathFunction::Pow,
                    Libm::Expm1f | Libm::Log1pf | Libm::Log => {
                        return Err(unsupported(self.k, f.symbol()))
                    }
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
                self.draw(normal, *site, *index)
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
        let function = if normal {
            self.fns.normal
        } else {
            self.fns.uniform
        };
        let result = self.push(Expression::CallResult(function));
        self.block.push(
            Statement::Call {
                function,
                arguments: vec![key, stream, step, at],
                result: Some(result),
            },
            Span::UNDEFINED,
        );
        result
    }

    fn local(&mut self, ty: Ty, init: Handle<Expression>) -> Handle<Expression> {
        let t = match ty {
            Ty::F32 => Scalar::F32,
            Ty::Bool => Scalar::BOOL,
            _ => Scalar::U32,
        };
        let t = scalar_type(self.m, t);
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
