//! Benchmarks of `run` against the fake Nomad, with the release binary:
//! - `latency`: time from a placement (the fake's PlanResult) to Vector's reload signal, p50 and
//!   p99, with 100 and 1,000 allocations on the node and the operator defaults;
//! - `churn`: CPU time and peak RSS of `run` over minutes of lifecycle churn, and the requests
//!   and response bytes it costs Nomad, next to a 30 s poll of the node listing (the
//!   Vector-only recipe);
//! - `idle`: CPU and RSS of `run` at idle with and without the HTTP listener (`--listen`).
//!
//! `cargo bench --bench daemon` runs all three (`-- latency`, `-- idle` or `-- churn` runs one);
//! `NAT_CHURN_MINUTES` sets the churn duration (default 10), `NAT_IDLE_MINUTES` the idle one
//! (default 5). Results go in BENCHMARKS.md.

use std::time::{Duration, Instant};

use fake_nomad::generate::{Shape, cluster};
use fake_nomad::lifecycle::Lifecycle;
use fake_nomad::{FakeNomad, Job, Task, TaskGroup};

mod common;

use common::util::daemon::Daemon;
use common::util::vector::SimulatedVector;
use common::util::{free_address, http_get};
use common::{current_rss_kib, listing_bytes, percentile, usage, wait_until};

/// Placement → reload signal, `samples` times, with `allocations` already on the node.
fn latency(allocations: usize, samples: usize) {
    let mut generated = cluster(&Shape {
        allocations,
        nodes: 1,
        seed: 5,
    });
    generated.register_job(
        Job::service("probe").group(TaskGroup::new("g").task(Task::new("t", "exec"))),
    );
    let node = generated.agent.client_node_id.clone().expect("agent node");
    let fake = FakeNomad::start(generated);
    // The daemon signals this process, standing in for Vector.
    let dir = tempfile::tempdir().expect("tempdir");
    let vector = SimulatedVector::listen(Daemon::table_in(dir.path()), "SIGUSR1");
    let flags = vector.flags();
    let run = Daemon::start_deployed_in(
        dir,
        &fake,
        &flags.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    wait_until("the first reload", || vector.reloads() > 0);
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        // Clear of the one-second reload rate limit.
        std::thread::sleep(Duration::from_millis(1_100));
        let before = vector.reloads();
        let placed = Instant::now();
        fake.update(|c| c.place("default", "probe", "g", &node));
        wait_until("the reload", || vector.reloads() > before);
        latencies.push(vector.reload_times()[before] - placed);
    }
    drop(run);
    latencies.sort();
    println!(
        "latency/{allocations} allocations: placement to reload signal p50 {:.1} ms, p99 {:.1} ms, min {:.1} ms, max {:.1} ms ({samples} samples, --wait 100ms:1s)",
        percentile(&latencies, 50.0).as_secs_f64() * 1e3,
        percentile(&latencies, 99.0).as_secs_f64() * 1e3,
        latencies[0].as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
    );
}

/// `minutes` of churn at two lifecycle steps per second on a node with 100 allocations.
fn churn(minutes: u64) {
    let mut generated = cluster(&Shape {
        allocations: 100,
        nodes: 1,
        seed: 9,
    });
    let mut script = Lifecycle::new(&mut generated, 9);
    let fake = FakeNomad::start(generated);
    let run = Daemon::start_deployed(&fake, &["--reload", "none"]);
    run.wait_until("the first table", || !run.rows().is_empty());
    let requests_before = fake.requests().len();
    let bytes_before = fake.bytes_sent();
    let started = Instant::now();
    let mut steps = 0;
    while started.elapsed() < Duration::from_secs(minutes * 60) {
        std::thread::sleep(Duration::from_millis(500));
        fake.update(|c| script.step(c));
        steps += 1;
    }
    let elapsed = started.elapsed();
    let (cpu_seconds, peak_rss_kib) = usage(run.pid());
    let requests = fake.requests().len() - requests_before;
    let bytes = fake.bytes_sent() - bytes_before;
    // What one 30 s poll of the node listing costs now.
    let node = fake.read(|c| c.agent.client_node_id.clone().expect("node"));
    let listing_bytes = listing_bytes(&fake, &node);
    let live = fake.read(|c| c.allocations.values().filter(|a| a.node_id == node).count());
    drop(run);
    let per_hour = 3600.0 / elapsed.as_secs_f64();
    println!(
        "churn: {steps} lifecycle steps in {:.0} s on a node with {live} allocations at the end",
        elapsed.as_secs_f64()
    );
    println!(
        "churn: run used {cpu_seconds:.2} s of CPU ({:.3} % of one core), peak RSS {:.1} MiB",
        cpu_seconds / elapsed.as_secs_f64() * 100.0,
        peak_rss_kib as f64 / 1024.0
    );
    println!(
        "churn: run cost Nomad {:.0} requests and {:.2} MB per hour; a 30 s poll costs 120 requests and {:.2} MB per hour ({listing_bytes} bytes a listing)",
        requests as f64 * per_hour,
        bytes as f64 * per_hour / 1e6,
        120.0 * listing_bytes as f64 / 1e6,
    );
}

/// `minutes` at idle (a node with 100 allocations, no change), three `run`s side by side:
/// without a listener, with one never scraped, and with one scraped every 15 s as Prometheus
/// does. CPU time and RSS of each.
fn idle(minutes: u64) {
    let generated = cluster(&Shape {
        allocations: 100,
        nodes: 1,
        seed: 11,
    });
    let fake = FakeNomad::start(generated);
    let (quiet, scraped) = (free_address(), free_address());
    let runs = [
        (
            "no listener",
            Daemon::start_deployed(&fake, &["--reload", "none"]),
        ),
        (
            "listener, never scraped",
            Daemon::start_deployed(&fake, &["--reload", "none", "--listen", &quiet.to_string()]),
        ),
        (
            "listener, scraped every 15 s",
            Daemon::start_deployed(
                &fake,
                &["--reload", "none", "--listen", &scraped.to_string()],
            ),
        ),
    ];
    for (_, run) in &runs {
        run.wait_until("the first table", || !run.rows().is_empty());
    }
    let before: Vec<(f64, u64)> = runs.iter().map(|(_, run)| usage(run.pid())).collect();
    let started = Instant::now();
    let mut scrapes = 0;
    while started.elapsed() < Duration::from_secs(minutes * 60) {
        http_get(scraped, "/metrics").expect("the listener answers");
        scrapes += 1;
        std::thread::sleep(Duration::from_secs(15));
    }
    let elapsed = started.elapsed().as_secs_f64();
    for ((name, run), (cpu_before, _)) in runs.into_iter().zip(before) {
        let (cpu, peak) = usage(run.pid());
        let rss = current_rss_kib(run.pid());
        println!(
            "idle: {name:<30} CPU {:.3} s in {elapsed:.0} s ({:.4} % of a core), RSS {:.1} MiB, peak {:.1} MiB",
            cpu - cpu_before,
            (cpu - cpu_before) / elapsed * 100.0,
            rss as f64 / 1024.0,
            peak as f64 / 1024.0
        );
    }
    println!("idle: {scrapes} scrapes");
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    if runs("latency") {
        latency(100, 50);
        latency(1_000, 50);
    }
    if runs("idle") {
        idle(common::setting("NAT_IDLE_MINUTES", 5));
    }
    if runs("churn") {
        churn(common::setting("NAT_CHURN_MINUTES", 10));
    }
}
