//! HIGlow's training and sampling: maps in model units (log10, then scaled to [-1, 1]; see
//! data::hi_maps::MapScaling), conditions scaled to [-1, 1], the loss -mean log p / (C H W) in nats per
//! dimension, Adam 3e-4, batch 64, gradient-norm clip 2, ReduceLROnPlateau on the epoch's training loss
//! (patience 10, factor 0.8, min 1e-5), random cyclic shifts and flips. A checkpoint after every epoch,
//! exact resume; a non-finite loss stops training before anything is written, so the last checkpoint stays
//! good. The scalings travel in the checkpoint, so a model samples and scores maps in the data's own units.
use super::epoch::{self, Epoch, EpochEnd};
use super::interrupt::{self, EpochPosition};
use crate::autodiff::no_grad;
use crate::backend::Device;
use crate::checkpoint;
use crate::data::hi_maps::{augment, CondScaling, HiMaps, MapScaling};
use crate::error::{Error, Result};
use crate::models::{CondGlow, GlowConfig};
use crate::nn::Module;
use crate::optim::{Adam, AdamConfig, AdamKind, CosineLr, ReduceOnPlateau};
use crate::tensor::Tensor;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Maps and conditions in model units: maps [n, C S S] (v in [-1, 1]), conditions [n, K] in [-1, 1].
#[derive(Clone, Debug, Default)]
pub struct HiSet {
    pub maps: Vec<f32>,
    pub cond: Vec<f32>,
    pub dim: usize,
    pub cond_dim: usize,
}

impl HiSet {
    pub fn len(&self) -> usize {
        self.maps.len() / self.dim.max(1)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn map(&self, i: usize) -> &[f32] {
        &self.maps[i * self.dim..(i + 1) * self.dim]
    }
    pub fn cond(&self, i: usize) -> &[f32] {
        &self.cond[i * self.cond_dim..(i + 1) * self.cond_dim]
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlowTrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    /// Gradient-norm clipping, if set.
    pub clip: Option<f32>,
    /// How the learning rate moves: HIGlow's plateau rule, or a cosine down to `min_lr` over the run.
    #[serde(default)]
    pub schedule: LrSchedule,
    /// ReduceLROnPlateau on the training loss (schedule `plateau`).
    pub patience: u32,
    pub factor: f32,
    pub min_lr: f32,
    /// Random cyclic shifts and x/y flips of every training map...
    pub augment: bool,
    /// ...and transposes, so that all 8 symmetries of the square are drawn (HIGlow: flips only).
    #[serde(default)]
    pub transpose: bool,
    /// Weight of the contrastive term (0, HIGlow: the likelihood alone). Each map is also scored at a
    /// condition moved by `contrast_width`, and `contrast * softplus(log q(v | c') - log q(v | c))` (nats per
    /// map, like the NLL it is added to) asks the flow which of the two conditions made the map. Under a
    /// uniform prior and a move that is symmetric in (c, c') its optimum is the true likelihood ratio, so it
    /// changes what a finite model spends itself on (the density's slope in the condition, which parameter
    /// inference reads) and not what the likelihood converges to. Costs a second pass over every batch.
    #[serde(default)]
    pub contrast: f32,
    /// Standard deviation of that move in normalised condition units, reflected back into [-1, 1] (a
    /// reflected Gaussian is symmetric in c and c', which the optimum above needs).
    #[serde(default = "default_contrast_width")]
    pub contrast_width: f32,
    pub seed: u64,
}

fn default_contrast_width() -> f32 {
    0.1
}

/// `c + width * N(0, 1)` per component, reflected back into [-1, 1].
fn moved_condition(c: &[f32], width: f32, rng: &mut impl rand::Rng) -> Vec<f32> {
    use rand::RngExt;
    c.iter()
        .map(|&v| {
            let z: f32 = rng.sample(rand_distr::StandardNormal);
            reflect_unit(v + width * z)
        })
        .collect()
}

/// Folds `x` into [-1, 1] by reflection at the ends (period 4).
fn reflect_unit(x: f32) -> f32 {
    let t = (x + 1.0).rem_euclid(4.0);
    if t <= 2.0 {
        t - 1.0
    } else {
        3.0 - t
    }
}

impl Default for GlowTrainConfig {
    /// HIGlow's (train_conditional.py): Adam 3e-4, batch 64, clip 2, plateau 10 / 0.8 / 1e-5, augmented.
    fn default() -> Self {
        GlowTrainConfig {
            epochs: 600,
            batch: 64,
            lr: 3e-4,
            clip: Some(2.0),
            schedule: LrSchedule::Plateau,
            patience: 10,
            factor: 0.8,
            min_lr: 1e-5,
            augment: true,
            transpose: false,
            contrast: 0.0,
            contrast_width: default_contrast_width(),
            seed: 0,
        }
    }
}

/// Learning-rate schedules of Glow training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// ReduceLROnPlateau (patience, factor, min_lr) on the epoch's training loss, as HIGlow.
    #[default]
    Plateau,
    /// Cosine annealing per batch from `lr` to `min_lr` at the last epoch: a short run ends on small steps,
    /// which its last epochs' noise in how the density moves with the parameters needs.
    Cosine,
}

impl std::str::FromStr for LrSchedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "plateau" => Ok(LrSchedule::Plateau),
            "cosine" => Ok(LrSchedule::Cosine),
            _ => Err(Error::Usage(format!("unknown learning-rate schedule '{s}' (plateau or cosine)"))),
        }
    }
}

impl GlowTrainConfig {
    /// The learning rate after `step` batches of `steps_per_epoch`, for the cosine schedule.
    fn cosine(&self, steps_per_epoch: usize) -> CosineLr {
        CosineLr { lr0: self.lr, min_lr: self.min_lr, total: (self.epochs * steps_per_epoch) as u64 }
    }

    fn validate(&self) -> Result<()> {
        let ok = self.batch > 0
            && self.lr.is_finite()
            && self.lr > 0.0
            && self.clip.is_none_or(|c| c.is_finite() && c > 0.0)
            && self.factor > 0.0
            && self.factor <= 1.0
            && self.contrast.is_finite()
            && self.contrast >= 0.0
            && self.contrast_width.is_finite()
            && self.contrast_width > 0.0;
        if ok {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "batch must be >= 1, lr > 0, clip > 0, factor in (0, 1], contrast >= 0 and contrast width > 0; \
                 got batch {}, lr {}, clip {:?}, factor {}, contrast {}, contrast width {}",
                self.batch, self.lr, self.clip, self.factor, self.contrast, self.contrast_width
            )))
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GlowEpochLog {
    pub epoch: usize,
    pub steps: u64,
    /// Mean training loss per dimension in nats (model units): the NLL, plus the contrastive term when
    /// `contrast` is on.
    pub train_nll: f64,
    pub val_nll: Option<f64>,
    pub lr: f32,
    pub maps_per_s: f64,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GlowState {
    pub epoch: usize,
    pub step: u64,
    pub plateau: ReduceOnPlateau,
    pub history: Vec<GlowEpochLog>,
    /// Inside the current epoch (non-zero only in a checkpoint written on an interruption).
    #[serde(default)]
    pub position: EpochPosition,
}

/// What a Glow checkpoint carries besides the weights: the model, how data maps to model units, and the
/// training state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GlowMeta {
    pub glow: GlowConfig,
    pub scaling: MapScaling,
    pub cond_scaling: CondScaling,
    /// Free-form provenance (data source, ids of the held-out parameter sets...).
    #[serde(default)]
    pub data: serde_json::Value,
}

/// The maps `idx` of `maps` in model units with their scaled conditions.
pub fn hi_set(maps: &HiMaps, idx: &[usize], scaling: &MapScaling, cs: &CondScaling) -> HiSet {
    let dim = maps.side * maps.side;
    let mut set =
        HiSet { maps: Vec::with_capacity(idx.len() * dim), cond: Vec::with_capacity(2 * idx.len()), dim, cond_dim: 2 };
    for &i in idx {
        set.maps.extend(scaling.forward(maps.map(i)));
        let p = maps.params[i];
        set.cond.extend(cs.forward([f64::from(p[0]), f64::from(p[1])]).map(|v| v as f32));
    }
    set
}

/// Runs `f` on the set in batches of `batch` maps, without a tape.
pub fn for_batches(
    set: &HiSet,
    cfg: &GlowConfig,
    batch: usize,
    dev: &Device,
    mut f: impl FnMut(Tensor, Tensor) -> Result<()>,
) -> Result<()> {
    let (c, s) = (cfg.channels, cfg.side);
    no_grad(|| {
        for start in (0..set.len()).step_by(batch.max(1)) {
            let end = (start + batch.max(1)).min(set.len());
            let x = Tensor::from_slice(&set.maps[start * set.dim..end * set.dim], &[end - start, c, s, s], dev)?;
            let y = Tensor::from_slice(
                &set.cond[start * set.cond_dim..end * set.cond_dim],
                &[end - start, set.cond_dim],
                dev,
            )?;
            f(x, y)?;
        }
        Ok(())
    })
}

/// log p(v | c) of every map of the set in model units, in set order.
pub fn log_probs(model: &CondGlow, set: &HiSet, dev: &Device) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(set.len());
    for_batches(set, &model.cfg, 64, dev, |x, c| {
        out.extend(model.log_prob(&x, &c)?.to_vec()?.into_iter().map(f64::from));
        Ok(())
    })?;
    Ok(out)
}

/// Mean negative log-likelihood per dimension (nats, model units).
pub fn mean_nll(model: &CondGlow, set: &HiSet, dev: &Device) -> Result<f64> {
    let lp = log_probs(model, set, dev)?;
    Ok(-lp.iter().sum::<f64>() / (lp.len().max(1) * set.dim) as f64)
}

/// A batch's training loss per dimension: -mean log q(v | c) over the maps `xb` [b, C S S] and their
/// conditions `cb` [b, K] (model units), plus `contrast * mean softplus(log q(v | c') - log q(v | c))` when
/// `moved` holds the moved conditions c' (`GlowTrainConfig::contrast`), scored in the same pass.
pub(crate) fn batch_loss(
    model: &CondGlow,
    mut xb: Vec<f32>,
    mut cb: Vec<f32>,
    moved: Option<Vec<f32>>,
    contrast: f32,
    dev: &Device,
) -> Result<Tensor> {
    let cfg = &model.cfg;
    let (dim, k) = (cfg.dim(), cfg.cond);
    let b = xb.len() / dim.max(1);
    let scale = 1.0 / dim as f32;
    let Some(moved) = moved else {
        let x = Tensor::from_vec(xb, &[b, cfg.channels, cfg.side, cfg.side], dev)?;
        let c = Tensor::from_vec(cb, &[b, k], dev)?;
        return model.log_prob(&x, &c)?.mean_all()?.scale(-scale);
    };
    xb.extend_from_within(..);
    cb.extend(moved);
    let x = Tensor::from_vec(xb, &[2 * b, cfg.channels, cfg.side, cfg.side], dev)?;
    let c = Tensor::from_vec(cb, &[2 * b, k], dev)?;
    let lp = model.log_prob(&x, &c)?;
    let (own, alt) = (lp.narrow(0, 0, b)?, lp.narrow(0, b, b)?);
    let nll = own.mean_all()?.scale(-scale)?;
    let wrong = alt.sub(&own)?.softplus()?.mean_all()?.scale(contrast * scale)?;
    nll.add(&wrong)
}

/// Trains a conditional Glow on `train`, scoring `val` after every epoch and writing `ckpt` each time. With
/// `resume`, continues from `ckpt` (same model settings required) exactly where it stopped.
#[allow(clippy::too_many_arguments)]
pub fn train(
    train: &HiSet,
    val: &HiSet,
    meta: &GlowMeta,
    tc: &GlowTrainConfig,
    ckpt: &Path,
    dev: &Device,
    resume: bool,
    progress: bool,
) -> Result<(CondGlow, GlowState)> {
    tc.validate()?;
    let cfg = &meta.glow;
    if train.is_empty() {
        return Err(Error::Data("no training maps".into()));
    }
    if train.dim != cfg.dim() || train.cond_dim != cfg.cond {
        return Err(Error::Usage(format!(
            "maps of {} values with {} conditions, the model wants {} and {}",
            train.dim,
            train.cond_dim,
            cfg.dim(),
            cfg.cond
        )));
    }
    if let Some(dir) = ckpt.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    }
    let _lock = crate::io::lock_output(ckpt)?;
    let model = CondGlow::new(cfg, dev)?;
    let (trainable, buffers) = (model.vars(), model.buffers());
    let mut opt = Adam::new(trainable.clone(), AdamConfig::new(AdamKind::Adam, tc.lr));
    let mut state = GlowState {
        epoch: 0,
        step: 0,
        plateau: ReduceOnPlateau::new(tc.lr, tc.factor, tc.patience, tc.min_lr),
        history: Vec::new(),
        position: EpochPosition::default(),
    };
    if interrupt::resume_from_checkpoint(ckpt, resume, progress) {
        let ck = checkpoint::load(ckpt)?;
        let bad = |msg: &str| Error::Checkpoint { path: ckpt.display().to_string(), msg: msg.into() };
        if ck.config["glow"] != serde_json::to_value(cfg).unwrap_or_default() {
            return Err(bad("was trained with different model settings; resume needs the same ones"));
        }
        let mut all = trainable.clone();
        all.extend(buffers.iter().cloned());
        ck.restore(ckpt, &all, dev)?;
        state = serde_json::from_value(ck.config["state"].clone()).map_err(|e| bad(&format!("training state: {e}")))?;
        opt.load_state(&ck, state.step, dev)?;
        if tc.schedule == LrSchedule::Plateau {
            opt.set_lr(state.plateau.lr);
        }
    }
    let save = |state: &GlowState, opt: &Adam| {
        let mut all = trainable.clone();
        all.extend(buffers.iter().cloned());
        all.extend(opt.state_vars());
        let config = serde_json::json!({
            "glow": cfg, "scaling": meta.scaling, "cond_scaling": meta.cond_scaling, "data": meta.data,
            "train": tc, "state": state,
        });
        checkpoint::save(ckpt, &all, &config)
    };
    let (n, dim, k) = (train.len(), train.dim, train.cond_dim);
    let side = cfg.side;
    let steps_per_epoch = n.div_ceil(tc.batch);
    while state.epoch < tc.epochs {
        let epoch = state.epoch;
        let e = Epoch {
            rows: n,
            batch: tc.batch,
            epoch,
            epochs: tc.epochs,
            seed: tc.seed,
            max_steps: None,
            loss_name: "nll",
            unit: "maps",
            progress,
            ckpt,
        };
        let loss = |chunk: &[u32], step: u64| {
            // Augmentation on the host, seeded by the step, so a resumed run draws the same shifts and flips.
            let mut rng = epoch::step_rng(tc.seed, step);
            let mut xb = Vec::with_capacity(chunk.len() * dim);
            let mut cb = Vec::with_capacity(chunk.len() * k);
            for &i in chunk {
                let i = i as usize;
                if tc.augment {
                    xb.extend(augment(train.map(i), side, tc.transpose, &mut rng));
                } else {
                    xb.extend_from_slice(train.map(i));
                }
                cb.extend_from_slice(train.cond(i));
            }
            let moved = (tc.contrast > 0.0)
                .then(|| cb.chunks(k).flat_map(|c| moved_condition(c, tc.contrast_width, &mut rng)).collect());
            batch_loss(&model, xb, cb, moved, tc.contrast, dev)
        };
        let update = |l: &Tensor, step: u64| {
            if tc.schedule == LrSchedule::Cosine {
                opt.set_lr(tc.cosine(steps_per_epoch).at(step));
            }
            epoch::descend(l, &mut opt, &trainable, tc.clip)
        };
        let end = epoch::run(&e, &mut state.step, &mut state.position, loss, update)?;
        if let EpochEnd::Stopped = end {
            save(&state, &opt)?;
            return Err(interrupt::interrupted(ckpt, epoch + 1, state.position.batch));
        }
        let (seconds, maps_per_s) = end.timing();
        let train_nll = state.position.mean();
        let lr = match tc.schedule {
            LrSchedule::Plateau => {
                let lr = state.plateau.step(train_nll as f32);
                opt.set_lr(lr);
                lr
            }
            LrSchedule::Cosine => tc.cosine(steps_per_epoch).at(state.step),
        };
        let log = GlowEpochLog {
            epoch: epoch + 1,
            steps: state.step,
            train_nll,
            val_nll: if val.is_empty() { None } else { Some(mean_nll(&model, val, dev)?) },
            lr,
            maps_per_s,
            seconds,
        };
        if progress {
            let v = log.val_nll.map_or("-".to_string(), |v| format!("{v:.4}"));
            println!(
                "epoch {}/{}: train NLL {:.4}, held-out NLL {v} nats/dim (model units), {:.1} maps/s, lr {:.2e}",
                log.epoch, tc.epochs, log.train_nll, log.maps_per_s, log.lr
            );
        }
        state.history.push(log);
        state.epoch += 1;
        state.position = EpochPosition::default();
        save(&state, &opt)?;
    }
    Ok((model, state))
}

/// A trained Glow and what it was trained with, read back from its checkpoint.
pub fn load(path: &Path, dev: &Device) -> Result<(CondGlow, GlowMeta)> {
    from_checkpoint(path, checkpoint::load(path)?, dev)
}

/// The Glow a checkpoint read from `path` holds.
pub fn from_checkpoint(path: &Path, ck: checkpoint::Checkpoint, dev: &Device) -> Result<(CondGlow, GlowMeta)> {
    let bad = |msg: String| Error::Checkpoint { path: path.display().to_string(), msg };
    if ck.config["glow"].is_null() {
        let what = if !ck.config["flow"].is_null() {
            " (it is a star-flow checkpoint)"
        } else if !ck.config["autoencoder"].is_null() {
            " (it is an autoencoder checkpoint)"
        } else {
            ""
        };
        return Err(bad(format!("not a Glow checkpoint{what}")));
    }
    let meta: GlowMeta = serde_json::from_value(ck.config.clone()).map_err(|e| bad(format!("Glow settings: {e}")))?;
    let model = ck.build(path, || CondGlow::new(&meta.glow, dev))?;
    let mut all = model.vars();
    all.extend(model.buffers());
    ck.restore(path, &all, dev)?;
    Ok((model, meta))
}

/// `n` maps per condition in the data's units (linear, as the files hold them), drawn at temperature `temp`
/// in batches of `batch`; `cond` holds physical (Omega_m, sigma_8). Returns [m * n][C S S], condition-major.
#[allow(clippy::too_many_arguments)]
pub fn sample_maps(
    model: &CondGlow,
    meta: &GlowMeta,
    cond: &[[f64; 2]],
    n: usize,
    temp: f32,
    batch: usize,
    seed: u64,
    dev: &Device,
) -> Result<Vec<Vec<f32>>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(cond.len() * n);
    for &phys in cond {
        let c = meta.cond_scaling.forward(phys).map(|v| v as f32);
        let mut left = n;
        while left > 0 {
            let b = left.min(batch.max(1));
            let ct = Tensor::from_vec((0..b).flat_map(|_| c.iter().copied()).collect(), &[b, c.len()], dev)?;
            let v = model.sample(&ct, temp, &mut rng)?.to_vec()?;
            for m in v.chunks(model.cfg.dim()) {
                // Model units past the training range ([-1, 1]) are clamped, as HIGlow samples.
                let clamped: Vec<f32> = m.iter().map(|x| x.clamp(-1.0, 1.0)).collect();
                out.push(meta.scaling.inverse(&clamped));
            }
            left -= b;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::GlowConfig;
    use rand::{rngs::StdRng, RngExt};

    #[test]
    fn reflection_folds_into_the_unit_interval_and_is_the_identity_inside() {
        for (x, want) in [(0.3, 0.3), (-1.0, -1.0), (1.0, 1.0), (1.25, 0.75), (-1.5, -0.5), (3.5, -0.5), (-3.2, 0.8)] {
            assert!((reflect_unit(x) - want).abs() < 1e-6, "{x} -> {} (want {want})", reflect_unit(x));
        }
        let mut rng = StdRng::seed_from_u64(3);
        let moved: Vec<f32> = (0..2000).flat_map(|_| moved_condition(&[0.95, -0.2], 0.3, &mut rng)).collect();
        assert!(moved.iter().all(|v| (-1.0..=1.0).contains(v)));
        // The second component, far from the ends, moves by the given width.
        let sd = (moved.iter().skip(1).step_by(2).map(|v| (v + 0.2).powi(2)).sum::<f32>() / 2000.0).sqrt();
        assert!((sd - 0.3).abs() < 0.03, "sd {sd}");
    }

    #[test]
    fn the_contrastive_loss_is_the_nll_plus_the_weighted_softplus_of_the_log_ratio() {
        let dev = Device::Cpu;
        let cfg = GlowConfig { side: 4, blocks: 1, steps: 2, hidden: 4, ..GlowConfig::higlow() };
        let model = CondGlow::new(&cfg, &dev).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        // Away from the zero initialisation, so that log q depends on the condition.
        for v in model.vars() {
            let t = v.get();
            let noise: Vec<f32> = (0..t.numel()).map(|_| rng.random_range(-0.2f32..0.2)).collect();
            v.set(t.add(&Tensor::from_slice(&noise, t.shape(), &dev).unwrap()).unwrap());
        }
        let (b, dim) = (3, cfg.dim());
        let xb: Vec<f32> = (0..b * dim).map(|_| rng.random_range(-0.9f32..0.9)).collect();
        let cb = vec![0.1f32, -0.4, 0.7, 0.2, -0.5, -0.9];
        let moved = vec![0.3f32, -0.2, 0.5, 0.4, -0.2, -0.6];
        let lp = |c: &[f32]| {
            let x = Tensor::from_slice(&xb, &[b, 1, 4, 4], &dev).unwrap();
            let c = Tensor::from_slice(c, &[b, 2], &dev).unwrap();
            no_grad(|| model.log_prob(&x, &c)).unwrap().to_vec().unwrap()
        };
        let (own, alt) = (lp(&cb), lp(&moved));
        assert!(own.iter().zip(&alt).any(|(a, b)| (a - b).abs() > 1e-3), "log q ignores the condition");
        let w = 2.5f32;
        let nll = -own.iter().sum::<f32>() / (b * dim) as f32;
        let softplus = |t: f32| t.max(0.0) + (-t.abs()).exp().ln_1p();
        let wrong = own.iter().zip(&alt).map(|(o, a)| softplus(a - o)).sum::<f32>() / b as f32;
        let want = nll + w * wrong / dim as f32;
        let plain = batch_loss(&model, xb.clone(), cb.clone(), None, w, &dev).unwrap().item().unwrap();
        let got = batch_loss(&model, xb.clone(), cb.clone(), Some(moved), w, &dev).unwrap().item().unwrap();
        assert!((plain - nll).abs() < 1e-5, "{plain} vs {nll}");
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
