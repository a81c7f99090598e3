use proptest::prelude::*;

use super::*;
use crate::Keypair;

fn peer_eid(service: &str) -> Eid {
    let peer = Keypair::ed25519_from_bytes([7; 32])
        .unwrap()
        .public()
        .to_peer_id();
    Eid::for_peer(&peer, service).unwrap()
}

fn spec(payload: Vec<u8>) -> NewBundle {
    NewBundle {
        source: peer_eid("chat"),
        destination: "dtn://beta/incoming".parse().unwrap(),
        created: CreationTimestamp {
            time: 800_000_000_000,
            seq: 3,
        },
        lifetime_ms: 3_600_000,
        priority: Priority::Expedited,
        payload,
    }
}

/// A bundle as dtn7-rs's `dtnsend` makes it: no CRC on any block, a hop count block,
/// delivery reports requested.
fn dtnsend_bundle(payload: &[u8]) -> Vec<u8> {
    let mut b = bp7::bundle::new_std_payload_bundle(
        bp7::EndpointID::with_dtn("alpha/sender").unwrap(),
        bp7::EndpointID::with_dtn("beta/incoming").unwrap(),
        payload.to_vec(),
    );
    b.primary.creation_timestamp = bp7::CreationTimestamp::with_time_and_seq(800_000_000_000, 0);
    b.set_crc(bp7::crc::CRC_NO);
    b.to_cbor()
}

#[test]
fn a_bundle_round_trips_through_its_bytes() {
    let bundle = Bundle::new(spec(b"hello village".to_vec())).unwrap();
    let bytes = bundle.to_bytes();
    let back = Bundle::parse(&bytes).unwrap();
    assert_eq!(back, bundle);
    assert_eq!(back.payload(), b"hello village");
    assert_eq!(back.priority(), Priority::Expedited);
    assert_eq!(back.source(), &peer_eid("chat"));
    assert_eq!(back.destination().to_string(), "dtn://beta/incoming");
    assert_eq!(back.destination_node().to_string(), "dtn://beta/");
    assert_eq!(back.report_to(), back.source());
    assert_eq!(back.lifetime_ms(), 3_600_000);
    assert_eq!(back.created().seq, 3);
    assert_eq!(back.age_ms(), None);
    assert!(!back.is_admin_record());
    // Encoding is deterministic.
    assert_eq!(back.to_bytes(), bytes);
}

#[test]
fn other_implementations_read_ferrys_bytes_with_crc() {
    let bytes = Bundle::new(spec(b"x".to_vec())).unwrap().to_bytes();
    let mut theirs = bp7::Bundle::try_from(bytes.as_slice()).unwrap();
    theirs.validate().unwrap();
    assert!(theirs.crc_valid());
    assert_eq!(theirs.primary.crc.to_code(), bp7::crc::CRC_32);
    assert!(
        theirs
            .canonicals
            .iter()
            .all(|b| b.crc.to_code() == bp7::crc::CRC_32)
    );
    assert_eq!(theirs.payload().unwrap().as_slice(), b"x");
    // Their id is our id's text.
    let ours = Bundle::parse(&bytes).unwrap();
    assert_eq!(theirs.id(), ours.id().to_string());
}

#[test]
fn dtnsend_bundles_without_crc_are_accepted_and_gain_one() {
    let bytes = dtnsend_bundle(b"from dtnd");
    let bundle = Bundle::parse(&bytes).unwrap();
    assert_eq!(bundle.payload(), b"from dtnd");
    assert_eq!(bundle.priority(), Priority::Normal);
    assert_eq!(bundle.hop_count(), Some((32, 0)));
    assert_eq!(bundle.id().to_string(), "dtn://alpha/sender-800000000000-0");
    let mut reencoded = bp7::Bundle::try_from(bundle.to_bytes().as_slice()).unwrap();
    assert_eq!(reencoded.primary.crc.to_code(), bp7::crc::CRC_32);
    assert!(reencoded.crc_valid());
}

#[test]
fn a_corrupted_crc_is_refused() {
    let mut bytes = Bundle::new(spec(b"payload bytes".to_vec()))
        .unwrap()
        .to_bytes();
    let at = bytes
        .windows(7)
        .position(|w| w == b"payload")
        .expect("payload in the encoding");
    bytes[at] ^= 0x20;
    let err = Bundle::parse(&bytes).unwrap_err();
    assert!(
        matches!(err, BundleError::Invalid(ref why) if why.contains("CRC")),
        "{err}"
    );
}

#[test]
fn trailing_bytes_and_block_floods_are_refused() {
    let bytes = Bundle::new(spec(vec![1])).unwrap().to_bytes();
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        Bundle::parse(&trailing),
        Err(BundleError::Malformed(_))
    ));
    let twice = [bytes.clone(), bytes].concat();
    assert!(Bundle::parse(&twice).is_err());

    let mut flood = Bundle::new(spec(vec![1])).unwrap();
    for _ in 0..MAX_BLOCKS {
        let block = bp7::CanonicalBlockBuilder::default()
            .block_type(190)
            .data(bp7::CanonicalData::Unknown(vec![]))
            .build()
            .unwrap();
        flood.inner.add_canonical_block(block);
    }
    assert_eq!(
        Bundle::parse(&flood.to_bytes()).unwrap_err(),
        BundleError::TooManyBlocks {
            count: MAX_BLOCKS + 2,
            max: MAX_BLOCKS
        }
    );
}

#[test]
fn priorities_survive_and_unknown_codes_mean_normal() {
    for priority in [Priority::Bulk, Priority::Normal, Priority::Expedited] {
        let bundle = Bundle::new(NewBundle {
            priority,
            ..spec(vec![1])
        })
        .unwrap();
        assert_eq!(
            Bundle::parse(&bundle.to_bytes()).unwrap().priority(),
            priority
        );
    }
    let mut odd = Bundle::new(spec(vec![1])).unwrap();
    for block in odd.inner.canonicals.iter_mut() {
        if block.block_type == PRIORITY_BLOCK_TYPE {
            block.set_data(bp7::CanonicalData::Unknown(vec![0x18, 0x63]));
        }
    }
    assert_eq!(
        Bundle::parse(&odd.to_bytes()).unwrap().priority(),
        Priority::Normal
    );
    assert_eq!(
        "Expedited".parse::<Priority>().unwrap(),
        Priority::Expedited
    );
    assert!("urgent".parse::<Priority>().is_err());
}

#[test]
fn size_limits_hold_both_ways() {
    let err = Bundle::new(spec(vec![0; MAX_BUNDLE_BYTES])).unwrap_err();
    assert!(matches!(err, BundleError::TooLarge { .. }));
    let err = Bundle::parse(&vec![0; MAX_BUNDLE_BYTES + 1]).unwrap_err();
    assert_eq!(
        err,
        BundleError::TooLarge {
            size: MAX_BUNDLE_BYTES + 1,
            max: MAX_BUNDLE_BYTES
        }
    );
    // Five MiB, the acceptance test's file, fits.
    let five = Bundle::new(spec(vec![9; 5 << 20])).unwrap();
    assert_eq!(
        Bundle::parse(&five.to_bytes()).unwrap().payload().len(),
        5 << 20
    );
}

#[test]
fn sourceless_destinationless_and_fragmented_bundles_are_refused() {
    let err = Bundle::new(NewBundle {
        source: Eid::none(),
        ..spec(vec![])
    })
    .unwrap_err();
    assert_eq!(err, BundleError::Anonymous);
    let err = Bundle::new(NewBundle {
        destination: Eid::none(),
        ..spec(vec![])
    })
    .unwrap_err();
    assert_eq!(err, BundleError::NoDestination);

    let mut anonymous = Bundle::new(spec(vec![1])).unwrap();
    anonymous.inner.primary.source = bp7::EndpointID::none();
    anonymous.inner.primary.report_to = bp7::EndpointID::none();
    assert_eq!(
        Bundle::parse(&anonymous.to_bytes()).unwrap_err(),
        BundleError::Anonymous
    );

    let mut fragment = Bundle::new(spec(vec![1])).unwrap();
    fragment.inner.primary.bundle_control_flags = BundleControlFlags::BUNDLE_IS_FRAGMENT.bits();
    fragment.inner.primary.total_data_length = 10;
    assert_eq!(
        Bundle::parse(&fragment.to_bytes()).unwrap_err(),
        BundleError::Fragment
    );
}

#[test]
fn non_canonical_endpoints_on_the_wire_are_refused() {
    let mut odd = Bundle::new(spec(vec![1])).unwrap();
    odd.inner.primary.destination =
        bp7::EndpointID::Dtn(1, bp7::eid::DtnAddress::new("be ta", "x"));
    let err = Bundle::parse(&odd.to_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::BadEndpoint {
                field: "destination",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_node_without_a_clock_gets_an_age_block_and_expires_by_age() {
    let bundle = Bundle::new(NewBundle {
        created: CreationTimestamp { time: 0, seq: 9 },
        lifetime_ms: 1_000,
        ..spec(vec![1])
    })
    .unwrap();
    let mut back = Bundle::parse(&bundle.to_bytes()).unwrap();
    assert_eq!(back.age_ms(), Some(0));
    assert_eq!(back.expires_at(5_000), 6_000);
    assert!(!back.is_expired(123));
    let local = NodeId::dtn("relay").unwrap();
    back.prepare_forward(&local, 1_500).unwrap();
    let aged = Bundle::parse(&back.to_bytes()).unwrap();
    assert_eq!(aged.age_ms(), Some(1_500));
    assert!(aged.is_expired(0));
}

#[test]
fn expiry_follows_creation_plus_lifetime() {
    let bundle = Bundle::new(spec(vec![1])).unwrap();
    let end = 800_000_000_000 + 3_600_000;
    assert_eq!(bundle.expires_at(1), end);
    assert!(!bundle.is_expired(end - 1));
    assert!(bundle.is_expired(end));
}

#[test]
fn forwarding_counts_hops_and_names_the_previous_node() {
    let mut bundle = Bundle::parse(&dtnsend_bundle(b"hop")).unwrap();
    let relay = NodeId::dtn("relay").unwrap();
    bundle.prepare_forward(&relay, 10).unwrap();
    let back = Bundle::parse(&bundle.to_bytes()).unwrap();
    assert_eq!(back.hop_count(), Some((32, 1)));
    let theirs = bp7::Bundle::try_from(back.to_bytes().as_slice()).unwrap();
    assert_eq!(theirs.previous_node().unwrap().to_string(), "dtn://relay/");

    let mut spent = back.clone();
    for _ in 0..31 {
        spent.prepare_forward(&relay, 0).unwrap();
    }
    assert_eq!(
        spent.prepare_forward(&relay, 0),
        Err(BundleError::HopLimitExceeded)
    );

    // The source adds no previous-node block to its own bundle.
    let mut own = Bundle::new(spec(vec![1])).unwrap();
    let me = own.source().node_id().unwrap();
    own.prepare_forward(&me, 0).unwrap();
    let theirs = bp7::Bundle::try_from(own.to_bytes().as_slice()).unwrap();
    assert!(theirs.previous_node().is_none());
}

#[test]
fn bundle_ids_have_one_stable_text_form() {
    let id = Bundle::new(spec(vec![])).unwrap().id().clone();
    let text = id.to_string();
    assert!(text.ends_with("/chat-800000000000-3"), "{text}");
    assert_eq!(text.parse::<BundleId>().unwrap(), id);
    let dashed: BundleId = "dtn://a-b/c-d--12-0".parse().unwrap();
    assert_eq!(dashed.source().to_string(), "dtn://a-b/c-d-");
    assert_eq!(dashed.created(), CreationTimestamp { time: 12, seq: 0 });
    for bad in [
        "dtn://a/b-1",
        "dtn://a/b-01-2",
        "dtn://a/b-1-+2",
        "x-1-2",
        "-1-2",
    ] {
        assert!(bad.parse::<BundleId>().is_err(), "{bad}");
    }
    assert_eq!(id.digest_hex().len(), 32);
    assert_ne!(id.digest_hex(), dashed.digest_hex());
}

#[test]
fn the_creation_clock_never_repeats() {
    let mut clock = CreationClock::new();
    let a = clock.next(100);
    let b = clock.next(100);
    let c = clock.next(90); // clock stepped back
    let d = clock.next(101);
    assert_eq!(a, CreationTimestamp { time: 100, seq: 0 });
    assert_eq!(b, CreationTimestamp { time: 100, seq: 1 });
    assert_eq!(c, CreationTimestamp { time: 100, seq: 2 });
    assert_eq!(d, CreationTimestamp { time: 101, seq: 0 });
    let mut resumed = CreationClock::resume_after(d);
    assert_eq!(resumed.next(50), CreationTimestamp { time: 101, seq: 1 });
}

#[test]
fn meta_says_whose_bundle_it_is() {
    let bundle = Bundle::new(spec(vec![1, 2, 3])).unwrap();
    let me = bundle.source().node_id().unwrap();
    let other = NodeId::dtn("bus").unwrap();
    // Whose it is is the caller's word (it made it or not), never the source's.
    let mine = bundle.meta(100, true, None, 0);
    assert!(mine.own);
    assert_eq!(mine.destination, NodeId::dtn("beta").unwrap());
    assert_eq!(mine.expires_at, 800_000_000_000 + 3_600_000);
    let carried = bundle.meta(100, false, Some(me.clone()), 0);
    assert!(!carried.own);
    // A copy that comes back to its source from a peer is not taken as its own.
    assert!(!mine.relayed(&other).own);
    assert_eq!(mine.relayed(&other).received_from, Some(other.clone()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn garbage_never_panics_and_is_never_accepted(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        prop_assert!(Bundle::parse(&bytes).is_err());
    }

    #[test]
    fn bit_flips_and_truncations_never_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
        cut in any::<prop::sample::Index>(),
        no_crc in any::<bool>(),
    ) {
        let bytes = if no_crc { dtnsend_bundle(&payload) } else {
            Bundle::new(spec(payload.clone())).unwrap().to_bytes()
        };
        let mut flipped = bytes.clone();
        for (at, bit) in &flips {
            let i = at.index(flipped.len());
            flipped[i] ^= 1 << bit;
        }
        // Whatever is accepted must be a consistent bundle that encodes and parses back.
        if let Ok(bundle) = Bundle::parse(&flipped) {
            let again = Bundle::parse(&bundle.to_bytes()).unwrap();
            prop_assert_eq!(again.id(), bundle.id());
            prop_assert_eq!(again.payload(), bundle.payload());
        }
        let truncated = &bytes[..cut.index(bytes.len())];
        prop_assert!(Bundle::parse(truncated).is_err());
    }

    #[test]
    fn a_single_bit_flip_in_a_crc_protected_bundle_is_caught(
        payload in proptest::collection::vec(any::<u8>(), 1..64),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let bytes = Bundle::new(spec(payload)).unwrap().to_bytes();
        let mut flipped = bytes.clone();
        let i = at.index(flipped.len());
        flipped[i] ^= 1 << bit;
        if let Ok(bundle) = Bundle::parse(&flipped) {
            // Only flips that leave the meaning intact and the CRC matching may pass,
            // e.g. in CBOR framing that decodes to the same values.
            prop_assert_eq!(bundle.to_bytes(), bytes);
        }
    }

    /// Ids order by source, then creation time and sequence, whether or not they
    /// share their parts.
    #[test]
    fn ids_order_by_source_then_creation(
        a in (0u64..3, 0u64..3, 0u64..3),
        b in (0u64..3, 0u64..3, 0u64..3),
        shared in any::<bool>(),
    ) {
        let id = |(node, time, seq): (u64, u64, u64)| {
            BundleId::new(Eid::ipn(node + 1, 1).unwrap(), CreationTimestamp { time, seq })
        };
        let x = id(a);
        let y = if shared && a == b { x.clone() } else { id(b) };
        prop_assert_eq!(x.cmp(&y), a.cmp(&b));
        prop_assert_eq!(x == y, a == b);
    }

    #[test]
    fn built_bundles_round_trip(
        payload in proptest::collection::vec(any::<u8>(), 0..256),
        time in 0u64..u64::MAX / 2,
        seq in any::<u64>(),
        lifetime in any::<u64>(),
        service in "[a-z~]{0,12}",
        code in 0u8..3,
    ) {
        let bundle = Bundle::new(NewBundle {
            source: peer_eid(&service),
            created: CreationTimestamp { time, seq },
            lifetime_ms: lifetime,
            priority: Priority::from_code(code).unwrap(),
            ..spec(payload)
        }).unwrap();
        let back = Bundle::parse(&bundle.to_bytes()).unwrap();
        prop_assert_eq!(&back, &bundle);
        prop_assert_eq!(back.id().to_string().parse::<BundleId>().unwrap(), back.id().clone());
    }
}
