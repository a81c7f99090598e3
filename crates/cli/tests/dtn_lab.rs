//! Delay-tolerant networking in the network lab (needs root; skips otherwise).
//!
//! Three hosts in namespaces: `village`, `bus` and `town`. Segment `vb` (a bridge)
//! joins village and bus, segment `bt` joins bus and town; village and town never
//! share a segment, and the bus does not forward IP. Every node runs `ferry start`
//! with no address given: peers on a segment find each other by beacons and mDNS.
//! "Cutting" a link sets the bus's interface on that segment down, "linking" sets it
//! up again; nothing else is done to make nodes meet. Bundles travel village → bus
//! → town as the links allow (the bus is a data mule), and the town's delivery
//! acknowledgement rides back the same way so every carrier frees its copy.
//!
//! - `dtn_lab_data_mule`: a text and a 5 MiB file, byte-identical at the town,
//!   each exactly once; the bus frees its copies on handing them over, the village
//!   when the ack reaches it.
//! - `dtn_lab_bus_killed`: the bus is killed with -9 while carrying (and again
//!   while receiving a batch) and restarted on its data directory; nothing is lost,
//!   nothing arrives twice.
//! - `dtn_lab_two_thousand_bundles`: 2,000 small bundles on one trip.
//! - `dtn_lab_sneakernet`: village and town with no network at all, a folder as
//!   the carrier: bundles there, acks back, and shared content for `ferry get`.
//!
//! Times are printed, never judged. Run:
//! `cargo test -p ferry --test dtn_lab -- --nocapture --test-threads=1` (as root).
//! `FERRY_LAB_KEEP=1` keeps the namespaces, data directories and logs.

use ferry_testkit::ferry_binary;
use ferry_testkit::lab;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ferry_node::control::types::{
    DtnSendReply, DtnStatus, ExportReport, GetResult, ImportReport, InboxItem, PeerInfo,
    ShareResult,
};
use ferry_testkit::wait::wait_timed;
use lab::node::Node;
use lab::{Host, Lab};
use serde::de::DeserializeOwned;

const MIB: usize = 1024 * 1024;
/// How often waits check: fine enough for the times the tests print.
const POLL: Duration = Duration::from_millis(100);
/// Deadlines, so that a hung test fails instead of hanging; generous for a debug
/// build on a busy two-core machine. Nothing is judged on speed.
const START_LIMIT: Duration = Duration::from_secs(30);
const MEET_LIMIT: Duration = Duration::from_secs(60);
const TRANSFER_LIMIT: Duration = Duration::from_secs(120);

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn mib_per_s(bytes: usize, d: Duration) -> String {
    format!("{:.1} MiB/s", bytes as f64 / MIB as f64 / d.as_secs_f64())
}

/// `len` bytes that look random (BLAKE3's extendable output of a random seed).
fn random_file(path: &Path, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    blake3::Hasher::new()
        .update(&lab::random_u64().to_le_bytes())
        .finalize_xof()
        .fill(&mut bytes);
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// What these tests ask of a node, besides [`Node`]'s own.
/// The CLI calls these tests make on a lab node.
trait DtnNode {
    fn must<T: DeserializeOwned>(&self, args: &[&str]) -> T;
    fn status(&self) -> Result<DtnStatus, String>;
    fn inbox(&self) -> Result<Vec<InboxItem>, String>;
    fn held(&self) -> Result<BTreeSet<String>, String>;
    fn send_text(&self, to: &str, text: &str) -> String;
    fn send_file(&self, to: &str, path: &Path) -> String;
    fn connected_to(&self, peer_id: &str) -> bool;
}

impl DtnNode for Node {
    #[track_caller]
    fn must<T: DeserializeOwned>(&self, args: &[&str]) -> T {
        self.json(args).unwrap_or_else(|e| panic!("{e}"))
    }

    fn status(&self) -> Result<DtnStatus, String> {
        self.json(&["dtn", "status", "--json"])
    }

    fn inbox(&self) -> Result<Vec<InboxItem>, String> {
        self.json(&["dtn", "inbox", "--json"])
    }

    /// The ids of the bundles this node holds (to carry or to be acknowledged).
    fn held(&self) -> Result<BTreeSet<String>, String> {
        Ok(self.status()?.bundles.into_iter().map(|b| b.id).collect())
    }

    fn send_text(&self, to: &str, text: &str) -> String {
        self.must::<DtnSendReply>(&["dtn", "send", "--json", to, text])
            .id
    }

    fn send_file(&self, to: &str, path: &Path) -> String {
        let path = path.to_str().unwrap();
        self.must::<DtnSendReply>(&["dtn", "send", "--json", to, "--file", path])
            .id
    }

    fn connected_to(&self, peer_id: &str) -> bool {
        self.peers()
            .is_ok_and(|peers| peers.iter().any(|p| p.peer_id == peer_id && p.connected))
    }
}

/// The lab, its nodes and their files. On a failed test it prints the end of every
/// node's logs; then it kills the nodes and (through [`Lab`]) removes the namespaces.
struct World {
    nodes: Vec<Node>,
    lab: Lab,
    dir: Option<tempfile::TempDir>,
}

/// The bus's interface on the village segment, and on the town segment.
const BUS_TO_VILLAGE: &str = "eth0";
const BUS_TO_TOWN: &str = "eth1";

impl World {
    /// village –[vb]– bus –[bt]– town, with both of the bus's links down (cut), and
    /// the three nodes started.
    fn village_bus_town() -> World {
        let lab = Lab::new();
        let dir = lab.tempdir();
        let vb = lab.bridge_segment("vb", "10.79.1.0/24");
        let bt = lab.bridge_segment("bt", "10.79.2.0/24");
        let village = lab.host("village");
        let bus = lab.host("bus");
        let town = lab.host("town");
        lab.attach(&village, &vb, 1);
        assert_eq!(lab.attach(&bus, &vb, 2).name, BUS_TO_VILLAGE);
        assert_eq!(lab.attach(&bus, &bt, 2).name, BUS_TO_TOWN);
        lab.attach(&town, &bt, 3);
        set_link(&bus, BUS_TO_VILLAGE, false);
        set_link(&bus, BUS_TO_TOWN, false);
        let nodes = [("village", village), ("bus", bus), ("town", town)]
            .into_iter()
            .map(|(name, host)| Node::new(name, host, dir.path()))
            .collect();
        let world = World::start(lab, dir, nodes);
        eprintln!(
            "lab {}: village {}, bus {}, town {}",
            world.lab.prefix(),
            world.nodes[0].peer_id,
            world.nodes[1].peer_id,
            world.nodes[2].peer_id
        );
        world
    }

    /// Two hosts with no network between them (each has only `lo`).
    fn village_and_town_apart() -> World {
        let lab = Lab::new();
        let dir = lab.tempdir();
        let nodes = ["village", "town"]
            .into_iter()
            .map(|name| Node::new(name, lab.host(name), dir.path()))
            .collect();
        World::start(lab, dir, nodes)
    }

    /// The world of `nodes`, each started.
    fn start(lab: Lab, dir: tempfile::TempDir, nodes: Vec<Node>) -> World {
        let mut world = World {
            nodes,
            lab,
            dir: Some(dir),
        };
        for node in &mut world.nodes {
            node.start_and_wait(START_LIMIT);
        }
        world
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// Sets the bus's link to the village (or the town) up or down.
    fn link(&self, iface: &str, up: bool) {
        set_link(&self.nodes[1].host, iface, up);
    }

    /// The bus leaves the village for the town.
    fn bus_to_town(&self) {
        self.link(BUS_TO_VILLAGE, false);
        self.link(BUS_TO_TOWN, true);
    }

    /// The bus leaves the town for the village.
    fn bus_to_village(&self) {
        self.link(BUS_TO_TOWN, false);
        self.link(BUS_TO_VILLAGE, true);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        lab::node::tear_down(&mut self.nodes, &mut self.dir, 150);
    }
}

/// `ip link set IFACE up|down` inside `host`.
fn set_link(host: &Host, iface: &str, up: bool) {
    lab::run(
        host.command("ip")
            .args(["link", "set", iface, if up { "up" } else { "down" }]),
    );
}

/// Waits until `a` and `b` list each other as connected; returns the time it took.
fn wait_met(a: &Node, b: &Node) -> Duration {
    let (_, took) = wait_timed(
        &format!("{} and {} to connect", a.name, b.name),
        MEET_LIMIT,
        POLL,
        || {
            if a.connected_to(&b.peer_id) && b.connected_to(&a.peer_id) {
                Ok(())
            } else {
                Err(format!("{}: {:?}", a.name, a.cli_ok(&["peers"])))
            }
        },
    );
    took
}

/// Waits until `node` holds every bundle in `ids` (it may hold more).
fn wait_holds(node: &Node, ids: &BTreeSet<String>, limit: Duration) -> Duration {
    wait_timed(
        &format!("{} to hold {} bundles", node.name, ids.len()),
        limit,
        POLL,
        || {
            let held = node.held()?;
            let missing = ids.difference(&held).count();
            if missing == 0 {
                Ok(())
            } else {
                Err(format!("{missing} of {} missing", ids.len()))
            }
        },
    )
    .1
}

/// Waits until `node` holds no bundle at all.
fn wait_holds_none(node: &Node, limit: Duration) -> Duration {
    wait_timed(
        &format!("{} to hold no bundles", node.name),
        limit,
        POLL,
        || {
            let status = node.status()?;
            if status.bundles.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} bundles held, {} acks known",
                    status.bundles.len(),
                    status.acks
                ))
            }
        },
    )
    .1
}

/// How a wait for bundles to arrive went.
struct Arrival {
    /// The inbox once everything had arrived.
    inbox: Vec<InboxItem>,
    /// When the receiver first listed the carrier as connected.
    met: Duration,
    /// When the last bundle was in the inbox.
    done: Duration,
}

impl Arrival {
    /// `after linking: met X, all in Y (Z after meeting)`.
    fn describe(&self) -> String {
        format!(
            "met {} after linking, all in the inbox {} after linking ({} after meeting)",
            secs(self.met),
            secs(self.done),
            secs(self.done.saturating_sub(self.met))
        )
    }
}

/// Waits until every bundle in `ids` is in `node`'s inbox, noting when `node`
/// first lists `carrier` as connected. Polls the inbox's size (cheap) and reads
/// the whole inbox only once it is big enough.
fn wait_inbox(node: &Node, carrier: &Node, ids: &BTreeSet<String>, limit: Duration) -> Arrival {
    let start = Instant::now();
    let others = node
        .inbox()
        .unwrap()
        .iter()
        .filter(|i| !ids.contains(&i.id))
        .count() as u64;
    let mut met = None;
    let (inbox, done) = wait_timed(
        &format!(
            "{} to have {} more bundles in its inbox",
            node.name,
            ids.len()
        ),
        limit,
        POLL,
        || {
            if met.is_none() && node.connected_to(&carrier.peer_id) {
                met = Some(start.elapsed());
            }
            let count = node.status()?.inbox;
            if count < others + ids.len() as u64 {
                return Err(format!("{count} in the inbox"));
            }
            let inbox = node.inbox()?;
            let have: BTreeSet<&String> = inbox.iter().map(|i| &i.id).collect();
            let missing = ids.iter().filter(|id| !have.contains(id)).count();
            if missing == 0 {
                Ok(inbox)
            } else {
                Err(format!("{missing} of {} missing", ids.len()))
            }
        },
    );
    Arrival {
        inbox,
        met: met.unwrap_or(done),
        done,
    }
}

/// The inbox holds exactly the bundles `ids`, each once.
#[track_caller]
fn assert_inbox_exactly(node: &Node, ids: &BTreeSet<String>) -> Vec<InboxItem> {
    let inbox = node.inbox().unwrap();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &inbox {
        *counts.entry(&item.id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} shows bundles more than once: {twice:?}",
        node.name
    );
    let got: BTreeSet<String> = counts.keys().map(|id| id.to_string()).collect();
    assert_eq!(
        &got, ids,
        "{}'s inbox is not exactly the bundles sent",
        node.name
    );
    inbox
}

/// Saves the inbox bundle `id` with `ferry dtn save` and checks it is `expected`.
#[track_caller]
fn assert_saved_file(node: &Node, id: &str, expected: &[u8], out: &Path) {
    let out_str = out.to_str().unwrap();
    node.cli_ok(&["dtn", "save", id, "-o", out_str])
        .unwrap_or_else(|e| panic!("{e}"));
    let got = std::fs::read(out).unwrap();
    assert_eq!(got.len(), expected.len(), "saved file has the wrong size");
    assert_eq!(
        blake3::hash(&got),
        blake3::hash(expected),
        "saved file differs from the one sent"
    );
}

/// A text and a 5 MiB file, sent together from one node to another.
struct Letter {
    text: String,
    /// The file's name (`NAME.bin`), under the test's directory.
    file_name: String,
    path: PathBuf,
    file: Vec<u8>,
    /// The two bundles' ids, once sent.
    text_id: String,
    file_id: String,
}

impl Letter {
    /// The letter `text`, with `NAME.bin` (5 MiB that look random) written under
    /// `dir`; not sent yet.
    fn write(dir: &Path, name: &str, text: String) -> Letter {
        let file_name = format!("{name}.bin");
        let path = dir.join(&file_name);
        let file = random_file(&path, 5 * MIB);
        Letter {
            text,
            file_name,
            path,
            file,
            text_id: String::new(),
            file_id: String::new(),
        }
    }

    /// Sends the text and the file from `from` to `to`; returns both bundle ids.
    fn send(&mut self, from: &Node, to: &Node) -> BTreeSet<String> {
        self.text_id = from.send_text(&to.peer_id, &self.text);
        self.file_id = from.send_file(&to.peer_id, &self.path);
        [self.text_id.clone(), self.file_id.clone()].into()
    }

    /// Checks the entries of `inbox` (`to`'s) for the text and the file from
    /// `from`, and that `to` saves the file (as `NAME.saved`) byte for byte.
    #[track_caller]
    fn assert_arrived(&self, inbox: &[InboxItem], from: &Node, to: &Node) {
        let item = |id: &str| inbox.iter().find(|i| i.id == id).unwrap();
        let t = item(&self.text_id);
        assert_eq!(t.kind, "text");
        assert_eq!(t.text.as_deref(), Some(self.text.as_str()));
        assert!(
            t.source.contains(&from.peer_id),
            "text from {} instead of {}",
            t.source,
            from.name
        );
        let f = item(&self.file_id);
        assert_eq!(f.kind, "file");
        assert_eq!(f.file_name.as_deref(), Some(self.file_name.as_str()));
        assert_eq!(f.size, self.file.len() as u64);
        let saved = self.path.with_extension("saved");
        assert_saved_file(to, &self.file_id, &self.file, &saved);
    }
}

/// Checks that the inbox bundles `ids` are the texts `"{prefix} {i}"`, by i.
#[track_caller]
fn assert_texts(inbox: &[InboxItem], ids: &[String], prefix: &str) {
    let by_id: BTreeMap<&str, &InboxItem> = inbox.iter().map(|i| (i.id.as_str(), i)).collect();
    for (i, id) in ids.iter().enumerate() {
        let item = by_id[id.as_str()];
        assert_eq!(item.kind, "text");
        assert_eq!(item.text.as_deref(), Some(format!("{prefix} {i}").as_str()));
    }
}

#[test]
fn dtn_lab_data_mule() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let w = World::village_bus_town();
    let [village, bus, town] = &w.nodes[..] else {
        unreachable!()
    };

    // The bus is at the village: the village sends a text and a file to the town.
    w.link(BUS_TO_VILLAGE, true);
    let met = wait_met(village, bus);
    eprintln!("village and bus met {} after linking", secs(met));
    let text = format!(
        "hello town, from the village {:08x}",
        lab::random_u64() as u32
    );
    let mut letter = Letter::write(w.dir(), "harvest", text);
    let sent = Instant::now();
    let ids = letter.send(village, town);
    wait_holds(bus, &ids, TRANSFER_LIMIT);
    let took = sent.elapsed();
    eprintln!(
        "village -> bus: text + 5 MiB file held by the bus {} after sending ({})",
        secs(took),
        mib_per_s(5 * MIB, took)
    );
    assert_eq!(
        village.held().unwrap(),
        ids,
        "the village keeps its own copies"
    );
    assert!(
        town.inbox().unwrap().is_empty(),
        "the town got mail with no link"
    );

    // The bus drives to town.
    w.link(BUS_TO_VILLAGE, false);
    let cut = Instant::now();
    w.link(BUS_TO_TOWN, true);
    let linked = Instant::now();
    let arrival = wait_inbox(town, bus, &ids, TRANSFER_LIMIT);
    eprintln!("bus -> town: text + 5 MiB file: {}", arrival.describe());
    letter.assert_arrived(&arrival.inbox, village, town);
    wait_holds_none(bus, Duration::from_secs(10));
    eprintln!(
        "bus holds nothing {} after linking to town",
        secs(linked.elapsed())
    );
    let status = bus.status().unwrap();
    assert!(
        status.forwarded >= 2,
        "the bus says it forwarded {} bundles",
        status.forwarded
    );
    assert_eq!(
        village.held().unwrap(),
        ids,
        "the village must keep its copies until it hears of the delivery"
    );

    // The bus drives back: the town's acknowledgement reaches the village. The
    // trip is long enough for the village to notice the bus is gone (its pings
    // go unanswered), so they meet afresh by discovery.
    wait_timed(
        "the village to notice the bus is gone",
        MEET_LIMIT,
        POLL,
        || {
            if village.connected_to(&bus.peer_id) {
                Err("still listed as connected".into())
            } else {
                Ok(())
            }
        },
    );
    eprintln!(
        "the village noticed the bus gone {} after the cut",
        secs(cut.elapsed())
    );
    w.bus_to_village();
    let linked = Instant::now();
    let met = wait_met(village, bus);
    wait_holds_none(village, TRANSFER_LIMIT);
    let took = linked.elapsed();
    eprintln!(
        "ack back: village and bus met again {} after linking; the village freed its \
         copies {} after linking",
        secs(met),
        secs(took)
    );
    let status = village.status().unwrap();
    assert!(status.acks >= 2, "the village knows {} acks", status.acks);
    // Nothing more arrives at the town later on.
    std::thread::sleep(Duration::from_secs(2));
    assert_inbox_exactly(town, &ids);
    assert!(bus.held().unwrap().is_empty());
    eprintln!("data mule: total {}", secs(t0.elapsed()));
}

/// How many shells `send_many` runs side by side.
const SENDERS: usize = 4;

/// Sends `count` texts `"{prefix} {i}"` (i from 0) from `node` to `to`, one
/// `ferry dtn send` per text, from [`SENDERS`] shells side by side inside the
/// node's namespace (shell j sends i = j, j + SENDERS, ... in order, its replies
/// to a file of its own). Returns each text's bundle id, by i.
fn send_many(node: &Node, to: &str, prefix: &str, count: usize) -> Vec<String> {
    let out = node
        .log_dir
        .join(format!("send-{:08x}", lab::random_u64() as u32));
    let script = r#"
        ferry=$1 data=$2 to=$3 count=$4 prefix=$5 senders=$6 out=$7
        pids=()
        for ((j = 0; j < senders; j++)); do
            (
                for ((i = j; i < count; i += senders)); do
                    "$ferry" --data-dir "$data" dtn send --json "$to" "$prefix $i" || exit 1
                done > "$out.$j"
            ) &
            pids+=($!)
        done
        for pid in "${pids[@]}"; do wait "$pid" || exit 1; done
    "#;
    let run = node
        .host
        .command("bash")
        .args(["-c", script, "send_many", ferry_binary()])
        .arg(&node.data_dir)
        .args([to, &count.to_string(), prefix, &SENDERS.to_string()])
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "sending {count} texts from {} failed: {}",
        node.name,
        String::from_utf8_lossy(&run.stderr)
    );
    let mut ids = vec![String::new(); count];
    for j in 0..SENDERS {
        let path = PathBuf::from(format!("{}.{j}", out.display()));
        let bytes = std::fs::read(&path).unwrap();
        let replies: Vec<DtnSendReply> = serde_json::Deserializer::from_slice(&bytes)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        let slots: Vec<usize> = (j..count).step_by(SENDERS).collect();
        assert_eq!(replies.len(), slots.len(), "replies in {}", path.display());
        for (i, reply) in slots.into_iter().zip(replies) {
            ids[i] = reply.id;
        }
    }
    ids
}

#[test]
fn dtn_lab_two_thousand_bundles() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    const COUNT: usize = 2_000;
    let t0 = Instant::now();
    let w = World::village_bus_town();
    let [village, bus, town] = &w.nodes[..] else {
        unreachable!()
    };
    let tag = format!("{:08x}", lab::random_u64() as u32);
    let prefix = format!("bulk {tag}");

    // Queued at the village while the bus is away.
    let start = Instant::now();
    let ids = send_many(village, &town.peer_id, &prefix, COUNT);
    let took = start.elapsed();
    eprintln!(
        "village: {COUNT} `ferry dtn send` in {} ({:.1} ms each)",
        secs(took),
        took.as_secs_f64() * 1000.0 / COUNT as f64
    );
    let id_set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(id_set.len(), COUNT, "bundle ids are not distinct");
    assert_eq!(village.held().unwrap(), id_set);

    // The bus comes to the village and takes everything.
    w.link(BUS_TO_VILLAGE, true);
    let linked = Instant::now();
    let met = wait_met(village, bus);
    wait_holds(bus, &id_set, TRANSFER_LIMIT);
    let total = linked.elapsed();
    eprintln!(
        "village -> bus: {COUNT} bundles held by the bus {} after linking (met after {}, \
         {} of transfer: {:.0} bundles/s)",
        secs(total),
        secs(met),
        secs(total.saturating_sub(met)),
        COUNT as f64 / total.saturating_sub(met).as_secs_f64()
    );

    // To town.
    w.bus_to_town();
    let arrival = wait_inbox(town, bus, &id_set, TRANSFER_LIMIT);
    let transfer = arrival.done.saturating_sub(arrival.met);
    eprintln!(
        "bus -> town: {COUNT} bundles: {} ({:.0} bundles/s)",
        arrival.describe(),
        COUNT as f64 / transfer.as_secs_f64()
    );
    let took = wait_holds_none(bus, TRANSFER_LIMIT);
    eprintln!("bus: holds nothing {} later", secs(took));
    assert_texts(&arrival.inbox, &ids, &prefix);

    // Back to the village with the acks.
    w.bus_to_village();
    let took = wait_holds_none(village, TRANSFER_LIMIT);
    eprintln!(
        "ack back: the village freed all {COUNT} copies {} after the bus linked to it again",
        secs(took)
    );
    assert_inbox_exactly(town, &id_set);
    assert_eq!(town.inbox().unwrap().len(), COUNT);
    eprintln!("2,000 bundles: total {}", secs(t0.elapsed()));
}

#[test]
fn dtn_lab_bus_killed() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    const BATCH: usize = 600;
    /// The bus is killed once its status shows this many of the batch.
    const KILL_AT: usize = 50;
    let t0 = Instant::now();
    let mut w = World::village_bus_town();
    let tag = format!("{:08x}", lab::random_u64() as u32);

    // (a) The bus takes a text and a file at the village, leaves, and is killed on
    // the road before it reaches town.
    w.link(BUS_TO_VILLAGE, true);
    wait_met(&w.nodes[0], &w.nodes[1]);
    let (village, bus, town) = (&w.nodes[0], &w.nodes[1], &w.nodes[2]);
    let mut letter = Letter::write(w.dir(), "seeds", format!("survives a crash {tag}"));
    let first = letter.send(village, town);
    wait_holds(bus, &first, TRANSFER_LIMIT);
    w.link(BUS_TO_VILLAGE, false);
    w.nodes[1].kill9();
    let restarted = Instant::now();
    w.nodes[1].start_and_wait(START_LIMIT);
    let (village, bus, town) = (&w.nodes[0], &w.nodes[1], &w.nodes[2]);
    assert_eq!(
        bus.held().unwrap(),
        first,
        "after kill -9 and restart the bus must still carry exactly what it took"
    );
    eprintln!(
        "(a) bus killed with the bundles on board; answers again {} after restart, still holds both",
        secs(restarted.elapsed())
    );
    w.link(BUS_TO_TOWN, true);
    let arrival = wait_inbox(town, bus, &first, TRANSFER_LIMIT);
    eprintln!("(a) bus -> town after the restart: {}", arrival.describe());
    letter.assert_arrived(&arrival.inbox, village, town);
    wait_holds_none(bus, Duration::from_secs(10));
    w.link(BUS_TO_TOWN, false);

    // (b) The village has queued a batch (texts and two files) while the bus was
    // away; the bus comes, and is killed while it is receiving it.
    let mut batch: Vec<String> = Vec::new();
    let mut files = Vec::new();
    for n in 0..2 {
        let path = w.dir().join(format!("batch{n}.bin"));
        let bytes = random_file(&path, 4 * MIB);
        batch.push(w.nodes[0].send_file(&w.nodes[2].peer_id, &path));
        files.push(bytes);
    }
    let texts_prefix = format!("batch {tag}");
    batch.extend(send_many(
        &w.nodes[0],
        &w.nodes[2].peer_id,
        &texts_prefix,
        BATCH,
    ));
    let batch_set: BTreeSet<String> = batch.iter().cloned().collect();
    w.link(BUS_TO_VILLAGE, true);
    let linked = Instant::now();
    let (before_kill, _) = wait_timed(
        "the bus to be part-way through the batch",
        TRANSFER_LIMIT,
        POLL,
        || {
            let held = w.nodes[1].held()?;
            let got = held.intersection(&batch_set).count();
            if got >= KILL_AT {
                Ok(held)
            } else {
                Err(format!("{got} of {} so far", batch_set.len()))
            }
        },
    );
    w.nodes[1].kill9();
    let got_before = before_kill.intersection(&batch_set).count();
    eprintln!(
        "(b) bus killed {} after linking, when its status showed {got_before} of {} batch bundles",
        secs(linked.elapsed()),
        batch_set.len()
    );
    w.nodes[1].start_and_wait(START_LIMIT);
    let after = w.nodes[1].held().unwrap();
    let kept = after.intersection(&batch_set).count();
    let lost: Vec<&String> = before_kill.difference(&after).collect();
    assert!(
        lost.is_empty(),
        "the bus lost {} bundles it had shown as held before kill -9: {lost:?}",
        lost.len()
    );
    eprintln!(
        "(b) after restart the bus holds {kept} of the batch ({} more than its last status \
         before the kill showed)",
        kept - got_before
    );
    assert!(
        kept < batch_set.len(),
        "the kill came after the whole batch arrived; make it bigger"
    );
    let took = wait_holds(&w.nodes[1], &batch_set, TRANSFER_LIMIT);
    eprintln!(
        "(b) the village sent the rest again: the bus holds the whole batch {} after it \
         answered again",
        secs(took)
    );

    // To town: everything arrives, once each.
    let (village, bus, town) = (&w.nodes[0], &w.nodes[1], &w.nodes[2]);
    w.bus_to_town();
    let arrival = wait_inbox(town, bus, &batch_set, TRANSFER_LIMIT);
    eprintln!(
        "(b) bus -> town, the batch of {}: {}",
        batch_set.len(),
        arrival.describe()
    );
    for (n, bytes) in files.iter().enumerate() {
        assert_saved_file(
            town,
            &batch[n],
            bytes,
            &w.dir().join(format!("batch{n}.saved")),
        );
    }
    assert_texts(&arrival.inbox, &batch[2..], &texts_prefix);
    wait_holds_none(bus, Duration::from_secs(30));
    let all: BTreeSet<String> = first.union(&batch_set).cloned().collect();

    // The acks go back; the village frees everything.
    w.bus_to_village();
    let took = wait_holds_none(village, TRANSFER_LIMIT);
    eprintln!(
        "ack back: the village freed every copy {} after linking",
        secs(took)
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_inbox_exactly(town, &all);
    eprintln!("bus killed: total {}", secs(t0.elapsed()));
}

/// Every file and folder under `root`, by relative path: `None` for a folder, the
/// BLAKE3 of the bytes for a file.
fn tree(root: &Path) -> BTreeMap<String, Option<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<String>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                out.insert(rel, None);
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(rel, Some(blake3::hash(&bytes).to_hex().to_string()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn dtn_lab_sneakernet() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let w = World::village_and_town_apart();
    let [village, town] = &w.nodes[..] else {
        unreachable!()
    };
    let base = w.dir();
    let tag = format!("{:08x}", lab::random_u64() as u32);

    // A text and a 5 MiB file, carried on a "USB drive" (a folder both can see).
    let mut letter = Letter::write(base, "letter", format!("by hand {tag}"));
    let ids = letter.send(village, town);
    let drive = base.join("drive");
    let drive_str = drive.to_str().unwrap();
    let start = Instant::now();
    let report: ExportReport = village.must(&["dtn", "export", drive_str, "--json"]);
    eprintln!(
        "village exported {} bundles ({} bytes) in {}",
        report.bundles,
        report.bytes,
        secs(start.elapsed())
    );
    assert_eq!(report.bundles, 2);
    let start = Instant::now();
    let report: ImportReport = town.must(&["dtn", "import", drive_str, "--json"]);
    eprintln!(
        "town imported {} bundles in {}",
        report.delivered,
        secs(start.elapsed())
    );
    assert_eq!(report.delivered, 2, "{report:?}");
    assert!(report.rejected.is_empty(), "{report:?}");
    let inbox = assert_inbox_exactly(town, &ids);
    letter.assert_arrived(&inbox, village, town);
    // Importing the same drive again changes nothing.
    let again: ImportReport = town.must(&["dtn", "import", drive_str, "--json"]);
    assert_eq!((again.delivered, again.duplicates), (0, 2), "{again:?}");
    assert_inbox_exactly(town, &ids);
    assert_eq!(
        village.held().unwrap(),
        ids,
        "the village keeps its copies until the acks come back"
    );

    // The acks ride back on another drive.
    let back = base.join("drive-back");
    let back_str = back.to_str().unwrap();
    let report: ExportReport = town.must(&["dtn", "export", back_str, "--json"]);
    assert_eq!(report.bundles, 0);
    assert!(report.acks >= 2, "{report:?}");
    let report: ImportReport = village.must(&["dtn", "import", back_str, "--json"]);
    assert_eq!(report.freed, 2, "{report:?}");
    assert!(
        village.held().unwrap().is_empty(),
        "the village still holds copies"
    );

    // Shared content by folder: the town gets a whole directory with no network.
    let shared = base.join("songs");
    std::fs::create_dir_all(shared.join("old")).unwrap();
    random_file(&shared.join("first.ogg"), 300_000);
    random_file(&shared.join("old").join("second.ogg"), 70_000);
    std::fs::write(shared.join("lyrics.txt"), format!("la la {tag}\n")).unwrap();
    let share: ShareResult = village.must(&["share", shared.to_str().unwrap(), "--json"]);
    assert_eq!(share.files, 3);
    let carry = base.join("drive-content");
    let carry_str = carry.to_str().unwrap();
    let report: ExportReport =
        village.must(&["dtn", "export", carry_str, "--content", &share.id, "--json"]);
    assert_eq!(report.content, 4, "a manifest and three files: {report:?}");
    let report: ImportReport = town.must(&["dtn", "import", carry_str, "--json"]);
    assert_eq!(report.content, 4, "{report:?}");
    assert!(report.rejected.is_empty(), "{report:?}");
    let out = base.join("town-songs");
    let start = Instant::now();
    let got: GetResult = town.must(&["get", &share.id, "-o", out.to_str().unwrap(), "--json"]);
    eprintln!(
        "town: `ferry get` of the carried folder took {} ({} bytes fetched from peers)",
        secs(start.elapsed()),
        got.fetched_bytes
    );
    assert_eq!(got.fetched_bytes, 0, "the town has no peer to fetch from");
    let peers: Vec<PeerInfo> = town.must(&["peers", "--json"]);
    assert!(peers.is_empty(), "the town knows peers: {peers:?}");
    assert_eq!(tree(&out), tree(&shared), "the folder arrived different");
    eprintln!("sneakernet: total {}", secs(t0.elapsed()));
}
