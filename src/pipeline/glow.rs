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
    pub seed: u64,
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
            && self.factor <= 1.0;
        if ok {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "batch must be >= 1, lr > 0, clip > 0 and factor in (0, 1]; got batch {}, lr {}, clip {:?}, factor {}",
                self.batch, self.lr, self.clip, self.factor
            )))
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GlowEpochLog {
    pub epoch: usize,
    pub steps: u64,
    /// Mean negative log-likelihood per dimension in nats (model units).
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
    let scale = 1.0 / dim as f32;
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
            let x = Tensor::from_vec(xb, &[chunk.len(), cfg.channels, side, side], dev)?;
            let c = Tensor::from_vec(cb, &[chunk.len(), k], dev)?;
            model.log_prob(&x, &c)?.mean_all()?.scale(-scale)
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
    let ck = checkpoint::load(path)?;
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
    let model = CondGlow::new(&meta.glow, dev)?;
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
