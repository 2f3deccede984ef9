//! What `dump` writes: the rows and columns of docs/how-it-works.md's table for the shapes of allocation
//! Nomad has.

use fake_nomad::{ClientStatus, Cluster, Hook, Job, Task, TaskGroup};

use crate::util::{
    bin_at, cluster_with_node, dump, dump_rows, fake_and_dir, rows_at, rows_dumped, rows_of,
};

/// [`cluster_with_node`] with the service job `web` whose group `api` runs `tasks`.
fn web_running(tasks: impl IntoIterator<Item = Task>) -> (Cluster, String) {
    let (mut cluster, node) = cluster_with_node();
    let group = tasks
        .into_iter()
        .fold(TaskGroup::new("api"), TaskGroup::task);
    cluster.register_job(Job::service("web").group(group));
    (cluster, node)
}

#[test]
fn a_service_job_gets_a_row_per_task_with_its_lifecycle() {
    let (mut cluster, node) = cluster_with_node();
    cluster.register_job(
        Job::service("web")
            .namespace("shop")
            .region("eu-west")
            .group(
                TaskGroup::new("api")
                    .task(Task::new("migrate", "exec").lifecycle(Hook::Prestart, false))
                    .task(Task::new("log-shipper", "docker").lifecycle(Hook::Prestart, true))
                    .task(Task::new("server", "java"))
                    .task(Task::connect_proxy("web-api")),
            ),
    );
    let alloc = cluster.place("shop", "web", "api", &node);
    cluster.set_client_status(&alloc, ClientStatus::Running);
    let rows = rows_dumped(cluster, &[]);
    let tasks = rows_of(&rows, &alloc);
    let lifecycles: Vec<(&str, &str, &str)> = tasks
        .iter()
        .map(|(task, row)| {
            (
                *task,
                row["task_lifecycle"].as_str(),
                row["task_driver"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        lifecycles,
        [
            ("connect-proxy-web-api", "prestart-sidecar", "docker"),
            ("log-shipper", "prestart-sidecar", "docker"),
            ("migrate", "prestart", "exec"),
            ("server", "main", "java"),
        ]
    );
    let server = tasks["server"];
    for (column, value) in [
        ("alloc_name", "web.api[0]"),
        ("namespace", "shop"),
        ("job_id", "web"),
        ("job_name", "web"),
        ("parent_job_id", ""),
        ("job_type", "service"),
        ("job_version", "0"),
        ("group", "api"),
        ("node_id", &node),
        ("node_name", "client-1"),
        ("datacenter", "dc-test"),
        ("region", "eu-west"),
    ] {
        assert_eq!(server[column], value, "{column}");
    }
}

#[test]
fn periodic_and_dispatch_children_name_their_parent() {
    let (mut cluster, node) = cluster_with_node();
    cluster.register_job(
        Job::batch("report")
            .periodic()
            .group(TaskGroup::new("g").task(Task::new("run", "raw_exec"))),
    );
    cluster.register_job(
        Job::batch("transcode")
            .parameterized()
            .group(TaskGroup::new("g").task(Task::new("ffmpeg", "exec"))),
    );
    let periodic = cluster.launch_periodic("default", "report", 1_763_700_000);
    let dispatched = cluster.dispatch(
        "default",
        "transcode",
        &[("input", "s3://x")],
        1_763_700_100,
    );
    let a = cluster.place("default", &periodic, "g", &node);
    let b = cluster.place("default", &dispatched, "g", &node);
    let rows = rows_dumped(cluster, &["--meta", "input"]);
    let periodic_row = rows_of(&rows, &a)["run"];
    assert_eq!(periodic_row["job_id"], "report/periodic-1763700000");
    assert_eq!(periodic_row["parent_job_id"], "report");
    assert_eq!(periodic_row["job_type"], "batch");
    let dispatch_row = rows_of(&rows, &b)["ffmpeg"];
    assert!(dispatch_row["job_id"].starts_with("transcode/dispatch-1763700100-"));
    assert_eq!(dispatch_row["parent_job_id"], "transcode");
    assert_eq!(dispatch_row["meta_input"], "s3://x");
}

#[test]
fn a_replacement_on_the_same_node_keeps_both_allocations() {
    let (mut cluster, node) = cluster_with_node();
    cluster.register_job(Job::web());
    let old = cluster.place("default", "web", "api", &node);
    cluster.set_client_status(&old, ClientStatus::Running);
    // A destructive update: new version, new allocation with the same name on the same node.
    cluster.register_job(
        Job::service("web")
            .group(TaskGroup::new("api").task(Task::new("server", "docker").meta("v", "2"))),
    );
    let new = cluster.replace(&old, &node);
    cluster.set_client_status(&old, ClientStatus::Complete);
    cluster.set_client_status(&new, ClientStatus::Running);
    let rows = rows_dumped(cluster, &[]);
    assert_eq!(rows.len(), 2);
    let old_row = rows_of(&rows, &old)["server"];
    let new_row = rows_of(&rows, &new)["server"];
    assert_eq!(old_row["alloc_name"], new_row["alloc_name"]);
    assert_eq!(old_row["job_version"], "0");
    assert_eq!(new_row["job_version"], "1");
}

#[test]
fn allocations_in_every_client_status_are_kept() {
    let (mut cluster, node) = cluster_with_node();
    cluster.register_job(Job::batch("b").group(TaskGroup::new("g").task(Task::new("t", "exec"))));
    let by_status: Vec<(String, ClientStatus)> = ClientStatus::ALL
        .iter()
        .map(|status| {
            let id = cluster.place("default", "b", "g", &node);
            cluster.set_client_status(&id, *status);
            (id, *status)
        })
        .collect();
    let rows = rows_dumped(cluster, &["--columns", "job_id,client_status"]);
    assert_eq!(rows.len(), ClientStatus::ALL.len());
    for (id, status) in by_status {
        assert_eq!(rows_of(&rows, &id)["t"]["client_status"], status.as_str());
    }
}

#[test]
fn meta_values_with_csv_metacharacters_survive_exactly() {
    let (mut cluster, node) = cluster_with_node();
    let tricky = "a, \"quoted\"\nsecond line; naïve café 日本 🚀";
    cluster.register_job(
        Job::service("web")
            .meta("owner", tricky)
            .meta("team.name", "platform,core")
            .group(
                TaskGroup::new("api")
                    .task(Task::new("server", "docker").meta("note", "=\"x\"\r\n")),
            ),
    );
    let alloc = cluster.place("default", "web", "api", &node);
    let rows = rows_dumped(cluster, &["--meta", "owner,team.name,note"]);
    let row = rows_of(&rows, &alloc)["server"];
    assert_eq!(row["meta_owner"], tricky);
    assert_eq!(row["meta_team_name"], "platform,core");
    assert_eq!(row["meta_note"], "=\"x\"\r\n");
}

#[test]
fn missing_optional_fields_still_give_rows() {
    let (mut cluster, node) = web_running([
        Task::new("init", "exec").lifecycle(Hook::Prestart, false),
        Task::new("server", "docker"),
    ]);
    let no_job = cluster.place("default", "web", "api", &node);
    cluster.omit_field(&no_job, "/Job");
    let partial = cluster.place("default", "web", "api", &node);
    cluster.omit_field(&partial, "/NodeName");
    cluster.omit_field(&partial, "/Job/TaskGroups/0/Tasks/0/Lifecycle");
    cluster.omit_field(&partial, "/Job/Region");
    let rows = rows_dumped(cluster, &[]);
    // Without a Job the tasks and lifecycles come from AllocatedResources.TaskLifecycles.
    let from_resources = rows_of(&rows, &no_job);
    assert_eq!(from_resources["init"]["task_lifecycle"], "prestart");
    assert_eq!(from_resources["server"]["task_lifecycle"], "main");
    assert_eq!(from_resources["server"]["job_name"], "");
    assert_eq!(from_resources["server"]["job_id"], "web");
    let partial_rows = rows_of(&rows, &partial);
    assert_eq!(partial_rows["init"]["task_lifecycle"], "main");
    assert_eq!(
        partial_rows["init"]["node_name"], "client-1",
        "falls back to the node's name"
    );
    assert_eq!(partial_rows["init"]["region"], "");
}

#[test]
fn an_empty_node_publishes_a_header_only_table() {
    let (cluster, _node) = cluster_with_node();
    let (fake, dir) = fake_and_dir(cluster);
    let path = dir.path().join("t.csv");
    dump(&mut bin_at(fake.address()), &path, &[]);
    assert_eq!(
        std::fs::read_to_string(&path).expect("written"),
        "alloc_id,task,alloc_name,namespace,job_id,job_name,parent_job_id,job_type,job_version,group,task_driver,task_lifecycle,node_id,node_name,datacenter,region\n"
    );
}

#[test]
fn json_output_has_the_same_rows_in_the_same_order() {
    let (mut cluster, node) = web_running([Task::new("b", "docker"), Task::new("a", "docker")]);
    for _ in 0..3 {
        cluster.place("default", "web", "api", &node);
    }
    let (fake, dir) = fake_and_dir(cluster);
    let csv_rows = dump_rows(fake.address(), &dir.path().join("t.csv"), &["--meta", "x"]);
    let json_path = dir.path().join("t.json");
    dump(
        &mut bin_at(fake.address()),
        &json_path,
        &["--format", "json", "--meta", "x"],
    );
    let text = std::fs::read_to_string(&json_path).expect("written");
    let json: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&text).expect("json array");
    assert_eq!(json.len(), csv_rows.len());
    for (object, row) in json.iter().zip(&csv_rows) {
        let keys: Vec<&String> = object.keys().collect();
        let mut sorted_row_keys: Vec<&String> = row.keys().collect();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort();
        sorted_row_keys.sort();
        assert_eq!(sorted_keys, sorted_row_keys);
        for (k, v) in row {
            assert_eq!(object[k], serde_json::Value::String(v.clone()));
        }
    }
    // Key order in the file follows the CSV header.
    let first_object = &text[text.find('{').expect("object")..text.find('}').expect("end")];
    let positions: Vec<usize> = ["alloc_id", "task", "alloc_name", "region", "meta_x"]
        .iter()
        .map(|k| first_object.find(&format!("\"{k}\"")).expect("key present"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{first_object}");
}

#[test]
fn namespaces_the_token_cannot_read_are_left_out_by_nomad() {
    let (mut cluster, node) = cluster_with_node();
    cluster
        .register_job(Job::service("open").group(TaskGroup::new("g").task(Task::new("t", "exec"))));
    cluster.register_job(
        Job::service("hidden")
            .namespace("secret")
            .group(TaskGroup::new("g").task(Task::new("t", "exec"))),
    );
    let visible = cluster.place("default", "open", "g", &node);
    cluster.place("secret", "hidden", "g", &node);
    cluster.enable_acl_with([(
        "limited-token",
        fake_nomad::Policy::default()
            .node_read()
            .namespace("default", &["read-job"]),
    )]);
    let (fake, dir) = fake_and_dir(cluster);
    let path = dir.path().join("t.csv");
    let mut command = bin_at(fake.address());
    command.env("NOMAD_TOKEN", "limited-token");
    dump(&mut command, &path, &["--node-id", &node]);
    let rows = rows_at(&path);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["alloc_id"], visible);
}
