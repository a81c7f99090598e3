//! The multi-source download scheduler behind `ferry get`.
//!
//! [`Fetch`] decides which provider is asked for which chunk groups; the
//! daemon sends the requests, has the store verify what arrives, and reports
//! back. Work is spread so that every provider fetches different ranges, the
//! lowest missing groups first (so a download fills in roughly in order and
//! its prefix is usable early). A provider that sends bad data is dropped at
//! once; one that keeps failing is dropped after a few tries. Near the end,
//! when nothing is left to hand out, a provider with a free slot repeats a
//! slower provider's request so that one straggler cannot hold up the finish.

use std::collections::BTreeMap;

use super::{Bitfield, BitfieldError, GROUP_BYTES, group_bytes, group_count};
use crate::PeerId;

/// How hard a [`Fetch`] pushes each provider; chosen by the daemon, [`Default`] for real
/// use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchConfig {
    /// Groups asked for in one request; 64 groups are 1 MiB.
    pub request_groups: u64,
    /// Requests a provider may have outstanding at once.
    pub max_in_flight_per_peer: usize,
    /// Failures (timeouts, refusals) in a row after which a provider is
    /// dropped.
    pub max_failures: u32,
}

/// Requests as large as the protocol allows (4 MiB), four at a time per
/// provider: on loopback this measured fastest of 1 MiB x 4, 1 MiB x 16,
/// 2 MiB x 8 and 4 MiB x 4 (1 GiB in 3.0 s against 3.5 s), since per-request
/// costs (a stream, a blocking-pool hop, a bitfield update) dominate.
impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            request_groups: crate::transfer::MAX_GROUPS_PER_REQUEST,
            max_in_flight_per_peer: 4,
            max_failures: 3,
        }
    }
}

/// Why a request came back without all its groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Data that failed verification: the provider is dropped at once and
    /// never asked again.
    Corrupt,
    /// The provider does not have the range, or is too busy to serve it.
    Unavailable,
    /// No answer came within the daemon's request timeout; counts toward `max_failures`.
    Timeout,
}

/// Why a provider is no longer asked for anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The daemon removed it (disconnected); adding it again resumes it.
    Gone,
    /// It failed `max_failures` times in a row; adding it again resumes it.
    Failing,
    /// It sent bad data; it stays dropped for the life of the fetch.
    Corrupt,
}

/// What one provider has done for a fetch so far, for progress displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStats {
    /// The provider.
    pub peer: PeerId,
    /// Bytes of the groups this provider was the first to deliver.
    pub verified_bytes: u64,
    /// Requests handed to it and not yet reported back.
    pub in_flight: usize,
    /// Why it is no longer asked, if it is not.
    pub dropped: Option<Dropped>,
}

#[derive(Debug)]
struct Provider {
    peer: PeerId,
    /// `None`: it holds the whole blob.
    has: Option<Bitfield>,
    /// The requests it was sent that have not been reported back.
    in_flight: Vec<(u64, u64)>,
    failures: u32,
    dropped: Option<Dropped>,
    verified_bytes: u64,
}

/// A range handed out: its end, the provider fetching it, and the provider
/// repeating the request in the endgame, if any.
#[derive(Debug)]
struct Assignment {
    last: u64,
    owner: usize,
    duplicate: Option<usize>,
}

/// One blob's download: which groups are verified, who is fetching what.
#[derive(Debug)]
pub struct Fetch {
    size: u64,
    config: FetchConfig,
    have: Bitfield,
    /// The first missing group; everything below it is verified, so scans
    /// start here.
    low: u64,
    verified_bytes: u64,
    providers: Vec<Provider>,
    /// Handed-out ranges by first group. They never overlap, so no group is
    /// fetched twice except by an endgame duplicate.
    assigned: BTreeMap<u64, Assignment>,
}

impl Fetch {
    /// A download of a `size`-byte blob, of which the groups in `have` are
    /// already verified (a resumed download; `None` or a field of the wrong
    /// length, which belongs to something else: nothing yet). Config values
    /// of 0 count as 1. A size over [`MAX_BLOB_BYTES`](super::MAX_BLOB_BYTES)
    /// is refused.
    pub fn new(
        size: u64,
        have: Option<Bitfield>,
        config: FetchConfig,
    ) -> Result<Self, BitfieldError> {
        let groups = group_count(size);
        let have = match have {
            Some(have) if have.groups() == groups => have,
            _ => Bitfield::new(groups)?,
        };
        let config = FetchConfig {
            request_groups: config.request_groups.max(1),
            max_in_flight_per_peer: config.max_in_flight_per_peer.max(1),
            max_failures: config.max_failures.max(1),
        };
        // Whole groups, less the part of the last group past the end.
        let mut verified_bytes = have.count() * GROUP_BYTES;
        if have.get(groups - 1) {
            verified_bytes -= groups * GROUP_BYTES - size;
        }
        Ok(Self {
            size,
            config,
            low: have.next_missing(0, None).unwrap_or(groups),
            have,
            verified_bytes,
            providers: Vec::new(),
            assigned: BTreeMap::new(),
        })
    }

    /// A provider to fetch from, with the groups it holds (`None`: all).
    /// Adding a known provider updates what it holds and resumes it if it
    /// was gone or failing; one that sent bad data stays dropped.
    pub fn add_provider(&mut self, peer: PeerId, has: Option<Bitfield>) {
        match self.index(&peer) {
            Some(i) => {
                let provider = &mut self.providers[i];
                if provider.dropped != Some(Dropped::Corrupt) {
                    provider.has = has;
                    provider.dropped = None;
                    provider.failures = 0;
                }
            }
            None => self.providers.push(Provider {
                peer,
                has,
                in_flight: Vec::new(),
                failures: 0,
                dropped: None,
                verified_bytes: 0,
            }),
        }
    }

    /// The provider is gone; what it was fetching goes back to the others.
    /// Its reports that still arrive count only for the data they verified.
    pub fn remove_provider(&mut self, peer: &PeerId) {
        if let Some(i) = self.index(peer)
            && self.providers[i].dropped.is_none()
        {
            self.drop_provider(i, Dropped::Gone);
        }
    }

    /// Every request that should be sent now, as `(peer, first, last)`:
    /// groups `[first, last)` of the blob.
    pub fn poll_requests(&mut self) -> Vec<(PeerId, u64, u64)> {
        let mut requests = Vec::new();
        if self.is_complete() {
            return requests;
        }
        // Providers with a clean record pick first, so a range that just
        // failed tends to go to someone else.
        let mut order: Vec<usize> = (0..self.providers.len())
            .filter(|&i| self.providers[i].dropped.is_none())
            .collect();
        order.sort_by_key(|&i| self.providers[i].failures);
        // One request per provider per round, so that each gets different
        // ranges and the lowest ones are shared out.
        loop {
            let mut handed_out = false;
            for &i in &order {
                if self.has_slot(i)
                    && let Some((first, last)) = self.next_free(i)
                {
                    self.assigned.insert(
                        first,
                        Assignment {
                            last,
                            owner: i,
                            duplicate: None,
                        },
                    );
                    requests.push(self.send(i, first, last));
                    handed_out = true;
                }
            }
            if !handed_out {
                break;
            }
        }
        // Endgame: any provider still with a free slot has nothing new it
        // could fetch, so it repeats someone else's request.
        loop {
            let mut handed_out = false;
            for &i in &order {
                if self.has_slot(i)
                    && let Some(first) = self.straggler_for(i)
                {
                    let assignment = self.assigned.get_mut(&first).expect("just found");
                    assignment.duplicate = Some(i);
                    let last = assignment.last;
                    requests.push(self.send(i, first, last));
                    handed_out = true;
                }
            }
            if !handed_out {
                break;
            }
        }
        requests
    }

    /// `peer` delivered groups `[first, last)` and the store verified them.
    pub fn completed(&mut self, peer: &PeerId, first: u64, last: u64) {
        let index = self.index(peer);
        if let Some(i) = index
            && self.take_request(i, first, last)
        {
            self.providers[i].failures = 0;
            // Whoever else was fetching this range is no longer needed; its
            // request stays counted against it until it reports back.
            if self
                .assigned
                .get(&first)
                .is_some_and(|a| a.last == last && (a.owner == i || a.duplicate == Some(i)))
            {
                self.assigned.remove(&first);
            }
        }
        self.verify(index, first, last);
    }

    /// `peer`'s request for `[first, last)` failed; its first `verified`
    /// groups had arrived and verified before it did.
    pub fn failed(
        &mut self,
        peer: &PeerId,
        first: u64,
        last: u64,
        verified: u64,
        failure: Failure,
    ) {
        let verified = verified.min(last.saturating_sub(first));
        let index = self.index(peer);
        self.verify(index, first, first + verified);
        let Some(i) = index else { return };
        let tracked = self.take_request(i, first, last);
        if tracked {
            self.release(i, first, last);
        }
        match failure {
            Failure::Corrupt => self.drop_provider(i, Dropped::Corrupt),
            Failure::Unavailable | Failure::Timeout
                if tracked && self.providers[i].dropped.is_none() =>
            {
                let provider = &mut self.providers[i];
                // Groups that did arrive break the run of failures.
                provider.failures = if verified > 0 {
                    1
                } else {
                    provider.failures + 1
                };
                if provider.failures >= self.config.max_failures {
                    self.drop_provider(i, Dropped::Failing);
                }
            }
            Failure::Unavailable | Failure::Timeout => {}
        }
    }

    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether every group is verified: the download is done.
    pub fn is_complete(&self) -> bool {
        self.low >= self.have.groups()
    }

    /// The verified groups; the store keeps these so a restart resumes.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Not complete, and no provider left that could supply a missing
    /// group: the daemon should find more providers or give up.
    pub fn is_stalled(&self) -> bool {
        !self.is_complete()
            && !self.providers.iter().any(|p| {
                p.dropped.is_none() && self.have.next_missing(self.low, p.has.as_ref()).is_some()
            })
    }

    /// A snapshot of every provider added, dropped ones included.
    pub fn providers(&self) -> Vec<ProviderStats> {
        self.providers
            .iter()
            .map(|p| ProviderStats {
                peer: p.peer,
                verified_bytes: p.verified_bytes,
                in_flight: p.in_flight.len(),
                dropped: p.dropped,
            })
            .collect()
    }

    /// Bytes verified during this fetch, each group counted once (duplicates from the
    /// endgame are not counted twice).
    pub fn verified_bytes(&self) -> u64 {
        self.verified_bytes
    }

    fn index(&self, peer: &PeerId) -> Option<usize> {
        self.providers.iter().position(|p| p.peer == *peer)
    }

    fn has_slot(&self, i: usize) -> bool {
        self.providers[i].in_flight.len() < self.config.max_in_flight_per_peer
    }

    fn send(&mut self, i: usize, first: u64, last: u64) -> (PeerId, u64, u64) {
        let provider = &mut self.providers[i];
        provider.in_flight.push((first, last));
        (provider.peer, first, last)
    }

    /// Forgets an outstanding request; false if `i` had no such request
    /// (it was dropped meanwhile, or the report is bogus).
    fn take_request(&mut self, i: usize, first: u64, last: u64) -> bool {
        let in_flight = &mut self.providers[i].in_flight;
        match in_flight.iter().position(|&r| r == (first, last)) {
            Some(at) => {
                in_flight.swap_remove(at);
                true
            }
            None => false,
        }
    }

    /// `i` stopped fetching `[first, last)` without finishing it: a
    /// duplicate takes it over, or it goes back to be handed out again.
    fn release(&mut self, i: usize, first: u64, last: u64) {
        let Some(assignment) = self.assigned.get_mut(&first) else {
            return;
        };
        if assignment.last != last {
            return;
        }
        if assignment.owner == i {
            match assignment.duplicate.take() {
                Some(duplicate) => assignment.owner = duplicate,
                None => {
                    self.assigned.remove(&first);
                }
            }
        } else if assignment.duplicate == Some(i) {
            assignment.duplicate = None;
        }
    }

    fn drop_provider(&mut self, i: usize, why: Dropped) {
        self.providers[i].dropped = Some(why);
        for (first, last) in std::mem::take(&mut self.providers[i].in_flight) {
            self.release(i, first, last);
        }
    }

    /// Records groups the store verified, crediting the provider for those
    /// that are new.
    fn verify(&mut self, from: Option<usize>, first: u64, last: u64) {
        let mut fresh = 0;
        for group in first..last.min(self.have.groups()) {
            if !self.have.get(group) {
                self.have.set(group);
                let (start, end) = group_bytes(group, group + 1, self.size);
                fresh += end - start;
            }
        }
        self.verified_bytes += fresh;
        if let Some(i) = from {
            self.providers[i].verified_bytes += fresh;
        }
        if self.have.get(self.low) {
            self.low = self
                .have
                .next_missing(self.low, None)
                .unwrap_or(self.have.groups());
        }
    }

    /// The lowest range no one is fetching that `i` holds: missing groups
    /// only, at most `request_groups` long.
    fn next_free(&self, i: usize) -> Option<(u64, u64)> {
        let has = self.providers[i].has.as_ref();
        let mut from = self.low;
        let first = loop {
            let candidate = self.have.next_missing(from, has)?;
            match self.assigned.range(..=candidate).next_back() {
                Some((_, a)) if a.last > candidate => from = a.last,
                _ => break candidate,
            }
        };
        let next_assigned = self.assigned.range(first + 1..).next().map(|(&at, _)| at);
        let limit = first
            .saturating_add(self.config.request_groups)
            .min(self.have.groups())
            .min(next_assigned.unwrap_or(u64::MAX));
        let mut last = first + 1;
        while last < limit && !self.have.get(last) && has.is_none_or(|h| h.get(last)) {
            last += 1;
        }
        Some((first, last))
    }

    /// The lowest range someone else is fetching, not yet duplicated, that
    /// `i` holds in full and that still lacks every group.
    fn straggler_for(&self, i: usize) -> Option<u64> {
        let has = self.providers[i].has.as_ref();
        self.assigned
            .iter()
            .find(|(first, a)| {
                a.owner != i
                    && a.duplicate.is_none()
                    && (**first..a.last).all(|g| !self.have.get(g) && has.is_none_or(|h| h.get(g)))
            })
            .map(|(&first, _)| first)
    }
}

#[cfg(test)]
mod tests;
