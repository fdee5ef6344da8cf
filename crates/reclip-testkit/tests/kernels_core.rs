//! The core ops' kernels (copy, elementwise, reduce, softmax, index, GEMM)
//! on the device under test against the CPU path, f32 and bf16, odd sizes,
//! strided and broadcast views; the elementwise and softmax kernels in their
//! vector forms (16-byte loads) and in the scalar forms they fall back to.

use reclip_core::ops::{BinaryOp, UnaryOp};
use reclip_core::{DType, Device, Tensor};
use reclip_testkit::{
    Tolerance, assert_forms, compare_with_cpu, compare_with_cpu_kernels, compare_with_cpu_tol, misaligned, randn,
};

const DTYPES: [DType; 2] = [DType::F32, DType::BF16];

fn ids(v: &[u32]) -> Tensor {
    Tensor::from_slice(v, [v.len()], &Device::Cpu).unwrap()
}

#[test]
fn views_copies_and_casts() {
    for dtype in DTYPES {
        let x = randn(&[3, 7, 5], dtype, 1);
        compare_with_cpu(&format!("transpose+contiguous {dtype}"), &[&x], |t| {
            Ok(vec![t[0].transpose(0, 2)?.contiguous()?, t[0].permute(&[1, 2, 0])?.contiguous()?])
        });
        compare_with_cpu(&format!("narrow+concat {dtype}"), &[&x], |t| {
            let a = t[0].narrow(1, 1, 4)?;
            let b = t[0].narrow(1, 0, 1)?;
            Ok(vec![Tensor::concat(&[&a, &b, &t[0]], 1)?, Tensor::concat(&[&t[0], &t[0]], 2)?])
        });
        compare_with_cpu(&format!("broadcast+contiguous {dtype}"), &[&randn(&[7, 1], dtype, 2)], |t| {
            Ok(vec![t[0].broadcast_as([3, 7, 5])?.contiguous()?])
        });
    }
    let x = randn(&[3, 7, 5], DType::F32, 3);
    compare_with_cpu("cast f32->bf16", &[&x], |t| Ok(vec![t[0].to_dtype(DType::BF16)?]));
    let y = randn(&[3, 7, 5], DType::BF16, 4);
    compare_with_cpu("cast bf16->f32 (transposed)", &[&y], |t| Ok(vec![t[0].transpose(0, 1)?.to_dtype(DType::F32)?]));
}

#[test]
fn fills_and_in_place_clamp() {
    for dtype in DTYPES {
        compare_with_cpu(&format!("full {dtype}"), &[&randn(&[3, 7, 5], dtype, 5)], |t| {
            Ok(vec![Tensor::full(-2.75, [3, 7, 5], dtype, t[0].device())?, Tensor::ones([1], dtype, t[0].device())?])
        });
        compare_with_cpu(&format!("clamp_in_place {dtype}"), &[&randn(&[3, 7, 5], dtype, 6)], |t| {
            let mut x = t[0].copy()?;
            let before = x.gpu_ptr().ok();
            x.clamp_in_place(-0.5, 0.75)?;
            assert_eq!(x.gpu_ptr().ok(), before, "an owned tensor keeps its storage");
            Ok(vec![x, t[0].clone()])
        });
    }
    let ids = compare_with_cpu("full u32", &[&randn(&[1], DType::F32, 7)], |t| {
        Ok(vec![Tensor::full(7.0, [33], DType::U32, t[0].device())?])
    });
    assert_eq!(ids[0].to_vec::<u32>().unwrap(), vec![7; 33]);
}

#[test]
fn binary_ops_with_broadcast_and_strides() {
    let shapes: [(&[usize], &[usize]); 4] =
        [(&[3, 7, 5], &[3, 7, 5]), (&[3, 7, 5], &[5]), (&[3, 1, 5], &[7, 1]), (&[1], &[3, 7, 5])];
    for dtype in DTYPES {
        for (i, (sa, sb)) in shapes.iter().enumerate() {
            let a = randn(sa, dtype, 10 + i as u64);
            let b =
                Tensor::rand_uniform(*sb, 0.5, 2.0, dtype, &Device::Cpu, &mut reclip_core::rng(20 + i as u64)).unwrap();
            for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min] {
                compare_with_cpu(&format!("{op:?} {sa:?} {sb:?} {dtype}"), &[&a, &b], |t| {
                    Ok(vec![t[0].binary(op, &t[1])?])
                });
            }
        }
        let a = randn(&[5, 7], dtype, 30);
        compare_with_cpu(&format!("add of transposed views {dtype}"), &[&a], |t| {
            Ok(vec![t[0].transpose(0, 1)?.add(&t[0].transpose(0, 1)?.sqr()?)?])
        });
    }
}

#[test]
fn unary_affine_and_powf() {
    for dtype in DTYPES {
        let any = randn(&[3, 7, 5], dtype, 40);
        let pos = Tensor::rand_uniform([3, 7, 5], 0.1, 3.0, dtype, &Device::Cpu, &mut reclip_core::rng(41)).unwrap();
        for op in [
            UnaryOp::Neg,
            UnaryOp::Exp,
            UnaryOp::Sqr,
            UnaryOp::Tanh,
            UnaryOp::Sigmoid,
            UnaryOp::Relu,
            UnaryOp::Abs,
            UnaryOp::Step,
            UnaryOp::Sign,
        ] {
            compare_with_cpu(&format!("{op:?} {dtype}"), &[&any], |t| Ok(vec![t[0].unary(op)?]));
        }
        for op in [UnaryOp::Log, UnaryOp::Sqrt, UnaryOp::Recip] {
            compare_with_cpu(&format!("{op:?} {dtype}"), &[&pos], |t| Ok(vec![t[0].unary(op)?]));
        }
        compare_with_cpu(&format!("affine {dtype}"), &[&any], |t| Ok(vec![t[0].affine(-1.5, 0.25)?]));
        compare_with_cpu(&format!("powf {dtype}"), &[&pos], |t| Ok(vec![t[0].powf(1.7)?]));
    }
}

/// (length, misaligned view): 64 and 136 elements are whole 16-byte packs
/// of f32 and of bf16, 68 only of f32, 75 of neither; a misaligned view
/// never takes a vector form.
const FORM_CASES: [(usize, bool); 5] = [(64, false), (136, false), (68, false), (75, false), (136, true)];

fn takes_vector_form(len: usize, misalign: bool, dtype: DType) -> bool {
    !misalign && len.is_multiple_of(16 / dtype.size_in_bytes())
}

#[test]
fn elementwise_vector_and_scalar_forms() {
    for dtype in DTYPES {
        for (len, misalign) in FORM_CASES {
            let a = randn(&[3, len], dtype, 100 + len as u64);
            let b = Tensor::rand_uniform([3, len], 0.5, 2.0, dtype, &Device::Cpu, &mut reclip_core::rng(len as u64))
                .unwrap();
            let what = format!("elementwise [3, {len}] {dtype}{}", if misalign { " misaligned" } else { "" });
            let kernels = compare_with_cpu_kernels(&what, &[&a, &b], None, |t| {
                let view = |t: &Tensor| if misalign { misaligned(t) } else { Ok(t.clone()) };
                let (a, b) = (view(&t[0])?, view(&t[1])?);
                let mut clamped = view(&t[0])?;
                clamped.clamp_in_place(-0.5, 0.75)?;
                Ok(vec![
                    a.sub(&b)?,
                    a.unary(UnaryOp::Tanh)?,
                    b.unary(UnaryOp::Log)?,
                    a.affine(-1.5, 0.25)?,
                    b.powf(1.7)?,
                    clamped,
                ])
            });
            let bases = ["binary_same", "unary", "affine", "powf"];
            assert_forms(&what, &kernels, &bases, dtype, takes_vector_form(len, misalign, dtype));
            // Written in place, a view is first copied to storage of its own.
            assert_forms(&what, &kernels, &["clamp_in_place"], dtype, takes_vector_form(len, false, dtype));
        }
    }
}

#[test]
fn softmax_rows_vector_and_scalar_forms() {
    for dtype in DTYPES {
        for (len, misalign) in FORM_CASES {
            let x = randn(&[5, len], dtype, 200 + len as u64);
            let what = format!("softmax [5, {len}] {dtype}{}", if misalign { " misaligned" } else { "" });
            let kernels = compare_with_cpu_kernels(&what, &[&x], None, |t| {
                let x = if misalign { misaligned(&t[0])? } else { t[0].clone() };
                Ok(vec![x.softmax(-1)?, x.log_softmax(-1)?])
            });
            assert_forms(&what, &kernels, &["softmax_rows"], dtype, takes_vector_form(len, misalign, dtype));
        }
    }
}

#[test]
fn reductions_and_softmax_over_each_dimension() {
    for dtype in DTYPES {
        for dims in [&[3, 7, 5][..], &[2, 100, 3][..], &[4, 257][..]] {
            let x = randn(dims, dtype, 50);
            for d in 0..dims.len() as isize {
                compare_with_cpu(&format!("sum {dims:?} dim {d} {dtype}"), &[&x], |t| {
                    Ok(vec![t[0].sum_dim(d, false)?])
                });
                compare_with_cpu(&format!("max {dims:?} dim {d} {dtype}"), &[&x], |t| {
                    let (v, i) = t[0].max_dim(d, true)?;
                    Ok(vec![v, i])
                });
                compare_with_cpu(&format!("softmax {dims:?} dim {d} {dtype}"), &[&x], |t| {
                    Ok(vec![t[0].softmax(d)?, t[0].log_softmax(d)?])
                });
            }
        }
    }
}

#[test]
fn index_select_add_gather_scatter() {
    for dtype in DTYPES {
        let table = randn(&[7, 5], dtype, 60);
        let rows = ids(&[3, 0, 3, 6, 6, 6]);
        compare_with_cpu(&format!("index_select rows {dtype}"), &[&table], |t| Ok(vec![t[0].index_select(0, &rows)?]));
        let x = randn(&[3, 5, 2], dtype, 61);
        compare_with_cpu(&format!("index_select middle {dtype}"), &[&x], |t| {
            Ok(vec![t[0].index_select(1, &ids(&[4, 4, 1]))?])
        });
        let src = randn(&[6, 5], dtype, 62);
        compare_with_cpu(&format!("index_add {dtype}"), &[&table, &src], |t| {
            Ok(vec![t[0].index_add(0, &rows, &t[1])?])
        });
        let idx = Tensor::from_slice(&[2u32, 0, 4, 4, 1, 3, 0, 0, 2], [3, 3], &Device::Cpu).unwrap();
        let y = randn(&[3, 5], dtype, 63);
        let s = randn(&[3, 3], dtype, 64);
        compare_with_cpu(&format!("gather {dtype}"), &[&y], |t| Ok(vec![t[0].gather(1, &idx)?]));
        compare_with_cpu(&format!("scatter_add {dtype}"), &[&y, &s], |t| Ok(vec![t[0].scatter_add(1, &idx, &t[1])?]));
    }
    let table = randn(&[7, 5], DType::F32, 65).to_device(&reclip_testkit::test_device()).unwrap();
    let err = table.index_select(0, &ids(&[7])).unwrap_err();
    assert!(err.to_string().contains("index 7 out of range"), "{err}");
}

#[test]
fn matmul_plain_batched_broadcast_and_transposed() {
    for dtype in DTYPES {
        // GEMM sums k products: allow for different accumulation order (and TF32 on a GPU).
        let tol = Some(if dtype == DType::F32 { Tolerance::new(2e-3, 2e-3) } else { Tolerance::for_dtype(dtype) });
        let cases: [(&[usize], &[usize]); 4] =
            [(&[7, 5], &[5, 3]), (&[3, 7, 5], &[3, 5, 4]), (&[3, 7, 5], &[5, 4]), (&[1, 33], &[33, 1])];
        for (i, (sa, sb)) in cases.iter().enumerate() {
            let a = randn(sa, dtype, 70 + i as u64);
            let b = randn(sb, dtype, 80 + i as u64);
            compare_with_cpu_tol(&format!("matmul {sa:?}x{sb:?} {dtype}"), &[&a, &b], tol, |t| {
                Ok(vec![t[0].matmul(&t[1])?])
            });
        }
        let a = randn(&[5, 7], dtype, 90);
        let b = randn(&[4, 5], dtype, 91);
        compare_with_cpu_tol(&format!("matmul of transposed views {dtype}"), &[&a, &b], tol, |t| {
            Ok(vec![t[0].transpose(0, 1)?.matmul(&t[1].transpose(0, 1)?)?])
        });
        let q = randn(&[2, 17, 3, 8], dtype, 92);
        compare_with_cpu_tol(&format!("batched attention-like product {dtype}"), &[&q], tol, |t| {
            let heads = t[0].permute(&[0, 2, 1, 3])?;
            Ok(vec![heads.matmul(&heads.transpose(-1, -2)?)?])
        });
    }
}
