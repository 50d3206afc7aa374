//! Layout ops that move values without arithmetic: fill, concat and split/narrow along an axis, and the
//! transpose of the last two axes. Kernels: kernels/copy.ptx, wgsl/copy.wgsl (`fill`, `slice_copy`,
//! `transpose` with a 16x16 shared-memory tile).
//!
//! Backward: concat -> narrow of g per part; narrow -> g copied into zeros at its offset;
//! transpose -> transpose.
pub mod cpu;

use super::{around_axis, u32s};
use crate::backend::{Device, Launch, Storage};
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

kernel_params! {
    /// Mirrors `Params` of `slice_copy`: src [outer, src_n, inner] rows src_off.. -> dst rows dst_off..
    pub struct SliceParams for [("copy", "slice_copy")] {
        pub outer: u32,
        pub inner: u32,
        pub src_n: u32,
        pub dst_n: u32,
        pub src_off: u32,
        pub dst_off: u32,
        pub len: u32,
        pub total: u32,
    }
}

impl SliceParams {
    /// Rows `src_off .. src_off + len` of src [outer, src_n, inner] to rows `dst_off ..` of dst [outer, dst_n, inner].
    pub(crate) fn new(
        (outer, inner): (usize, usize),
        (src_n, src_off): (usize, usize),
        (dst_n, dst_off): (usize, usize),
        len: usize,
    ) -> Result<Self> {
        let sizes = [outer * src_n * inner, outer * dst_n * inner, outer * len * inner];
        let [.., total, outer, inner, src_n, dst_n, src_off, dst_off, len] =
            u32s("copy", [sizes[0], sizes[1], sizes[2], outer, inner, src_n, dst_n, src_off, dst_off, len])?;
        Ok(SliceParams { outer, inner, src_n, dst_n, src_off, dst_off, len, total })
    }
}

kernel_params! {
    /// Mirrors `Params` of `transpose`.
    pub struct TransposeParams for [("copy", "transpose")] {
        pub batch: u32,
        pub rows: u32,
        pub cols: u32,
        pub pad: u32,
    }
}

impl TransposeParams {
    pub(crate) fn new(batch: usize, rows: usize, cols: usize) -> Result<Self> {
        let [_, batch, rows, cols] = u32s("transpose", [batch * rows * cols, batch, rows, cols])?;
        Ok(TransposeParams { batch, rows, cols, pad: 0 })
    }
}

kernel_params! {
    /// Mirrors `Params` of `fill`.
    pub struct FillParams for [("copy", "fill")] {
        pub n: u32,
        pub value: f32,
        pub pad0: u32,
        pub pad1: u32,
    }
}

impl FillParams {
    pub(crate) fn new(n: usize, value: f32) -> Result<Self> {
        let [n] = u32s("fill", [n])?;
        Ok(FillParams { n, value, pad0: 0, pad1: 0 })
    }
}

pub fn fill(shape: &[usize], value: f32, device: &Device) -> Result<Tensor> {
    let n = crate::build_budget::take_shape(shape)?;
    let storage = match device {
        Device::Cpu => Storage::Cpu(vec![value; n]),
        d => {
            let p = FillParams::new(n, value)?;
            let l = Launch::elementwise("copy", "fill", &p, n);
            super::launch_out(d, &l, &[], n)?
        }
    };
    Tensor::from_storage(storage, shape, device)
}

/// Copies a slab of `src` into `dst` (which must already hold the rest of the output).
fn slice_copy(device: &Device, src: &Storage, dst: &mut Storage, p: SliceParams) -> Result<()> {
    if let (Some(s), Storage::Cpu(d)) = (src.cpu(), &mut *dst) {
        cpu::slice_copy(s, d, &p);
        return Ok(());
    }
    let l = Launch::elementwise("copy", "slice_copy", &p, p.total as usize);
    device.launch(&l, &[src], &[dst])
}

impl Tensor {
    /// Joins tensors along `axis`; all other dimensions must match.
    pub fn concat(parts: &[&Tensor], axis: isize) -> Result<Tensor> {
        let first = parts.first().ok_or_else(|| Error::shape("concat", "no tensors"))?;
        let ax = first.axis(axis)?;
        let mut shape = first.shape().to_vec();
        shape[ax] = 0;
        for p in parts {
            first.check_same_device(p)?;
            let ok = p.rank() == first.rank() && (0..p.rank()).all(|d| d == ax || p.shape()[d] == first.shape()[d]);
            if !ok {
                return Err(Error::shape("concat", format!("{:?} and {:?} along axis {ax}", first.shape(), p.shape())));
            }
            shape[ax] += p.shape()[ax];
        }
        let (outer, dst_n, inner) = around_axis(&shape, ax);
        let dev = first.device();
        let mut out = dev.alloc(outer * dst_n * inner)?;
        let mut off = 0;
        let mut sizes = Vec::with_capacity(parts.len());
        for p in parts {
            let len = p.shape()[ax];
            let sp = SliceParams::new((outer, inner), (len, 0), (dst_n, off), len)?;
            slice_copy(dev, p.storage(), &mut out, sp)?;
            sizes.push((off, len));
            off += len;
        }
        Tensor::from_op("concat", out, shape, dev, parts, move |inp, _, g| {
            inp.iter()
                .zip(&sizes)
                .map(|(t, &(o, l))| if t.tracks() { g.narrow(ax as isize, o, l).map(Some) } else { Ok(None) })
                .collect()
        })
    }

    /// Elements `start..start + len` along `axis`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let ax = self.axis(axis)?;
        let (outer, src_n, inner) = around_axis(self.shape(), ax);
        if start + len > src_n {
            return Err(Error::shape("narrow", format!("{start}..{} of axis {ax} of {:?}", start + len, self.shape())));
        }
        let mut shape = self.shape().to_vec();
        shape[ax] = len;
        let dev = self.device();
        let mut out = dev.alloc(outer * len * inner)?;
        let p = SliceParams::new((outer, inner), (src_n, start), (len, 0), len)?;
        slice_copy(dev, self.storage(), &mut out, p)?;
        Tensor::from_op("narrow", out, shape, dev, &[self], move |inp, _, g| {
            let x = &inp[0];
            let mut dx = Tensor::zeros(x.shape(), x.device())?.storage_owned()?;
            let back = SliceParams::new((outer, inner), (len, 0), (src_n, start), len)?;
            slice_copy(x.device(), g.storage(), &mut dx, back)?;
            Ok(vec![Some(Tensor::from_storage(dx, x.shape(), x.device())?)])
        })
    }

    /// Splits along `axis` into parts of the given sizes (which must add up to the axis length).
    pub fn split(&self, sizes: &[usize], axis: isize) -> Result<Vec<Tensor>> {
        let ax = self.axis(axis)?;
        if sizes.iter().sum::<usize>() != self.shape()[ax] {
            return Err(Error::shape("split", format!("sizes {sizes:?} for axis {ax} of {:?}", self.shape())));
        }
        let mut off = 0;
        sizes
            .iter()
            .map(|&l| {
                let t = self.narrow(axis, off, l);
                off += l;
                t
            })
            .collect()
    }

    /// Swaps the last two axes: [.., r, c] -> [.., c, r].
    pub fn transpose(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::shape("transpose", format!("needs rank >= 2, got {:?}", self.shape())));
        }
        let r = self.rank();
        let (rows, cols) = (self.shape()[r - 2], self.shape()[r - 1]);
        let batch: usize = self.shape()[..r - 2].iter().product();
        let dev = self.device();
        let storage = match self.storage().cpu() {
            Some(x) => Storage::Cpu(cpu::transpose(x, batch, rows, cols)),
            None => {
                // One block per 16 x 16 tile of each matrix (columns fastest, then rows, then the batch).
                let p = TransposeParams::new(batch, rows, cols)?;
                let l = Launch::tiled("copy", "transpose", &p, [cols.div_ceil(16), rows.div_ceil(16), batch]);
                super::launch_out(dev, &l, &[self.storage()], self.numel())?
            }
        };
        let mut shape = self.shape().to_vec();
        shape.swap(r - 2, r - 1);
        Tensor::from_op("transpose", storage, shape, dev, &[self], |_, _, g| Ok(vec![Some(g.transpose()?)]))
    }

    /// The storage of a tensor nobody else holds, to be written into (fresh outputs only).
    pub(crate) fn storage_owned(self) -> Result<Storage> {
        let arc = self.storage_arc().clone();
        drop(self);
        std::sync::Arc::try_unwrap(arc).map_err(|_| Error::Device("storage_owned: storage is shared".into()))
    }
}
