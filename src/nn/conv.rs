//! Convolution layers over NCHW images: thin owners of the weights of the `conv2d` and
//! `conv_transpose2d` ops (src/ops/), initialised as PyTorch's nn.Conv2d / nn.ConvTranspose2d.
use super::Module;
use crate::autodiff::Var;
use crate::backend::Device;
use crate::error::Result;
use crate::tensor::Tensor;

/// Square-kernel convolution: w [out, in, k, k], b [out].
pub struct Conv2d {
    pub w: Var,
    pub b: Var,
    pub stride: usize,
    pub padding: usize,
}

/// Square-kernel transposed convolution: w [in, out, k, k] (PyTorch's layout), b [out].
pub struct ConvTranspose2d {
    pub w: Var,
    pub b: Var,
    pub stride: usize,
    pub padding: usize,
}

/// PyTorch's default (Kaiming-uniform with a = sqrt(5)) reduces to U(±1/sqrt(fan_in)) for weight and bias;
/// for the transposed layer PyTorch takes fan_in from the weight's second axis (out * k * k).
fn uniform(name: &str, shape: &[usize], fan_in: usize, rng: &mut impl rand::Rng, dev: &Device) -> Result<Var> {
    let a = 1.0 / (fan_in.max(1) as f32).sqrt();
    Ok(Var::new(name, Tensor::rand_uniform(shape, -a, a, rng, dev)?))
}

impl Conv2d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        rng: &mut impl rand::Rng,
        dev: &Device,
    ) -> Result<Conv2d> {
        let fan_in = cin * k * k;
        Ok(Conv2d {
            w: uniform(&format!("{name}.w"), &[cout, cin, k, k], fan_in, rng, dev)?,
            b: uniform(&format!("{name}.b"), &[cout], fan_in, rng, dev)?,
            stride,
            padding,
        })
    }

    /// x [N, in, H, W] -> [N, out, OH, OW].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(&self.w.get(), Some(&self.b.get()), self.stride, self.padding)
    }
}

impl ConvTranspose2d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        rng: &mut impl rand::Rng,
        dev: &Device,
    ) -> Result<ConvTranspose2d> {
        let fan_in = cout * k * k;
        Ok(ConvTranspose2d {
            w: uniform(&format!("{name}.w"), &[cin, cout, k, k], fan_in, rng, dev)?,
            b: uniform(&format!("{name}.b"), &[cout], fan_in, rng, dev)?,
            stride,
            padding,
        })
    }

    /// x [N, in, H, W] -> [N, out, (H - 1) s - 2p + k, ...].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv_transpose2d(&self.w.get(), Some(&self.b.get()), self.stride, self.padding)
    }
}

impl Module for Conv2d {
    fn vars(&self) -> Vec<Var> {
        vec![self.w.clone(), self.b.clone()]
    }
}

impl Module for ConvTranspose2d {
    fn vars(&self) -> Vec<Var> {
        vec![self.w.clone(), self.b.clone()]
    }
}
