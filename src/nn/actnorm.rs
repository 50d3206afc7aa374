//! Glow's actnorm and HIGlow's conditional actnorm (SRFlow's affine injector), both per-element affine
//! maps with their log-determinants.
//! - [`ActNorm`]: y = s (x + loc) per channel, initialised from the first batch it sees so that batch comes
//!   out with zero mean and unit variance per channel (loc = -mean, s = 1 / (std + 1e-6)); log|det| =
//!   H W sum log|s|. Optional in HIGlow (`-actnorm`).
//! - [`CondActNorm`]: (t, r) = GlowNet(condition broadcast to a constant map), y = x exp(clamp(r)) + t,
//!   r clamped to [log 1e-3, 5] straight-through; log|det| = the per-sample sum of the clamped r
//!   (`ops::image_affine`, Injector). The net sees only the condition, but its zero/one paddings make the
//!   result depend on the distance to the border, so the scale and shift are per pixel, as in HIGlow
//!   (computed on at most 5 x 5 pixels: see `CondActNorm::theta`).
use super::glow_net::{condition_map, GlowNet};
use super::Module;
use crate::autodiff::{no_grad, Var};
use crate::backend::Device;
use crate::error::Result;
use crate::ops::gather::Indices;
use crate::ops::image_affine::AffineKind;
use crate::tensor::Tensor;

pub struct ActNorm {
    pub loc: Var,
    pub log_scale: Var,
    /// Buffer: 1 once initialised from data (saved, so a resumed model is not re-initialised).
    pub initialized: Var,
}

impl ActNorm {
    pub fn new(name: &str, c: usize, dev: &Device) -> Result<ActNorm> {
        Ok(ActNorm {
            loc: Var::new(&format!("{name}.loc"), Tensor::zeros(&[c], dev)?),
            log_scale: Var::new(&format!("{name}.log_scale"), Tensor::zeros(&[c], dev)?),
            initialized: Var::new(&format!("{name}.initialized"), Tensor::zeros(&[1], dev)?),
        })
    }

    /// Data-dependent initialisation from x [N, C, H, W] (a no-op once initialised).
    pub fn init_from(&self, x: &Tensor) -> Result<()> {
        if self.initialized.get().item()? != 0.0 {
            return Ok(());
        }
        let s = x.shape();
        let (n, c, hw) = (s[0], s[1], s[2] * s[3]);
        let v = x.to_vec()?;
        let (mut loc, mut ls) = (vec![0.0f32; c], vec![0.0f32; c]);
        for ch in 0..c {
            let vals = (0..n).flat_map(|b| v[(b * c + ch) * hw..(b * c + ch + 1) * hw].iter().map(|&x| f64::from(x)));
            let m = (n * hw) as f64;
            let (sum, sq) = vals.fold((0.0, 0.0), |(a, b), x| (a + x, b + x * x));
            let mean = sum / m;
            // torch.std: the unbiased estimate.
            let std = ((sq - m * mean * mean) / (m - 1.0).max(1.0)).max(0.0).sqrt();
            loc[ch] = -mean as f32;
            ls[ch] = -(std + 1e-6).ln() as f32;
        }
        let dev = x.device();
        self.loc.set(Tensor::from_vec(loc, &[c], dev)?);
        self.log_scale.set(Tensor::from_vec(ls, &[c], dev)?);
        self.initialized.set(Tensor::ones(&[1], dev)?);
        Ok(())
    }

    /// x -> (exp(log_scale) (x + loc), H W sum log_scale as a scalar tensor).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let _layer = crate::autodiff::anomaly::scope_of(&self.loc);
        no_grad(|| self.init_from(x))?;
        let (c, hw) = (x.shape()[1], (x.shape()[2] * x.shape()[3]) as f32);
        let ls = self.log_scale.get();
        let y = x.add(&self.loc.get().reshape(&[1, c, 1, 1])?)?.mul(&ls.exp()?.reshape(&[1, c, 1, 1])?)?;
        Ok((y, ls.sum_all()?.scale(hw)?))
    }

    pub fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        let c = y.shape()[1];
        y.mul(&self.log_scale.get().neg()?.exp()?.reshape(&[1, c, 1, 1])?)?.sub(&self.loc.get().reshape(&[1, c, 1, 1])?)
    }
}

impl Module for ActNorm {
    fn vars(&self) -> Vec<Var> {
        vec![self.loc.clone(), self.log_scale.clone()]
    }
    fn buffers(&self) -> Vec<Var> {
        vec![self.initialized.clone()]
    }
}

/// HIGlow's clamp of the injector's log-scale: [log 1e-3, 5].
pub const INJECTOR_CLAMP: (f32, f32) = (-6.907_755, 5.0);

pub struct CondActNorm {
    pub net: GlowNet,
}

impl CondActNorm {
    pub fn new(
        name: &str,
        c: usize,
        cond: usize,
        hidden: usize,
        rng: &mut impl rand::Rng,
        dev: &Device,
    ) -> Result<CondActNorm> {
        Ok(CondActNorm { net: GlowNet::new(&format!("{name}.net"), cond, hidden, 2 * c, rng, dev)? })
    }

    fn kind() -> AffineKind {
        AffineKind::Injector { lo: INJECTOR_CLAMP.0, hi: INJECTOR_CLAMP.1 }
    }

    /// The net's output over an H x W map of the condition. Its input is constant, and with its 3x3 zero
    /// padding, 1x1 conv and 3x3 one-padding the output at a pixel depends only on whether the pixel is in
    /// the first, second, last or second-last row (column) or in between, so the net runs on at most 5 x 5
    /// pixels and the middle row and column are repeated: exactly HIGlow's result at 25 / (H W) of the cost.
    fn theta(&self, x: &Tensor, c: &Tensor) -> Result<Tensor> {
        let (h, w) = (x.shape()[2], x.shape()[3]);
        let small = self.net.forward(&condition_map(c, h.min(5), w.min(5))?)?;
        let expand = |t: Tensor, axis: isize, n: usize| -> Result<Tensor> {
            if n <= 5 {
                return Ok(t);
            }
            let idx: Vec<u32> = (0..n)
                .map(|i| {
                    if i < 2 {
                        i as u32
                    } else if i + 2 >= n {
                        (i + 5 - n) as u32
                    } else {
                        2
                    }
                })
                .collect();
            t.gather(axis, &Indices::new(&idx, 5, t.device())?)
        };
        expand(expand(small, 2, h)?, 3, w)
    }

    /// x [N, C, H, W], c [N, K] -> (y, log|det| [N]).
    pub fn forward(&self, x: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
        let (y, ls) = x.image_affine(&self.theta(x, c)?, Self::kind(), false)?;
        Ok((y, ls.logdet_rows()?))
    }

    pub fn inverse(&self, y: &Tensor, c: &Tensor) -> Result<Tensor> {
        Ok(y.image_affine(&self.theta(y, c)?, Self::kind(), true)?.0)
    }
}

impl Module for CondActNorm {
    fn vars(&self) -> Vec<Var> {
        self.net.vars()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Module;
    use rand::SeedableRng;

    /// The 5 x 5 shortcut gives exactly the net's output on the full condition map, borders included.
    #[test]
    fn injector_shortcut_is_exact() {
        let dev = Device::Cpu;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let inj = CondActNorm::new("inj", 3, 2, 4, &mut rng, &dev).unwrap();
        for v in inj.vars() {
            let t = v.get();
            v.set(t.add(&Tensor::randn(t.shape(), &mut rng, &dev).unwrap().scale(0.3).unwrap()).unwrap());
        }
        let c = Tensor::from_slice(&[0.4, -0.7, -0.2, 0.9], &[2, 2], &dev).unwrap();
        for (h, w) in [(8, 11), (5, 6), (3, 9), (16, 16)] {
            let x = Tensor::zeros(&[2, 3, h, w], &dev).unwrap();
            let fast = inj.theta(&x, &c).unwrap().to_vec().unwrap();
            let full = inj.net.forward(&condition_map(&c, h, w).unwrap()).unwrap().to_vec().unwrap();
            assert_eq!(fast.len(), full.len());
            for (a, b) in fast.iter().zip(&full) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{h}x{w}: {a} vs {b}");
            }
        }
    }
}
