//! A reader's thread: its shards read sequentially, from a cursor, ahead of
//! the rank that takes them by at most [`READ_AHEAD`] samples and
//! [`READ_AHEAD_BYTES`].

use super::ShardStream;
use super::order::Sequence;
use crate::tar_walk::{Member, Walked, walk_shard};
use crate::{Problem, ProblemKind};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvError, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Samples a reader keeps ready: at LAION's ~30 KB a sample, about 8 MB.
const READ_AHEAD: usize = 256;
/// The most encoded bytes a reader holds ahead (one sample always fits),
/// however large its shards' samples are.
const READ_AHEAD_BYTES: u64 = 64 << 20;

/// A sample as read from its shard, not yet decoded.
#[derive(Clone, Debug)]
pub(crate) struct RawSample {
    pub at: SampleAt,
    pub image: Vec<u8>,
    pub caption: Vec<u8>,
}

impl RawSample {
    /// The encoded bytes it holds.
    pub(crate) fn bytes(&self) -> u64 {
        (self.image.len() + self.caption.len()) as u64
    }
}

/// Where a sample lies: enough to read it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SampleAt {
    pub shard: u32,
    /// Its number among the shard's complete samples.
    pub ordinal: u32,
    pub image: (u64, u64),
    pub caption: (u64, u64),
}

impl SampleAt {
    /// The id a batch reports for the sample: shard and ordinal in one number.
    pub(crate) fn id(&self) -> usize {
        ((self.shard as usize) << 32) | self.ordinal as usize
    }
}

/// Where a reader stands: the `shard`-th of its sequence, at byte `offset`
/// (a sample boundary), before its `ordinal`-th sample, with the first
/// `skip` problems there already reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ReaderAt {
    pub shard: u64,
    pub offset: u64,
    pub ordinal: u32,
    pub skip: u32,
}

pub(crate) enum Item {
    /// A sample, and where the sample after it begins.
    Sample(RawSample, u64),
    Problem(Problem),
    /// The shard ended: the reader moves to its next.
    ShardEnd,
    /// The sequence ended.
    Done,
}

/// The bytes of the samples between a reader's thread and its rank.
struct Budget {
    used: Mutex<u64>,
    changed: Condvar,
    /// The rank dropped the reader.
    closed: AtomicBool,
}

impl Budget {
    fn new() -> Self {
        Budget { used: Mutex::new(0), changed: Condvar::new(), closed: AtomicBool::new(false) }
    }

    /// Waits until `bytes` more fit, or none are held; `false` if the rank
    /// dropped the reader meanwhile.
    fn take(&self, bytes: u64) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while *used > 0 && *used + bytes > READ_AHEAD_BYTES {
            if self.closed.load(Ordering::Relaxed) {
                return false;
            }
            used =
                self.changed.wait_timeout(used, Duration::from_millis(100)).map_or_else(|p| p.into_inner().0, |w| w.0);
        }
        *used += bytes;
        true
    }

    fn give(&self, bytes: u64) {
        *self.used.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) -= bytes;
        self.changed.notify_all();
    }
}

/// The rank's end of a reader: its items in shard order.
pub(crate) struct ReaderHandle {
    items: Receiver<Item>,
    budget: Arc<Budget>,
}

impl ReaderHandle {
    /// The next item; an error if the reader's thread is gone (it panicked).
    pub(crate) fn recv(&self) -> std::result::Result<Item, RecvError> {
        let item = self.items.recv()?;
        if let Item::Sample(sample, _) = &item {
            self.budget.give(sample.bytes());
        }
        Ok(item)
    }
}

impl Drop for ReaderHandle {
    fn drop(&mut self) {
        self.budget.closed.store(true, Ordering::Relaxed);
        self.budget.changed.notify_all();
    }
}

/// Starts reading `sequence` from `at`.
pub(crate) fn start(stream: Arc<ShardStream>, sequence: Sequence, at: ReaderAt) -> std::io::Result<ReaderHandle> {
    let (send, items) = sync_channel(READ_AHEAD);
    let budget = Arc::new(Budget::new());
    let held = budget.clone();
    std::thread::Builder::new().name("reclip-shard-reader".into()).spawn(move || {
        // A failed send means the rank dropped this reader (a new epoch, a
        // rewind, the end): stop.
        let _ = read(&stream, &sequence, at, &send, &held);
    })?;
    Ok(ReaderHandle { items, budget })
}

fn read(
    stream: &ShardStream,
    sequence: &Sequence,
    mut at: ReaderAt,
    send: &SyncSender<Item>,
    budget: &Budget,
) -> ControlFlow<()> {
    let sent = |item: Item| {
        let fits = match &item {
            Item::Sample(sample, _) => budget.take(sample.bytes()),
            _ => true,
        };
        if fits && send.send(item).is_ok() { ControlFlow::Continue(()) } else { ControlFlow::Break(()) }
    };
    while let Some(shard) = sequence.shard(at.shard) {
        let path = stream.path(shard);
        let (mut ordinal, mut skip) = (at.ordinal, at.skip);
        walk_shard(path, at.offset, true, |walked| match walked {
            Walked::Problem(_) if skip > 0 => {
                skip -= 1;
                ControlFlow::Continue(())
            }
            Walked::Problem(problem) => sent(Item::Problem(problem)),
            Walked::Sample(sample) => {
                let place = |m: Member| (m.offset, m.len);
                let at = SampleAt { shard, ordinal, image: place(sample.image), caption: place(sample.caption) };
                match sample.data {
                    Some((image, caption)) => {
                        ordinal += 1;
                        sent(Item::Sample(RawSample { at, image, caption }, sample.end))
                    }
                    // The walk reads every member within its ceiling, and reports the others.
                    None => sent(Item::Problem(Problem::new(
                        ProblemKind::UnreadableFile,
                        format!("{}:{}", path.display(), sample.key),
                        "its members were not read",
                    ))),
                }
            }
        })?;
        sent(Item::ShardEnd)?;
        at = ReaderAt { shard: at.shard + 1, ..ReaderAt::default() };
    }
    sent(Item::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_ahead_waits_for_room_but_always_takes_one_sample() {
        let budget = Arc::new(Budget::new());
        assert!(budget.take(2 * READ_AHEAD_BYTES), "alone, a sample of any size fits");
        let waiting = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.take(1))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiting.is_finished(), "no room until the rank takes the first");
        budget.give(2 * READ_AHEAD_BYTES);
        assert!(waiting.join().unwrap());
        assert!(budget.take(READ_AHEAD_BYTES - 1), "filled to the byte");
        budget.closed.store(true, Ordering::Relaxed);
        let stopped = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.take(1))
        };
        assert!(!stopped.join().unwrap(), "a dropped reader's thread stops waiting");
    }
}
