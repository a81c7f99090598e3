//! Writes seed corpora: valid encodings of every message the targets read,
//! made with ferry's own encoders (and dtn7-rs's, for bundles as other DTN
//! software sends them), wrapped in the scripts the structured targets read.
//!
//! `seeds DIR` writes `DIR/<target>/<name>`; `fuzz/seed-corpora.sh` runs it
//! and minimises the result into `fuzz/corpus/`.

use std::fs;
use std::path::{Path, PathBuf};

use ferry_core::beacon::{self, BeaconInfo};
use ferry_core::channel::{ChannelName, Message};
use ferry_core::content::{
    Bitfield, ContentId, ContentKind, Entry, EntryKind, GROUP_BYTES, Manifest, Ticket,
};
use ferry_core::dtn::wire::{DtnRequest, DtnResponse, Receipt};
use ferry_core::dtn::{
    Ack, Bundle, BundleId, CreationTimestamp, Eid, NewBundle, NodeId, Priority, Summary,
};
use ferry_core::sync::{SyncRequest, SyncResponse};
use ferry_core::transfer::BlobResponse;
use ferry_fuzz::{Envelope, ScriptWriter, keys, peer};

/// Writes each seed of one target.
struct Corpus {
    dir: PathBuf,
    count: usize,
}

impl Corpus {
    fn new(root: &Path, target: &str) -> Self {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("the corpus directory can be made");
        Self { dir, count: 0 }
    }

    fn add(&mut self, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref();
        let name = format!(
            "seed-{:03}-{}",
            self.count,
            &blake3::hash(bytes).to_hex()[..16]
        );
        fs::write(self.dir.join(name), bytes).expect("a seed can be written");
        self.count += 1;
    }
}

fn postcard<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("ferry's messages encode")
}

/// Bundles as ferry makes them (every priority, with and without a clock,
/// empty and larger payloads) and as dtn7-rs's `dtnsend` does.
fn bundles() -> Vec<Vec<u8>> {
    let source = Eid::for_peer(&peer(1), "text").expect("a valid endpoint");
    let destinations = [
        Eid::for_peer(&peer(0), "text").expect("a valid endpoint"),
        "dtn://beta/incoming".parse().expect("a valid endpoint"),
        "ipn:7.1".parse().expect("a valid endpoint"),
    ];
    let mut out = Vec::new();
    for (i, destination) in destinations.into_iter().enumerate() {
        for (priority, time, payload) in [
            (Priority::Normal, 800_000_000_000, b"hello village".to_vec()),
            (Priority::Expedited, 0, Vec::new()),
            (Priority::Bulk, 812_345_678_901, vec![0x5a; 3000]),
        ] {
            let bundle = Bundle::new(NewBundle {
                source: source.clone(),
                destination: destination.clone(),
                created: CreationTimestamp {
                    time,
                    seq: i as u64,
                },
                lifetime_ms: 3_600_000,
                priority,
                payload,
            })
            .expect("a valid bundle");
            out.push(bundle.to_bytes());
        }
    }
    for crc in [bp7::crc::CRC_NO, bp7::crc::CRC_16, bp7::crc::CRC_32] {
        let mut b = bp7::bundle::new_std_payload_bundle(
            bp7::EndpointID::with_dtn("alpha/sender").expect("a valid endpoint"),
            bp7::EndpointID::with_dtn("beta/incoming").expect("a valid endpoint"),
            b"from dtnsend".to_vec(),
        );
        b.primary.creation_timestamp =
            bp7::CreationTimestamp::with_time_and_seq(800_000_000_000, 0);
        b.set_crc(crc);
        out.push(b.to_cbor());
    }
    out
}

fn bundle_parse(root: &Path) {
    let mut corpus = Corpus::new(root, "bundle_parse");
    for bundle in bundles() {
        corpus.add(bundle);
    }
}

fn summary(n: u64) -> Summary {
    let source = Eid::for_peer(&peer(2), "text").expect("a valid endpoint");
    let id = |seq| BundleId::new(source.clone(), CreationTimestamp { time: 5, seq });
    Summary {
        holds: (0..n).map(id).collect(),
        acks: (100..100 + n)
            .map(|seq| {
                Ack::signed(
                    &keys()[3],
                    id(seq),
                    NodeId::from_peer(&peer(3)),
                    900_000_000_000,
                )
                .expect("an ed25519 key signs")
            })
            .collect(),
        predictabilities: vec![(NodeId::from_peer(&peer(3)), 0.5)],
    }
}

fn dtn_router(root: &Path) {
    let mut corpus = Corpus::new(root, "dtn_router");
    let bundles = bundles();
    for strategy in 0..4u8 {
        let mut w = ScriptWriter::new();
        w.u8(strategy);
        if strategy == 2 {
            w.u8(8);
        }
        // Contact up, summaries both ways, bundles in, a plan and its receipts.
        w.u8(0).u8(1);
        w.u8(2)
            .u8(1)
            .chunk(&postcard(&DtnRequest::Summary(summary(3))));
        for bytes in &bundles[..4] {
            let request = DtnRequest::Bundle {
                copies: 4,
                bytes: bytes.clone(),
            };
            w.u8(2).u8(1).chunk(&postcard(&request));
        }
        w.u8(7).u8(2).u64(9);
        w.u8(0).u8(2);
        w.u8(4).u8(2);
        w.u8(3)
            .u8(2)
            .chunk(&postcard(&DtnResponse::Receipt(Receipt::Stored)));
        w.u8(3)
            .u8(2)
            .chunk(&postcard(&DtnResponse::Receipt(Receipt::Refused(
                "full".into(),
            ))));
        w.u8(3)
            .u8(2)
            .chunk(&postcard(&DtnResponse::Summary(summary(2))));
        // A summary after the contact went down, time, a restart.
        w.u8(1).u8(1);
        w.u8(3)
            .u8(1)
            .chunk(&postcard(&DtnResponse::Summary(summary(1))));
        w.u8(6).u8(0).u32(3_600_000);
        w.u8(9).u8(0);
        w.u8(8)
            .u8(3)
            .chunk(b"dtn://a-rather-long-node-name-for-a-bus/");
        w.u8(0).u8(3);
        corpus.add(w.finish());
    }
}

fn blob_fetch(root: &Path) {
    let mut corpus = Corpus::new(root, "blob_fetch");
    let size = 7 * GROUP_BYTES + 100;
    let mut partial = Bitfield::new(8).expect("8 groups fit");
    partial.set_range(4, 8);
    let have = |groups| BlobResponse::Have {
        size,
        kind: ContentKind::Blob,
        groups,
    };
    let data = BlobResponse::Groups {
        encoded: vec![1; 64],
    };
    let mut resumed = Bitfield::new(8).expect("8 groups fit");
    resumed.set(0);
    for (config, resume) in [([2u8, 2, 3], Vec::new()), ([16, 4, 3], resumed.to_bytes())] {
        let mut w = ScriptWriter::new();
        w.raw(&config).chunk(&resume);
        w.u8(0).u8(0).chunk(&postcard(&have(None)));
        w.u8(0).u8(1).chunk(&postcard(&have(Some(partial.clone()))));
        w.u8(4).bool(true);
        for round in 0..6u8 {
            w.u8(1).u8(0).chunk(&postcard(&data)).bool(true).u16(0);
            w.u8(1)
                .u8(1)
                .chunk(&postcard(&data))
                .bool(round % 3 != 0)
                .u16(1);
        }
        w.u8(1).u8(1).chunk(&postcard(&BlobResponse::Busy));
        w.u8(1).u8(0).chunk(&postcard(&BlobResponse::NotFound));
        w.u8(1).u8(0).chunk(&postcard(&BlobResponse::Refused {
            reason: "no".into(),
        }));
        w.u8(2).u8(1);
        w.u8(0).u8(2).chunk(&postcard(&have(None)));
        w.u8(3).u8(0);
        corpus.add(w.finish());
    }
    // A size that is a lie: the probe fails, the next claim is probed.
    let mut w = ScriptWriter::new();
    w.raw(&[4, 1, 1]).chunk(&[]);
    w.u8(0).u8(0).chunk(&postcard(&BlobResponse::Have {
        size: 1 << 30,
        kind: ContentKind::Collection,
        groups: None,
    }));
    w.u8(0).u8(1).chunk(&postcard(&have(None)));
    w.u8(4).bool(false).u8(4).bool(true);
    w.u8(1).u8(1).chunk(&postcard(&data)).bool(true).u16(0);
    corpus.add(w.finish());
}

fn bitfield(root: &Path) {
    let mut corpus = Corpus::new(root, "bitfield");
    for groups in [0u64, 1, 63, 64, 65, 130, 1000] {
        let mut field = Bitfield::new(groups).expect("a small field");
        field.set_range(groups / 3, groups / 2);
        corpus.add(field.to_bytes());
        corpus.add(Bitfield::full(groups).expect("a small field").to_bytes());
    }
}

fn channel_messages() -> Vec<Message> {
    let channel: ChannelName = "village".parse().expect("a valid channel name");
    [
        ("ana", 1_700_000_000_000, "hello"),
        ("", 0, ""),
        ("bus driver", u64::MAX, "the bus leaves at 9"),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (name, time, text))| {
        Message::sign(&keys()[i], channel.clone(), name, time, text).expect("a message signs")
    })
    .collect()
}

fn channel_message(root: &Path) {
    let mut corpus = Corpus::new(root, "channel_message");
    for (i, message) in channel_messages().iter().enumerate() {
        corpus.add([&[0u8], message.wire()].concat());
        let envelope: Envelope = postcard::from_bytes(message.wire()).expect("an envelope");
        corpus.add([&[1u8, i as u8], envelope.signed.as_slice()].concat());
    }
}

fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    cbor4ii::serde::to_vec(Vec::new(), value).expect("sync messages encode")
}

fn sync_history(root: &Path) {
    let mut corpus = Corpus::new(root, "sync_history");
    let messages = channel_messages();
    let channel: ChannelName = "village".parse().expect("a valid channel name");
    for have in [Vec::new(), messages.iter().map(|m| m.id).collect()] {
        let mut w = ScriptWriter::new();
        w.u8(0).u8(4);
        for (time, size) in [(1_000u64, 10u16), (900, 70), (500, 2000), (0, 1)] {
            w.u64(time).u16(size);
        }
        w.u64(2_000);
        w.raw(&cbor(&SyncRequest::History {
            channel: channel.clone(),
            have,
        }));
        corpus.add(w.finish());
    }
    corpus.add([&[0u8, 0], &[0; 8][..], &cbor(&SyncRequest::Hello)].concat());
    for response in [
        SyncResponse::History {
            messages: messages.iter().map(|m| m.wire().to_vec()).collect(),
            more: true,
        },
        SyncResponse::Hello { name: "ana".into() },
        SyncResponse::Refused {
            reason: "busy".into(),
        },
    ] {
        corpus.add([&[1u8], cbor(&response).as_slice()].concat());
    }
}

fn beacon(root: &Path) {
    let mut corpus = Corpus::new(root, "beacon");
    for (i, info) in [
        BeaconInfo {
            seq: 1,
            name: "ana".into(),
            tcp_port: Some(4001),
            quic_port: Some(4001),
        },
        BeaconInfo {
            seq: u64::MAX,
            name: String::new(),
            tcp_port: None,
            quic_port: None,
        },
    ]
    .iter()
    .enumerate()
    {
        let datagram = beacon::encode(&keys()[i], info).expect("a beacon encodes");
        corpus.add([&[0u8], datagram.as_slice()].concat());
        corpus.add([&[1u8, i as u8], postcard(info).as_slice()].concat());
    }
}

fn ticket(root: &Path) {
    let mut corpus = Corpus::new(root, "ticket");
    for (kind, name, addrs) in [
        (
            ContentKind::Blob,
            Some("photo.jpg"),
            vec!["/ip4/192.168.1.20/tcp/4001"],
        ),
        (
            ContentKind::Collection,
            None,
            vec!["/ip6/::1/udp/4001/quic-v1", "/dns4/example.org/tcp/1"],
        ),
    ] {
        let ticket = Ticket {
            id: ContentId::of(b"shared"),
            kind,
            name: name.map(str::to_owned),
            provider: peer(1),
            addrs: addrs
                .into_iter()
                .map(|a| a.parse().expect("a valid address"))
                .collect(),
        };
        let text = ticket.to_string();
        corpus.add([&[0u8], text.as_bytes()].concat());
        let body = data_encoding::BASE32_NOPAD
            .decode(text["ferry1".len()..].to_ascii_uppercase().as_bytes())
            .expect("a ticket is base32");
        corpus.add([&[1u8], body.as_slice()].concat());
    }
}

fn manifests() -> Vec<Vec<u8>> {
    let file = |path: &str, size, executable| Entry {
        path: path.into(),
        kind: EntryKind::File {
            size,
            id: ContentId::of(path.as_bytes()),
            executable,
        },
    };
    let dir = |path: &str| Entry {
        path: path.into(),
        kind: EntryKind::Dir,
    };
    [
        vec![],
        vec![file("a.txt", 5, false)],
        vec![
            file("docs/readme.md", 100, false),
            file("docs/img/logo.png", 20_000, false),
            file("run.sh", 12, true),
            dir("empty"),
        ],
    ]
    .into_iter()
    .map(|entries| Manifest::new(entries).expect("a valid tree").encode())
    .collect()
}

fn manifest(root: &Path) {
    let mut corpus = Corpus::new(root, "manifest");
    for bytes in manifests() {
        corpus.add(bytes);
    }
}

/// Bytes the peer session writes to the local one, in the order and pieces
/// it writes them, while the two talk; the script replays them.
fn tcpcl_session(root: &Path) {
    use ferry_fuzz::tcpcl::codec::{
        ExtensionItem, Message as Tcpcl, MsgReject, MsgRejectReason, SegmentFlags, SessInit,
        SessTerm, SessTermReason, XferAck, XferRefuse, XferRefuseReason, XferSegment,
    };
    use ferry_fuzz::tcpcl::session::SessionConfig;
    use ferry_fuzz::tcpcl::session::{Role, Session};
    use std::time::Instant;

    let mut corpus = Corpus::new(root, "tcpcl_session");
    for local_active in [false, true] {
        let now = Instant::now();
        let (keepalive, segment_mru, transfer_units, max_send) = (30u8, 1000u16, 4096u16, 800u16);
        let mut local_config = SessionConfig::new("dtn://fuzz/");
        local_config.keepalive_secs = keepalive.into();
        local_config.segment_mru = 1 + u64::from(segment_mru);
        local_config.transfer_mru = 1 + u64::from(transfer_units) * 16;
        local_config.max_send_segment = 1 + u64::from(max_send);
        let mut peer_config = SessionConfig::new("dtn://peer/");
        peer_config.segment_mru = 500;
        let (local_role, peer_role) = if local_active {
            (Role::Active, Role::Passive)
        } else {
            (Role::Passive, Role::Active)
        };
        let mut local = Session::new(local_role, local_config, now).expect("a valid config");
        let mut remote = Session::new(peer_role, peer_config, now).expect("a valid config");
        let mut w = ScriptWriter::new();
        w.bool(local_active)
            .u8(keepalive)
            .u16(segment_mru)
            .u16(transfer_units)
            .u16(max_send);
        let pump = |local: &mut Session, remote: &mut Session, w: &mut ScriptWriter| loop {
            let mut to_remote = Vec::new();
            while let Some(bytes) = local.poll_transmit(now) {
                to_remote.extend_from_slice(&bytes);
            }
            remote.handle_input(&to_remote, now);
            let mut moved = !to_remote.is_empty();
            while let Some(bytes) = remote.poll_transmit(now) {
                w.u8(0).chunk(&bytes);
                local.handle_input(&bytes, now);
                moved = true;
            }
            if !moved {
                break;
            }
        };
        pump(&mut local, &mut remote, &mut w);
        remote
            .send_bundle(vec![0x42; 1200])
            .expect("an established session sends");
        pump(&mut local, &mut remote, &mut w);
        w.u8(3).u8(0);
        local.ack_transfer(0).ok();
        w.u8(2).u16(700);
        local.send_bundle(vec![0xb7; 700]).ok();
        pump(&mut local, &mut remote, &mut w);
        w.u8(1).u32(20_000);
        w.u8(6).u8(0);
        local.close(SessTermReason::UNKNOWN, now);
        pump(&mut local, &mut remote, &mut w);
        w.u8(7);
        corpus.add(w.finish());
    }
    // The codec alone: one of every message.
    let messages = [
        Tcpcl::SessInit(SessInit {
            keepalive: 30,
            segment_mru: 1000,
            transfer_mru: 1 << 20,
            node_id: "dtn://peer/".into(),
            extensions: vec![ExtensionItem {
                flags: 0,
                item_type: 7,
                value: vec![1, 2],
            }],
        }),
        Tcpcl::XferSegment(XferSegment {
            flags: SegmentFlags::START.with(SegmentFlags::END),
            transfer_id: 3,
            extensions: vec![ExtensionItem {
                flags: ExtensionItem::CRITICAL,
                item_type: ExtensionItem::TRANSFER_LENGTH,
                value: 5u64.to_be_bytes().to_vec(),
            }],
            data: b"bytes".to_vec(),
        }),
        Tcpcl::XferAck(XferAck {
            flags: SegmentFlags::END,
            transfer_id: 3,
            acknowledged_len: 5,
        }),
        Tcpcl::XferRefuse(XferRefuse {
            reason: XferRefuseReason::NO_RESOURCES,
            transfer_id: 4,
        }),
        Tcpcl::Keepalive,
        Tcpcl::SessTerm(SessTerm {
            flags: SessTerm::REPLY,
            reason: SessTermReason::BUSY,
        }),
        Tcpcl::MsgReject(MsgReject {
            reason: MsgRejectReason::TYPE_UNKNOWN,
            rejected_header: 0x42,
        }),
    ];
    let mut all = Vec::new();
    for message in &messages {
        message.encode(&mut all).expect("a valid message encodes");
    }
    let mut w = ScriptWriter::new();
    w.bool(false).u8(30).u16(1000).u16(4096).u16(800);
    w.u8(8).chunk(&all);
    corpus.add(w.finish());
}

#[cfg(feature = "node")]
fn folder_import(root: &Path) {
    let mut corpus = Corpus::new(root, "folder_import");
    let bundles = bundles();
    let acks: Vec<Ack> = Bundle::parse(&bundles[3])
        .into_iter()
        .filter_map(|b| {
            // Signed by the destination, as a real ack must be.
            let key = keys()
                .iter()
                .find(|k| NodeId::from_peer(&k.public().to_peer_id()) == *b.destination_node())?;
            let destination = b.destination_node().clone();
            Ack::signed(key, b.id().clone(), destination, 900_000_000_000).ok()
        })
        .collect();
    for layout in [true, false] {
        let mut w = ScriptWriter::new();
        w.bool(layout);
        for (i, bytes) in bundles.iter().enumerate().take(5) {
            w.u8(0).chunk(format!("b{i}").as_bytes()).chunk(bytes);
        }
        w.u8(0).chunk(b"junk").chunk(b"not a bundle");
        w.u8(1).chunk(b"shared file bytes").bool(false);
        w.u8(1).chunk(&manifests()[2]).bool(true);
        w.u8(1).chunk(b"not a manifest").bool(true);
        w.u8(2).chunk(b"0123abcd").chunk(b"misnamed");
        w.u8(3)
            .chunk(&serde_json::to_vec(&acks).expect("acks encode as JSON"));
        w.u8(4).chunk(b"a-directory");
        w.u8(5).chunk(b"README.txt").chunk(b"hello");
        corpus.add(w.finish());
    }
}

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "seeds".into()));
    bundle_parse(&root);
    dtn_router(&root);
    blob_fetch(&root);
    bitfield(&root);
    channel_message(&root);
    sync_history(&root);
    beacon(&root);
    ticket(&root);
    manifest(&root);
    tcpcl_session(&root);
    #[cfg(feature = "node")]
    folder_import(&root);
    println!("seeds written under {}", root.display());
}
