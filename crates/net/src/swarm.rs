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
    /// Connections with no open stream are closed after this long. Ping keeps a
    /// live peer's connection busy, so this only reaps the truly idle.
    pub idle_timeout: Duration,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            mdns: true,
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
            yamux::Config::default,
        )
        .map_err(|e| transport_err(&e))?
        .with_quic()
        .with_dns()
        .map_err(|e| transport_err(&e))?
        .with_behaviour(|key| Behaviour::new(key, config.mdns).map_err(Box::from))
        .map_err(|e| transport_err(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
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
