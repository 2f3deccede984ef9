//! A reload by command (`-- systemctl reload vector`): run without a shell, killed after its
//! timeout, successful only when it exits 0.

use std::time::Duration;

use super::{ReloadError, ReloadOutcome};
use crate::text::one_line;

/// Runs the reload command without a shell; it must exit 0 within `timeout`.
pub async fn run(argv: &[String], timeout: Duration) -> Result<ReloadOutcome, ReloadError> {
    let program = argv.first().cloned().unwrap_or_default();
    let child = tokio::process::Command::new(&program)
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ReloadError::CommandStart {
            program: program.clone(),
            source,
        })?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| ReloadError::CommandTimeout {
            program: program.clone(),
            seconds: timeout.as_secs(),
        })?
        .map_err(|source| ReloadError::CommandStart {
            program: program.clone(),
            source,
        })?;
    if output.status.success() {
        return Ok(ReloadOutcome::CommandSucceeded { program });
    }
    Err(ReloadError::CommandFailed {
        program,
        status: output.status,
        stderr: one_line(&String::from_utf8_lossy(&output.stderr), 300),
    })
}
