//! CLIP's symmetric contrastive loss, fused and tiled so that the B×B matrix
//! of logits never exists: memory is O(B·d) on the CPU and on GPU devices.
//! SigLIP's sigmoid loss, built the same way, is [`siglip_loss`] (see its
//! module for its definition and distributed form).
//!
//! # Definition
//!
//! For image features X and text features Y ([B, d], projected but not
//! normalised) and the learnable log-temperature t (open_clip's
//! `logit_scale` parameter):
//!
//! - x̂_i = x_i / max(‖x_i‖, 1e-12), likewise ŷ_j (`F.normalize`);
//! - s = exp(min(t, ln 100)) = min(exp(t), 100), z_ij = s·x̂_i·ŷ_j;
//! - loss = ½·(1/B·Σ_i (logsumexp_j z_ij − z_ii) + 1/B·Σ_j (logsumexp_i z_ij − z_jj)),
//!   the mean of the two cross-entropies with the diagonal as labels.
//!
//! d(loss)/dt = s·d(loss)/ds where t ≤ ln 100 and zero where the clamp is
//! active (t > ln 100). The boundary is ln 100 rounded to f32
//! ([`MAX_LOG_SCALE`], 4.6051702, a hair above ln 100) on every device and
//! dtype: open_clip clamps its f32 parameter to [0, ln 100] after each step,
//! which stores exactly that value, and there it still takes a gradient. So
//! the loss and all gradients agree with open_clip's ClipLoss wherever
//! open_clip's own clamp can put t.
//!
//! # How it runs
//!
//! The forward pass normalises both sides (kept in f32, or f64 for f64
//! inputs, with their norms), then sweeps the logits in tiles twice: once per
//! row block of images against all texts and once per row block of texts
//! against all images, keeping a running (max, sum of exponentials) per row:
//! the 2·B logsumexps are all it keeps of the logits. The backward pass
//! recomputes the tiles from the normalised embeddings and the saved
//! logsumexps, in one sweep per side, each writing the gradient rows of its
//! own side only; d(loss)/dt is summed per row, then over rows in a fixed
//! order. No float atomics, no order that depends on scheduling: results are
//! deterministic. The CPU path runs the same tiles (rayon over row blocks,
//! the `gemm` crate for each tile's products), the GPU path the kernels of
//! kernels/clip_loss.cu.
//!
//! # The distributed form
//!
//! With k ranks of b rows each (B = k·b), rank r holds its local features
//! X_r, Y_r ([b, d], rows r·b .. (r+1)·b of the batch) and the gathered
//! features X, Y ([B, d], every rank's rows in rank order, so that X_r =
//! X[r·b .. (r+1)·b]). [`clip_loss_local`] computes that rank's loss as
//! open_clip's `ClipLoss(local_loss=True)` does with gathered features:
//!
//! L_r = ½·(CE(s·X̂_r·Ŷᵀ, labels) + CE(s·Ŷ_r·X̂ᵀ, labels)), labels_i = r·b + i,
//!
//! each cross-entropy a mean over the b local rows. With z the global logits,
//! L_r's first term covers the rows of z that rank r owns, its second term
//! the columns, so the ranks' losses and gradients combine to the
//! single-rank ones exactly:
//!
//! - loss: (1/k)·Σ_r L_r = [`clip_loss`] on the whole batch;
//! - image features of rank r: (1/k)·(∂L_r/∂X_r + Σ_r' (∂L_r'/∂X)[r·b .. (r+1)·b]),
//!   that is, sum the gathered-feature gradients over ranks (a reduce-scatter),
//!   add the local gradient, and average over ranks as data-parallel training
//!   averages parameter gradients; text features likewise;
//! - t: (1/k)·Σ_r ∂L_r/∂t.
//!
//! The local and the gathered features are separate inputs with separate
//! gradients, as in open_clip, where the gathered copy comes from an
//! all-gather that passes gradients back.

mod check;
mod cpu;
mod global;
mod gpu;
mod local;
mod primitives;
mod siglip;

pub use cpu::{MAX_LOG_SCALE, NORM_EPS};
pub use global::{ClipLossGrads, ClipLossSaved, clip_loss, clip_loss_backward, clip_loss_forward};
pub use local::{
    ClipLossLocalGrads, ClipLossLocalSaved, clip_loss_local, clip_loss_local_backward, clip_loss_local_forward,
};
pub use siglip::{
    SiglipGrads, SiglipSaved, siglip_loss, siglip_loss_backward, siglip_loss_forward, siglip_loss_negatives,
    siglip_loss_negatives_forward,
};
