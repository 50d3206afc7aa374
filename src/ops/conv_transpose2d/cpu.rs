//! CPU transposed convolution: per batch element one `gemm` (cols = w^T x_n) and a col2im scatter, the
//! adjoint of conv2d's im2col + gemm. Parallel as conv2d: over the batch when it is large enough, else
//! gemm's own threads and col2im parallel over output channels.
use crate::ops::conv2d::cpu::{batch_parallel, col2im, col2im_tiled, sgemm, tiled, Geom, Mat};
use crate::ops::conv2d::Params;
use rayon::prelude::*;

/// y [N, Cout, OH, OW] = conv_transpose2d(x [N, Cin, H, W], w [Cin, Cout, KH, KW]) (+ b [Cout]), for the
/// output size given in `p` (oh, ow).
pub fn conv_transpose2d_fwd(p: &Params, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
    let t = Geom::new(p);
    // The conv2d geometry whose im2col this scatters back: its image is y ([Cout, OH, OW]) and its output
    // positions are the inputs of x ([H, W]).
    let g = Geom { cin: t.cout, h: t.oh, w: t.ow, cout: t.cin, oh: t.h, ow: t.w, ..t };
    let (hw, ohw) = (t.h * t.w, t.oh * t.ow);
    let rows = t.cout * t.kh * t.kw;
    let mut y = vec![0.0f32; t.n * t.cout * ohw];
    if y.is_empty() {
        return y;
    }
    // w viewed as [Cin, Cout * KH * KW]; the gemm reads its transpose [Cout * KH * KW, Cin] in place.
    let wt = Mat { data: w, rs: 1, cs: rows };
    let one = |ni: usize, yi: &mut [f32], col: &mut Vec<f32>, par: bool| {
        let xm = Mat { data: &x[ni * t.cin * hw..], rs: hw, cs: 1 };
        if tiled(&g) {
            // The columns of a tile of x's rows: w^T x[:, tile].
            let cols = |col: &mut [f32], r: std::ops::Range<usize>| {
                let xt = Mat { data: &x[ni * t.cin * hw + r.start * t.w..], rs: hw, cs: 1 };
                sgemm((rows, r.len() * t.w, t.cin), col, wt, xt, false, false);
            };
            col2im_tiled(&g, yi, cols);
        } else if g.identity_cols() {
            sgemm((rows, hw, t.cin), yi, wt, xm, false, par);
        } else {
            col.resize(rows * hw, 0.0);
            sgemm((rows, hw, t.cin), col, wt, xm, false, par);
            col2im(&g, col, yi, par);
        }
        if let Some(b) = b {
            for (plane, bv) in yi.chunks_exact_mut(ohw).zip(b) {
                plane.iter_mut().for_each(|v| *v += bv);
            }
        }
    };
    if batch_parallel(t.n, rows * hw) {
        y.par_chunks_mut(t.cout * ohw).enumerate().for_each_init(Vec::new, |col, (ni, yi)| one(ni, yi, col, false));
    } else {
        let mut col = Vec::new();
        for (ni, yi) in y.chunks_mut(t.cout * ohw).enumerate() {
            one(ni, yi, &mut col, true);
        }
    }
    y
}
