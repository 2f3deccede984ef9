//! The event stream's messages: heartbeats, frames of Allocation events, and anything else,
//! which is not a reason to stop but to resync (a proxy's error page, a truncated frame, a
//! newer Nomad's surprise).

use serde::Deserialize;

use super::types::Allocation;

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
}

/// One event; only the Allocation topic's payload is decoded.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct Event {
    pub topic: String,
    #[serde(rename = "Type")]
    pub event_type: String,
    pub index: u64,
    pub payload: Payload,
}

/// `Payload` of an Allocation event: the allocation without its `Job`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct Payload {
    pub allocation: Option<Allocation>,
}

/// Classifies one line.
pub fn parse_line(line: &[u8]) -> Message {
    let trimmed = line.trim_ascii();
    if trimmed == b"{}" {
        return Message::Heartbeat;
    }
    match serde_json::from_slice::<serde_json::Value>(trimmed) {
        Ok(value) if value.get("Index").is_some() => match serde_json::from_value::<Frame>(value) {
            Ok(frame) => Message::Frame(frame),
            Err(e) => Message::Unparseable(format!("frame with unexpected shape: {e}")),
        },
        Ok(serde_json::Value::Object(map)) if map.is_empty() => Message::Heartbeat,
        _ => Message::Unparseable(
            String::from_utf8_lossy(&trimmed[..trimmed.len().min(120)]).into_owned(),
        ),
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
            (
                alloc.id.as_str(),
                alloc.node_id.as_str(),
                alloc.modify_index
            ),
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
