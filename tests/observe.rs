//! What an operator sees of `run` without reading its logs: `/metrics` (checked by promtool, the
//! Prometheus project's own linter), `/healthz` and `/readyz`.

use std::process::Command;

use fake_nomad::{FakeNomad, StreamFault};

use crate::util::daemon::Daemon;
use crate::util::metrics::{sample, scrape, wait_for_sample};
use crate::util::{TokenFileCluster, free_address, http_get, web_cluster};

#[test]
fn metrics_move_with_the_model_and_pass_promtool() {
    let (cluster, node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    let address = free_address();
    let daemon = Daemon::start(&fake, &["--listen", &address.to_string()]);
    let first = fake.read(|c| c.allocations.keys().next().expect("one").clone());
    daemon.wait_for_alloc(&first);
    wait_for_sample(address, "nomad_alloc_table_rows", |v| v == 1.0);
    let written = "nomad_alloc_table_publishes_total{outcome=\"written\"}";
    let before = sample(&scrape(address), written).expect("counted");
    let placed = fake.update(|c| c.place("default", "web", "api", &node));
    daemon.wait_for_alloc(&placed);
    wait_for_sample(address, "nomad_alloc_table_rows", |v| v == 2.0);
    wait_for_sample(address, written, |v| v == before + 1.0);
    wait_for_sample(address, "nomad_alloc_table_event_stream_up", |v| v == 1.0);
    let text = scrape(address);
    assert!(
        sample(
            &text,
            "nomad_alloc_table_nomad_requests_total{code=\"200\",endpoint=\"/v1/node/:id/allocations\"}"
        )
        .is_some_and(|v| v >= 1.0),
        "requests are counted by route: {text}"
    );
    assert!(!text.contains(&placed), "no allocation ID in any label");
    // A cut stream whose reconnects are refused: down, and counted.
    fake.set_stream(|s| s.fault = Some(StreamFault::Status(500)));
    fake.update(|c| c.restart_server(|_| {}));
    wait_for_sample(address, "nomad_alloc_table_event_stream_up", |v| v == 0.0);
    wait_for_sample(
        address,
        "nomad_alloc_table_stream_reconnects_total{reason=\"closed\"}",
        |v| v >= 1.0,
    );
    promtool_check(&scrape(address));
    let (status, body) = http_get(address, "/healthz").expect("answers");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
}

/// Runs `promtool check metrics` on an exposition; promtool is required (Debian's
/// `prometheus` package; `.ci/run` installs it).
fn promtool_check(exposition: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is needed for this test: install Debian's prometheus package");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("promtool ran");
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n{exposition}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn readyz_is_503_while_the_token_is_refused_and_200_once_it_is_accepted() {
    let setup = TokenFileCluster::start("good", "revoked-or-unknown");
    let address = free_address();
    let mut args = setup.args();
    args.extend(["--listen".to_owned(), address.to_string()]);
    let daemon = Daemon::start(
        &setup.fake,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut last = None;
    daemon.wait_until("a 503 that names the refusal", || {
        last = http_get(address, "/readyz");
        last.as_ref()
            .is_some_and(|(status, body)| *status == 503 && body.contains("403"))
    });
    let (_, body) = last.expect("answered");
    assert!(body.starts_with("no successful listing yet: "), "{body}");
    assert_eq!(body.lines().count(), 1, "one line: {body}");
    assert!(!body.contains("revoked-or-unknown"), "never the token");
    setup.write_token("good");
    daemon.wait_until("ready", || {
        http_get(address, "/readyz").is_some_and(|(status, _)| status == 200)
    });
}
