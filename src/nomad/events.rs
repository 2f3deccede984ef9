//! The event stream's messages: heartbeats, frames of Allocation events, and anything else,
//! which is not a reason to stop but to resync (a proxy's error page, a truncated frame, a
//! newer Nomad's surprise), and the open subscription that yields them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::error::{Error, transport_error};
use super::ndjson;
use super::types::{Allocation, Node};
use crate::observe::metrics::Metrics;

/// The event stream's route, for metrics: the client counts the subscription under it, the
/// stream its bytes.
pub const STREAM_ROUTE: &str = "/v1/event/stream";

/// One line of the stream, classified.
#[derive(Debug, PartialEq)]
pub enum Message {
    /// `{}`: the subscription is alive.
    Heartbeat,
    Frame(Frame),
    /// A line that is not a heartbeat or a frame; the text is kept (shortened) for the log.
    Unparseable(String),
}

/// `{"Events":[...],"Index":N}`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Frame {
    pub index: u64,
    #[serde(default)]
    pub events: Vec<Event>,
    /// The frame's line length in bytes, newline included: what it cost to receive.
    #[serde(skip)]
    pub bytes: usize,
}

/// One event; only the Allocation and Node topics' payloads are decoded.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct Event {
    pub topic: String,
    #[serde(rename = "Type")]
    pub event_type: String,
    pub index: u64,
    pub payload: Payload,
}

/// `Payload` of an Allocation event (the allocation without its `Job`) or of a Node event.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct Payload {
    pub allocation: Option<Allocation>,
    pub node: Option<Node>,
}

/// Classifies one line.
pub fn parse_line(line: &[u8]) -> Message {
    let trimmed = line.trim_ascii();
    if trimmed == b"{}" {
        return Message::Heartbeat;
    }
    match serde_json::from_slice::<serde_json::Value>(trimmed) {
        Ok(value) if value.get("Index").is_some() => match serde_json::from_value::<Frame>(value) {
            Ok(frame) => Message::Frame(Frame {
                bytes: trimmed.len() + 1,
                ..frame
            }),
            Err(e) => Message::Unparseable(format!("frame with unexpected shape: {e}")),
        },
        Ok(serde_json::Value::Object(map)) if map.is_empty() => Message::Heartbeat,
        _ => Message::Unparseable(
            String::from_utf8_lossy(&trimmed[..trimmed.len().min(120)]).into_owned(),
        ),
    }
}

/// How an event stream ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamEnd {
    /// The server closed the body. Before the first heartbeat this means the subscription was
    /// refused (newer Nomad answers 200 and then closes on any error, 403 included).
    #[error("the event stream at {url} closed{}{}", if *.before_first_heartbeat { " before its first heartbeat" } else { "" }, if .tail.is_empty() { String::new() } else { format!(": {:?}", .tail) })]
    Closed {
        url: String,
        before_first_heartbeat: bool,
        /// Unterminated text at the end: the old transport's error, or half a frame.
        tail: String,
    },
    /// Nothing arrived for longer than the heartbeat interval allows.
    #[error(
        "the event stream at {url} was silent for {seconds} s (Nomad sends a heartbeat every 30 s)"
    )]
    Silent { url: String, seconds: u64 },
    #[error(transparent)]
    Transport(Error),
    #[error(
        "the event stream at {url} sent a line longer than {} bytes",
        ndjson::MAX_LINE
    )]
    LineTooLong { url: String },
}

/// An open subscription to the event stream.
pub struct EventStream {
    response: reqwest::Response,
    decoder: ndjson::LineDecoder,
    lines: VecDeque<Vec<u8>>,
    heartbeats: u64,
    url: String,
    /// Where the stream's bytes are counted.
    metrics: Option<Arc<Metrics>>,
}

impl EventStream {
    /// Follows the body of an accepted subscription; `url` is how it is named in messages.
    pub(super) fn new(
        response: reqwest::Response,
        url: String,
        metrics: Option<Arc<Metrics>>,
    ) -> EventStream {
        EventStream {
            response,
            decoder: ndjson::LineDecoder::new(),
            lines: VecDeque::new(),
            heartbeats: 0,
            url,
            metrics,
        }
    }

    /// The next message; fails when nothing at all arrives for `idle` (the read deadline).
    pub async fn next(&mut self, idle: Duration) -> Result<Message, StreamEnd> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                let message = parse_line(&line);
                if message == Message::Heartbeat {
                    self.heartbeats += 1;
                }
                return Ok(message);
            }
            let chunk = tokio::time::timeout(idle, self.response.chunk())
                .await
                .map_err(|_| StreamEnd::Silent {
                    url: self.url.clone(),
                    seconds: idle.as_secs(),
                })?
                .map_err(|e| StreamEnd::Transport(transport_error(&self.url, &e, idle)))?;
            match chunk {
                Some(bytes) => {
                    if let Some(metrics) = &self.metrics {
                        metrics.bytes(STREAM_ROUTE, bytes.len());
                    }
                    let lines = self
                        .decoder
                        .push(&bytes)
                        .map_err(|_| StreamEnd::LineTooLong {
                            url: self.url.clone(),
                        })?;
                    self.lines.extend(lines);
                }
                None => {
                    let tail = String::from_utf8_lossy(self.decoder.remainder());
                    return Err(StreamEnd::Closed {
                        url: self.url.clone(),
                        before_first_heartbeat: self.heartbeats == 0,
                        tail: tail.chars().take(200).collect(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_frames_and_garbage_are_told_apart() {
        assert_eq!(parse_line(b"{}"), Message::Heartbeat);
        assert_eq!(parse_line(b" { } "), Message::Heartbeat);
        let frame = parse_line(
            br#"{"Events":[{"Topic":"Allocation","Type":"PlanResult","Key":"a","Namespace":"default","FilterKeys":["web",""],"Index":9,"Payload":{"Allocation":{"ID":"a","NodeID":"n","ModifyIndex":9}}}],"Index":9}"#,
        );
        let Message::Frame(frame) = frame else {
            panic!("a frame: {frame:?}")
        };
        assert_eq!(frame.index, 9);
        let alloc = frame.events[0]
            .payload
            .allocation
            .as_ref()
            .expect("allocation");
        assert_eq!(
            (&*alloc.id, &*alloc.node_id, alloc.modify_index),
            ("a", "n", 9)
        );
        assert!(matches!(
            parse_line(b"<html>502</html>"),
            Message::Unparseable(_)
        ));
        assert!(matches!(
            parse_line(br#"{"Events":[{"Payl"#),
            Message::Unparseable(_)
        ));
        assert!(matches!(
            parse_line(br#"{"Index":"nine"}"#),
            Message::Unparseable(_)
        ));
    }
}
