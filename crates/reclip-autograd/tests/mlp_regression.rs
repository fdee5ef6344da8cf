//! End-to-end check of the tape: a two-layer MLP fitted to a smooth target by
//! full-batch Adam must lower its loss at least 100×.

use reclip_autograd::{Param, Tape, Var};
use reclip_core::{DType, Device, Result, Tensor, rng};

fn adam_step(p: &Param, m: &mut Tensor, v: &mut Tensor, t: i32, lr: f64) -> Result<()> {
    let g = p.take_grad().expect("every parameter gets a gradient");
    *m = m.scale(0.9)?.add(&g.scale(0.1)?)?;
    *v = v.scale(0.999)?.add(&g.sqr()?.scale(0.001)?)?;
    let mhat = m.scale(1.0 / (1.0 - 0.9f64.powi(t)))?;
    let vhat = v.scale(1.0 / (1.0 - 0.999f64.powi(t)))?;
    let step = mhat.div(&vhat.sqrt()?.add_scalar(1e-8)?)?.scale(lr)?;
    p.set_value(p.value().sub(&step)?);
    Ok(())
}

#[test]
fn mlp_fits_a_toy_regression() -> Result<()> {
    let mut r = rng(42);
    let (n, hidden) = (256, 32);
    let x = Tensor::rand_uniform([n, 2], -2.0, 2.0, DType::F32, &Device::Cpu, &mut r)?;
    let xv = x.to_vec_f32()?;
    let y: Vec<f32> = xv.chunks(2).map(|p| p[0].sin() + 0.5 * p[1] * p[1] - 1.0).collect();
    let y = Tensor::from_vec(y, [n, 1], &Device::Cpu)?;

    let params = [
        Param::new("w1", Tensor::randn([2, hidden], 0.0, 0.7, DType::F32, &Device::Cpu, &mut r)?),
        Param::new("b1", Tensor::zeros([hidden], DType::F32, &Device::Cpu)?),
        Param::new("w2", Tensor::randn([hidden, 1], 0.0, 0.2, DType::F32, &Device::Cpu, &mut r)?),
        Param::new("b2", Tensor::zeros([1], DType::F32, &Device::Cpu)?),
    ];
    let mut moments: Vec<(Tensor, Tensor)> =
        params.iter().map(|p| Ok((p.value().zeros_like()?, p.value().zeros_like()?))).collect::<Result<_>>()?;

    let loss_of = |tape: &Tape| -> Result<Var> {
        let [w1, b1, w2, b2] = params.each_ref().map(|p| tape.param(p));
        let h = Var::constant(x.clone()).matmul(&w1)?.add(&b1)?.tanh()?;
        let pred = h.matmul(&w2)?.add(&b2)?;
        pred.sub(&Var::constant(y.clone()))?.sqr()?.mean_all()
    };

    let initial = loss_of(&Tape::no_grad())?.tensor().to_scalar()?;
    for step in 1..=600 {
        let tape = Tape::new();
        loss_of(&tape)?.backward()?;
        for (p, (m, v)) in params.iter().zip(moments.iter_mut()) {
            adam_step(p, m, v, step, 0.02)?;
        }
    }
    let last = loss_of(&Tape::no_grad())?.tensor().to_scalar()?;
    assert!(last * 100.0 < initial, "loss went from {initial} to {last}");
    Ok(())
}
