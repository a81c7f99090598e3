//! A real `ferry start` and a real dtn7-rs `dtnd` (dtn7 0.21.0) exchanging bundles
//! over TCPCLv4, both directions, on 127.0.0.1 only.
//!
//! Needs `dtnd`, `dtnsend` and `dtnrecv` in `$HOME/.cache/ferry-dtn7/bin` or on
//! PATH (`tests/run-all.sh` installs them); skips with a message otherwise. dtnd
//! runs with neighbour discovery off (`--disable_nd -i 0`), its TCPCL listener
//! bound to 127.0.0.1 and its web API on [::1] (`-6`); the ferry nodes run with the
//! harness's loopback flags (no mDNS, beacons or UPnP). Every process is killed
//! when the test ends; dtnd's and the nodes' logs are printed when a test fails
//! (dtnd's always with `FERRY_SHOW_DTND_LOG=1`).

#[allow(dead_code)]
mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Node, SPREAD_TIMEOUT, wait_until};
use ferry_core::dtn::Bundle;
use ferry_node::control::types::{DtnSendReply, DtnStatus, InboxItem};

const INSTALL_HINT: &str =
    "cargo install dtn7 --version 0.21.0 --locked --root $HOME/.cache/ferry-dtn7";

/// What ferry logs when a bundle is over a TCPCL peer's transfer MRU.
const OVER_LIMIT: &str = "over this TCPCL peer's 64000-byte transfer limit";

/// A dtn7 binary from the ferry cache or PATH.
fn dtn7_bin(name: &str) -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("HOME") {
        let p = Path::new(&home).join(".cache/ferry-dtn7/bin").join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct Tools {
    dtnd: PathBuf,
    dtnsend: PathBuf,
    dtnrecv: PathBuf,
}

fn tools(test: &str) -> Option<Tools> {
    match (dtn7_bin("dtnd"), dtn7_bin("dtnsend"), dtn7_bin("dtnrecv")) {
        (Some(dtnd), Some(dtnsend), Some(dtnrecv)) => Some(Tools {
            dtnd,
            dtnsend,
            dtnrecv,
        }),
        _ => {
            eprintln!(
                "SKIPPED {test}: dtnd/dtnsend/dtnrecv not found in $HOME/.cache/ferry-dtn7/bin \
                 or on PATH; install them with `{INSTALL_HINT}`"
            );
            None
        }
    }
}

fn free_port_v4() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_port_v6() -> u16 {
    StdListener::bind((Ipv6Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `dtnd`, killed when dropped (its log printed if the test failed).
struct Dtnd {
    child: Child,
    log: PathBuf,
    tcp_port: u16,
    web_port: u16,
    _dir: tempfile::TempDir,
}

impl Dtnd {
    fn start(tools: &Tools, name: &str, extra: &[&str]) -> Dtnd {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("dtnd.log");
        let tcp_port = free_port_v4();
        let web_port = free_port_v6();
        let mut args: Vec<String> = vec![
            "-n".into(),
            name.into(),
            "-W".into(),
            dir.path().display().to_string(),
            // TCPCL on loopback only.
            "-C".into(),
            format!("tcp:port={tcp_port}:bind=127.0.0.1"),
            // IPv6 only: the web API binds [::1] (with IPv4 it would bind 0.0.0.0).
            "-6".into(),
            "-w".into(),
            web_port.to_string(),
            // No neighbour discovery beacons, twice over.
            "--disable_nd".into(),
            "-i".into(),
            "0".into(),
            "-r".into(),
            "epidemic".into(),
            "-d".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let child = Command::new(&tools.dtnd)
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(append(&log))
            .stderr(append(&log))
            .spawn()
            .expect("start dtnd");
        let d = Dtnd {
            child,
            log,
            tcp_port,
            web_port,
            _dir: dir,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(body) = http_get(self.web_port, "/status/nodeid")
                && body.starts_with("dtn://")
            {
                // The TCPCL listener is set up before the web server.
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "dtnd did not come up within 20 s; log:\n{}",
            self.log_text()
        );
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `dtnsend`s `payload` to `receiver` through this dtnd's web API.
    fn send(&self, tools: &Tools, receiver: &str, payload: &[u8]) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("payload");
        fs::write(&file, payload).unwrap();
        let args = vec![
            "-6".into(),
            "-p".into(),
            self.web_port.to_string(),
            "-r".into(),
            receiver.into(),
            file.display().to_string(),
        ];
        let (ok, out) = run_bounded(&tools.dtnsend, &args, Duration::from_secs(10));
        assert!(ok, "dtnsend to {receiver} failed: {out}");
    }

    /// Polls `dtnrecv -e ENDPOINT -r` until a bundle arrives; returns it.
    fn recv(&self, tools: &Tools, endpoint: &str, timeout: Duration) -> Bundle {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.try_recv(tools, endpoint) {
                Ok(bundle) => return bundle,
                Err(output) => last = output,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("dtnrecv got no bundle on {endpoint} within {timeout:?}; last output: {last}");
    }

    /// One `dtnrecv -e ENDPOINT -r`: the bundle, or what dtnrecv said instead.
    fn try_recv(&self, tools: &Tools, endpoint: &str) -> Result<Bundle, String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bundle");
        let args = vec![
            "-6".into(),
            "-p".into(),
            self.web_port.to_string(),
            "-e".into(),
            endpoint.into(),
            "-r".into(),
            "-o".into(),
            file.display().to_string(),
        ];
        let (ok, output) = run_bounded(&tools.dtnrecv, &args, Duration::from_secs(10));
        match fs::read(&file) {
            Ok(bytes) if ok && !bytes.is_empty() => Ok(Bundle::parse(&bytes)
                .unwrap_or_else(|e| panic!("dtnrecv's bundle does not parse: {e}"))),
            _ => Err(output),
        }
    }
}

impl Drop for Dtnd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() || std::env::var_os("FERRY_SHOW_DTND_LOG").is_some() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("---- dtnd log (last 80 lines) ----");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// An output file that stdout and stderr can share.
fn append(path: &Path) -> fs::File {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// A tiny HTTP/1.0 GET against dtnd's web port on ::1.
fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let mut s = StdStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_string())
}

/// Runs a dtn7 client with a deadline; kills it if it overruns.
fn run_bounded(bin: &Path, args: &[String], timeout: Duration) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(append(&out))
        .stderr(append(&out))
        .spawn()
        .expect("start dtn7 client");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = fs::read_to_string(&out).unwrap_or_default();
    (status.is_some_and(|s| s.success()), output)
}

/// dtnd's TCPCL error lines (dtn7 0.21 src/cla/tcp/mod.rs).
fn assert_no_tcpcl_errors(dtnd: &Dtnd) {
    let log = dtnd.log_text();
    for marker in [
        "Failed parsing package",
        "error while receiving",
        "error while sending",
        "Failed to establish TCP session",
        "Protocol error",
    ] {
        assert!(!log.contains(marker), "dtnd logged {marker:?}:\n{log}");
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn status(node: &Node) -> DtnStatus {
    node.ferry(&["dtn", "status", "--json"]).ok().json()
}

fn inbox(node: &Node) -> Vec<InboxItem> {
    node.ferry(&["dtn", "inbox", "--json"]).ok().json()
}

/// Waits until `node` has a connected contact with `peer` over TCPCL.
fn wait_tcpcl_contact(node: &Node, peer: &str) {
    wait_until(
        &format!("{} to have a TCPCL contact with {peer}", node.name),
        SPREAD_TIMEOUT,
        || {
            let status = status(node);
            if status
                .contacts
                .iter()
                .any(|c| c.node == peer && c.connected && c.via.starts_with("tcpcl"))
            {
                Ok(())
            } else {
                Err(format!("{:#?}", status.contacts))
            }
        },
    );
}

/// ferry dials dtnd (`--tcpcl-peer`) and hands it a bundle for one of its
/// endpoints; dtnd delivers it intact and ferry frees its copy. A bundle over
/// dtnd's 64,000-byte transfer MRU is kept, not sent, and the session goes on.
#[test]
fn ferry_node_sends_bundles_to_dtnd() {
    let Some(tools) = tools("ferry_node_sends_bundles_to_dtnd") else {
        return;
    };
    let began = Instant::now();
    let dtnd = Dtnd::start(&tools, "alpha", &["-e", "incoming"]);
    let dtnd_addr = format!("127.0.0.1:{}", dtnd.tcp_port);
    let ferry = Node::start_with("tcpcl-dialer", &["--tcpcl-peer", &dtnd_addr]);
    let peer_id = ferry.id().peer_id;
    wait_tcpcl_contact(&ferry, "dtn://alpha/");

    // A text bundle for dtnd's `incoming` endpoint.
    let sent: DtnSendReply = ferry
        .ferry(&[
            "dtn",
            "send",
            "dtn://alpha/incoming",
            "hello dtnd",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(sent.destination, "dtn://alpha/incoming");
    let got = dtnd.recv(&tools, "incoming", Duration::from_secs(30));
    assert_eq!(got.payload(), b"hello dtnd");
    assert_eq!(got.id().to_string(), sent.id, "the very bundle ferry made");
    assert_eq!(got.destination().to_string(), "dtn://alpha/incoming");
    assert_eq!(got.source().to_string(), format!("dtn://{peer_id}/text"));
    eprintln!(
        "ferry -> dtnd: dtnrecv got {} ({} payload bytes) after {:?}",
        sent.id,
        got.payload().len(),
        began.elapsed()
    );

    // dtnd was the destination node: ferry's copy is freed, the delivery counted.
    let after = wait_until(
        "ferry to free the bundle handed to dtnd",
        SPREAD_TIMEOUT,
        || {
            let s = status(&ferry);
            let contact = s.contacts.iter().find(|c| c.node == "dtn://alpha/");
            if s.bundles.is_empty() && contact.is_some_and(|c| c.bundles_sent == 1) {
                Ok(s)
            } else {
                Err(format!("{s:#?}"))
            }
        },
    );
    let contact = after
        .contacts
        .iter()
        .find(|c| c.node == "dtn://alpha/")
        .unwrap();
    assert_eq!(contact.via, format!("tcpcl to {dtnd_addr}"));
    assert!(contact.connected);
    assert_eq!(after.forwarded, 1);
    assert!(after.acks >= 1, "the delivery is acknowledged: {after:#?}");

    // Over dtnd's transfer MRU: kept here, not sent.
    let dir = tempfile::tempdir().unwrap();
    let big_file = dir.path().join("big.bin");
    fs::write(&big_file, pattern(70_000, 5)).unwrap();
    let big: DtnSendReply = ferry
        .ferry(&[
            "dtn",
            "send",
            "dtn://alpha/incoming",
            "--file",
            big_file.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    assert!(big.bytes > 64_000, "{big:?}");
    wait_until(
        "ferry to log the bundle as too big for dtnd",
        SPREAD_TIMEOUT,
        || {
            if ferry.log().contains(OVER_LIMIT) {
                Ok(())
            } else {
                Err("not yet".into())
            }
        },
    );

    // The session goes on: a later small bundle still gets through.
    let later: DtnSendReply = ferry
        .ferry(&[
            "dtn",
            "send",
            "dtn://alpha/incoming",
            "still here",
            "--json",
        ])
        .ok()
        .json();
    let got = dtnd.recv(&tools, "incoming", Duration::from_secs(30));
    assert_eq!(got.id().to_string(), later.id);
    assert_eq!(got.payload(), b"still here");

    // Past a replanning interval (10 s): no retry loop, no new session, and the big
    // bundle is still held, never having reached dtnd.
    std::thread::sleep(Duration::from_secs(12));
    let log = ferry.log();
    assert_eq!(
        log.matches(OVER_LIMIT).count(),
        1,
        "the oversized bundle is skipped once per contact:\n{log}"
    );
    assert!(!log.contains("TCPCL session ended"), "{log}");
    let s = status(&ferry);
    assert_eq!(
        s.bundles.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
        [big.id.as_str()],
        "only the oversized bundle is held: {s:#?}"
    );
    assert_eq!(s.bundles[0].destination, "dtn://alpha/");
    let contact = s
        .contacts
        .iter()
        .find(|c| c.node == "dtn://alpha/")
        .unwrap();
    assert!(contact.connected);
    assert_eq!(contact.bundles_sent, 2);
    assert_eq!(s.forwarded, 2);
    if let Ok(bundle) = dtnd.try_recv(&tools, "incoming") {
        panic!("dtnd got a bundle it should not have: {:?}", bundle.id());
    }
    assert!(
        !dtnd.log_text().contains(&big.id),
        "dtnd heard of the oversized bundle"
    );
    assert_no_tcpcl_errors(&dtnd);
    eprintln!("ferry -> dtnd: done in {:?}", began.elapsed());
}

/// dtnd dials ferry's TCPCL listener (a static peer) and forwards what `dtnsend`
/// gave it: a text and a binary bundle for ferry arrive intact in its inbox, and a
/// bundle for a third node is carried, not sent back to dtnd.
#[test]
fn dtnd_sends_bundles_to_ferry_node() {
    let Some(tools) = tools("dtnd_sends_bundles_to_ferry_node") else {
        return;
    };
    let began = Instant::now();
    let port = free_port_v4();
    let listen = format!("127.0.0.1:{port}");
    let ferry = Node::start_with("tcpcl-listener", &["--tcpcl-listen", &listen]);
    wait_until("ferry's TCPCL listener", SPREAD_TIMEOUT, || {
        if ferry.log().contains("TCPCL listening") {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    let peer_id = ferry.id().peer_id;
    let dtnd = Dtnd::start(
        &tools,
        "beta",
        &["-s", &format!("tcp://127.0.0.1:{port}/{peer_id}")],
    );

    let text = "hello ferry, this is dtnd";
    let data = pattern(20_000, 3);
    dtnd.send(&tools, &format!("dtn://{peer_id}/text"), text.as_bytes());
    dtnd.send(&tools, &format!("dtn://{peer_id}/inbox"), &data);
    // For a node ferry does not know: ferry carries it (epidemic).
    dtnd.send(&tools, "dtn://gamma/incoming", b"for gamma");

    let items = wait_until("both bundles in ferry's inbox", SPREAD_TIMEOUT, || {
        let items = inbox(&ferry);
        if items.len() >= 2 {
            Ok(items)
        } else {
            Err(format!("{items:#?}"))
        }
    });
    eprintln!(
        "dtnd -> ferry: inbox filled after {:?}: {items:#?}",
        began.elapsed()
    );
    assert_eq!(items.len(), 2, "{items:#?}");
    // dtnd drops bundles whose source is not one of its endpoints, so dtnsend runs
    // without -s and the source is the node itself.
    for item in &items {
        assert_eq!(item.source, "dtn://beta/", "{item:?}");
    }
    let text_item = items
        .iter()
        .find(|i| i.destination == format!("dtn://{peer_id}/text"))
        .expect("the text bundle");
    assert_eq!(text_item.kind, "text");
    assert_eq!(text_item.text.as_deref(), Some(text));
    assert_eq!(text_item.size, text.len() as u64);
    let data_item = items
        .iter()
        .find(|i| i.destination == format!("dtn://{peer_id}/inbox"))
        .expect("the binary bundle");
    assert_eq!(data_item.kind, "data");
    assert_eq!(data_item.size, data.len() as u64);
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.bin");
    ferry
        .ferry(&["dtn", "save", &data_item.id, "-o", saved.to_str().unwrap()])
        .ok();
    assert_eq!(fs::read(&saved).unwrap(), data, "payload intact");

    // The third bundle is held for gamma, received from dtnd; all three counted.
    let s = wait_until("ferry to hold gamma's bundle", SPREAD_TIMEOUT, || {
        let s = status(&ferry);
        let received = s
            .contacts
            .iter()
            .find(|c| c.node == "dtn://beta/")
            .map(|c| c.bundles_received);
        if s.bundles.iter().any(|b| b.destination == "dtn://gamma/") && received == Some(3) {
            Ok(s)
        } else {
            Err(format!("{s:#?}"))
        }
    });
    assert_eq!(s.bundles.len(), 1, "{s:#?}");
    assert_eq!(s.bundles[0].received_from.as_deref(), Some("dtn://beta/"));
    let contact = s.contacts.iter().find(|c| c.node == "dtn://beta/").unwrap();
    assert!(
        contact.via.starts_with("tcpcl from 127.0.0.1:"),
        "{contact:?}"
    );
    assert!(contact.connected);

    // dtnd gave ferry gamma's bundle: it is not offered back to dtnd.
    std::thread::sleep(Duration::from_secs(3));
    let s = status(&ferry);
    let contact = s.contacts.iter().find(|c| c.node == "dtn://beta/").unwrap();
    assert_eq!(
        contact.bundles_sent, 0,
        "ferry sent dtnd's bundle back: {s:#?}"
    );
    assert_eq!(s.bundles.len(), 1, "{s:#?}");
    assert_no_tcpcl_errors(&dtnd);
    eprintln!("dtnd -> ferry: done in {:?}", began.elapsed());
}

/// Under spray-and-wait, a bundle too big for dtnd keeps all its copies for other
/// contacts, while a small one hands dtnd half of its copies.
#[test]
fn oversized_bundle_keeps_its_spray_copies() {
    let Some(tools) = tools("oversized_bundle_keeps_its_spray_copies") else {
        return;
    };
    let began = Instant::now();
    let dtnd = Dtnd::start(&tools, "delta", &[]);
    let dtnd_addr = format!("127.0.0.1:{}", dtnd.tcp_port);
    let ferry = Node::start_with(
        "tcpcl-spray",
        &["--dtn-strategy", "spray:8", "--tcpcl-peer", &dtnd_addr],
    );
    wait_tcpcl_contact(&ferry, "dtn://delta/");

    // Both for a third node, so dtnd is only a relay.
    let dir = tempfile::tempdir().unwrap();
    let big_file = dir.path().join("big.bin");
    fs::write(&big_file, pattern(70_000, 9)).unwrap();
    let big: DtnSendReply = ferry
        .ferry(&[
            "dtn",
            "send",
            "dtn://gamma/incoming",
            "--file",
            big_file.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    wait_until(
        "ferry to log the bundle as too big for dtnd",
        SPREAD_TIMEOUT,
        || {
            if ferry.log().contains(OVER_LIMIT) {
                Ok(())
            } else {
                Err("not yet".into())
            }
        },
    );
    let small: DtnSendReply = ferry
        .ferry(&["dtn", "send", "dtn://gamma/incoming", "small", "--json"])
        .ok()
        .json();
    let copies = |s: &DtnStatus, id: &str| s.bundles.iter().find(|b| b.id == id).map(|b| b.copies);
    let s = wait_until(
        "dtnd to take half the small bundle's copies",
        SPREAD_TIMEOUT,
        || {
            let s = status(&ferry);
            if copies(&s, &small.id) == Some(4) {
                Ok(s)
            } else {
                Err(format!("{s:#?}"))
            }
        },
    );
    assert_eq!(copies(&s, &big.id), Some(8), "{s:#?}");
    assert_eq!(ferry.log().matches(OVER_LIMIT).count(), 1);
    assert_no_tcpcl_errors(&dtnd);
    eprintln!("spray: done in {:?}", began.elapsed());
}
