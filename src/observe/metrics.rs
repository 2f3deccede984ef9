//! `run`'s Prometheus metrics: one registry owned by the process (no global state), handles
//! that the loop, the watcher and the Nomad client update, and the exposition in the classic
//! text format 0.0.4. The `prometheus` crate is used for its classic encoder: the
//! `prometheus-client` crate encodes OpenMetrics only, whose counters `promtool check metrics`
//! (Prometheus 2.42) rejects, and Prometheus itself accepts 0.0.4 whatever it asks for first.
//! No label carries an allocation ID, a job name or anything else unbounded.

use std::time::{Duration, SystemTime};

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const PREFIX: &str = "nomad_alloc_table";

/// Why the event stream ended, as `stream_reconnects_total` labels it.
pub const RECONNECT_REASONS: [&str; 8] = [
    "resubscribe",
    "closed",
    "silent",
    "transport",
    "refused",
    "unparseable",
    "error",
    "resync",
];

/// Every metric of the program.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    pub rows: IntGauge,
    pub allocations: IntGaugeVec,
    pub publishes: IntCounterVec,
    pub last_publish: Gauge,
    pub reloads: IntCounterVec,
    pub stream_up: IntGauge,
    pub stream_reconnects: IntCounterVec,
    pub resyncs: IntCounterVec,
    pub last_sync: Gauge,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub response_bytes: IntCounterVec,
    pub event_bytes: IntCounterVec,
    pub change_to_publish: Histogram,
    pub cost_comparisons: IntCounterVec,
    pub listener_open: IntGauge,
    pub listener_full: prometheus::IntCounter,
    pub listener_closed: IntCounterVec,
    pub memory_table_requests: IntCounterVec,
    pub memory_table_rows: prometheus::IntCounter,
    pub memory_table_bytes: prometheus::IntCounter,
    pub memory_table_queue: IntGauge,
    pub memory_table_last_push: Gauge,
    pub memory_table_everything: IntCounterVec,
    pub change_to_push: Histogram,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(format!("{PREFIX}_{name}"), help)
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric. Names and labels are constants, so registration cannot fail.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let build_info = IntGaugeVec::new(
            opts(
                "build_info",
                "Always 1; the version label says which build runs.",
            ),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let metrics = Metrics {
            rows: IntGauge::with_opts(opts("rows", "Rows in the published table."))
                .expect("valid metric"),
            allocations: IntGaugeVec::new(
                opts(
                    "allocations",
                    "Allocations in the model: live, or departing (in their grace period).",
                ),
                &["state"],
            )
            .expect("valid metric"),
            publishes: IntCounterVec::new(
                opts(
                    "publishes_total",
                    "Publishes by outcome: written (the file replaced), unchanged (same bytes, nothing written), failed (could not write), invalid (refused by Vector's loader rules).",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            last_publish: Gauge::with_opts(opts(
                "last_publish_timestamp_seconds",
                "Unix time of the last publish that replaced the file.",
            ))
            .expect("valid metric"),
            reloads: IntCounterVec::new(
                opts(
                    "reloads_total",
                    "Reloads of Vector by outcome: sent (delivered), skipped (a publish with no reload configured), failed (not delivered).",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            stream_up: IntGauge::with_opts(opts(
                "event_stream_up",
                "1 while the watch is up: the event stream subscribed and answering (--watch events), or the last blocking query answered (--watch blocking); else 0.",
            ))
            .expect("valid metric"),
            stream_reconnects: IntCounterVec::new(
                opts(
                    "stream_reconnects_total",
                    "Ends of the event stream by reason (resubscribe, closed, silent, transport, refused, unparseable, error, resync).",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            resyncs: IntCounterVec::new(
                opts(
                    "resyncs_total",
                    "Full listings applied, by reason: interval, signal, reconnect, burst, change (a blocking query woke on a change of the node).",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            last_sync: Gauge::with_opts(opts(
                "last_sync_timestamp_seconds",
                "Unix time of the last successful listing of the node's allocations.",
            ))
            .expect("valid metric"),
            requests: IntCounterVec::new(
                opts(
                    "nomad_requests_total",
                    "Requests to Nomad by endpoint (a route, not a URL) and status code (or error).",
                ),
                &["endpoint", "code"],
            )
            .expect("valid metric"),
            request_duration: HistogramVec::new(
                HistogramOpts::new(
                    format!("{PREFIX}_nomad_request_duration_seconds"),
                    "Time to the response headers of requests to Nomad, by endpoint.",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ]),
                &["endpoint"],
            )
            .expect("valid metric"),
            response_bytes: IntCounterVec::new(
                opts(
                    "nomad_response_bytes_total",
                    "Response body bytes received from Nomad, by endpoint (the event stream included).",
                ),
                &["endpoint"],
            )
            .expect("valid metric"),
            event_bytes: IntCounterVec::new(
                opts(
                    "event_bytes_total",
                    "Event-stream frame bytes by whose allocations they carry: this node's (own) or other nodes' (other). The stream has no node filter, so other nodes' events are the price of --watch events.",
                ),
                &["node"],
            )
            .expect("valid metric"),
            change_to_publish: Histogram::with_opts(
                HistogramOpts::new(
                    format!("{PREFIX}_change_to_publish_seconds"),
                    "Time from the first change a publish carries to the rename of the file.",
                )
                .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            )
            .expect("valid metric"),
            cost_comparisons: IntCounterVec::new(
                opts(
                    "watch_cost_comparisons_total",
                    "Comparisons of what the event stream costs this node against blocking queries (--cost-report-interval), by which was cheaper: blocking means consider --watch blocking.",
                ),
                &["cheaper"],
            )
            .expect("valid metric"),
            listener_open: IntGauge::with_opts(opts(
                "listener_connections_open",
                "Connections to --listen being served now (at most the listener's cap).",
            ))
            .expect("valid metric"),
            listener_full: prometheus::IntCounter::with_opts(opts(
                "listener_full_total",
                "Times the listener reached its cap of open connections: further ones waited in the kernel's backlog, never taking a descriptor of the process.",
            ))
            .expect("valid metric"),
            listener_closed: IntCounterVec::new(
                opts(
                    "listener_connections_closed_total",
                    "Connections to --listen closed, by why: done (the client or a graceful end), timeout (no complete request head in time, or the connection's lifetime ran out), error (garbage or a broken socket).",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            memory_table_requests: IntCounterVec::new(
                opts(
                    "memory_table_requests_total",
                    "Requests to Vector's memory table (--memory-table-url) by outcome: acknowledged (the table holds the rows), failed (retried; nothing is dropped).",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            memory_table_rows: prometheus::IntCounter::with_opts(opts(
                "memory_table_rows_total",
                "Rows (and tombstones) Vector's memory table acknowledged.",
            ))
            .expect("valid metric"),
            memory_table_bytes: prometheus::IntCounter::with_opts(opts(
                "memory_table_bytes_total",
                "Request body bytes Vector's memory table acknowledged.",
            ))
            .expect("valid metric"),
            memory_table_queue: IntGauge::with_opts(opts(
                "memory_table_queue_rows",
                "Rows waiting for Vector's memory table or being sent: grows while it does not answer.",
            ))
            .expect("valid metric"),
            memory_table_last_push: Gauge::with_opts(opts(
                "memory_table_last_push_timestamp_seconds",
                "Unix time of the last request Vector's memory table acknowledged.",
            ))
            .expect("valid metric"),
            memory_table_everything: IntCounterVec::new(
                opts(
                    "memory_table_full_pushes_total",
                    "Times every row was sent to Vector's memory table, each with a base file, by why: start, interval (every --base-interval), back (the table answered again after failing: Vector may have restarted empty).",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            change_to_push: Histogram::with_opts(
                HistogramOpts::new(
                    format!("{PREFIX}_change_to_push_seconds"),
                    "Time from the first change a request to Vector's memory table carries to its acknowledgement.",
                )
                .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            )
            .expect("valid metric"),
            registry,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(build_info),
            Box::new(metrics.rows.clone()),
            Box::new(metrics.allocations.clone()),
            Box::new(metrics.publishes.clone()),
            Box::new(metrics.last_publish.clone()),
            Box::new(metrics.reloads.clone()),
            Box::new(metrics.stream_up.clone()),
            Box::new(metrics.stream_reconnects.clone()),
            Box::new(metrics.resyncs.clone()),
            Box::new(metrics.last_sync.clone()),
            Box::new(metrics.requests.clone()),
            Box::new(metrics.request_duration.clone()),
            Box::new(metrics.response_bytes.clone()),
            Box::new(metrics.event_bytes.clone()),
            Box::new(metrics.change_to_publish.clone()),
            Box::new(metrics.cost_comparisons.clone()),
            Box::new(metrics.listener_open.clone()),
            Box::new(metrics.listener_full.clone()),
            Box::new(metrics.listener_closed.clone()),
            Box::new(metrics.memory_table_requests.clone()),
            Box::new(metrics.memory_table_rows.clone()),
            Box::new(metrics.memory_table_bytes.clone()),
            Box::new(metrics.memory_table_queue.clone()),
            Box::new(metrics.memory_table_last_push.clone()),
            Box::new(metrics.memory_table_everything.clone()),
            Box::new(metrics.change_to_push.clone()),
        ];
        for collector in collectors {
            metrics
                .registry
                .register(collector)
                .expect("metric names are unique");
        }
        // Known label values start at zero, so that rates work from the first scrape.
        for outcome in ["written", "unchanged", "failed", "invalid"] {
            metrics.publishes.with_label_values(&[outcome]);
        }
        for outcome in ["sent", "skipped", "failed"] {
            metrics.reloads.with_label_values(&[outcome]);
        }
        for state in ["live", "departing"] {
            metrics.allocations.with_label_values(&[state]);
        }
        for node in ["own", "other"] {
            metrics.event_bytes.with_label_values(&[node]);
        }
        for reason in ["interval", "signal", "reconnect", "burst", "change"] {
            metrics.resyncs.with_label_values(&[reason]);
        }
        for watch in ["events", "blocking"] {
            metrics.cost_comparisons.with_label_values(&[watch]);
        }
        for reason in ["done", "timeout", "error"] {
            metrics.listener_closed.with_label_values(&[reason]);
        }
        for outcome in ["acknowledged", "failed"] {
            metrics.memory_table_requests.with_label_values(&[outcome]);
        }
        for reason in ["start", "interval", "back"] {
            metrics.memory_table_everything.with_label_values(&[reason]);
        }
        for reason in RECONNECT_REASONS {
            metrics.stream_reconnects.with_label_values(&[reason]);
        }
        metrics
    }

    /// The exposition, in the text format 0.0.4.
    pub fn render(&self) -> String {
        let mut text = String::new();
        TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut text)
            .expect("encoding to a string cannot fail");
        text
    }

    /// Counts one request to Nomad.
    pub fn request(&self, endpoint: &str, code: &str, took: Duration) {
        self.requests.with_label_values(&[endpoint, code]).inc();
        self.request_duration
            .with_label_values(&[endpoint])
            .observe(took.as_secs_f64());
    }

    /// Counts response body bytes.
    pub fn bytes(&self, endpoint: &str, bytes: usize) {
        self.response_bytes
            .with_label_values(&[endpoint])
            .inc_by(bytes as u64);
    }
}

/// Unix time now, in seconds, for the timestamp gauges.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family_with_help_and_type() {
        let metrics = Metrics::new();
        metrics.request("/v1/node/:id/allocations", "200", Duration::from_millis(3));
        metrics.bytes("/v1/node/:id/allocations", 1_000);
        metrics.publishes.with_label_values(&["written"]).inc();
        let text = metrics.render();
        for name in [
            "build_info",
            "rows",
            "allocations",
            "publishes_total",
            "last_publish_timestamp_seconds",
            "reloads_total",
            "event_stream_up",
            "stream_reconnects_total",
            "resyncs_total",
            "last_sync_timestamp_seconds",
            "nomad_requests_total",
            "nomad_request_duration_seconds",
            "nomad_response_bytes_total",
            "event_bytes_total",
            "change_to_publish_seconds",
        ] {
            let family = format!("{PREFIX}_{name}");
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "{family}: {text}"
            );
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family}: {text}"
            );
        }
        assert!(text.contains("nomad_alloc_table_publishes_total{outcome=\"written\"} 1"));
        assert!(text.contains(&format!(
            "nomad_alloc_table_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
    }
}
