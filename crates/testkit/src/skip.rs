//! Skipping a test whose precondition is missing, honestly.
//!
//! `cargo test` has no notion of a skip decided at run time: a test that returns
//! early counts as passed, and what it printed is swallowed. So a skip is recorded
//! instead: one line per skipped test in the file named by `FERRY_TEST_SKIPS`
//! (`tests/run-all.sh` sets it and names each skip in its summary line). Under CI
//! (`CI=true`) a missing precondition is a failure: CI installs everything the
//! tests need, so a skip there would hide a broken install.

use std::io::Write;

/// The variable naming the file that skips are appended to.
pub const SKIPS_FILE_VAR: &str = "FERRY_TEST_SKIPS";

/// Whether this run is CI's (`CI=true`, as CI runners set it).
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Records that the current test is skipped for `reason`, which should say how to
/// meet the precondition. The caller returns right after. Under CI it panics
/// instead, naming the missing precondition.
pub fn skip(reason: &str) {
    let test = current_test();
    if is_ci() {
        panic!("{test}: a precondition is missing under CI: {reason}");
    }
    eprintln!("SKIPPED {test}: {reason}");
    if let Some(path) = std::env::var_os(SKIPS_FILE_VAR) {
        let line = format!("{test}\t{}\n", reason.replace(['\n', '\t'], " "));
        // O_APPEND writes of one short line land whole even when tests of several
        // processes record at once.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            panic!("cannot record the skip in {}: {e}", path.to_string_lossy());
        }
    }
}

/// The running test's name: libtest names each test's thread after it.
fn current_test() -> String {
    std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .map_or_else(|| "(unnamed test)".to_owned(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_name_comes_from_the_thread() {
        assert_eq!(
            current_test(),
            "skip::tests::the_test_name_comes_from_the_thread"
        );
    }
}
