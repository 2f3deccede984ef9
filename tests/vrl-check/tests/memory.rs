//! `vector/aggregator-cluster-push.yaml`: its remap over the base file (a cluster table rendered
//! by nomad-alloc-table) and a memory table fed with the lines the exporter pushes, through the
//! stand-in of `vrl_check::memory` (Vector v0.57.0's semantics, sources in its doc comment). A
//! labelled line must be what `vector/aggregator-cluster.yaml` makes of the same row.

mod common;

use std::sync::Arc;

use fake_nomad::{Cluster, Job, Node};
use nomad_alloc_table::nomad::types::Allocation;
use nomad_alloc_table::push::rows;
use nomad_alloc_table::table::columns::Columns;
use nomad_alloc_table::table::project;
use nomad_alloc_table::table::render::render_csv;
use serde_json::json;
use vrl::value::{ObjectMap, Value};
use vrl_check::{
    MemoryTable, MemoryTables, Outcome, Remap, Table, Tables, memory_table_config, remap_source,
};

use common::{FILE_TABLE, LIVE_TTL, MEMORY_TABLE, PUSH, SIBLING, read};

/// The cluster table of a web job placed on two nodes, as nomad-alloc-table renders it, and
/// the placed allocations.
fn cluster_table() -> (Table, Vec<String>) {
    let mut cluster = Cluster::new(19);
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
    assert!(table.rows.len() >= 2, "a row per placed allocation");
    (table, placed)
}

fn memory() -> MemoryTable {
    MemoryTable::new(memory_table_config(&read(PUSH), MEMORY_TABLE).expect("configured"))
}

/// The key the exporter pushes a row under.
fn key(row: &[String]) -> String {
    rows::key(&row[0], &row[1])
}

/// A live row as the exporter pushes it: every column a string, and its TTL.
fn live(table: &Table, row: &[String], ttl: i64) -> serde_json::Value {
    let mut value: serde_json::Map<String, serde_json::Value> = table
        .header
        .iter()
        .zip(row)
        .map(|(h, v)| (h.clone(), json!(v)))
        .collect();
    value.insert(rows::TTL_FIELD.to_owned(), json!(ttl));
    serde_json::Value::Object(value)
}

fn removed() -> serde_json::Value {
    json!({rows::REMOVED_FIELD: true, rows::TTL_FIELD: LIVE_TTL})
}

/// One body line: an object of `key → value` pairs.
fn line(pairs: &[(String, serde_json::Value)]) -> String {
    let object: serde_json::Map<String, serde_json::Value> = pairs.iter().cloned().collect();
    format!("{}\n", serde_json::Value::Object(object))
}

fn push_remap(table: &Table, memory: &MemoryTable) -> Remap {
    let source = remap_source(&read(PUSH), "nomad_labelled").expect("inline source");
    let tables = Tables([(FILE_TABLE.to_owned(), Arc::new(table.clone()))].into());
    let memory = MemoryTables([(MEMORY_TABLE.to_owned(), memory.clone())].into());
    Remap::compile_with_memory(&source, tables, memory)
        .unwrap_or_else(|e| panic!("the push recipe's VRL does not compile:\n{e}"))
}

/// The sibling's remap, which labels from the file alone.
fn file_remap(table: &Table) -> Remap {
    let source = remap_source(&read(SIBLING), "nomad_labelled").expect("inline source");
    let tables = Tables([(FILE_TABLE.to_owned(), Arc::new(table.clone()))].into());
    Remap::compile(&source, tables).expect("the sibling compiles")
}

fn event(alloc: &str, task: &str) -> Value {
    let mut object = ObjectMap::new();
    object.insert(
        "file".into(),
        Value::from(format!(
            "/opt/nomad/data/alloc/{alloc}/alloc/logs/{task}.stderr.2"
        )),
    );
    object.insert("message".into(), Value::from("GET /healthz 200"));
    Value::Object(object)
}

fn kept(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Kept(value) => value,
        other => panic!("the line was not passed on: {other:?}"),
    }
}

fn field<'a>(value: &'a Value, name: &str) -> &'a Value {
    value
        .as_object()
        .and_then(|o| o.get(name))
        .unwrap_or_else(|| panic!("no {name} in {value}"))
}

#[test]
fn a_memory_hit_labels_with_the_pushed_row_and_not_the_files_older_one() {
    let (table, _) = cluster_table();
    let memory = memory();
    let remap = push_remap(&table, &memory);
    let row = &table.rows[0];
    let mut newer = row.clone();
    let changed = table.header.len() - 1;
    newer[changed] = format!("{}-changed", newer[changed]);
    memory
        .post(line(&[(key(row), live(&table, &newer, LIVE_TTL))]).as_bytes())
        .expect("200");
    let output = kept(remap.run(event(&row[0], &row[1])));
    assert_eq!(field(&output, "nomad_enriched"), &Value::Boolean(true));
    let mut expected: ObjectMap = table
        .header
        .iter()
        .zip(&newer)
        .map(|(h, v)| (h.as_str().into(), Value::from(v.as_str())))
        .collect();
    expected.insert("stream".into(), Value::from("stderr"));
    assert_eq!(
        field(&output, "nomad"),
        &Value::Object(expected),
        "the pushed row, without its ttl, and the stream"
    );
}

#[test]
fn a_pushed_row_labels_a_line_exactly_as_the_same_row_in_the_file_does() {
    let (table, _) = cluster_table();
    let memory = memory();
    let remap = push_remap(&table, &memory);
    let body: String = table
        .rows
        .iter()
        .map(|row| line(&[(key(row), live(&table, row, LIVE_TTL))]))
        .collect();
    memory.post(body.as_bytes()).expect("200");
    // The file the push recipe reads is empty of these rows: only the memory table has them.
    let empty = Table {
        header: table.header.clone(),
        rows: Vec::new(),
    };
    let from_memory = push_remap(&empty, &memory);
    for row in &table.rows {
        let expected = kept(file_remap(&table).run(event(&row[0], &row[1])));
        assert_eq!(field(&expected, "nomad_enriched"), &Value::Boolean(true));
        assert_eq!(kept(from_memory.run(event(&row[0], &row[1]))), expected);
        assert_eq!(kept(remap.run(event(&row[0], &row[1]))), expected);
    }
}

#[test]
fn a_removed_marker_is_a_miss_even_though_the_file_still_has_the_row() {
    let (table, _) = cluster_table();
    let memory = memory();
    let remap = push_remap(&table, &memory);
    let row = &table.rows[1];
    memory
        .post(line(&[(key(row), removed())]).as_bytes())
        .expect("200");
    let output = kept(remap.run(event(&row[0], &row[1])));
    assert_eq!(field(&output, "nomad_enriched"), &Value::Boolean(false));
    assert_eq!(field(&output, "nomad_path_matched"), &Value::Boolean(true));
    let nomad = field(&output, "nomad").as_object().expect("an object");
    assert_eq!(
        nomad.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        ["alloc_id", "stream", "task"],
        "what the path says, not the file's row"
    );
    assert_eq!(nomad["alloc_id"], Value::from(row[0].as_str()));
    assert_eq!(nomad["task"], Value::from(row[1].as_str()));
    assert_eq!(field(&output, "message"), &Value::from("GET /healthz 200"));
    // The other rows are untouched by the marker.
    let other = &table.rows[0];
    let output = kept(remap.run(event(&other[0], &other[1])));
    assert_eq!(field(&output, "nomad_enriched"), &Value::Boolean(true));
}

#[test]
fn a_memory_miss_labels_from_the_file_as_the_sibling_does() {
    let (table, _) = cluster_table();
    let memory = memory();
    // Another key in the memory table: this one misses there.
    let (first, second) = (&table.rows[0], &table.rows[1]);
    memory
        .post(line(&[(key(second), live(&table, second, LIVE_TTL))]).as_bytes())
        .expect("200");
    let output = kept(push_remap(&table, &memory).run(event(&first[0], &first[1])));
    assert_eq!(field(&output, "nomad_enriched"), &Value::Boolean(true));
    assert_eq!(
        output,
        kept(file_remap(&table).run(event(&first[0], &first[1])))
    );
}

#[test]
fn when_both_miss_the_line_goes_on_unlabelled_with_what_its_path_says() {
    let (table, _) = cluster_table();
    let memory = memory();
    let remap = push_remap(&table, &memory);
    let unknown = "00000000-0000-4000-8000-000000000000";
    let output = kept(remap.run(event(unknown, "web.api")));
    assert_eq!(field(&output, "nomad_enriched"), &Value::Boolean(false));
    assert_eq!(field(&output, "nomad_path_matched"), &Value::Boolean(true));
    assert_eq!(
        output,
        kept(file_remap(&table).run(event(unknown, "web.api")))
    );
    let nomad = field(&output, "nomad");
    assert_eq!(field(nomad, "alloc_id"), &Value::from(unknown));
    assert_eq!(field(nomad, "task"), &Value::from("web.api"));
    assert_eq!(field(nomad, "stream"), &Value::from("stderr"));
    assert_eq!(field(&output, "message"), &Value::from("GET /healthz 200"));
}

#[test]
fn lines_that_are_not_nomad_logs_or_labelled_already_pass_as_in_the_sibling() {
    let (table, placed) = cluster_table();
    let memory = memory();
    let remap = push_remap(&table, &memory);
    let mut not_nomad = ObjectMap::new();
    not_nomad.insert("file".into(), Value::from("/var/log/syslog"));
    let mut labelled = event(&placed[0], "server");
    if let Value::Object(map) = &mut labelled {
        map.insert("nomad_enriched".into(), Value::Boolean(true));
        map.insert("nomad".into(), Value::from("labelled at the edge"));
    }
    for line in [Value::Object(not_nomad), labelled.clone()] {
        assert_eq!(
            kept(remap.run(line.clone())),
            kept(file_remap(&table).run(line))
        );
    }
    assert_eq!(kept(remap.run(labelled.clone())), labelled);
}
