//! A failed request to Nomad: what went wrong, said with the URL (never the token) and what to
//! do, and classified so that callers can pick an exit code or decide to retry.

use std::time::Duration;

use reqwest::StatusCode;

use super::acl::Needs;
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
    /// A 403 for a token Nomad knows: its policy lacks what the request needs.
    #[error("Nomad refused {url} with 403 {body:?}: the token needs {needs}")]
    PermissionDenied {
        url: String,
        body: String,
        needs: Needs,
    },
    /// A 403 because Nomad does not know the token (never issued, deleted, or from another
    /// cluster): no policy change helps, only another token.
    #[error("Nomad refused {url} with 403 {body:?}: the token needs {needs}")]
    UnknownToken {
        url: String,
        body: String,
        needs: Needs,
    },
    #[error("Nomad answered {url} with {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Nomad's answer to {url} is not the JSON expected: {cause}")]
    Decode { url: String, cause: String },
    #[error(
        "Nomad's answer to {url} is larger than {limit} bytes, far beyond any real one; is NOMAD_ADDR a Nomad agent?"
    )]
    TooLarge { url: String, limit: usize },
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
            Error::PermissionDenied { .. } | Error::UnknownToken { .. } => FailureClass::Auth,
            Error::Status { .. } => FailureClass::Nomad,
            Error::Decode { .. } | Error::TooLarge { .. } => FailureClass::BadResponse,
            Error::Token(_) | Error::Tls(_) | Error::Address(_) | Error::Client(_) => {
                FailureClass::Settings
            }
        }
    }
}

/// Nomad's answer to a token it does not know: `structs.ErrTokenNotFound`. Its HTTP layer
/// (`errCodeFromHandler` in `command/agent/http.go`) answers 403 with this exact text for any
/// error that ends with it, and 403 `Permission denied` to a known token that lacks a
/// capability; the body is the only thing that tells the two apart.
const TOKEN_NOT_FOUND: &str = "ACL token not found";

/// An error for a non-success answer: 403 names the ACL needed, others quote Nomad's body.
pub(super) fn status_error(status: StatusCode, body: &[u8], url: String, needs: Needs) -> Error {
    let raw = String::from_utf8_lossy(body);
    let text = one_line(&raw, 300);
    match status {
        StatusCode::FORBIDDEN if raw.trim_end().ends_with(TOKEN_NOT_FOUND) => Error::UnknownToken {
            url,
            body: text,
            needs,
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(body: &str) -> Error {
        status_error(
            StatusCode::FORBIDDEN,
            body.as_bytes(),
            "http://127.0.0.1:4646/v1/nodes".to_owned(),
            Needs::NodeReadCluster,
        )
    }

    #[test]
    fn a_refusal_of_an_unknown_token_is_told_from_a_missing_capability() {
        assert!(matches!(
            forbidden("ACL token not found"),
            Error::UnknownToken { .. }
        ));
        assert!(matches!(
            forbidden("rpc error: ACL token not found\n"),
            Error::UnknownToken { .. }
        ));
        assert!(matches!(
            forbidden("Permission denied"),
            Error::PermissionDenied { .. }
        ));
        assert!(matches!(
            forbidden("ACL token expired"),
            Error::PermissionDenied { .. }
        ));
        assert_eq!(forbidden("ACL token not found").class(), FailureClass::Auth);
    }
}
