//! The all-gather of features as a tape node: forward, every rank's rows;
//! backward, the reduce-scatter of their gradient, so that each rank gets
//! the sum over ranks of the gradients with respect to its own rows.

use crate::Comm;
use reclip_autograd::Var;
use reclip_core::{Result, Tensor};

/// Every rank's `x` ([b, …]) in rank order ([world·b, …]), with gradient.
pub fn all_gather(comm: &Comm, x: &Var) -> Result<Var> {
    let gathered = comm.all_gather(x.tensor())?;
    let comm = comm.clone();
    Var::from_op("all_gather", &[x], gathered, move |grad: &Tensor, needs: &[bool]| {
        Ok(vec![if needs[0] { Some(comm.reduce_scatter_sum(grad)?) } else { None }])
    })
}
