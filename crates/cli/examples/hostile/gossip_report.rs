//! What `hostile_peer gossip-*` prints once it has sent everything, shared by
//! the hostile peer and the tests that read it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct GossipReport {
    /// Messages handed to gossipsub.
    pub sent: u64,
    /// Publishes gossipsub refused (its queues to the node were full).
    pub refused: u64,
    pub elapsed_ms: u64,
    /// The id of the honest marker message, if the mode sends one.
    pub marker: Option<String>,
}
