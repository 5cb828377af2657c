//! SVG figures for `--plots DIR` (plotters, SVG backend only: no system fonts needed).

use super::metrics::Metrics;
use anyhow::Context;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

const PALETTE: [RGBColor; 8] = [
    RGBColor(120, 120, 120),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
];

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot failed: {e}")
}

/// Retry GPU-seconds per segment against rescue rate, one labelled point per strategy.
pub fn gpu_vs_rescue(dir: &Path, title: &str, strategies: &[Metrics]) -> anyhow::Result<PathBuf> {
    let path = dir.join("rescue-gpu-vs-rescue.svg");
    let xs: Vec<f64> = strategies
        .iter()
        .map(|m| m.retry_gpu_s / m.segments.max(1) as f64)
        .collect();
    let xmax = xs.iter().copied().fold(1.0, f64::max) * 1.25;
    {
        let root = SVGBackend::new(&path, (960, 620)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("GPU spent on retries vs rescue rate — {title}"),
                ("sans-serif", 20),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax, 0f64..1.05f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("retry GPU-seconds per segment (attempts 2..N)")
            .y_desc("rescue rate (failed attempt 1 → passed)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
            .draw()
            .map_err(err)?;
        for (i, (m, x)) in strategies.iter().zip(&xs).enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let label = format!(
                "{}: {:.1}% rescued, {:.1} retry GPU-s/segment, {} GPU-s/rescue",
                m.name,
                m.rescue_rate * 100.0,
                x,
                m.gpu_s_per_rescued
                    .map(|g| format!("{g:.1}"))
                    .unwrap_or_else(|| "—".into())
            );
            chart
                .draw_series(std::iter::once(Circle::new(
                    (*x, m.rescue_rate),
                    6,
                    color.filled(),
                )))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(path)
}

/// Rescued segments within the fixed budget, one bar per strategy.
pub fn budget(
    dir: &Path,
    title: &str,
    runs: &[super::metrics::BudgetMetrics],
) -> anyhow::Result<PathBuf> {
    let path = dir.join("rescue-budget.svg");
    let ymax = runs.iter().map(|r| r.rescued).max().unwrap_or(1).max(1) as f64 * 1.2;
    let budget = runs.first().map(|r| r.budget_gpu_s).unwrap_or(0.0);
    {
        let root = SVGBackend::new(&path, (960, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Rescued within a budget of {budget:.0} GPU-s — {title}"),
                ("sans-serif", 20),
            )
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..runs.len() as f64, 0f64..ymax)
            .map_err(err)?;
        let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_labels(runs.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = (*x - 0.5).round();
                if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("segments rescued (failed attempt 1 → passed)")
            .draw()
            .map_err(err)?;
        for (i, r) in runs.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let x = i as f64;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x + 0.15, 0.0), (x + 0.85, r.rescued as f64)],
                    color.filled(),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!(
                        "{} rescued ({} trigger), {} passed",
                        r.rescued, r.rescued_trigger, r.passed
                    ),
                    (x + 0.2, r.rescued as f64 + ymax * 0.03),
                    ("sans-serif", 13),
                )))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(path)
}

/// Rolling rescue rate over segment order, one line per strategy.
pub fn learning(
    dir: &Path,
    title: &str,
    window: usize,
    series: &[(&str, Vec<(f64, f64)>)],
) -> anyhow::Result<PathBuf> {
    let path = dir.join("rescue-learning.svg");
    let xmax = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let ymin = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1))
        .fold(1.0, f64::min);
    let ylo = ((ymin - 0.1).max(0.0) * 10.0).floor() / 10.0;
    {
        let root = SVGBackend::new(&path, (960, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Rescue rate over time (rolling {window} failed segments) — {title}"),
                ("sans-serif", 20),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax, ylo..1.0f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc("segment (submission order)")
            .y_desc("rescue rate")
            .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
            .draw()
            .map_err(err)?;
        let colors = [PALETTE[3], PALETTE[5], PALETTE[0], PALETTE[1]];
        for (i, (name, points)) in series.iter().enumerate() {
            let color = colors[i % colors.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(path)
}

/// Rolling share of retake_adaptive's retries, per scene type, that used the arm the oracle
/// found best for that scene type (only scene types where that arm beats plain jitter).
pub fn arms(
    dir: &Path,
    title: &str,
    window: usize,
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<PathBuf> {
    let path = dir.join("rescue-arms.svg");
    let xmax = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    {
        let root = SVGBackend::new(&path, (960, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("retake_adaptive: share of retries using the best arm (rolling {window} retries) — {title}"), ("sans-serif", 18))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax, 0f64..1.0f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
            .x_desc("segment (submission order)")
            .y_desc("share of the scene type's retries")
            .draw()
            .map_err(err)?;
        let uniform = 1.0 / retake_core::Arm::ALL.len() as f64;
        chart
            .draw_series(LineSeries::new(
                [(0.0, uniform), (xmax, uniform)],
                PALETTE[0].stroke_width(1),
            ))
            .map_err(err)?
            .label("uniform choice (1/8)")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], PALETTE[0].stroke_width(1))
            });
        for (i, (name, points)) in series.iter().enumerate() {
            let color = [PALETTE[5], PALETTE[4], PALETTE[2], PALETTE[6]][i % 4];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(path)
}

/// One curve or point of the informed-bound figure: (retries per broken segment, trigger-rescue
/// points against naive fixed-N).
pub struct FrontierSeries {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Retries per broken segment against trigger rescue (points vs naive): the informed bound's
/// rules as lines over their thresholds, the strategies as points, the targets' corner shaded.
pub fn informed_frontier(
    dir: &Path,
    title: &str,
    curves: &[FrontierSeries],
    points: &[FrontierSeries],
) -> anyhow::Result<PathBuf> {
    let path = dir.join("rescue-informed-bound.svg");
    let all = curves.iter().chain(points).flat_map(|s| s.points.iter());
    let (xmax, ymin) = all.fold((1.6f64, -2.0f64), |(x, y), p| (x.max(p.0), y.min(p.1)));
    let (xmax, ylo) = (xmax * 1.05, (ymin.max(-12.0) - 0.5).floor());
    {
        let root = SVGBackend::new(&path, (960, 580)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Retries per broken segment vs trigger rescue — {title}"),
                ("sans-serif", 20),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax, ylo..1.0f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("retries per broken (hopeless) segment")
            .y_desc("trigger-failure rescue vs naive fixed-N (points)")
            .x_label_formatter(&|x| format!("{x:.1}"))
            .y_label_formatter(&|y| format!("{y:+.0}"))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, -1.0), (1.5, 1.0)],
                PALETTE[4].mix(0.12).filled(),
            )))
            .map_err(err)?
            .label("targets: ≤ 1.5 retries per broken, ≥ naive − 1 point")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 16, y + 5)], PALETTE[4].mix(0.3).filled())
            });
        // Rows outside the frame (a strict threshold that gives up many rescues) are left out.
        let inside = |p: &&(f64, f64)| p.1 >= ylo;
        for (i, c) in curves.iter().enumerate() {
            let color = [PALETTE[3], PALETTE[5]][i % 2];
            chart
                .draw_series(LineSeries::new(
                    c.points.iter().filter(inside).copied(),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(c.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    c.points
                        .iter()
                        .filter(inside)
                        .map(|p| Circle::new(*p, 3, color.filled())),
                )
                .map_err(err)?;
        }
        for (i, s) in points.iter().enumerate() {
            let color = [PALETTE[1], PALETTE[0], PALETTE[2]][i % 3];
            chart
                .draw_series(s.points.iter().map(|p| Circle::new(*p, 7, color.filled())))
                .map_err(err)?
                .label(s.name.as_str())
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(path)
}

pub fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}
