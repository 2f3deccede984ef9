//! The two stand-ins for Vector. [`SignalRecorder`]: a process of its own with Vector's name,
//! for tests of whom `run` and `dump` signal and when. [`SimulatedVector`]: this process, loading
//! the table on each reload signal by Vector's rule, for the race test and the benchmarks that
//! ask what Vector had loaded and when.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rustix::process::{Pid, Signal, kill_process};

use super::{Patience, eventually, launch, parse_csv};

/// Bash run through a symlink with Vector's name (so the kernel calls it that), recording
/// every signal it receives, with the time, in a log file.
pub struct SignalRecorder {
    child: Child,
    log: PathBuf,
}

impl SignalRecorder {
    /// A process named `name` that logs `ready`, and then each HUP, USR1 and USR2 it receives,
    /// with the time, to a file in `dir`.
    pub fn spawn(dir: &Path, name: &str) -> SignalRecorder {
        let exe = dir.join(name);
        // A symlink, not a copy: the kernel names the process after the path it executes, and
        // no freshly written executable can be busy (ETXTBSY) when other tests fork.
        std::os::unix::fs::symlink("/bin/bash", &exe).expect("link bash");
        let log = dir.join(format!("{name}.log"));
        // After "ready" the script never forks (a forked child would carry the same name for a
        // moment, and discovery by name would see two): it waits with the read builtin.
        let script = r#"
            mkfifo "$LOG.fifo" && exec 3<> "$LOG.fifo"
            for sig in HUP USR1 USR2; do trap "echo $sig \$EPOCHREALTIME >> \"\$LOG\"" $sig; done
            echo ready $EPOCHREALTIME >> "$LOG"
            while :; do read -r -t 0.02 -u 3; done
        "#;
        let child = Command::new(&exe)
            .arg("-c")
            .arg(script)
            .env("LOG", &log)
            .spawn()
            .expect("spawn");
        let recorder = SignalRecorder { child, log };
        recorder.wait_for(1);
        recorder
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn entries(&self) -> Vec<(String, f64)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let (name, time) = line.split_once(' ').expect("name and time");
                (name.to_owned(), time.parse().expect("time"))
            })
            .collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.entries().into_iter().map(|(n, _)| n).collect()
    }

    /// How many times `signal` (e.g. `HUP`) was received.
    pub fn count(&self, signal: &str) -> usize {
        self.names().iter().filter(|n| *n == signal).count()
    }

    /// Waits (bounded) until `signal` was received `count` times.
    pub fn wait_for_count(&self, signal: &str, count: usize) {
        eventually(&format!("{count} {signal}"), || self.count(signal) >= count)
            .unwrap_or_else(|e| panic!("{e}; only {:?} in the log", self.names()));
    }

    /// Waits (bounded) until the log has `count` entries.
    fn wait_for(&self, count: usize) {
        eventually(&format!("{count} entries"), || {
            self.entries().len() >= count
        })
        .unwrap_or_else(|e| panic!("{e}; only {:?} in the log", self.names()));
    }

    /// Sends USR2 as a marker and waits for the marker itself (not for one more entry: a HUP or
    /// USR1 received but whose trap has not run yet would be that entry). Every signal sent
    /// before it has been handled by then: bash runs pending traps in signal-number order, and
    /// HUP and USR1 have lower numbers.
    pub fn sync(&self) {
        let markers = self.count("USR2") + 1;
        kill_process(Pid::from_raw(self.pid()).expect("pid"), Signal::USR2).expect("send marker");
        self.wait_for_count("USR2", markers);
    }
}

impl Drop for SignalRecorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Vector simulated in this process: `run` is told to signal it ([`SimulatedVector::flags`]), and
/// each signal is a reload that loads the table as Vector does, only if its mtime is newer than
/// the last load's. Each user in one process needs a signal of its own.
pub struct SimulatedVector {
    loads: Arc<Loads>,
    signal: &'static str,
    handle: signal_hook::iterator::Handle,
    listener: Option<JoinHandle<()>>,
}

/// What the simulated Vector has loaded.
struct Loads {
    table: PathBuf,
    state: Mutex<Loaded>,
}

#[derive(Default)]
struct Loaded {
    /// When each reload signal arrived.
    signals: Vec<Instant>,
    /// The mtime of the table as last loaded, and its bytes.
    mtime: Option<SystemTime>,
    bytes: Vec<u8>,
    /// A probe: the text awaited, and when a load first held it.
    probe: Option<(String, Option<Instant>)>,
}

impl Loads {
    /// A load: the file is read only if its mtime is strictly newer than the last load's.
    fn load(&self, now: Instant) {
        let mut loaded = self.state.lock().expect("lock");
        if let Ok(modified) = std::fs::metadata(&self.table).and_then(|m| m.modified())
            && loaded.mtime.is_none_or(|last| modified > last)
            && let Ok(bytes) = std::fs::read(&self.table)
        {
            loaded.bytes = bytes;
            loaded.mtime = Some(modified);
        }
        let Loaded { bytes, probe, .. } = &mut *loaded;
        if let Some((text, found @ None)) = probe
            && contains(bytes, text.as_bytes())
        {
            *found = Some(now);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl SimulatedVector {
    /// Listens for `signal` (`SIGUSR1`, `SIGUSR2` or `SIGWINCH`), reloading `table` on each.
    pub fn listen(table: PathBuf, signal: &'static str) -> SimulatedVector {
        let number = match signal {
            "SIGUSR1" => signal_hook::consts::SIGUSR1,
            "SIGUSR2" => signal_hook::consts::SIGUSR2,
            "SIGWINCH" => signal_hook::consts::SIGWINCH,
            other => panic!("no simulated Vector listens for {other}"),
        };
        let loads = Arc::new(Loads {
            table,
            state: Mutex::new(Loaded::default()),
        });
        let mut signals = signal_hook::iterator::Signals::new([number]).expect("handler");
        let handle = signals.handle();
        let listener = std::thread::spawn({
            let loads = loads.clone();
            move || {
                for _ in signals.forever() {
                    let now = Instant::now();
                    loads.state.lock().expect("lock").signals.push(now);
                    loads.load(now);
                }
            }
        });
        SimulatedVector {
            loads,
            signal,
            handle,
            listener: Some(listener),
        }
    }

    /// The flags that make `run` (or `dump`) reload this process with its signal.
    pub fn flags(&self) -> Vec<String> {
        launch::reload_this_process(self.signal)
    }

    /// A load without a signal, as Vector's at its start.
    pub fn load(&self) {
        self.loads.load(Instant::now());
    }

    /// How many reload signals have arrived.
    pub fn reloads(&self) -> usize {
        self.loads.state.lock().expect("lock").signals.len()
    }

    /// When each reload signal arrived.
    #[allow(dead_code)] // The benchmarks'.
    pub fn reload_times(&self) -> Vec<Instant> {
        self.loads.state.lock().expect("lock").signals.clone()
    }

    /// Whether the table as last loaded has the row of `alloc_id`'s `task`.
    pub fn has(&self, alloc_id: &str, task: &str) -> bool {
        let bytes = self.loads.state.lock().expect("lock").bytes.clone();
        !bytes.is_empty()
            && parse_csv(&bytes)
                .iter()
                .any(|row| row["alloc_id"] == alloc_id && row["task"] == task)
    }

    /// Places a probe with `place` (which returns its allocation ID) and returns the time from
    /// the placement to the first load that held it.
    #[allow(dead_code)] // The benchmarks'.
    pub fn probe(&self, place: impl FnOnce() -> String) -> Duration {
        let placed = Instant::now();
        let id = place();
        self.loads.state.lock().expect("lock").probe = Some((id, None));
        let mut loaded_at = None;
        Patience::DEPLOYED
            .wait("the probe's reload", || {
                loaded_at = self
                    .loads
                    .state
                    .lock()
                    .expect("lock")
                    .probe
                    .as_ref()
                    .and_then(|(_, at)| *at);
                loaded_at.is_some()
            })
            .unwrap_or_else(|e| panic!("{e}"));
        loaded_at.expect("loaded") - placed
    }
}

impl Drop for SimulatedVector {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
    }
}
