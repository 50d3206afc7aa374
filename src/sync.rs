//! Locks that never panic. Every lock in the crate guards a cache, a buffer pool, an error list, a queue of
//! recorded GPU passes or a parameter's value, each valid after every step of every update (an insert, an
//! assignment, one recorded pass). So a panic while a guard was held (caught at the C API's boundary, or in
//! another thread) leaves nothing half-written, and a poisoned lock is taken as it is instead of turning
//! one bug into a panic in every later call.
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

// Only the GPU backends lock a Mutex.
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(PoisonError::into_inner)
}
