//! Serving content to peers: answering `/ferry/blob/1` requests.
//!
//! Reading and re-verifying data is disk and CPU work, so it runs on the
//! blocking pool; the answer comes back to the engine through `Work`.

use std::collections::HashMap;

use ferry_core::PeerId;
use ferry_core::transfer::{BlobRequest, BlobResponse};
use ferry_net::libp2p::request_response::ResponseChannel;
use ferry_store::Store;

use super::hooks::Hooks;
use super::{Shared, Work};

/// Requests served at once for one peer; more get `Busy`, so one greedy
/// downloader cannot take every disk read.
pub(super) const MAX_SERVING_PER_PEER: usize = 16;

/// Requests being served, by peer.
#[derive(Default)]
pub(super) struct Serving {
    per_peer: HashMap<PeerId, usize>,
}

impl Serving {
    fn begin(&mut self, peer: PeerId) -> bool {
        let count = self.per_peer.entry(peer).or_default();
        if *count >= MAX_SERVING_PER_PEER {
            return false;
        }
        *count += 1;
        true
    }

    fn end(&mut self, peer: &PeerId) {
        if let Some(count) = self.per_peer.get_mut(peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_peer.remove(peer);
            }
        }
    }
}

/// Serving answers requests; it has nothing to do when peers come and go.
impl Hooks for Serving {}

impl Serving {
    pub(super) fn serve(
        &mut self,
        cx: &mut Shared,
        peer: PeerId,
        request: BlobRequest,
        reply: ResponseChannel<BlobResponse>,
    ) {
        if let Err(reason) = request.check() {
            return self.respond_blob(cx, reply, BlobResponse::Refused { reason });
        }
        if !self.begin(peer) {
            return self.respond_blob(cx, reply, BlobResponse::Busy);
        }
        cx.blocking(move |store| Work::Served {
            response: answer(store, &request),
            peer,
            reply,
        });
    }

    /// An answer read on the blocking pool is ready: send it.
    pub(super) fn served(
        &mut self,
        cx: &mut Shared,
        peer: PeerId,
        reply: ResponseChannel<BlobResponse>,
        response: BlobResponse,
    ) {
        self.end(&peer);
        self.respond_blob(cx, reply, response);
    }

    fn respond_blob(
        &mut self,
        cx: &mut Shared,
        reply: ResponseChannel<BlobResponse>,
        response: BlobResponse,
    ) {
        // The peer may have gone; nothing to do then.
        let _ = cx.swarm.behaviour_mut().blob.send_response(reply, response);
    }
}

fn answer(store: &Store, request: &BlobRequest) -> BlobResponse {
    let id = match request {
        BlobRequest::Have { id } | BlobRequest::Groups { id, .. } => id,
    };
    let info = match store.blob(id) {
        Ok(Some(info)) => info,
        Ok(None) => return BlobResponse::NotFound,
        Err(e) => {
            tracing::error!(%id, "cannot read the blob table: {e}");
            return BlobResponse::NotFound;
        }
    };
    match request {
        _ if info.stale => BlobResponse::NotFound,
        BlobRequest::Have { .. } if info.complete => BlobResponse::Have {
            size: info.size,
            kind: info.kind,
            groups: None,
        },
        BlobRequest::Have { id } => match store.bitfield(id) {
            Ok(Some(groups)) => BlobResponse::Have {
                size: info.size,
                kind: info.kind,
                groups: Some(groups),
            },
            _ => BlobResponse::NotFound,
        },
        BlobRequest::Groups { id, first, last } => match store.encode_groups(id, *first, *last) {
            Ok(encoded) => BlobResponse::Groups { encoded },
            Err(e) => {
                tracing::warn!(%id, first, last, "cannot serve: {e}");
                BlobResponse::NotFound
            }
        },
    }
}
