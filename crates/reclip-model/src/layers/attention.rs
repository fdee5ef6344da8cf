use super::Context;
use crate::weights::Init;
use reclip_attention::multi_head_attention;
use reclip_autograd::{Param, Var};
use reclip_core::Result;

/// open_clip's `nn.MultiheadAttention` self-attention (`{prefix}.in_proj_weight`,
/// `in_proj_bias`, `out_proj.weight`, `out_proj.bias`), causal in the text tower.
pub struct Attention {
    pub in_proj_weight: Param,
    pub in_proj_bias: Param,
    pub out_proj_weight: Param,
    pub out_proj_bias: Param,
    pub heads: usize,
    pub causal: bool,
}

impl Attention {
    /// PyTorch's defaults (Xavier-uniform in-projection, U(±1/√width)
    /// out-projection, zero biases), or N(0, stds) for the text tower.
    pub(crate) fn init(
        init: &mut Init,
        prefix: &str,
        width: usize,
        heads: usize,
        causal: bool,
        stds: Option<(f64, f64)>,
    ) -> Result<Self> {
        let in_name = format!("{prefix}.in_proj_weight");
        let in_proj_weight = match stds {
            Some((s, _)) => init.normal(in_name, &[3 * width, width], s)?,
            None => init.uniform(in_name, &[3 * width, width], (6.0 / (4 * width) as f64).sqrt())?,
        };
        let in_proj_bias = init.constant(format!("{prefix}.in_proj_bias"), &[3 * width], 0.0)?;
        let out_name = format!("{prefix}.out_proj.weight");
        let out_proj_weight = match stds {
            Some((_, s)) => init.normal(out_name, &[width, width], s)?,
            None => init.uniform(out_name, &[width, width], (width as f64).powf(-0.5))?,
        };
        let out_proj_bias = init.constant(format!("{prefix}.out_proj.bias"), &[width], 0.0)?;
        Ok(Attention { in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias, heads, causal })
    }

    pub fn forward(&self, cx: &Context, x: &Var) -> Result<Var> {
        multi_head_attention(
            x,
            &cx.param(&self.in_proj_weight)?,
            &cx.param(&self.in_proj_bias)?,
            &cx.param(&self.out_proj_weight)?,
            &cx.param(&self.out_proj_bias)?,
            self.heads,
            self.causal,
        )
    }

    pub(crate) fn params(&self, out: &mut Vec<Param>) {
        out.extend([
            self.in_proj_weight.clone(),
            self.in_proj_bias.clone(),
            self.out_proj_weight.clone(),
            self.out_proj_bias.clone(),
        ]);
    }
}
