//! HIGlow's conditional affine coupling: the first half of the channels, with the condition appended as
//! constant channels, feeds a GlowNet whose output (r, t) transforms the second half:
//! y_b = (x_b + t) s, s = (1 - m) sigmoid(r + 2) + m, log|det| = sum log s (`ops::image_affine`, Coupling).
//! HIGlow trains with the floor m = 0.5 (train_conditional.py's `-clamp` default), so s is in [0.5, 1].
use super::glow_net::{condition_map, GlowNet};
use super::Module;
use crate::autodiff::Var;
use crate::backend::Device;
use crate::error::Result;
use crate::ops::image_affine::AffineKind;
use crate::tensor::Tensor;

pub struct CondAffineCoupling {
    pub net: GlowNet,
    pub floor: f32,
}

impl CondAffineCoupling {
    pub fn new(
        name: &str,
        c: usize,
        cond: usize,
        hidden: usize,
        floor: f32,
        rng: &mut impl rand::Rng,
        dev: &Device,
    ) -> Result<CondAffineCoupling> {
        Ok(CondAffineCoupling { net: GlowNet::new(&format!("{name}.net"), c / 2 + cond, hidden, c, rng, dev)?, floor })
    }

    /// The net's output from the passing half a [N, C/2, H, W].
    fn theta(&self, a: &Tensor, c: &Tensor) -> Result<Tensor> {
        let cm = condition_map(c, a.shape()[2], a.shape()[3])?;
        self.net.forward(&Tensor::concat(&[a, &cm], 1)?)
    }

    /// x [N, C, H, W], c [N, K] -> (y, log|det| [N]).
    pub fn forward(&self, x: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
        let a = x.narrow(1, 0, x.shape()[1] / 2)?;
        let (y, ls) = x.image_affine(&self.theta(&a, c)?, AffineKind::Coupling { floor: self.floor }, false)?;
        Ok((y, ls.logdet_rows()?))
    }

    pub fn inverse(&self, y: &Tensor, c: &Tensor) -> Result<Tensor> {
        let a = y.narrow(1, 0, y.shape()[1] / 2)?;
        Ok(y.image_affine(&self.theta(&a, c)?, AffineKind::Coupling { floor: self.floor }, true)?.0)
    }
}

impl Module for CondAffineCoupling {
    fn vars(&self) -> Vec<Var> {
        self.net.vars()
    }
}
