//! What the end-to-end tests share.

/// A model small enough for a training run of a few seconds on two cores.
pub const TINY: &str = r#"{
  "embed_dim": 16,
  "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "patch_size": 8, "head_width": 32, "mlp_ratio": 2.0},
  "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 32, "heads": 1, "layers": 1, "mlp_ratio": 2.0}
}"#;
