//! The attention kernels on the device under test (the emulator, or a GPU
//! with RECLIP_TEST_DEVICE=cuda) against the CPU path: forward (output and
//! logsumexp) and backward (d(qkv)), f32 and bf16, with and without the
//! causal mask, at CLIP's sequence lengths. Device outputs start as NaN, so an
//! element no thread writes fails. The backward gets the CPU forward's output
//! and logsumexp on both sides, so that it is compared on equal inputs.

use reclip_attention::{AttentionOutput, attention, attention_backward, attention_forward};
use reclip_autograd::Tape;
use reclip_core::{DType, Device, Tensor};
use reclip_testkit::{Tolerance, compare_with_cpu, compare_with_cpu_tol, randn, test_device};

const DTYPES: [DType; 2] = [DType::F32, DType::BF16];

/// The bf16 outputs' tolerance. The tensor-core kernels round P (forward) and
/// dS (backward) to bf16 before the products that use them, a relative error
/// of up to 2⁻⁹ per weight that the f32 CPU reference does not make: an
/// output's error is then up to 2⁻⁹ of the largest |V| (|Q|, |K|, |dO|) it
/// averages, ≈ 4.5 for these inputs, on top of the output's own rounding.
fn tolerance(dtype: DType) -> Option<Tolerance> {
    (dtype == DType::BF16).then(|| Tolerance::new(1.6e-2, 4.5 / 512.0))
}

/// Forward and backward of one configuration on the device against the CPU.
fn check(batch: usize, heads: usize, head_width: usize, len: usize, causal: bool, dtype: DType) {
    let width = heads * head_width;
    let what = format!("attention b{batch} h{heads} d{head_width} L{len} causal={causal} {dtype}");
    let seed = (len * 1000 + head_width * 10 + causal as usize) as u64;
    let qkv = randn(&[batch, len, 3 * width], dtype, seed);
    compare_with_cpu_tol(&format!("{what} forward"), &[&qkv], tolerance(dtype), |t| {
        Ok(vec![attention_forward(&t[0], heads, causal)?.out])
    });
    compare_with_cpu(&format!("{what} logsumexp"), &[&qkv], |t| Ok(vec![attention_forward(&t[0], heads, causal)?.lse]));
    let fwd = attention_forward(&qkv, heads, causal).unwrap();
    let d_out = randn(&[batch, len, width], dtype, seed + 1);
    compare_with_cpu_tol(&format!("{what} backward"), &[&qkv, &fwd.out, &fwd.lse, &d_out], tolerance(dtype), |t| {
        let f = AttentionOutput { out: t[1].clone(), lse: t[2].clone() };
        Ok(vec![attention_backward(&t[0], &f, &t[3], heads, causal)?])
    });
}

/// Every dtype and mask at one length, head widths 32 (6 pairs: three to a
/// block at 17 tokens) and 64 (3 pairs: a block with an idle pair at 17).
fn check_len(len: usize) {
    for dtype in DTYPES {
        for causal in [false, true] {
            check(2, 3, 32, len, causal, dtype);
            check(1, 3, 64, len, causal, dtype);
        }
    }
}

#[test]
fn one_token() {
    check_len(1);
}

#[test]
fn vit_b16_at_64px_17_tokens() {
    check_len(17);
}

#[test]
fn vit_b32_at_224px_50_tokens() {
    check_len(50);
}

#[test]
fn text_77_tokens() {
    check_len(77);
}

#[test]
fn vit_b16_at_224px_197_tokens() {
    check_len(197);
}

#[test]
fn head_width_128() {
    for dtype in DTYPES {
        check(1, 2, 128, 17, true, dtype);
        check(1, 1, 128, 50, false, dtype);
    }
}

#[test]
fn longest_tensor_core_sequences_and_the_fallback_past_them() {
    // 256 tokens at head width 128: the largest shared memory (176 KB);
    // 255: a last row block with one live row; 300: bf16 on the CUDA-core
    // kernels.
    for causal in [false, true] {
        check(1, 1, 128, 256, causal, DType::BF16);
        check(1, 2, 32, 255, causal, DType::BF16);
    }
    check(1, 1, 32, 300, true, DType::BF16);
}

#[test]
fn tensor_core_kernels_give_the_same_bits_for_every_barrier_order() {
    // The emulator resumes threads in a seed-shuffled order at each barrier,
    // so a missing barrier makes results depend on the seed.
    let (heads, hw, len) = (2, 64, 77);
    let qkv = randn(&[1, len, 3 * heads * hw], DType::BF16, 21);
    let d_out = randn(&[1, len, heads * hw], DType::BF16, 22);
    let run = |seed: u64| {
        let device = reclip_emu::Emulator::device(seed);
        let (qkv, d_out) = (qkv.to_device(&device).unwrap(), d_out.to_device(&device).unwrap());
        let fwd = attention_forward(&qkv, heads, true).unwrap();
        let d_qkv = attention_backward(&qkv, &fwd, &d_out, heads, true).unwrap();
        [fwd.out.to_vec_f32().unwrap(), fwd.lse.to_vec_f32().unwrap(), d_qkv.to_vec_f32().unwrap()]
    };
    let first = run(1);
    for seed in [2, 3, 4] {
        assert!(run(seed) == first, "barrier seed {seed} changed the result");
    }
}

#[test]
fn misaligned_view_and_tape_node() {
    // qkv starting one element into its storage: the launch code realigns it.
    let (batch, len, heads, hw) = (2, 17, 2, 32);
    let n = batch * len * 3 * heads * hw;
    let flat = randn(&[n + 1], DType::F32, 7);
    let d_out = randn(&[batch, len, heads * hw], DType::F32, 8);
    compare_with_cpu("attention of an offset view, through the tape", &[&flat, &d_out], |t| {
        let qkv = t[0].narrow(0, 1, n)?.reshape([batch, len, 3 * heads * hw])?;
        let tape = Tape::new();
        let x = tape.input(qkv);
        let y = attention(&x, heads, true)?;
        let grads = y.backward_with(t[1].clone())?;
        Ok(vec![y.tensor().clone(), grads.get(&x).expect("qkv is tracked").clone()])
    });
}

#[test]
fn head_widths_without_a_kernel_are_an_error() {
    let device = test_device();
    let qkv = Tensor::zeros([1, 5, 3 * 48], DType::F32, &device).unwrap();
    let err = attention_forward(&qkv, 1, false).unwrap_err().to_string();
    assert!(err.contains("head width 48"), "{err}");
    // The CPU path takes any head width.
    let cpu = Tensor::zeros([1, 5, 3 * 48], DType::F32, &Device::Cpu).unwrap();
    assert!(attention_forward(&cpu, 1, false).is_ok());
}

#[test]
fn backward_is_bitwise_deterministic() {
    // No atomics: two runs of the backward give identical bits (meaningful on
    // a GPU, where blocks run concurrently).
    let device = test_device();
    let (heads, hw, len) = (2, 64, 77);
    let qkv = randn(&[2, len, 3 * heads * hw], DType::BF16, 11).to_device(&device).unwrap();
    let d_out = randn(&[2, len, heads * hw], DType::BF16, 12).to_device(&device).unwrap();
    let fwd = attention_forward(&qkv, heads, true).unwrap();
    let run = || attention_backward(&qkv, &fwd, &d_out, heads, true).unwrap().to_vec::<reclip_core::bf16>().unwrap();
    assert_eq!(run(), run());
}
