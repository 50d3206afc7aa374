//! Progress in a build without the `cli` feature (no indicatif): the same type as progress.rs, drawing
//! nothing, as a library embedded in another program should.
pub(crate) struct Progress;

impl Progress {
    pub(crate) fn epoch(_: usize, _: usize, _: usize, _: bool) -> Progress {
        Progress
    }

    pub(crate) fn count(_: u64, _: bool) -> Progress {
        Progress
    }

    pub(crate) fn inc(&self, _: u64) {}

    pub(crate) fn set_message(&self, _: String) {}

    pub(crate) fn abandon(&self) {}

    pub(crate) fn finish_and_clear(&self) {}
}
