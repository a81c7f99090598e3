//! Channel gossip from a hostile peer (`hostile_peer gossip-*`, a real libp2p
//! peer speaking gossipsub and `/ferry/sync/1`) against real `ferry` nodes: a
//! replayed message stays one message, posts dated 2100 hide nothing from a
//! newcomer, a peer's subscriptions make the node join nothing, and under a
//! flood the node still answers and still downloads (figures printed; run
//! with `--nocapture` to read them).

#[path = "../examples/hostile/gossip_report.rs"]
mod gossip_report;
use ferry_testkit::hostile;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferry_node::control::types::{ChannelInfo, GetResult, MessageView, ShareResult};
use ferry_testkit::harness::{Node, SPREAD_TIMEOUT, random_bytes, wait_connected, wait_until};
use gossip_report::GossipReport;

/// How long the hostile peer may take to connect, or to send everything.
const HOSTILE_STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// A running `hostile_peer gossip-*`, killed when dropped.
struct Gossiper {
    child: Child,
    lines: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Gossiper {
    /// Starts `hostile_peer MODE DIR ADDR CHANNEL ARGS...` and waits until it
    /// is connected and the node is in `channel`.
    fn start(mode: &str, node: &Node, channel: &str, args: &[&str]) -> Gossiper {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(hostile::binary())
            .arg(mode)
            .arg(dir.path().join("data"))
            .arg(node.addr())
            .arg(channel)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the hostile peer");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let gossiper = Gossiper {
            child,
            lines,
            _dir: dir,
        };
        gossiper.next_line("connect and see the node in the channel");
        gossiper
    }

    fn next_line(&self, what: &str) -> String {
        self.lines
            .recv_timeout(HOSTILE_STEP_TIMEOUT)
            .unwrap_or_else(|e| panic!("the hostile peer did not {what}: {e}"))
    }

    /// Waits until everything is sent; its report.
    fn report(&self) -> GossipReport {
        let line = self.next_line("report");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad report {line:?}: {e}"))
    }
}

impl Drop for Gossiper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn channels(node: &Node) -> Vec<ChannelInfo> {
    node.ferry(&["channels", "--json"]).ok().json()
}

/// How many messages `node` holds of `channel`, by `ferry channels`.
fn stored_count(node: &Node, channel: &str) -> u64 {
    channels(node)
        .iter()
        .find(|c| c.channel == channel)
        .map_or(0, |c| c.messages)
}

/// Waits until `node` shows the message `id` in `channel`.
fn wait_for_message(node: &Node, channel: &str, id: &str) {
    wait_until(
        &format!("message {id} on {}", node.name),
        SPREAD_TIMEOUT,
        || {
            let messages = node.read(channel);
            if messages.iter().any(|m| m.id == id) {
                Ok(())
            } else {
                Err(format!("{} messages", messages.len()))
            }
        },
    );
}

#[test]
fn a_replayed_message_with_other_bytes_is_stored_once() {
    let node = Node::start("victim");
    assert!(node.read("general").is_empty());
    let hostile = Gossiper::start("gossip-replay", &node, "general", &["100"]);
    let report = hostile.report();
    assert_eq!(report.sent, 101, "{report:?}");
    let marker = report.marker.expect("a marker");
    wait_for_message(&node, "general", &marker);

    let messages = node.read("general");
    let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts.iter().filter(|t| **t == "said once").count(),
        1,
        "one signed message replayed with other bytes must be stored once: {texts:?}"
    );
    assert_eq!(messages.len(), 2, "{texts:?}");
    assert_eq!(stored_count(&node, "general"), 2);
}

#[test]
fn posts_dated_2100_do_not_hide_real_ones_from_a_newcomer() {
    let alice = Node::start("alice");
    let real: Vec<MessageView> = (1..=3)
        .map(|i| alice.post("news", &format!("real post {i}")))
        .collect();
    let hostile = Gossiper::start("gossip-future", &alice, "news", &["5000"]);
    let report = hostile.report();
    let marker = report.marker.expect("a marker");
    // Alice has taken the hostile peer's history answer: she shows its marker,
    // or (a node that keeps posts from the future) holds all 5,000.
    wait_until("alice to take the history answer", SPREAD_TIMEOUT, || {
        let count = stored_count(&alice, "news");
        if count >= 5_003 || alice.read("news").iter().any(|m| m.id == marker) {
            Ok(())
        } else {
            Err(format!("{count} messages"))
        }
    });

    let newcomer = Node::start("newcomer");
    newcomer.ferry(&["connect", &alice.addr()]).ok();
    wait_until(
        "the newcomer's `ferry read news` to show the real posts",
        SPREAD_TIMEOUT,
        || {
            let shown = newcomer.ferry(&["read", "news"]).ok().stdout;
            if real.iter().all(|m| shown.contains(&m.text)) {
                Ok(())
            } else {
                Err(shown.lines().take(5).collect::<Vec<_>>().join("\n"))
            }
        },
    );
    let shown = newcomer.ferry(&["read", "news"]).ok().stdout;
    assert!(!shown.contains("from the future"), "{shown}");
    let at_alice = alice.ferry(&["read", "news"]).ok().stdout;
    for m in &real {
        assert!(
            at_alice.contains(&m.text),
            "alice lost {:?}:\n{at_alice}",
            m.text
        );
    }
}

#[test]
fn a_peer_in_many_channels_makes_the_node_join_none_of_them() {
    let node = Node::start("victim");
    assert!(node.read("general").is_empty());
    let hostile = Gossiper::start("gossip-topics", &node, "general", &["1000"]);
    let report = hostile.report();
    assert_eq!(report.sent, 1000, "{report:?}");
    // The marker comes after every subscription, on the same connection.
    wait_for_message(&node, "general", &report.marker.expect("a marker"));
    let joined: Vec<String> = channels(&node).into_iter().map(|c| c.channel).collect();
    assert_eq!(joined, vec!["general".to_owned()]);
}

/// Latencies of `ferry id` in ms: (median, max, count).
fn summary(mut ms: Vec<u64>) -> (u64, u64, usize) {
    ms.sort_unstable();
    (ms[ms.len() / 2], *ms.last().unwrap(), ms.len())
}

/// How long one `ferry id` on `node` takes, in ms (the CLI's start included).
fn id_latency(node: &Node) -> u64 {
    let t = Instant::now();
    node.ferry(&["id", "--json"]).ok();
    t.elapsed().as_millis() as u64
}

/// Downloads `ticket` to `output` on `node`; MiB/s.
fn download(node: &Node, ticket: &str, output: &Path, expected: &[u8]) -> f64 {
    let t = Instant::now();
    let result: GetResult = node
        .ferry(&["get", ticket, "-o", output.to_str().unwrap(), "--json"])
        .ok()
        .json();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(std::fs::read(output).unwrap(), expected, "{result:?}");
    expected.len() as f64 / (1 << 20) as f64 / secs
}

const FLOOD_RATE: &str = "5000";
const FLOOD_SECONDS: &str = "8";
const FILE_BYTES: usize = 64 << 20;

/// Figures, not a timed assert: `ferry id` latency and a download's
/// throughput on a node under a flood of 5,000 gossip messages a second from
/// one peer, against the same without the flood.
#[test]
fn a_gossip_flood_leaves_the_node_answering_and_downloading() {
    let seeder = Node::start("seeder");
    let victim = Node::start("victim");
    let seeder_id = seeder.id().peer_id;
    victim.ferry(&["connect", &seeder.addr()]).ok();
    wait_connected(&victim, &seeder, &seeder_id);
    assert!(victim.read("general").is_empty());
    let work = tempfile::tempdir().unwrap();
    let share = |name: &str| {
        let bytes = random_bytes(name, FILE_BYTES);
        let path = work.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let shared: ShareResult = seeder
            .ferry(&["share", path.to_str().unwrap(), "--json"])
            .ok()
            .json();
        (shared.ticket, bytes)
    };
    let (quiet_ticket, quiet_bytes) = share("quiet.bin");
    let (flood_ticket, flood_bytes) = share("flood.bin");

    let quiet_ids: Vec<u64> = (0..20).map(|_| id_latency(&victim)).collect();
    let quiet_mib_s = download(
        &victim,
        &quiet_ticket,
        &work.path().join("got-quiet.bin"),
        &quiet_bytes,
    );

    let hostile = Gossiper::start(
        "gossip-flood",
        &victim,
        "general",
        &[FLOOD_RATE, FLOOD_SECONDS],
    );
    // `ferry id` again and again until the flood is over; a download meanwhile.
    let flood_over = AtomicBool::new(false);
    let (flood_ids, flood_mib_s, download_during, report) = std::thread::scope(|scope| {
        let ids = scope.spawn(|| {
            let mut ms = vec![id_latency(&victim)];
            while !flood_over.load(Ordering::Relaxed) {
                ms.push(id_latency(&victim));
            }
            ms
        });
        let mib_s = download(
            &victim,
            &flood_ticket,
            &work.path().join("got-flood.bin"),
            &flood_bytes,
        );
        let ended_first = hostile.lines.try_recv().ok();
        let download_during = ended_first.is_none();
        let line = ended_first.unwrap_or_else(|| hostile.next_line("report"));
        flood_over.store(true, Ordering::Relaxed);
        let report: GossipReport = serde_json::from_str(&line).unwrap();
        (ids.join().unwrap(), mib_s, download_during, report)
    });
    let stored = stored_count(&victim, "general");

    let (q_median, q_max, q_n) = summary(quiet_ids);
    let (f_median, f_max, f_n) = summary(flood_ids);
    println!(
        "flood: {} messages sent in {:.1} s ({} refused by the sender's own queues) at {FLOOD_RATE}/s asked; the node stored {stored}",
        report.sent,
        report.elapsed_ms as f64 / 1000.0,
        report.refused
    );
    println!("ferry id without flood: median {q_median} ms, max {q_max} ms ({q_n} runs)");
    println!("ferry id during flood:  median {f_median} ms, max {f_max} ms ({f_n} runs)");
    println!(
        "download of {} MiB: {quiet_mib_s:.1} MiB/s without flood, {flood_mib_s:.1} MiB/s during it{}",
        FILE_BYTES >> 20,
        if download_during {
            ""
        } else {
            " (it outlasted the flood)"
        }
    );
    assert!(report.sent > 0, "{report:?}");
}
