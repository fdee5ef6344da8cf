//! open_clip's text tower: token and positional embeddings, causal pre-LN
//! blocks, the end-of-text token pooled, normalised and projected.

use crate::ModelConfig;
use crate::layers::{BlockShape, BlockStds, Context, LayerNorm, Transformer};
use crate::weights::Init;
use reclip_autograd::{Param, Var};
use reclip_core::{Indices, Result};
use reclip_embed::token_embed;
use reclip_mlp::Activation;

pub struct TextTower {
    pub token_embedding: Param,
    pub positional_embedding: Param,
    pub transformer: Transformer,
    pub ln_final: LayerNorm,
    pub text_projection: Param,
}

impl TextTower {
    /// open_clip's `TextTransformer` initialisation: token embedding N(0,
    /// 0.02), positions N(0, 0.01), block weights per [`BlockStds`], the
    /// projection N(0, width^-½).
    pub(crate) fn init(init: &mut Init, cfg: &ModelConfig, act: Activation) -> Result<Self> {
        let t = &cfg.text_cfg;
        let tw = t.width;
        let stds = BlockStds {
            attn: (tw as f64).powf(-0.5),
            proj: (tw as f64).powf(-0.5) * ((2 * t.layers) as f64).powf(-0.5),
            fc: ((2 * tw) as f64).powf(-0.5),
        };
        let token_embedding = init.normal("token_embedding.weight".into(), &[t.vocab_size, tw], 0.02)?;
        let positional_embedding = init.normal("positional_embedding".into(), &[t.context_length, tw], 0.01)?;
        let shape = BlockShape { width: tw, mlp_width: t.mlp_width(), heads: t.heads, causal: true, act };
        let transformer = Transformer::init(init, "transformer", t.layers, shape, Some(stds))?;
        let ln_final = LayerNorm::init(init, "ln_final", tw)?;
        let text_projection = init.normal("text_projection".into(), &[tw, cfg.embed_dim], (tw as f64).powf(-0.5))?;
        Ok(TextTower { token_embedding, positional_embedding, transformer, ln_final, text_projection })
    }

    /// Features [B, embed_dim] of `tokens` [B, L] pooled at `eot`, each row's
    /// end-of-text position in the flattened [B·L] tokens.
    pub fn forward(&self, cx: &Context, tokens: &Indices, eot: &Indices) -> Result<Var> {
        let x = token_embed(tokens, &cx.param(&self.token_embedding)?, &cx.param(&self.positional_embedding)?)?;
        let x = self.transformer.forward(cx, x)?;
        let dims = x.tensor().dims().to_vec();
        // LayerNorm is per token, so normalising only the pooled tokens
        // equals open_clip's ln_final-then-pool.
        let pooled = x.reshape([dims[0] * dims[1], dims[2]])?.index_select(0, eot)?;
        self.ln_final.forward(cx, &pooled)?.matmul(&cx.param(&self.text_projection)?)
    }
}
