//! Charts as SVG text drawn by plotters. The same code runs on the server for the first
//! paint and in the browser on each update, so both show the same picture. Thresholds are
//! drawn as bands behind the data; times are UTC, like everywhere in the app.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use thermoalert_pipeline::rules::Thresholds;

use crate::api::{ChartData, Series};

const WIDTH: u32 = 900;
const HEIGHT: u32 = 320;
const LINE: RGBColor = RGBColor(37, 99, 235);
const BAND: RGBColor = RGBColor(147, 180, 250);
const HIGH: RGBColor = RGBColor(217, 138, 0);
const CRITICAL: RGBColor = RGBColor(198, 40, 40);
/// Up to this many series get their own colour on the live chart.
const PALETTE: [RGBColor; 6] = [
    LINE,
    RGBColor(16, 150, 72),
    RGBColor(147, 51, 234),
    RGBColor(234, 88, 12),
    RGBColor(8, 145, 178),
    RGBColor(100, 116, 139),
];

/// The history chart of a sensor page: the raw line, or the window averages with their
/// min/max band.
pub fn history_svg(history: &ChartData, thresholds: &Thresholds) -> String {
    let values: Vec<f64> = match &history.series {
        Series::Raw(points) => points.iter().map(|p| p.1).collect(),
        Series::Windows(w) => w.iter().flat_map(|w| [w.min, w.max]).collect(),
    };
    render(history.from, history.to, &values, thresholds, |chart| match &history.series {
        Series::Raw(points) => {
            chart.draw_series(LineSeries::new(points.iter().copied(), LINE.stroke_width(2)))?;
            Ok(())
        }
        Series::Windows(windows) => {
            let mid = |w: &thermoalert_pipeline::model::WindowStats| {
                (w.window_start + w.window_end) / 2.0
            };
            let upper = windows.iter().map(|w| (mid(w), w.max));
            let lower = windows.iter().rev().map(|w| (mid(w), w.min));
            let outline: Vec<(f64, f64)> = upper.chain(lower).collect();
            chart.draw_series(std::iter::once(Polygon::new(outline, BAND.mix(0.5).filled())))?;
            let avg = windows.iter().map(|w| (mid(w), w.avg_temperature));
            chart.draw_series(LineSeries::new(avg, LINE.stroke_width(2)))?;
            Ok(())
        }
    })
}

/// The overview's live chart: the recent readings of a few sensors, one colour each.
pub fn live_svg(
    series: &[(String, Vec<(f64, f64)>)],
    from: f64,
    to: f64,
    t: &Thresholds,
) -> String {
    let values: Vec<f64> = series.iter().flat_map(|(_, s)| s.iter().map(|p| p.1)).collect();
    render(from, to, &values, t, |chart| {
        for (i, (_, points)) in series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            chart.draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))?;
        }
        Ok(())
    })
}

/// The colour of the `i`-th live series, as CSS, for its legend.
pub fn series_colour(i: usize) -> String {
    let RGBColor(r, g, b) = PALETTE[i % PALETTE.len()];
    format!("rgb({r},{g},{b})")
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn render(
    from: f64,
    to: f64,
    values: &[f64],
    thresholds: &Thresholds,
    draw: impl FnOnce(&mut Chart<'_, '_>) -> DrawResult,
) -> String {
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        frame(&root, from, to, values, thresholds, draw)
    };
    match drawn {
        Ok(()) => svg,
        // Drawing into a string cannot fail on I/O; say so plainly if plotters refuses.
        Err(e) => format!("<p class=\"error\">The chart could not be drawn: {e}</p>"),
    }
}

fn frame(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    from: f64,
    to: f64,
    values: &[f64],
    thresholds: &Thresholds,
    draw: impl FnOnce(&mut Chart<'_, '_>) -> DrawResult,
) -> DrawResult {
    root.fill(&WHITE)?;
    let (lo, hi) = y_range(values);
    let (from, to) = x_range(from, to);
    let span = to - from;
    let mut chart = ChartBuilder::on(root)
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(48)
        .build_cartesian_2d(from..to, lo..hi)?;
    chart
        .configure_mesh()
        .x_labels(7)
        .y_labels(6)
        .x_label_formatter(&|x| axis_time(*x, span))
        .y_label_formatter(&|y| format!("{y:.0} °C"))
        .label_style(("sans-serif", 12))
        .light_line_style(RGBColor(238, 240, 244))
        .bold_line_style(RGBColor(221, 225, 231))
        .axis_style(RGBColor(150, 156, 168))
        .draw()?;
    // Threshold bands, clipped to what is in view.
    for (start, end, colour) in
        [(thresholds.high, thresholds.critical, HIGH), (thresholds.critical, f64::MAX, CRITICAL)]
    {
        let (a, b) = (start.max(lo), end.min(hi));
        if a < b {
            let band = Rectangle::new([(from, a), (to, b)], colour.mix(0.08).filled());
            chart.draw_series(std::iter::once(band))?;
            let edge = [(from, a), (to, a)];
            chart.draw_series(std::iter::once(PathElement::new(edge, colour.mix(0.6))))?;
        }
    }
    draw(&mut chart)?;
    root.present()
}

/// The shortest time axis drawn, in seconds. plotters works out the axis labels from the
/// span: for a span of a few ulps (`from..from + 1e-7` at today's epoch seconds) the label step
/// is below the precision of the times themselves, and it built label lists without bound.
const MIN_SPAN_S: f64 = 1.0;
/// The longest: a thousand years.
const MAX_SPAN_S: f64 = 1000.0 * 365.25 * 86_400.0;
/// Times drawn lie in `0..=LATEST_S` (the epoch to the year 10 000), where seconds are exact
/// to well below [`MIN_SPAN_S`].
const LATEST_S: f64 = 253_402_300_800.0;

/// The time axis: `from..to` within `0..=LATEST_S`, widened to [`MIN_SPAN_S`] (around its
/// middle) or cut to [`MAX_SPAN_S`] (from its end, the recent part); the last hour before `to`
/// if either is not a number.
fn x_range(from: f64, to: f64) -> (f64, f64) {
    if from.is_nan() || to.is_nan() {
        let end = if to.is_nan() { 3_600.0 } else { to.clamp(3_600.0, LATEST_S) };
        return (end - 3_600.0, end);
    }
    let (from, to) = (from.clamp(0.0, LATEST_S), to.clamp(0.0, LATEST_S));
    let (from, to) = if from <= to { (from, to) } else { (to, from) };
    let span = to - from;
    if span < MIN_SPAN_S {
        let start = (from / 2.0 + to / 2.0 - MIN_SPAN_S / 2.0).max(0.0);
        return (start, start + MIN_SPAN_S);
    }
    if span > MAX_SPAN_S {
        return (to - MAX_SPAN_S, to);
    }
    (from, to)
}

/// The y-axis range: the data with some room, at least 2 °C tall; 0–100 °C with no data.
fn y_range(values: &[f64]) -> (f64, f64) {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.0, 100.0);
    }
    let pad = ((hi - lo) * 0.1).max(1.0);
    (lo - pad, hi + pad)
}

/// Axis labels: clock time for a day or less, date and time beyond.
fn axis_time(epoch_s: f64, span: f64) -> String {
    let format = if span <= 86_400.0 { "%H:%M" } else { "%m-%d %H:%M" };
    chrono::DateTime::from_timestamp_millis((epoch_s * 1000.0) as i64)
        .map(|t| t.format(format).to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use thermoalert_pipeline::model::WindowStats;

    fn history(series: Series) -> ChartData {
        ChartData { sensor_id: "s".into(), from: 0.0, to: 3_600.0, series }
    }

    #[test]
    fn a_raw_history_draws_its_line_and_the_threshold_bands() {
        let points: Vec<(f64, f64)> =
            (0..100).map(|i| (f64::from(i) * 36.0, 70.0 + f64::from(i) / 4.0)).collect();
        let svg = history_svg(&history(Series::Raw(points)), &Thresholds::default());
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("<polyline"), "a line is drawn");
        // 70–95 °C with the default 80/90 thresholds: both bands are in view.
        assert_eq!(
            svg.matches("fill=\"#D98A00\"").count() + svg.matches("fill=\"#C62828\"").count(),
            2,
            "{svg}"
        );
        assert!(svg.contains(">\n00:00") && svg.contains("80 °C"), "axis labels: {svg}");
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn window_histories_draw_a_band_and_empty_ones_still_render() {
        let w = |start: f64, min: f64, max: f64| WindowStats {
            window_start: start,
            window_end: start + 300.0,
            count: 10,
            avg_temperature: (min + max) / 2.0,
            min,
            max,
            revision: 0,
            late: 0,
        };
        let svg = history_svg(
            &history(Series::Windows(vec![w(0.0, 20.0, 25.0), w(300.0, 21.0, 30.0)])),
            &Thresholds::default(),
        );
        assert!(svg.contains("<polygon"), "{svg}");
        let empty = history_svg(&history(Series::Raw(vec![])), &Thresholds::default());
        assert!(empty.starts_with("<svg"));
    }

    #[test]
    fn a_range_of_one_ulp_or_of_ages_draws_a_bounded_chart() {
        let now = 1_800_000_000.0_f64;
        let ranges = [
            (now, now.next_up()),
            (now, now),
            (0.0, 1e300),
            (-1e300, 1e300),
            (now, now - 10.0),
            (f64::NAN, now),
            (now, f64::INFINITY),
        ];
        for (from, to) in ranges {
            let h = ChartData {
                sensor_id: "s".into(),
                from,
                to,
                series: Series::Raw(vec![(now, 20.0)]),
            };
            let svg = history_svg(&h, &Thresholds::default());
            assert!(
                svg.starts_with("<svg") && svg.len() < 200_000,
                "{from}..{to}: {} bytes",
                svg.len()
            );
        }
        assert_eq!(x_range(now, now.next_up()), (now - 0.5, now + 0.5));
        assert_eq!(x_range(10.0, 0.0), (0.0, 10.0));
        assert_eq!(x_range(0.0, 1e300), (LATEST_S - MAX_SPAN_S, LATEST_S));
        assert_eq!(x_range(f64::NAN, now), (now - 3_600.0, now));
        assert_eq!(x_range(-5.0, -1.0), (0.0, MIN_SPAN_S), "before the epoch");
    }

    #[test]
    fn y_range_has_room_and_survives_odd_values() {
        assert_eq!(y_range(&[]), (0.0, 100.0));
        assert_eq!(y_range(&[20.0]), (19.0, 21.0));
        assert_eq!(y_range(&[f64::NAN, 10.0, 30.0]), (8.0, 32.0));
    }
}
