//! A stand-in for Vector's `memory` enrichment table fed by an `http_server` source, as
//! `vector/aggregator-cluster-push.yaml` configures them, with the semantics read in Vector
//! v0.57.0's source (file:line at tag v0.57.0):
//!
//! - The source (`decoding.codec: json`, `framing.method: newline_delimited`,
//!   `log_namespace: true`): each non-empty line is one JSON value (empty lines are skipped,
//!   `lib/codecs/src/decoding/format/json.rs:104-108`; invalid UTF-8 replaced, `lossy` default,
//!   `:110-114`), an array is one event per element (`:116-123`), and the event is the value
//!   itself (`lib/vector-core/src/event/mod.rs:347-348`): with the Vector log namespace,
//!   `path`, `source_type` and `timestamp` go to metadata, not to the event
//!   (`lib/vector-core/src/config/mod.rs:444-468`, `:494-537`). A line that does not decode
//!   refuses the whole body with 400 and nothing is sent on (`src/sources/http_server.rs:507-533`).
//! - The sink (`src/enrichment_tables/memory/table.rs`): an event whose root is not an object
//!   is acknowledged and ignored (`:452-456`); each top-level field is one key, its value
//!   stored as a JSON string (`:177-187`), replacing the entry and its TTL (`:222`); the TTL is
//!   the value's `ttl_field` when that is an integer (cast to u64), else the table's `ttl`
//!   (`:189-197`). The field stays in the value (test `calculates_ttl_override`, `:600-656`).
//!   Writes are visible at once without `flush_interval` (`:225-227`).
//! - A lookup (`:340-397`): the condition has exactly one field, under any name, else the
//!   remap does not compile (`add_index`, `:391-397`: "Key field is required", "Only one field
//!   is allowed"; messages in `lib/vector-vrl/enrichment/src/lib.rs:53-73`). Its value is
//!   stringified (`to_string_lossy`, `:368`) and is the key. A hit is `{key, value, ttl}`:
//!   `value` the stored JSON parsed again (an object for an object pushed), `ttl` the seconds
//!   left (`:63-86`). No entry is the error "No rows found" (`:348-354`). An expired entry is
//!   found until a scan (every `scan_interval`) removes it (`:88-90`, `:230-255`, `:659-703`).
//!
//! Time is explicit: [`MemoryTable::advance`] moves the clock, [`MemoryTable::scan`] is the
//! periodic sweep. Not modelled: date-range conditions (refused at run time, `:386`),
//! `flush_interval`, `max_byte_size`, and `select`/`case_sensitive` (ignored, `:357-364`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use vrl::compiler::expression::Expr;
use vrl::compiler::prelude::*;
use vrl::value::{KeyString, ObjectMap, Value};

use crate::Refused;

/// The table's settings that decide what it stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConfig {
    /// `ttl`: seconds, for a value without an integer TTL field (Vector's default: 600).
    pub ttl: u64,
    /// `ttl_field`: the value's field read as the entry's TTL.
    pub ttl_field: Option<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    /// The value as Vector stores it: serialised JSON.
    json: String,
    written_at: u64,
    ttl: u64,
}

#[derive(Debug)]
struct State {
    config: MemoryConfig,
    now: u64,
    entries: BTreeMap<String, Entry>,
}

/// A memory table: clones share the entries, as the sink and the remap transforms share
/// Vector's table.
#[derive(Debug, Clone)]
pub struct MemoryTable(Arc<Mutex<State>>);

impl MemoryTable {
    pub fn new(config: MemoryConfig) -> MemoryTable {
        MemoryTable(Arc::new(Mutex::new(State {
            config,
            now: 0,
            entries: BTreeMap::new(),
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().expect("not poisoned")
    }

    /// One POST body through the source into the table: `Err` is the 400 that refuses the
    /// whole body, with nothing written.
    pub fn post(&self, body: &[u8]) -> Result<(), String> {
        let mut events = Vec::new();
        for line in body.split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let text = String::from_utf8_lossy(line);
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| format!("400 Failed decoding body: Error parsing JSON: {e:?}"))?;
            match value {
                Value::Array(items) => events.extend(items),
                other => events.push(other),
            }
        }
        for event in events {
            if let Value::Object(map) = event {
                self.write(map);
            }
        }
        Ok(())
    }

    /// The sink's `handle_value`: every top-level field one entry.
    fn write(&self, map: ObjectMap) {
        let mut state = self.state();
        let now = state.now;
        for (key, value) in map {
            let ttl = state
                .config
                .ttl_field
                .as_deref()
                .and_then(|field| value.as_object()?.get(field)?.as_integer())
                .map_or(state.config.ttl, |ttl| ttl as u64);
            let json = serde_json::to_string(&value).expect("a VRL value serialises");
            state.entries.insert(
                String::from(key),
                Entry {
                    json,
                    written_at: now,
                    ttl,
                },
            );
        }
    }

    /// Moves the table's clock on by `seconds`.
    pub fn advance(&self, seconds: u64) {
        self.state().now += seconds;
    }

    /// The periodic sweep: removes the entries older than their TTL.
    pub fn scan(&self) {
        let mut state = self.state();
        let now = state.now;
        state
            .entries
            .retain(|_, entry| now - entry.written_at <= entry.ttl);
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.state().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `get_enrichment_table_record` on this table, the condition's value already resolved.
    pub fn lookup(&self, condition: &Value) -> Result<Value, String> {
        let key = condition.to_string_lossy().into_owned();
        let state = self.state();
        let entry = state.entries.get(&key).ok_or("No rows found")?;
        let value: Value = serde_json::from_str(&entry.json).map_err(|e| e.to_string())?;
        let left = entry.ttl.saturating_sub(state.now - entry.written_at);
        Ok(Value::Object(ObjectMap::from([
            (KeyString::from("key"), Value::from(key.as_str())),
            (KeyString::from("value"), value),
            (
                KeyString::from("ttl"),
                Value::Integer(left.try_into().unwrap_or(i64::MAX)),
            ),
        ])))
    }
}

/// The memory tables by name, handed to the compiler as external context.
#[derive(Debug, Default, Clone)]
pub struct MemoryTables(pub BTreeMap<String, MemoryTable>);

/// `get_enrichment_table_record` on a memory table, compiled: one condition field, whatever
/// its name (`add_index`, table.rs:391-397).
pub(crate) fn compile_lookup(table: MemoryTable, condition: BTreeMap<KeyString, Expr>) -> Compiled {
    let mut fields = condition.into_values();
    match (fields.next(), fields.next()) {
        (None, _) => Err(Refused::boxed("Key field is required".to_owned())),
        (Some(key), None) => Ok(MemoryRecordFn { table, key }.as_expr()),
        (Some(_), Some(_)) => Err(Refused::boxed("Only one field is allowed".to_owned())),
    }
}

#[derive(Debug, Clone)]
struct MemoryRecordFn {
    table: MemoryTable,
    key: Expr,
}

impl FunctionExpression for MemoryRecordFn {
    fn resolve(&self, ctx: &mut Context) -> Resolved {
        let key = self.key.resolve(ctx)?;
        self.table.lookup(&key).map_err(Into::into)
    }

    fn type_def(&self, _: &TypeState) -> TypeDef {
        TypeDef::object(Collection::any()).fallible()
    }
}

/// The settings of memory table `name` in a Vector YAML config, with Vector's defaults.
pub fn memory_table_config(config: &str, name: &str) -> Result<MemoryConfig, String> {
    let doc = crate::yaml(config)?;
    let table = &doc["enrichment_tables"][name];
    if table["type"].as_str() != Some("memory") {
        return Err(format!("enrichment_tables.{name} is not a memory table"));
    }
    let ttl = match table["ttl"].as_i64() {
        Some(ttl) => u64::try_from(ttl).map_err(|_| format!("{name}: ttl {ttl}"))?,
        None if table["ttl"].is_badvalue() => 600,
        None => return Err(format!("enrichment_tables.{name}.ttl is not an integer")),
    };
    Ok(MemoryConfig {
        ttl,
        ttl_field: table["ttl_field"].as_str().map(str::to_owned),
    })
}
