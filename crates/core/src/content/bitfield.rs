use serde::{Deserialize, Serialize};

use super::{MAX_BLOB_BYTES, group_count};

/// The most groups a bitfield may have: those of the largest blob ferry
/// stores ([`MAX_BLOB_BYTES`]), 2^28 groups in 32 MiB of words. A count from a
/// peer or a damaged record above it is refused before anything is allocated.
pub const MAX_GROUPS: u64 = group_count(MAX_BLOB_BYTES);

/// Which chunk groups of a blob are verified and on disk. Kept by the store
/// so an interrupted download resumes without fetching verified data again,
/// and sent by peers to say what they hold.
///
/// Every value is consistent: at most [`MAX_GROUPS`] groups, exactly one
/// word per 64 of them, and no bit set past the last group. The constructors
/// and decoding (serde goes through [`Bitfield::try_from_parts`]) check this,
/// so no method has to trust a length a peer chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Parts")]
pub struct Bitfield {
    groups: u64,
    bits: Vec<u64>,
}

/// A bitfield as it is on the wire and on disk, not yet checked.
#[derive(Deserialize)]
struct Parts {
    groups: u64,
    bits: Vec<u64>,
}

/// Why a bitfield is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitfieldError {
    /// More groups than [`MAX_GROUPS`], refused before anything is allocated.
    #[error("a bitfield of {groups} groups is over the limit of {MAX_GROUPS}")]
    TooManyGroups {
        /// The group count claimed.
        groups: u64,
    },
    /// The word count does not match the group count (one word per 64 groups).
    #[error("a bitfield of {groups} groups needs {expected} words, not {words}")]
    WrongLength {
        /// The group count claimed.
        groups: u64,
        /// The words actually given.
        words: usize,
        /// The words that group count needs.
        expected: u64,
    },
    /// A bit is set for a group that does not exist, which would make counts lie.
    #[error("a bitfield of {groups} groups has bits set past its last group")]
    BitsPastEnd {
        /// The group count claimed.
        groups: u64,
    },
}

impl TryFrom<Parts> for Bitfield {
    type Error = BitfieldError;

    fn try_from(parts: Parts) -> Result<Self, BitfieldError> {
        Self::try_from_parts(parts.groups, parts.bits)
    }
}

impl Bitfield {
    /// An empty bitfield for `groups` groups.
    pub fn new(groups: u64) -> Result<Self, BitfieldError> {
        let words = Self::words_for(groups)?;
        Ok(Self {
            groups,
            bits: vec![0; words],
        })
    }

    /// A full bitfield: every group present.
    pub fn full(groups: u64) -> Result<Self, BitfieldError> {
        let mut field = Self::new(groups)?;
        field.bits.fill(!0);
        field.clear_padding();
        Ok(field)
    }

    /// A field from its parts, as read from a peer or the disk: refused
    /// unless consistent (see the type's docs). Bits past the last group
    /// are refused, not cleared: a peer that set them could otherwise make
    /// `count` and `is_complete` lie.
    pub fn try_from_parts(groups: u64, bits: Vec<u64>) -> Result<Self, BitfieldError> {
        let expected = Self::words_for(groups)?;
        if bits.len() != expected {
            return Err(BitfieldError::WrongLength {
                groups,
                words: bits.len(),
                expected: expected as u64,
            });
        }
        let field = Self { groups, bits };
        let mut cleared = field.clone();
        cleared.clear_padding();
        if cleared != field {
            return Err(BitfieldError::BitsPastEnd { groups });
        }
        Ok(field)
    }

    /// The words `groups` groups take, if within [`MAX_GROUPS`].
    fn words_for(groups: u64) -> Result<usize, BitfieldError> {
        if groups > MAX_GROUPS {
            return Err(BitfieldError::TooManyGroups { groups });
        }
        // At most 2^22 words, so it fits a usize on every target.
        usize::try_from(groups.div_ceil(64)).map_err(|_| BitfieldError::TooManyGroups { groups })
    }

    /// Clears the bits of the last word that lie past the last group.
    fn clear_padding(&mut self) {
        let tail = self.groups % 64;
        if let (true, Some(last)) = (tail != 0, self.bits.last_mut()) {
            *last &= (1u64 << tail) - 1;
        }
    }

    /// How many groups the blob has, verified or not.
    pub fn groups(&self) -> u64 {
        self.groups
    }

    /// The word holding `group` and the group's bit in it; `None` past the
    /// last group.
    fn position(&self, group: u64) -> Option<(usize, u64)> {
        if group >= self.groups {
            return None;
        }
        let word = usize::try_from(group / 64).ok()?;
        Some((word, 1 << (group % 64)))
    }

    /// Whether `group` is marked; `false` for a group past the end.
    pub fn get(&self, group: u64) -> bool {
        self.position(group)
            .and_then(|(word, bit)| self.bits.get(word).map(|w| w & bit != 0))
            .unwrap_or(false)
    }

    /// Marks `group`; a group past the end is ignored, so a bad index cannot panic.
    pub fn set(&mut self, group: u64) {
        if let Some((word, bit)) = self.position(group)
            && let Some(w) = self.bits.get_mut(word)
        {
            *w |= bit;
        }
    }

    /// Sets groups `[first, last)`, clamped to the field.
    pub fn set_range(&mut self, first: u64, last: u64) {
        for group in first..last.min(self.groups) {
            self.set(group);
        }
    }

    /// How many groups are marked.
    pub fn count(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Whether every group is marked: the whole blob is there.
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
    /// consistent field (decoding checks it, see the type's docs).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
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
        let mut field = Bitfield::new(130).unwrap();
        assert_eq!(field.missing_runs(), vec![(0, 130)]);
        field.set_range(10, 70);
        field.set(129);
        assert_eq!(field.count(), 61);
        assert_eq!(field.missing_runs(), vec![(0, 10), (70, 129)]);
        assert!(!field.get(200));
        assert!(Bitfield::full(130).unwrap().is_complete());
        assert_eq!(Bitfield::full(130).unwrap().count(), 130);
    }

    proptest! {
        #[test]
        fn bytes_round_trip_and_runs_cover_exactly_the_missing(
            groups in 0u64..500, set in proptest::collection::vec(0u64..500, 0..100)) {
            let mut field = Bitfield::new(groups).unwrap();
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
            let mut field = Bitfield::new(groups).unwrap();
            for g in &set { field.set(*g); }
            let mut source = Bitfield::new(groups).unwrap();
            for g in &held { source.set(*g); }
            let plain = (from..groups).find(|&g| !field.get(g) && source.get(g));
            prop_assert_eq!(field.next_missing(from, Some(&source)), plain);
            let plain_all = (from..groups).find(|&g| !field.get(g));
            prop_assert_eq!(field.next_missing(from, None), plain_all);
        }
    }

    /// The bytes of a field with these parts, consistent or not.
    fn encode_parts(groups: u64, bits: &[u64]) -> Vec<u8> {
        #[derive(Serialize)]
        struct Raw<'a> {
            groups: u64,
            bits: &'a [u64],
        }
        postcard::to_stdvec(&Raw { groups, bits }).unwrap()
    }

    #[test]
    fn inconsistent_bytes_are_refused() {
        // The remote crash: a group count with no words behind it.
        assert_eq!(Bitfield::from_bytes(&encode_parts(1000, &[0])), None);
        assert_eq!(Bitfield::from_bytes(&encode_parts(64, &[])), None);
        assert_eq!(Bitfield::from_bytes(&encode_parts(1, &[0, 0])), None);
        // A bit past the last group.
        assert_eq!(Bitfield::from_bytes(&encode_parts(3, &[0b1000])), None);
        assert_eq!(
            Bitfield::from_bytes(&encode_parts(3, &[0b111]))
                .unwrap()
                .count(),
            3
        );
        // A count no blob can have, even with no words sent.
        assert_eq!(Bitfield::from_bytes(&encode_parts(u64::MAX, &[])), None);
        assert_eq!(Bitfield::from_bytes(b"junk"), None);
        assert_eq!(
            Bitfield::new(MAX_GROUPS + 1),
            Err(BitfieldError::TooManyGroups {
                groups: MAX_GROUPS + 1
            })
        );
        assert!(Bitfield::full(MAX_GROUPS + 1).is_err());
    }

    proptest! {
        /// Whatever bytes arrive, a decoded field is consistent: every
        /// method runs without panicking and agrees with a plain scan.
        #[test]
        fn any_decoded_field_is_consistent(
            groups in prop_oneof![0u64..300, any::<u64>()],
            bits in proptest::collection::vec(any::<u64>(), 0..8),
            probe in any::<u64>()) {
            let bytes = encode_parts(groups, &bits);
            if let Some(field) = Bitfield::from_bytes(&bytes) {
                let plain = (0..field.groups()).filter(|&g| field.get(g)).count() as u64;
                prop_assert_eq!(field.count(), plain);
                prop_assert!(field.count() <= field.groups());
                prop_assert!(!field.get(field.groups()));
                let _ = field.get(probe);
                let _ = field.next_missing(probe, Some(&field));
                let _ = field.missing_runs();
                prop_assert_eq!(field.to_bytes(), bytes);
            }
        }
    }
}
