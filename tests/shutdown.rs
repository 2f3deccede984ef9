//! What `run` owes Vector when it stops, and what a restart owes it after a crash: SIGTERM
//! publishes a pending change at once and delivers an owed reload before exiting; a table that
//! was published but never announced (kill -9 between the publish and its reload) is announced
//! once by the next `run` or the next `dump`; nothing is announced twice.

use std::time::{Duration, Instant};

use fake_nomad::FakeNomad;
use rustix::process::Signal;

use crate::util::daemon::Daemon;
use crate::util::vector::SignalRecorder;
use crate::util::{bin_at, dump, web_cluster};

/// The fake with one placed allocation, and a stand-in Vector in its own directory.
fn setup() -> (FakeNomad, String, SignalRecorder, tempfile::TempDir) {
    let (cluster, node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    let vector_dir = tempfile::tempdir().expect("tempdir");
    let vector = SignalRecorder::spawn(vector_dir.path(), "vector");
    (fake, node, vector, vector_dir)
}

fn place(fake: &FakeNomad, node: &str) -> String {
    fake.update(|c| c.place("default", "web", "api", node))
}

/// `run` with a long reload interval, once its first table is announced.
fn running(
    fake: &FakeNomad,
    vector: &SignalRecorder,
    dir: tempfile::TempDir,
    extra: &[&str],
) -> Daemon {
    let pid = vector.pid().to_string();
    let mut args = vec!["--vector-pid", &pid];
    args.extend_from_slice(extra);
    let daemon = Daemon::start_in(dir, fake, &args);
    let first = fake.read(|c| c.allocations.keys().next().expect("one").clone());
    daemon.wait_for_alloc(&first);
    daemon
}

/// `run` with `extra` flags (a `--min-reload-interval`) and its first table announced, then a
/// placement published whose reload the interval holds back.
fn owing_a_reload(extra: &[&str]) -> (FakeNomad, Daemon, SignalRecorder, tempfile::TempDir) {
    let (fake, node, vector, vector_dir) = setup();
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = running(&fake, &vector, dir, extra);
    vector.wait_for_count("HUP", 1);
    let new = place(&fake, &node);
    daemon.wait_for_alloc(&new);
    (fake, daemon, vector, vector_dir)
}

/// Stops `daemon` with SIGTERM, which must exit 0; returns how long that took.
fn stop(daemon: &mut Daemon) -> Duration {
    let stopped_at = Instant::now();
    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_for_exit(), Some(0));
    stopped_at.elapsed()
}

#[test]
fn sigterm_inside_the_reload_interval_delivers_the_trailing_reload_before_exit() {
    let (_fake, mut daemon, vector, _vector_dir) = owing_a_reload(&["--min-reload-interval", "4s"]);
    vector.sync();
    assert_eq!(
        vector.count("HUP"),
        1,
        "the second reload waits out the interval"
    );
    let took = stop(&mut daemon);
    vector.sync();
    assert_eq!(
        vector.count("HUP"),
        2,
        "the owed reload arrived before the exit"
    );
    assert!(
        took < Duration::from_secs(10),
        "within the shutdown timeout"
    );
}

#[test]
fn an_owed_reload_due_after_the_shutdown_timeout_is_sent_at_once() {
    // The bug as reported: --min-reload-interval 20s, so the owed reload would be due long
    // after the default shutdown timeout (10 s).
    let (_fake, mut daemon, vector, _vector_dir) =
        owing_a_reload(&["--min-reload-interval", "20s"]);
    assert!(
        stop(&mut daemon) < Duration::from_secs(5),
        "no waiting for an interval that ends after the timeout"
    );
    vector.sync();
    assert_eq!(
        vector.count("HUP"),
        2,
        "the owed reload arrived before the exit"
    );
}

#[test]
fn sigterm_publishes_a_pending_change_without_waiting_out_the_debounce() {
    let (fake, node, vector, _vector_dir) = setup();
    let pid = vector.pid().to_string();
    let mut daemon = Daemon::start(&fake, &["--vector-pid", &pid, "--wait", "30s:60s"]);
    // Once the stream is subscribed, a placement reaches the daemon as an event and a fetch.
    daemon.wait_until("the subscription", || {
        fake.requests().iter().any(|r| r.path == "/v1/event/stream")
    });
    let new = place(&fake, &node);
    let fetch = format!("/v1/allocation/{new}");
    daemon.wait_until("the fetch of the new allocation", || {
        fake.requests().iter().any(|r| r.path == fetch)
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(!daemon.alloc_ids().contains(&new), "still in its debounce");
    stop(&mut daemon);
    assert!(daemon.alloc_ids().contains(&new), "published at the stop");
    vector.sync();
    assert_eq!(vector.count("HUP"), 1, "and announced");
}

#[test]
fn a_second_signal_exits_at_once() {
    let (_fake, mut daemon, _vector, _vector_dir) =
        owing_a_reload(&["--min-reload-interval", "60s", "--shutdown-timeout", "60s"]);
    daemon.signal(Signal::TERM);
    std::thread::sleep(Duration::from_millis(300));
    daemon.signal(Signal::INT);
    // Without the second signal it would wait up to 60 s for the owed reload.
    assert_eq!(daemon.wait_for_exit(), Some(128 + 2));
}

/// Publishes a second table and kills `run` before its reload: the table on disk was never
/// announced. Returns the directory with the table and the record.
fn crash_between_publish_and_reload(
    fake: &FakeNomad,
    node: &str,
    vector: &SignalRecorder,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = running(fake, vector, dir, &["--min-reload-interval", "60s"]);
    vector.wait_for_count("HUP", 1);
    let new = place(fake, node);
    daemon.wait_for_alloc(&new);
    vector.sync();
    assert_eq!(
        vector.count("HUP"),
        1,
        "the reload of the new table is still owed"
    );
    daemon.kill()
}

#[test]
fn after_a_crash_the_next_run_announces_the_table_once() {
    let (fake, node, vector, _vector_dir) = setup();
    let dir = crash_between_publish_and_reload(&fake, &node, &vector);
    let daemon = running(&fake, &vector, dir, &[]);
    vector.wait_for_count("HUP", 2);
    // Give a wrong daemon the time to announce again, then check it did not.
    std::thread::sleep(Duration::from_millis(500));
    vector.sync();
    assert_eq!(vector.count("HUP"), 2);
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0));
    vector.sync();
    assert_eq!(vector.count("HUP"), 2, "nothing owed at the stop");
}

#[test]
fn after_a_crash_the_next_dump_announces_the_table_once_and_a_restart_nothing() {
    let (fake, node, vector, _vector_dir) = setup();
    let dir = crash_between_publish_and_reload(&fake, &node, &vector);
    let table = dir.path().join("allocs.csv");
    let before = std::fs::read(&table).expect("table");
    let dump = || {
        bin_at(fake.address())
            .args(["dump", "--vector-pid", &vector.pid().to_string(), "-o"])
            .arg(&table)
            .assert()
            .success();
    };
    dump();
    vector.sync();
    assert_eq!(
        vector.count("HUP"),
        2,
        "the unchanged but unannounced table is announced"
    );
    assert_eq!(
        std::fs::read(&table).expect("table"),
        before,
        "and not rewritten"
    );
    dump();
    vector.sync();
    assert_eq!(
        vector.count("HUP"),
        2,
        "an announced table is not announced again"
    );
    // Nor by a restarted run, once it has listed and found nothing new.
    let daemon = running(&fake, &vector, dir, &[]);
    let listing = |fake: &FakeNomad| {
        fake.requests()
            .iter()
            .filter(|r| r.path.ends_with("/allocations"))
            .count()
    };
    let listed = listing(&fake);
    daemon.wait_until("a listing", || listing(&fake) > listed);
    // A marker proves the listing was applied: its reload is the only one.
    let marker = place(&fake, &node);
    daemon.wait_for_alloc(&marker);
    vector.wait_for_count("HUP", 3);
    std::thread::sleep(Duration::from_millis(300));
    vector.sync();
    assert_eq!(
        vector.count("HUP"),
        3,
        "the marker's reload only: the announced table was not announced again"
    );
}

#[test]
fn with_reload_none_nothing_is_remembered() {
    let (fake, _node, _vector, _vector_dir) = setup();
    let dir = tempfile::tempdir().expect("tempdir");
    let table = dir.path().join("allocs.csv");
    dump(&mut bin_at(fake.address()), &table, &[]);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["allocs.csv"]);
}
