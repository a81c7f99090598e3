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
//! | `POST /v1/channels/{channel}/leave` | | [`LeaveReply`] |
//! | `POST /v1/share` | [`ShareRequest`] | [`JobStarted`] |
//! | `POST /v1/get` | [`GetRequest`] | [`JobStarted`] |
//! | `GET /v1/jobs` | | `Vec<`[`JobStatus`]`>` |
//! | `GET /v1/jobs/{job}` | | [`JobStatus`] |
//! | `POST /v1/jobs/{job}/cancel` | [`CancelRequest`] | [`JobStatus`] |
//! | `GET /v1/blobs` | | `Vec<`[`BlobEntry`]`>` |
//! | `DELETE /v1/blobs/{id}` | | [`Removed`] |
//! | `POST /v1/find` | [`FindRequest`] | [`FindReply`] |
//! | `GET /v1/nat` | | [`NatInfo`] |
//! | `POST /v1/dtn/send` | [`DtnSendRequest`] | [`DtnSendReply`] |
//! | `GET /v1/dtn/inbox` | | `Vec<`[`InboxItem`]`>` |
//! | `POST /v1/dtn/save` | [`DtnSaveRequest`] | [`DtnSaveReply`] |
//! | `GET /v1/dtn/status` | | [`DtnStatus`] |
//! | `POST /v1/dtn/export` | [`DtnExportRequest`] | [`ExportReport`] |
//! | `POST /v1/dtn/import` | [`DtnImportRequest`] | [`ImportReport`] |
//!
//! Every error is a non-2xx status with an [`ApiError`] body: a machine-readable
//! [`ErrorKind`] and a text meant for a person. `docs/api.md` lists the statuses.

use serde::{Deserialize, Serialize};

pub use crate::dtn::folder::{ExportReport, ImportReport};
pub use crate::dtn::{DtnStatus, InboxItem, PayloadKind};
pub use crate::error::ErrorKind;
pub use ferry_core::content::ContentKind;
pub use ferry_core::peers::Source as PeerSource;

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
    /// Whether the data directory's disk takes writes.
    #[serde(default)]
    pub storage: StorageInfo,
}

/// The storage's health, as `ferry id` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageInfo {
    /// `ok`; `full` (a write was refused or failed for want of space, or no
    /// more than the reserve is free); `failing` (a write failed with another I/O
    /// error). The node recovers by itself once the cause is gone.
    pub state: StorageState,
    /// What failed, while not `ok`.
    pub problem: Option<String>,
    /// Bytes free on the data directory's disk, when the system says.
    pub free_bytes: Option<u64>,
    /// Bytes ferry keeps free (`storage_reserve_mib`).
    pub reserve_bytes: u64,
}

/// Whether the data directory's disk takes writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageState {
    #[default]
    Ok,
    Full,
    Failing,
}

ferry_core::named_enum!(StorageState {
    Ok => "ok",
    Full => "full",
    Failing => "failing",
});

impl From<ferry_store::StorageState> for StorageState {
    fn from(state: ferry_store::StorageState) -> Self {
        match state {
            ferry_store::StorageState::Ok => StorageState::Ok,
            ferry_store::StorageState::Full => StorageState::Full,
            ferry_store::StorageState::Failing => StorageState::Failing,
        }
    }
}

impl From<ferry_store::StorageHealth> for StorageInfo {
    fn from(health: ferry_store::StorageHealth) -> Self {
        Self {
            state: health.state.into(),
            problem: health.problem,
            free_bytes: health.free_bytes,
            reserve_bytes: health.reserve_bytes,
        }
    }
}

/// One known peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerInfo {
    pub peer_id: String,
    pub name: Option<String>,
    pub addrs: Vec<String>,
    /// How the peer was found: `mdns`, `broadcast`, `manual`, `inbound`, `remembered`.
    pub sources: Vec<PeerSource>,
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

/// What `ferry leave` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveReply {
    pub channel: String,
    /// The node was in the channel and has left it; `false`: it was not in it.
    pub left: bool,
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

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    /// What class of failure it is, for programs.
    pub kind: ErrorKind,
    /// What went wrong, for a person.
    pub error: String,
}

/// The most messages one read returns.
pub const MAX_READ_LIMIT: usize = 5_000;
/// The longest a read waits for new messages.
pub const MAX_WAIT_MS: u64 = 60_000;

/// Share a file or a directory. The path must be absolute (the node may run
/// in another directory than the CLI).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShareRequest {
    pub path: String,
    /// Reference the file where it is instead of copying it into the store.
    #[serde(default)]
    pub in_place: bool,
}

/// Fetch content by ticket or bare id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetRequest {
    /// A ticket from `ferry share`, or a content id (64 hex digits).
    pub target: String,
    /// Where to write the file or directory (absolute). `None`: the name the
    /// ticket carries, in the CLI's working directory, which the CLI fills in.
    pub output: Option<String>,
    /// Overwrite an existing output.
    #[serde(default)]
    pub force: bool,
}

/// A long job (hashing, downloading) has started; poll `/v1/jobs/{job}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobStarted {
    pub job: u64,
}

/// Stop a running download.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CancelRequest {
    /// Keep the partial data, so a later get of the same content resumes.
    #[serde(default)]
    pub keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
    /// Stopped by `POST /v1/jobs/{job}/cancel`.
    Cancelled,
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Hashing a file or directory into the store (`ferry share`).
    Share,
    /// A download (`ferry get`).
    Get,
}

ferry_core::named_enum!(JobKind {
    Share => "share",
    Get => "get",
});

/// A job's progress, and its result once done.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobStatus {
    pub job: u64,
    pub kind: JobKind,
    pub state: JobState,
    /// What the job is doing now, for a person: "hashing big.iso", "fetching".
    pub phase: String,
    pub done_bytes: u64,
    /// Unknown until a download has learnt the size.
    pub total_bytes: Option<u64>,
    /// For downloads: each provider and what it sent.
    pub providers: Vec<ProviderProgress>,
    /// Set when `state` is `failed`: what went wrong and what to do.
    pub error: Option<String>,
    /// Set when `state` is `failed`: the class of failure, as an error
    /// answer carries it (`storage`, `unreachable`, `exists`, …).
    #[serde(default)]
    pub error_kind: Option<ErrorKind>,
    pub share: Option<ShareResult>,
    pub get: Option<GetResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderProgress {
    pub peer_id: String,
    /// Verified bytes received from this provider during this job.
    pub bytes: u64,
    /// Dropped for sending bad data (or for failing too often).
    pub dropped: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShareResult {
    /// Hex BLAKE3 of the file (equal to `b3sum`'s), or of the collection's manifest.
    pub id: String,
    /// `blob` for a file, `collection` for a directory.
    pub kind: ContentKind,
    pub name: String,
    /// Total bytes of the file, or of all files in the directory.
    pub size: u64,
    pub files: u64,
    /// A copy-pasteable string with the id and this node's addresses.
    pub ticket: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetResult {
    pub id: String,
    pub kind: ContentKind,
    pub output: String,
    pub size: u64,
    pub files: u64,
    /// Bytes fetched from peers in this job (less than `size` when resuming or
    /// when the store already had some of it).
    pub fetched_bytes: u64,
    /// Who sent what, and who was dropped for bad data.
    pub providers: Vec<ProviderProgress>,
}

/// One blob in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlobEntry {
    pub id: String,
    /// `blob` or `collection`.
    pub kind: ContentKind,
    pub name: Option<String>,
    pub size: u64,
    pub complete: bool,
    /// Verified bytes on disk (equals `size` when complete).
    pub verified_bytes: u64,
    pub pinned: bool,
    /// The referenced file, for content shared with `--in-place`.
    pub in_place: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Removed {
    pub removed: bool,
}

/// Look a peer up by id (in the DHT if it is not already known) and connect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindRequest {
    pub peer_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindReply {
    pub peer_id: String,
    /// The addresses the lookup found.
    pub addrs: Vec<String>,
    /// The remote address of the connection made.
    pub connected_via: String,
    /// How: `lan`, `direct`, `hole-punched` or `relayed`.
    pub connection: Connection,
    /// How long the lookup and the connection took.
    pub elapsed_ms: u64,
}

/// What this node knows about its reachability.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NatInfo {
    /// `public`, `private` or `unknown` (AutoNAT: can peers dial us back?).
    pub reachability: Reachability,
    /// The address AutoNAT confirmed, when public.
    pub public_addr: Option<String>,
    /// Our address as each peer sees it (identify's observed address): the
    /// STUN part.
    pub observed: Vec<ObservedAddr>,
    /// `endpoint-independent` (a cone NAT: every peer sees the same port),
    /// `endpoint-dependent` (a symmetric NAT: a port per destination), or
    /// `unknown` (fewer than two peers have reported).
    pub mapping: Mapping,
    /// `server` when this node answers DHT queries (only when reachable), else `client`.
    pub dht_mode: DhtMode,
    /// Whether this node serves as a relay (`--relay`).
    pub relay_server: bool,
    /// Relays this node holds a reservation on, with the relayed address others can dial.
    pub relays: Vec<RelayInfo>,
    /// Every connected peer and how it is connected.
    pub peers: Vec<PeerPath>,
}

/// How a connection reaches its peer, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Connection {
    /// To an address on a local subnet (or loopback).
    Lan,
    /// To a public address, dialled directly.
    Direct,
    /// Made by DCUtR through a relay, then direct.
    HolePunched,
    /// Through a relay's circuit.
    Relayed,
}

ferry_core::named_enum!(Connection {
    Lan => "lan",
    Direct => "direct",
    HolePunched => "hole-punched",
    Relayed => "relayed",
});

/// AutoNAT's verdict: can peers dial this node back?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    Public,
    Private,
    Unknown,
}

ferry_core::named_enum!(Reachability {
    Public => "public",
    Private => "private",
    Unknown => "unknown",
});

/// How the NAT in front of this node maps its UDP port, as peers observe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mapping {
    /// Every peer sees the same address and port (a cone NAT, or none).
    EndpointIndependent,
    /// A port per destination (a symmetric NAT).
    EndpointDependent,
    /// Fewer than two peers have reported.
    Unknown,
}

ferry_core::named_enum!(Mapping {
    EndpointIndependent => "endpoint-independent",
    EndpointDependent => "endpoint-dependent",
    Unknown => "unknown",
});

/// Whether this node answers DHT queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DhtMode {
    /// Answers queries (only when reachable).
    Server,
    /// Only asks.
    Client,
}

ferry_core::named_enum!(DhtMode {
    Server => "server",
    Client => "client",
});

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObservedAddr {
    pub by_peer: String,
    pub addr: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayInfo {
    pub peer_id: String,
    /// `/…/p2p/RELAY/p2p-circuit/p2p/US`: dialable through the relay.
    pub relayed_addr: Option<String>,
    pub reserved: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerPath {
    pub peer_id: String,
    pub name: Option<String>,
    /// `lan`, `direct`, `hole-punched` or `relayed`; the best of the peer's
    /// open connections.
    pub connection: Connection,
    pub remote_addr: String,
}

/// Send a bundle: `text`, or the file at `file` (absolute path), to `destination`:
/// a peer id (then `dtn://PEER_ID/text` or `dtn://PEER_ID/file/NAME`) or any
/// endpoint id (`dtn://node/service`, `ipn:N.S`), used as it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DtnSendRequest {
    pub destination: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub file: Option<String>,
    /// Default: 7 days.
    #[serde(default)]
    pub lifetime_secs: Option<u64>,
    /// bulk, normal (default) or expedited.
    #[serde(default)]
    pub priority: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DtnSendReply {
    pub id: String,
    pub destination: String,
    /// The bundle's encoded size.
    pub bytes: u64,
    pub expires_unix_ms: u64,
}

/// Write a delivered bundle's payload to `path` (absolute).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DtnSaveRequest {
    pub id: String,
    pub path: String,
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DtnSaveReply {
    pub path: String,
    pub bytes: u64,
}

/// Write carried bundles (those for `to`, if any), known acks and the named content
/// to `dir` (absolute).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DtnExportRequest {
    pub dir: String,
    #[serde(default)]
    pub to: Vec<String>,
    /// Content ids or tickets to carry as well.
    #[serde(default)]
    pub content: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DtnImportRequest {
    pub dir: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each enum's JSON, `as_str` and `Display` are the strings the API
    /// carried when these fields were plain strings.
    fn check<
        T: Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Display
            + PartialEq<&'static str>
            + std::fmt::Debug,
    >(
        cases: impl IntoIterator<Item = (T, &'static str)>,
    ) {
        for (value, text) in cases {
            assert_eq!(
                serde_json::to_string(&value).unwrap(),
                format!("\"{text}\"")
            );
            assert_eq!(value.to_string(), text);
            assert!(value == text, "{value:?} != {text}");
            let back: T = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            assert!(back == text, "{back:?} from {text}");
        }
    }

    #[test]
    fn enums_keep_the_json_strings_of_the_api() {
        use Connection::*;
        check([
            (Lan, "lan"),
            (Direct, "direct"),
            (HolePunched, "hole-punched"),
            (Relayed, "relayed"),
        ]);
        check([
            (Reachability::Public, "public"),
            (Reachability::Private, "private"),
            (Reachability::Unknown, "unknown"),
        ]);
        check([
            (Mapping::EndpointIndependent, "endpoint-independent"),
            (Mapping::EndpointDependent, "endpoint-dependent"),
            (Mapping::Unknown, "unknown"),
        ]);
        check([(DhtMode::Server, "server"), (DhtMode::Client, "client")]);
        check([(JobKind::Share, "share"), (JobKind::Get, "get")]);
        check([
            (ContentKind::Blob, "blob"),
            (ContentKind::Collection, "collection"),
        ]);
        check([
            (StorageState::Ok, "ok"),
            (StorageState::Full, "full"),
            (StorageState::Failing, "failing"),
        ]);
        check([
            (PeerSource::Mdns, "mdns"),
            (PeerSource::Broadcast, "broadcast"),
            (PeerSource::Manual, "manual"),
            (PeerSource::Inbound, "inbound"),
            (PeerSource::Remembered, "remembered"),
            (PeerSource::Dht, "dht"),
        ]);
        check([
            (PayloadKind::Text, "text"),
            (PayloadKind::File, "file"),
            (PayloadKind::StatusReport, "status-report"),
            (PayloadKind::Data, "data"),
        ]);
    }

    #[test]
    fn storage_states_match_the_store() {
        for (store, state) in [
            (ferry_store::StorageState::Ok, StorageState::Ok),
            (ferry_store::StorageState::Full, StorageState::Full),
            (ferry_store::StorageState::Failing, StorageState::Failing),
        ] {
            assert_eq!(StorageState::from(store).as_str(), store.as_str());
            assert_eq!(StorageState::from(store), state);
        }
    }

    #[test]
    fn connections_order_best_first() {
        let mut all = [
            Connection::Relayed,
            Connection::Lan,
            Connection::HolePunched,
            Connection::Direct,
        ];
        all.sort();
        assert_eq!(
            all,
            [
                Connection::Lan,
                Connection::Direct,
                Connection::HolePunched,
                Connection::Relayed
            ]
        );
    }
}
