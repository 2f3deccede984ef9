//! Bounds on what Nomad's answers can make the program do: pages that never end are refused
//! with a one-line error instead of followed for ever.

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;

use crate::util::bin_at;

/// A server that answers like Nomad but whose allocation pages always name the same next page.
async fn endless_pages() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let index = |token: Option<&'static str>| {
        let mut headers = HeaderMap::new();
        headers.insert("x-nomad-index", "7".parse().expect("header"));
        if let Some(token) = token {
            headers.insert("x-nomad-nexttoken", token.parse().expect("header"));
        }
        headers
    };
    let app = Router::new()
        .route("/v1/nodes", get(move || async move { (index(None), "[]") }))
        .route(
            "/v1/allocations",
            get(move || async move { (index(Some("page-2")), "[]") }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

#[test]
fn allocation_pages_that_never_end_are_refused() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let address = runtime.block_on(endless_pages());
    let dir = tempfile::tempdir().expect("tempdir");
    let output = bin_at(&address)
        .args(["dump", "--scope", "cluster", "-o"])
        .arg(dir.path().join("cluster.csv"))
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(6)
        .get_output()
        .stderr
        .clone();
    let stderr = String::from_utf8(output).expect("utf8");
    assert!(stderr.contains("do not end"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        !dir.path().join("cluster.csv").exists(),
        "nothing published"
    );
}
