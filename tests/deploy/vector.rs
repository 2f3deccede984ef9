//! Vector 0.57 reading its configuration.

use super::*;

/// Vector's `${VAR}`/`${VAR:-default}` interpolation, which 0.57 applies only when turned on
/// (`--dangerously-allow-env-var-interpolation`, vectordotdev/vector#25699).
pub(super) fn interpolate(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed ${") + start;
        let inner = &rest[start + 2..end];
        let (name, default) = inner.split_once(":-").unwrap_or((inner, ""));
        out.push_str(env.get(name).map_or(default, String::as_str));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// One Vector as a deployment runs it: its configuration files as Vector reads them.
pub(super) struct VectorRun {
    pub(super) place: String,
    /// `(file, text)` as Vector reads it.
    pub(super) files: Vec<(String, String)>,
    /// The allocation Vector runs in, when it is a Nomad task.
    pub(super) own_alloc: Option<String>,
    /// The task's `extra_hosts` (name → address) and the templates' rendered files.
    pub(super) hosts: BTreeMap<String, String>,
    pub(super) rendered: BTreeMap<String, String>,
    pub(super) secrets_dir: String,
    /// Nomad's alloc dir on the client.
    pub(super) alloc_dir: String,
}

/// Vector's merged configuration: components by kind and id.
#[derive(Default)]
pub(super) struct VectorConfig {
    pub(super) components: BTreeMap<(String, String), Yaml>,
}

pub(super) const KINDS: [&str; 4] = ["sources", "transforms", "sinks", "enrichment_tables"];

impl VectorRun {
    pub(super) fn config(&self) -> VectorConfig {
        let mut config = VectorConfig::default();
        let mut data_dir = None;
        for (file, text) in &self.files {
            let doc = yaml_rust2::YamlLoader::load_from_str(text)
                .unwrap_or_else(|e| {
                    panic!("{}: {file} is not YAML as Vector reads it: {e}", self.place)
                })
                .into_iter()
                .next()
                .unwrap_or(Yaml::Null);
            if let Some(dir) = doc["data_dir"].as_str() {
                assert!(
                    data_dir.is_none(),
                    "{}: data_dir set twice ({file})",
                    self.place
                );
                data_dir = Some(dir.to_owned());
            }
            for kind in KINDS {
                let Some(map) = doc[kind].as_hash() else {
                    continue;
                };
                for (id, component) in map {
                    let id = id.as_str().expect("an id").to_owned();
                    let previous = config
                        .components
                        .insert((kind.to_owned(), id.clone()), component.clone());
                    assert!(
                        previous.is_none(),
                        "{}: {kind}.{id} defined twice",
                        self.place
                    );
                }
            }
        }
        config
    }
}

impl VectorConfig {
    pub(super) fn of_kind<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Yaml)> {
        self.components
            .iter()
            .filter(move |((k, _), _)| k == kind)
            .map(|((_, id), c)| (id.as_str(), c))
    }

    pub(super) fn get(&self, kind: &str, id: &str) -> Option<&Yaml> {
        self.components.get(&(kind.to_owned(), id.to_owned()))
    }
}

pub(super) fn yaml_strings(yaml: &Yaml) -> Vec<String> {
    yaml.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether Vector's file source reads `path`: an include glob matches it component by
/// component (`*` never crosses `/`, as the glob walk does), and no exclude pattern matches it
/// with `glob::Pattern::matches`' default options (where `*` does cross `/`). An exclude that
/// is no valid pattern makes the source fail to build (`lib/file-source/src/paths_provider.rs`).
pub(super) fn vector_reads(source: &Yaml, path: &str, place: &str) -> bool {
    let walked = glob::MatchOptions {
        require_literal_separator: true,
        ..glob::MatchOptions::new()
    };
    let included = yaml_strings(&source["include"]).iter().any(|p| {
        glob::Pattern::new(p)
            .unwrap_or_else(|e| panic!("{place}: include {p:?}: {e}"))
            .matches_with(path, walked)
    });
    let excluded = yaml_strings(&source["exclude"]).iter().any(|p| {
        glob::Pattern::new(p)
            .unwrap_or_else(|e| panic!("{place}: exclude {p:?} is no glob: {e}"))
            .matches(path)
    });
    included && !excluded
}

/// `host:port`, as Vector's address options parse it.
pub(super) fn valid_address(address: &str) -> bool {
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// The tables a VRL program looks rows up in.
pub(super) fn tables_used(vrl: &str) -> Vec<String> {
    let mut tables = Vec::new();
    for function in [
        "get_enrichment_table_record(",
        "find_enrichment_table_records(",
    ] {
        let mut rest = vrl;
        while let Some(at) = rest.find(function) {
            let after = rest[at + function.len()..].trim_start();
            let name = after
                .strip_prefix('"')
                .and_then(|a| a.split('"').next())
                .expect("a literal table name");
            tables.push(name.to_owned());
            rest = after;
        }
    }
    tables
}

/// The checks every Vector of every deployment must pass.
pub(super) fn check_vector(run: &VectorRun) -> VectorConfig {
    let place = &run.place;
    let config = run.config();
    let log = |alloc: &str, file: &str| format!("{}/{alloc}/alloc/logs/{file}", run.alloc_dir);
    for (id, source) in config.of_kind("sources") {
        if source["type"].as_str() != Some("file") {
            continue;
        }
        for neighbour in ["web.stdout.0", "web.stderr.3", "my.task-1.stdout.12"] {
            assert!(
                vector_reads(source, &log(NEIGHBOUR, neighbour), place),
                "{place}: source {id} misses a neighbour's {neighbour}"
            );
        }
        assert!(
            !vector_reads(source, &log(NEIGHBOUR, ".web.stdout.fifo"), place),
            "{place}: source {id} opens Nomad's FIFOs"
        );
        if let Some(own) = &run.own_alloc {
            for file in ["vector.stdout.0", "vector.stderr.2", "table.stdout.0"] {
                assert!(
                    !vector_reads(source, &log(own, file), place),
                    "{place}: source {id} reads its own allocation's {file}: every line Vector \
                     writes comes back"
                );
            }
        }
    }
    for kind in ["sources", "sinks"] {
        for (id, component) in config.of_kind(kind) {
            if let Some(address) = component["address"].as_str() {
                assert!(
                    valid_address(address),
                    "{place}: {kind}.{id}.address {address:?} is no host:port (Vector exits 78)"
                );
            }
        }
    }
    let tables: BTreeSet<&str> = config
        .of_kind("enrichment_tables")
        .map(|(id, _)| id)
        .collect();
    for (id, transform) in config.of_kind("transforms") {
        for table in tables_used(transform["source"].as_str().unwrap_or_default()) {
            assert!(
                tables.contains(table.as_str()),
                "{place}: transform {id} looks rows up in {table}, which is not configured: the \
                 VRL does not compile and Vector exits 78"
            );
        }
    }
    let outputs: BTreeSet<&str> = config
        .of_kind("sources")
        .chain(config.of_kind("transforms"))
        .map(|(id, _)| id)
        .collect();
    for kind in ["transforms", "sinks"] {
        for (id, component) in config.of_kind(kind) {
            for input in yaml_strings(&component["inputs"]) {
                assert!(
                    outputs.contains(input.as_str()),
                    "{place}: {kind}.{id} reads {input}, which is not configured"
                );
            }
        }
    }
    for (id, sink) in config.of_kind("sinks") {
        if run.own_alloc.is_some() {
            assert_ne!(
                sink["type"].as_str(),
                Some("console"),
                "{place}: sink {id}: a console sink where Vector's stdout is collected"
            );
        }
    }
    config
}

/// Every Vector task of every job variant, its configuration rendered as Nomad renders it and
/// read as Vector 0.57 reads it.
pub(super) fn nomad_vectors() -> Vec<(Variant, VectorRun)> {
    let services = nomad_services();
    let mut runs = Vec::new();
    for variant in all_variants() {
        let alloc_dir = variant
            .var("alloc_dir")
            .unwrap_or("/opt/nomad/data/alloc")
            .to_owned();
        let vector_tasks: Vec<Block> = variant
            .tasks()
            .filter(|t| runs_vector(t))
            .cloned()
            .collect();
        for task in vector_tasks {
            let place = format!("{} task {}", variant.place(), label(&task));
            let config = task_config(&task).expect("config");
            let docker = attribute(config, "image").is_some();
            let secrets_dir = if docker {
                "/secrets".to_owned()
            } else {
                format!("{alloc_dir}/{OWN}/{}/secrets", label(&task))
            };
            let mut env: BTreeMap<String, String> = task_env(&task);
            env.insert("NOMAD_ALLOC_ID".to_owned(), OWN.to_owned());
            env.insert("NOMAD_JOB_ID".to_owned(), label(&variant.job));
            env.insert("NOMAD_SECRETS_DIR".to_owned(), secrets_dir.clone());
            env.insert("NOMAD_TASK_DIR".to_owned(), "/local".to_owned());
            let world = TemplateWorld {
                env: env.clone(),
                services: services.clone(),
            };
            let mut rendered = BTreeMap::new();
            for template in blocks(task.body(), "template") {
                let get = |k: &str| attribute(template.body(), k).and_then(string);
                let data =
                    get("data").unwrap_or_else(|| panic!("{place}: a template without data"));
                let left = get("left_delimiter").unwrap_or_else(|| "{{".to_owned());
                let right = get("right_delimiter").unwrap_or_else(|| "}}".to_owned());
                let destination = get("destination").expect("destination");
                let text = render_template(&data, &left, &right, &world);
                if matches!(
                    attribute(template.body(), "env"),
                    Some(Expression::Bool(true))
                ) {
                    for line in text.lines() {
                        if let Some((k, v)) = line.split_once('=') {
                            env.insert(k.to_owned(), v.to_owned());
                        }
                    }
                }
                rendered.insert(destination, text);
            }
            let args = strings(attribute(config, "args"));
            let interpolation = args
                .iter()
                .any(|a| a == "--dangerously-allow-env-var-interpolation")
                || env
                    .get("VECTOR_DANGEROUSLY_ALLOW_ENV_VAR_INTERPOLATION")
                    .is_some_and(|v| v == "true");
            let mut files = Vec::new();
            for pair in args.windows(2) {
                if pair[0] != "--config" && pair[0] != "-c" {
                    continue;
                }
                let path = pair[1]
                    .trim_start_matches("${NOMAD_TASK_DIR}/")
                    .trim_start_matches('/');
                let path = if pair[1].starts_with("${NOMAD_TASK_DIR}/") {
                    format!("local/{path}")
                } else {
                    path.to_owned()
                };
                let text = rendered.get(&path).unwrap_or_else(|| {
                    panic!("{place}: --config {} is rendered by no template", pair[1])
                });
                let text = if interpolation {
                    interpolate(text, &env)
                } else {
                    text.clone()
                };
                files.push((path, text));
            }
            assert!(!files.is_empty(), "{place}: Vector runs with no --config");
            // Nomad interpolates driver config (extra_hosts) with the task's environment,
            // template env files included.
            let hosts = strings(attribute(config, "extra_hosts"))
                .iter()
                .map(|h| {
                    let (name, address) = h.split_once(':').expect("name:address");
                    let address = interpolate(address, &env);
                    (name.to_owned(), address)
                })
                .collect();
            runs.push((
                variant.clone(),
                VectorRun {
                    place,
                    files,
                    own_alloc: Some(OWN.to_owned()),
                    hosts,
                    rendered,
                    secrets_dir,
                    alloc_dir: alloc_dir.clone(),
                },
            ));
        }
    }
    runs
}

#[test]
fn every_vector_of_every_job_reads_its_neighbours_not_itself_and_starts() {
    let runs = nomad_vectors();
    assert!(runs.len() >= 4, "{}", runs.len());
    for (_, run) in &runs {
        check_vector(run);
    }
}

/// The systemd Vector: the files VECTOR_CONFIG names, read as they are (no Nomad, no
/// interpolation), and not a Nomad task.
#[test]
fn the_systemd_vector_loads_the_table_its_vrl_uses_and_reads_every_task() {
    let lines = unit_lines(&drop_in());
    let config = lines
        .iter()
        .find(|(s, k, v)| s == "Service" && k == "Environment" && v.starts_with("VECTOR_CONFIG="))
        .map(|(_, _, v)| v.trim_start_matches("VECTOR_CONFIG=").to_owned())
        .expect("the drop-in names Vector's config files (it reads /etc/vector/vector.yaml only)");
    let files: Vec<(String, String)> = config
        .split(',')
        .map(|path| {
            let name = Path::new(path)
                .file_name()
                .expect("a file")
                .to_string_lossy();
            (path.to_owned(), read(&format!("vector/{name}")))
        })
        .collect();
    assert!(
        files.iter().any(|(p, _)| p == "/etc/vector/vector.yaml"),
        "vector.yaml is where the package's Vector looks first"
    );
    let run = VectorRun {
        place: "systemd".to_owned(),
        files,
        own_alloc: None,
        hosts: BTreeMap::new(),
        rendered: BTreeMap::new(),
        secrets_dir: String::new(),
        alloc_dir: "/opt/nomad/data/alloc".to_owned(),
    };
    let config = check_vector(&run);
    assert!(config.get("enrichment_tables", "nomad_allocs").is_some());
    let source = config
        .get("sources", "nomad_task_logs")
        .expect("the file source");
    // Read as it stands, the Nomad-only exclude matches no allocation.
    assert!(vector_reads(
        source,
        &format!("/opt/nomad/data/alloc/{OWN}/alloc/logs/vector.stdout.0"),
        "systemd"
    ));
}

/// Every shipped Vector config reads its file tables with the settings the validator
/// checks against, and no schema converts a column.
#[test]
fn the_shipped_vector_configs_read_the_table_as_the_validator_does() {
    use nomad_alloc_table::table::format::VECTOR_FILE_TABLE;
    use yaml_rust2::YamlLoader;
    let mut file_tables = 0;
    for path in files_under("vector", "yaml") {
        let text = std::fs::read_to_string(&path).expect("readable");
        for doc in YamlLoader::load_from_str(&text).expect("YAML") {
            let Some(tables) = doc["enrichment_tables"].as_hash() else {
                continue;
            };
            for (name, table) in tables {
                if table["type"].as_str() != Some("file") {
                    continue;
                }
                file_tables += 1;
                let what = format!("{} table {name:?}", path.display());
                let encoding = &table["file"]["encoding"];
                assert_eq!(encoding["type"].as_str(), Some("csv"), "{what}");
                let headers = match &encoding["include_headers"] {
                    Yaml::BadValue => true,
                    value => value.as_bool().expect("a boolean"),
                };
                assert_eq!(headers, VECTOR_FILE_TABLE.include_headers, "{what}");
                let delimiter = encoding["delimiter"].as_str().unwrap_or(",");
                assert_eq!(
                    delimiter.as_bytes(),
                    [VECTOR_FILE_TABLE.delimiter],
                    "{what}"
                );
                assert_eq!(
                    !matches!(table["schema"], Yaml::BadValue),
                    VECTOR_FILE_TABLE.schema,
                    "{what}"
                );
            }
        }
    }
    assert!(file_tables > 0, "no file table found in vector/");
}
