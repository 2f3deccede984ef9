//! `run`'s Prometheus metrics, read from its `--listen` address.

use std::net::SocketAddr;

use super::{eventually, http_get};

/// One scrape of `/metrics` (the listener must answer 200).
pub fn scrape(address: SocketAddr) -> String {
    let (status, body) = http_get(address, "/metrics").expect("the listener answers");
    assert_eq!(status, 200);
    body
}

/// The value of one exact series (`name{labels}` as exposed) of an exposition.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Waits until one exact series satisfies `wanted`; the failure shows the last scrape.
pub fn wait_for_sample(address: SocketAddr, series: &str, wanted: impl Fn(f64) -> bool) {
    let mut last = String::new();
    eventually(series, || {
        last = scrape(address);
        sample(&last, series).is_some_and(&wanted)
    })
    .unwrap_or_else(|e| panic!("{e}; last scrape:\n{last}"));
}
