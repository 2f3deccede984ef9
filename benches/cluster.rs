//! `run --scope cluster` on a simulated cluster of 1,000 nodes, the exporter of an aggregator
//! Vector. For each cell:
//! - start-up: the time to the first reload and the bytes it took (every node, every page of
//!   stubs, one fetch per job version);
//! - the bytes and requests Nomad serves it per hour under cluster-wide churn (one subscriber:
//!   this is the whole server egress), measured over a window, plus the two full listings an
//!   hour (`--resync-interval` 30m) the window is too short to see;
//! - placement → reload latency, p50 and p99, for probe placements on random nodes;
//! - CPU seconds per hour and peak RSS;
//! - the table the aggregator loads: rows, bytes, and reloads per hour at that churn.
//!
//! Then the same with `--memory-table-url` (changes pushed into a stand-in of Vector's memory
//! table, the file a base every 5 minutes): file reloads per hour, rows and bytes pushed per
//! hour, placement → acknowledged push latency, CPU and memory.
//!
//! `cargo bench --bench cluster`; `NAT_SCALE_SECONDS` sets the window (default 60),
//! `NAT_SCALE_PROBES` the probes per cell (default 8), `NAT_CLUSTER_CELL` runs one cell of the
//! file table (0, 1 or 2), `NAT_PUSH_CELL` one of the push (0 to 4); `NAT_CLUSTER_TABLES`
//! picks `file`, `push` or both (default). Results go in BENCHMARKS.md.

#[path = "cluster/push.rs"]
mod push;

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use fake_nomad::generate::Shape;

use common::{
    Experiment, Latencies, churn_in_background, current_rss_kib, print_table, setting, usage,
};

const NODES: usize = 1_000;
/// (allocations, churn per second): 30 allocations a node at two churns, and about 100,000
/// rows (1.6 tasks an allocation) for the memory figure. `NAT_CLUSTER_CELL=<i>` runs one.
const CELLS: [(usize, f64); 3] = [(30_000, 1.0), (30_000, 10.0), (62_500, 1.0)];
/// `--resync-interval` 30m: two full listings an hour.
const RESYNCS_PER_HOUR: f64 = 2.0;

struct Cell {
    allocations: usize,
    churn: f64,
    start_seconds: f64,
    start_bytes: u64,
    job_fetches: usize,
    listing_bytes: u64,
    bytes_per_hour: f64,
    requests_per_hour: f64,
    latencies: Latencies,
    cpu_seconds_per_hour: f64,
    peak_rss_mib: f64,
    rss_mib: f64,
    rows: usize,
    table_bytes: u64,
    reloads_per_hour: f64,
}

fn measure(allocations: usize, churn_rate: f64, window: Duration, probes: usize) -> Cell {
    let shape = Shape {
        allocations,
        nodes: NODES,
        seed: 33,
    };
    let (experiment, churn) = Experiment::start(&shape, &["--scope", "cluster"]);
    let Experiment { fake, run, .. } = &experiment;
    let start_bytes = fake.bytes_sent();
    let routes = fake.bytes_by_route();
    let listing_bytes = ["/v1/allocations", "/v1/nodes"]
        .iter()
        .map(|r| routes.get(*r).copied().unwrap_or(0))
        .sum();
    let job_fetches = fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/allocation/"))
        .count();
    let node_ids: Vec<String> = fake.read(|c| c.nodes.keys().cloned().collect());
    let (stop, churning) = churn_in_background(fake.clone(), churn, churn_rate, |_, _| {});
    let cost = experiment.window(window);
    let latencies = experiment.probe(probes, |i| node_ids[(i * 397) % node_ids.len()].clone());
    stop.store(true, Ordering::Relaxed);
    churning.join().expect("churn");
    let (_, peak_rss_kib) = usage(run.pid());
    let rss_kib = current_rss_kib(run.pid());
    let content = std::fs::read(&run.table).expect("table");
    let rows = content.iter().filter(|b| **b == b'\n').count() - 1;
    Cell {
        allocations,
        churn: churn_rate,
        start_seconds: experiment.start.as_secs_f64(),
        start_bytes,
        job_fetches,
        listing_bytes,
        bytes_per_hour: cost.bytes as f64 * cost.per_hour + RESYNCS_PER_HOUR * listing_bytes as f64,
        requests_per_hour: cost.requests as f64 * cost.per_hour,
        latencies,
        cpu_seconds_per_hour: cost.cpu_seconds * cost.per_hour,
        peak_rss_mib: peak_rss_kib as f64 / 1024.0,
        rss_mib: rss_kib as f64 / 1024.0,
        rows,
        table_bytes: content.len() as u64,
        reloads_per_hour: cost.reloads as f64 * cost.per_hour,
    }
}

/// A cell's row of the table in BENCHMARKS.md.
fn row(c: &Cell) -> String {
    format!(
        "| {} | {} | {:.1} / {:.1} / {} | {:.1} | {:.1} | {:.0} | {} | {:.1} | {:.1} / {:.1} | {} / {:.1} | {:.0} |",
        c.allocations,
        c.churn,
        c.start_seconds,
        c.start_bytes as f64 / 1e6,
        c.job_fetches,
        c.listing_bytes as f64 / 1e6,
        c.bytes_per_hour / 1e6,
        c.requests_per_hour,
        c.latencies,
        c.cpu_seconds_per_hour,
        c.rss_mib,
        c.peak_rss_mib,
        c.rows,
        c.table_bytes as f64 / 1e6,
        c.reloads_per_hour,
    )
}

fn main() {
    let window = Duration::from_secs(setting("NAT_SCALE_SECONDS", 60));
    let probes = setting("NAT_SCALE_PROBES", 8);
    let tables = setting("NAT_CLUSTER_TABLES", "file,push".to_owned());
    if tables.contains("file") {
        file_table(window, probes);
    }
    if tables.contains("push") {
        push::table(window, probes);
    }
}

fn file_table(window: Duration, probes: usize) {
    let only = setting("NAT_CLUSTER_CELL", usize::MAX);
    let mut cells = Vec::new();
    for (i, (allocations, churn)) in CELLS.into_iter().enumerate() {
        if only != usize::MAX && only != i {
            continue;
        }
        let cell = measure(allocations, churn, window, probes);
        eprintln!("cluster: {}", row(&cell));
        cells.push(cell);
    }
    print_table(
        "| allocations (1,000 nodes) | churn/s | start: s / MB / job fetches | full listing MB | MB/h from Nomad | requests/h | reload p50 / p99 ms | CPU s/h | RSS MiB at the end / peak | table rows / MB | reloads/h |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        cells.iter().map(row),
    );
}
