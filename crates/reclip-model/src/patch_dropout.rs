//! FLIP's patch dropout as open_clip's `PatchDropout` does it: in training,
//! each image keeps its class token and a random subset of its patch tokens,
//! after the positional embedding is added (so the kept tokens carry their
//! places) and before `ln_pre`. Fewer tokens through the transformer is the
//! saving; evaluation keeps every token.
//!
//! The subsets are drawn from the run's seed, the step and each image's
//! place in the global batch, never from a stream shared between images:
//! so every rank of a data-parallel run, each micro-batch of an accumulated
//! step and a resumed run draw the same patches for the same image.

use reclip_autograd::Var;
use reclip_core::{Error, Indices, Result};

const OP: &str = "patch_dropout";

/// Patch dropout for the images of one training step: each image drops a
/// share `prob` of its patches, drawn from the run's `seed`, the `step`
/// and its place in the step's global batch, the first image being the
/// global batch's row `first_row` (a rank's, or a micro-batch's, offset).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PatchDropout {
    pub prob: f64,
    pub seed: u64,
    pub step: u64,
    pub first_row: u64,
}

impl PatchDropout {
    /// The same step's dropout for the images from `offset` on (a
    /// micro-batch of these images).
    pub fn from_row(self, offset: usize) -> Self {
        PatchDropout { first_row: self.first_row + offset as u64, ..self }
    }

    /// The patches each of `batch` images of `patches` patches keeps.
    pub fn subsets(&self, batch: usize, patches: usize) -> Vec<Vec<u32>> {
        let keep = kept(patches, self.prob);
        (0..batch as u64).map(|b| draw(self.seed, self.step, self.first_row + b, patches, keep)).collect()
    }
}

/// Patches an image keeps of `patches` at dropout probability `prob`:
/// open_clip's `max(1, int(num_tokens * (1 - prob)))`.
pub fn kept(patches: usize, prob: f64) -> usize {
    ((patches as f64 * (1.0 - prob)) as usize).max(1)
}

/// The patches (0-based, among `patches`) that the image at global place
/// `row` keeps at step `step` of a run seeded `seed`: `keep` distinct
/// patches, a uniform random subset, in ascending order.
pub fn draw(seed: u64, step: u64, row: u64, patches: usize, keep: usize) -> Vec<u32> {
    use rand::seq::index::sample;
    // One stream per (seed, step, row): SplitMix-style mixing keeps nearby
    // rows' streams unrelated.
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let key = mix(mix(mix(seed) ^ step) ^ row);
    let mut rng = reclip_core::rng(key);
    let mut kept: Vec<u32> = sample(&mut rng, patches, keep.min(patches)).into_iter().map(|i| i as u32).collect();
    kept.sort_unstable();
    kept
}

/// The tokens `x` [B, 1 + N, width] keep: each image's class token, then
/// its patches `kept[b]` (each 0-based among the N patches, all images the
/// same count), as [B, 1 + K, width], with gradient.
pub fn drop_patches(x: &Var, kept: &[Vec<u32>]) -> Result<Var> {
    let (batch, tokens, _) = token_dims(x)?;
    let rows = kept_rows(kept, batch, tokens)?;
    let len = rows.len();
    gather_kept(x, &Indices::from_vec(OP, rows, [len], batch * tokens, x.tensor().device())?)
}

/// Where the tokens `kept` keeps lie among B images' 1 + N tokens,
/// flattened (row b·(1 + N) is image b's class token): each image's class
/// token, then its kept patches, image by image. What [`gather_kept`] takes.
pub fn kept_rows(kept: &[Vec<u32>], batch: usize, tokens: usize) -> Result<Vec<u32>> {
    let keep = kept.first().map_or(0, Vec::len);
    if kept.len() != batch || kept.iter().any(|k| k.len() != keep) || tokens == 0 {
        return Err(Error::invalid(
            OP,
            format!(
                "{} subsets of patches for {batch} images (all of one size, of {} patches)",
                kept.len(),
                tokens.saturating_sub(1)
            ),
        ));
    }
    let mut rows = Vec::with_capacity(batch * (1 + keep));
    for (b, k) in kept.iter().enumerate() {
        let first = (b * tokens) as u32;
        rows.push(first);
        for &p in k {
            if p as usize + 1 >= tokens {
                return Err(Error::invalid(OP, format!("patch {p} of image {b} is beyond its {} patches", tokens - 1)));
            }
            rows.push(first + 1 + p);
        }
    }
    Ok(rows)
}

/// `x` [B, T, width] at the flattened rows `rows` ([`kept_rows`], as
/// indices into B·T): [B, rows / B, width], with gradient.
pub fn gather_kept(x: &Var, rows: &Indices) -> Result<Var> {
    let (batch, tokens, width) = token_dims(x)?;
    if batch == 0 || !rows.len().is_multiple_of(batch) || rows.bound() != batch * tokens {
        return Err(Error::invalid(
            OP,
            format!("{} kept rows (of {}) for {batch} images of {tokens} tokens", rows.len(), rows.bound()),
        ));
    }
    x.reshape([batch * tokens, width])?.index_select(0, rows)?.reshape([batch, rows.len() / batch, width])
}

fn token_dims(x: &Var) -> Result<(usize, usize, usize)> {
    match *x.tensor().dims() {
        [batch, tokens, width] => Ok((batch, tokens, width)),
        _ => Err(Error::invalid(OP, format!("expected tokens [B, 1 + N, width], got {}", x.tensor().shape()))),
    }
}
