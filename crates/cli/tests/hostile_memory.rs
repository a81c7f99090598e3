//! Memory a hostile peer can make a node hold (`hostile_peer streams-*`),
//! against a real `ferry` node: many concurrent requests that claim the
//! largest size, send nearly all of it and never finish must cost the node a
//! bounded amount of memory (see `docs/limits.md`), and leave it answering;
//! and one peer keeps only a few connections, each of which could carry as
//! many streams again.

use ferry_testkit::hostile;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use ferry_net::MAX_CONNECTIONS_PER_PEER;
use ferry_node::control::ControlFile;
use ferry_testkit::harness::{Node, run_with_deadline, tcp_addr};
use serde::Deserialize;

/// What `hostile_peer streams-hold` prints.
#[derive(Debug, Deserialize)]
struct HoldReport {
    streams: usize,
    claimed_bytes: usize,
    bytes_sent: u64,
    bodies_sent: usize,
    streams_failed: usize,
    still_connected: bool,
}

/// What `hostile_peer streams-connections` prints.
#[derive(Debug, Deserialize)]
struct ConnectionsReport {
    dialled: usize,
    established: usize,
    open: usize,
}

/// The concurrent requests the attack opens on its one connection: as many
/// as `/ferry/dtn/1` allows on one (`DTN_STREAMS_PER_CONNECTION`).
const STREAMS: usize = 64;

/// How much the node's resident memory may grow under the attack. The
/// bound in `docs/limits.md` for it is the DTN read budget (4 maximal
/// requests, 64.25 MiB) plus yamux's unread windows (at most 128 streams
/// x 256 KiB); this leaves room for the allocator and the rest of the node. The
/// node that read every request whole held 64 x 16 MiB.
const MAX_GROWTH_KIB: u64 = 160 * 1024;

/// A process's resident set, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

#[test]
fn oversize_requests_held_open_on_many_streams_cost_bounded_memory() {
    let node = Node::start("target");
    let pid = ControlFile::read(&node.data_dir())
        .unwrap()
        .expect("the node's control file")
        .pid;
    let before = rss_kib(pid);

    let dir = tempfile::tempdir().unwrap();
    let mut attacker = Command::new(hostile::binary())
        .arg("streams-hold")
        .arg(dir.path().join("data"))
        .arg(tcp_addr(&node))
        .arg(STREAMS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the hostile peer");
    let mut line = String::new();
    BufReader::new(attacker.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the hostile peer's report");
    let during = rss_kib(pid);
    let alive = node.ferry(&["id", "--json"]);
    let _ = attacker.kill();
    let _ = attacker.wait();
    let report: HoldReport =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad report {line:?}: {e}"));

    println!(
        "{STREAMS} streams claiming {} bytes each: the node took in {} MiB ({} bodies whole, {} streams refused); its RSS went from {} MiB to {} MiB (+{} MiB, bound {} MiB)",
        report.claimed_bytes,
        report.bytes_sent >> 20,
        report.bodies_sent,
        report.streams_failed,
        before / 1024,
        during / 1024,
        during.saturating_sub(before) / 1024,
        MAX_GROWTH_KIB / 1024
    );
    assert!(
        alive.status.success(),
        "the node stopped answering: {alive:#?}"
    );
    assert_eq!(report.streams, STREAMS);
    assert!(
        during.saturating_sub(before) <= MAX_GROWTH_KIB,
        "the node's memory grew by {} MiB for one peer's held requests: {report:?}",
        during.saturating_sub(before) / 1024
    );
    assert!(
        report.still_connected,
        "holding streams open is not malformed; the node need not hang up: {report:?}"
    );
}

#[test]
fn one_peer_keeps_at_most_a_few_connections() {
    const DIALS: usize = 12;
    let node = Node::start("target");
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(hostile::binary());
    command
        .arg("streams-connections")
        .arg(dir.path().join("data"))
        .arg(tcp_addr(&node))
        .arg(DIALS.to_string());
    let run = run_with_deadline(command, b"", Duration::from_secs(60));
    assert!(run.status.success(), "the hostile peer failed: {run:#?}");
    let report: ConnectionsReport = run.json();
    println!(
        "{} connections dialled at once by one peer: {} established, {} still open (limit {MAX_CONNECTIONS_PER_PEER})",
        report.dialled, report.established, report.open
    );
    assert_eq!(report.dialled, DIALS);
    assert!(report.open >= 1, "the peer may connect at all: {report:?}");
    assert!(
        report.open <= MAX_CONNECTIONS_PER_PEER as usize,
        "one peer kept {} connections: {report:?}",
        report.open
    );
    node.ferry(&["id", "--json"]).ok();
}
