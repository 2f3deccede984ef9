//! The cluster bench with `--memory-table-url`: `run --scope cluster` pushing into the
//! integration tests' stand-in of Vector's memory table (in this process), with the default
//! `--base-interval` (5m) and debounce. Vector's file reloads are the base publishes only.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fake_nomad::generate::Shape;

use crate::common::util::memory_table::MemoryTable;
use crate::common::util::{Patience, free_address, metrics};
use crate::common::{
    Experiment, Latencies, churn_in_background, current_rss_kib, percentile, print_table, setting,
    usage,
};

/// (allocations, churn per second) on 1,000 nodes; 62,500 allocations make about 100,000 rows
/// (the memory figure), 100,000 allocations about 160,000.
const CELLS: [(usize, f64); 5] = [
    (30_000, 1.0),
    (30_000, 10.0),
    (62_500, 1.0),
    (100_000, 1.0),
    (100_000, 10.0),
];
/// Bases (every 5 minutes) are too rare for the window: the reloads and rows an hour are what
/// the window saw plus the bases' (a reload and a full push each), whatever the churn.
const BASES_PER_HOUR: f64 = 12.0;

struct Cell {
    allocations: usize,
    churn: f64,
    rows: usize,
    reloads_in_window: usize,
    /// Full pushes in the window (a base, or Vector answering again): they dominate the
    /// rows an hour when they fall in it.
    full_pushes_in_window: f64,
    rows_per_hour: f64,
    bytes_per_hour: f64,
    latencies: Latencies,
    cpu_seconds_per_hour: f64,
    rss_mib: f64,
    peak_rss_mib: f64,
}

fn measure(allocations: usize, churn_rate: f64, window: Duration, probes: usize) -> Cell {
    let shape = Shape {
        allocations,
        nodes: super::NODES,
        seed: 33,
    };
    let memory = MemoryTable::start();
    let url = memory.url();
    let listen = free_address().to_string();
    let (experiment, churn) = Experiment::start(
        &shape,
        &[
            "--scope",
            "cluster",
            "--memory-table-url",
            &url,
            "--listen",
            &listen,
        ],
    );
    let Experiment { fake, run, .. } = &experiment;
    // The start's full push is done (it goes part by part, so an empty queue alone does not
    // say so): its rows must not count in the window.
    let base_rows = run.rows().len();
    crate::common::wait_until("the memory table filled", || {
        memory.keys() >= base_rows
            && metrics::total(
                &run.scrape(),
                "nomad_alloc_table_memory_table_queue_rows",
                &[],
            ) == 0.0
    });
    let node_ids: Vec<String> = fake.read(|c| c.nodes.keys().cloned().collect());
    let pushed = |name: &str| metrics::total(&run.scrape(), name, &[]);
    let (rows_before, bytes_before, full_before) = (
        pushed("nomad_alloc_table_memory_table_rows_total"),
        pushed("nomad_alloc_table_memory_table_bytes_total"),
        pushed("nomad_alloc_table_memory_table_full_pushes_total"),
    );
    let (stop, churning) = churn_in_background(fake.clone(), churn, churn_rate, |_, _| {});
    let cost = experiment.window(window);
    let (rows_after, bytes_after, full_after) = (
        pushed("nomad_alloc_table_memory_table_rows_total"),
        pushed("nomad_alloc_table_memory_table_bytes_total"),
        pushed("nomad_alloc_table_memory_table_full_pushes_total"),
    );
    let full_in_window = full_after - full_before;
    let mut latencies: Vec<Duration> = (0..probes)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(2_500));
            let node = node_ids[(i * 397) % node_ids.len()].clone();
            let placed = Instant::now();
            let id = fake.update(|c| c.place("default", "probe", "g", &node));
            Patience::DEPLOYED
                .wait("the probe in the memory table", || {
                    memory.get(&format!("{id}/t")).is_some()
                })
                .unwrap_or_else(|e| panic!("{e}"));
            placed.elapsed()
        })
        .collect();
    latencies.sort();
    // A full listing (every 30 minutes as deployed): the old model and the new listing are
    // both held for a moment, so the peak must include one.
    run.signal(rustix::process::Signal::HUP);
    crate::common::wait_until("a listing applied", || {
        metrics::total(
            &run.scrape(),
            "nomad_alloc_table_resyncs_total",
            &[("reason", "signal")],
        ) >= 1.0
    });
    stop.store(true, Ordering::Relaxed);
    churning.join().expect("churn");
    let (_, peak_rss_kib) = usage(run.pid());
    let rss_kib = current_rss_kib(run.pid());
    Cell {
        allocations,
        churn: churn_rate,
        rows: memory.keys(),
        reloads_in_window: cost.reloads,
        full_pushes_in_window: full_in_window,
        // What the window saw, less any full push in it, plus the bases' full pushes, each
        // about what the start's was (everything before the window).
        rows_per_hour: (rows_after - rows_before - full_in_window * rows_before) * cost.per_hour
            + BASES_PER_HOUR * rows_before,
        bytes_per_hour: (bytes_after - bytes_before - full_in_window * bytes_before)
            * cost.per_hour
            + BASES_PER_HOUR * bytes_before,
        latencies: Latencies {
            p50: percentile(&latencies, 50.0),
            p99: percentile(&latencies, 99.0),
        },
        cpu_seconds_per_hour: cost.cpu_seconds * cost.per_hour,
        rss_mib: rss_kib as f64 / 1024.0,
        peak_rss_mib: peak_rss_kib as f64 / 1024.0,
    }
}

/// A cell's row of the push table in BENCHMARKS.md.
fn row(c: &Cell) -> String {
    format!(
        "| {} | {} | {} | {} + {:.0} | {:.0} | {:.0} | {:.1} | {} | {:.1} | {:.1} / {:.1} |",
        c.allocations,
        c.churn,
        c.rows,
        c.reloads_in_window,
        BASES_PER_HOUR,
        c.full_pushes_in_window,
        c.rows_per_hour,
        c.bytes_per_hour / 1e6,
        c.latencies,
        c.cpu_seconds_per_hour,
        c.rss_mib,
        c.peak_rss_mib,
    )
}

/// Runs the push cells (`NAT_PUSH_CELL=<i>` runs one) and prints their table.
pub fn table(window: Duration, probes: usize) {
    let only = setting("NAT_PUSH_CELL", usize::MAX);
    let mut cells = Vec::new();
    for (i, (allocations, churn)) in CELLS.into_iter().enumerate() {
        if only != usize::MAX && only != i {
            continue;
        }
        let cell = measure(allocations, churn, window, probes);
        eprintln!("push: {}", row(&cell));
        cells.push(cell);
    }
    print_table(
        "| allocations (1,000 nodes) | churn/s | rows in the memory table | file reloads in the window + per hour | full pushes in the window | rows pushed/h | MB pushed/h | placement → acknowledged push p50 / p99 ms | CPU s/h | RSS MiB at the end / peak |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        cells.iter().map(row),
    );
}
