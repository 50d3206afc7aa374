//! Linear layers and multilayer perceptrons.
use super::Module;
use crate::autodiff::Var;
use crate::backend::Device;
use crate::error::Result;
use crate::ops::linear::Act;
use crate::tensor::Tensor;

/// y = x W + b with W stored [in, out] (so the forward is one plain matmul). Initialised as PyTorch's
/// nn.Linear: W and b uniform in ±1/sqrt(in).
pub struct Linear {
    pub w: Var,
    pub b: Var,
}

impl Linear {
    pub fn new(name: &str, fan_in: usize, fan_out: usize, rng: &mut impl rand::Rng, dev: &Device) -> Result<Linear> {
        let a = 1.0 / (fan_in.max(1) as f32).sqrt();
        Ok(Linear {
            w: Var::new(&format!("{name}.w"), Tensor::rand_uniform(&[fan_in, fan_out], -a, a, rng, dev)?),
            b: Var::new(&format!("{name}.b"), Tensor::rand_uniform(&[fan_out], -a, a, rng, dev)?),
        })
    }

    /// x: [batch, in] -> [batch, out].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, Act::Identity)
    }

    /// act(x W + b) as one fused op (ops::linear).
    pub fn forward_act(&self, x: &Tensor, act: Act) -> Result<Tensor> {
        let _layer = crate::autodiff::anomaly::scope_of(&self.w);
        x.linear(&self.w.get(), &self.b.get(), act)
    }
}

impl Module for Linear {
    fn vars(&self) -> Vec<Var> {
        vec![self.w.clone(), self.b.clone()]
    }
}

/// Linear layers with LeakyReLU between them, and optionally after the last (GalacticFlow's nets have
/// one after every layer).
pub struct Mlp {
    pub layers: Vec<Linear>,
    pub slope: f32,
    pub act_last: bool,
}

impl Mlp {
    /// `sizes` = [in, hidden..., out].
    pub fn new(
        name: &str,
        sizes: &[usize],
        slope: f32,
        act_last: bool,
        rng: &mut impl rand::Rng,
        dev: &Device,
    ) -> Result<Mlp> {
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| Linear::new(&format!("{name}.{i}"), w[0], w[1], rng, dev))
            .collect::<Result<_>>()?;
        Ok(Mlp { layers, slope, act_last })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            let act =
                if i + 1 < self.layers.len() || self.act_last { Act::LeakyRelu(self.slope) } else { Act::Identity };
            h = l.forward_act(&h, act)?;
        }
        Ok(h)
    }
}

impl Module for Mlp {
    fn vars(&self) -> Vec<Var> {
        self.layers.iter().flat_map(|l| l.vars()).collect()
    }
}
