//! Finite-difference gradient check, in f64 on the CPU.
//!
//! For a function `f` of some tensors, the check contracts the output with a
//! fixed random tensor `w` (so every output element matters), backpropagates
//! `w` through the tape, and compares each input gradient with the central
//! difference `(L(x + h) - L(x - h)) / 2h` of `L(x) = Σ f(x)·w`.

use crate::{Tape, Var};
use reclip_core::{DType, Device, Result, Tensor, rng};
use std::fmt;

#[derive(Clone, Copy, Debug)]
pub struct GradCheck {
    /// Finite-difference step.
    pub step: f64,
    pub rtol: f64,
    pub atol: f64,
    /// Seed of the output weighting.
    pub seed: u64,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck { step: 1e-6, rtol: 1e-5, atol: 1e-7, seed: 0x5eed }
    }
}

/// One gradient element that disagrees with its finite difference.
#[derive(Clone, Debug)]
pub struct Mismatch {
    pub input: usize,
    pub index: usize,
    pub analytic: f64,
    pub numeric: f64,
}

#[derive(Debug)]
pub enum GradCheckError {
    Op(reclip_core::Error),
    Mismatches { checked: usize, mismatches: Vec<Mismatch> },
}

impl fmt::Display for GradCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GradCheckError::Op(e) => write!(f, "gradcheck: the function failed: {e}"),
            GradCheckError::Mismatches { checked, mismatches } => {
                writeln!(f, "gradcheck: {} of {checked} gradient elements disagree; first ones:", mismatches.len())?;
                for m in mismatches.iter().take(10) {
                    writeln!(
                        f,
                        "  input {} element {}: analytic {:.9e}, numeric {:.9e}",
                        m.input, m.index, m.analytic, m.numeric
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for GradCheckError {}

impl From<reclip_core::Error> for GradCheckError {
    fn from(e: reclip_core::Error) -> Self {
        GradCheckError::Op(e)
    }
}

impl GradCheck {
    /// Checks the gradients of `f` with respect to every tensor in `inputs`
    /// (converted to f64 on the CPU).
    pub fn run<F>(&self, f: F, inputs: &[&Tensor]) -> std::result::Result<(), GradCheckError>
    where
        F: Fn(&[Var]) -> Result<Var>,
    {
        let inputs: Vec<Tensor> =
            inputs.iter().map(|t| t.to_device(&Device::Cpu)?.to_dtype(DType::F64)).collect::<Result<_>>()?;

        let tape = Tape::new();
        let vars: Vec<Var> = inputs.iter().map(|t| tape.input(t.clone())).collect();
        let out = f(&vars)?;
        let weights =
            Tensor::randn(out.tensor().shape().clone(), 0.0, 1.0, DType::F64, &Device::Cpu, &mut rng(self.seed))?;
        let w = weights.to_vec_f64()?;
        let grads = out.backward_with(weights.to_dtype(out.tensor().dtype())?)?;

        let objective = |xs: &[Tensor]| -> Result<f64> {
            let vars: Vec<Var> = xs.iter().cloned().map(Var::constant).collect();
            let y = f(&vars)?.tensor().to_vec_f64()?;
            Ok(y.iter().zip(&w).map(|(a, b)| a * b).sum())
        };

        let mut mismatches = Vec::new();
        let mut checked = 0;
        for (i, var) in vars.iter().enumerate() {
            let analytic = match grads.get(var) {
                Some(g) => g.to_vec_f64()?,
                None => vec![0.0; inputs[i].elem_count()],
            };
            let base = inputs[i].to_vec_f64()?;
            for j in 0..base.len() {
                let mut probe = inputs.clone();
                let mut shifted = base.clone();
                shifted[j] = base[j] + self.step;
                probe[i] = Tensor::from_vec(shifted.clone(), inputs[i].shape().clone(), &Device::Cpu)?;
                let up = objective(&probe)?;
                shifted[j] = base[j] - self.step;
                probe[i] = Tensor::from_vec(shifted, inputs[i].shape().clone(), &Device::Cpu)?;
                let down = objective(&probe)?;
                let numeric = (up - down) / (2.0 * self.step);
                checked += 1;
                if (analytic[j] - numeric).abs() > self.atol + self.rtol * numeric.abs() {
                    mismatches.push(Mismatch { input: i, index: j, analytic: analytic[j], numeric });
                }
            }
        }
        if mismatches.is_empty() { Ok(()) } else { Err(GradCheckError::Mismatches { checked, mismatches }) }
    }
}

/// [`GradCheck::run`] with default settings.
pub fn gradcheck<F>(f: F, inputs: &[&Tensor]) -> std::result::Result<(), GradCheckError>
where
    F: Fn(&[Var]) -> Result<Var>,
{
    GradCheck::default().run(f, inputs)
}
