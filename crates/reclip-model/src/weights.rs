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
//! (1, 0); the logit scale at ln(1/0.07).

use crate::ModelConfig;
use crate::checkpoint::{CheckpointError, StateDict};
use crate::config::ConfigError;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};
use reclip_autograd::Param;
use reclip_core::{DType, Device, Result, Tensor};
use std::path::Path;

pub struct LayerNormWeights {
    pub weight: Param,
    pub bias: Param,
}

pub struct AttentionWeights {
    pub in_proj_weight: Param,
    pub in_proj_bias: Param,
    pub out_proj_weight: Param,
    pub out_proj_bias: Param,
}

pub struct MlpWeights {
    pub fc_weight: Param,
    pub fc_bias: Param,
    pub proj_weight: Param,
    pub proj_bias: Param,
}

pub struct BlockWeights {
    pub ln_1: LayerNormWeights,
    pub attn: AttentionWeights,
    pub ln_2: LayerNormWeights,
    pub mlp: MlpWeights,
}

pub struct VisionWeights {
    pub conv1: Param,
    pub class_embedding: Param,
    pub positional_embedding: Param,
    pub ln_pre: LayerNormWeights,
    pub blocks: Vec<BlockWeights>,
    pub ln_post: LayerNormWeights,
    pub proj: Param,
}

pub struct TextWeights {
    pub token_embedding: Param,
    pub positional_embedding: Param,
    pub blocks: Vec<BlockWeights>,
    pub ln_final: LayerNormWeights,
    pub text_projection: Param,
}

pub struct ClipWeights {
    pub visual: VisionWeights,
    pub text: TextWeights,
    pub logit_scale: Param,
}

/// Draws the initial values, in a fixed order from one seeded stream.
struct Init<'a> {
    rng: reclip_core::Rng,
    device: &'a Device,
}

impl Init<'_> {
    fn make(&self, name: String, dims: &[usize], values: Vec<f64>) -> Result<Param> {
        Ok(Param::new(name, Tensor::from_f64s(&values, dims, DType::F32, self.device)?))
    }

    fn normal(&mut self, name: String, dims: &[usize], std: f64) -> Result<Param> {
        let n = dims.iter().product();
        let v = (0..n).map(|_| std * Distribution::<f64>::sample(&StandardNormal, &mut self.rng)).collect();
        self.make(name, dims, v)
    }

    fn uniform(&mut self, name: String, dims: &[usize], bound: f64) -> Result<Param> {
        let n = dims.iter().product();
        let dist = Uniform::new_inclusive(-bound, bound).expect("a finite bound");
        let v = (0..n).map(|_| self.rng.sample(dist)).collect();
        self.make(name, dims, v)
    }

    fn constant(&self, name: String, dims: &[usize], value: f64) -> Result<Param> {
        self.make(name, dims, vec![value; dims.iter().product()])
    }

    fn layer_norm(&self, prefix: &str, width: usize) -> Result<LayerNormWeights> {
        Ok(LayerNormWeights {
            weight: self.constant(format!("{prefix}.weight"), &[width], 1.0)?,
            bias: self.constant(format!("{prefix}.bias"), &[width], 0.0)?,
        })
    }
}

/// Standard deviations of the text tower's block weights; `None` keeps
/// PyTorch's module defaults (the image tower).
struct BlockStds {
    attn: f64,
    proj: f64,
    fc: f64,
}

fn block(init: &mut Init, prefix: &str, width: usize, mlp: usize, stds: Option<&BlockStds>) -> Result<BlockWeights> {
    let ln_1 = init.layer_norm(&format!("{prefix}.ln_1"), width)?;
    let in_proj_weight = match stds {
        Some(s) => init.normal(format!("{prefix}.attn.in_proj_weight"), &[3 * width, width], s.attn)?,
        None => init.uniform(
            format!("{prefix}.attn.in_proj_weight"),
            &[3 * width, width],
            (6.0 / (4 * width) as f64).sqrt(),
        )?,
    };
    let in_proj_bias = init.constant(format!("{prefix}.attn.in_proj_bias"), &[3 * width], 0.0)?;
    let out_proj_weight = match stds {
        Some(s) => init.normal(format!("{prefix}.attn.out_proj.weight"), &[width, width], s.proj)?,
        None => init.uniform(format!("{prefix}.attn.out_proj.weight"), &[width, width], (width as f64).powf(-0.5))?,
    };
    let out_proj_bias = init.constant(format!("{prefix}.attn.out_proj.bias"), &[width], 0.0)?;
    let ln_2 = init.layer_norm(&format!("{prefix}.ln_2"), width)?;
    let (w_in, w_out) = ((width as f64).powf(-0.5), (mlp as f64).powf(-0.5));
    let fc_weight = match stds {
        Some(s) => init.normal(format!("{prefix}.mlp.c_fc.weight"), &[mlp, width], s.fc)?,
        None => init.uniform(format!("{prefix}.mlp.c_fc.weight"), &[mlp, width], w_in)?,
    };
    let fc_bias = init.uniform(format!("{prefix}.mlp.c_fc.bias"), &[mlp], w_in)?;
    let proj_weight = match stds {
        Some(s) => init.normal(format!("{prefix}.mlp.c_proj.weight"), &[width, mlp], s.proj)?,
        None => init.uniform(format!("{prefix}.mlp.c_proj.weight"), &[width, mlp], w_out)?,
    };
    let proj_bias = init.uniform(format!("{prefix}.mlp.c_proj.bias"), &[width], w_out)?;
    Ok(BlockWeights {
        ln_1,
        attn: AttentionWeights { in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias },
        ln_2,
        mlp: MlpWeights { fc_weight, fc_bias, proj_weight, proj_bias },
    })
}

/// A configuration error as a tensor-layer error, for use inside `Result`.
pub(crate) fn config_error(e: ConfigError) -> reclip_core::Error {
    reclip_core::Error::invalid("model config", e.to_string())
}

impl ClipWeights {
    /// Fresh weights for `cfg`, with the image tower's positional embedding
    /// sized for `cfg.vision_cfg.image_size`.
    pub fn init(cfg: &ModelConfig, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate().map_err(config_error)?;
        let mut init = Init { rng: reclip_core::rng(seed), device };
        let v = &cfg.vision_cfg;
        let (w, p) = (v.width, v.patch_size);
        let grid = v.grid_size(v.image_size).map_err(config_error)?;
        let scale = (w as f64).powf(-0.5);
        let conv1 = init.uniform("visual.conv1.weight".into(), &[w, 3, p, p], (1.0 / (3 * p * p) as f64).sqrt())?;
        let class_embedding = init.normal("visual.class_embedding".into(), &[w], scale)?;
        let positional_embedding = init.normal("visual.positional_embedding".into(), &[grid * grid + 1, w], scale)?;
        let ln_pre = init.layer_norm("visual.ln_pre", w)?;
        let blocks = (0..v.layers)
            .map(|i| block(&mut init, &format!("visual.transformer.resblocks.{i}"), w, v.mlp_width(), None))
            .collect::<Result<_>>()?;
        let ln_post = init.layer_norm("visual.ln_post", w)?;
        let proj = init.normal("visual.proj".into(), &[w, cfg.embed_dim], scale)?;
        let visual = VisionWeights { conv1, class_embedding, positional_embedding, ln_pre, blocks, ln_post, proj };

        let t = &cfg.text_cfg;
        let tw = t.width;
        let stds = BlockStds {
            attn: (tw as f64).powf(-0.5),
            proj: (tw as f64).powf(-0.5) * ((2 * t.layers) as f64).powf(-0.5),
            fc: ((2 * tw) as f64).powf(-0.5),
        };
        let token_embedding = init.normal("token_embedding.weight".into(), &[t.vocab_size, tw], 0.02)?;
        let positional_embedding = init.normal("positional_embedding".into(), &[t.context_length, tw], 0.01)?;
        let blocks = (0..t.layers)
            .map(|i| block(&mut init, &format!("transformer.resblocks.{i}"), tw, t.mlp_width(), Some(&stds)))
            .collect::<Result<_>>()?;
        let ln_final = init.layer_norm("ln_final", tw)?;
        let text_projection = init.normal("text_projection".into(), &[tw, cfg.embed_dim], (tw as f64).powf(-0.5))?;
        let text = TextWeights { token_embedding, positional_embedding, blocks, ln_final, text_projection };

        let logit_scale = init.constant("logit_scale".into(), &[], (1.0f64 / 0.07).ln())?;
        Ok(ClipWeights { visual, text, logit_scale })
    }

    /// Every parameter, in open_clip's state-dict order.
    pub fn params(&self) -> Vec<Param> {
        fn ln(l: &LayerNormWeights, out: &mut Vec<Param>) {
            out.extend([l.weight.clone(), l.bias.clone()]);
        }
        fn blocks(bs: &[BlockWeights], out: &mut Vec<Param>) {
            for b in bs {
                ln(&b.ln_1, out);
                let a = &b.attn;
                out.extend([
                    a.in_proj_weight.clone(),
                    a.in_proj_bias.clone(),
                    a.out_proj_weight.clone(),
                    a.out_proj_bias.clone(),
                ]);
                ln(&b.ln_2, out);
                let m = &b.mlp;
                out.extend([m.fc_weight.clone(), m.fc_bias.clone(), m.proj_weight.clone(), m.proj_bias.clone()]);
            }
        }
        // open_clip's order: CLIP's own parameters, then the image tower,
        // the text transformer, the token embedding and ln_final.
        let mut out =
            vec![self.text.positional_embedding.clone(), self.text.text_projection.clone(), self.logit_scale.clone()];
        let v = &self.visual;
        out.extend([v.class_embedding.clone(), v.positional_embedding.clone(), v.proj.clone(), v.conv1.clone()]);
        ln(&v.ln_pre, &mut out);
        blocks(&v.blocks, &mut out);
        ln(&v.ln_post, &mut out);
        blocks(&self.text.blocks, &mut out);
        out.push(self.text.token_embedding.clone());
        ln(&self.text.ln_final, &mut out);
        out
    }
}

impl ClipWeights {
    /// The current values under their state-dict names.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        self.params().into_iter().map(|p| (p.name().to_string(), p.value())).collect()
    }

    /// Takes every value from `dict`, which must hold exactly this model's
    /// tensors with the same shapes; otherwise nothing is changed and the
    /// error lists every missing, unexpected and mis-shaped tensor.
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
            let device = p.value().device().clone();
            let t = dict.get(p.name()).expect("checked above");
            p.set_value(t.to_dtype(DType::F32)?.to_device(&device)?);
        }
        Ok(())
    }
}
