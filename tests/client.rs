//! The typed client against the fake: blocking queries, `X-Nomad-Index` semantics and error
//! answers, as the daemon will rely on them.

use std::time::Duration;

use fake_nomad::{ClientStatus, Cluster, FakeNomad, Job, Node};
use nomad_alloc_table::nomad::types::Allocation;
use nomad_alloc_table::nomad::{
    Address, Blocking, ConnectionSettings, Error, Indexed, NomadClient, TlsSettings, TokenSource,
};

use crate::util::cluster_with_node;

fn client(fake: &FakeNomad) -> NomadClient {
    client_with_token(fake, TokenSource::None)
}

fn client_with_token(fake: &FakeNomad, token: TokenSource) -> NomadClient {
    NomadClient::new(ConnectionSettings {
        address: Address::parse(fake.address()).expect("address"),
        token,
        region: None,
        tls: TlsSettings::default(),
        basic_auth: None,
    })
    .expect("client")
}

fn two_node_cluster() -> (fake_nomad::Cluster, String, String, String) {
    let (mut cluster, node) = cluster_with_node();
    let other = cluster.add_node(Node::new("client-2"));
    cluster.register_job(Job::web());
    let alloc = cluster.place("default", "web", "api", &node);
    (cluster, node, other, alloc)
}

/// The fake serving `cluster`, and a client of it without a token.
fn serve(cluster: Cluster) -> (FakeNomad, NomadClient) {
    let fake = FakeNomad::start(cluster);
    let c = client(&fake);
    (fake, c)
}

/// The node's listing, answered at once.
async fn listing(c: &NomadClient, node: &str) -> Indexed<Vec<Allocation>> {
    c.node_allocations(node, Blocking::default())
        .await
        .expect("listed")
}

/// A blocking query for an index past `index`, waiting up to `wait`.
fn past(index: u64, wait: Duration) -> Blocking {
    Blocking {
        index,
        wait: Some(wait),
        ..Blocking::default()
    }
}

#[tokio::test]
async fn the_listing_index_is_the_largest_modify_index_of_the_node() {
    let (cluster, node, other, alloc) = two_node_cluster();
    let (fake, c) = serve(cluster);
    let listed = listing(&c, &node).await;
    let modify_index = fake.read(|c| c.allocation(&alloc).modify_index);
    assert_eq!(listed.index, Some(modify_index));
    assert_eq!(listed.value.len(), 1);
    // Work on another node does not move this node's index.
    fake.update(|c| {
        let id = c.place("default", "web", "api", &other);
        c.set_client_status(&id, ClientStatus::Running);
    });
    assert_eq!(listing(&c, &node).await.index, Some(modify_index));
}

#[tokio::test]
async fn a_blocking_query_returns_when_the_node_changes() {
    let (cluster, node, _other, alloc) = two_node_cluster();
    let (fake, c) = serve(cluster);
    let index = listing(&c, &node).await.index.expect("indexed");
    let requests_before = fake.requests().len();
    let blocked = tokio::spawn({
        let c = client(&fake);
        let node = node.clone();
        async move {
            c.node_allocations(&node, past(index, Duration::from_secs(60)))
                .await
        }
    });
    // Explicit synchronisation: change the node only once the blocking request has arrived.
    while fake.requests().len() == requests_before {
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(5));
    }
    fake.update(|c| c.set_client_status(&alloc, ClientStatus::Running));
    let woke = blocked.await.expect("joined").expect("answered");
    assert!(woke.index.expect("indexed") > index);
    assert_eq!(&*woke.value[0].client_status, "running");
}

#[tokio::test]
async fn a_blocking_query_without_change_returns_the_same_index_after_wait() {
    let (cluster, node, _other, _alloc) = two_node_cluster();
    let (fake, c) = serve(cluster);
    let index = listing(&c, &node).await.index.expect("indexed");
    let answer = c
        .node_allocations(&node, past(index, Duration::from_millis(200)))
        .await
        .expect("answered at the end of the wait");
    assert_eq!(answer.index, Some(index));
    let request = fake.requests().pop().expect("recorded");
    assert!(
        request.query.contains(&format!("index={index}")) && request.query.contains("wait=200ms")
    );
}

#[tokio::test]
async fn garbage_collection_can_move_the_index_backwards() {
    let (mut cluster, node, _other, first) = two_node_cluster();
    let second = cluster.place("default", "web", "api", &node);
    let (fake, c) = serve(cluster);
    let before = listing(&c, &node).await.index;
    fake.update(|c| c.gc(&second));
    let after = listing(&c, &node).await;
    assert!(after.index < before);
    assert_eq!(
        after.index,
        Some(fake.read(|c| c.allocation(&first).modify_index))
    );
}

#[tokio::test]
async fn an_unknown_node_lists_no_allocations_but_has_no_node() {
    let (cluster, ..) = two_node_cluster();
    let (_fake, c) = serve(cluster);
    assert!(listing(&c, "no-such-node").await.value.is_empty(), "200 []");
    let err = c.node("no-such-node").await.expect_err("404");
    assert!(matches!(err, Error::Status { status: 404, .. }), "{err}");
}

#[tokio::test]
async fn a_single_allocation_comes_with_its_job() {
    let (cluster, _node, _other, alloc) = two_node_cluster();
    let (_fake, c) = serve(cluster);
    let answer = c
        .allocation(&alloc, Blocking::default())
        .await
        .expect("found");
    assert_eq!(&*answer.value.job.expect("job").id, "web");
    let err = c
        .allocation("missing", Blocking::default())
        .await
        .expect_err("404");
    assert!(err.to_string().contains("alloc not found"), "{err}");
}

mod stream {
    use std::time::Duration;

    use fake_nomad::{ClientStatus, FakeNomad, Policy, StreamFault, Transport};
    use nomad_alloc_table::nomad::events::Message;
    use nomad_alloc_table::nomad::{Error, EventStream, Secret, StreamEnd, TokenSource};

    use super::{client, client_with_token, two_node_cluster};

    const IDLE: Duration = Duration::from_secs(10);

    /// A subscription to every allocation from `index`, past its first message (a heartbeat).
    async fn subscribed(fake: &FakeNomad, index: u64) -> EventStream {
        let mut stream = client(fake)
            .event_stream(&["Allocation:*"], index)
            .await
            .expect("subscribed");
        assert_eq!(
            stream.next(IDLE).await.expect("heartbeat"),
            Message::Heartbeat
        );
        stream
    }

    #[tokio::test]
    async fn frames_and_heartbeats_arrive_in_order() {
        let (cluster, _node, _other, alloc) = two_node_cluster();
        let fake = FakeNomad::start(cluster);
        let index = fake.read(|c| c.index);
        let mut stream = subscribed(&fake, index + 1).await;
        fake.update(|c| c.set_client_status(&alloc, ClientStatus::Running));
        // An index beyond the buffer re-sends its tail first: skip what is not newer.
        let frame = loop {
            if let Message::Frame(frame) = stream.next(IDLE).await.expect("message")
                && frame.index > index
            {
                break frame;
            }
        };
        let event = &frame.events[0];
        assert_eq!(event.event_type, "AllocationUpdated");
        let payload = event.payload.allocation.as_ref().expect("allocation");
        assert_eq!(&*payload.id, alloc);
        assert_eq!(&*payload.client_status, "running");
        assert!(payload.job.is_none());
    }

    #[tokio::test]
    async fn a_refused_subscription_is_told_on_both_transports() {
        let (mut cluster, ..) = two_node_cluster();
        cluster.add_namespace("other");
        cluster.enable_acl_with([(
            "t",
            Policy::default()
                .node_read()
                .namespace("default", &["read-job"]),
        )]);
        let fake = FakeNomad::start(cluster);
        let c = client_with_token(&fake, TokenSource::Static(Secret::new("t".to_owned())));
        // Hijacked (default): 200, then EOF before the first heartbeat.
        let mut stream = c.event_stream(&["Allocation:*"], 0).await.expect("200");
        let end = stream.next(IDLE).await.expect_err("closed");
        assert!(
            matches!(
                end,
                StreamEnd::Closed {
                    before_first_heartbeat: true,
                    ..
                }
            ),
            "{end}"
        );
        // Chunked: a real 403 that names the missing ACL.
        fake.set_stream(|s| s.transport = Transport::Chunked);
        let err = c
            .event_stream(&["Allocation:*"], 0)
            .await
            .err()
            .expect("403");
        assert!(matches!(err, Error::PermissionDenied { .. }));
        assert!(
            err.to_string().contains("read-job on every namespace"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn silence_ends_the_stream_at_the_read_deadline() {
        let (cluster, ..) = two_node_cluster();
        let fake = FakeNomad::start(cluster);
        fake.set_stream(|s| s.fault = Some(StreamFault::Stall));
        let mut stream = subscribed(&fake, 0).await;
        let end = stream
            .next(Duration::from_millis(100))
            .await
            .expect_err("silent");
        assert!(matches!(end, StreamEnd::Silent { .. }), "{end}");
    }

    #[tokio::test]
    async fn the_old_transports_error_tail_is_reported() {
        let (cluster, ..) = two_node_cluster();
        let fake = FakeNomad::start(cluster);
        fake.set_stream(|s| s.transport = Transport::Chunked);
        let mut stream = subscribed(&fake, 0).await;
        fake.update(|c| c.restart_server(|_| {}));
        loop {
            match stream.next(IDLE).await {
                Ok(message) => assert!(matches!(message, Message::Heartbeat | Message::Frame(_))),
                Err(StreamEnd::Closed {
                    tail,
                    before_first_heartbeat,
                    ..
                }) => {
                    assert!(!before_first_heartbeat);
                    assert_eq!(
                        tail,
                        "subscription closed by server, client should resubscribe"
                    );
                    break;
                }
                Err(other) => panic!("unexpected end: {other}"),
            }
        }
    }
}
