//! The gradient all-reduce, in buckets started during the backward pass, as
//! PyTorch's DistributedDataParallel does it.
//!
//! Parameters are grouped in a fixed order, the reverse of the model's (the
//! order in which backward completes their gradients: the last layers
//! first), into buckets of about `bucket_bytes`. When every parameter of a
//! bucket has its gradient, the bucket is flattened and its sum over ranks
//! started; the backward pass goes on meanwhile. Buckets are started in
//! their order only, so every rank issues the same collectives in the same
//! order whatever the timing. After backward, [`GradReducer::finish`] waits
//! for the sums and leaves each parameter's gradient the mean over ranks.

use crate::{Comm, Pending};
use reclip_autograd::Param;
use reclip_core::{Result, Tensor};

/// PyTorch DDP's default bucket size.
pub const DEFAULT_BUCKET_MIB: usize = 25;

struct Bucket {
    params: Vec<Param>,
    /// How many of `params` have their gradient this step.
    ready: usize,
    /// Whether each parameter got a gradient (the same on every rank: the
    /// same program ran); one without keeps none.
    had_grad: Vec<bool>,
    pending: Option<Pending>,
}

/// Averages the gradients of a model's parameters over the ranks.
pub struct GradReducer {
    comm: Comm,
    buckets: Vec<Bucket>,
    /// The bucket of each parameter, in the model's order.
    bucket_of: Vec<(Param, usize)>,
    /// The first bucket not yet started.
    next: usize,
}

impl GradReducer {
    /// Buckets over `params` (in the model's order) of about `bucket_bytes`
    /// each; a parameter larger than that has a bucket of its own.
    pub fn new(comm: &Comm, params: &[Param], bucket_bytes: usize) -> Self {
        let mut buckets: Vec<Bucket> = Vec::new();
        let mut bucket_of = Vec::with_capacity(params.len());
        let mut bytes = 0usize;
        for p in params.iter().rev() {
            let size = p.value().elem_count() * 4;
            if buckets.is_empty() || (bytes > 0 && bytes + size > bucket_bytes) {
                buckets.push(Bucket { params: Vec::new(), ready: 0, had_grad: Vec::new(), pending: None });
                bytes = 0;
            }
            bytes += size;
            buckets.last_mut().expect("a bucket was pushed").params.push(p.clone());
            bucket_of.push((p.clone(), buckets.len() - 1));
        }
        GradReducer { comm: comm.clone(), buckets, bucket_of, next: 0 }
    }

    /// Backward's notice that `param`'s gradient is complete: starts every
    /// bucket, in order, whose parameters all are. A parameter that is not
    /// the model's is ignored.
    pub fn ready(&mut self, param: &Param) -> Result<()> {
        if let Some((_, b)) = self.bucket_of.iter().find(|(p, _)| p.same(param)) {
            self.buckets[*b].ready += 1;
        }
        while self.next < self.buckets.len() && self.buckets[self.next].ready == self.buckets[self.next].params.len() {
            self.start(self.next)?;
            self.next += 1;
        }
        Ok(())
    }

    /// Flattens bucket `i`'s gradients (zeros where there is none) and starts their sum.
    fn start(&mut self, i: usize) -> Result<()> {
        let bucket = &mut self.buckets[i];
        let mut flat = Vec::with_capacity(bucket.params.len());
        bucket.had_grad.clear();
        for p in &bucket.params {
            let grad = p.grad();
            bucket.had_grad.push(grad.is_some());
            let g = match grad {
                Some(g) => g,
                None => p.value().zeros_like()?,
            };
            flat.push(g.reshape([g.elem_count()])?);
        }
        let flat = Tensor::concat(&flat.iter().collect::<Vec<_>>(), 0)?;
        bucket.pending = Some(self.comm.start_all_reduce_sum(flat)?);
        Ok(())
    }

    /// After the backward pass: starts the buckets still waiting (those
    /// with a parameter the pass never reached), waits for every sum, and
    /// sets each gradient to the mean over ranks.
    pub fn finish(&mut self) -> Result<()> {
        while self.next < self.buckets.len() {
            self.start(self.next)?;
            self.next += 1;
        }
        let scale = 1.0 / self.comm.world() as f64;
        for bucket in &mut self.buckets {
            let pending = bucket.pending.take().expect("every bucket was started");
            let sum = self.comm.wait(pending)?;
            let mean = if scale == 1.0 { sum } else { sum.scale(scale)? };
            let mut offset = 0;
            for (p, had) in bucket.params.iter().zip(&bucket.had_grad) {
                let value = p.value();
                let n = value.elem_count();
                if *had {
                    p.set_grad(Some(mean.narrow(0, offset, n)?.reshape(value.shape().clone())?.contiguous()?));
                }
                offset += n;
            }
            bucket.ready = 0;
        }
        self.next = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reclip_core::Device;

    fn param(name: &str, n: usize) -> Param {
        Param::new(name, Tensor::zeros([n], reclip_core::DType::F32, &Device::Cpu).unwrap())
    }

    #[test]
    fn buckets_follow_the_reverse_order_and_hold_about_their_size() {
        let params: Vec<Param> =
            [10, 10, 30, 5, 5].iter().enumerate().map(|(i, n)| param(&format!("p{i}"), *n)).collect();
        let r = GradReducer::new(&Comm::single(), &params, 64);
        let names: Vec<Vec<&str>> = r.buckets.iter().map(|b| b.params.iter().map(Param::name).collect()).collect();
        // 5+5 floats = 40 bytes, then 30 floats = 120 bytes alone, then 10+10 = 80 > 64 splits.
        assert_eq!(names, vec![vec!["p4", "p3"], vec!["p2"], vec!["p1"], vec!["p0"]]);
    }

    #[test]
    fn one_rank_keeps_its_gradients_and_a_missing_one_stays_missing() {
        let params = [param("a", 3), param("b", 2)];
        params[0].set_grad(Some(Tensor::from_slice(&[1.0f32, 2.0, 3.0], [3], &Device::Cpu).unwrap()));
        let mut r = GradReducer::new(&Comm::single(), &params, 1 << 20);
        r.ready(&params[0]).unwrap();
        r.finish().unwrap();
        assert_eq!(params[0].grad().unwrap().to_vec_f32().unwrap(), vec![1.0, 2.0, 3.0]);
        assert!(params[1].grad().is_none());
    }
}
