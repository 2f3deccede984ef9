//! A reload by command (`-- systemctl reload vector`): run without a shell, killed after its
//! timeout, successful only when it exits 0.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::text::one_line;

/// The most of the reload command's stderr kept: only its first line is shown.
const MAX_STDERR: u64 = 64 * 1024;

/// A command reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandReload {
    /// The program and its arguments, run without a shell.
    pub argv: Vec<String>,
    /// The command is killed after this long.
    pub timeout: Duration,
}

/// Why the reload command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot start the reload command {program:?}: {source}")]
    Start {
        program: String,
        source: std::io::Error,
    },
    #[error("the reload command {program:?} failed ({status}){}", if .stderr.is_empty() { String::new() } else { format!(": {}", .stderr) })]
    Failed {
        program: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error(
        "the reload command {program:?} did not finish within {seconds} s and was killed (see --reload-timeout)"
    )]
    Timeout { program: String, seconds: u64 },
}

impl CommandReload {
    /// The program the command runs (its `argv[0]`), for messages.
    pub fn program(&self) -> &str {
        self.argv.first().map_or("", String::as_str)
    }

    /// Runs the reload command without a shell; it must exit 0 within the timeout.
    pub async fn run(&self) -> Result<(), CommandError> {
        let program = self.program().to_owned();
        let mut child = tokio::process::Command::new(&program)
            .args(self.argv.iter().skip(1))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| CommandError::Start {
                program: program.clone(),
                source,
            })?;
        // Only the first line of stderr is shown: keep the first MAX_STDERR bytes, drain the
        // rest so that the command never blocks on a full pipe.
        let mut stderr = child.stderr.take();
        let capture = async move {
            let mut kept = Vec::new();
            if let Some(stderr) = &mut stderr {
                let _ = stderr.take(MAX_STDERR).read_to_end(&mut kept).await;
                let _ = tokio::io::copy(stderr, &mut tokio::io::sink()).await;
            }
            kept
        };
        let waited = async {
            let (status, stderr) = tokio::join!(child.wait(), capture);
            status.map(|status| (status, stderr))
        };
        let (status, stderr) = tokio::time::timeout(self.timeout, waited)
            .await
            .map_err(|_| CommandError::Timeout {
                program: program.clone(),
                seconds: self.timeout.as_secs(),
            })?
            .map_err(|source| CommandError::Start {
                program: program.clone(),
                source,
            })?;
        if status.success() {
            return Ok(());
        }
        Err(CommandError::Failed {
            program,
            status,
            stderr: one_line(&String::from_utf8_lossy(&stderr), 300),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> CommandReload {
        CommandReload {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            timeout: Duration::from_secs(20),
        }
    }

    #[tokio::test]
    async fn a_failing_command_is_told_by_its_first_stderr_line_however_much_it_writes() {
        // A megabyte of stderr: the command is never blocked on a full pipe, and only the
        // first line is shown.
        let noisy =
            sh("echo 'cannot reload: vector is down' >&2; head -c 1048576 /dev/zero >&2; exit 3");
        let err = noisy.run().await.expect_err("exit 3");
        let CommandError::Failed { stderr, .. } = &err else {
            panic!("{err}");
        };
        assert!(
            stderr.starts_with("cannot reload: vector is down"),
            "{stderr}"
        );
        assert!(
            stderr.chars().count() <= 301,
            "{} chars",
            stderr.chars().count()
        );
        assert!(sh("exit 0").run().await.is_ok());
    }
}
