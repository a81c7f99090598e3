//! The node's bundle agent: the core's DTN [`Router`] over the store's bundles,
//! shared by every way bundles come and go — contacts with ferry peers
//! (`/ferry/dtn/1`, in the engine), TCPCL sessions with other DTN implementations
//! ([`tcpcl`]), folders carried by hand ([`folder`]) and the control API.
//!
//! # Locking
//! The router sits behind one mutex that is held only for in-memory work; the store's
//! I/O (an fsync per received bundle) happens outside it. Methods marked *blocking*
//! do store I/O and must run on the blocking pool, never on the engine task.
//!
//! # Crash consistency
//! The store is the truth: a received bundle is durable before its sender hears
//! [`Receipt::Stored`]. The router's state (copy counts, acks, PRoPHET) is saved every
//! few seconds and at shutdown, and [`Dtn::open`] reconciles it with the store: a bundle
//! stored but not in the saved state is taken in again, one the state names but the
//! store lost is forgotten, and every inbox entry's acknowledgement is restored. So a
//! `kill -9` at any moment loses no bundle.

pub mod folder;
pub mod tcpcl;
pub mod tcpcl_limits;
mod views;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_core::dtn::wire::{self, MAX_SUMMARY_ACKS, Receipt};
use ferry_core::dtn::{
    Ack, Admission, Bundle, BundleId, BundleMeta, CreationClock, CreationTimestamp, DtnMillis, Eid,
    Forward, MAX_BUNDLE_BYTES, NewBundle, NodeId, Origin, Priority, Quota, Removed, Router,
    Strategy, Summary, dtn_ms_from_unix_ms, routing::MAX_ACKS_PER_DESTINATION,
};
use ferry_core::{Keypair, PeerId};
use ferry_store::{Store, StoreError};
use tokio::sync::watch;

use crate::error::NodeError;

/// Why a held bundle cannot be made ready to forward.
#[derive(Debug, thiserror::Error)]
pub enum OutgoingError {
    /// The store could not read it.
    #[error("cannot read the bundle: {0}")]
    Store(#[from] StoreError),
    /// What is stored does not parse, or cannot be forwarded (its hop limit
    /// is reached).
    #[error("stored bundle {id}: {source}")]
    Unsendable {
        id: BundleId,
        source: ferry_core::dtn::BundleError,
    },
}

impl From<OutgoingError> for NodeError {
    fn from(error: OutgoingError) -> Self {
        match error {
            OutgoingError::Store(e) => NodeError::store("cannot read the bundle", &e),
            OutgoingError::Unsendable { .. } => NodeError::Internal(error.to_string()),
        }
    }
}

pub use views::{
    ContactView, DtnStatus, HeldView, InboxItem, PayloadKind, payload_kind, safe_file_name,
};

/// Where text sent with `ferry dtn send PEER TEXT` goes: `dtn://PEER/text`.
pub const TEXT_SERVICE: &str = "text";
/// Files go to `dtn://PEER/file/NAME`, the name percent-encoded.
pub const FILE_SERVICE: &str = "file";
/// A bundle's lifetime unless the sender says otherwise: a week, long enough for a
/// weekly bus.
pub const DEFAULT_LIFETIME_MS: u64 = 7 * 24 * 3_600_000;
/// How far ahead of the wall clock a saved last own creation time may be and still
/// be resumed after: a day of clock trouble.
const MAX_LAST_OWN_AHEAD_MS: u64 = 24 * 3_600_000;
/// Bad signatures read from one summary before the rest of its acks are dropped
/// unchecked: an honest node sends none, so a few are damage and more are an attack
/// whose CPU cost (an ed25519 check each) this bounds.
const MAX_BAD_ACKS_PER_SUMMARY: usize = 16;

/// How a node does DTN, from its configuration.
#[derive(Debug, Clone)]
pub struct DtnSettings {
    pub strategy: Strategy,
    pub quota: Quota,
    /// How fast one libp2p peer may hand this node bundles.
    pub peer_rate: PeerRate,
}

/// Bundles one peer may send: a burst, then a steady rate. Past it they are
/// refused (the sender retries later), so one peer cannot hog the store's writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerRate {
    pub burst: u32,
    pub per_second: u32,
}

impl Default for PeerRate {
    /// A burst of 2,000, then 500 a second: a bus's whole load of small messages
    /// in one go, and more than the store commits per second on a slow disk.
    fn default() -> Self {
        Self {
            burst: 2_000,
            per_second: 500,
        }
    }
}

impl Default for DtnSettings {
    /// Epidemic routing (with delivery acks it is the right choice for the small
    /// groups ferry serves: highest delivery, lowest delay) and a 1 GiB store.
    fn default() -> Self {
        Self {
            strategy: Strategy::Epidemic,
            quota: Quota::default(),
            peer_rate: PeerRate::default(),
        }
    }
}

/// A bundle this node would not take, and whether the sender is at fault (malformed
/// or hostile bytes) or merely unlucky (a full store, an expired bundle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub peer_fault: bool,
}

impl Rejection {
    fn fault(reason: String) -> Self {
        Self {
            reason,
            peer_fault: true,
        }
    }

    fn not_now(reason: String) -> Self {
        Self {
            reason,
            peer_fault: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DtnError {
    #[error("{0}")]
    Bundle(#[from] ferry_core::dtn::BundleError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("no fresh creation timestamp is left: the creation clock is at its end")]
    ClockExhausted,
}

/// What is known of a peer met in a contact.
#[derive(Debug, Clone, Default)]
struct ContactLog {
    via: String,
    up: bool,
    first_seen_unix_ms: u64,
    last_seen_unix_ms: u64,
    sent: u64,
    received: u64,
    /// Summaries read from the peer (applied, or ignored after it left).
    summaries: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    received: u64,
    delivered: u64,
    forwarded: u64,
    refused: u64,
}

struct Inner {
    router: Router,
    creation: CreationClock,
    /// The router changed since its state was last saved.
    dirty: bool,
    contacts: BTreeMap<NodeId, ContactLog>,
    counters: Counters,
}

pub struct Dtn {
    store: Arc<Store>,
    /// Signs this node's bundles and delivery acks.
    keypair: Keypair,
    local_peer: PeerId,
    local: NodeId,
    quota: Quota,
    inner: Mutex<Inner>,
    /// Bumped whenever the held bundles or acks change: contacts resend their
    /// summary and plan again.
    changed: watch::Sender<u64>,
}

/// DTN time now, from the wall clock.
pub fn dtn_now() -> DtnMillis {
    dtn_ms_from_unix_ms(unix_now())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Dtn {
    /// The agent over `store`'s bundles, its router restored and reconciled with what
    /// the store holds (*blocking*).
    pub fn open(
        store: Arc<Store>,
        keypair: Keypair,
        settings: DtnSettings,
    ) -> Result<Self, StoreError> {
        let now = dtn_now();
        let local_peer = keypair.public().to_peer_id();
        let local = NodeId::from_peer(&local_peer);
        let saved = store.load_router_state()?.unwrap_or_default();
        let mut router = Router::from_state(local.clone(), settings.strategy, saved, now);
        let stored = store.bundle_metas()?;
        let in_store: std::collections::BTreeSet<BundleId> =
            stored.iter().map(|m| m.id.clone()).collect();
        let lost: Vec<BundleId> = router
            .bundles()
            .filter(|m| !in_store.contains(&m.id))
            .map(|m| m.id.clone())
            .collect();
        for id in &lost {
            router.remove(id);
        }
        let mut not_needed = Vec::new();
        for meta in stored {
            if router.held(&meta.id).is_none()
                && !matches!(
                    router.insert(meta.clone(), None, now),
                    Admission::New | Admission::Duplicate
                )
            {
                not_needed.push(meta.id);
            }
        }
        for entry in store.inbox()? {
            if !router.is_acked_signed(&entry.meta.id, &local) {
                let ack = sign_ack(&keypair, &entry.meta);
                router.on_ack(ack, now);
            }
        }
        not_needed.extend(router.expire(now).into_iter().map(|r| r.meta.id));
        store.remove_bundles(&not_needed)?;
        let creation = match store.last_own_creation()? {
            Some(last) if last.time <= now.saturating_add(MAX_LAST_OWN_AHEAD_MS) => {
                CreationClock::resume_after(last)
            }
            Some(last) => {
                // Only a forged creation time taken as own (by a version before
                // bundles were signed) gets this far ahead; resuming after it would
                // pin the clock.
                tracing::warn!(
                    ?last,
                    "last own creation time is far in the future; not resumed"
                );
                CreationClock::new()
            }
            None => CreationClock::new(),
        };
        tracing::info!(
            node = %local,
            strategy = %router.strategy(),
            bundles = router.len(),
            "bundle agent ready"
        );
        Ok(Self {
            store,
            keypair,
            local_peer,
            local,
            quota: settings.quota,
            inner: Mutex::new(Inner {
                router,
                creation,
                dirty: true,
                contacts: BTreeMap::new(),
                counters: Counters::default(),
            }),
            changed: watch::channel(0).0,
        })
    }

    pub fn local(&self) -> &NodeId {
        &self.local
    }

    /// Counts changes to the held bundles and acks.
    pub fn generation(&self) -> u64 {
        *self.changed.borrow()
    }

    /// Resolves each time bundles or acks change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn touch(inner: &mut Inner, changed: &watch::Sender<u64>) {
        inner.dirty = true;
        changed.send_modify(|g| *g += 1);
    }

    /// Makes a bundle from this node to `destination` and stores it for routing
    /// (*blocking*).
    pub fn send(
        &self,
        destination: Eid,
        service: &str,
        payload: Vec<u8>,
        lifetime_ms: u64,
        priority: Priority,
    ) -> Result<BundleMeta, DtnError> {
        let now = dtn_now();
        // The sending application: `text` or `file`, without the file's name.
        let source_service = service.split('/').next().unwrap_or(service);
        let source = Eid::for_peer(&self.local_peer, source_service).map_err(|error| {
            ferry_core::dtn::BundleError::BadEndpoint {
                field: "source",
                error,
            }
        })?;
        let created = self.fresh_creation(&source, &destination, now)?;
        let mut bundle = Bundle::new(NewBundle {
            source,
            destination,
            created,
            lifetime_ms,
            priority,
            payload,
        })?;
        bundle.sign(&self.keypair)?;
        let bytes = bundle.to_bytes();
        let meta = bundle.meta(bytes.len() as u64, true, None, now);
        if meta.destination == self.local {
            self.store.deliver_to_inbox(&bytes, &meta, now)?;
            let mut inner = self.lock();
            self.record_delivery(&mut inner, &meta, now);
            inner.counters.delivered += 1;
            Self::touch(&mut inner, &self.changed);
            return Ok(meta);
        }
        let stored = self.store.put_bundle(&bytes, &meta, &self.quota, now)?;
        self.take_in(&stored, None, None, now);
        tracing::info!(bundle = %meta.id, to = %bundle.destination(), bytes = bytes.len(), "bundle queued");
        Ok(stored.meta)
    }

    /// The next creation timestamp whose bundle id nobody has taken: a bundle that
    /// claims this node's source (forged: only this node signs its bundles) may sit in
    /// the store under an id this clock would hand out; it is skipped, not reused.
    fn fresh_creation(
        &self,
        source: &Eid,
        destination: &Eid,
        now: DtnMillis,
    ) -> Result<CreationTimestamp, DtnError> {
        let mut inner = self.lock();
        let destination = destination.node_id();
        let mut previous = None;
        loop {
            let created = inner.creation.next(now);
            if previous == Some(created) {
                // The clock stands at its last value (time and sequence at their end).
                return Err(DtnError::ClockExhausted);
            }
            previous = Some(created);
            let id = BundleId::new(source.clone(), created);
            let acked = destination
                .as_ref()
                .is_some_and(|d| inner.router.is_acked(&id, d));
            if inner.router.held(&id).is_none() && !acked {
                return Ok(created);
            }
        }
    }

    /// This node has delivered a bundle for itself: its signed ack is recorded (and
    /// spreads).
    fn record_delivery(&self, inner: &mut Inner, meta: &BundleMeta, now: DtnMillis) -> Ack {
        let ack = sign_ack(&self.keypair, meta);
        inner.router.on_ack(ack.clone(), now);
        ack
    }

    /// Takes a bundle from a peer (`from`), a TCPCL session or a folder (`None`):
    /// parses and checks it, then delivers it here or stores it to carry on, durably
    /// before returning (*blocking*). `copies` is the spray-and-wait count granted with
    /// it, if the sender said.
    pub fn receive(
        &self,
        bytes: &[u8],
        from: Option<&NodeId>,
        copies: Option<u32>,
    ) -> Result<Receipt, Rejection> {
        let result = self.receive_inner(bytes, from, copies);
        let mut inner = self.lock();
        match &result {
            Ok(Receipt::Stored) => inner.counters.received += 1,
            Ok(Receipt::Delivered(_)) => inner.counters.delivered += 1,
            Ok(_) => {}
            Err(_) => inner.counters.refused += 1,
        }
        if let (Some(peer), Ok(Receipt::Stored | Receipt::Delivered(_))) = (from, &result)
            && let Some(log) = inner.contacts.get_mut(peer)
        {
            log.received += 1;
        }
        result
    }

    fn receive_inner(
        &self,
        bytes: &[u8],
        from: Option<&NodeId>,
        copies: Option<u32>,
    ) -> Result<Receipt, Rejection> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(Rejection::fault(format!(
                "bundle of {} bytes is over the {MAX_BUNDLE_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let bundle = Bundle::parse(bytes).map_err(|e| Rejection::fault(e.to_string()))?;
        let now = dtn_now();
        // Never own, whatever its source says: only `send` makes this node's bundles.
        let meta = bundle.meta(bytes.len() as u64, false, from.cloned(), now);
        let admission = self.lock().router.admission(&meta, now);
        if admission == Admission::ForUs && bundle.origin() == Origin::Forged {
            // A ferry source that did not sign it: not shown as that node's word. The
            // carrier that brought it may be honest, so it is no fault of theirs.
            return Err(Rejection::not_now(format!(
                "bundle {} claims a ferry node as its source but is not signed by it",
                meta.id
            )));
        }
        match admission {
            Admission::AlreadyDelivered | Admission::Duplicate => Ok(Receipt::Have),
            Admission::Expired => Err(Rejection::not_now(format!(
                "bundle {} has expired",
                meta.id
            ))),
            Admission::ForUs => {
                let new = self
                    .store
                    .deliver_to_inbox(bytes, &meta, now)
                    .map_err(|e| Rejection::not_now(format!("cannot store it here: {e}")))?;
                let mut inner = self.lock();
                let ack = self.record_delivery(&mut inner, &meta, now);
                Self::touch(&mut inner, &self.changed);
                if new {
                    tracing::info!(bundle = %meta.id, bytes = bytes.len(), "bundle delivered to this node");
                    Ok(Receipt::Delivered(ack.signature.is_some().then_some(ack)))
                } else {
                    Ok(Receipt::Have)
                }
            }
            Admission::New => match self.store.put_bundle(bytes, &meta, &self.quota, now) {
                Ok(stored) if !stored.new => Ok(Receipt::Have),
                Ok(stored) => {
                    self.take_in(&stored, copies, from, now);
                    Ok(Receipt::Stored)
                }
                Err(StoreError::BundleRefused { refusal, .. }) => {
                    Err(Rejection::not_now(refusal.to_string()))
                }
                Err(e) => Err(Rejection::not_now(format!("cannot store it here: {e}"))),
            },
        }
    }

    /// A stored bundle joins the router; what the store dropped to make room leaves it.
    /// `from`, the peer it came from, holds it: it is never offered back there (a
    /// ferry peer's summary would say so, but a TCPCL peer sends none).
    fn take_in(
        &self,
        stored: &ferry_store::StoredBundle,
        copies: Option<u32>,
        from: Option<&NodeId>,
        now: DtnMillis,
    ) {
        let mut inner = self.lock();
        for id in &stored.expired {
            inner.router.remove(id);
        }
        for id in &stored.evicted {
            tracing::warn!(bundle = %id, "bundle evicted to make room (store quota reached)");
            inner.router.remove(id);
        }
        inner.router.insert(stored.meta.clone(), copies, now);
        if let Some(peer) = from {
            inner.router.on_peer_has(peer, &stored.meta.id);
        }
        Self::touch(&mut inner, &self.changed);
    }

    /// A link to `peer` opened (`via` says how, for `ferry dtn status`).
    pub fn contact_up(&self, peer: &NodeId, via: &str) {
        let now = dtn_now();
        let mut inner = self.lock();
        inner.router.contact_up(peer, now);
        let unix = unix_now();
        let log = inner.contacts.entry(peer.clone()).or_default();
        if log.first_seen_unix_ms == 0 {
            log.first_seen_unix_ms = unix;
        }
        log.last_seen_unix_ms = unix;
        log.via = via.to_owned();
        log.up = true;
    }

    pub fn contact_down(&self, peer: &NodeId) {
        let mut inner = self.lock();
        inner.router.contact_down(peer, dtn_now());
        if let Some(log) = inner.contacts.get_mut(peer) {
            log.up = false;
            log.last_seen_unix_ms = unix_now();
        }
    }

    /// What to tell peers now, cut to fit a frame (see [`wire::bounded`]).
    pub fn summary(&self) -> Summary {
        wire::bounded(self.lock().router.summary(dtn_now()))
    }

    /// A peer's summary arrived; the copies its acknowledgements free are deleted
    /// (*blocking*: every new ack's signature is checked). A summary from a peer
    /// with no open contact is ignored by the router.
    pub fn on_summary(&self, peer: &NodeId, mut summary: Summary) -> Result<(), StoreError> {
        let now = dtn_now();
        summary.acks.truncate(MAX_SUMMARY_ACKS);
        {
            let mut inner = self.lock();
            if let Some(log) = inner.contacts.get_mut(peer) {
                log.summaries += 1;
            }
            if !inner.router.has_contact(peer) {
                tracing::info!(%peer, "summary from a peer with no open contact ignored");
                return Ok(());
            }
            // Only acks that would change something cost a signature check, and no
            // destination gets more than its share of the table.
            let mut per_destination = inner.router.acks_per_destination();
            summary.acks.retain(|ack| {
                if !inner.router.ack_is_news(ack, now) {
                    return false;
                }
                let count = match per_destination.get_mut(&ack.destination) {
                    Some(count) => count,
                    None => per_destination.entry(ack.destination.clone()).or_insert(0),
                };
                *count += 1;
                *count <= MAX_ACKS_PER_DESTINATION
            });
        }
        let (acks, bad) = verified(summary.acks);
        if bad > 0 {
            tracing::info!(%peer, bad, "acks with no valid signature by their destination ignored");
        }
        summary.acks = acks;
        // A signed ack is news to pass on even when it frees nothing here: a carrier
        // that handed a bundle to its destination freed its copy then, and learns the
        // destination's signed ack only later. Its summary must go out again, or the
        // node behind it never hears of the delivery and holds its copy for good.
        let learned = !summary.acks.is_empty();
        let removed = {
            let mut inner = self.lock();
            let removed = inner.router.on_summary(peer, summary, now);
            if learned || !removed.is_empty() {
                Self::touch(&mut inner, &self.changed);
            }
            removed
        };
        self.forget(&removed)
    }

    fn forget(&self, removed: &[Removed]) -> Result<(), StoreError> {
        if removed.is_empty() {
            return Ok(());
        }
        for gone in removed {
            tracing::info!(bundle = %gone.meta.id, reason = ?gone.reason, "bundle copy freed");
        }
        let ids: Vec<BundleId> = removed.iter().map(|r| r.meta.id.clone()).collect();
        self.store.remove_bundles(&ids).map(|_| ())
    }

    /// What to send `peer` now, best first (copies reserved).
    pub fn plan(&self, peer: &NodeId) -> Vec<Forward> {
        self.lock().router.plan(peer, dtn_now())
    }

    /// The bytes to send for a held bundle, with the extension blocks a forwarding
    /// node updates (hop count, previous node) (*blocking*). `None` if it is gone.
    pub fn outgoing(&self, id: &BundleId) -> Result<Option<Vec<u8>>, OutgoingError> {
        let Some(bytes) = self.store.bundle_bytes(id)? else {
            return Ok(None);
        };
        let damaged = |source| OutgoingError::Unsendable {
            id: id.clone(),
            source,
        };
        let mut bundle = Bundle::parse(&bytes).map_err(damaged)?;
        bundle.prepare_forward(&self.local, 0).map_err(damaged)?;
        Ok(Some(bundle.to_bytes()))
    }

    /// The peer answered a forward. A refusal returns the reserved copies, so a later
    /// plan offers the bundle again (*blocking* when the peer was its destination).
    pub fn forward_answered(
        &self,
        peer: &NodeId,
        id: &BundleId,
        receipt: &Receipt,
    ) -> Result<(), StoreError> {
        // The destination's signed ack, checked before the lock (an ed25519 check):
        // kept and passed on like one from a summary.
        let ack = match receipt {
            Receipt::Delivered(Some(ack))
                if ack.id == *id && ack.destination == *peer && ack.verify() =>
            {
                Some(ack.clone())
            }
            _ => None,
        };
        let removed = {
            let mut inner = self.lock();
            if let Some(ack) = ack {
                inner.router.on_ack(ack, dtn_now());
                Self::touch(&mut inner, &self.changed);
            }
            match receipt {
                Receipt::Stored | Receipt::Delivered(_) => {
                    inner.counters.forwarded += 1;
                    if let Some(log) = inner.contacts.get_mut(peer) {
                        log.sent += 1;
                    }
                    let removed = inner.router.on_forwarded(peer, id, dtn_now());
                    if removed.is_some() {
                        Self::touch(&mut inner, &self.changed);
                    }
                    removed
                }
                Receipt::Have => {
                    inner.router.on_peer_has(peer, id);
                    None
                }
                Receipt::Refused(_) => {
                    inner.router.on_forward_failed(peer, id);
                    None
                }
            }
        };
        self.forget(removed.as_slice())
    }

    /// A forward failed on the way (the link broke, a timeout).
    pub fn forward_failed(&self, peer: &NodeId, id: &BundleId) {
        self.lock().router.on_forward_failed(peer, id);
    }

    /// A planned bundle that cannot go to `peer` in this contact (over its transfer
    /// limit): its reserved copies come back for other contacts, and it is not
    /// planned for `peer` again until the next contact.
    pub fn forward_skipped(&self, peer: &NodeId, id: &BundleId) {
        self.lock().router.on_peer_has(peer, id);
    }

    /// Periodic upkeep (*blocking*): drops expired bundles and saves the router's
    /// state if it changed.
    pub fn maintain(&self) -> Result<(), StoreError> {
        let now = dtn_now();
        let (expired, state) = {
            let mut inner = self.lock();
            let expired = inner.router.expire(now);
            if !expired.is_empty() {
                Self::touch(&mut inner, &self.changed);
            }
            let state = std::mem::take(&mut inner.dirty).then(|| inner.router.state());
            (expired, state)
        };
        self.forget(&expired)?;
        if let Some(state) = state
            && let Err(e) = self.store.save_router_state(&state)
        {
            self.lock().dirty = true;
            return Err(e);
        }
        Ok(())
    }

    /// Applies acknowledgements that came by folder (*blocking*); only those signed
    /// by their destination count.
    pub fn on_acks(&self, acks: Vec<Ack>) -> Result<usize, StoreError> {
        let now = dtn_now();
        let acks: Vec<Ack> = acks.into_iter().filter(Ack::verify).collect();
        let removed: Vec<Removed> = {
            let mut inner = self.lock();
            let removed: Vec<Removed> = acks
                .into_iter()
                .filter_map(|ack| inner.router.on_ack(ack, now))
                .collect();
            Self::touch(&mut inner, &self.changed);
            removed
        };
        self.forget(&removed)?;
        Ok(removed.len())
    }

    /// The ids and metadata of held bundles, optionally only those for `to`.
    pub fn held(&self, to: &[NodeId]) -> Vec<BundleMeta> {
        self.lock()
            .router
            .bundles()
            .filter(|m| to.is_empty() || to.contains(&m.destination))
            .cloned()
            .collect()
    }

    /// The acks to pass on (signed ones: a peer ignores the rest).
    pub fn acks(&self) -> Vec<Ack> {
        self.lock()
            .router
            .acks()
            .filter(|ack| ack.signature.is_some())
            .collect()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// This node's signed ack of a bundle delivered to it.
fn sign_ack(keypair: &Keypair, meta: &BundleMeta) -> Ack {
    let unsigned = || Ack {
        id: meta.id.clone(),
        destination: meta.destination.clone(),
        expires_at: meta.expires_at,
        signature: None,
    };
    Ack::signed(
        keypair,
        meta.id.clone(),
        meta.destination.clone(),
        meta.expires_at,
    )
    .unwrap_or_else(|e| {
        // Only a key that cannot sign gets here; the delivery still counts here.
        tracing::warn!(bundle = %meta.id, "cannot sign the delivery ack: {e}");
        unsigned()
    })
}

/// The acks whose destination signed them, and how many were not; after
/// [`MAX_BAD_ACKS_PER_SUMMARY`] bad ones the rest are dropped unchecked.
fn verified(acks: Vec<Ack>) -> (Vec<Ack>, usize) {
    let mut bad = 0;
    let good = acks
        .into_iter()
        .filter(|ack| {
            if bad >= MAX_BAD_ACKS_PER_SUMMARY {
                bad += 1;
                return false;
            }
            let ok = ack.verify();
            if !ok {
                bad += 1;
            }
            ok
        })
        .collect();
    (good, bad)
}
