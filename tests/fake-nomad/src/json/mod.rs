//! Nomad's JSON encoding of the fake's state, following the go-msgpack JSON handle Nomad uses:
//! struct keys sorted by name (serde_json's default `Map` is a `BTreeMap`, so keys come out
//! sorted), every zero field of a full `Allocation` omitted, `Job`/`TaskGroup`/`Task`/stubs
//! carrying their zero values, times as int64 Unix nanoseconds, a zero `time.Time` as `null`, and
//! fields a client does not know about, as a newer Nomad would send. Allocations and jobs here;
//! nodes and the agent in [`nodes`].

use serde_json::{Map, Value, json};

mod nodes;

use crate::model::{Allocation, Job, Task, TaskGroup, TaskState};

pub use nodes::{agent_self, node, node_stub};

/// Go's `time.Time` in JSON: RFC 3339, and `null` for the zero time.
fn rfc3339(nanos: Option<i64>) -> Value {
    match nanos {
        None => Value::Null,
        Some(ns) => {
            let secs = ns.div_euclid(1_000_000_000);
            let sub = ns.rem_euclid(1_000_000_000);
            Value::String(format_rfc3339(secs, sub))
        }
    }
}

/// Formats a UTC timestamp (days-from-civil algorithm; no calendar crate needed for a fake).
fn format_rfc3339(secs: i64, nanos: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn string_map(map: &std::collections::BTreeMap<String, String>) -> Value {
    if map.is_empty() {
        // A nil Go map encodes as null.
        Value::Null
    } else {
        Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }
}

fn lifecycle(task: &Task) -> Value {
    match task.lifecycle {
        None => Value::Null,
        Some((hook, sidecar)) => json!({"Hook": hook.as_str(), "Sidecar": sidecar}),
    }
}

fn task(task: &Task) -> Value {
    json!({
        "Actions": null,
        "Affinities": null,
        "Artifacts": null,
        "CSIPluginConfig": null,
        "Config": {"command": "/bin/run", "args": ["--serve"]},
        "Constraints": null,
        "Consul": null,
        "DispatchPayload": null,
        "Driver": task.driver,
        "Env": null,
        "Identities": null,
        "Identity": {"Audience": ["nomadproject.io"], "ChangeMode": "", "ChangeSignal": "", "Env": false, "File": false, "Filepath": "", "Name": "default", "ServiceName": "", "TTL": 0},
        "KillSignal": "",
        "KillTimeout": 5_000_000_000_i64,
        "Kind": task.kind,
        "Leader": false,
        "Lifecycle": lifecycle(task),
        "LogConfig": {"Disabled": false, "MaxFileSizeMB": 10, "MaxFiles": 10},
        "Meta": string_map(&task.meta),
        "Name": task.name,
        "Resources": {"CPU": 100, "Cores": 0, "Devices": null, "DiskMB": 0, "IOPS": 0, "MemoryMB": 300, "MemoryMaxMB": 0, "NUMA": null, "Networks": null},
        "RestartPolicy": {"Attempts": 2, "Delay": 15_000_000_000_i64, "Interval": 1_800_000_000_000_i64, "Mode": "fail", "RenderTemplates": false},
        "Schedule": null,
        "Services": null,
        "ShutdownDelay": 0,
        "Templates": null,
        "User": "",
        "Vault": null,
        "VolumeMounts": null,
        "XFutureTaskField": {"Added": "in a later Nomad"},
    })
}

fn task_group(group: &TaskGroup) -> Value {
    json!({
        "Affinities": null,
        "Constraints": null,
        "Consul": {"Cluster": "default", "Namespace": "", "Partition": ""},
        "Count": group.count,
        "Disconnect": null,
        "EphemeralDisk": {"Migrate": false, "SizeMB": 300, "Sticky": false},
        "MaxClientDisconnect": null,
        "Meta": string_map(&group.meta),
        "Migrate": {"HealthCheck": "checks", "HealthyDeadline": 300_000_000_000_i64, "MaxParallel": 1, "MinHealthyTime": 10_000_000_000_i64},
        "Name": group.name,
        "Networks": null,
        "PreventRescheduleOnLost": false,
        "ReschedulePolicy": null,
        "RestartPolicy": {"Attempts": 2, "Delay": 15_000_000_000_i64, "Interval": 1_800_000_000_000_i64, "Mode": "fail", "RenderTemplates": false},
        "Scaling": null,
        "Services": null,
        "ShutdownDelay": null,
        "Spreads": null,
        "StopAfterClientDisconnect": null,
        "Tasks": group.tasks.iter().map(task).collect::<Vec<_>>(),
        "Update": null,
        "Volumes": null,
    })
}

/// A full `Job` (zero values kept, as the Job struct does not omit them).
pub fn job(job: &Job) -> Value {
    let periodic = if job.periodic {
        json!({"Enabled": true, "ProhibitOverlap": false, "Spec": "*/15 * * * *", "SpecType": "cron", "TimeZone": "UTC", "Specs": ["*/15 * * * *"]})
    } else {
        Value::Null
    };
    let parameterized = if job.parameterized {
        json!({"MetaOptional": null, "MetaRequired": null, "Payload": "optional"})
    } else {
        Value::Null
    };
    json!({
        "Affinities": null,
        "AllAtOnce": false,
        "Constraints": null,
        "ConsulNamespace": "",
        "CreateIndex": job.create_index,
        "Datacenters": job.datacenters,
        "DispatchIdempotencyToken": "",
        "Dispatched": job.dispatched,
        "ID": job.id,
        "JobModifyIndex": job.job_modify_index,
        "Meta": string_map(&job.meta),
        "ModifyIndex": job.modify_index,
        "Multiregion": null,
        "Name": job.name,
        "Namespace": job.namespace,
        "NodePool": job.node_pool,
        "NomadTokenID": "",
        "ParameterizedJob": parameterized,
        "ParentID": job.parent_id,
        "Payload": null,
        "Periodic": periodic,
        "Priority": 50,
        "Region": job.region,
        "Spreads": null,
        "Stable": false,
        "Status": if job.stop { "dead" } else { "running" },
        "StatusDescription": "",
        "Stop": job.stop,
        "SubmitTime": job.submit_time,
        "TaskGroups": job.groups.iter().map(task_group).collect::<Vec<_>>(),
        "Type": job.job_type.as_str(),
        "UI": null,
        "Update": {"AutoPromote": false, "AutoRevert": false, "Canary": 0, "HealthCheck": "", "HealthyDeadline": 0, "MaxParallel": 0, "MinHealthyTime": 0, "ProgressDeadline": 0, "Stagger": 0},
        "VaultNamespace": "",
        "Version": job.version,
        "VersionTag": null,
        "XFutureJobField": ["unknown", "to", "clients"],
    })
}

fn task_state(state: &TaskState, create_time: i64) -> Value {
    json!({
        "Events": [{
            "Details": {},
            "DisplayMessage": "Task received by client",
            "Message": "",
            "Time": create_time,
            "Type": "Received",
        }],
        "Failed": state.failed,
        "FinishedAt": rfc3339(state.finished_at),
        "LastRestart": Value::Null,
        "Paused": false,
        "Restarts": 0,
        "StartedAt": rfc3339(state.started_at),
        "State": state.state,
        "TaskHandle": Value::Null,
    })
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// The allocation's task names with their lifecycles, as `AllocatedResources.TaskLifecycles`.
fn task_lifecycles(alloc: &Allocation) -> Map<String, Value> {
    alloc
        .job
        .task_group(&alloc.task_group)
        .map(|g| {
            g.tasks
                .iter()
                .map(|t| (t.name.clone(), lifecycle(t)))
                .collect()
        })
        .unwrap_or_default()
}

/// A full `Allocation`. `with_job` is false for event payloads, which Nomad sends without `Job`.
pub fn allocation(alloc: &Allocation, with_job: bool) -> Value {
    let lifecycles = task_lifecycles(alloc);
    let task_resources: Map<String, Value> = lifecycles
        .keys()
        .map(|name| {
            (
                name.clone(),
                json!({"Cpu": {"CpuShares": 100, "ReservedCores": null}, "Devices": null, "Memory": {"MemoryMB": 300, "MemoryMaxMB": 0}, "Networks": null}),
            )
        })
        .collect();
    let task_states: Map<String, Value> = alloc
        .task_states
        .iter()
        .map(|(name, state)| (name.clone(), task_state(state, alloc.create_time)))
        .collect();
    let mut fields = json!({
        "AllocModifyIndex": alloc.alloc_modify_index,
        "AllocStates": null,
        "AllocatedResources": {
            "Shared": {"DiskMB": 300, "Networks": null, "Ports": null},
            "TaskLifecycles": lifecycles,
            "Tasks": task_resources,
        },
        "ClientDescription": "",
        "ClientStatus": alloc.client_status.as_str(),
        "CreateIndex": alloc.create_index,
        "CreateTime": alloc.create_time,
        "DeploymentID": alloc.deployment_id,
        "DeploymentStatus": null,
        "DesiredDescription": "",
        "DesiredStatus": alloc.desired_status,
        "DesiredTransition": {},
        "EvalID": alloc.eval_id,
        "FollowupEvalID": "",
        "ID": alloc.id,
        "Job": if with_job { job(&alloc.job) } else { Value::Null },
        "JobID": alloc.job.id,
        "Metrics": {"AllocationTime": 171_600, "ClassExhausted": null, "ClassFiltered": null, "CoalescedFailures": 0, "ConstraintFiltered": null, "DimensionExhausted": null, "NodesAvailable": {"dc1": 1}, "NodesEvaluated": 1, "NodesExhausted": 0, "NodesFiltered": 0, "NodesInPool": 1, "QuotaExhausted": null, "ResourcesExhausted": null, "ScoreMetaData": null, "Scores": null},
        "ModifyIndex": alloc.modify_index,
        "ModifyTime": alloc.modify_time,
        "Name": alloc.name,
        "Namespace": alloc.namespace,
        "NetworkStatus": null,
        "NextAllocation": alloc.next_allocation,
        "NodeID": alloc.node_id,
        "NodeName": alloc.node_name,
        "PreviousAllocation": alloc.previous_allocation,
        "RescheduleTracker": null,
        "SigningKeyID": "7c3f0e1a-2b4d-4e5f-8a9b-0c1d2e3f4a5b",
        "TaskGroup": alloc.task_group,
        "TaskResources": null,
        "TaskStates": task_states,
        "XFutureAllocationField": {"Nested": [1, 2, 3]},
    });
    let object = fields.as_object_mut().expect("built as an object");
    object.retain(|_, v| !is_zero(v));
    for pointer in &alloc.omitted_fields {
        remove_pointer(&mut fields, pointer);
    }
    fields
}

fn remove_pointer(value: &mut Value, pointer: &str) {
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return;
    };
    match value.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.remove(key);
        }
        Some(Value::Array(items)) => {
            if let Ok(i) = key.parse::<usize>()
                && i < items.len()
            {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// An event of the Allocation topic: all seven envelope fields, the payload without `Job`.
pub fn allocation_event(alloc: &Allocation, event_type: &str, index: u64) -> Value {
    json!({
        "FilterKeys": [alloc.job.id, alloc.deployment_id],
        "Index": index,
        "Key": alloc.id,
        "Namespace": alloc.namespace,
        "Payload": {"Allocation": allocation(alloc, false)},
        "Topic": "Allocation",
        "Type": event_type,
    })
}

/// An `AllocListStub`, as `/v1/allocations` returns (zero values kept).
pub fn allocation_stub(alloc: &Allocation, task_states: bool, resources: bool) -> Value {
    let mut stub = json!({
        "AllocatedResources": if resources { allocation(alloc, false)["AllocatedResources"].clone() } else { Value::Null },
        "ClientDescription": "",
        "ClientStatus": alloc.client_status.as_str(),
        "CreateIndex": alloc.create_index,
        "CreateTime": alloc.create_time,
        "DeploymentStatus": null,
        "DesiredDescription": "",
        "DesiredStatus": alloc.desired_status,
        "DesiredTransition": {"ForceReschedule": null, "Migrate": null, "MigrateDisablePlacement": null, "NoShutdownDelay": null, "Reschedule": null},
        "EvalID": alloc.eval_id,
        "FollowupEvalID": "",
        "ID": alloc.id,
        "JobID": alloc.job.id,
        "JobType": alloc.job.job_type.as_str(),
        "JobVersion": alloc.job.version,
        "ModifyIndex": alloc.modify_index,
        "ModifyTime": alloc.modify_time,
        "Name": alloc.name,
        "Namespace": alloc.namespace,
        "NextAllocation": alloc.next_allocation,
        "NodeID": alloc.node_id,
        "NodeName": alloc.node_name,
        "PreemptedAllocations": null,
        "PreemptedByAllocation": "",
        "RescheduleTracker": null,
        "TaskGroup": alloc.task_group,
        "TaskStates": Value::Null,
    });
    if task_states && !alloc.task_states.is_empty() {
        stub["TaskStates"] = allocation(alloc, false)["TaskStates"].clone();
    }
    stub
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cluster, Hook, Job, Node, Task, TaskGroup};

    fn sample() -> (Cluster, String) {
        let mut c = Cluster::new(3);
        let node = c.add_node(Node::new("n1"));
        c.register_job(
            Job::batch("etl").group(
                TaskGroup::new("g")
                    .task(Task::new("init", "exec").lifecycle(Hook::Prestart, false))
                    .task(Task::new("main", "exec")),
            ),
        );
        let id = c.place("default", "etl", "g", &node);
        (c, id)
    }

    #[test]
    fn keys_are_sorted_at_every_level() {
        let (c, id) = sample();
        let text = serde_json::to_string(&allocation(c.allocation(&id), true)).expect("json");
        let top: Vec<String> = serde_json::from_str::<Map<String, Value>>(&text)
            .expect("object")
            .keys()
            .cloned()
            .collect();
        let mut sorted = top.clone();
        sorted.sort();
        assert_eq!(top, sorted);
        // The raw text must also have them in order, not only the parsed map.
        let job_at = text.find("\"Job\":").expect("Job present");
        let job_id_at = text.find("\"JobID\":").expect("JobID present");
        assert!(job_at < job_id_at);
    }

    #[test]
    fn zero_fields_are_omitted_on_a_full_allocation_but_not_on_the_job() {
        let (c, id) = sample();
        let value = allocation(c.allocation(&id), true);
        // A fresh batch placement has no deployment, no previous allocation and no task states.
        for absent in [
            "DeploymentID",
            "PreviousAllocation",
            "TaskStates",
            "DesiredTransition",
        ] {
            assert!(value.get(absent).is_none(), "{absent} should be omitted");
        }
        assert_eq!(value["Job"]["ParentID"], "");
        assert_eq!(value["Job"]["Meta"], Value::Null);
        assert!(value["CreateTime"].as_i64().expect("int ns") > 1_600_000_000_000_000_000);
    }

    #[test]
    fn event_payloads_have_no_job_but_keep_task_lifecycles() {
        let (c, id) = sample();
        let value = allocation(c.allocation(&id), false);
        assert!(value.get("Job").is_none());
        assert_eq!(
            value["AllocatedResources"]["TaskLifecycles"]["init"],
            json!({"Hook": "prestart", "Sidecar": false})
        );
        assert_eq!(
            value["AllocatedResources"]["TaskLifecycles"]["main"],
            Value::Null
        );
    }

    #[test]
    fn zero_time_is_null_and_others_are_rfc3339() {
        assert_eq!(rfc3339(None), Value::Null);
        assert_eq!(
            rfc3339(Some(1_700_000_000_123_456_789)),
            json!("2023-11-14T22:13:20.123456789Z")
        );
        assert_eq!(rfc3339(Some(0)), json!("1970-01-01T00:00:00.000000000Z"));
    }

    #[test]
    fn omitted_fields_are_removed_by_pointer() {
        let (mut c, id) = sample();
        c.omit_field(&id, "/Job/TaskGroups/0/Tasks/0/Lifecycle");
        c.omit_field(&id, "/NodeName");
        let value = allocation(c.allocation(&id), true);
        assert!(value.get("NodeName").is_none());
        assert!(
            value["Job"]["TaskGroups"][0]["Tasks"][0]
                .get("Lifecycle")
                .is_none()
        );
    }
}
