//! The DTN lab's world: village, bus and town in their namespaces ([`World`]),
//! the CLI calls the tests make on the nodes, and the waits and checks they share.

use ferry_testkit::lab;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry_node::control::types::{DtnSendReply, DtnStatus, InboxItem};
use ferry_testkit::wait::wait_timed;
use lab::node::Node;
use lab::{Host, Lab};
use serde::de::DeserializeOwned;

pub(crate) const MIB: usize = 1024 * 1024;
/// How often waits check: fine enough for the times the tests print.
pub(crate) const POLL: Duration = Duration::from_millis(100);
/// Deadlines, so that a hung test fails instead of hanging; generous for a debug
/// build on a busy two-core machine. Nothing is judged on speed.
pub(crate) const START_LIMIT: Duration = Duration::from_secs(30);
pub(crate) const MEET_LIMIT: Duration = Duration::from_secs(60);
pub(crate) const TRANSFER_LIMIT: Duration = Duration::from_secs(120);

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub(crate) fn mib_per_s(bytes: usize, d: Duration) -> String {
    format!("{:.1} MiB/s", bytes as f64 / MIB as f64 / d.as_secs_f64())
}

/// `len` bytes that look random (BLAKE3's extendable output of a random seed).
pub(crate) fn random_file(path: &Path, len: usize) -> Vec<u8> {
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
pub(crate) trait DtnNode {
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
pub(crate) struct World {
    pub(crate) nodes: Vec<Node>,
    pub(crate) lab: Lab,
    pub(crate) dir: Option<tempfile::TempDir>,
}

/// The bus's interface on the village segment, and on the town segment.
pub(crate) const BUS_TO_VILLAGE: &str = "eth0";
pub(crate) const BUS_TO_TOWN: &str = "eth1";

impl World {
    /// village –[vb]– bus –[bt]– town, with both of the bus's links down (cut), and
    /// the three nodes started.
    pub(crate) fn village_bus_town() -> World {
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
    pub(crate) fn village_and_town_apart() -> World {
        let lab = Lab::new();
        let dir = lab.tempdir();
        let nodes = ["village", "town"]
            .into_iter()
            .map(|name| Node::new(name, lab.host(name), dir.path()))
            .collect();
        World::start(lab, dir, nodes)
    }

    /// The world of `nodes`, each started.
    pub(crate) fn start(lab: Lab, dir: tempfile::TempDir, nodes: Vec<Node>) -> World {
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

    pub(crate) fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// Sets the bus's link to the village (or the town) up or down.
    pub(crate) fn link(&self, iface: &str, up: bool) {
        set_link(&self.nodes[1].host, iface, up);
    }

    /// The bus leaves the village for the town.
    pub(crate) fn bus_to_town(&self) {
        self.link(BUS_TO_VILLAGE, false);
        self.link(BUS_TO_TOWN, true);
    }

    /// The bus leaves the town for the village.
    pub(crate) fn bus_to_village(&self) {
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
pub(crate) fn set_link(host: &Host, iface: &str, up: bool) {
    lab::run(
        host.command("ip")
            .args(["link", "set", iface, if up { "up" } else { "down" }]),
    );
}

/// Waits until `a` and `b` list each other as connected; returns the time it took.
pub(crate) fn wait_met(a: &Node, b: &Node) -> Duration {
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
pub(crate) fn wait_holds(node: &Node, ids: &BTreeSet<String>, limit: Duration) -> Duration {
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
pub(crate) fn wait_holds_none(node: &Node, limit: Duration) -> Duration {
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
pub(crate) struct Arrival {
    /// The inbox once everything had arrived.
    pub(crate) inbox: Vec<InboxItem>,
    /// When the receiver first listed the carrier as connected.
    pub(crate) met: Duration,
    /// When the last bundle was in the inbox.
    pub(crate) done: Duration,
}

impl Arrival {
    /// `after linking: met X, all in Y (Z after meeting)`.
    pub(crate) fn describe(&self) -> String {
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
pub(crate) fn wait_inbox(
    node: &Node,
    carrier: &Node,
    ids: &BTreeSet<String>,
    limit: Duration,
) -> Arrival {
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
pub(crate) fn assert_inbox_exactly(node: &Node, ids: &BTreeSet<String>) -> Vec<InboxItem> {
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
pub(crate) fn assert_saved_file(node: &Node, id: &str, expected: &[u8], out: &Path) {
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
pub(crate) struct Letter {
    pub(crate) text: String,
    /// The file's name (`NAME.bin`), under the test's directory.
    pub(crate) file_name: String,
    pub(crate) path: PathBuf,
    pub(crate) file: Vec<u8>,
    /// The two bundles' ids, once sent.
    pub(crate) text_id: String,
    pub(crate) file_id: String,
}

impl Letter {
    /// The letter `text`, with `NAME.bin` (5 MiB that look random) written under
    /// `dir`; not sent yet.
    pub(crate) fn write(dir: &Path, name: &str, text: String) -> Letter {
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
    pub(crate) fn send(&mut self, from: &Node, to: &Node) -> BTreeSet<String> {
        self.text_id = from.send_text(&to.peer_id, &self.text);
        self.file_id = from.send_file(&to.peer_id, &self.path);
        [self.text_id.clone(), self.file_id.clone()].into()
    }

    /// Checks the entries of `inbox` (`to`'s) for the text and the file from
    /// `from`, and that `to` saves the file (as `NAME.saved`) byte for byte.
    #[track_caller]
    pub(crate) fn assert_arrived(&self, inbox: &[InboxItem], from: &Node, to: &Node) {
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
pub(crate) fn assert_texts(inbox: &[InboxItem], ids: &[String], prefix: &str) {
    let by_id: BTreeMap<&str, &InboxItem> = inbox.iter().map(|i| (i.id.as_str(), i)).collect();
    for (i, id) in ids.iter().enumerate() {
        let item = by_id[id.as_str()];
        assert_eq!(item.kind, "text");
        assert_eq!(item.text.as_deref(), Some(format!("{prefix} {i}").as_str()));
    }
}
