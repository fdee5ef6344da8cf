//! How the tensor-core attention kernels (kernels/attention_mma.cu) split the
//! work: 16 rows a warp, up to 4 warps a block, the pair's other side whole
//! in shared memory. The constants mirror that file's `Geometry`; its header
//! explains the design.

use reclip_core::{Error, Result};

/// Longest sequence the tensor-core kernels take: the other side of a pair
/// (K and V, or Q and dO) must fit shared memory whole.
pub const MMA_MAX_LEN: usize = 256;
const ROWS_PER_WARP: usize = 16;
const MAX_WARPS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmaTiles {
    pub head_width: usize,
    pub len: usize,
    /// Warps of a block, each owning 16 rows.
    pub warps: usize,
    /// Blocks per (batch, head) pair; a pair's blocks are adjacent in the grid.
    pub blocks_per_pair: usize,
    pub grid: [u32; 3],
}

impl MmaTiles {
    /// The launch for `pairs` sequences of `len` tokens (1 ≤ `len` ≤
    /// [`MMA_MAX_LEN`]), or `None` when the sequence is too long for them.
    pub fn new(len: usize, head_width: usize, pairs: usize) -> Result<Option<Self>> {
        if !(1..=MMA_MAX_LEN).contains(&len) {
            return Ok(None);
        }
        // Equal blocks of at most 4 warps: 13 row tiles (L = 197) make 4
        // blocks of 4 warps, 5 tiles (L = 77) 2 blocks of 3.
        let row_tiles = len.div_ceil(ROWS_PER_WARP);
        let blocks_per_pair = row_tiles.div_ceil(MAX_WARPS);
        let warps = row_tiles.div_ceil(blocks_per_pair);
        let blocks = pairs
            .checked_mul(blocks_per_pair)
            .and_then(|b| u32::try_from(b).ok())
            .filter(|&b| b <= i32::MAX as u32)
            .ok_or_else(|| Error::invalid("attention", format!("{pairs} (batch, head) pairs exceed the grid")))?;
        Ok(Some(MmaTiles { head_width, len, warps, blocks_per_pair, grid: [blocks, 1, 1] }))
    }

    pub fn threads(&self) -> usize {
        32 * self.warps
    }

    fn rows(&self) -> usize {
        ROWS_PER_WARP * self.warps
    }

    fn padded_len(&self) -> usize {
        self.len.div_ceil(ROWS_PER_WARP) * ROWS_PER_WARP
    }

    /// Bytes of `rows` shared bf16 rows (head width + 8 each).
    fn row_bytes(&self, rows: usize) -> usize {
        2 * rows * (self.head_width + 8)
    }

    /// Q rows, K and V of the pair.
    pub fn forward_shared_bytes(&self) -> usize {
        self.row_bytes(self.rows() + 2 * self.padded_len())
    }

    /// Q and dO rows, K and V of the pair, each row's D.
    pub fn dq_shared_bytes(&self) -> usize {
        self.row_bytes(2 * self.rows() + 2 * self.padded_len()) + 4 * self.rows()
    }

    /// K and V rows, Q and dO of the pair, each query's lse and D.
    pub fn dkv_shared_bytes(&self) -> usize {
        self.row_bytes(2 * self.rows() + 2 * self.padded_len()) + 8 * self.padded_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiles::HEAD_WIDTHS;

    #[test]
    fn clip_lengths_split_into_equal_blocks() {
        let at = |len| MmaTiles::new(len, 64, 10).unwrap().unwrap();
        assert_eq!((at(17).warps, at(17).blocks_per_pair), (2, 1));
        assert_eq!((at(50).warps, at(50).blocks_per_pair), (4, 1));
        assert_eq!((at(77).warps, at(77).blocks_per_pair), (3, 2));
        assert_eq!((at(197).warps, at(197).blocks_per_pair, at(197).grid), (4, 4, [40, 1, 1]));
        assert_eq!(MmaTiles::new(257, 64, 1).unwrap(), None);
    }

    #[test]
    fn every_length_fits_shared_memory_and_covers_its_rows() {
        for hw in HEAD_WIDTHS {
            for len in 1..=MMA_MAX_LEN {
                let t = MmaTiles::new(len, hw, 3).unwrap().unwrap();
                assert!(t.warps <= MAX_WARPS && t.blocks_per_pair * t.rows() >= len, "{t:?}");
                assert!((t.blocks_per_pair - 1) * t.rows() < len, "an idle block: {t:?}");
                let most = [t.forward_shared_bytes(), t.dq_shared_bytes(), t.dkv_shared_bytes()];
                assert!(most.iter().all(|&b| b <= 227 * 1024), "len {len} hw {hw}: {most:?}");
            }
        }
        let err = MmaTiles::new(17, 64, usize::MAX / 2).unwrap_err().to_string();
        assert!(err.contains("exceed the grid"), "{err}");
    }
}
