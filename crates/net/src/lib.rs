//! ferry-net: the network layer. It builds the libp2p swarm (transports,
//! discovery, gossip and ferry's own request-response protocols) and the UDP
//! socket that carries LAN beacons. It moves bytes and reports events; what they
//! mean is decided by the core and the node.

pub mod beacon;
mod behaviour;
mod codec;
mod swarm;

pub use behaviour::{Behaviour, BehaviourEvent};
pub use swarm::{NetConfig, NetError, build_swarm, listen_all};

pub use libp2p;
