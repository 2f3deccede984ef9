//! A reload by signal to a local process, sent only to the intended one: it is pinned with a
//! pidfd (so a recycled PID cannot be hit between the checks and the signal), its name must
//! match, and it must be at least a second old, because a SIGHUP that arrives before Vector
//! installs its handler kills it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

use super::signal_names::signal_name;

/// The largest pidfile read: a PID is a few digits.
const MAX_PIDFILE: u64 = 4096;

/// A process younger than this is not signalled yet.
pub const MIN_PROCESS_AGE: Duration = Duration::from_secs(1);
/// Process start time and uptime are read in clock ticks (10 ms): wait this much longer so that
/// rounding can never make a younger process look old enough.
pub const AGE_ROUNDING_MARGIN: Duration = Duration::from_millis(20);

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

/// Why a signal did not reach the process: it could not be found, was not the one meant, or
/// refused the signal.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
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

/// The `argv[0]` of the process whose `/proc` directory is `proc_dir` (empty when it cannot be
/// read: a kernel thread, or a process that has just exited).
fn argv0(proc_dir: &Path) -> String {
    let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
    String::from_utf8_lossy(cmdline.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
}

fn process_age(pid: i32, stat: &ProcStat) -> Result<Duration, SignalError> {
    let inspect = |source| SignalError::Inspect { pid, source };
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
fn processes_named(name: &str) -> Result<Vec<i32>, SignalError> {
    let own = std::process::id() as i32;
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").map_err(SignalError::ListProcesses)? {
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
        if name_matches(&stat.comm, &argv0(&entry.path()), name) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

impl SignalReload {
    fn pid(&self) -> Result<i32, SignalError> {
        match &self.target {
            ProcessTarget::Pid(pid) => Ok(*pid),
            ProcessTarget::Named => match processes_named(&self.process_name)?.as_slice() {
                [] => Err(SignalError::NoProcessNamed {
                    name: self.process_name.clone(),
                }),
                [pid] => Ok(*pid),
                several => Err(SignalError::SeveralProcessesNamed {
                    name: self.process_name.clone(),
                    pids: several.to_vec(),
                }),
            },
            ProcessTarget::PidFile(path) => {
                let content = crate::small_file::read(path, MAX_PIDFILE)
                    .map_err(|source| SignalError::PidFile {
                        path: path.clone(),
                        source,
                    })?
                    .unwrap_or_else(|| {
                        format!("<not a regular file of at most {MAX_PIDFILE} bytes>")
                    });
                content
                    .trim()
                    .parse::<i32>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| SignalError::BadPidFile {
                        path: path.clone(),
                        content: content.trim().chars().take(40).collect(),
                    })
            }
        }
    }

    /// Finds the process and checks it: it exists, is pinned by a pidfd (so a recycled PID
    /// cannot be hit later), and has the expected name. Returns it with its age.
    fn target(&self) -> Result<(Target, Duration), SignalError> {
        let pid = self.pid()?;
        let raw = Pid::from_raw(pid).ok_or(SignalError::NoProcess { pid })?;
        let pidfd = pidfd_open(raw, PidfdFlags::empty()).map_err(|e| match e {
            rustix::io::Errno::SRCH => SignalError::NoProcess { pid },
            other => SignalError::Inspect {
                pid,
                source: other.into(),
            },
        })?;
        // The pidfd now pins the process: if it exits and its PID is reused, sending through
        // the pidfd fails instead of hitting the newcomer.
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let inspect = |source| SignalError::Inspect { pid, source };
        let stat_text = std::fs::read_to_string(proc_dir.join("stat")).map_err(inspect)?;
        let stat = parse_stat(&stat_text)
            .ok_or_else(|| inspect(std::io::Error::other("unparseable /proc/<pid>/stat")))?;
        if !name_matches(&stat.comm, &argv0(&proc_dir), &self.process_name) {
            return Err(SignalError::WrongProcess {
                pid,
                found: stat.comm,
                expected: self.process_name.clone(),
            });
        }
        let age = process_age(pid, &stat)?;
        Ok((Target { pid, pidfd }, age))
    }

    /// The process a signal would go to, and its age, without signalling it (for `check`).
    pub fn inspect(&self) -> Result<(i32, Duration), SignalError> {
        self.target().map(|(target, age)| (target.pid, age))
    }

    /// Signals the process once it is old enough to survive the signal; returns its PID.
    pub async fn send(&self) -> Result<i32, SignalError> {
        let (Target { pid, pidfd }, age) = self.target()?;
        let needed = MIN_PROCESS_AGE + AGE_ROUNDING_MARGIN;
        if age < needed {
            tokio::time::sleep(needed - age).await;
        }
        let signal = signal_name(self.signal);
        pidfd_send_signal(&pidfd, self.signal).map_err(|e| match e {
            rustix::io::Errno::SRCH => SignalError::NoProcess { pid },
            other => SignalError::Send {
                pid,
                signal,
                source: other.into(),
            },
        })?;
        Ok(pid)
    }
}

/// The process a signal goes to, pinned.
struct Target {
    pid: i32,
    pidfd: std::os::fd::OwnedFd,
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(matches!(err, SignalError::WrongProcess { .. }), "{err}");
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
        assert!(matches!(err, SignalError::BadPidFile { .. }), "{err}");
    }
}
