//! Gather along an axis by u32 indices: out[.., j, ..] = x[.., idx[j], ..] (mini-batch selection,
//! permutations, embedding rows). Kernels: kernels/gather.ptx, wgsl/gather.wgsl.
//! Backward: scatter-add of g into zeros at the same indices (repeated indices add up; the GPU kernels
//! use atomics).
pub mod cpu;

use super::{around_axis, u32s};
use crate::backend::{Device, Launch, Storage};
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;
use std::sync::Arc;

kernel_params! {
    /// Mirrors `Params` of `gather` and `scatter_add`.
    pub struct Params for [("gather", "gather"), ("gather", "scatter_add")] {
        pub outer: u32,
        pub src_n: u32,
        pub idx_n: u32,
        pub inner: u32,
    }
}

impl Params {
    /// src [outer, src_n, inner] gathered at `idx_n` indices into [outer, idx_n, inner].
    pub(crate) fn new(outer: usize, src_n: usize, idx_n: usize, inner: usize) -> Result<Params> {
        let sizes = [outer * src_n * inner, outer * idx_n * inner];
        let [_, _, outer, src_n, idx_n, inner] = u32s("gather", [sizes[0], sizes[1], outer, src_n, idx_n, inner])?;
        Ok(Params { outer, src_n, idx_n, inner })
    }
}

/// Indices resident on a device, checked once against the length they index.
#[derive(Clone)]
pub struct Indices {
    storage: Arc<Storage>,
    len: usize,
    bound: usize,
}

impl Indices {
    /// Uploads `idx`; every index must be < `bound`.
    pub fn new(idx: &[u32], bound: usize, device: &Device) -> Result<Indices> {
        if let Some(&bad) = idx.iter().find(|&&i| i as usize >= bound) {
            return Err(Error::Data(format!("index {bad} out of range for an axis of length {bound}")));
        }
        Ok(Indices { storage: Arc::new(device.upload_u32(idx)?), len: idx.len(), bound })
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn scatter_add(g: &Tensor, idx: &Indices, shape: &[usize], p: Params) -> Result<Tensor> {
    let dev = g.device();
    let mut dx = Tensor::zeros(shape, dev)?.storage_owned()?;
    match (g.storage().cpu(), &mut dx, &*idx.storage) {
        (Some(gv), Storage::Cpu(d), Storage::CpuU32(iv)) => cpu::scatter_add(gv, iv, d, &p),
        _ => {
            let l = Launch::elementwise("gather", "scatter_add", &p, g.numel());
            dev.launch(&l, &[g.storage(), &idx.storage], &[&dx])?;
        }
    }
    Tensor::from_storage(dx, shape, dev)
}

impl Tensor {
    pub fn gather(&self, axis: isize, idx: &Indices) -> Result<Tensor> {
        let ax = self.axis(axis)?;
        let (outer, src_n, inner) = around_axis(self.shape(), ax);
        if idx.bound != src_n {
            return Err(Error::shape(
                "gather",
                format!("indices for length {} used on axis of length {src_n}", idx.bound),
            ));
        }
        let p = Params::new(outer, src_n, idx.len, inner)?;
        let total = outer * idx.len * inner;
        let dev = self.device();
        let storage = match (self.storage().cpu(), &*idx.storage) {
            (Some(x), Storage::CpuU32(iv)) => Storage::Cpu(cpu::gather(x, iv, &p)),
            _ => {
                let l = Launch::elementwise("gather", "gather", &p, total);
                super::launch_out(dev, &l, &[self.storage(), &idx.storage], total)?
            }
        };
        let mut shape = self.shape().to_vec();
        shape[ax] = idx.len;
        let idx = idx.clone();
        Tensor::from_op("gather", storage, shape, dev, &[self], move |inp, _, g| {
            Ok(vec![Some(scatter_add(g, &idx, inp[0].shape(), p)?)])
        })
    }
}
