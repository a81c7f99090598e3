//! Which bundles go to which peer: one [`Router`] per node, with the strategy chosen
//! per node ([`Strategy`]), driven by inputs and the caller's clock.
//!
//! # A contact, as the router sees it
//! 1. [`Router::contact_up`] when a link to a peer opens (PRoPHET counts a meeting).
//! 2. Both sides send [`Router::summary`]: the ids they hold, the delivery
//!    acknowledgements they know, and (PRoPHET) their predictabilities. Each side
//!    feeds the other's to [`Router::on_summary`], which applies the acknowledgements
//!    (returning the copies to delete) and learns what the peer already has. A peer
//!    that speaks no summary protocol (a TCPCL peer such as dtnd) gets an empty
//!    [`Summary::default`]: it holds nothing we know of. A simulator holding both
//!    routers calls [`Router::exchange_summaries`] instead, which does the same
//!    without building the summaries.
//! 3. [`Router::plan`] says what to send the peer now, best first. Each sent bundle
//!    ends in [`Router::on_forwarded`] (the peer confirmed it) or
//!    [`Router::on_forward_failed`] (it certainly did not get it). `plan` can be called
//!    again whenever something changes (a bundle arrived from elsewhere); it never
//!    offers the same bundle twice to a peer while it is in flight or held there.
//! 4. [`Router::contact_down`] when the link closes; whatever is still in flight
//!    is treated as failed.
//!
//! Received bundles: ask [`Router::admission`] first (is it new? for us? already
//! delivered?), store it (after `evict::make_room`), then [`Router::insert`] it.
//! A bundle for this node is delivered to the application instead, then
//! [`Router::on_delivered`] records the delivery acknowledgement.
//!
//! # Delivery acknowledgements
//! When a bundle reaches its destination node, the destination records an [`Ack`]
//! (bundle id, destination node, the bundle's expiry, and the destination's ed25519
//! signature over them, see [`super::sign`]). Acks travel in every summary, between
//! ferry nodes whatever their strategy, like the "anti-packets" of epidemic routing: a
//! carrier that learns of one deletes its copy and passes the ack on, and a node that
//! has it refuses that bundle if it comes round again (a router never holds a bundle
//! it knows delivered). An ack is keyed by bundle id *and* destination, and only ever
//! matches a bundle for that destination: a node can acknowledge only what was sent
//! to it. A carrier that hands a bundle straight to its destination deletes its copy
//! at once (and records an unsigned ack it keeps to itself). Acks are kept until the
//! bundle would have expired (at most [`MAX_ACK_RETENTION_MS`]), [`MAX_ACKS`] at most.
//!
//! The router does not check signatures (it is fed by the simulator too, which has
//! no keys): the caller verifies acks from peers ([`Ack::verify`]) before handing
//! them over, and sends only signed ones.
//!
//! # Strategies
//! - **Direct delivery**: a bundle only ever goes to its destination (one copy, the
//!   source's; the baseline of the DTN literature).
//! - **Epidemic** (Vahdat & Becker 2000): every contact gets every bundle it lacks.
//! - **Binary spray-and-wait** (Spyropoulos et al. 2005): a source starts with L
//!   copies; a holder of n > 1 copies that meets a node without the bundle hands it
//!   ⌊n/2⌋ and keeps ⌈n/2⌉; a holder of one copy waits for the destination. Copies
//!   are reserved when planned, so parallel contacts can never hand out more than
//!   held, and returned if the transfer fails. Copy counts travel beside the bundle
//!   (the contact protocol carries [`Forward::copies`]), not inside it; a bundle that
//!   arrives without a count (TCPCL, a folder) holds one copy, which keeps the total
//!   at most L.
//! - **PRoPHET** (RFC 6693, GRTR forwarding): a bundle goes to a peer whose
//!   predictability for its destination is higher than ours (see [`prophet`]).
//!
//! Every strategy hands a bundle to its destination when they meet. Nothing is
//! random: plans are ordered by (to the destination first, higher priority first,
//! older first, id), so a run is repeatable and a simulator needs no seed here.

pub mod prophet;
mod vec_map;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::bundle::{BundleId, BundleMeta};
use super::sign::{SignError, Signature, ack_digest, sign_ack, verify_ack};
use super::{DtnMillis, NodeId};
pub use prophet::{ProphetConfig, ProphetTable};
use vec_map::{VecMap, seek};

/// Longest an acknowledgement is kept: 30 days. Bounds what a forged far-future
/// expiry can pin; a bundle that lives longer than this could, in principle, be
/// delivered twice after its ack is forgotten.
pub const MAX_ACK_RETENTION_MS: u64 = 30 * 24 * 3_600_000;

/// Most acks kept. At ~250 bytes each (id, destination, signature) this bounds them
/// to ~25 MB; past it unsigned ones and those that expire soonest are forgotten first.
pub const MAX_ACKS: usize = 100_000;

/// Most acks kept for one destination node, of those a peer's summary brings: a
/// quarter of [`MAX_ACKS`] (as a peer may fill a quarter of the store). A node may
/// sign acks for any id naming itself as destination, and they are valid; this
/// keeps one such node from pushing everyone else's acks out of the table.
pub const MAX_ACKS_PER_DESTINATION: usize = MAX_ACKS / 4;

/// Most bundle ids remembered from one peer's summaries.
pub const MAX_SUMMARY_IDS: usize = 100_000;

/// The routing strategy of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// A bundle only ever goes to its destination: one copy, the source's.
    DirectDelivery,
    /// Every contact gets every bundle it lacks.
    Epidemic,
    /// Binary spray-and-wait with `copies` (L) copies per bundle.
    SprayAndWait {
        /// Copies a new bundle starts with; at least 1 (a router raises 0 to 1).
        copies: u32,
    },
    /// A bundle goes to a peer more likely to meet its destination, by PRoPHET
    /// predictabilities with these settings (forced into range by the router).
    Prophet(ProphetConfig),
}

impl Strategy {
    /// Spray-and-wait's usual L for small networks (Spyropoulos et al. use L ≈ 10–16
    /// for 100 nodes); ferry's default.
    pub const DEFAULT_SPRAY_COPIES: u32 = 8;

    /// The strategy's name without parameters, as in the config file and logs (`direct`,
    /// `epidemic`, `spray`, `prophet`).
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::DirectDelivery => "direct",
            Strategy::Epidemic => "epidemic",
            Strategy::SprayAndWait { .. } => "spray",
            Strategy::Prophet(_) => "prophet",
        }
    }
}

/// `direct`, `epidemic`, `spray` / `spray:L`, `prophet`.
impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::SprayAndWait { copies } => write!(f, "spray:{copies}"),
            other => f.write_str(other.name()),
        }
    }
}

/// A text that names no strategy (or a bad copy count); carries it.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{0:?} is not a routing strategy: expected direct, epidemic, spray[:COPIES] or prophet")]
pub struct StrategyError(pub String);

impl FromStr for Strategy {
    type Err = StrategyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || StrategyError(text.to_owned());
        let lower = text.trim().to_ascii_lowercase();
        let (name, arg) = match lower.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (lower.as_str(), None),
        };
        match (name, arg) {
            ("direct", None) => Ok(Strategy::DirectDelivery),
            ("epidemic", None) => Ok(Strategy::Epidemic),
            ("prophet", None) => Ok(Strategy::Prophet(ProphetConfig::default())),
            ("spray", None) => Ok(Strategy::SprayAndWait {
                copies: Self::DEFAULT_SPRAY_COPIES,
            }),
            ("spray", Some(n)) => match n.parse::<u32>() {
                Ok(copies) if copies >= 1 => Ok(Strategy::SprayAndWait { copies }),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

/// "Bundle `id` reached `destination`", kept and spread until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The delivered bundle.
    pub id: BundleId,
    /// The bundle's destination node: the only node whose ack counts.
    pub destination: NodeId,
    /// When the bundle would have expired (DTN ms); the ack is kept until then, for at
    /// most [`MAX_ACK_RETENTION_MS`].
    pub expires_at: DtnMillis,
    /// The destination's signature over the three fields above; `None` for what a
    /// carrier records when it hands a bundle to its destination itself (kept, never
    /// sent) and in the simulator.
    pub signature: Option<Signature>,
}

impl Ack {
    /// An ack signed by `keypair`, which must be the destination's key.
    pub fn signed(
        keypair: &libp2p_identity::Keypair,
        id: BundleId,
        destination: NodeId,
        expires_at: DtnMillis,
    ) -> Result<Self, SignError> {
        let signature = sign_ack(
            keypair,
            &destination,
            &ack_digest(&id, &destination, expires_at),
        )?;
        Ok(Self {
            id,
            destination,
            expires_at,
            signature: Some(signature),
        })
    }

    /// Whether the destination signed this ack (CPU work: an ed25519 check). An
    /// unsigned ack, or one for a destination that is no ferry node, is not.
    pub fn verify(&self) -> bool {
        self.signature.as_ref().is_some_and(|sig| {
            verify_ack(
                &self.destination,
                &ack_digest(&self.id, &self.destination, self.expires_at),
                sig,
            )
        })
    }
}

/// Acks are kept per bundle and destination: an ack by one node never hides a
/// bundle for another that happens to have the same id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct AckKey {
    id: BundleId,
    destination: NodeId,
}

#[derive(Debug, Clone, PartialEq)]
struct AckEntry {
    /// Kept until then: the bundle's expiry, capped (see [`retained_until`]).
    keep_until: DtnMillis,
    /// The expiry the ack says (and its signature covers).
    expires_at: DtnMillis,
    signature: Option<Signature>,
}

impl AckEntry {
    fn arriving(expires_at: DtnMillis, signature: Option<Signature>, now: DtnMillis) -> Self {
        Self {
            keep_until: retained_until(expires_at, now),
            expires_at,
            signature,
        }
    }

    /// Of two acks of one bundle, a signed one beats an unsigned one (it can be passed
    /// on), then the one kept longer.
    fn rank(&self) -> (bool, DtnMillis) {
        (self.signature.is_some(), self.keep_until)
    }

    fn ack(&self, key: &AckKey) -> Ack {
        Ack {
            id: key.id.clone(),
            destination: key.destination.clone(),
            expires_at: self.expires_at,
            signature: self.signature.clone(),
        }
    }
}

/// What a node tells a peer at the start of a contact (and again when it changes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Ids of the bundles this node holds.
    pub holds: Vec<BundleId>,
    /// Deliveries this node knows of.
    pub acks: Vec<Ack>,
    /// PRoPHET: this node's predictabilities (empty under other strategies).
    pub predictabilities: Vec<(NodeId, f64)>,
}

/// What to do with a bundle that has just arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Store and carry it.
    New,
    /// It is for this node: deliver it, then call [`Router::on_delivered`].
    ForUs,
    /// Already held (a spray copy count is merged by [`Router::insert`]).
    Duplicate,
    /// Already delivered: drop it.
    AlreadyDelivered,
    /// Its lifetime is over: drop it.
    Expired,
}

/// Why a forward was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardReason {
    /// The peer is the bundle's destination.
    Destination,
    /// Epidemic replication.
    Replicate,
    /// Spray phase of spray-and-wait.
    Spray,
    /// The peer's predictability for the destination is higher than ours.
    Prophet,
}

/// "Send bundle `id` to the peer now, telling it it holds `copies` copies."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The bundle to send.
    pub id: BundleId,
    /// Spray-and-wait: the copies handed over (reserved here already). 1 otherwise.
    pub copies: u32,
    /// Which rule chose this peer, for logs and the simulator's figures.
    pub reason: ForwardReason,
}

/// Why a bundle left the router (and should leave the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Its destination has it (an ack arrived).
    Acked,
    /// Handed directly to its destination, which confirmed it.
    HandedToDestination,
    /// Its lifetime ended.
    Expired,
}

/// A bundle the router let go: the caller deletes it from the store and logs why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// What the router knew of it.
    pub meta: BundleMeta,
    /// Why it left.
    pub reason: Removal,
}

/// A held bundle and its spray-and-wait copy count (1 under other strategies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// What routing knows of the bundle.
    pub meta: BundleMeta,
    /// Spray-and-wait copies this node holds, not counting those reserved for transfers
    /// in flight; 1 under other strategies.
    pub copies: u32,
}

/// The durable part of a router, for the store to keep across restarts (contacts are
/// not durable: after a restart every link is new).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouterState {
    /// Every held bundle with its copy count.
    pub held: Vec<Held>,
    /// The delivery acknowledgements known, signed or not.
    pub acks: Vec<Ack>,
    /// The PRoPHET predictabilities, when the strategy is PRoPHET.
    pub prophet: Option<ProphetTable>,
}

/// The peer's holds and predictabilities are vectors, not trees: rebuilt from every
/// summary, read by every plan, dropped with the contact.
#[derive(Debug, Clone, Default)]
#[cfg_attr(test, derive(PartialEq))]
struct Contact {
    /// A summary arrived: we know what the peer holds.
    summarised: bool,
    holds: VecMap<BundleId, ()>,
    predictabilities: VecMap<NodeId, f64>,
    /// Planned, not yet confirmed or failed, with the copies reserved for it.
    in_flight: BTreeMap<BundleId, u32>,
    /// PRoPHET: held bundles `plan` found this peer no better a carrier for, and
    /// [`ProphetTable::lowered`] then. The peer's side stays as its summary said and
    /// ours can only have risen while that count stands, so the answer stands too:
    /// `plan`, asked again after every transfer, looks only at the rest.
    declined: Option<(u64, VecMap<BundleId, ()>)>,
}

/// A node's routing state machine.
#[derive(Debug, Clone)]
#[cfg_attr(test, derive(PartialEq))]
pub struct Router {
    local: NodeId,
    strategy: Strategy,
    held: BTreeMap<BundleId, Held>,
    /// A vector: every summary exchange walks all of them.
    acks: VecMap<AckKey, AckEntry>,
    contacts: BTreeMap<NodeId, Contact>,
    prophet: Option<(ProphetConfig, ProphetTable)>,
}

impl Router {
    /// An empty router for node `local`. Settings out of range are forced into range:
    /// spray-and-wait gets at least one copy, PRoPHET's settings are sanitized.
    pub fn new(local: NodeId, strategy: Strategy) -> Self {
        let strategy = match strategy {
            Strategy::SprayAndWait { copies } => Strategy::SprayAndWait {
                copies: copies.max(1),
            },
            Strategy::Prophet(config) => Strategy::Prophet(config.sanitized()),
            other => other,
        };
        let prophet = match &strategy {
            Strategy::Prophet(config) => Some((*config, ProphetTable::new())),
            _ => None,
        };
        Self {
            local,
            strategy,
            held: BTreeMap::new(),
            acks: VecMap::default(),
            contacts: BTreeMap::new(),
            prophet,
        }
    }

    /// A router restored from a saved [`RouterState`] (expired entries dropped, and
    /// held bundles that are also acknowledged: they were delivered; the caller's
    /// store reconciliation then finds them no longer held).
    pub fn from_state(
        local: NodeId,
        strategy: Strategy,
        state: RouterState,
        now: DtnMillis,
    ) -> Self {
        let mut router = Self::new(local, strategy);
        let max_copies = router.max_copies();
        for held in state.held {
            if !held.meta.is_expired(now) {
                let copies = held.copies.clamp(1, max_copies);
                router
                    .held
                    .insert(held.meta.id.clone(), Held { copies, ..held });
            }
        }
        router.record_acks(state.acks, now);
        // A router holds no bundle it knows delivered (summaries and plans rely on
        // it); only a state that `state()` did not write can list one as both.
        let acks = &router.acks;
        router
            .held
            .retain(|id, held| find_ack(acks, id, &held.meta.destination).is_none());
        if let (Some((_, table)), Some(saved)) = (router.prophet.as_mut(), state.prophet) {
            *table = saved;
        }
        router
    }

    /// The durable part of the router, for the store to save (see
    /// [`Router::from_state`]).
    pub fn state(&self) -> RouterState {
        RouterState {
            held: self.held.values().cloned().collect(),
            acks: self.acks().collect(),
            prophet: self.prophet.as_ref().map(|(_, table)| table.clone()),
        }
    }

    /// The node this router routes for.
    pub fn local(&self) -> &NodeId {
        &self.local
    }

    /// The strategy in use, with its settings as sanitized.
    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    /// Number of bundles held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether the router holds no bundle.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The held bundle `id` and its copy count, if held.
    pub fn held(&self, id: &BundleId) -> Option<&Held> {
        self.held.get(id)
    }

    /// The bundles held, in id order (what `evict::make_room` takes).
    pub fn bundles(&self) -> impl Iterator<Item = &BundleMeta> {
        self.held.values().map(|h| &h.meta)
    }

    /// The peers with an open contact.
    pub fn contacts(&self) -> impl Iterator<Item = &NodeId> {
        self.contacts.keys()
    }

    /// Whether a delivery of `id` to `destination` is known.
    pub fn is_acked(&self, id: &BundleId, destination: &NodeId) -> bool {
        find_ack(&self.acks, id, destination).is_some()
    }

    /// Whether the known delivery of `id` to `destination` carries its signature.
    pub fn is_acked_signed(&self, id: &BundleId, destination: &NodeId) -> bool {
        find_ack(&self.acks, id, destination).is_some_and(|e| e.signature.is_some())
    }

    /// Every delivery acknowledgement known, signed or not (unsigned ones are never sent
    /// to peers).
    pub fn acks(&self) -> impl Iterator<Item = Ack> + '_ {
        self.acks.iter().map(|(key, entry)| entry.ack(key))
    }

    /// Number of acks kept.
    pub fn ack_count(&self) -> usize {
        self.acks.len()
    }

    /// Whether a contact with `peer` is open (between `contact_up` and `contact_down`).
    pub fn has_contact(&self, peer: &NodeId) -> bool {
        self.contacts.contains_key(peer)
    }

    /// How many acks are kept for each destination (one pass over the table).
    pub fn acks_per_destination(&self) -> BTreeMap<NodeId, usize> {
        let mut counts: BTreeMap<NodeId, usize> = BTreeMap::new();
        for (key, _) in self.acks.iter() {
            match counts.get_mut(&key.destination) {
                Some(count) => *count += 1,
                None => {
                    counts.insert(key.destination.clone(), 1);
                }
            }
        }
        counts
    }

    /// PRoPHET's table (None under other strategies).
    pub fn prophet(&self) -> Option<&ProphetTable> {
        self.prophet.as_ref().map(|(_, table)| table)
    }

    /// What to do with an arriving bundle, before storing it.
    pub fn admission(&self, meta: &BundleMeta, now: DtnMillis) -> Admission {
        if self.is_acked(&meta.id, &meta.destination) {
            Admission::AlreadyDelivered
        } else if meta.is_expired(now) {
            Admission::Expired
        } else if meta.destination == self.local {
            Admission::ForUs
        } else if self.held.contains_key(&meta.id) {
            Admission::Duplicate
        } else {
            Admission::New
        }
    }

    /// Takes a stored bundle into routing. `copies` is the spray-and-wait count the
    /// sender granted (`None` when unknown: the node's own bundle starts with L, any
    /// other with 1); it is capped at L. A duplicate adds its copies to ours, so that
    /// copies are never lost or made. Returns what [`Router::admission`] says; only
    /// `New` and `Duplicate` change anything.
    pub fn insert(&mut self, meta: BundleMeta, copies: Option<u32>, now: DtnMillis) -> Admission {
        let admission = self.admission(&meta, now);
        let max = self.max_copies();
        let granted = match copies {
            Some(n) => n.clamp(1, max),
            None if meta.own => max,
            None => 1,
        };
        match admission {
            Admission::New => {
                self.held.insert(
                    meta.id.clone(),
                    Held {
                        meta,
                        copies: granted,
                    },
                );
            }
            Admission::Duplicate => {
                if let Some(held) = self.held.get_mut(&meta.id) {
                    held.copies = held.copies.saturating_add(granted).min(max);
                }
            }
            _ => {}
        }
        admission
    }

    /// This node is the destination and has delivered `id` to the application:
    /// remember the delivery (refusing the bundle from now on) and spread the ack.
    /// Records an unsigned ack: a caller with a key passes the signed ack to
    /// [`Router::on_ack`] as well (the signed one then stands).
    pub fn on_delivered(&mut self, id: &BundleId, expires_at: DtnMillis, now: DtnMillis) {
        self.held.remove(id);
        self.record_ack(
            Ack {
                id: id.clone(),
                destination: self.local.clone(),
                expires_at,
                signature: None,
            },
            now,
        );
    }

    /// An acknowledgement arrived from outside a summary (e.g. a folder import), or
    /// this node signed one. Returns the copy to delete, if we held one for that
    /// destination.
    pub fn on_ack(&mut self, ack: Ack, now: DtnMillis) -> Option<Removed> {
        let removed = self.remove_acked(&ack);
        self.record_ack(ack, now);
        removed
    }

    /// The held copy an ack frees: only a copy for the ack's destination.
    fn remove_acked(&mut self, ack: &Ack) -> Option<Removed> {
        if self.held.get(&ack.id)?.meta.destination != ack.destination {
            return None;
        }
        self.held.remove(&ack.id).map(|held| Removed {
            meta: held.meta,
            reason: Removal::Acked,
        })
    }

    /// The node dropped a bundle itself (evicted, or deleted by the user).
    pub fn remove(&mut self, id: &BundleId) -> Option<Held> {
        self.held.remove(id)
    }

    /// Drops expired bundles (returned, for the store to delete) and expired acks.
    pub fn expire(&mut self, now: DtnMillis) -> Vec<Removed> {
        let gone: Vec<BundleId> = self
            .held
            .values()
            .filter(|h| h.meta.is_expired(now))
            .map(|h| h.meta.id.clone())
            .collect();
        self.acks.retain(|(_, entry)| entry.keep_until > now);
        gone.into_iter()
            .filter_map(|id| self.held.remove(&id))
            .map(|held| Removed {
                meta: held.meta,
                reason: Removal::Expired,
            })
            .collect()
    }

    /// A link to `peer` opened.
    pub fn contact_up(&mut self, peer: &NodeId, now: DtnMillis) {
        // A second "up" without a "down" (a reconnect the node did not report):
        // start afresh, returning what the old contact had reserved.
        self.contact_down(peer, now);
        self.contacts.insert(peer.clone(), Contact::default());
        if let Some((config, table)) = self.prophet.as_mut() {
            table.encounter(config, peer, now);
        }
    }

    /// The link to `peer` closed. Transfers still in flight are treated as failed
    /// and their reserved copies returned: call [`Router::on_forwarded`] first for
    /// every transfer the peer confirmed.
    pub fn contact_down(&mut self, peer: &NodeId, _now: DtnMillis) {
        if let Some(contact) = self.contacts.remove(peer) {
            for (id, reserved) in contact.in_flight {
                self.refund(&id, reserved);
            }
        }
    }

    /// What to tell peers now.
    pub fn summary(&mut self, now: DtnMillis) -> Summary {
        self.age_prophet(now);
        Summary {
            holds: self.held.keys().cloned().collect(),
            acks: self.live_acks(now).collect(),
            predictabilities: self.predictabilities(),
        }
    }

    /// `peer`'s summary arrived. Returns the bundles its acknowledgements remove.
    /// A summary from a peer with no open contact (one that arrives, or is processed,
    /// after [`Router::contact_down`]) is ignored: contacts exist only between
    /// `contact_up` and `contact_down`.
    pub fn on_summary(&mut self, peer: &NodeId, summary: Summary, now: DtnMillis) -> Vec<Removed> {
        if !self.contacts.contains_key(peer) {
            return Vec::new();
        }
        let mut acks = summary.acks;
        acks.truncate(MAX_ACKS);
        let news: Vec<bool> = acks.iter().map(|ack| self.ack_is_news(ack, now)).collect();
        let fresh = news.iter().filter(|n| **n).count();
        // Skipping an ack that changes nothing is only exact while no trim to
        // MAX_ACKS can happen on the way: a trim may forget an ack the summary
        // would then have brought back.
        let acks = if self.acks.len() + fresh > MAX_ACKS {
            acks
        } else {
            acks.into_iter()
                .zip(news)
                .filter_map(|(ack, news)| news.then_some(ack))
                .collect()
        };
        let incoming = Incoming {
            holds: summary.holds,
            acks,
            predictabilities: summary.predictabilities,
        };
        self.apply_summary(peer, incoming, now)
    }

    /// Step 2 for two routers in one process (a simulator): the same as taking
    /// `a.summary(now)` and `b.summary(now)`, then giving each to the other's
    /// [`Router::on_summary`], without building the summaries. Most of what a
    /// summary says, the acknowledgements above all, the other side knows already;
    /// only the rest is copied. Returns what each side's acknowledgements removed,
    /// `a`'s first.
    pub fn exchange_summaries(
        a: &mut Router,
        b: &mut Router,
        now: DtnMillis,
    ) -> (Vec<Removed>, Vec<Removed>) {
        a.age_prophet(now);
        b.age_prophet(now);
        let (acks_for_a, acks_for_b) = ack_news(a, b, now);
        let for_a = b.summary_for(a, acks_for_a, now);
        let for_b = a.summary_for(b, acks_for_b, now);
        let removed_a = a.apply_summary(&b.local, for_a, now);
        let removed_b = b.apply_summary(&a.local, for_b, now);
        (removed_a, removed_b)
    }

    /// The bundles to send `peer` now, best first; spray copies are reserved as they
    /// are planned. Empty until the peer's summary has arrived.
    pub fn plan(&mut self, peer: &NodeId, now: DtnMillis) -> Vec<Forward> {
        if let Some((config, table)) = self.prophet.as_mut() {
            table.age(config, now);
        }
        let Some(contact) = self.contacts.get(peer) else {
            return Vec::new();
        };
        if !contact.summarised {
            return Vec::new();
        }
        let mut chosen: Vec<(&Held, Forward)> = Vec::new();
        // Both in id order: the peer's holds are walked alongside ours, one
        // comparison a step, rather than searched for each of ours; so are the
        // bundles declined before.
        let mut peer_holds = contact.holds.iter().peekable();
        let table = self.prophet.as_ref().map(|(_, table)| table);
        let lowered = table.map_or(0, |t| t.lowered());
        let declined_before = match &contact.declined {
            Some((at, ids)) if *at == lowered => ids.as_slice(),
            _ => &[],
        };
        let mut declined_walk = declined_before.iter().peekable();
        let mut declined_now: Vec<(BundleId, ())> = Vec::new();
        for held in self.held.values() {
            let id = &held.meta.id;
            if seek(&mut peer_holds, id, |(k, _)| k)
                || held.meta.is_expired(now)
                || contact.in_flight.contains_key(id)
            {
                continue;
            }
            let forward = |copies, reason| Forward {
                id: id.clone(),
                copies,
                reason,
            };
            let decision = if held.meta.destination == *peer {
                Some(forward(1, ForwardReason::Destination))
            } else {
                match &self.strategy {
                    Strategy::DirectDelivery => None,
                    Strategy::Epidemic => Some(forward(1, ForwardReason::Replicate)),
                    Strategy::SprayAndWait { .. } => {
                        (held.copies > 1).then(|| forward(held.copies / 2, ForwardReason::Spray))
                    }
                    Strategy::Prophet(_) if seek(&mut declined_walk, id, |(k, _)| k) => None,
                    Strategy::Prophet(_) => {
                        let destination = &held.meta.destination;
                        let theirs = contact
                            .predictabilities
                            .get(destination)
                            .copied()
                            .unwrap_or(0.0);
                        let ours = table.map_or(0.0, |t| t.get(destination));
                        if theirs > ours {
                            Some(forward(1, ForwardReason::Prophet))
                        } else {
                            declined_now.push((id.clone(), ()));
                            None
                        }
                    }
                }
            };
            if let Some(forward) = decision {
                chosen.push((held, forward));
            }
        }
        chosen.sort_by(|(a, fa), (b, fb)| {
            let direct = |f: &Forward| f.reason != ForwardReason::Destination;
            direct(fa)
                .cmp(&direct(fb))
                .then(b.meta.priority.cmp(&a.meta.priority))
                .then(a.meta.id.created().cmp(&b.meta.id.created()))
                .then(a.meta.id.cmp(&b.meta.id))
        });
        let plan: Vec<Forward> = chosen.into_iter().map(|(_, f)| f).collect();
        let contact = self.contacts.get_mut(peer).expect("checked above");
        if self.prophet.is_some() {
            let mut declined = match contact.declined.take() {
                Some((at, ids)) if at == lowered => ids,
                _ => VecMap::default(),
            };
            declined.merge_all(declined_now, |_, _| {});
            contact.declined = Some((lowered, declined));
        }
        // Reserve: spray copies leave our count now; everything is marked in flight.
        for forward in &plan {
            let reserved = if forward.reason == ForwardReason::Spray {
                forward.copies
            } else {
                0
            };
            if let Some(held) = self.held.get_mut(&forward.id) {
                held.copies -= reserved;
            }
            contact.in_flight.insert(forward.id.clone(), reserved);
        }
        plan
    }

    /// `peer` confirmed it has `id`. Returns the removal when the peer was the
    /// destination (our copy is no longer needed, and the delivery is acknowledged).
    pub fn on_forwarded(
        &mut self,
        peer: &NodeId,
        id: &BundleId,
        now: DtnMillis,
    ) -> Option<Removed> {
        if let Some(contact) = self.contacts.get_mut(peer) {
            contact.in_flight.remove(id);
            if contact.holds.len() < MAX_SUMMARY_IDS {
                contact.holds.insert(id.clone(), ());
            }
        }
        let to_destination = self
            .held
            .get(id)
            .is_some_and(|held| held.meta.destination == *peer);
        if !to_destination {
            return None;
        }
        let held = self.held.remove(id)?;
        self.record_ack(
            Ack {
                id: id.clone(),
                destination: peer.clone(),
                expires_at: held.meta.expires_at,
                signature: None,
            },
            now,
        );
        Some(Removed {
            meta: held.meta,
            reason: Removal::HandedToDestination,
        })
    }

    /// `peer` turned `id` down because it already has it (or is receiving it from
    /// someone else): reserved copies come back, and it is not offered there again.
    pub fn on_peer_has(&mut self, peer: &NodeId, id: &BundleId) {
        self.on_forward_failed(peer, id);
        if let Some(contact) = self.contacts.get_mut(peer)
            && contact.holds.len() < MAX_SUMMARY_IDS
        {
            contact.holds.insert(id.clone(), ());
        }
    }

    /// The transfer of `id` to `peer` failed before the peer could have stored it
    /// (refused, never started): its reserved copies come back.
    pub fn on_forward_failed(&mut self, peer: &NodeId, id: &BundleId) {
        let reserved = self
            .contacts
            .get_mut(peer)
            .and_then(|contact| contact.in_flight.remove(id));
        if let Some(reserved) = reserved {
            self.refund(id, reserved);
        }
    }

    /// Copies reserved for transfers in flight to all peers, for one bundle
    /// (the simulator's copy accounting).
    pub fn copies_in_flight(&self, id: &BundleId) -> u32 {
        self.contacts
            .values()
            .filter_map(|c| c.in_flight.get(id))
            .sum()
    }

    fn age_prophet(&mut self, now: DtnMillis) {
        if let Some((config, table)) = self.prophet.as_mut() {
            table.age(config, now);
        }
    }

    /// The acks a summary carries: those still alive.
    fn live_acks(&self, now: DtnMillis) -> impl Iterator<Item = Ack> + '_ {
        self.acks
            .iter()
            .filter(move |(_, e)| e.keep_until > now)
            .map(|(key, entry)| entry.ack(key))
    }

    fn predictabilities(&self) -> Vec<(NodeId, f64)> {
        match &self.prophet {
            Some((_, table)) => table.iter().map(|(n, p)| (n.clone(), p)).collect(),
            None => Vec::new(),
        }
    }

    /// Whether `on_ack` would record the ack (new, or better than the one known) or
    /// delete a held copy.
    pub fn ack_is_news(&self, ack: &Ack, now: DtnMillis) -> bool {
        let alive = ack.expires_at > now;
        match find_ack(&self.acks, &ack.id, &ack.destination) {
            // No copy to delete: a router holds no bundle it knows delivered.
            Some(known) => {
                alive
                    && AckEntry::arriving(ack.expires_at, ack.signature.clone(), now).rank()
                        > known.rank()
            }
            None => {
                alive
                    || self
                        .held
                        .get(&ack.id)
                        .is_some_and(|h| h.meta.destination == ack.destination)
            }
        }
    }

    /// What `self.summary(now)` tells `peer` (holds, acks, predictabilities), its
    /// acks cut to `acks`, those `peer`'s `on_summary` would not skip (see
    /// [`ack_news`]). `self`'s table is aged.
    fn summary_for(&self, peer: &Router, mut acks: Vec<Ack>, now: DtnMillis) -> Incoming {
        // As in `on_summary`: where a trim may happen, every ack, in order.
        if peer.acks.len() + acks.len() > MAX_ACKS {
            acks = self.live_acks(now).take(MAX_ACKS).collect();
        }
        let predictabilities = if peer.prophet.is_some() {
            self.predictabilities()
        } else {
            Vec::new()
        };
        Incoming {
            holds: self.held.keys().cloned().collect(),
            acks,
            predictabilities,
        }
    }

    /// The body of `on_summary`, with the acks already cut to those that matter.
    fn apply_summary(&mut self, peer: &NodeId, incoming: Incoming, now: DtnMillis) -> Vec<Removed> {
        let Incoming {
            holds,
            acks,
            predictabilities,
        } = incoming;
        let Some(contact) = self.contacts.get_mut(peer) else {
            return Vec::new();
        };
        contact.summarised = true;
        let in_order = holds.is_sorted_by(|x, y| x < y);
        let holds = holds.into_iter().map(|id| (id, ()));
        if contact.holds.is_empty() && in_order {
            // In id order without repeats, as a router lists them: taken as they are.
            contact.holds = VecMap::from_sorted(holds.take(MAX_SUMMARY_IDS).collect());
        } else if contact.holds.len() + holds.len() <= MAX_SUMMARY_IDS {
            contact.holds.merge_all(holds.collect(), |_, _| {});
        } else {
            // Which ids fit under the bound depends on their order: one by one.
            let mut set: BTreeSet<BundleId> =
                std::mem::take(&mut contact.holds).into_keys().collect();
            for (id, ()) in holds {
                if set.len() >= MAX_SUMMARY_IDS {
                    break;
                }
                set.insert(id);
            }
            contact.holds = VecMap::from_sorted(set.into_iter().map(|id| (id, ())).collect());
        }
        if self.prophet.is_some() {
            contact.declined = None;
            let mut preds = predictabilities;
            preds.truncate(prophet::MAX_PROPHET_ENTRIES);
            for (_, p) in &mut preds {
                *p = prophet::clamp_unit(*p);
            }
            contact.predictabilities = if preds.is_sorted_by(|x, y| x.0 < y.0) {
                VecMap::from_sorted(preds)
            } else {
                // A repeated node keeps its last value, as a map filled in order would.
                preds.into_iter().collect()
            };
        }
        // What `on_ack` does for each, in two passes: copies and acks are apart.
        let removed = acks
            .iter()
            .filter_map(|ack| self.remove_acked(ack))
            .collect();
        self.record_acks(acks, now);
        if let Some((config, table)) = self.prophet.as_mut()
            && let Some(contact) = self.contacts.get(peer)
        {
            table.transitive_in_order(
                config,
                &self.local,
                peer,
                contact.predictabilities.iter().map(|(n, p)| (n, *p)),
                now,
            );
        }
        removed
    }

    fn refund(&mut self, id: &BundleId, reserved: u32) {
        if let Some(held) = self.held.get_mut(id) {
            held.copies = held.copies.saturating_add(reserved);
        }
    }

    fn max_copies(&self) -> u32 {
        match self.strategy {
            Strategy::SprayAndWait { copies } => copies,
            _ => 1,
        }
    }

    fn record_ack(&mut self, ack: Ack, now: DtnMillis) {
        if ack.expires_at <= now {
            return;
        }
        let (key, entry) = ack_entry(ack, now);
        self.acks.merge(key, entry, keep_better);
        if self.acks.len() > MAX_ACKS {
            // Forget a tenth in one go (unsigned first, then the soonest-expiring), so
            // a flood costs one pass per 10 000 acks rather than one scan per ack.
            self.acks
                .remove_lowest(MAX_ACKS / 10, |a, b| a.rank().cmp(&b.rank()));
        }
    }

    /// `record_ack` for each, in order: runs too short to reach MAX_ACKS (where the
    /// order would matter) are merged in one pass each, so a summary or a saved
    /// state of many acks costs no more than a few passes over all of them.
    fn record_acks(&mut self, acks: Vec<Ack>, now: DtnMillis) {
        let mut acks = acks
            .into_iter()
            .filter(|ack| ack.expires_at > now)
            .peekable();
        while acks.peek().is_some() {
            let room = MAX_ACKS.saturating_sub(self.acks.len());
            if room == 0 {
                let ack = acks.next().expect("peeked");
                self.record_ack(ack, now);
            } else {
                let batch = acks.by_ref().take(room).map(|a| ack_entry(a, now));
                self.acks.merge_all(batch.collect(), keep_better);
            }
        }
    }
}

/// A peer's summary as `apply_summary` takes it: the acks cut to those that matter.
struct Incoming {
    holds: Vec<BundleId>,
    acks: Vec<Ack>,
    predictabilities: Vec<(NodeId, f64)>,
}

/// Of two acks of one bundle, the better stands (see [`AckEntry::rank`]).
fn keep_better(known: &mut AckEntry, arriving: AckEntry) {
    if arriving.rank() > known.rank() {
        *known = arriving;
    }
}

fn ack_entry(ack: Ack, now: DtnMillis) -> (AckKey, AckEntry) {
    let entry = AckEntry::arriving(ack.expires_at, ack.signature, now);
    let key = AckKey {
        id: ack.id,
        destination: ack.destination,
    };
    (key, entry)
}

/// The ack of `id` for `destination`, searched without building a key.
fn find_ack<'a>(
    acks: &'a VecMap<AckKey, AckEntry>,
    id: &BundleId,
    destination: &NodeId,
) -> Option<&'a AckEntry> {
    let entries = acks.as_slice();
    entries
        .binary_search_by(|(k, _)| k.id.cmp(id).then_with(|| k.destination.cmp(destination)))
        .ok()
        .map(|i| &entries[i].1)
}

/// How long an ack arriving at `now` is kept: until its bundle expires, capped.
fn retained_until(expires_at: DtnMillis, now: DtnMillis) -> DtnMillis {
    expires_at.min(now.saturating_add(MAX_ACK_RETENTION_MS))
}

/// The acks each of two routers would take from the other's summary (those
/// [`Router::ack_is_news`] finds), `(for a, for b)`, each in id order: one walk over
/// both lists (in id order too) finds both, one comparison a step, where searching
/// one list for every entry of the other would cost a logarithm of comparisons each.
fn ack_news(a: &Router, b: &Router, now: DtnMillis) -> (Vec<Ack>, Vec<Ack>) {
    // A summary lists only live acks; one that is unknown is news, a known one is if
    // it ranks higher. Neither side holds a bundle it knows delivered.
    let news = |to: &mut Vec<Ack>, key: &AckKey, entry: &AckEntry, known: Option<&AckEntry>| {
        let arriving = AckEntry::arriving(entry.expires_at, entry.signature.clone(), now);
        if entry.keep_until > now && known.is_none_or(|k| k.rank() < arriving.rank()) {
            to.push(entry.ack(key));
        }
    };
    let (mut for_a, mut for_b) = (Vec::new(), Vec::new());
    let (mut of_a, mut of_b) = (a.acks.as_slice(), b.acks.as_slice());
    loop {
        match (of_a.split_first(), of_b.split_first()) {
            (Some(((x, ex), rest_a)), Some(((y, ey), rest_b))) => match x.cmp(y) {
                Ordering::Less => {
                    news(&mut for_b, x, ex, None);
                    of_a = rest_a;
                }
                Ordering::Greater => {
                    news(&mut for_a, y, ey, None);
                    of_b = rest_b;
                }
                Ordering::Equal => {
                    news(&mut for_a, y, ey, Some(ex));
                    news(&mut for_b, x, ex, Some(ey));
                    of_a = rest_a;
                    of_b = rest_b;
                }
            },
            (Some(((x, ex), rest)), None) => {
                news(&mut for_b, x, ex, None);
                of_a = rest;
            }
            (None, Some(((y, ey), rest))) => {
                news(&mut for_a, y, ey, None);
                of_b = rest;
            }
            (None, None) => return (for_a, for_b),
        }
    }
}

#[cfg(test)]
mod contact_tests;
#[cfg(test)]
mod tests;
