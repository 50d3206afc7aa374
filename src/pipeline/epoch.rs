//! The one epoch loop of every trainer (star flows, autoencoder, Glow): a seeded shuffle of the rows, the
//! progress bar, resuming mid-epoch from an [`EpochPosition`], the stop check at every batch boundary, the
//! stop on a non-finite loss before any update, and the epoch's throughput. What a step computes (the loss of
//! a batch) and what it updates (optimiser, schedule) stays with each trainer; so do the held-out score and
//! the checkpoint written after the epoch.
use super::interrupt::{self, EpochPosition};
use crate::autodiff::{backward, Var};
use crate::error::{Error, Result};
use crate::optim::{clip_grad_norm, Adam};
use crate::tensor::Tensor;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::Path;
use std::time::Instant;

/// One epoch of a run: its rows, batch size and seed, and how its progress reads.
pub(crate) struct Epoch<'a> {
    /// Rows in the training set (shuffled afresh every epoch).
    pub rows: usize,
    pub batch: usize,
    /// 0-based, of `epochs`.
    pub epoch: usize,
    pub epochs: usize,
    pub seed: u64,
    /// A budget of optimiser steps over the whole run, if any.
    pub max_steps: Option<u64>,
    /// Written into the bar: "loss" and "stars", "nll" and "maps"...
    pub loss_name: &'a str,
    pub unit: &'a str,
    pub progress: bool,
    /// The checkpoint, named in the non-finite-loss error.
    pub ckpt: &'a Path,
}

/// How an epoch ended.
pub(crate) enum EpochEnd {
    /// Every batch ran (or the step budget ran out): seconds taken and rows trained in this process.
    Done { seconds: f64, rows: usize },
    /// A stop was requested: the caller saves its checkpoint (the position says where) and returns
    /// [`interrupt::interrupted`].
    Stopped,
}

impl EpochEnd {
    /// (seconds, rows per second) of a finished epoch.
    pub fn timing(&self) -> (f64, f64) {
        match *self {
            EpochEnd::Done { seconds, rows } => (seconds, rows as f64 / seconds.max(1e-9)),
            EpochEnd::Stopped => (0.0, 0.0),
        }
    }
}

/// The epoch's order of rows: a shuffle seeded by the run's seed and the epoch, so a resumed run replays it.
pub(crate) fn shuffled(rows: usize, seed: u64, epoch: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..rows as u32).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    order
}

/// A generator seeded by the optimiser step, for a step's random draws (augmentation, condition noise), so a
/// resumed run draws the same ones.
pub(crate) fn step_rng(seed: u64, step: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// Runs the batches of one epoch from `pos` on. `loss` builds a batch's loss on the tape (rows of the training
/// set, and the step about to be taken); `update` applies its gradient at that step. `step` and `pos` advance
/// with every batch. A non-finite loss stops the run before its update, with nothing written.
pub(crate) fn run(
    e: &Epoch,
    step: &mut u64,
    pos: &mut EpochPosition,
    mut loss: impl FnMut(&[u32], u64) -> Result<Tensor>,
    mut update: impl FnMut(&Tensor, u64) -> Result<()>,
) -> Result<EpochEnd> {
    let order = shuffled(e.rows, e.seed, e.epoch);
    let bar = super::progress::Progress::epoch(e.rows.div_ceil(e.batch), e.epoch, e.epochs, e.progress);
    bar.inc(pos.batch as u64);
    let (t0, seen_before) = (Instant::now(), pos.seen);
    for chunk in order.chunks(e.batch).skip(pos.batch) {
        if e.max_steps.is_some_and(|m| *step >= m) {
            break;
        }
        if interrupt::stop_requested() {
            bar.abandon();
            return Ok(EpochEnd::Stopped);
        }
        let l = loss(chunk, *step).inspect_err(|_| bar.abandon())?;
        let lv = l.item()?;
        if !lv.is_finite() {
            bar.abandon();
            return Err(non_finite_loss(lv, e.epoch, *step, e.ckpt));
        }
        update(&l, *step).inspect_err(|_| bar.abandon())?;
        *step += 1;
        pos.add(lv, chunk.len());
        let rate = (pos.seen - seen_before) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{} {lv:.5} {rate:.1} {}/s", e.loss_name, e.unit));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(EpochEnd::Done { seconds: t0.elapsed().as_secs_f64(), rows: pos.seen - seen_before })
}

/// The usual update: backward, gradient-norm clip if set, one optimiser step.
pub(crate) fn descend(loss: &Tensor, opt: &mut Adam, trainable: &[Var], clip: Option<f32>) -> Result<()> {
    let mut grads = backward(loss)?;
    if let Some(c) = clip {
        clip_grad_norm(&mut grads, trainable, c)?;
    }
    opt.step(&grads)
}

/// The error that stops every trainer on a non-finite loss (`epoch` and `step` counted from 0, before the
/// step): nothing was written, so the checkpoint keeps the last good epoch.
fn non_finite_loss(loss: f32, epoch: usize, step: u64, ckpt: &Path) -> Error {
    Error::Numeric(format!(
        "non-finite loss ({loss}) at epoch {} step {}: training stopped; {} keeps the last good epoch",
        epoch + 1,
        step + 1,
        ckpt.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Device;

    fn epoch(rows: usize, batch: usize) -> Epoch<'static> {
        Epoch {
            rows,
            batch,
            epoch: 0,
            epochs: 1,
            seed: 3,
            max_steps: None,
            loss_name: "loss",
            unit: "rows",
            progress: false,
            ckpt: Path::new("x.npz"),
        }
    }

    #[test]
    fn every_row_once_resumed_or_not() {
        let dev = Device::Cpu;
        let e = epoch(10, 3);
        let (mut step, mut pos, mut seen) = (0, EpochPosition::default(), Vec::new());
        let one = |v: f32| Tensor::from_vec(vec![v], &[1], &dev);
        run(
            &e,
            &mut step,
            &mut pos,
            |c, _| {
                seen.extend_from_slice(c);
                one(1.0)
            },
            |_, _| Ok(()),
        )
        .unwrap();
        assert_eq!((step, pos.batch, pos.seen), (4, 4, 10));
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<u32>>());
        // From the position after two batches: the same last two batches.
        let (mut step2, mut pos2, mut rest) = (2, EpochPosition { batch: 2, loss_sum: 6.0, seen: 6 }, Vec::new());
        run(
            &e,
            &mut step2,
            &mut pos2,
            |c, _| {
                rest.extend_from_slice(c);
                one(1.0)
            },
            |_, _| Ok(()),
        )
        .unwrap();
        assert_eq!(rest, seen[6..]);
        assert_eq!((step2, pos2), (step, pos));
    }

    #[test]
    fn a_non_finite_loss_stops_before_the_update() {
        let dev = Device::Cpu;
        let (mut step, mut pos, mut updates) = (0, EpochPosition::default(), 0);
        let err = run(
            &epoch(10, 2),
            &mut step,
            &mut pos,
            |_, s| Tensor::from_vec(vec![if s == 2 { f32::NAN } else { 1.0 }], &[1], &dev),
            |_, _| {
                updates += 1;
                Ok(())
            },
        )
        .err()
        .unwrap();
        assert_eq!((updates, step), (2, 2));
        assert!(err.to_string().contains("non-finite loss (NaN) at epoch 1 step 3"), "{err}");
    }
}
