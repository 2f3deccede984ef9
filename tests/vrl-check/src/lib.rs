//! Runs the VRL that `vector/labels.yaml` ships, with the `vrl` crate and no Vector: the
//! remap's inline source is compiled with VRL's standard library plus a stand-in for Vector's
//! `get_enrichment_table_record` that reproduces its semantics (a literal table name, exact
//! case-sensitive matching on every condition field, `No rows found` and `More than one row
//! found`), over a table rendered by nomad-alloc-table itself. The Vector unit tests in
//! `vector/tests/` are executed the same way, conditions included. Lookups in a `memory`
//! table (`vector/aggregator-cluster-push.yaml`) go to the stand-in in [`memory`].

pub mod memory;

use std::collections::BTreeMap;
use std::sync::Arc;

use vrl::compiler::expression::Expr;
use vrl::compiler::prelude::*;
use vrl::compiler::runtime::{Runtime, Terminate};
use vrl::compiler::state::ExternalEnv;
use vrl::compiler::{CompileConfig, TargetValue, TimeZone, compile_with_external};
use vrl::value::{Secrets, Value};
use yaml_rust2::{Yaml, YamlLoader};

pub use memory::{MemoryConfig, MemoryTable, MemoryTables, memory_table_config};

/// A loaded `file` enrichment table: every column a string, as Vector loads a CSV without a
/// schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Loads CSV bytes with the rules Vector's file table uses (headers, not flexible, UTF-8).
    pub fn from_csv(bytes: &[u8]) -> Result<Table, String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(bytes);
        let header = reader
            .headers()
            .map_err(|e| e.to_string())?
            .iter()
            .map(str::to_owned)
            .collect();
        let rows = reader
            .records()
            .map(|r| {
                r.map(|r| r.iter().map(str::to_owned).collect())
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        Ok(Table { header, rows })
    }

    /// The rows whose `field`s equal the given values exactly.
    fn matching<'a>(&'a self, conditions: &[(usize, Value)]) -> Vec<&'a Vec<String>> {
        self.rows
            .iter()
            .filter(|row| {
                conditions
                    .iter()
                    .all(|(column, wanted)| string_bytes(wanted) == Some(row[*column].as_bytes()))
            })
            .collect()
    }

    fn record(&self, row: &[String]) -> Value {
        let map: ObjectMap = self
            .header
            .iter()
            .zip(row)
            .map(|(h, v)| (h.as_str().into(), Value::from(v.as_str())))
            .collect();
        Value::Object(map)
    }
}

/// A string value's bytes; `None` for other kinds, which never equal a CSV cell.
fn string_bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::Bytes(bytes) => Some(bytes.as_ref()),
        _ => None,
    }
}

/// The loaded tables by name, handed to the compiler as external context.
#[derive(Debug, Default, Clone)]
pub struct Tables(pub BTreeMap<String, Arc<Table>>);

/// The stand-in for Vector's `get_enrichment_table_record(table, condition)`.
#[derive(Clone, Copy, Debug)]
pub struct GetEnrichmentTableRecord;

impl Function for GetEnrichmentTableRecord {
    fn identifier(&self) -> &'static str {
        "get_enrichment_table_record"
    }

    fn usage(&self) -> &'static str {
        "Searches an enrichment table for exactly one row matching the condition (Vector's semantics)."
    }

    fn category(&self) -> &'static str {
        "Enrichment"
    }

    fn return_kind(&self) -> u16 {
        kind::OBJECT
    }

    fn parameters(&self) -> &'static [Parameter] {
        const PARAMETERS: &[Parameter] = &[
            Parameter::required(
                "table",
                kind::BYTES,
                "The enrichment table's name (a literal).",
            ),
            Parameter::required(
                "condition",
                kind::OBJECT,
                "Column name to value, all to match exactly.",
            ),
        ];
        PARAMETERS
    }

    fn examples(&self) -> &'static [Example] {
        &[]
    }

    fn compile(
        &self,
        state: &TypeState,
        ctx: &mut FunctionCompileContext,
        arguments: ArgumentList,
    ) -> Compiled {
        let tables = ctx
            .get_external_context::<Tables>()
            .cloned()
            .unwrap_or_default();
        let memory = ctx
            .get_external_context::<MemoryTables>()
            .cloned()
            .unwrap_or_default();
        let names: Vec<Value> = tables
            .0
            .keys()
            .chain(memory.0.keys())
            .map(|n| Value::from(n.as_str()))
            .collect();
        // Like Vector, the table must be a literal naming a loaded table (else E401).
        let name = arguments
            .required_enum("table", &names, state)?
            .try_bytes_utf8_lossy()
            .expect("table names are strings")
            .into_owned();
        if let Some(table) = memory.0.get(&name) {
            return memory::compile_lookup(table.clone(), arguments.required_object("condition")?);
        }
        let table = tables.0[&name].clone();
        let mut condition = Vec::new();
        for (field, value) in arguments.required_object("condition")? {
            // A field the table lacks is a compile error in Vector (MissingDatasetFields).
            let column = table
                .header
                .iter()
                .position(|h| h.as_str() == field.as_str())
                .ok_or_else(|| {
                    Refused::boxed(format!("Field(s) '{field}' missing from dataset {name}"))
                })?;
            condition.push((column, value));
        }
        Ok(GetRecordFn { table, condition }.as_expr())
    }
}

/// A compile error of the enrichment function, with Vector's message.
#[derive(Debug)]
pub(crate) struct Refused(String);

impl Refused {
    pub(crate) fn boxed(message: String) -> Box<dyn DiagnosticMessage> {
        Box::new(Refused(message))
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl DiagnosticMessage for Refused {
    fn code(&self) -> usize {
        111
    }
}

#[derive(Debug, Clone)]
struct GetRecordFn {
    table: Arc<Table>,
    condition: Vec<(usize, Expr)>,
}

impl FunctionExpression for GetRecordFn {
    fn resolve(&self, ctx: &mut Context) -> Resolved {
        let mut wanted = Vec::with_capacity(self.condition.len());
        for (column, expr) in &self.condition {
            wanted.push((*column, expr.resolve(ctx)?));
        }
        match self.table.matching(&wanted).as_slice() {
            [] => Err("No rows found".into()),
            [row] => Ok(self.table.record(row)),
            _ => Err("More than one row found".into()),
        }
    }

    fn type_def(&self, _: &TypeState) -> TypeDef {
        TypeDef::object(Collection::any()).fallible()
    }
}

/// A compiled remap program.
pub struct Remap {
    program: vrl::compiler::Program,
}

/// What the remap transform does with an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The event goes on, as changed.
    Kept(Value),
    /// `abort`: with Vector's default `drop_on_abort: true`, the line is dropped.
    Dropped(String),
    /// A runtime error: with Vector's default `drop_on_error: false`, the line goes on
    /// unchanged (so unlabelled).
    Failed(String),
}

fn functions() -> Vec<Box<dyn Function>> {
    let mut functions = vrl::stdlib::all();
    functions.push(Box::new(GetEnrichmentTableRecord));
    functions
}

impl Remap {
    /// Compiles VRL with the standard library and the enrichment function over `tables`.
    pub fn compile(source: &str, tables: Tables) -> Result<Remap, String> {
        Remap::compile_with_memory(source, tables, MemoryTables::default())
    }

    /// [`Remap::compile`] with memory tables too.
    pub fn compile_with_memory(
        source: &str,
        tables: Tables,
        memory: MemoryTables,
    ) -> Result<Remap, String> {
        let mut config = CompileConfig::default();
        config.set_custom(tables);
        config.set_custom(memory);
        let result = compile_with_external(source, &functions(), &ExternalEnv::default(), config)
            .map_err(|diagnostics| {
            vrl::diagnostic::Formatter::new(source, diagnostics).to_string()
        })?;
        Ok(Remap {
            program: result.program,
        })
    }

    /// Runs the program over one log event.
    pub fn run(&self, event: Value) -> Outcome {
        let mut target = TargetValue {
            value: event,
            metadata: Value::Object(ObjectMap::new()),
            secrets: Secrets::default(),
        };
        let mut runtime = Runtime::new(vrl::compiler::state::RuntimeState::default());
        match runtime.resolve(&mut target, &self.program, &TimeZone::default()) {
            Ok(_) => Outcome::Kept(target.value),
            Err(Terminate::Abort(e)) => Outcome::Dropped(e.to_string()),
            Err(Terminate::Error(e)) => Outcome::Failed(e.to_string()),
        }
    }
}

pub(crate) fn yaml(text: &str) -> Result<Yaml, String> {
    YamlLoader::load_from_str(text)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or_else(|| "an empty YAML document".to_owned())
}

/// The inline `source` of remap transform `transform` in a Vector YAML config.
pub fn remap_source(config: &str, transform: &str) -> Result<String, String> {
    let doc = yaml(config)?;
    let remap = &doc["transforms"][transform];
    if remap["type"].as_str() != Some("remap") {
        return Err(format!("transforms.{transform} is not a remap transform"));
    }
    if !remap["file"].is_badvalue() || !remap["files"].is_badvalue() {
        return Err(format!(
            "transforms.{transform} uses external VRL files: Vector rebuilds those on every SIGHUP (≥ 0.51); keep the source inline"
        ));
    }
    remap["source"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("transforms.{transform} has no inline source"))
}

/// The file path of enrichment table `name` in a Vector YAML config.
pub fn table_path(config: &str, name: &str) -> Result<String, String> {
    let doc = yaml(config)?;
    let table = &doc["enrichment_tables"][name];
    if table["type"].as_str() != Some("file")
        || table["file"]["encoding"]["type"].as_str() != Some("csv")
    {
        return Err(format!(
            "enrichment_tables.{name} is not a file table with csv encoding"
        ));
    }
    table["file"]["path"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("enrichment_tables.{name} has no file.path"))
}

/// One case of a Vector unit-test file.
#[derive(Debug, Clone)]
pub struct UnitTest {
    pub name: String,
    pub insert_at: String,
    pub event: Value,
    /// `None`: the test expects no output (`no_outputs_from`).
    pub conditions: Option<Vec<String>>,
}

fn yaml_to_value(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::String(s) => Value::from(s.as_str()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Boolean(b) => Value::from(*b),
        Yaml::Real(r) => r
            .parse::<f64>()
            .map_or(Value::Null, Value::from_f64_or_zero),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.into(), yaml_to_value(v))))
                .collect(),
        ),
        Yaml::Array(items) => Value::Array(items.iter().map(yaml_to_value).collect()),
        _ => Value::Null,
    }
}

/// Reads the `tests:` of a Vector unit-test file (log inputs and VRL conditions).
pub fn unit_tests(text: &str) -> Result<Vec<UnitTest>, String> {
    let doc = yaml(text)?;
    let tests = doc["tests"].as_vec().ok_or("no tests: list")?;
    tests
        .iter()
        .map(|test| {
            let name = test["name"]
                .as_str()
                .ok_or("a test without a name")?
                .to_owned();
            let input = &test["inputs"][0];
            if input["type"].as_str() != Some("log") {
                return Err(format!("{name}: only log inputs are supported"));
            }
            let conditions = match test["outputs"].as_vec() {
                Some(outputs) => Some(
                    outputs
                        .iter()
                        .flat_map(|o| o["conditions"].as_vec().cloned().unwrap_or_default())
                        .map(|c| {
                            c["source"]
                                .as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| format!("{name}: a condition without a VRL source"))
                        })
                        .collect::<Result<_, _>>()?,
                ),
                None if test["no_outputs_from"].as_vec().is_some() => None,
                None => return Err(format!("{name}: neither outputs nor no_outputs_from")),
            };
            Ok(UnitTest {
                insert_at: input["insert_at"]
                    .as_str()
                    .ok_or(format!("{name}: no insert_at"))?
                    .to_owned(),
                event: yaml_to_value(&input["log_fields"]),
                conditions,
                name,
            })
        })
        .collect()
}

/// Checks a unit-test condition (VRL with `assert!`/`assert_eq!`) against an output event.
pub fn check_condition(source: &str, output: &Value) -> Result<(), String> {
    let condition = Remap::compile(source, Tables::default())?;
    match condition.run(output.clone()) {
        Outcome::Kept(_) => Ok(()),
        Outcome::Dropped(e) | Outcome::Failed(e) => Err(e),
    }
}
