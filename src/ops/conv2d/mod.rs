//! 2-D convolution (PyTorch's `conv2d`: NCHW, f32, groups = 1, dilation = 1, zero padding):
//!
//! ```text
//! y[n, co, oh, ow] = b[co] + sum_{ci, kh, kw} w[co, ci, kh, kw] x[n, ci, oh s - p + kh, ow s - p + kw]
//! x [N, Cin, H, W], w [Cout, Cin, KH, KW], b [Cout] -> y [N, Cout, OH, OW], OH = (H + 2p - KH) / s + 1
//! ```
//! (x is 0 outside the image). As a matrix product: y_n [Cout, OH OW] = W [Cout, Cin KH KW] cols(x_n),
//! where cols(x_n) [Cin KH KW, OH OW] is the im2col matrix. The CPU builds cols explicitly (cpu.rs); the
//! GPU kernels are implicit GEMMs (kernels/conv2d.ptx, wgsl/conv2d.wgsl): M = Cout, N = batch OH OW,
//! K = Cin KH KW, with the im2col element computed on the fly while the B tile is loaded.
//!
//! Backward, given g = dL/dy:
//! - dx = conv_transpose2d(g, w) with the same stride and padding, sized back to [H, W] (when
//!   (H + 2p - KH) is not a multiple of s, the last rows/columns of x were never read: dx is 0 there);
//! - dw[co, ci, kh, kw] = sum_{n, oh, ow} x[n, ci, oh s - p + kh, ow s - p + kw] g[n, co, oh, ow]
//!   (`conv2d_wgrad`: M = Cout, N = Cin KH KW, K = batch OH OW, split over K on the GPU);
//! - db[co] = sum_{n, oh, ow} g[n, co, oh, ow].
pub mod cpu;

use super::{launch_out, u32s};
use crate::backend::{Launch, Storage};
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

kernel_params! {
    /// Mirrors `Params` of kernels/conv2d.ptx, kernels/conv_transpose2d.ptx and their WGSL twins (64 bytes).
    /// The op reads x [batch, cin, h, w] and writes [batch, cout, oh, ow] (conv2d_fwd, conv_transpose2d_fwd),
    /// or reads x and g [batch, cout, oh, ow] and writes dw (conv2d_wgrad); kh, kw, stride, pad are the
    /// kernel's. `ksplit` (wgrad only): the batch * oh * ow range each grid.z slice sums, a multiple of 16.
    #[derive(Default)]
    pub struct Params for [("conv2d", "conv2d_fwd"), ("conv2d", "conv2d_wgrad"), ("conv_transpose2d", "conv_transpose2d_fwd")] {
        pub batch: u32,
        pub cin: u32,
        pub h: u32,
        pub w: u32,
        pub cout: u32,
        pub oh: u32,
        pub ow: u32,
        pub kh: u32,
        pub kw: u32,
        pub stride: u32,
        pub pad: u32,
        pub has_bias: u32,
        pub ksplit: u32,
        pub pad0: u32,
        pub pad1: u32,
        pub pad2: u32,
    }
}

/// The output tile of one block (kernels/README.md): 64 x 64, 16 x 16 threads.
pub(crate) const TILE: usize = 64;

impl Params {
    /// The geometry of x [batch, cin, h, w] -> y [batch, cout, oh, ow] through a kh x kw kernel, checked
    /// against the kernels' 32-bit indexing (the element counts of x, y and the weight).
    pub(crate) fn new(
        op: &'static str,
        [batch, cin, h, w]: [usize; 4],
        [cout, oh, ow]: [usize; 3],
        [kh, kw, stride, pad]: [usize; 4],
        has_bias: bool,
    ) -> Result<Params> {
        let counts = [batch * cin * h * w, batch * cout * oh * ow, cout * cin * kh * kw];
        let [.., batch, cin, h, w, cout, oh, ow, kh, kw, stride, pad] =
            u32s(op, [counts[0], counts[1], counts[2], batch, cin, h, w, cout, oh, ow, kh, kw, stride, pad])?;
        let has_bias = has_bias as u32;
        Ok(Params { batch, cin, h, w, cout, oh, ow, kh, kw, stride, pad, has_bias, ..Params::default() })
    }
}

/// Checks a 4-D input against a 4-D weight and an optional bias; returns (N, Cin, H, W, KH, KW), where
/// `w_in` / `w_out` are the weight's input/output channel axes (0 / 1 for conv_transpose2d's [Cin, Cout, ..]).
pub(crate) fn check(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    w_in: usize,
) -> Result<[usize; 6]> {
    x.check_same_device(w)?;
    if x.rank() != 4 || w.rank() != 4 {
        return Err(Error::shape(
            op,
            format!("needs x [N, C, H, W] and a 4-D weight, got {:?} and {:?}", x.shape(), w.shape()),
        ));
    }
    if stride == 0 {
        return Err(Error::shape(op, "stride must be at least 1"));
    }
    let (xs, ws) = (x.shape(), w.shape());
    if xs[1] != ws[w_in] {
        return Err(Error::shape(
            op,
            format!("x has {} channels but the weight {:?} expects {} (axis {w_in})", xs[1], ws, ws[w_in]),
        ));
    }
    if ws[2] == 0 || ws[3] == 0 {
        return Err(Error::shape(op, format!("empty kernel {ws:?}")));
    }
    if let Some(b) = b {
        x.check_same_device(b)?;
        let cout = ws[1 - w_in];
        if b.shape() != [cout] {
            return Err(Error::shape(op, format!("bias {:?} must be [{cout}] for weight {ws:?}", b.shape())));
        }
    }
    Ok([xs[0], xs[1], xs[2], xs[3], ws[2], ws[3]])
}

/// A bias binding for kernels: the bias, or any read-only buffer when there is none (has_bias = 0).
pub(crate) fn bias_storage<'a>(b: Option<&'a Tensor>, other: &'a Tensor) -> &'a Storage {
    b.map_or(other.storage(), |b| b.storage())
}

/// db[co] = sum of g [N, Cout, OH, OW] over n, oh, ow.
pub(crate) fn bias_grad(g: &Tensor) -> Result<Tensor> {
    let s = g.shape();
    g.reshape(&[s[0], s[1], s[2] * s[3]])?.sum(-1)?.sum(0)
}

/// The forward launch (or CPU call): y [batch, cout, oh, ow].
fn forward(p: &Params, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Storage> {
    let dev = x.device();
    let len = p.batch as usize * p.cout as usize * p.oh as usize * p.ow as usize;
    if let (Some(xv), Some(wv)) = (x.storage().cpu(), w.storage().cpu()) {
        let bv = b.and_then(|b| b.storage().cpu());
        return Ok(Storage::Cpu(cpu::conv2d_fwd(p, xv, wv, bv)));
    }
    // One block per 64 x 64 tile of the GEMM, row tiles fastest (kernels/README.md).
    let columns = p.batch as usize * p.oh as usize * p.ow as usize;
    let l = Launch::tiled("conv2d", "conv2d_fwd", p, [(p.cout as usize).div_ceil(TILE), columns.div_ceil(TILE), 1]);
    launch_out(dev, &l, &[x.storage(), w.storage(), bias_storage(b, w)], len)
}

/// dw [cout, cin, kh, kw] = conv2d_wgrad(x [batch, cin, h, w], g [batch, cout, oh, ow]): no gradient history.
pub(crate) fn weight_grad(p: &Params, x: &Tensor, g: &Tensor) -> Result<Tensor> {
    let dev = x.device();
    let (m, n, k) =
        (p.cout as usize, p.cin as usize * (p.kh * p.kw) as usize, p.batch as usize * (p.oh * p.ow) as usize);
    let shape = [p.cout as usize, p.cin as usize, p.kh as usize, p.kw as usize];
    if let (Some(xv), Some(gv)) = (x.storage().cpu(), g.storage().cpu()) {
        return Tensor::from_storage(Storage::Cpu(cpu::conv2d_wgrad(p, xv, gv)), &shape, dev);
    }
    // Split K into slices when the M x N tiles alone cannot fill a GPU (the first layer: 64 x 48 is one
    // tile over 200k products); the slices are summed by the reduce kernel. 256 blocks fill an H100's 132
    // SMs twice; no slice is shorter than 256 products.
    let tiles = [n.div_ceil(TILE), m.div_ceil(TILE)];
    let splits = 256usize.div_ceil((tiles[0] * tiles[1]).max(1)).min(k.div_ceil(256)).max(1);
    let ksplit = (k.div_ceil(splits).div_ceil(16) * 16).max(16);
    let splits = k.div_ceil(ksplit).max(1);
    let [_, ksplit] = u32s("conv2d", [splits * m * n, ksplit])?;
    let p = Params { ksplit, ..*p };
    // Columns fastest, then rows, then the slices (kernels/README.md).
    let l = Launch::tiled("conv2d", "conv2d_wgrad", &p, [tiles[0], tiles[1], splits]);
    let out = launch_out(dev, &l, &[x.storage(), g.storage()], splits * m * n)?;
    let parts = Tensor::from_storage(out, &[splits, m * n], dev)?;
    let dw = if splits == 1 { parts } else { parts.sum(0)? };
    dw.reshape(&shape)
}

/// conv2d with explicit geometry; `x`, `w`, `b` already checked.
fn conv2d_impl(x: &Tensor, w: &Tensor, b: Option<&Tensor>, p: Params) -> Result<Tensor> {
    let dev = x.device().clone();
    let storage = forward(&p, x, w, b)?;
    let shape = vec![p.batch as usize, p.cout as usize, p.oh as usize, p.ow as usize];
    let mut inputs = vec![x, w];
    inputs.extend(b);
    Tensor::from_op("conv2d", storage, shape, &dev, &inputs, move |inp, _, g| {
        let (x, w) = (&inp[0], &inp[1]);
        let (s, pad) = (p.stride as usize, p.pad as usize);
        let dx = if x.tracks() {
            Some(crate::ops::conv_transpose2d::conv_transpose2d_sized(
                g,
                w,
                None,
                s,
                pad,
                [p.h as usize, p.w as usize],
            )?)
        } else {
            None
        };
        let dw = if w.tracks() { Some(weight_grad(&p, x, g)?) } else { None };
        let mut out = vec![dx, dw];
        if let Some(b) = inp.get(2) {
            out.push(if b.tracks() { Some(bias_grad(g)?) } else { None });
        }
        Ok(out)
    })
}

impl Tensor {
    /// 2-D convolution: x [N, Cin, H, W], w [Cout, Cin, KH, KW], b [Cout] -> [N, Cout, OH, OW] with
    /// OH = (H + 2 padding - KH) / stride + 1 (PyTorch semantics, groups = dilation = 1).
    pub fn conv2d(&self, w: &Tensor, b: Option<&Tensor>, stride: usize, padding: usize) -> Result<Tensor> {
        let [n, cin, h, wd, kh, kw] = check("conv2d", self, w, b, stride, 1)?;
        if h + 2 * padding < kh || wd + 2 * padding < kw {
            return Err(Error::shape(
                "conv2d",
                format!("kernel {kh}x{kw} larger than the padded input {}x{}", h + 2 * padding, wd + 2 * padding),
            ));
        }
        let (oh, ow) = ((h + 2 * padding - kh) / stride + 1, (wd + 2 * padding - kw) / stride + 1);
        let geometry = [kh, kw, stride, padding];
        let p = Params::new("conv2d", [n, cin, h, wd], [w.shape()[0], oh, ow], geometry, b.is_some())?;
        conv2d_impl(self, w, b, p)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Device, Error, Tensor};

    fn t(shape: &[usize]) -> Tensor {
        Tensor::zeros(shape, &Device::Cpu).unwrap()
    }

    /// Every malformed call is a shape error, never a panic.
    #[test]
    fn bad_shapes_are_errors() {
        let x = t(&[2, 3, 9, 9]);
        let shape_err = |r: crate::Result<Tensor>| matches!(r, Err(Error::Shape { .. }));
        assert!(shape_err(t(&[3, 9, 9]).conv2d(&t(&[5, 3, 3, 3]), None, 1, 1)), "rank");
        assert!(shape_err(x.conv2d(&t(&[5, 4, 3, 3]), None, 1, 1)), "channels");
        assert!(shape_err(x.conv2d(&t(&[5, 3, 12, 12]), None, 1, 1)), "kernel larger than padded input");
        assert!(shape_err(x.conv2d(&t(&[5, 3, 3, 3]), None, 0, 1)), "stride 0");
        assert!(shape_err(x.conv2d(&t(&[5, 3, 3, 3]), Some(&t(&[4])), 1, 1)), "bias");
        assert!(shape_err(x.conv_transpose2d(&t(&[4, 5, 4, 4]), None, 2, 1)), "transposed channels");
        assert!(shape_err(x.conv_transpose2d(&t(&[3, 5, 4, 4]), Some(&t(&[3])), 2, 1)), "transposed bias");
        assert!(shape_err(x.conv_transpose2d(&t(&[3, 5, 4, 4]), None, 0, 1)), "transposed stride 0");
        assert!(shape_err(t(&[1, 3, 1, 1]).conv_transpose2d(&t(&[3, 5, 1, 1]), None, 1, 1)), "empty output");
        assert!(shape_err(x.conv_transpose2d_out(&t(&[3, 5, 4, 4]), None, 2, 1, 2)), "output_padding >= stride");
        assert_eq!(x.conv2d(&t(&[5, 3, 4, 4]), None, 2, 1).unwrap().shape(), [2, 5, 4, 4]);
        assert_eq!(x.conv_transpose2d(&t(&[3, 5, 4, 4]), None, 2, 1).unwrap().shape(), [2, 5, 18, 18]);
        assert_eq!(x.conv_transpose2d_out(&t(&[3, 5, 3, 3]), None, 2, 1, 1).unwrap().shape(), [2, 5, 18, 18]);
    }
}
