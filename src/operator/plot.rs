//! Small SVG line charts for people who would rather look than read: panels of time
//! series sharing one time axis (`wrenvnet analyze --plot`). No dependencies; the SVG
//! opens in any browser.

use std::fmt::Write;

/// One line of a panel.
pub struct Series {
    pub label: String,
    pub color: &'static str,
    pub dashed: bool,
    /// (seconds, value); `None` values break the line.
    pub points: Vec<(f64, Option<f64>)>,
}

/// A panel: a title, a unit and its series.
pub struct Panel {
    pub title: String,
    pub unit: String,
    pub series: Vec<Series>,
}

const W: f64 = 900.0;
const PANEL_H: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 20.0;
const GAP: f64 = 44.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The panels stacked, one time axis (seconds) at the bottom.
pub fn render(panels: &[Panel]) -> String {
    let t_max = panels
        .iter()
        .flat_map(|p| &p.series)
        .flat_map(|s| &s.points)
        .map(|p| p.0)
        .fold(1e-9, f64::max);
    let h = GAP + panels.len() as f64 * (PANEL_H + GAP) + 10.0;
    let x = |t: f64| LEFT + (W - LEFT - RIGHT) * t / t_max;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    for (i, p) in panels.iter().enumerate() {
        let y0 = GAP + i as f64 * (PANEL_H + GAP);
        let y_max = p
            .series
            .iter()
            .flat_map(|s| &s.points)
            .filter_map(|p| p.1)
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.15;
        let y = |v: f64| y0 + PANEL_H - PANEL_H * v / y_max;
        let _ = write!(
            out,
            r##"<text x="{LEFT}" y="{:.1}" font-weight="bold">{}</text><rect x="{LEFT}" y="{y0:.1}" width="{:.1}" height="{PANEL_H}" fill="none" stroke="#888"/>"##,
            y0 - 8.0,
            esc(&p.title),
            W - LEFT - RIGHT
        );
        for k in 0..=4 {
            let v = y_max * k as f64 / 4.0;
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{v:.1}</text>"#,
                LEFT - 4.0,
                y(v) + 4.0
            );
        }
        let mid = y0 + PANEL_H / 2.0;
        let _ = write!(
            out,
            r#"<text x="14" y="{mid:.1}" transform="rotate(-90 14 {mid:.1})">{}</text>"#,
            esc(&p.unit)
        );
        let mut legend_x = LEFT + 10.0;
        for s in &p.series {
            let dash = if s.dashed {
                r#" stroke-dasharray="6,4""#
            } else {
                ""
            };
            // One polyline per unbroken run of points.
            for run in s.points.split(|p| p.1.is_none()) {
                if run.len() < 2 {
                    continue;
                }
                let pts: Vec<String> = run
                    .iter()
                    .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(v.unwrap_or(0.0))))
                    .collect();
                let _ = write!(
                    out,
                    r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                    pts.join(" "),
                    s.color
                );
            }
            let _ = write!(
                out,
                r#"<line x1="{legend_x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
                y0 + 12.0,
                legend_x + 20.0,
                y0 + 12.0,
                s.color,
                legend_x + 24.0,
                y0 + 16.0,
                esc(&s.label)
            );
            legend_x += 34.0 + 6.5 * s.label.len() as f64;
        }
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds into the capture (axis to {t_max:.1} s)</text></svg>"#,
        W / 2.0,
        h - 6.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_and_breaks_lines_at_gaps() {
        let svg = render(&[Panel {
            title: "a <b>".into(),
            unit: "Mbit/s".into(),
            series: vec![Series {
                label: "x".into(),
                color: "#000",
                dashed: true,
                points: vec![
                    (0.0, Some(1.0)),
                    (1.0, Some(2.0)),
                    (2.0, None),
                    (3.0, Some(1.0)),
                    (4.0, Some(3.0)),
                ],
            }],
        }]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt;b&gt;"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
