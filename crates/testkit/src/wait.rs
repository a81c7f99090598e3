//! Waiting on observable state, the tests' only way to synchronise with a node:
//! poll a check until it passes, and on timeout panic with what was seen last.

use std::thread;
use std::time::{Duration, Instant};

/// How often [`wait_until`] checks: often enough that a wait ends soon after the
/// state is reached, rarely enough that a check that runs a `ferry` command does
/// not load a two-core machine.
pub const POLL: Duration = Duration::from_millis(200);

/// Calls `check` every [`POLL`] until it returns `Ok`, and returns that value;
/// panics after `limit` with `what` and the last `Err` (what was seen instead).
#[track_caller]
pub fn wait_until<T>(what: &str, limit: Duration, check: impl FnMut() -> Result<T, String>) -> T {
    wait_timed(what, limit, POLL, check).0
}

/// [`wait_until`], checking every `poll`, and returning how long the wait took
/// too (for the figures a test prints).
#[track_caller]
pub fn wait_timed<T>(
    what: &str,
    limit: Duration,
    poll: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> (T, Duration) {
    let start = Instant::now();
    loop {
        let round = Instant::now();
        match check() {
            Ok(value) => return (value, start.elapsed()),
            Err(seen) if start.elapsed() >= limit => {
                panic!("timed out after {limit:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => thread::sleep(poll.saturating_sub(round.elapsed())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_ok_and_how_long_it_took() {
        let mut calls = 0;
        let (value, took) = wait_timed(
            "three calls",
            Duration::from_secs(5),
            Duration::ZERO,
            || {
                calls += 1;
                if calls == 3 {
                    Ok(calls)
                } else {
                    Err(format!("{calls}"))
                }
            },
        );
        assert_eq!(value, 3);
        assert!(took < Duration::from_secs(5));
    }

    #[test]
    #[should_panic(expected = "waiting for nothing; last seen: still no")]
    fn panics_with_what_was_seen_last() {
        wait_until::<()>("nothing", Duration::ZERO, || Err("still no".into()));
    }
}
