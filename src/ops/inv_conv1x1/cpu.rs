//! CPU reference of the invertible 1x1 convolution (maths: mod.rs): per sample, one gemm of the C x C
//! weight with the [C, H W] planes.
use super::Params;
use crate::ops::matmul::cpu::matmul;

/// y [batch, c, hw] = W x (W^T x when p.trans) per sample.
pub fn forward(p: &Params, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (b, c, hw) = (p.batch as usize, p.c as usize, p.hw as usize);
    matmul(w, x, b, c, hw, c, p.trans != 0, false, 0, c * hw)
}

/// dW [c, c] = sum over samples of g_n x_n^T, with g, x [batch, c, hw].
pub fn weight_grad(p: &Params, x: &[f32], g: &[f32]) -> Vec<f32> {
    let (b, c, hw) = (p.batch as usize, p.c as usize, p.hw as usize);
    let per = matmul(g, x, b, c, c, hw, false, true, c * hw, c * hw);
    let mut dw = vec![0.0f32; c * c];
    for part in per.chunks(c * c) {
        dw.iter_mut().zip(part).for_each(|(a, v)| *a += v);
    }
    dw
}
