//! reclip's CLIP model description: configs in open_clip's JSON schema, with
//! built-in presets.

pub mod config;

pub use config::{ConfigError, ModelConfig, TextConfig, VisionConfig};
