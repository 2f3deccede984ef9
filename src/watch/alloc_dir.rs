//! Watches Nomad's alloc directory (`<data_dir>/alloc`, not recursively). A new `<alloc_id>`
//! directory that the model does not know is fetched at once, which beats Vector's own file
//! discovery even when the event stream is slow or down; a removed one starts its allocation's
//! grace period. Event kinds differ between kernels and renames, so after any event on a child
//! the watcher looks at what is there now.
//!
//! Bounded: at most [`QUEUED_EVENTS`] events wait between notify's thread and the forwarder.
//! When more come at once, or the kernel's own queue overflowed (notify's rescan flag), the
//! events are dropped and the directory is read again instead, and what changed since the
//! forwarder last looked is reported: nothing is lost and nothing grows without bound.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::run::machine::Update;

/// Events waiting for the forwarder; a node runs a few hundred allocations at most.
pub const QUEUED_EVENTS: usize = 4096;

/// Keeps the watch alive; dropping it stops watching.
pub struct AllocDirWatch {
    _watcher: RecommendedWatcher,
}

/// Whether a directory name is an allocation ID (a UUID).
pub fn is_alloc_id(name: &str) -> bool {
    let groups: Vec<&str> = name.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What a filesystem event on `path` means for the table, if anything.
pub fn classify(alloc_dir: &Path, path: &Path) -> Option<Update> {
    if path.parent() != Some(alloc_dir) {
        return None;
    }
    let id = path.file_name()?.to_str()?;
    if !is_alloc_id(id) {
        return None;
    }
    let alloc_id = id.to_owned();
    Some(if path.is_dir() {
        Update::DirCreated { alloc_id }
    } else {
        Update::DirRemoved { alloc_id }
    })
}

/// How long to wait before reading the directory again after a read failed.
const RESCAN_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// The allocation directories in `alloc_dir` now; an error if any part of it cannot be read
/// (then nothing may be concluded from it: a directory missing from a failed read is not gone).
fn present(alloc_dir: &Path) -> std::io::Result<BTreeSet<String>> {
    let mut present = BTreeSet::new();
    for entry in std::fs::read_dir(alloc_dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir()
            && let Some(name) = entry.file_name().to_str()
            && is_alloc_id(name)
        {
            present.insert(name.to_owned());
        }
    }
    Ok(present)
}

/// What a re-read reports: the changes since `known`, or `None` when the read failed (nothing
/// is concluded from it; the directory is read again later). Pure.
pub fn rescanned(
    known: &BTreeSet<String>,
    read: std::io::Result<BTreeSet<String>>,
) -> Option<Vec<Update>> {
    read.ok().map(|now| changes(known, &now))
}

/// What changed between the directories reported (`known`) and those `present` now. Pure.
pub fn changes(known: &BTreeSet<String>, present: &BTreeSet<String>) -> Vec<Update> {
    let created = present.difference(known).map(|id| Update::DirCreated {
        alloc_id: id.clone(),
    });
    let removed = known.difference(present).map(|id| Update::DirRemoved {
        alloc_id: id.clone(),
    });
    created.chain(removed).collect()
}

/// Starts watching `alloc_dir`; updates go to `updates` from a task on `tasks` that ends when
/// `stop` is cancelled.
pub fn watch(
    alloc_dir: PathBuf,
    updates: mpsc::Sender<Update>,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> notify::Result<AllocDirWatch> {
    watch_with_queue(alloc_dir, updates, tasks, stop, QUEUED_EVENTS)
}

fn watch_with_queue(
    alloc_dir: PathBuf,
    updates: mpsc::Sender<Update>,
    tasks: &TaskTracker,
    stop: CancellationToken,
    queued: usize,
) -> notify::Result<AllocDirWatch> {
    let (raw_tx, mut raw_rx) = mpsc::channel::<PathBuf>(queued);
    let overflowed = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(Notify::new());
    let mut watcher = notify::recommended_watcher({
        let (overflowed, wake, dir) = (overflowed.clone(), wake.clone(), alloc_dir.clone());
        move |event: notify::Result<notify::Event>| {
            let lost = match event {
                Ok(event) if event.need_rescan() => true,
                Ok(event) => event
                    .paths
                    .into_iter()
                    .filter(|path| path.parent() == Some(dir.as_path()))
                    .any(|path| raw_tx.try_send(path).is_err()),
                Err(_) => true,
            };
            if lost {
                overflowed.store(true, Ordering::SeqCst);
                wake.notify_one();
            }
        }
    })?;
    watcher.watch(&alloc_dir, RecursiveMode::NonRecursive)?;
    // What the forwarder has reported. It starts empty: a directory that exists already is
    // reported once at the first re-read, never suppressed.
    let mut known = BTreeSet::new();
    tasks.spawn(async move {
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                path = raw_rx.recv() => match path {
                    Some(path) => classify(&alloc_dir, &path).into_iter().collect(),
                    None => return,
                },
                () = wake.notified() => Vec::new(),
            };
            let next = if overflowed.swap(false, Ordering::SeqCst) {
                // Events were dropped: what is there now says what they would have.
                while raw_rx.try_recv().is_ok() {}
                match rescanned(&known, present(&alloc_dir)) {
                    Some(changed) => changed,
                    None => {
                        // Read again later; until then nothing is concluded (a failed read
                        // must not look like every directory gone).
                        overflowed.store(true, Ordering::SeqCst);
                        let wake = wake.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(RESCAN_RETRY).await;
                            wake.notify_one();
                        });
                        Vec::new()
                    }
                }
            } else {
                next
            };
            for update in next {
                // A directory appears once; a removal always counts (it may have come and gone
                // between two looks).
                let news = match &update {
                    Update::DirCreated { alloc_id } => known.insert(alloc_id.clone()),
                    Update::DirRemoved { alloc_id } => {
                        known.remove(alloc_id);
                        true
                    }
                    _ => false,
                };
                if news && updates.send(update).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(AllocDirWatch { _watcher: watcher })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uuid_directories_directly_below_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = "0b6f4a1c-2d3e-4f50-8a9b-0c1d2e3f4a5b";
        std::fs::create_dir(dir.path().join(id)).expect("mkdir");
        assert!(matches!(
            classify(dir.path(), &dir.path().join(id)),
            Some(Update::DirCreated { alloc_id }) if alloc_id == id
        ));
        std::fs::remove_dir(dir.path().join(id)).expect("rmdir");
        assert!(matches!(
            classify(dir.path(), &dir.path().join(id)),
            Some(Update::DirRemoved { .. })
        ));
        assert!(classify(dir.path(), &dir.path().join("not-an-alloc")).is_none());
        assert!(classify(dir.path(), &dir.path().join(id).join("alloc")).is_none());
    }

    #[test]
    fn alloc_ids_are_uuids() {
        assert!(is_alloc_id("0b6f4a1c-2d3e-4f50-8a9b-0c1d2e3f4a5b"));
        assert!(!is_alloc_id("0b6f4a1c-2d3e-4f50-8a9b"));
        assert!(!is_alloc_id("zzzzzzzz-2d3e-4f50-8a9b-0c1d2e3f4a5b"));
    }

    #[tokio::test]
    async fn new_and_removed_directories_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tx, mut rx) = mpsc::channel(16);
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let _watch = watch(dir.path().to_owned(), tx, &tasks, stop.clone()).expect("watch");
        let id = "0b6f4a1c-2d3e-4f50-8a9b-0c1d2e3f4a5b";
        std::fs::create_dir(dir.path().join(id)).expect("mkdir");
        let created = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .expect("reported in time");
        assert!(matches!(created, Some(Update::DirCreated { alloc_id }) if alloc_id == id));
        std::fs::remove_dir(dir.path().join(id)).expect("rmdir");
        let removed = loop {
            let update = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
                .await
                .expect("reported in time");
            if !matches!(update, Some(Update::DirCreated { .. })) {
                break update;
            }
        };
        assert!(matches!(removed, Some(Update::DirRemoved { alloc_id }) if alloc_id == id));
        // The stop is answered: the forwarder ends, and the tracker sees it end.
        stop.cancel();
        tasks.close();
        tokio::time::timeout(std::time::Duration::from_secs(10), tasks.wait())
            .await
            .expect("the forwarder ends on stop");
    }

    #[test]
    fn changes_are_what_appeared_and_what_went() {
        let set = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        let changed = changes(&set(&["a", "b"]), &set(&["b", "c"]));
        assert!(matches!(&changed[..], [
            Update::DirCreated { alloc_id: created },
            Update::DirRemoved { alloc_id: removed },
        ] if created == "c" && removed == "a"));
        assert!(changes(&set(&["a"]), &set(&["a"])).is_empty());
    }

    #[test]
    fn a_failed_read_concludes_nothing() {
        let known: BTreeSet<String> = ["a".to_owned()].into();
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = dir.path().join("not-there");
        assert!(
            rescanned(&known, present(&gone)).is_none(),
            "no removal from a failed read"
        );
        let removed = rescanned(&known, present(dir.path())).expect("read");
        assert!(matches!(&removed[..], [Update::DirRemoved { alloc_id }] if alloc_id == "a"));
    }

    /// With room for one event, a burst of directories overflows the queue: the directory is
    /// read again and every new one is reported once, none twice.
    #[tokio::test]
    async fn a_burst_beyond_the_queue_is_read_again_not_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let existing = "ffffffff-2d3e-4f50-8a9b-0c1d2e3f4a5b";
        std::fs::create_dir(dir.path().join(existing)).expect("mkdir");
        let (tx, mut rx) = mpsc::channel(1024);
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let _watch =
            watch_with_queue(dir.path().to_owned(), tx, &tasks, stop.clone(), 1).expect("watch");
        let ids: BTreeSet<String> = (0..200)
            .map(|i| format!("{i:08x}-2d3e-4f50-8a9b-0c1d2e3f4a5b"))
            .collect();
        for id in &ids {
            std::fs::create_dir(dir.path().join(id)).expect("mkdir");
        }
        let mut reported: Vec<String> = Vec::new();
        while !ids.iter().all(|id| reported.contains(id)) {
            match tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await {
                Ok(Some(Update::DirCreated { alloc_id })) => reported.push(alloc_id),
                other => panic!(
                    "{} of {} reported, then {other:?}",
                    reported.len(),
                    ids.len()
                ),
            }
        }
        let unique: BTreeSet<String> = reported.iter().cloned().collect();
        assert_eq!(
            unique, ids,
            "each new directory, and not the one there before"
        );
        assert_eq!(unique.len(), reported.len(), "none twice");
        stop.cancel();
    }
}
