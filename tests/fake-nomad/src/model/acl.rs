//! Nomad's ACL as the cluster holds it: tokens and what each one's policy grants. The one place
//! that decides whether a policy grants a capability ([`Policy::allows`]) and what a token's
//! policy is ([`Cluster::policy_of`]); the server turns a refusal into Nomad's answer.

use std::collections::{BTreeMap, BTreeSet};

use super::{Cluster, MessageType};

/// The capabilities one ACL token grants.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub management: bool,
    pub node_read: bool,
    pub agent_read: bool,
    /// Namespace name (or `*`) to its capabilities, e.g. `read-job`.
    pub namespaces: BTreeMap<String, BTreeSet<String>>,
}

/// What a request may need of a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability<'a> {
    /// `agent:read`.
    AgentRead,
    /// `node:read`.
    NodeRead,
    /// A namespace capability (`read-job`, `alloc-lifecycle`, …) in one namespace.
    Namespace(&'a str, &'a str),
    /// What only a management token may do.
    Management,
}

impl Capability<'_> {
    /// `read-job` in `namespace`.
    pub fn read_job(namespace: &str) -> Capability<'_> {
        Capability::Namespace(namespace, "read-job")
    }
}

/// Why a token's request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// ACLs are on and the cluster does not know the token.
    UnknownToken,
    /// The token's policy lacks a capability the request needs.
    Denied,
}

impl Policy {
    /// A management token: everything is allowed.
    pub fn management() -> Policy {
        Policy {
            management: true,
            ..Policy::default()
        }
    }

    /// What nomad-alloc-table needs: `node:read`, `agent:read` and `read-job` everywhere.
    pub fn alloc_table_reader() -> Policy {
        Policy::default()
            .node_read()
            .agent_read()
            .namespace("*", &["read-job"])
    }

    pub fn node_read(mut self) -> Policy {
        self.node_read = true;
        self
    }

    pub fn agent_read(mut self) -> Policy {
        self.agent_read = true;
        self
    }

    pub fn namespace(mut self, namespace: &str, capabilities: &[&str]) -> Policy {
        self.namespaces
            .entry(namespace.to_owned())
            .or_default()
            .extend(capabilities.iter().map(|c| (*c).to_owned()));
        self
    }

    /// Whether the policy grants `capability`: a management token grants everything, and a
    /// namespace rule of its own wins over the `*` rule.
    pub fn allows(&self, capability: Capability<'_>) -> bool {
        if self.management {
            return true;
        }
        match capability {
            Capability::AgentRead => self.agent_read,
            Capability::NodeRead => self.node_read,
            Capability::Namespace(namespace, capability) => self
                .namespaces
                .get(namespace)
                .or_else(|| self.namespaces.get("*"))
                .is_some_and(|caps| caps.contains(capability)),
            Capability::Management => false,
        }
    }
}

impl Cluster {
    pub fn enable_acl(&mut self) {
        self.acl_enabled = true;
    }

    /// Enables ACLs, with `tokens` (secret and policy) known.
    pub fn enable_acl_with<'a>(&mut self, tokens: impl IntoIterator<Item = (&'a str, Policy)>) {
        self.enable_acl();
        for (secret, policy) in tokens {
            self.add_token(secret, policy);
        }
    }

    pub fn add_token(&mut self, secret: &str, policy: Policy) {
        self.tokens.insert(secret.to_owned(), policy);
        self.commit(MessageType::Other, &[]);
    }

    pub fn revoke_token(&mut self, secret: &str) {
        self.tokens.remove(secret);
        self.commit(MessageType::Other, &[]);
    }

    /// The policy of a request carrying `token`, once it grants every one of `needs`. With ACLs
    /// disabled everything is allowed; without a token (or with an empty one) the anonymous
    /// policy (nothing) applies.
    pub fn policy_of(
        &self,
        token: Option<&str>,
        needs: &[Capability<'_>],
    ) -> Result<Policy, Refusal> {
        let policy = if !self.acl_enabled {
            Policy::management()
        } else {
            match token.filter(|t| !t.is_empty()) {
                None => Policy::default(),
                Some(secret) => self
                    .tokens
                    .get(secret)
                    .cloned()
                    .ok_or(Refusal::UnknownToken)?,
            }
        };
        if needs.iter().all(|need| policy.allows(*need)) {
            Ok(policy)
        } else {
            Err(Refusal::Denied)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_rule_for_a_namespace_overrides_the_wildcard() {
        let policy = Policy::default()
            .namespace("*", &["read-job"])
            .namespace("secret", &["list-jobs"]);
        assert!(policy.allows(Capability::read_job("default")));
        assert!(!policy.allows(Capability::read_job("secret")));
    }

    #[test]
    fn only_a_known_token_with_every_capability_needed_passes() {
        let mut c = Cluster::new(1);
        assert!(
            c.policy_of(Some("anything"), &[Capability::Management])
                .is_ok()
        );
        c.enable_acl();
        c.add_token("reader", Policy::alloc_table_reader());
        let needs = [Capability::NodeRead, Capability::read_job("default")];
        assert!(c.policy_of(Some("reader"), &needs).is_ok());
        assert_eq!(
            c.policy_of(Some("reader"), &[Capability::Management]).err(),
            Some(Refusal::Denied)
        );
        assert_eq!(
            c.policy_of(Some("nobody"), &[]).err(),
            Some(Refusal::UnknownToken)
        );
        assert_eq!(c.policy_of(Some(""), &needs).err(), Some(Refusal::Denied));
        assert!(c.policy_of(None, &[]).is_ok(), "anonymous, needing nothing");
    }
}
