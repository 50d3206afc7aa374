//! Glow's invertible 1x1 convolution, LU-parametrised: W = P L (U + diag(sign exp(log_s))) with P and sign
//! fixed from the LU decomposition of a random orthogonal matrix (the parameters are exactly those of
//! [`LuLinear`], which builds W and log|det W| in one `lu_weight` op). Every pixel's channel vector is
//! multiplied by W (`ops::inv_conv1x1`), so log|det| = H W sum(log_s).
use super::{LuLinear, Module};
use crate::autodiff::Var;
use crate::backend::Device;
use crate::error::Result;
use crate::tensor::Tensor;

pub struct InvConv1x1 {
    pub lu: LuLinear,
}

impl InvConv1x1 {
    pub fn new(name: &str, c: usize, rng: &mut impl rand::Rng, dev: &Device) -> Result<InvConv1x1> {
        Ok(InvConv1x1 { lu: LuLinear::new(name, c, rng, dev)? })
    }

    /// x [N, C, H, W] -> (W x, H W log|det W| as a scalar tensor).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (w, ld) = self.lu.weight_and_logdet()?;
        let hw = (x.shape().get(2).copied().unwrap_or(0) * x.shape().get(3).copied().unwrap_or(0)) as f32;
        Ok((x.inv_conv1x1(&w, false)?, ld.scale(hw)?))
    }

    /// y -> W^-1 y (W^-1 in f64 on the host, once per call). Not differentiable.
    pub fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        y.inv_conv1x1(&self.lu.inverse_weight()?, false)
    }
}

impl Module for InvConv1x1 {
    fn vars(&self) -> Vec<Var> {
        self.lu.vars()
    }
    fn buffers(&self) -> Vec<Var> {
        self.lu.buffers()
    }
}
