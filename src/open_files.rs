//! The process's limit on open files, raised at start from the soft to the hard
//! `RLIMIT_NOFILE`, as Go programs (Nomad and Consul among them) have done since Go 1.19: a
//! small soft limit (256 or 1024, what containers and units often give) is no reason to fail
//! a publish while the hard limit allows more. The listener's own cap keeps its clients from
//! using them up (`observe::http::MAX_CONNECTIONS`).

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tracing::debug;

/// What a raise would set: the soft limit moved up to the hard one, when the hard one is
/// finite and higher; `None` when there is nothing to raise. Pure.
pub fn raised(limit: Rlimit) -> Option<Rlimit> {
    let hard = limit.maximum?;
    match limit.current {
        Some(soft) if soft < hard => Some(Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        }),
        _ => None,
    }
}

/// Raises the soft limit on open files to the hard one, and logs at debug what it is then.
/// A refusal leaves the limit as it was: the program works within it.
pub fn raise_to_hard_limit() {
    let before = getrlimit(Resource::Nofile);
    let after = match raised(before) {
        Some(wanted) => match setrlimit(Resource::Nofile, wanted) {
            Ok(()) => wanted,
            Err(e) => {
                debug!(error = %e, soft = ?before.current, "cannot raise the open-files limit");
                before
            }
        },
        None => before,
    };
    debug!(soft = ?after.current, hard = ?after.maximum, "open-files limit");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(current: Option<u64>, maximum: Option<u64>) -> Rlimit {
        Rlimit { current, maximum }
    }

    #[test]
    fn the_soft_limit_rises_to_a_finite_higher_hard_limit_only() {
        assert_eq!(
            raised(limit(Some(256), Some(4096))),
            Some(limit(Some(4096), Some(4096)))
        );
        assert_eq!(raised(limit(Some(4096), Some(4096))), None);
        assert_eq!(
            raised(limit(Some(256), None)),
            None,
            "no infinite soft limit"
        );
        assert_eq!(raised(limit(None, None)), None);
    }
}
