//! The wire messages of `/ferry/sync/1`, ferry's request-response protocol
//! between two connected nodes: who are you, and what channel history do you
//! have that I lack.

use serde::{Deserialize, Serialize};

use crate::channel::{ChannelName, MessageId};

/// The libp2p protocol name of channel sync.
pub const PROTOCOL: &str = "/ferry/sync/1";

/// A request may list at most this many message ids it already has: the history
/// window's hard cap.
pub const MAX_HAVE_IDS: usize = crate::history::WINDOW_HARD_CAP;

/// What one peer asks another over [`PROTOCOL`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// Ask the peer's nickname.
    Hello,
    /// Ask for the channel's recent messages, except those listed.
    History {
        /// The channel whose history is asked for.
        channel: ChannelName,
        /// Ids of messages the asker already has, at most [`MAX_HAVE_IDS`]; they are left
        /// out of the answer.
        have: Vec<MessageId>,
    },
}

/// The answer to a [`SyncRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    /// The answer to [`SyncRequest::Hello`].
    Hello {
        /// The answering peer's nickname, its own choice; the receiver checks it like
        /// any name ([`crate::channel::check_name`]).
        name: String,
    },
    /// The answer to [`SyncRequest::History`].
    History {
        /// Encoded [`crate::channel::Message`]s, each verified by the receiver.
        messages: Vec<Vec<u8>>,
        /// More missing messages remain: ask again.
        more: bool,
    },
    /// The request broke a limit; the text says which.
    Refused {
        /// Which limit the request broke, for the asker's log.
        reason: String,
    },
}
