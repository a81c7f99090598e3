//! The swarm every raw mode runs: identify (under ferry's protocol name, so the
//! node takes it for a ferry node), ping (so it stays connected), and one
//! request-response protocol spoken with the mode's own, rule-breaking codec.

use std::time::Duration;

use ferry_net::IDENTIFY_PROTOCOL;
use ferry_net::libp2p::identity::Keypair;
use ferry_net::libp2p::request_response::{self, Codec, ProtocolSupport};
use ferry_net::libp2p::swarm::NetworkBehaviour;
use ferry_net::libp2p::{StreamProtocol, Swarm, SwarmBuilder, identify, noise, ping, tcp, yamux};

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "ferry_net::libp2p::swarm::derive_prelude")]
pub(crate) struct Raw<C>
where
    C: Codec + Clone + Send + 'static,
{
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    /// The mode's protocol.
    pub proto: request_response::Behaviour<C>,
}

/// A swarm over TCP and QUIC that speaks `protocol` with `codec`; connections
/// idle for `idle` are closed.
pub(crate) fn raw_swarm<C>(
    keypair: Keypair,
    protocol: &'static str,
    codec: C,
    support: ProtocolSupport,
    config: request_response::Config,
    idle: Duration,
) -> anyhow::Result<Swarm<Raw<C>>>
where
    C: Codec<Protocol = StreamProtocol> + Clone + Send + 'static,
{
    Ok(SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_behaviour(|key| Raw {
            identify: identify::Behaviour::new(identify::Config::new(
                IDENTIFY_PROTOCOL.into(),
                key.public(),
            )),
            ping: ping::Behaviour::new(ping::Config::new()),
            proto: request_response::Behaviour::with_codec(
                codec,
                [(StreamProtocol::new(protocol), support)],
                config,
            ),
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build())
}
