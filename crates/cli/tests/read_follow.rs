//! `ferry read CHANNEL --limit N` prints the newest N messages, oldest first,
//! and `ferry read CHANNEL --follow` keeps running and prints each new message
//! as it arrives, from this node and from a peer.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;

use ferry_node::control::types::MessageView;
use ferry_testkit::harness::{Node, SPREAD_TIMEOUT, ferry_binary, wait_connected};

fn texts(messages: &[MessageView]) -> Vec<&str> {
    messages.iter().map(|m| m.text.as_str()).collect()
}

fn read_json(node: &Node, args: &[&str]) -> Vec<MessageView> {
    let mut all = vec!["read", "general", "--json"];
    all.extend_from_slice(args);
    let run = node.ferry(&all).ok();
    run.stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

/// A running `ferry read general --follow --json` and the lines it printed.
struct Follower {
    child: Child,
    lines: Receiver<String>,
}

impl Follower {
    fn start(node: &Node) -> Follower {
        let mut child = Command::new(ferry_binary())
            .arg("--data-dir")
            .arg(node.data_dir())
            .args(["read", "general", "--follow", "--json", "--limit", "2"])
            .env_remove("FERRY_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ferry read --follow");
        let (send, lines) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
    }

    /// The next message it prints, within the spread timeout.
    #[track_caller]
    fn next(&mut self, what: &str) -> MessageView {
        let line = self
            .lines
            .recv_timeout(SPREAD_TIMEOUT)
            .unwrap_or_else(|e| panic!("no line for {what} ({e})"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn limit_shows_the_newest_messages_oldest_first() {
    let node = Node::start("ana");
    let posted: Vec<MessageView> = (1..=5)
        .map(|n| node.post("general", &format!("message {n}")))
        .collect();
    assert_eq!(texts(&read_json(&node, &[])), texts(&posted));
    assert_eq!(
        texts(&read_json(&node, &["--limit", "2"])),
        ["message 4", "message 5"]
    );
    assert_eq!(
        texts(&read_json(&node, &["-n", "1"])),
        ["message 5"],
        "-n is --limit"
    );
    assert_eq!(read_json(&node, &["--limit", "5000"]).len(), 5);
    // Text output: one line per message, the same ones.
    let text = node.ferry(&["read", "general", "--limit", "3"]).ok().stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (line, n) in lines.iter().zip(3..) {
        assert!(line.ends_with(&format!(": message {n}")), "{text}");
    }
    let zero = node.ferry(&["read", "general", "--limit", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{zero:#?}");
}

#[test]
fn follow_prints_new_messages_as_they_arrive() {
    let ana = Node::start("ana");
    let bo = Node::start("bo");
    let bo_id = bo.id().peer_id;
    ana.ferry(&["connect", &bo.addr()]).ok();
    wait_connected(&ana, &bo, &bo_id);
    for n in 1..=3 {
        ana.post("general", &format!("old {n}"));
    }

    let mut follower = Follower::start(&ana);
    assert_eq!(follower.next("the first of the newest two").text, "old 2");
    assert_eq!(follower.next("the second of the newest two").text, "old 3");

    let own = ana.post("general", "new from ana");
    let seen = follower.next("ana's new message");
    assert_eq!(seen.id, own.id);

    let from_bo = bo.post("general", "new from bo");
    let seen = follower.next("bo's message");
    assert_eq!(seen.id, from_bo.id);
    assert_eq!(seen.author, bo_id);

    // It was still following, not done: nothing ended it but us.
    assert!(
        follower.child.try_wait().unwrap().is_none(),
        "read --follow ended by itself"
    );
}
