//! The one harness of the integration tests and the benchmarks (which include this module by
//! path): the launcher of the binary, bounded waits ([`Patience`]), scenario builders, a CSV
//! reader with the rules Vector uses, a running `run` ([`daemon`]) with its metrics
//! ([`metrics`]), and the stand-ins for Vector ([`vector`]). Test modules import only this,
//! never each other.

pub mod daemon;
pub mod launch;
pub mod memory_table;
pub mod metrics;
pub mod storm;
pub mod vector;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use fake_nomad::{Cluster, Job, Node};

/// The binary as an `assert_cmd` command, with a clean environment ([`launch::command`]).
pub fn bin() -> Command {
    Command::from_std(launch::command())
}

/// How long to wait for something, and how often to look.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    pub limit: Duration,
    pub every: Duration,
}

impl Patience {
    /// The tests': 20 s, looking every 10 ms.
    pub const TEST: Patience = Patience {
        limit: Duration::from_secs(20),
        every: Duration::from_millis(10),
    };
    /// For `run` with the operator's defaults (the benchmarks; the slowest recovery, a silent
    /// stream, waits out a 75 s read deadline): 5 minutes, looking every 2 ms, so that a timed
    /// wait is as precise as that.
    pub const DEPLOYED: Patience = Patience {
        limit: Duration::from_secs(300),
        every: Duration::from_millis(2),
    };

    /// Waits until `condition` holds; the error says what was awaited (callers add context,
    /// such as the program's log).
    pub fn wait(self, what: &str, mut condition: impl FnMut() -> bool) -> Result<(), String> {
        let deadline = Instant::now() + self.limit;
        while !condition() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {:?} waiting for {what}",
                    self.limit
                ));
            }
            std::thread::sleep(self.every);
        }
        Ok(())
    }
}

/// Waits with the tests' [`Patience`] until `condition` holds.
pub fn eventually(what: &str, condition: impl FnMut() -> bool) -> Result<(), String> {
    Patience::TEST.wait(what, condition)
}

/// A free loopback address (bound and released: a tiny race, as every test that picks a port
/// has): for a listener to start on, or as an address where nothing answers.
pub fn free_address() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// `GET path` over plain HTTP/1.1; the status code and body, or `None` when nothing listens.
pub fn http_get(address: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The fake serving `cluster`, and a fresh directory (for the table, a token file, …).
pub fn fake_and_dir(cluster: Cluster) -> (fake_nomad::FakeNomad, tempfile::TempDir) {
    (
        fake_nomad::FakeNomad::start(cluster),
        tempfile::tempdir().expect("tempdir"),
    )
}

/// What `command` writes on stdout; it must succeed.
pub fn stdout_of(command: &mut Command) -> Vec<u8> {
    command.assert().success().get_output().stdout.clone()
}

/// [`stdout_of`], as text.
pub fn text_of(command: &mut Command) -> String {
    String::from_utf8(stdout_of(command)).expect("utf8")
}

/// Asserts that `text` (a report, an error) mentions each of `wanted`.
pub fn assert_mentions(text: &str, wanted: &[&str]) {
    for word in wanted {
        assert!(text.contains(word), "{word}: {text}");
    }
}

/// The binary pointed at `address`.
pub fn bin_at(address: &str) -> Command {
    let mut cmd = bin();
    cmd.env("NOMAD_ADDR", address);
    cmd
}

/// A cluster with one client node (`client-1` in `dc-test`) that the agent runs.
pub fn cluster_with_node() -> (Cluster, String) {
    let mut cluster = Cluster::new(42);
    let node = cluster.add_node(Node::new("client-1").datacenter("dc-test"));
    cluster.set_agent_node(&node);
    (cluster, node)
}

/// [`cluster_with_node`] plus a service job `web` with one task, placed once on the node.
pub fn web_cluster() -> (Cluster, String) {
    let (mut cluster, node) = cluster_with_node();
    cluster.register_job(Job::web());
    cluster.place("default", "web", "api", &node);
    (cluster, node)
}

/// [`web_cluster`] with ACLs on and `valid` a token with the table reader's policy, served by
/// the fake, and a token file holding `written`.
pub struct TokenFileCluster {
    pub fake: fake_nomad::FakeNomad,
    pub node: String,
    pub token_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl TokenFileCluster {
    pub fn start(valid: &str, written: &str) -> TokenFileCluster {
        let (mut cluster, node) = web_cluster();
        cluster.enable_acl_with([(valid, fake_nomad::Policy::alloc_table_reader())]);
        let dir = tempfile::tempdir().expect("tempdir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, written).expect("write the token file");
        TokenFileCluster {
            fake: fake_nomad::FakeNomad::start(cluster),
            node,
            token_file,
            _dir: dir,
        }
    }

    /// `--token-file <file> --node-id <node>`, for `run`.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--token-file".to_owned(),
            self.token_file.to_str().expect("utf8").to_owned(),
            "--node-id".to_owned(),
            self.node.clone(),
        ]
    }

    /// Replaces the token in the file.
    pub fn write_token(&self, token: &str) {
        std::fs::write(&self.token_file, token).expect("write the token file");
    }
}

/// A row of the table: column → value.
pub type Row = BTreeMap<String, String>;

/// Parses CSV the way Vector's file table does and returns each row as column → value.
pub fn parse_csv(bytes: &[u8]) -> Vec<Row> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let header = reader.headers().expect("header").clone();
    reader
        .records()
        .map(|r| {
            let record = r.expect("valid record");
            header
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

/// Runs `command` (the binary, pointed at Nomad, with any global flags) as
/// `dump <extra> -o <path>`, which must succeed.
pub fn dump(command: &mut Command, path: &Path, extra: &[&str]) {
    command
        .arg("dump")
        .args(extra)
        .arg("-o")
        .arg(path)
        .assert()
        .success();
}

/// The table at `path`, parsed.
pub fn rows_at(path: &Path) -> Vec<Row> {
    parse_csv(&std::fs::read(path).expect("table written"))
}

/// Runs `dump` against `address` into `path` and returns the parsed rows.
pub fn dump_rows(address: &str, path: &Path, extra: &[&str]) -> Vec<Row> {
    dump(&mut bin_at(address), path, extra);
    rows_at(path)
}

/// Serves `cluster` and returns the rows that `dump` with `extra` flags writes of it.
pub fn rows_dumped(cluster: Cluster, extra: &[&str]) -> Vec<Row> {
    let (fake, dir) = fake_and_dir(cluster);
    dump_rows(fake.address(), &dir.path().join("allocs.csv"), extra)
}

/// The rows of one allocation, by task name.
pub fn rows_of<'a>(rows: &'a [Row], alloc_id: &str) -> BTreeMap<&'a str, &'a Row> {
    rows.iter()
        .filter(|r| r["alloc_id"] == alloc_id)
        .map(|r| (r["task"].as_str(), r))
        .collect()
}
