//! Reading rendered bytes back with the rules Vector's `file` enrichment table loads them with
//! (the `csv` crate with headers, not flexible, UTF-8), plus the table contract: key columns
//! first, keys present and unique. A table that fails is never published: Vector exits when a
//! reload meets a table it cannot load.

use std::collections::HashSet;

use crate::table::render::FileFormat;

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
    #[error("the file read back differs from the bytes written and validated")]
    Changed,
    #[error("a row of allocation {alloc_id:?} carries another alloc_id")]
    ForeignRow { alloc_id: String },
}

/// What a valid table holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validated {
    pub rows: usize,
}

/// Records a row's key: it must be non-empty and not seen before.
fn check_keys(
    seen: &mut HashSet<(String, String)>,
    alloc_id: &str,
    task: &str,
    line: u64,
) -> Result<(), ValidationError> {
    if alloc_id.is_empty() || task.is_empty() {
        return Err(ValidationError::EmptyKey { line });
    }
    if !seen.insert((alloc_id.to_owned(), task.to_owned())) {
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
    // Record by record, keeping only the keys: a large table is not held twice.
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut rows = 0;
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(|e| csv_error(&e))? {
        let line = record.position().map_or(0, csv::Position::line);
        check_keys(&mut seen, &record[0], &record[1], line)?;
        rows += 1;
    }
    Ok(Validated { rows })
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
}
