//! Segmented LRU with `n` segments over variable-size objects.
//!
//! Source: Karedla, Love and Wherry, "Caching strategies to improve disk system performance",
//! IEEE Computer 27(3), 1994; the n-segment byte-capacity variant is libCacheSim's `SLRU.c`:
//! each segment holds `capacity / n` bytes; a miss goes to the lowest segment with room (segment
//! 0 once all are full, after evicting from the lowest non-empty segment); a hit in segment `i`
//! moves the object to the head of segment `i + 1` (or the head of the top segment), and a
//! segment over its share pushes its LRU object down to the head of the segment below (segment
//! 0 evicts). An object larger than one segment is not admitted.

use super::index::SlotIndex;
use super::queue::{Queue, Slab, prefetch_listed};
use super::{BasePolicy, ObjectPolicy, Prefetch, get_base};
use crate::objtrace::ObjRequest;

/// SLRU under a byte capacity.
#[derive(Debug)]
pub struct Slru {
    cap: u64,
    seg_cap: u64,
    index: SlotIndex,
    slab: Slab,
    segs: Vec<Queue>,
}

impl Slru {
    /// An empty cache of `capacity_bytes` in `segments` equal segments (at least 1).
    pub fn new(capacity_bytes: u64, segments: usize) -> Self {
        let n = segments.clamp(1, 255);
        Self {
            cap: capacity_bytes,
            seg_cap: capacity_bytes / n as u64,
            index: SlotIndex::default(),
            slab: Slab::default(),
            segs: vec![Queue::default(); n],
        }
    }

    fn evict_lowest(&mut self) {
        let Some(s) = self.segs.iter().position(|q| q.bytes > 0) else {
            return;
        };
        if let Some(t) = self.segs[s].tail() {
            self.segs[s].unlink(&mut self.slab, t);
            self.index.remove(self.slab.get(t).id);
            self.slab.release(t);
        }
    }

    /// libCacheSim's `SLRU_cool`: segment `s` is over its share.
    fn cool(&mut self, s: usize) {
        if s == 0 {
            self.evict_lowest();
            return;
        }
        let Some(t) = self.segs[s].tail() else {
            return;
        };
        self.segs[s].unlink(&mut self.slab, t);
        self.slab.get_mut(t).tag = (s - 1) as u8;
        self.segs[s - 1].push_head(&mut self.slab, t);
        while self.segs[s - 1].bytes > self.seg_cap {
            self.cool(s - 1);
        }
    }
}

impl BasePolicy for Slru {
    fn find(&mut self, req: &ObjRequest, _now: u64) -> bool {
        let Some(i) = self.index.get(req.id) else {
            return false;
        };
        let s = self.slab.get(i).tag as usize;
        let top = self.segs.len() - 1;
        if s == top {
            self.segs[top].move_to_head(&mut self.slab, i);
            return true;
        }
        self.segs[s].unlink(&mut self.slab, i);
        self.slab.get_mut(i).tag = (s + 1) as u8;
        self.segs[s + 1].push_head(&mut self.slab, i);
        // The promoted object's own segment may change while cooling (it can be the tail).
        while let Some(j) = self.index.get(req.id) {
            let cur = self.slab.get(j).tag as usize;
            if self.segs[cur].bytes <= self.seg_cap {
                break;
            }
            self.cool(cur);
        }
        true
    }

    fn can_insert(&self, req: &ObjRequest) -> bool {
        req.size <= self.cap && req.size <= self.seg_cap
    }

    fn evict(&mut self, _req: &ObjRequest, _now: u64) {
        self.evict_lowest();
    }

    fn insert(&mut self, req: &ObjRequest, _now: u64) {
        let seg = self
            .segs
            .iter()
            .position(|q| q.bytes + req.size <= self.seg_cap)
            .unwrap_or(0);
        let i = self.slab.alloc(req.id, req.size, seg as u8);
        self.segs[seg].push_head(&mut self.slab, i);
        self.index.insert(req.id, i);
    }

    fn used(&self) -> u64 {
        self.segs.iter().map(|q| q.bytes).sum()
    }

    fn cap(&self) -> u64 {
        self.cap
    }
}

impl ObjectPolicy for Slru {
    fn name(&self) -> String {
        format!("slru:segments={}", self.segs.len())
    }
    fn capacity_bytes(&self) -> u64 {
        self.cap
    }
    fn used_bytes(&self) -> u64 {
        self.used()
    }
    fn len(&self) -> usize {
        self.segs.iter().map(|q| q.len).sum()
    }
    fn access(&mut self, req: &ObjRequest, now: u64) -> bool {
        get_base(self, req, now)
    }
    fn prefetch(&self, id: u64, stage: Prefetch) {
        prefetch_listed(&self.index, &self.slab, &self.segs, id, stage);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, trace};
    use super::*;

    #[test]
    fn a_scan_does_not_flush_the_protected_segment() {
        // 4 bytes, 2 segments of 2: 1 and 2 hit once (protected); a scan of 10.. churns the
        // probationary segment only.
        let mut items = vec![(1, 1), (2, 1), (3, 1), (4, 1), (1, 1), (2, 1)];
        items.extend((10..20).map(|i| (i, 1)));
        items.extend([(1, 1), (2, 1)]);
        let reqs = trace(&items);
        let mut p = Slru::new(4, 2);
        let hits = run(&mut p, &reqs);
        assert!(hits[4] && hits[5], "{hits:?}");
        assert!(
            hits[16] && hits[17],
            "protected objects survive the scan: {hits:?}"
        );
    }
}
