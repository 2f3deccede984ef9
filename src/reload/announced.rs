//! Which table Vector was last told about, kept in a small file beside the table
//! (`.<table name>.announced`), so that a table published but never announced (a stop or a crash
//! between the publish and its reload) is announced after a restart, and an announced one is not
//! announced again. A missing or unreadable record means "not announced": one spare reload is
//! harmless, a Vector left with an old table is not.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::publish::{TableStamp, directory_of, file_name_of};

/// Why the record could not be written. The reload itself was delivered; the cost is one spare
/// reload after the next restart.
#[derive(Debug, thiserror::Error)]
#[error("cannot record the announced table in {path}: {source}")]
pub struct RecordError {
    path: PathBuf,
    source: std::io::Error,
}

/// The record on disk.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    table_blake3: String,
    table_mtime_secs: u64,
    table_mtime_nanos: u32,
}

impl Record {
    fn of(stamp: &TableStamp) -> Record {
        let since_epoch = stamp
            .modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Record {
            table_blake3: stamp.hash.to_hex().to_string(),
            table_mtime_secs: since_epoch.as_secs(),
            table_mtime_nanos: since_epoch.subsec_nanos(),
        }
    }
}

/// The announcement record of one table file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnouncementRecord {
    path: PathBuf,
}

impl AnnouncementRecord {
    /// The record of `table`, in the same directory (which this program may write anyway).
    pub fn beside(table: &Path) -> AnnouncementRecord {
        AnnouncementRecord {
            path: table.with_file_name(format!(".{}.announced", file_name_of(table))),
        }
    }

    /// Whether Vector was last told about exactly this table.
    pub fn is_announced(&self, stamp: &TableStamp) -> bool {
        // A record is about 150 bytes; anything else is not one of ours.
        crate::small_file::read(&self.path, 4096)
            .ok()
            .flatten()
            .and_then(|text| serde_json::from_str::<Record>(&text).ok())
            .is_some_and(|record| record == Record::of(stamp))
    }

    /// Records that Vector was told about this table, atomically (temp file and rename).
    pub fn record(&self, stamp: &TableStamp) -> Result<(), RecordError> {
        let error = |source| RecordError {
            path: self.path.clone(),
            source,
        };
        let dir = directory_of(&self.path);
        let mut bytes = serde_json::to_vec(&Record::of(stamp))
            .map_err(std::io::Error::from)
            .map_err(error)?;
        bytes.push(b'\n');
        let temp = tempfile::Builder::new()
            .prefix(&format!("{}.", file_name_of(&self.path)))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(error)?;
        std::fs::write(temp.path(), &bytes).map_err(error)?;
        temp.persist(&self.path).map_err(|e| error(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(content: &[u8], secs: u64) -> TableStamp {
        TableStamp {
            hash: blake3::hash(content),
            modified: SystemTime::UNIX_EPOCH + Duration::new(secs, 7),
        }
    }

    #[test]
    fn a_recorded_table_is_announced_and_any_other_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = AnnouncementRecord::beside(&dir.path().join("allocs.csv"));
        assert_eq!(record.path, dir.path().join(".allocs.csv.announced"));
        let table = stamp(b"a", 100);
        assert!(!record.is_announced(&table), "no record: not announced");
        record.record(&table).expect("written");
        assert!(record.is_announced(&table));
        assert!(!record.is_announced(&stamp(b"b", 100)), "other content");
        assert!(!record.is_announced(&stamp(b"a", 101)), "other mtime");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [".allocs.csv.announced"], "no temp file left");
    }

    #[test]
    fn an_unreadable_record_means_not_announced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = AnnouncementRecord::beside(&dir.path().join("allocs.csv"));
        std::fs::write(&record.path, b"{not json").expect("write");
        assert!(!record.is_announced(&stamp(b"a", 100)));
    }
}
