//! Which shards each reader reads: the epoch's permutation split by rank
//! and by reader, or draws with replacement.

use crate::seed::mix;
use rand::Rng;
use rand::seq::SliceRandom;

// Distinguish the random streams drawn from one seed (the batch loader's are 1 to 3).
const SHARD_ORDER_STREAM: u64 = 4;
const SHARD_DRAW_STREAM: u64 = 5;
pub(super) const PICK_STREAM: u64 = 6;

/// Who reads: reader `reader` of `readers` on rank `rank` of `ranks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reader {
    pub rank: usize,
    pub ranks: usize,
    pub reader: usize,
    pub readers: usize,
}

/// The shards one reader reads in one pass of one epoch, in order.
#[derive(Clone, Debug)]
pub(crate) enum Sequence {
    /// Its share of the epoch's permutation.
    Share(Vec<u32>),
    /// Shard after shard drawn with replacement, without end.
    Draws { shards: u32, seed: u64 },
}

impl Sequence {
    pub(crate) fn new(shards: usize, resampled: bool, seed: u64, epoch: usize, pass: u32, who: Reader) -> Self {
        if resampled {
            let seed = mix(&[SHARD_DRAW_STREAM, seed, epoch as u64, pass as u64, who.rank as u64, who.reader as u64]);
            return Sequence::Draws { shards: shards as u32, seed };
        }
        let mut own: Vec<u32> =
            permutation(shards, seed, epoch).into_iter().skip(who.rank).step_by(who.ranks).collect();
        if pass > 0 {
            // A rank reading its shards again keeps them, in a new order.
            let key = [SHARD_ORDER_STREAM, seed, epoch as u64, pass as u64, who.rank as u64];
            own.shuffle(&mut reclip_core::rng(mix(&key)));
        }
        Sequence::Share(own.into_iter().skip(who.reader).step_by(who.readers).collect())
    }

    /// The `j`-th shard, if the sequence has one.
    pub(crate) fn shard(&self, j: u64) -> Option<u32> {
        match self {
            Sequence::Share(shards) => usize::try_from(j).ok().and_then(|j| shards.get(j).copied()),
            Sequence::Draws { shards, seed } => Some(reclip_core::rng(mix(&[*seed, j])).random_range(0..*shards)),
        }
    }
}

/// Epoch `epoch`'s order of the shards, the same on every rank.
fn permutation(shards: usize, seed: u64, epoch: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..shards as u32).collect();
    order.shuffle(&mut reclip_core::rng(mix(&[SHARD_ORDER_STREAM, seed, epoch as u64])));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(rank: usize, ranks: usize, reader: usize, readers: usize) -> Reader {
        Reader { rank, ranks, reader, readers }
    }

    fn share(seed: u64, epoch: usize, who: Reader) -> Vec<u32> {
        match Sequence::new(20, false, seed, epoch, 0, who) {
            Sequence::Share(s) => s,
            Sequence::Draws { .. } => unreachable!("not resampled"),
        }
    }

    #[test]
    fn epochs_permute_the_shards_anew_and_the_seed_repeats_them() {
        let whole = |seed, epoch| share(seed, epoch, reader(0, 1, 0, 1));
        assert_eq!(whole(7, 0), whole(7, 0));
        assert_ne!(whole(7, 0), whole(7, 1));
        assert_ne!(whole(7, 0), whole(8, 0));
        let mut sorted = whole(7, 3);
        sorted.sort();
        assert_eq!(sorted, (0..20).collect::<Vec<u32>>());
    }

    #[test]
    fn ranks_and_readers_split_the_epoch_into_disjoint_shares() {
        let mut all: Vec<u32> = Vec::new();
        for rank in 0..3 {
            for r in 0..2 {
                all.extend(share(5, 2, reader(rank, 3, r, 2)));
            }
        }
        all.sort();
        assert_eq!(all, (0..20).collect::<Vec<u32>>());
    }

    #[test]
    fn a_second_pass_reorders_only_the_ranks_own_shards() {
        let pass = |p| match Sequence::new(20, false, 5, 1, p, reader(1, 3, 0, 1)) {
            Sequence::Share(s) => s,
            Sequence::Draws { .. } => unreachable!("not resampled"),
        };
        let (mut first, mut second) = (pass(0), pass(1));
        assert_ne!(first, second);
        first.sort();
        second.sort();
        assert_eq!(first, second);
    }

    #[test]
    fn resampled_draws_repeat_with_the_seed_and_differ_between_readers() {
        let draws = |seed, w| {
            let sequence = Sequence::new(50, true, seed, 0, 0, reader(0, 1, w, 2));
            (0..40).map(|j| sequence.shard(j).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(draws(1, 0), draws(1, 0));
        assert_ne!(draws(1, 0), draws(1, 1));
        assert_ne!(draws(1, 0), draws(2, 0));
        let distinct: std::collections::BTreeSet<u32> = draws(1, 0).into_iter().collect();
        assert!(distinct.len() < 40, "40 draws from 50 shards repeat some");
    }
}
