//! Small SVG line charts for people who would rather look than read: panels of time
//! series sharing one time axis, with tick labels, and optionally a scatter of two
//! rates beside the line y = x (`wrenvnet analyze --plot`). No dependencies; the SVG
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

/// A group of a scatter's points: its label, color and (x, y) points.
pub type Group = (String, &'static str, Vec<(f64, f64)>);

/// Points of two rates (x, y) in groups, beside the line y = x, with a value marked
/// on both axes and its range shaded.
pub struct Scatter {
    pub title: String,
    pub unit: String,
    pub groups: Vec<Group>,
    pub answer: Option<f64>,
    pub range: (Option<f64>, Option<f64>),
    pub answer_label: String,
}

const W: f64 = 900.0;
/// The scatter's plotting square.
const SQUARE: f64 = 320.0;
const PANEL_H: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 20.0;
const GAP: f64 = 44.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Tick values for an axis from 0 to `max`: steps of 1, 2 or 5 times a power of ten,
/// at most about `n` of them.
fn ticks(max: f64, n: f64) -> Vec<f64> {
    if !(max > 0.0 && max.is_finite()) {
        return vec![0.0];
    }
    let raw = max / n;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    (0..)
        .map(|k| k as f64 * step)
        .take_while(|v| *v <= max * (1.0 + 1e-9))
        .collect()
}

/// A tick value as short as its step allows.
fn tick_label(v: f64) -> String {
    let whole = |x: f64| (x - x.round()).abs() < 1e-6;
    if whole(v) {
        format!("{v:.0}")
    } else if whole(v * 10.0) {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// An axis of the scatter: linear from 0, or logarithmic over whole decades when the
/// values span more than 20x (bursts at a host's line rate beside a slow path's).
struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
}

impl Axis {
    fn of(values: impl Iterator<Item = f64>) -> Self {
        let (mut lo, mut hi) = (f64::MAX, 0.0f64);
        for v in values.filter(|v| *v > 0.0 && v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if hi <= 0.0 {
            return Axis {
                log: false,
                lo: 0.0,
                hi: 1.0,
            };
        }
        if hi > 20.0 * lo {
            Axis {
                log: true,
                lo: 10f64.powf(lo.log10().floor()),
                hi: 10f64.powf(hi.log10().ceil()),
            }
        } else {
            Axis {
                log: false,
                lo: 0.0,
                hi: hi * 1.15,
            }
        }
    }

    /// Where `v` falls, 0 to 1.
    fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (
                self.lo.log10().round() as i32,
                self.hi.log10().round() as i32,
            );
            (a..=b).map(|e| 10f64.powi(e)).collect()
        } else {
            ticks(self.hi, 5.0)
        }
    }
}

/// The scatter at `y0`: r_out against r_in on one scale, y = x, the answer marked.
fn render_scatter(out: &mut String, sc: &Scatter, y0: f64) {
    let all = sc.groups.iter().flat_map(|g| &g.2);
    let axis = Axis::of(
        all.flat_map(|p| [p.0, p.1])
            .chain(sc.answer)
            .chain(sc.range.0)
            .chain(sc.range.1),
    );
    let x = |v: f64| LEFT + SQUARE * axis.frac(v);
    let y = |v: f64| y0 + SQUARE - SQUARE * axis.frac(v);
    let scale = if axis.log { ", log scale" } else { "" };
    let _ = write!(
        out,
        r##"<text x="{LEFT}" y="{:.1}" font-weight="bold">{}</text><rect x="{LEFT}" y="{y0:.1}" width="{SQUARE}" height="{SQUARE}" fill="none" stroke="#888"/>"##,
        y0 - 8.0,
        esc(&sc.title)
    );
    for v in axis.ticks() {
        let _ = write!(
            out,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            x(v),
            y0 + SQUARE,
            x(v),
            y0 + SQUARE + 4.0,
            x(v),
            y0 + SQUARE + 16.0,
            tick_label(v),
            LEFT - 4.0,
            y(v) + 4.0,
            tick_label(v)
        );
    }
    let mid = y0 + SQUARE / 2.0;
    let _ = write!(
        out,
        r#"<text x="14" y="{mid:.1}" transform="rotate(-90 14 {mid:.1})">rate out, {}{scale}</text><text x="{:.1}" y="{:.1}" text-anchor="middle">rate in, {}{scale}</text>"#,
        esc(&sc.unit),
        LEFT + SQUARE / 2.0,
        y0 + SQUARE + 32.0,
        esc(&sc.unit)
    );
    // The range, shaded on the out axis: where A is, r_out of a train above it is.
    if let (Some(lo), Some(hi)) = sc.range {
        let _ = write!(
            out,
            r##"<rect x="{LEFT}" y="{:.1}" width="{SQUARE}" height="{:.1}" fill="#1f77b4" fill-opacity="0.12"/>"##,
            y(hi),
            (y(lo) - y(hi)).max(0.5)
        );
    }
    let _ = write!(
        out,
        r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#000" stroke-dasharray="6,4"/>"##,
        x(axis.lo.max(1e-12)),
        y(axis.lo.max(1e-12)),
        x(axis.hi),
        y(axis.hi)
    );
    if let Some(a) = sc.answer {
        let _ = write!(
            out,
            r##"<line class="answer" x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#1f77b4" stroke-width="2"/><line x1="{:.1}" y1="{y0:.1}" x2="{:.1}" y2="{:.1}" stroke="#1f77b4" stroke-width="2" stroke-dasharray="2,3"/>"##,
            y(a),
            LEFT + SQUARE,
            y(a),
            x(a),
            x(a),
            y0 + SQUARE
        );
    }
    for (label, color, pts) in &sc.groups {
        for (a, b) in pts {
            let _ = write!(
                out,
                r#"<circle class="burst" cx="{:.1}" cy="{:.1}" r="3" fill="{color}" fill-opacity="0.7"/>"#,
                x(*a),
                y(*b)
            );
        }
        let _ = label;
    }
    // The legend, right of the square.
    let lx = LEFT + SQUARE + 30.0;
    let mut ly = y0 + 14.0;
    for (label, color, pts) in &sc.groups {
        let _ = write!(
            out,
            r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{color}"/><text x="{:.1}" y="{:.1}">{} ({})</text>"#,
            lx + 6.0,
            ly - 4.0,
            lx + 16.0,
            ly,
            esc(label),
            pts.len()
        );
        ly += 18.0;
    }
    let _ = write!(
        out,
        r##"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#000" stroke-dasharray="6,4"/><text x="{:.1}" y="{:.1}">out = in (no expansion)</text><line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#1f77b4" stroke-width="2"/><text x="{:.1}" y="{:.1}">answer: {} (shaded: its range)</text>"##,
        ly - 4.0,
        lx + 12.0,
        ly - 4.0,
        lx + 16.0,
        ly,
        ly + 14.0,
        lx + 12.0,
        ly + 14.0,
        lx + 16.0,
        ly + 18.0,
        esc(&sc.answer_label)
    );
}

/// The panels stacked, one time axis (seconds, tick labels under each panel), and the
/// scatter, if any, below them.
pub fn render(panels: &[Panel], scatter: Option<&Scatter>) -> String {
    let t_max = panels
        .iter()
        .flat_map(|p| &p.series)
        .flat_map(|s| &s.points)
        .map(|p| p.0)
        .fold(1e-9, f64::max);
    let scatter_h = scatter.map_or(0.0, |_| SQUARE + 2.0 * GAP);
    let h = GAP + panels.len() as f64 * (PANEL_H + GAP) + 10.0 + scatter_h;
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
        for v in ticks(t_max, 10.0) {
            let _ = write!(
                out,
                r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                x(v),
                y0 + PANEL_H,
                x(v),
                y0 + PANEL_H + 4.0,
                x(v),
                y0 + PANEL_H + 16.0,
                tick_label(v)
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
    let axis_y = GAP + panels.len() as f64 * (PANEL_H + GAP) - GAP + 30.0;
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{axis_y:.1}" text-anchor="middle">seconds into the capture</text>"#,
        W / 2.0,
    );
    if let Some(sc) = scatter {
        render_scatter(&mut out, sc, axis_y + GAP);
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_and_breaks_lines_at_gaps() {
        let svg = render(
            &[Panel {
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
            }],
            None,
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt;b&gt;"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // The time axis, 0 to 4 s, is labelled every half second.
        for t in ["0", "0.5", "1", "2", "3.5", "4"] {
            assert!(
                svg.contains(&format!(r#"text-anchor="middle">{t}</text>"#)),
                "{t}: {svg}"
            );
        }
    }

    #[test]
    fn ticks_are_round_steps_and_the_scatter_draws_one_point_per_pair() {
        assert_eq!(
            ticks(10.0, 10.0),
            (0..=10).map(f64::from).collect::<Vec<_>>()
        );
        assert_eq!(
            ticks(47.0, 10.0),
            (0..=9).map(|k| 5.0 * k as f64).collect::<Vec<_>>()
        );
        let small: Vec<String> = ticks(0.3, 10.0).into_iter().map(tick_label).collect();
        assert_eq!(small, ["0", "0.05", "0.1", "0.15", "0.2", "0.25", "0.3"]);
        let sc = Scatter {
            title: "t".into(),
            unit: "Mbit/s".into(),
            groups: vec![
                ("a".into(), "#0f0", vec![(10.0, 10.0), (20.0, 19.0)]),
                ("b".into(), "#f00", vec![(80.0, 50.0)]),
            ],
            answer: Some(50.0),
            range: (Some(45.0), Some(55.0)),
            answer_label: "estimate 50".into(),
        };
        let svg = render(&[], Some(&sc));
        assert_eq!(svg.matches(r#"class="burst""#).count(), 3);
        assert_eq!(svg.matches(r#"class="answer""#).count(), 1);
        // Bursts at a host's line rate beside a slow path: decades.
        let wide = Scatter {
            groups: vec![("a".into(), "#0f0", vec![(60.0, 50.0), (9000.0, 70.0)])],
            ..sc
        };
        let svg = render(&[], Some(&wide));
        assert!(
            svg.contains("log scale") && svg.contains(">10000</text>"),
            "{svg}"
        );
    }
}
