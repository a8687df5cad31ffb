//! LIRS (low inter-reference recency set) over variable-size objects.
//!
//! Source: Jiang and Zhang, "LIRS: An Efficient Low Inter-reference Recency Set Replacement
//! Policy to Improve Buffer Cache Performance", SIGMETRICS 2002. The byte-capacity variant is
//! libCacheSim's `LIRS.c`, followed step by step so the figures match: the stack S (LIR objects
//! and recently seen HIR objects, resident or not), the list Q of resident HIR objects
//! (`hirs` x capacity bytes, 1 % by default, at least one byte), the list of non-resident HIR
//! objects still in S, stack pruning after a LIR object leaves S's bottom, and S bounded at twice
//! the capacity in bytes (oldest non-resident entries dropped first).

use super::ObjectPolicy;
use super::queue::IdQueue;
use crate::objtrace::ObjRequest;

const LIR: u8 = 1;
const RESIDENT: u8 = 2;

/// LIRS under a byte capacity.
#[derive(Debug)]
pub struct Lirs {
    cap: u64,
    hirs_ratio: f64,
    lirs_limit: u64,
    hirs_limit: u64,
    lirs_count: u64,
    hirs_count: u64,
    /// Resident bytes as libCacheSim counts them.
    occupied: u64,
    resident: usize,
    s: IdQueue,
    q: IdQueue,
    nh: IdQueue,
}

impl Lirs {
    /// An empty cache of `capacity_bytes` whose HIR list holds `hirs_ratio` of it.
    pub fn new(capacity_bytes: u64, hirs_ratio: f64) -> Self {
        let hirs_limit = ((hirs_ratio * capacity_bytes as f64) as u64).max(1);
        Self {
            cap: capacity_bytes,
            hirs_ratio,
            lirs_limit: capacity_bytes.saturating_sub(hirs_limit),
            hirs_limit,
            lirs_count: 0,
            hirs_count: 0,
            occupied: 0,
            resident: 0,
            s: IdQueue::default(),
            q: IdQueue::default(),
            nh: IdQueue::default(),
        }
    }

    fn flags_s(&self, id: u64) -> Option<u8> {
        self.s.get(id).map(|n| n.tag)
    }

    /// Drops HIR entries from S's bottom until a LIR entry (or a single entry) is there.
    fn prune(&mut self) {
        while let Some(t) = self.s.tail().copied() {
            if Some(t.id) == self.s.head_id() || t.tag & LIR != 0 {
                break;
            }
            if t.tag & RESIDENT == 0 {
                self.nh.remove(t.id);
            }
            self.s.pop_tail();
        }
    }

    fn evict_hir(&mut self) {
        let Some(t) = self.q.pop_tail() else {
            return;
        };
        self.hirs_count = self.hirs_count.saturating_sub(t.size);
        if let Some(n) = self.s.get_mut(t.id) {
            n.tag &= !RESIDENT;
            self.nh.push_head(t.id, t.size, 0);
        }
        self.occupied = self.occupied.saturating_sub(t.size);
        self.resident = self.resident.saturating_sub(1);
    }

    fn evict_lir(&mut self) {
        let Some(t) = self.s.pop_tail() else {
            return;
        };
        self.lirs_count = self.lirs_count.saturating_sub(t.size);
        self.occupied = self.occupied.saturating_sub(t.size);
        self.resident = self.resident.saturating_sub(1);
        if t.size <= self.hirs_limit {
            while self.hirs_count + t.size > self.hirs_limit && self.q.len() > 0 {
                self.evict_hir();
            }
            self.q.push_head(t.id, t.size, RESIDENT);
            self.hirs_count += t.size;
            self.occupied += t.size;
            self.resident += 1;
        }
        self.prune();
    }

    fn evict_lir_while(&mut self, size: u64) {
        while self.lirs_count + size > self.lirs_limit && self.s.len() > 0 {
            self.evict_lir();
        }
    }

    fn find(&mut self, req: &ObjRequest) -> bool {
        let in_s = self.s.touch(req.id);
        let in_q = self.q.touch(req.id);
        if in_s {
            let tag = self.flags_s(req.id).unwrap_or(0);
            if tag & LIR != 0 {
                self.prune();
                return true;
            }
            if tag & RESIDENT == 0 {
                return false;
            }
            // A resident HIR object in S becomes LIR.
            let size = self.s.get(req.id).map_or(req.size, |n| n.size);
            if let Some(qn) = self.q.remove(req.id) {
                self.hirs_count = self.hirs_count.saturating_sub(qn.size);
                self.occupied = self.occupied.saturating_sub(qn.size);
                self.resident = self.resident.saturating_sub(1);
            }
            self.evict_lir_while(size);
            if let Some(n) = self.s.get_mut(req.id) {
                n.tag |= LIR;
            }
            self.lirs_count += size;
            self.occupied += size;
            self.resident += 1;
            return true;
        }
        if in_q {
            // A resident HIR object not in S: back into S as resident HIR.
            let size = self.q.get(req.id).map_or(req.size, |n| n.size);
            self.evict_lir_while(size);
            self.s.push_head(req.id, size, RESIDENT);
            return true;
        }
        false
    }

    /// libCacheSim's `LIRS_can_insert`, which also makes room.
    fn can_insert(&mut self, req: &ObjRequest) -> bool {
        if req.size > self.cap {
            return false;
        }
        match self.flags_s(req.id) {
            Some(tag) if tag & (LIR | RESIDENT) == 0 => {
                self.evict_lir_while(req.size);
                self.nh.remove(req.id);
                true
            }
            Some(_) => false,
            None => {
                if req.size > self.lirs_limit || req.size > self.hirs_limit {
                    return false;
                }
                if self.lirs_count + req.size > self.lirs_limit
                    && self.hirs_count + req.size > self.hirs_limit
                {
                    while self.hirs_count + req.size > self.hirs_limit && self.q.len() > 0 {
                        self.evict_hir();
                    }
                }
                true
            }
        }
    }

    /// One step of libCacheSim's `LIRS_evict`; returns whether it did anything.
    fn evict(&mut self, req: &ObjRequest) -> bool {
        match self.flags_s(req.id) {
            Some(tag) if tag & (LIR | RESIDENT) == 0 => {
                while self.hirs_count >= self.hirs_limit && self.q.len() > 0 {
                    self.evict_hir();
                }
                let before = self.s.len();
                self.evict_lir();
                self.s.len() != before
            }
            Some(_) => false,
            None => {
                if self.lirs_count + req.size > self.lirs_limit
                    && self.hirs_count + req.size > self.hirs_limit
                    && self.q.len() > 0
                {
                    self.evict_hir();
                    true
                } else {
                    false
                }
            }
        }
    }

    fn insert(&mut self, req: &ObjRequest) {
        match self.flags_s(req.id) {
            Some(tag) if tag & (LIR | RESIDENT) == 0 => {
                let size = self.s.get(req.id).map_or(req.size, |n| n.size);
                if let Some(n) = self.s.get_mut(req.id) {
                    n.tag = LIR | RESIDENT;
                }
                self.lirs_count += size;
                self.occupied += size;
                self.resident += 1;
            }
            Some(_) => {}
            None => {
                if self.lirs_count + req.size <= self.lirs_limit {
                    self.s.push_head(req.id, req.size, LIR | RESIDENT);
                    self.lirs_count += req.size;
                } else {
                    self.s.push_head(req.id, req.size, RESIDENT);
                    self.q.push_head(req.id, req.size, RESIDENT);
                    self.hirs_count += req.size;
                }
                self.occupied += req.size;
                self.resident += 1;
            }
        }
    }

    /// Bounds S at twice the capacity: drop the oldest non-resident entries.
    fn limit_stack(&mut self) {
        while self.s.bytes() > 2 * self.cap {
            let Some(t) = self.nh.pop_tail() else {
                break;
            };
            self.s.remove(t.id);
        }
    }
}

impl ObjectPolicy for Lirs {
    fn name(&self) -> String {
        format!("lirs:hirs={}", self.hirs_ratio)
    }
    fn capacity_bytes(&self) -> u64 {
        self.cap
    }
    fn used_bytes(&self) -> u64 {
        self.occupied
    }
    fn len(&self) -> usize {
        self.resident
    }
    fn access(&mut self, req: &ObjRequest, _now: u64) -> bool {
        let hit = self.find(req);
        if !hit && self.can_insert(req) {
            while self.occupied + req.size > self.cap {
                if !self.evict(req) {
                    break;
                }
            }
            if self.occupied + req.size <= self.cap {
                self.insert(req);
            }
        }
        self.limit_stack();
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, trace};
    use super::*;

    #[test]
    fn lir_objects_survive_a_scan() {
        // 100 bytes, HIR list 10 bytes: objects 1..=5 (10 bytes each) are reused and become LIR;
        // a long scan passes through the HIR list only.
        let mut items: Vec<(u64, u64)> = (1..=5).map(|i| (i, 10)).collect();
        items.extend((1..=5).map(|i| (i, 10)));
        items.extend((100..200).map(|i| (i, 10)));
        items.extend((1..=5).map(|i| (i, 10)));
        let reqs = trace(&items);
        let mut p = Lirs::new(100, 0.1);
        let hits = run(&mut p, &reqs);
        assert!(hits[5..10].iter().all(|&h| h), "{hits:?}");
        assert!(
            hits[110..].iter().all(|&h| h),
            "LIR objects survive the scan: {hits:?}"
        );
    }
}
