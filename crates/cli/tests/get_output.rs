//! `ferry get TICKET -o DIR/`, as README describes it: the content is written
//! inside DIR under the name the ticket gives it.

use std::process::Command;
use std::time::Duration;

use ferry_node::control::types::{GetResult, ShareResult};
use ferry_testkit::harness::{Node, ferry_binary, random_bytes, run_with_deadline, wait_connected};

/// A download of a few hundred KiB over loopback, in a debug build.
const TIMEOUT: Duration = Duration::from_secs(120);

fn ferry(node: &Node, args: &[&str]) -> ferry_testkit::harness::Run {
    let mut command = Command::new(ferry_binary());
    command.arg("--data-dir").arg(node.data_dir()).args(args);
    run_with_deadline(command, b"", TIMEOUT)
}

#[test]
fn get_with_an_output_ending_in_a_slash_writes_inside_that_folder() {
    let a = Node::start("ana");
    let b = Node::start("bo");
    let work = tempfile::tempdir().unwrap();
    let bytes = random_bytes("get -o DIR/", 300 * 1024);
    let source = work.path().join("field-notes.bin");
    std::fs::write(&source, &bytes).unwrap();
    let shared: ShareResult = ferry(&a, &["share", source.to_str().unwrap(), "--json"])
        .ok()
        .json();
    b.ferry(&["connect", &a.addr()]).ok();
    wait_connected(&b, &a, &a.id().peer_id);

    let inbox = work.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let target = format!("{}/", inbox.display());
    let got: GetResult = ferry(&b, &["get", &shared.ticket, "-o", &target, "--json"])
        .ok()
        .json();
    assert_eq!(got.id, shared.id, "{got:#?}");
    let written = inbox.join("field-notes.bin");
    assert_eq!(
        std::fs::read(&written).unwrap_or_else(|e| panic!("{}: {e}", written.display())),
        bytes,
        "the file inside the folder is not the one shared"
    );
    let entries: Vec<_> = std::fs::read_dir(&inbox).unwrap().collect();
    assert_eq!(entries.len(), 1, "only the file itself is written there");
}
