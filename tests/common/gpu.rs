//! The GPU every GPU test shares, or a decision to skip.
//!
//! Without an adapter a test fails when `DIFFC_REQUIRE_GPU` is set (CI sets it), and otherwise
//! prints a loud message to stderr and returns early (a developer machine without Vulkan).

use std::io::Write;
use std::sync::OnceLock;

use diffc::gpu::runtime::{Gpu, GpuError};

/// The environment variable that makes a missing GPU a test failure.
pub const REQUIRE_GPU_ENV: &str = "DIFFC_REQUIRE_GPU";

/// The shared device, or `None` (after a message on stderr) when there is none and
/// `DIFFC_REQUIRE_GPU` is not set. Panics when there is none and it is set.
pub fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Result<Gpu, GpuError>> = OnceLock::new();
    match GPU.get_or_init(|| {
        quiet_loader();
        Gpu::new()
    }) {
        Ok(gpu) => Some(gpu),
        Err(e) => {
            no_gpu(e);
            None
        }
    }
}

/// Sets `XDG_RUNTIME_DIR` where it is missing, before an adapter is probed: Mesa's Vulkan
/// loader prints "XDG_RUNTIME_DIR is invalid or not set" for every adapter it probes without
/// it, although nothing here needs it.
pub fn quiet_loader() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
}

/// Without a GPU: fail when `DIFFC_REQUIRE_GPU` is set, otherwise say loudly that the test is
/// skipped.
pub fn no_gpu(why: impl std::fmt::Display) {
    let required = std::env::var(REQUIRE_GPU_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "{REQUIRE_GPU_ENV} is set but there is no GPU: {why}"
    );
    // Written to the stderr handle, not with `eprintln!`, so that the test harness does not
    // capture it: a skipped GPU test must be visible.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! GPU TEST SKIPPED: {why}\n!!!!!!!! set {REQUIRE_GPU_ENV}=1 to make this a failure\n"
    );
}
