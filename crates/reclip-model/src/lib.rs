//! reclip's CLIP model description: configs in open_clip's JSON schema, with
//! built-in presets, and analytic FLOPs counts of the two towers at any image
//! size and text length (the numbers RECLIP's compute savings are stated in).

pub mod checkpoint;
pub mod clip;
pub mod config;
mod count;
pub mod finite;
pub mod flops;
pub mod layers;
pub mod memory;
pub mod patch_dropout;
pub mod roofline;
pub mod text;
pub mod vision;
pub mod weights;

pub use clip::Clip;
pub use config::{ActKwargs, ConfigError, GeluApproximation, ModelConfig, TextConfig, VisionConfig};
pub use finite::{NonFinite, first_non_finite};
pub use flops::{ElementwiseFlops, FlopsReport, MatmulFlops, TowerFlops};
pub use weights::ClipWeights;
