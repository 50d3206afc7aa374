//! GalacticForge's galaxy-image autoencoder (REFERENCE.md section 2, final_AE.py): an encoder of stride-2
//! 4x4 convolutions with ReLU, flattened into a linear map to the latents, and a mirrored decoder of
//! transposed convolutions with ReLU between them and a sigmoid on the image. The published model is
//! `AeConfig::galacticforge()` (3x448x448 images, channels 3-64-...-2048, 16 latents); depth, width and
//! image size are configurable so a small one trains in minutes on a CPU.
use crate::autodiff::Var;
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::nn::{Conv2d, ConvTranspose2d, Linear, Module};
use crate::tensor::Tensor;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AeConfig {
    /// Side of the square input images.
    pub image: usize,
    /// Channels from the image's 3 to the deepest feature map: one stride-2 conv per step.
    pub channels: Vec<usize>,
    pub latents: usize,
    pub seed: u64,
}

impl AeConfig {
    /// The published model: 448 -> 7 pixels through 3-64-128-256-512-1024-2048, 16 latents (~100M weights).
    pub fn galacticforge() -> AeConfig {
        AeConfig { image: 448, channels: vec![3, 64, 128, 256, 512, 1024, 2048], latents: 16, seed: 0 }
    }

    /// Weights and biases of the model this config builds.
    pub fn parameter_count(&self) -> usize {
        let ch = &self.channels;
        let flat = ch[ch.len() - 1] * self.bottom() * self.bottom();
        // Encoder conv c0 -> c1 (bias c1) and its mirror c1 -> c0 (bias c0), 4x4 kernels.
        let convs: usize = ch.windows(2).map(|c| 2 * c[0] * c[1] * 16 + c[1] + c[0]).sum();
        convs + 2 * flat * self.latents + flat + self.latents
    }

    /// Side of the deepest feature map.
    pub fn bottom(&self) -> usize {
        self.image >> (self.channels.len() - 1)
    }

    pub fn validate(&self) -> Result<()> {
        let steps = self.channels.len().saturating_sub(1);
        let ok = steps >= 1
            && self.channels[0] == 3
            && self.channels.iter().all(|&c| c > 0)
            && self.latents > 0
            && self.image.is_multiple_of(1 << steps)
            && self.image >> steps >= 1;
        if ok {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "autoencoder: channels must start at 3 and the image side ({}) must be divisible by 2^{} \
                 (one halving per conv), got channels {:?}, {} latents",
                self.image, steps, self.channels, self.latents
            )))
        }
    }
}

pub struct Autoencoder {
    pub cfg: AeConfig,
    pub enc: Vec<Conv2d>,
    pub to_latent: Linear,
    pub from_latent: Linear,
    pub dec: Vec<ConvTranspose2d>,
}

impl Autoencoder {
    pub fn new(cfg: &AeConfig, dev: &Device) -> Result<Autoencoder> {
        cfg.validate()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
        let ch = &cfg.channels;
        // Saturating: a checkpoint's settings can ask for any size, and the build budget refuses this one.
        let flat = ch[ch.len() - 1].saturating_mul(cfg.bottom()).saturating_mul(cfg.bottom());
        let enc = ch
            .windows(2)
            .enumerate()
            .map(|(i, c)| Conv2d::new(&format!("ae.enc.{i}"), c[0], c[1], 4, 2, 1, &mut rng, dev))
            .collect::<Result<_>>()?;
        let to_latent = Linear::new("ae.to_latent", flat, cfg.latents, &mut rng, dev)?;
        let from_latent = Linear::new("ae.from_latent", cfg.latents, flat, &mut rng, dev)?;
        let rev: Vec<usize> = ch.iter().rev().copied().collect();
        let dec = rev
            .windows(2)
            .enumerate()
            .map(|(i, c)| ConvTranspose2d::new(&format!("ae.dec.{i}"), c[0], c[1], 4, 2, 1, &mut rng, dev))
            .collect::<Result<_>>()?;
        Ok(Autoencoder { cfg: cfg.clone(), enc, to_latent, from_latent, dec })
    }

    fn check_images(&self, x: &Tensor) -> Result<()> {
        let s = self.cfg.image;
        if x.rank() != 4 || x.shape()[1..] != [3, s, s] {
            return Err(Error::shape("autoencoder", format!("images {:?}, want [N, 3, {s}, {s}]", x.shape())));
        }
        Ok(())
    }

    /// Images [N, 3, S, S] in [0, 1] -> latents [N, L].
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        self.check_images(x)?;
        let mut h = x.clone();
        for c in &self.enc {
            h = c.forward(&h)?.relu()?;
        }
        let n = h.shape()[0];
        self.to_latent.forward(&h.reshape(&[n, h.numel() / n.max(1)])?)
    }

    /// Latents [N, L] -> images [N, 3, S, S] in (0, 1).
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        if z.rank() != 2 || z.shape()[1] != self.cfg.latents {
            return Err(Error::shape(
                "autoencoder",
                format!("latents {:?}, want [N, {}]", z.shape(), self.cfg.latents),
            ));
        }
        let (n, b) = (z.shape()[0], self.cfg.bottom());
        let top = self.cfg.channels[self.cfg.channels.len() - 1];
        let mut h = self.from_latent.forward(z)?.reshape(&[n, top, b, b])?;
        for (i, c) in self.dec.iter().enumerate() {
            h = c.forward(&h)?;
            h = if i + 1 < self.dec.len() { h.relu()? } else { h.sigmoid()? };
        }
        Ok(h)
    }

    /// Mean squared error of the reconstruction, per pixel and channel (PyTorch's MSELoss).
    pub fn loss(&self, x: &Tensor) -> Result<Tensor> {
        self.decode(&self.encode(x)?)?.sub(x)?.square()?.mean_all()
    }

    /// Weights, in the order they are saved.
    pub fn all_vars(&self) -> Vec<Var> {
        self.vars()
    }
}

impl Module for Autoencoder {
    fn vars(&self) -> Vec<Var> {
        let mut v: Vec<Var> = self.enc.iter().flat_map(|c| c.vars()).collect();
        v.extend(self.to_latent.vars());
        v.extend(self.from_latent.vars());
        v.extend(self.dec.iter().flat_map(|c| c.vars()));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_the_config() {
        let cfg = AeConfig { image: 32, channels: vec![3, 4, 6, 8], latents: 5, seed: 3 };
        let ae = Autoencoder::new(&cfg, &Device::Cpu).unwrap();
        let x =
            Tensor::rand_uniform(&[2, 3, 32, 32], 0.0, 1.0, &mut rand::rngs::StdRng::seed_from_u64(1), &Device::Cpu)
                .unwrap();
        let z = ae.encode(&x).unwrap();
        assert_eq!(z.shape(), &[2, 5]);
        let y = ae.decode(&z).unwrap();
        assert_eq!(y.shape(), &[2, 3, 32, 32]);
        assert!(y.to_vec().unwrap().iter().all(|&v| v > 0.0 && v < 1.0));
        assert!(ae.loss(&x).unwrap().item().unwrap() > 0.0);
    }

    #[test]
    fn bad_configs_and_inputs_are_errors() {
        for cfg in [
            AeConfig { image: 30, channels: vec![3, 4, 8], latents: 4, seed: 0 },
            AeConfig { image: 32, channels: vec![1, 4], latents: 4, seed: 0 },
            AeConfig { image: 32, channels: vec![3], latents: 4, seed: 0 },
            AeConfig { image: 32, channels: vec![3, 4], latents: 0, seed: 0 },
        ] {
            assert!(Autoencoder::new(&cfg, &Device::Cpu).is_err(), "{cfg:?}");
        }
        let ae =
            Autoencoder::new(&AeConfig { image: 16, channels: vec![3, 4], latents: 2, seed: 0 }, &Device::Cpu).unwrap();
        assert!(ae.encode(&Tensor::zeros(&[1, 3, 15, 16], &Device::Cpu).unwrap()).is_err());
        assert!(ae.decode(&Tensor::zeros(&[1, 3], &Device::Cpu).unwrap()).is_err());
    }

    #[test]
    fn the_published_model_has_pytorchs_parameter_count() {
        // 92,714,899: sum of numel over final_AE.py's layers, counted with PyTorch 2.15.
        let cfg = AeConfig::galacticforge();
        assert_eq!(cfg.bottom(), 7);
        assert_eq!(cfg.parameter_count(), 92_714_899);
    }
}
