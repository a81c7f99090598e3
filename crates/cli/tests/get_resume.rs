//! `ferry get` interrupted with Ctrl-C (SIGINT) in the middle of a download:
//! the download goes on in the node, and `ferry get` run again follows that
//! same job to a result identical to the shared file. A provider that answers
//! a few requests and then holds the rest (`hostile_peer stall-after`) keeps
//! the download certainly under way when the signal lands; an honest node
//! sharing the same file then lets it finish.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use ferry_node::control::types::{GetResult, JobState, JobStatus};
use ferry_testkit::harness::{Node, SPREAD_TIMEOUT, ferry_binary, random_bytes, wait_until};
use ferry_testkit::hostile::stalling_provider;

/// Large enough that the stalling provider's answers are a small part of it.
const FILE_BYTES: usize = 8 << 20;
/// Chunk-group requests the stalling provider answers: the size probe and two more.
const ANSWERS: usize = 3;
/// The signal Ctrl-C sends (its number on Linux).
const SIGINT: i32 = 2;

fn get_jobs(node: &Node) -> Vec<JobStatus> {
    let all: Vec<JobStatus> = node.ferry(&["jobs", "--json"]).ok().json();
    all.into_iter().filter(|j| j.kind == "get").collect()
}

#[test]
fn get_interrupted_by_ctrl_c_goes_on_in_the_node_and_get_again_follows_it() {
    let work = tempfile::tempdir().unwrap();
    let bytes = random_bytes("resume after ctrl-c", FILE_BYTES);
    let provider = stalling_provider(work.path(), &bytes, ANSWERS);
    let ticket = provider.announced.ticket.clone();
    let id = provider.announced.id.clone();
    let node = Node::start("leecher");
    let output = work.path().join("out.bin");
    let output_arg = output.to_str().unwrap();

    let mut get = Command::new(ferry_binary())
        .arg("--data-dir")
        .arg(node.data_dir())
        .args(["get", &ticket, "-o", output_arg])
        .env_remove("FERRY_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ferry get");
    let running = wait_until("the download to make progress", SPREAD_TIMEOUT, || {
        let jobs = get_jobs(&node);
        jobs.iter()
            .find(|j| j.state == JobState::Running && j.done_bytes > 0)
            .cloned()
            .ok_or_else(|| format!("{jobs:#?}"))
    });
    assert!(running.done_bytes < FILE_BYTES as u64, "{running:#?}");

    // Ctrl-C: the terminal sends SIGINT to `ferry get`.
    let sent = Command::new("kill")
        .args(["-INT", &get.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = wait_until("ferry get to end on SIGINT", SPREAD_TIMEOUT, || {
        get.try_wait()
            .unwrap()
            .ok_or_else(|| "still running".to_owned())
    });
    assert_eq!(status.signal(), Some(SIGINT), "{status:?}");

    // The node goes on with it.
    let jobs = get_jobs(&node);
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    assert_eq!(jobs[0].job, running.job);
    assert_eq!(jobs[0].state, JobState::Running, "{jobs:#?}");
    assert!(!output.exists());

    // The stalling provider goes and an honest node with the same file comes:
    // the running download finds it among the connected peers.
    drop(provider);
    let seeder = Node::start("seeder");
    let shared: serde_json::Value = seeder
        .ferry(&[
            "share",
            work.path().join("big.bin").to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(shared["id"], id.as_str());
    node.ferry(&["connect", &seeder.addr()]).ok();

    // `ferry get` again, with the same ticket and output, follows the job the
    // first one started rather than beginning another.
    let result: GetResult = node
        .ferry(&["get", &ticket, "-o", output_arg, "--json"])
        .ok()
        .json();
    assert_eq!(result.size, FILE_BYTES as u64);
    assert_eq!(std::fs::read(&output).unwrap(), bytes);
    let jobs = get_jobs(&node);
    assert_eq!(jobs.len(), 1, "a second download was started: {jobs:#?}");
    assert_eq!(jobs[0].job, running.job);
    assert_eq!(jobs[0].state, JobState::Done, "{jobs:#?}");
}
