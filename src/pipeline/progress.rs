//! Progress bars on the terminal (indicatif), for training epochs and sampling. A build without the `cli`
//! feature compiles progress_absent.rs instead: the same type, drawing nothing.
use indicatif::{ProgressBar, ProgressStyle};

pub(crate) struct Progress(ProgressBar);

impl Progress {
    /// The bar of one epoch of `steps` batches (hidden unless `show`).
    pub(crate) fn epoch(steps: usize, epoch: usize, epochs: usize, show: bool) -> Progress {
        if !show {
            return Progress(ProgressBar::hidden());
        }
        let b = ProgressBar::new(steps as u64);
        b.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_prefix(format!("{}/{epochs}", epoch + 1));
        Progress(b)
    }

    /// A plain bar counting to `n` (hidden unless `show`).
    pub(crate) fn count(n: u64, show: bool) -> Progress {
        Progress(if show { ProgressBar::new(n) } else { ProgressBar::hidden() })
    }

    pub(crate) fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    pub(crate) fn set_message(&self, m: String) {
        self.0.set_message(m);
    }

    /// Leaves the bar where it stopped (an error follows).
    pub(crate) fn abandon(&self) {
        self.0.abandon();
    }

    pub(crate) fn finish_and_clear(&self) {
        self.0.finish_and_clear();
    }
}
