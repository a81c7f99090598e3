//! The hostile peer's gossip modes: it connects to a node, waits until the
//! node is in CHANNEL, and sends what no honest node would, over real
//! gossipsub and `/ferry/sync/1`.
//!
//! ```text
//! hostile_peer gossip-replay DATA_DIR ADDR CHANNEL COUNT
//! hostile_peer gossip-future DATA_DIR ADDR CHANNEL COUNT
//! hostile_peer gossip-topics DATA_DIR ADDR CHANNEL COUNT
//! hostile_peer gossip-flood DATA_DIR ADDR CHANNEL RATE SECONDS
//! ```
//!
//! - `gossip-replay`: one signed message, then COUNT copies of it with bytes
//!   added (trailing bytes, or a length written as an overlong varint): each
//!   copy has other bytes, so a node that hashes the whole wire sees COUNT new
//!   messages.
//! - `gossip-future`: COUNT messages dated 1 January 2100 in every history
//!   answer (newest first, as an honest node sends), and the newest 200 of
//!   them by gossip too.
//! - `gossip-topics`: subscribes to COUNT other channels (`junk-0`, ...).
//! - `gossip-flood`: RATE fresh valid messages a second for SECONDS.
//!
//! Messages are signed before connecting, so the rate is what this peer can
//! publish, not how fast it signs.
//!
//! Every mode but the flood ends with a marker: one honest message (by
//! gossip; for `gossip-future` in the history answers, since gossip past a
//! flood is rate-limited), so a test can wait for the node to have processed
//! everything sent before it.
//!
//! It prints two JSON lines: `{"peer_id"}` once the node is in CHANNEL, and a
//! [`GossipReport`] once everything is sent. Then it keeps the connection (and
//! answers history requests) until killed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use ferry_core::channel::{ChannelName, Message};
use ferry_core::sync::{SyncRequest, SyncResponse};
use ferry_core::{Keypair, Millis};
use ferry_net::libp2p::futures::StreamExt;
use ferry_net::libp2p::gossipsub::IdentTopic;
use ferry_net::libp2p::request_response::{self, Message as RrMessage};
use ferry_net::libp2p::swarm::SwarmEvent;
use ferry_net::libp2p::{Multiaddr, Swarm, multiaddr::Protocol};
use ferry_net::{Behaviour, BehaviourEvent, NetConfig, build_swarm};
use ferry_store::{DataDir, identity};
use report::GossipReport;

#[path = "gossip_report.rs"]
mod report;

/// 2100-01-01T00:00:00Z in ms since the Unix epoch.
const YEAR_2100_MS: Millis = 4_102_444_800_000;
/// How long to wait for the node to connect and be in the channel.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the flood publishes a slice of its rate.
const FLOOD_SLICE: Duration = Duration::from_millis(10);
/// How many of `gossip-future`'s posts also go by gossip. The history
/// answers carry all of them; gossip gets a part, enough to exercise that path
/// without making a debug build's signature checks the whole test.
const FUTURE_BY_GOSSIP: usize = 200;
/// How many slices a publish waits for room in gossipsub's queue to the node.
const QUEUE_FULL_TRIES: u32 = 3_000;

struct Gossiper {
    swarm: Swarm<Behaviour>,
    keypair: Keypair,
    channel: ChannelName,
    /// What history requests are answered with.
    history: Vec<Vec<u8>>,
    /// Messages signed before connecting, to publish once connected.
    prepared: Vec<Vec<u8>>,
}

pub(crate) async fn run(mode: &str, data_dir: PathBuf, rest: &[String]) -> anyhow::Result<()> {
    let (addr, channel, numbers) = match rest {
        [addr, channel, numbers @ ..] => (addr, channel, numbers),
        _ => bail!("{mode} needs ADDR CHANNEL and a count"),
    };
    let numbers: Vec<u64> = numbers
        .iter()
        .map(|n| n.parse().context("counts are whole numbers"))
        .collect::<anyhow::Result<_>>()?;
    let mut gossiper = Gossiper::open(&data_dir, channel.parse()?)?;
    // Everything is signed before connecting: what is measured is the node,
    // not how fast this peer signs.
    match (mode, numbers.as_slice()) {
        ("gossip-future", [count]) => gossiper.prepare_future(*count)?,
        ("gossip-flood", [rate, seconds]) => gossiper.prepare_flood(rate * seconds)?,
        _ => {}
    }
    gossiper.connect(addr.parse()?).await?;
    let started = Instant::now();
    let mut report = match (mode, numbers.as_slice()) {
        ("gossip-replay", [count]) => gossiper.replay(*count).await,
        ("gossip-future", [_]) => gossiper.future().await,
        ("gossip-topics", [count]) => gossiper.topics(*count).await,
        ("gossip-flood", [rate, _]) => gossiper.flood(*rate).await,
        _ => bail!(
            "usage: hostile_peer gossip-replay|gossip-future|gossip-topics DATA_DIR ADDR CHANNEL COUNT | gossip-flood DATA_DIR ADDR CHANNEL RATE SECONDS"
        ),
    }?;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    println!("{}", serde_json::to_string(&report)?);
    loop {
        let event = gossiper.swarm.select_next_some().await;
        gossiper.on_event(event);
    }
}

impl Gossiper {
    fn open(data_dir: &Path, channel: ChannelName) -> anyhow::Result<Self> {
        let dir = DataDir::lock(data_dir)?;
        let keypair = identity::load_or_create(&dir)?;
        let swarm = build_swarm(
            keypair.clone(),
            &NetConfig {
                mdns: false,
                ..NetConfig::default()
            },
        )?;
        Ok(Self {
            swarm,
            keypair,
            channel,
            history: Vec::new(),
            prepared: Vec::new(),
        })
    }

    /// Dials the node, joins the channel and waits until the node is in it too.
    async fn connect(&mut self, target: Multiaddr) -> anyhow::Result<()> {
        let Some(Protocol::P2p(target_peer)) = target.iter().last() else {
            bail!("{target} does not end in /p2p/PEER_ID");
        };
        let topic = IdentTopic::new(self.channel.topic());
        self.swarm.behaviour_mut().gossipsub.subscribe(&topic)?;
        self.swarm.dial(target)?;
        let hash = topic.hash();
        let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
        while !self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .any(|(peer, topics)| *peer == target_peer && topics.contains(&&hash))
        {
            let event = tokio::time::timeout_at(deadline, self.swarm.select_next_some())
                .await
                .context("the node did not join the channel in time")?;
            if let SwarmEvent::OutgoingConnectionError { error, .. } = &event {
                bail!("cannot connect to the node: {error}");
            }
            self.on_event(event);
        }
        println!(
            "{}",
            serde_json::json!({ "peer_id": self.swarm.local_peer_id().to_string() })
        );
        Ok(())
    }

    /// Answers the node's sync requests; everything else is gossipsub's.
    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        if let SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
            message: RrMessage::Request {
                request, channel, ..
            },
            ..
        })) = event
        {
            let response = match request {
                SyncRequest::Hello => SyncResponse::Hello {
                    name: "hostile".into(),
                },
                SyncRequest::History { .. } => SyncResponse::History {
                    messages: self.history.clone(),
                    more: false,
                },
            };
            let _ = self
                .swarm
                .behaviour_mut()
                .sync
                .send_response(channel, response);
        }
    }

    fn sign(&self, timestamp_ms: Millis, text: &str) -> anyhow::Result<Message> {
        Ok(Message::sign(
            &self.keypair,
            self.channel.clone(),
            "hostile",
            timestamp_ms,
            text,
        )?)
    }

    /// Publishes `data` on the channel; false if gossipsub refused it.
    fn publish_on(&mut self, topic: &IdentTopic, data: Vec<u8>) -> bool {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic.clone(), data)
            .is_ok()
    }

    /// Runs the swarm for `period` (answering pings and sync requests, and
    /// sending what gossipsub has queued).
    async fn pump(&mut self, period: Duration) {
        let until = tokio::time::sleep(period);
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => return,
                event = self.swarm.select_next_some() => self.on_event(event),
            }
        }
    }

    /// Publishes every message of `wires`, waiting whenever gossipsub's queue
    /// to the node is full (every message is to reach the node), then an
    /// honest marker.
    async fn publish_all(&mut self, wires: Vec<Vec<u8>>) -> anyhow::Result<GossipReport> {
        let topic = IdentTopic::new(self.channel.topic());
        let mut report = GossipReport::default();
        let marker = self.sign(now_ms(), "marker: everything before me was sent")?;
        report.marker = Some(marker.id.to_string());
        for wire in wires.into_iter().chain([marker.wire().to_vec()]) {
            let mut tries = 0;
            while !self.publish_on(&topic, wire.clone()) {
                tries += 1;
                if tries > QUEUE_FULL_TRIES {
                    bail!("gossipsub's queue to the node stayed full");
                }
                self.pump(FLOOD_SLICE).await;
            }
            report.sent += 1;
            if report.sent.is_multiple_of(100) {
                self.pump(Duration::from_millis(1)).await;
            }
        }
        // The marker is not counted.
        report.sent -= 1;
        Ok(report)
    }

    async fn replay(&mut self, count: u64) -> anyhow::Result<GossipReport> {
        let original = self.sign(now_ms(), "said once")?;
        let wire = original.wire();
        let mut copies = vec![wire.to_vec()];
        for i in 0..count {
            let copy = if i % 2 == 0 {
                [wire, &i.to_le_bytes()[..]].concat()
            } else {
                // The author key's length (one byte, < 128) as two bytes,
                // plus a trailing byte so every copy differs.
                [
                    &[wire[0] | 0x80, 0x00][..],
                    &wire[1..],
                    &i.to_le_bytes()[..1],
                ]
                .concat()
            };
            copies.push(copy);
        }
        self.publish_all(copies).await
    }

    /// Signs COUNT posts dated 2100 and serves them in history answers
    /// (newest first, as an honest node sends), with a marker dated now last.
    fn prepare_future(&mut self, count: u64) -> anyhow::Result<()> {
        for i in 0..count {
            let junk = self.sign(YEAR_2100_MS + i, &format!("from the future {i}"))?;
            self.prepared.push(junk.wire().to_vec());
        }
        self.history = self.prepared.iter().rev().cloned().collect();
        let marker = self.sign(now_ms(), "marker: the junk is in this answer")?;
        self.history.push(marker.wire().to_vec());
        Ok(())
    }

    /// Publishes the newest [`FUTURE_BY_GOSSIP`] posts dated 2100 (all of them
    /// are in the history answers); the report's marker is the one in the
    /// history answers.
    async fn future(&mut self) -> anyhow::Result<GossipReport> {
        let marker = self.history.last().map(|wire| Message::decode(wire));
        let junk = std::mem::take(&mut self.prepared);
        let newest = junk.len().saturating_sub(FUTURE_BY_GOSSIP);
        let mut report = self.publish_all(junk[newest..].to_vec()).await?;
        report.marker = Some(marker.context("no marker prepared")??.id.to_string());
        Ok(report)
    }

    async fn topics(&mut self, count: u64) -> anyhow::Result<GossipReport> {
        let mut report = GossipReport::default();
        for i in 0..count {
            let topic = IdentTopic::new(format!("ferry/channel/v1/junk-{i}"));
            if self.swarm.behaviour_mut().gossipsub.subscribe(&topic)? {
                report.sent += 1;
            }
            if i % 50 == 49 {
                self.pump(FLOOD_SLICE).await;
            }
        }
        report.marker = self.publish_all(Vec::new()).await?.marker;
        Ok(report)
    }

    /// Signs `count` fresh valid messages for the flood.
    fn prepare_flood(&mut self, count: u64) -> anyhow::Result<()> {
        for n in 0..count {
            let message = self.sign(now_ms(), &format!("flood {n}"))?;
            self.prepared.push(message.wire().to_vec());
        }
        Ok(())
    }

    /// Publishes the prepared messages at `rate` a second, in slices, while
    /// the swarm keeps running.
    async fn flood(&mut self, rate: u64) -> anyhow::Result<GossipReport> {
        let topic = IdentTopic::new(self.channel.topic());
        let per_slice = (rate * FLOOD_SLICE.as_millis() as u64 / 1000).max(1) as usize;
        let mut report = GossipReport::default();
        let mut tick = tokio::time::interval(FLOOD_SLICE);
        let mut prepared = std::mem::take(&mut self.prepared).into_iter();
        loop {
            loop {
                tokio::select! {
                    _ = tick.tick() => break,
                    event = self.swarm.select_next_some() => self.on_event(event),
                }
            }
            let slice: Vec<Vec<u8>> = prepared.by_ref().take(per_slice).collect();
            if slice.is_empty() {
                return Ok(report);
            }
            for wire in slice {
                if self.publish_on(&topic, wire) {
                    report.sent += 1;
                } else {
                    report.refused += 1;
                }
            }
        }
    }
}

fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}
