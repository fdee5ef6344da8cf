//! The report of a finished run: each phase's compute and time, the totals,
//! the baseline priced against them, and the accuracy around each switch.

use super::{BaselineEstimate, EvalPoint, PhaseReport, Ratios, Report, SwitchReport, Totals, evaluations, top1_at};
use crate::baseline::Baseline;
use crate::eval::{RetrievalResult, ZeroShotResult};
use crate::graph_step::GraphsUsed;
use crate::metrics::Line;
use crate::options::TrainOptions;
use crate::phases::Phase;
use crate::state::PhaseStats;
use reclip_data::DataReport;
use reclip_model::FlopsReport;

/// What a finished run's report is made of.
pub(crate) struct RunRecord<'a> {
    pub opts: &'a TrainOptions,
    pub phases: &'a [Phase],
    /// Each phase's FLOPs per sample.
    pub flops: &'a [FlopsReport],
    pub stats: &'a [PhaseStats],
    /// The run's metrics, the final evaluation's included.
    pub metrics: &'a [Line],
    /// The final evaluation, on every set.
    pub zero_shot: Vec<ZeroShotResult>,
    pub retrieval: Vec<RetrievalResult>,
    /// `None` when the run was the baseline.
    pub baseline: Option<Baseline>,
    pub data: DataReport,
    /// How the training data was read, in words.
    pub data_reader: String,
    /// Whether the steps were replayed from CUDA graphs.
    pub graphs: GraphsUsed,
}

impl Report {
    pub(crate) fn build(run: RunRecord) -> Report {
        let evaluations = evaluations(run.metrics);
        let phases: Vec<PhaseReport> = run
            .phases
            .iter()
            .zip(run.stats)
            .zip(run.flops)
            .map(|((p, s), f)| PhaseReport::new(p, s, f, &evaluations))
            .collect();
        let total = Totals::of(&phases);
        let baseline = run.baseline.map(|b| BaselineEstimate::new(&b, &total));
        let ratios = baseline.as_ref().map(|b| Ratios::new(b, &total));
        let opts = run.opts;
        Report {
            model: opts.model_name.clone(),
            device: opts.device.name(),
            precision: opts.precision.name().to_string(),
            schedule: opts.schedule.name().to_string(),
            batch_size: opts.batch_size,
            accum_freq: opts.accum_freq,
            loss: match crate::options::Objective::of(&opts.model) {
                crate::options::Objective::Clip => "clip".into(),
                crate::options::Objective::Siglip => "siglip".into(),
            },
            world_size: opts.comm.world(),
            dist_backend: opts.comm.backend().name().to_string(),
            phases,
            total,
            baseline,
            ratios,
            zero_shot: run.zero_shot,
            retrieval: run.retrieval,
            switches: switch_reports(run.phases, &evaluations),
            evaluations,
            data_reader: run.data_reader,
            data_problems: data_problems(&run.data),
            cuda_graphs: run.graphs,
        }
    }
}

impl PhaseReport {
    fn new(p: &Phase, s: &PhaseStats, f: &FlopsReport, evaluations: &[EvalPoint]) -> Self {
        PhaseReport {
            name: p.name.clone(),
            image_size: p.image_size,
            text_len: p.text_len,
            patch_dropout: p.patch_dropout,
            tokens_per_image: f.image.tokens,
            steps: s.steps,
            samples: s.samples,
            gflops_forward: f.forward_gflops,
            gflops_training: f.training_gflops,
            gflops_elementwise_forward: f.image.forward_elementwise_gflops + f.text.forward_elementwise_gflops,
            total_pflops: f.training_pflops(s.samples),
            wall_seconds: s.wall_seconds,
            comm_seconds: s.comm_seconds,
            images_per_second: s.samples as f64 / s.wall_seconds.max(1e-9),
            zero_shot_top1: top1_at(evaluations, p.end_step(), p.image_size),
        }
    }
}

impl Totals {
    fn of(phases: &[PhaseReport]) -> Self {
        let samples = phases.iter().map(|p| p.samples).sum::<u64>();
        let wall_seconds = phases.iter().map(|p| p.wall_seconds).sum::<f64>();
        Totals {
            steps: phases.iter().map(|p| p.steps).sum(),
            samples,
            total_pflops: phases.iter().map(|p| p.total_pflops).sum(),
            wall_seconds,
            comm_seconds: phases.iter().map(|p| p.comm_seconds).sum(),
            images_per_second: samples as f64 / wall_seconds.max(1e-9),
        }
    }
}

impl BaselineEstimate {
    /// The baseline trained on as many samples as the run.
    fn new(b: &Baseline, total: &Totals) -> Self {
        let samples = total.samples;
        BaselineEstimate {
            image_size: b.phase.image_size,
            text_len: b.phase.text_len,
            patch_dropout: b.phase.patch_dropout,
            steps: total.steps,
            samples,
            gflops_training: b.flops.training_gflops,
            total_pflops: b.flops.training_pflops(samples),
            probe_images_per_second: b.images_per_second,
            probe_steps: b.probe_steps,
            estimated_wall_seconds: samples as f64 / b.images_per_second,
        }
    }
}

impl Ratios {
    fn new(b: &BaselineEstimate, total: &Totals) -> Self {
        Ratios {
            flops: b.total_pflops / total.total_pflops.max(1e-30),
            wall_time: b.estimated_wall_seconds / total.wall_seconds.max(1e-9),
        }
    }
}

/// Zero-shot top-1 of the first set around each change of image size, from
/// the run's evaluations.
fn switch_reports(phases: &[Phase], evaluations: &[EvalPoint]) -> Vec<SwitchReport> {
    let top1 = |step, size| top1_at(evaluations, step, size);
    phases
        .windows(2)
        .filter(|w| w[0].image_size != w[1].image_size)
        .map(|w| SwitchReport {
            step: w[1].start_step,
            from_size: w[0].image_size,
            to_size: w[1].image_size,
            before_at_from: top1(w[1].start_step, w[0].image_size),
            before_at_to: top1(w[1].start_step, w[1].image_size),
            after_at_to: top1(w[1].end_step(), w[1].image_size),
            after_step: w[1].end_step(),
        })
        .collect()
}

/// The loader's problems with the data, one line per kind; none when clean.
fn data_problems(data: &DataReport) -> Vec<String> {
    if data.is_clean() { Vec::new() } else { data.to_string().lines().map(String::from).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::EvalMetrics;

    fn eval(step: u64, image_size: usize, top1: f64) -> Line {
        let z = ZeroShotResult { name: "set".into(), top1, top5: 1.0, images: 10, classes: 2 };
        Line::Eval(EvalMetrics {
            step,
            train_pflops: 0.0,
            wall_seconds: 0.0,
            image_size,
            zero_shot: vec![z],
            retrieval: Vec::new(),
        })
    }

    #[test]
    fn switches_report_the_evaluations_around_them() {
        let phase = |name: &str, image_size, start_step, steps| Phase {
            name: name.into(),
            image_size,
            text_len: 8,
            patch_dropout: 0.0,
            start_step,
            steps,
        };
        let phases = [phase("main", 32, 0, 90), phase("finetune", 64, 90, 10)];
        let lines = [eval(90, 32, 0.8), eval(90, 64, 0.5), eval(100, 64, 0.85)];
        let evaluations = evaluations(&lines);
        let s = switch_reports(&phases, &evaluations);
        assert_eq!(
            s,
            vec![SwitchReport {
                step: 90,
                from_size: 32,
                to_size: 64,
                before_at_from: Some(0.8),
                before_at_to: Some(0.5),
                after_at_to: Some(0.85),
                after_step: 100
            }]
        );
        assert!(switch_reports(&phases[..1], &evaluations).is_empty());
        assert_eq!(switch_reports(&phases, &evaluations[2..])[0].before_at_to, None);
    }
}
