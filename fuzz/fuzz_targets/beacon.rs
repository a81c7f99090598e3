//! LAN beacons: `ferry_core::beacon::decode` over any UDP datagram.
//!
//! The first byte picks the input's meaning: even, the rest is a datagram as
//! it arrives; odd, the next byte picks a fixed key and the rest is the
//! signed info, wrapped and signed here, so mutations reach past the
//! signature check.
//!
//! Properties: nothing panics; an accepted beacon's name passes the name
//! check, and its info, signed again by its sender, decodes to the same.
#![no_main]

use ferry_core::beacon::{self, MAX_BEACON_BYTES};
use ferry_core::channel::check_name;
use ferry_fuzz::{BEACON_DOMAIN, PEERS, Script, envelope, keys};
use libfuzzer_sys::fuzz_target;

/// The magic bytes before a beacon's envelope.
const MAGIC: &[u8] = b"FRYb";

fuzz_target!(|data: &[u8]| {
    let mut s = Script::new(data);
    let datagram = if !s.bool() {
        s.rest().to_vec()
    } else {
        let key = s.u8();
        [MAGIC, &envelope(key, BEACON_DOMAIN, s.rest())].concat()
    };
    let Ok(decoded) = beacon::decode(&datagram) else {
        return;
    };
    assert!(datagram.len() <= MAX_BEACON_BYTES);
    assert!(check_name(&decoded.info.name).is_ok());
    if let Some(key) = keys()
        .iter()
        .take(PEERS)
        .find(|k| k.public().to_peer_id() == decoded.peer)
        && let Ok(again) = beacon::encode(key, &decoded.info)
    {
        let back = beacon::decode(&again).expect("a beacon ferry encodes decodes");
        assert_eq!(back, decoded);
    }
});
