//! 2-D transposed convolution (PyTorch's `conv_transpose2d`: NCHW, f32, groups = 1, dilation = 1), the
//! adjoint of conv2d in x:
//!
//! ```text
//! y[n, co, oy, ox] = b[co] + sum_{ci, kh, kw} x[n, ci, iy, ix] w[ci, co, kh, kw]
//!                    over oy = iy s - p + kh, ox = ix s - p + kw
//! x [N, Cin, H, W], w [Cin, Cout, KH, KW] -> y [N, Cout, OH, OW], OH = (H - 1) s - 2p + KH + output_padding
//! ```
//! Scatter form on the CPU: cols [Cout KH KW, H W] = w^T x_n, then col2im (cpu.rs). Gather form on the GPU
//! (kernels/conv_transpose2d.ptx, wgsl/conv_transpose2d.wgsl), split by output phase so that no product is
//! spent on a tap that misses (a plain gather over all Cin KH KW taps would waste 3/4 of them at stride 2):
//! the outputs (oy, ox) = (py + s qy, px + s qx) only meet the taps kh = kh0 + s ty, kw = kw0 + s tx with
//! kh0 = (py + p) mod s, kw0 = (px + p) mod s, which read x[n, ci, qy + d0y - ty, qx + d0x - tx],
//! d0y = (py + p - kh0) / s, d0x = (px + p - kw0) / s. Each of the s^2 phases is an implicit GEMM with
//! M = Cout, N = batch ceil((OH - py) / s) ceil((OW - px) / s), K = Cin ceil((KH - kh0) / s) ceil((KW - kw0) / s).
//!
//! Backward, given g = dL/dy:
//! - dx = conv2d(g, w) with the same stride and padding (w [Cin, Cout, ..] is exactly conv2d's
//!   [Cout', Cin', ..] with Cout' = Cin); its output is [H, W] because output_padding < stride;
//! - dw[ci, co, kh, kw] = sum_{n, iy, ix} x[n, ci, iy, ix] g[n, co, iy s - p + kh, ix s - p + kw]: conv2d's
//!   weight gradient with the roles of the two swapped (its "input" is g, its "output gradient" is x);
//! - db[co] = sum_{n, oy, ox} g[n, co, oy, ox].
pub mod cpu;

use super::conv2d::{bias_grad, bias_storage, check, weight_grad, Params, TILE};
use super::launch_out;
use crate::backend::{Launch, Storage};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Column tiles of the GPU kernels: the outputs split by phase (oy mod s, ox mod s), each phase's
/// batch * ceil((oh - py) / s) * ceil((ow - px) / s) columns in 64-wide tiles of their own.
fn phase_tiles(p: &Params) -> usize {
    let (s, n) = (p.stride as usize, p.batch as usize);
    let count = |len: u32, from: usize| (len as usize).saturating_sub(from).div_ceil(s);
    (0..s * s).map(|ph| (n * count(p.oh, ph / s) * count(p.ow, ph % s)).div_ceil(TILE)).sum()
}

fn forward(p: &Params, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Storage> {
    let len = p.batch as usize * p.cout as usize * p.oh as usize * p.ow as usize;
    if let (Some(xv), Some(wv)) = (x.storage().cpu(), w.storage().cpu()) {
        let bv = b.and_then(|b| b.storage().cpu());
        return Ok(Storage::Cpu(cpu::conv_transpose2d_fwd(p, xv, wv, bv)));
    }
    // One block per 64 x 64 tile, row tiles fastest, then the column tiles of every phase (kernels/README.md).
    let tiles = [(p.cout as usize).div_ceil(TILE), phase_tiles(p), 1];
    let l = Launch::tiled("conv_transpose2d", "conv_transpose2d_fwd", p, tiles);
    launch_out(x.device(), &l, &[x.storage(), w.storage(), bias_storage(b, w)], len)
}

/// conv_transpose2d with an explicit output size `[oh, ow]`, which must lie in
/// [(H - 1) s - 2p + KH, (H - 1) s - 2p + KH + s - 1] (the sizes whose conv2d maps back to [H, W]).
pub(crate) fn conv_transpose2d_sized(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
    out: [usize; 2],
) -> Result<Tensor> {
    const OP: &str = "conv_transpose2d";
    let [n, cin, h, wd, kh, kw] = check(OP, x, w, b, stride, 0)?;
    if h == 0 || wd == 0 {
        return Err(Error::shape(OP, format!("empty input {:?}", x.shape())));
    }
    for (len, k, o) in [(h, kh, out[0]), (wd, kw, out[1])] {
        let full = (len - 1) * stride + k;
        if full < 2 * padding + 1 {
            return Err(Error::shape(OP, format!("padding {padding} leaves no output for input {len} and kernel {k}")));
        }
        let base = full - 2 * padding;
        if o < base || o >= base + stride {
            return Err(Error::shape(OP, format!("output size {o} outside [{base}, {}]", base + stride - 1)));
        }
    }
    let geometry = [kh, kw, stride, padding];
    let p = Params::new(OP, [n, cin, h, wd], [w.shape()[1], out[0], out[1]], geometry, b.is_some())?;
    let dev = x.device().clone();
    let storage = forward(&p, x, w, b)?;
    let shape = vec![n, p.cout as usize, out[0], out[1]];
    let mut inputs = vec![x, w];
    inputs.extend(b);
    Tensor::from_op("conv_transpose2d", storage, shape, &dev, &inputs, move |inp, _, g| {
        let (x, w) = (&inp[0], &inp[1]);
        let dx = if x.tracks() { Some(g.conv2d(w, None, stride, padding)?) } else { None };
        let dw = if w.tracks() {
            // conv2d's weight gradient with g as the image and x as the output gradient:
            // [Cin (its Cout), Cout (its Cin), KH, KW], exactly this op's weight layout.
            let q = Params { cin: p.cout, h: p.oh, w: p.ow, cout: p.cin, oh: p.h, ow: p.w, has_bias: 0, ..p };
            Some(weight_grad(&q, g, x)?)
        } else {
            None
        };
        let mut grads = vec![dx, dw];
        if let Some(b) = inp.get(2) {
            grads.push(if b.tracks() { Some(bias_grad(g)?) } else { None });
        }
        Ok(grads)
    })
}

impl Tensor {
    /// 2-D transposed convolution: x [N, Cin, H, W], w [Cin, Cout, KH, KW] (PyTorch layout), b [Cout]
    /// -> [N, Cout, OH, OW] with OH = (H - 1) stride - 2 padding + KH.
    pub fn conv_transpose2d(&self, w: &Tensor, b: Option<&Tensor>, stride: usize, padding: usize) -> Result<Tensor> {
        self.conv_transpose2d_out(w, b, stride, padding, 0)
    }

    /// [`Tensor::conv_transpose2d`] with PyTorch's `output_padding` (< stride) added to OH and OW.
    pub fn conv_transpose2d_out(
        &self,
        w: &Tensor,
        b: Option<&Tensor>,
        stride: usize,
        padding: usize,
        output_padding: usize,
    ) -> Result<Tensor> {
        const OP: &str = "conv_transpose2d";
        let [_, _, h, wd, kh, kw] = check(OP, self, w, b, stride, 0)?;
        if output_padding >= stride {
            return Err(Error::shape(OP, format!("output_padding {output_padding} must be < stride {stride}")));
        }
        let size = |len: usize, k: usize| -> Result<usize> {
            let full = (len.max(1) - 1) * stride + k + output_padding;
            if len == 0 || full <= 2 * padding {
                return Err(Error::shape(
                    OP,
                    format!("input {:?} with kernel {kh}x{kw}, padding {padding} gives an empty output", self.shape()),
                ));
            }
            Ok(full - 2 * padding)
        };
        let out = [size(h, kh)?, size(wd, kw)?];
        conv_transpose2d_sized(self, w, b, stride, padding, out)
    }
}
