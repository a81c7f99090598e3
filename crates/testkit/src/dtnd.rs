//! A harness for tests against dtn7-rs's `dtnd` (dtn7 0.21.0) on 127.0.0.1 only,
//! shared by `crates/net/tests/tcpcl_dtnd.rs` and `crates/cli/tests/dtn_tcpcl.rs`.
//!
//! Needs `dtnd`, `dtnsend` and `dtnrecv` in `$HOME/.cache/ferry-dtn7/bin` or on
//! PATH (`tests/run-all.sh` installs them); [`tools`] says "SKIPPED" otherwise.
//! dtnd runs with neighbour discovery off (`--disable_nd -i 0`), its TCPCL
//! listener bound to 127.0.0.1 and its web API on [::1] (`-6`). Every process runs
//! with a deadline and is killed at the end. dtnd's log is printed when a test
//! fails, or always with `FERRY_SHOW_DTND_LOG=1`.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// Where the dtn7 binaries are.
#[derive(Clone)]
pub struct Tools {
    dtnd: PathBuf,
    dtnsend: PathBuf,
    dtnrecv: PathBuf,
}

/// The dtn7 binaries, or `None` after recording the running test as skipped (under
/// CI, where they must be installed, it fails instead).
pub fn tools() -> Option<Tools> {
    match (dtn7_bin("dtnd"), dtn7_bin("dtnsend"), dtn7_bin("dtnrecv")) {
        (Some(dtnd), Some(dtnsend), Some(dtnrecv)) => Some(Tools {
            dtnd,
            dtnsend,
            dtnrecv,
        }),
        _ => {
            crate::skip(&format!(
                "dtnd/dtnsend/dtnrecv not found in $HOME/.cache/ferry-dtn7/bin or on PATH; \
                 install them with `{INSTALL_HINT}`"
            ));
            None
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port_v4() -> u16 {
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
pub struct Dtnd {
    tools: Tools,
    child: Child,
    log: PathBuf,
    tcp_port: u16,
    web_port: u16,
    _dir: tempfile::TempDir,
}

impl Dtnd {
    /// Starts `dtnd` as node `dtn://NAME/` (epidemic routing, debug log) with
    /// `extra` arguments, and waits until its web API answers.
    pub fn start(tools: &Tools, name: &str, extra: &[&str]) -> Dtnd {
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
            tools: tools.clone(),
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

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// dtnd's TCPCL listener.
    pub fn tcpcl_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.tcp_port))
    }

    /// `dtnsend`s `payload` to `receiver` through this dtnd's web API.
    pub fn send(&self, receiver: &str, payload: &[u8]) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("payload");
        fs::write(&file, payload).unwrap();
        let file = file.display().to_string();
        let (ok, out) = self.client(&self.tools.dtnsend, &["-r", receiver, &file]);
        assert!(ok, "dtnsend to {receiver} failed: {out}");
    }

    /// Polls `dtnrecv -e ENDPOINT -r` until a bundle arrives; returns its bytes.
    pub fn recv(&self, endpoint: &str, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.try_recv(endpoint) {
                Ok(bundle) => return bundle,
                Err(output) => last = output,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("dtnrecv got no bundle on {endpoint} within {timeout:?}; last output: {last}");
    }

    /// One `dtnrecv -e ENDPOINT -r`: the bundle's bytes, or what dtnrecv said
    /// instead.
    pub fn try_recv(&self, endpoint: &str) -> Result<Vec<u8>, String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bundle");
        let out = file.display().to_string();
        let (ok, output) = self.client(&self.tools.dtnrecv, &["-e", endpoint, "-r", "-o", &out]);
        match fs::read(&file) {
            Ok(bytes) if ok && !bytes.is_empty() => Ok(bytes),
            _ => Err(output),
        }
    }

    /// Runs the dtn7 client `bin` against this dtnd's web API on [::1]
    /// (`-6 -p PORT ARGS...`) with a 10 s deadline: whether it succeeded, and
    /// what it printed.
    fn client(&self, bin: &Path, args: &[&str]) -> (bool, String) {
        let mut all = vec!["-6".to_owned(), "-p".to_owned(), self.web_port.to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        run_bounded(bin, &all, Duration::from_secs(10))
    }

    /// Checks dtnd's log for its TCPCL error lines (dtn7 0.21
    /// src/cla/tcp/mod.rs).
    #[track_caller]
    pub fn assert_no_tcpcl_errors(&self) {
        let log = self.log_text();
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

/// `len` bytes of a fixed pattern that depends on `seed`.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}
