//! The formats a table is written in, and how Vector reads the one it reads: the settings of
//! Vector's `file` enrichment table ([`VECTOR_FILE_TABLE`]) that the renderer writes with, the
//! validator reads with, and every shipped Vector config declares (the deploy tests hold each
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
