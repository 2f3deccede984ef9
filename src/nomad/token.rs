//! The ACL token, from a flag/env value or from a file that is re-read whenever it changes (so a
//! token rotated by Nomad's workload identity or by a secrets agent is picked up without a
//! restart). The secret never appears in `Debug` output, logs or errors.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How often a wait to retry looks at the token file.
const TOKEN_POLL: Duration = Duration::from_secs(1);

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why the token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token file {path} (--token-file): {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the token file {path} (--token-file) is empty; write the ACL token's secret ID into it"
    )]
    Empty { path: PathBuf },
    #[error(
        "the token file {path} (--token-file) is not a regular file of at most {MAX_TOKEN_FILE} bytes; point it at the file that holds the token's secret ID"
    )]
    NotATokenFile { path: PathBuf },
    #[error(
        "the ACL token holds characters that cannot be sent in an HTTP header; check --token/NOMAD_TOKEN or --token-file"
    )]
    NotAHeaderValue,
}

/// The largest token file read: a secret ID is 36 bytes, a workload identity's JWT a few KiB.
pub const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// Where the token comes from.
#[derive(Debug)]
pub enum TokenSource {
    None,
    Static(Secret),
    File(TokenFile),
}

/// A token file and the version of it last read.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<(FileStamp, Secret)>>,
}

/// What identifies a version of the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl TokenFile {
    pub fn new(path: PathBuf) -> TokenFile {
        TokenFile {
            path,
            cached: Mutex::new(None),
        }
    }

    fn stamp(path: &Path) -> std::io::Result<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)?;
        Ok(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: meta.ino(),
        })
    }

    fn changed(&self) -> bool {
        let now = Self::stamp(&self.path).ok();
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        cached.as_ref().map(|(stamp, _)| *stamp) != now
    }

    /// The current token: the cached one while the file is unchanged, else the file re-read.
    fn current(&self) -> Result<Secret, TokenError> {
        let read_error = |source| TokenError::Read {
            path: self.path.clone(),
            source,
        };
        let stamp = Self::stamp(&self.path).map_err(read_error)?;
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, secret)) = cached.as_ref()
            && *seen == stamp
        {
            return Ok(secret.clone());
        }
        let text = crate::small_file::read(&self.path, MAX_TOKEN_FILE)
            .map_err(read_error)?
            .ok_or_else(|| TokenError::NotATokenFile {
                path: self.path.clone(),
            })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(TokenError::Empty {
                path: self.path.clone(),
            });
        }
        let secret = Secret::new(token.to_owned());
        *cached = Some((stamp, secret.clone()));
        Ok(secret)
    }
}

impl TokenSource {
    /// Resolves when the token file changes (a rotated token): a wait to retry after a
    /// refusal ends at once instead of after its full delay. Never resolves without a file.
    pub async fn rotated(&self) {
        if matches!(self, TokenSource::None | TokenSource::Static(_)) {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(TOKEN_POLL).await;
            if self.changed() {
                return;
            }
        }
    }

    /// Whether the token file differs from the version last read (a rotated token), so that a
    /// caller waiting to retry after a refusal can retry at once. Always false without a file.
    pub fn changed(&self) -> bool {
        match self {
            TokenSource::None | TokenSource::Static(_) => false,
            TokenSource::File(file) => file.changed(),
        }
    }

    /// The token to send with the next request, if any.
    pub fn current(&self) -> Result<Option<Secret>, TokenError> {
        match self {
            TokenSource::None => Ok(None),
            TokenSource::Static(secret) => Ok(Some(secret.clone())),
            TokenSource::File(file) => file.current().map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_small_regular_file_is_read_as_a_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = |name: &str, content: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, content).expect("write");
            TokenFile::new(path)
        };
        let fine = file("token", b"  0b6f4a1c-secret\n");
        assert_eq!(fine.current().expect("read").expose(), "0b6f4a1c-secret");
        let huge = file("huge", &vec![b'a'; MAX_TOKEN_FILE as usize + 1]);
        assert!(matches!(
            huge.current(),
            Err(TokenError::NotATokenFile { .. })
        ));
        let directory = TokenFile::new(dir.path().to_owned());
        assert!(matches!(
            directory.current(),
            Err(TokenError::NotATokenFile { .. })
        ));
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let source = TokenSource::Static(Secret::new("s3cr3t-token".to_owned()));
        assert!(!format!("{source:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_token_file_is_re_read_when_it_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").expect("write");
        let source = TokenSource::File(TokenFile::new(path.clone()));
        assert!(source.changed(), "never read yet");
        assert_eq!(
            source.current().expect("ok").expect("some").expose(),
            "first"
        );
        assert!(!source.changed());
        // Replace the file the way a secrets agent does: a new inode, renamed into place.
        let next = dir.path().join("token.new");
        std::fs::write(&next, "second-longer").expect("write");
        std::fs::rename(&next, &path).expect("rename");
        assert!(
            source.changed(),
            "a rotated token is noticed before it is read"
        );
        assert_eq!(
            source.current().expect("ok").expect("some").expose(),
            "second-longer"
        );
        assert!(!source.changed());
    }

    #[test]
    fn an_empty_token_file_is_an_error_that_names_the_flag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "  \n").expect("write");
        let err = TokenFile::new(path).current().expect_err("empty");
        assert!(err.to_string().contains("--token-file"), "{err}");
    }
}
