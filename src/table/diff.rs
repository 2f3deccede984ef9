//! `print-table --diff`: what a publish would change in a table file, row by row and cell by
//! cell, in key order. Answers "why does Vector label this line like that?" and "would a
//! publish change anything?". Pure: bytes in, lines out.

use std::collections::{BTreeMap, BTreeSet};

use crate::table::format::VECTOR_FILE_TABLE;
use crate::table::validate::{ValidationError, check_csv_rows};

/// A table read back: its columns, and each row's cells by column, by key.
struct Parsed {
    columns: Vec<String>,
    rows: BTreeMap<(String, String), BTreeMap<String, String>>,
}

fn parse(bytes: &[u8]) -> Result<Parsed, ValidationError> {
    check_csv_rows(bytes)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(VECTOR_FILE_TABLE.include_headers)
        .delimiter(VECTOR_FILE_TABLE.delimiter)
        .flexible(false)
        .from_reader(bytes);
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| ValidationError::Csv(e.to_string()))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| ValidationError::Csv(e.to_string()))?;
        let cells: BTreeMap<String, String> = columns
            .iter()
            .cloned()
            .zip(record.iter().map(str::to_owned))
            .collect();
        rows.insert((record[0].to_owned(), record[1].to_owned()), cells);
    }
    Ok(Parsed { columns, rows })
}

/// The differences from the table `old` (the file; `None` if there is none) to the table
/// `new` (what would be published), one line each: `~ columns: …` when the header differs,
/// `+ <alloc_id> <task>` for an added row, `- <alloc_id> <task>` for a removed one, and
/// `~ <alloc_id> <task>: <column>: <old> → <new>` for each changed cell, in key order. Empty
/// when the tables are the same.
pub fn diff(old: Option<&[u8]>, new: &[u8]) -> Result<Vec<String>, DiffError> {
    let new = parse(new).map_err(DiffError::New)?;
    let old = match old {
        Some(bytes) => parse(bytes).map_err(DiffError::Old)?,
        None => Parsed {
            columns: new.columns.clone(),
            rows: BTreeMap::new(),
        },
    };
    let mut lines = Vec::new();
    if old.columns != new.columns {
        lines.push(format!(
            "~ columns: {} → {}",
            old.columns.join(","),
            new.columns.join(",")
        ));
    }
    // Cells are compared in the new header's order, then the columns only the old one has.
    let mut columns: Vec<&String> = new.columns.iter().skip(2).collect();
    columns.extend(
        old.columns
            .iter()
            .skip(2)
            .filter(|c| !new.columns.contains(c)),
    );
    let keys: BTreeSet<&(String, String)> = old.rows.keys().chain(new.rows.keys()).collect();
    for key @ (alloc_id, task) in keys {
        match (old.rows.get(key), new.rows.get(key)) {
            (None, Some(_)) => lines.push(format!("+ {alloc_id} {task}")),
            (Some(_), None) => lines.push(format!("- {alloc_id} {task}")),
            (Some(before), Some(after)) => {
                for column in &columns {
                    let was = before.get(*column).map_or("", String::as_str);
                    let is = after.get(*column).map_or("", String::as_str);
                    if was != is {
                        lines.push(format!("~ {alloc_id} {task}: {column}: {was} → {is}"));
                    }
                }
            }
            (None, None) => {}
        }
    }
    Ok(lines)
}

/// Why two tables cannot be compared.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DiffError {
    #[error("the table file does not load the way Vector loads it: {0}")]
    Old(ValidationError),
    #[error("the table that would be published is not valid: {0}")]
    New(ValidationError),
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &[u8] = b"alloc_id,task,job_id,group\na1,web,web,api\na2,db,db,store\n";

    #[test]
    fn added_removed_and_changed_rows_in_key_order() {
        let new = b"alloc_id,task,job_id,group\na1,web,web,api-v2\na3,cache,cache,c\n";
        assert_eq!(
            diff(Some(OLD), new).expect("comparable"),
            ["~ a1 web: group: api → api-v2", "- a2 db", "+ a3 cache",]
        );
    }

    #[test]
    fn the_same_table_has_no_difference() {
        assert!(diff(Some(OLD), OLD).expect("comparable").is_empty());
    }

    #[test]
    fn no_file_means_every_row_is_added() {
        assert_eq!(
            diff(None, OLD).expect("comparable"),
            ["+ a1 web", "+ a2 db"]
        );
    }

    #[test]
    fn a_changed_header_is_shown_and_cells_compared_by_column_name() {
        let new = b"alloc_id,task,group,job_id\na1,web,api,web\na2,db,store,db2\n";
        assert_eq!(
            diff(Some(OLD), new).expect("comparable"),
            [
                "~ columns: alloc_id,task,job_id,group → alloc_id,task,group,job_id",
                "~ a2 db: job_id: db → db2",
            ]
        );
    }

    #[test]
    fn a_file_vector_cannot_load_is_an_error() {
        let err = diff(Some(b"alloc_id,task\na,b\na,b\n"), OLD).expect_err("duplicate key");
        assert!(matches!(err, DiffError::Old(_)), "{err}");
    }
}
