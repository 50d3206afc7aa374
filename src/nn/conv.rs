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

/// Weight of `shape` and bias of its `cout` outputs, both U(±1/sqrt(fan_in)): PyTorch's default
/// (Kaiming-uniform with a = sqrt(5)). fan_in = shape[1] * k * k in both layers, as PyTorch computes it
/// (for the transposed layer that is out * k * k).
fn weights(name: &str, shape: [usize; 4], cout: usize, rng: &mut impl rand::Rng, dev: &Device) -> Result<(Var, Var)> {
    let a = 1.0 / (shape[1].saturating_mul(shape[2]).saturating_mul(shape[3]).max(1) as f32).sqrt();
    Ok((
        Var::new(&format!("{name}.w"), Tensor::rand_uniform(&shape, -a, a, rng, dev)?),
        Var::new(&format!("{name}.b"), Tensor::rand_uniform(&[cout], -a, a, rng, dev)?),
    ))
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
        let (w, b) = weights(name, [cout, cin, k, k], cout, rng, dev)?;
        Ok(Conv2d { w, b, stride, padding })
    }

    /// x [N, in, H, W] -> [N, out, OH, OW].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let _layer = crate::autodiff::anomaly::scope_of(&self.w);
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
        let (w, b) = weights(name, [cin, cout, k, k], cout, rng, dev)?;
        Ok(ConvTranspose2d { w, b, stride, padding })
    }

    /// x [N, in, H, W] -> [N, out, (H - 1) s - 2p + k, ...].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let _layer = crate::autodiff::anomaly::scope_of(&self.w);
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
