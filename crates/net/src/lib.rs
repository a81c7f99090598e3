//! ferry-net: the network layer. It builds the libp2p swarm (transports,
//! discovery, gossip and ferry's own request-response protocols) and the UDP
//! socket that carries LAN beacons. It moves bytes and reports events; what they
//! mean is decided by the core and the node.

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
