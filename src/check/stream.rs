//! The event-stream probe: a real `namespace=*` subscription, held until its first heartbeat or
//! its refusal. Newer Nomad answers a refused subscription with 200 and then closes it, so no
//! status code can stand in for this.

use std::time::Duration;

use super::report::Finding;
use crate::listing::CLUSTER_TOPICS;
use crate::nomad::events::Message;
use crate::nomad::{Capability, NomadClient, StreamEnd};

/// How long the event-stream probe waits for its first heartbeat (Nomad sends one at once,
/// then every 30 s).
const STREAM_PROBE: Duration = Duration::from_secs(35);

/// Subscribes to `topics` in every namespace and waits for the first message.
pub(super) async fn check_stream(client: &NomadClient, topics: &[&str]) -> Finding {
    let cluster = topics == CLUSTER_TOPICS;
    let (check, fix) = if cluster {
        (
            "node:read and read-job in every namespace (event stream)",
            format!(
                "grant {} (the Node topic) and {} (namespace=* needs it on every namespace)",
                Capability::NodeRead,
                Capability::ReadJobEverywhere
            ),
        )
    } else {
        (
            "read-job in every namespace (event stream)",
            format!(
                "grant {}: the stream of namespace=* needs it on every namespace",
                Capability::ReadJobEverywhere
            ),
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
