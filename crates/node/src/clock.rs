//! The two clocks the core is fed: a monotonic one for liveness timers, and the
//! wall clock for timestamps that travel in messages.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ferry_core::Millis;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// Milliseconds since the node started; never goes backwards.
    pub(crate) fn mono_ms(&self) -> Millis {
        Millis::try_from(self.start.elapsed().as_millis()).unwrap_or(Millis::MAX)
    }

    /// Milliseconds since the Unix epoch, by the wall clock.
    pub(crate) fn unix_ms(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX))
            .unwrap_or(0)
    }
}
