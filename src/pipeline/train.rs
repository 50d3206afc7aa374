//! Flow training: shuffled mini-batches over all stars of all training galaxies, the optimiser and
//! schedule of GalacticFlow by default, held-out NLL and a checkpoint after every epoch, exact resume.
//! A non-finite loss stops training with an error before anything is written, so the last checkpoint
//! (always written whole, then renamed into place) stays good.
//!
//! Held-out NLL can jump by tenths of a nat between late epochs, so the epoch with the best held-out NLL
//! is kept too, in a second file beside the checkpoint ([`best_path`]: `flow.npz` -> `flow.best.npz`,
//! weights and config without optimiser state). The checkpoint itself always holds the last epoch, so
//! `--resume` continues bit-identically; `keep` says which of the two sampling and evaluation load.
use super::epoch::{self, Epoch, EpochEnd};
use super::interrupt::{self, EpochPosition};
use super::model::{build_flow, FlowSpec};
use super::prepare::{PrepareConfig, Prepared};
use crate::autodiff::no_grad;
use crate::backend::Device;
use crate::checkpoint;
use crate::data::conditions::StarSet;
use crate::error::{Error, Result};
use crate::flows::{all_vars, log_prob, nll, Flow};
use crate::ops::gather::Indices;
use crate::optim::{Adam, AdamConfig, AdamKind, ExponentialLr};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which epoch a run's checkpoint hands to sampling and evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// The last epoch (GalacticFlow's choice; held-out scores stay unbiased).
    #[default]
    Last,
    /// The epoch with the lowest held-out NLL (chosen on the held-out galaxies, so their scores flatter it
    /// slightly).
    Best,
}

impl std::str::FromStr for Keep {
    type Err = Error;
    fn from_str(s: &str) -> Result<Keep> {
        match s {
            "last" => Ok(Keep::Last),
            "best" => Ok(Keep::Best),
            o => Err(Error::Usage(format!("unknown --keep '{o}' (best, last)"))),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    /// "radam", "adam" or "adamw".
    pub optimizer: String,
    pub lr: f32,
    /// ExponentialLR: lr *= gamma every `gamma_every` batches, every `slow_every` once lr <= `slow_below`.
    pub gamma: f32,
    pub gamma_every: u64,
    pub slow_below: f32,
    pub slow_every: u64,
    /// Gradient-norm clipping, if set.
    pub clip: Option<f32>,
    pub seed: u64,
    /// A fixed budget of optimiser steps over the whole run, if set (quality comparisons).
    pub max_steps: Option<u64>,
    /// Standard deviation of Gaussian noise added to the standardised conditions of every training row
    /// (0: none). With a few dozen training galaxies the flow sees only that many points of condition
    /// space; jittering them smooths q(x | c) between galaxies instead of memorising each one.
    #[serde(default)]
    pub cond_noise: f32,
    /// The epoch sampling and evaluation use; both are written either way.
    #[serde(default)]
    pub keep: Keep,
}

impl Default for TrainConfig {
    /// GalacticFlow's (REFERENCE.md section 1): RAdam at 9e-5, batch 1024, gamma 0.998 every 10 batches
    /// (every 120 once lr <= 3e-6), 10 epochs.
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch: 1024,
            optimizer: "radam".into(),
            lr: 9e-5,
            gamma: 0.998,
            gamma_every: 10,
            slow_below: 3e-6,
            slow_every: 120,
            clip: None,
            seed: 0,
            max_steps: None,
            cond_noise: 0.0,
            keep: Keep::Last,
        }
    }
}

impl TrainConfig {
    fn adam(&self) -> Result<AdamConfig> {
        let bad_noise = !(self.cond_noise.is_finite() && self.cond_noise >= 0.0);
        if self.batch == 0
            || !(self.lr.is_finite() && self.lr > 0.0)
            || !(self.gamma > 0.0 && self.gamma <= 1.0)
            || bad_noise
        {
            return Err(Error::Usage(format!(
                "batch must be >= 1, lr > 0, gamma in (0, 1] and cond_noise >= 0; got batch {}, lr {}, gamma {}, cond_noise {}",
                self.batch, self.lr, self.gamma, self.cond_noise
            )));
        }
        let kind = match self.optimizer.as_str() {
            "radam" => AdamKind::RAdam,
            "adam" => AdamKind::Adam,
            "adamw" => AdamKind::AdamW,
            o => return Err(Error::Usage(format!("unknown optimizer '{o}' (radam, adam, adamw)"))),
        };
        Ok(AdamConfig::new(kind, self.lr))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub steps: u64,
    pub train_nll: f64,
    pub val_nll: Option<f64>,
    pub lr: f32,
    pub stars_per_s: f64,
    pub seconds: f64,
}

/// The epoch with the lowest held-out NLL so far.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BestEpoch {
    pub epoch: usize,
    pub val_nll: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    pub step: u64,
    pub schedule: ExponentialLr,
    pub history: Vec<EpochLog>,
    #[serde(default)]
    pub best: Option<BestEpoch>,
    /// Inside the current epoch (non-zero only in a checkpoint written on an interruption).
    #[serde(default)]
    pub position: EpochPosition,
}

/// Where the best held-out epoch of checkpoint `ckpt` is kept: `flow.npz` -> `flow.best.npz`.
pub fn best_path(ckpt: &Path) -> PathBuf {
    let stem = ckpt.file_stem().unwrap_or_default().to_string_lossy();
    match ckpt.extension() {
        Some(ext) => ckpt.with_file_name(format!("{stem}.best.{}", ext.to_string_lossy())),
        None => ckpt.with_file_name(format!("{stem}.best")),
    }
}

/// The role a checkpoint file plays, stored in its config as "checkpoint".
const LAST: &str = "last";
const BEST: &str = "best";

pub struct TrainSummary {
    pub flow: Box<dyn Flow>,
    pub state: TrainState,
}

/// Mean -log q(x | c) per star in model (standardised) units over a star set, in chunks, without a tape.
pub fn mean_nll(flow: &dyn Flow, set: &StarSet, dev: &Device) -> Result<f64> {
    const CHUNK: usize = 16384;
    let d = flow.dim();
    let mut total = 0.0;
    no_grad(|| {
        for start in (0..set.len()).step_by(CHUNK) {
            let end = (start + CHUNK).min(set.len());
            let x = Tensor::from_slice(&set.x[start * d..end * d], &[end - start, d], dev)?;
            let c: Vec<f32> = set.galaxy[start..end]
                .iter()
                .flat_map(|&g| set.cond[g as usize * set.cond_dim..(g as usize + 1) * set.cond_dim].iter().copied())
                .collect();
            let c = Tensor::from_vec(c, &[end - start, set.cond_dim], dev)?;
            let lp = log_prob(flow, &x, &c)?.sum_all()?.item()?;
            total -= f64::from(lp);
        }
        Ok(total / set.len().max(1) as f64)
    })
}

/// The config stored with the weights; `role` is [`LAST`] (the checkpoint, resumable) or [`BEST`].
fn checkpoint_config(
    spec: &FlowSpec,
    p: &Prepared,
    prep: &PrepareConfig,
    tc: &TrainConfig,
    st: &TrainState,
    ckpt: &Path,
    role: &str,
) -> serde_json::Value {
    let best_file = best_path(ckpt).file_name().map(|f| f.to_string_lossy().to_string());
    serde_json::json!({
        "checkpoint": role,
        "keep": tc.keep,
        "last": st.history.last().map(|h| serde_json::json!({ "epoch": h.epoch, "val_nll": h.val_nll })),
        "best": st.best.as_ref().map(|b| {
            serde_json::json!({ "epoch": b.epoch, "val_nll": b.val_nll, "file": best_file })
        }),
        "flow": spec,
        "standardizer": p.standardizer,
        "prepare": prep,
        "train": tc,
        "state": st,
        "train_ids": p.train.iter().map(|g| &g.id).collect::<Vec<_>>(),
        "val_ids": p.val.iter().map(|g| &g.id).collect::<Vec<_>>(),
        // Physical conditions of every galaxy, so `flow sample --galaxy ID` needs no data folder.
        "conditions": p.train.iter().zip(&p.train_cond).chain(p.val.iter().zip(&p.val_cond))
            .map(|(g, c)| (g.id.clone(), c.clone())).collect::<std::collections::BTreeMap<_, _>>(),
    })
}

/// Trains `spec` on the prepared data, writing `ckpt` after every epoch. With `resume`, continues from
/// `ckpt` (same data and settings required) exactly where it stopped.
#[allow(clippy::too_many_arguments)]
pub fn train(
    p: &Prepared,
    spec: &FlowSpec,
    prep: &PrepareConfig,
    tc: &TrainConfig,
    ckpt: &Path,
    dev: &Device,
    resume: bool,
    progress: bool,
) -> Result<TrainSummary> {
    if tc.keep == Keep::Best && p.val.is_empty() {
        return Err(Error::Usage(
            "--keep best needs held-out galaxies to choose the best epoch by; none are left out".into(),
        ));
    }
    let adam = tc.adam()?;
    if let Some(dir) = ckpt.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    }
    let _lock = crate::io::lock_output(ckpt)?;
    // The best epoch's file is written under the same lock: a killed run's temporary of it goes too.
    crate::io::remove_stale_temps(&best_path(ckpt));
    let flow = build_flow(spec, dev)?;
    let trainable = flow.vars();
    let mut opt = Adam::new(trainable.clone(), adam);
    let mut state = TrainState {
        epoch: 0,
        step: 0,
        schedule: ExponentialLr::new(tc.lr, tc.gamma, tc.gamma_every).with_slow_phase(tc.slow_below, tc.slow_every),
        history: Vec::new(),
        best: None,
        position: EpochPosition::default(),
    };
    if interrupt::resume_from_checkpoint(ckpt, resume, progress) {
        let ck = checkpoint::load(ckpt)?;
        let bad = |msg: &str| Error::Checkpoint { path: ckpt.display().to_string(), msg: msg.into() };
        if ck.config["checkpoint"] == BEST {
            return Err(bad(
                "holds the best held-out epoch without optimiser state; resume from the checkpoint beside it",
            ));
        }
        if ck.config["flow"] != serde_json::to_value(spec).unwrap_or_default() {
            return Err(bad("was trained with different flow settings; resume needs the same ones"));
        }
        if ck.config["standardizer"] != serde_json::to_value(&p.standardizer).unwrap_or_default() {
            return Err(bad("was trained on different data (the standardisation differs)"));
        }
        ck.restore(ckpt, &all_vars(flow.as_ref()), dev)?;
        state = serde_json::from_value(ck.config["state"].clone()).map_err(|e| bad(&format!("training state: {e}")))?;
        opt.load_state(&ck, state.step, dev)?;
        opt.set_lr(state.schedule.lr);
    }
    let train = p.train_set();
    let val = p.val_set();
    if train.is_empty() {
        return Err(Error::Data("no training stars".into()));
    }
    let d = flow.dim();
    let n = train.len();
    let x_all = Tensor::from_slice(&train.x, &[n, d], dev)?;
    let c_all = Tensor::from_slice(&train.cond, &[train.ids.len(), train.cond_dim], dev)?;
    while state.epoch < tc.epochs && tc.max_steps.is_none_or(|m| state.step < m) {
        let epoch = state.epoch;
        let e = Epoch {
            rows: n,
            batch: tc.batch,
            epoch,
            epochs: tc.epochs,
            seed: tc.seed,
            max_steps: tc.max_steps,
            loss_name: "loss",
            unit: "stars",
            progress,
            ckpt,
        };
        let schedule = &mut state.schedule;
        let loss = |chunk: &[u32], step: u64| {
            let gal: Vec<u32> = chunk.iter().map(|&i| train.galaxy[i as usize]).collect();
            let xb = x_all.gather(0, &Indices::new(chunk, n, dev)?)?;
            let mut cb = c_all.gather(0, &Indices::new(&gal, train.ids.len(), dev)?)?;
            if tc.cond_noise > 0.0 {
                let mut rng = epoch::step_rng(tc.seed, step);
                cb = cb.add(&Tensor::randn(cb.shape(), &mut rng, dev)?.scale(tc.cond_noise)?)?;
            }
            nll(flow.as_ref(), &xb, &cb)
        };
        let update = |l: &Tensor, _| {
            epoch::descend(l, &mut opt, &trainable, tc.clip)?;
            opt.set_lr(schedule.step());
            Ok(())
        };
        let end = epoch::run(&e, &mut state.step, &mut state.position, loss, update)?;
        if let EpochEnd::Stopped = end {
            let mut vars = all_vars(flow.as_ref());
            vars.extend(opt.state_vars());
            checkpoint::save(ckpt, &vars, &checkpoint_config(spec, p, prep, tc, &state, ckpt, LAST))?;
            return Err(interrupt::interrupted(ckpt, epoch + 1, state.position.batch));
        }
        let (seconds, stars_per_s) = end.timing();
        let val_nll = if val.is_empty() { None } else { Some(mean_nll(flow.as_ref(), &val, dev)?) };
        let log = EpochLog {
            epoch: epoch + 1,
            steps: state.step,
            train_nll: state.position.mean(),
            val_nll,
            lr: state.schedule.lr,
            stars_per_s,
            seconds,
        };
        let improved = log.val_nll.is_some_and(|v| v.is_finite() && state.best.as_ref().is_none_or(|b| v < b.val_nll));
        if improved {
            state.best = log.val_nll.map(|val_nll| BestEpoch { epoch: log.epoch, val_nll });
        }
        if progress {
            println!("{}", epoch_line(&log, tc.epochs, state.best.as_ref()));
        }
        state.history.push(log);
        state.epoch += 1;
        state.position = EpochPosition::default();
        // The best first: if the run stops between the two writes, `--resume` redoes this epoch and both.
        if improved {
            let config = checkpoint_config(spec, p, prep, tc, &state, ckpt, BEST);
            checkpoint::save(&best_path(ckpt), &all_vars(flow.as_ref()), &config)?;
        }
        let mut vars = all_vars(flow.as_ref());
        vars.extend(opt.state_vars());
        checkpoint::save(ckpt, &vars, &checkpoint_config(spec, p, prep, tc, &state, ckpt, LAST))?;
    }
    Ok(TrainSummary { flow, state })
}

/// The training log's line for one epoch, with the best held-out epoch so far.
fn epoch_line(log: &EpochLog, epochs: usize, best: Option<&BestEpoch>) -> String {
    let v = log.val_nll.map_or("-".to_string(), |v| format!("{v:.4}"));
    let best = match best {
        Some(b) if b.epoch == log.epoch => ", best so far".to_string(),
        Some(b) => format!(", best {:.4} at epoch {}", b.val_nll, b.epoch),
        None => String::new(),
    };
    format!(
        "epoch {}/{epochs}: train NLL {:.4}, held-out NLL {v} nats/star (standardised){best}, {:.0} stars/s, lr {:.2e}",
        log.epoch, log.train_nll, log.stars_per_s, log.lr
    )
}

/// One line on what a finished run keeps: the last epoch in `ckpt`, the best held-out one beside it.
pub fn kept_summary(state: &TrainState, keep: Keep, ckpt: &Path) -> String {
    let nll = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let last = state.history.last();
    let mut s = format!(
        "last epoch {} (held-out NLL {}) -> {}",
        last.map_or(0, |h| h.epoch),
        nll(last.and_then(|h| h.val_nll)),
        ckpt.display()
    );
    if let Some(b) = &state.best {
        s += &format!("; best held-out epoch {} ({:.4}) -> {}", b.epoch, b.val_nll, best_path(ckpt).display());
    }
    let used = if keep == Keep::Best { "best" } else { "last" };
    s + &format!("; sampling and evaluation use the {used} (--keep {used})")
}
