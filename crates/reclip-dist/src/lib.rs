//! Data-parallel training: every rank holds the whole model, trains on its
//! slice of the global batch, and ends each step with the gradient of the
//! global batch.
//!
//! One interface, [`Collective`], with three implementations: a single
//! process ([`Single`], world 1, no dependency), MPI (feature `mpi`; ranks
//! launched by `mpirun` or `srun`, collectives of CPU ranks; [`mpi::MpiComm`])
//! and NCCL (feature `nccl`; collectives of GPU ranks on the device,
//! bootstrapped over MPI; `NcclComm`). [`Comm`] is the shared handle the
//! trainer holds; [`launch`] picks the backend from the launcher and
//! `--dist-backend`.
//!
//! # Why every rank's gradient is the global batch's
//!
//! k ranks, the global batch of B = k·b pairs split in rank order: rank r
//! holds rows r·b .. (r+1)·b, computes its features X_r, Y_r with its copy
//! of the weights θ (the same on every rank), and gathers everyone's:
//! X = [X_0; …; X_{k-1}], Y likewise ([`all_gather`], a tape node). Its loss
//! L_r is the contrastive loss of its rows against all columns (images
//! against every text, texts against every image; reclip-loss's
//! `clip_loss_local`), and (1/k)·Σ_r L_r is exactly the single-process loss
//! L of the whole batch (reclip-loss's documentation shows it).
//!
//! X_r reaches the losses two ways: directly in L_r, and through the
//! gathered X in every L_r'. So
//!
//! ∂L/∂X_r = (1/k)·(∂L_r/∂X_r|direct + Σ_r' ∂L_r'/∂X|gathered, rows of r).
//!
//! Rank r's backward pass computes the first term itself; the second is the
//! sum over ranks of each rank's gradient with respect to the gathered
//! features, rows of r: the reduce-scatter that is the all-gather node's
//! backward. With that, rank r's backward through its own towers gives
//! g_r = Σ_{r'} ∂L_{r'}/∂θ restricted to the paths through rank r's
//! features, and the gradient of L is
//!
//! ∂L/∂θ = (1/k)·Σ_r g_r,
//!
//! the mean over ranks of their parameter gradients ([`GradReducer`]: an
//! all-reduce in buckets, then a division by k); the log-temperature's
//! gradient is averaged alike. Every rank ends the step holding ∂L/∂θ of the
//! global batch, up to the order of float additions, and applies the same
//! AdamW step to the same weights, so the weights stay identical bit for bit
//! (the all-reduce gives every rank the same bits); [`weights_checksum`] and
//! [`check_agree`] verify it as training goes.
//!
//! # The ring exchange
//!
//! SigLIP's loss is a sum over (image, text) pairs, so it need not see every
//! rank's texts at once: in its chunked form each rank scores its images
//! against its own texts, then passes its block of text features to the
//! next rank and receives the previous rank's ([`ring_shift`], a tape node
//! over [`Collective::ring_shift`]), k−1 times, scoring each block it
//! receives. Each rank then holds at most its own block and one received,
//! where the all-gather holds all k. The node's backward passes each
//! gradient back the other way round the ring, to the rank whose block it
//! is ([`RingDirection`]; [`ring_shift`] shows why).

mod agree;
mod buckets;
mod collective;
mod comm;
mod gather;
pub mod launch;
#[cfg(feature = "mpi")]
pub mod mpi;
#[cfg(feature = "nccl")]
mod nccl;
mod ring;
mod single;

pub use agree::{check_agree, weights_checksum};
pub use buckets::{DEFAULT_BUCKET_MIB, GradReducer};
pub use collective::{Backend, Collective, Pending, RingDirection};
pub use comm::Comm;
pub use gather::all_gather;
#[cfg(feature = "nccl")]
pub use nccl::NcclComm;
pub use reclip_core::{Error, Result};
pub use ring::ring_shift;
pub use single::Single;
