//! The masked linear layer of MADE (Germain et al. 2015): y = x (W ⊙ M) + b, x [.., k], W and M [k, n], b [n].
//! One tiled kernel (kernels/made.ptx, wgsl/made.wgsl; matmul's 64x64 tile, 4x4 per thread, k in chunks of 16
//! through shared memory) multiplies the mask into the W tile as it is staged, so W ⊙ M is never materialised,
//! and adds the bias when it stores. The CPU masks a copy of W and uses the `gemm` crate (cpu.rs).
//!
//! Backward (the mask is a constant and gets no gradient):
//!   dx = g (W ⊙ M)^T   the same kernel reading W transposed in place, masked on load, no bias;
//!   dW = (x^T g) ⊙ M   the same kernel reading x transposed, masked on store;
//!   db = sum of g over the rows (the reduce op).
pub mod cpu;

use super::{launch_out, u32s};
use crate::backend::{Device, Launch, Storage};
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;
use std::sync::Arc;

kernel_params! {
    /// Mirrors `Params` of the made kernel (kernels/README.md, "made").
    pub struct Params for [("made", "made")] {
        pub m: u32,
        pub n: u32,
        pub k: u32,
        pub trans_a: u32,
        pub trans_b: u32,
        /// Multiply op(B) by the mask (stored like b) as its tile is loaded.
        pub mask_b: u32,
        /// Multiply C by the mask (stored [m, n] like c) as it is stored.
        pub mask_c: u32,
        /// Add bias[j] to C[i, j] as it is stored.
        pub bias: u32,
    }
}

/// The output tile of one block.
const TILE: usize = 64;

/// The kernel parameters of C [m, n] = (op(A) (op(B) ⊙ M?)) ⊙ M? + bias?.
pub(crate) fn params(
    (m, n, k): (usize, usize, usize),
    (ta, tb): (bool, bool),
    (mask_b, mask_c): (bool, bool),
    bias: bool,
) -> Result<Params> {
    let [_, _, _, m, n, k] = u32s("masked_linear", [m * k, k * n, m * n, m, n, k])?;
    Ok(Params {
        m,
        n,
        k,
        trans_a: ta as u32,
        trans_b: tb as u32,
        mask_b: mask_b as u32,
        mask_c: mask_c as u32,
        bias: bias as u32,
    })
}

/// One launch of the made kernel: C [m, n] = (op(A) (op(B) ⊙ M?)) ⊙ M? + bias?, one block per 64 x 64
/// tile (columns fastest).
#[allow(clippy::too_many_arguments)]
fn launch(
    dev: &Device,
    a: &Storage,
    b: &Storage,
    mask: &Storage,
    bias: Option<&Storage>,
    (m, n, k): (usize, usize, usize),
    (ta, tb): (bool, bool),
    (mask_b, mask_c): (bool, bool),
) -> Result<Storage> {
    let p = params((m, n, k), (ta, tb), (mask_b, mask_c), bias.is_some())?;
    let l = Launch::tiled("made", "made", &p, [n.div_ceil(TILE), m.div_ceil(TILE), 1]);
    // The bias binding is never read without the flag; the mask stands in for it.
    launch_out(dev, &l, &[a, b, mask, bias.unwrap_or(mask)], m * n)
}

impl Tensor {
    /// y = x (W ⊙ M) + b for x [.., k], w and mask [k, n], b [n] -> [.., n]. Differentiable in x, w and b.
    pub fn masked_linear(&self, w: &Tensor, mask: &Tensor, b: &Tensor) -> Result<Tensor> {
        for t in [w, mask, b] {
            self.check_same_device(t)?;
        }
        let ok = self.rank() >= 1
            && w.rank() == 2
            && mask.shape() == w.shape()
            && b.shape() == [w.shape()[1]]
            && self.shape()[self.rank() - 1] == w.shape()[0];
        if !ok {
            return Err(Error::shape(
                "masked_linear",
                format!("x {:?}, w {:?}, mask {:?}, b {:?}", self.shape(), w.shape(), mask.shape(), b.shape()),
            ));
        }
        let (k, n) = (w.shape()[0], w.shape()[1]);
        let m = self.numel() / k.max(1);
        let dev = self.device();
        // The CPU keeps W ⊙ M for the backward's dx.
        let (storage, wm) = match (self.storage().cpu(), w.storage().cpu(), mask.storage().cpu(), b.storage().cpu()) {
            (Some(xv), Some(wv), Some(mv), Some(bv)) => {
                let (y, wm) = cpu::forward(xv, wv, mv, bv, m, n, k);
                (Storage::Cpu(y), Some(Arc::new(wm)))
            }
            _ => {
                let s = launch(
                    dev,
                    self.storage(),
                    w.storage(),
                    mask.storage(),
                    Some(b.storage()),
                    (m, n, k),
                    (false, false),
                    (true, false),
                )?;
                (s, None)
            }
        };
        let mut shape = self.shape().to_vec();
        *shape.last_mut().unwrap() = n;
        Tensor::from_op("made", storage, shape, dev, &[self, w, mask, b], move |inp, _, g| {
            let (x, w, mask, b) = (&inp[0], &inp[1], &inp[2], &inp[3]);
            let dev = x.device();
            let cpu = match (&wm, x.storage().cpu(), mask.storage().cpu(), g.storage().cpu()) {
                (Some(wm), Some(xv), Some(mv), Some(gv)) => Some((wm, xv, mv, gv)),
                _ => None,
            };
            let dx = if !x.tracks() {
                None
            } else {
                let s = match cpu {
                    Some((wm, _, _, gv)) => Storage::Cpu(cpu::grad_x(gv, wm, m, n, k)),
                    None => launch(
                        dev,
                        g.storage(),
                        w.storage(),
                        mask.storage(),
                        None,
                        (m, k, n),
                        (false, true),
                        (true, false),
                    )?,
                };
                Some(Tensor::from_storage(s, x.shape(), dev)?)
            };
            let dw = if !w.tracks() {
                None
            } else {
                let s = match cpu {
                    Some((_, xv, mv, gv)) => Storage::Cpu(cpu::grad_w(xv, gv, mv, m, n, k)),
                    None => launch(
                        dev,
                        x.storage(),
                        g.storage(),
                        mask.storage(),
                        None,
                        (k, n, m),
                        (true, false),
                        (false, true),
                    )?,
                };
                Some(Tensor::from_storage(s, w.shape(), dev)?)
            };
            let db = if b.tracks() { Some(g.reshape(&[m, n])?.sum(0)?) } else { None };
            Ok(vec![dx, dw, None, db])
        })
    }
}
