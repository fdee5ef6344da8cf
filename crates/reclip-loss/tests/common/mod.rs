//! What the plain references of the loss tests share: the normalisation,
//! the scale's clamp, and the comparison of their values.

/// The scale's clamp: t at most ln 100 as an f32, where open_clip's clamp of
/// its f32 parameter leaves it.
pub fn logit_scale(t: f64) -> f64 {
    t.min(f64::from(100f32.ln())).exp()
}

/// x / max(‖x‖, 1e-12), as torch.nn.functional.normalize.
pub fn normalized(rows: &[f64], d: usize) -> Vec<f64> {
    rows.chunks(d)
        .flat_map(|r| {
            let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            r.iter().map(move |v| v / norm)
        })
        .collect()
}

/// Panics unless `got` and `want` agree within `atol + rtol·|want|` everywhere.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= atol + rtol * w.abs(), "{what}[{i}]: got {g:.10e}, want {w:.10e}");
    }
}
