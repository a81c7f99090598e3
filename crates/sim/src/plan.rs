//! Contact plans: who meets whom, and when, written down in advance.
//!
//! # Format
//!
//! A plain text file, one contact a line:
//!
//! ```text
//! # start_s  end_s  nodeA  nodeB
//! 0          86400  v1     v2        # village LAN, always up
//! 28800      30600  bus    v1        # the bus at the village, 08:00-08:30
//! ```
//!
//! * `start_s` and `end_s` are seconds from the start of the run (decimals allowed,
//!   kept to the millisecond); the contact is up for `start_s <= t < end_s`.
//! * `nodeA` and `nodeB` are node names: any token without whitespace or `#`. A
//!   name first seen in the plan is a node of the run; names need not be declared.
//! * Contacts are symmetric (A–B is B–A) and bidirectional; the link rate of the
//!   scenario applies in each direction.
//! * `#` starts a comment; blank lines are ignored.
//! * Overlapping lines for the same pair merge into one contact.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::{ContactEvent, NodeIdx, VirtMs};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("line {line}: expected `start_s end_s nodeA nodeB`, got {got:?}")]
    Shape { line: usize, got: String },
    #[error("line {line}: {what} is not a number of seconds: {got:?}")]
    Number {
        line: usize,
        what: &'static str,
        got: String,
    },
    #[error("line {line}: a contact must end after it starts ({start_s} .. {end_s})")]
    Empty {
        line: usize,
        start_s: String,
        end_s: String,
    },
    #[error("line {line}: a node cannot be in contact with itself ({node})")]
    SelfContact { line: usize, node: String },
}

/// One contact interval between two named nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedContact {
    pub start: VirtMs,
    pub end: VirtMs,
    pub a: String,
    pub b: String,
}

/// Parses a contact plan.
pub fn parse(text: &str) -> Result<Vec<PlannedContact>, PlanError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let body = raw.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        let fields: Vec<&str> = body.split_whitespace().collect();
        let [start_s, end_s, a, b] = fields[..] else {
            return Err(PlanError::Shape {
                line,
                got: body.to_string(),
            });
        };
        let start = seconds(start_s).ok_or_else(|| PlanError::Number {
            line,
            what: "start_s",
            got: start_s.to_string(),
        })?;
        let end = seconds(end_s).ok_or_else(|| PlanError::Number {
            line,
            what: "end_s",
            got: end_s.to_string(),
        })?;
        if end <= start {
            return Err(PlanError::Empty {
                line,
                start_s: start_s.to_string(),
                end_s: end_s.to_string(),
            });
        }
        if a == b {
            return Err(PlanError::SelfContact {
                line,
                node: a.to_string(),
            });
        }
        out.push(PlannedContact {
            start,
            end,
            a: a.to_string(),
            b: b.to_string(),
        });
    }
    Ok(out)
}

/// Seconds (possibly fractional, non-negative) to milliseconds.
fn seconds(s: &str) -> Option<VirtMs> {
    let v: f64 = s.parse().ok()?;
    if !(0.0..=1e12).contains(&v) {
        return None;
    }
    Some((v * 1000.0).round() as VirtMs)
}

/// Turns resolved contacts (node indices) into time-ordered up/down events, merging
/// overlapping or touching intervals of the same pair.
pub fn to_events(contacts: &[(VirtMs, VirtMs, NodeIdx, NodeIdx)]) -> Vec<ContactEvent> {
    let mut by_pair: BTreeMap<(NodeIdx, NodeIdx), Vec<(VirtMs, VirtMs)>> = BTreeMap::new();
    for &(s, e, a, b) in contacts {
        let key = (a.min(b), a.max(b));
        by_pair.entry(key).or_default().push((s, e));
    }
    let mut events = Vec::new();
    for ((a, b), mut spans) in by_pair {
        spans.sort_unstable();
        let mut cur: Option<(VirtMs, VirtMs)> = None;
        for (s, e) in spans {
            cur = match cur {
                Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
                Some((cs, ce)) => {
                    events.push(ContactEvent::up(cs, a, b));
                    events.push(ContactEvent::down(ce, a, b));
                    Some((s, e))
                }
                None => Some((s, e)),
            };
        }
        if let Some((cs, ce)) = cur {
            events.push(ContactEvent::up(cs, a, b));
            events.push(ContactEvent::down(ce, a, b));
        }
    }
    crate::sort_events(&mut events);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_comments_and_decimals() {
        let plan = parse("# header\n\n0 10 a b\n1.5 2.25 b c # note\n").unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[1].start, 1500);
        assert_eq!(plan[1].end, 2250);
        assert_eq!(plan[1].a, "b");
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(matches!(
            parse("0 10 a"),
            Err(PlanError::Shape { line: 1, .. })
        ));
        assert!(matches!(parse("x 10 a b"), Err(PlanError::Number { .. })));
        assert!(matches!(
            parse("\n5 5 a b"),
            Err(PlanError::Empty { line: 2, .. })
        ));
        assert!(matches!(
            parse("0 1 a a"),
            Err(PlanError::SelfContact { .. })
        ));
        assert!(matches!(parse("-1 1 a b"), Err(PlanError::Number { .. })));
    }

    #[test]
    fn overlapping_contacts_of_a_pair_merge() {
        let ev = to_events(&[(0, 10, 1, 0), (5, 20, 0, 1), (30, 40, 0, 1)]);
        let pairs: Vec<_> = ev.iter().map(|e| (e.at, e.up)).collect();
        assert_eq!(pairs, vec![(0, true), (20, false), (30, true), (40, false)]);
        assert!(ev.iter().all(|e| (e.a, e.b) == (0, 1)));
    }
}
