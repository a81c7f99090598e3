//! What a run measured, and the arithmetic behind each figure.

use serde::Serialize;

use crate::VirtMs;

/// The figures of one run of one strategy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub scenario: String,
    /// `direct`, `epidemic`, `spray`, `prophet`.
    pub strategy: String,
    /// The strategy with its parameters (`spray:8`).
    pub strategy_detail: String,
    pub seed: u64,
    pub nodes: usize,
    /// Bundles created by the traffic generator.
    pub created: u64,
    /// Bundles that reached their destination at least once (duplicates not counted).
    pub delivered: u64,
    /// `delivered / created`.
    pub delivery_ratio: f64,
    /// Creation-to-first-delivery delay over delivered bundles, seconds; `None` when
    /// nothing was delivered.
    pub delay_median_s: Option<f64>,
    pub delay_p95_s: Option<f64>,
    /// Completed bundle transmissions over all links (every hop, the last one included).
    pub transmissions: u64,
    /// `transmissions / created`: copies made per bundle.
    pub transmissions_per_bundle: f64,
    /// Copies stored at relays (not the source, not the destination), per bundle.
    pub replicas_per_bundle: f64,
    /// The most nodes that ever stored a copy of one bundle (its source included).
    pub max_holders_per_bundle: u32,
    /// Copies that reached a destination that already had the bundle.
    pub duplicate_deliveries: u64,
    /// The ONE simulator's overhead ratio, `(transmissions - delivered) / delivered`.
    pub overhead_ratio: Option<f64>,
    /// Transmissions cut short because the contact ended first.
    pub aborted_transmissions: u64,
    /// The largest number of bytes any one node held at any moment.
    pub peak_storage_bytes: u64,
    /// The largest number of bundles any one node held at any moment.
    pub peak_storage_bundles: u64,
    /// Copies dropped because their lifetime ran out.
    pub expired_drops: u64,
    /// Copies evicted to make room under the storage quota.
    pub evictions: u64,
    /// Bundles refused for want of room (offers declined, arrivals refused, and
    /// creations the source's own store could not take).
    pub refused_full: u64,
    /// Contacts (up events) in the run.
    pub contacts: u64,
    /// Wall-clock seconds the run took (not part of determinism checks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_s: Option<f64>,
}

impl Report {
    /// The report with its wall-clock time removed, for comparing runs.
    pub fn without_wall_time(&self) -> Self {
        Self {
            wall_s: None,
            ..self.clone()
        }
    }
}

/// Counters the engine keeps during a run.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub created: u64,
    pub delays_ms: Vec<VirtMs>,
    pub transmissions: u64,
    pub aborted: u64,
    pub peak_bytes: u64,
    pub peak_bundles: u64,
    pub expired: u64,
    pub evicted: u64,
    pub refused_full: u64,
    pub contacts: u64,
    /// Contact events (ups and downs) processed so far.
    pub contact_events: u64,
    pub replicas: u64,
    pub duplicate_deliveries: u64,
}

impl Tally {
    pub fn report(&self, scenario: &str, strategy: &str, seed: u64, nodes: usize) -> Report {
        let delivered = self.delays_ms.len() as u64;
        let mut delays: Vec<f64> = self.delays_ms.iter().map(|&d| d as f64 / 1000.0).collect();
        delays.sort_by(f64::total_cmp);
        Report {
            scenario: scenario.to_string(),
            strategy: strategy.to_string(),
            strategy_detail: strategy.to_string(),
            seed,
            nodes,
            created: self.created,
            delivered,
            delivery_ratio: ratio(delivered, self.created),
            delay_median_s: quantile(&delays, 0.5),
            delay_p95_s: quantile(&delays, 0.95),
            transmissions: self.transmissions,
            transmissions_per_bundle: ratio(self.transmissions, self.created),
            replicas_per_bundle: ratio(self.replicas, self.created),
            max_holders_per_bundle: 0,
            duplicate_deliveries: self.duplicate_deliveries,
            overhead_ratio: (delivered > 0)
                .then(|| (self.transmissions as f64 - delivered as f64) / delivered as f64),
            aborted_transmissions: self.aborted,
            peak_storage_bytes: self.peak_bytes,
            peak_storage_bundles: self.peak_bundles,
            expired_drops: self.expired,
            evictions: self.evicted,
            refused_full: self.refused_full,
            contacts: self.contacts,
            wall_s: None,
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The `q`-quantile of sorted values, by linear interpolation between closest ranks
/// (R's type 7, numpy's default): position `h = (n - 1) q`, value
/// `x[⌊h⌋] + (h - ⌊h⌋)(x[⌊h⌋ + 1] - x[⌊h⌋])`. The 0.5-quantile is the usual median.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

/// Formats reports as a fixed-width table, one row per strategy.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::new();
    let header = [
        "strategy",
        "created",
        "deliv",
        "ratio",
        "median_s",
        "p95_s",
        "tx/bundle",
        "overhead",
        "peak_MB",
        "peak_n",
        "expired",
        "evicted",
    ];
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            vec![
                r.strategy.clone(),
                r.created.to_string(),
                r.delivered.to_string(),
                format!("{:.3}", r.delivery_ratio),
                opt(r.delay_median_s, 0),
                opt(r.delay_p95_s, 0),
                format!("{:.2}", r.transmissions_per_bundle),
                opt(r.overhead_ratio, 2),
                format!("{:.1}", r.peak_storage_bytes as f64 / 1e6),
                r.peak_storage_bundles.to_string(),
                r.expired_drops.to_string(),
                r.evictions.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (c, cell) in cells.iter().enumerate() {
            if c == 0 {
                s.push_str(&format!("{cell:<w$}", w = widths[c]));
            } else {
                s.push_str(&format!("  {cell:>w$}", w = widths[c]));
            }
        }
        s.push('\n');
        s
    };
    out.push_str(&line(header.to_vec()));
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_hand() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7.0], 0.95), Some(7.0));
        // Odd count: the middle value.
        assert_eq!(quantile(&[1.0, 2.0, 10.0], 0.5), Some(2.0));
        // Even count: the mean of the two middle values.
        assert_eq!(quantile(&[1.0, 2.0, 4.0, 10.0], 0.5), Some(3.0));
        // 1..=21: h = 20 * 0.95 = 19 exactly, the 20th value.
        let v: Vec<f64> = (1..=21).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.95), Some(20.0));
        // 1..=10: h = 9 * 0.95 = 8.55, between 9 and 10.
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert!((quantile(&v, 0.95).unwrap() - 9.55).abs() < 1e-12);
    }

    #[test]
    fn report_arithmetic() {
        let t = Tally {
            created: 4,
            delays_ms: vec![30_000, 10_000, 20_000],
            transmissions: 9,
            peak_bytes: 5,
            peak_bundles: 2,
            ..Tally::default()
        };
        let r = t.report("s", "epidemic", 1, 3);
        assert_eq!(r.delivered, 3);
        assert_eq!(r.delivery_ratio, 0.75);
        assert_eq!(r.delay_median_s, Some(20.0));
        assert!((r.delay_p95_s.unwrap() - 29.0).abs() < 1e-9);
        assert_eq!(r.transmissions_per_bundle, 2.25);
        assert_eq!(r.overhead_ratio, Some(2.0));
        let empty = Tally::default().report("s", "direct", 1, 3);
        assert_eq!(empty.delivery_ratio, 0.0);
        assert_eq!(empty.delay_median_s, None);
        assert_eq!(empty.overhead_ratio, None);
    }

    #[test]
    fn table_has_a_row_per_report() {
        let r = Tally::default().report("s", "direct", 1, 3);
        let t = table(&[r.clone(), r]);
        assert_eq!(t.lines().count(), 3);
        assert!(t.starts_with("strategy"));
    }
}
