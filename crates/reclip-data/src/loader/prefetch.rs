//! A background thread that keeps batches ready ahead of the trainer. It
//! makes them in order from the position the trainer last asked for; when a
//! request names another position or size, everything made ahead is dropped
//! (a generation counter also drops the batch being made) and it restarts there.

use super::{Batch, BatchSpec, Batches, Position};
use crate::{Error, Result};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

struct State {
    generation: u64,
    spec: Option<BatchSpec>,
    /// The position of the next batch handed out: the front of `ready`, or the one being made.
    head: Position,
    /// The position the thread makes next.
    next: Position,
    ready: VecDeque<Result<Batch>>,
    stop: bool,
    running: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    // The state stays consistent under a panic (no update spans a call that
    // can panic), so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(guard).unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(crate) struct Prefetcher {
    shared: Arc<Shared>,
    batches_per_epoch: usize,
    thread: Option<JoinHandle<()>>,
}

impl Prefetcher {
    pub(crate) fn start(maker: Arc<Batches>, depth: usize) -> Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                generation: 0,
                spec: None,
                head: Position::default(),
                next: Position::default(),
                ready: VecDeque::new(),
                stop: false,
                running: true,
            }),
            changed: Condvar::new(),
        });
        let worker = shared.clone();
        let batches_per_epoch = maker.batches_per_epoch();
        let thread = std::thread::Builder::new()
            .name("reclip-data-prefetch".into())
            .spawn(move || run(&worker, &maker, depth))
            .map_err(|e| Error::LoaderStopped(format!("it could not start: {e}")))?;
        Ok(Prefetcher { shared, batches_per_epoch, thread: Some(thread) })
    }

    pub(crate) fn take(&self, position: Position, spec: BatchSpec) -> Result<Batch> {
        let mut st = self.shared.lock();
        if st.spec != Some(spec) || st.head != position {
            st.generation += 1;
            st.ready.clear();
            st.spec = Some(spec);
            st.head = position;
            st.next = position;
            self.shared.changed.notify_all();
        }
        while st.ready.is_empty() {
            if !st.running {
                return Err(Error::LoaderStopped("it panicked; see the message above".into()));
            }
            st = self.shared.wait(st);
        }
        let batch = st.ready.pop_front().expect("waited for a ready batch");
        st.head = st.head.next(self.batches_per_epoch);
        self.shared.changed.notify_all();
        batch
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            // A panic in the thread was already reported to the trainer through `take`.
            let _ = thread.join();
        }
    }
}

/// Marks the thread as gone however it ends, so `take` never waits forever.
struct RunningFlag<'a>(&'a Shared);

impl Drop for RunningFlag<'_> {
    fn drop(&mut self) {
        self.0.lock().running = false;
        self.0.changed.notify_all();
    }
}

fn run(shared: &Shared, maker: &Batches, depth: usize) {
    let _flag = RunningFlag(shared);
    loop {
        let (generation, spec, position) = {
            let mut st = shared.lock();
            loop {
                if st.stop {
                    return;
                }
                if let Some(spec) = st.spec
                    && st.ready.len() < depth
                {
                    let position = st.next;
                    st.next = position.next(maker.batches_per_epoch());
                    break (st.generation, spec, position);
                }
                st = shared.wait(st);
            }
        };
        let batch = maker.make(position, spec);
        let mut st = shared.lock();
        if st.generation == generation {
            st.ready.push_back(batch);
            shared.changed.notify_all();
        }
    }
}
