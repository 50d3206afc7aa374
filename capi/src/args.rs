//! Checked views of what C passes: a NULL where a value is needed, a misaligned buffer, a string that is
//! not UTF-8 or a length that does not match the shape is a `GF_ERR_USAGE` naming the argument, never
//! undefined behaviour on this side.
use galactic_forge::{Error, Result};
use std::ffi::{c_char, CStr};

fn check_ptr<T>(p: *const T, what: &str) -> Result<()> {
    if p.is_null() {
        return Err(Error::Usage(format!("{what} is NULL")));
    }
    if !p.is_aligned() {
        return Err(Error::Usage(format!("{what} is not aligned for its type")));
    }
    Ok(())
}

/// A handle the caller got from this library.
pub(crate) unsafe fn handle<'a, T>(p: *const T, what: &str) -> Result<&'a T> {
    check_ptr(p, what)?;
    Ok(&*p)
}

/// Where a result goes.
pub(crate) unsafe fn out<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T> {
    check_ptr(p, what)?;
    Ok(&mut *p)
}

pub(crate) unsafe fn string<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    check_ptr(p, what)?;
    CStr::from_ptr(p).to_str().map_err(|_| Error::Usage(format!("{what} is not UTF-8")))
}

/// `len` elements at `p` (any pointer, even NULL, when `len` is 0).
pub(crate) unsafe fn slice<'a, T>(p: *const T, len: usize, what: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    check_ptr(p, what)?;
    Ok(std::slice::from_raw_parts(p, len))
}

pub(crate) unsafe fn slice_mut<'a, T>(p: *mut T, len: usize, what: &str) -> Result<&'a mut [T]> {
    if len == 0 {
        return Ok(&mut []);
    }
    check_ptr(p, what)?;
    Ok(std::slice::from_raw_parts_mut(p, len))
}

/// A buffer length against what the shape needs, `rows` x `cols` elements.
pub(crate) fn expect_len(what: &str, len: usize, rows: usize, cols: usize) -> Result<()> {
    match rows.checked_mul(cols) {
        Some(want) if want == len => Ok(()),
        Some(want) => Err(Error::Usage(format!("{what} holds {len} elements; {rows} x {cols} = {want} are needed"))),
        None => Err(Error::Usage(format!("{rows} x {cols} elements overflow size_t"))),
    }
}
