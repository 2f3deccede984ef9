//! `run --scope cluster --memory-table-url`: changes go to Vector's `memory` enrichment table
//! through an `http_server` source, instead of a reload of the whole file for each one. At
//! 100,000 rows Vector needs 0.4 s and a quarter of a gigabyte to load the file; a change is a
//! few rows. The file stays the base (published at start and every `--base-interval`), so that
//! Vector has every row when it starts and after it restarts (the memory table starts empty,
//! vectordotdev/vector#22626).
//!
//! [`rows`] says what the memory table must be sent (pure), [`queue`] holds it until Vector
//! acknowledged it (pure), [`sender`] sends it.

pub mod queue;
pub mod rows;
pub mod sender;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::observe::metrics::Metrics;
use crate::table::columns::Columns;
use crate::table::incremental::Entry;
use crate::table::node_columns::Nodes;
use rows::PushCache;
use sender::{PushError, PushHandle};

/// Where the changes go and how often the base file is published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushSettings {
    /// The `http_server` source that feeds the memory table.
    pub url: PushUrl,
    /// How often the file is published and the memory table sent everything.
    pub base_interval: Duration,
}

impl PushSettings {
    /// The TTL of live rows and tombstones. Live rows are sent again with every base, and a
    /// tombstone is needed until the next base (which lacks its row) is reloaded: both must
    /// outlive a base interval, and another if a base fails, plus Vector's reload.
    pub fn live_ttl(&self) -> Duration {
        self.base_interval * 2 + Duration::from_secs(60)
    }
}

/// The loop's side of the push: what the memory table was sent, and the sender's handle.
#[derive(Debug)]
pub struct Pusher {
    cache: PushCache,
    handle: PushHandle,
    /// Told when the memory table answers again after failing.
    back: mpsc::Receiver<()>,
    metrics: Arc<Metrics>,
}

impl Pusher {
    /// Starts the sender in `tasks`; `table` is the table on disk, whose keys a previous run
    /// may have pushed.
    pub fn start(
        settings: &PushSettings,
        columns: Columns,
        table: &Path,
        metrics: Arc<Metrics>,
        tasks: &TaskTracker,
    ) -> Result<Pusher, PushError> {
        let (told, back) = mpsc::channel(1);
        let handle = sender::spawn(&settings.url, metrics.clone(), told, tasks)?;
        let mut cache = PushCache::new(columns, settings.live_ttl());
        cache.inherit(keys_in_table(table));
        Ok(Pusher {
            cache,
            handle,
            back,
            metrics,
        })
    }

    /// Sends what changed in `entries` since they were last sent; `since` is the first change.
    pub fn changes<'a>(
        &mut self,
        entries: impl IntoIterator<Item = Entry<'a>>,
        nodes: &Nodes,
        since: Instant,
    ) {
        let rows = self.cache.changes(entries, nodes, Instant::now());
        debug!(
            rows = rows.len(),
            "changes queued for Vector's memory table"
        );
        self.handle.send(rows, since);
    }

    /// Starts sending every row of the model, part by part ([`Pusher::more`]); `reason` labels
    /// `memory_table_full_pushes_total`.
    pub fn everything<'a>(
        &mut self,
        entries: impl IntoIterator<Item = Entry<'a>>,
        nodes: &Nodes,
        reason: &'static str,
    ) {
        debug!(reason, "sending every row to Vector's memory table");
        self.metrics
            .memory_table_everything
            .with_label_values(&[reason])
            .inc();
        self.cache.begin_everything();
        self.more(entries, nodes);
    }

    /// Sends the next part of the full push under way (a request's worth of rows; changes go
    /// with [`Pusher::changes`]); the loop calls it when [`Pusher::needs`] says so.
    pub fn more<'a>(&mut self, entries: impl IntoIterator<Item = Entry<'a>>, nodes: &Nodes) {
        let now = Instant::now();
        let rows = self
            .cache
            .more(entries, nodes, now, queue::KEYS_PER_REQUEST);
        debug!(
            rows = rows.len(),
            done = !self.cache.everything_under_way(),
            "part of a full push queued for Vector's memory table"
        );
        self.handle.send(rows, now);
    }

    /// Resolves with what the push needs from the loop next.
    pub async fn needs(&mut self) -> Needs {
        let under_way = self.cache.everything_under_way();
        tokio::select! {
            Some(()) = self.back.recv() => Needs::Everything,
            () = self.handle.caught_up(), if under_way => Needs::More,
            else => std::future::pending().await,
        }
    }
}

/// What the push needs from the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Vector's memory table answers again after failing: it may have restarted empty.
    Everything,
    /// The sender took the last part of the full push under way: the next one.
    More,
}

/// The keys (`<alloc_id>/<task>`) of the CSV table at `path`; none if it cannot be read, which
/// only costs tombstones for what a previous run may have left.
fn keys_in_table(path: &Path) -> Vec<String> {
    let Ok(mut reader) = csv::Reader::from_path(path) else {
        return Vec::new();
    };
    let Ok(header) = reader.headers().cloned() else {
        return Vec::new();
    };
    let column = |name: &str| header.iter().position(|h| h == name);
    let (Some(alloc), Some(task)) = (column("alloc_id"), column("task")) else {
        return Vec::new();
    };
    reader
        .records()
        .map_while(Result::ok)
        .filter_map(|r| Some(rows::key(r.get(alloc)?, r.get(task)?)))
        .collect()
}

/// `--memory-table-url`, checked: http or https, with a host, without credentials in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushUrl(reqwest::Url);

/// Why `--memory-table-url` cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushUrlError {
    #[error(
        "--memory-table-url {0:?} is not a URL; give the http_server source's, such as http://127.0.0.1:6100/nomad-alloc-table"
    )]
    NotUrl(String),
    #[error("--memory-table-url must be http:// or https://, not {0}://")]
    Scheme(String),
    #[error(
        "--memory-table-url must not carry credentials: they would show in process listings; the source listens on a local or private address"
    )]
    Credentials,
}

impl PushUrl {
    pub fn parse(raw: &str) -> Result<PushUrl, PushUrlError> {
        let url = reqwest::Url::parse(raw).map_err(|_| PushUrlError::NotUrl(raw.to_owned()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(PushUrlError::Scheme(url.scheme().to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(PushUrlError::Credentials);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(PushUrlError::NotUrl(raw.to_owned()));
        }
        Ok(PushUrl(url))
    }

    pub fn url(&self) -> &reqwest::Url {
        &self.0
    }
}

impl std::fmt::Display for PushUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_with_a_host_and_no_credentials() {
        assert!(PushUrl::parse("http://127.0.0.1:6100/nomad-alloc-table").is_ok());
        assert!(PushUrl::parse("https://vector.service.consul:6100/").is_ok());
        assert!(PushUrl::parse("127.0.0.1:6100").is_err());
        assert_eq!(
            PushUrl::parse("unix:///run/vector.sock"),
            Err(PushUrlError::Scheme("unix".to_owned()))
        );
        assert_eq!(
            PushUrl::parse("http://user:secret@127.0.0.1:6100/"),
            Err(PushUrlError::Credentials)
        );
        assert!(matches!(
            PushUrl::parse("not a url"),
            Err(PushUrlError::NotUrl(_))
        ));
    }

    #[test]
    fn the_keys_of_a_table_on_disk_are_read_and_a_missing_one_has_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cluster.csv");
        assert!(keys_in_table(&path).is_empty());
        std::fs::write(
            &path,
            "alloc_id,task,namespace\na1,web,default\nb2,api,prod\n",
        )
        .expect("write");
        assert_eq!(keys_in_table(&path), ["a1/web", "b2/api"]);
        std::fs::write(&path, "namespace\ndefault\n").expect("write");
        assert!(keys_in_table(&path).is_empty(), "no key columns");
    }

    #[test]
    fn live_rows_outlive_two_base_intervals() {
        let settings = PushSettings {
            url: PushUrl::parse("http://127.0.0.1:6100/").expect("valid"),
            base_interval: Duration::from_secs(300),
        };
        assert_eq!(settings.live_ttl(), Duration::from_secs(660));
    }
}
