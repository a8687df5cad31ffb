//! Belady's MIN over variable-size objects, without bypass.
//!
//! Source: Belady, "A study of replacement algorithms for a virtual-storage computer", IBM
//! Systems Journal 5(2), 1966. Every missed object that fits is inserted (no bypass, unlike
//! [`crate::policy::Min`]); eviction removes the resident object whose next request is furthest
//! away, read from the trace's `next_access_vtime` (oracleGeneral). This is libCacheSim's
//! `Belady.c`: its max-heap ([`super::pqueue`], libpqueue's order) decides among objects that are
//! never requested again, so the byte counts match libCacheSim's exactly. With variable sizes it
//! is not optimal (see [`super::BeladySize`]).

use super::pqueue::PQueue;
use super::{BasePolicy, ObjectPolicy, get_base};
use crate::objtrace::ObjRequest;
use crate::policy::{IdMap, id_map};

/// Belady (furthest next use) under a byte capacity.
#[derive(Debug)]
pub struct Belady {
    cap: u64,
    used: u64,
    sizes: IdMap<u64>,
    heap: PQueue,
}

impl Belady {
    /// An empty cache of `capacity_bytes`.
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            cap: capacity_bytes,
            used: 0,
            sizes: id_map(1024),
            heap: PQueue::new(),
        }
    }
}

fn next_of(req: &ObjRequest) -> f64 {
    if req.next_access_vtime < 0 {
        i64::MAX as f64
    } else {
        req.next_access_vtime as f64
    }
}

impl BasePolicy for Belady {
    fn find(&mut self, req: &ObjRequest, _now: u64) -> bool {
        if self.sizes.contains_key(&req.id) {
            self.heap.change(req.id, next_of(req));
            true
        } else {
            false
        }
    }

    fn evict(&mut self, _req: &ObjRequest, _now: u64) {
        if let Some((id, _)) = self.heap.pop() {
            self.used -= self.sizes.remove(&id).unwrap_or(0);
        }
    }

    fn insert(&mut self, req: &ObjRequest, _now: u64) {
        self.heap.insert(req.id, next_of(req));
        self.sizes.insert(req.id, req.size);
        self.used += req.size;
    }

    fn used(&self) -> u64 {
        self.used
    }

    fn cap(&self) -> u64 {
        self.cap
    }
}

impl ObjectPolicy for Belady {
    fn name(&self) -> String {
        "belady".into()
    }
    fn capacity_bytes(&self) -> u64 {
        self.cap
    }
    fn used_bytes(&self) -> u64 {
        self.used
    }
    fn len(&self) -> usize {
        self.sizes.len()
    }
    fn access(&mut self, req: &ObjRequest, now: u64) -> bool {
        get_base(self, req, now)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, trace};
    use super::*;

    #[test]
    fn evicts_the_furthest_next_use() {
        // 2 slots: 1 2 3(evicts whichever of 1, 2 comes later: 2) 1 2.
        let reqs = trace(&[(1, 1), (2, 1), (3, 1), (1, 1), (2, 1)]);
        let mut p = Belady::new(2);
        assert_eq!(run(&mut p, &reqs), [false, false, false, true, false]);
    }
}
