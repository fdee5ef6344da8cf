//! Learning-rate schedules: linear warmup, then cosine decay to zero over the
//! rest of the run — open_clip's `cosine_lr`. The RECLIP schedule keeps one
//! such curve across its low- and high-resolution phases, so the finetune
//! continues where the main phase left the learning rate.

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineSchedule {
    pub base_lr: f32,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl CosineSchedule {
    /// Learning rate at step `step` (0-based).
    pub fn lr(&self, step: u64) -> f32 {
        if step < self.warmup_steps {
            return self.base_lr * (step + 1) as f32 / self.warmup_steps as f32;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let e = (step - self.warmup_steps).min(decay_steps) as f64;
        (0.5 * (1.0 + (std::f64::consts::PI * e / decay_steps as f64).cos()) * self.base_lr as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_to_zero() {
        let s = CosineSchedule { base_lr: 1.0, warmup_steps: 10, total_steps: 110 };
        assert_eq!(s.lr(0), 0.1);
        assert_eq!(s.lr(9), 1.0);
        assert_eq!(s.lr(10), 1.0);
        assert!((s.lr(60) - 0.5).abs() < 1e-6);
        assert!(s.lr(109) < 1e-3);
        assert_eq!(s.lr(500), 0.0);
        for k in 10..109 {
            assert!(s.lr(k + 1) <= s.lr(k));
        }
    }
}
