//! `run` end to end: the real binary against the fake Nomad. Synchronisation is explicit: tests
//! wait (with a bound) for a condition on what the daemon does (the published file and the
//! renames onto it, the requests the fake received, the signals the stand-in Vector got), never
//! for a fixed time to pass; the few fixed pauses only give a wrong daemon the chance to do a
//! wrong thing.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fake_nomad::lifecycle::Lifecycle;
use fake_nomad::{ClientStatus, FakeNomad, Fault, Node, StreamFault};
use nomad_alloc_table::table::validate::check_csv_rows;
use rustix::process::Signal;

use crate::util::daemon::Daemon;
use crate::util::vector::SignalRecorder;
use crate::util::{parse_csv, web_cluster};

/// How many listing requests the fake has answered for `node`.
fn listings(fake: &FakeNomad, node: &str) -> usize {
    let path = format!("/v1/node/{node}/allocations");
    fake.requests().iter().filter(|r| r.path == path).count()
}

fn subscriptions(fake: &FakeNomad) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.path == "/v1/event/stream")
        .count()
}

/// The fake with one node and one placed allocation; the daemon's first publish is awaited.
fn started(extra: &[&str]) -> (FakeNomad, String, String, Daemon) {
    let (cluster, node) = web_cluster();
    let first = cluster.allocations.keys().next().expect("one").clone();
    let fake = FakeNomad::start(cluster);
    let daemon = Daemon::start(&fake, extra);
    daemon.wait_for_alloc(&first);
    (fake, node, first, daemon)
}

/// [`started`] with a stand-in for Vector that the daemon signals, once the first publish has
/// reloaded it. The directory holds the stand-in's executable and must outlive it.
fn started_with_vector() -> (
    FakeNomad,
    String,
    String,
    Daemon,
    SignalRecorder,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let vector = SignalRecorder::spawn(dir.path(), "vector");
    let (fake, node, first, daemon) = started(&["--vector-pid", &vector.pid().to_string()]);
    vector.wait_for_count("HUP", 1);
    (fake, node, first, daemon, vector, dir)
}

fn place(fake: &FakeNomad, node: &str) -> String {
    fake.update(|c| c.place("default", "web", "api", node))
}

#[test]
fn a_missing_table_gets_a_header_at_once_and_rows_after_the_first_listing() {
    let (cluster, _node) = web_cluster();
    let first = cluster.allocations.keys().next().expect("one").clone();
    let fake = FakeNomad::start(cluster);
    // Nomad answers nothing yet: no node, no listing.
    fake.set_fault(Some(Fault::Status(
        500,
        "rpc error: No cluster leader".into(),
    )));
    let daemon = Daemon::start(&fake, &[]);
    daemon.wait_until("a table", || daemon.table.exists());
    let table = std::fs::read_to_string(&daemon.table).expect("table");
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.split(',').any(|column| column == "alloc_id") && table.lines().count() == 1,
        "a header and no row: {table:?}"
    );
    fake.set_fault(None);
    daemon.wait_for_alloc(&first);
}

#[test]
fn one_new_allocation_is_one_write_and_one_reload() {
    let (fake, node, _first, daemon, vector, _dir) = started_with_vector();
    let writes = daemon.publishes();
    let new = place(&fake, &node);
    daemon.wait_for_alloc(&new);
    vector.wait_for_count("HUP", 2);
    // Give a wrong daemon the time to write or reload again, then check it did not.
    std::thread::sleep(Duration::from_millis(400));
    vector.sync();
    assert_eq!(vector.count("HUP"), 2);
    assert_eq!(daemon.publishes(), writes + 1);
}

#[test]
fn an_update_that_changes_no_column_writes_and_reloads_nothing() {
    let (fake, node, first, daemon, vector, _dir) = started_with_vector();
    let writes = daemon.publishes();
    let mtime = std::fs::metadata(&daemon.table)
        .and_then(|m| m.modified())
        .expect("mtime");
    // Status and health change; no default column does.
    fake.update(|c| c.set_client_status(&first, ClientStatus::Running));
    fake.update(|c| c.set_client_status(&first, ClientStatus::Running));
    // Give a wrong daemon the time to write and reload anyway (the debounce is 20 ms), then
    // check it did not.
    std::thread::sleep(Duration::from_millis(500));
    vector.sync();
    assert_eq!(vector.count("HUP"), 1, "no reload");
    assert_eq!(daemon.publishes(), writes, "no write");
    let after = std::fs::metadata(&daemon.table)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(after, mtime, "no new mtime");
    // A marker proves the updates were processed: its write and reload are the only ones.
    let marker = place(&fake, &node);
    daemon.wait_for_alloc(&marker);
    vector.wait_for_count("HUP", 2);
    vector.sync();
    assert_eq!(vector.count("HUP"), 2, "only the marker's reload");
    assert_eq!(daemon.publishes(), writes + 1, "only the marker's write");
}

#[test]
fn events_for_other_nodes_are_ignored() {
    let (fake, node, _first, daemon) = started(&[]);
    let other_node = fake.update(|c| c.add_node(Node::new("elsewhere")));
    let elsewhere = fake.update(|c| c.place("default", "web", "api", &other_node));
    let marker = place(&fake, &node);
    daemon.wait_for_alloc(&marker);
    assert!(!daemon.alloc_ids().contains(&elsewhere));
    let fetched_elsewhere = fake
        .requests()
        .iter()
        .any(|r| r.path == format!("/v1/allocation/{elsewhere}"));
    assert!(
        !fetched_elsewhere,
        "no request for another node's allocation"
    );
}

#[test]
fn a_burst_of_200_placements_is_at_most_two_writes() {
    let (mut cluster, node) = web_cluster();
    cluster.events.capacity = 1_000;
    let first = cluster.allocations.keys().next().expect("one").clone();
    let fake = FakeNomad::start(cluster);
    let daemon = Daemon::start(&fake, &["--wait", "100ms:1s"]);
    daemon.wait_for_alloc(&first);
    let writes = daemon.publishes();
    let placed: Vec<String> = fake.update(|c| {
        (0..200)
            .map(|_| c.place("default", "web", "api", &node))
            .collect()
    });
    daemon.wait_until("all 200 allocations", || {
        let ids = daemon.alloc_ids();
        placed.iter().all(|id| ids.contains(id))
    });
    std::thread::sleep(Duration::from_millis(1_500));
    let burst_writes = daemon.publishes() - writes;
    assert!(
        (1..=2).contains(&burst_writes),
        "{burst_writes} writes for one burst"
    );
    let fetches = fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/allocation/"))
        .count();
    assert!(
        fetches <= 8,
        "{fetches} separate fetches: a burst must be one listing"
    );
}

#[test]
fn replayed_frames_after_a_reconnect_are_dropped_without_a_write() {
    let (fake, node, _first, daemon) = started(&["--columns", "job_id,client_status"]);
    let x = place(&fake, &node);
    daemon.wait_for_alloc(&x);
    // X starts without an event: Nomad's newest frame (X pending) is now older than what the
    // listing on reconnect shows, and it is what Nomad replays to the new subscription.
    fake.update(|c| {
        c.events.recording = false;
        c.set_client_status(&x, ClientStatus::Running);
        c.events.recording = true;
    });
    let writes = daemon.publishes();
    let subscribed = subscriptions(&fake);
    // A garbage line makes the daemon reconnect (with a listing); Nomad re-sends its newest frame.
    fake.set_stream(|s| s.fault = Some(StreamFault::GarbageLine));
    daemon.wait_until("a new subscription", || subscriptions(&fake) > subscribed);
    let marker = place(&fake, &node);
    daemon.wait_for_alloc(&marker);
    let row = daemon
        .rows()
        .into_iter()
        .find(|r| r["alloc_id"] == x)
        .expect("x in the table");
    assert_eq!(
        row["client_status"], "running",
        "the replayed (older) frame was applied"
    );
    // The listing's write (X running) came. How many more came is not the replay's doing to
    // judge: under load X's own placement events may still be arriving when `writes` was
    // read (a full-suite CI run saw 5 after 2). A replay applied would have left X pending,
    // which the row above rules out.
    assert!(
        daemon.publishes() > writes,
        "the listing on reconnect wrote X running"
    );
}

#[test]
fn a_dropped_stream_reconnects_without_missing_an_allocation() {
    let (fake, node, _first, daemon) = started(&[]);
    let subscribed = subscriptions(&fake);
    fake.set_stream(|s| s.fault = Some(StreamFault::CloseMidFrame));
    // The frame with this placement is cut in half: only the resync on reconnect can bring it.
    let cut = place(&fake, &node);
    daemon.wait_for_alloc(&cut);
    assert!(subscriptions(&fake) > subscribed, "a reconnect brought it");
}

#[test]
fn silence_past_the_read_deadline_reconnects() {
    let (fake, node, _first, daemon) = started(&["--stream-timeout", "500ms"]);
    let subscribed = subscriptions(&fake);
    fake.set_stream(|s| s.fault = Some(StreamFault::Stall));
    let missed = place(&fake, &node);
    daemon.wait_until("a new subscription", || subscriptions(&fake) > subscribed);
    daemon.wait_for_alloc(&missed);
}

#[test]
fn a_server_restart_with_an_index_gap_is_healed_by_the_resync() {
    let (fake, node, _first, daemon) = started(&[]);
    let lost = fake.update(|c| {
        let mut lost = String::new();
        c.restart_server(|c| lost = c.place("default", "web", "api", &node));
        lost
    });
    daemon.wait_for_alloc(&lost);
}

#[test]
fn a_garbage_line_resyncs_and_the_daemon_lives_on() {
    let (fake, node, _first, daemon) = started(&[]);
    let listed = listings(&fake, &node);
    fake.set_stream(|s| s.fault = Some(StreamFault::GarbageLine));
    daemon.wait_until("a resync", || listings(&fake, &node) > listed);
    let later = place(&fake, &node);
    daemon.wait_for_alloc(&later);
}

#[test]
fn a_stream_that_keeps_sending_garbage_is_retried_with_backoff() {
    let (fake, node, _first, daemon) = started(&[]);
    let subscribed = subscriptions(&fake);
    fake.set_stream(|s| s.fault = Some(StreamFault::GarbageLines));
    daemon.wait_until("a reconnect", || subscriptions(&fake) > subscribed);
    std::thread::sleep(Duration::from_secs(2));
    let reconnects = subscriptions(&fake) - subscribed;
    fake.set_stream(|s| s.fault = None);
    // Backoff from 250 ms doubling (each plus up to as much jitter) allows a handful in 2 s:
    // at least two (it keeps trying), at most eight (without it, hundreds).
    assert!(
        (2..=8).contains(&reconnects),
        "{reconnects} subscriptions in about 2 s"
    );
    let later = place(&fake, &node);
    daemon.wait_for_alloc(&later);
}

#[test]
fn sighup_resyncs_and_a_collected_allocation_goes_after_its_grace_not_before() {
    let (cluster, _node) = web_cluster();
    let first = cluster.allocations.keys().next().expect("one").clone();
    let fake = FakeNomad::start(cluster);
    let daemon = Daemon::start_observed(&fake, &["--grace", "2s"]);
    daemon.wait_for_alloc(&first);
    fake.update(|c| c.gc(&first));
    daemon.signal(Signal::HUP);
    // The listing the signal asked for was applied: the allocation is in its grace.
    daemon.wait_until("the SIGHUP resync", || daemon.listings_for("signal") >= 1.0);
    let resynced_at = Instant::now();
    daemon.wait_until("the collected allocation in its grace", || {
        daemon.departing() >= 1.0
    });
    assert!(
        daemon.alloc_ids().contains(&first),
        "gone before its grace period"
    );
    daemon.wait_until("the row to go", || !daemon.alloc_ids().contains(&first));
    let gone_after = resynced_at.elapsed();
    assert!(
        (Duration::from_millis(1_500)..Duration::from_secs(5)).contains(&gone_after),
        "gone {gone_after:?} after the resync, with a grace of 2 s"
    );
}

#[test]
fn sigterm_stops_with_exit_0_and_a_valid_file() {
    let (fake, node, first, daemon) = started(&[]);
    let placed: Vec<String> = (0..5).map(|_| place(&fake, &node)).collect();
    daemon.wait_for_alloc(placed.last().expect("five"));
    let (code, table) = daemon.stop();
    assert_eq!(code, Some(0));
    check_csv_rows(&table).expect("valid");
    let ids: BTreeSet<String> = parse_csv(&table)
        .into_iter()
        .map(|r| r["alloc_id"].clone())
        .collect();
    assert!(
        placed.iter().chain([&first]).all(|id| ids.contains(id)),
        "{ids:?}"
    );
}

#[test]
fn an_observer_never_sees_an_invalid_table_or_a_lost_live_allocation() {
    let (mut cluster, node) = web_cluster();
    cluster.events.capacity = 1_000;
    let mut script = Lifecycle::new(&mut cluster, 3);
    let fake = FakeNomad::start(cluster);
    let daemon = Daemon::start(&fake, &["--wait", "5ms:20ms", "--grace", "100ms"]);
    daemon.wait_until("a first table", || !daemon.alloc_ids().is_empty());
    let seen_first = daemon.alloc_ids();
    let mut rng = fastrand::Rng::with_seed(3);
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for step in 0..400 {
        fake.update(|c| script.step(c));
        if step % 3 == 0 {
            std::thread::sleep(Duration::from_millis(rng.u64(0..5)));
        }
        let Ok(bytes) = std::fs::read(&daemon.table) else {
            panic!("the table vanished");
        };
        check_csv_rows(&bytes).unwrap_or_else(|e| panic!("invalid table at step {step}: {e}"));
        let in_table: BTreeSet<String> = parse_csv(&bytes)
            .into_iter()
            .map(|r| r["alloc_id"].clone())
            .collect();
        // Checked after reading the file: an allocation Nomad still has was live when it was read.
        let still_in_nomad: BTreeSet<String> =
            fake.read(|c| c.allocations.keys().cloned().collect());
        for id in seen.intersection(&still_in_nomad) {
            assert!(
                in_table.contains(id),
                "live allocation {id} lost from the table at step {step}"
            );
        }
        seen.extend(in_table);
    }
    // And the table followed all 400 steps, not only the first: it holds every allocation
    // Nomad has on the node (collected ones may stay until the next resync: no event says so).
    let on_the_node = || {
        fake.read(|c| {
            c.allocations
                .values()
                .filter(|a| a.node_id == node)
                .map(|a| a.id.clone())
                .collect::<BTreeSet<String>>()
        })
    };
    daemon.wait_until("the table to hold Nomad's allocations of the node", || {
        on_the_node().is_subset(&daemon.alloc_ids())
    });
    assert!(
        !on_the_node().is_subset(&seen_first),
        "the steps placed allocations the first table did not have"
    );
}

#[test]
fn a_new_alloc_dir_publishes_its_row_before_any_event() {
    let (fake, node, _first, daemon) = started(&[]);
    // Events are lost (as while the stream is down); only the directory tells.
    let silent = fake.update(|c| {
        c.events.recording = false;
        c.place("default", "web", "api", &node)
    });
    let listed = listings(&fake, &node);
    std::fs::create_dir_all(daemon.alloc_dir.join(&silent).join("alloc/logs")).expect("mkdir");
    daemon.wait_for_alloc(&silent);
    assert_eq!(
        listings(&fake, &node),
        listed,
        "published without waiting for a resync"
    );
}

#[test]
fn a_removed_alloc_dir_starts_the_grace_period() {
    let (fake, _node, first, daemon) = started(&["--grace", "1s"]);
    let dir = daemon.alloc_dir.join(&first);
    std::fs::create_dir(&dir).expect("mkdir");
    let removed_at = Instant::now();
    std::fs::remove_dir(&dir).expect("rmdir");
    daemon.wait_until("the row to go", || !daemon.alloc_ids().contains(&first));
    assert!(removed_at.elapsed() >= Duration::from_millis(700));
    drop(fake);
}

#[test]
fn an_alloc_dir_that_cannot_be_watched_leaves_new_allocations_to_the_stream() {
    let (fake, node, _first, daemon) = started(&["--alloc-dir", "/nonexistent/nomad/alloc"]);
    let later = place(&fake, &node);
    daemon.wait_for_alloc(&later);
    let (code, _) = daemon.stop();
    assert_eq!(code, Some(0), "it ran on until stopped");
}
