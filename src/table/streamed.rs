//! The rendering of a table written as it is made, for the base of `--memory-table-url`: it is
//! published every few minutes, rendered from scratch each time, and at 100,000 rows held in
//! memory it would add 18 MB to the exporter's peak. Rows go out in chunks, each checked
//! ([`ChunkedCheck`]) before it is written, so a table that fails leaves only a partial
//! temporary file for the publisher to discard. Pure but for the sink it is given.

use std::io::Write;
use std::sync::Arc;

use crate::table::columns::Columns;
use crate::table::format::{FileFormat, JSON_CLOSE, JSON_OPEN, JSON_SEPARATOR};
use crate::table::incremental::Entry;
use crate::table::node_columns::Nodes;
use crate::table::validate::{CheckedRows, ChunkedCheck, ValidationError};
use crate::table::{self, render};

/// About how many bytes of rows are held before they are checked and written.
const CHUNK_BYTES: usize = 256 * 1024;

/// Why a table could not be written out.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("cannot write the table: {0}")]
    Write(#[source] std::io::Error),
}

/// What a streamed rendering wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Streamed {
    /// The check's verdict on every chunk: what a draft is published with.
    pub checked: CheckedRows,
    /// Allocations that yielded no row: nothing in Nomad's answers named their tasks.
    pub without_tasks: usize,
}

/// Renders tables of one set of columns and format straight into a sink.
#[derive(Clone, Debug)]
pub struct StreamRenderer {
    columns: Columns,
    format: FileFormat,
    header: Vec<String>,
    header_only: Vec<u8>,
    /// [`CHUNK_BYTES`]; tests set less, to cross many chunks with a few rows.
    chunk_bytes: usize,
}

impl StreamRenderer {
    /// A renderer of tables of `columns` in `format`.
    pub fn new(columns: Columns, format: FileFormat) -> StreamRenderer {
        let header = columns.header();
        StreamRenderer {
            header_only: render::header_only(&header, format),
            header,
            columns,
            format,
            chunk_bytes: CHUNK_BYTES,
        }
    }

    /// Chunks of about `bytes` (tests).
    #[cfg(test)]
    fn in_chunks_of(mut self, bytes: usize) -> StreamRenderer {
        self.chunk_bytes = bytes;
        self
    }

    /// Writes the table of `entries` (in key order, as the model keeps them) into `sink`, the
    /// same bytes as a whole rendering, checking each chunk before it goes. On an error, what
    /// `sink` holds is no table and must be discarded.
    pub fn render_to<'a>(
        &self,
        entries: impl IntoIterator<Item = Entry<'a>>,
        nodes: &Nodes,
        sink: &mut impl Write,
    ) -> Result<Streamed, StreamError> {
        let mut chunk = Chunk {
            check: ChunkedCheck::new(self.header_only.clone(), self.format),
            format: self.format,
            header_only: &self.header_only,
            bytes: Vec::with_capacity(self.chunk_bytes + self.chunk_bytes / 4),
            owners: Vec::new(),
            started: false,
        };
        let mut without_tasks = 0;
        for entry in entries {
            let rows =
                table::allocation_rows(entry.alloc, nodes.of(&entry.alloc.node_id), &self.columns);
            if rows.is_empty() {
                without_tasks += 1;
                continue;
            }
            match self.format {
                FileFormat::Csv => render::write_csv(&mut chunk.bytes, &rows),
                FileFormat::Json => {
                    if !chunk.bytes.is_empty() {
                        chunk.bytes.extend_from_slice(JSON_SEPARATOR);
                    }
                    chunk
                        .bytes
                        .extend_from_slice(&render::json_elements(&self.header, &rows));
                }
            }
            chunk.owners.push((entry.alloc.id.clone(), rows.len()));
            if chunk.bytes.len() >= self.chunk_bytes {
                chunk.flush(sink)?;
            }
        }
        chunk.flush(sink)?;
        chunk.finish(sink)?;
        Ok(Streamed {
            checked: chunk.check.finish()?,
            without_tasks,
        })
    }
}

/// Rows rendered and not yet written.
struct Chunk<'h> {
    check: ChunkedCheck,
    format: FileFormat,
    header_only: &'h [u8],
    bytes: Vec<u8>,
    /// Each allocation in `bytes`, with its rows.
    owners: Vec<(Arc<str>, usize)>,
    /// Whether the table's opening (the header, or the array's bracket) was written.
    started: bool,
}

impl Chunk<'_> {
    /// Checks the rows held and writes them after what was written.
    fn flush(&mut self, sink: &mut impl Write) -> Result<(), StreamError> {
        if self.owners.is_empty() {
            return Ok(());
        }
        self.check.chunk(&self.bytes, &self.owners)?;
        let opening = match (self.started, self.format) {
            (false, FileFormat::Csv) => self.header_only,
            (false, FileFormat::Json) => JSON_OPEN,
            (true, FileFormat::Csv) => &[][..],
            (true, FileFormat::Json) => JSON_SEPARATOR,
        };
        sink.write_all(opening)
            .and_then(|()| sink.write_all(&self.bytes))
            .map_err(StreamError::Write)?;
        self.started = true;
        self.bytes.clear();
        self.owners.clear();
        Ok(())
    }

    /// Writes the table's end (or the whole table of no rows).
    fn finish(&self, sink: &mut impl Write) -> Result<(), StreamError> {
        match (self.started, self.format) {
            (false, _) => sink.write_all(self.header_only),
            (true, FileFormat::Csv) => Ok(()),
            (true, FileFormat::Json) => sink
                .write_all(JSON_CLOSE)
                .and_then(|()| sink.write_all(b"\n")),
        }
        .map_err(StreamError::Write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::types::{Allocation, Job, Node, Task, TaskGroup};
    use crate::table::incremental::RenderCache;

    fn alloc(id: &str, tasks: &[&str]) -> Allocation {
        Allocation {
            id: id.into(),
            node_id: "n1".into(),
            task_group: "g".into(),
            job: Some(Arc::new(Job {
                meta: [(
                    "m".to_owned(),
                    format!("meta of {id}, \"quoted\"\nand two lines"),
                )]
                .into(),
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

    fn nodes() -> Nodes {
        let mut nodes = Nodes::cluster();
        let node = Node {
            id: "n1".into(),
            datacenter: "dc1".into(),
            ..Node::default()
        };
        nodes.replace(&[node], |_| false);
        nodes
    }

    fn columns() -> Columns {
        Columns::choose(None, &["m".to_owned()]).expect("valid")
    }

    fn entries(allocs: &[Allocation]) -> impl Iterator<Item = Entry<'_>> {
        allocs.iter().map(|alloc| Entry {
            alloc,
            generation: 1,
            remove_at: None,
        })
    }

    /// Allocations `a000`… with one, two or no tasks.
    fn model(count: usize) -> Vec<Allocation> {
        (0..count)
            .map(|i| {
                let tasks: &[&str] = match i % 4 {
                    0 => &["web", "sidecar"],
                    1 => &[],
                    _ => &["web"],
                };
                alloc(&format!("a{i:03}"), tasks)
            })
            .collect()
    }

    fn streamed(
        renderer: &StreamRenderer,
        allocs: &[Allocation],
    ) -> (Vec<u8>, Result<Streamed, StreamError>) {
        let mut sink = Vec::new();
        let result = renderer.render_to(entries(allocs), &nodes(), &mut sink);
        (sink, result)
    }

    #[test]
    fn the_bytes_are_those_of_a_whole_rendering_in_any_chunks() {
        for format in [FileFormat::Csv, FileFormat::Json] {
            let whole = RenderCache::new(columns(), format);
            for count in [0, 1, 2, 9, 40] {
                let allocs = model(count);
                let expected = whole.render(entries(&allocs), &nodes()).expect("valid");
                for chunk in [1, 150, 1_000, CHUNK_BYTES] {
                    let renderer = StreamRenderer::new(columns(), format).in_chunks_of(chunk);
                    let (bytes, result) = streamed(&renderer, &allocs);
                    let what = format!("{format:?}, {count} allocations, chunks of {chunk}");
                    assert_eq!(
                        String::from_utf8_lossy(&bytes),
                        String::from_utf8_lossy(expected.table.bytes()),
                        "{what}"
                    );
                    let result = result.expect("valid");
                    assert_eq!(
                        (result.checked.rows(), result.without_tasks),
                        (expected.rows, expected.without_tasks),
                        "{what}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_chunk_that_fails_is_not_written_and_says_where_in_the_file() {
        let mut allocs = model(6);
        // a004 (two tasks): its second task is named like the first.
        allocs[4] = alloc("a004", &["web", "web"]);
        let renderer = StreamRenderer::new(columns(), FileFormat::Csv).in_chunks_of(1);
        let (bytes, result) = streamed(&renderer, &allocs);
        assert!(
            matches!(
                result,
                Err(StreamError::Invalid(ValidationError::DuplicateKey { ref alloc_id, .. }))
                    if alloc_id == "a004"
            ),
            "{result:?}"
        );
        let written = String::from_utf8_lossy(&bytes);
        assert!(
            written.contains("a003") && !written.contains("a004"),
            "{written}"
        );

        // An empty task name, in the third chunk: each meta value spans two lines, so the
        // row's line counts those of the chunks before it.
        let mut allocs = model(4);
        allocs[3] = alloc("a003", &[""]);
        let (_, result) = streamed(&renderer, &allocs);
        let rows_before = 2 + 1;
        assert!(
            matches!(
                result,
                Err(StreamError::Invalid(ValidationError::EmptyKey { line }))
                    if line == 2 + 2 * rows_before
            ),
            "{result:?}"
        );
    }

    /// A sink that refuses to take more than `room` bytes.
    struct Full {
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if buf.len() > self.room {
                return Err(std::io::Error::other("no space left on device"));
            }
            self.room -= buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_sink_that_fails_is_a_write_error() {
        let renderer = StreamRenderer::new(columns(), FileFormat::Csv).in_chunks_of(1);
        let err = renderer
            .render_to(entries(&model(8)), &nodes(), &mut Full { room: 300 })
            .expect_err("full");
        assert!(matches!(err, StreamError::Write(_)), "{err}");
    }
}
