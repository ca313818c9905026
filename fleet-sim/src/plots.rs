//! The plots a run writes with `--plots DIR` (SVG, plotters): each region's load over
//! the day without and with spill, the spill flows between regions, and the herding
//! episodes.

use std::path::{Path, PathBuf};

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor;

use crate::trace::{BUCKET_S, Trace};

/// A plot could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("plot {path}: {reason}")]
pub struct PlotError {
    /// The file.
    pub path: PathBuf,
    /// What plotters said.
    pub reason: String,
}

const FONT: &str = "sans-serif";
const GREY: RGBColor = RGBColor(150, 150, 150);
const BLUE: RGBColor = RGBColor(31, 119, 180);
const RED: RGBColor = RGBColor(214, 39, 40);
const ORANGE: RGBColor = RGBColor(255, 127, 14);

fn centre() -> text_anchor::Pos {
    text_anchor::Pos::new(text_anchor::HPos::Center, text_anchor::VPos::Center)
}

/// Writes `region-load.svg`, `spill-flows.svg` and `herding.svg` into `dir` and returns
/// their paths.
pub fn write_all(
    dir: &Path,
    without: &Trace,
    with: &Trace,
    period_s: u64,
) -> Result<Vec<PathBuf>, PlotError> {
    std::fs::create_dir_all(dir).map_err(|e| PlotError {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let files = [
        dir.join("region-load.svg"),
        dir.join("spill-flows.svg"),
        dir.join("herding.svg"),
    ];
    let wrap = |path: &Path| {
        let path = path.to_path_buf();
        move |e: Box<dyn std::error::Error>| PlotError {
            path,
            reason: e.to_string(),
        }
    };
    region_load(&files[0], without, with).map_err(wrap(&files[0]))?;
    flows(&files[1], with).map_err(wrap(&files[1]))?;
    herding(&files[2], with, period_s).map_err(wrap(&files[2]))?;
    Ok(files.to_vec())
}

type Drawn = Result<(), Box<dyn std::error::Error>>;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The series' legend, top left, over a light background.
fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> Drawn {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn hours(v: &[f64]) -> impl Iterator<Item = (f64, f64)> + '_ {
    v.iter()
        .enumerate()
        .map(|(b, y)| ((b as f64 + 0.5) * BUCKET_S as f64 / 3600.0, *y))
}

/// One panel per region: its busiest site's load, without spill (grey) and with (blue),
/// and the region's mean load with spill (thin orange), against 1.0 (red).
fn region_load(path: &Path, without: &Trace, with: &Trace) -> Drawn {
    let k = with.regions.len().max(1);
    let root = SVGBackend::new(path, (1000, 60 + 190 * k as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "Busiest site of each region: load over the day, without and with spill",
        (FONT, 24),
    )?;
    let x_end = (with.max_load.first().map_or(1, Vec::len) as u64 * BUCKET_S) as f64 / 3600.0;
    let y_top = without
        .max_load
        .iter()
        .chain(&with.max_load)
        .flatten()
        .fold(1.2f64, |a, b| a.max(*b))
        * 1.05;
    for (r, area) in root.split_evenly((k, 1)).iter().enumerate() {
        let name = with.regions.get(r).map_or("", String::as_str);
        let mut chart = ChartBuilder::on(area)
            .caption(format!("region {name}"), (FONT, 19))
            .margin(6)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..x_end, 0f64..y_top)?;
        chart
            .configure_mesh()
            .x_desc("hour of the day (UTC)")
            .y_desc("load")
            .x_labels(13)
            .x_label_formatter(&|h| format!("{h:.0}"))
            .y_labels(5)
            .y_label_formatter(&|l| format!("{l:.1}"))
            .label_style((FONT, 15))
            .light_line_style(WHITE)
            .draw()?;
        chart.draw_series(LineSeries::new(
            [(0.0, 1.0), (x_end, 1.0)],
            RED.stroke_width(1),
        ))?;
        if let Some(v) = without.max_load.get(r) {
            chart
                .draw_series(LineSeries::new(hours(v), GREY.stroke_width(2)))?
                .label("busiest site, no spill")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], GREY.stroke_width(2)));
        }
        if let Some(v) = with.max_load.get(r) {
            chart
                .draw_series(LineSeries::new(hours(v), BLUE.stroke_width(2)))?
                .label("busiest site, spill")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLUE.stroke_width(2)));
        }
        if let Some(v) = with.mean_load.get(r) {
            chart
                .draw_series(LineSeries::new(hours(v), ORANGE.stroke_width(1)))?
                .label("region mean, spill")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], ORANGE.stroke_width(1)));
        }
        if r > 0 {
            continue;
        }
        legend(&mut chart)?;
    }
    root.present()?;
    Ok(())
}

/// A matrix: rows are the regions whose clients were spilled, columns the regions that
/// served them, each cell the share of all spilled connection-seconds.
fn flows(path: &Path, with: &Trace) -> Drawn {
    let k = with.regions.len();
    let cell = 110i32;
    let (left, top) = (150i32, 110i32);
    let size = (
        (left + cell * k as i32 + 40) as u32,
        (top + cell * k as i32 + 70) as u32,
    );
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let title = TextStyle::from((FONT, 24)).color(&BLACK);
    let label = TextStyle::from((FONT, 18)).color(&BLACK);
    root.draw_text("Spill flows between regions", &title, (20, 15))?;
    root.draw_text(
        "share of all spilled connection-seconds; row: clients' region, column: serving region",
        &TextStyle::from((FONT, 16)).color(&BLACK),
        (20, 50),
    )?;
    let total: f64 = with.flows.iter().flatten().sum();
    for (a, row) in with.flows.iter().enumerate() {
        let y = top + cell * a as i32;
        root.draw_text(
            &format!("from {}", with.regions[a]),
            &label,
            (20, y + cell / 2 - 8),
        )?;
        for (b, v) in row.iter().enumerate() {
            let x = left + cell * b as i32;
            let share = if total > 0.0 { v / total } else { 0.0 };
            let shade = (255.0 * (1.0 - share.sqrt())).round() as u8;
            let fill = RGBColor(shade, shade.saturating_add((255 - shade) / 3), 255);
            root.draw(&Rectangle::new(
                [(x, y), (x + cell - 4, y + cell - 4)],
                fill.filled(),
            ))?;
            let text_colour = if share > 0.25 { WHITE } else { BLACK };
            root.draw_text(
                &format!("{:.1}%", share * 100.0),
                &label.color(&text_colour).pos(centre()),
                (x + cell / 2 - 2, y + cell / 2 - 2),
            )?;
        }
    }
    for (b, name) in with.regions.iter().enumerate() {
        root.draw_text(
            &format!("to {name}"),
            &label.pos(centre()),
            (left + cell * b as i32 + cell / 2 - 2, top - 20),
        )?;
    }
    root.draw_text(
        &format!("total: {:.0} connection-hours spilled", total / 3600.0),
        &label,
        (20, top + cell * k as i32 + 25),
    )?;
    root.present()?;
    Ok(())
}

/// Every herding episode (a site pushed above 1.0 by connections spilled to it; without
/// spill there are none by definition) as a point: when it started and how long it
/// lasted, against the target of one report period. The longest few are named.
fn herding(path: &Path, with: &Trace, period_s: u64) -> Drawn {
    let root = SVGBackend::new(path, (1000, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_end = (with.max_load.first().map_or(1, Vec::len) as u64 * BUCKET_S) as f64 / 3600.0;
    let longest = with.herds.iter().map(|e| e.len_s()).max().unwrap_or(0);
    let peak = with.herds.iter().fold(0.0f64, |a, e| a.max(e.peak));
    let y_top = (longest.max(period_s) as f64 * 1.25).ceil();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Herding: {} episodes of a site pushed above 1.0 by others' spill \
                 (highest load {peak:.2})",
                with.herds.len()
            ),
            (FONT, 22),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_end, 0f64..y_top)?;
    chart
        .configure_mesh()
        .x_desc("hour of the day (UTC)")
        .y_desc("episode length (s)")
        .y_label_formatter(&|s| format!("{s:.0}"))
        .x_labels(13)
        .x_label_formatter(&|h| format!("{h:.0}"))
        .label_style((FONT, 15))
        .light_line_style(WHITE)
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, period_s as f64), (x_end, period_s as f64)],
            RED.stroke_width(2),
        ))?
        .label(format!(
            "one report period ({period_s} s): the target's bound"
        ))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RED.stroke_width(2)));
    let h = |s: u64| s as f64 / 3600.0;
    chart
        .draw_series(
            with.herds
                .iter()
                .map(|e| Circle::new((h(e.start_s), e.len_s() as f64), 5, ORANGE.filled())),
        )?
        .label("herding episode")
        .legend(|(x, y)| Circle::new((x + 9, y), 5, ORANGE.filled()));
    let mut by_len: Vec<_> = with.herds.iter().collect();
    by_len.sort_by_key(|e| std::cmp::Reverse(e.len_s()));
    for (i, e) in by_len.iter().take(3).enumerate() {
        chart.draw_series([Text::new(
            format!("{} {} s, peak {:.2}", e.site, e.len_s(), e.peak),
            (h(e.start_s), e.len_s() as f64),
            TextStyle::from((FONT, 14)).pos(text_anchor::Pos::new(
                if h(e.start_s) > x_end * 0.7 {
                    text_anchor::HPos::Right
                } else {
                    text_anchor::HPos::Left
                },
                if i % 2 == 0 {
                    text_anchor::VPos::Bottom
                } else {
                    text_anchor::VPos::Top
                },
            )),
        )])?;
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}
