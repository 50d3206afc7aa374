//! Softmax along one axis, stabilised by the max: y = exp(x - max) / sum exp(x - max).
//! Kernels: kernels/softmax.ptx, wgsl/softmax.wgsl (rows: a block per row; cols: a thread per output).
//! Backward: dx = y (g - sum(g y)) along the axis.
pub mod cpu;

use super::{around_axis, launch_out, u32s};
use crate::backend::{Launch, Storage};
use crate::error::Result;
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

kernel_params! {
    /// Mirrors `Params` of the softmax kernels.
    pub struct Params for [("softmax", "softmax_rows"), ("softmax", "softmax_cols")] {
        pub outer: u32,
        pub n: u32,
        pub inner: u32,
        pub pad: u32,
    }
}

/// The kernel parameters over [outer, n, inner].
pub(crate) fn params(outer: usize, n: usize, inner: usize) -> Result<Params> {
    let [_, outer, n, inner] = u32s("softmax", [outer * n * inner, outer, n, inner])?;
    Ok(Params { outer, n, inner, pad: 0 })
}

impl Tensor {
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        let ax = self.axis(axis)?;
        let (outer, n, inner) = around_axis(self.shape(), ax);
        let storage = match self.storage().cpu() {
            Some(x) => Storage::Cpu(cpu::forward(x, outer, n, inner)),
            None => {
                let p = params(outer, n, inner)?;
                let l = Launch::along_axis("softmax", ("softmax_rows", "softmax_cols"), &p, outer, inner);
                launch_out(self.device(), &l, &[self.storage()], self.numel())?
            }
        };
        Tensor::from_op("softmax", storage, self.shape().to_vec(), self.device(), &[self], move |_, y, g| {
            let gy = g.mul(y)?.sum_keepdim(ax as isize)?;
            Ok(vec![Some(y.mul(&g.sub(&gy)?)?)])
        })
    }
}
