//! Running the hostile peer's DTN modes against a node, and reading the node's
//! DTN state (shared by `hostile_peers.rs` and `dtn_forgery.rs`, each with
//! `#[path = "hostile/dtn.rs"] mod hostile_dtn;` beside `mod dtn_report`, the
//! example's report format).

use std::process::Command;
use std::time::{Duration, Instant};

use ferry_node::control::types::DtnStatus;

use crate::dtn_report::Report as DtnReport;
pub(crate) use ferry_testkit::harness::tcp_addr;
use ferry_testkit::harness::{Node, run_with_deadline};

/// How long a hostile DTN run may take (the flood is the longest, a few seconds).
pub(crate) const HOSTILE_DTN_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `hostile_peer MODE DATA_DIR ADDR EXTRA…` against `target` to the end.
pub(crate) fn hostile_dtn(mode: &str, target: &Node, extra: &[&str]) -> DtnReport {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(ferry_testkit::hostile::binary());
    command
        .arg(mode)
        .arg(dir.path().join("data"))
        .arg(tcp_addr(target))
        .args(extra);
    let started = Instant::now();
    let run = run_with_deadline(command, b"", HOSTILE_DTN_TIMEOUT);
    assert!(run.status.success(), "the hostile peer failed: {run:#?}");
    let report: DtnReport = run.json();
    println!(
        "{mode}: the hostile peer {} ran for {:.1} s; hung up on after {:?} ms",
        report.peer_id,
        started.elapsed().as_secs_f64(),
        report.hung_up_after_ms
    );
    for sent in &report.sent {
        println!(
            "{mode}: {} ({} bytes): {} in {} ms",
            sent.what,
            sent.bytes,
            match (&sent.answer, &sent.failure) {
                (Some(answer), _) => answer.clone(),
                (None, failure) => format!("no answer ({})", failure.as_deref().unwrap_or("?")),
            },
            sent.ms
        );
    }
    report
}

/// A peer id that no node has: bundles for it stay where they are.
pub(crate) fn absent_peer() -> String {
    ferry_net::libp2p::PeerId::random().to_string()
}

pub(crate) fn dtn_status(node: &Node) -> DtnStatus {
    node.ferry(&["dtn", "status", "--json"]).ok().json()
}

pub(crate) fn dtn_node_id(peer_id: &str) -> String {
    format!("dtn://{peer_id}/")
}
