//! Token buckets and log limiters, driven by a caller-supplied clock.

use std::collections::HashMap;
use std::hash::Hash;

use crate::Millis;

/// A classic token bucket: `capacity` tokens, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_ms: f64,
    tokens: f64,
    updated: Millis,
}

impl TokenBucket {
    /// A full bucket at time `now`.
    pub fn new(capacity: u32, per_second: f64, now: Millis) -> Self {
        Self {
            capacity: f64::from(capacity),
            per_ms: per_second / 1000.0,
            tokens: f64::from(capacity),
            updated: now,
        }
    }

    /// Takes one token if there is one. A clock that goes backwards refills nothing.
    pub fn try_take(&mut self, now: Millis) -> bool {
        let elapsed = now.saturating_sub(self.updated);
        self.updated = self.updated.max(now);
        self.tokens = (self.tokens + elapsed as f64 * self.per_ms).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One token bucket per key (a sender address, a peer), with a bound on how many
/// keys are tracked so that a flood of distinct keys cannot grow memory without
/// limit: when full, the least recently used key is forgotten.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    capacity: u32,
    per_second: f64,
    max_keys: usize,
    buckets: HashMap<K, TokenBucket>,
}

impl<K: Eq + Hash + Clone> KeyedLimiter<K> {
    /// A limiter allowing bursts of `capacity` actions per key, refilled at `per_second`
    /// tokens a second, tracking at most `max_keys` keys.
    ///
    /// Panics if `max_keys` is 0 (a configuration mistake, never a peer's doing).
    pub fn new(capacity: u32, per_second: f64, max_keys: usize) -> Self {
        assert!(max_keys > 0, "a limiter must track at least one key");
        Self {
            capacity,
            per_second,
            max_keys,
            buckets: HashMap::new(),
        }
    }

    /// Whether `key` may act now (and if so, charges it one token).
    pub fn allow(&mut self, key: &K, now: Millis) -> bool {
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.max_keys {
            self.forget_stalest();
        }
        self.buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new(self.capacity, self.per_second, now))
            .try_take(now)
    }

    fn forget_stalest(&mut self) {
        if let Some(stalest) = self
            .buckets
            .iter()
            .min_by_key(|(_, bucket)| bucket.updated)
            .map(|(key, _)| key.clone())
        {
            self.buckets.remove(&stalest);
        }
    }

    /// How many keys have a bucket now (at most `max_keys`).
    pub fn tracked_keys(&self) -> usize {
        self.buckets.len()
    }
}

/// Keeps a repeated warning about one key (a peer, an address) from filling the
/// log: the first occurrence is logged, then at most one per interval; those in
/// between are counted and reported with the next one logged. At most `max_keys`
/// keys are remembered (the stalest forgotten first), so a flood of distinct keys
/// cannot grow memory without limit.
#[derive(Debug)]
pub struct LogLimiter<K> {
    interval_ms: Millis,
    max_keys: usize,
    /// When each key was last logged, and how many occurrences went unlogged since.
    keys: HashMap<K, (Millis, u64)>,
}

impl<K: Eq + Hash + Clone> LogLimiter<K> {
    /// A limiter logging each key at most once per `interval_ms` (ms), remembering at
    /// most `max_keys` keys.
    ///
    /// Panics if `max_keys` is 0 (a configuration mistake, never a peer's doing).
    pub fn new(interval_ms: Millis, max_keys: usize) -> Self {
        assert!(max_keys > 0, "a log limiter must track at least one key");
        Self {
            interval_ms,
            max_keys,
            keys: HashMap::new(),
        }
    }

    /// `Some(n)` when this occurrence is to be logged, `n` being how many were
    /// kept quiet since the last one logged; `None` when it is to stay quiet.
    pub fn check(&mut self, key: &K, now: Millis) -> Option<u64> {
        if let Some((logged, quiet)) = self.keys.get_mut(key) {
            if now.saturating_sub(*logged) < self.interval_ms {
                *quiet = quiet.saturating_add(1);
                return None;
            }
            *logged = now;
            return Some(std::mem::take(quiet));
        }
        if self.keys.len() >= self.max_keys
            && let Some(stalest) = self
                .keys
                .iter()
                .min_by_key(|(_, (logged, _))| *logged)
                .map(|(key, _)| key.clone())
        {
            self.keys.remove(&stalest);
        }
        self.keys.insert(key.clone(), (now, 0));
        Some(0)
    }
}

/// A suffix for a line [`LogLimiter::check`] let through, saying how many like it
/// were kept quiet, if any.
pub fn quiet_note(quiet: u64) -> String {
    match quiet {
        0 => String::new(),
        n => format!(" ({n} more since the last report)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let mut bucket = TokenBucket::new(3, 1.0, 0);
        assert!(bucket.try_take(0));
        assert!(bucket.try_take(0));
        assert!(bucket.try_take(0));
        assert!(!bucket.try_take(0));
        assert!(!bucket.try_take(500));
        assert!(bucket.try_take(1000));
        assert!(!bucket.try_take(1000));
    }

    #[test]
    fn clock_going_backwards_grants_nothing() {
        let mut bucket = TokenBucket::new(1, 1.0, 10_000);
        assert!(bucket.try_take(10_000));
        assert!(!bucket.try_take(0));
        assert!(!bucket.try_take(10_500));
        assert!(bucket.try_take(11_000));
    }

    #[test]
    fn keyed_limiter_is_per_key_and_bounded() {
        let mut limiter = KeyedLimiter::new(1, 0.1, 2);
        assert!(limiter.allow(&"a", 0));
        assert!(!limiter.allow(&"a", 1));
        assert!(limiter.allow(&"b", 2));
        assert!(limiter.allow(&"c", 3));
        assert_eq!(limiter.tracked_keys(), 2);
    }

    #[test]
    fn log_limiter_logs_first_then_once_per_interval_counting_the_rest() {
        let mut log = LogLimiter::new(10_000, 8);
        assert_eq!(log.check(&"a", 0), Some(0));
        assert_eq!(log.check(&"a", 1), None);
        assert_eq!(log.check(&"a", 9_999), None);
        assert_eq!(log.check(&"b", 5), Some(0), "keys are independent");
        assert_eq!(log.check(&"a", 10_000), Some(2));
        assert_eq!(log.check(&"a", 10_001), None);
        assert_eq!(quiet_note(0), "");
        assert!(quiet_note(3).contains("3 more"));
    }

    #[test]
    fn log_limiter_forgets_the_stalest_key_when_full() {
        let mut log = LogLimiter::new(10_000, 2);
        assert_eq!(log.check(&"a", 0), Some(0));
        assert_eq!(log.check(&"b", 1), Some(0));
        assert_eq!(log.check(&"c", 2), Some(0));
        assert_eq!(log.keys.len(), 2);
        assert_eq!(log.check(&"b", 3), None, "b is still remembered");
        assert_eq!(log.check(&"a", 4), Some(0), "a was forgotten");
    }

    proptest! {
        /// Over any window, a bucket never grants more than its burst plus what
        /// the refill rate allows.
        #[test]
        fn never_exceeds_rate(capacity in 1u32..20, rate in 0.1f64..50.0,
                              mut times in proptest::collection::vec(0u64..100_000, 1..400)) {
            times.sort_unstable();
            let start = times[0];
            let mut bucket = TokenBucket::new(capacity, rate, start);
            let granted = times.iter().filter(|&&t| bucket.try_take(t)).count() as f64;
            let span_s = (times[times.len() - 1] - start) as f64 / 1000.0;
            prop_assert!(granted <= f64::from(capacity) + rate * span_s + 1e-6);
        }

        /// However the occurrences fall, at most one is logged per interval and key,
        /// and every one is either logged or counted in the next logged line.
        #[test]
        fn log_limiter_is_bounded_and_loses_no_count(
            mut times in proptest::collection::vec(0u64..100_000, 1..400)) {
            times.sort_unstable();
            let mut log = LogLimiter::new(10_000, 1);
            let (mut logged, mut reported_quiet) = (0u64, 0u64);
            for &t in &times {
                if let Some(quiet) = log.check(&(), t) {
                    logged += 1;
                    reported_quiet += quiet;
                }
            }
            let span = times[times.len() - 1] - times[0];
            prop_assert!(logged <= 1 + span / 10_000);
            let pending = log.keys.get(&()).map_or(0, |(_, quiet)| *quiet);
            prop_assert_eq!(logged + reported_quiet + pending, times.len() as u64);
        }
    }
}
