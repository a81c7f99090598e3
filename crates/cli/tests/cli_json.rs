//! What scripts rely on: `--json` on every command (but `start` and `chat`),
//! errors as a JSON object with `--json`, the documented exit codes, the
//! API's typed error bodies and statuses, and `ferry status`.

use std::process::Command;

use ferry_node::control::ControlFile;
use ferry_node::control::types::{ApiError, ErrorKind};
use ferry_testkit::harness::{Node, ferry_binary, ferry_in, run_with_deadline, wait_connected};
use serde_json::Value;

/// The error object `--json` prints on stderr.
fn json_error(stderr: &str) -> Value {
    serde_json::from_str(stderr.trim())
        .unwrap_or_else(|e| panic!("stderr is not one JSON object ({e}): {stderr:?}"))
}

fn ferry_help(args: &[&str]) -> String {
    let mut command = Command::new(ferry_binary());
    command.args(args).arg("--help");
    run_with_deadline(command, b"", std::time::Duration::from_secs(30))
        .ok()
        .stdout
}

/// The subcommands a help text lists under "Commands:" (a wrapped description
/// goes on in lines indented further).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn every_command_but_start_and_chat_takes_json_and_help_lists_the_exit_codes() {
    let top = ferry_help(&[]);
    for line in ["Exit codes:", "  3  no node is running", "  4  not found"] {
        assert!(
            top.contains(line),
            "{line:?} missing from ferry --help:\n{top}"
        );
    }
    let commands = subcommands(&top);
    assert!(commands.len() > 15, "{commands:?}");
    let mut checked = 0;
    for command in &commands {
        let help = ferry_help(&[command]);
        let nested = subcommands(&help);
        let leaves: Vec<Vec<&str>> = if nested.is_empty() {
            vec![vec![command]]
        } else {
            nested.iter().map(|n| vec![command.as_str(), n]).collect()
        };
        for leaf in leaves {
            let help = ferry_help(&leaf);
            let interactive = leaf == ["start"] || leaf == ["chat"];
            let takes_json = help.lines().any(|l| l.trim_start().starts_with("--json"));
            assert_eq!(takes_json, !interactive, "ferry {leaf:?} --help:\n{help}");
            if interactive {
                assert!(help.contains("no --json"), "{help}");
            }
            checked += 1;
        }
    }
    assert!(checked > 20, "{checked}");
}

#[test]
fn without_a_node_the_exit_code_is_3_and_the_json_error_says_no_node() {
    let dir = tempfile::tempdir().unwrap();
    let run = ferry_in(dir.path(), &["status", "--json"], b"");
    assert_eq!(run.status.code(), Some(3), "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");
    let error = json_error(&run.stderr);
    assert_eq!(error["kind"], "no_node", "{error}");
    assert_eq!(error["exit_code"], 3, "{error}");
    assert!(error["message"].as_str().unwrap().contains("ferry start"));

    let text = ferry_in(dir.path(), &["jobs"], b"");
    assert_eq!(text.status.code(), Some(3), "{text:#?}");
    assert!(text.stderr.starts_with("error: no ferry node"), "{text:#?}");
}

#[test]
fn a_wrong_command_line_is_exit_code_2_and_a_json_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = ferry_in(
        dir.path(),
        &["jobs", "cancel", "not-a-number", "--json"],
        b"",
    );
    assert_eq!(run.status.code(), Some(2), "{run:#?}");
    assert_eq!(json_error(&run.stderr)["kind"], "usage", "{run:#?}");
    let plain = ferry_in(dir.path(), &["peers", "--no-such-flag"], b"");
    assert_eq!(plain.status.code(), Some(2), "{plain:#?}");
    assert!(plain.stderr.starts_with("error: "), "{plain:#?}");
}

#[test]
fn node_errors_carry_their_kind_to_the_exit_code_and_the_api_status() {
    let node = Node::start("solo");
    let own = node.addr();

    // Connecting to itself is a wrong request (400), not a failed dial (it was 502).
    let run = node.ferry(&["connect", &own, "--json"]);
    assert_eq!(run.status.code(), Some(1), "{run:#?}");
    let error = json_error(&run.stderr);
    assert_eq!(error["kind"], "invalid", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("this node itself")
    );

    let control = ControlFile::read(&node.data_dir()).unwrap().unwrap();
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .build(),
    );
    let mut response = agent
        .post(format!("{}/v1/connect", control.url))
        .header("Authorization", format!("Bearer {}", control.token))
        .send_json(serde_json::json!({ "addr": own }))
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: ApiError = response.body_mut().read_json().unwrap();
    assert_eq!(body.kind, ErrorKind::Invalid, "{body:?}");

    // A request the handler cannot read is typed too: a body that is not the
    // route's JSON, a path parameter that is not a number.
    let mut response = agent
        .post(format!("{}/v1/connect", control.url))
        .header("Authorization", format!("Bearer {}", control.token))
        .content_type("application/json")
        .send("{\"address\": 1}")
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: ApiError = response.body_mut().read_json().unwrap();
    assert_eq!(body.kind, ErrorKind::Invalid, "{body:?}");
    let mut response = agent
        .get(format!("{}/v1/jobs/not-a-number", control.url))
        .header("Authorization", format!("Bearer {}", control.token))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: ApiError = response.body_mut().read_json().unwrap();
    assert_eq!(body.kind, ErrorKind::Invalid, "{body:?}");

    // A wrong token: 401, typed.
    let mut response = agent
        .get(format!("{}/v1/id", control.url))
        .header("Authorization", "Bearer wrong")
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: ApiError = response.body_mut().read_json().unwrap();
    assert_eq!(body.kind, ErrorKind::Unauthorized, "{body:?}");

    // Not found: exit code 4, from the node (a job) and from the command's own
    // check (content by id).
    for args in [
        vec!["jobs", "cancel", "4242", "--json"],
        vec!["rm", &"ab".repeat(32), "--json"],
    ] {
        let run = node.ferry(&args);
        assert_eq!(run.status.code(), Some(4), "{args:?}: {run:#?}");
        assert!(run.stdout.is_empty(), "{run:#?}");
        assert_eq!(json_error(&run.stderr)["kind"], "not_found", "{run:#?}");
    }
    let mut response = agent
        .get(format!("{}/v1/jobs/4242", control.url))
        .header("Authorization", format!("Bearer {}", control.token))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: ApiError = response.body_mut().read_json().unwrap();
    assert_eq!(body.kind, ErrorKind::NotFound, "{body:?}");

    // Without --json the same failure is a line of text.
    let run = node.ferry(&["jobs", "cancel", "4242"]);
    assert_eq!(run.status.code(), Some(4), "{run:#?}");
    assert!(run.stderr.starts_with("error: no job 4242"), "{run:#?}");
}

#[test]
fn status_shows_the_node_its_peers_channels_and_dtn_store() {
    let a = Node::start("ana");
    let b = Node::start("bo");
    b.ferry(&["connect", &a.addr()]).ok();
    let a_id = a.id().peer_id;
    wait_connected(&b, &a, &a_id);
    b.post("general", "hello");

    let status: Value = b.ferry(&["status", "--json"]).ok().json();
    assert_eq!(
        status["id"]["peer_id"],
        b.id().peer_id.as_str(),
        "{status:#}"
    );
    let connected: Vec<&Value> = status["connected"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|peers| peers.as_array().unwrap())
        .collect();
    assert!(
        connected.iter().any(|p| p["peer_id"] == a_id.as_str()),
        "{status:#}"
    );
    assert_eq!(status["channels"][0]["channel"], "general", "{status:#}");
    assert!(
        status["dtn"]["quota_bytes"].as_u64().unwrap() > 0,
        "{status:#}"
    );
    assert!(status["nat"]["reachability"].is_string(), "{status:#}");

    let text = b.ferry(&["status"]).ok().stdout;
    for part in ["bo (", "listening", "NAT", "1 connected", "#general", "DTN"] {
        assert!(text.contains(part), "{part:?} missing:\n{text}");
    }
}
