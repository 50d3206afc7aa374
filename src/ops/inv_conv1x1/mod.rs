//! Invertible 1x1 convolution (Glow): the same C x C matrix applied to the channel vector of every pixel.
//!
//! ```text
//! y[n, o, p] = sum_i W[o, i] x[n, i, p]          x, y [N, C, H, W] (p runs over the H W pixels), W [C, C]
//! transposed (the backward's dx, or a caller's W^T):  y[n, o, p] = sum_i W[i, o] x[n, i, p]
//! ```
//! Its log-determinant is H W log|det W|; with W from its LU parameters (`ops::lu::lu_weight`,
//! nn::InvConv1x1) that is H W sum(log_s), so this op only moves pixels. The inverse for sampling is the
//! same op with W^-1 (a C x C inverse on the host, once per call).
//!
//! Backward, given g = dL/dy:  dx = W^T g (the same kernel, transposed);
//!   dW[o, i] = sum_{n, p} g[n, o, p] x[n, i, p]  (`inv_conv1x1_wgrad`: a block per entry of dW, its
//!   threads stride over the N H W products and meet in a shared-memory tree).
//! Kernels: kernels/inv_conv1x1.ptx, wgsl/inv_conv1x1.wgsl. A dedicated family rather than matmul plus two
//! transposes: NCHW keeps each channel plane contiguous, so one thread per output reads C coalesced planes.
pub mod cpu;

use super::{launch_out, u32s};
use crate::backend::{Launch, Storage};
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

kernel_params! {
    /// Mirrors `Params` of the inv_conv1x1 kernels.
    #[derive(Default)]
    pub struct Params for [("inv_conv1x1", "inv_conv1x1_fwd"), ("inv_conv1x1", "inv_conv1x1_wgrad")] {
        pub batch: u32,
        pub c: u32,
        /// Pixels per channel plane (H W).
        pub hw: u32,
        /// 1: use W^T.
        pub trans: u32,
    }
}

impl Params {
    /// x [batch, c, hw] and W [c, c], W^T when `trans`.
    pub(crate) fn new(batch: usize, c: usize, hw: usize, trans: bool) -> Result<Params> {
        let [_, _, batch, c, hw] = u32s("inv_conv1x1", [batch * c * hw, c * c, batch, c, hw])?;
        Ok(Params { batch, c, hw, trans: trans as u32 })
    }
}

/// (batch, channels, pixels) of an NCHW tensor checked against a [C, C] weight.
fn check(x: &Tensor, w: &Tensor) -> Result<(usize, usize, usize)> {
    x.check_same_device(w)?;
    let ok = x.rank() == 4 && w.rank() == 2 && w.shape()[0] == x.shape()[1] && w.shape()[1] == x.shape()[1];
    if !ok {
        return Err(Error::shape(
            "inv_conv1x1",
            format!("needs x [N, C, H, W] and W [C, C], got {:?} and {:?}", x.shape(), w.shape()),
        ));
    }
    let s = x.shape();
    Ok((s[0], s[1], s[2] * s[3]))
}

/// y = W x (or W^T x) over the channels of every pixel, no gradient history.
fn apply(p: &Params, x: &Tensor, w: &Tensor) -> Result<Storage> {
    if let (Some(xv), Some(wv)) = (x.storage().cpu(), w.storage().cpu()) {
        return Ok(Storage::Cpu(cpu::forward(p, xv, wv)));
    }
    let n = (p.batch * p.c * p.hw) as usize;
    launch_out(x.device(), &Launch::elementwise("inv_conv1x1", "inv_conv1x1_fwd", p, n), &[x.storage(), w.storage()], n)
}

/// dW = sum over samples and pixels of g x^T, no gradient history.
fn weight_grad(p: &Params, x: &Tensor, g: &Tensor) -> Result<Tensor> {
    let (c, dev) = (p.c as usize, x.device());
    let storage = match (x.storage().cpu(), g.storage().cpu()) {
        (Some(xv), Some(gv)) => Storage::Cpu(cpu::weight_grad(p, xv, gv)),
        _ => {
            let l = Launch::per_block("inv_conv1x1", "inv_conv1x1_wgrad", p, c * c);
            launch_out(dev, &l, &[x.storage(), g.storage()], c * c)?
        }
    };
    Tensor::from_storage(storage, &[c, c], dev)
}

impl Tensor {
    /// The 1x1 convolution of `self` [N, C, H, W] with `w` [C, C] (y = W x per pixel; W^T x when
    /// `transpose`), differentiable in both.
    pub fn inv_conv1x1(&self, w: &Tensor, transpose: bool) -> Result<Tensor> {
        let (batch, c, hw) = check(self, w)?;
        let p = Params::new(batch, c, hw, transpose)?;
        let storage = apply(&p, self, w)?;
        Tensor::from_op("inv_conv1x1", storage, self.shape().to_vec(), self.device(), &[self, w], move |inp, _, g| {
            let (x, w) = (&inp[0], &inp[1]);
            let dx = if x.tracks() {
                let pt = Params { trans: 1 - p.trans, ..p };
                Some(Tensor::from_storage(apply(&pt, g, w)?, x.shape(), x.device())?)
            } else {
                None
            };
            // y = W^T x has dW^T = sum g x^T, i.e. dW = sum x g^T: the same reduction with x and g swapped.
            let dw = if !w.tracks() {
                None
            } else if p.trans == 0 {
                Some(weight_grad(&p, x, g)?)
            } else {
                Some(weight_grad(&p, g, x)?)
            };
            Ok(vec![dx, dw])
        })
    }
}
