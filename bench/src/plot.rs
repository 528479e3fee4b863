//! The latency percentile plot (HDR style) of the half-rate runs, as a small hand-written
//! SVG: no plotting dependency for one chart.
//!
//! x: percentile on a log scale of `1 / (1 - q)` (0 %, 90 %, 99 %, 99.9 %, ...); y: latency
//! on a log scale, so a 200 µs median and a 30 ms tail both stay readable.

use std::fmt::Write as _;

use crate::stats::{CurvePoint, fmt_us};

/// One curve of the plot.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Stroke colour (`#rrggbb`).
    pub color: &'static str,
    /// The curve (quantile 1.0, the maximum, is shown in the legend only).
    pub points: Vec<CurvePoint>,
}

/// Colours for successive series.
pub const COLORS: [&str; 4] = ["#444444", "#d62728", "#1f77b4", "#2ca02c"];

const W: f64 = 820.0;
const H: f64 = 460.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// Decades of `1 / (1 - q)` on the x axis: up to 99.999 %.
const X_DECADES: f64 = 5.0;

fn x_of(q: f64) -> f64 {
    let v = (1.0 / (1.0 - q).max(1e-12)).log10().clamp(0.0, X_DECADES);
    LEFT + v / X_DECADES * (W - LEFT - RIGHT)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// 1-2-5 ticks (µs) covering `lo..=hi`.
fn y_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi * 10.0 {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// The SVG document.
pub fn hdr_svg(title: &str, series: &[Series]) -> String {
    let values = series
        .iter()
        .flat_map(|s| s.points.iter().filter(|p| p.quantile < 1.0))
        .map(|p| p.us.max(1) as f64);
    let (mut lo, mut hi) = (f64::MAX, 1.0f64);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        lo = 1.0;
    }
    // Round the range out to 1-2-5 steps.
    let lo = 10f64.powf(lo.log10().floor());
    let hi = {
        let d = 10f64.powf(hi.log10().floor());
        [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| d * m)
            .find(|v| *v >= hi)
            .unwrap_or(d * 10.0)
    };
    let (llo, lhi) = (lo.log10(), hi.log10().max(lo.log10() + 1e-9));
    let y_of = |us: f64| {
        let v = us.max(1.0).log10().clamp(llo, lhi);
        H - BOTTOM - (v - llo) / (lhi - llo) * (H - TOP - BOTTOM)
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    // Grid and axes.
    for (k, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let q = 1.0 - 10f64.powi(-(k as i32));
        let x = x_of(q);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#dddddd\"/>",
            H - BOTTOM
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            H - BOTTOM + 18.0
        );
    }
    for v in y_ticks(lo, hi) {
        let y = y_of(v);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#dddddd\"/>",
            W - RIGHT
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            fmt_us(v as u64)
        );
    }
    let _ = writeln!(
        s,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#888888\"/>",
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 18.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">latency (log scale)</text>"#,
        TOP + (H - TOP - BOTTOM) / 2.0,
        TOP + (H - TOP - BOTTOM) / 2.0
    );
    // Curves and legend.
    for (i, se) in series.iter().enumerate() {
        let pts: Vec<String> = se
            .points
            .iter()
            .filter(|p| p.quantile < 1.0)
            .map(|p| format!("{:.1},{:.1}", x_of(p.quantile), y_of(p.us as f64)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            se.color,
            pts.join(" ")
        );
        let ly = TOP + 16.0 + i as f64 * 18.0;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"/>"#,
            LEFT + 12.0,
            LEFT + 36.0,
            se.color
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + 42.0,
            ly + 4.0,
            escape(&se.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_has_one_polyline_per_series_and_escapes_names() {
        let pts = vec![
            CurvePoint {
                quantile: 0.0,
                us: 100,
            },
            CurvePoint {
                quantile: 0.99,
                us: 5_000,
            },
            CurvePoint {
                quantile: 1.0,
                us: 90_000,
            },
        ];
        let svg = hdr_svg(
            "a < b",
            &[
                Series {
                    name: "baseline".into(),
                    color: COLORS[0],
                    points: pts.clone(),
                },
                Series {
                    name: "tessera & co".into(),
                    color: COLORS[1],
                    points: pts,
                },
            ],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt; b"));
        assert!(svg.contains("tessera &amp; co"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }

    #[test]
    fn ticks_follow_1_2_5() {
        assert_eq!(y_ticks(100.0, 1000.0), vec![100.0, 200.0, 500.0, 1000.0]);
    }
}
