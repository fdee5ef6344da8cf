//! The training schedule as phases. RECLIP trains most steps at a low image
//! resolution (and optionally a shorter text length), then finetunes the last
//! steps at high resolution; the baseline trains every step at high
//! resolution. One learning-rate curve spans the whole run either way.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Reclip,
    Baseline,
}

impl std::str::FromStr for ScheduleKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reclip" => Ok(ScheduleKind::Reclip),
            "baseline" => Ok(ScheduleKind::Baseline),
            other => Err(format!("unknown schedule '{other}' (expected reclip or baseline)")),
        }
    }
}

/// One phase of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Phase {
    /// "main" and "finetune" (RECLIP), or "baseline".
    pub name: &'static str,
    pub image_size: usize,
    pub text_len: usize,
    /// Global index of the phase's first step.
    pub start_step: u64,
    pub steps: u64,
}

impl Phase {
    pub fn end_step(&self) -> u64 {
        self.start_step + self.steps
    }
}

/// What a schedule needs to be laid out.
#[derive(Clone, Debug)]
pub struct ScheduleSpec {
    pub kind: ScheduleKind,
    pub total_steps: u64,
    /// Steps at high resolution at the end of a RECLIP run.
    pub finetune_steps: u64,
    pub low_res: usize,
    pub high_res: usize,
    pub low_text_len: usize,
    pub high_text_len: usize,
}

/// The phases of a run, in order; empty phases are left out.
pub fn plan(spec: &ScheduleSpec) -> Result<Vec<Phase>, String> {
    if spec.total_steps == 0 {
        return Err("the run has no steps".into());
    }
    match spec.kind {
        ScheduleKind::Baseline => Ok(vec![Phase {
            name: "baseline",
            image_size: spec.high_res,
            text_len: spec.high_text_len,
            start_step: 0,
            steps: spec.total_steps,
        }]),
        ScheduleKind::Reclip => {
            if spec.finetune_steps > spec.total_steps {
                return Err(format!(
                    "{} finetune steps exceed the run's {} steps",
                    spec.finetune_steps, spec.total_steps
                ));
            }
            let main = spec.total_steps - spec.finetune_steps;
            let phases = [
                Phase {
                    name: "main",
                    image_size: spec.low_res,
                    text_len: spec.low_text_len,
                    start_step: 0,
                    steps: main,
                },
                Phase {
                    name: "finetune",
                    image_size: spec.high_res,
                    text_len: spec.high_text_len,
                    start_step: main,
                    steps: spec.finetune_steps,
                },
            ];
            Ok(phases.into_iter().filter(|p| p.steps > 0).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ScheduleKind, total: u64, finetune: u64) -> ScheduleSpec {
        ScheduleSpec {
            kind,
            total_steps: total,
            finetune_steps: finetune,
            low_res: 32,
            high_res: 64,
            low_text_len: 16,
            high_text_len: 24,
        }
    }

    #[test]
    fn reclip_ends_with_the_high_resolution_finetune() {
        let p = plan(&spec(ScheduleKind::Reclip, 100, 10)).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].name, p[0].image_size, p[0].text_len, p[0].start_step, p[0].steps), ("main", 32, 16, 0, 90));
        assert_eq!(
            (p[1].name, p[1].image_size, p[1].text_len, p[1].start_step, p[1].steps),
            ("finetune", 64, 24, 90, 10)
        );
        assert_eq!(p[1].end_step(), 100);
    }

    #[test]
    fn baseline_is_one_high_resolution_phase() {
        let p = plan(&spec(ScheduleKind::Baseline, 100, 10)).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].image_size, p[0].text_len, p[0].steps), (64, 24, 100));
    }

    #[test]
    fn degenerate_schedules() {
        assert_eq!(plan(&spec(ScheduleKind::Reclip, 10, 0)).unwrap().len(), 1);
        assert_eq!(plan(&spec(ScheduleKind::Reclip, 10, 10)).unwrap()[0].name, "finetune");
        assert!(plan(&spec(ScheduleKind::Reclip, 10, 11)).unwrap_err().contains("exceed"));
        assert!(plan(&spec(ScheduleKind::Reclip, 0, 0)).is_err());
        assert!("fast".parse::<ScheduleKind>().is_err());
    }
}
