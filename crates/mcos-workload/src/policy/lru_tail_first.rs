//! LRU with vLLM's tail-first free order.
//!
//! Source: vLLM v1 automatic prefix caching design ("Automatic Prefix Caching", vLLM docs; the
//! `FreeKVCacheBlockQueue` of the v1 KV-cache manager): when a request finishes, its blocks are
//! appended to the free (eviction) queue in reverse order, so the tail block of a prefix chain is
//! evicted first and the shared head survives longest. Here that is exact LRU whose
//! [`CachePolicy::request_done`] re-touches the request's resident blocks from last to first, so the
//! head ends most recent.

use super::lru::Lru;
use super::{CachePolicy, PolicyStats};

/// Exact LRU plus tail-first ordering of each finished request's blocks.
#[derive(Debug)]
pub struct LruTailFirst {
    lru: Lru,
}

impl LruTailFirst {
    /// An empty cache of `capacity` blocks.
    ///
    /// # Panics
    /// If `capacity` is 0.
    pub fn new(capacity: usize) -> Self {
        Self {
            lru: Lru::new(capacity),
        }
    }
}

impl CachePolicy for LruTailFirst {
    fn name(&self) -> &'static str {
        "lru-tail"
    }

    fn capacity(&self) -> usize {
        self.lru.capacity()
    }

    fn len(&self) -> usize {
        self.lru.len()
    }

    fn contains(&self, id: u64) -> bool {
        self.lru.contains(id)
    }

    fn access(&mut self, id: u64, now: u64) -> bool {
        self.lru.access(id, now)
    }

    fn request_done(&mut self, ids: &[u64]) {
        for &id in ids.iter().rev() {
            self.lru.touch(id);
        }
    }

    fn stats(&self) -> PolicyStats {
        self.lru.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_evicted_before_head_after_request_done() {
        let mut plain = Lru::new(3);
        let mut tail = LruTailFirst::new(3);
        for p in [&mut plain as &mut dyn CachePolicy, &mut tail] {
            for (i, id) in [10, 11, 12].into_iter().enumerate() {
                p.access(id, i as u64);
            }
            p.request_done(&[10, 11, 12]);
            p.access(99, 3);
        }
        // Plain LRU evicts the head (10), tail-first evicts the tail (12).
        assert!(!plain.contains(10) && plain.contains(12));
        assert!(tail.contains(10) && !tail.contains(12));
        // The next request sharing the prefix hits its head only with tail-first.
        assert!(!plain.access(10, 4));
        assert!(tail.access(10, 4));
    }

    #[test]
    fn request_done_ignores_evicted_ids() {
        let mut p = LruTailFirst::new(2);
        for (i, id) in [1, 2, 3].into_iter().enumerate() {
            p.access(id, i as u64);
        }
        p.request_done(&[1, 2, 3]);
        assert_eq!(p.len(), 2);
        assert!(!p.contains(1));
    }
}
