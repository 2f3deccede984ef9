//! The fake's event stream against Nomad's: framing, heartbeats, replay from the buffer by index,
//! and ACL refusals on both transports.

use std::time::Duration;

use fake_nomad::{
    ClientStatus, Cluster, FakeNomad, Job, Node, Policy, StreamFault, Task, TaskGroup, Transport,
};
use serde_json::Value;

/// Reads a streaming body line by line.
struct Lines {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Lines {
    async fn open(fake: &FakeNomad, query: &str, token: Option<&str>) -> reqwest::Response {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut request =
            reqwest::Client::new().get(format!("{}/v1/event/stream?{query}", fake.address()));
        if let Some(token) = token {
            request = request.header("X-Nomad-Token", token);
        }
        request.send().await.expect("answered")
    }

    async fn new(fake: &FakeNomad, query: &str) -> Lines {
        let response = Lines::open(fake, query, None).await;
        assert_eq!(response.status(), 200);
        Lines {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next complete line, `Err(rest)` at the end of the body (with what was left unterminated).
    async fn next(&mut self) -> Result<String, String> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Ok(String::from_utf8(line[..line.len() - 1].to_vec()).expect("utf8"));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("a line within 10 s");
            match chunk {
                Ok(Some(bytes)) => self.buffer.extend_from_slice(&bytes),
                Ok(None) | Err(_) => return Err(String::from_utf8_lossy(&self.buffer).into_owned()),
            }
        }
    }

    /// The next frame, skipping heartbeats.
    async fn frame(&mut self) -> Value {
        loop {
            let line = self.next().await.expect("stream open");
            if line != "{}" {
                return serde_json::from_str(&line).expect("a JSON frame");
            }
        }
    }
}

fn cluster() -> (Cluster, String, String) {
    let mut c = Cluster::new(11);
    let node = c.add_node(Node::new("n1"));
    let other = c.add_node(Node::new("n2"));
    c.register_job(Job::web());
    (c, node, other)
}

#[tokio::test]
async fn frames_carry_the_whole_envelope_and_no_job() {
    let (mut c, node, _) = cluster();
    let alloc = c.place("default", "web", "api", &node);
    let fake = FakeNomad::start(c);
    let mut lines = Lines::new(&fake, "topic=Allocation:*&namespace=*&index=0").await;
    assert_eq!(lines.next().await.expect("heartbeat first"), "{}");
    let frame = lines.frame().await;
    let event = &frame["Events"][0];
    assert_eq!(event["Index"], frame["Index"]);
    assert_eq!(event["Topic"], "Allocation");
    assert_eq!(event["Type"], "PlanResult");
    assert_eq!(event["Key"], Value::String(alloc.clone()));
    assert_eq!(event["Namespace"], "default");
    assert_eq!(event["FilterKeys"][0], "web");
    let payload = &event["Payload"]["Allocation"];
    assert!(payload.get("Job").is_none(), "events carry no Job");
    assert_eq!(payload["ClientStatus"], "pending");
    assert!(
        payload.get("TaskStates").is_none(),
        "a fresh placement has no task states"
    );
    // Live events follow.
    fake.update(|c| c.set_client_status(&alloc, ClientStatus::Running));
    let next = lines.frame().await;
    assert_eq!(next["Events"][0]["Type"], "AllocationUpdated");
    assert!(next["Index"].as_u64() > frame["Index"].as_u64());
}

#[tokio::test]
async fn the_start_index_is_inclusive_clamped_and_re_sends_the_tail() {
    let (mut c, node, _) = cluster();
    let ids: Vec<String> = (0..3)
        .map(|_| c.place("default", "web", "api", &node))
        .collect();
    let indexes: Vec<u64> = ids.iter().map(|id| c.allocation(id).create_index).collect();
    let fake = FakeNomad::start(c);
    // Inclusive: asking for the second frame's index starts with it.
    let mut lines = Lines::new(
        &fake,
        &format!("topic=Allocation&namespace=*&index={}", indexes[1]),
    )
    .await;
    assert_eq!(lines.frame().await["Index"].as_u64(), Some(indexes[1]));
    // Too old for the buffer: silently from the oldest (evicting the node's registration and
    // the first placement).
    let first = indexes[0];
    fake.update(|c| {
        c.events.frames.retain(|f| f.index > first);
    });
    let mut lines = Lines::new(&fake, "topic=Allocation&namespace=*&index=1").await;
    assert_eq!(lines.frame().await["Index"].as_u64(), Some(indexes[1]));
    // Beyond the newest: the tail again, with an index below the one asked for.
    let mut lines = Lines::new(&fake, "topic=Allocation&namespace=*&index=100000").await;
    assert_eq!(lines.frame().await["Index"].as_u64(), Some(indexes[2]));
}

#[tokio::test]
async fn one_frame_can_hold_allocations_of_many_nodes_and_gc_sends_nothing() {
    let (mut c, node, other) = cluster();
    let a = c.place("default", "web", "api", &node);
    let b = c.place("default", "web", "api", &other);
    let fake = FakeNomad::start(c);
    let mut lines = Lines::new(&fake, "topic=Allocation:*&namespace=*&index=999999").await;
    lines.frame().await; // the re-sent tail
    fake.update(|c| {
        c.set_client_statuses(&[(&a, ClientStatus::Running), (&b, ClientStatus::Running)]);
        c.gc(&a);
        c.set_client_status(&b, ClientStatus::Complete);
    });
    let batch = lines.frame().await;
    let nodes: Vec<&str> = batch["Events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["Payload"]["Allocation"]["NodeID"].as_str().expect("node"))
        .collect();
    assert_eq!(nodes, [node.as_str(), other.as_str()]);
    // The next frame is b's completion: the GC in between produced no event.
    let next = lines.frame().await;
    assert_eq!(next["Events"][0]["Key"], Value::String(b));
    assert_eq!(
        next["Events"][0]["Payload"]["Allocation"]["ClientStatus"],
        "complete"
    );
}

#[tokio::test]
async fn the_default_namespace_is_default_and_star_is_a_snapshot() {
    let (mut c, node, _) = cluster();
    c.register_job(
        Job::service("db")
            .namespace("data")
            .group(TaskGroup::new("g").task(Task::new("pg", "docker"))),
    );
    let fake = FakeNomad::start(c);
    let mut default_only = Lines::new(&fake, "topic=Allocation&index=999999").await;
    let mut everything = Lines::new(&fake, "topic=Allocation&namespace=*&index=999999").await;
    fake.update(|c| {
        c.place("data", "db", "g", &node);
        c.add_namespace("later");
        c.register_job(
            Job::service("late")
                .namespace("later")
                .group(TaskGroup::new("g").task(Task::new("t", "exec"))),
        );
        c.place("later", "late", "g", &node);
        c.place("default", "web", "api", &node);
    });
    let seen = everything.frame().await;
    assert_eq!(seen["Events"][0]["Namespace"], "data");
    // The "later" namespace did not exist at subscribe time: its placement is skipped.
    let seen = everything.frame().await;
    assert_eq!(seen["Events"][0]["Namespace"], "default");
    let seen = default_only.frame().await;
    assert_eq!(seen["Events"][0]["Namespace"], "default");
}

#[tokio::test]
async fn a_star_subscription_needs_read_job_everywhere_on_both_transports() {
    let (mut c, _node, _) = cluster();
    c.add_namespace("secret");
    c.enable_acl_with([(
        "partial",
        Policy::default().namespace("default", &["read-job"]),
    )]);
    let fake = FakeNomad::start(c);
    fake.set_stream(|s| s.transport = Transport::Chunked);
    let response = Lines::open(&fake, "topic=Allocation&namespace=*", Some("partial")).await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.text().await.expect("body"), "Permission denied");
    fake.set_stream(|s| s.transport = Transport::Hijacked);
    let response = Lines::open(&fake, "topic=Allocation&namespace=*", Some("partial")).await;
    assert_eq!(response.status(), 200, "hijacked: 200 before the check");
    assert_eq!(response.headers()["connection"], "close");
    assert_eq!(
        response.text().await.expect("body"),
        "",
        "then EOF before any heartbeat"
    );
    // The default namespace alone is allowed.
    let response = Lines::open(&fake, "topic=Allocation", Some("partial")).await;
    let mut lines = Lines {
        response,
        buffer: Vec::new(),
    };
    assert_eq!(lines.next().await.expect("heartbeat"), "{}");
}

#[tokio::test]
async fn heartbeats_repeat_on_the_configured_interval() {
    let (c, ..) = cluster();
    let fake = FakeNomad::start(c);
    fake.set_stream(|s| s.heartbeat = Duration::from_millis(20));
    let mut lines = Lines::new(&fake, "topic=Allocation&namespace=*").await;
    for _ in 0..3 {
        assert_eq!(lines.next().await.expect("open"), "{}");
    }
}

#[tokio::test]
async fn a_server_restart_closes_subscriptions_and_loses_the_gap() {
    let (mut c, node, _) = cluster();
    let first = c.place("default", "web", "api", &node);
    let fake = FakeNomad::start(c);
    fake.set_stream(|s| s.transport = Transport::Chunked);
    let mut lines = Lines::new(&fake, "topic=Allocation&namespace=*&index=999999").await;
    lines.frame().await;
    let lost = fake.update(|c| {
        let mut lost = String::new();
        c.restart_server(|c| lost = c.place("default", "web", "api", &node));
        lost
    });
    loop {
        match lines.next().await {
            Ok(line) => assert_eq!(line, "{}"),
            Err(tail) => {
                assert_eq!(
                    tail,
                    "subscription closed by server, client should resubscribe"
                );
                break;
            }
        }
    }
    // Resubscribing from before the restart: the buffer is empty, the placement made while the
    // server was down never appears; only new writes do.
    let mut lines = Lines::new(&fake, "topic=Allocation&namespace=*&index=1").await;
    fake.update(|c| c.set_client_status(&first, ClientStatus::Running));
    let frame = lines.frame().await;
    assert_eq!(frame["Events"][0]["Key"], Value::String(first));
    assert_ne!(frame["Events"][0]["Key"], Value::String(lost));
}

#[tokio::test]
async fn a_revoked_token_ends_the_stream() {
    let (mut c, node, _) = cluster();
    c.enable_acl_with([("t", Policy::alloc_table_reader())]);
    let fake = FakeNomad::start(c);
    let response = Lines::open(&fake, "topic=Allocation&namespace=*", Some("t")).await;
    let mut lines = Lines {
        response,
        buffer: Vec::new(),
    };
    assert_eq!(lines.next().await.expect("heartbeat"), "{}");
    fake.update(|c| {
        c.revoke_token("t");
        c.place("default", "web", "api", &node);
    });
    assert!(lines.next().await.is_err(), "hijacked: EOF");
}

#[tokio::test]
async fn faults_cut_frames_and_inject_garbage() {
    let (mut c, node, _) = cluster();
    c.place("default", "web", "api", &node);
    let fake = FakeNomad::start(c);
    let mut lines = Lines::new(&fake, "topic=Allocation&namespace=*&index=999999").await;
    lines.frame().await;
    fake.set_stream(|s| s.fault = Some(StreamFault::GarbageLine));
    fake.update(|c| {
        c.place("default", "web", "api", &node);
    });
    let mut saw_garbage = false;
    loop {
        let line = lines.next().await.expect("open");
        if line.starts_with("<html>") {
            saw_garbage = true;
        } else if line != "{}" {
            break;
        }
    }
    assert!(saw_garbage);
    fake.set_stream(|s| s.fault = Some(StreamFault::CloseMidFrame));
    fake.update(|c| {
        c.place("default", "web", "api", &node);
    });
    loop {
        match lines.next().await {
            Ok(line) => assert_eq!(line, "{}"),
            Err(rest) => {
                assert!(rest.starts_with("{\"Events\""), "half a frame: {rest}");
                assert!(serde_json::from_str::<Value>(&rest).is_err());
                break;
            }
        }
    }
    fake.set_stream(|s| s.fault = Some(StreamFault::Status(500)));
    let response = Lines::open(&fake, "topic=Allocation&namespace=*", None).await;
    assert_eq!(response.status(), 200, "hijacked");
    assert_eq!(response.text().await.expect("body"), "");
}

/// The Node topic as Nomad's `nomad/state/events.go` publishes it: the sanitized node as
/// payload, `Namespace` empty (it passes any namespace filter), `FilterKeys` null; a node that
/// goes down is a `NodeStreamEvent`, one purged a `NodeDeregistration`. It needs `node:read`.
#[tokio::test]
async fn node_events_carry_the_node_and_need_node_read() {
    let (mut c, node, _) = cluster();
    c.enable_acl_with([
        ("jobs", Policy::default().namespace("*", &["read-job"])),
        (
            "nodes",
            Policy::default().node_read().namespace("*", &["read-job"]),
        ),
    ]);
    let fake = FakeNomad::start(c);
    fake.set_stream(|s| s.transport = Transport::Chunked);
    let refused = Lines::open(&fake, "topic=Node:*&namespace=*", Some("jobs")).await;
    assert_eq!(refused.status(), 403, "the Node topic needs node:read");
    let response = Lines::open(
        &fake,
        "topic=Node:*&topic=Allocation:*&namespace=*&index=1",
        Some("nodes"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut lines = Lines {
        response,
        buffer: Vec::new(),
    };
    let frame = lines.frame().await;
    let event = &frame["Events"][0];
    assert_eq!(event["Topic"], "Node");
    assert_eq!(event["Type"], "NodeRegistration");
    assert_eq!(event["Namespace"], "");
    assert_eq!(event["FilterKeys"], Value::Null);
    assert_eq!(event["Key"], event["Payload"]["Node"]["ID"]);
    fake.update(|c| c.node_down(&node));
    let down = loop {
        let frame = lines.frame().await;
        if frame["Events"][0]["Topic"] == "Node" && frame["Events"][0]["Key"] == node.as_str() {
            break frame;
        }
    };
    assert_eq!(down["Events"][0]["Type"], "NodeStreamEvent");
    assert_eq!(down["Events"][0]["Payload"]["Node"]["Status"], "down");
    fake.update(|c| c.deregister_node(&node));
    let gone = lines.frame().await;
    assert_eq!(gone["Events"][0]["Type"], "NodeDeregistration");
    // An Allocation-only subscription sees none of them.
    let mut allocations_only = Lines {
        response: Lines::open(
            &fake,
            "topic=Allocation:*&namespace=*&index=1",
            Some("nodes"),
        )
        .await,
        buffer: Vec::new(),
    };
    fake.update(|c| {
        c.add_node(Node::new("late"));
    });
    let placed = fake.update(|c| {
        let late = c
            .nodes
            .values()
            .find(|n| n.name == "late")
            .expect("late")
            .id
            .clone();
        c.place("default", "web", "api", &late)
    });
    loop {
        let frame = allocations_only.frame().await;
        assert!(
            frame["Events"]
                .as_array()
                .expect("events")
                .iter()
                .all(|e| e["Topic"] == "Allocation"),
            "{frame}"
        );
        if frame["Events"][0]["Key"] == placed.as_str() {
            break;
        }
    }
}
