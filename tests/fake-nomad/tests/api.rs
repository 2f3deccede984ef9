//! The fake's HTTP behaviour against Nomad's HTTP agent (`command/agent/http.go` and the
//! endpoint handlers): status codes, bodies and content types, headers, ACL, blocking-query parameters and the
//! `/v1/allocations` stub listing.

use fake_nomad::{ClientStatus, Cluster, FakeNomad, Job, Node, Policy, Task, TaskGroup};
use serde_json::Value;

fn cluster() -> (Cluster, String, String) {
    let mut c = Cluster::new(5);
    let node = c.add_node(Node::new("n1").datacenter("dc9"));
    let other = c.add_node(Node::new("n2"));
    c.set_agent_node(&node);
    c.register_job(Job::web());
    c.register_job(
        Job::batch("etl")
            .namespace("data")
            .group(TaskGroup::new("g").task(Task::new("run", "exec"))),
    );
    let alloc = c.place("default", "web", "api", &node);
    c.set_client_status(&alloc, ClientStatus::Running);
    c.place("data", "etl", "g", &other);
    (c, node, alloc)
}

/// The status and text body of `GET path` without a token (for errors).
async fn error(fake: &FakeNomad, path: &str) -> (u16, String) {
    let response = get(fake, path, None).await;
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// The JSON body of `GET path`, with `token` (a header and its value) if any.
async fn json<T: serde::de::DeserializeOwned>(
    fake: &FakeNomad,
    path: &str,
    token: Option<(&str, &str)>,
) -> T {
    get(fake, path, token).await.json().await.expect("json")
}

async fn get(fake: &FakeNomad, path: &str, token: Option<(&str, &str)>) -> reqwest::Response {
    // In a workspace build reqwest comes without a default crypto provider (the exporter brings
    // its own TLS configuration); these plain-HTTP requests need one all the same.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut request = reqwest::Client::new().get(format!("{}{path}", fake.address()));
    if let Some((header, value)) = token {
        request = request.header(header, value);
    }
    request.send().await.expect("fake answers")
}

#[tokio::test]
async fn errors_are_plain_text_like_nomads() {
    let (mut c, node, _) = cluster();
    c.enable_acl();
    let fake = FakeNomad::start(c);
    let response = get(&fake, &format!("/v1/node/{node}/allocations"), None).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(response.text().await.expect("body"), "Permission denied");
    let response = get(&fake, "/v1/allocation/nope", None).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.expect("body"), "alloc not found");
}

#[tokio::test]
async fn a_bearer_token_works_like_x_nomad_token() {
    let (mut c, node, _) = cluster();
    c.enable_acl_with([("secret", Policy::alloc_table_reader())]);
    let fake = FakeNomad::start(c);
    for header in [
        ("X-Nomad-Token", "secret"),
        ("Authorization", "Bearer secret"),
    ] {
        let response = get(&fake, &format!("/v1/node/{node}/allocations"), Some(header)).await;
        assert_eq!(response.status(), 200, "{header:?}");
        assert_eq!(response.headers()["x-nomad-knownleader"], "true");
        assert!(response.headers().contains_key("x-nomad-lastcontact"));
        assert!(response.headers().contains_key("x-nomad-index"));
    }
}

#[tokio::test]
async fn agent_self_has_lowercase_keys_and_an_empty_alloc_dir() {
    let (c, node, _) = cluster();
    let fake = FakeNomad::start(c);
    let body: Value = json(&fake, "/v1/agent/self", None).await;
    assert_eq!(body["stats"]["client"]["node_id"], Value::String(node));
    assert_eq!(body["config"]["Client"]["AllocDir"], "");
    assert_eq!(body["config"]["DataDir"], "/opt/nomad/data");
    assert_eq!(body["member"]["Status"], "none");
}

#[tokio::test]
async fn bad_blocking_parameters_are_400() {
    let (c, node, _) = cluster();
    let fake = FakeNomad::start(c);
    let listing = format!("/v1/node/{node}/allocations");
    assert_eq!(
        error(&fake, &format!("{listing}?index=abc")).await,
        (400, "Invalid index".to_owned())
    );
    assert_eq!(
        error(&fake, &format!("{listing}?index=1&wait=soon")).await,
        (400, "Invalid wait time".to_owned())
    );
}

#[tokio::test]
async fn the_stub_listing_filters_on_full_fields_and_namespaces() {
    let (c, node, alloc) = cluster();
    let fake = FakeNomad::start(c);
    let default_only: Vec<Value> = json(&fake, "/v1/allocations", None).await;
    assert_eq!(default_only.len(), 1);
    assert_eq!(default_only[0]["JobType"], "service");
    assert_eq!(default_only[0]["JobVersion"], 0);
    assert!(default_only[0].get("Job").is_none(), "stubs carry no Job");
    assert!(default_only[0]["TaskStates"].is_object());
    let all: Vec<Value> = json(&fake, "/v1/allocations?namespace=*", None).await;
    assert_eq!(all.len(), 2);
    let filter = format!("NodeID == \"{node}\" and Job.Type == \"service\"");
    let url = with_query(
        "/v1/allocations",
        &[
            ("namespace", "*"),
            ("task_states", "false"),
            ("filter", &filter),
        ],
    );
    let filtered: Vec<Value> = json(&fake, &url, None).await;
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0]["ID"], Value::String(alloc));
    assert_eq!(filtered[0]["TaskStates"], Value::Null);
    let bad = with_query("/v1/allocations", &[("filter", "NodeID matches x")]);
    assert_eq!(error(&fake, &bad).await.0, 400);
}

#[tokio::test]
async fn only_the_read_job_namespaces_are_listed_for_a_limited_token() {
    let (mut c, _node, _) = cluster();
    c.enable_acl_with([(
        "limited",
        Policy::default().namespace("data", &["read-job"]),
    )]);
    let fake = FakeNomad::start(c);
    let response = get(&fake, "/v1/allocations", Some(("X-Nomad-Token", "limited"))).await;
    assert_eq!(response.status(), 403, "no read-job on default");
    let limited = Some(("X-Nomad-Token", "limited"));
    let all: Vec<Value> = json(&fake, "/v1/allocations?namespace=*", limited).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["Namespace"], "data");
}

/// A path with an encoded query string.
fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    let url = reqwest::Url::parse_with_params(&format!("http://fake{path}"), params).expect("url");
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

#[tokio::test]
async fn response_bytes_are_counted() {
    let (c, node, _) = cluster();
    let fake = FakeNomad::start(c);
    let before = fake.bytes_sent();
    let body = get(&fake, &format!("/v1/node/{node}/allocations"), None)
        .await
        .bytes()
        .await
        .expect("body");
    assert_eq!(fake.bytes_sent() - before, body.len() as u64);
}

#[tokio::test]
async fn the_signal_endpoint_checks_method_body_allocation_and_acl() {
    let (mut c, _node, alloc) = cluster();
    c.enable_acl_with([
        ("reader", Policy::alloc_table_reader()),
        (
            "lifecycle",
            Policy::default().namespace("*", &["alloc-lifecycle"]),
        ),
    ]);
    let fake = FakeNomad::start(c);
    let url = |id: &str| format!("{}/v1/client/allocation/{id}/signal", fake.address());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let sighup = r#"{"Task":"server","Signal":"SIGHUP"}"#;
    let status = async |id: &str, token: &str, body: &'static str| {
        http.post(url(id))
            .header("X-Nomad-Token", token)
            .body(body)
            .send()
            .await
            .expect("answered")
            .status()
    };
    let get = http.get(url(&alloc)).send().await.expect("answered");
    assert_eq!(get.status(), 405);
    assert_eq!(status(&alloc, "lifecycle", "{not json").await, 400);
    assert_eq!(status("nope", "lifecycle", sighup).await, 404);
    assert_eq!(status(&alloc, "reader", sighup).await, 403);
    assert!(fake.signals().is_empty());
    assert_eq!(status(&alloc, "lifecycle", sighup).await, 200);
    assert_eq!(
        fake.signals(),
        [fake_nomad::SignalRecord {
            alloc_id: alloc,
            task: "server".to_owned(),
            signal: "SIGHUP".to_owned()
        }]
    );
}

#[tokio::test]
async fn bytes_are_counted_by_route_and_subscriber() {
    let (c, node, _) = cluster();
    let fake = FakeNomad::start(c);
    let body = get(&fake, &format!("/v1/node/{node}/allocations"), None)
        .await
        .bytes()
        .await
        .expect("body");
    let by_route = fake.bytes_by_route();
    assert_eq!(
        by_route.get("/v1/node/{node_id}/allocations"),
        Some(&(body.len() as u64))
    );
    assert!(fake.bytes_by_subscriber().is_empty());
}

/// A blocking node listing wakes on its own node's changes only, as Nomad's per-node watch
/// (`AllocsByNode`) does.
#[tokio::test]
async fn a_blocking_node_listing_wakes_on_its_nodes_changes_only() {
    let (c, node, alloc) = cluster();
    let other = c
        .nodes
        .keys()
        .find(|id| **id != node)
        .expect("two nodes")
        .clone();
    let fake = std::sync::Arc::new(FakeNomad::start(c));
    let first = get(&fake, &format!("/v1/node/{node}/allocations"), None).await;
    let index: u64 = first.headers()["x-nomad-index"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a number");
    let path = format!("/v1/node/{node}/allocations?index={index}&wait=30s&stale=true");
    let blocked = tokio::spawn({
        let fake = fake.clone();
        async move {
            let answer = get(&fake, &path, None).await;
            (std::time::Instant::now(), answer)
        }
    });
    // Wait for the query to arrive, then change the other node: the query stays blocked.
    while !fake.requests().iter().any(|r| r.query.contains("wait=30s")) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for _ in 0..5 {
        fake.update(|c| c.place("default", "web", "api", &other));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!blocked.is_finished(), "woken by another node's change");
    // A change on this node wakes it within milliseconds.
    let changed = std::time::Instant::now();
    fake.update(|c| c.set_client_status(&alloc, ClientStatus::Complete));
    let (answered, answer) = blocked.await.expect("joined");
    let woke_after = answered - changed;
    assert!(
        woke_after < std::time::Duration::from_millis(100),
        "{woke_after:?}"
    );
    let new_index: u64 = answer.headers()["x-nomad-index"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a number");
    assert!(new_index > index);
}

#[tokio::test]
async fn a_follower_answers_stale_reads_from_its_frozen_state_with_its_headers() {
    let (c, node, _) = cluster();
    let fake = FakeNomad::start(c);
    fake.set_follower(Some((false, std::time::Duration::from_secs(12))));
    let placed = fake.update(|c| c.place("default", "web", "api", &node));
    let stale = get(
        &fake,
        &format!("/v1/node/{node}/allocations?stale=true"),
        None,
    )
    .await;
    assert_eq!(stale.headers()["x-nomad-knownleader"], "false");
    assert_eq!(stale.headers()["x-nomad-lastcontact"], "12000");
    let body: Value = stale.json().await.expect("json");
    assert!(
        !body.to_string().contains(&placed),
        "frozen before the placement"
    );
    let leader = get(&fake, &format!("/v1/node/{node}/allocations"), None).await;
    assert_eq!(leader.headers()["x-nomad-knownleader"], "true");
    assert_eq!(leader.headers()["x-nomad-lastcontact"], "0");
    let body: Value = leader.json().await.expect("json");
    assert!(body.to_string().contains(&placed));
    let bad = format!("/v1/node/{node}/allocations?stale=maybe");
    assert_eq!(error(&fake, &bad).await.0, 400);
}

#[tokio::test]
async fn the_stub_listing_pages_with_per_page_and_next_token() {
    let (mut c, node, _) = cluster();
    for _ in 0..3 {
        c.place("default", "web", "api", &node);
    }
    let fake = FakeNomad::start(c);
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let mut params = vec![("namespace", "*"), ("per_page", "2")];
        if !token.is_empty() {
            params.push(("next_token", token.as_str()));
        }
        let response = get(&fake, &with_query("/v1/allocations", &params), None).await;
        let next = response
            .headers()
            .get("x-nomad-nexttoken")
            .map(|v| v.to_str().expect("ascii").to_owned());
        let body: Value = response.json().await.expect("json");
        let page = body.as_array().expect("array");
        assert!(page.len() <= 2);
        seen.extend(
            page.iter()
                .map(|a| a["ID"].as_str().expect("id").to_owned()),
        );
        pages += 1;
        match next {
            Some(next) => token = next,
            None => break,
        }
    }
    let all: Value = json(
        &fake,
        &with_query("/v1/allocations", &[("namespace", "*")]),
        None,
    )
    .await;
    let expected: Vec<String> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|a| a["ID"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(expected.len(), 5);
    assert_eq!(seen, expected, "every allocation once, in order");
    assert_eq!(pages, 3);
    assert_eq!(error(&fake, "/v1/allocations?per_page=many").await.0, 400);
}

/// Nomad's RPC blocks before its HTTP handler turns "not found" into a 404: a blocking read of
/// an allocation a server does not have yet waits for it.
#[tokio::test]
async fn a_blocking_read_of_an_allocation_not_there_yet_waits_for_it() {
    let (c, node, _) = cluster();
    let index = c.allocs_table_index;
    let fake = std::sync::Arc::new(FakeNomad::start(c));
    let id = "0b6f4a1c-2d3e-4f50-8a9b-0c1d2e3f4a5b";
    let read = tokio::spawn({
        let fake = fake.clone();
        async move {
            get(
                &fake,
                &format!("/v1/allocation/{id}?index={index}&wait=30s"),
                None,
            )
            .await
        }
    });
    while !fake.requests().iter().any(|r| r.query.contains("wait=30s")) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!read.is_finished(), "a 404 before the index passed");
    // Another write to the allocs table passes the index: still not there, so 404.
    fake.update(|c| c.place("default", "web", "api", &node));
    let answer = read.await.expect("joined");
    assert_eq!(answer.status(), 404);
    let plain = get(&fake, &format!("/v1/allocation/{id}"), None).await;
    assert_eq!(plain.status(), 404, "without an index at once");
}

/// `/v1/nodes`: `NodeListStub`s (`Node.Stub`: Address, Datacenter, Name, NodePool, Status,
/// Version, no Attributes map of the full node), the nodes table's index, `node:read`.
#[tokio::test]
async fn the_node_listing_is_stubs_and_needs_node_read() {
    let (mut c, node, _) = cluster();
    c.enable_acl_with([
        ("jobs", Policy::default().namespace("*", &["read-job"])),
        ("nodes", Policy::default().node_read()),
    ]);
    let fake = FakeNomad::start(c);
    let refused = get(&fake, "/v1/nodes", Some(("X-Nomad-Token", "jobs"))).await;
    assert_eq!(refused.status(), 403);
    let response = get(&fake, "/v1/nodes", Some(("X-Nomad-Token", "nodes"))).await;
    assert_eq!(response.status(), 200);
    let index: u64 = response.headers()["X-Nomad-Index"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a number");
    let nodes: Vec<Value> = response.json().await.expect("json");
    assert_eq!(nodes.len(), 2);
    let mine = nodes.iter().find(|n| n["ID"] == node.as_str()).expect("n1");
    assert_eq!(mine["Datacenter"], "dc9");
    assert_eq!(mine["Name"], "n1");
    assert_eq!(mine["NodePool"], "default");
    assert_eq!(mine["Status"], "ready");
    assert!(mine["Attributes"].is_null(), "a stub, not the node");
    assert!(
        nodes
            .iter()
            .all(|n| n["ModifyIndex"].as_u64().expect("index") <= index)
    );
    // A node going down moves the index and its status.
    fake.update(|c| c.node_down(&node));
    let after: Vec<Value> = json(&fake, "/v1/nodes", Some(("X-Nomad-Token", "nodes"))).await;
    let mine = after.iter().find(|n| n["ID"] == node.as_str()).expect("n1");
    assert_eq!(mine["Status"], "down");
}
