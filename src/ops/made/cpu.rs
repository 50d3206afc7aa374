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
