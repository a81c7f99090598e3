//! RFC 9171 bundle parsing: every byte string a peer, a TCPCL session or a
//! folder can hand to `Bundle::parse`.
//!
//! Properties: parsing never panics outside bp7's caught decoder; a bundle
//! that is accepted re-encodes to bytes that parse to the same id,
//! destination and payload, and encode again to the same bytes; its id's text
//! form (what summaries and acks carry) parses back to the id; and the copy
//! the node forwards (hop count, age and previous-node blocks updated) still
//! parses to the same id.
#![no_main]

use ferry_core::dtn::{Bundle, BundleId, NodeId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferry_fuzz::let_caught_panics_unwind();
    let Ok(bundle) = Bundle::parse(data) else {
        return;
    };
    let id = bundle.id().clone();
    let text = id.to_string();
    let back: BundleId = text
        .parse()
        .unwrap_or_else(|e| panic!("the id {text:?} of an accepted bundle does not parse: {e:?}"));
    assert_eq!(back, id, "the id's text form is another id");
    let _ = id.digest_hex();

    let bytes = bundle.to_bytes();
    let again = Bundle::parse(&bytes).expect("an accepted bundle re-encodes to bytes that parse");
    assert_eq!(again.id(), &id);
    assert_eq!(again.destination(), bundle.destination());
    assert_eq!(again.payload(), bundle.payload());
    assert_eq!(again.to_bytes(), bytes, "encoding is not stable");

    // What routing and the store read of it.
    let local = NodeId::dtn("fuzz").expect("a valid node name");
    let received_at = bundle.created().time;
    let meta = bundle.meta(bytes.len() as u64, false, None, received_at);
    let _ = meta.is_expired(received_at);
    let _ = bundle.expires_at(u64::MAX);
    let _ = (
        bundle.age_ms(),
        bundle.hop_count(),
        bundle.is_admin_record(),
    );
    let _ = (bundle.lifetime_ms(), bundle.priority(), bundle.report_to());

    // The copy this node passes on.
    let mut forwarded = bundle.clone();
    if forwarded.prepare_forward(&local, 1_000).is_ok() {
        let relayed = Bundle::parse(&forwarded.to_bytes())
            .expect("a bundle this node forwards parses at the next hop");
        assert_eq!(relayed.id(), &id);
    }
});
