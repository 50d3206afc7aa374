//! Where CPU work runs: on rayon's global pool, entered once per job rather than once per op.
//!
//! Why: every CPU op splits its work with rayon. Called from a thread outside the pool, each op injects
//! its tasks into the pool and the caller sleeps until a worker wakes it: two context switches per op, a
//! few hundred per training step. Measured on GalacticFlow's NSF (2-core AMD EPYC, 2026-12-02): one thread
//! trained 2,895 stars/s from outside the pool and 3,594 from inside it, with voluntary context switches
//! falling from 34,426 to 3 over the run; two threads kept their speed with 3x fewer switches.
//! Entering the pool once around the whole job (`gforge`'s main, each C API call, the speed examples)
//! leaves only the hand-offs between the workers themselves.

/// Runs `f` on a worker of the global pool and waits for it; runs it in place if this thread already is
/// one. A panic in `f` resumes on the calling thread.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    // `scope` called from outside the pool runs its body on a worker and blocks this thread until done.
    rayon::scope(|_| f())
}

#[cfg(test)]
mod tests {
    use super::on_pool;

    #[test]
    fn the_job_runs_on_a_worker_and_nests() {
        assert_eq!(rayon::current_thread_index(), None);
        let (outer, inner) = on_pool(|| (rayon::current_thread_index(), on_pool(rayon::current_thread_index)));
        assert!(outer.is_some());
        assert_eq!(outer, inner);
    }

    #[test]
    fn a_panic_reaches_the_caller() {
        let r = std::panic::catch_unwind(|| on_pool(|| panic!("inside")));
        assert!(r.is_err());
    }
}
