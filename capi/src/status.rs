//! Status codes, the thread-local last error, and the guard every entry point runs under.
use galactic_forge::{Error, ErrorKind};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// `gf_status`: one value per [`ErrorKind`], plus `Internal` for a bug caught at the boundary.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GfStatus {
    Ok = 0,
    Usage = 1,
    Shape = 2,
    Io = 3,
    Data = 4,
    Device = 5,
    OutOfMemory = 6,
    Numeric = 7,
    Internal = 8,
}

impl From<&Error> for GfStatus {
    fn from(e: &Error) -> GfStatus {
        match e.kind() {
            ErrorKind::Usage => GfStatus::Usage,
            ErrorKind::Shape => GfStatus::Shape,
            ErrorKind::Io => GfStatus::Io,
            ErrorKind::Data => GfStatus::Data,
            ErrorKind::Device => GfStatus::Device,
            ErrorKind::OutOfMemory => GfStatus::OutOfMemory,
            ErrorKind::Numeric => GfStatus::Numeric,
            // Only training is interrupted (Ctrl-C), and no entry point trains: here it would be a bug.
            ErrorKind::Interrupted => GfStatus::Internal,
        }
    }
}

thread_local! {
    // Per thread, so a message can never belong to another thread's call.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = c);
}

/// Runs one entry point: its error becomes a status and the thread's last message; a panic becomes
/// `Internal` with the panic's message, and never unwinds into C.
/// The call runs on the library's worker pool (`galactic_forge::on_pool`: one hand-off per call, not one
/// per op); its message is stored on the calling thread.
pub(crate) fn guard(f: impl FnOnce() -> galactic_forge::Result<()>) -> GfStatus {
    let job = CallerBlocks(f);
    match galactic_forge::on_pool(move || catch_unwind(AssertUnwindSafe(job.into_inner()))) {
        Ok(Ok(())) => GfStatus::Ok,
        Ok(Err(e)) => {
            set_last_error(&e.to_string());
            GfStatus::from(&e)
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (a bug in gforge, please report it): {what}"));
            GfStatus::Internal
        }
    }
}

/// An entry point's body, moved to a pool worker although it holds the caller's raw pointers.
struct CallerBlocks<F>(F);

// SAFETY: `on_pool` blocks the calling thread until the body has run, so whatever the body borrows from
// the caller (pointers into its arrays, its handles) outlives the call, and nothing else touches them.
unsafe impl<F> Send for CallerBlocks<F> {}

impl<F> CallerBlocks<F> {
    /// Taken whole (a method, so the closure captures the wrapper, not its non-Send field).
    fn into_inner(self) -> F {
        self.0
    }
}

/// A free function's body: nothing to report, and still no unwinding into C.
pub(crate) fn guard_free(f: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(f));
}

/// The message of this thread's last failed call ("" before any failure); valid until this thread's next
/// failing call.
#[no_mangle]
pub extern "C" fn gf_last_error() -> *const c_char {
    // A thread being torn down has no slot left: answer with a static string rather than panic.
    LAST_ERROR.try_with(|l| l.borrow().as_ptr()).unwrap_or(c"(thread exiting)".as_ptr())
}

/// The version of the library (the crate's), a static string.
#[no_mangle]
pub extern "C" fn gf_version() -> *const c_char {
    static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

/// GF_ABI_VERSION of the header this library was built with: a program compares it with its own.
#[no_mangle]
pub extern "C" fn gf_abi_version() -> c_int {
    1
}

/// The name of a status ("GF_OK", "GF_ERR_DEVICE", ...), a static string.
#[no_mangle]
pub extern "C" fn gf_status_name(status: c_int) -> *const c_char {
    let s = match status {
        0 => c"GF_OK",
        1 => c"GF_ERR_USAGE",
        2 => c"GF_ERR_SHAPE",
        3 => c"GF_ERR_IO",
        4 => c"GF_ERR_DATA",
        5 => c"GF_ERR_DEVICE",
        6 => c"GF_ERR_OOM",
        7 => c"GF_ERR_NUMERIC",
        8 => c"GF_ERR_INTERNAL",
        _ => c"GF_(unknown status)",
    };
    s.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        unsafe { CStr::from_ptr(gf_last_error()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn a_panic_becomes_internal_with_its_message() {
        let s = guard(|| panic!("boom {}", 7));
        assert_eq!(s, GfStatus::Internal);
        assert!(last().contains("boom 7"), "{}", last());
        assert_eq!(guard(|| Ok(())), GfStatus::Ok);
        assert!(last().contains("boom 7"), "a success must not clear the last failure's message");
    }

    #[test]
    fn errors_map_to_their_status_and_message() {
        let cases = [
            (Error::Usage("bad".into()), GfStatus::Usage),
            (Error::shape("op", "m"), GfStatus::Shape),
            (Error::file(std::path::Path::new("f.npz"), "gone"), GfStatus::Io),
            (Error::Checkpoint { path: "c.npz".into(), msg: "truncated".into() }, GfStatus::Data),
            (Error::Device("no GPU".into()), GfStatus::Device),
            (Error::kernel("k", "failed"), GfStatus::Device),
            (Error::OutOfMemory("oom".into()), GfStatus::OutOfMemory),
            (Error::Numeric("nan".into()), GfStatus::Numeric),
        ];
        for (e, want) in cases {
            let msg = e.to_string();
            assert_eq!(guard(move || Err(e)), want);
            assert_eq!(last(), msg);
        }
    }

    #[test]
    fn the_last_error_is_per_thread() {
        guard(|| Err(Error::Usage("main thread".into())));
        std::thread::spawn(|| {
            assert_eq!(last(), "");
            guard(|| Err(Error::Usage("other thread".into())));
            assert_eq!(last(), "other thread");
        })
        .join()
        .unwrap();
        assert_eq!(last(), "main thread");
    }

    #[test]
    fn status_names_match_the_enum() {
        let name = |s: GfStatus| unsafe { CStr::from_ptr(gf_status_name(s as c_int)) }.to_str().unwrap().to_string();
        assert_eq!(name(GfStatus::Ok), "GF_OK");
        assert_eq!(name(GfStatus::OutOfMemory), "GF_ERR_OOM");
        assert_eq!(name(GfStatus::Internal), "GF_ERR_INTERNAL");
    }
}
