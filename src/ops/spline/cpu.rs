//! CPU reference of the rational-quadratic spline (maths and ABI: kernels/README.md, "spline").
//! One element at a time, f32, knots accumulated in the same order as the kernels so every backend
//! picks the same bin. The backward is written out by hand from the partials listed below.
use super::{Params, MAX_BINS};
use rayon::prelude::*;

/// Elements per rayon task: a spline element costs ~100 flops, so small chunks would be all overhead.
const CHUNK: usize = 2048;

fn softplus(r: f32) -> f32 {
    r.max(0.0) + (-r.abs()).exp().ln_1p()
}

fn sigmoid(r: f32) -> f32 {
    if r >= 0.0 {
        1.0 / (1.0 + (-r).exp())
    } else {
        let e = r.exp();
        e / (1.0 + e)
    }
}

/// softmax(u) into `hat`, and knots[0..=K] of the partition of [-B, B] with minimum bin size `min`.
fn partition(u: &[f32], bound: f32, min: f32, hat: &mut [f32], knots: &mut [f32]) {
    let k = u.len();
    let m = u.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0f32;
    for j in 0..k {
        hat[j] = (u[j] - m).exp();
        s += hat[j];
    }
    let scale = 1.0 - min * k as f32;
    let mut acc = 0.0f32;
    knots[0] = -bound;
    for j in 0..k {
        hat[j] /= s;
        acc += min + scale * hat[j];
        knots[j + 1] = -bound + 2.0 * bound * acc;
    }
    knots[k] = bound;
}

/// The largest k < K with knots[k] <= v.
fn bin(knots: &[f32], v: f32) -> usize {
    let k = knots.len() - 1;
    (1..k).take_while(|&j| knots[j] <= v).last().unwrap_or(0)
}

/// Everything one element needs, for the bin its value falls in.
struct Bin {
    k: usize,
    x0: f32,
    w: f32,
    y0: f32,
    h: f32,
    d0: f32,
    d1: f32,
}

pub struct Scratch {
    what: [f32; MAX_BINS],
    hhat: [f32; MAX_BINS],
    xk: [f32; MAX_BINS + 1],
    yk: [f32; MAX_BINS + 1],
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch::new()
    }
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch { what: [0.0; MAX_BINS], hhat: [0.0; MAX_BINS], xk: [0.0; MAX_BINS + 1], yk: [0.0; MAX_BINS + 1] }
    }

    /// Normalises the raw parameters `th` and picks the bin of `v` (of x, or of y when `inverse`).
    fn locate(&mut self, p: &Params, th: &[f32], v: f32, inverse: bool) -> Bin {
        let k = p.k as usize;
        partition(&th[..k], p.bound, p.min_w, &mut self.what[..k], &mut self.xk[..=k]);
        partition(&th[k..2 * k], p.bound, p.min_h, &mut self.hhat[..k], &mut self.yk[..=k]);
        let b = if inverse { bin(&self.yk[..=k], v) } else { bin(&self.xk[..=k], v) };
        let r = &th[2 * k..];
        let d0 = if b == 0 { 1.0 } else { p.min_d + softplus(r[b - 1]) };
        let d1 = if b + 1 == k { 1.0 } else { p.min_d + softplus(r[b]) };
        Bin {
            k: b,
            x0: self.xk[b],
            w: self.xk[b + 1] - self.xk[b],
            y0: self.yk[b],
            h: self.yk[b + 1] - self.yk[b],
            d0,
            d1,
        }
    }
}

/// (y, ld) at ξ in bin `b`: y = Y + H N / D, ld = 2 log s + log M - 2 log D.
fn eval(b: &Bin, xi: f32) -> (f32, f32) {
    let s = b.h / b.w;
    let q = xi * (1.0 - xi);
    let n = s * xi * xi + b.d0 * q;
    let d = s + (b.d0 + b.d1 - 2.0 * s) * q;
    let m = b.d1 * xi * xi + 2.0 * s * q + b.d0 * (1.0 - xi) * (1.0 - xi);
    (b.y0 + b.h * n / d, 2.0 * s.ln() + m.ln() - 2.0 * d.ln())
}

/// One element, forward or inverse: (output, log|d out / d in|).
pub fn element(p: &Params, v: f32, th: &[f32], sc: &mut Scratch) -> (f32, f32) {
    let inverse = p.inverse != 0;
    if !(v >= -p.bound && v <= p.bound) {
        return (v, 0.0);
    }
    let b = sc.locate(p, th, v, inverse);
    if !inverse {
        let xi = (v - b.x0) / b.w;
        return eval(&b, xi);
    }
    // Invert y = Y + H N(ξ) / D(ξ): the quadratic a ξ² + b ξ + c = 0, its root in [0, 1] in the stable form.
    let s = b.h / b.w;
    let t = v - b.y0;
    let c2 = b.d0 + b.d1 - 2.0 * s;
    let qa = b.h * (s - b.d0) + t * c2;
    let qb = b.h * b.d0 - t * c2;
    let qc = -s * t;
    let disc = (qb * qb - 4.0 * qa * qc).max(0.0);
    let xi = 2.0 * qc / (-qb - disc.sqrt());
    let (_, ld) = eval(&b, xi);
    (b.x0 + xi * b.w, -ld)
}

/// Gradient of one forward element given upstream (gy, gld): returns gx and writes all 3K-1 entries of `gth`.
pub fn element_bwd(p: &Params, x: f32, th: &[f32], gy: f32, gld: f32, gth: &mut [f32], sc: &mut Scratch) -> f32 {
    gth.iter_mut().for_each(|g| *g = 0.0);
    if !(x >= -p.bound && x <= p.bound) {
        return gy;
    }
    let kk = p.k as usize;
    let b = sc.locate(p, th, x, false);
    let (w, h, d0, d1) = (b.w, b.h, b.d0, b.d1);
    let s = h / w;
    let xi = (x - b.x0) / w;
    let q = xi * (1.0 - xi);
    let qp = 1.0 - 2.0 * xi;
    let n = s * xi * xi + d0 * q;
    let d = s + (d0 + d1 - 2.0 * s) * q;
    let m = d1 * xi * xi + 2.0 * s * q + d0 * (1.0 - xi) * (1.0 - xi);
    // Partials of N, D and M in (ξ, s, δk, δk+1).
    let (n_xi, n_s, n_d0) = (2.0 * s * xi + d0 * qp, xi * xi, q);
    let (d_xi, d_s, d_d0, d_d1) = ((d0 + d1 - 2.0 * s) * qp, 1.0 - 2.0 * q, q, q);
    let (m_xi, m_s, m_d0, m_d1) =
        (2.0 * d1 * xi + 2.0 * s * qp - 2.0 * d0 * (1.0 - xi), 2.0 * q, (1.0 - xi) * (1.0 - xi), xi * xi);
    // y = Y + H N / D and ld = 2 log s + log M - 2 log D, differentiated.
    let hd2 = h / (d * d);
    let y_xi = hd2 * (n_xi * d - n * d_xi);
    let y_s = hd2 * (n_s * d - n * d_s);
    let y_d0 = hd2 * (n_d0 * d - n * d_d0);
    let y_d1 = hd2 * (-n * d_d1);
    let l_xi = m_xi / m - 2.0 * d_xi / d;
    let l_s = 2.0 / s + m_s / m - 2.0 * d_s / d;
    let l_d0 = m_d0 / m - 2.0 * d_d0 / d;
    let l_d1 = m_d1 / m - 2.0 * d_d1 / d;
    let g_xi = gy * y_xi + gld * l_xi;
    let g_s = gy * y_s + gld * l_s;
    let g_d0 = gy * y_d0 + gld * l_d0;
    let g_d1 = gy * y_d1 + gld * l_d1;
    // Back to the knots: ξ = (x - X_k) / W_k, s = H_k / W_k.
    let gx = g_xi / w;
    let g_x0 = -g_xi / w;
    let g_w = -(g_xi * xi + g_s * s) / w;
    let g_y0 = gy;
    let g_h = gy * n / d + g_s / w;
    // Knots are 2B (1 - min K) times cumulative softmax outputs: X_k needs ŵ_j for j < k, W_k needs ŵ_k.
    let softmax_bwd = |hat: &[f32], scale: f32, g_knot: f32, g_width: f32, out: &mut [f32]| {
        let below: f32 = hat[..b.k].iter().sum();
        let dot = scale * (g_knot * below + g_width * hat[b.k]);
        for j in 0..kk {
            let gh = scale
                * if j < b.k {
                    g_knot
                } else if j == b.k {
                    g_width
                } else {
                    0.0
                };
            out[j] = hat[j] * (gh - dot);
        }
    };
    softmax_bwd(&sc.what[..kk], 2.0 * p.bound * (1.0 - p.min_w * kk as f32), g_x0, g_w, &mut gth[..kk]);
    softmax_bwd(&sc.hhat[..kk], 2.0 * p.bound * (1.0 - p.min_h * kk as f32), g_y0, g_h, &mut gth[kk..2 * kk]);
    let r = &th[2 * kk..];
    if b.k >= 1 {
        gth[2 * kk + b.k - 1] = g_d0 * sigmoid(r[b.k - 1]);
    }
    if b.k + 1 < kk {
        gth[2 * kk + b.k] = g_d1 * sigmoid(r[b.k]);
    }
    gx
}

/// Packed output [y (n values), ld (n values)].
pub fn forward(p: &Params, x: &[f32], theta: &[f32]) -> Vec<f32> {
    let n = x.len();
    let np = 3 * p.k as usize - 1;
    let mut y = vec![0.0; n];
    let mut ld = vec![0.0; n];
    y.par_chunks_mut(CHUNK).zip(ld.par_chunks_mut(CHUNK)).enumerate().for_each(|(c, (yc, lc))| {
        let mut sc = Scratch::new();
        for (j, (yo, lo)) in yc.iter_mut().zip(lc.iter_mut()).enumerate() {
            let i = c * CHUNK + j;
            (*yo, *lo) = element(p, x[i], &theta[i * np..(i + 1) * np], &mut sc);
        }
    });
    y.extend_from_slice(&ld);
    y
}

/// (gx, gtheta) from the packed upstream gradient g = [gy, gld].
pub fn backward(p: &Params, x: &[f32], theta: &[f32], g: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let n = x.len();
    let np = 3 * p.k as usize - 1;
    let mut gx = vec![0.0; n];
    let mut gth = vec![0.0; n * np];
    gx.par_chunks_mut(CHUNK).zip(gth.par_chunks_mut(CHUNK * np)).enumerate().for_each(|(c, (gxc, gtc))| {
        let mut sc = Scratch::new();
        for (j, gxo) in gxc.iter_mut().enumerate() {
            let i = c * CHUNK + j;
            let th = &theta[i * np..(i + 1) * np];
            *gxo = element_bwd(p, x[i], th, g[i], g[n + i], &mut gtc[j * np..(j + 1) * np], &mut sc);
        }
    });
    (gx, gth)
}
