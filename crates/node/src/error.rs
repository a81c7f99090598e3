//! What the node's operations fail with, as one enum shared by the engine, the
//! control API and the CLI.
//!
//! The engine and the API handlers answer with a [`NodeError`]; the control
//! server turns its [`ErrorKind`] into an HTTP status in one place
//! (`control::server::status_of`) and sends the kind and the message as JSON;
//! the CLI turns the kind into an exit code. Messages are for a person and name
//! no CLI flag: the CLI adds that advice when it prints them.

use std::path::PathBuf;

use ferry_store::StoreError;
use serde::{Deserialize, Serialize};

/// Why an operation of the node failed.
///
/// Cloneable, so one failure can answer every request waiting on it (several
/// `ferry find` calls for the same peer, a batch of channel writes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The request is malformed or asks for something that cannot be done.
    #[error("{0}")]
    Invalid(String),
    /// A `connect` to an address of this node itself.
    #[error("that address is this node itself")]
    SelfAddress,
    /// The request's bearer token is missing or wrong.
    #[error(
        "missing or wrong token: the CLI reads it from control.json in the node's data directory"
    )]
    Unauthorized,
    /// A `find` of this node's own id.
    #[error("that is this node's own id")]
    SelfId,
    /// What the request names is not there (a job, a blob, a bundle, a peer).
    #[error("{0}")]
    NotFound(String),
    /// The output exists and the request did not ask to overwrite it.
    #[error("{} already exists", .0.display())]
    Exists(PathBuf),
    /// The node is in as many channels as it joins.
    #[error(
        "this node is in {0} channels, the most it joins; leave one first with `ferry leave CHANNEL`"
    )]
    TooManyChannels(usize),
    /// The request is for something larger than the node takes.
    #[error("{0}")]
    TooLarge(String),
    /// A peer could not be dialled.
    #[error("could not connect: {0}")]
    Unreachable(String),
    /// The disk is full (or below the reserve), a quota is reached, or the
    /// storage fails: the node recovers by itself once the cause is gone.
    #[error("{0}")]
    Storage(String),
    /// The engine did not answer in time.
    #[error("the node did not answer in time")]
    Timeout,
    /// The node is stopping.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// Anything else: a bug or a damaged store.
    #[error("{0}")]
    Internal(String),
}

/// The machine-readable class of a failure, as the API's error body and
/// `ferry --json` carry it (`snake_case`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is malformed or impossible (also: a node's own address or id).
    Invalid,
    /// The request's token is missing or wrong.
    Unauthorized,
    NotFound,
    /// The output exists already.
    Exists,
    /// The request conflicts with the node's state (too many channels).
    Conflict,
    TooLarge,
    /// A peer could not be reached.
    Unreachable,
    /// Full disk, quota reached or failing storage.
    Storage,
    Timeout,
    /// The node is shutting down.
    Unavailable,
    Internal,
}

impl ErrorKind {
    /// The name used in JSON, e.g. `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Invalid => "invalid",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Exists => "exists",
            ErrorKind::Conflict => "conflict",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Storage => "storage",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

impl NodeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            NodeError::Invalid(_) | NodeError::SelfAddress | NodeError::SelfId => {
                ErrorKind::Invalid
            }
            NodeError::Unauthorized => ErrorKind::Unauthorized,
            NodeError::NotFound(_) => ErrorKind::NotFound,
            NodeError::Exists(_) => ErrorKind::Exists,
            NodeError::TooManyChannels(_) => ErrorKind::Conflict,
            NodeError::TooLarge(_) => ErrorKind::TooLarge,
            NodeError::Unreachable(_) => ErrorKind::Unreachable,
            NodeError::Storage(_) => ErrorKind::Storage,
            NodeError::Timeout => ErrorKind::Timeout,
            NodeError::ShuttingDown => ErrorKind::Unavailable,
            NodeError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// A store failure while doing `what` ("cannot store the message"),
    /// classified: a full disk or failing storage is [`NodeError::Storage`],
    /// a missing blob [`NodeError::NotFound`], an existing output
    /// [`NodeError::Exists`], anything else internal.
    pub fn store(what: &str, error: &StoreError) -> Self {
        match error {
            StoreError::Exists(path) => return NodeError::Exists(path.clone()),
            StoreError::BlobNotFound(_) => return NodeError::NotFound(error.to_string()),
            StoreError::BlobTooLarge { .. } | StoreError::BlobOverLimit { .. } => {
                return NodeError::TooLarge(error.to_string());
            }
            _ => {}
        }
        let text = format!("{what}: {error}");
        let storage = error.is_storage_failure()
            || matches!(
                error,
                StoreError::InboxFull { .. } | StoreError::BundleRefused { .. }
            );
        if storage {
            NodeError::Storage(text)
        } else {
            NodeError::Internal(text)
        }
    }
}

impl From<StoreError> for NodeError {
    fn from(error: StoreError) -> Self {
        NodeError::store("the store failed", &error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_a_storage_error_and_keeps_its_context() {
        let full = StoreError::NoSpace {
            what: "a message".into(),
            needed: 10,
            free: 1,
            reserve: 8,
            path: "/data".into(),
        };
        let error = NodeError::store("cannot store the message", &full);
        assert_eq!(error.kind(), ErrorKind::Storage);
        assert!(
            error.to_string().starts_with("cannot store the message: "),
            "{error}"
        );
    }

    #[test]
    fn store_errors_with_a_class_of_their_own_keep_it() {
        let exists = NodeError::store("x", &StoreError::Exists("/out".into()));
        assert_eq!(exists, NodeError::Exists("/out".into()));
        let corrupt = NodeError::store("x", &StoreError::Corrupt("bad".into()));
        assert_eq!(corrupt.kind(), ErrorKind::Internal);
    }

    #[test]
    fn kinds_serialize_as_their_names() {
        for kind in [
            ErrorKind::Invalid,
            ErrorKind::Unauthorized,
            ErrorKind::NotFound,
            ErrorKind::Exists,
            ErrorKind::Conflict,
            ErrorKind::TooLarge,
            ErrorKind::Unreachable,
            ErrorKind::Storage,
            ErrorKind::Timeout,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ] {
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.as_str())
            );
        }
    }
}
