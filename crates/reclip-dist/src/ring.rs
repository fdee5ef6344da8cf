//! The ring exchange as a tape node: forward, the neighbour's block;
//! backward, the gradient passed back the other way round the ring.

use crate::{Comm, RingDirection};
use reclip_autograd::Var;
use reclip_core::{Result, Tensor};

/// The neighbour's `x` ([`Comm::ring_shift`]), with gradient. Every rank
/// calls it with the same shape and dtype, and runs its backward through it
/// too: the backward is a ring shift, the opposite one.
///
/// Why the opposite. With [`RingDirection::Up`] rank r's output is
/// y_r = x_{r−1}, the block of rank r−1 (mod world). The job's loss is the
/// sum of the ranks' losses L_{r'}, and x_r reaches only one of them,
/// L_{r+1}, through y_{r+1}:
///
/// ∂(Σ_{r'} L_{r'})/∂x_r = ∂L_{r+1}/∂y_{r+1},
///
/// the gradient that arrives at rank r+1's node. Rank r gets it when every
/// rank sends its node's gradient to rank r−1 and receives rank r+1's: a
/// [`RingDirection::Down`] shift. Likewise `Down`'s backward is `Up`. A
/// block passed on several times (each step of a chunked loss passes on
/// what it received) is a chain of these nodes, and its gradient goes back
/// along the chain, one opposite shift a step, to the rank that owns it.
pub fn ring_shift(comm: &Comm, x: &Var, direction: RingDirection) -> Result<Var> {
    let shifted = comm.ring_shift(x.tensor(), direction)?;
    let comm = comm.clone();
    Var::from_op("ring_shift", &[x], shifted, move |grad: &Tensor, needs: &[bool]| {
        Ok(vec![if needs[0] { Some(comm.ring_shift(grad, direction.opposite())?) } else { None }])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reclip_autograd::Tape;
    use reclip_core::{DType, Device};

    fn t(v: &[f64], dims: &[usize], dtype: DType) -> Tensor {
        Tensor::from_slice(v, dims, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
    }

    #[test]
    fn one_rank_gets_its_own_block_and_its_own_gradient() {
        let comm = Comm::single();
        let v = [1.0, -2.0, 3.5, 4.0, 0.25, 6.0];
        for direction in [RingDirection::Up, RingDirection::Down] {
            for dtype in [DType::F32, DType::BF16, DType::F64] {
                let shifted = comm.ring_shift(&t(&v, &[2, 3], dtype), direction).unwrap();
                assert_eq!((shifted.dims(), shifted.dtype()), (&[2, 3][..], dtype));
                assert_eq!(shifted.to_vec_f64().unwrap(), v, "{direction:?} {dtype}");
            }
            let tape = Tape::new();
            let x = tape.input(t(&v, &[2, 3], DType::F32));
            let c = [0.5, 1.0, -1.5, 2.0, 3.0, -4.0];
            let y = ring_shift(&comm, &x, direction).unwrap();
            assert_eq!(y.tensor().to_vec_f64().unwrap(), v);
            let loss = y.mul(&Var::constant(t(&c, &[2, 3], DType::F32))).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            assert_eq!(grads.get(&x).unwrap().to_vec_f64().unwrap(), c, "{direction:?}");
        }
    }

    #[test]
    fn the_opposite_of_each_direction_is_the_other() {
        assert_eq!(RingDirection::Up.opposite(), RingDirection::Down);
        assert_eq!(RingDirection::Down.opposite(), RingDirection::Up);
    }
}
