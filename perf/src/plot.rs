//! SVG plots with plotters: throughput bars (log scale, ours and reference
//! side by side) and end-to-end latency percentile curves.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::report::{median, runs_of, Figure};
use crate::runner::{RunResult, Target};
use crate::scenario::{Focus, Scenario};

const OURS: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const REFERENCE: RGBColor = RGBColor(0xff, 0x7f, 0x0e);

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e}")
}

/// Throughput bars: one group per (scenario, direction).
pub fn throughput(path: &Path, scenarios: &[Scenario], results: &[RunResult]) -> Result<()> {
    let mut groups: Vec<(String, Option<f64>, Option<f64>)> = Vec::new();
    for s in scenarios
        .iter()
        .filter(|s| !matches!(s.focus, Focus::Latency | Focus::Custom(_)))
    {
        let figures: &[(Figure, &str)] = match s.focus {
            Focus::Publish => &[(Figure::PubRate, "pub")],
            Focus::Consume => &[(Figure::SubRate, "sub")],
            _ => &[(Figure::PubRate, "pub"), (Figure::SubRate, "sub")],
        };
        for (figure, dir) in figures {
            let ours = median(&runs_of(results, s.name, Target::Ours), |r| figure.of(r));
            let reference = median(&runs_of(results, s.name, Target::Reference), |r| {
                figure.of(r)
            });
            groups.push((format!("{} {dir}", s.name), ours, reference));
        }
    }
    let max = groups
        .iter()
        .flat_map(|(_, a, b)| [*a, *b])
        .flatten()
        .fold(1e4, f64::max);
    let root = SVGBackend::new(path, (1100, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let n = groups.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput (msg/s, log scale; missing bar = failed or not run)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (1e3f64..max * 4.0).log_scale())
        .map_err(err)?;
    let labels: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n + 1)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_label_style(("sans-serif", 11))
        .y_label_formatter(&|y| {
            if *y >= 1e6 {
                format!("{:.0}M", y / 1e6)
            } else {
                format!("{:.0}k", y / 1e3)
            }
        })
        .y_desc("messages per second")
        .draw()
        .map_err(err)?;
    let ours_bars = groups.iter().enumerate().filter_map(|(i, (_, v, _))| {
        v.map(|v| Rectangle::new([(i as f64 - 0.38, 1e3), (i as f64, v)], OURS.filled()))
    });
    chart
        .draw_series(ours_bars)
        .map_err(err)?
        .label("ours")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], OURS.filled()));
    let ref_bars = groups.iter().enumerate().filter_map(|(i, (_, _, v))| {
        v.map(|v| Rectangle::new([(i as f64, 1e3), (i as f64 + 0.38, v)], REFERENCE.filled()))
    });
    chart
        .draw_series(ref_bars)
        .map_err(err)?
        .label("reference")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], REFERENCE.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Maps a percentile to "nines" (90 → 1, 99 → 2, 99.9 → 3), capped at 5.
fn nines(p: f64) -> f64 {
    if p >= 99.999 {
        5.0
    } else {
        -(1.0 - p / 100.0).log10()
    }
}

/// One line of the latency plot.
struct Curve {
    /// Scenario index (picks the colour).
    scenario: usize,
    name: String,
    /// Reference broker: drawn dashed.
    dashed: bool,
    /// `(nines, ms)` points.
    points: Vec<(f64, f64)>,
}

/// End-to-end latency percentile curves of the latency scenarios (first
/// successful run of each scenario and broker).
pub fn latency(path: &Path, scenarios: &[Scenario], results: &[RunResult]) -> Result<()> {
    let palette = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0x17, 0xbe, 0xcf),
    ];
    let mut curves: Vec<Curve> = Vec::new();
    for (idx, s) in scenarios
        .iter()
        .filter(|s| s.focus == Focus::Latency)
        .enumerate()
    {
        for target in [Target::Ours, Target::Reference] {
            let Some(run) = runs_of(results, s.name, target).into_iter().find(|r| r.ok) else {
                continue;
            };
            let Some(step) = run.steps.iter().rev().find(|st| !st["consume"].is_null()) else {
                continue;
            };
            let points: Vec<(f64, f64)> = step["consume"]["latency"]["curve"]
                .as_array()
                .map(|pts| {
                    pts.iter()
                        .filter_map(|pt| {
                            let p = pt.get(0)?.as_f64()?;
                            let ns = pt.get(1)?.as_f64()?;
                            (p >= 50.0).then_some((nines(p), (ns / 1e6).max(1e-3)))
                        })
                        .collect()
                })
                .unwrap_or_default();
            if !points.is_empty() {
                curves.push(Curve {
                    scenario: idx,
                    name: format!("{} {:?}", s.name, target).to_lowercase(),
                    dashed: target == Target::Reference,
                    points,
                });
            }
        }
    }
    let (lo, hi) = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo <= hi {
        (lo / 2.0, hi * 2.0)
    } else {
        (0.01, 100.0)
    };
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "End-to-end latency by percentile (log scale; dashed = reference)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(nines(50.0)..5.0, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&|x| {
            // Whole "nines" only: 1 -> p90, 2 -> p99, 3 -> p99.9, ...
            let k = x.round();
            if (x - k).abs() > 1e-6 {
                return String::new();
            }
            match k as i64 {
                1 => "p90".into(),
                2 => "p99".into(),
                3 => "p99.9".into(),
                4 => "p99.99".into(),
                5 => "p99.999".into(),
                _ => String::new(),
            }
        })
        .y_label_formatter(&|y| {
            if *y < 1.0 {
                format!("{:.0} µs", y * 1e3)
            } else {
                format!("{y:.0} ms")
            }
        })
        .y_desc("latency")
        .draw()
        .map_err(err)?;
    for curve in &curves {
        let color = palette[curve.scenario % palette.len()];
        let style = color.stroke_width(2);
        let points = curve.points.iter().copied();
        let series = if curve.dashed {
            chart.draw_series(DashedLineSeries::new(points, 6, 4, style))
        } else {
            chart.draw_series(LineSeries::new(points, style))
        };
        series
            .map_err(err)?
            .label(curve.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
