//! The wire messages of `/ferry/dtn/1`, the protocol two connected ferry nodes use to
//! exchange bundles during a contact.
//!
//! A contact is two kinds of request, either way at any time:
//! - [`DtnRequest::Summary`]: "here is what I hold and the deliveries I know of"; the
//!   answer is the other side's summary, so one round trip informs both.
//! - [`DtnRequest::Bundle`]: one RFC 9171 bundle, as bytes other DTN implementations
//!   read, with its spray-and-wait copy count beside it (not inside it). The answer,
//!   a [`Receipt`], is sent only after the bundle is durably stored (or delivered).
//!
//! Everything a peer sends is hostile input: ids in summaries are parsed, bundles are
//! parsed and checked by [`super::Bundle::parse`], acks are checked against their
//! destination's signature by the caller, and the sizes below bound what one message
//! can cost. The protocol is written down in `docs/protocols/dtn.md`.

use serde::{Deserialize, Serialize};

use super::bundle::MAX_BUNDLE_BYTES;
use super::routing::{Ack, Summary};

/// The libp2p protocol name of bundle exchange.
pub const PROTOCOL: &str = "/ferry/dtn/1";

/// The largest request: a maximal bundle plus its framing.
pub const MAX_REQUEST_BYTES: usize = MAX_BUNDLE_BYTES + 64 * 1024;
/// The largest response: a summary (at most [`MAX_SUMMARY_BYTES`], see [`bounded`]).
pub const MAX_RESPONSE_BYTES: usize = MAX_BUNDLE_BYTES + 64 * 1024;

/// Most bundle ids a summary this node sends lists. A peer that is not told of a
/// bundle offers it, and hears "have it": the cost of a short list is a few wasted
/// offers, never a loss.
pub const MAX_SUMMARY_HOLDS: usize = 20_000;
/// Most acks a summary this node sends carries, and most this node reads (and checks
/// the signature of) from one peer's summary. Acks left out go in a later summary.
pub const MAX_SUMMARY_ACKS: usize = 20_000;
/// Most bytes a summary this node sends may take: half the frame, so ids and node
/// names at their longest (1 KiB each) still fit, with room for PRoPHET's table.
pub const MAX_SUMMARY_BYTES: usize = MAX_BUNDLE_BYTES / 2;

/// A summary cut to what this node sends: only signed acks (an unsigned one is
/// worthless to a peer, which checks every signature), at most [`MAX_SUMMARY_HOLDS`]
/// ids and [`MAX_SUMMARY_ACKS`] acks, in [`MAX_SUMMARY_BYTES`] (half for the ids, the
/// rest for acks and PRoPHET's table). When there are more, the ids go in the
/// router's order (by id), and the acks of the latest-expiring bundles first (those
/// most likely still on their way somewhere).
pub fn bounded(mut summary: Summary) -> Summary {
    let holds_budget = MAX_SUMMARY_BYTES / 2;
    let tables: usize = summary
        .predictabilities
        .iter()
        .map(|(node, _)| node.to_string().len() + 16)
        .sum();
    let acks_budget = (MAX_SUMMARY_BYTES - holds_budget).saturating_sub(tables);
    summary.acks.retain(|ack| ack.signature.is_some());
    summary
        .acks
        .sort_by(|a, b| b.expires_at.cmp(&a.expires_at).then(a.id.cmp(&b.id)));
    summary.acks.truncate(MAX_SUMMARY_ACKS);
    summary.holds.truncate(MAX_SUMMARY_HOLDS);
    let holds = fitting(&summary.holds, holds_budget, |id| id.to_string().len() + 16);
    summary.holds.truncate(holds);
    let acks = fitting(&summary.acks, acks_budget, |ack| {
        ack.id.to_string().len() + ack.destination.to_string().len() + 96
    });
    summary.acks.truncate(acks);
    summary
}

/// How many of `items`, from the first, fit in `budget` bytes at `size` each (an
/// upper bound of the encoded size).
fn fitting<T>(items: &[T], budget: usize, size: impl Fn(&T) -> usize) -> usize {
    let mut used = 0usize;
    items
        .iter()
        .position(|item| {
            used = used.saturating_add(size(item));
            used > budget
        })
        .unwrap_or(items.len())
}

/// What one node sends the other during a contact over [`PROTOCOL`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DtnRequest {
    /// What the sender holds and the deliveries it knows of; answered with the receiver's
    /// own.
    Summary(Summary),
    /// One bundle handed over; answered with a [`Receipt`] once it is stored or
    /// delivered.
    Bundle {
        /// Spray-and-wait copies handed over with it (1 under other strategies).
        copies: u32,
        /// The bundle's CBOR encoding, one byte string on the wire.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
}

/// The answer to a [`DtnRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DtnResponse {
    /// The answer to [`DtnRequest::Summary`]: the receiver's summary.
    Summary(Summary),
    /// The answer to [`DtnRequest::Bundle`].
    Receipt(Receipt),
}

/// What became of a bundle a peer sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Receipt {
    /// Durably stored; this node carries it on.
    Stored,
    /// This node is its destination and has delivered it. Its signed acknowledgement
    /// comes with the receipt, so the carrier can pass it on even when the contact
    /// ends before the next summary; `None` only when this node could not sign.
    Delivered(Option<Ack>),
    /// Already held, or already delivered: nothing stored, nothing to resend.
    Have,
    /// Not taken, for the reason given (full store, expired, malformed, too many from
    /// you). The sender keeps its copy and may try again later.
    Refused(String),
}

impl Receipt {
    /// Whether the receiver now has the bundle (stored, delivered or already had it).
    pub fn has_it(&self) -> bool {
        !matches!(self, Receipt::Refused(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_request_is_its_bytes_plus_a_few() {
        let request = DtnRequest::Bundle {
            copies: 4,
            bytes: vec![7; 1000],
        };
        let encoded = postcard::to_allocvec(&request).unwrap();
        assert!(encoded.len() < 1010, "{}", encoded.len());
        assert_eq!(
            postcard::from_bytes::<DtnRequest>(&encoded).unwrap(),
            request
        );
    }

    #[test]
    fn a_summary_with_a_bad_id_is_refused_when_decoded() {
        // A bundle id is "SOURCE-TIME-SEQ"; this one has no timestamp.
        let no_acks: Vec<()> = Vec::new();
        let shape = |id: &str| {
            postcard::to_allocvec(&(0u8, vec![id.to_owned()], &no_acks, &no_acks)).unwrap()
        };
        let good = postcard::from_bytes::<DtnRequest>(&shape("dtn://x/-5-0")).unwrap();
        assert!(matches!(good, DtnRequest::Summary(s) if s.holds.len() == 1));
        assert!(postcard::from_bytes::<DtnRequest>(&shape("dtn://x/")).is_err());
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;
    use crate::dtn::routing::Ack;
    use crate::dtn::sign::Signature;
    use crate::dtn::{BundleId, CreationTimestamp, Eid, NodeId};

    fn long_id(k: u64) -> BundleId {
        BundleId::new(
            Eid::dtn(&format!("{:x<1000}", format!("n{k}")), "x").unwrap(),
            CreationTimestamp { time: k, seq: 0 },
        )
    }

    /// A node holding and knowing far more than a frame carries, with ids as long as
    /// they go, still sends a summary within its budget: the most useful part.
    #[test]
    fn a_summary_of_many_long_ids_fits_its_budget() {
        let signature = Signature::try_from(&[1u8; 64][..]).unwrap();
        let destination = NodeId::dtn(&"d".repeat(1000)).unwrap();
        let summary = Summary {
            holds: (0..30_000).map(long_id).collect(),
            acks: (0..30_000)
                .map(|k| Ack {
                    id: long_id(k),
                    destination: destination.clone(),
                    expires_at: k,
                    signature: (k % 2 == 0).then(|| signature.clone()),
                })
                .collect(),
            predictabilities: Vec::new(),
        };
        let unbounded = postcard::to_allocvec(&summary).unwrap().len();
        assert!(unbounded > MAX_RESPONSE_BYTES, "{unbounded}");
        let sent = bounded(summary);
        let size = postcard::to_allocvec(&DtnResponse::Summary(sent.clone()))
            .unwrap()
            .len();
        assert!(size <= MAX_SUMMARY_BYTES, "{size}");
        assert!(!sent.holds.is_empty() && !sent.acks.is_empty());
        assert!(sent.acks.iter().all(|a| a.signature.is_some()));
        // The latest-expiring acks go first.
        assert_eq!(sent.acks[0].expires_at, 29_998);
        assert!(sent.holds.len() <= MAX_SUMMARY_HOLDS);
    }
}
