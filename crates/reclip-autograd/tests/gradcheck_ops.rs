//! Every differentiable core op against central differences, on odd sizes.

use reclip_autograd::Var;
use reclip_autograd::gradcheck::gradcheck;
use reclip_core::{DType, Device, Indices, Tensor, rng};

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims, 0.0, 1.0, DType::F64, &Device::Cpu, &mut rng(seed)).unwrap()
}

fn positive(dims: &[usize], seed: u64) -> Tensor {
    Tensor::rand_uniform(dims, 0.5, 2.0, DType::F64, &Device::Cpu, &mut rng(seed)).unwrap()
}

fn ids(v: &[u32]) -> Tensor {
    Tensor::from_slice(v, [v.len()], &Device::Cpu).unwrap()
}

#[test]
fn binary_ops_with_broadcasting() {
    let shapes: [(&[usize], &[usize]); 4] =
        [(&[3, 7, 5], &[3, 7, 5]), (&[3, 7, 5], &[5]), (&[3, 1, 5], &[7, 1]), (&[1], &[3, 7, 5])];
    for (i, (sa, sb)) in shapes.iter().enumerate() {
        let (a, b) = (randn(sa, i as u64), positive(sb, 100 + i as u64));
        gradcheck(|v| v[0].add(&v[1]), &[&a, &b]).unwrap();
        gradcheck(|v| v[0].sub(&v[1]), &[&a, &b]).unwrap();
        gradcheck(|v| v[0].mul(&v[1]), &[&a, &b]).unwrap();
        gradcheck(|v| v[0].div(&v[1]), &[&a, &b]).unwrap();
        gradcheck(|v| v[0].maximum(&v[1]), &[&a, &b]).unwrap();
        gradcheck(|v| v[0].minimum(&v[1]), &[&a, &b]).unwrap();
    }
}

#[test]
fn unary_ops() {
    let x = randn(&[3, 7, 5], 1);
    let p = positive(&[3, 7, 5], 2);
    for f in [Var::neg, Var::exp, Var::sqr, Var::tanh, Var::sigmoid, Var::relu, Var::abs] {
        gradcheck(|v| f(&v[0]), &[&x]).unwrap();
    }
    for f in [Var::log, Var::sqrt, Var::recip] {
        gradcheck(|v| f(&v[0]), &[&p]).unwrap();
    }
    gradcheck(|v| v[0].affine(-1.5, 0.25), &[&x]).unwrap();
    gradcheck(|v| v[0].powf(1.7), &[&p]).unwrap();
}

#[test]
fn matmul_plain_batched_broadcast_and_transposed() {
    gradcheck(|v| v[0].matmul(&v[1]), &[&randn(&[7, 5], 3), &randn(&[5, 3], 4)]).unwrap();
    gradcheck(|v| v[0].matmul(&v[1]), &[&randn(&[3, 7, 5], 5), &randn(&[3, 5, 4], 6)]).unwrap();
    gradcheck(|v| v[0].matmul(&v[1]), &[&randn(&[3, 7, 5], 7), &randn(&[5, 4], 8)]).unwrap();
    gradcheck(|v| v[0].matmul(&v[1]), &[&randn(&[7, 5], 9), &randn(&[3, 5, 4], 10)]).unwrap();
    gradcheck(|v| v[0].transpose(0, 1)?.matmul(&v[1].transpose(0, 1)?), &[&randn(&[5, 7], 11), &randn(&[4, 5], 12)])
        .unwrap();
}

#[test]
fn reductions_and_softmax() {
    let x = randn(&[3, 7, 5], 13);
    for dim in [0isize, 1, -1] {
        for keep in [false, true] {
            gradcheck(|v| v[0].sum_dim(dim, keep), &[&x]).unwrap();
            gradcheck(|v| v[0].mean_dim(dim, keep), &[&x]).unwrap();
            gradcheck(|v| v[0].max_dim(dim, keep), &[&x]).unwrap();
        }
        gradcheck(|v| v[0].softmax(dim), &[&x]).unwrap();
        gradcheck(|v| v[0].log_softmax(dim), &[&x]).unwrap();
    }
    gradcheck(|v| v[0].sum_all(), &[&x]).unwrap();
    gradcheck(|v| v[0].mean_all(), &[&x]).unwrap();
}

#[test]
fn gather_scatter_and_index_ops() {
    let x = randn(&[7, 5], 14);
    let checked = |v: &[u32], bound| Indices::new("test", &ids(v), bound, &Device::Cpu).unwrap();
    let rows = checked(&[3, 0, 3, 6], 7);
    gradcheck(|v| v[0].index_select(0, &rows), &[&x]).unwrap();
    gradcheck(|v| v[0].index_select(1, &checked(&[4, 4, 1], 5)), &[&randn(&[3, 5, 2], 15)]).unwrap();
    gradcheck(|v| v[0].index_add(0, &rows, &v[1]), &[&x, &randn(&[4, 5], 16)]).unwrap();
    let idx = Tensor::from_slice(&[2u32, 0, 4, 4, 1, 3, 0, 0, 2], [3, 3], &Device::Cpu).unwrap();
    let y = randn(&[3, 5], 17);
    gradcheck(|v| v[0].gather(1, &idx), &[&y]).unwrap();
    gradcheck(|v| v[0].scatter_add(1, &idx, &v[1]), &[&y, &randn(&[3, 3], 18)]).unwrap();
}

#[test]
fn views_and_concat() {
    let x = randn(&[3, 7, 5], 19);
    gradcheck(|v| v[0].reshape([7, 15]), &[&x]).unwrap();
    gradcheck(|v| v[0].transpose(0, 2), &[&x]).unwrap();
    gradcheck(|v| v[0].permute(&[1, 2, 0]), &[&x]).unwrap();
    gradcheck(|v| v[0].narrow(1, 2, 3), &[&x]).unwrap();
    gradcheck(|v| v[0].narrow(2, 0, 5), &[&x]).unwrap();
    gradcheck(|v| v[0].broadcast_as([4, 3, 7, 5]), &[&x]).unwrap();
    gradcheck(|v| Var::concat(&[&v[0], &v[1], &v[0]], 1), &[&x, &randn(&[3, 2, 5], 20)]).unwrap();
}

#[test]
fn a_wrong_gradient_is_caught() {
    // The check must be able to fail: `affine` with a wrong backward scale.
    let x = randn(&[3, 4], 21);
    let err = gradcheck(
        |v| {
            let out = v[0].tensor().scale(2.0)?;
            Var::from_op("wrong", &[&v[0]], out, |g: &Tensor, _: &[bool]| Ok(vec![Some(g.scale(3.0)?)]))
        },
        &[&x],
    )
    .unwrap_err();
    assert!(err.to_string().contains("12 of 12"), "{err}");
}
