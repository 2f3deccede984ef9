//! Watches Nomad's alloc directory (`<data_dir>/alloc`, not recursively). A new `<alloc_id>`
//! directory that the model does not know is fetched at once, which beats Vector's own file
//! discovery even when the event stream is slow or down; a removed one starts its allocation's
//! grace period. Event kinds differ between kernels and renames, so after any event on a child
//! the watcher looks at what is there now.

use std::path::{Path, PathBuf};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::run::machine::Update;

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

/// Starts watching `alloc_dir`; updates go to `updates` from a task on `tasks` that ends when
/// `stop` is cancelled.
pub fn watch(
    alloc_dir: PathBuf,
    updates: mpsc::Sender<Update>,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> notify::Result<AllocDirWatch> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            for path in event.paths {
                let _ = raw_tx.send(path);
            }
        }
    })?;
    watcher.watch(&alloc_dir, RecursiveMode::NonRecursive)?;
    tasks.spawn(async move {
        while let Some(Some(path)) = stop.run_until_cancelled(raw_rx.recv()).await {
            if let Some(update) = classify(&alloc_dir, &path)
                && updates.send(update).await.is_err()
            {
                return;
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
}
