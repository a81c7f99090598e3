//! The NAT lab's world: the nodes in their lab hosts, the public segment, the
//! home routers and their NATs ([`World`], built from a [`Setup`]), and the checks
//! and timeouts the tests share.

use ferry_testkit::ferry_binary;
use ferry_testkit::lab;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ferry_node::control::types::{
    Connection, FindReply, GetResult, IdInfo, MessageView, NatInfo, PeerPath, RelayInfo,
    ShareResult,
};
use ferry_testkit::harness::output_with_deadline;
use ferry_testkit::wait::wait_until;
use lab::{Host, Iface, Lab, Segment};
use serde::de::DeserializeOwned;

pub(crate) const MIB: usize = 1024 * 1024;

/// The public segment and the fixed addresses on it.
pub(crate) const PUBLIC_NET: &str = "10.80.0.0/24";
pub(crate) const B_OCTET: u32 = 1;
pub(crate) const C_OCTET: u32 = 2;
/// The port b and c listen on, TCP and QUIC.
pub(crate) const PUBLIC_PORT: u16 = 4001;

/// One CLI command (find dials, get transfers: those have their own).
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// A node answers its control API within this of `ferry start`.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);
/// A node behind NAT holds a relay reservation within this of starting.
pub(crate) const RESERVATION_TIMEOUT: Duration = Duration::from_secs(45);
/// `ferry find` succeeds within this (retried, since the DHT may still be
/// settling when the first attempt is made).
pub(crate) const FIND_TIMEOUT: Duration = Duration::from_secs(60);
/// A relayed connection between cone NATs is upgraded within this.
pub(crate) const HOLE_PUNCH_TIMEOUT: Duration = Duration::from_secs(30);
/// A chat message arrives within this.
pub(crate) const CHAT_TIMEOUT: Duration = Duration::from_secs(20);
/// Two peers have reported our address within this.
pub(crate) const OBSERVERS_TIMEOUT: Duration = Duration::from_secs(20);
/// A public node becomes a DHT server within this.
pub(crate) const DHT_SERVER_TIMEOUT: Duration = Duration::from_secs(60);
/// `ferry share` of up to 50 MiB.
pub(crate) const SHARE_TIMEOUT: Duration = Duration::from_secs(60);
/// `ferry get` of up to 50 MiB, relayed or lossy, in a debug build.
pub(crate) const GET_TIMEOUT: Duration = Duration::from_secs(150);
/// A `ferry get` through a relay whose circuits are cut every MiB: it may
/// well never finish, and this is how long it gets to show what it does.
pub(crate) const CUT_GET_TIMEOUT: Duration = Duration::from_secs(45);
/// A node stops within this of SIGTERM.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// b notices that stopped nodes have gone within this.
pub(crate) const GONE_TIMEOUT: Duration = Duration::from_secs(30);
/// A relay refuses a reservation over its limit within this of the nodes
/// starting, and the outcome is watched this much longer for changes.
pub(crate) const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const SETTLE: Duration = Duration::from_secs(5);
/// Two peers on one LAN, found through the relay, use the LAN within this.
pub(crate) const LAN_TIMEOUT: Duration = Duration::from_secs(20);
/// The hostile peer's whole run: connect, three puts, three gets.
pub(crate) const HOSTILE_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Checks that do not stop a test: each failure is printed when it happens, and
/// [`Problems::finish`] fails the test with all of them, so that one wrong label
/// does not hide the figures and the checks after it.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<String>);

impl Problems {
    pub(crate) fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            let problem = problem();
            println!("PROBLEM: {problem}");
            self.0.push(problem);
        }
    }

    #[track_caller]
    pub(crate) fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} problem(s):\n- {}",
            self.0.len(),
            self.0.join("\n- ")
        );
    }
}

/// What a `ferry get` on h1 came to.
pub(crate) struct Fetched {
    /// Its JSON answer, or what went wrong (it failed, or timed out).
    pub(crate) result: Result<GetResult, String>,
    pub(crate) took: Duration,
    /// Bytes b received and sent on the public segment meanwhile.
    pub(crate) b_rx: u64,
    pub(crate) b_tx: u64,
}

/// One `ferry` node in its lab host.
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) host: Host,
    pub(crate) data_dir: PathBuf,
    pub(crate) log: PathBuf,
    /// Directives added to the node's log filter (`RUST_LOG` syntax).
    pub(crate) log_also: Option<&'static str>,
    pub(crate) child: Option<Child>,
}

impl Node {
    pub(crate) fn new(name: &str, host: Host, base: &Path) -> Node {
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
    pub(crate) fn start(&mut self, args: &[String]) -> IdInfo {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = File::create(&self.log).expect("create the node log");
        let mut command = self.host.command(ferry_binary());
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

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the node as Ctrl-C would (SIGTERM), or kills it if it has not
    /// exited within [`STOP_TIMEOUT`].
    pub(crate) fn stop(&mut self) {
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
    pub(crate) fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The lines of the node's log that contain `text`.
    pub(crate) fn log_lines(&self, text: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(text))
            .map(str::to_owned)
            .collect()
    }

    /// The last `lines` lines of the node's log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `ferry --data-dir DIR ARGS...` in the node's namespace: stdout, or `Err`
    /// with everything it said.
    pub(crate) fn cli_timeout(&self, args: &[&str], timeout: Duration) -> Result<String, String> {
        let mut command = self.host.command(ferry_binary());
        command.arg("--data-dir").arg(&self.data_dir).args(args);
        let out = output_with_deadline(command, b"", timeout)
            .map_err(|e| format!("`ferry {}` on {}: {e}", args.join(" "), self.name))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(lab::node::cli_failure(args, &self.name, &out))
        }
    }

    pub(crate) fn cli(&self, args: &[&str]) -> Result<String, String> {
        self.cli_timeout(args, COMMAND_TIMEOUT)
    }

    pub(crate) fn parse<T: DeserializeOwned>(
        &self,
        args: &[&str],
        text: &str,
    ) -> Result<T, String> {
        serde_json::from_str(text).map_err(|e| {
            format!(
                "`ferry {}` on {}: not the expected JSON ({e}): {text}",
                args.join(" "),
                self.name
            )
        })
    }

    pub(crate) fn json<T: DeserializeOwned>(&self, args: &[&str]) -> Result<T, String> {
        let text = self.cli(args)?;
        self.parse(args, &text)
    }

    pub(crate) fn nat(&self) -> Result<NatInfo, String> {
        self.json(&["nat", "--json"])
    }

    /// How this node is connected to `peer_id`, as `ferry nat` says.
    pub(crate) fn path_to(&self, peer_id: &str) -> Result<PeerPath, String> {
        let nat = self.nat()?;
        nat.peers
            .iter()
            .find(|p| p.peer_id == peer_id)
            .cloned()
            .ok_or_else(|| format!("{} is not connected to {peer_id}: {nat:#?}", self.name))
    }

    pub(crate) fn connection_to(&self, peer_id: &str) -> Result<Connection, String> {
        self.path_to(peer_id).map(|p| p.connection)
    }

    pub(crate) fn read(&self, channel: &str) -> Result<Vec<MessageView>, String> {
        let text = self.cli(&["read", channel, "--json"])?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| self.parse(&["read", channel, "--json"], l))
            .collect()
    }
}

/// Which NAT a home router runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NatKind {
    /// Plain masquerade: endpoint-independent mapping in practice.
    Cone,
    /// Masquerade `fully-random`: a new port per destination.
    Symmetric,
}

/// Where h2 lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Home2 {
    /// In home 2, behind its own router running this NAT.
    Behind(NatKind),
    /// Beside h1 in home 1 (192.168.1.11): one LAN, one router.
    BesideH1,
}

/// How a [`World`] is built. `Setup::default()`: both homes behind cone NATs,
/// no loss, b with ferry's default relay limits, home nodes with LAN
/// discovery on.
pub(crate) struct Setup {
    pub(crate) home2: Home2,
    /// % loss on both home segments.
    pub(crate) loss: u32,
    /// b's `config.toml` (relay limits), written to its data directory
    /// before it starts.
    pub(crate) b_config: Option<&'static str>,
    /// Directives added to b's log filter.
    pub(crate) b_log: Option<&'static str>,
    /// mDNS and beacons on the home nodes; without them, home nodes learn of
    /// each other only through the bootstrap nodes and the DHT.
    pub(crate) home_discovery: bool,
    /// A node the test starts itself, later ([`World::start_late`]).
    pub(crate) late: Option<Late>,
}

/// A node [`World`] leaves for the test to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Late {
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
pub(crate) struct World {
    pub(crate) b: Node,
    pub(crate) c: Node,
    pub(crate) h1: Node,
    pub(crate) h2: Node,
    pub(crate) b_id: String,
    pub(crate) c_id: String,
    pub(crate) h1_id: String,
    pub(crate) h2_id: String,
    pub(crate) public: Segment,
    pub(crate) home1: Segment,
    /// h2's home segment (home 1's, when h2 lives beside h1).
    pub(crate) home2: Segment,
    pub(crate) home_discovery: bool,
    /// When the home nodes were started.
    pub(crate) started: Instant,
    pub(crate) dir: Option<tempfile::TempDir>,
    // Last, so the nodes are killed before the namespaces go.
    pub(crate) lab: Lab,
}

impl World {
    /// Builds the lab with home 2 behind `home2_nat` (home 1 is always behind a
    /// cone NAT), with `loss` % loss on both home segments, and starts b, c, h1
    /// and h2.
    pub(crate) fn new(home2_nat: NatKind, loss: u32) -> World {
        World::with(Setup {
            home2: Home2::Behind(home2_nat),
            loss,
            ..Setup::default()
        })
    }

    /// Builds the lab as `setup` says and starts b, c, h1 and h2.
    pub(crate) fn with(setup: Setup) -> World {
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
    pub(crate) fn public_host(&self, name: &str, octet: u32) -> Host {
        let host = self.lab.host(name);
        self.lab.attach(&host, &self.public, octet);
        host
    }

    /// Starts b, then c, h1 and h2 unless `late` says to leave one for the
    /// test to start ([`World::start_late`]).
    pub(crate) fn start_nodes(&mut self, late: Option<Late>) {
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
    pub(crate) fn start_late(&mut self, which: Late) {
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

    pub(crate) fn start_c(&mut self) {
        let mut c_args = public_flags();
        c_args.extend(as_bootstrap_flags(&bootstrap_addrs(B_OCTET, &self.b_id)));
        self.c_id = self.c.start(&c_args).peer_id;
    }

    pub(crate) fn start_h1(&mut self) {
        self.h1_id = self.h1.start(&self.home_args()).peer_id;
    }

    /// What a person at home types: the bootstrap addresses, and no UPnP
    /// (there is no router to ask here, and no UPnP outside the lab). b's
    /// TCP and QUIC addresses, c's QUIC one (if c runs): the mapping is
    /// judged from QUIC (UDP) observations, and c's at least is sure to be
    /// one.
    pub(crate) fn home_args(&self) -> Vec<String> {
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

    pub(crate) fn nodes(&self) -> [&Node; 4] {
        [&self.b, &self.c, &self.h1, &self.h2]
    }

    /// The lab's name for a peer id (`b`, `c`, `h1`, `h2`), or the id.
    pub(crate) fn name_of<'a>(&'a self, peer_id: &'a str) -> &'a str {
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
    pub(crate) fn b_reservations(&self) -> (Vec<String>, Vec<String>) {
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
    pub(crate) fn relay_b_seen_by(&self, node: &Node) -> Option<RelayInfo> {
        let nat = node.nat().unwrap_or_else(|e| panic!("{e}"));
        nat.relays.into_iter().find(|r| r.peer_id == self.b_id)
    }

    /// Stops h1 and h2 (SIGTERM) and waits until b no longer lists either
    /// among its connected peers, so every circuit b relayed for them has
    /// ended (and been logged).
    pub(crate) fn stop_homes_and_wait_gone(&mut self) {
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
    pub(crate) fn wait_reserved(&self, node: &Node) -> String {
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
    pub(crate) fn wait_dht_server(&self, node: &Node, mut also: impl FnMut()) -> NatInfo {
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
    pub(crate) fn find_h2(&self) -> FindReply {
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
    pub(crate) fn chat(&self, text: &str) -> Duration {
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
    pub(crate) fn relay_bytes(&self) -> (u64, u64) {
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
    pub(crate) fn transfer(&self, size: usize, what: &str) -> (f64, u64) {
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
    pub(crate) fn share_random(&self, size: usize) -> ShareResult {
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
    pub(crate) fn get(&self, what: &str, size: usize, timeout: Duration) -> Fetched {
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

    pub(crate) fn fetched_path(&self, size: usize) -> PathBuf {
        let dir = self.dir.as_ref().unwrap().path();
        dir.join(format!("fetched-{size}.bin"))
    }

    /// Checks that `get` fetched `want` (`size` bytes) from h2, all of it in
    /// this job, and that the file h1 wrote is the one h2 shared.
    pub(crate) fn check_fetched(&self, get: &GetResult, want: &str, size: usize) {
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
    pub(crate) fn nat_with_observers(&self, node: &Node) -> NatInfo {
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

    pub(crate) fn print_logs(&self) {
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

pub(crate) fn lab_public_ip(octet: u32) -> std::net::Ipv4Addr {
    let (network, _) = PUBLIC_NET.split_once('/').unwrap();
    let network: std::net::Ipv4Addr = network.parse().unwrap();
    std::net::Ipv4Addr::from(u32::from(network) + octet)
}

/// The flags of a public node: no LAN discovery or UPnP, fixed ports.
pub(crate) fn public_flags() -> Vec<String> {
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
pub(crate) fn bootstrap_addrs(octet: u32, id: &str) -> Vec<String> {
    let ip = lab_public_ip(octet);
    vec![
        format!("/ip4/{ip}/udp/{PUBLIC_PORT}/quic-v1/p2p/{id}"),
        format!("/ip4/{ip}/tcp/{PUBLIC_PORT}/p2p/{id}"),
    ]
}

pub(crate) fn as_bootstrap_flags(addrs: &[String]) -> Vec<String> {
    addrs
        .iter()
        .flat_map(|a| ["--bootstrap".to_owned(), a.clone()])
        .collect()
}

/// How many peers report a UDP (QUIC) address for us, not through a relay: the
/// reports the mapping behaviour is judged from (a TCP dial takes a fresh port
/// each time, so TCP reports say nothing about the NAT).
pub(crate) fn udp_observers(nat: &NatInfo) -> usize {
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

pub(crate) fn observed_summary(nat: &NatInfo) -> String {
    nat.observed
        .iter()
        .map(|o| format!("{} sees {}", &o.by_peer[o.by_peer.len() - 4..], o.addr))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ferry nat` as a person sees it, indented under a heading.
pub(crate) fn print_human_nat(node: &Node) {
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
pub(crate) fn log_message(line: &str) -> &str {
    line.split_once(' ').map_or(line, |(_, rest)| rest.trim())
}

pub(crate) fn tag() -> String {
    format!("{:08x}", lab::random_u64() as u32)
}
