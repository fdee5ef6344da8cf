//! Index sets checked on the host and carried to the device in one transfer.

use crate::{DType, Device, Error, Result, Shape, Tensor};
use std::sync::Arc;

/// u32 indices into a dimension of `bound` entries (embedding rows, token
/// positions), checked on the host once. On a GPU device they are uploaded
/// in a single transfer together with what their gradient needs: the
/// positions grouped by target (`order`; target r's positions are
/// `order[starts[r]..starts[r + 1]]`, in index order, so that every target
/// sums its contributions deterministically).
///
/// A kernel cannot report an out-of-range index, so GPU index ops must check
/// indices before launching. Given an `Indices`, they launch at once: nothing
/// is read back to check, and nothing more is uploaded, forward or backward.
#[derive(Clone, Debug)]
pub struct Indices {
    host: Arc<[u32]>,
    shape: Shape,
    bound: usize,
    device: Device,
    gpu: Option<GpuIndices>,
}

/// Views of the one upload `[ids | order | starts]`.
#[derive(Clone, Debug)]
struct GpuIndices {
    ids: Tensor,
    order: Tensor,
    starts: Tensor,
}

impl Indices {
    /// Checks `ids` (u32, any shape) against `bound` for use on `device`.
    /// Ids already on a GPU are read back once to be checked; ids on the
    /// host (as a data loader makes them) cost no read.
    pub fn new(op: &'static str, ids: &Tensor, bound: usize, device: &Device) -> Result<Self> {
        if ids.dtype() != DType::U32 {
            return Err(Error::DType { op, got: ids.dtype(), expected: "u32 indices" });
        }
        Self::from_vec(op, ids.to_vec::<u32>()?, ids.shape().clone(), bound, device)
    }

    /// [`Indices::new`] from host values in row-major order of `shape`.
    pub fn from_vec(
        op: &'static str,
        ids: Vec<u32>,
        shape: impl Into<Shape>,
        bound: usize,
        device: &Device,
    ) -> Result<Self> {
        let shape = shape.into();
        check(op, &ids, &shape, bound)?;
        let gpu = match device {
            Device::Cpu => None,
            Device::Gpu(_) => {
                // The kernels address positions and targets with 32-bit ints.
                if ids.len() > i32::MAX as usize || bound > i32::MAX as usize {
                    return Err(Error::invalid(
                        op,
                        format!("{} indices into {bound} entries exceed the kernels' 32-bit limit", ids.len()),
                    ));
                }
                let n = ids.len();
                let all = Tensor::from_vec(packed(&ids, bound), [2 * n + bound + 1], device)?;
                Some(GpuIndices {
                    ids: all.narrow(0, 0, n)?.reshape(shape.clone())?,
                    order: all.narrow(0, n, n)?,
                    starts: all.narrow(0, 2 * n, bound + 1)?,
                })
            }
        };
        Ok(Indices { host: ids.into(), shape, bound, device: device.clone(), gpu })
    }

    /// Replaces the indices with `ids` of the same shape and bound, checked
    /// as [`Indices::from_vec`] checks them, in place: on a GPU `[ids | order
    /// | starts]` go into the same device memory in one transfer, so that
    /// work recorded reading these indices (a graph) reads the new ones.
    /// Clones share that memory and see the new indices there, though not
    /// in [`Indices::host`].
    pub fn rewrite(&mut self, op: &'static str, ids: Vec<u32>, shape: impl Into<Shape>) -> Result<()> {
        let shape = shape.into();
        if shape != self.shape {
            return Err(Error::invalid(
                op,
                format!("indices of shape {shape} cannot replace those of shape {}", self.shape),
            ));
        }
        check(op, &ids, &shape, self.bound)?;
        if let Some(g) = &self.gpu {
            let device = self.device.gpu().expect("GPU indices live on a GPU device");
            device.backend().write(g.ids.gpu_ptr()?, bytemuck::cast_slice(&packed(&ids, self.bound)))?;
        }
        self.host = ids.into();
        Ok(())
    }

    /// The indices, on the host.
    pub fn host(&self) -> &[u32] {
        &self.host
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    pub fn len(&self) -> usize {
        self.host.len()
    }

    pub fn is_empty(&self) -> bool {
        self.host.is_empty()
    }

    /// Every index is below this.
    pub fn bound(&self) -> usize {
        self.bound
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The indices on the GPU, in `shape`.
    pub fn gpu_ids(&self) -> Result<&Tensor> {
        Ok(&self.gpu("gpu_ids")?.ids)
    }

    /// The positions grouped by target, and where each target's group starts
    /// (`bound + 1` entries), on the GPU.
    pub fn gpu_groups(&self) -> Result<(&Tensor, &Tensor)> {
        let g = self.gpu("gpu_groups")?;
        Ok((&g.order, &g.starts))
    }

    fn gpu(&self, op: &'static str) -> Result<&GpuIndices> {
        self.gpu.as_ref().ok_or_else(|| Error::invalid(op, "these indices were made for the CPU"))
    }

    /// An error unless these indices were checked against `bound` for `device`.
    pub fn check_for(&self, op: &'static str, bound: usize, device: &Device) -> Result<()> {
        if self.bound != bound {
            return Err(Error::invalid(
                op,
                format!("indices checked against {} entries used on a dimension of {bound}", self.bound),
            ));
        }
        let same = match (&self.device, device) {
            (Device::Cpu, Device::Cpu) => true,
            (Device::Gpu(a), Device::Gpu(b)) => a.same(b),
            _ => false,
        };
        if !same {
            return Err(Error::DeviceMismatch { op, lhs: device.name(), rhs: self.device.name() });
        }
        Ok(())
    }
}

/// An error unless `ids` fill `shape` and are all below `bound`.
fn check(op: &'static str, ids: &[u32], shape: &Shape, bound: usize) -> Result<()> {
    if ids.len() != shape.elem_count() {
        return Err(Error::invalid(op, format!("{} indices cannot have shape {shape}", ids.len())));
    }
    if let Some(&bad) = ids.iter().find(|&&i| i as usize >= bound) {
        return Err(Error::IndexOutOfRange { op, index: bad as usize, size: bound });
    }
    Ok(())
}

/// What a GPU holds of `ids` into `bound` entries: `[ids | order | starts]`.
fn packed(ids: &[u32], bound: usize) -> Vec<u32> {
    let (order, starts) = group_by_target(ids, bound);
    [ids, &order, &starts].concat()
}

/// Positions grouped by target, stably, and where each target's group
/// starts (`targets + 1` entries): a counting sort.
pub(crate) fn group_by_target(ids: &[u32], targets: usize) -> (Vec<u32>, Vec<u32>) {
    let mut starts = vec![0u32; targets + 1];
    for &id in ids {
        starts[id as usize + 1] += 1;
    }
    for r in 0..targets {
        starts[r + 1] += starts[r];
    }
    let mut fill = starts.clone();
    let mut order = vec![0u32; ids.len()];
    for (j, &id) in ids.iter().enumerate() {
        order[fill[id as usize] as usize] = j as u32;
        fill[id as usize] += 1;
    }
    (order, starts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_stable_and_complete() {
        let (order, starts) = group_by_target(&[2, 0, 2, 1, 0], 4);
        assert_eq!(starts, vec![0, 2, 3, 5, 5]);
        assert_eq!(order, vec![1, 4, 3, 0, 2]);
    }

    #[test]
    fn a_rewrite_keeps_the_shape_and_the_bound() {
        let mut ids = Indices::from_vec("test", vec![0, 1, 2, 0], [2, 2], 3, &Device::Cpu).unwrap();
        ids.rewrite("test", vec![2, 2, 1, 0], [2, 2]).unwrap();
        assert_eq!(ids.host(), &[2, 2, 1, 0]);
        let err = ids.rewrite("test", vec![0; 4], [4]).unwrap_err();
        assert!(err.to_string().contains("shape [4]"), "{err}");
        let err = ids.rewrite("test", vec![0, 3, 0, 0], [2, 2]).unwrap_err();
        assert!(err.to_string().contains("index 3 out of range"), "{err}");
        assert_eq!(ids.host(), &[2, 2, 1, 0]);
    }

    #[test]
    fn out_of_range_is_an_error() {
        let err = Indices::from_vec("test", vec![0, 3], [2], 3, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("index 3 out of range"), "{err}");
    }
}
