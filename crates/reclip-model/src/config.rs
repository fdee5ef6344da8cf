//! CLIP model configs in open_clip's JSON schema (`embed_dim`, `quick_gelu`,
//! `init_logit_scale`, `init_logit_bias`, `vision_cfg`, `text_cfg`), so that
//! open_clip's config files load as they are and reclip's configs load in
//! open_clip.
//!
//! reclip builds one architecture: open_clip's default ViT image tower (patch
//! convolution without bias, class token, learned position embeddings,
//! LayerNorm before and after the pre-norm transformer, class-token pooling,
//! projection without bias) and its default text tower (token and learned
//! position embeddings, causal pre-norm transformer, final LayerNorm, pooling
//! at the end-of-text token, projection without bias). A config that asks for
//! anything else is refused with the field and file named, rather than
//! silently loaded as a different model.

mod error;
pub mod limits;
mod open_clip_fields;
mod presets;

use reclip_core::fs::OpenRefusal;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use error::ConfigError;
use limits::{MAX_CONTEXT_LENGTH, MAX_IMAGE_SIZE, MAX_LAYERS, MAX_MLP_RATIO, MAX_VOCAB_SIZE, MAX_WIDTH};

use crate::count::{product, sum};
use reclip_mlp::Activation;

/// A CLIP model: two towers projected into one embedding space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Width of the shared embedding space both towers project into.
    pub embed_dim: usize,
    /// QuickGELU, x·σ(1.702·x) (OpenAI's original CLIP), instead of GELU in
    /// both towers' MLPs.
    #[serde(default)]
    pub quick_gelu: bool,
    /// The log-temperature t's initial value (open_clip's `init_logit_scale`:
    /// ln(1/0.07) for CLIP, ln 10 for SigLIP).
    #[serde(default = "default_init_logit_scale")]
    pub init_logit_scale: f64,
    /// SigLIP's learnable logit bias and its initial value (open_clip's
    /// `init_logit_bias`, −10 for SigLIP): a model with one trains with the
    /// sigmoid loss, a model without with the softmax loss.
    #[serde(default)]
    pub init_logit_bias: Option<f64>,
    pub vision_cfg: VisionConfig,
    pub text_cfg: TextConfig,
}

/// open_clip's initial log-temperature, ln(1/0.07).
pub const CLIP_INIT_LOGIT_SCALE: f64 = 2.659_260_036_932_778;
/// What open_clip's `--siglip` initialises: t = ln 10, bias −10.
pub const SIGLIP_INIT_LOGIT_SCALE: f64 = std::f64::consts::LN_10;
pub const SIGLIP_INIT_LOGIT_BIAS: f64 = -10.0;

fn default_init_logit_scale() -> f64 {
    CLIP_INIT_LOGIT_SCALE
}

/// The ViT image tower. Missing fields take open_clip's `CLIPVisionCfg` defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VisionConfig {
    /// The image side the position embeddings are made for, in pixels.
    pub image_size: usize,
    pub layers: usize,
    pub width: usize,
    /// Width of one attention head; the head count is `width / head_width`.
    pub head_width: usize,
    /// MLP hidden width over `width`.
    pub mlp_ratio: f64,
    /// Side of the square patches the patch convolution embeds, in pixels.
    pub patch_size: usize,
    /// Options of the MLP's activation (open_clip's `act_kwargs`).
    pub act_kwargs: Option<ActKwargs>,
    /// FLIP's patch dropout in training (open_clip's `patch_dropout`): the
    /// share of patch tokens each image drops after its positional
    /// embedding, 0 ≤ p < 1; a run's phases may set their own.
    pub patch_dropout: f64,
}

/// The causal transformer text tower. Missing fields take open_clip's
/// `CLIPTextCfg` defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextConfig {
    /// Tokens per caption (padded or truncated to it), including start and end tokens.
    pub context_length: usize,
    pub vocab_size: usize,
    pub width: usize,
    pub heads: usize,
    pub layers: usize,
    /// MLP hidden width over `width`.
    pub mlp_ratio: f64,
    /// Options of the MLP's activation (open_clip's `act_kwargs`).
    pub act_kwargs: Option<ActKwargs>,
}

/// open_clip's `act_kwargs`, the keyword arguments of a tower's activation
/// layer. Of `nn.GELU`'s, reclip reads `approximate`: `"tanh"` selects GELU's
/// tanh approximation, which a GPU fuses into the MLP's GEMMs (cuBLASLt's
/// GELU epilogues compute it); `"none"`, or no `act_kwargs`, the exact GELU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActKwargs {
    pub approximate: GeluApproximation,
}

/// `nn.GELU(approximate=...)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeluApproximation {
    #[default]
    None,
    Tanh,
}

/// The largest model config file read: open_clip's are under 2 kB.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The fields of each section reclip reads: exactly those the structs above
/// serialize (a test checks).
const MODEL_FIELDS: &[&str] =
    &["embed_dim", "quick_gelu", "init_logit_scale", "init_logit_bias", "vision_cfg", "text_cfg"];
const VISION_FIELDS: &[&str] =
    &["image_size", "layers", "width", "head_width", "mlp_ratio", "patch_size", "act_kwargs", "patch_dropout"];
const TEXT_FIELDS: &[&str] = &["context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio", "act_kwargs"];

impl Default for VisionConfig {
    fn default() -> Self {
        VisionConfig {
            image_size: 224,
            layers: 12,
            width: 768,
            head_width: 64,
            mlp_ratio: 4.0,
            patch_size: 16,
            act_kwargs: None,
            patch_dropout: 0.0,
        }
    }
}

impl Default for TextConfig {
    fn default() -> Self {
        TextConfig {
            context_length: 77,
            vocab_size: 49408,
            width: 512,
            heads: 8,
            layers: 12,
            mlp_ratio: 4.0,
            act_kwargs: None,
        }
    }
}

impl ModelConfig {
    /// Parses a config in open_clip's JSON schema and validates it.
    pub fn from_json_str(json: &str) -> Result<Self, ConfigError> {
        Self::parse(json).map_err(|e| e.within("model config"))
    }

    /// Reads and parses an open_clip-style config file; errors name the file.
    /// Only a regular file of at most [`MAX_CONFIG_BYTES`] is read (a FIFO
    /// or a device would block or never end).
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let read = |source| ConfigError::Read { path: path.to_path_buf(), source };
        let too_large =
            |len| read(std::io::Error::other(format!("{len} bytes, more than a model config's {MAX_CONFIG_BYTES}")));
        let (mut file, _) = reclip_core::fs::open_regular(path, MAX_CONFIG_BYTES).map_err(|refusal| match refusal {
            OpenRefusal::Io(e) => read(e),
            OpenRefusal::NotRegular(kind) => read(std::io::Error::other(format!("{kind}, not a config file"))),
            OpenRefusal::TooLarge { len } => too_large(len),
        })?;
        let mut json = String::new();
        // At most a byte past the ceiling: a file that grew while read.
        std::io::Read::read_to_string(&mut file, &mut json).map_err(read)?;
        if json.len() as u64 > MAX_CONFIG_BYTES {
            return Err(too_large(json.len() as u64));
        }
        Self::parse(&json).map_err(|e| e.within(path.display().to_string()))
    }

    /// A built-in config by name:
    ///
    /// | preset | image tower | text tower | embed |
    /// | --- | --- | --- | --- |
    /// | `ViT-B-32`, `ViT-B-32-quickgelu` | 224 px, patch 32, width 768, 12 layers | 77 tokens, width 512, 8 heads, 12 layers | 512 |
    /// | `ViT-B-16`, `ViT-B-16-quickgelu` | 224 px, patch 16, width 768, 12 layers | 77 tokens, width 512, 8 heads, 12 layers | 512 |
    /// | `ViT-L-14`, `ViT-L-14-quickgelu` | 224 px, patch 14, width 1024, 24 layers | 77 tokens, width 768, 12 heads, 12 layers | 768 |
    /// | `reclip-tiny` | 80 px, patch 8, width 64, 3 layers, 2 heads | 24 tokens, width 64, 2 heads, 2 layers | 64 |
    /// | `reclip-small` | 64 px, patch 8, width 128, 4 layers, 4 heads | 32 tokens, width 128, 4 heads, 3 layers | 128 |
    ///
    /// The ViT presets are open_clip's, under its names and with its values.
    /// `reclip-tiny` is sized for `reclip train`'s default run on a 2-core CPU:
    /// a main phase at 32 px (17 image tokens), a finetune at 80 px (101);
    /// about 32 MFLOPs per training sample at 32 px and 135 at 80 px.
    /// `reclip-small` costs about five times as much per sample. Both use
    /// CLIP's BPE vocabulary (49408 tokens), head width 32 and MLP ratio 4.
    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        presets::PRESETS.iter().find(|(preset, _)| *preset == name).map(|(_, build)| build()).ok_or_else(|| {
            ConfigError::UnknownPreset { name: name.to_string(), known: Self::preset_names().join(", ") }
        })
    }

    pub fn preset_names() -> Vec<&'static str> {
        presets::PRESETS.iter().map(|(name, _)| *name).collect()
    }

    /// A config file if `name_or_path` ends in `.json` or names an existing
    /// path, a preset otherwise.
    pub fn load(name_or_path: &str) -> Result<Self, ConfigError> {
        let path = Path::new(name_or_path);
        if name_or_path.ends_with(".json") || path.exists() {
            Self::from_json_file(path)
        } else {
            Self::preset(name_or_path)
        }
    }

    /// The config as open_clip-style JSON, with every field reclip reads
    /// written out; [`ModelConfig::from_json_str`] reads it back unchanged.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain structs of numbers always serialize")
    }

    fn parse(json: &str) -> Result<Self, ConfigError> {
        let mut doc: serde_json::Value = serde_json::from_str(json).map_err(ConfigError::Syntax)?;
        open_clip_fields::strip_unimplemented(&mut doc)?;
        let config: Self = serde_path_to_error::deserialize(doc).map_err(ConfigError::schema)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks that the config describes a buildable model: every size
    /// positive and within reclip's ceilings ([`limits`]), head counts
    /// dividing widths, the patch grid tiling the image. The loaders call it;
    /// call it again after editing a config by hand.
    pub fn validate(&self) -> Result<(), ConfigError> {
        within("embed_dim", self.embed_dim, MAX_WIDTH)?;
        // open_clip clamps t to [0, ln 100] after every step; a start outside
        // it, or a bias that is not a number, cannot be trained from.
        if !(0.0..=100f64.ln()).contains(&self.init_logit_scale) {
            return Err(ConfigError::invalid(
                "init_logit_scale",
                self.init_logit_scale,
                "the initial log-temperature must lie in [0, ln 100], where open_clip's clamp keeps it",
            ));
        }
        if let Some(bias) = self.init_logit_bias.filter(|b| !b.is_finite() || b.abs() > 1e4) {
            return Err(ConfigError::invalid(
                "init_logit_bias",
                bias,
                "the initial logit bias must be finite, within ±1e4",
            ));
        }
        for (field, kwargs) in
            [("vision_cfg.act_kwargs", self.vision_cfg.act_kwargs), ("text_cfg.act_kwargs", self.text_cfg.act_kwargs)]
        {
            if self.quick_gelu && kwargs.is_some_and(|k| k.approximate == GeluApproximation::Tanh) {
                return Err(ConfigError::invalid(
                    field,
                    r#"{"approximate": "tanh"}"#,
                    "QuickGELU (quick_gelu = true) has no tanh approximation; only nn.GELU takes `approximate`",
                ));
            }
        }
        self.vision_cfg.validate()?;
        self.text_cfg.validate()
    }

    /// Parameters of the image tower at its configured image size (the
    /// position embeddings grow with the patch grid), its projection included.
    pub fn image_params(&self) -> Result<u64, ConfigError> {
        const WHAT: &str = "the image tower's parameter count";
        let v = &self.vision_cfg;
        let (w, p) = (v.width as u64, v.patch_size as u64);
        let patch_embed = product(WHAT, &[w, 3, p, p])?;
        let tokens = v.tokens_per_image(v.image_size)? as u64;
        let class_and_positions = product(WHAT, &[w, sum(WHAT, &[1, tokens])?])?;
        let layer_norms = product(WHAT, &[2, 2, w])?;
        let blocks = product(WHAT, &[v.layers as u64, block_params(WHAT, v.width, v.mlp_width())?])?;
        let projection = product(WHAT, &[w, self.embed_dim as u64])?;
        sum(WHAT, &[patch_embed, class_and_positions, layer_norms, blocks, projection])
    }

    /// Parameters of the text tower, its token embeddings and projection included.
    pub fn text_params(&self) -> Result<u64, ConfigError> {
        const WHAT: &str = "the text tower's parameter count";
        let t = &self.text_cfg;
        let w = t.width as u64;
        let embeddings = product(WHAT, &[w, sum(WHAT, &[t.vocab_size as u64, t.context_length as u64])?])?;
        let final_layer_norm = product(WHAT, &[2, w])?;
        let blocks = product(WHAT, &[t.layers as u64, block_params(WHAT, t.width, t.mlp_width())?])?;
        let projection = product(WHAT, &[w, self.embed_dim as u64])?;
        sum(WHAT, &[embeddings, final_layer_norm, blocks, projection])
    }

    /// The image tower's MLP activation.
    pub fn image_activation(&self) -> Activation {
        self.activation(self.vision_cfg.act_kwargs)
    }

    /// The text tower's MLP activation.
    pub fn text_activation(&self) -> Activation {
        self.activation(self.text_cfg.act_kwargs)
    }

    /// QuickGELU with `quick_gelu`, else GELU as `act_kwargs` asks.
    fn activation(&self, kwargs: Option<ActKwargs>) -> Activation {
        match (self.quick_gelu, kwargs.unwrap_or_default().approximate) {
            (true, _) => Activation::QuickGelu,
            (false, GeluApproximation::None) => Activation::Gelu,
            (false, GeluApproximation::Tanh) => Activation::GeluTanh,
        }
    }

    /// All parameters: both towers, the learned logit scale and SigLIP's bias.
    pub fn num_params(&self) -> Result<u64, ConfigError> {
        let scalars = 1 + self.init_logit_bias.is_some() as u64;
        sum("the model's parameter count", &[self.image_params()?, self.text_params()?, scalars])
    }
}

/// One pre-norm transformer block: two LayerNorms, the attention's
/// in-projection (q, k, v) and out-projection, and the two MLP layers, all
/// with biases.
fn block_params(what: &str, width: usize, mlp_width: usize) -> Result<u64, ConfigError> {
    let (w, m) = (width as u64, mlp_width as u64);
    let layer_norms = product(what, &[2, 2, w])?;
    let square = product(what, &[w, w])?;
    let attention = sum(what, &[product(what, &[4, square])?, product(what, &[4, w])?])?;
    let mlp = sum(what, &[product(what, &[2, w, m])?, m, w])?;
    sum(what, &[layer_norms, attention, mlp])
}

impl VisionConfig {
    pub fn heads(&self) -> Result<usize, ConfigError> {
        heads_of("vision_cfg.head_width", self.head_width, "vision_cfg.width", self.width)?;
        Ok(self.width / self.head_width)
    }

    /// The MLP's hidden width, truncated as open_clip's `int(width * mlp_ratio)`.
    pub fn mlp_width(&self) -> usize {
        mlp_width(self.width, self.mlp_ratio)
    }

    /// Patches per image side at `image_size` pixels (any size, not only the
    /// configured one: RECLIP trains one model at several), which must be at
    /// most [`limits::MAX_IMAGE_SIZE`].
    pub fn grid_size(&self, image_size: usize) -> Result<usize, ConfigError> {
        if image_size > MAX_IMAGE_SIZE {
            return Err(ConfigError::ImageSize { image_size });
        }
        if self.patch_size == 0 || image_size == 0 || !image_size.is_multiple_of(self.patch_size) {
            return Err(ConfigError::PatchGrid { image_size, patch_size: self.patch_size });
        }
        Ok(image_size / self.patch_size)
    }

    /// The sequence the transformer sees at `image_size`: one token per patch
    /// and the class token.
    pub fn tokens_per_image(&self, image_size: usize) -> Result<usize, ConfigError> {
        let grid = self.grid_size(image_size)?;
        Ok(grid * grid + 1)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        within_in("vision_cfg.image_size", self.image_size, MAX_IMAGE_SIZE, " px")?;
        within("vision_cfg.layers", self.layers, MAX_LAYERS)?;
        within("vision_cfg.width", self.width, MAX_WIDTH)?;
        at_least_one("vision_cfg.patch_size", self.patch_size)?;
        if self.patch_size > self.image_size {
            let reason = format!("must be at most `vision_cfg.image_size` = {}", self.image_size);
            return Err(ConfigError::invalid("vision_cfg.patch_size", self.patch_size, reason));
        }
        self.heads()?;
        self.grid_size(self.image_size)?;
        check_patch_dropout("vision_cfg.patch_dropout", self.patch_dropout)?;
        check_mlp_ratio("vision_cfg.mlp_ratio", self.width, self.mlp_ratio)
    }
}

impl TextConfig {
    pub fn head_width(&self) -> Result<usize, ConfigError> {
        heads_of("text_cfg.heads", self.heads, "text_cfg.width", self.width)?;
        Ok(self.width / self.heads)
    }

    /// The MLP's hidden width, truncated as open_clip's `int(width * mlp_ratio)`.
    pub fn mlp_width(&self) -> usize {
        mlp_width(self.width, self.mlp_ratio)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        within("text_cfg.context_length", self.context_length, MAX_CONTEXT_LENGTH)?;
        within("text_cfg.vocab_size", self.vocab_size, MAX_VOCAB_SIZE)?;
        within("text_cfg.layers", self.layers, MAX_LAYERS)?;
        within("text_cfg.width", self.width, MAX_WIDTH)?;
        self.head_width()?;
        check_mlp_ratio("text_cfg.mlp_ratio", self.width, self.mlp_ratio)
    }
}

/// A patch dropout share: open_clip's `0 <= prob < 1`.
pub fn check_patch_dropout(field: &str, prob: f64) -> Result<(), ConfigError> {
    if (0.0..1.0).contains(&prob) {
        return Ok(());
    }
    Err(ConfigError::invalid(field, prob, "the share of patches dropped must be at least 0 and below 1"))
}

fn mlp_width(width: usize, mlp_ratio: f64) -> usize {
    // `as` truncates toward zero like Python's int() and maps NaN to 0, which
    // validation refuses.
    (width as f64 * mlp_ratio) as usize
}

fn at_least_one(field: &str, value: usize) -> Result<(), ConfigError> {
    if value == 0 { Err(ConfigError::invalid(field, value, "must be at least 1")) } else { Ok(()) }
}

/// `value` in 1..=`ceiling`.
fn within(field: &str, value: usize, ceiling: usize) -> Result<(), ConfigError> {
    within_in(field, value, ceiling, "")
}

/// [`within`], the ceiling given in `unit` (" px").
fn within_in(field: &str, value: usize, ceiling: usize, unit: &str) -> Result<(), ConfigError> {
    at_least_one(field, value)?;
    if value > ceiling {
        return Err(ConfigError::invalid(field, value, format!("above reclip's ceiling of {ceiling}{unit}")));
    }
    Ok(())
}

fn heads_of(field: &str, divisor: usize, width_field: &str, width: usize) -> Result<(), ConfigError> {
    if divisor == 0 || !width.is_multiple_of(divisor) {
        return Err(ConfigError::invalid(field, divisor, format!("must divide {width_field} = {width}")));
    }
    Ok(())
}

fn check_mlp_ratio(field: &str, width: usize, mlp_ratio: f64) -> Result<(), ConfigError> {
    if mlp_ratio > MAX_MLP_RATIO {
        return Err(ConfigError::invalid(field, mlp_ratio, format!("above reclip's ceiling of {MAX_MLP_RATIO}")));
    }
    if !mlp_ratio.is_finite() || mlp_width(width, mlp_ratio) == 0 {
        return Err(ConfigError::invalid(field, mlp_ratio, "must give an MLP at least 1 wide"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compared as sets: whether serde_json's maps keep insertion order
    /// depends on a crate feature.
    fn sorted<'a>(fields: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        let mut v: Vec<&str> = fields.into_iter().collect();
        v.sort_unstable();
        v
    }

    fn keys(value: &serde_json::Value) -> Vec<&str> {
        sorted(value.as_object().unwrap().keys().map(String::as_str))
    }

    /// The field lists drive the unknown-field check; they must be exactly
    /// what the structs read.
    #[test]
    fn field_lists_match_the_structs() {
        let doc = serde_json::to_value(ModelConfig::preset("ViT-B-16").unwrap()).unwrap();
        assert_eq!(keys(&doc), sorted(MODEL_FIELDS.iter().copied()));
        assert_eq!(keys(&doc["vision_cfg"]), sorted(VISION_FIELDS.iter().copied()));
        assert_eq!(keys(&doc["text_cfg"]), sorted(TEXT_FIELDS.iter().copied()));
    }
}
