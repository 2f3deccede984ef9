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

mod acl;
mod debian;
mod jobs;
mod jobspec;
mod prerequisites;
mod prometheus;
mod systemd;
mod template;
mod topologies;
mod vector;

use jobs::*;
use jobspec::*;
use systemd::*;
use template::*;
use vector::*;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The files under `dir` (of the repository) whose names end in `.<extension>`, sorted.
fn files_under(dir: &str, extension: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![repo(dir)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == extension) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn hcl_files() -> Vec<PathBuf> {
    files_under("deploy", "hcl")
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
