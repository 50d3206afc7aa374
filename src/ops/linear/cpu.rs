//! CPU path of the fused dense layer: gemm, then bias and activation in one in-place pass; the backward's
//! act' and bias gradient in one pass.
use super::Act;
use rayon::prelude::*;

/// Rows per rayon task of the element-wise passes (a few tens of KiB each).
const ROWS: usize = 256;

/// act(x W + b), x [m, k], W [k, n], b [n]: gemm writes x W into a fresh buffer (no zero-fill), then one
/// parallel in-place pass adds the bias and applies the activation. (Pre-filling the bias and letting gemm
/// accumulate was slower: the fill is a serial pass and gemm's read-dst path is slower than its write path.)
pub fn forward(x: &[f32], w: &[f32], b: &[f32], m: usize, k: usize, n: usize, act: Act) -> Vec<f32> {
    let mut y = matmul_t(x, w, m, n, k, false, false);
    let n1 = n.max(1);
    let slope = match act {
        Act::Identity => 1.0,
        Act::Relu => 0.0,
        Act::LeakyRelu(a) => a,
    };
    // Branch-free (identity is slope 1), so the loop vectorises.
    y.par_chunks_mut(ROWS * n1).for_each(|c| {
        for r in c.chunks_mut(n1) {
            for (v, &bj) in r.iter_mut().zip(b) {
                let t = *v + bj;
                *v = t.max(0.0) + slope * t.min(0.0);
            }
        }
    });
    y
}

/// (gp, db): gp = g * act'(y) and db = column sums of gp, for rows of width n.
pub fn act_grad(y: &[f32], g: &[f32], n: usize, act: Act) -> (Vec<f32>, Vec<f32>) {
    let n1 = n.max(1);
    let slope = match act {
        Act::Identity => 1.0,
        Act::Relu => 0.0,
        Act::LeakyRelu(a) => a,
    };
    let gp: Vec<f32> =
        g.par_iter().zip(y).with_min_len(ROWS * n1).map(|(&g, &y)| if y > 0.0 { g } else { slope * g }).collect();
    let db = gp
        .par_chunks(ROWS * n1)
        .map(|c| {
            let mut part = vec![0.0f32; n];
            for r in c.chunks(n1) {
                part.iter_mut().zip(r).for_each(|(p, &v)| *p += v);
            }
            part
        })
        .reduce(
            || vec![0.0f32; n],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    (gp, db)
}

/// op(A) op(B) for a single [m, n] result (see ops::matmul::cpu).
pub fn matmul_t(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Vec<f32> {
    crate::ops::matmul::cpu::matmul(a, b, 1, m, n, k, ta, tb, 0, 0)
}
