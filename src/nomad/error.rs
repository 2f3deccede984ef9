//! A failed request to Nomad: what went wrong, said with the URL (never the token) and what to
//! do, and classified so that callers can pick an exit code or decide to retry.

use std::time::Duration;

use reqwest::StatusCode;

use super::address::AddressError;
use super::tls::TlsError;
use super::token::TokenError;
use crate::text::one_line;

/// Which class of failure an error is, for exit codes and for deciding to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// Nomad could not be reached.
    Connection,
    /// The token is missing, unknown or lacks a capability.
    Auth,
    /// Nomad answered with an error.
    Nomad,
    /// Nomad's answer could not be understood.
    BadResponse,
    /// The client's own settings are wrong (TLS files, token file).
    Settings,
}

/// A failed request to Nomad. The messages name the URL (without the token) and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot reach Nomad at {url}: {cause}; check --address/NOMAD_ADDR and that the agent is running"
    )]
    Connect { url: String, cause: String },
    #[error("Nomad at {url} did not answer within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error(
        "Nomad at {url} sent no response headers within {seconds} s (a stuck server or proxy, or a half-open connection)"
    )]
    NoHeaders { url: String, seconds: u64 },
    #[error("Nomad refused {url} with 403 {body:?}: the token needs {needs}")]
    PermissionDenied {
        url: String,
        body: String,
        needs: &'static str,
    },
    #[error("Nomad answered {url} with {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Nomad's answer to {url} is not the JSON expected: {cause}")]
    Decode { url: String, cause: String },
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl Error {
    /// The class of failure, for the exit code.
    pub fn class(&self) -> FailureClass {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } | Error::NoHeaders { .. } => {
                FailureClass::Connection
            }
            Error::PermissionDenied { .. } => FailureClass::Auth,
            Error::Status { .. } => FailureClass::Nomad,
            Error::Decode { .. } => FailureClass::BadResponse,
            Error::Token(_) | Error::Tls(_) | Error::Address(_) | Error::Client(_) => {
                FailureClass::Settings
            }
        }
    }
}

/// An error for a non-success answer: 403 names the ACL needed, others quote Nomad's body.
pub(super) fn status_error(
    status: StatusCode,
    body: &[u8],
    url: String,
    needs: &'static str,
) -> Error {
    let text = one_line(&String::from_utf8_lossy(body), 300);
    match status {
        StatusCode::FORBIDDEN => Error::PermissionDenied {
            url,
            body: text,
            needs,
        },
        _ => Error::Status {
            url,
            status: status.as_u16(),
            body: if text.is_empty() {
                status.canonical_reason().unwrap_or("no body").to_owned()
            } else {
                text
            },
        },
    }
}

/// The innermost cause of an error chain: what actually went wrong ("Connection refused").
pub(super) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

pub(super) fn transport_error(url: &str, error: &reqwest::Error, timeout: Duration) -> Error {
    if error.is_timeout() {
        Error::Timeout {
            url: url.to_owned(),
            seconds: timeout.as_secs(),
        }
    } else {
        Error::Connect {
            url: url.to_owned(),
            cause: root_cause(error),
        }
    }
}
