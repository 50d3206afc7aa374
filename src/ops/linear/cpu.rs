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
    let slope = act.slope();
    // Branch-free (identity is slope 1), so the loop vectorises.
    y.par_chunks_mut(ROWS * n1).for_each(|c| {
        // A local copy: read through the closure's reference, the slope kept the loop scalar (as in act_grad).
        let slope = slope;
        for r in c.chunks_mut(n1) {
            for (v, &bj) in r.iter_mut().zip(b) {
                let t = *v + bj;
                *v = t.max(0.0) + slope * t.min(0.0);
            }
        }
    });
    y
}

/// (gp, db): gp = g * act'(y) and db = column sums of gp, for rows of width n, in one pass: each task
/// writes its rows of gp once (no zero-fill) and keeps its own partial db.
pub fn act_grad(y: &[f32], g: &[f32], n: usize, act: Act) -> (Vec<f32>, Vec<f32>) {
    let n1 = n.max(1);
    let slope = act.slope();
    let len = g.len().min(y.len());
    let mut gp = Vec::with_capacity(len);
    let parts: Vec<Vec<f32>> = gp.spare_capacity_mut()[..len]
        .par_chunks_mut(ROWS * n1)
        .zip(g.par_chunks(ROWS * n1).zip(y.par_chunks(ROWS * n1)))
        .map(|(o, (g, y))| {
            // A local copy and a select, not a branch: with the slope read through the closure's reference
            // the loop stayed scalar and mispredicted on every other sign (a third of a flow step).
            let s = slope;
            let mut part = vec![0.0f32; n];
            for (o, (g, y)) in o.chunks_mut(n1).zip(g.chunks(n1).zip(y.chunks(n1))) {
                let (o, g, y, p) = (&mut o[..n], &g[..n], &y[..n], &mut part[..n]);
                for j in 0..n {
                    let v = g[j] * if y[j] > 0.0 { 1.0 } else { s };
                    o[j].write(v);
                    p[j] += v;
                }
            }
            part
        })
        .collect();
    // SAFETY: the chunks above cover gp[..len] and each task wrote every element of its chunk.
    unsafe { gp.set_len(len) };
    let mut db = vec![0.0f32; n];
    for p in parts {
        db.iter_mut().zip(&p).for_each(|(d, v)| *d += v);
    }
    (gp, db)
}

/// op(A) op(B) for a single [m, n] result (see ops::matmul::cpu).
pub fn matmul_t(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Vec<f32> {
    crate::ops::matmul::cpu::matmul(a, b, 1, m, n, k, ta, tb, 0, 0)
}
