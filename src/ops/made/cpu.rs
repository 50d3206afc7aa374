//! CPU reference of the masked linear layer: the mask is multiplied into a copy of W once per forward (a
//! k x n pass, small next to the m x n x k product) and the products go through matmul's `gemm` path.
use crate::ops::matmul::cpu::matmul;

/// (y [m, n] = x (W ⊙ M) + b, W ⊙ M) for x [m, k], w and mask [k, n], b [n].
pub fn forward(x: &[f32], w: &[f32], mask: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
    let wm: Vec<f32> = w.iter().zip(mask).map(|(w, m)| w * m).collect();
    let mut y = matmul(x, &wm, 1, m, n, k, false, false, 0, 0);
    if n > 0 {
        y.chunks_mut(n).for_each(|row| row.iter_mut().zip(b).for_each(|(v, b)| *v += b));
    }
    (y, wm)
}

/// dx [m, k] = g (W ⊙ M)^T.
pub fn grad_x(g: &[f32], wm: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    matmul(g, wm, 1, m, k, n, false, true, 0, 0)
}

/// dW [k, n] = (x^T g) ⊙ M.
pub fn grad_w(x: &[f32], g: &[f32], mask: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut dw = matmul(x, g, 1, k, n, m, true, false, 0, 0);
    dw.iter_mut().zip(mask).for_each(|(d, m)| *d *= m);
    dw
}

/// The fused layer's operands as one dense layer: act(xa Wa + ba) with Wa = [W ⊙ M; Wc] stacked by rows and
/// xa = [x | c] when the context has a row per sample; with one context row, c Wc is a constant folded into
/// the bias instead (ba = b + c Wc) and xa is x itself.
pub struct Fused {
    /// [ka, n]: W ⊙ M, then Wc's rows when the context is concatenated.
    pub wa: Vec<f32>,
    /// [m, ka] = [x | c] when the context is concatenated; None when xa is x.
    pub xa: Option<Vec<f32>>,
    pub ba: Vec<f32>,
    pub ka: usize,
}

/// Builds [`Fused`] for x [m, k], w and mask [k, n], b [n], context (c [rc, kc], Wc [kc, n]) with rc = m or 1.
pub fn fuse(
    x: &[f32],
    (w, mask, b): (&[f32], &[f32], &[f32]),
    (m, n, k): (usize, usize, usize),
    ctx: Option<(&[f32], &[f32], usize, usize)>,
) -> Fused {
    let mut wa: Vec<f32> = w.iter().zip(mask).map(|(w, m)| w * m).collect();
    let mut ba = b.to_vec();
    let mut xa = None;
    let mut ka = k;
    match ctx {
        Some((c, wc, 1, kc)) if m != 1 => {
            let cw = matmul(c, wc, 1, 1, n, kc, false, false, 0, 0);
            ba.iter_mut().zip(&cw).for_each(|(b, v)| *b += v);
        }
        Some((c, wc, _, kc)) => {
            wa.extend_from_slice(wc);
            let mut v = Vec::with_capacity(m * (k + kc));
            for i in 0..m {
                v.extend_from_slice(&x[i * k..(i + 1) * k]);
                v.extend_from_slice(&c[i * kc..(i + 1) * kc]);
            }
            xa = Some(v);
            ka = k + kc;
        }
        None => {}
    }
    Fused { wa, xa, ba, ka }
}

/// Splits the columns of a [m, k + kc] matrix into [m, k] and [m, kc].
pub fn split_cols(v: &[f32], m: usize, k: usize, kc: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut a, mut b) = (Vec::with_capacity(m * k), Vec::with_capacity(m * kc));
    for i in 0..m {
        let r = &v[i * (k + kc)..(i + 1) * (k + kc)];
        a.extend_from_slice(&r[..k]);
        b.extend_from_slice(&r[k..]);
    }
    (a, b)
}
