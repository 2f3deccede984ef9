//! A stateful fake of the Nomad HTTP API, faithful to what Nomad's own source does (the HTTP
//! handlers under `command/agent/`, the state store and event broker under `nomad/`), so that
//! nomad-alloc-table is tested against what Nomad really answers. Tests build a [`Cluster`], start it with [`FakeNomad::start`] and mutate it while the
//! program under test talks to it. The `fake-nomad` binary serves a generated cluster for demos
//! and benchmarks.

#![recursion_limit = "256"]

pub mod generate;
pub mod json;
pub mod lifecycle;
pub mod model;
pub mod server;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

pub use model::{
    Agent, Allocation, Capability, ClientStatus, Cluster, Hook, Job, JobType, Node, Policy, Task,
    TaskGroup,
};
pub use server::stream::{StreamFault, StreamSettings, Transport};
pub use server::{Fault, Follower, RecordedRequest, SignalRecord};

/// Where the fake listens.
pub enum Listen {
    /// Plain HTTP on a TCP address (`127.0.0.1:0` picks a free port).
    Tcp(std::net::SocketAddr),
    /// Plain HTTP on a unix socket, like a task's `NOMAD_UNIX_ADDR`.
    Unix(PathBuf),
    /// HTTPS with this server configuration (which may require client certificates).
    Tls(std::net::SocketAddr, Arc<rustls::ServerConfig>),
}

/// A running fake Nomad. It serves from its own thread and runtime, so tests may be synchronous
/// and run the real binary against it; dropping the handle stops it.
pub struct FakeNomad {
    shared: Arc<server::Shared>,
    address: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeNomad {
    /// Serves `cluster` over plain HTTP on a free loopback port.
    pub fn start(cluster: Cluster) -> FakeNomad {
        FakeNomad::start_on(cluster, Listen::Tcp(([127, 0, 0, 1], 0).into()))
            .expect("bind a loopback port")
    }

    /// Serves `cluster` on the given listener. Binding happens here, on the caller's thread (so
    /// errors surface at once); serving happens on the fake's own thread and runtime, so this may
    /// be called from synchronous tests and from inside another runtime alike.
    pub fn start_on(cluster: Cluster, listen: Listen) -> std::io::Result<FakeNomad> {
        enum Bound {
            Tcp(std::net::TcpListener),
            Unix(std::os::unix::net::UnixListener),
            Tls(std::net::TcpListener, Arc<rustls::ServerConfig>),
        }
        let (bound, address) = match listen {
            Listen::Tcp(addr) => {
                let listener = std::net::TcpListener::bind(addr)?;
                let address = format!("http://{}", listener.local_addr()?);
                (Bound::Tcp(listener), address)
            }
            Listen::Unix(path) => {
                let listener = std::os::unix::net::UnixListener::bind(&path)?;
                (Bound::Unix(listener), format!("unix://{}", path.display()))
            }
            Listen::Tls(addr, config) => {
                let listener = std::net::TcpListener::bind(addr)?;
                let address = format!("https://{}", listener.local_addr()?);
                (Bound::Tls(listener, config), address)
            }
        };
        match &bound {
            Bound::Tcp(l) | Bound::Tls(l, _) => l.set_nonblocking(true)?,
            Bound::Unix(l) => l.set_nonblocking(true)?,
        }
        let shared = Arc::new(server::Shared::new(cluster));
        let app = server::router(shared.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-nomad".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let serve = async move {
                        match bound {
                            Bound::Tcp(l) => {
                                axum::serve(tokio::net::TcpListener::from_std(l)?, app).await
                            }
                            Bound::Unix(l) => {
                                axum::serve(tokio::net::UnixListener::from_std(l)?, app).await
                            }
                            Bound::Tls(l, config) => {
                                let tcp = tokio::net::TcpListener::from_std(l)?;
                                axum::serve(tls::TlsListener::new(tcp, config), app).await
                            }
                        }
                    };
                    tokio::select! {
                        served = serve => {
                            if let Err(e) = served {
                                eprintln!("fake-nomad: serving failed: {e}");
                            }
                        }
                        _ = stop => {}
                    }
                });
            })?;
        Ok(FakeNomad {
            shared,
            address,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address to give a client: `http://…`, `https://…` or `unix:///…`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Changes the cluster; blocking queries waiting on it wake up afterwards.
    pub fn update<R>(&self, change: impl FnOnce(&mut Cluster) -> R) -> R {
        let (result, index) = {
            let mut cluster = self.shared.cluster();
            let result = change(&mut cluster);
            (result, cluster.index)
        };
        self.shared.index.send_replace(index);
        result
    }

    /// Reads the cluster.
    pub fn read<R>(&self, look: impl FnOnce(&Cluster) -> R) -> R {
        look(&self.shared.cluster())
    }

    /// Makes every request fail this way (or, with `None`, work again).
    pub fn set_fault(&self, fault: Option<Fault>) {
        *self.shared.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// Changes how the event stream behaves (transport, heartbeat interval, fault); live
    /// subscriptions see the change at once.
    pub fn set_stream(&self, change: impl FnOnce(&mut StreamSettings)) {
        self.shared.stream.send_modify(change);
    }

    /// Response body bytes sent so far (listings, fetches and the event stream).
    pub fn bytes_sent(&self) -> u64 {
        self.shared
            .bytes_sent
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Response body bytes sent so far by route (e.g. `/v1/node/{node_id}/allocations`).
    pub fn bytes_by_route(&self) -> std::collections::BTreeMap<String, u64> {
        self.shared
            .bytes_by_route
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Event-stream bytes sent so far to each subscription, in the order they subscribed.
    pub fn bytes_by_subscriber(&self) -> Vec<u64> {
        self.shared
            .bytes_by_subscriber
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `stale=true` reads be answered by a server that lost touch with the leader at the
    /// cluster's current state (`None`: every server is in touch again).
    pub fn set_follower(&self, follower: Option<(bool, std::time::Duration)>) {
        let follower = follower.map(|(known_leader, last_contact)| server::Follower {
            frozen: self.shared.cluster().clone(),
            known_leader,
            last_contact,
        });
        *self
            .shared
            .follower
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = follower;
    }

    /// Signals delivered through `/v1/client/allocation/:id/signal`, oldest first.
    pub fn signals(&self) -> Vec<SignalRecord> {
        self.shared
            .signals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for FakeNomad {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
