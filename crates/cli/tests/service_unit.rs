//! The systemd units in `dist/systemd/` run a node that `ferry status` reports on.
//!
//! No systemd runs as PID 1 in a test (nor in CI's container), so nothing can
//! `systemctl start` them here. The test does the two parts that can be checked
//! without it: `systemd-analyze verify` reads each unit as systemd would, and the
//! node is then run the way systemd runs the unit (its `Environment=`, its
//! `ExecStart=` with the binary path pointed at the one under test, `%h` for the
//! home directory, stderr not a terminal and `JOURNAL_STREAM` set as the journal
//! does), in a network namespace with only `lo`, and stopped with the unit's
//! `KillSignal=` within its `TimeoutStopSec=`. What is not exercised: `User=`,
//! the sandboxing directives (verified, not applied) and `Restart=`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_node::control::types::IdInfo;
use ferry_testkit::ferry_binary;
use ferry_testkit::lab::{self, Host, Lab};
use serde_json::Value;

/// The `[Service]` settings the test acts on.
struct Unit {
    text: String,
    environment: BTreeMap<String, String>,
    exec_start: Vec<String>,
    kill_signal: String,
    timeout_stop: Duration,
}

impl Unit {
    fn read(relative: &str) -> Unit {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../dist/systemd")
            .join(relative);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut section = String::new();
        let mut service: Vec<(String, String)> = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('[') {
                section = line.to_owned();
            } else if section == "[Service]" {
                let (key, value) = line.split_once('=').expect("KEY=VALUE");
                service.push((key.to_owned(), value.to_owned()));
            }
        }
        let get = |key: &str| {
            service
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        };
        let environment = get("Environment")
            .iter()
            .map(|pair| {
                let (k, v) = pair.split_once('=').expect("Environment=KEY=VALUE");
                (k.to_owned(), v.to_owned())
            })
            .collect();
        let exec_start: Vec<String> = get("ExecStart")
            .first()
            .expect("an ExecStart")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let timeout = get("TimeoutStopSec")
            .first()
            .cloned()
            .unwrap_or("90s".into());
        Unit {
            text,
            environment,
            exec_start,
            kill_signal: get("KillSignal")
                .first()
                .cloned()
                .unwrap_or("SIGTERM".into()),
            timeout_stop: Duration::from_secs(
                timeout.trim_end_matches('s').parse().expect("seconds"),
            ),
        }
    }

    /// The unit with its ExecStart binary replaced by the one under test.
    fn with_binary(&self) -> String {
        self.text.replace(&self.exec_start[0], ferry_binary())
    }
}

/// `systemd-analyze verify` on the unit (as a system or a user unit): no error,
/// no warning.
fn verify(unit: &Unit, name: &str, user: bool, scratch: &Path) -> bool {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        ferry_testkit::skip("systemd-analyze is not installed (Debian: apt-get install systemd)");
        return false;
    }
    let file = scratch.join(name);
    std::fs::write(&file, unit.with_binary()).unwrap();
    let runtime = scratch.join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    let mut command = Command::new("systemd-analyze");
    if user {
        command.arg("--user").env("XDG_RUNTIME_DIR", &runtime);
    }
    let out = command
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify {name}: {stderr}"
    );
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze warns about {name}: {stderr}"
    );
    true
}

/// Runs the unit's ExecStart in `host` with its environment over `env`.
fn start(host: &Host, unit: &Unit, env: &BTreeMap<String, String>, log: &Path) -> Child {
    let mut command = host.command(ferry_binary());
    command
        .args(&unit.exec_start[1..])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // What systemd sets for a service whose stderr goes to the journal.
        .env("JOURNAL_STREAM", "8:12345")
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    command.spawn().expect("start the unit's ExecStart")
}

/// `ferry ARGS` in `host` with `env`.
fn ferry(host: &Host, env: &BTreeMap<String, String>, args: &[&str]) -> Output {
    host.command(ferry_binary())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Waits for `ferry status --json` to answer, and returns its report.
fn wait_for_status(host: &Host, env: &BTreeMap<String, String>, node: &mut Child) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = ferry(host, env, &["status", "--json"]);
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).expect("status JSON");
        }
        if let Some(exit) = node.try_wait().unwrap() {
            panic!("the node exited before answering: {exit}");
        }
        assert!(
            Instant::now() < deadline,
            "no status within 60 s: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops the node with the unit's KillSignal and waits at most its
/// TimeoutStopSec for a clean exit.
fn stop(node: &mut Child, unit: &Unit) {
    let status = Command::new("kill")
        .args(["-s", unit.kill_signal.trim_start_matches("SIG")])
        .arg(node.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + unit.timeout_stop;
    loop {
        if let Some(exit) = node.try_wait().unwrap() {
            assert!(exit.success(), "the node did not stop cleanly: {exit}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the node outlived TimeoutStopSec ({:?})",
            unit.timeout_stop
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks a node that ran as `unit` with `env`: status answers with this id,
/// the log has no timestamps (the journal adds its own) and no colour codes,
/// and the node stops cleanly on the unit's signal.
fn run_as_service(host: &Host, unit: &Unit, env: BTreeMap<String, String>, scratch: &Path) {
    let log = scratch.join("node.log");
    let mut node = start(host, unit, &env, &log);
    let status = wait_for_status(host, &env, &mut node);
    let id: IdInfo = serde_json::from_slice(&ferry(host, &env, &["id", "--json"]).stdout).unwrap();
    assert_eq!(status["id"]["peer_id"], id.peer_id.as_str(), "{status:#}");
    assert!(
        status["id"]["listen_addrs"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{status:#}"
    );
    assert!(
        status["dtn"]["quota_bytes"].as_u64() > Some(0),
        "{status:#}"
    );
    stop(&mut node, unit);

    let text = std::fs::read_to_string(&log).unwrap();
    let first = text.lines().next().expect("the node logged something");
    assert!(
        !first.starts_with(|c: char| c.is_ascii_digit()),
        "a timestamp in the journal's line: {first:?}"
    );
    assert!(!text.contains('\u{1b}'), "colour codes in the log: {text}");
    assert!(text.contains("starting"), "{text}");
}

#[test]
fn the_system_unit_runs_a_node_that_status_reports_on() {
    if lab::skip_unless_root() {
        return;
    }
    let lab = Lab::new();
    let scratch = lab.tempdir();
    let unit = Unit::read("ferry.service");
    if !verify(&unit, "ferry.service", false, scratch.path()) {
        return;
    }
    // StateDirectory=ferry: systemd makes /var/lib/ferry, mode 0700.
    let state: PathBuf = scratch.path().join("var-lib-ferry");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let mut env = unit.environment.clone();
    assert_eq!(
        env.get("FERRY_DATA_DIR").map(String::as_str),
        Some("/var/lib/ferry")
    );
    env.insert("FERRY_DATA_DIR".into(), state.display().to_string());
    let host = lab.host("svc");
    run_as_service(&host, &unit, env, scratch.path());
}

#[test]
fn the_user_unit_runs_a_node_that_status_reports_on() {
    if lab::skip_unless_root() {
        return;
    }
    let lab = Lab::new();
    let scratch = lab.tempdir();
    let unit = Unit::read("user/ferry.service");
    if !verify(&unit, "ferry.service", true, scratch.path()) {
        return;
    }
    assert_eq!(unit.exec_start[0], "%h/.cargo/bin/ferry");
    // A user service has the user's HOME; the data directory is the default one
    // under it, which `ferry status` finds with the same HOME.
    let home = scratch.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let mut env = unit.environment.clone();
    env.insert("HOME".into(), home.display().to_string());
    let host = lab.host("usvc");
    run_as_service(&host, &unit, env, scratch.path());
    assert!(
        home.join(".local/share/ferry").is_dir(),
        "the node kept its data in the user's default data directory"
    );
}
