//! How the `reclip` binary sets up mimalloc, its global allocator.
//!
//! A CPU training step allocates and frees the same activations every step.
//! By default mimalloc hands freed memory back to the OS after a delay, and
//! its large blocks at once, so every step faulted in fresh pages that the
//! kernel zeroed first: 13 221 page faults (most of them 2 MiB pages) and a
//! sixth of the CPU time in 23 steps of the CPU peer model at 64 px
//! (BENCHMARKS.md, "CPU training against PyTorch"). Kept, the memory is
//! reused from the second step on; the process keeps its peak resident
//! size until it exits, which a training run reaches every step anyway.

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (mimalloc v3, which
/// libmimalloc-sys builds by default; the crate names no constant for it).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never purge freed memory (mimalloc's `purge_delay` = -1), unless the user
/// set `MIMALLOC_PURGE_DELAY` themselves. Call it first thing in `main`.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's option values; mimalloc reads it
        // whenever it decides whether to purge, and has no other
        // precondition.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_set_is_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads an option value.
        let default = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        // mimalloc v3's purge delay is 1000 ms, a default no neighbouring option shares.
        assert_eq!(default, 1000, "option {PURGE_DELAY} is not mimalloc's purge_delay");
        keep_freed_memory();
        // SAFETY: as above.
        let set = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        assert_eq!(set, -1);
    }
}
