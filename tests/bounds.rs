//! Bounds on what comes from outside: pages that never end are refused with a one-line error
//! instead of followed for ever; a flood of SIGHUPs does not become a flood of listings.

use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use fake_nomad::{FakeNomad, Fault, StreamFault};
use rustix::process::Signal;

use crate::util::daemon::Daemon;
use crate::util::{bin_at, eventually, web_cluster};

/// A server that answers like Nomad but whose allocation pages always name the same next page.
async fn endless_pages() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let index = |token: Option<&'static str>| {
        let mut headers = HeaderMap::new();
        headers.insert("x-nomad-index", "7".parse().expect("header"));
        if let Some(token) = token {
            headers.insert("x-nomad-nexttoken", token.parse().expect("header"));
        }
        headers
    };
    let app = Router::new()
        .route("/v1/nodes", get(move || async move { (index(None), "[]") }))
        .route(
            "/v1/allocations",
            get(move || async move { (index(Some("page-2")), "[]") }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

#[test]
fn allocation_pages_that_never_end_are_refused() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let address = runtime.block_on(endless_pages());
    let dir = tempfile::tempdir().expect("tempdir");
    let output = bin_at(&address)
        .args(["dump", "--scope", "cluster", "-o"])
        .arg(dir.path().join("cluster.csv"))
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(6)
        .get_output()
        .stderr
        .clone();
    let stderr = String::from_utf8(output).expect("utf8");
    assert!(stderr.contains("do not end"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        !dir.path().join("cluster.csv").exists(),
        "nothing published"
    );
}

/// A flood of SIGHUPs while Nomad fails cannot turn the backoff into a storm of listings: a
/// SIGHUP shortens the wait, but not below a second.
#[test]
fn a_flood_of_sighups_during_an_outage_lists_at_most_about_once_a_second() {
    let (cluster, _node) = web_cluster();
    let first = cluster.allocations.keys().next().expect("one").clone();
    let fake = FakeNomad::start(cluster);
    let daemon = Daemon::start(&fake, &[]);
    daemon.wait_for_alloc(&first);
    let listings = || {
        fake.requests()
            .iter()
            .filter(|r| r.path.ends_with("/allocations"))
            .count()
    };
    fake.set_fault(Some(Fault::Status(
        500,
        "rpc error: No cluster leader".into(),
    )));
    fake.set_stream(|s| s.fault = Some(StreamFault::Status(500)));
    fake.update(|c| c.restart_server(|_| {}));
    let before = listings();
    // Five failures: the backoff has grown to at least 4 s, so that within the next 2 s only
    // the SIGHUPs can bring a listing.
    eventually("five failed listings", || listings() >= before + 5)
        .unwrap_or_else(|e| panic!("{e}"));
    let start = listings();
    for _ in 0..40 {
        daemon.signal(Signal::HUP);
        std::thread::sleep(Duration::from_millis(50));
    }
    let during = listings() - start;
    assert!(
        (1..=8).contains(&during),
        "{during} listings for 40 SIGHUPs in 2 s: a SIGHUP shortens the backoff, at most to one a second"
    );
}
