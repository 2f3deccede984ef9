//! The one ACL check every route makes: the request's token (`X-Nomad-Token`, else a bearer
//! token), the cluster's policy for it with what the route needs ([`Cluster::policy_of`]), and
//! Nomad's answer when it falls short.

use axum::http::{HeaderMap, StatusCode, header};

use super::ApiError;
use crate::model::{Capability, Cluster, Policy, Refusal};

/// The token a request carries: `X-Nomad-Token`, else `Authorization: Bearer`.
pub(super) fn token(headers: &HeaderMap) -> Option<&str> {
    let from_header = headers.get("x-nomad-token").and_then(|v| v.to_str().ok());
    let from_bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    from_header.or(from_bearer)
}

/// The caller's policy, once it grants every one of `needs` (none: any known token, for a route
/// that checks each object itself); else Nomad's 403.
pub(super) fn authorize(
    cluster: &Cluster,
    headers: &HeaderMap,
    needs: &[Capability<'_>],
) -> Result<Policy, ApiError> {
    cluster
        .policy_of(token(headers), needs)
        .map_err(|refusal| match refusal {
            Refusal::UnknownToken => ApiError::new(StatusCode::FORBIDDEN, "ACL token not found"),
            Refusal::Denied => ApiError::forbidden(),
        })
}
