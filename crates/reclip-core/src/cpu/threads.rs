//! Where a command's CPU work runs: on a thread of rayon's pool.
//!
//! Every CPU op splits its work with rayon. Called from a thread outside the
//! pool, each op is handed to the pool whole while the caller sleeps on a
//! lock until it is done: two futex calls and a wake-up per op, thousands per
//! training step (on two cores, a fifth of the default run's 32 px phase went
//! to them and to the system time they cost). Called from a pool thread, the
//! op's first half runs at once on that thread while the others steal the
//! rest, and nothing sleeps unless a thread runs out of work.

/// Runs `work` on a thread of rayon's global pool (at once when this is one)
/// and returns what it returns; a panic in it resumes here.
///
/// Start the pool first when its size matters (`ThreadPoolBuilder::build_global`):
/// this starts it with rayon's defaults otherwise.
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

#[cfg(test)]
mod tests {
    use super::on_pool;

    #[test]
    fn work_runs_on_a_pool_thread_and_returns_its_value() {
        assert_eq!(rayon::current_thread_index(), None, "the test harness's thread is not a pool thread");
        let (index, sum) = on_pool(|| (rayon::current_thread_index(), (1..=10u32).sum::<u32>()));
        assert!(index.is_some());
        assert_eq!(sum, 55);
        // Nested: already on the pool, it runs in place.
        assert!(on_pool(|| on_pool(rayon::current_thread_index).is_some()));
    }
}
