//! What TCPCL peers may take of this node: sessions (in all, and from one
//! address), memory for the bundles they send, and lines in the log.
//!
//! Anyone who can reach the TCPCL port is a stranger: without these bounds, one
//! could open sessions without end, hold a transfer of up to a bundle's size on
//! each, and make every refused bundle a warning line.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ferry_core::dtn::MAX_BUNDLE_BYTES;
use ferry_core::ratelimit::{LogLimiter, quiet_note};
use ferry_net::tcpcl::ReceiveBudget;

use crate::clock::Clock;

/// Sessions accepted at once, from anyone. Past it, a new connection is closed
/// before its handshake. Sessions this node dials (`--tcpcl-peer`) do not count,
/// so strangers cannot keep it from its configured peers.
pub const MAX_SESSIONS: usize = 64;
/// Sessions accepted at once from one IP address, so one host cannot take them all.
pub const MAX_SESSIONS_PER_ADDRESS: usize = 8;
/// Bytes of incoming bundles held in memory across every TCPCL session (being
/// reassembled, or whole and not yet stored): four bundles of the largest size.
/// A transfer that would pass it is refused ("no resources"); the sender retries.
pub const RECEIVE_BUDGET_BYTES: u64 = 4 * MAX_BUNDLE_BYTES as u64;
/// A warning about one address (a refused bundle or connection) is logged at
/// most this often; those in between are counted in the next one.
const WARNING_INTERVAL_MS: u64 = 10_000;
/// Addresses whose warnings are limited at once (the stalest forgotten past it).
const WARNED_ADDRESSES: usize = 4096;

/// Shared by the listener and every session.
pub(super) struct TcpclLimits {
    sessions: Mutex<Sessions>,
    budget: Arc<ReceiveBudget>,
    warnings: Mutex<LogLimiter<IpAddr>>,
    clock: Clock,
}

#[derive(Default)]
struct Sessions {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Why a connection was closed before its handshake.
#[derive(Debug)]
pub(super) enum Full {
    Total,
    Address,
}

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Full::Total => write!(f, "{MAX_SESSIONS} TCPCL sessions are open"),
            Full::Address => write!(
                f,
                "{MAX_SESSIONS_PER_ADDRESS} TCPCL sessions from this address are open"
            ),
        }
    }
}

/// An accepted session's place; given back when dropped.
pub(super) struct SessionSlot {
    limits: Arc<TcpclLimits>,
    address: IpAddr,
}

impl TcpclLimits {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(TcpclLimits {
            sessions: Mutex::new(Sessions::default()),
            budget: ReceiveBudget::new(RECEIVE_BUDGET_BYTES),
            warnings: Mutex::new(LogLimiter::new(WARNING_INTERVAL_MS, WARNED_ADDRESSES)),
            clock: Clock::new(),
        })
    }

    pub(super) fn budget(&self) -> Arc<ReceiveBudget> {
        self.budget.clone()
    }

    /// A place for a session accepted from `address`, if there is room.
    pub(super) fn admit(self: &Arc<Self>, address: IpAddr) -> Result<SessionSlot, Full> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.total >= MAX_SESSIONS {
            return Err(Full::Total);
        }
        let from_address = sessions.by_address.entry(address).or_insert(0);
        if *from_address >= MAX_SESSIONS_PER_ADDRESS {
            return Err(Full::Address);
        }
        *from_address += 1;
        sessions.total += 1;
        Ok(SessionSlot {
            limits: self.clone(),
            address,
        })
    }

    /// `Some(note)` when a warning about `address` is to be logged now, `note`
    /// saying how many were kept quiet since the last one; `None` to keep quiet.
    pub(super) fn warning(&self, address: IpAddr) -> Option<String> {
        let now = self.clock.mono_ms();
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(&address, now)
            .map(quiet_note)
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut sessions = self
            .limits
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        sessions.total = sessions.total.saturating_sub(1);
        if let Some(count) = sessions.by_address.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                sessions.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_capped_per_address_and_in_all_and_given_back() {
        let limits = TcpclLimits::new();
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        let mut held: Vec<SessionSlot> = (0..MAX_SESSIONS_PER_ADDRESS)
            .map(|_| limits.admit(one).unwrap())
            .collect();
        assert!(matches!(limits.admit(one), Err(Full::Address)));
        for i in 0..MAX_SESSIONS - MAX_SESSIONS_PER_ADDRESS {
            let address = IpAddr::from([10, 0, (i / 200) as u8, (i % 200) as u8]);
            held.push(limits.admit(address).unwrap());
        }
        assert!(matches!(
            limits.admit("10.9.9.9".parse().unwrap()),
            Err(Full::Total)
        ));
        held.remove(0);
        assert!(limits.admit(one).is_ok());
        drop(held);
        assert_eq!(limits.sessions.lock().unwrap().total, 0);
        assert!(limits.sessions.lock().unwrap().by_address.is_empty());
    }
}
