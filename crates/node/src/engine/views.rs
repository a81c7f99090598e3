//! How the engine's state is shown through the control API.

use ferry_core::Millis;
use ferry_core::peers::PeerEntry;
use ferry_store::StoredMessage;

use ferry_core::content::GROUP_BYTES;
use ferry_store::BlobInfo;

use crate::types::{BlobEntry, MessageView, PeerInfo};

pub(crate) fn message_view(stored: &StoredMessage) -> MessageView {
    let m = &stored.message;
    MessageView {
        seq: stored.seq,
        id: m.id.to_string(),
        channel: m.channel.to_string(),
        author: m.author.to_string(),
        author_name: m.author_name.clone(),
        timestamp_ms: m.timestamp_ms,
        text: m.text.clone(),
    }
}

pub(super) fn peer_info(entry: &PeerEntry, now: Millis) -> PeerInfo {
    PeerInfo {
        peer_id: entry.peer.to_string(),
        name: entry.name.clone(),
        addrs: entry.addrs.iter().map(ToString::to_string).collect(),
        sources: entry.sources.iter().copied().collect(),
        connected: entry.is_connected(),
        connected_via: entry.connected_via.as_ref().map(ToString::to_string),
        rtt_ms: entry.rtt_ms,
        last_seen_ms_ago: now.saturating_sub(entry.last_seen),
    }
}

pub(crate) fn blob_entry(info: &BlobInfo) -> BlobEntry {
    BlobEntry {
        id: info.id.to_string(),
        kind: info.kind,
        name: info.name.clone(),
        size: info.size,
        complete: info.complete,
        verified_bytes: (info.verified_groups * GROUP_BYTES).min(info.size),
        pinned: info.pinned,
        in_place: info.in_place.as_ref().map(|p| p.display().to_string()),
    }
}
