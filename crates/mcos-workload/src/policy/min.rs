//! Belady's MIN with bypass: the offline optimum for unit-size blocks.
//!
//! Source: Belady, "A study of replacement algorithms for a virtual-storage computer", IBM Systems
//! Journal 5(2), 1966; the bypass variant (a missed block is not admitted when its own next use is
//! further than every resident's) is the optimum when a miss need not be cached, as in Mattson et
//! al. 1970. It needs the future, so it is built from the replay's full access sequence: one reverse
//! pass precomputes each access's next use (8 bytes per access). Eviction takes the resident block
//! whose next use is furthest from a max-heap of `(next_use, id)` with lazy deletion (a stale entry
//! is skipped when it reaches the top; the heap is compacted when stale entries outnumber the
//! resident ones), so an access costs O(log C).

use std::collections::BinaryHeap;

use super::{CachePolicy, IdMap, PolicyStats, id_map};
use crate::trace::Request;

/// Next-use position of an access that is never repeated.
pub const NEVER: u64 = u64::MAX;

/// The full block-access sequence of a replay, in replay order: the future MIN needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessSeq {
    ids: Vec<u64>,
}

impl AccessSeq {
    /// An empty sequence.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sequence of single block accesses.
    pub fn from_ids(ids: Vec<u64>) -> Self {
        Self { ids }
    }

    /// The accesses of `requests`, each request's blocks in prompt order.
    pub fn from_requests<'a>(requests: impl IntoIterator<Item = &'a Request>) -> Self {
        let mut seq = Self::new();
        for r in requests {
            seq.push_request(r);
        }
        seq
    }

    /// Appends one request's block accesses.
    pub fn push_request(&mut self, request: &Request) {
        self.ids.extend_from_slice(&request.hash_ids);
    }

    /// Number of accesses.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no accesses.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The block ids in access order.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// For each access, the position of the next access to the same block, or [`NEVER`].
    pub fn next_uses(&self) -> Vec<u64> {
        let mut next = vec![NEVER; self.ids.len()];
        let mut seen: IdMap<u64> = id_map(self.ids.len().min(1 << 20));
        for (pos, &id) in self.ids.iter().enumerate().rev() {
            if let Some(later) = seen.insert(id, pos as u64) {
                next[pos] = later;
            }
        }
        next
    }
}

/// Belady MIN with bypass over unit-size blocks (offline).
#[derive(Debug)]
pub struct Min {
    capacity: usize,
    ids: Vec<u64>,
    next_use: Vec<u64>,
    /// Position of the next access in `ids`.
    cursor: usize,
    /// Resident block -> its current next use.
    resident: IdMap<u64>,
    /// `(next_use, id)`; entries whose next use no longer matches `resident` are stale.
    heap: BinaryHeap<(u64, u64)>,
    stats: PolicyStats,
}

impl Min {
    /// An empty MIN cache of `capacity` blocks that will be replayed `future` exactly, in order.
    ///
    /// # Panics
    /// If `capacity` is 0.
    pub fn new(capacity: usize, future: &AccessSeq) -> Self {
        assert!(capacity > 0, "capacity must be positive");
        Self {
            capacity,
            ids: future.ids.clone(),
            next_use: future.next_uses(),
            cursor: 0,
            resident: id_map(capacity),
            heap: BinaryHeap::with_capacity(Self::heap_limit(capacity) + 1),
            stats: PolicyStats::default(),
        }
    }

    fn heap_limit(capacity: usize) -> usize {
        2 * capacity + 64
    }

    fn admit(&mut self, id: u64, next_use: u64) {
        self.resident.insert(id, next_use);
        self.heap.push((next_use, id));
        if self.heap.len() > Self::heap_limit(self.capacity) {
            let resident = &self.resident;
            self.heap.retain(|(nu, id)| resident.get(id) == Some(nu));
        }
    }

    /// The resident block used furthest in the future, dropping stale heap entries on the way.
    fn furthest(&mut self) -> Option<(u64, u64)> {
        while let Some(&(nu, id)) = self.heap.peek() {
            if self.resident.get(&id) == Some(&nu) {
                return Some((nu, id));
            }
            self.heap.pop();
        }
        None
    }
}

impl CachePolicy for Min {
    fn name(&self) -> &'static str {
        "min"
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn len(&self) -> usize {
        self.resident.len()
    }

    fn contains(&self, id: u64) -> bool {
        self.resident.contains_key(&id)
    }

    /// # Panics
    /// If the replay leaves the access sequence MIN was built from (a caller bug).
    fn access(&mut self, id: u64, _now: u64) -> bool {
        let pos = self.cursor;
        assert!(
            pos < self.ids.len(),
            "MIN replayed past the {} accesses it was built from",
            self.ids.len()
        );
        assert_eq!(
            self.ids[pos], id,
            "MIN replay diverged from its access sequence at access {pos}"
        );
        self.cursor += 1;
        let next_use = self.next_use[pos];
        if self.resident.contains_key(&id) {
            self.admit(id, next_use);
            return true;
        }
        if self.resident.len() >= self.capacity {
            let Some((furthest, victim)) = self.furthest() else {
                unreachable!("a full cache has a furthest block");
            };
            if next_use >= furthest {
                // The newcomer is needed no sooner than every resident block: bypass it.
                self.stats.admissions_rejected += 1;
                return false;
            }
            self.heap.pop();
            self.resident.remove(&victim);
            self.stats.evictions += 1;
        }
        self.admit(id, next_use);
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

    fn min_hits(cap: usize, ids: &[u64]) -> (Vec<bool>, Min) {
        let seq = AccessSeq::from_ids(ids.to_vec());
        let mut p = Min::new(cap, &seq);
        (run(&mut p, ids), p)
    }

    #[test]
    fn next_uses_point_at_the_following_access() {
        let seq = AccessSeq::from_ids(vec![5, 6, 5, 7, 6, 5]);
        assert_eq!(seq.next_uses(), vec![2, 4, 5, NEVER, NEVER, NEVER]);
    }

    #[test]
    fn evicts_the_block_used_furthest_ahead() {
        // Capacity 2: 1 2 3 1 2. At 3 the residents are 1 (next at 3) and 2 (next at 4); 3 is never
        // used again, so it is bypassed and both later accesses hit.
        let (got, p) = min_hits(2, &[1, 2, 3, 1, 2]);
        assert_eq!(got, pattern("mmm HH"));
        assert_eq!(p.stats().admissions_rejected, 1);
        // Capacity 2: 1 2 3 2 3 1: at 3, block 1 is needed last, so it goes.
        let (got, p) = min_hits(2, &[1, 2, 3, 2, 3, 1]);
        assert_eq!(got, pattern("mmm HH m"));
        assert_eq!(p.stats().evictions, 1);
    }

    #[test]
    fn cyclic_scan_keeps_a_fixed_subset() {
        // A loop of 4 over a cache of 3: LRU never hits; MIN keeps 0, 1, 2 and bypasses 3, so it
        // hits 3 of every 4 after the first lap.
        let ids: Vec<u64> = (0..40).map(|i| i % 4).collect();
        let (got, p) = min_hits(3, &ids);
        assert_eq!(got.iter().filter(|h| **h).count(), 27);
        assert_eq!(p.stats().admissions_rejected, 10);
    }

    #[test]
    fn heap_stays_bounded_under_many_hits() {
        let ids: Vec<u64> = (0..10_000).map(|i| i % 3).collect();
        let seq = AccessSeq::from_ids(ids.clone());
        let mut p = Min::new(3, &seq);
        for (i, id) in ids.into_iter().enumerate() {
            p.access(id, i as u64);
            assert!(p.heap.len() <= Min::heap_limit(3));
        }
        assert_eq!(p.stats().insertions, 3);
    }

    #[test]
    #[should_panic(expected = "diverged")]
    fn replaying_another_sequence_is_a_bug() {
        let seq = AccessSeq::from_ids(vec![1, 2]);
        let mut p = Min::new(1, &seq);
        p.access(2, 0);
    }
}
