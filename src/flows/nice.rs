//! NICE (Dinh et al. 2014): `transforms` additive couplings with alternating checkered masks (even
//! features condition the odd ones, then the reverse), each coupling y_b = x_b + t(x_a, c) with t an MLP
//! (ReLU) of the kept half and the condition, then the paper's final diagonal scaling z = y exp(s).
//! `affine` switches to zuko's variant: y_b = x_b exp(u) + t, u = 3 tanh(raw / 3) from the same MLP.
//! `zuko_slope` (an imported zuko NICE) uses zuko's log-scale r / (1 + |r / ln slope|) on the gathered half instead.
//! Each coupling is one `coupling` op on the whole row (the kept half passes through its mask), with the
//! soft clamp and the log-det sum fused in; only the conditioner's input is gathered, and soft-clipped
//! ([`super::CONDITIONER_CLIP`] says why).
use super::{check_inputs, conditioner_input, zuko_affine, Flow};
use crate::autodiff::{no_grad, Var};
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::nn::{Mlp, Module};
use crate::ops::coupling::{CouplingKind, CouplingMask};
use crate::ops::gather::Indices;
use crate::tensor::Tensor;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NiceConfig {
    pub dim: usize,
    pub cond_dim: usize,
    pub transforms: usize,
    pub hidden: Vec<usize>,
    pub affine: bool,
    pub seed: u64,
    /// The coupling nets read the kept half soft-clipped to (-B, B) ([`super::CONDITIONER_CLIP`]); absent
    /// (None) in checkpoints written before the bound.
    #[serde(default)]
    pub conditioner_clip: Option<f32>,
    /// With `affine`: zuko's log-scale s = r / (1 + |r / ln(slope)|) instead of 3 tanh(r / 3), the form of an
    /// imported zuko NICE (`gforge import`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zuko_slope: Option<f32>,
}

impl NiceConfig {
    /// GalacticForge's zuko NICE: 30 transforms, hidden (128, 128).
    pub fn galacticforge(dim: usize, cond_dim: usize) -> NiceConfig {
        NiceConfig {
            dim,
            cond_dim,
            transforms: 30,
            hidden: vec![128, 128],
            affine: false,
            seed: 0,
            conditioner_clip: Some(super::CONDITIONER_CLIP),
            zuko_slope: None,
        }
    }
}

struct Coupling {
    net: Mlp,
    /// Feature indices kept (the conditioner's input); the mask passes them and transforms the others, whose
    /// parameters are the net's output columns in feature order.
    keep: Indices,
    mask: CouplingMask,
    /// zuko's form only: the transformed features, and where each feature sits in [kept, transformed].
    change: Indices,
    merge: Indices,
}

pub struct Nice {
    cfg: NiceConfig,
    couplings: Vec<Coupling>,
    log_scale: Var,
}

impl Nice {
    pub fn new(cfg: NiceConfig, dev: &Device) -> Result<Nice> {
        let bad_slope = cfg.zuko_slope.is_some_and(|s| !cfg.affine || s.is_nan() || s <= 0.0 || s >= 1.0);
        if cfg.dim < 2 || cfg.transforms == 0 || bad_slope {
            return Err(Error::Usage(format!("invalid NICE configuration {cfg:?}")));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
        let d = cfg.dim;
        let mut couplings = Vec::new();
        for i in 0..cfg.transforms {
            // The index lists below are sized by the settings' dim: ask the checkpoint's ceiling first.
            crate::build_budget::take(d as u64)?;
            let (a, b): (Vec<u32>, Vec<u32>) = (0..d as u32).partition(|j| (*j as usize + i).is_multiple_of(2));
            let mask: Vec<f32> = (0..d).map(|j| ((j + i) % 2 == 0) as u8 as f32).collect();
            let out = if cfg.affine { 2 * b.len() } else { b.len() };
            let mut sizes = vec![a.len() + cfg.cond_dim];
            sizes.extend(&cfg.hidden);
            sizes.push(out);
            couplings.push(Coupling {
                // ReLU between layers, none after the last (slope 0 = ReLU).
                net: Mlp::new(&format!("nice.{i}"), &sizes, 0.0, false, &mut rng, dev)?,
                keep: Indices::new(&a, d, dev)?,
                mask: CouplingMask::new(&mask, dev)?,
                change: Indices::new(&b, d, dev)?,
                merge: Indices::new(
                    &(0..d as u32)
                        .map(|j| a.iter().chain(&b).position(|&f| f == j).expect("every feature") as u32)
                        .collect::<Vec<_>>(),
                    d,
                    dev,
                )?,
            });
        }
        let log_scale = Var::new("nice.log_scale", Tensor::zeros(&[d], dev)?);
        Ok(Nice { cfg, couplings, log_scale })
    }

    /// One coupling of h [B, D]: the net reads the kept half and the condition and returns the packed
    /// parameters [shifts | raw log-scales] of the changed half. Returns (h', log-det [B]).
    fn couple(&self, k: &Coupling, h: &Tensor, c: &Tensor, inverse: bool) -> Result<(Tensor, Tensor)> {
        let xa = h.gather(1, &k.keep)?;
        let u = conditioner_input(&xa, self.cfg.conditioner_clip)?;
        let cb = c.broadcast_to(&[xa.shape()[0], self.cfg.cond_dim])?;
        let theta = k.net.forward(&Tensor::concat(&[&u, &cb], 1)?)?;
        if let Some(slope) = self.cfg.zuko_slope {
            let (yb, ld) = zuko_affine(&h.gather(1, &k.change)?, &theta, slope, inverse)?;
            return Ok((Tensor::concat(&[&xa, &yb], 1)?.gather(1, &k.merge)?, ld));
        }
        let kind = if self.cfg.affine { CouplingKind::Affine { clamp: Some(3.0) } } else { CouplingKind::Additive };
        h.coupling(&theta, &k.mask, kind, inverse)
    }
}

impl Module for Nice {
    fn vars(&self) -> Vec<Var> {
        let mut v: Vec<Var> = self.couplings.iter().flat_map(|k| k.net.vars()).collect();
        v.push(self.log_scale.clone());
        v
    }
}

impl Flow for Nice {
    fn dim(&self) -> usize {
        self.cfg.dim
    }
    fn cond_dim(&self) -> usize {
        self.cfg.cond_dim
    }

    fn forward(&self, x: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
        check_inputs("nice", x, c, self.cfg.dim, self.cfg.cond_dim)?;
        let mut h = x.clone();
        let mut ld = self.log_scale.get().sum_all()?.broadcast_to(&[x.shape()[0]])?;
        for (i, k) in self.couplings.iter().enumerate() {
            let _layer = crate::autodiff::anomaly::scope_with(|| format!("nice.{i}"));
            let (y, l) = self.couple(k, &h, c, false)?;
            if self.cfg.affine {
                ld = ld.add(&l)?;
            }
            h = y;
        }
        Ok((h.mul(&self.log_scale.get().exp()?)?, ld))
    }

    fn inverse(&self, z: &Tensor, c: &Tensor) -> Result<Tensor> {
        check_inputs("nice", z, c, self.cfg.dim, self.cfg.cond_dim)?;
        no_grad(|| {
            let mut h = z.mul(&self.log_scale.get().neg()?.exp()?)?;
            for k in self.couplings.iter().rev() {
                h = self.couple(k, &h, c, true)?.0;
            }
            Ok(h)
        })
    }
}
