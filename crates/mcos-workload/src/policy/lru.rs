//! Exact least-recently-used replacement.
//!
//! Source: the LRU stack of Mattson, Gecsei, Slutz and Traiger, "Evaluation techniques for storage
//! hierarchies", IBM Systems Journal 9(2), 1970. O(1) per access: a hash map from block id to a node
//! of an index-based doubly-linked list (most recent at the front), both sized for the capacity up
//! front. Mooncake Store's DRAM pool uses LRU; it is the reference column of the Mooncake trace.

use super::list::{List, Slab};
use super::{CachePolicy, IdMap, PolicyStats, id_map};

/// Exact LRU over unit-size blocks; a miss always inserts, evicting the least recently used block.
#[derive(Debug)]
pub struct Lru {
    capacity: usize,
    index: IdMap<u32>,
    slab: Slab,
    list: List,
    stats: PolicyStats,
}

impl Lru {
    /// An empty LRU cache of `capacity` blocks.
    ///
    /// # Panics
    /// If `capacity` is 0 ([`super::by_name`] refuses it with an error).
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "capacity must be positive");
        Self {
            capacity,
            index: id_map(capacity),
            slab: Slab::with_capacity(capacity),
            list: List::new(),
            stats: PolicyStats::default(),
        }
    }

    /// Makes a resident block the most recently used; no effect on other ids. Returns whether it
    /// was resident.
    pub fn touch(&mut self, id: u64) -> bool {
        match self.index.get(&id) {
            Some(&idx) => {
                self.list.move_to_front(&mut self.slab, idx);
                true
            }
            None => false,
        }
    }
}

impl CachePolicy for Lru {
    fn name(&self) -> &'static str {
        "lru-ref"
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    fn access(&mut self, id: u64, _now: u64) -> bool {
        if self.touch(id) {
            return true;
        }
        if self.list.len() == self.capacity
            && let Some(victim) = self.list.pop_back(&mut self.slab)
        {
            self.index.remove(&self.slab.node(victim).id);
            self.slab.release(victim);
            self.stats.evictions += 1;
        }
        let idx = self.slab.alloc(id, 0);
        self.list.push_front(&mut self.slab, idx);
        self.index.insert(id, idx);
        self.stats.insertions += 1;
        false
    }

    fn stats(&self) -> PolicyStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{pattern, run};
    use super::*;

    #[test]
    fn classic_sequence() {
        // Capacity 3: 1 2 3 1 4 (evicts 2) 2 (evicts 3) 1 3 (evicts 4).
        let mut p = Lru::new(3);
        let got = run(&mut p, &[1, 2, 3, 1, 4, 2, 1, 3]);
        assert_eq!(got, pattern("mmm H m m H m"));
        assert!(!p.contains(4) && p.contains(1) && p.contains(2) && p.contains(3));
        assert_eq!(p.stats().evictions, 3);
    }

    #[test]
    fn cyclic_scan_larger_than_cache_never_hits() {
        let mut p = Lru::new(3);
        let seq: Vec<u64> = (0..40).map(|i| i % 4).collect();
        assert!(run(&mut p, &seq).iter().all(|h| !h));
    }
}
