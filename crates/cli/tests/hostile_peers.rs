//! Peers that lie: real processes speaking ferry's protocols over real sockets
//! (`examples/hostile_peer.rs`), against real `ferry` nodes. A download must
//! finish correct despite them, drop them, and never write outside its target.

// The harness also serves tests this file does not have (multi_process.rs
// uses all of it).
#[allow(dead_code)]
mod common;
mod hostile;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{Node, Run, wait_connected};
use ferry_node::control::types::GetResult;
use serde::Deserialize;

/// What the hostile peer says about itself on its first line.
#[derive(Deserialize)]
struct Announced {
    peer_id: String,
    addr: String,
    id: String,
    ticket: String,
}

/// A running hostile peer, killed when dropped.
struct Hostile {
    child: Child,
    announced: Announced,
    _dir: tempfile::TempDir,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_hostile(args: &[&str]) -> Hostile {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(hostile::binary())
        .arg(args[0])
        .arg(dir.path().join("data"))
        .args(&args[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the hostile peer");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the hostile peer's announcement");
    let announced =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad announcement {line:?}: {e}"));
    Hostile {
        child,
        announced,
        _dir: dir,
    }
}

fn random_file(dir: &Path, len: usize) -> PathBuf {
    let mut bytes = Vec::with_capacity(len);
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"hostile-peers");
    let mut reader = hasher.finalize_xof();
    bytes.resize(len, 0);
    reader.fill(&mut bytes);
    let path = dir.join("payload.bin");
    std::fs::write(&path, &bytes).unwrap();
    path
}

#[test]
fn a_seeder_sending_corrupt_data_is_dropped_and_the_download_is_correct() {
    let work = tempfile::tempdir().unwrap();
    let file = random_file(work.path(), 24 << 20);
    let honest: Vec<Node> = ["s1", "s2", "s3"].iter().map(|n| Node::start(n)).collect();
    for seeder in &honest {
        seeder
            .ferry(&["share", file.to_str().unwrap(), "--json"])
            .ok();
    }
    let liar = start_hostile(&["corrupt-data", file.to_str().unwrap()]);
    let leecher = Node::start("leecher");
    for seeder in &honest {
        leecher.ferry(&["connect", &seeder.addr()]).ok();
        wait_connected(&leecher, seeder, &seeder.id().peer_id);
    }
    leecher.ferry(&["connect", &liar.announced.addr]).ok();

    let output = work.path().join("fetched.bin");
    let run: Run = leecher
        .ferry(&[
            "get",
            &liar.announced.id,
            "-o",
            output.to_str().unwrap(),
            "--json",
        ])
        .ok();
    let result: GetResult = run.json();

    assert_eq!(
        std::fs::read(&output).unwrap(),
        std::fs::read(&file).unwrap()
    );
    let liar_entry = result
        .providers
        .iter()
        .find(|p| p.peer_id == liar.announced.peer_id)
        .unwrap_or_else(|| panic!("the liar was never asked: {:#?}", result.providers));
    assert!(
        liar_entry.dropped,
        "the liar was not dropped: {liar_entry:?}"
    );
    assert!(
        result
            .providers
            .iter()
            .filter(|p| !p.dropped && p.bytes > 0)
            .count()
            >= 2,
        "honest seeders should share the work: {:#?}",
        result.providers
    );
    assert!(
        leecher.log().contains("fails verification"),
        "the leecher's log says why it dropped the liar"
    );
}

#[test]
fn a_manifest_that_escapes_the_target_is_refused_and_nothing_is_written() {
    let work = tempfile::tempdir().unwrap();
    let liar = start_hostile(&["escaping-manifest"]);
    let leecher = Node::start("leecher");
    let target = work.path().join("inbox").join("download");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();

    let run = leecher.ferry(&[
        "get",
        &liar.announced.ticket,
        "-o",
        target.to_str().unwrap(),
    ]);

    assert!(
        !run.status.success(),
        "a hostile manifest must fail the get: {run:#?}"
    );
    assert!(
        run.stderr.contains("leaves the target") || run.stderr.contains("refused"),
        "the error should say why: {}",
        run.stderr
    );
    assert!(!target.exists(), "nothing is written at the target");
    assert!(!work.path().join("inbox/escaped.txt").exists());
    assert!(!work.path().join("escaped.txt").exists());
    // The node is still fine.
    leecher.ferry(&["id", "--json"]).ok();
}
