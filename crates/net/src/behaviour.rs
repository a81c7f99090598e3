//! The libp2p behaviours a ferry node runs, composed into one.

use std::time::Duration;

use ferry_core::channel::MAX_WIRE_BYTES;
use ferry_core::dtn::wire::{
    DtnRequest, DtnResponse, MAX_REQUEST_BYTES as DTN_MAX_REQUEST,
    MAX_RESPONSE_BYTES as DTN_MAX_RESPONSE, PROTOCOL as DTN_PROTOCOL,
};
use ferry_core::sync::{PROTOCOL as SYNC_PROTOCOL, SyncRequest, SyncResponse};
use ferry_core::transfer::{
    BlobRequest, BlobResponse, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, PROTOCOL as BLOB_PROTOCOL,
};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, autonat, connection_limits, dcutr, gossipsub, identify, identity::Keypair, kad,
    mdns, ping, relay, request_response, upnp,
};

use crate::codec::PostcardCodec;
use crate::quic_first::QuicFirst;
use crate::{NetConfig, NetError, RelayLimits};

/// ferry's own DHT, apart from IPFS's: peers that speak it are ferry nodes.
pub const KAD_PROTOCOL: &str = "/ferry/kad/1";
/// The largest DHT message: provider records and peer lists only, so small.
/// Anything larger is refused by the DHT protocol itself.
pub(crate) const KAD_MAX_PACKET: usize = 16 * 1024;

/// The identify protocol name: peers that speak it are ferry nodes.
pub const IDENTIFY_PROTOCOL: &str = "/ferry/id/1";
/// How often a connected peer is pinged; a peer that misses one ping timeout is
/// disconnected, which is how a vanished peer is noticed quickly.
pub(crate) const PING_INTERVAL: Duration = Duration::from_secs(5);
pub(crate) const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Room for a maximal channel message plus gossipsub's framing.
const GOSSIP_MAX_TRANSMIT: usize = MAX_WIRE_BYTES + 16 * 1024;

/// Connections one peer may have at once: a direct and a relayed one while a
/// hole punch replaces the relayed path, and one more for two nodes that
/// dial each other at the same moment. Each connection may hold the streams
/// below, so this multiplies them.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 3;

/// Streams of `/ferry/blob/1` at once on one connection, both ways. A
/// request is at most 1 KiB, and a peer's requests are served
/// `MAX_SERVING_PER_PEER` (16) at a time, the rest answered "busy"; our own
/// requests are 4 per provider per download. Responses, up to 8 MiB, come
/// only to requests this node sent.
pub(crate) const BLOB_STREAMS_PER_CONNECTION: usize = 64;

/// Streams of `/ferry/dtn/1` at once on one connection, both ways: the
/// contact window of 8 bundles in flight each way and summaries, with room
/// for a peer that keeps many more in flight (a sender of small bundles may
/// pipeline them). A request may be a 16 MiB bundle, but its body is read
/// only within [`DTN_REQUESTS_READ_AT_ONCE`], so a stream waiting for that
/// holds only its yamux window (256 KiB): the streams cost at most 16 MiB
/// of the connection's yamux bound, whatever the bundles claim.
pub(crate) const DTN_STREAMS_PER_CONNECTION: usize = 64;

/// Maximal DTN requests (16 MiB bundles) read at once, node-wide, over all
/// peers and connections; more wait for room before their bodies are read.
/// Smaller bundles share the same budget by size. This is what bounds the
/// memory bundles from peers hold, whoever sends them.
pub(crate) const DTN_REQUESTS_READ_AT_ONCE: usize = 4;

/// Streams of `/ferry/sync/1` at once on one connection, both ways: a
/// history request per joined channel on connect, a hello. A request is at
/// most [`SYNC_MAX_REQUEST`].
pub(crate) const SYNC_STREAMS_PER_CONNECTION: usize = 16;

/// The largest `/ferry/sync/1` request: 5,000 message ids (32 bytes, CBOR
/// arrays of up to 2 bytes an element) with room to spare.
pub(crate) const SYNC_MAX_REQUEST: u64 = 512 * 1024;

/// The largest `/ferry/sync/1` response: a history batch (4 MiB of
/// messages) in CBOR.
pub(crate) const SYNC_MAX_RESPONSE: u64 = 10 * 1024 * 1024;

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// First, so a connection over the limits is refused before any other
    /// behaviour sets anything up for it.
    pub connection_limits: connection_limits::Behaviour,
    pub relay_client: relay::client::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub gossipsub: gossipsub::Behaviour,
    pub sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
    pub blob: request_response::Behaviour<PostcardCodec<BlobRequest, BlobResponse>>,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    /// Bundle exchange during DTN contacts.
    pub dtn: request_response::Behaviour<PostcardCodec<DtnRequest, DtnResponse>>,
    pub autonat: autonat::Behaviour,
    /// Serving relay reservations and circuits: only with `--relay`.
    pub relay: Toggle<relay::Behaviour>,
    pub dcutr: QuicFirst,
    pub upnp: Toggle<upnp::tokio::Behaviour>,
}

impl Behaviour {
    pub(crate) fn new(
        keypair: &Keypair,
        relay_client: relay::client::Behaviour,
        config: &NetConfig,
    ) -> Result<Self, NetError> {
        let local = keypair.public().to_peer_id();
        let mdns = if config.mdns {
            Some(
                mdns::tokio::Behaviour::new(mdns_config(), local)
                    .map_err(|e| NetError::Mdns(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Self {
            connection_limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER)),
            ),
            relay_client,
            kad: dht(local),
            autonat: autonat::Behaviour::new(local, autonat_config()),
            relay: Toggle::from(
                config
                    .relay
                    .as_ref()
                    .map(|limits| relay::Behaviour::new(local, relay_config(limits))),
            ),
            dcutr: QuicFirst::new(dcutr::Behaviour::new(local)),
            upnp: Toggle::from(config.upnp.then(upnp::tokio::Behaviour::default)),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), keypair.public())
                    .with_agent_version(format!("ferry/{}", env!("CARGO_PKG_VERSION")))
                    // A relayed address gained after connecting must reach
                    // peers, or nobody behind NAT could be found by id.
                    .with_push_listen_addr_updates(true),
            ),
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(PING_INTERVAL)
                    .with_timeout(PING_TIMEOUT),
            ),
            mdns: Toggle::from(mdns),
            gossipsub: gossip(keypair)?,
            sync: request_response::Behaviour::with_codec(
                request_response::cbor::codec::Codec::default()
                    .set_request_size_maximum(SYNC_MAX_REQUEST)
                    .set_response_size_maximum(SYNC_MAX_RESPONSE),
                [(
                    StreamProtocol::new(SYNC_PROTOCOL),
                    request_response::ProtocolSupport::Full,
                )],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(20))
                    .with_max_concurrent_streams(SYNC_STREAMS_PER_CONNECTION),
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
                    .with_max_concurrent_streams(BLOB_STREAMS_PER_CONNECTION),
            ),
            dtn: request_response::Behaviour::with_codec(
                PostcardCodec::new(DTN_MAX_REQUEST, DTN_MAX_RESPONSE)
                    .with_request_budget(DTN_REQUESTS_READ_AT_ONCE),
                [(
                    StreamProtocol::new(DTN_PROTOCOL),
                    request_response::ProtocolSupport::Full,
                )],
                // A 16 MiB bundle over a slow relayed link, stored with an fsync.
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(120))
                    .with_max_concurrent_streams(DTN_STREAMS_PER_CONNECTION),
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

/// The DHT: a client until AutoNAT says this node is reachable (the engine
/// switches it), bounded record store, small messages.
fn dht(local: libp2p::PeerId) -> kad::Behaviour<kad::store::MemoryStore> {
    let mut config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
    config
        .set_max_packet_size(KAD_MAX_PACKET)
        .set_query_timeout(Duration::from_secs(30))
        .set_provider_publication_interval(Some(Duration::from_secs(12 * 3600)))
        .set_provider_record_ttl(Some(Duration::from_secs(48 * 3600)));
    let store = kad::store::MemoryStore::with_config(
        local,
        kad::store::MemoryStoreConfig {
            max_records: 1024,
            max_value_bytes: 1024,
            max_providers_per_key: 20,
            max_provided_keys: 100_000,
        },
    );
    let mut behaviour = kad::Behaviour::with_config(local, store, config);
    behaviour.set_mode(Some(kad::Mode::Client));
    behaviour
}

/// AutoNAT asks peers to dial us back. Private addresses count too: a
/// community network (or the test lab) may have no public IP at all, and a
/// node reachable at 10.x by everyone who matters is reachable.
fn autonat_config() -> autonat::Config {
    autonat::Config {
        only_global_ips: false,
        boot_delay: Duration::from_secs(3),
        retry_interval: Duration::from_secs(20),
        refresh_interval: Duration::from_secs(60),
        throttle_server_period: Duration::from_secs(1),
        confidence_max: 1,
        ..autonat::Config::default()
    }
}

fn relay_config(limits: &RelayLimits) -> relay::Config {
    relay::Config {
        max_reservations: limits.max_reservations,
        max_reservations_per_peer: 2,
        reservation_duration: Duration::from_secs(3600),
        max_circuits: limits.max_circuits,
        max_circuits_per_peer: limits.max_circuits_per_peer,
        max_circuit_duration: limits.max_circuit_duration,
        max_circuit_bytes: limits.max_circuit_bytes,
        ..relay::Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::channel::MessageId;
    use ferry_core::history;
    use ferry_core::sync::MAX_HAVE_IDS;
    use futures::io::Cursor;
    use libp2p::request_response::Codec as _;

    /// The size of `message` as the sync codec writes it.
    fn cbor_len(request: Option<SyncRequest>, response: Option<SyncResponse>) -> u64 {
        let protocol = StreamProtocol::new(SYNC_PROTOCOL);
        let mut codec =
            request_response::cbor::codec::Codec::<SyncRequest, SyncResponse>::default();
        let mut out = Cursor::new(Vec::new());
        futures::executor::block_on(async {
            if let Some(request) = request {
                codec
                    .write_request(&protocol, &mut out, request)
                    .await
                    .unwrap();
            }
            if let Some(response) = response {
                codec
                    .write_response(&protocol, &mut out, response)
                    .await
                    .unwrap();
            }
        });
        out.into_inner().len() as u64
    }

    /// The sync limits leave room for the largest honest messages: a
    /// history request listing the most ids allowed (each id's bytes the
    /// largest in CBOR), and a full history batch of bytes that each take
    /// two in CBOR.
    #[test]
    fn sync_limits_fit_the_largest_honest_messages() {
        let request = SyncRequest::History {
            channel: "c"
                .repeat(ferry_core::channel::MAX_CHANNEL_NAME_BYTES)
                .parse()
                .unwrap(),
            have: vec![MessageId([0xff; 32]); MAX_HAVE_IDS],
        };
        let request_len = cbor_len(Some(request), None);
        assert!(request_len <= SYNC_MAX_REQUEST, "{request_len}");

        let message = vec![0xffu8; MAX_WIRE_BYTES];
        let count = history::MAX_RESPONSE_BYTES / MAX_WIRE_BYTES;
        let response = SyncResponse::History {
            messages: vec![message; count],
            more: true,
        };
        let response_len = cbor_len(None, Some(response));
        assert!(response_len <= SYNC_MAX_RESPONSE, "{response_len}");
    }
}
