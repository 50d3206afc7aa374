//! Masked autoregressive flow (Papamakarios et al. 2017), as zuko's MAF: `transforms` affine
//! autoregressive layers with alternating (reversed) orders, each a MADE over the features with the
//! condition as context. Data -> noise: z_i = x_i exp(s_i) + t_i with (t_i, s_i) = MADE(x_<i, c), the
//! log-scale soft-clamped as s = B tanh(raw / B), B = 3, so one layer never scales by more than e^±3.
//! The inverse fixes one more feature in order each pass, computing each MADE unit once
//! (nn/made_inverse.rs). The affine step (with the soft clamp and the log-det sum) is one `coupling` op with a
//! mask of all zeros on the MADE's packed output.
//! The MADEs read x soft-clipped ([`super::CONDITIONER_CLIP`] says why: samples no longer explode).
use super::{add_logdet, check_inputs, conditioner_input, zuko_affine, Flow};
use crate::autodiff::{no_grad, Var};
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::nn::{Made, Module};
use crate::ops::coupling::{CouplingKind, CouplingMask};
use crate::tensor::Tensor;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

const SCALE_BOUND: f32 = 3.0;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MafConfig {
    pub dim: usize,
    pub cond_dim: usize,
    pub transforms: usize,
    pub hidden: Vec<usize>,
    pub seed: u64,
    /// The MADEs read x_<i soft-clipped to (-B, B) ([`super::CONDITIONER_CLIP`]); absent (None) in
    /// checkpoints written before the bound, which read x itself.
    #[serde(default)]
    pub conditioner_clip: Option<f32>,
    /// zuko's log-scale instead of ours: s = r / (1 + |r / ln(slope)|) (MonotonicAffineTransform, slope 1e-3
    /// by default), the form of an imported zuko MAF (`gforge import`). None: s = B tanh(r / B), B = 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zuko_slope: Option<f32>,
}

impl MafConfig {
    /// GalacticForge's zuko MAF: 10 transforms, hidden (128, 128).
    pub fn galacticforge(dim: usize, cond_dim: usize) -> MafConfig {
        MafConfig {
            dim,
            cond_dim,
            transforms: 10,
            hidden: vec![128, 128],
            seed: 0,
            conditioner_clip: Some(super::CONDITIONER_CLIP),
            zuko_slope: None,
        }
    }
}

pub struct Maf {
    cfg: MafConfig,
    mades: Vec<Made>,
    /// Every feature transformed, feature i reading columns i (shift) and D + i (raw log-scale).
    mask: CouplingMask,
}

/// s = B tanh(raw / B), fused into the coupling op.
const AFFINE: CouplingKind = CouplingKind::Affine { clamp: Some(SCALE_BOUND) };

impl Maf {
    pub fn new(cfg: MafConfig, dev: &Device) -> Result<Maf> {
        if cfg.dim < 1 || cfg.transforms == 0 || cfg.zuko_slope.is_some_and(|s| s.is_nan() || s <= 0.0 || s >= 1.0) {
            return Err(Error::Usage(format!("invalid MAF configuration {cfg:?}")));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
        let mades = (0..cfg.transforms)
            .map(|i| {
                // The order list is sized by the settings' dim: ask the checkpoint's ceiling first.
                crate::build_budget::take(cfg.dim as u64)?;
                let order: Vec<usize> =
                    if i % 2 == 0 { (1..=cfg.dim).collect() } else { (1..=cfg.dim).rev().collect() };
                Made::new(&format!("maf.{i}"), &order, cfg.cond_dim, &cfg.hidden, 2, &mut rng, dev)
            })
            .collect::<Result<_>>()?;
        let mask = CouplingMask::new(&vec![0.0; cfg.dim], dev)?;
        Ok(Maf { cfg, mades, mask })
    }
}

impl Maf {
    /// One transform's affine step, ours (the fused coupling op) or zuko's.
    fn step(&self, v: &Tensor, params: &Tensor, inverse: bool) -> Result<(Tensor, Tensor)> {
        match self.cfg.zuko_slope {
            Some(slope) => zuko_affine(v, params, slope, inverse),
            None => v.coupling(params, &self.mask, AFFINE, inverse),
        }
    }
}

impl Module for Maf {
    fn vars(&self) -> Vec<Var> {
        self.mades.iter().flat_map(|m| m.vars()).collect()
    }
    fn buffers(&self) -> Vec<Var> {
        self.mades.iter().flat_map(|m| m.buffers()).collect()
    }
}

impl Flow for Maf {
    fn dim(&self) -> usize {
        self.cfg.dim
    }
    fn cond_dim(&self) -> usize {
        self.cfg.cond_dim
    }

    fn forward(&self, x: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
        check_inputs("maf", x, c, self.cfg.dim, self.cfg.cond_dim)?;
        let mut h = x.clone();
        let mut ld: Option<Tensor> = None;
        for (i, m) in self.mades.iter().enumerate() {
            let _layer = crate::autodiff::anomaly::scope_with(|| format!("maf.{i}"));
            let u = conditioner_input(&h, self.cfg.conditioner_clip)?;
            let (y, l) = self.step(&h, &m.forward(&u, Some(c))?, false)?;
            add_logdet(&mut ld, l)?;
            h = y;
        }
        Ok((h, ld.expect("at least one transform")))
    }

    fn inverse(&self, z: &Tensor, c: &Tensor) -> Result<Tensor> {
        check_inputs("maf", z, c, self.cfg.dim, self.cfg.cond_dim)?;
        no_grad(|| {
            let mut h = z.clone();
            for m in self.mades.iter().rev() {
                // Pass k fixes the feature of order k (its parameters depend only on lower orders).
                let x0 = Tensor::zeros(h.shape(), h.device())?;
                let input = |x: &Tensor| conditioner_input(x, self.cfg.conditioner_clip);
                h = m.invert(&x0, Some(c), input, |out| Ok(self.step(&h, out, true)?.0))?;
            }
            Ok(h)
        })
    }
}
