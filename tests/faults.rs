//! Faults `run` must survive, each injected with the fake's fault controls: a subscription that
//! never gets response headers (A), the node's newest allocation collected, which lowers the
//! listing's index (B), indexes that go backwards (E), retry jitter that must differ between
//! processes (C), no reload without a publish (D), temporary files left by killed publishes
//! (F), a rotated token file (G), and the backoff after a burst of failures (H).

use std::time::{Duration, Instant};

use fake_nomad::{FakeNomad, Fault, Policy, StreamFault};
use rustix::process::Signal;

use crate::util::daemon::Daemon;
use crate::util::vector::SignalRecorder;
use crate::util::{TokenFileCluster, bin_at, dump, fake_and_dir, web_cluster};

fn place(fake: &FakeNomad, node: &str) -> String {
    fake.update(|c| c.place("default", "web", "api", node))
}

fn first_alloc(fake: &FakeNomad) -> String {
    fake.read(|c| c.allocations.keys().next().expect("one").clone())
}

fn count_requests(fake: &FakeNomad, path: &str) -> usize {
    fake.requests().iter().filter(|r| r.path == path).count()
}

/// A running `run` whose current subscription was cut and whose next one hangs before its
/// response headers; returns how many subscriptions the fake had seen by then.
fn with_a_hung_subscription() -> (FakeNomad, String, Daemon, usize) {
    let (cluster, node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    let daemon = Daemon::start(&fake, &[]);
    daemon.wait_for_alloc(&first_alloc(&fake));
    fake.set_stream(|s| s.fault = Some(StreamFault::NoHeaders));
    let subscribed = count_requests(&fake, "/v1/event/stream");
    fake.update(|c| c.restart_server(|_| {}));
    daemon.wait_until("a hanging subscription", || {
        count_requests(&fake, "/v1/event/stream") > subscribed
    });
    let hung = count_requests(&fake, "/v1/event/stream");
    (fake, node, daemon, hung)
}

#[test]
fn a_subscription_without_response_headers_does_not_hold_up_the_resync() {
    let (fake, node, daemon, _) = with_a_hung_subscription();
    // A placement now reaches the table only through a listing: SIGHUP must get one at once.
    let listings = format!("/v1/node/{node}/allocations");
    let placed = place(&fake, &node);
    let listed = count_requests(&fake, &listings);
    let asked = Instant::now();
    daemon.signal(Signal::HUP);
    daemon.wait_until("the SIGHUP listing", || {
        count_requests(&fake, &listings) > listed
    });
    daemon.wait_for_alloc(&placed);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the resync waited behind the hung subscription"
    );
}

#[test]
fn a_subscription_without_response_headers_is_given_up_and_retried() {
    let (fake, node, daemon, hung) = with_a_hung_subscription();
    fake.set_stream(|s| s.fault = None);
    // The header deadline (10 s) ends the hung subscription; the next one works.
    let placed = place(&fake, &node);
    daemon.wait_until("a new subscription", || {
        count_requests(&fake, "/v1/event/stream") > hung
    });
    daemon.wait_for_alloc(&placed);
}

#[test]
fn the_newest_allocation_collected_leaves_after_its_grace() {
    let (cluster, node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    let daemon = Daemon::start_observed(&fake, &["--grace", "1s"]);
    let newest = place(&fake, &node);
    daemon.wait_for_alloc(&newest);
    // Collected without an event: the listing's index drops below the allocation's.
    let index_before = fake.read(|c| c.node_allocations_index(&node));
    fake.update(|c| c.gc(&newest));
    assert!(fake.read(|c| c.node_allocations_index(&node)) < index_before);
    daemon.signal(Signal::HUP);
    daemon.wait_until("the collected allocation in its grace", || {
        daemon.departing() >= 1.0
    });
    assert!(
        daemon.alloc_ids().contains(&newest),
        "gone before its grace"
    );
    daemon.wait_until("the collected allocation's rows to go", || {
        !daemon.alloc_ids().contains(&newest)
    });
    assert!(daemon.alloc_ids().contains(&first_alloc(&fake)));
}

/// A `run` whose Nomad answers every request with a 500 while it looks for its node.
fn failing_to_find_its_node() -> (FakeNomad, Daemon, String) {
    let (cluster, node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    fake.set_fault(Some(Fault::Status(
        500,
        "rpc error: No cluster leader".into(),
    )));
    let daemon = Daemon::start(&fake, &["--node-id", &node]);
    (fake, daemon, format!("/v1/node/{node}"))
}

/// The gaps between its first four attempts, as the fake saw them arrive: the retry delays.
fn retry_gaps(fake: &FakeNomad, daemon: &Daemon, path: &str) -> Vec<Duration> {
    let attempts = || -> Vec<Instant> {
        fake.requests()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.at)
            .collect()
    };
    daemon.wait_until("four attempts", || attempts().len() >= 4);
    attempts().windows(2).take(3).map(|w| w[1] - w[0]).collect()
}

#[test]
fn two_processes_retry_with_different_jitter() {
    let (first_fake, first, first_path) = failing_to_find_its_node();
    let (second_fake, second, second_path) = failing_to_find_its_node();
    let first = retry_gaps(&first_fake, &first, &first_path);
    let second = retry_gaps(&second_fake, &second, &second_path);
    // Without jitter the delays are the same in both (250 ms, 500 ms, 1 s); with it each lies
    // anywhere in [d, 2d), so that all three agree within 10 ms once in about 15,000 runs.
    let apart = first
        .iter()
        .zip(&second)
        .any(|(a, b)| a.abs_diff(*b) > Duration::from_millis(10));
    assert!(
        apart,
        "every node would retry in lockstep: {first:?} and {second:?}"
    );
}

#[test]
fn publishes_waiting_out_the_reload_interval_are_one_reload() {
    let (cluster, node) = web_cluster();
    let (fake, dir) = fake_and_dir(cluster);
    let vector = SignalRecorder::spawn(dir.path(), "vector");
    let daemon = Daemon::start(
        &fake,
        &[
            "--vector-pid",
            &vector.pid().to_string(),
            "--min-reload-interval",
            "2s",
        ],
    );
    daemon.wait_for_alloc(&first_alloc(&fake));
    vector.wait_for_count("HUP", 1);
    let started = Instant::now();
    for pause in [0, 500, 500] {
        std::thread::sleep(Duration::from_millis(pause));
        let placed = place(&fake, &node);
        daemon.wait_for_alloc(&placed);
    }
    vector.wait_for_count("HUP", 2);
    // The trailing reload covered every publish: a third would come 2 s after the second.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(started.elapsed()));
    std::thread::sleep(Duration::from_millis(500));
    vector.sync();
    assert_eq!(vector.count("HUP"), 2);
}

#[test]
fn temporary_files_of_killed_publishes_are_removed_at_start() {
    let (cluster, _node) = web_cluster();
    let (fake, dir) = fake_and_dir(cluster);
    let table = dir.path().join("allocs.csv");
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3_600);
    let left = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, b"alloc_id,task\n").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(hour_ago))
            .expect("mtime");
        path
    };
    let stale: Vec<_> = (0..3)
        .map(|i| left(&format!(".allocs.csv.k{i}lLeD.tmp")))
        .collect();
    let foreign = left(".other.csv.k0lLeD.tmp");
    dump(&mut bin_at(fake.address()), &table, &[]);
    for path in &stale {
        assert!(!path.exists(), "{} left behind", path.display());
    }
    assert!(foreign.exists(), "another table's files are not ours");
    assert!(table.exists());
}

#[test]
fn a_rotated_token_file_is_used_at_once() {
    let setup = TokenFileCluster::start("first", "first");
    let (fake, node) = (&setup.fake, &setup.node);
    let args = setup.args();
    let daemon = Daemon::start(fake, &args.iter().map(String::as_str).collect::<Vec<_>>());
    daemon.wait_for_alloc(&first_alloc(fake));
    let refusals = |fake: &FakeNomad| {
        fake.requests()
            .iter()
            .filter(|r| r.token.as_deref() == Some("first"))
            .count()
    };
    let before = refusals(fake);
    fake.update(|c| {
        c.revoke_token("first");
        c.add_token("second", Policy::alloc_table_reader());
    });
    let during = place(fake, node);
    // The stream ends; the reconnect's listing is refused, and the retry waits 30 s.
    daemon.wait_until("a refused reconnect", || refusals(fake) > before);
    std::thread::sleep(Duration::from_millis(300));
    let rotated = Instant::now();
    setup.write_token("second");
    daemon.wait_for_alloc(&during);
    assert!(
        rotated.elapsed() < Duration::from_secs(10),
        "waited {:?} for the 403 retry",
        rotated.elapsed()
    );
}

#[test]
fn a_cut_after_a_burst_of_failures_reconnects_quickly() {
    let (cluster, node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    let daemon = Daemon::start(&fake, &[]);
    daemon.wait_for_alloc(&first_alloc(&fake));
    // A burst of 5xx while the stream is down grows the backoff (to 8 s and more)...
    fake.set_fault(Some(Fault::Status(
        500,
        "rpc error: No cluster leader".into(),
    )));
    fake.update(|c| c.restart_server(|_| {}));
    let failing = count_requests(&fake, &format!("/v1/node/{node}/allocations"));
    daemon.wait_until("five failed listings", || {
        count_requests(&fake, &format!("/v1/node/{node}/allocations")) >= failing + 5
    });
    fake.set_fault(None);
    // ...then the stream comes back and is healthy for a while...
    let subscribed = count_requests(&fake, "/v1/event/stream");
    daemon.wait_until("a working subscription", || {
        count_requests(&fake, "/v1/event/stream") > subscribed
    });
    std::thread::sleep(Duration::from_secs(1));
    // ...and a cut now is followed by a quick reconnect, not the grown delay.
    fake.set_stream(|s| s.fault = Some(StreamFault::CloseMidFrame));
    let cut = Instant::now();
    // Its frame is cut: only the listing after the reconnect brings it.
    let placed = place(&fake, &node);
    daemon.wait_for_alloc(&placed);
    assert!(
        cut.elapsed() < Duration::from_secs(4),
        "reconnected after {:?}",
        cut.elapsed()
    );
}
