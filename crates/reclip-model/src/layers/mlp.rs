use super::Context;
use crate::weights::Init;
use reclip_autograd::{Param, Var};
use reclip_core::Result;
use reclip_mlp::{Activation, mlp};

/// open_clip's transformer MLP (`{prefix}.c_fc`, the activation, `{prefix}.c_proj`).
pub struct Mlp {
    pub fc_weight: Param,
    pub fc_bias: Param,
    pub proj_weight: Param,
    pub proj_bias: Param,
    pub act: Activation,
}

impl Mlp {
    /// PyTorch's Linear defaults (U(±1/√fan_in)), or N(0, stds) weights for the text tower.
    pub(crate) fn init(
        init: &mut Init,
        prefix: &str,
        width: usize,
        hidden: usize,
        act: Activation,
        stds: Option<(f64, f64)>,
    ) -> Result<Self> {
        let (w_in, w_out) = ((width as f64).powf(-0.5), (hidden as f64).powf(-0.5));
        let fc_name = format!("{prefix}.c_fc.weight");
        let fc_weight = match stds {
            Some((s, _)) => init.normal(fc_name, &[hidden, width], s)?,
            None => init.uniform(fc_name, &[hidden, width], w_in)?,
        };
        let fc_bias = init.uniform(format!("{prefix}.c_fc.bias"), &[hidden], w_in)?;
        let proj_name = format!("{prefix}.c_proj.weight");
        let proj_weight = match stds {
            Some((_, s)) => init.normal(proj_name, &[width, hidden], s)?,
            None => init.uniform(proj_name, &[width, hidden], w_out)?,
        };
        let proj_bias = init.uniform(format!("{prefix}.c_proj.bias"), &[width], w_out)?;
        Ok(Mlp { fc_weight, fc_bias, proj_weight, proj_bias, act })
    }

    pub fn forward(&self, cx: &Context, x: &Var) -> Result<Var> {
        let p = |w: &Param| cx.param(w);
        mlp(x, &p(&self.fc_weight)?, &p(&self.fc_bias)?, &p(&self.proj_weight)?, &p(&self.proj_bias)?, self.act)
    }

    pub(crate) fn params(&self, out: &mut Vec<Param>) {
        out.extend([self.fc_weight.clone(), self.fc_bias.clone(), self.proj_weight.clone(), self.proj_bias.clone()]);
    }
}
