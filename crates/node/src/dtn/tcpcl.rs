//! Contacts with other DTN implementations (dtn7-rs's `dtnd`, say) over TCPCLv4
//! (RFC 9174): a listener they can dial, and peers this node dials and redials.
//!
//! Such a peer speaks no summary protocol, so to the router it holds nothing: it is
//! offered whatever the strategy would give any peer (under direct delivery, only
//! the bundles addressed to it). A bundle is forgotten here only when the peer was its
//! destination; a TCPCL acknowledgement only says the bytes arrived.
//!
//! What strangers on the TCPCL port may take is bounded in [`super::tcpcl_limits`].
//! A TCPCL session is not authenticated: its SESS_INIT node id is a claim. A peer
//! claiming a ferry node's id (`dtn://PEER_ID/`) is routed as a carrier under a name
//! of its own ([`contact_node`]), never as that node: bundles for a ferry node are
//! handed to their destination only over libp2p, whose connection proves the peer
//! id, and what the TCPCL peer sends is counted against it, not against the node it
//! names.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::dtn::wire::Receipt;
use ferry_core::dtn::{Eid, MAX_BUNDLE_BYTES, NodeId, Summary};
use ferry_net::tcpcl::codec::XferRefuseReason;
use ferry_net::tcpcl::{TcpclOptions, TcpclSession, node_id_for};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::Dtn;
use super::tcpcl_limits::TcpclLimits;

/// How long to wait before dialling a TCPCL peer again after its session ended.
const REDIAL: Duration = Duration::from_secs(5);
/// How often a session plans again even if nothing changed here (a refused bundle
/// is retried).
const REPLAN: Duration = Duration::from_secs(10);

/// Where TCPCL listens and whom it dials.
#[derive(Debug, Clone, Default)]
pub struct TcpclSettings {
    pub listen: Option<SocketAddr>,
    /// `HOST:PORT` of TCPCL peers to keep a session with.
    pub peers: Vec<String>,
}

/// Starts the listener and the dialers; abort the handles to stop them.
pub async fn start(dtn: Arc<Dtn>, settings: &TcpclSettings) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    let limits = TcpclLimits::new();
    let options = options(&dtn, &limits);
    if let Some(addr) = settings.listen {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen for TCPCL on {addr}: {e} (pick another with --tcpcl-listen)"
            )
        })?;
        tracing::info!(addr = %listener.local_addr()?, "TCPCL listening");
        let (dtn, options, limits) = (dtn.clone(), options.clone(), limits.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let (stream, from) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, say: do not spin.
                        tracing::warn!("TCPCL accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue;
                    }
                };
                let slot = match limits.admit(from.ip()) {
                    Ok(slot) => slot,
                    Err(full) => {
                        if let Some(note) = limits.warning(from.ip()) {
                            tracing::warn!(%from, "TCPCL connection closed: {full}{note}");
                        }
                        continue;
                    }
                };
                let (dtn, options, limits) = (dtn.clone(), options.clone(), limits.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match TcpclSession::accept_with(stream, options).await {
                        Ok(session) => {
                            run_session(dtn, session, format!("tcpcl from {from}"), &limits).await
                        }
                        Err(e) => {
                            if let Some(note) = limits.warning(from.ip()) {
                                tracing::warn!(%from, "TCPCL session refused: {e}{note}");
                            }
                        }
                    }
                });
            }
        }));
    }
    for peer in &settings.peers {
        let (dtn, options, peer) = (dtn.clone(), options.clone(), peer.clone());
        let limits = limits.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match TcpclSession::connect_with(peer.as_str(), options.clone()).await {
                    Ok(session) => {
                        let via = format!("tcpcl to {peer}");
                        run_session(dtn.clone(), session, via, &limits).await
                    }
                    Err(e) => tracing::debug!(%peer, "TCPCL dial failed: {e}"),
                }
                tokio::time::sleep(REDIAL).await;
            }
        }));
    }
    Ok(tasks)
}

fn options(dtn: &Dtn, limits: &TcpclLimits) -> TcpclOptions {
    let node = dtn.local().to_string();
    let peer = node
        .strip_prefix("dtn://")
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or(&node);
    let mut options = TcpclOptions::new(node_id_for(peer));
    options.session.transfer_mru = MAX_BUNDLE_BYTES as u64;
    // Bundles are stored one at a time: reading waits while one is, so a session
    // holds at most that one and the transfer after it.
    options.max_unacked_received = 1;
    options.receive_budget = Some(limits.budget());
    options
}

/// One session: bundles planned for the peer go out one at a time, bundles from it
/// are received, stored and only then acknowledged.
async fn run_session(dtn: Arc<Dtn>, mut session: TcpclSession, via: String, limits: &TcpclLimits) {
    let peer_text = session.peer().node_id.clone();
    let Some(node) = peer_text
        .parse::<Eid>()
        .ok()
        .and_then(|e| e.node_id())
        .and_then(|claimed| contact_node(&claimed))
    else {
        tracing::warn!(%via, node_id = %peer_text, "TCPCL peer's node id is not a DTN endpoint; closing");
        let _ = session.close().await;
        return;
    };
    dtn.contact_up(&node, &via);
    if let Err(e) = dtn.on_summary(&node, Summary::default()) {
        tracing::warn!("{e}");
    }
    let sender = send_loop(dtn.clone(), &session, node.clone());
    loop {
        let received = match session.recv_bundle().await {
            Ok(received) => received,
            Err(e) => {
                tracing::info!(peer = %node, "TCPCL session ended: {e}");
                break;
            }
        };
        let (bytes, ack) = received.into_parts();
        let (agent, from) = (dtn.clone(), node.clone());
        let result = tokio::task::spawn_blocking(move || agent.receive(&bytes, Some(&from), None))
            .await
            .unwrap_or_else(|e| {
                Err(super::Rejection::not_now(format!(
                    "receive task failed: {e}"
                )))
            });
        match result {
            Ok(receipt) => {
                tracing::debug!(peer = %node, ?receipt, "bundle from TCPCL peer");
                ack.ack();
            }
            Err(rejection) => {
                if let Some(note) = limits.warning(session.peer_addr().ip()) {
                    tracing::warn!(peer = %node, %via, "bundle from TCPCL peer refused: {}{note}", rejection.reason);
                }
                ack.refuse(if rejection.peer_fault {
                    XferRefuseReason::NOT_ACCEPTABLE
                } else {
                    XferRefuseReason::NO_RESOURCES
                });
            }
        }
    }
    sender.abort();
    dtn.contact_down(&node);
}

/// The node a TCPCL peer is routed as: its own node id, unless that names a ferry
/// node, which the session cannot prove; then `dtn://tcpcl.PEER_ID/`, a carrier that
/// is no bundle's destination.
pub fn contact_node(claimed: &NodeId) -> Option<NodeId> {
    match claimed.peer_id() {
        Some(peer) => NodeId::dtn(&format!("tcpcl.{peer}")).ok(),
        None => Some(claimed.clone()),
    }
}

fn send_loop(dtn: Arc<Dtn>, session: &TcpclSession, node: NodeId) -> JoinHandle<()> {
    let sender = session.sender();
    let limit = session.peer().transfer_mru;
    let mut changed = dtn.subscribe();
    tokio::spawn(async move {
        loop {
            for forward in dtn.plan(&node) {
                let (agent, id) = (dtn.clone(), forward.id.clone());
                let bytes = match tokio::task::spawn_blocking(move || agent.outgoing(&id)).await {
                    Ok(Ok(Some(bytes))) => bytes,
                    Ok(Ok(None)) => continue,
                    Ok(Err(e)) => {
                        tracing::warn!(bundle = %forward.id, "cannot send: {e}");
                        continue;
                    }
                    Err(_) => return,
                };
                if bytes.len() as u64 > limit {
                    // Not planned for this peer again in this contact (offered on the
                    // next one), its spray copies free for peers that take bundles
                    // this large.
                    tracing::warn!(peer = %node, bundle = %forward.id, bytes = bytes.len(),
                        "bundle is over this TCPCL peer's {limit}-byte transfer limit; kept for another contact");
                    dtn.forward_skipped(&node, &forward.id);
                    continue;
                }
                match sender.send_bundle(bytes).await {
                    Ok(()) => {
                        let (agent, to, id) = (dtn.clone(), node.clone(), forward.id.clone());
                        let answered = tokio::task::spawn_blocking(move || {
                            agent.forward_answered(&to, &id, &Receipt::Stored)
                        })
                        .await;
                        if let Ok(Err(e)) = answered {
                            tracing::warn!("{e}");
                        }
                        tracing::info!(peer = %node, bundle = %forward.id, "bundle sent over TCPCL");
                    }
                    Err(e) => {
                        tracing::info!(peer = %node, bundle = %forward.id, "TCPCL send failed: {e}");
                        dtn.forward_failed(&node, &forward.id);
                    }
                }
            }
            let _ = tokio::time::timeout(REPLAN, changed.changed()).await;
        }
    })
}
