//! The race test, the reason this project exists: does Vector have an allocation's row when the
//! allocation's first log file appears?
//!
//! The fake places allocations; after a simulated client delay the test creates the allocation's
//! directory and its first log file. A simulated Vector in this process loads the table only when
//! the daemon signals it, and only if the file's mtime is newer than the last load (Vector's
//! rule). A miss is counted when, at the moment the log file appears, the loaded table lacks the
//! row; a second count models Vector's discovery instead (its `file` source scans globs every
//! second, so it reads a new file up to a second after it appears). Three runs go in parallel,
//! each telling its own simulated Vector with its own signal: the event stream healthy, blocking
//! queries (`--watch blocking`), and the stream down (the alloc-dir watch alone).

use std::time::{Duration, Instant};

use fake_nomad::StreamFault;

use crate::util::daemon::Daemon;
use crate::util::vector::SimulatedVector;
use crate::util::{fake_and_dir, web_cluster};

/// Client delays, as the issue asks.
const DELAYS_MS: [u64; 5] = [0, 50, 200, 500, 1_000];
/// Allocations per delay.
const PLACEMENTS: usize = 5;
/// Time between placements: twice the default `--min-reload-interval`, so that each placement
/// measures the path from event to loaded row, not the reload rate limit (which, by design,
/// holds a reload back by up to a second after the previous one).
const SPACING: Duration = Duration::from_secs(2);

/// One placement's outcome.
#[derive(Debug)]
struct Outcome {
    delay_ms: u64,
    /// When Vector's glob scan found the file, after it appeared.
    discovery_ms: u64,
    hit_at_appearance: bool,
    hit_at_discovery: bool,
}

/// How long a row may need from placement to Vector's loaded table (debounce MIN of 100 ms,
/// fetch, publish, signal, load), with room for a loaded CI machine.
const ENOUGH_MS: u64 = 300;

/// How the daemon learns of the placements.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// `--watch events`, the stream healthy.
    Events,
    /// `--watch blocking`.
    Blocking,
    /// `--watch events` with the stream stalled: only the alloc-dir watch tells.
    StreamDown,
}

/// Runs every delay in one watch, reloaded with `signal`; returns the outcomes.
fn measure(watch: Watch, signal: &'static str) -> Vec<Outcome> {
    let (mut cluster, node) = web_cluster();
    cluster.events.capacity = 1_000;
    let (fake, dir) = fake_and_dir(cluster);
    let vector = SimulatedVector::listen(Daemon::table_in(dir.path()), signal);
    let mut flags = vector.flags();
    flags.extend([
        "--watch".to_owned(),
        if watch == Watch::Blocking {
            "blocking"
        } else {
            "events"
        }
        .to_owned(),
    ]);
    // The defaults an operator gets, not the harness's quick ones.
    let daemon = Daemon::start_deployed_in(
        dir,
        &fake,
        &flags.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    // Vector loads the table at start; then the daemon's first publish is signalled.
    daemon.wait_until("the first table", || daemon.table.exists());
    vector.load();
    daemon.wait_until("the first reload signal", || vector.reloads() >= 1);
    // Start clear of the reload rate limit (--min-reload-interval 1s).
    std::thread::sleep(SPACING / 2);
    if watch == Watch::StreamDown {
        fake.set_stream(|s| s.fault = Some(StreamFault::Stall));
        fake.update(|c| c.events.recording = false);
    }
    let mut rng = fastrand::Rng::with_seed(17);
    let mut results = Vec::new();
    for delay_ms in DELAYS_MS {
        for _ in 0..PLACEMENTS {
            let placed = Instant::now();
            let id = fake.update(|c| c.place("default", "web", "api", &node));
            std::thread::sleep(Duration::from_millis(delay_ms));
            let logs = daemon.alloc_dir.join(&id).join("alloc/logs");
            std::fs::create_dir_all(&logs).expect("alloc dir");
            std::fs::write(logs.join("server.stdout.0"), b"").expect("log file");
            let hit_at_appearance = vector.has(&id, "server");
            // Vector's next glob scan comes at a random point of its one-second cycle.
            let discovery_ms = rng.u64(0..1_000);
            std::thread::sleep(Duration::from_millis(discovery_ms));
            results.push(Outcome {
                delay_ms,
                discovery_ms,
                hit_at_appearance,
                hit_at_discovery: vector.has(&id, "server"),
            });
            std::thread::sleep(SPACING.saturating_sub(placed.elapsed()));
        }
    }
    drop(daemon);
    results
}

fn report(label: &str, results: &[Outcome]) {
    eprintln!(
        "race ({label}): {PLACEMENTS} allocations per client delay, placed {} s apart",
        SPACING.as_secs()
    );
    for delay_ms in DELAYS_MS {
        let of_delay: Vec<&Outcome> = results.iter().filter(|o| o.delay_ms == delay_ms).collect();
        let at_appearance = of_delay.iter().filter(|o| !o.hit_at_appearance).count();
        let at_discovery = of_delay.iter().filter(|o| !o.hit_at_discovery).count();
        eprintln!(
            "  client delay {delay_ms:>4} ms: {at_appearance}/{} missed when the file appears, {at_discovery}/{} when Vector discovers it",
            of_delay.len(),
            of_delay.len()
        );
    }
}

/// A watch that learns of placements from Nomad: no row is missed once the client takes 200 ms.
fn assert_no_miss_from_200_ms(results: &[Outcome]) {
    for o in results {
        // The placement starts the clock: the row had delay (+ discovery) to arrive.
        if o.delay_ms >= 200 {
            assert!(o.hit_at_appearance, "{o:?}");
        }
        if o.delay_ms + o.discovery_ms >= ENOUGH_MS {
            assert!(o.hit_at_discovery, "{o:?}");
        }
    }
}

#[test]
fn with_the_stream_healthy_no_row_is_missed_from_200_ms_on() {
    let results = measure(Watch::Events, "SIGUSR1");
    report("stream healthy", &results);
    assert_no_miss_from_200_ms(&results);
}

#[test]
fn with_blocking_queries_no_row_is_missed_from_200_ms_on() {
    let results = measure(Watch::Blocking, "SIGWINCH");
    report("blocking queries", &results);
    assert_no_miss_from_200_ms(&results);
}

/// How long the alloc-dir path may need from the directory to Vector's loaded table (inotify,
/// fetch, publish and signal with no debounce or interval), with room for a loaded CI machine.
const URGENT_ENOUGH_MS: u64 = 100;

#[test]
fn with_the_stream_down_the_alloc_dir_watch_labels_by_discovery() {
    let results = measure(Watch::StreamDown, "SIGUSR2");
    report("stream down, alloc-dir watch only", &results);
    for o in &results {
        // Only the directory tells the daemon, at the moment the log file appears: the row
        // had only the discovery time to arrive, and it skips the debounce and the interval.
        assert!(
            !o.hit_at_appearance,
            "{o:?}: the daemon cannot know before the directory"
        );
        if o.discovery_ms >= URGENT_ENOUGH_MS {
            assert!(o.hit_at_discovery, "{o:?}");
        }
    }
}
