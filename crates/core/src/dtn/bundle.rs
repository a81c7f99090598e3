//! ferry's bundle: an RFC 9171 (Bundle Protocol version 7) bundle, encoded and decoded
//! by the bp7 crate, so the bytes are the ones dtn7-rs, ION and HDTN read.
//!
//! bp7 stays behind this module (it decodes with serde_cbor, which is unmaintained):
//! nothing outside `dtn::bundle` and `dtn::eid` names a bp7 type, so the codec can be
//! replaced without touching routing, the store or the network.
//!
//! # What ferry puts in a bundle
//! - a primary block with source `dtn://PEER_ID/SERVICE`, the destination, report-to
//!   = source, the creation timestamp (DTN time in ms + sequence number), the lifetime,
//!   and the flag "must not be fragmented" (ferry neither fragments nor reassembles);
//!   no status reports are requested: ferry's delivery acknowledgements travel in its
//!   contact summaries (see `dtn::routing`), not as administrative records.
//! - a **class-of-service block** (block type [`PRIORITY_BLOCK_TYPE`] = 200, in the
//!   range RFC 9171 §9.1 reserves for private and experimental use, away from the
//!   192–197 that ION uses): its data is one CBOR unsigned integer, 0 = bulk,
//!   1 = normal, 2 = expedited (BPv6's class-of-service values, which BPv7 dropped from
//!   the primary block). Its block flags are all clear, so a node that does not know it
//!   keeps it and forwards it unchanged (RFC 9171 §4.2.4), and the class survives a hop
//!   through dtnd. A bundle without it is normal.
//! - a bundle age block only when the creation time is 0 (a node without a clock), as
//!   RFC 9171 §4.2.2 requires.
//! - a **signature block** on every bundle a ferry node makes: an RFC 9172 Block
//!   Integrity Block with ferry's ed25519 security context (see `dtn::sign`), by the
//!   source node's key. [`Bundle::origin`] checks it.
//! - the payload block.
//! - CRC-32C on every block.
//!
//! # What ferry accepts
//! Input is hostile until checked: at most [`MAX_BUNDLE_BYTES`] bytes and
//! [`MAX_BLOCKS`] blocks; RFC 9171 validity as bp7 checks it (version 7, reserved flag
//! bits clear, valid endpoints, block numbers unique, payload block last, CRCs correct
//! where present); endpoints valid by ferry's rules (see `dtn::eid`); a source (not
//! `dtn:none`, since ferry identifies bundles by source and timestamp); a destination;
//! not a fragment. Missing CRCs are tolerated, because dtn7-rs's `dtnsend` makes bundles
//! with no CRC on any block, the primary included (RFC 9171 forbids that); ferry adds
//! CRC-32C when it re-encodes them. Every failure is a [`BundleError`] saying what was
//! wrong; nothing here panics on any input.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bp7::crc::CrcBlock as _;
use bp7::flags::{BlockControlFlags, BundleControlFlags};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::DtnMillis;
use super::eid::{Eid, EidError, MAX_EID_LEN, NodeId, canonical_u64};
use super::sign::{
    BIB_BLOCK_NUMBER, BIB_BLOCK_TYPE, SignError, bundle_digest, decode_bib, encode_bib,
    sign_bundle, verify_bundle,
};

/// Largest bundle accepted or built, in encoded bytes: 16 MiB.
///
/// Why this figure: a whole bundle is held in memory while it is checked (bp7 decodes
/// from a slice), so the limit bounds what one transfer from a hostile peer can cost;
/// 16 MiB is three times the 5 MiB file the DTN acceptance test sends, and leaves room
/// for a photo or a document. Larger content travels as shared content (BLAKE3-verified
/// blobs, resumable by range), which a bundle can point to.
pub const MAX_BUNDLE_BYTES: usize = 16 * 1024 * 1024;

/// Most blocks (primary excluded) accepted in one bundle. Real bundles have a handful
/// (payload, hop count, age, previous node, a few security blocks); the bound keeps a
/// bundle of thousands of empty blocks from costing a validation pass each.
pub const MAX_BLOCKS: usize = 64;

/// Block type of ferry's class-of-service block (RFC 9171 §9.1 private/experimental).
pub const PRIORITY_BLOCK_TYPE: u64 = 200;

const PRIORITY_BLOCK_NUMBER: u64 = 2;
const AGE_BLOCK_NUMBER: u64 = 3;

/// Class of service, lowest first: the eviction order drops bulk before normal before
/// expedited, and a contact sends expedited bundles first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Can wait: evicted first, sent last.
    Bulk,
    /// The default, and what a bundle without ferry's class-of-service block gets.
    #[default]
    Normal,
    /// Urgent: evicted last, sent first in a contact.
    Expedited,
}

impl Priority {
    /// The value carried in the class-of-service block.
    pub fn code(self) -> u8 {
        match self {
            Priority::Bulk => 0,
            Priority::Normal => 1,
            Priority::Expedited => 2,
        }
    }

    /// The priority a class-of-service block's value stands for; `None` for a value ferry
    /// does not know (the bundle then counts as normal).
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Priority::Bulk),
            1 => Some(Priority::Normal),
            2 => Some(Priority::Expedited),
            _ => None,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Priority::Bulk => "bulk",
            Priority::Normal => "normal",
            Priority::Expedited => "expedited",
        })
    }
}

/// A text that is not `bulk`, `normal` or `expedited`; carries it.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{0:?} is not a priority: expected bulk, normal or expedited")]
pub struct PriorityError(pub String);

impl FromStr for Priority {
    type Err = PriorityError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "bulk" => Ok(Priority::Bulk),
            "normal" => Ok(Priority::Normal),
            "expedited" => Ok(Priority::Expedited),
            _ => Err(PriorityError(text.to_owned())),
        }
    }
}

/// RFC 9171 creation timestamp: DTN time (ms since 2000-01-01 UTC, 0 = "this node has
/// no clock") and a sequence number that tells apart bundles made in the same ms.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct CreationTimestamp {
    /// DTN time of creation (ms since 2000-01-01 UTC); 0 when the source has no clock.
    pub time: DtnMillis,
    /// Tells apart bundles from one source created in the same ms.
    pub seq: u64,
}

/// Hands out unique, increasing creation timestamps from the caller's clock.
///
/// Two bundles from one source must never share a timestamp (that pair is their id),
/// even if the clock stands still or steps back: then the time is held and the sequence
/// number counts up. After a restart, [`CreationClock::resume_after`] the last
/// timestamp used (the store knows it) keeps that promise across runs.
#[derive(Debug, Clone, Default)]
pub struct CreationClock {
    last: Option<CreationTimestamp>,
}

impl CreationClock {
    /// A clock that has handed out nothing yet (a node's first run).
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock whose next timestamp comes after `last`, the newest one the store holds
    /// from an earlier run.
    pub fn resume_after(last: CreationTimestamp) -> Self {
        Self { last: Some(last) }
    }

    /// The next timestamp at DTN time `now`: `now` with sequence 0, or the last time with
    /// the next sequence number if the clock has not moved past it.
    pub fn next(&mut self, now: DtnMillis) -> CreationTimestamp {
        let ts = match self.last {
            Some(last) if now <= last.time => CreationTimestamp {
                time: last.time,
                seq: last.seq.saturating_add(1),
            },
            _ => CreationTimestamp { time: now, seq: 0 },
        };
        self.last = Some(ts);
        ts
    }
}

/// A bundle's identity: its source endpoint and creation timestamp (RFC 9171 §4.2.1;
/// ferry does not fragment, so no offset). Two copies of a bundle anywhere in the
/// network have the same id, which is what de-duplication and acknowledgements key on.
///
/// Its text form is `SOURCE-TIME-SEQ`, e.g. `dtn://node1/chat-712345678901-0`: the
/// form dtn7-rs's bp7 prints as a bundle id, so logs and ids line up across
/// implementations. It is stable (one spelling per id) and usable as a store key;
/// [`BundleId::digest_hex`] gives a short form for file names.
///
/// Cloning is cheap (one reference count): ids go into every summary and plan.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BundleId(Arc<IdParts>);

/// Copies of one id usually share their parts (clones of one `BundleId`), so the
/// pointers are compared first: the sorted walks of summaries and plans compare
/// mostly equal ids, and this spares reading their parts.
impl Ord for BundleId {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            std::cmp::Ordering::Equal
        } else {
            self.0.cmp(&other.0)
        }
    }
}

impl PartialOrd for BundleId {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord, Hash)]
struct IdParts {
    source: Eid,
    created: CreationTimestamp,
}

impl BundleId {
    /// The id of the bundle `source` created at `created`.
    pub fn new(source: Eid, created: CreationTimestamp) -> Self {
        Self(Arc::new(IdParts { source, created }))
    }

    /// The endpoint that created the bundle.
    pub fn source(&self) -> &Eid {
        &self.0.source
    }

    /// When the source created it, with its sequence number.
    pub fn created(&self) -> CreationTimestamp {
        self.0.created
    }

    /// 32 hex digits of the BLAKE3 hash of the text form: a fixed-length name with no
    /// `/` or `:`, for files (a sneakernet folder) and logs.
    pub fn digest_hex(&self) -> String {
        let hash = blake3::hash(self.to_string().as_bytes());
        hex::encode(&hash.as_bytes()[..16])
    }
}

impl fmt::Display for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{}",
            self.0.source, self.0.created.time, self.0.created.seq
        )
    }
}

impl fmt::Debug for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BundleId({self})")
    }
}

/// A text that is not `SOURCE-TIME-SEQ`; carries it.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{0:?} is not a bundle id: expected SOURCE-TIME-SEQ, e.g. dtn://node/svc-712345678901-0")]
pub struct BundleIdError(pub String);

impl FromStr for BundleId {
    type Err = BundleIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BundleIdError(text.to_owned());
        if text.len() > MAX_EID_LEN + 42 {
            return Err(bad());
        }
        // The numbers contain no '-', so split them off from the right; the source may
        // contain '-' itself.
        let mut parts = text.rsplitn(3, '-');
        let seq = parts.next().and_then(canonical_u64).ok_or_else(bad)?;
        let time = parts.next().and_then(canonical_u64).ok_or_else(bad)?;
        let source: Eid = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        Ok(Self::new(source, CreationTimestamp { time, seq }))
    }
}

impl TryFrom<String> for BundleId {
    type Error = BundleIdError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<BundleId> for String {
    fn from(id: BundleId) -> Self {
        id.to_string()
    }
}

/// Why bytes are not a bundle ferry accepts, or a bundle could not be built.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum BundleError {
    /// The bytes are over the limit ([`MAX_BUNDLE_BYTES`]); nothing was decoded.
    #[error("bundle of {size} bytes is over the {max}-byte limit")]
    TooLarge {
        /// The bytes given.
        size: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The bytes are not a CBOR BPv7 bundle; carries the decoder's complaint.
    #[error("not a CBOR-encoded BPv7 bundle: {0}")]
    Malformed(String),
    /// The bundle decodes but fails RFC 9171's rules as bp7 checks them; carries the
    /// reasons.
    #[error("bundle breaks RFC 9171: {0}")]
    Invalid(String),
    /// More blocks than [`MAX_BLOCKS`].
    #[error("bundle has {count} blocks, more than the {max} accepted")]
    TooManyBlocks {
        /// Blocks in the bundle, primary excluded.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The bundle is a fragment; ferry neither makes nor reassembles fragments.
    #[error("bundle is a fragment; ferry does not reassemble fragments")]
    Fragment,
    /// The source is `dtn:none`, so the bundle has no id ferry can key on.
    #[error("bundle has no source (dtn:none); ferry identifies bundles by source")]
    Anonymous,
    /// The destination is `dtn:none`: there is nowhere to deliver it.
    #[error("bundle has no destination (dtn:none)")]
    NoDestination,
    /// An endpoint in the primary block is not one ferry can parse.
    #[error("bundle's {field} endpoint is not valid: {error}")]
    BadEndpoint {
        /// Which endpoint: `source`, `destination` or `report-to`.
        field: &'static str,
        /// What is wrong with it.
        error: EidError,
    },
    /// Forwarding would take the hop count past its limit; the bundle stays where it is.
    #[error("bundle's hop limit is reached; it may not be forwarded again")]
    HopLimitExceeded,
    /// Signing the bundle failed (local key trouble, never a peer's doing).
    #[error("cannot sign the bundle: {0}")]
    Sign(#[from] SignError),
}

/// Whether a bundle's source vouches for it ([`Bundle::origin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Its source is a ferry node, and the bundle carries that node's valid signature.
    Signed,
    /// Its source names a ferry node, but no valid signature by that node is there:
    /// forged (or damaged on the way). Never taken as that node's word.
    Forged,
    /// Its source is not a ferry node (other DTN software): there is no key to check.
    Unsigned,
}

/// What [`Bundle::new`] builds a bundle from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBundle {
    /// `dtn://PEER_ID/SERVICE` of the sending application.
    pub source: Eid,
    /// Where it is to be delivered; must name a node (not `dtn:none`).
    pub destination: Eid,
    /// From a [`CreationClock`]; time 0 means "no clock" and adds a bundle age block.
    pub created: CreationTimestamp,
    /// How long after creation it may live, in ms; after that every node drops it.
    pub lifetime_ms: u64,
    /// Its class of service, carried in ferry's class-of-service block.
    pub priority: Priority,
    /// The application's bytes, carried as-is.
    pub payload: Vec<u8>,
}

/// A checked RFC 9171 bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    inner: bp7::Bundle,
    id: BundleId,
    destination: Eid,
    /// The destination's node; a bundle always has one (dtn:none is refused).
    destination_node: NodeId,
    report_to: Eid,
    priority: Priority,
}

impl Bundle {
    /// Builds a bundle; refuses one whose encoding would exceed [`MAX_BUNDLE_BYTES`]
    /// (no node, ferry included, would accept it).
    pub fn new(spec: NewBundle) -> Result<Self, BundleError> {
        if spec.source.is_none() {
            return Err(BundleError::Anonymous);
        }
        let Some(destination_node) = spec.destination.node_id() else {
            return Err(BundleError::NoDestination);
        };
        // Cheap early refusal before the payload is copied into blocks.
        if spec.payload.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                size: spec.payload.len(),
                max: MAX_BUNDLE_BYTES,
            });
        }
        let primary = bp7::primary::PrimaryBlockBuilder::default()
            .bundle_control_flags(BundleControlFlags::BUNDLE_MUST_NOT_FRAGMENTED.bits())
            .destination(spec.destination.to_bp7())
            .source(spec.source.to_bp7())
            .report_to(spec.source.to_bp7())
            .creation_timestamp(bp7::CreationTimestamp::with_time_and_seq(
                spec.created.time,
                spec.created.seq,
            ))
            .lifetime(Duration::from_millis(spec.lifetime_ms))
            .build()
            .map_err(|e| BundleError::Invalid(e.to_string()))?;
        let mut canonicals = vec![priority_block(spec.priority)];
        if spec.created.time == 0 {
            canonicals.push(bp7::new_bundle_age_block(
                AGE_BLOCK_NUMBER,
                BlockControlFlags::empty(),
                0,
            ));
        }
        canonicals.push(bp7::new_payload_block(
            BlockControlFlags::empty(),
            spec.payload,
        ));
        let mut inner = bp7::Bundle::new(primary, canonicals);
        inner.sort_canonicals();
        inner.set_crc(bp7::crc::CRC_32);
        let bundle = Self {
            id: BundleId::new(spec.source.clone(), spec.created),
            destination: spec.destination,
            destination_node,
            report_to: spec.source,
            priority: spec.priority,
            inner,
        };
        let size = bundle.to_bytes().len();
        if size > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                size,
                max: MAX_BUNDLE_BYTES,
            });
        }
        Ok(bundle)
    }

    /// Adds the source's signature block (see `dtn::sign`); `keypair` must be the key
    /// of the source's node. Refused if the bundle would then be over the size limit.
    pub fn sign(&mut self, keypair: &libp2p_identity::Keypair) -> Result<(), BundleError> {
        let source = self.source().node_id().ok_or(BundleError::Anonymous)?;
        let signature = sign_bundle(keypair, &source, &self.digest())?;
        self.inner
            .canonicals
            .retain(|b| b.block_type != BIB_BLOCK_TYPE);
        let block = bp7::CanonicalBlockBuilder::default()
            .block_type(BIB_BLOCK_TYPE)
            .block_number(BIB_BLOCK_NUMBER)
            .block_control_flags(0)
            .data(bp7::CanonicalData::Unknown(encode_bib(&source, &signature)))
            .build()
            .map_err(|e| BundleError::Invalid(e.to_string()))?;
        self.inner.canonicals.push(block);
        self.inner.sort_canonicals();
        self.inner.set_crc(bp7::crc::CRC_32);
        let size = self.to_bytes().len();
        if size > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                size,
                max: MAX_BUNDLE_BYTES,
            });
        }
        Ok(())
    }

    /// Whether the source vouches for this bundle: a ferry source must have signed it
    /// (CPU work: a BLAKE3 pass over the payload and an ed25519 check).
    pub fn origin(&self) -> Origin {
        let Some(source) = self.source().node_id().filter(|n| n.peer_id().is_some()) else {
            return Origin::Unsigned;
        };
        let claimed = source.to_string();
        let digest = self.digest();
        let signed = self
            .inner
            .canonicals
            .iter()
            .filter(|b| b.block_type == BIB_BLOCK_TYPE)
            .filter_map(|b| match b.data() {
                bp7::CanonicalData::Unknown(data) => decode_bib(data),
                _ => None,
            })
            .any(|(signer, sig)| signer == claimed && verify_bundle(&source, &digest, &sig));
        if signed {
            Origin::Signed
        } else {
            Origin::Forged
        }
    }

    fn digest(&self) -> [u8; 32] {
        bundle_digest(
            self.source(),
            &self.destination,
            self.created(),
            self.lifetime_ms(),
            self.payload(),
        )
    }

    /// Decodes and checks bytes from anywhere (a peer, a TCPCL session, a folder).
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                size: bytes.len(),
                max: MAX_BUNDLE_BYTES,
            });
        }
        // bp7 was fuzzed without a crash, but a decoder bug must cost one bundle, not
        // the node: a panic inside it becomes an error like any other bad input.
        let decoded = catch_unwind(AssertUnwindSafe(|| bp7::Bundle::try_from(bytes)))
            .map_err(|_| BundleError::Malformed("the decoder failed on this input".into()))?;
        let mut inner = decoded.map_err(|e| BundleError::Malformed(describe(&e)))?;
        if inner.canonicals.len() > MAX_BLOCKS {
            return Err(BundleError::TooManyBlocks {
                count: inner.canonicals.len(),
                max: MAX_BLOCKS,
            });
        }
        if inner.primary.has_fragmentation() {
            return Err(BundleError::Fragment);
        }
        let valid = catch_unwind(AssertUnwindSafe(|| inner.validate()))
            .map_err(|_| BundleError::Invalid("the validator failed on this input".into()))?;
        if let Err(errors) = valid {
            let reasons: Vec<String> = errors.iter().map(describe).collect();
            return Err(BundleError::Invalid(reasons.join("; ")));
        }
        let endpoint = |field: &'static str, eid: &bp7::EndpointID| {
            Eid::from_bp7(eid).map_err(|error| BundleError::BadEndpoint { field, error })
        };
        let source = endpoint("source", &inner.primary.source)?;
        let destination = endpoint("destination", &inner.primary.destination)?;
        let report_to = endpoint("report-to", &inner.primary.report_to)?;
        if source.is_none() {
            return Err(BundleError::Anonymous);
        }
        let Some(destination_node) = destination.node_id() else {
            return Err(BundleError::NoDestination);
        };
        let created = CreationTimestamp {
            time: inner.primary.creation_timestamp.dtntime(),
            seq: inner.primary.creation_timestamp.seqno(),
        };
        let priority = inner
            .canonicals
            .iter()
            .find(|b| b.block_type == PRIORITY_BLOCK_TYPE)
            .and_then(|b| match b.data() {
                bp7::CanonicalData::Unknown(data) => match data.as_slice() {
                    // A CBOR unsigned integer below 24 is that one byte.
                    [code] => Priority::from_code(*code),
                    _ => None,
                },
                _ => None,
            })
            // Someone else's private block 200, or garbage in ours: normal priority.
            .unwrap_or_default();
        // ferry re-encodes with CRC-32C on every block, whatever came in.
        inner.set_crc(bp7::crc::CRC_32);
        Ok(Self {
            id: BundleId::new(source, created),
            destination,
            destination_node,
            report_to,
            priority,
            inner,
        })
    }

    /// The RFC 9171 encoding (an indefinite-length CBOR array of blocks) with CRC-32C on
    /// every block.
    pub fn to_bytes(&self) -> Vec<u8> {
        // bp7 writes the CRC values into the blocks as it encodes, hence the copy.
        self.inner.clone().to_cbor()
    }

    /// The bundle's id: its source and creation timestamp.
    pub fn id(&self) -> &BundleId {
        &self.id
    }

    /// The endpoint that created the bundle (as it claims: see [`Bundle::origin`] for
    /// whether it is vouched for).
    pub fn source(&self) -> &Eid {
        self.id.source()
    }

    /// The endpoint the bundle is for.
    pub fn destination(&self) -> &Eid {
        &self.destination
    }

    /// The node the destination endpoint lives on.
    pub fn destination_node(&self) -> &NodeId {
        &self.destination_node
    }

    /// Where status reports about the bundle go, as the primary block says (ferry sets it
    /// to the source).
    pub fn report_to(&self) -> &Eid {
        &self.report_to
    }

    /// When the source created it.
    pub fn created(&self) -> CreationTimestamp {
        self.id.created()
    }

    /// The lifetime from the primary block, in ms after creation.
    pub fn lifetime_ms(&self) -> u64 {
        u64::try_from(self.inner.primary.lifetime.as_millis()).unwrap_or(u64::MAX)
    }

    /// Its class of service (normal when the bundle has no valid class-of-service block).
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// The payload block's bytes; empty if there is none.
    pub fn payload(&self) -> &[u8] {
        self.inner.payload().map_or(&[], |p| p.as_slice())
    }

    /// Whether the payload is an administrative record (e.g. a status report from
    /// dtnd), which is for the bundle agent, not an application.
    pub fn is_admin_record(&self) -> bool {
        self.inner.is_administrative_record()
    }

    /// The bundle age block's value (ms), if the bundle carries one.
    pub fn age_ms(&self) -> Option<u64> {
        self.inner
            .extension_block_by_type(bp7::BUNDLE_AGE_BLOCK)
            .and_then(|b| b.bundle_age_get())
            .map(|age| u64::try_from(age).unwrap_or(u64::MAX))
    }

    /// `(limit, count)` from the hop count block, if the bundle carries one.
    pub fn hop_count(&self) -> Option<(u8, u8)> {
        self.inner
            .extension_block_by_type(bp7::HOP_COUNT_BLOCK)
            .and_then(|b| b.hop_count_get())
    }

    /// When the bundle's lifetime ends, in DTN ms. With a creation time that is the
    /// creation time plus the lifetime, wherever the bundle is. A bundle from a node
    /// without a clock (creation time 0) has only its age: it ends its lifetime minus
    /// that age after `received_at`, the time this node got it.
    pub fn expires_at(&self, received_at: DtnMillis) -> DtnMillis {
        let lifetime = self.lifetime_ms();
        match self.created().time {
            0 => received_at.saturating_add(lifetime.saturating_sub(self.age_ms().unwrap_or(0))),
            created => created.saturating_add(lifetime),
        }
    }

    /// Whether the lifetime is over at `now` (DTN ms). For a bundle with creation time
    /// 0 this compares the carried age with the lifetime, as received.
    pub fn is_expired(&self, now: DtnMillis) -> bool {
        now >= self.expires_at(now)
    }

    /// Updates the extension blocks a forwarding node must update (RFC 9171 §4.4):
    /// the hop count goes up by one (refused past its limit), the bundle age grows by
    /// the time the bundle spent here, and the previous node becomes this node (added
    /// if absent, unless this node is the source). Call it on the copy being sent.
    pub fn prepare_forward(
        &mut self,
        local: &NodeId,
        residence_ms: u64,
    ) -> Result<(), BundleError> {
        if let Some(block) = self.inner.extension_block_by_type_mut(bp7::HOP_COUNT_BLOCK) {
            let at_max = matches!(block.hop_count_get(), Some((_, u8::MAX)));
            block.hop_count_increase();
            if at_max || block.hop_count_exceeded() {
                return Err(BundleError::HopLimitExceeded);
            }
        }
        if let Some(block) = self
            .inner
            .extension_block_by_type_mut(bp7::BUNDLE_AGE_BLOCK)
            && let Some(age) = block.bundle_age_get()
        {
            block.bundle_age_update(age.saturating_add(u128::from(residence_ms)));
        }
        let me = local.as_eid().to_bp7();
        if let Some(block) = self
            .inner
            .extension_block_by_type_mut(bp7::PREVIOUS_NODE_BLOCK)
        {
            block.previous_node_update(me);
        } else if self.source().node_id().as_ref() != Some(local) {
            let mut block = bp7::new_previous_node_block(0, BlockControlFlags::empty(), me);
            block.set_crc_type(bp7::crc::CRC_32);
            self.inner.add_canonical_block(block);
        }
        Ok(())
    }

    /// The routing and storage summary of this bundle. `size` is its stored size in
    /// bytes; `own` whether this node made it (only the node knows: a source is
    /// only a claim); `received_from` the peer it came from (`None` for the node's
    /// own bundles and for imports from a folder).
    pub fn meta(
        &self,
        size: u64,
        own: bool,
        received_from: Option<NodeId>,
        received_at: DtnMillis,
    ) -> BundleMeta {
        BundleMeta {
            id: self.id.clone(),
            destination: self.destination_node.clone(),
            size,
            priority: self.priority,
            expires_at: self.expires_at(received_at),
            own,
            received_from,
        }
    }
}

/// What routing and the eviction policy need to know about a stored bundle, without
/// its payload. The store keeps it beside the bytes; the simulator keeps only this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleMeta {
    /// The bundle's id.
    pub id: BundleId,
    /// The destination's node: routing is per node.
    pub destination: NodeId,
    /// Stored size in bytes.
    pub size: u64,
    /// Its class of service, which orders eviction.
    pub priority: Priority,
    /// End of the lifetime, DTN ms.
    pub expires_at: DtnMillis,
    /// Made by this node (created by it, not merely naming it as source): never
    /// evicted, and its creation time advances the node's creation clock.
    pub own: bool,
    /// The peer that handed it over; `None` for own bundles and folder imports.
    pub received_from: Option<NodeId>,
}

impl BundleMeta {
    /// Whether its lifetime is over at DTN time `now`.
    pub fn is_expired(&self, now: DtnMillis) -> bool {
        now >= self.expires_at
    }

    /// The same bundle as a node holds it after receiving it from `from` (for the
    /// simulator, which moves metadata instead of bytes). A received copy is never
    /// the receiver's own, whatever its source says.
    pub fn relayed(&self, from: &NodeId) -> BundleMeta {
        BundleMeta {
            own: false,
            received_from: Some(from.clone()),
            ..self.clone()
        }
    }
}

fn priority_block(priority: Priority) -> bp7::CanonicalBlock {
    bp7::CanonicalBlockBuilder::default()
        .block_type(PRIORITY_BLOCK_TYPE)
        .block_number(PRIORITY_BLOCK_NUMBER)
        .block_control_flags(0)
        .data(bp7::CanonicalData::Unknown(vec![priority.code()]))
        .build()
        .expect("data is set")
}

/// bp7's errors print as Debug; say what they mean instead.
fn describe(error: &bp7::error::Error) -> String {
    use bp7::error::Error as E;
    match error {
        E::CborDecodeError(e) => e.to_string(),
        E::JsonDecodeError(e) => e.to_string(),
        E::EIDError(e) => format!("endpoint: {e}"),
        E::CanonicalBlockError(s)
        | E::PrimaryBlockError(s)
        | E::DtnTimeError(s)
        | E::CrcError(s)
        | E::BundleError(s)
        | E::BundleControlFlagsError(s)
        | E::BlockControlFlagsError(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests;
