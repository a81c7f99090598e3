//! Where the `ferry` binary under test is.
//!
//! Cargo tells only the cli crate's own tests (`CARGO_BIN_EXE_ferry`, at compile
//! time), and builds the binary before running them, next to the `deps/`
//! directory that holds the test executables. So the kit finds it there, and
//! `FERRY_BIN` names another one (a test run from elsewhere, or another build).

use std::path::PathBuf;
use std::sync::OnceLock;

/// The variable that names the binary, overriding the one beside the tests.
pub const FERRY_BIN_VAR: &str = "FERRY_BIN";

/// The path of the `ferry` binary the tests run; panics, saying how to get one,
/// when there is none.
pub fn ferry_binary() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = std::env::var_os(FERRY_BIN_VAR)
            .map(PathBuf::from)
            .unwrap_or_else(beside_the_tests);
        assert!(
            path.is_file(),
            "no ferry binary at {}: run the tests with `cargo test -p ferry`, which builds \
             it, or name one in {FERRY_BIN_VAR}",
            path.display()
        );
        path.into_os_string()
            .into_string()
            .expect("the ferry binary's path is UTF-8")
    })
}

/// `target/<profile>/ferry` for a test executable `target/<profile>/deps/NAME-HASH`.
fn beside_the_tests() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable lies in target/<profile>/deps");
    profile_dir.join(format!("ferry{}", std::env::consts::EXE_SUFFIX))
}
