//! `/ferry/sync/1` (names and channel history): requests and responses from
//! peers, decoded as libp2p's cbor codec decodes them (after its size
//! limits), handled as the node's engine/channels.rs handles them: a history
//! request planned against a stored history of the fuzzer's making, a
//! history response's messages each decoded and checked to belong to the
//! channel asked about, a name checked.
//!
//! Script: a byte picks request (even) or response (odd); then, for a
//! request, the local history: a count byte and per message a timestamp
//! (`u64`) and a size (`u16`); the clock (`u64`); and the encoded message
//! (`chunk`, or the rest for a response).
//!
//! Properties: nothing panics; a planned response sends only messages the
//! requester lacks, newest first, inside the history window, within the byte
//! budget unless it is a single message.
#![no_main]

use std::collections::HashSet;

use ferry_core::channel::{ChannelName, Message, MessageId, check_name};
use ferry_core::history::{MAX_RESPONSE_BYTES, Stored, in_window, plan_response};
use ferry_core::sync::{MAX_HAVE_IDS, SyncRequest, SyncResponse};
use ferry_fuzz::Script;
use libfuzzer_sys::fuzz_target;

/// libp2p's cbor codec limits (its defaults, which ferry keeps).
const MAX_REQUEST: usize = 1024 * 1024;
const MAX_RESPONSE: usize = 10 * 1024 * 1024;

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], limit: usize) -> Option<T> {
    if bytes.len() > limit {
        return None;
    }
    cbor4ii::serde::from_slice(bytes).ok()
}

fn id(n: usize) -> MessageId {
    MessageId(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

fuzz_target!(|data: &[u8]| {
    let mut s = Script::new(data);
    if !s.bool() {
        let count = usize::from(s.u8());
        let history: Vec<Stored> = (0..count)
            .map(|n| Stored {
                id: id(n),
                timestamp_ms: s.u64(),
                wire_len: usize::from(s.u16()) * 64,
            })
            .collect();
        let now = s.u64();
        let Some(request) = decode::<SyncRequest>(s.rest(), MAX_REQUEST) else {
            return;
        };
        let SyncRequest::History { channel, have } = request else {
            return;
        };
        let _ = channel.topic();
        if have.len() > MAX_HAVE_IDS {
            return;
        }
        let have: HashSet<MessageId> = have.into_iter().collect();
        let plan = plan_response(history.iter().copied(), &have, now, MAX_RESPONSE_BYTES);
        let mut rank_of = history
            .iter()
            .enumerate()
            .map(|(rank, m)| (m.id, (rank, m)));
        let mut bytes = 0;
        let mut last_rank = None;
        for sent in &plan.send {
            let (rank, stored) = rank_of
                .find(|(id, _)| id == sent)
                .map(|(_, found)| found)
                .expect("a planned message is stored, and planned newest first");
            assert!(!have.contains(sent), "sends a message the requester has");
            assert!(in_window(rank, stored.timestamp_ms, now));
            assert!(last_rank.is_none_or(|r| r < rank));
            last_rank = Some(rank);
            bytes += stored.wire_len;
        }
        assert!(plan.send.len() <= 1 || bytes <= MAX_RESPONSE_BYTES);
    } else {
        let Some(response) = decode::<SyncResponse>(s.rest(), MAX_RESPONSE) else {
            return;
        };
        match response {
            SyncResponse::Hello { name } => {
                let _ = check_name(&name);
            }
            SyncResponse::History { messages, .. } => {
                let asked: ChannelName = "fuzz".parse().expect("a valid channel name");
                for wire in &messages {
                    if let Ok(message) = Message::decode(wire) {
                        let _ = message.channel == asked;
                    }
                }
            }
            SyncResponse::Refused { .. } => {}
        }
    }
});
