//! Where a request goes and what it is called in messages: URLs built on the agent's address
//! with the region and the blocking-query parameters, and shown with the address the user gave
//! (a unix socket's path, not the `http://127.0.0.1` requests are built on).

use reqwest::Url;

use super::address::Address;
use super::query::{Blocking, Consistency};

/// The URLs of one agent.
#[derive(Debug)]
pub(super) struct Urls {
    /// The URL requests are built on (`http://127.0.0.1` for a unix socket).
    base: Url,
    address: Address,
    region: Option<String>,
}

impl Urls {
    /// URLs for the agent at `address`, in `region` if one is set.
    pub(super) fn new(address: Address, region: Option<String>) -> Urls {
        let base = match &address {
            Address::Url(url) => url.clone(),
            // Nomad's Go client uses this host for unix sockets too.
            Address::Unix(_) => Url::parse("http://127.0.0.1").expect("a valid constant URL"),
        };
        Urls {
            base,
            address,
            region,
        }
    }

    /// The address as the user gave it.
    pub(super) fn address(&self) -> &Address {
        &self.address
    }

    /// The URL of `path` with `params`, the region and the blocking query's parameters.
    pub(super) fn url(&self, path: &str, params: &[(&str, &str)], blocking: Blocking) -> Url {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}{path}"));
        {
            let mut query = url.query_pairs_mut();
            query.extend_pairs(params);
            if let Some(region) = &self.region {
                query.append_pair("region", region);
            }
            if blocking.index > 0 {
                query.append_pair("index", &blocking.index.to_string());
            }
            if let Some(wait) = blocking.wait {
                query.append_pair("wait", &format!("{}ms", wait.as_millis()));
            }
            if blocking.consistency == Consistency::Stale {
                query.append_pair("stale", "true");
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// What to call a URL in messages: the user's address plus the path and query.
    pub(super) fn shown(&self, url: &Url) -> String {
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        format!("{}{path_and_query}", self.address)
    }
}

/// Percent-encodes one path segment (IDs are UUIDs, but never trust input to be one).
pub(super) fn path_segment(raw: &str) -> String {
    let mut url = Url::parse("http://x/").expect("a valid constant URL");
    url.path_segments_mut()
        .expect("http URLs have path segments")
        .push(raw);
    url.path().trim_start_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn urls(address: &str, region: Option<&str>) -> Urls {
        Urls::new(
            Address::parse(address).expect("valid"),
            region.map(str::to_owned),
        )
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("abc-123"), "abc-123");
        assert_eq!(path_segment("../x y"), "..%2Fx%20y");
    }

    #[test]
    fn urls_carry_region_and_blocking_parameters() {
        let u = urls("http://127.0.0.1:4646", Some("eu"));
        let url = u.url(
            "/v1/node/n1/allocations",
            &[],
            Blocking {
                index: 42,
                wait: Some(Duration::from_secs(5)),
                consistency: Consistency::Stale,
            },
        );
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:4646/v1/node/n1/allocations?region=eu&index=42&wait=5000ms&stale=true"
        );
        let leader = Blocking {
            consistency: Consistency::Leader,
            ..Blocking::default()
        };
        let plain = urls("http://127.0.0.1:4646", None).url("/v1/agent/self", &[], leader);
        assert_eq!(plain.as_str(), "http://127.0.0.1:4646/v1/agent/self");
    }

    #[test]
    fn unix_socket_urls_are_shown_with_the_socket_path() {
        let u = urls("unix:///tmp/api.sock", None);
        let url = u.url("/v1/agent/self", &[], Blocking::AGENT);
        assert_eq!(u.shown(&url), "unix:///tmp/api.sock/v1/agent/self");
    }
}
