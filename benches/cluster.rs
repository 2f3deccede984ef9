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
//! `cargo bench --bench cluster`; `NAT_SCALE_SECONDS` sets the window (default 60),
//! `NAT_SCALE_PROBES` the probes per cell (default 8), `NAT_CLUSTER_CELL` runs one cell (0, 1
//! or 2). Results go in BENCHMARKS.md.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fake_nomad::generate::{Shape, cluster};
use fake_nomad::lifecycle::ClusterChurn;
use fake_nomad::{FakeNomad, Job, Task, TaskGroup};

use common::util::daemon::Daemon;
use common::util::vector::SimulatedVector;
use common::{churn_in_background, current_rss_kib, percentile, setting, usage, wait_until};

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
    p50: Duration,
    p99: Duration,
    cpu_seconds_per_hour: f64,
    peak_rss_mib: f64,
    rss_mib: f64,
    rows: usize,
    table_bytes: u64,
    reloads_per_hour: f64,
}

fn measure(allocations: usize, churn_rate: f64, window: Duration, probes: usize) -> Cell {
    let mut generated = cluster(&Shape {
        allocations,
        nodes: NODES,
        seed: 33,
    });
    generated.register_job(
        Job::service("probe").group(TaskGroup::new("g").task(Task::new("t", "exec"))),
    );
    let node_ids: Vec<String> = generated.nodes.keys().cloned().collect();
    let churn = ClusterChurn::new(&generated, 33);
    let fake = Arc::new(FakeNomad::start(generated));
    let dir = tempfile::tempdir().expect("tempdir");
    let table = Daemon::table_in(dir.path());
    let vector = SimulatedVector::listen(table.clone(), "SIGUSR1");
    let mut flags = vec!["--scope".to_owned(), "cluster".to_owned()];
    flags.extend(vector.flags());
    let started = Instant::now();
    let run = Daemon::start_deployed_in(
        dir,
        &fake,
        &flags.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    wait_until("the first reload", || vector.reloads() > 0);
    let start_seconds = started.elapsed().as_secs_f64();
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
    let (stop, churning) = churn_in_background(fake.clone(), churn, churn_rate, |_, _| {});
    let bytes_before = fake.bytes_sent();
    let requests_before = fake.requests().len();
    let reloads_before = vector.reloads();
    let (cpu_before, _) = usage(run.pid());
    let window_start = Instant::now();
    std::thread::sleep(window);
    let elapsed = window_start.elapsed();
    let bytes = fake.bytes_sent() - bytes_before;
    let requests = fake.requests().len() - requests_before;
    let reloads = vector.reloads() - reloads_before;
    let (cpu_after, _) = usage(run.pid());
    let mut latencies = Vec::with_capacity(probes);
    for i in 0..probes {
        std::thread::sleep(Duration::from_millis(2_500));
        let node = &node_ids[(i * 397) % node_ids.len()];
        latencies.push(vector.probe(|| fake.update(|c| c.place("default", "probe", "g", node))));
    }
    stop.store(true, Ordering::Relaxed);
    churning.join().expect("churn");
    let (_, peak_rss_kib) = usage(run.pid());
    let rss_kib = current_rss_kib(run.pid());
    let content = std::fs::read(&table).expect("table");
    let rows = content.iter().filter(|b| **b == b'\n').count() - 1;
    drop(run);
    latencies.sort();
    let per_hour = 3600.0 / elapsed.as_secs_f64();
    Cell {
        allocations,
        churn: churn_rate,
        start_seconds,
        start_bytes,
        job_fetches,
        listing_bytes,
        bytes_per_hour: bytes as f64 * per_hour + RESYNCS_PER_HOUR * listing_bytes as f64,
        requests_per_hour: requests as f64 * per_hour,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        cpu_seconds_per_hour: (cpu_after - cpu_before) * per_hour,
        peak_rss_mib: peak_rss_kib as f64 / 1024.0,
        rss_mib: rss_kib as f64 / 1024.0,
        rows,
        table_bytes: content.len() as u64,
        reloads_per_hour: reloads as f64 * per_hour,
    }
}

fn main() {
    let window = Duration::from_secs(setting("NAT_SCALE_SECONDS", 60));
    let probes = setting("NAT_SCALE_PROBES", 8);
    let only = setting("NAT_CLUSTER_CELL", usize::MAX);
    let mut cells = Vec::new();
    for (i, (allocations, churn)) in CELLS.into_iter().enumerate() {
        if only != usize::MAX && only != i {
            continue;
        }
        let c = measure(allocations, churn, window, probes);
        eprintln!(
            "cluster: {allocations} allocations, {churn}/s: start {:.1} s / {:.1} MB / {} job fetches, {:.1} MB/h, p50 {:.0} ms, p99 {:.0} ms, CPU {:.1} s/h, RSS {:.1} MiB (peak {:.1}), {} rows, {:.1} MB, {:.0} reloads/h",
            c.start_seconds,
            c.start_bytes as f64 / 1e6,
            c.job_fetches,
            c.bytes_per_hour / 1e6,
            c.p50.as_secs_f64() * 1e3,
            c.p99.as_secs_f64() * 1e3,
            c.cpu_seconds_per_hour,
            c.rss_mib,
            c.peak_rss_mib,
            c.rows,
            c.table_bytes as f64 / 1e6,
            c.reloads_per_hour,
        );
        cells.push(c);
    }
    println!(
        "| allocations (1,000 nodes) | churn/s | start: s / MB / job fetches | full listing MB | MB/h from Nomad | requests/h | reload p50 / p99 ms | CPU s/h | RSS MiB at the end / peak | table rows / MB | reloads/h |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in &cells {
        println!(
            "| {} | {} | {:.1} / {:.1} / {} | {:.1} | {:.1} | {:.0} | {:.0} / {:.0} | {:.1} | {:.1} / {:.1} | {} / {:.1} | {:.0} |",
            c.allocations,
            c.churn,
            c.start_seconds,
            c.start_bytes as f64 / 1e6,
            c.job_fetches,
            c.listing_bytes as f64 / 1e6,
            c.bytes_per_hour / 1e6,
            c.requests_per_hour,
            c.p50.as_secs_f64() * 1e3,
            c.p99.as_secs_f64() * 1e3,
            c.cpu_seconds_per_hour,
            c.rss_mib,
            c.peak_rss_mib,
            c.rows,
            c.table_bytes as f64 / 1e6,
            c.reloads_per_hour,
        );
    }
}
