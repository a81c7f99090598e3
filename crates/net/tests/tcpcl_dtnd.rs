//! Interoperability of ferry's TCPCLv4 convergence layer with dtn7-rs's `dtnd`
//! (dtn7 0.21.0), both directions, on 127.0.0.1 only.
//!
//! Needs `dtnd`, `dtnsend` and `dtnrecv` in `$HOME/.cache/ferry-dtn7/bin` or
//! on PATH (`tests/run-all.sh` installs them); skips with a message otherwise.
//! Every process runs with a deadline and is killed at the end. dtnd's log is
//! printed when a test fails, or always with `FERRY_SHOW_DTND_LOG=1`.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bp7::{Bundle, EndpointID};
use ferry_net::tcpcl::{TcpclOptions, TcpclSession};
use tokio::net::TcpListener;

const INSTALL_HINT: &str =
    "cargo install dtn7 --version 0.21.0 --locked --root $HOME/.cache/ferry-dtn7";

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

#[derive(Clone)]
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
    fn start(tools: &Tools, name: &str, extra: &[String]) -> Dtnd {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("dtnd.log");
        let tcp_port = free_port_v4();
        let web_port = free_port_v6();
        let mut args: Vec<String> = vec![
            "-n".into(),
            name.into(),
            "-W".into(),
            dir.path().display().to_string(),
            "-C".into(),
            format!("tcp:port={tcp_port}:bind=127.0.0.1"),
            "-6".into(),
            "-w".into(),
            web_port.to_string(),
            "--disable_nd".into(),
            "-r".into(),
            "epidemic".into(),
            "-d".into(),
        ];
        args.extend_from_slice(extra);
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

    fn tcpcl_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.tcp_port))
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

/// Polls `dtnrecv -e ENDPOINT -r` until a bundle arrives; returns its bytes.
fn dtnrecv_bundle(dtnrecv: &Path, web_port: u16, endpoint: &str, timeout: Duration) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle");
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        let _ = fs::remove_file(&file);
        let args = vec![
            "-6".into(),
            "-p".into(),
            web_port.to_string(),
            "-e".into(),
            endpoint.into(),
            "-r".into(),
            "-o".into(),
            file.display().to_string(),
        ];
        let (ok, output) = run_bounded(dtnrecv, &args, Duration::from_secs(10));
        last = output;
        if ok
            && let Ok(bytes) = fs::read(&file)
            && !bytes.is_empty()
        {
            return bytes;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("dtnrecv got no bundle on {endpoint} within {timeout:?}; last output: {last}");
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

fn payload_of(bundle: &Bundle) -> Vec<u8> {
    bundle
        .payload()
        .expect("bundle has a payload block")
        .clone()
}

fn make_bundle(src: &str, dst: &str, payload: Vec<u8>) -> Vec<u8> {
    let src = EndpointID::try_from(src).unwrap();
    let dst = EndpointID::try_from(dst).unwrap();
    let mut b = bp7::bundle::new_std_payload_bundle(src, dst, payload);
    b.set_crc(bp7::crc::CRC_32);
    b.to_cbor()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_sends_bundles_to_dtnd() {
    let Some(tools) = tools("ferry_sends_bundles_to_dtnd") else {
        return;
    };
    let dtnd = Dtnd::start(&tools, "alpha", &["-e".into(), "incoming".into()]);

    let mut opts = TcpclOptions::new("dtn://ferry/");
    // A short keepalive, so that staying idle proves ferry's keepalives keep
    // dtnd from ending the session (it ends one silent for an interval).
    opts.session.keepalive_secs = 2;
    // Smaller segments than dtnd's 64,000-byte MRU, to exercise
    // segmentation and dtnd's cumulative acknowledgements.
    opts.session.max_send_segment = 16 * 1024;
    let session = tokio::time::timeout(
        Duration::from_secs(15),
        TcpclSession::connect_with(dtnd.tcpcl_addr(), opts),
    )
    .await
    .expect("connect in time")
    .expect("session with dtnd");
    let peer = session.peer().clone();
    assert_eq!(peer.node_id, "dtn://alpha/");
    assert_eq!(peer.keepalive_secs, 2);
    assert_eq!(peer.segment_mru, 64_000);
    assert_eq!(peer.transfer_mru, 64_000);
    eprintln!("ferry -> dtnd: established, dtnd offers {peer:?}");

    // A text message in one segment.
    let text = b"hello dtnd, this is ferry".to_vec();
    let small = make_bundle("dtn://ferry/sender", "dtn://alpha/incoming", text.clone());
    tokio::time::timeout(Duration::from_secs(15), session.send_bundle(small))
        .await
        .expect("ack in time")
        .expect("dtnd acknowledged the small bundle");

    // Idle for more than two keepalive intervals.
    tokio::time::sleep(Duration::from_secs(5)).await;

    // A bundle of ~60 KB: four segments of at most 16 KiB.
    let big_payload = pattern(60_000, 7);
    let big = make_bundle(
        "dtn://ferry/sender",
        "dtn://alpha/incoming",
        big_payload.clone(),
    );
    assert!(big.len() <= 64_000, "within dtnd's transfer MRU");
    tokio::time::timeout(Duration::from_secs(15), session.send_bundle(big))
        .await
        .expect("ack in time")
        .expect("dtnd acknowledged the big bundle after the idle period");

    // Bigger than dtnd's transfer MRU: refused locally, session intact.
    let too_big = make_bundle(
        "dtn://ferry/sender",
        "dtn://alpha/incoming",
        vec![1; 70_000],
    );
    let err = session.send_bundle(too_big).await.unwrap_err();
    eprintln!("ferry -> dtnd: oversized bundle: {err}");

    // dtnd delivered both to its `incoming` endpoint.
    let mut got = Vec::new();
    for _ in 0..2 {
        let dtnrecv = tools.dtnrecv.clone();
        let web_port = dtnd.web_port;
        let raw = tokio::task::spawn_blocking(move || {
            dtnrecv_bundle(&dtnrecv, web_port, "incoming", Duration::from_secs(20))
        })
        .await
        .unwrap();
        let b = Bundle::try_from(raw).expect("dtnrecv output parses as a bundle");
        assert_eq!(b.primary.source.to_string(), "dtn://ferry/sender");
        assert_eq!(b.primary.destination.to_string(), "dtn://alpha/incoming");
        got.push(payload_of(&b));
    }
    got.sort_by_key(|p| p.len());
    assert_eq!(got[0], text);
    assert_eq!(got[1], big_payload);
    eprintln!(
        "ferry -> dtnd: dtnrecv received {} and {} payload bytes intact",
        got[0].len(),
        got[1].len()
    );

    tokio::time::timeout(Duration::from_secs(15), session.close())
        .await
        .expect("close in time")
        .expect("clean SESS_TERM exchange with dtnd");
    assert_no_tcpcl_errors(&dtnd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtnd_forwards_bundles_to_ferry() {
    let Some(tools) = tools("dtnd_forwards_bundles_to_ferry") else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ferry_port = listener.local_addr().unwrap().port();
    let dtnd = Dtnd::start(
        &tools,
        "beta",
        &["-s".into(), format!("tcp://127.0.0.1:{ferry_port}/ferry")],
    );

    // dtnd connects to its static peer once it has something to forward.
    let text = "hello ferry, this is dtnd".to_string();
    let dir = tempfile::tempdir().unwrap();
    let small_file = dir.path().join("small");
    fs::write(&small_file, &text).unwrap();
    let big_payload = pattern(20_000, 3);
    let big_file = dir.path().join("big");
    fs::write(&big_file, &big_payload).unwrap();
    for file in [&small_file, &big_file] {
        let args = vec![
            "-6".into(),
            "-p".into(),
            dtnd.web_port.to_string(),
            "-r".into(),
            "dtn://ferry/incoming".into(),
            file.display().to_string(),
        ];
        let (ok, out) = run_bounded(&tools.dtnsend, &args, Duration::from_secs(10));
        assert!(ok, "dtnsend failed: {out}");
    }

    let (stream, from) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .expect("dtnd connects to ferry's listener within 30 s")
        .unwrap();
    let mut opts = TcpclOptions::new("dtn://ferry/");
    // A small segment MRU makes dtnd split the 20 KB bundle.
    opts.session.segment_mru = 1000;
    let mut session = tokio::time::timeout(
        Duration::from_secs(15),
        TcpclSession::accept_with(stream, opts),
    )
    .await
    .expect("handshake in time")
    .expect("session accepted from dtnd");
    assert_eq!(session.peer().node_id, "dtn://beta/");
    eprintln!(
        "dtnd -> ferry: dtnd connected from {from}, {:?}",
        session.peer()
    );

    let mut payloads = Vec::new();
    for _ in 0..2 {
        let received = tokio::time::timeout(Duration::from_secs(30), session.recv_bundle())
            .await
            .expect("bundle from dtnd within 30 s")
            .expect("bundle from dtnd");
        let (bytes, ack) = received.into_parts();
        // dtnsend bundles carry no CRC at all; bp7 parses them regardless.
        let bundle = Bundle::try_from(bytes).expect("dtnd's bundle parses");
        assert_eq!(
            bundle.primary.destination.to_string(),
            "dtn://ferry/incoming"
        );
        // dtnd drops bundles whose source is not one of its endpoints, so
        // dtnsend runs without -s and the source is the node itself.
        assert_eq!(bundle.primary.source.to_string(), "dtn://beta/");
        payloads.push(payload_of(&bundle));
        // "Durably stored": acknowledge.
        ack.ack();
    }
    payloads.sort_by_key(|p| p.len());
    assert_eq!(payloads[0], text.as_bytes());
    assert_eq!(payloads[1], big_payload);
    eprintln!(
        "dtnd -> ferry: received {} and {} payload bytes intact",
        payloads[0].len(),
        payloads[1].len()
    );

    // Give dtnd a moment to take the acknowledgements, then end cleanly.
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::time::timeout(Duration::from_secs(15), session.close())
        .await
        .expect("close in time")
        .expect("clean SESS_TERM exchange with dtnd");
    assert_no_tcpcl_errors(&dtnd);
}

/// A bundle ferry does not store (the ack handle is dropped, which refuses the
/// transfer) stays with dtnd, which sends it again later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtnd_keeps_and_resends_a_bundle_ferry_refused() {
    let Some(tools) = tools("dtnd_keeps_and_resends_a_bundle_ferry_refused") else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ferry_port = listener.local_addr().unwrap().port();
    // A 1 s janitor makes dtnd retry stored bundles quickly.
    let dtnd = Dtnd::start(
        &tools,
        "gamma",
        &[
            "-s".into(),
            format!("tcp://127.0.0.1:{ferry_port}/ferry"),
            "-j".into(),
            "1s".into(),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("msg");
    fs::write(&file, "store me next time").unwrap();
    let args = vec![
        "-6".into(),
        "-p".into(),
        dtnd.web_port.to_string(),
        "-r".into(),
        "dtn://ferry/incoming".into(),
        file.display().to_string(),
    ];
    let (ok, out) = run_bounded(&tools.dtnsend, &args, Duration::from_secs(10));
    assert!(ok, "dtnsend failed: {out}");

    let (stream, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .expect("dtnd connects within 30 s")
        .unwrap();
    let mut session = TcpclSession::accept(stream, "dtn://ferry/").await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(30), session.recv_bundle())
        .await
        .expect("first delivery within 30 s")
        .unwrap();
    let first_id = Bundle::try_from(first.data().to_vec()).unwrap().id();
    // Not stored: dropping the handle sends XFER_REFUSE (retransmit).
    drop(first);

    // dtnd may resend on this session or open a new one.
    let again = tokio::select! {
        r = session.recv_bundle() => r.expect("second delivery on the same session"),
        a = listener.accept() => {
            let (stream, _) = a.unwrap();
            let mut s2 = TcpclSession::accept(stream, "dtn://ferry/").await.unwrap();
            let b = s2.recv_bundle().await.unwrap();
            session = s2;
            b
        }
        _ = tokio::time::sleep(Duration::from_secs(30)) => panic!("dtnd did not resend within 30 s"),
    };
    let again_bundle = Bundle::try_from(again.data().to_vec()).unwrap();
    assert_eq!(again_bundle.id(), first_id);
    assert_eq!(payload_of(&again_bundle), b"store me next time");
    again.into_parts().1.ack();
    eprintln!("refused bundle {first_id} was resent by dtnd and acknowledged");

    // dtnd records the success once the final ack arrives.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dtnd.log_text().contains("Sending bundle succeeded") {
        assert!(
            Instant::now() < deadline,
            "dtnd never saw the acknowledgement"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::timeout(Duration::from_secs(15), session.close())
        .await
        .expect("close in time")
        .expect("clean SESS_TERM exchange with dtnd");
    assert_no_tcpcl_errors(&dtnd);
}
