//! Forgery against a real node's bundle agent (`examples/hostile/dtn_forge.rs`):
//! bundles in the node's own name, acks in other nodes' names, floods of acks and
//! summaries, and a summary left behind by a peer that hung up. None may make the
//! node take a stranger's bundle for its own, drop a copy it carries, forget a
//! delivery, stop completing contacts, or keep a contact for a peer that left.

#[allow(dead_code)]
#[path = "../examples/hostile/dtn_report.rs"]
mod dtn_report;
#[allow(dead_code)]
#[path = "hostile/dtn.rs"]
mod hostile_dtn;

use ferry_core::dtn::routing::{MAX_ACKS, MAX_ACKS_PER_DESTINATION};
use ferry_core::dtn::wire::{MAX_RESPONSE_BYTES, MAX_SUMMARY_BYTES};
use ferry_node::control::types::{DtnSendReply, InboxItem};
use ferry_testkit::harness::{Node, SPREAD_TIMEOUT, wait_until};
use hostile_dtn::{absent_peer, dtn_node_id, dtn_status, hostile_dtn, tcp_addr};

fn inbox(node: &Node) -> Vec<InboxItem> {
    node.ferry(&["dtn", "inbox", "--json"]).ok().json()
}

fn send(from: &Node, to: &str, text: &str) -> DtnSendReply {
    from.ferry(&["dtn", "send", to, text, "--json"]).ok().json()
}

#[track_caller]
fn wait_delivered(node: &Node, id: &str, text: &str) {
    wait_until("a bundle to reach the inbox", SPREAD_TIMEOUT, || {
        let items = inbox(node);
        match items.iter().find(|i| i.id == id) {
            Some(item) if item.text.as_deref() == Some(text) => Ok(()),
            _ => Err(format!("{items:#?}")),
        }
    });
}

/// Bundles whose source is the target itself, unsigned, sent by a stranger: each
/// is the stranger's (counted against its quarter of the store, so refused past
/// it, and evictable), and the one dated the end of time does not stop the target,
/// even after a restart, from giving each new bundle a new id.
#[test]
fn bundles_forged_in_the_nodes_name_are_the_senders_and_new_sends_get_new_ids() {
    let mut target = Node::start_with_config("target", "dtn_quota_mib = 4\n");
    let legit = Node::start("legit");
    let (target_id, legit_id) = (target.id().peer_id, legit.id().peer_id);
    // 80 bundles of ~20 KB: more than the 1 MiB a peer may fill.
    let report = hostile_dtn("dtn-forge-source", &target, &["80"]);
    let hostile_node = dtn_node_id(&report.peer_id);
    let stored: Vec<&str> = report
        .sent
        .iter()
        .filter(|s| s.answer.as_deref() == Some("stored"))
        .map(|s| s.what.trim_start_matches("forged "))
        .collect();
    let over_share = report
        .sent
        .iter()
        .filter(|s| s.answer.as_deref().is_some_and(|a| a.contains("share")))
        .count();
    assert!(!stored.is_empty(), "{:#?}", report.sent);
    assert!(
        over_share > 0,
        "the forged bundles count against the sender's share: {:#?}",
        report.sent
    );
    let status = dtn_status(&target);
    for id in &stored {
        let held = status
            .bundles
            .iter()
            .find(|b| b.id == *id)
            .unwrap_or_else(|| panic!("{id} is not held: {:#?}", status.bundles));
        assert!(
            !held.own,
            "a forged bundle is taken as the node's own: {held:#?}"
        );
        assert_eq!(held.received_from.as_deref(), Some(hostile_node.as_str()));
    }
    assert!(
        status.bundles.iter().all(|b| !b.own),
        "{:#?}",
        status.bundles
    );

    // The forged creation time must not have reached the node's creation clock.
    target.restart();
    let one = send(&target, &legit_id, "first after the forgery");
    let two = send(&target, &legit_id, "second after the forgery");
    assert_ne!(one.id, two.id, "two sends, one id");
    for sent in [&one, &two] {
        assert!(
            !stored.contains(&sent.id.as_str()),
            "{} is a forged bundle's id",
            sent.id
        );
        assert!(sent.id.starts_with(&dtn_node_id(&target_id)), "{}", sent.id);
    }
    legit.ferry(&["connect", &tcp_addr(&target)]).ok();
    wait_delivered(&legit, &one.id, "first after the forgery");
    wait_delivered(&legit, &two.id, "second after the forgery");
}

/// A target carrying its own bundle and a legit peer's, each for a peer that is
/// nowhere; a stranger claims both delivered, every way it can (no signature, its
/// own signature in the destination's name, its own signature as destination):
/// both copies stay.
#[test]
fn forged_acks_free_no_copy() {
    let target = Node::start("target");
    let legit = Node::start("legit");
    let (x, y) = (absent_peer(), absent_peer());
    let own = send(&target, &x, "the target's own, for a peer that is nowhere");
    let carried = send(&legit, &y, "carried by the target");
    legit.ferry(&["connect", &tcp_addr(&target)]).ok();
    wait_until(
        "the target to take the legit bundle",
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
    let acks_before = dtn_status(&target).acks;

    let report = hostile_dtn("dtn-forge-acks", &target, &[&x, &y]);
    assert_eq!(
        report.sent[0].answer.as_deref(),
        Some("summary"),
        "{report:#?}"
    );
    // Its acks naming itself as destination are signed well and kept (they match
    // no bundle here): once they are counted, the summary has been applied.
    wait_until("the forged summary to be applied", SPREAD_TIMEOUT, || {
        let status = dtn_status(&target);
        if status.acks >= acks_before + 2 {
            Ok(())
        } else {
            Err(format!("{} acks", status.acks))
        }
    });
    let status = dtn_status(&target);
    for id in [&own.id, &carried.id] {
        assert!(
            status.bundles.iter().any(|b| b.id == *id),
            "a forged ack freed {id}: {:#?}",
            status.bundles
        );
    }
    assert!(
        target
            .log()
            .contains("acks with no valid signature by their destination ignored"),
        "the forged acks are reported"
    );
}

/// 100,000 fake acks (the stranger as destination of made-up bundles, one
/// signature for all): the ack table stays within its bounds, the real ack of a
/// delivered bundle stays (and is still passed on), and that bundle, brought again
/// by folder, is not delivered twice.
#[test]
fn a_flood_of_acks_leaves_the_table_bounded_and_real_acks_standing() {
    let target = Node::start("target");
    let legit = Node::start("legit");
    let target_id = target.id().peer_id;
    let text = "delivered before the flood";
    let sent = send(&legit, &target_id, text);
    let folder = tempfile::tempdir().unwrap();
    legit
        .ferry(&["dtn", "export", folder.path().to_str().unwrap(), "--json"])
        .ok();
    legit.ferry(&["connect", &tcp_addr(&target)]).ok();
    wait_delivered(&target, &sent.id, text);

    let report = hostile_dtn("dtn-ack-flood", &target, &["100000"]);
    assert!(
        report
            .sent
            .iter()
            .all(|s| s.answer.as_deref() == Some("summary")),
        "{:#?}",
        report.sent
    );
    let summaries = report.sent.len();
    wait_until("the flood to be read", SPREAD_TIMEOUT, || {
        let read = target
            .log()
            .matches("acks with no valid signature by their destination ignored")
            .count();
        if read >= summaries {
            Ok(())
        } else {
            Err(format!("{read} of {summaries} summaries"))
        }
    });
    let acks = dtn_status(&target).acks as usize;
    println!(
        "ack table after 100,000 fake acks from one peer: {acks} (cap {MAX_ACKS}, per destination {MAX_ACKS_PER_DESTINATION})"
    );
    // The real ack, and the one fake whose signature is right.
    assert!(acks <= 2, "{acks}");
    let check = tempfile::tempdir().unwrap();
    target
        .ferry(&["dtn", "export", check.path().to_str().unwrap(), "--json"])
        .ok();
    let exported = std::fs::read_to_string(check.path().join("ferry-dtn/acks.json")).unwrap();
    assert!(
        exported.contains(&sent.id),
        "the real ack is gone: {exported}"
    );

    let imported: serde_json::Value = target
        .ferry(&["dtn", "import", folder.path().to_str().unwrap(), "--json"])
        .ok()
        .json();
    assert_eq!(imported["delivered"], 0, "delivered twice: {imported}");
    let items = inbox(&target);
    assert_eq!(
        items.iter().filter(|i| i.id == sent.id).count(),
        1,
        "{items:#?}"
    );
}

/// Acks with the longest ids a node accepts (20,000 of ~1.2 KB, each signature
/// checked: ~23 MB, more than a frame, if the node sent them all), then a burst of
/// summaries: the node's summary stays within its budget, and a legit contact still
/// completes and delivers.
#[test]
fn oversize_and_flooding_summaries_leave_the_nodes_summary_in_its_frame() {
    let target = Node::start("target");
    let legit = Node::start("legit");
    let target_id = target.id().peer_id;
    let report = hostile_dtn("dtn-ack-bloat", &target, &["20000"]);
    let last = report.sent.last().expect("a report");
    assert_eq!(last.what, "the node's summary", "{:#?}", report.sent);
    let answer = last
        .answer
        .as_deref()
        .unwrap_or_else(|| panic!("{last:#?}"));
    assert!(
        answer.starts_with("summary of ") && answer != "summary of 0 acks",
        "the node kept none of the acks, so nothing was tested: {last:#?}"
    );
    println!(
        "the node's summary after 20,000 long acks: {} bytes (budget {MAX_SUMMARY_BYTES}, frame {MAX_RESPONSE_BYTES})",
        last.bytes
    );
    assert!(last.bytes <= MAX_SUMMARY_BYTES, "{}", last.bytes);
    let burst = &report.sent[report.sent.len() - 2];
    println!("summary burst: {}", burst.answer.as_deref().unwrap_or("?"));
    let acks = dtn_status(&target).acks as usize;
    println!("ack table after 20,000 validly signed acks from one peer: {acks}");
    assert!(acks <= MAX_ACKS_PER_DESTINATION, "{acks}");

    let text = "a contact still completes";
    let sent = send(&legit, &target_id, text);
    legit.ferry(&["connect", &tcp_addr(&target)]).ok();
    wait_delivered(&target, &sent.id, text);
}

/// A peer whose DTN contact the node has ended (it would not answer the node's
/// summary) sends a summary anyway, then leaves; twice. Once it is gone, no contact
/// is left open for it.
#[test]
fn a_summary_after_the_contact_ended_leaves_no_contact() {
    let target = Node::start("target");
    let report = hostile_dtn("dtn-summary-leave", &target, &[]);
    assert!(report.hung_up_after_ms.is_some(), "{report:#?}");
    let hostile_node = dtn_node_id(&report.peer_id);
    let contact = wait_until("the peer to be gone", SPREAD_TIMEOUT, || {
        let status = dtn_status(&target);
        match status.contacts.iter().find(|c| c.node == hostile_node) {
            Some(c) if !c.connected => Ok(c.clone()),
            _ => Err(format!("{:#?}", status.contacts)),
        }
    });
    let answered = report.sent.iter().filter(|s| s.answer.is_some()).count();
    println!(
        "{} summaries after the contact ended, {answered} answered, {} read",
        report.sent.len(),
        contact.summaries_received
    );
    assert!(!contact.routing, "a contact leaked: {contact:#?}");
}
