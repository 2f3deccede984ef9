//! One `run` on one node of a simulated cluster of 10, 100 and 1,000 nodes (30 allocations
//! each) at a cluster-wide churn of 0.1, 1 and 10 lifecycle steps per second, in each watch
//! mode; beside them the 30 s poll of the Vector-only recipe. For each cell:
//! - the bytes and requests Nomad serves this node's `run` per hour (× nodes = server egress),
//!   measured over a window of churn without probes, plus the periodic listings the window is
//!   too short to see (events: a full resync every 30 minutes; blocking: a listing at the end of
//!   every 5-minute wait in which the node did not change, 12 × P(no change in 5 min));
//! - placement → reload latency, p50 and p99, for probe placements on the node (timed apart
//!   from the window, so that the probes do not count as the node's churn);
//! - CPU seconds per hour and peak RSS of `run`.
//!
//! `cargo bench --bench scale`; `NAT_SCALE_SECONDS` sets the window (default 60),
//! `NAT_SCALE_PROBES` the probes per cell (default 8). Results go in BENCHMARKS.md; the chart of
//! the bytes per hour is redrawn from the same table into `docs/watch-modes-cost.svg`.

#[path = "common/chart.rs"]
mod chart;
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_nomad::generate::Shape;

use common::{
    Experiment, Latencies, churn_in_background, listing_bytes, print_table, setting, usage,
};

const ALLOCS_PER_NODE: usize = 30;
const NODES: [usize; 3] = [10, 100, 1_000];
const CHURN: [f64; 3] = [0.1, 1.0, 10.0];
const MODES: [&str; 2] = ["events", "blocking"];
/// The defaults the figures assume: a full listing every 30 minutes (events), a blocking wait
/// of 5 minutes.
const RESYNCS_PER_HOUR: f64 = 2.0;
const BLOCKING_WAIT_SECONDS: f64 = 300.0;

/// One cell's results.
struct Cell {
    nodes: usize,
    churn: f64,
    mode: &'static str,
    bytes_per_hour: f64,
    requests_per_hour: f64,
    latencies: Latencies,
    cpu_seconds_per_hour: f64,
    peak_rss_mib: f64,
    own_changes_per_hour: f64,
    listing_bytes: u64,
}

fn measure(
    nodes: usize,
    churn_rate: f64,
    mode: &'static str,
    window: Duration,
    probes: usize,
) -> Cell {
    let shape = Shape {
        allocations: nodes * ALLOCS_PER_NODE,
        nodes,
        seed: 21,
    };
    let (experiment, churn) = Experiment::start(&shape, &["--watch", mode]);
    let Experiment { fake, run, .. } = &experiment;
    let node = fake.read(|c| c.agent.client_node_id.clone().expect("agent node"));
    // Churn over the whole cluster, in its own thread, for the window and the probes.
    let own_changes = Arc::new(Mutex::new(0u64));
    let (stop, churning) = churn_in_background(fake.clone(), churn, churn_rate, {
        let (own_changes, node) = (own_changes.clone(), node.clone());
        move |step, c| {
            let touched_own = step
                .alloc_id()
                .and_then(|id| c.allocations.get(id))
                .is_some_and(|a| a.node_id == node);
            if touched_own {
                *own_changes.lock().expect("lock") += 1;
            }
        }
    });
    // The window: bytes, requests and CPU, without probes.
    let own_before = *own_changes.lock().expect("lock");
    let cost = experiment.window(window);
    let own = *own_changes.lock().expect("lock") - own_before;
    // The probes: placement → the first reload whose table holds the probe.
    let latencies = experiment.probe(probes, |_| node.clone());
    stop.store(true, Ordering::Relaxed);
    churning.join().expect("churn");
    let (_, peak_rss_kib) = usage(run.pid());
    let listing_bytes = listing_bytes(fake, &node);
    let own_changes_per_hour = own as f64 * cost.per_hour;
    // What the window is too short to see.
    let periodic = match mode {
        "events" => RESYNCS_PER_HOUR * listing_bytes as f64,
        _ => {
            let quiet_wait = (-own_changes_per_hour / 3600.0 * BLOCKING_WAIT_SECONDS).exp();
            3600.0 / BLOCKING_WAIT_SECONDS * quiet_wait * listing_bytes as f64
        }
    };
    Cell {
        nodes,
        churn: churn_rate,
        mode,
        bytes_per_hour: cost.bytes as f64 * cost.per_hour + periodic,
        requests_per_hour: cost.requests as f64 * cost.per_hour,
        latencies,
        cpu_seconds_per_hour: cost.cpu_seconds * cost.per_hour,
        peak_rss_mib: peak_rss_kib as f64 / 1024.0,
        own_changes_per_hour,
        listing_bytes,
    }
}

/// A cell's row of the table in BENCHMARKS.md.
fn row(c: &Cell) -> String {
    format!(
        "| {} | {} | {} | {:.2} | {:.2} | {:.0} | {} | {:.1} | {:.1} |",
        c.nodes,
        c.churn,
        c.mode,
        c.bytes_per_hour / 1e6,
        c.bytes_per_hour * c.nodes as f64 / 1e9,
        c.requests_per_hour,
        c.latencies,
        c.cpu_seconds_per_hour,
        c.peak_rss_mib,
    )
}

fn main() {
    let window = Duration::from_secs(setting("NAT_SCALE_SECONDS", 60));
    let probes = setting("NAT_SCALE_PROBES", 8);
    let mut cells = Vec::new();
    let mut listing_by_size = BTreeMap::new();
    for nodes in NODES {
        for churn in CHURN {
            for mode in MODES {
                let cell = measure(nodes, churn, mode, window, probes);
                eprintln!(
                    "scale: {} (own changes {:.0}/h)",
                    row(&cell),
                    cell.own_changes_per_hour
                );
                listing_by_size.insert(nodes, cell.listing_bytes);
                cells.push(cell);
            }
        }
    }
    let polls = listing_by_size.into_iter().map(|(nodes, listing)| {
        format!(
            "| {nodes} | any | 30 s poll (Vector only) | {:.2} | {:.2} | 120 | up to 30 000 (the poll period) | | |",
            120.0 * listing as f64 / 1e6,
            120.0 * listing as f64 * nodes as f64 / 1e9,
        )
    });
    let header = "| nodes | churn/s | watch | MB/h for this node | server egress GB/h (× nodes) | requests/h | reload p50 / p99 ms | CPU s/h | peak RSS MiB |";
    let rows: Vec<String> = cells.iter().map(row).chain(polls).collect();
    print_table(
        header,
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
        rows.iter().cloned(),
    );
    // The chart, from the very table printed above.
    let table = std::iter::once(header.to_owned())
        .chain(rows)
        .collect::<Vec<_>>()
        .join("\n");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(chart::CHART);
    std::fs::write(&path, chart::svg(&chart::parse_scale_table(&table))).expect("the chart");
    eprintln!("scale: the chart is redrawn in {}", path.display());
}
