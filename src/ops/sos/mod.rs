//! Sum-of-squares polynomial transform (Jaini et al. 2019, as zuko's SOSPF): y = c + ∫_0^x Σ_k p_k(u)² du with
//! K polynomials p_k of degree r, element-wise with K (r + 1) + 1 parameters per element; monotone because
//! its derivative is a sum of squares. One fused kernel evaluates y and log f'(x) (or inverts by bisection),
//! one the backward. Maths: kernels/README.md ("sos"); CPU reference: cpu.rs; kernels: kernels/sos.ptx,
//! wgsl/sos.wgsl.
pub mod cpu;

use super::u32s;
use crate::error::{Error, Result};
use crate::kernels::kernel_params;
use crate::tensor::Tensor;

kernel_params! {
    /// Mirrors `Params` of the sos kernels.
    pub struct Params for [("sos", "sos_fwd"), ("sos", "sos_bwd")] {
        pub n: u32,
        pub k: u32,
        pub r: u32,
        pub inverse: u32,
        pub bound: f32,
        pub iters: u32,
        pub pad0: u32,
        pub pad1: u32,
    }
}

/// K polynomials of degree r; the inverse bisects on [-bound, bound] `iters` times.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SosCfg {
    pub polynomials: usize,
    pub degree: usize,
    pub bound: f32,
    pub iters: u32,
}

impl Default for SosCfg {
    /// GalacticForge's SOSPF: 3 polynomials of degree 4; the bracket (-11, 11) of zuko's soft-clip bound
    /// (the flow itself works on x / 11 with bracket 1); 40 halvings go below f32 resolution.
    fn default() -> Self {
        SosCfg { polynomials: 3, degree: 4, bound: 11.0, iters: 40 }
    }
}

impl SosCfg {
    pub fn params_per_dim(&self) -> usize {
        // Saturating: a checkpoint's settings may hold any number; the build budget then refuses it.
        self.polynomials.saturating_mul(self.degree.saturating_add(1)).saturating_add(1)
    }
}

impl Tensor {
    /// The SOS transform of every element of `self` (shape S) with parameters `theta` (S + [K (r + 1) + 1]):
    /// (y, ld) of shape S. `inverse` maps y back to x by bisection (not differentiable).
    pub fn sos_transform(&self, theta: &Tensor, cfg: &SosCfg, inverse: bool) -> Result<(Tensor, Tensor)> {
        self.check_same_device(theta)?;
        let mut want = self.shape().to_vec();
        want.push(cfg.params_per_dim());
        if theta.shape() != want.as_slice() {
            return Err(Error::shape(
                "sos",
                format!("theta {:?} for x {:?}, want {want:?}", theta.shape(), self.shape()),
            ));
        }
        if cfg.polynomials == 0 || cfg.degree > 16 || cfg.bound.is_nan() || cfg.bound <= 0.0 {
            return Err(Error::Usage(format!("invalid sos configuration {cfg:?}")));
        }
        if inverse && crate::autodiff::recording() && (self.tracks() || theta.tracks()) {
            return Err(Error::Usage("the inverse sos transform is not differentiable: run it under no_grad".into()));
        }
        let p = cfg.params(self.numel(), inverse)?;
        super::packed_transform(self, theta, p, ("sos", "sos_fwd", "sos_bwd"), cpu::forward, cpu::backward)
    }
}

impl SosCfg {
    /// The kernel parameters for `n` elements (and their n P parameters).
    pub(crate) fn params(&self, n: usize, inverse: bool) -> Result<Params> {
        let [.., n, k, r] = u32s("sos", [2 * n, n * self.params_per_dim(), n, self.polynomials, self.degree])?;
        Ok(Params { n, k, r, inverse: inverse as u32, bound: self.bound, iters: self.iters, pad0: 0, pad1: 0 })
    }
}
