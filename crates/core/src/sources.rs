//! Whom a download believes: what each provider of a blob says it has, the
//! proof of the size they claim, and when one is dropped.
//!
//! A provider's answer to `Have` sizes everything after it, so nothing is
//! sized by a claim until it is proven: the claim is checked
//! ([`check_have`]), then one provider holding the last group is asked for it
//! (a *size probe*: BLAKE3's tree depends on the size, so a verified last
//! group proves it), and only then does a [`Fetch`] exist, with every
//! provider that claimed that size. A claim of another size, or data that
//! fails verification, drops the provider.
//!
//! Sans-IO like the rest of the core: the node turns [`Sources`]'s answers
//! into requests and feeds it what peers answer and what the store verified.

use std::collections::BTreeMap;

use crate::PeerId;
use crate::content::{Bitfield, BitfieldError, Fetch, FetchConfig, group_count};
use crate::transfer::{HaveError, check_have};

/// The largest blob a download accepts (1 TiB, within the store's
/// [`MAX_BLOB_BYTES`](crate::content::MAX_BLOB_BYTES)): a provider's claimed
/// size sizes the download's bookkeeping, so it is bounded before it is
/// proven.
pub const MAX_FETCH_BYTES: u64 = 1 << 40;

/// Why a provider is dropped from a download.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// Its `Have` answer is inconsistent or over [`MAX_FETCH_BYTES`].
    #[error("{0}")]
    BadClaim(#[from] HaveError),
    /// It claims another size than the one a provider proved.
    #[error("it claims another size than the proven one")]
    OtherSize,
}

/// A size probe to send: ask `peer` for groups `[first, last)` (the last
/// group) of a blob it claims is `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The provider asked.
    pub peer: PeerId,
    /// The size it claims, which the probe proves or disproves.
    pub size: u64,
    /// The first group asked for (the last group of the blob).
    pub first: u64,
    /// One past the last group asked for (the blob's group count).
    pub last: u64,
}

/// The providers of one blob being fetched, and the fetch once the size is
/// proven.
#[derive(Debug)]
pub struct Sources {
    /// What each provider said it has: size and groups (`None` = all).
    claims: BTreeMap<PeerId, (u64, Option<Bitfield>)>,
    /// The provider whose claimed size is being checked.
    probing: Option<PeerId>,
    /// Set once a provider has proven the size (or a resumed partial knew it).
    fetch: Option<Fetch>,
}

impl Sources {
    /// A download with nothing known of its providers; `fetch` when the size
    /// is known already (a resumed partial).
    pub fn new(fetch: Option<Fetch>) -> Self {
        Self {
            claims: BTreeMap::new(),
            probing: None,
            fetch,
        }
    }

    /// A provider answered `Have`. `Ok` records its claim (and adds it to the
    /// fetch when the size is proven and matches); the caller then asks for
    /// the next probe ([`Sources::next_probe`]) or requests. `Err`: the
    /// provider is to be dropped.
    pub fn on_have(
        &mut self,
        peer: PeerId,
        size: u64,
        groups: Option<Bitfield>,
    ) -> Result<(), DropReason> {
        check_have(size, groups.as_ref(), MAX_FETCH_BYTES)?;
        self.claims.insert(peer, (size, groups.clone()));
        match self.fetch.as_mut() {
            Some(fetch) if fetch.size() == size => {
                fetch.add_provider(peer, groups);
                Ok(())
            }
            Some(_) => Err(DropReason::OtherSize),
            None => Ok(()),
        }
    }

    /// The size probe to send now, if one is needed and none is out: the
    /// first provider whose claim holds the last group of the size it claims.
    pub fn next_probe(&mut self) -> Option<Probe> {
        if self.fetch.is_some() || self.probing.is_some() {
            return None;
        }
        let last_group = |size: u64| group_count(size).saturating_sub(1);
        let (&peer, &(size, _)) = self
            .claims
            .iter()
            .find(|(_, (size, groups))| groups.as_ref().is_none_or(|g| g.get(last_group(*size))))?;
        self.probing = Some(peer);
        let last = group_count(size);
        Some(Probe {
            peer,
            size,
            first: last.saturating_sub(1),
            last,
        })
    }

    /// The probe's data verified: the size is proven. The fetch starts with
    /// the groups already held (`have`, a resumed partial's) and every
    /// provider that claimed this size.
    pub fn probe_verified(
        &mut self,
        size: u64,
        have: Option<Bitfield>,
        config: FetchConfig,
    ) -> Result<(), BitfieldError> {
        self.probing = None;
        let mut fetch = Fetch::new(size, have, config)?;
        for (peer, (claimed, groups)) in &self.claims {
            if *claimed == size {
                fetch.add_provider(*peer, groups.clone());
            }
        }
        self.fetch = Some(fetch);
        Ok(())
    }

    /// The probe got no usable answer, or its data failed verification: the
    /// claim is forgotten (a lying provider is also dropped by the caller);
    /// the next probe goes to another provider.
    pub fn probe_failed(&mut self, peer: &PeerId) {
        self.claims.remove(peer);
        self.probing = None;
    }

    /// The provider is dropped (bad data, a malformed answer): the fetch
    /// gives its ranges to the others.
    pub fn remove(&mut self, peer: &PeerId) {
        if let Some(fetch) = self.fetch.as_mut() {
            fetch.remove_provider(peer);
        }
    }

    /// Whether `peer` said what it has.
    pub fn has_claim(&self, peer: &PeerId) -> bool {
        self.claims.contains_key(peer)
    }

    /// The providers that said what they have.
    pub fn claimants(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.claims.keys().copied()
    }

    /// Whether a size probe is out (asked, or its answer being verified).
    pub fn is_probing(&self) -> bool {
        self.probing.is_some()
    }

    /// Whether nothing is left to prove the size with: no probe out and no
    /// claim (with a fetch missing, the download has no provider).
    pub fn is_exhausted(&self) -> bool {
        self.probing.is_none() && self.claims.is_empty()
    }

    /// The scheduler, once the size is proven.
    pub fn fetch(&self) -> Option<&Fetch> {
        self.fetch.as_ref()
    }

    /// The scheduler, once the size is proven, to feed it answers.
    pub fn fetch_mut(&mut self) -> Option<&mut Fetch> {
        self.fetch.as_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{Failure, GROUP_BYTES};

    fn peer() -> PeerId {
        crate::Keypair::generate_ed25519().public().to_peer_id()
    }

    const SIZE: u64 = 10 * GROUP_BYTES + 5;

    fn config() -> FetchConfig {
        FetchConfig {
            request_groups: 4,
            ..FetchConfig::default()
        }
    }

    fn holding(groups: &[u64], size: u64) -> Bitfield {
        let mut field = Bitfield::new(group_count(size)).unwrap();
        for g in groups {
            field.set(*g);
        }
        field
    }

    #[test]
    fn nothing_is_fetched_before_a_size_is_proven() {
        let mut sources = Sources::new(None);
        let (a, b) = (peer(), peer());
        sources.on_have(a, SIZE, None).unwrap();
        sources.on_have(b, SIZE, None).unwrap();
        assert!(sources.fetch().is_none());
        let probe = sources.next_probe().unwrap();
        assert_eq!((probe.size, probe.first, probe.last), (SIZE, 10, 11));
        // One probe at a time.
        assert_eq!(sources.next_probe(), None);
        sources.probe_verified(SIZE, None, config()).unwrap();
        let fetch = sources.fetch().unwrap();
        assert_eq!(fetch.size(), SIZE);
        let providers: Vec<PeerId> = fetch.providers().iter().map(|p| p.peer).collect();
        assert_eq!(providers.len(), 2);
        assert!(providers.contains(&a) && providers.contains(&b));
        assert_eq!(sources.next_probe(), None, "proven: no more probes");
    }

    #[test]
    fn only_a_provider_holding_the_last_group_is_probed() {
        let mut sources = Sources::new(None);
        let (partial, whole) = (peer(), peer());
        sources
            .on_have(partial, SIZE, Some(holding(&[0, 1], SIZE)))
            .unwrap();
        assert_eq!(sources.next_probe(), None);
        sources
            .on_have(whole, SIZE, Some(holding(&[10], SIZE)))
            .unwrap();
        assert_eq!(sources.next_probe().map(|p| p.peer), Some(whole));
    }

    #[test]
    fn a_failed_probe_moves_on_and_a_liar_is_not_a_provider() {
        let mut sources = Sources::new(None);
        let (liar, honest) = (peer(), peer());
        // The liar claims a smaller size; the honest peer the true one.
        sources.on_have(liar, GROUP_BYTES, None).unwrap();
        sources.on_have(honest, SIZE, None).unwrap();
        let first = sources.next_probe().unwrap();
        sources.probe_failed(&first.peer);
        let second = sources.next_probe().unwrap();
        assert_ne!(first.peer, second.peer);
        assert!(!sources.has_claim(&first.peer));
        sources.probe_verified(second.size, None, config()).unwrap();
        let providers: Vec<PeerId> = sources
            .fetch()
            .unwrap()
            .providers()
            .iter()
            .map(|p| p.peer)
            .collect();
        assert_eq!(providers, vec![second.peer]);
        // Once both claims are gone nothing is left to try.
        sources.probe_failed(&second.peer);
        assert!(sources.is_exhausted());
    }

    #[test]
    fn a_claim_of_another_size_after_the_proof_drops_the_provider() {
        let mut sources = Sources::new(None);
        let (a, b) = (peer(), peer());
        sources.on_have(a, SIZE, None).unwrap();
        sources.next_probe().unwrap();
        sources.probe_verified(SIZE, None, config()).unwrap();
        assert_eq!(
            sources.on_have(b, SIZE + 1, None),
            Err(DropReason::OtherSize)
        );
        assert!(
            sources
                .fetch()
                .unwrap()
                .providers()
                .iter()
                .all(|p| p.peer != b)
        );
    }

    #[test]
    fn inconsistent_or_oversized_claims_are_refused_unrecorded() {
        let mut sources = Sources::new(None);
        let p = peer();
        let wrong = holding(&[0], GROUP_BYTES);
        assert!(matches!(
            sources.on_have(p, SIZE, Some(wrong)),
            Err(DropReason::BadClaim(HaveError::WrongGroups { .. }))
        ));
        assert!(matches!(
            sources.on_have(p, MAX_FETCH_BYTES + 1, None),
            Err(DropReason::BadClaim(HaveError::TooLarge { .. }))
        ));
        assert!(!sources.has_claim(&p));
        assert!(sources.is_exhausted());
    }

    #[test]
    fn a_resumed_fetch_takes_providers_at_once_and_keeps_its_groups() {
        let resumed = Fetch::new(SIZE, Some(holding(&[0, 1, 2], SIZE)), config()).unwrap();
        let mut sources = Sources::new(Some(resumed));
        let p = peer();
        sources.on_have(p, SIZE, None).unwrap();
        assert_eq!(sources.next_probe(), None);
        let fetch = sources.fetch_mut().unwrap();
        assert_eq!(fetch.verified_bytes(), 3 * GROUP_BYTES);
        let requests = fetch.poll_requests();
        assert!(!requests.is_empty());
        assert!(
            requests
                .iter()
                .all(|(peer, first, _)| *peer == p && *first >= 3)
        );
    }

    #[test]
    fn a_removed_provider_gets_no_more_requests() {
        let mut sources = Sources::new(None);
        let (a, b) = (peer(), peer());
        sources.on_have(a, SIZE, None).unwrap();
        sources.on_have(b, SIZE, None).unwrap();
        sources.next_probe().unwrap();
        sources.probe_verified(SIZE, None, config()).unwrap();
        let fetch = sources.fetch_mut().unwrap();
        let sent = fetch.poll_requests();
        let (_, first, last) = *sent.iter().find(|(p, ..)| *p == a).unwrap();
        fetch.failed(&a, first, last, 0, Failure::Corrupt);
        sources.remove(&a);
        let fetch = sources.fetch_mut().unwrap();
        assert!(fetch.poll_requests().iter().all(|(p, ..)| *p == b));
    }
}
