//! Memory for incoming bundles, shared by every TCPCL session of a node.
//!
//! Each session holds at most one transfer being reassembled (bounded by the
//! transfer MRU) and the whole bundles its owner has not yet settled. Without a
//! shared bound, a peer opening many sessions and starting a large transfer on
//! each would hold MRU × sessions bytes. With one, a transfer that would pass
//! the node's total is refused (XFER_REFUSE "no resources") and its bytes freed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A bound on the bytes of incoming transfers held across sessions.
#[derive(Debug)]
pub struct ReceiveBudget {
    limit: u64,
    used: AtomicU64,
}

impl ReceiveBudget {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(ReceiveBudget {
            limit,
            used: AtomicU64::new(0),
        })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    pub fn available(&self) -> u64 {
        self.limit.saturating_sub(self.used())
    }

    fn try_take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// The bytes one transfer holds of a [`ReceiveBudget`]; given back when dropped.
#[derive(Debug)]
pub(super) struct Reservation {
    budget: Arc<ReceiveBudget>,
    bytes: u64,
}

impl Reservation {
    pub(super) fn new(budget: Arc<ReceiveBudget>) -> Self {
        Reservation { budget, bytes: 0 }
    }

    /// Holds `bytes` more, if the budget has them.
    pub(super) fn try_grow(&mut self, bytes: u64) -> bool {
        let taken = self.budget.try_take(bytes);
        if taken {
            self.bytes += bytes;
        }
        taken
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_one_bound_and_give_back_on_drop() {
        let budget = ReceiveBudget::new(100);
        let mut a = Reservation::new(budget.clone());
        let mut b = Reservation::new(budget.clone());
        assert!(a.try_grow(60));
        assert!(!b.try_grow(41));
        assert!(b.try_grow(40));
        assert_eq!(budget.available(), 0);
        assert!(!a.try_grow(1));
        drop(a);
        assert_eq!(budget.used(), 40);
        assert!(b.try_grow(60));
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
