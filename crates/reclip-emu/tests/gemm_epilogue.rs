//! The emulator's GEMM epilogues (the bias added to every row, the sum of A
//! over k, and GELU's tanh approximation with the saved pre-activation and,
//! backward, its derivative with the bias gradient) against a plain
//! computation, f32 and bf16, on transposed and padded operands. Inputs are
//! small multiples of 1/8, so that every product and sum is exact in f32 and
//! the only rounding is the output's own (and GELU's f32 arithmetic).

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
fn epilogues_match_a_plain_computation() {
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

            // GELU: u = A·B + 0.5·C + bias saved to aux (rows padded past n, the
            // padding untouched), C = gelu(u).
            let ld_aux = n.next_multiple_of(8) + 8;
            let aux0 = values(m * ld_aux, 5);
            let (tc, taux) = (upload(&c0, dtype, &device), upload(&aux0, dtype, &device));
            let epilogue =
                GemmEpilogue::GeluAuxBias { bias: tbias.gpu_ptr().unwrap(), aux: taux.gpu_ptr().unwrap(), ld_aux };
            gpu.gemm(&call(&tc, 0.5, epilogue)).unwrap();
            let (got, aux) = (tc.to_vec_f64().unwrap(), taux.to_vec_f64().unwrap());
            for i in 0..m {
                for j in 0..ld_aux {
                    let (c, a0) = (
                        rounded(c0[i * ldc + j.min(ldc - 1)] as f64, dtype),
                        rounded(aux0[i * ld_aux + j] as f64, dtype),
                    );
                    if j >= n {
                        assert_eq!(aux[i * ld_aux + j], a0, "aux padding, {what}, at ({i}, {j})");
                        if j < ldc {
                            assert_eq!(got[i * ldc + j], c, "C padding, {what}, at ({i}, {j})");
                        }
                        continue;
                    }
                    let u = product(i, j) + 0.5 * c + bias[j] as f64;
                    assert_eq!(aux[i * ld_aux + j], rounded(u, dtype), "pre-activation, {what}, at ({i}, {j})");
                    assert_near(got[i * ldc + j], gelu_tanh(u), dtype, &format!("GELU, {what}, at ({i}, {j})"));
                }
            }

            // Its gradient: C = (A·B)·gelu'(aux), out[j] = Σ_i C[i, j].
            let tc = upload(&c0, dtype, &device);
            let out = Tensor::empty([n], dtype, &device).unwrap();
            let epilogue =
                GemmEpilogue::DGeluBiasGrad { aux: taux.gpu_ptr().unwrap(), ld_aux, out: out.gpu_ptr().unwrap() };
            gpu.gemm(&call(&tc, 0.0, epilogue)).unwrap();
            let (got, sums) = (tc.to_vec_f64().unwrap(), out.to_vec_f64().unwrap());
            let du = |i: usize, j: usize| product(i, j) * gelu_tanh_derivative(aux[i * ld_aux + j]);
            for j in 0..n {
                for i in 0..m {
                    assert_near(got[i * ldc + j], du(i, j), dtype, &format!("GELU gradient, {what}, at ({i}, {j})"));
                }
                let want: f64 = (0..m).map(|i| du(i, j)).sum();
                let scale: f64 = (0..m).map(|i| du(i, j).abs()).sum();
                assert!(
                    (sums[j] - want).abs() <= ulp(dtype) * scale.max(1e-6),
                    "GELU bias gradient, {what}, at {j}: {} vs {want}",
                    sums[j]
                );
            }
        }
    }
}

/// GELU's tanh approximation from its definition, and its derivative.
fn gelu_tanh(u: f64) -> f64 {
    0.5 * u * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (u + 0.044715 * u.powi(3))).tanh())
}

fn gelu_tanh_derivative(u: f64) -> f64 {
    let k = (2.0 / std::f64::consts::PI).sqrt();
    let t = (k * (u + 0.044715 * u.powi(3))).tanh();
    0.5 * (1.0 + t) + 0.5 * u * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * u * u)
}

/// The relative precision of a stored value: f32 arithmetic's few ulps, or
/// one bf16 rounding (2⁻⁸, which also covers f32's error landing on a tie).
fn ulp(dtype: DType) -> f64 {
    if dtype == DType::BF16 { 1.0 / 256.0 } else { 4e-6 }
}

fn assert_near(got: f64, want: f64, dtype: DType, what: &str) {
    assert!((got - want).abs() <= ulp(dtype) * want.abs() + 1e-7, "{what}: {got} vs {want}");
}

#[test]
fn gelu_epilogues_refuse_a_pre_activation_ld_cublaslt_cannot_take() {
    let device = Emulator::device(1);
    let t = Tensor::zeros([256], DType::F32, &device).unwrap();
    let ptr = t.gpu_ptr().unwrap();
    let op = GemmOperand { ptr, transposed: false, ld: 12, batch_stride: 0 };
    for (ld_aux, epilogue) in [
        (12, GemmEpilogue::GeluAuxBias { bias: ptr, aux: ptr, ld_aux: 12 }),
        (8, GemmEpilogue::DGeluBiasGrad { aux: ptr, ld_aux: 8, out: ptr }),
    ] {
        let call = GemmCall {
            dtype: DType::F32,
            m: 2,
            n: 12,
            k: 12,
            batch: 1,
            alpha: 1.0,
            beta: 0.0,
            a: op,
            b: op,
            c: ptr,
            ldc: 12,
            c_batch_stride: 0,
            epilogue,
        };
        let err = device.gpu().unwrap().gemm(&call).unwrap_err().to_string();
        assert!(
            err.contains(&format!("rows are {ld_aux} elements apart"))
                && err.contains("multiple of 8 of at least n = 12"),
            "{err}"
        );
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
