//! Who may talk to a running node, as README says: only a client holding the
//! token in the data directory's `control.json` (anything else gets 401), and the
//! CLI finds that directory through `--data-dir` or `FERRY_DATA_DIR`.

use std::process::Command;
use std::time::Duration;

use ferry_node::control::ControlFile;
use ferry_node::control::types::IdInfo;
use ferry_testkit::harness::{Node, ferry_binary, run_with_deadline};

/// `GET /v1/id` with `authorization` (if any): the status and the body.
fn get_id(url: &str, authorization: Option<&str>) -> (u16, String) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    );
    let mut request = agent.get(format!("{url}/v1/id"));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let mut response = request.call().unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

#[test]
fn the_control_api_answers_401_to_a_missing_or_wrong_token() {
    let node = Node::start("ana");
    let control = ControlFile::read(&node.data_dir())
        .unwrap()
        .expect("the node wrote its control.json");
    let wrong = format!("Bearer {}x", control.token);
    for authorization in [
        None,
        Some("Bearer "),
        Some(wrong.as_str()),
        Some("Basic abc"),
    ] {
        let (status, body) = get_id(&control.url, authorization);
        assert_eq!(status, 401, "{authorization:?}: {body}");
        assert!(body.contains("token"), "{authorization:?}: {body}");
        assert!(
            !body.contains(&control.token),
            "a refusal must not reveal the token: {body}"
        );
    }
    let right = format!("Bearer {}", control.token);
    let (status, body) = get_id(&control.url, Some(&right));
    assert_eq!(status, 200, "{body}");
    let id: IdInfo = serde_json::from_str(&body).unwrap();
    assert_eq!(id.peer_id, node.id().peer_id);
}

/// `ferry` with `FERRY_DATA_DIR` naming `node`'s data directory, set through
/// `env(1)`: the harness clears the variable from every command it runs, so that
/// the developer's own setting never leaks into a test.
fn with_ferry_data_dir(node: &Node) -> Command {
    let mut command = Command::new("env");
    command
        .arg(format!("FERRY_DATA_DIR={}", node.data_dir().display()))
        .arg(ferry_binary());
    command
}

#[test]
fn the_cli_finds_the_node_through_ferry_data_dir() {
    let node = Node::start("ana");
    let mut command = with_ferry_data_dir(&node);
    command.args(["id", "--json"]);
    let run = run_with_deadline(command, b"", Duration::from_secs(30)).ok();
    let id: IdInfo = run.json();
    assert_eq!(id.peer_id, node.id().peer_id);

    // `--data-dir` wins over the variable.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut command = with_ferry_data_dir(&node);
    command
        .arg("--data-dir")
        .arg(elsewhere.path())
        .args(["id", "--json"]);
    let run = run_with_deadline(command, b"", Duration::from_secs(30));
    // 3: no node is running there.
    assert_eq!(run.status.code(), Some(3), "{run:#?}");
    assert!(
        run.stderr.contains(&elsewhere.path().display().to_string()),
        "the error must name the data directory given: {run:#?}"
    );
}
