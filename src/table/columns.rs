//! The table's columns: the catalog (every column the table can carry, in header order) and the
//! user's validated choice of them. The header is a contract with every Vector config that reads
//! the file: the key columns `alloc_id` and `task` come first, the default columns follow in a
//! fixed order, and new columns are only ever appended to the catalog.

use std::collections::{BTreeMap, BTreeSet};

/// A column the table can carry, other than `meta_<key>` columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    AllocId,
    Task,
    AllocName,
    Namespace,
    JobId,
    JobName,
    ParentJobId,
    JobType,
    JobVersion,
    Group,
    TaskDriver,
    TaskLifecycle,
    NodeId,
    NodeName,
    Datacenter,
    Region,
    ClientStatus,
    DesiredStatus,
    AllocIndex,
    NodePool,
    DeploymentId,
    TaskKind,
}

/// One entry of the documented column catalog.
#[derive(Clone, Copy, Debug)]
pub struct CatalogEntry {
    pub field: Field,
    pub name: &'static str,
    /// In the table unless `--columns` says otherwise.
    pub default: bool,
    pub description: &'static str,
}

const fn entry(
    field: Field,
    name: &'static str,
    default: bool,
    description: &'static str,
) -> CatalogEntry {
    CatalogEntry {
        field,
        name,
        default,
        description,
    }
}

/// Every column, in header order. Append only: Vector configs depend on this order.
pub const CATALOG: &[CatalogEntry] = &[
    entry(Field::AllocId, "alloc_id", true, "Allocation.ID (key)"),
    entry(
        Field::Task,
        "task",
        true,
        "task name (key); every task of the group, lifecycle tasks and Connect proxies included",
    ),
    entry(
        Field::AllocName,
        "alloc_name",
        true,
        "Allocation.Name, e.g. web.api[0]",
    ),
    entry(Field::Namespace, "namespace", true, "Allocation.Namespace"),
    entry(Field::JobId, "job_id", true, "Allocation.JobID"),
    entry(Field::JobName, "job_name", true, "Job.Name"),
    entry(
        Field::ParentJobId,
        "parent_job_id",
        true,
        "Job.ParentID for periodic and dispatch children, empty otherwise",
    ),
    entry(
        Field::JobType,
        "job_type",
        true,
        "Job.Type: service, batch, system, sysbatch",
    ),
    entry(
        Field::JobVersion,
        "job_version",
        true,
        "Job.Version the allocation runs",
    ),
    entry(Field::Group, "group", true, "Allocation.TaskGroup"),
    entry(Field::TaskDriver, "task_driver", true, "the task's Driver"),
    entry(
        Field::TaskLifecycle,
        "task_lifecycle",
        true,
        "main, prestart, prestart-sidecar, poststart, poststart-sidecar or poststop",
    ),
    entry(Field::NodeId, "node_id", true, "Allocation.NodeID"),
    entry(Field::NodeName, "node_name", true, "Allocation.NodeName"),
    entry(
        Field::Datacenter,
        "datacenter",
        true,
        "the node's datacenter",
    ),
    entry(Field::Region, "region", true, "Job.Region"),
    entry(
        Field::ClientStatus,
        "client_status",
        false,
        "Allocation.ClientStatus (volatile: every change reloads Vector)",
    ),
    entry(
        Field::DesiredStatus,
        "desired_status",
        false,
        "Allocation.DesiredStatus (volatile)",
    ),
    entry(
        Field::AllocIndex,
        "alloc_index",
        false,
        "the index in Allocation.Name, as NOMAD_ALLOC_INDEX",
    ),
    entry(Field::NodePool, "node_pool", false, "the node's pool"),
    entry(
        Field::DeploymentId,
        "deployment_id",
        false,
        "Allocation.DeploymentID (changes on every deployment)",
    ),
    entry(
        Field::TaskKind,
        "task_kind",
        false,
        "the task's Kind, e.g. connect-proxy:web",
    ),
];

/// A column of a chosen table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Column {
    Field(Field),
    /// `meta_<sanitized key>`: the task's meta, else the group's, else the job's, for `key`.
    Meta {
        key: String,
        name: String,
    },
}

impl Column {
    /// The header name.
    pub fn name(&self) -> &str {
        match self {
            Column::Field(field) => catalog_entry(*field).name,
            Column::Meta { name, .. } => name,
        }
    }
}

fn catalog_entry(field: Field) -> &'static CatalogEntry {
    CATALOG
        .iter()
        .find(|e| e.field == field)
        .expect("every field is in the catalog")
}

/// Why a column choice is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ColumnsError {
    #[error(
        "unknown column {name:?} in --columns; choose from: {}",
        catalog_names()
    )]
    Unknown { name: String },
    #[error("column {name:?} is named twice in --columns")]
    Duplicate { name: String },
    #[error("{name:?} is a meta column: ask for it with --meta {key}")]
    MetaInColumns { name: String, key: String },
    #[error("--meta has an empty key")]
    EmptyMetaKey,
    #[error("--meta keys {first:?} and {second:?} both become column {column:?}; keep one")]
    MetaCollision {
        first: String,
        second: String,
        column: String,
    },
}

fn catalog_names() -> String {
    CATALOG
        .iter()
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Turns a meta key into a column name: `meta_` plus the key with every character outside
/// `[A-Za-z0-9_]` replaced by `_`.
pub fn meta_column_name(key: &str) -> String {
    let sanitized: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("meta_{sanitized}")
}

/// The validated, ordered columns of a table: the keys first, then the chosen catalog columns,
/// then the meta columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Columns(Vec<Column>);

impl Columns {
    /// The columns for `--columns` (the defaults when `None`) and `--meta`.
    pub fn choose(
        selected: Option<&[String]>,
        meta_keys: &[String],
    ) -> Result<Columns, ColumnsError> {
        let mut columns = vec![Column::Field(Field::AllocId), Column::Field(Field::Task)];
        match selected {
            None => columns.extend(
                CATALOG
                    .iter()
                    .filter(|e| e.default && !is_key(e.field))
                    .map(|e| Column::Field(e.field)),
            ),
            Some(names) => {
                let mut seen = BTreeSet::new();
                for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
                    if !seen.insert(name) {
                        return Err(ColumnsError::Duplicate {
                            name: name.to_owned(),
                        });
                    }
                    if let Some(key) = name.strip_prefix("meta_") {
                        return Err(ColumnsError::MetaInColumns {
                            name: name.to_owned(),
                            key: key.to_owned(),
                        });
                    }
                    let entry = CATALOG.iter().find(|e| e.name == name).ok_or_else(|| {
                        ColumnsError::Unknown {
                            name: name.to_owned(),
                        }
                    })?;
                    if !is_key(entry.field) {
                        columns.push(Column::Field(entry.field));
                    }
                }
            }
        }
        let mut meta_names: BTreeMap<String, String> = BTreeMap::new();
        for key in meta_keys {
            if key.is_empty() {
                return Err(ColumnsError::EmptyMetaKey);
            }
            let name = meta_column_name(key);
            if let Some(first) = meta_names.insert(name.clone(), key.clone()) {
                if &first == key {
                    return Err(ColumnsError::Duplicate { name });
                }
                return Err(ColumnsError::MetaCollision {
                    first,
                    second: key.clone(),
                    column: name,
                });
            }
            columns.push(Column::Meta {
                key: key.clone(),
                name,
            });
        }
        Ok(Columns(columns))
    }

    /// The default columns and no meta.
    pub fn defaults() -> Columns {
        Columns::choose(None, &[]).expect("the defaults are valid")
    }

    pub fn iter(&self) -> impl Iterator<Item = &Column> {
        self.0.iter()
    }

    /// The header row.
    pub fn header(&self) -> Vec<String> {
        self.0.iter().map(|c| c.name().to_owned()).collect()
    }

    /// The meta keys the columns read (`--meta`): of the jobs' meta, only these are kept.
    pub fn meta_keys(&self) -> BTreeSet<String> {
        self.0
            .iter()
            .filter_map(|c| match c {
                Column::Meta { key, .. } => Some(key.clone()),
                Column::Field(_) => None,
            })
            .collect()
    }
}

fn is_key(field: Field) -> bool {
    matches!(field, Field::AllocId | Field::Task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_header_matches_the_contract() {
        assert_eq!(
            Columns::defaults().header().join(","),
            "alloc_id,task,alloc_name,namespace,job_id,job_name,parent_job_id,job_type,job_version,group,task_driver,task_lifecycle,node_id,node_name,datacenter,region"
        );
    }

    #[test]
    fn bad_column_choices_are_refused_with_a_hint() {
        let err = Columns::choose(Some(&["jobname".into()]), &[]).expect_err("unknown");
        assert!(err.to_string().contains("job_name"), "{err}");
        assert!(matches!(
            Columns::choose(Some(&["group".into(), "group".into()]), &[]),
            Err(ColumnsError::Duplicate { .. })
        ));
        assert!(matches!(
            Columns::choose(Some(&["meta_team".into()]), &[]),
            Err(ColumnsError::MetaInColumns { .. })
        ));
        assert!(matches!(
            Columns::choose(None, &["a.b".into(), "a-b".into()]),
            Err(ColumnsError::MetaCollision { .. })
        ));
        assert_eq!(
            Columns::choose(None, &[String::new()]),
            Err(ColumnsError::EmptyMetaKey)
        );
    }

    #[test]
    fn meta_keys_are_sanitized() {
        assert_eq!(meta_column_name("team.name-x"), "meta_team_name_x");
        assert_eq!(meta_column_name("ümlaut"), "meta__mlaut");
    }
}
