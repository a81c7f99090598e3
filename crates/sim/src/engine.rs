//! The discrete-event engine, driving one `ferry_core::dtn::Router` per node.
//!
//! Three sources of events, merged in one deterministic order:
//!
//! 1. the engine's own queue (a transfer completes, a bundle expires, a long contact
//!    re-exchanges summaries, hourly housekeeping), ordered by time and then by the
//!    order they were scheduled;
//! 2. bundle creations from the traffic generator;
//! 3. contact up/down events from the plan or the mobility model.
//!
//! At equal times the queue goes first, then creations, then contacts: a transfer
//! that completes exactly when its contact ends has completed, and a bundle created
//! when a contact starts is offered on it.
//!
//! # The model
//! - **Routing is the core's.** Each node runs a [`Router`] and the engine follows
//!   the contact protocol its documentation describes: `contact_up`, summaries
//!   exchanged both ways (`Router::exchange_summaries`: the same as feeding each
//!   side's `summary` to the other's `on_summary`, whose acknowledgements delete
//!   copies, without building them), `plan` for what to send, `admission` / `insert` / `on_delivered` at
//!   the receiver, `on_forwarded` / `on_peer_has` / `on_forward_failed` at the
//!   sender, `contact_down`. Copies the router drops, the engine drops from the store.
//! - **Storage is the core's policy.** Each node has a [`Quota`] (the daemon's:
//!   a quarter of the store per peer) and room is made with [`evict::make_room`];
//!   a bundle that cannot be stored is refused.
//! - **Links.** A contact is a full-duplex link with the scenario's rate each way.
//!   One bundle crosses a direction at a time, taking `ceil(size · 1000 / rate)` ms;
//!   if the contact ends first the bundle is lost for that hop (an aborted
//!   transmission). Summaries cost no link time. Before a bundle is sent, the
//!   receiver's router is asked (`admission`) and its store checked, as an
//!   offer/accept exchange would: a copy the peer has, is receiving from someone
//!   else, knows to be delivered, or has no room for is not sent.
//! - **Planning.** A direction asks its router for a plan when it has nothing queued,
//!   and again whenever its node gains a bundle while the direction is idle.
//! - **Long contacts** re-exchange summaries every [`RESUMMARY_MS`], so that
//!   acknowledgements learnt meanwhile reach always-on neighbours (standing in for
//!   the summary updates a node sends over a long-lived connection). This is not a
//!   new encounter: PRoPHET counts one per `contact_up` only.
//! - **Lifetimes.** A bundle expires everywhere at `created + lifetime` (copies are
//!   removed from stores at that instant); one that arrives later is discarded, and
//!   a destination receiving it then does not count it delivered.
//! - **Time.** Virtual time 0 is [`SIM_EPOCH_DTN_MS`] in DTN time (2026-01-01 UTC).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};

use ferry_core::dtn::{
    Admission, BundleId, BundleMeta, CreationClock, DtnMillis, Eid, Forward, NodeId, Priority,
    Quota, Refusal, Room, Router, Strategy, evict,
};

use crate::metrics::{Report, Tally};
use crate::scenario::World;
use crate::traffic::NewBundle;
use crate::{NodeIdx, VirtMs};

/// DTN time (ms since 2000-01-01 UTC) of virtual time 0: 2026-01-01 00:00 UTC.
pub const SIM_EPOCH_DTN_MS: DtnMillis = 820_540_800_000;

/// How often a contact that stays up re-exchanges summaries.
pub const RESUMMARY_MS: VirtMs = 10 * 60 * 1000;

/// How often every router is asked to forget expired state (acks, bundles).
pub const HOUSEKEEPING_MS: VirtMs = 60 * 60 * 1000;

/// Index of a bundle in a run (its creation order).
pub type BundleIdx = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// A bundle finished crossing link `link` (its id) from `from` to `to`.
    Done {
        link: u64,
        from: NodeIdx,
        to: NodeIdx,
        bundle: BundleIdx,
        copies: u32,
    },
    Expire(BundleIdx),
    Resummary {
        link: u64,
        a: NodeIdx,
        b: NodeIdx,
    },
    Housekeeping,
}

#[derive(Debug, Default)]
struct Direction {
    queue: VecDeque<Forward>,
    busy: Option<BundleIdx>,
}

#[derive(Debug)]
struct Link {
    id: u64,
    /// `[low → high, high → low]`.
    dirs: [Direction; 2],
}

struct Node {
    id: NodeId,
    endpoint: Eid,
    clock: CreationClock,
    router: Router,
    /// Mirrors what the router holds, for byte accounting and expiry.
    held: BTreeSet<BundleIdx>,
    bytes: u64,
    peers: Vec<NodeIdx>,
    receiving: BTreeSet<BundleIdx>,
}

struct Bundle {
    /// As its source holds it (`own`, no `received_from`).
    meta: BundleMeta,
    created: VirtMs,
    /// Nodes that ever stored a copy, the source included.
    holders_ever: u32,
    holders: Vec<NodeIdx>,
    delivered: bool,
}

/// What the receiver made of a bundle, for the sender's router.
enum Outcome {
    Forwarded,
    PeerHas,
    Failed,
}

/// One run of one strategy over a world.
pub struct Engine<'w> {
    world: &'w World,
    strategy: Strategy,
    seed: u64,
    quota: Quota,
    now: VirtMs,
    nodes: Vec<Node>,
    bundles: Vec<Bundle>,
    index: HashMap<BundleId, BundleIdx>,
    links: HashMap<(NodeIdx, NodeIdx), Link>,
    next_link: u64,
    queue: BinaryHeap<Reverse<(VirtMs, u64, Ev)>>,
    seq: u64,
    tally: Tally,
}

/// Runs `strategy` over `world` and reports.
pub fn run(world: &World, strategy: &Strategy, seed: u64) -> Report {
    let started = std::time::Instant::now();
    let mut e = Engine::new(world, strategy.clone(), seed);
    e.run_to_end();
    let mut r = e.report();
    r.wall_s = Some(started.elapsed().as_secs_f64());
    r
}

fn dtn(t: VirtMs) -> DtnMillis {
    SIM_EPOCH_DTN_MS + t
}

impl<'w> Engine<'w> {
    /// Node `i` (the world's `names[i]`) is `ipn:(i+1).0`.
    pub fn new(world: &'w World, strategy: Strategy, seed: u64) -> Self {
        let nodes = (0..world.names.len())
            .map(|i| {
                // Numbered `ipn:` nodes: ids compare as integers, not strings, which
                // matters when routers compare ids millions of times.
                let number = i as u64 + 1;
                let id = Eid::ipn(number, 0)
                    .ok()
                    .and_then(|e| e.node_id())
                    .expect("ipn:N.0 is a node id");
                Node {
                    endpoint: Eid::ipn(number, 1).expect("a valid ipn endpoint"),
                    router: Router::new(id.clone(), strategy.clone()),
                    id,
                    clock: CreationClock::new(),
                    held: BTreeSet::new(),
                    bytes: 0,
                    peers: Vec::new(),
                    receiving: BTreeSet::new(),
                }
            })
            .collect();
        let mut quota = Quota::new(world.quota);
        if let Some(per_peer) = world.quota_per_peer {
            quota.max_bytes_per_peer = (per_peer > 0).then_some(per_peer);
        }
        let mut e = Self {
            world,
            strategy,
            seed,
            quota,
            now: 0,
            nodes,
            bundles: Vec::with_capacity(world.bundles.len()),
            index: HashMap::with_capacity(world.bundles.len()),
            links: HashMap::new(),
            next_link: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            tally: Tally::default(),
        };
        e.schedule(HOUSEKEEPING_MS, Ev::Housekeeping);
        e
    }

    /// Processes every event up to the end of the scenario.
    pub fn run_to_end(&mut self) {
        self.run_until(self.world.duration);
    }

    /// Processes every event at or before `until` (capped at the scenario's end).
    pub fn run_until(&mut self, until: VirtMs) {
        let until = until.min(self.world.duration);
        let world = self.world;
        loop {
            let tq = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let tb = world.bundles.get(self.bundles.len()).map(|b| b.at);
            let tc = world
                .contacts
                .get(self.tally.contact_events as usize)
                .map(|c| c.at);
            let Some(t) = [tq, tb, tc].into_iter().flatten().min() else {
                break;
            };
            if t > until {
                break;
            }
            self.now = t;
            if tq == Some(t) {
                let Reverse((_, _, ev)) = self.queue.pop().expect("peeked");
                self.handle(ev);
            } else if tb == Some(t) {
                let nb = world.bundles[self.bundles.len()];
                self.create(nb);
            } else {
                let c = world.contacts[self.tally.contact_events as usize];
                self.tally.contact_events += 1;
                if c.up {
                    self.contact_up(c.a, c.b);
                } else {
                    self.contact_down(c.a, c.b);
                }
            }
        }
        self.now = self.now.max(until);
    }

    pub fn report(&self) -> Report {
        let mut r = self.tally.report(
            &self.world.name,
            self.strategy.name(),
            self.seed,
            self.nodes.len(),
        );
        r.strategy_detail = self.strategy.to_string();
        r.max_holders_per_bundle = self
            .bundles
            .iter()
            .map(|b| b.holders_ever)
            .max()
            .unwrap_or(0);
        r
    }

    /// Spray-and-wait accounting for one bundle: copies held plus copies reserved
    /// for transfers in flight, over all nodes.
    pub fn copies_in_network(&self, b: BundleIdx) -> u32 {
        let id = &self.bundles[b as usize].meta.id;
        self.nodes
            .iter()
            .map(|n| n.router.held(id).map_or(0, |h| h.copies) + n.router.copies_in_flight(id))
            .sum()
    }

    /// How many nodes ever stored a copy of each bundle (the source included).
    pub fn holders_ever(&self) -> Vec<u32> {
        self.bundles.iter().map(|b| b.holders_ever).collect()
    }

    /// Bundles created so far.
    pub fn bundles_created(&self) -> usize {
        self.bundles.len()
    }

    /// Node `n`'s router, for inspection.
    pub fn router(&self, n: NodeIdx) -> &Router {
        &self.nodes[n as usize].router
    }

    /// Whether bundle `b` has reached its destination.
    pub fn delivered(&self, b: BundleIdx) -> bool {
        self.bundles[b as usize].delivered
    }

    /// Whether node `n`'s store holds bundle `b`.
    pub fn holds(&self, n: NodeIdx, b: BundleIdx) -> bool {
        self.nodes[n as usize].held.contains(&b)
    }

    fn schedule(&mut self, at: VirtMs, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Done {
                link,
                from,
                to,
                bundle,
                copies,
            } => self.transfer_done(link, from, to, bundle, copies),
            Ev::Expire(b) => self.expire(b),
            Ev::Resummary { link, a, b } => {
                if self.links.get(&(a, b)).is_some_and(|l| l.id == link) {
                    self.exchange_summaries(a, b);
                    self.pump(a, b);
                    self.pump(b, a);
                    self.schedule(self.now + RESUMMARY_MS, Ev::Resummary { link, a, b });
                }
            }
            Ev::Housekeeping => {
                let now = dtn(self.now);
                for n in 0..self.nodes.len() {
                    for gone in self.nodes[n].router.expire(now) {
                        if let Some(&b) = self.index.get(&gone.meta.id)
                            && self.unhold(n as NodeIdx, b)
                        {
                            self.tally.expired += 1;
                        }
                    }
                }
                self.schedule(self.now + HOUSEKEEPING_MS, Ev::Housekeeping);
            }
        }
    }

    fn create(&mut self, nb: NewBundle) {
        let idx = self.bundles.len() as BundleIdx;
        let now = dtn(self.now);
        let src = &mut self.nodes[nb.src as usize];
        let created = src.clock.next(now);
        let meta = BundleMeta {
            id: BundleId::new(src.endpoint.clone(), created),
            destination: self.nodes[nb.dst as usize].id.clone(),
            size: nb.size,
            priority: Priority::Normal,
            expires_at: now.saturating_add(nb.lifetime),
            own: true,
            received_from: None,
        };
        self.index.insert(meta.id.clone(), idx);
        self.bundles.push(Bundle {
            meta: meta.clone(),
            created: self.now,
            holders_ever: 0,
            holders: Vec::new(),
            delivered: false,
        });
        self.tally.created += 1;
        self.schedule(self.now.saturating_add(nb.lifetime), Ev::Expire(idx));
        match self.room(nb.src, &meta) {
            Ok(room) => {
                self.apply_room(nb.src, &room);
                self.nodes[nb.src as usize].router.insert(meta, None, now);
                self.hold(nb.src, idx);
                self.kick(nb.src);
            }
            // The application is told the store is full; the bundle never exists.
            Err(_) => self.tally.refused_full += 1,
        }
    }

    fn contact_up(&mut self, a: NodeIdx, b: NodeIdx) {
        self.tally.contacts += 1;
        self.next_link += 1;
        let link = self.next_link;
        self.links.insert(
            (a, b),
            Link {
                id: link,
                dirs: Default::default(),
            },
        );
        self.nodes[a as usize].peers.push(b);
        self.nodes[b as usize].peers.push(a);
        let now = dtn(self.now);
        let (ida, idb) = (
            self.nodes[a as usize].id.clone(),
            self.nodes[b as usize].id.clone(),
        );
        self.nodes[a as usize].router.contact_up(&idb, now);
        self.nodes[b as usize].router.contact_up(&ida, now);
        self.exchange_summaries(a, b);
        self.pump(a, b);
        self.pump(b, a);
        self.schedule(self.now + RESUMMARY_MS, Ev::Resummary { link, a, b });
    }

    fn exchange_summaries(&mut self, a: NodeIdx, b: NodeIdx) {
        let now = dtn(self.now);
        let [na, nb] = self
            .nodes
            .get_disjoint_mut([a as usize, b as usize])
            .expect("a contact joins two different nodes");
        let (removed_a, removed_b) =
            Router::exchange_summaries(&mut na.router, &mut nb.router, now);
        for (me, removed) in [(a, removed_a), (b, removed_b)] {
            for gone in removed {
                if let Some(&idx) = self.index.get(&gone.meta.id) {
                    self.unhold(me, idx);
                }
            }
        }
    }

    fn contact_down(&mut self, a: NodeIdx, b: NodeIdx) {
        let Some(link) = self.links.remove(&(a, b)) else {
            return;
        };
        for (dir, to) in link.dirs.iter().zip([b, a]) {
            if let Some(bundle) = dir.busy {
                self.tally.aborted += 1;
                self.nodes[to as usize].receiving.remove(&bundle);
            }
        }
        let now = dtn(self.now);
        let (ida, idb) = (
            self.nodes[a as usize].id.clone(),
            self.nodes[b as usize].id.clone(),
        );
        // In-flight and queued forwards count as failed: the router refunds them.
        self.nodes[a as usize].router.contact_down(&idb, now);
        self.nodes[b as usize].router.contact_down(&ida, now);
        self.nodes[a as usize].peers.retain(|&p| p != b);
        self.nodes[b as usize].peers.retain(|&p| p != a);
    }

    /// Starts the next transfer from `from` to `to` if that direction is idle,
    /// planning when nothing is queued.
    fn pump(&mut self, from: NodeIdx, to: NodeIdx) {
        let key = (from.min(to), from.max(to));
        let dir = usize::from(from > to);
        let mut planned = false;
        loop {
            let Some(link) = self.links.get_mut(&key) else {
                return;
            };
            let link_id = link.id;
            let d = &mut link.dirs[dir];
            if d.busy.is_some() {
                return;
            }
            let Some(forward) = d.queue.pop_front() else {
                if planned {
                    return;
                }
                planned = true;
                let peer = self.nodes[to as usize].id.clone();
                let plan = self.nodes[from as usize].router.plan(&peer, dtn(self.now));
                if plan.is_empty() {
                    return;
                }
                self.links.get_mut(&key).expect("present").dirs[dir]
                    .queue
                    .extend(plan);
                continue;
            };
            let peer = self.nodes[to as usize].id.clone();
            let Some(&idx) = self.index.get(&forward.id) else {
                self.nodes[from as usize]
                    .router
                    .on_forward_failed(&peer, &forward.id);
                continue;
            };
            match self.offer(from, to, idx) {
                Some(Outcome::PeerHas) => {
                    self.nodes[from as usize]
                        .router
                        .on_peer_has(&peer, &forward.id);
                    continue;
                }
                Some(_) => {
                    self.nodes[from as usize]
                        .router
                        .on_forward_failed(&peer, &forward.id);
                    continue;
                }
                None => {}
            }
            let size = self.bundles[idx as usize].meta.size;
            let ms = (size * 1000).div_ceil(self.world.link_rate).max(1);
            self.links.get_mut(&key).expect("present").dirs[dir].busy = Some(idx);
            self.nodes[to as usize].receiving.insert(idx);
            self.schedule(
                self.now + ms,
                Ev::Done {
                    link: link_id,
                    from,
                    to,
                    bundle: idx,
                    copies: forward.copies,
                },
            );
            return;
        }
    }

    /// Whether `to` would accept `idx` from `from` now: `None` if so, otherwise why
    /// not.
    fn offer(&self, from: NodeIdx, to: NodeIdx, idx: BundleIdx) -> Option<Outcome> {
        let now = dtn(self.now);
        let b = &self.bundles[idx as usize];
        let sender = &self.nodes[from as usize];
        if sender.router.held(&b.meta.id).is_none() || b.meta.is_expired(now) {
            return Some(Outcome::Failed);
        }
        let receiver = &self.nodes[to as usize];
        if receiver.receiving.contains(&idx) {
            return Some(Outcome::PeerHas);
        }
        let relayed = b.meta.relayed(&sender.id);
        match receiver.router.admission(&relayed, now) {
            Admission::ForUs => None,
            Admission::New => match self.room(to, &relayed) {
                Ok(_) => None,
                Err(_) => Some(Outcome::Failed),
            },
            Admission::Duplicate | Admission::AlreadyDelivered => Some(Outcome::PeerHas),
            Admission::Expired => Some(Outcome::Failed),
        }
    }

    fn transfer_done(
        &mut self,
        link: u64,
        from: NodeIdx,
        to: NodeIdx,
        idx: BundleIdx,
        copies: u32,
    ) {
        let key = (from.min(to), from.max(to));
        let dir = usize::from(from > to);
        match self.links.get_mut(&key) {
            Some(l) if l.id == link && l.dirs[dir].busy == Some(idx) => l.dirs[dir].busy = None,
            // The contact ended (and perhaps came back) before this completed.
            _ => return,
        }
        self.nodes[to as usize].receiving.remove(&idx);
        self.tally.transmissions += 1;
        let now = dtn(self.now);
        let (from_id, to_id) = (
            self.nodes[from as usize].id.clone(),
            self.nodes[to as usize].id.clone(),
        );
        let relayed = self.bundles[idx as usize].meta.relayed(&from_id);
        let id = relayed.id.clone();
        let mut gained = false;
        let outcome = match self.nodes[to as usize].router.admission(&relayed, now) {
            Admission::ForUs => {
                let b = &mut self.bundles[idx as usize];
                if !b.delivered {
                    b.delivered = true;
                    self.tally.delays_ms.push(self.now - b.created);
                } else {
                    self.tally.duplicate_deliveries += 1;
                }
                let expires = relayed.expires_at;
                self.nodes[to as usize]
                    .router
                    .on_delivered(&id, expires, now);
                Outcome::Forwarded
            }
            Admission::New => match self.room(to, &relayed) {
                Ok(room) => {
                    self.apply_room(to, &room);
                    self.nodes[to as usize]
                        .router
                        .insert(relayed, Some(copies), now);
                    self.hold(to, idx);
                    self.tally.replicas += 1;
                    gained = true;
                    Outcome::Forwarded
                }
                Err(_) => {
                    self.tally.refused_full += 1;
                    Outcome::Failed
                }
            },
            Admission::Duplicate => {
                self.nodes[to as usize]
                    .router
                    .insert(relayed, Some(copies), now);
                Outcome::Forwarded
            }
            Admission::AlreadyDelivered => Outcome::PeerHas,
            Admission::Expired => Outcome::Failed,
        };
        let sender = &mut self.nodes[from as usize].router;
        match outcome {
            Outcome::Forwarded => {
                if sender.on_forwarded(&to_id, &id, now).is_some() {
                    self.unhold(from, idx);
                }
            }
            Outcome::PeerHas => sender.on_peer_has(&to_id, &id),
            Outcome::Failed => sender.on_forward_failed(&to_id, &id),
        }
        self.pump(from, to);
        if gained {
            self.kick(to);
        }
    }

    fn expire(&mut self, b: BundleIdx) {
        let holders = std::mem::take(&mut self.bundles[b as usize].holders);
        let id = self.bundles[b as usize].meta.id.clone();
        for n in holders {
            self.nodes[n as usize].router.remove(&id);
            if self.unhold(n, b) {
                self.tally.expired += 1;
            }
        }
    }

    /// Offers new bundles on every idle link of `n`.
    fn kick(&mut self, n: NodeIdx) {
        let peers = self.nodes[n as usize].peers.clone();
        for p in peers {
            self.pump(n, p);
        }
    }

    /// What `n` must drop to store `meta`, by the core's eviction policy.
    fn room(&self, n: NodeIdx, meta: &BundleMeta) -> Result<Room, Refusal> {
        let node = &self.nodes[n as usize];
        // Fast path, same answer: if everything fits even within one peer's share,
        // nothing needs to go (what `make_room` would compute, without the scan).
        let limit = self
            .quota
            .max_bytes
            .min(self.quota.max_bytes_per_peer.unwrap_or(u64::MAX));
        if node.bytes.saturating_add(meta.size) <= limit {
            return Ok(Room::default());
        }
        evict::make_room(&self.quota, node.router.bundles(), meta, dtn(self.now))
    }

    fn apply_room(&mut self, n: NodeIdx, room: &Room) {
        for id in room.ids() {
            self.nodes[n as usize].router.remove(id);
            if let Some(&b) = self.index.get(id)
                && self.unhold(n, b)
            {
                if room.expired.contains(id) {
                    self.tally.expired += 1;
                } else {
                    self.tally.evicted += 1;
                }
            }
        }
    }

    fn hold(&mut self, n: NodeIdx, b: BundleIdx) {
        let bundle = &mut self.bundles[b as usize];
        let node = &mut self.nodes[n as usize];
        if node.held.insert(b) {
            node.bytes += bundle.meta.size;
            bundle.holders.push(n);
            bundle.holders_ever += 1;
            self.tally.peak_bytes = self.tally.peak_bytes.max(node.bytes);
            self.tally.peak_bundles = self.tally.peak_bundles.max(node.held.len() as u64);
        }
    }

    /// Removes `n`'s copy of `b` from the store (not from the router); false if it
    /// had none.
    fn unhold(&mut self, n: NodeIdx, b: BundleIdx) -> bool {
        let bundle = &mut self.bundles[b as usize];
        let node = &mut self.nodes[n as usize];
        if !node.held.remove(&b) {
            return false;
        }
        node.bytes -= bundle.meta.size;
        bundle.holders.retain(|&h| h != n);
        true
    }
}
