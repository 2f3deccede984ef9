//! What Vector's memory table must be told so that it agrees with the model: per allocation,
//! what was last sent, and from it the rows to send after a change. Pure: time is passed in.
//!
//! Like the incremental renderer, a change costs what changed: an allocation whose model entry
//! (its generation), node and grace are those last sent is skipped without projecting it; one
//! that changed is projected, and only rows whose content or TTL class changed are sent (most
//! updates of an allocation, such as its client status, change no column). A key that left the
//! model is sent as a tombstone, so that a lookup does not fall back to the base file, which
//! may hold the row until its next publish.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, Serializer};
use tokio::time::Instant;

use crate::strings::StringPool;
use crate::table::columns::Columns;
use crate::table::incremental::Entry;
use crate::table::node_columns::Nodes;
use crate::table::{self, NodeInfo};

/// The value field Vector's memory table reads each entry's TTL from (its `ttl_field`).
pub const TTL_FIELD: &str = "ttl";
/// The value field that marks a key gone from the model (a tombstone).
pub const REMOVED_FIELD: &str = "removed";

/// One key of the memory table and the JSON value to store under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// `<alloc_id>/<task>`.
    pub key: String,
    /// A JSON object: the row's columns and its TTL, or a tombstone.
    pub value: Vec<u8>,
}

/// What was last sent for one allocation.
#[derive(Clone, Debug)]
struct Sent {
    /// The model's own copy of the ID, shared.
    alloc_id: Arc<str>,
    generation: u64,
    node: Arc<NodeInfo>,
    remove_at: Option<Instant>,
    /// Each row's task and a hash of its columns.
    rows: Arc<[(Arc<str>, u64)]>,
}

/// What a walk of the model sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Walk {
    /// What changed since it was sent.
    Changes,
    /// The next part of the full push under way, of about this many rows; nothing else.
    Part(usize),
}

/// A full push under way: the allocations after `after` (all of them, when `None`) are yet to
/// be sent whole.
#[derive(Clone, Debug, Default)]
struct FullPush {
    after: Option<String>,
    /// The highest generation in the model when it began (set by its first part): an entry of a
    /// higher one is new or changed since, and goes with the changes too, so that no change
    /// waits on the parts (a stop may come before the last one, and each base begins again).
    began: Option<u64>,
}

/// What Vector's memory table was sent, to send it only what changes.
#[derive(Debug)]
pub struct PushCache {
    columns: Columns,
    header: Vec<String>,
    /// The TTL of live rows and of tombstones: longer than the interval at which everything
    /// is sent again and the base file is republished.
    live_ttl: Duration,
    /// In allocation ID order, as the model's entries come.
    sent: Vec<Sent>,
    /// Keys a previous run may have pushed (those of the table on disk at start): the first
    /// full push that completes tombstones those no row sent holds.
    inherited: Vec<String>,
    full: Option<FullPush>,
    /// One copy of each task name the rows sent hold (most allocations run a few tasks
    /// named alike).
    task_names: StringPool,
    /// The nodes' version at the end of the last walk of changes, which takes every sent
    /// allocation whose node changed: while the version stands, what was sent has the nodes'
    /// current columns, and an allocation whose entry is the one sent is skipped without
    /// looking its node up (at 100,000 allocations the lookups were a fifth of a walk).
    nodes_seen: Option<u64>,
}

impl PushCache {
    pub fn new(columns: Columns, live_ttl: Duration) -> PushCache {
        PushCache {
            header: columns.header(),
            columns,
            live_ttl,
            sent: Vec::new(),
            inherited: Vec::new(),
            full: None,
            task_names: StringPool::default(),
            nodes_seen: None,
        }
    }

    /// Notes keys that a previous run may have left in the memory table (it outlives the
    /// exporter): those no row sent holds when the first full push completes get tombstones, so
    /// that an allocation collected meanwhile does not keep labelling until its TTL ends.
    pub fn inherit(&mut self, keys: Vec<String>) {
        self.inherited = keys;
    }

    /// The rows to send so that the memory table agrees with `entries` (in key order, as the
    /// model keeps them) at `now`; what it returns counts as sent.
    pub fn changes<'a>(
        &mut self,
        entries: impl IntoIterator<Item = Entry<'a>>,
        nodes: &Nodes,
        now: Instant,
    ) -> Vec<Pushed> {
        self.walk(entries, nodes, now, Walk::Changes)
    }

    /// Starts a full push, for a memory table that may have lost its content (Vector
    /// restarted): every row is sent again, whatever was sent before, part by part
    /// ([`PushCache::more`]). One under way starts again from the first allocation.
    pub fn begin_everything(&mut self) {
        self.full = Some(FullPush::default());
    }

    /// Whether a full push is under way.
    pub fn everything_under_way(&self) -> bool {
        self.full.is_some()
    }

    /// The next part of the full push under way: the next allocations' rows, whole, about
    /// `budget` of them (more only when one allocation has more); nothing when none is under
    /// way. Other changes wait for [`PushCache::changes`]. A full push in one piece would hold
    /// every row's JSON at once: half a hundred megabytes at 100,000 rows.
    pub fn more<'a>(
        &mut self,
        entries: impl IntoIterator<Item = Entry<'a>>,
        nodes: &Nodes,
        now: Instant,
        budget: usize,
    ) -> Vec<Pushed> {
        self.walk(entries, nodes, now, Walk::Part(budget.max(1)))
    }

    /// Walks the model against what was sent: for [`Walk::Changes`] the changed rows, for
    /// [`Walk::Part`] the rows of the allocations next in line of the full push, whole.
    fn walk<'a>(
        &mut self,
        entries: impl IntoIterator<Item = Entry<'a>>,
        nodes: &Nodes,
        now: Instant,
        walk: Walk,
    ) -> Vec<Pushed> {
        let (deltas, budget) = match walk {
            Walk::Changes => (true, 0),
            Walk::Part(_) if self.full.is_none() => return Vec::new(),
            Walk::Part(budget) => (false, budget),
        };
        // The full push's cursor: the allocations after it are sent whole by its parts; until
        // then, only what changed since it began goes with the changes (at start, no row was
        // ever sent, and all of them wait for their part).
        let after = self.full.as_ref().map(|full| full.after.clone());
        let began = self.full.as_ref().and_then(|full| full.began);
        let mut highest_generation = 0;
        // Whether a part still takes allocations: until the budget is spent.
        let mut forcing = !deltas;
        let mut forced_rows = 0;
        let mut last_forced: Option<String> = None;
        let nodes_unchanged = self.nodes_seen == Some(nodes.version());
        let entries = entries.into_iter();
        let old_sent = std::mem::take(&mut self.sent);
        // Sized for the larger of the model and what was sent, so that it is seldom doubled as
        // it fills: the old list is held beside it until the walk ends.
        let mut sent = Vec::with_capacity(old_sent.len().max(entries.size_hint().0) + 16);
        // Moved, not cloned, into the new list: most of it is what was sent.
        let mut old = old_sent.into_iter().peekable();
        let mut out = Vec::new();
        for entry in entries {
            let id = &*entry.alloc.id;
            // The model and what was sent share each ID: most are the same pointer.
            let is_this =
                |s: &Sent| Arc::ptr_eq(&s.alloc_id, &entry.alloc.id) || &*s.alloc_id == id;
            while let Some(gone) = old.next_if(|s| !is_this(s) && &*s.alloc_id < id) {
                self.gone(gone, deltas, &mut sent, &mut out);
            }
            let previous = old.next_if(is_this);
            let in_line = after
                .as_ref()
                .is_some_and(|after| after.as_deref().is_none_or(|a| id > a));
            let same = previous.as_ref().is_some_and(|p| {
                p.generation == entry.generation
                    && p.remove_at == entry.remove_at
                    && (nodes_unchanged || Arc::ptr_eq(&p.node, nodes.of(&entry.alloc.node_id)))
            });
            highest_generation = highest_generation.max(entry.generation);
            // Unchanged rows the full push has yet to reach wait for their part (at start, that
            // is every row); what changed since it began goes now.
            let taken = if deltas {
                !same
                    && (!in_line
                        || previous.is_some()
                        || began.is_some_and(|g| entry.generation > g))
            } else {
                in_line && forcing
            };
            if !taken {
                sent.extend(previous);
                continue;
            }
            let node = nodes.of(&entry.alloc.node_id);
            let ttl = self.ttl(entry.remove_at, now);
            let ttl_changed = previous
                .as_ref()
                .is_none_or(|p| p.remove_at != entry.remove_at);
            let projected = table::allocation_rows(entry.alloc, node, &self.columns);
            let whole = !deltas && (forced_rows == 0 || forced_rows + projected.len() <= budget);
            if whole {
                forced_rows += projected.len();
                last_forced = Some(id.to_owned());
            } else if !deltas {
                // The budget is spent: this allocation is the next part's.
                forcing = false;
                sent.extend(previous);
                continue;
            }
            let rows: Vec<(Arc<str>, u64)> = projected
                .iter()
                .map(|row| (self.task_names.share_str(&row[1]), content_hash(row)))
                .collect();
            for (row, (task, hash)) in projected.iter().zip(&rows) {
                let unchanged = previous
                    .as_ref()
                    .is_some_and(|p| p.rows.contains(&(task.clone(), *hash)));
                if whole || ttl_changed || !unchanged {
                    out.push(Pushed {
                        key: key(id, task),
                        value: self.row_value(row, ttl),
                    });
                }
            }
            if let Some(p) = &previous {
                self.tombstones(p, &rows, &mut out);
            }
            sent.push(Sent {
                alloc_id: entry.alloc.id.clone(),
                generation: entry.generation,
                node: node.clone(),
                remove_at: entry.remove_at,
                rows: rows.into(),
            });
        }
        for gone in old {
            self.gone(gone, deltas, &mut sent, &mut out);
        }
        self.sent = sent;
        if deltas {
            self.nodes_seen = Some(nodes.version());
        }
        if !deltas {
            if forcing {
                // The end of the model, still sending whole: the full push is complete.
                self.full = None;
                self.task_names.forget_unused();
                self.tombstone_inherited(&mut out);
            } else {
                self.full = Some(FullPush {
                    after: last_forced,
                    began: Some(began.unwrap_or(highest_generation)),
                });
            }
        }
        out
    }

    /// An allocation sent but gone from the model: tombstones when sending changes, else it
    /// waits for them.
    fn gone(&self, gone: Sent, deltas: bool, sent: &mut Vec<Sent>, out: &mut Vec<Pushed>) {
        if deltas {
            self.tombstones(&gone, &[], out);
        } else {
            sent.push(gone);
        }
    }

    /// Tombstones for the inherited keys that nothing sent holds, once.
    fn tombstone_inherited(&mut self, out: &mut Vec<Pushed>) {
        for key in std::mem::take(&mut self.inherited) {
            if !self.holds(&key) {
                out.push(Pushed {
                    key,
                    value: tombstone(self.live_ttl),
                });
            }
        }
    }

    /// Whether `key` (`<alloc_id>/<task>`) is among the rows sent.
    fn holds(&self, key: &str) -> bool {
        let Some((alloc_id, task)) = key.split_once('/') else {
            return false;
        };
        self.sent
            .binary_search_by(|s| (*s.alloc_id).cmp(alloc_id))
            .is_ok_and(|i| self.sent[i].rows.iter().any(|(t, _)| &**t == task))
    }

    /// Tombstones for the rows of `gone` whose task is not among `kept`.
    fn tombstones(&self, gone: &Sent, kept: &[(Arc<str>, u64)], out: &mut Vec<Pushed>) {
        for (task, _) in gone.rows.iter() {
            if !kept.iter().any(|(t, _)| t == task) {
                out.push(Pushed {
                    key: key(&gone.alloc_id, task),
                    value: tombstone(self.live_ttl),
                });
            }
        }
    }

    /// A live row lives until it is sent again; a row in its grace period until its grace ends.
    fn ttl(&self, remove_at: Option<Instant>, now: Instant) -> Duration {
        match remove_at {
            None => self.live_ttl,
            Some(at) => at.saturating_duration_since(now),
        }
    }

    fn row_value(&self, row: &[String], ttl: Duration) -> Vec<u8> {
        let value = RowValue {
            header: &self.header,
            row,
            ttl: ttl_seconds(ttl),
        };
        serde_json::to_vec(&value).expect("a map of strings and an integer serializes")
    }
}

/// The memory table's key of a row.
pub fn key(alloc_id: &str, task: &str) -> String {
    format!("{alloc_id}/{task}")
}

/// Whole seconds, rounded up and at least one: Vector's `ttl_field` is an integer, and a TTL
/// of zero would drop the row before its time.
fn ttl_seconds(ttl: Duration) -> u64 {
    ttl.as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0))
        .max(1)
}

/// A tombstone: the key is gone from the model, and a lookup must not fall back to the file.
fn tombstone(ttl: Duration) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ REMOVED_FIELD: true, TTL_FIELD: ttl_seconds(ttl) }))
        .expect("a literal object serializes")
}

fn content_hash(row: &[String]) -> u64 {
    let mut hasher = DefaultHasher::new();
    row.hash(&mut hasher);
    hasher.finish()
}

/// A row as the memory table stores it: every column under its header name, and the TTL.
struct RowValue<'a> {
    header: &'a [String],
    row: &'a [String],
    ttl: u64,
}

impl Serialize for RowValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.header.len() + 1))?;
        for (name, value) in self.header.iter().zip(self.row) {
            map.serialize_entry(name, value)?;
        }
        map.serialize_entry(TTL_FIELD, &self.ttl)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::types::{Allocation, Job, Task, TaskGroup};
    use crate::run::machine::store::Store;
    use serde_json::Value;

    const LIVE: Duration = Duration::from_secs(660);

    fn alloc(id: &str, tasks: &[&str], modify_index: u64) -> Allocation {
        Allocation {
            id: id.into(),
            node_id: "n1".into(),
            task_group: "g".into(),
            modify_index,
            job: Some(Arc::new(Job {
                id: "web".into(),
                task_groups: vec![TaskGroup {
                    name: "g".into(),
                    tasks: tasks
                        .iter()
                        .map(|t| Task {
                            name: (*t).into(),
                            ..Task::default()
                        })
                        .collect(),
                    ..TaskGroup::default()
                }],
                ..Job::default()
            })),
            ..Allocation::default()
        }
    }

    fn values(pushed: &[Pushed]) -> Vec<(String, Value)> {
        pushed
            .iter()
            .map(|p| {
                let value = serde_json::from_slice(&p.value).expect("JSON");
                (p.key.clone(), value)
            })
            .collect()
    }

    fn keys(pushed: &[Pushed]) -> Vec<&str> {
        pushed.iter().map(|p| p.key.as_str()).collect()
    }

    struct Fixture {
        store: Store,
        cache: PushCache,
        nodes: Nodes,
        now: Instant,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                store: Store::new(),
                cache: PushCache::new(Columns::defaults(), LIVE),
                nodes: Nodes::cluster(),
                now: Instant::now(),
            }
        }

        fn changes(&mut self) -> Vec<Pushed> {
            self.cache
                .changes(self.store.entries(), &self.nodes, self.now)
        }

        /// The next part of the full push under way, of about `budget` rows.
        fn more(&mut self, budget: usize) -> Vec<Pushed> {
            self.cache
                .more(self.store.entries(), &self.nodes, self.now, budget)
        }

        /// A whole full push, in one part.
        fn everything(&mut self) -> Vec<Pushed> {
            self.cache.begin_everything();
            let all = self.more(usize::MAX);
            assert!(!self.cache.everything_under_way());
            all
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_allocation_sends_each_row_with_its_columns_and_the_live_ttl() {
        let mut f = Fixture::new();
        f.store.upsert(alloc("a1", &["web", "log"], 5), f.now);
        let pushed = values(&f.changes());
        assert_eq!(
            pushed.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["a1/log", "a1/web"]
        );
        let (_, web) = &pushed[1];
        assert_eq!(web["alloc_id"], "a1");
        assert_eq!(web["task"], "web");
        assert_eq!(web["group"], "g");
        assert_eq!(web[TTL_FIELD], 660);
        let columns = Columns::defaults().header();
        assert_eq!(
            web.as_object().expect("object").len(),
            columns.len() + 1,
            "every column and the TTL"
        );
        assert!(f.changes().is_empty(), "nothing changed, nothing sent");
    }

    #[tokio::test(start_paused = true)]
    async fn an_update_that_changes_no_column_sends_nothing() {
        let mut f = Fixture::new();
        f.store.upsert(alloc("a1", &["web"], 5), f.now);
        f.changes();
        let mut same = alloc("a1", &["web"], 6);
        same.client_status = "complete".into();
        assert!(f.store.upsert(same, f.now));
        assert_eq!(f.changes(), []);
    }

    #[tokio::test(start_paused = true)]
    async fn an_allocation_gone_and_back_between_two_pushes_keeps_its_row_without_a_tombstone() {
        let mut f = Fixture::new();
        f.store.upsert(alloc("a1", &["web"], 5), f.now);
        f.changes();
        // Its grace ends and a listing brings it back before the next push: the model holds a
        // new copy of its ID, which is still the row that was sent.
        f.store.depart("a1", f.now, Duration::ZERO);
        assert_eq!(f.store.expire(f.now).len(), 1);
        f.store.upsert(alloc("a1", &["web"], 6), f.now);
        assert_eq!(
            f.changes(),
            [],
            "the same row, still live in the memory table"
        );
        f.store.depart("a1", f.now, Duration::from_secs(30));
        let pushed = values(&f.changes());
        assert_eq!(pushed.len(), 1, "{pushed:?}");
        assert_eq!(pushed[0].1["alloc_id"], "a1", "the row, not a tombstone");
        assert_eq!(pushed[0].1[TTL_FIELD], 30);
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_column_sends_the_row_and_a_vanished_task_a_tombstone() {
        let mut f = Fixture::new();
        f.store.upsert(alloc("a1", &["web", "log"], 5), f.now);
        f.changes();
        let mut changed = alloc("a1", &["web"], 6);
        changed.namespace = "prod".into();
        f.store.upsert(changed, f.now);
        let pushed = values(&f.changes());
        assert_eq!(pushed.len(), 2, "{pushed:?}");
        assert_eq!(pushed[0].0, "a1/web");
        assert_eq!(pushed[0].1["namespace"], "prod");
        assert_eq!(pushed[1].0, "a1/log");
        assert_eq!(
            pushed[1].1,
            serde_json::json!({"removed": true, "ttl": 660})
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_departing_row_gets_its_remaining_grace_and_an_expired_one_a_tombstone() {
        let mut f = Fixture::new();
        f.store.upsert(alloc("a1", &["web"], 5), f.now);
        f.store.upsert(alloc("b2", &["api"], 5), f.now);
        f.changes();
        f.now += Duration::from_millis(1500);
        f.store.depart("a1", f.now, Duration::from_secs(300));
        f.now += Duration::from_millis(10_500);
        let pushed = values(&f.changes());
        assert_eq!(pushed.len(), 1);
        assert_eq!(pushed[0].0, "a1/web");
        assert_eq!(pushed[0].1["alloc_id"], "a1");
        assert_eq!(
            pushed[0].1[TTL_FIELD], 290,
            "300 s of grace, 10.5 s of it gone"
        );
        f.now += Duration::from_secs(290);
        assert_eq!(f.store.expire(f.now), ["a1".into()]);
        let pushed = values(&f.changes());
        assert_eq!(
            pushed,
            [(
                "a1/web".to_owned(),
                serde_json::json!({"removed": true, "ttl": 660})
            )]
        );
        assert!(f.changes().is_empty(), "the tombstone is sent once");
    }

    #[tokio::test(start_paused = true)]
    async fn allocations_gone_before_and_after_the_remaining_ones_are_all_tombstoned() {
        let mut f = Fixture::new();
        for id in ["a", "m", "z"] {
            f.store.upsert(alloc(id, &["t"], 5), f.now);
        }
        f.changes();
        f.store
            .replace(vec![alloc("m", &["t"], 5)], f.now, f.now, Duration::ZERO);
        f.store.expire(f.now);
        assert_eq!(keys(&f.changes()), ["a/t", "z/t"]);
    }

    #[tokio::test(start_paused = true)]
    async fn everything_sends_every_row_again() {
        let mut f = Fixture::new();
        f.store.upsert(alloc("a1", &["web", "log"], 5), f.now);
        f.store.upsert(alloc("b2", &["api"], 5), f.now);
        f.changes();
        let all = f.everything();
        assert_eq!(keys(&all), ["a1/log", "a1/web", "b2/api"]);
        assert!(f.changes().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn keys_inherited_from_a_previous_run_are_tombstoned_once_unless_the_model_has_them() {
        let mut f = Fixture::new();
        f.store.upsert(alloc("a1", &["web"], 5), f.now);
        f.cache
            .inherit(vec!["a1/web".to_owned(), "gone/api".to_owned()]);
        let all = values(&f.everything());
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all[0].0, "a1/web");
        assert_eq!(all[0].1["task"], "web");
        assert_eq!(
            all[1],
            (
                "gone/api".to_owned(),
                serde_json::json!({"removed": true, "ttl": 660})
            )
        );
        let again = f.everything();
        assert_eq!(
            keys(&again),
            ["a1/web"],
            "inherited keys are tombstoned once"
        );
    }

    /// A node's columns changed: the rows of its allocations go with the next changes, also
    /// when a part of a full push walked the model in between without sending them.
    #[tokio::test(start_paused = true)]
    async fn a_changed_node_sends_its_allocations_rows_again() {
        let datacenter = |dc: &str| crate::nomad::types::Node {
            id: "n1".to_owned(),
            name: "client-1".to_owned(),
            datacenter: dc.to_owned(),
            ..Default::default()
        };
        let mut f = Fixture::new();
        f.nodes.update(&datacenter("dc1"));
        for id in ["a", "b"] {
            f.store.upsert(alloc(id, &["t"], 5), f.now);
        }
        let mut other = alloc("c", &["t"], 5);
        other.node_id = "n2".into();
        f.store.upsert(other, f.now);
        f.changes();
        assert!(f.changes().is_empty());
        assert!(f.nodes.update(&datacenter("dc2")));
        f.cache.begin_everything();
        assert_eq!(keys(&f.more(1)), ["a/t"]);
        let again = values(&f.changes());
        assert_eq!(
            again.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["b/t"],
            "a went with the part; c's node did not change"
        );
        assert_eq!(again[0].1["datacenter"], "dc2");
        assert!(f.changes().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_push_goes_in_parts_of_whole_allocations_within_the_budget() {
        let mut f = Fixture::new();
        for id in ["a", "b", "c", "d", "e"] {
            f.store.upsert(alloc(id, &["t1", "t2"], 5), f.now);
        }
        f.store
            .upsert(alloc("f", &["t1", "t2", "t3", "t4", "t5"], 5), f.now);
        f.changes();
        f.cache.begin_everything();
        assert_eq!(keys(&f.more(5)), ["a/t1", "a/t2", "b/t1", "b/t2"]);
        assert!(f.cache.everything_under_way());
        assert!(f.changes().is_empty(), "changes alone do not go on with it");
        assert_eq!(keys(&f.more(4)), ["c/t1", "c/t2", "d/t1", "d/t2"]);
        assert_eq!(
            keys(&f.more(4)),
            ["e/t1", "e/t2"],
            "f alone is over the budget"
        );
        assert_eq!(
            keys(&f.more(4)),
            ["f/t1", "f/t2", "f/t3", "f/t4", "f/t5"],
            "an allocation over the budget goes whole, alone"
        );
        assert!(!f.cache.everything_under_way());
        assert!(f.more(4).is_empty(), "nothing under way, nothing changed");
    }

    #[tokio::test(start_paused = true)]
    async fn changes_during_a_full_push_go_at_once_and_again_in_their_part() {
        let mut f = Fixture::new();
        for id in ["a", "b", "c", "d", "e"] {
            f.store.upsert(alloc(id, &["t"], 5), f.now);
        }
        f.changes();
        f.cache.begin_everything();
        assert_eq!(keys(&f.more(2)), ["a/t", "b/t"]);
        let mut changed = alloc("d", &["t"], 6);
        changed.namespace = "prod".into();
        f.store.replace(
            vec![
                alloc("a", &["t"], 5),
                alloc("b", &["t"], 5),
                alloc("bb", &["t"], 6),
                changed,
                alloc("e", &["t"], 5),
            ],
            f.now,
            f.now,
            Duration::ZERO,
        );
        f.store.expire(f.now);
        f.store.depart("e", f.now, Duration::from_secs(30));
        let between = values(&f.changes());
        assert_eq!(
            between.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["bb/t", "c/t", "d/t", "e/t"],
            "a stop or a new full push may come before their part"
        );
        assert_eq!(between[2].1["namespace"], "prod");
        assert_eq!(between[3].1[TTL_FIELD], 30, "e's grace began");
        let last = values(&f.more(3));
        assert_eq!(
            last.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["bb/t", "d/t", "e/t"]
        );
        assert!(!f.cache.everything_under_way());
        assert!(
            f.changes().is_empty(),
            "sent once more, whole, then nothing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn at_start_unchanged_rows_wait_for_the_full_push_and_new_ones_do_not() {
        let mut f = Fixture::new();
        for id in ["a", "b", "c"] {
            f.store.upsert(alloc(id, &["t"], 5), f.now);
        }
        f.cache.begin_everything();
        assert_eq!(keys(&f.more(1)), ["a/t"]);
        assert!(
            f.changes().is_empty(),
            "b and c were never sent, but the full push sends them"
        );
        f.store.upsert(alloc("d", &["t"], 6), f.now);
        assert_eq!(keys(&f.changes()), ["d/t"]);
        assert_eq!(keys(&f.more(5)), ["b/t", "c/t", "d/t"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_part_sends_no_changes_behind_it_they_wait_for_the_debounced_push() {
        let mut f = Fixture::new();
        for id in ["a", "b", "c"] {
            f.store.upsert(alloc(id, &["t"], 5), f.now);
        }
        f.changes();
        f.cache.begin_everything();
        assert_eq!(keys(&f.more(1)), ["a/t"]);
        let mut changed = alloc("a", &["t"], 6);
        changed.namespace = "prod".into();
        f.store.replace(
            vec![
                alloc("0", &["t"], 6),
                changed,
                alloc("b", &["t"], 5),
                alloc("c", &["t"], 5),
            ],
            f.now,
            f.now,
            Duration::ZERO,
        );
        assert_eq!(keys(&f.more(1)), ["b/t"]);
        let changes = values(&f.changes());
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0].0, "0/t");
        assert_eq!(changes[1].0, "a/t");
        assert_eq!(changes[1].1["namespace"], "prod");
        assert_eq!(keys(&f.more(1)), ["c/t"]);
        assert!(!f.cache.everything_under_way());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_push_begun_again_starts_from_the_first_allocation() {
        let mut f = Fixture::new();
        for id in ["a", "b", "c"] {
            f.store.upsert(alloc(id, &["t"], 5), f.now);
        }
        f.changes();
        f.cache.begin_everything();
        assert_eq!(keys(&f.more(2)), ["a/t", "b/t"]);
        f.cache.begin_everything();
        assert_eq!(keys(&f.more(2)), ["a/t", "b/t"]);
        assert_eq!(keys(&f.more(2)), ["c/t"]);
    }

    #[tokio::test(start_paused = true)]
    async fn inherited_keys_are_tombstoned_when_the_full_push_completes() {
        let mut f = Fixture::new();
        for id in ["a", "b"] {
            f.store.upsert(alloc(id, &["t"], 5), f.now);
        }
        f.cache.inherit(vec![
            "a/t".to_owned(),
            "a/gone".to_owned(),
            "zz/t".to_owned(),
        ]);
        f.cache.begin_everything();
        assert_eq!(keys(&f.more(1)), ["a/t"]);
        assert_eq!(
            keys(&f.more(1)),
            ["b/t", "a/gone", "zz/t"],
            "only what no sent row holds"
        );
    }

    #[test]
    fn ttls_round_up_to_whole_seconds_and_never_reach_zero() {
        assert_eq!(ttl_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ttl_seconds(Duration::ZERO), 1);
        assert_eq!(ttl_seconds(Duration::from_millis(2001)), 3);
        assert_eq!(ttl_seconds(Duration::from_secs(660)), 660);
    }
}
