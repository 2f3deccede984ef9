//! The shipped VRL, run over a table that nomad-alloc-table renders, for every case Vector's
//! own unit tests in `vector/tests/remap.yaml` describe, conditions included.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fake_nomad::{Cluster, Hook, Job, Node, Task, TaskGroup};
use nomad_alloc_table::nomad::types::Allocation;
use nomad_alloc_table::table::columns::Columns;
use nomad_alloc_table::table::render::render_csv;
use nomad_alloc_table::table::{NodeInfo, project};
use vrl::value::Value;
use vrl_check::{
    Outcome, Remap, Table, Tables, check_condition, remap_source, table_path, unit_tests,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fixture table, rendered by nomad-alloc-table from a fixed fake cluster: a service with a
/// prestart task and a task whose name has dots and dashes, and a periodic child.
fn render_fixture() -> Vec<u8> {
    let mut cluster = Cluster::new(2026);
    let node = cluster.add_node(Node::new("client-1").datacenter("dc1"));
    cluster.register_job(
        Job::service("web").namespace("shop").group(
            TaskGroup::new("api")
                .task(Task::new("migrate", "exec").lifecycle(Hook::Prestart, false))
                .task(Task::new("server", "docker"))
                .task(Task::new("api.v2-worker", "exec")),
        ),
    );
    cluster.register_job(
        Job::batch("report")
            .periodic()
            .group(TaskGroup::new("report").task(Task::new("report", "raw_exec"))),
    );
    let child = cluster.launch_periodic("default", "report", 1_763_700_000);
    cluster.place("shop", "web", "api", &node);
    cluster.place("default", &child, "report", &node);
    let allocations: Vec<Allocation> = cluster
        .node_allocations(&node)
        .into_iter()
        .map(|a| serde_json::from_value(fake_nomad::json::allocation(a, true)).expect("decodes"))
        .collect();
    let info = NodeInfo {
        id: node.clone(),
        name: "client-1".to_owned(),
        datacenter: "dc1".to_owned(),
        node_pool: "default".to_owned(),
    };
    render_csv(&project(&allocations, &info.into(), &Columns::defaults()).table)
}

const FIXTURE: &str = "vector/tests/allocs.csv";

fn fixture() -> Table {
    Table::from_csv(read(FIXTURE).as_bytes()).expect("the fixture loads")
}

fn remap(table: Table) -> Remap {
    let source =
        remap_source(&read("vector/labels.yaml"), "nomad_labelled").expect("inline source");
    let tables = Tables([("nomad_allocs".to_owned(), Arc::new(table))].into());
    Remap::compile(&source, tables)
        .unwrap_or_else(|e| panic!("the shipped VRL does not compile:\n{e}"))
}

fn event(file: &str) -> Value {
    let mut object = vrl::value::ObjectMap::new();
    object.insert("file".into(), Value::from(file));
    object.insert("message".into(), Value::from("GET /healthz 200"));
    object.insert("source_type".into(), Value::from("file"));
    Value::Object(object)
}

fn kept(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Kept(value) => value,
        other => panic!("the line was not passed on labelled: {other:?}"),
    }
}

fn field<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |v, key| {
        v.as_object()
            .and_then(|o| o.get(*key))
            .unwrap_or_else(|| panic!("no {path:?} in {value}"))
    })
}

#[test]
fn the_fixture_is_what_the_renderer_produces() {
    let rendered = render_fixture();
    if std::env::var_os("NAT_UPDATE_FIXTURES").is_some() {
        std::fs::write(repo(FIXTURE), &rendered).expect("write the fixture");
    }
    assert_eq!(
        read(FIXTURE),
        String::from_utf8(rendered).expect("utf8"),
        "vector/tests/allocs.csv is stale: run with NAT_UPDATE_FIXTURES=1 and update vector/tests/remap.yaml"
    );
}

#[test]
fn the_table_definitions_point_at_the_output_and_at_the_fixture() {
    assert_eq!(
        table_path(&read("vector/enrichment-table.yaml"), "nomad_allocs").expect("defined"),
        "/var/lib/nomad-alloc-table/allocs.csv"
    );
    assert_eq!(
        table_path(&read("vector/tests/enrichment-table.yaml"), "nomad_allocs").expect("defined"),
        FIXTURE
    );
}

#[test]
fn every_vector_unit_test_passes() {
    let remap = remap(fixture());
    let tests = unit_tests(&read("vector/tests/remap.yaml")).expect("unit tests parse");
    assert!(
        tests.len() >= 7,
        "hit, miss, rotated, dots, custom data dir, non-Nomad, stderr"
    );
    for test in tests {
        assert_eq!(test.insert_at, "nomad_labelled", "{}", test.name);
        let outcome = remap.run(test.event.clone());
        match (&test.conditions, outcome) {
            (Some(conditions), Outcome::Kept(output)) => {
                for condition in conditions {
                    check_condition(condition, &output)
                        .unwrap_or_else(|e| panic!("{}: {e}\noutput: {output}", test.name));
                }
            }
            (None, Outcome::Dropped(_)) => {}
            (_, other) => panic!("{}: {other:?}", test.name),
        }
    }
}

#[test]
fn every_row_labels_its_lines_with_exactly_that_row() {
    let table = fixture();
    let remap = remap(table.clone());
    assert!(!table.rows.is_empty());
    for row in &table.rows {
        let (alloc_id, task) = (&row[0], &row[1]);
        for stream in ["stdout", "stderr"] {
            let file = format!("/opt/nomad/data/alloc/{alloc_id}/alloc/logs/{task}.{stream}.3");
            let output = kept(remap.run(event(&file)));
            assert_eq!(
                field(&output, &["nomad_enriched"]),
                &Value::Boolean(true),
                "{file}"
            );
            let labels = field(&output, &["nomad"]).as_object().expect("an object");
            for (column, value) in table.header.iter().zip(row) {
                assert_eq!(
                    labels.get(column.as_str()),
                    Some(&Value::from(value.as_str())),
                    "{column} of {file}"
                );
            }
            assert_eq!(labels.get("stream"), Some(&Value::from(stream)));
            assert_eq!(
                labels.len(),
                table.header.len() + 1,
                "the row and the stream, nothing else"
            );
        }
    }
}

#[test]
fn a_miss_keeps_the_line_with_what_the_path_says() {
    let remap = remap(fixture());
    let file =
        "/data/nomad/alloc/00000000-0000-4000-8000-000000000000/alloc/logs/web.api.stderr.12";
    let output = kept(remap.run(event(file)));
    assert_eq!(field(&output, &["nomad_enriched"]), &Value::Boolean(false));
    assert_eq!(
        field(&output, &["nomad", "alloc_id"]),
        &Value::from("00000000-0000-4000-8000-000000000000")
    );
    assert_eq!(field(&output, &["nomad", "task"]), &Value::from("web.api"));
    assert_eq!(field(&output, &["nomad", "stream"]), &Value::from("stderr"));
    assert_eq!(
        field(&output, &["message"]),
        &Value::from("GET /healthz 200")
    );
}

#[test]
fn duplicate_keys_fail_the_lookup_as_in_vector_and_the_line_still_goes_on() {
    let mut table = fixture();
    let duplicate = table.rows[0].clone();
    table.rows.push(duplicate.clone());
    let remap = remap(table);
    let file = format!(
        "/opt/nomad/data/alloc/{}/alloc/logs/{}.stdout.0",
        duplicate[0], duplicate[1]
    );
    let output = kept(remap.run(event(&file)));
    assert_eq!(field(&output, &["nomad_enriched"]), &Value::Boolean(false));
}

#[test]
fn the_stand_in_refuses_unknown_tables_and_columns_at_compile_time() {
    let tables = || Tables([("nomad_allocs".to_owned(), Arc::new(fixture()))].into());
    let unknown_table = r#"r, err = get_enrichment_table_record("other", {"alloc_id": "x"})"#;
    assert!(Remap::compile(unknown_table, tables()).is_err());
    let unknown_column =
        r#"r, err = get_enrichment_table_record("nomad_allocs", {"allocation": "x"})"#;
    let error = Remap::compile(unknown_column, tables())
        .err()
        .expect("refused");
    assert!(error.contains("missing from dataset"), "{error}");
}

/// The aggregator's remap, over a cluster-scope table rendered by nomad-alloc-table from two
/// nodes: a raw line forwarded by an agent is labelled with its own node's row, and a line an
/// agent labelled already passes unchanged.
#[test]
fn the_aggregator_labels_raw_lines_from_the_cluster_table_and_keeps_labelled_ones() {
    let mut cluster = Cluster::new(12);
    let nodes: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| cluster.add_node(Node::new(&format!("client-{n}")).datacenter(&format!("dc-{n}"))))
        .collect();
    cluster.register_job(Job::web());
    let placed: Vec<String> = nodes
        .iter()
        .map(|node| cluster.place("default", "web", "api", node))
        .collect();
    let allocations: Vec<Allocation> = cluster
        .allocations
        .values()
        .map(|a| serde_json::from_value(fake_nomad::json::allocation(a, true)).expect("decodes"))
        .collect();
    let mut directory = nomad_alloc_table::table::node_columns::Nodes::cluster();
    let listed: Vec<nomad_alloc_table::nomad::types::Node> = cluster
        .nodes
        .values()
        .map(|n| serde_json::from_value(fake_nomad::json::node_stub(n)).expect("decodes"))
        .collect();
    directory.replace(&listed, |_| false);
    let csv = render_csv(&project(&allocations, &directory, &Columns::defaults()).table);
    let table = Table::from_csv(&csv).expect("the cluster table loads");
    let source = remap_source(&read("vector/aggregator-cluster.yaml"), "nomad_labelled")
        .expect("inline source");
    let tables = Tables([("nomad_allocs".to_owned(), Arc::new(table))].into());
    let remap = Remap::compile(&source, tables)
        .unwrap_or_else(|e| panic!("the aggregator's VRL does not compile:\n{e}"));
    for (alloc, dc) in placed.iter().zip(["dc-a", "dc-b"]) {
        let output = kept(remap.run(event(&format!(
            "/opt/nomad/data/alloc/{alloc}/alloc/logs/server.stdout.0"
        ))));
        assert_eq!(field(&output, &["nomad_enriched"]), &Value::Boolean(true));
        assert_eq!(field(&output, &["nomad", "datacenter"]), &Value::from(dc));
        assert_eq!(field(&output, &["nomad", "stream"]), &Value::from("stdout"));
    }
    let mut labelled = event(&format!(
        "/opt/nomad/data/alloc/{}/alloc/logs/server.stdout.0",
        placed[0]
    ));
    if let Value::Object(map) = &mut labelled {
        map.insert("nomad_enriched".into(), Value::Boolean(true));
        map.insert("nomad".into(), Value::from("labelled at the edge"));
    }
    let output = kept(remap.run(labelled.clone()));
    assert_eq!(
        output, labelled,
        "a line labelled at the edge is left alone"
    );
}
