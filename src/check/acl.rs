//! The ACL probes: what Nomad grants this token, asked the way `run` will ask (the agent, the
//! node or every node, the event stream, the signal API), each refusal turned into the grant
//! that fixes it.

use std::fmt::Display;

use super::report::Finding;
use super::stream::check_stream;
use super::token::check_token;
use crate::cli::WatchMode;
use crate::config::CheckSettings;
use crate::listing::local_node::{self, NodeError};
use crate::listing::{CLUSTER_TOPICS, NODE_TOPICS};
use crate::nomad::{Capability, Error, NomadClient};
use crate::reload::ReloadSettings;

/// The task name the signal probe asks for: Nomad checks the ACL before it looks the task up,
/// so a refusal means a missing capability, and "not found" means the capability is there.
const PROBE_TASK: &str = "nomad-alloc-table-check-no-such-task";

/// What a refusal means: the token is unknown, or it lacks `grant`. Returns the detail and the
/// fix.
fn refusal(error: &Error, grant: impl Display) -> (String, String) {
    let fix = match error {
        Error::UnknownToken { .. } => {
            "the token is not known to Nomad: check NOMAD_TOKEN or the token file".to_owned()
        }
        _ => format!("grant {grant} in the token's policy (deploy/nomad/acl-policy.hcl)"),
    };
    (error.to_string(), fix)
}

/// What Nomad grants for one node: the agent, the token, the node, the stream, the signal.
pub(super) async fn check_nomad(
    client: &NomadClient,
    node_id: Option<&str>,
    settings: &CheckSettings,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let run = &settings.run;
    let agent = if node_id.is_none() || run.alloc_dir.is_none() {
        Some(client.agent_self().await.map(drop))
    } else {
        None
    };
    match (&agent, node_id) {
        // Without a node ID, the node itself is asked of the agent: one cause, one line.
        (Some(Err(e @ Error::PermissionDenied { .. })), None) => {
            findings.push(Finding::fail(
                "the node",
                format!(
                    "{e}; without NOMAD_NODE_ID (--node-id) the node is asked of /v1/agent/self, which needs agent:read"
                ),
                format!(
                    "set NOMAD_NODE_ID to this client's node ID (sudo cat <data_dir>/client/client-id, or `nomad node status -self -short`), or grant {}",
                    Capability::AgentRead
                ),
            ));
            findings.push(check_token(client, None));
        }
        _ => {
            if let Some(answer) = agent {
                findings.push(agent_finding(answer, node_id.is_some()));
            }
            findings.extend(check_node(client, node_id).await);
        }
    }
    // Blocking queries need no event-stream permission: the listing already answered above.
    if run.watch == WatchMode::Events {
        findings.push(check_stream(client, NODE_TOPICS).await);
    }
    if let ReloadSettings::NomadTask(reload) = &run.publish.reloader {
        findings.push(check_alloc_lifecycle(client, &reload.alloc_id).await);
    }
    findings
}

/// The agent's answer, asked for the node ID or the alloc dir; `has_node_id` says which.
fn agent_finding(answer: Result<(), Error>, has_node_id: bool) -> Finding {
    match answer {
        Ok(()) => Finding::pass("agent:read", "the local agent answers /v1/agent/self"),
        Err(e) => {
            let (detail, fix) = refusal(&e, Capability::AgentRead);
            let instead = if has_node_id {
                "or pass --alloc-dir (NOMAD_ALLOC_TABLE_ALLOC_DIR), which needs no agent:read"
            } else {
                "or pass --node-id and --alloc-dir, which need no agent:read"
            };
            Finding::fail("agent:read", detail, format!("{fix}; {instead}"))
        }
    }
}

/// The token (judged from how the node's read failed, if it did) and the node.
async fn check_node(client: &NomadClient, node_id: Option<&str>) -> [Finding; 2] {
    let node = local_node::resolve(client, node_id).await;
    let refused = match &node {
        Err(NodeError::Nomad(e)) => Some(e),
        _ => None,
    };
    let token = check_token(client, refused);
    let node = match node {
        Ok(node) => Finding::pass(
            "node:read and the node",
            format!(
                "{} ({}, datacenter {})",
                node.id, node.name, node.datacenter
            ),
        ),
        Err(NodeError::Nomad(e)) => {
            let (detail, fix) = refusal(&e, Capability::NodeRead);
            Finding::fail("node:read and the node", detail, fix)
        }
        Err(e) => Finding::fail(
            "node:read and the node",
            e.to_string(),
            "set --node-id (NOMAD_NODE_ID) to this client's node ID",
        ),
    };
    [token, node]
}

/// What the cluster scope needs of Nomad: every node (`node:read`), every namespace's
/// allocations and the event stream of both topics (`read-job` on every namespace). There is no
/// node to resolve and no alloc dir.
pub(super) async fn check_cluster(client: &NomadClient) -> Vec<Finding> {
    const NODES: &str = "node:read (every node)";
    let nodes = client.nodes().await;
    let mut findings = vec![check_token(client, nodes.as_ref().err())];
    findings.push(match nodes {
        Ok(nodes) => Finding::pass(NODES, format!("{} nodes", nodes.value.len())),
        Err(e) => {
            let (detail, fix) = refusal(&e, Capability::NodeRead);
            Finding::fail(NODES, detail, fix)
        }
    });
    findings.push(check_stream(client, CLUSTER_TOPICS).await);
    findings
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
            // Which namespace Vector runs in is not known here, so the grant is described, not
            // written as HCL.
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
