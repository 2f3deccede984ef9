//! `check`: one line per check, ✓ or ✗, every ✗ with what to do; exit 0 when all pass.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use fake_nomad::{FakeNomad, Policy};

use crate::util::{assert_mentions, bin_at, fake_and_dir, free_address, web_cluster};

/// Runs `check` with `command` (the binary, pointed at Nomad) for `node`, with the alloc dir
/// and the table in `dir` and `extra` flags; asserts the exit code; returns stdout.
fn check_report(
    mut command: assert_cmd::Command,
    node: &str,
    dir: &Path,
    extra: &[&str],
    code: i32,
) -> String {
    command
        .args(["check", "--node-id", node, "--alloc-dir"])
        .arg(dir)
        .arg("-o")
        .arg(dir.join("allocs.csv"))
        .args(extra);
    report_of(&mut command, code)
}

/// Runs `command` (a `check` command line); asserts the exit code; returns stdout.
fn report_of(command: &mut assert_cmd::Command, code: i32) -> String {
    let output = command.assert().code(code).get_output().stdout.clone();
    String::from_utf8(output).expect("utf8")
}

/// A token that may read nodes, and nothing else.
fn node_read_only() -> Policy {
    Policy::default().node_read()
}

/// `check` against the web cluster with ACLs on, with `token`, which Nomad knows with
/// `policy` (if any); `extra` flags; asserts the exit code; returns stdout.
fn check_with_token(token: &str, policy: Option<Policy>, extra: &[&str], code: i32) -> String {
    let (mut cluster, node) = web_cluster();
    cluster.enable_acl();
    if let Some(policy) = policy {
        cluster.add_token(token, policy);
    }
    let (fake, dir) = fake_and_dir(cluster);
    let mut command = bin_at(fake.address());
    command.env("NOMAD_TOKEN", token);
    check_report(command, &node, dir.path(), extra, code)
}

#[test]
fn a_sound_install_passes_every_check() {
    let (cluster, node) = web_cluster();
    let (fake, dir) = fake_and_dir(cluster);
    let text = check_report(bin_at(fake.address()), &node, dir.path(), &[], 0);
    assert!(text.lines().all(|l| l.starts_with('✓')), "{text}");
    assert_mentions(
        &text,
        &[
            "Nomad answers",
            "node:read",
            "read-job in every namespace",
            "alloc dir",
        ],
    );
}

#[test]
fn a_missing_capability_is_named_with_its_fix_and_the_token_never_shown() {
    let json = ["--format", "json"];
    let text = check_with_token("secret-reader", Some(node_read_only()), &json, 1);
    assert!(!text.contains("secret-reader"), "never the token");
    let report: Vec<serde_json::Value> = serde_json::from_str(&text).expect("json");
    let check = |named: &dyn Fn(&str) -> bool| {
        report
            .iter()
            .find(|f| named(f["check"].as_str().unwrap_or("")))
            .unwrap_or_else(|| panic!("{text}"))
    };
    let stream = check(&|name| name.starts_with("read-job"));
    assert_eq!(stream["ok"], false);
    let token = check(&|name| name == "the token is accepted");
    assert_eq!(token["ok"], true, "known, though short of a capability");
    assert!(
        stream["fix"].as_str().expect("fix").contains("read-job"),
        "{stream}"
    );
}

#[test]
fn with_blocking_queries_no_event_stream_permission_is_asked_for() {
    // node:read alone: the stream would be refused, the listing is not.
    let blocking = ["--watch", "blocking"];
    let text = check_with_token("node-reader", Some(node_read_only()), &blocking, 0);
    assert!(!text.contains("event stream"), "{text}");
    assert!(text.contains("node:read"), "{text}");
}

#[test]
fn an_unknown_token_is_told_apart_from_a_missing_capability() {
    let text = check_with_token("nobody-knows-me", None, &[], 1);
    let line = text
        .lines()
        .find(|l| l.contains("the token is accepted"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.starts_with('✗') && line.contains("does not know"),
        "{line}"
    );
    assert!(!text.contains("nobody-knows-me"), "never the token");
}

#[test]
fn an_unreadable_alloc_dir_is_explained() {
    let (cluster, node) = web_cluster();
    let (fake, dir) = fake_and_dir(cluster);
    let alloc_dir = dir.path().join("alloc");
    std::fs::create_dir(&alloc_dir).expect("mkdir");
    let table_dir = dir.path().join("table");
    std::fs::create_dir(&table_dir).expect("mkdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&table_dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let root = rustix::process::geteuid().is_root();
    // As Nomad makes it: 0711, listable by its owner only. Root reads it anyway, so as root
    // the check runs as nobody.
    let mode = if root { 0o711 } else { 0o311 };
    std::fs::set_permissions(&alloc_dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
    let mut command = bin_at(fake.address());
    if root {
        // A copy nobody can run wherever the checkout lives (a home directory may be 0700).
        let program = dir.path().join("nomad-alloc-table");
        std::fs::copy(command.get_program(), &program).expect("copy the binary");
        command = assert_cmd::Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program)
            .env_clear()
            .env("NOMAD_ADDR", fake.address());
    }
    command
        .args(["check", "--node-id", &node, "--alloc-dir"])
        .arg(&alloc_dir)
        .arg("-o")
        .arg(table_dir.join("allocs.csv"));
    let text = report_of(&mut command, 1);
    let line = text
        .lines()
        .find(|l| l.contains("alloc dir"))
        .unwrap_or_else(|| panic!("no alloc dir line: {text}"));
    assert!(line.starts_with('✗') && line.contains("0711"), "{line}");
}

#[test]
fn without_nomad_the_local_checks_still_run() {
    let closed = format!("http://{}", free_address());
    let dir = tempfile::tempdir().expect("tempdir");
    let text = check_report(bin_at(&closed), "n1", dir.path(), &[], 1);
    assert!(text.starts_with("✗ Nomad answers"), "{text}");
    assert!(
        !text.contains("node:read"),
        "no Nomad check without Nomad: {text}"
    );
    assert_mentions(
        &text,
        &[
            "✓ the alloc dir can be listed",
            "✓ the output directory is writable",
        ],
    );
}

/// `check --scope cluster`: no node, no alloc dir, no agent; `node:read` for every node and the
/// two-topic stream, each failure named with its fix.
#[test]
fn the_cluster_scope_checks_what_it_needs_and_names_what_is_missing() {
    let (mut cluster, _) = web_cluster();
    cluster.enable_acl();
    cluster.add_token(
        "full",
        Policy::default().node_read().namespace("*", &["read-job"]),
    );
    cluster.add_token("jobs-only", Policy::default().namespace("*", &["read-job"]));
    let (fake, dir) = fake_and_dir(cluster);
    let run = |token: &str, code: i32| -> String {
        let mut command = bin_at(fake.address());
        command
            .env("NOMAD_TOKEN", token)
            .args(["check", "--scope", "cluster", "-o"])
            .arg(dir.path().join("cluster.csv"));
        report_of(&mut command, code)
    };
    let text = run("full", 0);
    assert!(text.contains("node:read (every node)"), "{text}");
    assert!(
        text.contains("node:read and read-job in every namespace (event stream)"),
        "{text}"
    );
    assert!(
        !text.contains("alloc dir"),
        "no alloc dir in cluster scope: {text}"
    );
    assert!(!text.contains("agent:read"), "no agent needed: {text}");
    let text = run("jobs-only", 1);
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with('✗')).collect();
    assert_eq!(
        failed.len(),
        2,
        "the node listing and the Node topic: {text}"
    );
    assert!(
        failed.iter().all(|l| l.contains("node")),
        "both name node:read: {text}"
    );
}

/// Vector's file table reads CSV only: a JSON table is checked for what it promises, and
/// `check` never says Vector loads it.
#[test]
fn a_json_table_is_never_said_to_load_in_vector() {
    let (cluster, node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    let dir = tempfile::tempdir().expect("tempdir");
    let table = dir.path().join("allocs.csv");
    std::fs::write(
        &table,
        "[\n  {\"alloc_id\": \"a1\", \"task\": \"web\"}\n]\n",
    )
    .expect("write");
    let mut json = bin_at(fake.address());
    json.env("NOMAD_ALLOC_TABLE_FORMAT", "json");
    let text = check_report(json, &node, dir.path(), &[], 0);
    let line = text
        .lines()
        .find(|l| l.contains("the table"))
        .unwrap_or_else(|| panic!("no table line: {text}"));
    assert!(
        line.starts_with("✓ the table is valid JSON") && line.contains("reads CSV only"),
        "{line}"
    );
    assert!(!text.contains("loads in Vector"), "{text}");
    // The same bytes read as the CSV Vector would load are refused.
    let text = check_report(bin_at(fake.address()), &node, dir.path(), &[], 1);
    assert!(text.contains("✗ the table loads in Vector"), "{text}");
}

/// Without a node ID the node is asked of the agent: a token without `agent:read` is one
/// cause, told in one line with both ways out.
#[test]
fn a_token_without_agent_read_and_no_node_id_is_one_line_with_its_fix() {
    let (mut cluster, _node) = web_cluster();
    cluster.enable_acl();
    cluster.add_token(
        "reader",
        Policy::default().node_read().namespace("*", &["read-job"]),
    );
    let fake = FakeNomad::start(cluster);
    let dir = tempfile::tempdir().expect("tempdir");
    let output = bin_at(fake.address())
        .env("NOMAD_TOKEN", "reader")
        .args(["check", "--alloc-dir"])
        .arg(dir.path())
        .arg("-o")
        .arg(dir.path().join("allocs.csv"))
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(output).expect("utf8");
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with('✗')).collect();
    assert_eq!(failed.len(), 1, "{text}");
    for needle in ["/v1/agent/self", "403", "agent:read", "NOMAD_NODE_ID"] {
        assert!(failed[0].contains(needle), "{needle}: {}", failed[0]);
    }
    assert!(!text.contains("reader"), "never the token: {text}");
}
