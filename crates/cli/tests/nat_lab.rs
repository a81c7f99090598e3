//! Across the internet, in the network lab (needs root; skips otherwise): two homes
//! behind NAT routers reach each other knowing only a bootstrap node and a peer id.
//!
//! ```text
//!   public segment 10.80.0.0/24 ("the internet")
//!     b  10.80.0.1   ferry start --relay            bootstrap node and relay
//!     c  10.80.0.2   ferry start                    a second public node
//!     r1 10.80.0.11  NAT router of home 1           (masquerade)
//!     r2 10.80.0.12  NAT router of home 2           (masquerade, or fully-random)
//!   home1 192.168.1.0/24: r1 .1, h1 .10   ferry start --bootstrap b --bootstrap c
//!   home2 192.168.2.0/24: r2 .1, h2 .10   ferry start --bootstrap b --bootstrap c
//! ```
//!
//! The routers masquerade with nftables: plainly for a cone NAT (Linux keeps the
//! source port, so the mapping is endpoint-independent), or `fully-random` for a
//! symmetric NAT (a new random port per destination); like real home routers,
//! they drop unsolicited packets from outside (see [`Host::firewall_inbound`] for
//! why that matters to hole punching). The public hosts have no route into the
//! homes. `c` exists so that each home node has two observers of
//! its public address, which is what tells the two kinds of NAT apart.
//!
//! Tests, each printing its figures (time to connect by id, how, transfer rate):
//! - cone NATs: `ferry find` by peer id, the hole punch, chat, and a 50 MiB
//!   `ferry get` over the direct path (the relay's byte counters prove it);
//! - a symmetric NAT on one side: it stays relayed, and chat and the 50 MiB get
//!   still work, through the relay;
//! - cone NATs with 5 % loss on both home links: chat and a 10 MiB get;
//! - a node behind NAT stays a DHT client while the public bootstrap node
//!   becomes a DHT server.
//!
//! Run: `cargo test -p ferry --test nat_lab -- --nocapture --test-threads 1` (as
//! root). `FERRY_LAB_KEEP=1` keeps the namespaces, data directories and logs after
//! a run for a look; `RUST_LOG` sets the nodes' log filter.

mod lab;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ferry_node::control::types::{
    FindReply, GetResult, IdInfo, MessageView, NatInfo, PeerPath, ShareResult,
};
use lab::{Host, Lab, Segment};
use serde::de::DeserializeOwned;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const MIB: usize = 1024 * 1024;
const POLL: Duration = Duration::from_millis(250);

/// The public segment and the fixed addresses on it.
const PUBLIC_NET: &str = "10.80.0.0/24";
const B_OCTET: u32 = 1;
const C_OCTET: u32 = 2;
/// The port b and c listen on, TCP and QUIC.
const PUBLIC_PORT: u16 = 4001;

/// One CLI command (find dials, get transfers: those have their own).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// A node answers its control API within this of `ferry start`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// A node behind NAT holds a relay reservation within this of starting.
const RESERVATION_TIMEOUT: Duration = Duration::from_secs(45);
/// `ferry find` succeeds within this (retried, since the DHT may still be
/// settling when the first attempt is made).
const FIND_TIMEOUT: Duration = Duration::from_secs(60);
/// A relayed connection between cone NATs is upgraded within this.
const HOLE_PUNCH_TIMEOUT: Duration = Duration::from_secs(30);
/// A chat message arrives within this.
const CHAT_TIMEOUT: Duration = Duration::from_secs(20);
/// Two peers have reported our address within this.
const OBSERVERS_TIMEOUT: Duration = Duration::from_secs(20);
/// A public node becomes a DHT server within this.
const DHT_SERVER_TIMEOUT: Duration = Duration::from_secs(60);
/// `ferry share` of up to 50 MiB.
const SHARE_TIMEOUT: Duration = Duration::from_secs(60);
/// `ferry get` of up to 50 MiB, relayed or lossy, in a debug build.
const GET_TIMEOUT: Duration = Duration::from_secs(150);

/// The tests take turns: they would otherwise share 2 cores four ways, and each
/// one's timings are figures worth reading.
static TAKE_TURNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    TAKE_TURNS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Calls `f` every [`POLL`] until it returns `Ok`, or `limit` has passed; then
/// panics with `what` and the last `Err` (what was seen instead).
#[track_caller]
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        let round = Instant::now();
        match f() {
            Ok(value) => return value,
            Err(seen) if start.elapsed() >= limit => {
                panic!("timed out after {limit:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => thread::sleep(POLL.saturating_sub(round.elapsed())),
        }
    }
}

/// Checks that do not stop a test: each failure is printed when it happens, and
/// [`Problems::finish`] fails the test with all of them, so that one wrong label
/// does not hide the figures and the checks after it.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            let problem = problem();
            println!("PROBLEM: {problem}");
            self.0.push(problem);
        }
    }

    #[track_caller]
    fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} problem(s):\n- {}",
            self.0.len(),
            self.0.join("\n- ")
        );
    }
}

/// Runs `command` to the end with its output captured, or kills it after
/// `timeout` (then `Err` with what it printed so far).
fn run_with_deadline(mut command: Command, timeout: Duration) -> Result<Output, String> {
    let mut child = command
        .env_remove("FERRY_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
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
    Ok(Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    })
}

/// One `ferry` node in its lab host.
struct Node {
    name: String,
    host: Host,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn new(name: &str, host: Host, base: &Path) -> Node {
        Node {
            name: name.to_owned(),
            host,
            data_dir: base.join(name),
            log: base.join(format!("{name}.log")),
            child: None,
        }
    }

    /// `ferry start --name NAME ARGS...` in the node's namespace, logging to
    /// the node's log file; waits until it answers and returns its id.
    fn start(&mut self, args: &[String]) -> IdInfo {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = File::create(&self.log).expect("create the node log");
        let mut command = self.host.command(FERRY);
        command
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["start", "--name", &self.name])
            .args(args)
            .env_remove("FERRY_DATA_DIR")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| {
                    "info,libp2p_dcutr=debug,libp2p_autonat=debug,libp2p_relay=debug".into()
                }),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log);
        self.child = Some(command.spawn().expect("spawn ferry start"));
        wait_for(&format!("{} to answer", self.name), START_TIMEOUT, || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "{} exited during start-up ({status}); log:\n{}",
                    self.name,
                    self.log_tail(100)
                );
            }
            self.json::<IdInfo>(&["id", "--json"])
        })
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last `lines` lines of the node's log.
    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `ferry --data-dir DIR ARGS...` in the node's namespace: stdout, or `Err`
    /// with everything it said.
    fn cli_timeout(&self, args: &[&str], timeout: Duration) -> Result<String, String> {
        let mut command = self.host.command(FERRY);
        command.arg("--data-dir").arg(&self.data_dir).args(args);
        let out = run_with_deadline(command, timeout)
            .map_err(|e| format!("`ferry {}` on {}: {e}", args.join(" "), self.name))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "`ferry {}` on {} failed ({}): {}{}",
                args.join(" "),
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr).trim_end()
            ))
        }
    }

    fn cli(&self, args: &[&str]) -> Result<String, String> {
        self.cli_timeout(args, COMMAND_TIMEOUT)
    }

    fn parse<T: DeserializeOwned>(&self, args: &[&str], text: &str) -> Result<T, String> {
        serde_json::from_str(text).map_err(|e| {
            format!(
                "`ferry {}` on {}: not the expected JSON ({e}): {text}",
                args.join(" "),
                self.name
            )
        })
    }

    fn json<T: DeserializeOwned>(&self, args: &[&str]) -> Result<T, String> {
        let text = self.cli(args)?;
        self.parse(args, &text)
    }

    fn nat(&self) -> Result<NatInfo, String> {
        self.json(&["nat", "--json"])
    }

    /// How this node is connected to `peer_id`, as `ferry nat` says.
    fn path_to(&self, peer_id: &str) -> Result<PeerPath, String> {
        let nat = self.nat()?;
        nat.peers
            .iter()
            .find(|p| p.peer_id == peer_id)
            .cloned()
            .ok_or_else(|| format!("{} is not connected to {peer_id}: {nat:#?}", self.name))
    }

    fn connection_to(&self, peer_id: &str) -> Result<String, String> {
        self.path_to(peer_id).map(|p| p.connection)
    }

    fn read(&self, channel: &str) -> Result<Vec<MessageView>, String> {
        let text = self.cli(&["read", channel, "--json"])?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| self.parse(&["read", channel, "--json"], l))
            .collect()
    }
}

/// Which NAT a home router runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NatKind {
    /// Plain masquerade: endpoint-independent mapping in practice.
    Cone,
    /// Masquerade `fully-random`: a new port per destination.
    Symmetric,
}

/// The lab of the module doc, with every node running. On a failed test it
/// prints the end of every node's log; then it kills the nodes and (through
/// [`Lab`]) removes the namespaces.
struct World {
    b: Node,
    c: Node,
    h1: Node,
    h2: Node,
    b_id: String,
    h1_id: String,
    h2_id: String,
    home1: Segment,
    home2: Segment,
    /// When the home nodes were started.
    started: Instant,
    dir: Option<tempfile::TempDir>,
    // Last, so the nodes are killed before the namespaces go.
    lab: Lab,
}

impl World {
    /// Builds the lab with home 2 behind `home2_nat` (home 1 is always behind a
    /// cone NAT), with `loss` % loss on both home segments, and starts b, c, h1
    /// and h2.
    fn new(home2_nat: NatKind, loss: u32) -> World {
        let lab = Lab::new();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", lab.prefix()))
            .tempdir()
            .unwrap();
        let public = lab.bridge_segment("public", PUBLIC_NET);
        let home1 = lab.bridge_segment("home1", "192.168.1.0/24");
        let home2 = lab.bridge_segment("home2", "192.168.2.0/24");

        let b_host = lab.host("b");
        lab.attach(&b_host, &public, B_OCTET);
        let c_host = lab.host("c");
        lab.attach(&c_host, &public, C_OCTET);
        let mut homes = Vec::new();
        for (i, (home, nat)) in [(&home1, NatKind::Cone), (&home2, home2_nat)]
            .into_iter()
            .enumerate()
        {
            let router = lab.router(&format!("r{}", i + 1));
            let inside = lab.attach(&router, home, 1);
            let outside = lab.attach(&router, &public, 11 + i as u32);
            router.masquerade(&outside, nat == NatKind::Symmetric);
            router.firewall_inbound(&outside);
            let host = lab.host(&format!("h{}", i + 1));
            lab.attach(&host, home, 10);
            host.add_default_route(inside.addr);
            homes.push(host);
        }
        if loss > 0 {
            home1.set_loss(loss);
            home2.set_loss(loss);
        }
        let h2_host = homes.pop().unwrap();
        let h1_host = homes.pop().unwrap();

        let mut world = World {
            b: Node::new("b", b_host, dir.path()),
            c: Node::new("c", c_host, dir.path()),
            h1: Node::new("h1", h1_host, dir.path()),
            h2: Node::new("h2", h2_host, dir.path()),
            b_id: String::new(),
            h1_id: String::new(),
            h2_id: String::new(),
            home1,
            home2,
            started: Instant::now(),
            dir: Some(dir),
            lab,
        };
        println!(
            "lab {}: public {PUBLIC_NET}, home1 behind a cone NAT, home2 behind a {} NAT{}",
            world.lab.prefix(),
            match home2_nat {
                NatKind::Cone => "cone",
                NatKind::Symmetric => "symmetric",
            },
            if loss > 0 {
                format!(", {loss} % loss on both home links")
            } else {
                String::new()
            }
        );
        world.start_nodes();
        world
    }

    fn start_nodes(&mut self) {
        let public_flags = || -> Vec<String> {
            [
                "--no-mdns",
                "--no-beacon",
                "--no-upnp",
                "--listen",
                &format!("/ip4/0.0.0.0/tcp/{PUBLIC_PORT}"),
                "--listen",
                &format!("/ip4/0.0.0.0/udp/{PUBLIC_PORT}/quic-v1"),
            ]
            .map(str::to_owned)
            .into()
        };
        let bootstrap_addrs = |octet: u32, id: &str| -> Vec<String> {
            let ip = lab_public_ip(octet);
            vec![
                format!("/ip4/{ip}/udp/{PUBLIC_PORT}/quic-v1/p2p/{id}"),
                format!("/ip4/{ip}/tcp/{PUBLIC_PORT}/p2p/{id}"),
            ]
        };
        let as_flags = |addrs: &[String]| -> Vec<String> {
            addrs
                .iter()
                .flat_map(|a| ["--bootstrap".to_owned(), a.clone()])
                .collect()
        };

        let mut b_args = public_flags();
        b_args.push("--relay".into());
        let b = self.b.start(&b_args);
        self.b_id = b.peer_id;
        let b_boot = bootstrap_addrs(B_OCTET, &self.b_id);

        let mut c_args = public_flags();
        c_args.extend(as_flags(&b_boot));
        let c = self.c.start(&c_args);
        let c_boot = bootstrap_addrs(C_OCTET, &c.peer_id);

        // What a person at home types: the bootstrap addresses, and no UPnP
        // (there is no router to ask here, and no UPnP outside the lab). b's
        // TCP and QUIC addresses, c's QUIC one: the mapping is judged from
        // QUIC (UDP) observations, and c's at least is sure to be one.
        let mut home_args = as_flags(&b_boot);
        home_args.extend(as_flags(&c_boot[..1]));
        home_args.push("--no-upnp".into());
        self.started = Instant::now();
        self.h1_id = self.h1.start(&home_args).peer_id;
        self.h2_id = self.h2.start(&home_args).peer_id;
        println!(
            "nodes: b {} (relay), c {}, h1 {}, h2 {}",
            self.b_id, c.peer_id, self.h1_id, self.h2_id
        );
    }

    fn nodes(&self) -> [&Node; 4] {
        [&self.b, &self.c, &self.h1, &self.h2]
    }

    /// Waits until `node` holds a reservation on b with a relayed address.
    fn wait_reserved(&self, node: &Node) -> String {
        wait_for(
            &format!("{} to hold a relay reservation on b", node.name),
            RESERVATION_TIMEOUT,
            || {
                let nat = node.nat()?;
                nat.relays
                    .iter()
                    .find(|r| r.peer_id == self.b_id && r.reserved)
                    .and_then(|r| r.relayed_addr.clone())
                    .ok_or_else(|| format!("{nat:#?}"))
            },
        )
    }

    /// h1 runs `ferry find H2_ID --json` until it succeeds; prints the figures.
    fn find_h2(&self) -> FindReply {
        let already = self
            .h1
            .path_to(&self.h2_id)
            .map(|p| format!("{} over {}", p.connection, p.remote_addr));
        if let Ok(path) = &already {
            println!("find: note: h1 was already connected to h2 ({path}) before `ferry find`");
        }
        let args = ["find", &self.h2_id, "--json"];
        let first = Instant::now();
        let mut attempts = 0;
        let (reply, took) = wait_for("h1 to find h2 by its peer id", FIND_TIMEOUT, || {
            attempts += 1;
            let t = Instant::now();
            let text = self.h1.cli(&args)?;
            Ok((self.h1.parse::<FindReply>(&args, &text)?, t.elapsed()))
        });
        assert_eq!(reply.peer_id, self.h2_id, "found someone else: {reply:#?}");
        println!(
            "find: h1 found h2 by peer id in {} ms ({} wall clock for the command{}), connected {} via {}",
            reply.elapsed_ms,
            secs(took),
            if attempts > 1 {
                format!(
                    "; attempt {attempts}, {} after the first",
                    secs(first.elapsed())
                )
            } else {
                String::new()
            },
            reply.connection,
            reply.connected_via
        );
        println!("find: addresses found: {:?}", reply.addrs);
        reply
    }

    /// Posts on h1, waits for it on h2; returns how long it took.
    fn chat(&self, text: &str) -> Duration {
        self.h1
            .cli(&["post", "general", text])
            .unwrap_or_else(|e| panic!("{e}"));
        let t = Instant::now();
        wait_for("the chat message to reach h2", CHAT_TIMEOUT, || {
            let messages = self.h2.read("general")?;
            if messages
                .iter()
                .any(|m| m.text == text && m.author == self.h1_id)
            {
                Ok(())
            } else {
                Err(format!("{messages:#?}"))
            }
        });
        let took = t.elapsed();
        println!("chat: h1 -> h2 in {}", secs(took));
        took
    }

    /// b's bytes received and sent on the public segment.
    fn relay_bytes(&self) -> (u64, u64) {
        let out = self.b.host.sh(
            "cat /sys/class/net/eth0/statistics/rx_bytes /sys/class/net/eth0/statistics/tx_bytes",
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let numbers: Vec<u64> = text
            .split_whitespace()
            .map(|n| n.parse().expect("a byte counter"))
            .collect();
        assert_eq!(numbers.len(), 2, "b's byte counters: {text:?}");
        (numbers[0], numbers[1])
    }

    /// h2 shares `size` random bytes; h1 fetches them with `ferry get TICKET`.
    /// Checks the bytes, prints the rate; returns it (MB/s) and the bytes b
    /// received during the transfer.
    fn transfer(&self, size: usize, what: &str) -> (f64, u64) {
        let dir = self.dir.as_ref().unwrap().path();
        let source = dir.join(format!("random-{size}.bin"));
        let mut bytes = Vec::with_capacity(size);
        File::open("/dev/urandom")
            .unwrap()
            .take(size as u64)
            .read_to_end(&mut bytes)
            .unwrap();
        std::fs::write(&source, &bytes).unwrap();
        let want = blake3::hash(&bytes).to_hex().to_string();
        drop(bytes);

        let share_args = ["share", source.to_str().unwrap(), "--json"];
        let text = self
            .h2
            .cli_timeout(&share_args, SHARE_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        let share: ShareResult = self
            .h2
            .parse(&share_args, &text)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(share.id, want, "the share id is not the file's BLAKE3");

        let output = dir.join(format!("fetched-{size}.bin"));
        let (rx0, tx0) = self.relay_bytes();
        let t = Instant::now();
        let get_args = [
            "get",
            &share.ticket,
            "-o",
            output.to_str().unwrap(),
            "--json",
        ];
        let text = self
            .h1
            .cli_timeout(&get_args, GET_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        let took = t.elapsed();
        let (rx1, tx1) = self.relay_bytes();
        let get: GetResult = self
            .h1
            .parse(&get_args, &text)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(get.id, want, "{get:#?}");
        assert_eq!(get.size, size as u64, "{get:#?}");
        assert_eq!(get.fetched_bytes, size as u64, "{get:#?}");
        assert!(
            get.providers
                .iter()
                .any(|p| p.peer_id == self.h2_id && p.bytes == size as u64),
            "h2 did not send it all: {get:#?}"
        );
        let fetched = std::fs::read(&output).unwrap();
        assert_eq!(fetched.len(), size, "the fetched file has the wrong size");
        assert_eq!(
            blake3::hash(&fetched).to_hex().to_string(),
            want,
            "the fetched file differs from the shared one"
        );
        let rate = size as f64 / took.as_secs_f64() / 1e6;
        let through_b = rx1 - rx0;
        println!(
            "get: {} MiB h2 -> h1 {what} in {} = {rate:.1} MB/s, blake3 identical; b received {:.1} MiB and sent {:.1} MiB meanwhile",
            size / MIB,
            secs(took),
            through_b as f64 / MIB as f64,
            (tx1 - tx0) as f64 / MIB as f64,
        );
        (rate, through_b)
    }

    /// Waits until at least two peers report `node`'s UDP address; returns its
    /// NAT info (the last one seen if that never happens).
    fn nat_with_observers(&self, node: &Node) -> NatInfo {
        let start = Instant::now();
        loop {
            let nat = node.nat().unwrap_or_else(|e| panic!("{e}"));
            if udp_observers(&nat) >= 2 || start.elapsed() > OBSERVERS_TIMEOUT {
                return nat;
            }
            thread::sleep(POLL);
        }
    }

    fn print_logs(&self) {
        for node in self.nodes() {
            eprintln!(
                "----- {} ({}), last 150 lines -----\n{}",
                node.name,
                node.log.display(),
                node.log_tail(150)
            );
            eprintln!("----- {} ferry nat -----\n{:#?}", node.name, node.nat());
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if thread::panicking() {
            self.print_logs();
        }
        for node in [&mut self.b, &mut self.c, &mut self.h1, &mut self.h2] {
            node.kill();
        }
        if std::env::var_os("FERRY_LAB_KEEP").is_some_and(|v| v != "0")
            && let Some(dir) = self.dir.take()
        {
            eprintln!("FERRY_LAB_KEEP: keeping {}", dir.keep().display());
        }
    }
}

fn lab_public_ip(octet: u32) -> std::net::Ipv4Addr {
    let (network, _) = PUBLIC_NET.split_once('/').unwrap();
    let network: std::net::Ipv4Addr = network.parse().unwrap();
    std::net::Ipv4Addr::from(u32::from(network) + octet)
}

/// How many peers report a UDP (QUIC) address for us, not through a relay: the
/// reports the mapping behaviour is judged from (a TCP dial takes a fresh port
/// each time, so TCP reports say nothing about the NAT).
fn udp_observers(nat: &NatInfo) -> usize {
    let mut observers: Vec<&str> = nat
        .observed
        .iter()
        .filter(|o| o.addr.contains("/udp/") && !o.addr.contains("/p2p-circuit"))
        .map(|o| o.by_peer.as_str())
        .collect();
    observers.sort_unstable();
    observers.dedup();
    observers.len()
}

fn observed_summary(nat: &NatInfo) -> String {
    nat.observed
        .iter()
        .map(|o| format!("{} sees {}", &o.by_peer[o.by_peer.len() - 4..], o.addr))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ferry nat` as a person sees it, indented under a heading.
fn print_human_nat(node: &Node) {
    let text = node.cli(&["nat"]).unwrap_or_else(|e| panic!("{e}"));
    println!("`ferry nat` on {}:", node.name);
    for line in text.lines() {
        if line.is_empty() {
            println!();
        } else {
            println!("    {line}");
        }
    }
}

fn tag() -> String {
    format!("{:08x}", lab::random_u64() as u32)
}

/// Cone NATs on both sides: found by id, hole-punched, chat, and 50 MiB over the
/// direct path.
#[test]
fn cone_nats_find_by_id_hole_punch_chat_and_get_direct() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = take_turn();
    let t0 = Instant::now();
    let mut problems = Problems::default();
    let w = World::new(NatKind::Cone, 0);

    let relayed = w.wait_reserved(&w.h2);
    println!(
        "reservation: h2 reachable through b as {relayed} {} after start",
        secs(w.started.elapsed())
    );
    let found = w.find_h2();

    let t = Instant::now();
    let (connection, remote) = wait_for(
        "h1's `ferry nat` to show h2 hole-punched or direct",
        HOLE_PUNCH_TIMEOUT,
        || {
            let path = w.h1.path_to(&w.h2_id)?;
            match path.connection.as_str() {
                "hole-punched" | "direct" => Ok((path.connection, path.remote_addr)),
                other => Err(format!("connection {other}")),
            }
        },
    );
    println!(
        "hole punch: h1 -> h2 {connection} over {remote}, {} after find returned (find said {})",
        secs(t.elapsed()),
        found.connection
    );
    let h2_view =
        w.h2.connection_to(&w.h1_id)
            .unwrap_or_else(|e| panic!("{e}"));
    println!("hole punch: h2's `ferry nat` shows h1 {h2_view}");
    problems.check(h2_view != "relayed", || {
        format!("h1 reaches h2 directly, but h2's `ferry nat` shows h1 {h2_view}")
    });

    w.chat(&format!("hello across two NATs {}", tag()));

    let (rate, through_b) = w.transfer(50 * MIB, "over the hole-punched path");
    let after =
        w.h1.connection_to(&w.h2_id)
            .unwrap_or_else(|e| panic!("{e}"));
    problems.check(after != "relayed", || {
        "after the transfer, h1's `ferry nat` shows h2 relayed".to_owned()
    });
    problems.check(through_b < 5 * MIB as u64, || {
        format!("b received {through_b} bytes during a direct 50 MiB transfer: it went through the relay")
    });

    print_human_nat(&w.h1);
    let nat = w.nat_with_observers(&w.h1);
    println!(
        "nat: h1 mapping {} ({} UDP observers; all: {}), reachability {}, dht {}",
        nat.mapping,
        udp_observers(&nat),
        observed_summary(&nat),
        nat.reachability,
        nat.dht_mode
    );
    let expected = if udp_observers(&nat) >= 2 {
        "endpoint-independent"
    } else {
        "unknown"
    };
    problems.check(nat.mapping == expected, || {
        format!(
            "h1 is behind a cone NAT and {} peers report its UDP address, so its mapping should be {expected}, not {}: {nat:#?}",
            udp_observers(&nat),
            nat.mapping
        )
    });
    println!(
        "summary cone: find {} ms, {connection}, {rate:.1} MB/s direct; test took {}",
        found.elapsed_ms,
        secs(t0.elapsed())
    );
    problems.finish();
}

/// A symmetric NAT in front of h2: h1 still finds it, they stay relayed, and chat
/// and 50 MiB get through the relay.
#[test]
fn symmetric_nat_stays_relayed_and_still_works() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = take_turn();
    let t0 = Instant::now();
    let mut problems = Problems::default();
    let w = World::new(NatKind::Symmetric, 0);

    let relayed = w.wait_reserved(&w.h2);
    println!(
        "reservation: h2 reachable through b as {relayed} {} after start",
        secs(w.started.elapsed())
    );
    let found = w.find_h2();
    let connection =
        w.h1.connection_to(&w.h2_id)
            .unwrap_or_else(|e| panic!("{e}"));
    println!("connection: h1's `ferry nat` shows h2 {connection}");
    assert_eq!(
        connection, "relayed",
        "h2 is behind a symmetric NAT, so only the relay can reach it"
    );
    let h2_view = w.h2.path_to(&w.h1_id).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "connection: h2's `ferry nat` shows h1 {} ({})",
        h2_view.connection, h2_view.remote_addr
    );
    problems.check(h2_view.connection == "relayed", || {
        format!("h2 reaches h1 only through the relay, but h2's `ferry nat` says {h2_view:?}")
    });

    w.chat(&format!("hello through the relay {}", tag()));

    let (rate, through_b) = w.transfer(50 * MIB, "through the relay");
    problems.check(through_b >= 50 * MIB as u64, || {
        format!("b received only {through_b} bytes during a relayed 50 MiB transfer")
    });
    let after =
        w.h1.connection_to(&w.h2_id)
            .unwrap_or_else(|e| panic!("{e}"));
    println!("connection: after the transfer, h1's `ferry nat` shows h2 {after}");
    problems.check(after == "relayed", || {
        format!("after the transfer, h1's `ferry nat` shows h2 {after}, not relayed")
    });

    print_human_nat(&w.h2);
    let nat = w.nat_with_observers(&w.h2);
    let observers = udp_observers(&nat);
    println!(
        "nat: h2 mapping {} ({observers} UDP observers; all: {}), reachability {}, dht {}",
        nat.mapping,
        observed_summary(&nat),
        nat.reachability,
        nat.dht_mode
    );
    let expected = if observers >= 2 {
        "endpoint-dependent"
    } else {
        "unknown"
    };
    problems.check(nat.mapping == expected, || {
        format!(
            "h2 is behind a symmetric NAT and {observers} peers report its UDP address, so its mapping should be {expected}, not {}: {nat:#?}",
            nat.mapping
        )
    });
    println!(
        "summary symmetric: find {} ms, {connection}, {rate:.1} MB/s relayed; test took {}",
        found.elapsed_ms,
        secs(t0.elapsed())
    );
    problems.finish();
}

/// Cone NATs with 5 % loss on both home links: still found, chat and a 10 MiB get.
#[test]
fn cone_nats_with_loss_still_chat_and_get() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = take_turn();
    let t0 = Instant::now();
    let w = World::new(NatKind::Cone, 5);
    println!(
        "loss: home1 {} and home2 {} drop 5 % of IP frames",
        w.home1.ns, w.home2.ns
    );

    w.wait_reserved(&w.h2);
    let found = w.find_h2();
    w.chat(&format!("hello over lossy links {}", tag()));
    let (rate, _) = w.transfer(10 * MIB, "over lossy links");
    let connection =
        w.h1.connection_to(&w.h2_id)
            .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "summary loss: find {} ms, connected {} then {connection}, {rate:.1} MB/s; test took {}",
        found.elapsed_ms,
        found.connection,
        secs(t0.elapsed())
    );
}

/// A node behind NAT never answers DHT queries; the public bootstrap node does,
/// once peers have dialled it back.
#[test]
fn only_reachable_nodes_become_dht_servers() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = take_turn();
    let w = World::new(NatKind::Cone, 0);

    let mut home_modes = Vec::new();
    let check_home = |home_modes: &mut Vec<String>| {
        for node in [&w.h1, &w.h2] {
            let nat = node.nat().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                nat.dht_mode, "client",
                "{} is behind NAT but answers DHT queries: {nat:#?}",
                node.name
            );
            let seen = format!("{} {}", node.name, nat.reachability);
            if !home_modes.contains(&seen) {
                home_modes.push(seen);
            }
        }
    };
    let b = wait_for("b to become a DHT server", DHT_SERVER_TIMEOUT, || {
        check_home(&mut home_modes);
        let nat = w.b.nat()?;
        if nat.dht_mode == "server" {
            Ok(nat)
        } else {
            Err(format!("{nat:#?}"))
        }
    });
    println!(
        "dht: b is a server {} after h1 and h2 started (reachability {}, public addr {:?})",
        secs(w.started.elapsed()),
        b.reachability,
        b.public_addr
    );
    // Watch the home nodes a while longer: they must stay clients.
    let watch = Duration::from_secs(15);
    let until = Instant::now() + watch;
    while Instant::now() < until {
        check_home(&mut home_modes);
        thread::sleep(Duration::from_secs(1));
    }
    let c = w.c.nat().unwrap_or_else(|e| panic!("{e}"));
    println!(
        "dht: h1 and h2 stayed clients for {watch:?} more (reachability seen: {}); c is {} (reachability {})",
        home_modes.join(", "),
        c.dht_mode,
        c.reachability
    );
}
