//! SIEVE over variable-size objects.
//!
//! Source: Zhang, Yang, Yue, Vigfusson and Rashmi, "SIEVE is Simpler than LRU: an Efficient
//! Turn-Key Eviction Algorithm for Web Caches", NSDI 2024; flow as libCacheSim's `Sieve.c`: new
//! objects at the head, a hit sets the visited bit, the hand walks from the tail toward the head
//! clearing visited bits and evicts the first unvisited object, then rests on the next newer
//! object (wrapping to the tail).

use super::index::SlotIndex;
use super::queue::{Queue, Slab};
use super::{BasePolicy, ObjectPolicy, Prefetch, get_base};
use crate::objtrace::ObjRequest;

/// SIEVE under a byte capacity.
#[derive(Debug)]
pub struct Sieve {
    cap: u64,
    index: SlotIndex,
    slab: Slab,
    q: Queue,
    hand: Option<u32>,
}

impl Sieve {
    /// An empty cache of `capacity_bytes`.
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            cap: capacity_bytes,
            index: SlotIndex::default(),
            slab: Slab::default(),
            q: Queue::default(),
            hand: None,
        }
    }
}

impl BasePolicy for Sieve {
    fn find(&mut self, req: &ObjRequest, _now: u64) -> bool {
        match self.index.get(req.id) {
            Some(i) => {
                self.slab.get_mut(i).freq = 1;
                true
            }
            None => false,
        }
    }

    fn evict(&mut self, _req: &ObjRequest, _now: u64) {
        let Some(mut obj) = self.hand.or_else(|| self.q.tail()) else {
            return;
        };
        while self.slab.get(obj).freq > 0 {
            self.slab.get_mut(obj).freq -= 1;
            obj = match Queue::newer(&self.slab, obj) {
                Some(n) => n,
                None => match self.q.tail() {
                    Some(t) => t,
                    None => return,
                },
            };
        }
        self.hand = Queue::newer(&self.slab, obj);
        self.q.unlink(&mut self.slab, obj);
        self.index.remove(self.slab.get(obj).id);
        self.slab.release(obj);
    }

    fn insert(&mut self, req: &ObjRequest, _now: u64) {
        let i = self.slab.alloc(req.id, req.size, 0);
        self.q.push_head(&mut self.slab, i);
        self.index.insert(req.id, i);
    }

    fn used(&self) -> u64 {
        self.q.bytes
    }

    fn cap(&self) -> u64 {
        self.cap
    }
}

impl ObjectPolicy for Sieve {
    fn name(&self) -> String {
        "sieve".into()
    }
    fn capacity_bytes(&self) -> u64 {
        self.cap
    }
    fn used_bytes(&self) -> u64 {
        self.q.bytes
    }
    fn len(&self) -> usize {
        self.q.len
    }
    fn access(&mut self, req: &ObjRequest, now: u64) -> bool {
        get_base(self, req, now)
    }
    fn prefetch(&self, id: u64, stage: Prefetch) {
        match stage {
            Prefetch::Index => self.index.prefetch(id),
            // A hit writes the object's visited bit.
            Prefetch::Node => {
                if let Some(i) = self.index.get(id) {
                    self.slab.prefetch(i);
                }
            }
            // A miss that evicts starts its walk at the hand.
            Prefetch::Links => {
                if let Some(h) = self.hand.or_else(|| self.q.tail()) {
                    self.slab.prefetch(h);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, trace};
    use super::*;

    #[test]
    fn visited_objects_survive_the_hand() {
        // 3 slots: 1 2 3, 1 hit; 4 -> hand clears 1, evicts 2; 1 hits, 2 misses.
        let reqs = trace(&[(1, 1), (2, 1), (3, 1), (1, 1), (4, 1), (1, 1), (2, 1)]);
        let mut p = Sieve::new(3);
        assert_eq!(
            run(&mut p, &reqs),
            [false, false, false, true, false, true, false]
        );
    }
}
