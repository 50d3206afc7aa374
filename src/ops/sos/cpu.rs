//! CPU reference of the sum-of-squares polynomial transform (maths and loop order: kernels/README.md, "sos").
use super::Params;
use rayon::prelude::*;

const CHUNK: usize = 2048;

/// a[k][l] of one element.
fn a(th: &[f32], r: usize, k: usize, l: usize) -> f32 {
    th[k * (r + 1) + l]
}

/// f(x) = c + Σ_k ∫_0^x p_k(u)² du, in the ABI's loop order.
fn f(p: &Params, th: &[f32], x: f32) -> f32 {
    let (kk, r) = (p.k as usize, p.r as usize);
    let mut acc = 0.0f32;
    for k in 0..kk {
        let mut xl1 = x;
        for l in 0..=r {
            let mut pw = xl1;
            for m in 0..=r {
                acc += a(th, r, k, l) * a(th, r, k, m) * pw / (l + m + 1) as f32;
                pw *= x;
            }
            xl1 *= x;
        }
    }
    th[th.len() - 1] + acc
}

/// (p_k(x), p_k'(x)) by Horner.
fn poly(th: &[f32], r: usize, k: usize, x: f32) -> (f32, f32) {
    let (mut v, mut d) = (0.0f32, 0.0f32);
    for l in (0..=r).rev() {
        d = d * x + v;
        v = v * x + a(th, r, k, l);
    }
    (v, d)
}

/// f'(x) = Σ_k p_k(x)².
fn df(p: &Params, th: &[f32], x: f32) -> f32 {
    (0..p.k as usize).map(|k| poly(th, p.r as usize, k, x).0.powi(2)).fold(0.0, |s, v| s + v)
}

/// One element: (y, ld) forward, or (x, -ld) by bisection when inverse.
pub fn element(p: &Params, v: f32, th: &[f32]) -> (f32, f32) {
    if p.inverse == 0 {
        return (f(p, th, v), df(p, th, v).ln());
    }
    let (mut lo, mut hi) = (-p.bound, p.bound);
    for _ in 0..p.iters {
        let mid = 0.5 * (lo + hi);
        if f(p, th, mid) < v {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let x = 0.5 * (lo + hi);
    (x, -df(p, th, x).ln())
}

/// Gradient of one forward element: returns gx, writes every entry of `gth`.
pub fn element_bwd(p: &Params, x: f32, th: &[f32], gy: f32, gld: f32, gth: &mut [f32]) -> f32 {
    let (kk, r) = (p.k as usize, p.r as usize);
    let d = df(p, th, x);
    let mut dd = 0.0f32;
    for k in 0..kk {
        let (v, dv) = poly(th, r, k, x);
        dd += 2.0 * v * dv;
        let mut xl = 1.0f32;
        let mut xl1 = x;
        for l in 0..=r {
            // ∂f/∂a[k][l] = 2 Σ_m a[k][m] x^(l+m+1) / (l+m+1); ∂ld/∂a[k][l] = 2 p_k x^l / f'.
            let mut pw = xl1;
            let mut s = 0.0f32;
            for m in 0..=r {
                s += a(th, r, k, m) * pw / (l + m + 1) as f32;
                pw *= x;
            }
            gth[k * (r + 1) + l] = gy * 2.0 * s + gld * 2.0 * v * xl / d;
            xl *= x;
            xl1 *= x;
        }
    }
    gth[gth.len() - 1] = gy;
    gy * d + gld * dd / d
}

/// Packed output [y (n values), ld (n values)].
pub fn forward(p: &Params, x: &[f32], theta: &[f32]) -> Vec<f32> {
    let np = p.k as usize * (p.r as usize + 1) + 1;
    let (y, ld): (Vec<f32>, Vec<f32>) =
        x.par_iter().enumerate().with_min_len(CHUNK).map(|(i, &v)| element(p, v, &theta[i * np..(i + 1) * np])).unzip();
    [y, ld].concat()
}

/// (gx, gtheta) from the packed upstream gradient g = [gy, gld].
pub fn backward(p: &Params, x: &[f32], theta: &[f32], g: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let n = x.len();
    let np = p.k as usize * (p.r as usize + 1) + 1;
    let mut gth = vec![0.0; n * np];
    let gx = gth
        .par_chunks_mut(np)
        .enumerate()
        .with_min_len(CHUNK)
        .map(|(i, gt)| element_bwd(p, x[i], &theta[i * np..(i + 1) * np], g[i], g[n + i], gt))
        .collect();
    (gx, gth)
}
