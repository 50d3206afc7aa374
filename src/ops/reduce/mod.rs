//! Reductions along one axis: sum, mean, max, logsumexp. Kernels: kernels/reduce.ptx, wgsl/reduce.wgsl.
//! The input is viewed as [outer, n, inner]; `reduce_rows` (inner = 1) gives each row a block and a
//! shared-memory tree, `reduce_cols` gives each output a thread (coalesced across inner).
//!
//! Backward, with y broadcast back along the axis:
//! sum: g; mean: g / n; max: g [x = y] / #{x = y} (ties share, as torch.amax); logsumexp: g exp(x - y).
pub mod cpu;

use super::{around_axis, launch_out, u32s};
use crate::backend::{Launch, Storage};
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    LogSumExp,
}

impl ReduceOp {
    /// The op's name in anomaly reports.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::LogSumExp => "logsumexp",
        }
    }
}

kernel_params! {
    /// Mirrors `Params` of the reduce kernels.
    pub struct Params for [("reduce", "reduce_rows"), ("reduce", "reduce_cols")] {
        pub outer: u32,
        pub n: u32,
        pub inner: u32,
        pub op: u32,
    }
}

/// The kernel parameters of `op` over [outer, n, inner].
pub(crate) fn params(op: ReduceOp, outer: usize, n: usize, inner: usize) -> Result<Params> {
    let [_, outer, n, inner] = u32s("reduce", [outer * n * inner, outer, n, inner])?;
    Ok(Params { outer, n, inner, op: op.code() })
}

impl ReduceOp {
    fn code(self) -> u32 {
        match self {
            ReduceOp::Sum => 0,
            ReduceOp::Mean => 1,
            ReduceOp::Max => 2,
            ReduceOp::LogSumExp => 3,
        }
    }
}

impl Tensor {
    /// Reduces along `axis`, keeping it as a dimension of size 1 if `keepdim`.
    pub fn reduce(&self, axis: isize, op: ReduceOp, keepdim: bool) -> Result<Tensor> {
        let ax = self.axis(axis)?;
        let (outer, n, inner) = around_axis(self.shape(), ax);
        if n == 0 && matches!(op, ReduceOp::Mean) {
            return Err(Error::shape("mean", "mean over an empty axis"));
        }
        let storage = match self.storage().cpu() {
            Some(x) => Storage::Cpu(cpu::forward(op, x, outer, n, inner)),
            None => {
                let p = params(op, outer, n, inner)?;
                let l = Launch::along_axis("reduce", ("reduce_rows", "reduce_cols"), &p, outer, inner);
                launch_out(self.device(), &l, &[self.storage()], outer * inner)?
            }
        };
        let mut kept = self.shape().to_vec();
        kept[ax] = 1;
        let shape = if keepdim { kept.clone() } else { [&self.shape()[..ax], &self.shape()[ax + 1..]].concat() };
        Tensor::from_op(op.name(), storage, shape, self.device(), &[self], move |inp, out, g| {
            let x = &inp[0];
            let (y, g) = (out.reshape(&kept)?, g.reshape(&kept)?);
            let dx = match op {
                ReduceOp::Sum => g.broadcast_to(x.shape())?,
                ReduceOp::Mean => g.scale(1.0 / n as f32)?.broadcast_to(x.shape())?,
                ReduceOp::Max => {
                    let mask = x.eq_mask(&y)?;
                    let count = mask.sum_keepdim(ax as isize)?;
                    mask.mul(&g.div(&count)?)?
                }
                ReduceOp::LogSumExp => x.sub(&y)?.exp()?.mul(&g)?,
            };
            Ok(vec![Some(dx)])
        })
    }

    pub fn sum(&self, axis: isize) -> Result<Tensor> {
        self.reduce(axis, ReduceOp::Sum, false)
    }
    pub fn sum_keepdim(&self, axis: isize) -> Result<Tensor> {
        self.reduce(axis, ReduceOp::Sum, true)
    }
    pub fn mean(&self, axis: isize) -> Result<Tensor> {
        self.reduce(axis, ReduceOp::Mean, false)
    }
    pub fn max(&self, axis: isize) -> Result<Tensor> {
        self.reduce(axis, ReduceOp::Max, false)
    }
    pub fn logsumexp(&self, axis: isize) -> Result<Tensor> {
        self.reduce(axis, ReduceOp::LogSumExp, false)
    }
    /// Sum of all elements, as a scalar tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.reshape(&[self.numel()])?.sum(0)
    }
    /// Mean of all elements, as a scalar tensor.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.reshape(&[self.numel()])?.mean(0)
    }
}
