//! The `ferry-sim` command line as README shows it: `list`, `run SCENARIO` with
//! `--strategy`, `--seed`, `--json`, `--jobs`, and a scenario it does not know.

use std::process::{Command, Output};

use serde_json::Value;

fn ferry_sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry-sim"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("run ferry-sim")
}

/// `ferry-sim run village-bus-town --strategy S --seed 3 --json`: the one
/// report, without its wall-clock time (the one figure a run may change).
fn run_json(strategy: &str) -> Value {
    let out = ferry_sim(&[
        "run",
        "village-bus-town",
        "--strategy",
        strategy,
        "--seed",
        "3",
        "--json",
        "--jobs",
        "1",
    ]);
    assert!(out.status.success(), "{out:#?}");
    let reports: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let [report] = reports.as_array().expect("a list of reports").as_slice() else {
        panic!("one strategy, one report: {reports:#}");
    };
    let mut report = report.clone();
    report.as_object_mut().unwrap().remove("wall_s");
    report
}

#[test]
fn list_names_the_shipped_scenarios() {
    let out = ferry_sim(&["list"]);
    assert!(out.status.success(), "{out:#?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for name in ["village-bus-town", "crowd"] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing: {text}"
        );
    }
}

#[test]
fn run_reports_one_strategy_as_json_and_a_seed_gives_the_same_run() {
    let direct = run_json("direct");
    assert_eq!(direct["scenario"], "village-bus-town", "{direct:#}");
    assert_eq!(direct["strategy"], "direct", "{direct:#}");
    assert_eq!(direct["seed"], 3, "{direct:#}");
    let created = direct["created"].as_u64().unwrap();
    assert!(created > 0, "{direct:#}");
    // The village and the town never meet, and direct delivery waits for the
    // destination itself: nothing arrives. Epidemic routing lets the bus carry.
    assert_eq!(direct["delivered"], 0, "{direct:#}");
    let epidemic = run_json("epidemic");
    assert_eq!(epidemic["created"].as_u64(), Some(created), "{epidemic:#}");
    assert!(
        epidemic["delivered"].as_u64().unwrap() > 0,
        "the bus carries nothing under epidemic routing: {epidemic:#}"
    );
    assert_eq!(run_json("epidemic"), epidemic, "the same seed, another run");
}

#[test]
fn an_unknown_scenario_is_an_error_naming_the_choices() {
    let out = ferry_sim(&["run", "no-such-place"]);
    assert!(!out.status.success(), "{out:#?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no-such-place"), "{err}");
    assert!(err.contains("village-bus-town"), "{err}");
}
