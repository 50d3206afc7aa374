//! The conditioner of HIGlow's injectors and couplings: Conv3x3 (padding 1) -> ReLU -> Conv1x1 -> ReLU ->
//! ZeroConv2d, as rosinality's glow-pytorch and HIGlow build it. ZeroConv2d pads its input with ones (not
//! zeros), applies a valid 3x3 convolution and multiplies by exp(3 scale); weights, bias and scale start at
//! zero, so every step starts as (nearly) the identity.
use super::{Conv2d, Module};
use crate::autodiff::Var;
use crate::backend::Device;
use crate::error::Result;
use crate::tensor::Tensor;

pub struct ZeroConv2d {
    pub w: Var,
    pub b: Var,
    /// One per output channel (HIGlow's [1, C, 1, 1]).
    pub scale: Var,
}

impl ZeroConv2d {
    pub fn new(name: &str, cin: usize, cout: usize, dev: &Device) -> Result<ZeroConv2d> {
        Ok(ZeroConv2d {
            w: Var::new(&format!("{name}.w"), Tensor::zeros(&[cout, cin, 3, 3], dev)?),
            b: Var::new(&format!("{name}.b"), Tensor::zeros(&[cout], dev)?),
            scale: Var::new(&format!("{name}.scale"), Tensor::zeros(&[cout], dev)?),
        })
    }

    /// x [N, in, H, W] -> [N, out, H, W].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let _layer = crate::autodiff::anomaly::scope_of(&self.w);
        let y = x.pad2d(1, 1.0)?.conv2d(&self.w.get(), Some(&self.b.get()), 1, 0)?;
        let cout = self.scale.get().numel();
        y.mul(&self.scale.get().scale(3.0)?.exp()?.reshape(&[1, cout, 1, 1])?)
    }
}

impl Module for ZeroConv2d {
    fn vars(&self) -> Vec<Var> {
        vec![self.w.clone(), self.b.clone(), self.scale.clone()]
    }
}

/// Conv3x3 -> ReLU -> Conv1x1 -> ReLU -> ZeroConv2d; the two first convolutions N(0, 0.05) with zero bias.
pub struct GlowNet {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub zero: ZeroConv2d,
}

/// A convolution initialised N(0, 0.05) with zero bias (HIGlow's `weight.data.normal_(0, .05)`).
fn normal_conv(
    name: &str,
    cin: usize,
    cout: usize,
    k: usize,
    rng: &mut impl rand::Rng,
    dev: &Device,
) -> Result<Conv2d> {
    let c = Conv2d::new(name, cin, cout, k, 1, k / 2, rng, dev)?;
    c.w.set(Tensor::randn(&[cout, cin, k, k], rng, dev)?.scale(0.05)?);
    c.b.set(Tensor::zeros(&[cout], dev)?);
    Ok(c)
}

impl GlowNet {
    pub fn new(
        name: &str,
        cin: usize,
        hidden: usize,
        cout: usize,
        rng: &mut impl rand::Rng,
        dev: &Device,
    ) -> Result<GlowNet> {
        Ok(GlowNet {
            conv1: normal_conv(&format!("{name}.0"), cin, hidden, 3, rng, dev)?,
            conv2: normal_conv(&format!("{name}.1"), hidden, hidden, 1, rng, dev)?,
            zero: ZeroConv2d::new(&format!("{name}.2"), hidden, cout, dev)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(x)?.relu()?;
        let h = self.conv2.forward(&h)?.relu()?;
        self.zero.forward(&h)
    }
}

impl Module for GlowNet {
    fn vars(&self) -> Vec<Var> {
        let mut v = self.conv1.vars();
        v.extend(self.conv2.vars());
        v.extend(self.zero.vars());
        v
    }
}

/// The condition c [N, K] as K constant channels of an [N, K, H, W] image (HIGlow's `same_size=False`).
pub fn condition_map(c: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (n, k) = (c.shape()[0], c.shape()[1]);
    c.reshape(&[n, k, 1, 1])?.broadcast_to(&[n, k, h, w])
}
