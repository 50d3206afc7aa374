//! CPU reference of the invertible 1x1 convolution (maths: mod.rs). Glow's channel counts are small (4 to
//! a few hundred): up to 32 channels each output plane is a sum of C scaled input planes (contiguous
//! axpys that vectorise, samples in parallel), where a gemm with a 4-row A spends its time packing;
//! beyond that, one gemm per sample.
use super::Params;
use crate::ops::matmul::cpu::matmul;
use rayon::prelude::*;

/// Channel counts up to which the plane-by-plane loop beats gemm.
const SMALL_C: usize = 32;

/// y [batch, c, hw] = W x (W^T x when p.trans) per sample.
pub fn forward(p: &Params, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (b, c, hw) = (p.batch as usize, p.c as usize, p.hw as usize);
    if c > SMALL_C || c * hw == 0 {
        return matmul(w, x, b, c, hw, c, p.trans != 0, false, 0, c * hw);
    }
    let mut y = vec![0.0f32; b * c * hw];
    y.par_chunks_mut(c * hw).zip(x.par_chunks(c * hw)).for_each(|(yn, xn)| {
        for (o, yo) in yn.chunks_mut(hw).enumerate() {
            for (i, xi) in xn.chunks(hw).enumerate() {
                let wv = if p.trans != 0 { w[i * c + o] } else { w[o * c + i] };
                yo.iter_mut().zip(xi).for_each(|(a, &v)| *a += wv * v);
            }
        }
    });
    y
}

/// dW [c, c] = sum over samples of g_n x_n^T, with g, x [batch, c, hw].
pub fn weight_grad(p: &Params, x: &[f32], g: &[f32]) -> Vec<f32> {
    let (b, c, hw) = (p.batch as usize, p.c as usize, p.hw as usize);
    let per = if c > SMALL_C || c * hw == 0 {
        matmul(g, x, b, c, c, hw, false, true, c * hw, c * hw)
    } else {
        // Per sample, every (o, i) pair is a dot product of two contiguous planes.
        let mut per = vec![0.0f32; b * c * c];
        per.par_chunks_mut(c * c).enumerate().for_each(|(n, d)| {
            let (gn, xn) = (&g[n * c * hw..(n + 1) * c * hw], &x[n * c * hw..(n + 1) * c * hw]);
            for o in 0..c {
                for i in 0..c {
                    let (go, xi) = (&gn[o * hw..(o + 1) * hw], &xn[i * hw..(i + 1) * hw]);
                    d[o * c + i] = go.iter().zip(xi).map(|(a, b)| a * b).sum();
                }
            }
        });
        per
    };
    let mut dw = vec![0.0f32; c * c];
    for part in per.chunks(c * c) {
        dw.iter_mut().zip(part).for_each(|(a, v)| *a += v);
    }
    dw
}
