// Math for WGSL kernels beyond WGSL's built-ins: expm1, log1p, powf, and the pairs of f32 that stand
// for the kernel IR's f64 values (WGSL has no f64 without an extension most devices lack).
//
// This file is appended to rng.wgsl (it uses `diffc_add` and `diffc_sub`, which keep a driver
// from reassociating the sums whose rounding errors the pairs carry).

// exp(x) - 1 without cancellation near 0: a degree-8 Taylor polynomial on |x| < 0.5 (the
// first omitted term is below 2^-27 relative), exp(x) - 1 elsewhere.
fn diffc_expm1(x: f32) -> f32 {
    if (abs(x) < 0.5) {
        var p = 1.0 / 40320.0;
        p = p * x + 1.0 / 5040.0;
        p = p * x + 1.0 / 720.0;
        p = p * x + 1.0 / 120.0;
        p = p * x + 1.0 / 24.0;
        p = p * x + 1.0 / 6.0;
        p = p * x + 0.5;
        p = p * x + 1.0;
        return p * x;
    }
    return exp(x) - 1.0;
}

// log(1 + x) without cancellation near 0: 2 atanh(s) with s = x / (2 + x), as an odd series in
// s through s^15 on -0.5 < x < 1 (|s| < 1/3: the first omitted term is below 2^-28 relative),
// log(1 + x) elsewhere.
fn diffc_log1p(x: f32) -> f32 {
    if (x > -0.5 && x < 1.0) {
        let s = x / (2.0 + x);
        let s2 = s * s;
        var p = 1.0 / 15.0;
        p = p * s2 + 1.0 / 13.0;
        p = p * s2 + 1.0 / 11.0;
        p = p * s2 + 1.0 / 9.0;
        p = p * s2 + 1.0 / 7.0;
        p = p * s2 + 1.0 / 5.0;
        p = p * s2 + 1.0 / 3.0;
        p = p * s2 + 1.0;
        return 2.0 * s * p;
    }
    return log(1.0 + x);
}

// The kernel IR's f64 values are pairs (high, low) of f32 whose sum is the value. Sums and
// differences keep the rounding error of the high parts (Knuth's two-sum), so that a reduction
// over many elements loses no more than an f64 sum would at f32 precision per term; products,
// quotients and functions of a pair round it to one f32 first.

// True when x is infinite or NaN.
fn diffc_nonfinite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7F800000u) == 0x7F800000u;
}

fn diffc_df_add(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let s = diffc_add(a.x, b.x);
    if (diffc_nonfinite(s)) {
        return vec2<f32>(s, 0.0);
    }
    let v = diffc_sub(s, a.x);
    let e = diffc_add(diffc_sub(a.x, diffc_sub(s, v)), diffc_sub(b.x, v));
    let t = diffc_add(diffc_add(e, a.y), b.y);
    let hi = diffc_add(s, t);
    return vec2<f32>(hi, diffc_sub(t, diffc_sub(hi, s)));
}

fn diffc_df_sub(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return diffc_df_add(a, -b);
}

// A pair rounded to one f32.
fn diffc_df_round(a: vec2<f32>) -> f32 {
    return a.x + a.y;
}

// x^y as C's powf (the interpreter's `^`) where WGSL's `pow` is undefined: a negative base (or
// -0) with an integer exponent is |x|^y with the sign of x when y is odd; y = 0 or x = 1 gives 1.
// A negative base with a fractional exponent stays WGSL's `pow` (NaN, as powf gives).
fn diffc_pow(x: f32, y: f32) -> f32 {
    if (y == 0.0 || x == 1.0) {
        return 1.0;
    }
    let negative = (bitcast<u32>(x) & 0x80000000u) != 0u;
    if (negative && y == trunc(y)) {
        let m = pow(abs(x), y);
        let h = y * 0.5;
        if (h != trunc(h)) {
            return -m;
        }
        return m;
    }
    return pow(x, y);
}
