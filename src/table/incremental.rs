//! Rendering that costs what changed, not what the table holds: `run` keeps, per allocation,
//! where its rows are in the last rendering, and the next rendering re-projects only the
//! allocations whose model entry (its generation) or node changed; every other allocation's
//! rows are copied as bytes. The rows are concatenated in key order, so the result is byte for
//! byte what [`crate::table::render::render`] makes of [`crate::table::project`].
//!
//! The check follows the same rule ([`IncrementalCheck`], owned by [`crate::table::validate`]):
//! the rendering tells it which rows are fresh and whether allocations came in order; rows
//! carried over come from a rendering that passed. Property tests below hold both the bytes and
//! the verdict to the full rendering and the full check.
//!
//! At 100,000 rows a full projection, render and validation took about 0.3 s; a publish after
//! one allocation changed now costs little more than copying the bytes and validating them
//! (BENCHMARKS.md).

use std::ops::Range;
use std::sync::Arc;

use crate::nomad::types::Allocation;
use crate::table::columns::Columns;
use crate::table::format::{FileFormat, JSON_CLOSE, JSON_EMPTY, JSON_OPEN, JSON_SEPARATOR};
use crate::table::node_columns::Nodes;
use crate::table::render;
use crate::table::validate::{Assembled, FreshRows, IncrementalCheck, ValidTable, ValidationError};
use crate::table::{self, NodeInfo};

/// One allocation of the model as a rendering sees it.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    pub alloc: &'a Allocation,
    /// Changes whenever the model's entry for the allocation changes.
    pub generation: u64,
    /// When its rows go, once the allocation is leaving (its grace period ends). The file does
    /// not show it; Vector's memory table is told it as the rows' TTL.
    pub remove_at: Option<tokio::time::Instant>,
}

/// Where one allocation's rows are in a rendering, and what they were made from.
/// Shared parts, so that carrying a span over to the next rendering allocates nothing.
#[derive(Clone, Debug)]
struct Span {
    alloc_id: Arc<str>,
    generation: u64,
    node: Arc<NodeInfo>,
    /// The rows' bytes (for JSON: the objects, without separators).
    bytes: Range<usize>,
    /// The task of each row, to count what a publish adds and removes.
    tasks: Arc<[String]>,
}

/// A valid rendering of the model, to publish and then [`RenderCache::commit`].
#[derive(Debug)]
pub struct Rendering {
    /// The file, checked.
    pub table: ValidTable,
    spans: Vec<Span>,
    /// Rows in the table.
    pub rows: usize,
    /// Rows whose key was not in the last committed rendering, and keys no longer there.
    pub added: usize,
    pub removed: usize,
    /// Allocations projected afresh (the others' rows were copied).
    pub projected: usize,
    /// Allocations that yielded no row: nothing in Nomad's answers named their tasks.
    pub without_tasks: usize,
}

/// The last rendering that was published (or found already on disk), kept to render the next
/// one incrementally.
#[derive(Debug)]
pub struct RenderCache {
    columns: Columns,
    format: FileFormat,
    header: Vec<String>,
    /// How a rendering is checked, costing what changed.
    check: IncrementalCheck,
    last: Option<Rendering>,
    /// Rows and bytes of the last committed rendering.
    rows: usize,
    bytes: usize,
}

impl RenderCache {
    pub fn new(columns: Columns, format: FileFormat) -> RenderCache {
        let header = columns.header();
        RenderCache {
            check: IncrementalCheck::new(render::header_only(&header, format), format),
            header,
            columns,
            format,
            last: None,
            rows: 0,
            bytes: 0,
        }
    }

    /// Renders `entries` (in key order, as the model keeps them), reusing the rows of every
    /// allocation whose generation and node are those of the last committed rendering, and
    /// checks the result; an error says why the table would not load.
    pub fn render<'a>(
        &self,
        entries: impl IntoIterator<Item = Entry<'a>>,
        nodes: &Nodes,
    ) -> Result<Rendering, ValidationError> {
        let last = self.last.as_ref();
        let old_spans = last.map_or(&[][..], |l| l.spans.as_slice());
        let old_bytes = last.map_or(&[][..], |l| l.table.bytes());
        // About the last rendering's size: growing by doubling would hold up to three times
        // the file for a moment (a table of 100,000 rows is 18 MB).
        let capacity = self.bytes + self.bytes / 64 + 4096;
        let mut out = Output::new(self.format, &self.header, capacity);
        let mut spans = Vec::with_capacity(old_spans.len() + 16);
        let (mut rows, mut added, mut removed, mut projected, mut without_tasks) = (0, 0, 0, 0, 0);
        let mut in_order = true;
        let mut allocations = 0;
        // The rows made afresh, to check.
        let mut fresh: Vec<FreshRows> = Vec::new();
        let mut too_fresh = false;
        let mut previous_id: Option<&str> = None;
        let mut old = old_spans.iter().peekable();
        let entries = entries.into_iter();
        let expected_allocations = entries.size_hint().0;
        for entry in entries {
            let id = &*entry.alloc.id;
            in_order &= previous_id.is_none_or(|p| p < id);
            previous_id = Some(id);
            // Spans of allocations that sort before this one are gone from the model.
            while let Some(gone) = old.next_if(|s| &*s.alloc_id < id) {
                removed += gone.tasks.len();
            }
            let previous = old.next_if(|s| &*s.alloc_id == id);
            let node = nodes.of(&entry.alloc.node_id);
            let span = match previous {
                Some(p) if p.generation == entry.generation && Arc::ptr_eq(&p.node, node) => {
                    let bytes = out.copy(&old_bytes[p.bytes.clone()]);
                    Span { bytes, ..p.clone() }
                }
                _ => {
                    projected += 1;
                    let alloc_rows = table::allocation_rows(entry.alloc, node, &self.columns);
                    let tasks: Vec<String> = alloc_rows.iter().map(|r| r[1].clone()).collect();
                    match previous {
                        Some(p) => {
                            added += tasks.iter().filter(|t| !p.tasks.contains(t)).count();
                            removed += p.tasks.iter().filter(|t| !tasks.contains(t)).count();
                        }
                        None => added += tasks.len(),
                    }
                    let bytes = out.rows(&alloc_rows);
                    let alloc_id = entry.alloc.id.clone();
                    if !alloc_rows.is_empty() && !too_fresh {
                        fresh.push(FreshRows {
                            alloc_id: alloc_id.clone(),
                            bytes: bytes.clone(),
                        });
                        if self.check.checks_whole(fresh.len(), expected_allocations) {
                            too_fresh = true;
                            fresh = Vec::new();
                        }
                    }
                    Span {
                        alloc_id,
                        generation: entry.generation,
                        node: node.clone(),
                        bytes,
                        tasks: tasks.into(),
                    }
                }
            };
            if span.tasks.is_empty() {
                without_tasks += 1;
            }
            rows += span.tasks.len();
            allocations += 1;
            if allocations >= SAMPLE_ALLOCATIONS && out.spare() < SLACK {
                out.reserve_like(allocations, expected_allocations);
            }
            spans.push(span);
        }
        removed += old.map(|gone| gone.tasks.len()).sum::<usize>();
        let assembled = Assembled {
            fresh,
            too_fresh,
            in_order,
            allocations,
            rows,
        };
        let table = self.check.check(out.finish(), &assembled)?;
        Ok(Rendering {
            table,
            spans,
            rows,
            added,
            removed,
            projected,
            without_tasks,
        })
    }

    /// Makes `rendering` the base of the next one: it is what the file now holds. A rendering
    /// is valid by construction, so its rows may be carried over unchecked.
    pub fn commit(&mut self, rendering: Rendering) {
        self.rows = rendering.rows;
        self.bytes = rendering.table.bytes().len();
        self.last = Some(rendering);
    }

    /// Rows of the last committed rendering.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// After this many allocations, a rendering that runs out of room (the first, or one larger than
/// the last) reserves it for the rest at their average size so far, instead of doubling.
const SAMPLE_ALLOCATIONS: usize = 256;
/// Room left below which the rest is reserved.
const SLACK: usize = 64 * 1024;

/// The file being assembled.
struct Output {
    format: FileFormat,
    header: Vec<String>,
    bytes: Vec<u8>,
    /// Whether a JSON object was written: the next one needs a separator.
    any: bool,
}

impl Output {
    fn new(format: FileFormat, header: &[String], capacity: usize) -> Output {
        let mut bytes = Vec::with_capacity(capacity);
        match format {
            FileFormat::Csv => render::write_csv(&mut bytes, &[header.to_vec()]),
            FileFormat::Json => bytes.extend_from_slice(JSON_OPEN),
        }
        Output {
            format,
            header: header.to_vec(),
            bytes,
            any: false,
        }
    }

    /// Reserves room for `total` allocations rendered like the `done` ones so far.
    fn reserve_like(&mut self, done: usize, total: usize) {
        let rest = (self.bytes.len() / done) * total.saturating_sub(done);
        self.bytes.reserve_exact(rest + rest / 16 + SLACK);
    }

    /// Room left in the buffer.
    fn spare(&self) -> usize {
        self.bytes.capacity() - self.bytes.len()
    }

    /// Appends rows rendered before; returns where they now are.
    fn copy(&mut self, rows: &[u8]) -> Range<usize> {
        if self.format == FileFormat::Json && !rows.is_empty() {
            if self.any {
                self.bytes.extend_from_slice(JSON_SEPARATOR);
            }
            self.any = true;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(rows);
        start..self.bytes.len()
    }

    /// Renders and appends rows; returns where they are.
    fn rows(&mut self, rows: &[Vec<String>]) -> Range<usize> {
        match self.format {
            FileFormat::Csv => {
                let start = self.bytes.len();
                render::write_csv(&mut self.bytes, rows);
                start..self.bytes.len()
            }
            FileFormat::Json => {
                let elements = render::json_elements(&self.header, rows);
                self.copy(&elements)
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        match self.format {
            FileFormat::Csv => self.bytes,
            FileFormat::Json if !self.any => JSON_EMPTY.to_vec(),
            FileFormat::Json => {
                self.bytes.extend_from_slice(JSON_CLOSE);
                self.bytes.push(b'\n');
                self.bytes
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::types::{Job, Task, TaskGroup};
    use proptest::prelude::*;

    fn alloc(id: &str, node: &str, tasks: &[&str], meta: &str) -> Allocation {
        Allocation {
            id: id.into(),
            node_id: node.into(),
            task_group: "g".into(),
            job: Some(Arc::new(Job {
                meta: [("m".to_owned(), meta.to_owned())].into(),
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

    fn nodes(datacenter: &str) -> Nodes {
        let mut nodes = Nodes::cluster();
        nodes.replace(
            &["n1", "n2"].map(|id| crate::nomad::types::Node {
                id: id.into(),
                datacenter: format!("{datacenter}-{id}"),
                ..Default::default()
            }),
            |_| false,
        );
        nodes
    }

    fn columns() -> Columns {
        Columns::choose(None, &["m".to_owned()]).expect("valid")
    }

    fn full(allocs: &[Allocation], nodes: &Nodes, format: FileFormat) -> Vec<u8> {
        render::render(&table::project(allocs, nodes, &columns()).table, format)
    }

    fn entries(allocs: &[(Allocation, u64)]) -> impl Iterator<Item = Entry<'_>> {
        allocs.iter().map(|(alloc, generation)| Entry {
            alloc,
            generation: *generation,
            remove_at: None,
        })
    }

    #[test]
    fn a_rendering_reserves_about_its_size_not_double() {
        let nodes = nodes("dc");
        let model: Vec<(Allocation, u64)> = (0..20_000)
            .map(|i| {
                let tasks: &[&str] = if i % 3 == 0 { &["a", "b"] } else { &["a"] };
                (alloc(&format!("{i:06}"), "n1", tasks, "m"), 1)
            })
            .collect();
        let mut cache = RenderCache::new(columns(), FileFormat::Csv);
        // A small table first (a start's), then larger ones, then a smaller one: room for the
        // larger of this rendering and the last, not twice either.
        let mut last = 0;
        for size in [10, 7_000, 20_000, 16_000] {
            let rendering = cache
                .render(entries(&model[..size]), &nodes)
                .expect("valid");
            let (len, capacity) = (rendering.table.bytes().len(), rendering.table.capacity());
            let room = len.max(last);
            assert!(
                capacity <= room + room / 8 + 2 * SLACK,
                "{capacity} reserved for {len} bytes after {last}"
            );
            last = len;
            cache.commit(rendering);
        }
    }

    #[test]
    fn an_allocation_that_sorts_first_leaving_is_counted_and_the_rest_carried_over() {
        let cache_nodes = nodes("dc");
        let mut cache = RenderCache::new(columns(), FileFormat::Csv);
        let mut model = vec![
            (alloc("a", "n1", &["x", "y"], "1"), 1),
            (alloc("b", "n2", &["x"], "1"), 2),
            (alloc("c", "n1", &["x"], "1"), 3),
        ];
        cache.commit(cache.render(entries(&model), &cache_nodes).expect("valid"));
        model.remove(0);
        let second = cache.render(entries(&model), &cache_nodes).expect("valid");
        assert_eq!(
            (second.projected, second.added, second.removed, second.rows),
            (0, 0, 2, 2)
        );
    }

    #[test]
    fn allocations_whose_tasks_nothing_names_are_counted() {
        let model = vec![
            (alloc("a", "n1", &[], "1"), 1),
            (alloc("b", "n1", &["x"], "1"), 2),
            (alloc("c", "n1", &[], "1"), 3),
        ];
        let cache = RenderCache::new(columns(), FileFormat::Csv);
        let rendering = cache.render(entries(&model), &nodes("dc")).expect("valid");
        assert_eq!((rendering.without_tasks, rendering.rows), (2, 1));
    }

    #[test]
    fn a_model_with_an_allocation_twice_is_refused_even_when_checked_by_allocation() {
        let cache_nodes = nodes("dc");
        let mut cache = RenderCache::new(columns(), FileFormat::Csv);
        cache.check = cache.check.clone().per_allocation();
        let model = vec![
            (alloc("a", "n1", &["x"], "1"), 1),
            (alloc("a", "n1", &["x"], "2"), 2),
        ];
        assert!(
            cache.render(entries(&model), &cache_nodes).is_err(),
            "out of order, the whole file is checked: its keys repeat"
        );
    }

    #[test]
    fn only_changed_allocations_are_projected_and_counts_follow_the_keys() {
        let cache_nodes = nodes("dc");
        let mut cache = RenderCache::new(columns(), FileFormat::Csv);
        let mut model = vec![
            (alloc("a", "n1", &["x", "y"], "1"), 1),
            (alloc("b", "n2", &["x"], "1"), 2),
            (alloc("c", "n1", &["x"], "1"), 3),
        ];
        let first = cache.render(entries(&model), &cache_nodes).expect("valid");
        assert_eq!(
            (first.projected, first.rows, first.added, first.removed),
            (3, 4, 4, 0)
        );
        cache.commit(first);
        // b changes its tasks, c goes, d comes; a is untouched.
        model[1] = (alloc("b", "n2", &["z"], "1"), 4);
        model[2] = (alloc("d", "n1", &["x"], "1"), 5);
        let second = cache.render(entries(&model), &cache_nodes).expect("valid");
        assert_eq!(second.projected, 2, "b and d");
        assert_eq!((second.added, second.removed, second.rows), (2, 2, 4));
        let allocs: Vec<Allocation> = model.iter().map(|(a, _)| a.clone()).collect();
        assert_eq!(
            second.table.bytes(),
            full(&allocs, &cache_nodes, FileFormat::Csv)
        );
        cache.commit(second);
        assert_eq!(cache.rows(), 4);
    }

    #[test]
    fn a_changed_node_reprojects_its_allocations_only() {
        let mut cache = RenderCache::new(columns(), FileFormat::Csv);
        let mut directory = nodes("dc");
        let model = vec![
            (alloc("a", "n1", &["x"], "1"), 1),
            (alloc("b", "n2", &["x"], "1"), 2),
        ];
        cache.commit(cache.render(entries(&model), &directory).expect("valid"));
        directory.update(&crate::nomad::types::Node {
            id: "n2".into(),
            datacenter: "moved".to_owned(),
            ..Default::default()
        });
        let again = cache.render(entries(&model), &directory).expect("valid");
        assert_eq!(again.projected, 1);
        let allocs: Vec<Allocation> = model.iter().map(|(a, _)| a.clone()).collect();
        assert_eq!(
            again.table.bytes(),
            full(&allocs, &directory, FileFormat::Csv)
        );
        assert!(String::from_utf8_lossy(again.table.bytes()).contains("moved"));
    }

    #[test]
    fn an_empty_model_renders_as_the_full_path_does() {
        for format in [FileFormat::Csv, FileFormat::Json] {
            let cache = RenderCache::new(columns(), format);
            let rendering = cache
                .render(std::iter::empty(), &nodes("dc"))
                .expect("valid");
            assert_eq!(rendering.table.bytes(), full(&[], &nodes("dc"), format));
        }
    }

    fn model_strategy() -> impl Strategy<Value = Vec<(u8, u8, Vec<u8>, String)>> {
        // (alloc id, node, task numbers, meta value), ids possibly repeated: the last wins.
        proptest::collection::vec(
            (
                0u8..30,
                0u8..3,
                proptest::collection::vec(0u8..4, 0..3),
                "[a-c,\"\n ]{0,3}",
            ),
            0..25,
        )
    }

    fn build(spec: &[(u8, u8, Vec<u8>, String)]) -> Vec<Allocation> {
        let mut by_id = std::collections::BTreeMap::new();
        for (id, node, tasks, meta) in spec {
            let mut names: Vec<String> = tasks.iter().map(|t| format!("t{t}")).collect();
            names.sort();
            names.dedup();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            by_id.insert(
                format!("{id:02}"),
                alloc(&format!("{id:02}"), &format!("n{node}"), &names, meta),
            );
        }
        by_id.into_values().collect()
    }

    /// Allocations whose jobs may name a task twice (a job Nomad would refuse, and the case that
    /// makes a key repeat), and cell values with CSV's special characters.
    fn risky_model() -> impl Strategy<Value = Vec<(u8, Vec<u8>, String)>> {
        proptest::collection::vec(
            (
                0u8..20,
                proptest::collection::vec(0u8..3, 0..4),
                "[a,\"\n]{0,3}",
            ),
            0..15,
        )
    }

    fn build_risky(spec: &[(u8, Vec<u8>, String)]) -> Vec<Allocation> {
        let mut by_id = std::collections::BTreeMap::new();
        for (id, tasks, meta) in spec {
            let names: Vec<String> = tasks.iter().map(|t| format!("t{t}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let id = format!("{id:02}");
            by_id.insert(id.clone(), alloc(&id, "n1", &names, meta));
        }
        by_id.into_values().collect()
    }

    /// The model after `before`: allocations unchanged since keep their generation (1), changed
    /// or new ones get a new one (2).
    fn next_generations(before: &[Allocation], after: &[Allocation]) -> Vec<(Allocation, u64)> {
        after
            .iter()
            .cloned()
            .map(|a| {
                let same = before.contains(&a);
                (a, if same { 1 } else { 2 })
            })
            .collect()
    }

    proptest! {
        /// The incremental verdict is the full validator's, whatever is carried over and
        /// whatever is re-projected, valid or not.
        #[test]
        fn incremental_validation_agrees_with_the_full_validator(
            before in risky_model(),
            after in risky_model(),
            json in proptest::bool::ANY,
        ) {
            let format = if json { FileFormat::Json } else { FileFormat::Csv };
            let directory = nodes("dc");
            let mut cache = RenderCache::new(columns(), format);
            // Allocation by allocation, however many changed (the default checks the whole
            // file when many did).
            cache.check = cache.check.clone().per_allocation();
            let before = build_risky(&before);
            let first_model: Vec<(Allocation, u64)> = before.iter().cloned().map(|a| (a, 1)).collect();
            let first = cache.render(entries(&first_model), &directory);
            let full_verdict = ValidTable::check(full(&before, &directory, format), format);
            prop_assert_eq!(first.as_ref().map(|r| r.table.rows()).ok(), full_verdict.as_ref().map(ValidTable::rows).ok());
            // As the driver does: only a valid rendering is published and kept.
            if let Ok(first) = first {
                cache.commit(first);
            }
            let after = build_risky(&after);
            let second_model = next_generations(&before, &after);
            let second = cache.render(entries(&second_model), &directory);
            let full_verdict = ValidTable::check(full(&after, &directory, format), format);
            prop_assert_eq!(second.as_ref().map(|r| r.table.rows()).ok(), full_verdict.as_ref().map(ValidTable::rows).ok());
        }

        /// Whatever changes between two renderings (allocations added, removed, changed, nodes
        /// changed), the incremental rendering is byte for byte the full one, in both formats.
        #[test]
        fn incremental_rendering_is_the_full_rendering(
            before in model_strategy(),
            after in model_strategy(),
            node_changes in proptest::bool::ANY,
            json in proptest::bool::ANY,
        ) {
            let format = if json { FileFormat::Json } else { FileFormat::Csv };
            let before = build(&before);
            let after = build(&after);
            let mut directory = nodes("dc");
            let mut cache = RenderCache::new(columns(), format);
            let generations: Vec<(Allocation, u64)> = before.iter().cloned().map(|a| (a, 1)).collect();
            let first = cache.render(entries(&generations), &directory).expect("valid");
            let expected = full(&before, &directory, format);
            prop_assert_eq!(first.table.bytes(), expected.as_slice());
            cache.commit(first);
            if node_changes {
                directory.update(&crate::nomad::types::Node { id: "n1".into(), datacenter: "other".to_owned(), ..Default::default() });
            }
            let generations = next_generations(&before, &after);
            let second = cache.render(entries(&generations), &directory).expect("valid");
            let expected = full(&after, &directory, format);
            prop_assert_eq!(second.table.bytes(), expected.as_slice());
            let rows = table::project(&after, &directory, &columns()).table.rows.len();
            prop_assert_eq!(second.rows, rows);
        }
    }
}
