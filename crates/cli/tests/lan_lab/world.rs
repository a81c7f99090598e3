//! The LAN lab's world: a cluster of nodes on one bridge segment ([`Cluster`]),
//! the CLI calls the tests make on them, and the waits and checks they share.

use ferry_testkit::lab;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use ferry_node::control::types::{MessageView, PeerInfo};
use lab::node::Node;
use lab::{Lab, Segment};

pub(crate) const BEACON_PORT: u16 = 45_458;
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// Discovery must finish within this (the target is 2 s).
pub(crate) const DISCOVERY_LIMIT: Duration = Duration::from_secs(10);
pub(crate) const DISCOVERY_TARGET: Duration = Duration::from_secs(2);
/// A crashed peer must be gone from the list within this (the target is 30 s).
pub(crate) const DEPARTURE_LIMIT: Duration = Duration::from_secs(35);
pub(crate) const DEPARTURE_TARGET: Duration = Duration::from_secs(30);
/// Channel messages must arrive within this.
pub(crate) const DELIVERY_LIMIT: Duration = Duration::from_secs(10);
/// After a restart: the node answers, reconnects and catches up within this.
pub(crate) const CATCH_UP_LIMIT: Duration = Duration::from_secs(20);

/// Calls `f` every `interval` until it returns `Some`, or `limit` has passed.
/// Returns the value and the time it took.
pub(crate) fn poll<T>(
    limit: Duration,
    interval: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<(T, Duration)> {
    let start = Instant::now();
    loop {
        let round = Instant::now();
        if let Some(value) = f() {
            return Some((value, start.elapsed()));
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(interval.saturating_sub(round.elapsed()));
    }
}

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// What these tests ask of a node, besides [`Node`]'s own.
/// The CLI calls these tests make on a lab node.
pub(crate) trait LanNode {
    fn read(&self, channel: &str) -> Result<Vec<MessageView>, String>;
    fn post(&self, channel: &str, text: &str);
}

impl LanNode for Node {
    /// `ferry read CH --json`: one message per line.
    fn read(&self, channel: &str) -> Result<Vec<MessageView>, String> {
        let text = self.cli_ok(&["read", channel, "--json"])?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .map_err(|e| format!("`ferry read` on {}: bad line ({e}): {l}", self.name))
            })
            .collect()
    }

    fn post(&self, channel: &str, text: &str) {
        if let Err(e) = self.cli_ok(&["post", channel, text]) {
            panic!("{e}");
        }
    }
}

/// The lab, its nodes and their files. On a failed test it prints every node's
/// logs; then it kills the nodes and (through [`Lab`]) removes the namespaces.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
    pub(crate) lab: Lab,
    pub(crate) segment: Segment,
    pub(crate) dir: Option<tempfile::TempDir>,
}

impl Cluster {
    pub(crate) fn new(names: &[&str]) -> Cluster {
        let lab = Lab::new();
        let dir = lab.tempdir();
        let segment = lab.bridge_segment("lan", "10.77.1.0/24");
        let nodes = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let host = lab.host(name);
                lab.attach(&host, &segment, i as u32 + 1);
                Node::new(name, host, dir.path())
            })
            .collect();
        Cluster {
            nodes,
            lab,
            segment,
            dir: Some(dir),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        lab::node::tear_down(&mut self.nodes, &mut self.dir, usize::MAX);
    }
}

/// Peer ids `node` lists now (empty if it does not answer).
pub(crate) fn listed(node: &Node) -> Vec<PeerInfo> {
    node.peers().unwrap_or_default()
}

pub(crate) fn lists_all(peers: &[PeerInfo], wanted: &[&str], connected: bool) -> bool {
    wanted.iter().all(|id| {
        peers
            .iter()
            .any(|p| p.peer_id == *id && (!connected || p.connected))
    })
}

pub(crate) fn texts(messages: &[MessageView]) -> BTreeSet<&str> {
    messages.iter().map(|m| m.text.as_str()).collect()
}

pub(crate) fn assert_no_duplicates(node: &Node, messages: &[MessageView]) {
    let mut seen = HashSet::new();
    for m in messages {
        assert!(
            seen.insert(&m.id),
            "{} shows message {} twice: {messages:#?}",
            node.name,
            m.id
        );
    }
}

/// Waits until every node in `readers` shows a message with `text` on `channel`.
/// Returns the time it took for each.
pub(crate) fn wait_delivery(readers: &[&Node], channel: &str, text: &str) -> Vec<Duration> {
    let start = Instant::now();
    let mut took = vec![None; readers.len()];
    let done = poll(DELIVERY_LIMIT, Duration::from_millis(50), || {
        for (i, node) in readers.iter().enumerate() {
            if took[i].is_none()
                && node
                    .read(channel)
                    .is_ok_and(|ms| ms.iter().any(|m| m.text == text))
            {
                took[i] = Some(start.elapsed());
            }
        }
        took.iter().all(Option::is_some).then_some(())
    });
    if done.is_none() {
        let missing: Vec<&str> = readers
            .iter()
            .zip(&took)
            .filter(|(_, t)| t.is_none())
            .map(|(n, _)| n.name.as_str())
            .collect();
        let views: Vec<String> = readers
            .iter()
            .map(|n| format!("{}: {:?}", n.name, n.read(channel)))
            .collect();
        panic!(
            "{text:?} did not reach {missing:?} within {DELIVERY_LIMIT:?}\n{}",
            views.join("\n")
        );
    }
    took.into_iter().map(Option::unwrap).collect()
}
