//! Namespaces and jobs: registering versions, and the children of periodic and parameterized
//! jobs.

use super::{Cluster, Job, MessageType, unix_nanos};

impl Cluster {
    pub fn add_namespace(&mut self, name: &str) {
        self.namespaces.insert(name.to_owned());
        self.commit(MessageType::Other, &[]);
    }

    /// Registers a job, or a new version of it; returns the version.
    pub fn register_job(&mut self, mut job: Job) -> u64 {
        self.namespaces.insert(job.namespace.clone());
        let key = (job.namespace.clone(), job.id.clone());
        let index = self.commit(MessageType::Other, &[]);
        match self.jobs.get(&key) {
            Some(previous) => {
                job.version = previous.version + 1;
                job.create_index = previous.create_index;
            }
            None => {
                job.version = 0;
                job.create_index = index;
            }
        }
        job.modify_index = index;
        job.job_modify_index = index;
        job.submit_time = unix_nanos();
        let version = job.version;
        self.jobs.insert(key, job);
        version
    }

    /// The current version of a job.
    pub fn job(&self, namespace: &str, id: &str) -> Option<&Job> {
        self.jobs.get(&(namespace.to_owned(), id.to_owned()))
    }

    /// Launches a child of a periodic job, as the periodic dispatcher does at `launch_unix`.
    pub fn launch_periodic(
        &mut self,
        namespace: &str,
        parent_id: &str,
        launch_unix: i64,
    ) -> String {
        self.register_child(
            namespace,
            parent_id,
            format!("periodic-{launch_unix}"),
            |child| {
                child.periodic = false;
            },
        )
    }

    /// Dispatches a parameterized job; the dispatch meta is merged into the child's meta.
    pub fn dispatch(
        &mut self,
        namespace: &str,
        parent_id: &str,
        meta: &[(&str, &str)],
        launch_unix: i64,
    ) -> String {
        let suffix = self.rng.u32(..);
        self.register_child(
            namespace,
            parent_id,
            format!("dispatch-{launch_unix}-{suffix:08x}"),
            |child| {
                child.parameterized = false;
                child.dispatched = true;
                for (key, value) in meta {
                    child.meta.insert((*key).to_owned(), (*value).to_owned());
                }
            },
        )
    }

    /// Registers a child of `parent_id` named `<parent_id>/<suffix>`, with `edit` applied.
    fn register_child(
        &mut self,
        namespace: &str,
        parent_id: &str,
        suffix: String,
        edit: impl FnOnce(&mut Job),
    ) -> String {
        let mut child = self
            .job(namespace, parent_id)
            .unwrap_or_else(|| panic!("no parent job {namespace}/{parent_id}"))
            .clone();
        child.id = format!("{parent_id}/{suffix}");
        child.name = child.id.clone();
        child.parent_id = parent_id.to_owned();
        edit(&mut child);
        let id = child.id.clone();
        self.register_job(child);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Task, TaskGroup};

    #[test]
    fn periodic_children_carry_the_parent_id() {
        let mut c = Cluster::new(1);
        c.register_job(
            Job::batch("report")
                .periodic()
                .group(TaskGroup::new("g").task(Task::new("t", "exec"))),
        );
        let child = c.launch_periodic("default", "report", 1_700_000_000);
        assert_eq!(child, "report/periodic-1700000000");
        let job = c.job("default", &child).expect("child registered");
        assert_eq!(job.parent_id, "report");
        assert!(!job.periodic);
    }
}
