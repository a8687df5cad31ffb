//! Hyperbolic caching over variable-size objects: evict the sampled object with the lowest
//! frequency per unit of time in the cache.
//!
//! Source: Blankstein, Sen and Freedman, "Hyperbolic Caching: Flexible Caching for Web
//! Applications", USENIX ATC 2017. Priority `frequency / (now - insertion time)`, evaluated on
//! `samples` objects drawn at random (with replacement) among the resident ones, as the paper
//! and libCacheSim's `Hyperbolic.c` do (64 samples, no size term); `size=true` divides by the
//! object size (the paper's size-aware variant). The random stream is MCOS's own (SplitMix64,
//! fixed seed), so runs are reproducible but do not draw the same samples as libCacheSim.

use super::{BasePolicy, ObjectPolicy, get_base};
use crate::objtrace::ObjRequest;
use crate::policy::{IdMap, id_map};

/// Hyperbolic caching under a byte capacity.
#[derive(Debug)]
pub struct Hyperbolic {
    cap: u64,
    used: u64,
    samples: u32,
    by_size: bool,
    rng: u64,
    /// Resident objects `(id, size, frequency, request index at insertion)`.
    objs: Vec<(u64, u64, u64, u64)>,
    pos: IdMap<usize>,
}

impl Hyperbolic {
    /// An empty cache of `capacity_bytes` sampling `samples` objects per eviction.
    pub fn new(capacity_bytes: u64, samples: u32, by_size: bool) -> Self {
        Self {
            cap: capacity_bytes,
            used: 0,
            samples: samples.max(1),
            by_size,
            rng: 0x005E_ED0F_4B1A_5EED,
            objs: Vec::new(),
            pos: id_map(1024),
        }
    }

    fn next_rand(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn remove_at(&mut self, i: usize) {
        let (id, size, _, _) = self.objs.swap_remove(i);
        self.pos.remove(&id);
        self.used -= size;
        if let Some(moved) = self.objs.get(i) {
            self.pos.insert(moved.0, i);
        }
    }
}

impl BasePolicy for Hyperbolic {
    fn find(&mut self, req: &ObjRequest, _now: u64) -> bool {
        match self.pos.get(&req.id) {
            Some(&i) => {
                self.objs[i].2 += 1;
                true
            }
            None => false,
        }
    }

    fn evict(&mut self, _req: &ObjRequest, now: u64) {
        if self.objs.is_empty() {
            return;
        }
        let n = self.objs.len() as u64;
        let mut best = (f64::INFINITY, 0usize);
        for _ in 0..self.samples {
            let i = (self.next_rand() % n) as usize;
            let (_, size, freq, since) = self.objs[i];
            let age = (now + 1 - since).max(1) as f64;
            let mut score = freq as f64 / age;
            if self.by_size {
                score /= size.max(1) as f64;
            }
            if score < best.0 {
                best = (score, i);
            }
        }
        self.remove_at(best.1);
    }

    fn insert(&mut self, req: &ObjRequest, now: u64) {
        self.pos.insert(req.id, self.objs.len());
        self.objs.push((req.id, req.size, 1, now));
        self.used += req.size;
    }

    fn used(&self) -> u64 {
        self.used
    }

    fn cap(&self) -> u64 {
        self.cap
    }
}

impl ObjectPolicy for Hyperbolic {
    fn name(&self) -> String {
        format!("hyperbolic:samples={},size={}", self.samples, self.by_size)
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
    fn a_frequently_hit_object_outlives_one_hit_objects() {
        // 4 slots, 64 samples of 4 objects: object 1 (8 requests) keeps a higher rate than the
        // scan's objects (1 request each), so each eviction takes the oldest scan object.
        let mut items = vec![(1, 1); 8];
        items.extend((10..18).map(|i| (i, 1)));
        items.push((1, 1));
        let reqs = trace(&items);
        let mut p = Hyperbolic::new(4, 64, false);
        let hits = run(&mut p, &reqs);
        assert!(hits[16], "{hits:?}");
    }
}
