//! Publishing a table that passed validation ([`ValidTable`], or a [`Draft`] written as it was
//! checked): only when its content differs from the file on disk, and then atomically (temp file in the same directory, mode set,
//! written, mtime strictly later than the file it replaces, read back and compared by hash with
//! what was validated, fsynced, renamed over the target, directory fsynced). Vector reloads a
//! file table only when `mtime > last mtime`, and exits if a reload meets a bad file, so both
//! the mtime rule and the read-back are load-bearing.

use std::fs::{self, File, Permissions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{FlockOperation, flock};
use tempfile::NamedTempFile;

use crate::table::validate::{CheckedRows, ValidTable};

/// Why a table was not published. The target file is untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the directory {dir} of the output file does not exist; create it (it must be on the same filesystem as the file)"
    )]
    NoDirectory { dir: PathBuf },
    #[error(
        "the temporary file for {path} does not read back as the bytes validated; is the filesystem or disk failing?"
    )]
    ReadBack { path: PathBuf },
    #[error(
        "cannot give {path} an mtime later than the file it replaces ({previous:?}); is the clock or filesystem timestamp stuck?"
    )]
    MtimeNotAdvancing { path: PathBuf, previous: SystemTime },
}

/// What a publish did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The file already held these bytes: nothing written, mtime untouched, no reload due.
    Unchanged,
    /// The file was replaced.
    Written,
}

/// What identifies the file as last written by us, so an unchanged file need not be re-read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    hash: blake3::Hash,
    inode: u64,
    len: u64,
    modified: SystemTime,
}

/// What Vector would see of a table file: its bytes (by hash) and its mtime (Vector reloads a
/// file table only when the mtime moved). Two equal stamps are the same table to Vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableStamp {
    pub hash: blake3::Hash,
    pub modified: SystemTime,
}

/// Publishes tables to one path.
#[derive(Debug)]
pub struct Publisher {
    path: PathBuf,
    mode: u32,
    last: Option<Stamp>,
}

impl Publisher {
    /// A publisher for `path`; `mode` is the file mode (e.g. `0o644`, so a Vector running as
    /// another user can read it).
    pub fn new(path: PathBuf, mode: u32) -> Publisher {
        Publisher {
            path,
            mode,
            last: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hash of the file's current content, or `None` if there is no file. Uses the stamp of
    /// the last write while the file is still that one.
    fn current_hash(&self) -> Result<Option<(blake3::Hash, fs::Metadata)>, PublishError> {
        let meta = match fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io("inspect", source)),
        };
        if let Some(last) = self.last
            && last.inode == meta.ino()
            && last.len == meta.len()
            && meta.modified().ok() == Some(last.modified)
        {
            return Ok(Some((last.hash, meta)));
        }
        // Hashed as it is read: a base of 100,000 rows is 18 MB.
        let mut hasher = blake3::Hasher::new();
        File::open(&self.path)
            .and_then(|file| hasher.update_reader(file).map(drop))
            .map_err(|source| self.io("read", source))?;
        Ok(Some((hasher.finalize(), meta)))
    }

    /// The stamp of the table file as it is now, or `None` if there is none.
    pub fn on_disk(&self) -> Result<Option<TableStamp>, PublishError> {
        let Some((hash, meta)) = self.current_hash()? else {
            return Ok(None);
        };
        let modified = meta
            .modified()
            .map_err(|source| self.io("read the mtime of", source))?;
        Ok(Some(TableStamp { hash, modified }))
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> PublishError {
        PublishError::Io {
            action,
            path: self.path.clone(),
            source,
        }
    }

    /// Removes the temporary files that killed publishes of this table left behind: only files
    /// named as this program names them (`.<table name>.*.tmp`, the announcement record's
    /// included), not locked by a publish in progress, and untouched for a while. Returns how
    /// many were removed; a file that cannot be removed is left (and logged by the caller).
    pub fn remove_stale_temp_files(&self) -> Result<Vec<PathBuf>, PublishError> {
        let dir = directory_of(&self.path);
        let prefix = temp_prefix(&file_name_of(&self.path));
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(self.io("list the directory of", source)),
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with(&prefix) && name.ends_with(TEMP_SUFFIX)) {
                continue;
            }
            let path = entry.path();
            if is_stale(&path) && fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
        Ok(removed)
    }

    /// Publishes `table` unless the file already holds exactly its bytes. The bytes read back
    /// from the temporary file must hash to the ones validated, so what is on disk is what was
    /// validated; they are hashed as they are read, not held, so a large table is not in memory
    /// a third time.
    pub fn publish(&mut self, table: &ValidTable) -> Result<Outcome, PublishError> {
        let bytes = table.bytes();
        if let Some((on_disk, _)) = self.current_hash()?
            && on_disk == blake3::hash(bytes)
        {
            return Ok(Outcome::Unchanged);
        }
        let mut draft = self.draft()?;
        draft
            .write_all(bytes)
            .map_err(|source| self.io("write the temporary file for", source))?;
        self.persist(draft)
    }

    /// A temporary file beside the table to write a table into as it is rendered, for
    /// [`Publisher::publish_draft`]; dropped, it is removed and the table is untouched. For a
    /// table checked chunk by chunk as it is written
    /// ([`crate::table::streamed::StreamRenderer`]): one held whole would be in memory at once.
    pub fn draft(&self) -> Result<Draft, PublishError> {
        let dir = directory_of(&self.path);
        if !dir.is_dir() {
            return Err(PublishError::NoDirectory {
                dir: dir.to_owned(),
            });
        }
        let temp = tempfile::Builder::new()
            .prefix(&temp_prefix(&file_name_of(&self.path)))
            .suffix(TEMP_SUFFIX)
            .tempfile_in(dir)
            .map_err(|source| self.io("create a temporary file beside", source))?;
        // Held until the file is renamed: the sign that it is in use, for a later start's
        // clean-up (in this process or another one).
        flock(temp.as_file(), FlockOperation::NonBlockingLockExclusive)
            .map_err(|source| self.io("lock the temporary file for", source.into()))?;
        // Set explicitly: the mode given at creation would be reduced by the umask.
        fs::set_permissions(temp.path(), Permissions::from_mode(self.mode))
            .map_err(|source| self.io("set the mode of the temporary file for", source))?;
        Ok(Draft {
            file: BufWriter::with_capacity(DRAFT_BUFFER, temp),
            hasher: blake3::Hasher::new(),
        })
    }

    /// Whether the file holds exactly the bytes that hash to `hash`: a table rendered into a
    /// hasher first need not be written when it is unchanged.
    pub fn holds(&self, hash: &blake3::Hash) -> Result<bool, PublishError> {
        Ok(self
            .current_hash()?
            .is_some_and(|(on_disk, _)| on_disk == *hash))
    }

    /// Publishes what `draft` holds, a table whose every chunk passed validation as it was
    /// written, unless the file already holds exactly those bytes (then the draft is removed).
    /// The draft read back must hash to what was written into it. `checked` is the verdict of
    /// the check its chunks went through: asking for it keeps a caller from forgetting the
    /// check, though it cannot prove which rendering was checked (the caller pairs them).
    pub fn publish_draft(
        &mut self,
        draft: Draft,
        _checked: CheckedRows,
    ) -> Result<Outcome, PublishError> {
        self.persist(draft)
    }

    /// Publishes a draft of a table that passed validation, unless the file already holds it.
    fn persist(&mut self, draft: Draft) -> Result<Outcome, PublishError> {
        let Draft { file, hasher } = draft;
        let mut temp = file
            .into_inner()
            .map_err(|e| self.io("write the temporary file for", e.into_error()))?;
        let hash = hasher.finalize();
        let current = self.current_hash()?;
        if let Some((on_disk, _)) = &current
            && *on_disk == hash
        {
            return Ok(Outcome::Unchanged);
        }
        let previous_mtime = current.as_ref().and_then(|(_, meta)| meta.modified().ok());
        temp.flush()
            .map_err(|source| self.io("write the temporary file for", source))?;
        let modified = advance_mtime(temp.as_file(), previous_mtime)
            .map_err(|source| self.io("set the mtime of the temporary file for", source))?
            .ok_or_else(|| PublishError::MtimeNotAdvancing {
                path: self.path.clone(),
                previous: previous_mtime.unwrap_or(SystemTime::UNIX_EPOCH),
            })?;
        // What is on disk is what was validated, as Vector will read it.
        let mut read_back = blake3::Hasher::new();
        File::open(temp.path())
            .and_then(|file| read_back.update_reader(file).map(drop))
            .map_err(|source| self.io("re-read the temporary file for", source))?;
        if read_back.finalize() != hash {
            return Err(PublishError::ReadBack {
                path: self.path.clone(),
            });
        }
        temp.as_file()
            .sync_all()
            .map_err(|source| self.io("fsync the temporary file for", source))?;
        let dir = directory_of(&self.path);
        let file = temp
            .persist(&self.path)
            .map_err(|e| self.io("rename the temporary file over", e.error))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| self.io("fsync the directory of", source))?;
        let meta = file
            .metadata()
            .map_err(|source| self.io("inspect", source))?;
        self.last = Some(Stamp {
            hash,
            inode: meta.ino(),
            len: meta.len(),
            modified,
        });
        Ok(Outcome::Written)
    }
}

/// A table being written into a temporary file beside the target, hashed as it goes
/// ([`Publisher::draft`]).
#[derive(Debug)]
pub struct Draft {
    file: BufWriter<NamedTempFile>,
    hasher: blake3::Hasher,
}

/// The draft's write buffer.
const DRAFT_BUFFER: usize = 64 * 1024;

impl Write for Draft {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Temporary files are `.<table name>.<random>.tmp`, beside the table.
const TEMP_SUFFIX: &str = ".tmp";
/// A temporary file not touched for this long, and not locked, was left by a publish that
/// was killed (a publish takes milliseconds).
const STALE_AFTER: Duration = Duration::from_secs(10);

/// The directory `path` lives in: its parent, `.` for a bare file name, `/` for the root.
pub(crate) fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => Path::new("/"),
    }
}

/// The last component of `path` as text (empty when there is none).
pub(crate) fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn temp_prefix(file_name: &str) -> String {
    format!(".{file_name}.")
}

/// [`Publisher::remove_stale_temp_files`] at the start of `dump` and `run`, logged.
pub fn clean_up_after_killed_publishes(publisher: &Publisher) {
    match publisher.remove_stale_temp_files() {
        Ok(removed) if removed.is_empty() => {}
        Ok(removed) => {
            tracing::info!(files = ?removed, "removed temporary files that killed publishes left behind");
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for temporary files that killed publishes left behind")
        }
    }
}

/// Whether a temporary file is abandoned: a plain file, untouched for [`STALE_AFTER`], and not
/// locked by a publish in progress.
fn is_stale(path: &Path) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    let old = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age >= STALE_AFTER);
    if !meta.is_file() || !old {
        return false;
    }
    File::open(path)
        .is_ok_and(|file| flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok())
}

/// Sets the file's mtime to now, or later than `previous` when now is not (same timestamp tick,
/// clock stepped back). Steps grow to cover filesystems with coarse timestamps. Returns the mtime
/// the file ended up with, or `None` if no step made it later.
fn advance_mtime(file: &File, previous: Option<SystemTime>) -> std::io::Result<Option<SystemTime>> {
    let now = SystemTime::now();
    let Some(previous) = previous else {
        file.set_modified(now)?;
        return Ok(Some(file.metadata()?.modified()?));
    };
    let steps = [
        Duration::from_nanos(1),
        Duration::from_micros(1),
        Duration::from_millis(1),
        Duration::from_secs(1),
        Duration::from_secs(2),
    ];
    for step in steps {
        let wanted = now.max(previous + step);
        file.set_modified(wanted)?;
        let got = file.metadata()?.modified()?;
        if got > previous {
            return Ok(Some(got));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::format::FileFormat;

    fn valid(bytes: &[u8]) -> ValidTable {
        ValidTable::check(bytes.to_vec(), FileFormat::Csv).expect("valid")
    }

    const TABLE: &[u8] = b"alloc_id,task\na1,web\n";
    const OTHER: &[u8] = b"alloc_id,task\na1,web\na2,db\n";

    fn publisher(dir: &Path) -> Publisher {
        Publisher::new(dir.join("allocs.csv"), 0o644)
    }

    #[test]
    fn unchanged_content_is_not_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = publisher(dir.path());
        assert!(matches!(p.publish(&valid(TABLE)), Ok(Outcome::Written)));
        let before = fs::metadata(p.path()).expect("exists");
        assert_eq!(p.publish(&valid(TABLE)).expect("ok"), Outcome::Unchanged);
        let after = fs::metadata(p.path()).expect("exists");
        assert_eq!(before.modified().ok(), after.modified().ok());
        assert_eq!(before.ino(), after.ino(), "no rename happened");
    }

    /// A verdict for the drafts of these tests (what they write is checked by hand).
    fn checked() -> CheckedRows {
        crate::table::validate::ChunkedCheck::new(b"alloc_id,task\n".to_vec(), FileFormat::Csv)
            .finish()
            .expect("a valid header")
    }

    #[test]
    fn holds_says_whether_the_file_has_exactly_these_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = publisher(dir.path());
        assert!(!p.holds(&blake3::hash(TABLE)).expect("no file yet"));
        p.publish(&valid(TABLE)).expect("publish");
        assert!(p.holds(&blake3::hash(TABLE)).expect("read"));
        assert!(!p.holds(&blake3::hash(OTHER)).expect("read"));
    }

    /// The names in `dir`, sorted.
    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_draft_is_published_only_when_it_differs_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = publisher(dir.path());
        let mut draft = p.draft().expect("draft");
        draft.write_all(TABLE).expect("write");
        assert_eq!(
            p.publish_draft(draft, checked()).expect("publish"),
            Outcome::Written
        );
        assert_eq!(fs::read(p.path()).expect("read"), TABLE);
        let before = fs::metadata(p.path()).expect("exists");

        let mut same = p.draft().expect("draft");
        same.write_all(&TABLE[..5]).expect("write");
        same.write_all(&TABLE[5..]).expect("write");
        assert_eq!(
            p.publish_draft(same, checked()).expect("publish"),
            Outcome::Unchanged
        );
        let after = fs::metadata(p.path()).expect("exists");
        assert_eq!(
            (before.ino(), before.modified().ok()),
            (after.ino(), after.modified().ok())
        );
        assert_eq!(
            names_in(dir.path()),
            ["allocs.csv"],
            "the unchanged draft is gone"
        );

        let mut other = p.draft().expect("draft");
        other.write_all(OTHER).expect("write");
        assert_eq!(
            p.publish_draft(other, checked()).expect("publish"),
            Outcome::Written
        );
        assert_eq!(fs::read(p.path()).expect("read"), OTHER);
        assert!(fs::metadata(p.path()).expect("exists").modified().ok() > after.modified().ok());
        assert_eq!(names_in(dir.path()), ["allocs.csv"]);
    }

    #[test]
    fn a_draft_given_up_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = publisher(dir.path());
        p.publish(&valid(TABLE)).expect("publish");
        let mut draft = p.draft().expect("draft");
        draft
            .write_all(b"alloc_id,task\nhalf a tab")
            .expect("write");
        assert_eq!(
            names_in(dir.path()).len(),
            2,
            "the draft is beside the file"
        );
        drop(draft);
        assert_eq!(names_in(dir.path()), ["allocs.csv"]);
        assert_eq!(fs::read(p.path()).expect("read"), TABLE);
    }

    #[test]
    fn a_fresh_publisher_compares_with_the_file_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        publisher(dir.path()).publish(&valid(TABLE)).expect("first");
        let mtime = fs::metadata(dir.path().join("allocs.csv"))
            .and_then(|m| m.modified())
            .ok();
        // As after a restart: a new publisher with no memory of the last write.
        assert_eq!(
            publisher(dir.path()).publish(&valid(TABLE)).expect("ok"),
            Outcome::Unchanged
        );
        let again = fs::metadata(dir.path().join("allocs.csv"))
            .and_then(|m| m.modified())
            .ok();
        assert_eq!(mtime, again);
    }

    #[test]
    fn mtime_strictly_increases_even_within_one_tick() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = publisher(dir.path());
        p.publish(&valid(TABLE)).expect("first");
        // Push the file's mtime into the future so that "now" is not later than it.
        let future = SystemTime::now() + Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(p.path())
            .and_then(|f| f.set_modified(future))
            .expect("set mtime");
        p.publish(&valid(OTHER)).expect("second");
        let second = fs::metadata(p.path())
            .and_then(|m| m.modified())
            .expect("mtime");
        assert!(second > future, "{second:?} must be later than {future:?}");
        p.publish(&valid(TABLE)).expect("third");
        let third = fs::metadata(p.path())
            .and_then(|m| m.modified())
            .expect("mtime");
        assert!(third > second);
    }

    #[test]
    fn the_file_gets_the_configured_mode_regardless_of_umask() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Publisher::new(dir.path().join("t.csv"), 0o640);
        p.publish(&valid(TABLE)).expect("ok");
        let mode = fs::metadata(p.path()).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let mut p = Publisher::new(dir.path().join("u.csv"), 0o644);
        p.publish(&valid(TABLE)).expect("ok");
        let mode = fs::metadata(p.path()).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn a_missing_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = Publisher::new(dir.path().join("nope/t.csv"), 0o644);
        let err = p.publish(&valid(TABLE)).expect_err("no dir");
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn the_stamp_follows_content_and_mtime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = publisher(dir.path());
        assert_eq!(p.on_disk().expect("ok"), None);
        p.publish(&valid(TABLE)).expect("ok");
        let first = p.on_disk().expect("ok").expect("a file");
        assert_eq!(first.hash, blake3::hash(TABLE));
        assert_eq!(Some(first), publisher(dir.path()).on_disk().expect("ok"));
        p.publish(&valid(OTHER)).expect("ok");
        let second = p.on_disk().expect("ok").expect("a file");
        assert!(second.modified > first.modified);
        assert_ne!(second.hash, first.hash);
    }

    #[test]
    fn stale_temp_files_of_this_table_go_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = publisher(dir.path());
        let old = SystemTime::now() - Duration::from_secs(3600);
        let make = |name: &str, mtime: SystemTime| {
            let path = dir.path().join(name);
            fs::write(&path, b"x").expect("write");
            File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(mtime))
                .expect("mtime");
            path
        };
        let stale = make(".allocs.csv.a1B2c3.tmp", old);
        let record_temp = make(".allocs.csv.announced.x9Y8z7.tmp", old);
        let fresh = make(".allocs.csv.q1W2e3.tmp", SystemTime::now());
        let in_use = make(".allocs.csv.r4T5y6.tmp", old);
        let other_table = make(".other.csv.a1B2c3.tmp", old);
        let not_ours = make("allocs.csv.bak", old);
        let lock = File::open(&in_use).expect("open");
        flock(&lock, FlockOperation::NonBlockingLockExclusive).expect("lock");
        let mut removed = p.remove_stale_temp_files().expect("ok");
        removed.sort();
        let mut expected = vec![stale, record_temp];
        expected.sort();
        assert_eq!(removed, expected);
        for kept in [fresh, in_use, other_table, not_ours] {
            assert!(kept.exists(), "{} must stay", kept.display());
        }
    }

    #[test]
    fn a_file_changed_behind_our_back_is_re_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = publisher(dir.path());
        p.publish(&valid(TABLE)).expect("ok");
        fs::write(p.path(), OTHER).expect("overwrite");
        assert!(matches!(p.publish(&valid(TABLE)), Ok(Outcome::Written)));
        assert_eq!(fs::read(p.path()).expect("read"), TABLE);
    }
}
