//! Bitfields: which chunk groups a provider says it has
//! (`BlobResponse::Have { groups }`) or the store kept for a resumed
//! download, `ferry_core::content::Bitfield`.
//!
//! The input is decoded both ways a field arrives: checked, by
//! `Bitfield::from_bytes` (the store's path), and plainly by serde, as a
//! peer's `BlobResponse` carries it.
//!
//! Property: every group below `groups()` can be queried, counted, scanned
//! and compared without a panic, for every field the checked decoder
//! accepts; with the pending `bitfield-unchecked` check, for every field
//! serde decodes too (what a peer's `Have` answer reaches the scheduler as).
#![no_main]

use ferry_core::content::Bitfield;
use libfuzzer_sys::fuzz_target;

/// Fields of more groups are sampled (the start, the end, and each word's
/// first and last group) instead of walked whole.
const WALK_ALL: u64 = 1 << 16;

fn exercise(field: &Bitfield) {
    let groups = field.groups();
    let sample: Vec<u64> = if groups <= WALK_ALL {
        (0..groups).collect()
    } else {
        let words = groups.div_ceil(64).min(WALK_ALL);
        (0..1024)
            .chain(groups - 1024..groups)
            .chain((0..words).flat_map(|w| [w * 64, w * 64 + 63]))
            .filter(|g| *g < groups)
            .collect()
    };
    for &group in &sample {
        let _ = field.get(group);
    }
    assert!(
        field.count() <= groups,
        "{} of {groups} groups set",
        field.count()
    );
    let _ = field.is_complete();
    let _ = field.next_missing(0, Some(field));
    let _ = field.next_missing(groups / 2, None);
    if groups <= WALK_ALL {
        let missing: u64 = field.missing_runs().iter().map(|(a, b)| b - a).sum();
        assert_eq!(missing + field.count(), groups);
    }
    let mut copy = field.clone();
    for &group in sample.iter().take(64) {
        copy.set(group);
    }
    assert_eq!(
        Bitfield::from_bytes(&field.to_bytes()).as_ref(),
        Some(field)
    );
}

fuzz_target!(|data: &[u8]| {
    if let Some(field) = Bitfield::from_bytes(data) {
        exercise(&field);
    }
    // As a peer's `BlobResponse::Have` carries it: serde must check it too.
    if let Ok(field) = postcard::from_bytes::<Bitfield>(data) {
        exercise(&field);
    }
});
