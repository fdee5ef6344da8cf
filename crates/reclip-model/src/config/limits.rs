//! Ceilings on a model config's sizes, checked by [`super::ModelConfig::validate`]
//! before anything is sized from them. Each is far above any CLIP model
//! published (open_clip's largest, ViT-bigG-14, has 48 layers, width 1664,
//! 224 px images and 77 tokens), so they refuse only configs that are typos or
//! hostile; their point is that the parameter and token counts of a config
//! that passes them fit in 64 bits, and that a config file cannot make reclip
//! attempt an allocation that must fail. FLOP counts of configs near several
//! ceilings at once can still exceed 64 bits: they are counted with checked
//! arithmetic, and such a count is an error, never a wrapped number.

/// Transformer blocks per tower: 20× the deepest published CLIP tower.
pub const MAX_LAYERS: usize = 1024;

/// The widest a tower (`vision_cfg.width`, `text_cfg.width`) or the shared
/// embedding (`embed_dim`) may be: one weight matrix of this width squared
/// is already 16 GiB in f32.
pub const MAX_WIDTH: usize = 65536;

/// Text tokens the embedding table may hold: 2^20, eight times the largest
/// multilingual vocabularies in use (about 250k).
pub const MAX_VOCAB_SIZE: usize = 1_048_576;

/// Tokens per caption: 2^12, over fifty times CLIP's 77; attention work grows
/// with its square.
pub const MAX_CONTEXT_LENGTH: usize = 4096;

/// The largest image side in pixels, for the config and for every size the
/// model is run at (`--image-size`, `--low-res`, `--high-res`, a stage's
/// size): with 16 px patches a 4096 px image is already 65537 tokens.
pub const MAX_IMAGE_SIZE: usize = 4096;

/// The MLP's hidden width over the tower's width: sixteen times open_clip's 4.
pub const MAX_MLP_RATIO: f64 = 64.0;
