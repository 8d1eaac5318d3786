// Counter-based randomness for WGSL kernels: the twin of `src/rng.rs`, bit for bit.
//
// Layout (see the module doc of src/rng.rs, which is the contract):
// - Philox-4x32-10 as in Random123; key = (seed low 32 bits, seed high 32 bits);
//   counter = [block low, block high, step, stream].
// - Element i (a 64-bit index passed as vec2(low 32 bits, high 32 bits)) uses word i % 4 of
//   block i / 4.
// - uniform = ((word >> 9) + 0.5) * 2^-23; normals by Box-Muller on words (0, 1) and (2, 3) of a
//   block, element i taking z[i % 4].
//
// Arithmetic: only f32 `+`, `-`, `*`, integer conversions, comparisons and bit manipulation,
// in the order of the Rust twin. WGSL's `/` and `sqrt` are not correctly rounded, so the square
// root is the integer-only `diffc_sqrt`. Float constants are hexadecimal literals (exact).
// No intermediate of a draw is subnormal; subnormal inputs to `diffc_log` and `diffc_sqrt` are
// normalised with integer operations, so flush-to-zero arithmetic does not change a result.
// Every f32 operation goes through `diffc_mul`, `diffc_add` or `diffc_sub`, which stop the
// driver from fusing products into FMAs or reassociating sums (see `diffc_exact`); the GPU tests
// compare every function bit for bit with the Rust twin, which does neither.
//
// This file is a plain module of constants and functions (no bindings, no entry points): kernel
// generators parse it and append their kernels.

const DIFFC_PHILOX_M0: u32 = 0xD2511F53u;
const DIFFC_PHILOX_M1: u32 = 0xCD9E8D57u;
const DIFFC_PHILOX_W0: u32 = 0x9E3779B9u;
const DIFFC_PHILOX_W1: u32 = 0xBB67AE85u;

// x itself, through an operation that compilers cannot see through (an unsigned min with
// 0xFFFFFFFE, which changes only one NaN pattern into another). WGSL has no `precise` and naga
// emits no SPIR-V NoContraction, so drivers may fuse `a * b + c` into an FMA and reassociate
// sums; lavapipe computed the log's `f + (t + e ln2_lo)` as `(f + t) + e ln2_lo` without this
// barrier. Every f32 operation whose rounding matters passes its result through it: the
// operations before and after it stay separate and in the order written.
fn diffc_exact(x: f32) -> f32 {
    return bitcast<f32>(min(bitcast<u32>(x), 0xFFFFFFFEu));
}

// a * b, a + b and a - b, each rounded once and kept apart from the operations around it.
fn diffc_mul(a: f32, b: f32) -> f32 {
    return diffc_exact(a * b);
}

fn diffc_add(a: f32, b: f32) -> f32 {
    return diffc_exact(a + b);
}

fn diffc_sub(a: f32, b: f32) -> f32 {
    return diffc_exact(a - b);
}

// (high, low) 32 bits of the 64-bit product a * b, from 16-bit halves (WGSL has no 64-bit integers).
fn diffc_mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xFFFFu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xFFFFu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    // Each term is below 2^16, so the sum cannot overflow.
    let mid = (ll >> 16u) + (lh & 0xFFFFu) + (hl & 0xFFFFu);
    let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn diffc_philox_round(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
    let p0 = diffc_mulhilo(DIFFC_PHILOX_M0, c.x);
    let p1 = diffc_mulhilo(DIFFC_PHILOX_M1, c.z);
    return vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
}

// Philox-4x32-10 (Random123's philox4x32): a round, then the key bumped before each of rounds 2 to 10.
fn diffc_philox(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = diffc_philox_round(counter, key);
    var k = key;
    for (var r = 1u; r < 10u; r++) {
        k = k + vec2<u32>(DIFFC_PHILOX_W0, DIFFC_PHILOX_W1);
        c = diffc_philox_round(c, k);
    }
    return c;
}

// The Philox key of a 64-bit seed given as (low, high): the pair itself.
fn diffc_key(seed_lo: u32, seed_hi: u32) -> vec2<u32> {
    return vec2<u32>(seed_lo, seed_hi);
}

// The four words of a block (block = (low, high)).
fn diffc_block_words(key: vec2<u32>, stream: u32, step: u32, block: vec2<u32>) -> vec4<u32> {
    return diffc_philox(vec4<u32>(block.x, block.y, step, stream), key);
}

// Block index = element index / 4, on (low, high) pairs.
fn diffc_block_of(index: vec2<u32>) -> vec2<u32> {
    return vec2<u32>((index.x >> 2u) | (index.y << 30u), index.y >> 2u);
}

// The word of element `index`: word index % 4 of block index / 4 (rng::word).
fn diffc_word(key: vec2<u32>, stream: u32, step: u32, index: vec2<u32>) -> u32 {
    let w = diffc_block_words(key, stream, step, diffc_block_of(index));
    return w[index.x & 3u];
}

// A uniform in (0, 1): ((word >> 9) + 0.5) * 2^-23, every step exact (rng::uniform_open).
fn diffc_uniform_open(word: u32) -> f32 {
    return diffc_mul(diffc_add(f32(word >> 9u), 0.5), 0x1p-23f);
}

// Element `index` of a uniform draw (rng::uniform).
fn diffc_uniform(key: vec2<u32>, stream: u32, step: u32, index: vec2<u32>) -> f32 {
    return diffc_uniform_open(diffc_word(key, stream, step, index));
}

// A Bernoulli draw from a uniform: u < p (rng::bernoulli_from_uniform).
fn diffc_bernoulli_from_uniform(u: f32, p: f32) -> bool {
    return u < p;
}

// Bits of the f32 nearest sqrt(2): mantissas at or above it are halved.
const DIFFC_SQRT2_BITS: u32 = 0x3FB504F3u;
// ln 2 split for Cody-Waite (rng::LN2_HI, rng::LN2_LO).
const DIFFC_LN2_HI: f32 = 0x1.62e3p-1f;
const DIFFC_LN2_LO: f32 = 0x1.2fefa2p-17f;
// rng::LOG_P: P(f) ~ (ln(1 + f) - f) / f^2.
const DIFFC_LOG_P0: f32 = -0x1.fffff8p-2f;
const DIFFC_LOG_P1: f32 = 0x1.55555p-2f;
const DIFFC_LOG_P2: f32 = -0x1.000426p-2f;
const DIFFC_LOG_P3: f32 = 0x1.99a3f6p-3f;
const DIFFC_LOG_P4: f32 = -0x1.542766p-3f;
const DIFFC_LOG_P5: f32 = 0x1.22715ep-3f;
const DIFFC_LOG_P6: f32 = -0x1.0f3756p-3f;
const DIFFC_LOG_P7: f32 = 0x1.0849bep-3f;
const DIFFC_LOG_P8: f32 = -0x1.38339ap-4f;

// The quiet NaN 0x7FC00000 (Rust's f32::NAN), built from a run-time value `bits` because a NaN
// constant is not a valid WGSL constant expression.
fn diffc_nan(bits: u32) -> f32 {
    return bitcast<f32>((bits & 0u) | 0x7FC00000u);
}

// Natural logarithm (rng::log_f32): x = 2^e m with m in [sqrt(1/2), sqrt(2)), f = m - 1,
// ln x = e ln2_hi + (f + (f^2 P(f) + e ln2_lo)). ln(+0) = -inf, ln(+inf) = +inf, NaN for x < 0.
fn diffc_log(x: f32) -> f32 {
    var bits = bitcast<u32>(x);
    let magnitude = bits & 0x7FFFFFFFu;
    if magnitude > 0x7F800000u {
        return diffc_nan(bits);
    }
    if magnitude == 0u {
        return bitcast<f32>(magnitude | 0xFF800000u);
    }
    if bits >= 0x80000000u {
        return diffc_nan(bits);
    }
    if bits == 0x7F800000u {
        return x;
    }
    var e: i32 = -127;
    if bits < 0x00800000u {
        // x 2^23 = bits 2^-126, exact and normal; formed from the integer so that a device that
        // flushes subnormal operands still sees x.
        bits = bitcast<u32>(diffc_mul(f32(bits), 0x1p-126f));
        e = -127 - 23;
    }
    e = e + i32(bits >> 23u);
    var mbits = (bits & 0x007FFFFFu) | 0x3F800000u;
    if mbits >= DIFFC_SQRT2_BITS {
        mbits = mbits - 0x00800000u;
        e = e + 1;
    }
    let f = diffc_sub(bitcast<f32>(mbits), 1.0);
    var p = DIFFC_LOG_P8;
    p = diffc_add(diffc_mul(p, f), DIFFC_LOG_P7);
    p = diffc_add(diffc_mul(p, f), DIFFC_LOG_P6);
    p = diffc_add(diffc_mul(p, f), DIFFC_LOG_P5);
    p = diffc_add(diffc_mul(p, f), DIFFC_LOG_P4);
    p = diffc_add(diffc_mul(p, f), DIFFC_LOG_P3);
    p = diffc_add(diffc_mul(p, f), DIFFC_LOG_P2);
    p = diffc_add(diffc_mul(p, f), DIFFC_LOG_P1);
    p = diffc_add(diffc_mul(p, f), DIFFC_LOG_P0);
    let t = diffc_mul(diffc_mul(f, f), p);
    let ef = f32(e);
    let hi = diffc_mul(ef, DIFFC_LN2_HI);
    let lo = diffc_add(f, diffc_add(t, diffc_mul(ef, DIFFC_LN2_LO)));
    return diffc_add(hi, lo);
}

// rng::SIN_S1, rng::SIN_R: sin(pi/2 t) = t S1 + (t x) R(x), x = t^2.
const DIFFC_SIN_S1: f32 = 0x1.921fb6p+0f;
const DIFFC_SIN_R0: f32 = -0x1.4abc1cp-1f;
const DIFFC_SIN_R1: f32 = 0x1.468eecp-4f;
const DIFFC_SIN_R2: f32 = -0x1.3e8566p-8f;
const DIFFC_SIN_R3: f32 = 0x1.f38186p-12f;
// rng::COS_C2, rng::COS_Q: cos(pi/2 t) = 1 + (x C2 + (x x) Q(x)).
const DIFFC_COS_C2: f32 = -0x1.3bd3ccp+0f;
const DIFFC_COS_Q0: f32 = 0x1.03c1aep-2f;
const DIFFC_COS_Q1: f32 = -0x1.55b076p-6f;
const DIFFC_COS_Q2: f32 = 0x1.d429a8p-11f;

// (sin 2 pi u, cos 2 pi u) for u in [0, 1] (rng::sincos_2pi_f32): the result's x is the sine and
// its y the cosine, the order of the Rust tuple.
fn diffc_sincos_2pi(u: f32) -> vec2<f32> {
    let v = diffc_mul(u, 4.0);
    let q = u32(v);
    let r = diffc_sub(v, f32(q));
    let mirror = r > 0.5;
    let t = select(r, diffc_sub(1.0, r), mirror);
    let x = diffc_mul(t, t);
    var sr = DIFFC_SIN_R3;
    sr = diffc_add(diffc_mul(sr, x), DIFFC_SIN_R2);
    sr = diffc_add(diffc_mul(sr, x), DIFFC_SIN_R1);
    sr = diffc_add(diffc_mul(sr, x), DIFFC_SIN_R0);
    let s0 = diffc_add(diffc_mul(t, DIFFC_SIN_S1), diffc_mul(diffc_mul(t, x), sr));
    var cq = DIFFC_COS_Q2;
    cq = diffc_add(diffc_mul(cq, x), DIFFC_COS_Q1);
    cq = diffc_add(diffc_mul(cq, x), DIFFC_COS_Q0);
    let c0 = diffc_add(1.0, diffc_add(diffc_mul(x, DIFFC_COS_C2), diffc_mul(diffc_mul(x, x), cq)));
    let s = select(s0, c0, mirror);
    let c = select(c0, s0, mirror);
    switch q & 3u {
        case 0u: {
            return vec2<f32>(s, c);
        }
        case 1u: {
            return vec2<f32>(c, -s);
        }
        case 2u: {
            return vec2<f32>(-s, -c);
        }
        default: {
            return vec2<f32>(-c, s);
        }
    }
}

// The correctly rounded square root of a positive normal x, from integer operations
// (rng::sqrt_f32_exact's digit-by-digit method).
fn diffc_sqrt_normal(bits: u32) -> f32 {
    let e = i32(bits >> 23u) - 127;
    let m = (bits & 0x007FFFFFu) | 0x00800000u;
    // x = m 2^(e-23) = a 2^24 2^(2j): the shift s (25 or 26) makes e - 23 - s even.
    var a = m << 1u;
    var s = 25;
    if (e & 1) != 0 {
        a = m << 2u;
        s = 26;
    }
    let j = (e - 23 - s) / 2;
    var root = 0u;
    var rem = 0u;
    for (var it = 0u; it < 25u; it++) {
        var pair = 0u;
        if it <= 12u {
            pair = (a >> (24u - 2u * it)) & 3u;
        }
        rem = (rem << 2u) | pair;
        let trial = (root << 2u) | 1u;
        root = root << 1u;
        if rem >= trial {
            rem = rem - trial;
            root = root | 1u;
        }
    }
    let n = (root + 1u) >> 1u;
    return bitcast<f32>((u32(j + 150) << 23u) + n);
}

// Correctly rounded square root from integer operations (rng::sqrt_f32_exact): WGSL's sqrt is
// not correctly rounded. sqrt(+-0) = +-0, sqrt(+inf) = +inf, NaN for x < 0 or NaN.
fn diffc_sqrt(x: f32) -> f32 {
    let bits = bitcast<u32>(x);
    let magnitude = bits & 0x7FFFFFFFu;
    if magnitude == 0u || bits == 0x7F800000u {
        return x;
    }
    if bits >= 0x80000000u || magnitude > 0x7F800000u {
        return diffc_nan(bits);
    }
    if bits < 0x00800000u {
        // sqrt(x 2^24) 2^-12, with x 2^24 = bits 2^-125 formed from the integer (exact, normal).
        return diffc_mul(diffc_sqrt_normal(bitcast<u32>(diffc_mul(f32(bits), 0x1p-125f))), 0x1p-12f);
    }
    return diffc_sqrt_normal(bits);
}

// Box-Muller (rng::box_muller): (r cos 2 pi u1, r sin 2 pi u1) with r = sqrt(-2 ln u0).
fn diffc_box_muller(u0: f32, u1: f32) -> vec2<f32> {
    let r = diffc_sqrt(diffc_mul(-2.0, diffc_log(u0)));
    let sc = diffc_sincos_2pi(u1);
    return vec2<f32>(diffc_mul(r, sc.y), diffc_mul(r, sc.x));
}

// The four normals of one block (rng::normals_from_words).
fn diffc_normals_from_words(w: vec4<u32>) -> vec4<f32> {
    let z01 = diffc_box_muller(diffc_uniform_open(w.x), diffc_uniform_open(w.y));
    let z23 = diffc_box_muller(diffc_uniform_open(w.z), diffc_uniform_open(w.w));
    return vec4<f32>(z01, z23);
}

// Element `index` of a standard normal draw: z[index % 4] of block index / 4 (rng::normal).
fn diffc_normal(key: vec2<u32>, stream: u32, step: u32, index: vec2<u32>) -> f32 {
    let w = diffc_block_words(key, stream, step, diffc_block_of(index));
    let k = index.x & 3u;
    let pair = k & 2u;
    let z = diffc_box_muller(diffc_uniform_open(w[pair]), diffc_uniform_open(w[pair + 1u]));
    return z[k & 1u];
}

// Index + d on (low, high) pairs.
fn diffc_index_add(index: vec2<u32>, d: u32) -> vec2<u32> {
    let lo = index.x + d;
    return vec2<u32>(lo, index.y + select(0u, 1u, lo < d));
}

// Elements index .. index + 3 of a standard normal draw, each equal to diffc_normal's: one
// block and two Box-Muller pairs when index is a multiple of 4 (a kernel's four lanes).
fn diffc_normal4(key: vec2<u32>, stream: u32, step: u32, index: vec2<u32>) -> vec4<f32> {
    if ((index.x & 3u) == 0u) {
        return diffc_normals_from_words(diffc_block_words(key, stream, step, diffc_block_of(index)));
    }
    return vec4<f32>(
        diffc_normal(key, stream, step, index),
        diffc_normal(key, stream, step, diffc_index_add(index, 1u)),
        diffc_normal(key, stream, step, diffc_index_add(index, 2u)),
        diffc_normal(key, stream, step, diffc_index_add(index, 3u)));
}

// Elements index .. index + 3 of a uniform draw, each equal to diffc_uniform's.
fn diffc_uniform4(key: vec2<u32>, stream: u32, step: u32, index: vec2<u32>) -> vec4<f32> {
    if ((index.x & 3u) == 0u) {
        let w = diffc_block_words(key, stream, step, diffc_block_of(index));
        return vec4<f32>(diffc_uniform_open(w.x), diffc_uniform_open(w.y),
                         diffc_uniform_open(w.z), diffc_uniform_open(w.w));
    }
    return vec4<f32>(
        diffc_uniform(key, stream, step, index),
        diffc_uniform(key, stream, step, diffc_index_add(index, 1u)),
        diffc_uniform(key, stream, step, diffc_index_add(index, 2u)),
        diffc_uniform(key, stream, step, diffc_index_add(index, 3u)));
}
