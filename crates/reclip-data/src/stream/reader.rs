//! A reader's thread: its shards read sequentially, from a cursor, a
//! bounded number of samples ahead of the rank that takes them.

use super::ShardStream;
use super::order::Sequence;
use crate::tar_walk::{Member, Walked, walk_shard};
use crate::{Problem, ProblemKind};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Samples a reader keeps ready: at LAION's ~30 KB a sample, about 8 MB.
const READ_AHEAD: usize = 256;

/// A sample as read from its shard, not yet decoded.
#[derive(Clone, Debug)]
pub(crate) struct RawSample {
    pub at: SampleAt,
    pub image: Vec<u8>,
    pub caption: Vec<u8>,
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

/// Starts reading `sequence` from `at`.
pub(crate) fn start(stream: Arc<ShardStream>, sequence: Sequence, at: ReaderAt) -> std::io::Result<Receiver<Item>> {
    let (send, receive) = sync_channel(READ_AHEAD);
    std::thread::Builder::new().name("reclip-shard-reader".into()).spawn(move || {
        // A failed send means the rank dropped this reader (a new epoch, a
        // rewind, the end): stop.
        let _ = read(&stream, &sequence, at, &send);
    })?;
    Ok(receive)
}

fn read(stream: &ShardStream, sequence: &Sequence, mut at: ReaderAt, send: &SyncSender<Item>) -> ControlFlow<()> {
    let sent = |item| if send.send(item).is_ok() { ControlFlow::Continue(()) } else { ControlFlow::Break(()) };
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
