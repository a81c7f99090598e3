//! What the hostile peer's DTN modes print (one JSON object), shared with the
//! test that reads it (`tests/hostile_peers.rs` includes this file).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a DTN mode prints.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Report {
    pub peer_id: String,
    pub target: String,
    /// One entry per request, in order (`dtn-malformed`, `dtn-oversize`).
    pub sent: Vec<Sent>,
    /// `dtn-flood`: how the COUNT bundles were answered.
    pub flood: Option<FloodReport>,
    /// The node closed the connection, and how long after the first request.
    pub hung_up_after_ms: Option<u64>,
    pub still_connected: bool,
}

/// One request and its answer.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Sent {
    pub what: String,
    /// Bytes of the bundle (or of the frame's body, for a raw frame).
    pub bytes: usize,
    /// `stored`, `delivered`, `have`, `refused: REASON`, or the summary
    /// answer's name; `None` if the request failed.
    pub answer: Option<String>,
    /// Why the request failed (the stream was reset, the connection closed).
    pub failure: Option<String>,
    pub ms: u64,
}

/// How a flood's bundles were answered.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct FloodReport {
    pub count: usize,
    pub payload_bytes: usize,
    /// The largest bundle's encoded size (all are within a byte or two).
    pub bundle_bytes: usize,
    pub elapsed_ms: u64,
    pub stored: usize,
    /// Ids of the bundles the node said it stored.
    pub stored_ids: Vec<String>,
    pub have: usize,
    pub delivered: usize,
    /// Refusals by kind (`rate`, `share`, `full`, `other`): count and one reason.
    pub refused: BTreeMap<String, (usize, String)>,
    /// Requests that failed without an answer.
    pub failed: usize,
    pub first_failure: Option<String>,
}
