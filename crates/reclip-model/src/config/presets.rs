//! Built-in model configs: open_clip's ViT CLIP models under open_clip's names
//! and with its values (`src/open_clip/model_configs/<name>.json`), and
//! reclip's own small models, sized for training on a CPU.

use super::{ModelConfig, TextConfig, VisionConfig};

/// A preset's name and the function that builds it.
pub(super) type Preset = (&'static str, fn() -> ModelConfig);

pub(super) const PRESETS: &[Preset] = &[
    ("ViT-B-32", vit_b_32),
    ("ViT-B-32-quickgelu", || with_quick_gelu(vit_b_32())),
    ("ViT-B-16", vit_b_16),
    ("ViT-B-16-quickgelu", || with_quick_gelu(vit_b_16())),
    ("ViT-L-14", vit_l_14),
    ("ViT-L-14-quickgelu", || with_quick_gelu(vit_l_14())),
    ("reclip-tiny", reclip_tiny),
    ("reclip-small", reclip_small),
];

fn vit_b_32() -> ModelConfig {
    clip(512, vit(224, 32, 768, 12), clip_text(512, 8, 12))
}

fn vit_b_16() -> ModelConfig {
    clip(512, vit(224, 16, 768, 12), clip_text(512, 8, 12))
}

fn vit_l_14() -> ModelConfig {
    clip(768, vit(224, 14, 1024, 24), clip_text(768, 12, 12))
}

/// Sized to train on a CPU in minutes: its 8 px patches give 17 tokens at 32 px
/// (RECLIP's main phase) and 101 at 80 px, and the short captions of a
/// synthetic dataset fit in 24 text tokens.
fn reclip_tiny() -> ModelConfig {
    clip(
        64,
        VisionConfig {
            image_size: 80,
            patch_size: 8,
            width: 64,
            layers: 3,
            head_width: 32,
            mlp_ratio: 4.0,
            act_kwargs: None,
            patch_dropout: 0.0,
        },
        TextConfig { context_length: 24, width: 64, heads: 2, layers: 2, ..TextConfig::default() },
    )
}

/// About five times reclip-tiny's compute per sample, for longer CPU runs and
/// quick GPU runs.
fn reclip_small() -> ModelConfig {
    clip(
        128,
        VisionConfig {
            image_size: 64,
            patch_size: 8,
            width: 128,
            layers: 4,
            head_width: 32,
            mlp_ratio: 4.0,
            act_kwargs: None,
            patch_dropout: 0.0,
        },
        TextConfig { context_length: 32, width: 128, heads: 4, layers: 3, ..TextConfig::default() },
    )
}

fn clip(embed_dim: usize, vision_cfg: VisionConfig, text_cfg: TextConfig) -> ModelConfig {
    ModelConfig {
        embed_dim,
        quick_gelu: false,
        init_logit_scale: super::CLIP_INIT_LOGIT_SCALE,
        init_logit_bias: None,
        vision_cfg,
        text_cfg,
    }
}

/// A ViT with open_clip's defaults for the fields its JSON files leave out.
fn vit(image_size: usize, patch_size: usize, width: usize, layers: usize) -> VisionConfig {
    VisionConfig { image_size, patch_size, width, layers, ..VisionConfig::default() }
}

/// A text tower with open_clip's defaults (77 tokens of CLIP's 49408-token BPE).
fn clip_text(width: usize, heads: usize, layers: usize) -> TextConfig {
    TextConfig { width, heads, layers, ..TextConfig::default() }
}

fn with_quick_gelu(config: ModelConfig) -> ModelConfig {
    ModelConfig { quick_gelu: true, ..config }
}
