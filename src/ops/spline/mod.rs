//! Monotonic rational-quadratic spline (Durkan et al. 2019; nflows' `unconstrained_rational_quadratic_spline`
//! with linear tails): K bins on [-B, B], identity outside, applied element-wise with 3K-1 raw parameters per
//! element. One fused kernel does the softmax/softplus normalisation, the bin search and the rational
//! quadratic, so a whole spline layer is one launch forward and one backward.
//! Maths: kernels/README.md ("spline"); CPU reference: cpu.rs; kernels: kernels/spline.ptx, wgsl/spline.wgsl.
pub mod cpu;

use super::u32s;
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

/// Largest K the kernels support (the CPU reference keeps fixed-size scratch arrays of this size).
pub const MAX_BINS: usize = 64;

kernel_params! {
    /// Mirrors `Params` of the spline kernels.
    pub struct Params for [("spline", "spline_fwd"), ("spline", "spline_bwd")] {
        pub n: u32,
        pub k: u32,
        pub inverse: u32,
        pub pad: u32,
        pub bound: f32,
        pub min_w: f32,
        pub min_h: f32,
        pub min_d: f32,
    }
}

/// Spline shape: bins K on [-bound, bound] and the minimum bin width, height and derivative.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SplineCfg {
    pub bins: usize,
    pub bound: f32,
    pub min_width: f32,
    pub min_height: f32,
    pub min_derivative: f32,
}

impl Default for SplineCfg {
    /// GalacticFlow's: K = 10 on [-3, 3], nflows' minimums of 1e-3.
    fn default() -> Self {
        SplineCfg { bins: 10, bound: 3.0, min_width: 1e-3, min_height: 1e-3, min_derivative: 1e-3 }
    }
}

impl SplineCfg {
    /// Raw parameters per element: K widths, K heights, K - 1 inner derivatives.
    pub fn params_per_dim(&self) -> usize {
        // Saturating: a checkpoint's settings may hold any number; the build budget then refuses it.
        self.bins.saturating_mul(3).saturating_sub(1)
    }

    pub(crate) fn params(&self, n: usize, inverse: bool) -> Result<Params> {
        let k = self.bins;
        if !(2..=MAX_BINS).contains(&k) {
            return Err(Error::Usage(format!("spline bins must be in 2..={MAX_BINS}, got {k}")));
        }
        let minimums_fit = self.min_width * k as f32 <= 1.0 && self.min_height * k as f32 <= 1.0;
        if !(self.bound > 0.0 && minimums_fit && self.min_derivative >= 0.0) {
            return Err(Error::Usage(format!("invalid spline configuration {self:?}")));
        }
        let [.., n, k] = u32s("rq_spline", [2 * n, n * self.params_per_dim(), n, k])?;
        Ok(Params {
            n,
            k,
            inverse: inverse as u32,
            pad: 0,
            bound: self.bound,
            min_w: self.min_width,
            min_h: self.min_height,
            min_d: self.min_derivative,
        })
    }
}

impl Tensor {
    /// Applies the spline element-wise to `self` (any shape S) with raw parameters `theta` of shape
    /// S + [3K - 1]. Returns (y, ld), both of shape S, ld = log|dy/dx| per element. `inverse` maps y back
    /// to x (ld is then log|dx/dy|); only the forward direction is differentiable.
    pub fn rq_spline(&self, theta: &Tensor, cfg: &SplineCfg, inverse: bool) -> Result<(Tensor, Tensor)> {
        self.check_same_device(theta)?;
        let np = cfg.params_per_dim();
        let mut want = self.shape().to_vec();
        want.push(np);
        if theta.shape() != want.as_slice() {
            return Err(Error::shape(
                "rq_spline",
                format!("theta {:?} for x {:?}, want {want:?}", theta.shape(), self.shape()),
            ));
        }
        if inverse && crate::autodiff::recording() && (self.tracks() || theta.tracks()) {
            return Err(Error::Usage("the inverse spline is not differentiable: run it under no_grad".into()));
        }
        let n = self.numel();
        let p = cfg.params(n, inverse)?;
        super::packed_transform(self, theta, p, ("spline", "spline_fwd", "spline_bwd"), cpu::forward, cpu::backward)
    }
}
