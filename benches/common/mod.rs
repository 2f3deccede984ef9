//! What the daemon benchmarks add to the one harness they share with the integration tests
//! (`tests/util`, included here by path: the launcher, `run` as deployed, waits, the stand-ins
//! for Vector): their settings, percentiles, a process's CPU time and memory, the size of a
//! listing, churn in the background, and the experiment of the scale benches (a generated
//! cluster under churn: a window of cost, then probes of latency).

#![allow(dead_code)] // Each bench uses its own part of this module.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fake_nomad::generate::{Shape, cluster};
use fake_nomad::lifecycle::{ClusterChurn, Step};
use fake_nomad::{FakeNomad, Job, Task, TaskGroup};

#[path = "../../tests/util/mod.rs"]
#[allow(dead_code)]
pub mod util;

use util::daemon::Daemon;
use util::vector::SimulatedVector;

/// A bench setting from the environment: `name` parsed, else `default`.
pub fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Waits (polling every 2 ms, for up to 5 minutes) until `condition` holds.
pub fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    util::Patience::DEPLOYED
        .wait(what, condition)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Prints a Markdown table (for BENCHMARKS.md): the header, its alignment row, then `rows`.
pub fn print_table(header: &str, alignment: &str, rows: impl IntoIterator<Item = String>) {
    println!("{header}");
    println!("{alignment}");
    for row in rows {
        println!("{row}");
    }
}

/// The `p`th percentile of sorted durations (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM`, `VmRSS`).
fn status_kib(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} of {pid}"))
}

/// CPU seconds (user + system) and peak RSS in KiB of a process, from /proc.
pub fn usage(pid: i32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_comm = &stat[stat.rfind(')').expect("comm") + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    (
        ticks as f64 / rustix::param::clock_ticks_per_second() as f64,
        status_kib(pid, "VmHWM"),
    )
}

/// The resident set of a process now, in KiB (`VmRSS`).
pub fn current_rss_kib(pid: i32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// The bytes of the node's listing now, as the fake serves it (what one listing costs Nomad).
pub fn listing_bytes(fake: &FakeNomad, node: &str) -> u64 {
    let address = fake
        .address()
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .expect("the fake serves plain HTTP on TCP");
    let (status, body) =
        util::http_get(address, &format!("/v1/node/{node}/allocations")).expect("the fake answers");
    assert_eq!(status, 200, "{body}");
    body.len() as u64
}

/// Runs `churn` over the cluster at `rate` steps a second in its own thread until the returned
/// flag is set; `on_step` sees each step with the cluster after it.
pub fn churn_in_background(
    fake: Arc<FakeNomad>,
    mut churn: ClusterChurn,
    rate: f64,
    on_step: impl Fn(&Step, &fake_nomad::Cluster) + Send + 'static,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::spawn({
        let stop = stop.clone();
        let period = Duration::from_secs_f64(1.0 / rate);
        move || {
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                next += period;
                while Instant::now() < next {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20).min(period));
                }
                fake.update(|c| {
                    let step = churn.step(c);
                    on_step(&step, c);
                });
            }
        }
    });
    (stop, thread)
}

/// A generated cluster (with a `probe` job to place) served, and `run` as deployed against it,
/// reloading a [`SimulatedVector`] in this process.
pub struct Experiment {
    pub fake: Arc<FakeNomad>,
    pub run: Daemon,
    pub vector: SimulatedVector,
    /// From the start of `run` to its first reload.
    pub start: Duration,
}

/// What a window of churn cost, and how many of it make an hour.
pub struct Window {
    pub per_hour: f64,
    /// Response body bytes Nomad sent.
    pub bytes: u64,
    pub requests: usize,
    pub reloads: usize,
    /// CPU seconds `run` used.
    pub cpu_seconds: f64,
}

/// Placement → reload, over the probes.
pub struct Latencies {
    pub p50: Duration,
    pub p99: Duration,
}

/// As the tables show them: `<p50> / <p99>` in whole milliseconds.
impl std::fmt::Display for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let millis = |d: Duration| d.as_secs_f64() * 1e3;
        write!(f, "{:.0} / {:.0}", millis(self.p50), millis(self.p99))
    }
}

impl Experiment {
    /// Generates `shape`, serves it, and starts `run` with `extra` flags; returns once Vector
    /// had its first reload, with the churn to drive over the cluster.
    pub fn start(shape: &Shape, extra: &[&str]) -> (Experiment, ClusterChurn) {
        let mut generated = cluster(shape);
        generated.register_job(
            Job::service("probe").group(TaskGroup::new("g").task(Task::new("t", "exec"))),
        );
        let churn = ClusterChurn::new(&generated, shape.seed);
        let fake = Arc::new(FakeNomad::start(generated));
        let dir = tempfile::tempdir().expect("tempdir");
        let vector = SimulatedVector::listen(Daemon::table_in(dir.path()), "SIGUSR1");
        let mut flags: Vec<String> = extra.iter().map(|f| (*f).to_owned()).collect();
        flags.extend(vector.flags());
        let started = Instant::now();
        let run = Daemon::start_deployed_in(
            dir,
            &fake,
            &flags.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        wait_until("the first reload", || vector.reloads() > 0);
        let experiment = Experiment {
            fake,
            run,
            vector,
            start: started.elapsed(),
        };
        (experiment, churn)
    }

    /// Measures `length` of whatever runs meanwhile (the churn): no probes.
    pub fn window(&self, length: Duration) -> Window {
        let bytes_before = self.fake.bytes_sent();
        let requests_before = self.fake.requests().len();
        let reloads_before = self.vector.reloads();
        let (cpu_before, _) = usage(self.run.pid());
        let started = Instant::now();
        std::thread::sleep(length);
        let elapsed = started.elapsed();
        Window {
            per_hour: 3600.0 / elapsed.as_secs_f64(),
            bytes: self.fake.bytes_sent() - bytes_before,
            requests: self.fake.requests().len() - requests_before,
            reloads: self.vector.reloads() - reloads_before,
            cpu_seconds: usage(self.run.pid()).0 - cpu_before,
        }
    }

    /// Places `probes` probes 2.5 s apart, the `i`th on `node(i)`, each timed from the placement
    /// to the first reload whose table holds it.
    pub fn probe(&self, probes: usize, node: impl Fn(usize) -> String) -> Latencies {
        let mut latencies: Vec<Duration> = (0..probes)
            .map(|i| {
                std::thread::sleep(Duration::from_millis(2_500));
                let node = node(i);
                self.vector.probe(|| {
                    self.fake
                        .update(|c| c.place("default", "probe", "g", &node))
                })
            })
            .collect();
        latencies.sort();
        Latencies {
            p50: percentile(&latencies, 50.0),
            p99: percentile(&latencies, 99.0),
        }
    }
}
