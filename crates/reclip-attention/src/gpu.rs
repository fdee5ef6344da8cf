//! Launches of the attention kernels on any GPU device (the CUDA runtime or
//! the emulator): the tensor-core kernels of kernels/attention_mma.cu for bf16
//! sequences of up to 256 tokens, the CUDA-core ones of kernels/attention.cu
//! otherwise.

use crate::mma_tiles::MmaTiles;
use crate::tiles::Tiles;
use crate::{AttentionShape, OP};
use reclip_core::gpu::{i32_arg, ptr};
use reclip_core::{DType, Error, GpuDevice, KernelArg, Launch, Result, Tensor, kernel_name};

/// The kernels read rows in 4-element vectors: a tensor goes in contiguous,
/// its first element 16-byte aligned (a copy fixes an odd view offset).
fn aligned(t: &Tensor) -> Result<Tensor> {
    let t = t.contiguous()?;
    if t.gpu_ptr()? % 16 == 0 { Ok(t) } else { t.copy() }
}

enum Kernel {
    Forward,
    Dq,
    Dkv,
}

fn kernel(which: Kernel, head_width: usize, dtype: DType) -> Result<&'static str> {
    match (which, head_width) {
        (Kernel::Forward, 32) => kernel_name!("attention_fwd_hw32", dtype, OP),
        (Kernel::Forward, 64) => kernel_name!("attention_fwd_hw64", dtype, OP),
        (Kernel::Forward, 128) => kernel_name!("attention_fwd_hw128", dtype, OP),
        (Kernel::Dq, 32) => kernel_name!("attention_bwd_dq_hw32", dtype, OP),
        (Kernel::Dq, 64) => kernel_name!("attention_bwd_dq_hw64", dtype, OP),
        (Kernel::Dq, 128) => kernel_name!("attention_bwd_dq_hw128", dtype, OP),
        (Kernel::Dkv, 32) => kernel_name!("attention_bwd_dkv_hw32", dtype, OP),
        (Kernel::Dkv, 64) => kernel_name!("attention_bwd_dkv_hw64", dtype, OP),
        (Kernel::Dkv, 128) => kernel_name!("attention_bwd_dkv_hw128", dtype, OP),
        (_, hw) => Err(Error::invalid(OP, format!("head width {hw} has no GPU kernel (compiled for 32, 64 and 128)"))),
    }
}

/// The tensor-core kernels' launch, when they take this problem.
fn mma_tiles(dtype: DType, shape: &AttentionShape) -> Result<Option<MmaTiles>> {
    if dtype != DType::BF16 {
        return Ok(None);
    }
    MmaTiles::new(shape.len, shape.head_width, shape.pairs())
}

fn mma_kernel(which: Kernel, head_width: usize) -> Result<&'static str> {
    Ok(match (which, head_width) {
        (Kernel::Forward, 32) => "attention_mma_fwd_hw32_bf16",
        (Kernel::Forward, 64) => "attention_mma_fwd_hw64_bf16",
        (Kernel::Forward, 128) => "attention_mma_fwd_hw128_bf16",
        (Kernel::Dq, 32) => "attention_mma_bwd_dq_hw32_bf16",
        (Kernel::Dq, 64) => "attention_mma_bwd_dq_hw64_bf16",
        (Kernel::Dq, 128) => "attention_mma_bwd_dq_hw128_bf16",
        (Kernel::Dkv, 32) => "attention_mma_bwd_dkv_hw32_bf16",
        (Kernel::Dkv, 64) => "attention_mma_bwd_dkv_hw64_bf16",
        (Kernel::Dkv, 128) => "attention_mma_bwd_dkv_hw128_bf16",
        (_, hw) => return Err(Error::invalid(OP, format!("head width {hw} has no tensor-core kernel"))),
    })
}

/// Launches a tensor-core kernel with the buffers' pointers `args`, then the
/// problem's shape.
fn launch_mma(
    dev: &GpuDevice,
    which: Kernel,
    mut args: Vec<KernelArg>,
    shape: &AttentionShape,
    causal: bool,
    tiles: &MmaTiles,
) -> Result<()> {
    let shared = match which {
        Kernel::Forward => tiles.forward_shared_bytes(),
        Kernel::Dq => tiles.dq_shared_bytes(),
        Kernel::Dkv => tiles.dkv_shared_bytes(),
    };
    let name = mma_kernel(which, shape.head_width)?;
    for (what, v) in [
        ("batch·heads", shape.pairs()),
        ("sequence length", shape.len),
        ("heads", shape.heads),
        ("causal", causal as usize),
        ("blocks per pair", tiles.blocks_per_pair),
    ] {
        args.push(i32_arg(OP, what, v)?);
    }
    let launch = Launch {
        kernel: name,
        grid: tiles.grid,
        block: [tiles.threads() as u32, 1, 1],
        shared_bytes: shared as u32,
        args: &args,
    };
    dev.launch(&launch)
}

/// Launches `name` with the buffers' pointers `args`, then the problem's shape.
fn launch(
    dev: &GpuDevice,
    name: &'static str,
    mut args: Vec<KernelArg>,
    shape: &AttentionShape,
    causal: bool,
    tiles: &Tiles,
    shared: usize,
) -> Result<()> {
    for (what, v) in [
        ("batch·heads", shape.pairs()),
        ("sequence length", shape.len),
        ("heads", shape.heads),
        ("causal", causal as usize),
        ("pairs per block", tiles.group_pairs),
        ("rows per block", tiles.row_tile),
        ("tile", tiles.tile),
        ("shared memory", shared),
    ] {
        args.push(i32_arg(OP, what, v)?);
    }
    let launch = Launch {
        kernel: name,
        grid: tiles.grid,
        block: [tiles.threads as u32, 1, 1],
        shared_bytes: shared as u32,
        args: &args,
    };
    dev.launch(&launch)
}

/// Output `[batch, len, width]` and f32 logsumexp `[batch, heads, len]`.
pub fn forward(dev: &GpuDevice, qkv: &Tensor, shape: &AttentionShape, causal: bool) -> Result<(Tensor, Tensor)> {
    let name = kernel(Kernel::Forward, shape.head_width, qkv.dtype())?;
    let out = Tensor::empty(shape.out_dims(), qkv.dtype(), qkv.device())?;
    let lse = Tensor::empty(shape.lse_dims(), DType::F32, qkv.device())?;
    if shape.pairs() * shape.len == 0 {
        return Ok((out, lse));
    }
    let qkv = aligned(qkv)?;
    let args = vec![ptr(&qkv)?, ptr(&out)?, ptr(&lse)?];
    if let Some(tiles) = mma_tiles(qkv.dtype(), shape)? {
        launch_mma(dev, Kernel::Forward, args, shape, causal, &tiles)?;
        return Ok((out, lse));
    }
    let tiles = Tiles::new(shape.len, shape.head_width, shape.pairs())?;
    launch(dev, name, args, shape, causal, &tiles, tiles.forward_shared_bytes())?;
    Ok((out, lse))
}

/// d(qkv) `[batch, len, 3·width]`: one kernel for dQ (which also leaves
/// rowsum(dO ∘ O) in a scratch buffer), then one for dK and dV.
pub fn backward(
    dev: &GpuDevice,
    qkv: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    d_out: &Tensor,
    shape: &AttentionShape,
    causal: bool,
) -> Result<Tensor> {
    let dq_name = kernel(Kernel::Dq, shape.head_width, qkv.dtype())?;
    let dkv_name = kernel(Kernel::Dkv, shape.head_width, qkv.dtype())?;
    let d_qkv = Tensor::empty(qkv.shape().clone(), qkv.dtype(), qkv.device())?;
    if shape.pairs() * shape.len == 0 {
        return Ok(d_qkv);
    }
    let (qkv, out, lse, d_out) = (aligned(qkv)?, aligned(out)?, lse.contiguous()?, aligned(d_out)?);
    let delta = Tensor::empty([shape.pairs(), shape.len], DType::F32, qkv.device())?;
    let (q, o, g, s, d, dq) = (ptr(&qkv)?, ptr(&out)?, ptr(&d_out)?, ptr(&lse)?, ptr(&delta)?, ptr(&d_qkv)?);
    if let Some(tiles) = mma_tiles(qkv.dtype(), shape)? {
        launch_mma(dev, Kernel::Dq, vec![q, o, g, s, d, dq], shape, causal, &tiles)?;
        launch_mma(dev, Kernel::Dkv, vec![q, g, s, d, dq], shape, causal, &tiles)?;
        return Ok(d_qkv);
    }
    let tiles = Tiles::new(shape.len, shape.head_width, shape.pairs())?;
    launch(dev, dq_name, vec![q, o, g, s, d, dq], shape, causal, &tiles, tiles.dq_shared_bytes())?;
    launch(dev, dkv_name, vec![q, g, s, d, dq], shape, causal, &tiles, tiles.dkv_shared_bytes())?;
    Ok(d_qkv)
}
