//! Size limits on requests: how much memory one call may allocate, and how large a graph a
//! file may declare. Every size a request implies (batch × dims × width, graph node counts) is
//! computed in checked arithmetic and compared with these limits *before* anything is
//! allocated, so that a hostile or mistaken request is refused with an error naming the sizes
//! and the bytes it needed, never a panic, an abort or a wrapped size (docs/backends.md,
//! "Limits").

/// The environment variable that sets the memory limit, in bytes (a plain integer, or with a
/// `K`, `M`, `G` or `T` suffix for powers of 1024).
pub const MEMORY_LIMIT_VAR: &str = "DIFFC_MEMORY_LIMIT";

/// The memory limit when the machine's memory cannot be read: 8 GiB.
pub const FALLBACK_MEMORY_LIMIT: u64 = 8 << 30;

/// The most nodes a graph read from a file (edge list, graph6, `.npy`) may have: 2^16.
pub const MAX_GRAPH_NODES: usize = 1 << 16;

/// The most samples one `diffc sample --count` (or items one `diffc data --count`) may ask for: 2^24.
pub const MAX_COUNT: usize = 1 << 24;

/// The most worker threads `--threads` may ask for: 1024. A larger pool is refused before any
/// thread starts (under an address-space cap each thread's stack and allocator arena are
/// reserved, and spawning tens of thousands of them ran for minutes before failing).
pub const MAX_THREADS: usize = 1 << 10;

/// The most iterations one `repeat` may run: 2^23, so that every iteration's draws keep their
/// own 2^40 range of the 64-bit element counter.
pub const MAX_REPEAT: u64 = 1 << 23;

/// The most expressions one process may expand to once every function call is inlined and
/// every comprehension unrolled: 2^18 (the shipped specs need at most about 1,500). Functions
/// are inlined per call, so a chain of functions that each call the one before twice doubles
/// per level; past this budget the checker stops with an error instead of running out of time
/// or memory.
pub const MAX_EXPRS: usize = 1 << 18;

/// The largest matrix the checker builds, `mat<K>` with K at most 4,096 (16,777,216 entries,
/// 128 MiB in f64): `eye(K)`, `ones(K, K)` and a declared `mat<K>` past it are refused where
/// they are written.
pub const MAX_MATRIX_SIZE: u32 = 4096;

/// The most numbers the checker tabulates for one schedule (its values' width — K for a
/// `vec<K>`, K² for a `mat<K>` — times the times it is checked at): 2^27.
pub const MAX_SCHEDULE_NUMBERS: u64 = 1 << 27;

/// The most times `diffc explain --table NAME --points N` may tabulate a continuous schedule at:
/// 10^6.
pub const MAX_TABLE_POINTS: usize = 1_000_000;

/// The most numbers one such table may hold (times × the schedule's width): 10^7.
pub const MAX_TABLE_NUMBERS: usize = 10_000_000;

/// Reads a whole input file, refusing anything that is not a regular file (a FIFO, a device,
/// a socket or a folder) before opening it, so that an input never blocks or reads without end.
pub fn read_file(path: impl AsRef<std::path::Path>) -> std::io::Result<Vec<u8>> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file (a FIFO, a device or a socket)"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is {what}"),
        ));
    }
    std::fs::read(path)
}

/// [`read_file`] as UTF-8 text (`InvalidData` where it is not).
pub fn read_text(path: impl AsRef<std::path::Path>) -> std::io::Result<String> {
    String::from_utf8(read_file(path)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

static GIVEN_LIMIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Sets the memory limit for the rest of the process (the CLI's `--memory-limit`), in place of
/// the environment's and the machine's: `4G`, `512M`, `64K`, `1T` or a plain byte count, at
/// least 1. Errors where the text is not a byte count, or where a limit was already set.
pub fn set_memory_limit(text: &str) -> Result<(), String> {
    let bytes = parse_bytes(text)
        .filter(|b| *b > 0)
        .ok_or_else(|| format!("`{text}` is not a byte count of at least 1 (e.g. 4G, 512M)"))?;
    GIVEN_LIMIT
        .set(bytes)
        .map_err(|_| "the memory limit is already set".to_string())
}

/// The memory one call may allocate, in bytes: the limit [`set_memory_limit`] set, else
/// `DIFFC_MEMORY_LIMIT` if set, else half of the machine's physical memory (`MemTotal` in
/// `/proc/meminfo`), else [`FALLBACK_MEMORY_LIMIT`].
pub fn memory_limit() -> Result<u64, String> {
    if let Some(b) = GIVEN_LIMIT.get() {
        return Ok(*b);
    }
    if let Ok(s) = std::env::var(MEMORY_LIMIT_VAR) {
        return parse_bytes(&s)
            .ok_or_else(|| format!("{MEMORY_LIMIT_VAR}=`{s}` is not a byte count (e.g. 4G)"));
    }
    static MACHINE: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    Ok(MACHINE
        .get_or_init(machine_memory)
        .map_or(FALLBACK_MEMORY_LIMIT, |m| m / 2))
}

fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 10),
        (i, 'M' | 'm') => (&s[..i], 20),
        (i, 'G' | 'g') => (&s[..i], 30),
        (i, 'T' | 't') => (&s[..i], 40),
        _ => (s, 0),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()?
        .checked_mul(1u64 << shift)
}

fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// The product of `factors` (each named, for the message), or an error naming them.
pub fn product(factors: &[(&str, usize)]) -> Result<usize, String> {
    factors
        .iter()
        .try_fold(1usize, |n, &(_, f)| n.checked_mul(f))
        .ok_or_else(|| format!("{} overflows the size of an array", describe(factors)))
}

/// `batch = 4 × d = 3`, for messages.
pub fn describe(factors: &[(&str, usize)]) -> String {
    factors
        .iter()
        .map(|(n, f)| format!("{n} = {f}"))
        .collect::<Vec<_>>()
        .join(" × ")
}

/// Refuses `bytes` (needed by `what`) over the memory limit.
pub fn check_bytes(what: &str, bytes: u128) -> Result<(), String> {
    let limit = memory_limit()?;
    if bytes > u128::from(limit) {
        return Err(format!(
            "{what} needs {bytes} bytes, which exceeds the memory limit of {limit} bytes ({MEMORY_LIMIT_VAR}, or half the machine's memory when it is unset)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_byte_counts() {
        assert_eq!(parse_bytes("123"), Some(123));
        assert_eq!(parse_bytes("4G"), Some(4 << 30));
        assert_eq!(parse_bytes("2 k"), Some(2048));
        assert_eq!(parse_bytes("x"), None);
        assert_eq!(parse_bytes("99999999999T"), None);
    }

    #[test]
    fn products_overflow_cleanly() {
        assert_eq!(product(&[("batch", 3), ("d", 4)]), Ok(12));
        let e = product(&[("batch", 1 << 32), ("d", 1 << 32)]).unwrap_err();
        assert!(e.contains("batch = 4294967296 × d = 4294967296"), "{e}");
    }
}
