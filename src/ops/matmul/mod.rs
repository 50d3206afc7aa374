//! Matrix products: C = op(A) op(B), batched, where op is the identity or a transpose.
//! a: [.., m, k], b: [.., k, n] -> [.., m, n]; the batch dimensions must match, or one side is a plain
//! matrix broadcast over the other's batch. Kernels: kernels/matmul.ptx, wgsl/matmul.wgsl: 64x64 output
//! tiles per 256-thread block, 4x4 per thread, k in steps of 16 through shared memory. The CPU uses the
//! `gemm` crate (packed, vectorised, multithreaded).
//!
//! Backward: dA = g B^T, dB = A^T g; the transposes are read in place through the trans flags (no copy),
//! and a side broadcast over the batch gets its gradient summed over the batch.
pub mod cpu;

use super::{launch_out, u32s};
use crate::backend::{Launch, Storage};
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

kernel_params! {
    /// Mirrors `Params` of the matmul kernel.
    pub struct Params for [("matmul", "matmul")] {
        pub m: u32,
        pub n: u32,
        pub k: u32,
        pub batch: u32,
        pub trans_a: u32,
        pub trans_b: u32,
        pub a_batch_stride: u32,
        pub b_batch_stride: u32,
    }
}

/// The output tile of one block (kernels/README.md).
const TILE: usize = 64;

/// The kernel parameters of `batch` products [m, k] x [k, n] (trans flags and batch strides as the kernel
/// reads them; a stride of 0 broadcasts that operand).
pub(crate) fn params(
    (batch, m, n, k): (usize, usize, usize, usize),
    (ta, tb): (bool, bool),
    (sa, sb): (usize, usize),
) -> Result<Params> {
    let a_len = if sa == 0 { m * k } else { batch * sa };
    let b_len = if sb == 0 { k * n } else { batch * sb };
    let [_, _, _, m, n, k, batch, sa, sb] = u32s("matmul", [batch * m * n, a_len, b_len, m, n, k, batch, sa, sb])?;
    let (trans_a, trans_b) = (ta as u32, tb as u32);
    Ok(Params { m, n, k, batch, trans_a, trans_b, a_batch_stride: sa, b_batch_stride: sb })
}

/// The launch of `p`: one block per 64 x 64 tile of each product (columns fastest, then rows, then the batch).
fn launch(p: &Params) -> Launch<'_> {
    let tiles = |d: u32| (d as usize).div_ceil(TILE);
    Launch::tiled("matmul", "matmul", p, [tiles(p.n), tiles(p.m), p.batch as usize])
}

/// (batch dims, rows, cols) of a matrix operand read with or without transpose.
fn split(shape: &[usize], trans: bool) -> (Vec<usize>, usize, usize) {
    let r = shape.len();
    let (rows, cols) = (shape[r - 2], shape[r - 1]);
    let batch = shape[..r - 2].to_vec();
    if trans {
        (batch, cols, rows)
    } else {
        (batch, rows, cols)
    }
}

/// op(a) op(b) with op = transpose where `ta` / `tb`.
pub fn matmul_t(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
    a.check_same_device(b)?;
    if a.rank() < 2 || b.rank() < 2 {
        return Err(Error::shape("matmul", format!("needs matrices, got {:?} and {:?}", a.shape(), b.shape())));
    }
    let (ba, m, k) = split(a.shape(), ta);
    let (bb, k2, n) = split(b.shape(), tb);
    if k != k2 {
        return Err(Error::shape("matmul", format!("inner dimensions differ: {:?} x {:?}", a.shape(), b.shape())));
    }
    let batch_dims = match (ba.is_empty(), bb.is_empty()) {
        (_, true) => ba.clone(),
        (true, false) => bb.clone(),
        _ if ba == bb => ba.clone(),
        _ => return Err(Error::shape("matmul", format!("batch dimensions differ: {:?} x {:?}", a.shape(), b.shape()))),
    };
    let batch: usize = batch_dims.iter().product();
    let sa = if ba.is_empty() { 0 } else { m * k };
    let sb = if bb.is_empty() { 0 } else { k * n };
    let dev = a.device();
    let storage = match (a.storage().cpu(), b.storage().cpu()) {
        (Some(x), Some(y)) => Storage::Cpu(cpu::matmul(x, y, batch, m, n, k, ta, tb, sa, sb)),
        _ => {
            let p = params((batch, m, n, k), (ta, tb), (sa, sb))?;
            launch_out(dev, &launch(&p), &[a.storage(), b.storage()], batch * m * n)?
        }
    };
    let mut shape = batch_dims;
    shape.extend([m, n]);
    Tensor::from_op("matmul", storage, shape, dev, &[a, b], move |inp, _, g| {
        let (a, b) = (&inp[0], &inp[1]);
        // C = op(A) op(B): d op(A) = g op(B)^T, d op(B) = op(A)^T g; undo op for the stored layout.
        let da = if !a.tracks() {
            None
        } else {
            let d = if ta { matmul_t(b, g, tb, true)? } else { matmul_t(g, b, false, !tb)? };
            Some(d.sum_to_shape(a.shape())?)
        };
        let db = if !b.tracks() {
            None
        } else {
            let d = if tb { matmul_t(g, a, true, ta)? } else { matmul_t(a, g, !ta, false)? };
            Some(d.sum_to_shape(b.shape())?)
        };
        Ok(vec![da, db])
    })
}

impl Tensor {
    /// Matrix product (batched over leading dimensions).
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        matmul_t(self, other, false, false)
    }
}
