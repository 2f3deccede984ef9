//! A reload by command (`-- systemctl reload vector`): run without a shell, killed after its
//! timeout, successful only when it exits 0.

use std::time::Duration;

use crate::text::one_line;

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
        let child = tokio::process::Command::new(&program)
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
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| CommandError::Timeout {
                program: program.clone(),
                seconds: self.timeout.as_secs(),
            })?
            .map_err(|source| CommandError::Start {
                program: program.clone(),
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(CommandError::Failed {
            program,
            status: output.status,
            stderr: one_line(&String::from_utf8_lossy(&output.stderr), 300),
        })
    }
}
