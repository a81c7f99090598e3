//! Requests that failed and are worth sending again a little later.
//!
//! A history request can fail for reasons that pass in a second: the connection
//! it went out on closed (a relayed path replaced by a direct one after a hole
//! punch), or the peer was busy and refused. Waiting for the periodic exchange
//! would leave a newcomer without a channel's history for up to a minute, so a
//! failed request is retried a few times, further apart each time, while the
//! peer stays connected.

use std::collections::HashMap;
use std::hash::Hash;

use crate::Millis;

/// Waits before each retry; after the last one, the periodic exchange takes over.
pub const RETRY_DELAYS_MS: [Millis; 3] = [1_000, 3_000, 9_000];

/// Failed requests waiting for their retry, by key (a peer and what was asked).
#[derive(Debug)]
pub struct Retries<K> {
    entries: HashMap<K, Entry>,
    max_keys: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failures so far.
    failures: usize,
    /// When to send again; `None` while the retry is out.
    due: Option<Millis>,
}

impl<K: Hash + Eq + Clone> Retries<K> {
    /// At most `max_keys` requests are tracked; a failure past that is not
    /// retried (the periodic exchange still covers it).
    pub fn new(max_keys: usize) -> Self {
        Self {
            entries: HashMap::new(),
            max_keys,
        }
    }

    /// `key`'s request failed at `now`: returns when it will be retried, or
    /// `None` when it has failed too often (or too much is tracked already).
    pub fn failed(&mut self, key: K, now: Millis) -> Option<Millis> {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.max_keys {
            return None;
        }
        let entry = self.entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            due: None,
        });
        match RETRY_DELAYS_MS.get(entry.failures) {
            Some(delay) => {
                entry.failures += 1;
                let due = now.saturating_add(*delay);
                entry.due = Some(due);
                Some(due)
            }
            None => {
                self.entries.remove(&key);
                None
            }
        }
    }

    /// `key`'s request was answered: nothing more to retry.
    pub fn succeeded(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Forgets every key `gone` matches (a peer that disconnected).
    pub fn forget(&mut self, gone: impl Fn(&K) -> bool) {
        self.entries.retain(|key, _| !gone(key));
    }

    /// The requests to send again now. Each stays tracked (its failures
    /// counted) until it succeeds, fails for good or is forgotten.
    pub fn due(&mut self, now: Millis) -> Vec<K> {
        let mut due = Vec::new();
        for (key, entry) in &mut self.entries {
            if entry.due.is_some_and(|at| at <= now) {
                entry.due = None;
                due.push(key.clone());
            }
        }
        due
    }

    /// How many requests are waiting for a retry or have one out.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no request is waiting for a retry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_request_is_retried_later_each_time_then_given_up() {
        let mut retries = Retries::new(8);
        let mut now = 0;
        for delay in RETRY_DELAYS_MS {
            assert_eq!(retries.failed("a", now), Some(now + delay));
            assert!(retries.due(now + delay - 1).is_empty());
            now += delay;
            assert_eq!(retries.due(now), vec!["a"]);
            // Out again: not due twice.
            assert!(retries.due(now + 100_000).is_empty());
        }
        assert_eq!(retries.failed("a", now), None);
        assert!(retries.is_empty());
    }

    #[test]
    fn success_and_disconnection_end_the_retries() {
        let mut retries = Retries::new(8);
        retries.failed(("peer1", "x"), 0);
        retries.failed(("peer1", "y"), 0);
        retries.failed(("peer2", "x"), 0);
        retries.succeeded(&("peer1", "x"));
        retries.forget(|(peer, _)| *peer == "peer2");
        assert_eq!(retries.due(RETRY_DELAYS_MS[0]), vec![("peer1", "y")]);
        // A success after a retry starts the count again.
        retries.succeeded(&("peer1", "y"));
        assert_eq!(retries.failed(("peer1", "y"), 0), Some(RETRY_DELAYS_MS[0]));
    }

    #[test]
    fn what_is_tracked_is_bounded() {
        let mut retries = Retries::new(2);
        assert!(retries.failed(1, 0).is_some());
        assert!(retries.failed(2, 0).is_some());
        assert_eq!(retries.failed(3, 0), None);
        assert_eq!(retries.len(), 2);
        // A key already tracked still counts its failures.
        assert_eq!(retries.failed(1, 0), Some(RETRY_DELAYS_MS[1]));
    }
}
