//! A real `ferry` node on a small disk of its own (a tmpfs in a private mount
//! namespace, see `ferry_testkit::lab::mountns`; needs root): the disk filled up under it,
//! then freed. Writes are refused with a clear error and one ERROR line, the
//! node says `full`, and once space is free it works again without a restart,
//! with everything stored before still there. A download larger than the free
//! space is refused before anything is written, and a `kill -9` on a full disk
//! loses nothing. Providers and fetchers on the normal disk use the loopback
//! harness (`ferry_testkit::harness`): discovery off, 127.0.0.1 only.

// The harnesses are shared with other test files, whose helpers these tests
// do not all need.
use ferry_testkit::lab;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferry_node::control::ControlFile;
use ferry_node::control::types::{
    DtnSendReply, DtnStatus, GetResult, MessageView, ShareResult, StorageInfo,
};
use ferry_testkit::harness::{
    Api, LOOPBACK_FLAGS, Node, Run, START_TIMEOUT, ferry_binary, random_bytes, run_with_deadline,
    wait_until,
};
use lab::mountns::SmallDisk;
use tempfile::TempDir;

/// A CLI run may move a few MiB; none should take this long.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// A reopen after a failure waits 8 s at most; more is a node that did not
/// recover.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// The words of the store's one ERROR line per failure episode.
const EPISODE_LINE: &str = "storage failure:";

/// A `ferry start` whose data directory is on a [`SmallDisk`]; every CLI run
/// goes through the disk's namespace too (paths given to it are inside it).
struct SmallNode {
    name: String,
    /// The log (on the normal disk, so it can be written when the small one is full).
    work: TempDir,
    child: Option<Child>,
    // Declared last: the node is killed before its disk goes.
    disk: SmallDisk,
}

impl SmallNode {
    fn start(name: &str, size_mib: u64, config: &str) -> SmallNode {
        let work = tempfile::Builder::new()
            .prefix(&format!("ferry-{name}-"))
            .tempdir()
            .unwrap();
        let disk = SmallDisk::mount(&work.path().join("disk"), size_mib);
        let mut node = SmallNode {
            name: name.to_owned(),
            work,
            child: None,
            disk,
        };
        let data = node.disk.outside(&node.data_dir());
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("config.toml"), config).unwrap();
        node.spawn();
        node
    }

    fn data_dir(&self) -> PathBuf {
        self.disk.dir.join("data")
    }

    /// A path on the small disk, as the node and its CLI see it.
    fn on_disk(&self, name: &str) -> PathBuf {
        self.disk.dir.join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.work.path().join("node.log")).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.work.path().join("node.log"))
            .unwrap();
        let child = self
            .disk
            .command(ferry_binary())
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("start")
            .args(["--name", &self.name])
            .args(LOOPBACK_FLAGS)
            .env_remove("FERRY_DATA_DIR")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn ferry start");
        // nsenter execs ferry: the child's pid is the node's.
        let pid = child.id();
        self.child = Some(child);
        let control_dir = self.disk.outside(&self.data_dir());
        wait_until(&format!("{} to start", self.name), START_TIMEOUT, || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("{} exited: {status}; log:\n{}", self.name, self.log());
            }
            match ControlFile::read(&control_dir) {
                Ok(Some(control)) if control.pid == pid => {}
                other => return Err(format!("control.json: {other:?}")),
            }
            let run = self.ferry(&["id", "--json"]);
            if run.status.success() {
                Ok(())
            } else {
                Err(run.stderr)
            }
        });
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn ferry(&self, args: &[&str]) -> Run {
        let mut command: Command = self.disk.command(ferry_binary());
        command.arg("--data-dir").arg(self.data_dir()).args(args);
        run_with_deadline(command, b"", COMMAND_TIMEOUT)
    }

    fn storage(&self) -> StorageInfo {
        let id: ferry_node::control::types::IdInfo = self.ferry(&["id", "--json"]).ok().json();
        id.storage
    }

    fn post(&self, text: &str) -> Run {
        self.ferry(&["post", "general", text, "--json"])
    }

    fn read(&self) -> Vec<String> {
        let run = self
            .ferry(&["read", "general", "--json", "--limit", "5000"])
            .ok();
        run.stdout
            .lines()
            .map(|line| serde_json::from_str::<MessageView>(line).unwrap().text)
            .collect()
    }

    fn addr(&self) -> String {
        let id: ferry_node::control::types::IdInfo = self.ferry(&["id", "--json"]).ok().json();
        id.listen_addrs[0].clone()
    }

    /// Writes `bytes` to a file on the small disk and shares it (copied into the store).
    fn share_bytes(&self, name: &str, bytes: &[u8]) -> ShareResult {
        let path = self.on_disk(name);
        std::fs::write(self.disk.outside(&path), bytes).unwrap();
        self.ferry(&["share", path.to_str().unwrap(), "--json"])
            .ok()
            .json()
    }

    fn get(&self, ticket: &str, name: &str) -> Run {
        let out = self.on_disk(name);
        self.ferry(&["get", ticket, "-o", out.to_str().unwrap(), "--json"])
    }

    fn dtn_send(&self, to: &str, text: &str) -> Run {
        self.ferry(&["dtn", "send", to, text, "--json"])
    }

    fn held_bundles(&self) -> Vec<String> {
        let status: DtnStatus = self.ferry(&["dtn", "status", "--json"]).ok().json();
        status.bundles.into_iter().map(|b| b.id).collect()
    }

    fn episodes(&self) -> usize {
        self.log().matches(EPISODE_LINE).count()
    }

    fn connect(&self, peer: &Node) {
        self.ferry(&["connect", &peer.addr()]).ok();
        let peer_id = peer.id().peer_id;
        wait_until(
            "the small node to connect",
            ferry_testkit::harness::SPREAD_TIMEOUT,
            || {
                let run = self.ferry(&["peers", "--json"]).ok();
                let peers: Vec<ferry_node::control::types::PeerInfo> = run.json();
                if peers.iter().any(|p| p.peer_id == peer_id && p.connected) {
                    Ok(())
                } else {
                    Err(run.stdout)
                }
            },
        );
    }
}

impl Drop for SmallNode {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("----- log of {} -----\n{}", self.name, self.log());
        }
    }
}

fn b3(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// A provider on the normal disk sharing `bytes` as `name`.
fn shared_by(node: &Node, dir: &Path, name: &str, bytes: &[u8]) -> ShareResult {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    node.ferry(&["share", path.to_str().unwrap(), "--json"])
        .ok()
        .json()
}

/// [`shared_by`], its ticket.
fn share_on(node: &Node, dir: &Path, name: &str, bytes: &[u8]) -> String {
    shared_by(node, dir, name, bytes).ticket
}

/// Posts until a post fails (the store's free pages run out); returns its run.
#[track_caller]
fn post_until_refused(node: &SmallNode) -> Run {
    let text = "x".repeat(8 << 10);
    for n in 0..500 {
        let run = node.post(&format!("on a full disk {n}: {text}"));
        if !run.status.success() {
            return run;
        }
    }
    panic!("500 posts of 8 KiB all succeeded on a full disk");
}

/// A peer id that never connects: a bundle to it stays held.
fn faraway_peer() -> String {
    Node::start("faraway").id().peer_id
}

#[test]
fn a_full_disk_refuses_writes_loudly_and_the_node_recovers_once_space_is_freed() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let far = faraway_peer();
    let provider = Node::start("provider");
    let files = tempfile::tempdir().unwrap();
    let a = random_bytes("a", 3 << 20);
    let b = random_bytes("b", 2 << 20);
    let ticket_a = share_on(&provider, files.path(), "a.bin", &a);
    let ticket_b = share_on(&provider, files.path(), "b.bin", &b);
    // No reserve: the writes reach the database and fail there, as they do
    // when another program fills the disk.
    let small = SmallNode::start("small", 64, "storage_reserve_mib = 0\n");
    small.connect(&provider);

    // Before: a download, a shared file, messages, a held bundle.
    small.get(&ticket_a, "a.bin").ok();
    let mine = random_bytes("mine", 1 << 20);
    let shared = small.share_bytes("mine.bin", &mine);
    for n in 0..3 {
        small.post(&format!("before {n}")).ok();
    }
    let sent: DtnSendReply = small.dtn_send(&far, "held before").ok().json();
    assert_eq!(small.storage().state, "ok");
    assert_eq!(small.episodes(), 0);
    // A file to share once the disk is full (it cannot be written then).
    let later = random_bytes("later", 1 << 20);
    let later_path = small.on_disk("later.bin");
    std::fs::write(small.disk.outside(&later_path), &later).unwrap();
    let share_later = ["share", later_path.to_str().unwrap(), "--json"];

    // The disk fills up under the node.
    let filled = small.disk.fill("filler");
    assert!(filled > 0 && small.disk.free_bytes() < 64 << 10);
    let refused = post_until_refused(&small);
    assert!(
        refused.stderr.contains("cannot store the message")
            && (refused.stderr.contains("space") || refused.stderr.contains("database")),
        "unclear refusal: {refused:?}"
    );
    for n in 0..3 {
        assert!(!small.post(&format!("refused {n}")).status.success());
    }
    let refused = small.dtn_send(&far, "refused");
    assert!(
        !refused.status.success() && refused.stderr.contains("not enough free space"),
        "{refused:?}"
    );
    let refused = small.get(&ticket_b, "b.bin");
    assert!(
        !refused.status.success() && refused.stderr.contains("free some space"),
        "{refused:?}"
    );
    let refused = small.ferry(&share_later);
    assert!(
        !refused.status.success() && refused.stderr.contains("not enough free space for sharing"),
        "{refused:?}"
    );
    let storage = small.storage();
    assert_eq!(storage.state, "full", "{storage:?}");
    assert!(storage.problem.is_some(), "{storage:?}");
    assert_eq!(
        small.episodes(),
        1,
        "one ERROR line per episode, not per write"
    );
    assert!(small.log().contains("ERROR"), "{}", small.log());

    // Space is freed: the node works again, without a restart.
    small.disk.unfill("filler");
    wait_until("a post to succeed again", RECOVERY_TIMEOUT, || {
        let run = small.post("after");
        if run.status.success() {
            Ok(())
        } else {
            Err(run.stderr)
        }
    });
    small.dtn_send(&far, "held after").ok();
    let shared_later: ShareResult = small.ferry(&share_later).ok().json();
    assert_eq!(shared_later.id, b3(&later));
    small.get(&ticket_b, "b.bin").ok();
    assert_eq!(
        b3(&std::fs::read(small.disk.outside(&small.on_disk("b.bin"))).unwrap()),
        b3(&b)
    );
    assert_eq!(small.storage().state, "ok");
    assert_eq!(small.episodes(), 1);
    assert!(small.log().contains("storage works again"));

    // Everything stored before is still there.
    let texts = small.read();
    for n in 0..3 {
        assert!(texts.contains(&format!("before {n}")), "{texts:?}");
    }
    assert!(texts.contains(&"after".to_owned()), "{texts:?}");
    assert!(!texts.iter().any(|t| t.starts_with("refused")), "{texts:?}");
    let held = small.held_bundles();
    assert!(held.contains(&sent.id), "{held:?}");
    assert_eq!(held.len(), 2, "{held:?}");
    assert_eq!(
        b3(&std::fs::read(small.disk.outside(&small.on_disk("a.bin"))).unwrap()),
        b3(&a)
    );
    let fetched = files.path().join("mine.bin");
    provider
        .ferry(&["get", &shared.ticket, "-o", fetched.to_str().unwrap()])
        .ok();
    assert_eq!(b3(&std::fs::read(&fetched).unwrap()), b3(&mine));
}

#[test]
fn a_download_larger_than_the_free_space_is_refused_up_front_with_the_numbers() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let provider = Node::start("provider");
    let files = tempfile::tempdir().unwrap();
    let big = random_bytes("big", 60 << 20);
    let ticket = share_on(&provider, files.path(), "big.bin", &big);
    let small = SmallNode::start("small", 64, "storage_reserve_mib = 8\n");
    small.connect(&provider);
    let free_before = small.disk.free_bytes();

    let refused = small.get(&ticket, "big.bin");
    assert!(!refused.status.success(), "{refused:?}");
    let text = &refused.stderr;
    assert!(
        text.contains("not enough free space")
            && text.contains("it needs 60.2 MiB")
            && text.contains("are free")
            && text.contains("keeps 8.0 MiB"),
        "the refusal should give the numbers: {text}"
    );
    // Nothing of it was written.
    let free_after = small.disk.free_bytes();
    assert!(
        free_after + (1 << 20) > free_before,
        "{free_before} bytes free before, {free_after} after"
    );
    assert!(!small.disk.outside(&small.on_disk("big.bin")).exists());
    // Too big for the disk is no failure of the disk: the node carries on.
    assert_eq!(small.storage().state, "ok");
    assert_eq!(small.episodes(), 0);
    small.post("still fine").ok();
}

#[test]
fn a_download_cut_short_by_a_full_disk_fails_clearly_and_resumes_intact_once_space_is_freed() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let provider = Node::start("provider");
    let files = tempfile::tempdir().unwrap();
    let bytes = random_bytes("cut short", 48 << 20);
    let size = bytes.len() as u64;
    let shared = shared_by(&provider, files.path(), "cut.bin", &bytes);
    let small = SmallNode::start("small", 96, "storage_reserve_mib = 0\n");
    small.connect(&provider);
    // The API straight, not a CLI run per look: the download is quick.
    let api = Api::at(&small.disk.outside(&small.data_dir()));

    std::thread::scope(|scope| {
        let get = scope.spawn(|| small.get(&shared.ticket, "cut.bin"));
        // Something else fills the disk once a quarter has arrived.
        let deadline = std::time::Instant::now() + COMMAND_TIMEOUT;
        loop {
            let verified = api
                .blobs()
                .iter()
                .find(|blob| blob.id == shared.id)
                .map_or(0, |blob| blob.verified_bytes);
            if verified * 4 >= size {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the download never started"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        small.disk.fill("filler");
        let run = get.join().unwrap();
        assert!(
            !run.status.success(),
            "the download finished before the disk filled up: {run:?}"
        );
        assert!(
            run.stderr.contains("cannot store the download") && run.stderr.contains("space"),
            "unclear failure: {run:?}"
        );
    });
    assert_eq!(small.storage().state, "full");

    small.disk.unfill("filler");
    let resumed: GetResult = wait_until("the download to succeed", RECOVERY_TIMEOUT, || {
        let run = small.get(&shared.ticket, "cut.bin");
        if run.status.success() {
            Ok(run.json())
        } else {
            Err(run.stderr)
        }
    });
    assert_eq!(resumed.size, size);
    let got = std::fs::read(small.disk.outside(&small.on_disk("cut.bin"))).unwrap();
    assert_eq!(
        b3(&got),
        b3(&bytes),
        "what was written before the disk filled is sound"
    );
    assert_eq!(small.storage().state, "ok");
}

#[test]
fn kill_9_on_a_full_disk_loses_nothing_stored_before() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let far = faraway_peer();
    let fetcher = Node::start("fetcher");
    let mut small = SmallNode::start("small", 48, "storage_reserve_mib = 0\n");
    let mine = random_bytes("kept", 2 << 20);
    let shared = small.share_bytes("kept.bin", &mine);
    for n in 0..50 {
        small.post(&format!("kept {n}")).ok();
    }
    let sent: DtnSendReply = small.dtn_send(&far, "kept bundle").ok().json();

    small.disk.fill("filler");
    post_until_refused(&small);
    small.kill9();
    small.disk.unfill("filler");
    small.spawn();

    let texts = small.read();
    for n in 0..50 {
        assert!(texts.contains(&format!("kept {n}")), "{texts:?}");
    }
    assert!(small.held_bundles().contains(&sent.id));
    small.post("after the restart").ok();
    let out = TempDir::new().unwrap();
    let fetched = out.path().join("kept.bin");
    fetcher.ferry(&["connect", &small.addr()]).ok();
    fetcher
        .ferry(&["get", &shared.ticket, "-o", fetched.to_str().unwrap()])
        .ok();
    assert_eq!(b3(&std::fs::read(&fetched).unwrap()), b3(&mine));
}

/// The DTN inbox's own quota, on the normal disk (no root needed): bundles
/// beyond it are refused, so they stay with their sender unacknowledged.
#[test]
fn the_dtn_inbox_refuses_bundles_beyond_its_quota_and_the_sender_keeps_them() {
    let town = Node::start_with_config("town", "dtn_inbox_max_bundles = 2\n");
    let village = Node::start("village");
    let town_id = town.id().peer_id;
    for n in 0..3 {
        village
            .ferry(&["dtn", "send", &town_id, &format!("letter {n}"), "--json"])
            .ok();
    }
    village.ferry(&["connect", &town.addr()]).ok();
    let (held, inbox) = wait_until(
        "two letters delivered and acknowledged, one refused and still held",
        ferry_testkit::harness::SPREAD_TIMEOUT,
        || {
            let inbox: Vec<ferry_node::control::types::InboxItem> =
                town.ferry(&["dtn", "inbox", "--json"]).ok().json();
            let town_status: DtnStatus = town.ferry(&["dtn", "status", "--json"]).ok().json();
            let village_status: DtnStatus = village.ferry(&["dtn", "status", "--json"]).ok().json();
            if inbox.len() == 2 && village_status.bundles.len() == 1 && town_status.refused > 0 {
                Ok((village_status.bundles, inbox))
            } else {
                Err(format!(
                    "inbox {inbox:?}, held by the village {:?}, refused by the town {}",
                    village_status.bundles, town_status.refused
                ))
            }
        },
    );
    let delivered: Vec<&str> = inbox.iter().map(|i| i.id.as_str()).collect();
    assert!(!delivered.contains(&held[0].id.as_str()));
    assert!(
        town.log().contains("the DTN inbox is full"),
        "the refusal says why: {}",
        town.log()
    );
}
