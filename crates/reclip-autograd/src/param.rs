use reclip_core::{Result, Tensor};
use std::sync::{Arc, Mutex, MutexGuard};

/// A trainable tensor with a name and an accumulated gradient. Clones share
/// the parameter. Values are replaced by the optimizer between steps; each
/// `backward` adds into the gradient until `zero_grad`.
#[derive(Clone)]
pub struct Param(Arc<ParamInner>);

struct ParamInner {
    name: String,
    value: Mutex<Tensor>,
    grad: Mutex<Option<Tensor>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves a tensor handle, never torn data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Param {
    pub fn new(name: impl Into<String>, value: Tensor) -> Self {
        Param(Arc::new(ParamInner { name: name.into(), value: Mutex::new(value), grad: Mutex::new(None) }))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The current value (a cheap handle sharing storage).
    pub fn value(&self) -> Tensor {
        lock(&self.0.value).clone()
    }

    pub fn set_value(&self, value: Tensor) {
        *lock(&self.0.value) = value;
    }

    /// Removes and returns the value so that it can be updated in place
    /// without a copy; `set_value` puts it back.
    pub fn take_value(&self) -> Tensor {
        let mut v = lock(&self.0.value);
        let empty = Tensor::zeros([0], v.dtype(), v.device()).expect("an empty tensor needs no allocation");
        std::mem::replace(&mut *v, empty)
    }

    pub fn grad(&self) -> Option<Tensor> {
        lock(&self.0.grad).clone()
    }

    pub fn take_grad(&self) -> Option<Tensor> {
        lock(&self.0.grad).take()
    }

    pub fn set_grad(&self, grad: Option<Tensor>) {
        *lock(&self.0.grad) = grad;
    }

    pub fn zero_grad(&self) {
        *lock(&self.0.grad) = None;
    }

    /// Adds `g` to the accumulated gradient, in the parameter's dtype.
    pub fn accumulate_grad(&self, g: &Tensor) -> Result<()> {
        let dtype = lock(&self.0.value).dtype();
        let g = g.to_dtype(dtype)?;
        let mut slot = lock(&self.0.grad);
        *slot = Some(match slot.take() {
            Some(acc) => acc.add(&g)?,
            None => g,
        });
        Ok(())
    }

    pub fn same(&self, other: &Param) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Param({}, {:?})", self.name(), self.value())
    }
}

/// State kept beside parameters, such as an optimizer's moments, that must
/// follow when a model replaces a parameter's value with a resized one.
pub trait FollowsParams {
    /// `param`'s value was replaced by `resize` of its old value; `resize`
    /// maps any tensor of the old shape the same way.
    fn resized(&mut self, param: &Param, resize: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<()>;
}
