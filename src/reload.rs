//! Telling Vector to reload its enrichment table, after a publish that changed the file and
//! never otherwise: by a signal to a local process, through Nomad's signal API (Vector as a
//! task in a container or another PID namespace), or by running a command. A signal goes only
//! to the intended process: it is pinned with a pidfd (so a recycled PID cannot be hit between
//! the checks and the signal), its name must match, and it must be at least a second old,
//! because a SIGHUP that arrives before Vector installs its handler kills it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::nomad::NomadClient;

use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

/// A process younger than this is not signalled yet.
pub const MIN_PROCESS_AGE: Duration = Duration::from_secs(1);
/// Process start time and uptime are read in clock ticks (10 ms): wait this much longer so that
/// rounding can never make a younger process look old enough.
const AGE_ROUNDING_MARGIN: Duration = Duration::from_millis(20);

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

/// How Vector is told to reload, ready to act: the settings and, for `nomad-task`, the client
/// that talks to Nomad.
#[derive(Clone, Debug)]
pub struct Reloader {
    settings: ReloadSettings,
    client: Arc<NomadClient>,
}

impl Reloader {
    pub fn new(settings: ReloadSettings, client: Arc<NomadClient>) -> Reloader {
        Reloader { settings, client }
    }
}

/// Where the process to signal is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessTarget {
    Pid(i32),
    /// A file holding the PID, read at every reload (Vector may have restarted).
    PidFile(PathBuf),
    /// The one process whose name is the reload's `process_name`, found in `/proc` at every
    /// reload.
    Named,
}

/// A signal reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalReload {
    pub target: ProcessTarget,
    pub signal: Signal,
    /// The process's name (`/proc/<pid>/comm`, or the basename of its `argv[0]`) must be this.
    pub process_name: String,
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

fn signal_name(signal: Signal) -> &'static str {
    SIGNALS
        .iter()
        .find(|(_, s)| *s == signal)
        .map_or("signal", |(n, _)| n)
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ProcStat {
    comm: String,
    /// Clock ticks after boot at which the process started.
    start_ticks: u64,
}

/// Parses `/proc/<pid>/stat`. The name sits in parentheses and may itself hold spaces and
/// parentheses, so the fields after it are found from the last `)`.
fn parse_stat(stat: &str) -> Option<ProcStat> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    // After ")": state is field 3; starttime is field 22, so index 19 of the rest.
    let start_ticks = stat
        .get(close + 1..)?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    Some(ProcStat { comm, start_ticks })
}

/// Whether a process is the one we mean: its `comm` (truncated by the kernel to 15 bytes) or the
/// basename of its `argv[0]` equals `expected`.
fn name_matches(comm: &str, argv0: &str, expected: &str) -> bool {
    let base = Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    comm == expected || base == expected
}

fn process_age(pid: i32, stat: &ProcStat) -> Result<Duration, ReloadError> {
    let inspect = |source| ReloadError::Inspect { pid, source };
    let uptime = std::fs::read_to_string("/proc/uptime").map_err(inspect)?;
    let uptime_secs: f64 = uptime
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| inspect(std::io::Error::other("unreadable /proc/uptime")))?;
    let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
    let started = stat.start_ticks as f64 / ticks;
    Ok(Duration::from_secs_f64((uptime_secs - started).max(0.0)))
}

/// The PIDs of the processes named `name` (by `comm` or `argv[0]`), this one excluded.
fn processes_named(name: &str) -> Result<Vec<i32>, ReloadError> {
    let own = std::process::id() as i32;
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").map_err(ReloadError::ListProcesses)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        // Processes come and go while we look: unreadable ones are simply not candidates.
        let Some(stat) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|text| parse_stat(&text))
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let argv0 = String::from_utf8_lossy(cmdline.split(|b| *b == 0).next().unwrap_or_default())
            .into_owned();
        if name_matches(&stat.comm, &argv0, name) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

impl SignalReload {
    fn pid(&self) -> Result<i32, ReloadError> {
        match &self.target {
            ProcessTarget::Pid(pid) => Ok(*pid),
            ProcessTarget::Named => match processes_named(&self.process_name)?.as_slice() {
                [] => Err(ReloadError::NoProcessNamed {
                    name: self.process_name.clone(),
                }),
                [pid] => Ok(*pid),
                several => Err(ReloadError::SeveralProcessesNamed {
                    name: self.process_name.clone(),
                    pids: several.to_vec(),
                }),
            },
            ProcessTarget::PidFile(path) => {
                let content =
                    std::fs::read_to_string(path).map_err(|source| ReloadError::PidFile {
                        path: path.clone(),
                        source,
                    })?;
                content
                    .trim()
                    .parse::<i32>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| ReloadError::BadPidFile {
                        path: path.clone(),
                        content: content.trim().chars().take(40).collect(),
                    })
            }
        }
    }

    async fn send(&self) -> Result<ReloadOutcome, ReloadError> {
        let pid = self.pid()?;
        let raw = Pid::from_raw(pid).ok_or(ReloadError::NoProcess { pid })?;
        let pidfd = pidfd_open(raw, PidfdFlags::empty()).map_err(|e| match e {
            rustix::io::Errno::SRCH => ReloadError::NoProcess { pid },
            other => ReloadError::Inspect {
                pid,
                source: other.into(),
            },
        })?;
        // The pidfd now pins the process: if it exits and its PID is reused, sending through
        // the pidfd fails instead of hitting the newcomer.
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let inspect = |source| ReloadError::Inspect { pid, source };
        let stat_text = std::fs::read_to_string(proc_dir.join("stat")).map_err(inspect)?;
        let stat = parse_stat(&stat_text)
            .ok_or_else(|| inspect(std::io::Error::other("unparseable /proc/<pid>/stat")))?;
        let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
        let argv0 = String::from_utf8_lossy(cmdline.split(|b| *b == 0).next().unwrap_or_default())
            .into_owned();
        if !name_matches(&stat.comm, &argv0, &self.process_name) {
            return Err(ReloadError::WrongProcess {
                pid,
                found: stat.comm,
                expected: self.process_name.clone(),
            });
        }
        let age = process_age(pid, &stat)?;
        let needed = MIN_PROCESS_AGE + AGE_ROUNDING_MARGIN;
        if age < needed {
            tokio::time::sleep(needed - age).await;
        }
        let signal = signal_name(self.signal);
        pidfd_send_signal(&pidfd, self.signal).map_err(|e| match e {
            rustix::io::Errno::SRCH => ReloadError::NoProcess { pid },
            other => ReloadError::Send {
                pid,
                signal,
                source: other.into(),
            },
        })?;
        Ok(ReloadOutcome::Signalled { pid, signal })
    }
}

/// Runs the reload command without a shell; it must exit 0 within `timeout`.
async fn run_command(argv: &[String], timeout: Duration) -> Result<ReloadOutcome, ReloadError> {
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
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(ReloadError::CommandFailed {
        program,
        status: output.status,
        stderr: stderr
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(300)
            .collect(),
    })
}

impl Reloader {
    /// Tells Vector to reload. Call only after a publish that changed the file.
    pub async fn reload(&self) -> Result<ReloadOutcome, ReloadError> {
        match &self.settings {
            ReloadSettings::None => Ok(ReloadOutcome::NotConfigured),
            ReloadSettings::Signal(signal) => signal.send().await,
            ReloadSettings::NomadTask {
                alloc_id,
                task,
                signal,
            } => {
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
            ReloadSettings::Command { argv, timeout } => run_command(argv, *timeout).await,
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

/// Reloads requested by the daemon: one in flight at a time, requests made meanwhile coalesced
/// into one trailing reload (never lost), and never two closer than `min_interval`.
pub struct ReloadQueue {
    wanted: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

impl ReloadQueue {
    /// Starts the queue's task; with [`ReloadSettings::None`] there is nothing to run.
    pub fn spawn(reloader: Reloader, min_interval: Duration) -> ReloadQueue {
        if reloader.settings == ReloadSettings::None {
            return ReloadQueue {
                wanted: Arc::new(Notify::new()),
                task: None,
            };
        }
        ReloadQueue::spawn_with(min_interval, move || {
            let reloader = reloader.clone();
            async move {
                log_outcome(reloader.reload().await);
            }
        })
    }

    /// The queue around any reload action.
    fn spawn_with<F, R>(min_interval: Duration, mut reload: F) -> ReloadQueue
    where
        F: FnMut() -> R + Send + 'static,
        R: Future<Output = ()> + Send,
    {
        let wanted = Arc::new(Notify::new());
        let task = tokio::spawn({
            let wanted = wanted.clone();
            async move {
                let mut last: Option<tokio::time::Instant> = None;
                loop {
                    wanted.notified().await;
                    if let Some(last) = last {
                        tokio::time::sleep_until(last + min_interval).await;
                    }
                    reload().await;
                    last = Some(tokio::time::Instant::now());
                }
            }
        });
        ReloadQueue {
            wanted,
            task: Some(task),
        }
    }

    /// Asks for a reload after a publish that changed the file.
    pub fn request(&self) {
        // A stored permit stands for every request made while a reload is running.
        self.wanted.notify_one();
    }
}

impl Drop for ReloadQueue {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
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

    #[test]
    fn stat_parsing_survives_odd_process_names() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let parsed = parse_stat(stat).expect("parses");
        assert_eq!(parsed.comm, "my (odd) name");
        assert_eq!(parsed.start_ticks, 987_654);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn names_match_on_comm_or_argv0_basename() {
        assert!(name_matches("vector", "/usr/bin/vector", "vector"));
        assert!(name_matches("tokio-runtime-w", "/usr/bin/vector", "vector"));
        assert!(!name_matches("bash", "/bin/bash", "vector"));
        assert!(!name_matches("vectorx", "vectorx", "vector"));
    }

    #[test]
    fn our_own_process_is_found_and_aged() {
        let pid = std::process::id() as i32;
        let stat = parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat"))
            .expect("parses");
        let age = process_age(pid, &stat).expect("age");
        assert!(age < Duration::from_secs(24 * 3600));
    }

    #[tokio::test]
    async fn a_process_with_another_name_is_not_signalled() {
        let reload = SignalReload {
            target: ProcessTarget::Pid(std::process::id() as i32),
            signal: Signal::HUP,
            process_name: "vector".to_owned(),
        };
        let err = reload.send().await.expect_err("we are not vector");
        assert!(matches!(err, ReloadError::WrongProcess { .. }), "{err}");
    }

    /// A queue whose reloads take 100 ms and record when they start.
    fn recording_queue(
        min_interval: Duration,
    ) -> (ReloadQueue, Arc<std::sync::Mutex<Vec<Duration>>>) {
        let started = tokio::time::Instant::now();
        let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let queue = ReloadQueue::spawn_with(min_interval, {
            let starts = starts.clone();
            move || {
                starts.lock().expect("lock").push(started.elapsed());
                tokio::time::sleep(Duration::from_millis(100))
            }
        });
        (queue, starts)
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_coalesced_and_the_trailing_one_is_kept() {
        let (queue, starts) = recording_queue(Duration::from_secs(1));
        for _ in 0..5 {
            queue.request();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // During the first reload, more requests: they make exactly one more, a second later.
        queue.request();
        queue.request();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(
            *starts.lock().expect("lock"),
            [Duration::ZERO, Duration::from_millis(1_100)],
            "one immediate reload, one trailing reload min_interval after the first ended"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_after_a_quiet_period_reloads_at_once() {
        let (queue, starts) = recording_queue(Duration::from_secs(1));
        queue.request();
        tokio::time::sleep(Duration::from_secs(5)).await;
        queue.request();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            *starts.lock().expect("lock"),
            [Duration::ZERO, Duration::from_secs(5)]
        );
    }

    #[tokio::test]
    async fn a_bad_pidfile_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vector.pid");
        std::fs::write(&path, "not-a-pid\n").expect("write");
        let reload = SignalReload {
            target: ProcessTarget::PidFile(path),
            signal: Signal::HUP,
            process_name: "vector".to_owned(),
        };
        let err = reload.send().await.expect_err("bad pidfile");
        assert!(matches!(err, ReloadError::BadPidFile { .. }), "{err}");
    }
}
