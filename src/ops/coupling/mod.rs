//! Affine and additive coupling with a mask, fused with the log-determinant's row reduction (NICE, RealNVP,
//! and MAF's element-wise affine step, whose mask is all zeros). For x [B, D] and a mask over the D features
//! (1 = passes unchanged):
//!
//!   additive:  y_i = x_i + t_i                        ld_b = 0
//!   affine:    y_i = x_i exp(s_i) + t_i               ld_b = sum of s_i over the transformed i
//!              s_i = C tanh(r_i / C) when soft-clamped by C (zuko's MAF and NICE use C = 3), else r_i
//!   inverse:   x_i = y_i - t_i  /  x_i = (y_i - t_i) exp(-s_i),  ld_b = -sum s_i
//!
//! and y_i = x_i where the mask is 1. The parameters come packed as one [B, W] tensor theta, the shifts t in
//! columns 0..P and, for affine, the raw log-scales r in columns P..2P (W = P or 2P): exactly the layout of a
//! conditioner net's output, so no split is needed. Feature i reads column slot[i] (CouplingMask): compact
//! masks number the transformed features 0..P in order (P = number of zeros in the mask), dense ones use
//! slot[i] = i (P = D, the columns of passing features are ignored and get zero gradient).
//!
//! Kernels (kernels/coupling.ptx, wgsl/coupling.wgsl): one thread per row, so the log-det sum over the row
//! stays in a register (no second launch, no atomics); y and ld go out as one packed buffer [y (B D values),
//! ld (B values)], so the tape sees one op and the backward is one launch.
//! Backward of the forward direction (gy, gld the two parts of the packed upstream gradient):
//!   gx_i = gy_i exp(s_i) (affine) or gy_i;  gt_i = gy_i;  gs_i = gy_i x_i exp(s_i) + gld_b;
//!   gr_i = gs_i (1 - tanh²(r_i / C)) when clamped, else gs_i;  passing features: gx_i = gy_i.
pub mod cpu;

use super::{launch_out, u32s};
use crate::backend::{Device, Launch, Storage};
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;
use std::sync::Arc;

kernel_params! {
    /// Mirrors `Params` of the coupling kernels.
    pub struct Params for [("coupling", "coupling_fwd"), ("coupling", "coupling_bwd")] {
        pub rows: u32,
        pub d: u32,
        /// Columns per parameter kind (shift, log-scale) in theta.
        pub p: u32,
        pub affine: u32,
        pub inverse: u32,
        /// Soft clamp C of the log-scale (0 = none) and 1 / C.
        pub clamp: f32,
        pub inv_clamp: f32,
        pub pad: u32,
    }
}

impl Params {
    /// x [rows, d] with `p` parameter columns per kind (theta [rows, p] or [rows, 2p] when `affine`), the packed
    /// output [y, ld [rows]].
    pub(crate) fn new(rows: usize, d: usize, p: usize, affine: bool, inverse: bool, clamp: f32) -> Result<Params> {
        let width = if affine { 2 * p } else { p };
        let [.., rows, d, p] = u32s("coupling", [rows * d + rows, rows * width, rows, d, p])?;
        Ok(Params {
            rows,
            d,
            p,
            affine: affine as u32,
            inverse: inverse as u32,
            clamp,
            inv_clamp: if clamp > 0.0 { 1.0 / clamp } else { 0.0 },
            pad: 0,
        })
    }
}

/// Marks a passing feature in `slot`.
pub const PASS: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CouplingKind {
    Additive,
    /// Affine with the log-scale soft-clamped to (-C, C) by C tanh(r / C) when `clamp` is Some(C).
    Affine {
        clamp: Option<f32>,
    },
}

/// Which features pass unchanged and which parameter column each transformed feature reads.
#[derive(Clone)]
pub struct CouplingMask {
    slot: Arc<Vec<u32>>,
    dev_slot: Arc<Storage>,
    p: usize,
}

impl CouplingMask {
    /// Compact columns: mask[i] = 1 passes, 0 is transformed with the next column (P = number of zeros).
    pub fn new(mask: &[f32], device: &Device) -> Result<CouplingMask> {
        let mut p = 0u32;
        let slot: Vec<u32> = mask
            .iter()
            .map(|&m| {
                if m != 0.0 {
                    PASS
                } else {
                    p += 1;
                    p - 1
                }
            })
            .collect();
        Self::from_slots(slot, p as usize, device)
    }

    /// Dense columns: feature i reads column i (P = D); passing features' columns are ignored.
    pub fn dense(mask: &[f32], device: &Device) -> Result<CouplingMask> {
        let slot = mask.iter().enumerate().map(|(i, &m)| if m != 0.0 { PASS } else { i as u32 }).collect();
        Self::from_slots(slot, mask.len(), device)
    }

    fn from_slots(slot: Vec<u32>, p: usize, device: &Device) -> Result<CouplingMask> {
        let dev_slot = Arc::new(device.upload_u32(&slot)?);
        Ok(CouplingMask { slot: Arc::new(slot), dev_slot, p })
    }

    pub fn dim(&self) -> usize {
        self.slot.len()
    }

    /// Parameter columns per kind.
    pub fn columns(&self) -> usize {
        self.p
    }
}

impl Tensor {
    /// The coupling transform of `self` [B, D] with packed parameters `theta` [B, P] (additive) or [B, 2P]
    /// (affine): returns (y [B, D], ld [B]). `inverse` maps y back to x (ld is then log|dx/dy|) and is not
    /// differentiable.
    pub fn coupling(
        &self,
        theta: &Tensor,
        mask: &CouplingMask,
        kind: CouplingKind,
        inverse: bool,
    ) -> Result<(Tensor, Tensor)> {
        self.check_same_device(theta)?;
        let (affine, clamp) = match kind {
            CouplingKind::Additive => (false, 0.0),
            CouplingKind::Affine { clamp } => (true, clamp.unwrap_or(0.0)),
        };
        let d = mask.dim();
        let w = if affine { 2 * mask.p } else { mask.p };
        let rows = if self.rank() == 2 { self.shape()[0] } else { 0 };
        if self.rank() != 2 || self.shape()[1] != d || theta.shape() != [rows, w] {
            return Err(Error::shape(
                "coupling",
                format!(
                    "x {:?} and theta {:?} for a mask of {d} features with {w} columns",
                    self.shape(),
                    theta.shape()
                ),
            ));
        }
        if !(clamp >= 0.0 && clamp.is_finite()) {
            return Err(Error::Usage(format!("coupling clamp must be positive, got {clamp}")));
        }
        if inverse && crate::autodiff::recording() && (self.tracks() || theta.tracks()) {
            return Err(Error::Usage("the inverse coupling is not differentiable: run it under no_grad".into()));
        }
        let p = Params::new(rows, d, mask.p, affine, inverse, clamp)?;
        let dev = self.device();
        let slot = mask.dev_slot.clone();
        let host_slot = mask.slot.clone();
        let storage = match (self.storage().cpu(), theta.storage().cpu()) {
            (Some(xv), Some(tv)) => Storage::Cpu(cpu::forward(&p, xv, tv, &host_slot)),
            _ => launch_out(
                dev,
                &Launch::elementwise("coupling", "coupling_fwd", &p, rows),
                &[self.storage(), theta.storage(), &slot],
                rows * d + rows,
            )?,
        };
        let packed =
            Tensor::from_op("coupling", storage, vec![rows * d + rows], dev, &[self, theta], move |inp, _, g| {
                let (x, th) = (&inp[0], &inp[1]);
                let dev = x.device();
                let (gx, gth) = match (x.storage().cpu(), th.storage().cpu(), g.storage().cpu()) {
                    (Some(xv), Some(tv), Some(gv)) => {
                        let (a, b) = cpu::backward(&p, xv, tv, &host_slot, gv);
                        (Storage::Cpu(a), Storage::Cpu(b))
                    }
                    _ => {
                        let (gx, gth) = (dev.alloc(x.numel())?, dev.alloc(th.numel())?);
                        let l = Launch::elementwise("coupling", "coupling_bwd", &p, rows);
                        dev.launch(&l, &[x.storage(), th.storage(), &slot, g.storage()], &[&gx, &gth])?;
                        (gx, gth)
                    }
                };
                Ok(vec![
                    Some(Tensor::from_storage(gx, x.shape(), dev)?),
                    Some(Tensor::from_storage(gth, th.shape(), dev)?),
                ])
            })?;
        Ok((packed.narrow(0, 0, rows * d)?.reshape(&[rows, d])?, packed.narrow(0, rows * d, rows)?))
    }
}
