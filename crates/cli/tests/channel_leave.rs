//! `ferry leave` between real nodes on 127.0.0.1: a node that left a channel
//! receives none of its posts, also after a restart, until it posts there again.

use ferry_node::control::types::{ChannelInfo, LeaveReply, MessageView};
use ferry_testkit::harness::{Node, SPREAD_TIMEOUT, wait_connected, wait_until};

fn channel_names(node: &Node) -> Vec<String> {
    let channels: Vec<ChannelInfo> = node.ferry(&["channels", "--json"]).ok().json();
    channels.into_iter().map(|c| c.channel).collect()
}

fn ids(messages: &[MessageView]) -> Vec<&str> {
    messages.iter().map(|m| m.id.as_str()).collect()
}

fn wait_for_message(node: &Node, channel: &str, id: &str) {
    wait_until(
        &format!("message {id} on {}", node.name),
        SPREAD_TIMEOUT,
        || {
            let messages = node.read(channel);
            if messages.iter().any(|m| m.id == id) {
                Ok(())
            } else {
                Err(format!("{:?}", ids(&messages)))
            }
        },
    );
}

fn connect(node: &Node, peer: &Node) {
    let (node_id, peer_id) = (node.id().peer_id, peer.id().peer_id);
    node.ferry(&["connect", &peer.addr()]).ok();
    wait_connected(node, peer, &peer_id);
    wait_connected(peer, node, &node_id);
}

#[test]
fn a_left_channel_gets_no_more_posts_even_after_a_restart() {
    let alice = Node::start("alice");
    let mut bob = Node::start("bob");
    connect(&bob, &alice);
    for node in [&alice, &bob] {
        assert!(node.read("general").is_empty());
        assert!(node.read("other").is_empty());
    }
    let before = alice.post("general", "before bob left");
    wait_for_message(&bob, "general", &before.id);

    let reply: LeaveReply = bob.ferry(&["leave", "general", "--json"]).ok().json();
    assert_eq!(
        reply,
        LeaveReply {
            channel: "general".into(),
            left: true
        }
    );
    let again = bob.ferry(&["leave", "general"]).ok().stdout;
    assert!(again.contains("not in #general"), "{again}");
    assert_eq!(channel_names(&bob), ["other"]);

    // Posts in order on one connection: when the marker in "other" is there,
    // the post in "general" would have been too.
    alice.post("general", "after bob left");
    let marker = alice.post("other", "marker after leaving");
    wait_for_message(&bob, "other", &marker.id);
    // Reading a channel you left shows what is stored, and does not join it.
    assert_eq!(ids(&bob.read("general")), [before.id.as_str()]);
    assert_eq!(channel_names(&bob), ["other"]);

    bob.restart();
    connect(&bob, &alice);
    assert_eq!(
        channel_names(&bob),
        ["other"],
        "the leave survives a restart"
    );
    alice.post("general", "after bob restarted");
    let marker = alice.post("other", "marker after the restart");
    wait_for_message(&bob, "other", &marker.id);
    assert_eq!(ids(&bob.read("general")), [before.id.as_str()]);

    // Posting joins again, and history brings what bob missed.
    bob.post("general", "bob is back");
    assert_eq!(channel_names(&bob), ["general", "other"]);
    wait_until("bob to catch up on general", SPREAD_TIMEOUT, || {
        let texts: Vec<String> = bob.read("general").into_iter().map(|m| m.text).collect();
        if texts.len() == 4 {
            Ok(())
        } else {
            Err(format!("{texts:?}"))
        }
    });
}

#[test]
fn leave_refuses_a_bad_name_and_says_when_there_is_nothing_to_leave() {
    let node = Node::start("ana");
    let run = node.ferry(&["leave", "no spaces"]);
    assert!(!run.status.success(), "{run:#?}");
    assert!(run.stderr.contains("invalid channel name"), "{run:#?}");
    let reply: LeaveReply = node.ferry(&["leave", "never", "--json"]).ok().json();
    assert!(!reply.left);
    assert!(channel_names(&node).is_empty());
}
