//! `ferry status`: one screen about the node, put together from the control
//! API's existing answers (id, nat, peers, channels, jobs, dtn status).

use std::collections::BTreeMap;

use ferry_node::control::types::{
    ChannelInfo, Connection, DtnStatus, IdInfo, JobState, JobStatus, NatInfo, PeerInfo, PeerPath,
};
use serde::Serialize;

use super::print;
use crate::client::Client;
use crate::output;

/// What `ferry status` shows, and prints with `--json`.
#[derive(Debug, Serialize)]
pub(crate) struct StatusReport {
    pub id: IdInfo,
    /// Reachability, NAT mapping, DHT mode, relays (and every connected peer's path).
    pub nat: NatInfo,
    /// Connected peers by how they are connected: `lan`, `direct`,
    /// `hole-punched`, `relayed`.
    pub connected: BTreeMap<Connection, Vec<PeerPath>>,
    /// Peers known but not connected now.
    pub known_not_connected: usize,
    pub channels: Vec<ChannelInfo>,
    /// Transfers still running.
    pub jobs: Vec<JobStatus>,
    pub dtn: DtnSummary,
}

/// The DTN store at a glance; `ferry dtn status` has the details.
#[derive(Debug, Serialize)]
pub(crate) struct DtnSummary {
    pub strategy: String,
    /// Bundles held for others (and this node's own, until delivered).
    pub bundles: usize,
    pub bytes_held: u64,
    pub quota_bytes: u64,
    /// Bundles delivered to this node.
    pub inbox: u64,
    pub contacts_connected: usize,
}

pub(super) fn status(client: &Client, json: bool) -> anyhow::Result<()> {
    let id: IdInfo = client.get("/v1/id")?;
    let nat: NatInfo = client.get("/v1/nat")?;
    let peers: Vec<PeerInfo> = client.get("/v1/peers")?;
    let channels: Vec<ChannelInfo> = client.get("/v1/channels")?;
    let jobs: Vec<JobStatus> = client.get("/v1/jobs")?;
    let dtn: DtnStatus = client.get("/v1/dtn/status")?;
    let mut connected: BTreeMap<Connection, Vec<PeerPath>> = BTreeMap::new();
    for path in &nat.peers {
        connected
            .entry(path.connection)
            .or_default()
            .push(path.clone());
    }
    let report = StatusReport {
        known_not_connected: peers.iter().filter(|p| !p.connected).count(),
        connected,
        channels,
        jobs: jobs
            .into_iter()
            .filter(|j| j.state == JobState::Running)
            .collect(),
        dtn: DtnSummary {
            strategy: dtn.strategy,
            bundles: dtn.bundles.len(),
            bytes_held: dtn.bytes_held,
            quota_bytes: dtn.quota_bytes,
            inbox: dtn.inbox,
            contacts_connected: dtn.contacts.iter().filter(|c| c.connected).count(),
        },
        id,
        nat,
    };
    print(json, &report, || output::status_text(&report))
}
