//! Adaptive Replacement Cache.
//!
//! Source: Megiddo and Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache", FAST'03
//! (Figure 4). Resident lists T1 (seen once recently) and T2 (seen at least twice), ghost lists B1
//! and B2 of ids recently evicted from each, and a target size `p` for T1 that a ghost hit moves:
//! a hit in B1 grows `p` (recency was evicted too early), a hit in B2 shrinks it. The directory
//! holds at most 2c ids. `p` is real-valued and moves by the paper's steps `max(1, |B2|/|B1|)` and
//! `max(1, |B1|/|B2|)`, as libCacheSim's ARC does (an earlier version took integer quotients, which
//! moved hit ratios by up to 0.012 on CloudPhysics).

use super::list::{List, Slab};
use super::{CachePolicy, IdMap, PolicyStats, id_map};

const T1: u8 = 0;
const T2: u8 = 1;
const B1: u8 = 2;
const B2: u8 = 3;

/// ARC over unit-size blocks (named `ArcCache` so it does not shadow `std::sync::Arc`).
#[derive(Debug)]
pub struct ArcCache {
    capacity: usize,
    /// Target size of T1, real-valued as in the paper.
    p: f64,
    index: IdMap<u32>,
    slab: Slab,
    /// T1, T2, B1, B2, indexed by tag.
    lists: [List; 4],
    stats: PolicyStats,
}

impl ArcCache {
    /// An empty ARC cache of `capacity` blocks.
    ///
    /// # Panics
    /// If `capacity` is 0.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "capacity must be positive");
        let directory = 2 * capacity + 1;
        Self {
            capacity,
            p: 0.0,
            index: id_map(directory),
            slab: Slab::with_capacity(directory),
            lists: [List::new(); 4],
            stats: PolicyStats::default(),
        }
    }

    /// The current target size of T1 (the adaptive parameter `p`).
    pub fn target_t1(&self) -> f64 {
        self.p
    }

    fn list(&self, tag: u8) -> &List {
        &self.lists[usize::from(tag)]
    }

    /// Moves node `t` from its list to the front of list `to`.
    fn relink(&mut self, t: u32, to: u8) {
        let from = self.slab.node(t).list;
        self.lists[usize::from(from)].unlink(&mut self.slab, t);
        self.slab.node_mut(t).list = to;
        self.lists[usize::from(to)].push_front(&mut self.slab, t);
    }

    /// REPLACE(x, p): moves the LRU block of T1 or T2 to its ghost list.
    fn replace(&mut self, hit_in_b2: bool) {
        if self.list(T1).len() + self.list(T2).len() < self.capacity {
            return; // Not full (cannot happen while a ghost list is non-empty; kept for safety).
        }
        let t1 = self.list(T1).len();
        let t1_f = t1 as f64;
        let from_t1 = (t1 >= 1 && ((hit_in_b2 && t1_f == self.p) || t1_f > self.p))
            || self.list(T2).len() == 0;
        let (from, to) = if from_t1 { (T1, B1) } else { (T2, B2) };
        if let Some(victim) = self.list(from).back() {
            self.relink(victim, to);
            self.stats.evictions += 1;
        }
    }

    /// Deletes the LRU entry of list `tag` from the directory.
    fn drop_lru(&mut self, tag: u8) {
        if let Some(t) = self.lists[usize::from(tag)].pop_back(&mut self.slab) {
            self.index.remove(&self.slab.node(t).id);
            self.slab.release(t);
        }
    }
}

impl CachePolicy for ArcCache {
    fn name(&self) -> &'static str {
        "arc"
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn len(&self) -> usize {
        self.list(T1).len() + self.list(T2).len()
    }

    fn contains(&self, id: u64) -> bool {
        self.index
            .get(&id)
            .is_some_and(|&t| matches!(self.slab.node(t).list, T1 | T2))
    }

    fn access(&mut self, id: u64, _now: u64) -> bool {
        let found = self.index.get(&id).map(|&t| (t, self.slab.node(t).list));
        match found {
            // Case I: hit in T1 or T2.
            Some((t, T1 | T2)) => {
                self.relink(t, T2);
                return true;
            }
            // Case II: ghost hit in B1, recency deserved more room.
            Some((t, B1)) => {
                let (b1, b2) = (self.list(B1).len() as f64, self.list(B2).len() as f64);
                self.p = (self.p + (b2 / b1).max(1.0)).min(self.capacity as f64);
                self.replace(false);
                self.relink(t, T2);
            }
            // Case III: ghost hit in B2, frequency deserved more room.
            Some((t, _)) => {
                let (b1, b2) = (self.list(B1).len() as f64, self.list(B2).len() as f64);
                self.p = (self.p - (b1 / b2).max(1.0)).max(0.0);
                self.replace(true);
                self.relink(t, T2);
            }
            // Case IV: not in the directory.
            None => {
                let l1 = self.list(T1).len() + self.list(B1).len();
                if l1 >= self.capacity {
                    if self.list(T1).len() < self.capacity {
                        self.drop_lru(B1);
                        self.replace(false);
                    } else {
                        // B1 is empty: the LRU block of T1 leaves the directory entirely.
                        self.drop_lru(T1);
                        self.stats.evictions += 1;
                    }
                } else {
                    let total = l1 + self.list(T2).len() + self.list(B2).len();
                    if total >= self.capacity {
                        if total >= 2 * self.capacity {
                            self.drop_lru(B2);
                        }
                        self.replace(false);
                    }
                }
                let t = self.slab.alloc(id, T1);
                self.lists[usize::from(T1)].push_front(&mut self.slab, t);
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
    use super::super::lru::Lru;
    use super::super::testing::{pattern, run};
    use super::*;

    #[test]
    fn ghost_hits_move_the_target() {
        // Capacity 2. 1 1: T2={1}. 2: T1={2}. 3: REPLACE moves 2 to B1. 2: B1 hit, p 0->1, REPLACE
        // takes T2's LRU (1) to B2 since |T1| = 1 is not above p. 1: B2 hit, p 1->0, 3 goes to B1.
        let mut p = ArcCache::new(2);
        assert_eq!(run(&mut p, &[1, 1, 2, 3]), pattern("mH mm"));
        assert_eq!(
            (
                p.list(T1).len(),
                p.list(T2).len(),
                p.list(B1).len(),
                p.list(B2).len()
            ),
            (1, 1, 1, 0)
        );
        assert!(!p.access(2, 4));
        assert_eq!(p.target_t1(), 1.0);
        assert!(p.contains(2) && p.contains(3) && !p.contains(1));
        assert_eq!(
            (
                p.list(T1).len(),
                p.list(T2).len(),
                p.list(B1).len(),
                p.list(B2).len()
            ),
            (1, 1, 0, 1)
        );
        assert!(!p.access(1, 5));
        assert_eq!(p.target_t1(), 0.0);
        assert!(p.contains(1) && p.contains(2) && !p.contains(3));
        assert_eq!(
            (
                p.list(T1).len(),
                p.list(T2).len(),
                p.list(B1).len(),
                p.list(B2).len()
            ),
            (0, 2, 1, 0)
        );
    }

    #[test]
    fn frequent_blocks_survive_a_scan_that_flushes_lru() {
        let mut seq = vec![1, 2, 1, 2];
        seq.extend(100..120);
        seq.extend([1, 2]);
        let mut arc = ArcCache::new(4);
        let got = run(&mut arc, &seq);
        assert_eq!(&got[got.len() - 2..], &[true, true]);
        let mut lru = Lru::new(4);
        let got = run(&mut lru, &seq);
        assert_eq!(&got[got.len() - 2..], &[false, false]);
    }

    #[test]
    fn directory_stays_within_twice_the_capacity() {
        let mut p = ArcCache::new(8);
        let mut x: u64 = 7;
        for i in 0..5000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            p.access((x >> 33) % 40, i);
            let dir = p.list(T1).len() + p.list(T2).len() + p.list(B1).len() + p.list(B2).len();
            assert!(dir <= 16 && p.len() <= 8 && p.list(T1).len() + p.list(B1).len() <= 8);
        }
    }

    #[test]
    fn same_hits_as_the_object_arc_at_unit_sizes() {
        // The object ARC reproduces libCacheSim's ARC exactly (tests/libcachesim_reference.rs);
        // at unit sizes the block ARC must make the same decision on every access.
        use crate::objcache::{Arc, ObjectPolicy};
        use crate::objtrace::ObjRequest;
        for (capacity, universe) in [(1, 3), (4, 10), (16, 64), (100, 300), (1000, 1500)] {
            let mut block = ArcCache::new(capacity);
            let mut object = Arc::new(capacity as u64, false);
            let mut x: u64 = 0x5eed + capacity as u64;
            for i in 0..50_000u64 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Skewed: half the accesses go to the first eighth of the ids.
                let r = x >> 33;
                let id = if r.is_multiple_of(2) {
                    r % (universe / 8 + 1)
                } else {
                    r % universe
                };
                let req = ObjRequest {
                    time: i,
                    id,
                    size: 1,
                    next_access_vtime: -2,
                };
                let (a, b) = (block.access(id, i), object.access(&req, i));
                assert_eq!(a, b, "capacity {capacity}: access {i} (id {id}) differs");
            }
        }
    }
}
