//! Who made a bundle, and who acknowledged a delivery: ed25519 signatures by a ferry
//! node's own key.
//!
//! A ferry node's id is `dtn://PEER_ID/`, and its libp2p peer id is its ed25519 public
//! key (an identity multihash), so anyone holding a bundle or an ack can check it
//! without asking anyone. Both signatures sign a BLAKE3 digest of what they cover,
//! prefixed by a context string of their own, so a signature made for one purpose
//! (a bundle, an ack, a channel message, a beacon) can never be taken for another.
//!
//! # The bundle signature: an RFC 9172 Block Integrity Block
//! Block type [`BIB_BLOCK_TYPE`] (11), block number [`BIB_BLOCK_NUMBER`], all block
//! processing control flags clear (RFC 9171 §4.2.4: a node that cannot process it
//! keeps it and forwards it unchanged, does not delete the bundle, sends no report;
//! dtn7-rs's dtnd does exactly that), CRC-32C like every block ferry writes. Its data
//! is the abstract security block of RFC 9172 §3.6, a CBOR sequence:
//!
//! ```text
//! 81 01                     security targets: [1] (the payload block)
//! 39 46 44                  security context id: -17989 (FERRY_ED25519_CONTEXT_ID)
//! 00                        security context flags: no parameters
//! 82 01 7x.. "//PEER_ID/"   security source: the source's node id, dtn://PEER_ID/
//! 81 81 82 01 58 40 <64 B>  results: one target, one result, id 1 = the signature
//! ```
//!
//! RFC 9172 §11.3 leaves negative security context ids to private and experimental
//! use; -17989 is ferry's ("FE" read as a number, negated), chosen to be unlikely to
//! meet anyone else's experiment. Under this context the signature covers, as
//! [`bundle_digest`] lists them, the primary block's source, destination, creation
//! timestamp and lifetime, and the payload: who sent what to whom, and when. Not
//! covered: the extension blocks a forwarder rewrites (hop count, age, previous node)
//! and the class-of-service block.

use libp2p_identity::{Keypair, PeerId, PublicKey};
use serde::{Deserialize, Serialize};

use super::DtnMillis;
use super::bundle::{BundleId, CreationTimestamp};
use super::eid::{Eid, NodeId};

/// RFC 9172's block type of a Block Integrity Block.
pub const BIB_BLOCK_TYPE: u64 = 11;
/// The block number ferry gives its signature block (1 is the payload, 2 the
/// class-of-service block, 3 the age block).
pub const BIB_BLOCK_NUMBER: u64 = 4;
/// ferry's security context: ed25519 by the source node's libp2p key (a negative id,
/// RFC 9172's private and experimental range).
pub const FERRY_ED25519_CONTEXT_ID: i64 = -17_989;

const BUNDLE_CONTEXT: &[u8] = b"ferry/dtn/bundle-signature/v1";
const ACK_CONTEXT: &[u8] = b"ferry/dtn/ack/v1";
const SIGNATURE_LEN: usize = 64;

/// An ed25519 signature (64 bytes), a byte string on the wire.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "serde_bytes::ByteBuf", into = "serde_bytes::ByteBuf")]
pub struct Signature([u8; SIGNATURE_LEN]);

impl Signature {
    /// The 64 signature bytes.
    pub fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..8]))
    }
}

/// A byte string of the wrong length where a signature was expected (from a peer, so
/// refused); carries its length.
#[derive(Debug, thiserror::Error)]
#[error("a signature is {SIGNATURE_LEN} bytes, not {0}")]
pub struct SignatureLengthError(usize);

impl TryFrom<serde_bytes::ByteBuf> for Signature {
    type Error = SignatureLengthError;
    fn try_from(bytes: serde_bytes::ByteBuf) -> Result<Self, Self::Error> {
        Self::try_from(bytes.as_slice())
    }
}

impl TryFrom<&[u8]> for Signature {
    type Error = SignatureLengthError;
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        <[u8; SIGNATURE_LEN]>::try_from(bytes)
            .map(Signature)
            .map_err(|_| SignatureLengthError(bytes.len()))
    }
}

impl From<Signature> for serde_bytes::ByteBuf {
    fn from(signature: Signature) -> Self {
        serde_bytes::ByteBuf::from(signature.0.to_vec())
    }
}

/// Why something could not be signed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    /// The local keypair is of a type that cannot sign.
    #[error("this key type cannot sign")]
    UnsignableKey,
    /// The keypair is not the one of the node named as signer (carried), so the signature
    /// would not verify.
    #[error("the key is not the one of {0}, whose name the message carries")]
    WrongKey(NodeId),
}

/// The ed25519 key of a ferry node, from its id (`None` for other DTN nodes, whose
/// names are no keys).
pub fn node_key(node: &NodeId) -> Option<PublicKey> {
    peer_key(&node.peer_id()?)
}

fn peer_key(peer: &PeerId) -> Option<PublicKey> {
    let multihash = peer.as_ref();
    // An ed25519 peer id inlines its key (identity multihash, code 0).
    if multihash.code() != 0 {
        return None;
    }
    let key = PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    (key.to_peer_id() == *peer).then_some(key)
}

fn sign_digest(
    keypair: &Keypair,
    signer: &NodeId,
    context: &[u8],
    digest: &[u8; 32],
) -> Result<Signature, SignError> {
    if NodeId::from_peer(&keypair.public().to_peer_id()) != *signer {
        return Err(SignError::WrongKey(signer.clone()));
    }
    let bytes = keypair
        .sign(&message(context, digest))
        .map_err(|_| SignError::UnsignableKey)?;
    Signature::try_from(bytes.as_slice()).map_err(|_| SignError::UnsignableKey)
}

fn verify_digest(signer: &NodeId, context: &[u8], digest: &[u8; 32], sig: &Signature) -> bool {
    node_key(signer).is_some_and(|key| key.verify(&message(context, digest), &sig.0))
}

fn message(context: &[u8], digest: &[u8; 32]) -> Vec<u8> {
    [context, b"\0", digest].concat()
}

fn put_text(hasher: &mut blake3::Hasher, text: &str) {
    hasher.update(&(text.len() as u64).to_be_bytes());
    hasher.update(text.as_bytes());
}

/// What a bundle signature covers, hashed: the source, destination, creation
/// timestamp and lifetime of the primary block, and the payload, each field
/// length-prefixed so no two bundles hash alike by shifting bytes between fields.
pub fn bundle_digest(
    source: &Eid,
    destination: &Eid,
    created: CreationTimestamp,
    lifetime_ms: u64,
    payload: &[u8],
) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    put_text(&mut hasher, &source.to_string());
    put_text(&mut hasher, &destination.to_string());
    hasher.update(&created.time.to_be_bytes());
    hasher.update(&created.seq.to_be_bytes());
    hasher.update(&lifetime_ms.to_be_bytes());
    hasher.update(&(payload.len() as u64).to_be_bytes());
    hasher.update(payload);
    *hasher.finalize().as_bytes()
}

pub(super) fn sign_bundle(
    keypair: &Keypair,
    source: &NodeId,
    digest: &[u8; 32],
) -> Result<Signature, SignError> {
    sign_digest(keypair, source, BUNDLE_CONTEXT, digest)
}

pub(super) fn verify_bundle(source: &NodeId, digest: &[u8; 32], sig: &Signature) -> bool {
    verify_digest(source, BUNDLE_CONTEXT, digest, sig)
}

/// The data of ferry's signature block (see the module's documentation).
pub(super) fn encode_bib(source: &NodeId, sig: &Signature) -> Vec<u8> {
    let ssp = ssp_of(source);
    let mut data = BIB_HEAD.to_vec();
    put_text_header(&mut data, ssp.len());
    data.extend_from_slice(ssp.as_bytes());
    data.extend_from_slice(&BIB_RESULT_HEAD);
    data.extend_from_slice(&sig.0);
    data
}

/// The security source and signature of a block in ferry's exact encoding; `None`
/// for anything else (another context, another layout), which is then no signature.
pub(super) fn decode_bib(data: &[u8]) -> Option<(String, Signature)> {
    let rest = data.strip_prefix(&BIB_HEAD)?;
    let (len, rest) = take_text_header(rest)?;
    if rest.len() < len {
        return None;
    }
    let (ssp, rest) = rest.split_at(len);
    let sig = rest.strip_prefix(&BIB_RESULT_HEAD)?;
    let sig = Signature::try_from(sig).ok()?;
    let ssp = std::str::from_utf8(ssp).ok()?;
    Some((format!("dtn:{ssp}"), sig))
}

/// Targets [1], context -17989 (CBOR negative integer 17988 = 0x4644), flags 0, and
/// the start of the source EID `[1, text]`.
const BIB_HEAD: [u8; 8] = [0x81, 0x01, 0x39, 0x46, 0x44, 0x00, 0x82, 0x01];
/// One target's results: one pair `[1, bytes(64)]`.
const BIB_RESULT_HEAD: [u8; 6] = [0x81, 0x81, 0x82, 0x01, 0x58, 0x40];

/// `//PEER_ID/`, the scheme-specific part of the node's `dtn:` endpoint.
fn ssp_of(node: &NodeId) -> String {
    let text = node.to_string();
    text.strip_prefix("dtn:").unwrap_or(&text).to_owned()
}

fn put_text_header(data: &mut Vec<u8>, len: usize) {
    // CBOR major type 3 (text), shortest length form; node ids are under 64 KiB.
    match len {
        0..=23 => data.push(0x60 | len as u8),
        24..=0xff => data.extend_from_slice(&[0x78, len as u8]),
        _ => {
            data.push(0x79);
            data.extend_from_slice(&(len.min(0xffff) as u16).to_be_bytes());
        }
    }
}

fn take_text_header(data: &[u8]) -> Option<(usize, &[u8])> {
    match data.split_first()? {
        (&b, rest) if (0x60..=0x77).contains(&b) => Some((usize::from(b - 0x60), rest)),
        (0x78, rest) => {
            let (&len, rest) = rest.split_first()?;
            Some((usize::from(len), rest))
        }
        (0x79, rest) => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            Some((usize::from(u16::from_be_bytes(*len)), rest))
        }
        _ => None,
    }
}

/// What an ack signature covers, hashed: the bundle id (its text form), the
/// destination node that signs, and the expiry the ack carries.
pub fn ack_digest(id: &BundleId, destination: &NodeId, expires_at: DtnMillis) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    put_text(&mut hasher, &id.to_string());
    put_text(&mut hasher, &destination.to_string());
    hasher.update(&expires_at.to_be_bytes());
    *hasher.finalize().as_bytes()
}

pub(super) fn sign_ack(
    keypair: &Keypair,
    destination: &NodeId,
    digest: &[u8; 32],
) -> Result<Signature, SignError> {
    sign_digest(keypair, destination, ACK_CONTEXT, digest)
}

pub(super) fn verify_ack(destination: &NodeId, digest: &[u8; 32], sig: &Signature) -> bool {
    verify_digest(destination, ACK_CONTEXT, digest, sig)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::dtn::{Bundle, NewBundle, Origin, Priority};

    fn key(seed: u8) -> Keypair {
        Keypair::ed25519_from_bytes([seed; 32]).unwrap()
    }

    fn node_of(key: &Keypair) -> NodeId {
        NodeId::from_peer(&key.public().to_peer_id())
    }

    fn bundle_from(key: &Keypair, payload: &[u8]) -> Bundle {
        Bundle::new(NewBundle {
            source: Eid::for_peer(&key.public().to_peer_id(), "text").unwrap(),
            destination: Eid::for_peer(&key_peer(9), "text").unwrap(),
            created: CreationTimestamp {
                time: 800_000_000_000,
                seq: 1,
            },
            lifetime_ms: 3_600_000,
            priority: Priority::Normal,
            payload: payload.to_vec(),
        })
        .unwrap()
    }

    fn key_peer(seed: u8) -> PeerId {
        key(seed).public().to_peer_id()
    }

    #[test]
    fn a_signed_bundle_is_signed_after_a_round_trip_through_its_bytes() {
        let alice = key(1);
        let mut bundle = bundle_from(&alice, b"hello");
        assert_eq!(bundle.origin(), Origin::Forged, "unsigned, ferry source");
        bundle.sign(&alice).unwrap();
        assert_eq!(bundle.origin(), Origin::Signed);
        let again = Bundle::parse(&bundle.to_bytes()).unwrap();
        assert_eq!(again.origin(), Origin::Signed);
        assert_eq!(again.id(), bundle.id());
    }

    #[test]
    fn only_the_sources_key_signs() {
        let mut bundle = bundle_from(&key(1), b"hello");
        assert_eq!(
            bundle.sign(&key(2)),
            Err(crate::dtn::BundleError::Sign(SignError::WrongKey(node_of(
                &key(1)
            ))))
        );
        assert_eq!(bundle.origin(), Origin::Forged);
    }

    #[test]
    fn the_signature_block_is_the_documented_bytes() {
        let alice = key(1);
        let mut bundle = bundle_from(&alice, b"hello");
        bundle.sign(&alice).unwrap();
        let decoded = bp7::Bundle::try_from(bundle.to_bytes().as_slice()).unwrap();
        let block = decoded
            .canonicals
            .iter()
            .find(|b| b.block_type == BIB_BLOCK_TYPE)
            .expect("a BIB");
        assert_eq!(block.block_number, BIB_BLOCK_NUMBER);
        assert_eq!(block.block_control_flags, 0, "kept and forwarded by anyone");
        let bp7::CanonicalData::Unknown(data) = block.data() else {
            panic!("opaque data");
        };
        let ssp = format!("//{}/", alice.public().to_peer_id());
        let mut expected = vec![0x81, 0x01, 0x39, 0x46, 0x44, 0x00, 0x82, 0x01, 0x78];
        expected.push(ssp.len() as u8);
        expected.extend_from_slice(ssp.as_bytes());
        expected.extend_from_slice(&[0x81, 0x81, 0x82, 0x01, 0x58, 0x40]);
        assert_eq!(&data[..expected.len()], expected.as_slice());
        assert_eq!(data.len(), expected.len() + 64);
        // -17989 is what the CBOR says.
        assert_eq!(-1 - 0x4644, FERRY_ED25519_CONTEXT_ID);
    }

    #[test]
    fn a_bundle_from_other_dtn_software_is_unsigned_not_forged() {
        let bundle = Bundle::new(NewBundle {
            source: "dtn://node1/sender".parse().unwrap(),
            destination: "dtn://beta/x".parse().unwrap(),
            created: CreationTimestamp { time: 5, seq: 0 },
            lifetime_ms: 1_000,
            priority: Priority::Normal,
            payload: b"hi".to_vec(),
        })
        .unwrap();
        assert_eq!(bundle.origin(), Origin::Unsigned);
    }

    #[test]
    fn an_ack_is_valid_only_as_its_destination_signed_it() {
        let bob = key(3);
        let id = bundle_from(&key(1), b"x").id().clone();
        let ack = crate::dtn::Ack::signed(&bob, id.clone(), node_of(&bob), 1_000).unwrap();
        assert!(ack.verify());
        let later = crate::dtn::Ack {
            expires_at: 2_000,
            ..ack.clone()
        };
        assert!(!later.verify(), "the expiry is signed");
        let elsewhere = crate::dtn::Ack {
            destination: node_of(&key(4)),
            ..ack.clone()
        };
        assert!(
            !elsewhere.verify(),
            "signed by someone else than the destination"
        );
        let unsigned = crate::dtn::Ack {
            signature: None,
            ..ack.clone()
        };
        assert!(!unsigned.verify());
        let not_ferry = crate::dtn::Ack {
            destination: NodeId::dtn("node1").unwrap(),
            ..ack
        };
        assert!(!not_ferry.verify(), "a name that is no key signs nothing");
        assert!(crate::dtn::Ack::signed(&bob, id, node_of(&key(4)), 1_000).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any change to a signed bundle's bytes is refused as malformed or leaves it
        /// unsigned, unless it changes nothing the signature covers.
        #[test]
        fn a_tampered_bundle_is_not_signed(at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let alice = key(1);
            let mut bundle = bundle_from(&alice, b"pay bob 10 coins");
            bundle.sign(&alice).unwrap();
            let mut bytes = bundle.to_bytes();
            let i = at.index(bytes.len());
            bytes[i] ^= flip;
            if let Ok(parsed) = Bundle::parse(&bytes)
                && parsed.origin() == Origin::Signed
            {
                prop_assert_eq!(parsed.payload(), bundle.payload());
                prop_assert_eq!(parsed.id(), bundle.id());
                prop_assert_eq!(parsed.destination(), bundle.destination());
                prop_assert_eq!(parsed.lifetime_ms(), bundle.lifetime_ms());
            }
        }

        /// The signature block's decoder takes any bytes without panicking.
        #[test]
        fn the_bib_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_bib(&bytes);
        }
    }
}
