//! The floor of one training step on an H200, launch by launch: every kernel,
//! GEMM, device copy and upload that `reclip_train::train_step` issues for a
//! bf16 step on one GPU (both towers forward, the contrastive loss, the
//! backward, AdamW, the temperature clamp), each with its FLOPs and the
//! fewest bytes it must move, and from them the step's floor and a predicted
//! step time and MFU. It computes; it needs no device.
//!
//! # What a row counts
//!
//! - FLOPs: matrix products at 2 per multiply-add (open_clip's convention,
//!   as [`crate::flops`]), kept apart from everything else, which is counted
//!   with [`crate::flops`]'s FLOPs per element (LayerNorm 7, GELU 5, softmax
//!   5 per score, 1 per add) and, for the backward kernels it has no count
//!   for, with the estimates in [`per_element`].
//! - Bytes: each input read once and each output written once, at its
//!   dtype, as the kernel is launched: a two-pass reduction's f32 partial
//!   sums count once written and once read, with the split rules of the
//!   crates that launch them (copied here, with where from); a GEMM reads A
//!   and B and writes C (and reads C when it accumulates onto it).
//! - The floor of a row: max(FLOPs / 790 TFLOP/s, bytes / 4.3 TB/s), both
//!   rates measured on an H200 (dense bf16 GEMM throughput, HBM3e copy
//!   bandwidth). Uploads cross PCIe, not HBM: their floor is bytes / 64 GB/s,
//!   PCIe Gen5 x16 by its specification (not measured).
//! - A row groups `count` identical launches per step. Two kinds of row group
//!   launches of one zero-FLOP kernel over different sizes, whose floors add
//!   up to the row's: the parameter casts and the optimizer's gradient copies.
//!
//! # The step modelled: with issue 20's two changes
//!
//! - The linear layers' bias is in the GEMM through cuBLASLt epilogues
//!   (`reclip_core::GemmEpilogue`): the bias added in the forward GEMM, its
//!   gradient summed by the weight-gradient GEMM. The MLP's activation has a
//!   kernel each way between the GEMMs (`act_fwd`, `act_bwd`) for the exact
//!   GELU and QuickGELU; a tower whose config asks for GELU's tanh
//!   approximation (`act_kwargs`) has it in the GEMMs instead: c_fc's
//!   forward GEMM applies it and saves the pre-activation (GELU_AUX_BIAS),
//!   c_proj's input-gradient GEMM applies its derivative and sums c_fc's
//!   bias gradient (DGELU_BGRAD).
//! - bf16 attention runs on tensor cores (kernels/attention_mma.cu):
//!   `attention_mma_fwd_hw{32,64,128}_bf16` (keeping each row's
//!   logsumexp), then in the backward `attention_mma_bwd_dq_*` (which also
//!   writes rowsum(dO∘O)) and `attention_mma_bwd_dkv_*`. Sequences longer
//!   than [`MMA_MAX_LEN`] take the CUDA-core `attention_*` kernels
//!   (kernels/attention.cu), predicted as CUDA-core f32 work.
//!
//! # What the table counts that [`crate::flops`] does not
//!
//! Its matrix products equal B × [`crate::flops`]'s training FLOPs (3 × the
//! forward), but for (a test checks the identity):
//! - attention's backward recomputes the scores in both of its kernels and
//!   dP = dO·Vᵀ in both: 4 + 6 + 8 = 18 L²·d per (sample, head) forward and
//!   backward, against 3 × 4 = 12;
//! - the patch embedding's GEMM runs over the class tokens' rows too (zeros),
//!   and it has no input gradient (the images are constants): 2 GEMMs of
//!   T rows rather than 3 of T − 1;
//! - the contrastive loss's logits, on CUDA cores in f32, forward and backward.
//!
//! Attention's scores are counted L×L per (sample, head), causal ones too,
//! as [`crate::flops`] counts them. The tensor-core kernels pad L to a
//! multiple of 16 (197 → 208) and, when causal, skip the 16-column tiles a
//! row block cannot see (at 77 tokens they compute about 65 % of L×L).
//!
//! # The prediction
//!
//! Each row runs at its kind's fraction of the floor's rates, and every
//! launch costs a fixed overhead on top, smaller when the step is replayed
//! as a CUDA graph (as `reclip train` does on one GPU) than with plain
//! launches: [`ASSUMED`], constants with their reasons, none of them
//! measured. MFU is [`crate::flops`]'s training FLOPs
//! of the step over the predicted time and the dense bf16 peak `reclip speed`
//! takes for an H200 (989 TFLOP/s).
//!
//! Not modelled: the three uploads synchronise the stream (the CUDA backend's
//! `write` waits for its copy), so the text tower's uploads wait for the
//! image tower's forward to finish, and the GPU then waits for the host's
//! next launches; the launch overhead stands for that too.

use serde::Serialize;

use crate::config::{ConfigError, ModelConfig};
use crate::flops;
use reclip_attention::mma_tiles::MMA_MAX_LEN;
use reclip_mlp::Activation;

/// Dense bf16 GEMM throughput measured on an H200, FLOP/s: the floor's compute rate.
pub const H200_BF16_FLOPS: f64 = 790e12;
/// HBM3e bandwidth measured on an H200, bytes/s: the floor's memory rate.
pub const H200_HBM_BYTES_PER_S: f64 = 4.3e12;
/// The H200's host link, PCIe Gen5 x16: 64 GB/s a direction by the
/// specification (not measured). The uploads' floor.
pub const H200_PCIE_BYTES_PER_S: f64 = 64e9;

/// What the prediction assumes: the fraction of the floor's rate each kind
/// of launch reaches, and what a launch costs beyond its work.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Assumptions {
    /// cuBLAS(Lt) bf16 GEMMs, of 790 TFLOP/s.
    pub gemm: f64,
    /// The tensor-core attention kernels' products, of 790 TFLOP/s.
    pub attention: f64,
    /// f32 arithmetic on CUDA cores (the loss's tiled logits, elementwise
    /// kernels' FLOPs), of 790 TFLOP/s.
    pub cuda_cores: f64,
    /// Every launch's memory traffic but the uploads', of 4.3 TB/s.
    pub memory: f64,
    /// Host-to-device copies, of 64 GB/s.
    pub upload: f64,
    /// Each launch's cost beyond its work when the step is replayed as a
    /// CUDA graph (reclip's default on one GPU), seconds.
    pub launch_overhead_s: f64,
    /// The same with plain launches: data-parallel runs, `--cuda-graphs
    /// off`, or a step that could not be recorded.
    pub plain_launch_overhead_s: f64,
}

impl Assumptions {
    /// These assumptions for a step of plain launches.
    pub fn with_plain_launches(self) -> Self {
        Assumptions { launch_overhead_s: self.plain_launch_overhead_s, ..self }
    }
}

/// The prediction's assumptions. None is measured: no GPU has run reclip
/// yet. Once `reclip speed` has, these are the numbers to fit.
pub const ASSUMED: Assumptions = Assumptions {
    // 790 TFLOP/s is the card's measured bf16 GEMM rate; CLIP's GEMMs are
    // smaller than a rate is measured on: K of 512 to 3072, at 64 px an M
    // of 4352 image rows (a few waves of tiles over 132 SMs), and weight
    // gradients that reduce over all token rows.
    gemm: 0.70,
    // At head width 64 a score costs 4·64 tensor-core FLOPs forward but one
    // exponential on the special-function units (16 a clock per SM, about
    // 4·10¹² a second): the exponentials alone take ~80 % as long as the
    // products. FlashAttention-2 runs at about a third of an H100's dense
    // peak at long sequences (as FlashAttention-3's authors measure it);
    // CLIP's 17 to 197 tokens fill fewer tiles, some of them partly.
    attention: 0.35,
    // The datasheet's 67 TFLOP/s of f32 is 8.5 % of 790; the loss's tiled
    // kernels are assumed to reach 60 % of that.
    cuda_cores: 0.05,
    // Grid-stride kernels over megabytes reach 80–90 % of a copy's
    // bandwidth; the small ones (biases, LayerNorm parameters, the pooled
    // tokens, most parameter casts) do not fill the GPU.
    memory: 0.75,
    // The batches come from pageable host memory (plain Vecs, from the
    // loader and from `speed`), which the driver stages through pinned
    // buffers: a third of the link (22 GB/s) is assumed.
    upload: 0.35,
    // A replayed graph issues its kernels from the device: what remains is
    // the GPU's gap between dependent kernels (~1 µs).
    launch_overhead_s: 1.0e-6,
    // Plain launches add the host's cost to issue each (the driver call,
    // reclip's tape and allocation: several µs) where longer kernels do not
    // hide it: the runs of short ones (parameter casts, the optimizer's
    // copies).
    plain_launch_overhead_s: 2.5e-6,
};

/// FLOPs per element of the kernels [`crate::flops`] has no count for
/// (backward kernels, the loss, the optimizer): estimates in its convention,
/// a transcendental function counting one.
pub mod per_element {
    /// [`crate::flops`]'s counts, which the forward kernels follow.
    pub const LAYER_NORM: f64 = 7.0;
    pub const GELU: f64 = 5.0;
    pub const SOFTMAX_PER_SCORE: f64 = 5.0;
    pub const CAUSAL_MASK_PER_SCORE: f64 = 1.0;
    pub const SCALE_PER_QUERY_ELEMENT: f64 = 1.0;
    pub const ADD: f64 = 1.0;
    /// x̂ (2), γ·dy (1), the two row sums (2), dx (5), dγ and dβ (3).
    pub const LAYER_NORM_BACKWARD: f64 = 13.0;
    /// GELU′(u) (7), times dh (1).
    pub const GELU_BACKWARD: f64 = 8.0;
    /// P = exp(S − lse) (2), dS = P·(dP − D) (2); in both backward kernels.
    pub const SOFTMAX_BACKWARD_PER_SCORE: f64 = 4.0;
    /// D = rowsum(dO ∘ O), per output element.
    pub const ROW_DOT: f64 = 2.0;
    /// Square, sum, divide.
    pub const NORMALIZE: f64 = 3.0;
    /// Back through the normalisation: the row dot and the combination.
    pub const DENORMALIZE: f64 = 4.0;
    /// Per logit of the loss's forward: scale, running max, exp, sum, label.
    pub const LOGIT: f64 = 5.0;
    /// Per logit of the loss's backward: recomputed softmax of rows and
    /// columns, the label's delta, the temperature's partial sum.
    pub const LOGIT_BACKWARD: f64 = 8.0;
    /// One squared gradient summed.
    pub const GRAD_SQUARE: f64 = 2.0;
    /// kernels/adamw.cu's update: clip scale, both moments, decay, the step.
    pub const ADAMW: f64 = 16.0;
}

const BF16: f64 = 2.0;
const F32: f64 = 4.0;
const U32: f64 = 4.0;

/// Elements per chunk of the fused AdamW step (crates/reclip-optim/src/adamw/gpu.rs).
const ADAM_CHUNK: f64 = 65536.0;
/// Bytes of one row of its chunk table (`AdamChunk`).
const ADAM_CHUNK_ROW: f64 = 48.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Fwd,
    Bwd,
    Opt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tower {
    Image,
    Text,
    Loss,
    /// The optimizer and the temperature clamp, over every parameter.
    All,
}

/// What a launch runs on, which sets its predicted efficiency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Gemm,
    Attention,
    /// f32 tiled products on CUDA cores: the contrastive loss's, and
    /// attention's beyond the tensor-core kernels' sequence length.
    CudaCore,
    /// Elementwise kernels, reductions, device copies and memsets.
    Memory,
    /// Host-to-device copies.
    Upload,
}

/// Which of a row's floors is the larger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    Compute,
    Memory,
    Pcie,
}

macro_rules! names {
    ($($ty:ident { $($variant:ident => $name:literal),* })*) => {$(
        impl $ty {
            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }
        }
    )*};
}

names! {
    Phase { Fwd => "fwd", Bwd => "bwd", Opt => "opt" }
    Tower { Image => "image", Text => "text", Loss => "loss", All => "all" }
    Kind { Gemm => "gemm", Attention => "attention", CudaCore => "cuda_core", Memory => "memory", Upload => "upload" }
    Bound { Compute => "compute", Memory => "memory", Pcie => "pcie" }
}

/// `count` launches of one kernel or GEMM in one step; FLOPs and bytes are
/// those of all `count` together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub phase: Phase,
    pub tower: Tower,
    /// Where in the model, by open_clip's module names.
    pub layer: &'static str,
    /// The kernel's name as reclip launches it, or the GEMM's role, epilogue
    /// and m×n×k.
    pub kernel: String,
    pub kind: Kind,
    pub count: u64,
    /// Matrix products, 2 per multiply-add.
    pub matmul_flops: f64,
    /// Everything else ([`per_element`]).
    pub other_flops: f64,
    pub bytes: f64,
}

impl Row {
    pub fn flops(&self) -> f64 {
        self.matmul_flops + self.other_flops
    }

    fn compute_s(&self) -> f64 {
        self.flops() / H200_BF16_FLOPS
    }

    fn transfer_s(&self) -> f64 {
        let rate = if self.kind == Kind::Upload { H200_PCIE_BYTES_PER_S } else { H200_HBM_BYTES_PER_S };
        self.bytes / rate
    }

    /// max(FLOPs / 790 TFLOP/s, bytes / 4.3 TB/s), or bytes / 64 GB/s for an upload.
    pub fn floor_s(&self) -> f64 {
        self.compute_s().max(self.transfer_s())
    }

    pub fn bound(&self) -> Bound {
        match self.kind {
            Kind::Upload => Bound::Pcie,
            _ if self.compute_s() > self.transfer_s() => Bound::Compute,
            _ => Bound::Memory,
        }
    }

    /// The row at `assumed`'s fractions of the floor's rates, with its launches' overhead.
    pub fn predicted_s(&self, assumed: &Assumptions) -> f64 {
        let (compute, transfer) = match self.kind {
            Kind::Gemm => (assumed.gemm, assumed.memory),
            Kind::Attention => (assumed.attention, assumed.memory),
            Kind::CudaCore | Kind::Memory => (assumed.cuda_cores, assumed.memory),
            Kind::Upload => (1.0, assumed.upload),
        };
        let work = (self.compute_s() / compute).max(self.transfer_s() / transfer);
        work + self.count as f64 * assumed.launch_overhead_s
    }
}

/// The predicted step: its work at the assumed efficiencies plus the launches' overhead.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prediction {
    pub step_s: f64,
    pub work_s: f64,
    pub launch_overhead_s: f64,
}

/// One training step at one image size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Roofline {
    pub image_size: usize,
    pub image_tokens: usize,
    pub batch_size: usize,
    pub text_length: usize,
    pub rows: Vec<Row>,
    /// [`crate::flops`]'s training FLOPs of the step (B × 3 × the forward's
    /// matrix products): what MFU is stated in.
    pub model_flops: f64,
}

impl Roofline {
    pub fn launches(&self) -> u64 {
        self.rows.iter().map(|r| r.count).sum()
    }

    pub fn flops(&self) -> f64 {
        self.rows.iter().map(Row::flops).sum()
    }

    pub fn matmul_flops(&self) -> f64 {
        self.rows.iter().map(|r| r.matmul_flops).sum()
    }

    pub fn bytes(&self) -> f64 {
        self.rows.iter().map(|r| r.bytes).sum()
    }

    /// The step's floor: every launch at its own floor, one after another.
    pub fn floor_s(&self) -> f64 {
        self.rows.iter().map(Row::floor_s).sum()
    }

    pub fn phase_floor_s(&self, phase: Phase) -> f64 {
        self.rows.iter().filter(|r| r.phase == phase).map(Row::floor_s).sum()
    }

    pub fn predict(&self, assumed: &Assumptions) -> Prediction {
        let step_s: f64 = self.rows.iter().map(|r| r.predicted_s(assumed)).sum();
        let launch_overhead_s = self.launches() as f64 * assumed.launch_overhead_s;
        Prediction { step_s, work_s: step_s - launch_overhead_s, launch_overhead_s }
    }

    /// Model FLOPs utilisation of a step taking `step_s` against `peak_flops`.
    pub fn mfu(&self, step_s: f64, peak_flops: f64) -> f64 {
        self.model_flops / step_s / peak_flops
    }
}

/// One bf16 training step of `config` on `batch_size` pairs of
/// `image_size`² images and `text_length`-token captions.
pub fn training_step(
    config: &ModelConfig,
    image_size: usize,
    batch_size: usize,
    text_length: usize,
) -> Result<Roofline, ConfigError> {
    // Checks the image size and the text length.
    let report = flops::model(config, image_size, text_length)?;
    let image = Stack::image(config, image_size, batch_size)?;
    let text = Stack::text(config, text_length, batch_size)?;
    let params = Parameters::of(config, image_size)?;
    let mut t = Table::default();
    let step = Step { config, image_size, image: &image, text: &text, params: &params };
    step.image_forward(&mut t);
    step.text_forward(&mut t);
    step.loss_forward(&mut t);
    step.loss_backward(&mut t);
    step.text_backward(&mut t);
    step.image_backward(&mut t);
    step.optimizer(&mut t);
    let per_sample = (report.image.matmul.total() + report.text.matmul.total()) as f64;
    let roofline = Roofline {
        image_size,
        image_tokens: report.image.tokens,
        batch_size,
        text_length,
        rows: t.rows,
        model_flops: 3.0 * per_sample * batch_size as f64,
    };
    // f64 counts exactly below 2⁵³; a batch that large is no real one.
    let exact = |v: f64| v.is_finite() && v < 9.007e15;
    if !(exact(roofline.flops()) && exact(roofline.bytes()) && exact(roofline.model_flops)) {
        let reason = "a step's FLOPs or bytes pass 2^53, beyond which they are not counted exactly";
        return Err(ConfigError::invalid("batch size", batch_size, reason));
    }
    Ok(roofline)
}

/// One tower's transformer at one sequence length, and the batch.
struct Stack {
    tower: Tower,
    batch: f64,
    tokens: f64,
    width: f64,
    mlp_width: f64,
    heads: f64,
    head_width: usize,
    layers: u64,
    causal: bool,
    activation: Activation,
}

impl Stack {
    /// Whether the MLP's activation rides in its GEMMs.
    fn fused_gelu(&self) -> bool {
        reclip_mlp::activation_in_gemm(self.activation, self.mlp_width as usize)
    }

    fn image(config: &ModelConfig, image_size: usize, batch: usize) -> Result<Self, ConfigError> {
        let v = &config.vision_cfg;
        Ok(Stack {
            tower: Tower::Image,
            batch: batch as f64,
            tokens: v.tokens_per_image(image_size)? as f64,
            width: v.width as f64,
            mlp_width: v.mlp_width() as f64,
            heads: v.heads()? as f64,
            head_width: attention_head_width("vision_cfg.head_width", v.head_width)?,
            layers: v.layers as u64,
            causal: false,
            activation: config.image_activation(),
        })
    }

    fn text(config: &ModelConfig, text_length: usize, batch: usize) -> Result<Self, ConfigError> {
        let t = &config.text_cfg;
        Ok(Stack {
            tower: Tower::Text,
            batch: batch as f64,
            tokens: text_length as f64,
            width: t.width as f64,
            mlp_width: t.mlp_width() as f64,
            heads: t.heads as f64,
            head_width: attention_head_width("text_cfg.heads", t.head_width()?)?,
            layers: t.layers as u64,
            causal: true,
            activation: config.text_activation(),
        })
    }

    /// Token rows of the batch.
    fn rows(&self) -> f64 {
        self.batch * self.tokens
    }

    /// Scores of one layer: tokens² per (sample, head).
    fn scores(&self) -> f64 {
        self.batch * self.heads * self.tokens * self.tokens
    }

    /// Per-row statistics of one layer's attention ([B, heads, L], f32).
    fn row_stats_bytes(&self) -> f64 {
        self.batch * self.heads * self.tokens * F32
    }

    /// One of the attention kernels, `fwd`, `bwd_dq` or `bwd_dkv`, at this
    /// stack's head width: on tensor cores up to [`MMA_MAX_LEN`] tokens, on
    /// CUDA cores beyond.
    fn attention_kernel(&self, which: &str) -> (String, Kind) {
        let d = self.head_width;
        if self.tokens <= MMA_MAX_LEN as f64 {
            (format!("attention_mma_{which}_hw{d}_bf16"), Kind::Attention)
        } else {
            (format!("attention_{which}_hw{d}_bf16"), Kind::CudaCore)
        }
    }
}

/// The head widths the attention kernels are compiled for.
fn attention_head_width(field: &str, head_width: usize) -> Result<usize, ConfigError> {
    if [32, 64, 128].contains(&head_width) {
        return Ok(head_width);
    }
    Err(ConfigError::Unsupported {
        field: field.to_string(),
        value: format!("{head_width} (the head width)"),
        feature: "a GPU attention kernel at this head width",
        accepted: "head widths 32, 64 and 128".to_string(),
    })
}

/// Element counts of each tower's parameters, in the order the model makes
/// them (the logit scale, the one parameter not cast, apart).
struct Parameters {
    image: Vec<f64>,
    text: Vec<f64>,
    /// The logit scale, and SigLIP's bias where the model has one.
    scalars: usize,
}

impl Parameters {
    fn of(config: &ModelConfig, image_size: usize) -> Result<Self, ConfigError> {
        let (v, t) = (&config.vision_cfg, &config.text_cfg);
        let block = |w: usize, m: usize| {
            let (w, m) = (w as f64, m as f64);
            // ln_1, in_proj weight and bias, out_proj weight and bias, ln_2,
            // c_fc weight and bias, c_proj weight and bias.
            [w, w, 3.0 * w * w, 3.0 * w, w * w, w, w, w, m * w, m, w * m, w]
        };
        let (w, p, e) = (v.width as f64, v.patch_size as f64, config.embed_dim as f64);
        let tokens = v.tokens_per_image(image_size)? as f64;
        let mut image = vec![w * 3.0 * p * p, w, tokens * w, w * e, w, w];
        (0..v.layers).for_each(|_| image.extend(block(v.width, v.mlp_width())));
        image.extend([w, w]);
        let tw = t.width as f64;
        let mut text = vec![t.vocab_size as f64 * tw, t.context_length as f64 * tw];
        (0..t.layers).for_each(|_| text.extend(block(t.width, t.mlp_width())));
        text.extend([tw, tw, tw * e]);
        Ok(Parameters { image, text, scalars: 1 + config.init_logit_bias.is_some() as usize })
    }

    fn all(&self) -> impl Iterator<Item = f64> + '_ {
        self.image.iter().chain(&self.text).copied().chain(std::iter::repeat_n(1.0, self.scalars))
    }
}

/// What one launch reads and writes, in bytes, and its FLOPs besides matrix
/// products.
#[derive(Debug, Clone, Copy, Default)]
struct Traffic {
    read: f64,
    written: f64,
    flops: f64,
}

/// What a GEMM does besides its product (`reclip_core::GemmEpilogue`, and
/// the patch embedding's accumulation onto the positions).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Epilogue {
    None,
    /// + bias[n], read once.
    Bias,
    /// The bias gradient Σ_k A[m, k], written as m elements.
    BiasGrad,
    /// beta = 1: C is read and added to.
    Accumulate,
    /// + bias[n], then GELU, with the pre-activation saved (m×n written).
    GeluAuxBias,
    /// × GELU′ of the saved pre-activation (m×n read), and the bias
    /// gradient Σ_m C, written as n elements.
    DGeluBiasGrad,
}

/// A bf16 GEMM C[m×n] = A[m×k]·B[k×n]; `role` is what C is: the layer's
/// output `y`, an input gradient `dX` or a weight gradient `dW`.
struct Gemm {
    role: &'static str,
    m: f64,
    n: f64,
    k: f64,
    epilogue: Epilogue,
}

impl Gemm {
    fn y(m: f64, n: f64, k: f64, epilogue: Epilogue) -> Self {
        Gemm { role: "y", m, n, k, epilogue }
    }

    fn dx(m: f64, n: f64, k: f64) -> Self {
        Gemm { role: "dX", m, n, k, epilogue: Epilogue::None }
    }

    fn dw(m: f64, n: f64, k: f64, epilogue: Epilogue) -> Self {
        Gemm { role: "dW", m, n, k, epilogue }
    }

    fn name(&self) -> String {
        let epilogue = match self.epilogue {
            Epilogue::None => "",
            Epilogue::Bias => "+bias",
            Epilogue::BiasGrad => "+bgrad",
            Epilogue::Accumulate => "+=C",
            Epilogue::GeluAuxBias => "+bias+gelu",
            Epilogue::DGeluBiasGrad => "+dgelu+bgrad",
        };
        format!("{} gemm{epilogue} {}x{}x{}", self.role, self.m, self.n, self.k)
    }

    fn traffic(&self) -> Traffic {
        let (m, n, k) = (self.m, self.n, self.k);
        let mut t = Traffic { read: (m * k + k * n) * BF16, written: m * n * BF16, flops: 0.0 };
        match self.epilogue {
            Epilogue::None => {}
            Epilogue::Bias => (t.read, t.flops) = (t.read + n * BF16, m * n),
            Epilogue::BiasGrad => (t.written, t.flops) = (t.written + m * BF16, m * k),
            Epilogue::Accumulate => (t.read, t.flops) = (t.read + m * n * BF16, m * n),
            Epilogue::GeluAuxBias => {
                (t.read, t.written, t.flops) =
                    (t.read + n * BF16, t.written + m * n * BF16, m * n * (per_element::ADD + per_element::GELU))
            }
            Epilogue::DGeluBiasGrad => {
                (t.read, t.written, t.flops) = (
                    t.read + m * n * BF16,
                    t.written + n * BF16,
                    m * n * (per_element::GELU_BACKWARD + per_element::ADD),
                )
            }
        }
        t
    }
}

/// The rows as they are made.
#[derive(Default)]
struct Table {
    rows: Vec<Row>,
}

impl Table {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        phase: Phase,
        tower: Tower,
        layer: &'static str,
        kernel: String,
        kind: Kind,
        count: u64,
        matmul_flops: f64,
        t: Traffic,
    ) {
        if count == 0 {
            return;
        }
        let n = count as f64;
        self.rows.push(Row {
            phase,
            tower,
            layer,
            kernel,
            kind,
            count,
            matmul_flops: n * matmul_flops,
            other_flops: n * t.flops,
            bytes: n * (t.read + t.written),
        });
    }

    /// `count` launches of a memory-bound kernel, each moving `t`.
    fn kernel(&mut self, phase: Phase, tower: Tower, layer: &'static str, name: &str, count: u64, t: Traffic) {
        self.push(phase, tower, layer, name.to_string(), Kind::Memory, count, 0.0, t);
    }

    fn gemm(&mut self, phase: Phase, tower: Tower, layer: &'static str, count: u64, g: Gemm) {
        let products = 2.0 * g.m * g.n * g.k;
        self.push(phase, tower, layer, g.name(), Kind::Gemm, count, products, g.traffic());
    }

    fn upload(&mut self, tower: Tower, layer: &'static str, what: &str, bytes: f64) {
        let t = Traffic { read: 0.0, written: bytes, flops: 0.0 };
        self.push(Phase::Fwd, tower, layer, format!("memcpy H2D ({what})"), Kind::Upload, 1, 0.0, t);
    }

    /// One cast per parameter of `sizes` (element counts): to bf16 for the
    /// forward, their gradients back to f32 in the backward. One row: the
    /// casts move bytes only, so their floors add up to the row's.
    fn casts(&mut self, phase: Phase, tower: Tower, sizes: &[f64]) {
        let elements: f64 = sizes.iter().sum();
        let (layer, name, read, written) = match phase {
            Phase::Fwd => ("parameters", "cast_f32_to_bf16", F32, BF16),
            _ => ("parameter gradients", "cast_bf16_to_f32", BF16, F32),
        };
        let count = sizes.len() as u64;
        let t = Traffic { read: elements * read, written: elements * written, flops: 0.0 } / count as f64;
        self.kernel(phase, tower, layer, name, count, t);
    }
}

impl std::ops::Div<f64> for Traffic {
    type Output = Traffic;

    fn div(self, d: f64) -> Traffic {
        Traffic { read: self.read / d, written: self.written / d, flops: self.flops / d }
    }
}

// ---- Each kernel's traffic, per launch ----

/// `layer_norm_fwd` over rows × width, or `add_layer_norm_fwd`, which adds
/// the residual update first and writes the sum too; saves mean and rstd (f32).
fn layer_norm_fwd(rows: f64, width: f64, add: bool) -> Traffic {
    let streams = if add { 2.0 } else { 1.0 };
    Traffic {
        read: streams * rows * width * BF16 + 2.0 * width * BF16,
        written: streams * rows * width * BF16 + 2.0 * rows * F32,
        flops: rows * width * (per_element::LAYER_NORM + streams - 1.0),
    }
}

/// Blocks of `layer_norm_bwd`, each writing 2·width f32 partial sums of dγ
/// and dβ: 4 rows a block, at most 1024 blocks (crates/reclip-norm/src/gpu.rs).
fn layer_norm_bwd_blocks(rows: f64) -> f64 {
    (rows / 4.0).ceil().min(1024.0)
}

fn layer_norm_bwd(rows: f64, width: f64) -> Traffic {
    Traffic {
        read: 2.0 * rows * width * BF16 + width * BF16 + 2.0 * rows * F32,
        written: rows * width * BF16 + layer_norm_bwd_blocks(rows) * 2.0 * width * F32,
        flops: rows * width * per_element::LAYER_NORM_BACKWARD,
    }
}

/// `layer_norm_bwd_params`: the partial sums into dγ and dβ.
fn layer_norm_bwd_params(rows: f64, width: f64) -> Traffic {
    let partials = layer_norm_bwd_blocks(rows) * 2.0 * width;
    Traffic { read: partials * F32, written: 2.0 * width * BF16, flops: partials }
}

/// `binary_same` add of two bf16 tensors of `n` elements.
fn add(n: f64) -> Traffic {
    Traffic { read: 2.0 * n * BF16, written: n * BF16, flops: n * per_element::ADD }
}

/// A copy of `n` bf16 elements (`strided_gather`, `strided_scatter`).
fn copy(n: f64) -> Traffic {
    Traffic { read: n * BF16, written: n * BF16, flops: 0.0 }
}

/// The name a bf16 kernel with a 16-byte form (`*_vec_*`, kernels/common.cuh's
/// packs) is launched under over rows of `len` elements, as
/// `reclip_core::gpu::vector_form` picks it (the tensors of a step start
/// 16-byte aligned).
fn packed(base: &str, len: f64) -> String {
    let vector = reclip_core::gpu::vector_form(reclip_core::DType::BF16, len as usize, &[]);
    if vector { format!("{base}_vec_bf16") } else { format!("{base}_bf16") }
}

/// A memset of `bytes`.
fn memset(bytes: f64) -> Traffic {
    Traffic { read: 0.0, written: bytes, flops: 0.0 }
}

/// `act_fwd`: h = act(u) over `n` elements.
fn act_fwd(n: f64) -> Traffic {
    Traffic { read: n * BF16, written: n * BF16, flops: n * per_element::GELU }
}

/// `act_bwd`: du = dh·act′(u) over `n` elements.
fn act_bwd(n: f64) -> Traffic {
    Traffic { read: 2.0 * n * BF16, written: n * BF16, flops: n * per_element::GELU_BACKWARD }
}

/// Batch chunks of `embed_batch_sum` over `batch` rows of `row_len` elements
/// (crates/reclip-embed/src/batch_sum/gpu.rs, `batch_split`): about 2¹⁸ threads.
fn batch_sum_splits(batch: f64, row_len: f64) -> f64 {
    if batch == 0.0 || row_len == 0.0 {
        return 0.0;
    }
    let wanted = (262144.0 / row_len).ceil().clamp(1.0, 65535.0).min(batch);
    let chunk = (batch / wanted).ceil();
    (batch / chunk).ceil()
}

/// `embed_batch_sum`: a [B, rows, width] gradient summed over the batch in chunks.
fn batch_sum(batch: f64, rows: f64, width: f64) -> Traffic {
    let n = batch * rows * width;
    Traffic { read: n * BF16, written: batch_sum_splits(batch, rows * width) * rows * width * F32, flops: n }
}

/// `embed_batch_finish`: the chunks' sums into `out_elements` bf16 (the
/// table's rows beyond the sequence zero).
fn batch_finish(batch: f64, rows: f64, width: f64, out_elements: f64) -> Traffic {
    let partials = batch_sum_splits(batch, rows * width) * rows * width;
    Traffic { read: partials * F32, written: out_elements * BF16, flops: partials }
}

// ---- The step, in the order reclip issues it ----

struct Step<'a> {
    config: &'a ModelConfig,
    image_size: usize,
    image: &'a Stack,
    text: &'a Stack,
    params: &'a Parameters,
}

impl Step<'_> {
    fn image_forward(&self, t: &mut Table) {
        let s = self.image;
        let (b, r, w, e) = (s.batch, s.rows(), s.width, self.config.embed_dim as f64);
        let pixels = b * 3.0 * (self.image_size * self.image_size) as f64;
        let patch = self.config.vision_cfg.patch_size as f64;
        let k = 3.0 * patch * patch;
        let im = Tower::Image;
        t.upload(im, "images", "f32 images", pixels * F32);
        let cast = Traffic { read: pixels * F32, written: pixels * BF16, flops: 0.0 };
        t.kernel(Phase::Fwd, im, "images", "cast_f32_to_bf16", 1, cast);
        t.casts(Phase::Fwd, im, &self.params.image);
        // The patch matrix (zero rows at the class tokens) and the tokens
        // initialised to class + positions, which the GEMM adds onto.
        let im2col = Traffic {
            read: pixels * BF16 + w * BF16 + s.tokens * w * BF16,
            written: r * k * BF16 + r * w * BF16,
            flops: 0.0,
        };
        t.kernel(Phase::Fwd, im, "conv1", "patch_embed_im2col_bf16", 1, im2col);
        t.gemm(Phase::Fwd, im, "conv1", 1, Gemm::y(r, w, k, Epilogue::Accumulate));
        t.kernel(Phase::Fwd, im, "ln_pre", &packed("layer_norm_fwd", w), 1, layer_norm_fwd(r, w, false));
        blocks_forward(t, s);
        t.kernel(Phase::Fwd, im, "transformer", &packed("binary_same", r * w), 1, add(r * w));
        t.kernel(Phase::Fwd, im, "pool (class token)", "strided_gather_bf16", 1, copy(b * w));
        t.kernel(Phase::Fwd, im, "ln_post", &packed("layer_norm_fwd", w), 1, layer_norm_fwd(b, w, false));
        t.gemm(Phase::Fwd, im, "proj", 1, Gemm::y(b, e, w, Epilogue::None));
    }

    fn text_forward(&self, t: &mut Table) {
        let s = self.text;
        let (b, len, r, w) = (s.batch, s.tokens, s.rows(), s.width);
        let (vocab, e) = (self.config.text_cfg.vocab_size as f64, self.config.embed_dim as f64);
        let tx = Tower::Text;
        // Indices go up as [ids | order | starts]: the ids grouped by target
        // for the backward's sums (crates/reclip-core/src/indices.rs).
        t.upload(tx, "token_embedding", "ids, order, starts", (2.0 * r + vocab + 1.0) * U32);
        t.upload(tx, "pool (end of text)", "eot, order, starts", (2.0 * b + r + 1.0) * U32);
        t.casts(Phase::Fwd, tx, &self.params.text);
        let embed = Traffic {
            read: r * U32 + r * w * BF16 + len * w * BF16,
            written: r * w * BF16,
            flops: r * w * per_element::ADD,
        };
        t.kernel(Phase::Fwd, tx, "token_embedding", "token_embed_forward_bf16", 1, embed);
        blocks_forward(t, s);
        t.kernel(Phase::Fwd, tx, "transformer", &packed("binary_same", r * w), 1, add(r * w));
        let pool = Traffic { read: b * w * BF16 + b * U32, written: b * w * BF16, flops: 0.0 };
        t.kernel(Phase::Fwd, tx, "pool (end of text)", "index_select_bf16", 1, pool);
        t.kernel(Phase::Fwd, tx, "ln_final", &packed("layer_norm_fwd", w), 1, layer_norm_fwd(b, w, false));
        t.gemm(Phase::Fwd, tx, "text_projection", 1, Gemm::y(b, e, w, Epilogue::None));
    }

    /// Both sides normalised into f32, then one sweep of the logits per side
    /// (crates/reclip-loss/src/global.rs); SigLIP's loss (a model with a
    /// logit bias) sweeps the images' rows only (crates/reclip-loss/src/siglip).
    fn loss_forward(&self, t: &mut Table) {
        let (b, e) = (self.image.batch, self.config.embed_dim as f64);
        let lo = Tower::Loss;
        let normalize =
            Traffic { read: b * e * BF16, written: b * e * F32 + b * F32, flops: b * e * per_element::NORMALIZE };
        t.kernel(Phase::Fwd, lo, "loss", &packed("clip_normalize", e), 2, normalize);
        if self.siglip() {
            let rows =
                Traffic { read: 2.0 * b * e * F32 + 2.0 * F32, written: b * F32, flops: b * b * per_element::LOGIT };
            t.push(Phase::Fwd, lo, "loss", "siglip_rows_f32".into(), Kind::CudaCore, 1, 2.0 * b * b * e, rows);
            t.kernel(Phase::Fwd, lo, "loss", "siglip_total_f32", 1, Traffic { read: b * F32, written: F32, flops: b });
            return;
        }
        let lse = Traffic { read: 2.0 * b * e * F32 + F32, written: 2.0 * b * F32, flops: b * b * per_element::LOGIT };
        t.push(Phase::Fwd, lo, "loss", "clip_lse_rows_f32".into(), Kind::CudaCore, 2, 2.0 * b * b * e, lse);
        let value = Traffic { read: 4.0 * b * F32, written: F32, flops: 4.0 * b };
        t.kernel(Phase::Fwd, lo, "loss", "clip_loss_value_f32", 1, value);
    }

    /// The seed d(loss)/d(loss) = 1, then each side's gradient rows from the
    /// recomputed logits and back through its normalisation.
    fn loss_backward(&self, t: &mut Table) {
        let (b, e) = (self.image.batch, self.config.embed_dim as f64);
        let lo = Tower::Loss;
        t.kernel(Phase::Bwd, lo, "loss", "fill_f32", 1, memset(F32));
        let grad_rows = |dt: f64| Traffic {
            read: 2.0 * b * e * F32 + 2.0 * b * F32 + 2.0 * F32,
            written: b * e * F32 + dt * b * F32,
            flops: b * b * per_element::LOGIT_BACKWARD,
        };
        let products = 4.0 * b * b * e;
        if self.siglip() {
            let rows = "siglip_grad_rows_f32";
            let (sums, plain) = (grad_rows(2.0), grad_rows(0.0));
            t.push(Phase::Bwd, lo, "loss (image rows, dt, dbias)", rows.into(), Kind::CudaCore, 1, products, sums);
            t.push(Phase::Bwd, lo, "loss (text rows)", rows.into(), Kind::CudaCore, 1, products, plain);
        } else {
            let rows = "clip_grad_rows_f32";
            t.push(Phase::Bwd, lo, "loss (image rows, dt)", rows.into(), Kind::CudaCore, 1, products, grad_rows(1.0));
            t.push(Phase::Bwd, lo, "loss (text rows)", rows.into(), Kind::CudaCore, 1, products, grad_rows(0.0));
        }
        let denormalize = Traffic {
            read: 2.0 * b * e * F32 + b * F32,
            written: b * e * BF16,
            flops: b * e * per_element::DENORMALIZE,
        };
        t.kernel(Phase::Bwd, lo, "loss", &packed("clip_denormalize", e), 2, denormalize);
        let dt = Traffic { read: b * F32 + F32, written: F32, flops: b };
        if self.siglip() {
            t.kernel(Phase::Bwd, lo, "logit_scale", "siglip_total_f32", 1, dt);
            t.kernel(Phase::Bwd, lo, "logit_bias", "siglip_total_f32", 1, dt);
        } else {
            t.kernel(Phase::Bwd, lo, "logit_scale", "clip_dt_value_f32", 1, dt);
        }
    }

    /// Whether the step's loss is SigLIP's: the model has a logit bias.
    fn siglip(&self) -> bool {
        self.config.init_logit_bias.is_some()
    }

    fn text_backward(&self, t: &mut Table) {
        let s = self.text;
        let (b, len, r, w) = (s.batch, s.tokens, s.rows(), s.width);
        let tc = &self.config.text_cfg;
        let (vocab, ctx, e) = (tc.vocab_size as f64, tc.context_length as f64, self.config.embed_dim as f64);
        let (bw, tx) = (Phase::Bwd, Tower::Text);
        t.gemm(bw, tx, "text_projection", 1, Gemm::dx(b, w, e));
        t.gemm(bw, tx, "text_projection", 1, Gemm::dw(w, e, b, Epilogue::None));
        t.kernel(bw, tx, "ln_final", &packed("layer_norm_bwd", w), 1, layer_norm_bwd(b, w));
        t.kernel(bw, tx, "ln_final", "layer_norm_bwd_params_bf16", 1, layer_norm_bwd_params(b, w));
        // index_select's backward: zeros, then the pooled rows added in.
        t.kernel(bw, tx, "pool (end of text)", "memset", 1, memset(r * w * BF16));
        let index_add = Traffic {
            read: r * w * BF16 + b * w * BF16 + b * U32 + (r + 1.0) * U32,
            written: r * w * BF16,
            flops: b * w * per_element::ADD,
        };
        t.kernel(bw, tx, "pool (end of text)", "index_add_bf16", 1, index_add);
        blocks_backward(t, s);
        // Each vocabulary row sums its tokens' gradients: the whole table is written.
        let table = Traffic {
            read: r * w * BF16 + r * U32 + (vocab + 1.0) * U32,
            written: vocab * w * BF16,
            flops: r * w * per_element::ADD,
        };
        t.kernel(bw, tx, "token_embedding", "token_embed_backward_bf16", 1, table);
        t.kernel(bw, tx, "positional_embedding", "embed_batch_sum_bf16", 1, batch_sum(b, len, w));
        let finish = batch_finish(b, len, w, ctx * w);
        t.kernel(bw, tx, "positional_embedding", "embed_batch_finish_bf16", 1, finish);
        t.casts(bw, tx, &self.params.text);
    }

    fn image_backward(&self, t: &mut Table) {
        let s = self.image;
        let (b, r, w, e) = (s.batch, s.rows(), s.width, self.config.embed_dim as f64);
        let patch = self.config.vision_cfg.patch_size as f64;
        let k = 3.0 * patch * patch;
        let (bw, im) = (Phase::Bwd, Tower::Image);
        t.gemm(bw, im, "proj", 1, Gemm::dx(b, w, e));
        t.gemm(bw, im, "proj", 1, Gemm::dw(w, e, b, Epilogue::None));
        t.kernel(bw, im, "ln_post", &packed("layer_norm_bwd", w), 1, layer_norm_bwd(b, w));
        t.kernel(bw, im, "ln_post", "layer_norm_bwd_params_bf16", 1, layer_norm_bwd_params(b, w));
        // narrow's backward pads the class token's gradient with zeros: a
        // memset of the patches' part (the empty part before it needs none),
        // then a concat copying both into place.
        let patches = b * (s.tokens - 1.0) * w;
        t.kernel(bw, im, "pool (class token)", "memset", 1, memset(patches * BF16));
        t.kernel(bw, im, "pool (class token)", "strided_scatter_bf16", 2, copy(b * w + patches) / 2.0);
        blocks_backward(t, s);
        t.kernel(bw, im, "ln_pre", &packed("layer_norm_bwd", w), 1, layer_norm_bwd(r, w));
        t.kernel(bw, im, "ln_pre", "layer_norm_bwd_params_bf16", 1, layer_norm_bwd_params(r, w));
        // The images are constants: the conv's weight gradient only.
        t.gemm(bw, im, "conv1", 1, Gemm::dw(w, k, r, Epilogue::None));
        let stem = "class + positional_embedding";
        t.kernel(bw, im, stem, "embed_batch_sum_bf16", 1, batch_sum(b, s.tokens, w));
        let finish = batch_finish(b, s.tokens, w, s.tokens * w + w);
        t.kernel(bw, im, stem, "embed_batch_finish_bf16", 1, finish);
        t.casts(bw, im, &self.params.image);
    }

    /// AdamW over every parameter (crates/reclip-optim/src/adamw/gpu.rs):
    /// the gradients copied into the step's arena, the norm's partial sums,
    /// the clipping coefficient, the update; then the temperature clamp.
    fn optimizer(&self, t: &mut Table) {
        let sizes: Vec<f64> = self.params.all().collect();
        let elements: f64 = sizes.iter().sum();
        let table = sizes.iter().map(|n| (n / ADAM_CHUNK).ceil()).sum::<f64>();
        let (op, all) = (Phase::Opt, Tower::All);
        let copies = sizes.len() as u64;
        let copy_all = Traffic { read: elements * F32, written: elements * F32, flops: 0.0 } / copies as f64;
        t.kernel(op, all, "gradients", "memcpy D2D", copies, copy_all);
        let squares = Traffic {
            read: elements * F32 + table * ADAM_CHUNK_ROW,
            written: table * F32,
            flops: elements * per_element::GRAD_SQUARE,
        };
        t.kernel(op, all, "gradient norm", "grad_sq_partials_f32", 1, squares);
        let coefficient = Traffic { read: table * F32, written: 2.0 * F32, flops: table };
        t.kernel(op, all, "gradient norm", "clip_coefficient_f32", 1, coefficient);
        let update = Traffic {
            read: 4.0 * elements * F32 + table * ADAM_CHUNK_ROW + F32,
            written: 3.0 * elements * F32,
            flops: elements * per_element::ADAMW,
        };
        t.kernel(op, all, "AdamW", "adamw_step_f32", 1, update);
        t.kernel(op, all, "logit_scale", "clamp_in_place_f32", 1, Traffic { read: F32, written: F32, flops: 2.0 });
    }
}

/// One tower's blocks forward, open_clip's pre-LN `ResidualAttentionBlock`s
/// as crates/reclip-model/src/layers/block.rs runs them: each LayerNorm but
/// the first adds the residual update pending from the sublayer before.
fn blocks_forward(t: &mut Table, s: &Stack) {
    let (r, w, m, l, tw) = (s.rows(), s.width, s.mlp_width, s.layers, s.tower);
    let f = Phase::Fwd;
    t.kernel(f, tw, "resblocks.ln_1", &packed("layer_norm_fwd", w), l.min(1), layer_norm_fwd(r, w, false));
    t.kernel(
        f,
        tw,
        "resblocks.ln_1",
        &packed("add_layer_norm_fwd", w),
        l.saturating_sub(1),
        layer_norm_fwd(r, w, true),
    );
    t.gemm(f, tw, "resblocks.attn.in_proj", l, Gemm::y(r, 3.0 * w, w, Epilogue::Bias));
    let scores = s.scores();
    let causal = if s.causal { per_element::CAUSAL_MASK_PER_SCORE } else { 0.0 };
    let forward = Traffic {
        read: r * 3.0 * w * BF16,
        written: r * w * BF16 + s.row_stats_bytes(),
        flops: scores * (per_element::SOFTMAX_PER_SCORE + causal) + r * w * per_element::SCALE_PER_QUERY_ELEMENT,
    };
    let ((name, kind), d) = (s.attention_kernel("fwd"), s.head_width as f64);
    t.push(f, tw, "resblocks.attn", name, kind, l, 4.0 * scores * d, forward);
    t.gemm(f, tw, "resblocks.attn.out_proj", l, Gemm::y(r, w, w, Epilogue::Bias));
    t.kernel(f, tw, "resblocks.ln_2", &packed("add_layer_norm_fwd", w), l, layer_norm_fwd(r, w, true));
    if s.fused_gelu() {
        t.gemm(f, tw, "resblocks.mlp.c_fc", l, Gemm::y(r, m, w, Epilogue::GeluAuxBias));
    } else {
        t.gemm(f, tw, "resblocks.mlp.c_fc", l, Gemm::y(r, m, w, Epilogue::Bias));
        t.kernel(f, tw, "resblocks.mlp.c_fc", &packed("act_fwd", r * m), l, act_fwd(r * m));
    }
    t.gemm(f, tw, "resblocks.mlp.c_proj", l, Gemm::y(r, w, m, Epilogue::Bias));
}

/// One tower's blocks backward, last sublayer first. The residual stream
/// after each sublayer has two consumers (the next LayerNorm and the
/// residual path), so the tape adds their gradients: two adds a block.
fn blocks_backward(t: &mut Table, s: &Stack) {
    let (r, w, m, l, tw) = (s.rows(), s.width, s.mlp_width, s.layers, s.tower);
    let b = Phase::Bwd;
    t.gemm(b, tw, "resblocks.mlp.c_proj", l, Gemm::dw(w, m, r, Epilogue::BiasGrad));
    let c_fc_bias_grad = if s.fused_gelu() {
        t.gemm(b, tw, "resblocks.mlp.c_proj", l, Gemm { epilogue: Epilogue::DGeluBiasGrad, ..Gemm::dx(r, m, w) });
        Epilogue::None
    } else {
        t.gemm(b, tw, "resblocks.mlp.c_proj", l, Gemm::dx(r, m, w));
        t.kernel(b, tw, "resblocks.mlp.c_fc", &packed("act_bwd", r * m), l, act_bwd(r * m));
        Epilogue::BiasGrad
    };
    t.gemm(b, tw, "resblocks.mlp.c_fc", l, Gemm::dx(r, w, m));
    t.gemm(b, tw, "resblocks.mlp.c_fc", l, Gemm::dw(m, w, r, c_fc_bias_grad));
    t.kernel(b, tw, "resblocks.ln_2", &packed("layer_norm_bwd", w), l, layer_norm_bwd(r, w));
    t.kernel(b, tw, "resblocks.ln_2", "layer_norm_bwd_params_bf16", l, layer_norm_bwd_params(r, w));
    t.gemm(b, tw, "resblocks.attn.out_proj", l, Gemm::dx(r, w, w));
    t.gemm(b, tw, "resblocks.attn.out_proj", l, Gemm::dw(w, w, r, Epilogue::BiasGrad));
    let (scores, d) = (s.scores(), s.head_width as f64);
    let causal = if s.causal { per_element::CAUSAL_MASK_PER_SCORE } else { 0.0 };
    let softmax = scores * (per_element::SOFTMAX_BACKWARD_PER_SCORE + causal);
    let scale = r * w * per_element::SCALE_PER_QUERY_ELEMENT;
    // dQ: S = QKᵀ, dP = dO·Vᵀ, dQ = dS·K; reads q, k, v, O, dO and the
    // logsumexp; writes dQ and D = rowsum(dO ∘ O).
    let dq = Traffic {
        read: 5.0 * r * w * BF16 + s.row_stats_bytes(),
        written: r * w * BF16 + s.row_stats_bytes(),
        flops: softmax + scale + r * w * per_element::ROW_DOT,
    };
    let (name, kind) = s.attention_kernel("bwd_dq");
    t.push(b, tw, "resblocks.attn", name, kind, l, 6.0 * scores * d, dq);
    // dK, dV: S and dP again, dV = Pᵀ·dO, dK = dSᵀ·Q; reads q, k, v, dO, the
    // logsumexp and D.
    let dkv = Traffic {
        read: 4.0 * r * w * BF16 + 2.0 * s.row_stats_bytes(),
        written: 2.0 * r * w * BF16,
        flops: softmax + scale,
    };
    let (name, kind) = s.attention_kernel("bwd_dkv");
    t.push(b, tw, "resblocks.attn", name, kind, l, 8.0 * scores * d, dkv);
    t.gemm(b, tw, "resblocks.attn.in_proj", l, Gemm::dx(r, w, 3.0 * w));
    t.gemm(b, tw, "resblocks.attn.in_proj", l, Gemm::dw(3.0 * w, w, r, Epilogue::BiasGrad));
    t.kernel(b, tw, "resblocks.ln_1", &packed("layer_norm_bwd", w), l, layer_norm_bwd(r, w));
    t.kernel(b, tw, "resblocks.ln_1", "layer_norm_bwd_params_bf16", l, layer_norm_bwd_params(r, w));
    t.kernel(b, tw, "resblocks (residual)", &packed("binary_same", r * w), 2 * l, add(r * w));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vit_b_16() -> ModelConfig {
        ModelConfig::preset("ViT-B-16").unwrap()
    }

    fn step(config: &ModelConfig, size: usize) -> Roofline {
        training_step(config, size, 256, config.text_cfg.context_length).unwrap()
    }

    /// Launches of the rows matching `pick`.
    fn launches(r: &Roofline, pick: impl Fn(&Row) -> bool) -> u64 {
        r.rows.iter().filter(|row| pick(row)).map(|row| row.count).sum()
    }

    #[test]
    fn the_parameters_cast_and_updated_are_the_models() {
        for (config, size) in [(vit_b_16(), 64), (vit_b_16(), 224), (ModelConfig::preset("reclip-tiny").unwrap(), 32)] {
            let mut at_size = config.clone();
            at_size.vision_cfg.image_size = size;
            let params = Parameters::of(&config, size).unwrap();
            assert_eq!(params.all().sum::<f64>(), at_size.num_params().unwrap() as f64);
        }
    }

    /// The table's matrix products are B × flops.rs's training FLOPs but
    /// for what the module docs list: attention's recomputation (18 against
    /// 12 L²·d per sample and head), the patch embedding's two GEMMs over T
    /// rows (against three over T − 1), and the loss's logits (2·B²·E per
    /// side forward, 4·B²·E backward).
    #[test]
    fn matrix_products_are_open_clips_training_flops_and_the_listed_extras() {
        for (config, size, batch) in [
            (vit_b_16(), 64, 256),
            (vit_b_16(), 112, 256),
            (vit_b_16(), 224, 256),
            (ModelConfig::preset("reclip-tiny").unwrap(), 32, 16),
        ] {
            let len = config.text_cfg.context_length;
            let r = training_step(&config, size, batch, len).unwrap();
            let f = flops::model(&config, size, len).unwrap();
            let (b, e, tokens) = (batch as f64, config.embed_dim as f64, f.image.tokens as f64);
            let attention = (f.image.matmul.attention_products + f.text.matmul.attention_products) as f64;
            let patch = f.image.matmul.patch_embed as f64;
            let expected = r.model_flops + b * attention * 6.0 / 4.0 - b * 3.0 * patch
                + b * 2.0 * patch * tokens / (tokens - 1.0)
                + 12.0 * b * b * e;
            let got = r.matmul_flops();
            assert!((got / expected - 1.0).abs() < 1e-12, "{size} px: {got} against {expected}");
        }
    }

    /// All of the table's FLOPs, elementwise work included, stay within 5 %
    /// of open_clip's training FLOPs (matrix products only) at RECLIP's sizes.
    #[test]
    fn all_flops_agree_with_open_clips_training_count_within_five_percent() {
        for size in [64, 112, 224] {
            let r = step(&vit_b_16(), size);
            let ratio = r.flops() / r.model_flops;
            assert!((1.0..1.05).contains(&ratio), "{size} px: {ratio}");
        }
    }

    #[test]
    fn the_rows_count_each_blocks_launches() {
        let config = vit_b_16();
        let r = step(&config, 224);
        for (tower, layers) in [(Tower::Image, 12), (Tower::Text, 12)] {
            let in_blocks = |row: &Row, phase, kind| {
                row.tower == tower && row.phase == phase && row.kind == kind && row.layer.starts_with("resblocks")
            };
            // q/k/v, out-projection, c_fc, c_proj: one GEMM forward, two backward.
            assert_eq!(launches(&r, |row| in_blocks(row, Phase::Fwd, Kind::Gemm)), layers * 4);
            assert_eq!(launches(&r, |row| in_blocks(row, Phase::Bwd, Kind::Gemm)), layers * 8);
            assert_eq!(launches(&r, |row| in_blocks(row, Phase::Fwd, Kind::Attention)), layers);
            assert_eq!(launches(&r, |row| in_blocks(row, Phase::Bwd, Kind::Attention)), layers * 2);
            // Two LayerNorms a block forward; each two kernels backward.
            let norms = |row: &Row, phase| in_blocks(row, phase, Kind::Memory) && row.layer.contains(".ln_");
            assert_eq!(launches(&r, |row| norms(row, Phase::Fwd)), layers * 2);
            assert_eq!(launches(&r, |row| norms(row, Phase::Bwd)), layers * 4);
            // Each block has 12 parameters, each cast forward and its gradient back.
            let casts = |row: &Row, phase| row.tower == tower && row.phase == phase && row.kernel.starts_with("cast_");
            let tower_params = if tower == Tower::Image { 152 } else { 149 };
            assert_eq!(launches(&r, |row| casts(row, Phase::Bwd)), tower_params);
        }
        // The images' own cast besides the parameters'; the logit scale stays f32.
        assert_eq!(launches(&r, |row| row.phase == Phase::Fwd && row.kernel.starts_with("cast_")), 152 + 149 + 1);
        assert_eq!(launches(&r, |row| row.kernel == "memcpy D2D"), 302);
        assert_eq!(launches(&r, |row| row.kind == Kind::Upload), 3);
        assert_eq!(r.launches(), r.rows.iter().map(|row| row.count).sum::<u64>());
    }

    #[test]
    fn floors_and_predictions_follow_the_rates() {
        let r = step(&vit_b_16(), 224);
        let gemm = r.rows.iter().find(|row| row.kernel == "y gemm+bias 50432x2304x768").unwrap();
        assert_eq!(gemm.bound(), Bound::Compute);
        assert_eq!(gemm.floor_s(), gemm.flops() / H200_BF16_FLOPS);
        let norm = r.rows.iter().find(|row| row.kernel == "layer_norm_fwd_vec_bf16").unwrap();
        assert_eq!(norm.bound(), Bound::Memory);
        assert_eq!(norm.floor_s(), norm.bytes / H200_HBM_BYTES_PER_S);
        let images = r.rows.iter().find(|row| row.kind == Kind::Upload).unwrap();
        assert_eq!((images.bound(), images.bytes), (Bound::Pcie, 256.0 * 3.0 * 224.0 * 224.0 * 4.0));
        // No assumed efficiency is above 1: nothing is predicted below its floor.
        for row in &r.rows {
            assert!(row.predicted_s(&ASSUMED) >= row.floor_s(), "{row:?}");
        }
        let p = r.predict(&ASSUMED);
        assert_eq!(p.launch_overhead_s, r.launches() as f64 * ASSUMED.launch_overhead_s);
        assert!(p.step_s > r.floor_s() && (p.work_s + p.launch_overhead_s - p.step_s).abs() < 1e-12);
        assert!(r.mfu(p.step_s, 989e12) < r.mfu(r.floor_s(), 989e12));
    }

    #[test]
    fn sequences_past_the_tensor_core_kernels_take_the_cuda_core_ones() {
        // 272 px: 17² + 1 = 290 image tokens; the text's 77 stay on tensor cores.
        let r = step(&vit_b_16(), 272);
        let attention = |tower| -> Vec<(&str, Kind)> {
            r.rows
                .iter()
                .filter(|row| row.tower == tower && row.layer == "resblocks.attn")
                .map(|row| (row.kernel.as_str(), row.kind))
                .collect()
        };
        let image = [
            ("attention_fwd_hw64_bf16", Kind::CudaCore),
            ("attention_bwd_dq_hw64_bf16", Kind::CudaCore),
            ("attention_bwd_dkv_hw64_bf16", Kind::CudaCore),
        ];
        assert_eq!(attention(Tower::Image), image);
        let text = [
            ("attention_mma_fwd_hw64_bf16", Kind::Attention),
            ("attention_mma_bwd_dq_hw64_bf16", Kind::Attention),
            ("attention_mma_bwd_dkv_hw64_bf16", Kind::Attention),
        ];
        assert_eq!(attention(Tower::Text), text);
    }

    #[test]
    fn what_no_kernel_runs_is_an_error_not_a_table() {
        let mut odd = vit_b_16();
        odd.vision_cfg.head_width = 48;
        let message = training_step(&odd, 224, 256, 77).unwrap_err().to_string();
        assert!(message.contains("vision_cfg.head_width") && message.contains("48"), "{message}");
        assert!(training_step(&vit_b_16(), 100, 256, 77).is_err());
        assert!(training_step(&vit_b_16(), 224, 256, 78).is_err());
        let huge = training_step(&vit_b_16(), 224, 1 << 40, 77).unwrap_err().to_string();
        assert!(huge.contains("batch size") && huge.contains("2^53"), "{huge}");
    }
}
