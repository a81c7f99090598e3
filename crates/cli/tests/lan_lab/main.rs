//! LAN acceptance test in the network lab (needs root; skips otherwise).
//!
//! Three hosts `h1`, `h2`, `h3` on one bridge segment, no default route, each
//! running `ferry start` with no address given (default listen, mDNS and beacons
//! on). Checks discovery, channel gossip, a crash and restart with catch-up,
//! hostile datagrams on the beacon port, and departure of a crashed peer.
//!
//! Run: `cargo test -p ferry --test lan_lab -- --nocapture` (as root). The
//! measured times are printed; `FERRY_LAB_KEEP=1` keeps the namespaces and the
//! data directories after a run for a look.

mod world;

use ferry_testkit::lab;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lab::{Host, Lab};

use world::*;

#[test]
fn lan_three_nodes_discover_gossip_restart_and_depart() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let mut c = Cluster::new(&["h1", "h2", "h3"]);
    let tag = format!("{:08x}", lab::random_u64() as u32);
    println!(
        "lab {} on {}/{}",
        c.lab.prefix(),
        c.segment.network,
        c.segment.prefix_len
    );

    // (a) Discovery: start all three, poll until each lists (and is connected to)
    // the other two.
    let t0 = Instant::now();
    for node in &mut c.nodes {
        node.start();
    }
    let mut ids: Vec<Option<String>> = vec![None; 3];
    let mut listed_at: Vec<Option<Duration>> = vec![None; 3];
    let mut connected_at: Vec<Option<Duration>> = vec![None; 3];
    let discovered = poll(DISCOVERY_LIMIT + DISCOVERY_LIMIT, POLL, || {
        for (node, id) in c.nodes.iter_mut().zip(&mut ids) {
            if let Some(status) = node.exited() {
                panic!("{} exited during discovery: {status}", node.name);
            }
            if id.is_none() {
                *id = node.id().ok().map(|id| id.peer_id);
            }
        }
        if ids.iter().any(Option::is_none) {
            return None;
        }
        for i in 0..3 {
            if connected_at[i].is_some() {
                continue;
            }
            let others: Vec<&str> = (0..3)
                .filter(|&j| j != i)
                .map(|j| ids[j].as_deref().unwrap())
                .collect();
            let peers = listed(&c.nodes[i]);
            if listed_at[i].is_none() && lists_all(&peers, &others, false) {
                listed_at[i] = Some(t0.elapsed());
            }
            if lists_all(&peers, &others, true) {
                connected_at[i] = Some(t0.elapsed());
            }
        }
        connected_at.iter().all(Option::is_some).then_some(())
    });
    let ids: Vec<String> = ids
        .into_iter()
        .enumerate()
        .map(|(i, id)| id.unwrap_or_else(|| panic!("{} never answered `id`", c.nodes[i].name)))
        .collect();
    for i in 0..3 {
        println!(
            "discovery: {} lists both others after {}, connected to both after {}",
            c.nodes[i].name,
            listed_at[i].map_or("never".into(), secs),
            connected_at[i].map_or("never".into(), secs),
        );
    }
    let all_listed = listed_at.iter().map(|t| t.unwrap_or(Duration::MAX)).max();
    let all_listed = all_listed.unwrap();
    let peer_views: Vec<String> = c
        .nodes
        .iter()
        .map(|n| format!("{}: {:#?}", n.name, n.peers()))
        .collect();
    assert!(
        all_listed <= DISCOVERY_LIMIT,
        "not every node listed the other two within {DISCOVERY_LIMIT:?}:\n{}",
        peer_views.join("\n")
    );
    assert!(
        discovered.is_some(),
        "not every node connected to the other two within {:?}:\n{}",
        DISCOVERY_LIMIT + DISCOVERY_LIMIT,
        peer_views.join("\n")
    );
    println!(
        "discovery: all three list each other after {} (target {}{})",
        secs(all_listed),
        secs(DISCOVERY_TARGET),
        if all_listed <= DISCOVERY_TARGET {
            ", met"
        } else {
            ", MISSED"
        }
    );
    for (node, id) in c.nodes.iter().zip(&ids) {
        for peer in node.peers().unwrap() {
            assert!(
                ids.contains(&peer.peer_id) && peer.peer_id != *id,
                "{} lists an unexpected peer: {peer:#?}",
                node.name
            );
        }
    }

    // (b) Gossip: a post on h1 reaches h2 and h3.
    let first = format!("hello from h1 {tag}");
    c.nodes[0].post("general", &first);
    let took = wait_delivery(&[&c.nodes[1], &c.nodes[2]], "general", &first);
    println!(
        "gossip: h1 -> h2 in {}, h1 -> h3 in {} (includes CLI polling every 50 ms)",
        secs(took[0]),
        secs(took[1])
    );

    // (c) Crash and restart: h3 misses two posts, comes back with the same id and
    // its history, and catches up.
    c.nodes[2].kill9();
    let missed = [format!("missed one {tag}"), format!("missed two {tag}")];
    for text in &missed {
        c.nodes[0].post("general", text);
    }
    wait_delivery(&[&c.nodes[1]], "general", &missed[1]);
    let restarted = Instant::now();
    c.nodes[2].start();
    let id_after = c.nodes[2].wait_ready(CATCH_UP_LIMIT);
    assert_eq!(
        id_after.peer_id, ids[2],
        "h3 came back with another peer id"
    );
    let history = c.nodes[2].read("general").unwrap();
    assert!(
        history.iter().any(|m| m.text == first),
        "h3 lost its history over the restart: {history:#?}"
    );
    let caught_up = poll(CATCH_UP_LIMIT, POLL, || {
        let messages = c.nodes[2].read("general").ok()?;
        let have = texts(&messages);
        missed
            .iter()
            .all(|t| have.contains(t.as_str()))
            .then_some(messages)
    });
    let Some((messages, _)) = caught_up else {
        panic!(
            "h3 did not get the posts it missed within {CATCH_UP_LIMIT:?} of answering: {:#?}",
            c.nodes[2].read("general")
        );
    };
    println!(
        "restart: h3 same peer id, history kept, caught up on 2 missed posts {} after restart",
        secs(restarted.elapsed())
    );
    // Let any late duplicate arrive before checking for one.
    std::thread::sleep(Duration::from_secs(1));
    for node in &c.nodes {
        let messages = node.read("general").unwrap();
        assert_no_duplicates(node, &messages);
        assert_eq!(
            messages.len(),
            3,
            "{} should show exactly the 3 posts: {messages:#?}",
            node.name
        );
    }
    drop(messages);
    let rejoined = poll(CATCH_UP_LIMIT, POLL, || {
        (lists_all(&listed(&c.nodes[0]), &[&ids[2]], true)
            && lists_all(&listed(&c.nodes[2]), &[&ids[0], &ids[1]], true))
        .then_some(())
    });
    assert!(
        rejoined.is_some(),
        "h3 and the others did not reconnect: h1 {:#?}\nh3 {:#?}",
        c.nodes[0].peers(),
        c.nodes[2].peers()
    );
    println!(
        "restart: h3 reconnected to both {} after restart",
        secs(restarted.elapsed())
    );

    // Hostile datagrams on h1's beacon port, sent from h2's namespace.
    hostile_beacons(&mut c, &ids);

    // (d) Departure: h2 crashes; h1 drops it from its list.
    // How h1 reaches h2 matters: a TCP connection breaks at once, a QUIC one only
    // when its idle timeout runs out.
    let via = c.nodes[0]
        .peers()
        .unwrap()
        .into_iter()
        .find(|p| p.peer_id == ids[1])
        .and_then(|p| p.connected_via)
        .unwrap_or_else(|| "?".into());
    c.nodes[1].kill9();
    let gone = poll(DEPARTURE_LIMIT, POLL, || {
        let peers = c.nodes[0].peers().ok()?;
        (!peers.iter().any(|p| p.peer_id == ids[1])).then_some(())
    });
    let Some(((), took)) = gone else {
        panic!(
            "h1 still lists h2 {DEPARTURE_LIMIT:?} after it died: {:#?}",
            c.nodes[0].peers()
        );
    };
    println!(
        "departure: h1 stopped listing h2 {} after kill -9 (was connected via {via}; target {}{})",
        secs(took),
        secs(DEPARTURE_TARGET),
        if took <= DEPARTURE_TARGET {
            ", met"
        } else {
            ", MISSED"
        }
    );
    assert!(
        lists_all(&c.nodes[0].peers().unwrap(), &[&ids[2]], true),
        "h1 lost h3 too: {:#?}",
        c.nodes[0].peers()
    );
    println!("total: {}", secs(t0.elapsed()));
}

/// Sends garbage, oversized and forged beacons to h1's beacon port from h2's
/// namespace; h1 must stay up, keep answering and list no new or renamed peer.
fn hostile_beacons(c: &mut Cluster, ids: &[String]) {
    let target = c.nodes[0].host.ip();
    let tmp = c.dir.as_ref().unwrap().path().to_owned();
    let h3_key = peer_id_public_key(&ids[2]);
    let mut datagrams: Vec<(&str, Vec<u8>)> = vec![
        ("text garbage", b"garbage\n".to_vec()),
        ("random bytes", lab::random_bytes(200)),
        (
            "magic then garbage",
            [b"FRYb".as_slice(), &lab::random_bytes(100)].concat(),
        ),
        ("magic only", b"FRYb".to_vec()),
        (
            "600 bytes",
            [b"FRYb".as_slice(), &lab::random_bytes(596)].concat(),
        ),
        (
            "64 KiB - 1 bytes",
            [b"FRYb".as_slice(), &vec![0xff; 65_507 - 4]].concat(),
        ),
        (
            "h3's key, bad signature, name evil, seq max",
            forged_beacon(h3_key.clone(), u64::MAX, "evil", lab::random_bytes(64)),
        ),
        (
            "random key, random signature, name bogus",
            forged_beacon(
                [&[0x08, 0x01, 0x12, 0x20][..], &lab::random_bytes(32)].concat(),
                1,
                "bogus",
                lab::random_bytes(64),
            ),
        ),
        (
            "h3's key, empty signature",
            forged_beacon(h3_key.clone(), u64::MAX - 1, "evil", Vec::new()),
        ),
    ];
    // A valid-looking envelope cut short at every length, to probe the decoder.
    let whole = forged_beacon(h3_key, 7, "evil", lab::random_bytes(64));
    for cut in (5..whole.len()).step_by(9) {
        datagrams.push(("truncated forged beacon", whole[..cut].to_vec()));
    }
    let sender = &c.nodes[1].host;
    for (i, (what, bytes)) in datagrams.iter().enumerate() {
        let path = tmp.join(format!("datagram{i}.bin"));
        std::fs::write(&path, bytes).unwrap();
        // bash's /dev/udp sends what `cat` writes in one write(): one datagram.
        let out = sender
            .command("bash")
            .args([
                "-c",
                "cat \"$1\" > /dev/udp/$2/$3",
                "send",
                path.to_str().unwrap(),
                &target.to_string(),
                &BEACON_PORT.to_string(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sending {what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    if let Some(status) = c.nodes[0].exited() {
        panic!("h1 died after hostile datagrams: {status}");
    }
    let peers = c.nodes[0]
        .peers()
        .unwrap_or_else(|e| panic!("h1 stopped answering after hostile datagrams: {e}"));
    for peer in &peers {
        assert!(
            ids[1..].contains(&peer.peer_id),
            "h1 lists a bogus peer after hostile datagrams: {peer:#?}"
        );
        assert!(
            !matches!(peer.name.as_deref(), Some("evil" | "bogus")),
            "a forged beacon renamed a peer on h1: {peer:#?}"
        );
    }
    assert!(
        lists_all(&peers, &[&ids[1], &ids[2]], true),
        "h1 lost a peer after hostile datagrams: {peers:#?}"
    );
    println!(
        "beacons: h1 ignored {} hostile datagrams and still lists only h2 and h3",
        datagrams.len()
    );
}

/// A beacon datagram in ferry's wire format (magic, then a postcard envelope of
/// protobuf public key, postcard `BeaconInfo` and signature) with the signature
/// given, so: a forgery.
fn forged_beacon(public_key: Vec<u8>, seq: u64, name: &str, signature: Vec<u8>) -> Vec<u8> {
    fn varint(mut n: u64, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    fn bytes(b: &[u8], out: &mut Vec<u8>) {
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }
    let mut info = Vec::new();
    varint(seq, &mut info);
    bytes(name.as_bytes(), &mut info);
    for port in [4001u64, 4001] {
        info.push(1);
        varint(port, &mut info);
    }
    let mut datagram = b"FRYb".to_vec();
    bytes(&public_key, &mut datagram);
    bytes(&info, &mut datagram);
    bytes(&signature, &mut datagram);
    datagram
}

/// The protobuf-encoded public key inside an Ed25519 peer id (base58btc of an
/// identity multihash of that key).
fn peer_id_public_key(peer_id: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut big: Vec<u8> = Vec::new(); // little-endian base-256
    for ch in peer_id.bytes() {
        let mut carry = ALPHABET
            .iter()
            .position(|&a| a == ch)
            .unwrap_or_else(|| panic!("{peer_id} is not base58")) as u32;
        for byte in &mut big {
            carry += u32::from(*byte) * 58;
            *byte = carry as u8;
            carry >>= 8;
        }
        while carry > 0 {
            big.push(carry as u8);
            carry >>= 8;
        }
    }
    let leading_zeros = peer_id.bytes().take_while(|&b| b == b'1').count();
    big.extend(std::iter::repeat_n(0, leading_zeros));
    big.reverse();
    assert!(
        big.len() == 38 && big[0] == 0x00 && big[1] == 36,
        "{peer_id} is not an identity-hashed Ed25519 peer id"
    );
    big[2..].to_vec()
}

/// Each discovery mechanism alone finds peers on a segment whose hosts have no
/// default route: beacons (`--no-mdns`), then mDNS (`--no-beacon`).
#[test]
fn lan_each_discovery_mechanism_works_alone() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    for (flag, source) in [("--no-mdns", "broadcast"), ("--no-beacon", "mdns")] {
        let mut c = Cluster::new(&["a", "b"]);
        let t0 = Instant::now();
        for node in &mut c.nodes {
            node.start_args = vec![flag.to_owned()];
            node.start();
        }
        let ids: Vec<String> = c
            .nodes
            .iter_mut()
            .map(|n| n.wait_ready(DISCOVERY_LIMIT).peer_id)
            .collect();
        let found = poll(DISCOVERY_LIMIT, POLL, || {
            c.nodes
                .iter()
                .enumerate()
                .all(|(i, node)| {
                    listed(node)
                        .iter()
                        .any(|p| p.peer_id == ids[1 - i] && p.sources.iter().any(|s| s == source))
                })
                .then_some(())
        });
        let views: Vec<String> = c
            .nodes
            .iter()
            .map(|n| format!("{}: {:#?}", n.name, n.peers()))
            .collect();
        assert!(
            found.is_some(),
            "with {flag}, a and b did not find each other by {source} within {DISCOVERY_LIMIT:?}:\n{}",
            views.join("\n")
        );
        for node in &c.nodes {
            for peer in node.peers().unwrap() {
                assert!(
                    !peer.sources.iter().any(|s| s
                        == if source == "mdns" {
                            "broadcast"
                        } else {
                            "mdns"
                        }),
                    "with {flag}, {} still found a peer the other way: {peer:#?}",
                    node.name
                );
            }
        }
        println!(
            "discovery with {flag} ({source} only): both list each other after {}",
            secs(t0.elapsed())
        );
    }
}

// ---- tests of the lab itself ----

fn ping(from: &Host, to: std::net::Ipv4Addr) -> bool {
    from.command("ping")
        .args(["-c1", "-W1", "-n", &to.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run ping in the lab (install iputils-ping): {e}"))
        .success()
}

fn lab_namespaces(prefix: &str) -> Vec<String> {
    let out = lab::run(Command::new("ip").args(["netns", "list"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|ns| ns.starts_with(&format!("{prefix}-")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn lab_segment_hosts_reach_each_other_and_clean_up() {
    if lab::skip_unless_root() {
        return;
    }
    let lab = Lab::new();
    let prefix = lab.prefix().to_owned();
    let seg = lab.bridge_segment("lan", "10.77.9.0/24");
    let a = lab.host("a");
    let b = lab.host("b");
    let ia = lab.attach(&a, &seg, 1);
    let ib = lab.attach(&b, &seg, 2);
    assert_eq!(ia.addr, seg.addr(1));
    assert_eq!(ib.name, "eth0");
    assert_eq!(seg.broadcast().to_string(), "10.77.9.255");
    assert!(ping(&a, b.ip()), "a cannot ping b");
    assert!(ping(&b, a.ip()), "b cannot ping a");
    // No default route unless asked.
    let routes = a.command("ip").args(["route", "show", "default"]).output();
    assert!(routes.unwrap().stdout.is_empty());
    // The root namespace got no new link.
    let root_links = lab::run(Command::new("ip").args(["-o", "link"]));
    assert!(!String::from_utf8_lossy(&root_links.stdout).contains(&prefix));
    // Processes inside are killed on drop.
    let mut sleeper = a.command("sleep").arg("600").spawn().unwrap();
    assert_eq!(lab_namespaces(&prefix).len(), 3);
    drop(lab);
    assert!(lab_namespaces(&prefix).is_empty(), "namespaces left behind");
    let status = sleeper.wait().unwrap();
    assert!(!status.success(), "the sleeper was not killed");
}

#[test]
fn lab_cleans_up_on_panic() {
    if lab::skip_unless_root() {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let lab = Lab::new();
        tx.send(lab.prefix().to_owned()).unwrap();
        let _h = lab.host("x");
        panic!("on purpose, to test the lab's cleanup on panic");
    })
    .join();
    assert!(result.is_err());
    let prefix = rx.recv().unwrap();
    assert!(lab_namespaces(&prefix).is_empty(), "namespaces left behind");
}

#[test]
fn lab_loss_and_nat() {
    if lab::skip_unless_root() {
        return;
    }
    let lab = Lab::new();
    let inside = lab.bridge_segment("lan", "192.168.7.0/24");
    let outside = lab.bridge_segment("wan", "10.78.0.0/24");
    let a = lab.host("a");
    let r = lab.router("r");
    let b = lab.host("b");
    lab.attach(&a, &inside, 10);
    let r_in = lab.attach(&r, &inside, 1);
    let r_out = lab.attach(&r, &outside, 1);
    lab.attach(&b, &outside, 20);
    assert_eq!(r_out.name, "eth1");

    // b has no route back to 192.168.7.0/24: only the NAT makes this work.
    a.add_default_route(r_in.addr);
    assert!(!ping(&a, b.ip()), "reached b without NAT");
    r.masquerade(&r_out, false);
    assert!(ping(&a, b.ip()), "a cannot reach b through the NAT");

    // Full loss on the segment, then on a host, then none.
    outside.set_loss(100);
    assert!(!ping(&r, b.ip()), "ping crossed a segment with 100 % loss");
    outside.set_loss(0);
    assert!(ping(&r, b.ip()));
    b.set_loss(100);
    assert!(!ping(&r, b.ip()), "ping reached a host with 100 % loss");
    b.set_loss(0);
    assert!(ping(&r, b.ip()));
}
