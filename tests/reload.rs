//! Reloading Vector after a changed publish, and only then, and only the intended process. The
//! stand-in for Vector is bash run through a symlink named `vector` (so the kernel calls it `vector`),
//! recording every signal it receives in a log file.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use fake_nomad::FakeNomad;

use crate::util::vector::SignalRecorder;
use crate::util::{bin_at, dump, fake_and_dir, web_cluster};

/// The fake with one placed allocation, a stand-in process named `name`, and where `dump`
/// publishes; `dump(extra)` runs it there.
struct Setup {
    fake: FakeNomad,
    node: String,
    process: SignalRecorder,
    table: PathBuf,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let (cluster, node) = web_cluster();
        let (fake, dir) = fake_and_dir(cluster);
        let process = SignalRecorder::spawn(dir.path(), name);
        let table = dir.path().join("allocs.csv");
        Setup {
            fake,
            node,
            process,
            table,
            dir,
        }
    }

    /// `dump <extra>` into the table.
    fn dump(&self, extra: &[&str]) {
        dump(&mut bin_at(self.fake.address()), &self.table, extra);
    }

    /// `dump --vector-pid <the stand-in's PID>` into the table.
    fn dump_reloading_it(&self) {
        self.dump(&["--vector-pid", &self.process.pid().to_string()]);
    }
}

#[test]
fn a_changed_table_reloads_vector_once_and_an_unchanged_one_never() {
    let setup = Setup::new("vector");
    let vector = &setup.process;
    setup.dump_reloading_it();
    vector.sync();
    assert_eq!(vector.names(), ["ready", "HUP", "USR2"]);
    let entries = vector.entries();
    assert!(
        entries[1].1 - entries[0].1 >= 0.95,
        "a process younger than a second must not be signalled: {entries:?}"
    );

    let published = std::fs::metadata(&setup.table).expect("table");
    setup.dump_reloading_it();
    let after = std::fs::metadata(&setup.table).expect("table");
    assert_eq!(
        (after.ino(), after.modified().ok()),
        (published.ino(), published.modified().ok()),
        "unchanged content is not published again"
    );
    vector.sync();
    assert_eq!(
        vector.names(),
        ["ready", "HUP", "USR2", "USR2"],
        "no reload for unchanged content"
    );

    setup
        .fake
        .update(|c| c.place("default", "web", "api", &setup.node));
    setup.dump_reloading_it();
    vector.sync();
    assert_eq!(
        vector.names(),
        ["ready", "HUP", "USR2", "USR2", "HUP", "USR2"]
    );
}

#[test]
fn a_process_with_another_name_is_never_signalled() {
    let setup = Setup::new("not-vector");
    setup.dump_reloading_it();
    setup.process.sync();
    assert_eq!(setup.process.names(), ["ready", "USR2"]);
    assert!(
        setup.table.exists(),
        "the table is published even when the reload is refused"
    );
}

#[test]
fn a_pidfile_and_a_custom_signal_are_honoured() {
    let setup = Setup::new("vector");
    let pidfile = setup.dir.path().join("vector.pid");
    std::fs::write(&pidfile, format!("{}\n", setup.process.pid())).expect("write pidfile");
    let pidfile = pidfile.to_str().expect("utf8");
    setup.dump(&["--reload-signal", "SIGUSR1", "--vector-pidfile", pidfile]);
    setup.process.sync();
    assert_eq!(setup.process.names(), ["ready", "USR1", "USR2"]);
}

#[test]
fn a_vanished_process_is_a_warning_not_a_lost_table() {
    let setup = Setup::new("vector");
    let mut gone = Command::new("true").spawn().expect("spawn");
    let pid = gone.id();
    gone.wait().expect("reaped");
    setup.dump(&["--vector-pid", &pid.to_string()]);
    assert!(setup.table.exists());
}

mod nomad_task {
    use fake_nomad::{ClientStatus, FakeNomad, Job, Policy, SignalRecord, Task, TaskGroup};
    use predicates::prelude::*;
    use predicates::str::contains;

    use crate::util::{bin_at, fake_and_dir, web_cluster};

    /// The fake with a Vector system job allocation beside the web allocation.
    fn with_vector_task() -> (fake_nomad::Cluster, String) {
        let (mut cluster, node) = web_cluster();
        cluster.register_job(
            Job::new("vector", fake_nomad::JobType::System)
                .group(TaskGroup::new("logs").task(Task::new("vector", "docker"))),
        );
        let vector_alloc = cluster.place("default", "vector", "logs", &node);
        cluster.set_client_status(&vector_alloc, ClientStatus::Running);
        (cluster, vector_alloc)
    }

    /// `dump` into a fresh directory, reloading the Vector task of `vector_alloc` through Nomad.
    fn dump_reloading_the_task(fake: &FakeNomad, vector_alloc: &str) -> assert_cmd::assert::Assert {
        let dir = tempfile::tempdir().expect("tempdir");
        bin_at(fake.address())
            .env("NOMAD_ALLOC_ID", vector_alloc)
            .args(["dump", "--reload-task", "vector", "-o"])
            .arg(dir.path().join("allocs.csv"))
            .assert()
    }

    #[test]
    fn a_task_younger_than_a_second_is_signalled_once_it_is_a_second_old() {
        let started = std::time::Instant::now();
        let (cluster, vector_alloc) = with_vector_task();
        let fake = FakeNomad::start(cluster);
        dump_reloading_the_task(&fake, &vector_alloc).success();
        assert_eq!(fake.signals().len(), 1);
        // When the signal was sent, not when dump exited: the task started after `started`.
        let sent = fake
            .requests()
            .into_iter()
            .find(|r| r.path.ends_with("/signal"))
            .expect("a signal request");
        let age = sent.at.duration_since(started);
        assert!(
            (std::time::Duration::from_secs(1)..std::time::Duration::from_secs(3)).contains(&age),
            "signalled {age:?} after the task started: a SIGHUP before Vector's handler exists kills it, and no later than needed"
        );
    }

    #[test]
    fn a_task_that_is_not_running_is_not_signalled() {
        let (mut cluster, vector_alloc) = with_vector_task();
        cluster.set_client_status(&vector_alloc, ClientStatus::Pending);
        let fake = FakeNomad::start(cluster);
        dump_reloading_the_task(&fake, &vector_alloc).success();
        assert!(fake.signals().is_empty());
    }

    #[test]
    fn a_changed_table_signals_the_vector_task_through_nomad() {
        let (cluster, vector_alloc) = with_vector_task();
        let (fake, dir) = fake_and_dir(cluster);
        let dump = || {
            let mut cmd = bin_at(fake.address());
            cmd.env("NOMAD_ALLOC_ID", &vector_alloc)
                .args(["dump", "--reload-task", "vector", "-o"])
                .arg(dir.path().join("allocs.csv"));
            cmd
        };
        dump().assert().success();
        assert_eq!(
            fake.signals(),
            [SignalRecord {
                alloc_id: vector_alloc.clone(),
                task: "vector".to_owned(),
                signal: "SIGHUP".to_owned()
            }]
        );
        dump().assert().success();
        assert_eq!(fake.signals().len(), 1, "no signal for an unchanged table");
    }

    #[test]
    fn without_alloc_lifecycle_the_reload_is_a_warning_naming_it() {
        let (mut cluster, vector_alloc) = with_vector_task();
        cluster.enable_acl_with([("reader", Policy::alloc_table_reader())]);
        let (fake, dir) = fake_and_dir(cluster);
        let table = dir.path().join("allocs.csv");
        bin_at(fake.address())
            .env("NOMAD_TOKEN", "reader")
            .args([
                "dump",
                "--reload-task",
                "vector",
                "--reload-alloc-id",
                &vector_alloc,
                "-o",
            ])
            .arg(&table)
            .assert()
            .success()
            .stderr(contains("alloc-lifecycle").and(contains("reader").not()));
        assert!(table.exists());
        assert!(fake.signals().is_empty());
    }
}

mod command {
    use crate::util::{bin_at, web_cluster};

    #[test]
    fn the_command_runs_after_a_changed_publish_with_its_arguments_as_given() {
        let (cluster, _node) = web_cluster();
        let fake = fake_nomad::FakeNomad::start(cluster);
        let dir = tempfile::tempdir().expect("tempdir");
        let table = dir.path().join("allocs.csv");
        // No shell: "$HOME" and the space reach cp verbatim, as part of the file name.
        let copy = dir.path().join("copy of $HOME.csv");
        bin_at(fake.address())
            .args(["dump", "-o"])
            .arg(&table)
            .args(["--", "cp"])
            .arg(&table)
            .arg(&copy)
            .assert()
            .success();
        assert_eq!(
            std::fs::read(&copy).expect("copied"),
            std::fs::read(&table).expect("table")
        );
    }

    #[test]
    fn a_failing_or_hanging_command_is_a_warning() {
        let (cluster, _node) = web_cluster();
        let fake = fake_nomad::FakeNomad::start(cluster);
        let dir = tempfile::tempdir().expect("tempdir");
        // Each command leaves a mark, so that a dump that never ran it cannot pass.
        let failed = dir.path().join("failed-ran");
        bin_at(fake.address())
            .args(["dump", "-o"])
            .arg(dir.path().join("a.csv"))
            .args(["--", "sh", "-c", "touch \"$0\"; exit 1"])
            .arg(&failed)
            .assert()
            .success();
        assert!(dir.path().join("a.csv").exists());
        assert!(failed.exists(), "the failing command ran");
        let hung = dir.path().join("hung-ran");
        let started = std::time::Instant::now();
        bin_at(fake.address())
            .args(["dump", "--reload-timeout", "200ms", "-o"])
            .arg(dir.path().join("b.csv"))
            .args(["--", "sh", "-c", "touch \"$0\"; exec sleep 30"])
            .arg(&hung)
            .assert()
            .success();
        let took = started.elapsed();
        assert!(hung.exists(), "the hanging command ran");
        assert!(
            (std::time::Duration::from_millis(200)..std::time::Duration::from_secs(10))
                .contains(&took),
            "the hanging command was waited for its timeout, then given up: {took:?}"
        );
        assert!(dir.path().join("b.csv").exists());
    }
}

mod discovery {
    use super::SignalRecorder;
    use crate::util::{bin_at, web_cluster};

    /// A process name no other test uses (at most 15 bytes, the kernel's comm limit).
    fn unique_name(tag: &str) -> String {
        format!("v{tag}{}", std::process::id() % 1_000_000)
    }

    /// `dump` into `dir` with a reload by process name and no PID.
    fn dump_reloading_by_name(name: &str, dir: &std::path::Path) -> assert_cmd::assert::Assert {
        let (cluster, _node) = web_cluster();
        let fake = fake_nomad::FakeNomad::start(cluster);
        bin_at(fake.address())
            .args([
                "dump",
                "--reload",
                "signal",
                "--vector-process-name",
                name,
                "-o",
            ])
            .arg(dir.join("allocs.csv"))
            .assert()
            .success()
    }

    #[test]
    fn without_a_pid_the_one_process_of_that_name_is_signalled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = unique_name("one");
        let vector = SignalRecorder::spawn(dir.path(), &name);
        dump_reloading_by_name(&name, dir.path());
        vector.sync();
        assert_eq!(vector.count("HUP"), 1);
    }

    #[test]
    fn several_processes_of_that_name_are_refused() {
        let first_dir = tempfile::tempdir().expect("tempdir");
        let second_dir = tempfile::tempdir().expect("tempdir");
        let name = unique_name("two");
        let first = SignalRecorder::spawn(first_dir.path(), &name);
        let second = SignalRecorder::spawn(second_dir.path(), &name);
        dump_reloading_by_name(&name, first_dir.path());
        first.sync();
        second.sync();
        assert_eq!(first.count("HUP") + second.count("HUP"), 0);
    }
}
