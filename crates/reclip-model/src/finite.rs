//! Finding NaN and ±inf in a tensor, so that a checkpoint (weights, or an
//! optimizer's moments) holding them is refused at load with the tensor and
//! the first bad element named, rather than training on into NaN losses.

use std::fmt;

use reclip_core::{DType, Device, Result, Tensor};

/// The non-finite values of one tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonFinite {
    /// How many elements are NaN or ±inf.
    pub count: usize,
    /// The first one's row-major index.
    pub first_index: usize,
    /// The first one: NaN, inf or -inf.
    pub first_value: f64,
}

/// Reads like "3 non-finite values (NaN at element 17)".
impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = if self.count == 1 { "value" } else { "values" };
        let first = if self.first_value.is_nan() { "NaN".to_string() } else { self.first_value.to_string() };
        write!(f, "{} non-finite {values} ({first} at element {})", self.count, self.first_index)
    }
}

/// The tensor's non-finite values, None when every element is finite (and
/// for integer tensors, whose elements always are). A tensor on a GPU is
/// read back to the host for the check.
pub fn first_non_finite(t: &Tensor) -> Result<Option<NonFinite>> {
    let host = t.to_device(&Device::Cpu)?;
    Ok(match t.dtype() {
        DType::U32 => None,
        DType::F64 => scan(host.cpu_real::<f64>("first_non_finite")?.iter().copied()),
        // bf16 widens to f32 exactly, so its NaN and infinities stay what they are.
        DType::F32 | DType::BF16 => scan(host.cpu_real::<f32>("first_non_finite")?.iter().map(|&x| f64::from(x))),
    })
}

fn scan(values: impl Iterator<Item = f64>) -> Option<NonFinite> {
    let mut found: Option<NonFinite> = None;
    for (i, x) in values.enumerate() {
        if x.is_finite() {
            continue;
        }
        match &mut found {
            Some(f) => f.count += 1,
            None => found = Some(NonFinite { count: 1, first_index: i, first_value: x }),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_non_finite_value_and_names_the_first() {
        let values = [1.0, f32::NAN, 2.0, f32::INFINITY, f32::NEG_INFINITY, 0.0];
        for dtype in [DType::F32, DType::BF16, DType::F64] {
            let t = Tensor::from_vec(values.to_vec(), [2, 3], &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
            let found = first_non_finite(&t).unwrap().expect("three non-finite values");
            assert_eq!((found.count, found.first_index), (3, 1), "{dtype}");
            assert_eq!(found.to_string(), "3 non-finite values (NaN at element 1)");
        }
        let inf = Tensor::from_vec(vec![0.5f32, f32::NEG_INFINITY], [2], &Device::Cpu).unwrap();
        assert_eq!(first_non_finite(&inf).unwrap().unwrap().to_string(), "1 non-finite value (-inf at element 1)");
    }

    #[test]
    fn finite_and_integer_tensors_pass() {
        let finite = Tensor::from_vec(vec![f32::MAX, f32::MIN, 0.0, -0.0], [4], &Device::Cpu).unwrap();
        assert_eq!(first_non_finite(&finite).unwrap(), None);
        let ids = Tensor::from_vec(vec![u32::MAX, 0], [2], &Device::Cpu).unwrap();
        assert_eq!(first_non_finite(&ids).unwrap(), None);
        // A transposed view is read in its own row-major order.
        let t = Tensor::from_vec(vec![0.0f32, 1.0, f32::NAN, 3.0], [2, 2], &Device::Cpu).unwrap();
        assert_eq!(first_non_finite(&t.transpose(0, 1).unwrap()).unwrap().unwrap().first_index, 1);
    }
}
