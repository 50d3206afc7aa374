//! Constant padding of image planes (HIGlow's ZeroConv2d pads its input with ones before a valid 3x3
//! convolution, so the border sees a learned bias a zero-padded convolution cannot express):
//!
//! ```text
//! y[q, u, v] = x[q, u - p, v - p] inside, `value` on the p-wide border     x [.., H, W] -> y [.., H+2p, W+2p]
//! ```
//! Backward: gx = the interior of g (`pad2d_crop`). Kernels: kernels/pad2d.ptx, wgsl/pad2d.wgsl, one thread
//! per output element.
pub mod cpu;

use super::{launch_out, u32s};
use crate::backend::{Launch, Storage};
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

kernel_params! {
    /// Mirrors `Params` of the pad2d kernels: `planes` = the product of the leading dimensions; h, w of x.
    #[derive(Default)]
    pub struct Params for [("pad2d", "pad2d_fwd"), ("pad2d", "pad2d_crop")] {
        pub planes: u32,
        pub h: u32,
        pub w: u32,
        pub pad: u32,
        pub value: f32,
        pub pad0: u32,
        pub pad1: u32,
        pub pad2: u32,
    }
}

impl Params {
    /// `planes` planes of h x w padded by `pad` on every side with `value`.
    pub(crate) fn new(planes: usize, h: usize, w: usize, pad: usize, value: f32) -> Result<Params> {
        let n = planes * (h + 2 * pad) * (w + 2 * pad);
        let [_, planes, h, w, pad] = u32s("pad2d", [n, planes, h, w, pad])?;
        Ok(Params { planes, h, w, pad, value, ..Params::default() })
    }
}

/// The interior of g [.., H+2p, W+2p]: no gradient history.
fn crop(p: &Params, g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let n = p.planes as usize * (p.h * p.w) as usize;
    let storage = match g.storage().cpu() {
        Some(gv) => Storage::Cpu(cpu::crop(p, gv)),
        None => launch_out(g.device(), &Launch::elementwise("pad2d", "pad2d_crop", p, n), &[g.storage()], n)?,
    };
    Tensor::from_storage(storage, shape, g.device())
}

impl Tensor {
    /// Pads the last two dimensions by `pad` on every side with `value`.
    pub fn pad2d(&self, pad: usize, value: f32) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::shape("pad2d", format!("needs at least 2 dimensions, got {:?}", self.shape())));
        }
        let s = self.shape().to_vec();
        let r = s.len();
        let (h, w) = (s[r - 2], s[r - 1]);
        let mut out_shape = s.clone();
        out_shape[r - 2] += 2 * pad;
        out_shape[r - 1] += 2 * pad;
        let n: usize = out_shape.iter().product();
        let p = Params::new(s[..r - 2].iter().product(), h, w, pad, value)?;
        let storage = match self.storage().cpu() {
            Some(xv) => Storage::Cpu(cpu::pad(&p, xv)),
            None => launch_out(self.device(), &Launch::elementwise("pad2d", "pad2d_fwd", &p, n), &[self.storage()], n)?,
        };
        Tensor::from_op("pad2d", storage, out_shape, self.device(), &[self], move |_, _, g| {
            Ok(vec![Some(crop(&p, g, &s)?)])
        })
    }
}
