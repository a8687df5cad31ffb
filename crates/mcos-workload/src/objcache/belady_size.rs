//! Size-aware Belady: evict the object with the largest `size x time to next request`.
//!
//! Source: the size-aware relaxation of Belady's MIN used as an offline reference by
//! libCacheSim (`BeladySize.c`) and discussed by Berger, Beckmann and Harchol-Balter, "Practical
//! Bounds on Optimal Caching with Variable Object Sizes", SIGMETRICS 2018. As libCacheSim does,
//! an object that is never requested again is not inserted, and is dropped on its last hit.
//! libCacheSim picks the victim among 128 random samples of its hash table (its own random
//! stream); MCOS scans every resident object for the exact maximum (ties: the smaller id; O(resident) per
//! eviction), so it
//! is deterministic and its figures differ from libCacheSim's (pinned in the reproduction test).

use super::{BasePolicy, ObjectPolicy, get_base};
use crate::objtrace::ObjRequest;
use crate::policy::{IdMap, id_map};

/// Size-aware Belady under a byte capacity.
#[derive(Debug)]
pub struct BeladySize {
    cap: u64,
    used: u64,
    /// Resident objects `(id, size, next access)`, scanned for the victim.
    objs: Vec<(u64, u64, i64)>,
    /// id -> index in `objs`.
    pos: IdMap<usize>,
}

impl BeladySize {
    /// An empty cache of `capacity_bytes`.
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            cap: capacity_bytes,
            used: 0,
            objs: Vec::new(),
            pos: id_map(1024),
        }
    }

    fn never(req: &ObjRequest) -> bool {
        req.next_access_vtime < 0 || req.next_access_vtime == i64::MAX
    }

    fn drop_obj(&mut self, id: u64) {
        if let Some(i) = self.pos.remove(&id) {
            self.used -= self.objs[i].1;
            self.objs.swap_remove(i);
            if let Some(moved) = self.objs.get(i) {
                self.pos.insert(moved.0, i);
            }
        }
    }
}

impl BasePolicy for BeladySize {
    fn find(&mut self, req: &ObjRequest, _now: u64) -> bool {
        let Some(&i) = self.pos.get(&req.id) else {
            return false;
        };
        if Self::never(req) {
            self.drop_obj(req.id);
        } else {
            self.objs[i].2 = req.next_access_vtime;
        }
        true
    }

    fn evict(&mut self, _req: &ObjRequest, now: u64) {
        // libCacheSim counts requests from 1 and scores against the current request count.
        let now = now as i128 + 1;
        let mut best: Option<(i128, u64)> = None;
        for &(id, size, next) in &self.objs {
            let score = i128::from(size) * (i128::from(next) - now);
            if best.is_none_or(|(s, b)| score > s || (score == s && id < b)) {
                best = Some((score, id));
            }
        }
        if let Some((_, id)) = best {
            self.drop_obj(id);
        }
    }

    fn insert(&mut self, req: &ObjRequest, _now: u64) {
        if Self::never(req) {
            return;
        }
        self.pos.insert(req.id, self.objs.len());
        self.objs.push((req.id, req.size, req.next_access_vtime));
        self.used += req.size;
    }

    fn used(&self) -> u64 {
        self.used
    }

    fn cap(&self) -> u64 {
        self.cap
    }
}

impl ObjectPolicy for BeladySize {
    fn name(&self) -> String {
        "beladysize".into()
    }
    fn capacity_bytes(&self) -> u64 {
        self.cap
    }
    fn used_bytes(&self) -> u64 {
        self.used
    }
    fn len(&self) -> usize {
        self.objs.len()
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
    fn prefers_evicting_large_objects_and_skips_dead_ones() {
        // 10 bytes: big(8) small(2) are both reused; x(2) needs room: big's size x distance wins.
        let reqs = trace(&[(1, 8), (2, 2), (3, 2), (2, 2), (1, 8), (9, 9)]);
        let mut p = BeladySize::new(10);
        assert_eq!(
            run(&mut p, &reqs),
            [false, false, false, true, false, false]
        );
        assert_eq!(p.len(), 0, "objects without a next request are not kept");
    }
}
