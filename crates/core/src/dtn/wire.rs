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
//! parsed and checked by [`super::Bundle::parse`], and the sizes below bound what one
//! message can cost.

use serde::{Deserialize, Serialize};

use super::bundle::MAX_BUNDLE_BYTES;
use super::routing::Summary;

pub const PROTOCOL: &str = "/ferry/dtn/1";

/// The largest request: a maximal bundle plus its framing.
pub const MAX_REQUEST_BYTES: usize = MAX_BUNDLE_BYTES + 64 * 1024;
/// The largest response: a summary (at most 100 000 ids and acks of well under 100
/// bytes each, in practice far fewer).
pub const MAX_RESPONSE_BYTES: usize = MAX_BUNDLE_BYTES + 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DtnRequest {
    Summary(Summary),
    Bundle {
        /// Spray-and-wait copies handed over with it (1 under other strategies).
        copies: u32,
        /// The bundle's CBOR encoding, one byte string on the wire.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DtnResponse {
    Summary(Summary),
    Receipt(Receipt),
}

/// What became of a bundle a peer sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Receipt {
    /// Durably stored; this node carries it on.
    Stored,
    /// This node is its destination and has delivered it (an acknowledgement follows
    /// in summaries).
    Delivered,
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
