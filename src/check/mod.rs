//! `check`: a doctor for a new install, run with the flags and environment `run` gets. Each
//! check is one line, ✓ or ✗, and every ✗ says what to do. It reads and never writes (but for
//! a probe file in the output directory, removed at once), and never sends a signal or prints a
//! token.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{ReportFormat, WatchMode};
use crate::config::{CheckSettings, Scope};
use crate::listing::local_node::{self, NodeError};
use crate::nomad::{Blocking, Error, NomadClient, StreamEnd, events::Message};
use crate::publish::Publisher;
use crate::reload::signal::MIN_PROCESS_AGE;
use crate::reload::{ReloadSettings, Reloader};
use crate::table::validate;
use crate::watch::{CLUSTER_TOPICS, NODE_TOPICS};

/// How long the event-stream probe waits for its first heartbeat (Nomad sends one at once,
/// then every 30 s).
const STREAM_PROBE: Duration = Duration::from_secs(35);
/// The task name the signal probe asks for: Nomad checks the ACL before it looks the task up,
/// so a refusal means a missing capability, and "not found" means the capability is there.
const PROBE_TASK: &str = "nomad-alloc-table-check-no-such-task";

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub ok: bool,
    /// What was checked.
    pub check: String,
    /// What was found.
    pub detail: String,
    /// What to do, for a failed check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn pass(check: &str, detail: impl Into<String>) -> Finding {
        Finding {
            ok: true,
            check: check.to_owned(),
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            ok: false,
            check: check.to_owned(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The report: one line per finding, or a JSON array.
pub fn render(findings: &[Finding], format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => {
            let mut text = serde_json::to_string_pretty(findings).expect("findings serialize");
            text.push('\n');
            text
        }
        ReportFormat::Text => findings
            .iter()
            .map(|f| match &f.fix {
                None => format!("✓ {}: {}\n", f.check, f.detail),
                Some(fix) => format!("✗ {}: {} — {fix}\n", f.check, f.detail),
            })
            .collect(),
    }
}

/// What a refusal means for a capability: the token is unknown, or it lacks the capability.
fn refusal(error: &Error, capability: &str) -> (String, String) {
    let detail = error.to_string();
    if detail.contains("ACL token not found") {
        (
            detail,
            "the token is not known to Nomad: check NOMAD_TOKEN or the token file".to_owned(),
        )
    } else {
        (
            detail,
            format!("grant {capability} in the token's policy (deploy/nomad/acl-policy.hcl)"),
        )
    }
}

/// Runs every check the settings call for.
pub async fn run(
    client: Arc<NomadClient>,
    scope: &Scope,
    settings: &CheckSettings,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let address = client.address().to_string();
    // Any answer, an error status included, means the address answers and TLS verified.
    let answers = match client.status_leader().await {
        Ok(leader) => {
            findings.push(Finding::pass(
                "Nomad answers",
                format!("{address} (leader {leader})"),
            ));
            true
        }
        Err(
            e @ (Error::Status { .. }
            | Error::PermissionDenied { .. }
            | Error::UnknownToken { .. }
            | Error::Decode { .. }),
        ) => {
            findings.push(Finding::pass("Nomad answers", format!("{address} ({e})")));
            true
        }
        Err(e) => {
            findings.push(Finding::fail(
                "Nomad answers",
                e.to_string(),
                "check --address/NOMAD_ADDR, the TLS settings (NOMAD_CACERT, NOMAD_TLS_SERVER_NAME) and that the agent runs",
            ));
            false
        }
    };
    let run = &settings.run;
    if answers {
        findings.extend(match scope {
            Scope::Node(node_id) => check_nomad(&client, node_id.as_deref(), settings).await,
            Scope::Cluster { .. } => check_cluster(&client).await,
        });
    }
    // The local checks are worth making even when Nomad does not answer.
    if let Scope::Node(_) = scope {
        let alloc_dir = match &run.alloc_dir {
            Some(dir) => dir.clone(),
            None => crate::run::default_alloc_dir(&client).await,
        };
        findings.push(check_alloc_dir(&alloc_dir));
    }
    findings.extend(check_output(settings));
    findings.extend(check_reload(client, run.publish.reloader.clone(), &run.publish.output).await);
    findings
}

/// What Nomad grants: the agent, the token, the node, the stream, the signal.
async fn check_nomad(
    client: &NomadClient,
    node_id: Option<&str>,
    settings: &CheckSettings,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let run = &settings.run;
    let agent_needed = node_id.is_none() || run.alloc_dir.is_none();
    if agent_needed {
        findings.push(match client.agent_self().await {
            Ok(_) => Finding::pass("agent:read", "the local agent answers /v1/agent/self"),
            Err(e) => {
                let (detail, fix) = refusal(&e, "agent { policy = \"read\" }");
                Finding::fail(
                    "agent:read",
                    detail,
                    format!("{fix}; or pass --node-id and --alloc-dir, which need no agent:read"),
                )
            }
        });
    }
    let node = local_node::resolve(client, node_id).await;
    let refused = match &node {
        Err(NodeError::Nomad(e)) => Some(e),
        _ => None,
    };
    findings.push(check_token(client, refused));
    findings.push(match node {
        Ok(node) => Finding::pass(
            "node:read and the node",
            format!(
                "{} ({}, datacenter {})",
                node.id, node.name, node.datacenter
            ),
        ),
        Err(NodeError::Nomad(e)) => {
            let (detail, fix) = refusal(&e, "node { policy = \"read\" }");
            Finding::fail("node:read and the node", detail, fix)
        }
        Err(e) => Finding::fail(
            "node:read and the node",
            e.to_string(),
            "set --node-id (NOMAD_NODE_ID) to this client's node ID",
        ),
    });
    // Blocking queries need no event-stream permission: the listing already answered above.
    if run.watch == WatchMode::Events {
        findings.push(check_stream(client, NODE_TOPICS).await);
    }
    if let ReloadSettings::NomadTask { alloc_id, .. } = &run.publish.reloader {
        findings.push(check_alloc_lifecycle(client, alloc_id).await);
    }
    findings
}

/// What the cluster scope needs of Nomad: every node (`node:read`), every namespace's
/// allocations and the event stream of both topics (`read-job` on every namespace). There is no
/// node to resolve and no alloc dir.
async fn check_cluster(client: &NomadClient) -> Vec<Finding> {
    const NODES: &str = "node:read (every node)";
    let nodes = client.nodes().await;
    let mut findings = vec![check_token(client, nodes.as_ref().err())];
    findings.push(match nodes {
        Ok(nodes) => Finding::pass(NODES, format!("{} nodes", nodes.value.len())),
        Err(e) => {
            let (detail, fix) = refusal(&e, "node { policy = \"read\" }");
            Finding::fail(NODES, detail, fix)
        }
    });
    findings.push(check_stream(client, CLUSTER_TOPICS).await);
    findings
}

/// Whether Nomad knows the token, judged from how the first read (the node, or the nodes)
/// failed, if it did: "ACL token not found" is an unknown token; any other answer, a refusal
/// for a capability included, means it is known.
fn check_token(client: &NomadClient, refused: Option<&Error>) -> Finding {
    const CHECK: &str = "the token is accepted";
    if !client.has_token() {
        return Finding::pass(
            CHECK,
            "no token is set (anonymous: enough only without ACLs)",
        );
    }
    match refused {
        Some(e) if e.to_string().contains("ACL token not found") => Finding::fail(
            CHECK,
            e.to_string(),
            "Nomad does not know this token: check NOMAD_TOKEN or the token file",
        ),
        _ => Finding::pass(CHECK, "Nomad knows the token"),
    }
}

/// `namespace "*" { capabilities = ["read-job"] }`, tested with a real `namespace=*`
/// subscription until its first heartbeat or its refusal.
async fn check_stream(client: &NomadClient, topics: &[&str]) -> Finding {
    let cluster = topics == CLUSTER_TOPICS;
    let (check, fix) = if cluster {
        (
            "node:read and read-job in every namespace (event stream)",
            "grant node { policy = \"read\" } (the Node topic) and namespace \"*\" { capabilities = [\"read-job\"] } (namespace=* needs it on every namespace)",
        )
    } else {
        (
            "read-job in every namespace (event stream)",
            "grant namespace \"*\" { capabilities = [\"read-job\"] }: the stream of namespace=* needs it on every namespace",
        )
    };
    // From the start of Nomad's buffer: the first message comes at once, a frame or a heartbeat.
    let mut stream = match client.event_stream(topics, 1).await {
        Ok(stream) => stream,
        Err(e) => return Finding::fail(check, e.to_string(), fix),
    };
    match stream.next(STREAM_PROBE).await {
        Ok(Message::Heartbeat | Message::Frame(_)) => {
            Finding::pass(check, "a namespace=* subscription is accepted")
        }
        Ok(Message::Unparseable(line)) => Finding::fail(
            check,
            format!("the stream sent a line that is not an event: {line}"),
            "check for a proxy between this program and Nomad",
        ),
        Err(end @ StreamEnd::Closed { .. }) => Finding::fail(check, end.to_string(), fix),
        Err(end) => Finding::fail(
            check,
            end.to_string(),
            "check the connection to Nomad (a proxy that buffers or cuts streams?)",
        ),
    }
}

/// `alloc-lifecycle` on Vector's allocation, for `--reload nomad-task`: a signal to a task that
/// does not exist is refused (403) without the capability and answered "not found" with it.
async fn check_alloc_lifecycle(client: &NomadClient, alloc_id: &str) -> Finding {
    const CHECK: &str = "alloc-lifecycle on Vector's allocation";
    match client
        .signal_allocation(alloc_id, PROBE_TASK, "SIGHUP")
        .await
    {
        Ok(()) => Finding::pass(CHECK, format!("allocation {alloc_id}")),
        Err(e @ (Error::PermissionDenied { .. } | Error::UnknownToken { .. })) => {
            let (detail, fix) = refusal(&e, "namespace:alloc-lifecycle on Vector's namespace");
            Finding::fail(CHECK, detail, fix)
        }
        // Past the ACL check, the made-up task is not found: the capability is there. Only an
        // unknown allocation is a problem.
        Err(Error::Status { status, body, .. })
            if !(status == 404 && body.to_ascii_lowercase().contains("alloc")) =>
        {
            Finding::pass(
                CHECK,
                format!("allocation {alloc_id} accepts signals from this token"),
            )
        }
        Err(e) => Finding::fail(
            CHECK,
            e.to_string(),
            "check --reload-alloc-id (NOMAD_ALLOC_ID): it must be Vector's allocation",
        ),
    }
}

/// The alloc dir exists and this user can list it.
fn check_alloc_dir(dir: &Path) -> Finding {
    const CHECK: &str = "the alloc dir can be listed";
    match std::fs::read_dir(dir) {
        Ok(entries) => Finding::pass(
            CHECK,
            format!("{} ({} entries)", dir.display(), entries.count()),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Finding::fail(
            CHECK,
            format!("{}: {e}", dir.display()),
            "Nomad creates it with mode 0711: give this user read access (setfacl -m u:USER:rx, see deploy/systemd) or run with CAP_DAC_READ_SEARCH",
        ),
        Err(e) => Finding::fail(
            CHECK,
            format!("{}: {e}", dir.display()),
            "set --alloc-dir to the Nomad client's alloc dir (<data_dir>/alloc)",
        ),
    }
}

/// The output directory is writable, and a table already there loads by Vector's rules.
fn check_output(settings: &CheckSettings) -> Vec<Finding> {
    let output = &settings.run.publish.output;
    let dir = crate::publish::directory_of(output);
    let mut findings = vec![match tempfile::Builder::new()
        .prefix(".nomad-alloc-table-check.")
        .tempfile_in(dir)
    {
        Ok(_) => Finding::pass(
            "the output directory is writable",
            dir.display().to_string(),
        ),
        Err(e) => Finding::fail(
            "the output directory is writable",
            format!("{}: {e}", dir.display()),
            "create the directory and make it writable by this user (same filesystem as the table)",
        ),
    }];
    const CHECK: &str = "the table loads in Vector";
    findings.push(match std::fs::read(output) {
        Ok(bytes) => match validate::validate(&bytes, settings.run.publish.format) {
            Ok(valid) => {
                Finding::pass(CHECK, format!("{} ({} rows)", output.display(), valid.rows))
            }
            Err(e) => Finding::fail(
                CHECK,
                format!("{}: {e}", output.display()),
                "run `dump` to replace it with a valid table",
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Finding::pass(
            CHECK,
            format!(
                "{} does not exist yet; run and dump create it",
                output.display()
            ),
        ),
        Err(e) => Finding::fail(
            CHECK,
            format!("{}: {e}", output.display()),
            "make the table readable by this user and by Vector",
        ),
    });
    findings
}

/// The reload target, and whether Vector was told about the table on disk.
async fn check_reload(
    client: Arc<NomadClient>,
    settings: ReloadSettings,
    output: &Path,
) -> Vec<Finding> {
    const CHECK: &str = "Vector's reload target";
    let mut findings = Vec::new();
    match &settings {
        ReloadSettings::None => findings.push(Finding::pass(
            CHECK,
            "none (--reload none: Vector must run with --watch-config)",
        )),
        ReloadSettings::Signal(signal) => findings.push(match signal.inspect() {
            Ok((pid, age)) if age >= MIN_PROCESS_AGE => Finding::pass(
                CHECK,
                format!("process {pid} named {:?}", signal.process_name),
            ),
            Ok((pid, _)) => Finding::pass(
                CHECK,
                format!(
                    "process {pid} named {:?}, younger than a second: a reload waits until it is a second old",
                    signal.process_name
                ),
            ),
            Err(e) => Finding::fail(
                CHECK,
                e.to_string(),
                "start Vector, or point --vector-pid/--vector-pidfile/--vector-process-name at it",
            ),
        }),
        ReloadSettings::NomadTask { alloc_id, task, .. } => {
            findings.push(match client.allocation(alloc_id, Blocking::default()).await {
                Ok(alloc) => match alloc.value.task_states.get(task) {
                    Some(state) if state.state == "running" => Finding::pass(
                        CHECK,
                        format!("task {task:?} of allocation {alloc_id} is running"),
                    ),
                    other => Finding::fail(
                        CHECK,
                        format!(
                            "task {task:?} of allocation {alloc_id} is not running ({:?})",
                            other.map(|s| s.state.as_str()).unwrap_or("no such task")
                        ),
                        "check --reload-task: it must name Vector's task in that allocation",
                    ),
                },
                Err(e) => Finding::fail(
                    CHECK,
                    e.to_string(),
                    "check --reload-alloc-id (NOMAD_ALLOC_ID) and read-job on its namespace",
                ),
            });
        }
        ReloadSettings::Command { argv, .. } => {
            let program = argv.first().cloned().unwrap_or_default();
            findings.push(if is_executable(&program) {
                Finding::pass(CHECK, format!("command {program:?}"))
            } else {
                Finding::fail(
                    CHECK,
                    format!("command {program:?} is not an executable file on PATH"),
                    "give the reload command's full path after --",
                )
            });
        }
    }
    let publisher = Publisher::new(
        output.to_owned(),
        crate::table::render::FileFormat::Csv,
        0o644,
    );
    let reloader = Reloader::new(settings, client, output);
    if let Ok(Some(stamp)) = publisher.on_disk()
        && reloader.has_record()
    {
        findings.push(if reloader.owes_announcement(&stamp) {
            Finding::fail(
                "Vector was told about the table on disk",
                "the table on disk was published but never announced",
                "run `dump` once (or start `run`): it reloads Vector for it",
            )
        } else {
            Finding::pass(
                "Vector was told about the table on disk",
                "the last reload announced it",
            )
        });
    }
    findings
}

/// Whether `program` (a path, or a name looked up on PATH) is an executable file.
fn is_executable(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(program))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_marks_each_line_and_says_the_fix_of_a_failure() {
        let findings = [
            Finding::pass("Nomad answers", "http://127.0.0.1:4646"),
            Finding::fail("node:read", "403", "grant node read"),
        ];
        assert_eq!(
            render(&findings, ReportFormat::Text),
            "✓ Nomad answers: http://127.0.0.1:4646\n✗ node:read: 403 — grant node read\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&findings, ReportFormat::Json)).expect("json");
        assert_eq!(json[1]["ok"], false);
        assert_eq!(json[1]["fix"], "grant node read");
        assert!(json[0].get("fix").is_none());
    }

    #[test]
    fn executables_are_found_by_path_or_on_path() {
        assert!(is_executable("sh"));
        assert!(is_executable("/bin/sh"));
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").expect("write");
        std::fs::set_permissions(&plain, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .expect("chmod");
        assert!(!is_executable(plain.to_str().expect("utf8")));
        assert!(!is_executable("no-such-program-anywhere"));
    }
}
