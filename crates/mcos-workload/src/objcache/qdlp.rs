//! QD-LP (quick demotion, lazy promotion) over variable-size objects: a probationary FIFO in
//! front of a CLOCK main cache.
//!
//! Source: Yang, Qiu, Zhang, Yue and Rashmi, "FIFO can be Better than LRU: the Power of Lazy
//! Promotion and Quick Demotion", HotOS 2023. The variant is libCacheSim's `QDLP.c` with its
//! test's parameters: a FIFO of `small` x capacity bytes, a ghost FIFO of `ghost` x capacity
//! bytes of ids, and a main cache that is a 2-bit CLOCK (`bits`) of the rest. A miss whose id is
//! in the ghost goes into main (main evicting for itself), any other into the FIFO. When the
//! FIFO evicts, an object hit at least `threshold` times there moves into main, any other leaves
//! (its id into the ghost). When the FIFO is empty, main evicts.

use super::clock::Clock;
use super::fifo::Fifo;
use super::index::SlotIndex;
use super::queue::{Queue, Slab, prefetch_listed};
use super::{BasePolicy, ObjectPolicy, Prefetch, get_base};
use crate::objtrace::ObjRequest;

/// QD-LP-FIFO under a byte capacity.
#[derive(Debug)]
pub struct Qdlp {
    cap: u64,
    small_cap: u64,
    small_ratio: f64,
    ghost_ratio: f64,
    threshold: i64,
    bits: u32,
    index: SlotIndex,
    slab: Slab,
    small: Queue,
    ghost: Option<Fifo>,
    main: Clock,
    hit_on_ghost: bool,
}

impl Qdlp {
    /// An empty cache: see the module documentation for the parameters.
    pub fn new(
        capacity_bytes: u64,
        small_ratio: f64,
        ghost_ratio: f64,
        threshold: i64,
        bits: u32,
    ) -> Self {
        let small_cap = (capacity_bytes as f64 * small_ratio) as u64;
        let ghost_cap = (capacity_bytes as f64 * ghost_ratio) as u64;
        Self {
            cap: capacity_bytes,
            small_cap,
            small_ratio,
            ghost_ratio,
            threshold,
            bits,
            index: SlotIndex::default(),
            slab: Slab::default(),
            small: Queue::default(),
            ghost: (ghost_cap > 0).then(|| Fifo::new(ghost_cap)),
            main: Clock::new(capacity_bytes - small_cap.min(capacity_bytes), bits),
            hit_on_ghost: false,
        }
    }
}

impl BasePolicy for Qdlp {
    fn find(&mut self, req: &ObjRequest, now: u64) -> bool {
        self.hit_on_ghost = false;
        if let Some(i) = self.index.get(req.id) {
            self.slab.get_mut(i).freq += 1;
            return true;
        }
        if let Some(g) = &mut self.ghost
            && g.remove(req.id)
        {
            self.hit_on_ghost = true;
        }
        self.main.find(req, now)
    }

    fn can_insert(&self, req: &ObjRequest) -> bool {
        req.size <= self.small_cap
    }

    fn evict(&mut self, req: &ObjRequest, now: u64) {
        let Some(t) = self.small.tail() else {
            self.main.evict(req, now);
            return;
        };
        let n = *self.slab.get(t);
        let moved = ObjRequest {
            time: req.time,
            id: n.id,
            size: n.size,
            next_access_vtime: -2,
        };
        if n.freq >= self.threshold {
            get_base(&mut self.main, &moved, now);
        } else if let Some(g) = &mut self.ghost {
            get_base(g, &moved, now);
        }
        self.small.unlink(&mut self.slab, t);
        self.index.remove(n.id);
        self.slab.release(t);
    }

    fn insert(&mut self, req: &ObjRequest, now: u64) {
        if self.hit_on_ghost {
            self.hit_on_ghost = false;
            get_base(&mut self.main, req, now);
        } else if req.size < self.small_cap {
            let i = self.slab.alloc(req.id, req.size, 0);
            self.small.push_head(&mut self.slab, i);
            self.index.insert(req.id, i);
        }
    }

    fn used(&self) -> u64 {
        self.small.bytes + self.main.used()
    }

    fn cap(&self) -> u64 {
        self.cap
    }
}

impl ObjectPolicy for Qdlp {
    fn name(&self) -> String {
        format!(
            "qdlp:small={},ghost={},threshold={},bits={}",
            self.small_ratio, self.ghost_ratio, self.threshold, self.bits
        )
    }
    fn capacity_bytes(&self) -> u64 {
        self.cap
    }
    fn used_bytes(&self) -> u64 {
        self.used()
    }
    fn len(&self) -> usize {
        self.small.len + ObjectPolicy::len(&self.main)
    }
    fn access(&mut self, req: &ObjRequest, now: u64) -> bool {
        get_base(self, req, now)
    }
    fn prefetch(&self, id: u64, stage: Prefetch) {
        prefetch_listed(
            &self.index,
            &self.slab,
            std::slice::from_ref(&self.small),
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
    fn objects_hit_on_probation_are_promoted_lazily() {
        // 10 bytes, FIFO 2: object 1 hit in the FIFO moves to main when the FIFO evicts it, and
        // survives the scan that follows.
        let mut items = vec![(1, 1), (1, 1)];
        items.extend((100..115).map(|i| (i, 1)));
        items.push((1, 1));
        let reqs = trace(&items);
        let mut p = Qdlp::new(10, 0.2, 0.9, 1, 2);
        let hits = run(&mut p, &reqs);
        assert!(hits[1] && hits[17], "{hits:?}");
    }
}
