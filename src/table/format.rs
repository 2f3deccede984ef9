//! The formats a table is written in, and how Vector reads the one it reads: the settings of
//! Vector's `file` enrichment table ([`VECTOR_FILE_TABLE`]) that the renderer writes with, the
//! validator reads with, and every shipped Vector config declares (a test below holds each
//! config to them).

/// A file format `dump` can publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    /// RFC 4180 CSV with a header row: what Vector's `file` enrichment table reads.
    Csv,
    /// An array of objects with the same keys, in the same order: for people and other tools.
    /// Vector's `file` enrichment table reads CSV only.
    Json,
}

impl FileFormat {
    /// Whether Vector's `file` enrichment table can load a table of this format: CSV only (a
    /// JSON file there makes Vector refuse to start, and a reload with it stops Vector).
    pub fn loaded_by_vector(self) -> bool {
        self == FileFormat::Csv
    }
}

/// How Vector's `file` enrichment table is configured to read the table: the settings of its
/// `encoding` block and its `schema`. The validator reads with exactly these, the renderer
/// writes with them, and every shipped Vector config (`vector/*.yaml`) declares them (a test
/// holds each config to this value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileTableSettings {
    /// `encoding.delimiter`: one byte (Vector's default `,`).
    pub delimiter: u8,
    /// `encoding.include_headers`: the first line names the columns (Vector's default).
    pub include_headers: bool,
    /// Whether a `schema` converts columns: none does, so that no value can fail a load (one
    /// cell that does not convert fails the whole load).
    pub schema: bool,
}

/// The settings of the shipped Vector configs.
pub const VECTOR_FILE_TABLE: FileTableSettings = FileTableSettings {
    delimiter: b',',
    include_headers: true,
    schema: false,
};

/// How [`crate::table::render::render_json`]'s array of elements opens, separates them and closes.
pub(crate) const JSON_OPEN: &[u8] = b"[\n";
pub(crate) const JSON_SEPARATOR: &[u8] = b",\n";
pub(crate) const JSON_CLOSE: &[u8] = b"\n]";
/// [`crate::table::render::render_json`] of no rows.
pub(crate) const JSON_EMPTY: &[u8] = b"[]\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped Vector config reads its file tables with the settings the validator
    /// checks against, and no schema converts a column.
    #[test]
    fn the_shipped_vector_configs_read_the_table_as_the_validator_does() {
        use yaml_rust2::{Yaml, YamlLoader};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vector");
        let mut file_tables = 0;
        let mut configs: Vec<std::path::PathBuf> = Vec::new();
        let mut dirs = vec![dir];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("vector/ exists") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml") {
                    configs.push(path);
                }
            }
        }
        for path in configs {
            let text = std::fs::read_to_string(&path).expect("readable");
            for doc in YamlLoader::load_from_str(&text).expect("YAML") {
                let Some(tables) = doc["enrichment_tables"].as_hash() else {
                    continue;
                };
                for (name, table) in tables {
                    if table["type"].as_str() != Some("file") {
                        continue;
                    }
                    file_tables += 1;
                    let what = format!("{} table {name:?}", path.display());
                    let encoding = &table["file"]["encoding"];
                    assert_eq!(encoding["type"].as_str(), Some("csv"), "{what}");
                    let headers = match &encoding["include_headers"] {
                        Yaml::BadValue => true,
                        value => value.as_bool().expect("a boolean"),
                    };
                    assert_eq!(headers, VECTOR_FILE_TABLE.include_headers, "{what}");
                    let delimiter = encoding["delimiter"].as_str().unwrap_or(",");
                    assert_eq!(
                        delimiter.as_bytes(),
                        [VECTOR_FILE_TABLE.delimiter],
                        "{what}"
                    );
                    assert_eq!(
                        !matches!(table["schema"], Yaml::BadValue),
                        VECTOR_FILE_TABLE.schema,
                        "{what}"
                    );
                }
            }
        }
        assert!(file_tables > 0, "no file table found in vector/");
    }
}
