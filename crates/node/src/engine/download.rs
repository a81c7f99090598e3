//! `ferry get`: finding providers, proving the size, fetching chunk groups
//! from several providers at once, and writing the result out.
//!
//! Whom to believe and which groups to ask of whom are the core's decisions
//! (`ferry_core::sources::Sources`: claims, the proof of size, dropped
//! providers; `ferry_core::content::Fetch`: the multi-source scheduler); this
//! module only turns them into requests and the answers into their inputs.
//! Every answer is verified by the store before anything is marked done.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use ferry_core::content::{
    Bitfield, ContentId, ContentKind, Failure, Fetch, FetchConfig, Manifest, group_bytes,
    group_count,
};
use ferry_core::sources::Sources;
use ferry_core::transfer::{BlobRequest, BlobResponse, MAX_GROUPS_PER_REQUEST};
use ferry_core::{Millis, PeerId};
use ferry_net::libp2p::kad;
use ferry_net::libp2p::request_response::{self, OutboundRequestId};
use tokio::sync::oneshot;

use ferry_store::Store;
use ferry_store::blobs::verify_size;

use super::hooks::{Hooks, millis};
use super::reach::ProvidersFound;
use super::{Shared, Work};
use crate::error::NodeError;
use crate::export;
use crate::jobs::JobId;
use crate::types::{GetResult, JobState, ProviderProgress};

/// How long a download that lost every provider keeps asking them again.
const STALL_GRACE: Duration = Duration::from_secs(30);
/// How often it asks.
const STALL_RETRY: Duration = Duration::from_secs(2);

/// Providers from the DHT asked about one blob, at most. Anyone can publish
/// a provider record, and every one costs a dial and a request; a blob
/// worth fetching has its real providers among the first few dozen.
const MAX_DHT_PROVIDERS: usize = 64;

/// Requests of about a 32nd of the blob, between 256 KiB and the protocol's
/// 4 MiB: large requests cost least per byte, small ones spread a small blob
/// over all its providers.
fn fetch_config(size: u64) -> FetchConfig {
    FetchConfig {
        request_groups: (group_count(size) / 32).clamp(16, MAX_GROUPS_PER_REQUEST),
        ..FetchConfig::default()
    }
}

/// What `ferry get` was asked to fetch and where to put it.
pub struct GetPlan {
    pub root: ContentId,
    /// Known from a ticket; learnt from the first provider for a bare id.
    pub kind: Option<ContentKind>,
    /// The name a ticket gave the content.
    pub name: Option<String>,
    pub output: PathBuf,
    pub force: bool,
    /// Peers to ask first (a ticket's provider); connected peers are asked too.
    pub providers: Vec<PeerId>,
}

pub(super) struct Download {
    plan: GetPlan,
    /// Blobs still to fetch; the front one is `blob`.
    queue: VecDeque<ContentId>,
    blob: Option<BlobFetch>,
    manifest: Option<Manifest>,
    /// Bytes of blobs already complete in this job.
    finished_bytes: u64,
    total_bytes: Option<u64>,
    /// Verified bytes fetched from peers in this job, by provider.
    sent_by: HashMap<PeerId, u64>,
    dropped: HashSet<PeerId>,
    /// Since when (monotonic ms) every provider has been lost, and when they
    /// were last asked again. A dropped connection (a relay circuit cut, a
    /// hole punch replacing the relayed path) must not end a download.
    stalled: Option<(u64, u64)>,
}

impl Download {
    /// A download of `plan`, its root queued.
    fn new(plan: GetPlan) -> Self {
        Self {
            queue: VecDeque::from([plan.root]),
            plan,
            blob: None,
            manifest: None,
            finished_bytes: 0,
            total_bytes: None,
            sent_by: HashMap::new(),
            dropped: HashSet::new(),
            stalled: None,
        }
    }

    /// Every provider that sent data or was dropped, with the verified bytes
    /// it was first to deliver (so the figures add up to what was fetched).
    fn providers(&self) -> Vec<ProviderProgress> {
        let mut bytes: std::collections::BTreeMap<PeerId, u64> =
            self.dropped.iter().map(|peer| (*peer, 0)).collect();
        for (peer, sent) in &self.sent_by {
            *bytes.entry(*peer).or_default() += sent;
        }
        if let Some(fetch) = self.blob.as_ref().and_then(|b| b.sources.fetch()) {
            for stats in fetch.providers() {
                *bytes.entry(stats.peer).or_default() += stats.verified_bytes;
            }
        }
        bytes
            .into_iter()
            .map(|(peer, bytes)| ProviderProgress {
                peer_id: peer.to_string(),
                bytes,
                dropped: self.dropped.contains(&peer),
            })
            .collect()
    }

    /// Whether `id`, just complete, is the manifest of the collection this
    /// download fetches, to be read before its files.
    fn needs_manifest(&self, id: &ContentId) -> bool {
        *id == self.plan.root && self.plan.kind == Some(ContentKind::Collection)
    }

    fn fetched_bytes(&self) -> u64 {
        self.providers().iter().map(|p| p.bytes).sum()
    }

    /// How a blob of this download is listed in the store: the root as the
    /// ticket says, a collection's files under their own names.
    fn label(&self, id: &ContentId) -> (ContentKind, Option<String>) {
        if *id == self.plan.root {
            return (
                self.plan.kind.unwrap_or(ContentKind::Blob),
                self.plan.name.clone(),
            );
        }
        let name = self.manifest.as_ref().and_then(|m| {
            m.files()
                .find(|(_, _, file, _)| file == id)
                .and_then(|(path, ..)| path.rsplit('/').next().map(str::to_owned))
        });
        (ContentKind::Blob, name)
    }
}

/// The fetch of one blob.
struct BlobFetch {
    id: ContentId,
    /// Peers asked what they have, not yet answered.
    asking: HashSet<PeerId>,
    /// What providers said they have, the proof of the size, and the
    /// scheduler once it is proven (the core's decisions).
    sources: Sources,
    /// A DHT provider lookup is under way.
    dht_lookup: bool,
    /// Providers the DHT named that were asked (at most `MAX_DHT_PROVIDERS`).
    dht_asked: usize,
}

/// Downloads in progress, the blob requests they have out, and their DHT
/// provider lookups.
#[derive(Default)]
pub(super) struct Downloads {
    downloads: HashMap<JobId, Download>,
    blob_requests: HashMap<OutboundRequestId, Asked>,
    /// DHT provider lookups, and the download each is for.
    provider_lookups: HashMap<kad::QueryId, JobId>,
    /// Downloads cancelled (without keep) while their size probe was being
    /// verified, and the blob it may still create a partial of.
    late_probes: HashMap<JobId, ContentId>,
}

/// Stalled downloads ask again every few seconds and give up after a while
/// with no provider ([`STALL_RETRY`], [`STALL_GRACE`]).
impl Hooks for Downloads {
    fn on_tick(&mut self, cx: &mut Shared, now: Millis) {
        self.retry_stalled_downloads(cx, now);
    }
}

/// What an outstanding blob request was for.
struct Asked {
    job: JobId,
    peer: PeerId,
    what: AskedFor,
}

enum AskedFor {
    Have,
    /// The last group, to prove a claimed size.
    Probe {
        size: u64,
    },
    Groups {
        first: u64,
        last: u64,
    },
}

impl AskedFor {
    /// The request that asks for this about blob `id`.
    fn request(&self, id: ContentId) -> BlobRequest {
        match *self {
            AskedFor::Have => BlobRequest::Have { id },
            AskedFor::Probe { size } => {
                let last = group_count(size);
                BlobRequest::Groups {
                    id,
                    first: last.saturating_sub(1),
                    last,
                }
            }
            AskedFor::Groups { first, last } => BlobRequest::Groups { id, first, last },
        }
    }
}

/// Why received groups were not (all) stored.
pub(crate) enum Received {
    /// The peer's data failed verification after this many good groups.
    BadData(u64, String),
    /// This node could not store it (a full disk): not the peer's fault.
    Local(String),
}

/// A blob of a download as the store holds it.
pub(crate) enum Opened {
    /// Complete: its size and kind, and when it is the collection being
    /// fetched, its manifest (and the manifest's size).
    Complete {
        size: u64,
        kind: ContentKind,
        manifest: Option<Result<(Manifest, u64), String>>,
    },
    /// Not complete: a partial's size and the groups it holds, if there is
    /// one to resume.
    Partial(Option<(u64, Bitfield)>),
}

/// Store work for downloads, finished on the blocking pool.
pub(crate) enum Done {
    /// The next blob of `job` opened.
    Opened {
        job: JobId,
        id: ContentId,
        result: Result<Opened, String>,
    },
    /// Groups `[first, last)` from `peer` verified and stored, or why not.
    Verified {
        job: JobId,
        peer: PeerId,
        groups: (u64, u64),
        /// The size this verification proves, when it is a size probe.
        probe: Option<u64>,
        /// Stored; after a size probe, with the groups the store holds (a
        /// resumed partial's).
        result: Result<Option<Bitfield>, Received>,
    },
    /// The manifest of the collection `job` fetches, read once complete.
    Manifest {
        job: JobId,
        id: ContentId,
        result: Result<(Manifest, u64), String>,
    },
    /// The result written out to its output path.
    Exported {
        job: JobId,
        result: Result<(), NodeError>,
    },
}

/// A failure that ends a job, with a text for a person.
type JobError = String;

impl Downloads {
    pub(super) fn start(&mut self, cx: &mut Shared, job: JobId, plan: GetPlan) {
        for peer in &plan.providers {
            if let Some(entry) = cx.peers.get(peer) {
                let opts = ferry_net::libp2p::swarm::dial_opts::DialOpts::peer_id(*peer)
                    .addresses(entry.addrs.clone())
                    .build();
                let _ = cx.swarm.dial(opts);
            }
        }
        self.downloads.insert(job, Download::new(plan));
        self.next_blob(cx, job);
    }

    /// Opens the next queued blob (on the blocking pool), or writes the
    /// result out when none is left.
    fn next_blob(&mut self, cx: &mut Shared, job: JobId) {
        let Some(download) = self.downloads.get_mut(&job) else {
            return;
        };
        let Some(id) = download.queue.pop_front() else {
            return self.export(cx, job);
        };
        let root = (id == download.plan.root).then_some(download.plan.kind);
        cx.blocking(move |store| {
            Work::Download(Done::Opened {
                job,
                id,
                result: open(store, &id, root),
            })
        });
    }

    /// The next blob, as the store holds it: a complete one is done (and the
    /// next is opened); a partial or absent one is fetched.
    fn on_opened(
        &mut self,
        cx: &mut Shared,
        job: JobId,
        id: ContentId,
        result: Result<Opened, String>,
    ) {
        let Some(download) = self.downloads.get_mut(&job) else {
            return;
        };
        let partial = match result {
            Err(e) => {
                let e = NodeError::Internal(format!("cannot read the store: {e}"));
                return self.fail_download(cx, job, e);
            }
            Ok(Opened::Complete {
                size,
                kind,
                manifest,
            }) => {
                download.finished_bytes += size;
                if id == download.plan.root {
                    download.plan.kind.get_or_insert(kind);
                }
                if let Err(e) = self.blob_done(job, id, manifest) {
                    return self.fail_download(cx, job, NodeError::Invalid(e));
                }
                return self.next_blob(cx, job);
            }
            Ok(Opened::Partial(partial)) => partial,
        };
        let fetch =
            partial.and_then(|(size, have)| Fetch::new(size, Some(have), fetch_config(size)).ok());
        let mut candidates: HashSet<PeerId> = cx.peers.connected_peers().collect();
        candidates.extend(download.plan.providers.iter().copied());
        candidates.retain(|p| !download.dropped.contains(p));
        download.blob = Some(BlobFetch {
            id,
            asking: candidates.clone(),
            sources: Sources::new(fetch),
            dht_lookup: false,
            dht_asked: 0,
        });
        for peer in candidates {
            self.ask_blob(cx, job, peer, BlobRequest::Have { id }, AskedFor::Have);
        }
        if self.look_up_providers(cx, job, id)
            && let Some(blob) = self.downloads.get_mut(&job).and_then(|d| d.blob.as_mut())
        {
            blob.dht_lookup = true;
        }
        self.check_stalled(cx, job);
    }

    /// Work of downloads finished on the blocking pool.
    pub(super) fn on_done(&mut self, cx: &mut Shared, done: Done) {
        match done {
            Done::Opened { job, id, result } => self.on_opened(cx, job, id, result),
            Done::Verified {
                job,
                peer,
                groups,
                probe,
                result,
            } => self.on_verified(cx, job, peer, groups, probe, result),
            Done::Manifest { job, id, result } => {
                if let Err(e) = self.blob_done(job, id, Some(result)) {
                    return self.fail_download(cx, job, NodeError::Invalid(e));
                }
                self.next_blob(cx, job);
            }
            Done::Exported { job, result } => self.on_exported(cx, job, result),
        }
    }

    fn ask_blob(
        &mut self,
        cx: &mut Shared,
        job: JobId,
        peer: PeerId,
        request: BlobRequest,
        what: AskedFor,
    ) {
        let id = cx.swarm.behaviour_mut().blob.send_request(&peer, request);
        self.blob_requests.insert(id, Asked { job, peer, what });
    }

    /// Answers to this node's blob requests (the engine gives requests to
    /// serving).
    pub(super) fn on_blob_event(
        &mut self,
        cx: &mut Shared,
        event: request_response::Event<BlobRequest, BlobResponse>,
    ) {
        match event {
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => self.on_blob_response(cx, request_id, response),
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                let Some(asked) = self.blob_requests.remove(&request_id) else {
                    return;
                };
                match malformed(&error) {
                    // An answer that does not decode (or breaks the
                    // protocol's limits) is a lie, like data that fails
                    // verification: the provider is dropped.
                    Some(why) => {
                        let (job, peer) = (asked.job, asked.peer);
                        self.on_unanswered(cx, asked, Failure::Corrupt);
                        self.drop_provider(
                            cx,
                            job,
                            peer,
                            &format!("its answer is malformed: {why}"),
                        );
                    }
                    None => {
                        tracing::debug!(peer = %asked.peer, "blob request failed: {error}");
                        // Its connection closed, but the peer is still connected
                        // over another (a hole punch replacing the relayed one):
                        // the peer did nothing wrong, so ask again there.
                        let closed =
                            matches!(error, request_response::OutboundFailure::ConnectionClosed);
                        if closed && cx.swarm.is_connected(&asked.peer) {
                            self.ask_again_of(cx, asked);
                        } else if closed {
                            self.on_connection_lost(cx, asked);
                        } else {
                            self.on_unanswered(cx, asked, Failure::Timeout);
                        }
                    }
                }
            }
            // Requests, and failures to answer them, are serving's.
            _ => {}
        }
    }

    fn on_blob_response(
        &mut self,
        cx: &mut Shared,
        request_id: OutboundRequestId,
        response: BlobResponse,
    ) {
        let Some(asked) = self.blob_requests.remove(&request_id) else {
            return;
        };
        match (asked.what, response) {
            (AskedFor::Have, BlobResponse::Have { size, kind, groups }) => {
                self.on_have(cx, asked.job, asked.peer, size, kind, groups)
            }
            (AskedFor::Probe { size }, BlobResponse::Groups { encoded }) => {
                let last = group_count(size);
                self.verify(
                    cx,
                    asked.job,
                    asked.peer,
                    (last.saturating_sub(1), last),
                    encoded,
                    Some(size),
                );
            }
            (AskedFor::Groups { first, last }, BlobResponse::Groups { encoded }) => {
                self.verify(cx, asked.job, asked.peer, (first, last), encoded, None)
            }
            (what, _) => self.on_unanswered(cx, Asked { what, ..asked }, Failure::Unavailable),
        }
    }

    /// Sends a request again, the same, to the same peer.
    fn ask_again_of(&mut self, cx: &mut Shared, asked: Asked) {
        let Some(id) = self
            .downloads
            .get(&asked.job)
            .and_then(|d| d.blob.as_ref())
            .map(|b| b.id)
        else {
            return;
        };
        let request = asked.what.request(id);
        self.ask_blob(cx, asked.job, asked.peer, request, asked.what);
    }

    /// A request whose connection closed with no other to the peer left. The
    /// peer may be back in a moment: a hole punch that replaces the relayed
    /// path can close the relayed connection on this side before the direct one
    /// is up. So the download counts as stalled (asked again every
    /// [`STALL_RETRY`], given up after [`STALL_GRACE`]) instead of failing at
    /// once for want of a provider.
    fn on_connection_lost(&mut self, cx: &mut Shared, asked: Asked) {
        if let Some(download) = self.downloads.get_mut(&asked.job)
            && download.stalled.is_none()
        {
            let now = cx.clock.mono_ms();
            download.stalled = Some((now, now));
        }
        self.on_unanswered(cx, asked, Failure::Timeout);
    }

    /// A request that got no usable answer.
    fn on_unanswered(&mut self, cx: &mut Shared, asked: Asked, failure: Failure) {
        let job = asked.job;
        let Some(blob) = self.downloads.get_mut(&job).and_then(|d| d.blob.as_mut()) else {
            return;
        };
        match asked.what {
            AskedFor::Have => {
                blob.asking.remove(&asked.peer);
            }
            AskedFor::Probe { .. } => {
                blob.sources.probe_failed(&asked.peer);
                self.probe_next(cx, job);
            }
            AskedFor::Groups { first, last } => {
                if let Some(fetch) = blob.sources.fetch_mut() {
                    fetch.failed(&asked.peer, first, last, 0, failure);
                }
                self.pump(cx, job);
            }
        }
        self.check_stalled(cx, job);
    }

    fn on_have(
        &mut self,
        cx: &mut Shared,
        job: JobId,
        peer: PeerId,
        size: u64,
        kind: ContentKind,
        groups: Option<Bitfield>,
    ) {
        let Some(download) = self.downloads.get_mut(&job) else {
            return;
        };
        let is_root = download
            .blob
            .as_ref()
            .is_some_and(|b| b.id == download.plan.root);
        if is_root {
            download.plan.kind.get_or_insert(kind);
        }
        let Some(blob) = download.blob.as_mut() else {
            return;
        };
        blob.asking.remove(&peer);
        match blob.sources.on_have(peer, size, groups) {
            Err(why) => self.drop_provider(cx, job, peer, &why.to_string()),
            Ok(()) if blob.sources.fetch().is_some() => self.pump(cx, job),
            Ok(()) => self.probe_next(cx, job),
        }
    }

    /// Asks the next provider with an unchecked size claim for the blob's last
    /// group: its verification proves the size (BLAKE3's tree depends on it).
    fn probe_next(&mut self, cx: &mut Shared, job: JobId) {
        let Some(blob) = self.downloads.get_mut(&job).and_then(|d| d.blob.as_mut()) else {
            return;
        };
        if blob.sources.fetch().is_some() {
            return;
        }
        let Some(probe) = blob.sources.next_probe() else {
            return self.check_stalled(cx, job);
        };
        let what = AskedFor::Probe { size: probe.size };
        let request = what.request(blob.id);
        self.ask_blob(cx, job, probe.peer, request, what);
    }

    /// Verifies and stores groups off the engine task; the outcome comes back
    /// as `Work::Verified`.
    fn verify(
        &mut self,
        cx: &mut Shared,
        job: JobId,
        peer: PeerId,
        (first, last): (u64, u64),
        encoded: Vec<u8>,
        probe: Option<u64>,
    ) {
        let Some(id) = self
            .downloads
            .get(&job)
            .and_then(|d| d.blob.as_ref())
            .map(|b| b.id)
        else {
            return;
        };
        let (kind, name) = self.downloads[&job].label(&id);
        cx.blocking(move |store| {
            Work::Download(Done::Verified {
                result: receive(store, (id, kind, name), (first, last), &encoded, probe),
                job,
                peer,
                groups: (first, last),
                probe,
            })
        });
    }

    fn on_verified(
        &mut self,
        cx: &mut Shared,
        job: JobId,
        peer: PeerId,
        (first, last): (u64, u64),
        probe: Option<u64>,
        result: Result<Option<Bitfield>, Received>,
    ) {
        if let Some(id) = self.late_probes.remove(&job) {
            // The probe of a cancelled download began a partial after the
            // cancel removed what there was: remove it too.
            if probe.is_some() && result.is_ok() {
                let store = cx.store.clone();
                tokio::task::spawn_blocking(move || remove_incomplete(&store, &[id]));
            }
            return;
        }
        if let Err(Received::Local(e)) = &result {
            let e = NodeError::Storage(format!("cannot store the download: {e}"));
            return self.fail_download(cx, job, e);
        }
        let result = result.map_err(|e| match e {
            Received::BadData(verified, why) => (verified, why),
            Received::Local(why) => (0, why),
        });
        let Some(download) = self.downloads.get_mut(&job) else {
            return;
        };
        let Some(blob) = download.blob.as_mut() else {
            return;
        };
        match (result, probe) {
            (Ok(have), Some(size)) => {
                // The size was checked against MAX_FETCH_BYTES before the probe.
                if let Err(e) = blob.sources.probe_verified(size, have, fetch_config(size)) {
                    let e = NodeError::TooLarge(format!("cannot fetch it: {e}"));
                    return self.fail_download(cx, job, e);
                }
                // The proof of size is the one group fetched outside the
                // scheduler, so it is counted here.
                let (start, end) = group_bytes(first, last, size);
                *download.sent_by.entry(peer).or_default() += end - start;
            }
            (Ok(_), None) => {
                if let Some(fetch) = blob.sources.fetch_mut() {
                    fetch.completed(&peer, first, last);
                }
                download.stalled = None;
            }
            (Err((_, why)), Some(_)) => {
                // The size was a lie (or the data was): ask another provider.
                blob.sources.probe_failed(&peer);
                self.drop_provider(
                    cx,
                    job,
                    peer,
                    &format!("sent data that fails verification: {why}"),
                );
                self.probe_next(cx, job);
            }
            (Err((verified, why)), None) => {
                if let Some(fetch) = blob.sources.fetch_mut() {
                    fetch.failed(&peer, first, last, verified, Failure::Corrupt);
                }
                self.drop_provider(
                    cx,
                    job,
                    peer,
                    &format!("sent data that fails verification: {why}"),
                );
            }
        }
        self.pump(cx, job);
    }

    /// A provider sent bad data: it is dropped from this job and disconnected.
    fn drop_provider(&mut self, cx: &mut Shared, job: JobId, peer: PeerId, why: &str) {
        tracing::warn!(%peer, "dropping provider: {why}");
        if let Some(download) = self.downloads.get_mut(&job) {
            download.dropped.insert(peer);
            if let Some(blob) = download.blob.as_mut() {
                blob.sources.remove(&peer);
            }
        }
        let _ = cx.swarm.disconnect_peer_id(peer);
        self.check_stalled(cx, job);
    }

    /// Sends what the scheduler wants sent, reports progress, and moves on
    /// when the blob is complete.
    fn pump(&mut self, cx: &mut Shared, job: JobId) {
        let Some(download) = self.downloads.get_mut(&job) else {
            return;
        };
        let Some(blob) = download.blob.as_mut() else {
            return;
        };
        let id = blob.id;
        let Some(fetch) = blob.sources.fetch_mut() else {
            return;
        };
        if fetch.is_complete() {
            download.finished_bytes += fetch.size();
            for stats in fetch.providers() {
                *download.sent_by.entry(stats.peer).or_default() += stats.verified_bytes;
            }
            download.blob = None;
            if download.needs_manifest(&id) {
                cx.blocking(move |store| {
                    Work::Download(Done::Manifest {
                        job,
                        id,
                        result: read_manifest(store, &id),
                    })
                });
                return;
            }
            if let Err(e) = self.blob_done(job, id, None) {
                return self.fail_download(cx, job, NodeError::Invalid(e));
            }
            return self.next_blob(cx, job);
        }
        let requests = fetch.poll_requests();
        for (peer, first, last) in requests {
            self.ask_blob(
                cx,
                job,
                peer,
                BlobRequest::Groups { id, first, last },
                AskedFor::Groups { first, last },
            );
        }
        self.report_progress(cx, job);
        self.check_stalled(cx, job);
    }

    /// Asks the DHT who provides `id`, for download `job`.
    fn look_up_providers(&mut self, cx: &mut Shared, job: JobId, id: ContentId) -> bool {
        if cx.swarm.behaviour_mut().kad.kbuckets().next().is_none() {
            return false;
        }
        let query = cx
            .swarm
            .behaviour_mut()
            .kad
            .get_providers(kad::RecordKey::new(id.as_bytes()));
        self.provider_lookups.insert(query, job);
        true
    }

    /// The DHT answered a provider lookup (if it is one of ours).
    pub(super) fn on_providers(&mut self, cx: &mut Shared, found: ProvidersFound) {
        match found.providers {
            Some(providers) => {
                if let Some(&job) = self.provider_lookups.get(&found.query) {
                    self.add_providers(cx, job, providers);
                }
            }
            None => {
                if let Some(job) = self.provider_lookups.remove(&found.query) {
                    self.providers_lookup_done(cx, job);
                }
            }
        }
    }

    /// The DHT named providers of the blob being fetched: ask them too.
    fn add_providers(&mut self, cx: &mut Shared, job: JobId, providers: Vec<PeerId>) {
        let local = cx.local_peer();
        let Some(download) = self.downloads.get_mut(&job) else {
            return;
        };
        let Some(blob) = download.blob.as_mut() else {
            return;
        };
        let id = blob.id;
        let room = MAX_DHT_PROVIDERS.saturating_sub(blob.dht_asked);
        let new: Vec<PeerId> = providers
            .into_iter()
            .filter(|p| {
                *p != local
                    && !download.dropped.contains(p)
                    && !blob.sources.has_claim(p)
                    && !blob.asking.contains(p)
            })
            .take(room)
            .collect();
        blob.dht_asked += new.len();
        blob.asking.extend(new.iter().copied());
        for peer in new {
            tracing::info!(%peer, %id, "provider found in the DHT");
            self.ask_blob(cx, job, peer, BlobRequest::Have { id }, AskedFor::Have);
        }
    }

    fn providers_lookup_done(&mut self, cx: &mut Shared, job: JobId) {
        if let Some(blob) = self.downloads.get_mut(&job).and_then(|d| d.blob.as_mut()) {
            blob.dht_lookup = false;
        }
        self.check_stalled(cx, job);
    }

    /// A blob of the job is complete. A collection's manifest is read (as the
    /// hostile input it is) and its files are queued.
    fn blob_done(
        &mut self,
        job: JobId,
        id: ContentId,
        manifest: Option<Result<(Manifest, u64), String>>,
    ) -> Result<(), JobError> {
        let download = self.downloads.get_mut(&job).ok_or("job gone")?;
        if !download.needs_manifest(&id) {
            if id == download.plan.root {
                download.total_bytes = Some(download.finished_bytes);
            }
            return Ok(());
        }
        let (manifest, manifest_bytes) =
            manifest.ok_or("the collection's manifest was not read")??;
        let mut seen = HashSet::new();
        for (_, _, file_id, _) in manifest.files() {
            if seen.insert(file_id) {
                download.queue.push_back(file_id);
            }
        }
        download.total_bytes = Some(manifest.total_size().saturating_add(manifest_bytes));
        download.manifest = Some(manifest);
        Ok(())
    }

    fn check_stalled(&mut self, cx: &mut Shared, job: JobId) {
        let Some(download) = self.downloads.get(&job) else {
            return;
        };
        let Some(blob) = download.blob.as_ref() else {
            return;
        };
        // Already waiting for a provider to come back: the stall timer decides.
        let waiting = download.stalled.is_some();
        let id = blob.id;
        match blob.sources.fetch() {
            // A resumed download has its scheduler before any provider
            // answered: it is stalled only once every peer asked has answered.
            Some(fetch) if blob.asking.is_empty() && !blob.dht_lookup && fetch.is_stalled() => {
                let now = cx.clock.mono_ms();
                let download = self.downloads.get_mut(&job).expect("checked above");
                if download.stalled.is_none() {
                    download.stalled = Some((now, now));
                    tracing::info!(job, %id, "every provider lost; asking them again");
                    self.ask_again(cx, job);
                }
            }
            Some(_) => {}
            None if blob.asking.is_empty()
                && blob.sources.is_exhausted()
                && !blob.dht_lookup
                && !waiting =>
            {
                self.fail_download(cx,
                    job,
                    NodeError::Unreachable(format!(
                        "no reachable peer has {id} (or every one that did sent bad data); connect to a peer that shares it (ferry connect), or get it with a ticket"
                    )),
                );
            }
            None => {}
        }
    }

    /// Asks every provider the download has known (but those that sent bad
    /// data), and every connected peer, what they have, dialling as needed.
    fn ask_again(&mut self, cx: &mut Shared, job: JobId) {
        let connected: Vec<PeerId> = cx.peers.connected_peers().collect();
        let Some(download) = self.downloads.get_mut(&job) else {
            return;
        };
        let Some(blob) = download.blob.as_mut() else {
            return;
        };
        let id = blob.id;
        let mut peers: HashSet<PeerId> = blob.sources.claimants().collect();
        peers.extend(download.plan.providers.iter().copied());
        peers.extend(connected);
        peers.retain(|p| !download.dropped.contains(p) && !blob.asking.contains(p));
        blob.asking.extend(peers.iter().copied());
        for peer in peers {
            if !cx.swarm.is_connected(&peer) {
                let _ = cx.swarm.dial(peer);
            }
            self.ask_blob(cx, job, peer, BlobRequest::Have { id }, AskedFor::Have);
        }
    }

    /// Called every tick: stalled downloads ask again every few seconds, and
    /// give up after a while with no provider.
    fn retry_stalled_downloads(&mut self, cx: &mut Shared, now: u64) {
        let stalled: Vec<(JobId, u64, u64)> = self
            .downloads
            .iter()
            .filter_map(|(job, d)| d.stalled.map(|(since, last)| (*job, since, last)))
            .collect();
        for (job, since, last) in stalled {
            if now.saturating_sub(since) > millis(STALL_GRACE) {
                let id = self.downloads[&job].plan.root;
                self.fail_download(cx,
                    job,
                    NodeError::Unreachable(format!(
                        "lost every provider of {id} for {} s; run `ferry get` again to resume once a peer that has it is reachable",
                        STALL_GRACE.as_secs()
                    )),
                );
            } else if now.saturating_sub(last) >= millis(STALL_RETRY) {
                if let Some(d) = self.downloads.get_mut(&job) {
                    d.stalled = Some((since, now));
                }
                self.ask_again(cx, job);
            }
        }
    }

    fn report_progress(&self, cx: &Shared, job: JobId) {
        let Some(download) = self.downloads.get(&job) else {
            return;
        };
        let current = download
            .blob
            .as_ref()
            .and_then(|b| b.sources.fetch())
            .map_or(0, |f| f.verified_bytes());
        let providers = download.providers();
        let total = download.total_bytes.or_else(|| {
            let fetch = download.blob.as_ref()?.sources.fetch()?;
            (download.plan.kind == Some(ContentKind::Blob)).then(|| fetch.size())
        });
        cx.jobs.update(job, |s| {
            s.phase = "fetching".into();
            s.done_bytes = download.finished_bytes + current;
            s.total_bytes = total;
            s.providers = providers;
        });
    }

    fn export(&mut self, cx: &mut Shared, job: JobId) {
        let Some(download) = self.downloads.get(&job) else {
            return;
        };
        self.report_progress(cx, job);
        cx.jobs.update(job, |s| s.phase = "writing".into());
        let root = download.plan.root;
        let output = download.plan.output.clone();
        let force = download.plan.force;
        let manifest = download.manifest.clone();
        cx.blocking(move |store| {
            let result = match &manifest {
                Some(manifest) => {
                    export::collection(store, manifest, &output, force).map_err(NodeError::from)
                }
                None => store
                    .move_blob_out(&root, &output, force)
                    .map_err(|e| NodeError::store("cannot write the download", &e)),
            };
            Work::Download(Done::Exported { job, result })
        });
    }

    fn on_exported(&mut self, cx: &mut Shared, job: JobId, result: Result<(), NodeError>) {
        let Some(download) = self.downloads.remove(&job) else {
            return;
        };
        if let Err(e) = result {
            return cx.jobs.fail(job, e);
        }
        let fetched_bytes = download.fetched_bytes();
        let providers = download.providers();
        let (files, size) = match &download.manifest {
            Some(m) => (m.files().count() as u64, m.total_size()),
            None => (1, download.finished_bytes),
        };
        let kind = download.plan.kind.unwrap_or(ContentKind::Blob);
        tracing::info!(id = %download.plan.root, output = %download.plan.output.display(), fetched_bytes, "download complete");
        cx.jobs.update(job, |s| {
            s.state = JobState::Done;
            s.phase = "done".into();
            s.done_bytes = size;
            s.total_bytes = Some(size);
            s.get = Some(GetResult {
                id: download.plan.root.to_string(),
                kind,
                output: download.plan.output.display().to_string(),
                size,
                files,
                fetched_bytes,
                providers,
            });
        });
    }

    /// Stops download `job`: no more requests go out and answers still on
    /// their way are ignored. Unless `keep`, the blobs it left incomplete are
    /// removed (on the blocking pool) before `reply` is answered; with `keep`
    /// they stay, and a later `ferry get` of the same content resumes from
    /// them. Blobs it completed (files of a collection) stay: they are whole
    /// content, listed by `ferry ls`.
    pub(super) fn cancel(
        &mut self,
        cx: &mut Shared,
        job: JobId,
        keep: bool,
        reply: oneshot::Sender<Result<(), NodeError>>,
    ) {
        let Some(download) = self.downloads.remove(&job) else {
            let error = match cx.jobs.get(job) {
                None => NodeError::NotFound(format!(
                    "no job {job} (jobs are forgotten when the node restarts)"
                )),
                Some(status) => NodeError::Invalid(format!(
                    "job {job} is not a running download: it is a {} job, {}",
                    status.kind,
                    format!("{:?}", status.state).to_lowercase()
                )),
            };
            let _ = reply.send(Err(error));
            return;
        };
        // A probe answered and being verified (asked, but no longer awaited)
        // may begin a partial after the removal below: its result is awaited.
        let probe_asked = self
            .blob_requests
            .values()
            .any(|a| a.job == job && matches!(a.what, AskedFor::Probe { .. }));
        if let Some(blob) = download.blob.as_ref()
            && blob.sources.is_probing()
            && !probe_asked
            && !keep
        {
            self.late_probes.insert(job, blob.id);
        }
        self.blob_requests.retain(|_, asked| asked.job != job);
        tracing::info!(job, id = %download.plan.root, keep, "download cancelled");
        cx.jobs.update(job, |s| {
            s.state = JobState::Cancelled;
            s.phase = if keep {
                "cancelled, partial data kept"
            } else {
                "cancelled"
            }
            .into();
        });
        if keep {
            let _ = reply.send(Ok(()));
            return;
        }
        let mut touched: Vec<ContentId> = download.blob.iter().map(|b| b.id).collect();
        touched.extend(download.queue.iter().copied());
        touched.push(download.plan.root);
        let store = cx.store.clone();
        tokio::task::spawn_blocking(move || {
            let _ = reply.send(remove_incomplete(&store, &touched));
        });
    }

    fn fail_download(&mut self, cx: &mut Shared, job: JobId, error: NodeError) {
        if self.downloads.remove(&job).is_some() {
            tracing::warn!(job, "download failed: {error}");
            cx.jobs.fail(job, error);
        }
    }
}

/// Removes those of `ids` that are stored incomplete (*blocking*).
fn remove_incomplete(store: &Store, ids: &[ContentId]) -> Result<(), NodeError> {
    for id in ids {
        let partial = store.blob(id)?.is_some_and(|info| !info.complete);
        if partial {
            store.remove_blob(id)?;
        }
    }
    Ok(())
}

/// Why a failed request means the peer broke the protocol (an answer that
/// does not decode, or over the size limit), if it does; `None` for a
/// timeout, a closed connection and the like.
fn malformed(error: &request_response::OutboundFailure) -> Option<&std::io::Error> {
    match error {
        request_response::OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            Some(e)
        }
        _ => None,
    }
}

/// Checks and stores groups a peer sent (*blocking*). A size probe is
/// checked before any file is created for it, so a lying peer costs nothing
/// on disk; once stored, the groups the store holds come back with it (a
/// resumed download's). A failure that is the peer's fault is
/// `Received::BadData`; a local one (a full disk) is `Received::Local`.
fn receive(
    store: &Store,
    (id, kind, name): (ContentId, ContentKind, Option<String>),
    (first, last): (u64, u64),
    encoded: &[u8],
    probe: Option<u64>,
) -> Result<Option<Bitfield>, Received> {
    if let Some(size) = probe {
        verify_size(&id, size, encoded).map_err(|e| Received::BadData(0, e.to_string()))?;
        store
            .begin_partial(&id, size, kind, name)
            .map_err(|e| Received::Local(e.to_string()))?;
    }
    store
        .write_verified(&id, first, last, encoded)
        .map_err(|e| {
            if e.is_bad_data() {
                Received::BadData(e.verified_groups(), e.to_string())
            } else {
                Received::Local(e.to_string())
            }
        })?;
    Ok(match probe {
        Some(_) => store.bitfield(&id).ok().flatten(),
        None => None,
    })
}

/// A blob of a download as the store holds it (*blocking*). Reopening a
/// partial also recovers groups written but not yet recorded when the node
/// last stopped. `root` is the download's kind when `id` is its root: a
/// complete collection's manifest is read then too.
fn open(
    store: &Store,
    id: &ContentId,
    root: Option<Option<ContentKind>>,
) -> Result<Opened, String> {
    match store.blob(id).map_err(|e| e.to_string())? {
        Some(info) if info.complete => {
            let collection =
                root.is_some_and(|kind| kind.unwrap_or(info.kind) == ContentKind::Collection);
            Ok(Opened::Complete {
                size: info.size,
                kind: info.kind,
                manifest: collection.then(|| read_manifest(store, id)),
            })
        }
        Some(info) => {
            let partial = store
                .begin_partial(id, info.size, info.kind, info.name.clone())
                .ok()
                .and_then(|_| store.bitfield(id).ok().flatten())
                .map(|have| (info.size, have));
            Ok(Opened::Partial(partial))
        }
        None => Ok(Opened::Partial(None)),
    }
}

/// A collection's manifest and its size in bytes, read and checked as the
/// hostile input it is (*blocking*).
fn read_manifest(store: &Store, id: &ContentId) -> Result<(Manifest, u64), String> {
    let bytes = store
        .read_blob(id, ferry_core::content::MAX_MANIFEST_BYTES as u64)
        .map_err(|e| format!("cannot read the collection's manifest: {e}"))?;
    let manifest = Manifest::decode(&bytes).map_err(|e| format!("refused: {e}"))?;
    Ok((manifest, bytes.len() as u64))
}

#[cfg(test)]
mod tests {
    use ferry_core::content::{FetchConfig, GROUP_BYTES};

    use super::*;

    fn peer() -> PeerId {
        ferry_core::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
    }

    fn plan(kind: Option<ContentKind>) -> GetPlan {
        GetPlan {
            root: ContentId::of(b"root"),
            kind,
            name: Some("notes".into()),
            output: PathBuf::from("out"),
            force: false,
            providers: Vec::new(),
        }
    }

    #[test]
    fn providers_count_each_verified_byte_once_and_list_the_dropped() {
        let mut download = Download::new(plan(Some(ContentKind::Blob)));
        let (earlier, dropped, current) = (peer(), peer(), peer());
        // A blob finished before, and a provider dropped for bad data.
        download.sent_by.insert(earlier, 100);
        download.dropped.insert(dropped);
        // The blob being fetched: one group verified from `current`.
        let size = 4 * GROUP_BYTES;
        let config = FetchConfig {
            request_groups: 1,
            ..FetchConfig::default()
        };
        let mut sources = Sources::new(Some(Fetch::new(size, None, config).unwrap()));
        sources.on_have(current, size, None).unwrap();
        let fetch = sources.fetch_mut().unwrap();
        let (_, first, last) = fetch.poll_requests()[0];
        fetch.completed(&current, first, last);
        download.blob = Some(BlobFetch {
            id: download.plan.root,
            asking: HashSet::new(),
            sources,
            dht_lookup: false,
            dht_asked: 0,
        });
        let providers = download.providers();
        let bytes = |p: &PeerId| {
            let p = providers
                .iter()
                .find(|progress| progress.peer_id == p.to_string())
                .unwrap();
            (p.bytes, p.dropped)
        };
        assert_eq!(providers.len(), 3);
        assert_eq!(bytes(&earlier), (100, false));
        assert_eq!(bytes(&dropped), (0, true));
        assert_eq!(bytes(&current), (GROUP_BYTES, false));
        assert_eq!(download.fetched_bytes(), 100 + GROUP_BYTES);
    }

    #[test]
    fn only_a_collection_root_has_a_manifest_to_read() {
        let collection = Download::new(plan(Some(ContentKind::Collection)));
        let root = collection.plan.root;
        assert!(collection.needs_manifest(&root));
        assert!(!collection.needs_manifest(&ContentId::of(b"a file")));
        // A bare id's kind is unknown until a provider or the store says.
        let unknown = Download::new(plan(None));
        assert!(!unknown.needs_manifest(&root));
        let blob = Download::new(plan(Some(ContentKind::Blob)));
        assert!(!blob.needs_manifest(&root));
    }

    #[test]
    fn the_root_is_listed_as_the_ticket_names_it() {
        let download = Download::new(plan(None));
        assert_eq!(
            download.label(&download.plan.root),
            (ContentKind::Blob, Some("notes".into()))
        );
        assert_eq!(
            download.label(&ContentId::of(b"not in any manifest")),
            (ContentKind::Blob, None)
        );
    }

    #[test]
    fn requests_are_a_32nd_of_the_blob_within_bounds() {
        assert_eq!(fetch_config(GROUP_BYTES).request_groups, 16);
        assert_eq!(fetch_config(64 * 32 * GROUP_BYTES).request_groups, 64);
        assert_eq!(fetch_config(1 << 40).request_groups, MAX_GROUPS_PER_REQUEST);
    }
}
