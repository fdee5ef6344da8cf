use reclip_autograd::{Param, Tape, Var};
use reclip_core::{DType, Device, Tensor};

fn t(v: &[f64], dims: &[usize]) -> Tensor {
    Tensor::from_slice(v, dims, &Device::Cpu).unwrap()
}

#[test]
fn parameter_gradients_accumulate_until_cleared() {
    let w = Param::new("w", t(&[1.0, 2.0, 3.0], &[3]));
    let x = t(&[4.0, 5.0, 6.0], &[3]);
    for _ in 0..2 {
        let tape = Tape::new();
        let loss = tape.param(&w).mul(&Var::constant(x.clone())).unwrap().sum_all().unwrap();
        loss.backward().unwrap();
    }
    assert_eq!(w.grad().unwrap().to_vec_f64().unwrap(), vec![8.0, 10.0, 12.0]);
    w.zero_grad();
    assert!(w.grad().is_none());
}

#[test]
fn a_value_used_twice_gets_both_gradients() {
    let tape = Tape::new();
    let x = tape.input(t(&[3.0], &[1]));
    let y = x.mul(&x).unwrap().add(&x).unwrap().sum_all().unwrap();
    let g = y.backward().unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec_f64().unwrap(), vec![7.0]);
}

#[test]
fn no_grad_tape_records_nothing() {
    let w = Param::new("w", t(&[1.0, 2.0], &[2]));
    let tape = Tape::no_grad();
    let v = tape.param(&w).exp().unwrap().sum_all().unwrap();
    assert!(!v.is_tracked());
    assert_eq!(tape.len(), 0);
    assert!(v.backward().is_err());
}

#[test]
fn constants_need_no_gradient_and_record_no_node() {
    let tape = Tape::new();
    let c = Var::constant(t(&[1.0, 2.0], &[2]));
    let d = c.exp().unwrap();
    assert!(!d.is_tracked());
    assert_eq!(tape.len(), 0);
}

#[test]
fn activations_are_freed_during_backward() {
    // The exp node saves its output; once backward has run that node, only
    // our probe handle may still own the storage.
    let tape = Tape::new();
    let x = tape.input(Tensor::ones([64], DType::F64, &Device::Cpu).unwrap());
    let y = x.exp().unwrap();
    let probe = y.tensor().clone();
    let loss = y.sum_all().unwrap();
    drop(y);
    assert!(probe.storage_owners() >= 2, "the exp node holds its output");
    loss.backward().unwrap();
    assert_eq!(probe.storage_owners(), 1, "backward kept the activation alive");
    assert!(tape.is_empty(), "the tape's nodes are consumed");
}

#[test]
fn backward_notify_reports_each_parameter_once_when_its_gradient_is_complete() {
    // w is used twice (first by `a`, then by `c`), u once, late; v is on the
    // tape but gets no gradient. Each is reported once, w only after both
    // its uses have added in, and in the order the pass completes them.
    let (w, u, v) =
        (Param::new("w", t(&[2.0], &[1])), Param::new("u", t(&[3.0], &[1])), Param::new("v", t(&[5.0], &[1])));
    let tape = Tape::new();
    let (wv, uv) = (tape.param(&w), tape.param(&u));
    let _unused = tape.param(&v);
    let a = wv.mul(&wv).unwrap();
    let wv2 = tape.param(&w);
    let c = a.add(&wv2.mul(&uv).unwrap()).unwrap().sum_all().unwrap();
    let mut seen = Vec::new();
    c.backward_notify(&mut |p| {
        seen.push((p.name().to_string(), p.grad().map(|g| g.to_vec_f64().unwrap()[0])));
        Ok(())
    })
    .unwrap();
    // d/dw (w² + w·u) = 2w + u = 7, d/du = w = 2.
    let expected = [("v", None), ("u", Some(2.0)), ("w", Some(7.0))];
    let expected: Vec<_> = expected.iter().map(|(n, g)| (n.to_string(), *g)).collect();
    assert_eq!(seen, expected);
}
