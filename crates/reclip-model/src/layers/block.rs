use super::{Attention, Context, LayerNorm, Mlp};
use crate::weights::Init;
use reclip_autograd::{Param, Var};
use reclip_core::Result;
use reclip_mlp::Activation;

/// The residual stream between sublayers, with the last sublayer's output
/// not yet added: the LayerNorm that starts the next sublayer adds it in the
/// same pass ([`LayerNorm::forward_residual`]).
pub struct Residual {
    pub stream: Var,
    pub update: Option<Var>,
}

impl Residual {
    pub fn new(x: Var) -> Self {
        Residual { stream: x, update: None }
    }

    /// The stream with its pending update added.
    pub fn into_var(self) -> Result<Var> {
        match self.update {
            Some(h) => self.stream.add(&h),
            None => Ok(self.stream),
        }
    }
}

/// Standard deviations of the text tower's block weights (open_clip's
/// `TextTransformer.init_parameters`); the image tower keeps PyTorch's defaults.
#[derive(Clone, Copy)]
pub(crate) struct BlockStds {
    pub attn: f64,
    pub proj: f64,
    pub fc: f64,
}

/// open_clip's pre-LN `ResidualAttentionBlock`: x + attn(ln_1(x)), then + mlp(ln_2(·)).
pub struct Block {
    pub ln_1: LayerNorm,
    pub attn: Attention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
}

/// What every block of a tower shares.
#[derive(Clone, Copy)]
pub(crate) struct BlockShape {
    pub width: usize,
    pub mlp_width: usize,
    pub heads: usize,
    pub causal: bool,
    pub act: Activation,
}

impl Block {
    pub(crate) fn init(init: &mut Init, prefix: &str, shape: BlockShape, stds: Option<BlockStds>) -> Result<Self> {
        let BlockShape { width, mlp_width, heads, causal, act } = shape;
        let ln_1 = LayerNorm::init(init, &format!("{prefix}.ln_1"), width)?;
        let attn_stds = stds.map(|s| (s.attn, s.proj));
        let attn = Attention::init(init, &format!("{prefix}.attn"), width, heads, causal, attn_stds)?;
        let ln_2 = LayerNorm::init(init, &format!("{prefix}.ln_2"), width)?;
        let mlp = Mlp::init(init, &format!("{prefix}.mlp"), width, mlp_width, act, stds.map(|s| (s.fc, s.proj)))?;
        Ok(Block { ln_1, attn, ln_2, mlp })
    }

    /// The block on the residual stream; its MLP's output is left pending
    /// for the next LayerNorm to add.
    pub fn forward(&self, cx: &Context, x: Residual) -> Result<Residual> {
        let (x, h) = self.ln_1.forward_residual(cx, x)?;
        let attended = self.attn.forward(cx, &h)?;
        let (x, h) = self.ln_2.forward_residual(cx, Residual { stream: x, update: Some(attended) })?;
        Ok(Residual { stream: x, update: Some(self.mlp.forward(cx, &h)?) })
    }

    pub(crate) fn params(&self, out: &mut Vec<Param>) {
        self.ln_1.params(out);
        self.attn.params(out);
        self.ln_2.params(out);
        self.mlp.params(out);
    }
}

/// A tower's stack of blocks (`{prefix}.resblocks.{i}`).
pub struct Transformer {
    pub blocks: Vec<Block>,
}

impl Transformer {
    pub(crate) fn init(
        init: &mut Init,
        prefix: &str,
        layers: usize,
        shape: BlockShape,
        stds: Option<BlockStds>,
    ) -> Result<Self> {
        let blocks = (0..layers)
            .map(|i| Block::init(init, &format!("{prefix}.resblocks.{i}"), shape, stds))
            .collect::<Result<_>>()?;
        Ok(Transformer { blocks })
    }

    pub fn forward(&self, cx: &Context, x: Var) -> Result<Var> {
        let mut r = Residual::new(x);
        for b in &self.blocks {
            r = b.forward(cx, r)?;
        }
        r.into_var()
    }

    pub(crate) fn params(&self, out: &mut Vec<Param>) {
        for b in &self.blocks {
            b.params(out);
        }
    }
}
