//! The wire messages of `/ferry/sync/1`, ferry's request-response protocol
//! between two connected nodes: who are you, and what channel history do you
//! have that I lack.

use serde::{Deserialize, Serialize};

use crate::channel::{ChannelName, MessageId};

pub const PROTOCOL: &str = "/ferry/sync/1";

/// A request may list at most this many message ids it already has: the history
/// window's hard cap.
pub const MAX_HAVE_IDS: usize = crate::history::WINDOW_HARD_CAP;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// Ask the peer's nickname.
    Hello,
    /// Ask for the channel's recent messages, except those listed.
    History {
        channel: ChannelName,
        have: Vec<MessageId>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    Hello {
        name: String,
    },
    History {
        /// Encoded [`crate::channel::Message`]s, each verified by the receiver.
        messages: Vec<Vec<u8>>,
        /// More missing messages remain: ask again.
        more: bool,
    },
    /// The request broke a limit; the text says which.
    Refused {
        reason: String,
    },
}
