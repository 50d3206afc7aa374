//! HIGlow's conditional Glow (arXiv 2211.12724; REFERENCE.md sections 3-4): a multi-scale flow over
//! [C, S, S] maps conditioned on K parameters.
//!
//! ```text
//! block b < blocks:  squeeze 2x2 -> [actnorm] -> K steps -> split: half the channels go on, half z_b to a prior
//! final block:       [actnorm] -> K steps -> the rest, z_f, to a prior
//! step:              invertible 1x1 conv (LU) -> conditional actnorm (affine injector) -> conditional coupling
//! log p(x | c) = sum_b log p_b(z_b | c) + log p_f(z_f | c) + sum of every layer's log|det|
//! ```
//! Priors are diagonal Gaussians over each z: conditional (HIGlow's `-prior 1`: mean and log-variance from
//! two MLPs K -> h -> h -> |z| with ReLU, the log-variance clamped to [-3, 5] straight-through) or learned
//! (a free mean and log-variance per element). `GlowConfig::higlow()` is the evaluated model: 6 blocks of
//! K = 20 steps, width 16, conditional priors of width 8, 4,503,312 trainable parameters as in PyTorch.
use crate::autodiff::{no_grad, Var};
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::flows::add_logdet;
use crate::nn::{ActNorm, CondActNorm, CondAffineCoupling, InvConv1x1, Mlp, Module};
use crate::tensor::Tensor;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GlowPrior {
    /// Mean and log-variance from MLPs of the condition with `hidden` units per layer.
    Conditional { hidden: usize },
    /// A learned mean and log-variance per latent element.
    Learned,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlowConfig {
    /// Side of the square maps and their channels.
    pub side: usize,
    pub channels: usize,
    /// Condition values per map.
    pub cond: usize,
    /// Squeeze-and-split blocks before the final block.
    pub blocks: usize,
    /// Steps per block (K).
    pub steps: usize,
    /// Hidden channels of the injector and coupling nets.
    pub hidden: usize,
    pub prior: GlowPrior,
    /// A plain actnorm at the start of every block (HIGlow's `-actnorm`).
    pub actnorm: bool,
    /// The coupling scale's floor m: s = (1 - m) sigmoid(r + 2) + m (HIGlow's `-clamp`, 0.5).
    pub floor: f32,
    pub seed: u64,
}

impl GlowConfig {
    /// The published model (6 blocks, K = 20, width 16, conditional priors of width 8) on 1 x 64 x 64 maps.
    pub fn higlow() -> GlowConfig {
        GlowConfig {
            side: 64,
            channels: 1,
            cond: 2,
            blocks: 6,
            steps: 20,
            hidden: 16,
            prior: GlowPrior::Conditional { hidden: 8 },
            actnorm: false,
            floor: 0.5,
            seed: 0,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let ok = self.side > 0
            && self.channels > 0
            && self.cond > 0
            && self.blocks >= 1
            && self.steps >= 1
            && self.hidden >= 1
            && self.side.is_multiple_of(1 << self.blocks.min(30))
            && (0.0..1.0).contains(&self.floor)
            && !matches!(self.prior, GlowPrior::Conditional { hidden: 0 });
        if ok {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "glow: the side ({}) must be divisible by 2^blocks (blocks = {}), and channels, conditions, steps, \
                 widths must be positive, the coupling floor in [0, 1) (got {})",
                self.side, self.blocks, self.floor
            )))
        }
    }

    /// (channels, side) the steps of block b see (b = blocks: the final block).
    fn block_shape(&self, b: usize) -> (usize, usize) {
        let squeezes = (b + 1).min(self.blocks);
        // Every squeeze quadruples the channels and every split halves them.
        ((self.channels * 4usize.pow(squeezes as u32)) >> b, self.side >> squeezes)
    }

    /// Trainable parameters of the model this config builds (HIGlow counts w_l, w_u in full).
    pub fn parameter_count(&self) -> usize {
        let (k, w) = (self.cond, self.hidden);
        // GlowNet(cin -> w -> w -> cout): 3x3 conv, 1x1 conv, zero 3x3 conv with a scale per output.
        let net = |cin: usize, cout: usize| cin * w * 9 + w + w * w + w + w * cout * 9 + 2 * cout;
        let mut n = 0;
        for b in 0..=self.blocks {
            let (c, s) = self.block_shape(b);
            let step = 2 * c * c + c + net(k, 2 * c) + net(c / 2 + k, c);
            n += self.steps * step + if self.actnorm { 2 * c } else { 0 };
            let z = if b < self.blocks { c / 2 * s * s } else { c * s * s };
            n += match self.prior {
                GlowPrior::Conditional { hidden: h } => 2 * (k * h + h + h * h + h + h * z + z),
                GlowPrior::Learned => 2 * z,
            };
        }
        n
    }

    /// Values per map.
    pub fn dim(&self) -> usize {
        self.channels * self.side * self.side
    }
}

/// A diagonal Gaussian over a latent of `n` values per sample.
enum Prior {
    Conditional { mean: Mlp, log_var: Mlp },
    Learned { mean: Var, log_var: Var },
}

/// HIGlow's clamp of the conditional prior's log-variance.
const LOG_VAR_CLAMP: (f32, f32) = (-3.0, 5.0);

impl Prior {
    fn new(name: &str, cfg: &GlowConfig, n: usize, rng: &mut impl rand::Rng, dev: &Device) -> Result<Prior> {
        Ok(match cfg.prior {
            GlowPrior::Conditional { hidden: h } => {
                let mlp = |part: &str, rng: &mut _| -> Result<Mlp> {
                    let m = Mlp::new(&format!("{name}.{part}"), &[cfg.cond, h, h, n], 0.0, false, rng, dev)?;
                    // HIGlow's _get_MLP zeroes the biases after the first layer.
                    for l in &m.layers[1..] {
                        l.b.set(Tensor::zeros(&[l.b.get().numel()], dev)?);
                    }
                    Ok(m)
                };
                Prior::Conditional { mean: mlp("mean", rng)?, log_var: mlp("log_var", rng)? }
            }
            GlowPrior::Learned => Prior::Learned {
                mean: Var::new(&format!("{name}.mean"), Tensor::zeros(&[n], dev)?),
                log_var: Var::new(&format!("{name}.log_var"), Tensor::zeros(&[n], dev)?),
            },
        })
    }

    /// (mean, log-variance), each [N or 1, n].
    fn params(&self, c: &Tensor) -> Result<(Tensor, Tensor)> {
        match self {
            Prior::Conditional { mean, log_var } => {
                let lv = log_var.forward(c)?;
                // Straight-through clamp: lv + detach(clamp(lv) - lv).
                let dev = lv.device();
                let (lo, hi) = (Tensor::scalar(LOG_VAR_CLAMP.0, dev)?, Tensor::scalar(LOG_VAR_CLAMP.1, dev)?);
                let clamped = no_grad(|| lv.maximum(&lo)?.minimum(&hi)?.sub(&lv))?;
                Ok((mean.forward(c)?, lv.add(&clamped.detach())?))
            }
            Prior::Learned { mean, log_var } => {
                let n = mean.get().numel();
                Ok((mean.get().reshape(&[1, n])?, log_var.get().reshape(&[1, n])?))
            }
        }
    }

    /// log N(z; mean, exp(log_var)) per sample, z [N, ...].
    fn log_prob(&self, z: &Tensor, c: &Tensor) -> Result<Tensor> {
        let nb = z.shape()[0];
        let n = z.numel() / nb.max(1);
        let z = z.reshape(&[nb, n])?;
        let (mean, lv) = self.params(c)?;
        let m = z.sub(&mean)?.square()?.mul(&lv.neg()?.exp()?)?;
        let quad = m.sum(-1)?.scale(-0.5)?;
        let norm = lv.sum(-1)?.scale(-0.5)?.add_scalar(-0.5 * n as f32 * (2.0 * std::f32::consts::PI).ln())?;
        quad.add(&norm)
    }

    /// `nb` draws at temperature `temp`, shaped [nb, shape...].
    fn sample(&self, c: &Tensor, shape: &[usize], temp: f32, rng: &mut impl rand::Rng) -> Result<Tensor> {
        let nb = shape[0];
        let n: usize = shape[1..].iter().product();
        let (mean, lv) = self.params(c)?;
        let eps = Tensor::randn(&[nb, n], rng, c.device())?;
        mean.add(&lv.scale(0.5)?.exp()?.mul(&eps)?.scale(temp)?)?.reshape(shape)
    }

    fn vars(&self) -> Vec<Var> {
        match self {
            Prior::Conditional { mean, log_var } => {
                let mut v = mean.vars();
                v.extend(log_var.vars());
                v
            }
            Prior::Learned { mean, log_var } => vec![mean.clone(), log_var.clone()],
        }
    }
}

struct Step {
    inv: InvConv1x1,
    inj: CondActNorm,
    cpl: CondAffineCoupling,
}

struct Block {
    actnorm: Option<ActNorm>,
    steps: Vec<Step>,
    prior: Prior,
}

pub struct CondGlow {
    pub cfg: GlowConfig,
    blocks: Vec<Block>,
}

impl CondGlow {
    pub fn new(cfg: &GlowConfig, dev: &Device) -> Result<CondGlow> {
        cfg.validate()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
        let mut blocks = Vec::new();
        for b in 0..=cfg.blocks {
            let (c, s) = cfg.block_shape(b);
            let name = format!("glow.{b}");
            let actnorm = if cfg.actnorm { Some(ActNorm::new(&format!("{name}.actnorm"), c, dev)?) } else { None };
            let steps = (0..cfg.steps)
                .map(|k| {
                    let n = format!("{name}.{k}");
                    Ok(Step {
                        inv: InvConv1x1::new(&format!("{n}.inv"), c, &mut rng, dev)?,
                        inj: CondActNorm::new(&format!("{n}.inj"), c, cfg.cond, cfg.hidden, &mut rng, dev)?,
                        cpl: CondAffineCoupling::new(
                            &format!("{n}.cpl"),
                            c,
                            cfg.cond,
                            cfg.hidden,
                            cfg.floor,
                            &mut rng,
                            dev,
                        )?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            // Saturating: a checkpoint's settings may hold any side; the build budget refuses the result.
            let z = (if b < cfg.blocks { c / 2 } else { c }).saturating_mul(s.saturating_mul(s));
            let prior = Prior::new(&format!("{name}.prior"), cfg, z, &mut rng, dev)?;
            blocks.push(Block { actnorm, steps, prior });
        }
        Ok(CondGlow { cfg: cfg.clone(), blocks })
    }

    fn check(&self, x: Option<&Tensor>, c: &Tensor) -> Result<()> {
        let cfg = &self.cfg;
        let want = [cfg.channels, cfg.side, cfg.side];
        let bad_x = x.is_some_and(|x| x.rank() != 4 || x.shape()[1..] != want || x.shape()[0] != c.shape()[0]);
        if bad_x || c.rank() != 2 || c.shape()[1] != cfg.cond {
            return Err(Error::shape(
                "glow",
                format!(
                    "x {:?} and c {:?} for maps [N, {}, {}, {}] with {} conditions",
                    x.map(|x| x.shape().to_vec()),
                    c.shape(),
                    cfg.channels,
                    cfg.side,
                    cfg.side,
                    cfg.cond
                ),
            ));
        }
        Ok(())
    }

    /// The latents of x [N, C, S, S] (model units) given c [N, K]: one z per block (the split-off halves,
    /// then the final block's output) and log|det dz/dx| per map [N].
    pub fn encode(&self, x: &Tensor, c: &Tensor) -> Result<(Vec<Tensor>, Tensor)> {
        self.check(Some(x), c)?;
        let mut x = x.clone();
        let mut per_sample: Option<Tensor> = None;
        let mut shared: Option<Tensor> = None;
        let mut zs = Vec::with_capacity(self.blocks.len());
        for (b, block) in self.blocks.iter().enumerate() {
            if b < self.cfg.blocks {
                x = x.squeeze2x2()?;
            }
            if let Some(an) = &block.actnorm {
                let (y, ld) = an.forward(&x)?;
                x = y;
                add_logdet(&mut shared, ld)?;
            }
            for st in &block.steps {
                let (y, ld) = st.inv.forward(&x)?;
                add_logdet(&mut shared, ld)?;
                let (y, ld) = st.inj.forward(&y, c)?;
                add_logdet(&mut per_sample, ld)?;
                let (y, ld) = st.cpl.forward(&y, c)?;
                add_logdet(&mut per_sample, ld)?;
                x = y;
            }
            if b < self.cfg.blocks {
                let half = x.shape()[1] / 2;
                zs.push(x.narrow(1, half, half)?);
                x = x.narrow(1, 0, half)?;
            } else {
                zs.push(x.clone());
            }
        }
        let ld = per_sample.ok_or_else(|| Error::Usage("glow: no layers".into()))?;
        Ok((
            zs,
            match shared {
                Some(s) => ld.add(&s)?,
                None => ld,
            },
        ))
    }

    /// sum over blocks of log p_b(z_b | c), per map [N].
    pub fn prior_log_prob(&self, zs: &[Tensor], c: &Tensor) -> Result<Tensor> {
        let mut lp: Option<Tensor> = None;
        for (block, z) in self.blocks.iter().zip(zs) {
            add_logdet(&mut lp, block.prior.log_prob(z, c)?)?;
        }
        lp.ok_or_else(|| Error::Usage("glow: no latents".into()))
    }

    /// log p(x | c) per map [N], x [N, C, S, S] in model units, c [N, K].
    pub fn log_prob(&self, x: &Tensor, c: &Tensor) -> Result<Tensor> {
        let (zs, ld) = self.encode(x, c)?;
        self.prior_log_prob(&zs, c)?.add(&ld)
    }

    /// The inverse of [`CondGlow::encode`]: maps [N, C, S, S] from their latents. Not differentiable.
    pub fn decode(&self, zs: &[Tensor], c: &Tensor) -> Result<Tensor> {
        self.check(None, c)?;
        if zs.len() != self.blocks.len() {
            return Err(Error::shape("glow", format!("{} latents for {} blocks", zs.len(), self.blocks.len())));
        }
        no_grad(|| {
            let mut x = zs[self.cfg.blocks].clone();
            for (b, block) in self.blocks.iter().enumerate().rev() {
                if b < self.cfg.blocks {
                    x = Tensor::concat(&[&x, &zs[b]], 1)?;
                }
                for st in block.steps.iter().rev() {
                    x = st.cpl.inverse(&x, c)?;
                    x = st.inj.inverse(&x, c)?;
                    x = st.inv.inverse(&x)?;
                }
                if let Some(an) = &block.actnorm {
                    x = an.inverse(&x)?;
                }
                if b < self.cfg.blocks {
                    x = x.unsqueeze2x2()?;
                }
            }
            Ok(x)
        })
    }

    /// Shapes of the latents of `n` maps, block by block.
    pub fn latent_shapes(&self, n: usize) -> Vec<[usize; 4]> {
        (0..=self.cfg.blocks)
            .map(|b| {
                let (c, s) = self.cfg.block_shape(b);
                [n, if b < self.cfg.blocks { c / 2 } else { c }, s, s]
            })
            .collect()
    }

    /// Maps drawn from p(x | c) at temperature `temp` (1: the model's density), c [N, K] -> [N, C, S, S].
    pub fn sample(&self, c: &Tensor, temp: f32, rng: &mut impl rand::Rng) -> Result<Tensor> {
        self.check(None, c)?;
        let zs = no_grad(|| {
            self.blocks
                .iter()
                .zip(self.latent_shapes(c.shape()[0]))
                .map(|(block, shape)| block.prior.sample(c, &shape, temp, rng))
                .collect::<Result<Vec<_>>>()
        })?;
        self.decode(&zs, c)
    }
}

impl Module for CondGlow {
    fn vars(&self) -> Vec<Var> {
        let mut v = Vec::new();
        for b in &self.blocks {
            if let Some(an) = &b.actnorm {
                v.extend(an.vars());
            }
            for st in &b.steps {
                v.extend(st.inv.vars());
                v.extend(st.inj.vars());
                v.extend(st.cpl.vars());
            }
            v.extend(b.prior.vars());
        }
        v
    }
    fn buffers(&self) -> Vec<Var> {
        let mut v = Vec::new();
        for b in &self.blocks {
            if let Some(an) = &b.actnorm {
                v.extend(an.buffers());
            }
            for st in &b.steps {
                v.extend(st.inv.buffers());
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(m: &CondGlow) -> usize {
        m.vars().iter().map(|v| v.get().numel()).sum()
    }

    /// The published configurations have PyTorch's trainable-parameter counts (REFERENCE.md section 3).
    #[test]
    fn parameter_counts_match_higlow() {
        let cfg = GlowConfig::higlow();
        assert_eq!(cfg.parameter_count(), 4_503_312);
        let learned = GlowConfig { steps: 10, prior: GlowPrior::Learned, ..GlowConfig::higlow() };
        assert_eq!(learned.parameter_count(), 2_222_312);
        // The built model agrees with the formula (small sizes so the test stays fast).
        for cfg in [
            GlowConfig { steps: 2, ..GlowConfig::higlow() },
            GlowConfig { steps: 1, side: 16, blocks: 2, actnorm: true, ..GlowConfig::higlow() },
            GlowConfig { steps: 2, prior: GlowPrior::Learned, side: 8, blocks: 3, ..GlowConfig::higlow() },
        ] {
            let m = CondGlow::new(&cfg, &Device::Cpu).unwrap();
            assert_eq!(count(&m), cfg.parameter_count(), "{cfg:?}");
        }
    }

    #[test]
    fn bad_configs_and_inputs_are_errors() {
        assert!(CondGlow::new(&GlowConfig { side: 48, ..GlowConfig::higlow() }, &Device::Cpu).is_err());
        assert!(CondGlow::new(&GlowConfig { floor: 1.0, ..GlowConfig::higlow() }, &Device::Cpu).is_err());
        let cfg = GlowConfig { side: 8, blocks: 2, steps: 1, ..GlowConfig::higlow() };
        let m = CondGlow::new(&cfg, &Device::Cpu).unwrap();
        let x = Tensor::zeros(&[2, 1, 8, 8], &Device::Cpu).unwrap();
        assert!(m.log_prob(&x, &Tensor::zeros(&[2, 3], &Device::Cpu).unwrap()).is_err());
        assert!(m.log_prob(&x, &Tensor::zeros(&[3, 2], &Device::Cpu).unwrap()).is_err());
        assert!(m
            .log_prob(
                &Tensor::zeros(&[2, 1, 4, 4], &Device::Cpu).unwrap(),
                &Tensor::zeros(&[2, 2], &Device::Cpu).unwrap()
            )
            .is_err());
    }
}
