//! `ferry start --beacon-port PORT` in the network lab (needs root; skips
//! otherwise): beacons go to and are heard on that UDP port only. Four hosts on
//! one bridge segment with mDNS off, so beacons are the only way to meet: `a`
//! and `b` use port 47001, `c` and `d` the default. Each pair finds the other
//! by broadcast; no node finds one of the other pair, though all share the
//! segment and beacon at the same pace.
//!
//! Run: `cargo test -p ferry --test beacon_port_lab` (as root).

use std::time::Duration;

use ferry_node::control::types::PeerInfo;
use ferry_testkit::lab::node::Node;
use ferry_testkit::lab::{self, Lab};
use ferry_testkit::wait::wait_until;

const OTHER_PORT: &str = "47001";
/// Discovery by beacons takes a few seconds on a quiet segment.
const DISCOVERY_LIMIT: Duration = Duration::from_secs(30);

struct World {
    nodes: Vec<Node>,
    _lab: Lab,
    dir: Option<tempfile::TempDir>,
}

impl Drop for World {
    fn drop(&mut self) {
        lab::node::tear_down(&mut self.nodes, &mut self.dir, usize::MAX);
    }
}

fn peers(node: &Node) -> Vec<PeerInfo> {
    node.peers().unwrap_or_default()
}

#[test]
fn beacons_are_heard_only_by_nodes_on_the_same_beacon_port() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let lab = Lab::new();
    let dir = lab.tempdir();
    let segment = lab.bridge_segment("lan", "10.77.9.0/24");
    let ports = [Some(OTHER_PORT), Some(OTHER_PORT), None, None];
    let nodes = ["a", "b", "c", "d"]
        .iter()
        .zip(ports)
        .enumerate()
        .map(|(i, (name, port))| {
            let host = lab.host(name);
            lab.attach(&host, &segment, i as u32 + 1);
            let mut node = Node::new(name, host, dir.path());
            node.start_args = vec!["--no-mdns".into(), "--no-upnp".into()];
            if let Some(port) = port {
                node.start_args
                    .extend(["--beacon-port".into(), port.into()]);
            }
            node
        })
        .collect();
    let mut world = World {
        nodes,
        _lab: lab,
        dir: Some(dir),
    };
    for node in &mut world.nodes {
        node.start();
    }
    let ids: Vec<String> = world
        .nodes
        .iter_mut()
        .map(|n| n.wait_ready(DISCOVERY_LIMIT).peer_id)
        .collect();
    let pair_of = |i: usize| if i < 2 { [0, 1] } else { [2, 3] };

    // Each node hears its partner's beacons.
    wait_until(
        "each pair to find each other by beacon",
        DISCOVERY_LIMIT,
        || {
            for (i, node) in world.nodes.iter().enumerate() {
                let partner = pair_of(i).into_iter().find(|&j| j != i).unwrap();
                let listed = peers(node);
                let found = listed.iter().any(|p| {
                    p.peer_id == ids[partner] && p.sources.iter().any(|s| s == "broadcast")
                });
                if !found {
                    return Err(format!("{} lists {listed:#?}", node.name));
                }
            }
            Ok(())
        },
    );

    // By then every node has beaconed, on the same segment: none found a node
    // of the other pair.
    for (i, node) in world.nodes.iter().enumerate() {
        for peer in peers(node) {
            let j = ids.iter().position(|id| *id == peer.peer_id);
            assert!(
                j.is_none_or(|j| pair_of(i).contains(&j)),
                "{} (beacon port {:?}) found a node on another beacon port: {peer:#?}",
                node.name,
                ports[i]
            );
        }
    }
}
