//! `reclip compare`: the baseline (every step at high resolution) and RECLIP
//! (or the stages `--stages` names) trained for the same steps on the same
//! data, side by side.

use super::run_dir;
use super::train::{TrainArgs, options};
use reclip_train::plot;
use reclip_train::report::{EqualCompute, Report};
use reclip_train::trainer::{self, Outcome};
use serde_json::json;

fn accuracy(r: &Report) -> Option<f64> {
    r.zero_shot.first().map(|z| z.top1)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// The table's rows for the comparison at equal compute.
fn equal_compute_rows(e: &EqualCompute) -> [(String, String, String, String); 2] {
    [
        (
            format!("zero-shot top-1 at RECLIP's FLOPs ({:.4} PFLOPs)", e.run_pflops),
            pct(e.baseline_top1),
            pct(e.run_top1),
            String::new(),
        ),
        (
            format!("PFLOPs to reach RECLIP's top-1 ({})", pct(e.run_top1)),
            e.baseline_pflops_to_reach.map_or("not reached".into(), |p| format!("{p:.4}")),
            format!("{:.4}", e.run_pflops),
            e.baseline_flops_ratio_to_reach.map_or(String::new(), |r| format!("{r:.2}x")),
        ),
    ]
}

/// What RECLIP saved, in words: a share of the FLOPs and of the wall time,
/// and how much of the FLOPs saving the wall time realised — or, when it
/// saved nothing, what it cost instead (never a negative or NaN saving).
fn savings(flops_ratio: f64, wall_ratio: f64) -> String {
    let saved = |ratio: f64| 100.0 * (1.0 - 1.0 / ratio);
    if !flops_ratio.is_finite() {
        return "RECLIP's and the baseline's training FLOPs could not be compared".into();
    }
    if flops_ratio <= 1.0 {
        return format!("RECLIP saves no training FLOPs here: it costs {:.2}x the baseline's", 1.0 / flops_ratio);
    }
    let flops = format!("RECLIP saves {:.0}% of the training FLOPs", saved(flops_ratio));
    if wall_ratio > 1.0 {
        let realised = saved(wall_ratio) / saved(flops_ratio);
        format!("{flops} and {:.0}% of the wall time ({:.0}% of the FLOPs saving)", saved(wall_ratio), 100.0 * realised)
    } else {
        format!("{flops}, but no wall time: it took {:.2}x the baseline's", 1.0 / wall_ratio)
    }
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    if args.resume.is_some() || args.stop_after.is_some() {
        anyhow::bail!("--resume and --stop-after apply to `reclip train`, not to `reclip compare`");
    }
    if args.schedule != "reclip" {
        anyhow::bail!(
            "--schedule {}: compare trains both the baseline and RECLIP (choose RECLIP's phases with --stages or --low-res)",
            args.schedule
        );
    }
    let runs = [("baseline", true), ("reclip", false)];
    let mut all_opts = Vec::new();
    for (name, baseline) in runs {
        let mut opts = options(&args, baseline, &args.out.join(name), false)?;
        // RECLIP's report would price the baseline with a probe; here it is measured.
        opts.probe_steps = opts.probe_steps.min(2);
        all_opts.push(opts);
    }
    let leader = all_opts[0].comm.is_leader();
    super::ranks::check_same_command(&all_opts[0].comm)?;
    if leader {
        run_dir::claim(&args.out, args.overwrite, run_dir::COMPARE_OUTPUTS, "--out")?;
    }
    let mut reports = Vec::new();
    for ((name, _), opts) in runs.iter().zip(&all_opts) {
        if leader {
            eprintln!("== training the {name} schedule into {}", opts.out.display());
        }
        match trainer::train(opts)? {
            Outcome::Finished(report) => reports.push(*report),
            Outcome::Stopped { step, .. } => anyhow::bail!("the {name} run stopped early, after step {step}"),
        }
    }
    if !leader {
        return Ok(());
    }
    let (base, reclip) = (&reports[0], &reports[1]);
    let flops_ratio = base.total.total_pflops / reclip.total.total_pflops.max(1e-30);
    let wall_ratio = base.total.wall_seconds / reclip.total.wall_seconds.max(1e-9);
    let (ab, ar) = (accuracy(base), accuracy(reclip));
    let equal = EqualCompute::of(base, reclip);
    let summary = json!({
        "baseline": base,
        "reclip": reclip,
        "flops_ratio": flops_ratio,
        "wall_time_ratio": wall_ratio,
        "flops_saving": 1.0 - 1.0 / flops_ratio,
        "wall_time_saving": 1.0 - 1.0 / wall_ratio,
        "zero_shot_top1_difference": ab.zip(ar).map(|(b, r)| r - b),
        "equal_compute": equal,
    });
    std::fs::create_dir_all(&args.out)?;
    reclip_core::fs::write_atomic(&args.out.join("compare.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    plot::comparison(&[("baseline", base), ("reclip", reclip)], &args.out.join("compare.png"))?;
    let mut rows: Vec<(String, String, String, String)> = vec![
        (
            "training PFLOPs".into(),
            format!("{:.4}", base.total.total_pflops),
            format!("{:.4}", reclip.total.total_pflops),
            format!("{flops_ratio:.2}x"),
        ),
        (
            "wall seconds".into(),
            format!("{:.1}", base.total.wall_seconds),
            format!("{:.1}", reclip.total.wall_seconds),
            format!("{wall_ratio:.2}x"),
        ),
    ];
    for (zb, zr) in base.zero_shot.iter().zip(&reclip.zero_shot) {
        let name = format!("zero-shot top-1, {}", zb.name);
        rows.push((name, pct(zb.top1), pct(zr.top1), String::new()));
    }
    rows.extend(equal.iter().flat_map(equal_compute_rows));
    for (rb, rr) in base.retrieval.iter().zip(&reclip.retrieval) {
        let name = format!("retrieval image→text R@1, {}", rb.name);
        let (b, r) = (100.0 * rb.image_to_text[0], 100.0 * rr.image_to_text[0]);
        rows.push((name, format!("{b:.1}%"), format!("{r:.1}%"), String::new()));
    }
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    println!("{:<width$} {:>11} {:>10} {:>8}", "", "baseline", "reclip", "ratio");
    for (name, b, r, ratio) in &rows {
        println!("{}", format!("{name:<width$} {b:>11} {r:>10} {ratio:>8}").trim_end());
    }
    println!("{}", savings(flops_ratio, wall_ratio));
    println!("details: {}, plot: {}", args.out.join("compare.json").display(), args.out.join("compare.png").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::savings;

    #[test]
    fn savings_are_never_negative_or_nan() {
        assert_eq!(
            savings(4.0, 2.0),
            "RECLIP saves 75% of the training FLOPs and 50% of the wall time (67% of the FLOPs saving)"
        );
        assert_eq!(
            savings(4.0, 0.5),
            "RECLIP saves 75% of the training FLOPs, but no wall time: it took 2.00x the baseline's"
        );
        assert_eq!(savings(1.0, 1.0), "RECLIP saves no training FLOPs here: it costs 1.00x the baseline's");
        assert_eq!(savings(0.5, 0.4), "RECLIP saves no training FLOPs here: it costs 2.00x the baseline's");
        assert!(!savings(f64::NAN, f64::NAN).contains("NaN"));
    }
}
