//! The GPU backend: a wgpu runtime that runs WGSL compute kernels on buffers.

pub mod codegen;
pub mod manifest;
pub mod runtime;
