//! Where the Nomad agent is: `NOMAD_ADDR`'s three forms, parsed once and shown as the user gave
//! them in every message.

use std::path::PathBuf;

use reqwest::Url;

/// A Nomad agent address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// `http://` or `https://`.
    Url(Url),
    /// `unix:///path/to/api.sock`.
    Unix(PathBuf),
}

/// Why an address is not usable.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid Nomad address {address:?} (--address/NOMAD_ADDR): {reason}; use http://host:4646, https://host:4646 or unix:///path/to/api.sock"
)]
pub struct AddressError {
    address: String,
    reason: String,
}

impl Address {
    /// Parses `http://…`, `https://…` or `unix:///…`, as Nomad's `NOMAD_ADDR`.
    pub fn parse(raw: &str) -> Result<Address, AddressError> {
        let error = |reason: &str| AddressError {
            address: raw.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = raw.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(error("a unix socket path must be absolute"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        let url = Url::parse(raw).map_err(|e| error(&e.to_string()))?;
        match url.scheme() {
            "http" | "https" if url.host().is_some() => Ok(Address::Url(url)),
            "http" | "https" => Err(error("no host")),
            other => Err(error(&format!("unsupported scheme {other:?}"))),
        }
    }

    pub(super) fn is_https(&self) -> bool {
        matches!(self, Address::Url(url) if url.scheme() == "https")
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Url(url) => f.write_str(url.as_str().trim_end_matches('/')),
            Address::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_like_nomad_addr() {
        assert!(matches!(
            Address::parse("http://127.0.0.1:4646"),
            Ok(Address::Url(_))
        ));
        assert!(matches!(
            Address::parse("https://nomad.example:4646"),
            Ok(Address::Url(_))
        ));
        assert_eq!(
            Address::parse("unix:///secrets/api.sock").expect("valid"),
            Address::Unix(PathBuf::from("/secrets/api.sock"))
        );
        for bad in [
            "127.0.0.1:4646",
            "ftp://x",
            "unix://relative.sock",
            "http://",
        ] {
            let err = Address::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("NOMAD_ADDR"), "{err}");
        }
    }

    #[test]
    fn addresses_display_as_given() {
        let addr = Address::parse("unix:///run/nomad.sock").expect("valid");
        assert_eq!(addr.to_string(), "unix:///run/nomad.sock");
        let addr = Address::parse("http://127.0.0.1:4646/").expect("valid");
        assert_eq!(addr.to_string(), "http://127.0.0.1:4646");
    }
}
