//! The libp2p behaviours a ferry node runs, composed into one.

use std::time::Duration;

use ferry_core::channel::MAX_WIRE_BYTES;
use ferry_core::sync::{PROTOCOL as SYNC_PROTOCOL, SyncRequest, SyncResponse};
use ferry_core::transfer::{
    BlobRequest, BlobResponse, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, PROTOCOL as BLOB_PROTOCOL,
};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, gossipsub, identify, identity::Keypair, mdns, ping, request_response,
};

use crate::NetError;
use crate::codec::PostcardCodec;

/// The identify protocol name: peers that speak it are ferry nodes.
const IDENTIFY_PROTOCOL: &str = "/ferry/id/1";
/// How often a connected peer is pinged; a peer that misses one ping timeout is
/// disconnected, which is how a vanished peer is noticed quickly.
pub(crate) const PING_INTERVAL: Duration = Duration::from_secs(5);
pub(crate) const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Room for a maximal channel message plus gossipsub's framing.
const GOSSIP_MAX_TRANSMIT: usize = MAX_WIRE_BYTES + 16 * 1024;

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub gossipsub: gossipsub::Behaviour,
    pub sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
    pub blob: request_response::Behaviour<PostcardCodec<BlobRequest, BlobResponse>>,
}

impl Behaviour {
    pub(crate) fn new(keypair: &Keypair, mdns_on: bool) -> Result<Self, NetError> {
        let local = keypair.public().to_peer_id();
        let mdns = if mdns_on {
            Some(
                mdns::tokio::Behaviour::new(mdns_config(), local)
                    .map_err(|e| NetError::Mdns(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Self {
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), keypair.public())
                    .with_agent_version(format!("ferry/{}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(PING_INTERVAL)
                    .with_timeout(PING_TIMEOUT),
            ),
            mdns: Toggle::from(mdns),
            gossipsub: gossip(keypair)?,
            sync: request_response::cbor::Behaviour::new(
                [(
                    StreamProtocol::new(SYNC_PROTOCOL),
                    request_response::ProtocolSupport::Full,
                )],
                request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
            ),
            blob: request_response::Behaviour::with_codec(
                PostcardCodec::new(MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES),
                [(
                    StreamProtocol::new(BLOB_PROTOCOL),
                    request_response::ProtocolSupport::Full,
                )],
                // A 4 MiB answer over a slow relayed or lossy link can take a while.
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(60))
                    .with_max_concurrent_streams(256),
            ),
        })
    }
}

/// mDNS announces often and expires fast: peers on a LAN come and go, and a
/// stale record would only lead to failed dials.
fn mdns_config() -> mdns::Config {
    mdns::Config {
        ttl: Duration::from_secs(30),
        query_interval: Duration::from_secs(10),
        ..mdns::Config::default()
    }
}

fn gossip(keypair: &Keypair) -> Result<gossipsub::Behaviour, NetError> {
    let config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(Duration::from_millis(700))
        .max_transmit_size(GOSSIP_MAX_TRANSMIT)
        // Messages are checked (signature, limits) before they are forwarded.
        .validate_messages()
        .validation_mode(gossipsub::ValidationMode::Strict)
        // A message's gossip id is its content hash, matching ferry's MessageId,
        // so the same message relayed by two peers is recognised as one.
        .message_id_fn(|message| {
            gossipsub::MessageId::from(blake3::hash(&message.data).as_bytes().to_vec())
        })
        .build()
        .map_err(|e| NetError::Gossip(e.to_string()))?;
    gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(keypair.clone()),
        config,
    )
    .map_err(|e| NetError::Gossip(e.to_string()))
}
