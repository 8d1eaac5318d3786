//! `diffc build`: a spec compiled to a shared library with a C header, or to WGSL and a manifest.

use clap::ValueEnum;
use std::io::Write;

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The spec file (`ddpm.diff` gives libddpm.so and ddpm.h, or ddpm.json for WGSL).
    pub file: String,
    /// What to build: `cpu` (native code: an object file, a C header and a shared library) or
    /// `wgsl` (one WGSL compute shader per kernel and a JSON manifest; docs/wgsl.md).
    #[arg(long, value_enum, default_value_t = BuildTarget::Cpu)]
    target: BuildTarget,
    /// The folder to write into (created if needed).
    #[arg(short = 'o', long = "out", value_name = "DIR", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    out: String,
    /// Only this process (by name), when the file holds several.
    #[arg(long)]
    process: Option<String>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum BuildTarget {
    Cpu,
    Wgsl,
}

/// `diffc build`: for `--target cpu`, write the object, the header and the runtime, then link
/// the shared library with the system C compiler (`$CC`, or `cc`); for `--target wgsl`, write
/// one `.wgsl` file per kernel and the JSON manifest.
pub fn build(
    args: &BuildArgs,
    module: &diffc::check::Module,
    out: &mut dyn Write,
) -> Result<(), String> {
    let path = std::path::Path::new(&args.file);
    let stem: String = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "spec".into())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let dir = std::path::Path::new(&args.out);
    let write = |name: String, bytes: &[u8]| -> Result<std::path::PathBuf, String> {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| format!("cannot write `{}`: {e}", p.display()))?;
        Ok(p)
    };
    if args.target == BuildTarget::Wgsl {
        let built = diffc::gpu::manifest::build(module, &stem, args.process.as_deref())?;
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        for (name, wgsl) in &built.shaders {
            write(name.clone(), wgsl.as_bytes())?;
        }
        write(built.rows_name(), &built.rows_bytes())?;
        write(built.host_name(), built.host_js.as_bytes())?;
        let manifest = write(built.manifest_name(), built.manifest_json().as_bytes())?;
        let _ = writeln!(
            out,
            "wrote {}, its rows ({}), its host module ({}) and {} WGSL kernels of {} entry points and samplers to {}",
            manifest.display(),
            built.rows_name(),
            built.host_name(),
            built.shaders.len(),
            built.units.len(),
            dir.display()
        );
        return Ok(());
    }
    let lib = diffc::cpu::aot::build(module, &stem, args.process.as_deref())?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let object = write(lib.object_name(), &lib.object)?;
    write(lib.header_name(), lib.header.as_bytes())?;
    let source = write(lib.source_name(), lib.source.as_bytes())?;
    let so = dir.join(lib.library_name());
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let result = std::process::Command::new(&cc)
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-std=c99",
            "-fno-builtin",
            "-ffp-contract=off",
            "-o",
        ])
        .arg(&so)
        .arg(&object)
        .arg(&source)
        .args(["-I"])
        .arg(dir)
        .arg("-lm")
        .output()
        .map_err(|e| {
            format!(
                "cannot run the C compiler `{cc}`: {e}; install one (or set CC) to link `{}` \
                 (the object and the header are in `{}`)",
                lib.library_name(),
                dir.display()
            )
        })?;
    if !result.status.success() {
        return Err(format!(
            "`{cc}` failed to link `{}` ({}):\n{}",
            so.display(),
            result.status,
            String::from_utf8_lossy(&result.stderr).trim_end()
        ));
    }
    let _ = writeln!(
        out,
        "wrote {} and {} ({} kernels of {} entry points and samplers; {} KiB of coefficient tables)",
        so.display(),
        dir.join(lib.header_name()).display(),
        lib.kernels,
        lib.units.len(),
        lib.table_bytes.div_ceil(1024),
    );
    Ok(())
}
