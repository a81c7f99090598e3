//! Scenario files: the nodes, how they meet, what they send, and the limits.
//!
//! A scenario is a TOML file:
//!
//! ```toml
//! name = "village-bus-town"
//! description = "..."
//! duration_s = 259200                 # simulated time
//! link_rate_bytes_per_s = 250000      # each direction of each contact
//! quota_bytes = 50000000              # storage per node
//! nodes = ["v1", "v2", "bus"]         # optional: names (and their order)
//!
//! [contacts]                          # either a contact plan ...
//! plan_file = "village-bus-town.plan" # relative to this file (see `plan` module)
//! # plan = """0 100 a b"""            # ... or the plan inline
//!
//! [mobility]                          # ... or a mobility model
//! nodes = 200                         # named n0 .. n199
//! random_waypoint = { width_m = 1000, height_m = 1000, speed_min_mps = 0.5,
//!                     speed_max_mps = 1.5, pause_min_s = 0, pause_max_s = 120,
//!                     range_m = 30 }
//!
//! [routing]                           # optional strategy parameters
//! spray_copies = 8
//!
//! [[traffic]]                         # see `traffic::TrafficSpec`
//! from = ["v*"]
//! to = ["t*"]
//! count = 200
//! end_s = 172800
//! size_bytes = [1000, 100000]
//! lifetime_s = 259200
//! ```

use std::path::Path;

use ferry_core::dtn::{ProphetConfig, Strategy};
use serde::{Deserialize, Serialize};

use crate::mobility::RandomWaypoint;
use crate::rng::{Stream, stream};
use crate::traffic::{NewBundle, TrafficSpec};
use crate::{ContactEvent, NodeIdx, VirtMs, mobility, plan};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub duration_s: f64,
    pub link_rate_bytes_per_s: u64,
    pub quota_bytes: u64,
    /// The most bytes of bundles received from one peer a node stores; 0 for no
    /// limit. Default: the daemon's, a quarter of `quota_bytes`.
    #[serde(default)]
    pub quota_per_peer_bytes: Option<u64>,
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default)]
    pub contacts: Option<PlanSource>,
    #[serde(default)]
    pub mobility: Option<Mobility>,
    #[serde(default)]
    pub routing: RoutingParams,
    #[serde(default)]
    pub traffic: Vec<TrafficSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSource {
    #[serde(default)]
    pub plan_file: Option<String>,
    #[serde(default)]
    pub plan: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mobility {
    pub nodes: usize,
    #[serde(default = "default_prefix")]
    pub name_prefix: String,
    pub random_waypoint: RandomWaypoint,
}

fn default_prefix() -> String {
    "n".into()
}

/// Strategy parameters; anything left out takes the core's default
/// (`ferry_core::dtn::Strategy`, `ProphetConfig`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingParams {
    /// Binary spray-and-wait: copies a new bundle starts with (L).
    #[serde(default)]
    pub spray_copies: Option<u32>,
    /// PRoPHET (RFC 6693 names): P_encounter_first, P_encounter_max, β, γ, the
    /// aging time unit and the typical meeting interval (seconds).
    #[serde(default)]
    pub prophet_p_encounter_first: Option<f64>,
    #[serde(default)]
    pub prophet_p_encounter_max: Option<f64>,
    #[serde(default)]
    pub prophet_beta: Option<f64>,
    #[serde(default)]
    pub prophet_gamma: Option<f64>,
    #[serde(default)]
    pub prophet_time_unit_s: Option<f64>,
    #[serde(default)]
    pub prophet_typical_interval_s: Option<f64>,
}

impl RoutingParams {
    /// The core strategy called `name` (`direct`, `epidemic`, `spray`, `prophet`)
    /// with these parameters.
    pub fn strategy(&self, name: &str) -> Option<Strategy> {
        match name {
            "direct" => Some(Strategy::DirectDelivery),
            "epidemic" => Some(Strategy::Epidemic),
            "spray" => Some(Strategy::SprayAndWait {
                copies: self.spray_copies.unwrap_or(Strategy::DEFAULT_SPRAY_COPIES),
            }),
            "prophet" => {
                let mut c = ProphetConfig::default();
                let set = |v: &mut f64, o: Option<f64>| {
                    if let Some(o) = o {
                        *v = o;
                    }
                };
                set(&mut c.p_encounter_first, self.prophet_p_encounter_first);
                set(&mut c.p_encounter_max, self.prophet_p_encounter_max);
                set(&mut c.beta, self.prophet_beta);
                set(&mut c.gamma, self.prophet_gamma);
                if let Some(s) = self.prophet_time_unit_s {
                    c.time_unit_ms = (s * 1000.0) as u64;
                }
                if let Some(s) = self.prophet_typical_interval_s {
                    c.typical_interval_ms = (s * 1000.0) as u64;
                }
                Some(Strategy::Prophet(c))
            }
            _ => None,
        }
    }
}

/// A scenario made concrete for one seed: the nodes, every contact event and every
/// bundle to create.
#[derive(Debug, Clone)]
pub struct World {
    pub name: String,
    pub names: Vec<String>,
    pub duration: VirtMs,
    pub link_rate: u64,
    pub quota: u64,
    pub quota_per_peer: Option<u64>,
    pub routing: RoutingParams,
    pub contacts: Vec<ContactEvent>,
    pub bundles: Vec<NewBundle>,
}

impl Scenario {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Reads a scenario file; a `plan_file` is read relative to it.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut s = Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if let Some(PlanSource {
            plan_file: Some(file),
            plan,
        }) = &mut s.contacts
        {
            let p = path.parent().unwrap_or(Path::new(".")).join(&*file);
            *plan = Some(
                std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
            );
        }
        Ok(s)
    }

    /// Builds the world for a seed: resolves names, runs the mobility model and
    /// generates the traffic.
    pub fn build(&self, seed: u64) -> anyhow::Result<World> {
        anyhow::ensure!(
            self.duration_s > 0.0 && self.duration_s.is_finite(),
            "duration_s must be positive"
        );
        anyhow::ensure!(
            self.link_rate_bytes_per_s > 0,
            "link_rate_bytes_per_s must be positive"
        );
        anyhow::ensure!(self.quota_bytes > 0, "quota_bytes must be positive");
        let duration = (self.duration_s * 1000.0) as VirtMs;
        let mut names = self.nodes.clone();
        let contacts = match (&self.contacts, &self.mobility) {
            (Some(src), None) => {
                let text = src.plan.as_deref().ok_or_else(|| {
                    anyhow::anyhow!("[contacts] needs `plan` or a readable `plan_file`")
                })?;
                let planned = plan::parse(text)?;
                let mut index = |n: &str| -> NodeIdx {
                    match names.iter().position(|x| x == n) {
                        Some(i) => i as NodeIdx,
                        None => {
                            names.push(n.to_string());
                            (names.len() - 1) as NodeIdx
                        }
                    }
                };
                let resolved: Vec<_> = planned
                    .iter()
                    .filter(|c| c.start < duration)
                    .map(|c| (c.start, c.end.min(duration), index(&c.a), index(&c.b)))
                    .collect();
                plan::to_events(&resolved)
            }
            (None, Some(m)) => {
                m.random_waypoint.validate().map_err(anyhow::Error::msg)?;
                anyhow::ensure!(
                    self.nodes.is_empty(),
                    "a mobility scenario names its nodes itself (name_prefix)"
                );
                names = (0..m.nodes)
                    .map(|i| format!("{}{i}", m.name_prefix))
                    .collect();
                mobility::contacts(
                    &m.random_waypoint,
                    m.nodes,
                    duration,
                    &mut stream(seed, Stream::Mobility),
                )
            }
            _ => anyhow::bail!("a scenario needs exactly one of [contacts] and [mobility]"),
        };
        let mut seen = std::collections::HashSet::new();
        for n in &names {
            anyhow::ensure!(seen.insert(n), "node {n} is named twice");
        }
        let bundles =
            crate::traffic::generate(&self.traffic, &names, &mut stream(seed, Stream::Traffic))
                .map_err(anyhow::Error::msg)?;
        Ok(World {
            name: self.name.clone(),
            names,
            duration,
            link_rate: self.link_rate_bytes_per_s,
            quota: self.quota_bytes,
            quota_per_peer: self.quota_per_peer_bytes,
            routing: self.routing.clone(),
            contacts,
            bundles,
        })
    }
}

/// A shipped scenario: its name, its TOML, and the plan file it names (file name,
/// text), if any.
pub type Builtin = (
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
);

/// The scenarios shipped in `crates/sim/scenarios/`, built into the binary.
pub const BUILTIN: &[Builtin] = &[
    (
        "village-bus-town",
        include_str!("../scenarios/village-bus-town.toml"),
        Some((
            "village-bus-town.plan",
            include_str!("../scenarios/village-bus-town.plan"),
        )),
    ),
    ("crowd", include_str!("../scenarios/crowd.toml"), None),
];

/// A shipped scenario by name, or a scenario file by path.
pub fn resolve(name_or_path: &str) -> anyhow::Result<Scenario> {
    if let Some((_, text, plan)) = BUILTIN.iter().find(|(n, _, _)| *n == name_or_path) {
        let mut s = Scenario::parse(text)?;
        if let (Some(src), Some((file, plan_text))) = (&mut s.contacts, plan)
            && src.plan_file.as_deref() == Some(*file)
        {
            src.plan = Some(plan_text.to_string());
        }
        return Ok(s);
    }
    let path = Path::new(name_or_path);
    if !path.exists() {
        let known: Vec<&str> = BUILTIN.iter().map(|(n, _, _)| *n).collect();
        anyhow::bail!(
            "no scenario {name_or_path:?}: give a file or one of {}",
            known.join(", ")
        );
    }
    Scenario::load(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_scenarios_build() {
        for (name, _, _) in BUILTIN {
            let s = resolve(name).unwrap();
            let w = s.build(1).unwrap();
            assert!(!w.names.is_empty(), "{name}");
            assert!(!w.contacts.is_empty(), "{name}");
            assert!(!w.bundles.is_empty(), "{name}");
        }
    }

    #[test]
    fn inline_plan() {
        let s = Scenario::parse(
            r#"
name = "t"
duration_s = 100
link_rate_bytes_per_s = 1000
quota_bytes = 100000
nodes = ["a", "b", "c"]
[contacts]
plan = """
0 10 a b
20 30 b c
"""
[[traffic]]
from = ["a"]
to = ["c"]
count = 1
end_s = 1
size_bytes = [10, 10]
lifetime_s = 100
"#,
        )
        .unwrap();
        let w = s.build(0).unwrap();
        assert_eq!(w.names, vec!["a", "b", "c"]);
        assert_eq!(w.contacts.len(), 4);
        assert_eq!(w.bundles.len(), 1);
    }

    #[test]
    fn both_or_neither_contact_source_is_an_error() {
        let s = Scenario::parse("name='x'\nduration_s=1\nlink_rate_bytes_per_s=1\nquota_bytes=1\n")
            .unwrap();
        assert!(s.build(0).is_err());
    }
}
