use serde::{Deserialize, Serialize};

/// Which chunk groups of a blob are verified and on disk. Kept by the store
/// so an interrupted download resumes without fetching verified data again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bitfield {
    groups: u64,
    bits: Vec<u64>,
}

impl Bitfield {
    /// An empty bitfield for `groups` groups.
    pub fn new(groups: u64) -> Self {
        Self {
            groups,
            bits: vec![0; usize::try_from(groups.div_ceil(64)).expect("group count fits memory")],
        }
    }

    /// A full bitfield: every group present.
    pub fn full(groups: u64) -> Self {
        let mut field = Self::new(groups);
        field.set_range(0, groups);
        field
    }

    pub fn groups(&self) -> u64 {
        self.groups
    }

    pub fn get(&self, group: u64) -> bool {
        group < self.groups && self.bits[(group / 64) as usize] & (1 << (group % 64)) != 0
    }

    pub fn set(&mut self, group: u64) {
        if group < self.groups {
            self.bits[(group / 64) as usize] |= 1 << (group % 64);
        }
    }

    /// Sets groups `[first, last)`, clamped to the field.
    pub fn set_range(&mut self, first: u64, last: u64) {
        for group in first..last.min(self.groups) {
            self.set(group);
        }
    }

    pub fn count(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    pub fn is_complete(&self) -> bool {
        self.count() == self.groups
    }

    /// The maximal runs `[first, last)` of missing groups, in order.
    pub fn missing_runs(&self) -> Vec<(u64, u64)> {
        let mut runs = Vec::new();
        let mut start = None;
        for group in 0..self.groups {
            match (self.get(group), start) {
                (false, None) => start = Some(group),
                (true, Some(s)) => {
                    runs.push((s, group));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            runs.push((s, self.groups));
        }
        runs
    }

    /// The field as bytes for storage; [`Bitfield::from_bytes`] reads them back.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a bitfield always encodes")
    }

    /// Reads a stored or received field; `None` if the bytes are not a
    /// consistent field. Bits past the last group must be clear: a peer that
    /// set them could otherwise make `count` and `is_complete` lie.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let field: Self = postcard::from_bytes(bytes).ok()?;
        let words_fit = field.bits.len() as u64 == field.groups.div_ceil(64);
        let tail = field.groups % 64;
        let padding_clear = tail == 0 || field.bits.last().is_none_or(|w| w >> tail == 0);
        (words_fit && padding_clear).then_some(field)
    }

    /// The first group at or after `from` that `self` lacks and `source`
    /// holds (`None`: a source that holds everything). Scans a word at a
    /// time, since schedulers call it on every request of large blobs.
    pub fn next_missing(&self, from: u64, source: Option<&Bitfield>) -> Option<u64> {
        let mut word = usize::try_from(from / 64).ok()?;
        let mut mask = !0u64 << (from % 64);
        while let Some(bits) = self.bits.get(word) {
            let held = source.map_or(!0, |s| s.bits.get(word).copied().unwrap_or(0));
            let wanted = !bits & held & mask;
            if wanted != 0 {
                let group = word as u64 * 64 + u64::from(wanted.trailing_zeros());
                return (group < self.groups).then_some(group);
            }
            mask = !0;
            word += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn set_count_and_runs() {
        let mut field = Bitfield::new(130);
        assert_eq!(field.missing_runs(), vec![(0, 130)]);
        field.set_range(10, 70);
        field.set(129);
        assert_eq!(field.count(), 61);
        assert_eq!(field.missing_runs(), vec![(0, 10), (70, 129)]);
        assert!(!field.get(200));
        assert!(Bitfield::full(130).is_complete());
    }

    proptest! {
        #[test]
        fn bytes_round_trip_and_runs_cover_exactly_the_missing(
            groups in 0u64..500, set in proptest::collection::vec(0u64..500, 0..100)) {
            let mut field = Bitfield::new(groups);
            for g in &set { field.set(*g); }
            prop_assert_eq!(Bitfield::from_bytes(&field.to_bytes()), Some(field.clone()));
            let missing: u64 = field.missing_runs().iter().map(|(a, b)| b - a).sum();
            prop_assert_eq!(missing + field.count(), groups);
        }

        #[test]
        fn next_missing_matches_a_plain_scan(
            groups in 0u64..300,
            set in proptest::collection::vec(0u64..300, 0..150),
            held in proptest::collection::vec(0u64..300, 0..150),
            from in 0u64..320) {
            let mut field = Bitfield::new(groups);
            for g in &set { field.set(*g); }
            let mut source = Bitfield::new(groups);
            for g in &held { source.set(*g); }
            let plain = (from..groups).find(|&g| !field.get(g) && source.get(g));
            prop_assert_eq!(field.next_missing(from, Some(&source)), plain);
            let plain_all = (from..groups).find(|&g| !field.get(g));
            prop_assert_eq!(field.next_missing(from, None), plain_all);
        }
    }

    #[test]
    fn inconsistent_bytes_are_refused() {
        let bad = postcard::to_stdvec(&Bitfield {
            groups: 1000,
            bits: vec![0],
        })
        .unwrap();
        assert_eq!(Bitfield::from_bytes(&bad), None);
        assert_eq!(Bitfield::from_bytes(b"junk"), None);
    }
}
