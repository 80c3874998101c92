//! Plots the scale curves that `benches/load.sh` writes (RESULTS_DIR/scale-*.tsv) into one SVG
//! with three charts: playlist cost against the asset's duration, memory against assets
//! loaded, and cost per request against open connections (origin and static floor).

use std::error::Error;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

type Res<T> = Result<T, Box<dyn Error>>;

/// The rows of a TSV file with a header line: each row as its header's columns.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn read(path: &Path) -> Res<Table> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut lines = text.lines().filter(|l| !l.is_empty());
        let header = lines.next().ok_or_else(|| format!("{}: empty", path.display()))?;
        Ok(Table {
            header: header.split('\t').map(str::to_owned).collect(),
            rows: lines.map(|l| l.split('\t').map(str::to_owned).collect()).collect(),
        })
    }

    fn column(&self, name: &str) -> Res<usize> {
        self.header.iter().position(|h| h == name).ok_or_else(|| format!("no column {name}").into())
    }

    /// (x, y) of the rows that `keep` accepts and whose two columns are numbers.
    fn points(&self, x: &str, y: &str, keep: impl Fn(&dyn Fn(&str) -> Option<String>) -> bool) -> Res<Vec<(f64, f64)>> {
        let (xi, yi) = (self.column(x)?, self.column(y)?);
        let mut out: Vec<(f64, f64)> = self
            .rows
            .iter()
            .filter(|row| {
                let get = |name: &str| self.column(name).ok().and_then(|i| row.get(i).cloned());
                keep(&get)
            })
            .filter_map(|row| Some((row.get(xi)?.parse().ok()?, row.get(yi)?.parse().ok()?)))
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(out)
    }
}

/// Lower and upper bounds of the values, widened so that a single value still spans a range.
fn bounds(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (1.0, 10.0);
    }
    if log {
        (lo.max(1e-3) / 2.0, hi.max(1e-3) * 2.0)
    } else {
        (0.0, hi * 1.1 + 1.0)
    }
}

/// An axis label: whole numbers without decimals, fractions as they are.
fn number(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

struct Series {
    label: String,
    color: RGBColor,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// One chart; `x` and `y` are (axis label, logarithmic).
fn chart(
    area: &DrawingArea<SVGBackend, Shift>,
    title: &str,
    x: (&str, bool),
    y: (&str, bool),
    series: &[Series],
) -> Res<()> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = bounds(all().map(|p| p.0), x.1);
    let (y0, y1) = bounds(all().map(|p| p.1), y.1);
    let mut builder = ChartBuilder::on(area);
    builder.caption(title, ("sans-serif", 18)).margin(12).x_label_area_size(40).y_label_area_size(60);
    // Each mix of axis kinds is a chart type of its own: one body, drawn through a macro.
    macro_rules! draw {
        ($chart:expr) => {{
            let mut c = $chart;
            c.configure_mesh()
                .x_desc(x.0)
                .y_desc(y.0)
                .x_label_formatter(&|v| number(*v))
                .y_label_formatter(&|v| number(*v))
                .draw()?;
            for s in series.iter().filter(|s| !s.points.is_empty()) {
                let style = ShapeStyle::from(&s.color).stroke_width(2);
                if s.dashed {
                    c.draw_series(DashedLineSeries::new(s.points.iter().copied(), 6, 4, style))?;
                } else {
                    c.draw_series(LineSeries::new(s.points.iter().copied(), style))?;
                }
                let (color, dashed) = (s.color, s.dashed);
                c.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?
                    .label(s.label.as_str())
                    .legend(move |(lx, ly)| {
                        // A dashed series shows two strokes in the legend, a solid one a line.
                        let gap = if dashed { 6 } else { 0 };
                        EmptyElement::at((lx, ly))
                            + PathElement::new(vec![(0, 0), (8, 0)], color.stroke_width(2))
                            + PathElement::new(vec![(8 + gap, 0), (18, 0)], color.stroke_width(2))
                    });
            }
            c.configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }};
    }
    match (x.1, y.1) {
        (true, true) => draw!(builder.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?),
        (true, false) => draw!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1)?),
        (false, true) => draw!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale())?),
        (false, false) => draw!(builder.build_cartesian_2d(x0..x1, y0..y1)?),
    }
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, out] = args.as_slice() else {
        return Err("usage: bench-plot RESULTS_DIR OUT.svg".into());
    };
    let dir = Path::new(dir);
    let duration = Table::read(&dir.join("scale-duration.tsv"))?;
    let assets = Table::read(&dir.join("scale-assets.tsv"))?;
    let conns = Table::read(&dir.join("scale-connections.tsv"))?;

    let root = SVGBackend::new(out, (1500, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 3));
    let [p_duration, p_assets, p_conns] = panels.as_slice() else {
        return Err("three panels".into());
    };

    let kind = |k: &'static str| move |get: &dyn Fn(&str) -> Option<String>| get("kind").as_deref() == Some(k);
    chart(
        p_duration,
        "Media playlist: server CPU vs asset duration",
        ("asset duration, hours", true),
        ("CPU µs / request", true),
        &[
            Series {
                label: "nothing cached".into(),
                color: RED,
                dashed: false,
                points: duration.points("hours", "cpu_us_req", kind("cold"))?,
            },
            Series {
                label: "cached".into(),
                color: BLUE,
                dashed: false,
                points: duration.points("hours", "cpu_us_req", kind("cached"))?,
            },
        ],
    )?;
    chart(
        p_assets,
        "Server RSS vs 10-second assets loaded",
        ("assets loaded", false),
        ("RSS, MiB", false),
        &[Series {
            label: "RSS".into(),
            color: BLUE,
            dashed: false,
            points: assets.points("assets", "rss_mib", |_| true)?,
        }],
    )?;
    let scenario = |s: &'static str| move |get: &dyn Fn(&str) -> Option<String>| get("scenario").as_deref() == Some(s);
    let mut series = Vec::new();
    for (name, label, color) in
        [("multivariant", "multivariant", BLUE), ("cached-segment-720p", "cached 1.5 MB segment", RED)]
    {
        series.push(Series {
            label: format!("{label}, jit"),
            color,
            dashed: false,
            points: conns.points("connections", "cpu_us_req", scenario(name))?,
        });
        series.push(Series {
            label: format!("{label}, nginx floor"),
            color,
            dashed: true,
            points: conns.points("connections", "floor_us_req", scenario(name))?,
        });
    }
    chart(p_conns, "Server CPU vs open connections", ("connections", true), ("CPU µs / request", true), &series)?;
    root.present()?;
    Ok(())
}
