//! A stand-in for Vector's `http_server` source feeding a `memory` enrichment table, with the
//! table's rules (vector/aggregator-cluster-push.yaml): each line of a request is a JSON object
//! whose top-level fields are keys; a key's value replaces the old one and restarts its TTL,
//! read from the value's `ttl` field (the table's `ttl_field`); the answer is 200 once the
//! table holds the rows (end-to-end acknowledgements), 400 for a body the source's JSON
//! decoder refuses. As in Vector, an expired entry is still found until a scan removes it
//! (Vector scans every `scan_interval`, 30 s; here a test calls [`MemoryTable::scan`]).
//! Stopping it is a Vector that went away (connections refused); starting it again is a
//! restarted Vector, whose memory table is empty.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value};

/// Vector's `ttl` option: the TTL of a value without a `ttl` field.
const DEFAULT_TTL: Duration = Duration::from_secs(600);
/// The body limit of Vector's HTTP sources (src/sources/util/http/encoding.rs at v0.57.0);
/// axum's own default, 2 MB, would refuse what Vector takes.
const BODY_LIMIT: usize = 100 * 1024 * 1024;

/// What the table holds.
#[derive(Default)]
struct Table {
    entries: BTreeMap<String, (Value, Instant)>,
}

type Shared = Arc<Mutex<Table>>;

/// The stand-in, serving on one address for its whole life.
pub struct MemoryTable {
    address: SocketAddr,
    table: Shared,
    server: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
}

impl MemoryTable {
    /// Serves on a free loopback address.
    pub fn start() -> MemoryTable {
        let mut table = MemoryTable {
            address: super::free_address(),
            table: Shared::default(),
            server: None,
        };
        table.serve();
        table
    }

    /// The URL for `--memory-table-url`.
    pub fn url(&self) -> String {
        format!("http://{}/nomad-alloc-table", self.address)
    }

    /// Vector went away: connections are refused, and the table is lost.
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.server.take() {
            let _ = stop.send(());
            thread.join().expect("the stand-in's thread");
        }
        *self.table.lock().expect("lock") = Table::default();
    }

    /// Vector started again, with an empty table.
    pub fn restart(&mut self) {
        self.stop();
        self.serve();
    }

    fn serve(&mut self) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, is_bound) = std::sync::mpsc::channel();
        let (address, table) = (self.address, self.table.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .expect("the stand-in's address is free again");
                bound.send(()).expect("the test waits");
                let app = axum::Router::new()
                    .route("/nomad-alloc-table", axum::routing::post(apply))
                    .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
                    .with_state(table);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        is_bound.recv().expect("bound");
        self.server = Some((stop, thread));
    }

    /// The value under `key`, expired or not (until a scan).
    pub fn get(&self, key: &str) -> Option<Value> {
        let table = self.table.lock().expect("lock");
        table.entries.get(key).map(|(value, _)| value.clone())
    }

    /// Vector's scan: removes the entries whose TTL has run out.
    pub fn scan(&self) {
        let now = Instant::now();
        let mut table = self.table.lock().expect("lock");
        table.entries.retain(|_, (_, expires)| *expires > now);
    }

    /// Keys held (expired ones included, until a scan).
    pub fn keys(&self) -> usize {
        self.table.lock().expect("lock").entries.len()
    }
}

impl Drop for MemoryTable {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn apply(State(table): State<Shared>, body: Bytes) -> StatusCode {
    let mut objects = Vec::new();
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<Map<String, Value>>(line) {
            Ok(object) => objects.push(object),
            Err(_) => return StatusCode::BAD_REQUEST,
        }
    }
    let now = Instant::now();
    let mut table = table.lock().expect("lock");
    for object in objects {
        for (key, value) in object {
            let ttl = value
                .get("ttl")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_TTL, Duration::from_secs);
            table.entries.insert(key, (value, now + ttl));
        }
    }
    StatusCode::OK
}
