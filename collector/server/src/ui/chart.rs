//! Charts as inline SVG, drawn on the server from the aggregate API's counts: a line chart of
//! series over time buckets and a horizontal bar chart. Each has a text alternative (`aria-label`
//! and a legend) so the numbers are readable without the picture.

use maud::{Markup, html};

/// Series colours (distinguishable, dark enough on white).
const PALETTE: [&str; 8] = [
    "#0b57d0", "#b42318", "#1a7f37", "#9a6700", "#8250df", "#0e7490", "#c2410c", "#57606a",
];

fn colour(i: usize) -> &'static str {
    PALETTE.get(i % PALETTE.len()).copied().unwrap_or("#000")
}

/// One named series: a value per bucket (the buckets are shared).
pub struct Series {
    /// The legend.
    pub name: String,
    /// One value per bucket.
    pub values: Vec<f64>,
}

fn fmt(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A line chart of `series` over `labels` (one per bucket; the first and last are printed).
pub fn lines(title: &str, labels: &[String], series: &[Series]) -> Markup {
    let (w, h, left, bottom) = (600.0, 220.0, 56.0, 30.0);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1.0);
    let n = labels.len().max(2);
    let x = |i: usize| left + (w - left - 8.0) * i as f64 / (n - 1) as f64;
    let y = |v: f64| 8.0 + (h - bottom - 8.0) * (1.0 - v / max);
    let summary = series
        .iter()
        .map(|s| format!("{}: {}", s.name, fmt(s.values.iter().sum())))
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        figure.chart {
            svg.chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(format!("{title}. Totals: {summary}")) {
                line x1=(left) y1=(y(0.0)) x2=(w - 8.0) y2=(y(0.0)) stroke="#d0d7de" {}
                line x1=(left) y1=(y(max)) x2=(w - 8.0) y2=(y(max)) stroke="#eef1f4" {}
                text x="2" y=(y(max) + 16.0) { (fmt(max)) }
                text x="2" y=(y(0.0)) { "0" }
                @if let Some(first) = labels.first() { text x=(left) y=(h - 4.0) { (first) } }
                @if let Some(last) = labels.last() { text x=(w - 8.0) y=(h - 4.0) text-anchor="end" { (last) } }
                @for (i, s) in series.iter().enumerate() {
                    polyline fill="none" stroke=(colour(i)) stroke-width="2"
                        points=(s.values.iter().enumerate().map(|(j, v)| format!("{:.1},{:.1}", x(j), y(*v))).collect::<Vec<_>>().join(" ")) {}
                }
                @if labels.is_empty() { text x=(w / 2.0) y=(h / 2.0) text-anchor="middle" { "no records in the range" } }
            }
            ul.legend {
                @for (i, s) in series.iter().enumerate() {
                    li { i style=(format!("background:{}", colour(i))) {} (s.name) " (" (fmt(s.values.iter().sum())) ")" }
                }
            }
        }
    }
}

/// A horizontal bar per `(label, value)`.
pub fn bars(title: &str, items: &[(String, f64)]) -> Markup {
    let row = 30.0;
    let (w, label_w) = (600.0, 170.0);
    let h = (items.len().max(1) as f64) * row + 4.0;
    let max = items
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let summary = items
        .iter()
        .map(|(l, v)| format!("{l}: {}", fmt(*v)))
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        svg.chart viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(format!("{title}. {summary}")) {
            @for (i, (label, v)) in items.iter().enumerate() {
                @let top = 2.0 + i as f64 * row;
                text x="0" y=(top + 21.0) { (label) }
                rect x=(label_w) y=(top + 3.0) height=(row - 8.0) width=(((w - label_w - 60.0) * v / max).max(1.0)) fill=(colour(i)) {}
                text x=(label_w + (w - label_w - 60.0) * v / max + 6.0) y=(top + 21.0) { (fmt(*v)) }
            }
            @if items.is_empty() { text x="0" y="22" { "none" } }
        }
    }
}
