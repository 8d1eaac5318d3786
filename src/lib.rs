//! diffc: a compiler for diffusion processes.
//!
//! The pipeline: `syntax` parses `.diff` text into an AST, `check` resolves names and
//! types and evaluates schedules into a typed process (`typed`), and `explain` prints it.
//! The library never prints and never reads files: the CLI (`src/main.rs`, `src/cli/`) does.

pub mod check;
pub mod cpu;
pub mod data;
pub mod diag;
pub mod entries;
pub mod explain;
pub mod gpu;
pub mod graph;
pub mod interp;
pub mod ir;
pub mod kernel;
pub mod limits;
pub mod npy;
pub mod picture;
pub mod plan;
pub mod rng;
pub mod sample;
pub mod syntax;
pub mod train;
pub mod typed;
pub mod types;
