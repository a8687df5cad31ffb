//! GDSF (greedy dual size frequency) over variable-size objects.
//!
//! Source: Cherkasova, "Improving WWW Proxies Performance with Greedy-Dual-Size-Frequency
//! Caching Policy", HP Labs HPL-98-69, 1998. Priority `L + frequency x 10^6 / size`, where `L`
//! is the priority of the last evicted object (aging); the lowest priority is evicted, ties in
//! request order (oldest first). Constants and order are libCacheSim's `cpp/GDSF.cpp`.

use std::collections::BTreeMap;

use super::{BasePolicy, ObjectPolicy, get_base};
use crate::objtrace::ObjRequest;
use crate::policy::{IdMap, id_map};

/// GDSF under a byte capacity.
#[derive(Debug)]
pub struct Gdsf {
    cap: u64,
    used: u64,
    inflation: f64,
    /// (priority bits, request index) -> id; priorities are non-negative, so their bit patterns
    /// order as the numbers do.
    queue: BTreeMap<(u64, u64), u64>,
    /// id -> (queue key, frequency, size).
    objs: IdMap<((u64, u64), u64, u64)>,
}

impl Gdsf {
    /// An empty cache of `capacity_bytes`.
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            cap: capacity_bytes,
            used: 0,
            inflation: 0.0,
            queue: BTreeMap::new(),
            objs: id_map(1024),
        }
    }

    fn key(&self, freq: u64, size: u64, now: u64) -> (u64, u64) {
        let pri = self.inflation + freq as f64 * 1.0e6 / size.max(1) as f64;
        (pri.max(0.0).to_bits(), now)
    }
}

impl BasePolicy for Gdsf {
    fn find(&mut self, req: &ObjRequest, now: u64) -> bool {
        let Some(&(old, freq, size)) = self.objs.get(&req.id) else {
            return false;
        };
        self.queue.remove(&old);
        let key = self.key(freq + 1, size, now);
        self.queue.insert(key, req.id);
        self.objs.insert(req.id, (key, freq + 1, size));
        true
    }

    fn evict(&mut self, _req: &ObjRequest, _now: u64) {
        if let Some(((pri, _), id)) = self.queue.pop_first() {
            self.inflation = f64::from_bits(pri);
            if let Some((_, _, size)) = self.objs.remove(&id) {
                self.used -= size;
            }
        }
    }

    fn insert(&mut self, req: &ObjRequest, now: u64) {
        let key = self.key(1, req.size, now);
        self.queue.insert(key, req.id);
        self.objs.insert(req.id, (key, 1, req.size));
        self.used += req.size;
    }

    fn used(&self) -> u64 {
        self.used
    }

    fn cap(&self) -> u64 {
        self.cap
    }
}

impl ObjectPolicy for Gdsf {
    fn name(&self) -> String {
        "gdsf".into()
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
    fn small_and_frequent_objects_are_kept() {
        // 10 bytes: big(8) and small(1); a new small object evicts the big one (lower
        // frequency per byte), not the small one.
        let reqs = trace(&[(1, 8), (2, 1), (3, 2), (2, 1), (1, 8)]);
        let mut p = Gdsf::new(10);
        assert_eq!(run(&mut p, &reqs), [false, false, false, true, false]);
    }
}
