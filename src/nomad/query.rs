//! What a read asks for and what it gets back: the blocking-query parameters, which server may
//! answer, the decoded answer with its index, and when a stale answer is too stale to trust.
//! Kept apart from the client so that the watchers can reason about indexes and consistency
//! without the HTTP machinery.

use std::time::Duration;

/// An answer from a server that last heard from the leader longer ago than this (or that knows
/// no leader) is too stale to trust: the read is repeated against the leader. Raft followers
/// hear from the leader every few hundred milliseconds, so only a partitioned or wedged server
/// gets here.
pub const MAX_STALE: Duration = Duration::from_secs(5);

/// A read's parameters: a blocking query returns once the index passes `index`, or after
/// `wait`; `consistency` says which server may answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Blocking {
    pub index: u64,
    pub wait: Option<Duration>,
    pub consistency: Consistency,
}

impl Blocking {
    /// For endpoints the agent answers itself, without a raft read: no query parameters.
    pub(super) const AGENT: Blocking = Blocking {
        index: 0,
        wait: None,
        consistency: Consistency::Leader,
    };
}

/// Which server answers a read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    /// `stale=true`: any server answers from its own state, so reads spread over the servers
    /// instead of all going to the leader. An answer staler than [`MAX_STALE`] is repeated
    /// against the leader.
    #[default]
    Stale,
    /// The leader answers (Nomad's default): for the rare answer that must be the truth.
    Leader,
}

/// A decoded answer, its `X-Nomad-Index` (absent on endpoints that are not indexed) and the
/// size of its body.
#[derive(Clone, Debug, PartialEq)]
pub struct Indexed<T> {
    pub value: T,
    pub index: Option<u64>,
    /// Response body bytes.
    pub bytes: usize,
    /// `X-Nomad-NextToken` of a paginated listing: where the next page starts, if any.
    pub next_token: Option<String>,
}

/// Why an answer is too stale to trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Staleness {
    /// `X-Nomad-KnownLeader: false`: the server knows no leader.
    NoLeader,
    /// `X-Nomad-LastContact` in milliseconds, above [`MAX_STALE`].
    LastContact(u64),
}

impl std::fmt::Display for Staleness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Staleness::NoLeader => f.write_str("the server knows no leader"),
            Staleness::LastContact(ms) => {
                write!(f, "the server last heard from the leader {ms} ms ago")
            }
        }
    }
}

impl Staleness {
    /// Judges the headers Nomad's `setMeta` sets on every read (an endpoint without them, such
    /// as the agent's own, is never stale).
    pub(super) fn of(known_leader: Option<&str>, last_contact: Option<&str>) -> Option<Staleness> {
        if known_leader == Some("false") {
            return Some(Staleness::NoLeader);
        }
        let ms: u64 = last_contact?.parse().ok()?;
        (u128::from(ms) > MAX_STALE.as_millis()).then_some(Staleness::LastContact(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_from_a_server_out_of_touch_with_the_leader_are_stale() {
        assert_eq!(Staleness::of(Some("true"), Some("0")), None);
        assert_eq!(Staleness::of(Some("true"), Some("5000")), None);
        assert_eq!(
            Staleness::of(Some("true"), Some("5001")),
            Some(Staleness::LastContact(5001))
        );
        assert_eq!(
            Staleness::of(Some("false"), Some("0")),
            Some(Staleness::NoLeader)
        );
        assert_eq!(Staleness::of(None, None), None, "the agent's own endpoints");
    }
}
