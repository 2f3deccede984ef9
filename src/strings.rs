//! One copy of each string that many allocations of the cluster repeat (namespace, job, group,
//! node, statuses, deployment, task names): at 60,000 allocations, a copy each was some 250
//! bytes an allocation.

use std::collections::HashSet;
use std::sync::Arc;

use crate::nomad::types::{Allocation, AllocationStub, Job};

/// The strings allocations share.
#[derive(Debug, Default)]
pub struct StringPool {
    strings: HashSet<Arc<str>>,
}

impl StringPool {
    /// Makes `text` the pool's copy of it; the pool keeps it if it had none.
    fn share(&mut self, text: &mut Arc<str>) {
        match self.strings.get(&**text) {
            Some(shared) => *text = shared.clone(),
            None => {
                self.strings.insert(text.clone());
            }
        }
    }

    /// The pool's copy of `text`.
    pub fn share_str(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = text.into();
        self.strings.insert(shared.clone());
        shared
    }

    /// Makes every repeated string of `alloc` the pool's copy.
    pub fn share_strings(&mut self, alloc: &mut Allocation) {
        for text in [
            &mut alloc.namespace,
            &mut alloc.node_id,
            &mut alloc.node_name,
            &mut alloc.job_id,
            &mut alloc.task_group,
            &mut alloc.client_status,
            &mut alloc.desired_status,
            &mut alloc.deployment_id,
        ] {
            self.share(text);
        }
    }

    /// Makes every repeated string of `stub` the pool's copy: as each page of a listing comes,
    /// so that the listing holds one copy of them, not one a stub.
    pub fn share_stub_strings(&mut self, stub: &mut AllocationStub) {
        for text in [
            &mut stub.namespace,
            &mut stub.node_id,
            &mut stub.node_name,
            &mut stub.job_id,
            &mut stub.task_group,
            &mut stub.client_status,
            &mut stub.desired_status,
        ] {
            self.share(text);
        }
    }

    /// Makes the names, types and drivers of `job` the pool's copies: the cluster's job
    /// versions repeat them (every version of a job, most tasks of a driver).
    pub fn share_job_strings(&mut self, job: &mut Job) {
        for text in [
            &mut job.id,
            &mut job.name,
            &mut job.parent_id,
            &mut job.job_type,
            &mut job.region,
            &mut job.node_pool,
        ] {
            self.share(text);
        }
        for group in &mut job.task_groups {
            self.share(&mut group.name);
            for task in &mut group.tasks {
                self.share(&mut task.name);
                self.share(&mut task.driver);
                self.share(&mut task.kind);
                if let Some(lifecycle) = &mut task.lifecycle {
                    self.share(&mut lifecycle.hook);
                }
            }
        }
    }

    /// Forgets the strings only the pool still holds.
    pub fn forget_unused(&mut self) {
        self.strings.retain(|text| Arc::strong_count(text) > 1);
    }

    /// How many strings it holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.strings.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(id: &str, node: &str) -> Allocation {
        Allocation {
            id: id.into(),
            namespace: "default".into(),
            node_id: node.into(),
            job_id: "web".into(),
            ..Allocation::default()
        }
    }

    #[test]
    fn allocations_share_one_copy_and_unused_copies_are_forgotten() {
        let mut pool = StringPool::default();
        let (mut a, mut b) = (alloc("a", "n1"), alloc("b", "n1"));
        pool.share_strings(&mut a);
        pool.share_strings(&mut b);
        assert!(Arc::ptr_eq(&a.node_id, &b.node_id));
        assert!(Arc::ptr_eq(&a.namespace, &b.namespace));
        assert!(
            Arc::ptr_eq(&a.client_status, &b.client_status),
            "empty ones too"
        );
        let mut c = alloc("c", "n2");
        pool.share_strings(&mut c);
        assert_eq!(pool.len(), 5, "default, web, the empty string, n1 and n2");
        drop(c);
        pool.forget_unused();
        assert_eq!(pool.len(), 4, "n2 is gone with c");
        assert_eq!(&*b.node_id, "n1");
        let mut stub = AllocationStub {
            node_id: "n1".into(),
            ..AllocationStub::default()
        };
        pool.share_stub_strings(&mut stub);
        assert!(Arc::ptr_eq(&stub.node_id, &b.node_id));
        assert!(Arc::ptr_eq(&pool.share_str("web"), &b.job_id));
    }
}
