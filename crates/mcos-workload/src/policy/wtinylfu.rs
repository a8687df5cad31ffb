//! W-TinyLFU eviction and admission.
//!
//! Source: Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient Cache Admission Policy",
//! ACM Transactions on Storage 13(4), 2017 (section 5, W-TinyLFU), as Caffeine implements it:
//! a window LRU of 1 % of the capacity in front of a main segmented LRU (probation and a
//! protected segment of 80 % of the main region). New blocks enter the window; a block pushed
//! out of a full window competes with the main region's victim (probation's LRU end), and the
//! one a frequency sketch has counted fewer times is evicted (ties evict the newcomer). The
//! sketch is a count-min of 4-bit counters, four rows of `4 * next_pow2(capacity)` counters
//! (Caffeine's 16 counters per entry), halved every `10 * capacity` accesses (the sample size
//! of the paper's reset). Omitted: Caffeine's random admission of warm candidates, a defence
//! against hash flooding that does not change hit ratios on honest traces.

use super::list::{List, Slab};
use super::{CachePolicy, IdMap, PolicyStats, id_map};

const WINDOW: u8 = 0;
const PROBATION: u8 = 1;
const PROTECTED: u8 = 2;
const ROWS: usize = 4;
const COUNTER_MAX: u8 = 15;

/// Count-min sketch of 4-bit counters with periodic halving.
#[derive(Debug)]
struct FrequencySketch {
    counters: Vec<u8>,
    width: usize,
    additions: usize,
    sample_size: usize,
}

impl FrequencySketch {
    fn new(capacity: usize) -> Self {
        let width = 4 * capacity.max(1).next_power_of_two();
        Self {
            counters: vec![0; ROWS * width],
            width,
            additions: 0,
            sample_size: 10 * capacity.max(1),
        }
    }

    fn index(&self, id: u64, row: usize) -> usize {
        let mut h = id.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(row as u64 + 1));
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
        row * self.width + (h as usize & (self.width - 1))
    }

    fn frequency(&self, id: u64) -> u8 {
        (0..ROWS)
            .map(|r| self.counters[self.index(id, r)])
            .min()
            .unwrap_or(0)
    }

    fn increment(&mut self, id: u64) {
        for r in 0..ROWS {
            let i = self.index(id, r);
            if self.counters[i] < COUNTER_MAX {
                self.counters[i] += 1;
            }
        }
        self.additions += 1;
        if self.additions >= self.sample_size {
            self.counters.iter_mut().for_each(|c| *c >>= 1);
            self.additions /= 2;
        }
    }
}

/// W-TinyLFU over unit-size blocks.
#[derive(Debug)]
pub struct WTinyLfu {
    capacity: usize,
    window_capacity: usize,
    protected_capacity: usize,
    index: IdMap<u32>,
    slab: Slab,
    window: List,
    probation: List,
    protected: List,
    sketch: FrequencySketch,
    stats: PolicyStats,
}

impl WTinyLfu {
    /// An empty cache of `capacity` blocks with Caffeine's proportions (window 1 %, protected
    /// 80 % of the main region).
    ///
    /// # Panics
    /// If `capacity` is 0.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "capacity must be positive");
        let window_capacity = (capacity / 100).max(1);
        let main = capacity - window_capacity;
        Self {
            capacity,
            window_capacity,
            protected_capacity: main * 8 / 10,
            index: id_map(capacity + 1),
            slab: Slab::with_capacity(capacity + 1),
            window: List::new(),
            probation: List::new(),
            protected: List::new(),
            sketch: FrequencySketch::new(capacity),
            stats: PolicyStats::default(),
        }
    }

    fn resident(&self) -> usize {
        self.window.len() + self.probation.len() + self.protected.len()
    }

    fn forget(&mut self, t: u32) {
        self.index.remove(&self.slab.node(t).id);
        self.slab.release(t);
        self.stats.evictions += 1;
    }

    /// Moves the window's overflow into probation, evicting the loser of each duel when the
    /// cache is over capacity.
    fn maintain(&mut self) {
        while self.window.len() > self.window_capacity {
            let Some(c) = self.window.pop_back(&mut self.slab) else {
                return;
            };
            self.slab.node_mut(c).list = PROBATION;
            self.probation.push_front(&mut self.slab, c);
            if self.resident() <= self.capacity {
                continue;
            }
            let victim = self.probation.back().or_else(|| self.protected.back());
            let Some(v) = victim.filter(|&v| v != c) else {
                // Only the candidate is evictable.
                self.probation.unlink(&mut self.slab, c);
                self.forget(c);
                continue;
            };
            let (fc, fv) = (
                self.sketch.frequency(self.slab.node(c).id),
                self.sketch.frequency(self.slab.node(v).id),
            );
            let loser = if fc > fv { v } else { c };
            if self.slab.node(loser).list == PROTECTED {
                self.protected.unlink(&mut self.slab, loser);
            } else {
                self.probation.unlink(&mut self.slab, loser);
            }
            self.forget(loser);
        }
    }
}

impl CachePolicy for WTinyLfu {
    fn name(&self) -> &'static str {
        "wtinylfu"
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn len(&self) -> usize {
        self.resident()
    }

    fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    fn access(&mut self, id: u64, _now: u64) -> bool {
        self.sketch.increment(id);
        if let Some(&t) = self.index.get(&id) {
            match self.slab.node(t).list {
                WINDOW => self.window.move_to_front(&mut self.slab, t),
                PROTECTED => self.protected.move_to_front(&mut self.slab, t),
                _ => {
                    self.probation.unlink(&mut self.slab, t);
                    self.slab.node_mut(t).list = PROTECTED;
                    self.protected.push_front(&mut self.slab, t);
                    if self.protected.len() > self.protected_capacity
                        && let Some(d) = self.protected.pop_back(&mut self.slab)
                    {
                        self.slab.node_mut(d).list = PROBATION;
                        self.probation.push_front(&mut self.slab, d);
                    }
                }
            }
            return true;
        }
        let t = self.slab.alloc(id, WINDOW);
        self.window.push_front(&mut self.slab, t);
        self.index.insert(id, t);
        self.stats.insertions += 1;
        self.maintain();
        false
    }

    fn stats(&self) -> PolicyStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use super::*;

    #[test]
    fn frequent_blocks_survive_a_scan() {
        let mut p = WTinyLfu::new(100);
        for round in 0..5 {
            for id in 0..50 {
                p.access(id, round);
            }
        }
        let scan: Vec<u64> = (1000..3000).collect();
        run(&mut p, &scan);
        let kept = (0..50).filter(|&id| p.contains(id)).count();
        assert!(
            kept >= 45,
            "a one-hit scan displaced the frequent set: {kept} of 50 kept"
        );
        assert!(p.len() <= 100);
    }

    #[test]
    fn window_gives_a_newcomer_a_quick_reuse() {
        let mut p = WTinyLfu::new(200);
        for round in 0..4 {
            for id in 0..200 {
                p.access(id, round);
            }
        }
        // 5000 is new: it sits in the window, so an immediate reuse hits.
        assert!(!p.access(5000, 0));
        assert!(p.access(5000, 1));
    }

    #[test]
    fn sketch_halves_after_its_sample() {
        let mut s = FrequencySketch::new(10);
        for _ in 0..8 {
            s.increment(7);
        }
        assert_eq!(s.frequency(7), 8);
        for i in 0..200 {
            s.increment(1000 + i);
        }
        assert!(s.frequency(7) <= 4, "counters age: {}", s.frequency(7));
    }
}
