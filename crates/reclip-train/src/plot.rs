//! `<out>/curves.png`: the training loss and the zero-shot accuracy against
//! cumulative training FLOPs, each phase in its own colour — the picture of
//! what RECLIP saves. `<out>/compare.png` (`reclip compare`): the accuracy of
//! several runs against their FLOPs and their wall time.

use crate::metrics::Line;
use crate::phases::Phase;
use crate::report::{EvalPoint, PhaseReport, Report};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::error::Error;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");
static REGISTER: Once = Once::new();

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn colour(phases: &[Phase], name: &str) -> RGBColor {
    COLOURS[phases.iter().position(|p| p.name == name).unwrap_or(0) % COLOURS.len()]
}

fn canvas(path: &Path) -> Result<Area<'_>, Box<dyn Error>> {
    REGISTER.call_once(|| {
        // The font is embedded and known to parse; a failure leaves plots without labels.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let root = BitMapBackend::new(path, (1000, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root)
}

/// A plot that cannot be drawn is an error naming the file.
fn named(path: &Path, drawn: Result<(), Box<dyn Error>>) -> anyhow::Result<()> {
    drawn.map_err(|e| anyhow::anyhow!("{}: cannot draw the plot: {e}", path.display()))
}

fn draw(lines: &[Line], phases: &[Phase], path: &Path) -> Result<(), Box<dyn Error>> {
    let root = canvas(path)?;
    let (top, bottom) = root.split_vertically(400);
    let steps: Vec<_> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Step(s) => Some(s),
            Line::Eval(_) => None,
        })
        .collect();
    let max_x = lines
        .iter()
        .map(|l| match l {
            Line::Step(s) => s.train_pflops,
            Line::Eval(e) => e.train_pflops,
        })
        .fold(1e-12, f64::max);
    let max_loss = steps.iter().map(|s| s.loss).fold(1e-6, f64::max) * 1.05;

    let mut chart = ChartBuilder::on(&top)
        .caption("training loss", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max_x, 0.0..max_loss)?;
    chart.configure_mesh().x_desc("training PFLOPs").y_desc("loss").draw()?;
    for phase in phases {
        let c = colour(phases, &phase.name);
        let pts: Vec<(f64, f64)> =
            steps.iter().filter(|s| s.phase == phase.name).map(|s| (s.train_pflops, s.loss)).collect();
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))?
            .label(format!("{} ({}px)", phase.name, phase.image_size))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;

    let mut chart = ChartBuilder::on(&bottom)
        .caption("zero-shot top-1", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max_x, 0.0..100.0)?;
    chart.configure_mesh().x_desc("training PFLOPs").y_desc("top-1 (%)").draw()?;
    let evals: Vec<(f64, f64, usize)> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Eval(e) => e.zero_shot.first().map(|z| (e.train_pflops, 100.0 * z.top1, e.image_size)),
            Line::Step(_) => None,
        })
        .collect();
    chart.draw_series(LineSeries::new(evals.iter().map(|&(x, y, _)| (x, y)), BLACK.stroke_width(1)))?;
    chart.draw_series(evals.iter().map(|&(x, y, size)| {
        let phase = phases.iter().find(|p| p.image_size == size).map_or("", |p| p.name.as_str());
        Circle::new((x, y), 4, colour(phases, phase).filled())
    }))?;
    root.present()?;
    Ok(())
}

/// Writes the plot of one run's loss and accuracy.
pub fn curves(lines: &[Line], phases: &[Phase], path: &Path) -> anyhow::Result<()> {
    named(path, draw(lines, phases, path))
}

/// What a comparison panel puts on its x axis, for an evaluation and for a
/// phase's whole length.
struct Axis {
    caption: &'static str,
    desc: &'static str,
    at: fn(&EvalPoint) -> f64,
    spent: fn(&PhaseReport) -> f64,
}

const AXES: [Axis; 2] = [
    Axis {
        caption: "zero-shot top-1 against training compute",
        desc: "training PFLOPs",
        at: |e| e.train_pflops,
        spent: |p| p.total_pflops,
    },
    Axis {
        caption: "zero-shot top-1 against training time",
        desc: "training wall seconds",
        at: |e| e.wall_seconds,
        spent: |p| p.wall_seconds,
    },
];

/// Where on `axis` a run changes image size, and the new size.
fn switches(report: &Report, axis: &Axis) -> Vec<(f64, usize)> {
    let mut before = 0.0;
    let mut out = Vec::new();
    for w in report.phases.windows(2) {
        before += (axis.spent)(&w[0]);
        if w[0].image_size != w[1].image_size {
            out.push((before, w[1].image_size));
        }
    }
    out
}

fn panel(area: &Area, runs: &[(&str, &Report)], axis: &Axis) -> Result<(), Box<dyn Error>> {
    let max_x = runs
        .iter()
        .flat_map(|(_, r)| r.evaluations.iter().map(axis.at).chain([r.phases.iter().map(axis.spent).sum()]))
        .fold(1e-12, f64::max);
    // Room for the last markers.
    let max_x = 1.02 * max_x;
    let mut chart = ChartBuilder::on(area)
        .caption(axis.caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max_x, 0.0..100.0)?;
    chart.configure_mesh().x_desc(axis.desc).y_desc("top-1 (%)").y_label_formatter(&|y| format!("{y:.0}")).draw()?;
    for (i, &(name, report)) in runs.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let pts: Vec<(f64, f64)> = report.evaluations.iter().map(|e| ((axis.at)(e), 100.0 * e.top1)).collect();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
        for (x, size) in switches(report, axis) {
            chart.draw_series(DashedLineSeries::new([(x, 0.0), (x, 100.0)], 6, 4, c.stroke_width(1)))?;
            let label = Text::new(format!("→ {size}px"), (4, 4), ("sans-serif", 15).into_font().color(&c));
            chart.draw_series([EmptyElement::at((x, 100.0)) + label])?;
        }
    }
    // The line the others are read against: where they reach the last run's accuracy.
    if let Some(&(name, last)) = runs.last()
        && let Some(z) = last.zero_shot.first()
    {
        let (c, y) = (COLOURS[(runs.len() - 1) % COLOURS.len()], 100.0 * z.top1);
        chart
            .draw_series(DashedLineSeries::new([(0.0, y), (max_x, y)], 2, 4, c.stroke_width(1)))?
            .label(format!("{name}, final top-1"))
            .legend(move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 20, y)], 2, 4, c.stroke_width(1)));
    }
    // The curves end on the right; the legend takes the corner they leave free.
    let high = runs.iter().any(|(_, r)| r.evaluations.last().is_some_and(|e| e.top1 > 0.5));
    chart
        .configure_series_labels()
        .position(if high { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperRight })
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn draw_comparison(runs: &[(&str, &Report)], path: &Path) -> Result<(), Box<dyn Error>> {
    let root = canvas(path)?;
    let (top, bottom) = root.split_vertically(400);
    for (area, axis) in [top, bottom].iter().zip(&AXES) {
        panel(area, runs, axis)?;
    }
    root.present()?;
    Ok(())
}

/// Writes the comparison of `runs` (named): zero-shot top-1 against training
/// PFLOPs and against training wall time, each change of image size dashed,
/// the last run's final accuracy dotted.
pub fn comparison(runs: &[(&str, &Report)], path: &Path) -> anyhow::Result<()> {
    named(path, draw_comparison(runs, path))
}
