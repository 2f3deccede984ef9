//! Why a command failed, and the exit code of each class of failure.

use crate::config::ConfigError;
use crate::listing::ListError;
use crate::listing::local_node::NodeError;
use crate::nomad::{self, FailureClass};
use crate::observe::http::ListenError;
use crate::publish::PublishError;
use crate::table::diff::DiffError;
use crate::table::validate::ValidationError;

/// Process exit codes, one per failure class.
pub mod exit_code {
    /// An unexpected failure, such as stdout closing mid-write.
    pub const OTHER: u8 = 1;
    /// Bad flags, environment or local settings (clap also uses 2).
    pub const USAGE: u8 = 2;
    /// Nomad could not be reached.
    pub const CONNECTION: u8 = 3;
    /// Nomad refused the token (403).
    pub const AUTH: u8 = 4;
    /// Nomad answered with an error (404, 5xx, ...).
    pub const NOMAD: u8 = 5;
    /// Nomad's answer could not be understood.
    pub const BAD_RESPONSE: u8 = 6;
    /// The table file could not be written.
    pub const FILE: u8 = 7;
    /// The table failed validation; nothing was published.
    pub const INVALID_TABLE: u8 = 8;
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Nomad(#[from] nomad::Error),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(
        "the table Nomad's answers give is not valid, so it is neither published nor printed: {0}"
    )]
    Invalid(#[from] ValidationError),
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    Diff(#[from] DiffError),
    #[error(transparent)]
    Push(#[from] crate::push::sender::PushError),
    #[error("cannot write the man pages into {dir}: {source}; create the directory first")]
    WriteManPages {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the table file {path} to compare with: {source}")]
    ReadTable {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// A listing's failure keeps its class: the node's, or Nomad's.
impl From<ListError> for AppError {
    fn from(error: ListError) -> AppError {
        match error {
            ListError::Node(e) => AppError::Node(e),
            ListError::Nomad(e) => AppError::Nomad(e),
        }
    }
}

fn nomad_exit_code(error: &nomad::Error) -> u8 {
    match error.class() {
        FailureClass::Connection => exit_code::CONNECTION,
        FailureClass::Auth => exit_code::AUTH,
        FailureClass::Nomad => exit_code::NOMAD,
        FailureClass::BadResponse => exit_code::BAD_RESPONSE,
        FailureClass::Settings => exit_code::USAGE,
    }
}

impl AppError {
    /// The exit code for this failure's class.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) | AppError::Listen(_) => exit_code::USAGE,
            AppError::Nomad(e) | AppError::Node(NodeError::Nomad(e)) => nomad_exit_code(e),
            AppError::Node(NodeError::NoClientNode { .. } | NodeError::UnknownNode { .. }) => {
                exit_code::NOMAD
            }
            AppError::Invalid(_) | AppError::Diff(_) => exit_code::INVALID_TABLE,
            AppError::Publish(_) | AppError::ReadTable { .. } | AppError::WriteManPages { .. } => {
                exit_code::FILE
            }
            AppError::Stdout(_)
            | AppError::Runtime(_)
            | AppError::Signals(_)
            | AppError::Push(_) => exit_code::OTHER,
        }
    }
}
