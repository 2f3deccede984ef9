//! What a reload did, or why it did not happen, and how that is logged. A failed reload is a
//! warning, never an error of the publish: the table is on disk all the same, and Vector picks
//! it up at its next reload or start.

use super::command::CommandError;
use super::nomad_task::NomadTaskError;
use super::signal::SignalError;

/// What a reload did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// No reload is configured.
    NotConfigured,
    /// The signal was delivered.
    Signalled { pid: i32, signal: &'static str },
    /// Nomad accepted the signal for the task.
    NomadSignalled {
        alloc_id: String,
        task: String,
        signal: &'static str,
    },
    /// The command exited successfully.
    CommandSucceeded { program: String },
}

/// Why Vector was not told, by the method that failed. The table is published all the same;
/// this is a warning.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Signal(#[from] SignalError),
    #[error(transparent)]
    NomadTask(#[from] NomadTaskError),
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Logs what a reload did: info on success, a warning otherwise (the table is published all
/// the same; Vector picks it up at its next reload or start).
pub fn log_outcome(outcome: Result<ReloadOutcome, ReloadError>) {
    match outcome {
        Ok(ReloadOutcome::NotConfigured) => {}
        Ok(ReloadOutcome::Signalled { pid, signal }) => {
            tracing::info!(pid, signal, "Vector told to reload")
        }
        Ok(ReloadOutcome::NomadSignalled {
            alloc_id,
            task,
            signal,
        }) => {
            tracing::info!(
                alloc_id,
                task,
                signal,
                "Vector told to reload through Nomad"
            );
        }
        Ok(ReloadOutcome::CommandSucceeded { program }) => {
            tracing::info!(program, "Vector told to reload by command");
        }
        Err(e) => tracing::warn!(error = %e, "Vector was not told to reload"),
    }
}
