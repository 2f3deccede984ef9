//! Every failure class: its exit code, one clear line on stderr, and the existing table left
//! exactly as it was. The error line is what these tests are about: they read it.

use std::path::PathBuf;

use assert_cmd::Command;
use fake_nomad::{Cluster, FakeNomad, Fault, Policy};

use crate::util::{assert_mentions, bin, bin_at, fake_and_dir, free_address, web_cluster};

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

/// What a failed command wrote.
struct Failure {
    stdout: String,
    stderr: String,
}

impl Failure {
    /// The one line of stderr that says `error:`.
    fn line(&self) -> String {
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.contains("error:"))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "exactly one error line in {:?}",
            self.stderr
        );
        errors[0].to_owned()
    }
}

/// `dump <args> -o <a table that exists>` with `command`: asserts that it exits with `code`
/// and leaves the table as it was.
fn dump_failing(mut command: Command, args: &[&str], code: i32) -> Failure {
    let table = ExistingTable::new();
    let output = command
        .arg("dump")
        .args(args)
        .arg("-o")
        .arg(&table.path)
        .output()
        .expect("runs");
    let failure = Failure {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert_eq!(output.status.code(), Some(code), "{}", failure.stderr);
    table.assert_untouched();
    failure
}

/// [`web_cluster`] with ACLs on and `policy` (if any) granted to the token `secret`.
fn with_acl(policy: Option<Policy>, secret: &str) -> (Cluster, String) {
    let (mut cluster, node) = web_cluster();
    cluster.enable_acl();
    if let Some(policy) = policy {
        cluster.add_token(secret, policy);
    }
    (cluster, node)
}

#[test]
fn permission_denied_exits_4_names_the_acl_and_never_the_token() {
    let secret = "s3cr3t-token-value";
    let (cluster, node) = with_acl(Some(Policy::default().agent_read()), secret);
    let fake = FakeNomad::start(cluster);
    let mut command = bin_at(fake.address());
    command.env("NOMAD_TOKEN", secret);
    let failure = dump_failing(command, &[], 4);
    let line = failure.line();
    assert!(line.contains("403") && line.contains("node:read"), "{line}");
    assert!(line.contains(&format!("/v1/node/{node}")), "{line}");
    assert!(!(failure.stdout + &failure.stderr).contains("s3cr3t"));
    // The token did reach Nomad, as X-Nomad-Token.
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.token.as_deref() == Some(secret))
    );
}

#[test]
fn an_unknown_token_is_an_auth_failure() {
    let (cluster, node) = with_acl(None, "");
    let fake = FakeNomad::start(cluster);
    let mut command = bin_at(fake.address());
    command.env("NOMAD_TOKEN", "not-a-real-token");
    let stderr = dump_failing(command, &["--node-id", &node], 4).stderr;
    assert!(stderr.contains("ACL token not found"), "{stderr}");
    assert!(!stderr.contains("not-a-real-token"), "{stderr}");
}

#[test]
fn agent_self_without_agent_read_suggests_node_id() {
    let policy = Policy::default().node_read().namespace("*", &["read-job"]);
    let (cluster, _node) = with_acl(Some(policy), "t");
    let fake = FakeNomad::start(cluster);
    let mut command = bin_at(fake.address());
    command.env("NOMAD_TOKEN", "t");
    let stderr = dump_failing(command, &[], 4).stderr;
    assert_mentions(&stderr, &["agent:read", "--node-id"]);
}

#[test]
fn connection_refused_exits_3() {
    let nobody_listens = format!("http://{}", free_address());
    let line = dump_failing(bin_at(&nobody_listens), &[], 3).line();
    assert!(
        line.contains("cannot reach Nomad") && line.contains("refused"),
        "{line}"
    );
    assert!(line.contains("NOMAD_ADDR"), "{line}");
}

/// The web cluster's fake, answering every request with `fault`.
fn faulty(fault: Fault) -> (FakeNomad, String) {
    let (cluster, node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    fake.set_fault(Some(fault));
    (fake, node)
}

#[test]
fn a_server_error_exits_5_with_nomads_message() {
    let (fake, _node) = faulty(Fault::Status(
        500,
        "rpc error: No cluster leader".to_owned(),
    ));
    let line = dump_failing(bin_at(fake.address()), &[], 5).line();
    assert!(
        line.contains("500") && line.contains("No cluster leader"),
        "{line}"
    );
}

#[test]
fn malformed_json_exits_6() {
    let (fake, node) = faulty(Fault::MalformedJson);
    let line = dump_failing(bin_at(fake.address()), &["--node-id", &node], 6).line();
    assert!(line.contains("not the JSON expected"), "{line}");
}

#[test]
fn an_agent_without_a_client_is_explained() {
    let (mut cluster, _node) = web_cluster();
    cluster.agent.client_node_id = None;
    let fake = FakeNomad::start(cluster);
    let stderr = dump_failing(bin_at(fake.address()), &[], 5).stderr;
    assert_mentions(&stderr, &["runs no Nomad client", "--node-id"]);
}

#[test]
fn an_unknown_node_is_explained() {
    let (cluster, _node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    let args = ["--node-id", "0000-no-such-node"];
    let stderr = dump_failing(bin_at(fake.address()), &args, 5).stderr;
    assert_mentions(&stderr, &["does not know node", "0000-no-such-node"]);
}

#[test]
fn a_missing_output_directory_exits_7() {
    let (cluster, _node) = web_cluster();
    let (fake, dir) = fake_and_dir(cluster);
    let output = bin_at(fake.address())
        .args(["dump", "-o"])
        .arg(dir.path().join("missing/t.csv"))
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(7));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn bad_settings_exit_2_with_a_hint() {
    let with_env = |vars: &[(&str, &str)]| {
        let mut command = bin();
        command.envs(vars.iter().copied());
        command
    };
    let cases: [(Command, &[&str], &[&str]); 5] = [
        (
            with_env(&[("NOMAD_ADDR", "127.0.0.1:4646")]),
            &[],
            &["http://host:4646"],
        ),
        (
            bin(),
            &["--columns", "job,group"],
            &["unknown column \"job\"", "job_id"],
        ),
        (
            bin(),
            &["--reload", "command"],
            &["needs the command after --"],
        ),
        (bin(), &["--file-mode", "rw"], &["octal"]),
        (
            with_env(&[
                ("NOMAD_CACERT", "/nonexistent/ca.pem"),
                ("NOMAD_ADDR", "https://127.0.0.1:1"),
            ]),
            &[],
            &["/nonexistent/ca.pem"],
        ),
    ];
    for (command, args, hints) in cases {
        assert_mentions(&dump_failing(command, args, 2).stderr, hints);
    }
}
