//! Serving: bao encodings of a blob's chunk groups, and small blobs read whole.
//!
//! Everything served is verified against the id as it is read
//! (`encode_ranges_validated`), so a file shared in place that was changed, or a
//! damaged copy, is caught before a byte of it leaves this node; the blob is then
//! marked stale and not served again.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use bao_tree::io::EncodeError;
use bao_tree::io::outboard::PostOrderOutboard;
use bao_tree::io::sync::encode_ranges_validated;
use ferry_core::content::{ContentId, group_bytes, group_count};

use super::files::{self, At, Stamp};
use super::{Meta, group_range, group_ranges, tree};
use crate::{Store, StoreError};

/// The most chunk groups encoded in one call (64 MiB of data), so a request
/// from a peer never makes this node build an unbounded response.
pub const MAX_ENCODE_GROUPS: u64 = 4096;

impl Store {
    /// The bao encoding of chunk groups `[first, last)` (clamped to the blob's
    /// size, at most [`MAX_ENCODE_GROUPS`]) of a blob that has them: a complete blob, or a partial one whose
    /// verified groups cover the range (a downloader is also a seeder). The
    /// encoding carries the hash pairs a receiver needs to verify the groups
    /// against the id.
    ///
    /// The data is verified as it is read. If it no longer matches (a file shared
    /// in place was changed, or the stored copy is damaged), the blob is marked
    /// stale and [`StoreError::BlobChanged`] or [`StoreError::BlobCorrupt`] is
    /// returned, now and for every later request.
    pub fn encode_groups(
        &self,
        id: &ContentId,
        first: u64,
        last: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let mut encoded = Vec::new();
        self.encode_groups_into(id, first, last, &mut encoded)?;
        Ok(encoded)
    }

    /// [`Store::encode_groups`], appending to `out`: a sender that reuses one
    /// buffer saves allocating (and faulting in) a fresh one per request. On an
    /// error `out` is left as it was.
    pub fn encode_groups_into(
        &self,
        id: &ContentId,
        first: u64,
        last: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let _guard = self.blobs.shared(id);
        let meta = self.meta(id)?.ok_or(StoreError::BlobNotFound(*id))?;
        let last = group_range(id, meta.size, first, last)?;
        if last - first > MAX_ENCODE_GROUPS {
            return Err(StoreError::RangeTooLarge {
                asked: last - first,
                max: MAX_ENCODE_GROUPS,
            });
        }
        if meta.stale {
            return Err(self.stale_error(id, &meta));
        }
        if !meta.complete {
            let have = self.have(id, &meta)?;
            if let Some(group) = (first..last).find(|&g| !have.get(g)) {
                return Err(StoreError::GroupsMissing { id: *id, group });
            }
        }
        let data = self.open_data(id, &meta)?;
        let outboard = files::open_read(&self.blobs.outboard_path(id))?;
        let (start, end) = group_bytes(first, last, meta.size);
        // Each group needs at most one hash pair, plus two per tree level above.
        let capacity = (end - start) + 64 * ((last - first) + 2 * 64);
        out.reserve(capacity as usize);
        let before = out.len();
        let outboard = PostOrderOutboard {
            root: (*id).into(),
            tree: tree(meta.size),
            data: At(&outboard),
        };
        let ranges = group_ranges(first, last);
        let encoded = encode_ranges_validated(At(&data), outboard, &ranges, &mut *out);
        if encoded.is_err() {
            out.truncate(before);
        }
        match encoded {
            Ok(()) => Ok(()),
            Err(EncodeError::Io(source)) if source.kind() != io::ErrorKind::UnexpectedEof => {
                Err(StoreError::BlobIo {
                    path: self.data_location(id, &meta),
                    source,
                })
            }
            // A hash mismatch, or a file shorter than recorded.
            Err(e) => Err(self.found_stale(id, &meta, &format!("{e}"))),
        }
    }

    /// The bytes of a complete blob of at most `max` bytes (a manifest, say),
    /// verified against its id.
    pub fn read_blob(&self, id: &ContentId, max: u64) -> Result<Vec<u8>, StoreError> {
        let _guard = self.blobs.shared(id);
        let meta = self.readable(id)?;
        if meta.size > max {
            return Err(StoreError::BlobOverLimit {
                id: *id,
                size: meta.size,
                max,
            });
        }
        let file = self.open_data(id, &meta)?;
        let mut bytes = Vec::with_capacity(meta.size as usize);
        file.take(meta.size + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| StoreError::BlobIo {
                path: self.data_location(id, &meta),
                source,
            })?;
        if ContentId::of(&bytes) != *id {
            return Err(self.found_stale(id, &meta, "its bytes do not hash to its id"));
        }
        Ok(bytes)
    }

    /// The row of a blob whose bytes can be read: stored, complete, not stale.
    pub(super) fn readable(&self, id: &ContentId) -> Result<Meta, StoreError> {
        let meta = self.meta(id)?.ok_or(StoreError::BlobNotFound(*id))?;
        if !meta.complete {
            let groups = group_count(meta.size);
            return Err(StoreError::BlobIncomplete {
                id: *id,
                verified: self.have(id, &meta)?.count(),
                groups,
            });
        }
        if meta.stale {
            return Err(self.stale_error(id, &meta));
        }
        Ok(meta)
    }

    /// Where a blob's bytes are: its file in the store, or the file shared in place.
    pub(super) fn data_location(&self, id: &ContentId, meta: &Meta) -> PathBuf {
        match &meta.in_place {
            Some(in_place) => in_place.path(),
            None => self.blobs.data_path(id),
        }
    }

    /// Opens a blob's bytes, after the cheap check that they still look as when
    /// hashed (a file shared in place: size, mtime and inode; a copy: size).
    pub(super) fn open_data(&self, id: &ContentId, meta: &Meta) -> Result<File, StoreError> {
        let path = self.data_location(id, meta);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if meta.in_place.is_some() && e.kind() == io::ErrorKind::NotFound => {
                return Err(self.found_stale(id, meta, "the file is gone"));
            }
            Err(source) => return Err(StoreError::BlobIo { path, source }),
        };
        let current = file.metadata().map_err(|source| StoreError::BlobIo {
            path: path.clone(),
            source,
        })?;
        let looks_same = match &meta.in_place {
            Some(in_place) => Stamp::of(&current) == in_place.stamp,
            None => current.len() == meta.size,
        };
        if !looks_same {
            return Err(self.found_stale(id, meta, "its size or modification time changed"));
        }
        Ok(file)
    }

    /// Marks a blob stale (only a complete one: a partial one keeps its
    /// download) and returns the error that says so.
    pub(super) fn found_stale(&self, id: &ContentId, meta: &Meta, detail: &str) -> StoreError {
        tracing::warn!(%id, detail, "blob data does not match its id");
        if meta.complete {
            self.mark_stale(id);
        }
        self.stale_error_detail(id, meta, detail)
    }

    fn stale_error(&self, id: &ContentId, meta: &Meta) -> StoreError {
        self.stale_error_detail(id, meta, "it no longer matches its id")
    }

    fn stale_error_detail(&self, id: &ContentId, meta: &Meta, detail: &str) -> StoreError {
        match &meta.in_place {
            Some(in_place) => StoreError::BlobChanged {
                id: *id,
                path: in_place.path(),
            },
            None => StoreError::BlobCorrupt {
                id: *id,
                detail: detail.to_owned(),
            },
        }
    }
}
