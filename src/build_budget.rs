//! A ceiling on the values a model may allocate while it is built from settings read from a file.
//!
//! A checkpoint's settings describe the model before its tensors can be checked against it, and they come
//! from users and other codes: `hidden: 200000` in a Glow checkpoint asked for a 160 GB weight and aborted
//! the process in the allocator. Loaders therefore build inside [`within`], with a ceiling derived from the
//! tensors the file holds (`Checkpoint::build`), and every constructor that sizes a buffer from settings
//! calls [`take`] (or [`take_shape`]) before it allocates. Outside `within` both are free.
use crate::error::{Error, Result};
use std::cell::Cell;

/// The ceiling of the build in progress on a thread.
#[derive(Clone, Copy)]
struct Budget {
    left: u64,
    /// Set by the first request past the ceiling, so `within` knows the error is the ceiling's.
    refused: bool,
}

thread_local! {
    /// None outside `within`.
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
}

/// Runs `f` with at most `values` values to allocate through [`take`] on this thread. When `f` fails
/// because a request went past that, its error goes through `refused` (which says what was being built).
/// Nests (the inner ceiling applies) and is restored on return or panic.
pub fn within<T>(values: u64, refused: impl FnOnce(Error) -> Error, f: impl FnOnce() -> Result<T>) -> Result<T> {
    struct Restore(Option<Budget>);
    impl Drop for Restore {
        fn drop(&mut self) {
            BUDGET.set(self.0);
        }
    }
    let _restore = Restore(BUDGET.replace(Some(Budget { left: values, refused: false })));
    f().map_err(|e| if BUDGET.get().is_some_and(|b| b.refused) { refused(e) } else { e })
}

/// Asks for `n` values of the current build's ceiling.
pub(crate) fn take(n: u64) -> Result<()> {
    let Some(b) = BUDGET.get() else { return Ok(()) };
    match b.left.checked_sub(n) {
        Some(left) => {
            BUDGET.set(Some(Budget { left, ..b }));
            Ok(())
        }
        None => {
            BUDGET.set(Some(Budget { refused: true, ..b }));
            Err(Error::Data(format!("a buffer of {n} values is past the {} values left to this model", b.left)))
        }
    }
}

/// [`take`] for a buffer of `shape`, whose element count must also fit a usize.
pub(crate) fn take_shape(shape: &[usize]) -> Result<usize> {
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match n {
        Some(n) => take(n as u64).map(|()| n),
        None if BUDGET.get().is_none() => Ok(shape.iter().product()),
        None => take(u64::MAX).map(|()| usize::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_is_refused_past_its_ceiling_and_free_outside() {
        assert!(take(u64::MAX).is_ok());
        let id = |e: Error| e;
        let r = within(10, id, || {
            take(6)?;
            take_shape(&[2, 2])?;
            take(1)
        });
        assert!(r.unwrap_err().to_string().contains("past the 0 values left"));
        assert!(within(10, id, || take_shape(&[usize::MAX, 2])).is_err());
        // Only the ceiling's own refusals go through `refused`.
        let named = |e: Error| Error::Usage(format!("building x: {e}"));
        let msg = within(10, named, || take(11)).unwrap_err().to_string();
        assert!(msg.contains("building x") && msg.contains("a buffer of 11 values"), "{msg}");
        let other = within(10, named, || -> Result<()> { Err(Error::Data("other".into())) });
        assert_eq!(other.unwrap_err().to_string(), Error::Data("other".into()).to_string());
        // Nested ceilings, and the outer one back afterwards.
        within(5, id, || {
            within(100, id, || take(50))?;
            assert!(take(6).is_err());
            take(5)
        })
        .unwrap();
        assert!(take(u64::MAX).is_ok());
        // Restored after a panic too.
        let _ = std::panic::catch_unwind(|| within(1, id, || -> Result<()> { panic!("inside") }));
        assert!(take(u64::MAX).is_ok());
    }
}
