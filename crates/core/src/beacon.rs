//! The LAN beacon: a small signed UDP datagram a node broadcasts so that peers
//! on the same segment find it even where multicast (and so mDNS) is filtered.
//!
//! A beacon names the sender's public key, nickname and listening ports, and a
//! sequence number that only grows, so a replayed old beacon is recognised. The
//! receiver pairs the ports with the datagram's source address, which is the
//! address that is reachable from where it stands.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::channel::{MessageError, check_name};
use crate::{Keypair, PeerId, PublicKey};

/// The UDP port beacons are sent to by default.
pub const DEFAULT_BEACON_PORT: u16 = 45_458;
/// No valid beacon is larger than this; anything larger is dropped unread.
pub const MAX_BEACON_BYTES: usize = 512;

const MAGIC: &[u8; 4] = b"FRYb";
const SIGNING_DOMAIN: &[u8] = b"ferry/beacon/v1\0";

/// What a beacon says about its sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeaconInfo {
    /// Grows with every beacon the sender emits (across restarts too).
    pub seq: u64,
    /// The sender's nickname, checked like a message author's name (length, no control
    /// characters).
    pub name: String,
    /// The port the sender listens on for TCP, if it does; the receiver pairs it with the
    /// datagram's source address.
    pub tcp_port: Option<u16>,
    /// The UDP port the sender listens on for QUIC, if it does; paired with the source
    /// address like `tcp_port`.
    pub quic_port: Option<u16>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    public_key: Vec<u8>,
    info: Vec<u8>,
    signature: Vec<u8>,
}

/// A beacon whose signature has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beacon {
    /// The sender, derived from the public key that signed the beacon.
    pub peer: PeerId,
    /// What the sender said about itself, covered by the signature.
    pub info: BeaconInfo,
}

/// Encodes and signs a beacon.
pub fn encode(keypair: &Keypair, info: &BeaconInfo) -> Result<Vec<u8>, BeaconError> {
    check_name(&info.name)?;
    let info_bytes = postcard::to_stdvec(info).map_err(|_| BeaconError::Malformed)?;
    let signature = keypair
        .sign(&[SIGNING_DOMAIN, &info_bytes].concat())
        .map_err(|_| BeaconError::Malformed)?;
    let envelope = Envelope {
        public_key: keypair.public().encode_protobuf(),
        info: info_bytes,
        signature,
    };
    let mut datagram = MAGIC.to_vec();
    postcard::to_io(&envelope, &mut datagram).map_err(|_| BeaconError::Malformed)?;
    if datagram.len() > MAX_BEACON_BYTES {
        return Err(BeaconError::TooLarge(datagram.len()));
    }
    Ok(datagram)
}

/// Parses and verifies a datagram from anyone on the network.
pub fn decode(datagram: &[u8]) -> Result<Beacon, BeaconError> {
    if datagram.len() > MAX_BEACON_BYTES {
        return Err(BeaconError::TooLarge(datagram.len()));
    }
    let payload = datagram
        .strip_prefix(MAGIC.as_slice())
        .ok_or(BeaconError::NotABeacon)?;
    let envelope: Envelope = postcard::from_bytes(payload).map_err(|_| BeaconError::Malformed)?;
    let key =
        PublicKey::try_decode_protobuf(&envelope.public_key).map_err(|_| BeaconError::BadKey)?;
    if !key.verify(
        &[SIGNING_DOMAIN, &envelope.info].concat(),
        &envelope.signature,
    ) {
        return Err(BeaconError::BadSignature);
    }
    let info: BeaconInfo =
        postcard::from_bytes(&envelope.info).map_err(|_| BeaconError::Malformed)?;
    check_name(&info.name)?;
    Ok(Beacon {
        peer: key.to_peer_id(),
        info,
    })
}

/// Why a received datagram was not accepted as a beacon.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BeaconError {
    /// The datagram does not start with ferry's beacon magic: some other program's
    /// traffic.
    #[error("not a ferry beacon (wrong magic bytes)")]
    NotABeacon,
    /// The datagram is over [`MAX_BEACON_BYTES`] (its length in bytes); dropped unread.
    #[error("beacon of {0} bytes is over the {MAX_BEACON_BYTES}-byte limit")]
    TooLarge(usize),
    /// The bytes after the magic do not decode as a beacon.
    #[error("malformed beacon")]
    Malformed,
    /// The public key in the beacon is not a valid key.
    #[error("beacon carries an invalid public key")]
    BadKey,
    /// The signature does not verify under the key the beacon names: forged or corrupted.
    #[error("beacon signature does not match its key (forged or corrupted)")]
    BadSignature,
    /// The nickname breaks the rules for names (too long, control characters).
    #[error("beacon carries a bad name: {0}")]
    BadName(#[from] MessageError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn info() -> BeaconInfo {
        BeaconInfo {
            seq: 7,
            name: "laptop-ana".into(),
            tcp_port: Some(4001),
            quic_port: Some(4001),
        }
    }

    #[test]
    fn round_trip() {
        let key = Keypair::generate_ed25519();
        let datagram = encode(&key, &info()).unwrap();
        assert!(
            datagram.len() < 200,
            "beacons stay small: {}",
            datagram.len()
        );
        let beacon = decode(&datagram).unwrap();
        assert_eq!(beacon.peer, key.public().to_peer_id());
        assert_eq!(beacon.info, info());
    }

    #[test]
    fn forged_info_is_rejected() {
        let key = Keypair::generate_ed25519();
        let datagram = encode(&key, &info()).unwrap();
        let mut envelope: Envelope = postcard::from_bytes(&datagram[4..]).unwrap();
        let mut forged = info();
        forged.tcp_port = Some(6666);
        envelope.info = postcard::to_stdvec(&forged).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend(postcard::to_stdvec(&envelope).unwrap());
        assert_eq!(decode(&bytes), Err(BeaconError::BadSignature));
    }

    #[test]
    fn foreign_and_oversize_datagrams_are_rejected() {
        assert_eq!(decode(b"M-SEARCH * HTTP/1.1"), Err(BeaconError::NotABeacon));
        assert_eq!(decode(b"FRYb"), Err(BeaconError::Malformed));
        assert_eq!(
            decode(&[0u8; MAX_BEACON_BYTES + 1]),
            Err(BeaconError::TooLarge(MAX_BEACON_BYTES + 1))
        );
    }

    #[test]
    fn hostile_names_are_refused_on_both_ends() {
        let key = Keypair::generate_ed25519();
        let mut bad = info();
        bad.name = "\u{7}bell".into();
        assert!(matches!(encode(&key, &bad), Err(BeaconError::BadName(_))));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes);
            let mut prefixed = MAGIC.to_vec();
            prefixed.extend(&bytes);
            let _ = decode(&prefixed);
        }

        #[test]
        fn corruption_is_never_accepted_as_different_content(
            byte in any::<prop::sample::Index>(), bit in 0u8..8) {
            let key = Keypair::generate_ed25519();
            let mut datagram = encode(&key, &info()).unwrap();
            let i = byte.index(datagram.len());
            datagram[i] ^= 1 << bit;
            if let Ok(beacon) = decode(&datagram) {
                prop_assert_eq!(beacon.info, info());
                prop_assert_eq!(beacon.peer, key.public().to_peer_id());
            }
        }
    }
}
