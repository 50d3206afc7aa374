//! CPU reference of the LU weight (maths: mod.rs). Sums run in the kernels' order (ascending indices, zeros
//! of P skipped), so every backend rounds alike.

/// L[k, m] (unit lower triangular).
fn l_at(lower: &[f32], d: usize, k: usize, m: usize) -> f32 {
    match m.cmp(&k) {
        std::cmp::Ordering::Less => lower[k * d + m],
        std::cmp::Ordering::Equal => 1.0,
        std::cmp::Ordering::Greater => 0.0,
    }
}

/// U[m, j] (upper triangular, diagonal sign exp(log_s)).
fn u_at(upper: &[f32], log_s: &[f32], sign: &[f32], d: usize, m: usize, j: usize) -> f32 {
    match j.cmp(&m) {
        std::cmp::Ordering::Greater => upper[m * d + j],
        std::cmp::Ordering::Equal => sign[m] * log_s[m].exp(),
        std::cmp::Ordering::Less => 0.0,
    }
}

/// Packed [W (d * d values), ld]. L and U are laid out densely first, so the inner sums are branch-free.
pub fn forward(d: usize, lower: &[f32], upper: &[f32], log_s: &[f32], perm: &[f32], sign: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; d * d + 1];
    let u: Vec<f32> = (0..d * d).map(|i| u_at(upper, log_s, sign, d, i / d, i % d)).collect();
    let l: Vec<f32> = (0..d * d).map(|i| l_at(lower, d, i / d, i % d)).collect();
    for i in 0..d {
        for j in 0..d {
            let mut w = 0.0f32;
            for k in 0..d {
                let pk = perm[i * d + k];
                if pk == 0.0 {
                    continue;
                }
                // A[k, j] = sum over m <= min(k, j) of L[k, m] U[m, j].
                let mut a = 0.0f32;
                for m in 0..=k.min(j) {
                    a += l[k * d + m] * u[m * d + j];
                }
                w += pk * a;
            }
            out[i * d + j] = w;
        }
    }
    out[d * d] = log_s.iter().fold(0.0f32, |acc, &s| acc + s);
    out
}

/// GA[k, j] = sum_i P[i, k] G[i, j], for every (k, j) at once (each entry summed in ascending i, zeros of P
/// skipped, as the kernels do).
fn ga_all(perm: &[f32], g: &[f32], d: usize) -> Vec<f32> {
    let mut ga = vec![0.0f32; d * d];
    for k in 0..d {
        for i in 0..d {
            let pk = perm[i * d + k];
            if pk != 0.0 {
                for j in 0..d {
                    ga[k * d + j] += pk * g[i * d + j];
                }
            }
        }
    }
    ga
}

/// (dlower, dupper, dlog_s) from the packed upstream gradient g = [dW (d * d values), g_ld]. O(D^3): GA is
/// formed once (an earlier version recomputed each entry inside the products, O(D^4), which made the LU
/// backward of a 128-channel Glow step cost more than its convolutions).
pub fn backward(
    d: usize,
    lower: &[f32],
    upper: &[f32],
    log_s: &[f32],
    perm: &[f32],
    sign: &[f32],
    g: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mut gl, mut gu, mut gs) = (vec![0.0f32; d * d], vec![0.0f32; d * d], vec![0.0f32; d]);
    let ga = ga_all(perm, g, d);
    let u: Vec<f32> = (0..d * d).map(|i| u_at(upper, log_s, sign, d, i / d, i % d)).collect();
    let l: Vec<f32> = (0..d * d).map(|i| l_at(lower, d, i / d, i % d)).collect();
    for r in 0..d {
        for c in 0..d {
            if c < r {
                // (GA U^T)[r, c] = sum over j >= c of GA[r, j] U[c, j].
                let mut s = 0.0f32;
                for j in c..d {
                    s += ga[r * d + j] * u[c * d + j];
                }
                gl[r * d + c] = s;
            } else {
                // (L^T GA)[r, c] = sum over k >= r of L[k, r] GA[k, c].
                let mut s = 0.0f32;
                for k in r..d {
                    s += l[k * d + r] * ga[k * d + c];
                }
                if c > r {
                    gu[r * d + c] = s;
                } else {
                    gs[r] = s * (sign[r] * log_s[r].exp()) + g[d * d];
                }
            }
        }
    }
    (gl, gu, gs)
}
