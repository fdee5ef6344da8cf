//! The CLIP model: open_clip's architecture assembled from reclip's layer
//! crates, running on any device in f32 or bf16.
//!
//! Weights are f32 master copies ([`ClipWeights`]); a bf16 forward casts each
//! parameter at use, so gradients come back in f32. The image tower's
//! positional embedding is sized for one image size at a time
//! ([`Clip::set_image_size`], which the trainer calls at a phase switch);
//! encoding images of another size uses a resized copy without changing the
//! weights, as evaluation at any size needs.

use crate::checkpoint::{self, CheckpointError, StateDict};
use crate::layers::Context;
use crate::patch_dropout::{PatchDropout, kept_rows};
use crate::weights::config_error;
use crate::{ClipWeights, ModelConfig};
use reclip_autograd::{FollowsParams, Param, Tape, Var};
use reclip_core::{DType, Device, Error, Indices, Result, Tensor};
use reclip_embed::resize_pos_embed;
use std::collections::HashMap;
use std::path::Path;

/// The metadata key under which a checkpoint carries its model config.
pub const CONFIG_KEY: &str = "reclip.model_config";

pub struct Clip {
    config: ModelConfig,
    weights: ClipWeights,
    device: Device,
    /// The image size the positional embedding currently fits.
    image_size: usize,
}

impl Clip {
    /// A freshly initialised model (open_clip's initialisation, seeded). A
    /// config whose weights cannot fit in the device's memory is refused with
    /// the estimate before anything is allocated.
    pub fn new(config: ModelConfig, seed: u64, device: &Device) -> Result<Self> {
        let weights = ClipWeights::init(&config, seed, device)?;
        let image_size = config.vision_cfg.image_size;
        Ok(Clip { config, weights, device: device.clone(), image_size })
    }

    /// A model with the weights of a safetensors checkpoint: ours (which
    /// carries its config) or open_clip's (pass the config). A positional
    /// embedding saved for another image size is accepted and the model
    /// works at that size, as open_clip's loader does by resizing.
    pub fn load(
        path: &Path,
        config: Option<ModelConfig>,
        device: &Device,
    ) -> std::result::Result<Self, CheckpointError> {
        Self::from_state_dict(&checkpoint::load(path)?, path, config, device)
    }

    /// [`Clip::load`] from a state dict already read from `path`.
    pub fn from_state_dict(
        dict: &StateDict,
        path: &Path,
        config: Option<ModelConfig>,
        device: &Device,
    ) -> std::result::Result<Self, CheckpointError> {
        let config = match (config, dict.metadata.get(CONFIG_KEY)) {
            (Some(c), _) => c,
            (None, Some(json)) => ModelConfig::from_json_str(json).map_err(|e| CheckpointError::Format {
                path: path.to_path_buf(),
                msg: format!("its model config: {e}"),
            })?,
            (None, None) => {
                return Err(CheckpointError::Format {
                    path: path.to_path_buf(),
                    msg: "it carries no model config (not saved by reclip): pass --model".into(),
                });
            }
        };
        let mut clip = Clip::new(config, 0, device)?;
        if let Some(pos) = dict.get("visual.positional_embedding")
            && let Some(size) = clip.size_for_positions(pos.dims())
            && size != clip.image_size
        {
            clip.set_image_size(size)?;
        }
        clip.weights.load_state_dict(dict, path)?;
        Ok(clip)
    }

    /// Saves the weights under open_clip's names, with the config (at the
    /// current image size) in the metadata.
    pub fn save(&self, path: &Path) -> std::result::Result<(), CheckpointError> {
        self.save_with(path, &[])
    }

    /// [`Clip::save`] with extra metadata entries.
    pub fn save_with(&self, path: &Path, extra: &[(&str, &str)]) -> std::result::Result<(), CheckpointError> {
        let mut config = self.config.clone();
        config.vision_cfg.image_size = self.image_size;
        let mut meta = HashMap::from([(CONFIG_KEY.to_string(), config.to_json()), ("format".into(), "pt".into())]);
        meta.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        checkpoint::save(path, &self.weights.state_dict(), meta)
    }

    /// The image size whose patch grid has `dims[0] - 1` positions, if any.
    /// Checked arithmetic: a checkpoint may claim any shape (an empty tensor
    /// of 2^63 rows costs nothing to store).
    fn size_for_positions(&self, dims: &[usize]) -> Option<usize> {
        let grid = ((dims.first()?.checked_sub(1)?) as f64).sqrt().round() as usize;
        (grid.checked_mul(grid)?.checked_add(1)? == dims[0])
            .then_some(grid.checked_mul(self.config.vision_cfg.patch_size)?)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn weights(&self) -> &ClipWeights {
        &self.weights
    }

    pub fn params(&self) -> Vec<Param> {
        self.weights.params()
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn image_size(&self) -> usize {
        self.image_size
    }

    fn grid(&self, size: usize) -> Result<usize> {
        self.config.vision_cfg.grid_size(size).map_err(config_error)
    }

    /// Resizes the positional embedding for `size` (bicubic, as open_clip's
    /// `resize_pos_embed`); returns whether it changed.
    pub fn set_image_size(&mut self, size: usize) -> Result<bool> {
        let grid = self.grid(size)?;
        if size == self.image_size {
            return Ok(false);
        }
        let pos = &self.weights.visual.positional_embedding;
        pos.set_value(resize_pos_embed(&pos.value(), grid)?);
        self.image_size = size;
        Ok(true)
    }

    /// [`Clip::set_image_size`], telling `state` (the optimizer) that the
    /// positional embedding was replaced and how to resize what follows it
    /// (bicubic, as the embedding itself).
    pub fn set_image_size_with(&mut self, size: usize, state: &mut dyn FollowsParams) -> Result<bool> {
        if !self.set_image_size(size)? {
            return Ok(false);
        }
        let grid = self.grid(size)?;
        state.resized(&self.weights.visual.positional_embedding, &|t| resize_pos_embed(t, grid))?;
        Ok(true)
    }

    /// Image features [B, embed_dim] (projected, not normalised) of images
    /// [B, 3, H, W] with H = W a multiple of the patch size.
    pub fn encode_image(&self, tape: &Tape, images: &Tensor, dtype: DType) -> Result<Var> {
        self.encode_image_dropping(tape, images, dtype, None)
    }

    /// [`Clip::encode_image`] in training, with FLIP's patch dropout when
    /// `dropout` says so.
    pub fn encode_image_dropping(
        &self,
        tape: &Tape,
        images: &Tensor,
        dtype: DType,
        dropout: Option<&PatchDropout>,
    ) -> Result<Var> {
        self.encode_image_kept(tape, images, dtype, self.kept_indices(images, dropout)?.as_ref())
    }

    /// [`Clip::kept_rows`] as indices on the model's device.
    pub fn kept_indices(&self, images: &Tensor, dropout: Option<&PatchDropout>) -> Result<Option<Indices>> {
        let Some(rows) = self.kept_rows(images, dropout)? else { return Ok(None) };
        let (len, bound) = (rows.len(), images.dims()[0] * (1 + self.grid(images.dims()[2])?.pow(2)));
        Indices::from_vec("patch_dropout", rows, [len], bound, &self.device).map(Some)
    }

    /// Where the tokens `images` [B, 3, S, S] keep under `dropout` lie
    /// among their B·(1 + N) tokens ([`crate::patch_dropout::kept_rows`]);
    /// `None` when nothing is dropped.
    pub fn kept_rows(&self, images: &Tensor, dropout: Option<&PatchDropout>) -> Result<Option<Vec<u32>>> {
        let Some(dropout) = dropout.filter(|d| d.prob > 0.0) else { return Ok(None) };
        let &[batch, _, size, _] = images.dims() else {
            return Err(Error::invalid(
                "encode_image",
                format!("expected images [B, 3, S, S], got {}", images.shape()),
            ));
        };
        let patches = self.grid(size)?.pow(2);
        kept_rows(&dropout.subsets(batch, patches), batch, 1 + patches).map(Some)
    }

    /// [`Clip::encode_image`] with the transformer seeing only the tokens
    /// at `kept` (from [`Clip::kept_rows`], on the model's device) when it
    /// is given.
    pub fn encode_image_kept(&self, tape: &Tape, images: &Tensor, dtype: DType, kept: Option<&Indices>) -> Result<Var> {
        let w = &self.weights.visual;
        let dims = images.dims();
        if dims.len() != 4 || dims[1] != 3 || dims[2] != dims[3] {
            return Err(Error::invalid(
                "encode_image",
                format!("expected images [B, 3, S, S], got {}", images.shape()),
            ));
        }
        let cx = Context { tape, dtype };
        let size = dims[2];
        let pos = if size == self.image_size {
            cx.param(&w.positional_embedding)?
        } else {
            Var::constant(resize_pos_embed(&w.positional_embedding.value(), self.grid(size)?)?.to_dtype(dtype)?)
        };
        let images = Var::constant(images.to_device(&self.device)?.to_dtype(dtype)?);
        w.forward(&cx, &images, &pos, kept)
    }

    /// Text features [B, embed_dim] (projected, not normalised) of token ids
    /// [B, L] (u32, L ≤ the context length): the end-of-text token's output,
    /// found as the largest id of each row (open_clip's `argmax`). Ids on the
    /// host, as the data loader makes them, are checked and their end-of-text
    /// positions found there, and both go to the device in one transfer each:
    /// nothing is read back. Ids already on a GPU are read back once.
    pub fn encode_text(&self, tape: &Tape, ids: &Tensor, dtype: DType) -> Result<Var> {
        let (tokens, eot) = self.text_indices(ids)?;
        self.encode_text_indices(tape, &tokens, &eot, dtype)
    }

    /// What [`Clip::encode_text`] makes of token ids [B, L] before the tower
    /// runs: the ids checked against the vocabulary, and each row's
    /// end-of-text position in the flattened [B·L] tokens (into B·L), as
    /// [`Indices`] on the model's device.
    pub fn text_indices(&self, ids: &Tensor) -> Result<(Indices, Indices)> {
        let t = &self.config.text_cfg;
        let (batch, len) = match ids.dims() {
            [b, l] if *l >= 1 && *l <= t.context_length => (*b, *l),
            _ => {
                return Err(Error::invalid(
                    "encode_text",
                    format!("expected token ids [B, L] with 1 ≤ L ≤ {}, got {}", t.context_length, ids.shape()),
                ));
            }
        };
        let tokens = Indices::new("encode_text", ids, t.vocab_size, &self.device)?;
        let eot = end_of_text(tokens.host(), len);
        let eot = Indices::from_vec("encode_text", eot, [batch], batch * len, &self.device)?;
        Ok((tokens, eot))
    }

    /// [`Clip::encode_text`] of indices made by [`Clip::text_indices`] (or
    /// rewritten in place since, as a recorded step's inputs are).
    pub fn encode_text_indices(&self, tape: &Tape, tokens: &Indices, eot: &Indices, dtype: DType) -> Result<Var> {
        self.weights.text.forward(&Context { tape, dtype }, tokens, eot)
    }

    /// The learnable log-temperature t (open_clip's `logit_scale`; the scale is exp(t)).
    pub fn logit_scale(&self) -> &Param {
        &self.weights.logit_scale
    }

    /// The learnable log-temperature, as a leaf of `tape`.
    pub fn log_scale(&self, tape: &Tape) -> Var {
        tape.param(&self.weights.logit_scale)
    }

    /// SigLIP's logit bias, for a model whose config has one.
    pub fn logit_bias(&self) -> Option<&Param> {
        self.weights.logit_bias.as_ref()
    }

    /// The logit bias as a leaf of `tape`, for a model that has one.
    pub fn bias(&self, tape: &Tape) -> Option<Var> {
        self.weights.logit_bias.as_ref().map(|b| tape.param(b))
    }

    /// Clamps the log-temperature to [0, ln 100], as open_clip does after each
    /// optimizer step: in place on its device, so that nothing is read back
    /// and the parameter keeps its storage (the optimizer's table of
    /// parameters stays valid).
    pub fn clamp_logit_scale(&self) -> Result<()> {
        let p = &self.weights.logit_scale;
        let mut t = p.take_value();
        let clamped = t.clamp_in_place(0.0, 100f64.ln());
        p.set_value(t);
        clamped
    }

    /// exp(t)·Î·T̂ᵀ for already computed features (evaluation).
    pub fn logits(&self, image_features: &Tensor, text_features: &Tensor) -> Result<Tensor> {
        let scale = self.weights.logit_scale.value().to_scalar()?.exp().min(100.0);
        let (i, t) = (normalize(image_features)?, normalize(text_features)?);
        i.matmul(&t.transpose(0, 1)?)?.scale(scale)
    }
}

/// Each row's end-of-text position in the flattened token ids `ids` (rows of
/// `len`): the position of its largest id, the first if tied (open_clip's
/// `argmax`).
pub fn end_of_text(ids: &[u32], len: usize) -> Vec<u32> {
    ids.chunks(len)
        .enumerate()
        .map(|(b, row)| {
            let pos = row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best });
            (b * len + pos) as u32
        })
        .collect()
}

/// Rows divided by their L2 norm (open_clip's F.normalize, eps 1e-12), in f32.
pub fn normalize(x: &Tensor) -> Result<Tensor> {
    let x = x.to_dtype(DType::F32)?;
    let norm = x.sqr()?.sum_dim(-1, true)?.sqrt()?.maximum(&Tensor::full(1e-12, [1], DType::F32, x.device())?)?;
    x.div(&norm)
}
