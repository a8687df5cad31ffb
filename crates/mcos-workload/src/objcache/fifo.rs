//! First-in first-out over variable-size objects.
//!
//! Source: the classic FIFO replacement (Belady, "A study of replacement algorithms for a
//! virtual-storage computer", IBM Systems Journal 5(2), 1966); flow as libCacheSim's `FIFO.c`:
//! a hit changes nothing, evict the oldest insertion until the missed object fits.

use super::index::SlotIndex;
use super::queue::{Queue, Slab, prefetch_listed};
use super::{BasePolicy, ObjectPolicy, Prefetch, get_base};
use crate::objtrace::ObjRequest;

/// FIFO under a byte capacity.
#[derive(Debug)]
pub struct Fifo {
    cap: u64,
    index: SlotIndex,
    slab: Slab,
    q: Queue,
}

impl Fifo {
    /// An empty cache of `capacity_bytes`.
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            cap: capacity_bytes,
            index: SlotIndex::default(),
            slab: Slab::default(),
            q: Queue::default(),
        }
    }

    /// Whether `id` is resident.
    pub fn contains(&self, id: u64) -> bool {
        self.index.get(id).is_some()
    }

    /// Removes `id` if resident; returns whether it was.
    pub fn remove(&mut self, id: u64) -> bool {
        match self.index.remove(id) {
            Some(i) => {
                self.q.unlink(&mut self.slab, i);
                self.slab.release(i);
                true
            }
            None => false,
        }
    }

    /// Inserts `id` at the head without evicting (the caller keeps the bound).
    pub(crate) fn push(&mut self, id: u64, size: u64) {
        let i = self.slab.alloc(id, size, 0);
        self.q.push_head(&mut self.slab, i);
        self.index.insert(id, i);
    }

    /// Removes and returns the oldest object `(id, size)`.
    pub(crate) fn pop_oldest(&mut self) -> Option<(u64, u64)> {
        let t = self.q.tail()?;
        let (id, size) = (self.slab.get(t).id, self.slab.get(t).size);
        self.remove(id);
        Some((id, size))
    }
}

impl BasePolicy for Fifo {
    fn find(&mut self, req: &ObjRequest, _now: u64) -> bool {
        self.index.get(req.id).is_some()
    }

    fn evict(&mut self, _req: &ObjRequest, _now: u64) {
        self.pop_oldest();
    }

    fn insert(&mut self, req: &ObjRequest, _now: u64) {
        self.push(req.id, req.size);
    }

    fn used(&self) -> u64 {
        self.q.bytes
    }

    fn cap(&self) -> u64 {
        self.cap
    }
}

impl ObjectPolicy for Fifo {
    fn name(&self) -> String {
        "fifo".into()
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
    fn a_hit_does_not_save_the_oldest() {
        let reqs = trace(&[(1, 4), (2, 4), (1, 4), (3, 4), (1, 4), (2, 4)]);
        let mut p = Fifo::new(8);
        assert_eq!(
            run(&mut p, &reqs),
            [false, false, true, false, false, false]
        );
    }
}
