//! One process: world 1, where every collective returns its input.

use crate::{Backend, Collective, Pending, RingDirection};
use reclip_core::{Result, Tensor};

pub struct Single;

impl Collective for Single {
    fn backend(&self) -> Backend {
        Backend::Single
    }

    fn rank(&self) -> usize {
        0
    }

    fn world(&self) -> usize {
        1
    }

    fn local_rank(&self) -> usize {
        0
    }

    fn local_world(&self) -> usize {
        1
    }

    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }

    fn reduce_scatter_sum(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }

    fn ring_shift(&self, t: &Tensor, _direction: RingDirection) -> Result<Tensor> {
        Ok(t.clone())
    }

    fn start_all_reduce_sum(&self, t: Tensor) -> Result<Pending> {
        Ok(Pending::ready(t))
    }

    fn all_gather_u64(&self, values: &[u64]) -> Result<Vec<u64>> {
        Ok(values.to_vec())
    }

    fn all_gather_f64(&self, values: &[f64]) -> Result<Vec<f64>> {
        Ok(values.to_vec())
    }

    fn broadcast_bytes(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        Ok(bytes)
    }

    fn barrier(&self) -> Result<()> {
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }

    fn finish(&self) -> Result<()> {
        Ok(())
    }
}
