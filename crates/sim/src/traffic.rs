//! Traffic: which bundles are created, where, when, how large, for how long.

use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::rng::SimRng;
use crate::{NodeIdx, VirtMs};

/// One `[[traffic]]` block of a scenario: `count` bundles created at times uniform
/// in `[start_s, end_s)`, each from a node matching `from` to a different node
/// matching `to` (both picked uniformly), with a size uniform in `size_bytes` and
/// the given lifetime.
///
/// A selector is a node name, or a prefix followed by `*` (`"v*"` matches `v1`,
/// `v2`, ...; `"*"` matches every node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSpec {
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub count: u32,
    #[serde(default)]
    pub start_s: f64,
    pub end_s: f64,
    /// `[min, max]`, inclusive.
    pub size_bytes: [u64; 2],
    pub lifetime_s: f64,
}

/// A bundle the generator will create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewBundle {
    pub at: VirtMs,
    pub src: NodeIdx,
    pub dst: NodeIdx,
    pub size: u64,
    pub lifetime: VirtMs,
}

/// The nodes a list of selectors picks, in node order, without repeats.
pub fn select(selectors: &[String], names: &[String]) -> Vec<NodeIdx> {
    (0..names.len())
        .filter(|&i| {
            selectors.iter().any(|s| match s.strip_suffix('*') {
                Some(prefix) => names[i].starts_with(prefix),
                None => names[i] == *s,
            })
        })
        .map(|i| i as NodeIdx)
        .collect()
}

/// Generates every bundle of a scenario's traffic, sorted by creation time (ties
/// keep generation order).
pub fn generate(
    specs: &[TrafficSpec],
    names: &[String],
    rng: &mut SimRng,
) -> Result<Vec<NewBundle>, String> {
    let mut out = Vec::new();
    for (k, spec) in specs.iter().enumerate() {
        let from = select(&spec.from, names);
        let to = select(&spec.to, names);
        if from.is_empty() || to.is_empty() {
            return Err(format!(
                "traffic block {}: `from` or `to` matches no node",
                k + 1
            ));
        }
        if from.len() == 1 && to == from {
            return Err(format!(
                "traffic block {}: the only source is the only destination",
                k + 1
            ));
        }
        if !(spec.start_s >= 0.0 && spec.end_s > spec.start_s && spec.end_s.is_finite()) {
            return Err(format!(
                "traffic block {}: need 0 <= start_s < end_s",
                k + 1
            ));
        }
        let [lo, hi] = spec.size_bytes;
        if lo == 0 || hi < lo {
            return Err(format!(
                "traffic block {}: size_bytes must be [min, max] with 0 < min <= max",
                k + 1
            ));
        }
        if !(spec.lifetime_s.is_finite() && spec.lifetime_s > 0.0) {
            return Err(format!(
                "traffic block {}: lifetime_s must be positive",
                k + 1
            ));
        }
        let (start, end) = (
            (spec.start_s * 1000.0) as VirtMs,
            (spec.end_s * 1000.0) as VirtMs,
        );
        let lifetime = (spec.lifetime_s * 1000.0) as VirtMs;
        for _ in 0..spec.count {
            let at = rng.random_range(start..end);
            let src = from[rng.random_range(0..from.len())];
            let dst = loop {
                let d = to[rng.random_range(0..to.len())];
                if d != src {
                    break d;
                }
            };
            let size = rng.random_range(lo..=hi);
            out.push(NewBundle {
                at,
                src,
                dst,
                size,
                lifetime,
            });
        }
    }
    out.sort_by_key(|b| b.at);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Stream, stream};

    fn names() -> Vec<String> {
        ["v1", "v2", "bus", "t1", "t2"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn selectors() {
        let n = names();
        assert_eq!(select(&["v*".into()], &n), vec![0, 1]);
        assert_eq!(select(&["*".into()], &n).len(), 5);
        assert_eq!(select(&["bus".into(), "t2".into()], &n), vec![2, 4]);
        assert!(select(&["x*".into()], &n).is_empty());
    }

    #[test]
    fn generated_bundles_follow_the_spec() {
        let spec = TrafficSpec {
            from: vec!["v*".into()],
            to: vec!["t*".into()],
            count: 500,
            start_s: 10.0,
            end_s: 20.0,
            size_bytes: [100, 200],
            lifetime_s: 5.0,
        };
        let b = generate(&[spec], &names(), &mut stream(1, Stream::Traffic)).unwrap();
        assert_eq!(b.len(), 500);
        assert!(b.windows(2).all(|w| w[0].at <= w[1].at));
        for x in &b {
            assert!((10_000..20_000).contains(&x.at));
            assert!(x.src <= 1 && x.dst >= 3);
            assert!((100..=200).contains(&x.size));
            assert_eq!(x.lifetime, 5000);
        }
    }

    #[test]
    fn never_to_itself() {
        let spec = TrafficSpec {
            from: vec!["*".into()],
            to: vec!["*".into()],
            count: 300,
            start_s: 0.0,
            end_s: 1.0,
            size_bytes: [1, 1],
            lifetime_s: 1.0,
        };
        let b = generate(&[spec], &names(), &mut stream(2, Stream::Traffic)).unwrap();
        assert!(b.iter().all(|x| x.src != x.dst));
    }
}
