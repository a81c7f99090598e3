//! The network lab: hosts, LAN segments and (later) NAT routers built out of Linux
//! network namespaces with `ip` (iproute2) and `nft` (nftables). Needs root.
//!
//! Everything a [`Lab`] makes lives in namespaces whose names start with the lab's
//! unique prefix (`fl` + 6 random hex digits), so two runs never collide and nothing
//! touches the root namespace:
//!
//! - a **segment** is a namespace `PREFIX-NAME` holding one bridge `br0` (no STP, no
//!   forwarding delay, no multicast snooping: a dumb switch, so broadcast and mDNS
//!   reach every port);
//! - a **host** is a namespace `PREFIX-NAME` with `lo` up;
//! - [`Lab::attach`] makes a veth pair straight between the two namespaces
//!   (`pN` on the bridge, `ethK` in the host), gives the host end an address and
//!   brings both up. Hosts get **no default route** unless asked
//!   ([`Host::add_default_route`]);
//! - a **router** is a host with IPv4 forwarding on; [`Host::masquerade`] adds an
//!   nftables source NAT (optionally `fully-random`, which behaves as a symmetric NAT);
//! - **loss** comes from nftables, since this kernel has no `netem`:
//!   [`Segment::set_loss`] drops a share of the IP frames crossing a segment,
//!   [`Host::set_loss`] a share of the IP packets entering and leaving a host.
//!
//! Dropping the [`Lab`] kills every process still running in its namespaces and
//! deletes the namespaces, which takes their links and bridges with them. It runs on
//! panic too. Set `FERRY_LAB_KEEP=1` to keep them for a look after a failure.
//!
//! Tests that need the lab start with `if lab::skip_unless_root() { return; }`,
//! which records the test as skipped when not run as root (and fails it under CI).
//! [`node::Node`] runs a `ferry` node in a lab host.

pub mod mountns;
pub mod node;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lab tests that run ferry nodes take turns: they would otherwise share this
/// machine's 2 cores several ways, and each one's timings are figures worth
/// reading. Hold the guard for the whole test.
pub fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURNS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURNS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// True (after recording the skip, see [`crate::skip`]) when the lab cannot
/// run because this is not root: `if lab::skip_unless_root() { return; }`. Under CI
/// it fails the test instead.
pub fn skip_unless_root() -> bool {
    if is_root() {
        false
    } else {
        crate::skip("the network lab needs root: run the tests with sudo");
        true
    }
}

/// Whether this process runs as root (checked with `id -u`, so no libc is needed).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Whether `FERRY_LAB_KEEP` asks to keep what a lab made, for a look after a run.
pub fn keep_requested() -> bool {
    std::env::var_os("FERRY_LAB_KEEP").is_some_and(|v| v != "0")
}

/// Keeps `dir` (takes it, so it is not removed) if `FERRY_LAB_KEEP` asks for it.
pub fn keep_if_asked(dir: &mut Option<tempfile::TempDir>) {
    if keep_requested()
        && let Some(dir) = dir.take()
    {
        eprintln!("FERRY_LAB_KEEP: keeping {}", dir.keep().display());
    }
}

/// A random 64-bit number from std alone (SipHash with a random key, over the time
/// and the process id, plus a counter). Good for names and test data, not for keys.
pub fn random_u64() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    hasher.finish()
}

/// `n` random bytes (see [`random_u64`]).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        out.extend_from_slice(&random_u64().to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Runs a command to completion; panics with its output if it fails.
pub fn run(command: &mut Command) -> Output {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `ip ARGS...`; panics if it fails.
fn ip(args: &[&str]) -> Output {
    run(Command::new("ip").args(args))
}

/// Loads an nftables ruleset into namespace `ns`.
fn nft(ns: &str, ruleset: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run nft (install nftables)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(ruleset.as_bytes())
        .expect("write the ruleset to nft");
    let output = child.wait_with_output().expect("wait for nft");
    assert!(
        output.status.success(),
        "nft in {ns} rejected:\n{ruleset}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn check_name(what: &str, name: &str) {
    assert!(
        !name.is_empty()
            && name.len() <= 15
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "{what} name {name:?}: use 1 to 15 ASCII letters, digits or '_'"
    );
}

/// A network lab. See the module documentation.
pub struct Lab {
    prefix: String,
    inner: Mutex<LabState>,
}

#[derive(Default)]
struct LabState {
    /// Every namespace made, in creation order.
    namespaces: Vec<String>,
    /// Numbers the bridge-side ends of veth pairs.
    next_port: usize,
}

impl Lab {
    /// A new, empty lab with a unique prefix.
    pub fn new() -> Lab {
        let prefix = format!("fl{:06x}", random_u64() & 0xff_ffff);
        Lab {
            prefix,
            inner: Mutex::new(LabState::default()),
        }
    }

    /// The prefix of every name this lab makes.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A temporary directory named after the lab, for its nodes' files.
    pub fn tempdir(&self) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("{}-", self.prefix))
            .tempdir()
            .unwrap()
    }

    fn new_namespace(&self, name: &str) -> String {
        let ns = format!("{}-{name}", self.prefix);
        // Recorded first, so a failure halfway still gets cleaned up.
        self.inner.lock().unwrap().namespaces.push(ns.clone());
        ip(&["netns", "add", &ns]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// A LAN segment: a bridge in a namespace of its own, for `subnet`
    /// (`"10.77.1.0/24"`: the network address and prefix length).
    pub fn bridge_segment(&self, name: &str, subnet: &str) -> Segment {
        check_name("segment", name);
        let (network, prefix_len) = parse_subnet(subnet);
        let ns = self.new_namespace(name);
        ip(&[
            "-n",
            &ns,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
            "stp_state",
            "0",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &ns, "link", "set", "br0", "up"]);
        Segment {
            name: name.to_owned(),
            ns,
            network,
            prefix_len,
        }
    }

    /// A host: a namespace with only `lo`, up.
    pub fn host(&self, name: &str) -> Host {
        check_name("host", name);
        let ns = self.new_namespace(name);
        Host {
            name: name.to_owned(),
            ns,
            ifaces: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A router: a host that forwards IPv4. Attach it to two segments, give the
    /// hosts behind it a default route through it, and add [`Host::masquerade`]
    /// on its outside interface for a NAT.
    pub fn router(&self, name: &str) -> Host {
        let router = self.host(name);
        run(router
            .command("sysctl")
            .args(["-qw", "net.ipv4.ip_forward=1"]));
        router
    }

    /// Plugs `host` into `segment` with address `network + host_octet` (for a /24,
    /// the last octet). Returns the host's new interface (`eth0`, `eth1`, ...).
    pub fn attach(&self, host: &Host, segment: &Segment, host_octet: u32) -> Iface {
        let size = 1u64 << (32 - segment.prefix_len);
        assert!(
            host_octet > 0 && u64::from(host_octet) < size - 1,
            "host number {host_octet} is not a host address in {}/{}",
            segment.network,
            segment.prefix_len
        );
        let addr = Ipv4Addr::from(u32::from(segment.network) + host_octet);
        let port = {
            let mut state = self.inner.lock().unwrap();
            state.next_port += 1;
            format!("p{}", state.next_port)
        };
        let mut ifaces = host.ifaces.lock().unwrap();
        let name = format!("eth{}", ifaces.len());
        ip(&[
            "-n",
            &segment.ns,
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            &name,
            "netns",
            &host.ns,
        ]);
        ip(&[
            "-n",
            &segment.ns,
            "link",
            "set",
            &port,
            "master",
            "br0",
            "up",
        ]);
        let cidr = format!("{addr}/{}", segment.prefix_len);
        ip(&[
            "-n", &host.ns, "addr", "add", &cidr, "brd", "+", "dev", &name,
        ]);
        ip(&["-n", &host.ns, "link", "set", &name, "up"]);
        let iface = Iface {
            name,
            addr,
            prefix_len: segment.prefix_len,
            segment: segment.name.clone(),
        };
        ifaces.push(iface.clone());
        iface
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let namespaces = std::mem::take(&mut self.inner.lock().unwrap().namespaces);
        if keep_requested() {
            eprintln!("FERRY_LAB_KEEP: keeping namespaces {namespaces:?}");
            return;
        }
        // Kill what still runs inside (only our namespaces, only by pid), then
        // delete the namespaces; their veths and bridges go with them.
        let mut killed = false;
        for ns in &namespaces {
            for pid in netns_pids(ns) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
                killed = true;
            }
        }
        if killed {
            std::thread::sleep(Duration::from_millis(100));
        }
        for ns in namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The processes running in namespace `ns`.
pub fn netns_pids(ns: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn parse_subnet(subnet: &str) -> (Ipv4Addr, u8) {
    let (addr, len) = subnet
        .split_once('/')
        .unwrap_or_else(|| panic!("subnet {subnet:?}: expected A.B.C.D/LEN"));
    let addr: Ipv4Addr = addr
        .parse()
        .unwrap_or_else(|e| panic!("subnet {subnet:?}: {e}"));
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| (8..=30).contains(l))
        .unwrap_or_else(|| panic!("subnet {subnet:?}: prefix length must be 8 to 30"));
    let mask = u32::MAX << (32 - len);
    (Ipv4Addr::from(u32::from(addr) & mask), len)
}

/// A LAN segment: a bridge in its own namespace.
#[derive(Debug, Clone)]
pub struct Segment {
    pub name: String,
    pub ns: String,
    pub network: Ipv4Addr,
    pub prefix_len: u8,
}

impl Segment {
    /// The segment's directed broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | (u32::MAX >> self.prefix_len))
    }

    /// The address `network + host_octet`.
    pub fn addr(&self, host_octet: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + host_octet)
    }

    /// Drops `percent` % of the IPv4/IPv6 frames the bridge forwards, each on its
    /// own dice roll (ARP is spared so that loss rates stay what was asked).
    /// `0` removes the loss. Calling it again replaces the previous rate.
    pub fn set_loss(&self, percent: u32) {
        set_loss_table(
            &self.ns,
            "bridge",
            &["forward"],
            "ether type { ip, ip6 } ",
            "",
            percent,
        );
    }
}

/// A host: a network namespace, and the interfaces attached to it.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub ns: String,
    ifaces: Arc<Mutex<Vec<Iface>>>,
}

/// One interface of a host, on one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// The name inside the host (`eth0`, ...).
    pub name: String,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    /// The segment it is plugged into.
    pub segment: String,
}

impl Host {
    /// `ip netns exec NS program`: add arguments, spawn or run it as usual.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns]).arg(program);
        command
    }

    /// Runs `bash -c SCRIPT` inside the host; returns its output whatever the status.
    pub fn sh(&self, script: &str) -> Output {
        self.command("bash")
            .args(["-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("run bash in the lab")
    }

    /// The interfaces attached so far.
    pub fn ifaces(&self) -> Vec<Iface> {
        self.ifaces.lock().unwrap().clone()
    }

    /// The address of the first interface.
    pub fn ip(&self) -> Ipv4Addr {
        self.ifaces
            .lock()
            .unwrap()
            .first()
            .unwrap_or_else(|| panic!("host {} has no interface", self.name))
            .addr
    }

    /// Adds a default route through `gateway` (none is set up by default).
    pub fn add_default_route(&self, gateway: Ipv4Addr) {
        ip(&[
            "-n",
            &self.ns,
            "route",
            "add",
            "default",
            "via",
            &gateway.to_string(),
        ]);
    }

    /// Source NAT of everything this host forwards out of `outside`. With
    /// `fully_random`, each new flow gets a random source port: a symmetric NAT
    /// (endpoint-dependent mapping); without it, Linux keeps the port where it can
    /// (close to an endpoint-independent mapping).
    pub fn masquerade(&self, outside: &Iface, fully_random: bool) {
        let flags = if fully_random { " fully-random" } else { "" };
        nft(
            &self.ns,
            &format!(
                "table ip labnat {{\n\
                 \tchain postrouting {{\n\
                 \t\ttype nat hook postrouting priority srcnat;\n\
                 \t\toifname \"{}\" masquerade{flags}\n\
                 \t}}\n\
                 }}\n",
                outside.name
            ),
        );
    }

    /// The stateful firewall of a home router: packets arriving on `outside`
    /// reach the router itself only as part of a flow it already knows
    /// (`ct state established,related`); unsolicited ones are dropped.
    ///
    /// Besides being what every home router does, this matters for hole punching:
    /// without it, a peer's first punch packet that arrives before our own has
    /// left is taken by the router for itself, answered with ICMP "port
    /// unreachable" and *remembered by conntrack*, so the router then maps our
    /// outgoing punch to another port (a clash with that entry), and the punch
    /// fails for as long as the entry lives (30 s for UDP). Dropped in the filter
    /// hook, such a packet is never confirmed and leaves no entry behind.
    pub fn firewall_inbound(&self, outside: &Iface) {
        nft(
            &self.ns,
            &format!(
                "table inet labfw {{\n\
                 \tchain input {{\n\
                 \t\ttype filter hook input priority filter;\n\
                 \t\tiifname \"{}\" ct state != {{ established, related }} drop\n\
                 \t}}\n\
                 }}\n",
                outside.name
            ),
        );
    }

    /// Drops `percent` % of the IP packets this host receives on, sends from or
    /// forwards between its lab interfaces (one dice roll per packet per host;
    /// `lo` is spared). `0` removes the loss; calling it again replaces the rate.
    pub fn set_loss(&self, percent: u32) {
        set_loss_table(
            &self.ns,
            "inet",
            &["input", "forward", "output"],
            "",
            "eth*",
            percent,
        );
    }

    /// Loads an nftables ruleset into this host's namespace.
    pub fn nft(&self, ruleset: &str) {
        nft(&self.ns, ruleset);
    }
}

/// (Re)creates table `FAMILY labloss` in `ns` with one chain per hook, each dropping
/// `percent` % of the packets that match `matcher` (on interfaces matching
/// `iface_glob`, if given).
fn set_loss_table(
    ns: &str,
    family: &str,
    hooks: &[&str],
    matcher: &str,
    iface_glob: &str,
    percent: u32,
) {
    assert!(percent <= 100, "loss of {percent} %");
    // `add` then `delete` works whether or not the table exists yet.
    let mut ruleset = format!("add table {family} labloss\ndelete table {family} labloss\n");
    if percent > 0 {
        ruleset += &format!("table {family} labloss {{\n");
        for hook in hooks {
            let iface = match (iface_glob, *hook) {
                ("", _) => String::new(),
                (glob, "output") => format!("oifname \"{glob}\" "),
                (glob, _) => format!("iifname \"{glob}\" "),
            };
            // numgen's values are 0..=99, so "< 100" does not parse: 100 % is plain drop.
            let dice = if percent < 100 {
                format!("numgen random mod 100 < {percent} ")
            } else {
                String::new()
            };
            ruleset += &format!(
                "\tchain loss_{hook} {{\n\
                 \t\ttype filter hook {hook} priority -10;\n\
                 \t\t{matcher}{iface}{dice}drop\n\
                 \t}}\n"
            );
        }
        ruleset += "}\n";
    }
    nft(ns, &ruleset);
}
