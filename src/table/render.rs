//! Rendering a [`Table`] to bytes: CSV for Vector, JSON for people and tools, aligned text for a
//! terminal. Deterministic: the same table always gives the same bytes. [`crate::table::validate`]
//! reads them back as Vector would.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::table::Table;
use crate::table::format::{FileFormat, JSON_CLOSE, JSON_OPEN, VECTOR_FILE_TABLE};

/// Renders `table` as CSV: header always present, `\n` line ends, RFC 4180 quoting.
pub fn render_csv(table: &Table) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64 * (table.rows.len() + 1));
    write_csv(&mut bytes, std::slice::from_ref(&table.header));
    write_csv(&mut bytes, &table.rows);
    bytes
}

/// Appends CSV records to `bytes`: how [`render_csv`] writes, and how [`crate::table::incremental`]
/// writes freshly projected rows between rows kept from the last rendering.
pub(crate) fn write_csv(bytes: &mut Vec<u8>, records: &[Vec<String>]) {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(VECTOR_FILE_TABLE.delimiter)
        .buffer_capacity(1024)
        .from_writer(bytes);
    for record in records {
        writer
            .write_record(record)
            .expect("writing to memory cannot fail");
    }
    writer.flush().expect("flushing to memory cannot fail");
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

/// Rows as a JSON array of objects.
struct JsonRows<'a> {
    header: &'a [String],
    rows: &'a [Vec<String>],
}

impl Serialize for JsonRows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.rows.len()))?;
        for row in self.rows {
            seq.serialize_element(&JsonRow {
                header: self.header,
                row,
            })?;
        }
        seq.end()
    }
}

/// Renders `table` as a pretty JSON array of objects, with a final newline.
pub fn render_json(table: &Table) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(&JsonRows {
        header: &table.header,
        rows: &table.rows,
    })
    .expect("strings always serialize");
    bytes.push(b'\n');
    bytes
}

/// The elements of [`render_json`]'s array for `rows`, as they appear inside it: each object
/// indented, separated by [`JSON_SEPARATOR`], without the brackets. Empty for no rows.
pub(crate) fn json_elements(header: &[String], rows: &[Vec<String>]) -> Vec<u8> {
    if rows.is_empty() {
        return Vec::new();
    }
    let array =
        serde_json::to_vec_pretty(&JsonRows { header, rows }).expect("strings always serialize");
    array[JSON_OPEN.len()..array.len() - JSON_CLOSE.len()].to_vec()
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

/// The table of no rows: the header (CSV), or an empty array (JSON).
pub fn header_only(header: &[String], format: FileFormat) -> Vec<u8> {
    let table = Table {
        header: header.to_vec(),
        rows: Vec::new(),
    };
    render(&table, format)
}

/// Renders a table in a file format.
pub fn render(table: &Table, format: FileFormat) -> Vec<u8> {
    match format {
        FileFormat::Csv => render_csv(table),
        FileFormat::Json => render_json(table),
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
    }

    #[test]
    fn an_empty_table_is_a_header_row() {
        let bytes = render_csv(&table(&[]));
        assert_eq!(bytes, b"alloc_id,task,meta_x\n");
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
        /// the reader Vector uses.
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
            let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
            let back: Vec<Vec<String>> = reader
                .records()
                .map(|r| r.expect("valid").iter().map(str::to_owned).collect())
                .collect();
            prop_assert_eq!(back, t.rows);
        }
    }
}
