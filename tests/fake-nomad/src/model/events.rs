//! The event broker's side of the cluster: what kind of write a commit is, the events it
//! publishes and the bounded buffer subscriptions read from.

/// The kind of raft message a commit is, which becomes the event `Type` on the event stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    PlanResult,
    AllocationUpdated,
    AllocationUpdateDesiredStatus,
    Other,
}

impl MessageType {
    /// The event `Type` this write has on the Allocation topic, if it is published there.
    pub fn event_type(self) -> Option<&'static str> {
        match self {
            MessageType::PlanResult => Some("PlanResult"),
            MessageType::AllocationUpdated => Some("AllocationUpdated"),
            MessageType::AllocationUpdateDesiredStatus => Some("AllocationUpdateDesiredStatus"),
            MessageType::Other => None,
        }
    }
}

/// One event (Allocation or Node topic), with what subscriptions filter on.
#[derive(Clone, Debug)]
pub struct EventRecord {
    pub topic: String,
    pub namespace: String,
    pub key: String,
    /// `[JobID, DeploymentID]`, as Nomad sets them for allocations.
    pub filter_keys: Vec<String>,
    /// The whole event object, as sent.
    pub json: serde_json::Value,
}

/// All events of one raft index.
#[derive(Clone, Debug)]
pub struct EventFrame {
    pub index: u64,
    pub events: Vec<EventRecord>,
}

/// The event broker's buffer: a bounded ring of frames (Nomad's `event_buffer_size`, default
/// 100, counted in raft indexes), and a generation that changes when the broker is replaced
/// (a server restart or snapshot restore), which closes every subscription.
#[derive(Clone, Debug)]
pub struct EventBuffer {
    pub frames: std::collections::VecDeque<EventFrame>,
    pub capacity: usize,
    /// The index of the newest frame evicted to make room (a reader behind it missed a frame).
    pub evicted_through: u64,
    pub generation: u64,
    /// Whether commits are published (false while a restart makes writes miss the buffer).
    pub recording: bool,
}

impl EventBuffer {
    pub(super) fn new(capacity: usize) -> EventBuffer {
        EventBuffer {
            frames: std::collections::VecDeque::new(),
            capacity,
            evicted_through: 0,
            generation: 0,
            recording: true,
        }
    }

    pub(super) fn push(&mut self, frame: EventFrame) {
        if !self.recording {
            return;
        }
        self.frames.push_back(frame);
        while self.frames.len() > self.capacity.max(1) {
            if let Some(evicted) = self.frames.pop_front() {
                self.evicted_through = evicted.index;
            }
        }
    }

    /// Where a subscription asking for `index` starts, as `StartAtClosest` does: the first
    /// frame at or after it (inclusive), the oldest frame when `index` is 0 or older than the
    /// buffer (silently), and the newest frame again when `index` is beyond it.
    pub fn start_position(&self, index: u64) -> usize {
        self.frames
            .iter()
            .position(|f| f.index >= index)
            .unwrap_or(self.frames.len().saturating_sub(1))
    }

    /// The cursor of a subscription asking for `index` now: the index just before the first
    /// frame [`EventBuffer::start_position`] picks, or `current` when nothing is buffered
    /// (everything after it is new).
    pub fn cursor_before(&self, index: u64, current: u64) -> u64 {
        match self.frames.get(self.start_position(index)) {
            Some(first) => first.index - 1,
            None => current,
        }
    }

    /// Empties the buffer as a server restart does, closing every subscription.
    pub fn restart(&mut self) {
        self.frames.clear();
        self.evicted_through = 0;
        self.generation += 1;
    }
}
