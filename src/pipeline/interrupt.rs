//! Stopping a training run cleanly: the CLI's Ctrl-C handler (or an embedding program) calls
//! [`request_stop`]; every trainer checks [`stop_requested`] at each batch boundary, writes a checkpoint
//! that records the position inside the epoch, and returns [`Error::Interrupted`], so `--resume` continues
//! with the next batch exactly as an uninterrupted run would have. Process-wide, as the signal it stands for.
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks every training loop in this process to stop at its next batch boundary.
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether a stop was requested (and not yet cleared).
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Clears a request, for a program that trains again after an interruption.
pub fn clear_stop() {
    STOP.store(false, Ordering::SeqCst);
}

/// The error a trainer returns once it has saved `ckpt` after `batch` batches of epoch `epoch` (1-based).
pub(crate) fn interrupted(ckpt: &Path, epoch: usize, batch: usize) -> Error {
    Error::Interrupted { path: ckpt.display().to_string(), epoch, batch }
}

/// Where a run is inside its current epoch: batches done, and their summed loss and row count, so an epoch
/// resumed after an interruption skips those batches and reports the same mean loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochPosition {
    pub batch: usize,
    pub loss_sum: f64,
    pub seen: usize,
}

impl EpochPosition {
    pub(crate) fn add(&mut self, loss: f32, rows: usize) {
        self.batch += 1;
        self.loss_sum += f64::from(loss) * rows as f64;
        self.seen += rows;
    }

    pub(crate) fn mean(&self) -> f64 {
        self.loss_sum / self.seen.max(1) as f64
    }
}

/// Whether a run asked to `--resume` has a checkpoint to resume from. A run killed before its first
/// checkpoint (or its first write) left none: it then starts from the beginning, which is exactly what
/// resuming it means, with a note, so "the same command with --resume" is always the way to continue.
/// Called with the output lock held, so no other run can be writing `ckpt` meanwhile.
pub(crate) fn resume_from_checkpoint(ckpt: &Path, resume: bool, progress: bool) -> bool {
    if resume && !ckpt.exists() {
        if progress {
            println!(
                "no checkpoint {} yet (stopped before its first one?): starting from the beginning",
                ckpt.display()
            );
        }
        return false;
    }
    resume
}
