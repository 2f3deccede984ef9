//! The rows waiting to reach Vector's memory table. Pure.
//!
//! One request is in flight at a time, so a key's updates arrive in the order they were made;
//! what is pending for one key is coalesced (only its newest value is sent); a request that
//! failed goes back to the queue, except the keys that have a newer value pending already.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::rows::Pushed;

/// Keys in one JSON object of a request body: each object is one event for Vector's memory
/// table, which walks the whole table on every event it applies, so keys go in bulk.
const KEYS_PER_OBJECT: usize = 200;
/// A request carries at most this many keys (about a megabyte with the default columns), so
/// that one request cannot hold the source's body limit or its acknowledgement for long, and
/// a full push, made a request's worth at a time, holds little memory at once.
pub const KEYS_PER_REQUEST: usize = 2_000;

/// A value waiting to be sent, and when the change it carries was first made.
#[derive(Debug)]
struct Waiting {
    value: Vec<u8>,
    since: Instant,
}

/// A request being sent: its keys and values, and the body made of them.
#[derive(Debug)]
pub struct Batch {
    entries: Vec<(String, Waiting)>,
    /// Newline-delimited JSON objects, [`KEYS_PER_OBJECT`] keys each.
    pub body: Vec<u8>,
    /// The first change it carries: its acknowledgement ends the change-to-push latency.
    pub since: Instant,
}

impl Batch {
    /// Keys the batch carries.
    pub fn rows(&self) -> usize {
        self.entries.len()
    }
}

/// What waits to be sent, and what is being sent.
#[derive(Debug, Default)]
pub struct PushQueue {
    pending: BTreeMap<String, Waiting>,
    in_flight: Option<Batch>,
}

impl PushQueue {
    pub fn new() -> PushQueue {
        PushQueue::default()
    }

    /// Queues rows of changes first made at `since`; a key already pending keeps only the
    /// newest value, and the earliest time.
    pub fn add(&mut self, rows: Vec<Pushed>, since: Instant) {
        for row in rows {
            let waiting = self.pending.entry(row.key).or_insert(Waiting {
                value: Vec::new(),
                since,
            });
            waiting.value = row.value;
            waiting.since = waiting.since.min(since);
        }
    }

    /// Keys waiting or being sent.
    pub fn depth(&self) -> usize {
        self.pending.len() + self.in_flight.as_ref().map_or(0, Batch::rows)
    }

    /// Whether nothing waits to be sent (a request may be in flight).
    pub fn nothing_waits(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether nothing waits and nothing is being sent.
    pub fn is_empty(&self) -> bool {
        self.depth() == 0
    }

    /// The request to send next: the one in flight if it is to be sent again, else up to
    /// [`KEYS_PER_REQUEST`] pending keys; `None` when nothing waits.
    pub fn next_batch(&mut self) -> Option<&Batch> {
        if self.in_flight.is_none() && !self.pending.is_empty() {
            let mut entries = Vec::with_capacity(self.pending.len().min(KEYS_PER_REQUEST));
            while entries.len() < KEYS_PER_REQUEST
                && let Some(entry) = self.pending.pop_first()
            {
                entries.push(entry);
            }
            let body = body(&entries);
            let since = entries.iter().map(|(_, w)| w.since).min();
            self.in_flight = since.map(|since| Batch {
                entries,
                body,
                since,
            });
        }
        self.in_flight.as_ref()
    }

    /// The request in flight was acknowledged: Vector's table holds it. Returns it.
    pub fn acknowledged(&mut self) -> Option<Batch> {
        self.in_flight.take()
    }

    /// The request in flight failed: its keys wait again, unless a newer value of a key is
    /// pending already (the older one must not overwrite it later).
    pub fn failed(&mut self) {
        if let Some(batch) = self.in_flight.take() {
            for (key, waiting) in batch.entries {
                self.pending.entry(key).or_insert(waiting);
            }
        }
    }
}

/// The request body: JSON objects of up to [`KEYS_PER_OBJECT`] keys, one per line. The values
/// are JSON already, so the objects are assembled, not re-encoded.
fn body(entries: &[(String, Waiting)]) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|(k, w)| k.len() + w.value.len() + 8)
        .sum();
    let mut out = Vec::with_capacity(size);
    for chunk in entries.chunks(KEYS_PER_OBJECT) {
        out.push(b'{');
        for (i, (key, waiting)) in chunk.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, key).expect("a string serializes");
            out.push(b':');
            out.extend_from_slice(&waiting.value);
        }
        out.extend_from_slice(b"}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::time::Duration;

    fn row(key: &str, value: Value) -> Pushed {
        Pushed {
            key: key.to_owned(),
            value: serde_json::to_vec(&value).expect("JSON"),
        }
    }

    /// The body's objects merged, as Vector's memory table applies them.
    fn applied(body: &[u8]) -> BTreeMap<String, Value> {
        let mut table = BTreeMap::new();
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let object: serde_json::Map<String, Value> =
                serde_json::from_slice(line).expect("each line one JSON object");
            table.extend(object);
        }
        table
    }

    #[test]
    fn pending_values_of_one_key_are_coalesced_into_the_newest() {
        let mut queue = PushQueue::new();
        queue.add(
            vec![row("a/t", json!({"v": 1})), row("b/t", json!({"v": 1}))],
            Instant::now(),
        );
        queue.add(vec![row("a/t", json!({"v": 2}))], Instant::now());
        assert_eq!(queue.depth(), 2);
        let batch = queue.next_batch().expect("something to send");
        assert_eq!(
            applied(&batch.body),
            [
                ("a/t".to_owned(), json!({"v": 2})),
                ("b/t".to_owned(), json!({"v": 1}))
            ]
            .into()
        );
    }

    #[test]
    fn a_failed_request_is_sent_again_but_never_over_a_newer_value() {
        let mut queue = PushQueue::new();
        queue.add(
            vec![row("a/t", json!(1)), row("b/t", json!(1))],
            Instant::now(),
        );
        queue.next_batch();
        queue.add(vec![row("a/t", json!(2))], Instant::now());
        assert!(
            queue
                .next_batch()
                .is_some_and(|b| applied(&b.body)["a/t"] == json!(1)),
            "the batch in flight stays what it was"
        );
        queue.failed();
        let batch = queue.next_batch().expect("retried");
        assert_eq!(
            applied(&batch.body),
            [("a/t".to_owned(), json!(2)), ("b/t".to_owned(), json!(1))].into()
        );
        assert_eq!(queue.acknowledged().map(|b| b.rows()), Some(2));
        assert!(queue.is_empty());
        assert!(queue.next_batch().is_none());
    }

    #[test]
    fn a_value_added_while_its_key_is_in_flight_goes_in_the_next_request() {
        let mut queue = PushQueue::new();
        queue.add(vec![row("a/t", json!(1))], Instant::now());
        queue.next_batch();
        queue.add(vec![row("a/t", json!(2))], Instant::now());
        assert_eq!(queue.depth(), 2);
        queue.acknowledged();
        let batch = queue.next_batch().expect("the newer value");
        assert_eq!(applied(&batch.body)["a/t"], json!(2));
    }

    #[test]
    fn large_queues_go_in_requests_of_bounded_keys_and_objects() {
        let mut queue = PushQueue::new();
        let total = KEYS_PER_REQUEST + 7;
        queue.add(
            (0..total)
                .map(|i| row(&format!("{i:06}/t"), json!({"i": i})))
                .collect(),
            Instant::now(),
        );
        let batch = queue.next_batch().expect("a batch");
        assert_eq!(batch.rows(), KEYS_PER_REQUEST);
        let lines: Vec<&[u8]> = batch.body.split(|b| *b == b'\n').collect();
        assert_eq!(
            lines.len(),
            KEYS_PER_REQUEST / KEYS_PER_OBJECT + 1,
            "the last is empty"
        );
        assert_eq!(applied(&batch.body).len(), KEYS_PER_REQUEST);
        queue.acknowledged();
        assert_eq!(queue.next_batch().map(Batch::rows), Some(7));
    }

    #[test]
    fn a_batch_is_as_old_as_its_oldest_change_and_coalescing_keeps_the_oldest() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(1);
        let mut queue = PushQueue::new();
        queue.add(vec![row("b/t", json!(1))], later);
        queue.add(vec![row("a/t", json!(1))], t0);
        queue.add(vec![row("a/t", json!(2))], later);
        assert_eq!(queue.next_batch().map(|b| b.since), Some(t0));
    }

    #[test]
    fn keys_are_escaped_as_json_strings() {
        let mut queue = PushQueue::new();
        queue.add(vec![row("a/\"odd\"\\task", json!(true))], Instant::now());
        let batch = queue.next_batch().expect("a batch");
        assert_eq!(applied(&batch.body)["a/\"odd\"\\task"], json!(true));
    }
}
