//! The wgpu runtime: one device, storage and uniform buffers, compute pipelines cached by key,
//! dispatches over 1-D or 2-D grids, and readback.
//!
//! Conventions every kernel follows (the WGSL generator writes to them, and a WebGPU host that
//! runs the generated kernels without diffc reproduces them):
//! - All bindings are in group 0. Binding `i` is entry `i` of the kernel's `bindings` list: a
//!   storage buffer read-only (`var<storage, read>`), a storage buffer read-write
//!   (`var<storage, read_write>`), or a uniform buffer (`var<uniform>`).
//! - A dispatch names a number of workgroups `n`; `grid(n, max)` turns it into `(x, y, 1)` with
//!   `x <= max` and `y <= max` (`max` is the adapter's `max_compute_workgroups_per_dimension`,
//!   65535 on most adapters). For `n <= max` the grid is `(n, 1, 1)`.
//! - A kernel computes its linear workgroup id as
//!   `workgroup_id.x + workgroup_id.y * num_workgroups.x`. The grid may hold up to `y - 1`
//!   workgroups past `n`, so a kernel guards every element against its element count.
//! - Arrays larger than one binding (`max_storage_buffer_binding_size`, 128 MiB on lavapipe) are
//!   processed in chunks: `chunks` splits an element range so that every binding of a chunk fits
//!   the limits and starts at an offset the adapter accepts; the kernel receives the chunk's
//!   first element index (in its uniform) to address global quantities such as RNG indices.
//!
//! Errors: no adapter, a shader that does not validate, an allocation failure, a lost device and a
//! misuse of this API (a binding of the wrong kind, an unaligned range) are `Err(GpuError)`, never
//! panics. Every wgpu call that can fail runs inside error scopes for validation, out-of-memory and
//! internal errors; errors that escape them are collected and reported by the next call.
//! The runtime never prints.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// The environment variable that picks an adapter by a substring of its name (case-insensitive).
pub const ADAPTER_ENV: &str = "DIFFC_ADAPTER";

/// Bytes per readback staging buffer: larger reads are copied through it in pieces.
const STAGING_BYTES: u64 = 64 << 20;

/// What went wrong on the GPU side. Each variant carries a message for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuError {
    /// No adapter (or none matching `DIFFC_ADAPTER`), or the device could not be created.
    NoAdapter(String),
    /// A shader module or pipeline failed validation.
    Shader(String),
    /// Any other validation error reported by wgpu.
    Validation(String),
    /// An allocation failed.
    OutOfMemory(String),
    /// The device was lost (driver reset, timeout, or destroyed).
    DeviceLost(String),
    /// A request beyond the adapter's limits (buffer size, binding size, grid size).
    Limit(String),
    /// A misuse of this API: a binding of the wrong kind or count, an unaligned range.
    Usage(String),
    /// An internal error reported by wgpu or a failed buffer mapping.
    Internal(String),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, msg) = match self {
            GpuError::NoAdapter(m) => ("no usable GPU adapter", m),
            GpuError::Shader(m) => ("shader error", m),
            GpuError::Validation(m) => ("GPU validation error", m),
            GpuError::OutOfMemory(m) => ("GPU out of memory", m),
            GpuError::DeviceLost(m) => ("GPU device lost", m),
            GpuError::Limit(m) => ("beyond the GPU adapter's limits", m),
            GpuError::Usage(m) => ("GPU runtime misuse", m),
            GpuError::Internal(m) => ("GPU internal error", m),
        };
        write!(f, "{what}: {msg}")
    }
}

impl std::error::Error for GpuError {}

/// How to pick the adapter.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// A case-insensitive substring of the adapter's name; `None` takes the first adapter in the
    /// order discrete, integrated, virtual, CPU, with native backends before OpenGL.
    pub adapter: Option<String>,
    /// A cap on the bytes of one binding below the adapter's own limit, so that arrays are
    /// split into chunks sooner (tests use it to cover chunking at small sizes).
    pub max_binding_bytes: Option<u64>,
}

impl Options {
    /// The options from the environment: `DIFFC_ADAPTER` (when set and not empty) picks the adapter.
    pub fn from_env() -> Options {
        Options {
            adapter: std::env::var(ADAPTER_ENV).ok().filter(|s| !s.is_empty()),
            max_binding_bytes: None,
        }
    }
}

/// How a kernel sees one binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
    /// `var<uniform>`.
    Uniform,
}

/// A kernel's code: WGSL text or a naga module (validated by wgpu when the pipeline is built).
#[derive(Clone, Debug)]
pub enum ShaderCode {
    Wgsl(String),
    Naga(Box<naga::Module>),
}

/// A compute pipeline with its bind group layout, as cached by `Gpu::kernel`.
#[derive(Debug)]
pub struct Kernel {
    key: String,
    entry: String,
    bindings: Vec<Access>,
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

impl Kernel {
    /// The cache key the kernel was built under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The entry point.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// The bindings of group 0, in binding order.
    pub fn bindings(&self) -> &[Access] {
        &self.bindings
    }

    /// The pipeline, for callers that record their own passes.
    pub fn pipeline(&self) -> &wgpu::ComputePipeline {
        &self.pipeline
    }
}

/// Whether a buffer can be bound as storage or as a uniform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferKind {
    Storage,
    Uniform,
}

/// A device buffer. Its size is a multiple of 4 bytes (16 for uniforms) and at least that much.
#[derive(Debug)]
pub struct Buffer {
    inner: wgpu::Buffer,
    size: u64,
    kind: BufferKind,
}

impl Buffer {
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn kind(&self) -> BufferKind {
        self.kind
    }

    /// The wgpu buffer, for callers that record their own commands.
    pub fn raw(&self) -> &wgpu::Buffer {
        &self.inner
    }
}

/// One binding of a dispatch: a buffer, or a byte range of it.
#[derive(Clone, Debug)]
pub struct Binding<'a> {
    pub buffer: &'a Buffer,
    /// Bytes `range` of the buffer; `None` binds the whole buffer. The start must be a multiple of
    /// the adapter's offset alignment for the binding's kind, and the length a multiple of 4.
    pub range: Option<Range<u64>>,
}

impl<'a> Binding<'a> {
    /// The whole buffer.
    pub fn whole(buffer: &'a Buffer) -> Binding<'a> {
        Binding {
            buffer,
            range: None,
        }
    }

    /// Bytes `range` of the buffer.
    pub fn range(buffer: &'a Buffer, range: Range<u64>) -> Binding<'a> {
        Binding {
            buffer,
            range: Some(range),
        }
    }

    /// Elements `elements` of an array of `bytes_per_element`-byte elements: one chunk from `chunks`.
    pub fn elements(
        buffer: &'a Buffer,
        elements: Range<u64>,
        bytes_per_element: u64,
    ) -> Binding<'a> {
        Binding::range(
            buffer,
            elements.start * bytes_per_element..elements.end * bytes_per_element,
        )
    }
}

/// One dispatch of a batch: a kernel, its bindings in binding order, and its workgroup count.
#[derive(Clone, Debug)]
pub struct Dispatch<'a> {
    pub kernel: &'a Kernel,
    pub bindings: &'a [Binding<'a>],
    /// The number of workgroups; the grid comes from `grid`.
    pub workgroups: u64,
}

/// The dispatch grid for `workgroups` workgroups with at most `max_per_dim` in each dimension:
/// `(workgroups, 1, 1)` when it fits, else `(x, y, 1)` with `y = ceil(workgroups / max_per_dim)`
/// and `x = ceil(workgroups / y)`, so that `x * y - workgroups < y`. `None` when even
/// `max_per_dim^2` workgroups are too few (or `max_per_dim` is 0).
pub fn grid(workgroups: u64, max_per_dim: u32) -> Option<[u32; 3]> {
    let max = u64::from(max_per_dim);
    if max == 0 {
        return None;
    }
    if workgroups <= max {
        return Some([workgroups as u32, 1, 1]);
    }
    let y = workgroups.div_ceil(max);
    if y > max {
        return None;
    }
    let x = workgroups.div_ceil(y);
    Some([x as u32, y as u32, 1])
}

/// The limits that bound a chunk of elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLimits {
    /// The largest binding in bytes (the smaller of `max_storage_buffer_binding_size` and
    /// `max_buffer_size`).
    pub max_binding_bytes: u64,
    /// Binding offsets must be multiples of this many bytes (`min_storage_buffer_offset_alignment`).
    pub offset_alignment: u64,
    /// The most workgroups one dispatch can reach (`max_compute_workgroups_per_dimension^2`).
    pub max_workgroups: u64,
}

/// Splits elements `0..len` into consecutive ranges that one dispatch each can process.
///
/// Each array bound per element has an entry in `bytes_per_element` (its bytes for one element;
/// 0 for arrays that are not chunked, which are ignored). In every range, each array's binding
/// fits `max_binding_bytes`, and every range but the last has a length that keeps the next
/// range's byte offsets aligned, for every array. `workgroup_size` elements make one workgroup,
/// and no range needs more than `max_workgroups`. The ranges are as long as these rules allow.
/// Returns `Err(GpuError::Limit)` when not even one aligned group of elements fits.
pub fn chunks(
    len: u64,
    bytes_per_element: &[u64],
    workgroup_size: u64,
    limits: &ChunkLimits,
) -> Result<Vec<Range<u64>>, GpuError> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let align = limits.offset_alignment.max(1);
    // The chunk length must be a multiple of `step` elements so that every next start is aligned.
    let mut step = 1u64;
    let mut max_len = u64::MAX;
    for &b in bytes_per_element.iter().filter(|&&b| b > 0) {
        step = lcm(step, align / gcd(align, b));
        max_len = max_len.min(limits.max_binding_bytes / b);
    }
    let wg = workgroup_size.max(1);
    max_len = max_len.min(limits.max_workgroups.saturating_mul(wg));
    let chunk = max_len / step * step;
    if len <= max_len {
        return Ok(std::iter::once(0..len).collect());
    }
    if chunk == 0 {
        return Err(GpuError::Limit(format!(
            "no chunk fits: elements of {bytes_per_element:?} bytes need groups of {step} \
             elements for {align}-byte offsets, but a binding holds at most {} bytes",
            limits.max_binding_bytes
        )));
    }
    let mut out = Vec::with_capacity(len.div_ceil(chunk) as usize);
    let mut start = 0;
    while start < len {
        let end = len.min(start + chunk);
        out.push(start..end);
        start = end;
    }
    Ok(out)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
}

/// Errors reported outside any error scope and the device-lost message, shared with wgpu's
/// callbacks.
#[derive(Default)]
struct Reports {
    uncaptured: Vec<GpuError>,
    lost: Option<String>,
}

/// Kernels by (key, entry point).
type KernelCache = HashMap<(String, String), Arc<Kernel>>;

/// One adapter's device and queue, with the pipeline cache.
pub struct Gpu {
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    device: wgpu::Device,
    queue: wgpu::Queue,
    kernels: Mutex<KernelCache>,
    reports: Arc<Mutex<Reports>>,
    max_binding_bytes: Option<u64>,
}

impl fmt::Debug for Gpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish_non_exhaustive()
    }
}

/// Order of preference of adapters: native backends first, then by device type.
fn adapter_rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    (backend, device)
}

fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

/// The message of a wgpu error with its chain of sources.
fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn convert(e: wgpu::Error, shader: bool) -> GpuError {
    let text = error_text(&e);
    match e {
        wgpu::Error::OutOfMemory { .. } => GpuError::OutOfMemory(text),
        wgpu::Error::Validation { .. } if shader => GpuError::Shader(text),
        wgpu::Error::Validation { .. } => GpuError::Validation(text),
        wgpu::Error::Internal { .. } => GpuError::Internal(text),
    }
}

impl Gpu {
    /// A device on the adapter that `Options::from_env()` picks.
    pub fn new() -> Result<Gpu, GpuError> {
        Gpu::with_options(&Options::from_env())
    }

    /// A device on the adapter that `options` picks, with the adapter's own limits.
    pub fn with_options(options: &Options) -> Result<Gpu, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let seen: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
        let mut usable: Vec<wgpu::Adapter> = adapters
            .into_iter()
            .filter(|a| {
                a.get_downlevel_capabilities()
                    .flags
                    .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
            })
            .filter(|a| match &options.adapter {
                Some(want) => a
                    .get_info()
                    .name
                    .to_lowercase()
                    .contains(&want.to_lowercase()),
                None => true,
            })
            .collect();
        usable.sort_by_key(|a| adapter_rank(&a.get_info()));
        let Some(adapter) = usable.into_iter().next() else {
            let found = if seen.is_empty() {
                "wgpu found no adapters (on Linux, install a Vulkan driver such as Mesa's \
                 lavapipe: mesa-vulkan-drivers and libvulkan1)"
                    .to_string()
            } else {
                format!("adapters found: {}", seen.join("; "))
            };
            let wanted = match &options.adapter {
                Some(want) => {
                    format!("no adapter with compute shaders matches {ADAPTER_ENV}={want:?}; ")
                }
                None => "no adapter with compute shaders; ".to_string(),
            };
            return Err(GpuError::NoAdapter(format!("{wanted}{found}")));
        };
        let info = adapter.get_info();
        let desc = wgpu::DeviceDescriptor {
            label: Some("diffc"),
            required_features: wgpu::Features::empty(),
            required_limits: adapter.limits(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            GpuError::NoAdapter(format!(
                "cannot open a device on {}: {}",
                describe(&info),
                error_text(&e)
            ))
        })?;
        let reports = Arc::new(Mutex::new(Reports::default()));
        let sink = Arc::clone(&reports);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let err = convert(e, false);
            if let Ok(mut r) = sink.lock() {
                r.uncaptured.push(err);
            }
        }));
        let sink = Arc::clone(&reports);
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut r) = sink.lock() {
                r.lost = Some(format!("{reason:?}: {message}"));
            }
        });
        let limits = device.limits();
        Ok(Gpu {
            info,
            limits,
            device,
            queue,
            kernels: Mutex::new(HashMap::new()),
            reports,
            max_binding_bytes: options.max_binding_bytes,
        })
    }

    /// The adapter's name, backend, device type and driver.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The device's limits (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The limits that `chunks` needs.
    pub fn chunk_limits(&self) -> ChunkLimits {
        let per_dim = u64::from(self.limits.max_compute_workgroups_per_dimension);
        ChunkLimits {
            max_binding_bytes: self
                .limits
                .max_storage_buffer_binding_size
                .min(self.limits.max_buffer_size)
                .min(self.max_binding_bytes.unwrap_or(u64::MAX)),
            offset_alignment: u64::from(self.limits.min_storage_buffer_offset_alignment),
            max_workgroups: per_dim * per_dim,
        }
    }

    /// The wgpu device, for callers that record their own commands.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The wgpu queue, for callers that record their own commands.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// A lost device, or an error that escaped the error scopes since the last call.
    fn check_reports(&self) -> Result<(), GpuError> {
        let mut r = self
            .reports
            .lock()
            .map_err(|_| GpuError::Internal("the error report lock is poisoned".into()))?;
        if let Some(lost) = &r.lost {
            return Err(GpuError::DeviceLost(lost.clone()));
        }
        if !r.uncaptured.is_empty() {
            return Err(r.uncaptured.remove(0));
        }
        Ok(())
    }

    /// Runs `f` inside out-of-memory, validation and internal error scopes; the first error any of
    /// them caught becomes the result. `shader` reports validation errors as `GpuError::Shader`.
    fn scoped<T>(&self, what: &str, shader: bool, f: impl FnOnce() -> T) -> Result<T, GpuError> {
        self.check_reports()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let out = f();
        let errors = [
            pollster::block_on(internal.pop()),
            pollster::block_on(validation.pop()),
            pollster::block_on(oom.pop()),
        ];
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(match convert(e, shader) {
                GpuError::Shader(m) => GpuError::Shader(format!("{what}: {m}")),
                GpuError::Validation(m) => GpuError::Validation(format!("{what}: {m}")),
                GpuError::OutOfMemory(m) => GpuError::OutOfMemory(format!("{what}: {m}")),
                GpuError::Internal(m) => GpuError::Internal(format!("{what}: {m}")),
                other => other,
            });
        }
        self.check_reports()?;
        Ok(out)
    }

    fn create_buffer(&self, size: u64, kind: BufferKind, label: &str) -> Result<Buffer, GpuError> {
        let granule = match kind {
            BufferKind::Storage => 4,
            BufferKind::Uniform => 16,
        };
        let size = size.max(1).div_ceil(granule) * granule;
        if size > self.limits.max_buffer_size {
            return Err(GpuError::Limit(format!(
                "a buffer of {size} bytes exceeds max_buffer_size = {} bytes",
                self.limits.max_buffer_size
            )));
        }
        let usage = match kind {
            BufferKind::Storage => {
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST
            }
            BufferKind::Uniform => wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        };
        let inner = self.scoped(&format!("creating a {size}-byte buffer"), false, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        })?;
        Ok(Buffer { inner, size, kind })
    }

    /// A zeroed storage buffer of at least `size` bytes (rounded up to a multiple of 4).
    pub fn storage(&self, size: u64) -> Result<Buffer, GpuError> {
        self.create_buffer(size, BufferKind::Storage, "diffc storage")
    }

    /// A storage buffer holding `data` (padded with zeros to a multiple of 4 bytes).
    pub fn upload(&self, data: &[u8]) -> Result<Buffer, GpuError> {
        let buffer = self.storage(data.len() as u64)?;
        self.write(&buffer, 0, data)?;
        Ok(buffer)
    }

    /// A storage buffer holding `words`.
    pub fn upload_u32(&self, words: &[u32]) -> Result<Buffer, GpuError> {
        self.upload(&u32_bytes(words))
    }

    /// A storage buffer holding `values`.
    pub fn upload_f32(&self, values: &[f32]) -> Result<Buffer, GpuError> {
        self.upload(&f32_bytes(values))
    }

    /// A uniform buffer holding `data` (padded with zeros to a multiple of 16 bytes).
    pub fn uniform(&self, data: &[u8]) -> Result<Buffer, GpuError> {
        let buffer = self.create_buffer(data.len() as u64, BufferKind::Uniform, "diffc uniform")?;
        self.write(&buffer, 0, data)?;
        Ok(buffer)
    }

    /// Writes `data` at byte `offset` (a multiple of 4) of `buffer`; a length that is not a
    /// multiple of 4 is padded with zeros, which must still fit the buffer.
    pub fn write(&self, buffer: &Buffer, offset: u64, data: &[u8]) -> Result<(), GpuError> {
        if data.is_empty() {
            return Ok(());
        }
        let padded_len = (data.len() as u64).div_ceil(4) * 4;
        if !offset.is_multiple_of(4) || offset + padded_len > buffer.size {
            return Err(GpuError::Usage(format!(
                "writing {} bytes at offset {offset} of a {}-byte buffer (offsets must be \
                 multiples of 4 and the write must fit)",
                data.len(),
                buffer.size
            )));
        }
        let data: Cow<[u8]> = if data.len() as u64 == padded_len {
            Cow::Borrowed(data)
        } else {
            let mut v = data.to_vec();
            v.resize(padded_len as usize, 0);
            Cow::Owned(v)
        };
        self.scoped("writing a buffer", false, || {
            self.queue.write_buffer(&buffer.inner, offset, &data);
        })
    }

    /// A compute pipeline for `entry` of the module that `source` builds, cached under
    /// (`key`, `entry`): a later call with the same key and entry returns the cached kernel without
    /// calling `source`. `bindings` lists group 0's bindings in binding order. A shader or pipeline
    /// that does not validate gives `Err(GpuError::Shader)`.
    pub fn kernel(
        &self,
        key: &str,
        entry: &str,
        bindings: &[Access],
        source: impl FnOnce() -> ShaderCode,
    ) -> Result<Arc<Kernel>, GpuError> {
        let cache_key = (key.to_string(), entry.to_string());
        if let Some(k) = self.lock_kernels()?.get(&cache_key) {
            if k.bindings != bindings {
                return Err(GpuError::Usage(format!(
                    "kernel {key:?} entry {entry:?} was built with bindings {:?}, now asked for {bindings:?}",
                    k.bindings
                )));
            }
            return Ok(Arc::clone(k));
        }
        let kernel = Arc::new(self.build_kernel(key, entry, bindings, source())?);
        self.lock_kernels()?.insert(cache_key, Arc::clone(&kernel));
        Ok(kernel)
    }

    /// `kernel` keyed by the WGSL text itself.
    pub fn kernel_wgsl(
        &self,
        wgsl: &str,
        entry: &str,
        bindings: &[Access],
    ) -> Result<Arc<Kernel>, GpuError> {
        self.kernel(wgsl, entry, bindings, || ShaderCode::Wgsl(wgsl.to_string()))
    }

    /// The number of cached kernels.
    pub fn cached_kernels(&self) -> usize {
        self.lock_kernels().map(|k| k.len()).unwrap_or(0)
    }

    fn lock_kernels(&self) -> Result<std::sync::MutexGuard<'_, KernelCache>, GpuError> {
        self.kernels
            .lock()
            .map_err(|_| GpuError::Internal("the kernel cache lock is poisoned".into()))
    }

    fn build_kernel(
        &self,
        key: &str,
        entry: &str,
        bindings: &[Access],
        code: ShaderCode,
    ) -> Result<Kernel, GpuError> {
        let source = match code {
            ShaderCode::Wgsl(text) => wgpu::ShaderSource::Wgsl(Cow::Owned(text)),
            ShaderCode::Naga(module) => wgpu::ShaderSource::Naga(Cow::Owned(*module)),
        };
        let label = format!("diffc {entry}");
        let module = self.scoped(&format!("compiling the shader of {entry}"), true, || {
            self.device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&label),
                    source,
                })
        })?;
        let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, access)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match access {
                        Access::Read => wgpu::BufferBindingType::Storage { read_only: true },
                        Access::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                        Access::Uniform => wgpu::BufferBindingType::Uniform,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let (layout, pipeline) =
            self.scoped(&format!("building the pipeline of {entry}"), true, || {
                let layout =
                    self.device
                        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                            label: Some(&label),
                            entries: &entries,
                        });
                let pipeline_layout =
                    self.device
                        .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                            label: Some(&label),
                            bind_group_layouts: &[Some(&layout)],
                            immediate_size: 0,
                        });
                let pipeline =
                    self.device
                        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some(&label),
                            layout: Some(&pipeline_layout),
                            module: &module,
                            entry_point: Some(entry),
                            compilation_options: Default::default(),
                            cache: None,
                        });
                (layout, pipeline)
            })?;
        Ok(Kernel {
            key: key.to_string(),
            entry: entry.to_string(),
            bindings: bindings.to_vec(),
            layout,
            pipeline,
        })
    }

    /// Runs one kernel over `workgroups` workgroups (see `grid` and the module doc for the grid
    /// convention). The work is submitted, not awaited: `wait` or a read waits for it.
    pub fn dispatch(
        &self,
        kernel: &Kernel,
        bindings: &[Binding<'_>],
        workgroups: u64,
    ) -> Result<(), GpuError> {
        self.dispatch_all(&[Dispatch {
            kernel,
            bindings,
            workgroups,
        }])
    }

    /// Runs the dispatches in order in one submission; each sees the writes of those before it.
    pub fn dispatch_all(&self, dispatches: &[Dispatch<'_>]) -> Result<(), GpuError> {
        let max_per_dim = self.limits.max_compute_workgroups_per_dimension;
        let mut planned = Vec::with_capacity(dispatches.len());
        for d in dispatches {
            let entries = self.binding_entries(d)?;
            let Some(g) = grid(d.workgroups, max_per_dim) else {
                return Err(GpuError::Limit(format!(
                    "{} workgroups for {} exceed {max_per_dim} x {max_per_dim}",
                    d.workgroups, d.kernel.entry
                )));
            };
            planned.push((d, entries, g));
        }
        self.scoped("dispatching kernels", false, || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("diffc dispatch"),
                });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("diffc dispatch"),
                    timestamp_writes: None,
                });
                for (d, entries, g) in &planned {
                    if d.workgroups == 0 {
                        continue;
                    }
                    let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(&d.kernel.entry),
                        layout: &d.kernel.layout,
                        entries,
                    });
                    pass.set_pipeline(&d.kernel.pipeline);
                    pass.set_bind_group(0, &group, &[]);
                    pass.dispatch_workgroups(g[0], g[1], g[2]);
                }
            }
            self.queue.submit([encoder.finish()]);
        })
    }

    /// A dispatch's bind group and grid, checked as `dispatch_all` checks them, for callers that
    /// record their own passes (a benchmark replaying one launch many times).
    pub fn prepare(&self, d: &Dispatch<'_>) -> Result<(wgpu::BindGroup, [u32; 3]), GpuError> {
        let entries = self.binding_entries(d)?;
        let max_per_dim = self.limits.max_compute_workgroups_per_dimension;
        let g = grid(d.workgroups, max_per_dim).ok_or_else(|| {
            GpuError::Limit(format!(
                "{} workgroups for {} exceed {max_per_dim} x {max_per_dim}",
                d.workgroups, d.kernel.entry
            ))
        })?;
        let group = self.scoped("creating a bind group", false, || {
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&d.kernel.entry),
                layout: &d.kernel.layout,
                entries: &entries,
            })
        })?;
        Ok((group, g))
    }

    /// Checks a dispatch's bindings against its kernel and the adapter's limits.
    fn binding_entries<'a>(
        &self,
        d: &Dispatch<'a>,
    ) -> Result<Vec<wgpu::BindGroupEntry<'a>>, GpuError> {
        let kernel = d.kernel;
        if d.bindings.len() != kernel.bindings.len() {
            return Err(GpuError::Usage(format!(
                "{} takes {} bindings, given {}",
                kernel.entry,
                kernel.bindings.len(),
                d.bindings.len()
            )));
        }
        let mut entries = Vec::with_capacity(d.bindings.len());
        for (i, (b, access)) in d.bindings.iter().zip(&kernel.bindings).enumerate() {
            let (want, align, max) = match access {
                Access::Read | Access::ReadWrite => (
                    BufferKind::Storage,
                    self.limits.min_storage_buffer_offset_alignment,
                    self.limits.max_storage_buffer_binding_size,
                ),
                Access::Uniform => (
                    BufferKind::Uniform,
                    self.limits.min_uniform_buffer_offset_alignment,
                    self.limits.max_uniform_buffer_binding_size,
                ),
            };
            if b.buffer.kind != want {
                return Err(GpuError::Usage(format!(
                    "binding {i} of {} is {access:?} but the buffer is a {:?} buffer",
                    kernel.entry, b.buffer.kind
                )));
            }
            let range = b.range.clone().unwrap_or(0..b.buffer.size);
            let len = range.end.saturating_sub(range.start);
            if range.end > b.buffer.size
                || len == 0
                || !len.is_multiple_of(4)
                || !range.start.is_multiple_of(u64::from(align.max(1)))
            {
                return Err(GpuError::Usage(format!(
                    "binding {i} of {}: bytes {range:?} of a {}-byte buffer (the range must be \
                     non-empty, inside the buffer, a multiple of 4 bytes long and start at a \
                     multiple of {align})",
                    kernel.entry, b.buffer.size
                )));
            }
            if len > max {
                return Err(GpuError::Limit(format!(
                    "binding {i} of {} is {len} bytes, above the adapter's limit of {max} bytes \
                     per binding (split the array with `chunks`)",
                    kernel.entry
                )));
            }
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &b.buffer.inner,
                    offset: range.start,
                    size: wgpu::BufferSize::new(len),
                }),
            });
        }
        Ok(entries)
    }

    /// Copies byte regions `(from offset, to offset, length)` of `from` into `to` on the
    /// device, in one submission after the work submitted before it. Offsets and lengths are
    /// multiples of 4 and every region lies inside both buffers.
    pub fn copy(
        &self,
        from: &Buffer,
        to: &Buffer,
        regions: &[(u64, u64, u64)],
    ) -> Result<(), GpuError> {
        for &(a, b, n) in regions {
            if !(a | b | n).is_multiple_of(4) || a + n > from.size || b + n > to.size {
                return Err(GpuError::Usage(format!(
                    "copying {n} bytes from offset {a} of a {}-byte buffer to offset {b} of a \
                     {}-byte buffer",
                    from.size, to.size
                )));
            }
        }
        self.scoped("copying buffers", false, || {
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("diffc copy"),
                });
            for &(a, b, n) in regions {
                if n > 0 {
                    encoder.copy_buffer_to_buffer(&from.inner, a, &to.inner, b, n);
                }
            }
            self.queue.submit([encoder.finish()]);
        })
    }

    /// Blocks until all submitted work has finished.
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::DeviceLost(format!("waiting for the GPU: {e}")))?;
        self.check_reports()
    }

    /// Bytes `range` of a storage buffer (the start and the length multiples of 4), after all
    /// submitted work has finished.
    pub fn read(&self, buffer: &Buffer, range: Range<u64>) -> Result<Vec<u8>, GpuError> {
        if buffer.kind != BufferKind::Storage
            || !range.start.is_multiple_of(4)
            || !range.end.is_multiple_of(4)
            || range.end < range.start
            || range.end > buffer.size
        {
            return Err(GpuError::Usage(format!(
                "reading bytes {range:?} of a {}-byte {:?} buffer (only storage buffers, \
                 4-byte aligned ranges inside the buffer)",
                buffer.size, buffer.kind
            )));
        }
        let total = range.end - range.start;
        let mut out = Vec::with_capacity(total as usize);
        if total == 0 {
            return Ok(out);
        }
        let staging_size = total.min(STAGING_BYTES);
        let staging = self.scoped("creating a staging buffer", false, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("diffc readback"),
                size: staging_size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let mut at = range.start;
        while at < range.end {
            let len = (range.end - at).min(staging_size);
            self.scoped("copying a buffer for readback", false, || {
                let mut encoder =
                    self.device
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                            label: Some("diffc readback"),
                        });
                encoder.copy_buffer_to_buffer(&buffer.inner, at, &staging, 0, len);
                self.queue.submit([encoder.finish()]);
            })?;
            let (send, recv) = std::sync::mpsc::channel();
            staging.map_async(wgpu::MapMode::Read, 0..len, move |r| {
                let _ = send.send(r);
            });
            // Another thread's poll may run the callback: wait for it, polling again now and
            // then, up to a minute after the GPU has finished.
            self.wait()?;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                match recv.recv_timeout(std::time::Duration::from_millis(5)) {
                    Ok(Ok(())) => break,
                    Ok(Err(e)) => {
                        return Err(GpuError::Internal(format!(
                            "mapping a readback buffer: {e}"
                        )))
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                        if std::time::Instant::now() < deadline =>
                    {
                        self.wait()?;
                    }
                    Err(_) => {
                        self.check_reports()?;
                        return Err(GpuError::Internal(
                            "a readback buffer was not mapped a minute after the GPU finished"
                                .into(),
                        ));
                    }
                }
            }
            {
                let view = staging
                    .get_mapped_range(0..len)
                    .map_err(|e| GpuError::Internal(format!("reading a mapped buffer: {e}")))?;
                out.extend_from_slice(&view);
            }
            staging.unmap();
            at += len;
        }
        Ok(out)
    }

    /// The whole buffer as 32-bit words.
    pub fn read_u32(&self, buffer: &Buffer) -> Result<Vec<u32>, GpuError> {
        Ok(bytes_u32(&self.read(buffer, 0..buffer.size)?))
    }

    /// The whole buffer as f32 values.
    pub fn read_f32(&self, buffer: &Buffer) -> Result<Vec<f32>, GpuError> {
        Ok(self
            .read_u32(buffer)?
            .into_iter()
            .map(f32::from_bits)
            .collect())
    }
}

/// Words as bytes in the host's byte order (the order storage buffers use).
pub fn u32_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

/// Floats as bytes in the host's byte order.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// Bytes (a multiple of 4) as words in the host's byte order.
pub fn bytes_u32(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_one_dimensional_up_to_the_limit() {
        assert_eq!(grid(0, 65535), Some([0, 1, 1]));
        assert_eq!(grid(65535, 65535), Some([65535, 1, 1]));
        assert_eq!(grid(65536, 65535), Some([32768, 2, 1]));
        assert_eq!(grid(65535 * 65535, 65535), Some([65535, 65535, 1]));
        assert_eq!(grid(65535 * 65535 + 1, 65535), None);
        assert_eq!(grid(1, 0), None);
    }

    #[test]
    fn grid_covers_with_less_than_one_row_of_overshoot() {
        for n in [65536u64, 70_000, 131_071, 1 << 20, 4_000_000_000, 1_234_567] {
            let [x, y, z] = grid(n, 65535).unwrap();
            let covered = u64::from(x) * u64::from(y);
            assert!(covered >= n && covered - n < u64::from(y), "n = {n}");
            assert!(x <= 65535 && y <= 65535 && z == 1);
        }
    }

    fn limits(max_binding_bytes: u64) -> ChunkLimits {
        ChunkLimits {
            max_binding_bytes,
            offset_alignment: 256,
            max_workgroups: 65535 * 65535,
        }
    }

    #[test]
    fn chunks_fit_the_binding_and_keep_offsets_aligned() {
        let l = limits(1000);
        // f32 and a 12-byte element: at most 83 elements; offsets aligned need multiples of 64.
        let c = chunks(200, &[4, 12], 64, &l).unwrap();
        assert_eq!(c, vec![0..64, 64..128, 128..192, 192..200]);
        assert_eq!(chunks(83, &[4, 12], 64, &l).unwrap(), vec![0..83]);
        assert_eq!(chunks(0, &[4], 64, &l).unwrap(), vec![]);
        // Unchunked arrays (0 bytes per element) do not constrain.
        assert_eq!(chunks(260, &[4, 0], 1, &l).unwrap(), vec![0..192, 192..260]);
        // A 128 MiB binding of f32: 32 Mi elements per chunk.
        let big = chunks(100 << 20, &[4], 256, &limits(128 << 20)).unwrap();
        assert_eq!(big.len(), 4);
        assert_eq!(big[0], 0..(32 << 20));
    }

    #[test]
    fn chunks_respect_the_grid_and_report_impossible_layouts() {
        let l = ChunkLimits {
            max_binding_bytes: 1 << 30,
            offset_alignment: 4,
            max_workgroups: 10,
        };
        assert_eq!(chunks(25, &[4], 2, &l).unwrap(), vec![0..20, 20..25]);
        assert!(matches!(
            chunks(1000, &[4], 1, &limits(100)),
            Err(GpuError::Limit(_))
        ));
    }
}
