//! ARC (adaptive replacement cache) over variable-size objects, as libCacheSim runs it.
//!
//! Source: Megiddo and Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache", FAST 2003.
//! Four lists: T1 (seen once recently), T2 (seen at least twice), and their ghosts B1, B2 (ids
//! only, with sizes). The target `p` for T1 is real-valued as in the paper: a hit in B1 raises it
//! by `max(|B2| / |B1|, 1)`, a hit in B2 lowers it by `max(|B1| / |B2|, 1)`, clamped to
//! `[0, capacity]`. The byte-capacity variant is libCacheSim's `ARC.c`: list sizes are bytes,
//! and the step is that ratio, added to a target measured in bytes (so with large objects `p`
//! moves slowly); `arc:step=size` multiplies the step by the requested object's size instead
//! (the paper's unit, one page, read as one object). A ghost hit enters T2; eviction is the
//! paper's REPLACE, with case IV's directory bound (`|T1| + |B1| < c`, `total < 2c`) in bytes.

use super::index::SlotIndex;
use super::queue::{Queue, Slab, prefetch_listed};
use super::{BasePolicy, ObjectPolicy, Prefetch, get_base};
use crate::objtrace::ObjRequest;

const T1: u8 = 0;
const T2: u8 = 1;
const B1: u8 = 2;
const B2: u8 = 3;

/// ARC under a byte capacity.
#[derive(Debug)]
pub struct Arc {
    cap: u64,
    p: f64,
    step_by_size: bool,
    index: SlotIndex,
    slab: Slab,
    lists: [Queue; 4],
    /// The current request hit a ghost (B1 or B2): set by `find`, read by `evict`/`insert`.
    ghost_hit: Option<u8>,
}

impl Arc {
    /// An empty cache of `capacity_bytes`; `step_by_size` scales `p`'s step by the object size.
    pub fn new(capacity_bytes: u64, step_by_size: bool) -> Self {
        Self {
            cap: capacity_bytes,
            p: 0.0,
            step_by_size,
            index: SlotIndex::default(),
            slab: Slab::default(),
            lists: [Queue::default(); 4],
            ghost_hit: None,
        }
    }

    fn size(&self, l: u8) -> u64 {
        self.lists[l as usize].bytes
    }

    fn move_tail(&mut self, from: u8, to: u8) {
        if let Some(t) = self.lists[from as usize].tail() {
            self.lists[from as usize].unlink(&mut self.slab, t);
            self.slab.get_mut(t).tag = to;
            self.lists[to as usize].push_head(&mut self.slab, t);
        }
    }

    fn drop_tail(&mut self, l: u8) {
        if let Some(t) = self.lists[l as usize].tail() {
            self.lists[l as usize].unlink(&mut self.slab, t);
            self.index.remove(self.slab.get(t).id);
            self.slab.release(t);
        }
    }

    /// The paper's REPLACE: demote T1's or T2's LRU object to its ghost list.
    fn replace(&mut self) {
        let t1 = self.size(T1) as f64;
        let from_t1 = (self.size(T1) > 0
            && (t1 > self.p || (t1 == self.p && self.ghost_hit == Some(B2))))
            || self.size(T2) == 0;
        if from_t1 {
            self.move_tail(T1, B1);
        } else {
            self.move_tail(T2, B2);
        }
    }
}

impl BasePolicy for Arc {
    fn find(&mut self, req: &ObjRequest, _now: u64) -> bool {
        self.ghost_hit = None;
        let Some(i) = self.index.get(req.id) else {
            return false;
        };
        let tag = self.slab.get(i).tag;
        match tag {
            T1 => {
                self.lists[T1 as usize].unlink(&mut self.slab, i);
                self.slab.get_mut(i).tag = T2;
                self.lists[T2 as usize].push_head(&mut self.slab, i);
                true
            }
            T2 => {
                self.lists[T2 as usize].move_to_head(&mut self.slab, i);
                true
            }
            _ => {
                let (b1, b2) = (self.size(B1) as f64, self.size(B2) as f64);
                let unit = if self.step_by_size {
                    req.size as f64
                } else {
                    1.0
                };
                if tag == B1 {
                    self.p = (self.p + (b2 / b1).max(1.0) * unit).min(self.cap as f64);
                } else {
                    self.p = (self.p - (b1 / b2).max(1.0) * unit).max(0.0);
                }
                self.lists[tag as usize].unlink(&mut self.slab, i);
                self.index.remove(req.id);
                self.slab.release(i);
                self.ghost_hit = Some(tag);
                false
            }
        }
    }

    fn evict(&mut self, req: &ObjRequest, _now: u64) {
        if self.ghost_hit.is_some() {
            self.replace();
            return;
        }
        // Case IV of the paper: a miss in all four lists.
        if self.size(T1) + self.size(B1) + req.size > self.cap {
            if self.size(B1) > 0 {
                self.drop_tail(B1);
                self.replace();
            } else {
                self.drop_tail(T1);
            }
        } else {
            let total: u64 = self.lists.iter().map(|q| q.bytes).sum();
            if total >= 2 * self.cap && self.size(B2) > 0 {
                self.drop_tail(B2);
            }
            self.replace();
        }
    }

    fn insert(&mut self, req: &ObjRequest, _now: u64) {
        let to = if self.ghost_hit.take().is_some() {
            T2
        } else {
            T1
        };
        let i = self.slab.alloc(req.id, req.size, to);
        self.lists[to as usize].push_head(&mut self.slab, i);
        self.index.insert(req.id, i);
    }

    fn used(&self) -> u64 {
        self.size(T1) + self.size(T2)
    }

    fn cap(&self) -> u64 {
        self.cap
    }
}

impl ObjectPolicy for Arc {
    fn name(&self) -> String {
        if self.step_by_size {
            "arc:step=size".into()
        } else {
            "arc".into()
        }
    }
    fn capacity_bytes(&self) -> u64 {
        self.cap
    }
    fn used_bytes(&self) -> u64 {
        self.used()
    }
    fn len(&self) -> usize {
        self.lists[T1 as usize].len + self.lists[T2 as usize].len
    }
    fn access(&mut self, req: &ObjRequest, now: u64) -> bool {
        get_base(self, req, now)
    }
    fn prefetch(&self, id: u64, stage: Prefetch) {
        prefetch_listed(&self.index, &self.slab, &self.lists, id, stage);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, trace};
    use super::*;

    #[test]
    fn frequency_survives_a_scan_and_ghost_hits_enter_t2() {
        let mut items = vec![(1, 1), (1, 1), (2, 1), (2, 1)];
        items.extend((10..14).map(|i| (i, 1)));
        items.extend([(1, 1), (2, 1), (10, 1), (10, 1)]);
        let reqs = trace(&items);
        let mut p = Arc::new(4, false);
        let hits = run(&mut p, &reqs);
        assert!(hits[8] && hits[9], "T2 objects survive a scan: {hits:?}");
        assert!(
            !hits[10] && hits[11],
            "a ghost hit misses, then hits in T2: {hits:?}"
        );
        assert!(p.p > 0.0, "a B1 hit raised p");
    }
}
