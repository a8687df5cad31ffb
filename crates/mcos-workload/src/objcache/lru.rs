//! Least-recently-used over variable-size objects.
//!
//! Source: Mattson et al., "Evaluation techniques for storage hierarchies", IBM Systems Journal
//! 9(2), 1970; byte-capacity flow as libCacheSim's `LRU.c` (insert at head, a hit moves to the
//! head, evict from the tail until the missed object fits).

use super::index::SlotIndex;
use super::queue::{Queue, Slab, prefetch_listed};
use super::{BasePolicy, ObjectPolicy, Prefetch, get_base};
use crate::objtrace::ObjRequest;

/// LRU under a byte capacity.
#[derive(Debug)]
pub struct Lru {
    cap: u64,
    index: SlotIndex,
    slab: Slab,
    q: Queue,
}

impl Lru {
    /// An empty cache of `capacity_bytes`.
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            cap: capacity_bytes,
            index: SlotIndex::default(),
            slab: Slab::default(),
            q: Queue::default(),
        }
    }
}

impl BasePolicy for Lru {
    fn find(&mut self, req: &ObjRequest, _now: u64) -> bool {
        match self.index.get(req.id) {
            Some(i) => {
                self.q.move_to_head(&mut self.slab, i);
                true
            }
            None => false,
        }
    }

    fn evict(&mut self, _req: &ObjRequest, _now: u64) {
        if let Some(t) = self.q.tail() {
            self.q.unlink(&mut self.slab, t);
            self.index.remove(self.slab.get(t).id);
            self.slab.release(t);
        }
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

impl ObjectPolicy for Lru {
    fn name(&self) -> String {
        "lru".into()
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
        prefetch_listed(
            &self.index,
            &self.slab,
            std::slice::from_ref(&self.q),
            id,
            stage,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, trace};
    use super::*;

    #[test]
    fn evicts_least_recent_until_the_new_object_fits() {
        // 10 bytes: a(4) b(4), a hits; c(6) evicts only b (LRU; 4 + 6 fits); a hits; b evicts c.
        let reqs = trace(&[(1, 4), (2, 4), (1, 4), (3, 6), (1, 4), (2, 4)]);
        let mut p = Lru::new(10);
        assert_eq!(run(&mut p, &reqs), [false, false, true, false, true, false]);
        assert_eq!(p.used_bytes(), 8);
    }
}
