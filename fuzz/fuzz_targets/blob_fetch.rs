//! `/ferry/blob/1` answers from providers, decoded as the node's codec decodes
//! them (postcard, after the frame's size check), driving the download
//! bookkeeping of `ferry get` (the node's own `ferry_core::sources::Sources`,
//! called as engine/download.rs calls it) and the multi-source scheduler
//! `ferry_core::content::Fetch`.
//!
//! Script: the scheduler's configuration (three bytes), the resumed bitfield
//! the store would hold (`chunk`), then operations naming a provider by a
//! byte:
//! - 0 `peer chunk`: the provider's answer to "what do you have?"
//! - 1 `peer chunk bool u16`: its answer to its oldest outstanding request;
//!   when that answer is data, the bool says whether the store verifies it,
//!   the number how many groups verified before a bad one
//! - 2 `peer`: its oldest request times out
//! - 3 `peer`: it disconnects
//! - 4 `bool`: the size probe (a request for the last group) verifies or not
//!
//! Properties: nothing panics (with the pending check `bitfield-unchecked`
//! also for bitfields only serde checked); every request asks a live provider for a
//! non-empty range inside the blob, no longer than configured, within the
//! in-flight limit; verified bytes never exceed the size; a complete fetch
//! has every group.
#![no_main]

use ferry_core::PeerId;
use ferry_core::content::{Bitfield, Failure, FetchConfig, group_count};
use ferry_core::sources::Sources;
use ferry_core::transfer::{BlobResponse, MAX_RESPONSE_BYTES};
use ferry_fuzz::{PEERS, Script, peer};
use libfuzzer_sys::fuzz_target;

/// What the node reads from a response frame. Until the pending check
/// `bitfield-unchecked` is on, a `Have` whose bitfield the checked decoder
/// refuses counts as undecodable (what the fix under way makes of it), so
/// that the known crash does not hide the rest.
fn decode(bytes: &[u8]) -> Option<BlobResponse> {
    if bytes.len() > MAX_RESPONSE_BYTES {
        return None;
    }
    postcard::from_bytes(bytes).ok()
}

struct Download {
    config: FetchConfig,
    resume: Option<Bitfield>,
    /// The node's own bookkeeping: claims, the size probe, the fetch.
    sources: Sources,
    /// The probe out, as the node remembers it: (peer, size).
    probing: Option<(PeerId, u64)>,
    /// Requests sent and not answered: (peer, first, last).
    outstanding: Vec<(PeerId, u64, u64)>,
}

impl Download {
    fn drop_provider(&mut self, peer: PeerId) {
        self.sources.remove(&peer);
    }

    /// `on_have` in the node.
    fn on_have(&mut self, peer: PeerId, size: u64, groups: Option<Bitfield>) {
        match self.sources.on_have(peer, size, groups) {
            Err(_) => self.drop_provider(peer),
            Ok(()) if self.sources.fetch().is_some() => {}
            Ok(()) => self.probe_next(),
        }
    }

    /// `probe_next` in the node: the probe asks for the last group of the
    /// size claimed.
    fn probe_next(&mut self) {
        if let Some(probe) = self.sources.next_probe() {
            assert_eq!(probe.last, group_count(probe.size));
            assert_eq!(probe.first + 1, probe.last);
            self.probing = Some((probe.peer, probe.size));
        }
    }

    /// The probe's answer came back verified or not (`on_verified`).
    fn on_probe(&mut self, verified: bool) {
        let Some((peer, size)) = self.probing.take() else {
            return;
        };
        if !verified {
            self.sources.probe_failed(&peer);
            self.drop_provider(peer);
            return self.probe_next();
        }
        let _ = self
            .sources
            .probe_verified(size, self.resume.clone(), self.config);
    }

    fn take_oldest(&mut self, peer: PeerId) -> Option<(u64, u64)> {
        let at = self.outstanding.iter().position(|(p, ..)| *p == peer)?;
        let (_, first, last) = self.outstanding.remove(at);
        Some((first, last))
    }

    /// `pump` in the node, with the checks.
    fn pump(&mut self) {
        let Some(fetch) = self.sources.fetch_mut() else {
            return;
        };
        let groups = group_count(fetch.size());
        if fetch.is_complete() {
            assert!(fetch.have().is_complete());
            assert_eq!(fetch.verified_bytes(), fetch.size());
            return;
        }
        for (peer, first, last) in fetch.poll_requests() {
            assert!(
                first < last && last <= groups,
                "{first}..{last} of {groups}"
            );
            assert!(last - first <= self.config.request_groups.max(1));
            self.outstanding.push((peer, first, last));
        }
        for stats in fetch.providers() {
            assert!(stats.in_flight <= self.config.max_in_flight_per_peer.max(1));
            assert!(stats.dropped.is_none() || stats.in_flight == 0);
        }
        assert!(fetch.verified_bytes() <= fetch.size());
        let _ = fetch.is_stalled();
    }
}

fuzz_target!(|data: &[u8]| {
    let mut s = Script::new(data);
    let config = FetchConfig {
        request_groups: s.u8().into(),
        max_in_flight_per_peer: s.u8().into(),
        max_failures: s.u8().into(),
    };
    let resume = Bitfield::from_bytes(s.chunk());
    let mut download = Download {
        config,
        resume,
        sources: Sources::new(None),
        probing: None,
        outstanding: Vec::new(),
    };
    let mut steps = 0;
    while !s.is_empty() && steps < 256 {
        steps += 1;
        match s.u8() % 5 {
            0 => {
                let from = peer(s.u8() % PEERS as u8);
                if let Some(BlobResponse::Have { size, groups, .. }) = decode(s.chunk()) {
                    download.on_have(from, size, groups);
                }
            }
            1 => {
                let from = peer(s.u8());
                let answer = decode(s.chunk());
                let verifies = s.bool();
                let verified = u64::from(s.u16());
                let Some((first, last)) = download.take_oldest(from) else {
                    continue;
                };
                let Some(fetch) = download.sources.fetch_mut() else {
                    continue;
                };
                match answer {
                    Some(BlobResponse::Groups { .. }) if verifies => {
                        fetch.completed(&from, first, last)
                    }
                    Some(BlobResponse::Groups { .. }) => {
                        fetch.failed(&from, first, last, verified, Failure::Corrupt);
                        download.drop_provider(from);
                    }
                    Some(_) => fetch.failed(&from, first, last, 0, Failure::Unavailable),
                    None => fetch.failed(&from, first, last, 0, Failure::Timeout),
                }
            }
            2 => {
                let from = peer(s.u8());
                if let (Some((first, last)), Some(fetch)) =
                    (download.take_oldest(from), download.sources.fetch_mut())
                {
                    fetch.failed(&from, first, last, 0, Failure::Timeout);
                }
            }
            3 => {
                let from = peer(s.u8());
                download.drop_provider(from);
            }
            _ => {
                let verified = s.bool();
                download.on_probe(verified);
            }
        }
        download.pump();
    }
});
