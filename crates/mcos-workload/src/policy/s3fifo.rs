//! S3-FIFO eviction.
//!
//! Source: Yang, Zhang, Qiu, Yue and Rashmi, "FIFO queues are all you need for cache eviction",
//! SOSP'23 (Algorithm 1). Three FIFO queues: a small queue S (10% of the capacity) that filters
//! blocks seen once, a main queue M (90%) run as FIFO-reinsertion with a 2-bit frequency, and a
//! ghost queue G of ids only, as long as M. A miss enters S, or M when its id is still in G. When
//! S holds at least 10% of the cache it is evicted from: a tail block hit at least
//! `move_to_main_threshold` times (2, the paper's `freq > 1`, libCacheSim's original default) moves
//! to M with its bits cleared, any other goes to G. M's tail is reinserted with its frequency
//! decremented until one with frequency 0 is evicted.

use super::list::{List, Slab};
use super::{CachePolicy, IdMap, PolicyStats, id_map};

const SMALL: u8 = 0;
const MAIN: u8 = 1;
const GHOST: u8 = 2;
const MAX_FREQ: u8 = 3;

/// The paper's threshold: blocks hit more than once while in S move to M.
pub const DEFAULT_MOVE_TO_MAIN_THRESHOLD: u8 = 2;

/// S3-FIFO over unit-size blocks.
#[derive(Debug)]
pub struct S3Fifo {
    capacity: usize,
    small_capacity: usize,
    main_capacity: usize,
    ghost_capacity: usize,
    move_to_main_threshold: u8,
    /// Every id in S, M or G; the node's tag says which.
    index: IdMap<u32>,
    slab: Slab,
    small: List,
    main: List,
    ghost: List,
    stats: PolicyStats,
}

impl S3Fifo {
    /// An empty S3-FIFO cache of `capacity` blocks with the paper's parameters.
    ///
    /// # Panics
    /// If `capacity` is 0.
    pub fn new(capacity: usize) -> Self {
        Self::with_threshold(capacity, DEFAULT_MOVE_TO_MAIN_THRESHOLD)
    }

    /// As [`S3Fifo::new`] with a different S-to-M promotion threshold (1 promotes any block hit
    /// while in S).
    ///
    /// # Panics
    /// If `capacity` or `move_to_main_threshold` is 0.
    pub fn with_threshold(capacity: usize, move_to_main_threshold: u8) -> Self {
        assert!(capacity > 0, "capacity must be positive");
        assert!(move_to_main_threshold > 0, "threshold must be positive");
        let small_capacity = (capacity / 10).max(1);
        let main_capacity = capacity.saturating_sub(small_capacity);
        let ghost_capacity = main_capacity;
        let directory = capacity + ghost_capacity + 1;
        Self {
            capacity,
            small_capacity,
            main_capacity,
            ghost_capacity,
            move_to_main_threshold,
            index: id_map(directory),
            slab: Slab::with_capacity(directory),
            small: List::new(),
            main: List::new(),
            ghost: List::new(),
            stats: PolicyStats::default(),
        }
    }

    fn resident(&self) -> usize {
        self.small.len() + self.main.len()
    }

    fn evict(&mut self) {
        if self.small.len() >= self.small_capacity || self.main.len() == 0 {
            self.evict_small();
        } else {
            self.evict_main();
        }
    }

    fn evict_small(&mut self) {
        while let Some(t) = self.small.pop_back(&mut self.slab) {
            let node = self.slab.node_mut(t);
            if node.freq >= self.move_to_main_threshold {
                node.list = MAIN;
                node.freq = 0;
                self.main.push_front(&mut self.slab, t);
                if self.main.len() >= self.main_capacity {
                    self.evict_main();
                }
            } else {
                node.list = GHOST;
                node.freq = 0;
                self.stats.evictions += 1;
                self.push_ghost(t);
                return;
            }
        }
    }

    fn evict_main(&mut self) {
        // Bounded: each reinsertion lowers a frequency (at most 3 per block).
        while let Some(t) = self.main.pop_back(&mut self.slab) {
            let node = self.slab.node_mut(t);
            if node.freq > 0 {
                node.freq -= 1;
                self.main.push_front(&mut self.slab, t);
            } else {
                self.forget(t);
                self.stats.evictions += 1;
                return;
            }
        }
    }

    fn push_ghost(&mut self, t: u32) {
        self.ghost.push_front(&mut self.slab, t);
        if self.ghost.len() > self.ghost_capacity
            && let Some(old) = self.ghost.pop_back(&mut self.slab)
        {
            self.forget(old);
        }
    }

    /// Drops an unlinked node from the directory.
    fn forget(&mut self, t: u32) {
        self.index.remove(&self.slab.node(t).id);
        self.slab.release(t);
    }
}

impl CachePolicy for S3Fifo {
    fn name(&self) -> &'static str {
        "s3fifo"
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn len(&self) -> usize {
        self.resident()
    }

    fn contains(&self, id: u64) -> bool {
        self.index
            .get(&id)
            .is_some_and(|&t| self.slab.node(t).list != GHOST)
    }

    fn access(&mut self, id: u64, _now: u64) -> bool {
        let ghost_hit = match self.index.get(&id) {
            Some(&t) if self.slab.node(t).list == GHOST => Some(t),
            Some(&t) => {
                let node = self.slab.node_mut(t);
                node.freq = (node.freq + 1).min(MAX_FREQ);
                return true;
            }
            None => None,
        };
        if let Some(t) = ghost_hit {
            self.ghost.unlink(&mut self.slab, t);
        }
        while self.resident() >= self.capacity {
            self.evict();
        }
        match ghost_hit {
            Some(t) => {
                let node = self.slab.node_mut(t);
                node.list = MAIN;
                node.freq = 0;
                self.main.push_front(&mut self.slab, t);
            }
            None => {
                let t = self.slab.alloc(id, SMALL);
                self.small.push_front(&mut self.slab, t);
                self.index.insert(id, t);
            }
        }
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
    fn small_queue_filters_and_ghost_readmits_to_main() {
        // Capacity 10: S holds 1 block at steady state, M 9, G 9.
        let mut p = S3Fifo::new(10);
        let first: Vec<u64> = (1..=10).collect();
        assert!(run(&mut p, &first).iter().all(|h| !h));
        assert_eq!(run(&mut p, &[1, 1]), pattern("HH"));
        // 11: S is over its share; its tail 1 (freq 2) moves to M, 2 (freq 0) goes to the ghost.
        assert!(!p.access(11, 12));
        assert!(p.contains(1) && !p.contains(2) && p.contains(3));
        assert_eq!((p.small.len(), p.main.len(), p.ghost.len()), (9, 1, 1));
        // 2 is in the ghost: it is readmitted straight to M, 3 goes to the ghost.
        assert!(!p.access(2, 13));
        assert!(p.contains(2) && !p.contains(3));
        assert_eq!(p.slab.node(p.index[&2]).list, MAIN);
        assert_eq!((p.small.len(), p.main.len(), p.ghost.len()), (8, 2, 1));
        assert_eq!(p.stats().evictions, 2);
        assert!(p.access(1, 14));
    }

    #[test]
    fn one_hit_scan_does_not_flush_main() {
        let mut p = S3Fifo::new(10);
        // Make 1..=5 hot: they reach M.
        for round in 0..3 {
            for id in 1..=5 {
                p.access(id, round);
            }
        }
        for id in 100..110 {
            p.access(id, 0);
        }
        for id in 1000..1100 {
            p.access(id, 0);
        }
        let hot_hits = (1..=5).filter(|&id| p.access(id, 0)).count();
        assert_eq!(
            hot_hits, 5,
            "a one-hit scan must not evict the hot set from M"
        );
    }

    #[test]
    fn ghost_never_exceeds_main_size() {
        let mut p = S3Fifo::new(20);
        for id in 0..1000 {
            p.access(id % 97, id);
            assert!(p.ghost.len() <= p.ghost_capacity);
            assert!(p.len() <= 20);
        }
    }
}
