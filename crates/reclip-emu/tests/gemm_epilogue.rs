//! The emulator's GEMM epilogues (the bias added to every row, and the sum of
//! A over k) against a plain computation, f32 and bf16, on transposed and
//! padded operands. Inputs are small multiples of 1/8, so that every product
//! and sum is exact in f32 and the only rounding is the output's own.

use reclip_core::{DType, Device, GemmCall, GemmEpilogue, GemmOperand, Tensor, bf16};
use reclip_emu::Emulator;

/// Exactly representable values in [-1, 1], different for each `salt`.
fn values(n: usize, salt: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 37 + salt * 11) % 17) as f32 / 8.0 - 1.0).collect()
}

/// `data` stored on `device` in `dtype`.
fn upload(data: &[f32], dtype: DType, device: &Device) -> Tensor {
    Tensor::from_vec(data.to_vec(), [data.len()], &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
        .to_device(device)
        .unwrap()
}

/// A row-major m×k operand stored as given (`transposed`: as its k×m
/// transpose), rows `pad` elements longer than they need be.
struct Operand {
    rows: usize,
    cols: usize,
    transposed: bool,
    pad: usize,
    data: Vec<f32>,
}

impl Operand {
    fn new(rows: usize, cols: usize, transposed: bool, pad: usize, salt: usize) -> Self {
        let stored_rows = if transposed { cols } else { rows };
        let ld = (if transposed { rows } else { cols }) + pad;
        Operand { rows, cols, transposed, pad, data: values(stored_rows * ld, salt) }
    }

    fn ld(&self) -> usize {
        (if self.transposed { self.rows } else { self.cols }) + self.pad
    }

    /// Element (i, p) of the operand, as stored.
    fn at(&self, i: usize, p: usize) -> f64 {
        let idx = if self.transposed { p * self.ld() + i } else { i * self.ld() + p };
        self.data[idx] as f64
    }

    fn gemm(&self, t: &Tensor) -> GemmOperand {
        GemmOperand { ptr: t.gpu_ptr().unwrap(), transposed: self.transposed, ld: self.ld(), batch_stride: 0 }
    }
}

/// The value of `x` once stored in `dtype`.
fn rounded(x: f64, dtype: DType) -> f64 {
    match dtype {
        DType::BF16 => bf16::from_f64(x).to_f64(),
        _ => x as f32 as f64,
    }
}

#[test]
fn bias_and_bias_gradient_epilogues_match_a_plain_computation() {
    let device = Emulator::device(1);
    let gpu = device.gpu().unwrap();
    let (m, n, k) = (7, 13, 9);
    for dtype in [DType::F32, DType::BF16] {
        for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = Operand::new(m, k, a_t, 3, 1);
            let b = Operand::new(k, n, b_t, 2, 2);
            let (ta, tb) = (upload(&a.data, dtype, &device), upload(&b.data, dtype, &device));
            let bias = values(n, 3);
            let tbias = upload(&bias, dtype, &device);
            // C is padded to ldc = n + 4; its initial values meet beta.
            let ldc = n + 4;
            let c0 = values(m * ldc, 4);
            let product = |i: usize, j: usize| (0..k).map(|p| a.at(i, p) * b.at(p, j)).sum::<f64>();
            let what = format!("{dtype}, A transposed {a_t}, B transposed {b_t}");

            // Bias: C = A·B + 0.5·C + bias, rounded once.
            let tc = upload(&c0, dtype, &device);
            let call = |c: &Tensor, beta: f32, epilogue| GemmCall {
                dtype,
                m,
                n,
                k,
                batch: 1,
                alpha: 1.0,
                beta,
                a: a.gemm(&ta),
                b: b.gemm(&tb),
                c: c.gpu_ptr().unwrap(),
                ldc,
                c_batch_stride: 0,
                epilogue,
            };
            gpu.gemm(&call(&tc, 0.5, GemmEpilogue::Bias { bias: tbias.gpu_ptr().unwrap() })).unwrap();
            let got = tc.to_vec_f64().unwrap();
            for i in 0..m {
                for j in 0..ldc {
                    let c = rounded(c0[i * ldc + j] as f64, dtype);
                    let want = if j < n { rounded(product(i, j) + 0.5 * c + bias[j] as f64, dtype) } else { c };
                    assert_eq!(got[i * ldc + j], want, "bias epilogue, {what}, at ({i}, {j})");
                }
            }

            // Bias gradient: C = A·B as without epilogue, out = Σ_p A[i, p].
            let tc = upload(&c0, dtype, &device);
            let out = Tensor::empty([m], dtype, &device).unwrap();
            gpu.gemm(&call(&tc, 0.0, GemmEpilogue::BiasGrad { out: out.gpu_ptr().unwrap() })).unwrap();
            let got = tc.to_vec_f64().unwrap();
            for i in 0..m {
                for j in 0..n {
                    assert_eq!(got[i * ldc + j], rounded(product(i, j), dtype), "bias-gradient product, {what}");
                }
            }
            let sums = out.to_vec_f64().unwrap();
            for (i, &s) in sums.iter().enumerate() {
                let want = rounded((0..k).map(|p| a.at(i, p)).sum(), dtype);
                assert_eq!(s, want, "bias gradient, {what}, at {i}");
            }
        }
    }
}

#[test]
fn epilogues_are_refused_on_batches_and_scaled_products() {
    let device = Emulator::device(1);
    let t = Tensor::zeros([16], DType::F32, &device).unwrap();
    let op = GemmOperand { ptr: t.gpu_ptr().unwrap(), transposed: false, ld: 2, batch_stride: 4 };
    let call = |batch, alpha| GemmCall {
        dtype: DType::F32,
        m: 2,
        n: 2,
        k: 2,
        batch,
        alpha,
        beta: 0.0,
        a: op,
        b: op,
        c: t.gpu_ptr().unwrap(),
        ldc: 2,
        c_batch_stride: 4,
        epilogue: GemmEpilogue::Bias { bias: t.gpu_ptr().unwrap() },
    };
    for (batch, alpha) in [(2, 1.0), (1, 2.0)] {
        let err = device.gpu().unwrap().gemm(&call(batch, alpha)).unwrap_err().to_string();
        assert!(err.contains("the bias epilogue needs one product with alpha 1"), "{err}");
        assert!(err.contains(&format!("batch {batch} and alpha {alpha}")), "{err}");
    }
}
