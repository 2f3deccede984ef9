//! What a token's ACL policy must grant, written once. [`Capability`] is a grant as Nomad's
//! policy language writes it, so the client's 403 messages and the fixes `check` proposes quote
//! the same HCL as `deploy/nomad/acl-policy.hcl`; [`Needs`] is what one request needs, the
//! sentence a refusal of it ends with.

use std::fmt;

/// One grant of a Nomad ACL policy this program relies on. `Display` is the HCL that grants it,
/// ready to paste into a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// The local agent's own view (`/v1/agent/self`): its node ID and alloc dir.
    AgentRead,
    /// Nodes, their allocation listings, and the event stream's Node topic.
    NodeRead,
    /// The allocations of every namespace. The event stream with `namespace=*` is refused
    /// unless the token can `read-job` in every namespace (since Nomad 1.9.6, CVE-2025-0937).
    ReadJobEverywhere,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::AgentRead => r#"agent { policy = "read" }"#,
            Capability::NodeRead => r#"node { policy = "read" }"#,
            Capability::ReadJobEverywhere => r#"namespace "*" { capabilities = ["read-job"] }"#,
        })
    }
}

/// What a request to Nomad needs of the token, for the message of a refusal: each endpoint the
/// client calls names one, and `Display` says it with what to do instead, where there is a way
/// around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// `/v1/status/leader` answers anyone.
    Nothing,
    /// `/v1/agent/self`, which only the node ID and alloc dir are asked of.
    AgentRead,
    /// One node and its allocation listing.
    NodeRead,
    /// Every node and the Node topic (`--scope cluster`).
    NodeReadCluster,
    /// One allocation.
    ReadJob,
    /// A signal to Vector's task (`--reload nomad-task`).
    AllocLifecycle,
    /// The allocations of every namespace: the cluster listing and the event stream.
    ReadJobEverywhere,
}

impl fmt::Display for Needs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Needs::Nothing => f.write_str("nothing (this endpoint needs no ACL)"),
            Needs::AgentRead => f.write_str(
                "agent:read to ask the agent for its node ID; or pass --node-id (NOMAD_NODE_ID) instead",
            ),
            Needs::NodeRead => write!(
                f,
                "node:read (and {} to see allocations)",
                Capability::ReadJobEverywhere
            ),
            Needs::NodeReadCluster => f.write_str(
                "node:read (--scope cluster lists every node and follows the Node topic)",
            ),
            Needs::ReadJob => f.write_str("namespace:read-job on the allocation's namespace"),
            Needs::AllocLifecycle => f.write_str(
                "namespace:alloc-lifecycle on the namespace of Vector's allocation (to signal its task)",
            ),
            Needs::ReadJobEverywhere => write!(
                f,
                "{}: the stream of namespace=* needs read-job on every namespace",
                Capability::ReadJobEverywhere
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_read_as_the_hcl_of_the_shipped_policy() {
        let policy = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/nomad/acl-policy.hcl"
        ))
        .expect("the shipped policy");
        let words = |text: &str| {
            text.split(|c: char| c.is_whitespace() || c == '#')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        };
        for capability in [
            Capability::AgentRead,
            Capability::NodeRead,
            Capability::ReadJobEverywhere,
        ] {
            assert!(
                words(&policy).contains(&words(&capability.to_string())),
                "{capability} is not in deploy/nomad/acl-policy.hcl"
            );
        }
    }
}
