//! What `ferry completions`, `ferry man` and `ferry config` print, from the real
//! binary: the completion script and the man page name every command `ferry
//! --help` lists, the man page is roff that `man` renders, and `ferry config`
//! shows each setting with the source it came from.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn ferry(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(FERRY);
    command.args(args).stdin(Stdio::null());
    for var in [
        "FERRY_DATA_DIR",
        "FERRY_NAME",
        "FERRY_BEACON_PORT",
        "FERRY_MDNS",
    ] {
        command.env_remove(var);
    }
    command.envs(envs.iter().copied());
    command.output().unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    let output = ferry(args, &[]);
    assert!(
        output.status.success(),
        "ferry {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The command names a help text lists under "Commands:".
fn commands_in_help(args: &[&str]) -> Vec<String> {
    stdout_of(args)
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        // A wrapped description goes on under its command, further indented.
        .filter(|line| !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_bash_completion_script_names_every_command() {
    let top = commands_in_help(&["--help"]);
    for expected in ["start", "dtn", "config", "completions", "man"] {
        assert!(top.iter().any(|c| c == expected), "{expected} in {top:?}");
    }
    let dtn = commands_in_help(&["dtn", "--help"]);
    assert!(dtn.iter().any(|c| c == "import"), "{dtn:?}");
    let script = stdout_of(&["completions", "bash"]);
    assert!(
        script.contains("complete -F _ferry"),
        "not a bash completion script"
    );
    for command in top.iter().chain(&dtn) {
        assert!(
            script.contains(command.as_str()),
            "{command} missing from the script"
        );
    }
    // Every possible value of an enum-like option is offered.
    for value in ["epidemic", "prophet", "spray", "expedited", "bulk"] {
        assert!(script.contains(value), "{value} missing from the script");
    }
    if Command::new("bash").arg("--version").output().is_ok() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ferry.bash");
        std::fs::write(&file, &script).unwrap();
        let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        assert!(
            stdout_of(&["completions", shell]).contains("ferry"),
            "{shell}"
        );
    }
}

#[test]
fn the_man_page_is_roff_with_a_name_section_and_every_command() {
    let page = stdout_of(&["man"]);
    assert!(page.starts_with(".ie"), "{page}");
    assert!(page.contains(".TH ferry 1"), "{page}");
    assert!(page.contains(".SH NAME\nferry"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    let top = commands_in_help(&["--help"]);
    for command in &top {
        assert!(page.contains(&format!("ferry\\-{command}(1)")), "{command}");
    }
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    stdout_of(&["man", "--dir", pages.to_str().unwrap()]);
    for name in [
        "ferry.1",
        "ferry-start.1",
        "ferry-dtn-send.1",
        "ferry-config-show.1",
    ] {
        assert!(pages.join(name).is_file(), "{name} not written");
    }
    assert_renders(&pages.join("ferry.1"), &top);
}

/// `man -l` (when the machine has it) formats the page without a warning.
fn assert_renders(page: &Path, commands: &[String]) {
    let Ok(output) = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
    else {
        eprintln!("no `man` here: the page was checked by its structure only");
        return;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("NAME"), "{text}");
    assert!(
        text.contains("ferry - ferry: a peer-to-peer node"),
        "{text}"
    );
    for command in commands {
        assert!(
            text.contains(&format!("ferry-{command}(1)")),
            "{command}: {text}"
        );
    }
}

#[test]
fn config_show_says_where_each_value_came_from() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "mdns = false\nname = \"file\"\n",
    )
    .unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let output = ferry(
        &[
            "--data-dir",
            data_dir,
            "config",
            "show",
            "--json",
            "--name",
            "flag",
        ],
        &[("FERRY_BEACON_PORT", "6000"), ("FERRY_NAME", "env")],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let show: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(show["config_file_exists"], true);
    let setting = |key: &str| {
        show["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .unwrap()
            .clone()
    };
    assert_eq!(setting("name")["value"], "flag");
    assert_eq!(setting("name")["from"], serde_json::json!(["flag"]));
    assert_eq!(setting("beacon_port")["value"], 6000);
    assert_eq!(setting("beacon_port")["from"], serde_json::json!(["env"]));
    assert_eq!(setting("mdns")["value"], false);
    assert_eq!(setting("mdns")["from"], serde_json::json!(["file"]));
    assert_eq!(setting("dtn_strategy")["value"], "epidemic");
    assert_eq!(
        setting("dtn_strategy")["from"],
        serde_json::json!(["default"])
    );

    let text = String::from_utf8(
        ferry(
            &["--data-dir", data_dir, "config", "show"],
            &[("FERRY_BEACON_PORT", "6000")],
        )
        .stdout,
    )
    .unwrap();
    assert!(text.contains("env FERRY_BEACON_PORT  6000"), "{text}");

    // A value `ferry start` would refuse is refused here too, naming its source.
    let output = ferry(
        &["--data-dir", data_dir, "config", "show"],
        &[("FERRY_MDNS", "maybe")],
    );
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("mdns") && error.contains("true or false"),
        "{error}"
    );
}

#[test]
fn the_example_config_is_what_a_node_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let example = stdout_of(&["config", "example"]);
    std::fs::write(dir.path().join("config.toml"), &example).unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let text = stdout_of(&["--data-dir", data_dir, "config", "show"]);
    // Every key the example sets is read from the file; none is left unexplained.
    assert!(
        text.contains("beacon_port                  config.toml"),
        "{text}"
    );
    assert!(!text.contains("(unset)\n"), "{text}");
}
