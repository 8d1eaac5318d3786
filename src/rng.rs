//! Counter-based randomness, shared bit for bit by the interpreter, the CPU backend and WGSL.
//!
//! Layout of a draw:
//! - The generator is Philox-4x32-10 exactly as in Random123 (`philox4x32_10`).
//! - The key is (seed low 32 bits, seed high 32 bits) of a `u64` seed.
//! - The counter is [block low 32 bits, block high 32 bits, step, stream].
//! - `block` is a `u64`; `step` is a `u32` (the sampler step or the call index); `stream` is a `u32`, one per draw site.
//! - Element `i` of a draw uses block `i / 4` and word `i % 4` of that block's output.
//! - So every element's value depends only on (seed, stream, step, i), never on thread count, chunking or batch layout.
//!
//! Transforms (each a pure public function, so supplied `noise`/`uniforms` inputs can replace any draw):
//! - A uniform is `uniform_open(word)`: the top 23 bits of the word, plus one half, times 2^-23.
//! - It lies in [2^-24, 1 - 2^-24], strictly inside (0, 1), and every step is exact in f32.
//! - (The 24-bit form `((w >> 8) + 0.5) * 2^-24` is not exact: `k + 0.5` needs 25 bits once `k >= 2^23`, and `k = 2^24 - 1` rounds to exactly 1.0.)
//! - Normals come from Box–Muller, four per block: words (w0, w1) give (z0, z1) and words (w2, w3) give (z2, z3).
//! - With u0 = uniform_open(w0) and u1 = uniform_open(w1): r = sqrt(-2 ln u0), z0 = r cos 2πu1, z1 = r sin 2πu1.
//! - Element `i` of a normal draw is z[i % 4] of block i / 4, so a normal and a uniform draw at the same site share words.
//! - |z| never exceeds sqrt(-2 ln 2^-24) ≈ 5.768: the tail beyond has probability about 8e-9 and is never drawn.
//! - A Bernoulli draw is `u < p` with one uniform per element.
//! - A categorical draw is the inverse CDF with one uniform per element (see `categorical_from_uniform`).
//!
//! Portable arithmetic (the contract the Cranelift and WGSL ports reproduce):
//! - `log_f32` and `sincos_2pi_f32` use only f32 `+`, `-`, `*`, integer conversions, comparisons and bit manipulation.
//! - No division, no FMA, no f64, no tables: each function is a fixed sequence of IEEE f32 operations in the order written.
//! - WGSL's `/` (2.5 ULP) and `sqrt` (inherited from `inverseSqrt`) are not correctly rounded, so the ports must not use them.
//! - The only square root is `f32::sqrt`, correctly rounded by IEEE 754 and equal bit for bit to `sqrt_f32_exact`.
//! - `sqrt_f32_exact` is an integer-only square root: the port for targets whose `sqrt` is not correctly rounded.
//! - Rust never contracts `a * b + c` into an FMA; a port must not either (WGSL may fuse, so the GPU tests check it).
//! - No intermediate of a generated draw is subnormal, so flush-to-zero on a GPU does not change a value.
//!
//! Measured accuracy against f64, exhaustively (`tests/rng.rs` holds the bounds 1 ulp and 1e-7 on sweeps):
//! - `log_f32`: at most 0.875 ulp over all 2^23 uniforms and 0.889 ulp over every positive finite f32 (faithfully rounded).
//! - `sincos_2pi_f32`: absolute error at most 6.85e-8 over all 2^23 uniforms and 7.2e-8 over every f32 in [0, 1].
//! - `sqrt_f32_exact` equals `f32::sqrt` on every positive finite f32.

/// Philox-4x32 multiplier applied to counter word 0.
pub const PHILOX_M0: u32 = 0xD251_1F53;
/// Philox-4x32 multiplier applied to counter word 2.
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
/// Weyl increment of key word 0 between rounds.
pub const PHILOX_W0: u32 = 0x9E37_79B9;
/// Weyl increment of key word 1 between rounds.
pub const PHILOX_W1: u32 = 0xBB67_AE85;

/// High and low 32 bits of the 64-bit product `a * b`.
#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = u64::from(a) * u64::from(b);
    ((p >> 32) as u32, p as u32)
}

/// One Philox-4x32 round (Random123's `_philox4x32round`).
#[inline(always)]
fn philox_round(c: [u32; 4], k: [u32; 2]) -> [u32; 4] {
    let (hi0, lo0) = mulhilo(PHILOX_M0, c[0]);
    let (hi1, lo1) = mulhilo(PHILOX_M1, c[2]);
    [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0]
}

/// Philox-4x32 with 10 rounds, exactly as Random123's `philox4x32(ctr, key)`:
/// round, then bump the key by the Weyl constants before each of rounds 2 to 10.
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    c = philox_round(c, k);
    for _ in 1..10 {
        k = [k[0].wrapping_add(PHILOX_W0), k[1].wrapping_add(PHILOX_W1)];
        c = philox_round(c, k);
    }
    c
}

/// The Philox key of a seed: (low 32 bits, high 32 bits).
#[inline]
pub fn key(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// The Philox counter of a block: [block low, block high, step, stream].
#[inline]
pub fn counter(stream: u32, step: u32, block: u64) -> [u32; 4] {
    [block as u32, (block >> 32) as u32, step, stream]
}

/// The four words of one block: elements `4 * block .. 4 * block + 4` of the draw site.
#[inline]
pub fn block_words(seed: u64, stream: u32, step: u32, block: u64) -> [u32; 4] {
    philox4x32_10(counter(stream, step, block), key(seed))
}

/// The word of element `i`: word `i % 4` of block `i / 4`.
#[inline]
pub fn word(seed: u64, stream: u32, step: u32, i: u64) -> u32 {
    block_words(seed, stream, step, i / 4)[(i % 4) as usize]
}

// ---------------------------------------------------------------------------------------------
// Transforms: pure functions of words or uniforms.
// ---------------------------------------------------------------------------------------------

/// 2^-23.
const TWO_POW_M23: f32 = 1.0 / 8_388_608.0;

/// A uniform in (0, 1) from one word: `((word >> 9) as f32 + 0.5) * 2^-23`.
///
/// Every step is exact: `word >> 9 < 2^23`, so adding one half needs at most 24 bits, and the
/// scaling is by a power of two. The values are the 2^23 midpoints (k + 1/2) 2^-23, from 2^-24
/// to 1 - 2^-24; the set is symmetric under u -> 1 - u and its mean is exactly 1/2.
#[inline]
pub fn uniform_open(word: u32) -> f32 {
    ((word >> 9) as f32 + 0.5) * TWO_POW_M23
}

/// Bits of the f32 nearest sqrt(2) (1.41421354, just below it): mantissas at or above it are halved.
pub const SQRT2_BITS: u32 = 0x3FB5_04F3;
/// ln 2 split for Cody–Waite: `LN2_HI` has 17 significant bits, so `e * LN2_HI` is exact for |e| < 128.
pub const LN2_HI: f32 = f32::from_bits(0x3F31_7180); // 0.693145751953125
pub const LN2_LO: f32 = f32::from_bits(0x3717_F7D1); // 9.0580006e-6
/// 2^23, to lift subnormals into the normal range.
const TWO_POW_23: f32 = 8_388_608.0;

/// Coefficients of P(f) ≈ (ln(1 + f) - f) / f^2 on [sqrt(1/2) - 1, sqrt(2) - 1], degree 8,
/// a near-minimax fit (Lawson's weighted least squares) for the relative error of ln(1 + f),
/// rounded to f32. The fit's own error is 4.1e-9 relative (0.07 ulp).
pub const LOG_P: [f32; 9] = [
    f32::from_bits(0xBEFF_FFFC), // -0.49999988
    f32::from_bits(0x3EAA_AAA8), //  0.33333325
    f32::from_bits(0xBE80_0213), // -0.25001583
    f32::from_bits(0x3E4C_D1FB), //  0.20001976
    f32::from_bits(0xBE2A_13B3), // -0.16609077
    f32::from_bits(0x3E11_38AF), //  0.14181779
    f32::from_bits(0xBE07_9BAB), // -0.13242976
    f32::from_bits(0x3E04_24DF), //  0.12904690
    f32::from_bits(0xBD9C_19CD), // -0.07622109
];

/// Natural logarithm in f32 from `+`, `-`, `*` and bit manipulation only (see the module doc).
///
/// x = 2^e m with m in [sqrt(1/2), sqrt(2)); f = m - 1 is exact (Sterbenz);
/// ln x = e ln2_hi + (f + (f^2 P(f) + e ln2_lo)), with P evaluated by Horner from the highest
/// coefficient. Subnormal x is first scaled by 2^23 (exact). Special values: ln(+0) = -inf,
/// ln(+inf) = +inf, and negative x or NaN give NaN (-0 counts as zero).
/// Accuracy: at most 0.89 ulp on every positive finite f32 (0.875 on the values of `uniform_open`).
#[inline]
pub fn log_f32(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        return x;
    }
    let mut bits = x.to_bits();
    let mut e: i32 = -127;
    if bits < 0x0080_0000 {
        bits = (x * TWO_POW_23).to_bits();
        e = -127 - 23;
    }
    e += (bits >> 23) as i32;
    let mut mbits = (bits & 0x007F_FFFF) | 0x3F80_0000;
    if mbits >= SQRT2_BITS {
        mbits -= 0x0080_0000;
        e += 1;
    }
    let f = f32::from_bits(mbits) - 1.0;
    let mut p = LOG_P[8];
    p = p * f + LOG_P[7];
    p = p * f + LOG_P[6];
    p = p * f + LOG_P[5];
    p = p * f + LOG_P[4];
    p = p * f + LOG_P[3];
    p = p * f + LOG_P[2];
    p = p * f + LOG_P[1];
    p = p * f + LOG_P[0];
    let t = (f * f) * p;
    let ef = e as f32;
    let hi = ef * LN2_HI;
    let lo = f + (t + ef * LN2_LO);
    hi + lo
}

/// sin(π/2 · t) = t·S1 + t·x·R(x) with x = t^2, for t in [0, 1/2]; S1 is π/2 rounded to f32.
pub const SIN_S1: f32 = f32::from_bits(0x3FC9_0FDB); // 1.5707964
pub const SIN_R: [f32; 4] = [
    f32::from_bits(0xBF25_5E0E), // -0.64596641
    f32::from_bits(0x3DA3_4776), //  0.079726145
    f32::from_bits(0xBB9F_42B3), // -0.0048602461
    f32::from_bits(0x39F9_C0C3), //  0.00047636600
];
/// cos(π/2 · t) = 1 + (x·C2 + x^2·Q(x)) with x = t^2, for t in [0, 1/2]; C2 is -π²/8 rounded to f32.
pub const COS_C2: f32 = f32::from_bits(0xBF9D_E9E6); // -1.2337005
pub const COS_Q: [f32; 3] = [
    f32::from_bits(0x3E81_E0D7), //  0.25366852
    f32::from_bits(0xBCAA_D83B), // -0.020855060
    f32::from_bits(0x3A6A_14D4), //  0.00089294952
];

/// (sin 2πu, cos 2πu) in f32 from `+`, `-`, `*`, a float-to-integer conversion and selects.
///
/// Domain: u in [0, 1] (the uniforms of `uniform_open`, and any supplied u in that range).
/// Reduction, all exact: v = 4u; q = trunc(v) (an integer conversion); r = v - q;
/// if r > 1/2 the octant is mirrored, t = 1 - r (Sterbenz), and sine and cosine swap.
/// Then sin(π/2·t) = t·S1 + (t·x)·R(x) and cos(π/2·t) = 1 + (x·C2 + (x·x)·Q(x)), x = t·t, with
/// near-minimax coefficients in f32; the quadrant q mod 4 permutes and negates the pair.
/// Accuracy: absolute error at most 6.85e-8 on the values of `uniform_open`, 7.2e-8 on every f32 in [0, 1].
#[inline]
pub fn sincos_2pi_f32(u: f32) -> (f32, f32) {
    let v = u * 4.0;
    let q = v as u32; // trunc; v is in [0, 4]
    let r = v - q as f32;
    let mirror = r > 0.5;
    let t = if mirror { 1.0 - r } else { r };
    let x = t * t;
    let mut sr = SIN_R[3];
    sr = sr * x + SIN_R[2];
    sr = sr * x + SIN_R[1];
    sr = sr * x + SIN_R[0];
    let s = t * SIN_S1 + (t * x) * sr;
    let mut cq = COS_Q[2];
    cq = cq * x + COS_Q[1];
    cq = cq * x + COS_Q[0];
    let c = 1.0 + (x * COS_C2 + (x * x) * cq);
    let (s, c) = if mirror { (c, s) } else { (s, c) };
    match q & 3 {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

/// Correctly rounded square root from 32-bit integer operations only (no float arithmetic
/// except exact scalings by powers of two for subnormal inputs).
///
/// It equals `f32::sqrt` bit for bit on every positive finite f32 (checked exhaustively once; the
/// tests sweep the radicands Box–Muller meets and a stride of all floats); ports to targets whose `sqrt` is not correctly rounded (WGSL) use it.
/// Special values: sqrt(±0) = ±0, sqrt(+inf) = +inf, negative x or NaN give NaN.
///
/// Method: x = m 2^(e-23) with a 24-bit m; write x = a 2^24 2^(2j) with a < 2^26 so that the
/// integer square root q of a 2^24 has 25 bits (24 and a guard bit), computed digit by digit
/// with a remainder below 2^27. The result is (q + 1) / 2 rounded down: an exact tie is
/// impossible because the radicand ends in 24 zero bits.
pub fn sqrt_f32_exact(x: f32) -> f32 {
    if x == 0.0 || x == f32::INFINITY {
        return x;
    }
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x.to_bits() < 0x0080_0000 {
        // sqrt(x 2^24) 2^-12: both scalings are exact and the result is normal.
        return sqrt_f32_exact(x * 16_777_216.0) * (1.0 / 4096.0);
    }
    let bits = x.to_bits();
    let e = (bits >> 23) as i32 - 127;
    let m = (bits & 0x007F_FFFF) | 0x0080_0000;
    // x = m 2^(e-23) = a 2^24 2^(2j): the shift s (25 or 26) makes e - 23 - s even.
    let (a, s) = if e & 1 == 0 {
        (m << 1, 25)
    } else {
        (m << 2, 26)
    };
    let j = (e - 23 - s) / 2;
    // Digit-by-digit square root of a 2^24: 25 result bits; the first 13 pairs of radicand
    // bits come from a, the last 12 pairs are zero.
    let mut root: u32 = 0;
    let mut rem: u32 = 0;
    for it in 0..25u32 {
        let pair = if it <= 12 {
            (a >> (24 - 2 * it)) & 3
        } else {
            0
        };
        rem = (rem << 2) | pair;
        let trial = (root << 2) | 1;
        root <<= 1;
        if rem >= trial {
            rem -= trial;
            root |= 1;
        }
    }
    let n = (root + 1) >> 1; // in [2^23, 2^24]; 2^24 carries into the exponent below
    f32::from_bits((((j + 150) as u32) << 23) + n)
}

/// Box–Muller: two standard normals from two uniforms, [r cos 2πu1, r sin 2πu1] with
/// r = sqrt(-2 ln u0), using `log_f32`, `sincos_2pi_f32` and the correctly rounded sqrt.
/// Expects u0 in (0, 1] and u1 in [0, 1].
#[inline]
pub fn box_muller(u0: f32, u1: f32) -> [f32; 2] {
    let r = (-2.0 * log_f32(u0)).sqrt();
    let (s, c) = sincos_2pi_f32(u1);
    [r * c, r * s]
}

/// The four normals of one block: Box–Muller on (w0, w1) and on (w2, w3).
#[inline]
pub fn normals_from_words(w: [u32; 4]) -> [f32; 4] {
    let [z0, z1] = box_muller(uniform_open(w[0]), uniform_open(w[1]));
    let [z2, z3] = box_muller(uniform_open(w[2]), uniform_open(w[3]));
    [z0, z1, z2, z3]
}

/// Bernoulli from a uniform: `u < p`. So p <= 0 (or NaN) never fires and p >= 1 always
/// fires for u in (0, 1).
#[inline]
pub fn bernoulli_from_uniform(u: f32, p: f32) -> bool {
    u < p
}

/// A class from one uniform by the inverse CDF, in f32, left to right.
///
/// - total = p_0 + p_1 + … summed left to right; target = u · total (one rounding).
/// - The answer is the smallest c with target < cumsum_c, where cumsum is the same left-to-right
///   running sum (so cumsum_{K-1} equals total bit for bit).
/// - Ties: the classes own half-open intervals [cumsum_{c-1}, cumsum_c), so a target equal to a
///   boundary goes to the class whose interval starts there, and a class with p_c = 0 (an empty
///   interval) is never chosen.
/// - If no c qualifies (an all-zero row, or a supplied u = 1; for u < 1, u · total stays below total
///   after rounding), the answer is the last class with p_c > 0, or 0 when there is none.
/// - Probabilities must be non-negative and finite; they need not sum to one.
/// - A positive p_c so small that adding it does not change the running sum is never chosen.
#[inline]
pub fn categorical_from_uniform(u: f32, probs: &[f32]) -> usize {
    let mut total = 0.0f32;
    for &p in probs {
        total += p;
    }
    let target = u * total;
    let mut cum = 0.0f32;
    let mut last_positive = 0;
    for (c, &p) in probs.iter().enumerate() {
        cum += p;
        if target < cum {
            return c;
        }
        if p > 0.0 {
            last_positive = c;
        }
    }
    last_positive
}

// ---------------------------------------------------------------------------------------------
// Draws: element i of the draw at (seed, stream, step).
// ---------------------------------------------------------------------------------------------

/// Element `i` of a uniform draw: `uniform_open(word(seed, stream, step, i))`.
#[inline]
pub fn uniform(seed: u64, stream: u32, step: u32, i: u64) -> f32 {
    uniform_open(word(seed, stream, step, i))
}

/// Element `i` of a standard normal draw: z[i % 4] of block i / 4 (see the module doc).
#[inline]
pub fn normal(seed: u64, stream: u32, step: u32, i: u64) -> f32 {
    let w = block_words(seed, stream, step, i / 4);
    let k = (i % 4) as usize;
    let pair = k & !1; // words 0-1 or 2-3
    box_muller(uniform_open(w[pair]), uniform_open(w[pair + 1]))[k & 1]
}

/// Element `i` of a Bernoulli(p) draw: `uniform(…, i) < p`.
#[inline]
pub fn bernoulli(seed: u64, stream: u32, step: u32, i: u64, p: f32) -> bool {
    bernoulli_from_uniform(uniform(seed, stream, step, i), p)
}

/// Element `i` of a categorical draw with (unnormalised) class probabilities `probs`:
/// `categorical_from_uniform(uniform(…, i), probs)`.
#[inline]
pub fn categorical(seed: u64, stream: u32, step: u32, i: u64, probs: &[f32]) -> usize {
    categorical_from_uniform(uniform(seed, stream, step, i), probs)
}

/// Runs `f(words, first_word, out_pos, count)` for each block that elements
/// `start .. start + len` touch: elements `out_pos .. out_pos + count` of the output are words
/// `first_word .. first_word + count` of that block.
#[inline]
fn for_each_block(
    seed: u64,
    stream: u32,
    step: u32,
    start: u64,
    len: usize,
    mut f: impl FnMut([u32; 4], usize, usize, usize),
) {
    let k = key(seed);
    let mut pos = 0usize;
    let mut i = start;
    while pos < len {
        let first = (i % 4) as usize;
        let count = (4 - first).min(len - pos);
        let words = philox4x32_10(counter(stream, step, i / 4), k);
        f(words, first, pos, count);
        pos += count;
        i = i.wrapping_add(count as u64);
    }
}

/// Elements `start .. start + out.len()` of a uniform draw; equal to `uniform` element by element.
pub fn fill_uniform(seed: u64, stream: u32, step: u32, start: u64, out: &mut [f32]) {
    for_each_block(
        seed,
        stream,
        step,
        start,
        out.len(),
        |w, first, pos, count| {
            for j in 0..count {
                out[pos + j] = uniform_open(w[first + j]);
            }
        },
    );
}

/// Elements `start .. start + out.len()` of a normal draw; equal to `normal` element by element.
pub fn fill_normal(seed: u64, stream: u32, step: u32, start: u64, out: &mut [f32]) {
    for_each_block(
        seed,
        stream,
        step,
        start,
        out.len(),
        |w, first, pos, count| {
            if count == 4 {
                out[pos..pos + 4].copy_from_slice(&normals_from_words(w));
            } else {
                for j in 0..count {
                    let k = first + j;
                    let pair = k & !1;
                    out[pos + j] =
                        box_muller(uniform_open(w[pair]), uniform_open(w[pair + 1]))[k & 1];
                }
            }
        },
    );
}

/// Elements `start .. start + out.len()` of a Bernoulli draw, element j with probability `p[j]`;
/// equal to `bernoulli` element by element. Panics if `p.len() != out.len()`.
pub fn fill_bernoulli(seed: u64, stream: u32, step: u32, start: u64, p: &[f32], out: &mut [bool]) {
    assert_eq!(p.len(), out.len(), "one probability per element");
    for_each_block(
        seed,
        stream,
        step,
        start,
        out.len(),
        |w, first, pos, count| {
            for j in 0..count {
                out[pos + j] = bernoulli_from_uniform(uniform_open(w[first + j]), p[pos + j]);
            }
        },
    );
}

/// Elements `start .. start + out.len()` of a categorical draw over `k` classes, element j with
/// the probabilities `probs[j * k .. (j + 1) * k]` (row-major); equal to `categorical` element by
/// element. Panics if `probs.len() != out.len() * k`.
pub fn fill_categorical(
    seed: u64,
    stream: u32,
    step: u32,
    start: u64,
    probs: &[f32],
    k: usize,
    out: &mut [usize],
) {
    assert_eq!(
        probs.len(),
        out.len() * k,
        "one row of k probabilities per element"
    );
    for_each_block(
        seed,
        stream,
        step,
        start,
        out.len(),
        |w, first, pos, count| {
            for j in 0..count {
                let row = &probs[(pos + j) * k..(pos + j + 1) * k];
                out[pos + j] = categorical_from_uniform(uniform_open(w[first + j]), row);
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_zero_kat() {
        // Random123 kat_vectors: philox4x32 10, zero counter and key.
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627_E8D5, 0xE169_C58D, 0xBC57_AC4C, 0x9B00_DBD8]
        );
    }

    #[test]
    fn uniform_extremes_are_exact_and_open() {
        assert_eq!(uniform_open(0), 2f32.powi(-24));
        assert_eq!(uniform_open(u32::MAX), 1.0 - 2f32.powi(-24));
        assert_eq!(uniform_open(0x1FF), uniform_open(0));
        assert!(uniform_open(u32::MAX) < 1.0);
    }

    #[test]
    fn sqrt_small_cases() {
        for x in [
            0.0f32,
            1.0,
            2.0,
            4.0,
            0.25,
            3.0,
            1e-40,
            f32::MIN_POSITIVE,
            f32::MAX,
        ] {
            assert_eq!(sqrt_f32_exact(x).to_bits(), x.sqrt().to_bits(), "x = {x:e}");
        }
        assert!(sqrt_f32_exact(-1.0).is_nan());
        assert_eq!(sqrt_f32_exact(f32::INFINITY), f32::INFINITY);
    }

    #[test]
    fn log_special_values() {
        assert_eq!(log_f32(1.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(log_f32(0.0), f32::NEG_INFINITY);
        assert_eq!(log_f32(-0.0), f32::NEG_INFINITY);
        assert_eq!(log_f32(f32::INFINITY), f32::INFINITY);
        assert!(log_f32(-1.0).is_nan());
        assert!(log_f32(f32::NAN).is_nan());
        assert!((log_f32(1e-45) as f64 - (1e-45f32 as f64).ln()).abs() < 1e-5);
    }

    #[test]
    fn sincos_quadrant_points() {
        assert_eq!(sincos_2pi_f32(0.0), (0.0, 1.0));
        assert_eq!(sincos_2pi_f32(0.25), (1.0, -0.0));
        assert_eq!(sincos_2pi_f32(0.5), (-0.0, -1.0));
        assert_eq!(sincos_2pi_f32(0.75), (-1.0, 0.0));
        assert_eq!(sincos_2pi_f32(1.0), (0.0, 1.0));
    }
}
