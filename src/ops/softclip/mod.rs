//! zuko's SoftclipTransform, element-wise: y = x / (1 + |x| / B) maps R onto (-B, B), with
//!   ld = log|dy/dx| = -2 log(1 + |x| / B)
//!   inverse: x = y / (1 - |y| / B), ld = log|dx/dy| = -2 log(1 - |y| / B), where y is first held inside
//!            ±B (1 - 2^-20): a base sample past the image of the layer below would otherwise map to ±inf
//!            (SOSPF's bisection returns its bracket's end there; see flows/sospf.rs).
//! Backward (forward direction, packed upstream gradient [gy, gld]), with a = 1 + |x| / B:
//!   gx = gy / a² - 2 gld sign(x) / (B a).
//! No per-element parameters, so not `packed_transform`; the same packed [2, ..] output layout (y then ld)
//! and one launch each way. Kernels: kernels/softclip.ptx, wgsl/softclip.wgsl.
pub mod cpu;

use super::{launch_out, u32s};
use crate::backend::{Launch, Storage};
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

kernel_params! {
    /// Mirrors `Params` of the softclip kernels.
    pub struct Params for [("softclip", "softclip_fwd"), ("softclip", "softclip_bwd")] {
        pub n: u32,
        pub inverse: u32,
        pub bound: f32,
        pub inv_bound: f32,
    }
}

impl Params {
    /// `n` elements, the packed output [y, ld] 2n values.
    pub(crate) fn new(n: usize, inverse: bool, bound: f32) -> Result<Params> {
        let [_, n] = u32s("softclip", [2 * n, n])?;
        Ok(Params { n, inverse: inverse as u32, bound, inv_bound: 1.0 / bound })
    }
}

/// 1 - 2^-20 (exact in f32): the inverse holds |y| <= B times this.
pub const EDGE: f32 = 1.0 - 1.0 / (1u32 << 20) as f32;

impl Tensor {
    /// Soft-clips `self` (any shape) to (-bound, bound): returns (y, ld), ld per element. `inverse` maps y
    /// back (ld = log|dx/dy|) and is not differentiable.
    pub fn softclip(&self, bound: f32, inverse: bool) -> Result<(Tensor, Tensor)> {
        if !(bound > 0.0 && bound.is_finite()) {
            return Err(Error::Usage(format!("softclip bound must be positive, got {bound}")));
        }
        if inverse && crate::autodiff::recording() && self.tracks() {
            return Err(Error::Usage("the inverse softclip is not differentiable: run it under no_grad".into()));
        }
        let n = self.numel();
        let p = Params::new(n, inverse, bound)?;
        let dev = self.device();
        let storage = match self.storage().cpu() {
            Some(xv) => Storage::Cpu(cpu::forward(&p, xv)),
            None => launch_out(dev, &Launch::elementwise("softclip", "softclip_fwd", &p, n), &[self.storage()], 2 * n)?,
        };
        let mut shape = vec![2];
        shape.extend_from_slice(self.shape());
        let packed = Tensor::from_op("softclip", storage, shape, dev, &[self], move |inp, _, g| {
            let x = &inp[0];
            let dev = x.device();
            let gx = match (x.storage().cpu(), g.storage().cpu()) {
                (Some(xv), Some(gv)) => Storage::Cpu(cpu::backward(&p, xv, gv)),
                _ => launch_out(
                    dev,
                    &Launch::elementwise("softclip", "softclip_bwd", &p, n),
                    &[x.storage(), g.storage()],
                    n,
                )?,
            };
            Ok(vec![Some(Tensor::from_storage(gx, x.shape(), dev)?)])
        })?;
        Ok((packed.narrow(0, 0, 1)?.reshape(self.shape())?, packed.narrow(0, 1, 1)?.reshape(self.shape())?))
    }
}
