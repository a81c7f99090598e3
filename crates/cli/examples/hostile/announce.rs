//! The first line a providing mode prints: its peer id, its address, the
//! content it serves and a ticket for it, as one JSON object (the tests read it
//! with `ferry_testkit::hostile::start_hostile`).

use ferry_core::content::{ContentId, ContentKind, Ticket};
use ferry_net::libp2p::futures::StreamExt;
use ferry_net::libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use ferry_net::libp2p::{Swarm, multiaddr::Protocol};

/// Waits for the swarm's first listening address, then prints the line
/// announcing `id` (of `kind`, offered under `name`).
pub(crate) async fn announce_provider<B: NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    id: ContentId,
    kind: ContentKind,
    name: &str,
) {
    let peer_id = *swarm.local_peer_id();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    let ticket = Ticket {
        id,
        kind,
        name: Some(name.into()),
        provider: peer_id,
        addrs: vec![addr.clone()],
    };
    println!(
        "{}",
        serde_json::json!({
            "peer_id": peer_id.to_string(),
            "addr": addr.with(Protocol::P2p(peer_id)).to_string(),
            "id": id.to_string(),
            "ticket": ticket.to_string(),
        })
    );
}
