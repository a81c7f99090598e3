//! Token buckets, driven by a caller-supplied clock.

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

    pub fn tracked_keys(&self) -> usize {
        self.buckets.len()
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
    }
}
