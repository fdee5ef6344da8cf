//! The training schedule as phases. RECLIP trains most steps at a low image
//! resolution (and optionally a shorter text length), then finetunes the last
//! steps at high resolution; the baseline trains every step at high
//! resolution; a staged schedule (CLIPA-v2's 84 → 224 → 336 px) is any list
//! of sizes, each for a share of the steps. The first two are the named
//! cases of the third. Each phase is also a learning-rate cycle of its own,
//! not a stretch of one curve over the run (`schedule.rs` says why).

use reclip_data::BatchSpec;
use reclip_model::patch_dropout::PatchDropout;
use serde::Serialize;

/// One stage of a staged schedule, as `--stages` gives it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    pub image_size: usize,
    pub text_len: usize,
    /// Its share of the run's steps.
    pub share: f64,
}

/// The stages `size[:text_len]:share,...` name (`64:0.8,160:0.15,224:0.05`);
/// a stage without a text length gets `default_text_len`. The shares must
/// add up to 1.
pub fn parse_stages(spec: &str, default_text_len: usize) -> Result<Vec<Stage>, String> {
    let stages = spec
        .split(',')
        .map(|s| {
            let fields: Vec<&str> = s.trim().split(':').collect();
            let number = |f: &str, what: &str| {
                f.trim().parse::<usize>().map_err(|_| format!("'{s}': {what} '{f}' is not a whole number"))
            };
            let (size, text_len, share) = match fields[..] {
                [size, share] => (number(size, "image size")?, default_text_len, share),
                [size, text, share] => (number(size, "image size")?, number(text, "text length")?, share),
                _ => return Err(format!("'{s}' is not size:share or size:text_len:share")),
            };
            let share: f64 = share.trim().parse().map_err(|_| format!("'{s}': share '{share}' is not a number"))?;
            if !(share > 0.0 && share <= 1.0) {
                return Err(format!("'{s}': share {share} is not in (0, 1]"));
            }
            Ok(Stage { image_size: size, text_len, share })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let total: f64 = stages.iter().map(|s| s.share).sum();
    if (total - 1.0).abs() > 1e-3 {
        return Err(format!("the shares add up to {total}, not 1"));
    }
    Ok(stages)
}

/// FLIP's patch dropout per phase, as `--patch-dropout P[,P...]` gives it:
/// one probability for every one of the schedule's `phases`, or one for
/// each in order (`0.5,0`: FLIP's dropout, then none in the last phase).
pub fn parse_patch_dropout(spec: &str, phases: usize) -> Result<Vec<f64>, String> {
    let probs = spec
        .split(',')
        .map(|p| {
            let prob: f64 = p.trim().parse().map_err(|_| format!("'{p}' is not a number"))?;
            if !(0.0..1.0).contains(&prob) {
                return Err(format!("{prob} is not a share of patches dropped, from 0 to below 1"));
            }
            Ok(prob)
        })
        .collect::<Result<Vec<_>, String>>()?;
    match probs.len() {
        1 => Ok(vec![probs[0]; phases]),
        n if n == phases => Ok(probs),
        n => Err(format!("{n} probabilities for the schedule's {phases} phases (give one, or one per phase)")),
    }
}

/// How many of a RECLIP run's steps the high-resolution finetune takes.
#[derive(Clone, Copy, Debug)]
pub enum Finetune {
    /// This fraction of the run's steps (rounded).
    Fraction(f64),
    Steps(u64),
}

/// A run's schedule, resolved from the options.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Every step at one size.
    Baseline { image_size: usize, text_len: usize },
    /// A main phase at low resolution, then a high-resolution finetune.
    Reclip { low_res: usize, low_text_len: usize, high_res: usize, high_text_len: usize, finetune: Finetune },
    /// Stages in order, each for its share of the steps.
    Stages(Vec<Stage>),
}

impl Schedule {
    /// The name reports use.
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Baseline { .. } => "baseline",
            Schedule::Reclip { .. } => "reclip",
            Schedule::Stages(_) => "stages",
        }
    }

    /// The size and text length the run ends at: those of the baseline it
    /// is measured against.
    pub fn final_shape(&self) -> (usize, usize) {
        match self {
            Schedule::Baseline { image_size, text_len } => (*image_size, *text_len),
            Schedule::Reclip { high_res, high_text_len, .. } => (*high_res, *high_text_len),
            Schedule::Stages(stages) => stages.last().map_or((0, 0), |s| (s.image_size, s.text_len)),
        }
    }

    /// Each phase's name, image size and text length, in order (whatever
    /// the run's length).
    pub fn shapes(&self) -> Vec<(String, usize, usize)> {
        match self {
            Schedule::Baseline { image_size, text_len } => vec![("baseline".into(), *image_size, *text_len)],
            Schedule::Reclip { low_res, low_text_len, high_res, high_text_len, .. } => {
                vec![("main".into(), *low_res, *low_text_len), ("finetune".into(), *high_res, *high_text_len)]
            }
            Schedule::Stages(stages) => {
                stages.iter().enumerate().map(|(i, s)| (format!("stage{}", i + 1), s.image_size, s.text_len)).collect()
            }
        }
    }

    /// The baseline for this schedule: every step at its final shape.
    pub fn baseline(&self) -> Schedule {
        let (image_size, text_len) = self.final_shape();
        Schedule::Baseline { image_size, text_len }
    }
}

/// One phase of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Phase {
    /// "main" and "finetune" (RECLIP), "baseline", or "stage1", "stage2", ….
    pub name: String,
    pub image_size: usize,
    pub text_len: usize,
    /// FLIP's patch dropout probability in this phase's training steps (0: none).
    pub patch_dropout: f64,
    /// Global index of the phase's first step.
    pub start_step: u64,
    pub steps: u64,
}

impl Phase {
    pub fn end_step(&self) -> u64 {
        self.start_step + self.steps
    }

    /// The patch dropout of the run's `step` (in this phase) for this
    /// rank's images, which start at its slice of the global batch; `None`
    /// without dropout.
    pub fn dropout_at(&self, opts: &crate::options::TrainOptions, step: u64) -> Option<PatchDropout> {
        let first_row = opts.comm.rank() * opts.step_batch() / opts.comm.world();
        (self.patch_dropout > 0.0).then_some(PatchDropout {
            prob: self.patch_dropout,
            seed: opts.seed,
            step,
            first_row: first_row as u64,
        })
    }

    /// What the phase asks of each batch.
    pub fn batch_spec(&self) -> BatchSpec {
        BatchSpec { image_size: self.image_size, context_length: self.text_len }
    }
}

/// Phases of these names, shapes and step counts, back to back; empty ones
/// are left out.
fn consecutive(parts: Vec<(String, usize, usize, u64)>) -> Vec<Phase> {
    let mut start_step = 0;
    let mut phases = Vec::new();
    for (name, image_size, text_len, steps) in parts {
        if steps > 0 {
            phases.push(Phase { name, image_size, text_len, patch_dropout: 0.0, start_step, steps });
        }
        start_step += steps;
    }
    phases
}

/// The phases of a run of `total_steps`, in order; empty phases are left out.
pub fn plan(schedule: &Schedule, total_steps: u64) -> Result<Vec<Phase>, String> {
    if total_steps == 0 {
        return Err("the run has no steps".into());
    }
    let with_steps = |steps: Vec<u64>| {
        let parts = schedule.shapes().into_iter().zip(steps).map(|((name, size, len), n)| (name, size, len, n));
        consecutive(parts.collect())
    };
    Ok(match schedule {
        Schedule::Baseline { .. } => with_steps(vec![total_steps]),
        Schedule::Reclip { finetune, .. } => {
            let finetune_steps = match *finetune {
                Finetune::Fraction(f) if !(0.0..=1.0).contains(&f) => {
                    return Err(format!("--finetune-fraction {f} is not between 0 and 1"));
                }
                Finetune::Fraction(f) => (total_steps as f64 * f).round() as u64,
                Finetune::Steps(s) if s > total_steps => {
                    return Err(format!("--finetune-steps {s} exceeds the run's {total_steps} steps"));
                }
                Finetune::Steps(s) => s,
            };
            with_steps(vec![total_steps - finetune_steps, finetune_steps])
        }
        Schedule::Stages(stages) => {
            // Each stage ends where its cumulative share of the run does, rounded,
            // so the steps add up to the run's whatever the rounding.
            let sum: f64 = stages.iter().map(|s| s.share).sum();
            let mut cumulative = 0.0;
            let mut start = 0;
            let mut steps_of = Vec::new();
            for (i, s) in stages.iter().enumerate() {
                cumulative += s.share;
                let end = if i + 1 == stages.len() {
                    total_steps
                } else {
                    ((total_steps as f64 * cumulative / sum).round() as u64).min(total_steps)
                };
                let steps = end.saturating_sub(start);
                if steps == 0 {
                    return Err(format!(
                        "--stages: stage {} ({} px, share {}) gets none of the run's {total_steps} steps",
                        i + 1,
                        s.image_size,
                        s.share
                    ));
                }
                start = end;
                steps_of.push(steps);
            }
            with_steps(steps_of)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reclip(finetune: Finetune) -> Schedule {
        Schedule::Reclip { low_res: 32, low_text_len: 16, high_res: 64, high_text_len: 24, finetune }
    }

    fn shape(p: &Phase) -> (&str, usize, usize, u64, u64) {
        (&p.name, p.image_size, p.text_len, p.start_step, p.steps)
    }

    #[test]
    fn reclip_ends_with_the_high_resolution_finetune() {
        let p = plan(&reclip(Finetune::Fraction(0.1)), 100).unwrap();
        assert_eq!(p.iter().map(shape).collect::<Vec<_>>(), [("main", 32, 16, 0, 90), ("finetune", 64, 24, 90, 10)]);
        assert_eq!(p[1].end_step(), 100);
        assert_eq!(plan(&reclip(Finetune::Steps(7)), 100).unwrap()[1].steps, 7);
    }

    #[test]
    fn the_baseline_is_one_phase_at_the_final_shape() {
        let p = plan(&reclip(Finetune::Steps(10)).baseline(), 100).unwrap();
        assert_eq!(p.iter().map(shape).collect::<Vec<_>>(), [("baseline", 64, 24, 0, 100)]);
        let stages = Schedule::Stages(parse_stages("16:0.5,32:8:0.5", 77).unwrap());
        assert_eq!(stages.final_shape(), (32, 8));
    }

    #[test]
    fn stages_take_their_shares_and_every_step() {
        let stages = parse_stages("64:0.8, 160:0.15,224:32:0.05", 77).unwrap();
        assert_eq!(stages[0], Stage { image_size: 64, text_len: 77, share: 0.8 });
        assert_eq!(stages[2].text_len, 32);
        let p = plan(&Schedule::Stages(stages.clone()), 1000).unwrap();
        assert_eq!(
            p.iter().map(shape).collect::<Vec<_>>(),
            [("stage1", 64, 77, 0, 800), ("stage2", 160, 77, 800, 150), ("stage3", 224, 32, 950, 50)]
        );
        // Rounding never loses or adds a step.
        for total in 3..60 {
            let p = plan(&Schedule::Stages(parse_stages("8:0.34,16:0.33,24:0.33", 8).unwrap()), total).unwrap();
            assert_eq!(p.iter().map(|p| p.steps).sum::<u64>(), total);
            assert_eq!(p.last().unwrap().end_step(), total);
            assert!(p.windows(2).all(|w| w[0].end_step() == w[1].start_step));
        }
    }

    #[test]
    fn bad_stages_say_what_is_wrong() {
        for (spec, needle) in [
            ("64:0.5,128:0.4", "add up to 0.9"),
            ("64", "size:share"),
            ("64:8:16:0.5", "size:share"),
            ("sixty:1", "image size 'sixty'"),
            ("64:x:1", "text length 'x'"),
            ("64:lots", "share 'lots'"),
            ("64:0,128:1", "not in (0, 1]"),
            ("64:1.5,128:-0.5", "not in (0, 1]"),
        ] {
            let err = parse_stages(spec, 16).unwrap_err();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn patch_dropout_is_one_share_or_one_per_phase() {
        assert_eq!(parse_patch_dropout("0.5", 3).unwrap(), [0.5; 3]);
        assert_eq!(parse_patch_dropout("0.5, 0", 2).unwrap(), [0.5, 0.0]);
        for (spec, needle) in [
            ("0.5,0.5,0", "3 probabilities for the schedule's 2 phases"),
            ("half", "'half' is not a number"),
            ("1", "1 is not a share"),
            ("0.5,-0.1", "-0.1 is not a share"),
            ("NaN", "NaN is not a share"),
        ] {
            let err = parse_patch_dropout(spec, 2).unwrap_err();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn degenerate_schedules() {
        assert_eq!(plan(&reclip(Finetune::Steps(0)), 10).unwrap().len(), 1);
        assert_eq!(plan(&reclip(Finetune::Steps(10)), 10).unwrap()[0].name, "finetune");
        assert!(plan(&reclip(Finetune::Steps(11)), 10).unwrap_err().contains("exceed"));
        assert!(plan(&reclip(Finetune::Fraction(1.5)), 10).unwrap_err().contains("--finetune-fraction 1.5"));
        assert!(plan(&reclip(Finetune::Steps(0)), 0).is_err());
        // A stage too short for a step of the run is an error, not left out.
        let err = plan(&Schedule::Stages(parse_stages("8:0.95,16:0.05", 8).unwrap()), 5).unwrap_err();
        assert!(err.contains("stage 2 (16 px, share 0.05) gets none of the run's 5 steps"), "{err}");
    }
}
