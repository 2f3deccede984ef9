//! The Vector pipeline the deployment ships: the file source never reads Vector's own task logs,
//! the VRL check runs the pinned Vector's `vrl`, and agents send labelled lines to the
//! aggregator over verified TLS.

use super::repo;

/// Vector's interpolation of `${VAR}` and `${VAR:-default}` from `env`.
fn interpolate(text: &str, env: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed ${") + start;
        let inner = &rest[start + 2..end];
        let (name, default) = inner.split_once(":-").unwrap_or((inner, ""));
        let value = env
            .iter()
            .find(|(k, _)| *k == name)
            .map_or(default, |(_, v)| *v);
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The file source's include and exclude patterns of a Vector config, with `env` interpolated.
fn file_source_patterns(config: &str, env: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let docs = yaml_rust2::YamlLoader::load_from_str(&interpolate(config, env)).expect("YAML");
    let source = &docs[0]["sources"]["nomad_task_logs"];
    let strings = |key: &str| -> Vec<String> {
        source[key]
            .as_vec()
            .unwrap_or_else(|| panic!("{key} is a list"))
            .iter()
            .map(|p| p.as_str().expect("a pattern").to_owned())
            .collect()
    };
    (strings("include"), strings("exclude"))
}

/// Whether Vector's file source reads `path`: an include glob matches it component by
/// component (`*` never crosses `/`, as the glob walk does), and no exclude pattern matches it
/// with `glob::Pattern::matches`' default options (where `*` does cross `/`).
fn vector_reads(include: &[String], exclude: &[String], path: &str) -> bool {
    let walked = glob::MatchOptions {
        require_literal_separator: true,
        ..glob::MatchOptions::new()
    };
    let included = include.iter().any(|p| {
        glob::Pattern::new(p)
            .expect("an include glob")
            .matches_with(path, walked)
    });
    let excluded = exclude.iter().any(|p| {
        glob::Pattern::new(p)
            .expect("an exclude glob")
            .matches(path)
    });
    included && !excluded
}

#[test]
fn vector_never_reads_its_own_task_logs_but_reads_its_neighbours() {
    const OWN: &str = "0b6f4a1c-2d3e-4f50-8a9b-0c1d2e3f4a5b";
    const NEIGHBOUR: &str = "5e0c9d1a-2b7f-4c3e-9a61-0d2f8b7c4e11";
    let config = std::fs::read_to_string(repo("vector/vector.yaml")).expect("vector.yaml");
    // As the jobs run it: a Nomad task, whose environment names its own allocation.
    let (include, exclude) = file_source_patterns(&config, &[("NOMAD_ALLOC_ID", OWN)]);
    let log = |alloc: &str, file: &str| format!("/opt/nomad/data/alloc/{alloc}/alloc/logs/{file}");
    for own in ["vector.stdout.0", "vector.stderr.2", "table.stdout.0"] {
        assert!(
            !vector_reads(&include, &exclude, &log(OWN, own)),
            "Vector would read its own allocation's {own}"
        );
    }
    for neighbour in ["web.stdout.0", "web.stderr.3", "my.task-1.stdout.12"] {
        assert!(
            vector_reads(&include, &exclude, &log(NEIGHBOUR, neighbour)),
            "Vector would miss {neighbour}"
        );
    }
    assert!(!vector_reads(
        &include,
        &exclude,
        &log(NEIGHBOUR, ".web.stdout.fifo")
    ));
    // Outside Nomad (systemd) the variable is unset: nothing of a task is excluded by it.
    let (include, exclude) = file_source_patterns(&config, &[]);
    assert!(vector_reads(
        &include,
        &exclude,
        &log(OWN, "vector.stdout.0")
    ));
    let sinks = yaml_rust2::YamlLoader::load_from_str(&config).expect("YAML")[0]["sinks"].clone();
    let sinks = sinks.as_hash().expect("sinks");
    assert!(
        sinks
            .values()
            .all(|sink| sink["type"].as_str() != Some("console")),
        "no console sink where Vector's stdout is collected"
    );
}

/// Vector releases and the `vrl` each depends on (its Cargo.toml), for the pinned ones.
const VRL_OF_VECTOR: &[(&str, &str)] = &[("0.57.0", "0.34.0")];

#[test]
fn the_vrl_check_uses_the_vrl_of_the_pinned_vector() {
    let job = std::fs::read_to_string(repo("deploy/nomad/vector.nomad.hcl")).expect("job");
    let vector = job
        .split("timberio/vector:")
        .nth(1)
        .and_then(|rest| rest.split('-').next())
        .expect("the Docker job pins a Vector image");
    let manifest =
        std::fs::read_to_string(repo("tests/vrl-check/Cargo.toml")).expect("vrl-check manifest");
    let vrl = manifest
        .lines()
        .find_map(|l| l.strip_prefix("vrl = { version = \"="))
        .and_then(|rest| rest.split('"').next())
        .expect("vrl-check pins vrl exactly");
    let expected = VRL_OF_VECTOR
        .iter()
        .find(|(v, _)| *v == vector)
        .map(|(_, vrl)| *vrl)
        .unwrap_or_else(|| panic!("add Vector {vector}'s vrl version to VRL_OF_VECTOR"));
    assert_eq!(vrl, expected, "Vector {vector} runs vrl {expected}");
}

/// The aggregator's one enabled sink (the others are commented out), fed by `input`.
fn the_one_sink<'a>(aggregator: &'a yaml_rust2::Yaml, input: &str) -> &'a yaml_rust2::Yaml {
    let sinks = aggregator["sinks"].as_hash().expect("sinks");
    assert_eq!(sinks.len(), 1, "one sink enabled, the others commented out");
    let sink = sinks.values().next().expect("one");
    let inputs = sink["inputs"].as_vec().expect("inputs");
    assert_eq!(inputs[0].as_str(), Some(input));
    sink
}

fn yaml_file(path: &str) -> yaml_rust2::Yaml {
    let text = std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    yaml_rust2::YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{path} does not parse: {e}"))
        .remove(0)
}

#[test]
fn the_cluster_aggregator_labels_from_the_cluster_table() {
    let aggregator = yaml_file("vector/aggregator-cluster.yaml");
    assert_eq!(
        aggregator["sources"]["agents"]["type"].as_str(),
        Some("vector")
    );
    assert_eq!(
        aggregator["sources"]["agents"]["tls"]["verify_certificate"].as_bool(),
        Some(true)
    );
    let remap = &aggregator["transforms"]["nomad_labelled"];
    assert_eq!(
        remap["inputs"].as_vec().expect("inputs")[0].as_str(),
        Some("agents")
    );
    assert_eq!(
        aggregator["enrichment_tables"]["nomad_allocs"]["file"]["path"].as_str(),
        Some("/var/lib/nomad-alloc-table/cluster.csv"),
        "the cluster-scope table"
    );
    the_one_sink(&aggregator, "nomad_labelled");
}

#[test]
fn agents_send_labelled_lines_to_the_aggregator_over_verified_tls() {
    let agent = yaml_file("vector/agent.yaml");
    let sink = &agent["sinks"]["aggregator"];
    assert_eq!(sink["type"].as_str(), Some("vector"));
    let inputs = sink["inputs"].as_vec().expect("inputs");
    assert_eq!(
        inputs[0].as_str(),
        Some("nomad_labelled"),
        "the labelled lines of vector.yaml's remap"
    );
    let pipeline = yaml_file("vector/vector.yaml");
    assert!(!pipeline["transforms"]["nomad_labelled"].is_badvalue());
    for key in ["ca_file", "crt_file", "key_file"] {
        assert!(sink["tls"][key].as_str().is_some(), "agent tls.{key}");
    }
    assert_eq!(sink["tls"]["verify_certificate"].as_bool(), Some(true));
    let aggregator = yaml_file("vector/aggregator.yaml");
    let source = &aggregator["sources"]["agents"];
    assert_eq!(source["type"].as_str(), Some("vector"));
    assert_eq!(source["tls"]["enabled"].as_bool(), Some(true));
    assert_eq!(
        source["tls"]["verify_certificate"].as_bool(),
        Some(true),
        "only agents with a certificate from the CA may send"
    );
    assert_ne!(
        the_one_sink(&aggregator, "agents")["type"].as_str(),
        Some("console")
    );
    assert!(
        aggregator["transforms"].is_badvalue(),
        "no VRL at the aggregator: the lines arrive labelled"
    );
}
