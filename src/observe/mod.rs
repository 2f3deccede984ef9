//! What `run` shows of itself: Prometheus metrics ([`metrics`]), liveness and readiness
//! ([`health`]), and the HTTP listener that serves both ([`http`]).

pub mod health;
pub mod http;
pub mod metrics;
