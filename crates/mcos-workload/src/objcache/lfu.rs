//! Least-frequently-used over variable-size objects.
//!
//! Source: the classic LFU (e.g. Aho, Denning and Ullman, "Principles of optimal page
//! replacement", JACM 18(1), 1971); the variant is libCacheSim's `LFU.c`: a new object has
//! frequency 1, a hit adds 1 and moves it to the newest end of its frequency's list, and eviction
//! takes the object that reached the lowest frequency first (FIFO within a frequency). No aging.

use std::collections::BTreeMap;

use super::index::SlotIndex;
use super::queue::{Queue, Slab, prefetch_listed};
use super::{BasePolicy, ObjectPolicy, Prefetch, get_base};
use crate::objtrace::ObjRequest;

/// LFU under a byte capacity.
#[derive(Debug)]
pub struct Lfu {
    cap: u64,
    used: u64,
    len: usize,
    index: SlotIndex,
    slab: Slab,
    by_freq: BTreeMap<i64, Queue>,
}

impl Lfu {
    /// An empty cache of `capacity_bytes`.
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            cap: capacity_bytes,
            used: 0,
            len: 0,
            index: SlotIndex::default(),
            slab: Slab::default(),
            by_freq: BTreeMap::new(),
        }
    }
}

impl BasePolicy for Lfu {
    fn find(&mut self, req: &ObjRequest, _now: u64) -> bool {
        let Some(i) = self.index.get(req.id) else {
            return false;
        };
        let f = self.slab.get(i).freq;
        if let Some(q) = self.by_freq.get_mut(&f) {
            q.unlink(&mut self.slab, i);
            if q.len == 0 {
                self.by_freq.remove(&f);
            }
        }
        self.slab.get_mut(i).freq = f + 1;
        self.by_freq
            .entry(f + 1)
            .or_default()
            .push_head(&mut self.slab, i);
        true
    }

    fn evict(&mut self, _req: &ObjRequest, _now: u64) {
        let Some(mut entry) = self.by_freq.first_entry() else {
            return;
        };
        let q = entry.get_mut();
        let Some(t) = q.tail() else {
            entry.remove();
            return;
        };
        q.unlink(&mut self.slab, t);
        if q.len == 0 {
            entry.remove();
        }
        let n = *self.slab.get(t);
        self.index.remove(n.id);
        self.slab.release(t);
        self.used -= n.size;
        self.len -= 1;
    }

    fn insert(&mut self, req: &ObjRequest, _now: u64) {
        let i = self.slab.alloc(req.id, req.size, 0);
        self.slab.get_mut(i).freq = 1;
        self.by_freq
            .entry(1)
            .or_default()
            .push_head(&mut self.slab, i);
        self.index.insert(req.id, i);
        self.used += req.size;
        self.len += 1;
    }

    fn used(&self) -> u64 {
        self.used
    }

    fn cap(&self) -> u64 {
        self.cap
    }
}

impl ObjectPolicy for Lfu {
    fn name(&self) -> String {
        "lfu".into()
    }
    fn capacity_bytes(&self) -> u64 {
        self.cap
    }
    fn used_bytes(&self) -> u64 {
        self.used
    }
    fn len(&self) -> usize {
        self.len
    }
    fn access(&mut self, req: &ObjRequest, now: u64) -> bool {
        get_base(self, req, now)
    }
    fn prefetch(&self, id: u64, stage: Prefetch) {
        prefetch_listed(&self.index, &self.slab, &[], id, stage);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, trace};
    use super::*;

    #[test]
    fn the_least_frequent_goes_first() {
        // 2 slots: 1 1 2 3 -> 2 (freq 1) evicted, not 1 (freq 2); then 1 hits, 2 misses.
        let reqs = trace(&[(1, 1), (1, 1), (2, 1), (3, 1), (1, 1), (2, 1)]);
        let mut p = Lfu::new(2);
        assert_eq!(run(&mut p, &reqs), [false, true, false, false, true, false]);
    }
}
