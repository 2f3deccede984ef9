//! Rendering a [`Table`] to bytes (CSV for Vector, JSON for people and tools, aligned text for a
//! terminal) and validating rendered bytes with the rules Vector's `file` enrichment table loads
//! them with. Deterministic: the same table always gives the same bytes.

use std::collections::HashSet;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::table::Table;

/// The key columns every published table must carry, first.
pub const KEY_COLUMNS: [&str; 2] = ["alloc_id", "task"];

/// A file format `dump` can publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    /// RFC 4180 CSV with a header row: what Vector's `file` enrichment table reads.
    Csv,
    /// An array of objects with the same keys, in the same order.
    Json,
}

/// Renders `table` as CSV: header always present, `\n` line ends, RFC 4180 quoting.
pub fn render_csv(table: &Table) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(64 * (table.rows.len() + 1)));
    writer
        .write_record(&table.header)
        .expect("writing to memory cannot fail");
    for row in &table.rows {
        writer
            .write_record(row)
            .expect("writing to memory cannot fail");
    }
    writer.into_inner().expect("flushing to memory cannot fail")
}

/// One row as a JSON object whose keys keep the header's order.
struct JsonRow<'a> {
    header: &'a [String],
    row: &'a [String],
}

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.header.len()))?;
        for (key, value) in self.header.iter().zip(self.row) {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

struct JsonTable<'a>(&'a Table);

impl Serialize for JsonTable<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.rows.len()))?;
        for row in &self.0.rows {
            seq.serialize_element(&JsonRow {
                header: &self.0.header,
                row,
            })?;
        }
        seq.end()
    }
}

/// Renders `table` as a pretty JSON array of objects, with a final newline.
pub fn render_json(table: &Table) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(&JsonTable(table)).expect("strings always serialize");
    bytes.push(b'\n');
    bytes
}

/// Renders `table` for a person: columns padded to a common width, control characters escaped
/// so that one row stays one line.
pub fn render_text(table: &Table) -> String {
    let escape = |value: &str| -> String {
        if value.chars().any(char::is_control) {
            value.escape_debug().to_string()
        } else {
            value.to_owned()
        }
    };
    let header: Vec<String> = table.header.iter().map(|h| h.to_uppercase()).collect();
    let rows: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|row| row.iter().map(|v| escape(v)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, value) in widths.iter_mut().zip(row) {
            *width = (*width).max(value.chars().count());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&header).chain(&rows) {
        let last = line.len().saturating_sub(1);
        for (i, value) in line.iter().enumerate() {
            out.push_str(value);
            if i < last {
                let pad = widths[i] - value.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// Why rendered bytes would not load in Vector (or would make lookups fail).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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
}

/// What a valid table holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validated {
    pub rows: usize,
}

fn check_keys<'a>(
    seen: &mut HashSet<(&'a str, &'a str)>,
    alloc_id: &'a str,
    task: &'a str,
    line: u64,
) -> Result<(), ValidationError> {
    if alloc_id.is_empty() || task.is_empty() {
        return Err(ValidationError::EmptyKey { line });
    }
    if !seen.insert((alloc_id, task)) {
        return Err(ValidationError::DuplicateKey {
            alloc_id: alloc_id.to_owned(),
            task: task.to_owned(),
        });
    }
    Ok(())
}

/// Re-reads CSV bytes the way Vector's file table does (the `csv` crate with headers, not
/// flexible, UTF-8) and checks the table contract: key columns first, unique non-empty keys.
pub fn validate_csv(bytes: &[u8]) -> Result<Validated, ValidationError> {
    if bytes.is_empty() {
        return Err(ValidationError::Empty);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let header = reader.headers().map_err(|e| csv_error(&e))?.clone();
    for (position, column) in KEY_COLUMNS.iter().enumerate() {
        if header.get(position) != Some(*column) {
            return Err(ValidationError::MissingKey { column });
        }
    }
    let records = reader
        .records()
        .map(|r| r.map_err(|e| csv_error(&e)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = HashSet::with_capacity(records.len());
    for record in &records {
        let line = record.position().map_or(0, csv::Position::line);
        check_keys(&mut seen, &record[0], &record[1], line)?;
    }
    Ok(Validated {
        rows: records.len(),
    })
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
pub fn validate_json(bytes: &[u8]) -> Result<Validated, ValidationError> {
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
    let mut seen = HashSet::with_capacity(keys.len());
    for (alloc_id, task, line) in keys {
        check_keys(&mut seen, alloc_id, task, line)?;
    }
    Ok(Validated { rows: rows.len() })
}

/// Renders a table in a file format.
pub fn render(table: &Table, format: FileFormat) -> Vec<u8> {
    match format {
        FileFormat::Csv => render_csv(table),
        FileFormat::Json => render_json(table),
    }
}

/// Validates bytes of a file format.
pub fn validate(bytes: &[u8], format: FileFormat) -> Result<Validated, ValidationError> {
    match format {
        FileFormat::Csv => validate_csv(bytes),
        FileFormat::Json => validate_json(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(rows: &[&[&str]]) -> Table {
        Table {
            header: vec!["alloc_id".into(), "task".into(), "meta_x".into()],
            rows: rows
                .iter()
                .map(|r| r.iter().map(|v| (*v).to_owned()).collect())
                .collect(),
        }
    }

    #[test]
    fn csv_quotes_commas_quotes_and_newlines() {
        let t = table(&[&["a1", "web", "x, \"y\"\nz"], &["a2", "db", "plain ü"]]);
        let bytes = render_csv(&t);
        assert_eq!(
            String::from_utf8(bytes.clone()).expect("utf8"),
            "alloc_id,task,meta_x\na1,web,\"x, \"\"y\"\"\nz\"\na2,db,plain ü\n"
        );
        assert_eq!(validate_csv(&bytes), Ok(Validated { rows: 2 }));
    }

    #[test]
    fn an_empty_table_is_a_header_row() {
        let bytes = render_csv(&table(&[]));
        assert_eq!(bytes, b"alloc_id,task,meta_x\n");
        assert_eq!(validate_csv(&bytes), Ok(Validated { rows: 0 }));
    }

    #[test]
    fn json_keeps_column_order_and_round_trips() {
        let t = table(&[&["a1", "web", "v,\"1\""]]);
        let text = String::from_utf8(render_json(&t)).expect("utf8");
        let alloc_at = text.find("alloc_id").expect("present");
        let task_at = text.find("\"task\"").expect("present");
        let meta_at = text.find("meta_x").expect("present");
        assert!(alloc_at < task_at && task_at < meta_at, "{text}");
        assert!(text.ends_with("]\n"));
        assert_eq!(validate_json(text.as_bytes()), Ok(Validated { rows: 1 }));
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
            validate_json(json),
            Err(ValidationError::DuplicateKey { .. })
        ));
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
    fn text_output_aligns_and_escapes() {
        let t = table(&[&["a1", "web", "line\nbreak"], &["a22", "x", ""]]);
        let text = render_text(&t);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ALLOC_ID  TASK  META_X");
        assert_eq!(lines[1], "a1        web   line\\nbreak");
        assert_eq!(lines[2], "a22       x     ");
    }

    proptest! {
        /// Any strings (commas, quotes, newlines, any Unicode) survive a CSV round trip through
        /// the reader Vector uses, and the result validates.
        #[test]
        fn csv_round_trips_any_values(values in proptest::collection::vec(("[a-f0-9]{1,8}", "\\PC{1,6}", any::<String>()), 0..20)) {
            let mut rows: Vec<Vec<String>> = values
                .into_iter()
                .enumerate()
                .map(|(i, (id, task, meta))| vec![format!("{id}-{i}"), task, meta])
                .collect();
            rows.sort();
            let t = Table { header: vec!["alloc_id".into(), "task".into(), "meta_x".into()], rows };
            let bytes = render_csv(&t);
            prop_assert_eq!(validate_csv(&bytes).map(|v| v.rows), Ok(t.rows.len()));
            let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
            let back: Vec<Vec<String>> = reader
                .records()
                .map(|r| r.expect("valid").iter().map(str::to_owned).collect())
                .collect();
            prop_assert_eq!(back, t.rows);
        }
    }
}
