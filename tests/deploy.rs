//! The deployment files must work as shipped, against the Vector and Nomad they pin:
//! - every HCL file in `deploy/` is evaluated as `nomad job run -var …` evaluates it (HCL2
//!   variables, locals, `dynamic` blocks, `file()`, references Nomad resolves at run time left
//!   as they are), once per combination of the values its variables allow;
//! - every `nomad-alloc-table` invocation (Nomad task `config.args`, systemd
//!   `ExecStart`/`ExecStartPre`, the systemd env file) parses with the binary's own clap
//!   definition, so a renamed or removed flag fails here instead of in production;
//! - every Vector a deployment runs is given its configuration the way Vector 0.57 gets it:
//!   Nomad's template step first (`[[ env "…" ]]`, `nomadService`, `nomadVar`, with each
//!   template's delimiters), then no `${…}` interpolation unless the job turns it on; and the
//!   result reads its neighbours' logs and not its own, sends to addresses that parse, and
//!   configures every table its VRL looks up;
//! - one ACL policy name per job, in every file that applies one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Attribute, Block, Body, Expression, Structure, Value};
use nomad_alloc_table::cli::Cli;
use yaml_rust2::Yaml;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn hcl_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![repo("deploy")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("deploy/ exists") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "hcl") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn job_files() -> Vec<PathBuf> {
    hcl_files()
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with(".nomad.hcl"))
        .collect()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo(""))
        .unwrap_or(path)
        .display()
        .to_string()
}

fn blocks<'a>(body: &'a Body, identifier: &'a str) -> impl Iterator<Item = &'a Block> {
    body.blocks().filter(move |b| b.identifier() == identifier)
}

fn attribute<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

/// A string as evaluated (or, in an unevaluated body, a quoted template as written).
fn string(expr: &Expression) -> Option<String> {
    match expr {
        Expression::String(s) => Some(s.clone()),
        Expression::TemplateExpr(t) => Some(t.to_string()),
        _ => None,
    }
}

fn strings(expr: Option<&Expression>) -> Vec<String> {
    match expr {
        Some(Expression::Array(items)) => items.iter().filter_map(string).collect(),
        _ => Vec::new(),
    }
}

fn label(block: &Block) -> String {
    block
        .labels()
        .first()
        .map(|l| l.as_str().to_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Nomad's HCL2 job specifications, evaluated.

/// The roots Nomad resolves itself at run time (`${NOMAD_SECRETS_DIR}`, `${node.unique.id}`,
/// `${attr.…}`): Nomad's HCL2 parser leaves a reference it cannot resolve as it is
/// (hashicorp/nomad v1.11.3 `jobspec2/parse_test.go`, `TestParse_UndefinedVariables`). The
/// shipped jobs use environment-style names and `node`/`attr`/`meta`/`env` for those, and HCL2
/// variables, locals and iterators otherwise.
fn resolved_by_nomad(root: &str) -> bool {
    matches!(root, "node" | "attr" | "meta" | "env")
        || root.starts_with(|c: char| c.is_ascii_uppercase())
}

/// The job file's text with every run-time reference escaped (`$${`), so that evaluating it
/// leaves `${…}` in the strings, as Nomad does.
fn escape_runtime_references(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let escaped = at > 0 && rest.as_bytes()[at - 1] == b'$';
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let root: String = after
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if !escaped && resolved_by_nomad(&root) {
            out.push('$');
        }
        out.push_str("${");
        rest = after;
    }
    out.push_str(rest);
    out
}

fn func_file(args: FuncArgs) -> Result<Value, String> {
    let path = args[0].as_str().expect("a string");
    std::fs::read_to_string(repo(path))
        .map(Value::from)
        .map_err(|e| format!("file({path:?}): {e}"))
}

fn func_concat(args: FuncArgs) -> Result<Value, String> {
    let mut out = Vec::new();
    for list in args.iter() {
        out.extend(
            list.as_array()
                .ok_or("concat of a non-list")?
                .iter()
                .cloned(),
        );
    }
    Ok(Value::Array(out))
}

fn func_flatten(args: FuncArgs) -> Result<Value, String> {
    fn flat(value: &Value, out: &mut Vec<Value>) {
        match value {
            Value::Array(items) => items.iter().for_each(|i| flat(i, out)),
            other => out.push(other.clone()),
        }
    }
    let mut out = Vec::new();
    flat(&args[0], &mut out);
    Ok(Value::Array(out))
}

fn func_contains(args: FuncArgs) -> Result<Value, String> {
    let list = args[0].as_array().ok_or("contains of a non-list")?;
    Ok(Value::Bool(list.contains(&args[1])))
}

fn base_context() -> Context<'static> {
    let mut ctx = Context::new();
    ctx.declare_func(
        "file",
        FuncDef::builder().param(ParamType::String).build(func_file),
    );
    ctx.declare_func(
        "concat",
        FuncDef::builder()
            .variadic_param(ParamType::Any)
            .build(func_concat),
    );
    ctx.declare_func(
        "flatten",
        FuncDef::builder().param(ParamType::Any).build(func_flatten),
    );
    ctx.declare_func(
        "contains",
        FuncDef::builder()
            .params([ParamType::Any, ParamType::Any])
            .build(func_contains),
    );
    ctx
}

fn eval(expr: &Expression, ctx: &Context, place: &str) -> Value {
    expr.evaluate(ctx)
        .unwrap_or_else(|e| panic!("{place}: {expr} does not evaluate: {e}"))
}

/// A body with every attribute evaluated and every `dynamic` block expanded (HCL's dynblock,
/// which Nomad applies to the job: `jobspec2/types.config.go`).
fn expand(body: &Body, ctx: &Context, place: &str) -> Body {
    let mut out = Body::builder();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(a) => {
                let value = eval(a.expr(), ctx, place);
                out = out.add_attribute(Attribute::new(a.key(), Expression::from(value)));
            }
            Structure::Block(b) if b.identifier() == "dynamic" => {
                let kind = label(b);
                let iterator = match attribute(b.body(), "iterator") {
                    Some(Expression::Variable(v)) => v.as_str().to_owned(),
                    Some(other) => panic!("{place}: iterator {other}"),
                    None => kind.clone(),
                };
                let for_each = attribute(b.body(), "for_each")
                    .unwrap_or_else(|| panic!("{place}: dynamic {kind:?} without for_each"));
                let items: Vec<(Value, Value)> = match eval(for_each, ctx, place) {
                    Value::Array(items) => items
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Value::from(i as u64), v))
                        .collect(),
                    Value::Object(map) => {
                        map.into_iter().map(|(k, v)| (Value::from(k), v)).collect()
                    }
                    other => panic!("{place}: for_each {other:?}"),
                };
                let content = blocks(b.body(), "content")
                    .next()
                    .unwrap_or_else(|| panic!("{place}: dynamic {kind:?} without content"));
                for (key, value) in items {
                    let mut child = ctx.clone();
                    let mut it = hcl::Map::new();
                    it.insert("key".to_owned(), key);
                    it.insert("value".to_owned(), value);
                    child.declare_var(iterator.as_str(), Value::Object(it));
                    let labels: Vec<String> = match attribute(b.body(), "labels") {
                        Some(l) => match eval(l, &child, place) {
                            Value::Array(ls) => ls
                                .iter()
                                .map(|l| l.as_str().expect("string labels").to_owned())
                                .collect(),
                            other => panic!("{place}: labels {other:?}"),
                        },
                        None => Vec::new(),
                    };
                    out = out.add_block(
                        Block::builder(kind.as_str())
                            .add_labels(labels)
                            .add_structures(expand(content.body(), &child, place).into_inner())
                            .build(),
                    );
                }
            }
            Structure::Block(b) => {
                out = out.add_block(
                    Block::builder(b.identifier())
                        .add_labels(b.labels().iter().map(|l| l.as_str().to_owned()))
                        .add_structures(expand(b.body(), ctx, place).into_inner())
                        .build(),
                );
            }
        }
    }
    out.build()
}

/// One evaluation of a job file: the `-var` values it was given and the job as Nomad sees it.
#[derive(Clone)]
struct Variant {
    file: PathBuf,
    vars: Vec<(String, String)>,
    job: Block,
}

impl Variant {
    fn place(&self) -> String {
        let vars: Vec<String> = self
            .vars
            .iter()
            .map(|(k, v)| format!("-var {k}={v}"))
            .collect();
        format!("{} {}", relative(&self.file), vars.join(" "))
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn groups(&self) -> impl Iterator<Item = &Block> {
        blocks(self.job.body(), "group")
    }

    fn tasks(&self) -> impl Iterator<Item = &Block> {
        self.groups().flat_map(|g| blocks(g.body(), "task"))
    }

    fn header(&self) -> String {
        std::fs::read_to_string(&self.file)
            .expect("readable")
            .lines()
            .take_while(|l| l.starts_with('#') || l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The values a variable may take: its `validation`'s `contains([…], var.x)` list, else its
/// default alone.
fn allowed_values(variable: &Block, place: &str) -> Vec<String> {
    let ctx = base_context();
    let default = attribute(variable.body(), "default")
        .map(|d| eval(d, &ctx, place))
        .and_then(|v| v.as_str().map(str::to_owned));
    for validation in blocks(variable.body(), "validation") {
        if let Some(Expression::FuncCall(call)) = attribute(validation.body(), "condition")
            && call.name.name.as_str() == "contains"
            && let Some(Expression::Array(values)) = call.args.first()
        {
            return values.iter().filter_map(string).collect();
        }
    }
    vec![default.unwrap_or_else(|| panic!("{place}: variable {} has no default", label(variable)))]
}

/// Every combination of the values a job file's variables allow, each evaluated.
fn variants(file: &Path) -> Vec<Variant> {
    let place = relative(file);
    let text = std::fs::read_to_string(file).expect("readable");
    let body = hcl::parse(&escape_runtime_references(&text))
        .unwrap_or_else(|e| panic!("{place} does not parse: {e}"));
    let variables: Vec<(String, Vec<String>)> = blocks(&body, "variable")
        .map(|v| (label(v), allowed_values(v, &place)))
        .collect();
    let mut combinations: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (name, values) in &variables {
        combinations = combinations
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((name.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    combinations
        .into_iter()
        .map(|vars| {
            let mut ctx = base_context();
            let mut var = hcl::Map::new();
            for (k, v) in &vars {
                var.insert(k.clone(), Value::from(v.as_str()));
            }
            ctx.declare_var("var", Value::Object(var));
            // Locals may use each other: evaluate until every one resolves.
            let pending: Vec<&Attribute> = blocks(&body, "locals")
                .flat_map(|l| l.body().attributes())
                .collect();
            let mut locals = hcl::Map::new();
            for _ in 0..=pending.len() {
                for a in &pending {
                    if let Ok(value) = a.expr().evaluate(&ctx) {
                        locals.insert(a.key().to_owned(), value);
                    }
                }
                ctx.declare_var("local", Value::Object(locals.clone()));
            }
            let place = format!("{place} {vars:?}");
            let job = blocks(&body, "job")
                .next()
                .unwrap_or_else(|| panic!("{place}: no job"));
            let job = Block::builder("job")
                .add_labels(job.labels().iter().map(|l| l.as_str().to_owned()))
                .add_structures(expand(job.body(), &ctx, &place).into_inner())
                .build();
            Variant {
                file: file.to_owned(),
                vars,
                job,
            }
        })
        .collect()
}

fn all_variants() -> Vec<Variant> {
    job_files().iter().flat_map(|f| variants(f)).collect()
}

// ---------------------------------------------------------------------------------------------
// The exporter's invocations.

/// One task that runs nomad-alloc-table.
struct Invocation {
    task: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    /// `(hook, sidecar)` of the task's lifecycle block.
    lifecycle: Option<(String, bool)>,
}

fn task_env(task: &Block) -> BTreeMap<String, String> {
    blocks(task.body(), "env")
        .flat_map(|e| e.body().attributes())
        .filter_map(|a| string(a.expr()).map(|v| (a.key().to_owned(), v)))
        .collect()
}

fn task_config(task: &Block) -> Option<&Body> {
    blocks(task.body(), "config").next().map(Block::body)
}

/// Whether a task runs nomad-alloc-table: its command (raw_exec), or its image (docker, whose
/// entrypoint is the binary).
fn runs_exporter(task: &Block) -> bool {
    task_config(task).is_some_and(|config| {
        let command = attribute(config, "command").and_then(string);
        let image = attribute(config, "image").and_then(string);
        command.is_some_and(|c| c.ends_with("nomad-alloc-table"))
            || image.is_some_and(|i| i.starts_with("nomad-alloc-table:"))
    })
}

fn runs_vector(task: &Block) -> bool {
    task_config(task).is_some_and(|config| {
        let command = attribute(config, "command").and_then(string);
        let image = attribute(config, "image").and_then(string);
        command.is_some_and(|c| c.ends_with("/vector"))
            || image.is_some_and(|i| i.starts_with("timberio/vector:"))
    })
}

fn invocations(variant: &Variant) -> Vec<Invocation> {
    variant
        .tasks()
        .filter(|t| runs_exporter(t))
        .map(|task| {
            let config = task_config(task).expect("config");
            let args = match attribute(config, "args") {
                Some(Expression::Array(items)) => items
                    .iter()
                    .map(|i| string(i).expect("string args"))
                    .collect(),
                _ => panic!(
                    "{}: task {} runs nomad-alloc-table without args",
                    variant.place(),
                    label(task)
                ),
            };
            let lifecycle = blocks(task.body(), "lifecycle").next().map(|l| {
                let hook = attribute(l.body(), "hook")
                    .and_then(string)
                    .unwrap_or_default();
                let sidecar =
                    matches!(attribute(l.body(), "sidecar"), Some(Expression::Bool(true)));
                (hook, sidecar)
            });
            Invocation {
                task: label(task),
                args,
                env: task_env(task),
                lifecycle,
            }
        })
        .collect()
}

fn assert_parses(args: &[String], place: &str) {
    let argv = std::iter::once("nomad-alloc-table".to_owned()).chain(args.iter().cloned());
    if let Err(e) = Cli::try_parse_from(argv) {
        panic!(
            "{place}: `nomad-alloc-table {}` does not parse:\n{e}",
            args.join(" ")
        );
    }
}

fn value_of<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

#[test]
fn every_hcl_file_parses_and_every_job_evaluates_for_every_choice_of_its_variables() {
    let files = hcl_files();
    assert!(files.len() >= 3, "{files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        hcl::parse(&escape_runtime_references(&text))
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
    }
    let variants = all_variants();
    assert!(variants.len() >= 3, "{}", variants.len());
}

#[test]
fn every_job_runs_dump_before_vector_and_run_beside_it_with_flags_that_exist() {
    let mut exporter_variants = 0;
    for variant in all_variants() {
        let found = invocations(&variant);
        if found.is_empty() {
            continue;
        }
        exporter_variants += 1;
        let place = variant.place();
        for invocation in &found {
            assert_parses(
                &invocation.args,
                &format!("{place} task {}", invocation.task),
            );
        }
        let dump = found
            .iter()
            .find(|i| i.args.first().map(String::as_str) == Some("dump"))
            .unwrap_or_else(|| panic!("{place}: no dump task"));
        assert_eq!(
            dump.lifecycle,
            Some(("prestart".to_owned(), false)),
            "{place}: dump must finish before Vector"
        );
        let run = found
            .iter()
            .find(|i| i.args.first().map(String::as_str) == Some("run"))
            .unwrap_or_else(|| panic!("{place}: no run task"));
        assert_eq!(
            run.lifecycle,
            Some(("prestart".to_owned(), true)),
            "{place}: run is a prestart sidecar"
        );
        assert_eq!(
            value_of(&dump.args, "--output"),
            value_of(&run.args, "--output"),
            "{place}: dump and run publish the same table"
        );
        // The reload reaches the one Vector of this allocation: through Nomad, never by a
        // process name that a second Vector on the host would make ambiguous.
        assert_eq!(
            value_of(&run.args, "--reload"),
            Some("nomad-task"),
            "{place}: run reloads the Vector task through Nomad"
        );
        let reloaded = value_of(&run.args, "--reload-task").expect("--reload-task");
        assert!(
            variant
                .tasks()
                .any(|t| label(t) == reloaded && runs_vector(t)),
            "{place}: --reload-task {reloaded} names no Vector task of the job"
        );
    }
    assert!(
        exporter_variants >= 4,
        "the exporter under raw_exec and docker, node and cluster scope"
    );
}

#[test]
fn every_exporter_finds_its_node_and_alloc_dir_without_agent_read() {
    // The shipped policy grants no agent:read; without a node ID (and, for run, an alloc dir)
    // the exporter asks /v1/agent/self and gets 403.
    let policy = hcl::parse(&read("deploy/nomad/acl-policy.hcl")).expect("policy");
    let grants_agent = blocks(&policy, "agent").next().is_some();
    if grants_agent {
        return;
    }
    for variant in all_variants() {
        for invocation in invocations(&variant) {
            if value_of(&invocation.args, "--scope") == Some("cluster") {
                continue;
            }
            let place = format!("{} task {}", variant.place(), invocation.task);
            assert_eq!(
                invocation.env.get("NOMAD_NODE_ID").map(String::as_str),
                Some("${node.unique.id}"),
                "{place}: the node ID"
            );
            if invocation.args[0] == "run" {
                assert!(
                    value_of(&invocation.args, "--alloc-dir").is_some(),
                    "{place}: --alloc-dir"
                );
            }
        }
    }
    let env = systemd_env();
    let node_id = env
        .get("NOMAD_NODE_ID")
        .expect("deploy/systemd/env.example sets NOMAD_NODE_ID (a required line, not a comment)");
    assert!(!node_id.is_empty());
    assert!(
        env.contains_key("NOMAD_ALLOC_TABLE_ALLOC_DIR"),
        "the alloc dir in the env file, where `check` reads it too"
    );
}

#[test]
fn files_the_jobs_load_exist() {
    // file() fails the evaluation when a file is missing; each job loads a Vector config.
    for variant in all_variants() {
        let templates = variant
            .tasks()
            .flat_map(|t| blocks(t.body(), "template"))
            .count();
        assert!(templates >= 1, "{}: no template", variant.place());
    }
}

// ---------------------------------------------------------------------------------------------
// ACL policies.

/// Every `nomad acl policy apply` in a text: `(name, job)` (`job` without `-job`).
fn policy_applications(text: &str) -> Vec<(String, Option<String>)> {
    const APPLY: &str = "nomad acl policy apply";
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(APPLY) {
        let after = &rest[at + APPLY.len()..];
        // A command names the policy file; a mention in prose (`nomad acl policy apply`
        // without …) is none.
        let Some(end) = after
            .find("acl-policy.hcl")
            .filter(|end| *end < 200 && !after[..*end].contains('`'))
        else {
            rest = after;
            continue;
        };
        let words: Vec<&str> = after[..end]
            .split(|c: char| c.is_whitespace() || c == '\\' || c == '`' || c == '#')
            .filter(|w| !w.is_empty())
            .collect();
        let mut job = None;
        let mut plain = Vec::new();
        let mut i = 0;
        while i < words.len() {
            match words[i] {
                "-job" => {
                    job = Some(words[i + 1].to_owned());
                    i += 2;
                }
                "-namespace" | "-description" => i += 2,
                w if w.starts_with('-') => i += 1,
                w => {
                    plain.push(w);
                    i += 1;
                }
            }
        }
        // The name, then the file path (cut off above, with its directory left as a word).
        let name = plain
            .iter()
            .find(|w| !w.contains('/'))
            .unwrap_or_else(|| panic!("`{APPLY}` without a name: {words:?}"));
        found.push(((*name).to_owned(), job));
        rest = &after[end..];
    }
    found
}

#[test]
fn one_acl_policy_name_per_job_in_every_file_that_applies_one() {
    let mut texts: Vec<(String, String)> = hcl_files()
        .iter()
        .map(|f| (relative(f), std::fs::read_to_string(f).expect("readable")))
        .collect();
    texts.push(("README.md".to_owned(), read("README.md")));
    let mut jobs_of: BTreeMap<String, BTreeSet<Option<String>>> = BTreeMap::new();
    for (_, text) in &texts {
        for (name, job) in policy_applications(text) {
            jobs_of.entry(name).or_default().insert(job);
        }
    }
    for (name, jobs) in &jobs_of {
        assert_eq!(
            jobs.len(),
            1,
            "policy {name} is applied to {jobs:?}: a policy belongs to one job, and applying it \
             with another -job (or none) takes it away from the first, whose exporter then gets 403"
        );
    }
    // Each job whose exporter uses its workload identity has a policy of its own in its header.
    for variant in all_variants() {
        let identity = variant
            .tasks()
            .any(|t| runs_exporter(t) && blocks(t.body(), "identity").next().is_some());
        if !identity {
            continue;
        }
        let job = label(&variant.job);
        let applied = policy_applications(&variant.header());
        assert!(
            applied
                .iter()
                .any(|(_, j)| j.as_deref() == Some(job.as_str())),
            "{}: its header applies no policy to job {job}",
            variant.place()
        );
    }
}

#[test]
fn the_acl_policy_grants_what_the_exporter_needs() {
    let policy = hcl::parse(&read("deploy/nomad/acl-policy.hcl")).expect("policy");
    let node = blocks(&policy, "node").next().expect("a node rule");
    assert_eq!(
        attribute(node.body(), "policy").and_then(string).as_deref(),
        Some("read")
    );
    let every_namespace = blocks(&policy, "namespace")
        .find(|b| label(b) == "*")
        .expect("namespace \"*\"");
    assert!(
        strings(attribute(every_namespace.body(), "capabilities")).contains(&"read-job".to_owned())
    );
    let default = blocks(&policy, "namespace")
        .find(|b| label(b) == "default")
        .expect("namespace \"default\"");
    assert!(
        strings(attribute(default.body(), "capabilities")).contains(&"alloc-lifecycle".to_owned()),
        "the jobs reload Vector with --reload nomad-task"
    );
}

// ---------------------------------------------------------------------------------------------
// systemd.

/// `KEY=VALUE` lines of the systemd env example that are set (not comments).
fn systemd_env() -> BTreeMap<String, String> {
    read("deploy/systemd/env.example")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// A unit file's `(section, key, value)` lines.
fn unit_lines(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((section.clone(), k.to_owned(), v.to_owned()));
        }
    }
    out
}

fn drop_in() -> String {
    read("deploy/systemd/vector.service.d/10-nomad-alloc-table.conf")
}

#[test]
fn systemd_units_invoke_commands_and_flags_that_exist() {
    let unit = read("deploy/systemd/nomad-alloc-table.service");
    let mut checked = 0;
    for (_, key, command) in unit_lines(&unit) {
        if !matches!(key.as_str(), "ExecStart" | "ExecStartPre") {
            continue;
        }
        let mut words = command.split_whitespace();
        let program = words.next().expect("a program");
        if program == "-+/usr/bin/setfacl" {
            // As root: the alloc dir (Nomad's 0711) made listable by the exporter's user.
            assert!(command.contains("-m u:nomad-alloc-table:rx"), "{command}");
            continue;
        }
        assert!(program.ends_with("nomad-alloc-table"), "{command}");
        let args: Vec<String> = words.map(str::to_owned).collect();
        assert_parses(&args, &format!("systemd {key}"));
        checked += 1;
    }
    assert_eq!(checked, 2, "ExecStartPre (dump) and ExecStart (run)");
    // Every setting of the env file is one the binary reads (clap's env names).
    let mut names = BTreeSet::new();
    let command = Cli::command();
    let mut commands = vec![&command];
    while let Some(c) = commands.pop() {
        for arg in c.get_arguments() {
            if let Some(env) = arg.get_env() {
                names.insert(env.to_string_lossy().into_owned());
            }
        }
        commands.extend(c.get_subcommands());
    }
    let example = read("deploy/systemd/env.example");
    for line in example.lines() {
        let line = line.trim_start_matches("# ").trim();
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        if key.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !key.is_empty() {
            assert!(
                names.contains(key),
                "env.example sets {key}, which the binary does not read"
            );
        }
    }
    let drop_in = drop_in();
    assert!(drop_in.contains("After=nomad-alloc-table.service"));
    assert!(drop_in.contains("ExecStartPre=-+/usr/bin/setfacl -m u:vector:rx"));
}

#[test]
fn a_failed_first_dump_cannot_leave_vector_down_for_good() {
    // Vector's packaged unit: Restart=always, StartLimitInterval=10, StartLimitBurst=5 in
    // [Service], systemd's default RestartSec=100ms (vectordotdev/vector v0.57.0
    // distribution/systemd/vector.service). The drop-in lifts the limit where systemd reads it
    // ([Unit]) and spaces the restarts.
    let lines = unit_lines(&drop_in());
    let get = |section: &str, key: &str| {
        lines
            .iter()
            .find(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.clone())
    };
    assert_eq!(get("Unit", "StartLimitIntervalSec").as_deref(), Some("0"));
    let restart_sec = get("Service", "RestartSec").expect("RestartSec= in [Service]");
    let seconds: f64 = restart_sec
        .trim_end_matches('s')
        .parse()
        .expect("RestartSec in seconds");
    assert!(seconds >= 1.0, "RestartSec={restart_sec}");
    assert!(
        !lines
            .iter()
            .any(|(s, k, _)| s == "Service" && k.starts_with("StartLimit")),
        "StartLimit…= belongs in [Unit]"
    );
}

/// A stand-in for Vector's packaged unit with the settings that matter here (written from
/// vectordotdev/vector v0.57.0 `distribution/systemd/vector.service`).
const VECTOR_UNIT: &str = "[Unit]\nDescription=Vector\nAfter=network-online.target\nRequires=network-online.target\n\n[Service]\nUser=vector\nGroup=vector\nExecStartPre=/usr/bin/vector validate\nExecStart=/usr/bin/vector\nExecReload=/usr/bin/vector validate --no-environment\nExecReload=/bin/kill -HUP $MAINPID\nRestart=always\nAmbientCapabilities=CAP_NET_BIND_SERVICE\nEnvironmentFile=-/etc/default/vector\nStartLimitInterval=10\nStartLimitBurst=5\n\n[Install]\nWantedBy=multi-user.target\n";

#[test]
fn systemd_analyze_verify_accepts_the_units() {
    let Ok(which) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze is not installed: the units are not verified");
        return;
    };
    assert!(which.status.success());
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let write = |path: &str, text: &str, mode: u32| {
        let path = r.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let units = "usr/lib/systemd/system";
    write(&format!("{units}/vector.service"), VECTOR_UNIT, 0o644);
    write(
        &format!("{units}/nomad-alloc-table.service"),
        &read("deploy/systemd/nomad-alloc-table.service"),
        0o644,
    );
    write(
        "etc/systemd/system/vector.service.d/10-nomad-alloc-table.conf",
        &drop_in(),
        0o644,
    );
    for target in [
        "sysinit.target",
        "basic.target",
        "shutdown.target",
        "network-online.target",
        "multi-user.target",
    ] {
        write(
            &format!("{units}/{target}"),
            "[Unit]\nDescription=stand-in\n",
            0o644,
        );
    }
    write(
        &format!("{units}/nomad.service"),
        "[Unit]\nDescription=stand-in\n[Service]\nExecStart=/usr/bin/nomad\n",
        0o644,
    );
    for program in [
        "usr/bin/vector",
        "usr/bin/nomad",
        "usr/bin/nomad-alloc-table",
        "usr/bin/setfacl",
        "bin/sh",
        "bin/kill",
    ] {
        write(program, "#!/bin/true\n", 0o755);
    }
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", r.display()))
        .args(["vector.service", "nomad-alloc-table.service"])
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn the_package_ships_vectors_drop_in_as_an_example_only() {
    let manifest = read("Cargo.toml");
    let deb = manifest
        .split("[package.metadata.deb]")
        .nth(1)
        .expect("deb metadata");
    let deb = deb.split("\n[").next().expect("section");
    for line in deb.lines().filter(|l| l.contains("vector.service.d")) {
        assert!(
            line.contains("usr/share/doc/nomad-alloc-table/examples/"),
            "a live drop-in starts the exporter with the unedited env file: {line}"
        );
    }
}

#[test]
fn the_systemd_reload_target_is_unambiguous() {
    // By process name, two Vectors on a host (a systemd one and a Nomad task) mean no reload
    // ever; the drop-in writes the unit's main PID, which the exporter signals.
    let env = systemd_env();
    let pidfile = env
        .get("NOMAD_ALLOC_TABLE_VECTOR_PIDFILE")
        .expect("the env file names Vector's PID file");
    let lines = unit_lines(&drop_in());
    assert!(
        lines.iter().any(|(s, k, v)| s == "Service"
            && k == "ExecStartPost"
            && v.contains("$MAINPID")
            && v.contains(pidfile.as_str())),
        "the drop-in writes $MAINPID to {pidfile}"
    );
    let runtime = Path::new(pidfile).parent().expect("a directory");
    assert!(
        lines.iter().any(|(s, k, v)| s == "Service"
            && k == "RuntimeDirectory"
            && runtime == Path::new("/run").join(v)),
        "{pidfile} lies in Vector's RuntimeDirectory (removed when Vector stops)"
    );
}

// ---------------------------------------------------------------------------------------------
// Nomad's template step.

const OWN: &str = "0b6f4a1c-2d3e-4f50-8a9b-0c1d2e3f4a5b";
const NEIGHBOUR: &str = "5e0c9d1a-2b7f-4c3e-9a61-0d2f8b7c4e11";
const SERVICE_ADDRESS: &str = "10.0.0.7";

/// What a task's templates see: its environment and the cluster's Nomad services.
struct TemplateWorld {
    env: BTreeMap<String, String>,
    /// Services registered with `provider = "nomad"`: name → (address, port).
    services: BTreeMap<String, (String, u16)>,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Env(String),
    Field(String),
    Break,
    Range {
        service: String,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    WithVar {
        path: String,
        body: Vec<Node>,
    },
}

/// The template's actions, in the subset of consul-template the shipped files use; any other
/// action fails the test (add it here, with Nomad's meaning, before using it).
fn parse_template(text: &str, left: &str, right: &str) -> Vec<Node> {
    fn quoted(words: &str) -> String {
        let start = words.find('"').expect("a quoted argument") + 1;
        let end = words[start..].find('"').expect("closing quote") + start;
        words[start..end].to_owned()
    }
    let mut stack: Vec<(Vec<Node>, Option<Node>, bool)> = vec![(Vec::new(), None, false)];
    let mut rest = text;
    loop {
        let Some(at) = rest.find(left) else {
            stack
                .last_mut()
                .expect("frame")
                .0
                .push(Node::Text(rest.to_owned()));
            break;
        };
        stack
            .last_mut()
            .expect("frame")
            .0
            .push(Node::Text(rest[..at].to_owned()));
        let after = &rest[at + left.len()..];
        let end = after
            .find(right)
            .unwrap_or_else(|| panic!("unclosed {left} in template"));
        let action = after[..end].trim();
        rest = &after[end + right.len()..];
        if action.starts_with("/*") {
            continue;
        }
        if let Some(args) = action.strip_prefix("env ") {
            stack
                .last_mut()
                .expect("frame")
                .0
                .push(Node::Env(quoted(args)));
        } else if let Some(field) = action.strip_prefix('.') {
            stack
                .last_mut()
                .expect("frame")
                .0
                .push(Node::Field(field.to_owned()));
        } else if action == "break" {
            stack.last_mut().expect("frame").0.push(Node::Break);
        } else if let Some(args) = action.strip_prefix("range nomadService ") {
            assert!(
                args.trim().starts_with('"'),
                "nomadService with more arguments than a name: {action}"
            );
            let open = Node::Range {
                service: quoted(args),
                body: Vec::new(),
                otherwise: Vec::new(),
            };
            stack.push((Vec::new(), Some(open), false));
        } else if let Some(args) = action.strip_prefix("with nomadVar ") {
            let open = Node::WithVar {
                path: quoted(args),
                body: Vec::new(),
            };
            stack.push((Vec::new(), Some(open), false));
        } else if action == "else" {
            let frame = stack.last_mut().expect("frame");
            assert!(
                matches!(frame.1, Some(Node::Range { .. })),
                "else outside a range"
            );
            if let Some(Node::Range { body, .. }) = &mut frame.1 {
                *body = std::mem::take(&mut frame.0);
            }
            frame.2 = true;
        } else if action == "end" {
            let (nodes, open, in_else) = stack.pop().expect("an open action");
            let node = match open.expect("end without an open action") {
                Node::Range { service, body, .. } => {
                    if in_else {
                        Node::Range {
                            service,
                            body,
                            otherwise: nodes,
                        }
                    } else {
                        Node::Range {
                            service,
                            body: nodes,
                            otherwise: Vec::new(),
                        }
                    }
                }
                Node::WithVar { path, .. } => Node::WithVar { path, body: nodes },
                other => unreachable!("{other:?}"),
            };
            stack.last_mut().expect("frame").0.push(node);
        } else {
            panic!("template action {action:?} is not modelled by this test");
        }
    }
    assert_eq!(stack.len(), 1, "unclosed range or with in template");
    stack.pop().expect("frame").0
}

/// Renders `nodes`; `true` when a `break` stopped it.
fn render_nodes(
    nodes: &[Node],
    world: &TemplateWorld,
    dot: Option<&BTreeMap<String, String>>,
    out: &mut String,
) -> bool {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Env(name) => out.push_str(world.env.get(name).map_or("", String::as_str)),
            Node::Field(f) => out.push_str(
                dot.and_then(|d| d.get(f))
                    .unwrap_or_else(|| panic!("template field .{f} has no value here")),
            ),
            Node::Break => return true,
            Node::Range {
                service,
                body,
                otherwise,
            } => match world.services.get(service) {
                Some((address, port)) => {
                    let instance = BTreeMap::from([
                        ("Address".to_owned(), address.clone()),
                        ("Port".to_owned(), port.to_string()),
                        ("Name".to_owned(), service.clone()),
                    ]);
                    render_nodes(body, world, Some(&instance), out);
                }
                None => {
                    render_nodes(otherwise, world, dot, out);
                }
            },
            Node::WithVar { body, .. } => {
                let pem = BTreeMap::from([
                    ("ca".to_owned(), "CA PEM".to_owned()),
                    ("cert".to_owned(), "CERT PEM".to_owned()),
                    ("key".to_owned(), "KEY PEM".to_owned()),
                    ("token".to_owned(), "TOKEN".to_owned()),
                ]);
                render_nodes(body, world, Some(&pem), out);
            }
        }
    }
    false
}

fn render_template(text: &str, left: &str, right: &str, world: &TemplateWorld) -> String {
    let mut out = String::new();
    render_nodes(&parse_template(text, left, right), world, None, &mut out);
    out
}

/// The Nomad services the shipped jobs register (provider "nomad"), each at a made-up address
/// and its static port (else a dynamic one).
fn nomad_services() -> BTreeMap<String, (String, u16)> {
    let mut services = BTreeMap::new();
    for variant in all_variants() {
        for group in variant.groups() {
            let ports: BTreeMap<String, u16> = blocks(group.body(), "network")
                .flat_map(|n| blocks(n.body(), "port"))
                .map(|p| {
                    let port = attribute(p.body(), "static")
                        .and_then(|s| s.to_string().parse().ok())
                        .unwrap_or(23456);
                    (label(p), port)
                })
                .collect();
            let group_services = blocks(group.body(), "service");
            let task_services =
                blocks(group.body(), "task").flat_map(|t| blocks(t.body(), "service"));
            for service in group_services.chain(task_services) {
                if attribute(service.body(), "provider")
                    .and_then(string)
                    .as_deref()
                    != Some("nomad")
                {
                    continue;
                }
                let name = attribute(service.body(), "name")
                    .and_then(string)
                    .expect("name");
                let port_label = attribute(service.body(), "port")
                    .and_then(string)
                    .expect("port");
                let port = *ports.get(&port_label).unwrap_or(&23456);
                services.insert(name, (SERVICE_ADDRESS.to_owned(), port));
            }
        }
    }
    services
}

// ---------------------------------------------------------------------------------------------
// Vector 0.57 reading its configuration.

/// Vector's `${VAR}`/`${VAR:-default}` interpolation, which 0.57 applies only when turned on
/// (`--dangerously-allow-env-var-interpolation`, vectordotdev/vector#25699).
fn interpolate(text: &str, env: &BTreeMap<String, String>) -> String {
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
struct VectorRun {
    place: String,
    /// `(file, text)` as Vector reads it.
    files: Vec<(String, String)>,
    /// The allocation Vector runs in, when it is a Nomad task.
    own_alloc: Option<String>,
    /// The task's `extra_hosts` (name → address) and the templates' rendered files.
    hosts: BTreeMap<String, String>,
    rendered: BTreeMap<String, String>,
    secrets_dir: String,
}

/// Vector's merged configuration: components by kind and id.
#[derive(Default)]
struct VectorConfig {
    components: BTreeMap<(String, String), Yaml>,
}

const KINDS: [&str; 4] = ["sources", "transforms", "sinks", "enrichment_tables"];

impl VectorRun {
    fn config(&self) -> VectorConfig {
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
    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a Yaml)> {
        self.components
            .iter()
            .filter(move |((k, _), _)| k == kind)
            .map(|((_, id), c)| (id.as_str(), c))
    }

    fn get(&self, kind: &str, id: &str) -> Option<&Yaml> {
        self.components.get(&(kind.to_owned(), id.to_owned()))
    }
}

fn yaml_strings(yaml: &Yaml) -> Vec<String> {
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
fn vector_reads(source: &Yaml, path: &str, place: &str) -> bool {
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
fn valid_address(address: &str) -> bool {
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
fn tables_used(vrl: &str) -> Vec<String> {
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
fn check_vector(run: &VectorRun) -> VectorConfig {
    let place = &run.place;
    let config = run.config();
    let log = |alloc: &str, file: &str| format!("/opt/nomad/data/alloc/{alloc}/alloc/logs/{file}");
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
fn nomad_vectors() -> Vec<(Variant, VectorRun)> {
    let services = nomad_services();
    let mut runs = Vec::new();
    for variant in all_variants() {
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
                format!("/opt/nomad/data/alloc/{OWN}/{}/secrets", label(&task))
            };
            let mut env: BTreeMap<String, String> = task_env(&task);
            env.insert("NOMAD_ALLOC_ID".to_owned(), OWN.to_owned());
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

#[test]
fn agents_reach_the_aggregator_by_nomad_service_and_verify_its_certificate() {
    let runs = nomad_vectors();
    let services = nomad_services();
    let mut topologies = BTreeSet::new();
    for (_, run) in &runs {
        let config = run.config();
        for (_, sink) in config.of_kind("sinks") {
            if sink["type"].as_str() != Some("vector") {
                continue;
            }
            let place = &run.place;
            let address = sink["address"].as_str().expect("an address");
            let (host, port) = address.rsplit_once(':').expect("host:port");
            // The address comes from Nomad's service discovery: the port is the registered
            // service's, and the host resolves to its address inside the task.
            let (service_address, service_port) = services
                .values()
                .find(|(_, p)| p.to_string() == port)
                .unwrap_or_else(|| {
                    panic!("{place}: {address} is no registered Nomad service's port")
                });
            let resolved = run.hosts.get(host).map(String::as_str).unwrap_or(host);
            assert_eq!(
                resolved, service_address,
                "{place}: {host} does not lead to the aggregator (only docker's extra_hosts make a \
             name resolve inside the task)"
            );
            assert_eq!(port, service_port.to_string());
            // verify_hostname checks the name connected to: the aggregator's certificate must
            // carry it, as the aggregator job's header says.
            assert_eq!(
                sink["tls"]["verify_hostname"].as_bool(),
                Some(true),
                "{place}"
            );
            assert_eq!(
                sink["tls"]["verify_certificate"].as_bool(),
                Some(true),
                "{place}"
            );
            let aggregator_header = read("deploy/nomad/vector-aggregator.nomad.hcl");
            assert!(
                aggregator_header.contains(&format!("DNS:{host}")),
                "{place}: the aggregator's certificate is not said to carry DNS:{host}"
            );
            // The client certificate and key are rendered (from Nomad Variables) where the sink
            // reads them.
            for key in ["ca_file", "crt_file", "key_file"] {
                let path = sink["tls"][key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{place}: tls.{key}"));
                let relative = path
                    .strip_prefix(&run.secrets_dir)
                    .map(|p| format!("secrets{p}"))
                    .unwrap_or_else(|| {
                        panic!("{place}: tls.{key} {path} is not in the task's secrets")
                    });
                let pem = run
                    .rendered
                    .get(&relative)
                    .unwrap_or_else(|| panic!("{place}: no template renders {relative}"));
                assert!(pem.contains("PEM"), "{place}: {relative} from nomadVar");
            }
            let inputs = yaml_strings(&sink["inputs"]);
            let labelled = inputs.iter().all(|i| config.get("transforms", i).is_some());
            let raw = inputs.iter().all(|i| {
                config
                    .get("sources", i)
                    .is_some_and(|s| s["type"].as_str() == Some("file"))
            });
            if labelled {
                topologies.insert("labels at the edge");
            }
            if raw && config.of_kind("enrichment_tables").next().is_none() {
                topologies.insert("forward-only, no table on the node");
            }
        }
    }
    assert_eq!(
        topologies,
        BTreeSet::from(["labels at the edge", "forward-only, no table on the node"]),
        "a shipped job runs each kind of agent"
    );
}

#[test]
fn the_two_agent_sinks_differ_only_in_their_input() {
    let sink = |path: &str| {
        let yaml = yaml_rust2::YamlLoader::load_from_str(&read(path))
            .expect("YAML")
            .remove(0);
        let mut sink = yaml["sinks"]["aggregator"].clone();
        if let Yaml::Hash(h) = &mut sink {
            h.remove(&Yaml::String("inputs".to_owned()));
        }
        sink
    };
    assert_eq!(sink("vector/agent.yaml"), sink("vector/agent-forward.yaml"));
}

#[test]
fn aggregators_label_with_a_table_only_where_the_agents_do_not() {
    let runs = nomad_vectors();
    let mut labels = BTreeSet::new();
    for (variant, run) in &runs {
        let config = run.config();
        let Some(source) = config.get("sources", "agents") else {
            continue;
        };
        let place = &run.place;
        assert_eq!(source["type"].as_str(), Some("vector"), "{place}");
        assert_eq!(source["tls"]["enabled"].as_bool(), Some(true), "{place}");
        assert_eq!(
            source["tls"]["verify_certificate"].as_bool(),
            Some(true),
            "{place}: only agents with a certificate from the CA may send"
        );
        let topology = variant.var("topology").unwrap_or_default();
        let labelled_here = config.get("transforms", "nomad_labelled").is_some();
        assert_eq!(
            labelled_here,
            topology == "forward-agent",
            "{place}: an aggregator labels exactly when its agents forward raw lines"
        );
        if labelled_here {
            let table = config
                .get("enrichment_tables", "nomad_allocs")
                .expect("the cluster table");
            assert_eq!(
                table["file"]["path"].as_str(),
                Some("/var/lib/nomad-alloc-table/cluster.csv")
            );
            let exporter = invocations(variant);
            assert!(
                exporter
                    .iter()
                    .all(|i| value_of(&i.args, "--scope") == Some("cluster")
                        && value_of(&i.args, "--output") == table["file"]["path"].as_str()),
                "{place}: the cluster-scope exporter publishes the table Vector loads"
            );
        }
        let sinks: Vec<_> = config.of_kind("sinks").collect();
        assert_eq!(
            sinks.len(),
            1,
            "{place}: one sink enabled, the others commented out"
        );
        labels.insert(labelled_here);
    }
    assert_eq!(labels.len(), 2, "both aggregators are shipped");
}

// ---------------------------------------------------------------------------------------------
// Client prerequisites, metrics, versions.

#[test]
fn docker_tasks_with_host_volumes_run_only_where_docker_allows_them() {
    for variant in all_variants() {
        let host_paths = variant.tasks().any(|t| {
            t.body()
                .attributes()
                .any(|a| a.key() == "driver" && string(a.expr()).as_deref() == Some("docker"))
                && task_config(t).is_some_and(|c| {
                    strings(attribute(c, "volumes"))
                        .iter()
                        .any(|v| v.starts_with('/'))
                })
        });
        if !host_paths {
            continue;
        }
        let place = variant.place();
        let constrained = blocks(variant.job.body(), "constraint").any(|c| {
            attribute(c.body(), "attribute").and_then(string).as_deref()
                == Some("${attr.driver.docker.volumes.enabled}")
        });
        assert!(
            constrained,
            "{place}: Docker refuses host-path volumes unless volumes are enabled"
        );
        assert!(
            variant.header().contains("volumes { enabled = true }"),
            "{place}: the header states the client prerequisite"
        );
    }
}

#[test]
fn the_jobs_serve_metrics_and_let_nomad_check_readiness() {
    for variant in all_variants() {
        let place = variant.place();
        let Some(task) = variant.tasks().find(|t| {
            runs_exporter(t)
                && task_config(t).is_some_and(|c| {
                    strings(attribute(c, "args")).first().map(String::as_str) == Some("run")
                })
        }) else {
            continue;
        };
        let group = variant.groups().next().expect("a group");
        let port = blocks(group.body(), "network")
            .flat_map(|n| blocks(n.body(), "port"))
            .find(|p| label(p) == "metrics")
            .unwrap_or_else(|| panic!("{place}: a port labelled metrics"));
        let listen = task_env(task).get("NOMAD_ALLOC_TABLE_LISTEN").cloned();
        // On the host's network, the port's address; in a container, the port it is mapped to.
        let in_container = task_config(task).is_some_and(|c| {
            strings(attribute(c, "ports"))
                .iter()
                .any(|p| p == "metrics")
        });
        let expected = if in_container {
            let to = attribute(port.body(), "to")
                .map(|to| to.to_string())
                .unwrap_or_else(|| panic!("{place}: the port's container side (to)"));
            format!("0.0.0.0:{to}")
        } else {
            "${NOMAD_ADDR_metrics}".to_owned()
        };
        assert_eq!(
            listen.as_deref(),
            Some(expected.as_str()),
            "{place}: run listens on the metrics port"
        );
        let service = blocks(task.body(), "service")
            .next()
            .unwrap_or_else(|| panic!("{place}: a service for run"));
        assert_eq!(
            attribute(service.body(), "port")
                .and_then(string)
                .as_deref(),
            Some("metrics")
        );
        let check = blocks(service.body(), "check")
            .next()
            .unwrap_or_else(|| panic!("{place}: a check"));
        assert_eq!(
            attribute(check.body(), "type").and_then(string).as_deref(),
            Some("http")
        );
        assert_eq!(
            attribute(check.body(), "path").and_then(string).as_deref(),
            Some("/readyz")
        );
    }
    let listen = systemd_env()
        .get("NOMAD_ALLOC_TABLE_LISTEN")
        .cloned()
        .expect("the systemd env example sets the listener");
    let address: std::net::SocketAddr = listen.parse().expect("an address");
    assert!(address.ip().is_loopback(), "on loopback: {address}");
}

/// The minimum Nomad version a job states in its header comment.
fn minimum_nomad_version(job: &Path) -> (u32, u32, u32) {
    let text = std::fs::read_to_string(job).expect("readable");
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("# Minimum Nomad version: "))
        .unwrap_or_else(|| panic!("{} states no minimum Nomad version", job.display()));
    let numbers: Vec<u32> = version
        .split_whitespace()
        .next()
        .expect("a version")
        .split('.')
        .map(|n| n.parse().expect("a number"))
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

#[test]
fn every_nomad_addr_exists_in_the_jobs_minimum_nomad_version() {
    for variant in all_variants() {
        let minimum = minimum_nomad_version(&variant.file);
        for task in variant.tasks() {
            let address = task_env(task).get("NOMAD_ADDR").cloned();
            let place = format!("{} task {}", variant.place(), label(task));
            if runs_exporter(task) {
                assert!(
                    address.is_some(),
                    "{place}: without NOMAD_ADDR it talks plain HTTP to 127.0.0.1:4646"
                );
                // Workload identity with a job-attached policy: Nomad 1.7.0.
                if blocks(task.body(), "identity").next().is_some() {
                    assert!((1, 7, 0) <= minimum, "{place}: identity needs Nomad 1.7.0");
                }
            }
            let Some(address) = address else { continue };
            // Since when Nomad provides each form (the Task API socket since 1.5.0, the
            // NOMAD_UNIX_ADDR variable naming it since 1.10.3, hashicorp/nomad#25598).
            let needs = match address.as_str() {
                "unix://${NOMAD_SECRETS_DIR}/api.sock" => (1, 5, 0),
                "${NOMAD_UNIX_ADDR}" => (1, 10, 3),
                other if other.starts_with("http") => (0, 0, 0),
                other => panic!("{place}: NOMAD_ADDR = {other:?} is not a known form"),
            };
            assert!(
                needs <= minimum,
                "{place}: {address} needs Nomad {needs:?}, the job states {minimum:?}"
            );
        }
    }
}

/// Vector releases and the `vrl` each depends on (its Cargo.toml), for the pinned ones.
const VRL_OF_VECTOR: &[(&str, &str)] = &[("0.57.0", "0.34.0")];

/// The Vector release the jobs pin (every job the same).
fn pinned_vector() -> String {
    let mut pinned = BTreeSet::new();
    for variant in all_variants() {
        for task in variant.tasks().filter(|t| runs_vector(t)) {
            if let Some(image) = task_config(task)
                .and_then(|c| attribute(c, "image"))
                .and_then(string)
            {
                let version = image
                    .trim_start_matches("timberio/vector:")
                    .split('-')
                    .next()
                    .expect("a version")
                    .to_owned();
                pinned.insert(version);
            }
        }
    }
    assert_eq!(
        pinned.len(),
        1,
        "one Vector release across the jobs: {pinned:?}"
    );
    pinned.pop_first().expect("one")
}

#[test]
fn the_vrl_check_uses_the_vrl_of_the_pinned_vector() {
    let vector = pinned_vector();
    let manifest = read("tests/vrl-check/Cargo.toml");
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

#[test]
fn the_readme_compatibility_table_names_the_pinned_releases() {
    let readme = read("README.md");
    let table = readme
        .split("### Compatibility")
        .nth(1)
        .expect("a Compatibility section in the README");
    let table = table.split("\n## ").next().expect("the section");
    let vector = pinned_vector();
    let minor = vector.rsplit_once('.').expect("x.y.z").0;
    assert!(
        table.contains(minor),
        "the pinned Vector {vector} has a row"
    );
    for claim in [
        "--dangerously-allow-env-var-interpolation",
        "NOMAD_UNIX_ADDR",
        "preserve-state",
        "--watch-config",
        "api.sock",
    ] {
        assert!(
            table.contains(claim),
            "the compatibility table covers {claim}"
        );
    }
}

#[test]
fn a_renamed_flag_would_be_caught() {
    let err = Cli::try_parse_from([
        "nomad-alloc-table",
        "run",
        "--output",
        "/t.csv",
        "--reload-tasks",
        "vector",
    ]);
    assert!(
        err.is_err(),
        "the check above relies on clap refusing unknown flags"
    );
}

#[test]
fn the_test_models_vector_057_and_nomads_templates() {
    // Vector 0.57 leaves ${…} as it is; an exclude with it matches nothing.
    let env = BTreeMap::from([("NOMAD_ALLOC_ID".to_owned(), OWN.to_owned())]);
    assert_eq!(
        interpolate("a/${NOMAD_ALLOC_ID:-x}/b", &env),
        format!("a/{OWN}/b")
    );
    // Nomad's template step, with the template's delimiters.
    let world = TemplateWorld {
        env,
        services: BTreeMap::from([("agg".to_owned(), ("10.1.2.3".to_owned(), 6001))]),
    };
    assert_eq!(
        render_template("x/[[ env \"NOMAD_ALLOC_ID\" ]]/{{ y }}", "[[", "]]", &world),
        format!("x/{OWN}/{{{{ y }}}}")
    );
    assert_eq!(
        render_template(
            "[[ range nomadService \"agg\" ]][[ .Address ]]:[[ .Port ]][[ break ]][[ else ]]none[[ end ]]",
            "[[",
            "]]",
            &world
        ),
        "10.1.2.3:6001"
    );
    assert_eq!(
        render_template(
            "[[ range nomadService \"gone\" ]][[ .Port ]][[ else ]]none[[ end ]]",
            "[[",
            "]]",
            &world
        ),
        "none"
    );
    // Nomad's HCL2: run-time references stay, variables resolve.
    let body = hcl::parse(&escape_runtime_references(
        "variable \"v\" {\n  default = \"d\"\n}\njob \"j\" {\n  meta {\n    a = \"${NOMAD_ALLOC_ID}/${var.v}\"\n  }\n}\n",
    ))
    .expect("parses");
    let mut ctx = base_context();
    let mut var = hcl::Map::new();
    var.insert("v".to_owned(), Value::from("d"));
    ctx.declare_var("var", Value::Object(var));
    let job = expand(
        blocks(&body, "job").next().expect("job").body(),
        &ctx,
        "model",
    );
    let meta = blocks(&job, "meta").next().expect("meta");
    assert_eq!(
        attribute(meta.body(), "a").and_then(string).as_deref(),
        Some("${NOMAD_ALLOC_ID}/d")
    );
    assert!(valid_address("vector-aggregator:6000"));
    assert!(!valid_address(
        "${VECTOR_AGGREGATOR_ADDRESS:-vector-aggregator.service.consul:6000}"
    ));
}
