//! SIEVE eviction.
//!
//! Source: Zhang, Yang, Yue, Vigfusson and Rashmi, "SIEVE is Simpler than LRU: an Efficient
//! Turn-Key Eviction Algorithm for Web Caches", NSDI'24. One FIFO queue, one visited bit per block
//! and a hand: a hit only sets the bit; to evict, the hand walks from the tail towards the head,
//! clearing set bits, and evicts the first block whose bit is clear; survivors stay where they are
//! (lazy promotion, quick demotion). New blocks enter at the head; the hand wraps from head to tail.

use super::list::{List, Slab};
use super::{CachePolicy, IdMap, PolicyStats, id_map};

/// SIEVE over unit-size blocks.
#[derive(Debug)]
pub struct Sieve {
    capacity: usize,
    index: IdMap<u32>,
    slab: Slab,
    queue: List,
    /// Next eviction candidate; `None` means start from the tail.
    hand: Option<u32>,
    stats: PolicyStats,
}

impl Sieve {
    /// An empty SIEVE cache of `capacity` blocks.
    ///
    /// # Panics
    /// If `capacity` is 0.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "capacity must be positive");
        Self {
            capacity,
            index: id_map(capacity),
            slab: Slab::with_capacity(capacity),
            queue: List::new(),
            hand: None,
            stats: PolicyStats::default(),
        }
    }

    fn evict(&mut self) {
        let Some(mut cur) = self.hand.or(self.queue.back()) else {
            return;
        };
        // Bounded: each step clears one bit, so at most len + 1 steps.
        while self.slab.node(cur).freq != 0 {
            self.slab.node_mut(cur).freq = 0;
            cur = match List::newer(&self.slab, cur).or(self.queue.back()) {
                Some(next) => next,
                None => break,
            };
        }
        self.hand = List::newer(&self.slab, cur);
        self.queue.unlink(&mut self.slab, cur);
        self.index.remove(&self.slab.node(cur).id);
        self.slab.release(cur);
        self.stats.evictions += 1;
    }
}

impl CachePolicy for Sieve {
    fn name(&self) -> &'static str {
        "sieve"
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    fn access(&mut self, id: u64, _now: u64) -> bool {
        if let Some(&idx) = self.index.get(&id) {
            self.slab.node_mut(idx).freq = 1;
            return true;
        }
        if self.queue.len() == self.capacity {
            self.evict();
        }
        let idx = self.slab.alloc(id, 0);
        self.queue.push_front(&mut self.slab, idx);
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
    use super::super::lru::Lru;
    use super::super::testing::{pattern, run};
    use super::*;

    #[test]
    fn visited_block_survives_in_place_where_lru_drops_it() {
        // Capacity 3: A B C, A hit (bit set, A stays at the tail), D: the hand clears A and evicts B,
        // E evicts C, F evicts D; A survives. LRU evicts A at F.
        let (a, b, c, d, e, f) = (1, 2, 3, 4, 5, 6);
        let seq = [a, b, c, a, d, e, f, a];
        let mut s = Sieve::new(3);
        assert_eq!(run(&mut s, &seq), pattern("mmm H mmm H"));
        assert!(s.contains(a) && s.contains(e) && s.contains(f));
        let mut l = Lru::new(3);
        assert_eq!(run(&mut l, &seq), pattern("mmm H mmm m"));
    }

    #[test]
    fn hand_wraps_when_every_block_is_visited() {
        let mut s = Sieve::new(2);
        run(&mut s, &[1, 2, 1, 2]);
        // All bits set: the hand clears both, wraps to the tail and evicts 1 (oldest).
        assert!(!s.access(3, 4));
        assert!(!s.contains(1) && s.contains(2) && s.contains(3));
        // The hand now sits at 2 (bit cleared): the next miss evicts it.
        assert!(!s.access(4, 5));
        assert!(!s.contains(2) && s.contains(3) && s.contains(4));
    }
}
