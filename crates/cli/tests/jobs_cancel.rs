//! `ferry jobs` and `ferry jobs cancel` against a real download: a provider
//! (`hostile_peer stall-after`) that sends the first few chunk groups and then
//! holds every later request keeps the download running with progress, so the
//! test cancels a transfer that is certainly under way, without timing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use ferry_node::control::types::{BlobEntry, GetResult, JobState, JobStatus};
use ferry_testkit::harness::{Node, SPREAD_TIMEOUT, ferry_binary, random_bytes, wait_until};
use ferry_testkit::hostile::stalling_provider;

/// Large enough that three answered requests are a small part of it.
const FILE_BYTES: usize = 8 << 20;
/// Chunk-group requests the stalling provider answers: the size probe and two more.
const ANSWERS: usize = 3;

fn jobs(node: &Node) -> Vec<JobStatus> {
    node.ferry(&["jobs", "--json"]).ok().json()
}

fn stored(node: &Node, id: &str) -> Option<BlobEntry> {
    let blobs: Vec<BlobEntry> = node.ferry(&["ls", "--json"]).ok().json();
    blobs.into_iter().find(|b| b.id == id)
}

/// Files in the node's data directory whose name holds `id` (a blob's data
/// and outboard are named after it).
fn files_named_after(node: &Node, id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![node.data_dir()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if entry.file_name().to_string_lossy().contains(id) {
                found.push(path);
            }
        }
    }
    found
}

/// Starts `ferry get TICKET -o OUTPUT` in the background (it follows the job
/// until it ends) and waits until `ferry jobs` shows the download with
/// verified bytes; returns the command and that status.
fn start_stalled_get(node: &Node, ticket: &str, output: &Path) -> (Child, JobStatus) {
    let child = Command::new(ferry_binary())
        .arg("--data-dir")
        .arg(node.data_dir())
        .args(["get", ticket, "-o", output.to_str().unwrap(), "--json"])
        .env_remove("FERRY_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferry get");
    let status = wait_until("the download to make progress", SPREAD_TIMEOUT, || {
        let all = jobs(node);
        all.iter()
            .find(|j| j.kind == "get" && j.state == JobState::Running && j.done_bytes > 0)
            .cloned()
            .ok_or_else(|| format!("{all:#?}"))
    });
    (child, status)
}

/// Waits for `child` to end and returns its exit code and stderr.
fn finished(mut child: Child) -> (Option<i32>, String) {
    let status = wait_until("ferry get to end", SPREAD_TIMEOUT, || {
        child
            .try_wait()
            .unwrap()
            .ok_or_else(|| "still running".to_owned())
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

#[test]
fn a_cancelled_download_stops_and_its_partial_data_is_removed() {
    let work = tempfile::tempdir().unwrap();
    let provider = stalling_provider(work.path(), &random_bytes("cancel", FILE_BYTES), ANSWERS);
    let id = provider.announced.id.clone();
    let node = Node::start("leecher");
    let output = work.path().join("out.bin");

    let (get, running) = start_stalled_get(&node, &provider.announced.ticket, &output);
    assert!(running.done_bytes < FILE_BYTES as u64, "{running:#?}");
    let partial = stored(&node, &id).expect("the partial download is in the store");
    assert!(
        !partial.complete && partial.verified_bytes > 0,
        "{partial:#?}"
    );
    assert!(!files_named_after(&node, &id).is_empty());
    let text = node.ferry(&["jobs"]).ok().stdout;
    assert!(
        text.contains("running") && text.contains(&format!("{} ", running.job)),
        "{text}"
    );

    let job = running.job.to_string();
    let cancelled: JobStatus = node.ferry(&["jobs", "cancel", &job, "--json"]).ok().json();
    assert_eq!(cancelled.state, JobState::Cancelled, "{cancelled:#?}");

    // The `ferry get` that followed the job ends, saying why.
    let (code, stderr) = finished(get);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cancelled"), "{stderr}");
    // The job stays listed as cancelled; its partial data is gone, from the
    // store's list and from the disk; nothing was written out.
    let listed = jobs(&node);
    let job_now = listed.iter().find(|j| j.job == running.job).unwrap();
    assert_eq!(job_now.state, JobState::Cancelled, "{listed:#?}");
    let left = stored(&node, &id);
    assert!(left.is_none(), "{left:#?}");
    assert_eq!(files_named_after(&node, &id), Vec::<PathBuf>::new());
    assert!(!output.exists());
    // A cancelled job is not running any more.
    let again = node.ferry(&["jobs", "cancel", &job, "--json"]);
    assert_eq!(again.status.code(), Some(1), "{again:#?}");
    // And one that never existed is "not found".
    let missing = node.ferry(&["jobs", "cancel", "999999"]);
    assert_eq!(missing.status.code(), Some(4), "{missing:#?}");
}

#[test]
fn a_download_cancelled_with_keep_is_resumed_by_the_next_get() {
    let work = tempfile::tempdir().unwrap();
    let bytes = random_bytes("keep", FILE_BYTES);
    let provider = stalling_provider(work.path(), &bytes, ANSWERS);
    let id = provider.announced.id.clone();
    let node = Node::start("leecher");
    let output = work.path().join("out.bin");

    let (get, running) = start_stalled_get(&node, &provider.announced.ticket, &output);
    let job = running.job.to_string();
    let run = node.ferry(&["jobs", "cancel", &job, "--keep"]).ok();
    assert!(run.stdout.contains("kept"), "{run:#?}");
    let (code, stderr) = finished(get);
    assert_eq!(code, Some(1), "{stderr}");
    let kept = stored(&node, &id).expect("the partial data is kept");
    assert!(
        !kept.complete && kept.verified_bytes >= running.done_bytes,
        "{kept:#?}"
    );

    // The stalling provider goes; an honest one shares the same file, and a
    // new get of the same content fetches only what is missing.
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
    let result: GetResult = node
        .ferry(&[
            "get",
            shared["ticket"].as_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(std::fs::read(&output).unwrap(), bytes);
    assert_eq!(result.size, FILE_BYTES as u64);
    assert!(
        result.fetched_bytes <= result.size - kept.verified_bytes,
        "the kept {} bytes were fetched again: {result:#?}",
        kept.verified_bytes
    );
}
