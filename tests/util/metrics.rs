//! `run`'s Prometheus metrics, read from its `--listen` address: what it counted of its own
//! work (listings applied, responses by status, publishes), for tests that observe behaviour
//! the table and the fake cannot show.

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

/// The sum of the samples of `name` whose labels include every one of `labels` (0 when there
/// is none), e.g. every listing applied whatever its reason, or every 403 whatever the endpoint.
pub fn total(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            let has_labels = match rest.strip_prefix('{') {
                Some(inside) => labels
                    .iter()
                    .all(|(key, value)| inside.contains(&format!("{key}=\"{value}\""))),
                None => rest.is_empty() && labels.is_empty(),
            };
            has_labels.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
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
