//! A plain f64 implementation of CLIP's loss written from its definition,
//! with the whole B×B matrix of logits: the independent reference of the
//! tests. Its gradients come two ways: from central differences of the loss
//! ([`by_differences`]: nothing shared with any backward pass but the
//! definition; small B only) and from the textbook softmax formulas on the
//! whole matrix ([`by_formula`]: any B the tests use).

use crate::common::{logit_scale, normalized};

/// Mean over rows of −log_softmax(logits row)[label], labels on the diagonal.
fn cross_entropy_diagonal(logits: &[Vec<f64>]) -> f64 {
    let mut total = 0.0;
    for (i, row) in logits.iter().enumerate() {
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let log_sum = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        total += log_sum - row[i];
    }
    total / logits.len() as f64
}

/// The loss of `b` image rows and `b` text rows of width `d` at log-scale `t`.
pub fn clip_loss(image: &[f64], text: &[f64], b: usize, d: usize, t: f64) -> f64 {
    let (x, y) = (normalized(image, d), normalized(text, d));
    let s = logit_scale(t);
    let per_image: Vec<Vec<f64>> = (0..b)
        .map(|i| (0..b).map(|j| s * (0..d).map(|k| x[i * d + k] * y[j * d + k]).sum::<f64>()).collect())
        .collect();
    let per_text: Vec<Vec<f64>> = (0..b).map(|j| (0..b).map(|i| per_image[i][j]).collect()).collect();
    0.5 * (cross_entropy_diagonal(&per_image) + cross_entropy_diagonal(&per_text))
}

/// Loss and gradients (image, text, t) of [`clip_loss`].
pub struct Expected {
    pub loss: f64,
    pub d_image: Vec<f64>,
    pub d_text: Vec<f64>,
    pub d_log_scale: f64,
}

/// [`Expected`] with gradients by central differences.
pub fn by_differences(image: &[f64], text: &[f64], b: usize, d: usize, t: f64) -> Expected {
    let h = 1e-6;
    let loss = clip_loss(image, text, b, d, t);
    let diff = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
    let along = |v: &[f64], k: usize, e: f64| {
        let mut w = v.to_vec();
        w[k] += e;
        w
    };
    let d_image = (0..image.len()).map(|k| diff(&|e| clip_loss(&along(image, k, e), text, b, d, t))).collect();
    let d_text = (0..text.len()).map(|k| diff(&|e| clip_loss(image, &along(text, k, e), b, d, t))).collect();
    let d_log_scale = diff(&|e| clip_loss(image, text, b, d, t + e));
    Expected { loss, d_image, d_text, d_log_scale }
}

/// [`Expected`] with gradients from the formulas: dz = (softmax over each
/// row + softmax over each column − 2·I) / 2B, then through the product and
/// the normalisation.
pub fn by_formula(image: &[f64], text: &[f64], b: usize, d: usize, t: f64) -> Expected {
    let (x, y) = (normalized(image, d), normalized(text, d));
    let s = logit_scale(t);
    let dot = |i: usize, j: usize| (0..d).map(|k| x[i * d + k] * y[j * d + k]).sum::<f64>();
    let z: Vec<Vec<f64>> = (0..b).map(|i| (0..b).map(|j| s * dot(i, j)).collect()).collect();
    let log_sum = |v: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = v.collect();
        let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        max + v.iter().map(|e| (e - max).exp()).sum::<f64>().ln()
    };
    let lse_row: Vec<f64> = (0..b).map(|i| log_sum(&mut z[i].iter().cloned())).collect();
    let lse_col: Vec<f64> = (0..b).map(|j| log_sum(&mut (0..b).map(|i| z[i][j]))).collect();
    let loss = (0..b).map(|i| lse_row[i] + lse_col[i] - 2.0 * z[i][i]).sum::<f64>() / (2.0 * b as f64);
    let dz: Vec<Vec<f64>> = (0..b)
        .map(|i| {
            (0..b)
                .map(|j| {
                    let p = (z[i][j] - lse_row[i]).exp() + (z[i][j] - lse_col[j]).exp();
                    (p - if i == j { 2.0 } else { 0.0 }) / (2.0 * b as f64)
                })
                .collect()
        })
        .collect();
    let mut dx_hat = vec![0.0; b * d];
    let mut dy_hat = vec![0.0; b * d];
    let mut ds = 0.0;
    for i in 0..b {
        for j in 0..b {
            ds += dz[i][j] * dot(i, j);
            for k in 0..d {
                dx_hat[i * d + k] += s * dz[i][j] * y[j * d + k];
                dy_hat[j * d + k] += s * dz[i][j] * x[i * d + k];
            }
        }
    }
    let back = |raw: &[f64], hat: &[f64], dhat: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; raw.len()];
        for r in 0..b {
            let row = r * d..(r + 1) * d;
            let norm = raw[row.clone()].iter().map(|v| v * v).sum::<f64>().sqrt();
            let along: f64 = (r * d..(r + 1) * d).map(|k| hat[k] * dhat[k]).sum();
            for k in row {
                out[k] = if norm >= 1e-12 { (dhat[k] - hat[k] * along) / norm } else { dhat[k] / 1e-12 };
            }
        }
        out
    };
    Expected {
        loss,
        d_image: back(image, &x, &dx_hat),
        d_text: back(text, &y, &dy_hat),
        d_log_scale: if t > f64::from(100f32.ln()) { 0.0 } else { ds * s },
    }
}
