//! `vector/aggregator-cluster-push.yaml` as a configuration: the stand-in memory table's rules,
//! the recipe against its sibling `vector/aggregator-cluster.yaml`, the source and table
//! settings the exporter relies on, and the URL the job and the docs give the exporter.

mod common;

use std::sync::Arc;

use vrl::value::Value;
use vrl_check::{
    MemoryConfig, MemoryTable, MemoryTables, Remap, Table, Tables, memory_table_config,
    remap_source, table_path,
};
use yaml_rust2::{Yaml, YamlLoader};

use common::{FILE_TABLE, LIVE_TTL, MEMORY_TABLE, PUSH, SIBLING, read};

const SOURCE: &str = "nomad_alloc_table_push";

fn yaml(path: &str) -> Yaml {
    YamlLoader::load_from_str(&read(path))
        .expect("YAML")
        .remove(0)
}

fn memory() -> MemoryTable {
    MemoryTable::new(memory_table_config(&read(PUSH), MEMORY_TABLE).expect("configured"))
}

fn field<'a>(value: &'a Value, name: &str) -> &'a Value {
    value
        .as_object()
        .and_then(|o| o.get(name))
        .unwrap_or_else(|| panic!("no {name} in {value}"))
}

/// Vector's rules as the stand-in applies them: replacement, the TTL field (an integer, kept
/// in the value), objects only, a bad line refusing the whole body, expiry at the scan.
#[test]
fn the_stand_in_stores_and_expires_as_vectors_memory_table() {
    let table = MemoryTable::new(MemoryConfig {
        ttl: 600,
        ttl_field: Some("ttl".to_owned()),
    });
    let get = |key: &str| table.lookup(&Value::from(key));
    table
        .post(b"{\"a/x\": {\"v\": \"1\", \"ttl\": 30}, \"b/y\": {\"v\": \"2\", \"ttl\": \"30\"}}\n\n[{\"c/z\": {\"v\": \"3\"}}]\n7\n")
        .expect("200");
    assert_eq!(
        table.len(),
        3,
        "two keys of one object, one of an array's object; 7 ignored"
    );
    let a = get("a/x").expect("a hit");
    assert_eq!(field(&a, "key"), &Value::from("a/x"));
    assert_eq!(field(&a, "ttl"), &Value::Integer(30));
    assert_eq!(
        field(field(&a, "value"), "ttl"),
        &Value::Integer(30),
        "kept"
    );
    assert_eq!(
        field(&get("b/y").expect("hit"), "ttl"),
        &Value::Integer(600),
        "a string is no TTL"
    );
    assert_eq!(get("nope").err().as_deref(), Some("No rows found"));
    // A bad line refuses the whole body: nothing of it is written.
    let refused = table.post(b"{\"a/x\": {\"v\": \"new\"}}\n{not json\n");
    assert!(refused.is_err());
    assert_eq!(
        field(field(&get("a/x").expect("hit"), "value"), "v"),
        &Value::from("1")
    );
    // Expired but not scanned yet: still found, with 0 s left.
    table.advance(31);
    assert_eq!(field(&get("a/x").expect("hit"), "ttl"), &Value::Integer(0));
    table.scan();
    assert!(get("a/x").is_err(), "gone at the scan");
    assert!(get("b/y").is_ok(), "600 s not over");
    // A replacement restarts the TTL.
    table.advance(590);
    table
        .post(b"{\"b/y\": {\"v\": \"2b\", \"ttl\": 100}}")
        .expect("200");
    table.advance(20);
    table.scan();
    let b = get("b/y").expect("replaced, not expired");
    assert_eq!(field(&b, "ttl"), &Value::Integer(80));
    assert_eq!(field(field(&b, "value"), "v"), &Value::from("2b"));
}

#[test]
fn a_memory_lookup_takes_exactly_one_condition_field_under_any_name() {
    let memory = MemoryTables([(MEMORY_TABLE.to_owned(), memory())].into());
    let compile = |vrl: &str| Remap::compile_with_memory(vrl, Tables::default(), memory.clone());
    assert!(
        compile(
            r#"r, err = get_enrichment_table_record("nomad_allocs_recent", {"anything": "a/x"})"#
        )
        .is_ok()
    );
    let two = compile(
        r#"r, err = get_enrichment_table_record("nomad_allocs_recent", {"alloc_id": "a", "task": "x"})"#,
    );
    assert!(
        two.err()
            .expect("refused")
            .contains("Only one field is allowed")
    );
    let none = compile(r#"r, err = get_enrichment_table_record("nomad_allocs_recent", {})"#);
    assert!(
        none.err()
            .expect("refused")
            .contains("Key field is required")
    );
}

#[test]
fn the_recipe_uses_the_exporters_field_names_and_ttl() {
    use nomad_alloc_table::push::{PushSettings, PushUrl, rows};
    let config = memory_table_config(&read(PUSH), MEMORY_TABLE).expect("memory");
    assert_eq!(config.ttl_field.as_deref(), Some(rows::TTL_FIELD));
    let settings = PushSettings {
        url: PushUrl::parse("http://127.0.0.1:6100/nomad-alloc-table").expect("a URL"),
        base_interval: std::time::Duration::from_secs(300),
    };
    assert_eq!(
        settings.live_ttl().as_secs(),
        LIVE_TTL as u64,
        "a live row's TTL at the default base interval"
    );
    assert_eq!(config.ttl, LIVE_TTL as u64);
    let vrl = remap_source(&read(PUSH), "nomad_labelled").expect("inline");
    for used in [
        format!("pushed.{} != true", rows::REMOVED_FIELD),
        format!("del(.nomad.{})", rows::TTL_FIELD),
        "parts.alloc_id + \"/\" + parts.task".to_owned(),
    ] {
        assert!(vrl.contains(&used), "the VRL does not use {used}");
    }
    assert_eq!(rows::key("a", "t"), "a/t", "the key the VRL builds");
}

fn hash_keys(yaml: &Yaml) -> Vec<String> {
    yaml.as_hash()
        .map(|h| {
            h.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_push_recipe_is_its_sibling_plus_the_source_and_the_memory_table() {
    let push = yaml(PUSH);
    let sibling = yaml(SIBLING);
    for part in ["data_dir", "sinks"] {
        assert_eq!(push[part], sibling[part], "{part} as in {SIBLING}");
    }
    assert_eq!(push["sources"]["agents"], sibling["sources"]["agents"]);
    assert_eq!(
        push["enrichment_tables"][FILE_TABLE],
        sibling["enrichment_tables"][FILE_TABLE]
    );
    assert_eq!(
        table_path(&read(PUSH), FILE_TABLE).expect("a file table"),
        "/var/lib/nomad-alloc-table/cluster.csv"
    );
    assert_eq!(hash_keys(&push["sources"]), ["agents", SOURCE]);
    assert_eq!(
        hash_keys(&push["enrichment_tables"]),
        [FILE_TABLE, MEMORY_TABLE]
    );
    assert_eq!(hash_keys(&push["transforms"]), ["nomad_labelled"]);
    // The VRL looks rows up in exactly these two tables: with either missing it does not compile.
    let source = remap_source(&read(PUSH), "nomad_labelled").expect("inline");
    // The file's key columns are enough to compile against.
    let table = Table {
        header: vec!["alloc_id".to_owned(), "task".to_owned()],
        rows: Vec::new(),
    };
    let file_only = Tables([(FILE_TABLE.to_owned(), Arc::new(table))].into());
    assert!(Remap::compile(&source, file_only.clone()).is_err());
    let memory_only = MemoryTables([(MEMORY_TABLE.to_owned(), memory())].into());
    assert!(Remap::compile_with_memory(&source, Tables::default(), memory_only.clone()).is_err());
    assert!(Remap::compile_with_memory(&source, file_only, memory_only).is_ok());
}

#[test]
fn the_memory_table_is_fed_by_the_source_as_the_exporter_expects() {
    let push = yaml(PUSH);
    let table = &push["enrichment_tables"][MEMORY_TABLE];
    assert_eq!(table["type"].as_str(), Some("memory"));
    let inputs: Vec<&str> = table["inputs"]
        .as_vec()
        .expect("inputs")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(inputs, [SOURCE], "fed by the source alone, unchanged");
    assert_eq!(
        memory_table_config(&read(PUSH), MEMORY_TABLE).expect("memory"),
        MemoryConfig {
            ttl: LIVE_TTL as u64,
            ttl_field: Some("ttl".to_owned())
        },
        "each value's ttl field, and a live row's TTL for a value without one"
    );
    assert_eq!(table["reload_behavior"].as_str(), Some("preserve-state"));
    // A flush interval would answer 200 before the rows are visible; a size limit would
    // answer 200 for rows it refused.
    for absent in ["flush_interval", "max_byte_size", "source_config"] {
        assert!(table[absent].is_badvalue(), "{absent} is set");
    }
    let source = &push["sources"][SOURCE];
    assert_eq!(source["type"].as_str(), Some("http_server"));
    let address: std::net::SocketAddr = source["address"]
        .as_str()
        .expect("address")
        .parse()
        .expect("IP:port");
    assert!(
        address.ip().is_loopback(),
        "whoever can write here can relabel any line"
    );
    assert_eq!(source["method"].as_str().unwrap_or("POST"), "POST");
    assert_ne!(source["strict_path"].as_bool(), Some(false));
    assert_eq!(source["decoding"]["codec"].as_str(), Some("json"));
    assert_eq!(
        source["framing"]["method"].as_str(),
        Some("newline_delimited")
    );
    assert_eq!(
        source["log_namespace"].as_bool(),
        Some(true),
        "else path, source_type and timestamp become keys"
    );
    let acks = &source["acknowledgements"];
    assert!(
        acks.as_bool() == Some(true) || acks["enabled"].as_bool() == Some(true),
        "200 only once the table holds the rows"
    );
    for adds_fields in ["headers", "query_parameters", "host_key", "auth"] {
        assert!(source[adds_fields].is_badvalue(), "{adds_fields} is set");
    }
}

#[test]
fn the_job_the_docs_and_the_header_give_the_exporter_the_sources_url() {
    let push = yaml(PUSH);
    let source = &push["sources"][SOURCE];
    let url = format!(
        "http://{}{}",
        source["address"].as_str().expect("address"),
        source["path"].as_str().expect("path")
    );
    for place in [
        PUSH,
        "deploy/nomad/vector-aggregator.nomad.hcl",
        "docs/deploy-aggregator-cluster-table.md",
    ] {
        assert!(
            read(place).contains(&format!("--memory-table-url {url}"))
                || read(place).contains(&format!("\"--memory-table-url\", \"{url}\"")),
            "{place} does not give --memory-table-url {url}"
        );
    }
}
