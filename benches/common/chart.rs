//! The watch modes' cost as a chart: bytes from Nomad per hour for one node against the
//! cluster's size, `events` against `blocking` against a 30 s poll, one panel per churn. Drawn
//! as SVG from the table `cargo bench --bench scale` prints (and BENCHMARKS.md holds), so that
//! new numbers make a new chart: the bench writes `docs/watch-modes-cost.svg` itself, and a
//! test redraws it from BENCHMARKS.md and fails when the committed file differs.
//!
//! Included by path from `benches/scale.rs` and `tests/docs.rs`; no dependencies.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Where the chart is committed, from the repository's root.
pub const CHART: &str = "docs/watch-modes-cost.svg";

/// The series of the chart: the two watch modes and the poll.
const SERIES: [(&str, &str, &str); 3] = [
    ("events", "#1f77b4", ""),
    ("blocking", "#d62728", ""),
    ("30 s poll", "#7f7f7f", " stroke-dasharray=\"6 4\""),
];

/// One cell of the scale table: nodes, churn (`None` for the poll, which does not depend on
/// it), the series, MB per hour for one node.
#[derive(Clone, Debug, PartialEq)]
pub struct Cost {
    pub nodes: u32,
    pub churn: Option<String>,
    pub series: &'static str,
    pub megabytes_per_hour: f64,
}

/// The cells of the first table in `markdown` whose header starts with `| nodes | churn/s |
/// watch | MB/h for this node`: the rows `cargo bench --bench scale` prints.
pub fn parse_scale_table(markdown: &str) -> Vec<Cost> {
    let mut cells = Vec::new();
    let mut in_table = false;
    for line in markdown.lines() {
        if line.starts_with("| nodes | churn/s | watch | MB/h for this node") {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        if !line.starts_with('|') {
            break;
        }
        let fields: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let (Some(nodes), Some(megabytes)) = (
            fields.first().and_then(|n| n.parse().ok()),
            fields.get(3).and_then(|m| m.parse().ok()),
        ) else {
            continue;
        };
        let series = match fields.get(2).copied() {
            Some("events") => "events",
            Some("blocking") => "blocking",
            Some(poll) if poll.starts_with("30 s poll") => "30 s poll",
            _ => continue,
        };
        let churn = (series != "30 s poll").then(|| fields[1].to_owned());
        cells.push(Cost {
            nodes,
            churn,
            series,
            megabytes_per_hour: megabytes,
        });
    }
    cells
}

// The canvas: three panels side by side, a legend below.
const PANEL_WIDTH: f64 = 250.0;
const PANEL_HEIGHT: f64 = 220.0;
const LEFT: f64 = 70.0;
const TOP: f64 = 80.0;
const GAP: f64 = 30.0;
const WIDTH: f64 = LEFT + 3.0 * PANEL_WIDTH + 2.0 * GAP + 20.0;
const HEIGHT: f64 = TOP + PANEL_HEIGHT + 90.0;

/// The y axis: MB per hour, logarithmic, from `Y_MIN` to `Y_MAX`.
const Y_MIN: f64 = 0.5;
const Y_MAX: f64 = 2000.0;

fn y_of(megabytes: f64) -> f64 {
    let fraction = (megabytes.clamp(Y_MIN, Y_MAX).ln() - Y_MIN.ln()) / (Y_MAX.ln() - Y_MIN.ln());
    TOP + PANEL_HEIGHT * (1.0 - fraction)
}

/// The SVG of `cells`: one panel per churn, in the table's order; in each, a line per series
/// over the cluster sizes (a logarithmic x axis), the poll the same in every panel.
pub fn svg(cells: &[Cost]) -> String {
    let mut churns: Vec<String> = Vec::new();
    for cell in cells {
        if let Some(churn) = &cell.churn
            && !churns.contains(churn)
        {
            churns.push(churn.clone());
        }
    }
    let mut sizes: Vec<u32> = cells.iter().map(|c| c.nodes).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let x_of = |panel: usize, nodes: u32| -> f64 {
        let index = sizes.iter().position(|n| *n == nodes).unwrap_or(0) as f64;
        let span = (sizes.len().max(2) - 1) as f64;
        LEFT + panel as f64 * (PANEL_WIDTH + GAP) + 25.0 + index / span * (PANEL_WIDTH - 50.0)
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH:.0}\" height=\"{HEIGHT:.0}\" viewBox=\"0 0 {WIDTH:.0} {HEIGHT:.0}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        out,
        "<title>Bytes from Nomad per hour for one node, by watch mode, cluster size and churn (cargo bench --bench scale)</title>"
    );
    let _ = writeln!(
        out,
        "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>"
    );
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"24\" font-size=\"15\" font-weight=\"bold\">What one node's run costs Nomad: MB per hour, by cluster size</text>"
    );
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"42\" fill=\"#555555\">30 allocations per node; churn is lifecycle steps per second over the whole cluster (log scales)</text>"
    );
    // The y axis label, once.
    let _ = writeln!(
        out,
        "<text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">MB/h for one node</text>",
        TOP + PANEL_HEIGHT / 2.0,
        TOP + PANEL_HEIGHT / 2.0
    );
    for (panel, churn) in churns.iter().enumerate() {
        let left = LEFT + panel as f64 * (PANEL_WIDTH + GAP);
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\">churn {churn}/s</text>",
            left + PANEL_WIDTH / 2.0,
            TOP - 6.0
        );
        let _ = writeln!(
            out,
            "<rect x=\"{left:.1}\" y=\"{TOP:.1}\" width=\"{PANEL_WIDTH:.1}\" height=\"{PANEL_HEIGHT:.1}\" fill=\"none\" stroke=\"#999999\"/>"
        );
        for tick in [1.0, 10.0, 100.0, 1000.0] {
            let y = y_of(tick);
            let _ = writeln!(
                out,
                "<line x1=\"{left:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/>",
                left + PANEL_WIDTH
            );
            if panel == 0 {
                let _ = writeln!(
                    out,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{tick}</text>",
                    left - 6.0,
                    y + 4.0
                );
            }
        }
        for nodes in &sizes {
            let x = x_of(panel, *nodes);
            let _ = writeln!(
                out,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{nodes}</text>",
                TOP + PANEL_HEIGHT + 16.0
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555555\">nodes in the cluster</text>",
            left + PANEL_WIDTH / 2.0,
            TOP + PANEL_HEIGHT + 34.0
        );
        for (series, colour, dash) in SERIES {
            let points: BTreeMap<u32, f64> = cells
                .iter()
                .filter(|c| {
                    c.series == series && (c.churn.is_none() || c.churn.as_ref() == Some(churn))
                })
                .map(|c| (c.nodes, c.megabytes_per_hour))
                .collect();
            let path: Vec<String> = points
                .iter()
                .map(|(nodes, mb)| format!("{:.1},{:.1}", x_of(panel, *nodes), y_of(*mb)))
                .collect();
            let _ = writeln!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\"{dash}/>",
                path.join(" ")
            );
            for (nodes, mb) in &points {
                let _ = writeln!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{colour}\"><title>{series}, {nodes} nodes, churn {churn}/s: {mb} MB/h</title></circle>",
                    x_of(panel, *nodes),
                    y_of(*mb)
                );
            }
        }
    }
    // The legend.
    let legend_y = TOP + PANEL_HEIGHT + 62.0;
    for (i, (series, colour, dash)) in SERIES.iter().enumerate() {
        let x = LEFT + i as f64 * 250.0;
        let label = match *series {
            "events" => "--watch events (the default)",
            "blocking" => "--watch blocking",
            _ => "30 s poll of the node's listing",
        };
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{legend_y:.1}\" x2=\"{:.1}\" y2=\"{legend_y:.1}\" stroke=\"{colour}\" stroke-width=\"2.5\"{dash}/>",
            x + 28.0
        );
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\">{label}</text>",
            x + 34.0,
            legend_y + 4.0
        );
    }
    out.push_str("</svg>\n");
    out
}
