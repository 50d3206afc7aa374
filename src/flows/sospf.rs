//! Sum-of-squares polynomial flow (Jaini et al. 2019), as zuko's SOSPF: `transforms` autoregressive SOS
//! transforms (K = 3 polynomials of degree 4 per feature, parameters from a MADE with the condition as
//! context, alternating orders), each preceded by a soft-clip y = x / (1 + |x| / B), B = 11. zuko soft-clips
//! only between transforms; clipping before the first one too keeps every SOS input inside the inverse's
//! bisection bracket, so sampling is exact for any data.
//!
//! The polynomials act on u = x / B in (-1, 1) and the output is scaled back, y = B f(u), so
//! dy/dx = f'(u) = Σ_k p_k(u)²: raw monomials of x up to x^9 over (-11, 11) would reach 1e9 and swamp f32.
//! A constant 1 / sqrt(K) is added to every p_k's degree-0 coefficient, so a network whose outputs start
//! near zero starts near the identity (f' = 1).
use super::{add_logdet, check_inputs, Flow};
use crate::autodiff::{no_grad, Var};
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::nn::{Made, Module};
use crate::ops::sos::SosCfg;
use crate::tensor::Tensor;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SospfConfig {
    pub dim: usize,
    pub cond_dim: usize,
    pub transforms: usize,
    pub hidden: Vec<usize>,
    /// Polynomials per feature and degree; `sos.bound` is the bisection bracket on u (1).
    pub sos: SosCfg,
    /// Soft-clip bound B.
    pub clip: f32,
    pub seed: u64,
}

impl SospfConfig {
    /// GalacticForge's zuko SOSPF: 10 transforms, hidden (128, 128), degree 4, 3 polynomials, bound 11.
    pub fn galacticforge(dim: usize, cond_dim: usize) -> SospfConfig {
        let sos = SosCfg { bound: 1.0, ..SosCfg::default() };
        SospfConfig { dim, cond_dim, transforms: 10, hidden: vec![128, 128], sos, clip: 11.0, seed: 0 }
    }
}

/// Soft-clip to (-b, b): y = x / (1 + |x| / b), log|dy/dx| = -2 log(1 + |x| / b) (one `softclip` op).
pub fn softclip(x: &Tensor, b: f32) -> Result<(Tensor, Tensor)> {
    x.softclip(b, false)
}

/// Its inverse: x = y / (1 - |y| / b). |y| is first held below b (1 - 2^-20): a polynomial on the clipped
/// interval has a bounded image, so a base sample beyond it comes back from the bisection at the bracket's
/// end, which would otherwise map to infinity (zuko's SOSPF has the same bounded image).
pub fn softclip_inverse(y: &Tensor, b: f32) -> Result<Tensor> {
    Ok(y.softclip(b, true)?.0)
}

pub struct Sospf {
    cfg: SospfConfig,
    mades: Vec<Made>,
    /// 1 / sqrt(K) at every degree-0 coefficient, 0 elsewhere: [P].
    offset: Tensor,
}

impl Sospf {
    pub fn new(cfg: SospfConfig, dev: &Device) -> Result<Sospf> {
        if cfg.dim < 1 || cfg.transforms == 0 {
            return Err(Error::Usage(format!("invalid SOSPF configuration {cfg:?}")));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
        let per = cfg.sos.params_per_dim();
        let mades = (0..cfg.transforms)
            .map(|i| {
                // The order list is sized by the settings' dim: ask the checkpoint's ceiling first.
                crate::build_budget::take(cfg.dim as u64)?;
                let order: Vec<usize> =
                    if i % 2 == 0 { (1..=cfg.dim).collect() } else { (1..=cfg.dim).rev().collect() };
                Made::new(&format!("sospf.{i}"), &order, cfg.cond_dim, &cfg.hidden, per, &mut rng, dev)
            })
            .collect::<Result<_>>()?;
        let (k, r) = (cfg.sos.polynomials, cfg.sos.degree);
        crate::build_budget::take(per as u64)?;
        let off: Vec<f32> =
            (0..per).map(|j| if j < k * (r + 1) && j % (r + 1) == 0 { 1.0 / (k as f32).sqrt() } else { 0.0 }).collect();
        let offset = Tensor::from_vec(off, &[per], dev)?;
        Ok(Sospf { cfg, mades, offset })
    }

    /// The MADE's [B, P * D] output (parameter-major) as the kernel's [B, D, P].
    fn theta(&self, m: &Made, x: &Tensor, c: &Tensor) -> Result<Tensor> {
        self.params(&m.forward(x, Some(c))?)
    }

    /// The polynomial parameters from a MADE's output.
    fn params(&self, out: &Tensor) -> Result<Tensor> {
        let b = out.shape()[0];
        out.reshape(&[b, self.cfg.sos.params_per_dim(), self.cfg.dim])?.transpose()?.add(&self.offset)
    }
}

impl Module for Sospf {
    fn vars(&self) -> Vec<Var> {
        self.mades.iter().flat_map(|m| m.vars()).collect()
    }
    fn buffers(&self) -> Vec<Var> {
        self.mades.iter().flat_map(|m| m.buffers()).collect()
    }
}

impl Flow for Sospf {
    fn dim(&self) -> usize {
        self.cfg.dim
    }
    fn cond_dim(&self) -> usize {
        self.cfg.cond_dim
    }

    fn forward(&self, x: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
        check_inputs("sospf", x, c, self.cfg.dim, self.cfg.cond_dim)?;
        let mut h = x.clone();
        let mut ld: Option<Tensor> = None;
        let b = self.cfg.clip;
        for (i, m) in self.mades.iter().enumerate() {
            let _layer = crate::autodiff::anomaly::scope_with(|| format!("sospf.{i}"));
            let (y, l1) = softclip(&h, b)?;
            let u = y.scale(1.0 / b)?;
            let (v, l2) = u.sos_transform(&self.theta(m, &y, c)?, &self.cfg.sos, false)?;
            let z = v.scale(b)?;
            let l = l1.add(&l2)?.sum(-1)?;
            add_logdet(&mut ld, l)?;
            h = z;
        }
        Ok((h, ld.expect("at least one transform")))
    }

    fn inverse(&self, z: &Tensor, c: &Tensor) -> Result<Tensor> {
        check_inputs("sospf", z, c, self.cfg.dim, self.cfg.cond_dim)?;
        no_grad(|| {
            let b = self.cfg.clip;
            let mut h = z.clone();
            for m in self.mades.iter().rev() {
                let v = h.scale(1.0 / b)?;
                let y0 = Tensor::zeros(h.shape(), h.device())?;
                let step = |out: &Tensor| v.sos_transform(&self.params(out)?, &self.cfg.sos, true)?.0.scale(b);
                let y = m.invert(&y0, Some(c), |y| Ok(y.clone()), step)?;
                h = softclip_inverse(&y, b)?;
            }
            Ok(h)
        })
    }
}
