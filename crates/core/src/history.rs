//! Which messages of a channel count as its recent history, and which of them a
//! peer that asks for history is missing.
//!
//! The window is generous on purpose: the last [`WINDOW_MESSAGES`] messages *and*
//! everything from the last [`WINDOW_AGE_MS`], so a node that was away for a day
//! misses nothing, capped at [`WINDOW_HARD_CAP`] so a busy channel cannot make a
//! single exchange unbounded.
//!
//! Messages are ranked by their authors' timestamps, which a hostile author
//! chooses. So a message dated more than [`MAX_FUTURE_SKEW_MS`] ahead of this
//! node's clock is never stored (the node refuses it on arrival) and never
//! ranked (one stored before this rule existed is skipped): 5,000 posts dated
//! 2100 cannot push the real ones out of the window.

use std::collections::HashSet;

use crate::Millis;
use crate::channel::MessageId;

/// At least this many of the newest messages are history.
pub const WINDOW_MESSAGES: usize = 500;
/// Everything at most this old is history.
pub const WINDOW_AGE_MS: Millis = 24 * 60 * 60 * 1000;
/// Never more than this many messages, however busy the last day was.
pub const WINDOW_HARD_CAP: usize = 5_000;
/// One history response carries at most this many bytes of messages; the rest
/// follows in further rounds.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// How far ahead of this node's clock an author's timestamp may be. Clocks of
/// honest devices drift by seconds to minutes; ten minutes leaves room for a
/// badly set one while keeping what a liar can gain small: a message dated at
/// most ten minutes ahead is back among the real ones ten minutes later.
pub const MAX_FUTURE_SKEW_MS: Millis = 10 * 60 * 1000;

/// The latest author timestamp accepted at `now_ms`.
pub fn latest_accepted(now_ms: Millis) -> Millis {
    now_ms.saturating_add(MAX_FUTURE_SKEW_MS)
}

/// Whether an author timestamp is further ahead of `now_ms` than
/// [`MAX_FUTURE_SKEW_MS`]: such a message is refused and never ranked.
pub fn from_the_future(timestamp_ms: Millis, now_ms: Millis) -> bool {
    timestamp_ms > latest_accepted(now_ms)
}

/// Whether the message at position `rank` (0 = newest) with author timestamp
/// `timestamp_ms` is inside the history window at time `now_ms`.
pub fn in_window(rank: usize, timestamp_ms: Millis, now_ms: Millis) -> bool {
    rank < WINDOW_HARD_CAP
        && (rank < WINDOW_MESSAGES || now_ms.saturating_sub(timestamp_ms) <= WINDOW_AGE_MS)
}

/// A summary of one stored message, enough to plan a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The stored message's id.
    pub id: MessageId,
    /// The author's timestamp (ms since the Unix epoch), which orders the history.
    pub timestamp_ms: Millis,
    /// The message's encoded size in bytes, counted against a response's byte budget.
    pub wire_len: usize,
}

/// The plan for one history response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponsePlan {
    /// Messages to send, newest first.
    pub send: Vec<MessageId>,
    /// More missing messages remain beyond the byte budget.
    pub more: bool,
}

/// Given our messages newest first, picks those in the window that the requester
/// does not `have`, within `max_bytes`. A single message larger than the budget is
/// still sent alone, so progress is always possible. Messages from the future
/// (see [`from_the_future`]) are neither sent nor ranked.
pub fn plan_response(
    newest_first: impl IntoIterator<Item = Stored>,
    have: &HashSet<MessageId>,
    now_ms: Millis,
    max_bytes: usize,
) -> ResponsePlan {
    let mut plan = ResponsePlan::default();
    let mut bytes = 0usize;
    let ranked = newest_first
        .into_iter()
        .filter(|stored| !from_the_future(stored.timestamp_ms, now_ms));
    for (rank, stored) in ranked.enumerate() {
        if !in_window(rank, stored.timestamp_ms, now_ms) {
            break;
        }
        if have.contains(&stored.id) {
            continue;
        }
        if !plan.send.is_empty() && bytes + stored.wire_len > max_bytes {
            plan.more = true;
            break;
        }
        bytes += stored.wire_len;
        plan.send.push(stored.id);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR: Millis = 3_600_000;

    fn id(n: u32) -> MessageId {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        MessageId(bytes)
    }

    /// `count` messages, newest first, one every `gap_ms`, the newest at `now`.
    fn log(count: u32, gap_ms: Millis, now: Millis) -> Vec<Stored> {
        (0..count)
            .map(|i| Stored {
                id: id(i),
                timestamp_ms: now - Millis::from(i) * gap_ms,
                wire_len: 100,
            })
            .collect()
    }

    #[test]
    fn window_is_last_500_or_last_day_whichever_is_more() {
        let now = 100 * 24 * HOUR;
        assert!(in_window(499, 0, now), "the 500 newest are always in");
        assert!(!in_window(500, now - 25 * HOUR, now));
        assert!(
            in_window(3_000, now - 23 * HOUR, now),
            "the last day is always in"
        );
        assert!(!in_window(WINDOW_HARD_CAP, now, now));
    }

    #[test]
    fn sends_only_what_is_missing() {
        let now = 10 * HOUR;
        let have: HashSet<_> = [id(0), id(2)].into();
        let plan = plan_response(log(4, 1000, now), &have, now, MAX_RESPONSE_BYTES);
        assert_eq!(plan.send, vec![id(1), id(3)]);
        assert!(!plan.more);
    }

    #[test]
    fn byte_budget_splits_into_rounds() {
        let now = 10 * HOUR;
        let plan = plan_response(log(10, 1000, now), &HashSet::new(), now, 350);
        assert_eq!(plan.send, vec![id(0), id(1), id(2)]);
        assert!(plan.more);
        let have: HashSet<_> = plan.send.into_iter().collect();
        let next = plan_response(log(10, 1000, now), &have, now, 350);
        assert_eq!(next.send, vec![id(3), id(4), id(5)]);
    }

    #[test]
    fn an_oversize_message_still_goes_alone() {
        let now = HOUR;
        let mut messages = log(2, 1, now);
        messages[0].wire_len = 1_000_000;
        let plan = plan_response(messages, &HashSet::new(), now, 1000);
        assert_eq!(plan.send, vec![id(0)]);
        assert!(plan.more);
    }

    #[test]
    fn the_future_is_neither_sent_nor_ranked() {
        let now = 100 * 24 * HOUR;
        assert!(!from_the_future(now + MAX_FUTURE_SKEW_MS, now));
        assert!(from_the_future(now + MAX_FUTURE_SKEW_MS + 1, now));
        assert!(!from_the_future(Millis::MAX, Millis::MAX), "no overflow");
        // 5,000 posts dated 2100, newest first, then three real ones.
        let year_2100: Millis = 4_102_444_800_000;
        let mut messages: Vec<Stored> = (0..WINDOW_HARD_CAP as u32)
            .map(|i| Stored {
                id: id(1_000_000 + i),
                timestamp_ms: year_2100 - Millis::from(i),
                wire_len: 100,
            })
            .collect();
        messages.extend(log(3, 1000, now));
        let plan = plan_response(messages, &HashSet::new(), now, MAX_RESPONSE_BYTES);
        assert_eq!(plan.send, vec![id(0), id(1), id(2)]);
        assert!(!plan.more);
    }

    proptest! {
        /// Repeating rounds until `more` is false delivers exactly the window,
        /// each message once.
        #[test]
        fn rounds_converge_to_the_window(count in 0u32..1200, gap_s in 1u64..600,
                                          budget in 100usize..5000, seed_have in proptest::collection::vec(0u32..1200, 0..50)) {
            let now = 1_000 * HOUR;
            let messages = log(count, gap_s * 1000, now);
            let mut have: HashSet<_> = seed_have.iter().map(|&n| id(n)).collect();
            let initially_had = have.clone();
            let mut received = Vec::new();
            for _ in 0..10_000 {
                let plan = plan_response(messages.clone(), &have, now, budget);
                for m in &plan.send {
                    prop_assert!(have.insert(*m), "sent twice");
                    received.push(*m);
                }
                if !plan.more { break; }
            }
            let window: HashSet<_> = messages.iter().enumerate()
                .filter(|(rank, m)| in_window(*rank, m.timestamp_ms, now))
                .map(|(_, m)| m.id).collect();
            let expected: HashSet<_> = window.difference(&initially_had).copied().collect();
            prop_assert_eq!(received.into_iter().collect::<HashSet<_>>(), expected);
        }
    }
}
