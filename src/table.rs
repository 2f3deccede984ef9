//! The table contract: the catalog of columns, the user's choice of them, and the projection of
//! Nomad allocations to rows (one per allocation task). Pure data in, data out.
//!
//! The header is a contract with every Vector config that reads the file: the key columns
//! `alloc_id` and `task` come first, the default columns follow in a fixed order, and new
//! columns are only ever appended to the catalog.

use std::collections::{BTreeMap, BTreeSet};

use crate::nomad::types::{Allocation, Job, Lifecycle, TaskGroup};

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
}

fn is_key(field: Field) -> bool {
    matches!(field, Field::AllocId | Field::Task)
}

/// What the table needs to know about the node beyond each allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub name: String,
    pub datacenter: String,
    pub node_pool: String,
}

/// A rendered-ready table: header plus rows of strings, sorted by `(alloc_id, task)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The result of a projection: the table, and the allocations that yielded no row because
/// nothing in Nomad's answer named their tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Projection {
    pub table: Table,
    pub allocations_without_tasks: Vec<String>,
}

/// One task of an allocation, from the job or, where the job is missing, from what the
/// allocation itself says.
#[derive(Clone, Debug, Default)]
struct TaskInfo<'a> {
    name: &'a str,
    driver: &'a str,
    kind: &'a str,
    lifecycle: Option<&'a Lifecycle>,
    meta: Option<&'a BTreeMap<String, String>>,
}

fn task_group<'a>(job: Option<&'a Job>, group: &str) -> Option<&'a TaskGroup> {
    job?.task_groups.iter().find(|g| g.name == group)
}

fn tasks_of(alloc: &Allocation) -> Vec<TaskInfo<'_>> {
    if let Some(group) = task_group(alloc.job.as_ref(), &alloc.task_group)
        && !group.tasks.is_empty()
    {
        return group
            .tasks
            .iter()
            .map(|t| TaskInfo {
                name: &t.name,
                driver: &t.driver,
                kind: &t.kind,
                lifecycle: t.lifecycle.as_ref(),
                meta: Some(&t.meta),
            })
            .collect();
    }
    let lifecycles = alloc
        .allocated_resources
        .as_ref()
        .map(|r| &r.task_lifecycles);
    let mut names: BTreeSet<&str> = lifecycles
        .map(|l| l.keys().map(String::as_str).collect())
        .unwrap_or_default();
    names.extend(alloc.task_states.keys().map(String::as_str));
    names
        .into_iter()
        .map(|name| TaskInfo {
            name,
            lifecycle: lifecycles
                .and_then(|l| l.get(name))
                .and_then(Option::as_ref),
            ..TaskInfo::default()
        })
        .collect()
}

/// `main`, `prestart`, `prestart-sidecar`, `poststart`, `poststart-sidecar` or `poststop`.
pub fn lifecycle_name(lifecycle: Option<&Lifecycle>) -> String {
    match lifecycle {
        None => "main".to_owned(),
        Some(l) if l.hook.is_empty() => "main".to_owned(),
        Some(l) if l.sidecar => format!("{}-sidecar", l.hook),
        Some(l) => l.hook.clone(),
    }
}

/// The `[n]` at the end of an allocation name, as `NOMAD_ALLOC_INDEX`.
fn alloc_index(name: &str) -> String {
    name.strip_suffix(']')
        .and_then(|rest| rest.rsplit_once('['))
        .map(|(_, n)| n)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_default()
        .to_owned()
}

/// Meta merged the way Nomad does for a task: task over group over job.
fn meta_value(
    key: &str,
    job: Option<&Job>,
    group: Option<&TaskGroup>,
    task: &TaskInfo<'_>,
) -> String {
    task.meta
        .and_then(|m| m.get(key))
        .or_else(|| group.and_then(|g| g.meta.get(key)))
        .or_else(|| job.and_then(|j| j.meta.get(key)))
        .cloned()
        .unwrap_or_default()
}

/// What one row is made from.
#[derive(Clone, Copy)]
struct RowSource<'a> {
    alloc: &'a Allocation,
    job: Option<&'a Job>,
    group: Option<&'a TaskGroup>,
    task: &'a TaskInfo<'a>,
    node: &'a NodeInfo,
}

fn cell(column: &Column, source: RowSource<'_>) -> String {
    let RowSource {
        alloc,
        job,
        group,
        task,
        node,
    } = source;
    let job_field = |f: fn(&Job) -> String| job.map(f).unwrap_or_default();
    match column {
        Column::Meta { key, .. } => meta_value(key, job, group, task),
        Column::Field(field) => match field {
            Field::AllocId => alloc.id.clone(),
            Field::Task => task.name.to_owned(),
            Field::AllocName => alloc.name.clone(),
            Field::Namespace => alloc.namespace.clone(),
            Field::JobId => alloc.job_id.clone(),
            Field::JobName => job_field(|j| j.name.clone()),
            Field::ParentJobId => job_field(|j| j.parent_id.clone()),
            Field::JobType => job_field(|j| j.job_type.clone()),
            Field::JobVersion => job_field(|j| j.version.to_string()),
            Field::Group => alloc.task_group.clone(),
            Field::TaskDriver => task.driver.to_owned(),
            Field::TaskLifecycle => lifecycle_name(task.lifecycle),
            Field::NodeId => alloc.node_id.clone(),
            Field::NodeName if alloc.node_name.is_empty() => node.name.clone(),
            Field::NodeName => alloc.node_name.clone(),
            Field::Datacenter => node.datacenter.clone(),
            Field::Region => job_field(|j| j.region.clone()),
            Field::ClientStatus => alloc.client_status.clone(),
            Field::DesiredStatus => alloc.desired_status.clone(),
            Field::AllocIndex => alloc_index(&alloc.name),
            Field::NodePool => node.node_pool.clone(),
            Field::DeploymentId => alloc.deployment_id.clone(),
            Field::TaskKind => task.kind.to_owned(),
        },
    }
}

/// Projects the node's allocations to rows: one per task of each allocation's group, in every
/// client status, sorted by `(alloc_id, task)`.
pub fn project<'a>(
    allocations: impl IntoIterator<Item = &'a Allocation>,
    node: &NodeInfo,
    columns: &Columns,
) -> Projection {
    let mut rows = Vec::new();
    let mut allocations_without_tasks = Vec::new();
    for alloc in allocations {
        let tasks = tasks_of(alloc);
        if tasks.is_empty() {
            allocations_without_tasks.push(alloc.id.clone());
        }
        let job = alloc.job.as_ref();
        let group = task_group(job, &alloc.task_group);
        for task in &tasks {
            let source = RowSource {
                alloc,
                job,
                group,
                task,
                node,
            };
            rows.push(columns.iter().map(|c| cell(c, source)).collect::<Vec<_>>());
        }
    }
    rows.sort_by(|a, b| (&a[0], &a[1]).cmp(&(&b[0], &b[1])));
    Projection {
        table: Table {
            header: columns.header(),
            rows,
        },
        allocations_without_tasks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::types::{AllocatedResources, Task};

    fn task(name: &str, lifecycle: Option<(&str, bool)>) -> Task {
        Task {
            name: name.to_owned(),
            driver: "docker".to_owned(),
            lifecycle: lifecycle.map(|(hook, sidecar)| Lifecycle {
                hook: hook.to_owned(),
                sidecar,
            }),
            ..Task::default()
        }
    }

    fn alloc(id: &str, tasks: Vec<Task>) -> Allocation {
        Allocation {
            id: id.to_owned(),
            namespace: "default".to_owned(),
            name: "web.api[3]".to_owned(),
            node_id: "node-1".to_owned(),
            node_name: "client-1".to_owned(),
            job_id: "web".to_owned(),
            task_group: "api".to_owned(),
            client_status: "running".to_owned(),
            desired_status: "run".to_owned(),
            job: Some(Job {
                id: "web".to_owned(),
                name: "web".to_owned(),
                job_type: "service".to_owned(),
                region: "eu".to_owned(),
                version: 4,
                meta: BTreeMap::from([
                    ("team".to_owned(), "job".to_owned()),
                    ("tier".to_owned(), "job".to_owned()),
                ]),
                task_groups: vec![TaskGroup {
                    name: "api".to_owned(),
                    meta: BTreeMap::from([("team".to_owned(), "group".to_owned())]),
                    tasks,
                }],
                ..Job::default()
            }),
            ..Allocation::default()
        }
    }

    fn node() -> NodeInfo {
        NodeInfo {
            id: "node-1".to_owned(),
            name: "client-1".to_owned(),
            datacenter: "dc7".to_owned(),
            node_pool: "gpu".to_owned(),
        }
    }

    fn column<'a>(table: &'a Table, row: usize, name: &str) -> &'a str {
        let i = table
            .header
            .iter()
            .position(|h| h == name)
            .expect("column present");
        &table.rows[row][i]
    }

    #[test]
    fn default_header_matches_the_contract() {
        assert_eq!(
            Columns::defaults().header().join(","),
            "alloc_id,task,alloc_name,namespace,job_id,job_name,parent_job_id,job_type,job_version,group,task_driver,task_lifecycle,node_id,node_name,datacenter,region"
        );
    }

    #[test]
    fn one_row_per_task_with_lifecycles_sorted_by_task() {
        let a = alloc(
            "a1",
            vec![
                task("server", None),
                task("init", Some(("prestart", false))),
                task("proxy", Some(("prestart", true))),
                task("notify", Some(("poststart", false))),
                task("shipper", Some(("poststart", true))),
                task("cleanup", Some(("poststop", false))),
            ],
        );
        let table = project(&[a], &node(), &Columns::defaults()).table;
        let got: Vec<(&str, &str)> = (0..table.rows.len())
            .map(|r| {
                (
                    column(&table, r, "task"),
                    column(&table, r, "task_lifecycle"),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("cleanup", "poststop"),
                ("init", "prestart"),
                ("notify", "poststart"),
                ("proxy", "prestart-sidecar"),
                ("server", "main"),
                ("shipper", "poststart-sidecar"),
            ]
        );
        assert_eq!(column(&table, 0, "datacenter"), "dc7");
        assert_eq!(column(&table, 0, "job_version"), "4");
        assert_eq!(column(&table, 0, "region"), "eu");
    }

    #[test]
    fn rows_are_sorted_by_alloc_then_task() {
        let allocs = [
            alloc("b", vec![task("x", None)]),
            alloc("a", vec![task("z", None), task("y", None)]),
        ];
        let table = project(&allocs, &node(), &Columns::defaults()).table;
        let keys: Vec<(&str, &str)> = table
            .rows
            .iter()
            .map(|r| (r[0].as_str(), r[1].as_str()))
            .collect();
        assert_eq!(keys, [("a", "y"), ("a", "z"), ("b", "x")]);
    }

    #[test]
    fn meta_is_merged_task_over_group_over_job() {
        let mut t = task("server", None);
        t.meta.insert("owner".to_owned(), "task".to_owned());
        t.meta.insert("team".to_owned(), "task-team".to_owned());
        let columns = Columns::choose(
            None,
            &[
                "team".into(),
                "tier".into(),
                "owner".into(),
                "absent".into(),
            ],
        )
        .expect("valid");
        let table = project(
            &[alloc("a", vec![t, task("other", None)])],
            &node(),
            &columns,
        )
        .table;
        // "other" sorts first and has no task meta: group then job values show through.
        assert_eq!(column(&table, 0, "meta_team"), "group");
        assert_eq!(column(&table, 0, "meta_tier"), "job");
        assert_eq!(column(&table, 0, "meta_owner"), "");
        assert_eq!(column(&table, 1, "meta_team"), "task-team");
        assert_eq!(column(&table, 1, "meta_owner"), "task");
        assert_eq!(column(&table, 1, "meta_absent"), "");
    }

    #[test]
    fn without_a_job_tasks_come_from_the_allocation_itself() {
        let mut a = alloc("a", vec![]);
        a.job = None;
        a.allocated_resources = Some(AllocatedResources {
            task_lifecycles: BTreeMap::from([
                ("main".to_owned(), None),
                (
                    "init".to_owned(),
                    Some(Lifecycle {
                        hook: "prestart".to_owned(),
                        sidecar: false,
                    }),
                ),
            ]),
        });
        let projection = project(&[a], &node(), &Columns::defaults());
        let table = projection.table;
        assert_eq!(table.rows.len(), 2);
        assert_eq!(column(&table, 0, "task"), "init");
        assert_eq!(column(&table, 0, "task_lifecycle"), "prestart");
        assert_eq!(column(&table, 1, "job_name"), "");
        assert!(projection.allocations_without_tasks.is_empty());
    }

    #[test]
    fn an_allocation_with_no_task_information_is_reported() {
        let mut a = alloc("lonely", vec![]);
        a.job = None;
        let projection = project(&[a], &node(), &Columns::defaults());
        assert!(projection.table.rows.is_empty());
        assert_eq!(projection.allocations_without_tasks, ["lonely"]);
    }

    #[test]
    fn opt_in_columns_follow_the_keys_in_the_order_asked() {
        let columns = Columns::choose(
            Some(&[
                "client_status".into(),
                "task".into(),
                "alloc_index".into(),
                "node_pool".into(),
            ]),
            &[],
        )
        .expect("valid");
        assert_eq!(
            columns.header(),
            [
                "alloc_id",
                "task",
                "client_status",
                "alloc_index",
                "node_pool"
            ]
        );
        let table = project(&[alloc("a", vec![task("t", None)])], &node(), &columns).table;
        assert_eq!(table.rows[0], ["a", "t", "running", "3", "gpu"]);
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

    #[test]
    fn alloc_index_is_the_trailing_number() {
        assert_eq!(alloc_index("web.api[12]"), "12");
        assert_eq!(alloc_index("weird[name].g[0]"), "0");
        assert_eq!(alloc_index("no-index"), "");
    }
}
