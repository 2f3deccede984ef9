//! The projection of Nomad allocations to rows (one per allocation task), with the columns the
//! user chose ([`crate::table::columns`]). Pure data in, data out.

use std::collections::{BTreeMap, BTreeSet};

use crate::nomad::types::{Allocation, Job, Lifecycle, Task, TaskGroup};
use crate::table::columns::{Column, Columns, Field};
use crate::table::node_columns::{NodeInfo, Nodes};

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
    job?.task_groups.iter().find(|g| &*g.name == group)
}

fn tasks_of(alloc: &Allocation) -> Vec<TaskInfo<'_>> {
    if let Some(group) = task_group(alloc.job.as_deref(), &alloc.task_group)
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
        Some(l) => l.hook.to_string(),
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
            Field::AllocId => alloc.id.to_string(),
            Field::Task => task.name.to_owned(),
            Field::AllocName => alloc.name.clone(),
            Field::Namespace => alloc.namespace.to_string(),
            Field::JobId => alloc.job_id.to_string(),
            Field::JobName => job_field(|j| j.name.to_string()),
            Field::ParentJobId => job_field(|j| j.parent_id.to_string()),
            Field::JobType => job_field(|j| j.job_type.to_string()),
            Field::JobVersion => job_field(|j| j.version.to_string()),
            Field::Group => alloc.task_group.to_string(),
            Field::TaskDriver => task.driver.to_owned(),
            Field::TaskLifecycle => lifecycle_name(task.lifecycle),
            Field::NodeId => alloc.node_id.to_string(),
            Field::NodeName if alloc.node_name.is_empty() => node.name.clone(),
            Field::NodeName => alloc.node_name.to_string(),
            Field::Datacenter => node.datacenter.clone(),
            Field::Region => job_field(|j| j.region.to_string()),
            Field::ClientStatus => alloc.client_status.to_string(),
            Field::DesiredStatus => alloc.desired_status.to_string(),
            Field::AllocIndex => alloc_index(&alloc.name),
            Field::NodePool => node.node_pool.clone(),
            Field::DeploymentId => alloc.deployment_id.to_string(),
            Field::TaskKind => task.kind.to_owned(),
        },
    }
}

/// What of `job` the rows read: all of it but the meta whose keys no column names (`meta_keys`,
/// from [`Columns::meta_keys`]). The cluster scope holds thousands of job versions, and
/// their meta maps, mostly unread, were most of their size.
pub fn job_for_rows(job: &Job, meta_keys: &BTreeSet<String>) -> Job {
    let meta = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .filter(|(k, _)| meta_keys.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    Job {
        id: job.id.clone(),
        name: job.name.clone(),
        parent_id: job.parent_id.clone(),
        job_type: job.job_type.clone(),
        region: job.region.clone(),
        node_pool: job.node_pool.clone(),
        version: job.version,
        meta: meta(&job.meta),
        task_groups: job
            .task_groups
            .iter()
            .map(|g| TaskGroup {
                name: g.name.clone(),
                meta: meta(&g.meta),
                tasks: g
                    .tasks
                    .iter()
                    .map(|t| Task {
                        name: t.name.clone(),
                        driver: t.driver.clone(),
                        kind: t.kind.clone(),
                        meta: meta(&t.meta),
                        lifecycle: t.lifecycle.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The rows of one allocation, one per task of its group, sorted by task; empty when nothing in
/// Nomad's answer names its tasks. `node` gives the node columns.
pub fn allocation_rows(alloc: &Allocation, node: &NodeInfo, columns: &Columns) -> Vec<Vec<String>> {
    let tasks = tasks_of(alloc);
    let job = alloc.job.as_deref();
    let group = task_group(job, &alloc.task_group);
    let mut rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|task| {
            let source = RowSource {
                alloc,
                job,
                group,
                task,
                node,
            };
            columns.iter().map(|c| cell(c, source)).collect()
        })
        .collect();
    rows.sort_by(|a, b| a[1].cmp(&b[1]));
    rows
}

/// Projects allocations to rows: one per task of each allocation's group, in every client
/// status, sorted by `(alloc_id, task)`, with each allocation's node columns from `nodes`.
pub fn project<'a>(
    allocations: impl IntoIterator<Item = &'a Allocation>,
    nodes: &Nodes,
    columns: &Columns,
) -> Projection {
    let mut rows = Vec::new();
    let mut allocations_without_tasks = Vec::new();
    for alloc in allocations {
        let mut alloc_rows = allocation_rows(alloc, nodes.of(&alloc.node_id), columns);
        if alloc_rows.is_empty() {
            allocations_without_tasks.push(alloc.id.to_string());
        }
        rows.append(&mut alloc_rows);
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
    use std::sync::Arc;

    use crate::nomad::types::{AllocatedResources, Task};

    fn task(name: &str, lifecycle: Option<(&str, bool)>) -> Task {
        Task {
            name: name.into(),
            driver: "docker".into(),
            lifecycle: lifecycle.map(|(hook, sidecar)| Lifecycle {
                hook: hook.into(),
                sidecar,
            }),
            ..Task::default()
        }
    }

    fn alloc(id: &str, tasks: Vec<Task>) -> Allocation {
        Allocation {
            id: id.into(),
            namespace: "default".into(),
            name: "web.api[3]".into(),
            node_id: "node-1".into(),
            node_name: "client-1".into(),
            job_id: "web".into(),
            task_group: "api".into(),
            client_status: "running".into(),
            desired_status: "run".into(),
            job: Some(Arc::new(Job {
                id: "web".into(),
                name: "web".into(),
                job_type: "service".into(),
                region: "eu".into(),
                version: 4,
                meta: BTreeMap::from([
                    ("team".to_owned(), "job".to_owned()),
                    ("tier".to_owned(), "job".to_owned()),
                ]),
                task_groups: vec![TaskGroup {
                    name: "api".into(),
                    meta: BTreeMap::from([("team".to_owned(), "group".to_owned())]),
                    tasks,
                }],
                ..Job::default()
            })),
            ..Allocation::default()
        }
    }

    fn node() -> Nodes {
        Nodes::single(NodeInfo {
            id: "node-1".into(),
            name: "client-1".into(),
            datacenter: "dc7".to_owned(),
            node_pool: "gpu".into(),
        })
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
    fn a_job_kept_for_the_rows_drops_only_meta_no_column_reads() {
        let mut t = task("server", Some(("prestart", true)));
        t.meta.insert("owner".to_owned(), "task".to_owned());
        t.meta.insert("unread".to_owned(), "x".repeat(100));
        let full = alloc("a", vec![t, task("other", None)]);
        for meta in [
            vec![],
            vec!["team".to_owned()],
            vec!["owner".into(), "tier".into()],
        ] {
            let columns = Columns::choose(None, &meta).expect("valid");
            let job = job_for_rows(full.job.as_deref().expect("job"), &columns.meta_keys());
            let kept_keys: BTreeSet<&String> = job
                .meta
                .keys()
                .chain(job.task_groups.iter().flat_map(|g| g.meta.keys()))
                .chain(
                    job.task_groups
                        .iter()
                        .flat_map(|g| g.tasks.iter().flat_map(|t| t.meta.keys())),
                )
                .collect();
            assert!(
                kept_keys.iter().all(|k| meta.contains(k)),
                "{kept_keys:?} kept for {meta:?}"
            );
            let trimmed = Allocation {
                job: Some(Arc::new(job)),
                ..full.clone()
            };
            assert_eq!(
                project(&[trimmed], &node(), &columns),
                project(std::slice::from_ref(&full), &node(), &columns),
                "the same rows with {meta:?}"
            );
        }
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
                        hook: "prestart".into(),
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
    fn alloc_index_is_the_trailing_number() {
        assert_eq!(alloc_index("web.api[12]"), "12");
        assert_eq!(alloc_index("weird[name].g[0]"), "0");
        assert_eq!(alloc_index("no-index"), "");
    }
}
