//! A real `ferry start` and a real dtn7-rs `dtnd` (dtn7 0.21.0) exchanging bundles
//! over TCPCLv4, both directions, on 127.0.0.1 only.
//!
//! Needs `dtnd`, `dtnsend` and `dtnrecv` in `$HOME/.cache/ferry-dtn7/bin` or on
//! PATH (`tests/run-all.sh` installs them); skips with a message otherwise. dtnd
//! runs with neighbour discovery off (`--disable_nd -i 0`), its TCPCL listener
//! bound to 127.0.0.1 and its web API on [::1] (`-6`); the ferry nodes run with the
//! harness's loopback flags (no mDNS, beacons or UPnP). Every process is killed
//! when the test ends; dtnd's and the nodes' logs are printed when a test fails
//! (dtnd's always with `FERRY_SHOW_DTND_LOG=1`).

use std::fs;
use std::time::{Duration, Instant};

use ferry_core::dtn::Bundle;
use ferry_node::control::types::{DtnSendReply, DtnStatus, InboxItem};
use ferry_node::dtn::ContactView;
use ferry_testkit::dtnd::{Dtnd, free_port_v4, pattern, tools};
use ferry_testkit::harness::{Node, SPREAD_TIMEOUT, wait_until};

/// What ferry logs when a bundle is over a TCPCL peer's transfer MRU.
const OVER_LIMIT: &str = "over this TCPCL peer's 64000-byte transfer limit";

fn status(node: &Node) -> DtnStatus {
    node.ferry(&["dtn", "status", "--json"]).ok().json()
}

fn inbox(node: &Node) -> Vec<InboxItem> {
    node.ferry(&["dtn", "inbox", "--json"]).ok().json()
}

/// Waits until `node` has a connected contact with `peer` over TCPCL.
fn wait_tcpcl_contact(node: &Node, peer: &str) {
    wait_until(
        &format!("{} to have a TCPCL contact with {peer}", node.name),
        SPREAD_TIMEOUT,
        || {
            let status = status(node);
            if status
                .contacts
                .iter()
                .any(|c| c.node == peer && c.connected && c.via.starts_with("tcpcl"))
            {
                Ok(())
            } else {
                Err(format!("{:#?}", status.contacts))
            }
        },
    );
}

/// What `node`'s DTN status says of its contact with `peer`.
fn contact_with<'a>(status: &'a DtnStatus, peer: &str) -> Option<&'a ContactView> {
    status.contacts.iter().find(|c| c.node == peer)
}

/// Waits until `node`'s log says `text`.
fn wait_logged(node: &Node, what: &str, text: &str) {
    wait_until(what, SPREAD_TIMEOUT, || {
        if node.log().contains(text) {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
}

/// `ferry dtn send --file` of 70,000 bytes (over dtnd's 64,000-byte transfer
/// MRU) from `node` to `destination`.
fn send_too_big(node: &Node, destination: &str, seed: u8) -> DtnSendReply {
    let dir = tempfile::tempdir().unwrap();
    let big_file = dir.path().join("big.bin");
    fs::write(&big_file, pattern(70_000, seed)).unwrap();
    node.ferry(&[
        "dtn",
        "send",
        destination,
        "--file",
        big_file.to_str().unwrap(),
        "--json",
    ])
    .ok()
    .json()
}

/// A bundle `dtnrecv` got on dtnd's `endpoint` within 30 s.
fn recv(dtnd: &Dtnd, endpoint: &str) -> Bundle {
    parse(&dtnd.recv(endpoint, Duration::from_secs(30)))
}

fn parse(bytes: &[u8]) -> Bundle {
    Bundle::parse(bytes).unwrap_or_else(|e| panic!("dtnrecv's bundle does not parse: {e}"))
}

/// ferry dials dtnd (`--tcpcl-peer`) and hands it a bundle for one of its
/// endpoints; dtnd delivers it intact and ferry frees its copy. A bundle over
/// dtnd's 64,000-byte transfer MRU is kept, not sent, and the session goes on.
#[test]
fn ferry_node_sends_bundles_to_dtnd() {
    let Some(tools) = tools() else {
        return;
    };
    let began = Instant::now();
    let dtnd = Dtnd::start(&tools, "alpha", &["-e", "incoming"]);
    let dtnd_addr = dtnd.tcpcl_addr().to_string();
    let ferry = Node::start_with("tcpcl-dialer", &["--tcpcl-peer", &dtnd_addr]);
    let peer_id = ferry.id().peer_id;
    wait_tcpcl_contact(&ferry, "dtn://alpha/");

    // A text bundle for dtnd's `incoming` endpoint.
    let sent: DtnSendReply = ferry
        .ferry(&[
            "dtn",
            "send",
            "dtn://alpha/incoming",
            "hello dtnd",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(sent.destination, "dtn://alpha/incoming");
    let got = recv(&dtnd, "incoming");
    assert_eq!(got.payload(), b"hello dtnd");
    assert_eq!(got.id().to_string(), sent.id, "the very bundle ferry made");
    assert_eq!(got.destination().to_string(), "dtn://alpha/incoming");
    assert_eq!(got.source().to_string(), format!("dtn://{peer_id}/text"));
    eprintln!(
        "ferry -> dtnd: dtnrecv got {} ({} payload bytes) after {:?}",
        sent.id,
        got.payload().len(),
        began.elapsed()
    );

    // dtnd was the destination node: ferry's copy is freed, the delivery counted.
    let after = wait_until(
        "ferry to free the bundle handed to dtnd",
        SPREAD_TIMEOUT,
        || {
            let s = status(&ferry);
            let contact = contact_with(&s, "dtn://alpha/");
            if s.bundles.is_empty() && contact.is_some_and(|c| c.bundles_sent == 1) {
                Ok(s)
            } else {
                Err(format!("{s:#?}"))
            }
        },
    );
    let contact = contact_with(&after, "dtn://alpha/").unwrap();
    assert_eq!(contact.via, format!("tcpcl to {dtnd_addr}"));
    assert!(contact.connected);
    assert_eq!(after.forwarded, 1);
    assert!(after.acks >= 1, "the delivery is acknowledged: {after:#?}");

    // Over dtnd's transfer MRU: kept here, not sent.
    let big = send_too_big(&ferry, "dtn://alpha/incoming", 5);
    assert!(big.bytes > 64_000, "{big:?}");
    wait_logged(
        &ferry,
        "ferry to log the bundle as too big for dtnd",
        OVER_LIMIT,
    );

    // The session goes on: a later small bundle still gets through.
    let later: DtnSendReply = ferry
        .ferry(&[
            "dtn",
            "send",
            "dtn://alpha/incoming",
            "still here",
            "--json",
        ])
        .ok()
        .json();
    let got = recv(&dtnd, "incoming");
    assert_eq!(got.id().to_string(), later.id);
    assert_eq!(got.payload(), b"still here");

    // Past a replanning interval (10 s): no retry loop, no new session, and the big
    // bundle is still held, never having reached dtnd.
    std::thread::sleep(Duration::from_secs(12));
    let log = ferry.log();
    assert_eq!(
        log.matches(OVER_LIMIT).count(),
        1,
        "the oversized bundle is skipped once per contact:\n{log}"
    );
    assert!(!log.contains("TCPCL session ended"), "{log}");
    let s = status(&ferry);
    assert_eq!(
        s.bundles.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
        [big.id.as_str()],
        "only the oversized bundle is held: {s:#?}"
    );
    assert_eq!(s.bundles[0].destination, "dtn://alpha/");
    let contact = contact_with(&s, "dtn://alpha/").unwrap();
    assert!(contact.connected);
    assert_eq!(contact.bundles_sent, 2);
    assert_eq!(s.forwarded, 2);
    if let Ok(bytes) = dtnd.try_recv("incoming") {
        panic!(
            "dtnd got a bundle it should not have: {:?}",
            parse(&bytes).id()
        );
    }
    assert!(
        !dtnd.log_text().contains(&big.id),
        "dtnd heard of the oversized bundle"
    );
    dtnd.assert_no_tcpcl_errors();
    eprintln!("ferry -> dtnd: done in {:?}", began.elapsed());
}

/// dtnd dials ferry's TCPCL listener (a static peer) and forwards what `dtnsend`
/// gave it: a text and a binary bundle for ferry arrive intact in its inbox, and a
/// bundle for a third node is carried, not sent back to dtnd.
#[test]
fn dtnd_sends_bundles_to_ferry_node() {
    let Some(tools) = tools() else {
        return;
    };
    let began = Instant::now();
    let port = free_port_v4();
    let listen = format!("127.0.0.1:{port}");
    let ferry = Node::start_with("tcpcl-listener", &["--tcpcl-listen", &listen]);
    wait_logged(&ferry, "ferry's TCPCL listener", "TCPCL listening");
    let peer_id = ferry.id().peer_id;
    let dtnd = Dtnd::start(
        &tools,
        "beta",
        &["-s", &format!("tcp://127.0.0.1:{port}/{peer_id}")],
    );

    let text = "hello ferry, this is dtnd";
    let data = pattern(20_000, 3);
    dtnd.send(&format!("dtn://{peer_id}/text"), text.as_bytes());
    dtnd.send(&format!("dtn://{peer_id}/inbox"), &data);
    // For a node ferry does not know: ferry carries it (epidemic).
    dtnd.send("dtn://gamma/incoming", b"for gamma");

    let items = wait_until("both bundles in ferry's inbox", SPREAD_TIMEOUT, || {
        let items = inbox(&ferry);
        if items.len() >= 2 {
            Ok(items)
        } else {
            Err(format!("{items:#?}"))
        }
    });
    eprintln!(
        "dtnd -> ferry: inbox filled after {:?}: {items:#?}",
        began.elapsed()
    );
    assert_eq!(items.len(), 2, "{items:#?}");
    // dtnd drops bundles whose source is not one of its endpoints, so dtnsend runs
    // without -s and the source is the node itself.
    for item in &items {
        assert_eq!(item.source, "dtn://beta/", "{item:?}");
    }
    let text_item = items
        .iter()
        .find(|i| i.destination == format!("dtn://{peer_id}/text"))
        .expect("the text bundle");
    assert_eq!(text_item.kind, "text");
    assert_eq!(text_item.text.as_deref(), Some(text));
    assert_eq!(text_item.size, text.len() as u64);
    let data_item = items
        .iter()
        .find(|i| i.destination == format!("dtn://{peer_id}/inbox"))
        .expect("the binary bundle");
    assert_eq!(data_item.kind, "data");
    assert_eq!(data_item.size, data.len() as u64);
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.bin");
    ferry
        .ferry(&["dtn", "save", &data_item.id, "-o", saved.to_str().unwrap()])
        .ok();
    assert_eq!(fs::read(&saved).unwrap(), data, "payload intact");

    // The third bundle is held for gamma, received from dtnd; all three counted.
    let s = wait_until("ferry to hold gamma's bundle", SPREAD_TIMEOUT, || {
        let s = status(&ferry);
        let received = contact_with(&s, "dtn://beta/").map(|c| c.bundles_received);
        if s.bundles.iter().any(|b| b.destination == "dtn://gamma/") && received == Some(3) {
            Ok(s)
        } else {
            Err(format!("{s:#?}"))
        }
    });
    assert_eq!(s.bundles.len(), 1, "{s:#?}");
    assert_eq!(s.bundles[0].received_from.as_deref(), Some("dtn://beta/"));
    let contact = contact_with(&s, "dtn://beta/").unwrap();
    assert!(
        contact.via.starts_with("tcpcl from 127.0.0.1:"),
        "{contact:?}"
    );
    assert!(contact.connected);

    // dtnd gave ferry gamma's bundle: it is not offered back to dtnd.
    std::thread::sleep(Duration::from_secs(3));
    let s = status(&ferry);
    let contact = contact_with(&s, "dtn://beta/").unwrap();
    assert_eq!(
        contact.bundles_sent, 0,
        "ferry sent dtnd's bundle back: {s:#?}"
    );
    assert_eq!(s.bundles.len(), 1, "{s:#?}");
    dtnd.assert_no_tcpcl_errors();
    eprintln!("dtnd -> ferry: done in {:?}", began.elapsed());
}

/// Under spray-and-wait, a bundle too big for dtnd keeps all its copies for other
/// contacts, while a small one hands dtnd half of its copies.
#[test]
fn oversized_bundle_keeps_its_spray_copies() {
    let Some(tools) = tools() else {
        return;
    };
    let began = Instant::now();
    let dtnd = Dtnd::start(&tools, "delta", &[]);
    let dtnd_addr = dtnd.tcpcl_addr().to_string();
    let ferry = Node::start_with(
        "tcpcl-spray",
        &["--dtn-strategy", "spray:8", "--tcpcl-peer", &dtnd_addr],
    );
    wait_tcpcl_contact(&ferry, "dtn://delta/");

    // Both for a third node, so dtnd is only a relay.
    let big = send_too_big(&ferry, "dtn://gamma/incoming", 9);
    wait_logged(
        &ferry,
        "ferry to log the bundle as too big for dtnd",
        OVER_LIMIT,
    );
    let small: DtnSendReply = ferry
        .ferry(&["dtn", "send", "dtn://gamma/incoming", "small", "--json"])
        .ok()
        .json();
    let copies = |s: &DtnStatus, id: &str| s.bundles.iter().find(|b| b.id == id).map(|b| b.copies);
    let s = wait_until(
        "dtnd to take half the small bundle's copies",
        SPREAD_TIMEOUT,
        || {
            let s = status(&ferry);
            if copies(&s, &small.id) == Some(4) {
                Ok(s)
            } else {
                Err(format!("{s:#?}"))
            }
        },
    );
    assert_eq!(copies(&s, &big.id), Some(8), "{s:#?}");
    assert_eq!(ferry.log().matches(OVER_LIMIT).count(), 1);
    dtnd.assert_no_tcpcl_errors();
    eprintln!("spray: done in {:?}", began.elapsed());
}
