//! The hostile peer's memory attack: many concurrent `/ferry/dtn/1` requests
//! on one connection, each claiming the protocol's largest size and sending
//! all of it but the last byte, then holding the stream open. A node that
//! reads every such request into memory holds STREAMS x 16 MiB for one peer.
//!
//! ```text
//! hostile_peer streams-hold DATA_DIR ADDR STREAMS
//! hostile_peer streams-connections DATA_DIR ADDR CONNECTIONS
//! ```
//!
//! ADDR is the node's multiaddr ending in `/p2p/PEER_ID`. Once no stream has
//! made progress for [`QUIET`], `streams-hold` prints one JSON line
//! ([`HoldReport`]) and holds everything open until killed.
//!
//! `streams-connections` dials the node CONNECTIONS times at once, as one
//! peer, waits [`QUIET`] and prints how many connections are still open
//! ([`ConnectionsReport`]), then exits: every connection the node keeps is
//! one more set of streams this peer may fill.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::swarm::{Raw, RawEvent, raw_swarm};
use anyhow::{Context, bail};
use ferry_core::dtn::wire::{MAX_REQUEST_BYTES, PROTOCOL};
use ferry_net::libp2p::futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use ferry_net::libp2p::request_response::{self, Codec};
use ferry_net::libp2p::swarm::SwarmEvent;
use ferry_net::libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use ferry_net::libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, multiaddr::Protocol};
use ferry_store::{DataDir, identity};

/// How long no byte may move before the attack counts as settled.
const QUIET: Duration = Duration::from_secs(3);
/// Bytes written at a time.
const PIECE: usize = 64 * 1024;

/// What `streams-hold` prints.
#[derive(serde::Serialize)]
struct HoldReport {
    peer_id: String,
    streams: usize,
    /// Bytes each request claimed in its length prefix.
    claimed_bytes: usize,
    /// Bytes the node took in over all streams (yamux lets a writer go on
    /// only as the reader makes room).
    bytes_sent: u64,
    /// Requests whose body (but the last byte) the node took in whole.
    bodies_sent: usize,
    /// Streams the node refused or reset.
    streams_failed: usize,
    /// Still connected to the node after everything.
    still_connected: bool,
}

/// What `streams-connections` prints.
#[derive(serde::Serialize)]
struct ConnectionsReport {
    dialled: usize,
    /// Connections the node accepted at first (libp2p may close one it
    /// refuses only after the handshake).
    established: usize,
    /// Connections still open after [`QUIET`].
    open: usize,
}

pub(crate) async fn run(mode: &str, data_dir: &Path, rest: &[String]) -> anyhow::Result<()> {
    let (target, count): (Multiaddr, usize) = match rest {
        [addr, count] if matches!(mode, "streams-hold" | "streams-connections") => (
            addr.parse().context("ADDR is not a multiaddr")?,
            count.parse()?,
        ),
        _ => bail!(
            "usage: hostile_peer streams-hold DATA_DIR ADDR STREAMS | streams-connections DATA_DIR ADDR CONNECTIONS"
        ),
    };
    let Some(Protocol::P2p(target_peer)) = target.iter().last() else {
        bail!("{target} does not end in /p2p/PEER_ID");
    };
    let progress = Progress::default();
    let mut swarm = hold_swarm(data_dir, HoldCodec(progress.clone()), count)?;
    if mode == "streams-connections" {
        return connections(&mut swarm, target, target_peer, count).await;
    }
    let streams = count;
    swarm.dial(target.clone())?;
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == target_peer => break,
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                bail!("cannot connect to {target}: {error}");
            }
            _ => {}
        }
    }
    for _ in 0..streams {
        swarm.behaviour_mut().proto.send_request(&target_peer, ());
    }
    let mut last = (0, Instant::now());
    loop {
        let tick = tokio::time::sleep(Duration::from_millis(200));
        tokio::select! {
            event = swarm.select_next_some() => {
                if let SwarmEvent::Behaviour(RawEvent::Proto(
                    request_response::Event::OutboundFailure { .. },
                )) = event
                {
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            () = tick => {}
        }
        let sent = progress.bytes.load(Ordering::Relaxed);
        if sent != last.0 {
            last = (sent, Instant::now());
        } else if sent > 0 && last.1.elapsed() >= QUIET {
            break;
        }
    }
    let report = HoldReport {
        peer_id: swarm.local_peer_id().to_string(),
        streams,
        claimed_bytes: MAX_REQUEST_BYTES,
        bytes_sent: progress.bytes.load(Ordering::Relaxed),
        bodies_sent: progress.bodies.load(Ordering::Relaxed),
        streams_failed: progress.failed.load(Ordering::Relaxed),
        still_connected: swarm.is_connected(&target_peer),
    };
    println!("{}", serde_json::to_string(&report)?);
    // Hold every stream open until killed.
    loop {
        swarm.select_next_some().await;
    }
}

/// A swarm that identifies itself, answers pings and speaks `/ferry/dtn/1`
/// with the holding codec, up to `streams` requests at once.
fn hold_swarm(
    data_dir: &Path,
    codec: HoldCodec,
    streams: usize,
) -> anyhow::Result<Swarm<Raw<HoldCodec>>> {
    let dir = DataDir::lock(data_dir)?;
    let keypair = identity::load_or_create(&dir)?;
    let swarm = raw_swarm(
        keypair,
        PROTOCOL,
        codec,
        request_response::ProtocolSupport::Outbound,
        request_response::Config::default()
            .with_request_timeout(Duration::from_secs(3600))
            .with_max_concurrent_streams(streams + 1),
        Duration::from_secs(3600),
    )?;
    Ok(swarm)
}

/// Dials the node `count` times at once and reports what stays open.
async fn connections(
    swarm: &mut Swarm<Raw<HoldCodec>>,
    target: Multiaddr,
    target_peer: PeerId,
    count: usize,
) -> anyhow::Result<()> {
    for _ in 0..count {
        swarm.dial(
            DialOpts::peer_id(target_peer)
                .addresses(vec![target.clone()])
                .condition(PeerCondition::Always)
                .build(),
        )?;
    }
    let mut established = 0;
    let settle = tokio::time::sleep(QUIET);
    tokio::pin!(settle);
    loop {
        tokio::select! {
            event = swarm.select_next_some() => {
                if matches!(event, SwarmEvent::ConnectionEstablished { .. }) {
                    established += 1;
                }
            }
            () = &mut settle => break,
        }
    }
    let report = ConnectionsReport {
        dialled: count,
        established,
        open: swarm.network_info().connection_counters().num_established() as usize,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

#[derive(Clone, Default)]
struct Progress {
    bytes: Arc<AtomicU64>,
    bodies: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
}

/// Writes a frame claiming [`MAX_REQUEST_BYTES`] and all of its body but the
/// last byte, then never finishes.
#[derive(Clone)]
struct HoldCodec(Progress);

impl Codec for HoldCodec {
    type Protocol = StreamProtocol;
    type Request = ();
    type Response = ();

    async fn read_request<T>(&mut self, _: &StreamProtocol, _: &mut T) -> std::io::Result<()>
    where
        T: AsyncRead + Unpin + Send,
    {
        Err(std::io::Error::other("this peer answers nothing"))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, _: &mut T) -> std::io::Result<()>
    where
        T: AsyncRead + Unpin + Send,
    {
        std::future::pending().await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        (): (),
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let claimed = u32::try_from(MAX_REQUEST_BYTES).map_err(std::io::Error::other)?;
        io.write_all(&claimed.to_be_bytes()).await?;
        io.flush().await?;
        let piece = vec![0u8; PIECE];
        let mut left = MAX_REQUEST_BYTES - 1;
        while left > 0 {
            let n = left.min(PIECE);
            io.write_all(&piece[..n]).await?;
            io.flush().await?;
            left -= n;
            self.0.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        self.0.bodies.fetch_add(1, Ordering::Relaxed);
        std::future::pending().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        (): (),
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        Err(std::io::Error::other("this peer answers nothing"))
    }
}
