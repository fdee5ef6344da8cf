//! Analytic FLOPs of one sample through each tower, at any image size and
//! text length: the unit RECLIP states its savings in.
//!
//! The convention is that of open_clip's published profile
//! (`docs/model_profile.csv`, measured with `torch.utils.flop_counter`), which
//! these counts reproduce: 2 FLOPs per multiply-add, counting only matrix
//! products —
//! - the patch embedding (a convolution with stride = kernel = patch size, so
//!   one (3·p²) → width product per patch, no bias);
//! - in every layer, the q/k/v in-projection and the out-projection, QKᵀ and
//!   attention·V over every head, and the MLP's two layers; the text tower's
//!   scores are counted in full (L×L) although the causal mask zeroes half;
//! - the final projection, of the pooled token only (the class token, or the
//!   end-of-text token).
//!
//! The published text figures are at the full context length (77), as open_clip
//! pads every caption to it. Training costs 3× the forward: the backward
//! computes one product for the input's gradient and one for the weight's.
//!
//! Elementwise work is counted apart, since published figures leave it out,
//! with these FLOPs per element (a transcendental function counts as one):
//! LayerNorm 7 (sum for the mean, centre, square, sum for the variance, scale
//! by the inverse deviation, gain, bias); the attention scale 1 per query
//! element; softmax 5 per score (max, subtract, exp, sum, divide) and the
//! causal mask 1 more; GELU 5, 0.5·x·(1 + erf(x/√2)), and QuickGELU the same 5,
//! x / (1 + exp(−1.702·x)); 1 per bias, residual and position-embedding add.

use serde::Serialize;

use crate::config::{ConfigError, ModelConfig};
use crate::count::{product, sum};

const LAYER_NORM_PER_ELEMENT: u64 = 7;
const SCALE_PER_QUERY_ELEMENT: u64 = 1;
const SOFTMAX_PER_SCORE: u64 = 5;
const CAUSAL_MASK_PER_SCORE: u64 = 1;
const ACTIVATION_PER_ELEMENT: u64 = 5;
const TRAINING_OVER_FORWARD: u64 = 3;

/// Forward FLOPs of a tower's matrix products, by component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MatmulFlops {
    /// The patch convolution; zero in the text tower.
    pub patch_embed: u64,
    /// The q/k/v in-projection and the out-projection.
    pub attention_projections: u64,
    /// QKᵀ and attention·V.
    pub attention_products: u64,
    /// The MLP's two layers.
    pub mlp: u64,
    /// The pooled token's projection into the embedding space.
    pub projection: u64,
}

/// Forward FLOPs of a tower's elementwise work, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ElementwiseFlops {
    pub layer_norm: u64,
    /// The attention scale, the causal mask and the softmax.
    pub attention_softmax: u64,
    /// GELU or QuickGELU in the MLPs.
    pub activation: u64,
    pub bias: u64,
    /// Residual adds and the position-embedding add.
    pub additions: u64,
}

/// One sample through one tower.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TowerFlops {
    /// The sequence length: patches and class token, or text tokens.
    pub tokens: usize,
    pub matmul: MatmulFlops,
    pub elementwise: ElementwiseFlops,
    /// Matrix products only: the figure comparable with published ones.
    pub forward_gflops: f64,
    pub forward_elementwise_gflops: f64,
    /// 3× `forward_gflops`.
    pub training_gflops: f64,
    /// 3× `forward_elementwise_gflops`.
    pub training_elementwise_gflops: f64,
}

/// One sample (an image and its caption) through both towers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FlopsReport {
    pub image_size: usize,
    pub text_length: usize,
    /// FLIP's patch dropout probability the image tower's count is at.
    pub patch_dropout: f64,
    pub image: TowerFlops,
    pub text: TowerFlops,
    /// Both towers' matrix products.
    pub forward_gflops: f64,
    /// 3× `forward_gflops`.
    pub training_gflops: f64,
}

impl FlopsReport {
    /// Training PFLOPs of `samples` samples.
    pub fn training_pflops(&self, samples: u64) -> f64 {
        samples as f64 * self.training_gflops / 1e6
    }
}

impl MatmulFlops {
    /// The components' sum (which the constructors checked fits in a u64;
    /// saturating for one built by hand).
    pub fn total(&self) -> u64 {
        self.components().iter().fold(0, |total, (_, flops)| total.saturating_add(*flops))
    }

    /// The components with their names, in the order of the forward pass.
    pub fn components(&self) -> [(&'static str, u64); 5] {
        [
            ("patch embed", self.patch_embed),
            ("attention projections", self.attention_projections),
            ("attention products", self.attention_products),
            ("MLP", self.mlp),
            ("projection", self.projection),
        ]
    }
}

impl ElementwiseFlops {
    /// The components' sum (which the constructors checked fits in a u64;
    /// saturating for one built by hand).
    pub fn total(&self) -> u64 {
        self.components().iter().fold(0, |total, (_, flops)| total.saturating_add(*flops))
    }

    pub fn components(&self) -> [(&'static str, u64); 5] {
        [
            ("LayerNorm", self.layer_norm),
            ("attention softmax", self.attention_softmax),
            ("activation", self.activation),
            ("bias", self.bias),
            ("additions", self.additions),
        ]
    }
}

impl TowerFlops {
    /// Fails when a total, or the training count, overflows a u64; `what`
    /// names the tower.
    fn new(what: &str, tokens: usize, matmul: MatmulFlops, elementwise: ElementwiseFlops) -> Result<Self, ConfigError> {
        let forward = sum(what, &matmul.components().map(|(_, flops)| flops))?;
        let forward_elementwise = sum(what, &elementwise.components().map(|(_, flops)| flops))?;
        Ok(TowerFlops {
            tokens,
            matmul,
            elementwise,
            forward_gflops: giga(forward),
            forward_elementwise_gflops: giga(forward_elementwise),
            training_gflops: giga(product(what, &[TRAINING_OVER_FORWARD, forward])?),
            training_elementwise_gflops: giga(product(what, &[TRAINING_OVER_FORWARD, forward_elementwise])?),
        })
    }
}

/// Both towers at `image_size` pixels and `text_length` tokens.
pub fn model(config: &ModelConfig, image_size: usize, text_length: usize) -> Result<FlopsReport, ConfigError> {
    model_dropping(config, image_size, text_length, 0.0)
}

/// [`model`] in training under FLIP's patch dropout at probability
/// `patch_dropout`: the image transformer runs on the kept tokens.
pub fn model_dropping(
    config: &ModelConfig,
    image_size: usize,
    text_length: usize,
    patch_dropout: f64,
) -> Result<FlopsReport, ConfigError> {
    const WHAT: &str = "the model's FLOPs";
    let image = image_tower_dropping(config, image_size, patch_dropout)?;
    let text = text_tower(config, text_length)?;
    let forward = sum(WHAT, &[image.matmul.total(), text.matmul.total()])?;
    Ok(FlopsReport {
        image_size,
        text_length,
        patch_dropout,
        image,
        text,
        forward_gflops: giga(forward),
        training_gflops: giga(product(WHAT, &[TRAINING_OVER_FORWARD, forward])?),
    })
}

/// Both towers at the config's image size and full context length.
pub fn at_config_sizes(config: &ModelConfig) -> Result<FlopsReport, ConfigError> {
    model(config, config.vision_cfg.image_size, config.text_cfg.context_length)
}

/// The image tower on one `image_size`² image.
pub fn image_tower(config: &ModelConfig, image_size: usize) -> Result<TowerFlops, ConfigError> {
    image_tower_dropping(config, image_size, 0.0)
}

/// The image tower on one `image_size`² image in training under patch
/// dropout at `patch_dropout` (open_clip's `PatchDropout`): the patch
/// embedding and the position add cover every patch, and `ln_pre`, the
/// transformer and `ln_post` the class token and the patches kept.
pub fn image_tower_dropping(
    config: &ModelConfig,
    image_size: usize,
    patch_dropout: f64,
) -> Result<TowerFlops, ConfigError> {
    const WHAT: &str = "the image tower's FLOPs";
    let v = &config.vision_cfg;
    let tokens = v.tokens_per_image(image_size)?;
    let patches = tokens - 1;
    let kept = if patch_dropout > 0.0 { 1 + crate::patch_dropout::kept(patches, patch_dropout) } else { tokens };
    let stack = Stack {
        tokens: kept as u64,
        width: v.width as u64,
        mlp_width: v.mlp_width() as u64,
        heads: v.heads()? as u64,
        layers: v.layers as u64,
        causal: false,
    };
    let (mut matmul, mut elementwise) = stack.flops(WHAT)?;
    let patch = v.patch_size as u64;
    matmul.patch_embed = product(WHAT, &[2, patches as u64, 3, patch, patch, stack.width])?;
    matmul.projection = product(WHAT, &[2, stack.width, config.embed_dim as u64])?;
    let kept_elements = product(WHAT, &[stack.tokens, stack.width])?;
    // LayerNorms before the transformer and after it (on every kept token, then pooled).
    let pre_and_post = product(WHAT, &[2, LAYER_NORM_PER_ELEMENT, kept_elements])?;
    elementwise.layer_norm = sum(WHAT, &[elementwise.layer_norm, pre_and_post])?;
    let position_add = product(WHAT, &[tokens as u64, stack.width])?;
    elementwise.additions = sum(WHAT, &[elementwise.additions, position_add])?;
    TowerFlops::new(WHAT, kept, matmul, elementwise)
}

/// The text tower on one caption of `text_length` tokens (open_clip pads every
/// caption to the context length).
pub fn text_tower(config: &ModelConfig, text_length: usize) -> Result<TowerFlops, ConfigError> {
    const WHAT: &str = "the text tower's FLOPs";
    let t = &config.text_cfg;
    if text_length == 0 || text_length > t.context_length {
        return Err(ConfigError::TextLength { length: text_length, context_length: t.context_length });
    }
    t.head_width()?;
    let stack = Stack {
        tokens: text_length as u64,
        width: t.width as u64,
        mlp_width: t.mlp_width() as u64,
        heads: t.heads as u64,
        layers: t.layers as u64,
        causal: true,
    };
    let (mut matmul, mut elementwise) = stack.flops(WHAT)?;
    matmul.projection = product(WHAT, &[2, stack.width, config.embed_dim as u64])?;
    let token_elements = product(WHAT, &[stack.tokens, stack.width])?;
    // The final LayerNorm runs on every token before the end-of-text token is picked.
    let final_norm = product(WHAT, &[LAYER_NORM_PER_ELEMENT, token_elements])?;
    elementwise.layer_norm = sum(WHAT, &[elementwise.layer_norm, final_norm])?;
    elementwise.additions = sum(WHAT, &[elementwise.additions, token_elements])?;
    TowerFlops::new(WHAT, text_length, matmul, elementwise)
}

/// A stack of pre-norm transformer blocks, each LayerNorm → attention →
/// residual add, LayerNorm → MLP → residual add, over one sequence.
struct Stack {
    tokens: u64,
    width: u64,
    mlp_width: u64,
    heads: u64,
    layers: u64,
    causal: bool,
}

impl Stack {
    /// Fails when a count overflows a u64; `what` names the tower.
    fn flops(&self, what: &str) -> Result<(MatmulFlops, ElementwiseFlops), ConfigError> {
        let (n, w, m, l) = (self.tokens, self.width, self.mlp_width, self.layers);
        let p = |factors: &[u64]| product(what, factors);
        let matmul = MatmulFlops {
            patch_embed: 0,
            // (3·w + w) output columns: q, k, v and the out-projection.
            attention_projections: p(&[l, 2, n, w, 4, w])?,
            attention_products: p(&[l, 2, 2, n, n, w])?,
            mlp: p(&[l, 2, 2, n, w, m])?,
            projection: 0,
        };
        let per_score = SOFTMAX_PER_SCORE + if self.causal { CAUSAL_MASK_PER_SCORE } else { 0 };
        let softmax_per_layer = sum(what, &[p(&[SCALE_PER_QUERY_ELEMENT, n, w])?, p(&[per_score, self.heads, n, n])?])?;
        // q, k, v, out-projection, both MLP layers.
        let biases_per_token = sum(what, &[p(&[5, w])?, m])?;
        let elementwise = ElementwiseFlops {
            layer_norm: p(&[l, 2, LAYER_NORM_PER_ELEMENT, n, w])?,
            attention_softmax: p(&[l, softmax_per_layer])?,
            activation: p(&[l, ACTIVATION_PER_ELEMENT, n, m])?,
            bias: p(&[l, n, biases_per_token])?,
            additions: p(&[l, 2, n, w])?,
        };
        Ok((matmul, elementwise))
    }
}

fn giga(flops: u64) -> f64 {
    flops as f64 / 1e9
}
