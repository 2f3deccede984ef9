//! Telling Vector to reload its enrichment table, after a publish that changed the file and
//! never otherwise: by a signal to a local process ([`signal`]), through Nomad's signal API
//! (Vector as a task in a container or another PID namespace), or by running a command
//! ([`command`]). [`schedule`] decides when a reload is owed and due; [`announced`] remembers
//! which table Vector was last told about, across restarts.

pub mod announced;
pub mod command;
pub mod signal;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustix::process::Signal;

use crate::nomad::NomadClient;
use crate::publish::TableStamp;
use announced::AnnouncementRecord;
pub use signal::{ProcessTarget, SignalReload};

/// How Vector is told to reload, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReloadSettings {
    /// Nothing is sent: Vector ≥ 0.49 with `--watch-config` reloads the table by itself.
    None,
    /// A signal to a local process.
    Signal(SignalReload),
    /// A signal to a task through Nomad (`POST /v1/client/allocation/:id/signal`).
    NomadTask {
        alloc_id: String,
        task: String,
        signal: Signal,
    },
    /// A command, run without a shell, killed after `timeout`.
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
}

/// How Vector is told to reload, ready to act: the settings, the client that talks to Nomad
/// (for `nomad-task`), and the record of the table last announced (none with `--reload none`:
/// nothing is announced, so nothing is kept).
#[derive(Clone, Debug)]
pub struct Reloader {
    settings: ReloadSettings,
    client: Arc<NomadClient>,
    record: Option<AnnouncementRecord>,
}

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

/// Why Vector was not told. The table is published all the same; this is a warning.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read the Vector pidfile {path}: {source}")]
    PidFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the Vector pidfile {path} does not hold a PID: {content:?}")]
    BadPidFile { path: PathBuf, content: String },
    #[error("no process with PID {pid}: is Vector running?")]
    NoProcess { pid: i32 },
    #[error(
        "process {pid} is {found:?}, not {expected:?}: not signalling it (see --vector-process-name)"
    )]
    WrongProcess {
        pid: i32,
        found: String,
        expected: String,
    },
    #[error("cannot inspect process {pid}: {source}")]
    Inspect { pid: i32, source: std::io::Error },
    #[error("cannot send {signal} to process {pid}: {source}")]
    Send {
        pid: i32,
        signal: &'static str,
        source: std::io::Error,
    },
    #[error(
        "no process is named {name:?}: is Vector running? (or give --vector-pid/--vector-pidfile)"
    )]
    NoProcessNamed { name: String },
    #[error("{} processes are named {name:?} (PIDs {pids:?}): not guessing; give --vector-pid or --vector-pidfile", pids.len())]
    SeveralProcessesNamed { name: String, pids: Vec<i32> },
    #[error("cannot list processes in /proc: {0}")]
    ListProcesses(std::io::Error),
    #[error("Nomad did not signal task {task:?} of allocation {alloc_id}: {source}")]
    Nomad {
        alloc_id: String,
        task: String,
        source: crate::nomad::Error,
    },
    #[error(
        "task {task:?} of allocation {alloc_id} is not running (state {state:?}): not signalling it; Vector loads the table when it starts"
    )]
    TaskNotRunning {
        alloc_id: String,
        task: String,
        state: String,
    },
    #[error("cannot start the reload command {program:?}: {source}")]
    CommandStart {
        program: String,
        source: std::io::Error,
    },
    #[error("the reload command {program:?} failed ({status}){}", if .stderr.is_empty() { String::new() } else { format!(": {}", .stderr) })]
    CommandFailed {
        program: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error(
        "the reload command {program:?} did not finish within {seconds} s and was killed (see --reload-timeout)"
    )]
    CommandTimeout { program: String, seconds: u64 },
}

/// The signals a reload may use, by name.
const SIGNALS: &[(&str, Signal)] = &[
    ("SIGHUP", Signal::HUP),
    ("SIGUSR1", Signal::USR1),
    ("SIGUSR2", Signal::USR2),
    ("SIGINT", Signal::INT),
    ("SIGTERM", Signal::TERM),
    ("SIGQUIT", Signal::QUIT),
    ("SIGWINCH", Signal::WINCH),
    ("SIGCONT", Signal::CONT),
];

/// Parses `SIGHUP`, `HUP` or `hup` (and the other signals in [`SIGNALS`]).
pub fn parse_signal(name: &str) -> Result<Signal, String> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    SIGNALS
        .iter()
        .find(|(n, _)| *n == full)
        .map(|(_, s)| *s)
        .ok_or_else(|| {
            let known: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
            format!("unknown signal {name:?}; use one of {}", known.join(", "))
        })
}

pub(crate) fn signal_name(signal: Signal) -> &'static str {
    SIGNALS
        .iter()
        .find(|(_, s)| *s == signal)
        .map_or("signal", |(n, _)| n)
}

impl Reloader {
    /// A reloader for the table at `table`.
    pub fn new(settings: ReloadSettings, client: Arc<NomadClient>, table: &Path) -> Reloader {
        let record = (settings != ReloadSettings::None).then(|| AnnouncementRecord::beside(table));
        Reloader {
            settings,
            client,
            record,
        }
    }

    /// Whether announcements are recorded (a reload is configured).
    pub fn has_record(&self) -> bool {
        self.record.is_some()
    }

    /// Whether Vector must still be told about the table `stamp` describes: a reload is
    /// configured and the record names another table (or none, or cannot be read).
    pub fn owes_announcement(&self, stamp: &TableStamp) -> bool {
        self.record
            .as_ref()
            .is_some_and(|record| !record.is_announced(stamp))
    }

    /// Tells Vector to reload for the table `stamp` describes (the file as it is when the
    /// reload is sent) and, once delivered, records it as announced. A record that cannot be
    /// written is a warning: it costs one spare reload after a restart.
    pub async fn announce(&self, stamp: Option<TableStamp>) -> Result<ReloadOutcome, ReloadError> {
        let outcome = self.reload().await?;
        if let (Some(record), Some(stamp)) = (&self.record, stamp)
            && let Err(e) = record.record(&stamp)
        {
            tracing::warn!(error = %e, "Vector was told to reload, but that cannot be remembered");
        }
        Ok(outcome)
    }

    /// Nomad's signal API has no age gate of its own, and a SIGHUP that reaches Vector before
    /// it installs its handler kills it: read the task's state first. A task Nomad reports as
    /// not running is not signalled (it loads the table when it starts); one that started less
    /// than [`signal::MIN_PROCESS_AGE`] ago is signalled once it is that old, and a start time
    /// that cannot be read counts as "just now". When the state cannot be read at all (the
    /// request fails, or Nomad reports no state for the task), the signal goes as it would
    /// without this check: Nomad itself refuses a task that is not running.
    async fn wait_until_task_is_old_enough(
        &self,
        alloc_id: &str,
        task: &str,
    ) -> Result<(), ReloadError> {
        let state = match self
            .client
            .allocation(alloc_id, crate::nomad::Blocking::default())
            .await
        {
            Ok(alloc) => alloc.value.task_states.get(task).cloned(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the Vector task's state; signalling without the age check");
                None
            }
        };
        let Some(state) = state else {
            return Ok(());
        };
        if state.state != "running" {
            return Err(ReloadError::TaskNotRunning {
                alloc_id: alloc_id.to_owned(),
                task: task.to_owned(),
                state: state.state,
            });
        }
        let age = humantime::parse_rfc3339_weak(&state.started_at)
            .ok()
            .and_then(|started| SystemTime::now().duration_since(started).ok())
            .unwrap_or(Duration::ZERO);
        let needed = signal::MIN_PROCESS_AGE + signal::AGE_ROUNDING_MARGIN;
        tokio::time::sleep(needed.saturating_sub(age)).await;
        Ok(())
    }

    /// Tells Vector to reload.
    async fn reload(&self) -> Result<ReloadOutcome, ReloadError> {
        match &self.settings {
            ReloadSettings::None => Ok(ReloadOutcome::NotConfigured),
            ReloadSettings::Signal(signal) => signal.send().await,
            ReloadSettings::NomadTask {
                alloc_id,
                task,
                signal,
            } => {
                self.wait_until_task_is_old_enough(alloc_id, task).await?;
                let signal = signal_name(*signal);
                self.client
                    .signal_allocation(alloc_id, task, signal)
                    .await
                    .map_err(|source| ReloadError::Nomad {
                        alloc_id: alloc_id.clone(),
                        task: task.clone(),
                        source,
                    })?;
                Ok(ReloadOutcome::NomadSignalled {
                    alloc_id: alloc_id.clone(),
                    task: task.clone(),
                    signal,
                })
            }
            ReloadSettings::Command { argv, timeout } => command::run(argv, *timeout).await,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_with_or_without_prefix() {
        assert_eq!(parse_signal("SIGHUP"), Ok(Signal::HUP));
        assert_eq!(parse_signal("hup"), Ok(Signal::HUP));
        assert_eq!(parse_signal("SIGUSR1"), Ok(Signal::USR1));
        let err = parse_signal("SIGKILLME").expect_err("unknown");
        assert!(err.contains("SIGHUP"), "{err}");
        assert_eq!(signal_name(Signal::USR2), "SIGUSR2");
    }
}
