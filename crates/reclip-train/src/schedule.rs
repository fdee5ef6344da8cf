//! Learning-rate schedules. Each phase of a run is one cycle of open_clip's
//! `cosine_lr`: linear warmup, then cosine decay to zero at the phase's end.
//! The baseline is one cycle over the whole run. RECLIP's main phase is one
//! cycle at the peak learning rate; its high-resolution finetune is a second,
//! shorter cycle at `finetune_lr` with a warmup of a tenth of its steps, and
//! so is every later stage of a staged schedule. A
//! single curve across both phases would leave the finetune the tail of the
//! cosine, too small a learning rate for the image tower to adapt to four
//! times as many, four times finer patches — on the built-in data that tail
//! lost a third of the zero-shot accuracy the main phase had reached. For the
//! same reason the finetune's peak is the main phase's by default: on the
//! built-in data (BENCHMARKS.md) the main phase's model scores 23.5% at the
//! new size, and 200 finetune steps at peaks of 1e-4, 2e-4, 5e-4, 1e-3 and
//! 2e-3 bring it to 84.6%, 88.3%, 91.5%, 94.4% and 95.6%.

use crate::phases::Phase;

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

/// The learning rate over a run: one cosine cycle per phase.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSchedule {
    /// Each phase's first step and its cycle, in order.
    cycles: Vec<(u64, CosineSchedule)>,
}

impl RunSchedule {
    /// `lr` and `warmup` apply to the first phase; each later one peaks at
    /// `finetune_lr` and warms up over `finetune_warmup` steps (default: a
    /// tenth of its steps).
    pub fn new(phases: &[Phase], lr: f32, warmup: u64, finetune_lr: f32, finetune_warmup: Option<u64>) -> Self {
        let cycles = phases
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (base_lr, warmup_steps) =
                    if i > 0 { (finetune_lr, finetune_warmup.unwrap_or(p.steps.div_ceil(10))) } else { (lr, warmup) };
                (p.start_step, CosineSchedule { base_lr, warmup_steps, total_steps: p.steps })
            })
            .collect();
        RunSchedule { cycles }
    }

    pub fn lr(&self, step: u64) -> f32 {
        let (start, cycle) = self
            .cycles
            .iter()
            .rev()
            .find(|(start, _)| *start <= step)
            .or(self.cycles.first())
            .expect("a run has phases");
        cycle.lr(step.saturating_sub(*start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phases::{Finetune, Schedule, plan};

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

    fn reclip() -> Schedule {
        Schedule::Reclip {
            low_res: 32,
            low_text_len: 24,
            high_res: 64,
            high_text_len: 24,
            finetune: Finetune::Steps(100),
        }
    }

    fn phases(schedule: &Schedule) -> Vec<Phase> {
        plan(schedule, 1000).unwrap()
    }

    #[test]
    fn the_finetune_is_a_second_cycle_at_its_own_peak() {
        let s = RunSchedule::new(&phases(&reclip()), 2e-3, 50, 1e-3, None);
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-6 * b;
        assert!(close(s.lr(49), 2e-3));
        assert!(s.lr(899) < 1e-7, "the main phase decays to zero at its end");
        assert!(close(s.lr(900), 1e-4), "the finetune warms up over 10 steps: {}", s.lr(900));
        assert!(close(s.lr(909), 1e-3));
        assert!(close(s.lr(955), 5e-4), "half way through its decay");
        assert!(s.lr(999) < 1e-6);
    }

    #[test]
    fn the_baseline_is_one_cycle() {
        let s = RunSchedule::new(&phases(&reclip().baseline()), 2e-3, 50, 1e-3, None);
        let one = CosineSchedule { base_lr: 2e-3, warmup_steps: 50, total_steps: 1000 };
        for step in [0, 49, 50, 500, 900, 999] {
            assert_eq!(s.lr(step), one.lr(step));
        }
    }

    #[test]
    fn every_later_stage_is_a_cycle_at_the_finetune_peak() {
        let stages = Schedule::Stages(crate::phases::parse_stages("16:0.8,24:0.1,32:0.1", 16).unwrap());
        let s = RunSchedule::new(&phases(&stages), 2e-3, 50, 1e-3, None);
        for start in [800, 900] {
            assert!(s.lr(start - 1) < 1e-6, "the stage before {start} decays to zero");
            assert!((s.lr(start) - 1e-4).abs() < 1e-9, "a tenth of the peak after one of ten warmup steps");
            assert!((s.lr(start + 9) - 1e-3).abs() < 1e-9);
        }
    }

    #[test]
    fn the_finetune_warmup_can_be_set() {
        let s = RunSchedule::new(&phases(&reclip()), 2e-3, 50, 1e-3, Some(0));
        assert_eq!(s.lr(900), 1e-3, "no warmup: the peak at once");
        let s = RunSchedule::new(&phases(&reclip()), 2e-3, 50, 1e-3, Some(40));
        assert!((s.lr(900) - 2.5e-5).abs() < 1e-9);
        assert!((s.lr(939) - 1e-3).abs() < 1e-9);
        assert!(s.lr(941) < 1e-3 && s.lr(941) > 0.99e-3, "then the decay");
    }
}
