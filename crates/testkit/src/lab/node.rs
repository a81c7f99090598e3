//! A `ferry` node in a lab host, for the lab tests that run nodes with files of
//! their own (`lan_lab`, `dtn_lab`): a data directory under the test's
//! temporary directory, one pair of log files per start
//! (`NAME.startN.stdout.log`, `NAME.startN.stderr.log`), default listen addresses
//! and discovery unless [`Node::start_args`] say otherwise. Each test adds
//! the CLI calls it needs in a trait of its own, implemented for [`Node`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_node::control::types::{IdInfo, PeerInfo};
use serde::de::DeserializeOwned;

use super::Host;
use crate::binary::ferry_binary;

const POLL: Duration = Duration::from_millis(100);

/// One `ferry` node in its lab host. See the module documentation.
pub struct Node {
    pub name: String,
    pub host: Host,
    pub data_dir: PathBuf,
    /// Where the node's log files go.
    pub log_dir: PathBuf,
    child: Option<Child>,
    /// How many times the node has been started.
    pub starts: u32,
    /// More arguments for `ferry start` (such as `--no-mdns`).
    pub start_args: Vec<String>,
    /// The node's peer id, once [`Node::wait_ready`] has seen it (empty before).
    pub peer_id: String,
}

impl Node {
    /// A node called `name` in `host`, with its data directory and logs under
    /// `base`; not started.
    pub fn new(name: &str, host: Host, base: &Path) -> Node {
        let data_dir = base.join(name);
        std::fs::create_dir_all(&data_dir).unwrap();
        Node {
            name: name.to_owned(),
            host,
            data_dir,
            log_dir: base.to_owned(),
            child: None,
            starts: 0,
            start_args: Vec::new(),
            peer_id: String::new(),
        }
    }

    pub fn log_path(&self, start: u32, stream: &str) -> PathBuf {
        self.log_dir
            .join(format!("{}.start{start}.{stream}.log", self.name))
    }

    /// `ferry start --data-dir DIR --name NAME START_ARGS...` in the node's
    /// namespace, output to log files (one pair per start). Does not wait.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.starts += 1;
        let stdout = File::create(self.log_path(self.starts, "stdout")).unwrap();
        let stderr = File::create(self.log_path(self.starts, "stderr")).unwrap();
        let mut command = self.host.command(ferry_binary());
        command
            .arg("start")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--name", &self.name])
            .args(&self.start_args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        self.child = Some(command.spawn().expect("spawn ferry start"));
    }

    /// Polls until the control API answers `id` (panics if the node exits or
    /// `limit` passes first); returns the id. Records the peer id the first
    /// time and checks that it stays the same after.
    pub fn wait_ready(&mut self, limit: Duration) -> IdInfo {
        let start = Instant::now();
        let id = loop {
            let round = Instant::now();
            if let Some(status) = self.exited() {
                panic!("{} exited: {status}", self.name);
            }
            match self.id() {
                Ok(id) => break id,
                Err(e) if start.elapsed() >= limit => {
                    panic!("{} does not answer after {limit:?}: {e}", self.name)
                }
                Err(_) => std::thread::sleep(POLL.saturating_sub(round.elapsed())),
            }
        };
        if self.peer_id.is_empty() {
            self.peer_id = id.peer_id.clone();
        } else {
            assert_eq!(
                id.peer_id, self.peer_id,
                "{} changed its peer id",
                self.name
            );
        }
        id
    }

    /// [`Node::start`], then [`Node::wait_ready`].
    pub fn start_and_wait(&mut self, limit: Duration) -> IdInfo {
        self.start();
        self.wait_ready(limit)
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The daemon's exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// `ferry --data-dir DIR ARGS...` in the node's namespace.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.host
            .command(ferry_binary())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run the ferry CLI")
    }

    /// [`Node::cli`]'s stdout, or `Err` with everything it said.
    pub fn cli_ok(&self, args: &[&str]) -> Result<String, String> {
        let out = self.cli(args);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(cli_failure(args, &self.name, &out))
        }
    }

    /// [`Node::cli_ok`], its stdout parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self, args: &[&str]) -> Result<T, String> {
        let text = self.cli_ok(args)?;
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "`ferry {}` on {}: bad JSON ({e}): {text}",
                args.join(" "),
                self.name
            )
        })
    }

    pub fn id(&self) -> Result<IdInfo, String> {
        self.json(&["id", "--json"])
    }

    pub fn peers(&self) -> Result<Vec<PeerInfo>, String> {
        self.json(&["peers", "--json"])
    }

    /// Prints the last `lines` lines of each of the node's log files.
    pub fn print_logs(&self, lines: usize) {
        for start in 1..=self.starts {
            for stream in ["stdout", "stderr"] {
                let path = self.log_path(start, stream);
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let all: Vec<&str> = text.lines().collect();
                let tail = all[all.len().saturating_sub(lines)..].join("\n");
                eprintln!(
                    "----- {} start {start} {stream} (last {} of {} lines; {}) -----\n{tail}",
                    self.name,
                    all.len().min(lines),
                    all.len(),
                    path.display()
                );
            }
        }
    }
}

/// What a failed `ferry ARGS...` run on node `name` said, for an error.
pub fn cli_failure(args: &[&str], name: &str, out: &Output) -> String {
    format!(
        "`ferry {}` on {name} failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}

/// What a lab test's world does when it is dropped: on a failed test, print the
/// last `log_lines` lines of every node's logs; then kill the nodes, and keep
/// `dir` (their data and logs) if `FERRY_LAB_KEEP` asks for it.
pub fn tear_down(nodes: &mut [Node], dir: &mut Option<tempfile::TempDir>, log_lines: usize) {
    if std::thread::panicking() {
        for node in nodes.iter() {
            node.print_logs(log_lines);
        }
    }
    for node in nodes {
        node.kill9();
    }
    super::keep_if_asked(dir);
}
