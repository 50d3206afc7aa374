//! A ceiling on the values a model may allocate while it is built from settings read from a file.
//!
//! A checkpoint's settings describe the model before its tensors can be checked against it, and they come
//! from users and other codes: `hidden: 200000` in a Glow checkpoint asked for a 160 GB weight and aborted
//! the process in the allocator. Loaders therefore build inside [`within`], with a ceiling derived from the
//! tensors the file holds (`Checkpoint::build`), and every constructor that sizes a buffer from settings
//! calls [`take`] (or [`take_shape`]) before it allocates. Outside `within` both are free.
use crate::error::{Error, Result};
use std::cell::Cell;

thread_local! {
    /// Values the current build may still allocate; None outside `within`.
    static LEFT: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f` with at most `values` values to allocate through [`take`] on this thread; a request past that is
/// an error naming the ceiling. Nests (the inner ceiling applies) and is restored on return or panic.
pub fn within<T>(values: u64, f: impl FnOnce() -> Result<T>) -> Result<T> {
    struct Restore(Option<u64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            LEFT.set(self.0);
        }
    }
    let _restore = Restore(LEFT.replace(Some(values)));
    f()
}

/// Asks for `n` values of the current build's ceiling.
pub(crate) fn take(n: u64) -> Result<()> {
    let Some(left) = LEFT.get() else { return Ok(()) };
    match left.checked_sub(n) {
        Some(rest) => {
            LEFT.set(Some(rest));
            Ok(())
        }
        None => Err(Error::Data(format!("a buffer of {n} values is past the {left} values left to this model"))),
    }
}

/// [`take`] for a buffer of `shape`, whose element count must also fit a usize.
pub(crate) fn take_shape(shape: &[usize]) -> Result<usize> {
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match n {
        Some(n) => take(n as u64).map(|()| n),
        None if LEFT.get().is_none() => Ok(shape.iter().product()),
        None => Err(Error::Data(format!("a buffer of shape {shape:?} has more values than a usize holds"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_is_refused_past_its_ceiling_and_free_outside() {
        assert!(take(u64::MAX).is_ok());
        let r = within(10, || {
            take(6)?;
            take_shape(&[2, 2])?;
            take(1)
        });
        assert!(r.unwrap_err().to_string().contains("past the 0 values left"));
        assert!(within(10, || take_shape(&[usize::MAX, 2])).is_err());
        // Nested ceilings, and the outer one back afterwards.
        within(5, || {
            within(100, || take(50))?;
            assert!(take(6).is_err());
            take(5)
        })
        .unwrap();
        assert!(take(u64::MAX).is_ok());
        // Restored after a panic too.
        let _ = std::panic::catch_unwind(|| within(1, || -> Result<()> { panic!("inside") }));
        assert!(take(u64::MAX).is_ok());
    }
}
