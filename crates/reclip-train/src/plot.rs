//! `<out>/curves.png`: the training loss and the zero-shot accuracy against
//! cumulative training FLOPs, each phase in its own colour — the picture of
//! what RECLIP saves.

use crate::metrics::Line;
use crate::phases::Phase;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");
static REGISTER: Once = Once::new();

const PHASE_COLOURS: [RGBColor; 3] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44)];

fn colour(phases: &[Phase], name: &str) -> RGBColor {
    PHASE_COLOURS[phases.iter().position(|p| p.name == name).unwrap_or(0) % PHASE_COLOURS.len()]
}

fn draw(lines: &[Line], phases: &[Phase], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    REGISTER.call_once(|| {
        // The font is embedded and known to parse; a failure leaves plots without labels.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let root = BitMapBackend::new(path, (1000, 800)).into_drawing_area();
    root.fill(&WHITE)?;
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
        let c = colour(phases, phase.name);
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
        let phase = phases.iter().find(|p| p.image_size == size).map_or("", |p| p.name);
        Circle::new((x, y), 4, colour(phases, phase).filled())
    }))?;
    root.present()?;
    Ok(())
}

/// Writes the plot. A plot that cannot be drawn is an error naming the file.
pub fn curves(lines: &[Line], phases: &[Phase], path: &Path) -> anyhow::Result<()> {
    draw(lines, phases, path).map_err(|e| anyhow::anyhow!("{}: cannot draw the plot: {e}", path.display()))
}
