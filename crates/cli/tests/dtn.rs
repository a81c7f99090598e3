//! Delay-tolerant messaging between real `ferry` processes on 127.0.0.1:
//! `ferry dtn send` before any contact, delivery when one comes, the sender's copy
//! freed, a kill -9 that loses nothing, a folder carried by hand with hostile files
//! in it, and the refusals a person sees.

// The harness is shared with other test files, whose helpers these tests do not
// all need.

use std::fs;
use std::path::Path;

use ferry_node::control::types::{DtnSaveReply, DtnSendReply, DtnStatus, ImportReport, InboxItem};
use ferry_testkit::harness::{Node, Run, SPREAD_TIMEOUT, random_bytes, wait_connected, wait_until};

fn status(node: &Node) -> DtnStatus {
    node.ferry(&["dtn", "status", "--json"]).ok().json()
}

fn inbox(node: &Node) -> Vec<InboxItem> {
    node.ferry(&["dtn", "inbox", "--json"]).ok().json()
}

fn send(node: &Node, args: &[&str]) -> DtnSendReply {
    let mut all = vec!["dtn", "send"];
    all.extend_from_slice(args);
    all.push("--json");
    node.ferry(&all).ok().json()
}

fn held(node: &Node) -> usize {
    status(node).bundles.len()
}

fn import(node: &Node, dir: &Path) -> ImportReport {
    node.ferry(&["dtn", "import", dir.to_str().unwrap(), "--json"])
        .ok()
        .json()
}

#[track_caller]
fn assert_refused(run: Run, words: &str) {
    assert!(!run.status.success(), "expected a refusal: {run:?}");
    assert!(
        run.stderr.contains(words),
        "expected {words:?} in: {}",
        run.stderr
    );
}

#[test]
fn a_bundle_waits_for_a_contact_then_arrives_and_frees_the_senders_copy() {
    let village = Node::start("village");
    let town = Node::start("town");
    let town_id = town.id().peer_id;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("report 2026.bin");
    let content = random_bytes("report", 3 * 1024 * 1024 + 17);
    fs::write(&file, &content).unwrap();

    let text = send(&village, &[&town_id, "hello", "from", "the", "village"]);
    assert!(text.destination.ends_with("/text"), "{text:?}");
    send(&village, &[&town_id, "--file", file.to_str().unwrap()]);
    let before = status(&village);
    assert_eq!(before.bundles.len(), 2);
    assert!(
        before
            .bundles
            .iter()
            .all(|b| b.own && b.expires_in_secs > 6 * 86_400)
    );
    assert!(inbox(&town).is_empty());

    village.ferry(&["connect", &town.addr()]).ok();
    let items = wait_until("both bundles in town's inbox", SPREAD_TIMEOUT, || {
        let items = inbox(&town);
        if items.len() == 2 {
            Ok(items)
        } else {
            Err(format!("{items:?}"))
        }
    });
    let message = items.iter().find(|i| i.kind == "text").expect("the text");
    assert_eq!(message.text.as_deref(), Some("hello from the village"));
    assert_eq!(message.id, text.id);
    let received = items.iter().find(|i| i.kind == "file").expect("the file");
    assert_eq!(received.file_name.as_deref(), Some("report 2026.bin"));

    let out = work.path().join("saved.bin");
    let saved: DtnSaveReply = town
        .ferry(&[
            "dtn",
            "save",
            &received.id,
            "-o",
            out.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(saved.bytes, content.len() as u64);
    assert!(
        fs::read(&out).unwrap() == content,
        "the file arrived changed"
    );
    assert_refused(
        town.ferry(&["dtn", "save", &received.id, "-o", out.to_str().unwrap()]),
        "--force",
    );

    wait_until(
        "the village to free its handed-over copies",
        SPREAD_TIMEOUT,
        || match held(&village) {
            0 => Ok(()),
            n => Err(format!("{n} held")),
        },
    );
    let after = status(&village);
    assert_eq!(after.forwarded, 2);
    assert!(
        after
            .contacts
            .iter()
            .any(|c| c.connected && c.bundles_sent == 2)
    );
    assert_eq!(status(&town).delivered, 2);
}

#[test]
fn a_kill_9_after_send_loses_nothing() {
    let mut village = Node::start("village");
    let town = Node::start("town");
    let town_id = town.id().peer_id;
    for n in 0..20 {
        send(&village, &[&town_id, &format!("message {n}")]);
    }
    village.restart();
    assert_eq!(held(&village), 20, "every sent bundle survived the kill");
    village.ferry(&["connect", &town.addr()]).ok();
    wait_connected(&village, &town, &town_id);
    let items = wait_until("20 messages in town", SPREAD_TIMEOUT, || {
        let items = inbox(&town);
        if items.len() == 20 {
            Ok(items)
        } else {
            Err(format!("{} so far", items.len()))
        }
    });
    let mut texts: Vec<String> = items.into_iter().filter_map(|i| i.text).collect();
    texts.sort();
    let mut expected: Vec<String> = (0..20).map(|n| format!("message {n}")).collect();
    expected.sort();
    assert_eq!(texts, expected);
}

#[test]
fn a_folder_with_hostile_files_imports_what_is_sound_once() {
    let village = Node::start("village");
    let town = Node::start("town");
    let town_id = town.id().peer_id;
    send(&village, &[&town_id, "by hand"]);
    let drive = tempfile::tempdir().unwrap();
    let exported = village
        .ferry(&[
            "dtn",
            "export",
            drive.path().to_str().unwrap(),
            "--to",
            &town_id,
        ])
        .ok();
    assert!(
        exported.stdout.contains("exported 1 bundles"),
        "{exported:?}"
    );
    let folder = drive.path().join("ferry-dtn");
    assert!(folder.join("README.txt").is_file());

    let bundles = folder.join("bundles");
    fs::write(bundles.join("garbage.bundle"), b"\x82\x01 this is not CBOR").unwrap();
    let good = fs::read_dir(&bundles)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap() != "garbage.bundle")
        .unwrap();
    let mut tampered = fs::read(&good).unwrap();
    let at = tampered.len() - 3;
    tampered[at] ^= 0x55;
    fs::write(bundles.join("tampered.bundle"), tampered).unwrap();
    let huge = fs::File::create(bundles.join("huge.bundle")).unwrap();
    huge.set_len(17 * 1024 * 1024).unwrap();
    let content = folder.join("content");
    fs::create_dir_all(&content).unwrap();
    fs::write(
        content.join(blake3::hash(b"something else").to_hex().as_str()),
        b"lies",
    )
    .unwrap();

    let report = import(&town, drive.path());
    assert_eq!(report.delivered, 1, "{report:?}");
    let reasons: Vec<String> = report
        .rejected
        .iter()
        .map(|(f, why)| format!("{f}: {why}"))
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:#?}");
    for (file, words) in [
        ("garbage.bundle", "not a CBOR-encoded BPv7 bundle"),
        ("tampered.bundle", "CRC check failed"),
        ("huge.bundle", "over the"),
        ("content/", "hash to"),
    ] {
        assert!(
            reasons
                .iter()
                .any(|r| r.contains(file) && r.contains(words)),
            "no rejection of {file} saying {words:?}: {reasons:#?}"
        );
    }
    let items = inbox(&town);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].text.as_deref(), Some("by hand"));

    let again = import(&town, drive.path());
    assert_eq!((again.delivered, again.duplicates), (0, 1), "{again:?}");
    assert_eq!(inbox(&town).len(), 1, "imported once");

    // The way back: town's acknowledgement frees the village's copy.
    let back = tempfile::tempdir().unwrap();
    town.ferry(&["dtn", "export", back.path().to_str().unwrap()])
        .ok();
    let report = import(&village, back.path());
    assert!(report.acks >= 1, "{report:?}");
    assert_eq!(report.freed, 1, "{report:?}");
    assert_eq!(held(&village), 0);
}

#[test]
fn bad_requests_are_refused_with_a_way_forward() {
    let node = Node::start("solo");
    let peer = Node::start("peer").id().peer_id;
    assert_refused(
        node.ferry(&["dtn", "send", "not-a-peer", "hi"]),
        "neither a peer id nor an endpoint id",
    );
    assert_refused(
        node.ferry(&["dtn", "send", &peer, "hi", "--priority", "urgent"]),
        "bulk, normal or expedited",
    );
    assert_refused(
        node.ferry(&["dtn", "send", &peer, "hi", "--lifetime", "soon"]),
        "12h",
    );
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.iso");
    fs::File::create(&big)
        .unwrap()
        .set_len(17 * 1024 * 1024)
        .unwrap();
    assert_refused(
        node.ferry(&["dtn", "send", &peer, "--file", big.to_str().unwrap()]),
        "ferry share",
    );
    assert_refused(
        node.ferry(&["dtn", "save", "dtn://nobody/text-1-0", "-o", "/tmp/x"]),
        "no bundle",
    );
    assert_refused(
        node.ferry(&["dtn", "import", work.path().to_str().unwrap()]),
        "holds no ferry-dtn folder",
    );
    assert_eq!(held(&node), 0);
    let expiring = send(&node, &[&peer, "short-lived", "--lifetime", "90s"]);
    let bundle = status(&node)
        .bundles
        .into_iter()
        .find(|b| b.id == expiring.id)
        .unwrap();
    assert!((80..=90).contains(&bundle.expires_in_secs), "{bundle:?}");
}

#[test]
fn an_expired_bundle_is_dropped_and_never_delivered() {
    let village = Node::start("village");
    let town = Node::start("town");
    let town_id = town.id().peer_id;
    send(&village, &[&town_id, "too late", "--lifetime", "2s"]);
    send(&village, &[&town_id, "in time"]);
    wait_until(
        "the short-lived bundle to expire",
        SPREAD_TIMEOUT,
        || match held(&village) {
            1 => Ok(()),
            n => Err(format!("{n} held")),
        },
    );
    assert!(
        village.log().contains("reason=Expired"),
        "the expiry is logged"
    );
    village.ferry(&["connect", &town.addr()]).ok();
    let items = wait_until("the live bundle in town", SPREAD_TIMEOUT, || {
        let items = inbox(&town);
        if items.is_empty() {
            Err("nothing yet".into())
        } else {
            Ok(items)
        }
    });
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].text.as_deref(), Some("in time"));
}
