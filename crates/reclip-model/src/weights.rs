//! The CLIP model's parameters, named and shaped exactly as open_clip's
//! state dict (`visual.conv1.weight`, `transformer.resblocks.0.attn.in_proj_weight`,
//! `logit_scale`, …), and their initialisation as open_clip does it.
//!
//! Initialisation (open_clip's `VisionTransformer`, `TextTransformer` and
//! PyTorch module defaults): the image tower's class and positional
//! embeddings and projection are N(0, width^-½); its conv and blocks keep
//! PyTorch's defaults (conv and Linear weights U(±1/√fan_in), Linear biases
//! likewise, the in-projection Xavier-uniform with zero bias, the
//! out-projection's bias zero). The text tower's token embedding is N(0, 0.02),
//! its positional embedding N(0, 0.01), and per block the in-projection
//! N(0, width^-½), the out-projection and c_proj N(0, width^-½·(2·layers)^-½),
//! c_fc N(0, (2·width)^-½); its projection N(0, width^-½). LayerNorms start at
//! (1, 0); the logit scale at the config's `init_logit_scale` (ln(1/0.07)
//! by default), SigLIP's logit bias, where the config has one, at its
//! `init_logit_bias`.

use crate::ModelConfig;
use crate::checkpoint::{CheckpointError, StateDict};
use crate::config::ConfigError;
use crate::finite::first_non_finite;
use crate::memory;
use crate::text::TextTower;
use crate::vision::VisionTower;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};
use reclip_autograd::Param;
use reclip_core::{DType, Device, Result, Tensor};
use std::path::Path;

/// Every parameter of a CLIP model, held by the layers that use them.
pub struct ClipWeights {
    pub visual: VisionTower,
    pub text: TextTower,
    pub logit_scale: Param,
    /// SigLIP's logit bias (open_clip's `logit_bias`), for a config with `init_logit_bias`.
    pub logit_bias: Option<Param>,
}

/// Draws the initial values, in a fixed order from one seeded stream.
pub(crate) struct Init<'a> {
    rng: reclip_core::Rng,
    device: &'a Device,
}

impl Init<'_> {
    fn make(&self, name: String, dims: &[usize], values: Vec<f64>) -> Result<Param> {
        Ok(Param::new(name, Tensor::from_f64s(&values, dims, DType::F32, self.device)?))
    }

    pub(crate) fn normal(&mut self, name: String, dims: &[usize], std: f64) -> Result<Param> {
        let n = dims.iter().product();
        let v = (0..n).map(|_| std * Distribution::<f64>::sample(&StandardNormal, &mut self.rng)).collect();
        self.make(name, dims, v)
    }

    pub(crate) fn uniform(&mut self, name: String, dims: &[usize], bound: f64) -> Result<Param> {
        let n = dims.iter().product();
        let dist = Uniform::new_inclusive(-bound, bound).expect("a finite bound");
        let v = (0..n).map(|_| self.rng.sample(dist)).collect();
        self.make(name, dims, v)
    }

    pub(crate) fn constant(&self, name: String, dims: &[usize], value: f64) -> Result<Param> {
        self.make(name, dims, vec![value; dims.iter().product()])
    }
}

/// A configuration error as a tensor-layer error, for use inside `Result`.
pub(crate) fn config_error(e: ConfigError) -> reclip_core::Error {
    reclip_core::Error::invalid("model config", e.to_string())
}

impl ClipWeights {
    /// Fresh weights for `cfg`, with the image tower's positional embedding
    /// sized for `cfg.vision_cfg.image_size`. A config whose weights alone
    /// exceed the device's memory is refused before anything is allocated.
    pub fn init(cfg: &ModelConfig, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate().map_err(config_error)?;
        let what = format!("allocating the model's weights on {device}");
        memory::check_fits_on(cfg, memory::weight_bytes, device, &what).map_err(config_error)?;
        let mut init = Init { rng: reclip_core::rng(seed), device };
        let visual = VisionTower::init(&mut init, cfg, cfg.image_activation())?;
        let text = TextTower::init(&mut init, cfg, cfg.text_activation())?;
        let logit_scale = init.constant("logit_scale".into(), &[], cfg.init_logit_scale)?;
        let logit_bias = cfg.init_logit_bias.map(|b| init.constant("logit_bias".into(), &[], b)).transpose()?;
        Ok(ClipWeights { visual, text, logit_scale, logit_bias })
    }

    /// Every parameter, in open_clip's state-dict order: CLIP's own
    /// parameters (logit_bias after logit_scale), then the image tower, the text transformer, the token
    /// embedding and ln_final.
    pub fn params(&self) -> Vec<Param> {
        let t = &self.text;
        let mut out = vec![t.positional_embedding.clone(), t.text_projection.clone(), self.logit_scale.clone()];
        out.extend(self.logit_bias.clone());
        self.visual.params(&mut out);
        t.transformer.params(&mut out);
        out.push(t.token_embedding.clone());
        t.ln_final.params(&mut out);
        out
    }
}

impl ClipWeights {
    /// The current values under their state-dict names.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        self.params().into_iter().map(|p| (p.name().to_string(), p.value())).collect()
    }

    /// Takes every value from `dict`, which must hold exactly this model's
    /// tensors with the same shapes, every value finite; otherwise nothing is
    /// changed and the error lists every missing, unexpected and mis-shaped
    /// tensor, or names the first tensor holding NaN or ±inf.
    pub fn load_state_dict(&self, dict: &StateDict, path: &Path) -> std::result::Result<(), CheckpointError> {
        let params = self.params();
        let mut problems = Vec::new();
        for p in &params {
            let want = p.value();
            match dict.get(p.name()) {
                None => problems.push(format!("missing tensor {} (shape {})", p.name(), want.shape())),
                Some(t) if t.dims() != want.dims() => problems.push(format!(
                    "{} has shape {} in the checkpoint, the model needs {}",
                    p.name(),
                    t.shape(),
                    want.shape()
                )),
                Some(t) if !t.dtype().is_float() => {
                    problems.push(format!("{} has dtype {}, expected a float dtype", p.name(), t.dtype()))
                }
                Some(_) => {}
            }
        }
        for (name, t) in &dict.tensors {
            if !params.iter().any(|p| p.name() == name) {
                problems.push(format!("unexpected tensor {name} (shape {})", t.shape()));
            }
        }
        if !problems.is_empty() {
            return Err(CheckpointError::Mismatch { path: path.to_path_buf(), problems });
        }
        for p in &params {
            let t = dict.get(p.name()).expect("checked above");
            if let Some(found) = first_non_finite(t)? {
                return Err(CheckpointError::NonFinite { path: path.to_path_buf(), name: p.name().to_string(), found });
            }
        }
        for p in &params {
            let device = p.value().device().clone();
            let t = dict.get(p.name()).expect("checked above");
            p.set_value(t.to_dtype(DType::F32)?.to_device(&device)?);
        }
        Ok(())
    }
}
