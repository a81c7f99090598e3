//! Real `ferry` processes on 127.0.0.1: the CLI against a node, and nodes
//! against each other (connect, channel messages, restart, catch-up).

use std::collections::HashSet;
use std::net::TcpListener;
use std::process::Command;

use ferry_node::control::ControlFile;
use ferry_node::control::types::{ApiError, ChannelInfo, FindReply, MessageView, NatInfo};
use ferry_testkit::ferry_binary;
use ferry_testkit::harness::{
    LOOPBACK_FLAGS, Node, SPREAD_TIMEOUT, START_TIMEOUT, ferry_in, run_with_deadline, short_id,
    wait_connected, wait_until,
};

fn ids(messages: &[MessageView]) -> Vec<&str> {
    messages.iter().map(|m| m.id.as_str()).collect()
}

/// The ids of `messages`, after checking that none repeats.
#[track_caller]
fn unique_ids(messages: &[MessageView]) -> HashSet<String> {
    let set: HashSet<String> = messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(
        set.len(),
        messages.len(),
        "duplicate messages: {:#?}",
        ids(messages)
    );
    set
}

/// Waits until `node` has a message with `id` in `channel`.
#[track_caller]
fn wait_for_message(node: &Node, channel: &str, id: &str) -> MessageView {
    wait_until(
        &format!("message {id} to reach {}", node.name),
        SPREAD_TIMEOUT,
        || {
            let messages = node.read(channel);
            messages
                .iter()
                .find(|m| m.id == id)
                .cloned()
                .ok_or_else(|| format!("{:?}", ids(&messages)))
        },
    )
}

#[test]
fn cli_without_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let run = ferry_in(dir.path(), &["peers"], b"");
    // Exit code 3: no node running (it was 1, the code of every error, before
    // `ferry --help` documented a code of its own for this).
    assert_eq!(run.status.code(), Some(3), "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");
    assert!(run.stderr.starts_with("error: "), "{run:#?}");
    assert!(run.stderr.contains("ferry start"), "{run:#?}");
    assert!(
        run.stderr.contains(&dir.path().display().to_string()),
        "the error must name the data directory: {run:#?}"
    );

    // A control.json left by a node that died (kill -9) points at a closed
    // port: the same advice, not a connection error.
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ControlFile {
        url: format!("http://127.0.0.1:{closed_port}"),
        token: "stale".into(),
        pid: 1,
    }
    .write(dir.path())
    .unwrap();
    let stale = ferry_in(dir.path(), &["post", "general", "hello"], b"");
    assert_eq!(stale.status.code(), Some(3), "{stale:#?}");
    assert!(
        stale.stderr.contains("no ferry node is running"),
        "{stale:#?}"
    );
    assert!(stale.stderr.contains("ferry start"), "{stale:#?}");
}

#[test]
fn second_daemon_same_dir_fails() {
    let first = Node::start("first");
    let first_pid = ControlFile::read(&first.data_dir()).unwrap().unwrap().pid;

    let mut second = Command::new(ferry_binary());
    second
        .arg("--data-dir")
        .arg(first.data_dir())
        .arg("start")
        .args(LOOPBACK_FLAGS);
    let run = run_with_deadline(second, b"", START_TIMEOUT);
    assert!(!run.status.success(), "{run:#?}");
    assert!(run.stderr.contains("already running"), "{run:#?}");

    // The first node is untouched: its control.json is still its own.
    assert_eq!(
        ControlFile::read(&first.data_dir()).unwrap().unwrap().pid,
        first_pid
    );
    assert_eq!(first.id().name, "first");
}

#[test]
fn bad_multiaddr() {
    let node = Node::start("solo");

    let run = node.ferry(&["connect", "not-an-addr"]);
    assert!(!run.status.success(), "{run:#?}");
    assert!(run.stderr.starts_with("error: "), "{run:#?}");
    assert!(
        run.stderr.contains("not-an-addr"),
        "the error must quote the input: {run:#?}"
    );

    // A well-formed address where nobody listens fails too, and in bounded time.
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("/ip4/127.0.0.1/tcp/{closed_port}");
    let run = node.ferry(&["connect", &unreachable]);
    assert!(!run.status.success(), "{run:#?}");
    assert!(run.stderr.starts_with("error: "), "{run:#?}");

    // The node shrugged both off.
    assert_eq!(node.id().name, "solo");

    let dir = tempfile::tempdir().unwrap();
    let mut start = Command::new(ferry_binary());
    start.arg("--data-dir").arg(dir.path()).args([
        "start",
        "--no-mdns",
        "--no-beacon",
        "--no-upnp",
        "--listen",
        "garbage",
    ]);
    let run = run_with_deadline(start, b"", START_TIMEOUT);
    assert!(!run.status.success(), "{run:#?}");
    assert!(run.stderr.contains("garbage"), "{run:#?}");
    assert!(run.stderr.contains("multiaddr"), "{run:#?}");
}

#[test]
fn oversize_post_refused() {
    let node = Node::start("poster");

    // 65,536 characters but 65,537 bytes: the limit counts bytes.
    let too_long = format!("{}é", "a".repeat(64 * 1024 - 1));
    assert_eq!(too_long.len(), 64 * 1024 + 1);
    let run = node.ferry_stdin(&["post", "big", "-"], too_long.as_bytes());
    assert_eq!(run.status.code(), Some(1), "{run:#?}");
    assert!(
        run.stderr.contains("65536"),
        "the error must give the limit: {run:#?}"
    );
    assert!(node.read("big").is_empty(), "nothing may be posted");

    // The node enforces the limit itself too, for clients other than this CLI.
    let control = ControlFile::read(&node.data_dir()).unwrap().unwrap();
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .build(),
    );
    let mut response = agent
        .post(format!("{}/v1/channels/big/messages", control.url))
        .header("Authorization", format!("Bearer {}", control.token))
        .send_json(serde_json::json!({ "text": too_long }))
        .unwrap();
    assert!(
        response.status().is_client_error(),
        "{:?}",
        response.status()
    );
    let error: ApiError = response.body_mut().read_json().unwrap();
    assert!(
        error.error.contains("65536") || error.error.contains("64 KiB"),
        "{error:?}"
    );
    assert!(node.read("big").is_empty(), "nothing may be posted");

    let just_fits = "b".repeat(64 * 1024);
    let posted: MessageView = node
        .ferry_stdin(&["post", "big", "-", "--json"], just_fits.as_bytes())
        .ok()
        .json();
    assert_eq!(posted.text, just_fits);
    let stored = node.read("big");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, posted.id);
    assert_eq!(stored[0].text.len(), 64 * 1024);
}

#[test]
fn three_nodes_chat_over_loopback() {
    let a = Node::start("alice");
    let b = Node::start("bob");
    let c = Node::start("carol");
    let (a_id, b_id, c_id) = (a.id().peer_id, b.id().peer_id, c.id().peer_id);

    let a_addr = a.addr();
    for joiner in [&b, &c] {
        let run = joiner.ferry(&["connect", &a_addr]).ok();
        assert!(
            run.stdout.contains(&a_id),
            "connect must print the peer it reached: {run:#?}"
        );
    }
    wait_connected(&a, &b, &b_id);
    wait_connected(&a, &c, &c_id);
    wait_connected(&b, &a, &a_id);
    wait_connected(&c, &a, &a_id);
    wait_until("bob to learn alice's name", SPREAD_TIMEOUT, || {
        let peers = b.peers();
        match peers.iter().find(|p| p.peer_id == a_id) {
            Some(p) if p.name.as_deref() == Some("alice") => Ok(()),
            _ => Err(format!("{peers:#?}")),
        }
    });

    // Everyone opens the channel before the first post, as people in a chat do.
    for node in [&a, &b, &c] {
        assert!(node.read("general").is_empty());
    }

    let hello = a.post("general", "hello from alice");
    assert_eq!(hello.author, a_id);
    assert_eq!(hello.author_name, "alice");
    for node in [&b, &c] {
        let got = wait_for_message(node, "general", &hello.id);
        assert_eq!(got.text, "hello from alice");
        assert_eq!(got.author, a_id);
        assert_eq!(got.author_name, "alice");
        assert_eq!(got.channel, "general");
    }

    let reply = c.post("general", "carol here");
    for node in [&a, &b] {
        let got = wait_for_message(node, "general", &reply.id);
        assert_eq!(got.text, "carol here");
        assert_eq!(got.author, c_id);
        assert_eq!(got.author_name, "carol");
    }

    // The human view shows who wrote what, with the author's shortened id.
    let text = b.ferry(&["read", "general"]).ok().stdout;
    let expected = [
        format!("alice ({}): hello from alice", short_id(&a_id)),
        format!("carol ({}): carol here", short_id(&c_id)),
    ];
    for line in &expected {
        assert!(text.contains(line.as_str()), "missing {line:?} in:\n{text}");
    }
    assert!(text.lines().all(|line| line.starts_with('[')), "{text}");

    for node in [&a, &b, &c] {
        let messages = node.read("general");
        assert_eq!(
            unique_ids(&messages),
            unique_ids(&[hello.clone(), reply.clone()])
        );
        let channels: Vec<ChannelInfo> = node.ferry(&["channels", "--json"]).ok().json();
        let general = channels.iter().find(|ch| ch.channel == "general");
        assert_eq!(general.map(|ch| ch.messages), Some(2), "{channels:#?}");
    }
}

#[test]
fn restart_keeps_id_and_history_and_catches_up() {
    let a = Node::start("alice");
    let mut c = Node::start("carol");
    let a_id = a.id().peer_id;
    let c_id = c.id().peer_id;
    c.ferry(&["connect", &a.addr()]).ok();
    wait_connected(&c, &a, &a_id);

    let before = [a.post("news", "before 1"), c.post("news", "before 2")];
    for message in &before {
        wait_for_message(&a, "news", &message.id);
        wait_for_message(&c, "news", &message.id);
    }

    c.kill();
    // The dead node left its control.json; the CLI still gives the right advice.
    let run = c.ferry(&["peers"]);
    assert_eq!(run.status.code(), Some(3), "{run:#?}");
    assert!(run.stderr.contains("ferry start"), "{run:#?}");

    let missed = [
        a.post("news", "while away 1"),
        a.post("news", "while away 2"),
    ];

    c.restart();
    assert_eq!(c.id().peer_id, c_id, "a restart must keep the peer id");
    let old = unique_ids(&c.read("news"));
    for message in &before {
        assert!(
            old.contains(&message.id),
            "lost {message:?} across the restart"
        );
    }

    // The node redials the peers it remembers, by itself.
    wait_connected(&c, &a, &a_id);

    for message in &missed {
        let got = wait_for_message(&c, "news", &message.id);
        assert_eq!(&got.text, &message.text);
    }
    let expected = unique_ids(&[
        before[0].clone(),
        before[1].clone(),
        missed[0].clone(),
        missed[1].clone(),
    ]);
    let messages = c.read("news");
    assert_eq!(unique_ids(&messages), expected);
    // Connecting again (a no-op, or another catch-up round, depending on the
    // node) must not bring the same messages twice. A message alice posts
    // after the connect, once carol has it, shows that what the connect set
    // off has reached carol's store too.
    c.ferry(&["connect", &a.addr()]).ok();
    let after = a.post("news", "after connecting again");
    wait_for_message(&c, "news", &after.id);
    let again = c.read("news");
    assert_eq!(again.len(), expected.len() + 1, "{:#?}", ids(&again));
    let mut expected = expected;
    expected.insert(after.id);
    assert_eq!(unique_ids(&again), expected);
}

#[test]
fn late_joiner_gets_history() {
    let a = Node::start("alice");
    let texts: Vec<String> = (1..=20).map(|i| format!("message {i:02}")).collect();
    let posted: Vec<MessageView> = texts.iter().map(|text| a.post("history", text)).collect();
    let expected = unique_ids(&posted);

    let d = Node::start("dave");
    d.ferry(&["connect", &a.addr()]).ok();
    let messages = wait_until("dave to have all 20 messages", SPREAD_TIMEOUT, || {
        let messages = d.read("history");
        if messages.len() >= expected.len() {
            Ok(messages)
        } else {
            Err(format!("{} messages", messages.len()))
        }
    });
    assert_eq!(unique_ids(&messages), expected);
    let got: HashSet<&str> = messages.iter().map(|m| m.text.as_str()).collect();
    let want: HashSet<&str> = texts.iter().map(String::as_str).collect();
    assert_eq!(got, want);
    // The default read is oldest first by author time.
    let mut sorted = messages.clone();
    sorted.sort_by_key(|m| m.timestamp_ms);
    assert_eq!(ids(&messages), ids(&sorted));
}

/// `ferry nat` and `ferry find` against nodes on loopback: a lone node reports
/// itself unreachable-so-far and a DHT client; find refuses a bad id, its own id
/// and an id nobody has (in bounded time); a peer connected over loopback is
/// found at once and shown as `lan`.
#[test]
fn nat_and_find_over_loopback() {
    let a = Node::start("ana");
    let nat: NatInfo = a.ferry(&["nat", "--json"]).ok().json();
    assert_eq!(nat.dht_mode, "client", "{nat:#?}");
    assert!(!nat.relay_server, "{nat:#?}");
    assert!(nat.relays.is_empty() && nat.peers.is_empty(), "{nat:#?}");
    let human = a.ferry(&["nat"]).ok();
    for part in [
        "reachability",
        "mapping",
        "DHT mode",
        "relay server",
        "connected peers",
    ] {
        assert!(human.stdout.contains(part), "{part} missing: {human:#?}");
    }

    let me = a.id().peer_id;
    for (bad, why) in [("not-a-peer-id", "malformed"), (me.as_str(), "own id")] {
        let run = a.ferry(&["find", bad]);
        assert!(!run.status.success(), "find of a {why}: {run:#?}");
        assert!(run.stderr.starts_with("error: "), "{why}: {run:#?}");
    }
    let nobody = Node::start("nobody");
    let nobody_id = nobody.id().peer_id;
    drop(nobody);
    let started = std::time::Instant::now();
    let run = a.ferry(&["find", &nobody_id]);
    assert!(!run.status.success(), "found a node that is gone: {run:#?}");
    assert!(run.stderr.starts_with("error: "), "{run:#?}");
    println!(
        "find of an unknown id failed in {:.2} s: {}",
        started.elapsed().as_secs_f64(),
        run.stderr.trim()
    );

    let b = Node::start("bo");
    let b_id = b.id().peer_id;
    a.ferry(&["connect", &b.addr()]).ok();
    let found: FindReply = a.ferry(&["find", &b_id, "--json"]).ok().json();
    assert_eq!(found.peer_id, b_id, "{found:#?}");
    assert_eq!(found.connection, "lan", "{found:#?}");
    let human = a.ferry(&["find", &b_id]).ok();
    assert!(human.stdout.contains(&b_id), "{human:#?}");
    assert!(human.stdout.contains("on the LAN"), "{human:#?}");
    let nat: NatInfo = a.ferry(&["nat", "--json"]).ok().json();
    let path = nat.peers.iter().find(|p| p.peer_id == b_id);
    assert_eq!(path.map(|p| p.connection.as_str()), Some("lan"), "{nat:#?}");
}

/// The config.toml example in the README is one the node accepts (the file
/// refuses unknown keys, so a renamed key in either place fails here).
#[test]
fn readme_config_example_is_accepted() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("read README.md");
    let example = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README.md has a ```toml block");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), example).unwrap();
    let config = ferry_node::config::ConfigFile::load(dir.path())
        .unwrap_or_else(|e| panic!("the README's config.toml example is refused: {e:#}"));
    assert!(config.bootstrap.is_some_and(|b| !b.is_empty()), "{example}");
    assert!(config.relay_max_circuit_bytes.is_some(), "{example}");
}
