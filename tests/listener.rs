//! The table never depends on the listener's clients: hundreds of idle, half-sent and garbage
//! connections to `--listen`, under a descriptor limit as low as a small container gives,
//! leave the process's descriptors bounded and placements reaching the table; the server
//! closes the idle ones by itself and answers `/healthz` once they are gone.

use std::io::{Read, Write};
use std::net::TcpStream;

use fake_nomad::FakeNomad;

use crate::util::daemon::Daemon;
use crate::util::metrics::sample;
use crate::util::storm::{closed_by_server, lower_open_files_limit, open_descriptors, storm};
use crate::util::{eventually, http_get, web_cluster};

/// `observe::http::MAX_CONNECTIONS`, the cap the server keeps to.
const CAP: usize = 32;

#[test]
fn idle_and_hostile_clients_cannot_freeze_the_table() {
    let (cluster, node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    let daemon = Daemon::start_observed(&fake, &[]);
    let address = daemon.listen_address();
    daemon.wait_until("the first table", || daemon.rows().len() == 1);
    let pid = daemon.pid();
    lower_open_files_limit(pid);
    let baseline = open_descriptors(pid);

    let mut clients = storm(address);

    let placed = fake.update(|c| c.place("default", "web", "api", &node));
    daemon.wait_for_alloc(&placed);
    let held = open_descriptors(pid);
    assert!(
        held <= baseline + CAP + 4,
        "{held} descriptors held under {} connections (baseline {baseline}, cap {CAP})",
        clients.len()
    );
    // The server closes what it accepted by itself: idle and half-sent heads time out,
    // garbage is refused at once.
    eventually("the server to close a cap's worth of connections", || {
        clients
            .iter_mut()
            .map(closed_by_server)
            .filter(|closed| *closed)
            .count()
            >= CAP
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(open_descriptors(pid) <= baseline + CAP + 4);

    drop(clients);
    let mut healthz = None;
    eventually("/healthz once the clients are gone", || {
        healthz = http_get(address, "/healthz");
        healthz.is_some()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(healthz, Some((200, "ok\n".to_owned())));
    let mut metrics = String::new();
    let counted = |metrics: &str, series: &str| sample(metrics, series).is_some_and(|v| v >= 1.0);
    eventually("the listener's metrics to count the storm", || {
        metrics = http_get(address, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default();
        [
            "nomad_alloc_table_listener_connections_closed_total{reason=\"timeout\"}",
            "nomad_alloc_table_listener_connections_closed_total{reason=\"error\"}",
            "nomad_alloc_table_listener_full_total",
        ]
        .iter()
        .all(|series| counted(&metrics, series))
    })
    .unwrap_or_else(|e| panic!("{e}; last scrape:\n{metrics}"));
    // Still following Nomad after the storm.
    let after = fake.update(|c| c.place("default", "web", "api", &node));
    daemon.wait_for_alloc(&after);
}

/// A connection kept busy with requests (each head well within its 5 s) still ends when its
/// 30 s lifetime runs out: no client holds a place for ever.
#[test]
fn a_busy_kept_alive_connection_ends_at_its_lifetime() {
    use std::time::{Duration, Instant};

    let (cluster, _node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    let daemon = Daemon::start_observed(&fake, &[]);
    let address = daemon.listen_address();
    eventually("the listener", || http_get(address, "/healthz").is_some())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let start = Instant::now();
    let mut served = 0;
    loop {
        assert!(start.elapsed() < Duration::from_secs(60), "never closed");
        if stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .is_err()
        {
            break;
        }
        let mut response = Vec::new();
        let mut chunk = [0u8; 512];
        while !response.ends_with(b"ok\n") {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&chunk[..n]),
            }
        }
        if !response.ends_with(b"ok\n") {
            break;
        }
        served += 1;
        std::thread::sleep(Duration::from_secs(3));
    }
    let lived = start.elapsed();
    assert!(served >= 8, "kept alive across requests: {served} served");
    assert!(
        (Duration::from_secs(27)..Duration::from_secs(40)).contains(&lived),
        "closed after {lived:?}"
    );
}
