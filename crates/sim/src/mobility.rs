//! Random-waypoint mobility and the contacts it produces.
//!
//! Each node starts at a uniformly random point of a `width × height` rectangle,
//! picks a uniformly random destination and a speed uniform in
//! `[speed_min, speed_max]`, walks there in a straight line, pauses for a time
//! uniform in `[pause_min, pause_max]`, and repeats (Johnson & Maltz's model, as in
//! the ONE simulator). Two nodes are in contact while their distance is at most
//! `range`.
//!
//! Positions advance in fixed steps (1 s by default) and contacts are found with a
//! uniform grid of `range`-sized cells, so each step costs about the number of
//! nodes plus the number of close pairs, never all pairs. Only `+ - * / sqrt` are
//! used on floats, all exactly rounded by IEEE 754, so runs are identical on every
//! platform.

use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::rng::SimRng;
use crate::{ContactEvent, NodeIdx, VirtMs};

/// The parameters of a random-waypoint run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomWaypoint {
    /// Metres.
    pub width_m: f64,
    pub height_m: f64,
    /// Metres per second.
    pub speed_min_mps: f64,
    pub speed_max_mps: f64,
    /// Seconds.
    #[serde(default)]
    pub pause_min_s: f64,
    #[serde(default)]
    pub pause_max_s: f64,
    /// Radio range in metres.
    pub range_m: f64,
    /// Position update step in seconds.
    #[serde(default = "default_step")]
    pub step_s: f64,
}

fn default_step() -> f64 {
    1.0
}

impl RandomWaypoint {
    pub fn validate(&self) -> Result<(), String> {
        let pos = |v: f64| v.is_finite() && v > 0.0;
        let nonneg = |v: f64| v.is_finite() && v >= 0.0;
        if !pos(self.width_m) || !pos(self.height_m) {
            return Err("the area must have a positive width and height".into());
        }
        if !pos(self.speed_min_mps)
            || self.speed_max_mps < self.speed_min_mps
            || !self.speed_max_mps.is_finite()
        {
            return Err("speeds must satisfy 0 < speed_min_mps <= speed_max_mps".into());
        }
        if !nonneg(self.pause_min_s)
            || self.pause_max_s < self.pause_min_s
            || !self.pause_max_s.is_finite()
        {
            return Err("pauses must satisfy 0 <= pause_min_s <= pause_max_s".into());
        }
        if !pos(self.range_m) {
            return Err("range_m must be positive".into());
        }
        if !pos(self.step_s) || self.step_s > 3600.0 {
            return Err("step_s must be in (0, 3600]".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Walker {
    x: f64,
    y: f64,
    dx: f64,
    dy: f64,
    speed: f64,
    /// While pausing, the time (s) at which the node leaves again.
    pause_until: f64,
}

/// Moves `n` nodes for `duration` and returns the contact up/down events, sorted.
/// Nodes are `0..n`; contacts still up at the end are closed at `duration`.
pub fn contacts(
    model: &RandomWaypoint,
    n: usize,
    duration: VirtMs,
    rng: &mut SimRng,
) -> Vec<ContactEvent> {
    let mut walkers: Vec<Walker> = (0..n)
        .map(|_| {
            let x = rng.random_range(0.0..=model.width_m);
            let y = rng.random_range(0.0..=model.height_m);
            let mut w = Walker {
                x,
                y,
                dx: x,
                dy: y,
                speed: 0.0,
                pause_until: 0.0,
            };
            next_leg(model, &mut w, rng);
            w
        })
        .collect();

    let grid = Grid::new(model.width_m, model.height_m, model.range_m, n);
    let mut grid = grid;
    let r2 = model.range_m * model.range_m;
    let step_ms = (model.step_s * 1000.0).round().max(1.0) as VirtMs;
    let mut events = Vec::new();
    let mut prev: Vec<(NodeIdx, NodeIdx)> = Vec::new();
    let mut cur: Vec<(NodeIdx, NodeIdx)> = Vec::new();
    let mut near: Vec<NodeIdx> = Vec::new();

    let mut t: VirtMs = 0;
    while t < duration {
        // Contacts at time t.
        grid.fill(&walkers);
        cur.clear();
        for (i, w) in walkers.iter().enumerate() {
            near.clear();
            grid.for_neighbours(i, |&(x, y, j)| {
                if j as usize > i {
                    let (ex, ey) = (x - w.x, y - w.y);
                    if ex * ex + ey * ey <= r2 {
                        near.push(j);
                    }
                }
            });
            near.sort_unstable();
            cur.extend(near.iter().map(|&j| (i as NodeIdx, j)));
        }
        diff(&prev, &cur, |(a, b), up| {
            events.push(if up {
                ContactEvent::up(t, a, b)
            } else {
                ContactEvent::down(t, a, b)
            })
        });
        std::mem::swap(&mut prev, &mut cur);

        let next_t = (t + step_ms).min(duration);
        let dt = (next_t - t) as f64 / 1000.0;
        let now_s = next_t as f64 / 1000.0;
        for w in &mut walkers {
            advance(model, w, dt, now_s, rng);
        }
        t = next_t;
    }
    // Close what is still open.
    for &(a, b) in &prev {
        events.push(ContactEvent::down(duration, a, b));
    }
    // Events were produced in time order; a stable sort only settles ties.
    crate::sort_events(&mut events);
    events
}

fn next_leg(model: &RandomWaypoint, w: &mut Walker, rng: &mut SimRng) {
    w.dx = rng.random_range(0.0..=model.width_m);
    w.dy = rng.random_range(0.0..=model.height_m);
    w.speed = rng.random_range(model.speed_min_mps..=model.speed_max_mps);
}

/// Moves a walker for `dt` seconds ending at `now_s`.
fn advance(model: &RandomWaypoint, w: &mut Walker, dt: f64, now_s: f64, rng: &mut SimRng) {
    let mut left = dt;
    let mut clock = now_s - dt;
    // Several waypoints can be reached within one step only with tiny areas or huge
    // steps; the bound keeps a degenerate model from spinning.
    for _ in 0..16 {
        if left <= 0.0 {
            return;
        }
        if w.pause_until > clock {
            let wait = (w.pause_until - clock).min(left);
            left -= wait;
            clock += wait;
            if left <= 0.0 {
                return;
            }
            next_leg(model, w, rng);
        }
        let (ex, ey) = (w.dx - w.x, w.dy - w.y);
        let dist = (ex * ex + ey * ey).sqrt();
        let reach = w.speed * left;
        if reach < dist {
            w.x += ex / dist * reach;
            w.y += ey / dist * reach;
            return;
        }
        // Arrives within this step, then pauses.
        let used = if w.speed > 0.0 { dist / w.speed } else { left };
        w.x = w.dx;
        w.y = w.dy;
        left -= used;
        clock += used;
        let pause = if model.pause_max_s > model.pause_min_s {
            rng.random_range(model.pause_min_s..=model.pause_max_s)
        } else {
            model.pause_min_s
        };
        w.pause_until = clock + pause;
        if pause <= 0.0 {
            next_leg(model, w, rng);
        }
    }
}

/// Calls `f(pair, true)` for pairs in `new` but not `old`, `f(pair, false)` for
/// pairs in `old` but not `new`; both inputs are sorted.
fn diff(
    old: &[(NodeIdx, NodeIdx)],
    new: &[(NodeIdx, NodeIdx)],
    mut f: impl FnMut((NodeIdx, NodeIdx), bool),
) {
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(o), Some(n)) if o == n => {
                i += 1;
                j += 1;
            }
            (Some(o), Some(n)) if o < n => {
                f(*o, false);
                i += 1;
            }
            (Some(_), Some(n)) => {
                f(*n, true);
                j += 1;
            }
            (Some(o), None) => {
                f(*o, false);
                i += 1;
            }
            (None, Some(n)) => {
                f(*n, true);
                j += 1;
            }
            (None, None) => unreachable!(),
        }
    }
}

/// A uniform grid of square cells, rebuilt each step by counting sort.
struct Grid {
    cell: f64,
    cols: usize,
    rows: usize,
    /// `start[c]..start[c + 1]` indexes `members` for cell `c`.
    start: Vec<u32>,
    /// Each node's position and index, cell by cell: the neighbours of a cell are
    /// read from three contiguous runs (a row of three cells each) rather than
    /// looked up node by node.
    members: Vec<(f64, f64, NodeIdx)>,
    cell_of: Vec<u32>,
    next: Vec<u32>,
}

impl Grid {
    fn new(width: f64, height: f64, range: f64, n: usize) -> Self {
        // Cells no smaller than the range, and no more of them than needed: a huge
        // area with a tiny range would otherwise allocate a useless grid.
        let max_cells = (4 * n).max(1024) as f64;
        let mut cell = range;
        while (width / cell).ceil() * (height / cell).ceil() > max_cells {
            cell *= 2.0;
        }
        let cols = ((width / cell).ceil() as usize).max(1);
        let rows = ((height / cell).ceil() as usize).max(1);
        Self {
            cell,
            cols,
            rows,
            start: vec![0; cols * rows + 1],
            members: vec![(0.0, 0.0, 0); n],
            cell_of: vec![0; n],
            next: vec![0; cols * rows],
        }
    }

    fn coords(&self, x: f64, y: f64) -> (usize, usize) {
        let cx = ((x / self.cell) as usize).min(self.cols - 1);
        let cy = ((y / self.cell) as usize).min(self.rows - 1);
        (cx, cy)
    }

    fn fill(&mut self, walkers: &[Walker]) {
        self.start.iter_mut().for_each(|s| *s = 0);
        for (i, w) in walkers.iter().enumerate() {
            let (cx, cy) = self.coords(w.x, w.y);
            let c = cy * self.cols + cx;
            self.cell_of[i] = c as u32;
            self.start[c + 1] += 1;
        }
        for c in 0..self.cols * self.rows {
            self.start[c + 1] += self.start[c];
        }
        self.next
            .copy_from_slice(&self.start[..self.cols * self.rows]);
        for (i, (&c, w)) in self.cell_of.iter().zip(walkers).enumerate() {
            let slot = &mut self.next[c as usize];
            self.members[*slot as usize] = (w.x, w.y, i as NodeIdx);
            *slot += 1;
        }
    }

    /// Calls `f` for every node in the cell of node `i` (as of the last `fill`) and
    /// the eight around it.
    fn for_neighbours(&self, i: usize, mut f: impl FnMut(&(f64, f64, NodeIdx))) {
        let c = self.cell_of[i] as usize;
        let (cx, cy) = (c % self.cols, c / self.cols);
        let (first, last) = (cx.saturating_sub(1), (cx + 1).min(self.cols - 1));
        for ny in cy.saturating_sub(1)..=(cy + 1).min(self.rows - 1) {
            let row = ny * self.cols;
            let run = self.start[row + first] as usize..self.start[row + last + 1] as usize;
            self.members[run].iter().for_each(&mut f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Stream, stream};

    fn model() -> RandomWaypoint {
        RandomWaypoint {
            width_m: 500.0,
            height_m: 300.0,
            speed_min_mps: 0.5,
            speed_max_mps: 2.0,
            pause_min_s: 0.0,
            pause_max_s: 60.0,
            range_m: 30.0,
            step_s: 1.0,
        }
    }

    /// The grid finds exactly the pairs a brute-force all-pairs check finds.
    #[test]
    fn grid_matches_brute_force() {
        let m = model();
        let mut rng = stream(3, Stream::Mobility);
        let walkers: Vec<Walker> = (0..200)
            .map(|_| Walker {
                x: rng.random_range(0.0..=m.width_m),
                y: rng.random_range(0.0..=m.height_m),
                dx: 0.0,
                dy: 0.0,
                speed: 1.0,
                pause_until: 0.0,
            })
            .collect();
        let mut grid = Grid::new(m.width_m, m.height_m, m.range_m, walkers.len());
        grid.fill(&walkers);
        let mut fast = Vec::new();
        for (i, w) in walkers.iter().enumerate() {
            grid.for_neighbours(i, |&(x, y, j)| {
                if j as usize > i && (x - w.x).powi(2) + (y - w.y).powi(2) <= m.range_m * m.range_m
                {
                    fast.push((i, j as usize));
                }
            });
        }
        fast.sort_unstable();
        let mut slow = Vec::new();
        for i in 0..walkers.len() {
            for j in i + 1..walkers.len() {
                let (a, b) = (walkers[i], walkers[j]);
                if (a.x - b.x).powi(2) + (a.y - b.y).powi(2) <= m.range_m * m.range_m {
                    slow.push((i, j));
                }
            }
        }
        assert!(!slow.is_empty());
        assert_eq!(fast, slow);
    }

    #[test]
    fn contacts_alternate_up_and_down_and_stay_in_bounds() {
        let m = model();
        let ev = contacts(&m, 60, 3_600_000, &mut stream(1, Stream::Mobility));
        assert!(!ev.is_empty());
        let mut open = std::collections::HashSet::new();
        let mut last = 0;
        for e in &ev {
            assert!(e.at >= last);
            last = e.at;
            assert!(e.a < e.b);
            if e.up {
                assert!(open.insert((e.a, e.b)), "up twice: {e:?}");
            } else {
                assert!(open.remove(&(e.a, e.b)), "down without up: {e:?}");
            }
        }
        assert!(open.is_empty());
        assert!(ev.iter().all(|e| e.at <= 3_600_000));
    }

    #[test]
    fn walkers_stay_in_the_area() {
        let m = model();
        let mut rng = stream(9, Stream::Mobility);
        let mut w = Walker {
            x: 1.0,
            y: 1.0,
            dx: 1.0,
            dy: 1.0,
            speed: 1.0,
            pause_until: 0.0,
        };
        next_leg(&m, &mut w, &mut rng);
        for s in 1..20_000 {
            advance(&m, &mut w, 1.0, s as f64, &mut rng);
            assert!((0.0..=m.width_m).contains(&w.x) && (0.0..=m.height_m).contains(&w.y));
        }
    }

    #[test]
    fn diff_reports_changes() {
        let mut got = Vec::new();
        diff(
            &[(0, 1), (0, 2), (3, 4)],
            &[(0, 2), (1, 2), (3, 4), (5, 6)],
            |p, up| got.push((p, up)),
        );
        assert_eq!(got, vec![((0, 1), false), ((1, 2), true), ((5, 6), true)]);
    }
}
