//! With `--memory-table-url`: whether Vector's `http_server` source answers at that URL. The
//! probe is an empty request, which the source decodes into no event and answers at once, so
//! the memory table is not touched.

use super::report::Finding;
use crate::push::PushSettings;
use crate::push::sender::{http_client, post};

/// Passes when the source answers 2xx to an empty request.
pub(super) async fn check_memory_table(settings: &PushSettings) -> Finding {
    const CHECK: &str = "Vector's memory table answers";
    let outcome = match http_client(&settings.url) {
        Ok(client) => post(client, settings.url.clone(), Vec::new()).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => Finding::pass(CHECK, settings.url.to_string()),
        Err(e) => Finding::fail(
            CHECK,
            e.to_string(),
            "start Vector with vector/aggregator-cluster-push.yaml (its http_server source), or correct --memory-table-url; until it answers, run keeps the changes queued and Vector labels from the base file",
        ),
    }
}
