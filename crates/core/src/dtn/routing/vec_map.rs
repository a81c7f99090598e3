//! A map kept as a vector sorted by key, for the router's acks and PRoPHET table.
//!
//! Every contact walks all of both (to tell a peer what it lacks, to copy the table
//! into a summary, to age it), so they sit in contiguous memory: such a walk is
//! several times faster than over a B-tree, and at a thousand simulated nodes with a
//! thousand entries each those walks are most of a run. Searches are binary; an
//! insertion moves the tail, and a batch is merged in one pass. It serialises as a
//! map, as the `BTreeMap` it replaced did.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::iter::Peekable;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Batches up to this size are inserted one by one: a binary search and a move of
/// the tail each, cheaper than the merge's pass over every entry.
const INSERT_ONE_BY_ONE: usize = 16;

#[derive(Clone, PartialEq)]
pub(super) struct VecMap<K, V> {
    /// In key order, one entry per key.
    entries: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord, V> VecMap<K, V> {
    /// From entries in key order without repeats.
    pub(super) fn from_sorted(entries: Vec<(K, V)>) -> Self {
        debug_assert!(entries.is_sorted_by(|a, b| a.0 < b.0));
        Self { entries }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &K) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.cmp(key))
    }

    pub(super) fn get(&self, key: &K) -> Option<&V> {
        self.position(key).ok().map(|i| &self.entries[i].1)
    }

    pub(super) fn contains_key(&self, key: &K) -> bool {
        self.position(key).is_ok()
    }

    /// In key order.
    pub(super) fn iter(&self) -> std::slice::Iter<'_, (K, V)> {
        self.entries.iter()
    }

    /// In key order; the keys cannot change, so neither can the order.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub(super) fn as_slice(&self) -> &[(K, V)] {
        &self.entries
    }

    pub(super) fn into_keys(self) -> impl Iterator<Item = K> {
        self.entries.into_iter().map(|(k, _)| k)
    }

    pub(super) fn insert(&mut self, key: K, value: V) {
        match self.position(&key) {
            Ok(i) => self.entries[i].1 = value,
            Err(i) => self.entries.insert(i, (key, value)),
        }
    }

    /// Inserts, or folds `value` into the one there with `combine(old, new)`.
    pub(super) fn merge(&mut self, key: K, value: V, combine: impl Fn(&mut V, V)) {
        match self.position(&key) {
            Ok(i) => combine(&mut self.entries[i].1, value),
            Err(i) => self.entries.insert(i, (key, value)),
        }
    }

    /// `merge` for each of `batch`, in its order.
    pub(super) fn merge_all(&mut self, mut batch: Vec<(K, V)>, combine: impl Fn(&mut V, V)) {
        if batch.len() <= INSERT_ONE_BY_ONE {
            for (key, value) in batch {
                self.merge(key, value, &combine);
            }
            return;
        }
        // Stable: a repeated key's values stay in batch order. A batch in key order
        // (as a peer lists it) costs one comparison per entry here.
        batch.sort_by(|a, b| a.0.cmp(&b.0));
        let mut ours = std::mem::take(&mut self.entries).into_iter().peekable();
        let mut merged: Vec<(K, V)> = Vec::with_capacity(ours.len() + batch.len());
        for (key, value) in batch {
            while let Some(entry) = ours.next_if(|(k, _)| *k < key) {
                merged.push(entry);
            }
            if let Some(entry) = ours.next_if(|(k, _)| *k == key) {
                merged.push(entry);
            }
            match merged.last_mut() {
                Some((k, v)) if *k == key => combine(v, value),
                _ => merged.push((key, value)),
            }
        }
        merged.extend(ours);
        self.entries = merged;
    }

    pub(super) fn retain(&mut self, keep: impl FnMut(&mut (K, V)) -> bool) {
        self.entries.retain_mut(keep);
    }

    /// Removes the `count` entries with the lowest values by `order`, the lower key
    /// first among equal values; returns their keys.
    pub(super) fn remove_lowest(
        &mut self,
        count: usize,
        order: impl Fn(&V, &V) -> Ordering,
    ) -> Vec<K> {
        let count = count.min(self.entries.len());
        if count == 0 {
            return Vec::new();
        }
        let mut indices: Vec<usize> = (0..self.entries.len()).collect();
        indices.select_nth_unstable_by(count - 1, |a, b| {
            let (a, b) = (&self.entries[*a], &self.entries[*b]);
            order(&a.1, &b.1).then_with(|| a.0.cmp(&b.0))
        });
        let mut gone = vec![false; self.entries.len()];
        for &i in &indices[..count] {
            gone[i] = true;
        }
        let mut index = 0;
        self.entries
            .extract_if(.., |_| {
                index += 1;
                gone[index - 1]
            })
            .map(|(key, _)| key)
            .collect()
    }
}

/// Moves `walk`, over entries in key order, to its first entry not below `key`;
/// whether that entry is `key`. Walking two sorted lists alongside costs one
/// comparison a step, where searching one for each entry of the other costs a
/// logarithm of comparisons each.
pub(super) fn seek<I: Iterator, K: Ord>(
    walk: &mut Peekable<I>,
    key: &K,
    key_of: impl Fn(&I::Item) -> &K,
) -> bool {
    loop {
        match walk.peek().map(|item| key_of(item).cmp(key)) {
            Some(Ordering::Less) => {
                walk.next();
            }
            Some(Ordering::Equal) => return true,
            _ => return false,
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for VecMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for VecMap<K, V> {
    /// A repeated key keeps its last value, as inserting in order would.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let map: BTreeMap<K, V> = iter.into_iter().collect();
        Self {
            entries: map.into_iter().collect(),
        }
    }
}

impl<K: Serialize, V: Serialize> Serialize for VecMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.entries.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de, K: Ord + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for VecMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(BTreeMap::<K, V>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn max(old: &mut u64, new: u64) {
        *old = (*old).max(new);
    }

    proptest! {
        /// Against the B-tree it replaced: every operation, in any mix.
        #[test]
        fn behaves_as_a_btree_map(
            batches in proptest::collection::vec(
                proptest::collection::vec((0u8..60, 0u64..50), 0..40), 0..8),
            singles in proptest::collection::vec((0u8..60, 0u64..50), 0..20),
            lowest in 0usize..70,
        ) {
            let mut map = VecMap::default();
            let mut reference = BTreeMap::new();
            for batch in &batches {
                map.merge_all(batch.clone(), max);
                for (k, v) in batch {
                    let old = reference.entry(*k).or_insert(*v);
                    max(old, *v);
                }
            }
            for (k, v) in &singles {
                map.insert(*k, *v);
                reference.insert(*k, *v);
            }
            let listed: Vec<(u8, u64)> = map.iter().copied().collect();
            let expected: Vec<(u8, u64)> = reference.iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(&listed, &expected);
            for k in 0..60 {
                prop_assert_eq!(map.get(&k), reference.get(&k));
                prop_assert_eq!(map.contains_key(&k), reference.contains_key(&k));
            }
            prop_assert_eq!(map.len(), reference.len());
            let mut by_value: Vec<(u64, u8)> = reference.iter().map(|(k, v)| (*v, *k)).collect();
            by_value.sort();
            let mut gone_expected: Vec<u8> =
                by_value.iter().take(lowest).map(|(_, k)| *k).collect();
            let mut left: Vec<(u8, u64)> =
                by_value.into_iter().skip(lowest).map(|(v, k)| (k, v)).collect();
            left.sort();
            let mut gone = map.remove_lowest(lowest, Ord::cmp);
            gone.sort();
            gone_expected.sort();
            prop_assert_eq!(gone, gone_expected);
            let listed: Vec<(u8, u64)> = map.iter().copied().collect();
            prop_assert_eq!(listed, left);
        }

        #[test]
        fn serialises_as_the_map_it_replaced(
            entries in proptest::collection::vec((0u8..60, 0u64..50), 0..40),
        ) {
            let map: VecMap<u8, u64> = entries.iter().copied().collect();
            let reference: BTreeMap<u8, u64> = entries.iter().copied().collect();
            let bytes = postcard::to_stdvec(&map).unwrap();
            prop_assert_eq!(&bytes, &postcard::to_stdvec(&reference).unwrap());
            let back: VecMap<u8, u64> = postcard::from_bytes(&bytes).unwrap();
            prop_assert!(back == map);
        }
    }
}
