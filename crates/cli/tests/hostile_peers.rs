//! Peers that lie: real processes speaking ferry's protocols over real sockets
//! (`examples/hostile_peer.rs`), against real `ferry` nodes. A download must
//! finish correct despite them, drop them, and never write outside its target.
//! A DTN contact must refuse malformed, oversize and flooding bundles (and
//! bundles a full store has no room for) with a clear log line, and lose no
//! other bundle.

// The harness also serves tests this file does not have (multi_process.rs
// uses all of it).
use ferry_testkit::hostile;
#[path = "hostile/dtn.rs"]
mod hostile_dtn;
// What `hostile_peer dtn-*` prints; this file reads not every field.
#[allow(dead_code)]
#[path = "../examples/hostile/dtn_report.rs"]
mod dtn_report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ferry_core::dtn::wire::MAX_REQUEST_BYTES;
use ferry_core::dtn::{Bundle, MAX_BUNDLE_BYTES};
use ferry_node::control::types::{DtnSendReply, DtnStatus, GetResult, InboxItem};
use ferry_testkit::harness::{Node, Run, SPREAD_TIMEOUT, tcp_addr, wait_connected, wait_until};
use hostile::start_hostile;
use hostile_dtn::{absent_peer, dtn_node_id, dtn_status, hostile_dtn};

fn random_file(dir: &Path, len: usize) -> PathBuf {
    let mut bytes = Vec::with_capacity(len);
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"hostile-peers");
    let mut reader = hasher.finalize_xof();
    bytes.resize(len, 0);
    reader.fill(&mut bytes);
    let path = dir.join("payload.bin");
    std::fs::write(&path, &bytes).unwrap();
    path
}

#[test]
fn a_seeder_sending_corrupt_data_is_dropped_and_the_download_is_correct() {
    let work = tempfile::tempdir().unwrap();
    let file = random_file(work.path(), 24 << 20);
    let honest: Vec<Node> = ["s1", "s2", "s3"].iter().map(|n| Node::start(n)).collect();
    for seeder in &honest {
        seeder
            .ferry(&["share", file.to_str().unwrap(), "--json"])
            .ok();
    }
    let liar = start_hostile(&["corrupt-data", file.to_str().unwrap()]);
    let leecher = Node::start("leecher");
    for seeder in &honest {
        leecher.ferry(&["connect", &seeder.addr()]).ok();
        wait_connected(&leecher, seeder, &seeder.id().peer_id);
    }
    leecher.ferry(&["connect", &liar.announced.addr]).ok();

    let output = work.path().join("fetched.bin");
    let run: Run = leecher
        .ferry(&[
            "get",
            &liar.announced.id,
            "-o",
            output.to_str().unwrap(),
            "--json",
        ])
        .ok();
    let result: GetResult = run.json();

    assert_eq!(
        std::fs::read(&output).unwrap(),
        std::fs::read(&file).unwrap()
    );
    let liar_entry = result
        .providers
        .iter()
        .find(|p| p.peer_id == liar.announced.peer_id)
        .unwrap_or_else(|| panic!("the liar was never asked: {:#?}", result.providers));
    assert!(
        liar_entry.dropped,
        "the liar was not dropped: {liar_entry:?}"
    );
    assert!(
        result
            .providers
            .iter()
            .filter(|p| !p.dropped && p.bytes > 0)
            .count()
            >= 2,
        "honest seeders should share the work: {:#?}",
        result.providers
    );
    assert!(
        leecher.log().contains("fails verification"),
        "the leecher's log says why it dropped the liar"
    );
}

#[test]
fn a_manifest_that_escapes_the_target_is_refused_and_nothing_is_written() {
    let work = tempfile::tempdir().unwrap();
    let liar = start_hostile(&["escaping-manifest"]);
    let leecher = Node::start("leecher");
    let target = work.path().join("inbox").join("download");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();

    let run = leecher.ferry(&[
        "get",
        &liar.announced.ticket,
        "-o",
        target.to_str().unwrap(),
    ]);

    assert!(
        !run.status.success(),
        "a hostile manifest must fail the get: {run:#?}"
    );
    assert!(
        run.stderr.contains("leaves the target") || run.stderr.contains("refused"),
        "the error should say why: {}",
        run.stderr
    );
    assert!(!target.exists(), "nothing is written at the target");
    assert!(!work.path().join("inbox/escaped.txt").exists());
    assert!(!work.path().join("escaped.txt").exists());
    // The node is still fine.
    leecher.ferry(&["id", "--json"]).ok();
}

// ---------------------------------------------------------------------------
// Delay-tolerant networking: hostile `/ferry/dtn/1` peers. Each attack must be
// handled with a clear log line, and cost no other bundle.

/// The lines of `node`'s log that contain every one of `parts`.
fn log_lines(node: &Node, parts: &[&str]) -> Vec<String> {
    node.log()
        .lines()
        .filter(|line| parts.iter().all(|p| line.contains(p)))
        .map(str::to_owned)
        .collect()
}

/// A node already holding bundles an attack must not cost it: one of its own
/// for a peer that is nowhere, and one it carries for a legit peer (connected,
/// and still there to check the node afterwards).
struct Holding {
    target: Node,
    legit: Node,
    /// (bundle id, text) of each held bundle.
    held: Vec<(String, String)>,
    /// The absent peers they are for.
    destinations: Vec<String>,
    target_id: String,
    legit_id: String,
}

fn holding(config: Option<&str>) -> Holding {
    let target = match config {
        Some(config) => Node::start_with_config("target", config),
        None => Node::start("target"),
    };
    let legit = Node::start("legit");
    let (target_id, legit_id) = (target.id().peer_id, legit.id().peer_id);
    let (x, y) = (absent_peer(), absent_peer());
    let own_text = "the target's own bundle, for a peer that is nowhere";
    let own: DtnSendReply = target
        .ferry(&["dtn", "send", &x, own_text, "--json"])
        .ok()
        .json();
    let carried_text = "a bundle the target carries for a legit peer";
    let carried: DtnSendReply = legit
        .ferry(&["dtn", "send", &y, carried_text, "--json"])
        .ok()
        .json();
    legit.ferry(&["connect", &tcp_addr(&target)]).ok();
    wait_until(
        "the target to take the legit peer's bundle",
        SPREAD_TIMEOUT,
        || {
            let status = dtn_status(&target);
            if status.bundles.iter().any(|b| b.id == carried.id) {
                Ok(())
            } else {
                Err(format!("{:#?}", status.bundles))
            }
        },
    );
    Holding {
        target,
        legit,
        held: vec![
            (own.id, own_text.to_owned()),
            (carried.id, carried_text.to_owned()),
        ],
        destinations: vec![x, y],
        target_id,
        legit_id,
    }
}

impl Holding {
    /// The bundles held before the attack are all still held, with the same
    /// origin, and their bytes (exported and parsed again) say what they said.
    #[track_caller]
    fn assert_intact(&self) {
        let status = dtn_status(&self.target);
        let (own, carried) = (&self.held[0].0, &self.held[1].0);
        let find = |id: &str| {
            status
                .bundles
                .iter()
                .find(|b| b.id == id)
                .unwrap_or_else(|| panic!("bundle {id} is gone: {:#?}", status.bundles))
        };
        assert!(find(own).own, "{:#?}", find(own));
        assert_eq!(
            find(carried).received_from.as_deref(),
            Some(dtn_node_id(&self.legit_id).as_str())
        );

        let folder = tempfile::tempdir().unwrap();
        let mut args = vec!["dtn", "export", folder.path().to_str().unwrap()];
        for to in &self.destinations {
            args.extend(["--to", to.as_str()]);
        }
        args.push("--json");
        self.target.ferry(&args).ok();
        let mut payloads = BTreeMap::new();
        for file in std::fs::read_dir(folder.path().join("ferry-dtn/bundles")).unwrap() {
            let bytes = std::fs::read(file.unwrap().path()).unwrap();
            let bundle = Bundle::parse(&bytes).expect("an exported bundle parses");
            payloads.insert(bundle.id().to_string(), bundle.payload().to_vec());
        }
        for (id, text) in &self.held {
            assert_eq!(
                payloads
                    .get(id)
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
                Some(text.clone()),
                "bundle {id} is not intact; exported: {:?}",
                payloads.keys()
            );
        }
    }

    /// The node still works: the legit peer's new bundle for it arrives.
    #[track_caller]
    fn assert_still_delivers(&self) {
        let text = "delivered after the attack";
        let sent: DtnSendReply = self
            .legit
            .ferry(&["dtn", "send", &self.target_id, text, "--json"])
            .ok()
            .json();
        wait_until(
            "a legit bundle to reach the target's inbox",
            SPREAD_TIMEOUT,
            || {
                let inbox: Vec<InboxItem> =
                    self.target.ferry(&["dtn", "inbox", "--json"]).ok().json();
                match inbox.iter().find(|i| i.id == sent.id) {
                    Some(item) if item.text.as_deref() == Some(text) => Ok(()),
                    _ => Err(format!("{inbox:#?}")),
                }
            },
        );
    }
}

/// Malformed bundles — garbage, truncated CBOR, a CRC that does not match — are
/// each refused with a log line saying what was wrong; the third disconnects
/// the peer (after it has heard why), a valid bundle it sends at once is not
/// taken, and the bundles the node held are untouched.
#[test]
fn dtn_malformed_bundles_are_refused_and_the_peer_is_dropped_after_three() {
    let started = Instant::now();
    let node = holding(None);
    let report = hostile_dtn("dtn-malformed", &node.target, &[]);

    let answers: Vec<&str> = report
        .sent
        .iter()
        .map(|s| s.answer.as_deref().unwrap_or("(no answer)"))
        .collect();
    assert_eq!(answers.len(), 4, "{report:#?}");
    assert!(
        answers[0].starts_with("refused: not a CBOR-encoded BPv7 bundle"),
        "garbage: {answers:?}"
    );
    assert!(
        answers[1].starts_with("refused: not a CBOR-encoded BPv7 bundle: EOF"),
        "truncated: {answers:?}"
    );
    assert!(
        answers[2].starts_with("refused: bundle breaks RFC 9171") && answers[2].contains("CRC"),
        "flipped byte: {answers:?}"
    );
    assert_ne!(
        answers[3], "stored",
        "a peer struck out still had a bundle stored: {report:#?}"
    );
    assert!(
        report.hung_up_after_ms.is_some() && !report.still_connected,
        "the node did not hang up: {report:#?}"
    );

    let peer = report.peer_id.as_str();
    let refused = log_lines(
        &node.target,
        &["malformed bundle from peer refused: ", peer],
    );
    assert_eq!(refused.len(), 3, "{refused:#?}");
    assert!(refused[0].contains("not a CBOR-encoded BPv7 bundle"));
    assert!(refused[2].contains("CRC check failed"));
    assert_eq!(
        log_lines(
            &node.target,
            &["disconnecting peer: 3 malformed bundles", peer]
        )
        .len(),
        1
    );
    assert!(!node.target.connected_to(peer));
    let status = dtn_status(&node.target);
    let from_hostile = dtn_node_id(peer);
    assert!(
        !status
            .bundles
            .iter()
            .any(|b| b.received_from.as_deref() == Some(from_hostile.as_str())),
        "{:#?}",
        status.bundles
    );

    node.assert_intact();
    node.assert_still_delivers();
    println!("malformed: {:.1} s", started.elapsed().as_secs_f64());
}

/// A frame over the protocol's size limit is refused from its length prefix
/// (logged, not read), and a bundle just over MAX_BUNDLE_BYTES in a frame
/// within it is refused with its size; the peer may still send a good bundle,
/// and the node's other bundles are untouched.
#[test]
fn dtn_oversize_frames_and_bundles_are_refused() {
    let started = Instant::now();
    let node = holding(None);
    let report = hostile_dtn("dtn-oversize", &node.target, &[]);

    assert_eq!(report.sent.len(), 3, "{report:#?}");
    let frame = &report.sent[0];
    assert!(
        frame.answer.is_none() && frame.failure.is_some(),
        "an oversize frame must not be answered: {frame:#?}"
    );
    let over = &report.sent[1];
    assert_eq!(over.bytes, MAX_BUNDLE_BYTES + 1);
    assert_eq!(
        over.answer.as_deref(),
        Some("refused: bundle of 16777217 bytes is over the 16777216-byte limit"),
        "{over:#?}"
    );
    assert_eq!(
        report.sent[2].answer.as_deref(),
        Some("stored"),
        "{report:#?}"
    );
    assert!(report.still_connected, "{report:#?}");

    let frame_line = format!(
        "message from a peer refused unread: {} bytes is over the {MAX_REQUEST_BYTES}-byte limit",
        frame.bytes
    );
    assert_eq!(
        log_lines(&node.target, &[&frame_line, "protocol=/ferry/dtn/1"]).len(),
        1,
        "no log line for the oversize frame:\n{}",
        node.target.log()
    );
    assert_eq!(
        log_lines(
            &node.target,
            &[
                "malformed bundle from peer refused: bundle of 16777217 bytes is over the 16777216-byte limit",
                &report.peer_id,
            ]
        )
        .len(),
        1
    );
    let status = dtn_status(&node.target);
    let from_hostile = dtn_node_id(&report.peer_id);
    assert_eq!(
        status
            .bundles
            .iter()
            .filter(|b| b.received_from.as_deref() == Some(from_hostile.as_str()))
            .count(),
        1,
        "only the honest bundle is held: {:#?}",
        status.bundles
    );

    node.assert_intact();
    node.assert_still_delivers();
    println!("oversize: {:.1} s", started.elapsed().as_secs_f64());
}

/// Thousands of valid bundles from one peer, as fast as the node answers: its
/// store share (a quarter of the quota) bounds what is kept, the rate limit
/// refuses the excess, each with one log line (not one per bundle), every
/// bundle the node said it stored is held, and nothing else is evicted.
#[test]
fn dtn_a_flood_from_one_peer_takes_its_share_and_nothing_else() {
    const QUOTA_MIB: u64 = 4;
    const FLOOD: usize = 8_000;
    // A burst past the share (about 900 bundles of this size), and a rate any
    // machine's flood exceeds: both limits apply however fast the test runs.
    const BURST: usize = 1_000;
    const PER_SECOND: usize = 100;
    let started = Instant::now();
    let node = holding(Some(&format!(
        "dtn_quota_mib = {QUOTA_MIB}\ndtn_peer_bundle_burst = {BURST}\ndtn_peer_bundles_per_second = {PER_SECOND}\n"
    )));
    let report = hostile_dtn("dtn-flood", &node.target, &[&FLOOD.to_string(), "1024"]);
    let flood = report.flood.as_ref().expect("a flood report");
    let refused = |kind: &str| flood.refused.get(kind).map_or(0, |r| r.0);
    let quota = QUOTA_MIB << 20;
    let share = quota / 4;

    assert_eq!(flood.count, FLOOD);
    assert_eq!(
        flood.stored
            + flood.have
            + flood.delivered
            + flood.failed
            + flood.refused.values().map(|r| r.0).sum::<usize>(),
        FLOOD
    );
    assert_eq!(flood.failed, 0, "{:?}", flood.first_failure);
    assert!(
        refused("share") > 0,
        "the share was never reached: {flood:#?}"
    );
    assert!(
        refused("rate") > 0,
        "the rate limit never applied: {flood:#?}"
    );
    assert!(
        (flood.stored as u64).abs_diff(share / flood.bundle_bytes as u64) <= 1,
        "{} bundles of about {} bytes for a {share}-byte share",
        flood.stored,
        flood.bundle_bytes
    );
    // The rate limit: the burst, then the steady rate.
    assert!(
        flood.stored + refused("share")
            <= BURST + PER_SECOND * (flood.elapsed_ms as usize / 1000 + 1)
    );
    assert!(
        report.still_connected,
        "a flood is not malformed: {report:#?}"
    );

    // What the node holds from the flooder is exactly what it said it stored.
    let status = dtn_status(&node.target);
    let from_hostile = dtn_node_id(&report.peer_id);
    let mut held: Vec<&str> = status
        .bundles
        .iter()
        .filter(|b| b.received_from.as_deref() == Some(from_hostile.as_str()))
        .map(|b| b.id.as_str())
        .collect();
    let held_bytes: u64 = status
        .bundles
        .iter()
        .filter(|b| b.received_from.as_deref() == Some(from_hostile.as_str()))
        .map(|b| b.size)
        .sum();
    held.sort_unstable();
    let mut stored: Vec<&str> = flood.stored_ids.iter().map(String::as_str).collect();
    stored.sort_unstable();
    assert_eq!(held, stored, "held from the flooder vs. receipts");
    assert!(held_bytes <= share, "{held_bytes} > {share}");
    assert!(status.bytes_held <= status.quota_bytes);
    assert_eq!(status.quota_bytes, quota);

    // One line each, however many were refused (at most one per 10 s).
    let peer = report.peer_id.as_str();
    let limit = 1 + flood.elapsed_ms as usize / 10_000;
    let rate_line =
        format!("peer is sending bundles faster than {PER_SECOND}/s; refusing the excess");
    let rate_lines = log_lines(&node.target, &[&rate_line, peer]);
    assert!((1..=limit).contains(&rate_lines.len()), "{rate_lines:#?}");
    let share_lines = log_lines(
        &node.target,
        &[
            "bundle from peer refused: bundles from",
            "more would pass its 1048576-byte share",
            peer,
        ],
    );
    assert!(
        (1..=limit).contains(&share_lines.len()),
        "{} share lines for {} refusals",
        share_lines.len(),
        refused("share")
    );
    assert!(
        log_lines(&node.target, &["evicted"]).is_empty(),
        "nothing may be evicted for a flood"
    );

    node.assert_intact();
    node.assert_still_delivers();
    println!(
        "flood: {} bundles in {:.1} s: {} stored, {} refused for the share, {} for the rate; test {:.1} s",
        FLOOD,
        flood.elapsed_ms as f64 / 1000.0,
        flood.stored,
        refused("share"),
        refused("rate"),
        started.elapsed().as_secs_f64()
    );
}

/// A file of `len` bytes no other file has (seeded by `name`).
fn distinct_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    let mut hasher = blake3::Hasher::new();
    hasher.update(name.as_bytes());
    let mut bytes = vec![0; len];
    hasher.finalize_xof().fill(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    path
}

/// Sends each of `files` from `node` to `to` as a bundle; their ids.
fn send_files(node: &Node, to: &str, files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|file| {
            let reply: DtnSendReply = node
                .ferry(&[
                    "dtn",
                    "send",
                    to,
                    "--file",
                    file.to_str().unwrap(),
                    "--json",
                ])
                .ok()
                .json();
            reply.id
        })
        .collect()
}

fn held_from(status: &DtnStatus, peer_id: &str) -> Vec<String> {
    let from = dtn_node_id(peer_id);
    status
        .bundles
        .iter()
        .filter(|b| b.received_from.as_deref() == Some(from.as_str()))
        .map(|b| b.id.clone())
        .collect()
}

/// A node with a 1 MiB store (256 KiB per peer), holding 700 KiB of its own
/// bundles, is offered more by two honest peers: the first is refused past its
/// share, the second when the store is full, each with a log line saying
/// which. Its own bundles are never dropped (a new one even displaces carried
/// ones), and the senders keep what was refused: all of it still reaches its
/// destination.
#[test]
fn dtn_a_full_store_refuses_with_a_reason_and_loses_nothing() {
    const BUNDLE: usize = 100 * 1024;
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let destination = Node::start("destination");
    let full = Node::start_with_config("full", "dtn_quota_mib = 1\n");
    let senders = [Node::start("sender1"), Node::start("sender2")];
    let dest_id = destination.id().peer_id;
    let full_id = full.id().peer_id;
    let sender_ids: Vec<String> = senders.iter().map(|s| s.id().peer_id).collect();

    let nowhere = absent_peer();
    let own_files: Vec<PathBuf> = (0..7)
        .map(|i| distinct_file(work.path(), &format!("own{i}"), BUNDLE))
        .collect();
    let own = send_files(&full, &nowhere, &own_files);
    let sent: Vec<Vec<String>> = senders
        .iter()
        .enumerate()
        .map(|(n, sender)| {
            let files: Vec<PathBuf> = (0..4)
                .map(|i| distinct_file(work.path(), &format!("s{n}-{i}"), BUNDLE))
                .collect();
            send_files(sender, &dest_id, &files)
        })
        .collect();

    // The first sender: past its share.
    senders[0].ferry(&["connect", &tcp_addr(&full)]).ok();
    let share_line = wait_until("a refusal for the share", SPREAD_TIMEOUT, || {
        log_lines(
            &full,
            &[
                "bundle from peer refused: bundles from",
                &dtn_node_id(&sender_ids[0]),
                "more would pass its 262144-byte share",
            ],
        )
        .pop()
        .ok_or_else(|| "no line yet".to_owned())
    });
    // The second: the store is full.
    senders[1].ferry(&["connect", &tcp_addr(&full)]).ok();
    let full_line = wait_until("a refusal for a full store", SPREAD_TIMEOUT, || {
        log_lines(
            &full,
            &["bundle from peer refused: store full: ", &sender_ids[1]],
        )
        .pop()
        .ok_or_else(|| "no line yet".to_owned())
    });
    println!("full store: {share_line}\nfull store: {full_line}");
    assert!(
        full_line.contains("held by expired or lower-priority foreign bundles"),
        "{full_line}"
    );

    let status = dtn_status(&full);
    assert_eq!(status.quota_bytes, 1 << 20);
    assert!(status.bytes_held <= status.quota_bytes, "{status:#?}");
    for id in &own {
        assert!(
            status.bundles.iter().any(|b| &b.id == id && b.own),
            "own bundle {id} dropped: {:#?}",
            status.bundles
        );
    }
    let took: Vec<Vec<String>> = sender_ids.iter().map(|id| held_from(&status, id)).collect();
    for (n, took) in took.iter().enumerate() {
        assert!(
            !took.is_empty() && took.len() < 4,
            "sender{} had {} of 4 taken",
            n + 1,
            took.len()
        );
        assert!(took.iter().all(|id| sent[n].contains(id)));
    }
    let biggest = status.bundles.iter().map(|b| b.size).max().unwrap();
    assert!(
        status.bytes_held + biggest > status.quota_bytes,
        "the store was not full: {} of {} bytes",
        status.bytes_held,
        status.quota_bytes
    );

    // The senders keep everything, refused or not, and know why.
    for (n, sender) in senders.iter().enumerate() {
        let theirs = dtn_status(sender);
        for id in &sent[n] {
            assert!(
                theirs.bundles.iter().any(|b| &b.id == id && b.own),
                "sender{} lost {id}",
                n + 1
            );
        }
        assert!(
            !log_lines(sender, &["peer refused bundle: ", &full_id]).is_empty(),
            "sender{} does not log the refusal",
            n + 1
        );
    }

    // A new own bundle still goes in, displacing carried ones, never own ones.
    let extra = distinct_file(work.path(), "own-extra", BUNDLE);
    let extra = send_files(&full, &nowhere, &[extra]);
    let status = dtn_status(&full);
    for id in own.iter().chain(&extra) {
        assert!(status.bundles.iter().any(|b| &b.id == id && b.own), "{id}");
    }
    assert!(status.bytes_held <= status.quota_bytes);
    assert!(
        !log_lines(
            &full,
            &["bundle evicted to make room (store quota reached)"]
        )
        .is_empty(),
        "the displaced bundle is logged"
    );

    // Nothing was lost: the destination gets all eight from the senders.
    for sender in &senders {
        destination.ferry(&["connect", &tcp_addr(sender)]).ok();
    }
    let expected: Vec<&String> = sent.iter().flatten().collect();
    wait_until(
        "every refused bundle to reach its destination",
        SPREAD_TIMEOUT,
        || {
            let inbox: Vec<InboxItem> = destination.ferry(&["dtn", "inbox", "--json"]).ok().json();
            let missing: Vec<&&String> = expected
                .iter()
                .filter(|id| !inbox.iter().any(|i| &i.id == **id))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("missing {missing:?}"))
            }
        },
    );
    println!("full store: {:.1} s", started.elapsed().as_secs_f64());
}
