//! How the attention kernels split the work: rows per block, pairs per block,
//! the streamed tile and the shared memory each kernel needs. The constants
//! mirror `Geometry` in kernels/attention.cu; the layout comment there
//! explains the design.

use reclip_core::{Error, Result};

/// The kernels' launch bound (with two blocks an SM: at most 96 registers).
pub const MAX_THREADS: usize = 320;
/// Output dimensions each thread accumulates.
const DIMS_PER_THREAD: usize = 8;
/// A block aims at this many useful threads out of those launched.
const MIN_USEFUL: f64 = 0.9;
/// Blocks of fewer threads than this are only used when nothing larger fits.
const MIN_THREADS: usize = 128;

/// Head widths the kernels are compiled for.
pub const HEAD_WIDTHS: [usize; 3] = [32, 64, 128];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiles {
    pub head_width: usize,
    /// Threads sharing one row.
    pub threads_per_row: usize,
    /// Tokens of the streamed side per shared-memory tile.
    pub tile: usize,
    /// Rows of one pair in a block.
    pub row_tile: usize,
    /// (batch, head) pairs per block.
    pub group_pairs: usize,
    pub threads: usize,
    pub grid: [u32; 3],
}

fn round_up(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}

impl Tiles {
    /// The launch for `pairs` sequences of `len` tokens (`len`, `pairs` ≥ 1).
    pub fn new(len: usize, head_width: usize, pairs: usize) -> Result<Self> {
        if !HEAD_WIDTHS.contains(&head_width) {
            return Err(Error::invalid(
                "attention",
                format!("head width {head_width} has no GPU kernel (compiled for {HEAD_WIDTHS:?})"),
            ));
        }
        let tpr = head_width / DIMS_PER_THREAD;
        let max_tile = if head_width == 64 { 64 } else { 32 };
        let max_rows = MAX_THREADS / tpr;
        let (tile, row_tile, group_pairs) = if len <= max_tile && len <= max_rows {
            // The whole sequence is one tile: pack pairs until the block is
            // mostly useful threads (17 tokens do not fill warps evenly).
            let per_pair = len * tpr;
            let most = (MAX_THREADS / per_pair).min(pairs).max(1);
            let useful = |g: usize| (g * per_pair) as f64 / round_up(g * per_pair, 32) as f64;
            let good = (1..=most).find(|&g| useful(g) >= MIN_USEFUL && (g * per_pair >= MIN_THREADS || g == most));
            let best = (1..=most).fold(1, |b, g| if useful(g) > useful(b) { g } else { b });
            (len, len, good.unwrap_or(best))
        } else {
            // Equal row tiles of at most `max_rows` rows, one pair a block.
            let row_tiles = len.div_ceil(max_rows);
            (len.min(max_tile), len.div_ceil(row_tiles), 1)
        };
        let threads = round_up(group_pairs * row_tile * tpr, 32);
        let grid_x = u32::try_from(pairs.div_ceil(group_pairs))
            .map_err(|_| Error::invalid("attention", format!("{pairs} (batch, head) pairs exceed the grid")))?;
        let grid_y = u32::try_from(len.div_ceil(row_tile))
            .ok()
            .filter(|&y| y <= 65535)
            .ok_or_else(|| Error::invalid("attention", format!("a sequence of {len} tokens exceeds the grid")))?;
        Ok(Tiles { head_width, threads_per_row: tpr, tile, row_tile, group_pairs, threads, grid: [grid_x, grid_y, 1] })
    }

    /// Row slots of a block (one per row group, idle ones included).
    pub fn slots(&self) -> usize {
        self.threads / self.threads_per_row
    }

    fn row_floats(&self) -> usize {
        self.head_width + 4
    }

    fn padded_tile(&self) -> usize {
        round_up(self.tile, 4)
    }

    /// Floats of one score line.
    fn line_floats(&self) -> usize {
        round_up(self.tile, 32) + 4
    }

    /// The streamed tiles of all the block's pairs: `count` tensors of rows.
    fn tile_floats(&self, count: usize) -> usize {
        count * self.group_pairs * self.padded_tile() * self.row_floats()
    }

    /// Q rows, K and V tiles, P lines.
    pub fn forward_shared_bytes(&self) -> usize {
        4 * (self.slots() * self.row_floats() + self.tile_floats(2) + self.slots() * self.line_floats())
    }

    /// Q and dO rows, K and V tiles, dS lines.
    pub fn dq_shared_bytes(&self) -> usize {
        4 * (2 * self.slots() * self.row_floats() + self.tile_floats(2) + self.slots() * self.line_floats())
    }

    /// K and V rows, Q and dO tiles, lse and D of the tile, P and dS lines.
    pub fn dkv_shared_bytes(&self) -> usize {
        let stats = 2 * self.group_pairs * self.padded_tile();
        4 * (2 * self.slots() * self.row_floats() + self.tile_floats(2) + stats + 2 * self.slots() * self.line_floats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_shapes_pack_pairs_or_split_rows() {
        let t = Tiles::new(17, 64, 1024).unwrap();
        assert_eq!((t.group_pairs, t.row_tile, t.threads, t.tile), (2, 17, 288, 17));
        let t = Tiles::new(17, 32, 1024).unwrap();
        assert_eq!((t.group_pairs, t.threads, t.tile), (3, 224, 17));
        let t = Tiles::new(197, 64, 1024).unwrap();
        assert_eq!((t.group_pairs, t.row_tile, t.threads, t.tile, t.grid), (1, 40, 320, 64, [1024, 5, 1]));
        let t = Tiles::new(77, 64, 1024).unwrap();
        assert_eq!((t.row_tile, t.threads, t.grid[1]), (39, 320, 2));
        // Too many rows for one block: two row tiles, one key tile.
        let t = Tiles::new(50, 64, 1024).unwrap();
        assert_eq!((t.group_pairs, t.row_tile, t.tile, t.threads), (1, 25, 50, 224));
        let t = Tiles::new(50, 32, 1024).unwrap();
        assert_eq!((t.row_tile, t.tile, t.threads), (50, 32, 224));
        // Never more pairs per block than there are pairs.
        assert_eq!(Tiles::new(17, 32, 2).unwrap().group_pairs, 2);
        assert!(Tiles::new(17, 48, 4).unwrap_err().to_string().contains("head width 48"));
    }

    #[test]
    fn every_length_fits_the_launch_limits() {
        for hw in HEAD_WIDTHS {
            for len in 1..=600 {
                for pairs in [1, 5, 1024] {
                    let t = Tiles::new(len, hw, pairs).unwrap();
                    let rows = t.group_pairs * t.row_tile;
                    assert!(t.threads <= MAX_THREADS && t.threads.is_multiple_of(32), "{t:?}");
                    assert!(rows * t.threads_per_row <= t.threads, "{t:?}");
                    assert!(t.grid[0] as usize * t.group_pairs >= pairs && t.grid[1] as usize * t.row_tile >= len);
                    assert!(t.tile <= 64 && (t.tile == len || t.group_pairs == 1), "{t:?}");
                    let most = [t.forward_shared_bytes(), t.dq_shared_bytes(), t.dkv_shared_bytes()];
                    assert!(most.iter().all(|&b| b <= 227 * 1024), "len {len} hw {hw}: {most:?}");
                }
            }
        }
    }
}
