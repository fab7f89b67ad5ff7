//! The small inline SVG chart of an analysis run: one dot per measurement, a dashed line at
//! the threshold. Drawn with SVG attributes only (no `style`), so the page's
//! Content-Security-Policy holds; the numbers are the only data written into it.

use crate::rollout::analysis::Measurement;

const WIDTH: f64 = 240.0;
const HEIGHT: f64 = 64.0;
const PAD: f64 = 6.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart of `measurements` against `threshold`; `lower_is_better` for latencies. An
/// empty run draws an empty frame saying so.
pub fn measurements(
    name: &str,
    measurements: &[Measurement],
    threshold: Option<f64>,
    lower_is_better: bool,
) -> String {
    let values: Vec<f64> = measurements.iter().filter_map(|m| m.value).collect();
    let mut low = values.iter().copied().chain(threshold).fold(f64::MAX, f64::min);
    let mut high = values.iter().copied().chain(threshold).fold(f64::MIN, f64::max);
    if low > high {
        (low, high) = (0.0, 1.0);
    }
    if (high - low).abs() < 1e-9 {
        low -= 0.5_f64.max(low.abs() * 0.1);
        high += 0.5_f64.max(high.abs() * 0.1);
    }
    let margin = (high - low) * 0.15;
    let (low, high) = (low - margin, high + margin);
    let y = |v: f64| PAD + (high - v) / (high - low) * (HEIGHT - 2.0 * PAD);
    let slots = measurements.len().max(2) as f64;
    let x = |i: usize| PAD + i as f64 * (WIDTH - 2.0 * PAD) / (slots - 1.0);
    let label = format!(
        "{}: {} measurement(s){}",
        name,
        measurements.len(),
        threshold
            .map(|t| format!(", threshold {t}"))
            .unwrap_or_default()
    );
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{0}"><title>{0}</title><rect class="frame" x="0.5" y="0.5" width="{1}" height="{2}" fill="none"/>"#,
        escape(&label),
        WIDTH - 1.0,
        HEIGHT - 1.0
    );
    if let Some(t) = threshold {
        let (right, line_y) = (WIDTH - PAD, y(t));
        let label_y = line_y - 2.0;
        let op = if lower_is_better { "≤ " } else { "≥ " };
        svg.push_str(&format!(
            r#"<line class="threshold" x1="{PAD}" x2="{right:.1}" y1="{line_y:.1}" y2="{line_y:.1}" stroke-dasharray="4 3"/><text class="axis" x="{right:.1}" y="{label_y:.1}" text-anchor="end">{op}{t}</text>"#
        ));
    }
    let mut previous: Option<(f64, f64)> = None;
    for (i, m) in measurements.iter().enumerate() {
        let Some(v) = m.value else {
            svg.push_str(&format!(
                r#"<text class="nodata" x="{:.1}" y="{:.1}" text-anchor="middle">?</text>"#,
                x(i),
                HEIGHT / 2.0
            ));
            previous = None;
            continue;
        };
        let point = (x(i), y(v));
        if let Some((px, py)) = previous {
            svg.push_str(&format!(
                r#"<line class="series" x1="{px:.1}" y1="{py:.1}" x2="{:.1}" y2="{:.1}"/>"#,
                point.0, point.1
            ));
        }
        let class = match m.passed {
            Some(true) => "pass",
            Some(false) => "fail",
            None => "nodata",
        };
        svg.push_str(&format!(
            r#"<circle class="{class}" cx="{:.1}" cy="{:.1}" r="3.5"><title>{} {v:.4} ({})</title></circle>"#,
            point.0,
            point.1,
            escape(&m.at),
            match m.passed {
                Some(true) => "passed",
                Some(false) => "failed",
                None => "inconclusive",
            }
        ));
        previous = Some(point);
    }
    if measurements.is_empty() {
        svg.push_str(&format!(
            r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="middle">no measurement yet</text>"#,
            WIDTH / 2.0,
            HEIGHT / 2.0 + 4.0
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(value: Option<f64>, passed: Option<bool>) -> Measurement {
        Measurement {
            at: "2026-01-01T00:00:10Z".into(),
            value,
            passed,
        }
    }

    #[test]
    fn dots_sit_on_the_right_side_of_the_threshold_line() {
        let svg = measurements(
            "success-rate",
            &[m(Some(0.999), Some(true)), m(Some(0.9), Some(false)), m(None, None)],
            Some(0.99),
            false,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"class="threshold""#));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains(r#"class="fail""#) && svg.contains(r#"class="pass""#));
        assert!(!svg.contains("style="), "the CSP forbids inline styles");
        let cy = |class: &str| -> f64 {
            let at = svg.find(&format!(r#"<circle class="{class}""#)).unwrap_or(0);
            svg[at..]
                .split("cy=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN)
        };
        let line = svg
            .split(r#"class="threshold""#)
            .nth(1)
            .and_then(|s| s.split("y1=\"").nth(1))
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        assert!(cy("pass") < line && cy("fail") > line, "{svg}");
    }

    #[test]
    fn an_empty_run_says_so_and_names_are_escaped() {
        let svg = measurements("a<b", &[], None, true);
        assert!(svg.contains("no measurement yet"));
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
    }
}
