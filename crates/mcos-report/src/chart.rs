//! Line and bar charts as SVG text, drawn by `plotters`' SVG back end.
//!
//! Every chart is a fixed-size SVG (`WIDTH` x `HEIGHT`) with a title, labelled axes with ticks
//! and a legend naming each series. Series colours come from one palette in a fixed order, so
//! the same policy keeps its colour across the charts of a report when callers keep the order.

use plotters::prelude::*;
use thiserror::Error;

/// Chart width in pixels.
pub const WIDTH: u32 = 880;
/// Chart height in pixels.
pub const HEIGHT: u32 = 440;

/// Colours of the series, in order (Tableau 10, readable on white and to most colour-blind
/// readers when paired with the legend).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Why a chart could not be drawn.
#[derive(Debug, Error)]
pub enum ChartError {
    /// Nothing to draw: no series, or no finite point.
    #[error("chart `{0}` has no data to draw")]
    Empty(String),
    /// A log axis was asked for over values that are not all positive.
    #[error("chart `{0}`: a log x axis needs positive x values")]
    LogOfNonPositive(String),
    /// The drawing back end failed.
    #[error("drawing chart `{title}`: {message}")]
    Draw {
        /// The chart.
        title: String,
        /// What the back end said.
        message: String,
    },
}

/// One named line of points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points in drawing order; points with a non-finite coordinate are skipped.
    pub points: Vec<(f64, f64)>,
    /// Drawn black and thicker: a bound or a reference (MIN on a miss-ratio curve).
    pub bound: bool,
}

/// A labelled vertical line at an x value (an event: the brain switching knobs).
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Where.
    pub x: f64,
    /// Short text drawn beside the line.
    pub label: String,
}

/// A line chart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// X axis caption (with its unit).
    pub x_label: String,
    /// Y axis caption (with its unit).
    pub y_label: String,
    /// Logarithmic x axis (capacities over decades).
    pub log_x: bool,
    /// Fixed y range; `None` fits the data (from 0).
    pub y_range: Option<(f64, f64)>,
    /// The lines.
    pub series: Vec<Series>,
    /// Vertical event lines.
    pub markers: Vec<Marker>,
}

/// A grouped bar chart: one group of bars per category, one bar per series in each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BarChart {
    /// Title above the plot.
    pub title: String,
    /// Y axis caption (with its unit).
    pub y_label: String,
    /// Category names along the x axis.
    pub categories: Vec<String>,
    /// `(series name, one value per category)`.
    pub series: Vec<(String, Vec<f64>)>,
    /// A horizontal reference line with its legend text (an upper bound).
    pub reference: Option<(String, f64)>,
}

fn draw_err<E: std::fmt::Debug>(title: &str) -> impl Fn(E) -> ChartError + '_ {
    move |e| ChartError::Draw {
        title: title.to_owned(),
        message: format!("{e:?}"),
    }
}

fn colour(i: usize, bound: bool) -> RGBColor {
    if bound {
        BLACK
    } else {
        PALETTE[i % PALETTE.len()]
    }
}

/// Draws `c` as an SVG document.
pub fn line_chart(c: &LineChart) -> Result<String, ChartError> {
    let finite = |&&(x, y): &&(f64, f64)| x.is_finite() && y.is_finite();
    let all: Vec<(f64, f64)> = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter(finite).copied())
        .collect();
    if all.is_empty() {
        return Err(ChartError::Empty(c.title.clone()));
    }
    let (mut x0, mut x1) = all.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    if c.log_x && x0 <= 0.0 {
        return Err(ChartError::LogOfNonPositive(c.title.clone()));
    }
    if x1 <= x0 {
        (x0, x1) = if c.log_x {
            (x0 / 2.0, x1 * 2.0)
        } else {
            (x0 - 1.0, x1 + 1.0)
        };
    }
    let (y0, y1) = c.y_range.unwrap_or_else(|| {
        let hi = all.iter().map(|p| p.1).fold(0.0, f64::max);
        (0.0, if hi > 0.0 { hi * 1.08 } else { 1.0 })
    });
    // A log axis is drawn as a linear axis over log10(x), its ticks labelled with x itself.
    let tx = |x: f64| if c.log_x { x.log10() } else { x };
    let (x0, x1) = (tx(x0), tx(x1));
    let e = draw_err(&c.title);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(c.title.as_str(), ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(&e)?;
        let log_x = c.log_x;
        chart
            .configure_mesh()
            .x_desc(c.x_label.as_str())
            .y_desc(c.y_label.as_str())
            .x_label_formatter(&|v: &f64| tick(if log_x { 10f64.powf(*v) } else { *v }))
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(RGBColor(236, 236, 236))
            .draw()
            .map_err(&e)?;
        let grey = RGBColor(150, 150, 150);
        // Labels closer than this to the last one drawn are left off (the line stays).
        let gap = (x1 - x0) * 0.07;
        let mut last_label = f64::NEG_INFINITY;
        for m in &c.markers {
            let x = tx(m.x);
            if !x.is_finite() {
                continue;
            }
            let label = if x - last_label >= gap {
                last_label = x;
                m.label.clone()
            } else {
                String::new()
            };
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, y0), (x, y1)],
                    grey.stroke_width(1),
                )))
                .map_err(&e)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    label,
                    (x, y1 - (y1 - y0) * 0.03),
                    ("sans-serif", 11).into_font().color(&grey),
                )))
                .map_err(&e)?;
        }
        for (i, s) in c.series.iter().enumerate() {
            let col = colour(i, s.bound);
            let width = if s.bound { 3 } else { 2 };
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .map(|&(x, y)| (tx(x), y))
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(pts, col.stroke_width(width)))
                .map_err(&e)?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(width))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(&e)?;
        root.present().map_err(&e)?;
    }
    Ok(svg)
}

/// A tick label, short: `12k` for thousands, `1.5M` for millions.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws `c` as an SVG document.
pub fn bar_chart(c: &BarChart) -> Result<String, ChartError> {
    let n = c.categories.len();
    let k = c.series.len();
    let values = c.series.iter().flat_map(|(_, v)| v.iter().copied());
    let hi = values
        .chain(c.reference.iter().map(|r| r.1))
        .filter(|v| v.is_finite())
        .fold(f64::NAN, f64::max);
    if n == 0 || k == 0 || hi.is_nan() {
        return Err(ChartError::Empty(c.title.clone()));
    }
    let top = if hi > 0.0 { hi * 1.12 } else { 1.0 };
    let e = draw_err(&c.title);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(c.title.as_str(), ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..n as f64, 0.0..top)
            .map_err(&e)?;
        let cats = c.categories.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&|x: &f64| {
                // Category names under the middle of their group.
                let i = x.floor();
                if (x - i - 0.5).abs() < 1e-6 && i >= 0.0 {
                    cats.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc(c.y_label.as_str())
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(RGBColor(236, 236, 236))
            .draw()
            .map_err(&e)?;
        let slot = 0.8 / k as f64;
        for (j, (name, vals)) in c.series.iter().enumerate() {
            let col = colour(j, false);
            let bars = vals
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| {
                    let x = i as f64 + 0.1 + slot * j as f64;
                    Rectangle::new([(x, 0.0), (x + slot * 0.92, v)], col.filled())
                });
            chart
                .draw_series(bars)
                .map_err(&e)?
                .label(name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], col.filled()));
        }
        if let Some((name, v)) = &c.reference {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, *v), (n as f64, *v)],
                    BLACK.stroke_width(2),
                )))
                .map_err(&e)?
                .label(name.as_str())
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(&e)?;
        root.present().map_err(&e)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve() -> LineChart {
        LineChart {
            title: "hit ratio".into(),
            x_label: "capacity (blocks)".into(),
            y_label: "block hit ratio".into(),
            log_x: true,
            y_range: Some((0.0, 0.5)),
            series: vec![
                Series {
                    name: "lru".into(),
                    points: vec![(10.0, 0.1), (100.0, 0.2), (1000.0, 0.3)],
                    bound: false,
                },
                Series {
                    name: "min".into(),
                    points: vec![(10.0, 0.2), (100.0, 0.35), (1000.0, 0.4)],
                    bound: true,
                },
            ],
            markers: vec![Marker {
                x: 50.0,
                label: "switch".into(),
            }],
        }
    }

    #[test]
    fn line_chart_has_axes_series_and_legend() {
        let svg = line_chart(&curve()).expect("draws");
        assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        for text in [
            "hit ratio",
            "capacity (blocks)",
            "block hit ratio",
            "lru",
            "min",
            "switch",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert!(svg.matches("<polyline").count() >= 2, "one line per series");
    }

    #[test]
    fn bar_chart_draws_bars_and_reference() {
        let svg = bar_chart(&BarChart {
            title: "saved".into(),
            y_label: "seconds".into(),
            categories: vec!["mcos".into(), "lru".into()],
            series: vec![("saved".into(), vec![3.0, 2.0])],
            reference: Some(("bound".into(), 4.0)),
        })
        .expect("draws");
        for text in ["saved", "seconds", "mcos", "lru", "bound"] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert!(svg.matches("<rect").count() >= 3, "background and two bars");
    }

    #[test]
    fn empty_and_bad_charts_are_errors() {
        let mut c = curve();
        c.series.clear();
        assert!(matches!(line_chart(&c), Err(ChartError::Empty(_))));
        let mut c = curve();
        c.series[0].points[0].0 = 0.0;
        assert!(matches!(
            line_chart(&c),
            Err(ChartError::LogOfNonPositive(_))
        ));
        assert!(matches!(
            bar_chart(&BarChart::default()),
            Err(ChartError::Empty(_))
        ));
    }
}
