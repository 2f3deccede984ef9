//! Whether Nomad answers at all: the address is right, the agent runs and TLS verifies. Asked
//! of `/v1/status/leader`, which needs no ACL, so that a refusal further on is about the token
//! and not about the connection.

use super::report::Finding;
use crate::nomad::{Error, NomadClient};

/// Passes on any answer, an error status included: only a failure to connect (or to verify
/// TLS, or to get an answer in time) fails it.
pub(super) async fn check_answers(client: &NomadClient) -> Finding {
    const CHECK: &str = "Nomad answers";
    let address = client.address().to_string();
    match client.status_leader().await {
        Ok(leader) => Finding::pass(CHECK, format!("{address} (leader {leader})")),
        Err(
            e @ (Error::Status { .. }
            | Error::PermissionDenied { .. }
            | Error::UnknownToken { .. }
            | Error::Decode { .. }),
        ) => Finding::pass(CHECK, format!("{address} ({e})")),
        Err(e) => Finding::fail(
            CHECK,
            e.to_string(),
            "check --address/NOMAD_ADDR, the TLS settings (NOMAD_CACERT, NOMAD_TLS_SERVER_NAME) and that the agent runs",
        ),
    }
}
