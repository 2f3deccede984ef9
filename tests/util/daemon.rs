//! A running `nomad-alloc-table run` against the fake Nomad, observed through what it does: the
//! table file (its rows, and each rename over it, counted with inotify), its metrics when it
//! listens, the requests the fake received and the signals the stand-in Vector got. Its log is
//! kept for failure messages, never for a test to read.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fake_nomad::FakeNomad;
use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use rustix::process::{Pid, Signal, kill_process};

use super::{Patience, free_address, launch, metrics, parse_csv};

/// The timings `run` starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timings {
    /// Quick ones (`--wait 20ms:200ms`, `--min-reload-interval 50ms`) that a test's flags
    /// override, and debug logs: for the tests.
    Quick,
    /// The operator's defaults, and warnings only: for the race test and the benchmarks.
    Deployed,
}

/// Counts the renames over a file: one per publish (a publish writes a temp file and renames it
/// over the table; nothing else renames onto it).
pub struct PublishCounter {
    count: Arc<AtomicUsize>,
    _watcher: RecommendedWatcher,
}

impl PublishCounter {
    /// Starts counting renames onto `table` (its directory must exist).
    pub fn new(table: &Path) -> PublishCounter {
        let count = Arc::new(AtomicUsize::new(0));
        let target = table.to_owned();
        let mut watcher = notify::recommended_watcher({
            let count = count.clone();
            move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && event.kind == EventKind::Modify(ModifyKind::Name(RenameMode::To))
                    && event.paths.contains(&target)
                {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
        .expect("inotify watcher");
        watcher
            .watch(
                table.parent().expect("a directory"),
                RecursiveMode::NonRecursive,
            )
            .expect("watch the table's directory");
        PublishCounter {
            count,
            _watcher: watcher,
        }
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// A running `nomad-alloc-table run`.
pub struct Daemon {
    child: Child,
    pub table: PathBuf,
    /// The alloc dir the daemon watches (empty at start).
    pub alloc_dir: PathBuf,
    log: PathBuf,
    publishes: PublishCounter,
    /// Where it serves `/metrics`, when it was started with `--listen`.
    listen: Option<SocketAddr>,
    patience: Patience,
    /// Holds the table, the log and the alloc dir; handed back by [`Daemon::kill`].
    dir: Option<tempfile::TempDir>,
}

impl Daemon {
    /// Starts `run` against `fake`, publishing into a fresh directory, with quick timings and
    /// debug logs; `extra` adds or overrides flags.
    pub fn start(fake: &FakeNomad, extra: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        Daemon::start_in(dir, fake, extra)
    }

    /// [`Daemon::start`] with `--listen` on a free address, for tests that read its metrics.
    pub fn start_observed(fake: &FakeNomad, extra: &[&str]) -> Daemon {
        let listen = free_address().to_string();
        let mut args = vec!["--listen", &listen];
        args.extend_from_slice(extra);
        Daemon::start(fake, &args)
    }

    /// Starts `run` with the operator's defaults, as deployed: for the race test and the
    /// benchmarks. Waits on it have [`Patience::DEPLOYED`].
    #[allow(dead_code)] // The benchmarks'.
    pub fn start_deployed(fake: &FakeNomad, extra: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        Daemon::start_deployed_in(dir, fake, extra)
    }

    /// [`Daemon::start_deployed`] in `dir`, whose table ([`Daemon::table_in`]) a stand-in
    /// Vector may follow from before the start.
    pub fn start_deployed_in(dir: tempfile::TempDir, fake: &FakeNomad, extra: &[&str]) -> Daemon {
        Daemon::launch(dir, fake, extra, Timings::Deployed)
    }

    /// The table a daemon started in `dir` publishes.
    pub fn table_in(dir: &Path) -> PathBuf {
        dir.join("allocs.csv")
    }

    /// Starts `run` (quick timings) in `dir`, which may hold a table and its announcement record
    /// from an earlier run.
    pub fn start_in(dir: tempfile::TempDir, fake: &FakeNomad, extra: &[&str]) -> Daemon {
        Daemon::launch(dir, fake, extra, Timings::Quick)
    }

    fn launch(
        dir: tempfile::TempDir,
        fake: &FakeNomad,
        extra: &[&str],
        timings: Timings,
    ) -> Daemon {
        let table = Daemon::table_in(dir.path());
        let log = dir.path().join(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos()
        ));
        let alloc_dir = dir.path().join("alloc");
        std::fs::create_dir_all(&alloc_dir).expect("alloc dir");
        let publishes = PublishCounter::new(&table);
        let mut command = launch::command();
        // The cluster scope refuses an alloc dir: it is not for the node it runs on.
        if !extra.windows(2).any(|w| w == ["--scope", "cluster"]) {
            command.env("NOMAD_ALLOC_TABLE_ALLOC_DIR", &alloc_dir);
        }
        let patience = match timings {
            Timings::Quick => {
                // Defaults that a test's flags override.
                command
                    .env("RUST_LOG", "nomad_alloc_table=debug")
                    .env("NOMAD_ALLOC_TABLE_WAIT", "20ms:200ms")
                    .env("NOMAD_ALLOC_TABLE_MIN_RELOAD_INTERVAL", "50ms");
                Patience::TEST
            }
            Timings::Deployed => {
                command.env("RUST_LOG", "warn");
                Patience::DEPLOYED
            }
        };
        let child = command
            .env("NOMAD_ADDR", fake.address())
            .args(["run", "-o"])
            .arg(&table)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn run");
        let listen = extra
            .windows(2)
            .find(|w| w[0] == "--listen")
            .map(|w| w[1].parse().expect("--listen takes an address"));
        Daemon {
            child,
            table,
            alloc_dir,
            log,
            publishes,
            listen,
            patience,
            dir: Some(dir),
        }
    }

    /// Its log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many times the table was replaced since the daemon started.
    pub fn publishes(&self) -> usize {
        self.publishes.count()
    }

    /// Waits until `condition` holds, failing (after its [`Patience`]) with the daemon's log.
    pub fn wait_until(&self, what: &str, condition: impl FnMut() -> bool) {
        self.patience
            .wait(what, condition)
            .unwrap_or_else(|e| panic!("{e}; log:\n{}", self.log()));
    }

    /// Where it listens (it must have been started with `--listen`).
    pub fn listen_address(&self) -> SocketAddr {
        self.listen.expect("started with --listen")
    }

    /// Its metrics now (it must have been started with `--listen`).
    pub fn scrape(&self) -> String {
        metrics::scrape(self.listen_address())
    }

    /// How many full listings it has applied, whatever their reason (`resyncs_total`).
    pub fn listings(&self) -> f64 {
        metrics::total(&self.scrape(), "nomad_alloc_table_resyncs_total", &[])
    }

    /// How many of its listings were for `reason` (`interval`, `signal`, `reconnect`, …).
    pub fn listings_for(&self, reason: &str) -> f64 {
        metrics::total(
            &self.scrape(),
            "nomad_alloc_table_resyncs_total",
            &[("reason", reason)],
        )
    }

    /// How many allocations are in their grace period, as of its last publish.
    pub fn departing(&self) -> f64 {
        metrics::total(
            &self.scrape(),
            "nomad_alloc_table_allocations",
            &[("state", "departing")],
        )
    }

    /// How many responses with status `code` it has had from Nomad, on any endpoint.
    pub fn responses(&self, code: &str) -> f64 {
        metrics::total(
            &self.scrape(),
            "nomad_alloc_table_nomad_requests_total",
            &[("code", code)],
        )
    }

    /// The rows of the published table.
    pub fn rows(&self) -> Vec<BTreeMap<String, String>> {
        std::fs::read(&self.table)
            .map(|bytes| parse_csv(&bytes))
            .unwrap_or_default()
    }

    /// The allocation IDs in the published table.
    pub fn alloc_ids(&self) -> BTreeSet<String> {
        self.rows()
            .into_iter()
            .map(|r| r["alloc_id"].clone())
            .collect()
    }

    pub fn wait_for_alloc(&self, id: &str) {
        self.wait_until(&format!("allocation {id} in the table"), || {
            self.alloc_ids().contains(id)
        });
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: Signal) {
        kill_process(Pid::from_raw(self.pid()).expect("pid"), signal).expect("signal");
    }

    /// Waits for the process to exit; returns its exit code (`None` if a signal killed it).
    pub fn wait_for_exit(&mut self) -> Option<i32> {
        let mut status = None;
        self.patience
            .wait("run to exit", || {
                status = self.child.try_wait().expect("wait");
                status.is_some()
            })
            .unwrap_or_else(|e| panic!("{e}; log:\n{}", self.log()));
        status.and_then(|s| s.code())
    }

    /// Stops with SIGTERM; returns the exit code and the table as it was left.
    pub fn stop(mut self) -> (Option<i32>, Vec<u8>) {
        self.signal(Signal::TERM);
        let code = self.wait_for_exit();
        (code, std::fs::read(&self.table).expect("table"))
    }

    /// Kills the process with SIGKILL and hands back its directory (with the table and the
    /// announcement record), as a crash leaves them.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir.take().expect("the directory is handed back once")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
