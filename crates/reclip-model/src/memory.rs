//! Memory a model needs, estimated from its config before anything is
//! allocated, so that a config, batch or image size that cannot fit is
//! refused with its cause named instead of dying in the allocator.
//!
//! Every estimate is a LOWER bound: it counts only what reclip certainly holds
//! at once, so that a refusal never turns away a run that would have fit. A
//! run that passes may still run out of memory (workspace buffers, the
//! allocator's slack, the data loader), which the estimates do not try to
//! predict.

use reclip_core::{DType, Device};

use crate::config::{ConfigError, ModelConfig, TextConfig, VisionConfig};
use crate::count::{product, sum};

const F32_BYTES: u64 = 4;

/// Training holds per parameter its f32 value, its gradient and AdamW's two
/// moments.
const TRAINING_BYTES_PER_PARAM: u64 = 4 * F32_BYTES;

/// Values the tape certainly keeps per token of one transformer block, in
/// units of the width: LayerNorm 1's input and output (the in-projection's
/// input), the packed q/k/v, the attention's output (the out-projection's
/// input), LayerNorm 2's input and output (the MLP's input).
const KEPT_PER_TOKEN_IN_WIDTHS: u64 = 8;

/// Values the tape certainly keeps per token of one block, in units of the
/// MLP's hidden width: the first layer's output, before and after the
/// activation (the second layer's input).
const KEPT_PER_TOKEN_IN_MLP_WIDTHS: u64 = 2;

/// The f32 weights at the config's own sizes: what [`crate::Clip::new`]
/// allocates.
pub fn weight_bytes(cfg: &ModelConfig) -> Result<u64, ConfigError> {
    product("the model's weight bytes", &[cfg.num_params()?, F32_BYTES])
}

/// A lower bound of the memory one training step on `batch` pairs of
/// `image_size`² images and `text_len`-token captions needs, with the
/// forward computing in `dtype`: f32 weights, gradients and AdamW's two
/// moments (16 bytes a parameter, the position embedding sized for
/// `image_size`), and, per sample, what the tape keeps for the backward: the
/// patch convolution's input, and per block of each tower 8·width + 2·MLP
/// width values per token and each head's per-token logsumexp. Attention
/// probabilities are not counted: reclip's attention recomputes them in the
/// backward rather than keeping them.
pub fn training_bytes(
    cfg: &ModelConfig,
    batch: usize,
    image_size: usize,
    text_len: usize,
    dtype: DType,
) -> Result<u64, ConfigError> {
    training_bytes_dropping(cfg, batch, image_size, text_len, 0.0, dtype)
}

/// [`training_bytes`] under FLIP's patch dropout at `patch_dropout`: the
/// image blocks keep values for the kept tokens only.
pub fn training_bytes_dropping(
    cfg: &ModelConfig,
    batch: usize,
    image_size: usize,
    text_len: usize,
    patch_dropout: f64,
    dtype: DType,
) -> Result<u64, ConfigError> {
    const WHAT: &str = "the training memory estimate";
    let state = product(WHAT, &[params_at(cfg, image_size)?, TRAINING_BYTES_PER_PARAM])?;
    let (mut image, text) = (ImageTower::at(cfg, image_size)?, TextTower::at(cfg, text_len)?);
    if patch_dropout > 0.0 {
        image.block.tokens = 1 + crate::patch_dropout::kept(image.block.tokens as usize - 1, patch_dropout) as u64;
    }
    let pixels = product(WHAT, &[3, image_size as u64, image_size as u64])?;
    let image_kept = sum(WHAT, &[pixels, product(WHAT, &[image.layers, image.block.kept(WHAT)?])?])?;
    let text_kept = product(WHAT, &[text.layers, text.block.kept(WHAT)?])?;
    let per_sample = product(WHAT, &[sum(WHAT, &[image_kept, text_kept])?, dtype.size_in_bytes() as u64])?;
    sum(WHAT, &[state, product(WHAT, &[per_sample, batch as u64])?])
}

/// A lower bound of the memory encoding `batch` images and captions at these
/// sizes needs, computing in `dtype`: the f32 weights (the position embedding
/// sized for `image_size`) and the values one block of the larger tower
/// holds at once for the batch (the residual stream beside either the packed
/// q/k/v or the MLP's hidden layer).
pub fn inference_bytes(
    cfg: &ModelConfig,
    batch: usize,
    image_size: usize,
    text_len: usize,
    dtype: DType,
) -> Result<u64, ConfigError> {
    const WHAT: &str = "the inference memory estimate";
    let weights = product(WHAT, &[params_at(cfg, image_size)?, F32_BYTES])?;
    let (image, text) = (ImageTower::at(cfg, image_size)?, TextTower::at(cfg, text_len)?);
    let live = image.block.live(WHAT)?.max(text.block.live(WHAT)?);
    sum(WHAT, &[weights, product(WHAT, &[live, batch as u64, dtype.size_in_bytes() as u64])?])
}

/// Refuses with [`ConfigError::TooLarge`] when `estimate(cfg)` (one of the
/// functions above, with the other arguments fixed) exceeds `available`
/// bytes. When the config is to blame — open_clip's default model would fit
/// — the error names the field whose default would shrink the estimate most;
/// otherwise the cause is the batch or a size, and `what` (e.g. "training
/// at batch 65536 and 224 px") should say it.
pub fn check_fits(
    cfg: &ModelConfig,
    estimate: impl Fn(&ModelConfig) -> Result<u64, ConfigError>,
    available: u64,
    what: &str,
) -> Result<(), ConfigError> {
    let needed = estimate(cfg)?;
    if needed <= available {
        return Ok(());
    }
    // Configs that no longer describe a model with the field reset (a
    // patch grid that stops tiling the image, say) are passed over.
    let config_to_blame = estimate(&default_model()).is_ok_and(|bytes| bytes <= available);
    let culprit = at_defaults(cfg)
        .into_iter()
        .filter(|_| config_to_blame)
        .filter_map(|field| Some((needed.checked_sub(estimate(&field.config).ok()?)?, field)))
        .filter(|(saved, _)| *saved > 0)
        .max_by_key(|(saved, _)| *saved)
        .map(|(_, f)| format!("`{}` = {} ({})", f.name, f.value, f.reference));
    Err(ConfigError::TooLarge { what: what.to_string(), needed, available, culprit })
}

/// [`check_fits`] against `device`'s memory ([`Device::memory_bytes`]);
/// nothing is refused where that is unknown.
pub fn check_fits_on(
    cfg: &ModelConfig,
    estimate: impl Fn(&ModelConfig) -> Result<u64, ConfigError>,
    device: &Device,
    what: &str,
) -> Result<(), ConfigError> {
    match device.memory_bytes() {
        Some(available) => check_fits(cfg, estimate, available, what),
        None => Ok(()),
    }
}

/// Bytes in decimal units to one decimal, as disks and RAM are sold:
/// "512 B", "3.1 PB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Parameters with the position embedding sized for `image_size`, as
/// [`crate::Clip::set_image_size`] sizes it for a phase.
fn params_at(cfg: &ModelConfig, image_size: usize) -> Result<u64, ConfigError> {
    let mut at_size = cfg.clone();
    at_size.vision_cfg.image_size = image_size;
    at_size.num_params()
}

/// One transformer block on one sequence.
struct Block {
    tokens: u64,
    width: u64,
    mlp_width: u64,
    heads: u64,
}

impl Block {
    /// Values the tape keeps for the backward.
    fn kept(&self, what: &str) -> Result<u64, ConfigError> {
        let per_token = sum(
            what,
            &[
                product(what, &[KEPT_PER_TOKEN_IN_WIDTHS, self.width])?,
                product(what, &[KEPT_PER_TOKEN_IN_MLP_WIDTHS, self.mlp_width])?,
                self.heads,
            ],
        )?;
        product(what, &[self.tokens, per_token])
    }

    /// Values alive at once in a forward without a tape: the residual
    /// stream, and the packed q/k/v or the MLP's hidden layer.
    fn live(&self, what: &str) -> Result<u64, ConfigError> {
        let beside = product(what, &[3, self.width])?.max(self.mlp_width);
        product(what, &[self.tokens, sum(what, &[self.width, beside])?])
    }
}

struct ImageTower {
    layers: u64,
    block: Block,
}

impl ImageTower {
    fn at(cfg: &ModelConfig, image_size: usize) -> Result<Self, ConfigError> {
        let v = &cfg.vision_cfg;
        let block = Block {
            tokens: v.tokens_per_image(image_size)? as u64,
            width: v.width as u64,
            mlp_width: v.mlp_width() as u64,
            // Unvalidated configs (the field-by-field search of `check_fits`)
            // may not divide; the term is a small part of a lower bound.
            heads: v.width.checked_div(v.head_width).unwrap_or(0) as u64,
        };
        Ok(ImageTower { layers: v.layers as u64, block })
    }
}

struct TextTower {
    layers: u64,
    block: Block,
}

impl TextTower {
    fn at(cfg: &ModelConfig, text_len: usize) -> Result<Self, ConfigError> {
        let t = &cfg.text_cfg;
        if text_len == 0 || text_len > t.context_length {
            return Err(ConfigError::TextLength { length: text_len, context_length: t.context_length });
        }
        let block = Block {
            tokens: text_len as u64,
            width: t.width as u64,
            mlp_width: t.mlp_width() as u64,
            heads: t.heads as u64,
        };
        Ok(TextTower { layers: t.layers as u64, block })
    }
}

/// `cfg` with one field reset to open_clip's default.
struct AtDefault {
    name: &'static str,
    value: String,
    /// Where the default comes from and what it is.
    reference: String,
    config: ModelConfig,
}

/// open_clip's default towers with ViT-B-16's embedding width.
fn default_model() -> ModelConfig {
    const VIT_B_16_EMBED_DIM: usize = 512;
    ModelConfig {
        embed_dim: VIT_B_16_EMBED_DIM,
        quick_gelu: false,
        init_logit_scale: crate::config::CLIP_INIT_LOGIT_SCALE,
        init_logit_bias: None,
        vision_cfg: VisionConfig::default(),
        text_cfg: TextConfig::default(),
    }
}

/// `cfg` once per field, with that field at open_clip's `CLIPVisionCfg` or
/// `CLIPTextCfg` default; `embed_dim`, which has no default there, at
/// ViT-B-16's (whose towers are those defaults).
fn at_defaults(cfg: &ModelConfig) -> Vec<AtDefault> {
    let defaults = default_model();
    macro_rules! reset {
        ($first:ident $(. $rest:ident)*, $source:expr) => {{
            let mut config = cfg.clone();
            config.$first$(.$rest)* = defaults.$first$(.$rest)*;
            AtDefault {
                name: concat!(stringify!($first) $(, ".", stringify!($rest))*),
                value: cfg.$first$(.$rest)*.to_string(),
                reference: format!("{} {}", $source, defaults.$first$(.$rest)*),
                config,
            }
        }};
    }
    const OPEN_CLIP: &str = "open_clip's default is";
    vec![
        reset!(embed_dim, "ViT-B-16 has"),
        reset!(vision_cfg.image_size, OPEN_CLIP),
        reset!(vision_cfg.layers, OPEN_CLIP),
        reset!(vision_cfg.width, OPEN_CLIP),
        reset!(vision_cfg.head_width, OPEN_CLIP),
        reset!(vision_cfg.mlp_ratio, OPEN_CLIP),
        reset!(vision_cfg.patch_size, OPEN_CLIP),
        reset!(text_cfg.context_length, OPEN_CLIP),
        reset!(text_cfg.vocab_size, OPEN_CLIP),
        reset!(text_cfg.width, OPEN_CLIP),
        reset!(text_cfg.heads, OPEN_CLIP),
        reset!(text_cfg.layers, OPEN_CLIP),
        reset!(text_cfg.mlp_ratio, OPEN_CLIP),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vit_b_16() -> ModelConfig {
        ModelConfig::preset("ViT-B-16").unwrap()
    }

    #[test]
    fn human_units_are_decimal_with_one_decimal() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1000), "1.0 kB");
        assert_eq!(human_bytes(24_731_184 * 1024), "25.3 GB");
        assert_eq!(human_bytes(3_100_000_000_000_000), "3.1 PB");
        assert_eq!(human_bytes(999_999_999), "1.0 GB");
        assert_eq!(human_bytes(u64::MAX), "18.4 EB");
    }

    #[test]
    fn training_counts_state_and_what_the_tape_keeps() {
        let cfg = vit_b_16();
        let params = cfg.num_params().unwrap();
        // Batch 1 at 224 px and 77 tokens, in f32: 16 bytes a parameter, then
        // per sample the image (3·224²), 12 image blocks of 197 tokens
        // (8·768 + 2·3072 + 12 heads) and 12 text blocks of 77 (8·512 + 2·2048 + 8).
        let kept = 3 * 224 * 224 + 12 * 197 * (8 * 768 + 2 * 3072 + 12) + 12 * 77 * (8 * 512 + 2 * 2048 + 8);
        assert_eq!(training_bytes(&cfg, 1, 224, 77, DType::F32).unwrap(), 16 * params + 4 * kept);
        // Activations scale with the batch and halve in bf16; the state does neither.
        let at = |batch, dtype| training_bytes(&cfg, batch, 224, 77, dtype).unwrap();
        assert_eq!(at(64, DType::F32) - at(32, DType::F32), 32 * 4 * kept);
        assert_eq!(at(64, DType::F32) - at(64, DType::BF16), 64 * 2 * kept);
        // ViT-B-16 trains at batch 256 in well under 80 GB (open_clip does it
        // on one A100): a lower bound must stay below what really fits.
        assert!(at(256, DType::BF16) < 80_000_000_000, "{}", human_bytes(at(256, DType::BF16)));
        assert!(at(256, DType::BF16) > 10_000_000_000, "{}", human_bytes(at(256, DType::BF16)));
        // Patch dropout at 0.5: the image blocks keep 99 tokens' values, the pixels all.
        let dropped = 3 * 224 * 224 + 12 * 99 * (8 * 768 + 2 * 3072 + 12) + 12 * 77 * (8 * 512 + 2 * 2048 + 8);
        assert_eq!(training_bytes_dropping(&cfg, 1, 224, 77, 0.5, DType::F32).unwrap(), 16 * params + 4 * dropped);
    }

    #[test]
    fn the_position_embedding_is_counted_at_the_size_asked_for() {
        let cfg = vit_b_16();
        let state = |size| training_bytes(&cfg, 0, size, 77, DType::F32).unwrap();
        // 64 px: 17 positions instead of 197, 768 wide, 16 bytes each.
        assert_eq!(state(224) - state(64), (197 - 17) * 768 * 16);
    }

    #[test]
    fn inference_counts_weights_and_one_block_of_the_larger_tower() {
        let cfg = vit_b_16();
        let weights = 4 * cfg.num_params().unwrap();
        // The image tower's block is the larger: 197 tokens × (768 + 3072).
        assert_eq!(inference_bytes(&cfg, 10, 224, 77, DType::F32).unwrap(), weights + 10 * 197 * (768 + 3072) * 4);
        assert_eq!(weight_bytes(&cfg).unwrap(), weights);
    }

    #[test]
    fn sizes_the_towers_cannot_take_are_errors_not_estimates() {
        let cfg = vit_b_16();
        assert!(matches!(training_bytes(&cfg, 1, 100, 77, DType::F32), Err(ConfigError::PatchGrid { .. })));
        assert!(matches!(training_bytes(&cfg, 1, 224, 78, DType::F32), Err(ConfigError::TextLength { .. })));
        assert!(matches!(inference_bytes(&cfg, 1, 8192, 77, DType::F32), Err(ConfigError::ImageSize { .. })));
        let message = training_bytes(&cfg, usize::MAX, 224, 77, DType::F32).unwrap_err().to_string();
        assert!(message.contains("the training memory estimate would overflow 64 bits"), "{message}");
    }

    #[test]
    fn what_fits_passes_and_what_does_not_names_the_field_most_responsible() {
        let mut cfg = vit_b_16();
        let available = 24_000_000_000;
        check_fits(&cfg, weight_bytes, available, "allocating the model's weights").unwrap();

        cfg.vision_cfg.layers = 1000;
        cfg.text_cfg.vocab_size = 1_000_000;
        let message =
            check_fits(&cfg, weight_bytes, available, "allocating the model's weights").unwrap_err().to_string();
        assert_eq!(
            message,
            "allocating the model's weights needs at least 30.6 GB of memory, more than the 24.0 GB available; \
             most of it is due to `vision_cfg.layers` = 1000 (open_clip's default is 12)"
        );
    }

    #[test]
    fn the_batch_to_blame_is_left_to_the_caller() {
        // ViT-B-16 is open_clip's defaults: no field would shrink the estimate.
        let cfg = vit_b_16();
        let estimate = |c: &ModelConfig| training_bytes(c, 1 << 20, 224, 77, DType::F32);
        let err = check_fits(&cfg, estimate, 80_000_000_000, "training at batch 1048576").unwrap_err();
        let ConfigError::TooLarge { culprit, needed, .. } = &err else { panic!("{err}") };
        assert_eq!(*culprit, None);
        assert_eq!(*needed, estimate(&cfg).unwrap());
        let message = err.to_string();
        assert!(message.starts_with("training at batch 1048576 needs at least "), "{message}");
        assert!(!message.contains("due to"), "{message}");
    }

    #[test]
    fn fields_below_their_default_are_never_blamed() {
        // reclip-tiny is smaller than the defaults everywhere but its patch
        // size (8 against 16): resetting a field only grows it, or breaks
        // the patch grid (80 px in 16 px patches).
        let tiny = ModelConfig::preset("reclip-tiny").unwrap();
        let err = check_fits(&tiny, weight_bytes, 1000, "allocating the model's weights").unwrap_err();
        let ConfigError::TooLarge { culprit, .. } = &err else { panic!("{err}") };
        assert_eq!(*culprit, None, "{err}");
    }
}
