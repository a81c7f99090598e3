//! The test suite's hostile peer (`crates/cli/examples/hostile_peer.rs`): where
//! it is, and starting it in a mode.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde::Deserialize;

use crate::binary::ferry_binary;

/// The hostile peer example, built beside the `ferry` binary (`cargo test`
/// builds examples; a filtered run may not have, so build it then).
pub fn binary() -> PathBuf {
    let path = Path::new(ferry_binary())
        .parent()
        .expect("the ferry binary lies in a directory")
        .join(format!(
            "examples/hostile_peer{}",
            std::env::consts::EXE_SUFFIX
        ));
    if !path.exists() {
        // Cargo names itself in CARGO for the tests it runs.
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "ferry", "--example", "hostile_peer"])
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the hostile peer failed");
    }
    path
}

/// What the hostile peer says about itself on its first line.
#[derive(Deserialize)]
pub struct Announced {
    pub peer_id: String,
    pub addr: String,
    pub id: String,
    pub ticket: String,
}

/// A running hostile peer, killed when dropped.
pub struct Hostile {
    child: Child,
    pub announced: Announced,
    _dir: tempfile::TempDir,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A provider of `bytes` (written to `dir/big.bin`) that answers the first
/// `answers` blob requests and holds every later one unanswered
/// (`hostile_peer stall-after`): a download from it starts, then stalls.
pub fn stalling_provider(dir: &Path, bytes: &[u8], answers: usize) -> Hostile {
    let file = dir.join("big.bin");
    std::fs::write(&file, bytes).unwrap();
    start_hostile(&["stall-after", file.to_str().unwrap(), &answers.to_string()])
}

/// Starts `hostile_peer MODE DATA_DIR ARGS…` (`args[0]` is the mode) and
/// reads its announcement.
pub fn start_hostile(args: &[&str]) -> Hostile {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary())
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
