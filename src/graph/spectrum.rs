//! Eigenvalues of the normalised Laplacian.
//!
//! The matrix is networkx's `normalized_laplacian_matrix`: `D^-1/2 (D - A) D^-1/2`, where an
//! isolated node has a zero row (its `D^-1/2` entry is taken as 0, so its diagonal is 0, not 1).
//! Eigenvalues come from Householder reduction to tridiagonal form and the implicit QL method,
//! in f64.

use super::Graph;

/// The eigenvalues of the normalised Laplacian, ascending.
pub fn normalized_laplacian_eigenvalues(g: &Graph) -> Vec<f64> {
    let n = g.nodes();
    let scale: Vec<f64> = (0..n)
        .map(|v| {
            let d = g.degree(v);
            if d == 0 {
                0.0
            } else {
                1.0 / (d as f64).sqrt()
            }
        })
        .collect();
    let mut a = vec![0.0; n * n];
    for v in 0..n {
        if g.degree(v) > 0 {
            a[v * n + v] = 1.0;
        }
        for &w in g.neighbours(v) {
            let w = w as usize;
            a[v * n + w] = -scale[v] * scale[w];
        }
    }
    symmetric_eigenvalues(n, a)
}

/// The eigenvalues of a symmetric `n × n` matrix given in row-major order, ascending.
pub fn symmetric_eigenvalues(n: usize, mut a: Vec<f64>) -> Vec<f64> {
    assert_eq!(a.len(), n * n);
    if n == 0 {
        return Vec::new();
    }
    let (mut d, mut e) = tridiagonalize(n, &mut a);
    tridiagonal_ql(&mut d, &mut e);
    d.sort_by(f64::total_cmp);
    d
}

/// Householder reduction: the diagonal and the off-diagonal (`e[i]` joins `i` and `i + 1`).
fn tridiagonalize(n: usize, a: &mut [f64]) -> (Vec<f64>, Vec<f64>) {
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    let mut v = vec![0.0; n];
    let mut p = vec![0.0; n];
    for k in 0..n.saturating_sub(2) {
        let start = k + 1;
        let norm = (start..n).map(|i| a[i * n + k].powi(2)).sum::<f64>().sqrt();
        d[k] = a[k * n + k];
        if norm == 0.0 {
            e[k] = 0.0;
            continue;
        }
        let x0 = a[start * n + k];
        let alpha = if x0 > 0.0 { -norm } else { norm };
        for i in start..n {
            v[i] = a[i * n + k];
        }
        v[start] -= alpha;
        let vtv = (start..n).map(|i| v[i] * v[i]).sum::<f64>();
        e[k] = alpha;
        if vtv == 0.0 {
            continue;
        }
        // p = A v · 2/vᵀv from the lower triangle; w = p − (vᵀp / vᵀv) v;
        // then A −= v wᵀ + w vᵀ on the lower triangle of the trailing block.
        let beta = 2.0 / vtv;
        p[start..n].iter_mut().for_each(|x| *x = 0.0);
        for i in start..n {
            let row = &a[i * n + start..i * n + i];
            let vi = v[i];
            let s = dot_and_axpy(row, &v[start..i], vi, &mut p[start..i]);
            p[i] += s + a[i * n + i] * vi;
        }
        for x in &mut p[start..n] {
            *x *= beta;
        }
        let kappa = (start..n).map(|i| v[i] * p[i]).sum::<f64>() / vtv;
        for i in start..n {
            p[i] -= kappa * v[i];
        }
        for i in start..n {
            let (vi, wi) = (v[i], p[i]);
            let row = &mut a[i * n + start..i * n + i + 1];
            for ((x, &vj), &wj) in row.iter_mut().zip(&v[start..=i]).zip(&p[start..=i]) {
                *x -= vi * wj + wi * vj;
            }
        }
    }
    if n >= 2 {
        d[n - 2] = a[(n - 2) * n + n - 2];
        e[n - 2] = a[(n - 1) * n + n - 2];
    }
    d[n - 1] = a[(n - 1) * n + n - 1];
    e[n - 1] = 0.0;
    (d, e)
}

/// Σ row[j]·x[j], and y[j] += a·row[j], in one pass with four partial sums.
fn dot_and_axpy(row: &[f64], x: &[f64], a: f64, y: &mut [f64]) -> f64 {
    let mut acc = [0.0; 4];
    let split = row.len() / 4 * 4;
    for ((r, xs), ys) in row[..split]
        .chunks_exact(4)
        .zip(x[..split].chunks_exact(4))
        .zip(y[..split].chunks_exact_mut(4))
    {
        for k in 0..4 {
            acc[k] += r[k] * xs[k];
            ys[k] += a * r[k];
        }
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for j in split..row.len() {
        sum += row[j] * x[j];
        y[j] += a * row[j];
    }
    sum
}

/// The implicit QL method with Wilkinson-style shifts on a symmetric tridiagonal matrix;
/// the eigenvalues replace `d`.
fn tridiagonal_ql(d: &mut [f64], e: &mut [f64]) {
    let n = d.len();
    for l in 0..n {
        let mut iterations = 0;
        loop {
            let mut m = l;
            while m + 1 < n {
                let dd = d[m].abs() + d[m + 1].abs();
                if e[m].abs() <= f64::EPSILON * dd {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            iterations += 1;
            if iterations > 100 {
                break;
            }
            let mut g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            let mut r = g.hypot(1.0);
            g = d[m] - d[l] + e[l] / (g + r.copysign(g));
            let (mut s, mut c, mut p) = (1.0, 1.0, 0.0);
            let mut i = m;
            let mut deflated = false;
            while i > l {
                i -= 1;
                let f = s * e[i];
                let b = c * e[i];
                r = f.hypot(g);
                e[i + 1] = r;
                if r == 0.0 {
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    deflated = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2.0 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
            }
            if deflated {
                continue;
            }
            d[l] -= p;
            e[l] = g;
            e[m] = 0.0;
        }
    }
}
