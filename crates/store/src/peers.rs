//! Peers remembered across restarts, so a node can redial the peers it knew
//! without waiting for discovery (which may never find a peer on another network).
//!
//! The list is bounded: a node that meets many peers keeps the most recently
//! connected ones, which are the likeliest to still answer.

use ferry_core::peers::MAX_ADDRS_PER_PEER;
use ferry_core::{Millis, Multiaddr, PeerId};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::{Store, StoreError};

/// At most this many peers are remembered.
pub(crate) const MAX_REMEMBERED_PEERS: usize = 256;

/// peer id bytes -> (last_connected_ms, postcard-encoded [`Row`]). The time sits
/// outside the encoded row so eviction can find the oldest without decoding.
const PEERS: TableDefinition<&[u8], (u64, &[u8])> = TableDefinition::new("remembered_peers");

/// The encoded part of a row. Addresses are kept as their binary form, the
/// multiaddr's own stable encoding.
#[derive(Serialize, Deserialize)]
struct Row {
    name: Option<String>,
    addrs: Vec<Vec<u8>>,
}

/// A peer this node has been connected to, remembered across restarts so it can
/// redial it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberedPeer {
    pub peer: PeerId,
    pub name: Option<String>,
    pub addrs: Vec<Multiaddr>,
    /// When this node was last connected to it (ms since the Unix epoch).
    pub last_connected_ms: Millis,
}

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(PEERS)?;
    Ok(())
}

impl Store {
    /// Remembers a peer, replacing what was remembered about it before. Only its
    /// last [`MAX_ADDRS_PER_PEER`] addresses are kept (the peer table appends new
    /// addresses last). If that makes more than 256 peers
    /// (`MAX_REMEMBERED_PEERS`), the least recently connected are forgotten.
    pub fn remember_peer(&self, peer: &RememberedPeer) -> Result<(), StoreError> {
        let skip = peer.addrs.len().saturating_sub(MAX_ADDRS_PER_PEER);
        let row = Row {
            name: peer.name.clone(),
            addrs: peer.addrs[skip..].iter().map(Multiaddr::to_vec).collect(),
        };
        let encoded =
            postcard::to_stdvec(&row).expect("a row of strings and byte vectors always encodes");
        let key = peer.peer.to_bytes();
        let txn = self.db.begin_write()?;
        {
            let mut peers = txn.open_table(PEERS)?;
            peers.insert(key.as_slice(), (peer.last_connected_ms, encoded.as_slice()))?;
            let excess = peers.len()?.saturating_sub(MAX_REMEMBERED_PEERS as u64);
            if excess > 0 {
                // Oldest first; the key breaks ties so eviction is deterministic.
                let mut by_age = Vec::new();
                for entry in peers.iter()? {
                    let (key, value) = entry?;
                    by_age.push((value.value().0, key.value().to_vec()));
                }
                by_age.sort_unstable();
                for (_, key) in by_age.into_iter().take(excess as usize) {
                    peers.remove(key.as_slice())?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The remembered peers, most recently connected first (the order to redial
    /// them in). A row that cannot be read is skipped with a warning: losing one
    /// remembered peer is better than failing to start.
    pub fn remembered_peers(&self) -> Result<Vec<RememberedPeer>, StoreError> {
        let txn = self.read()?;
        let peers = txn.open_table(PEERS)?;
        let mut out = Vec::new();
        for entry in peers.iter()? {
            let (key, value) = entry?;
            let (last_connected_ms, encoded) = value.value();
            match decode(key.value(), encoded) {
                Ok((peer, name, addrs)) => out.push(RememberedPeer {
                    peer,
                    name,
                    addrs,
                    last_connected_ms,
                }),
                Err(reason) => tracing::warn!(
                    key = %hex_prefix(key.value()),
                    "skipping an unreadable remembered peer: {reason}"
                ),
            }
        }
        out.sort_by_key(|p| std::cmp::Reverse(p.last_connected_ms));
        Ok(out)
    }

    /// Forgets a peer; forgetting one not remembered changes nothing.
    pub fn forget_peer(&self, peer: &PeerId) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(PEERS)?.remove(peer.to_bytes().as_slice())?;
        txn.commit()?;
        Ok(())
    }
}

type Decoded = (PeerId, Option<String>, Vec<Multiaddr>);

fn decode(key: &[u8], encoded: &[u8]) -> Result<Decoded, String> {
    let peer = PeerId::from_bytes(key).map_err(|e| format!("bad peer id: {e}"))?;
    let row: Row = postcard::from_bytes(encoded).map_err(|e| format!("bad row encoding: {e}"))?;
    let addrs = row
        .addrs
        .into_iter()
        .map(|a| Multiaddr::try_from(a).map_err(|e| format!("bad address: {e}")))
        .collect::<Result<_, _>>()?;
    Ok((peer, row.name, addrs))
}

/// Enough of a key to tell rows apart in a log line, without trusting it.
fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
