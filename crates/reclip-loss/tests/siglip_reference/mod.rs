//! A plain f64 implementation of SigLIP's loss written from its definition
//! (open_clip's `SigLipLoss._loss`), with the whole matrix of logits, and its
//! gradients by central differences: the independent reference of the
//! SigLIP tests. Shares only the normalisation and the scale's clamp with the
//! softmax loss's reference.

use crate::common::{logit_scale, normalized};

/// A case: `m` image rows and `n` text rows of width `d`, t, β, and whether
/// row i's matching text is text i (`diagonal`) or none matches.
pub struct Case {
    pub image: Vec<f64>,
    pub text: Vec<f64>,
    pub m: usize,
    pub n: usize,
    pub d: usize,
    pub t: f64,
    pub bias: f64,
    pub diagonal: bool,
}

/// Loss and gradients (image, text, t, β).
pub struct Values {
    pub loss: f64,
    pub d_image: Vec<f64>,
    pub d_text: Vec<f64>,
    pub d_log_scale: f64,
    pub d_bias: f64,
}

/// −Σ_ij log σ(y_ij·z_ij) / m, z = exp(t)·x̂·ŷᵀ + β (t clamped at ln 100).
pub fn loss(image: &[f64], text: &[f64], c: &Case, t: f64, bias: f64) -> f64 {
    let (x, y) = (normalized(image, c.d), normalized(text, c.d));
    let s = logit_scale(t);
    let mut total = 0.0;
    for i in 0..c.m {
        for j in 0..c.n {
            let z = s * (0..c.d).map(|k| x[i * c.d + k] * y[j * c.d + k]).sum::<f64>() + bias;
            let label = if c.diagonal && i == j { 1.0 } else { -1.0 };
            // −log σ(v) = log(1 + e^−v), written so that neither side overflows.
            let v: f64 = label * z;
            total += (-v).max(0.0) + (-v.abs()).exp().ln_1p();
        }
    }
    total / c.m as f64
}

/// [`Values`] with gradients by central differences.
pub fn by_differences(c: &Case) -> Values {
    let h = 1e-6;
    let diff = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
    let along = |v: &[f64], k: usize, e: f64| {
        let mut w = v.to_vec();
        w[k] += e;
        w
    };
    let (image, text) = (&c.image[..], &c.text[..]);
    Values {
        loss: loss(image, text, c, c.t, c.bias),
        d_image: (0..image.len()).map(|k| diff(&|e| loss(&along(image, k, e), text, c, c.t, c.bias))).collect(),
        d_text: (0..text.len()).map(|k| diff(&|e| loss(image, &along(text, k, e), c, c.t, c.bias))).collect(),
        d_log_scale: diff(&|e| loss(image, text, c, c.t + e, c.bias)),
        d_bias: diff(&|e| loss(image, text, c, c.t, c.bias + e)),
    }
}

/// [`Values`] with gradients from the formulas on the whole matrix:
/// dz = −y·σ(−y·z)/m, then through the product and the normalisations.
pub fn by_formula(c: &Case) -> Values {
    let d = c.d;
    let (x, y) = (normalized(&c.image, d), normalized(&c.text, d));
    let s = logit_scale(c.t);
    let dot = |i: usize, j: usize| (0..d).map(|k| x[i * d + k] * y[j * d + k]).sum::<f64>();
    let (mut dx_hat, mut dy_hat) = (vec![0.0; c.m * d], vec![0.0; c.n * d]);
    let (mut ds, mut d_bias) = (0.0, 0.0);
    for i in 0..c.m {
        for j in 0..c.n {
            let z = s * dot(i, j) + c.bias;
            let label = if c.diagonal && i == j { 1.0 } else { -1.0 };
            let dz = -label / (1.0 + (label * z).exp()) / c.m as f64;
            ds += dz * dot(i, j);
            d_bias += dz;
            for k in 0..d {
                dx_hat[i * d + k] += s * dz * y[j * d + k];
                dy_hat[j * d + k] += s * dz * x[i * d + k];
            }
        }
    }
    let back = |raw: &[f64], hat: &[f64], dhat: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; raw.len()];
        for r in 0..raw.len() / d {
            let row = r * d..(r + 1) * d;
            let norm = raw[row.clone()].iter().map(|v| v * v).sum::<f64>().sqrt();
            let along: f64 = row.clone().map(|k| hat[k] * dhat[k]).sum();
            for k in row {
                out[k] = if norm >= 1e-12 { (dhat[k] - hat[k] * along) / norm } else { dhat[k] / 1e-12 };
            }
        }
        out
    };
    Values {
        loss: loss(&c.image, &c.text, c, c.t, c.bias),
        d_image: back(&c.image, &x, &dx_hat),
        d_text: back(&c.text, &y, &dy_hat),
        d_log_scale: if c.t > f64::from(100f32.ln()) { 0.0 } else { ds * s },
        d_bias,
    }
}
