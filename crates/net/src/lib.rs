//! ferry-net: the network layer. It builds the libp2p swarm (transports,
//! discovery, gossip and ferry's own request-response protocols) and the UDP
//! socket that carries LAN beacons. It moves bytes and reports events; what they
//! mean is decided by the core and the node.
//!
//! # Modules
//!
//! | module | what it does |
//! |---|---|
//! | `swarm` | builds the swarm: identity, TCP and QUIC transports, relay client, limits ([`build_swarm`], [`NetConfig`]) |
//! | `behaviour` | the libp2p behaviours composed into one ([`Behaviour`]): identify, ping, mDNS, Kademlia, gossipsub, AutoNAT, relay, DCUtR, UPnP, and ferry's blob, sync and DTN protocols, with per-connection stream limits |
//! | `codec` | the length-prefixed postcard codec of ferry's own protocols, with read budgets |
//! | `quic_first` | hole punching that prefers QUIC |
//! | [`interfaces`] | this host's interfaces: is an address on one of our subnets |
//! | [`beacon`] | the UDP socket that sends and hears LAN beacons |
//! | [`tcpcl`] | TCPCLv4 (RFC 9174) with other DTN implementations: codec, session state machine, tokio driver |

pub mod beacon;
mod behaviour;
mod codec;
pub mod interfaces;
mod quic_first;
mod swarm;
pub mod tcpcl;

pub use behaviour::{
    Behaviour, BehaviourEvent, IDENTIFY_PROTOCOL, KAD_PROTOCOL, MAX_CONNECTIONS_PER_PEER,
};
pub use swarm::{NetConfig, NetError, RelayLimits, build_swarm, listen_all};

pub use libp2p;
