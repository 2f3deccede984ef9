//! Talking to Nomad: the address, the client and its errors, what a token's policy must grant,
//! TLS and token settings, a read's parameters, the wire types, and the event stream with its
//! NDJSON framing.

pub mod acl;
pub mod address;
mod body;
pub mod client;
pub mod error;
pub mod events;
pub mod ndjson;
pub mod query;
pub mod tls;
pub mod token;
pub mod types;
mod urls;

pub use acl::{Capability, Needs};
pub use address::{Address, AddressError};
pub use client::{ConnectionSettings, NomadClient};
pub use error::{Error, FailureClass};
pub use events::{EventStream, StreamEnd};
pub use query::{Blocking, Consistency, Indexed};
pub use tls::{TlsError, TlsSettings};
pub use token::{Secret, TokenError, TokenFile, TokenSource};
