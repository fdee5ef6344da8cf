use super::{Context, Residual};
use crate::weights::Init;
use reclip_autograd::{Param, Var};
use reclip_core::Result;
use reclip_norm::{add_layer_norm, layer_norm};

/// LayerNorm epsilon, as open_clip's (PyTorch's default).
pub const LN_EPS: f32 = 1e-5;

/// open_clip's `LayerNorm` (`{prefix}.weight`, `{prefix}.bias`).
pub struct LayerNorm {
    pub weight: Param,
    pub bias: Param,
}

impl LayerNorm {
    /// (1, 0), as PyTorch initialises it.
    pub(crate) fn init(init: &Init, prefix: &str, width: usize) -> Result<Self> {
        Ok(LayerNorm {
            weight: init.constant(format!("{prefix}.weight"), &[width], 1.0)?,
            bias: init.constant(format!("{prefix}.bias"), &[width], 0.0)?,
        })
    }

    pub fn forward(&self, cx: &Context, x: &Var) -> Result<Var> {
        layer_norm(x, &cx.param(&self.weight)?, &cx.param(&self.bias)?, LN_EPS)
    }

    /// Adds the residual's pending update and normalises the sum in one pass:
    /// returns the stream and its normalisation.
    pub fn forward_residual(&self, cx: &Context, r: Residual) -> Result<(Var, Var)> {
        match r.update {
            None => {
                let y = self.forward(cx, &r.stream)?;
                Ok((r.stream, y))
            }
            Some(h) => add_layer_norm(&r.stream, &h, &cx.param(&self.weight)?, &cx.param(&self.bias)?, LN_EPS),
        }
    }

    pub(crate) fn params(&self, out: &mut Vec<Param>) {
        out.extend([self.weight.clone(), self.bias.clone()]);
    }
}
