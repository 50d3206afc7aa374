//! A caching global allocator for programs that train on the CPU (`gforge` and the speed examples install
//! it with `#[global_allocator]`; a library never does).
//!
//! Why: every CPU op returns a fresh buffer, and a training step frees and re-allocates the same large
//! buffers (activations, im2col matrices, gradients, Adam moments) every step. glibc serves blocks above
//! its mmap threshold (at most 32 MiB) with mmap and returns them with munmap, so each step paid for page
//! faults, page zeroing and TLB shoot-downs: on the 448-pixel autoencoder ~40% of the time was in the
//! kernel. This allocator keeps freed blocks of at least 1 MiB (up to `cap` bytes in all) and hands one
//! back when a block of exactly the same size is asked for, which in a training loop is nearly always.
//! Smaller blocks go straight to the system allocator. No allocation happens inside the allocator: the
//! cache is a fixed array of slots behind a spin lock.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// Blocks smaller than this are not cached.
const MIN: usize = 1 << 20;
const SLOTS: usize = 512;

pub struct CachingAlloc {
    lock: AtomicBool,
    /// (size, address) of each cached block; address 0 marks an empty slot.
    slots: UnsafeCell<[(usize, usize); SLOTS]>,
    cached: UnsafeCell<usize>,
    cap: usize,
}

// SAFETY: `slots` and `cached` are only touched while `lock` is held.
unsafe impl Sync for CachingAlloc {}

impl CachingAlloc {
    /// An allocator that keeps at most `cap` bytes of freed large blocks.
    pub const fn new(cap: usize) -> CachingAlloc {
        CachingAlloc {
            lock: AtomicBool::new(false),
            slots: UnsafeCell::new([(0, 0); SLOTS]),
            cached: UnsafeCell::new(0),
            cap,
        }
    }

    fn with_lock<T>(&self, f: impl FnOnce(&mut [(usize, usize); SLOTS], &mut usize) -> T) -> T {
        while self.lock.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::hint::spin_loop();
        }
        // SAFETY: the lock gives exclusive access until it is released below.
        let r = unsafe { f(&mut *self.slots.get(), &mut *self.cached.get()) };
        self.lock.store(false, Ordering::Release);
        r
    }

    /// A cached block of exactly `layout.size()` bytes with the alignment asked for, if there is one.
    fn take(&self, layout: Layout) -> Option<*mut u8> {
        self.with_lock(|slots, cached| {
            let i = slots.iter().position(|&(s, p)| p != 0 && s == layout.size() && p % layout.align() == 0)?;
            let p = slots[i].1;
            slots[i] = (0, 0);
            *cached -= layout.size();
            Some(p as *mut u8)
        })
    }

    /// Keeps a freed block if it fits in the cache; false if the caller must free it.
    fn keep(&self, ptr: *mut u8, size: usize) -> bool {
        self.with_lock(|slots, cached| {
            if *cached + size > self.cap {
                return false;
            }
            let Some(i) = slots.iter().position(|&(_, p)| p == 0) else { return false };
            slots[i] = (size, ptr as usize);
            *cached += size;
            true
        })
    }
}

unsafe impl GlobalAlloc for CachingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN {
            if let Some(p) = self.take(layout) {
                return p;
            }
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN {
            if let Some(p) = self.take(layout) {
                std::ptr::write_bytes(p, 0, layout.size());
                return p;
            }
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= MIN && self.keep(ptr, layout.size()) {
            return;
        }
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() < MIN && new_size < MIN {
            return System.realloc(ptr, layout, new_size);
        }
        // SAFETY (caller's contract): `layout` describes `ptr`; the new layout keeps its alignment.
        let new = Layout::from_size_align_unchecked(new_size, layout.align());
        let p = self.alloc(new);
        if !p.is_null() {
            std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_exact_sizes_and_respects_the_cap() {
        let a = CachingAlloc::new(3 << 20);
        let big = Layout::from_size_align(2 << 20, 64).unwrap();
        unsafe {
            let p = a.alloc(big);
            p.write_bytes(7, big.size());
            a.dealloc(p, big);
            // Same size: the same block, zeroed when asked.
            let q = a.alloc_zeroed(big);
            assert_eq!(p, q);
            assert!(std::slice::from_raw_parts(q, big.size()).iter().all(|&b| b == 0));
            // Another size is not served from the cache.
            let other = Layout::from_size_align(3 << 20, 64).unwrap();
            let r = a.alloc(other);
            assert_ne!(r, q);
            a.dealloc(q, big);
            // Over the cap: freed for real, the cache keeps only the first.
            a.dealloc(r, other);
            assert_eq!(a.with_lock(|_, c| *c), 2 << 20);
            // Growing a block copies its bytes.
            let s = a.alloc(Layout::from_size_align(1 << 10, 8).unwrap());
            s.write_bytes(3, 1 << 10);
            let t = a.realloc(s, Layout::from_size_align(1 << 10, 8).unwrap(), 4 << 20);
            assert!(std::slice::from_raw_parts(t, 1 << 10).iter().all(|&b| b == 3));
            a.dealloc(t, Layout::from_size_align(4 << 20, 8).unwrap());
        }
    }
}
