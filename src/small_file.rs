//! Reading a small file that an operator or another program names (the token file, Vector's
//! pidfile), within bounds: only a regular file, opened without blocking (opening a FIFO would
//! wait for a writer) and checked once open, and only up to a size far above what it should
//! hold (a huge file would otherwise be held whole).

use std::io::Read;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

/// The text of `path` if it is a regular file of at most `limit` bytes; `None` for anything
/// else.
pub fn read(path: &Path, limit: u64) -> std::io::Result<Option<String>> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(limit + 1)
        .read_to_string(&mut text)?;
    Ok((text.len() as u64 <= limit).then_some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let small = dir.path().join("small");
        std::fs::write(&small, "1234\n").expect("write");
        assert_eq!(read(&small, 5).expect("read").as_deref(), Some("1234\n"));
        assert_eq!(read(&small, 4).expect("read"), None, "over the limit");
        assert_eq!(read(dir.path(), 4096).expect("read"), None, "a directory");
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .expect("mkfifo");
        assert_eq!(read(&fifo, 4096).expect("not opened"), None, "a FIFO");
        assert!(read(&dir.path().join("missing"), 4096).is_err());
    }
}
