//! Room for bundles: the free-space reserve before any bundle is written, the
//! inbox's own quota (bundles and bytes, [`StoreLimits`](crate::StoreLimits)),
//! and cleaning up after a write that failed.

use std::sync::MutexGuard;

use super::{INBOX, INLINE_MAX, Kind, Record, remove_quietly};
use crate::{Store, StoreError};

/// What the inbox holds, counted once and kept up to date by its writes.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct InboxUsage {
    bundles: u64,
    bytes: u64,
}

impl Store {
    /// Refuses bundles whose bytes would leave less than the reserve free.
    pub(super) fn ensure_bundle_room(
        &self,
        bundles: &[(&[u8], &super::BundleMeta)],
    ) -> Result<(), StoreError> {
        let bytes = bundles.iter().map(|(b, _)| b.len() as u64).sum();
        self.health.ensure_room("a DTN bundle", bytes)
    }

    /// Refuses deliveries that would take the inbox over its quota or leave less
    /// than the reserve free. `usage` is the cached count, loaded if needed.
    pub(super) fn ensure_inbox_room(
        &self,
        usage: &mut MutexGuard<'_, Option<InboxUsage>>,
        bundles: &[(&[u8], &super::BundleMeta)],
    ) -> Result<(), StoreError> {
        let adding = bundles.iter().map(|(b, _)| b.len() as u64).sum::<u64>();
        let now = match **usage {
            Some(now) => now,
            None => {
                let loaded = self.load_inbox_usage()?;
                **usage = Some(loaded);
                loaded
            }
        };
        let limits = &self.limits;
        if now.bundles.saturating_add(bundles.len() as u64) > limits.inbox_max_bundles
            || now.bytes.saturating_add(adding) > limits.inbox_max_bytes
        {
            return Err(StoreError::InboxFull {
                count: now.bundles,
                bytes: now.bytes,
                max_count: limits.inbox_max_bundles,
                max_bytes: limits.inbox_max_bytes,
            });
        }
        self.health
            .ensure_room("a DTN bundle for the inbox", adding)
    }

    /// Counts what the new deliveries (`new[i]` for `bundles[i]`) added.
    pub(super) fn count_delivered(
        usage: &mut MutexGuard<'_, Option<InboxUsage>>,
        bundles: &[(&[u8], &super::BundleMeta)],
        new: &[bool],
    ) {
        if let Some(usage) = usage.as_mut() {
            for ((bytes, _), _) in bundles.iter().zip(new).filter(|(_, new)| **new) {
                usage.bundles += 1;
                usage.bytes += bytes.len() as u64;
            }
        }
    }

    fn load_inbox_usage(&self) -> Result<InboxUsage, StoreError> {
        use redb::ReadableTable;
        let txn = self.read()?;
        let table = txn.open_table(INBOX)?;
        let mut usage = InboxUsage::default();
        for entry in table.iter()? {
            let (key, value) = entry?;
            let record = Record::decode(Kind::Inbox, key.value(), value.value())?;
            usage.bundles += 1;
            usage.bytes += record.len;
        }
        Ok(usage)
    }

    /// After a write of `bundles` failed (`error`): notes a file that could not be
    /// written for the storage's health, and deletes the files of those that no
    /// row names, so nothing written for the failed write is left behind or
    /// taken for stored. While the database cannot be read (a full disk may keep
    /// it from reopening), they are kept in a list and deleted by the next write
    /// once it can ([`Store::clean_unconfirmed`]), or by the next open.
    pub(super) fn after_failed_write(
        &self,
        kind: Kind,
        bundles: &[(&[u8], &super::BundleMeta)],
        error: &StoreError,
    ) {
        self.note_file_failure(error);
        let mut unconfirmed = self.bundles.unconfirmed();
        unconfirmed.extend(
            bundles
                .iter()
                .filter(|(bytes, _)| bytes.len() > INLINE_MAX)
                .map(|(_, meta)| (kind, meta.id.to_string())),
        );
        drop(unconfirmed);
        self.clean_unconfirmed();
    }

    /// Deletes the files of failed writes that no row names, keeping in the list
    /// those whose row cannot be read now.
    pub(super) fn clean_unconfirmed(&self) {
        let mut unconfirmed = self.bundles.unconfirmed();
        unconfirmed.retain(|(kind, key)| {
            let named = self
                .read()
                .and_then(|txn| Ok(txn.open_table(kind.rows())?.get(key.as_str())?.is_some()));
            match named {
                Ok(false) => {
                    remove_quietly(&self.bundles.path(*kind, key));
                    false
                }
                Ok(true) => false,
                Err(_) => true,
            }
        });
    }
}
