//! The JSON bodies of the control API, shared by the daemon and the CLI so the
//! two cannot drift apart.
//!
//! Routes (all under `/v1`, all need `Authorization: Bearer TOKEN`):
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /v1/id` | | [`IdInfo`] |
//! | `GET /v1/peers` | | `Vec<`[`PeerInfo`]`>` |
//! | `POST /v1/connect` | [`ConnectRequest`] | [`ConnectReply`] |
//! | `GET /v1/channels` | | `Vec<`[`ChannelInfo`]`>` |
//! | `POST /v1/channels/{channel}/messages` | [`PostRequest`] | [`MessageView`] |
//! | `GET /v1/channels/{channel}/messages` | [`ReadQuery`] as query string | [`ReadReply`] |
//!
//! Every error is a non-2xx status with an [`ApiError`] body whose text is meant
//! for a person.

use serde::{Deserialize, Serialize};

/// Who this node is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdInfo {
    pub peer_id: String,
    pub name: String,
    /// Addresses the node listens on, each ending in `/p2p/PEER_ID` so it can be
    /// passed to `ferry connect` as is.
    pub listen_addrs: Vec<String>,
    pub data_dir: String,
    pub version: String,
}

/// One known peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerInfo {
    pub peer_id: String,
    pub name: Option<String>,
    pub addrs: Vec<String>,
    /// How the peer was found: `mdns`, `broadcast`, `manual`, `inbound`, `remembered`.
    pub sources: Vec<String>,
    pub connected: bool,
    /// The remote address of the current connection, when connected.
    pub connected_via: Option<String>,
    /// Round-trip time of the last ping, when connected.
    pub rtt_ms: Option<u32>,
    /// Milliseconds since the peer was last heard from.
    pub last_seen_ms_ago: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectRequest {
    /// A multiaddr, such as `/ip4/192.168.1.7/tcp/4001/p2p/12D3Koo...`.
    pub addr: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectReply {
    pub peer_id: String,
    /// The address the connection was made over.
    pub connected_via: String,
}

/// A channel this node has joined.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelInfo {
    pub channel: String,
    pub messages: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostRequest {
    pub text: String,
}

/// A stored channel message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    /// The local arrival order; `after` in [`ReadQuery`] refers to it.
    pub seq: u64,
    /// Hex BLAKE3 hash of the signed message.
    pub id: String,
    pub channel: String,
    /// The author's peer id (the key that signed it).
    pub author: String,
    pub author_name: String,
    /// When the author posted it, by the author's clock (ms since the Unix epoch).
    pub timestamp_ms: u64,
    pub text: String,
}

/// Without `after`: the newest `limit` messages by author time, oldest first.
/// With `after`: the messages that arrived after that `seq`, in arrival order,
/// waiting up to `wait_ms` for the first one (a long poll, for `--follow`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReadQuery {
    pub after: Option<u64>,
    pub limit: Option<usize>,
    pub wait_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadReply {
    pub messages: Vec<MessageView>,
    /// Pass this as `after` to get what arrives next.
    pub next: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// The most messages one read returns.
pub const MAX_READ_LIMIT: usize = 5_000;
/// The longest a read waits for new messages.
pub const MAX_WAIT_MS: u64 = 60_000;
