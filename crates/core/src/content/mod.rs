//! Content addressing: what identifies shared data, and how it is cut into
//! verifiable pieces.
//!
//! A blob's id is its BLAKE3 hash, so `b3sum` on any copy checks it. Data
//! moves in chunk groups of [`GROUP_BYTES`]: the smallest piece a peer can
//! send that is verified against the id on arrival (bao-tree with
//! `BlockSize::from_chunk_log(GROUP_CHUNK_LOG)`).
//!
//! A shared directory is a collection: a [`Manifest`] blob listing its files.
//! A [`Ticket`] is what people pass around to fetch either kind, and
//! [`Fetch`] schedules a download across several providers.

mod bitfield;
mod fetch;
mod id;
mod manifest;
mod ticket;

pub use bitfield::{Bitfield, BitfieldError, MAX_GROUPS};
pub use fetch::{Dropped, Failure, Fetch, FetchConfig, ProviderStats};
pub use id::{ContentId, ContentIdError};
pub use manifest::{
    Entry, EntryKind, MAX_COMPONENT_BYTES, MAX_ENTRIES, MAX_MANIFEST_BYTES, MAX_PATH_BYTES,
    Manifest, ManifestError, PathProblem, check_component,
};
pub use ticket::{ContentKind, MAX_TICKET_ADDRS, MAX_TICKET_CHARS, Ticket, TicketError};

/// log2 of the BLAKE3 chunks (1 KiB each) in a chunk group.
pub const GROUP_CHUNK_LOG: u8 = 4;
/// The bytes in one chunk group: 16 KiB.
pub const GROUP_BYTES: u64 = 1024 << GROUP_CHUNK_LOG;

/// The largest blob ferry stores or fetches (4 TiB): a size a peer claims
/// sizes bookkeeping (a bitfield of [`MAX_GROUPS`] groups at most), so it is
/// bounded before it is proven.
pub const MAX_BLOB_BYTES: u64 = 1 << 42;

/// How many chunk groups a blob of `size` bytes has. An empty blob has one
/// (empty) group, which carries the proof that it is empty.
pub const fn group_count(size: u64) -> u64 {
    match size.div_ceil(GROUP_BYTES) {
        0 => 1,
        groups => groups,
    }
}

/// The byte range `[start, end)` that groups `[first, last)` cover in a blob
/// of `size` bytes (saturating: a range past the end is empty at `size`).
pub fn group_bytes(first: u64, last: u64, size: u64) -> (u64, u64) {
    (
        first.saturating_mul(GROUP_BYTES).min(size),
        last.saturating_mul(GROUP_BYTES).min(size),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_arithmetic() {
        assert_eq!(GROUP_BYTES, 16_384);
        assert_eq!(group_count(0), 1);
        assert_eq!(group_count(1), 1);
        assert_eq!(group_count(16_384), 1);
        assert_eq!(group_count(16_385), 2);
        assert_eq!(group_bytes(1, 3, 40_000), (16_384, 40_000));
        assert_eq!(
            group_bytes(u64::MAX - 1, u64::MAX, 40_000),
            (40_000, 40_000)
        );
        assert_eq!(group_count(u64::MAX), u64::MAX.div_ceil(GROUP_BYTES));
        assert_eq!(MAX_GROUPS, 1 << 28);
    }
}
