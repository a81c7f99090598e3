//! ferry-sim: a deterministic simulator for ferry's delay-tolerant routing.
//!
//! Many nodes, virtual time, and the routers of `ferry_core::dtn` — the same code
//! the daemon runs — driven by contacts from a contact plan ([`plan`]) or a mobility
//! model ([`mobility`]), with traffic from a scenario ([`scenario`], [`traffic`]).
//! A run is a function of its scenario and seed: the same seed gives the same
//! report, bit for bit, on every platform.
//!
//! The engine ([`engine`]) is a discrete-event loop over milliseconds. Each contact
//! is a bidirectional link with the scenario's rate in each direction; a bundle
//! takes `size / rate` to cross and is lost if the contact ends first. Each node
//! stores bundles up to a quota. What crosses a link, and when copies are dropped,
//! is the routers' decision alone.

pub mod engine;
pub mod metrics;
pub mod mobility;
pub mod plan;
pub mod rng;
pub mod scenario;
pub mod traffic;

/// Virtual time, milliseconds since the start of the run.
pub type VirtMs = u64;

/// A node's index in a run (`0..nodes`).
pub type NodeIdx = u32;

/// Two nodes come into contact (`up`) or leave it, at a virtual time. `a < b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactEvent {
    pub at: VirtMs,
    pub a: NodeIdx,
    pub b: NodeIdx,
    pub up: bool,
}

impl ContactEvent {
    pub fn up(at: VirtMs, a: NodeIdx, b: NodeIdx) -> Self {
        Self {
            at,
            a: a.min(b),
            b: a.max(b),
            up: true,
        }
    }

    pub fn down(at: VirtMs, a: NodeIdx, b: NodeIdx) -> Self {
        Self {
            at,
            a: a.min(b),
            b: a.max(b),
            up: false,
        }
    }
}

/// Puts contact events in the one order a run processes them: by time, downs
/// before ups at the same instant, then by pair.
pub fn sort_events(events: &mut [ContactEvent]) {
    events.sort_by_key(|e| (e.at, e.up, e.a, e.b));
}

use metrics::Report;
use scenario::{Mobility, Scenario, World};

/// The strategies `run_named` knows, in table order.
pub const STRATEGIES: &[&str] = &["direct", "epidemic", "spray", "prophet"];

/// Runs the named strategy (`direct`, `epidemic`, `spray`, `prophet`), with the
/// world's routing parameters, over a world. `None` for an unknown name.
pub fn run_named(world: &World, strategy: &str, seed: u64) -> Option<Report> {
    let strategy = world.routing.strategy(strategy)?;
    Some(engine::run(world, &strategy, seed))
}

/// The benchmark: `nodes` random-waypoint walkers over `hours` (9,000 m² per node:
/// 3 km × 3 km for 1,000 nodes; 50 m range; 0.5–1.5 m/s; pauses up to 5 min),
/// `bundles_per_node` bundles per node created over the first five sixths of the
/// run, 1–50 kB, living 6 h; 20 MB stores, 250 kB/s links.
pub fn bench_scenario(nodes: usize, hours: f64, bundles_per_node: f64) -> Scenario {
    // Keep the area per node constant: 9,000 m² each.
    let side = (nodes as f64 * 9000.0).sqrt().max(100.0);
    let duration_s = (hours * 3600.0).max(1.0);
    Scenario {
        name: format!("bench-{nodes}x{hours}h"),
        description: "random-waypoint benchmark".into(),
        duration_s,
        link_rate_bytes_per_s: 250_000,
        quota_bytes: 20_000_000,
        quota_per_peer_bytes: None,
        nodes: Vec::new(),
        contacts: None,
        mobility: Some(Mobility {
            nodes,
            name_prefix: "n".into(),
            random_waypoint: mobility::RandomWaypoint {
                width_m: side,
                height_m: side,
                speed_min_mps: 0.5,
                speed_max_mps: 1.5,
                pause_min_s: 0.0,
                pause_max_s: 300.0,
                range_m: 50.0,
                step_s: 1.0,
            },
        }),
        routing: scenario::RoutingParams {
            spray_copies: Some(8),
            ..Default::default()
        },
        traffic: vec![traffic::TrafficSpec {
            from: vec!["*".into()],
            to: vec!["*".into()],
            count: (nodes as f64 * bundles_per_node).round() as u32,
            start_s: 0.0,
            end_s: duration_s * 5.0 / 6.0,
            size_bytes: [1_000, 50_000],
            lifetime_s: 6.0 * 3600.0,
        }],
    }
}
