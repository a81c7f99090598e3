//! `ferry-sim`: run the shipped scenarios (or your own) under each routing strategy.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use ferry_sim::metrics::{self, Report};
use ferry_sim::scenario;

#[derive(Parser)]
#[command(
    name = "ferry-sim",
    version,
    about = "Deterministic simulator for ferry's DTN routing"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario (a shipped one by name, or a scenario file) and print a table.
    Run {
        /// `village-bus-town`, `crowd`, or a path to a scenario .toml.
        scenario: String,
        #[command(flatten)]
        runs: Runs,
    },
    /// List the shipped scenarios.
    List,
    /// Time 1,000 random-waypoint nodes over 24 simulated hours.
    Bench {
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        #[arg(long, default_value_t = 24.0)]
        hours: f64,
        /// Bundles created per node over the run.
        #[arg(long, default_value_t = 5.0)]
        bundles_per_node: f64,
        #[command(flatten)]
        runs: Runs,
    },
}

/// Which strategies run, and how, for both `run` and `bench`.
#[derive(Args)]
struct Runs {
    #[arg(long, value_enum, default_value_t = Which::All)]
    strategy: Which,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the reports as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Strategies run in parallel (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Direct,
    Epidemic,
    Spray,
    Prophet,
    All,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::List => {
            for (name, text, _) in scenario::BUILTIN {
                let s = scenario::Scenario::parse(text)?;
                println!("{name:<18} {}", s.description);
            }
        }
        Cmd::Run {
            scenario,
            runs:
                Runs {
                    strategy,
                    seed,
                    json,
                    jobs,
                },
        } => {
            let s = scenario::resolve(&scenario)?;
            let world = s.build(seed)?;
            if !json {
                println!(
                    "scenario {} (seed {seed}): {} nodes, {} contacts, {} bundles, {:.1} h",
                    world.name,
                    world.names.len(),
                    world.contacts.iter().filter(|c| c.up).count(),
                    world.bundles.len(),
                    world.duration as f64 / 3.6e6
                );
            }
            let reports = run_all(&world, strategy, seed, jobs.unwrap_or_else(cores));
            print(&reports, json)?;
        }
        Cmd::Bench {
            nodes,
            hours,
            bundles_per_node,
            runs:
                Runs {
                    strategy,
                    seed,
                    json,
                    jobs,
                },
        } => {
            let s = ferry_sim::bench_scenario(nodes, hours, bundles_per_node);
            let t = Instant::now();
            let world = s.build(seed)?;
            let mobility_s = t.elapsed().as_secs_f64();
            let up = world.contacts.iter().filter(|c| c.up).count();
            eprintln!(
                "bench: {nodes} nodes, {hours} h random waypoint: {up} contacts, {} bundles; mobility + contacts in {mobility_s:.2} s",
                world.bundles.len()
            );
            let jobs = jobs.unwrap_or_else(cores);
            let t = Instant::now();
            let reports = run_all(&world, strategy, seed, jobs);
            let routing_s = t.elapsed().as_secs_f64();
            print(&reports, json)?;
            if !json {
                for r in &reports {
                    println!(
                        "routing {:<9} {:6.1} s",
                        r.strategy,
                        r.wall_s.unwrap_or(0.0)
                    );
                }
                println!(
                    "wall time: {mobility_s:.1} s mobility + {routing_s:.1} s routing ({} strategies, {jobs} at a time) = {:.1} s",
                    reports.len(),
                    mobility_s + routing_s
                );
            }
        }
    }
    Ok(())
}

/// Runs the chosen strategies, up to `jobs` at a time on their own threads (runs are
/// independent, so this changes nothing but the wall time), in table order.
fn run_all(world: &scenario::World, which: Which, seed: u64, jobs: usize) -> Vec<Report> {
    let names: Vec<&str> = [
        (Which::Direct, "direct"),
        (Which::Epidemic, "epidemic"),
        (Which::Spray, "spray"),
        (Which::Prophet, "prophet"),
    ]
    .into_iter()
    .filter(|(w, _)| which == Which::All || which == *w)
    .map(|(_, n)| n)
    .collect();
    // The longest first (PRoPHET's tables and epidemic's copies are most of the
    // work), so that the last run to finish is a short one, not a long one started
    // late.
    let longest_first = ["prophet", "epidemic", "spray", "direct"];
    let mut start_order: Vec<usize> = (0..names.len()).collect();
    start_order.sort_by_key(|&i| longest_first.iter().position(|n| *n == names[i]));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Report>>> = Mutex::new(vec![None; names.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, names.len().max(1)) {
            scope.spawn(|| {
                while let Some(&i) = start_order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let report =
                        ferry_sim::run_named(world, names[i], seed).expect("known strategy");
                    results.lock().expect("no panics while held")[i] = Some(report);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("no panics while held")
        .into_iter()
        .map(|r| r.expect("every strategy ran"))
        .collect()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn print(reports: &[Report], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(reports)?);
    } else {
        print!("{}", metrics::table(reports));
    }
    Ok(())
}
