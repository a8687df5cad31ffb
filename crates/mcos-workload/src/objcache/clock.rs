//! CLOCK (second chance / FIFO-reinsertion) over variable-size objects.
//!
//! Source: Corbató, "A paging experiment with the Multics system", MIT Project MAC, 1968; the
//! n-bit variant and the flow follow libCacheSim's `Clock.c`: a hit increments a saturating
//! counter (max `2^bits - 1`); eviction looks at the oldest object: a positive counter is
//! decremented and the object reinserted at the head, a zero counter is evicted.

use super::index::SlotIndex;
use super::queue::{Queue, Slab, prefetch_listed};
use super::{BasePolicy, ObjectPolicy, Prefetch, get_base};
use crate::objtrace::ObjRequest;

/// CLOCK under a byte capacity.
#[derive(Debug)]
pub struct Clock {
    cap: u64,
    max_freq: i64,
    bits: u32,
    index: SlotIndex,
    slab: Slab,
    q: Queue,
}

impl Clock {
    /// An empty cache of `capacity_bytes` with `bits`-bit counters (1: classic CLOCK).
    pub fn new(capacity_bytes: u64, bits: u32) -> Self {
        let bits = bits.clamp(1, 16);
        Self {
            cap: capacity_bytes,
            max_freq: (1i64 << bits) - 1,
            bits,
            index: SlotIndex::default(),
            slab: Slab::default(),
            q: Queue::default(),
        }
    }
}

impl BasePolicy for Clock {
    fn find(&mut self, req: &ObjRequest, _now: u64) -> bool {
        match self.index.get(req.id) {
            Some(i) => {
                let n = self.slab.get_mut(i);
                if n.freq < self.max_freq {
                    n.freq += 1;
                }
                true
            }
            None => false,
        }
    }

    fn evict(&mut self, _req: &ObjRequest, _now: u64) {
        while let Some(t) = self.q.tail() {
            if self.slab.get(t).freq >= 1 {
                self.slab.get_mut(t).freq -= 1;
                self.q.move_to_head(&mut self.slab, t);
                continue;
            }
            self.q.unlink(&mut self.slab, t);
            self.index.remove(self.slab.get(t).id);
            self.slab.release(t);
            return;
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

impl ObjectPolicy for Clock {
    fn name(&self) -> String {
        if self.bits == 1 {
            "clock".into()
        } else {
            format!("clock:bits={}", self.bits)
        }
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
    fn a_referenced_object_gets_a_second_chance() {
        // 2 slots of 1 byte: 1 2 1(hit) 3 -> 1 spared, 2 evicted; 1 hits, 2 misses.
        let reqs = trace(&[(1, 1), (2, 1), (1, 1), (3, 1), (1, 1), (2, 1)]);
        let mut p = Clock::new(2, 1);
        assert_eq!(run(&mut p, &reqs), [false, false, true, false, true, false]);
    }
}
