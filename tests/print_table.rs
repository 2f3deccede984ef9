//! `print-table`: the same table on stdout, in the three formats.

use fake_nomad::{FakeNomad, Job, Task, TaskGroup};

use crate::util::{bin_at, cluster_with_node, dump, stdout_of};

fn fake() -> (FakeNomad, Vec<String>) {
    let (mut cluster, node) = cluster_with_node();
    cluster.register_job(
        Job::service("web").meta("owner", "team, \"a\"").group(
            TaskGroup::new("api")
                .task(Task::new("server", "docker"))
                .task(Task::new("sidecar", "exec")),
        ),
    );
    let ids = (0..2)
        .map(|_| cluster.place("default", "web", "api", &node))
        .collect();
    (FakeNomad::start(cluster), ids)
}

fn print(fake: &FakeNomad, format: &str) -> Vec<u8> {
    stdout_of(bin_at(fake.address()).args(["print-table", "--meta", "owner", "--format", format]))
}

#[test]
fn csv_and_json_are_byte_for_byte_what_dump_writes() {
    let (fake, _) = fake();
    let dir = tempfile::tempdir().expect("tempdir");
    for format in ["csv", "json"] {
        let path = dir.path().join(format!("t.{format}"));
        dump(
            &mut bin_at(fake.address()),
            &path,
            &["--meta", "owner", "--format", format],
        );
        assert_eq!(
            print(&fake, format),
            std::fs::read(&path).expect("written"),
            "{format}"
        );
    }
}

#[test]
fn table_format_is_aligned_for_people() {
    let (fake, ids) = fake();
    let text = String::from_utf8(print(&fake, "table")).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("ALLOC_ID"));
    let task_column = lines[0].find("TASK").expect("TASK header");
    for line in &lines[1..] {
        let task = &line[task_column..];
        assert!(
            task.starts_with("server") || task.starts_with("sidecar"),
            "{line}"
        );
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert!(lines[1].starts_with(&sorted[0]));
    assert!(text.contains("team, \"a\""));
}

#[test]
fn off_a_terminal_the_default_is_csv() {
    let (fake, _) = fake();
    let default = stdout_of(bin_at(fake.address()).args(["print-table", "--meta", "owner"]));
    assert_eq!(default, print(&fake, "csv"));
}

#[test]
fn diff_shows_added_and_changed_rows_and_exits_1_until_a_dump() {
    let (fake, ids) = fake();
    let node = fake.read(|c| c.agent.client_node_id.clone().expect("agent node"));
    let dir = tempfile::tempdir().expect("tempdir");
    let table = dir.path().join("allocs.csv");
    let dump_now = || dump(&mut bin_at(fake.address()), &table, &[]);
    dump_now();
    let diff = || {
        bin_at(fake.address())
            .args(["print-table", "--diff"])
            .env("NOMAD_ALLOC_TABLE_OUTPUT", &table)
            .assert()
    };
    diff().code(0).stdout("");
    let added = fake.update(|c| c.place("default", "web", "api", &node));
    fake.update(|c| {
        c.update_in_place(&ids[0], |job| {
            job.meta.insert("rev".into(), "2".into());
        })
    });
    let version = fake.read(|c| c.allocation(&ids[0]).job.version);
    let output = diff().code(1).get_output().stdout.clone();
    let text = String::from_utf8(output).expect("utf8");
    assert!(text.contains(&format!("+ {added} server\n")), "{text}");
    assert!(text.contains(&format!("+ {added} sidecar\n")), "{text}");
    assert!(
        text.contains(&format!(
            "~ {} server: job_version: {} → {version}\n",
            ids[0],
            version - 1
        )),
        "{text}"
    );
    dump_now();
    diff().code(0).stdout("");
    bin_at(fake.address())
        .args(["print-table", "--diff", "--format", "csv"])
        .assert()
        .code(2);
}
