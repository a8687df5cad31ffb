//! S3-FIFO over variable-size objects.
//!
//! Source: Yang, Zhang, Qiu, Yue and Rashmi, "FIFO queues are all you need for cache eviction",
//! SOSP 2023. The variant is libCacheSim's `S3FIFO.c` (the authors' implementation): a small FIFO
//! of `small` x capacity bytes, a main FIFO of the rest and a ghost FIFO remembering
//! `ghost` x capacity bytes of ids evicted from the small queue. A miss whose id is in the ghost
//! goes to main, any other to small. A hit adds 1 to the object's counter. Eviction takes from
//! main when main is over its share or small is empty, else from small: small's oldest object
//! moves to main when its counter is at least `threshold` (counter reset), else it leaves (its id
//! into the ghost); main's oldest is reinserted with `min(counter, 3) - 1` while its counter is
//! positive, else evicted. An object larger than the small queue is not admitted.

use super::fifo::Fifo;
use super::index::SlotIndex;
use super::queue::{Queue, Slab, prefetch_listed};
use super::{BasePolicy, ObjectPolicy, Prefetch, get_base};
use crate::objtrace::ObjRequest;

const SMALL: u8 = 0;
const MAIN: u8 = 1;

/// S3-FIFO under a byte capacity.
#[derive(Debug)]
pub struct S3Fifo {
    cap: u64,
    small_cap: u64,
    main_cap: u64,
    small_ratio: f64,
    ghost_ratio: f64,
    threshold: i64,
    index: SlotIndex,
    slab: Slab,
    small: Queue,
    main: Queue,
    ghost: Option<Fifo>,
    hit_on_ghost: bool,
}

impl S3Fifo {
    /// An empty cache of `capacity_bytes` with a small queue of `small_ratio` of it, a ghost of
    /// `ghost_ratio` of it, and the move-to-main `threshold`.
    pub fn new(capacity_bytes: u64, small_ratio: f64, ghost_ratio: f64, threshold: i64) -> Self {
        // libCacheSim truncates the products to whole bytes.
        let small_cap = (capacity_bytes as f64 * small_ratio) as u64;
        let ghost_cap = (capacity_bytes as f64 * ghost_ratio) as u64;
        Self {
            cap: capacity_bytes,
            small_cap,
            main_cap: capacity_bytes - small_cap.min(capacity_bytes),
            small_ratio,
            ghost_ratio,
            threshold,
            index: SlotIndex::default(),
            slab: Slab::default(),
            small: Queue::default(),
            main: Queue::default(),
            ghost: (ghost_cap > 0).then(|| Fifo::new(ghost_cap)),
            hit_on_ghost: false,
        }
    }

    fn evict_small(&mut self) {
        while let Some(t) = self.small.tail() {
            self.small.unlink(&mut self.slab, t);
            let n = *self.slab.get(t);
            if n.freq >= self.threshold {
                let node = self.slab.get_mut(t);
                node.freq = 0;
                node.tag = MAIN;
                self.main.push_head(&mut self.slab, t);
                continue;
            }
            self.index.remove(n.id);
            self.slab.release(t);
            if let Some(g) = &mut self.ghost {
                let ghost_req = ObjRequest {
                    time: 0,
                    id: n.id,
                    size: n.size,
                    next_access_vtime: -2,
                };
                get_base(g, &ghost_req, 0);
            }
            return;
        }
    }

    fn evict_main(&mut self) {
        while let Some(t) = self.main.tail() {
            let f = self.slab.get(t).freq;
            if f >= 1 {
                self.slab.get_mut(t).freq = f.min(3) - 1;
                self.main.move_to_head(&mut self.slab, t);
                continue;
            }
            self.main.unlink(&mut self.slab, t);
            self.index.remove(self.slab.get(t).id);
            self.slab.release(t);
            return;
        }
    }
}

impl BasePolicy for S3Fifo {
    fn find(&mut self, req: &ObjRequest, _now: u64) -> bool {
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
        false
    }

    fn can_insert(&self, req: &ObjRequest) -> bool {
        req.size <= self.small_cap
    }

    fn evict(&mut self, _req: &ObjRequest, _now: u64) {
        if self.main.bytes > self.main_cap || self.small.bytes == 0 {
            self.evict_main();
        } else {
            self.evict_small();
        }
    }

    fn insert(&mut self, req: &ObjRequest, _now: u64) {
        if self.hit_on_ghost {
            self.hit_on_ghost = false;
            let i = self.slab.alloc(req.id, req.size, MAIN);
            self.main.push_head(&mut self.slab, i);
            self.index.insert(req.id, i);
        } else if req.size < self.small_cap {
            let i = self.slab.alloc(req.id, req.size, SMALL);
            self.small.push_head(&mut self.slab, i);
            self.index.insert(req.id, i);
        }
    }

    fn used(&self) -> u64 {
        self.small.bytes + self.main.bytes
    }

    fn cap(&self) -> u64 {
        self.cap
    }
}

impl ObjectPolicy for S3Fifo {
    fn name(&self) -> String {
        format!(
            "s3fifo:small={},ghost={},threshold={}",
            self.small_ratio, self.ghost_ratio, self.threshold
        )
    }
    fn capacity_bytes(&self) -> u64 {
        self.cap
    }
    fn used_bytes(&self) -> u64 {
        self.used()
    }
    fn len(&self) -> usize {
        self.small.len + self.main.len
    }
    fn access(&mut self, req: &ObjRequest, now: u64) -> bool {
        get_base(self, req, now)
    }
    fn prefetch(&self, id: u64, stage: Prefetch) {
        let queues = [self.small, self.main];
        prefetch_listed(&self.index, &self.slab, &queues, id, stage);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, trace};
    use super::*;

    #[test]
    fn one_hit_wonders_leave_through_the_small_queue_and_ghosts_return_to_main() {
        // 10 bytes, small share 2 bytes (threshold 1): 1, hit in small, moves to main when small
        // evicts; the scan leaves through small (into the ghost) and never displaces it.
        let mut items = vec![(1, 1), (1, 1)];
        items.extend((100..120).map(|i| (i, 1)));
        items.push((1, 1));
        items.push((105, 1)); // left small recently: a ghost hit, admitted to main
        items.push((105, 1));
        let reqs = trace(&items);
        let mut p = S3Fifo::new(10, 0.2, 0.9, 1);
        let hits = run(&mut p, &reqs);
        assert!(
            hits[1] && hits[22],
            "the reused object survives the scan: {hits:?}"
        );
        assert!(!hits[23] && hits[24], "a ghost hit is admitted to main");
    }
}
