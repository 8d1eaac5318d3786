//! The generator's fill helpers in native code, for hosts with AVX2.
//!
//! Cranelift emits 128-bit vectors only, so its fill helpers (`codegen::define_fills`) run
//! Philox on four blocks at a time. These run it on eight, with 256-bit AVX2 integer products
//! (`vpmuludq`), and Box–Muller on eight pairs, two groups interleaved. They compute the same
//! IEEE f32 operations in the same order as `crate::rng` (no FMA: Rust never contracts), so every
//! value is bit for bit the one `rng::normal` and `rng::uniform` give; the tests check that.
//!
//! The JIT calls them in place of the Cranelift helpers when the CPU has AVX2 (`available`) and
//! `Checks::native` allows it; objects from `diffc build` keep the Cranelift helpers, so they run
//! on any x86-64.
//!
//! Contract (the same as the Cranelift helpers'): `fill(key0, key1, step, stream, block0,
//! blocks, out)` writes elements `4 block0 .. 4 (block0 + blocks)` of the draw at `out`, and
//! may write up to the next multiple of 16 elements.

/// Symbol names the JIT registers for the two fills.
pub const FILL_NORMAL: &str = "diffc_native_fill_normal";
pub const FILL_UNIFORM: &str = "diffc_native_fill_uniform";

/// Does this CPU run the native fills?
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The fills' symbols and addresses, when this CPU runs them.
pub fn symbols() -> Option<[(&'static str, *const u8); 2]> {
    #[cfg(target_arch = "x86_64")]
    if available() {
        return Some([
            (FILL_NORMAL, avx2::fill_c::<true> as *const u8),
            (FILL_UNIFORM, avx2::fill_c::<false> as *const u8),
        ]);
    }
    None
}

/// Elements `4 block0 .. 4 (block0 + blocks)` of a draw, through the native fill; `None` when
/// this CPU has none. `out` must hold `4 blocks` rounded up to a multiple of 16 elements.
pub fn fill(
    normal: bool,
    key: [u32; 2],
    step: u32,
    stream: u32,
    block0: u64,
    out: &mut [f32],
) -> Option<()> {
    let [(_, n), (_, u)] = symbols()?;
    let blocks = out.len() / 4;
    assert!(
        out.len().is_multiple_of(16),
        "a native fill writes whole groups of 16 elements"
    );
    type Fill = unsafe extern "C" fn(u32, u32, u32, u32, u64, u64, *mut f32);
    // SAFETY: the addresses are the `extern "C"` functions below, which `symbols` returns only
    // when the CPU has AVX2; `out` holds the 4 * blocks elements they write (a multiple of 16).
    unsafe {
        let f = std::mem::transmute::<*const u8, Fill>(if normal { n } else { u });
        f(
            key[0],
            key[1],
            step,
            stream,
            block0,
            blocks as u64,
            out.as_mut_ptr(),
        );
    }
    Some(())
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use crate::rng;
    use std::arch::x86_64::*;

    /// High and low halves of the eight products `x * m` of 32-bit lanes.
    #[inline(always)]
    unsafe fn mulhilo(x: __m256i, m: __m256i) -> (__m256i, __m256i) {
        let even = _mm256_mul_epu32(x, m);
        let odd = _mm256_mul_epu32(_mm256_srli_epi64(x, 32), m);
        let lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0b1010_1010);
        let hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0b1010_1010);
        (hi, lo)
    }

    /// Philox-4x32-10 on G groups of eight blocks, rounds interleaved across the groups.
    #[inline(always)]
    unsafe fn philox<const G: usize>(mut c: [[__m256i; 4]; G], key: [u32; 2]) -> [[__m256i; 4]; G] {
        let m0 = _mm256_set1_epi32(rng::PHILOX_M0 as i32);
        let m1 = _mm256_set1_epi32(rng::PHILOX_M1 as i32);
        let mut k = key;
        for r in 0..10 {
            if r > 0 {
                k = [
                    k[0].wrapping_add(rng::PHILOX_W0),
                    k[1].wrapping_add(rng::PHILOX_W1),
                ];
            }
            let k0 = _mm256_set1_epi32(k[0] as i32);
            let k1 = _mm256_set1_epi32(k[1] as i32);
            for w in c.iter_mut() {
                let (hi0, lo0) = mulhilo(w[0], m0);
                let (hi1, lo1) = mulhilo(w[2], m1);
                *w = [
                    _mm256_xor_si256(_mm256_xor_si256(hi1, w[1]), k0),
                    lo1,
                    _mm256_xor_si256(_mm256_xor_si256(hi0, w[3]), k1),
                    lo0,
                ];
            }
        }
        c
    }

    /// The counters of blocks `block .. block + 8`: [low, high, step, stream], the low word
    /// carrying into the high one.
    #[inline(always)]
    unsafe fn counters(block: u64, step: u32, stream: u32) -> [__m256i; 4] {
        let lo = _mm256_set1_epi32(block as u32 as i32);
        let c0 = _mm256_add_epi32(lo, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        // Unsigned c0 < lo (a carry) by a signed compare of both with the sign bit flipped.
        let sign = _mm256_set1_epi32(i32::MIN);
        let carry = _mm256_cmpgt_epi32(_mm256_xor_si256(lo, sign), _mm256_xor_si256(c0, sign));
        let hi = _mm256_set1_epi32((block >> 32) as u32 as i32);
        [
            c0,
            _mm256_sub_epi32(hi, carry),
            _mm256_set1_epi32(step as i32),
            _mm256_set1_epi32(stream as i32),
        ]
    }

    /// `rng::uniform_open` on eight words.
    #[inline(always)]
    unsafe fn uniform(w: __m256i) -> __m256 {
        let k = _mm256_cvtepi32_ps(_mm256_srli_epi32(w, 9));
        _mm256_mul_ps(
            _mm256_add_ps(k, _mm256_set1_ps(0.5)),
            _mm256_set1_ps(1.0 / 8_388_608.0),
        )
    }

    /// `rng::log_f32` on eight uniforms (normal, positive, finite: no special cases).
    #[inline(always)]
    unsafe fn log(u: __m256) -> __m256 {
        let bits = _mm256_castps_si256(u);
        let e = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127));
        let mb = _mm256_or_si256(
            _mm256_and_si256(bits, _mm256_set1_epi32(0x007F_FFFF)),
            _mm256_set1_epi32(0x3F80_0000),
        );
        let big = _mm256_cmpgt_epi32(mb, _mm256_set1_epi32(rng::SQRT2_BITS as i32 - 1));
        let mb = _mm256_sub_epi32(mb, _mm256_and_si256(big, _mm256_set1_epi32(0x0080_0000)));
        let e = _mm256_sub_epi32(e, big);
        let f = _mm256_sub_ps(_mm256_castsi256_ps(mb), _mm256_set1_ps(1.0));
        let mut p = _mm256_set1_ps(rng::LOG_P[8]);
        for c in rng::LOG_P[..8].iter().rev() {
            p = _mm256_add_ps(_mm256_mul_ps(p, f), _mm256_set1_ps(*c));
        }
        let t = _mm256_mul_ps(_mm256_mul_ps(f, f), p);
        let ef = _mm256_cvtepi32_ps(e);
        let hi = _mm256_mul_ps(ef, _mm256_set1_ps(rng::LN2_HI));
        let lo = _mm256_add_ps(
            f,
            _mm256_add_ps(t, _mm256_mul_ps(ef, _mm256_set1_ps(rng::LN2_LO))),
        );
        _mm256_add_ps(hi, lo)
    }

    /// `rng::sincos_2pi_f32` on eight uniforms in [0, 1): (sin 2πu, cos 2πu).
    #[inline(always)]
    unsafe fn sincos(u: __m256) -> (__m256, __m256) {
        let v = _mm256_mul_ps(u, _mm256_set1_ps(4.0));
        let q = _mm256_cvttps_epi32(v);
        let r = _mm256_sub_ps(v, _mm256_cvtepi32_ps(q));
        let mirror = _mm256_cmp_ps::<_CMP_GT_OQ>(r, _mm256_set1_ps(0.5));
        let t = _mm256_blendv_ps(r, _mm256_sub_ps(_mm256_set1_ps(1.0), r), mirror);
        let x = _mm256_mul_ps(t, t);
        let mut sr = _mm256_set1_ps(rng::SIN_R[3]);
        for c in rng::SIN_R[..3].iter().rev() {
            sr = _mm256_add_ps(_mm256_mul_ps(sr, x), _mm256_set1_ps(*c));
        }
        let s = _mm256_add_ps(
            _mm256_mul_ps(t, _mm256_set1_ps(rng::SIN_S1)),
            _mm256_mul_ps(_mm256_mul_ps(t, x), sr),
        );
        let mut cq = _mm256_set1_ps(rng::COS_Q[2]);
        for c in rng::COS_Q[..2].iter().rev() {
            cq = _mm256_add_ps(_mm256_mul_ps(cq, x), _mm256_set1_ps(*c));
        }
        let c = _mm256_add_ps(
            _mm256_set1_ps(1.0),
            _mm256_add_ps(
                _mm256_mul_ps(x, _mm256_set1_ps(rng::COS_C2)),
                _mm256_mul_ps(_mm256_mul_ps(x, x), cq),
            ),
        );
        // The mirror swaps sine and cosine, and so does an odd quadrant: swap when exactly one
        // does (blendv reads the sign bit; bit 0 of q shifted to it).
        let odd = _mm256_castsi256_ps(_mm256_slli_epi32(q, 31));
        let swap = _mm256_xor_ps(mirror, odd);
        let a = _mm256_blendv_ps(s, c, swap);
        let b = _mm256_blendv_ps(c, s, swap);
        // Quadrants 2 and 3 negate the sine; quadrants 1 and 2 negate the cosine.
        let two = _mm256_set1_epi32(2);
        let ssign = _mm256_slli_epi32(_mm256_and_si256(q, two), 30);
        let q1 = _mm256_add_epi32(q, _mm256_set1_epi32(1));
        let csign = _mm256_slli_epi32(_mm256_and_si256(q1, two), 30);
        (
            _mm256_xor_ps(a, _mm256_castsi256_ps(ssign)),
            _mm256_xor_ps(b, _mm256_castsi256_ps(csign)),
        )
    }

    /// Box–Muller on eight pairs: (r cos 2πu1, r sin 2πu1), r = sqrt(-2 ln u0).
    #[inline(always)]
    unsafe fn box_muller(u0: __m256, u1: __m256) -> (__m256, __m256) {
        let r = _mm256_sqrt_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0), log(u0)));
        let (s, c) = sincos(u1);
        (_mm256_mul_ps(r, c), _mm256_mul_ps(r, s))
    }

    /// Store word j of eight blocks (`z[j]`, lane b = block b) in element order, blocks 0–3
    /// always and 4–7 when `all`.
    #[inline(always)]
    unsafe fn store(dst: *mut f32, z: [__m256; 4], all: bool) {
        let t0 = _mm256_unpacklo_ps(z[0], z[1]);
        let t1 = _mm256_unpackhi_ps(z[0], z[1]);
        let t2 = _mm256_unpacklo_ps(z[2], z[3]);
        let t3 = _mm256_unpackhi_ps(z[2], z[3]);
        // Rows of blocks (0, 4), (1, 5), (2, 6), (3, 7).
        let r0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let r1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let r2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let r3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        _mm256_storeu_ps(dst, _mm256_permute2f128_ps::<0x20>(r0, r1));
        _mm256_storeu_ps(dst.add(8), _mm256_permute2f128_ps::<0x20>(r2, r3));
        if all {
            _mm256_storeu_ps(dst.add(16), _mm256_permute2f128_ps::<0x31>(r0, r1));
            _mm256_storeu_ps(dst.add(24), _mm256_permute2f128_ps::<0x31>(r2, r3));
        }
    }

    /// The four values of each of eight blocks from its words.
    #[inline(always)]
    unsafe fn values(w: [__m256i; 4], normal: bool) -> [__m256; 4] {
        let u = [uniform(w[0]), uniform(w[1]), uniform(w[2]), uniform(w[3])];
        if normal {
            let (z0, z1) = box_muller(u[0], u[1]);
            let (z2, z3) = box_muller(u[2], u[3]);
            [z0, z1, z2, z3]
        } else {
            u
        }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn fill<const NORMAL: bool>(
        key: [u32; 2],
        step: u32,
        stream: u32,
        block0: u64,
        blocks: u64,
        out: *mut f32,
    ) {
        let mut block = block0;
        let mut left = blocks;
        let mut dst = out;
        while left >= 16 {
            let c = [
                counters(block, step, stream),
                counters(block.wrapping_add(8), step, stream),
            ];
            let w = philox(c, key);
            store(dst, values(w[0], NORMAL), true);
            store(dst.add(32), values(w[1], NORMAL), true);
            block = block.wrapping_add(16);
            left -= 16;
            dst = dst.add(64);
        }
        while left > 0 {
            let [w] = philox([counters(block, step, stream)], key);
            // The last group writes whole groups of four blocks.
            let all = left > 4;
            store(dst, values(w, NORMAL), all);
            block = block.wrapping_add(8);
            left = left.saturating_sub(8);
            dst = dst.add(32);
        }
    }

    /// The normal fill (`NORMAL`) or the uniform fill; see the module doc for the contract.
    ///
    /// # Safety
    /// The CPU has AVX2, and `out` holds `4 blocks` floats rounded up to a multiple of 16.
    pub unsafe extern "C" fn fill_c<const NORMAL: bool>(
        key0: u32,
        key1: u32,
        step: u32,
        stream: u32,
        block0: u64,
        blocks: u64,
        out: *mut f32,
    ) {
        fill::<NORMAL>([key0, key1], step, stream, block0, blocks, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;

    /// Every (block0, blocks) shape the kernels use, and counters that carry into the high word,
    /// against `rng::fill_*` bit for bit.
    #[test]
    fn native_fills_equal_the_generator() {
        if !available() {
            // Without AVX2 there is no native fill, and the JIT keeps the Cranelift helpers.
            assert!(symbols().is_none());
            assert!(fill(true, [0, 0], 0, 0, 0, &mut [0.0; 16]).is_none());
            return;
        }
        let starts = [0u64, 1, 7, 63, (1 << 32) - 5, (1 << 32) - 20, (3 << 32) - 1];
        for seed in [0u64, 0x1234_5678_9ABC_DEF0] {
            for &block0 in &starts {
                for blocks in [1usize, 3, 4, 5, 8, 9, 15, 16, 17, 33, 65] {
                    let len = (4 * blocks).div_ceil(16) * 16;
                    for normal in [true, false] {
                        let mut got = vec![f32::NAN; len];
                        fill(normal, rng::key(seed), 11, 3, block0, &mut got).unwrap();
                        let mut want = vec![0f32; 4 * blocks];
                        if normal {
                            rng::fill_normal(seed, 3, 11, 4 * block0, &mut want);
                        } else {
                            rng::fill_uniform(seed, 3, 11, 4 * block0, &mut want);
                        }
                        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                            assert_eq!(
                                w.to_bits(),
                                g.to_bits(),
                                "normal {normal}, seed {seed}, block0 {block0}, blocks {blocks}, element {i}: {w} vs {g}"
                            );
                        }
                    }
                }
            }
        }
    }
}
