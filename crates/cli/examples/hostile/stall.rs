//! The hostile peer's `stall-after` mode: it serves a real file honestly for a
//! few requests, then holds every later request open without an answer, as a
//! provider that stopped sending would. A download from it makes progress and
//! then waits, so a test can act on a running transfer without racing it.
//!
//! ```text
//! hostile_peer stall-after DATA_DIR FILE ANSWERS
//! ```
//!
//! `ANSWERS` counts chunk-group requests (the size probe is one); "what do
//! you have" is always answered. Like the other serving modes it prints one
//! JSON line (`peer_id`, `addr`, `id`, `ticket`) and serves until killed, on
//! 127.0.0.1 with no discovery.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ferry_core::content::ContentKind;
use ferry_core::transfer::{BlobRequest, BlobResponse};
use ferry_net::libp2p::Multiaddr;
use ferry_net::libp2p::futures::StreamExt;
use ferry_net::libp2p::request_response::{self, Message};
use ferry_net::libp2p::swarm::SwarmEvent;
use ferry_net::{BehaviourEvent, NetConfig, build_swarm, listen_all};
use ferry_store::{DataDir, Store, identity};

use crate::announce::announce_provider;

pub(crate) async fn run(data_dir: PathBuf, rest: &[String]) -> anyhow::Result<()> {
    let [file, answers] = rest else {
        bail!("usage: hostile_peer stall-after DATA_DIR FILE ANSWERS");
    };
    let answers: usize = answers.parse().context("ANSWERS is a number")?;
    let dir = DataDir::lock(&data_dir)?;
    let keypair = identity::load_or_create(&dir)?;
    let store = Store::open(&dir)?;
    let info = store.import_file(Path::new(file), false, None, &mut |_| {})?;
    let mut swarm = build_swarm(
        keypair,
        &NetConfig {
            mdns: false,
            ..NetConfig::default()
        },
    )?;
    listen_all(&mut swarm, &["/ip4/127.0.0.1/tcp/0".parse::<Multiaddr>()?])?;
    announce_provider(&mut swarm, info.id, ContentKind::Blob, "stalled.bin").await;

    // Requests past the answered ones are kept here, unanswered: dropping
    // one would close its stream and tell the node at once.
    let mut held = Vec::new();
    let mut answered = 0;
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
        let response = match request {
            BlobRequest::Have { .. } => BlobResponse::Have {
                size: info.size,
                kind: ContentKind::Blob,
                groups: None,
            },
            BlobRequest::Groups { .. } if answered >= answers => {
                held.push(channel);
                continue;
            }
            BlobRequest::Groups { id, first, last } => {
                answered += 1;
                match store.encode_groups(&id, first, last) {
                    Ok(encoded) => BlobResponse::Groups { encoded },
                    Err(_) => BlobResponse::NotFound,
                }
            }
        };
        let _ = swarm.behaviour_mut().blob.send_response(channel, response);
    }
}
