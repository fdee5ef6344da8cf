//! A rank's cursor through its stream: its readers taken in turn, the
//! shuffle buffer, epochs and passes; its state saved after each batch and
//! restored to resume or to rewind.

use super::ShardStream;
use super::order::{PICK_STREAM, Reader, Sequence};
use super::reader::{self, Item, RawSample, ReaderAt, ReaderHandle};
use super::state::{Layout, StreamState};
use crate::seed::mix;
use crate::webdataset::read_at;
use crate::{DataReport, Error, Position, Result};
use std::sync::{Arc, Mutex};

/// The most encoded bytes the shuffle buffer holds, whatever its size in
/// samples: 5000 of LAION's ~30 KB samples are 150 MB, 5000 originals of a
/// few MB each would be tens of GB.
pub(crate) const MAX_BUFFER_BYTES: u64 = 2 << 30;

/// A reader that has gone through this many shards more than the dataset
/// holds without a sample (resampled shards that are all bad) is done.
const EMPTY_SHARDS_SLACK: usize = 8;

struct Live {
    at: ReaderAt,
    /// `None` once the reader has read all its shards.
    items: Option<ReaderHandle>,
    empty_shards: usize,
}

pub(crate) struct Cursor {
    stream: Arc<ShardStream>,
    layout: Layout,
    batches_per_epoch: usize,
    epoch: usize,
    batch: usize,
    pass: u32,
    pass_samples: u64,
    extra_passes: u64,
    turn: usize,
    handed: u64,
    /// Encoded bytes the buffer holds.
    buffered_bytes: u64,
    readers: Vec<Live>,
    buffer: Vec<RawSample>,
    problems: Arc<Mutex<DataReport>>,
}

impl Cursor {
    /// A cursor continuing from `state` (checked against `layout`):
    /// readers started at their places, the buffer read back from its
    /// shards. A buffered sample that can no longer be read (its shard
    /// changed) is reported and left out.
    pub(crate) fn from_state(
        stream: Arc<ShardStream>,
        layout: Layout,
        batches_per_epoch: usize,
        problems: Arc<Mutex<DataReport>>,
        state: &StreamState,
    ) -> Result<Self> {
        state.check(&layout, batches_per_epoch, stream.shards())?;
        let mut cursor = Cursor {
            epoch: state.epoch,
            batch: state.batch,
            pass: state.pass,
            pass_samples: state.pass_samples,
            extra_passes: state.extra_passes,
            turn: state.turn % layout.readers,
            handed: state.handed,
            buffered_bytes: 0,
            readers: Vec::new(),
            buffer: Vec::new(),
            stream,
            layout,
            batches_per_epoch,
            problems,
        };
        cursor.start_readers(&state.readers)?;
        for at in &state.buffer {
            let path = cursor.stream.path(at.shard);
            let read = |(offset, len): (u64, u64)| read_at(path, offset, len);
            match read(at.image).and_then(|image| Ok((image, read(at.caption)?))) {
                Ok((image, caption)) => cursor.push(RawSample { at: *at, image, caption }),
                Err(e) => cursor.problems.lock().expect("problem log poisoned").record(e.into_problem(format!(
                    "{}: a buffered sample at byte {}",
                    path.display(),
                    at.image.0
                ))),
            }
        }
        Ok(cursor)
    }

    /// The batch the cursor makes next.
    pub(crate) fn position(&self) -> Position {
        Position { epoch: self.epoch, batch: self.batch }
    }

    /// Moves to the start of epoch `epoch`: readers afresh, the buffer empty.
    fn start_epoch(&mut self, epoch: usize) -> Result<()> {
        (self.epoch, self.batch, self.handed) = (epoch, 0, 0);
        self.start_pass(0)
    }

    fn start_pass(&mut self, pass: u32) -> Result<()> {
        (self.pass, self.pass_samples, self.turn) = (pass, 0, 0);
        self.clear_buffer();
        let start = vec![Some(ReaderAt::default()); self.layout.readers];
        self.start_readers(&start)
    }

    fn start_readers(&mut self, places: &[Option<ReaderAt>]) -> Result<()> {
        self.readers.clear();
        for (w, at) in places.iter().enumerate() {
            let who = Reader { rank: self.layout.rank, ranks: self.layout.ranks, reader: w, readers: places.len() };
            let sequence = Sequence::new(
                self.stream.shards(),
                self.layout.resampled,
                self.layout.seed,
                self.epoch,
                self.pass,
                who,
            );
            let items = match at {
                Some(at) if sequence.shard(at.shard).is_some() => Some(
                    reader::start(self.stream.clone(), sequence, *at)
                        .map_err(|e| Error::LoaderStopped(format!("a shard reader could not start: {e}")))?,
                ),
                _ => None,
            };
            self.readers.push(Live { at: at.unwrap_or_default(), items, empty_shards: 0 });
        }
        Ok(())
    }

    fn clear_buffer(&mut self) {
        self.buffer.clear();
        self.buffered_bytes = 0;
    }

    fn push(&mut self, sample: RawSample) {
        self.buffered_bytes += sample.bytes();
        self.buffer.push(sample);
    }

    /// The next sample out of the shuffle buffer, topped up first to its
    /// size in samples (or [`MAX_BUFFER_BYTES`]).
    pub(crate) fn next_sample(&mut self) -> Result<RawSample> {
        loop {
            while self.buffer.len() < self.layout.shuffle_buffer && self.buffered_bytes < MAX_BUFFER_BYTES {
                match self.pull()? {
                    Some(sample) => self.push(sample),
                    None => break,
                }
            }
            if self.buffer.is_empty() {
                if self.pass_samples == 0 {
                    let found = format!("rank {}'s shards hold no sample", self.layout.rank);
                    let report = self.problems.lock().expect("problem log poisoned").clone();
                    return Err(Error::no_usable_sample(self.stream.source(), found, report));
                }
                // The rank's share of the epoch is not made yet: read its shards again.
                self.extra_passes += 1;
                self.start_pass(self.pass + 1)?;
                continue;
            }
            let key = [PICK_STREAM, self.layout.seed, self.epoch as u64, self.layout.rank as u64, self.handed];
            let place = (mix(&key) % self.buffer.len() as u64) as usize;
            self.handed += 1;
            let sample = self.buffer.swap_remove(place);
            self.buffered_bytes -= sample.bytes();
            return Ok(sample);
        }
    }

    /// Counts a batch made; past the epoch's last, the next epoch begins.
    pub(crate) fn end_batch(&mut self) -> Result<()> {
        self.batch += 1;
        if self.batch >= self.batches_per_epoch {
            self.start_epoch(self.epoch + 1)?;
        }
        Ok(())
    }

    /// The next sample read, taking the readers in turn; `None` once all are done.
    fn pull(&mut self) -> Result<Option<RawSample>> {
        let n = self.readers.len();
        let slack = self.stream.shards() + EMPTY_SHARDS_SLACK;
        loop {
            let Some(w) = (0..n).map(|i| (self.turn + i) % n).find(|&w| self.readers[w].items.is_some()) else {
                return Ok(None);
            };
            let live = &mut self.readers[w];
            let item = live.items.as_ref().expect("a live reader").recv();
            match item {
                Err(_) => return Err(Error::LoaderStopped("a shard reader panicked; see the message above".into())),
                Ok(Item::Problem(problem)) => {
                    live.at.skip += 1;
                    self.problems.lock().expect("problem log poisoned").record(problem);
                }
                Ok(Item::ShardEnd) => {
                    live.at = ReaderAt { shard: live.at.shard + 1, ..ReaderAt::default() };
                    live.empty_shards += 1;
                    if live.empty_shards > slack {
                        live.items = None;
                    }
                }
                Ok(Item::Done) => live.items = None,
                Ok(Item::Sample(sample, end)) => {
                    live.at = ReaderAt { shard: live.at.shard, offset: end, ordinal: sample.at.ordinal + 1, skip: 0 };
                    live.empty_shards = 0;
                    self.turn = (w + 1) % n;
                    self.pass_samples += 1;
                    return Ok(Some(sample));
                }
            }
        }
    }

    pub(crate) fn snapshot(&self) -> StreamState {
        StreamState {
            layout: self.layout.clone(),
            epoch: self.epoch,
            batch: self.batch,
            pass: self.pass,
            pass_samples: self.pass_samples,
            extra_passes: self.extra_passes,
            turn: self.turn,
            handed: self.handed,
            readers: self.readers.iter().map(|r| r.items.as_ref().map(|_| r.at)).collect(),
            buffer: self.buffer.iter().map(|s| s.at).collect(),
        }
    }
}
