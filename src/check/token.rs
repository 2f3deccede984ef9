//! Whether Nomad knows the token. There is no endpoint that says so without also testing a
//! capability, so the answer is read from how the first read of the node (or the nodes) failed:
//! only [`Error::UnknownToken`] means an unknown token.

use super::report::Finding;
use crate::nomad::{Error, NomadClient};

/// Judges the token from `refused`, the first read's error, if it failed: an unknown token
/// fails the check; any other answer, a refusal for a capability included, means it is known.
pub(super) fn check_token(client: &NomadClient, refused: Option<&Error>) -> Finding {
    const CHECK: &str = "the token is accepted";
    if !client.has_token() {
        return Finding::pass(
            CHECK,
            "no token is set (anonymous: enough only without ACLs)",
        );
    }
    match refused {
        Some(e @ Error::UnknownToken { .. }) => Finding::fail(
            CHECK,
            e.to_string(),
            "Nomad does not know this token: check NOMAD_TOKEN or the token file",
        ),
        _ => Finding::pass(CHECK, "Nomad knows the token"),
    }
}
