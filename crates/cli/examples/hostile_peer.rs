//! A deliberately broken ferry peer, for the test suite: it speaks ferry's
//! real protocols over a real socket, but lies in the ways a hostile peer
//! would, so the tests can check that an honest node detects it, drops it, and
//! writes nothing it should not.
//!
//! ```text
//! hostile_peer corrupt-data DATA_DIR FILE      serve FILE's blob with a flipped byte in every answer
//! hostile_peer escaping-manifest DATA_DIR      serve a collection whose manifest says "../escaped.txt"
//! hostile_peer dht-oversize DATA_DIR ADDR      push oversize DHT records at the node at ADDR
//! hostile_peer blob-bad-bitfield DATA_DIR FILE serve FILE with an inconsistent bitfield
//! hostile_peer stall-after DATA_DIR FILE ANSWERS
//!                                              serve FILE for ANSWERS requests, then hold the rest (hostile/stall.rs)
//! hostile_peer streams-hold DATA_DIR ADDR STREAMS
//!                                              hold STREAMS oversize DTN requests open
//! hostile_peer dtn-malformed DATA_DIR ADDR     send the node at ADDR malformed bundles
//! hostile_peer dtn-oversize DATA_DIR ADDR      send it an oversize frame and an oversize bundle
//! hostile_peer dtn-flood DATA_DIR ADDR COUNT PAYLOAD_BYTES
//!                                              flood it with COUNT valid bundles
//! hostile_peer gossip-replay|gossip-future|gossip-topics DATA_DIR ADDR CHANNEL COUNT
//! hostile_peer gossip-flood DATA_DIR ADDR CHANNEL RATE SECONDS
//!                                              lie in channel gossip (`hostile/gossip.rs`)
//! hostile_peer dtn-forge-source|dtn-forge-acks|dtn-ack-flood|dtn-ack-bloat|dtn-summary-leave DATA_DIR ADDR …
//!                                              forge bundles, acks, summaries (hostile/dtn_forge.rs)
//! ```
//!
//! The serving modes print one JSON line: `{"peer_id", "addr", "id",
//! "ticket"}`, then serve until killed. They listen on 127.0.0.1 only, with
//! no discovery.
//!
//! `dht-oversize` dials ADDR (a multiaddr ending in `/p2p/PEER_ID`; the node
//! must be a DHT server), waits until it identifies itself, and stores three
//! records on it with Kademlia PUT_VALUE over ferry's DHT protocol: a small
//! one (which an honest node may store), one with a 2 KiB value (over ferry's
//! 1 KiB record limit, in a message under its 16 KiB packet limit) and one
//! with a 64 KiB value (a message over the packet limit: libp2p checks the
//! size only on receipt, so it is sent). Then it asks the node for each
//! record back, and prints one JSON line with what happened (see
//! [`OversizeReport`]) and exits.
//!
//! The `dtn-*` modes (in `hostile/dtn.rs`) dial ADDR the same way, speak
//! `/ferry/dtn/1` with a codec of their own, print one JSON report and exit.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferry_core::content::{ContentId, ContentKind, Entry, EntryKind, Manifest};
use ferry_core::transfer::{BlobRequest, BlobResponse};
use ferry_net::libp2p::futures::StreamExt;
use ferry_net::libp2p::request_response::{self, Message};
use ferry_net::libp2p::swarm::SwarmEvent;
use ferry_net::libp2p::{Multiaddr, Swarm, identify, kad, multiaddr::Protocol};
use ferry_net::{Behaviour, BehaviourEvent, KAD_PROTOCOL, NetConfig, build_swarm, listen_all};
use ferry_store::{DataDir, Store, identity};

use announce::announce_provider;

#[path = "hostile/announce.rs"]
mod announce;
#[path = "hostile/blob.rs"]
mod blob;
#[path = "hostile/dtn.rs"]
mod dtn;
#[path = "hostile/gossip.rs"]
mod gossip;
#[path = "hostile/stall.rs"]
mod stall;
#[path = "hostile/streams.rs"]
mod streams;
#[path = "hostile/swarm.rs"]
mod swarm;

enum Lie {
    /// Every group answer has one byte flipped.
    CorruptData,
    /// The content is honest bytes, but the manifest walks out of the target.
    EscapingManifest,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (lie, data_dir, file) = match args.as_slice() {
        [mode, dir, file] if mode == "corrupt-data" => (
            Lie::CorruptData,
            PathBuf::from(dir),
            Some(PathBuf::from(file)),
        ),
        [mode, dir] if mode == "escaping-manifest" => {
            (Lie::EscapingManifest, PathBuf::from(dir), None)
        }
        [mode, dir, target] if mode == "dht-oversize" => {
            return dht_oversize(PathBuf::from(dir), target.parse()?).await;
        }
        [mode, dir, rest @ ..] if mode.starts_with("blob-") => {
            return blob::run(mode, PathBuf::from(dir), rest).await;
        }
        [mode, dir, rest @ ..] if mode == "stall-after" => {
            return stall::run(PathBuf::from(dir), rest).await;
        }
        [mode, dir, rest @ ..] if mode.starts_with("streams-") => {
            return streams::run(mode, dir.as_ref(), rest).await;
        }
        [mode, dir, rest @ ..] if mode.starts_with("dtn-") => {
            return dtn::run(mode, PathBuf::from(dir), rest).await;
        }
        [mode, dir, rest @ ..] if mode.starts_with("gossip-") => {
            return gossip::run(mode, PathBuf::from(dir), rest).await;
        }
        _ => bail!(
            "usage: hostile_peer corrupt-data DATA_DIR FILE | escaping-manifest DATA_DIR | dht-oversize DATA_DIR ADDR | dtn-malformed|dtn-oversize DATA_DIR ADDR | dtn-flood DATA_DIR ADDR COUNT PAYLOAD_BYTES | gossip-MODE DATA_DIR ADDR CHANNEL ... (see hostile/gossip.rs)"
        ),
    };
    let dir = DataDir::lock(&data_dir)?;
    let keypair = identity::load_or_create(&dir)?;
    let store = Store::open(&dir)?;
    let (id, kind) = match (&lie, file) {
        (Lie::CorruptData, Some(file)) => {
            let info = store.import_file(&file, false, None, &mut |_| {})?;
            (info.id, ContentKind::Blob)
        }
        _ => (escaping_collection(&store)?, ContentKind::Collection),
    };

    let mut swarm = build_swarm(
        keypair,
        &NetConfig {
            mdns: false,
            ..NetConfig::default()
        },
    )?;
    listen_all(&mut swarm, &["/ip4/127.0.0.1/tcp/0".parse::<Multiaddr>()?])?;
    announce_provider(&mut swarm, id, kind, "hostile").await;

    loop {
        let SwarmEvent::Behaviour(BehaviourEvent::Blob(request_response::Event::Message {
            message: Message::Request {
                request, channel, ..
            },
            ..
        })) = swarm.select_next_some().await
        else {
            continue;
        };
        let response = answer(&store, &lie, request);
        let _ = swarm.behaviour_mut().blob.send_response(channel, response);
    }
}

fn answer(store: &Store, lie: &Lie, request: BlobRequest) -> BlobResponse {
    match request {
        BlobRequest::Have { id } => match store.blob(&id) {
            Ok(Some(info)) => BlobResponse::Have {
                size: info.size,
                kind: info.kind,
                groups: None,
            },
            _ => BlobResponse::NotFound,
        },
        BlobRequest::Groups { id, first, last } => match store.encode_groups(&id, first, last) {
            Ok(mut encoded) => {
                if matches!(lie, Lie::CorruptData) {
                    let middle = encoded.len() / 2;
                    encoded[middle] ^= 0x55;
                }
                BlobResponse::Groups { encoded }
            }
            Err(_) => BlobResponse::NotFound,
        },
    }
}

/// A collection whose only file claims to live outside the target directory.
fn escaping_collection(store: &Store) -> anyhow::Result<ContentId> {
    let payload = b"this file must never be written\n";
    let file = store.import_bytes(payload, ContentKind::Blob, None)?;
    // Built field by field: `Manifest::new` would refuse this path.
    let manifest = Manifest {
        entries: vec![Entry {
            path: "../escaped.txt".into(),
            kind: EntryKind::File {
                size: payload.len() as u64,
                id: file.id,
                executable: false,
            },
        }],
    };
    let info = store
        .import_bytes(&manifest.encode(), ContentKind::Collection, None)
        .context("cannot store the manifest")?;
    Ok(info.id)
}

/// How long `dht-oversize` waits for the node to identify itself, and for each
/// DHT request to be answered (a refused one fails at once, or after the
/// DHT's own query timeout).
const DHT_STEP_TIMEOUT: Duration = Duration::from_secs(40);

/// What `dht-oversize` prints.
#[derive(serde::Serialize)]
struct OversizeReport {
    peer_id: String,
    target: String,
    /// The node's identify protocols include ferry's DHT (it is a server).
    target_serves_dht: bool,
    puts: Vec<PutReport>,
    /// Still connected to the node after everything.
    still_connected: bool,
}

#[derive(serde::Serialize)]
struct PutReport {
    what: &'static str,
    /// The record's value; the PUT_VALUE message carrying it is a little
    /// larger (key, publisher, framing).
    value_bytes: usize,
    /// The node answered that it stored the record.
    stored: bool,
    /// The error the put ended with, if it failed.
    error: Option<String>,
    put_ms: u64,
    /// A GET_VALUE for the key afterwards found the record on the node.
    found_after: bool,
    get_error: Option<String>,
}

async fn dht_oversize(data_dir: PathBuf, target: Multiaddr) -> anyhow::Result<()> {
    let Some(Protocol::P2p(target_peer)) = target.iter().last() else {
        bail!("{target} does not end in /p2p/PEER_ID");
    };
    let dir = DataDir::lock(&data_dir)?;
    let keypair = identity::load_or_create(&dir)?;
    let mut swarm = build_swarm(
        keypair,
        &NetConfig {
            mdns: false,
            ..NetConfig::default()
        },
    )?;
    swarm.dial(target.clone())?;
    let serves_dht = until(
        &mut swarm,
        "the node to identify itself",
        |event| match event {
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) if peer_id == target_peer => {
                Some(info.protocols.iter().any(|p| p.as_ref() == KAD_PROTOCOL))
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } if peer == target_peer => {
                eprintln!("cannot connect to {target}: {error}");
                std::process::exit(2);
            }
            _ => None,
        },
    )
    .await?;
    // The DHT learns the node (and that it speaks the protocol) from its
    // identify answer; with that, a query may go to it.
    swarm
        .behaviour_mut()
        .kad
        .add_address(&target_peer, strip_p2p(target.clone()));

    let mut puts = Vec::new();
    for (what, value_bytes) in [
        ("small record", 100),
        ("value over the 1 KiB record limit", 2 * 1024),
        ("message over the 16 KiB packet limit", 64 * 1024),
    ] {
        let key = kad::RecordKey::new(&format!("hostile {what} {}", swarm.local_peer_id()));
        let record = kad::Record::new(key.clone(), vec![0x5a; value_bytes]);
        let started = Instant::now();
        let query = swarm.behaviour_mut().kad.put_record_to(
            record,
            std::iter::once(target_peer),
            kad::Quorum::One,
        );
        let result = until(&mut swarm, "the put to be answered", |event| match event {
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::PutRecord(result),
                ..
            })) if id == query => Some(result),
            _ => None,
        })
        .await?;
        let put_ms = started.elapsed().as_millis() as u64;
        let (found_after, get_error) = get_back(&mut swarm, key).await?;
        puts.push(PutReport {
            what,
            value_bytes,
            stored: result.is_ok(),
            error: result.err().map(|e| format!("{e:?}")),
            put_ms,
            found_after,
            get_error,
        });
    }
    let report = OversizeReport {
        peer_id: swarm.local_peer_id().to_string(),
        target: target.to_string(),
        target_serves_dht: serves_dht,
        puts,
        still_connected: swarm.is_connected(&target_peer),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Asks the DHT (the node, the only peer it knows) for `key`'s record.
async fn get_back(
    swarm: &mut Swarm<Behaviour>,
    key: kad::RecordKey,
) -> anyhow::Result<(bool, Option<String>)> {
    let query = swarm.behaviour_mut().kad.get_record(key);
    until(swarm, "the get to be answered", |event| match event {
        SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
            id,
            result: kad::QueryResult::GetRecord(result),
            ..
        })) if id == query => Some(match result {
            Ok(kad::GetRecordOk::FoundRecord(_)) => (true, None),
            Ok(kad::GetRecordOk::FinishedWithNoAdditionalRecord { .. }) => (false, None),
            Err(e) => (false, Some(format!("{e:?}"))),
        }),
        _ => None,
    })
    .await
}

/// Drives the swarm until `pick` takes an event, or [`DHT_STEP_TIMEOUT`].
async fn until<T>(
    swarm: &mut Swarm<Behaviour>,
    what: &str,
    mut pick: impl FnMut(SwarmEvent<BehaviourEvent>) -> Option<T>,
) -> anyhow::Result<T> {
    let wait = async {
        loop {
            if let Some(found) = pick(swarm.select_next_some().await) {
                return found;
            }
        }
    };
    tokio::time::timeout(DHT_STEP_TIMEOUT, wait)
        .await
        .with_context(|| format!("timed out after {DHT_STEP_TIMEOUT:?} waiting for {what}"))
}

fn strip_p2p(mut addr: Multiaddr) -> Multiaddr {
    while matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}
