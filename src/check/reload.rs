//! Vector's reload target: the process, task or command a reload would reach, found and
//! inspected without sending anything, and whether Vector was told about the table on disk.

use std::path::Path;
use std::sync::Arc;

use super::report::Finding;
use crate::nomad::{Blocking, NomadClient};
use crate::publish::Publisher;
use crate::reload::signal::MIN_PROCESS_AGE;
use crate::reload::{NomadTaskReload, ReloadSettings, Reloader};

/// The reload target, and whether Vector was told about the table on disk.
pub(super) async fn check_reload(
    client: Arc<NomadClient>,
    settings: ReloadSettings,
    output: &Path,
) -> Vec<Finding> {
    const CHECK: &str = "Vector's reload target";
    let mut findings = Vec::new();
    match &settings {
        ReloadSettings::None => findings.push(Finding::pass(
            CHECK,
            "none (--reload none: Vector must run with --watch-config)",
        )),
        ReloadSettings::Signal(signal) => findings.push(match signal.inspect() {
            Ok((pid, age)) if age >= MIN_PROCESS_AGE => Finding::pass(
                CHECK,
                format!("process {pid} named {:?}", signal.process_name),
            ),
            Ok((pid, _)) => Finding::pass(
                CHECK,
                format!(
                    "process {pid} named {:?}, younger than a second: a reload waits until it is a second old",
                    signal.process_name
                ),
            ),
            Err(e) => Finding::fail(
                CHECK,
                e.to_string(),
                "start Vector, or point --vector-pid/--vector-pidfile/--vector-process-name at it",
            ),
        }),
        ReloadSettings::NomadTask(NomadTaskReload { alloc_id, task, .. }) => {
            findings.push(match client.allocation(alloc_id, Blocking::default()).await {
                Ok(alloc) => match alloc.value.task_states.get(task) {
                    Some(state) if state.state == "running" => Finding::pass(
                        CHECK,
                        format!("task {task:?} of allocation {alloc_id} is running"),
                    ),
                    other => Finding::fail(
                        CHECK,
                        format!(
                            "task {task:?} of allocation {alloc_id} is not running ({:?})",
                            other.map(|s| s.state.as_str()).unwrap_or("no such task")
                        ),
                        "check --reload-task: it must name Vector's task in that allocation",
                    ),
                },
                Err(e) => Finding::fail(
                    CHECK,
                    e.to_string(),
                    "check --reload-alloc-id (NOMAD_ALLOC_ID) and read-job on its namespace",
                ),
            });
        }
        ReloadSettings::Command(reload) => {
            let program = reload.program();
            findings.push(if is_executable(program) {
                Finding::pass(CHECK, format!("command {program:?}"))
            } else {
                Finding::fail(
                    CHECK,
                    format!("command {program:?} is not an executable file on PATH"),
                    "give the reload command's full path after --",
                )
            });
        }
    }
    let publisher = Publisher::new(output.to_owned(), 0o644);
    let reloader = Reloader::new(settings, client, output);
    if let Ok(Some(stamp)) = publisher.on_disk()
        && reloader.has_record()
    {
        findings.push(if reloader.owes_announcement(&stamp) {
            Finding::fail(
                "Vector was told about the table on disk",
                "the table on disk was published but never announced",
                "run `dump` once (or start `run`): it reloads Vector for it",
            )
        } else {
            Finding::pass(
                "Vector was told about the table on disk",
                "the last reload announced it",
            )
        });
    }
    findings
}

/// Whether `program` (a path, or a name looked up on PATH) is an executable file.
fn is_executable(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(program))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_are_found_by_path_or_on_path() {
        assert!(is_executable("sh"));
        assert!(is_executable("/bin/sh"));
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").expect("write");
        std::fs::set_permissions(&plain, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .expect("chmod");
        assert!(!is_executable(plain.to_str().expect("utf8")));
        assert!(!is_executable("no-such-program-anywhere"));
    }
}
