//! A harness for tests that run real `ferry` processes on 127.0.0.1.
//!
//! Each [`Node`] is a `ferry start` with its own temporary data directory,
//! discovery and UPnP off (`--no-mdns --no-beacon --no-upnp`: outside a lab
//! namespace nothing may broadcast or ask a router for a port mapping) and
//! listening on loopback only. Every CLI run and every wait has a
//! deadline, so a hung daemon fails the test instead of hanging it. When a test
//! panics, each node prints its log so the failure can be read from the output.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ferry_node::control::ControlFile;
use ferry_node::control::types::{BlobEntry, IdInfo, MessageView, PeerInfo};
use serde::de::DeserializeOwned;
use tempfile::TempDir;

pub use crate::binary::ferry_binary;

/// How long a node may take to come up (a cold start opens the store and binds
/// its transports).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one CLI command may take; `connect` dials, so not too short.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a message or a connection may take to spread between nodes.
pub const SPREAD_TIMEOUT: Duration = Duration::from_secs(60);

/// What one CLI run produced.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The run, after checking that it succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.status.success(), "command failed: {self:#?}");
        self
    }

    #[track_caller]
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not the expected JSON ({e}): {self:#?}"))
    }
}

/// Runs `ferry ARGS` with the data directory `data_dir`, feeding `stdin`.
pub fn ferry_in(data_dir: &Path, args: &[&str], stdin: &[u8]) -> Run {
    let mut command = Command::new(ferry_binary());
    command.arg("--data-dir").arg(data_dir).args(args);
    run_with_deadline(command, stdin, COMMAND_TIMEOUT)
}

/// Runs `command` to the end, or kills it and panics after `timeout`.
pub fn run_with_deadline(command: Command, stdin: &[u8], timeout: Duration) -> Run {
    let out = output_with_deadline(command, stdin, timeout).unwrap_or_else(|e| panic!("{e}"));
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `command` to the end, feeding `stdin`, with its output captured; or
/// kills it after `timeout` and says so in `Err`, with what it printed so far.
pub fn output_with_deadline(
    mut command: Command,
    stdin: &[u8],
    timeout: Duration,
) -> Result<Output, String> {
    command
        .env_remove("FERRY_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    // Each pipe gets its own thread so none can fill up and stall the child.
    let input = stdin.to_vec();
    let mut child_stdin = child.stdin.take().expect("piped stdin");
    let writer = thread::spawn(move || {
        // A child that exits without reading all of it is not this harness's
        // concern; the exit status tells.
        let _ = child_stdin.write_all(&input);
    });
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{command:?} did not finish within {timeout:?}; it printed: {}{}",
                String::from_utf8_lossy(&stdout.join().unwrap()),
                String::from_utf8_lossy(&stderr.join().unwrap())
            ));
        }
        thread::sleep(Duration::from_millis(20));
    };
    writer.join().unwrap();
    Ok(Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    })
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

pub use crate::wait::wait_until;

/// `len` bytes that look random, the same for the same `seed` (BLAKE3's
/// extendable output), so nothing has to be stored to compare against.
pub fn random_bytes(seed: &str, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut bytes);
    bytes
}

/// The flags every test node runs with: loopback only, no discovery, no UPnP.
pub const LOOPBACK_FLAGS: &[&str] = &[
    "--no-mdns",
    "--no-beacon",
    "--no-upnp",
    "--listen",
    "/ip4/127.0.0.1/tcp/0",
    "--listen",
    "/ip4/127.0.0.1/udp/0/quic-v1",
];

/// A running `ferry start`, killed when dropped.
pub struct Node {
    pub name: String,
    /// Holds the data directory (`data/`) and the node's log; removed on drop.
    work: TempDir,
    child: Option<Child>,
    /// Flags added to every `ferry start` of this node (`start_with`).
    start_flags: Vec<String>,
}

impl Node {
    /// Starts a node called `name` and waits until it answers.
    pub fn start(name: &str) -> Node {
        Node::start_with(name, &[])
    }

    /// Starts a node called `name` with `extra` flags for `ferry start` (kept for
    /// restarts) and waits until it answers.
    pub fn start_with(name: &str, extra: &[&str]) -> Node {
        let mut node = Node::new(name, extra);
        node.spawn_and_wait();
        node
    }

    /// Starts a node called `name` with `config` as its `config.toml` (written
    /// into the data directory first), and waits until it answers.
    pub fn start_with_config(name: &str, config: &str) -> Node {
        let mut node = Node::new(name, &[]);
        std::fs::create_dir_all(node.data_dir()).expect("create the data directory");
        std::fs::write(node.data_dir().join("config.toml"), config).expect("write config.toml");
        node.spawn_and_wait();
        node
    }

    /// A node called `name`, not started yet, with a fresh work directory and
    /// `extra` flags for every `ferry start`.
    fn new(name: &str, extra: &[&str]) -> Node {
        Node {
            name: name.to_owned(),
            work: tempfile::Builder::new()
                .prefix(&format!("ferry-{name}-"))
                .tempdir()
                .expect("tempdir"),
            child: None,
            start_flags: extra.iter().map(|f| f.to_string()).collect(),
        }
    }

    /// The data directory. It does not exist before the first start: the node
    /// creates it.
    pub fn data_dir(&self) -> PathBuf {
        self.work.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.work.path().join("node.log")
    }

    /// Spawns `ferry start` on this node's data directory, with `extra` flags,
    /// logging to the node's log (appended, so a restart keeps the first life's).
    pub fn spawn_start(&self, extra: &[&str]) -> Child {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open log");
        Command::new(ferry_binary())
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("start")
            .args(["--name", &self.name])
            .args(LOOPBACK_FLAGS)
            .args(extra)
            .env_remove("FERRY_DATA_DIR")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn ferry start")
    }

    fn spawn_and_wait(&mut self) {
        let flags: Vec<&str> = self.start_flags.iter().map(String::as_str).collect();
        let child = self.spawn_start(&flags);
        let pid = child.id();
        self.child = Some(child);
        // A node killed with -9 leaves its control.json behind: wait for the one
        // this process wrote, then for the API to answer.
        wait_until(&format!("{} to start", self.name), START_TIMEOUT, || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "{} exited during start-up ({status}); log:\n{}",
                    self.name,
                    self.log()
                );
            }
            match ControlFile::read(&self.data_dir()) {
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

    /// Kills the node the hard way (SIGKILL), as a crash or power cut would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node again on the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn_and_wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs `ferry ARGS` against this node.
    pub fn ferry(&self, args: &[&str]) -> Run {
        ferry_in(&self.data_dir(), args, b"")
    }

    /// Runs `ferry ARGS` against this node with `stdin` as its input.
    pub fn ferry_stdin(&self, args: &[&str], stdin: &[u8]) -> Run {
        ferry_in(&self.data_dir(), args, stdin)
    }

    pub fn id(&self) -> IdInfo {
        self.ferry(&["id", "--json"]).ok().json()
    }

    pub fn peers(&self) -> Vec<PeerInfo> {
        self.ferry(&["peers", "--json"]).ok().json()
    }

    /// Whether this node lists `peer_id` as connected.
    pub fn connected_to(&self, peer_id: &str) -> bool {
        self.peers()
            .iter()
            .any(|peer| peer.peer_id == peer_id && peer.connected)
    }

    /// The first address the node listens on, ready for `ferry connect`.
    pub fn addr(&self) -> String {
        let id = self.id();
        id.listen_addrs
            .first()
            .unwrap_or_else(|| panic!("{} lists no listen address: {id:?}", self.name))
            .clone()
    }

    pub fn post(&self, channel: &str, text: &str) -> MessageView {
        let run = self.ferry(&["post", channel, text, "--json"]).ok();
        run.json()
    }

    /// Every stored message of `channel`, from `ferry read --json` (JSON Lines).
    pub fn read(&self, channel: &str) -> Vec<MessageView> {
        let run = self
            .ferry(&["read", channel, "--json", "--limit", "5000"])
            .ok();
        run.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a message ({e}): {line:?}"))
            })
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("----- log of {} -----\n{}", self.name, self.log());
        }
    }
}

/// Waits until `node` lists `peer` (whose id is `peer_id`) as connected.
#[track_caller]
pub fn wait_connected(node: &Node, peer: &Node, peer_id: &str) {
    wait_until(
        &format!("{} to list {} as connected", node.name, peer.name),
        SPREAD_TIMEOUT,
        || {
            let peers: Vec<PeerInfo> = node.peers();
            if peers.iter().any(|p| p.peer_id == peer_id && p.connected) {
                Ok(())
            } else {
                Err(format!("{peers:#?}"))
            }
        },
    );
}

/// `12D3Koo…abcd`, as the CLI shortens peer ids for people.
pub fn short_id(peer_id: &str) -> String {
    format!("{}…{}", &peer_id[..7], &peer_id[peer_id.len() - 4..])
}

/// The node's control API, asked directly where a CLI run per look would be
/// too slow to catch a download in the middle.
pub struct Api {
    agent: ureq::Agent,
    url: String,
    authorization: String,
}

impl Api {
    pub fn of(node: &Node) -> Api {
        Api::at(&node.data_dir())
    }

    /// The API of the node running on `data_dir`.
    pub fn at(data_dir: &Path) -> Api {
        let control = ControlFile::read(data_dir)
            .unwrap()
            .expect("the node is running");
        Api {
            agent: ureq::Agent::new_with_config(
                ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .proxy(None)
                    .timeout_global(Some(Duration::from_secs(30)))
                    .build(),
            ),
            url: control.url,
            authorization: format!("Bearer {}", control.token),
        }
    }

    /// `GET /v1/blobs`: what the store holds, partial downloads included.
    pub fn blobs(&self) -> Vec<BlobEntry> {
        let mut response = self
            .agent
            .get(format!("{}/v1/blobs", self.url))
            .header("Authorization", &self.authorization)
            .call()
            .unwrap();
        let status = response.status();
        let text = response.body_mut().read_to_string().unwrap();
        assert!(status.is_success(), "/v1/blobs: {status} {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("/v1/blobs: {e}: {text}"))
    }
}

/// The node's TCP address (the hostile peer's codec runs over TCP or QUIC, but
/// one is enough).
pub fn tcp_addr(node: &Node) -> String {
    let id = node.id();
    id.listen_addrs
        .iter()
        .find(|a| a.contains("/tcp/"))
        .unwrap_or_else(|| panic!("{} lists no TCP address: {id:?}", node.name))
        .clone()
}
