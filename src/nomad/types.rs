//! Nomad's JSON, as much of it as the table needs. Every field is optional and tolerates `null`
//! (Nomad omits zero fields of a full allocation and writes nil maps as `null`), and unknown
//! fields are ignored, so a newer or older Nomad decodes the same way. Nomad's PascalCase stays
//! in this file.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};

/// Decodes `null` as the type's default, as Go's zero values would be.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// An allocation: from `/v1/node/:id/allocations` and `/v1/allocation/:id` with its `Job`, from
/// the event stream without it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct Allocation {
    /// Shared: the model's key, what was pushed and what was rendered hold this one copy
    /// instead of one each.
    #[serde(rename = "ID", deserialize_with = "nullable")]
    pub id: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub namespace: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(rename = "NodeID", deserialize_with = "nullable")]
    pub node_id: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub node_name: Arc<str>,
    #[serde(rename = "JobID", deserialize_with = "nullable")]
    pub job_id: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub task_group: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub client_status: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub desired_status: Arc<str>,
    #[serde(rename = "DeploymentID", deserialize_with = "nullable")]
    pub deployment_id: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub modify_index: u64,
    /// Moves only on server-side changes (placement, stop, in-place job update): when it is
    /// unchanged, the allocation still runs the same job version.
    #[serde(deserialize_with = "nullable")]
    pub alloc_modify_index: u64,
    /// Shared: in cluster scope many allocations run the same job version.
    pub job: Option<Arc<Job>>,
    pub allocated_resources: Option<AllocatedResources>,
    /// They name every task once the client has reported; a reload through Nomad also reads
    /// Vector's task state from here.
    #[serde(deserialize_with = "nullable")]
    pub task_states: BTreeMap<String, TaskState>,
}

/// An `AllocListStub` of `/v1/allocations`: no `Job` (only its version), no `DeploymentID`, no
/// `AllocModifyIndex`; task names only in `TaskStates`, once the client has reported, which
/// the cluster scope does not ask for (the job gives them).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocationStub {
    #[serde(rename = "ID", deserialize_with = "nullable")]
    pub id: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub namespace: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(rename = "NodeID", deserialize_with = "nullable")]
    pub node_id: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub node_name: Arc<str>,
    #[serde(rename = "JobID", deserialize_with = "nullable")]
    pub job_id: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub job_version: u64,
    #[serde(deserialize_with = "nullable")]
    pub task_group: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub client_status: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub desired_status: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub modify_index: u64,
}

impl AllocationStub {
    /// The allocation, running `job` (the version the stub names).
    pub fn with_job(self, job: Arc<Job>) -> Allocation {
        Allocation {
            id: self.id,
            namespace: self.namespace,
            name: self.name,
            node_id: self.node_id,
            node_name: self.node_name,
            job_id: self.job_id,
            task_group: self.task_group,
            client_status: self.client_status,
            desired_status: self.desired_status,
            modify_index: self.modify_index,
            job: Some(job),
            ..Allocation::default()
        }
    }
}

/// `Allocation.TaskStates[task]`, as far as it is read.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskState {
    /// `pending`, `running` or `dead`.
    #[serde(deserialize_with = "nullable")]
    pub state: String,
    /// When the task last started running: RFC 3339 in UTC (the client sets
    /// `time.Now().UTC()`), or Go's zero time before it ever ran.
    #[serde(deserialize_with = "nullable")]
    pub started_at: String,
}

/// `Allocation.AllocatedResources`: its `TaskLifecycles` name every task with its lifecycle even
/// where the `Job` is missing.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocatedResources {
    #[serde(deserialize_with = "nullable")]
    pub task_lifecycles: BTreeMap<String, Option<Lifecycle>>,
}

/// The job version an allocation runs.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct Job {
    #[serde(rename = "ID", deserialize_with = "nullable")]
    pub id: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub name: Arc<str>,
    #[serde(rename = "ParentID", deserialize_with = "nullable")]
    pub parent_id: Arc<str>,
    #[serde(rename = "Type", deserialize_with = "nullable")]
    pub job_type: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub region: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub node_pool: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub version: u64,
    #[serde(deserialize_with = "nullable")]
    pub meta: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable")]
    pub task_groups: Vec<TaskGroup>,
}

/// A task group of a job.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskGroup {
    #[serde(deserialize_with = "nullable")]
    pub name: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub meta: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable")]
    pub tasks: Vec<Task>,
}

/// A task of a task group.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct Task {
    #[serde(deserialize_with = "nullable")]
    pub name: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub driver: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub kind: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub meta: BTreeMap<String, String>,
    pub lifecycle: Option<Lifecycle>,
}

/// `Task.Lifecycle`; `null` means a main task.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct Lifecycle {
    #[serde(deserialize_with = "nullable")]
    pub hook: Arc<str>,
    #[serde(deserialize_with = "nullable")]
    pub sidecar: bool,
}

/// A node, from `/v1/node/:id`, a `NodeListStub` of `/v1/nodes`, or a `Node` event's payload.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct Node {
    #[serde(rename = "ID", deserialize_with = "nullable")]
    pub id: String,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub datacenter: String,
    #[serde(deserialize_with = "nullable")]
    pub node_pool: String,
}

/// `/v1/agent/self`, whose top-level keys are lowercase.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct AgentSelf {
    #[serde(deserialize_with = "nullable")]
    pub config: AgentConfig,
    #[serde(deserialize_with = "nullable")]
    pub stats: AgentStats,
}

/// The agent's configuration; `Client.AllocDir` is `""` unless set explicitly.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct AgentConfig {
    #[serde(deserialize_with = "nullable")]
    pub data_dir: String,
    #[serde(deserialize_with = "nullable")]
    pub client: AgentClientConfig,
}

/// `config.Client` of `/v1/agent/self`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "PascalCase")]
pub struct AgentClientConfig {
    #[serde(deserialize_with = "nullable")]
    pub alloc_dir: String,
}

/// `stats` of `/v1/agent/self`: `client` is present only on an agent that runs a client.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct AgentStats {
    pub client: Option<AgentClientStats>,
}

/// `stats.client` of `/v1/agent/self`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct AgentClientStats {
    #[serde(deserialize_with = "nullable")]
    pub node_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_and_missing_fields_decode_as_zero_values() {
        let alloc: Allocation = serde_json::from_str(
            r#"{"ID":"a1","Job":{"Meta":null,"TaskGroups":[{"Name":"g","Tasks":null}]},"TaskStates":null}"#,
        )
        .expect("decodes");
        assert_eq!(&*alloc.id, "a1");
        assert_eq!(&*alloc.namespace, "");
        let job = alloc.job.expect("job present");
        assert!(job.meta.is_empty());
        assert!(job.task_groups[0].tasks.is_empty());
        assert!(alloc.task_states.is_empty());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let node: Node = serde_json::from_str(
            r#"{"ID":"n","Datacenter":"dc9","XFuture":{"a":[1,2]},"Attributes":{"x":"y"}}"#,
        )
        .expect("decodes");
        assert_eq!(node.datacenter, "dc9");
    }

    #[test]
    fn lifecycles_decode_with_null_for_main_tasks() {
        let resources: AllocatedResources = serde_json::from_str(
            r#"{"TaskLifecycles":{"main":null,"init":{"Hook":"prestart","Sidecar":false}}}"#,
        )
        .expect("decodes");
        assert_eq!(resources.task_lifecycles["main"], None);
        assert_eq!(
            resources.task_lifecycles["init"],
            Some(Lifecycle {
                hook: "prestart".into(),
                sidecar: false
            })
        );
    }

    #[test]
    fn agent_self_without_a_client_has_no_node_id() {
        let agent: AgentSelf = serde_json::from_str(
            r#"{"config":{"DataDir":"/d","Client":{"AllocDir":""}},"member":{},"stats":{"nomad":{}}}"#,
        )
        .expect("decodes");
        assert!(agent.stats.client.is_none());
        assert_eq!(agent.config.data_dir, "/d");
    }
}
