//! Allocations through their life, as the scheduler and the clients move them: placed,
//! replaced, updated in place, their client status reported, stopped and collected; and the
//! node listing's order and index.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Allocation, ClientStatus, Cluster, Hook, Job, JobType, MessageType, Task, TaskState, unix_nanos,
};

impl Cluster {
    /// Places a new allocation of `group` of the job's current version on `node_id`, as a
    /// scheduler plan does: `pending`, desired `run`, no task states yet. Returns its ID.
    pub fn place(&mut self, namespace: &str, job_id: &str, group: &str, node_id: &str) -> String {
        let job = self
            .job(namespace, job_id)
            .unwrap_or_else(|| panic!("no job {namespace}/{job_id}"))
            .clone();
        assert!(
            job.task_group(group).is_some(),
            "job {job_id} has no group {group}"
        );
        let node_name = self
            .nodes
            .get(node_id)
            .unwrap_or_else(|| panic!("no node {node_id}"))
            .name
            .clone();
        let name = match job.job_type {
            JobType::System | JobType::Sysbatch => format!("{}.{group}[0]", job.name),
            JobType::Service | JobType::Batch => {
                let key = (job.namespace.clone(), job.id.clone());
                let taken: BTreeSet<&str> = self
                    .allocations_by_job
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| self.allocations.get(id))
                    .filter(|a| a.desired_status == "run")
                    .map(|a| a.name.as_str())
                    .collect();
                (0..)
                    .map(|n| format!("{job_id}.{group}[{n}]"))
                    .find(|candidate| !taken.contains(candidate.as_str()))
                    .expect("a free allocation index")
            }
        };
        let id = self.insert_allocation(job, group, node_id, node_name, name, String::new());
        self.commit(MessageType::PlanResult, std::slice::from_ref(&id));
        id
    }

    fn insert_allocation(
        &mut self,
        job: Job,
        group: &str,
        node_id: &str,
        node_name: String,
        name: String,
        previous_allocation: String,
    ) -> String {
        let id = self.new_uuid();
        let eval_id = self.new_uuid();
        let deployment_id = match job.job_type {
            JobType::Service => self.new_uuid(),
            _ => String::new(),
        };
        let now = unix_nanos();
        let alloc = Allocation {
            id: id.clone(),
            eval_id,
            name,
            namespace: job.namespace.clone(),
            node_id: node_id.to_owned(),
            node_name,
            task_group: group.to_owned(),
            job,
            desired_status: "run",
            client_status: ClientStatus::Pending,
            deployment_id,
            previous_allocation,
            next_allocation: String::new(),
            task_states: BTreeMap::new(),
            create_index: 0,
            modify_index: 0,
            alloc_modify_index: 0,
            create_time: now,
            modify_time: now,
            omitted_fields: Vec::new(),
        };
        self.allocations_by_job
            .entry((alloc.namespace.clone(), alloc.job.id.clone()))
            .or_default()
            .insert(id.clone());
        self.allocations.insert(id.clone(), alloc);
        id
    }

    /// A destructive update or reschedule onto `node_id` (often the same node): the old allocation
    /// is told to stop and points at its replacement, which keeps its `Name` and runs the job's
    /// current version. Returns the new allocation's ID.
    pub fn replace(&mut self, old_id: &str, node_id: &str) -> String {
        let old = self.allocation(old_id).clone();
        let job = self
            .job(&old.namespace, &old.job.id)
            .expect("job of a live allocation")
            .clone();
        let node_name = self.nodes.get(node_id).expect("known node").name.clone();
        let new_id = self.insert_allocation(
            job,
            &old.task_group,
            node_id,
            node_name,
            old.name.clone(),
            old_id.to_owned(),
        );
        let old = self.allocations.get_mut(old_id).expect("checked above");
        old.desired_status = "stop";
        old.next_allocation = new_id.clone();
        // One plan stops the old allocation and places the new one: one raft write, one frame.
        self.commit(
            MessageType::PlanResult,
            &[old_id.to_owned(), new_id.clone()],
        );
        new_id
    }

    pub fn allocation(&self, id: &str) -> &Allocation {
        self.allocations
            .get(id)
            .unwrap_or_else(|| panic!("no allocation {id}"))
    }

    /// The client reports `status`; task states follow it the way a real client's would.
    pub fn set_client_status(&mut self, id: &str, status: ClientStatus) {
        self.set_client_statuses(&[(id, status)]);
    }

    fn apply_client_status(&mut self, id: &str, status: ClientStatus, now: i64) {
        let alloc = self
            .allocations
            .get_mut(id)
            .unwrap_or_else(|| panic!("no allocation {id}"));
        alloc.client_status = status;
        let tasks = alloc
            .job
            .task_group(&alloc.task_group)
            .map(|g| g.tasks.clone())
            .unwrap_or_default();
        alloc.task_states = tasks
            .iter()
            .filter_map(|task| {
                let state = task_state_for(status, task, now)?;
                Some((task.name.clone(), state))
            })
            .collect();
    }

    /// `nomad alloc stop` or a job stop: desired `stop`, and the client then reports `complete`.
    pub fn stop(&mut self, id: &str) {
        let alloc = self
            .allocations
            .get_mut(id)
            .unwrap_or_else(|| panic!("no allocation {id}"));
        alloc.desired_status = "stop";
        self.commit(MessageType::AllocationUpdateDesiredStatus, &[id.to_owned()]);
        self.set_client_status(id, ClientStatus::Complete);
    }

    /// Garbage-collects an allocation. Nomad emits no event for this, and the node's listing
    /// index may go backwards.
    pub fn gc(&mut self, id: &str) {
        if let Some(alloc) = self.allocations.remove(id)
            && let Some(ids) = self
                .allocations_by_job
                .get_mut(&(alloc.namespace, alloc.job.id))
        {
            ids.remove(id);
        }
        // Nomad's GC (`DeleteEval`) writes the allocs table's index: no event, but a node
        // left without allocations answers its listing with that index, so its blocking
        // query wakes.
        let index = self.commit(MessageType::Other, &[]);
        self.allocs_table_index = index;
    }

    /// Removes a JSON field (a JSON pointer such as `/Job/ParentID`) from one allocation's answers.
    pub fn omit_field(&mut self, id: &str, pointer: &str) {
        self.allocations
            .get_mut(id)
            .unwrap_or_else(|| panic!("no allocation {id}"))
            .omitted_fields
            .push(pointer.to_owned());
    }

    /// The node's allocations in Nomad's listing order: live ones by ID, then terminal ones by ID.
    pub fn node_allocations(&self, node_id: &str) -> Vec<&Allocation> {
        let (live, terminal): (Vec<&Allocation>, Vec<&Allocation>) = self
            .allocations
            .values()
            .filter(|a| a.node_id == node_id)
            .partition(|a| !a.client_status.is_terminal());
        live.into_iter().chain(terminal).collect()
    }

    /// `X-Nomad-Index` of the node listing: the largest `ModifyIndex` of its allocations, or the
    /// allocs table index when it has none.
    pub fn node_allocations_index(&self, node_id: &str) -> u64 {
        self.allocations
            .values()
            .filter(|a| a.node_id == node_id)
            .map(|a| a.modify_index)
            .max()
            .unwrap_or(self.allocs_table_index)
    }

    /// A batch of client updates in one raft write, as the server batches them for 50 ms: one
    /// frame with an event per allocation, possibly of many nodes.
    pub fn set_client_statuses(&mut self, updates: &[(&str, ClientStatus)]) {
        let now = unix_nanos();
        for (id, status) in updates {
            self.apply_client_status(id, *status, now);
        }
        let ids: Vec<String> = updates.iter().map(|(id, _)| (*id).to_owned()).collect();
        self.commit(MessageType::AllocationUpdated, &ids);
    }

    /// An in-place update: the job gets a new version (`change` edits it, e.g. its meta), and
    /// the scheduler moves the allocation to it without replacing it (a plan result, so
    /// `AllocModifyIndex` moves too).
    pub fn update_in_place(&mut self, id: &str, change: impl FnOnce(&mut Job)) {
        let alloc = self.allocation(id);
        let mut job = self
            .job(&alloc.namespace, &alloc.job.id)
            .cloned()
            .unwrap_or_else(|| alloc.job.clone());
        change(&mut job);
        let (namespace, job_id) = (job.namespace.clone(), job.id.clone());
        self.register_job(job);
        let job = self
            .job(&namespace, &job_id)
            .cloned()
            .expect("just registered");
        if let Some(alloc) = self.allocations.get_mut(id) {
            alloc.job = job;
        }
        self.commit(MessageType::PlanResult, &[id.to_owned()]);
    }
}

fn task_state_for(status: ClientStatus, task: &Task, now: i64) -> Option<TaskState> {
    let ephemeral_prestart = matches!(task.lifecycle, Some((Hook::Prestart, false)));
    let poststop = matches!(task.lifecycle, Some((Hook::Poststop, _)));
    let (state, failed, started, finished) = match status {
        ClientStatus::Pending => ("pending", false, false, false),
        ClientStatus::Running | ClientStatus::Unknown if ephemeral_prestart => {
            ("dead", false, true, true)
        }
        ClientStatus::Running | ClientStatus::Unknown if poststop => {
            ("pending", false, false, false)
        }
        ClientStatus::Running | ClientStatus::Unknown => ("running", false, true, false),
        ClientStatus::Complete | ClientStatus::Lost => ("dead", false, true, true),
        ClientStatus::Failed => ("dead", true, true, true),
    };
    Some(TaskState {
        state,
        failed,
        started_at: started.then_some(now),
        finished_at: finished.then_some(now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Node;

    fn cluster_with_web() -> (Cluster, String) {
        let mut c = Cluster::new(7);
        let node = c.add_node(Node::new("n1"));
        c.register_job(Job::web());
        (c, node)
    }

    #[test]
    fn placements_take_the_lowest_free_name_index() {
        let (mut c, node) = cluster_with_web();
        let a = c.place("default", "web", "api", &node);
        let b = c.place("default", "web", "api", &node);
        assert_eq!(c.allocation(&a).name, "web.api[0]");
        assert_eq!(c.allocation(&b).name, "web.api[1]");
    }

    #[test]
    fn replacement_keeps_the_name_and_links_both_allocations() {
        let (mut c, node) = cluster_with_web();
        let old = c.place("default", "web", "api", &node);
        let new = c.replace(&old, &node);
        assert_ne!(old, new);
        assert_eq!(c.allocation(&new).name, c.allocation(&old).name);
        assert_eq!(c.allocation(&old).next_allocation, new);
        assert_eq!(c.allocation(&new).previous_allocation, old);
        assert_eq!(c.allocation(&old).desired_status, "stop");
    }

    #[test]
    fn listing_index_goes_backwards_when_the_newest_allocation_is_collected() {
        let (mut c, node) = cluster_with_web();
        let a = c.place("default", "web", "api", &node);
        let b = c.place("default", "web", "api", &node);
        let before = c.node_allocations_index(&node);
        assert_eq!(before, c.allocation(&b).modify_index);
        c.gc(&b);
        assert_eq!(
            c.node_allocations_index(&node),
            c.allocation(&a).modify_index
        );
        assert!(c.node_allocations_index(&node) < before);
    }

    #[test]
    fn terminal_allocations_are_listed_after_live_ones() {
        let (mut c, node) = cluster_with_web();
        let ids: Vec<String> = (0..4)
            .map(|_| c.place("default", "web", "api", &node))
            .collect();
        c.set_client_status(&ids[0], ClientStatus::Complete);
        c.set_client_status(&ids[2], ClientStatus::Failed);
        let listed: Vec<&str> = c
            .node_allocations(&node)
            .iter()
            .map(|a| a.id.as_str())
            .collect();
        let mut live = vec![ids[1].as_str(), ids[3].as_str()];
        live.sort_unstable();
        let mut terminal = vec![ids[0].as_str(), ids[2].as_str()];
        terminal.sort_unstable();
        assert_eq!(listed, [live, terminal].concat());
    }
}
