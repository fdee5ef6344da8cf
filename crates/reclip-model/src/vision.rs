//! open_clip's `VisionTransformer`: the ViT stem, pre-LN blocks, the class
//! token pooled and projected.

use crate::ModelConfig;
use crate::layers::{BlockShape, Context, LayerNorm, Transformer};
use crate::patch_dropout::gather_kept;
use crate::weights::{Init, config_error};
use reclip_autograd::{Param, Var};
use reclip_core::{Indices, Result};
use reclip_embed::patch_embed;
use reclip_mlp::Activation;

pub struct VisionTower {
    pub conv1: Param,
    pub class_embedding: Param,
    /// Sized for one image size at a time (see `Clip::set_image_size`).
    pub positional_embedding: Param,
    pub ln_pre: LayerNorm,
    pub transformer: Transformer,
    pub ln_post: LayerNorm,
    pub proj: Param,
    pub patch_size: usize,
}

impl VisionTower {
    /// The class and positional embeddings and the projection N(0, width^-½);
    /// the conv and the blocks PyTorch's defaults.
    pub(crate) fn init(init: &mut Init, cfg: &ModelConfig, act: Activation) -> Result<Self> {
        let v = &cfg.vision_cfg;
        let (w, p) = (v.width, v.patch_size);
        let grid = v.grid_size(v.image_size).map_err(config_error)?;
        let scale = (w as f64).powf(-0.5);
        let conv1 = init.uniform("visual.conv1.weight".into(), &[w, 3, p, p], (1.0 / (3 * p * p) as f64).sqrt())?;
        let class_embedding = init.normal("visual.class_embedding".into(), &[w], scale)?;
        let positional_embedding = init.normal("visual.positional_embedding".into(), &[grid * grid + 1, w], scale)?;
        let ln_pre = LayerNorm::init(init, "visual.ln_pre", w)?;
        let heads = v.heads().map_err(config_error)?;
        let shape = BlockShape { width: w, mlp_width: v.mlp_width(), heads, causal: false, act };
        let transformer = Transformer::init(init, "visual.transformer", v.layers, shape, None)?;
        let ln_post = LayerNorm::init(init, "visual.ln_post", w)?;
        let proj = init.normal("visual.proj".into(), &[w, cfg.embed_dim], scale)?;
        Ok(VisionTower {
            conv1,
            class_embedding,
            positional_embedding,
            ln_pre,
            transformer,
            ln_post,
            proj,
            patch_size: p,
        })
    }

    /// Features [B, embed_dim] of `images` [B, 3, S, S] (in the compute
    /// dtype) with `positional_embedding` fitting their patch grid; with
    /// `kept` (patch dropout: [`crate::patch_dropout::kept_rows`]), the
    /// transformer sees those of the images' tokens only.
    pub fn forward(
        &self,
        cx: &Context,
        images: &Var,
        positional_embedding: &Var,
        kept: Option<&Indices>,
    ) -> Result<Var> {
        let (conv, cls) = (cx.param(&self.conv1)?, cx.param(&self.class_embedding)?);
        let mut x = patch_embed(images, &conv, &cls, positional_embedding, self.patch_size)?;
        if let Some(kept) = kept {
            x = gather_kept(&x, kept)?;
        }
        let x = self.transformer.forward(cx, self.ln_pre.forward(cx, &x)?)?;
        let (batch, width) = (x.tensor().dims()[0], x.tensor().dims()[2]);
        let class_token = x.narrow(1, 0, 1)?.reshape([batch, width])?;
        self.ln_post.forward(cx, &class_token)?.matmul(&cx.param(&self.proj)?)
    }

    /// Every parameter, in open_clip's state-dict order.
    pub(crate) fn params(&self, out: &mut Vec<Param>) {
        out.extend([
            self.class_embedding.clone(),
            self.positional_embedding.clone(),
            self.proj.clone(),
            self.conv1.clone(),
        ]);
        self.ln_pre.params(out);
        self.transformer.params(out);
        self.ln_post.params(out);
    }
}
