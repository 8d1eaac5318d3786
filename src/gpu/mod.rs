//! The GPU backend: kernels generated as WGSL through naga (`codegen`), run by a wgpu runtime
//! (`runtime`); `run` and `sample` take the interpreter's calls and give its results, and
//! `resident` runs whole sampler runs with their state kept on the device.

pub mod codegen;
pub mod manifest;
pub mod resident;
mod run;
pub mod runtime;

pub use run::{access, compile, device, run, run_on, sample, sample_on, Compiled};
