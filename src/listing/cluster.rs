//! The cluster scope's listing (`--scope cluster`): every node from `/v1/nodes`, and every
//! allocation of every namespace the token can read from `/v1/allocations`, page by page.
//! Those stubs carry no job, only its version, so each is given its job from a cache keyed by
//! (namespace, job ID, job version), filled with one `/v1/allocation/:id` per key it lacks, at
//! most [`MAX_CONCURRENT_FETCHES`] at a time: 60,000 allocations of 2,000 job versions cost
//! 2,000 fetches at start and none at a resync where no job changed. The job also names the
//! tasks, so a pending allocation (no task states yet) has its rows from the start. Of each job
//! version the cache keeps only what the rows read ([`job_for_rows`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::JoinSet;
use tracing::debug;

use crate::listing::Parts;
use crate::nomad::types::{Allocation, AllocationStub, Job};
use crate::nomad::{Blocking, Error, NomadClient};
use crate::strings::StringPool;
use crate::table::columns::Columns;
use crate::table::projection::job_for_rows;

/// Allocations per page of `/v1/allocations` by default: a page of stubs is about 0.6 MB.
pub const PER_PAGE: usize = 1000;
/// Job fetches in flight at once.
pub const MAX_CONCURRENT_FETCHES: usize = 8;

/// A job version: (namespace, job ID, version).
pub type JobKey = (Arc<str>, Arc<str>, u64);

/// The jobs the table's allocations run, as much of them as the rows read, shared between
/// allocations of the same version, and the strings the allocations repeat.
#[derive(Debug, Default)]
pub struct JobCache {
    jobs: HashMap<JobKey, Arc<Job>>,
    strings: StringPool,
    /// The meta keys the columns read; the rest of the jobs' meta is dropped.
    meta_keys: BTreeSet<String>,
}

impl JobCache {
    /// A cache for the rows of `columns`.
    pub fn new(columns: &Columns) -> JobCache {
        JobCache {
            jobs: HashMap::new(),
            strings: StringPool::default(),
            meta_keys: columns.meta_keys(),
        }
    }

    pub fn get(&self, key: &JobKey) -> Option<Arc<Job>> {
        self.jobs.get(key).cloned()
    }

    /// What of `job` the cache keeps, with the shared copies of its strings.
    fn trim(&mut self, job: &Job) -> Arc<Job> {
        let mut kept = job_for_rows(job, &self.meta_keys);
        self.strings.share_job_strings(&mut kept);
        Arc::new(kept)
    }

    /// Gives `alloc` the shared copy of its job, as much of it as the rows read: the cached one
    /// if it is the same, else its own, which the cache then holds; and the shared copies of its
    /// repeated strings.
    pub fn intern(&mut self, alloc: &mut Allocation) {
        self.strings.share_strings(alloc);
        let Some(job) = &alloc.job else {
            return;
        };
        let trimmed = self.trim(job);
        let key = (alloc.namespace.clone(), job.id.clone(), job.version);
        match self.jobs.get(&key) {
            Some(cached) if *cached == trimmed => alloc.job = Some(cached.clone()),
            _ => {
                self.jobs.insert(key, trimmed.clone());
                alloc.job = Some(trimmed);
            }
        }
    }

    /// `stubs` with the shared copies of their repeated strings.
    fn share_stub_strings(&mut self, mut stubs: Vec<AllocationStub>) -> Vec<AllocationStub> {
        for stub in &mut stubs {
            self.strings.share_stub_strings(stub);
        }
        stubs
    }

    /// Forgets the jobs no allocation of a listing runs, and the strings none holds.
    pub fn retain(&mut self, used: &HashSet<JobKey>) {
        self.jobs.retain(|key, _| used.contains(key));
        self.strings.forget_unused();
    }

    /// How many job versions it holds.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }
}

/// The job version a stub names.
fn key_of(stub: &AllocationStub) -> JobKey {
    (
        stub.namespace.clone(),
        stub.job_id.clone(),
        stub.job_version,
    )
}

/// A listing of the whole cluster, its nodes and allocations delivered.
#[derive(Debug)]
pub struct ClusterListing {
    pub allocations: usize,
    pub nodes: usize,
    /// Where the event stream continues: the lower of the node listing's and the first page's
    /// `X-Nomad-Index` (each is its own table's), so that no change after either snapshot is
    /// skipped; what is replayed twice applies once.
    pub index: u64,
    /// Bytes received, fetches included.
    pub bytes: usize,
    /// Jobs fetched for this listing, and held after it.
    pub fetched_jobs: usize,
    pub cached_jobs: usize,
}

/// What became of the stubs of one job version missing from the cache.
#[derive(Debug, Default)]
struct Resolved {
    job: Option<Arc<Job>>,
    /// Allocations fetched that run another version by now: newer than their stubs.
    newer: Vec<Allocation>,
    /// Allocations gone (404) between the listing and the fetch.
    gone: HashSet<String>,
    bytes: usize,
}

/// The most pages of allocation stubs one listing follows: 100 million allocations at the
/// default page size, far beyond any cluster; only a server whose pages never end reaches it.
const MAX_PAGES: usize = 100_000;

/// Lists the cluster, and keeps the job cache between listings and fetches.
#[derive(Debug)]
pub struct ClusterLister {
    client: Arc<NomadClient>,
    jobs: Mutex<JobCache>,
    per_page: usize,
}

impl ClusterLister {
    /// A lister that asks for `per_page` allocations at a time (`--page-size`), for the rows of
    /// `columns`.
    pub fn new(client: Arc<NomadClient>, per_page: usize, columns: &Columns) -> ClusterLister {
        ClusterLister {
            client,
            jobs: Mutex::new(JobCache::new(columns)),
            per_page,
        }
    }

    fn jobs(&self) -> MutexGuard<'_, JobCache> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Shares the job of an allocation fetched with its job.
    pub fn intern(&self, alloc: &mut Allocation) {
        self.jobs().intern(alloc);
    }

    /// Lists every node, then every allocation with its job, into `parts` page by page; `None`
    /// when their receiver is gone.
    pub async fn list(
        &self,
        parts: &mut (impl Parts + Send),
    ) -> Result<Option<ClusterListing>, Error> {
        let nodes = self.client.nodes().await?;
        let mut bytes = nodes.bytes;
        let index_of_nodes = nodes.index;
        let listed_nodes = nodes.value.len();
        if !parts.nodes(nodes.value).await {
            return Ok(None);
        }
        let mut allocations = 0;
        let mut used = HashSet::new();
        let mut fetched_jobs = 0;
        let mut next_token: Option<String> = None;
        let mut tokens_seen = HashSet::new();
        let mut index: Option<u64> = None;
        loop {
            let page = self
                .client
                .allocation_stubs(self.per_page, next_token.as_deref())
                .await?;
            bytes += page.bytes;
            if index.is_none() {
                index = page.index;
            }
            // One copy of the strings stubs repeat, not one a stub.
            let stubs = self.jobs().share_stub_strings(page.value);
            let missing = self.missing(&stubs);
            fetched_jobs += missing.len();
            let resolved = self.resolve(missing).await?;
            bytes += resolved.values().map(|r| r.bytes).sum::<usize>();
            let assembled = self.assemble(stubs, resolved, &mut used);
            allocations += assembled.len();
            if !parts.allocations(assembled).await {
                return Ok(None);
            }
            match page.next_token {
                // Nomad's paginator never repeats a token, and no real cluster needs
                // MAX_PAGES: anything else (a broken proxy or server) would page for ever.
                Some(token)
                    if !tokens_seen.insert(token.clone()) || tokens_seen.len() > MAX_PAGES =>
                {
                    return Err(Error::Decode {
                        url: "/v1/allocations".to_owned(),
                        cause: format!(
                            "the pages do not end: X-Nomad-NextToken {token:?} repeats, or more than {MAX_PAGES} pages"
                        ),
                    });
                }
                Some(token) => next_token = Some(token),
                None => break,
            }
        }
        // The cache keeps exactly the jobs the listing's allocations run.
        self.jobs().retain(&used);
        Ok(Some(ClusterListing {
            allocations,
            index: match (index, index_of_nodes) {
                (Some(allocs), Some(nodes)) => allocs.min(nodes),
                (allocs, nodes) => allocs.or(nodes).unwrap_or(0),
            },
            nodes: listed_nodes,
            bytes,
            fetched_jobs,
            cached_jobs: self.jobs().len(),
        }))
    }

    /// The job versions the stubs run that the cache lacks, each with the allocations that
    /// could be fetched to learn it.
    fn missing(&self, stubs: &[AllocationStub]) -> BTreeMap<JobKey, Vec<String>> {
        let jobs = self.jobs();
        let mut missing: BTreeMap<JobKey, Vec<String>> = BTreeMap::new();
        for stub in stubs {
            let key = key_of(stub);
            if jobs.get(&key).is_none() {
                missing.entry(key).or_default().push(stub.id.to_string());
            }
        }
        missing
    }

    /// Fetches one allocation of each missing job version, [`MAX_CONCURRENT_FETCHES`] at a
    /// time, and keeps of its job what the rows read. An allocation gone meanwhile, or moved on
    /// to another version, is replaced by the next one of the same version.
    async fn resolve(
        &self,
        missing: BTreeMap<JobKey, Vec<String>>,
    ) -> Result<HashMap<JobKey, Resolved>, Error> {
        // Spawned as slots free up, not all at once: at start, one task per job version (tens of
        // thousands) would each hold a request's future, some 2 kB, until its turn.
        let mut waiting = missing.into_iter();
        let mut fetches = JoinSet::new();
        let mut all = HashMap::new();
        loop {
            while fetches.len() < MAX_CONCURRENT_FETCHES
                && let Some((key, candidates)) = waiting.next()
            {
                let client = self.client.clone();
                fetches.spawn(async move {
                    let resolved = resolve_one(&client, &key, candidates).await;
                    (key, resolved)
                });
            }
            let Some(joined) = fetches.join_next().await else {
                break;
            };
            let (key, resolved) = joined.expect("a job fetch does not panic");
            let mut resolved = resolved?;
            // Trimmed as it comes: at start, thousands of whole jobs would wait for the rest.
            resolved.job = resolved.job.map(|job| self.jobs().trim(&job));
            all.insert(key, resolved);
        }
        Ok(all)
    }

    /// The allocations of a page of the listing: each stub with its job, or the newer
    /// allocation fetched in its place; notes in `used` the job versions they run.
    fn assemble(
        &self,
        stubs: Vec<AllocationStub>,
        mut resolved: HashMap<JobKey, Resolved>,
        used: &mut HashSet<JobKey>,
    ) -> Vec<Allocation> {
        let mut allocations = Vec::with_capacity(stubs.len());
        let mut jobs = self.jobs();
        let mut newer: HashMap<Arc<str>, Allocation> = HashMap::new();
        let mut gone: HashSet<String> = HashSet::new();
        for (key, r) in resolved.iter_mut() {
            if let Some(job) = r.job.take() {
                jobs.jobs.insert(key.clone(), job);
            }
            for alloc in r.newer.drain(..) {
                newer.insert(alloc.id.clone(), alloc);
            }
            gone.extend(r.gone.drain());
        }
        for stub in stubs {
            if let Some(mut alloc) = newer.remove(&*stub.id) {
                jobs.intern(&mut alloc);
                if let Some(job) = &alloc.job {
                    used.insert((alloc.namespace.clone(), job.id.clone(), job.version));
                }
                allocations.push(alloc);
                continue;
            }
            if gone.contains(&*stub.id) {
                continue;
            }
            let key = key_of(&stub);
            match jobs.get(&key) {
                Some(job) => {
                    used.insert(key);
                    let mut alloc = stub.with_job(job);
                    jobs.strings.share_strings(&mut alloc);
                    allocations.push(alloc);
                }
                None => {
                    debug!(alloc_id = %stub.id, "no allocation of its job version could be fetched; left out of this listing")
                }
            }
        }
        allocations
    }
}

/// Fetches candidates of one job version until one still runs it.
async fn resolve_one(
    client: &NomadClient,
    key: &JobKey,
    candidates: Vec<String>,
) -> Result<Resolved, Error> {
    let mut resolved = Resolved::default();
    for id in candidates {
        match client.allocation(&id, Blocking::default()).await {
            Ok(fetched) => {
                resolved.bytes += fetched.bytes;
                let alloc = fetched.value;
                match &alloc.job {
                    Some(job) if job.version == key.2 && *job.id == *key.1 => {
                        resolved.job = Some(job.clone());
                        return Ok(resolved);
                    }
                    _ => resolved.newer.push(alloc),
                }
            }
            Err(Error::Status { status: 404, .. }) => {
                resolved.gone.insert(id);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, version: u64) -> Arc<Job> {
        Arc::new(Job {
            id: id.into(),
            version,
            ..Job::default()
        })
    }

    fn alloc(id: &str, job: Arc<Job>) -> Allocation {
        Allocation {
            id: id.into(),
            namespace: "default".into(),
            job: Some(job),
            ..Allocation::default()
        }
    }

    #[test]
    fn the_cache_shares_one_job_per_version() {
        let mut cache = JobCache::new(&Columns::defaults());
        let mut a = alloc("a", job("web", 1));
        let mut b = alloc("b", job("web", 1));
        cache.intern(&mut a);
        cache.intern(&mut b);
        assert!(Arc::ptr_eq(
            a.job.as_ref().expect("job"),
            b.job.as_ref().expect("job")
        ));
        let mut c = alloc("c", job("web", 2));
        cache.intern(&mut c);
        assert_eq!(cache.len(), 2);
        cache.retain(&HashSet::from([("default".into(), "web".into(), 2)]));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&("default".into(), "web".into(), 1)).is_none());
    }

    #[test]
    fn the_cache_keeps_only_the_meta_the_columns_read() {
        let columns = Columns::choose(None, &["team".to_owned()]).expect("valid");
        let mut cache = JobCache::new(&columns);
        let mut job = Job {
            id: "web".into(),
            version: 1,
            ..Job::default()
        };
        job.meta.insert("team".to_owned(), "a".to_owned());
        job.meta.insert("unread".to_owned(), "b".to_owned());
        let mut a = alloc("a", Arc::new(job.clone()));
        cache.intern(&mut a);
        let kept = BTreeMap::from([("team".to_owned(), "a".to_owned())]);
        assert_eq!(a.job.as_ref().expect("job").meta, kept);
        let mut b = alloc("b", Arc::new(job));
        cache.intern(&mut b);
        assert!(
            Arc::ptr_eq(a.job.as_ref().expect("job"), b.job.as_ref().expect("job")),
            "the same version once trimmed is shared"
        );
        let cached = cache
            .get(&("default".into(), "web".into(), 1))
            .expect("cached");
        assert_eq!(cached.meta, kept);
    }
}
