//! What the daemon benchmarks share: starting `run` against the fake, waiting, percentiles and
//! a process's CPU time and peak RSS.

#![allow(dead_code)] // Each bench uses its own part of this module.

use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_nomad::FakeNomad;
use fake_nomad::lifecycle::{ClusterChurn, Step};

#[path = "../../tests/util/launch.rs"]
pub mod launch;

/// Starts the release `run` against `fake`, publishing into `dir`, with `extra` flags; in
/// node scope with an (empty) alloc dir in `dir`.
pub fn start_run(fake: &FakeNomad, dir: &std::path::Path, extra: &[&str]) -> Child {
    let alloc_dir = dir.join("alloc");
    std::fs::create_dir_all(&alloc_dir).expect("alloc dir");
    let mut command = launch::command();
    command.args(["run", "--alloc-dir"]).arg(alloc_dir);
    spawn_run(command, fake, dir, extra)
}

/// Starts the release `run --scope cluster` against `fake`, publishing into `dir` (no alloc
/// dir: the cluster scope has none).
pub fn start_cluster_run(fake: &FakeNomad, dir: &std::path::Path, extra: &[&str]) -> Child {
    let mut command = launch::command();
    command.args(["run", "--scope", "cluster"]);
    spawn_run(command, fake, dir, extra)
}

fn spawn_run(
    mut command: std::process::Command,
    fake: &FakeNomad,
    dir: &std::path::Path,
    extra: &[&str],
) -> Child {
    command
        .env("NOMAD_ADDR", fake.address())
        .env("RUST_LOG", "warn")
        .arg("-o")
        .arg(dir.join("allocs.csv"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn run")
}

/// A bench setting from the environment: `name` parsed, else `default`.
pub fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Polls `condition` every 2 ms for up to a minute.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The `p`th percentile of sorted durations (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

/// CPU seconds (user + system) and peak RSS in KiB of a process, from /proc.
pub fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_comm = &stat[stat.rfind(')').expect("comm") + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    (
        ticks as f64 / rustix::param::clock_ticks_per_second() as f64,
        hwm,
    )
}

/// The resident set of a process now, in KiB (`VmRSS`).
pub fn current_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Calls a function for every SIGUSR1 this process gets, standing in for Vector's reload.
pub struct SignalListener {
    handle: signal_hook::iterator::Handle,
    thread: std::thread::JoinHandle<()>,
}

impl SignalListener {
    pub fn start(on_signal: impl Fn() + Send + 'static) -> SignalListener {
        let mut signals =
            signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1]).expect("handler");
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            for _ in signals.forever() {
                on_signal();
            }
        });
        SignalListener { handle, thread }
    }

    pub fn stop(self) {
        self.handle.close();
        self.thread.join().expect("listener");
    }
}

/// Vector as the benches see it: the reload signals the bench process got, each with whether
/// the table held the probe allocation then.
pub struct SimulatedVector {
    pub table: std::path::PathBuf,
    pub probe: Mutex<String>,
    pub loads: Mutex<Vec<(Instant, bool)>>,
}

impl SimulatedVector {
    pub fn new(table: std::path::PathBuf) -> SimulatedVector {
        SimulatedVector {
            table,
            probe: Mutex::new(String::new()),
            loads: Mutex::new(Vec::new()),
        }
    }

    /// A reload signal arrived.
    pub fn reload(&self) {
        let probe = self.probe.lock().expect("lock").clone();
        let has = !probe.is_empty()
            && std::fs::read_to_string(&self.table).is_ok_and(|t| t.contains(&probe));
        self.loads.lock().expect("lock").push((Instant::now(), has));
    }

    /// Reload signals so far.
    pub fn count(&self) -> usize {
        self.loads.lock().expect("lock").len()
    }

    /// Places a probe with `place` and returns the time to the first reload whose table holds it.
    pub fn probe(&self, place: impl FnOnce() -> String) -> Duration {
        let placed = Instant::now();
        *self.probe.lock().expect("lock") = place();
        let loaded = || {
            self.loads
                .lock()
                .expect("lock")
                .iter()
                .find(|(at, has)| *has && *at >= placed)
                .map(|(at, _)| *at)
        };
        wait_until("the probe's reload", || loaded().is_some());
        loaded().expect("a load") - placed
    }
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
