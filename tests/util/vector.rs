//! A stand-in for Vector: bash run through a symlink with Vector's name (so the kernel calls it
//! that), recording every signal it receives, with the time, in a log file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};

use super::eventually;

const BOUND: Duration = Duration::from_secs(20);

/// A process named `name` that logs `ready`, and then each HUP, USR1 and USR2 it receives,
/// with the time, to a file.
pub struct SignalRecorder {
    child: Child,
    log: PathBuf,
}

impl SignalRecorder {
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
        eventually(&format!("{count} {signal}"), BOUND, || {
            self.count(signal) >= count
        })
        .unwrap_or_else(|e| panic!("{e}; only {:?} in the log", self.names()));
    }

    /// Waits (bounded) until the log has `count` entries.
    fn wait_for(&self, count: usize) {
        eventually(&format!("{count} entries"), BOUND, || {
            self.entries().len() >= count
        })
        .unwrap_or_else(|e| panic!("{e}; only {:?} in the log", self.names()));
    }

    /// Sends USR2 as a marker and waits for it: every signal sent before it has been handled
    /// by then (HUP and USR1 have lower numbers and are delivered first).
    pub fn sync(&self) {
        let expected = self.entries().len() + 1;
        kill_process(Pid::from_raw(self.pid()).expect("pid"), Signal::USR2).expect("send marker");
        self.wait_for(expected);
    }
}

impl Drop for SignalRecorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
