//! The wire messages of `/ferry/blob/1`, the protocol that moves content:
//! "what do you have of this blob", and "send me these chunk groups".
//!
//! Everything a provider says is checked by the receiver: the size it claims
//! is proven by the encoding of the last group, and every group is verified
//! against the content id before it is stored.

use serde::{Deserialize, Serialize};

use crate::content::{Bitfield, ContentId, ContentKind, GROUP_BYTES, group_count};

/// The libp2p protocol name of blob transfer.
pub const PROTOCOL: &str = "/ferry/blob/1";

/// The most groups one request may ask for (4 MiB): it bounds the memory a
/// request costs both sides.
pub const MAX_GROUPS_PER_REQUEST: u64 = 256;

/// The largest request on the wire.
pub const MAX_REQUEST_BYTES: usize = 1024;

/// The largest response on the wire: a full request's data, its hash-tree
/// nodes (64 bytes per 16 KiB group, plus the path from the root), and room
/// for a large blob's bitfield in a `Have` answer.
pub const MAX_RESPONSE_BYTES: usize = (MAX_GROUPS_PER_REQUEST * GROUP_BYTES) as usize * 2;

/// What a peer asks a provider over [`PROTOCOL`]; checked with [`BlobRequest::check`]
/// before it is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobRequest {
    /// Which groups of `id` do you have?
    Have {
        /// The blob asked about.
        id: ContentId,
    },
    /// The bao encoding of groups `[first, last)` of `id`.
    Groups {
        /// The blob asked for.
        id: ContentId,
        /// The first group wanted.
        first: u64,
        /// One past the last group wanted; at most [`MAX_GROUPS_PER_REQUEST`] after
        /// `first`.
        last: u64,
    },
}

/// A provider's answer to a [`BlobRequest`]; from a peer, so checked before use (see
/// [`check_have`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobResponse {
    /// The answer to [`BlobRequest::Have`].
    Have {
        /// The blob's size in bytes, as the provider claims it; checked against a limit
        /// before anything is sized by it.
        size: u64,
        /// A file, or a collection's manifest: lets `ferry get ID` work
        /// without a ticket.
        kind: ContentKind,
        /// `None`: all of it.
        groups: Option<Bitfield>,
    },
    /// The answer to [`BlobRequest::Groups`].
    Groups {
        /// The encoded groups: parent hashes and data, verifiable against the id.
        /// Encoded as one byte string, not a sequence of numbers: this is the
        /// bulk of every transfer.
        #[serde(with = "serde_bytes")]
        encoded: Vec<u8>,
    },
    /// The provider does not have this blob.
    NotFound,
    /// Too many requests in flight from you; try later or elsewhere.
    Busy,
    /// The request broke a limit (see [`BlobRequest::check`]).
    Refused {
        /// Which limit, for the asker's log.
        reason: String,
    },
}

impl BlobRequest {
    /// Checks a request from a peer against the limits; the text says which.
    pub fn check(&self) -> Result<(), String> {
        match self {
            BlobRequest::Have { .. } => Ok(()),
            BlobRequest::Groups { first, last, .. } if last <= first => {
                Err(format!("empty group range {first}..{last}"))
            }
            BlobRequest::Groups { first, last, .. } if last - first > MAX_GROUPS_PER_REQUEST => {
                Err(format!(
                    "{} groups asked; at most {MAX_GROUPS_PER_REQUEST} per request",
                    last - first
                ))
            }
            BlobRequest::Groups { .. } => Ok(()),
        }
    }
}

/// Why a provider's `Have` answer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HaveError {
    /// The claimed size is over the asker's limit.
    #[error("it claims a size of {size} bytes, over the {max}-byte limit")]
    TooLarge {
        /// The claimed size in bytes.
        size: u64,
        /// The asker's limit in bytes.
        max: u64,
    },
    /// The bitfield's group count does not match the claimed size.
    #[error("its bitfield has {groups} groups, but a blob of {size} bytes has {expected}")]
    WrongGroups {
        /// The claimed size in bytes.
        size: u64,
        /// The bitfield's group count.
        groups: u64,
        /// The group count a blob of that size has.
        expected: u64,
    },
}

/// Checks a provider's answer to `Have` before anything is sized by it: the
/// size within `max_size`, the bitfield (already consistent in itself, see
/// [`Bitfield`]) one of that size's group count.
pub fn check_have(size: u64, groups: Option<&Bitfield>, max_size: u64) -> Result<(), HaveError> {
    if size > max_size {
        return Err(HaveError::TooLarge {
            size,
            max: max_size,
        });
    }
    let expected = group_count(size);
    match groups {
        Some(field) if field.groups() != expected => Err(HaveError::WrongGroups {
            size,
            groups: field.groups(),
            expected,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked() {
        let id = ContentId::of(b"x");
        assert!(BlobRequest::Have { id }.check().is_ok());
        assert!(
            BlobRequest::Groups {
                id,
                first: 0,
                last: 256
            }
            .check()
            .is_ok()
        );
        assert!(
            BlobRequest::Groups {
                id,
                first: 5,
                last: 5
            }
            .check()
            .is_err()
        );
        assert!(
            BlobRequest::Groups {
                id,
                first: 0,
                last: 257
            }
            .check()
            .is_err()
        );
    }

    #[test]
    fn have_claims_are_checked() {
        let field = |groups| Bitfield::new(groups).unwrap();
        assert!(check_have(40_000, Some(&field(3)), 1 << 20).is_ok());
        assert!(check_have(40_000, None, 1 << 20).is_ok());
        assert!(check_have(0, Some(&field(1)), 1 << 20).is_ok());
        assert!(matches!(
            check_have(40_000, Some(&field(2)), 1 << 20),
            Err(HaveError::WrongGroups { .. })
        ));
        assert!(matches!(
            check_have(u64::MAX, None, 1 << 20),
            Err(HaveError::TooLarge { .. })
        ));
    }
}
