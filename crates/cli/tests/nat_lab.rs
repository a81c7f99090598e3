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
//! Variants ([`Setup`]): h2 beside h1 on home 1's LAN (192.168.1.11, same
//! router); b with a `config.toml` that tightens its relay limits; home nodes
//! without LAN discovery; c or h1 started later by the test; a hostile peer
//! `x` at 10.80.0.3 (`examples/hostile_peer.rs`).
//!
//! Tests, each printing its figures (time to connect by id, how, transfer rate):
//! - cone NATs: `ferry find` by peer id, the hole punch, chat, and a 50 MiB
//!   `ferry get` over the direct path (the relay's byte counters prove it);
//! - a symmetric NAT on one side: it stays relayed, and chat and the 50 MiB get
//!   still work, through the relay;
//! - cone NATs with 5 % loss on both home links: chat and a 10 MiB get;
//! - a node behind NAT stays a DHT client while the public bootstrap node
//!   becomes a DHT server;
//! - relay limits hold: a relay allowed one reservation grants one and refuses
//!   the rest; a relay that cuts circuits at 1 MiB relays no more than that per
//!   circuit during a 20 MiB get, and still grants new circuits after;
//! - oversize DHT records (over the 1 KiB value or the 16 KiB message limit)
//!   sent to b by a hostile peer are refused, and b stays healthy;
//! - `ferry get ID` by bare content id: the provider record in the DHT leads h1
//!   to h2;
//! - two nodes on one LAN behind one NAT, both with relayed addresses, talk
//!   over the LAN once they find each other by id.
//!
//! Run: `cargo test -p ferry --test nat_lab -- --nocapture --test-threads 1` (as
//! root). `FERRY_LAB_KEEP=1` keeps the namespaces, data directories and logs after
//! a run for a look; `RUST_LOG` sets the nodes' log filter.

mod hostile;
mod lab;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ferry_node::control::types::{
    Connection, FindReply, GetResult, IdInfo, MessageView, NatInfo, PeerPath, RelayInfo,
    ShareResult,
};
use ferry_testkit::wait::wait_until;
use lab::{Host, Iface, Lab, Segment};
use serde::de::DeserializeOwned;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const MIB: usize = 1024 * 1024;

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
/// A `ferry get` through a relay whose circuits are cut every MiB: it may
/// well never finish, and this is how long it gets to show what it does.
const CUT_GET_TIMEOUT: Duration = Duration::from_secs(45);
/// A node stops within this of SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// b notices that stopped nodes have gone within this.
const GONE_TIMEOUT: Duration = Duration::from_secs(30);
/// A relay refuses a reservation over its limit within this of the nodes
/// starting, and the outcome is watched this much longer for changes.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(5);
/// Two peers on one LAN, found through the relay, use the LAN within this.
const LAN_TIMEOUT: Duration = Duration::from_secs(20);
/// The hostile peer's whole run: connect, three puts, three gets.
const HOSTILE_TIMEOUT: Duration = Duration::from_secs(120);

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
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

/// What a `ferry get` on h1 came to.
struct Fetched {
    /// Its JSON answer, or what went wrong (it failed, or timed out).
    result: Result<GetResult, String>,
    took: Duration,
    /// Bytes b received and sent on the public segment meanwhile.
    b_rx: u64,
    b_tx: u64,
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
    /// Directives added to the node's log filter (`RUST_LOG` syntax).
    log_also: Option<&'static str>,
    child: Option<Child>,
}

impl Node {
    fn new(name: &str, host: Host, base: &Path) -> Node {
        Node {
            name: name.to_owned(),
            host,
            data_dir: base.join(name),
            log: base.join(format!("{name}.log")),
            log_also: None,
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
            .env("RUST_LOG", {
                let base = std::env::var("RUST_LOG").unwrap_or_else(|_| {
                    "info,libp2p_dcutr=debug,libp2p_autonat=debug,libp2p_relay=debug".into()
                });
                match self.log_also {
                    Some(also) => format!("{base},{also}"),
                    None => base,
                }
            })
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log);
        self.child = Some(command.spawn().expect("spawn ferry start"));
        wait_until(&format!("{} to answer", self.name), START_TIMEOUT, || {
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

    /// Stops the node as Ctrl-C would (SIGTERM), or kills it if it has not
    /// exited within [`STOP_TIMEOUT`].
    fn stop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        // `ip netns exec` execs ferry, so the child is the node itself.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                self.child = None;
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        println!("{} did not stop within {STOP_TIMEOUT:?}: killed", self.name);
        self.kill();
    }

    /// Whether the node's process is still running.
    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The lines of the node's log that contain `text`.
    fn log_lines(&self, text: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(text))
            .map(str::to_owned)
            .collect()
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
            Err(lab::node::cli_failure(args, &self.name, &out))
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

    fn connection_to(&self, peer_id: &str) -> Result<Connection, String> {
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

/// Where h2 lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Home2 {
    /// In home 2, behind its own router running this NAT.
    Behind(NatKind),
    /// Beside h1 in home 1 (192.168.1.11): one LAN, one router.
    BesideH1,
}

/// How a [`World`] is built. `Setup::default()`: both homes behind cone NATs,
/// no loss, b with ferry's default relay limits, home nodes with LAN
/// discovery on.
struct Setup {
    home2: Home2,
    /// % loss on both home segments.
    loss: u32,
    /// b's `config.toml` (relay limits), written to its data directory
    /// before it starts.
    b_config: Option<&'static str>,
    /// Directives added to b's log filter.
    b_log: Option<&'static str>,
    /// mDNS and beacons on the home nodes; without them, home nodes learn of
    /// each other only through the bootstrap nodes and the DHT.
    home_discovery: bool,
    /// A node the test starts itself, later ([`World::start_late`]).
    late: Option<Late>,
}

/// A node [`World`] leaves for the test to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Late {
    /// c: the home nodes then bootstrap from b alone.
    C,
    H1,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            home2: Home2::Behind(NatKind::Cone),
            loss: 0,
            b_config: None,
            b_log: None,
            home_discovery: true,
            late: None,
        }
    }
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
    c_id: String,
    h1_id: String,
    h2_id: String,
    public: Segment,
    home1: Segment,
    /// h2's home segment (home 1's, when h2 lives beside h1).
    home2: Segment,
    home_discovery: bool,
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
        World::with(Setup {
            home2: Home2::Behind(home2_nat),
            loss,
            ..Setup::default()
        })
    }

    /// Builds the lab as `setup` says and starts b, c, h1 and h2.
    fn with(setup: Setup) -> World {
        let lab = Lab::new();
        let dir = lab.tempdir();
        let public = lab.bridge_segment("public", PUBLIC_NET);
        let home1 = lab.bridge_segment("home1", "192.168.1.0/24");
        let b_host = lab.host("b");
        lab.attach(&b_host, &public, B_OCTET);
        let c_host = lab.host("c");
        lab.attach(&c_host, &public, C_OCTET);

        // A home: its segment behind a router, and its first host at .10.
        let home = |i: u32, segment: &Segment, nat: NatKind| -> (Host, Iface) {
            let router = lab.router(&format!("r{i}"));
            let inside = lab.attach(&router, segment, 1);
            let outside = lab.attach(&router, &public, 10 + i);
            router.masquerade(&outside, nat == NatKind::Symmetric);
            router.firewall_inbound(&outside);
            let host = lab.host(&format!("h{i}"));
            lab.attach(&host, segment, 10);
            host.add_default_route(inside.addr);
            (host, inside)
        };
        let (h1_host, gateway1) = home(1, &home1, NatKind::Cone);
        let (h2_host, home2) = match setup.home2 {
            Home2::Behind(nat) => {
                let home2 = lab.bridge_segment("home2", "192.168.2.0/24");
                (home(2, &home2, nat).0, home2)
            }
            Home2::BesideH1 => {
                let host = lab.host("h2");
                lab.attach(&host, &home1, 11);
                host.add_default_route(gateway1.addr);
                (host, home1.clone())
            }
        };
        if setup.loss > 0 {
            home1.set_loss(setup.loss);
            if setup.home2 != Home2::BesideH1 {
                home2.set_loss(setup.loss);
            }
        }

        let mut world = World {
            b: Node::new("b", b_host, dir.path()),
            c: Node::new("c", c_host, dir.path()),
            h1: Node::new("h1", h1_host, dir.path()),
            h2: Node::new("h2", h2_host, dir.path()),
            b_id: String::new(),
            c_id: String::new(),
            h1_id: String::new(),
            h2_id: String::new(),
            public,
            home1,
            home2,
            home_discovery: setup.home_discovery,
            started: Instant::now(),
            dir: Some(dir),
            lab,
        };
        println!(
            "lab {}: public {PUBLIC_NET}, home1 behind a cone NAT, {}{}{}",
            world.lab.prefix(),
            match setup.home2 {
                Home2::Behind(NatKind::Cone) => "home2 behind a cone NAT",
                Home2::Behind(NatKind::Symmetric) => "home2 behind a symmetric NAT",
                Home2::BesideH1 => "h2 beside h1 in home1",
            },
            if setup.loss > 0 {
                format!(", {} % loss on the home links", setup.loss)
            } else {
                String::new()
            },
            if setup.home_discovery {
                ""
            } else {
                ", no LAN discovery on the home nodes"
            }
        );
        if let Some(config) = setup.b_config {
            std::fs::create_dir_all(&world.b.data_dir).unwrap();
            std::fs::write(world.b.data_dir.join("config.toml"), config).unwrap();
            println!("b's config.toml: {}", config.trim().replace('\n', ", "));
        }
        world.b.log_also = setup.b_log;
        world.start_nodes(setup.late);
        world
    }

    /// A host of its own on the public segment, at `.octet`.
    fn public_host(&self, name: &str, octet: u32) -> Host {
        let host = self.lab.host(name);
        self.lab.attach(&host, &self.public, octet);
        host
    }

    /// Starts b, then c, h1 and h2 unless `late` says to leave one for the
    /// test to start ([`World::start_late`]).
    fn start_nodes(&mut self, late: Option<Late>) {
        let mut b_args = public_flags();
        b_args.push("--relay".into());
        self.b_id = self.b.start(&b_args).peer_id;
        if late != Some(Late::C) {
            self.start_c();
        }
        self.started = Instant::now();
        if late != Some(Late::H1) {
            self.start_h1();
        }
        self.h2_id = self.h2.start(&self.home_args()).peer_id;
        let or_late = |id: &str| {
            if id.is_empty() {
                "(starts later)".to_owned()
            } else {
                id.to_owned()
            }
        };
        println!(
            "nodes: b {} (relay), c {}, h1 {}, h2 {}",
            self.b_id,
            or_late(&self.c_id),
            or_late(&self.h1_id),
            self.h2_id
        );
    }

    /// Starts the node `Setup::late` held back.
    fn start_late(&mut self, which: Late) {
        let t = Instant::now();
        match which {
            Late::C => self.start_c(),
            Late::H1 => self.start_h1(),
        }
        let (name, id) = match which {
            Late::C => ("c", &self.c_id),
            Late::H1 => ("h1", &self.h1_id),
        };
        println!("nodes: {name} {id} started now, in {}", secs(t.elapsed()));
    }

    fn start_c(&mut self) {
        let mut c_args = public_flags();
        c_args.extend(as_bootstrap_flags(&bootstrap_addrs(B_OCTET, &self.b_id)));
        self.c_id = self.c.start(&c_args).peer_id;
    }

    fn start_h1(&mut self) {
        self.h1_id = self.h1.start(&self.home_args()).peer_id;
    }

    /// What a person at home types: the bootstrap addresses, and no UPnP
    /// (there is no router to ask here, and no UPnP outside the lab). b's
    /// TCP and QUIC addresses, c's QUIC one (if c runs): the mapping is
    /// judged from QUIC (UDP) observations, and c's at least is sure to be
    /// one.
    fn home_args(&self) -> Vec<String> {
        let mut args = as_bootstrap_flags(&bootstrap_addrs(B_OCTET, &self.b_id));
        if !self.c_id.is_empty() {
            args.extend(as_bootstrap_flags(
                &bootstrap_addrs(C_OCTET, &self.c_id)[..1],
            ));
        }
        args.push("--no-upnp".into());
        if !self.home_discovery {
            args.extend(["--no-mdns".into(), "--no-beacon".into()]);
        }
        args
    }

    fn nodes(&self) -> [&Node; 4] {
        [&self.b, &self.c, &self.h1, &self.h2]
    }

    /// The lab's name for a peer id (`b`, `c`, `h1`, `h2`), or the id.
    fn name_of<'a>(&'a self, peer_id: &'a str) -> &'a str {
        [
            (&self.b_id, "b"),
            (&self.c_id, "c"),
            (&self.h1_id, "h1"),
            (&self.h2_id, "h2"),
        ]
        .into_iter()
        .find(|(id, _)| id.as_str() == peer_id)
        .map_or(peer_id, |(_, name)| name)
    }

    /// The peers b's log says it granted a reservation to, and those it
    /// refused one (over its limits), by name, in log order.
    fn b_reservations(&self) -> (Vec<String>, Vec<String>) {
        let peers = |text: &str| -> Vec<String> {
            self.b
                .log_lines(text)
                .iter()
                .filter_map(|line| line.split("peer=").nth(1))
                .map(|id| self.name_of(id.trim()).to_owned())
                .collect()
        };
        (
            peers("relaying for a peer (reservation)"),
            peers("relay reservation refused"),
        )
    }

    /// What `node`'s `ferry nat` shows about b as its relay (`None`: nothing).
    fn relay_b_seen_by(&self, node: &Node) -> Option<RelayInfo> {
        let nat = node.nat().unwrap_or_else(|e| panic!("{e}"));
        nat.relays.into_iter().find(|r| r.peer_id == self.b_id)
    }

    /// Stops h1 and h2 (SIGTERM) and waits until b no longer lists either
    /// among its connected peers, so every circuit b relayed for them has
    /// ended (and been logged).
    fn stop_homes_and_wait_gone(&mut self) {
        self.h1.stop();
        self.h2.stop();
        let t = Instant::now();
        wait_until("b to see h1 and h2 gone", GONE_TIMEOUT, || {
            let nat = self.b.nat()?;
            let left: Vec<&str> = nat
                .peers
                .iter()
                .filter(|p| p.peer_id == self.h1_id || p.peer_id == self.h2_id)
                .map(|p| self.name_of(&p.peer_id))
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("b is still connected to {left:?}"))
            }
        });
        println!(
            "stop: h1 and h2 stopped; b saw them gone {} later",
            secs(t.elapsed())
        );
    }

    /// Waits until `node` holds a reservation on b with a relayed address.
    fn wait_reserved(&self, node: &Node) -> String {
        wait_until(
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

    /// Waits until `node` answers DHT queries (AutoNAT found it reachable).
    /// `also` runs on every round (and may panic).
    fn wait_dht_server(&self, node: &Node, mut also: impl FnMut()) -> NatInfo {
        let nat = wait_until(
            &format!("{} to become a DHT server", node.name),
            DHT_SERVER_TIMEOUT,
            || {
                also();
                let nat = node.nat()?;
                if nat.dht_mode == "server" {
                    Ok(nat)
                } else {
                    Err(format!("{nat:#?}"))
                }
            },
        );
        println!(
            "dht: {} is a server {} after h1 and h2 started (reachability {}, public addr {:?})",
            node.name,
            secs(self.started.elapsed()),
            nat.reachability,
            nat.public_addr
        );
        nat
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
        let (reply, took) = wait_until("h1 to find h2 by its peer id", FIND_TIMEOUT, || {
            attempts += 1;
            let t = Instant::now();
            let text = self.h1.cli(&args).inspect_err(|e| {
                println!(
                    "find: attempt {attempts} failed after {}: {e}",
                    secs(t.elapsed())
                )
            })?;
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
        wait_until("the chat message to reach h2", CHAT_TIMEOUT, || {
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
        let share = self.share_random(size);
        let fetched = self.get(&share.ticket, size, GET_TIMEOUT);
        let get = fetched.result.unwrap_or_else(|e| panic!("{e}"));
        self.check_fetched(&get, &share.id, size);
        let rate = size as f64 / fetched.took.as_secs_f64() / 1e6;
        println!(
            "get: {} MiB h2 -> h1 {what} in {} = {rate:.1} MB/s, blake3 identical; b received {:.1} MiB and sent {:.1} MiB meanwhile",
            size / MIB,
            secs(fetched.took),
            fetched.b_rx as f64 / MIB as f64,
            fetched.b_tx as f64 / MIB as f64,
        );
        (rate, fetched.b_rx)
    }

    /// h2 shares a file of `size` random bytes (`random-SIZE.bin`); checks
    /// that the share's id is the file's BLAKE3.
    fn share_random(&self, size: usize) -> ShareResult {
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
        share
    }

    /// h1 runs `ferry get WHAT -o fetched-SIZE.bin --json` (WHAT: a ticket
    /// or a bare id), killed after `timeout`.
    fn get(&self, what: &str, size: usize, timeout: Duration) -> Fetched {
        let output = self.fetched_path(size);
        let (rx0, tx0) = self.relay_bytes();
        let t = Instant::now();
        let get_args = ["get", what, "-o", output.to_str().unwrap(), "--json"];
        let result = self
            .h1
            .cli_timeout(&get_args, timeout)
            .and_then(|text| self.h1.parse(&get_args, &text));
        let took = t.elapsed();
        let (rx1, tx1) = self.relay_bytes();
        Fetched {
            result,
            took,
            b_rx: rx1 - rx0,
            b_tx: tx1 - tx0,
        }
    }

    fn fetched_path(&self, size: usize) -> PathBuf {
        let dir = self.dir.as_ref().unwrap().path();
        dir.join(format!("fetched-{size}.bin"))
    }

    /// Checks that `get` fetched `want` (`size` bytes) from h2, all of it in
    /// this job, and that the file h1 wrote is the one h2 shared.
    fn check_fetched(&self, get: &GetResult, want: &str, size: usize) {
        assert_eq!(get.id, want, "{get:#?}");
        assert_eq!(get.size, size as u64, "{get:#?}");
        assert_eq!(get.fetched_bytes, size as u64, "{get:#?}");
        assert!(
            get.providers
                .iter()
                .any(|p| p.peer_id == self.h2_id && p.bytes == get.fetched_bytes),
            "h2 did not send it all: {get:#?}"
        );
        let fetched = std::fs::read(self.fetched_path(size)).unwrap();
        assert_eq!(fetched.len(), size, "the fetched file has the wrong size");
        assert_eq!(
            blake3::hash(&fetched).to_hex().to_string(),
            want,
            "the fetched file differs from the shared one"
        );
    }

    /// Waits until at least two peers report `node`'s UDP address, which is
    /// what its mapping is judged from; returns its NAT info.
    fn nat_with_observers(&self, node: &Node) -> NatInfo {
        wait_until(
            &format!("two peers to report {}'s UDP address", node.name),
            OBSERVERS_TIMEOUT,
            || {
                let nat = node.nat()?;
                if udp_observers(&nat) >= 2 {
                    Ok(nat)
                } else {
                    Err(format!("{nat:#?}"))
                }
            },
        )
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
        lab::keep_if_asked(&mut self.dir);
    }
}

fn lab_public_ip(octet: u32) -> std::net::Ipv4Addr {
    let (network, _) = PUBLIC_NET.split_once('/').unwrap();
    let network: std::net::Ipv4Addr = network.parse().unwrap();
    std::net::Ipv4Addr::from(u32::from(network) + octet)
}

/// The flags of a public node: no LAN discovery or UPnP, fixed ports.
fn public_flags() -> Vec<String> {
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
}

/// A public node's QUIC and TCP addresses.
fn bootstrap_addrs(octet: u32, id: &str) -> Vec<String> {
    let ip = lab_public_ip(octet);
    vec![
        format!("/ip4/{ip}/udp/{PUBLIC_PORT}/quic-v1/p2p/{id}"),
        format!("/ip4/{ip}/tcp/{PUBLIC_PORT}/p2p/{id}"),
    ]
}

fn as_bootstrap_flags(addrs: &[String]) -> Vec<String> {
    addrs
        .iter()
        .flat_map(|a| ["--bootstrap".to_owned(), a.clone()])
        .collect()
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

/// A log line without its timestamp.
fn log_message(line: &str) -> &str {
    line.split_once(' ').map_or(line, |(_, rest)| rest.trim())
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
    let _turn = lab::take_turn();
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
    let (connection, remote) = wait_until(
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
    problems.check(nat.mapping == "endpoint-independent", || {
        format!(
            "h1 is behind a cone NAT and {} peers report its UDP address, so its mapping should be endpoint-independent, not {}: {nat:#?}",
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
    let _turn = lab::take_turn();
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
    problems.check(nat.mapping == "endpoint-dependent", || {
        format!(
            "h2 is behind a symmetric NAT and {observers} peers report its UDP address, so its mapping should be endpoint-dependent, not {}: {nat:#?}",
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
    let _turn = lab::take_turn();
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
    let _turn = lab::take_turn();
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
    w.wait_dht_server(&w.b, || check_home(&mut home_modes));
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

/// Relay limits hold (reservations): b, allowed one reservation, grants it to
/// h1 or h2 and refuses the other, and then c too.
///
/// c starts after h1 and h2 here: b offers relaying only once AutoNAT finds
/// it reachable, and at that moment every node connected to it asks at once,
/// c among them (its own AutoNAT verdict is still pending), so with c
/// running from the start b's one slot goes to c about one run in three.
#[test]
fn relay_reservation_limit_holds() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let mut problems = Problems::default();
    let mut w = World::with(Setup {
        b_config: Some("relay_max_reservations = 1\n"),
        late: Some(Late::C),
        ..Setup::default()
    });

    wait_until(
        "b to grant one reservation and refuse another",
        REFUSAL_TIMEOUT,
        || {
            let (granted, refused) = w.b_reservations();
            if !granted.is_empty() && !refused.is_empty() {
                Ok(())
            } else {
                Err(format!("b granted {granted:?}, refused {refused:?}"))
            }
        },
    );
    println!(
        "relay limit: b granted and refused reservations {} after h1 and h2 started",
        secs(w.started.elapsed())
    );
    w.start_late(Late::C);
    wait_until("b to refuse c a reservation", REFUSAL_TIMEOUT, || {
        let (_, refused) = w.b_reservations();
        if refused.iter().any(|r| r == "c") {
            Ok(())
        } else {
            Err(format!("b refused {refused:?}"))
        }
    });
    println!("relay limit: watching {SETTLE:?} more");
    thread::sleep(SETTLE);
    let (granted, refused) = w.b_reservations();
    println!("relay limit: b's log: granted to {granted:?}, refused to {refused:?}");
    let mut holders = Vec::new();
    for node in [&w.h1, &w.h2, &w.c] {
        let seen = w.relay_b_seen_by(node);
        println!(
            "relay limit: {}'s `ferry nat` shows b {}",
            node.name,
            match &seen {
                Some(r) => format!(
                    "reserved {}, relayed address {:?}",
                    r.reserved, r.relayed_addr
                ),
                None => "not as a relay".to_owned(),
            }
        );
        if seen.is_some_and(|r| r.reserved) {
            holders.push(node.name.clone());
        }
    }
    assert_eq!(
        granted.len(),
        1,
        "b, allowed one reservation, granted {}: {granted:?}",
        granted.len()
    );
    problems.check(holders == granted, || {
        format!("b says it granted its reservation to {granted:?}, the nodes' `ferry nat` say {holders:?}")
    });
    problems.check(granted[0] == "h1" || granted[0] == "h2", || {
        format!(
            "b's one reservation went to {}, not to h1 or h2",
            granted[0]
        )
    });
    for node in ["h1", "h2", "c"] {
        if !granted.iter().any(|g| g == node) {
            problems.check(refused.iter().any(|r| r == node), || {
                format!("{node} holds no reservation, but b's log shows no refusal for it")
            });
        }
    }
    println!(
        "summary relay reservations: limit 1, granted to {}, refused {} time(s) ({refused:?}); test took {}",
        granted[0],
        refused.len(),
        secs(t0.elapsed())
    );
    problems.finish();
}

/// Relay limits hold (bytes): b cuts each circuit after 1 MiB, so a 20 MiB
/// get from h2 behind a symmetric NAT cannot go through one circuit; b never
/// relays more than the limit per circuit it accepted, and new circuits
/// (chat, a small get) still work afterwards.
#[test]
fn relay_circuit_byte_limit_holds() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let mut problems = Problems::default();
    const LIMIT: u64 = MIB as u64;
    let mut w = World::with(Setup {
        home2: Home2::Behind(NatKind::Symmetric),
        b_config: Some("relay_max_circuit_bytes = 1048576\n"),
        ..Setup::default()
    });
    let circuits_closed = |w: &World| w.b.log_lines("relay circuit closed");

    w.wait_reserved(&w.h2);
    let (rx0, _) = w.relay_bytes();
    let found = w.find_h2();
    assert_eq!(found.connection, "relayed", "{found:#?}");

    let size = 20 * MIB;
    let share = w.share_random(size);
    let big = w.get(&share.ticket, size, CUT_GET_TIMEOUT);
    let cut_so_far = circuits_closed(&w).len();
    let outcome = match &big.result {
        Ok(get) => {
            w.check_fetched(get, &share.id, size);
            format!(
                "finished in {} ({:.1} MB/s), blake3 identical",
                secs(big.took),
                size as f64 / big.took.as_secs_f64() / 1e6
            )
        }
        Err(e) => format!("did not finish, after {}: {e}", secs(big.took)),
    };
    println!(
        "get: 20 MiB h2 -> h1 through circuits cut at 1 MiB {outcome}; b received {:.1} MiB and sent {:.1} MiB meanwhile; {cut_so_far} circuit(s) closed so far",
        big.b_rx as f64 / MIB as f64,
        big.b_tx as f64 / MIB as f64,
    );

    // New circuits are still granted: find h2 again, chat, a small get.
    let again = w.find_h2();
    println!("after: h1 reaches h2 {} again", again.connection);
    w.chat(&format!("hello after the cut circuits {}", tag()));
    let small_size = 256 * 1024;
    let small = w.share_random(small_size);
    let fetched = w.get(&small.ticket, small_size, COMMAND_TIMEOUT);
    match &fetched.result {
        Ok(get) => {
            w.check_fetched(get, &small.id, small_size);
            println!(
                "after: a 256 KiB get through the relay took {}, blake3 identical",
                secs(fetched.took)
            );
        }
        Err(e) => problems.check(false, || {
            format!("after the cut circuits, a 256 KiB get through the relay failed: {e}")
        }),
    }

    // Every circuit ends once h1 and h2 are gone: count them all.
    w.stop_homes_and_wait_gone();
    let (rx1, _) = w.relay_bytes();
    let closed = circuits_closed(&w);
    let at_limit = closed
        .iter()
        .filter(|l| l.contains("Max circuit bytes"))
        .count();
    let through_b = rx1 - rx0;
    // What b may receive for the circuits: the limit for each (plus what
    // one read may overshoot), with room for encryption, multiplexing and
    // TCP/IP framing on the wire, plus the peers' own traffic with b.
    let allowed = closed.len() as u64 * (LIMIT + 64 * 1024) * 5 / 4 + 2 * MIB as u64;
    println!(
        "relay: b relayed {} circuit(s) in all, {at_limit} cut at the limit; b received {:.1} MiB from the find to the end, {:.1} MiB allowed for {} circuits of 1 MiB",
        closed.len(),
        through_b as f64 / MIB as f64,
        allowed as f64 / MIB as f64,
        closed.len()
    );
    for line in &closed {
        println!("b's log: {}", log_message(line));
    }
    assert!(
        !closed.is_empty(),
        "b's log shows no relayed circuit at all"
    );
    problems.check(through_b <= allowed, || {
        format!(
            "b received {through_b} bytes for {} circuits limited to {LIMIT} bytes each",
            closed.len()
        )
    });
    problems.check(through_b >= at_limit as u64 * LIMIT, || {
        format!(
            "{at_limit} circuits were cut at {LIMIT} bytes, but b received only {through_b} bytes"
        )
    });
    problems.check(big.result.is_ok() || at_limit > 0, || {
        "the 20 MiB get did not finish, yet no circuit was cut at the limit".to_owned()
    });
    println!(
        "summary relay bytes: limit 1 MiB, 20 MiB get {}, {} circuits ({at_limit} cut at the limit), b received {:.1} MiB; test took {}",
        if big.result.is_ok() {
            "finished"
        } else {
            "did not finish"
        },
        closed.len(),
        through_b as f64 / MIB as f64,
        secs(t0.elapsed())
    );
    problems.finish();
}

/// What `hostile_peer dht-oversize` prints.
#[derive(Debug, serde::Deserialize)]
struct OversizeReport {
    peer_id: String,
    target_serves_dht: bool,
    puts: Vec<PutReport>,
    still_connected: bool,
}

#[derive(Debug, serde::Deserialize)]
struct PutReport {
    what: String,
    value_bytes: usize,
    stored: bool,
    error: Option<String>,
    put_ms: u64,
    found_after: bool,
    get_error: Option<String>,
}

/// Oversize DHT records are refused: a peer on the internet stores records
/// on b (a DHT server) over ferry's Kademlia protocol: a small one is kept,
/// one over the 1 KiB value limit and one in a message over the 16 KiB packet
/// limit are not; b stays healthy, and still serves the DHT to h1.
#[test]
fn oversize_dht_records_are_refused() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let mut problems = Problems::default();
    let mut w = World::with(Setup {
        // The refusal of an oversize message is logged at trace level.
        b_log: Some("libp2p_kad::handler=trace"),
        ..Setup::default()
    });
    w.wait_dht_server(&w.b, || {});

    let x = w.public_host("x", 3);
    let data = w.dir.as_ref().unwrap().path().join("x");
    let target = format!(
        "/ip4/{}/tcp/{PUBLIC_PORT}/p2p/{}",
        lab_public_ip(B_OCTET),
        w.b_id
    );
    let mut command = x.command(hostile::binary());
    command
        .arg("dht-oversize")
        .arg(&data)
        .arg(&target)
        .env("RUST_LOG", "off");
    let out = run_with_deadline(command, HOSTILE_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the hostile peer failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: OversizeReport = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the hostile peer's report ({e}): {stdout}"));
    println!(
        "hostile: x (10.80.0.3, {}) against b; b serves the DHT: {}",
        report.peer_id, report.target_serves_dht
    );
    for put in &report.puts {
        println!(
            "hostile: put {} ({} B value): {} in {} ms; {}",
            put.what,
            put.value_bytes,
            if put.stored {
                "stored".to_owned()
            } else {
                format!("refused ({})", put.error.as_deref().unwrap_or("no error"))
            },
            put.put_ms,
            if put.found_after {
                "b hands it out afterwards".to_owned()
            } else {
                format!(
                    "b does not have it afterwards ({})",
                    put.get_error.as_deref().unwrap_or("not found")
                )
            }
        );
    }
    println!(
        "hostile: still connected to b at the end: {}",
        report.still_connected
    );
    assert!(
        report.target_serves_dht,
        "b does not serve the DHT, so nothing was tested: {report:#?}"
    );
    assert_eq!(report.puts.len(), 3, "{report:#?}");
    let small = &report.puts[0];
    assert!(
        small.stored && small.found_after,
        "b should keep a small record (the control case): {small:#?}"
    );
    for put in &report.puts[1..] {
        problems.check(!put.stored && !put.found_after, || {
            format!("b kept a record it should have refused: {put:#?}")
        });
    }

    // b is healthy: it runs, answers, still serves the DHT, to h1 too.
    assert!(w.b.running(), "b exited; log:\n{}", w.b.log_tail(50));
    let id: IdInfo =
        w.b.json(&["id", "--json"])
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(id.peer_id, w.b_id);
    let nat = w.b.nat().unwrap_or_else(|e| panic!("{e}"));
    problems.check(nat.dht_mode == "server", || {
        format!("after the oversize records, b is a DHT {}", nat.dht_mode)
    });
    let value_refusals = w.b.log_lines("Record not stored");
    let packet_refusals = w.b.log_lines("exceeds maximum");
    for line in value_refusals.iter().chain(&packet_refusals) {
        println!("b's log: {}", log_message(line));
    }
    problems.check(!value_refusals.is_empty(), || {
        "b's log does not show the over-limit record refused (\"Record not stored\")".to_owned()
    });
    problems.check(!packet_refusals.is_empty(), || {
        "b's log does not show the oversize message refused (\"exceeds maximum\")".to_owned()
    });
    let found = w.find_h2();
    println!(
        "summary oversize dht: 2 KiB value {}, 64 KiB message {}, b healthy (find through it {} ms); test took {}",
        if report.puts[1].stored {
            "STORED"
        } else {
            "refused"
        },
        if report.puts[2].stored {
            "STORED"
        } else {
            "refused"
        },
        found.elapsed_ms,
        secs(t0.elapsed())
    );
    problems.finish();
}

/// `ferry get ID` with the bare content id: h1, connected to b and c but not
/// to h2, learns from the provider record in the DHT that h2 has it, and
/// fetches it.
///
/// h1 starts after h2 has shared: in a lab this small, every DHT walk reaches
/// every node (b lists nodes behind NAT too, with their relayed addresses),
/// so h2's announcement would otherwise connect it to h1 before the get.
/// h1's own first walk starts 0.5 s after it meets b; the get goes first.
#[test]
fn get_by_bare_id_through_the_dht() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let mut problems = Problems::default();
    let mut w = World::with(Setup {
        late: Some(Late::H1),
        ..Setup::default()
    });
    // The provider record goes to DHT servers: wait until there is one.
    w.wait_dht_server(&w.b, || {});
    w.wait_reserved(&w.h2);

    // Big enough to be in flight when the hole punch replaces the relayed
    // connection the get starts on.
    let size = 10 * MIB;
    let share = w.share_random(size);
    let shared = Instant::now();
    w.start_late(Late::H1);
    // b identified to h1 (so h1's DHT knows b): b reports h1's address.
    wait_until("b to identify itself to h1", COMMAND_TIMEOUT, || {
        let nat = w.h1.nat()?;
        if nat.observed.iter().any(|o| o.by_peer == w.b_id) {
            Ok(())
        } else {
            Err(format!("{nat:#?}"))
        }
    });
    let before = w.h1.path_to(&w.h2_id);
    problems.check(before.is_err(), || {
        format!(
            "h1 was already connected to h2 before the get ({before:?}): the DHT was not needed"
        )
    });
    // One attempt: the get starts on the relayed connection, and the hole
    // punch replaces it while requests are in flight; the download carries
    // on over the direct connection.
    let fetched = w.get(&share.id, size, GET_TIMEOUT);
    let took = fetched.took;
    let get = fetched.result.unwrap_or_else(|e| {
        // How it failed, as the nodes saw it.
        let mut lines: Vec<(String, &str)> = Vec::new();
        for (node, text) in [
            (&w.h1, "download failed"),
            (&w.h1, "disconnected"),
            (&w.h2, "closing the relayed one"),
            (&w.h2, "hole punched"),
        ] {
            for line in node.log_lines(text) {
                if line.contains(&w.h2_id) || line.contains(&w.h1_id) || text == "download failed" {
                    lines.push((line, &node.name));
                }
            }
        }
        lines.sort();
        for (line, name) in lines {
            println!("{name}'s log: {line}");
        }
        panic!("`ferry get ID` failed: {e}")
    });
    w.check_fetched(&get, &share.id, size);
    let path = w.h1.path_to(&w.h2_id).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "get by id: {} MiB from h2 in {} ({:.1} MB/s), blake3 identical, {} after the share; h1 reaches h2 {} over {}",
        size / MIB,
        secs(took),
        size as f64 / took.as_secs_f64() / 1e6,
        secs(shared.elapsed()),
        path.connection,
        path.remote_addr
    );
    let from_dht =
        w.h1.log_lines("provider found in the DHT")
            .into_iter()
            .filter(|l| l.contains(&w.h2_id) && l.contains(&share.id))
            .collect::<Vec<_>>();
    for line in &from_dht {
        println!("h1's log: {}", log_message(line));
    }
    problems.check(!from_dht.is_empty(), || {
        "h1's log does not show h2 found as a provider in the DHT".to_owned()
    });

    println!(
        "summary get by id: {} MiB, {}, provider from the DHT: {}; test took {}",
        size / MIB,
        secs(took),
        !from_dht.is_empty(),
        secs(t0.elapsed())
    );
    problems.finish();
}

/// Two hosts on one home LAN, behind one NAT, each with a relayed address on
/// b and no LAN discovery: found by id (through the relay), they talk over
/// the LAN, not through the relay.
#[test]
fn lan_path_preferred_over_the_relay() {
    if lab::skip_unless_root() {
        return;
    }
    let _turn = lab::take_turn();
    let t0 = Instant::now();
    let w = World::with(Setup {
        home2: Home2::BesideH1,
        home_discovery: false,
        ..Setup::default()
    });
    let relayed1 = w.wait_reserved(&w.h1);
    let relayed2 = w.wait_reserved(&w.h2);
    println!("reservation: h1 as {relayed1}");
    println!("reservation: h2 as {relayed2}");
    let found = w.find_h2();
    let t = Instant::now();
    let (h1_view, h2_view) = wait_until("h1 and h2 to show each other as lan", LAN_TIMEOUT, || {
        let h1_view = w.h1.path_to(&w.h2_id)?;
        let h2_view = w.h2.path_to(&w.h1_id)?;
        if h1_view.connection == "lan" && h2_view.connection == "lan" {
            Ok((h1_view, h2_view))
        } else {
            Err(format!("h1 sees {h1_view:?}, h2 sees {h2_view:?}"))
        }
    });
    println!(
        "lan: h1 reaches h2 over {}, h2 reaches h1 over {}, {} after find returned (find said {})",
        h1_view.remote_addr,
        h2_view.remote_addr,
        secs(t.elapsed()),
        found.connection
    );
    w.chat(&format!("hello across the room {}", tag()));
    println!(
        "summary lan: find {} ms ({}), lan both ways; test took {}",
        found.elapsed_ms,
        found.connection,
        secs(t0.elapsed())
    );
}
