//! Every failure class: its exit code, one clear line on stderr, and the existing table left
//! exactly as it was.

use std::path::{Path, PathBuf};

use fake_nomad::{FakeNomad, Fault, Policy};
use predicates::prelude::*;
use predicates::str::contains;

use crate::util::{bin, bin_at, web_cluster};

const EXISTING: &str = "alloc_id,task\nkeep-me,web\n";

/// A directory with a table that must survive the failure, and its mtime.
struct ExistingTable {
    _dir: tempfile::TempDir,
    path: PathBuf,
    modified: std::time::SystemTime,
}

impl ExistingTable {
    fn new() -> ExistingTable {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("allocs.csv");
        std::fs::write(&path, EXISTING).expect("write");
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime");
        ExistingTable {
            _dir: dir,
            path,
            modified,
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn assert_untouched(&self) {
        assert_eq!(
            std::fs::read_to_string(&self.path).expect("still there"),
            EXISTING
        );
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(modified, self.modified);
        let entries = std::fs::read_dir(self.path.parent().expect("dir"))
            .expect("list")
            .count();
        assert_eq!(entries, 1, "no temporary file is left behind");
    }
}

fn one_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("error:")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line in {text:?}");
    errors[0].to_owned()
}

#[test]
fn permission_denied_exits_4_names_the_acl_and_never_the_token() {
    let (mut cluster, node) = web_cluster();
    cluster.enable_acl();
    cluster.add_token("s3cr3t-token-value", Policy::default().agent_read());
    let fake = FakeNomad::start(cluster);
    let table = ExistingTable::new();
    let output = bin_at(fake.address())
        .env("NOMAD_TOKEN", "s3cr3t-token-value")
        .args(["dump", "-o"])
        .arg(table.path())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(4));
    let line = one_line(&output.stderr);
    assert!(line.contains("403") && line.contains("node:read"), "{line}");
    assert!(line.contains(&format!("/v1/node/{node}")), "{line}");
    let all_output = [output.stdout.as_slice(), output.stderr.as_slice()].concat();
    assert!(!String::from_utf8_lossy(&all_output).contains("s3cr3t"));
    table.assert_untouched();
    // The token did reach Nomad, as X-Nomad-Token.
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.token.as_deref() == Some("s3cr3t-token-value"))
    );
}

#[test]
fn an_unknown_token_is_an_auth_failure() {
    let (mut cluster, node) = web_cluster();
    cluster.enable_acl();
    let fake = FakeNomad::start(cluster);
    let table = ExistingTable::new();
    bin_at(fake.address())
        .env("NOMAD_TOKEN", "not-a-real-token")
        .args(["dump", "--node-id", &node, "-o"])
        .arg(table.path())
        .assert()
        .code(4)
        .stderr(contains("ACL token not found").and(contains("not-a-real-token").not()));
    table.assert_untouched();
}

#[test]
fn agent_self_without_agent_read_suggests_node_id() {
    let (mut cluster, _node) = web_cluster();
    cluster.enable_acl();
    cluster.add_token(
        "t",
        Policy::default().node_read().namespace("*", &["read-job"]),
    );
    let fake = FakeNomad::start(cluster);
    let table = ExistingTable::new();
    bin_at(fake.address())
        .env("NOMAD_TOKEN", "t")
        .args(["dump", "-o"])
        .arg(table.path())
        .assert()
        .code(4)
        .stderr(contains("agent:read").and(contains("--node-id")));
    table.assert_untouched();
}

#[test]
fn connection_refused_exits_3() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let table = ExistingTable::new();
    let output = bin_at(&format!("http://127.0.0.1:{port}"))
        .args(["dump", "-o"])
        .arg(table.path())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(3));
    let line = one_line(&output.stderr);
    assert!(
        line.contains("cannot reach Nomad") && line.contains("refused"),
        "{line}"
    );
    assert!(line.contains("NOMAD_ADDR"), "{line}");
    table.assert_untouched();
}

#[test]
fn a_server_error_exits_5_with_nomads_message() {
    let (cluster, _node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    fake.set_fault(Some(Fault::Status(
        500,
        "rpc error: No cluster leader".to_owned(),
    )));
    let table = ExistingTable::new();
    let output = bin_at(fake.address())
        .args(["dump", "-o"])
        .arg(table.path())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(5));
    let line = one_line(&output.stderr);
    assert!(
        line.contains("500") && line.contains("No cluster leader"),
        "{line}"
    );
    table.assert_untouched();
}

#[test]
fn malformed_json_exits_6() {
    let (cluster, node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    fake.set_fault(Some(Fault::MalformedJson));
    let table = ExistingTable::new();
    let output = bin_at(fake.address())
        .args(["dump", "--node-id", &node, "-o"])
        .arg(table.path())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(6));
    let line = one_line(&output.stderr);
    assert!(line.contains("not the JSON expected"), "{line}");
    table.assert_untouched();
}

#[test]
fn an_agent_without_a_client_is_explained() {
    let (mut cluster, _node) = web_cluster();
    cluster.agent.client_node_id = None;
    let fake = FakeNomad::start(cluster);
    let table = ExistingTable::new();
    bin_at(fake.address())
        .args(["dump", "-o"])
        .arg(table.path())
        .assert()
        .code(5)
        .stderr(contains("runs no Nomad client").and(contains("--node-id")));
    table.assert_untouched();
}

#[test]
fn an_unknown_node_is_explained() {
    let (cluster, _node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    let table = ExistingTable::new();
    bin_at(fake.address())
        .args(["dump", "--node-id", "0000-no-such-node", "-o"])
        .arg(table.path())
        .assert()
        .code(5)
        .stderr(contains("does not know node").and(contains("0000-no-such-node")));
    table.assert_untouched();
}

#[test]
fn a_missing_output_directory_exits_7() {
    let (cluster, _node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    let dir = tempfile::tempdir().expect("tempdir");
    bin_at(fake.address())
        .args(["dump", "-o"])
        .arg(dir.path().join("missing/t.csv"))
        .assert()
        .code(7)
        .stderr(contains("does not exist"));
}

#[test]
fn bad_settings_exit_2_with_a_hint() {
    let table = ExistingTable::new();
    bin()
        .env("NOMAD_ADDR", "127.0.0.1:4646")
        .args(["dump", "-o"])
        .arg(table.path())
        .assert()
        .code(2)
        .stderr(contains("http://host:4646"));
    bin()
        .args(["dump", "--columns", "job,group", "-o"])
        .arg(table.path())
        .assert()
        .code(2)
        .stderr(contains("unknown column \"job\"").and(contains("job_id")));
    bin()
        .args(["dump", "--reload", "command", "-o"])
        .arg(table.path())
        .assert()
        .code(2)
        .stderr(contains("needs the command after --"));
    bin()
        .args(["dump", "--file-mode", "rw", "-o"])
        .arg(table.path())
        .assert()
        .code(2)
        .stderr(contains("octal"));
    bin()
        .env("NOMAD_CACERT", "/nonexistent/ca.pem")
        .env("NOMAD_ADDR", "https://127.0.0.1:1")
        .args(["dump", "-o"])
        .arg(table.path())
        .assert()
        .code(2)
        .stderr(contains("/nonexistent/ca.pem"));
    table.assert_untouched();
}
