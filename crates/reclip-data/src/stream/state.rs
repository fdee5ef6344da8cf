//! A rank's place in its stream, as a checkpoint records it.

use super::reader::{ReaderAt, SampleAt};
use crate::limits::{CAPTION, IMAGE_FILE};
use crate::{Error, Position, Result};
use serde::{Deserialize, Serialize};

/// What a stream's order depends on besides the data: a state resumes only
/// a stream with the same layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Layout {
    pub source: String,
    pub shards: usize,
    pub seed: u64,
    pub rank: usize,
    pub ranks: usize,
    pub readers: usize,
    pub shuffle_buffer: usize,
    pub resampled: bool,
    pub samples_per_epoch: u64,
    pub batch_size: usize,
}

impl Layout {
    /// Why a stream laid out as `self` cannot continue from a state saved
    /// with `saved`, naming the first thing that differs.
    fn refuse(&self, saved: &Layout) -> Option<String> {
        let differs = |what: &str, then: String, now: String| {
            Some(format!("the checkpoint's stream had {what} {then}, this run has {now}"))
        };
        if saved.ranks != self.ranks {
            return differs(
                "ranks",
                saved.ranks.to_string(),
                format!("{} (streamed shards resume only on as many ranks: each reads its own)", self.ranks),
            );
        }
        let fields: [(&str, String, String); 9] = [
            ("rank", saved.rank.to_string(), self.rank.to_string()),
            ("data", format!("{:?}", saved.source), format!("{:?}", self.source)),
            ("shards", saved.shards.to_string(), self.shards.to_string()),
            ("seed", saved.seed.to_string(), self.seed.to_string()),
            ("readers per rank", saved.readers.to_string(), self.readers.to_string()),
            ("shuffle buffer", saved.shuffle_buffer.to_string(), self.shuffle_buffer.to_string()),
            ("resampled", saved.resampled.to_string(), self.resampled.to_string()),
            ("samples per epoch", saved.samples_per_epoch.to_string(), self.samples_per_epoch.to_string()),
            ("batch size", saved.batch_size.to_string(), self.batch_size.to_string()),
        ];
        fields.into_iter().find(|(_, then, now)| then != now).and_then(|(what, then, now)| differs(what, then, now))
    }
}

/// Where one rank stands in its stream after a batch: enough to continue
/// with the same samples in the same order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    pub(crate) layout: Layout,
    pub(crate) epoch: usize,
    pub(crate) batch: usize,
    /// Passes over the rank's shards in this epoch before the current one.
    pub(crate) pass: u32,
    /// Samples read in the current pass (none in a whole pass: no usable data).
    pub(crate) pass_samples: u64,
    /// Passes beyond the first, over the whole run (for the report).
    pub(crate) extra_passes: u64,
    /// The reader the next sample is taken from.
    pub(crate) turn: usize,
    /// Samples handed out in this epoch.
    pub(crate) handed: u64,
    /// Each reader's place; `None` once it has read all its shards.
    pub(crate) readers: Vec<Option<ReaderAt>>,
    /// The shuffle buffer's samples, in order.
    pub(crate) buffer: Vec<SampleAt>,
}

impl StreamState {
    /// The batch the stream makes next.
    pub fn position(&self) -> Position {
        Position { epoch: self.epoch, batch: self.batch }
    }

    /// The rank whose stream this is.
    pub fn rank(&self) -> usize {
        self.layout.rank
    }

    /// The state as bytes, for a checkpoint.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a stream state serialises")
    }

    /// A state from [`StreamState::to_bytes`]; `what` names the bytes in an error.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::option("stream state", format!("{what} is not a stream state: {e}")))
    }

    /// The start of epoch `epoch`: every reader at its first shard, the buffer empty.
    pub(crate) fn epoch_start(layout: Layout, epoch: usize) -> Self {
        let readers = vec![Some(ReaderAt::default()); layout.readers];
        StreamState {
            layout,
            epoch,
            batch: 0,
            pass: 0,
            pass_samples: 0,
            extra_passes: 0,
            turn: 0,
            handed: 0,
            readers,
            buffer: Vec::new(),
        }
    }

    /// Why this state cannot continue a stream laid out as `layout`, of
    /// `batches_per_epoch` batches over `shards` shards, if it cannot: a
    /// state read from a checkpoint is checked before anything is read for it.
    pub(crate) fn check(&self, layout: &Layout, batches_per_epoch: usize, shards: usize) -> Result<()> {
        if let Some(reason) = layout.refuse(&self.layout) {
            return Err(Error::option("stream state", reason));
        }
        let fits = |at: &SampleAt| {
            (at.shard as usize) < shards && at.image.1 <= IMAGE_FILE.bytes && at.caption.1 <= CAPTION.bytes
        };
        if self.batch >= batches_per_epoch
            || self.readers.len() != layout.readers
            || self.buffer.len() > layout.shuffle_buffer
            || !self.buffer.iter().all(fits)
        {
            return Err(Error::option("stream state", "its position or buffer does not fit this stream"));
        }
        Ok(())
    }
}
