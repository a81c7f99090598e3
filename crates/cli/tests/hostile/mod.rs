//! Where the test suite's hostile peer (`examples/hostile_peer.rs`) is.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The hostile peer example, built beside the `ferry` binary (`cargo test`
/// builds examples; a filtered run may not have, so build it then).
pub fn binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_ferry"))
        .parent()
        .unwrap()
        .join("examples/hostile_peer");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "ferry", "--example", "hostile_peer"])
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the hostile peer failed");
    }
    path
}
