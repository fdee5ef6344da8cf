//! Gradients of the attention ops against central differences, in f64 on the
//! CPU, at odd sizes; and the ops' errors on bad input.

use reclip_attention::{AttentionOutput, attention, attention_backward, attention_forward, multi_head_attention};
use reclip_autograd::gradcheck::gradcheck;
use reclip_core::{DType, Device, Tensor};
use reclip_testkit::randn;

#[test]
fn attention_gradients_match_finite_differences() {
    // (batch, len, heads, head width)
    for (b, l, h, d) in [(2, 5, 2, 3), (1, 1, 3, 2), (3, 4, 1, 5), (1, 9, 2, 4)] {
        let qkv = randn(&[b, l, 3 * h * d], DType::F64, (b * 100 + l) as u64);
        for causal in [false, true] {
            gradcheck(|v| attention(&v[0], h, causal), &[&qkv])
                .unwrap_or_else(|e| panic!("b{b} L{l} h{h} d{d} causal={causal}: {e}"));
        }
    }
}

#[test]
fn multi_head_attention_gradients_match_finite_differences() {
    let (b, l, w, heads) = (2, 3, 4, 2);
    let x = randn(&[b, l, w], DType::F64, 1);
    let w_in = randn(&[3 * w, w], DType::F64, 2);
    let b_in = randn(&[3 * w], DType::F64, 3);
    let w_out = randn(&[w, w], DType::F64, 4);
    let b_out = randn(&[w], DType::F64, 5);
    for causal in [false, true] {
        gradcheck(
            |v| multi_head_attention(&v[0], &v[1], &v[2], &v[3], &v[4], heads, causal),
            &[&x, &w_in, &b_in, &w_out, &b_out],
        )
        .unwrap_or_else(|e| panic!("causal={causal}: {e}"));
    }
}

#[test]
fn a_wrong_backward_fails_the_check() {
    // The mask changes the function: gradients of the causal op do not pass
    // for the unmasked one, so the check above can fail.
    let qkv = randn(&[1, 3, 6], DType::F64, 9);
    let wrong = gradcheck(
        |v| {
            let out = attention_forward(v[0].tensor(), 1, false)?;
            let input = v[0].tensor().clone();
            reclip_autograd::Var::from_op("attention", &[&v[0]], out.out.clone(), move |g: &Tensor, _: &[bool]| {
                let causal = attention_forward(&input, 1, true)?;
                Ok(vec![Some(attention_backward(&input, &causal, g, 1, true)?)])
            })
        },
        &[&qkv],
    );
    assert!(wrong.is_err());
}

#[test]
fn bad_shapes_are_clear_errors() {
    let cpu = Device::Cpu;
    let zeros = |dims: &[usize]| Tensor::zeros(dims, DType::F32, &cpu).unwrap();
    let err = |r: reclip_core::Result<AttentionOutput>| r.unwrap_err().to_string();
    assert!(err(attention_forward(&zeros(&[2, 5, 7]), 1, false)).contains("3·width"));
    assert!(err(attention_forward(&zeros(&[10, 21]), 1, false)).contains("[batch, tokens, 3·width]"));
    assert!(err(attention_forward(&zeros(&[2, 5, 12]), 3, false)).contains("3 heads do not divide the width 4"));
    assert!(err(attention_forward(&zeros(&[2, 5, 12]), 0, false)).contains("0 heads"));

    let qkv = zeros(&[2, 5, 12]);
    let fwd = attention_forward(&qkv, 2, false).unwrap();
    assert_eq!(fwd.out.dims(), &[2, 5, 4]);
    assert_eq!((fwd.lse.dims(), fwd.lse.dtype()), (&[2, 2, 5][..], DType::F32));
    let e = attention_backward(&qkv, &fwd, &zeros(&[2, 4, 4]), 2, false).unwrap_err().to_string();
    assert!(e.contains("the output's gradient must have shape [2, 5, 4]"), "{e}");
    let bf = zeros(&[2, 5, 4]).to_dtype(DType::BF16).unwrap();
    let e = attention_backward(&qkv, &fwd, &bf, 2, false).unwrap_err().to_string();
    assert!(e.contains("must be f32, got bf16"), "{e}");

    let v = |dims: &[usize]| reclip_autograd::Var::constant(zeros(dims));
    let e = multi_head_attention(&v(&[2, 5, 4]), &v(&[12, 4]), &v(&[12]), &v(&[4, 5]), &v(&[4]), 2, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("out_proj_weight must have shape [4, 4]"), "{e}");
}
