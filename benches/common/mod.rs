//! What the daemon benchmarks add to the one harness they share with the integration tests
//! (`tests/util`, included here by path: the launcher, `run` as deployed, waits, the stand-ins
//! for Vector): their settings, percentiles, a process's CPU time and memory, the size of a
//! listing, and churn in the background.

#![allow(dead_code)] // Each bench uses its own part of this module.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fake_nomad::FakeNomad;
use fake_nomad::lifecycle::{ClusterChurn, Step};

#[path = "../../tests/util/mod.rs"]
#[allow(dead_code)]
pub mod util;

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
