//! A deliberately broken ferry peer, for the test suite: it speaks ferry's
//! real protocols over a real socket, but lies in the ways a hostile peer
//! would, so the tests can check that an honest node detects it, drops it, and
//! writes nothing it should not.
//!
//! ```text
//! hostile_peer corrupt-data DATA_DIR FILE      serve FILE's blob with a flipped byte in every answer
//! hostile_peer escaping-manifest DATA_DIR      serve a collection whose manifest says "../escaped.txt"
//! ```
//!
//! It prints one JSON line: `{"peer_id", "addr", "id", "ticket"}`, then
//! serves until killed. It listens on 127.0.0.1 only, with no discovery.

use std::path::PathBuf;

use anyhow::{Context, bail};
use ferry_core::content::{ContentId, ContentKind, Entry, EntryKind, Manifest, Ticket};
use ferry_core::transfer::{BlobRequest, BlobResponse};
use ferry_net::libp2p::futures::StreamExt;
use ferry_net::libp2p::request_response::{self, Message};
use ferry_net::libp2p::swarm::SwarmEvent;
use ferry_net::libp2p::{Multiaddr, multiaddr::Protocol};
use ferry_net::{BehaviourEvent, NetConfig, build_swarm, listen_all};
use ferry_store::{DataDir, Store, identity};

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
        _ => bail!("usage: hostile_peer corrupt-data DATA_DIR FILE | escaping-manifest DATA_DIR"),
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
    let peer_id = *swarm.local_peer_id();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    let ticket = Ticket {
        id,
        kind,
        name: Some("hostile".into()),
        provider: peer_id,
        addrs: vec![addr.clone()],
    };
    println!(
        "{}",
        serde_json::json!({
            "peer_id": peer_id.to_string(),
            "addr": addr.with(Protocol::P2p(peer_id)).to_string(),
            "id": id.to_string(),
            "ticket": ticket.to_string(),
        })
    );

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
