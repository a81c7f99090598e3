//! Building the swarm: identity, transports and behaviours.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, Swarm, SwarmBuilder, noise, tcp, yamux};
use thiserror::Error;

use crate::behaviour::Behaviour;

/// What the network layer needs to know to start.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub mdns: bool,
    /// Ask the home router for a port mapping (UPnP IGD).
    pub upnp: bool,
    /// Serve as a relay for others, within these limits.
    pub relay: Option<RelayLimits>,
    /// Connections with no open stream are closed after this long. Ping keeps a
    /// live peer's connection busy, so this only reaps the truly idle.
    pub idle_timeout: Duration,
}

/// What a relay grants. libp2p's own defaults end a circuit after 128 KiB or
/// two minutes, which is enough to start a hole punch and too little for
/// anything else; ferry's let a large transfer through a relay when no
/// direct path can be found, and an operator can tighten every one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayLimits {
    /// Peers holding a reservation (a relayed address) at once.
    pub max_reservations: usize,
    /// Circuits relayed at once, in all.
    pub max_circuits: usize,
    pub max_circuits_per_peer: usize,
    pub max_circuit_duration: Duration,
    /// Bytes relayed per circuit, both directions together.
    pub max_circuit_bytes: u64,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            max_reservations: 128,
            max_circuits: 16,
            max_circuits_per_peer: 4,
            max_circuit_duration: Duration::from_secs(30 * 60),
            max_circuit_bytes: 1 << 30,
        }
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            mdns: true,
            // Off unless asked for: it talks to the router of whatever
            // network the process is on. The daemon turns it on by default.
            upnp: false,
            relay: None,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Error)]
pub enum NetError {
    #[error("cannot set up the transports: {0}")]
    Transport(String),
    #[error("cannot start mDNS: {0} (turn it off with --no-mdns)")]
    Mdns(String),
    #[error("cannot configure gossip: {0}")]
    Gossip(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
}

/// A swarm with TCP (Noise, yamux), QUIC and DNS, running ferry's behaviours.
pub fn build_swarm(keypair: Keypair, config: &NetConfig) -> Result<Swarm<Behaviour>, NetError> {
    let transport_err = |e: &dyn std::fmt::Display| NetError::Transport(e.to_string());
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux_config,
        )
        .map_err(|e| transport_err(&e))?
        .with_quic()
        .with_dns()
        .map_err(|e| transport_err(&e))?
        .with_relay_client(noise::Config::new, yamux_config)
        .map_err(|e| transport_err(&e))?
        .with_behaviour(|key, relay_client| {
            Behaviour::new(key, relay_client, config).map_err(Box::from)
        })
        .map_err(|e| transport_err(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}

/// Streams open at once on one yamux connection (TCP, relayed). Each may
/// hold a 256 KiB receive window of data not yet read, so this bounds what
/// a connection buffers below the protocols: 32 MiB. Far more than an
/// honest peer keeps open at once (a download's 4 requests per provider,
/// the DTN window of 8 each way, a few sync and DHT requests), and equal to
/// libp2p's own limit of streams negotiating at once; a stream over it is
/// refused, which the protocols treat like a busy answer.
pub(crate) const YAMUX_MAX_STREAMS: usize = 128;

fn yamux_config() -> yamux::Config {
    let mut config = yamux::Config::default();
    config.set_max_num_streams(YAMUX_MAX_STREAMS);
    config
}

/// Starts listening on every address; a failure names the address.
pub fn listen_all(swarm: &mut Swarm<Behaviour>, addrs: &[Multiaddr]) -> Result<(), NetError> {
    for addr in addrs {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(())
}
