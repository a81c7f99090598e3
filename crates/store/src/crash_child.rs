//! A real crash for the store's tests: a test runs part of itself in a child
//! process of the test binary, which aborts (no destructors, no flush), and
//! then checks what the store kept.
//!
//! The child is the same test, run again with `--exact`, so no helper needs to
//! be a `#[test]` of its own (one would count as a passed test on every run):
//! the test first calls [`child`], which in the child process does the child's
//! part and aborts, and in the test itself returns at once.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// In the child's environment: the directory it works in.
const ROOT_VAR: &str = "FERRY_STORE_CRASH_CHILD";

/// In the child process (started by [`crash`]): runs `part` on the directory
/// the parent gave; `part` ends by aborting, while what it opened is still
/// open. In the test itself: returns.
pub(crate) fn child(part: fn(&Path) -> !) {
    if let Some(root) = std::env::var_os(ROOT_VAR) {
        part(&PathBuf::from(root));
    }
}

/// Runs the calling test again in a child process, on `root`, with `vars` set
/// too, and waits for it to abort.
pub(crate) fn crash(root: &Path, vars: &[(&str, String)]) {
    let test = std::thread::current()
        .name()
        .expect("libtest names each test's thread after it")
        .to_owned();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &test, "--nocapture", "--test-threads=1"])
        .env(ROOT_VAR, root)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have aborted: {status}");
}
