//! Whether Vector can load a table: the one owner of that question. Bytes are read back with
//! the rules Vector's `file` enrichment table loads them with ([`VECTOR_FILE_TABLE`]: the `csv`
//! crate with headers, not flexible, UTF-8), plus the table contract: key columns first, keys
//! present and unique. Only this module makes a [`ValidTable`], from a full check
//! ([`ValidTable::check`]) or from an incremental one ([`IncrementalCheck`]), and the
//! [`CheckedRows`] of a table checked chunk by chunk as it was written ([`ChunkedCheck`]); the
//! publisher takes nothing else, so a table that fails is never published (Vector exits when a
//! reload meets a table it cannot load).
//!
//! JSON tables are checked for what they promise (an array of objects of strings with unique
//! keys), not for Vector: Vector's `file` table reads CSV only, and a JSON file there makes
//! Vector refuse to start (or stop, on a reload). [`FileFormat::loaded_by_vector`] says which.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;
use std::sync::Arc;

use crate::table::format::{FileFormat, JSON_CLOSE, JSON_OPEN, VECTOR_FILE_TABLE};

/// The key columns every published table must carry, first.
pub const KEY_COLUMNS: [&str; 2] = ["alloc_id", "task"];

/// Why rendered bytes would not load in Vector (or would make lookups fail).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidationError {
    #[error("the table is empty: Vector needs at least the header row")]
    Empty,
    #[error("the table is not valid UTF-8 at line {line}")]
    NotUtf8 { line: u64 },
    #[error("line {line} has {found} fields but the header has {expected}")]
    Ragged {
        line: u64,
        expected: usize,
        found: usize,
    },
    #[error("the header lacks the key column {column:?}, or it is not where the contract puts it")]
    MissingKey { column: &'static str },
    #[error(
        "the key (alloc_id={alloc_id:?}, task={task:?}) appears more than once: every Vector lookup of it would fail"
    )]
    DuplicateKey { alloc_id: String, task: String },
    #[error("a row has an empty alloc_id or task, at line {line}")]
    EmptyKey { line: u64 },
    #[error("the CSV cannot be parsed: {0}")]
    Csv(String),
    #[error("the JSON cannot be parsed or is not an array of objects of strings: {0}")]
    Json(String),
    #[error("a row of allocation {alloc_id:?} carries another alloc_id")]
    ForeignRow { alloc_id: String },
    #[error("allocation {alloc_id:?} comes after one that sorts after it: keys may repeat")]
    Unordered { alloc_id: String },
    #[error("a chunk of the table holds other than the {expected} rows rendered into it")]
    RowCount { expected: usize },
}

impl ValidationError {
    /// The error with its line moved down by `lines`: a chunk is checked as a table of its
    /// own, and its lines are the file's after those before it.
    fn shifted(self, lines: u64) -> ValidationError {
        match self {
            ValidationError::NotUtf8 { line } => ValidationError::NotUtf8 { line: line + lines },
            ValidationError::Ragged {
                line,
                expected,
                found,
            } => ValidationError::Ragged {
                line: line + lines,
                expected,
                found,
            },
            ValidationError::EmptyKey { line } => ValidationError::EmptyKey { line: line + lines },
            other => other,
        }
    }
}

/// Table bytes that passed validation: what may be published. Only this module constructs one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidTable {
    bytes: Vec<u8>,
    format: FileFormat,
    rows: usize,
}

impl ValidTable {
    /// Checks the whole of `bytes` as `format`'s consumer reads it.
    pub fn check(bytes: Vec<u8>, format: FileFormat) -> Result<ValidTable, ValidationError> {
        let rows = check(&bytes, format, None)?;
        Ok(ValidTable {
            bytes,
            format,
            rows,
        })
    }

    /// The bytes to write.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, given up (for stdout).
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// What the bytes' buffer holds room for (tests of how much a rendering reserves).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// Rows in the table, the header not counted.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Rows an incremental rendering made afresh for one allocation: where they are in the file,
/// and the allocation every one of them must belong to.
#[derive(Clone, Debug)]
pub struct FreshRows {
    pub alloc_id: Arc<str>,
    pub bytes: Range<usize>,
}

/// What an incremental rendering tells the check about the file it assembled: the rows made
/// afresh; whether allocations came in strictly increasing ID order (then keys are unique
/// across allocations by construction); and the counts. Rows not listed were carried over from
/// a [`ValidTable`].
#[derive(Clone, Debug, Default)]
pub struct Assembled {
    pub fresh: Vec<FreshRows>,
    /// The rendering stopped listing fresh rows once [`IncrementalCheck::checks_whole`] said
    /// the whole file would be checked (a first rendering makes every row afresh: the list
    /// would be as long as the table).
    pub too_fresh: bool,
    pub in_order: bool,
    pub allocations: usize,
    pub rows: usize,
}

/// When more than one allocation in this many was made afresh, the whole file is checked in
/// one pass instead of each allocation's rows on their own.
const WHOLE_FILE_SHARE: usize = 8;

/// The check of a file assembled from rows carried over from a valid table and rows made
/// afresh: it costs what changed. The fresh rows of each allocation are read as a table of
/// their own (with the header) and must all carry that allocation's ID; the header is checked
/// once. Where the order does not hold, or most rows are fresh, the whole file is checked.
#[derive(Clone, Debug)]
pub struct IncrementalCheck {
    format: FileFormat,
    /// The header-only table: fresh rows are checked after it.
    header_only: Vec<u8>,
    header_verdict: Result<(), ValidationError>,
    /// [`WHOLE_FILE_SHARE`]; tests set 0 to check allocation by allocation always.
    whole_file_share: usize,
}

impl IncrementalCheck {
    /// A check of files whose table of no rows is `header_only` (see
    /// [`crate::table::render::header_only`]).
    pub fn new(header_only: Vec<u8>, format: FileFormat) -> IncrementalCheck {
        IncrementalCheck {
            header_verdict: check(&header_only, format, None).map(drop),
            header_only,
            format,
            whole_file_share: WHOLE_FILE_SHARE,
        }
    }

    /// Checks an assembled file.
    pub fn check(
        &self,
        bytes: Vec<u8>,
        assembled: &Assembled,
    ) -> Result<ValidTable, ValidationError> {
        self.header_verdict.clone()?;
        let whole = assembled.too_fresh
            || !assembled.in_order
            || self.checks_whole(assembled.fresh.len(), assembled.allocations);
        if whole {
            return ValidTable::check(bytes, self.format);
        }
        for fresh in &assembled.fresh {
            self.check_rows(&bytes[fresh.bytes.clone()], &fresh.alloc_id)?;
        }
        Ok(ValidTable {
            bytes,
            format: self.format,
            rows: assembled.rows,
        })
    }

    /// Whether a file of `allocations` of which `fresh` were made afresh is checked whole.
    pub fn checks_whole(&self, fresh: usize, allocations: usize) -> bool {
        fresh.saturating_mul(self.whole_file_share) > allocations
    }

    /// Checks the rows of one allocation as a table of their own.
    fn check_rows(&self, rows: &[u8], alloc_id: &str) -> Result<usize, ValidationError> {
        check(
            &table_of(self.format, &self.header_only, rows),
            self.format,
            Some(alloc_id),
        )
    }

    /// Checks allocation by allocation whatever the share of fresh rows (tests).
    #[cfg(test)]
    pub(crate) fn per_allocation(mut self) -> IncrementalCheck {
        self.whole_file_share = 0;
        self
    }
}

/// Checks bytes of a format; with `owner`, every row must carry that alloc ID. Returns the rows.
fn check(bytes: &[u8], format: FileFormat, owner: Option<&str>) -> Result<usize, ValidationError> {
    match format {
        FileFormat::Csv => check_csv(bytes, owner),
        FileFormat::Json => check_json(bytes, owner),
    }
}

/// Checks CSV bytes as Vector's file table reads them and returns how many rows they hold:
/// for callers that read a table file rather than publish one (`print-table --diff`).
pub fn check_csv_rows(bytes: &[u8]) -> Result<usize, ValidationError> {
    check_csv(bytes, None)
}

/// The keys a check has seen.
trait Seen: Default {
    /// Records a key; whether it was new. A set of hashes may call a new key seen (a collision).
    fn first(&mut self, alloc_id: &str, task: &str) -> bool;
}

/// The keys themselves: exact.
impl Seen for HashSet<(String, String)> {
    fn first(&mut self, alloc_id: &str, task: &str) -> bool {
        self.insert((alloc_id.to_owned(), task.to_owned()))
    }
}

/// A hash of each key: a table of 100,000 rows checked with the keys themselves held 12 MB of
/// them for the check alone. A hash seen twice is decided by a reading that keeps the keys.
impl Seen for HashSet<u64> {
    fn first(&mut self, alloc_id: &str, task: &str) -> bool {
        let mut hasher = DefaultHasher::new();
        (alloc_id, task).hash(&mut hasher);
        self.insert(hasher.finish())
    }
}

/// Records a row's key: it must be non-empty, not seen before, and of `owner` if one is given.
fn check_key(
    seen: &mut impl Seen,
    (alloc_id, task): (&str, &str),
    owner: Option<&str>,
    line: u64,
) -> Result<(), ValidationError> {
    if alloc_id.is_empty() || task.is_empty() {
        return Err(ValidationError::EmptyKey { line });
    }
    if let Some(owner) = owner
        && owner != alloc_id
    {
        return Err(ValidationError::ForeignRow {
            alloc_id: owner.to_owned(),
        });
    }
    if !seen.first(alloc_id, task) {
        return Err(ValidationError::DuplicateKey {
            alloc_id: alloc_id.to_owned(),
            task: task.to_owned(),
        });
    }
    Ok(())
}

/// Re-reads CSV bytes the way Vector's file table does ([`VECTOR_FILE_TABLE`]) and checks the
/// table contract: key columns first, unique non-empty keys.
fn check_csv(bytes: &[u8], owner: Option<&str>) -> Result<usize, ValidationError> {
    check_csv_with::<HashSet<u64>>(bytes, owner)
}

/// [`check_csv`] keeping the keys seen in `S`; a duplicate that `S` may have mistaken (a hash
/// collision) is checked again with the keys themselves.
fn check_csv_with<S: Seen>(bytes: &[u8], owner: Option<&str>) -> Result<usize, ValidationError> {
    match read_csv::<S>(bytes, owner) {
        Err(ValidationError::DuplicateKey { .. }) => {
            read_csv::<HashSet<(String, String)>>(bytes, owner)
        }
        verdict => verdict,
    }
}

fn read_csv<S: Seen>(bytes: &[u8], owner: Option<&str>) -> Result<usize, ValidationError> {
    let mut seen = S::default();
    visit_csv_keys(bytes, |key, line| check_key(&mut seen, key, owner, line))
}

/// Reads CSV bytes as Vector does and gives each row's key and line to `visit`, record by
/// record (a large table is not held twice). Returns the rows.
fn visit_csv_keys(
    bytes: &[u8],
    mut visit: impl FnMut((&str, &str), u64) -> Result<(), ValidationError>,
) -> Result<usize, ValidationError> {
    if bytes.is_empty() {
        return Err(ValidationError::Empty);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(VECTOR_FILE_TABLE.include_headers)
        .delimiter(VECTOR_FILE_TABLE.delimiter)
        .flexible(false)
        .from_reader(bytes);
    let header = reader.headers().map_err(|e| csv_error(&e))?.clone();
    for (position, column) in KEY_COLUMNS.iter().enumerate() {
        if header.get(position) != Some(*column) {
            return Err(ValidationError::MissingKey { column });
        }
    }
    let mut rows = 0;
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(|e| csv_error(&e))? {
        let line = record.position().map_or(0, csv::Position::line);
        visit((&record[0], &record[1]), line)?;
        rows += 1;
    }
    Ok(rows)
}

fn csv_error(error: &csv::Error) -> ValidationError {
    match error.kind() {
        csv::ErrorKind::Utf8 { pos, .. } => ValidationError::NotUtf8 {
            line: pos.as_ref().map_or(0, csv::Position::line),
        },
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => ValidationError::Ragged {
            line: pos.as_ref().map_or(0, csv::Position::line),
            expected: usize::try_from(*expected_len).unwrap_or(usize::MAX),
            found: usize::try_from(*len).unwrap_or(usize::MAX),
        },
        _ => ValidationError::Csv(error.to_string()),
    }
}

/// Checks JSON bytes: an array of objects of strings, every one with the key columns, keys
/// unique.
fn check_json(bytes: &[u8], owner: Option<&str>) -> Result<usize, ValidationError> {
    let mut seen = HashSet::<(String, String)>::new();
    visit_json_keys(bytes, |key, line| check_key(&mut seen, key, owner, line))
}

/// Reads JSON bytes as an array of objects of strings, every one with the key columns, and
/// gives each row's key and position (from 1) to `visit`, once every row has its key columns.
/// Returns the rows.
fn visit_json_keys(
    bytes: &[u8],
    mut visit: impl FnMut((&str, &str), u64) -> Result<(), ValidationError>,
) -> Result<usize, ValidationError> {
    if bytes.is_empty() {
        return Err(ValidationError::Empty);
    }
    let rows: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(bytes).map_err(|e| ValidationError::Json(e.to_string()))?;
    let mut keys = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let key = |column: &'static str| -> Result<&str, ValidationError> {
            row.get(column)
                .ok_or(ValidationError::MissingKey { column })?
                .as_str()
                .ok_or_else(|| {
                    ValidationError::Json(format!("{column} of row {i} is not a string"))
                })
        };
        keys.push((key("alloc_id")?, key("task")?, i as u64 + 1));
    }
    for (alloc_id, task, line) in keys {
        visit((alloc_id, task), line)?;
    }
    Ok(rows.len())
}

/// A table of its own made of `rows` (CSV records, or JSON objects with their separators) as
/// they appear in a file whose table of no rows is `header_only`.
fn table_of(format: FileFormat, header_only: &[u8], rows: &[u8]) -> Vec<u8> {
    let mut table = Vec::with_capacity(header_only.len() + rows.len() + 2);
    match format {
        FileFormat::Csv => {
            table.extend_from_slice(header_only);
            table.extend_from_slice(rows);
        }
        FileFormat::Json => {
            table.extend_from_slice(JSON_OPEN);
            table.extend_from_slice(rows);
            table.extend_from_slice(JSON_CLOSE);
        }
    }
    table
}

/// The check of a table written chunk by chunk as it is rendered (the base of
/// `--memory-table-url`, which goes to its temporary file as it is made instead of being held:
/// 18 MB at 100,000 rows). Each chunk is read as a table of its own, after the header, and
/// names the allocation each of its rows belongs to. Allocations must come in strictly
/// increasing ID order across chunks, every row must carry its allocation's ID, and an
/// allocation's tasks must differ: then every key is unique, with no key kept between chunks
/// and no hash to mistake. A CSV chunk is read with a marker row after it, which must come
/// back whole and last: a chunk whose last row ran on (an open quote, no line end) would
/// swallow the next chunk's first row in the file, and is refused.
#[derive(Clone, Debug)]
pub struct ChunkedCheck {
    format: FileFormat,
    header_only: Vec<u8>,
    header_verdict: Result<(), ValidationError>,
    /// The CSV marker row: as many fields as the header, its key [`CHUNK_END`].
    end_row: Vec<u8>,
    /// The last allocation checked.
    last_owner: Option<Arc<str>>,
    /// Rows and lines (CSV) checked so far, by which a chunk's positions are shifted to the
    /// file's.
    rows: usize,
    lines: u64,
}

/// The key of the marker row read after each CSV chunk.
const CHUNK_END: &str = "end of chunk";

/// What [`ChunkedCheck::finish`] gives for a table whose every chunk passed: what the
/// publisher asks for to publish a draft. Only this module makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedRows {
    rows: usize,
}

impl CheckedRows {
    /// Rows in the table, the header not counted.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

impl ChunkedCheck {
    /// A check of files whose table of no rows is `header_only` (see
    /// [`crate::table::render::header_only`]).
    pub fn new(header_only: Vec<u8>, format: FileFormat) -> ChunkedCheck {
        let fields = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(header_only.as_slice())
            .records()
            .next()
            .and_then(Result::ok)
            .map_or(KEY_COLUMNS.len(), |header| {
                header.len().max(KEY_COLUMNS.len())
            });
        let mut end_row: Vec<String> = vec![String::new(); fields];
        end_row[0] = CHUNK_END.to_owned();
        end_row[1] = CHUNK_END.to_owned();
        let mut end_bytes = Vec::new();
        crate::table::render::write_csv(&mut end_bytes, &[end_row]);
        ChunkedCheck {
            header_verdict: check(&header_only, format, None).map(drop),
            lines: header_only.iter().filter(|b| **b == b'\n').count() as u64,
            end_row: end_bytes,
            header_only,
            format,
            last_owner: None,
            rows: 0,
        }
    }

    /// Checks the next chunk: `rows` (CSV records, or JSON objects with their separators)
    /// that belong, in order, to `owners`, each an allocation ID with how many rows it has.
    pub fn chunk(
        &mut self,
        rows: &[u8],
        owners: &[(Arc<str>, usize)],
    ) -> Result<(), ValidationError> {
        self.header_verdict.clone()?;
        let expected: usize = owners.iter().map(|(_, n)| n).sum();
        for (owner, _) in owners {
            if self
                .last_owner
                .as_ref()
                .is_some_and(|last| **last >= **owner)
            {
                return Err(ValidationError::Unordered {
                    alloc_id: owner.to_string(),
                });
            }
            self.last_owner = Some(owner.clone());
        }
        let csv = self.format == FileFormat::Csv;
        let mut table = table_of(self.format, &self.header_only, rows);
        if csv {
            table.extend_from_slice(&self.end_row);
        }
        let mut owner_of_row = owners
            .iter()
            .flat_map(|(owner, n)| std::iter::repeat_n(&**owner, *n));
        let mut tasks: HashSet<(String, String)> = HashSet::new();
        let mut current: Option<&str> = None;
        let mut ended = false;
        let visit = |key: (&str, &str), line: u64| {
            let miscounted = ValidationError::RowCount { expected };
            if ended {
                return Err(miscounted);
            }
            if csv && key == (CHUNK_END, CHUNK_END) {
                ended = true;
                return match owner_of_row.next() {
                    None => Ok(()),
                    Some(_) => Err(miscounted),
                };
            }
            let Some(owner) = owner_of_row.next() else {
                return Err(miscounted);
            };
            if current != Some(owner) {
                tasks.clear();
                current = Some(owner);
            }
            check_key(&mut tasks, key, Some(owner), line)
        };
        let found = match self.format {
            FileFormat::Csv => visit_csv_keys(&table, visit),
            FileFormat::Json => visit_json_keys(&table, visit),
        }
        .map_err(|e| e.shifted(self.line_offset()))?;
        if found.checked_sub(usize::from(csv)) != Some(expected) || (csv && !ended) {
            return Err(ValidationError::RowCount { expected });
        }
        self.rows += expected;
        self.lines += rows.iter().filter(|b| **b == b'\n').count() as u64;
        Ok(())
    }

    /// The verdict on the whole table, once every chunk was checked (a table of no rows has
    /// only its header to check).
    pub fn finish(self) -> Result<CheckedRows, ValidationError> {
        self.header_verdict?;
        Ok(CheckedRows { rows: self.rows })
    }

    /// What a position in a chunk's table adds to be the file's: the lines before the chunk
    /// (CSV, the header's counted once) or the rows (JSON, whose positions are rows).
    fn line_offset(&self) -> u64 {
        match self.format {
            FileFormat::Csv => {
                self.lines - self.header_only.iter().filter(|b| **b == b'\n').count() as u64
            }
            FileFormat::Json => self.rows as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate_csv(bytes: &[u8]) -> Result<usize, ValidationError> {
        check_csv(bytes, None)
    }

    #[test]
    fn ragged_rows_are_rejected() {
        let err = validate_csv(b"alloc_id,task,x\na,b,c\nd,e\n").expect_err("ragged");
        assert_eq!(
            err,
            ValidationError::Ragged {
                line: 3,
                expected: 3,
                found: 2
            }
        );
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = validate_csv(b"alloc_id,task\na,b\na,c\na,b\n").expect_err("dup");
        assert!(matches!(err, ValidationError::DuplicateKey { .. }), "{err}");
        let json = br#"[{"alloc_id":"a","task":"b"},{"alloc_id":"a","task":"b"}]"#;
        assert!(matches!(
            check_json(json, None),
            Err(ValidationError::DuplicateKey { .. })
        ));
    }

    /// Calls every key but the first seen: as if every hash collided.
    #[derive(Default)]
    struct Colliding(bool);

    impl Seen for Colliding {
        fn first(&mut self, _: &str, _: &str) -> bool {
            !std::mem::replace(&mut self.0, true)
        }
    }

    #[test]
    fn a_hash_collision_is_no_duplicate_and_a_duplicate_still_is() {
        assert_eq!(
            check_csv_with::<Colliding>(b"alloc_id,task\na,b\na,c\n", None),
            Ok(2)
        );
        let err = check_csv_with::<Colliding>(b"alloc_id,task\na,b\na,c\na,b\n", None)
            .expect_err("a duplicate");
        assert_eq!(
            err,
            ValidationError::DuplicateKey {
                alloc_id: "a".to_owned(),
                task: "b".to_owned()
            }
        );
    }

    fn owners(list: &[(&str, usize)]) -> Vec<(Arc<str>, usize)> {
        list.iter().map(|(id, n)| ((*id).into(), *n)).collect()
    }

    fn chunked() -> ChunkedCheck {
        ChunkedCheck::new(b"alloc_id,task,x\n".to_vec(), FileFormat::Csv)
    }

    #[test]
    fn chunks_in_order_pass_and_count_their_rows() {
        let mut check = chunked();
        check
            .chunk(
                b"a,web,1\na,db,2\nb,web,3\n",
                &owners(&[("a", 2), ("b", 1)]),
            )
            .expect("valid");
        check
            .chunk(b"c,web,\"two\nlines\"\n", &owners(&[("c", 1)]))
            .expect("valid");
        assert_eq!(check.clone().finish().map(|c| c.rows()), Ok(4));
        // The line of a ragged row counts every line of the chunks before it.
        let err = check
            .chunk(b"d,web,4\nd,db\n", &owners(&[("d", 2)]))
            .expect_err("ragged");
        assert_eq!(
            err,
            ValidationError::Ragged {
                line: 8,
                expected: 3,
                found: 2
            }
        );
    }

    #[test]
    fn an_allocation_out_of_order_is_refused_even_across_chunks() {
        let mut check = chunked();
        check
            .chunk(b"b,web,1\n", &owners(&[("b", 1)]))
            .expect("valid");
        for again in ["b", "a"] {
            let err = check
                .chunk(format!("{again},db,1\n").as_bytes(), &owners(&[(again, 1)]))
                .expect_err("out of order");
            assert_eq!(
                err,
                ValidationError::Unordered {
                    alloc_id: again.to_owned()
                }
            );
        }
    }

    #[test]
    fn rows_must_be_their_owners_and_as_many_as_said() {
        let foreign = chunked()
            .chunk(b"a,web,1\nb,web,1\n", &owners(&[("a", 2)]))
            .expect_err("foreign");
        assert_eq!(
            foreign,
            ValidationError::ForeignRow {
                alloc_id: "a".to_owned()
            }
        );
        for (said, rows) in [(3, &b"a,web,1\na,db,1\n"[..]), (1, b"a,web,1\na,db,1\n")] {
            let err = chunked()
                .chunk(rows, &owners(&[("a", said)]))
                .expect_err("miscounted");
            assert_eq!(err, ValidationError::RowCount { expected: said });
        }
        let twice = chunked()
            .chunk(
                b"a,web,1\nb,web,1\nb,web,2\n",
                &owners(&[("a", 1), ("b", 2)]),
            )
            .expect_err("a task twice");
        assert!(
            matches!(twice, ValidationError::DuplicateKey { .. }),
            "{twice}"
        );
    }

    #[test]
    fn a_csv_chunk_whose_last_row_runs_on_is_refused() {
        // Read alone, each of these is a whole table; in the file, the next chunk's first row
        // would join its last one.
        for (rows, what) in [
            (&b"a,web,1\na,db,2"[..], "no line end"),
            (b"a,web,1\na,db,\"open\n", "an open quote"),
        ] {
            let err = chunked().chunk(rows, &owners(&[("a", 2)])).expect_err(what);
            assert!(
                matches!(
                    err,
                    ValidationError::RowCount { .. } | ValidationError::Ragged { .. }
                ),
                "{what}: {err}"
            );
        }
        chunked()
            .chunk(b"a,web,1\na,db,\"closed\"\n", &owners(&[("a", 2)]))
            .expect("a whole chunk");
    }

    #[test]
    fn a_table_of_no_rows_still_has_its_header_checked() {
        let bad = ChunkedCheck::new(b"task,alloc_id\n".to_vec(), FileFormat::Csv);
        assert_eq!(
            bad.finish(),
            Err(ValidationError::MissingKey { column: "alloc_id" })
        );
        assert_eq!(chunked().finish().map(|c| c.rows()), Ok(0));
    }

    #[test]
    fn json_chunks_are_checked_as_arrays_and_count_rows_as_lines() {
        let mut check = ChunkedCheck::new(b"[]\n".to_vec(), FileFormat::Json);
        check
            .chunk(
                br#"{"alloc_id":"a","task":"web"},
{"alloc_id":"a","task":"db"}"#,
                &owners(&[("a", 2)]),
            )
            .expect("valid");
        let err = check
            .chunk(br#"{"alloc_id":"b","task":""}"#, &owners(&[("b", 1)]))
            .expect_err("empty task");
        assert_eq!(err, ValidationError::EmptyKey { line: 3 });
    }

    #[test]
    fn bad_utf8_is_rejected() {
        let err = validate_csv(b"alloc_id,task\na,\xff\xfe\n").expect_err("utf8");
        assert!(matches!(err, ValidationError::NotUtf8 { .. }), "{err}");
    }

    #[test]
    fn missing_or_misplaced_keys_are_rejected() {
        assert_eq!(
            validate_csv(b"task,alloc_id\nb,a\n"),
            Err(ValidationError::MissingKey { column: "alloc_id" })
        );
        assert_eq!(
            validate_csv(b"alloc_id\na\n"),
            Err(ValidationError::MissingKey { column: "task" })
        );
        assert_eq!(validate_csv(b""), Err(ValidationError::Empty));
        assert!(matches!(
            validate_csv(b"alloc_id,task\n,b\n"),
            Err(ValidationError::EmptyKey { .. })
        ));
    }

    #[test]
    fn an_empty_key_in_json_names_its_row() {
        assert_eq!(
            ValidTable::check(
                br#"[{"alloc_id":"a","task":"x"},{"alloc_id":"a","task":""}]"#.to_vec(),
                FileFormat::Json
            )
            .map(|t| t.rows()),
            Err(ValidationError::EmptyKey { line: 2 })
        );
    }

    #[test]
    fn a_valid_table_keeps_its_bytes_format_and_row_count() {
        let bytes = b"alloc_id,task\na,b\na,c\n".to_vec();
        let table = ValidTable::check(bytes.clone(), FileFormat::Csv).expect("valid");
        assert_eq!(table.bytes(), bytes.as_slice());
        assert_eq!((table.rows(), table.format()), (2, FileFormat::Csv));
        assert_eq!(table.into_bytes(), bytes);
        assert!(ValidTable::check(b"alloc_id,task\na,b\na,b\n".to_vec(), FileFormat::Csv).is_err());
        assert!(ValidTable::check(b"alloc_id,task\n".to_vec(), FileFormat::Json).is_err());
    }

    /// The header, and a file of `rows` of allocations `a`, `b`, `c` with the fresh ones named.
    fn assembled(rows: &[(&str, &str)], fresh: &[&str], in_order: bool) -> (Vec<u8>, Assembled) {
        let mut bytes = b"alloc_id,task\n".to_vec();
        let mut assembled = Assembled {
            in_order,
            rows: rows.len(),
            ..Assembled::default()
        };
        let mut allocations: Vec<&str> = Vec::new();
        for (owner, line) in rows {
            let start = bytes.len();
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            if fresh.contains(owner) {
                assembled.fresh.push(FreshRows {
                    alloc_id: (*owner).into(),
                    bytes: start..bytes.len(),
                });
            }
            if !allocations.contains(owner) {
                allocations.push(owner);
            }
        }
        assembled.allocations = allocations.len();
        (bytes, assembled)
    }

    /// The table of no rows of the key columns.
    fn header() -> Vec<u8> {
        b"alloc_id,task\n".to_vec()
    }

    #[test]
    fn an_incremental_check_reads_only_the_fresh_rows_and_their_owner() {
        let check = IncrementalCheck::new(header(), FileFormat::Csv).per_allocation();
        // A carried-over row that is broken is not read: it was checked when it was made.
        let (bytes, parts) = assembled(&[("a", "a,web"), ("b", "b,x,broken")], &["a"], true);
        assert_eq!(check.check(bytes, &parts).map(|t| t.rows()), Ok(2));
        let (bytes, parts) = assembled(&[("a", "a,web"), ("b", "b,x,broken")], &["b"], true);
        assert!(matches!(
            check.check(bytes, &parts),
            Err(ValidationError::Ragged { .. })
        ));
        let (bytes, parts) = assembled(&[("a", "a,web"), ("b", "c,web")], &["b"], true);
        assert_eq!(
            check.check(bytes, &parts),
            Err(ValidationError::ForeignRow {
                alloc_id: "b".to_owned()
            })
        );
    }

    #[test]
    fn out_of_order_or_mostly_fresh_files_are_checked_whole() {
        let per_allocation = IncrementalCheck::new(header(), FileFormat::Csv).per_allocation();
        // Out of order, uniqueness across allocations no longer holds by construction.
        let (bytes, parts) = assembled(&[("a", "a,web"), ("b", "a,web")], &[], false);
        assert!(matches!(
            per_allocation.check(bytes, &parts),
            Err(ValidationError::DuplicateKey { .. })
        ));
        // One allocation in two fresh is more than one in eight: the whole file is read.
        let default = IncrementalCheck::new(header(), FileFormat::Csv);
        let (bytes, parts) = assembled(&[("a", "a,web"), ("b", "b,x,broken")], &["a"], true);
        assert!(default.check(bytes, &parts).is_err());
    }

    #[test]
    fn a_header_that_fails_fails_every_incremental_check() {
        let check = IncrementalCheck::new(b"task\n".to_vec(), FileFormat::Csv);
        let (bytes, parts) = assembled(&[], &[], true);
        assert_eq!(
            check.check(bytes, &parts),
            Err(ValidationError::MissingKey { column: "alloc_id" })
        );
    }

    proptest::proptest! {
        /// Any strings (commas, quotes, newlines, any Unicode) rendered as CSV or JSON pass the
        /// check, with every row counted.
        #[test]
        fn any_rendered_values_pass(values in proptest::collection::vec(("[a-f0-9]{1,8}", "\\PC{1,6}", proptest::prelude::any::<String>()), 0..20)) {
            let rows: Vec<Vec<String>> = values
                .into_iter()
                .enumerate()
                .map(|(i, (id, task, meta))| vec![format!("{id}-{i}"), task, meta])
                .collect();
            let table = crate::table::Table { header: vec!["alloc_id".into(), "task".into(), "meta_x".into()], rows };
            for format in [FileFormat::Csv, FileFormat::Json] {
                let bytes = crate::table::render::render(&table, format);
                proptest::prop_assert_eq!(ValidTable::check(bytes, format).map(|t| t.rows()), Ok(table.rows.len()));
            }
        }
    }
}
